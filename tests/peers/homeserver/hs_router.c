/* hs_router.c -- the test homeserver's request path: CORS, routing, the 429 switch, access
 * tokens, JSON bodies, and the small helpers every endpoint shares. */
#include "hs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    AUTH = 1,      /* needs an access token */
    BODY = 2,      /* takes a JSON object; an empty body is M_NOT_JSON */
    BODY_OPT = 4,  /* takes a JSON object; an empty body reads as {} */
    NO_LIMIT = 8,  /* test control endpoints: never rate limited */
    MEMBER = 16,   /* the caller must have joined the room in the first capture: c->room */
};

typedef struct route {
    const char *method;
    const char *pattern; /* segments; "*" captures, "%v" is the client API version r0 or v3 */
    hs_endpoint fn;
    int flags;
} route;

#define C "_matrix/client/%v/"

static const route routes[] = {
    {"GET", "_matrix/client/versions", hs_versions, 0},
    {"POST", C "register", hs_register, BODY},
    {"GET", "_matrix/client/v1/register/m.login.registration_token/validity",
     hs_register_token_validity, 0},
    {"GET", "_synapse/admin/v1/register", hs_admin_nonce, 0},
    {"POST", "_synapse/admin/v1/register", hs_admin_register, BODY},
    {"GET", C "login", hs_login_flows, 0},
    {"POST", C "login", hs_login, BODY},
    {"POST", C "logout", hs_logout, AUTH | BODY_OPT},
    {"POST", C "logout/all", hs_logout_all, AUTH | BODY_OPT},
    {"GET", C "account/whoami", hs_whoami, AUTH},
    {"GET", C "profile/*", hs_profile_get, 0},
    {"GET", C "profile/*/displayname", hs_profile_get, 0},
    {"PUT", C "profile/*/displayname", hs_displayname_put, AUTH | BODY},
    {"POST", C "createRoom", hs_create_room, AUTH | BODY},
    {"POST", C "join/*", hs_join, AUTH | BODY_OPT},
    {"POST", C "rooms/*/join", hs_join, AUTH | BODY_OPT},
    {"POST", C "rooms/*/invite", hs_invite, AUTH | BODY},
    {"POST", C "rooms/*/leave", hs_leave, AUTH | BODY_OPT},
    {"POST", C "rooms/*/kick", hs_kick, AUTH | BODY},
    {"POST", C "knock/*", hs_knock, AUTH | BODY_OPT},
    {"GET", C "joined_rooms", hs_joined_rooms, AUTH},
    {"GET", C "rooms/*/joined_members", hs_joined_members, AUTH | MEMBER},
    {"GET", C "rooms/*/state", hs_state_all, AUTH | MEMBER},
    {"GET", C "rooms/*/state/*", hs_state_read, AUTH | MEMBER},
    {"GET", C "rooms/*/state/*/*", hs_state_read, AUTH | MEMBER},
    {"PUT", C "rooms/*/state/*", hs_state_write, AUTH | BODY},
    {"PUT", C "rooms/*/state/*/*", hs_state_write, AUTH | BODY},
    {"PUT", C "rooms/*/send/*/*", hs_send, AUTH | BODY},
    {"PUT", C "rooms/*/redact/*/*", hs_redact, AUTH | BODY_OPT},
    {"GET", C "rooms/*/messages", hs_messages, AUTH},
    {"PUT", C "rooms/*/typing/*", hs_typing, AUTH | BODY},
    {"GET", C "directory/room/*", hs_alias_get, 0},
    {"PUT", C "directory/room/*", hs_alias_put, AUTH | BODY},
    {"DELETE", C "directory/room/*", hs_alias_delete, AUTH},
    {"GET", C "directory/list/room/*", hs_visibility_get, 0},
    {"PUT", C "directory/list/room/*", hs_visibility_put, AUTH | BODY},
    {"GET", C "publicRooms", hs_public_rooms, 0},
    {"POST", C "publicRooms", hs_public_rooms, AUTH | BODY_OPT},
    {"POST", C "user/*/filter", hs_filter_post, AUTH | BODY},
    {"GET", C "user/*/filter/*", hs_filter_get, AUTH},
    {"GET", C "sync", hs_sync, AUTH},
    {"POST", C "keys/upload", hs_keys_upload, AUTH | BODY},
    {"POST", C "keys/query", hs_keys_query, AUTH | BODY},
    {"POST", C "keys/claim", hs_keys_claim, AUTH | BODY},
    {"POST", C "keys/device_signing/upload", hs_keys_device_signing_upload, AUTH | BODY},
    {"POST", C "keys/signatures/upload", hs_keys_signatures_upload, AUTH | BODY},
    {"PUT", C "sendToDevice/*/*", hs_send_to_device, AUTH | BODY},
    {"POST", "_test/ratelimit", hs_test_ratelimit, BODY | NO_LIMIT},
    {"POST", "_test/hold", hs_test_hold, BODY | NO_LIMIT},
    {"POST", "_test/hold_typing", hs_test_hold_typing, BODY | NO_LIMIT},
    {"GET", "_test/state", hs_test_state, NO_LIMIT},
    {"POST", "_test/soft_logout", hs_test_soft_logout, BODY | NO_LIMIT},
    {"POST", "_test/clock", hs_test_clock, BODY | NO_LIMIT},
    {"GET", "_test/rooms/*/events", hs_test_events, NO_LIMIT},
};

