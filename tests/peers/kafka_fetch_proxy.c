/* kafka_fetch_proxy.c -- answers a waiting fetch when data arrives, in front of the mock brokers.
 *
 * librdkafka's mock broker holds a Fetch that finds no data for the request's whole MaxWait
 * (its handler says cutting the wait short "is too much of a hassle"), where a real broker
 * parks it and answers as soon as a produce makes data available (Kafka's DelayedFetch in the
 * fetch purgatory, completed by the append). Every hop of a message through services then
 * waited out a fetch. One relay per broker copies the real behaviour: it passes each request
 * on, a Fetch with MaxWait 0; an empty answer is held here and the fetch asked again after each
 * produce the broker acknowledges, until one finds data or MaxWait has passed since the
 * request came, and that answer goes back.
 *
 * A connection is served one request at a time, as a broker does (it mutes a connection until
 * the answer to its request is sent): what a client sends meanwhile waits in the socket.
 * Brokers advertise their own address in Metadata and FindCoordinator answers; the relay puts
 * its port for that broker in their place, so clients stay on the relays. The mock speaks
 * Metadata and FindCoordinator up to v2 and Fetch up to v11, none of them in the flexible
 * encoding, which is all that is parsed here.
 */
#define _GNU_SOURCE /* accept4 */
#include "kafka_fetch_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BROKERS 16
#define MAX_FRAME (64 * 1024 * 1024)
#define API_PRODUCE 0
#define API_FETCH 1
#define API_METADATA 3
#define API_FIND_COORDINATOR 10

typedef struct relay {
    int id;            /* broker id, 1..N */
    int listen_fd;
    int upstream_port; /* the mock broker's */
    int port;          /* ours */
    pthread_mutex_t mu;
    pthread_cond_t produced; /* broadcast after each produce this broker acknowledged */
    uint64_t produces;
} relay;

static relay relays[MAX_BROKERS];
static int n_relays;

typedef struct conn {
    relay *r;
    int client, upstream;
} conn;

/* Big-endian reads and writes within a frame; a read past the end sets *bad. */
typedef struct cursor {
    unsigned char *p;
    size_t len, at;
    bool bad;
} cursor;

static bool take(cursor *c, size_t n)
{
    if (c->bad || c->len - c->at < n) {
        c->bad = true;
        return false;
    }
    c->at += n;
    return true;
}

static int64_t get(cursor *c, size_t n)
{
    if (!take(c, n))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | c->p[c->at - n + i];
    /* Sign-extend: lengths of -1 mean null. */
    return n == 8 ? (int64_t)v : n == 4 ? (int32_t)v : n == 2 ? (int16_t)v : (int8_t)v;
}

static void put32(unsigned char *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (unsigned char)(u >> 24);
    p[1] = (unsigned char)(u >> 16);
    p[2] = (unsigned char)(u >> 8);
    p[3] = (unsigned char)u;
}

