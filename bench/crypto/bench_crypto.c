/* bench_crypto.c -- Megolm encryptions and decryptions per second through mr_olm beside bare
 * libolm calls on the same session kind and message, room messages encrypted per second by the
 * crypto service's own functions (the event alone, and the whole outbound_intent with its
 * session read from and sealed into a SQLite store) beside bare libolm on the same plaintext, and
 * Olm session set-ups per second (claimed key checked, pre-key message encrypted, inbound session
 * made and decrypted) both ways. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <olm/olm.h>

#include "crypto_internal.h"
#include "mindroom/clock.h"
#include "mindroom/olm.h"
#include "mindroom/store.h"
#include "peers.h"

/* A typical m.room.message payload as Megolm carries it. */
static const char EVENT[] =
    "{\"content\":{\"body\":\"Here is the summary of the thread you asked for, with the three open "
    "questions at the end.\",\"msgtype\":\"m.text\"},\"room_id\":\"!lobby:example.org\","
    "\"type\":\"m.room.message\"}";

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_crypto: %s: %s\n", what, why);
    exit(1);
}

static void need(mr_code rc, const mr_err *err, const char *what)
{
    if (rc != MR_OK)
        die(what, err->msg);
}

static void olm_need(size_t r, const char *what, const char *why)
{
    if (r == olm_error())
        die(what, why);
}

static void fill_random(void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = getrandom((char *)buf + got, len - got, 0);
        if (n < 0)
            die("getrandom", "failed");
        got += (size_t)n;
    }
}

/* A new Megolm outbound session on bare libolm (the caller clears and frees it). */
static OlmOutboundGroupSession *raw_outbound_group(void)
{
    OlmOutboundGroupSession *s = olm_outbound_group_session(malloc(olm_outbound_group_session_size()));
    size_t rlen = olm_init_outbound_group_session_random_length(s);
    uint8_t *rnd = malloc(rlen);
    fill_random(rnd, rlen);
    olm_need(olm_init_outbound_group_session(s, rnd, rlen), "olm_init_outbound_group_session", "failed");
    free(rnd);
    return s;
}

/* Calls one() for `seconds` and returns calls per second. */
static double rate(double seconds, void (*one)(void *arg), void *arg)
{
    double start = mr_clock_mono_s(), now = start;
    long n = 0;
    while (now - start < seconds) {
        for (int i = 0; i < 16; i++, n++)
            one(arg);
        now = mr_clock_mono_s();
    }
    return (double)n / (now - start);
}

/* Calls a() and b() by turns of 16 for `seconds`, so both see the same load on a shared
 * machine; their calls per second into *ra and *rb. */
static void rate_pair(double seconds, void (*a)(void *arg), void (*b)(void *arg), void *arg, double *ra, double *rb)
{
    double ta = 0, tb = 0, end = mr_clock_mono_s() + seconds;
    long n = 0;
    while (mr_clock_mono_s() < end) {
        double t0 = mr_clock_mono_s();
        for (int i = 0; i < 16; i++)
            a(arg);
        double t1 = mr_clock_mono_s();
        for (int i = 0; i < 16; i++)
            b(arg);
        ta += t1 - t0;
        tb += mr_clock_mono_s() - t1;
        n += 16;
    }
    *ra = (double)n / ta;
    *rb = (double)n / tb;
}

/* ---- Megolm ---- */

typedef struct megolm_job {
    mr_olm_outbound_group *ours_out;
    mr_olm_inbound_group *ours_in;
    OlmOutboundGroupSession *raw_out;
    OlmInboundGroupSession *raw_in;
    char *ciphertext; /* index 0 of the session both inbound sessions hold */
    size_t ct_len;
    unsigned char *buf, *plain;
    size_t buf_len, plain_len;
} megolm_job;

static void ours_encrypt(void *arg)
{
    megolm_job *j = arg;
    mr_err err = {0};
    char *ct = NULL;
    need(mr_olm_outbound_group_encrypt(j->ours_out, EVENT, sizeof EVENT - 1, &ct, &err), &err, "encrypt");
    free(ct);
}

