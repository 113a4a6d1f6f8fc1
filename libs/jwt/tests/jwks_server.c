/* jwks_server.c -- a JWKS endpoint on loopback for the tests, on libmicrohttpd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>

#include "jwks_server.h"
#include "mindroom/clock.h"

struct jwks_server {
    struct MHD_Daemon *daemon;
    char url[64];
    pthread_mutex_t mu;
    pthread_cond_t changed;
    bool holding;
    unsigned held;
    int status;
    char *body;
    int delay_ms;
    unsigned requests;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    jwks_server *s = cls;
    pthread_mutex_lock(&s->mu);
    s->requests++;
    if (s->holding) {
        s->held++;
        pthread_cond_broadcast(&s->changed);
        while (s->holding)
            pthread_cond_wait(&s->changed, &s->mu);
        s->held--;
    }
    int status = s->status;
    char *body = strdup(s->body);
    int delay_ms = s->delay_ms;
    pthread_mutex_unlock(&s->mu);
    mr_clock_sleep_ms(delay_ms);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return rc;
}

jwks_server *js_start(void)
{
    jwks_server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, NULL);
    s->status = 503;
    s->body = strdup("{}");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                                 answer, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_END);
    assert_non_null(s->daemon);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u/jwks.json", (unsigned)info->port);
    return s;
}

void js_stop(jwks_server *s)
{
    js_release(s);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

void js_free(jwks_server *s)
{
    js_stop(s);
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->mu);
    free(s->body);
    free(s);
}

void js_set(jwks_server *s, int status, const char *body)
{
    char *copy = strdup(body);
    assert_non_null(copy);
    pthread_mutex_lock(&s->mu);
    free(s->body);
    s->body = copy;
    s->status = status;
    pthread_mutex_unlock(&s->mu);
}

void js_set_delay_ms(jwks_server *s, int ms)
{
    pthread_mutex_lock(&s->mu);
    s->delay_ms = ms;
    pthread_mutex_unlock(&s->mu);
}

void js_hold(jwks_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->holding = true;
    pthread_mutex_unlock(&s->mu);
}

void js_release(jwks_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->holding = false;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
}

bool js_wait_held(jwks_server *s, unsigned n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->held < n && rc == 0)
        rc = pthread_cond_timedwait(&s->changed, &s->mu, &until);
    bool ok = s->held >= n;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

unsigned js_requests(jwks_server *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->requests;
    pthread_mutex_unlock(&s->mu);
    return n;
}

const char *js_url(jwks_server *s)
{
    return s->url;
}
