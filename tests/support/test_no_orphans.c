/* test_no_orphans.c -- a test that fails, by assertion or killed, leaves none of the processes it
 * started running. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mindroom/clock.h"
#include "peers.h"

/* SIGKILL to every process whose parent is this one; *first gets the first such pid when it is 0. */
static void kill_children_of_self(pid_t *first)
{
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], line[256];
        snprintf(path, sizeof path, "/proc/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f)) {
            if (strncmp(line, "PPid:", 5) == 0 && atoi(line + 5) == (int)getpid()) {
                if (*first == 0)
                    *first = (pid_t)atoi(e->d_name);
                kill((pid_t)atoi(e->d_name), SIGKILL);
            }
        }
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
}

/* Reaps every orphan handed to us; true once none is left, false when one still runs at the
 * deadline (its pid in *left). */
static bool all_gone(int timeout_ms, pid_t *left)
{
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(-1, NULL, WNOHANG);
        if (r < 0 && errno == ECHILD)
            return true;
        if (r > 0)
            continue;
        if (mr_clock_mono_ms() > deadline)
            break;
        mr_clock_sleep_ms(20);
    }
    /* Name one that is left, then clear them all so this test leaves nothing either: a killed
     * one's own children come to this process next, so kill and reap until none is left. */
    *left = 0;
    do
        kill_children_of_self(left);
    while (waitpid(-1, NULL, 0) > 0);
    return false;
}

static void run_scenario(const char *mode)
{
    /* Orphans of the scenario come to this process, which can then see and reap them. */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    char *argv[] = {MR_ORPHAN_SCENARIO_BIN, (char *)mode, NULL};
    int code = 0;
    mr_err err = {0};
    assert_int_equal(mr_tp_run(argv, NULL, &code, &err), MR_OK);
    assert_int_not_equal(code, 0); /* it failed, as it should */
    pid_t left = 0;
    if (!all_gone(10000, &left))
        fail_msg("process %d of the failed scenario (%s) was still running 10 s after it ended", (int)left, mode);
}

static void test_failed_assertion_leaves_no_process(void **state)
{
    (void)state;
    run_scenario("fail");
}

static void test_killed_test_leaves_no_process(void **state)
{
    (void)state;
    run_scenario("killed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_assertion_leaves_no_process),
        cmocka_unit_test(test_killed_test_leaves_no_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
