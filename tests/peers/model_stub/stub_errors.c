/* stub_errors.c -- errors in the shape and wording of the OpenAI API: the error object, the
 * defaults per status, and the masked key a 401 shows back. */
#include "stub.h"

#include <stdio.h>
#include <string.h>

static json_t *error_body(const char *message, const char *type, const char *param,
                          const char *code)
{
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", message, "type", type,
                     "param", param ? json_string(param) : json_null(), "code",
                     code ? json_string(code) : json_null());
}

mr_http_response *stub_error(int status, const char *message, const char *type,
                             const char *param, const char *code)
{
    return mr_http_reply_json(status, error_body(message, type, param, code));
}

void stub_mask_key(const char *key, char *out, size_t cap)
{
    size_t n = strlen(key);
    if (n < 12) {
        snprintf(out, cap, "****");
        return;
    }
    snprintf(out, cap, "%.3s****%s", key, key + n - 4);
}

json_t *stub_default_error(int status, json_t *fields, const char *model)
{
    char message[256];
    const char *type = "invalid_request_error", *code = NULL;
    switch (status) {
    case 401:
        snprintf(message, sizeof message, "Incorrect API key provided: sk-****. You can find "
                 "your API key at https://platform.openai.com/account/api-keys.");
        code = "invalid_api_key";
        break;
    case 403:
        snprintf(message, sizeof message, "Country, region, or territory not supported");
        code = "unsupported_country_region_territory";
        break;
    case 404:
        snprintf(message, sizeof message, "The model `%s` does not exist or you do not have "
                 "access to it.", model ? model : "");
        code = "model_not_found";
        break;
    case 429:
        snprintf(message, sizeof message, "Rate limit reached for requests on model %s. Please "
                 "try again in 1s.", model ? model : "");
        type = "requests";
        code = "rate_limit_exceeded";
        break;
    case 500:
        snprintf(message, sizeof message, "The server had an error while processing your "
                 "request. Sorry about that!");
        type = "server_error";
        break;
    case 503:
        snprintf(message, sizeof message, "The engine is currently overloaded, please try "
                 "again later.");
        type = "server_error";
        break;
    default:
        snprintf(message, sizeof message, "Request failed with status %d.", status);
        if (status >= 500)
            type = "server_error";
        break;
    }
    json_t *body = error_body(message, type, NULL, code);
    json_t *e = json_object_get(body, "error");
    /* Scripted fields win; the status and waits are not part of the body. */
    static const char *const own[] = {"message", "type", "param", "code", NULL};
    for (size_t i = 0; fields && own[i]; i++) {
        json_t *v = json_object_get(fields, own[i]);
        if (v)
            json_object_set(e, own[i], v);
    }
    return body;
}
