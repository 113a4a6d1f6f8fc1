/* test_service.c -- mr_service_main as a process: options, exit codes, health, SIGHUP, SIGTERM. */
#include "rt_test_util.h"
#include "peer_fixture.h"

#include <signal.h>
#include <sys/wait.h>

#include "mindroom/runtime.h"
#include "mindroom/clock.h"

#define DEADLINE_MS 30000

typedef struct fixture {
    char dir[RT_DIR_SIZE];
    char log[600];
    const char *bin;
} fixture;

static mr_tp_kafka kafka;

static int start_kafka(void **state)
{
    (void)state;
    return mr_tp_kafka_setup(&kafka);
}

static int stop_kafka(void **state)
{
    (void)state;
    mr_tp_kafka_destroy(&kafka);
    return 0;
}

/* /readyz's status once it settles on want (the bus is probed every 2 s), with its body. */
static void wait_ready_status(int port, long want, char **body)
{
    long long until = mr_clock_mono_ms() + DEADLINE_MS;
    long got = 0;
    for (;;) {
        *body = NULL;
        got = mr_tp_http_get(port, "/readyz", body);
        if (got == want || mr_clock_mono_ms() > until)
            break;
        free(*body);
        mr_clock_sleep_ms(100);
    }
    if (got != want)
        fail_msg("/readyz stayed %ld, not %ld: %s", got, want, *body ? *body : "");
}

static int setup(void **state)
{
    fixture *f = rt_fixture_new(sizeof *f);
    snprintf(f->log, sizeof f->log, "%s/service.log", f->dir);
    f->bin = getenv("MR_RTDEMO_BIN");
    assert_non_null(f->bin);
    /* A broker set, so /readyz finds the bus (the demo itself never publishes). */
    char store[700];
    snprintf(store, sizeof store, "sqlite://%s/state.db", f->dir);
    setenv("MINDROOM_BUS_URL", kafka.url, 1);
    setenv("MINDROOM_STORE_URL", store, 1);
    *state = f;
    return 0;
}

static pid_t start(fixture *f, const char *a1, const char *a2, const char *a3)
{
    char *argv[] = {(char *)f->bin, (char *)a1, (char *)a2, (char *)a3, NULL};
    pid_t pid = 0;
    mr_err err = {0};
    if (mr_tp_spawn(argv, f->log, &pid, &err) != MR_OK)
        fail_msg("%s", err.msg);
    return pid;
}

