/* homeserver.c -- the service's calls to the Matrix homeserver: whoami for browser tokens, and
 * account registration with the registration token through user-interactive auth. */
#include "prov_internal.h"

#include <stdio.h>
#include <string.h>

#include "mindroom/log.h"

#define HS_TIMEOUT_MS 10000L
#define REGISTER_PATH "/_matrix/client/v3/register"
#define TOKEN_STAGE "m.login.registration_token"

static mr_code client_for(prov *p, const char *bearer, mr_http_client **out, mr_err *err)
{
    mr_http_client_opts o = {.base_url = p->s->homeserver, .timeout_ms = HS_TIMEOUT_MS,
                             .bearer_token = bearer, .max_response = 1u << 20};
    return mr_http_client_new(&o, out, err);
}

mr_code hs_whoami(prov *p, const char *token, char *user_id, size_t cap, bool *valid, mr_err *err)
{
    *valid = false;
    mr_http_client *c = NULL;
    mr_code rc = client_for(p, token, &c, err);
    mr_http_result r = {0};
    if (rc == MR_OK)
        rc = mr_http_client_json(c, "GET", "/_matrix/client/v3/account/whoami", NULL, &r, err);
    if (rc == MR_OK && (r.status == 401 || r.status == 403)) {
        /* The homeserver does not know the token: the caller's fault, not a failure. */
    } else if (rc == MR_OK && (rc = mr_http_result_check(&r, err)) == MR_OK) {
        const char *uid = json_string_value(json_object_get(r.json, "user_id"));
        if (!uid || !*uid || strlen(uid) >= cap)
            rc = mr_err_set(err, MR_EIO, "GET %s: the whoami answer has no usable user_id", r.url);
        else {
            snprintf(user_id, cap, "%s", uid);
            *valid = true;
        }
    }
    mr_http_result_clear(&r);
    mr_http_client_free(c);
    return rc;
}

static bool offers_token_stage(const json_t *body)
{
    size_t i, j;
    json_t *flow, *stage;
    json_array_foreach(json_object_get(body, "flows"), i, flow) {
        json_t *stages = json_object_get(flow, "stages");
        /* A flow qualifies only when the token is its one stage: the service has nothing else
         * to offer. */
        if (json_array_size(stages) != 1)
            continue;
        json_array_foreach(stages, j, stage) {
            if (json_is_string(stage) && strcmp(json_string_value(stage), TOKEN_STAGE) == 0)
                return true;
        }
    }
    return false;
}

static bool is_errcode(const mr_http_result *r, const char *errcode)
{
    const char *e = json_string_value(json_object_get(r->json, "errcode"));
    return e && strcmp(e, errcode) == 0;
}

static void escape_path(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *s = (const unsigned char *)in; *s && o + 4 < cap; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            strchr("-._~", *s))
            out[o++] = (char)*s;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", *s);
    }
    out[o] = '\0';
}

/* Display name and logout with the new account's token; failures only cost a default display
 * name or a leftover device, so they are logged and not returned. */
static void finish_account(prov *p, const char *user_id, const char *token, const char *display_name)
{
    mr_err err = {0};
    mr_http_client *c = NULL;
    if (!token || client_for(p, token, &c, &err) != MR_OK) {
        mr_log_warn("provisioning", "no session to finish %s with: %s", user_id, token ? err.msg : "no access token");
        return;
    }
    mr_http_result r = {0};
    if (display_name && *display_name) {
        char path[900], esc[800];
        escape_path(user_id, esc, sizeof esc);
        snprintf(path, sizeof path, "/_matrix/client/v3/profile/%s/displayname", esc);
        json_t *body = json_pack("{s:s}", "displayname", display_name);
        if (mr_http_client_json(c, "PUT", path, body, &r, &err) != MR_OK || mr_http_result_check(&r, &err) != MR_OK)
            mr_log_warn("provisioning", "display name of %s not set: %s", user_id, err.msg);
        json_decref(body);
        mr_http_result_clear(&r);
    }
    /* The service never uses the session registration opened: end it. */
    json_t *empty = json_object();
    if (mr_http_client_json(c, "POST", "/_matrix/client/v3/logout", empty, &r, &err) != MR_OK ||
        mr_http_result_check(&r, &err) != MR_OK)
        mr_log_warn("provisioning", "the registration session of %s was not logged out: %s", user_id, err.msg);
    json_decref(empty);
    mr_http_result_clear(&r);
    mr_http_client_free(c);
}

