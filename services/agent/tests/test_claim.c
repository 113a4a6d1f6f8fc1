/* test_claim.c -- who holds a claim, on a real store (SQLite in a temp directory) with the clock
 * passed in: this worker's own earlier boot, a live worker, a worker whose lease lapsed; the
 * heartbeat registry and the in-flight record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "agent_internal.h"
#include "peers.h"

#define T0 1764000000000LL

static char dir[512];
static mr_store *store;

static int setup(void **state)
{
    (void)state;
    mr_err err = {0};
    char url[600];
    if (mr_tp_mkdtemp("mr-agent-claim", dir, sizeof dir, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    snprintf(url, sizeof url, "sqlite://%s/state.db", dir);
    if (mr_store_open(url, NULL, &store, &err) != MR_OK)
        return fprintf(stderr, "%s\n", err.msg), -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mr_store_close(store);
    mr_tp_rmtree(dir, NULL);
    return 0;
}

static agent_self boot_of(const char *worker_id)
{
    agent_self me;
    mr_err err = {0};
    if (worker_self_init(worker_id, &me, &err) != MR_OK)
        fail_msg("worker_self_init: %s", err.msg);
    return me;
}

static void beat(const agent_self *me, long long now)
{
    mr_err err = {0};
    if (worker_beat(store, me, now, &err) != MR_OK)
        fail_msg("worker_beat: %s", err.msg);
}

static claim_outcome take(const agent_self *me, const char *event_id, long long now)
{
    claim_outcome c;
    mr_err err = {0};
    if (claim_take(store, me, event_id, "mind", now, &c, &err) != MR_OK)
        fail_msg("claim_take: %s", err.msg);
    return c;
}

static void test_first_claim_wins_and_done_is_final(void **state)
{
    (void)state;
    mr_err err = {0};
    agent_self a = boot_of("pod-a"), b = boot_of("pod-b");
    beat(&a, T0);
    beat(&b, T0);
    assert_int_equal(take(&a, "$c1:x", T0).result, CLAIM_WON);
    /* This boot's own claim, left by a failure it could not give up, is its own again. */
    assert_int_equal(take(&a, "$c1:x", T0 + 1).result, CLAIM_WON);
    assert_int_equal(claim_done(store, "$c1:x", "mind", &err), MR_OK);
    assert_int_equal(take(&b, "$c1:x", T0 + 10 * WORKER_LEASE_MS).result, CLAIM_DONE);
    assert_int_equal(take(&a, "$c1:x", T0 + 2).result, CLAIM_DONE);
    long ttl = 0;
    assert_int_equal(mr_store_ttl(store, "reply:$c1:x:mind", &ttl, &err), MR_OK);
    assert_true(ttl > CLAIM_TTL_MS - 60000 && ttl <= CLAIM_TTL_MS);
    /* Given up after a failure: the next run claims it at once. */
    assert_int_equal(take(&a, "$c2:x", T0).result, CLAIM_WON);
    assert_int_equal(claim_release(store, "$c2:x", "mind", &err), MR_OK);
    assert_int_equal(take(&b, "$c2:x", T0 + 1).result, CLAIM_WON);
}

static void test_own_dead_boot_is_taken_over_at_once(void **state)
{
    (void)state;
    agent_self before = boot_of("pod-r");
    beat(&before, T0);
    assert_int_equal(take(&before, "$r1:x", T0).result, CLAIM_WON);
    /* SIGKILL, and the same worker starts again a moment later: its heartbeat is fresh, but it
     * names the new boot, so the old boot's claim is dead. */
    agent_self after = boot_of("pod-r");
    assert_string_not_equal(after.boot, before.boot);
    beat(&after, T0 + 500);
    claim_outcome c = take(&after, "$r1:x", T0 + 500);
    assert_int_equal(c.result, CLAIM_TAKEN_OVER);
    assert_string_equal(c.why, "an earlier boot of this worker held it");
    /* Taken over once: to another worker it is now the live new boot's. */
    agent_self other = boot_of("pod-o");
    c = take(&other, "$r1:x", T0 + 600);
    assert_int_equal(c.result, CLAIM_BUSY);
    assert_int_equal(c.busy_until_ms, T0 + 500 + WORKER_LEASE_MS);
}

