/* ua_routes.c -- the HTTP routes of mindroom-upstream-auth: forward auth for ingress controllers,
 * the identity of the caller, and the OAuth connect flow; every one authenticates first. */
#include "ua_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mindroom/runtime.h"

/* Response headers of GET /auth/verify that ingress controllers copy onto the upstream request
 * (nginx: auth_request_set; Traefik: authResponseHeaders). */
#define H_USER_ID "X-MindRoom-Auth-User-Id"
#define H_EMAIL "X-MindRoom-Auth-Email"
#define H_MATRIX_USER_ID "X-MindRoom-Auth-Matrix-User-Id"
#define H_METHOD "X-MindRoom-Auth-Method"

mr_http_response *ua_reply_detail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mr_http_response *r = mr_runtime_vreply_detail(status, fmt, ap);
    va_end(ap);
    if (r && status == 401)
        mr_http_response_header(r, "WWW-Authenticate", "Bearer realm=\"mindroom\"");
    if (r && status == 503)
        mr_http_response_header(r, "Retry-After", "5");
    return r;
}

mr_code ua_metrics_declare(mr_http_metrics *m, mr_err *err)
{
    mr_code rc = MR_OK;
    if (m && (rc = mr_http_metrics_counter(m, "upstream_auth_decisions_total",
                                           "Authentication decisions by method and HTTP status", err)) == MR_OK)
        rc = mr_http_metrics_counter(m, "upstream_auth_oauth_total",
                                     "OAuth connect steps (authorize, callback) by HTTP status", err);
    if (m && rc == MR_OK)
        rc = mr_http_metrics_counter(m, "upstream_auth_jwt_cache_total",
                                     "Verified-JWT cache lookups in strict mode (hit, miss)", err);
    return rc;
}

static const char *request_header(void *ctx, const char *name, size_t *count)
{
    const mr_http_request *req = ctx;
    return mr_http_request_header_n(req, name, count);
}

static void count_decision(ua_service *svc, const char *method, int status)
{
    if (!svc->metrics)
        return;
    static const int codes[] = {200, 401, 503, 500};
    size_t i = 0;
    while (i < 3 && codes[i] != status)
        i++;
    mr_http_series *s = atomic_load_explicit(&svc->decisions[i], memory_order_acquire);
    if (!s) {
        char code[8];
        snprintf(code, sizeof code, "%d", status);
        const char *labels[] = {"method", method, "code", code, NULL};
        if (!(s = mr_http_metrics_series(svc->metrics, "upstream_auth_decisions_total", labels, false)))
            return;
        atomic_store_explicit(&svc->decisions[i], s, memory_order_release);
    }
    mr_http_series_add(s, 1);
}

/* Authenticates the request; NULL with *id filled, or the error response (mr_http_reply_later
 * on a polling thread when the JWKS has to be waited for). */
static mr_http_response *authenticate(ua_service *svc, const mr_http_request *req, ua_identity *id)
{
    mr_err err = {0};
    bool must_wait = false;
    mr_code rc = ua_authenticate(svc->auth, request_header, (void *)req, req->may_block ? NULL : &must_wait, id, &err);
    if (must_wait)
        return mr_http_reply_later();
    int status = rc == MR_OK ? 200 : rc == MR_EAUTH ? 401 : rc == MR_EUNAVAIL ? 503 : 500;
    const char *method = svc->settings.trusted ? (svc->settings.require_jwt ? "trusted_upstream_jwt" : "trusted_upstream")
                                               : (svc->settings.api_key ? "api_key" : "standalone");
    count_decision(svc, method, status);
    return rc == MR_OK ? NULL : ua_reply_detail(status, "%s", err.msg);
}

/* Written directly rather than through a jansson tree: forward auth answers every request. */
static mr_http_response *identity_reply(const ua_identity *id)
{
    const char *fields[] = {"user_id", id->user_id, "email", id->email, "matrix_user_id", id->matrix_user_id,
                            "method", ua_method_name(id->method), NULL};
    return mr_http_reply_json_strings(200, fields);
}

static mr_http_response *forward_auth(const ua_identity *id)
{
    mr_http_response *r = identity_reply(id);
    bool ok = r && mr_http_response_header(r, H_USER_ID, id->user_id) &&
              (!id->email || mr_http_response_header(r, H_EMAIL, id->email)) &&
              (!id->matrix_user_id || mr_http_response_header(r, H_MATRIX_USER_ID, id->matrix_user_id)) &&
              mr_http_response_header(r, H_METHOD, ua_method_name(id->method)) &&
              mr_http_response_header(r, "Cache-Control", "no-store");
    if (!ok) {
        mr_http_response_free(r);
        return NULL;
    }
    return r;
}

typedef enum route {
    ROUTE_NONE,
    ROUTE_VERIFY,      /* any method /auth/verify: ingress controllers keep the client's method */
    ROUTE_ME,          /* GET /api/auth/me */
    ROUTE_AUTHORIZE,   /* GET /api/oauth/<provider>/authorize */
    ROUTE_CALLBACK,    /* GET /api/oauth/<provider>/callback */
} route;

static route match(const mr_http_request *req)
{
    char *const *s = req->segments;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    if (req->nsegments == 2 && strcmp(s[0], "auth") == 0 && strcmp(s[1], "verify") == 0)
        return ROUTE_VERIFY;
    if (get && req->nsegments == 3 && strcmp(s[0], "api") == 0 && strcmp(s[1], "auth") == 0 && strcmp(s[2], "me") == 0)
        return ROUTE_ME;
    if (get && req->nsegments == 4 && strcmp(s[0], "api") == 0 && strcmp(s[1], "oauth") == 0) {
        if (strcmp(s[3], "authorize") == 0)
            return ROUTE_AUTHORIZE;
        if (strcmp(s[3], "callback") == 0)
            return ROUTE_CALLBACK;
    }
    return ROUTE_NONE;
}

mr_http_response *ua_routes_handle(void *ctx, const mr_http_request *req)
{
    ua_service *svc = ctx;
    route rt = match(req);
    if (rt == ROUTE_NONE)
        return ua_reply_detail(404, "Not found");
    /* The connect flow reads and writes the store and calls the provider: never on a polling
     * thread. Forward auth answers there from keys in memory. */
    if (!req->may_block && (rt == ROUTE_AUTHORIZE || rt == ROUTE_CALLBACK))
        return mr_http_reply_later();
    ua_identity id;
    mr_http_response *r = authenticate(svc, req, &id);
    if (r)
        return r;
    switch (rt) {
    case ROUTE_VERIFY: r = forward_auth(&id); break;
    case ROUTE_ME: r = identity_reply(&id); break;
    case ROUTE_AUTHORIZE: r = ua_oauth_authorize(&svc->oauth, req->segments[2], req, &id); break;
    case ROUTE_CALLBACK: r = ua_oauth_callback(&svc->oauth, req->segments[2], req, &id); break;
    case ROUTE_NONE: break;
    }
    ua_identity_clear(&id);
    return r;
}