static void raw_encrypt(void *arg)
{
    megolm_job *j = arg;
    olm_need(olm_group_encrypt(j->raw_out, (const uint8_t *)EVENT, sizeof EVENT - 1, j->buf, j->buf_len),
             "olm_group_encrypt", olm_outbound_group_session_last_error(j->raw_out));
}

static void ours_decrypt(void *arg)
{
    megolm_job *j = arg;
    mr_err err = {0};
    char *plain = NULL;
    size_t len = 0;
    uint32_t index = 0;
    need(mr_olm_inbound_group_decrypt(j->ours_in, j->ciphertext, &plain, &len, &index, &err), &err, "decrypt");
    mr_olm_free_secret(plain, len);
}

static void raw_decrypt(void *arg)
{
    megolm_job *j = arg;
    uint32_t index = 0;
    /* libolm decodes in place, so every call starts from a fresh copy. */
    memcpy(j->buf, j->ciphertext, j->ct_len);
    olm_need(olm_group_decrypt(j->raw_in, j->buf, j->ct_len, j->plain, j->plain_len, &index), "olm_group_decrypt",
             olm_inbound_group_session_last_error(j->raw_in));
}

static void bench_megolm(double seconds)
{
    megolm_job j = {0};
    mr_err err = {0};
    need(mr_olm_outbound_group_new(&j.ours_out, &err), &err, "outbound session");
    char *key = NULL;
    need(mr_olm_outbound_group_key(j.ours_out, &key, &err), &err, "session key");
    need(mr_olm_inbound_group_new(key, &j.ours_in, &err), &err, "inbound session");
    need(mr_olm_outbound_group_encrypt(j.ours_out, EVENT, sizeof EVENT - 1, &j.ciphertext, &err), &err, "encrypt");
    j.ct_len = strlen(j.ciphertext);

    j.raw_out = raw_outbound_group();
    j.raw_in = olm_inbound_group_session(malloc(olm_inbound_group_session_size()));
    char *key_copy = strdup(key);
    olm_need(olm_init_inbound_group_session(j.raw_in, (const uint8_t *)key_copy, strlen(key_copy)),
             "olm_init_inbound_group_session", olm_inbound_group_session_last_error(j.raw_in));
    free(key_copy);
    j.buf_len = olm_group_encrypt_message_length(j.raw_out, sizeof EVENT - 1) + j.ct_len;
    j.buf = malloc(j.buf_len);
    j.plain_len = sizeof EVENT + 64;
    j.plain = malloc(j.plain_len);

    double enc_ours = rate(seconds, ours_encrypt, &j);
    double enc_raw = rate(seconds, raw_encrypt, &j);
    double dec_ours = rate(seconds, ours_decrypt, &j);
    double dec_raw = rate(seconds, raw_decrypt, &j);
    printf("megolm encrypt (%3zu B)       %12.0f %12.0f %8.2f\n", sizeof EVENT - 1, enc_raw, enc_ours,
           enc_ours / enc_raw);
    printf("megolm decrypt (%3zu B)       %12.0f %12.0f %8.2f\n", sizeof EVENT - 1, dec_raw, dec_ours,
           dec_ours / dec_raw);

    mr_olm_free_secret(key, strlen(key));
    free(j.ciphertext);
    free(j.buf);
    free(j.plain);
    olm_clear_outbound_group_session(j.raw_out);
    free(j.raw_out);
    olm_clear_inbound_group_session(j.raw_in);
    free(j.raw_in);
    mr_olm_outbound_group_free(j.ours_out);
    mr_olm_inbound_group_free(j.ours_in);
}

/* ---- room messages through the crypto service ---- */

#define AGENT "@mindroom_mind:example.org"
#define ROOM "!lobby:example.org"

typedef struct room_job {
    crypto_device dev;
    crypto_outbound out;
    json_t *content;
    crypto_engine engine;
    char *intent;
    OlmOutboundGroupSession *raw;
    unsigned char *buf;
    size_t buf_len;
} room_job;

