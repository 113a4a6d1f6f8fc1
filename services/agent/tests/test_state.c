/* test_state.c -- thread state and prompt history on a real store (SQLite in a temp directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_run.h"
#include "peers.h"

static const char CONFIG[] =
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"
    "agents:\n  mind: {display_name: Mind, rooms: [lobby]}\n  coder: {display_name: Coder, rooms: [lobby]}\n"
    "bot_accounts: [\"@telegrambot:example.org\"]\n";

#define ROOM "!lobby:example.org"
#define MIND "@mindroom_mind:example.org"
#define CODER "@mindroom_coder:example.org"
#define ROUTER "@mindroom_router:example.org"

static char dir[512];
static mr_store *store;
static roster R;

static int setup(void **state)
{
    (void)state;
    mr_err err = {0};
    mr_config *cfg = NULL;
    char url[600];
    if (mr_tp_mkdtemp("mr-agent-state", dir, sizeof dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    snprintf(url, sizeof url, "sqlite://%s/state.db", dir);
    if (mr_store_open(url, NULL, &store, &err) != MR_OK ||
        mr_config_parse(CONFIG, strlen(CONFIG), "config.yaml", &cfg, NULL, &err) != MR_OK ||
        roster_build(cfg, "example.org", NULL, &R, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    mr_config_release(cfg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    roster_free(&R);
    mr_store_close(store);
    mr_tp_rmtree(dir, NULL);
    return 0;
}

static void append(const char *root, const char *event_id, const char *sender, const char *entity, const char *body)
{
    history_msg m = {.event_id = event_id, .sender = sender, .entity = entity, .body = body};
    mr_err err = {0};
    if (thread_append(store, ROOM, root, &m, &err) != MR_OK)
        fail_msg("thread_append: %s", err.msg);
}

static void test_thread_participants(void **state)
{
    (void)state;
    mr_err err = {0};
    thread_state th;
    assert_int_equal(thread_load(store, ROOM, "$t1:x", &th, &err), MR_OK);
    assert_int_equal(thread_count(&th), 0);
    assert_int_equal(thread_humans(&th, &R, "@alice:example.org"), 1);
    thread_state_free(&th);

    append("$t1:x", "$t1:x", "@alice:example.org", NULL, "hi");
    append("$t1:x", NULL, ROUTER, "router", "@Coder could you help with this?");
    append("$t1:x", NULL, CODER, "coder", "hello");
    append("$t1:x", "$t2:x", "@telegrambot:example.org", NULL, "relayed");
    append("$t1:x", NULL, MIND, "mind", "me too");
    /* A second copy of an event is not a second message. */
    append("$t1:x", "$t1:x", "@alice:example.org", NULL, "hi");
    assert_int_equal(thread_load(store, ROOM, "$t1:x", &th, &err), MR_OK);
    assert_int_equal(thread_count(&th), 5);
    /* alice only: bot accounts and entities are not people; alice posting again is still one. */
    assert_int_equal(thread_humans(&th, &R, NULL), 1);
    assert_int_equal(thread_humans(&th, &R, "@alice:example.org"), 1);
    assert_int_equal(thread_humans(&th, &R, "@bob:example.org"), 2);
    assert_int_equal(thread_humans(&th, &R, "@telegrambot:example.org"), 1);
    /* In order of first post, the router left out. */
    const char *agents[4];
    assert_int_equal(thread_agents(&th, &R, agents, 4), 2);
    assert_string_equal(agents[0], "coder");
    assert_string_equal(agents[1], "mind");
    history_msg m = thread_message(&th, 1);
    assert_string_equal(m.entity, "router");
    assert_null(m.event_id);
    thread_state_free(&th);
}

/* An answer recorded, then answered again after a crash before its claim was done (the turn
 * runs again under the same transaction IDs): the history holds it once, with the text of the
 * second attempt, which is what the room shows after the edit. */
