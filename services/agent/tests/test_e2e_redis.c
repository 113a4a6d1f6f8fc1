/* test_e2e_redis.c -- mindroom-agent as a process on Redis Streams with the store in Redis and
 * the model stub: turns go in on agent.turns, intents come out on matrix.outbound.
 *
 * The suite stands in for the gateway where the agent needs it: for every send intent it
 * records `sent:<txn_id>` -> an event ID in the store (proto/store.md), as the gateway does
 * after the homeserver answers, and it feeds the router's hand-off back in as a turn, as the
 * sync loop, crypto and authz would. "No answer" is shown without a clock: turns are keyed by
 * room and handled in order, so once a later sentinel turn of the room is answered, an earlier
 * turn has had its chance. Rooms are answered side by side, and the agent is stopped and killed
 * in the middle of answers and started again. */
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

#include "agent_internal.h"
#include "mindroom/bus.h"
#include "mindroom/fsutil.h"
#include "mindroom/oauth.h"
#include "mindroom/store.h"
#include "model_stub_peer.h"
#include "peers.h"
#include "mindroom/clock.h"
#include "tp_check.h"

#define DEADLINE_MS 120000
#define KEY "sk-e2e-0123456789abcdef"
#define LOBBY "!lobby:example.org"
#define DEV "!dev:example.org"
#define CHAT "!chat:example.org"
#define DM "!dm:example.org"
#define MANY "!many:example.org"
#define TOOLS "!tools:example.org"
#define TOOLY "@mindroom_tooly:example.org"
#define CREW "!crew:example.org"
#define MANY_AGENTS 100
#define ALICE "@alice:example.org"
#define ROUTER "@mindroom_router:example.org"
#define MIND "@mindroom_mind:example.org"
#define CODER "@mindroom_coder:example.org"
#define DOTS " \xe2\x8b\xaf"
#define LONG_ANSWER                                                                                          \
    "Streams carry the answer piece by piece, so the room sees it grow while the model is still writing. "   \
    "Each edit replaces the whole text, and the last one drops the marker at the end."

typedef struct suite {
    mr_tp_redis redis;
    mr_model_stub stub;
    char dir[512];
    char log[600];
    char config[600];
    char intents_file[600];
    FILE *jsonl;
    pid_t pid;
    mr_bus *bus;
    mr_bus_consumer *outbound;
    mr_store *store;
    json_t *intents;     /* every intent read, in order, with "_key" added */
    int seq;
} suite;

static suite S;

static const char *str_at(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- turns in ---- */

typedef struct turn_spec {
    const char *room;
    const char *event_id;
    const char *sender;          /* default alice */
    const char *body;
    const char *thread_root;
    const char *original_sender;
    const char *allowed;         /* comma-separated */
    const char *joined;          /* joined_entities of an unmanaged room, comma-separated */
    json_t *content;             /* instead of body (stolen) */
} turn_spec;

static json_t *name_list(const char *names)
{
    json_t *list = json_array();
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", names);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        json_array_append_new(list, json_string(tok));
    return list;
}

/* The turn message authz would publish for t (JSON text the caller frees). */
static char *turn_text(const turn_spec *t)
{
    json_t *content = t->content ? t->content : json_pack("{s:s, s:s}", "msgtype", "m.text", "body", t->body);
    if (t->thread_root && !json_object_get(content, "m.relates_to"))
        json_object_set_new(content, "m.relates_to",
                            json_pack("{s:s, s:s, s:b, s:{s:s}}", "rel_type", "m.thread", "event_id", t->thread_root,
                                      "is_falling_back", 1, "m.in_reply_to", "event_id", t->thread_root));
    const char *sender = t->sender ? t->sender : ALICE;
    json_t *allowed = name_list(t->allowed);
    json_t *turn = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:s, s:I, s:o}, s:s, s:o}", "v", 1, "type", "turn",
                             "room_id", t->room, "event", "event_id", t->event_id, "sender", sender, "type",
                             "m.room.message", "origin_server_ts", (json_int_t)1764000000000, "content", content,
                             "sender", sender, "allowed_entities", allowed);
    /* The managed rooms' keys, as their events carry them to authz; the DM is not managed. */
    const char *key = !strcmp(t->room, LOBBY) ? "lobby" : !strcmp(t->room, DEV) ? "dev" : !strcmp(t->room, CHAT) ? "chat"
                      : !strcmp(t->room, MANY) ? "many" : !strcmp(t->room, TOOLS) ? "tools"
                      : !strcmp(t->room, CREW) ? "crew" : NULL;
    if (key)
        json_object_set_new(turn, "room_key", json_string(key));
    else
        json_object_set_new(turn, "joined_entities", name_list(t->joined ? t->joined : ""));
    if (t->thread_root)
        json_object_set_new(turn, "thread", json_pack("{s:s}", "root_event_id", t->thread_root));
    if (t->original_sender)
        json_object_set_new(turn, "original_sender", json_string(t->original_sender));
    char *text = json_dumps(turn, JSON_COMPACT);
    json_decref(turn);
    assert_non_null(text);
    return text;
}

static void publish_turn(const turn_spec *t)
{
    char *text = turn_text(t);
    mr_err err = {0};
    mr_tp_check_step(mr_bus_publish(S.bus, "agent.turns", t->room, text, strlen(text), &err), &err, "publish turn");
    mr_tp_check_step(mr_bus_flush(S.bus, 30000, &err), &err, "flush");
    free(text);
}

/* ---- intents out ---- */

static mr_code on_intent(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    (void)ctx;
    json_t *i = json_loadb(m->value, m->len, 0, NULL);
    if (!i)
        return mr_err_set(err, MR_EINVAL, "intent is not JSON");
    fprintf(S.jsonl, "%s\n", m->value);
    fflush(S.jsonl);
    json_object_set_new(i, "_key", json_string(m->key));
    json_array_append_new(S.intents, i);
    /* Nothing stands in for the gateway: the agent learns no event ID of what it sent. */
    return MR_OK;
}

/* The intents of (event, entity) so far, in order. */
static json_t *intents_of(const char *event_id, const char *entity)
{
    char prefix[TXN_MAX];
    txn_id(event_id, entity, "", -1, prefix);
    json_t *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(S.intents, i, it) {
        if (strncmp(str_at(it, "txn_id"), prefix, strlen(prefix)) == 0)
            json_array_append(out, it);
    }
    return out;
}

static bool finished(const char *event_id, const char *entity)
{
    json_t *list = intents_of(event_id, entity);
    json_t *last = json_array_get(list, json_array_size(list) - 1);
    bool done = last && strcmp(str_at(last, "action"), "typing") == 0 && json_is_false(json_object_get(last, "typing"));
    json_decref(list);
    return done;
}

static bool has_send(const char *event_id, const char *entity)
{
    json_t *list = intents_of(event_id, entity);
    bool any = json_array_size(list) > 0;
    json_decref(list);
    return any;
}

/* The first part of the answer (the message, not an edit) is on the bus. */
static bool first_part_sent(const char *event_id, const char *entity)
{
    char txn[TXN_MAX];
    txn_id(event_id, entity, "m", -1, txn);
    json_t *list = intents_of(event_id, entity);
    bool found = false;
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
        found |= strcmp(str_at(it, "txn_id"), txn) == 0;
    json_decref(list);
    return found;
}

/* Messages of (event, entity) that are not edits: what a person sees as separate replies. A
 * send repeated under its transaction ID makes no second message. */
static size_t messages_of(const char *event_id, const char *entity)
{
    json_t *list = intents_of(event_id, entity), *txns = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it)
        if (strcmp(str_at(it, "action"), "send") == 0 && !json_object_get(json_object_get(it, "content"), "m.new_content"))
            json_object_set_new(txns, str_at(it, "txn_id"), json_true());
    size_t n = json_object_size(txns);
    json_decref(txns);
    json_decref(list);
    return n;
}

/* An edit of the first part of (event, entity): it names that message by its transaction ID and
 * leaves the event ID to the gateway. */
static void expect_edit_of_first_part(json_t *intent, const char *event_id, const char *entity)
{
    char first[TXN_MAX];
    txn_id(event_id, entity, "m", -1, first);
    assert_string_equal(str_at(intent, "replaces_txn"), first);
    json_t *rel = json_object_get(json_object_get(intent, "content"), "m.relates_to");
    assert_string_equal(str_at(rel, "rel_type"), "m.replace");
    assert_null(json_object_get(rel, "event_id"));
}

typedef bool (*done_fn)(const char *event_id, const char *entity);

/* Reads intents until done(event_id, entity). */
static void wait_for(done_fn done, const char *event_id, const char *entity)
{
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    mr_err err = {0};
    while (!done(event_id, entity)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("%s never answered %s; see %s", entity, event_id, S.log);
        if (S.pid <= 0 || waitpid(S.pid, NULL, WNOHANG) == S.pid)
            fail_msg("mindroom-agent is not running; see %s", S.log);
        size_t handled = 0;
        if (mr_bus_poll(S.outbound, 100, 100, on_intent, NULL, &handled, &err) != MR_OK)
            fprintf(stderr, "polling matrix.outbound: %s\n", err.msg);
    }
}

/* A message that entity (account user_id) answers in room, after everything published before. */
static void sentinel_for(const char *room, const char *entity, const char *user_id)
{
    char id[64];
    snprintf(id, sizeof id, "$sentinel%d:example.org", ++S.seq);
    json_t *content = json_pack("{s:s, s:s, s:{s:[s]}}", "msgtype", "m.text", "body", "sentinel", "m.mentions",
                                "user_ids", user_id);
    publish_turn(&(turn_spec){.room = room, .event_id = id, .content = content, .allowed = "router,mind,coder",
                              .joined = entity});
    wait_for(finished, id, entity);
}

static void sentinel(const char *room)
{
    sentinel_for(room, "coder", CODER);
}

/* The content of the last intent of (event, entity) of that kind, checked to be the only one. */
static json_t *last_of(json_t *list, const char *action, bool typing_on)
{
    json_t *found = NULL;
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        if (strcmp(str_at(it, "action"), action) == 0 &&
            (strcmp(action, "typing") != 0 || json_is_true(json_object_get(it, "typing")) == typing_on))
            found = it;
    }
    return found;
}

static json_t *stub_requests(void)
{
    json_t *reqs = NULL;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_requests(&S.stub, &reqs, &err), &err, "stub requests");
    return reqs;
}

/* ---- setup ---- */

static mr_code spawn_agent(mr_err *err)
{
    char *argv[] = {getenv("MINDROOM_AGENT_BIN"), "--config", S.config, NULL};
    if (!argv[0])
        return mr_err_set(err, MR_EINVAL, "MINDROOM_AGENT_BIN unset");
    return mr_tp_spawn(argv, S.log, &S.pid, err);
}

/* Signals mindroom-agent and reaps it. Never pid 0: that would signal this test's own group. */
static void stop_agent(int sig, int *status)
{
    mr_err err = {0};
    if (S.pid <= 0)
        fail_msg("mindroom-agent is not running (an earlier test did not start it again)");
    pid_t pid = S.pid;
    S.pid = 0;
    mr_tp_check_step(mr_tp_kill_wait(pid, sig, status, &err), &err, "stopping mindroom-agent");
}

