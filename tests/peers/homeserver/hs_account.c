/* hs_account.c -- the test homeserver's accounts: versions, registration (user-interactive,
 * Synapse's shared-secret admin API and application services), login, logout, whoami and
 * profiles. */
#include "hs.h"

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
    return hs_ok(json_pack("{s:s, s:s, s:s, s:s}", "user_id", u->user_id, "access_token",
                           d->token, "device_id", d->device_id, "home_server",
                           c->h->opts.server_name));
}

/* ---- registration ---- */

static mr_http_response *check_new_username(hs *h, const char *localpart)
{
    if (!hs_localpart_valid(h, localpart))
        return hs_error(400, "M_INVALID_USERNAME", "user ID localpart '%s' may only contain "
                        "a-z, 0-9, . _ = - / +", localpart);
    char uid[300];
    snprintf(uid, sizeof uid, "@%s:%s", localpart, h->opts.server_name);
    if (hs_user_find(h, uid))
        return hs_error(400, "M_USER_IN_USE", "user ID %s is already taken", uid);
    return NULL;
}

/* The 401 that carries the flows on offer, optionally with the reason the last stage failed. */
static mr_http_response *uia_challenge(hs *h, const char *session, const char *errcode,
                                       const char *error)
{
    json_t *flows = json_array();
    if (h->opts.registration_token)
        json_array_append_new(flows, json_pack("{s:[s]}", "stages", "m.login.registration_token"));
    if (h->opts.open_registration)
        json_array_append_new(flows, json_pack("{s:[s]}", "stages", "m.login.dummy"));
    json_t *body = json_pack("{s:o, s:{}, s:s, s:[]}", "flows", flows, "params", "session",
                             session, "completed");
    if (body && errcode) {
        json_object_set_new(body, "errcode", json_string(errcode));
        json_object_set_new(body, "error", json_string(error));
    }
    return mr_http_reply_json(401, body);
}

