/* account.c -- Olm accounts: identity keys, signing, one-time and fallback keys, pickles. */
#include "olm_internal.h"

#include <stdlib.h>
#include <string.h>

MR_OLM_KIND(ACCOUNT_KIND, "an Olm account", olm_account_size, olm_account, olm_clear_account, olm_pickle_account_length,
            olm_pickle_account, olm_unpickle_account, olm_account_last_error, olm_account_last_error_code);

#define ACCOUNT_FAIL(a, err, what) mr_olm_object_fail(&ACCOUNT_KIND, (a)->olm, what, err)

/* An account around olm (a new one when NULL); NULL (err set, olm freed) when out of memory. */
static mr_olm_account *account_wrap(OlmAccount *olm, mr_err *err)
{
    mr_olm_account *a = calloc(1, sizeof *a);
    if (a)
        a->olm = olm ? olm : mr_olm_object_new(&ACCOUNT_KIND, err);
    if (!a || !a->olm) {
        mr_olm_object_free(&ACCOUNT_KIND, olm);
        free(a);
        mr_err_set(err, MR_ENOMEM, "out of memory allocating an Olm account");
        return NULL;
    }
    return a;
}

void mr_olm_account_free(mr_olm_account *a)
{
    if (!a)
        return;
    mr_olm_object_free(&ACCOUNT_KIND, a->olm);
    free(a);
}

/* Copies one key of libolm's identity keys JSON into out. */
static mr_code copy_identity_key(const json_t *keys, const char *name, char out[MR_OLM_KEY_SIZE], mr_err *err)
{
    const char *v = json_string_value(json_object_get(keys, name));
    if (!v || strlen(v) != MR_OLM_KEY_SIZE - 1)
        return mr_err_set(err, MR_EINTERNAL, "libolm gave no %s identity key", name);
    memcpy(out, v, MR_OLM_KEY_SIZE);
    return MR_OK;
}

static mr_code load_identity_keys(mr_olm_account *a, mr_err *err)
{
    size_t len = olm_account_identity_keys_length(a->olm);
    char *text = malloc(len);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading the identity keys");
    if (olm_account_identity_keys(a->olm, text, len) == olm_error()) {
        free(text);
        return ACCOUNT_FAIL(a, err, "reading the account's identity keys");
    }
    json_t *keys = json_loadb(text, len, 0, NULL);
    free(text);
    mr_code rc = copy_identity_key(keys, "curve25519", a->curve25519, err);
    if (rc == MR_OK)
        rc = copy_identity_key(keys, "ed25519", a->ed25519, err);
    json_decref(keys);
    return rc;
}

mr_code mr_olm_account_new(mr_olm_account **out, mr_err *err)
{
    *out = NULL;
    mr_olm_account *a = account_wrap(NULL, err);
    if (!a)
        return MR_ENOMEM;
    size_t rlen = olm_create_account_random_length(a->olm);
    unsigned char *rnd = NULL;
    mr_code rc = mr_olm_random_new(rlen, &rnd, err);
    if (rc == MR_OK && olm_create_account(a->olm, rnd, rlen) == olm_error())
        rc = ACCOUNT_FAIL(a, err, "creating an Olm account");
    mr_olm_free_secret(rnd, rlen);
    if (rc == MR_OK)
        rc = load_identity_keys(a, err);
    if (rc != MR_OK) {
        mr_olm_account_free(a);
        return rc;
    }
    *out = a;
    return MR_OK;
}

const char *mr_olm_account_curve25519(const mr_olm_account *a)
{
    return a->curve25519;
}

const char *mr_olm_account_ed25519(const mr_olm_account *a)
{
    return a->ed25519;
}

mr_code mr_olm_account_sign(mr_olm_account *a, const void *msg, size_t len, char sig[MR_OLM_SIGNATURE_SIZE],
                            mr_err *err)
{
    size_t n = olm_account_sign(a->olm, msg, len, sig, MR_OLM_SIGNATURE_SIZE - 1);
    if (n == olm_error())
        return ACCOUNT_FAIL(a, err, "signing with the account's Ed25519 key");
    sig[n] = '\0';
    return MR_OK;
}

static mr_code account_sign_cb(void *ctx, const void *msg, size_t len, char sig[MR_OLM_SIGNATURE_SIZE], mr_err *err)
{
    return mr_olm_account_sign(ctx, msg, len, sig, err);
}

