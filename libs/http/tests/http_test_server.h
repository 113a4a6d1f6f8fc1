/* http_test_server.h -- the loopback server the client tests talk to: their handler on a free
 * port, and the lock and condition its handlers wait on until the test lets them go on. */
#ifndef MINDROOM_HTTP_TEST_SERVER_H
#define MINDROOM_HTTP_TEST_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "mindroom/http.h"

typedef struct http_test_server {
    mr_http_server *srv;
    char base[64]; /* http://127.0.0.1:<port> */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} http_test_server;

/* 0 once handler (with ctx) serves on 127.0.0.1 and base names it; -1 when it cannot start. */
static inline int http_test_server_start(http_test_server *s, mr_http_handler handler, void *ctx)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    mr_http_server_opts o = {.listen = "127.0.0.1:0"};
    if (mr_http_server_start(&o, handler, ctx, &s->srv, NULL) != MR_OK)
        return -1;
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", mr_http_server_port(s->srv));
    return 0;
}

/* Sets *flag under the lock and wakes every handler waiting on it. */
static inline void http_test_server_set(http_test_server *s, bool *flag)
{
    pthread_mutex_lock(&s->lock);
    *flag = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static inline void http_test_server_stop(http_test_server *s)
{
    mr_http_server_stop(s->srv);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
}

#endif
