/* raw_socket.c -- raw TCP for tests that send what no HTTP library would: stray line ends,
 * NULs, half-sent requests, and connections from a chosen loopback address. */
#include "peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mindroom/clock.h"

int mr_tp_connect_from(const char *from, int port)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (inet_pton(AF_INET, from, &src.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

char *mr_tp_read_until(int fd, const char *until, int timeout_ms, bool *closed)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    buf[0] = '\0';
    *closed = false;
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    while (!(until && strstr(buf, until))) {
        long long left = deadline - mr_clock_mono_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0) {
            *closed = true; /* EOF, or the reset of a connection the peer dropped */
            break;
        }
        len += (size_t)got;
        buf[len] = '\0';
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
    }
    return buf;
}

mr_code mr_tp_raw_exchange(const char *from, int port, const void *raw, size_t len, int timeout_ms,
                           char **answer, mr_err *err)
{
    *answer = NULL;
    int fd = mr_tp_connect_from(from, port);
    if (fd < 0)
        return mr_err_errno(err, MR_EUNAVAIL, errno, "connecting from %s to 127.0.0.1:%d", from, port);
    if (write(fd, raw, len) != (ssize_t)len) {
        int e = errno;
        close(fd);
        return mr_err_errno(err, MR_EUNAVAIL, e, "sending %zu bytes to 127.0.0.1:%d", len, port);
    }
    bool closed;
    *answer = mr_tp_read_until(fd, NULL, timeout_ms, &closed);
    close(fd);
    if (!*answer)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading from 127.0.0.1:%d", port);
    if (!closed)
        return mr_err_set(err, MR_EUNAVAIL, "127.0.0.1:%d did not close the connection within %d ms; it sent: %s",
                          port, timeout_ms, *answer);
    return MR_OK;
}

mr_code mr_tp_get_while_crowded(int port, const char *crowd_from, size_t crowd, const char *client_from,
                                const char *path, char **answer, size_t *held, mr_err *err)
{
    *answer = NULL;
    *held = 0;
    int *fds = calloc(crowd ? crowd : 1, sizeof *fds);
    if (!fds)
        return mr_err_set(err, MR_ENOMEM, "out of memory for %zu connections", crowd);
    /* A refused connect means the backlog is full: the server has stopped accepting from us. */
    while (*held < crowd && (fds[*held] = mr_tp_connect_from(crowd_from, port)) >= 0)
        (*held)++;
    char request[512];
    int n = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    mr_code rc = mr_tp_raw_exchange(client_from, port, request, (size_t)n, 20000, answer, err);
    for (size_t i = 0; i < *held; i++)
        close(fds[i]);
    free(fds);
    if (rc != MR_OK)
        mr_err_prefix(err, "GET %s from %s with %zu connections held from %s", path, client_from, *held, crowd_from);
    return rc;
}
