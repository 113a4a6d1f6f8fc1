/* e2e_suite.c -- publishes cleartext events to a running mindroom-authz and checks its turns.
 *
 * "No turn" is shown without waiting on a clock: topics are keyed by room, so after the events
 * under test the suite publishes a sentinel message in each room it used and reads turns until
 * every sentinel's turn is there; a turn for an earlier event of that room would have come
 * before it. */
#include "e2e_suite.h"

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
#include "mindroom/store.h"
#include "peers.h"
#include "mindroom/clock.h"
#include "tp_check.h"

#define DEADLINE_MS 120000
#define LOBBY "!lobby:example.org"
#define LOUNGE "!lounge:example.org"
#define OTHER "!other:example.org"
#define ALICE "@alice:example.org"
#define BOB "@bob:example.org"
#define DAVE "@dave:example.org"
#define EVE "@eve:example.org"
#define ROUTER_ACCOUNT "@mindroom_router:example.org"
#define MIND_ACCOUNT "@mindroom_mind:example.org"

#define CONFIG_HEAD                                                                                 \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {rooms: [lobby]}\n  coder: {rooms: [lobby]}\n"                               \
    "teams:\n  devteam: {agents: [mind, coder], rooms: [lobby]}\n"

/* bob and dave may use the lobby; mind also answers members of the lounge. */
static const char CONFIG_V1[] = CONFIG_HEAD
    "authorization:\n"
    "  global_users: [\"" ALICE "\"]\n"
    "  room_permissions:\n"
    "    lobby: [\"" BOB "\", \"" DAVE "\"]\n"
    "  aliases:\n"
    "    \"" ALICE "\": [\"@telegram_1:example.org\"]\n"
    "  default_room_access: false\n"
    "  agent_reply_permissions:\n"
    "    \"*\": [\"" ALICE "\"]\n"
    "    coder: [\"" ALICE "\", \"" BOB "\"]\n"
    "    router: [\"*\"]\n"
    "    mind: {users: [\"" ALICE "\"], joined_rooms: [lounge]}\n";

/* bob is out of the lobby, eve is a global user whom every entity may answer. */
static const char CONFIG_V2[] = CONFIG_HEAD
    "authorization:\n"
    "  global_users: [\"" ALICE "\", \"" EVE "\"]\n"
    "  room_permissions:\n"
    "    lobby: [\"" DAVE "\"]\n"
    "  default_room_access: false\n"
    "  agent_reply_permissions:\n"
    "    \"*\": [\"" ALICE "\", \"" EVE "\"]\n";

/* A typo'd key: the file does not load. */
static const char CONFIG_BROKEN[] = CONFIG_HEAD "authorisation:\n  global_users: [\"" BOB "\"]\n";

typedef struct suite {
    const char *bus_url;
    const char *store_url;
    char dir[512];
    char config[600];
    char log[600];
    char turns_file[600];
    pid_t pid;
    int http_port;
    mr_bus *bus;
    mr_bus_consumer *turns_in;
    mr_store *store;
    json_t *turns;       /* every turn read so far, in order */
    FILE *jsonl;         /* the same, one per line, for proto/check.py */
    int seq;             /* makes sentinel IDs unique */
} suite;

static suite S;

static void write_config(const char *text)
{
    mr_err err = {0};
    mr_tp_check_step(mr_fs_write_atomic(S.config, text, strlen(text), 0600, true, &err), &err, S.config);
}

static void wait_log(const char *needle, int times)
{
    mr_err err = {0};
    mr_tp_check_step(mr_tp_wait_in_file(S.log, needle, times, DEADLINE_MS, S.pid, &err), &err, "mindroom-authz's log");
}

/* ---- publishing cleartext events ---- */

typedef struct event_spec {
    const char *account;
    const char *room;
    const char *event_id;
    const char *sender;
    const char *type;          /* default m.room.message */
    const char *rel_type;      /* m.thread, m.replace or NULL */
    const char *original_sender;
    bool state;
    bool encrypted;
    const char *member;        /* an m.room.member event of this user ... */
    const char *membership;    /* ... with this membership */
} event_spec;

