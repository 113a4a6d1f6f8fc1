/* pf_routes.c -- the platform's HTTP API: who is calling, then the instance routes. */
#include "pf_internal.h"

#include <openssl/crypto.h>
#include <string.h>

static mr_http_response *reply(int code, json_t *body)
{
    return mr_http_reply_json(code, body ? body : json_pack("{s:s}", "detail", "out of memory"));
}

static mr_http_response *err_reply(int code, const char *msg)
{
    return reply(code, json_pack("{s:s}", "detail", msg));
}

/* 0 with *owner set (NULL for the operator), or the status to refuse with. */
static int identify(const pf_settings *s, const mr_http_request *req, const char **owner, const char **why)
{
    const char *auth = mr_http_request_header(req, "Authorization");
    if (s->api_key && auth && strncmp(auth, "Bearer ", 7) == 0) {
        size_t n = strlen(auth + 7);
        /* Compared in constant time: the key is the operator's. */
        if (n == strlen(s->api_key) && CRYPTO_memcmp(auth + 7, s->api_key, n) == 0) {
            *owner = NULL;
            return 0;
        }
        *why = "the bearer token is not the operator's API key";
        return 401;
    }
    if (s->user_id_header) {
        size_t count = mr_http_request_header_count(req, s->user_id_header);
        const char *v = mr_http_request_header(req, s->user_id_header);
        if (count == 1 && v && *v) {
            *owner = v;
            return 0;
        }
        /* Twice is ambiguous: the gateway in front should have replaced any client copy. */
        *why = count > 1 ? "the trusted user ID header came more than once" : "no trusted user ID header";
        return 401;
    }
    *why = "no operator API key";
    return 401;
}

mr_http_response *pf_routes_handle(void *ctx, const mr_http_request *req)
{
    pf_service *svc = ctx;
    char **seg = req->segments;
    size_t n = req->nsegments;
    if (n < 2 || strcmp(seg[0], "v1") != 0 || strcmp(seg[1], "instances") != 0 || n > 4)
        return err_reply(404, "no such route");
    const char *owner = NULL, *why = NULL;
    int refused = identify(&svc->settings, req, &owner, &why);
    if (refused)
        return err_reply(refused, why);
    const char *m = req->method;
    json_t *body = NULL;
    int code;
    if ((n == 2 && strcmp(m, "POST") == 0) || (n == 3 && strcmp(m, "PATCH") == 0)) {
        json_error_t je;
        json_t *in = json_loadb(req->body, req->body_len, 0, &je);
        if (!in)
            return err_reply(422, "the body is not JSON");
        code = n == 2 ? pf_instance_create(svc, owner, in, &body) : pf_instance_upgrade(svc, owner, seg[2], in, &body);
        json_decref(in);
    } else if (n == 2 && strcmp(m, "GET") == 0) {
        code = pf_instance_list(svc, owner, &body);
    } else if (n == 3 && strcmp(m, "GET") == 0) {
        code = pf_instance_get(svc, owner, seg[2], &body);
    } else if (n == 3 && strcmp(m, "DELETE") == 0) {
        code = pf_instance_delete(svc, owner, seg[2], &body);
    } else if (n == 4 && strcmp(m, "POST") == 0 && (strcmp(seg[3], "suspend") == 0 || strcmp(seg[3], "resume") == 0)) {
        code = pf_instance_set_suspended(svc, owner, seg[2], strcmp(seg[3], "suspend") == 0, &body);
    } else {
        return err_reply(405, "method not allowed on this route");
    }
    return reply(code, body);
}
