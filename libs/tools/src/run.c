/* run.c -- running a round of tool calls side by side: one thread per call, a deadline for the
 * round, results cut to a size the model can take, and every failure turned into a result the
 * model reads, so a tool never stops an answer. */
#include "tools_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mindroom/clock.h"
#include "mindroom/thread_name.h"

/* How long past its deadline a call may take to stop by itself (a killed command, a curl
 * timeout) and report why, before it is abandoned. */
#define STOP_GRACE_MS 2000
#define TRUNCATED_NOTE "\n[output cut at %zu of %zu bytes]"

/* A call's copy of what it needs, so a call left running past its deadline reads nothing the
 * caller has freed. */
typedef struct job {
    struct round *round;
    const mr_tool_def *def;
    json_t *args;
    mr_tools_env env;
    char *strings[6];            /* the env strings this job owns */
    long long deadline_ms;
    mr_tools_send_fn send;       /* the caller's callbacks, reached only through job_send and */
    void *send_ctx;              /* job_schedule */
    mr_tools_schedule_fn schedule;
    void *schedule_ctx;
    bool abandoned;              /* past the deadline: the caller's send context may be gone */
    mr_strbuf out;
    mr_err err;
    mr_code rc;
    bool done;
} job;

/* Shared by the caller and the threads; the last one out frees it. */
typedef struct round {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int refs;
    size_t n;
    job *jobs;
} round;

