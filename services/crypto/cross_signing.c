/* cross_signing.c -- each managed account's cross-signing identity: a master and a self-signing
 * key made once and kept sealed under crypto:xsign:<user_id> ({master, self_signing, uploaded,
 * signed}), uploaded through the gateway (keys_device_signing_upload) and then used to sign the
 * account's device (keys_signatures_upload), so that clients which share room keys only with
 * cross-signed devices (MSC4153) share them with ours. Each step is asked once per run; its
 * answer on matrix.keys moves on to the next, and a restart resumes where the store says. */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/b64.h"
#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"
#define SEED_LEN 32

static char *record_key(const char *user_id)
{
    return mr_str_printf("crypto:xsign:%s", user_id);
}

static mr_code seed_put(json_t *rec, const char *field, const mr_olm_signing_key *k, mr_err *err)
{
    unsigned char seed[SEED_LEN];
    char text[MR_B64URL_LEN(SEED_LEN) + 1];
    mr_olm_signing_key_seed(k, seed);
    mr_b64url_encode(seed, sizeof seed, text);
    mr_code rc = json_object_set_new(rec, field, json_string(text)) == 0
                     ? MR_OK
                     : mr_err_set(err, MR_ENOMEM, "out of memory keeping a cross-signing key");
    explicit_bzero(seed, sizeof seed);
    explicit_bzero(text, sizeof text);
    return rc;
}

static mr_code seed_get(json_t *rec, const char *key, const char *field, mr_olm_signing_key **k, mr_err *err)
{
    const char *text = mr_msg_string(rec, field);
    unsigned char seed[SEED_LEN];
    size_t len = 0;
    mr_code rc = text ? mr_b64_decode(text, strlen(text), MR_B64_STRICT, seed, sizeof seed, &len, err)
                      : mr_err_set(err, MR_EINVAL, "%s in the store lacks %s", key, field);
    if (rc == MR_OK)
        rc = mr_olm_signing_key_from_seed(seed, len, k, err);
    explicit_bzero(seed, sizeof seed);
    if (rc != MR_OK)
        mr_err_prefix(err, "%s", key);
    return rc;
}

/* The record of d's user, made (and saved, before anything public goes out) when absent. */
static mr_code record_load(crypto_engine *e, crypto_device *d, const char *key, json_t **rec, mr_err *err)
{
    mr_code rc = crypto_vault_get(&e->vault, key, rec, err);
    if (rc != MR_ENOTFOUND)
        return rc;
    mr_err_clear(err);
    mr_olm_signing_key *master = NULL, *ssk = NULL;
    rc = mr_olm_signing_key_new(&master, err);
    if (rc == MR_OK)
        rc = mr_olm_signing_key_new(&ssk, err);
    if (rc == MR_OK && !(*rec = json_pack("{s:b}", "uploaded", 0)))
        rc = mr_err_set(err, MR_ENOMEM, "out of memory making the cross-signing keys of %s", d->user_id);
    if (rc == MR_OK)
        rc = seed_put(*rec, "master", master, err);
    if (rc == MR_OK)
        rc = seed_put(*rec, "self_signing", ssk, err);
    if (rc == MR_OK)
        rc = crypto_vault_put(&e->vault, key, *rec, err);
    if (rc == MR_OK)
        mr_log_info(COMPONENT, "%s: new cross-signing keys (master %s)", d->user_id, mr_olm_signing_key_public(master));
    mr_olm_signing_key_free(master);
    mr_olm_signing_key_free(ssk);
    if (rc != MR_OK) {
        json_decref(*rec);
        *rec = NULL;
    }
    return rc;
}

/* The request for the step rec is at, or none (*kind NULL) when the device is signed. */
static mr_code next_body(crypto_device *d, const char *key, json_t *rec, const char **kind, json_t **body,
                         mr_err *err)
{
    mr_olm_signing_key *master = NULL, *ssk = NULL;
    const char *signed_dev = mr_msg_string(rec, "signed");
    *kind = NULL;
    *body = NULL;
    mr_code rc = seed_get(rec, key, "master", &master, err);
    if (rc == MR_OK)
        rc = seed_get(rec, key, "self_signing", &ssk, err);
    if (rc == MR_OK && !json_is_true(json_object_get(rec, "uploaded"))) {
        *kind = "keys_device_signing_upload";
        rc = mr_olm_cross_signing_upload_body(master, ssk, d->user_id, body, err);
    } else if (rc == MR_OK && (!signed_dev || strcmp(signed_dev, d->device_id) != 0)) {
        /* A new device of the account (another login) is signed by the same identity. */
        *kind = "keys_signatures_upload";
        rc = mr_olm_cross_signing_device_signature(ssk, d->account, d->user_id, d->device_id, body, err);
    }
    mr_olm_signing_key_free(master);
    mr_olm_signing_key_free(ssk);
    return rc;
}

