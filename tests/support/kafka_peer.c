/* kafka_peer.c -- a Kafka broker set (tests/peers/mr-kafka-mock) in a child process, for tests. */
#include "kafka_peer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"
#include "mindroom/clock.h"

#define REPLY_TIMEOUT_MS 15000

/* Reads one line from the peer, waiting at most timeout_ms. */
static mr_code read_line(mr_tp_kafka *k, char *buf, size_t cap, int timeout_ms, mr_err *err)
{
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    size_t n = 0;
    while (n + 1 < cap) {
        int left = (int)(deadline - mr_clock_mono_ms());
        struct pollfd pfd = {.fd = k->out, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) == 0)
            return mr_err_set(err, MR_EUNAVAIL, "mr-kafka-mock (pid %d) did not answer within %d ms",
                              (int)k->pid, timeout_ms);
        ssize_t r = read(k->out, buf + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return mr_err_set(err, MR_EUNAVAIL, "mr-kafka-mock (pid %d) closed its output", (int)k->pid);
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return MR_OK;
}

/* Sends one command line and expects "ok". */
static mr_code command(mr_tp_kafka *k, const char *line, mr_err *err)
{
    size_t len = strlen(line);
    if (write(k->ctl, line, len) != (ssize_t)len)
        return mr_err_errno(err, MR_EIO, errno, "writing \"%.*s\" to mr-kafka-mock", (int)len - 1, line);
    char reply[512];
    mr_code rc = read_line(k, reply, sizeof reply, REPLY_TIMEOUT_MS, err);
    if (rc == MR_OK && strcmp(reply, "ok") != 0)
        rc = mr_err_set(err, MR_EIO, "mr-kafka-mock: \"%.*s\": %s", (int)len - 1, line, reply);
    return rc;
}

mr_code mr_tp_kafka_start(mr_tp_kafka *k, mr_err *err)
{
    memset(k, 0, sizeof *k);
    k->ctl = k->out = -1;
    /* A peer that died must not kill the test on the next write. */
    signal(SIGPIPE, SIG_IGN);
    int in[2], out[2];
    if (pipe(in) != 0)
        return mr_err_errno(err, MR_EIO, errno, "pipe");
    if (pipe(out) != 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        return mr_err_errno(err, MR_EIO, e, "pipe");
    }
    /* Our ends must not leak into other children (a second peer would keep stdin open). */
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    fcntl(out[0], F_SETFD, FD_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return mr_err_errno(err, MR_EIO, e, "fork for mr-kafka-mock");
    }
    if (pid == 0) {
        mr_tp_child_prepare(parent);
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        execl(MR_KAFKA_MOCK_BIN, "mr-kafka-mock", (char *)NULL);
        dprintf(STDERR_FILENO, "exec %s: %s\n", MR_KAFKA_MOCK_BIN, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    mr_tp_adopt(pid);
    k->pid = pid;
    k->ctl = in[1];
    k->out = out[0];
    mr_code rc = read_line(k, k->bootstrap, sizeof k->bootstrap, REPLY_TIMEOUT_MS, err);
    if (rc == MR_OK && !strchr(k->bootstrap, ':'))
        rc = mr_err_set(err, MR_EIO, "mr-kafka-mock printed \"%s\", not a bootstrap list", k->bootstrap);
    if (rc != MR_OK) {
        mr_tp_kafka_destroy(k);
        return rc;
    }
    snprintf(k->url, sizeof k->url, "kafka://%s", k->bootstrap);
    return MR_OK;
}

static mr_code broker_command(mr_tp_kafka *k, const char *verb, int broker_id, mr_err *err)
{
    char line[64];
    snprintf(line, sizeof line, "%s %d\n", verb, broker_id);
    return command(k, line, err);
}

mr_code mr_tp_kafka_broker_down(mr_tp_kafka *k, int broker_id, mr_err *err)
{
    return broker_command(k, "down", broker_id, err);
}

mr_code mr_tp_kafka_broker_up(mr_tp_kafka *k, int broker_id, mr_err *err)
{
    return broker_command(k, "up", broker_id, err);
}

mr_code mr_tp_kafka_all_brokers(mr_tp_kafka *k, bool up, mr_err *err)
{
    mr_code rc = MR_OK;
    for (int id = 1; id <= 3 && rc == MR_OK; id++)
        rc = broker_command(k, up ? "up" : "down", id, err);
    return rc;
}

mr_code mr_tp_kafka_topic(mr_tp_kafka *k, const char *topic, int partitions, mr_err *err)
{
    char line[512];
    if (snprintf(line, sizeof line, "topic %s %d\n", topic, partitions) >= (int)sizeof line)
        return mr_err_set(err, MR_EINVAL, "topic name %.40s... too long", topic);
    return command(k, line, err);
}

void mr_tp_kafka_destroy(mr_tp_kafka *k)
{
    if (k->pid > 0) {
        /* quit, or end of input, stops it cleanly; a peer that hangs is killed. */
        if (write(k->ctl, "quit\n", 5) == 5) {
            char reply[64];
            read_line(k, reply, sizeof reply, 5000, NULL);
        }
        close(k->ctl);
        k->ctl = -1;
        long long deadline = mr_clock_mono_ms() + 5000;
        bool reaped = false;
        while (!reaped && mr_clock_mono_ms() < deadline) {
            int st;
            pid_t r = waitpid(k->pid, &st, WNOHANG);
            reaped = r == k->pid || (r < 0 && errno != EINTR);
            if (!reaped)
                mr_clock_sleep_ms(20);
        }
        if (!reaped)
            mr_tp_kill_wait(k->pid, SIGKILL, NULL, NULL);
    }
    if (k->ctl >= 0)
        close(k->ctl);
    if (k->out >= 0)
        close(k->out);
    k->pid = 0;
    k->ctl = k->out = -1;
}
