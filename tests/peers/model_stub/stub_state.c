/* stub_state.c -- the stub's memory: scripted behaviours queued for the next requests, the log
 * of requests received, and sleeps that end when the stub stops. */
#include "stub.h"
#include "mindroom/clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void stub_init(stub *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->wake, NULL);
    s->requests = json_array();
}

void stub_script_clear(stub_script *sc)
{
    free(sc->reply);
    json_decref(sc->tool_calls);
    json_decref(sc->error);
    memset(sc, 0, sizeof *sc);
}

static void queue_clear(stub *s)
{
    for (size_t i = 0; i < s->n_queue; i++)
        stub_script_clear(&s->queue[i]);
    free(s->queue);
    s->queue = NULL;
    s->n_queue = 0;
}

void stub_free(stub *s)
{
    queue_clear(s);
    json_decref(s->requests);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->wake);
}

void stub_stop(stub *s)
{
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
}

bool stub_sleep(stub *s, long ms)
{
    struct timespec until = mr_clock_after_ms(CLOCK_REALTIME, ms);
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    while (!s->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->wake, &s->lock, &until);
    bool running = !s->stopping;
    pthread_mutex_unlock(&s->lock);
    return running;
}

/* A hold waits for a release that covers its ticket, so a release sent before the stream
 * reaches its hold still counts: the test need not know where the stream is. */
static bool hold(stub *s, unsigned long ticket)
{
    pthread_mutex_lock(&s->lock);
    s->held++;
    while (!s->stopping && s->released < ticket)
        pthread_cond_wait(&s->wake, &s->lock);
    s->held--;
    bool running = !s->stopping;
    pthread_mutex_unlock(&s->lock);
    return running;
}

bool stub_stall(stub *s, const stub_script *sc)
{
    return sc->hold ? hold(s, sc->hold) : stub_sleep(s, sc->stall_ms);
}

static int release_locked(stub *s)
{
    s->released = s->holds;
    pthread_cond_broadcast(&s->wake);
    return s->held;
}

int stub_held(stub *s, bool release)
{
    pthread_mutex_lock(&s->lock);
    int n = release ? release_locked(s) : s->held;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---- scripts ---- */

static bool fail(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return false;
}

static bool read_count(json_t *o, const char *key, long min, long *out, char *why, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return fail(why, cap, "script field '%s' must be a whole number in range", key);
    *out = (long)json_integer_value(v);
    return true;
}

/* [{"id", "name", "arguments"}] with arguments as text, whatever form they were given in. */
static json_t *tool_calls(json_t *spec, char *why, size_t cap)
{
    if (!json_is_array(spec) || json_array_size(spec) == 0) {
        fail(why, cap, "script field '%s' must be a non-empty array", "tool_calls");
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *tc;
    json_array_foreach(spec, i, tc) {
        const char *name = json_string_value(json_object_get(tc, "name"));
        json_t *args = json_object_get(tc, "arguments");
        const char *id = json_string_value(json_object_get(tc, "id"));
        if (!name || (args && !json_is_string(args) && !json_is_object(args))) {
            json_decref(out);
            fail(why, cap, "each of '%s' needs a string name and arguments as text or object",
                 "tool_calls");
            return NULL;
        }
        char *text = !args ? strdup("{}")
                     : json_is_string(args) ? strdup(json_string_value(args))
                                            : json_dumps(args, JSON_COMPACT);
        char idbuf[32];
        snprintf(idbuf, sizeof idbuf, "call_stub_%zu", i);
        json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "id", id ? id : idbuf, "name",
                                             name, "arguments", text ? text : "{}"));
        free(text);
    }
    return out;
}

static bool error_fields(json_t *spec, char *why, size_t cap)
{
    json_t *status = json_object_get(spec, "status");
    if (!json_is_object(spec) || !json_is_integer(status) || json_integer_value(status) < 400 ||
        json_integer_value(status) > 599)
        return fail(why, cap, "script field '%s' needs a status from 400 to 599", "error");
    static const char *const known[] = {"status", "message", "type", "param", "code",
                                        "retry_after", "retry_after_ms", "after_chunks",
                                        NULL};
    const char *key;
    json_t *v;
    json_object_foreach(spec, key, v) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], key) != 0)
            k++;
        if (!known[k])
            return fail(why, cap, "unknown field 'error.%s' in a script", key);
    }
    return true;
}

