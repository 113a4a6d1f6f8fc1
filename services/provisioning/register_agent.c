/* register_agent.c -- POST /v1/local-mindroom/register-agent: a paired install registers the
 * Matrix accounts of its agents, only inside its own namespace.
 *
 * Checked in the reference product's order: homeserver (400), username characters (400), client
 * credentials (401, 403 revoked), the per-connection rate limit (429), the body's required fields
 * (422), the namespace (403); then
 * the homeserver registers the account with the registration token: created, or user_in_use for
 * a taken name (the install then logs in with the password it keeps); any other answer is 502. */
#include "prov_internal.h"

#include <string.h>

#include "mindroom/log.h"

#define PREFIX "mindroom_"
#define LOCALPART_MAX 200
#define DISPLAY_NAME_MAX 256

bool agent_username_charset_ok(const char *username)
{
    size_t n = strlen(username);
    return n > 0 && n <= LOCALPART_MAX && strspn(username, "-abcdefghijklmnopqrstuvwxyz0123456789._=/+") == n;
}

bool agent_username_in_namespace(const char *username, const char *ns)
{
    size_t n = strlen(username), plen = strlen(PREFIX), nslen = strlen(ns);
    if (n <= plen || strncmp(username, PREFIX, plen) != 0)
        return false;
    const char *entity = username + plen;
    size_t elen = n - plen;
    if (nslen) {
        /* "_<ns>" at the end, and an entity before it. */
        if (elen <= nslen + 1 || strcmp(username + n - nslen, ns) != 0 || username[n - nslen - 1] != '_')
            return false;
        elen -= nslen + 1;
    }
    for (size_t i = 0; i < elen; i++) {
        char c = entity[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* Compares homeserver URLs ignoring trailing slashes. */
static bool same_homeserver(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    while (na > 0 && a[na - 1] == '/')
        na--;
    while (nb > 0 && b[nb - 1] == '/')
        nb--;
    return na == nb && strncmp(a, b, na) == 0;
}

static mr_http_response *auth_failure(conn_auth a)
{
    switch (a) {
    case CONN_AUTH_MISSING:
        return mr_runtime_reply_detail(401,
                                       "Missing local client credentials: send the X-Local-MindRoom-Client-Id and "
                                       "X-Local-MindRoom-Client-Secret headers that `mindroom connect` stored in .env");
    case CONN_AUTH_REVOKED:
        return mr_runtime_reply_detail(403,
                                       "Connection revoked: this install's credentials were revoked; pair it again "
                                       "with a new code (mindroom connect --pair-code ...)");
    default:
        return mr_runtime_reply_detail(401,
                                       "Invalid local client credentials: MINDROOM_LOCAL_CLIENT_ID/SECRET do not match "
                                       "a connection; pair this install again (mindroom connect --pair-code ...)");
    }
}

typedef struct agent_req {
    const char *homeserver, *username, *password, *display_name;
} agent_req;

/* The body's fields; NULL when they are all there, else the 422 naming the first one wrong. */
static mr_http_response *parse(json_t *body, agent_req *a)
{
    json_t *dn = json_object_get(body, "display_name");
    a->homeserver = json_string_value(json_object_get(body, "homeserver"));
    a->username = json_string_value(json_object_get(body, "username"));
    a->password = json_string_value(json_object_get(body, "password"));
    a->display_name = json_string_value(dn);
    if (!a->homeserver || !a->username)
        return mr_runtime_reply_detail(422, "homeserver and username are required strings");
    if (!a->password || !*a->password)
        return mr_runtime_reply_detail(422, "password is a required non-empty string");
    if ((dn && !json_is_null(dn) && !a->display_name) || (a->display_name && strlen(a->display_name) > DISPLAY_NAME_MAX))
        return mr_runtime_reply_detail(422, "display_name must be a string of at most %d bytes", DISPLAY_NAME_MAX);
    return NULL;
}

/* Steps 1-4 (400, 401, 403 revoked, 429), which need no more of the body than homeserver and
 * username where they are given: a caller without credentials learns nothing about the body's
 * shape. NULL when the request may go on, with ns filled. */
static mr_http_response *admit(prov *p, const mr_http_request *req, json_t *body, char *ns)
{
    const char *homeserver = json_string_value(json_object_get(body, "homeserver"));
    const char *username = json_string_value(json_object_get(body, "username"));
    if (homeserver && !same_homeserver(homeserver, p->s->homeserver))
        return mr_runtime_reply_detail(400,
                                       "Homeserver mismatch: this service registers accounts on %s only, not on '%s'; "
                                       "set MATRIX_HOMESERVER of the local install to %s",
                                       p->s->homeserver, homeserver, p->s->homeserver);
    if (username && !agent_username_charset_ok(username))
        return mr_runtime_reply_detail(400,
                                       "Invalid username '%s': use 1 to %d of a-z, 0-9 and - . _ = / + (lower case)",
                                       username, LOCALPART_MAX);
    const char *id = mr_http_request_header(req, "X-Local-MindRoom-Client-Id");
    conn_auth auth;
    mr_err err = {0};
    if (conn_authenticate(p, id, mr_http_request_header(req, "X-Local-MindRoom-Client-Secret"), &auth, ns, &err) != MR_OK)
        return api_store_failure(&err);
    if (auth != CONN_AUTH_OK)
        return auth_failure(auth);
    return api_rate_limit(p, &rate_register_agent, id);
}

mr_http_response *agent_register(prov *p, const mr_http_request *req)
{
    json_t *body = req->body_len ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
    agent_req a;
    char ns[PAIR_NAMESPACE_LEN + 1] = "";
    mr_http_response *reply = admit(p, req, body, ns);
    if (!reply && !json_is_object(body)) {
        json_decref(body);
        body = api_json_body(req, &reply);
    }
    if (!reply)
        reply = parse(body, &a);
    if (!reply && !agent_username_in_namespace(a.username, ns))
        reply = mr_runtime_reply_detail(403,
                                        "Requested username is outside this local connection namespace: '%s' must be "
                                        "mindroom_<entity>_%s (entity: a-z, 0-9, _); set MINDROOM_NAMESPACE=%s locally",
                                        a.username, ns, ns);
    if (reply) {
        api_count(p, "provisioning_register_agent_total", "result", "rejected");
        json_decref(body);
        return reply;
    }
    hs_reg result;
    char user_id[300];
    mr_err err = {0};
    const char *client = mr_http_request_header(req, "X-Local-MindRoom-Client-Id");
    if (hs_register(p, a.username, a.password, a.display_name, &result, user_id, sizeof user_id, &err) != MR_OK) {
        mr_log_warn("provisioning", "register-agent %s for connection %s failed: %s", a.username, client, err.msg);
        api_count(p, "provisioning_register_agent_total", "result", "failed");
        reply = mr_runtime_reply_detail(502, "Matrix registration failed: %s", err.msg);
    } else {
        const char *status = result == HS_REG_CREATED ? "created" : "user_in_use";
        mr_log_info("provisioning", "register-agent %s for connection %s: %s", user_id, client, status);
        api_count(p, "provisioning_register_agent_total", "result", status);
        reply = mr_http_reply_json(200, json_pack("{s:s, s:s}", "status", status, "user_id", user_id));
    }
    json_decref(body);
    return reply;
}