mr_code mr_olm_account_sign_json(mr_olm_account *a, json_t *obj, const char *user_id, const char *device_id,
                                 mr_err *err)
{
    char key_id[300];
    if (snprintf(key_id, sizeof key_id, "ed25519:%s", device_id) >= (int)sizeof key_id)
        return mr_err_set(err, MR_EINVAL, "device ID %.40s... is too long", device_id);
    return mr_olm_sign_json_with(obj, user_id, key_id, account_sign_cb, a, err);
}

size_t mr_olm_account_max_one_time_keys(const mr_olm_account *a)
{
    return olm_account_max_number_of_one_time_keys(a->olm);
}

mr_code mr_olm_account_generate_one_time_keys(mr_olm_account *a, size_t n, mr_err *err)
{
    size_t max = mr_olm_account_max_one_time_keys(a);
    if (n == 0 || n > max)
        return mr_err_set(err, MR_EINVAL, "cannot generate %zu one-time keys: between 1 and %zu", n, max);
    size_t rlen = olm_account_generate_one_time_keys_random_length(a->olm, n);
    unsigned char *rnd = NULL;
    mr_code rc = mr_olm_random_new(rlen, &rnd, err);
    if (rc == MR_OK && olm_account_generate_one_time_keys(a->olm, n, rnd, rlen) == olm_error())
        rc = ACCOUNT_FAIL(a, err, "generating one-time keys");
    mr_olm_free_secret(rnd, rlen);
    return rc;
}

/* Reads a {"curve25519": {...}} key list of len bytes through get. */
static mr_code read_key_map(mr_olm_account *a, size_t len, size_t (*get)(OlmAccount *, void *, size_t),
                            const char *what, json_t **keys, mr_err *err)
{
    *keys = NULL;
    char *text = malloc(len);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading %s", what);
    size_t n = get(a->olm, text, len);
    mr_code rc = n == olm_error() ? ACCOUNT_FAIL(a, err, what)
                                  : mr_olm_parse_curve25519_map(text, n, what, keys, err);
    free(text);
    return rc;
}

mr_code mr_olm_account_one_time_keys(mr_olm_account *a, json_t **keys, mr_err *err)
{
    return read_key_map(a, olm_account_one_time_keys_length(a->olm), olm_account_one_time_keys,
                        "reading the one-time keys", keys, err);
}

mr_code mr_olm_account_generate_fallback_key(mr_olm_account *a, mr_err *err)
{
    size_t rlen = olm_account_generate_fallback_key_random_length(a->olm);
    unsigned char *rnd = NULL;
    mr_code rc = mr_olm_random_new(rlen, &rnd, err);
    if (rc == MR_OK && olm_account_generate_fallback_key(a->olm, rnd, rlen) == olm_error())
        rc = ACCOUNT_FAIL(a, err, "generating a fallback key");
    mr_olm_free_secret(rnd, rlen);
    return rc;
}

mr_code mr_olm_account_unpublished_fallback_key(mr_olm_account *a, json_t **keys, mr_err *err)
{
    return read_key_map(a, olm_account_unpublished_fallback_key_length(a->olm),
                        olm_account_unpublished_fallback_key, "reading the fallback key", keys, err);
}

void mr_olm_account_forget_old_fallback_key(mr_olm_account *a)
{
    olm_account_forget_old_fallback_key(a->olm);
}

void mr_olm_account_mark_published(mr_olm_account *a)
{
    olm_account_mark_keys_as_published(a->olm);
}

mr_code mr_olm_account_pickle(mr_olm_account *a, const void *key, size_t key_len, char **pickle, mr_err *err)
{
    return mr_olm_object_pickle(&ACCOUNT_KIND, a->olm, key, key_len, pickle, err);
}

mr_code mr_olm_account_unpickle(const char *pickle, const void *key, size_t key_len, mr_olm_account **out,
                                mr_err *err)
{
    *out = NULL;
    void *olm = NULL;
    mr_code rc = mr_olm_object_unpickle(&ACCOUNT_KIND, pickle, key, key_len, &olm, err);
    if (rc != MR_OK)
        return rc;
    mr_olm_account *a = account_wrap(olm, err);
    if (!a)
        return MR_ENOMEM;
    rc = load_identity_keys(a, err);
    if (rc != MR_OK) {
        mr_olm_account_free(a);
        return rc;
    }
    *out = a;
    return MR_OK;
}
