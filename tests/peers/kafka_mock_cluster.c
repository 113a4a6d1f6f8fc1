/* kafka_mock_cluster.c -- mr-kafka-mock: a Kafka broker set on loopback for tests in other processes.
 *
 * Starts librdkafka's mock cluster (a real Kafka-protocol broker set, rdkafka_mock.h) behind
 * one relay per broker that answers a waiting fetch when data arrives, as a real broker does
 * (kafka_fetch_proxy.c), and prints the relays' bootstrap list ("127.0.0.1:P1,127.0.0.1:P2,...")
 * as the first line of stdout.
 * Then it reads commands on stdin, one per line, and answers each with one line on stdout,
 * "ok" or "error: <why>":
 *   down <broker_id>              the broker drops its connections and refuses new ones
 *   up <broker_id>                it serves again (broker ids are 1..N)
 *   topic <name> <partitions>     creates a topic (the mock has no CreateTopics request, and
 *                                 topics it creates on its own get 4 partitions)
 *   quit                          stops the cluster and exits (so does end of input)
 * Usage: mr-kafka-mock [--brokers N] [--hold-fetches]
 *   --brokers N       3 by default
 *   --hold-fetches    no relays: clients reach the mock brokers, which hold a fetch that finds
 *                     nothing for its whole wait (librdkafka's mock as it is, for comparison)
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "kafka_fetch_proxy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > 100000)
        return -1;
    *out = (int)v;
    return 0;
}

static void reply_result(rd_kafka_resp_err_t e)
{
    if (e)
        printf("error: %s\n", rd_kafka_err2str(e));
    else
        printf("ok\n");
}

/* Runs one command line; returns 1 on quit. */
static int run_command(rd_kafka_mock_cluster_t *mc, char *line)
{
    char *save = NULL;
    const char *cmd = strtok_r(line, " \t\r\n", &save);
    const char *a1 = strtok_r(NULL, " \t\r\n", &save);
    const char *a2 = strtok_r(NULL, " \t\r\n", &save);
    int n = 0, id = 0;
    if (!cmd) {
        printf("error: empty command\n");
    } else if (strcmp(cmd, "quit") == 0) {
        printf("ok\n");
        return 1;
    } else if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) && a1 && !a2 &&
               parse_int(a1, &id) == 0) {
        reply_result(cmd[0] == 'd' ? rd_kafka_mock_broker_set_down(mc, id)
                                   : rd_kafka_mock_broker_set_up(mc, id));
    } else if (strcmp(cmd, "topic") == 0 && a1 && a2 && parse_int(a2, &n) == 0) {
        /* Replicated on up to 3 brokers, like a production topic. */
        reply_result(rd_kafka_mock_topic_create(mc, a1, n, 3));
    } else {
        printf("error: unknown command; expected down <id>, up <id>, topic <name> <partitions> "
               "or quit\n");
    }
    return 0;
}

int main(int argc, char **argv)
{
    int brokers = 3;
    bool hold_fetches = false, args_ok = true;
    for (int i = 1; i < argc && args_ok; i++) {
        if (strcmp(argv[i], "--hold-fetches") == 0)
            hold_fetches = true;
        else
            args_ok = strcmp(argv[i], "--brokers") == 0 && i + 1 < argc && parse_int(argv[++i], &brokers) == 0;
    }
    if (!args_ok) {
        fprintf(stderr, "usage: %s [--brokers N] [--hold-fetches]\n", argv[0]);
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The handle only hosts the cluster: its notice about having no brokers is noise. */
    rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "mr-kafka-mock: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "mr-kafka-mock: could not start %d mock brokers\n", brokers);
        rd_kafka_destroy(rk);
        return 1;
    }
    char relays[1024];
    if (!hold_fetches &&
        mr_kafka_fetch_proxy_start(rd_kafka_mock_cluster_bootstraps(mc), relays, sizeof relays) != 0) {
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 1;
    }
    /* Line-buffered so the reader in another process sees each answer at once. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("%s\n", hold_fetches ? rd_kafka_mock_cluster_bootstraps(mc) : relays);

    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        if (run_command(mc, line))
            break;
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
