/* bench_pipeline.c -- MindRoom's own time per message: from the sync response carrying a message
 * arriving to the reply's send request leaving, with a model stub that answers at once.
 *
 * usage: bench_pipeline embedded|redis|kafka [SEQUENTIAL] [BURST]
 *        bench_pipeline crash [CRASHES]
 *        bench_pipeline concurrent [ANSWERS]
 * AGENTS=N in the environment runs N agents (one in the bench room, the others in another);
 * FETCH_WAIT_MS=N gives the Kafka shape's bus URL ?fetch_wait_ms=N;
 * KEEP=1 keeps the run's directory (logs, config, storage).
 *
 * Starts the test homeserver, the model stub and the platform (`mindroom run`, or the four
 * service binaries over Redis Streams or the Kafka mock cluster with the store in Redis), each
 * under /usr/bin/time -v, with MATRIX_HOMESERVER pointing at a timing proxy (pipeline_proxy.c)
 * in front of the homeserver. A user then sends SEQUENTIAL messages one at a time (latency:
 * p50/p99 of the proxy's two moments) and BURST at once (messages/s, first send to last
 * reply). The baseline, measured in the same run, is the I/O a reply cannot avoid: one streamed
 * model call to the stub and one send through the proxy, back to back (p50), and paced one every
 * PACED_PAUSE_MS as the sequential messages come (p50 and p99: the floor's own tail). Peak RSS
 * comes from time -v. In redis mode, Redis's used_memory is read before and after the messages.
 *
 * crash (embedded): the stub stalls an answer mid-stream, `mindroom run` gets SIGKILL, starts
 * again, and the time from the kill to that message's answer is measured, CRASHES times.
 * concurrent (embedded): each answer streams for ANSWER_SECONDS (60) at CHARS_PER_SECOND (80), the stub
 * pacing an echo of a message that long; ANSWERS messages at once, each in a room of its own (a
 * room's answers come in order), first send to the last answer complete, beside one answer
 * alone, and the duplicates (more than one answer, not an edit, to one message). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hs_peer.h"
#include "kafka_peer.h"
#include "mindroom/clock.h"
#include "mindroom/fsutil.h"
#include "mindroom/http.h"
#include "model_stub_peer.h"
#include "peers.h"
#include "pipeline_proxy.h"

#define HUMAN "@bench:localhost"
#define TOKEN "bench-registration-token"
#define WARMUP 20
#define DEADLINE_MS 60000
/* Waiting for an answer: 100 minute-long answers at the default bound take seven minutes. */
#define REPLY_DEADLINE_MS 900000
#define MAX_REPLICAS 32
#define MAX_PROCS (3 + MAX_REPLICAS)
#define BASELINE_CALLS 200
#define PACED_PAUSE_MS 2
#define MAX_AGENTS 64

static const char *const topics[] = {"matrix.inbound", "matrix.todevice", "matrix.cleartext",
                                     "agent.turns", "matrix.outbound", "matrix.send", "matrix.send_failed"};

typedef struct proc {
    char name[32];
    pid_t pid;
    int port;
    char rss_file[600];
    long rss_kib;
} proc;

typedef struct bench {
    const char *mode;      /* the platform's shape: embedded, redis or kafka */
    mr_hs_peer hs;
    mr_model_stub stub;
    mr_tp_redis redis;
    mr_tp_kafka kafka;
    bool have_hs, have_stub, have_redis, have_kafka;
    char dir[256];
    char config[300];
    pp_proxy *proxy;
    int proxy_port;
    proc procs[MAX_PROCS];
    size_t n_procs;
    mr_http_client *human; /* the user's client, straight to the homeserver */
    char token[256];       /* its access token */
    char room[256];
    char baseline_room[256];
    size_t n_side_rooms;          /* concurrent, replicas: rooms side0.. the agent answers in side by side */
    size_t replicas;              /* replicas: agent processes (0: one, as in the redis shape) */
    int partitions;               /* replicas: the bus's ?partitions=N (0: the default 8) */
    char (*side_rooms)[256];
} bench;