static int32_t get32_at(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static void skip_string(cursor *c)
{
    int64_t n = get(c, 2);
    if (n > 0)
        take(c, (size_t)n);
}

static bool read_all(int fd, void *buf, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static bool write_all(int fd, const void *buf, size_t n)
{
    for (size_t sent = 0; sent < n;) {
        ssize_t w = send(fd, (const char *)buf + sent, n - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        sent += (size_t)w;
    }
    return true;
}

/* One size-prefixed frame, the prefix included; NULL when the peer closed or sent nonsense. */
static unsigned char *read_frame(int fd, size_t *len)
{
    unsigned char head[4];
    if (!read_all(fd, head, 4))
        return NULL;
    int32_t n = get32_at(head);
    if (n < 0 || n > MAX_FRAME)
        return NULL;
    unsigned char *f = malloc((size_t)n + 4);
    if (!f)
        return NULL;
    memcpy(f, head, 4);
    if (!read_all(fd, f + 4, (size_t)n)) {
        free(f);
        return NULL;
    }
    *len = (size_t)n + 4;
    return f;
}

static relay *relay_by_upstream_port(int port)
{
    for (int i = 0; i < n_relays; i++)
        if (relays[i].upstream_port == port)
            return &relays[i];
    return NULL;
}

/* Puts our port in place of the mock broker's in one host/port pair at the cursor. */
static void swap_port(cursor *c)
{
    skip_string(c);
    if (!take(c, 4))
        return;
    relay *r = relay_by_upstream_port(get32_at(c->p + c->at - 4));
    if (r)
        put32(c->p + c->at - 4, r->port);
}

/* Metadata v0-v2: #brokers, then node id, host, port (and rack from v1) each. */
static void rewrite_metadata(unsigned char *f, size_t len, int version)
{
    cursor c = {f, len, 8, false}; /* after the size and the correlation id */
    int64_t n = get(&c, 4);
    for (int64_t i = 0; i < n && !c.bad; i++) {
        take(&c, 4);
        swap_port(&c);
        if (version >= 1)
            skip_string(&c);
    }
}

/* FindCoordinator v0-v2: [throttle, v1+] error, [message, v1+] node id, host, port. */
static void rewrite_coordinator(unsigned char *f, size_t len, int version)
{
    cursor c = {f, len, 8, false};
    take(&c, version >= 1 ? 6 : 2);
    if (version >= 1)
        skip_string(&c);
    take(&c, 4);
    swap_port(&c);
}

/* Whether a Fetch answer (v0-v11) carries no records and no error: only such an answer waits. */
static bool fetch_found_nothing(const unsigned char *f, size_t len, int version)
{
    cursor c = {(unsigned char *)f, len, 8, false};
    if (version >= 1)
        take(&c, 4); /* throttle */
    if (version >= 7) {
        if (get(&c, 2) != 0)
            return false;
        take(&c, 4); /* session */
    }
    int64_t topics = get(&c, 4);
    for (int64_t t = 0; t < topics && !c.bad; t++) {
        skip_string(&c);
        int64_t parts = get(&c, 4);
        for (int64_t p = 0; p < parts && !c.bad; p++) {
            take(&c, 4);
            if (get(&c, 2) != 0)
                return false;
            take(&c, 8); /* high watermark */
            if (version >= 4)
                take(&c, 8); /* last stable offset */
            if (version >= 5)
                take(&c, 8); /* log start offset */
            if (version >= 4) {
                int64_t aborted = get(&c, 4);
                if (aborted > 0)
                    take(&c, (size_t)aborted * 16);
            }
            if (version >= 11)
                take(&c, 4); /* preferred read replica */
            int64_t records = get(&c, 4);
            if (records > 0)
                return false;
        }
    }
    /* Unreadable: pass it on rather than hold it. */
    return !c.bad;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until the broker acknowledged a produce after `seen`, or until deadline (monotonic ms). */
static uint64_t wait_for_produce(relay *r, uint64_t seen, long long deadline)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long long left = deadline - now_ms();
    until.tv_sec += left / 1000;
    until.tv_nsec += (left % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&r->mu);
    while (r->produces == seen && pthread_cond_timedwait(&r->produced, &r->mu, &until) == 0) {
    }
    uint64_t now = r->produces;
    pthread_mutex_unlock(&r->mu);
    return now;
}

static uint64_t produces_so_far(relay *r)
{
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->produces;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Passes one request on and returns the answer to give back (NULL: the connection is over). */
static unsigned char *exchange(conn *c, unsigned char *req, size_t req_len, size_t *resp_len)
{
    cursor h = {req, req_len, 4, false};
    int api = (int)get(&h, 2), version = (int)get(&h, 2);
    take(&h, 4);
    skip_string(&h); /* client id */
    long long deadline = 0;
    if (api == API_FETCH && !h.bad) {
        take(&h, 4); /* replica id */
        int32_t max_wait = take(&h, 4) ? get32_at(req + h.at - 4) : 0;
        if (max_wait > 0) {
            deadline = now_ms() + max_wait;
            put32(req + h.at - 4, 0);
        }
    }
    for (;;) {
        uint64_t seen = deadline ? produces_so_far(c->r) : 0;
        if (!write_all(c->upstream, req, req_len))
            return NULL;
        unsigned char *resp = read_frame(c->upstream, resp_len);
        if (resp && api == API_PRODUCE) {
            pthread_mutex_lock(&c->r->mu);
            c->r->produces++;
            pthread_cond_broadcast(&c->r->produced);
            pthread_mutex_unlock(&c->r->mu);
        }
        if (!resp || !deadline || !fetch_found_nothing(resp, *resp_len, version) || now_ms() >= deadline)
            return resp;
        if (wait_for_produce(c->r, seen, deadline) == seen)
            return resp; /* MaxWait passed with nothing new: the empty answer goes back */
        free(resp);
    }
}

static void *serve(void *arg)
{
    conn *c = arg;
    for (;;) {
        size_t req_len = 0, resp_len = 0;
        unsigned char *req = read_frame(c->client, &req_len);
        if (!req)
            break;
        int api = req_len >= 8 ? req[4] << 8 | req[5] : -1;
        int version = req_len >= 8 ? req[6] << 8 | req[7] : -1;
        unsigned char *resp = exchange(c, req, req_len, &resp_len);
        free(req);
        if (!resp)
            break;
        if (api == API_METADATA)
            rewrite_metadata(resp, resp_len, version);
        else if (api == API_FIND_COORDINATOR)
            rewrite_coordinator(resp, resp_len, version);
        bool sent = write_all(c->client, resp, resp_len);
        free(resp);
        if (!sent)
            break;
    }
    close(c->client);
    if (c->upstream >= 0)
        close(c->upstream);
    free(c);
    return NULL;
}

static int connect_upstream(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *accept_loop(void *arg)
{
    relay *r = arg;
    for (;;) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "mr-kafka-mock: relay of broker %d: accept: %s\n", r->id, strerror(errno));
            return NULL;
        }
        /* A broker that is down refuses the connection: so does its relay, by closing it. */
        int up = connect_upstream(r->upstream_port);
        conn *c = up >= 0 ? malloc(sizeof *c) : NULL;
        pthread_t t;
        if (c) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            *c = (conn){r, fd, up};
        }
        if (!c || pthread_create(&t, NULL, serve, c) != 0) {
            close(fd);
            if (up >= 0)
                close(up);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int mr_kafka_fetch_proxy_start(const char *bootstraps, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *s = bootstraps; *s && n_relays < MAX_BROKERS;) {
        const char *colon = strchr(s, ':');
        if (!colon) {
            fprintf(stderr, "mr-kafka-mock: no port in the bootstrap list \"%s\"\n", bootstraps);
            return -1;
        }
        relay *r = &relays[n_relays];
        r->id = n_relays + 1;
        r->upstream_port = atoi(colon + 1);
        pthread_mutex_init(&r->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->produced, &ca);
        pthread_condattr_destroy(&ca);
        r->listen_fd = listen_loopback(&r->port);
        pthread_t t;
        if (r->listen_fd < 0 || pthread_create(&t, NULL, accept_loop, r) != 0) {
            fprintf(stderr, "mr-kafka-mock: starting the relay of broker %d: %s\n", r->id, strerror(errno));
            return -1;
        }
        pthread_detach(t);
        n_relays++;
        used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "%s127.0.0.1:%d", used ? "," : "", r->port);
        const char *comma = strchr(colon, ',');
        s = comma ? comma + 1 : colon + strlen(colon);
    }
    if (used >= cap) {
        fprintf(stderr, "mr-kafka-mock: the relays' bootstrap list is too long\n");
        return -1;
    }
    return 0;
}
