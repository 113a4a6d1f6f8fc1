/* test_policy.c -- the turn policy as a table of the reference's rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agent_internal.h"

typedef struct policy_case {
    const char *name;
    bool in_thread;
    size_t humans;
    const char *thread_agents;   /* comma-separated names, "" for none */
    const char *mentioned;
    bool other;                  /* a person is mentioned */
    const char *eligible;
    bool router_allowed;
    bool relay;
    policy_kind want;
    const char *who;             /* the responders (ANSWER) or candidates (ROUTE) */
} policy_case;

#define ALL3 "mind,coder,research"

static const policy_case CASES[] = {
    /* Mentions. */
    {"a mentioned agent answers", false, 1, "", "mind", false, "mind,coder", true, false, POLICY_ANSWER, "mind"},
    {"mentioned in a thread of several people", true, 3, "mind", "coder", false, ALL3, true, false, POLICY_ANSWER, "coder"},
    {"mentioned in a thread with two agents", true, 1, "mind,coder", "coder", false, ALL3, true, false, POLICY_ANSWER, "coder"},
    {"two mentioned agents both answer", false, 1, "", "coder,mind", false, ALL3, true, false, POLICY_ANSWER, "coder,mind"},
    {"mentioned but not allowed to answer", false, 1, "", "mind", false, "coder", true, false, POLICY_SILENT, ""},
    {"of two mentioned only the allowed one answers", false, 1, "", "mind,coder", false, "coder", true, false, POLICY_ANSWER, "coder"},
    {"a mentioned person silences the only agent", false, 1, "", "", true, "mind", true, false, POLICY_SILENT, ""},
    {"a mentioned person silences the thread's agent", true, 1, "mind", "", true, ALL3, true, false, POLICY_SILENT, ""},
    {"another agent mentioned: the thread's agent is silent", true, 1, "mind", "research", false, ALL3, true, false, POLICY_ANSWER, "research"},
    {"a mention of someone who cannot answer still silences", true, 1, "mind", "research", false, "mind,coder", true, false, POLICY_SILENT, ""},
    {"a person and an agent mentioned: the agent answers", false, 1, "", "coder", true, ALL3, true, false, POLICY_ANSWER, "coder"},
    {"a team can be mentioned", false, 1, "", "devteam", false, "mind,devteam", true, false, POLICY_ANSWER, "devteam"},
    {"only the router mentioned: it hands over", false, 1, "", "router", false, "mind,coder", true, false, POLICY_ROUTE, "mind,coder"},
    {"only the router mentioned, one candidate", false, 1, "", "router", false, "coder", true, false, POLICY_ANSWER, "coder"},
    {"the router and an agent mentioned", false, 1, "", "router,coder", false, ALL3, true, false, POLICY_ANSWER, "coder"},
    /* Outside threads. */
    {"the only eligible agent answers", false, 1, "", "", false, "mind", true, false, POLICY_ANSWER, "mind"},
    {"several people in the room do not matter outside threads", false, 4, "", "", false, "mind", true, false, POLICY_ANSWER, "mind"},
    {"two candidates: the router picks", false, 1, "", "", false, "mind,coder", true, false, POLICY_ROUTE, "mind,coder"},
    {"three candidates: the router picks among all", false, 1, "", "", false, ALL3, true, false, POLICY_ROUTE, ALL3},
    {"two candidates and the router may not answer", false, 1, "", "", false, "mind,coder", false, false, POLICY_SILENT, ""},
    {"no one may answer", false, 1, "", "", false, "", true, false, POLICY_SILENT, ""},
    /* In threads. */
    {"the agent taking part continues", true, 1, "coder", "", false, ALL3, true, false, POLICY_ANSWER, "coder"},
    {"two agents taking part: a mention is required", true, 1, "mind,coder", "", false, ALL3, true, false, POLICY_SILENT, ""},
    {"two people and the agent taking part: a mention is required", true, 2, "mind", "", false, ALL3, true, false, POLICY_SILENT, ""},
    {"two people, no agent yet, one eligible", true, 2, "", "", false, "mind", true, false, POLICY_SILENT, ""},
    {"two people and several candidates: no hand-off", true, 2, "", "", false, ALL3, true, false, POLICY_SILENT, ""},
    {"one person, no agent yet, one eligible", true, 1, "", "", false, "mind", true, false, POLICY_ANSWER, "mind"},
    {"one person, no agent yet, several eligible", true, 1, "", "", false, ALL3, true, false, POLICY_ROUTE, ALL3},
    {"the agent taking part may not answer this sender", true, 1, "mind", "", false, "coder", true, false, POLICY_ANSWER, "coder"},
    {"of two taking part only one may answer", true, 1, "mind,coder", "", false, "mind,research", true, false, POLICY_ANSWER, "mind"},
    {"the agent taking part left the room: others are candidates", true, 1, "research", "", false, "mind,coder", true, false, POLICY_ROUTE, "mind,coder"},
    {"a thread with no one eligible", true, 1, "mind", "", false, "", true, false, POLICY_SILENT, ""},
    /* Router hand-offs. */
    {"a hand-off is answered by whom it mentions", true, 1, "", "coder", false, ALL3, true, true, POLICY_ANSWER, "coder"},
    {"a hand-off to an agent that may not answer", true, 1, "", "coder", false, "mind", true, true, POLICY_SILENT, ""},
    {"a hand-off mentioning no one", true, 1, "", "", false, ALL3, true, true, POLICY_SILENT, ""},
    {"a hand-off in a thread of several people", true, 3, "mind", "coder", false, ALL3, true, true, POLICY_ANSWER, "coder"},
};

