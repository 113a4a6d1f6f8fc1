/* account.c -- Matrix accounts: versions, registration (user-interactive stages, Synapse's
 * shared-secret admin API, application services), login, whoami, logout and display names. */
#include "matrix_internal.h"
#include "mindroom/json.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UIA_MAX_ROUNDS 8
#define NONCE_MAX 4096 /* bytes of an admin registration nonce; Synapse's are 128 */

mr_code mr_matrix_versions(mr_matrix *m, json_t **versions, mr_err *err)
{
    if (versions)
        *versions = NULL;
    json_t *reply = NULL;
    mx_req r = {.endpoint = "versions", .method = "GET", .path = "/_matrix/client/versions",
                .retry = true, .anonymous = true};
    mr_code rc = mx_call(m, &r, &reply, err);
    if (rc != MR_OK)
        return rc;
    json_t *list = json_object_get(reply, "versions");
    if (!json_is_array(list)) {
        json_decref(reply);
        return mr_err_set(err, MR_EINVAL, "GET /_matrix/client/versions: the reply has no "
                          "versions list; is this a Matrix homeserver?");
    }
    if (versions)
        *versions = json_incref(list);
    json_decref(reply);
    return MR_OK;
}

/* ---- registration ---- */

/* A stage req can complete itself; m.login.dummy is left to the flow (see flow_doable). */
static bool stage_doable(const mr_matrix_register_req *req, const char *stage)
{
    return stage && strcmp(stage, "m.login.registration_token") == 0 && req->registration_token;
}

/* Every stage of the flow is one req can do. m.login.dummy needs nothing, so it fits beside a
 * stage req completes (Synapse puts it after the token stage when a token is required); a flow
 * of dummy alone is open registration, taken only when req allows it. */
static bool flow_doable(const mr_matrix_register_req *req, json_t *stages)
{
    bool real = false;
    size_t k;
    json_t *stage;
    json_array_foreach(stages, k, stage) {
        const char *s = json_string_value(stage);
        if (stage_doable(req, s))
            real = true;
        else if (!s || strcmp(s, "m.login.dummy") != 0)
            return false;
    }
    return json_array_size(stages) > 0 && (real || req->allow_dummy);
}

/* The first stage still to do of the first flow req can complete, following the stages the
 * server lists as completed; NULL when no flow fits. */
static const char *next_stage(const mr_matrix_register_req *req, json_t *challenge)
{
    json_t *completed = json_object_get(challenge, "completed");
    size_t i, k;
    json_t *flow, *stage;
    json_array_foreach(json_object_get(challenge, "flows"), i, flow) {
        json_t *stages = json_object_get(flow, "stages");
        if (!flow_doable(req, stages))
            continue;
        json_array_foreach(stages, k, stage)
            if (!mr_json_array_has(completed, json_string_value(stage)))
                return json_string_value(stage);
    }
    return NULL;
}

static void flows_text(json_t *challenge, char *out, size_t cap)
{
    size_t i, k, used = 0;
    json_t *flow, *stage;
    out[0] = '\0';
    json_array_foreach(json_object_get(challenge, "flows"), i, flow) {
        used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "%s[", i ? ", " : "");
        json_array_foreach(json_object_get(flow, "stages"), k, stage)
            used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "%s%s", k ? ", " : "",
                                     json_string_value(stage) ? json_string_value(stage) : "?");
        used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "]");
    }
}

static json_t *register_body(const mr_matrix_register_req *req)
{
    return json_pack("{s:s, s:s*, s:s*, s:s*, s:b, s:s*}", "username", req->username, "password",
                     req->password, "device_id", req->device_id, "initial_device_display_name",
                     req->device_display_name, "inhibit_login",
                     req->inhibit_login || req->appservice_token, "type",
                     req->appservice_token ? "m.login.application_service" : NULL);
}

/* The outcome of a registration reply: the user ID, and the session unless inhibited. */
static mr_code register_done(mr_matrix *m, const mr_matrix_register_req *req, json_t *reply,
                             char user_id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    char uid[MR_MATRIX_ID_SIZE];
    if (!mx_copy_str(reply, "user_id", uid, sizeof uid))
        return mr_err_set(err, MR_EINVAL, "registering %s: the reply has no user_id", req->username);
    if (user_id)
        memcpy(user_id, uid, sizeof uid);
    if (req->inhibit_login || req->appservice_token)
        return MR_OK;
    char what[300];
    snprintf(what, sizeof what, "registering %s", req->username);
    return mx_take_session(m, reply, what, err);
}