static void service_event(void *arg)
{
    room_job *j = arg;
    mr_err err = {0};
    json_t *enc = NULL;
    need(crypto_outbound_encrypt(&j->dev, &j->out, ROOM, "m.room.message", j->content, &enc, &err), &err,
         "crypto_outbound_encrypt");
    json_decref(enc);
}

/* What the service does for each message on matrix.outbound, but the bus: the intent parsed, the
 * room's facts and session read, the message encrypted, the session sealed into the store. */
static void service_intent(void *arg)
{
    room_job *j = arg;
    mr_err err = {0};
    json_t *out = json_array();
    need(crypto_engine_outbound(&j->engine, j->intent, strlen(j->intent), out, &err), &err, "crypto_engine_outbound");
    need(crypto_engine_commit(&j->engine, out, &err), &err, "commit");
    json_decref(out);
}

/* The same plaintext the service encrypts, on bare libolm. */
static void raw_room_event(void *arg)
{
    room_job *j = arg;
    olm_need(olm_group_encrypt(j->raw, (const uint8_t *)EVENT, sizeof EVENT - 1, j->buf, j->buf_len),
             "olm_group_encrypt", olm_outbound_group_session_last_error(j->raw));
}

/* An engine on a SQLite store in dir, in an encrypted room whose only reader is the agent, so no
 * key request is asked (every message is encrypted and its session sealed). */
static void room_engine(room_job *j, const char *dir)
{
    static const unsigned char secret[32] = "instance secret of crypto bench";
    char url[600];
    mr_err err = {0};
    mr_store *store = NULL;
    snprintf(url, sizeof url, "sqlite://%s/state.db", dir);
    const mr_store_options o = {.secret = secret, .secret_len = sizeof secret};
    need(mr_store_open(url, &o, &store, &err), &err, "store");
    need(crypto_engine_init(&j->engine, store, secret, sizeof secret, &err), &err, "engine");
    crypto_device *d = NULL;
    need(crypto_device_get(&j->engine, AGENT, "BENCHDEV", &d, &err), &err, "device");
    json_t *facts = json_pack("{s:{s:s}, s:{s:s}}", "encryption", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "members",
                              AGENT, "join");
    json_t *devs = json_pack("{s:{s:s, s:s}}", "BENCHDEV", "curve25519", mr_olm_account_curve25519(d->account),
                             "ed25519", mr_olm_account_ed25519(d->account));
    need(crypto_vault_put_plain(&j->engine.vault, "crypto:room:" ROOM, facts, 0, &err), &err, "room");
    need(crypto_vault_put_plain(&j->engine.vault, "crypto:devices:" AGENT, devs, 0, &err), &err, "devices");
    json_decref(facts);
    json_decref(devs);
    json_t *in = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "v", 1, "type", "outbound_intent", "account",
                           AGENT, "room_id", ROOM, "action", "send", "txn_id", "mr.bench", "event_type",
                           "m.room.message", "content", j->content);
    j->intent = json_dumps(in, JSON_COMPACT);
    json_decref(in);
}

static void bench_room(double seconds)
{
    room_job j = {.dev = {.user_id = AGENT, .device_id = "BENCHDEV"}};
    mr_err err = {0};
    json_t *ev = json_loads(EVENT, 0, NULL);
    j.content = json_incref(json_object_get(ev, "content"));
    json_decref(ev);
    need(mr_olm_account_new(&j.dev.account, &err), &err, "account");
    need(mr_olm_outbound_group_new(&j.out.group, &err), &err, "outbound session");
    mr_olm_outbound_group_id(j.out.group, j.out.session_id);
    j.out.shared = json_object();
    j.raw = raw_outbound_group();
    /* Room for the message index to grow (a longer varint) as the ratchet advances. */
    j.buf_len = olm_group_encrypt_message_length(j.raw, sizeof EVENT - 1) + 64;
    j.buf = malloc(j.buf_len);
    char dir[512];
    need(mr_tp_mkdtemp("mr-bench-crypto", dir, sizeof dir, &err), &err, "temporary directory");
    room_engine(&j, dir);

    double raw = 0, event = 0, raw2 = 0, intent = 0;
    rate_pair(seconds, raw_room_event, service_event, &j, &raw, &event);
    rate_pair(seconds, raw_room_event, service_intent, &j, &raw2, &intent);
    printf("room event, crypto service   %12.0f %12.0f %8.2f\n", raw, event, event / raw);
    printf("intent + SQLite, service     %12.0f %12.0f %8.2f\n", raw2, intent, intent / raw2);

    mr_store *store = j.engine.vault.store;
    crypto_engine_free(&j.engine);
    mr_store_close(store);
    mr_tp_cleanup_dir(dir);
    free(j.intent);
    free(j.buf);
    olm_clear_outbound_group_session(j.raw);
    free(j.raw);
    mr_olm_account_free(j.dev.account);
    j.dev.account = NULL;
    json_decref(j.content);
    j.out.key = NULL;
    crypto_outbound_free(&j.out);
}

