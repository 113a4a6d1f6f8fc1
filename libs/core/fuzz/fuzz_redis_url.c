/* fuzz_redis_url.c -- libFuzzer target: any text through the shared redis:// parser; a parsed
 * URL has a host and a port in range, and nothing leaks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/redis_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + sizeof "redis://");
    if (!url)
        return 0;
    memcpy(url, "redis://", 8);
    memcpy(url + 8, data, size);
    url[8 + size] = '\0';
    mr_redis_url u;
    mr_err err;
    if (mr_redis_url_parse(url, "fuzz URL", &u, &err) == MR_OK) {
        if (!u.host || !u.display || u.port < 1 || u.port > 65535 || u.db < 0)
            abort();
        mr_redis_url_free(&u);
    }
    free(url);
    return 0;
}