/* M_USER_IN_USE comes back as a 400; callers branch on it, so it gets its own code. */
static mr_code register_failed(mr_matrix *m, mr_code rc, mr_err *err)
{
    if (mr_matrix_errcode_is(m, "M_USER_IN_USE") && err)
        err->code = rc = MR_EEXISTS;
    return rc;
}

mr_code mr_matrix_register(mr_matrix *m, const mr_matrix_register_req *req,
                           char user_id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    if (!req->username || !*req->username)
        return mr_err_set(err, MR_EINVAL, "registering: no username given");
    json_t *body = register_body(req);
    if (!body)
        return mr_err_set(err, MR_ENOMEM, "out of memory registering %s", req->username);
    mx_req r = {.endpoint = "register", .method = "POST", .path = MX_CLIENT "/register",
                .body = body, .anonymous = true, .bearer = req->appservice_token,
                .error_body = true};
    mr_code rc = MR_OK;
    for (int round = 0;; round++) {
        json_t *reply = NULL;
        rc = mx_call(m, &r, &reply, err);
        if (rc == MR_OK) {
            rc = register_done(m, req, reply, user_id, err);
            json_decref(reply);
            break;
        }
        /* A 401 with flows is the next user-interactive step, anything else the end. */
        if (m->last.status != 401 || !json_is_array(json_object_get(reply, "flows")) ||
            req->appservice_token) {
            json_decref(reply);
            rc = register_failed(m, rc, err);
            break;
        }
        const char *stage = next_stage(req, reply);
        const char *session = json_string_value(json_object_get(reply, "session"));
        if (m->last.errcode[0]) {
            /* The stage we sent was refused (a wrong token): trying again will not help. */
            rc = mr_err_set(err, MR_EAUTH, "registering %s: the homeserver refused the %s stage: "
                            "%s: %s", req->username,
                            json_string_value(json_object_get(json_object_get(body, "auth"), "type")),
                            m->last.errcode, m->last.error);
        } else if (!stage || round >= UIA_MAX_ROUNDS) {
            char flows[256];
            flows_text(reply, flows, sizeof flows);
            rc = mr_err_set(err, MR_EPERM, "registering %s: the homeserver offers the flows %s, "
                            "and none can be completed with %s", req->username, flows,
                            req->registration_token ? "a registration token" :
                            req->allow_dummy ? "open registration" : "no registration token");
        } else {
            bool token = strcmp(stage, "m.login.registration_token") == 0;
            json_t *auth = json_pack("{s:s, s:s*, s:s*}", "type", stage, "session", session,
                                     "token", token ? req->registration_token : NULL);
            rc = json_object_set_new(body, "auth", auth) == 0 ?
                 MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory registering %s", req->username);
        }
        json_decref(reply);
        if (rc != MR_OK)
            break;
    }
    json_decref(body);
    return rc;
}

mr_code mr_matrix_register_flows(mr_matrix *m, json_t **challenge, mr_err *err)
{
    *challenge = NULL;
    json_t *body = json_object(), *reply = NULL;
    if (!body)
        return mr_err_set(err, MR_ENOMEM, "out of memory asking for the registration flows");
    mx_req r = {.endpoint = "register", .method = "POST", .path = MX_CLIENT "/register",
                .body = body, .anonymous = true, .error_body = true};
    mr_code rc = mx_call(m, &r, &reply, err);
    json_decref(body);
    if (rc != MR_OK && m->last.status == 401 && json_is_array(json_object_get(reply, "flows"))) {
        mr_err_clear(err);
        *challenge = reply;
        return MR_OK;
    }
    json_decref(reply);
    /* A 200 to an empty body would be an account made without a name: say so. */
    return rc != MR_OK ? rc : mr_err_set(err, MR_EINVAL, "POST %s/register with no fields registered "
                                         "someone instead of asking for authentication", MX_CLIENT);
}