mr_code crypto_xsign_step(crypto_engine *e, crypto_device *d, json_t *out, mr_err *err)
{
    if (!d->published || d->xsign_done || d->xsign_txn || d->xsign_refused)
        return MR_OK;
    char *key = record_key(d->user_id);
    json_t *rec = NULL, *body = NULL;
    const char *kind = NULL;
    mr_code rc = key ? record_load(e, d, key, &rec, err)
                     : mr_err_set(err, MR_ENOMEM, "out of memory reading the cross-signing keys of %s", d->user_id);
    if (rc == MR_OK)
        rc = next_body(d, key, rec, &kind, &body, err);
    if (rc == MR_OK && !kind) {
        d->xsign_done = true;
    } else if (rc == MR_OK) {
        char *txn = crypto_txn_new(e, "xs");
        json_t *req = txn ? json_pack("{s:i, s:s, s:s, s:s, s:s, s:o}", "v", 1, "type", "send_request", "account",
                                      d->user_id, "kind", kind, "txn_id", txn, "body", body)
                          : NULL;
        body = NULL;
        if (!req) {
            free(txn);
            rc = mr_err_set(err, MR_ENOMEM, "out of memory asking for the cross-signing of %s", d->user_id);
        } else {
            mr_log_info(COMPONENT, "%s: asking the gateway for %s (%s)", d->user_id, kind, txn);
            d->xsign_txn = txn;
            crypto_out_add(out, "matrix.send", d->user_id, req);
        }
    }
    json_decref(body);
    json_decref(rec);
    free(key);
    return rc;
}

/* What a keys_signatures_upload answer refused: its `failures`, as text; NULL when none. */
static char *failures(json_t *reply)
{
    json_t *f = json_object_get(json_object_get(reply, "response"), "failures");
    return json_object_size(f) ? json_dumps(f, JSON_COMPACT) : NULL;
}

mr_code crypto_xsign_answered(crypto_engine *e, crypto_device *d, json_t *reply, json_t *out, mr_err *err)
{
    const char *txn = mr_msg_string(reply, "txn_id"), *kind = mr_msg_string(reply, "kind");
    if (!d->xsign_txn || !txn || strcmp(txn, d->xsign_txn) != 0) {
        mr_log_info(COMPONENT, "%s: ignoring the answer to %s %s, not the one in flight", d->user_id, kind,
                    txn ? txn : "");
        return MR_OK;
    }
    free(d->xsign_txn);
    d->xsign_txn = NULL;
    char *failed = json_is_true(json_object_get(reply, "ok")) ? failures(reply) : NULL;
    if (!json_is_true(json_object_get(reply, "ok")) || failed) {
        /* Asking again would be refused again (no password, a wrong one): a restart tries. */
        const char *fields[] = {"account", d->user_id, "kind", kind, NULL};
        mr_log_write(MR_LOG_ERROR, COMPONENT, fields,
                     "%s: the homeserver refused %s: %s; clients that share keys only with cross-signed "
                     "devices will not share with this one", d->user_id, kind,
                     failed ? failed : mr_msg_string(reply, "error") ? mr_msg_string(reply, "error") : "");
        free(failed);
        d->xsign_refused = true;
        return MR_OK;
    }
    char *key = record_key(d->user_id);
    json_t *rec = NULL;
    mr_code rc = key ? crypto_vault_get(&e->vault, key, &rec, err)
                     : mr_err_set(err, MR_ENOMEM, "out of memory reading the cross-signing keys of %s", d->user_id);
    bool upload = strcmp(kind, "keys_device_signing_upload") == 0;
    if (rc == MR_OK && json_object_set_new(rec, upload ? "uploaded" : "signed",
                                           upload ? json_true() : json_string(d->device_id)) != 0)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory keeping the cross-signing state of %s", d->user_id);
    if (rc == MR_OK)
        rc = crypto_vault_put(&e->vault, key, rec, err);
    if (rc == MR_OK)
        mr_log_info(COMPONENT, "%s: %s", d->user_id,
                    upload ? "cross-signing keys published" : "device cross-signed by the self-signing key");
    json_decref(rec);
    free(key);
    return rc == MR_OK ? crypto_xsign_step(e, d, out, err) : rc;
}
