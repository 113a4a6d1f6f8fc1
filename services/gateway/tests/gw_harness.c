/* gw_harness.c -- runs mindroom-gateway as a process against mr-test-homeserver and a real
 * redis-server, and reads what it publishes. */
#include "gw_harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "mindroom/fsutil.h"
#include "mindroom/http.h"
#include "tp_check.h"

#define DEADLINE_MS 60000

/* ---- set-up ---- */

void gwt_write_config(gwt *f, const char *config)
{
    mr_err err = {0};
    mr_tp_check_step(mr_fs_write_atomic(f->config, config, strlen(config), 0600, true, &err), &err, f->config);
}

static const char *const gateway_vars[] = {
    "MATRIX_REGISTRATION_TOKEN", "MATRIX_REGISTRATION_SHARED_SECRET", "MATRIX_APPSERVICE_TOKEN",
    "MATRIX_MANAGED_ACCOUNT_AUTH", "MINDROOM_PROVISIONING_URL", "MINDROOM_LOCAL_CLIENT_ID",
    "MINDROOM_LOCAL_CLIENT_SECRET", "MINDROOM_NAMESPACE", "MINDROOM_CONFIG_PATH", "LOG_LEVEL",
    "MINDROOM_GATEWAY_SYNC_TIMEOUT_MS", "MINDROOM_GATEWAY_TIMELINE_LIMIT",
    "MINDROOM_GATEWAY_BACKFILL_MAX_EVENTS", "MINDROOM_ANSWER_MAX_AGE_SECONDS",
};

extern char **environ;

/* Every MATRIX_ACCOUNT_* variable a test before may have left. */
static void unset_given_accounts(void)
{
    for (bool found = true; found;) {
        found = false;
        for (char **e = environ; *e && !found; e++) {
            const char *eq = strchr(*e, '=');
            if (strncmp(*e, "MATRIX_ACCOUNT_", 15) != 0 || !eq)
                continue;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
            /* unsetenv changes environ: look again from its start. */
            unsetenv(name);
            found = true;
        }
    }
}

void gwt_setup(gwt *f, const mr_hs_peer_opts *opts, const char *config)
{
    memset(f, 0, sizeof *f);
    mr_err err = {0};
    mr_hs_peer_opts dflt = {.registration_token = GWT_TOKEN};
    mr_tp_check_step(mr_hs_peer_start(opts ? opts : &dflt, &f->hs, &err), &err, "starting the homeserver");
    mr_tp_check_step(mr_tp_redis_start(&f->redis, &err), &err, "starting redis");
    mr_tp_check_step(mr_tp_mkdtemp("mr-gw", f->dir, sizeof f->dir, &err), &err, "temp dir");
    snprintf(f->config, sizeof f->config, "%s/config.yaml", f->dir);
    snprintf(f->log, sizeof f->log, "%s/gateway.log", f->dir);
    gwt_write_config(f, config);
    snprintf(f->bus_url, sizeof f->bus_url, "redis://127.0.0.1:%d/0", f->redis.port);
    snprintf(f->store_url, sizeof f->store_url, "redis://127.0.0.1:%d/1", f->redis.port);
    mr_tp_check_step(mr_tp_free_port(&f->http_port, &err), &err, "free port");
    char listen[64], data[600];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", f->http_port);
    snprintf(data, sizeof data, "%s/data", f->dir);
    for (size_t i = 0; i < sizeof gateway_vars / sizeof *gateway_vars; i++)
        unsetenv(gateway_vars[i]);
    unset_given_accounts();
    setenv("MATRIX_HOMESERVER", f->hs.url, 1);
    setenv("MATRIX_SERVER_NAME", "localhost", 1);
    if (!opts || opts->registration_token)
        setenv("MATRIX_REGISTRATION_TOKEN", opts ? opts->registration_token : GWT_TOKEN, 1);
    setenv("MINDROOM_BUS_URL", f->bus_url, 1);
    setenv("MINDROOM_STORE_URL", f->store_url, 1);
    setenv("MINDROOM_INSTANCE_SECRET", GWT_SECRET_HEX, 1);
    setenv("MINDROOM_STORAGE_PATH", data, 1);
    setenv("MINDROOM_GATEWAY_LISTEN", listen, 1);
    setenv("LOG_LEVEL", "debug", 1);
    mr_tp_check_step(mr_bus_open(f->bus_url, NULL, &f->bus, &err), &err, "opening the bus");
    unsigned char secret[32];
    for (int i = 0; i < 32; i++)
        secret[i] = (unsigned char)i;
    mr_store_options so = {.secret = secret, .secret_len = sizeof secret};
    mr_tp_check_step(mr_store_open(f->store_url, &so, &f->store, &err), &err, "opening the store");
}

