/* test_mentions.c -- who a message mentions, from m.mentions, matrix.to links and @name tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agent_internal.h"

static const char CONFIG[] =
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"
    "agents:\n"
    "  mind: {display_name: Mind, rooms: [lobby]}\n"
    "  coder: {display_name: Code Helper, rooms: [lobby]}\n"
    "teams:\n  devteam: {display_name: Dev Team, agents: [mind, coder], rooms: [lobby]}\n"
    "bot_accounts: [\"@telegrambot:example.org\"]\n";

static roster R, RNS;

static int setup(void **state)
{
    (void)state;
    mr_config *cfg = NULL;
    mr_err err = {0};
    if (mr_config_parse(CONFIG, strlen(CONFIG), "config.yaml", &cfg, NULL, &err) != MR_OK ||
        roster_build(cfg, "example.org", NULL, &R, &err) != MR_OK ||
        roster_build(cfg, "example.org", "ab3k9xyz", &RNS, &err) != MR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    mr_config_release(cfg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    roster_free(&R);
    roster_free(&RNS);
    return 0;
}

/* Mentions of the content given as JSON text, by @alice. */
static void expect(const roster *r, const char *content_json, const char *names, bool other, const char *source)
{
    json_t *content = json_loads(content_json, 0, NULL);
    if (!content)
        fail_msg("bad test JSON: %s", content_json);
    mentions m;
    mentions_extract(r, content, "@alice:example.org", &m);
    char got[256] = "";
    for (size_t i = 0; i < m.n; i++) {
        size_t used = strlen(got);
        snprintf(got + used, sizeof got - used, "%s%s", i ? "," : "", m.names[i]);
    }
    if (strcmp(got, names) != 0 || m.other != other)
        fail_msg("%s: got [%s] other=%d, expected [%s] other=%d", content_json, got, m.other, names, other);
    if (source)
        assert_string_equal(m.source, source);
    else
        assert_null(m.source);
    json_decref(content);
}

static void test_m_mentions(void **state)
{
    (void)state;
    expect(&R, "{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":[\"@mindroom_coder:example.org\"]}}", "coder", false,
           "m.mentions");
    expect(&R, "{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":[\"@bob:example.org\"]}}", "", true, "m.mentions");
    /* Bot accounts and the sender's own ID count for nothing. */
    expect(&R, "{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":[\"@telegrambot:example.org\",\"@alice:example.org\"]}}",
           "", false, "m.mentions");
    /* m.mentions, when it names anyone, wins over the body. */
    expect(&R, "{\"body\":\"@mind hi\",\"m.mentions\":{\"user_ids\":[\"@mindroom_coder:example.org\"]}}", "coder",
           false, "m.mentions");
    /* Empty: the body decides. */
    expect(&R, "{\"body\":\"@mind hi\",\"m.mentions\":{\"user_ids\":[]}}", "mind", false, "body");
    expect(&R, "{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":[\"@mindroom_router:example.org\",\"@mindroom_devteam:example.org\"]}}",
           "router,devteam", false, "m.mentions");
}

static void test_matrix_to_links(void **state)
{
    (void)state;
    expect(&R, "{\"body\":\"Mind: hi\",\"formatted_body\":\"<a href=\\\"https://matrix.to/#/@mindroom_mind:example.org\\\">Mind</a>: hi\"}",
           "mind", false, "matrix.to");
    expect(&R, "{\"body\":\"hi\",\"formatted_body\":\"<a href='https://matrix.to/#/%40mindroom_coder%3Aexample.org'>x</a>\"}",
           "coder", false, "matrix.to");
    expect(&R, "{\"body\":\"ask https://matrix.to/#/@bob:example.org about it\"}", "", true, "matrix.to");
    /* A link to a room is not a mention: the @name token decides. */
    expect(&R, "{\"body\":\"@mind see https://matrix.to/#/!room:example.org\"}", "mind", false, "body");
}

static void test_body_tokens(void **state)
{
    (void)state;
    expect(&R, "{\"body\":\"@Code Helper please look\"}", "coder", false, "body");
    expect(&R, "{\"body\":\"@dev team and @MIND, thoughts?\"}", "devteam,mind", false, "body");
    expect(&R, "{\"body\":\"@mindroom_coder:example.org look\"}", "coder", false, "body");
    expect(&R, "{\"body\":\"@mindroom_coder look\"}", "coder", false, "body");
    expect(&R, "{\"body\":\"@router help\"}", "router", false, "body");
    /* Not mentions: an e-mail address, a longer word, an unknown name. */
    expect(&R, "{\"body\":\"write to bob@mind.com\"}", "", false, NULL);
    expect(&R, "{\"body\":\"@minder is not here\"}", "", false, NULL);
    expect(&R, "{\"body\":\"@bob hello\"}", "", false, NULL);
    expect(&R, "{\"msgtype\":\"m.image\"}", "", false, NULL);
}

static void test_namespaced_accounts(void **state)
{
    (void)state;
    expect(&RNS, "{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":[\"@mindroom_mind_ab3k9xyz:example.org\"]}}", "mind",
           false, "m.mentions");
    /* Another instance's agent of the same name is someone else. */
    expect(&RNS, "{\"body\":\"hi\",\"m.mentions\":{\"user_ids\":[\"@mindroom_mind:example.org\"]}}", "", true,
           "m.mentions");
    expect(&RNS, "{\"body\":\"@mindroom_mind_ab3k9xyz thoughts?\"}", "mind", false, "body");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_m_mentions),
        cmocka_unit_test(test_matrix_to_links),
        cmocka_unit_test(test_body_tokens),
        cmocka_unit_test(test_namespaced_accounts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
