/* devices.c -- the Olm account of each managed account's device: made once per device and kept
 * sealed under crypto:account:<user_id>, its device keys, one-time keys and fallback key
 * uploaded through the gateway (keys_upload on matrix.send, answered on matrix.keys). */
#include "crypto_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/json.h"
#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"
#define OTK_ALGORITHM "signed_curve25519"

static void device_free(crypto_device *d)
{
    if (!d)
        return;
    mr_olm_account_free(d->account);
    free(d->user_id);
    free(d->device_id);
    free(d->upload_txn);
    free(d->xsign_txn);
    json_decref(d->later_counts);
    free(d);
}

char *crypto_txn_new(crypto_engine *e, const char *prefix)
{
    return mr_str_printf("%s.%lld.%lu", prefix, e->boot_ms, ++e->seq);
}

mr_code crypto_engine_init(crypto_engine *e, mr_store *store, const unsigned char *secret, size_t len, mr_err *err)
{
    memset(e, 0, sizeof *e);
    e->boot_ms = mr_clock_wall_ms();
    return crypto_vault_init(&e->vault, store, secret, len, err);
}

void crypto_engine_free(crypto_engine *e)
{
    for (size_t i = 0; i < e->n_devices; i++)
        device_free(e->devices[i]);
    free(e->devices);
    crypto_vault_wipe(&e->vault);
    memset(e, 0, sizeof *e);
}

void crypto_out_add(json_t *out, const char *topic, const char *key, json_t *msg)
{
    json_array_append_new(out, json_pack("{s:s, s:s, s:o}", "topic", topic, "key", key, "msg", msg));
}

mr_code crypto_out_put(json_t *out, const char *key, json_t *value, bool sealed, mr_err *err)
{
    json_t *o = json_pack("{s:s, s:o*, s:b}", "put", key, "value", value, "sealed", sealed);
    if (!o || json_array_append_new(out, o) != 0)
        return mr_err_set(err, MR_ENOMEM, "out of memory keeping %s", key);
    return MR_OK;
}

crypto_device *crypto_device_of(crypto_engine *e, const char *user_id)
{
    for (size_t i = 0; i < e->n_devices; i++)
        if (strcmp(e->devices[i]->user_id, user_id) == 0)
            return e->devices[i];
    return NULL;
}

static char *account_key(const char *user_id)
{
    return mr_str_printf("crypto:account:%s", user_id);
}

mr_code crypto_device_save(crypto_engine *e, crypto_device *d, mr_err *err)
{
    char *pickle = NULL, *key = account_key(d->user_id);
    if (!key)
        return mr_err_set(err, MR_ENOMEM, "out of memory saving the device of %s", d->user_id);
    mr_code rc = mr_olm_account_pickle(d->account, e->vault.pickle_key, sizeof e->vault.pickle_key, &pickle, err);
    json_t *rec = rc == MR_OK ? json_pack("{s:s, s:s, s:b, s:s?}", "device_id", d->device_id, "pickle", pickle,
                                          "published", d->published, "upload_txn", d->upload_txn)
                              : NULL;
    if (rc == MR_OK && !rec)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory saving the device of %s", d->user_id);
    if (rc == MR_OK)
        rc = crypto_vault_put(&e->vault, key, rec, err);
    json_decref(rec);
    mr_olm_free_secret(pickle, pickle ? strlen(pickle) : 0);
    free(key);
    return rc;
}

/* The stored account of d's user when it belongs to d's device: a login on another device is
 * another device, with keys of its own. */