void gwt_teardown(gwt *f)
{
    if (f->pid > 0)
        mr_tp_kill_wait(f->pid, SIGKILL, NULL, NULL);
    mr_bus_close(f->bus);
    mr_store_close(f->store);
    mr_err err = {0};
    if (mr_hs_peer_stop(&f->hs, &err) != MR_OK)
        fprintf(stderr, "%s\n", err.msg);
    mr_tp_redis_destroy(&f->redis);
    mr_tp_rmtree(f->dir, NULL);
}

/* ---- the gateway process ---- */

void gwt_start(gwt *f, const char *crash)
{
    if (crash)
        setenv("MR_GATEWAY_TEST_CRASH", crash, 1);
    else
        unsetenv("MR_GATEWAY_TEST_CRASH");
    const char *bin = getenv("MR_GATEWAY_BIN");
    assert_non_null(bin);
    char *argv[] = {(char *)bin, "--config", f->config, NULL};
    mr_err err = {0};
    /* The log keeps growing across restarts, so counts in it cover every run. */
    mr_tp_check_step(mr_tp_spawn(argv, f->log, &f->pid, &err), &err, "starting mindroom-gateway");
}

/* An exit status, or -SIG when a signal ended the process. */
static int exit_code(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? -WTERMSIG(st) : -1000;
}

static bool exited(gwt *f, int *status)
{
    int st = 0;
    if (waitpid(f->pid, &st, WNOHANG) != f->pid)
        return false;
    f->pid = 0;
    *status = exit_code(st);
    return true;
}

void gwt_wait_ready(gwt *f)
{
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    for (;;) {
        if (mr_tp_http_get(f->http_port, "/readyz", NULL) == 200)
            return;
        int st;
        if (exited(f, &st))
            fail_msg("mindroom-gateway exited (%d) before it was ready; see %s", st, f->log);
        if (mr_clock_mono_ms() > deadline)
            fail_msg("mindroom-gateway not ready after %d s; see %s", DEADLINE_MS / 1000, f->log);
        mr_clock_sleep_ms(50);
    }
}

int gwt_wait_exit(gwt *f)
{
    int st = 0;
    mr_err err = {0};
    if (mr_tp_wait_exit(f->pid, DEADLINE_MS, &st, &err) != MR_OK)
        fail_msg("mindroom-gateway: %s; see %s", err.msg, f->log);
    f->pid = 0;
    return exit_code(st);
}

int gwt_stop(gwt *f)
{
    kill(f->pid, SIGTERM);
    return gwt_wait_exit(f);
}

/* cmocka cuts long messages: the log's end goes to stderr whole, so a failure can be read. */
static void show_log_end(const gwt *f)
{
    char *text = mr_tp_read_text(f->log);
    size_t len = text ? strlen(text) : 0;
    fprintf(stderr, "--- the end of %s ---\n%s\n---\n", f->log, text ? text + (len > 6000 ? len - 6000 : 0) : "");
    free(text);
}

void gwt_wait_log(const gwt *f, const char *needle, int times)
{
    mr_err err = {0};
    if (mr_tp_wait_in_file(f->log, needle, times, DEADLINE_MS, 0, &err) != MR_OK) {
        show_log_end(f);
        fail_msg("mindroom-gateway's log: %s", err.msg);
    }
}

void gwt_assert_log(const gwt *f, const char *needle, int times)
{
    int n = mr_tp_count_in_file(f->log, needle);
    if (n == times)
        return;
    show_log_end(f);
    fail_msg("the log shows \"%s\" %d times, not %d", needle, n, times);
}

/* ---- the homeserver ---- */

static mr_matrix *plain_client(gwt *f)
{
    mr_matrix_opts o = {.homeserver = f->hs.url};
    mr_matrix *m = NULL;
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_new(&o, &m, &err), &err, "matrix client");
    return m;
}

json_t *gwt_hs_state(gwt *f)
{
    mr_matrix *m = plain_client(f);
    json_t *out = NULL;
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_request(m, "test", "GET", "/_test/state", NULL, false, &out, &err), &err,
          "homeserver state");
    mr_matrix_free(m);
    return out;
}

json_t *gwt_hs_snapshot(gwt *f)
{
    json_t *s = gwt_hs_state(f);
    json_object_del(s, "syncs_waiting");
    return s;
}

void gwt_assert_users(json_t *state, const char *const *want, size_t n)
{
    json_t *users = json_object_get(state, "users");
    char *text = json_dumps(users, JSON_COMPACT);
    size_t i;
    json_t *u;
    for (size_t k = 0; k < n; k++) {
        bool seen = false;
        json_array_foreach(users, i, u)
            seen = seen || strcmp(json_string_value(u), want[k]) == 0;
        if (!seen)
            fail_msg("%s is not among the homeserver's users %s", want[k], text);
    }
    if (json_array_size(users) != n)
        fail_msg("the homeserver has %zu users, not %zu: %s", json_array_size(users), n, text);
    free(text);
}

