/* provisioning.c -- the client side of the provisioning service's register-agent
 * (pairing-and-run.md §2): local client credentials in headers, permanent refusals told apart
 * from failures worth retrying. */
#include "gateway_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATTEMPTS 4
#define BACKOFF_MS 1000
#define TIMEOUT_MS 30000

/* What a reply means: MR_OK, a permanent refusal, or MR_EUNAVAIL to try again. */
static mr_code judge(const gw *g, const mr_http_result *res, const char *username, bool *in_use,
                     mr_err *err)
{
    long st = res->status;
    json_t *detail_j = json_object_get(res->json, "detail");
    const char *detail = json_string_value(detail_j);
    char d[320];
    snprintf(d, sizeof d, "%s", detail ? detail : res->body ? res->body : "");
    if (st >= 200 && st < 300) {
        const char *status = json_string_value(json_object_get(res->json, "status"));
        if (status && strcmp(status, "created") == 0)
            return MR_OK;
        if (status && strcmp(status, "user_in_use") == 0) {
            *in_use = true;
            return MR_OK;
        }
        return mr_err_set(err, MR_EINVAL, "%s: register-agent for %s answered HTTP %ld with status "
                          "\"%s\", expected created or user_in_use", g->s.provisioning_url, username,
                          st, status ? status : "(none)");
    }
    if (st == 401 || (st == 403 && detail && strncmp(detail, "Connection revoked", 18) == 0))
        return mr_err_set(err, MR_EAUTH, "%s: register-agent refused the local client credentials "
                          "(HTTP %ld: %s); re-run `mindroom connect --pair-code ...`",
                          g->s.provisioning_url, st, d);
    if (st == 403)
        return mr_err_set(err, MR_EPERM, "%s: register-agent refused %s (HTTP 403: %s); the username "
                          "must carry this connection's namespace (MINDROOM_NAMESPACE=%s)",
                          g->s.provisioning_url, username, d, g->s.ns);
    if (st == 404)
        return mr_err_set(err, MR_EPERM, "%s does not support /v1/local-mindroom/register-agent "
                          "(HTTP 404)", g->s.provisioning_url);
    if (st >= 500 || st == 429)
        return mr_err_set(err, MR_EUNAVAIL, "%s: register-agent for %s failed with HTTP %ld: %s",
                          g->s.provisioning_url, username, st, d);
    return mr_err_set(err, MR_EPERM, "%s: register-agent refused %s (HTTP %ld: %s)",
                      g->s.provisioning_url, username, st, d);
}

mr_code gw_provision_register(gw *g, const char *username, const char *password,
                              const char *display_name, bool *in_use, mr_err *err)
{
    *in_use = false;
    mr_http_client_opts o = {.base_url = g->s.provisioning_url, .timeout_ms = TIMEOUT_MS};
    mr_http_client *c = NULL;
    mr_code rc = mr_http_client_new(&o, &c, err);
    if (rc != MR_OK)
        return rc;
    char id_h[512], secret_h[512];
    snprintf(id_h, sizeof id_h, "X-Local-MindRoom-Client-Id: %s", g->s.client_id);
    snprintf(secret_h, sizeof secret_h, "X-Local-MindRoom-Client-Secret: %s", g->s.client_secret);
    const char *headers[] = {id_h, secret_h, "Accept: application/json", NULL};
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "homeserver", g->s.homeserver, "username",
                             username, "password", password, "display_name", display_name);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory preparing register-agent");
    for (int attempt = 1; rc == MR_OK; attempt++) {
        mr_http_call call = {.method = "POST", .url = "/v1/local-mindroom/register-agent",
                             .body = text, .body_len = strlen(text),
                             .content_type = "application/json", .headers = headers};
        mr_http_result res;
        rc = mr_http_client_do(c, &call, &res, err);
        if (rc == MR_OK && res.body_len)
            res.json = json_loadb(res.body, res.body_len, 0, NULL);
        if (rc == MR_OK)
            rc = judge(g, &res, username, in_use, err);
        mr_http_result_clear(&res);
        if (rc != MR_EUNAVAIL || attempt >= ATTEMPTS ||
            mr_runtime_sleep(g->rt, BACKOFF_MS << (attempt - 1)))
            break;
        mr_log_warn(GW, "register-agent for %s: %s; trying again", username, err->msg);
        rc = MR_OK;
    }
    memset(secret_h, 0, sizeof secret_h);
    if (text)
        memset(text, 0, strlen(text));
    free(text);
    mr_http_client_free(c);
    return rc;
}