#undef C

/* ---- shared replies and readers ---- */

mr_http_response *hs_ok(json_t *body)
{
    return mr_http_reply_json(200, body);
}

static mr_http_response *field(json_t *obj, const char *key, bool required, json_t **out,
                               int (*is_type)(const json_t *), const char *type_name)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return hs_error(400, "M_BAD_JSON", "missing field '%s'", key);
        return NULL;
    }
    if (!is_type(v))
        return hs_error(400, "M_BAD_JSON", "field '%s' must be %s", key, type_name);
    *out = v;
    return NULL;
}

static int is_string(const json_t *v) { return json_is_string(v); }
static int is_object(const json_t *v) { return json_is_object(v); }
static int is_array(const json_t *v) { return json_is_array(v); }

mr_http_response *hs_field_str(json_t *obj, const char *key, bool required, const char **out)
{
    json_t *v;
    mr_http_response *e = field(obj, key, required, &v, is_string, "a string");
    *out = v ? json_string_value(v) : NULL;
    return e;
}

mr_http_response *hs_field_obj(json_t *obj, const char *key, bool required, json_t **out)
{
    return field(obj, key, required, out, is_object, "an object");
}

mr_http_response *hs_field_arr(json_t *obj, const char *key, bool required, json_t **out)
{
    return field(obj, key, required, out, is_array, "an array");
}

json_t *hs_txn_get(const hs_call *c)
{
    return json_object_get(c->device->txns, c->req->path);
}

void hs_txn_put(const hs_call *c, json_t *response)
{
    json_object_set(c->device->txns, c->req->path, response);
}

hs_room *hs_room_resolve(hs_call *c, const char *id_or_alias, mr_http_response **err)
{
    const char *room_id = id_or_alias;
    if (id_or_alias[0] == '#') {
        room_id = json_string_value(json_object_get(json_object_get(c->h->aliases, id_or_alias),
                                                    "room_id"));
        if (!room_id) {
            *err = hs_error(404, "M_NOT_FOUND", "room alias %s not found", id_or_alias);
            return NULL;
        }
    } else if (id_or_alias[0] != '!') {
        *err = hs_error(400, "M_INVALID_PARAM", "%s is neither a room ID nor an alias", id_or_alias);
        return NULL;
    }
    hs_room *r = hs_room_find(c->h, room_id);
    if (!r)
        *err = hs_error(404, "M_NOT_FOUND", "unknown room %s", room_id);
    return r;
}

hs_room *hs_room_for_member(hs_call *c, const char *room_id, mr_http_response **err)
{
    hs_room *r = hs_room_find(c->h, room_id);
    if (!r) {
        *err = hs_error(404, "M_NOT_FOUND", "unknown room %s", room_id);
        return NULL;
    }
    const char *m = hs_membership(r, c->user->user_id);
    if (!m || strcmp(m, "join") != 0) {
        *err = hs_error(403, "M_FORBIDDEN", "%s is not in room %s", c->user->user_id, room_id);
        return NULL;
    }
    return r;
}

/* Synapse's InvalidClientTokenError: its default text, soft_logout false. */
mr_http_response *hs_unknown_token(const char *why)
{
    return mr_http_reply_json(401, json_pack("{s:s, s:s, s:b}", "errcode", "M_UNKNOWN_TOKEN",
                                             "error", why ? why : "Unrecognised access token",
                                             "soft_logout", 0));
}

const char *hs_request_token(const mr_http_request *req)
{
    const char *auth = mr_http_request_header(req, "Authorization");
    if (auth && strncmp(auth, "Bearer ", 7) == 0)
        return auth + 7;
    return mr_http_request_query(req, "access_token");
}

/* ---- routing ---- */