void gwt_restart_changes_nothing(gwt *f, const char *const *entities, size_t n)
{
    char **tokens = calloc(n, sizeof *tokens);
    assert_non_null(tokens);
    for (size_t i = 0; i < n; i++) {
        char key[200];
        snprintf(key, sizeof key, "account:%s:token", entities[i]);
        tokens[i] = gwt_store_secret(f, key);
        if (!tokens[i])
            fail_msg("%s: no session kept", key);
    }
    json_t *before = gwt_hs_snapshot(f);
    gwt_start(f, NULL);
    gwt_wait_ready(f);
    assert_int_equal(gwt_stop(f), 0);
    json_t *after = gwt_hs_snapshot(f);
    if (!json_equal(before, after)) {
        char *b = json_dumps(before, JSON_INDENT(1)), *a = json_dumps(after, JSON_INDENT(1));
        fail_msg("the second start changed the homeserver:\nbefore %s\nafter %s", b, a);
    }
    for (size_t i = 0; i < n; i++) {
        char key[200];
        snprintf(key, sizeof key, "account:%s:token", entities[i]);
        char *now = gwt_store_secret(f, key);
        if (!now || strcmp(now, tokens[i]) != 0)
            fail_msg("%s changed: the second start logged in again", key);
        free(now);
        free(tokens[i]);
    }
    free(tokens);
    json_decref(before);
    json_decref(after);
}

void gwt_hs_control(gwt *f, const char *path, json_t *body)
{
    mr_matrix *m = plain_client(f);
    json_t *out = NULL;
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_request(m, "test", "POST", path, body, false, &out, &err), &err, path);
    json_decref(out);
    json_decref(body);
    mr_matrix_free(m);
}

mr_matrix *gwt_human(gwt *f, const char *localpart)
{
    mr_matrix *m = plain_client(f);
    mr_err err = {0};
    mr_matrix_register_req req = {.username = localpart, .password = GWT_PASSWORD,
                                  .registration_token = GWT_TOKEN};
    mr_tp_check_step(mr_matrix_register(m, &req, NULL, &err), &err, localpart);
    return m;
}

mr_matrix *gwt_start_with_human(gwt *f, const char *config, const char *localpart)
{
    gwt_setup(f, NULL, config);
    mr_matrix *human = gwt_human(f, localpart);
    gwt_start(f, NULL);
    gwt_wait_ready(f);
    return human;
}

mr_matrix *gwt_alice_in_lobby(gwt *f, const char *config, char lobby[MR_MATRIX_ID_SIZE])
{
    mr_matrix *alice = gwt_start_with_human(f, config, "alice");
    gwt_room_id(f, "#lobby:localhost", lobby);
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_join(alice, lobby, NULL, &err), &err, "alice joining #lobby");
    return alice;
}

mr_matrix *gwt_alice_made_lobby(gwt *f, const char *config, const char *preset, char lobby[MR_MATRIX_ID_SIZE])
{
    gwt_setup(f, NULL, config);
    mr_matrix *alice = gwt_human(f, "alice");
    json_t *body = json_pack("{s:s, s:s}", "room_alias_name", "lobby", "preset", preset);
    mr_err err = {0};
    if (!body)
        fail_msg("out of memory");
    mr_tp_check_step(mr_matrix_create_room(alice, body, lobby, &err), &err, "alice making #lobby");
    json_decref(body);
    return alice;
}

void gwt_say(mr_matrix *m, const char *room, const char *txn, const char *body)
{
    json_t *content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", body);
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_send(m, room, "m.room.message", txn, content, NULL, &err), &err, "sending a message");
    json_decref(content);
}

void gwt_room_id(gwt *f, const char *alias, char out[MR_MATRIX_ID_SIZE])
{
    mr_matrix *m = plain_client(f);
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_alias_get(m, alias, out, &err), &err, alias);
    mr_matrix_free(m);
}

/* ---- the bus ---- */

void gwt_reader_open(gwt *f, gwt_reader *r, const char *group, const char *topic)
{
    memset(r, 0, sizeof *r);
    mr_err err = {0};
    const char *topics[] = {topic};
    mr_tp_check_step(mr_bus_subscribe(f->bus, group, topics, 1, &r->c, &err), &err, "subscribe");
    r->msgs = json_array();
    snprintf(r->topic, sizeof r->topic, "%s", topic);
    snprintf(r->path, sizeof r->path, "%s/%s-%s.jsonl", f->dir, group, topic);
    r->jsonl = fopen(r->path, "w");
    assert_non_null(r->jsonl);
}