static void round_unref(round *r)
{
    pthread_mutex_lock(&r->lock);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (!last)
        return;
    for (size_t i = 0; i < r->n; i++) {
        json_decref(r->jobs[i].args);
        free(r->jobs[i].out.s);
        for (size_t k = 0; k < sizeof r->jobs[i].strings / sizeof *r->jobs[i].strings; k++)
            free(r->jobs[i].strings[k]);
    }
    free(r->jobs);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The caller's send, unless the call was abandoned: the lock keeps the caller from returning
 * (and freeing what send_ctx points to) while a send is under way. */
static mr_code job_send(void *ctx, const char *room_id, const char *event_type, json_t *content, mr_err *err)
{
    job *j = ctx;
    pthread_mutex_lock(&j->round->lock);
    mr_code rc = j->abandoned ? mr_err_set(err, MR_EUNAVAIL, "out of time: the call was abandoned")
                              : j->send(j->send_ctx, room_id, event_type, content, err);
    pthread_mutex_unlock(&j->round->lock);
    return rc;
}

static mr_code job_schedule(void *ctx, const char *action, const char *when, const char *task, const char *id,
                            mr_strbuf *out, mr_err *err)
{
    job *j = ctx;
    pthread_mutex_lock(&j->round->lock);
    mr_code rc = j->abandoned ? mr_err_set(err, MR_EUNAVAIL, "out of time: the call was abandoned")
                              : j->schedule(j->schedule_ctx, action, when, task, id, out, err);
    pthread_mutex_unlock(&j->round->lock);
    return rc;
}

static void *job_main(void *arg)
{
    job *j = arg;
    mr_thread_name("tool-job");
    const mr_tool_def *d = j->def;
    j->rc = d->run ? d->run(&j->env, j->args, j->deadline_ms, &j->out, &j->err)
                   : d->run_bound(d->ctx, &j->env, j->args, j->deadline_ms, &j->out, &j->err);
    if (j->rc == MR_OK && j->out.failed)
        j->rc = mr_err_set(&j->err, MR_ENOMEM, "%s: out of memory writing the result", j->def->name);
    round *r = j->round;
    pthread_mutex_lock(&r->lock);
    j->done = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    round_unref(r);
    return NULL;
}

static bool copy_str(job *j, int slot, const char *in, const char **out)
{
    *out = NULL;
    if (!in)
        return true;
    j->strings[slot] = strdup(in);
    *out = j->strings[slot];
    return *out != NULL;
}

static bool copy_env(job *j, const mr_tools_env *env)
{
    j->env = *env;
    j->send = env->send;
    j->send_ctx = env->send_ctx;
    j->env.send = env->send ? job_send : NULL;
    j->env.send_ctx = j;
    j->schedule = env->schedule;
    j->schedule_ctx = env->schedule_ctx;
    j->env.schedule = env->schedule ? job_schedule : NULL;
    j->env.schedule_ctx = j;
    return copy_str(j, 0, env->entity, &j->env.entity) && copy_str(j, 1, env->requester, &j->env.requester) &&
           copy_str(j, 2, env->room_id, &j->env.room_id) && copy_str(j, 3, env->thread_root, &j->env.thread_root) &&
           copy_str(j, 4, env->data_dir, &j->env.data_dir) && copy_str(j, 5, env->workspace, &j->env.workspace);
}

/* The model's result text: the output cut to max bytes (at a character boundary) with a note. */
static char *bounded(const char *text, size_t len, size_t max)
{
    if (len <= max)
        return strndup(text, len);
    size_t cut = max;
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
        cut--;
    mr_strbuf b = {0};
    mr_strbuf_add(&b, text, cut);
    char *note = mr_str_printf(TRUNCATED_NOTE, cut, len);
    mr_strbuf_puts(&b, note ? note : "");
    free(note);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static void set_error(mr_tools_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(mr_tools_call *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(c->result);
    c->result = mr_str_vprintf(fmt, ap);
    c->failed = true;
    va_end(ap);
}

/* Why a call cannot start: an unknown tool, or arguments that are not a JSON object. */
static json_t *parse_args(mr_tools_call *c)
{
    if (!c->def) {
        set_error(c, "error: there is no tool named '%s'", c->name ? c->name : "");
        return NULL;
    }
    json_error_t je;
    json_t *args = json_loads(c->arguments && *c->arguments ? c->arguments : "{}", JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(args)) {
        json_decref(args);
        set_error(c, "error: %s: the arguments must be a JSON object (%s)", c->def->name,
                  je.text[0] ? je.text : "another JSON type");
        return NULL;
    }
    return args;
}

mr_code mr_tools_run(const mr_tools_env *env, mr_tools_call *calls, size_t n, mr_err *err)
{
    long timeout = env->timeout_ms > 0 ? env->timeout_ms : MR_TOOLS_TIMEOUT_MS;
    size_t max = env->max_output > 0 ? env->max_output : MR_TOOLS_OUTPUT_MAX;
    round *r = calloc(1, sizeof *r);
    job *jobs = calloc(n + 1, sizeof *jobs);
    if (!r || !jobs) {
        free(r);
        free(jobs);
        return mr_err_set(err, MR_ENOMEM, "out of memory running %zu tool calls", n);
    }
    pthread_condattr_t ca;
    /* The deadline is on the monotonic clock: a wall-clock step must not stretch or cut it. */
    bool sync = pthread_condattr_init(&ca) == 0;
    sync = sync && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_mutex_init(&r->lock, NULL) == 0;
    if (sync && pthread_cond_init(&r->cond, &ca) != 0) {
        pthread_mutex_destroy(&r->lock);
        sync = false;
    }
    pthread_condattr_destroy(&ca);
    if (!sync) {
        free(r);
        free(jobs);
        return mr_err_set(err, MR_EINTERNAL, "cannot set up the wait for %zu tool calls", n);
    }
    r->refs = 1;
    r->n = n;
    r->jobs = jobs;
    long long deadline = mr_clock_mono_ms() + timeout;
    mr_code rc = MR_OK;
    for (size_t i = 0; i < n; i++) {
        mr_tools_call *c = &calls[i];
        c->result = NULL;
        c->failed = false;
        job *j = &jobs[i];
        j->round = r;
        j->def = c->def;
        j->deadline_ms = deadline;
        j->done = true;          /* until a thread runs it */
        if (!(j->args = parse_args(c)))
            continue;
        pthread_t th;
        pthread_attr_t attr;
        bool ok = copy_env(j, env) && pthread_attr_init(&attr) == 0;
        if (ok && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0) {
            pthread_attr_destroy(&attr);
            ok = false;
        }
        if (ok) {
            j->done = false;
            pthread_mutex_lock(&r->lock);
            r->refs++;
            pthread_mutex_unlock(&r->lock);
            int e = pthread_create(&th, &attr, job_main, j);
            pthread_attr_destroy(&attr);
            if (e != 0) {
                pthread_mutex_lock(&r->lock);
                r->refs--;
                j->done = true;
                pthread_mutex_unlock(&r->lock);
                ok = false;
            }
        }
        if (!ok) {
            set_error(c, "error: %s: could not start the call (out of memory or threads)", c->def->name);
            rc = mr_err_set(err, MR_ENOMEM, "%s: could not start a tool call", c->def->name);
        }
    }
    /* Waits for every call, or for the deadline. */
    long long wait_until = deadline + STOP_GRACE_MS;
    struct timespec until = {.tv_sec = wait_until / 1000, .tv_nsec = (wait_until % 1000) * 1000000L};
    pthread_mutex_lock(&r->lock);
    for (;;) {
        bool all = true;
        for (size_t i = 0; i < n && all; i++)
            all = jobs[i].done;
        if (all || pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        mr_tools_call *c = &calls[i];
        job *j = &jobs[i];
        if (c->result || !c->def)
            continue;
        char secs[32];
        snprintf(secs, sizeof secs, "%.1f", timeout / 1000.0);
        j->abandoned = !j->done;
        if (!j->done)
            set_error(c, "error: %s: no result within %s seconds; the call was abandoned", c->def->name, secs);
        else if (j->rc != MR_OK)
            set_error(c, "error: %s", j->err.msg);
        else if (!(c->result = bounded(j->out.s ? j->out.s : "", j->out.len, max)))
            set_error(c, "error: %s: out of memory reading the result", c->def->name);
    }
    pthread_mutex_unlock(&r->lock);
    round_unref(r);
    for (size_t i = 0; i < n; i++)
        if (!calls[i].result)
            rc = mr_err_set(err, MR_ENOMEM, "out of memory writing the result of tool call %zu", i);
    return rc;
}

void mr_tools_calls_clear(mr_tools_call *calls, size_t n)
{
    for (size_t i = 0; calls && i < n; i++) {
        free(calls[i].result);
        calls[i].result = NULL;
    }
}
