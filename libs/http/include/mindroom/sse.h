/* sse.h -- a parser for server-sent events (the WHATWG text/event-stream format) fed bytes as
 * they arrive: the model's streamed answers and MCP's streamable HTTP both speak it. */
#ifndef MINDROOM_SSE_H
#define MINDROOM_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "mindroom/err.h"
#include "mindroom/str.h"

/* One dispatched event: its type ("message" when the stream named none) and its data lines
 * joined by '\n'. A code other than MR_OK stops the parser and is returned by feed. */
typedef mr_code (*mr_sse_fn)(void *ctx, const char *event, const char *data, size_t len, mr_err *err);

typedef struct mr_sse {
    mr_sse_fn on_event;
    void *ctx;
    size_t max;          /* longest line and longest event data */
    mr_strbuf line;      /* the line being read */
    mr_strbuf data;      /* data lines of the event being read */
    bool has_data;       /* a data field was seen (it may be empty) */
    char event[64];      /* the event field, "" when unset */
    bool after_cr;       /* the last byte was CR: a following LF belongs to it */
} mr_sse;

void mr_sse_init(mr_sse *p, size_t max, mr_sse_fn on_event, void *ctx);
/* Feeds bytes as they arrive, in pieces of any size; calls on_event for each complete event.
 * MR_EINVAL when a line or an event exceeds max. A half-read event at the end of the stream
 * is dropped, as the format says. */
mr_code mr_sse_feed(mr_sse *p, const char *buf, size_t len, mr_err *err);
void mr_sse_free(mr_sse *p);

#endif