void gwt_reader_close(gwt_reader *r)
{
    mr_bus_consumer_close(r->c);
    json_decref(r->msgs);
    if (r->jsonl)
        fclose(r->jsonl);
}

static mr_code on_msg(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    gwt_reader *r = ctx;
    json_error_t je;
    json_t *v = json_loadb(m->value, m->len, 0, &je);
    if (!v)
        return mr_err_set(err, MR_EINVAL, "%s message is not JSON: %s", r->topic, je.text);
    json_array_append_new(r->msgs, v);
    fprintf(r->jsonl, "%s\n", m->value);
    fflush(r->jsonl);
    return MR_OK;
}

void gwt_read_until(gwt_reader *r, gwt_pred pred, void *ctx)
{
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    while (!pred(r->msgs, ctx)) {
        if (mr_clock_mono_ms() > deadline)
            fail_msg("%s: the expected messages did not come within %d s (%zu read)", r->topic,
                     DEADLINE_MS / 1000, json_array_size(r->msgs));
        size_t handled = 0;
        mr_err err = {0};
        if (mr_bus_poll(r->c, 200, 100, on_msg, r, &handled, &err) != MR_OK)
            fprintf(stderr, "polling %s: %s\n", r->topic, err.msg);
    }
}

void gwt_read_all(gwt_reader *r)
{
    for (;;) {
        size_t handled = 0;
        mr_err err = {0};
        if (mr_bus_poll(r->c, 500, 100, on_msg, r, &handled, &err) != MR_OK)
            fail_msg("polling %s: %s", r->topic, err.msg);
        if (!handled)
            return;
    }
}

size_t gwt_count_body(json_t *msgs, const char *body, const char *account)
{
    size_t n = 0, i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *b = json_string_value(json_object_get(json_object_get(json_object_get(m, "event"),
                                                                          "content"), "body"));
        const char *acct = json_string_value(json_object_get(m, "account"));
        if (b && strcmp(b, body) == 0 && (!account || (acct && strcmp(acct, account) == 0)))
            n++;
    }
    return n;
}

bool gwt_seen_body(json_t *msgs, void *body)
{
    return gwt_count_body(msgs, body, NULL) >= 1;
}

double gwt_metric(gwt *f, const char *series)
{
    char *text = NULL;
    mr_tp_http_get(f->http_port, "/metrics", &text);
    size_t n = strlen(series);
    double v = 0;
    /* At a line's start, so the series' # HELP line never matches. */
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0) {
            v = strtod(p + n, NULL);
            break;
        }
    free(text);
    return v;
}

void gwt_reader_check_proto(gwt_reader *r)
{
    mr_err err = {0};
    mr_tp_check_step(mr_tp_proto_check(r->topic, r->path, &err), &err, "proto/check.py");
}

void gwt_end(gwt *f, gwt_reader *in, mr_matrix *human)
{
    gwt_reader_check_proto(in);
    gwt_reader_close(in);
    assert_int_equal(gwt_stop(f), 0);
    mr_matrix_free(human);
    gwt_teardown(f);
}

int gwt_nio(gwt *f, const char *const *args)
{
    const char *py = getenv("MR_PYTHON3"), *script = getenv("MR_NIO_CLIENT");
    assert_non_null(py);
    assert_non_null(script);
    char *argv[16];
    size_t n = 0;
    argv[n++] = (char *)py;
    argv[n++] = (char *)script;
    argv[n++] = f->hs.url;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    char log[600];
    snprintf(log, sizeof log, "%s/nio.log", f->dir);
    int code = -1;
    mr_err err = {0};
    mr_tp_check_step(mr_tp_run(argv, log, &code, &err), &err, argv[0]);
    return code;
}

char *gwt_store_field(gwt *f, const char *key, const char *field)
{
    char *v = NULL;
    size_t len = 0;
    mr_err err = {0};
    if (mr_store_hget(f->store, key, field, &v, &len, &err) != MR_OK)
        fail_msg("%s %s: %s", key, field, err.msg);
    return v;
}

char *gwt_store_secret(gwt *f, const char *key)
{
    char *v = NULL;
    size_t len = 0;
    mr_err err = {0};
    mr_code rc = mr_store_get_secret(f->store, key, &v, &len, &err);
    if (rc == MR_ENOTFOUND)
        return NULL;
    if (rc != MR_OK)
        fail_msg("%s: %s", key, err.msg);
    return v;
}

void gwt_publish(gwt *f, const char *topic, const char *key, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    mr_err err = {0};
    mr_tp_check_step(mr_bus_publish(f->bus, topic, key, text, strlen(text), &err), &err, "publish");
    mr_tp_check_step(mr_bus_flush(f->bus, 10000, &err), &err, "flush");
    free(text);
}
