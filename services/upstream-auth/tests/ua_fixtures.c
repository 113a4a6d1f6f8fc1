/* ua_fixtures.c -- variable and header tables, signed tokens, and the service as a process. */
#include "ua_fixtures.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "mindroom/fsutil.h"
#include "peers.h"
#include "tp_check.h"

void ua_tenv_set(ua_tenv *e, const char *name, const char *value)
{
    for (size_t i = 0; i < e->n; i++) {
        if (strcmp(e->names[i], name) == 0) {
            e->values[i] = value;
            return;
        }
    }
    assert_true(e->n < UA_TPAIRS_MAX);
    e->names[e->n] = name;
    e->values[e->n++] = value;
}

const char *ua_tenv_get(void *ctx, const char *name)
{
    const ua_tenv *e = ctx;
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->names[i], name) == 0)
            return e->values[i];
    return NULL;
}

void ua_tenv_trusted_headers(ua_tenv *e)
{
    ua_tenv_set(e, UA_TU "AUTH_ENABLED", "true");
    ua_tenv_set(e, UA_TU "USER_ID_HEADER", UA_H_USER);
    ua_tenv_set(e, UA_TU "EMAIL_HEADER", UA_H_EMAIL);
    ua_tenv_set(e, UA_TU "MATRIX_USER_ID_HEADER", UA_H_MXID);
    ua_tenv_set(e, UA_TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "@{localpart}:example.org");
}

void ua_tauth_open(ua_tauth *t, const ua_auth_options *o)
{
    ua_tauth_close(t);
    mr_err err = {0};
    if (ua_settings_load(ua_tenv_get, &t->env, &t->settings, &err) != MR_OK ||
        ua_auth_new(&t->settings, o, &t->auth, &err) != MR_OK)
        fail_msg("%s", err.msg);
}

void ua_tauth_close(ua_tauth *t)
{
    ua_auth_free(t->auth);
    ua_settings_free(&t->settings);
    t->auth = NULL;
}

void ua_tauth_expect_refused(const ua_tauth *t, const ua_thdrs *h, mr_code code, const char *msg)
{
    ua_identity id;
    mr_err err = {0};
    assert_int_equal(ua_authenticate(t->auth, ua_thdrs_get, (void *)h, NULL, &id, &err), code);
    assert_string_equal(err.msg, msg);
    assert_null(id.user_id);
}

void ua_tauth_expect_401(const ua_tauth *t, const ua_thdrs *h, const char *msg)
{
    ua_tauth_expect_refused(t, h, MR_EAUTH, msg);
}

void ua_tauth_expect_identity(const ua_tauth *t, const ua_thdrs *h, const char *user_id, const char *email,
                              const char *mxid, ua_method method)
{
    ua_identity id;
    mr_err err = {0};
    if (ua_authenticate(t->auth, ua_thdrs_get, (void *)h, NULL, &id, &err) != MR_OK)
        fail_msg("refused: %s", err.msg);
    assert_string_equal(id.user_id, user_id);
    if (email)
        assert_string_equal(id.email, email);
    else
        assert_null(id.email);
    if (mxid)
        assert_string_equal(id.matrix_user_id, mxid);
    else
        assert_null(id.matrix_user_id);
    assert_int_equal(id.method, method);
    ua_identity_clear(&id);
}

void ua_thdrs_add(ua_thdrs *h, const char *name, const char *value)
{
    assert_true(h->n < UA_TPAIRS_MAX);
    h->names[h->n] = name;
    h->values[h->n++] = value;
}

const char *ua_thdrs_get(void *ctx, const char *name, size_t *count)
{
    const ua_thdrs *h = ctx;
    const char *first = NULL;
    *count = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->names[i], name) == 0) {
            if (!first)
                first = h->values[i];
            (*count)++;
        }
    }
    return first;
}

char *ua_token(const tk_key *k, const char *payload)
{
    char *header = tk_printf("{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", k->alg, k->kid);
    char *t = tk_sign(k, header, payload);
    free(header);
    return t;
}

long long ua_now_s(void)
{
    return (long long)time(NULL);
}

