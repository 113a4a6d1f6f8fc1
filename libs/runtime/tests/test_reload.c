/* test_reload.c -- the swappable config, signals in-process, the stop flag, readiness checks and the
 * consumer loop. */
#include "rt_test_util.h"

#include <pthread.h>
#include <signal.h>

#include "mindroom/runtime.h"
#include "mindroom/clock.h"

typedef struct fixture {
    char dir[RT_DIR_SIZE];
    mr_runtime *rt;
} fixture;

static int setup(void **state)
{
    fixture *f = rt_fixture_new(sizeof *f);
    mr_runtime_opts opts = {.service = "demo"};
    mr_err err = {0};
    if (mr_runtime_open(&opts, &f->rt, &err) != MR_OK)
        fail_msg("mr_runtime_open: %s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    mr_runtime_close(f->rt);
    return rt_fixture_free(state);
}

static size_t agents_now(const mr_runtime *rt, unsigned long *gen)
{
    mr_config *cfg = mr_runtime_config(rt, gen);
    size_t n = cfg->n_agents;
    mr_config_release(cfg);
    return n;
}

static void test_broken_file_keeps_old_config(void **state)
{
    fixture *f = *state;
    unsigned long gen = 99;
    mr_config *before = mr_runtime_config(f->rt, &gen);
    assert_int_equal(gen, 0);
    rt_write(f->dir, "config.yaml", RT_CONFIG_BROKEN);
    mr_err err = {0};
    assert_int_equal(mr_runtime_reload(f->rt, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "config.yaml: 1 error"));
    mr_config *after = mr_runtime_config(f->rt, &gen);
    assert_ptr_equal(after, before);
    assert_int_equal(gen, 0);
    assert_int_equal(after->n_agents, 2);
    mr_config_release(after);
    mr_config_release(before);

    /* A file that cannot be read at all is no better. */
    char path[1024];
    snprintf(path, sizeof path, "%s/config.yaml", f->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_not_equal(mr_runtime_reload(f->rt, &err), MR_OK);
    assert_int_equal(agents_now(f->rt, &gen), 2);
    assert_int_equal(gen, 0);
}

static void test_good_file_swaps_and_old_reference_lives(void **state)
{
    fixture *f = *state;
    mr_config *held = mr_runtime_config(f->rt, NULL);
    rt_write(f->dir, "config.yaml", RT_CONFIG_THREE);
    mr_err err = {0};
    assert_int_equal(mr_runtime_reload(f->rt, &err), MR_OK);
    unsigned long gen = 0;
    assert_int_equal(agents_now(f->rt, &gen), 3);
    assert_int_equal(gen, 1);
    /* The message in flight still reads its own config, whole. */
    assert_int_equal(held->n_agents, 2);
    assert_string_equal(held->agents[1].name, "b");
    mr_config_release(held);

    rt_write(f->dir, "config.yaml", RT_CONFIG_TWO);
    assert_int_equal(mr_runtime_reload(f->rt, &err), MR_OK);
    assert_int_equal(agents_now(f->rt, &gen), 2);
    assert_int_equal(gen, 2);
}

typedef struct reader {
    const mr_runtime *rt;
    long reads;
    bool bad;
} reader;

static void *read_loop(void *arg)
{
    reader *r = arg;
    do {
        mr_config *cfg = mr_runtime_config(r->rt, NULL);
        /* Every config this test writes has 2 or 3 agents named a, b(, c). */
        if ((cfg->n_agents != 2 && cfg->n_agents != 3) || strcmp(cfg->agents[0].name, "a") != 0)
            r->bad = true;
        mr_config_release(cfg);
        r->reads++;
    } while (!mr_runtime_stopping(r->rt));
    return NULL;
}

/* Readers on other threads never see a freed or half-built config while reloads swap it (ASan
 * turns any use after free into a failure). */
static void test_readers_during_reloads(void **state)
{
    fixture *f = *state;
    reader r[2] = {{.rt = f->rt}, {.rt = f->rt}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, read_loop, &r[i]), 0);
    mr_err err = {0};
    for (int i = 0; i < 40; i++) {
        rt_write(f->dir, "config.yaml", i % 2 ? RT_CONFIG_TWO : RT_CONFIG_THREE);
        assert_int_equal(mr_runtime_reload(f->rt, &err), MR_OK);
    }
    mr_runtime_stop(f->rt);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_false(r[i].bad);
        assert_true(r[i].reads > 0);
    }
    unsigned long gen = 0;
    assert_int_equal(agents_now(f->rt, &gen), 2);
    assert_int_equal(gen, 40);
}

static void *stop_later(void *arg)
{
    mr_runtime_stop(arg);
    return NULL;
}

static void test_sleep_ends_on_stop(void **state)
{
    fixture *f = *state;
    assert_false(mr_runtime_stopping(f->rt));
    assert_false(mr_runtime_sleep(f->rt, 1));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, f->rt), 0);
    /* An hour: only the stop can end this sleep before the test times out. */
    assert_true(mr_runtime_sleep(f->rt, 3600 * 1000));
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(mr_runtime_stopping(f->rt));
}

static bool check_flag(void *ctx, char *why, size_t cap)
{
    const bool *ok = ctx;
    if (!*ok)
        snprintf(why, cap, "demo: not subscribed yet");
    return *ok;
}

