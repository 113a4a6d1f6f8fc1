/* api.c -- the HTTP face of mindroom-provisioning: routing, CORS, browser auth, client
 * addresses, rate-limit answers and {"detail": ...} errors. */
#include "prov_internal.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mindroom/log.h"

#define API_PREFIX "/v1/local-mindroom/"

mr_http_response *mr_provisioning_error_reply(int status, const char *message)
{
    return mr_runtime_reply_detail(status, "%s", message);
}

void api_count(prov *p, const char *metric, const char *label, const char *value)
{
    const char *labels[] = {label, value, NULL};
    mr_http_metrics_inc(p->metrics, metric, label ? labels : NULL, 1);
}

mr_http_response *api_store_failure(const mr_err *err)
{
    mr_log_error("provisioning", "store failure: %s", err->msg);
    return mr_runtime_reply_detail(
        503, "Service temporarily unavailable: its state store failed (%s); try again shortly", mr_code_str(err->code));
}

mr_http_response *api_rate_limit(prov *p, const rate_rule *rule, const char *subject)
{
    long retry = 0;
    mr_err err = {0};
    if (rate_limit_hit(p, rule, subject, &retry, &err) != MR_OK)
        return api_store_failure(&err);
    if (retry == 0)
        return NULL;
    api_count(p, "provisioning_rate_limited_total", "scope", rule->scope);
    mr_http_response *r =
        mr_runtime_reply_detail(429, "Rate limit exceeded: at most %ld %s per minute per %s; retry in %ld s",
                                rule->per_minute, rule->what, rule->per, retry);
    char after[24];
    snprintf(after, sizeof after, "%ld", retry);
    mr_http_response_header(r, "Retry-After", after);
    return r;
}

json_t *api_json_body(const mr_http_request *req, mr_http_response **reply)
{
    json_error_t jerr;
    json_t *body = req->body_len ? json_loadb(req->body, req->body_len, 0, &jerr) : NULL;
    if (json_is_object(body))
        return body;
    *reply = body || !req->body_len
                 ? mr_runtime_reply_detail(422, "The request body must be a JSON object")
                 : mr_runtime_reply_detail(422, "The request body is not JSON: %s at line %d, column %d", jerr.text,
                                           jerr.line, jerr.column);
    json_decref(body);
    return NULL;
}

static bool is_trusted(const mr_provisioning_settings *s, const char *ip)
{
    for (size_t i = 0; i < s->n_trusted_proxies; i++)
        if (strcmp(s->trusted_proxies[i], ip) == 0)
            return true;
    return false;
}

bool api_is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

void api_client_ip(const mr_provisioning_settings *s, const char *peer, const char *xff, char *out, size_t cap)
{
    snprintf(out, cap, "%s", peer);
    if (!xff || !is_trusted(s, peer))
        return;
    /* Each proxy appends the address it saw: walk from the right past our own proxies. The
     * first one that is not ours is the client; entries left of it are the client's to forge. */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", xff);
    size_t n = strlen(buf);
    while (n > 0) {
        size_t end = n;
        while (n > 0 && buf[n - 1] != ',')
            n--;
        char *entry = buf + n;
        buf[end] = '\0';
        entry += strspn(entry, " \t");
        size_t len = strlen(entry);
        while (len > 0 && (entry[len - 1] == ' ' || entry[len - 1] == '\t'))
            entry[--len] = '\0';
        if (!api_is_ip(entry))
            return;
        snprintf(out, cap, "%s", entry);
        if (!is_trusted(s, entry))
            return;
        if (n > 0)
            n--;
    }
}

mr_http_response *api_browser_user(prov *p, const mr_http_request *req, char *user_id, size_t cap)
{
    const char *auth = mr_http_request_header(req, "Authorization");
    const char *token = NULL;
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0)
        token = auth + 7;
    else
        token = mr_http_request_header(req, "X-Matrix-Access-Token");
    if (!token || !*token)
        return mr_runtime_reply_detail(401,
                                       "Missing Matrix access token: sign in to the chat app and send its access token "
                                       "as Authorization: Bearer <token>");
    bool valid = false;
    mr_err err = {0};
    if (hs_whoami(p, token, user_id, cap, &valid, &err) != MR_OK) {
        mr_log_warn("provisioning", "whoami failed: %s", err.msg);
        return mr_runtime_reply_detail(502, "The homeserver could not check the Matrix access token: %s", err.msg);
    }
    if (!valid)
        return mr_runtime_reply_detail(
            401, "Invalid Matrix access token: the homeserver %s does not know it; sign in again", p->s->homeserver);
    return NULL;
}