static void die(const char *what, const mr_err *err)
{
    fprintf(stderr, "bench_pipeline: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static void check(mr_code rc, const mr_err *err, const char *what)
{
    if (rc != MR_OK)
        die(what, err);
}

/* ---- set-up ---- */

static void start_peers(bench *b)
{
    mr_err err = {0};
    mr_hs_peer_opts ho = {.registration_token = TOKEN, .open_registration = true};
    check(mr_hs_peer_start(&ho, &b->hs, &err), &err, "starting the homeserver");
    b->have_hs = true;
    check(mr_model_stub_start(NULL, NULL, &b->stub, &err), &err, "starting the model stub");
    b->have_stub = true;
    if (strcmp(b->mode, "embedded") != 0) {
        check(mr_tp_redis_start(&b->redis, &err), &err, "starting redis-server");
        b->have_redis = true;
    }
    if (strcmp(b->mode, "kafka") == 0) {
        check(mr_tp_kafka_start(&b->kafka, &err), &err, "starting the Kafka mock cluster");
        b->have_kafka = true;
        /* The mock answers no CreateTopics: the topics exist before anyone publishes. */
        for (size_t i = 0; i < sizeof topics / sizeof *topics; i++)
            check(mr_tp_kafka_topic(&b->kafka, topics[i], 8, &err), &err, topics[i]);
    }
}

static void write_file(const char *path, const char *text)
{
    mr_err err = {0};
    check(mr_fs_write_atomic(path, text, strlen(text), 0600, true, &err), &err, path);
}

static void write_config(bench *b)
{
    char path[300], text[16384];
    snprintf(b->config, sizeof b->config, "%s/config.yaml", b->dir);
    const char *agents_env = getenv("AGENTS");
    long agents = agents_env ? strtol(agents_env, NULL, 10) : 1;
    if (agents < 1 || agents > MAX_AGENTS) {
        fprintf(stderr, "bench_pipeline: AGENTS must be 1 to %d\n", MAX_AGENTS);
        exit(2);
    }
    int n = snprintf(text, sizeof text,
                     "models:\n  default: {provider: openai, id: stub-model, host: \"%s\", api_key_env: BENCH_MODEL_KEY}\n"
                     "agents:\n  mind: {display_name: Mind, rooms: [bench",
                     b->stub.url);
    for (size_t i = 0; i < b->n_side_rooms; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, ", side%zu", i);
    n += snprintf(text + n, sizeof text - (size_t)n, "]}\n");
    /* The others live in a room of their own, so the bench room's answers stay one agent's. */
    for (long i = 1; i < agents; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "  agent%ld: {display_name: Agent %ld, rooms: [other]}\n", i, i);
    snprintf(text + n, sizeof text - (size_t)n, "authorization:\n  global_users: [\"" HUMAN "\"]\n");
    write_file(b->config, text);
    n = snprintf(text, sizeof text,
                     "MATRIX_HOMESERVER=http://127.0.0.1:%d\nMATRIX_SERVER_NAME=localhost\n"
                     "MATRIX_REGISTRATION_TOKEN=" TOKEN "\nBENCH_MODEL_KEY=stub\nLOG_LEVEL=warn\n"
                     "MINDROOM_INSTANCE_SECRET=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
                     b->proxy_port);
    /* FETCH_WAIT_MS: the consumers' fetch wait, which the mock cluster waits out on every hop. */
    const char *fetch_wait = getenv("FETCH_WAIT_MS");
    if (b->have_kafka)
        n += snprintf(text + n, sizeof text - (size_t)n, "MINDROOM_BUS_URL=%s%s%s\n", b->kafka.url,
                      fetch_wait ? "?fetch_wait_ms=" : "", fetch_wait ? fetch_wait : "");
    else if (b->have_redis)
        n += snprintf(text + n, sizeof text - (size_t)n, "MINDROOM_BUS_URL=redis://127.0.0.1:%d/0%s%.0d\n",
                      b->redis.port, b->partitions ? "?partitions=" : "", b->partitions);
    if (b->have_redis)
        snprintf(text + n, sizeof text - (size_t)n, "MINDROOM_STORE_URL=redis://127.0.0.1:%d/1\n", b->redis.port);
    snprintf(path, sizeof path, "%s/.env", b->dir);
    write_file(path, text);
    /* The agent takes provider keys from its environment (a container's way); run, from .env too. */
    setenv("BENCH_MODEL_KEY", "stub", 1);
}

/* One JSON request as the user; the parsed answer (caller releases), NULL unless 2xx. */
static json_t *human_call(bench *b, const char *method, const char *path, json_t *body)
{
    mr_http_result res;
    mr_err err = {0};
    json_t *out = NULL;
    if (mr_http_client_json(b->human, method, path, body, &res, &err) == MR_OK &&
        mr_http_result_check(&res, &err) == MR_OK)
        out = json_incref(res.json);
    mr_http_result_clear(&res);
    json_decref(body);
    return out;
}

/* Registers the user before the platform starts, so its first start invites them. */
static void register_human(bench *b)
{
    mr_http_client_opts o = {.base_url = b->hs.url};
    mr_err err = {0};
    check(mr_http_client_new(&o, &b->human, &err), &err, "the user's client");
    json_t *r = human_call(b, "POST", "/_matrix/client/v3/register",
                           json_pack("{s:s, s:s, s:{s:s}}", "username", "bench", "password", "bench-password",
                                     "auth", "type", "m.login.dummy"));
    const char *token = json_string_value(json_object_get(r, "access_token"));
    if (!token)
        die("registering " HUMAN, NULL);
    snprintf(b->token, sizeof b->token, "%s", token);
    mr_http_client_free(b->human);
    o.bearer_token = b->token;
    check(mr_http_client_new(&o, &b->human, &err), &err, "the user's client");
    json_decref(r);
}

/* Runs argv under /usr/bin/time -v (its report goes to p->rss_file). */
static void spawn(bench *b, const char *name, char **argv)
{
    proc *p = &b->procs[b->n_procs++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->rss_file, sizeof p->rss_file, "%s/%s.time", b->dir, name);
    char log[600];
    snprintf(log, sizeof log, "%s/%s.log", b->dir, name);
    char *full[12] = {"/usr/bin/time", "-v", "-o", p->rss_file};
    for (size_t i = 0; argv[i] && i < 7; i++)
        full[4 + i] = argv[i];
    mr_err err = {0};
    check(mr_tp_spawn(full, log, &p->pid, &err), &err, name);
}

static void start_platform(bench *b)
{
    static const char *const services[] = {"gateway", "crypto", "authz", "agent"};
    static const char *const bins[] = {MR_BENCH_GATEWAY_BIN, MR_BENCH_CRYPTO_BIN, MR_BENCH_AUTHZ_BIN,
                                       MR_BENCH_AGENT_BIN};
    mr_err err = {0};
    bool embedded = strcmp(b->mode, "embedded") == 0;
    size_t agents = b->replicas ? b->replicas : 1;
    for (size_t i = 0; i < (embedded ? 1 : 3 + agents); i++) {
        size_t s = i < 3 ? i : 3;
        int port;
        check(mr_tp_free_port(&port, &err), &err, "a free port");
        char listen[32], worker[32];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
        /* Each replica is a worker of its own; the child takes it from the environment. */
        snprintf(worker, sizeof worker, "agent%zu", i - s);
        if (s == 3)
            setenv("MINDROOM_WORKER_ID", worker, 1);
        char *run[] = {MR_BENCH_MINDROOM_BIN, "run", "--config", b->config, "--listen", listen, NULL};
        char *one[] = {(char *)bins[s], "--config", b->config, "--listen", listen, NULL};
        spawn(b, embedded ? "mindroom-run" : s == 3 && b->replicas ? worker : services[s], embedded ? run : one);
        b->procs[b->n_procs - 1].port = port;
    }
    unsetenv("MINDROOM_WORKER_ID");
}

static void wait_ready(bench *b)
{
    mr_http_client_opts o = {.timeout_ms = 2000};
    mr_http_client *c = NULL;
    mr_err err = {0};
    check(mr_http_client_new(&o, &c, &err), &err, "a client");
    /* A replica that holds no partition of agent.turns (more replicas than partitions) stands
     * by and says it is not ready; measure_replicas waits for the leases instead. */
    size_t n = b->replicas ? 3 : b->n_procs;
    for (size_t i = 0; i < n; i++) {
        char url[64];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/readyz", b->procs[i].port);
        long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
        for (;;) {
            mr_http_result res;
            mr_http_call call = {.method = "GET", .url = url};
            bool ready = mr_http_client_do(c, &call, &res, &err) == MR_OK && res.status == 200;
            mr_http_result_clear(&res);
            if (ready)
                break;
            if (mr_clock_mono_ms() > deadline || waitpid(b->procs[i].pid, NULL, WNOHANG) == b->procs[i].pid) {
                fprintf(stderr, "bench_pipeline: %s never became ready; see %s/%s.log\n", b->procs[i].name,
                        b->dir, b->procs[i].name);
                exit(1);
            }
            mr_clock_sleep_ms(50);
        }
    }
    mr_http_client_free(c);
}

/* Joins #<alias>:localhost as the user; its room ID into room_id. */
static void join_room(bench *b, const char *alias, char room_id[256])
{
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    char path[300];
    snprintf(path, sizeof path, "/_matrix/client/v3/join/%%23%s%%3Alocalhost", alias);
    json_t *r;
    /* The invite goes out during start-up; readiness does not wait for it. */
    while (!(r = human_call(b, "POST", path, json_object()))) {
        if (mr_clock_mono_ms() > deadline) {
            fprintf(stderr, "bench_pipeline: joining #%s:localhost failed (no invite?)\n", alias);
            exit(1);
        }
        mr_clock_sleep_ms(50);
    }
    snprintf(room_id, 256, "%s", json_string_value(json_object_get(r, "room_id")));
    json_decref(r);
}

/* Sends "<prefix><i>", then tail (may be NULL), into room as the user. */
static void say_more(bench *b, const char *room, const char *prefix, size_t i, const char *tail)
{
    char path[512], id[64];
    snprintf(id, sizeof id, "%s%zu", prefix, i);
    snprintf(path, sizeof path, "/_matrix/client/v3/rooms/%s/send/m.room.message/%s", room, id);
    char *text = malloc(strlen(id) + (tail ? strlen(tail) : 0) + 1);
    if (!text)
        die("out of memory", NULL);
    sprintf(text, "%s%s", id, tail ? tail : "");
    json_t *r = human_call(b, "PUT", path, json_pack("{s:s, s:s}", "msgtype", "m.text", "body", text));
    free(text);
    if (!r)
        die("sending a message", NULL);
    json_decref(r);
}

static void say(bench *b, const char *room, const char *prefix, size_t i)
{
    say_more(b, room, prefix, i, NULL);
}

static void await_reply(bench *b, size_t i)
{
    if (!pp_proxy_wait_reply(b->proxy, i, mr_clock_mono_ms() + REPLY_DEADLINE_MS)) {
        fprintf(stderr, "bench_pipeline: no reply to bench-%zu within %d s; logs in %s\n", i, REPLY_DEADLINE_MS / 1000,
                b->dir);
        exit(1);
    }
}

/* Waits for the replies to bench-first .. bench-(first + n - 1); returns when the last came. */
static long long await_replies(bench *b, size_t first, size_t n)
{
    long long last = 0;
    for (size_t i = first; i < first + n; i++) {
        await_reply(b, i);
        long long t = pp_proxy_replied_ns(b->proxy, i);
        last = t > last ? t : last;
    }
    return last;
}

/* ---- measuring ---- */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The q-th quantile (nearest rank) of n sorted values, in milliseconds. */
static double quantile_ms(const long long *sorted, size_t n, double q)
{
    size_t rank = (size_t)(q * (double)n + 0.999999);
    return (double)sorted[rank ? rank - 1 : 0] / 1e6;
}

/* Fills in the URL and JSON body of the i-th baseline call. */
typedef void (*baseline_call)(const bench *b, size_t i, char *url, size_t url_cap, char *body, size_t body_cap);

static void model_call(const bench *b, size_t i, char *url, size_t url_cap, char *body, size_t body_cap)
{
    snprintf(url, url_cap, "%s/v1/chat/completions", b->stub.url);
    snprintf(body, body_cap, "{\"model\": \"stub-model\", \"stream\": true, "
             "\"messages\": [{\"role\": \"user\", \"content\": \"bench-%zu\"}]}", i);
}

/* Into a room no agent is in, so nothing answers it. */
static void send_call(const bench *b, size_t i, char *url, size_t url_cap, char *body, size_t body_cap)
{
    snprintf(url, url_cap, "http://127.0.0.1:%d/_matrix/client/v3/rooms/%s/send/m.room.message/base-%zu",
             b->proxy_port, b->baseline_room, i);
    snprintf(body, body_cap, "{\"msgtype\": \"m.text\", \"body\": \"baseline %zu\"}", i);
}

/* A call repeated BASELINE_CALLS times through c, the i-th filled in as call first + i (each
 * send its own transaction ID), its times in ns sorted into t. */
static void baseline_times(const bench *b, mr_http_client *c, const char *what, const char *method,
                           baseline_call fill, size_t first, int pause_ms, long long t[BASELINE_CALLS])
{
    mr_err err = {0};
    for (size_t i = 0; i < BASELINE_CALLS; i++) {
        char url[700], body[512];
        fill(b, first + i, url, sizeof url, body, sizeof body);
        mr_http_call call = {.method = method, .url = url, .body = body, .body_len = strlen(body),
                             .content_type = "application/json"};
        mr_http_result res;
        if (pause_ms > 0)
            mr_clock_sleep_ms(pause_ms);
        long long t0 = pp_now_ns();
        mr_code rc = mr_http_client_do(c, &call, &res, &err);
        t[i] = pp_now_ns() - t0;
        if (rc == MR_OK)
            rc = mr_http_result_check(&res, &err);
        mr_http_result_clear(&res);
        check(rc, &err, what);
    }
    qsort(t, BASELINE_CALLS, sizeof *t, cmp_ll);
}

static mr_http_client *baseline_client(const char *what, const char *token)
{
    mr_http_client_opts o = {.bearer_token = token};
    mr_http_client *c = NULL;
    mr_err err = {0};
    check(mr_http_client_new(&o, &c, &err), &err, what);
    return c;
}

/* A call repeated BASELINE_CALLS times back to back; its median in ms. */
static double baseline_ms(const bench *b, const char *what, const char *method, const char *token,
                          baseline_call fill)
{
    mr_http_client *c = baseline_client(what, token);
    long long t[BASELINE_CALLS];
    baseline_times(b, c, what, method, fill, 0, 0, t);
    mr_http_client_free(c);
    return quantile_ms(t, BASELINE_CALLS, 0.5);
}

/* The same calls paced as the sequential messages come (one every PACED_PAUSE_MS), where every
 * process on the path has gone idle in between, as on the pipeline's path: the floor's own p50
 * and p99. */
static void paced_floor(const bench *b)
{
    mr_http_client *model = baseline_client("the paced model baseline", "stub");
    mr_http_client *send = baseline_client("the paced send baseline", b->token);
    long long m[BASELINE_CALLS], s[BASELINE_CALLS];
    baseline_times(b, model, "the paced model baseline", "POST", model_call, BASELINE_CALLS, PACED_PAUSE_MS, m);
    baseline_times(b, send, "the paced send baseline", "PUT", send_call, BASELINE_CALLS, PACED_PAUSE_MS, s);
    mr_http_client_free(model);
    mr_http_client_free(send);
    printf("  paced baseline (a call every %d ms): model call p50 %.2f / p99 %.2f ms, Matrix send p50 %.2f / "
           "p99 %.2f ms\n", PACED_PAUSE_MS, quantile_ms(m, BASELINE_CALLS, 0.5), quantile_ms(m, BASELINE_CALLS, 0.99),
           quantile_ms(s, BASELINE_CALLS, 0.5), quantile_ms(s, BASELINE_CALLS, 0.99));
}

/* The I/O a reply cannot avoid: one streamed model call and one send through the proxy. */
static double baseline(bench *b)
{
    json_t *r = human_call(b, "POST", "/_matrix/client/v3/createRoom", json_pack("{s:s}", "preset", "private_chat"));
    if (!r)
        die("creating the baseline room", NULL);
    snprintf(b->baseline_room, sizeof b->baseline_room, "%s", json_string_value(json_object_get(r, "room_id")));
    json_decref(r);
    double model = baseline_ms(b, "the model baseline", "POST", "stub", model_call);
    double send = baseline_ms(b, "the send baseline", "PUT", b->token, send_call);
    printf("  baseline (same run, p50): model call %.2f ms + Matrix send %.2f ms = %.2f ms\n", model, send,
           model + send);
    paced_floor(b);
    return model + send;
}

/* Messages from..to-1 one at a time, each waiting for its answer. */
static void one_at_a_time(bench *b, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        say(b, b->room, "bench-", i);
        await_reply(b, i);
    }
}

/* The number after field in Redis's INFO section ("used_memory:" of memory, "db1:keys=" of
 * keyspace); -1 when it cannot be read, 0 when the field is absent (an empty db). */
static long long redis_info(bench *b, const char *section, const char *field)
{
    char port[16], out[400];
    snprintf(port, sizeof port, "%d", b->redis.port);
    snprintf(out, sizeof out, "%s/redis-info.txt", b->dir);
    unlink(out);
    char *argv[] = {"redis-cli", "-p", port, "info", (char *)section, NULL};
    int code = -1;
    mr_err err = {0};
    if (mr_tp_run(argv, out, &code, &err) != MR_OK || code != 0)
        return -1;
    char *text = mr_tp_read_text(out);
    const char *at = strstr(text, field);
    long long n = at ? strtoll(at + strlen(field), NULL, 10) : 0;
    free(text);
    return n;
}

/* Redis's memory and keys (db 0 the bus, db 1 the store) after `after` messages. */
static void print_redis_memory(bench *b, size_t after)
{
    printf("  Redis after %4zu messages: used_memory %.2f MiB, bus keys %lld, store keys %lld\n", after,
           (double)redis_info(b, "memory", "used_memory:") / 1048576, redis_info(b, "keyspace", "db0:keys="),
           redis_info(b, "keyspace", "db1:keys="));
}

static void measure(bench *b, size_t sequential, size_t burst)
{
    if (b->have_redis)
        print_redis_memory(b, 0);
    one_at_a_time(b, 0, WARMUP + sequential);
    if (b->have_redis)
        print_redis_memory(b, WARMUP + sequential);
    long long *lat = calloc(sequential, sizeof *lat);
    if (!lat)
        die("out of memory", NULL);
    for (size_t i = 0; i < sequential; i++) {
        size_t k = WARMUP + i;
        lat[i] = pp_proxy_replied_ns(b->proxy, k) - pp_proxy_synced_ns(b->proxy, k);
    }
    qsort(lat, sequential, sizeof *lat, cmp_ll);
    double p50 = quantile_ms(lat, sequential, 0.5), p99 = quantile_ms(lat, sequential, 0.99);
    free(lat);

    size_t first = WARMUP + sequential;
    long long t0 = pp_now_ns();
    for (size_t i = first; i < first + burst; i++)
        say(b, b->room, "bench-", i);
    long long last = 0;
    for (size_t i = first; i < first + burst; i++) {
        await_reply(b, i);
        long long t = pp_proxy_replied_ns(b->proxy, i);
        last = t > last ? t : last;
    }
    double rate = (double)burst / ((double)(last - t0) / 1e9);

    printf("bench/pipeline (%s): %zu messages one at a time, then %zu at once; the model stub answers at once\n",
           b->mode, sequential, burst);
    printf("  sync response in -> reply send out: p50 %.2f ms, p99 %.2f ms\n", p50, p99);
    printf("  throughput: %.0f messages/s (first send to last reply)\n", rate);
    double base = baseline(b);
    printf("  p50 / baseline: %.2fx\n", p50 / base);
    if (b->have_redis)
        print_redis_memory(b, WARMUP + sequential + burst);
}

static void script_stub(bench *b, const char *json_text)
{
    mr_err err = {0};
    check(mr_model_stub_script(&b->stub, json_text, &err), &err, "scripting the model stub");
}

static size_t stub_requests(bench *b)
{
    json_t *all = NULL;
    mr_err err = {0};
    check(mr_model_stub_requests(&b->stub, &all, &err), &err, "reading the model stub's requests");
    size_t n = json_array_size(all);
    json_decref(all);
    return n;
}

/* SIGKILL to `mindroom run` while an answer streams, start it again: kill to that answer. */
static void measure_crash(bench *b, size_t crashes)
{
    one_at_a_time(b, 0, WARMUP);
    long long *took = calloc(crashes, sizeof *took);
    if (!took)
        die("out of memory", NULL);
    printf("bench/pipeline (crash): SIGKILL of mindroom run while an answer streams, %zu times\n", crashes);
    for (size_t k = 0; k < crashes; k++) {
        size_t i = WARMUP + k;
        script_stub(b, "{\"stall_ms\": 60000, \"stall_after_chunks\": 1}");
        size_t before = stub_requests(b);
        say(b, b->room, "bench-", i);
        long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
        while (stub_requests(b) == before) {
            if (mr_clock_mono_ms() > deadline)
                die("the answer never reached the model stub", NULL);
            mr_clock_sleep_ms(5);
        }
        kill(-b->procs[0].pid, SIGKILL);
        long long t0 = pp_now_ns();
        while (waitpid(b->procs[0].pid, NULL, 0) < 0 && errno == EINTR)
            ;
        b->n_procs = 0;
        start_platform(b);
        await_reply(b, i);
        took[k] = pp_proxy_replied_ns(b->proxy, i) - t0;
        printf("  crash %zu: SIGKILL -> the answer sent %.0f ms later (answers to it: %d)\n", k + 1,
               (double)took[k] / 1e6, pp_proxy_answers(b->proxy, i));
    }
    qsort(took, crashes, sizeof *took, cmp_ll);
    printf("  SIGKILL -> next answer: p50 %.0f ms, max %.0f ms (restart, log-in, sync and the answer)\n",
           quantile_ms(took, crashes, 0.5), (double)took[crashes - 1] / 1e6);
    free(took);
}

/* " lorem lorem ..." long enough that "Echo: bench-<i>" and it make about chars characters. */
static char *filler(size_t chars)
{
    size_t n = chars > 20 ? chars - 20 : 6;
    char *text = malloc(n + 7);
    if (!text)
        die("out of memory", NULL);
    text[0] = '\0';
    for (size_t len = 0; len < n; len += 6)
        memcpy(text + len, " lorem", 7);
    return text;
}

/* answers messages at once, one in each side room, each answer streaming for ANSWER_SECONDS (60) at
 * CHARS_PER_SECOND (80), beside one alone. */
static void measure_concurrent(bench *b, size_t answers)
{
    const char *sec_env = getenv("ANSWER_SECONDS"), *cps_env = getenv("CHARS_PER_SECOND");
    long seconds = sec_env ? strtol(sec_env, NULL, 10) : 60, cps = cps_env ? strtol(cps_env, NULL, 10) : 80;
    if (seconds < 1 || cps < 1) {
        fprintf(stderr, "bench_pipeline: ANSWER_SECONDS and CHARS_PER_SECOND must be positive\n");
        exit(2);
    }
    char *tail = filler((size_t)(seconds * cps));
    one_at_a_time(b, 0, WARMUP);
    char script[128];
    snprintf(script, sizeof script, "{\"chars_per_second\": %ld}", cps);
    script_stub(b, script);
    long long t0 = pp_now_ns();
    say_more(b, b->room, "bench-", WARMUP, tail);
    await_reply(b, WARMUP);
    double one = (double)(pp_proxy_replied_ns(b->proxy, WARMUP) - t0) / 1e6;

    snprintf(script, sizeof script, "{\"chars_per_second\": %ld, \"times\": %zu}", cps, answers);
    script_stub(b, script);
    size_t first = WARMUP + 1;
    t0 = pp_now_ns();
    for (size_t i = first; i < first + answers; i++)
        say_more(b, b->side_rooms[i - first], "bench-", i, tail);
    double sent = (double)(pp_now_ns() - t0) / 1e6;
    free(tail);
    long long last = await_replies(b, first, answers);
    int duplicates = 0;
    for (size_t i = WARMUP; i < first + answers; i++)
        duplicates += pp_proxy_answers(b->proxy, i) - 1;
    double all = (double)(last - t0) / 1e6;
    printf("bench/pipeline (concurrent): %zu answers streaming at once, each %ld s at %ld characters/s\n", answers,
           seconds, cps);
    printf("  one answer alone: %.0f ms (send to answer complete); %zu at once: %.0f ms (first send to last answer "
           "complete; sending the %zu took %.0f ms)\n", one, answers, all, answers, sent);
    printf("  ratio: %.2fx; duplicate answers: %d\n", all / one, duplicates);
}

/* How many agent replicas hold a lease on a partition of agent.turns (redis-cli, as in
 * redis_info). */
static size_t turn_lease_holders(bench *b, int partitions)
{
    char port[16], out[400], key[96], holders[MAX_REPLICAS][64];
    size_t n = 0;
    snprintf(port, sizeof port, "%d", b->redis.port);
    snprintf(out, sizeof out, "%s/redis-lease.txt", b->dir);
    for (int p = 0; p < partitions; p++) {
        snprintf(key, sizeof key, "mr:bus:agent.turns:lease:agent:%d", p);
        unlink(out);
        char *argv[] = {"redis-cli", "-p", port, "-n", "0", "GET", key, NULL};
        int code = -1;
        mr_err err = {0};
        if (mr_tp_run(argv, out, &code, &err) != MR_OK || code != 0)
            die("reading a lease of agent.turns", &err);
        char *text = mr_tp_read_text(out);
        text[strcspn(text, "\n")] = '\0';
        size_t k = 0;
        while (k < n && strcmp(holders[k], text) != 0)
            k++;
        if (text[0] && k == n && n < MAX_REPLICAS)
            snprintf(holders[n++], sizeof holders[0], "%s", text);
        free(text);
    }
    return n;
}

/* MESSAGES messages at once, spread over the side rooms, each answered by a model that takes a
 * second, with `replicas` agent processes each answering one turn at a time: answers/s. */
static void measure_replicas(bench *b, size_t messages)
{
    one_at_a_time(b, 0, WARMUP);
    /* Leases spread as the replicas join; until every one holds some, some would stand idle. */
    int partitions = b->partitions ? b->partitions : 8;
    size_t want = b->replicas < (size_t)partitions ? b->replicas : (size_t)partitions;
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    while (turn_lease_holders(b, partitions) < want) {
        if (mr_clock_mono_ms() > deadline)
            die("the replicas never shared the partitions of agent.turns", NULL);
        mr_clock_sleep_ms(200);
    }
    char script[96];
    snprintf(script, sizeof script, "{\"stall_ms\": 1000, \"times\": %zu}", messages);
    script_stub(b, script);
    size_t first = WARMUP;
    long long t0 = pp_now_ns();
    for (size_t i = first; i < first + messages; i++)
        say(b, b->side_rooms[(i - first) % b->n_side_rooms], "bench-", i);
    long long last = await_replies(b, first, messages);
    int duplicates = 0;
    for (size_t i = first; i < first + messages; i++)
        duplicates += pp_proxy_answers(b->proxy, i) - 1;
    double secs = (double)(last - t0) / 1e9;
    printf("bench/pipeline (replicas): %zu agent replicas over Redis, %d partitions, one turn at a time each, a 1 s "
           "model; %zu messages over %zu rooms\n", b->replicas, partitions, messages, b->n_side_rooms);
    printf("  %.2f answers/s (first send to last answer, %.1f s); %zu replicas can give at most %zu; duplicate "
           "answers: %d\n", (double)messages / secs, secs, b->replicas, b->replicas, duplicates);
}

/* ---- stopping ---- */

static long peak_rss_kib(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    mr_err err = {0};
    if (mr_fs_read_all(path, 1 << 20, &text, &len, &err) != MR_OK)
        return -1;
    const char *at = strstr(text, "Maximum resident set size (kbytes): ");
    long kib = at ? strtol(at + strlen("Maximum resident set size (kbytes): "), NULL, 10) : -1;
    free(text);
    return kib;
}

/* SIGINT to each process group: time(1) ignores it and reports once the service stops cleanly. */
static void stop_platform(bench *b)
{
    for (size_t i = 0; i < b->n_procs; i++)
        kill(-b->procs[i].pid, SIGINT);
    for (size_t i = 0; i < b->n_procs; i++) {
        int st = 0;
        while (waitpid(b->procs[i].pid, &st, 0) < 0 && errno == EINTR)
            ;
        b->procs[i].rss_kib = peak_rss_kib(b->procs[i].rss_file);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "bench_pipeline: %s exited with status %d\n", b->procs[i].name, st);
    }
    printf("  peak RSS:");
    for (size_t i = 0; i < b->n_procs; i++)
        printf("%s %s %.1f MiB", i ? "," : "", b->procs[i].name, (double)b->procs[i].rss_kib / 1024);
    printf("\n");
}