/* Reads what a stopped agent left on matrix.outbound. */
static void drain_intents(void)
{
    mr_err err = {0};
    size_t handled = 1;
    while (handled > 0)
        mr_tp_check_step(mr_bus_poll(S.outbound, 500, 100, on_intent, NULL, &handled, &err), &err, "polling matrix.outbound");
}

static int group_setup(void **state)
{
    (void)state;
    mr_err err = {0};
    if (mr_tp_redis_start(&S.redis, &err) != MR_OK || mr_model_stub_start(KEY, NULL, &S.stub, &err) != MR_OK ||
        mr_tp_mkdtemp("mr-agent-e2e", S.dir, sizeof S.dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    snprintf(S.log, sizeof S.log, "%s/agent.log", S.dir);
    snprintf(S.intents_file, sizeof S.intents_file, "%s/intents.jsonl", S.dir);
    S.jsonl = fopen(S.intents_file, "w");
    S.intents = json_array();
    char text[12288];
    snprintf(S.config, sizeof S.config, "%s/config.yaml", S.dir);
    int used = snprintf(text, sizeof text,
             "models:\n  default: {provider: openai, id: stub-model, host: \"%s\"}\n"
             "  refused: {provider: openai, id: stub-model, host: \"%s\", api_key_env: E2E_WRONG_KEY}\n"
             "agents:\n"
             "  mind:\n    display_name: Mind\n    role: Personal assistant\n    rooms: [lobby]\n"
             "  coder:\n    display_name: Coder\n    role: Writes and reviews code\n    rooms: [lobby, dev]\n"
             "    instructions: [Review carefully., Prefer C17.]\n"
             "  plain: {display_name: Plain, rooms: [chat], thread_mode: room}\n"
             "  tooly: {display_name: Tooly, rooms: [tools], tools: [memory, matrix_message, shell, scheduler, thread_summary,\n"
             "          oauth_api, duckduckgo], context_files: [SOUL.md]}\n"
             "  privy: {display_name: Privy, rooms: [tools], tools: [memory], private: {per: user}}\n"
             "  scribe: {display_name: Scribe, role: Keeps notes, tools: [memory], private: {per: user}}\n"
             "  flaky: {display_name: Flaky, model: refused}\n",
             S.stub.url, S.stub.url);
    /* A room where a hundred agents may answer. */
    for (int i = 0; i < MANY_AGENTS; i++)
        used += snprintf(text + used, sizeof text - (size_t)used, "  a%03d: {display_name: A%03d, rooms: [many]}\n", i, i);
    used += snprintf(text + used, sizeof text - (size_t)used,
                     "teams:\n"
                     "  leads: {display_name: Leads, role: Plans the work, agents: [mind, scribe], mode: coordinate,\n"
                     "          rooms: [crew]}\n"
                     "  panel: {display_name: Panel, agents: [mind, coder], mode: collaborate, rooms: [crew]}\n"
                     "  shaky: {display_name: Shaky, agents: [mind, flaky], mode: collaborate, rooms: [crew]}\n"
                     "oauth_providers:\n"
                     "  github: {authorize_url: \"https://github.example/authorize\", token_url: \"https://github.example/token\",\n"
                     "           client_id: gh-client, scopes: [repo], api_base_url: \"https://api.github.example\"}\n");
    char store[96];
    snprintf(store, sizeof store, "redis://127.0.0.1:%d/1", S.redis.port);
    if (mr_fs_write_atomic(S.config, text, strlen(text), 0600, true, &err) != MR_OK ||
        mr_store_open(store, NULL, &S.store, &err) != MR_OK ||
        mr_bus_open(S.redis.url, &(mr_bus_options){.client_id = "e2e"}, &S.bus, &err) != MR_OK ||
        mr_bus_subscribe(S.bus, "e2e-outbound", (const char *const[]){"matrix.outbound"}, 1, &S.outbound, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    setenv("MINDROOM_BUS_URL", S.redis.url, 1);
    setenv("MINDROOM_STORE_URL", store, 1);
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    setenv("MINDROOM_INSTANCE_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    setenv("OPENAI_API_KEY", KEY, 1);
    setenv("E2E_WRONG_KEY", "sk-wrong-0123456789", 1);
    setenv("LOG_LEVEL", "debug", 1);
    setenv("MINDROOM_AGENT_MAX_CONCURRENT_TURNS", "4", 1);
    /* Typing on at once: each answer's intents begin and end with a typing notice. */
    setenv("MINDROOM_AGENT_TYPING_DELAY_MS", "0", 1);
    setenv("MINDROOM_OAUTH_GITHUB_CLIENT_SECRET", "gh-secret", 1);
    setenv("MINDROOM_PUBLIC_URL", "https://mindroom.example.org", 1);
    unsetenv("MINDROOM_WORKER_ID");
    unsetenv("MINDROOM_NAMESPACE");
    unsetenv("MINDROOM_AGENT_LISTEN");
    if (spawn_agent(&err) != MR_OK)
        return fprintf(stderr, "spawning mindroom-agent: %s\n", err.msg), -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mr_tp_stop_if_running(S.pid);
    mr_bus_consumer_close(S.outbound);
    mr_bus_close(S.bus);
    mr_store_close(S.store);
    if (S.jsonl)
        fclose(S.jsonl);
    json_decref(S.intents);
    mr_err err = {0};
    int rc = 0;
    if (mr_model_stub_stop(&S.stub, &err) != MR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        rc = -1;
    }
    mr_tp_cleanup_dir(S.dir);
    mr_tp_redis_destroy(&S.redis);
    return rc;
}

/* ---- the tests, in order: they share one mindroom-agent process ---- */

static void expect_thread_relation(json_t *content, const char *root, const char *reply_to)
{
    json_t *rel = json_object_get(content, "m.relates_to");
    assert_string_equal(str_at(rel, "rel_type"), "m.thread");
    assert_string_equal(str_at(rel, "event_id"), root);
    assert_true(json_is_true(json_object_get(rel, "is_falling_back")));
    assert_string_equal(str_at(json_object_get(rel, "m.in_reply_to"), "event_id"), reply_to);
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

static void test_invalid_settings_exit_2(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"MINDROOM_AGENT_MAX_CONCURRENT_TURNS", "0", "MINDROOM_AGENT_MAX_CONCURRENT_TURNS: \"0\" is not a whole number"},
        {"MINDROOM_AGENT_MAX_CONCURRENT_TURNS", "8x", "MINDROOM_AGENT_MAX_CONCURRENT_TURNS: \"8x\" is not a whole number"},
        {"MINDROOM_AGENT_TYPING_DELAY_MS", "-1", "MINDROOM_AGENT_TYPING_DELAY_MS: \"-1\" is not a whole number from 0 to 60000"},
        {"MINDROOM_AGENT_TYPING_DELAY_MS", "60001",
         "MINDROOM_AGENT_TYPING_DELAY_MS: \"60001\" is not a whole number from 0 to 60000"},
        {"MINDROOM_WORKER_ID", "two words", "MINDROOM_WORKER_ID: \"two words\" may hold only letters"},
        {"MINDROOM_TOOL_TIMEOUT_SECONDS", "0", "MINDROOM_TOOL_TIMEOUT_SECONDS: \"0\" is not a whole number from 1 to 3600"},
        {"MINDROOM_TOOL_MAX_ROUNDS", "many", "MINDROOM_TOOL_MAX_ROUNDS: \"many\" is not a whole number from 1 to 100"},
        {"MINDROOM_TEAM_MEMBER_TIMEOUT_SECONDS", "0",
         "MINDROOM_TEAM_MEMBER_TIMEOUT_SECONDS: \"0\" is not a whole number from 1 to 3600"},
        {"MINDROOM_TOOL_FILE_AND_SHELL", "yes", "MINDROOM_TOOL_FILE_AND_SHELL: \"yes\" is neither 0 nor 1"},
        {"MINDROOM_PUBLIC_URL", "mindroom.example.org", "MINDROOM_PUBLIC_URL: \"mindroom.example.org\" is not an http(s) URL"},
    };
    char log[700];
    snprintf(log, sizeof log, "%s/bad-settings.log", S.dir);
    char *argv[] = {getenv("MINDROOM_AGENT_BIN"), "--config", S.config, NULL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *before = getenv(cases[i][0]);
        char *saved = before ? strdup(before) : NULL;
        setenv(cases[i][0], cases[i][1], 1);
        int code = -1;
        mr_err err = {0};
        mr_tp_check_step(mr_tp_run(argv, log, &code, &err), &err, "running mindroom-agent");
        if (saved)
            setenv(cases[i][0], saved, 1);
        else
            unsetenv(cases[i][0]);
        free(saved);
        assert_int_equal(code, 2);
        assert_int_equal(mr_tp_count_in_file(log, cases[i][2]), 1);
    }
    /* Refused before it touched anything: the worker it would have been never beat. */
    char *value = NULL;
    size_t len = 0;
    mr_err err = {0};
    assert_int_equal(mr_store_hget(S.store, WORKERS_KEY, "two words", &value, &len, &err), MR_ENOTFOUND);
    /* The one running uses the setting. */
    mr_tp_check_step(mr_tp_wait_in_file(S.log, "up to 4 turns at once", 1, DEADLINE_MS, S.pid, &err), &err, "start-up line");
}

static void test_one_agent_streams_a_thread_reply(void **state)
{
    (void)state;
    mr_err err = {0};
    /* Fourteen events (the role, then words) come at once, then nothing for 1.5 s: long enough
     * for the time-triggered edit whatever the ramp says at that moment. */
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"reply\": \"" LONG_ANSWER "\", \"stall_ms\": 1500, \"stall_after_chunks\": 14}",
                               &err), &err, "script");
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$q1:example.org", .body = "How do streams work?",
                              .allowed = "router,coder"});
    wait_for(finished, "$q1:example.org", "coder");
    json_t *list = intents_of("$q1:example.org", "coder");
    size_t n = json_array_size(list);
    assert_true(n >= 5);
    /* typing on, the first send, edits, the final edit, typing off. */
    json_t *first = json_array_get(list, 0), *send = json_array_get(list, 1);
    assert_string_equal(str_at(first, "action"), "typing");
    assert_true(json_is_true(json_object_get(first, "typing")));
    assert_int_equal(json_integer_value(json_object_get(first, "timeout_ms")), 30000);
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(list, i);
        assert_string_equal(str_at(it, "account"), CODER);
        assert_string_equal(str_at(it, "room_id"), DEV);
        assert_string_equal(str_at(it, "_key"), DEV);
    }
    char txn[TXN_MAX];
    txn_id("$q1:example.org", "coder", "m", -1, txn);
    assert_string_equal(str_at(send, "txn_id"), txn);
    assert_null(json_object_get(send, "replaces_txn"));
    assert_string_equal(str_at(send, "action"), "send");
    assert_string_equal(str_at(send, "event_type"), "m.room.message");
    assert_string_equal(str_at(send, "in_reply_to"), "$q1:example.org");
    json_t *c = json_object_get(send, "content");
    assert_string_equal(str_at(c, "msgtype"), "m.text");
    assert_true(ends_with(str_at(c, "body"), DOTS));
    assert_true(strncmp(str_at(c, "body"), "Streams carry", 13) == 0);
    expect_thread_relation(c, "$q1:example.org", "$q1:example.org");
    /* In-progress edits end in the marker; the final one is the whole answer without it. */
    size_t progress = 0;
    for (size_t i = 2; i + 2 < n; i++) {
        json_t *e = json_object_get(json_array_get(list, i), "content");
        expect_edit_of_first_part(json_array_get(list, i), "$q1:example.org", "coder");
        assert_true(ends_with(str_at(json_object_get(e, "m.new_content"), "body"), DOTS));
        progress++;
    }
    assert_true(progress >= 1);
    json_t *final = json_array_get(list, n - 2);
    txn_id("$q1:example.org", "coder", "f", -1, txn);
    assert_string_equal(str_at(final, "txn_id"), txn);
    json_t *fc = json_object_get(final, "content");
    assert_string_equal(str_at(json_object_get(fc, "m.new_content"), "body"), LONG_ANSWER);
    assert_string_equal(str_at(fc, "body"), "* " LONG_ANSWER);
    expect_edit_of_first_part(final, "$q1:example.org", "coder");
    json_t *off = json_array_get(list, n - 1);
    assert_true(json_is_false(json_object_get(off, "typing")));
    json_decref(list);
}

