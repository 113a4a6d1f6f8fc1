/* keys_upload.c -- the JSON a device publishes through /keys/upload: its signed device_keys and
 * its signed_curve25519 one-time and fallback keys. */
#include "olm_internal.h"

#include <stdlib.h>

#include "mindroom/str.h"

/* Sets "<algorithm>:<id>" = value in obj. */
static mr_code set_key(json_t *obj, const char *algorithm, const char *id, json_t *value, mr_err *err)
{
    char *name = mr_str_printf("%s:%s", algorithm, id);
    if (!name) {
        json_decref(value);
        return mr_err_set(err, MR_ENOMEM, "out of memory naming key %s:%s", algorithm, id);
    }
    mr_code rc = mr_olm_json_set(obj, name, value, err);
    free(name);
    return rc;
}

mr_code mr_olm_account_device_keys(mr_olm_account *a, const char *user_id, const char *device_id, json_t **out,
                                   mr_err *err)
{
    *out = NULL;
    if (!user_id || user_id[0] != '@' || !device_id || !device_id[0])
        return mr_err_set(err, MR_EINVAL,
                          "device keys need a user ID (\"@user:server\") and a device ID, got %s and %s",
                          user_id ? user_id : "none", device_id ? device_id : "none");
    json_t *dk = json_object();
    json_t *keys = json_object();
    json_t *algorithms = json_pack("[ss]", MR_OLM_ALGORITHM_OLM, MR_OLM_ALGORITHM_MEGOLM);
    mr_code rc = !dk || !keys || !algorithms ? mr_err_set(err, MR_ENOMEM, "out of memory building device_keys") : MR_OK;
    if (rc == MR_OK)
        rc = set_key(keys, "curve25519", device_id, json_string(a->curve25519), err);
    if (rc == MR_OK)
        rc = set_key(keys, "ed25519", device_id, json_string(a->ed25519), err);
    if (rc == MR_OK)
        rc = mr_olm_json_set(dk, "user_id", json_string(user_id), err);
    if (rc == MR_OK)
        rc = mr_olm_json_set(dk, "device_id", json_string(device_id), err);
    if (rc == MR_OK) {
        rc = mr_olm_json_set(dk, "algorithms", algorithms, err);
        algorithms = NULL;
    }
    if (rc == MR_OK) {
        rc = mr_olm_json_set(dk, "keys", keys, err);
        keys = NULL;
    }
    if (rc == MR_OK)
        rc = mr_olm_account_sign_json(a, dk, user_id, device_id, err);
    json_decref(algorithms);
    json_decref(keys);
    if (rc != MR_OK) {
        json_decref(dk);
        return rc;
    }
    *out = dk;
    return MR_OK;
}

/* Turns {"<id>": "<key>"} into {"signed_curve25519:<id>": {"key", ["fallback": true,]
 * "signatures"}}, each signed by the account. */
static mr_code signed_keys(mr_olm_account *a, const json_t *plain, bool fallback, const char *user_id,
                           const char *device_id, json_t **out, mr_err *err)
{
    json_t *all = json_object();
    if (!all)
        return mr_err_set(err, MR_ENOMEM, "out of memory building one-time keys");
    mr_code rc = MR_OK;
    const char *id;
    json_t *key;
    json_object_foreach((json_t *)plain, id, key) {
        json_t *obj = json_pack("{sO}", "key", key);
        if (!obj || (fallback && json_object_set_new(obj, "fallback", json_true()) != 0))
            rc = mr_err_set(err, MR_ENOMEM, "out of memory building one-time key %s", id);
        if (rc == MR_OK)
            rc = mr_olm_account_sign_json(a, obj, user_id, device_id, err);
        if (rc != MR_OK) {
            json_decref(obj);
            break;
        }
        rc = set_key(all, "signed_curve25519", id, obj, err);
        if (rc != MR_OK)
            break;
    }
    if (rc != MR_OK) {
        json_decref(all);
        return rc;
    }
    *out = all;
    return MR_OK;
}

/* Adds the account's unpublished keys, read by get, as body[field] when there are any. */
static mr_code add_signed_keys(mr_olm_account *a, json_t *body, const char *field, bool fallback,
                               mr_code (*get)(mr_olm_account *, json_t **, mr_err *), const char *user_id,
                               const char *device_id, mr_err *err)
{
    json_t *plain = NULL, *signed_map = NULL;
    mr_code rc = get(a, &plain, err);
    if (rc == MR_OK && json_object_size(plain) > 0) {
        rc = signed_keys(a, plain, fallback, user_id, device_id, &signed_map, err);
        if (rc == MR_OK)
            rc = mr_olm_json_set(body, field, signed_map, err);
    }
    json_decref(plain);
    return rc;
}

mr_code mr_olm_account_keys_upload_body(mr_olm_account *a, const char *user_id, const char *device_id,
                                        bool with_device_keys, json_t **body, mr_err *err)
{
    *body = NULL;
    json_t *b = json_object();
    if (!b)
        return mr_err_set(err, MR_ENOMEM, "out of memory building the /keys/upload body");
    json_t *dk = NULL;
    /* device_keys also checks user_id and device_id, so do it first even when not sent. */
    mr_code rc = mr_olm_account_device_keys(a, user_id, device_id, &dk, err);
    if (rc == MR_OK && with_device_keys) {
        rc = mr_olm_json_set(b, "device_keys", dk, err);
        dk = NULL;
    }
    json_decref(dk);
    if (rc == MR_OK)
        rc = add_signed_keys(a, b, "one_time_keys", false, mr_olm_account_one_time_keys, user_id, device_id, err);
    if (rc == MR_OK)
        rc = add_signed_keys(a, b, "fallback_keys", true, mr_olm_account_unpublished_fallback_key, user_id,
                             device_id, err);
    if (rc != MR_OK) {
        json_decref(b);
        return rc;
    }
    *body = b;
    return MR_OK;
}
