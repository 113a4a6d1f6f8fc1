/* test_log.c -- log line shapes (human, JSON), level filter, escaping, redaction, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mindroom/log.h"

#define TS_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

static FILE *g_log;

static int setup(void **state)
{
    (void)state;
    g_log = tmpfile();
    return g_log ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mr_log_configure(MR_LOG_INFO, MR_LOG_HUMAN, NULL);
    fclose(g_log);
    return 0;
}

/* Everything logged so far, with each timestamp (checked against TS_RE) replaced by <ts>. */
static char *logged(void)
{
    fflush(g_log);
    long size = ftell(g_log);
    assert_true(size >= 0);
    char *raw = malloc((size_t)size + 1);
    assert_non_null(raw);
    rewind(g_log);
    assert_int_equal(fread(raw, 1, (size_t)size, g_log), (size_t)size);
    raw[size] = '\0';

    regex_t re;
    assert_int_equal(regcomp(&re, TS_RE, REG_EXTENDED), 0);
    char *out = malloc((size_t)size + 1);
    assert_non_null(out);
    size_t w = 0;
    regmatch_t m;
    for (const char *p = raw; regexec(&re, p, 1, &m, 0) == 0; p += m.rm_eo) {
        memcpy(out + w, p, (size_t)m.rm_so);
        w += (size_t)m.rm_so;
        memcpy(out + w, "<ts>", 4);
        w += 4;
        strcpy(out + w, p + m.rm_eo);
    }
    if (w == 0)
        strcpy(out, raw);
    regfree(&re);
    free(raw);
    return out;
}

static void assert_logged(const char *want)
{
    char *got = logged();
    assert_string_equal(got, want);
    free(got);
}

static void test_human_format(void **state)
{
    (void)state;
    mr_log_configure(MR_LOG_DEBUG, MR_LOG_HUMAN, g_log);
    const char *fields[] = { "room", "!abc:example.org", "note", "two words", "empty", "", NULL };
    mr_log_write(MR_LOG_WARN, "gateway", fields, "joined %d rooms", 3);
    mr_log_debug("router", "d");
    mr_log_info("router", "i");
    mr_log_error(NULL, "e");
    assert_logged("<ts> WARN  gateway: joined 3 rooms room=!abc:example.org note=\"two words\" empty=\"\"\n"
                  "<ts> DEBUG router: d\n"
                  "<ts> INFO  router: i\n"
                  "<ts> ERROR -: e\n");
}

static void test_json_format(void **state)
{
    (void)state;
    mr_log_configure(MR_LOG_DEBUG, MR_LOG_JSON, g_log);
    const char *fields[] = { "room", "!abc:example.org", "count", "3", NULL };
    mr_log_write(MR_LOG_WARN, "gateway", fields, "joined %s", "rooms");
    mr_log_debug("bus", "plain");
    assert_logged("{\"ts\":\"<ts>\",\"level\":\"warn\",\"component\":\"gateway\",\"msg\":\"joined rooms\","
                  "\"room\":\"!abc:example.org\",\"count\":\"3\"}\n"
                  "{\"ts\":\"<ts>\",\"level\":\"debug\",\"component\":\"bus\",\"msg\":\"plain\"}\n");
}

static void test_level_filter(void **state)
{
    (void)state;
    mr_log_configure(MR_LOG_WARN, MR_LOG_HUMAN, g_log);
    assert_false(mr_log_enabled(MR_LOG_DEBUG));
    assert_false(mr_log_enabled(MR_LOG_INFO));
    assert_true(mr_log_enabled(MR_LOG_WARN));
    assert_true(mr_log_enabled(MR_LOG_ERROR));
    mr_log_debug("c", "no");
    mr_log_info("c", "no");
    mr_log_warn("c", "yes %d", 1);
    mr_log_error("c", "yes %d", 2);
    mr_log_configure(MR_LOG_ERROR, MR_LOG_HUMAN, g_log);
    mr_log_warn("c", "no");
    assert_logged("<ts> WARN  c: yes 1\n<ts> ERROR c: yes 2\n");
}

static void test_json_escaping(void **state)
{
    (void)state;
    mr_log_configure(MR_LOG_INFO, MR_LOG_JSON, g_log);
    const char *fields[] = { "we\"ird", "a\\b\nc", NULL };
    mr_log_write(MR_LOG_INFO, "c\"omp", fields, "q\" b\\ n\n t\t r\r ctl\x01\x1f del\x7f bad\xff ok caf\xc3\xa9");
    assert_logged("{\"ts\":\"<ts>\",\"level\":\"info\",\"component\":\"c\\\"omp\","
                  "\"msg\":\"q\\\" b\\\\ n\\n t\\t r\\r ctl\\u0001\\u001f del\\u007f bad\xEF\xBF\xBD ok caf\xc3\xa9\","
                  "\"we\\\"ird\":\"a\\\\b\\nc\"}\n");
}

