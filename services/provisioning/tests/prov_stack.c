/* prov_stack.c -- redis-server, the test homeserver and mindroom-provisioning processes for the
 * provisioning and connect tests, and the HTTP calls they make. */
#include "prov_stack.h"

#include "mindroom/matrix.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mindroom/fsutil.h"
#include "mindroom/http.h"
#include "mindroom/clock.h"

#define START_TIMEOUT_MS 20000
#define MAX_ENV 48

mr_code prov_stack_start(prov_stack *st, mr_err *err)
{
    memset(st, 0, sizeof *st);
    mr_code rc = mr_tp_mkdtemp("mr-prov", st->dir, sizeof st->dir, err);
    if (rc == MR_OK)
        rc = mr_tp_redis_start(&st->redis, err);
    mr_hs_peer_opts ho = {.registration_token = PROV_TEST_REG_TOKEN};
    if (rc == MR_OK)
        rc = mr_hs_peer_start(&ho, &st->hs, err);
    return rc;
}

mr_code prov_stack_stop(prov_stack *st, mr_err *err)
{
    mr_code rc = st->hs.pid ? mr_hs_peer_stop(&st->hs, err) : MR_OK;
    mr_tp_redis_destroy(&st->redis);
    if (st->dir[0])
        mr_tp_rmtree(st->dir, NULL);
    return rc;
}

char *prov_slurp(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    mr_err err = {0};
    return mr_fs_read_all(path, 64u << 20, &text, &len, &err) == MR_OK ? text : NULL;
}

