/* api_pair.c -- the pairing routes: pair/start, pair/status, pair/complete, and the owner's
 * connections (list, revoke). */
#include "prov_internal.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "mindroom/log.h"

#define CLIENT_NAME_MAX 120
#define FINGERPRINT_MAX 512
#define NEW_CODE_HINT "generate a new one in the chat app (Settings -> Local MindRoom)"

/* The caller's user ID after browser auth and the per-user limit of rule; NULL when allowed. */
static mr_http_response *browser_gate(prov *p, const mr_http_request *req, const rate_rule *rule, char *user,
                                      size_t cap)
{
    mr_http_response *r = api_browser_user(p, req, user, cap);
    return r ? r : api_rate_limit(p, rule, user);
}

typedef mr_http_response *(*browser_route)(prov *p, const mr_http_request *req, const char *user);

/* route for the browser's user, once browser_gate let the request through. */
static mr_http_response *gated(prov *p, const mr_http_request *req, const rate_rule *rule, browser_route route)
{
    char user[256];
    mr_http_response *r = browser_gate(p, req, rule, user, sizeof user);
    return r ? r : route(p, req, user);
}

static mr_http_response *pair_start_as(prov *p, const mr_http_request *req, const char *user)
{
    (void)req;
    pair_started st;
    mr_err err = {0};
    if (pairing_start(p, user, &st, &err) != MR_OK)
        return api_store_failure(&err);
    char expires[PAIR_TIME_LEN + 1];
    pair_time_format(st.expires_at, expires);
    mr_log_info("provisioning", "pair session %s started for %s, valid until %s", st.session_id, user, expires);
    api_count(p, "provisioning_pair_starts_total", NULL, NULL);
    json_t *body = json_pack("{s:s, s:s, s:s, s:I}", "pair_code", st.code, "pair_session_id", st.session_id,
                             "expires_at", expires, "poll_interval_seconds", (json_int_t)p->s->poll_interval_s);
    mr_http_response *r = mr_http_reply_json(200, body);
    OPENSSL_cleanse(st.code, sizeof st.code);
    return r;
}

mr_http_response *api_pair_start(prov *p, const mr_http_request *req)
{
    return gated(p, req, &rate_pair_start, pair_start_as);
}

static mr_http_response *pair_status_as(prov *p, const mr_http_request *req, const char *user)
{
    const char *sid = mr_http_request_header(req, "X-Local-MindRoom-Pair-Session-Id");
    if (!sid || !*sid)
        return mr_runtime_reply_detail(400, "Missing X-Local-MindRoom-Pair-Session-Id header: send the pair_session_id "
                                            "that pair/start returned");
    pair_view v;
    mr_err err = {0};
    mr_code rc = pair_token_shape_ok(sid) ? pairing_status(p, user, sid, &v, &err) : MR_ENOTFOUND;
    if (rc == MR_ENOTFOUND)
        return mr_runtime_reply_detail(404, "Pair session not found: it is unknown, someone else's, or over a day old; "
                                            "start a new pairing");
    if (rc != MR_OK)
        return api_store_failure(&err);
    char expires[PAIR_TIME_LEN + 1];
    pair_time_format(v.expires_at, expires);
    if (v.state != PAIR_CONNECTED)
        return mr_http_reply_json(200, json_pack("{s:s, s:s}", "status", v.state == PAIR_PENDING ? "pending" : "expired",
                                                 "expires_at", expires));
    json_t *conn = NULL;
    rc = conn_describe(p, v.connection, &conn, &err);
    if (rc == MR_ENOTFOUND) {
        conn = json_null();
    } else if (rc != MR_OK) {
        return api_store_failure(&err);
    }
    return mr_http_reply_json(200, json_pack("{s:s, s:o}", "status", "connected", "connection", conn));
}

mr_http_response *api_pair_status(prov *p, const mr_http_request *req)
{
    return gated(p, req, &rate_pair_status, pair_status_as);
}

