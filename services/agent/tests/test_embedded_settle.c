/* test_embedded_settle.c -- the agent on `mindroom run`'s journaled in-process bus: a turn's
 * answers are with their consumers before the journal commits them, and the room's next turn
 * does not wait for that commit; only the bookkeeping that must follow the answers to disk (the
 * claim marked `done`, the turn leaving the in-flight record) waits, on the journal's writer.
 *
 * The agent runs in this process (mr_agent_serve on a thread, as `mindroom run` runs it) over
 * an inproc:///<dir>/bus.db journal and a SQLite store, with the model stub. The test takes the
 * journal's before-commit hook (which syncs the store first, as the runtime's does) and holds
 * the writer there: nothing commits while it is held, as on a disk whose fsyncs stall. Also: a
 * room's turns reach the model over one connection, an answer's delivery record goes out while
 * the model works, and typing shows only for an answer slower than the typing delay: on while
 * the model holds its answer, off after; none at all for a quick one. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_internal.h"
#include "agent_service.h"
#include "commit_hold.h"
#include "mindroom/bus.h"
#include "mindroom/clock.h"
#include "mindroom/fsutil.h"
#include "mindroom/runtime.h"
#include "mindroom/store.h"
#include "model_stub_peer.h"
#include "peers.h"
#include "tp_check.h"

#define DEADLINE_MS 30000
#define KEY "sk-settle-0123456789abcdef"
#define LOBBY "!lobby:example.org"
#define ALICE "@alice:example.org"
/* Long beside the stub's quick answer even on a loaded machine, short beside DEADLINE_MS. */
#define TYPING_DELAY "1500"

typedef struct suite {
    mr_model_stub stub;
    char dir[512];
    mr_runtime *rt;
    mr_bus_consumer *outbound;
    json_t *intents;
    mr_tp_commit_hold hold;
} suite;

static suite S = {.hold = MR_TP_COMMIT_HOLD_INIT};

static void publish_turn(const char *event_id, const char *body)
{
    json_t *turn = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:s, s:I, s:{s:s, s:s}}, s:s, s:[s], s:s}", "v", 1,
                             "type", "turn", "room_id", LOBBY, "event", "event_id", event_id, "sender", ALICE,
                             "type", "m.room.message", "origin_server_ts", (json_int_t)1764000000000, "content",
                             "msgtype", "m.text", "body", body, "sender", ALICE, "allowed_entities", "mind",
                             "room_key", "lobby");
    char *text = json_dumps(turn, JSON_COMPACT);
    json_decref(turn);
    assert_non_null(text);
    mr_err err = {0};
    mr_tp_check_step(mr_bus_publish(S.rt->bus, "agent.turns", LOBBY, text, strlen(text), &err), &err, "publishing a turn");
    free(text);
}

/* Keeps each intent (JSON) in the array ctx. */
static mr_code keep_intent(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    json_t *intent = json_loadb(m->value, m->len, 0, NULL);
    return intent && json_array_append_new(ctx, intent) == 0
               ? MR_OK
               : mr_err_set(err, MR_EINVAL, "%s: an intent that is not JSON", m->topic);
}

/* The answer of event_id is on matrix.outbound: a send whose body is the stub's whole echo. */
static bool answered(const char *event_id, const char *body)
{
    char txn[TXN_MAX];
    txn_id(event_id, "mind", "m", -1, txn);
    size_t i;
    json_t *it;
    json_array_foreach(S.intents, i, it) {
        const char *id = json_string_value(json_object_get(it, "txn_id"));
        const char *text = json_string_value(json_object_get(json_object_get(it, "content"), "body"));
        if (id && text && strcmp(id, txn) == 0 && strstr(text, body))
            return true;
    }
    return false;
}

static void wait_answered(const char *event_id, const char *body)
{
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    mr_err err = {0};
    while (!answered(event_id, body)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("no answer to %s within %d s while the journal's commit was held", event_id,
                     DEADLINE_MS / 1000);
        size_t handled = 0;
        mr_tp_check_step(mr_bus_poll(S.outbound, 100, 100, keep_intent, S.intents, &handled, &err), &err, "polling matrix.outbound");
    }
}

