/* fuzz_jwks.c -- libFuzzer entry: any bytes through mr_jwt_keyset_parse, every key read, all freed. */
#include <stddef.h>
#include <stdint.h>

#include "mindroom/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mr_jwt_keyset *ks = NULL;
    mr_err err;
    if (mr_jwt_keyset_parse((const char *)data, size, &ks, &err) != MR_OK)
        return 0;
    for (size_t i = 0; i < mr_jwt_keyset_count(ks); i++) {
        (void)mr_jwt_keyset_kid(ks, i);
        (void)mr_jwt_keyset_pem(ks, i);
        (void)mr_jwt_keyset_algs(ks, i);
    }
    for (size_t i = 0; i < mr_jwt_keyset_skipped_count(ks); i++)
        (void)mr_jwt_keyset_skipped(ks, i);
    mr_jwt_keyset_free(ks);
    return 0;
}
