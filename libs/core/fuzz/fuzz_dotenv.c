/* fuzz_dotenv.c -- libFuzzer target: .env parsing never crashes, and every value survives
 * mr_dotenv_format_value followed by a re-parse unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_text.h"
#include "mindroom/dotenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Formats value, parses `K=<formatted>` and aborts unless exactly that value comes back. */
static void check_round_trip(const char *value)
{
    char *formatted = mr_dotenv_format_value(value);
    if (!formatted)
        abort();
    size_t len = strlen(formatted) + 3;
    char *line = malloc(len);
    if (!line)
        abort();
    snprintf(line, len, "K=%s", formatted);
    mr_dotenv env;
    mr_err err = { 0 };
    if (mr_dotenv_parse(line, len - 1, "round-trip", &env, &err) != MR_OK) {
        fprintf(stderr, "re-parse failed for [%s]: %s\n", line, err.msg);
        abort();
    }
    if (env.len != 1 || strcmp(env.entries[0].key, "K") != 0 || strcmp(env.entries[0].value, value) != 0) {
        fprintf(stderr, "round trip changed the value: [%s]\n", line);
        abort();
    }
    mr_dotenv_free(&env);
    free(line);
    free(formatted);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mr_dotenv env;
    mr_err err = { 0 };
    if (mr_dotenv_parse((const char *)data, size, "fuzz.env", &env, &err) == MR_OK) {
        for (size_t i = 0; i < env.len; i++)
            check_round_trip(env.entries[i].value);
        mr_dotenv_free(&env);
    }

    /* The input up to its first NUL, taken as a value, must round-trip as well. */
    char *value = mr_fuzz_text(data, size);
    if (!value)
        abort();
    check_round_trip(value);
    free(value);
    return 0;
}
