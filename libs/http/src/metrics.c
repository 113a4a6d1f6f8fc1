/* metrics.c -- a small Prometheus registry: labelled counters and histograms, text output.
 * The lock guards the lists; a series' numbers are atomics, so a caller holding a series
 * (mr_http_metrics_series) records into it with no lock, no lookup and no allocation. */
#include "mindroom/http.h"
#include "mindroom/str.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum metric_type { METRIC_COUNTER, METRIC_HISTOGRAM } metric_type;

typedef struct metric metric;

typedef struct mr_http_series {
    const metric *mt;
    char *labels;                /* rendered `a="x",b="y"`, "" when unlabelled */
    _Atomic double value;        /* counter value, or histogram sum */
    atomic_uint_fast64_t count;  /* histogram observations */
    atomic_uint_fast64_t *buckets;  /* per-bucket (not cumulative) counts, nbuckets + 1 for +Inf */
    struct mr_http_series *next;
} series;

struct metric {
    char *name;
    char *help;
    metric_type type;
    double *bounds;
    size_t nbounds;
    series *first, *last;
    struct metric *next;
};

struct mr_http_metrics {
    pthread_mutex_t lock;
    metric *first, *last;
};

static bool name_ok(const char *s, bool colon)
{
    if (!s || !*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && !(colon && *s == ':'))
            return false;
    return true;
}

