/* model_stub_peer.c -- starting the model-provider stub (mr-model-stub) from tests, and
 * scripting it over its /_stub/ control API. */
#include "model_stub_peer.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mindroom/http.h"
#include "peers.h"

#define START_TIMEOUT_MS 15000
#define MAX_MODELS 16

/* The URL of the log's first line, "listening on <url>", once it is complete. */
static bool read_url(const char *log, char *url, size_t cap)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return false;
    char line[256];
    bool found = fgets(line, sizeof line, f) && strncmp(line, "listening on ", 13) == 0 &&
                 strchr(line, '\n');
    fclose(f);
    if (!found)
        return false;
    line[strcspn(line, "\n")] = '\0';
    return snprintf(url, cap, "%s", line + 13) < (int)cap;
}

mr_code mr_model_stub_start(const char *api_key, const char *const *models, mr_model_stub *st,
                            mr_err *err)
{
    memset(st, 0, sizeof *st);
    mr_code rc = mr_tp_mkdtemp("mr-model-stub", st->dir, sizeof st->dir, err);
    if (rc != MR_OK)
        return rc;
    snprintf(st->log, sizeof st->log, "%s/model-stub.log", st->dir);
    char *argv[8 + 2 * MAX_MODELS];
    size_t n = 0;
    argv[n++] = MR_MODEL_STUB_BINARY;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    if (api_key) {
        argv[n++] = "--api-key";
        argv[n++] = (char *)api_key;
    }
    for (size_t i = 0; models && models[i]; i++) {
        if (i == MAX_MODELS)
            return mr_err_set(err, MR_EINVAL, "mr-model-stub: more than %d models", MAX_MODELS);
        argv[n++] = "--model";
        argv[n++] = (char *)models[i];
    }
    argv[n] = NULL;
    if ((rc = mr_tp_spawn(argv, st->log, &st->pid, err)) != MR_OK)
        return rc;
    for (int waited = 0; waited < START_TIMEOUT_MS; waited += 10) {
        if (read_url(st->log, st->url, sizeof st->url)) {
            const char *colon = strrchr(st->url, ':');
            st->port = colon ? atoi(colon + 1) : 0;
            return MR_OK;
        }
        int status;
        if (waitpid(st->pid, &status, WNOHANG) == st->pid) {
            st->pid = 0;
            return mr_err_set(err, MR_EUNAVAIL, "mr-model-stub exited at start; see %s", st->log);
        }
        usleep(10000);
    }
    mr_tp_kill_wait(st->pid, SIGKILL, NULL, NULL);
    st->pid = 0;
    return mr_err_set(err, MR_EUNAVAIL, "mr-model-stub printed no URL within %d ms; see %s",
                      START_TIMEOUT_MS, st->log);
}

mr_code mr_model_stub_stop(mr_model_stub *st, mr_err *err)
{
    mr_code rc = MR_OK;
    if (st->pid > 0) {
        int status = 0;
        rc = mr_tp_kill_wait(st->pid, SIGTERM, &status, err);
        st->pid = 0;
        if (rc == MR_OK && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            return mr_err_set(err, MR_EINTERNAL, "mr-model-stub did not exit cleanly "
                              "(status %d); see %s", status, st->log);
    }
    if (rc == MR_OK && st->dir[0])
        mr_tp_rmtree(st->dir, NULL);
    return rc;
}

/* One control call; the parsed answer goes to *out when out is not NULL. */
static mr_code control(const mr_model_stub *st, const char *method, const char *path,
                       const char *body, json_t **out, mr_err *err)
{
    mr_http_client *c = NULL;
    mr_http_client_opts o = {.base_url = st->url};
    mr_code rc = mr_http_client_new(&o, &c, err);
    if (rc != MR_OK)
        return rc;
    mr_http_call call = {.method = method, .url = path, .body = body,
                         .body_len = body ? strlen(body) : 0,
                         .content_type = body ? "application/json" : NULL};
    mr_http_result res;
    rc = mr_http_client_do(c, &call, &res, err);
    if (rc == MR_OK && res.status != 200)
        rc = mr_err_set(err, MR_EINVAL, "%s %s: HTTP %ld: %s", method, res.url, res.status,
                        res.body);
    if (rc == MR_OK && out) {
        json_t *j = json_loadb(res.body, res.body_len, 0, NULL);
        *out = json_incref(json_object_get(j, "requests"));
        json_decref(j);
        if (!*out)
            rc = mr_err_set(err, MR_EINVAL, "%s %s: no requests array", method, res.url);
    }
    mr_http_result_clear(&res);
    mr_http_client_free(c);
    return rc;
}

mr_code mr_model_stub_script(const mr_model_stub *st, const char *json_text, mr_err *err)
{
    return control(st, "POST", "/_stub/script", json_text, NULL, err);
}

mr_code mr_model_stub_requests(const mr_model_stub *st, json_t **out, mr_err *err)
{
    *out = NULL;
    return control(st, "GET", "/_stub/requests", NULL, out, err);
}

mr_code mr_model_stub_connections(const mr_model_stub *st, size_t *requests, size_t *connections, mr_err *err)
{
    *requests = *connections = 0;
    json_t *all = NULL;
    mr_code rc = mr_model_stub_requests(st, &all, err);
    if (rc != MR_OK)
        return rc;
    size_t n = json_array_size(all);
    for (size_t i = 0; i < n && rc == MR_OK; i++) {
        json_int_t port = json_integer_value(json_object_get(json_array_get(all, i), "client_port"));
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = json_integer_value(json_object_get(json_array_get(all, j), "client_port")) == port;
        if (port <= 0)
            rc = mr_err_set(err, MR_EINVAL, "GET /_stub/requests: request %zu has no client_port", i);
        else if (!seen)
            (*connections)++;
    }
    *requests = n;
    json_decref(all);
    return rc;
}

mr_code mr_model_stub_reset(const mr_model_stub *st, mr_err *err)
{
    return control(st, "POST", "/_stub/reset", "{}", NULL, err);
}

mr_code mr_model_stub_release(const mr_model_stub *st, mr_err *err)
{
    return control(st, "POST", "/_stub/release", "{}", NULL, err);
}