static mr_code load(crypto_engine *e, crypto_device *d, bool *found, mr_err *err)
{
    char *key = account_key(d->user_id);
    json_t *rec = NULL;
    mr_code rc = key ? crypto_vault_get(&e->vault, key, &rec, err)
                     : mr_err_set(err, MR_ENOMEM, "out of memory loading the device of %s", d->user_id);
    *found = false;
    if (rc == MR_ENOTFOUND) {
        free(key);
        mr_err_clear(err);
        return MR_OK;
    }
    const char *dev = mr_msg_string(rec, "device_id"), *pickle = mr_msg_string(rec, "pickle");
    if (rc == MR_OK && (!dev || !pickle))
        rc = mr_err_set(err, MR_EINVAL, "%s in the store lacks device_id or pickle", key);
    if (rc == MR_OK && strcmp(dev, d->device_id) == 0) {
        rc = mr_olm_account_unpickle(pickle, e->vault.pickle_key, sizeof e->vault.pickle_key, &d->account, err);
        const char *txn = mr_msg_string(rec, "upload_txn");
        d->published = json_is_true(json_object_get(rec, "published"));
        if (rc == MR_OK && txn && !(d->upload_txn = strdup(txn)))
            rc = mr_err_set(err, MR_ENOMEM, "out of memory loading %s", key);
        *found = rc == MR_OK;
    } else if (rc == MR_OK) {
        mr_log_warn(COMPONENT, "%s now logs in as device %s (was %s): it gets new keys", d->user_id, d->device_id,
                    dev);
    }
    json_decref(rec);
    free(key);
    return rc;
}

mr_code crypto_device_get(crypto_engine *e, const char *user_id, const char *device_id, crypto_device **out,
                          mr_err *err)
{
    crypto_device *d = crypto_device_of(e, user_id);
    if (d && strcmp(d->device_id, device_id) == 0) {
        *out = d;
        return MR_OK;
    }
    crypto_device *nd = calloc(1, sizeof *nd);
    crypto_device **grown = d ? e->devices : realloc(e->devices, (e->n_devices + 1) * sizeof *grown);
    if (grown)
        e->devices = grown;
    if (!nd || !grown || !(nd->user_id = strdup(user_id)) || !(nd->device_id = strdup(device_id))) {
        device_free(nd);
        return mr_err_set(err, MR_ENOMEM, "out of memory loading the device of %s", user_id);
    }
    bool found = false;
    mr_code rc = load(e, nd, &found, err);
    if (rc == MR_OK && !found) {
        rc = mr_olm_account_new(&nd->account, err);
        if (rc == MR_OK)
            rc = crypto_device_save(e, nd, err);
        if (rc == MR_OK)
            mr_log_info(COMPONENT, "%s: new Olm account for device %s (Curve25519 %s)", user_id, device_id,
                        mr_olm_account_curve25519(nd->account));
    }
    if (rc != MR_OK) {
        device_free(nd);
        return rc;
    }
    if (d) {
        for (size_t i = 0; i < e->n_devices; i++)
            if (e->devices[i] == d)
                e->devices[i] = nd;
        device_free(d);
    } else {
        e->devices[e->n_devices++] = nd;
    }
    *out = nd;
    return MR_OK;
}

mr_code crypto_device_stored(crypto_engine *e, const char *user_id, crypto_device **out, mr_err *err)
{
    *out = crypto_device_of(e, user_id);
    if (*out)
        return MR_OK;
    char *key = account_key(user_id);
    json_t *rec = NULL;
    mr_code rc = key ? crypto_vault_get(&e->vault, key, &rec, err)
                     : mr_err_set(err, MR_ENOMEM, "out of memory loading the device of %s", user_id);
    const char *dev = mr_msg_string(rec, "device_id");
    if (rc == MR_OK && !dev)
        rc = mr_err_set(err, MR_EINVAL, "%s in the store lacks device_id", key);
    if (rc == MR_OK)
        rc = crypto_device_get(e, user_id, dev, out, err);
    json_decref(rec);
    free(key);
    return rc;
}

