/* fuzz_keys.h -- a fixed JWKS (one RSA 2048 key "fz-rsa", one P-256 key "fz-ec") and a fixed
 * clock for the fuzz targets, so that the tokens of the seed corpus (signed by their private
 * halves, valid until 2100) reach the signature and claims checks. */
#ifndef MINDROOM_FUZZ_KEYS_H
#define MINDROOM_FUZZ_KEYS_H

#include <stdlib.h>
#include <string.h>

#include "mindroom/jwt.h"

#define FUZZ_JWKS \
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"fz-rsa\",\"use\":\"sig\",\"n\":\"ruvY-MuYDBVh5N0nEOneR3EQFWtnaA4QNVDfhM" \
    "ECgTw1WaUN4ZhBH31oAEKpZbnHeNQYQ8N89_2VsdujXPZeEtIJAHX7TuH7QBK0a1QLMTVdwelrovLDX9dqTg6GJpFJDc" \
    "lrH56DijYL9AizrdNlGVlk_SP_eP8AnXe7jxAQskbbNUKfCWtbczOuI-8yV1cqc6iVoXuMZB5eWkPnT-1z3myx4ykDwm" \
    "gWdlynlM-g1vndEADE0pp_MyM6Eh3K-LocXcaYvftfcA3d0_FTIVM3I05_r4zWH4IXikeWHXSetb2QfvfGRSY68KoVLK" \
    "1wHTWqanNJXGa9rbwVAgXhvVseMw\",\"e\":\"AQAB\"},{\"kty\":\"EC\",\"kid\":\"fz-ec\",\"crv\":\"P-256\",\"x\":\"6azrm" \
    "4ZZv8UlDwhTmKkwSM2OVpjuCckZbwklpvYXi6k\",\"y\":\"WXVoDDAjeW0XUSkYzCbpvlIGT9BafIGb10iDFOHjnpw\"}]}"

#define FUZZ_ISSUER "https://gateway.example.com"
#define FUZZ_AUDIENCE "mindroom-dashboard"
/* 2027-01-15: the seed tokens are valid then, whatever day the fuzzer runs. */
#define FUZZ_NOW_MS 1800000000000LL

/* An mr_jwt_fetch_fn that hands over FUZZ_JWKS. */
static inline mr_code fuzz_fetch(void *ctx, const char *url, long timeout_ms, char **body, size_t *len, mr_err *err)
{
    (void)ctx;
    (void)url;
    (void)timeout_ms;
    *body = strdup(FUZZ_JWKS);
    *len = strlen(FUZZ_JWKS);
    return *body ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory");
}

/* An mr_jwt_clock_fn that stands at FUZZ_NOW_MS. */
static inline int64_t fuzz_clock(void *ctx)
{
    (void)ctx;
    return FUZZ_NOW_MS;
}

#endif
