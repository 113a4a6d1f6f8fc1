/* response.c -- building the responses handlers return: status, headers, body. */
#include "http_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A response around body (len bytes and a NUL, malloc'd), which it takes, also on failure. */
static mr_http_response *reply_taking(int status, const char *content_type, char *body, size_t len)
{
    mr_http_response *r = calloc(1, sizeof *r);
    if (!r) {
        free(body);
        return NULL;
    }
    r->status = status;
    r->body = body;
    r->len = len;
    r->content_type = strdup(content_type ? content_type : "application/octet-stream");
    if (!r->body || !r->content_type) {
        mr_http_response_free(r);
        return NULL;
    }
    return r;
}

mr_http_response *mr_http_reply(int status, const char *content_type, const void *body,
                                 size_t len)
{
    char *copy = malloc(len + 1);
    if (copy) {
        if (len)
            memcpy(copy, body, len);
        copy[len] = '\0';
    }
    return reply_taking(status, content_type, copy, len);
}

mr_http_response *mr_http_reply_stream(int status, const char *content_type,
                                       mr_http_stream_fn next, void *ctx,
                                       void (*done)(void *ctx))
{
    mr_http_response *r = mr_http_reply(status, content_type, "", 0);
    if (!r) {
        if (done)
            done(ctx);
        return NULL;
    }
    r->stream = next;
    r->stream_ctx = ctx;
    r->stream_done = done;
    return r;
}

mr_http_response *mr_http_reply_json(int status, json_t *body)
{
    /* The serialised text becomes the body as it is: answers such as forward auth's are made
     * on every request. */
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text ? reply_taking(status, "application/json", text, strlen(text)) : NULL;
}

/* value as jansson's json_dumps writes a string; false when it is not UTF-8, which jansson would
 * refuse. */
static bool put_json_string(mr_strbuf *b, const char *value)
{
    return mr_strbuf_add_json_string(b, value, strlen(value), true);
}

mr_http_response *mr_http_reply_json_strings(int status, const char *const *fields)
{
    mr_strbuf b = {0};
    bool ok = mr_strbuf_add(&b, "{", 1);
    for (size_t i = 0; ok && fields[i]; i += 2) {
        if (i)
            mr_strbuf_add(&b, ",", 1);
        ok = put_json_string(&b, fields[i]) && mr_strbuf_add(&b, ":", 1) &&
             (fields[i + 1] ? put_json_string(&b, fields[i + 1]) : mr_strbuf_add(&b, "null", 4));
    }
    if (!ok || !mr_strbuf_add(&b, "}", 1)) {
        mr_strbuf_free(&b);
        return NULL;
    }
    size_t len = b.len;
    return reply_taking(status, "application/json", mr_strbuf_take(&b), len);
}

mr_http_response *mr_http_reply_text(int status, const char *text)
{
    return mr_http_reply(status, "text/plain; charset=utf-8", text, strlen(text));
}

mr_http_response *mr_http_reply_error(int status, const char *errcode, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mr_http_reply_json(status, json_pack("{s:s, s:s}", "errcode", errcode, "error", msg));
}

bool mr_http_response_header(mr_http_response *r, const char *name, const char *value)
{
    if (!r || !mr_strbuf_add(&r->headers, name, strlen(name) + 1) ||
        !mr_strbuf_add(&r->headers, value, strlen(value) + 1))
        return false;
    r->nheaders++;
    return true;
}

int mr_http_response_status(const mr_http_response *r)
{
    return r ? r->status : 0;
}

mr_http_response http_later_reply;

mr_http_response *mr_http_reply_later(void)
{
    return &http_later_reply;
}

void mr_http_response_free(mr_http_response *r)
{
    if (!r || r == &http_later_reply)
        return;
    mr_strbuf_free(&r->headers);
    /* A stream never handed to the server still owns its context. */
    if (r->stream_done)
        r->stream_done(r->stream_ctx);
    free(r->body);
    free(r->content_type);
    free(r);
}