typedef struct route {
    const char *method;
    const char *path; /* after API_PREFIX */
    mr_http_response *(*fn)(prov *p, const mr_http_request *req);
} route;

static const route routes[] = {
    {"POST", "pair/start", api_pair_start},
    {"GET", "pair/status", api_pair_status},
    {"POST", "pair/complete", api_pair_complete},
    {"GET", "connections", api_connections_list},
    {"POST", "register-agent", agent_register},
};

/* Whether the request's Content-Type is application/json (parameters such as charset aside). */
static bool json_content_type(const mr_http_request *req)
{
    const char *ct = mr_http_request_header(req, "Content-Type");
    if (!ct)
        return false;
    ct += strspn(ct, " \t");
    static const char json_type[] = "application/json";
    size_t n = sizeof json_type - 1;
    if (strncasecmp(ct, json_type, n) != 0)
        return false;
    ct += n;
    ct += strspn(ct, " \t");
    return *ct == '\0' || *ct == ';';
}

static mr_http_response *dispatch(prov *p, const mr_http_request *req)
{
    mr_http_response *page = page_reply(p, req);
    if (page)
        return page;
    const char *path = req->path;
    if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) == 0) {
        const char *rest = path + strlen(API_PREFIX);
        /* Every body the API reads is JSON; anything else is refused before it is looked at. */
        if (req->body_len && !json_content_type(req))
            return mr_runtime_reply_detail(415, "Unsupported Media Type: send the body as JSON with Content-Type: "
                                                "application/json");
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
            if (strcmp(rest, routes[i].path) != 0)
                continue;
            if (strcmp(req->method, routes[i].method) == 0)
                return routes[i].fn(p, req);
            return mr_runtime_reply_detail(405, "Method Not Allowed: %s takes %s", path, routes[i].method);
        }
        /* DELETE /connections/{id}: segments v1, local-mindroom, connections, id. */
        if (req->nsegments == 4 && strcmp(req->segments[2], "connections") == 0) {
            if (strcmp(req->method, "DELETE") == 0)
                return api_connections_revoke(p, req, req->segments[3]);
            return mr_runtime_reply_detail(405, "Method Not Allowed: %s takes DELETE", path);
        }
    }
    return mr_runtime_reply_detail(404, "Not Found: no endpoint %s %s; the API lives under " API_PREFIX, req->method,
                                   path);
}

static bool origin_allowed(const prov *p, const char *origin)
{
    for (size_t i = 0; origin && i < p->s->n_cors_origins; i++)
        if (strcmp(p->s->cors_origins[i], origin) == 0)
            return true;
    return false;
}

mr_http_response *api_handle(void *ctx, const mr_http_request *req)
{
    prov *p = ctx;
    const char *origin = mr_http_request_header(req, "Origin");
    bool cors = origin_allowed(p, origin);
    mr_http_response *r;
    if (strcmp(req->method, "OPTIONS") == 0) {
        /* A preflight: the answer only matters for an allowed origin. */
        r = mr_http_reply(204, "text/plain", "", 0);
        if (cors) {
            mr_http_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
            mr_http_response_header(r, "Access-Control-Allow-Headers",
                                    "Authorization, Content-Type, X-Matrix-Access-Token, "
                                    "X-Local-MindRoom-Pair-Session-Id");
            mr_http_response_header(r, "Access-Control-Max-Age", "600");
        }
    } else {
        prov_store_take(p);
        r = dispatch(p, req);
        prov_store_give(p);
    }
    if (r && cors) {
        mr_http_response_header(r, "Access-Control-Allow-Origin", origin);
        mr_http_response_header(r, "Vary", "Origin");
    }
    return r;
}