static void test_live_worker_keeps_its_claim(void **state)
{
    (void)state;
    agent_self holder = boot_of("pod-h"), other = boot_of("pod-x");
    beat(&holder, T0);
    beat(&other, T0);
    assert_int_equal(take(&holder, "$l1:x", T0).result, CLAIM_WON);
    claim_outcome c = take(&other, "$l1:x", T0 + 1000);
    assert_int_equal(c.result, CLAIM_BUSY);
    assert_int_equal(c.busy_until_ms, T0 + WORKER_LEASE_MS);
    /* The holder beats on, however long its answer takes: still busy well past one lease. */
    for (long long t = T0; t <= T0 + 6 * WORKER_LEASE_MS; t += WORKER_HEARTBEAT_MS)
        beat(&holder, t);
    long long last = T0 + 6 * WORKER_LEASE_MS - (6 * WORKER_LEASE_MS) % WORKER_HEARTBEAT_MS;
    c = take(&other, "$l1:x", T0 + 6 * WORKER_LEASE_MS + 1);
    assert_int_equal(c.result, CLAIM_BUSY);
    assert_int_equal(c.busy_until_ms, last + WORKER_LEASE_MS);
}

static void test_lapsed_lease_is_taken_over(void **state)
{
    (void)state;
    agent_self holder = boot_of("pod-d"), other = boot_of("pod-y");
    beat(&holder, T0);
    beat(&other, T0);
    assert_int_equal(take(&holder, "$d1:x", T0).result, CLAIM_WON);
    /* One ms before the lease ends it is still the holder's. */
    assert_int_equal(take(&other, "$d1:x", T0 + WORKER_LEASE_MS - 1).result, CLAIM_BUSY);
    beat(&other, T0 + WORKER_LEASE_MS);
    claim_outcome c = take(&other, "$d1:x", T0 + WORKER_LEASE_MS);
    assert_int_equal(c.result, CLAIM_TAKEN_OVER);
    assert_string_equal(c.why, "its holder's heartbeat lease lapsed");
    /* The old holder comes back (same boot, beating again): the claim is the other's now. */
    beat(&holder, T0 + WORKER_LEASE_MS + 1);
    assert_int_equal(take(&holder, "$d1:x", T0 + WORKER_LEASE_MS + 1).result, CLAIM_BUSY);
    /* A worker that never beat, or beat under another boot since, holds nothing. */
    agent_self ghost = boot_of("pod-g"), ghost_again = boot_of("pod-g");
    assert_int_equal(take(&ghost, "$g1:x", T0).result, CLAIM_WON);
    assert_int_equal(take(&other, "$g1:x", T0 + 1).result, CLAIM_TAKEN_OVER);
    beat(&ghost_again, T0 + 2);
    assert_int_equal(take(&ghost, "$g2:x", T0 + 2).result, CLAIM_WON);
    assert_int_equal(take(&other, "$g2:x", T0 + 3).result, CLAIM_TAKEN_OVER);
}

static void test_claim_of_an_older_release_is_taken_over(void **state)
{
    (void)state;
    mr_err err = {0};
    agent_self me = boot_of("pod-n");
    assert_int_equal(mr_store_set(store, "reply:$o1:x:mind", "started 1764000000000", 21, CLAIM_TTL_MS, &err), MR_OK);
    claim_outcome c = take(&me, "$o1:x", T0);
    assert_int_equal(c.result, CLAIM_TAKEN_OVER);
    assert_string_equal(c.why, "the claim names no worker");
}