static void test_human_escaping(void **state)
{
    (void)state;
    /* A newline in a message must not start a second, forged log line. */
    mr_log_configure(MR_LOG_INFO, MR_LOG_HUMAN, g_log);
    const char *fields[] = { "path", "C:\\x", "v", "a\nb", NULL };
    mr_log_write(MR_LOG_INFO, "c", fields, "one\n<ts> ERROR forged: \"quoted\"");
    assert_logged("<ts> INFO  c: one\\n<ts> ERROR forged: \"quoted\" path=\"C:\\\\x\" v=\"a\\nb\"\n");
}

static void test_secret_fields_redacted(void **state)
{
    (void)state;
    mr_log_configure(MR_LOG_INFO, MR_LOG_JSON, g_log);
    const char *fields[] = {
        "access_token", "syt_abc123", "user", "@mind:mindroom.chat", "X-Api-Key", "k-999",
        "detail", "client_secret=hunter2&x=1", "Password", NULL,
    };
    mr_log_write(MR_LOG_INFO, "matrix", fields, "login with token=%s failed", "tok-777");
    char *got = logged();
    assert_string_equal(got, "{\"ts\":\"<ts>\",\"level\":\"info\",\"component\":\"matrix\","
                             "\"msg\":\"login with token=[redacted] failed\","
                             "\"access_token\":\"[redacted]\",\"user\":\"@mind:mindroom.chat\","
                             "\"X-Api-Key\":\"[redacted]\",\"detail\":\"client_secret=[redacted]&x=1\","
                             "\"Password\":\"[redacted]\"}\n");
    static const char *const secrets[] = { "syt_abc123", "k-999", "hunter2", "tok-777" };
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        assert_null(strstr(got, secrets[i]));
    free(got);

    mr_log_configure(MR_LOG_INFO, MR_LOG_HUMAN, g_log);
    const char *human[] = { "token", "abc", "room", "!r:s", NULL };
    mr_log_write(MR_LOG_INFO, "matrix", human, "x");
    got = logged();
    assert_non_null(strstr(got, "<ts> INFO  matrix: x token=[redacted] room=!r:s\n"));
    free(got);
}

static void test_redact_table(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "Authorization: Bearer abc", "Authorization: Bearer [redacted]" },
        { "GET /sync?access_token=abc&x=1", "GET /sync?access_token=[redacted]&x=1" },
        { "{\"password\": \"p@ss\", \"user\": \"bob\"}", "{\"password\": \"[redacted]\", \"user\": \"bob\"}" },
        { "client_secret=xyz", "client_secret=[redacted]" },
        { "MINDROOM_LOCAL_CLIENT_SECRET=xyz", "MINDROOM_LOCAL_CLIENT_SECRET=[redacted]" },
        { "token: abc", "token: [redacted]" },
        { "sent bearer abc.def-ghi to the server", "sent bearer [redacted] to the server" },
        { "{\"access_token\":\"a\\\"b\",\"n\":1}", "{\"access_token\":\"[redacted]\",\"n\":1}" },
        { "X-Matrix-Access-Token: abc", "X-Matrix-Access-Token: [redacted]" },
        { "Cookie: session=abc; theme=dark", "Cookie: [redacted]; theme=dark" },
        { "Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [redacted]" },
        { "password = 'hunter 2' next", "password = '[redacted]' next" },
        { "api_key=k1 apikey=k2 private_key=k3 passwd=k4", "api_key=[redacted] apikey=[redacted] "
                                                            "private_key=[redacted] passwd=[redacted]" },
        { "{\"token\":12345}", "{\"token\":[redacted]}" },
        { "token=[redacted]", "token=[redacted]" },
        { "token=\"unterminated secret", "token=\"[redacted]" },
        /* Ordinary text is left alone. */
        { "joined !room:example.org as @mind:mindroom.chat in 3 rooms",
          "joined !room:example.org as @mind:mindroom.chat in 3 rooms" },
        { "https://mindroom.chat/_matrix/client/v3/sync?since=s1&timeout=30000",
          "https://mindroom.chat/_matrix/client/v3/sync?since=s1&timeout=30000" },
        { "the token was refreshed", "the token was refreshed" },
        { "token:", "token:" },
        { "token= ", "token= " },
        { "Bearer", "Bearer" },
        { "key=value a:b", "key=value a:b" },
        { "caf\xc3\xa9 \xe2\x9c\x93", "caf\xc3\xa9 \xe2\x9c\x93" },
        { "", "" },
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_ptr_equal(mr_log_redact(cases[i].in, out, sizeof out), out);
        assert_string_equal(out, cases[i].want);
    }
}