void ua_proc_env(const char *redis_url)
{
    static const char *const unset[] = {
        "MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED", "MINDROOM_TRUSTED_UPSTREAM_REQUIRE_JWT",
        "MINDROOM_TRUSTED_UPSTREAM_USER_ID_HEADER", "MINDROOM_TRUSTED_UPSTREAM_EMAIL_HEADER",
        "MINDROOM_TRUSTED_UPSTREAM_MATRIX_USER_ID_HEADER", "MINDROOM_TRUSTED_UPSTREAM_EMAIL_TO_MATRIX_USER_ID_TEMPLATE",
        "MINDROOM_TRUSTED_UPSTREAM_JWT_HEADER", "MINDROOM_TRUSTED_UPSTREAM_JWKS_URL",
        "MINDROOM_TRUSTED_UPSTREAM_JWT_AUDIENCE", "MINDROOM_TRUSTED_UPSTREAM_JWT_ISSUER",
        "MINDROOM_TRUSTED_UPSTREAM_JWT_EMAIL_CLAIM", "MINDROOM_TRUSTED_UPSTREAM_JWT_USER_ID_CLAIM",
        "MINDROOM_TRUSTED_UPSTREAM_JWT_MATRIX_USER_ID_CLAIM", "MINDROOM_API_KEY", "MINDROOM_OWNER_USER_ID",
        "MINDROOM_OAUTH_PROVIDERS", "MINDROOM_OAUTH_GITHUB_AUTHORIZE_URL", "MINDROOM_OAUTH_GITHUB_TOKEN_URL",
        "MINDROOM_OAUTH_GITHUB_CLIENT_ID", "MINDROOM_OAUTH_GITHUB_CLIENT_SECRET", "MINDROOM_OAUTH_GITHUB_REDIRECT_URL",
        "MINDROOM_PUBLIC_URL", "MINDROOM_UPSTREAM_AUTH_JWT_CACHE",
        "MINDROOM_UPSTREAM_AUTH_LISTEN", "MINDROOM_NAMESPACE", "MINDROOM_CONFIG_PATH",
        "MINDROOM_TRUSTED_UPSTREAM_JWT_LEEWAY_SECONDS",
        /* The service uses no bus, no config.yaml and no Matrix settings: the tests leave them
         * unset, so every test also shows it starts without them. */
        "MINDROOM_BUS_URL", "MATRIX_SERVER_NAME", "MATRIX_HOMESERVER"};
    for (size_t i = 0; i < sizeof unset / sizeof unset[0]; i++)
        unsetenv(unset[i]);
    setenv("MINDROOM_STORE_URL", redis_url, 1);
    setenv("MINDROOM_INSTANCE_SECRET", UA_TEST_SECRET_HEX, 1);
    setenv("LOG_LEVEL", "debug", 1);
}

/* The storage path, so that nothing lands in the working directory. */
static void set_storage(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data", dir);
    setenv("MINDROOM_STORAGE_PATH", path, 1);
}

static const char *binary(void)
{
    const char *bin = getenv("MINDROOM_UPSTREAM_AUTH_BIN");
    if (!bin)
        fail_msg("MINDROOM_UPSTREAM_AUTH_BIN is not set");
    return bin;
}

/* /healthz answers before the routes are installed; /readyz waits for them. Another test's
 * server may have taken the free port first (ours then failed to bind): only /metrics with the
 * service's own series proves the answer is ours. */
static mr_code wait_ready(int port, mr_err *err)
{
    for (int waited_ms = 0; waited_ms < 20000; waited_ms += 20) {
        if (mr_tp_http_get(port, "/readyz", NULL) == 200) {
            mr_http_result r = {0};
            ua_http("GET", port, "/metrics", NULL, &r);
            bool ours = r.status == 200 && r.body && strstr(r.body, "upstream_auth_");
            mr_http_result_clear(&r);
            return ours ? MR_OK : mr_err_set(err, MR_EUNAVAIL, "port %d is another server's", port);
        }
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    }
    return mr_err_set(err, MR_EUNAVAIL, "GET /readyz on port %d was not 200 within 20 s", port);
}

