/* test_e2e_redis.c -- mindroom-crypto as a process on Redis Streams: what goes in on
 * matrix.inbound, matrix.outbound and matrix.todevice, and what comes out on matrix.cleartext and
 * matrix.send, each output line checked with proto/check.py. (Decryption itself is
 * test_decrypt_process.c's.)
 *
 * "Nothing came out" is shown without a clock: outputs are keyed by room, so after the inputs
 * under test a sentinel goes in for each room, and once every sentinel's output is there, any
 * output of an earlier input of that room would have come before it. */
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "mindroom/bus.h"
#include "mindroom/fsutil.h"
#include "peers.h"
#include "mindroom/clock.h"
#include "tp_check.h"

#define DEADLINE_MS 120000
#define LOBBY "!lobby:example.org"
#define DEN "!den:example.org"
#define ROUTER "@mindroom_router:example.org"
#define MIND "@mindroom_mind:example.org"

typedef struct suite {
    mr_tp_redis redis;
    char dir[512];
    char log[600];
    char out_file[2][600];   /* matrix.cleartext, matrix.send as JSON lines */
    FILE *out[2];
    pid_t pid;
    mr_bus *bus;
    mr_bus_consumer *reader;
    json_t *got[2];          /* every message read from each output topic, in order */
    int seq;
} suite;

static suite S;
static const char *const OUT_TOPICS[2] = {"matrix.cleartext", "matrix.send"};

static void publish(const char *topic, const char *key, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    mr_err err = {0};
    mr_tp_check_step(mr_bus_publish(S.bus, topic, key, text, strlen(text), &err), &err, topic);
    free(text);
}

static void publish_inbound(const char *account, const char *room, const char *event_id, const char *type,
                            const char *session)
{
    json_t *content = session ? json_pack("{s:s, s:s, s:s, s:s}", "algorithm", "m.megolm.v1.aes-sha2", "ciphertext",
                                          "AwgA", "sender_key", "K", "session_id", session)
                              : json_pack("{s:s, s:s}", "msgtype", "m.text", "body", "hello");
    json_t *event = json_pack("{s:s, s:s, s:s, s:I, s:o}", "event_id", event_id, "sender", "@alice:example.org",
                              "type", type, "origin_server_ts", (json_int_t)1764000000000, "content", content);
    publish("matrix.inbound", room,
            json_pack("{s:i, s:s, s:s, s:s, s:o, s:s}", "v", 1, "type", "inbound_event", "account", account,
                      "room_id", room, "event", event, "membership", "join"));
}

static void publish_intent(const char *room, const char *txn, json_t *fields)
{
    json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:s}", "v", 1, "type", "outbound_intent", "account", MIND,
                            "room_id", room, "txn_id", txn);
    json_object_update(msg, fields);
    json_decref(fields);
    publish("matrix.outbound", room, msg);
}

static mr_code on_output(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)ctx;
    int i = strcmp(m->topic, OUT_TOPICS[0]) == 0 ? 0 : 1;
    json_t *msg = json_loadb(m->value, m->len, 0, NULL);
    if (!msg)
        return mr_err_set(err, MR_EINVAL, "%s: not JSON", m->topic);
    json_object_set_new(msg, "_key", json_string(m->key));
    json_array_append_new(S.got[i], msg);
    fprintf(S.out[i], "%s\n", m->value);
    fflush(S.out[i]);
    return MR_OK;
}

/* The outputs on topic i for an event ID (cleartext) or txn ID (send). */
static int outputs_of(int i, const char *id, json_t **last)
{
    int n = 0;
    size_t k;
    json_t *msg;
    json_array_foreach(S.got[i], k, msg) {
        const char *got = i == 0 ? json_string_value(json_object_get(json_object_get(msg, "event"), "event_id"))
                                 : json_string_value(json_object_get(msg, "txn_id"));
        if (got && strcmp(got, id) == 0) {
            n++;
            if (last)
                *last = msg;
        }
    }
    return n;
}

