/* stub_answer.c -- what the stub answers and how: the default answer rules (echo, tool result,
 * router choice), and the answer as one chat.completion or as chat.completion.chunk events. */
#include "stub.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mindroom/clock.h"

/* Argument text is streamed in pieces this long (at most), as models stream it in tokens. */
#define ARG_PIECE 7

/* ---- reading the request ---- */

/* The text of a message's content: a string, or the text parts of an array of parts. */
static char *content_text(json_t *content)
{
    if (json_is_string(content))
        return strdup(json_string_value(content));
    size_t len = 0, i;
    json_t *part;
    json_array_foreach(content, i, part)
        len += json_string_length(json_object_get(part, "text"));
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    out[0] = '\0';
    json_array_foreach(content, i, part) {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (t)
            strcat(out, t);
    }
    return out;
}

static const char *role_of(json_t *msg)
{
    const char *r = json_string_value(json_object_get(msg, "role"));
    return r ? r : "";
}

/* The router rule: the first line of a system message that reads "- NAME" or "- NAME: ...",
 * NAME being letters, digits, '_', '.' or '-', with an optional leading '@'. */
static bool first_candidate(const char *text, char *out, size_t cap)
{
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        if (line[0] == '-' && line[1] == ' ') {
            const char *p = line + 2 + (line[2] == '@');
            size_t n = 0;
            while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '.' || p[n] == '-')
                n++;
            char after = p[n];
            if (n > 0 && n < cap && (after == ':' || after == '\n' || after == '\r' || !after)) {
                memcpy(out, p, n);
                out[n] = '\0';
                return true;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    return false;
}

/* The entity_name property of a json_schema response_format, or NULL. */
static json_t *entity_name_schema(json_t *body)
{
    json_t *rf = json_object_get(body, "response_format");
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!type || strcmp(type, "json_schema") != 0)
        return NULL;
    json_t *schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
    return json_object_get(json_object_get(schema, "properties"), "entity_name");
}

static char *router_answer(json_t *body, json_t *prop)
{
    char name[128] = "";
    const char *why = "no candidate found";
    const char *first_enum = json_string_value(json_array_get(json_object_get(prop, "enum"), 0));
    if (first_enum) {
        snprintf(name, sizeof name, "%s", first_enum);
        why = "first value of the entity_name enum";
    } else {
        size_t i;
        json_t *msg;
        json_array_foreach(json_object_get(body, "messages"), i, msg) {
            if (strcmp(role_of(msg), "system") != 0 && strcmp(role_of(msg), "developer") != 0)
                continue;
            char *text = content_text(json_object_get(msg, "content"));
            bool found = text && first_candidate(text, name, sizeof name);
            free(text);
            if (found) {
                why = "first candidate listed in the system message";
                break;
            }
        }
    }
    json_t *answer = json_pack("{s:s, s:s}", "entity_name", name, "reasoning", why);
    char *out = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);
    return out;
}

/* The answer a request gets when no script says otherwise; caller frees. */
static char *default_answer(json_t *body)
{
    json_t *prop = entity_name_schema(body);
    if (prop)
        return router_answer(body, prop);
    json_t *msgs = json_object_get(body, "messages");
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    const char *prefix = "Echo: ";
    json_t *from = NULL;
    if (strcmp(role_of(last), "tool") == 0) {
        prefix = "Tool result: ";
        from = last;
    } else {
        for (size_t i = json_array_size(msgs); i-- > 0 && !from;)
            if (strcmp(role_of(json_array_get(msgs, i)), "user") == 0)
                from = json_array_get(msgs, i);
    }
    char *text = from ? content_text(json_object_get(from, "content")) : strdup("");
    if (!text)
        return NULL;
    size_t n = strlen(prefix) + strlen(text) + 1;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s", prefix, text);
    free(text);
    return out;
}

/* ---- usage ---- */

static long words(const char *s)
{
    long n = 0;
    for (bool in = false; s && *s; s++) {
        bool space = isspace((unsigned char)*s);
        if (!space && !in)
            n++;
        in = !space;
    }
    return n;
}

/* Token counts are word counts: deterministic, which is all a test needs. */
static json_t *usage(json_t *body, const char *text, json_t *calls)
{
    long prompt = 0, completion = words(text);
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(body, "messages"), i, v) {
        char *t = content_text(json_object_get(v, "content"));
        prompt += words(t);
        free(t);
    }
    json_array_foreach(calls, i, v)
        completion += words(json_string_value(json_object_get(v, "arguments")));
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                     (json_int_t)completion, "total_tokens", (json_int_t)(prompt + completion));
}

/* ---- the answer as one object ---- */

static json_t *calls_json(json_t *calls)
{
    json_t *out = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
        json_array_append_new(out, json_pack("{s:O, s:s, s:{s:O, s:O}}", "id",
                                             json_object_get(c, "id"), "type", "function",
                                             "function", "name", json_object_get(c, "name"),
                                             "arguments", json_object_get(c, "arguments")));
    return out;
}

/* What every answer object starts with. */
typedef struct answer {
    char id[48];
    const char *model;
    json_int_t created;
    const char *text;        /* NULL: no content */
    json_t *calls;           /* NULL: no tool calls */
    const char *finish;
    json_t *usage;
} answer;