static void test_a_retried_answer_replaces_its_first_attempt(void **state)
{
    (void)state;
    mr_err err = {0};
    append("$r:x", "$r:x", "@alice:example.org", NULL, "question");
    history_msg first = {.sender = MIND, .entity = "mind", .body = "first attempt", .answer = "mrabc."};
    assert_int_equal(thread_append(store, ROOM, "$r:x", &first, &err), MR_OK);
    history_msg again = {.sender = MIND, .entity = "mind", .body = "second attempt", .answer = "mrabc."};
    assert_int_equal(thread_append(store, ROOM, "$r:x", &again, &err), MR_OK);
    history_msg other = {.sender = MIND, .entity = "mind", .body = "another answer", .answer = "mrdef."};
    assert_int_equal(thread_append(store, ROOM, "$r:x", &other, &err), MR_OK);
    thread_state th;
    assert_int_equal(thread_load(store, ROOM, "$r:x", &th, &err), MR_OK);
    assert_int_equal(thread_count(&th), 3);
    assert_string_equal(thread_message(&th, 1).body, "second attempt");
    assert_string_equal(thread_message(&th, 2).body, "another answer");
    thread_state_free(&th);
}

/* The bodies of the stored history at root, oldest first, joined by "|". */
static void stored_bodies(const char *root, char *out, size_t cap)
{
    mr_err err = {0};
    thread_state th;
    assert_int_equal(thread_load(store, ROOM, root, &th, &err), MR_OK);
    out[0] = '\0';
    for (size_t i = 0; i < thread_count(&th); i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "|" : "", thread_message(&th, i).body);
    thread_state_free(&th);
}

/* A noted message is not stored until the next write of its state, which stores it first; a
 * writer that came in between keeps its message, and the noted one still goes before the answer. */
static void test_a_noted_message_goes_in_first(void **state)
{
    (void)state;
    mr_err err = {0};
    char bodies[256];
    thread_state th;
    assert_int_equal(thread_load(store, ROOM, "$n:x", &th, &err), MR_OK);
    history_msg q = {.event_id = "$n:x", .sender = "@alice:example.org", .body = "question"};
    thread_note(&th, &q);
    assert_int_equal(thread_count(&th), 1);
    stored_bodies("$n:x", bodies, sizeof bodies);
    assert_string_equal(bodies, "");
    append("$n:x", "$between:x", "@bob:example.org", NULL, "in between");
    history_msg a = {.sender = MIND, .entity = "mind", .body = "answer", .answer = "mrn."};
    assert_int_equal(thread_append_to(store, ROOM, "$n:x", &th, &a, &err), MR_OK);
    stored_bodies("$n:x", bodies, sizeof bodies);
    assert_string_equal(bodies, "in between|question|answer");
    assert_false(th.unsaved);
    /* Nothing noted: saving writes nothing. */
    assert_int_equal(thread_save(store, ROOM, "$n:x", &th, &err), MR_OK);
    thread_state_free(&th);

    /* A turn that answers nothing: saving stores the noted message. */
    assert_int_equal(thread_load(store, ROOM, "$silent:x", &th, &err), MR_OK);
    history_msg quiet = {.event_id = "$silent:x", .sender = "@alice:example.org", .body = "just saying"};
    thread_note(&th, &quiet);
    assert_int_equal(thread_save(store, ROOM, "$silent:x", &th, &err), MR_OK);
    stored_bodies("$silent:x", bodies, sizeof bodies);
    assert_string_equal(bodies, "just saying");
    thread_state_free(&th);
}

/* The write of a noted message in a batch with others: kept when it swapped; when another writer
 * came first, written again on top of what it wrote. */
static void test_a_noted_message_in_a_batch(void **state)
{
    (void)state;
    mr_err err = {0};
    char bodies[256], key[HISTORY_KEY_MAX], *text = NULL;
    for (int lost = 0; lost < 2; lost++) {
        const char *root = lost ? "$b2:x" : "$b1:x";
        thread_state th;
        assert_int_equal(thread_load(store, ROOM, root, &th, &err), MR_OK);
        mr_store_op ops[2];
        assert_false(thread_save_op(ROOM, root, &th, key, &text, &ops[0], &err));
        history_msg q = {.event_id = root, .sender = "@alice:example.org", .body = "question"};
        thread_note(&th, &q);
        assert_true(thread_save_op(ROOM, root, &th, key, &text, &ops[0], &err));
        ops[1] = (mr_store_op){.kind = MR_STORE_OP_SET, .key = "beside", .value = "v", .len = 1};
        if (lost)
            append(root, "$first:x", "@bob:example.org", NULL, "came first");
        assert_int_equal(mr_store_batch(store, ops, 2, &err), MR_OK);
        assert_int_equal(ops[0].done, !lost);
        assert_int_equal(thread_saved(store, ROOM, root, &th, &ops[0], text, &err), MR_OK);
        assert_false(th.unsaved);
        stored_bodies(root, bodies, sizeof bodies);
        assert_string_equal(bodies, lost ? "came first|question" : "question");
        /* The state is what is stored: the answer goes in with one compare-and-set. */
        history_msg a = {.sender = MIND, .entity = "mind", .body = "answer", .answer = "mrb."};
        assert_int_equal(thread_append_to(store, ROOM, root, &th, &a, &err), MR_OK);
        stored_bodies(root, bodies, sizeof bodies);
        assert_string_equal(bodies, lost ? "came first|question|answer" : "question|answer");
        thread_state_free(&th);
    }
}