/* hex(HMAC-SHA1(secret, nonce NUL user NUL password NUL "admin"|"notadmin")), as Synapse
 * checks it. */
static bool admin_mac(const char *secret, const char *nonce, const char *user, const char *password,
                      bool admin, char hex[41])
{
    const char *parts[] = {nonce, user, password, admin ? "admin" : "notadmin"};
    size_t len = 0;
    for (size_t i = 0; i < 4; i++)
        len += strlen(parts[i]) + 1;
    unsigned char *msg = malloc(len);
    if (!msg)
        return false;
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t n = strlen(parts[i]);
        memcpy(msg + off, parts[i], n);
        off += n;
        if (i < 3)
            msg[off++] = '\0';
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    bool ok = HMAC(EVP_sha1(), secret, (int)strlen(secret), msg, off, md, &mdlen) && mdlen == 20;
    for (unsigned i = 0; ok && i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    memset(msg, 0, len);
    free(msg);
    return ok;
}

mr_code mr_matrix_register_shared_secret(mr_matrix *m, const char *shared_secret,
                                         const char *username, const char *password,
                                         const char *displayname, bool admin,
                                         char user_id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    static const char path[] = "/_synapse/admin/v1/register";
    json_t *reply = NULL;
    mx_req get = {.endpoint = "admin_register", .method = "GET", .path = path, .retry = true,
                  .anonymous = true};
    mr_code rc = mx_call(m, &get, &reply, err);
    if (rc != MR_OK)
        return rc;
    /* Synapse's nonce is secrets.token_hex(64), 128 characters; take any length up to a bound. */
    json_t *jnonce = json_object_get(reply, "nonce");
    const char *nonce = json_string_value(jnonce);
    char mac[41];
    json_t *body = NULL;
    if (!nonce || !*nonce || strlen(nonce) != json_string_length(jnonce))
        rc = mr_err_set(err, MR_EINVAL, "GET %s: the reply has no nonce", path);
    else if (json_string_length(jnonce) > NONCE_MAX)
        rc = mr_err_set(err, MR_EINVAL, "GET %s: the nonce is %zu bytes, more than the %d this "
                        "client takes; is this a Synapse admin API?", path,
                        json_string_length(jnonce), NONCE_MAX);
    else if (!admin_mac(shared_secret, nonce, username, password, admin, mac))
        rc = mr_err_set(err, MR_EINTERNAL, "registering %s: computing the HMAC failed", username);
    else if (!(body = json_pack("{s:s, s:s, s:s, s:b, s:s}", "nonce", nonce, "username", username,
                                "password", password, "admin", admin, "mac", mac)))
        rc = mr_err_set(err, MR_ENOMEM, "out of memory registering %s", username);
    json_decref(reply);
    if (rc != MR_OK)
        return rc;
    if (displayname && json_object_set_new(body, "displayname", json_string(displayname)) != 0) {
        json_decref(body);
        return mr_err_set(err, MR_ENOMEM, "out of memory registering %s", username);
    }
    /* A nonce is good for one attempt: a lost reply cannot be retried with it. */
    mx_req post = {.endpoint = "admin_register", .method = "POST", .path = path, .body = body,
                   .anonymous = true};
    rc = mx_call(m, &post, &reply, err);
    json_decref(body);
    if (rc != MR_OK)
        return register_failed(m, rc, err);
    mr_matrix_register_req req = {.username = username};
    rc = register_done(m, &req, reply, user_id, err);
    json_decref(reply);
    return rc;
}

/* ---- login ---- */

static mr_code login(mr_matrix *m, json_t *body, const char *bearer, const char *user,
                     const char *device_id, const char *display, mr_err *err)
{
    if (!body || (device_id && json_object_set_new(body, "device_id", json_string(device_id))) ||
        (display && json_object_set_new(body, "initial_device_display_name", json_string(display)))) {
        json_decref(body);
        return mr_err_set(err, MR_ENOMEM, "out of memory logging in %s", user);
    }
    /* Without a device ID each login makes a new device, so only then is a repeat unsafe. */
    mx_req r = {.endpoint = "login", .method = "POST", .path = MX_CLIENT "/login", .body = body,
                .retry = device_id != NULL, .anonymous = true, .bearer = bearer};
    json_t *reply = NULL;
    mr_code rc = mx_call(m, &r, &reply, err);
    json_decref(body);
    if (rc == MR_OK) {
        char what[300];
        snprintf(what, sizeof what, "logging in %s", user);
        rc = mx_take_session(m, reply, what, err);
    }
    json_decref(reply);
    return rc;
}

mr_code mr_matrix_login_password(mr_matrix *m, const char *user, const char *password,
                                 const char *device_id, const char *device_display_name,
                                 mr_err *err)
{
    json_t *body = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "m.login.password", "identifier",
                             "type", "m.id.user", "user", user, "password", password);
    return login(m, body, NULL, user, device_id, device_display_name, err);
}

