/* bench_http_floor.c -- the floor under bench/upstream-auth: the least an HTTP/1.1 keep-alive
 * server can do a request on this machine. Threads (one per core, at least 2, as the service's
 * pool) each wait in their own epoll set; a readable connection gets one recv and, for every
 * request whose header end is in the buffer, the same fixed answer /healthz gives, in one send.
 * No parsing, no allocation, no handler: what it costs a request is the kernel's loopback TCP,
 * the wake-ups and the two syscalls. Writes its port to a file, serves until SIGTERM or SIGINT.
 * Usage: bench_http_floor PORTFILE */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_stop.h"

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
                             "{\"status\":\"ok\"}";

static int listen_fd;

/* Requests whose header end ("\r\n\r\n") is in buf[0..n); *keep is where the next one starts. */
static size_t complete_requests(const char *buf, size_t n, size_t *keep)
{
    size_t count = 0, start = 0;
    for (size_t i = 3; i < n; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r') {
            count++;
            start = i + 1;
        }
    *keep = start;
    return count;
}

typedef struct conn {
    int fd;
    size_t have;
    char buf[8192];
} conn;

static void serve(int ep, conn *c)
{
    ssize_t n = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        free(c);
        return;
    }
    c->have += (size_t)n;
    size_t keep;
    size_t reqs = complete_requests(c->buf, c->have, &keep);
    if (reqs == 0 && c->have == sizeof c->buf) {
        c->have = 0; /* a header past the buffer: the floor does not care */
        return;
    }
    memmove(c->buf, c->buf + keep, c->have - keep);
    c->have -= keep;
    char out[sizeof answer * 16];
    size_t len = 0;
    for (size_t i = 0; i < reqs; i++) {
        if (len + sizeof answer - 1 > sizeof out) {
            send(c->fd, out, len, MSG_NOSIGNAL);
            len = 0;
        }
        memcpy(out + len, answer, sizeof answer - 1);
        len += sizeof answer - 1;
    }
    if (len)
        send(c->fd, out, len, MSG_NOSIGNAL);
}

static void *poller(void *arg)
{
    (void)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev) != 0) {
        perror("bench_http_floor: epoll");
        exit(1);
    }
    struct epoll_event ev[64];
    for (;;) {
        int n = epoll_wait(ep, ev, 64, -1);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr) {
                serve(ep, ev[i].data.ptr);
                continue;
            }
            int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            conn *c = calloc(1, sizeof *c);
            if (!c) {
                close(fd);
                continue;
            }
            c->fd = fd;
            struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) != 0) {
                close(fd);
                free(c);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORTFILE\n", argv[0]);
        return 2;
    }
    sigset_t stop;
    if (!bench_stop_block(&stop))
        return 1;
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(listen_fd, 128) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("bench_http_floor: listening on 127.0.0.1");
        return 1;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores > 2 ? (int)cores : 2;
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, poller, NULL) != 0) {
            perror("bench_http_floor: thread");
            return 1;
        }
    }
    FILE *f = fopen(argv[1], "w");
    if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    bench_stop_wait(&stop);
    return 0;
}