/* Tools in a turn: the calls show in the streamed answer, matrix_message goes out as the agent's
 * own intent in the thread, memory keeps who asked, and tools this build lacks are named. */
static void test_tools_in_a_turn(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"tool_calls\": [{\"id\": \"call_1\", \"name\": \"matrix_message\", "
                                        "\"arguments\": {\"action\": \"send\", \"text\": \"Heads up\"}}, "
                                        "{\"id\": \"call_2\", \"name\": \"memory\", \"arguments\": "
                                        "{\"action\": \"add\", \"text\": \"likes tea\"}}]}",
                               &err), &err, "script");
    char ws[700];
    snprintf(ws, sizeof ws, "%s/mindroom_data/agents/tooly/workspace", S.dir);
    mr_tp_check_step(mr_fs_mkdirs(ws, 0700, &err), &err, "workspace");
    char soul[800];
    snprintf(soul, sizeof soul, "%s/SOUL.md", ws);
    mr_tp_check_step(mr_fs_write_atomic(soul, "Tooly is fond of tea.", 21, 0600, true, &err), &err, "SOUL.md");
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = "$tool1:example.org", .body = "Remember I like tea",
                              .allowed = "router,tooly"});
    wait_for(finished, "$tool1:example.org", "tooly");
    json_t *list = intents_of("$tool1:example.org", "tooly");
    char sent_txn[TXN_MAX];
    txn_id("$tool1:example.org", "tooly", "x", 0, sent_txn);
    json_t *sent = NULL, *final = NULL, *it;
    size_t i;
    json_array_foreach(list, i, it) {
        if (strcmp(str_at(it, "txn_id"), sent_txn) == 0)
            sent = it;
        if (json_object_get(json_object_get(it, "content"), "m.new_content"))
            final = it;
    }
    assert_non_null(sent);
    assert_string_equal(str_at(sent, "account"), TOOLY);
    assert_string_equal(str_at(sent, "event_type"), "m.room.message");
    assert_string_equal(str_at(json_object_get(sent, "content"), "body"), "Heads up");
    assert_string_equal(str_at(json_object_get(json_object_get(sent, "content"), "m.relates_to"), "event_id"),
                        "$tool1:example.org");
    assert_non_null(final);
    const char *body = str_at(json_object_get(json_object_get(final, "content"), "m.new_content"), "body");
    assert_non_null(strstr(body, "<tool>matrix_message(action=send, text=Heads up)\nSent.</tool>"));
    assert_non_null(strstr(body, "<tool>memory(action=add, text=likes tea)\nRemembered as m1</tool>"));
    assert_non_null(strstr(body, "Tool result: Remembered as m1"));
    json_decref(list);
    char path[700], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/mindroom_data/agents/tooly/workspace/MEMORY.md", S.dir);
    mr_tp_check_step(mr_fs_read_all(path, 1 << 20, &text, &len, &err), &err, "MEMORY.md");
    assert_non_null(strstr(text, "- m1: likes tea (from " ALICE ")"));
    free(text);
    /* The request offered the five tools that run (shell is off), and the others were named. */
    json_t *reqs = stub_requests();
    json_t *body0 = json_object_get(json_array_get(reqs, 0), "body");
    assert_int_equal(json_array_size(json_object_get(body0, "tools")), 5);
    /* context_files come into the system prompt from the workspace. */
    const char *system = str_at(json_array_get(json_object_get(body0, "messages"), 0), "content");
    assert_non_null(strstr(system, "## Personality Context\n\n### SOUL.md\nTooly is fond of tea."));
    json_decref(reqs);
    /* The next answer has the memory in its prompt (the file backend's MEMORY.md). */
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = "$tool2:example.org", .body = "What do I like?",
                              .allowed = "router,tooly"});
    wait_for(finished, "$tool2:example.org", "tooly");
    reqs = stub_requests();
    system = str_at(json_array_get(json_object_get(json_object_get(json_array_get(reqs, 0), "body"), "messages"), 0),
                    "content");
    assert_non_null(strstr(system, "## Memory (MEMORY.md in your workspace)\n# Memory\n\n- m1: likes tea (from " ALICE ")"));
    json_decref(reqs);
    assert_true(mr_tp_count_in_file(S.log, "this build does not implement the tool duckduckgo yet") >= 1);
    assert_int_equal(mr_tp_count_in_file(S.log, "the tool thread_summary yet"), 0);
    assert_true(mr_tp_count_in_file(S.log, "the tool shell is off until MINDROOM_TOOL_FILE_AND_SHELL=1") >= 1);
}

/* The last tool result the model was shown in request i of the stub's log. */
static char *tool_result_of(json_t *reqs, size_t i)
{
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, i), "body"), "messages");
    return strdup(str_at(json_array_get(msgs, json_array_size(msgs) - 1), "content"));
}

/* An agent with private: remembers for each requester apart: what alice asked it to keep is in
 * her prompt and her searches, never in bob's. */
static void test_private_memory_per_requester(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"tool_calls\": [{\"name\": \"memory\", \"arguments\": "
                                        "{\"action\": \"add\", \"text\": \"takes her tea black\"}}]}", &err),
          &err, "script");
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = "$priv1:example.org", .body = "Remember my tea",
                              .allowed = "router,privy"});
    wait_for(finished, "$priv1:example.org", "privy");
    json_t *reqs = stub_requests();
    char *result = tool_result_of(reqs, 1);
    assert_string_equal(result, "Remembered as m1");
    free(result);
    json_decref(reqs);

    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"tool_calls\": [{\"name\": \"memory\", \"arguments\": "
                                        "{\"action\": \"search\", \"query\": \"tea\"}}]}", &err), &err, "script");
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = "$priv2:example.org", .sender = "@bob:example.org",
                              .body = "How do I take my tea?", .allowed = "router,privy"});
    wait_for(finished, "$priv2:example.org", "privy");
    reqs = stub_requests();
    result = tool_result_of(reqs, 1);
    assert_string_equal(result, "No memory matches.");
    free(result);
    const char *system = str_at(json_array_get(json_object_get(json_object_get(json_array_get(reqs, 0), "body"),
                                                               "messages"), 0), "content");
    assert_null(strstr(system, "tea black"));
    json_decref(reqs);

    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = "$priv3:example.org", .body = "And me?",
                              .allowed = "router,privy"});
    wait_for(finished, "$priv3:example.org", "privy");
    reqs = stub_requests();
    system = str_at(json_array_get(json_object_get(json_object_get(json_array_get(reqs, 0), "body"), "messages"), 0),
                    "content");
    assert_non_null(strstr(system, "- m1: takes her tea black (from " ALICE ")"));
    json_decref(reqs);
    /* Nothing of it in the shared workspace. */
    char path[700];
    snprintf(path, sizeof path, "%s/mindroom_data/agents/privy/workspace/MEMORY.md", S.dir);
    assert_false(mr_fs_exists(path));
}

/* ---- teams ---- */

/* The system prompt of the stub's request i. */
static const char *system_of(json_t *reqs, size_t i)
{
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, i), "body"), "messages");
    return str_at(json_array_get(msgs, 0), "content");
}

/* The text of (event, entity)'s answer as it ended (malloc'd). */
static char *final_text(const char *event_id, const char *entity)
{
    json_t *list = intents_of(event_id, entity);
    json_t *send = last_of(list, "send", false);
    json_t *content = json_object_get(send, "content");
    json_t *fresh = json_object_get(content, "m.new_content");
    char *text = strdup(str_at(fresh ? fresh : content, "body"));
    json_decref(list);
    return text;
}

/* coordinate: the team's model hands the task to a member with delegate_task; the member answers
 * with its own role and tools, for the requester (its private memory is alice's), its tool call
 * shows in the team's answer, and its answer goes back to the leader, who answers. A call naming
 * someone outside the team is an error for the leader, and nothing runs for it. */
