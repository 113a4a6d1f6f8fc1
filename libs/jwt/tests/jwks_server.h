/* jwks_server.h -- a JWKS endpoint on loopback (libmicrohttpd) whose answer a test sets and
 * whose requests it counts. Failures abort the test. */
#ifndef MINDROOM_JWT_JWKS_SERVER_H
#define MINDROOM_JWT_JWKS_SERVER_H

#include <stdbool.h>

typedef struct jwks_server jwks_server;

/* Listens on 127.0.0.1 on a port the kernel picks; answers 503 until js_set. */
jwks_server *js_start(void);
/* Stops listening (requests then fail to connect); the URL stays as it was. */
void js_stop(jwks_server *s);
void js_free(jwks_server *s);

/* What every GET answers from now on: status and body (copied). */
void js_set(jwks_server *s, int status, const char *body);
/* Holds each answer back this long, so that concurrent verifiers pile up behind one fetch. */
void js_set_delay_ms(jwks_server *s, int ms);
/* From js_hold on, every request waits unanswered (a JWKS server that stalls) until js_release
 * (js_stop and js_free release too). js_wait_held: false unless n requests wait within 20 s. */
void js_hold(jwks_server *s);
void js_release(jwks_server *s);
bool js_wait_held(jwks_server *s, unsigned n);
unsigned js_requests(jwks_server *s);
const char *js_url(jwks_server *s); /* "http://127.0.0.1:<port>/jwks.json" */

#endif