/* ---- Olm session set-up ---- */

#define BATCH 50

/* Set-ups per second through mr_olm: for each claimed key, check its signature and make the
 * outbound session, encrypt a pre-key message, make the inbound session and decrypt it. */
static double olm_setup_ours(double seconds)
{
    mr_err err = {0};
    mr_olm_account *alice = NULL, *bob = NULL;
    need(mr_olm_account_new(&alice, &err), &err, "account");
    need(mr_olm_account_new(&bob, &err), &err, "account");
    mr_olm_device bob_dev = {"@bob:example.org", "BOBDEVICE", mr_olm_account_curve25519(bob),
                             mr_olm_account_ed25519(bob)};
    double spent = 0;
    long n = 0;
    while (spent < seconds) {
        json_t *body = NULL;
        need(mr_olm_account_generate_one_time_keys(bob, BATCH, &err), &err, "one-time keys");
        need(mr_olm_account_keys_upload_body(bob, bob_dev.user_id, bob_dev.device_id, false, &body, &err), &err,
             "upload body");
        mr_olm_account_mark_published(bob);
        double start = mr_clock_mono_s();
        const char *id;
        json_t *claimed;
        json_object_foreach(json_object_get(body, "one_time_keys"), id, claimed) {
            mr_olm_session *out = NULL, *in = NULL;
            need(mr_olm_session_new_outbound(alice, &bob_dev, claimed, &out, &err), &err, "outbound");
            int type = 0;
            char *msg = NULL, *plain = NULL;
            size_t len = 0;
            need(mr_olm_session_encrypt(out, "hello", 5, &type, &msg, &err), &err, "encrypt");
            need(mr_olm_session_new_inbound(bob, mr_olm_account_curve25519(alice), msg, &in, &plain, &len, &err), &err,
                 "inbound");
            mr_olm_free_secret(plain, len);
            free(msg);
            mr_olm_session_free(out);
            mr_olm_session_free(in);
            n++;
        }
        spent += mr_clock_mono_s() - start;
        json_decref(body);
    }
    mr_olm_account_free(alice);
    mr_olm_account_free(bob);
    return (double)n / spent;
}

static OlmAccount *raw_account(void)
{
    OlmAccount *a = olm_account(malloc(olm_account_size()));
    size_t rlen = olm_create_account_random_length(a);
    void *rnd = malloc(rlen);
    fill_random(rnd, rlen);
    olm_need(olm_create_account(a, rnd, rlen), "olm_create_account", olm_account_last_error(a));
    free(rnd);
    return a;
}

/* The key named name ("curve25519") of libolm's JSON text, into out. */
static void raw_json_key(const char *text, size_t len, const char *name, char out[MR_OLM_KEY_SIZE])
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    snprintf(out, MR_OLM_KEY_SIZE, "%s", json_string_value(json_object_get(doc, name)));
    json_decref(doc);
}