static json_t *completion(const answer *a)
{
    json_t *msg = json_pack("{s:s, s:o, s:n}", "role", "assistant", "content",
                            a->text ? json_string(a->text) : json_null(), "refusal");
    if (a->calls)
        json_object_set_new(msg, "tool_calls", calls_json(a->calls));
    return json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}], s:O}", "id", a->id,
                     "object", "chat.completion", "created", a->created, "model", a->model,
                     "choices", "index", 0, "message", msg, "logprobs", "finish_reason",
                     a->finish, "usage", a->usage);
}

/* ---- the answer as events ---- */

typedef struct events {
    char **v;
    size_t *chars;           /* characters of answer text each event carries (for pacing) */
    size_t n;
    bool with_usage;         /* stream_options.include_usage: every chunk has "usage" */
} events;

static void push(events *ev, const char *data)
{
    size_t n = strlen(data) + 9;
    char *e = malloc(n);
    char **v = realloc(ev->v, (ev->n + 1) * sizeof *v);
    if (v)
        ev->v = v;
    size_t *chars = v ? realloc(ev->chars, (ev->n + 1) * sizeof *chars) : NULL;
    if (chars)
        ev->chars = chars;
    if (!e || !v || !chars) {
        free(e);
        return;
    }
    snprintf(e, n, "data: %s\n\n", data);
    ev->v[ev->n] = e;
    ev->chars[ev->n++] = 0;
}

/* One chat.completion.chunk with these choices (taken); usage is set on every chunk when
 * it was asked for: null but in the last. */
static void push_object(events *ev, const answer *a, json_t *choices, json_t *usage)
{
    json_t *chunk = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", a->id, "object",
                              "chat.completion.chunk", "created", a->created, "model", a->model,
                              "choices", choices);
    if (ev->with_usage)
        json_object_set(chunk, "usage", usage ? usage : json_null());
    char *text = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    if (text)
        push(ev, text);
    free(text);
}

/* A chunk with one choice carrying delta (taken; nothing is sent when it is NULL). */
static void push_chunk(events *ev, const answer *a, json_t *delta, const char *finish)
{
    if (!delta)
        return;
    push_object(ev, a, json_pack("[{s:i, s:o, s:n, s:o}]", "index", 0, "delta", delta,
                                 "logprobs", "finish_reason",
                                 finish ? json_string(finish) : json_null()),
                NULL);
}

static size_t code_points(const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}

static void push_text(events *ev, const answer *a)
{
    const char *t = a->text;
    size_t n = strlen(t);
    /* Word by word, each piece carrying the spaces before it, like a tokenizer would. */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && t[j] == ' ')
            j++;
        while (j < n && t[j] != ' ')
            j++;
        json_t *piece = json_stringn(t + i, j - i);
        size_t before = ev->n;
        push_chunk(ev, a, json_pack("{s:o}", "content", piece), NULL);
        if (ev->n > before)
            ev->chars[ev->n - 1] = code_points(t + i, j - i);
        i = j;
    }
}

static void push_calls(events *ev, const answer *a)
{
    size_t i;
    json_t *c;
    json_array_foreach(a->calls, i, c) {
        push_chunk(ev, a, json_pack("{s:[{s:i, s:O, s:s, s:{s:O, s:s}}]}", "tool_calls",
                                    "index", (int)i, "id", json_object_get(c, "id"), "type",
                                    "function", "function", "name", json_object_get(c, "name"),
                                    "arguments", ""),
                   NULL);
        const char *args = json_string_value(json_object_get(c, "arguments"));
        size_t n = strlen(args);
        for (size_t at = 0; at < n;) {
            size_t end = at + ARG_PIECE < n ? at + ARG_PIECE : n;
            /* Never split a UTF-8 sequence: each piece must be a valid JSON string. */
            while (end < n && ((unsigned char)args[end] & 0xC0) == 0x80)
                end++;
            push_chunk(ev, a, json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", (int)i,
                                        "function", "arguments",
                                        json_stringn(args + at, end - at)),
                       NULL);
            at = end;
        }
    }
}

/* The events of a stream that fails after `keep` of them with OpenAI's error event. */
static void fail_stream(events *ev, const answer *a, json_t *error)
{
    size_t keep = (size_t)json_integer_value(json_object_get(error, "after_chunks"));
    while (ev->n > keep)
        free(ev->v[--ev->n]);
    int status = (int)json_integer_value(json_object_get(error, "status"));
    json_t *body = stub_default_error(status, error, a->model);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text)
        push(ev, text);
    free(text);
}

static events stream_events(const answer *a, bool with_usage)
{
    events ev = {.with_usage = with_usage};
    push_chunk(&ev, a, json_pack("{s:s, s:o}", "role", "assistant", "content",
                                 a->text ? json_string("") : json_null()),
               NULL);
    if (a->text)
        push_text(&ev, a);
    if (a->calls)
        push_calls(&ev, a);
    push_chunk(&ev, a, json_object(), a->finish);
    if (with_usage)
        push_object(&ev, a, json_array(), a->usage);
    push(&ev, "[DONE]");
    return ev;
}