static bool parse_script(json_t *o, stub_script *sc, char *why, size_t cap)
{
    memset(sc, 0, sizeof *sc);
    if (!json_is_object(o))
        return fail(why, cap, "a script must be a JSON %s", "object");
    static const char *const known[] = {"times", "reply", "tool_calls", "error", "stall_ms",
                                        "stall_after_chunks", "close_after_stall", "chars_per_second",
                                        "hold", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        size_t k = 0;
        while (known[k] && strcmp(known[k], key) != 0)
            k++;
        if (!known[k])
            return fail(why, cap, "unknown script field '%s'", key);
    }
    long times = 1, stall = 0, after = 0, cps = 0;
    if (!read_count(o, "times", 1, &times, why, cap) ||
        !read_count(o, "stall_ms", 0, &stall, why, cap) ||
        !read_count(o, "stall_after_chunks", 0, &after, why, cap) ||
        !read_count(o, "chars_per_second", 1, &cps, why, cap))
        return false;
    sc->chars_per_second = cps;
    sc->times = (int)times;
    sc->stall_ms = stall;
    sc->stall_after_chunks = (int)after;
    sc->close_after_stall = json_is_true(json_object_get(o, "close_after_stall"));
    json_t *held = json_object_get(o, "hold");
    if (held && !json_is_boolean(held))
        return fail(why, cap, "script field '%s' must be true or false", "hold");
    if (json_is_true(held) && stall)
        return fail(why, cap, "a script gives '%s' or 'hold', not both", "stall_ms");
    sc->hold = json_is_true(held); /* the ticket is given when queued */
    json_t *reply = json_object_get(o, "reply");
    if (reply && !json_is_string(reply))
        return fail(why, cap, "script field '%s' must be a string", "reply");
    if (reply)
        sc->reply = strdup(json_string_value(reply));
    json_t *calls = json_object_get(o, "tool_calls");
    if (calls && !(sc->tool_calls = tool_calls(calls, why, cap))) {
        stub_script_clear(sc);
        return false;
    }
    json_t *error = json_object_get(o, "error");
    if (error && !error_fields(error, why, cap)) {
        stub_script_clear(sc);
        return false;
    }
    sc->error = json_incref(error);
    return true;
}

bool stub_script_add(stub *s, json_t *spec, char *why, size_t cap)
{
    size_t n = json_is_array(spec) ? json_array_size(spec) : 1;
    stub_script *parsed = calloc(n ? n : 1, sizeof *parsed);
    bool ok = parsed != NULL;
    size_t done = 0;
    for (; ok && done < n; done++)
        ok = parse_script(json_is_array(spec) ? json_array_get(spec, done) : spec,
                          &parsed[done], why, cap);
    pthread_mutex_lock(&s->lock);
    stub_script *q = ok ? realloc(s->queue, (s->n_queue + n) * sizeof *q) : NULL;
    if (q) {
        for (size_t i = 0; i < n; i++)
            if (parsed[i].hold)
                parsed[i].hold = ++s->holds;
        memcpy(q + s->n_queue, parsed, n * sizeof *q);
        s->queue = q;
        s->n_queue += n;
    }
    pthread_mutex_unlock(&s->lock);
    if (!q) {
        for (size_t i = 0; i < (ok ? n : done); i++)
            stub_script_clear(&parsed[i]);
    }
    free(parsed);
    return q != NULL;
}

static json_t *copy_or_null(json_t *v)
{
    return v ? json_deep_copy(v) : NULL;
}

bool stub_script_next(stub *s, stub_script *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->lock);
    bool found = s->n_queue > 0;
    if (found) {
        stub_script *head = &s->queue[0];
        *out = *head;
        out->reply = head->reply ? strdup(head->reply) : NULL;
        out->tool_calls = copy_or_null(head->tool_calls);
        out->error = copy_or_null(head->error);
        if (--head->times == 0) {
            stub_script_clear(head);
            memmove(s->queue, s->queue + 1, (s->n_queue - 1) * sizeof *s->queue);
            s->n_queue--;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

void stub_reset(stub *s)
{
    pthread_mutex_lock(&s->lock);
    queue_clear(s);
    json_array_clear(s->requests);
    release_locked(s);
    pthread_mutex_unlock(&s->lock);
}

void stub_record(stub *s, json_t *entry)
{
    pthread_mutex_lock(&s->lock);
    json_array_append_new(s->requests, entry);
    pthread_mutex_unlock(&s->lock);
}

json_t *stub_requests(stub *s)
{
    pthread_mutex_lock(&s->lock);
    json_t *copy = json_deep_copy(s->requests);
    pthread_mutex_unlock(&s->lock);
    return copy;
}

unsigned long stub_next_id(stub *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned long id = ++s->seq;
    pthread_mutex_unlock(&s->lock);
    return id;
}