/* The facts the gateway puts on every event of a managed room: the lobby and the lounge. */
static json_t *room_facts(const char *room)
{
    if (strcmp(room, LOBBY) == 0)
        return json_pack("{s:s, s:s}", "key", "lobby", "alias", "#lobby:example.org");
    if (strcmp(room, LOUNGE) == 0)
        return json_pack("{s:s}", "key", "lounge");
    return NULL;
}

static void publish_event(const event_spec *e)
{
    char body[300];
    /* Every body carries "body-": the log must never show one. */
    snprintf(body, sizeof body, "body-%s secret words", e->event_id);
    json_t *content = e->member ? json_pack("{s:s}", "membership", e->membership)
                                : json_pack("{s:s, s:s}", "msgtype", "m.text", "body", body);
    if (e->rel_type)
        json_object_set_new(content, "m.relates_to",
                            json_pack("{s:s, s:s}", "rel_type", e->rel_type, "event_id", "$root:example.org"));
    if (e->original_sender)
        json_object_set_new(content, "com.mindroom.original_sender", json_string(e->original_sender));
    json_t *event = json_pack("{s:s, s:s, s:s, s:I, s:o}", "event_id", e->event_id, "sender", e->sender, "type",
                              e->member ? "m.room.member" : e->type ? e->type : "m.room.message", "origin_server_ts",
                              (json_int_t)1764000000000, "content", content);
    if (e->state || e->member)
        json_object_set_new(event, "state_key", json_string(e->member ? e->member : ""));
    json_t *msg = json_pack("{s:i, s:s, s:s, s:s, s:o, s:b, s:s}", "v", 1, "type", "cleartext_event", "account",
                            e->account ? e->account : ROUTER_ACCOUNT, "room_id", e->room, "event", event,
                            "encrypted", e->encrypted, "verification", e->encrypted ? "tofu" : "unencrypted");
    json_t *facts = room_facts(e->room);
    if (facts)
        json_object_set_new(msg, "room", facts);
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    mr_err err = {0};
    mr_tp_check_step(mr_bus_publish(S.bus, "matrix.cleartext", e->room, text, strlen(text), &err), &err, "publish");
    free(text);
}

/* ---- reading turns ---- */

static mr_code on_turn(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)ctx;
    json_error_t jerr;
    json_t *t = json_loadb(m->value, m->len, 0, &jerr);
    if (!t)
        return mr_err_set(err, MR_EINVAL, "turn is not JSON: %s", jerr.text);
    json_array_append_new(S.turns, t);
    fprintf(S.jsonl, "%s\n", m->value);
    fflush(S.jsonl);
    return MR_OK;
}

static const char *turn_event_id(json_t *t)
{
    return json_string_value(json_object_get(json_object_get(t, "event"), "event_id"));
}

/* The turns of event_id read so far (0, 1, or more when duplicated); *out the last one. */
static int turns_of(const char *event_id, json_t **out)
{
    int n = 0;
    size_t i;
    json_t *t;
    json_array_foreach(S.turns, i, t) {
        if (strcmp(turn_event_id(t), event_id) == 0) {
            n++;
            if (out)
                *out = t;
        }
    }
    return n;
}

/* Publishes an alice message as a sentinel in each room and reads turns until all have come. */
static void drain(const char *const *rooms, size_t n)
{
    char ids[4][64];
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "$sentinel%d:example.org", ++S.seq);
        publish_event(&(event_spec){.room = rooms[i], .event_id = ids[i], .sender = ALICE});
    }
    mr_err err = {0};
    mr_tp_check_step(mr_bus_flush(S.bus, 30000, &err), &err, "flush");
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    for (;;) {
        size_t seen = 0;
        for (size_t i = 0; i < n; i++)
            seen += turns_of(ids[i], NULL) > 0;
        if (seen == n)
            return;
        if (mr_clock_mono_ms() > deadline)
            fail_msg("no turn for the sentinels after %d s; see %s", DEADLINE_MS / 1000, S.log);
        if (waitpid(S.pid, NULL, WNOHANG) == S.pid)
            fail_msg("mindroom-authz exited; see %s", S.log);
        size_t handled = 0;
        if (mr_bus_poll(S.turns_in, 500, 100, on_turn, NULL, &handled, &err) != MR_OK)
            fprintf(stderr, "polling agent.turns: %s\n", err.msg);
    }
}

