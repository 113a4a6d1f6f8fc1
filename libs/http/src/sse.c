/* sse.c -- the server-sent events parser (mindroom/sse.h). */
#include "mindroom/sse.h"

#include <stdlib.h>
#include <string.h>

void mr_sse_init(mr_sse *p, size_t max, mr_sse_fn on_event, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->max = max;
    p->on_event = on_event;
    p->ctx = ctx;
}

void mr_sse_free(mr_sse *p)
{
    mr_strbuf_free(&p->line);
    mr_strbuf_free(&p->data);
    memset(p, 0, sizeof *p);
}

static mr_code dispatch(mr_sse *p, mr_err *err)
{
    if (!p->has_data) {
        p->event[0] = '\0';
        return MR_OK;
    }
    /* Every data line was stored with a '\n' after it; the last one is not part of the data. */
    size_t n = p->data.len ? p->data.len - 1 : 0;
    if (p->data.s)
        p->data.s[n] = '\0';
    mr_code rc = p->on_event(p->ctx, p->event[0] ? p->event : "message", p->data.s ? p->data.s : "",
                             n, err);
    p->data.len = 0;
    p->has_data = false;
    p->event[0] = '\0';
    return rc;
}

/* One complete line, without its terminator. */
static mr_code take_line(mr_sse *p, mr_err *err)
{
    const char *line = p->line.s ? p->line.s : "";
    size_t len = p->line.len;
    p->line.len = 0;
    if (len == 0)
        return dispatch(p, err);
    if (line[0] == ':')
        return MR_OK;   /* a comment, often sent as a keep-alive */
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    if (colon && *value == ' ')
        value++;
    size_t value_len = (size_t)(line + len - value);
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        if (p->data.len + value_len + 1 > p->max)
            return mr_err_set(err, MR_EINVAL, "event stream: event data longer than %zu bytes",
                              p->max);
        if (!mr_strbuf_add(&p->data, value, value_len) || !mr_strbuf_add(&p->data, "\n", 1))
            return mr_err_set(err, MR_ENOMEM, "event stream: out of memory");
        p->has_data = true;
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        size_t n = value_len < sizeof p->event - 1 ? value_len : sizeof p->event - 1;
        memcpy(p->event, value, n);
        p->event[n] = '\0';
    }
    /* id and retry only matter to a reconnecting browser; unknown fields are ignored. */
    return MR_OK;
}

mr_code mr_sse_feed(mr_sse *p, const char *buf, size_t len, mr_err *err)
{
    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];
        if (ch == '\n' && p->after_cr) {
            p->after_cr = false;
            continue;
        }
        p->after_cr = ch == '\r';
        if (ch == '\r' || ch == '\n') {
            mr_code rc = take_line(p, err);
            if (rc != MR_OK)
                return rc;
            continue;
        }
        /* Copy the run up to the next terminator in one go. */
        size_t j = i;
        while (j < len && buf[j] != '\r' && buf[j] != '\n')
            j++;
        if (p->line.len + (j - i) > p->max)
            return mr_err_set(err, MR_EINVAL, "event stream: line longer than %zu bytes", p->max);
        if (!mr_strbuf_add(&p->line, buf + i, j - i))
            return mr_err_set(err, MR_ENOMEM, "event stream: out of memory");
        i = j - 1;
    }
    return MR_OK;
}