/* Reads a final answer of /register: created, in use, or an error. *final is false for the 401
 * that opens the user-interactive session. */
static mr_code read_answer(prov *p, const mr_http_result *r, const char *username, const char *display_name,
                           hs_reg *result, char *user_id, size_t cap, bool *final, mr_err *err)
{
    *final = true;
    if (r->status == 400 && is_errcode(r, "M_USER_IN_USE")) {
        *result = HS_REG_IN_USE;
        snprintf(user_id, cap, "@%s:%s", username, p->s->server_name);
        return MR_OK;
    }
    if (r->status == 401 && json_object_get(r->json, "flows") && !json_object_get(r->json, "errcode")) {
        *final = false;
        return MR_OK;
    }
    mr_code rc = mr_http_result_check(r, err);
    if (rc != MR_OK)
        return rc;
    const char *uid = json_string_value(json_object_get(r->json, "user_id"));
    if (!uid || strlen(uid) >= cap)
        return mr_err_set(err, MR_EIO, "POST %s: the registration answer has no usable user_id", r->url);
    snprintf(user_id, cap, "%s", uid);
    *result = HS_REG_CREATED;
    finish_account(p, uid, json_string_value(json_object_get(r->json, "access_token")), display_name);
    return MR_OK;
}

mr_code hs_register(prov *p, const char *username, const char *password, const char *display_name,
                    hs_reg *result, char *user_id, size_t cap, mr_err *err)
{
    mr_http_client *c = NULL;
    mr_code rc = client_for(p, NULL, &c, err);
    if (rc != MR_OK)
        return rc;
    json_t *body = json_pack("{s:s, s:s, s:s}", "username", username, "password", password,
                             "initial_device_display_name", "mindroom_agent");
    mr_http_result r = {0};
    bool final = false;
    /* The first call, without auth, opens the session and lists the flows on offer. */
    rc = body ? mr_http_client_json(c, "POST", REGISTER_PATH, body, &r, err)
              : mr_err_set(err, MR_ENOMEM, "out of memory building the registration request");
    if (rc == MR_OK)
        rc = read_answer(p, &r, username, display_name, result, user_id, cap, &final, err);
    if (rc == MR_OK && !final && !offers_token_stage(r.json))
        rc = mr_err_set(err, MR_EIO, "%s%s offers no " TOKEN_STAGE " flow; enable registration tokens on it",
                        p->s->homeserver, REGISTER_PATH);
    const char *session = final ? NULL : json_string_value(json_object_get(r.json, "session"));
    if (rc == MR_OK && !final && !session)
        rc = mr_err_set(err, MR_EIO, "%s%s opened no user-interactive session (no \"session\" in its 401)",
                        p->s->homeserver, REGISTER_PATH);
    if (rc == MR_OK && !final) {
        json_t *auth = json_pack("{s:s, s:s, s:s}", "type", TOKEN_STAGE, "token", p->s->registration_token,
                                 "session", session);
        mr_http_result_clear(&r);
        rc = auth && json_object_set_new(body, "auth", auth) == 0
                 ? mr_http_client_json(c, "POST", REGISTER_PATH, body, &r, err)
                 : mr_err_set(err, MR_ENOMEM, "out of memory building the registration request");
        if (rc == MR_OK)
            rc = read_answer(p, &r, username, display_name, result, user_id, cap, &final, err);
        if (rc == MR_OK && !final)
            rc = mr_err_set(err, MR_EIO, "%s%s asked for more authentication after the registration token",
                            p->s->homeserver, REGISTER_PATH);
    }
    mr_http_result_clear(&r);
    json_decref(body);
    mr_http_client_free(c);
    return rc;
}