static void test_redact_small_cap(void **state)
{
    (void)state;
    char out[16];
    memset(out, 'X', sizeof out);
    mr_log_redact("token=abcdef", out, 8);
    assert_string_equal(out, "token=[");
    memset(out, 'X', sizeof out);
    mr_log_redact("password=hunter2", out, 12);
    assert_string_equal(out, "password=[r");
    memset(out, 'X', sizeof out);
    mr_log_redact("anything", out, 1);
    assert_string_equal(out, "");
    memset(out, 'X', sizeof out);
    mr_log_redact("plain text here", out, 6);
    assert_string_equal(out, "plain");
}

static void test_key_is_secret(void **state)
{
    (void)state;
    static const char *const secret[] = {
        "token", "ACCESS_TOKEN", "client_secret", "Password", "passwd", "Authorization",
        "api_key", "X-Api-Key", "apikey", "Set-Cookie", "private_key", "PRIVATE-KEY",
    };
    static const char *const plain[] = { "user", "room_id", "homeserver", "key", "", "api", "private" };
    for (size_t i = 0; i < sizeof secret / sizeof secret[0]; i++)
        assert_true(mr_log_key_is_secret(secret[i]));
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        assert_false(mr_log_key_is_secret(plain[i]));
    assert_false(mr_log_key_is_secret(NULL));
}

static void test_parse_names(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        mr_log_level level;
    } levels[] = {
        { "debug", MR_LOG_DEBUG }, { "INFO", MR_LOG_INFO },     { "Warn", MR_LOG_WARN },
        { "warning", MR_LOG_WARN }, { "ERROR", MR_LOG_ERROR },
    };
    mr_err err = { 0 };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        mr_log_level level = MR_LOG_ERROR + 1;
        assert_int_equal(mr_log_level_parse(levels[i].s, &level, &err), MR_OK);
        assert_int_equal(level, levels[i].level);
    }
    mr_log_level level;
    assert_int_equal(mr_log_level_parse("verbose", &level, &err), MR_EINVAL);
    assert_string_equal(err.msg, "unknown log level 'verbose' (expected debug, info, warn or error)");

    mr_log_format format;
    assert_int_equal(mr_log_format_parse("JSON", &format, &err), MR_OK);
    assert_int_equal(format, MR_LOG_JSON);
    assert_int_equal(mr_log_format_parse("human", &format, &err), MR_OK);
    assert_int_equal(format, MR_LOG_HUMAN);
    assert_int_equal(mr_log_format_parse("text", &format, &err), MR_OK);
    assert_int_equal(format, MR_LOG_HUMAN);
    assert_int_equal(mr_log_format_parse("xml", &format, &err), MR_EINVAL);
    assert_string_equal(err.msg, "unknown log format 'xml' (expected human or json)");
}

static void test_default_output_is_stderr(void **state)
{
    (void)state;
    mr_log_configure(MR_LOG_INFO, MR_LOG_HUMAN, NULL);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(g_log), STDERR_FILENO) >= 0);
    mr_log_info("core", "to stderr");
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    fseek(g_log, 0, SEEK_END);
    assert_logged("<ts> INFO  core: to stderr\n");
}

#define THREADS 4
#define LINES_PER_THREAD 1000

static void *log_lines(void *arg)
{
    int t = (int)(intptr_t)arg;
    char tbuf[8], ibuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", t);
    for (int i = 0; i < LINES_PER_THREAD; i++) {
        snprintf(ibuf, sizeof ibuf, "%d", i);
        const char *fields[] = { "thread", tbuf, "i", ibuf, NULL };
        mr_log_write(MR_LOG_INFO, "t", fields, "line %d from thread %d", i, t);
    }
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    (void)state;
    mr_log_configure(MR_LOG_INFO, MR_LOG_JSON, g_log);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, log_lines, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);

    char *all = logged();
    int next[THREADS] = { 0 };
    size_t lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int i, t, i2, t2, end = 0;
        int n = sscanf(line,
                       "{\"ts\":\"<ts>\",\"level\":\"info\",\"component\":\"t\",\"msg\":\"line %d from thread "
                       "%d\",\"thread\":\"%d\",\"i\":\"%d\"}%n",
                       &i, &t, &t2, &i2, &end);
        assert_int_equal(n, 4);
        assert_int_equal((size_t)end, strlen(line));
        assert_int_equal(t, t2);
        assert_int_equal(i, i2);
        assert_true(t >= 0 && t < THREADS);
        /* Each thread's lines arrive whole and in its own order. */
        assert_int_equal(i, next[t]);
        next[t]++;
        lines++;
    }
    assert_int_equal(lines, THREADS * LINES_PER_THREAD);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(next[t], LINES_PER_THREAD);
    free(all);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_human_format),
        T(test_json_format),
        T(test_level_filter),
        T(test_json_escaping),
        T(test_human_escaping),
        T(test_secret_fields_redacted),
        cmocka_unit_test(test_redact_table),
        cmocka_unit_test(test_redact_small_cap),
        cmocka_unit_test(test_key_is_secret),
        cmocka_unit_test(test_parse_names),
        T(test_default_output_is_stderr),
        T(test_threads_do_not_interleave),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