/* The typing notices of event_id's answer on matrix.outbound: those turning it on in *on, the
 * others in *off. */
static void typing_of(const char *event_id, int *on, int *off)
{
    char prefix[TXN_MAX];
    txn_id(event_id, "mind", "t", 0, prefix);
    /* Every notice's ID is the first's but for the number at its end. */
    size_t n = strlen(prefix) - 1;
    *on = *off = 0;
    size_t i;
    json_t *it;
    json_array_foreach(S.intents, i, it) {
        const char *id = json_string_value(json_object_get(it, "txn_id"));
        const char *action = json_string_value(json_object_get(it, "action"));
        if (id && action && strcmp(action, "typing") == 0 && strncmp(id, prefix, n) == 0)
            (json_is_true(json_object_get(it, "typing")) ? on : off)[0]++;
    }
}

static char *claim_of(const char *event_id)
{
    char key[256];
    snprintf(key, sizeof key, "reply:%s:mind", event_id);
    return mr_tp_stored(S.rt, key, "reading a claim");
}

static size_t inflight_turns(void)
{
    char key[128];
    snprintf(key, sizeof key, "agent:inflight:%s", "settle-test");
    mr_store_hash h = {0};
    mr_err err = {0};
    mr_tp_check_step(mr_store_hgetall(S.rt->store, key, &h, &err), &err, "reading the in-flight record");
    size_t n = h.count;
    mr_store_hash_free(&h);
    return n;
}

