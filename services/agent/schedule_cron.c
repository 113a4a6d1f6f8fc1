/* schedule_cron.c -- cron expressions for schedules: five fields (minute, hour, day of month,
 * month, day of week) with lists, ranges, steps and names, or an @macro, as Vixie cron reads
 * them; and the next time one matches, on the wall clock of a time zone. */
#include "agent_schedule.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DAY 86400LL
#define SEARCH_DAYS (366LL * 30) /* "29 2 *" on a fixed weekday can take decades: give up after 30 years */

typedef struct cron_field {
    const char *what;
    int lo, hi;
    const char *const *names; /* names[i] is the value lo + i... or NULL */
    int name_base;
} cron_field;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const cron_field fields[5] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day of month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 1},
    {"day of week", 0, 7, day_names, 0}, /* 7 is Sunday too */
};

static const struct { const char *name; const char *fields; } macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static bool read_value(const cron_field *f, const char **p, const char *end, int *out)
{
    const char *s = *p;
    if (s < end && isdigit((unsigned char)*s)) {
        int v = 0;
        while (s < end && isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        *out = v;
        *p = s;
        return true;
    }
    for (int i = 0; f->names && f->names[i]; i++)
        if (end - s >= 3 && strncasecmp(s, f->names[i], 3) == 0 && (end - s == 3 || !isalpha((unsigned char)s[3]))) {
            *out = f->name_base + i;
            *p = s + 3;
            return true;
        }
    return false;
}

/* One field (text .. end) into the bit set *bits. */
static mr_code parse_field(int idx, const char *text, const char *end, uint64_t *bits, mr_err *err)
{
    const cron_field *f = &fields[idx];
    int flen = (int)(end - text > 40 ? 40 : end - text);
    *bits = 0;
    for (const char *p = text; p <= end;) {
        const char *item = p;
        int lo = f->lo, hi = f->hi, step = 1;
        bool range = false;
        if (p < end && *p == '*') {
            p++;
            range = true;
        } else if (read_value(f, &p, end, &lo)) {
            hi = lo;
            if (p < end && *p == '-') {
                p++;
                if (!read_value(f, &p, end, &hi))
                    return mr_err_set(err, MR_EINVAL, "cron %s '%.*s': a range needs an end, as in 1-5", f->what,
                                      flen, text);
            }
            range = hi != lo;
        } else {
            return mr_err_set(err, MR_EINVAL, "cron %s '%.*s': expected a number%s, '*', a range or a list", f->what,
                              flen, text, f->names ? " or a name" : "");
        }
        if (p < end && *p == '/') {
            p++;
            if (!read_value(&(cron_field){f->what, 1, 0, NULL, 0}, &p, end, &step) || step < 1 || step > f->hi)
                return mr_err_set(err, MR_EINVAL, "cron %s '%.*s': a step is a number from 1 to %d", f->what, flen,
                                  text, f->hi);
            if (!range) /* "5/15": from 5 to the end, every 15 */
                hi = f->hi;
        }
        if (lo < f->lo || hi > f->hi || lo > hi)
            return mr_err_set(err, MR_EINVAL, "cron %s '%.*s': %d-%d is outside %d-%d or runs backwards", f->what,
                              (int)(p - item), item, lo, hi, f->lo, f->hi);
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << (idx == 4 && v == 7 ? 0 : v);
        if (p == end)
            break;
        if (*p != ',')
            return mr_err_set(err, MR_EINVAL, "cron %s '%.*s': unexpected '%c'", f->what, flen, text, *p);
        p++;
    }
    return MR_OK;
}

/* Whether the day-of-month field can ever match in the months named (30 February cannot). */
static bool dom_possible(const cron_expr *c)
{
    for (int m = 1; m <= 12; m++)
        if (c->month & (1u << m))
            for (int d = 1; d <= (m == 2 ? 29 : mr_tz_month_days(2001, m)); d++)
                if (c->dom & (1u << d))
                    return true;
    return false;
}

mr_code cron_parse(const char *text, cron_expr *out, size_t *used, mr_err *err)
{
    memset(out, 0, sizeof *out);
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *src = p;
    if (*p == '@') {
        size_t n = 0;
        while (p[n] && !isspace((unsigned char)p[n]) && p[n] != ',')
            n++;
        for (size_t i = 0; i < sizeof macros / sizeof *macros; i++)
            if (strlen(macros[i].name) == n && strncasecmp(p, macros[i].name, n) == 0) {
                size_t ignored;
                mr_code rc = cron_parse(macros[i].fields, out, &ignored, err);
                snprintf(out->text, sizeof out->text, "%s", macros[i].name);
                *used = (size_t)(p + n - text);
                return rc;
            }
        return mr_err_set(err, MR_EINVAL, "cron '%.*s' is not one of @hourly, @daily, @weekly, @monthly, @yearly",
                          (int)(n > 20 ? 20 : n), p);
    }
    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (i == 4 && p > start && p[-1] == ',') /* "0 9 * * 1-5, water the plants" */
            p--;
        if (p == start)
            return mr_err_set(err, MR_EINVAL, "cron needs five fields (minute hour day-of-month month day-of-week), "
                                              "as in 30 8 * * 1-5; the %s is missing", fields[i].what);
        mr_code rc = parse_field(i, start, p, &bits[i], err);
        if (rc != MR_OK)
            return rc;
        if (i == 2)
            out->dom_any = *start == '*';
        if (i == 4)
            out->dow_any = *start == '*';
    }
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    out->dow = (uint8_t)bits[4];
    if ((size_t)(p - src) >= sizeof out->text)
        return mr_err_set(err, MR_EINVAL, "cron '%.40s...' is too long: write it in at most %zu characters", src,
                          sizeof out->text - 1);
    /* Vixie cron: with both day fields restricted either may match, and the weekday always will. */
    if (!out->dom_any && out->dow_any && !dom_possible(out))
        return mr_err_set(err, MR_EINVAL, "cron '%.*s' never fires: none of its months has a day it names",
                          (int)(p - src), src);
    snprintf(out->text, sizeof out->text, "%.*s", (int)(p - src), src);
    *used = (size_t)(p - text);
    return MR_OK;
}

static bool day_matches(const cron_expr *c, int dom, int dow)
{
    bool d = c->dom & (1u << dom), w = c->dow & (1u << dow);
    if (c->dom_any || c->dow_any)
        return d && w;
    return d || w;
}

long long cron_next(const cron_expr *c, const mr_tz *tz, long long after_s)
{
    long long local = after_s + mr_tz_offset(tz, after_s);
    long long minute = (local >= 0 ? local / 60 : (local - 59) / 60) + 1; /* the next whole local minute */
    long long day = minute >= 0 ? minute / 1440 : (minute - 1439) / 1440;
    int from = (int)(minute - day * 1440);
    for (long long n = 0; n < SEARCH_DAYS; n++, day++, from = 0) {
        int y, m, d;
        mr_tz_civil_from_days(day, &y, &m, &d);
        if (!(c->month & (1u << m)) || !day_matches(c, d, mr_tz_weekday(day)))
            continue;
        for (int min = from; min < 1440; min++) {
            if (!(c->hour & (1u << (min / 60)))) {
                min = min / 60 * 60 + 59;
                continue;
            }
            if (!(c->minute & (1ULL << (min % 60))))
                continue;
            long long at = mr_tz_instant(tz, day * DAY + min * 60LL, after_s);
            if (at >= 0)
                return at;
        }
    }
    return -1;
}