mr_http_metrics *mr_http_metrics_new(void)
{
    mr_http_metrics *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

void mr_http_metrics_free(mr_http_metrics *m)
{
    if (!m)
        return;
    for (metric *mt = m->first; mt;) {
        metric *next_m = mt->next;
        for (series *s = mt->first; s;) {
            series *next_s = s->next;
            free(s->labels);
            free(s->buckets);
            free(s);
            s = next_s;
        }
        free(mt->name);
        free(mt->help);
        free(mt->bounds);
        free(mt);
        mt = next_m;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static metric *metric_find(mr_http_metrics *m, const char *name)
{
    for (metric *mt = m->first; mt; mt = mt->next)
        if (strcmp(mt->name, name) == 0)
            return mt;
    return NULL;
}

static mr_code metric_declare(mr_http_metrics *m, const char *name, const char *help,
                              metric_type type, const double *bounds, size_t nbounds, mr_err *err)
{
    if (!name_ok(name, true))
        return mr_err_set(err, MR_EINVAL, "metric name \"%s\" is not a valid Prometheus name",
                          name ? name : "");
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return mr_err_set(err, MR_EINVAL, "histogram %s: bucket %zu (%g) is not above %g",
                              name, i, bounds[i], bounds[i - 1]);
    pthread_mutex_lock(&m->lock);
    mr_code rc = MR_OK;
    metric *mt = metric_find(m, name);
    if (mt) {
        if (mt->type != type)
            rc = mr_err_set(err, MR_EEXISTS, "metric %s is already declared with another type",
                            name);
        goto out;
    }
    mt = calloc(1, sizeof *mt);
    if (mt) {
        mt->name = strdup(name);
        mt->help = strdup(help ? help : "");
        mt->type = type;
        mt->nbounds = nbounds;
        mt->bounds = nbounds ? malloc(nbounds * sizeof *bounds) : NULL;
    }
    if (!mt || !mt->name || !mt->help || (nbounds && !mt->bounds)) {
        if (mt) {
            free(mt->name);
            free(mt->help);
            free(mt->bounds);
            free(mt);
        }
        rc = mr_err_set(err, MR_ENOMEM, "out of memory declaring metric %s", name);
        goto out;
    }
    if (nbounds)
        memcpy(mt->bounds, bounds, nbounds * sizeof *bounds);
    if (m->last)
        m->last->next = mt;
    else
        m->first = mt;
    m->last = mt;
out:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

mr_code mr_http_metrics_counter(mr_http_metrics *m, const char *name, const char *help,
                                mr_err *err)
{
    return metric_declare(m, name, help, METRIC_COUNTER, NULL, 0, err);
}

mr_code mr_http_metrics_histogram(mr_http_metrics *m, const char *name, const char *help,
                                  const double *buckets, size_t nbuckets, mr_err *err)
{
    return metric_declare(m, name, help, METRIC_HISTOGRAM, buckets, nbuckets, err);
}

/* Renders labels as `a="x",b="y"` with the exposition format's escapes; NULL on a bad name or
 * no memory. Runs on every request, so values are copied in runs between escapes. */
static char *labels_render(const char *const *labels)
{
    mr_strbuf b = {0};
    mr_strbuf_puts(&b, "");
    for (size_t i = 0; labels && labels[i]; i += 2) {
        if (!name_ok(labels[i], false) || !labels[i + 1]) {
            mr_strbuf_free(&b);
            return NULL;
        }
        if (i)
            mr_strbuf_add(&b, ",", 1);
        mr_strbuf_puts(&b, labels[i]);
        mr_strbuf_add(&b, "=\"", 2);
        for (const char *v = labels[i + 1];;) {
            size_t run = strcspn(v, "\\\"\n");
            mr_strbuf_add(&b, v, run);
            v += run;
            if (!*v)
                break;
            mr_strbuf_add(&b, *v == '\n' ? "\\n" : *v == '"' ? "\\\"" : "\\\\", 2);
            v++;
        }
        mr_strbuf_add(&b, "\"", 1);
    }
    return mr_strbuf_take(&b);
}

static series *series_get(metric *mt, const char *labels)
{
    for (series *s = mt->first; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->mt = mt;
    s->labels = strdup(labels);
    if (mt->type == METRIC_HISTOGRAM)
        s->buckets = calloc(mt->nbounds + 1, sizeof *s->buckets);
    if (!s->labels || (mt->type == METRIC_HISTOGRAM && !s->buckets)) {
        free(s->labels);
        free(s->buckets);
        free(s);
        return NULL;
    }
    if (mt->last)
        mt->last->next = s;
    else
        mt->first = s;
    mt->last = s;
    return s;
}

/* The series of name with labels, made on first use; *rc says why there is none. */
static series *series_find(mr_http_metrics *m, const char *name, const char *const *labels,
                           metric_type type, mr_code *rc)
{
    char *rendered = labels_render(labels);
    if (!rendered) {
        *rc = MR_EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    *rc = MR_OK;
    metric *mt = metric_find(m, name);
    series *s = NULL;
    if (!mt)
        *rc = MR_ENOTFOUND;
    else if (mt->type != type)
        *rc = MR_EINVAL;
    else if (!(s = series_get(mt, rendered)))
        *rc = MR_ENOMEM;
    pthread_mutex_unlock(&m->lock);
    free(rendered);
    return s;
}

static void atomic_add_double(_Atomic double *to, double v)
{
    double old = atomic_load_explicit(to, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(to, &old, old + v, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

void mr_http_series_add(mr_http_series *s, double v)
{
    const metric *mt = s->mt;
    if (mt->type == METRIC_HISTOGRAM) {
        size_t i = 0;
        while (i < mt->nbounds && v > mt->bounds[i])
            i++;
        atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    }
    atomic_add_double(&s->value, v);
}

mr_http_series *mr_http_metrics_series(mr_http_metrics *m, const char *name, const char *const *labels,
                                       bool histogram)
{
    mr_code rc;
    return series_find(m, name, labels, histogram ? METRIC_HISTOGRAM : METRIC_COUNTER, &rc);
}

static mr_code metric_record(mr_http_metrics *m, const char *name, const char *const *labels,
                             metric_type type, double v)
{
    mr_code rc;
    series *s = series_find(m, name, labels, type, &rc);
    if (s)
        mr_http_series_add(s, v);
    return rc;
}

mr_code mr_http_metrics_inc(mr_http_metrics *m, const char *name, const char *const *labels,
                            double by)
{
    if (!(by >= 0))
        return MR_EINVAL;
    return metric_record(m, name, labels, METRIC_COUNTER, by);
}

mr_code mr_http_metrics_observe(mr_http_metrics *m, const char *name, const char *const *labels,
                                double value)
{
    return metric_record(m, name, labels, METRIC_HISTOGRAM, value);
}

/* `name{labels}` or `name{labels,extra}` or bare `name`. */
static void sample_open(mr_strbuf *b, const char *name, const char *suffix, const char *labels,
                        const char *extra)
{
    bool any = labels[0] || extra;
    mr_strbuf_printf(b, "%s%s%s%s%s%s%s", name, suffix, any ? "{" : "", labels,
              labels[0] && extra ? "," : "", extra ? extra : "", any ? "}" : "");
}

static void help_render(mr_strbuf *b, const metric *mt)
{
    mr_strbuf_printf(b, "# HELP %s ", mt->name);
    for (const char *h = mt->help; *h; h++) {
        if (*h == '\\')
            mr_strbuf_printf(b, "\\\\");
        else if (*h == '\n')
            mr_strbuf_printf(b, "\\n");
        else
            mr_strbuf_printf(b, "%c", *h);
    }
    mr_strbuf_printf(b, "\n# TYPE %s %s\n", mt->name,
              mt->type == METRIC_COUNTER ? "counter" : "histogram");
}

char *mr_http_metrics_render(mr_http_metrics *m)
{
    mr_strbuf b = {0};
    mr_strbuf_puts(&b, "");
    pthread_mutex_lock(&m->lock);
    for (const metric *mt = m->first; mt; mt = mt->next) {
        help_render(&b, mt);
        for (const series *s = mt->first; s; s = s->next) {
            if (mt->type == METRIC_COUNTER) {
                sample_open(&b, mt->name, "", s->labels, NULL);
                mr_strbuf_printf(&b, " %.15g\n", atomic_load_explicit(&s->value, memory_order_relaxed));
                continue;
            }
            uint64_t cumulative = 0;
            for (size_t i = 0; i <= mt->nbounds; i++) {
                char le[48];
                if (i < mt->nbounds)
                    snprintf(le, sizeof le, "le=\"%.15g\"", mt->bounds[i]);
                else
                    snprintf(le, sizeof le, "le=\"+Inf\"");
                cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
                sample_open(&b, mt->name, "_bucket", s->labels, le);
                mr_strbuf_printf(&b, " %llu\n", (unsigned long long)cumulative);
            }
            sample_open(&b, mt->name, "_sum", s->labels, NULL);
            mr_strbuf_printf(&b, " %.15g\n", atomic_load_explicit(&s->value, memory_order_relaxed));
            sample_open(&b, mt->name, "_count", s->labels, NULL);
            mr_strbuf_printf(&b, " %llu\n",
                             (unsigned long long)atomic_load_explicit(&s->count, memory_order_relaxed));
        }
    }
    pthread_mutex_unlock(&m->lock);
    return mr_strbuf_take(&b);
}