static void test_coordinate_team_delegates_to_a_member(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "[{\"tool_calls\": [{\"id\": \"call_d\", \"name\": \"delegate_task\", "
                                        "\"arguments\": {\"member\": \"scribe\", \"task\": \"Note that the demo is on Friday\"}}, "
                                        "{\"id\": \"call_m\", \"name\": \"memory\", \"arguments\": "
                                        "{\"action\": \"add\", \"text\": \"the crew demos on Fridays\"}}, "
                                        "{\"id\": \"call_x\", \"name\": \"delegate_task\", "
                                        "\"arguments\": {\"member\": \"coder\", \"task\": \"Review it\"}}]}, "
                                        "{\"tool_calls\": [{\"name\": \"memory\", \"arguments\": "
                                        "{\"action\": \"add\", \"text\": \"demo on Friday\"}}]}]",
                               &err), &err, "script");
    publish_turn(&(turn_spec){.room = CREW, .event_id = "$team1:example.org", .body = "@Leads note the demo date",
                              .allowed = "router,leads,panel,shaky"});
    wait_for(finished, "$team1:example.org", "leads");
    json_t *reqs = stub_requests();
    /* The leader, the member's two rounds, the leader again. */
    assert_int_equal(json_array_size(reqs), 4);
    json_t *lead = json_object_get(json_array_get(reqs, 0), "body");
    json_t *tools = json_object_get(lead, "tools");
    assert_int_equal(json_array_size(tools), 2);
    assert_string_equal(str_at(json_object_get(json_array_get(tools, 0), "function"), "name"), "delegate_task");
    assert_string_equal(str_at(json_object_get(json_array_get(tools, 1), "function"), "name"), "memory");
    assert_non_null(strstr(system_of(reqs, 0), "Plans the work"));
    assert_non_null(strstr(system_of(reqs, 0), "## Your team's members\n- mind (Mind): Personal assistant\n"
                                               "- scribe (Scribe): Keeps notes\n"));
    /* The member: its own role and tools, the task as the user's message. */
    assert_non_null(strstr(system_of(reqs, 1), "Keeps notes"));
    assert_null(strstr(system_of(reqs, 1), "Plans the work"));
    assert_non_null(strstr(system_of(reqs, 1), "You are Scribe (@mindroom_scribe:example.org), an agent in a Matrix "
                                               "chat, a member of the team Leads"));
    json_t *member = json_object_get(json_array_get(reqs, 1), "body");
    assert_string_equal(str_at(json_object_get(json_array_get(json_object_get(member, "tools"), 0), "function"),
                               "name"), "memory");
    json_t *msgs = json_object_get(member, "messages");
    assert_string_equal(str_at(json_array_get(msgs, json_array_size(msgs) - 1), "content"),
                        "Note that the demo is on Friday");
    /* Back to the leader, each result in the place of its call: the member's answer, the team's
     * own memory, and the refusal. */
    msgs = json_object_get(json_object_get(json_array_get(reqs, 3), "body"), "messages");
    size_t n = json_array_size(msgs);
    assert_string_equal(str_at(json_array_get(msgs, n - 3), "tool_call_id"), "call_d");
    assert_string_equal(str_at(json_array_get(msgs, n - 3), "content"), "Tool result: Remembered as m1");
    assert_string_equal(str_at(json_array_get(msgs, n - 2), "tool_call_id"), "call_m");
    assert_string_equal(str_at(json_array_get(msgs, n - 2), "content"), "Remembered as m1");
    assert_string_equal(str_at(json_array_get(msgs, n - 1), "tool_call_id"), "call_x");
    assert_string_equal(str_at(json_array_get(msgs, n - 1), "content"),
                        "error: delegate_task: 'coder' is not a member of this team; its members are listed in "
                        "your instructions");
    json_decref(reqs);
    char *body = final_text("$team1:example.org", "leads");
    assert_non_null(strstr(body, "<tool>memory(action=add, text=demo on Friday)\nRemembered as m1</tool>"));
    assert_non_null(strstr(body, "<tool>delegate_task(member=scribe, task=Note that the demo is on Friday)\n"
                                 "Tool result: Remembered as m1</tool>"));
    free(body);
    /* The member remembered for alice, in her own root. */
    char digest[MR_OAUTH_SHA256_HEX_LEN + 1], path[800], *text = NULL;
    size_t len = 0;
    mr_oauth_sha256_hex(ALICE, digest);
    snprintf(path, sizeof path, "%s/mindroom_data/private_instances/user-%.32s/scribe/scribe_data/MEMORY.md", S.dir,
             digest);
    mr_tp_check_step(mr_fs_read_all(path, 1 << 20, &text, &len, &err), &err, "scribe's MEMORY.md");
    assert_non_null(strstr(text, "demo on Friday (from " ALICE ")"));
    assert_null(strstr(text, "crew demos"));
    free(text);
    /* The team's memory is its own, in its workspace. */
    snprintf(path, sizeof path, "%s/mindroom_data/agents/leads/workspace/MEMORY.md", S.dir);
    mr_tp_check_step(mr_fs_read_all(path, 1 << 20, &text, &len, &err), &err, "the team's MEMORY.md");
    assert_non_null(strstr(text, "- m1: the crew demos on Fridays (from " ALICE ")"));
    assert_null(strstr(text, "demo on Friday (from"));
    free(text);
}

/* The stub has received n requests. */
static bool stub_has(size_t n)
{
    json_t *reqs = stub_requests();
    bool has = json_array_size(reqs) >= n;
    json_decref(reqs);
    return has;
}

/* collaborate: both members are asked at once (the first one's answer is held until the second
 * request is in), then one more call writes the team's answer from both. */
static void test_collaborate_team_asks_members_side_by_side(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"hold\": true}", &err), &err, "script");
    publish_turn(&(turn_spec){.room = CREW, .event_id = "$team2:example.org", .body = "@Panel is C17 fine?",
                              .allowed = "router,leads,panel,shaky"});
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    while (!stub_has(2)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the second member was not asked while the first one's answer was held; see %s", S.log);
        usleep(20000);
    }
    mr_tp_check_step(mr_model_stub_release(&S.stub, &err), &err, "release");
    wait_for(finished, "$team2:example.org", "panel");
    json_t *reqs = stub_requests();
    assert_int_equal(json_array_size(reqs), 3);
    const char *a = system_of(reqs, 0), *b = system_of(reqs, 1);
    bool mind_first = strstr(a, "You are Mind") != NULL;
    assert_non_null(strstr(mind_first ? a : b, "You are Mind (" MIND "), an agent in a Matrix chat, a member of "
                                                "the team Panel"));
    assert_non_null(strstr(mind_first ? b : a, "You are Coder (" CODER "), an agent in a Matrix chat, a member of "
                                                "the team Panel"));
    const char *synth = system_of(reqs, 2);
    assert_non_null(strstr(synth, "## What your members answered\n\n### Mind (mind)\nEcho: @Panel is C17 fine?\n\n"
                                  "### Coder (coder)\nEcho: @Panel is C17 fine?\n"));
    json_decref(reqs);
    char *body = final_text("$team2:example.org", "panel");
    assert_string_equal(body, "Echo: @Panel is C17 fine?");
    free(body);
}

/* A member whose provider refuses it: the synthesis is told so, and the team still answers. */
static void test_a_failing_member_is_an_error_for_the_team(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    publish_turn(&(turn_spec){.room = CREW, .event_id = "$team3:example.org", .body = "@Shaky any news?",
                              .allowed = "router,leads,panel,shaky"});
    wait_for(finished, "$team3:example.org", "shaky");
    json_t *reqs = stub_requests();
    assert_int_equal(json_array_size(reqs), 3);
    const char *synth = system_of(reqs, 2);
    assert_non_null(strstr(synth, "### Mind (mind)\nEcho: @Shaky any news?\n"));
    assert_non_null(strstr(synth, "### Flaky (flaky)\nerror: flaky could not answer: the provider did not accept "
                                  "the API key\n"));
    json_decref(reqs);
    char *body = final_text("$team3:example.org", "shaky");
    assert_string_equal(body, "Echo: @Shaky any news?");
    free(body);
    assert_int_equal(mr_tp_count_in_file(S.log, "a team member could not answer"), 1);
    assert_int_equal(mr_tp_count_in_file(S.log, "sk-wrong-0123456789"), 0);
}

/* oauth_api without credentials: the model gets a connect link on MINDROOM_PUBLIC_URL whose token
 * is bound to the requester, the agent and the room (the rest of the flow: upstream-auth's
 * test_service). */
static void test_oauth_api_gives_the_requester_a_connect_link(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"tool_calls\": [{\"name\": \"oauth_api\", \"arguments\": "
                                        "{\"provider\": \"github\", \"path\": \"/user\"}}]}",
                               &err), &err, "script");
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = "$tool-oauth:example.org", .body = "Who am I on GitHub?",
                              .allowed = "router,tooly"});
    wait_for(finished, "$tool-oauth:example.org", "tooly");
    json_t *reqs = stub_requests();
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    const char *result = str_at(json_array_get(msgs, json_array_size(msgs) - 1), "content");
    static const char prefix[] = "https://mindroom.example.org/api/oauth/github/authorize?connect_token=";
    const char *at = strstr(result, prefix);
    if (!at || !strstr(result, ALICE " must connect their github account first"))
        fail_msg("no connect link for " ALICE " in \"%s\"", result);
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    snprintf(token, sizeof token, "%s", at + strlen(prefix));
    json_decref(reqs);
    mr_oauth_connect_grant g;
    mr_tp_check_step(mr_oauth_connect_lookup(S.store, token, &g, &err), &err, "connect token");
    assert_string_equal(g.requester, ALICE);
    assert_string_equal(g.agent, "tooly");
    assert_string_equal(g.room_id, TOOLS);
    assert_string_equal(g.scopes, "repo");
    mr_oauth_connect_grant_clear(&g);
}

/* ---- schedules ---- */

/* The router's reply to a command (event_id), as text. */
static char *router_reply(const char *event_id)
{
    wait_for(has_send, event_id, "router");
    json_t *list = intents_of(event_id, "router");
    char *body = strdup(str_at(json_object_get(json_array_get(list, 0), "content"), "body"));
    json_decref(list);
    return body;
}

static void command(const char *event_id, const char *body)
{
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = event_id, .body = body, .allowed = "router,tooly"});
}

/* Sends a command as event_id and waits for the router's reply to it. */
static char *ask_router(const char *event_id, const char *body)
{
    command(event_id, body);
    return router_reply(event_id);
}

/* The schedule ID a "Scheduled <id>: ..." reply names. */
static void scheduled_id(const char *reply, char id[32])
{
    if (sscanf(reply, "Scheduled %31[^:]:", id) != 1)
        fail_msg("not a confirmation: %s", reply);
}

/* !list_schedules (as "$sch-<tag>list") shows schedule id as "- <id>: <summary>, next in ..."
 * (and also holds also, when given); !cancel_schedule (as "$sch-<tag>cancel") then cancels it. */
static void listed_then_cancelled(const char *tag, const char *id, const char *summary, const char *also)
{
    char event_id[64], text[128];
    snprintf(event_id, sizeof event_id, "$sch-%slist:example.org", tag);
    char *reply = ask_router(event_id, "!list_schedules");
    snprintf(text, sizeof text, "\n- %s: %s, next in ", id, summary);
    assert_non_null(strstr(reply, text));
    if (also)
        assert_non_null(strstr(reply, also));
    free(reply);
    snprintf(event_id, sizeof event_id, "$sch-%scancel:example.org", tag);
    snprintf(text, sizeof text, "!cancel_schedule %s", id);
    reply = ask_router(event_id, text);
    assert_string_equal(reply, "Cancelled 1 schedule.");
    free(reply);
}

/* Triggers of a task: the router's messages "@Tooly <task>" (each transaction ID once). */
static size_t triggers_of(const char *task)
{
    char body[256];
    snprintf(body, sizeof body, "@Tooly %s", task);
    json_t *txns = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(S.intents, i, it)
        if (strcmp(str_at(it, "account"), ROUTER) == 0 && str_at(json_object_get(it, "content"), "body") &&
            strcmp(str_at(json_object_get(it, "content"), "body"), body) == 0)
            json_object_set_new(txns, str_at(it, "txn_id"), json_true());
    size_t n = json_object_size(txns);
    json_decref(txns);
    return n;
}

static bool triggered(const char *task, const char *unused)
{
    (void)unused;
    return triggers_of(task) > 0;
}

static bool schedule_gone(const char *id, const char *unused)
{
    (void)unused;
    char *v = NULL;
    size_t len = 0;
    mr_err err = {0};
    mr_code rc = mr_store_hget(S.store, "agent:schedules", id, &v, &len, &err);
    free(v);
    return rc == MR_ENOTFOUND;
}