/* The one holder form of claims, leases and schedule firings: what parses and what does not. */
static void test_holder_forms(void **state)
{
    (void)state;
    static const char *const claim[] = {"started", NULL}, *const lease[] = {"started", "queued", NULL},
                             *const firing[] = {"", NULL};
    worker_holder h;
    agent_self me = boot_of("pod-f");
    char v[HOLDER_MAX];
    size_t n = holder_format("queued", &me, v);
    assert_int_equal(n, strlen(v));
    assert_true(holder_parse(v, lease, &h));
    assert_string_equal(h.state, "queued");
    assert_string_equal(h.worker, "pod-f");
    assert_string_equal(h.boot, me.boot);
    assert_false(holder_parse(v, claim, &h));
    n = holder_format(NULL, &me, v);
    assert_int_equal(n, strlen(v));
    assert_true(holder_parse(v, firing, &h));
    assert_string_equal(h.state, "");
    assert_string_equal(h.worker, "pod-f");
    assert_false(holder_parse(v, claim, &h));
    /* Malformed: no worker named, and nothing half-read left in h. */
    char long_worker[WORKER_ID_MAX + 32];
    snprintf(long_worker, sizeof long_worker, "started %0*d b", WORKER_ID_MAX + 1, 7);
    const char *bad[] = {"", "done", "started 1764000000000", "started", "started w b extra", "started  w b",
                         "started w 0123456789abcdef0", "startedx w b", long_worker, "started w b "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(holder_parse(bad[i], claim, &h));
        assert_string_equal(h.worker, "");
    }
}

/* Whose a held key is, and taking it over, for each kind of holder. */
static void test_holder_take(void **state)
{
    (void)state;
    static const char *const forms[] = {"started", NULL};
    mr_err err = {0};
    agent_self me = boot_of("pod-t"), earlier = boot_of("pod-t"), live = boot_of("pod-l"), dead = boot_of("pod-z");
    beat(&live, T0);
    beat(&dead, T0 - WORKER_LEASE_MS);
    beat(&me, T0);
    holder_try t;
    bool won = false, swapped = false;
    long long until = -1;
    assert_int_equal(holder_take(store, &me, "held:free", "started", forms, 60000, &t, &won, &err), MR_OK);
    assert_true(won);
    holder_try_free(&t);
    /* This boot's own, found again. */
    assert_int_equal(holder_take(store, &me, "held:free", "started", forms, 60000, &t, &won, &err), MR_OK);
    assert_false(won);
    assert_int_equal(t.whose, HOLDER_ME);
    holder_try_free(&t);
    struct {
        const agent_self *by;
        const char *value;
        holder_whose whose;
        long long until;
    } cases[] = {
        {&live, NULL, HOLDER_OTHER, T0 + WORKER_LEASE_MS},
        {&dead, NULL, HOLDER_OTHER, 0},
        {&earlier, NULL, HOLDER_MY_EARLIER_BOOT, 0},
        {NULL, "started 1764000000000", HOLDER_NONE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[32], v[HOLDER_MAX];
        snprintf(key, sizeof key, "held:%zu", i);
        const char *value = cases[i].value;
        if (!value) {
            holder_format("started", cases[i].by, v);
            value = v;
        }
        assert_int_equal(mr_store_set(store, key, value, strlen(value), 60000, &err), MR_OK);
        assert_int_equal(holder_take(store, &me, key, "started", forms, 60000, &t, &won, &err), MR_OK);
        assert_false(won);
        assert_int_equal(t.whose, cases[i].whose);
        assert_string_equal(t.held, value);
        assert_int_equal(holder_alive_until(store, &t, T0, &until, &err), MR_OK);
        assert_int_equal(until, cases[i].until);
        /* Taken over only from the value it found. */
        assert_int_equal(mr_store_set(store, key, "done", 4, 60000, &err), MR_OK);
        assert_int_equal(holder_take_over(store, &t, &swapped, &err), MR_OK);
        assert_false(swapped);
        assert_int_equal(mr_store_set(store, key, value, strlen(value), 60000, &err), MR_OK);
        assert_int_equal(holder_take_over(store, &t, &swapped, &err), MR_OK);
        assert_true(swapped);
        holder_try_free(&t);
        char *now_held = NULL;
        size_t len = 0;
        assert_int_equal(mr_store_get(store, key, &now_held, &len, &err), MR_OK);
        assert_string_equal(now_held, t.mine);
        free(now_held);
    }
}

static void test_worker_ids(void **state)
{
    (void)state;
    mr_err err = {0};
    assert_int_equal(worker_id_check("agent-7.pod_b", &err), MR_OK);
    char too_long[WORKER_ID_MAX + 2];
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    const char *bad[] = {"", "two words", "slash/y", too_long};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        agent_self me;
        assert_int_equal(worker_self_init(bad[i], &me, &err), MR_EINVAL);
        assert_non_null(strstr(err.msg, "MINDROOM_WORKER_ID"));
    }
}