/* The exit status of pid, failing the test when it has not exited within the deadline. */
static int wait_exit(pid_t pid)
{
    int st = 0;
    mr_err err = {0};
    if (mr_tp_wait_exit(pid, DEADLINE_MS, &st, &err) != MR_OK)
        fail_msg("%s", err.msg);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int run(fixture *f, const char *a1, const char *a2, const char *a3, char **out)
{
    unlink(f->log);
    int status = wait_exit(start(f, a1, a2, a3));
    *out = mr_tp_read_text(f->log);
    return status;
}

/* Waits until the log holds needle `count` times. */
static void wait_log(const fixture *f, const char *needle, int count)
{
    mr_err err = {0};
    if (mr_tp_wait_in_file(f->log, needle, count, DEADLINE_MS, 0, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

static void assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("expected \"%s\" in:\n%s", needle, text);
}

static void test_help_version_usage(void **state)
{
    fixture *f = *state;
    char *out = NULL;
    assert_int_equal(run(f, "--help", NULL, NULL, &out), 0);
    assert_contains(out, "Usage: mindroom-rtdemo [OPTIONS]\nA demo service that watches its config");
    assert_contains(out, "(default: $MINDROOM_RTDEMO_LISTEN, else no HTTP server)");
    assert_contains(out, "Exit status: 0 stopped cleanly, 1 failed, 2 invalid settings or usage.\n");
    free(out);
    assert_int_equal(run(f, "--version", NULL, NULL, &out), 0);
    assert_string_equal(out, "mindroom-rtdemo " MR_VERSION "\n");
    free(out);
    assert_int_equal(run(f, "--bogus", NULL, NULL, &out), 2);
    assert_string_equal(out, "mindroom-rtdemo: unknown option '--bogus'; try 'mindroom-rtdemo --help'\n");
    free(out);
    assert_int_equal(run(f, "--config", NULL, NULL, &out), 2);
    assert_string_equal(out, "mindroom-rtdemo: option '--config' needs a value; try 'mindroom-rtdemo --help'\n");
    free(out);
    assert_int_equal(run(f, "serve", NULL, NULL, &out), 2);
    assert_string_equal(out, "mindroom-rtdemo: unexpected argument 'serve'; try 'mindroom-rtdemo --help'\n");
    free(out);
}

/* Each bad setting stops start-up with exit 2 and one line naming it. */
static void test_invalid_settings_exit_2(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *var, *value, *line;
    } cases[] = {
        {"MINDROOM_NAMESPACE", "ab-c", "mindroom-rtdemo: MINDROOM_NAMESPACE: "},
        {"MINDROOM_BUS_URL", "ftp://x", "mindroom-rtdemo: MINDROOM_BUS_URL: bus URL \"ftp://x\""},
        {"MINDROOM_BUS_URL", "inproc:", "mindroom-rtdemo: MINDROOM_BUS_URL: inproc: only connects services"},
        {"MINDROOM_BUS_URL", "", "mindroom-rtdemo: MINDROOM_BUS_URL: not set; mindroom-rtdemo is one service"},
        {"MINDROOM_STORE_URL", "", "mindroom-rtdemo: MINDROOM_STORE_URL: not set;"},
        {"MINDROOM_STORE_URL", "mysql://x", "mindroom-rtdemo: MINDROOM_STORE_URL: "},
        {"MINDROOM_INSTANCE_SECRET", "abcd", "mindroom-rtdemo: MINDROOM_INSTANCE_SECRET: decodes to 2 bytes"},
        {"LOG_LEVEL", "loud", "mindroom-rtdemo: LOG_LEVEL: "},
        {"MINDROOM_RTDEMO_LISTEN", "nowhere",
         "mindroom-rtdemo: MINDROOM_RTDEMO_LISTEN: listen address \"nowhere\": expected HOST:PORT\n"},
        {"MINDROOM_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "0",
         "mindroom-rtdemo: MINDROOM_HTTP_MAX_CONNECTIONS_PER_ADDRESS: \"0\" is not a whole number from 1 to 256"},
    };
    char *out = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *saved = getenv(cases[i].var) ? strdup(getenv(cases[i].var)) : NULL;
        setenv(cases[i].var, cases[i].value, 1);
        int status = run(f, NULL, NULL, NULL, &out);
        if (status != 2 || !strstr(out, cases[i].line))
            fail_msg("%s=%s: exit %d, output:\n%s", cases[i].var, cases[i].value, status, out);
        free(out);
        if (saved)
            setenv(cases[i].var, saved, 1);
        else
            unsetenv(cases[i].var);
        free(saved);
    }
    /* The flag is named when the flag decided. */
    assert_int_equal(run(f, "--listen", "nowhere", NULL, &out), 2);
    assert_contains(out, "mindroom-rtdemo: --listen: listen address \"nowhere\": expected HOST:PORT\n");
    free(out);
    /* From the .env next to the config too. */
    rt_write(f->dir, ".env", "MINDROOM_NAMESPACE=x\n");
    assert_int_equal(run(f, NULL, NULL, NULL, &out), 2);
    assert_contains(out, "mindroom-rtdemo: MINDROOM_NAMESPACE: ");
    free(out);
}

static void test_broken_config_at_start_exit_2(void **state)
{
    fixture *f = *state;
    rt_write(f->dir, "config.yaml", RT_CONFIG_BROKEN);
    char *out = NULL;
    char path[700];
    snprintf(path, sizeof path, "%s/config.yaml", f->dir);
    assert_int_equal(run(f, "-c", path, NULL, &out), 2);
    char line[900];
    snprintf(line, sizeof line, "%s:6:7: agents.d.romos: unknown key 'romos'", path);
    assert_contains(out, line);
    snprintf(line, sizeof line, "mindroom-rtdemo: --config: %s: 1 error", path);
    assert_contains(out, line);
    free(out);
}

static void test_failures_exit_1(void **state)
{
    fixture *f = *state;
    char *out = NULL;
    setenv("MR_RTDEMO_FAIL", "1", 1);
    assert_int_equal(run(f, NULL, NULL, NULL, &out), 1);
    assert_contains(out, "rtdemo: failing on purpose");
    assert_contains(out, "mindroom-rtdemo stopped (exit status 1)");
    free(out);
    unsetenv("MR_RTDEMO_FAIL");
}

/* MINDROOM_STORE_URL names redis, a Redis store that is down (mr_tp_redis_restart brings it up). */
static void store_down(mr_tp_redis *redis)
{
    mr_err err = {0};
    if (mr_tp_redis_start(redis, &err) != MR_OK || mr_tp_redis_stop(redis, false, &err) != MR_OK)
        fail_msg("%s", err.msg);
    setenv("MINDROOM_STORE_URL", redis->url, 1);
}

/* A service started before its Redis store waits for it, /readyz saying why, and starts serving
 * once the store answers (Kubernetes starts pods in any order; exiting made a restart loop). */
static void test_waits_for_the_store(void **state)
{
    fixture *f = *state;
    mr_tp_redis redis;
    mr_err err = {0};
    store_down(&redis);
    int port = 0;
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    unlink(f->log);
    pid_t pid = start(f, "--listen", listen, NULL);
    wait_log(f, "rtdemo: waiting for the store (MINDROOM_STORE_URL): ", 1);
    char *body = NULL;
    assert_int_equal(mr_tp_http_get(port, "/readyz", &body), 503);
    assert_contains(body, "\"reason\":\"store: ");
    free(body);
    char *text = mr_tp_read_text(f->log);
    assert_null(strstr(text, "config generation 0"));
    free(text);

    if (mr_tp_redis_restart(&redis, &err) != MR_OK)
        fail_msg("%s", err.msg);
    wait_log(f, "config generation 0: 2 agents", 1);
    assert_int_equal(mr_tp_http_get(port, "/readyz", &body), 200);
    free(body);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid), 0);
    mr_tp_redis_destroy(&redis);
}

