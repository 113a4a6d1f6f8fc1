/* bus_test_consumer.c -- a consumer in its own process, for tests that kill one mid-batch.
 *
 * Usage: bus_test_consumer URL GROUP TOPIC OUT_FILE STALL_AFTER LEASE_MS
 * Polls TOPIC in batches of 10 and appends each handled message's value and a newline to
 * OUT_FILE. After STALL_AFTER messages the next handler never returns: the test kills the process
 * there, with part of the batch handled and the rest not.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mindroom/bus.h"

typedef struct consumer_state {
    int fd;
    long handled;
    long stall_after;
} consumer_state;

static mr_code on_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    consumer_state *s = ctx;
    if (s->handled == s->stall_after) {
        for (;;)
            pause();
    }
    char line[256];
    int n = snprintf(line, sizeof line, "%s\n", m->value);
    if (n >= (int)sizeof line || write(s->fd, line, (size_t)n) != n)
        return mr_err_set(err, MR_EIO, "appending to the output file");
    s->handled++;
    return MR_OK;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s URL GROUP TOPIC OUT_FILE STALL_AFTER LEASE_MS\n", argv[0]);
        return 2;
    }
    consumer_state s = {.stall_after = atol(argv[5])};
    s.fd = open(argv[4], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (s.fd < 0) {
        perror(argv[4]);
        return 1;
    }
    mr_bus_options opts = {.lease_ms = atoi(argv[6]), .client_id = "killed"};
    mr_bus *bus = NULL;
    mr_bus_consumer *c = NULL;
    mr_err err = {0};
    const char *topics[] = {argv[3]};
    if (mr_bus_open(argv[1], &opts, &bus, &err) != MR_OK ||
        mr_bus_subscribe(bus, argv[2], topics, 1, &c, &err) != MR_OK) {
        fprintf(stderr, "bus_test_consumer: %s\n", err.msg);
        return 1;
    }
    for (;;) {
        size_t handled = 0;
        if (mr_bus_poll(c, 1000, 10, on_message, &s, &handled, &err) != MR_OK)
            fprintf(stderr, "bus_test_consumer: %s\n", err.msg);
    }
}