static void test_schedule_commands_and_firing(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    char *reply = ask_router("$sch-bad:example.org", "!schedule tomorrow maybe");
    assert_string_equal(reply, "Not scheduled: say at what time, as in tomorrow at 9am");
    free(reply);
    reply = ask_router("$sch-vague:example.org", "!schedule soon @tooly spam");
    assert_non_null(strstr(reply, "Not scheduled: 'soon' is not understood as a time: write it as in 5 minutes"));
    free(reply);
    /* On the calendar, in UTC (the config names no timezone). */
    reply = ask_router("$sch-cron:example.org", "!schedule every weekday at 8:30 @tooly stand up");
    char cron_id[32];
    scheduled_id(reply, cron_id);
    assert_non_null(strstr(reply, ": cron 30 8 * * 1-5 (UTC), next "));
    assert_non_null(strstr(reply, ", for @Tooly: stand up"));
    free(reply);
    listed_then_cancelled("cron", cron_id, "cron 30 8 * * 1-5", NULL);
    reply = ask_router("$sch-fast:example.org", "!schedule every 10 seconds @tooly spam");
    assert_string_equal(reply, "Not scheduled: a schedule repeats at most once a minute");
    free(reply);

    reply = ask_router("$sch-every:example.org", "!schedule every 5 minutes @tooly water the plants");
    char every_id[32];
    scheduled_id(reply, every_id);
    assert_non_null(strstr(reply, ": every 300s, for @Tooly: water the plants"));
    free(reply);
    listed_then_cancelled("", every_id, "every 300s", "for @Tooly: water the plants");
    char want[128];
    snprintf(want, sizeof want, "!cancel_schedule %s", every_id);
    reply = ask_router("$sch-cancel2:example.org", want);
    snprintf(want, sizeof want, "No schedule %s in this room.", every_id);
    assert_string_equal(reply, want);
    free(reply);

    /* A one-time schedule fires once, as the router speaking for alice, and tooly answers it. */
    reply = ask_router("$sch-once:example.org", "!schedule in 1 second @tooly stretch");
    char once_id[32];
    scheduled_id(reply, once_id);
    free(reply);
    wait_for(triggered, "stretch", NULL);
    wait_for(schedule_gone, once_id, NULL);
    assert_int_equal(triggers_of("stretch"), 1);
    json_t *trig = NULL, *it;
    size_t i;
    json_array_foreach(S.intents, i, it)
        if (str_at(json_object_get(it, "content"), "body") &&
            strcmp(str_at(json_object_get(it, "content"), "body"), "@Tooly stretch") == 0)
            trig = it;
    json_t *c = json_object_get(trig, "content");
    assert_string_equal(str_at(c, "com.mindroom.original_sender"), ALICE);
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(c, "m.mentions"), "user_ids"), 0)),
                        TOOLY);
    assert_null(json_object_get(c, "m.relates_to"));
    char relay_id[128];
    snprintf(relay_id, sizeof relay_id, "$sent-%s:example.org", str_at(trig, "txn_id"));
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = relay_id, .sender = ROUTER, .original_sender = ALICE,
                              .content = json_deep_copy(c), .allowed = "router,tooly"});
    wait_for(finished, relay_id, "tooly");
    json_t *list = intents_of(relay_id, "tooly");
    json_t *send = last_of(list, "send", false);
    assert_string_equal(str_at(json_object_get(send, "content"), "body"), "Echo: @Tooly stretch");
    json_decref(list);
    /* Commands are the router's: tooly answered none of them. */
    assert_false(has_send("$sch-once:example.org", "tooly"));
    assert_false(has_send("$sch-list:example.org", "tooly"));
}

/* The scheduler tool: the agent schedules a task for itself in its thread, for the requester. */
static void test_scheduler_tool(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"tool_calls\": [{\"name\": \"scheduler\", \"arguments\": "
                                        "{\"action\": \"add\", \"when\": \"in 1 second\", \"task\": \"check the oven\"}}]}",
                               &err), &err, "script");
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = "$tool3:example.org", .body = "Remind me about the oven",
                              .allowed = "router,tooly"});
    wait_for(finished, "$tool3:example.org", "tooly");
    json_t *reqs = stub_requests();
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    const char *result = str_at(json_array_get(msgs, json_array_size(msgs) - 1), "content");
    char id[32];
    scheduled_id(result, id);
    assert_non_null(strstr(result, ": in 1s, for @Tooly: check the oven"));
    json_decref(reqs);
    wait_for(triggered, "check the oven", NULL);
    wait_for(schedule_gone, id, NULL);
    assert_int_equal(triggers_of("check the oven"), 1);
    json_t *trig = NULL, *it;
    size_t i;
    json_array_foreach(S.intents, i, it)
        if (str_at(json_object_get(it, "content"), "body") &&
            strcmp(str_at(json_object_get(it, "content"), "body"), "@Tooly check the oven") == 0)
            trig = it;
    json_t *c = json_object_get(trig, "content");
    assert_string_equal(str_at(c, "com.mindroom.original_sender"), ALICE);
    expect_thread_relation(c, "$tool3:example.org", "$tool3:example.org");
}

/* The thread_summary tool: the model's summary goes into the thread as the agent's m.notice with
 * the reference's io.mindroom.thread_summary block, counting the messages the agent keeps. */
static void test_thread_summary_tool(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"tool_calls\": [{\"name\": \"thread_summary\", \"arguments\": "
                                        "{\"summary\": \"**Oven** timing question\"}}, {\"name\": \"thread_summary\", "
                                        "\"arguments\": {\"summary\": \"x\", \"thread_id\": \"$nowhere:example.org\"}}]}",
                               &err), &err, "script");
    publish_turn(&(turn_spec){.room = TOOLS, .event_id = "$tool5:example.org", .body = "Summarise this thread",
                              .allowed = "router,tooly"});
    wait_for(finished, "$tool5:example.org", "tooly");
    json_t *list = intents_of("$tool5:example.org", "tooly"), *notice = NULL, *it;
    size_t i;
    json_array_foreach(list, i, it)
        if (str_at(json_object_get(it, "content"), "msgtype") &&
            strcmp(str_at(json_object_get(it, "content"), "msgtype"), "m.notice") == 0)
            notice = it;
    assert_non_null(notice);
    assert_string_equal(str_at(notice, "account"), TOOLY);
    json_t *c = json_object_get(notice, "content");
    assert_string_equal(str_at(c, "body"), "Oven timing question");
    expect_thread_relation(c, "$tool5:example.org", "$tool5:example.org");
    json_t *meta = json_object_get(c, "io.mindroom.thread_summary");
    assert_string_equal(str_at(meta, "summary"), "Oven timing question");
    assert_int_equal(json_integer_value(json_object_get(meta, "message_count")), 1);
    json_decref(list);
    /* The model was told of the thread it named that the agent does not know. */
    json_t *reqs = stub_requests();
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    const char *result = str_at(json_array_get(msgs, json_array_size(msgs) - 1), "content");
    assert_non_null(strstr(result, "'thread_id' names no thread of this room"));
    json_decref(reqs);
}

static void test_schedule_fires_after_sigkill_once(void **state)
{
    (void)state;
    mr_err err = {0};
    command("$sch-kill:example.org", "!schedule in 3 seconds @tooly breathe");
    char *reply = router_reply("$sch-kill:example.org");
    char id[32];
    scheduled_id(reply, id);
    free(reply);
    stop_agent(SIGKILL, NULL);
    mr_tp_check_step(spawn_agent(&err), &err, "starting mindroom-agent again");
    wait_for(triggered, "breathe", NULL);
    wait_for(schedule_gone, id, NULL);
    assert_int_equal(triggers_of("breathe"), 1);
}

static void test_schedule_with_two_replicas_fires_once(void **state)
{
    (void)state;
    mr_err err = {0};
    char log[700];
    snprintf(log, sizeof log, "%s/agent-replica.log", S.dir);
    char *argv[] = {getenv("MINDROOM_AGENT_BIN"), "--config", S.config, NULL};
    pid_t replica = 0;
    setenv("MINDROOM_WORKER_ID", "replica-two", 1);
    mr_code rc = mr_tp_spawn(argv, log, &replica, &err);
    unsetenv("MINDROOM_WORKER_ID");
    mr_tp_check_step(rc, &err, "starting a second mindroom-agent");
    mr_tp_check_step(mr_tp_wait_in_file(log, "worker replica-two", 1, DEADLINE_MS, replica, &err), &err, "second agent up");
    command("$sch-two:example.org", "!schedule in 2 seconds @tooly sync up");
    char *reply = router_reply("$sch-two:example.org");
    char id[32];
    scheduled_id(reply, id);
    free(reply);
    wait_for(triggered, "sync up", NULL);
    wait_for(schedule_gone, id, NULL);
    assert_int_equal(triggers_of("sync up"), 1);
    int status = -1;
    mr_tp_check_step(mr_tp_kill_wait(replica, SIGTERM, &status, &err), &err, "stopping the second agent");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The first 13 words of LONG_ANSWER: what the stub streams before it stalls after 14 events. */
#define BEFORE_STALL "Streams carry the answer piece by piece, so the room sees it grow"

/* An edit of the answer of (event, entity) shows everything before the stall, or it finished. */
static bool stall_shown_or_finished(const char *event_id, const char *entity)
{
    json_t *list = intents_of(event_id, entity);
    bool shown = false;
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        const char *body = str_at(json_object_get(json_object_get(it, "content"), "m.new_content"), "body");
        shown |= body && strcmp(body, BEFORE_STALL DOTS) == 0;
    }
    json_decref(list);
    return shown || finished(event_id, entity);
}

/* The first send goes out at 48 characters; the words after it come too soon for an edit, then
 * the model says nothing for 15 s. Those words are shown while it is quiet, not when the next
 * chunk comes. */
static void test_a_stalled_stream_shows_what_came(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"reply\": \"" LONG_ANSWER "\", \"stall_ms\": 15000, \"stall_after_chunks\": 14}",
                               &err), &err, "script");
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$stall1:example.org", .body = "Think it over",
                              .allowed = "router,coder"});
    wait_for(stall_shown_or_finished, "$stall1:example.org", "coder");
    assert_false(finished("$stall1:example.org", "coder"));
    wait_for(finished, "$stall1:example.org", "coder");
    json_t *list = intents_of("$stall1:example.org", "coder");
    json_t *final = json_array_get(list, json_array_size(list) - 2);
    assert_string_equal(str_at(json_object_get(json_object_get(final, "content"), "m.new_content"), "body"), LONG_ANSWER);
    json_decref(list);
}