/* ---- sending events ---- */

typedef struct sse_out {
    stub *s;
    events ev;
    size_t next, off;        /* the event being sent and how much of it went */
    size_t stall_at;         /* events sent before the stall (never, if there are fewer) */
    stub_script stall;       /* its stall_ms and hold: the pause there (none: no pause) */
    bool close_after_stall;  /* cut the connection at stall_at */
    bool stall_done;
    long chars_per_second;   /* 0: text as fast as it goes */
    long long due_us;        /* pacing: when the next text event is due (monotonic); 0 at start */
    size_t paced;            /* events whose pacing wait is done */
} sse_out;

/* Holds a text event back until its characters would have been written at chars_per_second,
 * counted from the previous one (or from now after a stall); false when the stub stops. */
static bool pace(sse_out *o)
{
    if (!o->chars_per_second || o->paced > o->next || !o->ev.chars[o->next])
        return true;
    o->paced = o->next + 1;
    long long now = mr_clock_mono_ms() * 1000;
    if (o->due_us < now)
        o->due_us = now;
    o->due_us += (long long)o->ev.chars[o->next] * 1000000 / o->chars_per_second;
    long wait_ms = (long)((o->due_us - now) / 1000);
    return wait_ms <= 0 || stub_sleep(o->s, wait_ms);
}

static long sse_next(void *ctx, char *buf, size_t cap)
{
    sse_out *o = ctx;
    if (o->next == o->stall_at && !o->stall_done) {
        o->stall_done = true;
        if (!stub_stall(o->s, &o->stall))
            return -1;
        if (o->close_after_stall)
            return -1;
    }
    if (o->next == o->ev.n)
        return 0;
    if (o->off == 0 && !pace(o))
        return -1;
    const char *e = o->ev.v[o->next] + o->off;
    size_t n = strlen(e);
    if (n > cap)
        n = cap;
    memcpy(buf, e, n);
    o->off += n;
    if (!o->ev.v[o->next][o->off]) {
        o->next++;
        o->off = 0;
    }
    return (long)n;
}

static void sse_done(void *ctx)
{
    sse_out *o = ctx;
    for (size_t i = 0; i < o->ev.n; i++)
        free(o->ev.v[i]);
    free(o->ev.v);
    free(o->ev.chars);
    free(o);
}

static mr_http_response *sse_response(sse_out *o)
{
    mr_http_response *r = mr_http_reply_stream(200, "text/event-stream; charset=utf-8", sse_next,
                                               o, sse_done);
    mr_http_response_header(r, "Cache-Control", "no-cache");
    return r;
}

mr_http_response *stub_answer(stub *s, json_t *body, const stub_script *sc)
{
    bool stream = json_is_true(json_object_get(body, "stream"));
    /* A stall before the first byte (every stall, when not streaming) happens here, before
     * any header goes out. */
    if ((sc->stall_ms || sc->hold) && (!stream || sc->stall_after_chunks == 0)) {
        if (!stub_stall(s, sc))
            return stub_error(503, "The stub is stopping.", "server_error", NULL, NULL);
        if (sc->close_after_stall) {
            sse_out *cut = calloc(1, sizeof *cut);
            if (!cut)
                return NULL;
            cut->s = s;
            cut->close_after_stall = true;
            return sse_response(cut);
        }
    }
    /* With tool_choice "none" OpenAI's model answers in words, whatever it would have called. */
    const char *choice = json_string_value(json_object_get(body, "tool_choice"));
    json_t *calls = choice && strcmp(choice, "none") == 0 ? NULL : sc->tool_calls;
    char *dflt = sc->reply || calls ? NULL : default_answer(body);
    answer a = {.model = json_string_value(json_object_get(body, "model")),
                .created = (json_int_t)time(NULL), .text = sc->reply ? sc->reply : dflt,
                .calls = calls, .finish = calls ? "tool_calls" : "stop"};
    snprintf(a.id, sizeof a.id, "chatcmpl-stub%lu", stub_next_id(s));
    a.usage = usage(body, a.text, a.calls);
    mr_http_response *r;
    if (!stream) {
        r = mr_http_reply_json(200, completion(&a));
    } else {
        sse_out *o = calloc(1, sizeof *o);
        if (o) {
            json_t *opts = json_object_get(body, "stream_options");
            bool in_stream = sc->stall_after_chunks > 0;
            *o = (sse_out){.s = s,
                           .ev = stream_events(&a, json_is_true(json_object_get(opts,
                                                                               "include_usage"))),
                           .stall_at = (size_t)sc->stall_after_chunks,
                           .stall = {.stall_ms = in_stream ? sc->stall_ms : 0,
                                     .hold = in_stream ? sc->hold : 0},
                           .close_after_stall = in_stream && sc->close_after_stall,
                           .stall_done = !in_stream,
                           .chars_per_second = sc->chars_per_second};
            if (sc->error)
                fail_stream(&o->ev, &a, sc->error);
        }
        r = o ? sse_response(o) : NULL;
    }
    json_decref(a.usage);
    free(dflt);
    return r;
}