/* The same work with bare libolm calls (and no signature check on the claimed key). */
static double olm_setup_raw(double seconds)
{
    OlmAccount *alice = raw_account(), *bob = raw_account();
    char alice_curve[MR_OLM_KEY_SIZE], bob_curve[MR_OLM_KEY_SIZE];
    size_t idlen = olm_account_identity_keys_length(alice);
    char *ids = malloc(idlen);
    olm_account_identity_keys(alice, ids, idlen);
    raw_json_key(ids, idlen, "curve25519", alice_curve);
    olm_account_identity_keys(bob, ids, idlen);
    raw_json_key(ids, idlen, "curve25519", bob_curve);
    free(ids);
    OlmSession *out = olm_session(malloc(olm_session_size()));
    OlmSession *in = olm_session(malloc(olm_session_size()));
    unsigned char rnd[128];
    char msg[512], copy[512], plain[64];
    double spent = 0;
    long n = 0;
    while (spent < seconds) {
        size_t rlen = olm_account_generate_one_time_keys_random_length(bob, BATCH);
        unsigned char *orand = malloc(rlen);
        fill_random(orand, rlen);
        olm_account_generate_one_time_keys(bob, BATCH, orand, rlen);
        free(orand);
        size_t klen = olm_account_one_time_keys_length(bob);
        char *keys_text = malloc(klen);
        olm_account_one_time_keys(bob, keys_text, klen);
        olm_account_mark_keys_as_published(bob);
        json_t *doc = json_loadb(keys_text, klen, 0, NULL);
        free(keys_text);
        double start = mr_clock_mono_s();
        const char *id;
        json_t *key;
        json_object_foreach(json_object_get(doc, "curve25519"), id, key) {
            const char *otk = json_string_value(key);
            fill_random(rnd, olm_create_outbound_session_random_length(out));
            olm_need(olm_create_outbound_session(out, alice, bob_curve, strlen(bob_curve), otk, strlen(otk), rnd,
                                                 olm_create_outbound_session_random_length(out)),
                     "olm_create_outbound_session", olm_session_last_error(out));
            fill_random(rnd, olm_encrypt_random_length(out));
            size_t mlen = olm_encrypt_message_length(out, 5);
            olm_need(olm_encrypt(out, "hello", 5, rnd, olm_encrypt_random_length(out), msg, mlen), "olm_encrypt",
                     olm_session_last_error(out));
            memcpy(copy, msg, mlen);
            olm_need(olm_create_inbound_session_from(in, bob, alice_curve, strlen(alice_curve), copy, mlen),
                     "olm_create_inbound_session_from", olm_session_last_error(in));
            memcpy(copy, msg, mlen);
            olm_need(olm_decrypt(in, 0, copy, mlen, plain, sizeof plain), "olm_decrypt", olm_session_last_error(in));
            olm_remove_one_time_keys(bob, in);
            olm_clear_session(out);
            olm_clear_session(in);
            out = olm_session(out);
            in = olm_session(in);
            n++;
        }
        spent += mr_clock_mono_s() - start;
        json_decref(doc);
    }
    free(out);
    free(in);
    olm_clear_account(alice);
    olm_clear_account(bob);
    free(alice);
    free(bob);
    return (double)n / spent;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (seconds <= 0)
        seconds = 2.0;
    printf("per second, one thread, %.1f s each; ratio = mr_olm / bare libolm\n", seconds);
    printf("%-28s %12s %12s %8s\n", "operation", "libolm", "mr_olm", "ratio");
    bench_megolm(seconds);
    bench_room(seconds);
    double raw = olm_setup_raw(seconds);
    double ours = olm_setup_ours(seconds);
    printf("%-28s %12.0f %12.0f %8.2f\n", "olm session set-up", raw, ours, ours / raw);
    printf("(set-up: claimed key, outbound session, pre-key encrypt, inbound session, decrypt; mr_olm also\n"
           " verifies the claimed key's signature, which bare libolm skips)\n"
           "(room event: crypto_outbound_encrypt, payload built and m.room.encrypted content made; intent +\n"
           " SQLite: crypto_engine_outbound and its commit, the session read, unpickled, pickled and sealed\n"
           " into the store for every message; both beside bare olm_group_encrypt of the same payload)\n");
    return 0;
}