static void test_thread_follow_up_prompt_and_short_answer(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    /* In the thread coder took part in: coder continues, with the thread as history. */
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$q2:example.org", .body = "And edits?",
                              .thread_root = "$q1:example.org", .allowed = "router,mind,coder"});
    wait_for(finished, "$q2:example.org", "coder");
    json_t *list = intents_of("$q2:example.org", "coder");
    /* A short answer: one send, no edits. */
    assert_int_equal(json_array_size(list), 3);
    json_t *send = json_array_get(list, 1);
    json_t *c = json_object_get(send, "content");
    assert_string_equal(str_at(c, "body"), "Echo: And edits?");
    expect_thread_relation(c, "$q1:example.org", "$q2:example.org");
    json_decref(list);

    json_t *reqs = stub_requests();
    assert_int_equal(json_array_size(reqs), 1);
    json_t *req = json_array_get(reqs, 0);
    assert_string_equal(str_at(req, "auth"), "valid");
    json_t *body = json_object_get(req, "body");
    assert_string_equal(str_at(body, "model"), "stub-model");
    assert_true(json_is_true(json_object_get(body, "stream")));
    json_t *msgs = json_object_get(body, "messages");
    assert_int_equal(json_array_size(msgs), 4);
    json_t *sys = json_array_get(msgs, 0);
    assert_string_equal(str_at(sys, "role"), "system");
    const char *system = str_at(sys, "content");
    if (!strstr(system, "Writes and reviews code") || !strstr(system, "Review carefully.") ||
        !strstr(system, "Prefer C17.") || !strstr(system, "You are Coder (" CODER ")"))
        fail_msg("system prompt lacks role, instructions or name: %s", system);
    assert_string_equal(str_at(json_array_get(msgs, 1), "role"), "user");
    assert_string_equal(str_at(json_array_get(msgs, 1), "content"), ALICE ": How do streams work?");
    assert_string_equal(str_at(json_array_get(msgs, 2), "role"), "assistant");
    assert_string_equal(str_at(json_array_get(msgs, 2), "content"), LONG_ANSWER);
    assert_string_equal(str_at(json_array_get(msgs, 3), "role"), "user");
    assert_string_equal(str_at(json_array_get(msgs, 3), "content"), "And edits?");
    json_decref(reqs);
}

static void test_mention_picks_the_agent(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    publish_turn(&(turn_spec){.room = LOBBY, .event_id = "$m1:example.org", .body = "@Mind what is on today?",
                              .allowed = "router,mind,coder"});
    wait_for(finished, "$m1:example.org", "mind");
    sentinel(LOBBY);
    json_t *list = intents_of("$m1:example.org", "mind");
    json_t *send = last_of(list, "send", false);
    assert_string_equal(str_at(json_object_get(send, "content"), "body"), "Echo: @Mind what is on today?");
    assert_string_equal(str_at(send, "account"), MIND);
    json_decref(list);
    /* Neither coder nor the router said anything about it. */
    assert_false(has_send("$m1:example.org", "coder"));
    assert_false(has_send("$m1:example.org", "router"));
    json_t *reqs = stub_requests();
    assert_int_equal(json_array_size(reqs), 2); /* mind's answer and the sentinel's */
    json_decref(reqs);
}

static void test_two_candidates_router_hands_over(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    publish_turn(&(turn_spec){.room = LOBBY, .event_id = "$r1:example.org", .body = "Who can plan my week?",
                              .allowed = "router,mind,coder"});
    wait_for(has_send, "$r1:example.org", "router");
    json_t *list = intents_of("$r1:example.org", "router");
    assert_int_equal(json_array_size(list), 1);
    json_t *post = json_array_get(list, 0);
    assert_string_equal(str_at(post, "account"), ROUTER);
    json_t *c = json_object_get(post, "content");
    /* The stub chooses the first candidate of the enum: mind, in config order. */
    assert_string_equal(str_at(c, "body"), "@Mind could you help with this?");
    assert_string_equal(str_at(c, "formatted_body"),
                        "<a href=\"https://matrix.to/#/" MIND "\">@Mind</a> could you help with this?");
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(c, "m.mentions"), "user_ids"), 0)),
                        MIND);
    assert_string_equal(str_at(c, "com.mindroom.original_sender"), ALICE);
    expect_thread_relation(c, "$r1:example.org", "$r1:example.org");
    json_t *reqs = stub_requests();
    json_t *rf = json_object_get(json_object_get(json_array_get(reqs, 0), "body"), "response_format");
    assert_string_equal(str_at(rf, "type"), "json_schema");
    json_t *names = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(rf, "json_schema"),
                                                                                    "schema"), "properties"),
                                                    "entity_name"), "enum");
    assert_int_equal(json_array_size(names), 2);
    assert_string_equal(json_string_value(json_array_get(names, 0)), "mind");
    assert_string_equal(json_string_value(json_array_get(names, 1)), "coder");
    json_decref(reqs);

    /* The hand-off comes back as a turn from the router, speaking for alice. */
    char relay_id[128];
    snprintf(relay_id, sizeof relay_id, "$sent-%s:example.org", str_at(post, "txn_id"));
    publish_turn(&(turn_spec){.room = LOBBY, .event_id = relay_id, .sender = ROUTER, .original_sender = ALICE,
                              .thread_root = "$r1:example.org", .content = json_deep_copy(c),
                              .allowed = "router,mind,coder"});
    json_decref(list);
    wait_for(finished, relay_id, "mind");
    sentinel(LOBBY);
    list = intents_of(relay_id, "mind");
    json_t *send = last_of(list, "send", false);
    /* mind answers the message handed over, in the thread, replying to the hand-off. */
    assert_string_equal(str_at(json_object_get(send, "content"), "body"), "Echo: Who can plan my week?");
    expect_thread_relation(json_object_get(send, "content"), "$r1:example.org", relay_id);
    json_decref(list);
    assert_false(has_send(relay_id, "coder"));
    assert_false(has_send(relay_id, "router"));
}

static void test_provider_error_then_recovery(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    /* Unavailable on every attempt of the first call; the client retries 4 times. */
    mr_tp_check_step(mr_model_stub_script(&S.stub, "{\"times\": 4, \"error\": {\"status\": 503, \"retry_after_ms\": 10}}", &err),
          &err, "script");
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$x1:example.org", .body = "Are you there?",
                              .allowed = "router,coder"});
    wait_for(finished, "$x1:example.org", "coder");
    json_t *list = intents_of("$x1:example.org", "coder");
    assert_string_equal(str_at(json_object_get(last_of(list, "send", false), "content"), "body"),
                        "Sorry, I could not reach the model (the provider is unavailable or did not answer in time). "
                        "Try again in a moment.");
    json_decref(list);
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$x2:example.org", .body = "Now?", .allowed = "router,coder"});
    wait_for(finished, "$x2:example.org", "coder");
    list = intents_of("$x2:example.org", "coder");
    assert_string_equal(str_at(json_object_get(last_of(list, "send", false), "content"), "body"), "Echo: Now?");
    json_decref(list);
    json_t *reqs = stub_requests();
    assert_int_equal(json_array_size(reqs), 5);
    json_decref(reqs);
}

static void test_same_turn_twice_is_answered_once(void **state)
{
    (void)state;
    turn_spec t = {.room = DEV, .event_id = "$d1:example.org", .body = "Once, please", .allowed = "router,coder"};
    publish_turn(&t);
    publish_turn(&t);
    sentinel(DEV);
    json_t *list = intents_of("$d1:example.org", "coder");
    size_t sends = 0, i;
    json_t *it;
    json_array_foreach(list, i, it)
        sends += strcmp(str_at(it, "action"), "send") == 0;
    assert_int_equal(sends, 1);
    /* typing on, send, typing off: nothing of a second pass. */
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);
    assert_int_equal(mr_tp_count_in_file(S.log, "already answered event_id=$d1:example.org"), 1);
}

/* The store commands of one turn, from the agent's connection (MONITOR): an entity's own reply
 * coming back as a turn costs none, and an answered turn costs each of its steps one round trip:
 * the in-flight record and the room's lease on acceptance (2), the lease's start and the record's
 * check (2), the thread read and appended once (2), the room's conversation read and appended
 * (2: an agent of this config keeps one, thread_mode: room), claim, delivery record and begun
 * marker (3), the reply appended (1), the claim done (1), the record's and the lease's end (3).
 * Each round trip is a hop on the way to the answer; with appendfsync always, each write also
 * waits for an fsync. */
static bool mentions_turn(const char *line, const char *const *tokens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tokens[i][0] && strstr(line, tokens[i]))
            return true;
    return false;
}

static void test_a_turn_costs_one_round_trip_a_step(void **state)
{
    (void)state;
    mr_err err = {0};
    bool closed = false;
    int fd = mr_tp_connect_from("127.0.0.1", S.redis.port);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "MONITOR\r\n", 9), 9);
    free(mr_tp_read_until(fd, "+OK\r\n", 5000, &closed));
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$trips0:example.org", .sender = CODER,
                              .body = "An answer of coder, back from the sync", .allowed = "router,coder"});
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$trips1:example.org", .body = "Count my round trips",
                              .allowed = "router,coder"});
    wait_for(finished, "$trips1:example.org", "coder");
    /* The turn ends with its room's lease given up, after its claim is done. */
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    for (;;) {
        char *v = NULL;
        size_t len = 0;
        mr_code claim = mr_store_get(S.store, "reply:$trips1:example.org:coder", &v, &len, &err);
        bool done = claim == MR_OK && strcmp(v, "done") == 0;
        free(v);
        v = NULL;
        if (done && mr_store_get(S.store, "agent:room:" DEV, &v, &len, &err) == MR_ENOTFOUND)
            break;
        free(v);
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the turn of $trips1 never ended; see %s", S.log);
        mr_clock_sleep_ms(20);
    }
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(mr_store_get(S.store, "e2e:mark:trips", &v, &len, &err), MR_ENOTFOUND);
    char *log = mr_tp_read_until(fd, "e2e:mark:trips", 10000, &closed);
    close(fd);
    assert_non_null(log);
    char prefix[TXN_MAX], agent[64] = "", field[64] = "";
    size_t commands = 0;
    const char *counted[64];
    txn_id("$trips1:example.org", "coder", "", -1, prefix);
    /* The agent's store connection is the one that recorded the turn; the field it recorded it
     * under names it in later commands. */
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        const char *at = strstr(line, " [1 ");
        if (!agent[0] && at && strstr(line, "\"HSET\" \"agent:inflight:") && strstr(line, "$trips1:example.org")) {
            sscanf(at + 4, "%63[^]]", agent);
            const char *f = strstr(line, "\" \"") ? strstr(strstr(line, "agent:inflight:"), "\" \"") : NULL;
            if (f)
                sscanf(f + 3, "%63[^\"]", field);
        }
        const char *tokens[] = {"$trips1:example.org", "agent:room:" DEV, "history:" DEV ":room", prefix, field};
        if (strstr(line, "$trips0:example.org") && at)
            fail_msg("the entity's own reply cost a store command: %s", line);
        if (agent[0] && at && strncmp(at + 4, agent, strlen(agent)) == 0 && mentions_turn(line, tokens, 5))
            counted[commands++ % 64] = line;
    }
    assert_true(agent[0] != '\0');
    for (size_t i = 0; commands > 16 && i < commands && i < 64; i++)
        fprintf(stderr, "%.160s\n", counted[i]);
    free(log);
    if (commands > 16)
        fail_msg("one answered turn took %zu store commands, more than the 16 steps it has", commands);
}

static void test_room_mode_replies_plainly_with_room_history(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    publish_turn(&(turn_spec){.room = CHAT, .event_id = "$p1:example.org", .body = "Hello plain", .allowed = "router,plain"});
    publish_turn(&(turn_spec){.room = CHAT, .event_id = "$p2:example.org", .body = "Again", .allowed = "router,plain"});
    wait_for(finished, "$p2:example.org", "plain");
    for (int i = 1; i <= 2; i++) {
        json_t *list = intents_of(i == 1 ? "$p1:example.org" : "$p2:example.org", "plain");
        json_t *c = json_object_get(last_of(list, "send", false), "content");
        assert_string_equal(str_at(c, "body"), i == 1 ? "Echo: Hello plain" : "Echo: Again");
        /* thread_mode room: no thread, no reply relation. */
        assert_null(json_object_get(c, "m.relates_to"));
        json_decref(list);
    }
    json_t *reqs = stub_requests();
    json_t *msgs = json_object_get(json_object_get(json_array_get(reqs, 1), "body"), "messages");
    assert_int_equal(json_array_size(msgs), 4);
    assert_string_equal(str_at(json_array_get(msgs, 1), "content"), ALICE ": Hello plain");
    assert_string_equal(str_at(json_array_get(msgs, 2), "role"), "assistant");
    assert_string_equal(str_at(json_array_get(msgs, 2), "content"), "Echo: Hello plain");
    assert_string_equal(str_at(json_array_get(msgs, 3), "content"), "Again");
    json_decref(reqs);
}

