/* orphan_scenario.c -- a test that fails with peers running (argv[1]: "fail" through a cmocka
 * assertion, "killed" by SIGKILL, as a CTest timeout ends it), run by test_no_orphans.c to see
 * that none outlive it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peers.h"

static const char *mode;

static void test_fails_with_peers_up(void **state)
{
    (void)state;
    mr_tp_redis r;
    mr_err err = {0};
    assert_int_equal(mr_tp_redis_start(&r, &err), MR_OK);
    pid_t pid = 0;
    /* When the test exits, a child the peer started itself, in its process group, goes too; a
     * killed test takes only its direct children along. */
    char *with_grandchild[] = {"sh", "-c", "sleep 600 & exec sleep 600", NULL};
    char *alone[] = {"sleep", "600", NULL};
    bool killed = strcmp(mode, "killed") == 0;
    assert_int_equal(mr_tp_spawn(killed ? alone : with_grandchild, NULL, &pid, &err), MR_OK);
    if (killed)
        kill(getpid(), SIGKILL);
    fail_msg("failing on purpose with redis-server (pid %d) and sleep (pid %d) running", (int)r.pid, (int)pid);
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "fail";
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fails_with_peers_up)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