/* A service's own invalid setting exits 2 at once, even while the store it would wait for is
 * down: waiting would hide the mistake behind a store that may never come. */
static void test_own_settings_checked_before_the_store_wait(void **state)
{
    fixture *f = *state;
    mr_tp_redis redis;
    store_down(&redis);
    setenv("MR_RTDEMO_SETTING", "bad", 1);
    char *out = NULL;
    assert_int_equal(run(f, NULL, NULL, NULL, &out), 2);
    assert_contains(out, "mindroom-rtdemo: MR_RTDEMO_SETTING: \"bad\" is not allowed\n");
    free(out);
    unsetenv("MR_RTDEMO_SETTING");
    mr_tp_redis_destroy(&redis);
}

/* Without --listen and MINDROOM_RTDEMO_LISTEN, a service with a default listen address serves
 * there, and --help names it. */
static void test_default_listen(void **state)
{
    fixture *f = *state;
    int port = 0;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    setenv("MR_RTDEMO_DEFAULT_LISTEN", listen, 1);
    char *out = NULL;
    assert_int_equal(run(f, "--help", NULL, NULL, &out), 0);
    char line[128];
    snprintf(line, sizeof line, "(default: $MINDROOM_RTDEMO_LISTEN, else %s)", listen);
    assert_contains(out, line);
    free(out);
    unlink(f->log);
    pid_t pid = start(f, NULL, NULL, NULL);
    snprintf(line, sizeof line, "health endpoints on %s (port %d)", listen, port);
    wait_log(f, line, 1);
    char *body = NULL;
    assert_int_equal(mr_tp_http_get(port, "/healthz", &body), 200);
    free(body);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid), 0);
    unsetenv("MR_RTDEMO_DEFAULT_LISTEN");
}

/* A service with routes is not ready until serve has installed them, however long that takes:
 * an ingress that trusted /readyz would otherwise send it requests it answers 404. */
/* Starts rtdemo with the gate file named by var in place: once the bus probe answers, /readyz is
 * 503 saying want; then the gate goes and it turns 200. Returns the pid; *port its port. */
static pid_t not_ready_until_gate(fixture *f, const char *var, const char *want, int *port)
{
    char gate[700];
    snprintf(gate, sizeof gate, "%s/%s-gate", f->dir, var);
    FILE *g = fopen(gate, "w");
    assert_non_null(g);
    fclose(g);
    setenv(var, gate, 1);
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(port, &err), MR_OK);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", *port);
    unlink(f->log);
    pid_t pid = start(f, "--listen", listen, NULL);
    assert_int_equal(mr_tp_wait_port(*port, DEADLINE_MS, &err), MR_OK);
    char *body = NULL;
    long long until = mr_clock_mono_ms() + DEADLINE_MS;
    long got;
    while ((got = mr_tp_http_get(*port, "/readyz", &body)) != 503 || !body || !strstr(body, want)) {
        if (mr_clock_mono_ms() > until)
            fail_msg("/readyz: %ld %s, not 503 saying %s", got, body ? body : "", want);
        free(body);
        body = NULL;
        mr_clock_sleep_ms(100);
    }
    free(body);
    unlink(gate);
    wait_ready_status(*port, 200, &body);
    free(body);
    unsetenv(var);
    return pid;
}

static void test_not_ready_before_its_routes(void **state)
{
    fixture *f = *state;
    int port = 0;
    pid_t pid = not_ready_until_gate(f, "MR_RTDEMO_NO_ROUTES", "rtdemo: routes not installed yet", &port);
    char *body = NULL;
    assert_int_equal(mr_tp_http_get(port, "/demo", &body), 200);
    assert_string_equal(body, "rtdemo");
    free(body);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid), 0);
}

/* A service whose serve adds its readiness check is not ready before it has (the gateway said
 * 200 before it could say its rooms were not made yet). */