/* Characters (not bytes) of a UTF-8 string: the limits are the reference product's. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static mr_http_response *text_field(json_t *body, const char *name, size_t max, const char **out)
{
    *out = json_string_value(json_object_get(body, name));
    size_t n = *out ? utf8_chars(*out) : 0;
    if (n < 1 || n > max)
        return mr_runtime_reply_detail(422, "%s must be a string of 1 to %zu characters", name, max);
    return NULL;
}

static mr_http_response *completed(prov *p, pair_done *d)
{
    json_t *conn = NULL;
    mr_err err = {0};
    if (conn_describe(p, d->conn.id, &conn, &err) != MR_OK)
        return api_store_failure(&err);
    mr_log_info("provisioning", "connection %s created for %s with namespace %s", d->conn.id, d->owner, d->conn.ns);
    return mr_http_reply_json(200, json_pack("{s:o, s:s, s:s, s:s, s:s}", "connection", conn, "client_id",
                                             d->conn.id, "client_secret", d->conn.secret, "namespace", d->conn.ns,
                                             "owner_user_id", d->owner));
}

mr_http_response *api_pair_complete(prov *p, const mr_http_request *req)
{
    char ip[64], subject[80];
    api_client_ip(p->s, req->client_ip, mr_http_request_header(req, "X-Forwarded-For"), ip, sizeof ip);
    rate_address_subject(ip, subject, sizeof subject);
    /* Counted before anything else: guessing codes is what this limit is for. */
    mr_http_response *r = api_rate_limit(p, &rate_pair_complete, subject);
    if (r)
        return r;
    json_t *body = api_json_body(req, &r);
    if (!body)
        return r;
    char code[PAIR_CODE_LEN + 1];
    const char *raw_code = json_string_value(json_object_get(body, "pair_code"));
    const char *name = NULL, *fingerprint = NULL;
    if (!raw_code || !pair_code_normalize(raw_code, code))
        r = mr_runtime_reply_detail(422, "pair_code must be a string in the format ABCD-EFGH");
    if (!r)
        r = text_field(body, "client_name", CLIENT_NAME_MAX, &name);
    if (!r)
        r = text_field(body, "client_pubkey_or_fingerprint", FINGERPRINT_MAX, &fingerprint);
    if (r) {
        json_decref(body);
        return r;
    }
    pair_outcome outcome;
    pair_done done;
    mr_err err = {0};
    static const char *const results[] = {"connected", "not_found", "expired", "used"};
    if (pairing_complete(p, code, name, fingerprint, &outcome, &done, &err) != MR_OK) {
        r = api_store_failure(&err);
    } else {
        api_count(p, "provisioning_pair_completes_total", "result", results[outcome]);
        switch (outcome) {
        case PAIR_DONE: r = completed(p, &done); break;
        case PAIR_NOT_FOUND:
            r = mr_runtime_reply_detail(404, "Pair code not found: check it for typos, or " NEW_CODE_HINT);
            break;
        case PAIR_GONE:
            r = mr_runtime_reply_detail(
                410,
                "Pair code expired: codes are valid for %ld s and only the newest one counts; " NEW_CODE_HINT
                " and run connect again",
                p->s->pair_ttl_s);
            break;
        case PAIR_USED:
            r = mr_runtime_reply_detail(409, "Pair code already used: each code pairs one install; " NEW_CODE_HINT);
            break;
        }
    }
    OPENSSL_cleanse(&done, sizeof done);
    OPENSSL_cleanse(code, sizeof code);
    json_decref(body);
    return r;
}

static mr_http_response *connections_list_as(prov *p, const mr_http_request *req, const char *user)
{
    (void)req;
    json_t *list = NULL;
    mr_err err = {0};
    if (conn_list(p, user, &list, &err) != MR_OK)
        return api_store_failure(&err);
    return mr_http_reply_json(200, list);
}

mr_http_response *api_connections_list(prov *p, const mr_http_request *req)
{
    return gated(p, req, &rate_connections_list, connections_list_as);
}

mr_http_response *api_connections_revoke(prov *p, const mr_http_request *req, const char *id)
{
    char user[256];
    mr_http_response *r = browser_gate(p, req, &rate_connections_revoke, user, sizeof user);
    if (r)
        return r;
    bool found = false;
    mr_err err = {0};
    if (pair_token_shape_ok(id) && conn_revoke(p, user, id, &found, &err) != MR_OK)
        return api_store_failure(&err);
    if (!found)
        return mr_runtime_reply_detail(404,
                                       "Connection not found: no connection %s of yours; list them with GET "
                                       "/v1/local-mindroom/connections",
                                       id);
    mr_log_info("provisioning", "connection %s revoked by %s", id, user);
    api_count(p, "provisioning_revocations_total", NULL, NULL);
    return mr_http_reply_json(200, json_pack("{s:b, s:s}", "revoked", 1, "connection_id", id));
}