static void test_history_is_capped(void **state)
{
    (void)state;
    char id[32], body[32];
    for (int i = 0; i < HISTORY_MAX + 5; i++) {
        snprintf(id, sizeof id, "$cap%d:x", i);
        snprintf(body, sizeof body, "message %d", i);
        append("$cap:x", id, "@alice:example.org", NULL, body);
    }
    /* Bodies are cut at a character boundary: 3999 bytes of 'a', then a 3-byte character. */
    char long_body[HISTORY_BODY_MAX + 16];
    memset(long_body, 'a', HISTORY_BODY_MAX - 1);
    strcpy(long_body + HISTORY_BODY_MAX - 1, "\xe2\x8b\xaf tail");
    append("$cap:x", "$long:x", "@bob:example.org", NULL, long_body);
    thread_state th;
    mr_err err = {0};
    assert_int_equal(thread_load(store, ROOM, "$cap:x", &th, &err), MR_OK);
    assert_int_equal(thread_count(&th), HISTORY_MAX);
    assert_string_equal(thread_message(&th, 0).body, "message 6");
    assert_int_equal(strlen(thread_message(&th, HISTORY_MAX - 1).body), HISTORY_BODY_MAX - 1);
    /* Participants outlive the messages that were dropped. */
    assert_int_equal(thread_humans(&th, &R, NULL), 2);
    thread_state_free(&th);
}

static void test_prompt_history(void **state)
{
    (void)state;
    append("$p1:x", "$p1:x", "@alice:example.org", NULL, "what is 2+2?");
    append("$p1:x", NULL, ROUTER, "router", "@Mind could you help with this?");
    append("$p1:x", NULL, MIND, "mind", "4");
    append("$p1:x", NULL, CODER, "coder", "indeed");
    append("$p1:x", "$p2:x", "@alice:example.org", NULL, "and 3+3?");
    thread_state th;
    mr_err err = {0};
    assert_int_equal(thread_load(store, ROOM, "$p1:x", &th, &err), MR_OK);
    agent_turn turn = {.event_id = "$p2:x"};
    turn_ctx t = {.turn = &turn, .root = "$p1:x", .user_text = "and 3+3?"};
    prompt_history p;
    assert_int_equal(prompt_history_build(&th, &R, "mind", &t, 10, &p, &err), MR_OK);
    /* The message answered and the hand-off are left out; mind's own words are the assistant's. */
    assert_int_equal(p.n, 3);
    assert_int_equal(p.msgs[0].role, MR_LLM_USER);
    assert_string_equal(p.msgs[0].content, "@alice:example.org: what is 2+2?");
    assert_int_equal(p.msgs[1].role, MR_LLM_ASSISTANT);
    assert_string_equal(p.msgs[1].content, "4");
    assert_int_equal(p.msgs[2].role, MR_LLM_USER);
    assert_string_equal(p.msgs[2].content, "Coder: indeed");
    prompt_history_free(&p);
    /* The last two only, and for a hand-off the message it hands over goes too. */
    t.handed_over = "$p1:x";
    assert_int_equal(prompt_history_build(&th, &R, NULL, &t, 2, &p, &err), MR_OK);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.msgs[0].content, "Mind: 4");
    assert_string_equal(p.msgs[1].content, "Coder: indeed");
    prompt_history_free(&p);
    thread_state_free(&th);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_participants),
        cmocka_unit_test(test_a_retried_answer_replaces_its_first_attempt),
        cmocka_unit_test(test_a_noted_message_goes_in_first),
        cmocka_unit_test(test_a_noted_message_in_a_batch),
        cmocka_unit_test(test_history_is_capped),
        cmocka_unit_test(test_prompt_history),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