/* A sentinel event and intent in each room, then reads until all four outputs are in. */
static void drain(void)
{
    const char *rooms[2] = {LOBBY, DEN};
    char ev[2][64], txn[2][64];
    for (int r = 0; r < 2; r++) {
        snprintf(ev[r], sizeof ev[r], "$sentinel%d:example.org", ++S.seq);
        snprintf(txn[r], sizeof txn[r], "sentinel%d", S.seq);
        publish_inbound(ROUTER, rooms[r], ev[r], "m.room.message", NULL);
        publish_intent(rooms[r], txn[r], json_pack("{s:s, s:b}", "action", "typing", "typing", 1));
    }
    mr_err err = {0};
    mr_tp_check_step(mr_bus_flush(S.bus, 30000, &err), &err, "flush");
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    for (;;) {
        int seen = 0;
        for (int r = 0; r < 2; r++)
            seen += (outputs_of(0, ev[r], NULL) > 0) + (outputs_of(1, txn[r], NULL) > 0);
        if (seen == 4)
            return;
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the sentinels never came through; see %s", S.log);
        if (waitpid(S.pid, NULL, WNOHANG) == S.pid)
            fail_msg("mindroom-crypto exited; see %s", S.log);
        size_t handled = 0;
        if (mr_bus_poll(S.reader, 500, 100, on_output, NULL, &handled, &err) != MR_OK)
            fprintf(stderr, "polling: %s\n", err.msg);
    }
}

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_tp_redis_start(&S.redis, &err) != MR_OK || mr_tp_mkdtemp("mr-crypto-e2e", S.dir, sizeof S.dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    snprintf(S.log, sizeof S.log, "%s/crypto.log", S.dir);
    for (int i = 0; i < 2; i++) {
        snprintf(S.out_file[i], sizeof S.out_file[i], "%s/%s.jsonl", S.dir, OUT_TOPICS[i]);
        S.out[i] = fopen(S.out_file[i], "w");
        S.got[i] = json_array();
    }
    char config[600];
    snprintf(config, sizeof config, "%s/config.yaml", S.dir);
    const char *cfg = "models:\n  default: {provider: openai, id: gpt-5.6}\nagents:\n  mind: {rooms: [lobby]}\n";
    if (mr_fs_write_atomic(config, cfg, strlen(cfg), 0600, true, &err) != MR_OK ||
        mr_bus_open(S.redis.url, &(mr_bus_options){.client_id = "e2e"}, &S.bus, &err) != MR_OK ||
        mr_bus_subscribe(S.bus, "e2e-reader", OUT_TOPICS, 2, &S.reader, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    char store[96];
    snprintf(store, sizeof store, "redis://127.0.0.1:%d/1", S.redis.port);
    setenv("MINDROOM_BUS_URL", S.redis.url, 1);
    setenv("MINDROOM_STORE_URL", store, 1);
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    setenv("MINDROOM_INSTANCE_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    setenv("LOG_LEVEL", "debug", 1);
    unsetenv("MINDROOM_NAMESPACE");
    unsetenv("MINDROOM_CRYPTO_LISTEN");
    char *argv[] = {getenv("MINDROOM_CRYPTO_BIN"), "--config", config, NULL};
    if (!argv[0] || mr_tp_spawn(argv, S.log, &S.pid, &err) != MR_OK)
        return fprintf(stderr, "spawning mindroom-crypto: %s\n", argv[0] ? err.msg : "MINDROOM_CRYPTO_BIN unset"), -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_tp_stop_if_running(S.pid);
    mr_bus_consumer_close(S.reader);
    mr_bus_close(S.bus);
    for (int i = 0; i < 2; i++) {
        if (S.out[i])
            fclose(S.out[i]);
        json_decref(S.got[i]);
    }
    mr_tp_cleanup_dir(S.dir);
    mr_tp_redis_destroy(&S.redis);
    return 0;
}

static const char *str_at(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void test_inbound(void **state)
{
    (void)state;
    /* One event as two accounts synced it, two encrypted events of one session, one of another. */
    publish_inbound(ROUTER, LOBBY, "$plain:example.org", "m.room.message", NULL);
    publish_inbound(MIND, LOBBY, "$plain:example.org", "m.room.message", NULL);
    publish_inbound(ROUTER, LOBBY, "$enc1:example.org", "m.room.encrypted", "SESSION_A");
    publish_inbound(MIND, LOBBY, "$enc1:example.org", "m.room.encrypted", "SESSION_A");
    publish_inbound(ROUTER, LOBBY, "$enc2:example.org", "m.room.encrypted", "SESSION_A");
    publish_inbound(ROUTER, DEN, "$enc3:example.org", "m.room.encrypted", "SESSION_B");
    publish_inbound(ROUTER, DEN, "$topic:example.org", "m.room.topic", NULL);
    const char *junk = "{\"v\":1,\"type\":\"inbound_event\",\"room_id\":\"" DEN "\"}";
    mr_err err = {0};
    mr_tp_check_step(mr_bus_publish(S.bus, "matrix.inbound", DEN, junk, strlen(junk), &err), &err, "junk");
    drain();

    json_t *c = NULL;
    assert_int_equal(outputs_of(0, "$plain:example.org", &c), 2);
    assert_string_equal(str_at(c, "_key"), LOBBY);
    assert_string_equal(str_at(c, "account"), MIND);
    assert_true(json_is_false(json_object_get(c, "encrypted")));
    assert_string_equal(str_at(c, "verification"), "unencrypted");
    assert_string_equal(str_at(json_object_get(json_object_get(c, "event"), "content"), "body"), "hello");
    assert_int_equal(outputs_of(0, "$topic:example.org", NULL), 1);
    for (int i = 1; i <= 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "$enc%d:example.org", i);
        assert_int_equal(outputs_of(0, id, NULL), 0);
    }
    /* Without their session the encrypted events wait in the store, each copy of each. */
    assert_int_equal(mr_tp_count_in_file(S.log, "waits for the key of session SESSION_A"), 3);
    assert_int_equal(mr_tp_count_in_file(S.log, "waits for the key of session SESSION_B"), 1);
    assert_int_equal(mr_tp_count_in_file(S.log, "dropping a message that breaks its schema"), 1);
}

static void test_outbound_and_todevice(void **state)
{
    (void)state;
    publish_intent(LOBBY, "mr.send-1",
                   json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "action", "send", "event_type", "m.room.message",
                             "content", "msgtype", "m.text", "body", "answer", "in_reply_to", "$plain:example.org"));
    publish_intent(DEN, "mr.typing-1", json_pack("{s:s, s:b, s:i}", "action", "typing", "typing", 1, "timeout_ms", 30000));
    publish_intent(DEN, "mr.redact-1", json_pack("{s:s, s:s}", "action", "redact", "redacts", "$old:example.org"));
    publish("matrix.todevice", MIND,
            json_pack("{s:i, s:s, s:s, s:s, s:{s:s, s:s, s:{}}}", "v", 1, "type", "todevice_event", "account", MIND,
                      "device_id", "DEV", "event", "sender", "@alice:example.org", "type", "m.room_key_request",
                      "content"));
    drain();

    json_t *r = NULL;
    assert_int_equal(outputs_of(1, "mr.send-1", &r), 1);
    assert_string_equal(str_at(r, "kind"), "room_event");
    assert_string_equal(str_at(r, "_key"), LOBBY);
    assert_string_equal(str_at(r, "account"), MIND);
    assert_string_equal(str_at(r, "event_type"), "m.room.message");
    assert_string_equal(str_at(json_object_get(r, "content"), "body"), "answer");
    assert_null(json_object_get(r, "in_reply_to"));
    assert_int_equal(outputs_of(1, "mr.typing-1", &r), 1);
    assert_string_equal(str_at(r, "kind"), "typing");
    assert_true(json_is_true(json_object_get(r, "typing")));
    assert_int_equal(json_integer_value(json_object_get(r, "timeout_ms")), 30000);
    assert_int_equal(outputs_of(1, "mr.redact-1", &r), 1);
    assert_string_equal(str_at(r, "kind"), "redact");
    assert_string_equal(str_at(r, "redacts"), "$old:example.org");
    assert_string_equal(str_at(r, "_key"), DEN);
}

static void test_outputs_validate(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        assert_true(json_array_size(S.got[i]) >= 4);
        mr_err err = {0};
        mr_tp_check_step(mr_tp_proto_check(OUT_TOPICS[i], S.out_file[i], &err), &err, "proto/check.py");
    }
}

static void test_sigterm_exits_0(void **state)
{
    (void)state;
    int st = 0;
    mr_err err = {0};
    mr_tp_check_step(mr_tp_kill_wait(S.pid, SIGTERM, &st, &err), &err, "stopping mindroom-crypto");
    S.pid = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbound),
        cmocka_unit_test(test_outbound_and_todevice),
        cmocka_unit_test(test_outputs_validate),
        cmocka_unit_test(test_sigterm_exits_0),
    };
    return cmocka_run_group_tests_name("crypto_e2e_redis", tests, group_setup, group_teardown);
}