static void teardown(bench *b)
{
    mr_err err = {0};
    /* The homeserver first: the proxy's long polls to it end, so the proxy can stop. */
    if (b->have_hs && mr_hs_peer_stop(&b->hs, &err) != MR_OK)
        fprintf(stderr, "bench_pipeline: %s\n", err.msg);
    pp_proxy_stop(b->proxy);
    if (b->have_stub && mr_model_stub_stop(&b->stub, &err) != MR_OK)
        fprintf(stderr, "bench_pipeline: %s\n", err.msg);
    if (b->have_kafka)
        mr_tp_kafka_destroy(&b->kafka);
    if (b->have_redis)
        mr_tp_redis_destroy(&b->redis);
    mr_http_client_free(b->human);
    /* KEEP=1 keeps the logs and files of the run for a look at an outlier. */
    if (getenv("KEEP"))
        fprintf(stderr, "bench_pipeline: kept %s\n", b->dir);
    else
        mr_tp_rmtree(b->dir, NULL);
}

int main(int argc, char **argv)
{
    const char *scenario = argc > 1 ? argv[1] : "";
    bool crash = strcmp(scenario, "crash") == 0, concurrent = strcmp(scenario, "concurrent") == 0;
    bool replicas = strcmp(scenario, "replicas") == 0;
    bench b = {.mode = crash || concurrent ? "embedded" : replicas ? "redis" : scenario};
    if (argc < 2 || argc > 4 ||
        (strcmp(b.mode, "embedded") != 0 && strcmp(b.mode, "redis") != 0 && strcmp(b.mode, "kafka") != 0)) {
        fprintf(stderr, "usage: bench_pipeline embedded|redis|kafka [SEQUENTIAL] [BURST]\n"
                        "       bench_pipeline crash [CRASHES] | concurrent [ANSWERS] | replicas R [MESSAGES]\n");
        return 2;
    }
    long sequential = argc > 2 ? strtol(argv[2], NULL, 10) : crash ? 5 : concurrent ? 100 : 300;
    long burst = argc > 3 ? strtol(argv[3], NULL, 10) : replicas ? 256 : 300;
    if (sequential < 1 || burst < 1) {
        fprintf(stderr, "bench_pipeline: the message counts must be positive\n");
        return 2;
    }
    if (replicas && (sequential < 1 || sequential > MAX_REPLICAS)) {
        fprintf(stderr, "bench_pipeline: replicas must be 1 to %d\n", MAX_REPLICAS);
        return 2;
    }
    if (replicas) {
        const char *rooms = getenv("ROOMS"), *parts = getenv("PARTITIONS");
        b.replicas = (size_t)sequential;
        b.partitions = parts ? (int)strtol(parts, NULL, 10) : 0;
        /* One turn at a time each: the replicas, not threads, give the throughput. */
        setenv("MINDROOM_AGENT_MAX_CONCURRENT_TURNS", "1", 0);
        sequential = rooms ? strtol(rooms, NULL, 10) : 64;
        if (sequential < 1 || b.partitions < 0 || b.partitions > 1024) {
            fprintf(stderr, "bench_pipeline: ROOMS must be positive and PARTITIONS 1 to 1024\n");
            return 2;
        }
    }
    /* Answers in one room come one after another; rooms go side by side. */
    if (concurrent || replicas) {
        b.n_side_rooms = (size_t)sequential;
        if (!(b.side_rooms = calloc(b.n_side_rooms, sizeof *b.side_rooms)))
            die("out of memory", NULL);
    }
    mr_err err = {0};
    check(mr_tp_mkdtemp("mr-bench-pipeline", b.dir, sizeof b.dir, &err), &err, "a temp dir");
    start_peers(&b);
    check(pp_proxy_start(b.hs.url, HUMAN, WARMUP + 1 + (size_t)sequential + (size_t)burst, &b.proxy, &b.proxy_port,
                         &err),
          &err, "starting the proxy");
    write_config(&b);
    register_human(&b);
    start_platform(&b);
    wait_ready(&b);
    join_room(&b, "bench", b.room);
    for (size_t i = 0; i < b.n_side_rooms; i++) {
        char alias[32];
        snprintf(alias, sizeof alias, "side%zu", i);
        join_room(&b, alias, b.side_rooms[i]);
    }
    if (crash)
        measure_crash(&b, (size_t)sequential);
    else if (concurrent)
        measure_concurrent(&b, (size_t)sequential);
    else if (replicas)
        measure_replicas(&b, (size_t)burst);
    else
        measure(&b, (size_t)sequential, (size_t)burst);
    stop_platform(&b);
    teardown(&b);
    free(b.side_rooms);
    return 0;
}
