/* signing_keys.c -- cross-signing uploads: POST /keys/device_signing/upload with the
 * user-interactive auth the homeserver asks for (m.login.password with the account's password),
 * and POST /keys/signatures/upload. */
#include "matrix_internal.h"

#include <stdio.h>
#include <string.h>

/* Whether a flow of the challenge is m.login.password alone, the one stage a bot can do. */
static bool password_flow(json_t *challenge)
{
    size_t i;
    json_t *flow;
    json_array_foreach(json_object_get(challenge, "flows"), i, flow) {
        json_t *stages = json_object_get(flow, "stages");
        const char *only = json_string_value(json_array_get(stages, 0));
        if (json_array_size(stages) == 1 && only && strcmp(only, "m.login.password") == 0)
            return true;
    }
    return false;
}

mr_code mr_matrix_keys_device_signing_upload(mr_matrix *m, json_t *body, const char *password, json_t **out,
                                             mr_err *err)
{
    *out = NULL;
    json_t *b = json_copy(body);
    if (!b)
        return mr_err_set(err, MR_ENOMEM, "out of memory preparing /keys/device_signing/upload");
    mx_req r = {.endpoint = "keys_device_signing_upload", .method = "POST",
                .path = MX_CLIENT "/keys/device_signing/upload", .body = b, .retry = true, .error_body = true};
    json_t *reply = NULL;
    mr_code rc = mx_call(m, &r, &reply, err);
    /* Synapse asks for auth only when the account has a master key already (MSC3967), and not
     * for the same keys again: a 401 with flows is that challenge, answered once. */
    if (rc != MR_OK && m->last.status == 401 && json_is_array(json_object_get(reply, "flows"))) {
        const char *session = json_string_value(json_object_get(reply, "session"));
        if (!password || !password_flow(reply)) {
            rc = mr_err_set(err, MR_EPERM, "/keys/device_signing/upload of %s: the homeserver asks for "
                            "user-interactive auth and %s", m->user_id,
                            password ? "offers no m.login.password flow" : "this account has no password");
        } else {
            json_t *auth = json_pack("{s:s, s:{s:s, s:s}, s:s, s:s*}", "type", "m.login.password", "identifier",
                                     "type", "m.id.user", "user", m->user_id, "password", password, "session",
                                     session);
            json_decref(reply);
            reply = NULL;
            rc = auth && json_object_set_new(b, "auth", auth) == 0
                     ? mx_call(m, &r, &reply, err)
                     : mr_err_set(err, MR_ENOMEM, "out of memory preparing /keys/device_signing/upload");
            /* A refused password is no expired token: the caller must not log in again for it. */
            if (rc == MR_EAUTH)
                rc = mr_err_set(err, MR_EPERM, "/keys/device_signing/upload of %s: the homeserver refused "
                                "the password: %s %s", m->user_id, m->last.errcode, m->last.error);
        }
    }
    json_decref(b);
    if (rc == MR_OK)
        *out = reply;
    else
        json_decref(reply);
    return rc;
}

mr_code mr_matrix_keys_signatures_upload(mr_matrix *m, json_t *body, json_t **out, mr_err *err)
{
    mx_req r = {.endpoint = "keys_signatures_upload", .method = "POST",
                .path = MX_CLIENT "/keys/signatures/upload", .body = body, .retry = true};
    return mx_call(m, &r, out, err);
}
