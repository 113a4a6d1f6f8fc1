/* rooms.c -- Matrix rooms and directory: createRoom, join, invite, leave, members, state, sends
 * with transaction IDs, redactions, typing, history, aliases and directory visibility. */
#include "matrix_internal.h"

#include "mindroom/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs one request, taking path and body (either NULL means the caller ran out of memory). */
static mr_code run(mr_matrix *m, const char *endpoint, const char *method, char *path, json_t *body,
                   bool body_expected, bool retry, json_t **out, mr_err *err)
{
    mr_code rc;
    if (!path || (body_expected && !body)) {
        rc = mr_err_set(err, MR_ENOMEM, "out of memory preparing %s", endpoint);
    } else {
        mx_req r = {.endpoint = endpoint, .method = method, .path = path, .body = body,
                    .retry = retry};
        rc = mx_call(m, &r, out, err);
    }
    free(path);
    json_decref(body);
    return rc;
}

/* As run, then copies the string `key` of the reply into id (when id is not NULL). */
static mr_code run_id(mr_matrix *m, const char *endpoint, const char *method, char *path,
                      json_t *body, bool body_expected, bool retry, const char *key,
                      char id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    json_t *reply = NULL;
    char where[160];
    snprintf(where, sizeof where, "%s %s", method, path ? path : "");
    mr_code rc = run(m, endpoint, method, path, body, body_expected, retry, &reply, err);
    if (rc == MR_OK && id && !mx_copy_str(reply, key, id, MR_MATRIX_ID_SIZE))
        rc = mr_err_set(err, MR_EINVAL, "%s: the reply has no %s", where, key);
    json_decref(reply);
    return rc;
}

mr_code mr_matrix_create_room(mr_matrix *m, json_t *body, char room_id[MR_MATRIX_ID_SIZE],
                              mr_err *err)
{
    /* Not retried on a transport failure: the first attempt may have made the room. */
    return run_id(m, "createRoom", "POST", mx_path(MX_CLIENT "/createRoom"), json_incref(body),
                  true, false, "room_id", room_id, err);
}

mr_code mr_matrix_join(mr_matrix *m, const char *room, char room_id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    return run_id(m, "join", "POST", mx_path(MX_CLIENT "/join/%s", room), json_object(), true,
                  true, "room_id", room_id, err);
}

mr_code mr_matrix_invite(mr_matrix *m, const char *room_id, const char *user_id, mr_err *err)
{
    return run(m, "invite", "POST", mx_path(MX_CLIENT "/rooms/%s/invite", room_id),
               json_pack("{s:s}", "user_id", user_id), true, true, NULL, err);
}

mr_code mr_matrix_leave(mr_matrix *m, const char *room_id, mr_err *err)
{
    return run(m, "leave", "POST", mx_path(MX_CLIENT "/rooms/%s/leave", room_id), json_object(),
               true, true, NULL, err);
}

mr_code mr_matrix_joined_members(mr_matrix *m, const char *room_id, json_t **joined, mr_err *err)
{
    json_t *reply = NULL;
    *joined = NULL;
    mr_code rc = run(m, "joined_members", "GET", mx_path(MX_CLIENT "/rooms/%s/joined_members", room_id),
                     NULL, false, true, &reply, err);
    if (rc == MR_OK) {
        json_t *j = json_object_get(reply, "joined");
        if (json_is_object(j))
            *joined = json_incref(j);
        else
            rc = mr_err_set(err, MR_EINVAL, "joined members of %s: the reply has no joined object",
                            room_id);
    }
    json_decref(reply);
    return rc;
}

mr_code mr_matrix_state_get(mr_matrix *m, const char *room_id, const char *type, const char *key,
                            json_t **content, mr_err *err)
{
    return run(m, "state", "GET", mx_path(MX_CLIENT "/rooms/%s/state/%s/%s", room_id, type, key),
               NULL, false, true, content, err);
}

mr_code mr_matrix_state_put(mr_matrix *m, const char *room_id, const char *type, const char *key,
                            json_t *content, char event_id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    return run_id(m, "state", "PUT", mx_path(MX_CLIENT "/rooms/%s/state/%s/%s", room_id, type, key),
                  json_incref(content), true, true, "event_id", event_id, err);
}

mr_code mr_matrix_send(mr_matrix *m, const char *room_id, const char *type, const char *txn_id,
                       json_t *content, char event_id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    return run_id(m, "send", "PUT", mx_path(MX_CLIENT "/rooms/%s/send/%s/%s", room_id, type, txn_id),
                  json_incref(content), true, true, "event_id", event_id, err);
}

