/* fuzz_request.c -- libFuzzer entry: any request headers through the authenticator of
 * mindroom-upstream-auth, in each of its modes. The service accepts no request bodies: what it
 * takes from a request is its headers (identity headers, the JWT, Authorization, Cookie), so
 * those are what is fuzzed. Input: one byte picking the mode, then "Name: value" lines. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_keys.h"
#include "mindroom/log.h"
#include "ua_internal.h"

#define TU "MINDROOM_TRUSTED_UPSTREAM_"
#define MAX_HEADERS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MODE_HEADERS, MODE_STRICT, MODE_API_KEY, MODES };

/* The settings of each mode, as variables. */
static const char *const MODE_VARS[MODES][24] = {
    [MODE_HEADERS] = {TU "AUTH_ENABLED", "true", TU "USER_ID_HEADER", "X-User", TU "EMAIL_HEADER", "X-Email",
                      TU "MATRIX_USER_ID_HEADER", "X-Mxid", TU "EMAIL_TO_MATRIX_USER_ID_TEMPLATE",
                      "@{localpart}:example.org", NULL},
    [MODE_STRICT] = {TU "AUTH_ENABLED", "true", TU "REQUIRE_JWT", "true", TU "USER_ID_HEADER", "X-User",
                     TU "EMAIL_HEADER", "X-Email", TU "MATRIX_USER_ID_HEADER", "X-Mxid", TU "JWT_HEADER", "X-Jwt",
                     TU "JWKS_URL", "https://gateway.example.com/jwks.json", TU "JWT_AUDIENCE", FUZZ_AUDIENCE,
                     TU "JWT_ISSUER", FUZZ_ISSUER, TU "JWT_USER_ID_CLAIM", "sub", TU "JWT_MATRIX_USER_ID_CLAIM",
                     "matrix_user_id", NULL},
    [MODE_API_KEY] = {"MINDROOM_API_KEY", "fuzz-key", "MINDROOM_OWNER_USER_ID", "@owner:example.org", NULL},
};

static const char *mode_get(void *ctx, const char *name)
{
    const char *const *vars = ctx;
    for (size_t i = 0; vars[i]; i += 2)
        if (strcmp(vars[i], name) == 0)
            return vars[i + 1];
    return NULL;
}

/* One authenticator per mode for the whole run, as the service keeps one. */
static ua_auth *auth_for(int mode)
{
    static ua_settings settings[MODES];
    static ua_auth *auth[MODES];
    if (auth[mode])
        return auth[mode];
    mr_log_configure(MR_LOG_ERROR, MR_LOG_HUMAN, NULL);
    ua_auth_options o = {.fetch = fuzz_fetch, .clock = fuzz_clock};
    mr_err err;
    if (ua_settings_load(mode_get, (void *)MODE_VARS[mode], &settings[mode], &err) != MR_OK ||
        ua_auth_new(&settings[mode], &o, &auth[mode], &err) != MR_OK)
        abort();
    return auth[mode];
}

typedef struct headers {
    char *name[MAX_HEADERS];
    char *value[MAX_HEADERS];
    size_t n;
} headers;

static const char *header_get(void *ctx, const char *name, size_t *count)
{
    const headers *h = ctx;
    const char *first = NULL;
    *count = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (strcasecmp(h->name[i], name) == 0) {
            first = first ? first : h->value[i];
            (*count)++;
        }
    }
    return first;
}

/* Splits text (modified in place) into "Name: value" lines; lines without ':' are skipped. */
static void parse_headers(char *text, headers *h)
{
    for (char *line = text; line && h->n < MAX_HEADERS;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ')
                v++;
            h->name[h->n] = line;
            h->value[h->n++] = v;
        }
        line = next;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int mode = data[0] % MODES;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    headers h = {0};
    parse_headers(text, &h);
    ua_identity id;
    mr_err err;
    if (ua_authenticate(auth_for(mode), header_get, &h, NULL, &id, &err) == MR_OK)
        ua_identity_clear(&id);
    free(text);
    return 0;
}
