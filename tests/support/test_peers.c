/* test_peers.c -- the test peers start, answer, keep data across a restart and stop; process,
 * file and HTTP helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"

/* One inline command to the server, returning its first reply line. */
static void redis_cmd(int port, const char *cmd, char *reply, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
    ssize_t n = read(fd, reply, cap - 1);
    assert_true(n > 0);
    reply[n] = '\0';
    close(fd);
}

static void test_redis_keeps_data_across_restart(void **state)
{
    (void)state;
    mr_tp_redis r;
    mr_err err = {0};
    assert_int_equal(mr_tp_redis_start(&r, &err), MR_OK);
    char reply[128];
    redis_cmd(r.port, "SET peer-test kept\r\n", reply, sizeof reply);
    assert_string_equal(reply, "+OK\r\n");
    assert_int_equal(mr_tp_redis_restart(&r, &err), MR_OK);
    redis_cmd(r.port, "GET peer-test\r\n", reply, sizeof reply);
    assert_string_equal(reply, "$4\r\nkept\r\n");
    int port = r.port;
    mr_tp_redis_destroy(&r);
    assert_int_not_equal(mr_tp_wait_port(port, 100, &err), MR_OK);
}

static void test_wait_port_times_out_on_closed_port(void **state)
{
    (void)state;
    int port;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    assert_int_equal(mr_tp_wait_port(port, 50, &err), MR_EUNAVAIL);
    assert_non_null(strstr(err.msg, "127.0.0.1:"));
}

static void test_run_and_read_its_output(void **state)
{
    (void)state;
    char dir[256], log[300], missing[300];
    mr_err err = {0};
    assert_int_equal(mr_tp_mkdtemp("mr-tp-run", dir, sizeof dir, &err), MR_OK);
    snprintf(log, sizeof log, "%s/out.log", dir);
    snprintf(missing, sizeof missing, "%s/none.log", dir);
    char *argv[] = {"sh", "-c", "printf 'abab\\nab\\n'; exit 3", NULL};
    int code = -1;
    assert_int_equal(mr_tp_run(argv, log, &code, &err), MR_OK);
    assert_int_equal(code, 3);
    char *text = mr_tp_read_text(log);
    assert_string_equal(text, "abab\nab\n");
    free(text);
    assert_int_equal(mr_tp_count_in_file(log, "ab"), 3);
    assert_int_equal(mr_tp_count_in_file(log, "\n"), 2);
    assert_int_equal(mr_tp_count_in_file(missing, "ab"), 0);
    text = mr_tp_read_text(missing);
    assert_string_equal(text, "");
    free(text);

    assert_int_equal(mr_tp_wait_in_file(log, "ab", 3, 1000, 0, &err), MR_OK);
    assert_int_equal(mr_tp_wait_in_file(log, "ab", 4, 50, 0, &err), MR_EUNAVAIL);
    char want[400];
    snprintf(want, sizeof want, "%s never showed \"ab\" 4 times within 50 ms", log);
    assert_string_equal(err.msg, want);
    pid_t pid = 0;
    char *quick[] = {"sh", "-c", "exit 0", NULL};
    assert_int_equal(mr_tp_spawn(quick, NULL, &pid, &err), MR_OK);
    assert_int_equal(mr_tp_wait_in_file(missing, "ab", 1, 30000, pid, &err), MR_EUNAVAIL);
    snprintf(want, sizeof want, "process %d exited before %s showed \"ab\" 1 times", (int)pid, missing);
    assert_string_equal(err.msg, want);
    unsetenv("MR_KEEP_TMP");
    mr_tp_cleanup_dir(dir);
    assert_int_equal(access(dir, F_OK), -1);
}

static void test_wait_exit_kills_what_outlives_it(void **state)
{
    (void)state;
    mr_err err = {0};
    pid_t pid = 0;
    char *sleeper[] = {"sleep", "30", NULL};
    assert_int_equal(mr_tp_spawn(sleeper, NULL, &pid, &err), MR_OK);
    int st = 0;
    assert_int_equal(mr_tp_wait_exit(pid, 50, &st, &err), MR_EUNAVAIL);
    char want[64];
    snprintf(want, sizeof want, "process %d did not exit within 50 ms", (int)pid);
    assert_string_equal(err.msg, want);
    /* Killed and reaped: nothing is left to wait for. */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);

    char *quick[] = {"sh", "-c", "exit 4", NULL};
    assert_int_equal(mr_tp_spawn(quick, NULL, &pid, &err), MR_OK);
    assert_int_equal(mr_tp_wait_exit(pid, 30000, &st, &err), MR_OK);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 4);

    assert_int_equal(mr_tp_spawn(sleeper, NULL, &pid, &err), MR_OK);
    mr_tp_stop_if_running(pid);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
}

static void test_http_without_a_server(void **state)
{
    (void)state;
    int port;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char *body = NULL;
    assert_int_equal(mr_tp_http_get(port, "/healthz", &body), 0);
    assert_string_equal(body, "");
    free(body);
    char url[64], want[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    mr_tp_http_reply r;
    assert_int_equal(mr_tp_http_do("POST", url, NULL, "{}", 5, &r, &err), MR_EUNAVAIL);
    snprintf(want, sizeof want, "POST %s: Couldn't connect to server", url);
    assert_string_equal(err.msg, want);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.body, "");
    free(r.body);
}

static void test_kill_wait_refuses_pids_that_are_no_child(void **state)
{
    (void)state;
    mr_err err = {0};
    /* Signal 0 only probes: before the check, pid 0 reached the caller's own process group. */
    assert_int_equal(mr_tp_kill_wait(0, 0, NULL, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "pid 0"));
    assert_int_equal(mr_tp_kill_wait(-1, 0, NULL, &err), MR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_keeps_data_across_restart),
        cmocka_unit_test(test_wait_port_times_out_on_closed_port),
        cmocka_unit_test(test_run_and_read_its_output),
        cmocka_unit_test(test_wait_exit_kills_what_outlives_it),
        cmocka_unit_test(test_http_without_a_server),
        cmocka_unit_test(test_kill_wait_refuses_pids_that_are_no_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
