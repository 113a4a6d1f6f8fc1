/* test_decrypt_process.c -- mindroom-crypto as a process beside mindroom-gateway, against
 * mr-test-homeserver and redis-server: the agent's device publishes its keys through the
 * gateway, a human's device driven from C (human_device.c) queries them, claims a one-time key,
 * sends the Megolm room key over Olm and writes an encrypted message, and the message reaches
 * matrix.cleartext in clear; the claimed one-time key is replaced. After a SIGKILL, crypto
 * decrypts the next message with the keys it kept, and the agent's device keys on the homeserver
 * are still the same. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "gw_harness.h"
#include "human_device.h"
#include "tp_check.h"

#define DEADLINE_MS 120000
#define ALICE "@alice:localhost"

typedef struct agent_keys {
    char *device_id;
    char curve[MR_OLM_KEY_SIZE], ed[MR_OLM_KEY_SIZE];
} agent_keys;

/* What a failed test leaves for the teardown to stop and remove. */
static struct {
    gwt f;
    bool set_up;
    pid_t crypto;
} S;

static pid_t start_crypto(gwt *f, const char *log)
{
    const char *bin = getenv("MINDROOM_CRYPTO_BIN");
    assert_non_null(bin);
    char *argv[] = {(char *)bin, "--config", f->config, NULL};
    pid_t pid = 0;
    mr_err err = {0};
    mr_tp_check_step(mr_tp_spawn(argv, log, &pid, &err), &err, "starting mindroom-crypto");
    return pid;
}

/* Waits until /keys/query shows the agent's device keys (crypto made them, the gateway uploaded
 * them), and reads them. */
static void wait_agent_keys(gwt *f, mr_matrix *alice, pid_t crypto, const char *log, agent_keys *k)
{
    k->device_id = gwt_store_field(f, "account:mind", "device_id");
    char ck[300], ek[300];
    snprintf(ck, sizeof ck, "curve25519:%s", k->device_id);
    snprintf(ek, sizeof ek, "ed25519:%s", k->device_id);
    long long deadline = mr_clock_mono_ms() + DEADLINE_MS;
    for (;;) {
        json_t *q = NULL, *body = json_pack("{s:{s:[]}}", "device_keys", GWT_MIND);
        mr_err err = {0};
        mr_code rc = mr_matrix_keys_query(alice, body, &q, &err);
        json_decref(body);
        mr_tp_check_step(rc, &err, "/keys/query");
        json_t *dk = json_object_get(json_object_get(json_object_get(q, "device_keys"), GWT_MIND), k->device_id);
        json_t *keys = json_object_get(dk, "keys");
        if (json_string_value(json_object_get(keys, ck))) {
            snprintf(k->curve, sizeof k->curve, "%s", json_string_value(json_object_get(keys, ck)));
            snprintf(k->ed, sizeof k->ed, "%s", json_string_value(json_object_get(keys, ek)));
            mr_tp_check_step(mr_olm_verify_json(dk, GWT_MIND, ek, k->ed, &err), &err, "the agent's device keys");
            json_decref(q);
            return;
        }
        json_decref(q);
        if (waitpid(crypto, NULL, WNOHANG) == crypto)
            fail_msg("mindroom-crypto exited; see %s", log);
        if (mr_clock_mono_ms() > deadline)
            fail_msg("the agent's device keys never reached the homeserver; see %s", log);
        mr_clock_sleep_ms(100);
    }
}

typedef struct want_body {
    const char *body;
} want_body;

static bool decrypted(json_t *msgs, void *ctx)
{
    const want_body *w = ctx;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        const char *body = json_string_value(json_object_get(json_object_get(json_object_get(m, "event"), "content"),
                                                             "body"));
        if (body && strcmp(body, w->body) == 0 && json_is_true(json_object_get(m, "encrypted")))
            return true;
    }
    return false;
}

static void send_encrypted(mr_matrix *alice, human_device *h, const char *room, const char *txn, const char *body)
{
    json_t *content = human_encrypt_text(h, room, body);
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_send(alice, room, "m.room.encrypted", txn, content, NULL, &err), &err, "sending");
    json_decref(content);
}

static void assert_cleartext(gwt_reader *r, const char *body)
{
    want_body w = {body};
    gwt_read_until(r, decrypted, &w);
    size_t i;
    json_t *m;
    json_array_foreach(r->msgs, i, m) {
        json_t *ev = json_object_get(m, "event");
        const char *b = json_string_value(json_object_get(json_object_get(ev, "content"), "body"));
        if (!b || strcmp(b, body) != 0)
            continue;
        assert_string_equal(json_string_value(json_object_get(ev, "type")), "m.room.message");
        assert_string_equal(json_string_value(json_object_get(ev, "sender")), ALICE);
        assert_string_equal(json_string_value(json_object_get(m, "verification")), "unverified");
    }
}