mr_code mr_matrix_login_appservice(mr_matrix *m, const char *appservice_token, const char *user_id,
                                   const char *device_id, const char *device_display_name,
                                   mr_err *err)
{
    json_t *body = json_pack("{s:s, s:{s:s, s:s}}", "type", "m.login.application_service",
                             "identifier", "type", "m.id.user", "user", user_id);
    return login(m, body, appservice_token, user_id, device_id, device_display_name, err);
}

mr_code mr_matrix_whoami(mr_matrix *m, char user_id[MR_MATRIX_ID_SIZE],
                         char device_id[MR_MATRIX_ID_SIZE], mr_err *err)
{
    json_t *reply = NULL;
    mx_req r = {.endpoint = "whoami", .method = "GET", .path = MX_CLIENT "/account/whoami",
                .retry = true};
    mr_code rc = mx_call(m, &r, &reply, err);
    if (rc != MR_OK)
        return rc;
    char uid[MR_MATRIX_ID_SIZE], did[MR_MATRIX_ID_SIZE] = "";
    if (!mx_copy_str(reply, "user_id", uid, sizeof uid))
        rc = mr_err_set(err, MR_EINVAL, "GET %s/account/whoami: the reply has no user_id", MX_CLIENT);
    mx_copy_str(reply, "device_id", did, sizeof did);
    json_decref(reply);
    if (rc == MR_OK && user_id)
        memcpy(user_id, uid, sizeof uid);
    if (rc == MR_OK && device_id)
        memcpy(device_id, did, sizeof did);
    return rc;
}

mr_code mr_matrix_logout(mr_matrix *m, mr_err *err)
{
    mx_req r = {.endpoint = "logout", .method = "POST", .path = MX_CLIENT "/logout", .retry = true};
    mr_code rc = mx_call(m, &r, NULL, err);
    if (rc == MR_OK)
        rc = mr_matrix_set_session(m, NULL, NULL, NULL, err);
    return rc;
}

/* ---- profile ---- */

mr_code mr_matrix_displayname_get(mr_matrix *m, const char *user_id, char **name, mr_err *err)
{
    *name = NULL;
    char *path = mx_path(MX_CLIENT "/profile/%s/displayname", user_id);
    if (!path)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading the profile of %s", user_id);
    json_t *reply = NULL;
    mx_req r = {.endpoint = "profile", .method = "GET", .path = path, .retry = true};
    mr_code rc = mx_call(m, &r, &reply, err);
    free(path);
    const char *v = json_string_value(json_object_get(reply, "displayname"));
    if (rc == MR_OK && v && !(*name = strdup(v)))
        rc = mr_err_set(err, MR_ENOMEM, "out of memory reading the profile of %s", user_id);
    json_decref(reply);
    return rc;
}

mr_code mr_matrix_displayname_put(mr_matrix *m, const char *name, mr_err *err)
{
    char *path = mx_path(MX_CLIENT "/profile/%s/displayname", m->user_id);
    json_t *body = json_pack("{s:s}", "displayname", name);
    mr_code rc;
    if (!path || !body) {
        rc = mr_err_set(err, MR_ENOMEM, "out of memory setting the display name of %s", m->user_id);
    } else {
        mx_req r = {.endpoint = "profile", .method = "PUT", .path = path, .body = body, .retry = true};
        rc = mx_call(m, &r, NULL, err);
    }
    free(path);
    json_decref(body);
    return rc;
}
