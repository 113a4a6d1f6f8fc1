/* test_sync_durable.c -- the gateway on `mindroom run`'s journaled in-process bus: a batch's
 * sync token is saved only once the journal has committed the batch's events, and the next
 * /sync does not wait for that commit.
 *
 * The gateway runs in this process (mr_gateway_serve on a thread, as `mindroom run` runs it)
 * over an inproc:///<dir>/bus.db journal and a SQLite store, against mr-test-homeserver. The
 * test takes the journal's before-commit hook (which syncs the store first, as the runtime's
 * does) and holds the writer there: nothing commits while it is held, as on a disk whose fsyncs
 * stall. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "commit_hold.h"
#include "gateway.h"
#include "gw_harness.h"
#include "mindroom/json.h"
#include "mindroom/runtime.h"
#include "tp_check.h"

#define WAIT_MS 20000

typedef struct suite {
    gwt f;
    mr_runtime *rt;
    mr_bus_consumer *inbound;
    json_t *msgs;
    mr_tp_commit_hold hold;
} suite;

static suite S = {.hold = MR_TP_COMMIT_HOLD_INIT};

static mr_code keep(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    json_t *v = json_loadb(m->value, m->len, 0, NULL);
    return v && json_array_append_new(ctx, v) == 0 ? MR_OK
                                                   : mr_err_set(err, MR_EINVAL, "%s: a message that is not JSON", m->topic);
}

typedef bool (*match_fn)(json_t *msg, const char *want);

static bool has_body(json_t *msg, const char *body)
{
    const char *b = json_string_value(json_object_get(json_object_get(json_object_get(msg, "event"), "content"),
                                                      "body"));
    return b && strcmp(b, body) == 0;
}

/* The first message read from the bus (within WAIT_MS) that matches, or NULL. */
static json_t *read_until(match_fn match, const char *want)
{
    long long deadline = mr_clock_mono_ms() + WAIT_MS;
    for (;;) {
        size_t i;
        json_t *m;
        json_array_foreach(S.msgs, i, m) {
            if (match(m, want))
                return m;
        }
        if (mr_clock_mono_ms() > deadline)
            return NULL;
        size_t handled = 0;
        mr_err err = {0};
        mr_tp_check_step(mr_bus_poll(S.inbound, 200, 100, keep, S.msgs, &handled, &err), &err, "polling the bus");
    }
}

static char *token_of(const char *account);

static bool has_token(const char *account)
{
    char *t = token_of(account);
    free(t);
    return t != NULL;
}

/* The gateway in this process is ready (/readyz would say 200). Its own check exists once a
 * first sync is saved, which comes after the check is added. */
static void wait_ready(void)
{
    long long deadline = mr_clock_mono_ms() + WAIT_MS * 3;
    char why[256] = "first syncs not saved";
    while (!has_token(GWT_ROUTER) || !has_token(GWT_MIND) || !mr_runtime_ready(S.rt, why, sizeof why)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the gateway was not ready within %d s: %s", WAIT_MS * 3 / 1000, why);
        mr_clock_sleep_ms(50);
    }
}

/* sync:<account> in the store, NULL when absent. */
static char *token_of(const char *account)
{
    char key[MR_MATRIX_ID_SIZE + 16];
    snprintf(key, sizeof key, "sync:%s", account);
    return mr_tp_stored(S.rt, key, "reading a sync token");
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int setup(void **state)
{
    (void)state;
    /* No space: its invites would change alice's device lists after the first syncs. */
    gwt_setup(&S.f, NULL, GWT_CONFIG_MIND_NO_SPACE);
    char data[600];
    snprintf(data, sizeof data, "%s/data", S.f.dir);
    mr_err err = {0};
    mr_runtime_opts ro = {.service = "gateway", .config_path = S.f.config, .storage_path = data};
    if (mr_tp_commit_hold_open(&S.hold, &ro, &S.rt) != 0)
        return -1;
    S.msgs = json_array();
    if (!S.msgs || mr_bus_subscribe(S.rt->bus, "test-inbound", (const char *const[]){"matrix.inbound", "matrix.todevice"}, 2,
                                    &S.inbound, &err) != MR_OK)
        return fprintf(stderr, "subscribing to matrix.inbound and matrix.todevice: %s\n", err.msg), -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mr_tp_commit_hold_close(&S.hold, S.rt, S.inbound);
    json_decref(S.msgs);
    gwt_teardown(&S.f);
    return 0;
}

/* While no commit can finish, alice's first message is on the bus but its batch's token is not
 * saved, and her second message comes through the next /sync all the same (the sync loop did not
 * wait for the commit); once the commit goes through, a later token is saved. */
static void test_token_waits_for_the_commit_not_the_next_sync(void **state)
{
    (void)state;
    /* Alice's public #lobby, made before MindRoom starts: every account shares it with her from
     * its first sync on, so no batch after those carries to-device messages (device lists),
     * which would make the round wait for the bus. */
    mr_matrix *alice = gwt_human(&S.f, "alice");
    char lobby[MR_MATRIX_ID_SIZE];
    json_t *body = json_pack("{s:s, s:s}", "room_alias_name", "lobby", "preset", "public_chat");
    mr_err err = {0};
    assert_non_null(body);
    mr_tp_check_step(mr_matrix_create_room(alice, body, lobby, &err), &err, "alice making #lobby");
    json_decref(body);
    assert_int_equal(mr_tp_commit_hold_serve(&S.hold, S.rt, mr_gateway_serve), 0);
    wait_ready();
    mr_tp_commit_hold_set(&S.hold, true);
    gwt_say(alice, lobby, "d1", "while the disk stalls");
    json_t *first = read_until(has_body, "while the disk stalls");
    if (!first)
        fail_msg("the first message was not published within %d s", WAIT_MS / 1000);
    const char *account = json_string_value(json_object_get(first, "account"));
    assert_non_null(account);
    /* The writer waits at the hold: every earlier commit's token saves have run. */
    if (!mr_tp_commit_hold_wait(&S.hold, WAIT_MS))
        fail_msg("no commit came to the hold within %d s", WAIT_MS / 1000);
    char *before = token_of(account);

    gwt_say(alice, lobby, "d2", "the next sync did not wait");
    if (!read_until(has_body, "the next sync did not wait"))
        fail_msg("the second message was not published within %d s while the commit was held: the sync "
                 "loop waits for the journal before its next /sync", WAIT_MS / 1000);
    char *held = token_of(account);
    assert_true(same(before, held));

    mr_tp_commit_hold_set(&S.hold, false);
    long long deadline = mr_clock_mono_ms() + WAIT_MS;
    char *after = token_of(account);
    while (same(after, before)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("no sync token of %s saved within %d s of the commit", account, WAIT_MS / 1000);
        free(after);
        mr_clock_sleep_ms(20);
        after = token_of(account);
    }
    assert_non_null(after);
    free(before);
    free(held);
    free(after);
    mr_matrix_free(alice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_waits_for_the_commit_not_the_next_sync, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