/* NULL when the auth dict completes a flow; otherwise the reply to send. */
static mr_http_response *uia_check(hs *h, json_t *auth)
{
    const char *session = json_string_value(json_object_get(auth, "session"));
    char fresh[25];
    if (!session) {
        hs_random_id(fresh, 24, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        session = fresh;
        json_object_set_new(h->uia, session, json_object());
        if (!auth)
            return uia_challenge(h, session, NULL, NULL);
    } else if (!json_object_get(h->uia, session)) {
        return hs_error(400, "M_UNKNOWN", "unknown user-interactive auth session %s", session);
    }
    const char *type = json_string_value(json_object_get(auth, "type"));
    if (type && strcmp(type, "m.login.registration_token") == 0 && h->opts.registration_token) {
        const char *token = json_string_value(json_object_get(auth, "token"));
        if (!token || strcmp(token, h->opts.registration_token) != 0)
            return uia_challenge(h, session, "M_FORBIDDEN", "invalid registration token");
    } else if (!(type && strcmp(type, "m.login.dummy") == 0 && h->opts.open_registration)) {
        return uia_challenge(h, session, "M_FORBIDDEN", "that authentication stage is not offered");
    }
    /* Each flow has a single stage, so the session is done. */
    json_object_del(h->uia, session);
    return NULL;
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

mr_http_response *hs_register(hs_call *c)
{
    hs *h = c->h;
    const char *type = json_string_value(json_object_get(c->body, "type"));
    if (type && strcmp(type, "m.login.application_service") == 0)
        return appservice_register(c);
    if (hs_request_token(c->req))
        return hs_error(400, "M_UNKNOWN", "An access token should not be provided on requests to "
                        "/register (except if type is m.login.application_service)");
    const char *kind = mr_http_request_query(c->req, "kind");
    if (kind && strcmp(kind, "guest") == 0)
        return hs_error(403, "M_GUEST_ACCESS_FORBIDDEN", "guest accounts are not offered");
    if (kind && strcmp(kind, "user") != 0)
        return hs_error(400, "M_INVALID_PARAM", "kind must be user or guest, not %s", kind);
    if (!h->opts.registration_token && !h->opts.open_registration)
        return hs_error(403, "M_FORBIDDEN", "registration is disabled");
    const char *username, *password, *device_id, *display;
    json_t *auth;
    mr_http_response *e;
    if ((e = hs_field_str(c->body, "username", false, &username)) ||
        (e = hs_field_str(c->body, "password", false, &password)) ||
        (e = hs_field_str(c->body, "device_id", false, &device_id)) ||
        (e = hs_field_str(c->body, "initial_device_display_name", false, &display)) ||
        (e = hs_field_obj(c->body, "auth", false, &auth)))
        return e;
    /* Like Synapse, a taken or invalid name fails before any authentication stage. */
    if (username && (e = check_new_username(h, username)))
        return e;
    if ((e = uia_check(h, auth)))
        return e;
    char generated[11];
    if (!username) {
        hs_random_id(generated, 10, "0123456789");
        username = generated;
    }
    hs_user *u = hs_user_create(h, username, password);
    if (!u)
        return NULL;
    return logged_in(c, u, device_id, display, json_is_true(json_object_get(c->body, "inhibit_login")));
}

mr_http_response *hs_register_token_validity(hs_call *c)
{
    if (!c->h->opts.registration_token)
        return hs_error(403, "M_FORBIDDEN", "registration tokens are not enabled");
    const char *token = mr_http_request_query(c->req, "token");
    if (!token)
        return hs_error(400, "M_MISSING_PARAM", "missing query parameter 'token'");
    return hs_ok(json_pack("{s:b}", "valid", strcmp(token, c->h->opts.registration_token) == 0));
}

/* ---- Synapse admin registration: nonce, then HMAC-SHA1 over the fields ---- */

mr_http_response *hs_admin_nonce(hs_call *c)
{
    if (!c->h->opts.shared_secret)
        return hs_error(400, "M_UNKNOWN", "shared secret registration is not enabled");
    char nonce[33];
    hs_random_id(nonce, 32, "0123456789abcdef");
    json_object_set_new(c->h->nonces, nonce, json_true());
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

mr_http_response *hs_admin_register(hs_call *c)
{
    hs *h = c->h;
    if (!h->opts.shared_secret)
        return hs_error(400, "M_UNKNOWN", "shared secret registration is not enabled");
    const char *nonce, *username, *password, *mac, *displayname, *user_type;
    mr_http_response *e;
    if ((e = hs_field_str(c->body, "nonce", true, &nonce)) ||
        (e = hs_field_str(c->body, "username", true, &username)) ||
        (e = hs_field_str(c->body, "password", true, &password)) ||
        (e = hs_field_str(c->body, "mac", true, &mac)) ||
        (e = hs_field_str(c->body, "displayname", false, &displayname)) ||
        (e = hs_field_str(c->body, "user_type", false, &user_type)))
        return e;
    if (!json_object_get(h->nonces, nonce))
        return hs_error(400, "M_UNKNOWN", "unrecognised nonce");
    json_object_del(h->nonces, nonce); /* one attempt per nonce, right or wrong */
    bool admin = json_is_true(json_object_get(c->body, "admin"));
    char want[41];
    admin_mac(h->opts.shared_secret, nonce, username, password, admin, user_type, want);
    if (strlen(mac) != 40 || CRYPTO_memcmp(want, mac, 40) != 0)
        return hs_error(403, "M_FORBIDDEN", "HMAC incorrect");
    if ((e = check_new_username(h, username)))
        return e;
    hs_user *u = hs_user_create(h, username, password);
    if (!u)
        return NULL;
    u->admin = admin;
    if (displayname) {
        free(u->displayname);
        u->displayname = strdup(displayname);
    }
    return logged_in(c, u, NULL, NULL, false);
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
