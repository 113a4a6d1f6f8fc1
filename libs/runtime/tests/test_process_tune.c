/* test_process_tune.c -- opening a runtime caps glibc's malloc arenas, so threads share two
 * heaps instead of each keeping free space resident in one of its own. */
#include "rt_test_util.h"

#include <malloc.h>
#include <pthread.h>

#include "mindroom/runtime.h"

#define THREADS 6

static int setup(void **state)
{
    *state = rt_fixture_new(RT_DIR_SIZE);
    return 0;
}

static pthread_barrier_t all_allocated;

/* A thread's first malloc picks its arena: a free one, else a new one while the cap allows.
 * Each holds on until all have allocated, so no thread's arena is free for the next. */
static void *allocate(void *arg)
{
    (void)arg;
    void *p = malloc(64);
    pthread_barrier_wait(&all_allocated);
    free(p);
    return p ? &all_allocated : NULL;
}

/* The heaps malloc_info reports: the main arena plus one per other arena. */
static int heaps(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(malloc_info(0, f), 0);
    assert_int_equal(fclose(f), 0);
    int n = 0;
    for (const char *at = text; (at = strstr(at, "<heap nr=")); at++)
        n++;
    free(text);
    return n;
}

static void test_threads_share_two_arenas(void **state)
{
    (void)state;
    mr_runtime_opts opts = {.service = "demo"};
    mr_runtime *rt = NULL;
    mr_err err = {0};
    if (mr_runtime_open(&opts, &rt, &err) != MR_OK)
        fail_msg("mr_runtime_open: %s", err.msg);
    pthread_t t[THREADS];
    assert_int_equal(pthread_barrier_init(&all_allocated, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, allocate, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        void *allocated = NULL;
        assert_int_equal(pthread_join(t[i], &allocated), 0);
        assert_non_null(allocated);
    }
    pthread_barrier_destroy(&all_allocated);
    assert_in_range(heaps(), 1, 2);
    mr_runtime_close(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_threads_share_two_arenas, setup, rt_fixture_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
