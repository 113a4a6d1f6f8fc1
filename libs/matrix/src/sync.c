/* sync.c -- Matrix /sync (filter, since, long-poll timeout, full_state) and filter upload. */
#include "matrix_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Beyond the long poll itself, what a sync may take to come back before we call it lost. */
#define SYNC_GRACE_MS 30000L

static char *sync_path(const mr_matrix_sync_req *req)
{
    char timeout[24];
    snprintf(timeout, sizeof timeout, "%ld", req->timeout_ms > 0 ? req->timeout_ms : 0L);
    return mx_path(MX_CLIENT "/sync?timeout=%s%S%s%S%s%S", timeout, req->since ? "&since=" : "",
                   req->since ? req->since : "", req->filter ? "&filter=" : "",
                   req->filter ? req->filter : "", req->full_state ? "&full_state=true" : "");
}

static long sync_timeout(const mr_matrix_sync_req *req)
{
    return (req->timeout_ms > 0 ? req->timeout_ms : 0) + SYNC_GRACE_MS;
}

static mr_code check_reply(mr_matrix *m, mr_code rc, json_t **out, mr_err *err)
{
    if (rc == MR_OK && !json_is_string(json_object_get(*out, "next_batch"))) {
        json_decref(*out);
        *out = NULL;
        rc = mr_err_set(err, MR_EINVAL, "sync of %s: the reply has no next_batch", m->user_id);
    }
    return rc;
}

mr_code mr_matrix_sync(mr_matrix *m, const mr_matrix_sync_req *req, json_t **out, mr_err *err)
{
    *out = NULL;
    char *path = sync_path(req);
    if (!path)
        return mr_err_set(err, MR_ENOMEM, "out of memory preparing a sync");
    mx_req r = {.endpoint = "sync", .method = "GET", .path = path, .retry = true,
                .timeout_ms = sync_timeout(req)};
    mr_code rc = mx_call(m, &r, out, err);
    free(path);
    return check_reply(m, rc, out, err);
}

static const mx_req sync_mx = {.endpoint = "sync", .method = "GET"};

static void run_end(mr_matrix *m)
{
    free(m->run.path);
    mx_auth_free(m->run.auth);
    mr_http_result_clear(&m->run.res);
    memset(&m->run, 0, sizeof m->run);
}

mr_code mr_matrix_sync_start(mr_matrix *m, mr_http_multi *mu, const mr_matrix_sync_req *req,
                             void *tag, mr_err *err)
{
    if (m->run.path)
        return mr_err_set(err, MR_EINTERNAL, "sync of %s: one is running already", m->user_id);
    mx_req r = sync_mx;
    m->run.path = sync_path(req);
    mr_code rc = m->run.path ? mx_auth_header(m, &r, &m->run.auth, err)
                             : mr_err_set(err, MR_ENOMEM, "out of memory preparing a sync");
    if (rc != MR_OK) {
        run_end(m);
        return rc;
    }
    m->run.headers[0] = "Accept: application/json";
    m->run.headers[1] = m->run.auth;
    mr_http_call call = {.method = "GET", .url = m->run.path, .headers = m->run.headers,
                         .timeout_ms = sync_timeout(req), .cancelled = m->stopping,
                         .cancel_ctx = m->stopping_ctx};
    clock_gettime(CLOCK_MONOTONIC, &m->run.t0);
    if ((rc = mr_http_multi_start(mu, m->http, &call, &m->run.res, tag, err)) != MR_OK)
        run_end(m);
    return rc;
}

void mr_matrix_sync_cancel(mr_matrix *m, mr_http_multi *mu)
{
    if (!m->run.path)
        return;
    mr_http_multi_cancel(mu, m->http);
    run_end(m);
}

mr_code mr_matrix_sync_finish(mr_matrix *m, mr_code rc, const mr_err *why, json_t **out,
                              long *retry_ms, mr_err *err)
{
    *out = NULL;
    *retry_ms = -1;
    mr_http_result *res = &m->run.res;
    if (rc != MR_OK)
        mr_err_set(err, rc, "%s", why->msg);
    rc = mx_parse_reply(rc, res, err);
    mx_req r = sync_mx;
    r.path = m->run.path;
    mx_observe(m, &r, rc, res, &m->run.t0);
    if (rc == MR_OK && res->status == 429)
        *retry_ms = mx_rate_limit_delay(m, res, 1);
    if (rc == MR_OK && (rc = mr_http_result_check(res, err)) == MR_OK) {
        *out = res->json ? res->json : json_object();
        res->json = NULL;
    }
    if (rc == MR_EAUTH && m->last.soft_logout)
        mr_err_prefix(err, "soft logout of %s", m->user_id);
    run_end(m);
    return check_reply(m, rc, out, err);
}

mr_code mr_matrix_filter_create(mr_matrix *m, json_t *filter, char id[MR_MATRIX_ID_SIZE],
                                mr_err *err)
{
    char *path = mx_path(MX_CLIENT "/user/%s/filter", m->user_id);
    if (!path)
        return mr_err_set(err, MR_ENOMEM, "out of memory preparing a filter");
    json_t *reply = NULL;
    mx_req r = {.endpoint = "filter", .method = "POST", .path = path, .body = filter, .retry = true};
    mr_code rc = mx_call(m, &r, &reply, err);
    free(path);
    if (rc == MR_OK && !mx_copy_str(reply, "filter_id", id, MR_MATRIX_ID_SIZE))
        rc = mr_err_set(err, MR_EINVAL, "filter of %s: the reply has no filter_id", m->user_id);
    json_decref(reply);
    return rc;
}