static void test_a_second_process_under_one_worker_id_shows(void **state)
{
    (void)state;
    mr_err err = {0};
    bool clash = true;
    agent_self first = boot_of("pod-twin"), second = boot_of("pod-twin");
    assert_int_equal(worker_clash(store, &first, &clash, &err), MR_OK);
    assert_false(clash);
    beat(&first, T0);
    assert_int_equal(worker_clash(store, &first, &clash, &err), MR_OK);
    assert_false(clash);
    beat(&second, T0 + 1000);
    assert_int_equal(worker_clash(store, &first, &clash, &err), MR_OK);
    assert_true(clash);
    assert_int_equal(worker_clash(store, &second, &clash, &err), MR_OK);
    assert_false(clash);
}

static void test_inflight_record_keeps_acceptance_order(void **state)
{
    (void)state;
    mr_err err = {0};
    char f[4][INFLIGHT_FIELD_MAX];
    /* The rooms sort against the order: the order comes first in the field. */
    inflight_field(T0, 9, "!zz:example.org", f[0]);
    inflight_field(T0, 10, "!b:example.org", f[1]);
    inflight_field(T0 + 5000, 0, "!a:example.org", f[2]); /* a later boot */
    inflight_field(T0 + 5000, 1, "!a:example.org", f[3]);
    assert_string_equal(inflight_room(f[0]), "!zz:example.org");
    assert_string_equal(inflight_room(f[3]), "!a:example.org");
    /* Written in another order than accepted. */
    const int order[] = {3, 1, 2, 0};
    for (size_t i = 0; i < 4; i++) {
        char v[8];
        int n = snprintf(v, sizeof v, "t%d", order[i]);
        assert_int_equal(inflight_put(store, "pod-i", f[order[i]], v, (size_t)n, &err), MR_OK);
    }
    assert_int_equal(inflight_drop(store, "pod-i", f[2], &err), MR_OK);
    mr_store_hash h;
    assert_int_equal(inflight_list(store, "pod-i", &h, &err), MR_OK);
    assert_int_equal(h.count, 3);
    assert_string_equal(h.entries[0].value, "t0");
    assert_string_equal(h.entries[1].value, "t1");
    assert_string_equal(h.entries[2].value, "t3");
    mr_store_hash_free(&h);
    /* Another worker's record is its own. */
    assert_int_equal(inflight_list(store, "pod-j", &h, &err), MR_OK);
    assert_int_equal(h.count, 0);
    mr_store_hash_free(&h);
}

/* A field an older release wrote names no room, and neither does one whose room is too long for
 * it: the turn says which room it is. */
static void test_inflight_field_without_room(void **state)
{
    (void)state;
    char f[INFLIGHT_FIELD_MAX], room[MR_ID_MAX + 8];
    assert_null(inflight_room("000000000000001.000000000001"));
    assert_null(inflight_room("000000000000001.000000000001."));
    memset(room, 'r', sizeof room - 1);
    room[0] = '!';
    room[sizeof room - 1] = '\0';
    inflight_field(T0, 3, room, f);
    assert_string_equal(f, "001764000000000.000000000003");
    assert_null(inflight_room(f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_claim_wins_and_done_is_final),
        cmocka_unit_test(test_own_dead_boot_is_taken_over_at_once),
        cmocka_unit_test(test_live_worker_keeps_its_claim),
        cmocka_unit_test(test_lapsed_lease_is_taken_over),
        cmocka_unit_test(test_claim_of_an_older_release_is_taken_over),
        cmocka_unit_test(test_holder_forms),
        cmocka_unit_test(test_holder_take),
        cmocka_unit_test(test_worker_ids),
        cmocka_unit_test(test_a_second_process_under_one_worker_id_shows),
        cmocka_unit_test(test_inflight_record_keeps_acceptance_order),
        cmocka_unit_test(test_inflight_field_without_room),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