static char *entities_of(json_t *t)
{
    char buf[256] = "";
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(t, "allowed_entities"), i, e) {
        if (i)
            strcat(buf, ",");
        strncat(buf, json_string_value(e), sizeof buf - strlen(buf) - 2);
    }
    return strdup(buf);
}

static const char *str_at(json_t *t, const char *key)
{
    return json_string_value(json_object_get(t, key));
}

/* Exactly one turn for event_id, with these fields (NULL: the field must be absent). */
static void expect_turn(const char *event_id, const char *sender, const char *entities, const char *room_key,
                        const char *original_sender, const char *thread_root)
{
    json_t *t = NULL;
    int n = turns_of(event_id, &t);
    if (n != 1)
        fail_msg("%s: %d turns, expected 1", event_id, n);
    assert_string_equal(str_at(t, "type"), "turn");
    assert_string_equal(str_at(t, "sender"), sender);
    char *got = entities_of(t);
    if (strcmp(got, entities) != 0)
        fail_msg("%s: allowed_entities [%s], expected [%s]", event_id, got, entities);
    free(got);
    if (room_key)
        assert_string_equal(str_at(t, "room_key"), room_key);
    else
        assert_null(json_object_get(t, "room_key"));
    if (original_sender)
        assert_string_equal(str_at(t, "original_sender"), original_sender);
    else
        assert_null(json_object_get(t, "original_sender"));
    json_t *thread = json_object_get(t, "thread");
    if (thread_root)
        assert_string_equal(str_at(thread, "root_event_id"), thread_root);
    else
        assert_null(thread);
}

static void expect_no_turn(const char *event_id)
{
    int n = turns_of(event_id, NULL);
    if (n != 0)
        fail_msg("%s: %d turns, expected none", event_id, n);
}

/* One "message denied" line for event_id, naming the step. */
static void expect_denied_log(const char *event_id, const char *step)
{
    char needle[256];
    snprintf(needle, sizeof needle, "message denied: no turn event_id=%s ", event_id);
    assert_int_equal(mr_tp_count_in_file(S.log, needle), 1);
    char *text = mr_tp_read_text(S.log);
    const char *line = strstr(text, needle);
    const char *end = strchr(line, '\n');
    char want[128];
    snprintf(want, sizeof want, "step=%s ", step);
    const char *at = strstr(line, want);
    if (!at || at > end)
        fail_msg("denied line for %s lacks %s:\n%.*s", event_id, want, (int)(end - line), line);
    free(text);
}

/* ---- the suite's peers and process ---- */

/* Who is in the rooms, as authz learns it: membership events on the bus, nothing in the store.
 * The lounge is managed too, so mind's joined_rooms can find it by key; mind has an account in
 * the unmanaged room. */