static bool claim_is(const char *event_id, const char *want)
{
    char *v = claim_of(event_id);
    bool is = v && strncmp(v, want, strlen(want)) == 0;
    free(v);
    return is;
}

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_model_stub_start(KEY, NULL, &S.stub, &err) != MR_OK ||
        mr_tp_mkdtemp("mr-agent-settle", S.dir, sizeof S.dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    char config[600], text[1024];
    snprintf(config, sizeof config, "%s/config.yaml", S.dir);
    snprintf(text, sizeof text,
             "models:\n  default: {provider: openai, id: stub-model, host: \"%s\"}\n"
             "agents:\n  mind: {display_name: Mind, role: Personal assistant, rooms: [lobby]}\n",
             S.stub.url);
    if (mr_fs_write_atomic(config, text, strlen(text), 0600, true, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    unsetenv("MINDROOM_NAMESPACE");
    unsetenv("MINDROOM_AGENT_LISTEN");
    setenv("MINDROOM_WORKER_ID", "settle-test", 1);
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    setenv("MINDROOM_INSTANCE_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    setenv("OPENAI_API_KEY", KEY, 1);
    setenv("MINDROOM_AGENT_TYPING_DELAY_MS", TYPING_DELAY, 1);
    mr_runtime_opts ro = {.service = "agent", .config_path = config, .storage_path = S.dir};
    if (mr_tp_commit_hold_open(&S.hold, &ro, &S.rt) != 0)
        return -1;
    S.intents = json_array();
    if (mr_bus_subscribe(S.rt->bus, "test-outbound", (const char *const[]){"matrix.outbound"}, 1, &S.outbound,
                         &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    return mr_tp_commit_hold_serve(&S.hold, S.rt, mr_agent_serve);
}

static int group_teardown(void **state)
{
    (void)state;
    mr_tp_commit_hold_close(&S.hold, S.rt, S.outbound);
    json_decref(S.intents);
    mr_err err = {0};
    bool stopped = mr_model_stub_stop(&S.stub, &err) == MR_OK;
    if (!stopped)
        fprintf(stderr, "stopping the model stub: %s\n", err.msg);
    mr_tp_cleanup_dir(S.dir);
    return stopped ? 0 : -1;
}

/* Two turns of one room while no commit can finish: both are answered (the second did not wait
 * for the first's commit), neither claim says `done` and both turns stay in the in-flight record
 * (a crash now answers them again, as edits of what went out); once the commit goes through,
 * both claims are `done` and the record is empty. */
static void test_next_turn_does_not_wait_for_the_commit(void **state)
{
    (void)state;
    /* A first turn, committed, so the agent has subscribed and settled in. */
    publish_turn("$warm:example.org", "warm up");
    wait_answered("$warm:example.org", "warm up");
    mr_tp_commit_hold_set(&S.hold, true);
    publish_turn("$one:example.org", "first question");
    wait_answered("$one:example.org", "first question");
    publish_turn("$two:example.org", "second question");
    wait_answered("$two:example.org", "second question");
    /* Everything published since the hold waits for the writer, which waits at the hold. */
    assert_int_equal(mr_tp_commit_hold_wait(&S.hold, DEADLINE_MS), 1);
    assert_true(claim_is("$one:example.org", "started"));
    assert_true(claim_is("$two:example.org", "started"));
    assert_true(inflight_turns() >= 2);

    mr_tp_commit_hold_set(&S.hold, false);
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    while (!(claim_is("$one:example.org", "done") && claim_is("$two:example.org", "done") && inflight_turns() == 0)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("claims not done or turns still in flight %d s after the commit was let go", DEADLINE_MS / 1000);
        mr_err err = {0};
        mr_tp_check_step(mr_bus_flush(S.rt->bus, DEADLINE_MS, &err), &err, "flushing");
        size_t handled = 0;
        mr_tp_check_step(mr_bus_poll(S.outbound, 10, 100, keep_intent, S.intents, &handled, &err), &err, "polling matrix.outbound");
    }
}

/* The room's turns, one after another as people write, reach the model over one kept-alive
 * connection: no connect (or TLS handshake, against a real provider) in front of each answer. */
static void test_turns_reuse_one_model_connection(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "resetting the model stub");
    static const char *const events[] = {"$c1:example.org", "$c2:example.org", "$c3:example.org", "$c4:example.org"};
    for (size_t i = 0; i < 4; i++) {
        publish_turn(events[i], events[i] + 1);
        wait_answered(events[i], events[i] + 1);
    }
    size_t n = 0, connections = 0;
    mr_tp_check_step(mr_model_stub_connections(&S.stub, &n, &connections, &err), &err, "reading the stub's requests");
    assert_int_equal(n, 4);
    assert_int_equal(connections, 1);
}

/* Waits until event_id's claim is done, which the agent marks after it published everything of
 * the answer, then takes every intent published before. */
static void wait_done(const char *event_id)
{
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    mr_err err = {0};
    while (!claim_is(event_id, "done")) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the claim of %s was not done within %d s", event_id, DEADLINE_MS / 1000);
        mr_tp_check_step(mr_bus_flush(S.rt->bus, DEADLINE_MS, &err), &err, "flushing");
        size_t handled = 0;
        mr_tp_check_step(mr_bus_poll(S.outbound, 10, 100, keep_intent, S.intents, &handled, &err), &err,
                         "polling matrix.outbound");
    }
    size_t handled;
    do {
        handled = 0;
        mr_tp_check_step(mr_bus_poll(S.outbound, 0, 100, keep_intent, S.intents, &handled, &err), &err,
                         "polling matrix.outbound");
    } while (handled > 0);
}

/* An answer done before MINDROOM_AGENT_TYPING_DELAY_MS publishes no typing at all: neither the
 * notice that starts it nor the one that ends it goes through crypto and the gateway. */
static void test_quick_answer_publishes_no_typing(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "resetting the model stub");
    const char *ev = "$quick:example.org";
    publish_turn(ev, "quick question");
    wait_answered(ev, "quick question");
    wait_done(ev);
    int on, off;
    typing_of(ev, &on, &off);
    assert_int_equal(on, 0);
    assert_int_equal(off, 0);
}

/* A turn whose answer the stub holds until told to release it. */
static void publish_held_turn(const char *event_id, const char *body)
{
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"hold\": true}", &err), &err, "holding the answer");
    publish_turn(event_id, body);
}

/* Typing goes on and the answer's delivery record is written while the model still works: the
 * stub holds the answer until both are seen (the record goes out once the request is out, not
 * in front of it; typing once the delay has passed, from the stream's tick, not only once the
 * answer comes). After the answer, one notice turns typing off. */
