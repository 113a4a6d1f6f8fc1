/* sync.c -- Matrix /sync (filter, since, long-poll timeout, full_state) and filter upload. */
#include "matrix_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Beyond the long poll itself, what a sync may take to come back before we call it lost. */
#define SYNC_GRACE_MS 30000L

mr_code mr_matrix_sync(mr_matrix *m, const mr_matrix_sync_req *req, json_t **out, mr_err *err)
{
    *out = NULL;
    char timeout[24];
    snprintf(timeout, sizeof timeout, "%ld", req->timeout_ms > 0 ? req->timeout_ms : 0L);
    char *path = mx_path(MX_CLIENT "/sync?timeout=%s%S%s%S%s%S", timeout,
                         req->since ? "&since=" : "", req->since ? req->since : "",
                         req->filter ? "&filter=" : "", req->filter ? req->filter : "",
                         req->full_state ? "&full_state=true" : "");
    if (!path)
        return mr_err_set(err, MR_ENOMEM, "out of memory preparing a sync");
    mx_req r = {.endpoint = "sync", .method = "GET", .path = path, .retry = true,
                .timeout_ms = (req->timeout_ms > 0 ? req->timeout_ms : 0) + SYNC_GRACE_MS};
    mr_code rc = mx_call(m, &r, out, err);
    free(path);
    if (rc == MR_OK && !json_is_string(json_object_get(*out, "next_batch"))) {
        json_decref(*out);
        *out = NULL;
        rc = mr_err_set(err, MR_EINVAL, "sync of %s: the reply has no next_batch", m->user_id);
    }
    return rc;
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