static void test_human_writes_agent_reads(void **state)
{
    (void)state;
    gwt_setup(&S.f, NULL, GWT_CONFIG_MIND);
    S.set_up = true;
    gwt *f = &S.f;
    mr_matrix *alice = gwt_human(f, "alice");
    gwt_start(f, NULL);
    gwt_wait_ready(f);
    char log[700];
    snprintf(log, sizeof log, "%s/crypto.log", f->dir);
    pid_t crypto = S.crypto = start_crypto(f, log);
    agent_keys k = {0};
    wait_agent_keys(f, alice, crypto, log, &k);

    char lobby[MR_MATRIX_ID_SIZE];
    gwt_room_id(f, "#lobby:localhost", lobby);
    mr_err err = {0};
    mr_tp_check_step(mr_matrix_join(alice, lobby, NULL, &err), &err, "joining");
    human_device h;
    human_new(&h, ALICE, mr_matrix_device_id(alice));
    json_t *out = NULL, *body = json_pack("{s:o}", "device_keys", human_device_keys(&h));
    mr_code rc = mr_matrix_keys_upload(alice, body, &out, &err);
    json_decref(body);
    json_decref(out);
    mr_tp_check_step(rc, &err, "alice's /keys/upload");
    body = json_pack("{s:{s:{s:s}}}", "one_time_keys", GWT_MIND, k.device_id, "signed_curve25519");
    rc = mr_matrix_keys_claim(alice, body, &out, &err);
    json_decref(body);
    mr_tp_check_step(rc, &err, "/keys/claim");
    const char *id;
    json_t *otk = NULL, *v;
    json_object_foreach(json_object_get(json_object_get(json_object_get(out, "one_time_keys"), GWT_MIND),
                                        k.device_id), id, v)
        otk = v;
    assert_non_null(otk);
    human_start_olm(&h, GWT_MIND, k.device_id, k.curve, k.ed, otk);
    json_decref(out);
    json_t *msgs = json_pack("{s:{s:o}}", GWT_MIND, k.device_id, human_room_key(&h, lobby, GWT_MIND, k.curve, k.ed));
    mr_tp_check_step(mr_matrix_send_to_device(alice, "m.room.encrypted", "rk-1", msgs, &err), &err, "sending the room key");
    json_decref(msgs);

    /* The claimed key is replaced: the next sync's count tells crypto, which uploads one. */
    mr_tp_check_step(mr_tp_wait_in_file(log, GWT_MIND ": asking the gateway to upload 1 one-time keys", 1, DEADLINE_MS, crypto,
                             &err),
          &err, "topping up the one-time keys");

    gwt_reader clear;
    gwt_reader_open(f, &clear, "test-clear", "matrix.cleartext");
    send_encrypted(alice, &h, lobby, "m-1", "a secret for mind");
    assert_cleartext(&clear, "a secret for mind");

    /* SIGKILL: nothing crypto kept is lost, and it makes no new device. */
    mr_tp_kill_wait(crypto, SIGKILL, NULL, NULL);
    crypto = S.crypto = start_crypto(f, log);
    send_encrypted(alice, &h, lobby, "m-2", "after the crash");
    assert_cleartext(&clear, "after the crash");
    agent_keys again = {0};
    wait_agent_keys(f, alice, crypto, log, &again);
    assert_string_equal(again.device_id, k.device_id);
    assert_string_equal(again.curve, k.curve);
    assert_string_equal(again.ed, k.ed);
    assert_int_equal(mr_tp_count_in_file(log, GWT_MIND ": new Olm account"), 1);
    gwt_reader_check_proto(&clear);
    gwt_reader_close(&clear);

    int st = 0;
    mr_tp_check_step(mr_tp_kill_wait(crypto, SIGTERM, &st, &err), &err, "stopping mindroom-crypto");
    S.crypto = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(gwt_stop(f), 0);
    free(k.device_id);
    free(again.device_id);
    human_free(&h);
    mr_matrix_free(alice);
}

static int teardown(void **state)
{
    (void)state;
    if (S.crypto > 0)
        mr_tp_stop_if_running(S.crypto);
    if (S.set_up)
        gwt_teardown(&S.f);
    memset(&S, 0, sizeof S);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_human_writes_agent_reads, teardown),
    };
    return cmocka_run_group_tests_name("crypto_decrypt_process", tests, NULL, NULL);
}