static void record_rooms(void)
{
    static const event_spec members[] = {
        {.room = LOUNGE, .event_id = "$mj1:example.org", .sender = DAVE, .member = DAVE, .membership = "join"},
        {.room = LOUNGE, .event_id = "$mj2:example.org", .sender = BOB, .member = BOB, .membership = "join"},
        {.room = LOUNGE, .event_id = "$mj3:example.org", .sender = BOB, .member = BOB, .membership = "leave"},
        {.room = OTHER, .event_id = "$mj4:example.org", .sender = MIND_ACCOUNT, .member = MIND_ACCOUNT,
         .membership = "join"},
    };
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        publish_event(&members[i]);
}

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_tp_mkdtemp("mr-authz-e2e", S.dir, sizeof S.dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    snprintf(S.config, sizeof S.config, "%s/config.yaml", S.dir);
    snprintf(S.log, sizeof S.log, "%s/authz.log", S.dir);
    snprintf(S.turns_file, sizeof S.turns_file, "%s/turns.jsonl", S.dir);
    S.jsonl = fopen(S.turns_file, "w");
    S.turns = json_array();
    write_config(CONFIG_V1);
    if (mr_store_open(S.store_url, NULL, &S.store, &err) != MR_OK ||
        mr_bus_open(S.bus_url, &(mr_bus_options){.client_id = "e2e"}, &S.bus, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    record_rooms();
    char group[64];
    snprintf(group, sizeof group, "e2e-turns-%d", (int)getpid());
    const char *topics[] = {"agent.turns"};
    if (mr_bus_subscribe(S.bus, group, topics, 1, &S.turns_in, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;

    setenv("MINDROOM_BUS_URL", S.bus_url, 1);
    setenv("MINDROOM_STORE_URL", S.store_url, 1);
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    setenv("MINDROOM_INSTANCE_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    setenv("LOG_LEVEL", "debug", 1);
    unsetenv("MINDROOM_NAMESPACE");
    unsetenv("MINDROOM_AUTHZ_LISTEN");
    if (mr_tp_free_port(&S.http_port, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", S.http_port);
    char *argv[] = {getenv("MINDROOM_AUTHZ_BIN"), "--config", S.config, "--listen", listen, NULL};
    if (!argv[0] || mr_tp_spawn(argv, S.log, &S.pid, &err) != MR_OK)
        return fprintf(stderr, "spawning mindroom-authz: %s\n", argv[0] ? err.msg : "MINDROOM_AUTHZ_BIN unset"), -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_tp_stop_if_running(S.pid);
    mr_bus_consumer_close(S.turns_in);
    mr_bus_close(S.bus);
    mr_store_close(S.store);
    if (S.jsonl)
        fclose(S.jsonl);
    json_decref(S.turns);
    mr_tp_cleanup_dir(S.dir);
    memset(&S.dir, 0, sizeof S.dir);
    return 0;
}

/* ---- the tests, in order: they share one mindroom-authz process ---- */

static void test_decisions(void **state)
{
    (void)state;
    static const event_spec events[] = {
        {.room = LOBBY, .event_id = "$a1:example.org", .sender = ALICE},
        {.room = LOBBY, .event_id = "$b1:example.org", .sender = BOB},
        {.room = LOBBY, .event_id = "$d1:example.org", .sender = DAVE},
        {.room = LOBBY, .event_id = "$e1:example.org", .sender = EVE},
        {.room = LOBBY, .event_id = "$t1:example.org", .sender = "@telegram_1:example.org"},
        {.room = LOBBY, .event_id = "$th1:example.org", .sender = BOB, .rel_type = "m.thread", .encrypted = true},
        {.room = LOBBY, .event_id = "$r1:example.org", .sender = ROUTER_ACCOUNT, .original_sender = BOB},
        {.room = LOBBY, .event_id = "$f1:example.org", .sender = ALICE, .original_sender = EVE},
        {.room = LOBBY, .event_id = "$m1:example.org", .sender = MIND_ACCOUNT, .encrypted = true},
        {.room = LOBBY, .event_id = "$rc1:example.org", .sender = ROUTER_ACCOUNT},
        {.room = OTHER, .event_id = "$oa1:example.org", .sender = ALICE},
        {.room = OTHER, .event_id = "$ob1:example.org", .sender = BOB},
    };
    /* The lounge's and the other room's members are noted before the lobby's events come. */
    drain((const char *const[]){LOUNGE, OTHER}, 2);
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        publish_event(&events[i]);
    drain((const char *const[]){LOBBY, OTHER}, 2);

    expect_turn("$a1:example.org", ALICE, "router,mind,coder,devteam", "lobby", NULL, NULL);
    json_t *a1 = NULL;
    turns_of("$a1:example.org", &a1);
    assert_string_equal(str_at(a1, "room_alias"), "#lobby:example.org");
    expect_turn("$b1:example.org", BOB, "router,coder", "lobby", NULL, NULL);
    /* dave is a member of the lounge: mind's joined_rooms lets it answer him. */
    expect_turn("$d1:example.org", DAVE, "router,mind", "lobby", NULL, NULL);
    expect_no_turn("$e1:example.org");
    expect_denied_log("$e1:example.org", "room_permissions");
    /* A bridged alias is judged, and named, as the user it stands for. */
    expect_turn("$t1:example.org", ALICE, "router,mind,coder,devteam", "lobby", NULL, NULL);
    expect_turn("$th1:example.org", BOB, "router,coder", "lobby", NULL, "$root:example.org");
    json_t *t = NULL;
    turns_of("$th1:example.org", &t);
    assert_true(json_is_true(json_object_get(t, "encrypted")));
    /* The router relays bob: replies are judged for bob, and the turn says so. */
    expect_turn("$r1:example.org", ROUTER_ACCOUNT, "router,coder", "lobby", BOB, NULL);
    /* A user cannot speak for someone else: the field is ignored. */
    expect_turn("$f1:example.org", ALICE, "router,mind,coder,devteam", "lobby", NULL, NULL);
    /* An agent's own answer, which the gateway published because it could not read it, and the
     * router's message that speaks for no one: nothing reads them back, no turn. */
    expect_no_turn("$m1:example.org");
    expect_no_turn("$rc1:example.org");
    /* An unmanaged room: no room key; only global users, since default_room_access is false. */
    expect_turn("$oa1:example.org", ALICE, "router,mind,coder,devteam", NULL, NULL, NULL);
    /* There the agent answers only with an account in the room: authz says which. */
    json_t *oa1 = NULL;
    turns_of("$oa1:example.org", &oa1);
    json_t *joined = json_object_get(oa1, "joined_entities");
    assert_int_equal(json_array_size(joined), 1);
    assert_string_equal(json_string_value(json_array_get(joined, 0)), "mind");
    expect_no_turn("$ob1:example.org");
    expect_denied_log("$ob1:example.org", "default_room_access");
}

static void test_duplicates_give_one_turn(void **state)
{
    (void)state;
    /* The same event as synced by two managed accounts, and a third copy of a denied one. */
    publish_event(&(event_spec){.account = ROUTER_ACCOUNT, .room = LOBBY, .event_id = "$dup1:example.org", .sender = BOB});
    publish_event(&(event_spec){.account = MIND_ACCOUNT, .room = LOBBY, .event_id = "$dup1:example.org", .sender = BOB});
    publish_event(&(event_spec){.account = MIND_ACCOUNT, .room = LOBBY, .event_id = "$e1:example.org", .sender = EVE});
    drain((const char *const[]){LOBBY}, 1);
    expect_turn("$dup1:example.org", BOB, "router,coder", "lobby", NULL, NULL);
    expect_no_turn("$e1:example.org");
    expect_denied_log("$e1:example.org", "room_permissions");
}

static void test_non_messages_are_skipped(void **state)
{
    (void)state;
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$st1:example.org", .sender = ALICE, .type = "m.room.topic", .state = true});
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$st2:example.org", .sender = ALICE, .state = true});
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$re1:example.org", .sender = ALICE, .type = "m.reaction"});
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$ed1:example.org", .sender = ALICE, .rel_type = "m.replace"});
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$en1:example.org", .sender = ALICE, .type = "m.room.encrypted", .encrypted = true});
    /* Not a cleartext_event at all: dropped with a log line, and the room goes on. */
    mr_err err = {0};
    const char *junk = "{\"v\":1,\"type\":\"cleartext_event\",\"room_id\":\"" LOBBY "\"}";
    mr_tp_check_step(mr_bus_publish(S.bus, "matrix.cleartext", LOBBY, junk, strlen(junk), &err), &err, "publish junk");
    drain((const char *const[]){LOBBY}, 1);
    const char *skipped[] = {"$st1:example.org", "$st2:example.org", "$re1:example.org", "$ed1:example.org",
                             "$en1:example.org"};
    for (size_t i = 0; i < 5; i++)
        expect_no_turn(skipped[i]);
    assert_int_equal(mr_tp_count_in_file(S.log, "dropping a message that is not a cleartext_event"), 1);
    assert_int_equal(mr_tp_count_in_file(S.log, "reason=\"account: missing\""), 1);
}

/* The counts of every message so far, by outcome, and readiness once consuming. */
static void test_health_and_metrics(void **state)
{
    (void)state;
    assert_int_equal(mr_tp_http_get(S.http_port, "/healthz", NULL), 200);
    char *body = NULL;
    assert_int_equal(mr_tp_http_get(S.http_port, "/readyz", &body), 200);
    assert_string_equal(body, "{\"status\":\"ready\"}");
    free(body);
    assert_int_equal(mr_tp_http_get(S.http_port, "/metrics", &body), 200);
    /* 8 allowed events of test_decisions, $dup1 and 6 sentinels; $e1 and $ob1; the second
     * $dup1 and the third $e1; 4 membership events, 5 other non-messages and the entities' own
     * $m1 and $rc1; 1 malformed. */
    static const char *const lines[] = {
        "mindroom_authz_messages_total{outcome=\"turn\"} 15\n",
        "mindroom_authz_messages_total{outcome=\"denied\"} 2\n",
        "mindroom_authz_messages_total{outcome=\"duplicate\"} 2\n",
        "mindroom_authz_messages_total{outcome=\"skipped\"} 11\n",
        "mindroom_authz_messages_total{outcome=\"malformed\"} 1\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(body, lines[i]))
            fail_msg("/metrics lacks %s in:\n%s", lines[i], body);
    free(body);
}

static void test_sighup_changes_later_decisions(void **state)
{
    (void)state;
    /* Messages in flight around the reload are all handled, under one rule set or the other. */
    char ids[40][48];
    for (int i = 0; i < 40; i++) {
        snprintf(ids[i], sizeof ids[i], "$burst%d:example.org", i);
        if (i == 20) {
            write_config(CONFIG_V2);
            assert_int_equal(kill(S.pid, SIGHUP), 0);
        }
        publish_event(&(event_spec){.room = LOBBY, .event_id = ids[i], .sender = ALICE});
    }
    wait_log("(generation 1)", 1);
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$b2:example.org", .sender = BOB});
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$e2:example.org", .sender = EVE});
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$d2:example.org", .sender = DAVE});
    drain((const char *const[]){LOBBY}, 1);
    expect_no_turn("$b2:example.org");
    expect_denied_log("$b2:example.org", "room_permissions");
    expect_turn("$e2:example.org", EVE, "router,mind,coder,devteam", "lobby", NULL, NULL);
    /* No policy names dave now, and "*" lists only alice and eve. */
    expect_turn("$d2:example.org", DAVE, "", "lobby", NULL, NULL);
    for (int i = 0; i < 40; i++)
        assert_int_equal(turns_of(ids[i], NULL), 1);
}

static void test_sighup_with_broken_config_keeps_serving(void **state)
{
    (void)state;
    write_config(CONFIG_BROKEN);
    assert_int_equal(kill(S.pid, SIGHUP), 0);
    wait_log("config reload failed, keeping the previous config", 1);
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$b3:example.org", .sender = BOB});
    publish_event(&(event_spec){.room = LOBBY, .event_id = "$e3:example.org", .sender = EVE});
    drain((const char *const[]){LOBBY}, 1);
    /* Still the rules of CONFIG_V2. */
    expect_no_turn("$b3:example.org");
    expect_turn("$e3:example.org", EVE, "router,mind,coder,devteam", "lobby", NULL, NULL);
}

static void test_turns_validate_and_log_has_no_body(void **state)
{
    (void)state;
    assert_true(json_array_size(S.turns) >= 15);
    mr_err err = {0};
    mr_tp_check_step(mr_tp_proto_check("agent.turns", S.turns_file, &err), &err, "proto/check.py");
    /* Every body carried "body-"; the process logged at debug level and never wrote one. */
    assert_int_equal(mr_tp_count_in_file(S.log, "body-"), 0);
    assert_int_equal(mr_tp_count_in_file(S.log, "secret words"), 0);
}

static void test_sigterm_exits_0(void **state)
{
    (void)state;
    assert_int_equal(kill(S.pid, SIGTERM), 0);
    int st = 0;
    mr_err err = {0};
    mr_tp_check_step(mr_tp_wait_exit(S.pid, DEADLINE_MS, &st, &err), &err, "mindroom-authz stopping on SIGTERM");
    S.pid = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(mr_tp_count_in_file(S.log, "mindroom-authz stopped (exit status 0)"), 1);
}

int e2e_run(const char *name, const char *bus_url, const char *store_url)
{
    S.bus_url = bus_url;
    S.store_url = store_url;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_duplicates_give_one_turn),
        cmocka_unit_test(test_non_messages_are_skipped),
        cmocka_unit_test(test_health_and_metrics),
        cmocka_unit_test(test_sighup_changes_later_decisions),
        cmocka_unit_test(test_sighup_with_broken_config_keeps_serving),
        cmocka_unit_test(test_turns_validate_and_log_has_no_body),
        cmocka_unit_test(test_sigterm_exits_0),
    };
    return _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], group_setup, group_teardown);
}