mr_code mr_matrix_redact(mr_matrix *m, const char *room_id, const char *event_id, const char *txn_id,
                         const char *reason, char redaction_id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    json_t *body = reason ? json_pack("{s:s}", "reason", reason) : json_object();
    return run_id(m, "redact", "PUT",
                  mx_path(MX_CLIENT "/rooms/%s/redact/%s/%s", room_id, event_id, txn_id), body,
                  true, true, "event_id", redaction_id, err);
}

mr_code mr_matrix_typing(mr_matrix *m, const char *room_id, bool typing, long timeout_ms,
                         mr_err *err)
{
    json_t *body = typing ? json_pack("{s:b, s:I}", "typing", 1, "timeout", (json_int_t)timeout_ms)
                          : json_pack("{s:b}", "typing", 0);
    return run(m, "typing", "PUT", mx_path(MX_CLIENT "/rooms/%s/typing/%s", room_id, m->user_id),
               body, true, true, NULL, err);
}

mr_code mr_matrix_messages(mr_matrix *m, const char *room_id, const char *from, const char *to,
                           char dir, int limit, json_t **out, mr_err *err)
{
    char d[2] = {dir == 'f' ? 'f' : 'b', '\0'}, lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 10);
    char *base = mx_path(MX_CLIENT "/rooms/%s/messages?dir=%S&limit=%S", room_id, d, lim);
    char *f = from ? mr_matrix_escape(from) : NULL, *t = to ? mr_matrix_escape(to) : NULL;
    char *path = NULL;
    /* Each token only when given: an empty from= or to= is not the same as none. */
    if (base && (f || !from) && (t || !to))
        path = mr_str_printf("%s%s%s%s%s", base, f ? "&from=" : "", f ? f : "", t ? "&to=" : "",
                             t ? t : "");
    free(base);
    free(f);
    free(t);
    return run(m, "messages", "GET", path, NULL, false, true, out, err);
}

/* ---- directory ---- */

mr_code mr_matrix_alias_get(mr_matrix *m, const char *alias, char room_id[MR_MATRIX_ID_SIZE],
                            mr_err *err)
{
    return run_id(m, "alias", "GET", mx_path(MX_CLIENT "/directory/room/%s", alias), NULL, false,
                  true, "room_id", room_id, err);
}

mr_code mr_matrix_alias_put(mr_matrix *m, const char *alias, const char *room_id, mr_err *err)
{
    return run(m, "alias", "PUT", mx_path(MX_CLIENT "/directory/room/%s", alias),
               json_pack("{s:s}", "room_id", room_id), true, true, NULL, err);
}

mr_code mr_matrix_visibility_get(mr_matrix *m, const char *room_id, bool *published, mr_err *err)
{
    json_t *reply = NULL;
    mr_code rc = run(m, "directory_visibility", "GET",
                     mx_path(MX_CLIENT "/directory/list/room/%s", room_id), NULL, false, true,
                     &reply, err);
    const char *v = json_string_value(json_object_get(reply, "visibility"));
    *published = v && strcmp(v, "public") == 0;
    json_decref(reply);
    return rc;
}

mr_code mr_matrix_visibility_put(mr_matrix *m, const char *room_id, bool published, mr_err *err)
{
    return run(m, "directory_visibility", "PUT", mx_path(MX_CLIENT "/directory/list/room/%s", room_id),
               json_pack("{s:s}", "visibility", published ? "public" : "private"), true, true,
               NULL, err);
}

/* ---- end-to-end encryption transport ---- */

mr_code mr_matrix_send_to_device(mr_matrix *m, const char *type, const char *txn_id, json_t *messages,
                                 mr_err *err)
{
    return run(m, "sendToDevice", "PUT", mx_path(MX_CLIENT "/sendToDevice/%s/%s", type, txn_id),
               json_pack("{s:O}", "messages", messages), true, true, NULL, err);
}

static mr_code keys(mr_matrix *m, const char *what, json_t *body, json_t **out, mr_err *err)
{
    char endpoint[32];
    snprintf(endpoint, sizeof endpoint, "keys_%s", what);
    return run(m, endpoint, "POST", mx_path(MX_CLIENT "/keys/%S", what), json_incref(body), true,
               true, out, err);
}

mr_code mr_matrix_keys_upload(mr_matrix *m, json_t *body, json_t **out, mr_err *err)
{
    return keys(m, "upload", body, out, err);
}

mr_code mr_matrix_keys_query(mr_matrix *m, json_t *body, json_t **out, mr_err *err)
{
    return keys(m, "query", body, out, err);
}

mr_code mr_matrix_keys_claim(mr_matrix *m, json_t *body, json_t **out, mr_err *err)
{
    return keys(m, "claim", body, out, err);
}
