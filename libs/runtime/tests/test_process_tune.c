/* test_process_tune.c -- opening a runtime caps glibc's malloc arenas, so threads share two
 * heaps instead of each keeping free space resident in one of its own; and a program that
 * starts with mr_runtime_tune_exec runs without glibc's per-thread cache, unless the operator
 * set it. */
#include "rt_test_util.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "mindroom/runtime.h"
#include "runtime_internal.h"

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

/* The PID this test started with, before mr_runtime_tune_exec ran it again. */
/* CTest's SKIP_RETURN_CODE for this test (CMakeLists.txt). */
#define MR_TEST_SKIP 77
#define PID_VAR "MR_TEST_TUNE_PID"

/* With the cache, a freed small block waits in the thread's cache, where mallinfo2 counts it
 * in use; without, it goes to the arena's fast bins, which mallinfo2 counts free. */
static void test_small_frees_skip_the_thread_cache(void **state)
{
    (void)state;
    const char *tunables = getenv("GLIBC_TUNABLES");
    assert_non_null(tunables);
    assert_non_null(strstr(tunables, "glibc.malloc.tcache_count=0"));
    const char *pid = getenv(PID_VAR);
    assert_non_null(pid);
    assert_int_equal(atol(pid), (long)getpid());
    size_t before = mallinfo2().fsmblks;
    void *p = malloc(40);
    assert_non_null(p);
    free(p);
    assert_true(mallinfo2().fsmblks > before);
}

/* The name ps and pgrep show: the program's file name (at most 15 bytes, as the kernel keeps
 * it), not "exe" from the /proc/self/exe the program ran again through. */
static void test_the_process_keeps_its_name(void **state)
{
    (void)state;
    char comm[32] = "", path[PATH_MAX];
    FILE *f = fopen("/proc/self/comm", "r");
    assert_non_null(f);
    assert_non_null(fgets(comm, sizeof comm, f));
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    assert_true(n > 0);
    path[n] = '\0';
    const char *name = strrchr(path, '/') + 1;
    assert_int_equal(strncmp(comm, name, 15), 0);
    assert_int_equal(strlen(comm), strlen(name) < 15 ? strlen(name) : 15);
}

/* `program mode` under GLIBC_TUNABLES=given: the value it ends up running with. */
static void probe_as(const char *program, const char *mode, const char *given, char *out, size_t cap)
{
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "GLIBC_TUNABLES='%s' %s %s", given, program, mode);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    out[0] = '\0';
    assert_non_null(fgets(out, (int)cap, f));
    assert_int_equal(pclose(f), 0);
    out[strcspn(out, "\n")] = '\0';
}

/* This program with `--probe`. */
static void probe(const char *given, char *out, size_t cap)
{
    char self[64];
    snprintf(self, sizeof self, "/proc/%ld/exe", (long)getpid());
    probe_as(self, "--probe", given, out, cap);
}

/* A program whose file was replaced since it started (an upgrade in place) still runs again:
 * through /proc/self/exe, as its own path names the file no longer there. */
static void test_a_program_whose_file_is_gone_still_runs_again(void **state)
{
    (void)state;
    char dir[PATH_MAX], copy[PATH_MAX + 16], cmd[2 * PATH_MAX + 64], got[256];
    mr_err err = {0};
    if (mr_tp_mkdtemp("mr-tune", dir, sizeof dir, &err) != MR_OK)
        fail_msg("%s", err.msg);
    snprintf(copy, sizeof copy, "%s/gone", dir);
    snprintf(cmd, sizeof cmd, "cp /proc/%ld/exe %s", (long)getpid(), copy);
    assert_int_equal(system(cmd), 0);
    probe_as(copy, "--probe-gone", "", got, sizeof got);
    assert_int_equal(rmdir(dir), 0);
    assert_string_equal(got, "glibc.malloc.tcache_count=0");
}

static void test_the_operators_tunables_stand(void **state)
{
    (void)state;
    char got[256];
    probe("glibc.malloc.tcache_count=7", got, sizeof got);
    assert_string_equal(got, "glibc.malloc.tcache_count=7");
    probe("glibc.malloc.trim_threshold=131072", got, sizeof got);
    assert_string_equal(got, "glibc.malloc.trim_threshold=131072:glibc.malloc.tcache_count=0");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--probe-gone") == 0) {
        /* Once only: the program run again finds the name gone already. */
        char path[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n > 0) {
            path[n] = '\0';
            unlink(path);
        }
    }
    if (argc > 1 && strncmp(argv[1], "--probe", 7) == 0) {
        mr_runtime_tune_exec(argv);
        printf("%s\n", getenv("GLIBC_TUNABLES"));
        return 0;
    }
    /* Under AddressSanitizer malloc is the sanitizer's: there is nothing of glibc's to tune. */
    if (!mr_runtime_glibc_malloc())
        return MR_TEST_SKIP;
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    if (!getenv(PID_VAR) && setenv(PID_VAR, pid, 1) != 0)
        return 1;
    mr_runtime_tune_exec(argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_threads_share_two_arenas, setup, rt_fixture_free),
        cmocka_unit_test(test_small_frees_skip_the_thread_cache),
        cmocka_unit_test(test_the_process_keeps_its_name),
        cmocka_unit_test(test_a_program_whose_file_is_gone_still_runs_again),
        cmocka_unit_test(test_the_operators_tunables_stand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