void ua_proc_start(ua_proc *p)
{
    mr_err err = {0};
    memset(p, 0, sizeof *p);
    mr_tp_check(mr_tp_mkdtemp("mr-ua", p->dir, sizeof p->dir, &err), &err);
    set_storage(p->dir);
    snprintf(p->log, sizeof p->log, "%s/service.log", p->dir);
    char listen[64];
    for (int attempt = 0; attempt < 5; attempt++) {
        mr_tp_check(mr_tp_free_port(&p->port, &err), &err);
        snprintf(listen, sizeof listen, "127.0.0.1:%d", p->port);
        char public_url[96];
        snprintf(public_url, sizeof public_url, "http://%s", listen);
        setenv("MINDROOM_PUBLIC_URL", public_url, 1);
        char *argv[] = {(char *)binary(), "--listen", listen, NULL};
        mr_tp_check(mr_tp_spawn(argv, p->log, &p->pid, &err), &err);
        if (mr_tp_wait_port(p->port, 20000, &err) == MR_OK && wait_ready(p->port, &err) == MR_OK)
            return;
        mr_tp_kill_wait(p->pid, SIGKILL, NULL, NULL);
        p->pid = 0;
    }
    char *log = ua_proc_log(p);
    fail_msg("mindroom-upstream-auth did not start: %s\n%s", err.msg, log);
}

char *ua_proc_log(const ua_proc *p)
{
    char *data = NULL;
    size_t len = 0;
    mr_err err = {0};
    mr_tp_check(mr_fs_read_all(p->log, 16 * 1024 * 1024, &data, &len, &err), &err);
    return data;
}

int ua_proc_run(char **output)
{
    char dir[512], log[600];
    mr_err err = {0};
    mr_tp_check(mr_tp_mkdtemp("mr-ua-run", dir, sizeof dir, &err), &err);
    set_storage(dir);
    snprintf(log, sizeof log, "%s/out.log", dir);
    char *argv[] = {(char *)binary(), NULL};
    pid_t pid;
    mr_tp_check(mr_tp_spawn(argv, log, &pid, &err), &err);
    /* A service that starts despite the settings would run forever: give it 20 s. */
    int st = 0;
    pid_t done = 0;
    for (int waited_ms = 0; (done = waitpid(pid, &st, WNOHANG)) == 0 && waited_ms < 20000; waited_ms += 20)
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    if (done == 0)
        mr_tp_kill_wait(pid, SIGKILL, &st, NULL);
    size_t len = 0;
    mr_tp_check(mr_fs_read_all(log, 1024 * 1024, output, &len, &err), &err);
    mr_tp_rmtree(dir, NULL);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void ua_proc_stop(ua_proc *p)
{
    if (!p->pid)
        return;
    int st = 0;
    mr_err err = {0};
    mr_tp_check(mr_tp_kill_wait(p->pid, SIGTERM, &st, &err), &err);
    p->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *log = ua_proc_log(p);
        fail_msg("mindroom-upstream-auth did not stop cleanly (status %d):\n%s", st, log);
    }
    mr_tp_rmtree(p->dir, NULL);
    p->dir[0] = '\0';
}

void ua_proc_kill(ua_proc *p)
{
    if (p->pid)
        mr_tp_kill_wait(p->pid, SIGKILL, NULL, NULL);
    if (p->dir[0])
        mr_tp_rmtree(p->dir, NULL);
    memset(p, 0, sizeof *p);
}

void ua_http(const char *method, int port, const char *path, const char *const *headers, mr_http_result *out)
{
    char url[4096];
    if (strncmp(path, "http://", 7) == 0)
        snprintf(url, sizeof url, "%s", path);
    else
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.timeout_ms = 30000};
    mr_err err = {0};
    mr_tp_check(mr_http_client_new(&o, &c, &err), &err);
    mr_http_call call = {.method = method, .url = url, .headers = headers};
    mr_code rc = mr_http_client_do(c, &call, out, &err);
    mr_http_client_free(c);
    mr_tp_check(rc, &err);
}