/* Matches the path against a pattern, filling c->cap; true on a match. */
static bool route_match(const char *pattern, const mr_http_request *req, hs_call *c)
{
    char pat[160];
    snprintf(pat, sizeof pat, "%s", pattern);
    size_t i = 0, ncap = 0;
    const char *cap[4] = {0};
    for (char *save = NULL, *seg = strtok_r(pat, "/", &save); seg;
         seg = strtok_r(NULL, "/", &save), i++) {
        if (i >= req->nsegments)
            return false;
        const char *actual = req->segments[i];
        if (strcmp(seg, "*") == 0) {
            if (ncap == 4)
                return false;
            cap[ncap++] = actual;
        } else if (strcmp(seg, "%v") == 0) {
            if (strcmp(actual, "v3") != 0 && strcmp(actual, "r0") != 0)
                return false;
        } else if (strcmp(seg, actual) != 0) {
            return false;
        }
    }
    if (i != req->nsegments)
        return false;
    memcpy(c->cap, cap, sizeof cap);
    return true;
}

static const route *route_find(const mr_http_request *req, hs_call *c, bool *path_known)
{
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    *path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (!route_match(routes[i].pattern, req, c))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
        *path_known = true;
    }
    return NULL;
}

mr_http_response *hs_token_refused(hs *h, const char *token)
{
    if (json_object_get(h->soft_tokens, token))
        return mr_http_reply_json(401, json_pack("{s:s, s:s, s:b}", "errcode", "M_UNKNOWN_TOKEN",
                                                 "error", "access token has expired", "soft_logout", 1));
    return hs_unknown_token(NULL);
}

static mr_http_response *authenticate(hs_call *c)
{
    const char *token = hs_request_token(c->req);
    if (!token || !*token)
        return hs_error(401, "M_MISSING_TOKEN", "Missing access token");
    if (!hs_token_find(c->h, token, &c->user, &c->device))
        return hs_token_refused(c->h, token);
    return NULL;
}

static mr_http_response *parse_body(hs_call *c, int flags)
{
    const char *b = c->req->body;
    while (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t')
        b++;
    if (!*b && (flags & BODY_OPT)) {
        c->body = json_object();
        return NULL;
    }
    json_error_t je;
    c->body = json_loadb(c->req->body, c->req->body_len, 0, &je);
    if (!c->body)
        return hs_error(400, "M_NOT_JSON", "content not JSON: %s at offset %d", je.text,
                        je.position);
    if (!json_is_object(c->body))
        return hs_error(400, "M_BAD_JSON", "content must be a JSON object");
    return NULL;
}

mr_http_response *hs_limit_exceeded(long long retry_after_ms)
{
    mr_http_response *r = mr_http_reply_json(
        429, json_pack("{s:s, s:s, s:I}", "errcode", "M_LIMIT_EXCEEDED", "error",
                       "Too Many Requests", "retry_after_ms", (json_int_t)retry_after_ms));
    char secs[32];
    snprintf(secs, sizeof secs, "%lld", (retry_after_ms + 999) / 1000);
    mr_http_response_header(r, "Retry-After", secs);
    return r;
}

static mr_http_response *dispatch(hs_call *c, const route *rt)
{
    if (!(rt->flags & NO_LIMIT) && c->h->limit_count > 0) {
        c->h->limit_count--;
        return hs_limit_exceeded(c->h->limit_retry_ms);
    }
    mr_http_response *e = NULL;
    if (rt->flags & AUTH)
        e = authenticate(c);
    if (!e && (rt->flags & (BODY | BODY_OPT)))
        e = parse_body(c, rt->flags);
    if (!e && (rt->flags & MEMBER))
        c->room = hs_room_for_member(c, c->cap[0], &e);
    return e ? e : rt->fn(c);
}

static void add_cors(mr_http_response *r)
{
    /* The spec asks every endpoint to allow browser clients. */
    mr_http_response_header(r, "Access-Control-Allow-Origin", "*");
    mr_http_response_header(r, "Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
    mr_http_response_header(r, "Access-Control-Allow-Headers",
                            "X-Requested-With, Content-Type, Authorization");
}

mr_http_response *hs_handle(void *ctx, const mr_http_request *req)
{
    hs_call c = {.h = ctx, .req = req};
    mr_http_response *r;
    bool path_known;
    const route *rt = NULL;
    if (strcmp(req->method, "OPTIONS") == 0)
        r = hs_ok(json_object());
    else if (!(rt = route_find(req, &c, &path_known)))
        r = path_known ? hs_error(405, "M_UNRECOGNIZED", "%s is not allowed on %s", req->method,
                                  req->path)
                       : hs_error(404, "M_UNRECOGNIZED", "unrecognized request %s %s",
                                  req->method, req->path);
    else {
        /* For writing: a /sync takes it for reading once it only reads (hs_sync). */
        pthread_rwlock_wrlock(&c.h->lock);
        r = dispatch(&c, rt);
        pthread_rwlock_unlock(&c.h->lock);
        json_decref(c.body);
    }
    add_cors(r);
    return r;
}
