/* fuzz_jwt.c -- libFuzzer entry: any bytes as a token through mr_jwt_verify against a fixed JWKS
 * (fuzz_keys.h) at a fixed time; the seed tokens verify, so mutations reach every check. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_keys.h"
#include "fuzz_text.h"
#include "mindroom/jwt.h"
#include "mindroom/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One verifier for the whole run, as the service has: its cache is part of what is fuzzed. */
static mr_jwt_verifier *verifier(void)
{
    static mr_jwt_verifier *v;
    if (v)
        return v;
    mr_log_configure(MR_LOG_ERROR, MR_LOG_HUMAN, NULL);
    mr_jwt_options o;
    mr_jwt_options_init(&o);
    o.jwks_url = "https://gateway.example.com/jwks.json";
    o.issuer = FUZZ_ISSUER;
    o.audience = FUZZ_AUDIENCE;
    o.user_id_claim = "sub";
    o.matrix_user_id_claim = "matrix_user_id";
    o.fetch = fuzz_fetch;
    o.clock = fuzz_clock;
    mr_err err;
    if (mr_jwt_verifier_new(&o, &v, &err) != MR_OK)
        abort();
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *token = mr_fuzz_text(data, size);
    if (!token)
        return 0;
    mr_jwt_identity id;
    mr_err err;
    if (mr_jwt_verify(verifier(), token, &id, &err) == MR_OK)
        mr_jwt_identity_free(&id);
    free(token);
    return 0;
}