static void test_not_ready_before_serve_adds_its_check(void **state)
{
    fixture *f = *state;
    int port = 0;
    pid_t pid = not_ready_until_gate(f, "MR_RTDEMO_NO_CHECK", "rtdemo: starting (its readiness check is not in place yet)",
                                     &port);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid), 0);
}

static void test_health_reload_stop(void **state)
{
    fixture *f = *state;
    int port = 0;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char listen[64], not_ready[700];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(not_ready, sizeof not_ready, "%s/not-ready", f->dir);
    setenv("MR_RTDEMO_NOT_READY", not_ready, 1);
    pid_t pid = start(f, "--listen", listen, NULL);
    wait_log(f, "config generation 0: 2 agents", 1);
    wait_log(f, "health endpoints on 127.0.0.1:", 1);

    char *body = NULL;
    assert_int_equal(mr_tp_http_get(port, "/healthz", &body), 200);
    assert_string_equal(body, "{\"status\":\"ok\"}");
    free(body);
    assert_int_equal(mr_tp_http_get(port, "/readyz", &body), 200);
    assert_string_equal(body, "{\"status\":\"ready\"}");
    free(body);
    rt_write(f->dir, "not-ready", "");
    assert_int_equal(mr_tp_http_get(port, "/readyz", &body), 503);
    assert_contains(body, "\"reason\":\"rtdemo: ");
    free(body);
    assert_int_equal(unlink(not_ready), 0);
    /* Every broker down: not ready, naming the bus; back: ready again. */
    mr_tp_kafka_set_brokers(&kafka, false);
    wait_ready_status(port, 503, &body);
    assert_contains(body, "\"reason\":\"bus: ");
    free(body);
    mr_tp_kafka_set_brokers(&kafka, true);
    wait_ready_status(port, 200, &body);
    free(body);
    assert_int_equal(mr_tp_http_get(port, "/metrics", &body), 200);
    assert_contains(body, "# TYPE rtdemo_loops_total counter\nrtdemo_loops_total ");
    free(body);
    assert_int_equal(mr_tp_http_get(port, "/nope", NULL), 404);

    rt_write(f->dir, "config.yaml", RT_CONFIG_THREE);
    assert_int_equal(kill(pid, SIGHUP), 0);
    wait_log(f, "config generation 1: 3 agents", 1);

    rt_write(f->dir, "config.yaml", RT_CONFIG_BROKEN);
    assert_int_equal(kill(pid, SIGHUP), 0);
    wait_log(f, "config reload failed, keeping the previous config", 1);
    assert_int_equal(kill(pid, 0), 0);
    assert_int_equal(mr_tp_http_get(port, "/healthz", NULL), 200);

    /* Still serving, and the next good file is taken. */
    rt_write(f->dir, "config.yaml", RT_CONFIG_TWO);
    assert_int_equal(kill(pid, SIGHUP), 0);
    wait_log(f, "config generation 2: 2 agents", 1);
    char *text = mr_tp_read_text(f->log);
    assert_null(strstr(text, "config generation 2: 3"));
    free(text);

    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(wait_exit(pid), 0);
    text = mr_tp_read_text(f->log);
    assert_contains(text, "SIGTERM: stopping");
    assert_contains(text, "mindroom-rtdemo stopped (exit status 0)");
    free(text);
}

/* SIGINT stops as cleanly, with the listen address taken from the .env. */
static void test_sigint_and_listen_from_dotenv(void **state)
{
    fixture *f = *state;
    int port = 0;
    mr_err err = {0};
    assert_int_equal(mr_tp_free_port(&port, &err), MR_OK);
    char env[128];
    snprintf(env, sizeof env, "MINDROOM_RTDEMO_LISTEN=127.0.0.1:%d\n", port);
    rt_write(f->dir, ".env", env);
    pid_t pid = start(f, NULL, NULL, NULL);
    wait_log(f, "config generation 0: 2 agents", 1);
    assert_int_equal(mr_tp_http_get(port, "/healthz", NULL), 200);
    assert_int_equal(kill(pid, SIGINT), 0);
    assert_int_equal(wait_exit(pid), 0);
    char *text = mr_tp_read_text(f->log);
    assert_contains(text, "SIGINT: stopping");
    free(text);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, rt_fixture_free)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_help_version_usage),
        T(test_invalid_settings_exit_2),
        T(test_broken_config_at_start_exit_2),
        T(test_failures_exit_1),
        T(test_waits_for_the_store),
        T(test_own_settings_checked_before_the_store_wait),
        T(test_default_listen),
        T(test_not_ready_before_its_routes),
        T(test_not_ready_before_serve_adds_its_check),
        T(test_health_reload_stop),
        T(test_sigint_and_listen_from_dotenv),
    };
    return cmocka_run_group_tests(tests, start_kafka, stop_kafka);
}
