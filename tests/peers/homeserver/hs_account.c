/* hs_account.c -- the test homeserver's accounts: versions, registration (user-interactive,
 * Synapse's shared-secret admin API and application services), login, logout, whoami and
 * profiles. */
#include "hs.h"
#include "mindroom/json.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mr_http_response *hs_versions(hs_call *c)
{
    (void)c;
    return hs_ok(json_pack("{s:[s,s,s,s,s,s,s,s], s:{}}", "versions", "r0.6.1", "v1.1", "v1.2",
                           "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "unstable_features"));
}

/* {user_id, access_token, device_id, home_server}: a new device for u, or just the user when
 * login is inhibited. */
static mr_http_response *logged_in(hs_call *c, hs_user *u, const char *device_id,
                                   const char *display_name, bool inhibit)
{
    if (inhibit)
        return hs_ok(json_pack("{s:s, s:s}", "user_id", u->user_id, "home_server",
                               c->h->opts.server_name));
    hs_device *d = NULL;
    for (size_t i = 0; device_id && i < u->ndevices; i++)
        if (strcmp(u->devices[i]->device_id, device_id) == 0)
            d = u->devices[i];
    /* A known device is kept (keys and queue) and only gets a new token. */
    if (d ? !hs_device_retoken(d) : !(d = hs_device_create(u, device_id, display_name)))
        return NULL;
    c->h->tokens_gen++;
    return hs_ok(json_pack("{s:s, s:s, s:s, s:s}", "user_id", u->user_id, "access_token",
                           d->token, "device_id", d->device_id, "home_server",
                           c->h->opts.server_name));
}

/* ---- registration ---- */

/* Synapse's RegistrationHandler.check_username: its checks, texts and codes, in its order. */
static mr_http_response *check_new_username(hs *h, const char *localpart)
{
    if (!hs_localpart_chars_valid(localpart))
        return hs_error(400, "M_INVALID_USERNAME",
                        "User ID can only contain characters a-z, 0-9, or '=_-./+'");
    if (!*localpart)
        return hs_error(400, "M_INVALID_USERNAME", "User ID cannot be empty");
    if (localpart[0] == '_')
        return hs_error(400, "M_INVALID_USERNAME", "User ID may not begin with _");
    char uid[300];
    if (snprintf(uid, sizeof uid, "@%s:%s", localpart, h->opts.server_name) > 255)
        return hs_error(400, "M_INVALID_USERNAME", "User ID may not be longer than 255 characters");
    if (hs_user_find(h, uid))
        return hs_error(400, "M_USER_IN_USE", "User ID already taken.");
    return NULL;
}

/* Synapse lowercases the localpart of a user-interactive or admin registration. */
static void lowercase(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Synapse's _calculate_registration_flows with no 3PIDs, captcha or terms: [dummy]; with
 * registration_requires_token the token stage goes before every flow; our open registration
 * plus a token is its enable_registration_token_3pid_bypass, a flow of the token alone. */
static json_t *registration_flows(const hs_opts *o)
{
    if (o->registration_token && o->open_registration)
        return json_pack("[{s:[s]}, {s:[s]}]", "stages", "m.login.dummy", "stages",
                         "m.login.registration_token");
    if (o->registration_token)
        return json_pack("[{s:[s, s]}]", "stages", "m.login.registration_token", "m.login.dummy");
    return json_pack("[{s:[s]}]", "stages", "m.login.dummy");
}

/* The 401 of Synapse's InteractiveAuthIncompleteError: flows, params and session; once auth
 * was given also the stages completed and the failed stage's errcode and error. */
static mr_http_response *uia_challenge(hs *h, const char *session, json_t *completed,
                                       const char *errcode, const char *error)
{
    json_t *body = json_pack("{s:o, s:{}, s:s}", "flows", registration_flows(&h->opts), "params",
                             "session", session);
    if (body && completed)
        json_object_set_new(body, "completed", json_deep_copy(completed));
    if (body && errcode) {
        json_object_set_new(body, "errcode", json_string(errcode));
        json_object_set_new(body, "error", json_string(error));
    }
    return mr_http_reply_json(401, body);
}

/* Synapse's registration_token_is_valid: the token exists, its expiry_time has not passed and
 * pending plus completed registrations are under uses_allowed. */
static bool token_valid(const hs *h, const char *token)
{
    if (!h->opts.registration_token || strcmp(token, h->opts.registration_token) != 0)
        return false;
    if (h->opts.registration_token_expired)
        return false;
    return !h->opts.registration_token_uses ||
           h->token_pending + h->token_completed < h->opts.registration_token_uses;
}

/* Synapse's RegistrationTokenAuthChecker: NULL with the stage passed (a valid token counts as
 * pending from then on and is remembered in the session), else the error text, errcode in
 * *errcode. */
static const char *token_stage(hs *h, json_t *session, json_t *auth, const char **errcode)
{
    json_t *token = json_object_get(auth, "token");
    *errcode = "M_MISSING_PARAM";
    if (!token)
        return "Missing registration token";
    *errcode = "M_INVALID_PARAM";
    if (!json_is_string(token))
        return "Registration token must be a string";
    *errcode = "M_MISSING_PARAM";
    if (!json_object_get(auth, "session"))
        return "Missing UIA session";
    *errcode = "M_INVALID_PARAM";
    const char *stored = json_string_value(json_object_get(session, "token"));
    if (stored)
        return strcmp(stored, json_string_value(token)) == 0 ? NULL :
               "Registration token has changed";
    *errcode = "M_UNAUTHORIZED";
    if (!token_valid(h, json_string_value(token)))
        return "Invalid registration token";
    h->token_pending++;
    json_object_set(session, "token", token);
    return NULL;
}

static bool flow_done(json_t *flow, json_t *completed)
{
    size_t i;
    json_t *stage;
    json_array_foreach(json_object_get(flow, "stages"), i, stage)
        if (!mr_json_array_has(completed, json_string_value(stage)))
            return false;
    return true;
}

/* Synapse's AuthHandler.check_ui_auth for /register: NULL when a flow is complete, with its
 * session ID in sid; otherwise the reply to send. */
static mr_http_response *uia_check(hs *h, json_t *auth, char sid[25])
{
    const char *given = json_string_value(json_object_get(auth, "session"));
    json_t *session;
    if (given) {
        if (!(session = json_object_get(h->uia, given)))
            return hs_error(400, "M_UNKNOWN", "Unknown session ID: %s", given);
        snprintf(sid, 25, "%s", given);
    } else {
        hs_random_id(sid, 24, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        session = json_pack("{s:[]}", "completed");
        if (!session || json_object_set_new(h->uia, sid, session) != 0)
            return NULL;
    }
    if (!auth || !json_object_size(auth))
        return uia_challenge(h, sid, NULL, NULL, NULL);
    json_t *completed = json_object_get(session, "completed");
    const char *type = json_string_value(json_object_get(auth, "type"));
    const char *errcode = NULL, *error = NULL;
    bool passed = false;
    if (type && strcmp(type, "m.login.dummy") == 0) {
        passed = true; /* Synapse's DummyAuthChecker passes whatever flows are on offer */
    } else if (type && strcmp(type, "m.login.registration_token") == 0 && h->opts.registration_token) {
        passed = !(error = token_stage(h, session, auth, &errcode));
    } else if (type) {
        /* No checker takes it, so Synapse tries it as a password login, which knows no more. */
        return hs_error(400, "M_UNKNOWN", "Unknown login type %s", type);
    }
    if (passed && !mr_json_array_has(completed, type) && json_array_append_new(completed, json_string(type)) != 0)
        return NULL;
    size_t i;
    json_t *flow, *flows = registration_flows(&h->opts);
    bool done = false;
    json_array_foreach(flows, i, flow)
        done = done || flow_done(flow, completed);
    json_decref(flows);
    return done ? NULL : uia_challenge(h, sid, completed, error ? errcode : NULL, error);
}

/* Synapse's Ratelimiter.can_do_action with rc_registration's defaults (0.17 a second, burst 3),
 * under one key since every caller here is on loopback: NULL when allowed (counted when
 * record), else its 429. */
static mr_http_response *registration_limited(hs *h, bool record)
{
    static const double rate_hz = 0.17, burst = 3;
    if (!h->opts.registration_rate_limit)
        return NULL;
    long long now = hs_now_ms(h);
    double count = h->reg_count;
    long long start = h->reg_start_ms;
    double performed = count - (double)(now - start) / 1000.0 * rate_hz;
    if (performed < 0) {
        performed = count = 0;
        start = now;
    }
    if (performed <= burst - 1) {
        if (record) {
            h->reg_count = count + 1;
            h->reg_start_ms = start;
        }
        return NULL;
    }
    double allowed_at_ms = (double)start + (count - burst + 1) / rate_hz * 1000.0;
    return hs_limit_exceeded(allowed_at_ms > (double)now ? (long long)(allowed_at_ms - (double)now) : 0);
}

/* ---- application services: registration and login under the appservice token ---- */

/* NULL when the request carries the configured appservice token, else the 401 Synapse gives:
 * M_MISSING_TOKEN without one, M_UNKNOWN_TOKEN for any other (its login's get_user_by_req has
 * its own words for a user's token; registration looks the token up among services only). */
static mr_http_response *appservice_check(hs_call *c, bool login)
{
    const char *token = hs_request_token(c->req);
    if (!token || !*token)
        return hs_error(401, "M_MISSING_TOKEN", "Missing access token");
    if (c->h->opts.appservice_token && strcmp(token, c->h->opts.appservice_token) == 0)
        return NULL;
    hs_user *u;
    hs_device *d;
    if (login && hs_token_find(c->h, token, &u, &d))
        return hs_unknown_token("This login method is only valid for application services");
    return hs_unknown_token(NULL);
}

/* As Synapse's RegisterRestServlet for m.login.application_service: the token must be there
 * (400 otherwise), any username goes ("carte blanche" for bridges), a taken one is the store's
 * 400 M_USER_IN_USE. */
static mr_http_response *appservice_register(hs_call *c)
{
    if (!hs_request_token(c->req))
        return hs_error(400, "M_UNKNOWN", "Appservice token must be provided when using a type of "
                        "m.login.application_service");
    const char *username = json_string_value(json_object_get(c->body, "username"));
    if (!username)
        return hs_error(400, "M_UNKNOWN", "Desired Username is missing or not a string");
    mr_http_response *e = appservice_check(c, false);
    if (e)
        return e;
    char uid[300];
    snprintf(uid, sizeof uid, "@%s:%s", username, c->h->opts.server_name);
    if (hs_user_find(c->h, uid))
        return hs_error(400, "M_USER_IN_USE", "User ID already taken.");
    /* Application-service users have no password: they log in through the service. */
    hs_user *u = hs_user_create(c->h, username, NULL);
    if (!u)
        return NULL;
    return logged_in(c, u, json_string_value(json_object_get(c->body, "device_id")), NULL,
                     json_is_true(json_object_get(c->body, "inhibit_login")));
}

/* Synapse (1.65 as now) logs an appservice in as any user in its namespace without checking
 * that the user exists: the reply has a token, which every request then refuses with 401
 * M_UNKNOWN_TOKEN until the user is registered (see adopt_orphan_tokens). */
static mr_http_response *orphan_login(hs_call *c, const char *user_id, const char *device_id,
                                      const char *display)
{
    char id[11], token[41];
    if (!device_id || !*device_id) {
        hs_random_id(id, 10, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        device_id = id;
    }
    /* One device, one token: a repeated login of the same device replaces the earlier one. */
    const char *key;
    json_t *o, *tmp;
    json_object_foreach_safe(c->h->orphan_tokens, tmp, key, o)
        if (strcmp(json_string_value(json_object_get(o, "user_id")), user_id) == 0 &&
            strcmp(json_string_value(json_object_get(o, "device_id")), device_id) == 0)
            json_object_del(c->h->orphan_tokens, key);
    hs_token_new(token);
    json_t *entry = json_pack("{s:s, s:s, s:s?}", "user_id", user_id, "device_id", device_id,
                              "display_name", display);
    if (!entry || json_object_set_new(c->h->orphan_tokens, token, entry) != 0)
        return NULL;
    return hs_ok(json_pack("{s:s, s:s, s:s, s:s}", "user_id", user_id, "access_token", token,
                           "device_id", device_id, "home_server", c->h->opts.server_name));
}

/* Synapse's RegisterRestServlet.on_POST, for what it answers without 3PIDs or guests. */
mr_http_response *hs_register(hs_call *c)
{
    hs *h = c->h;
    mr_http_response *e;
    /* Checked, not counted: only a registration that completes counts. */
    if ((e = registration_limited(h, false)))
        return e;
    const char *kind = mr_http_request_query(c->req, "kind");
    if (kind && strcmp(kind, "guest") == 0)
        return hs_error(403, "M_UNKNOWN", "Guest access is disabled");
    if (kind && strcmp(kind, "user") != 0)
        return hs_error(400, "M_UNRECOGNIZED", "Do not understand membership kind: %s", kind);
    json_t *jname = json_object_get(c->body, "username");
    if (jname && (!json_is_string(jname) || strlen(json_string_value(jname)) > 512))
        return hs_error(400, "M_UNKNOWN", "Invalid username");
    const char *type = json_string_value(json_object_get(c->body, "type"));
    if (type && strcmp(type, "m.login.application_service") == 0)
        return appservice_register(c);
    if (hs_request_token(c->req))
        return hs_error(400, "M_UNKNOWN", "An access token should not be provided on requests to "
                        "/register (except if type is m.login.application_service)");
    if (!h->opts.registration_token && !h->opts.open_registration)
        return hs_error(403, "M_FORBIDDEN", "Registration has been disabled");
    const char *password, *device_id, *display;
    json_t *auth;
    if ((e = hs_field_str(c->body, "password", false, &password)) ||
        (e = hs_field_str(c->body, "device_id", false, &device_id)) ||
        (e = hs_field_str(c->body, "initial_device_display_name", false, &display)) ||
        (e = hs_field_obj(c->body, "auth", false, &auth)))
        return e;
    char username[513];
    snprintf(username, sizeof username, "%s", jname ? json_string_value(jname) : "");
    lowercase(username);
    /* Like Synapse, a taken or invalid name fails before any authentication stage. */
    if (jname && (e = check_new_username(h, username)))
        return e;
    char sid[25];
    if ((e = uia_check(h, auth, sid)))
        return e;
    if (!jname)
        hs_random_id(username, 10, "0123456789");
    /* Synapse checks the name again: someone may have taken it during the stages. */
    if ((e = check_new_username(h, username)) || (e = registration_limited(h, true)))
        return e;
    hs_user *u = hs_user_create(h, username, password);
    if (!u)
        return NULL;
    /* Synapse's use_registration_token: the pending use is now a completed one. */
    if (json_object_get(json_object_get(h->uia, sid), "token")) {
        h->token_pending--;
        h->token_completed++;
    }
    json_object_del(h->uia, sid);
    return logged_in(c, u, device_id, display, json_is_true(json_object_get(c->body, "inhibit_login")));
}

/* Synapse's RegistrationTokenValidityRestServlet: 403 when registration is disabled. */
mr_http_response *hs_register_token_validity(hs_call *c)
{
    if (!c->h->opts.registration_token && !c->h->opts.open_registration)
        return hs_error(403, "M_FORBIDDEN", "Registration has been disabled");
    const char *token = mr_http_request_query(c->req, "token");
    if (!token)
        return hs_error(400, "M_MISSING_PARAM", "Missing string query parameter token");
    return hs_ok(json_pack("{s:b}", "valid", token_valid(c->h, token)));
}

/* ---- Synapse admin registration: nonce, then HMAC-SHA1 over the fields ---- */

/* Synapse's UserRegisterServlet._clear_old_nonces: a nonce lasts NONCE_TIMEOUT. */
static void clear_old_nonces(hs *h)
{
    long long now = hs_now_ms(h);
    const char *nonce;
    json_t *made, *tmp;
    json_object_foreach_safe(h->nonces, tmp, nonce, made)
        if (now - json_integer_value(made) > h->opts.nonce_ttl_ms)
            json_object_del(h->nonces, nonce);
}

/* As Synapse: secrets.token_hex(64), 128 hex characters, handed out even when shared-secret
 * registration is off (only the POST checks). */
mr_http_response *hs_admin_nonce(hs_call *c)
{
    clear_old_nonces(c->h);
    char nonce[129];
    hs_random_id(nonce, 128, "0123456789abcdef");
    if (json_object_set_new(c->h->nonces, nonce, json_integer(hs_now_ms(c->h))) != 0)
        return NULL;
    return hs_ok(json_pack("{s:s}", "nonce", nonce));
}

/* hex(HMAC-SHA1(secret, nonce NUL user NUL password NUL admin|notadmin [NUL user_type])) */
static void admin_mac(const char *secret, const char *nonce, const char *user,
                      const char *password, bool admin, const char *user_type, char hex[41])
{
    const char *parts[] = {nonce, user, password, admin ? "admin" : "notadmin", user_type};
    size_t nparts = user_type ? 5 : 4;
    size_t len = 0;
    for (size_t i = 0; i < nparts; i++)
        len += strlen(parts[i]) + 1;
    char *msg = malloc(len);
    size_t off = 0;
    for (size_t i = 0; msg && i < nparts; i++) {
        size_t n = strlen(parts[i]);
        memcpy(msg + off, parts[i], n);
        off += n;
        if (i + 1 < nparts)
            msg[off++] = '\0';
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    hex[0] = '\0';
    if (msg && HMAC(EVP_sha1(), secret, (int)strlen(secret), (unsigned char *)msg, off, md, &mdlen))
        for (unsigned i = 0; i < mdlen; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
    free(msg);
}

/* Python's truth of a JSON value, as Synapse reads "admin". */
static bool truthy(json_t *v)
{
    return json_is_true(v) || (json_is_integer(v) && json_integer_value(v)) ||
           (json_is_real(v) && json_real_value(v) != 0) ||
           (json_is_string(v) && json_string_length(v)) || json_object_size(v) ||
           json_array_size(v);
}

/* A string of at most 512 bytes without NUL, as Synapse takes username and password. */
static const char *admin_string(json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);
    if (!json_is_string(v) || json_string_length(v) > 512 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return NULL;
    return json_string_value(v);
}

/* Synapse's UserRegisterServlet.on_POST: its checks, texts and codes, in its order. */
mr_http_response *hs_admin_register(hs_call *c)
{
    hs *h = c->h;
    clear_old_nonces(h);
    if (!h->opts.shared_secret)
        return hs_error(400, "M_UNKNOWN", "Shared secret registration is not enabled");
    json_t *b = c->body;
    if (!json_object_get(b, "nonce"))
        return hs_error(400, "M_BAD_JSON", "nonce must be specified");
    const char *nonce = json_string_value(json_object_get(b, "nonce"));
    if (!nonce || !json_object_get(h->nonces, nonce))
        return hs_error(400, "M_UNKNOWN", "unrecognised nonce");
    char nonce_copy[129];
    snprintf(nonce_copy, sizeof nonce_copy, "%s", nonce);
    json_object_del(h->nonces, nonce); /* one attempt per nonce, right or wrong */
    if (!json_object_get(b, "username"))
        return hs_error(400, "M_BAD_JSON", "username must be specified");
    const char *username = admin_string(b, "username");
    if (!username)
        return hs_error(400, "M_UNKNOWN", "Invalid username");
    if (!json_object_get(b, "password"))
        return hs_error(400, "M_BAD_JSON", "password must be specified");
    const char *password = admin_string(b, "password");
    if (!password)
        return hs_error(400, "M_UNKNOWN", "Invalid password");
    json_t *jtype = json_object_get(b, "user_type");
    const char *user_type = json_string_value(jtype);
    /* Synapse's built-in user types; a deployment may configure more. */
    if (jtype && !json_is_null(jtype) &&
        (!user_type || (strcmp(user_type, "support") != 0 && strcmp(user_type, "bot") != 0)))
        return hs_error(400, "M_UNKNOWN", "Invalid user type");
    if (!json_is_string(json_object_get(b, "mac")))
        return hs_error(400, "M_BAD_JSON", "mac must be specified");
    const char *mac = json_string_value(json_object_get(b, "mac"));
    bool admin = truthy(json_object_get(b, "admin"));
    char want[41];
    admin_mac(h->opts.shared_secret, nonce_copy, username, password, admin,
              user_type && *user_type ? user_type : NULL, want);
    if (strlen(mac) != 40 || CRYPTO_memcmp(want, mac, 40) != 0)
        return hs_error(403, "M_FORBIDDEN", "HMAC incorrect");
    char localpart[513];
    snprintf(localpart, sizeof localpart, "%s", username);
    lowercase(localpart);
    mr_http_response *e = check_new_username(h, localpart);
    if (e)
        return e;
    hs_user *u = hs_user_create(h, localpart, password);
    if (!u)
        return NULL;
    u->admin = admin;
    const char *displayname = json_string_value(json_object_get(b, "displayname"));
    char *name = displayname ? strdup(displayname) : NULL;
    if (displayname && !name)
        return NULL;
    if (name) {
        free(u->displayname);
        u->displayname = name;
    }
    return logged_in(c, u, json_string_value(json_object_get(b, "device_id")), NULL, false);
}

/* ---- login and logout ---- */

mr_http_response *hs_login_flows(hs_call *c)
{
    if (c->h->opts.appservice_token)
        return hs_ok(json_pack("{s:[{s:s}, {s:s}]}", "flows", "type", "m.login.password", "type",
                               "m.login.application_service"));
    return hs_ok(json_pack("{s:[{s:s}]}", "flows", "type", "m.login.password"));
}

mr_http_response *hs_login(hs_call *c)
{
    const char *type, *password, *device_id, *display, *name = NULL;
    json_t *ident;
    mr_http_response *e;
    if ((e = hs_field_str(c->body, "type", true, &type)))
        return e;
    bool appservice = strcmp(type, "m.login.application_service") == 0;
    if (appservice && (e = appservice_check(c, true)))
        return e;
    if (!appservice && strcmp(type, "m.login.password") != 0)
        return hs_error(400, "M_UNKNOWN", "unknown login type %s", type);
    if ((e = hs_field_obj(c->body, "identifier", false, &ident)) ||
        (e = hs_field_str(c->body, "password", !appservice, &password)) ||
        (e = hs_field_str(c->body, "device_id", false, &device_id)) ||
        (e = hs_field_str(c->body, "initial_device_display_name", false, &display)))
        return e;
    if (ident) {
        const char *itype = json_string_value(json_object_get(ident, "type"));
        if (!itype || strcmp(itype, "m.id.user") != 0)
            return hs_error(400, "M_UNKNOWN", "unsupported identifier type %s",
                            itype ? itype : "(none)");
        name = json_string_value(json_object_get(ident, "user"));
    } else {
        name = json_string_value(json_object_get(c->body, "user")); /* the deprecated form */
    }
    if (!name)
        return hs_error(400, "M_BAD_JSON", "missing field 'identifier.user'");
    char uid[300];
    bool ours = hs_user_id_from(c->h, name, uid, sizeof uid);
    hs_user *u = ours ? hs_user_find(c->h, uid) : NULL;
    /* Synapse's answer for a user outside the service's namespace (here: another server's). */
    if (appservice && !ours)
        return hs_error(403, "M_FORBIDDEN", "Invalid access_token");
    if (appservice && !u)
        return orphan_login(c, uid, device_id, display);
    if (!appservice && (!u || !u->password || strcmp(u->password, password) != 0))
        return hs_error(403, "M_FORBIDDEN", "invalid username or password");
    return logged_in(c, u, device_id, display, false);
}

mr_http_response *hs_logout(hs_call *c)
{
    hs_device_remove(c->h, c->user, c->device);
    return hs_ok(json_object());
}

mr_http_response *hs_logout_all(hs_call *c)
{
    while (c->user->ndevices)
        hs_device_remove(c->h, c->user, c->user->devices[0]);
    return hs_ok(json_object());
}

mr_http_response *hs_whoami(hs_call *c)
{
    return hs_ok(json_pack("{s:s, s:s, s:b}", "user_id", c->user->user_id, "device_id",
                           c->device->device_id, "is_guest", 0));
}

/* ---- profiles ---- */

static hs_user *profile_user(hs_call *c, mr_http_response **e)
{
    hs_user *u = hs_user_find(c->h, c->cap[0]);
    if (!u)
        *e = hs_error(404, "M_NOT_FOUND", "profile of %s not found", c->cap[0]);
    return u;
}

mr_http_response *hs_profile_get(hs_call *c)
{
    mr_http_response *e = NULL;
    hs_user *u = profile_user(c, &e);
    return u ? hs_ok(json_pack("{s:s}", "displayname", u->displayname)) : e;
}

mr_http_response *hs_displayname_put(hs_call *c)
{
    if (strcmp(c->cap[0], c->user->user_id) != 0)
        return hs_error(403, "M_FORBIDDEN", "%s may not change the profile of %s",
                        c->user->user_id, c->cap[0]);
    const char *name;
    mr_http_response *e = hs_field_str(c->body, "displayname", true, &name);
    if (e)
        return e;
    char *copy = strdup(name);
    if (!copy)
        return NULL;
    free(c->user->displayname);
    c->user->displayname = copy;
    /* Rooms learn the new name through a fresh member event, as Synapse sends. */
    for (size_t i = 0; i < c->h->nrooms; i++) {
        hs_room *r = c->h->rooms[i];
        const char *m = hs_membership(r, c->user->user_id);
        if (!m || strcmp(m, "join") != 0)
            continue;
        json_t *content = json_deep_copy(hs_state_content(r, "m.room.member", c->user->user_id));
        json_object_set_new(content, "displayname", json_string(name));
        hs_room_append(c->h, r, c->user->user_id, "m.room.member", c->user->user_id, content,
                       NULL, NULL);
    }
    return hs_ok(json_object());
}