static void test_typing_while_the_model_works(void **state)
{
    (void)state;
    mr_err err = {0};
    const char *ev = "$held:example.org";
    publish_held_turn(ev, "held question");
    char prefix[TXN_MAX], key[TXN_MAX + 8];
    txn_id(ev, "mind", "", -1, prefix);
    snprintf(key, sizeof key, "answer:%s", prefix);
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    int on = 0, off = 0;
    while (!on) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("no typing notice within %d s while the model held its answer", DEADLINE_MS / 1000);
        size_t handled = 0;
        mr_tp_check_step(mr_bus_poll(S.outbound, 10, 100, keep_intent, S.intents, &handled, &err), &err,
                         "polling matrix.outbound");
        typing_of(ev, &on, &off);
    }
    assert_int_equal(off, 0);
    assert_false(answered(ev, "held question"));
    char *where = mr_tp_stored(S.rt, key, "reading the answer's delivery record");
    assert_non_null(where);
    assert_non_null(strstr(where, ev));
    free(where);
    mr_tp_check_step(mr_model_stub_release(&S.stub, &err), &err, "releasing the answer");
    /* Held past the first edit's interval, the answer's first message is its first chunk: the
     * whole text comes in edits. */
    wait_done(ev);
    typing_of(ev, &on, &off);
    assert_int_equal(on, 1);
    assert_int_equal(off, 1);
    /* The last notice of the answer ends typing. */
    json_t *last = json_array_get(S.intents, json_array_size(S.intents) - 1);
    assert_string_equal(json_string_value(json_object_get(last, "action")), "typing");
    assert_true(json_is_false(json_object_get(last, "typing")));
}

/* The person's message and the first message's `begun:` marker are written while the model
 * works: the stub holds the answer until both are in the store (after the request, not in front
 * of it), and nothing of the answer is on the bus yet. Once the answer is out, the thread's
 * history holds the question, then the answer. */
static void test_the_turn_is_recorded_while_the_model_works(void **state)
{
    (void)state;
    mr_err err = {0};
    const char *ev = "$recorded:example.org";
    publish_held_turn(ev, "recorded question");
    char history[256], first[TXN_MAX], begun[TXN_MAX + 8];
    snprintf(history, sizeof history, "history:%s:%s", LOBBY, ev);
    txn_id(ev, "mind", "m", -1, first);
    snprintf(begun, sizeof begun, "begun:%s", first);
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    char *thread = NULL, *marker = NULL;
    while (!thread || !marker) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the question (%s) and the begun marker (%s) were not stored within %d s while the model "
                     "held its answer", thread ? "stored" : "missing", marker ? "stored" : "missing",
                     DEADLINE_MS / 1000);
        free(thread);
        free(marker);
        mr_clock_sleep_ms(10);
        thread = mr_tp_stored(S.rt, history, "reading the thread's history");
        marker = mr_tp_stored(S.rt, begun, "reading the first message's begun marker");
    }
    assert_non_null(strstr(thread, "recorded question"));
    free(thread);
    free(marker);
    size_t handled = 0;
    mr_tp_check_step(mr_bus_poll(S.outbound, 0, 100, keep_intent, S.intents, &handled, &err), &err,
                     "polling matrix.outbound");
    assert_false(answered(ev, "recorded question"));
    mr_tp_check_step(mr_model_stub_release(&S.stub, &err), &err, "releasing the answer");
    wait_done(ev);
    thread = mr_tp_stored(S.rt, history, "reading the thread's history");
    assert_non_null(thread);
    json_t *doc = json_loads(thread, 0, NULL);
    free(thread);
    json_t *messages = json_object_get(doc, "messages");
    assert_int_equal(json_array_size(messages), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(messages, 0), "event_id")), ev);
    json_t *reply = json_array_get(messages, 1);
    assert_string_equal(json_string_value(json_object_get(reply, "entity")), "mind");
    assert_non_null(strstr(json_string_value(json_object_get(reply, "body")), "recorded question"));
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_turn_does_not_wait_for_the_commit),
        cmocka_unit_test(test_turns_reuse_one_model_connection),
        cmocka_unit_test(test_quick_answer_publishes_no_typing),
        cmocka_unit_test(test_typing_while_the_model_works),
        cmocka_unit_test(test_the_turn_is_recorded_while_the_model_works),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
