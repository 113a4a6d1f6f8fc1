/* test_thread_name.c -- mr_thread_name: the name the kernel lists for the calling thread (what
 * top -H and ps -L show), cut to 15 bytes, and no other thread's name touched. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mindroom/thread_name.h"

/* The name of thread tid of this process, as /proc lists it. */
static void listed_name(long tid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%ld/comm", tid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)cap, f));
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

typedef struct named {
    const char *name;
    long tid;
    char seen[32];
} named;

static void *name_self(void *arg)
{
    named *n = arg;
    n->tid = syscall(SYS_gettid);
    mr_thread_name(n->name);
    listed_name(n->tid, n->seen, sizeof n->seen);
    return NULL;
}

static void run_named(named *n)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, name_self, n), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_a_thread_is_listed_by_its_role(void **state)
{
    (void)state;
    char main_before[32], main_after[32];
    listed_name(syscall(SYS_gettid), main_before, sizeof main_before);
    named n = {.name = "gw-send"};
    run_named(&n);
    assert_string_equal(n.seen, "gw-send");
    listed_name(syscall(SYS_gettid), main_after, sizeof main_after);
    assert_string_equal(main_after, main_before);
}

static void test_a_long_name_is_cut_to_what_the_kernel_keeps(void **state)
{
    (void)state;
    named n = {.name = "agent-schedule-ticker"};
    run_named(&n);
    assert_string_equal(n.seen, "agent-schedule-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_thread_is_listed_by_its_role),
        cmocka_unit_test(test_a_long_name_is_cut_to_what_the_kernel_keeps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
