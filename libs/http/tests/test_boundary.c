/* test_boundary.c -- the HTTP server against hostile clients, over raw loopback sockets:
 * smuggled header lines, NULs in headers, and connections held open to starve others; each in
 * both threading modes (a thread per connection, and a pool of polling threads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mindroom/http.h"
#include "peers.h"

#define IO_DEADLINE_MS 20000

typedef struct fixture {
    mr_http_server *srv;
    int port;
    int calls; /* handler invocations */
} fixture;

/* Answers /healthz; anything else echoes the X-User and X-Email headers as "user|email". */
static mr_http_response *echo_identity(void *ctx, const mr_http_request *req)
{
    fixture *f = ctx;
    mr_http_response *ops = mr_http_ops_reply(req, NULL, NULL, NULL);
    if (ops)
        return ops;
    __atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST);
    const char *user = mr_http_request_header(req, "X-User");
    const char *email = mr_http_request_header(req, "X-Email");
    char body[256];
    snprintf(body, sizeof body, "%s|%s", user ? user : "-", email ? email : "-");
    return mr_http_reply_text(200, body);
}

static int start_with(void **state, const mr_http_server_opts *o)
{
    fixture *f = calloc(1, sizeof *f);
    mr_err err = {0};
    if (!f || mr_http_server_start(o, echo_identity, f, &f->srv, &err) != MR_OK) {
        print_error("start: %s\n", err.msg);
        free(f);
        return -1;
    }
    f->port = mr_http_server_port(f->srv);
    *state = f;
    return 0;
}

/* The pool size of the servers the *_pool tests start. */
#define POOL 2

static int setup(void **state)
{
    mr_http_server_opts o = {.listen = "127.0.0.1:0"};
    return start_with(state, &o);
}

static int setup_pool(void **state)
{
    mr_http_server_opts o = {.listen = "127.0.0.1:0", .pool_threads = POOL};
    return start_with(state, &o);
}

static int teardown(void **state)
{
    fixture *f = *state;
    mr_http_server_stop(f->srv);
    free(f);
    return 0;
}

/* Sends len raw bytes on fd and reads the answer until `until` (NULL: until the server closes). */
static char *send_on(int fd, const char *raw, size_t len, const char *until, bool *closed)
{
    assert_int_equal(write(fd, raw, len), (ssize_t)len);
    char *got = mr_tp_read_until(fd, until, IO_DEADLINE_MS, closed);
    assert_non_null(got);
    return got;
}

/* Sends raw bytes as one request (the server closes after answering) and returns the whole
 * answer; caller frees. */