/* The keys_upload request for d's unpublished keys, remembered as in flight before it goes. */
static mr_code request_upload(crypto_engine *e, crypto_device *d, json_t *out, mr_err *err)
{
    json_t *body = NULL;
    mr_code rc = mr_olm_account_keys_upload_body(d->account, d->user_id, d->device_id, !d->published, &body, err);
    if (rc != MR_OK)
        return rc;
    char *txn = crypto_txn_new(e, "ku");
    json_t *req = txn ? json_pack("{s:i, s:s, s:s, s:s, s:s, s:o}", "v", 1, "type", "send_request", "account",
                                  d->user_id, "kind", "keys_upload", "txn_id", txn, "body", body)
                      : NULL;
    if (!req) {
        if (!txn)
            json_decref(body);
        free(txn);
        return mr_err_set(err, MR_ENOMEM, "out of memory asking to upload the keys of %s", d->user_id);
    }
    free(d->upload_txn);
    d->upload_txn = txn;
    mr_log_info(COMPONENT, "%s: asking the gateway to upload %s%zu one-time keys%s (%s)", d->user_id,
                json_object_get(body, "device_keys") ? "the device keys, " : "",
                json_object_size(json_object_get(body, "one_time_keys")),
                json_object_size(json_object_get(body, "fallback_keys")) ? " and a fallback key" : "", txn);
    /* Saved first: the private halves of what goes out must survive a crash. */
    rc = crypto_device_save(e, d, err);
    if (rc == MR_OK)
        crypto_out_add(out, "matrix.send", d->user_id, req);
    else
        json_decref(req);
    return rc;
}

mr_code crypto_device_top_up(crypto_engine *e, crypto_device *d, json_t *counts, json_t *fallback_types,
                             json_t *out, mr_err *err)
{
    if (d->upload_txn) {
        /* Counts that dropped meanwhile (a claim) are not published again by the gateway until
         * they change: kept for when the upload is answered. */
        json_t *later = json_pack("{s:O*, s:O*}", "one_time_key_counts", counts, "unused_fallback_key_types",
                                  fallback_types);
        if (!later)
            return mr_err_set(err, MR_ENOMEM, "out of memory keeping the key counts of %s", d->user_id);
        json_decref(d->later_counts);
        d->later_counts = later;
        return MR_OK;
    }
    size_t target = mr_olm_account_max_one_time_keys(d->account) / 2;
    json_t *have = json_object_get(counts, OTK_ALGORITHM);
    size_t count = json_is_integer(have) && json_integer_value(have) > 0 ? (size_t)json_integer_value(have) : 0;
    bool need_otks = counts && count < target;
    bool need_fallback =
        !d->published || (fallback_types && !mr_json_array_has(fallback_types, OTK_ALGORITHM));
    if (d->published && !need_otks && !need_fallback)
        return MR_OK;
    mr_code rc = MR_OK;
    json_t *unpublished = NULL;
    /* Keys made before a crash and not yet published count toward the target. */
    if (need_otks && (rc = mr_olm_account_one_time_keys(d->account, &unpublished, err)) == MR_OK) {
        size_t pending = json_object_size(unpublished);
        if (count + pending < target)
            rc = mr_olm_account_generate_one_time_keys(d->account, target - count - pending, err);
    }
    json_decref(unpublished);
    if (rc == MR_OK && need_fallback) {
        json_t *fb = NULL;
        rc = mr_olm_account_unpublished_fallback_key(d->account, &fb, err);
        if (rc == MR_OK && json_object_size(fb) == 0)
            rc = mr_olm_account_generate_fallback_key(d->account, err);
        json_decref(fb);
    }
    return rc == MR_OK ? request_upload(e, d, out, err) : rc;
}

mr_code crypto_device_uploaded(crypto_engine *e, crypto_device *d, json_t *reply, mr_err *err)
{
    const char *txn = mr_msg_string(reply, "txn_id");
    if (!d->upload_txn || !txn || strcmp(txn, d->upload_txn) != 0) {
        mr_log_info(COMPONENT, "%s: ignoring the answer to keys_upload %s, not the one in flight", d->user_id,
                    txn ? txn : "");
        return MR_OK;
    }
    free(d->upload_txn);
    d->upload_txn = NULL;
    if (!json_is_true(json_object_get(reply, "ok"))) {
        /* The keys stay unpublished; the next key counts from sync ask again. */
        mr_log_error(COMPONENT, "%s: the homeserver refused the keys of device %s: %s", d->user_id, d->device_id,
                     mr_msg_string(reply, "error") ? mr_msg_string(reply, "error") : "");
        return crypto_device_save(e, d, err);
    }
    mr_olm_account_mark_published(d->account);
    if (!d->published)
        mr_log_info(COMPONENT, "%s: device %s published its keys (Ed25519 %s)", d->user_id, d->device_id,
                    mr_olm_account_ed25519(d->account));
    d->published = true;
    return crypto_device_save(e, d, err);
}
