/* authz_test_util.h -- builds an mr_authz from YAML text for the authz tests. */
#ifndef MINDROOM_AUTHZ_TEST_UTIL_H
#define MINDROOM_AUTHZ_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mindroom/authz.h"
#include "mindroom/config.h"

#define TEST_SERVER "example.com"
#define TEST_MODELS "models:\n  default: {provider: openai, id: gpt-5}\n"
/* The start of a config: TEST_MODELS, agents code and research, and their team devteam. */
#define TEST_DEVTEAM                                                                                        \
    TEST_MODELS "agents:\n  code: {}\n  research: {}\n"                                                     \
                "teams:\n  devteam: {agents: [code, research]}\n"
/* The seed of the randomized tests when MR_AUTHZ_SEED does not name one. */
#define TEST_SEED 20260801

/* The seed of a randomized test: MR_AUTHZ_SEED, else TEST_SEED (a failure names it). */
static inline uint64_t test_seed(void)
{
    const char *env = getenv("MR_AUTHZ_SEED");
    return env ? strtoull(env, NULL, 10) : TEST_SEED;
}

/* splitmix64: tiny, good enough, and the same stream everywhere. */
static inline uint64_t test_rng(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Parses yaml (failing the test with every diagnostic if it does not load) and compiles it for
 * TEST_SERVER and ns. The returned engine holds the only config reference. */
static inline mr_authz *test_authz_build(const char *yaml, const char *ns)
{
    mr_config *cfg = NULL;
    mr_config_diags diags = {0};
    mr_err err = {0};
    mr_code rc = mr_config_parse(yaml, strlen(yaml), "test.yaml", &cfg, &diags, &err);
    if (rc != MR_OK) {
        for (size_t i = 0; i < diags.len; i++) {
            char line[512];
            mr_config_diag_format(&diags, i, line, sizeof line);
            print_error("%s\n", line);
        }
        mr_config_diags_free(&diags);
        fail_msg("config did not load: %s\n%s", err.msg, yaml);
    }
    mr_config_diags_free(&diags);
    mr_authz *az = NULL;
    rc = mr_authz_new(cfg, TEST_SERVER, ns, &az, &err);
    mr_config_release(cfg);
    if (rc != MR_OK)
        fail_msg("mr_authz_new: %s", err.msg);
    return az;
}

#endif
