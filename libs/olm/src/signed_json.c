/* signed_json.c -- signing JSON objects and checking their signatures, as the spec's "Signing
 * JSON" appendix says: over the canonical JSON without `signatures` and `unsigned`. */
#include "olm_internal.h"

#include <stdlib.h>
#include <string.h>

/* obj's canonical JSON without `signatures` and `unsigned`. */
static mr_code signed_bytes(const json_t *obj, char **out, size_t *len, mr_err *err)
{
    if (!json_is_object(obj))
        return mr_err_set(err, MR_EINVAL, "signed JSON must be an object");
    json_t *copy = json_copy((json_t *)obj);
    if (!copy)
        return mr_err_set(err, MR_ENOMEM, "out of memory copying a JSON object to sign");
    json_object_del(copy, "signatures");
    json_object_del(copy, "unsigned");
    mr_code rc = mr_olm_canonical_json(copy, out, len, err);
    json_decref(copy);
    return rc;
}

mr_code mr_olm_sign_json_with(json_t *obj, const char *user_id, const char *key_id, mr_olm_sign_fn sign, void *ctx,
                              mr_err *err)
{
    json_t *sigs = json_object_get(obj, "signatures");
    if (sigs && !json_is_object(sigs))
        return mr_err_set(err, MR_EINVAL, "cannot sign: \"signatures\" is not an object");
    json_t *mine = json_object_get(sigs, user_id);
    if (mine && !json_is_object(mine))
        return mr_err_set(err, MR_EINVAL, "cannot sign: \"signatures\".\"%s\" is not an object", user_id);
    char *bytes = NULL;
    size_t len = 0;
    mr_code rc = signed_bytes(obj, &bytes, &len, err);
    if (rc != MR_OK)
        return rc;
    char sig[MR_OLM_SIGNATURE_SIZE];
    rc = sign(ctx, bytes, len, sig, err);
    free(bytes);
    if (rc != MR_OK)
        return rc;

    /* Sign into a copy of `signatures` and swap it in at the end: a failure leaves obj as it was. */
    json_t *new_sigs = sigs ? json_deep_copy(sigs) : json_object();
    json_t *new_mine = json_object_get(new_sigs, user_id);
    if (new_sigs && !new_mine && json_object_set_new(new_sigs, user_id, json_object()) == 0)
        new_mine = json_object_get(new_sigs, user_id);
    if (!new_mine || json_object_set_new(new_mine, key_id, json_string(sig)) != 0 ||
        json_object_set(obj, "signatures", new_sigs) != 0)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory adding a signature by %s %s", user_id, key_id);
    json_decref(new_sigs);
    return rc;
}

mr_code mr_olm_verify_json(const json_t *obj, const char *user_id, const char *key_id, const char *ed25519,
                           mr_err *err)
{
    if (!json_is_object(obj))
        return mr_err_set(err, MR_EINVAL, "signed JSON must be an object");
    if (!user_id || !key_id)
        return mr_err_set(err, MR_EINVAL, "checking a signature needs the signer's user ID and key ID");
    mr_code rc = mr_olm_check_b64("the Ed25519 key to verify with", ed25519, 32, err);
    if (rc != MR_OK)
        return rc;
    json_t *sig = json_object_get(json_object_get(json_object_get(obj, "signatures"), user_id), key_id);
    if (!json_is_string(sig))
        return mr_err_set(err, MR_EAUTH, "no signature by %s %s (\"signatures\".\"%s\".\"%s\" is missing)", user_id,
                          key_id, user_id, key_id);
    char field[160];
    snprintf(field, sizeof field, "the signature by %s %s", user_id, key_id);
    rc = mr_olm_check_b64(field, json_string_value(sig), 64, err);
    if (rc != MR_OK)
        return rc;

    char *bytes = NULL;
    size_t len = 0;
    rc = signed_bytes(obj, &bytes, &len, err);
    if (rc != MR_OK)
        return rc;
    char sig_copy[MR_OLM_SIGNATURE_SIZE];
    memcpy(sig_copy, json_string_value(sig), sizeof sig_copy);
    size_t size = olm_utility_size();
    void *mem = mr_olm_mem_new(size, "an Olm utility", err);
    if (!mem) {
        free(bytes);
        return MR_ENOMEM;
    }
    OlmUtility *u = olm_utility(mem);
    /* libolm decodes the signature in place, hence the copy. */
    if (olm_ed25519_verify(u, ed25519, strlen(ed25519), bytes, len, sig_copy, strlen(sig_copy)) == olm_error())
        rc = mr_err_set(err, MR_EAUTH, "the signature by %s %s does not verify with key %s: libolm %s", user_id,
                        key_id, ed25519, olm_utility_last_error(u));
    olm_clear_utility(u);
    mr_olm_mem_free(mem, size);
    free(bytes);
    return rc;
}