/* Splits "a,b,c" into out (pointers into buf). */
static size_t split(const char *list, char *buf, size_t cap, const char **out)
{
    snprintf(buf, cap, "%s", list);
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const policy_case *c = &CASES[i];
        char b1[256], b2[256], b3[256];
        const char *thread_agents[8], *eligible[8], *names[8], *who_buf[8];
        mentions m = {.other = c->other};
        m.n = split(c->mentioned, b1, sizeof b1, names);
        for (size_t k = 0; k < m.n; k++)
            m.names[k] = names[k];
        policy_input in = {.in_thread = c->in_thread, .humans = c->humans, .thread_agents = thread_agents,
                           .mentioned = &m, .eligible = eligible, .router_allowed = c->router_allowed,
                           .relay = c->relay};
        in.n_thread_agents = split(c->thread_agents, b2, sizeof b2, thread_agents);
        in.n_eligible = split(c->eligible, b3, sizeof b3, eligible);
        policy_decision d;
        policy_decide(&in, who_buf, &d);
        char who[256] = "";
        for (size_t k = 0; k < d.n; k++) {
            size_t used = strlen(who);
            snprintf(who + used, sizeof who - used, "%s%s", k ? "," : "", d.who[k]);
        }
        if (d.kind != c->want || strcmp(who, c->who) != 0)
            fail_msg("%s: got kind %d [%s] (%s), expected kind %d [%s]", c->name, d.kind, who, d.why, c->want, c->who);
        assert_non_null(d.why);
    }
    assert_true(sizeof CASES / sizeof CASES[0] >= 25);
}

/* However many entities may answer: a mention of the hundredth picks it, no mention hands over
 * among all hundred. */
static void test_a_hundred_eligible(void **state)
{
    (void)state;
    enum { N = 100 };
    char names[N][8];
    const char *eligible[N], *who[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "a%03d", i);
        eligible[i] = names[i];
    }
    mentions m = {.n = 1, .names = {names[N - 1]}};
    policy_input in = {.mentioned = &m, .eligible = eligible, .n_eligible = N, .router_allowed = true};
    policy_decision d;
    policy_decide(&in, who, &d);
    assert_int_equal(d.kind, POLICY_ANSWER);
    assert_int_equal(d.n, 1);
    assert_string_equal(d.who[0], "a099");
    m.n = 0;
    policy_decide(&in, who, &d);
    assert_int_equal(d.kind, POLICY_ROUTE);
    assert_int_equal(d.n, N);
    assert_string_equal(d.who[N - 1], "a099");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_a_hundred_eligible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