static void test_unmanaged_room_goes_by_membership(void **state)
{
    (void)state;
    /* What authz saw of the DM, in the turn: mind joined, coder not. */
    publish_turn(&(turn_spec){.room = DM, .event_id = "$dm1:example.org", .body = "Just us", .allowed = "router,mind,coder",
                              .joined = "mind"});
    wait_for(finished, "$dm1:example.org", "mind");
    sentinel_for(DM, "mind", MIND);
    json_t *list = intents_of("$dm1:example.org", "mind");
    assert_string_equal(str_at(json_object_get(last_of(list, "send", false), "content"), "body"), "Echo: Just us");
    json_decref(list);
    assert_false(has_send("$dm1:example.org", "coder"));
    assert_false(has_send("$dm1:example.org", "router"));
}

/* Forgets the stub's scripts and requests, and queues script (when not NULL) for the next call. */
static void stub_fresh(const char *script)
{
    mr_err err = {0};
    mr_tp_check_step(mr_model_stub_reset(&S.stub, &err), &err, "reset");
    if (script)
        mr_tp_check_step(mr_model_stub_script(&S.stub, script, &err), &err, "script");
}

static void test_a_slow_room_does_not_hold_up_another(void **state)
{
    (void)state;
    /* Coder's model streams the first words, then says nothing for a long while. */
    stub_fresh("{\"reply\": \"" LONG_ANSWER "\", \"stall_ms\": 15000, \"stall_after_chunks\": 14}");
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$slow1:example.org", .body = "Take your time",
                              .allowed = "router,coder"});
    wait_for(first_part_sent, "$slow1:example.org", "coder");
    /* While it stalls, a question in another room is answered in full. */
    publish_turn(&(turn_spec){.room = LOBBY, .event_id = "$quick1:example.org", .body = "@Mind quick one?",
                              .allowed = "router,mind,coder"});
    wait_for(finished, "$quick1:example.org", "mind");
    assert_false(finished("$slow1:example.org", "coder"));
    wait_for(finished, "$slow1:example.org", "coder");
    json_t *list = intents_of("$slow1:example.org", "coder");
    json_t *final = json_array_get(list, json_array_size(list) - 2);
    assert_string_equal(str_at(json_object_get(json_object_get(final, "content"), "m.new_content"), "body"), LONG_ANSWER);
    json_decref(list);
}

static void test_the_hundredth_entity_answers(void **state)
{
    (void)state;
    stub_fresh(NULL);
    char allowed[2048] = "router";
    for (int i = 0; i < MANY_AGENTS; i++)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), ",a%03d", i);
    json_t *content = json_pack("{s:s, s:s, s:{s:[s]}}", "msgtype", "m.text", "body", "A099: are you there?",
                                "m.mentions", "user_ids", "@mindroom_a099:example.org");
    publish_turn(&(turn_spec){.room = MANY, .event_id = "$many1:example.org", .content = content, .allowed = allowed});
    wait_for(finished, "$many1:example.org", "a099");
    json_t *list = intents_of("$many1:example.org", "a099");
    json_t *send = last_of(list, "send", false);
    assert_string_equal(str_at(send, "account"), "@mindroom_a099:example.org");
    assert_string_equal(str_at(json_object_get(send, "content"), "body"), "Echo: A099: are you there?");
    json_decref(list);
    assert_int_equal(mr_tp_count_in_file(S.log, "who=a099 why=mentioned"), 1);
}

/* The final edit of (event, entity): the whole answer, replacing the first part. */
static void expect_finished_by_an_edit(const char *event_id, const char *entity, const char *body)
{
    char txn[TXN_MAX];
    json_t *list = intents_of(event_id, entity);
    json_t *final = json_array_get(list, json_array_size(list) - 2);
    txn_id(event_id, entity, "f", -1, txn);
    assert_string_equal(str_at(final, "txn_id"), txn);
    json_t *c = json_object_get(final, "content");
    expect_edit_of_first_part(final, event_id, entity);
    assert_string_equal(str_at(json_object_get(c, "m.new_content"), "body"), body);
    json_decref(list);
    /* One message in the room, however the answer got there. */
    assert_int_equal(messages_of(event_id, entity), 1);
}

/* Stopped after the first part went out: the next start sends the first part again under its
 * transaction ID (the gateway sends nothing twice) and edits it by that ID. No event ID is ever
 * known to the agent, and it waits for none. */
static void test_stop_mid_answer_edits_the_first_part_by_txn(void **state)
{
    (void)state;
    mr_err err = {0};
    stub_fresh("{\"reply\": \"" LONG_ANSWER "\", \"stall_ms\": 1500, \"stall_after_chunks\": 14}");
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$stop1:example.org", .body = "Stop halfway",
                              .allowed = "router,coder"});
    wait_for(first_part_sent, "$stop1:example.org", "coder");
    int st = 0;
    stop_agent(SIGTERM, &st);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    drain_intents();
    size_t before = json_array_size(S.intents);
    mr_tp_check_step(spawn_agent(&err), &err, "starting mindroom-agent again");
    wait_for(finished, "$stop1:example.org", "coder");
    expect_finished_by_an_edit("$stop1:example.org", "coder", "Echo: Stop halfway");
    /* The restarted attempt began with the first part again, then edited it. */
    char first[TXN_MAX];
    txn_id("$stop1:example.org", "coder", "m", -1, first);
    bool again = false;
    for (size_t i = before; i < json_array_size(S.intents); i++)
        again |= strcmp(str_at(json_array_get(S.intents, i), "txn_id"), first) == 0;
    assert_true(again);
}

static void test_sigkill_mid_answer_is_finished_after_restart(void **state)
{
    (void)state;
    mr_err err = {0};
    /* The first part goes out, then the model stalls until the agent is killed. */
    stub_fresh("{\"reply\": \"" LONG_ANSWER "\", \"stall_ms\": 600000, \"stall_after_chunks\": 14}");
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$kill1:example.org", .body = "What survives a crash?",
                              .allowed = "router,coder"});
    wait_for(first_part_sent, "$kill1:example.org", "coder");
    stop_agent(SIGKILL, NULL);
    mr_tp_check_step(spawn_agent(&err), &err, "starting mindroom-agent again");
    /* The restarted worker runs the turn it had accepted, takes its dead boot's claim over at
     * once, and edits the half-written message into the whole answer. */
    wait_for(finished, "$kill1:example.org", "coder");
    expect_finished_by_an_edit("$kill1:example.org", "coder", "Echo: What survives a crash?");
    assert_int_equal(mr_tp_count_in_file(S.log, "answering again: the earlier attempt was abandoned event_id=$kill1:example.org "
                                                "entity=coder reason=\"an earlier boot of this worker held it\""), 1);
    assert_int_equal(mr_tp_count_in_file(S.log, "being answered by another worker"), 0);
    assert_int_equal(mr_tp_count_in_file(S.log, "parked"), 0);
    /* Still answering new turns. */
    sentinel(DEV);
}

/* Synapse's limit on a whole event (MAX_PDU_SIZE), less what the gateway and the server add
 * around the content: the relation's event ID, sender, room, hashes, signatures. */
#define EVENT_LIMIT 65536
#define EVENT_ENVELOPE 2048

/* n bytes of prose with line breaks, quotes and a two-byte character: the JSON escapes count. */
static char *long_text(size_t n)
{
    static const char *const words[] = {"streams ", "carry ", "\"answers\" ", "caf\xc3\xa9 ", "piece\n",
                                        "by ", "piece,\n\n", "whole "};
    char *t = malloc(n + 16);
    size_t len = 0;
    for (size_t i = 0; t && len < n; i = (i * 7 + 3) % 8 + (len % 5 == 0)) {
        size_t k = strlen(words[i % 8]);
        memcpy(t + len, words[i % 8], k);
        len += k;
    }
    if (t)
        t[len] = '\0';
    return t;
}

/* The thread's messages of (event, entity), each at its final text, joined in the order they
 * were sent; every content is checked to fit in one event. */
static char *final_texts(const char *event_id, const char *entity, size_t *n_messages)
{
    json_t *list = intents_of(event_id, entity), *order = json_array(), *texts = json_object();
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        if (strcmp(str_at(it, "action"), "send") != 0)
            continue;
        json_t *c = json_object_get(it, "content");
        char *dumped = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
        assert_non_null(dumped);
        assert_true(strlen(dumped) + EVENT_ENVELOPE <= EVENT_LIMIT);
        free(dumped);
        json_t *edit = json_object_get(c, "m.new_content");
        const char *txn = edit ? str_at(it, "replaces_txn") : str_at(it, "txn_id");
        if (!json_object_get(texts, txn))
            json_array_append_new(order, json_string(txn));
        json_object_set_new(texts, txn, json_string(str_at(edit ? edit : c, "body")));
    }
    size_t total = 0;
    json_array_foreach(order, i, it)
        total += strlen(json_string_value(json_object_get(texts, json_string_value(it))));
    char *joined = calloc(1, total + 1);
    assert_non_null(joined);
    json_array_foreach(order, i, it)
        strcat(joined, json_string_value(json_object_get(texts, json_string_value(it))));
    *n_messages = json_array_size(order);
    json_decref(order);
    json_decref(texts);
    json_decref(list);
    return joined;
}

/* Since the stub was reset, the model was asked once, with this last message; any other call
 * (one that took the script meant for this answer) is named in the failure. */
static void expect_one_model_call(const char *last_message)
{
    json_t *reqs = stub_requests();
    size_t i;
    json_t *it;
    char seen[2048] = "";
    json_array_foreach(reqs, i, it) {
        json_t *msgs = json_object_get(json_object_get(it, "body"), "messages");
        const char *last = json_string_value(json_object_get(json_array_get(msgs, json_array_size(msgs) - 1), "content"));
        size_t used = strlen(seen);
        snprintf(seen + used, sizeof seen - used, "[%zu] %.80s; ", i, last ? last : "(none)");
    }
    if (json_array_size(reqs) != 1 || !strstr(seen, last_message))
        fail_msg("expected one model call ending with \"%s\", the stub had %zu: %s", last_message,
                 json_array_size(reqs), seen);
    json_decref(reqs);
}

