/* pipeline_proxy.h -- a timing proxy between MindRoom and the homeserver: it forwards every
 * request, and notes when each bench message ("bench-<i>") first reaches MindRoom in a sync
 * response and when the first complete reply to it ("Echo: bench-<i>...", not ending in the
 * streaming marker " ⋯") leaves MindRoom as a send (or an edit of one), and counts the answers to
 * each. */
#ifndef MINDROOM_BENCH_PIPELINE_PROXY_H
#define MINDROOM_BENCH_PIPELINE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

typedef struct pp_proxy pp_proxy;

/* Listens on a free loopback port (*port) and forwards to upstream ("http://127.0.0.1:N").
 * Messages are sent by `human` and numbered 0..cap-1. */
mr_code pp_proxy_start(const char *upstream, const char *human, size_t cap, pp_proxy **out,
                       int *port, mr_err *err);
/* Stop the homeserver first: requests in flight (long polls) are waited for. */
void pp_proxy_stop(pp_proxy *p);

/* Waits until the reply to message i has come in; false at deadline_ms (monotonic). */
bool pp_proxy_wait_reply(pp_proxy *p, size_t i, long long deadline_ms);
/* Monotonic nanoseconds of message i's first sync response out, and of its reply coming in;
 * 0 when not seen. */
long long pp_proxy_synced_ns(pp_proxy *p, size_t i);
long long pp_proxy_replied_ns(pp_proxy *p, size_t i);

/* Sends in reply to message i that are not edits (m.replace): 1 for an answer, more for
 * duplicates. */
int pp_proxy_answers(pp_proxy *p, size_t i);

long long pp_now_ns(void);

#endif