/* "env -i PATH=... [sanitizer options] <vars...> <bin> <args...>" into argv. */
static size_t env_argv(char **argv, char store[][512], const char *const *vars, const char *const *args)
{
    static const char *const keep[] = {"PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TMPDIR", NULL};
    size_t n = 0, s = 0;
    argv[n++] = "env";
    argv[n++] = "-i";
    for (size_t i = 0; keep[i]; i++) {
        const char *v = getenv(keep[i]);
        if (v) {
            snprintf(store[s], 512, "%s=%s", keep[i], v);
            argv[n++] = store[s++];
        }
    }
    for (size_t i = 0; vars && vars[i] && n < MAX_ENV - 8; i++)
        argv[n++] = (char *)vars[i];
    argv[n++] = getenv("MINDROOM_PROVISIONING_BIN");
    for (size_t i = 0; args && args[i] && n < MAX_ENV - 1; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return n;
}

int prov_run_binary(const char *const *env, const char *const *args, char **output)
{
    char *argv[MAX_ENV], store[8][512], dir[256], log[300];
    env_argv(argv, store, env, args);
    mr_err err = {0};
    int status = -1;
    *output = NULL;
    if (mr_tp_mkdtemp("mr-prov-run", dir, sizeof dir, &err) != MR_OK)
        return -1;
    snprintf(log, sizeof log, "%s/out.log", dir);
    if (mr_tp_run(argv, log, &status, &err) == MR_OK)
        *output = prov_slurp(log);
    mr_tp_rmtree(dir, NULL);
    return status;
}

/* The port of the last "(port N)" line in the log, 0 when none yet. */
static int logged_port(const char *log)
{
    char *text = prov_slurp(log);
    int port = 0;
    for (const char *p = text; p && (p = strstr(p, "(port ")) != NULL; p++)
        port = atoi(p + 6);
    free(text);
    return port;
}

/* Started: /readyz says ready, so the service's routes are in place (it answers /healthz before
 * they are, and a request then gets the runtime's 404), or says it waits for its store, which
 * some tests keep down on purpose. */
static bool started(const char *url)
{
    prov_reply r = prov_call(url, "GET", "/readyz", NULL, NULL);
    const char *reason = json_string_value(json_object_get(r.json, "reason"));
    bool ok = r.status == 200 || (r.status == 503 && reason && strncmp(reason, "store: ", 7) == 0);
    prov_reply_clear(&r);
    return ok;
}

mr_code prov_proc_start(const prov_stack *st, const char *name, int port, const char *const *extra_env,
                        prov_proc *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    char store_url[128], hs[128], listen[64];
    snprintf(store_url, sizeof store_url, "MINDROOM_STORE_URL=%s", st->redis.url);
    snprintf(hs, sizeof hs, "MATRIX_HOMESERVER=%s", st->hs.url);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *vars[MAX_ENV] = {store_url, hs, "MATRIX_SERVER_NAME=localhost",
                                 "MATRIX_REGISTRATION_TOKEN=" PROV_TEST_REG_TOKEN};
    size_t n = 4;
    /* Later assignments win in env(1), so the extras override the defaults above. */
    for (size_t i = 0; extra_env && extra_env[i] && n < 24; i++)
        vars[n++] = extra_env[i];
    vars[n] = NULL;
    const char *args[] = {"--listen", listen, NULL};
    char *argv[MAX_ENV], store[8][512];
    env_argv(argv, store, vars, args);
    snprintf(out->log, sizeof out->log, "%s/%s.log", st->dir, name);
    int before = logged_port(out->log);
    mr_code rc = mr_tp_spawn(argv, out->log, &out->pid, err);
    if (rc != MR_OK)
        return rc;
    long long deadline = mr_clock_mono_ms() + START_TIMEOUT_MS;
    while (mr_clock_mono_ms() < deadline) {
        int ws;
        if (waitpid(out->pid, &ws, WNOHANG) == out->pid) {
            out->pid = 0;
            return mr_err_set(err, MR_EUNAVAIL, "mindroom-provisioning exited at start; see %s", out->log);
        }
        int got = logged_port(out->log);
        /* With a fixed port the log of an earlier run names it too: wait for /readyz then. */
        if (got && (port || got != before || !before)) {
            out->port = got;
            snprintf(out->url, sizeof out->url, "http://127.0.0.1:%d", got);
            if (started(out->url))
                return MR_OK;
        }
        mr_clock_sleep_ms(20);
    }
    mr_tp_kill_wait(out->pid, SIGKILL, NULL, NULL);
    out->pid = 0;
    return mr_err_set(err, MR_EUNAVAIL, "mindroom-provisioning did not get ready (/readyz); see %s", out->log);
}

mr_code prov_proc_stop(prov_proc *p, mr_err *err)
{
    if (!p->pid)
        return MR_OK;
    int status = 0;
    mr_code rc = mr_tp_kill_wait(p->pid, SIGTERM, &status, err);
    p->pid = 0;
    if (rc == MR_OK && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        rc = mr_err_set(err, MR_EINTERNAL, "mindroom-provisioning did not exit cleanly (wait status %d); see %s",
                        status, p->log);
    return rc;
}

prov_reply prov_call(const char *base, const char *method, const char *path, const char *const *headers,
                     const char *body)
{
    prov_reply out = {.status = -1, .retry_after = -1};
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.base_url = base, .timeout_ms = 30000};
    mr_err err = {0};
    if (mr_http_client_new(&o, &c, &err) != MR_OK)
        return out;
    mr_http_call call = {.method = method, .url = path, .body = body, .body_len = body ? strlen(body) : 0,
                         .content_type = body ? "application/json" : NULL, .headers = headers};
    mr_http_result r = {0};
    if (mr_http_client_do(c, &call, &r, &err) == MR_OK) {
        out.status = r.status;
        json_error_t jerr;
        out.json = r.body_len ? json_loadb(r.body, r.body_len, 0, &jerr) : NULL;
        const char *ra = mr_http_result_header(&r, "Retry-After");
        out.retry_after = ra ? atol(ra) : -1;
        const char *ao = mr_http_result_header(&r, "Access-Control-Allow-Origin");
        snprintf(out.allow_origin, sizeof out.allow_origin, "%s", ao ? ao : "");
    }
    mr_http_result_clear(&r);
    mr_http_client_free(c);
    return out;
}

void prov_reply_clear(prov_reply *r)
{
    json_decref(r->json);
    r->json = NULL;
}

const char *prov_detail(const prov_reply *r)
{
    const char *d = json_string_value(json_object_get(r->json, "detail"));
    return d ? d : "";
}

mr_code prov_matrix_user(const prov_stack *st, const char *localpart, char *token, size_t cap, mr_err *err)
{
    char password[128];
    snprintf(password, sizeof password, "pw-%s", localpart);
    mr_matrix_opts o = {.homeserver = st->hs.url};
    mr_matrix *m = NULL;
    mr_matrix_register_req req = {.username = localpart, .password = password,
                                  .registration_token = PROV_TEST_REG_TOKEN};
    mr_code rc = mr_matrix_new(&o, &m, err);
    if (rc == MR_OK)
        rc = mr_matrix_register(m, &req, NULL, err);
    if (rc == MR_OK)
        snprintf(token, cap, "%s", mr_matrix_access_token(m));
    else
        mr_err_prefix(err, "registering @%s on %s", localpart, st->hs.url);
    mr_matrix_free(m);
    return rc;
}

mr_code prov_pair_start(const prov_proc *p, const char *token, char *code, char *session, mr_err *err)
{
    char auth[512];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    prov_reply r = prov_call(p->url, "POST", "/v1/local-mindroom/pair/start", headers, NULL);
    const char *c = json_string_value(json_object_get(r.json, "pair_code"));
    const char *s = json_string_value(json_object_get(r.json, "pair_session_id"));
    mr_code rc = r.status == 200 && c && s ? MR_OK
                                           : mr_err_set(err, MR_EIO, "pair/start: status %ld: %s", r.status,
                                                        prov_detail(&r));
    if (rc == MR_OK) {
        snprintf(code, 64, "%s", c);
        snprintf(session, 64, "%s", s);
    }
    prov_reply_clear(&r);
    return rc;
}

char *prov_redis_dump(const prov_stack *st)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "P=%d; redis-cli -p $P --scan | while read -r k; do echo \"KEY $k\"; "
             "case $(redis-cli -p $P type \"$k\") in string) redis-cli -p $P --raw get \"$k\";; "
             "hash) redis-cli -p $P --raw hgetall \"$k\";; esac; done",
             st->redis.port);
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
    }
    pclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}
