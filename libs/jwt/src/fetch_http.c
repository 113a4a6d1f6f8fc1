/* fetch_http.c -- the default JWKS fetcher: one GET through libs/http, bounded in time and
 * size, redirects not followed. */
#include <stdlib.h>
#include <string.h>

#include "jwt_internal.h"
#include "mindroom/http.h"

mr_code mr_jwt_fetch_http(void *ctx, const char *url, long timeout_ms, char **out, size_t *len, mr_err *err)
{
    (void)ctx;
    *out = NULL;
    *len = 0;
    mr_http_client_opts opts = {.timeout_ms = timeout_ms, .max_response = MR_JWT_JWKS_MAX,
                                .user_agent = "mindroom-jwt/" MR_VERSION};
    mr_http_client *client = NULL;
    mr_err herr = {0};
    if (mr_http_client_new(&opts, &client, &herr) != MR_OK)
        return mr_err_set(err, MR_EUNAVAIL, "fetching JWKS from %s: %s", url, herr.msg);
    mr_http_result res;
    mr_http_call call = {.method = "GET", .url = url};
    mr_code rc = mr_http_client_do(client, &call, &res, &herr);
    mr_http_client_free(client);
    if (rc == MR_OK && res.status != 200)
        rc = mr_err_set(err, MR_EUNAVAIL, "fetching JWKS from %s: HTTP status %ld", url, res.status);
    else if (rc == MR_OK && res.body_len == 0)
        rc = mr_err_set(err, MR_EUNAVAIL, "fetching JWKS from %s: the response is empty", url);
    else if (rc != MR_OK)
        rc = mr_err_set(err, MR_EUNAVAIL, "fetching JWKS: %s", herr.msg);
    if (rc == MR_OK) {
        *out = res.body;
        *len = res.body_len;
        res.body = NULL;
    }
    mr_http_result_clear(&res);
    return rc;
}