static void test_readiness_checks(void **state)
{
    fixture *f = *state;
    char why[256] = "";
    assert_true(mr_runtime_ready(f->rt, why, sizeof why));
    bool ok = false;
    mr_err err = {0};
    assert_int_equal(mr_runtime_add_check(f->rt, check_flag, &ok, &err), MR_OK);
    assert_false(mr_runtime_ready(f->rt, why, sizeof why));
    assert_string_equal(why, "demo: not subscribed yet");
    ok = true;
    assert_true(mr_runtime_ready(f->rt, why, sizeof why));
    ok = false;
    mr_runtime_remove_check(f->rt, check_flag, &ok);
    assert_true(mr_runtime_ready(f->rt, why, sizeof why));

    bool many[9] = {true, true, true, true, true, true, true, true, true};
    for (int i = 0; i < 8; i++)
        assert_int_equal(mr_runtime_add_check(f->rt, check_flag, &many[i], &err), MR_OK);
    assert_int_equal(mr_runtime_add_check(f->rt, check_flag, &many[8], &err), MR_EINVAL);
    assert_string_equal(err.msg, "demo: more than 8 readiness checks");
    for (int i = 0; i < 8; i++)
        mr_runtime_remove_check(f->rt, check_flag, &many[i]);
}

/* Waits (bounded) until cond(rt) holds. */
static bool wait_for(const mr_runtime *rt, bool (*cond)(const mr_runtime *))
{
    for (int i = 0; i < 3000; i++) {
        if (cond(rt))
            return true;
        mr_clock_sleep_ms(10);
    }
    return false;
}

static bool reloaded(const mr_runtime *rt)
{
    unsigned long gen = 0;
    return agents_now(rt, &gen) == 3 && gen == 1;
}

static void test_signals_in_process(void **state)
{
    fixture *f = *state;
    mr_err err = {0};
    assert_int_equal(mr_runtime_watch_signals(f->rt, &err), MR_OK);
    rt_write(f->dir, "config.yaml", RT_CONFIG_THREE);
    assert_int_equal(kill(getpid(), SIGHUP), 0);
    assert_true(wait_for(f->rt, reloaded));
    assert_false(mr_runtime_stopping(f->rt));
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    assert_true(wait_for(f->rt, mr_runtime_stopping));
    /* teardown's close ends the watcher. */
}

typedef struct consumed {
    const mr_runtime *rt;
    atomic_bool consuming;
    int handled;         /* messages handled, the failed one included */
    int fail_at;         /* the handler fails this call (1-based), once */
    int stop_after;      /* stops the runtime once this many succeeded */
    int ok;
    mr_code failed_rc;   /* what after_poll saw fail */
    char failed_msg[MR_ERR_MSG_MAX];
} consumed;

static mr_code count_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    consumed *k = ctx;
    assert_string_equal(m->topic, "demo.in");
    if (++k->handled == k->fail_at)
        return mr_err_set(err, MR_EIO, "refusing %.*s", (int)m->len, m->value);
    if (++k->ok == k->stop_after)
        mr_runtime_stop(k->rt);
    return MR_OK;
}

static void note_failure(const mr_runtime *rt, const mr_runtime_consumer *c, mr_bus_consumer *bc, mr_code rc,
                         const mr_err *err)
{
    (void)rt;
    (void)bc;
    consumed *k = c->ctx;
    if (rc == MR_OK)
        return;
    k->failed_rc = rc;
    snprintf(k->failed_msg, sizeof k->failed_msg, "%s", err->msg);
}

static void publish_three(const mr_runtime *rt)
{
    mr_err err = {0};
    for (int i = 1; i <= 3; i++) {
        char value[8];
        snprintf(value, sizeof value, "m%d", i);
        assert_int_equal(mr_bus_publish(rt->bus, "demo.in", "k", value, strlen(value), &err), MR_OK);
    }
    assert_int_equal(mr_bus_flush(rt->bus, 10000, &err), MR_OK);
}

static void test_consume_until_stopped(void **state)
{
    fixture *f = *state;
    publish_three(f->rt);
    static const char *const topics[] = {"demo.in"};
    consumed k = {.rt = f->rt, .stop_after = 3};
    atomic_init(&k.consuming, false);
    const mr_runtime_consumer c = {.component = "demo", .group = "demo", .topics = topics, .n_topics = 1,
                                   .poll_timeout_ms = 100, .batch = 2, .subscribe_retry_ms = 100,
                                   .handler = count_message, .ctx = &k, .consuming = &k.consuming};
    mr_runtime_consume(f->rt, &c);
    assert_int_equal(k.handled, 3);
    assert_true(atomic_load(&k.consuming));
}

static void test_consume_hands_failures_to_after_poll(void **state)
{
    fixture *f = *state;
    publish_three(f->rt);
    static const char *const topics[] = {"demo.in"};
    consumed k = {.rt = f->rt, .fail_at = 2, .stop_after = 3};
    atomic_init(&k.consuming, false);
    const mr_runtime_consumer c = {.component = "demo", .group = "demo", .topics = topics, .n_topics = 1,
                                   .poll_timeout_ms = 100, .batch = 1, .subscribe_retry_ms = 100,
                                   .handler = count_message, .ctx = &k, .consuming = &k.consuming,
                                   .after_poll = note_failure};
    mr_runtime_consume(f->rt, &c);
    /* m2 failed once and came again. */
    assert_int_equal(k.handled, 4);
    assert_int_equal(k.ok, 3);
    assert_int_equal(k.failed_rc, MR_EIO);
    assert_non_null(strstr(k.failed_msg, "refusing m2"));
    /* A custom after_poll owns readiness. */
    assert_false(atomic_load(&k.consuming));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    /* Before any thread exists, as a service's main() does. */
    if (mr_runtime_block_signals(NULL) != MR_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        T(test_broken_file_keeps_old_config),
        T(test_good_file_swaps_and_old_reference_lives),
        T(test_readers_during_reloads),
        T(test_sleep_ends_on_stop),
        T(test_readiness_checks),
        T(test_signals_in_process),
        T(test_consume_until_stopped),
        T(test_consume_hands_failures_to_after_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
