/* test_provisioning.c -- mindroom-gateway registering its accounts through a real
 * mindroom-provisioning (register-agent with the local client credentials pairing gave), under
 * the connection's namespace, and stopping with advice once the connection is revoked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gw_harness.h"
#include "prov_stack.h"

#define CONFIG_ONE                                                                                 \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  mind: {display_name: Mind, rooms: [lobby]}\n"
#define CONFIG_TWO CONFIG_ONE "  coder: {rooms: [lobby]}\n"

typedef struct paired {
    char id[128];
    char secret[128];
    char ns[64];
} paired;

/* The owner pairs an install: pair/start with their Matrix token, pair/complete by the code. */
static void pair(const prov_proc *p, const char *owner_token, paired *out)
{
    char code[64], session[64];
    mr_err err = {0};
    if (prov_pair_start(p, owner_token, code, session, &err) != MR_OK)
        fail_msg("%s", err.msg);
    char body[256];
    snprintf(body, sizeof body, "{\"pair_code\":\"%s\",\"client_name\":\"gateway test\","
             "\"client_pubkey_or_fingerprint\":\"sha256:00\"}", code);
    prov_reply r = prov_call(p->url, "POST", "/v1/local-mindroom/pair/complete", NULL, body);
    if (r.status != 200)
        fail_msg("pair/complete: %ld %s", r.status, prov_detail(&r));
    snprintf(out->id, sizeof out->id, "%s", json_string_value(json_object_get(r.json, "client_id")));
    snprintf(out->secret, sizeof out->secret, "%s", json_string_value(json_object_get(r.json, "client_secret")));
    snprintf(out->ns, sizeof out->ns, "%s", json_string_value(json_object_get(r.json, "namespace")));
    prov_reply_clear(&r);
}

static void test_register_through_provisioning(void **state)
{
    (void)state;
    gwt f;
    mr_hs_peer_opts o = {.registration_token = PROV_TEST_REG_TOKEN};
    gwt_setup(&f, &o, CONFIG_ONE);
    /* The provisioning service shares the fixture's homeserver and redis. */
    prov_stack st = {.redis = f.redis, .hs = f.hs};
    if (snprintf(st.dir, sizeof st.dir, "%s", f.dir) >= (int)sizeof st.dir)
        fail_msg("temp dir %s is too long", f.dir);
    prov_proc p;
    mr_err err = {0};
    if (prov_proc_start(&st, "provisioning", 0, NULL, &p, &err) != MR_OK)
        fail_msg("%s", err.msg);
    char owner[512];
    if (prov_matrix_user(&st, "owner", owner, sizeof owner, &err) != MR_OK)
        fail_msg("%s", err.msg);
    paired c;
    pair(&p, owner, &c);

    unsetenv("MATRIX_REGISTRATION_TOKEN");
    setenv("MINDROOM_PROVISIONING_URL", p.url, 1);
    setenv("MINDROOM_LOCAL_CLIENT_ID", c.id, 1);
    setenv("MINDROOM_LOCAL_CLIENT_SECRET", c.secret, 1);
    setenv("MINDROOM_NAMESPACE", c.ns, 1);
    gwt_start(&f, NULL);
    gwt_wait_ready(&f);
    char router[128], mind[128], lobby[128];
    snprintf(router, sizeof router, "@mindroom_router_%s:localhost", c.ns);
    snprintf(mind, sizeof mind, "@mindroom_mind_%s:localhost", c.ns);
    snprintf(lobby, sizeof lobby, "#lobby_%s:localhost", c.ns);
    json_t *s = gwt_hs_state(&f);
    const char *const users[] = {"@owner:localhost", router, mind};
    gwt_assert_users(s, users, 3);
    const char *lobby_id = json_string_value(json_object_get(json_object_get(s, "aliases"), lobby));
    assert_non_null(lobby_id);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(json_object_get(
                            s, "rooms"), lobby_id), "members"), mind)), "join");
    json_decref(s);
    gwt_assert_log(&f, "registration through provisioning service", 1);
    gwt_assert_log(&f, "gateway: registered @", 2);
    assert_int_equal(gwt_stop(&f), 0);
    char *log = mr_tp_read_text(f.log);
    assert_null(strstr(log, c.secret));
    free(log);

    /* Revoked: a new agent cannot be registered, and the gateway says what to do. */
    char auth[600], path[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", owner);
    snprintf(path, sizeof path, "/v1/local-mindroom/connections/%s", c.id);
    const char *headers[] = {auth, NULL};
    prov_reply r = prov_call(p.url, "DELETE", path, headers, NULL);
    assert_int_equal(r.status, 200);
    prov_reply_clear(&r);
    gwt_write_config(&f, CONFIG_TWO);
    gwt_start(&f, NULL);
    assert_int_equal(gwt_wait_exit(&f), 2);
    gwt_assert_log(&f, "register-agent refused the local client credentials (HTTP 403: Connection "
                       "revoked", 1);
    gwt_assert_log(&f, "; re-run `mindroom connect --pair-code ...`", 1);

    if (prov_proc_stop(&p, &err) != MR_OK)
        fail_msg("%s", err.msg);
    unsetenv("MINDROOM_PROVISIONING_URL");
    unsetenv("MINDROOM_LOCAL_CLIENT_ID");
    unsetenv("MINDROOM_LOCAL_CLIENT_SECRET");
    unsetenv("MINDROOM_NAMESPACE");
    gwt_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_through_provisioning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
