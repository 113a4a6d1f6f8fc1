/* fuzz_config.c -- libFuzzer entry: any bytes through mr_config_parse, everything freed. */
#include <stddef.h>
#include <stdint.h>

#include "mindroom/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mr_config *cfg = NULL;
    mr_config_diags diags;
    mr_err err;
    if (mr_config_parse((const char *)data, size, "fuzz.yaml", &cfg, &diags, &err) == MR_OK) {
        /* A second holder, as a reload would have, must not change what gets freed. */
        mr_config_release(mr_config_retain(cfg));
        mr_config_release(cfg);
    }
    for (size_t i = 0; i < diags.len; i++) {
        char line[256];
        mr_config_diag_format(&diags, i, line, sizeof line);
    }
    mr_config_diags_free(&diags);
    return 0;
}