static void expect_long_answer_complete(const char *event_id, size_t size)
{
    char *text = long_text(size);
    json_t *script = json_pack("{s:s}", "reply", text);
    char *script_text = json_dumps(script, JSON_COMPACT);
    assert_non_null(script_text);
    stub_fresh(script_text);
    publish_turn(&(turn_spec){.room = DEV, .event_id = event_id, .body = "Tell me everything",
                              .allowed = "router,coder"});
    wait_for(finished, event_id, "coder");
    expect_one_model_call("Tell me everything");
    size_t messages = 0;
    char *got = final_texts(event_id, "coder", &messages);
    assert_string_equal(got, text);
    /* More than one message: no single event could hold the answer with its edit. */
    assert_true(messages > 1);
    assert_true(messages <= size / 20000 + 1);
    free(got);
    free(script_text);
    json_decref(script);
    free(text);
}

/* A long answer goes on in further messages of the thread, none too large for the homeserver,
 * and the final texts together are the whole answer. */
static void test_long_answers_arrive_complete(void **state)
{
    (void)state;
    expect_long_answer_complete("$long40:example.org", 40 * 1024);
    expect_long_answer_complete("$long200:example.org", 200 * 1024);
}

/* The gateway gave up on the send of (event, coder) of kind/seq: a send_failure for it. */
static void publish_send_failure(const char *event_id, const char *kind, int seq)
{
    char txn[TXN_MAX + 1];
    if (strcmp(kind, "n") == 0) {
        txn_id(event_id, "coder", "", -1, txn);
        strcat(txn, "n");
    } else {
        txn_id(event_id, "coder", kind, seq, txn);
    }
    json_t *f = json_pack("{s:i, s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "v", 1, "type", "send_failure", "account", CODER,
                          "room_id", DEV, "txn_id", txn, "status", 413, "errcode", "M_TOO_LARGE", "reason",
                          "event too large");
    char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
    assert_non_null(text);
    mr_err err = {0};
    mr_tp_check_step(mr_bus_publish(S.bus, "matrix.send_failed", DEV, text, strlen(text), &err), &err, "publish send_failure");
    mr_tp_check_step(mr_bus_flush(S.bus, 30000, &err), &err, "flush");
    free(text);
    json_decref(f);
}

/* The notices of (event, coder) so far. */
static size_t notices_of(const char *event_id)
{
    char notice[TXN_MAX + 1];
    txn_id(event_id, "coder", "", -1, notice);
    strcat(notice, "n");
    json_t *list = intents_of(event_id, "coder");
    size_t n = 0, i;
    json_t *it;
    json_array_foreach(list, i, it)
        n += strcmp(str_at(it, "txn_id"), notice) == 0;
    json_decref(list);
    return n;
}

static bool noticed(const char *event_id, const char *entity)
{
    (void)entity;
    return notices_of(event_id) > 0;
}

/* A send the homeserver refused for good reaches the person as one notice in the thread; the
 * notice refused too is only logged, and sends nothing more. */
static void test_a_refused_send_gets_one_notice(void **state)
{
    (void)state;
    const char *ev = "$refused1:example.org";
    stub_fresh(NULL);
    publish_turn(&(turn_spec){.room = DEV, .event_id = ev, .body = "Say something", .allowed = "router,coder"});
    wait_for(finished, ev, "coder");
    publish_send_failure(ev, "m", -1);
    wait_for(noticed, ev, "coder");
    json_t *list = intents_of(ev, "coder");
    json_t *notice = json_array_get(list, json_array_size(list) - 1);
    assert_string_equal(str_at(notice, "account"), CODER);
    assert_null(json_object_get(notice, "replaces_txn"));
    json_t *c = json_object_get(notice, "content");
    assert_string_equal(str_at(c, "body"), "I could not deliver part of my answer: event too large (M_TOO_LARGE)");
    expect_thread_relation(c, ev, ev);
    json_decref(list);
    /* The notice refused as well: logged, never a second notice. */
    publish_send_failure(ev, "n", -1);
    mr_err err = {0};
    mr_tp_check_step(mr_tp_wait_in_file(S.log, "could not be delivered either", 1, DEADLINE_MS, S.pid, &err), &err,
          "the refused notice logged");
    drain_intents();
    assert_int_equal(notices_of(ev), 1);
    /* A failure of no answer this store knows changes nothing. */
    publish_send_failure("$unknown1:example.org", "m", -1);
    mr_tp_check_step(mr_tp_wait_in_file(S.log, "an answer this store does not know", 1, DEADLINE_MS, S.pid, &err), &err,
          "the unknown answer logged");
    drain_intents();
    assert_int_equal(notices_of("$unknown1:example.org"), 0);
}

static void test_claim_of_a_live_worker_parks_until_its_lease_lapses(void **state)
{
    (void)state;
    mr_err err = {0};
    stub_fresh(NULL);
    /* Another replica claimed the event and beat its heartbeat once, then died. */
    char beat[64];
    int n = snprintf(beat, sizeof beat, "00112233aabbccdd %lld", mr_clock_wall_ms());
    mr_tp_check_step(mr_store_hset(S.store, WORKERS_KEY, "other-replica", beat, (size_t)n, &err), &err, "heartbeat");
    const char claim[] = "started other-replica 00112233aabbccdd";
    mr_tp_check_step(mr_store_set(S.store, "reply:$held1:example.org:coder", claim, strlen(claim), CLAIM_TTL_MS, &err), &err,
          "claim");
    publish_turn(&(turn_spec){.room = DEV, .event_id = "$held1:example.org", .body = "Who holds this?",
                              .allowed = "router,coder"});
    /* Left alone while the holder may live, then taken over once its lease lapsed. */
    wait_for(finished, "$held1:example.org", "coder");
    char *log = mr_tp_read_text(S.log);
    const char *parked = strstr(log, "parked: another live worker holds a claim of this turn; looking again when its "
                                     "lease ends event_id=$held1:example.org");
    const char *taken = strstr(log, "answering again: the earlier attempt was abandoned event_id=$held1:example.org "
                                    "entity=coder reason=\"its holder's heartbeat lease lapsed\"");
    assert_non_null(parked);
    assert_non_null(taken);
    assert_true(parked < taken);
    free(log);
    /* Parked, not retried: a line or so over the whole lease, not several a second. */
    assert_true(mr_tp_count_in_file(S.log, "lease ends event_id=$held1:example.org") <= 3);
    assert_int_equal(messages_of("$held1:example.org", "coder"), 1);
}

static void test_a_dead_workers_turns_are_adopted(void **state)
{
    (void)state;
    mr_err err = {0};
    stub_fresh(NULL);
    /* A replica accepted a turn, then died a minute ago without answering it. */
    char beat[64], field[INFLIGHT_FIELD_MAX];
    int n = snprintf(beat, sizeof beat, "99887766aabbccdd %lld", mr_clock_wall_ms() - 60000);
    mr_tp_check_step(mr_store_hset(S.store, WORKERS_KEY, "gone-replica", beat, (size_t)n, &err), &err, "heartbeat");
    char *turn = turn_text(&(turn_spec){.room = DEV, .event_id = "$orphan1:example.org", .body = "Anyone left?",
                                        .allowed = "router,coder"});
    inflight_field(mr_clock_wall_ms() - 61000, 0, DEV, field);
    mr_tp_check_step(inflight_put(S.store, "gone-replica", field, turn, strlen(turn), &err), &err, "in-flight turn");
    free(turn);
    /* The live worker's heartbeat finds it and answers it; the dead worker's record is empty.
     * The heartbeat drops that record after it queued the turn, so a quick answer can come
     * first: the record is read once the adoption's line (written after the drop) is there. */
    wait_for(finished, "$orphan1:example.org", "coder");
    assert_int_equal(messages_of("$orphan1:example.org", "coder"), 1);
    mr_tp_check_step(mr_tp_wait_in_file(S.log, "adopted 1 in-flight turns of worker gone-replica", 1, DEADLINE_MS,
                                        S.pid, &err),
                     &err, "adoption line");
    mr_store_hash left;
    mr_tp_check_step(inflight_list(S.store, "gone-replica", &left, &err), &err, "in-flight record");
    assert_int_equal(left.count, 0);
    mr_store_hash_free(&left);
    assert_int_equal(mr_tp_count_in_file(S.log, "adopted 1 in-flight turns of worker gone-replica"), 1);
}

static void test_intents_validate_and_log_keeps_secrets(void **state)
{
    (void)state;
    assert_true(json_array_size(S.intents) >= 20);
    mr_err err = {0};
    mr_tp_check_step(mr_tp_proto_check("matrix.outbound", S.intents_file, &err), &err, "proto/check.py");
    assert_int_equal(mr_tp_count_in_file(S.log, KEY), 0);
    /* Restarts under one worker ID are one worker, never two at once. */
    assert_int_equal(mr_tp_count_in_file(S.log, "another live process runs as worker"), 0);
    assert_true(mr_tp_count_in_file(S.log, "turn decided") >= 9);
}

static void test_sigterm_exits_0(void **state)
{
    (void)state;
    int st = 0;
    stop_agent(SIGTERM, &st);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_settings_exit_2),
        cmocka_unit_test(test_one_agent_streams_a_thread_reply),
        cmocka_unit_test(test_a_stalled_stream_shows_what_came),
        cmocka_unit_test(test_tools_in_a_turn),
        cmocka_unit_test(test_private_memory_per_requester),
        cmocka_unit_test(test_coordinate_team_delegates_to_a_member),
        cmocka_unit_test(test_collaborate_team_asks_members_side_by_side),
        cmocka_unit_test(test_a_failing_member_is_an_error_for_the_team),
        cmocka_unit_test(test_oauth_api_gives_the_requester_a_connect_link),
        cmocka_unit_test(test_schedule_commands_and_firing),
        cmocka_unit_test(test_scheduler_tool),
        cmocka_unit_test(test_thread_summary_tool),
        cmocka_unit_test(test_schedule_fires_after_sigkill_once),
        cmocka_unit_test(test_schedule_with_two_replicas_fires_once),
        cmocka_unit_test(test_thread_follow_up_prompt_and_short_answer),
        cmocka_unit_test(test_mention_picks_the_agent),
        cmocka_unit_test(test_two_candidates_router_hands_over),
        cmocka_unit_test(test_provider_error_then_recovery),
        cmocka_unit_test(test_same_turn_twice_is_answered_once),
        cmocka_unit_test(test_a_turn_costs_one_round_trip_a_step),
        cmocka_unit_test(test_room_mode_replies_plainly_with_room_history),
        cmocka_unit_test(test_unmanaged_room_goes_by_membership),
        cmocka_unit_test(test_a_slow_room_does_not_hold_up_another),
        cmocka_unit_test(test_the_hundredth_entity_answers),
        cmocka_unit_test(test_stop_mid_answer_edits_the_first_part_by_txn),
        cmocka_unit_test(test_sigkill_mid_answer_is_finished_after_restart),
        cmocka_unit_test(test_long_answers_arrive_complete),
        cmocka_unit_test(test_a_refused_send_gets_one_notice),
        cmocka_unit_test(test_claim_of_a_live_worker_parks_until_its_lease_lapses),
        cmocka_unit_test(test_a_dead_workers_turns_are_adopted),
        cmocka_unit_test(test_intents_validate_and_log_keeps_secrets),
        cmocka_unit_test(test_sigterm_exits_0),
    };
    return cmocka_run_group_tests_name("agent_e2e_redis", tests, group_setup, group_teardown);
}
