/* test_markers.c -- authz's `turn:` markers over the journaled inproc bus of `mindroom run`:
 * written only once the journal committed what was published before them, never for a commit
 * that failed or a bus that closed first, and counted as decided while they wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "authz_internal.h"
#include "mindroom/clock.h"
#include "peers.h"

#define KEY "turn:$ev1:example.org"

typedef struct fixture {
    char dir[256];
    char bus_url[320];
    mr_store *store;
    bool fail_commits; /* the journal's hook fails, so no commit lands */
} fixture;

static mr_code hook(void *ctx, mr_err *err)
{
    const fixture *f = ctx;
    return f->fail_commits ? mr_err_set(err, MR_EIO, "the test holds the commit back") : MR_OK;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    mr_err err = {0};
    char url[320];
    if (!f || mr_tp_mkdtemp("mr-authz-markers", f->dir, sizeof f->dir, &err) != MR_OK)
        return -1;
    snprintf(f->bus_url, sizeof f->bus_url, "inproc://%s/bus.db", f->dir);
    snprintf(url, sizeof url, "sqlite://%s/store.db", f->dir);
    if (mr_store_open(url, NULL, &f->store, &err) != MR_OK) {
        print_error("%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mr_err err = {0};
    mr_store_close(f->store);
    mr_tp_rmtree(f->dir, &err);
    free(f);
    return 0;
}

static mr_bus *open_bus(fixture *f)
{
    mr_bus *b = NULL;
    mr_err err = {0};
    if (mr_bus_open(f->bus_url, NULL, &b, &err) != MR_OK)
        fail_msg("%s", err.msg);
    assert_true(mr_bus_before_commit(b, hook, f));
    return b;
}

static void publish_turn(mr_bus *b)
{
    mr_err err = {0};
    if (mr_bus_publish(b, "agent.turns", "!abc:example.org", "{}", 2, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

/* The marker in the store, NULL when there is none (the caller frees it). */
static char *marker(const fixture *f)
{
    char *v = NULL;
    size_t len = 0;
    mr_err err = {0};
    mr_code rc = mr_store_get(f->store, KEY, &v, &len, &err);
    if (rc != MR_OK && rc != MR_ENOTFOUND)
        fail_msg("%s", err.msg);
    return v;
}

/* The marker in the store holds want. */
static void expect_marker(const fixture *f, const char *want)
{
    char *v = marker(f);
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

/* Publishes a turn on b and has a new marker set write value once the turn is durable. */
static authz_markers *mark_after_turn(fixture *f, mr_bus *b, const char *value)
{
    mr_err err = {0};
    authz_markers *m = authz_markers_new(f->store);
    assert_non_null(m);
    publish_turn(b);
    assert_int_equal(authz_markers_set_when_durable(m, b, KEY, value, &err), MR_OK);
    return m;
}

static void test_written_after_the_commit(void **state)
{
    fixture *f = *state;
    mr_err err = {0};
    mr_bus *b = open_bus(f);
    f->fail_commits = true;
    authz_markers *m = mark_after_turn(f, b, "turn");
    /* The turn is not committed: no marker, but a copy of the event counts as decided. */
    assert_int_equal(mr_bus_flush(b, 60000, &err), MR_EIO);
    assert_null(marker(f));
    assert_true(authz_markers_waiting(m, KEY));
    assert_false(authz_markers_waiting(m, "turn:$other:example.org"));

    f->fail_commits = false;
    long long deadline = mr_clock_mono_ms() + 60000;
    while (mr_bus_flush(b, 1000, &err) != MR_OK && mr_clock_mono_ms() < deadline)
        mr_clock_sleep_ms(50);
    /* Closing waits for the writer, which writes the marker after the commit. */
    mr_bus_close(b);
    expect_marker(f, "turn");
    assert_false(authz_markers_waiting(m, KEY));
    authz_markers_release(m);
}

/* The bus closes with the turn never committed: the event comes again after the restart and is
 * decided again, so nothing may say it was decided. The set outlives the service that released
 * it until its last marker is done. */
static void test_not_written_when_never_committed(void **state)
{
    fixture *f = *state;
    mr_bus *b = open_bus(f);
    f->fail_commits = true;
    authz_markers_release(mark_after_turn(f, b, "turn"));
    mr_bus_close(b);
    assert_null(marker(f));
}

/* A bus without a journal holds a message once it is published: the marker is written at once. */
static void test_written_at_once_without_a_journal(void **state)
{
    fixture *f = *state;
    mr_err err = {0};
    mr_bus *b = NULL;
    assert_int_equal(mr_bus_open("inproc:", NULL, &b, &err), MR_OK);
    authz_markers *m = mark_after_turn(f, b, "denied");
    expect_marker(f, "denied");
    assert_false(authz_markers_waiting(m, KEY));
    authz_markers_release(m);
    mr_bus_close(b);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_written_after_the_commit),
        T(test_not_written_when_never_committed),
        T(test_written_at_once_without_a_journal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
