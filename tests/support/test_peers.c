/* test_peers.c -- the test peers start, answer, keep data across a restart and stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_keeps_data_across_restart),
        cmocka_unit_test(test_wait_port_times_out_on_closed_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