static char *exchange(const fixture *f, const char *from, const char *raw, size_t len)
{
    char *answer;
    mr_err err = {0};
    if (mr_tp_raw_exchange(from, f->port, raw, len, IO_DEADLINE_MS, &answer, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return answer;
}

#define REQUEST(headers) "GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" headers "\r\n"

/* The request is refused with a 400 whose body holds `named`, before the handler. */
static void assert_refused(fixture *f, const char *raw, size_t len, const char *named)
{
    char *answer = exchange(f, "127.0.0.1", raw, len);
    assert_non_null(strstr(answer, "HTTP/1.1 400 "));
    if (!strstr(answer, named))
        fail_msg("400 without \"%s\": %s", named, answer);
    free(answer);
    assert_int_equal(f->calls, 0);
}

/* The clean request is answered, so the refusals below are about the bytes that differ. */
static void test_clean_headers_pass(void **state)
{
    fixture *f = *state;
    static const char raw[] = REQUEST("X-User: alice\r\nX-Email: alice@example.org\r\n");
    char *answer = exchange(f, "127.0.0.1", raw, sizeof raw - 1);
    assert_non_null(strstr(answer, "HTTP/1.1 200 "));
    assert_non_null(strstr(answer, "\r\n\r\nalice|alice@example.org"));
    free(answer);
    /* Tabs and trailing spaces are legal in a value, blanks or none after the colon, an empty
     * value; a final bare LF before the blank line ends the last header as a CRLF would and
     * injects nothing. */
    static const char tabbed[] = REQUEST("X-User: al\tice  \r\nX-Email:\t  e@x\r\nX-Empty:\r\nX-Tight:v\n");
    answer = exchange(f, "127.0.0.1", tabbed, sizeof tabbed - 1);
    assert_non_null(strstr(answer, "HTTP/1.1 200 "));
    assert_non_null(strstr(answer, "\r\n\r\nal\tice  |e@x"));
    free(answer);
    assert_int_equal(f->calls, 2);
}

/* Each is refused before the handler: a bare LF inside a value would start a forged header
 * (X-Email must not reach the handler), a NUL would cut "alice\0bob" to "alice", a bare CR stays
 * in the value where a proxy or log downstream could split on it, and so could another control
 * character. */
static void test_unclean_headers_refused(void **state)
{
    fixture *f = *state;
    static const char bare_lf[] = REQUEST("X-User: alice\nX-Email: evil@attacker.example\r\n");
    static const char nul[] = REQUEST("X-User: alice\0bob\r\n");
    static const char bare_cr[] = REQUEST("X-User: alice\rX-Email: evil@attacker.example\r\n");
    static const char control[] = REQUEST("X-User: al\x01ice\r\n");
    /* Folded, "X-User" would come out as "X-User-Id": a name the proxy in front never saw. */
    static const char folded[] = REQUEST("X-User: alice\r\n -Id\r\n");
    const struct {
        const char *raw;
        size_t len;
    } cases[] = {{bare_lf, sizeof bare_lf - 1}, {nul, sizeof nul - 1}, {bare_cr, sizeof bare_cr - 1},
                 {control, sizeof control - 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_refused(f, cases[i].raw, cases[i].len, "header \\\"X-User\\\"");
    assert_refused(f, folded, sizeof folded - 1, "header \\\"X-User-Id\\\"");
    /* A name that cannot be quoted is not. */
    static const char unquotable[] = REQUEST("X-\xffUser: al\x01ice\r\n");
    assert_refused(f, unquotable, sizeof unquotable - 1, "a header holds");
}

/* One address holding every connection it may open does not shut out another: a client from
 * another address is still answered. Uses the defaults, which are what the services run with. */
static void test_one_address_cannot_take_every_slot(void **state)
{
    fixture *f = *state;
    char *answer;
    size_t held;
    mr_err err = {0};
    if (mr_tp_get_while_crowded(f->port, "127.0.0.1", 256, "127.0.0.2", "/healthz", &answer, &held, &err) != MR_OK)
        fail_msg("%s", err.msg);
    assert_true(held > 64);
    assert_non_null(strstr(answer, "HTTP/1.1 200 "));
    assert_non_null(strstr(answer, "{\"status\":\"ok\"}"));
    free(answer);
}

/* A connection over the per-address limit is closed unanswered while those within it are
 * served; another address is not counted against it. */
static void per_address_limit(unsigned pool)
{
    void *st = NULL;
    mr_http_server_opts o = {.listen = "127.0.0.1:0", .max_per_address = 2, .pool_threads = pool};
    assert_int_equal(start_with(&st, &o), 0);
    fixture *f = st;
    int first = mr_tp_connect_from("127.0.0.1", f->port);
    int second = mr_tp_connect_from("127.0.0.1", f->port);
    int third = mr_tp_connect_from("127.0.0.1", f->port);
    assert_true(first >= 0 && second >= 0 && third >= 0);
    bool closed;
    char *rest = mr_tp_read_until(third, NULL, IO_DEADLINE_MS, &closed);
    assert_non_null(rest);
    assert_true(closed);
    assert_string_equal(rest, "");
    free(rest);
    static const char health[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *answer = exchange(f, "127.0.0.2", health, sizeof health - 1);
    assert_non_null(strstr(answer, "HTTP/1.1 200 "));
    free(answer);
    answer = send_on(second, health, sizeof health - 1, NULL, &closed);
    assert_true(closed);
    assert_non_null(strstr(answer, "HTTP/1.1 200 "));
    free(answer);
    close(first);
    close(second);
    close(third);
    teardown(&st);
}

/* A connection that sends part of a request line and falls silent is closed after the header
 * timeout, long before the idle timeout. */
static void silent_connection_closed(unsigned pool)
{
    void *st = NULL;
    mr_http_server_opts o = {.listen = "127.0.0.1:0", .idle_timeout_s = 3600, .header_timeout_s = 1,
                             .pool_threads = pool};
    assert_int_equal(start_with(&st, &o), 0);
    fixture *f = st;
    int fd = mr_tp_connect_from("127.0.0.1", f->port);
    assert_true(fd >= 0);
    static const char partial[] = "GET /whoami HTTP/1.1\r\nHost: x\r\n";
    bool closed;
    char *rest = send_on(fd, partial, sizeof partial - 1, NULL, &closed);
    assert_true(closed);
    free(rest);
    close(fd);
    /* A connection whose headers came in gets the idle timeout: kept alive past the header
     * timeout, it still answers its next request. */
    fd = mr_tp_connect_from("127.0.0.1", f->port);
    assert_true(fd >= 0);
    static const char first[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    char *answer = send_on(fd, first, sizeof first - 1, "{\"status\":\"ok\"}", &closed);
    assert_false(closed);
    assert_non_null(strstr(answer, "HTTP/1.1 200 "));
    free(answer);
    /* Still open well past the header timeout: nothing to read, no hang-up. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 2500), 0);
    static const char second[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    answer = send_on(fd, second, sizeof second - 1, NULL, &closed);
    assert_true(closed);
    assert_non_null(strstr(answer, "HTTP/1.1 200 "));
    free(answer);
    close(fd);
    teardown(&st);
}

static void test_per_address_limit(void **state)
{
    (void)state;
    per_address_limit(0);
}

static void test_per_address_limit_pool(void **state)
{
    (void)state;
    per_address_limit(POOL);
}

static void test_silent_connection_closed(void **state)
{
    (void)state;
    silent_connection_closed(0);
}

static void test_silent_connection_closed_pool(void **state)
{
    (void)state;
    silent_connection_closed(POOL);
}

/* The threads of this process, from /proc/self/status. */
static long thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %ld", &n) == 1)
            break;
    fclose(f);
    assert_true(n > 0);
    return n;
}

#define MANY 24

/* A pool serves many keep-alive connections at once, each answered in turn, on its own threads
 * and no more: a thread per connection would have started MANY. */
static void test_pool_serves_many_connections(void **state)
{
    fixture *f = *state;
    long before = thread_count();
    int fds[MANY];
    static const char req[] = "GET /whoami HTTP/1.1\r\nHost: x\r\nX-User: alice\r\n\r\n";
    for (int round = 0; round < 2; round++) {
        /* Every request is out before any answer is read, so all are in flight together. */
        for (int i = 0; i < MANY; i++) {
            if (round == 0)
                fds[i] = mr_tp_connect_from("127.0.0.1", f->port);
            assert_true(fds[i] >= 0);
            assert_int_equal(write(fds[i], req, sizeof req - 1), (ssize_t)(sizeof req - 1));
        }
        for (int i = 0; i < MANY; i++) {
            bool closed;
            char *answer = mr_tp_read_until(fds[i], "alice|-", IO_DEADLINE_MS, &closed);
            assert_non_null(answer);
            assert_false(closed);
            assert_non_null(strstr(answer, "HTTP/1.1 200 "));
            free(answer);
        }
    }
    long during = thread_count();
    for (int i = 0; i < MANY; i++)
        close(fds[i]);
    assert_int_equal(f->calls, 2 * MANY);
    if (during - before >= MANY)
        fail_msg("%ld threads for %d connections on a pool of %d", during - before, MANY, POOL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define POOLED(name) cmocka_unit_test_setup_teardown(name, setup_pool, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_clean_headers_pass),
        T(test_unclean_headers_refused),
        T(test_one_address_cannot_take_every_slot),
        cmocka_unit_test(test_per_address_limit),
        cmocka_unit_test(test_silent_connection_closed),
        POOLED(test_clean_headers_pass),
        POOLED(test_unclean_headers_refused),
        POOLED(test_one_address_cannot_take_every_slot),
        cmocka_unit_test(test_per_address_limit_pool),
        cmocka_unit_test(test_silent_connection_closed_pool),
        POOLED(test_pool_serves_many_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
