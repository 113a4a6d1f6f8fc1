/* olm_common.c -- memory, randomness, error names and input checks around every libolm call. */
#include "olm_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mindroom/b64.h"

void mr_olm_free_secret(void *p, size_t len)
{
    if (!p)
        return;
    explicit_bzero(p, len);
    free(p);
}

void *mr_olm_mem_new(size_t size, const char *what, mr_err *err)
{
    void *mem = calloc(1, size);
    if (!mem)
        mr_err_set(err, MR_ENOMEM, "out of memory allocating %s (%zu bytes)", what, size);
    return mem;
}

void mr_olm_mem_free(void *mem, size_t size)
{
    mr_olm_free_secret(mem, size);
}

mr_code mr_olm_random(void *buf, size_t len, mr_err *err)
{
    unsigned char *p = buf;
    size_t got = 0;
    /* getrandom returns at most 32 MiB per call and may be cut short by a signal. */
    while (got < len) {
        ssize_t n = getrandom(p + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mr_err_errno(err, MR_EIO, errno, "getrandom for %zu bytes of key material", len);
        }
        got += (size_t)n;
    }
    return MR_OK;
}

mr_code mr_olm_random_new(size_t len, unsigned char **buf, mr_err *err)
{
    *buf = mr_olm_mem_new(len ? len : 1, "random bytes", err);
    if (!*buf)
        return MR_ENOMEM;
    mr_code rc = mr_olm_random(*buf, len, err);
    if (rc != MR_OK) {
        mr_olm_free_secret(*buf, len);
        *buf = NULL;
    }
    return rc;
}

mr_code mr_olm_fail(mr_err *err, enum OlmErrorCode code, const char *olm_text, const char *what)
{
    mr_code rc = MR_EINTERNAL;
    const char *hint = "";
    switch (code) {
    case OLM_BAD_ACCOUNT_KEY:
        rc = MR_EAUTH;
        hint = " (wrong pickle key, or the pickle was altered)";
        break;
    case OLM_BAD_MESSAGE_MAC:
        rc = MR_EAUTH;
        hint = " (the message was not made by this session, or was altered)";
        break;
    case OLM_BAD_SIGNATURE:
        rc = MR_EAUTH;
        hint = " (the message signature does not verify)";
        break;
    case OLM_BAD_MESSAGE_KEY_ID:
        rc = MR_ENOTFOUND;
        hint = " (the one-time key it names is not in this account: used already or never ours)";
        break;
    case OLM_UNKNOWN_MESSAGE_INDEX:
        rc = MR_ENOTFOUND;
        hint = " (the message is older than the first index this session knows)";
        break;
    case OLM_INVALID_BASE64:
    case OLM_BAD_MESSAGE_VERSION:
    case OLM_BAD_MESSAGE_FORMAT:
    case OLM_BAD_SESSION_KEY:
    case OLM_CORRUPTED_PICKLE:
    case OLM_UNKNOWN_PICKLE_VERSION:
    case OLM_BAD_LEGACY_ACCOUNT_PICKLE:
    case OLM_PICKLE_EXTRA_DATA:
    case OLM_INPUT_BUFFER_TOO_SMALL:
        rc = MR_EINVAL;
        break;
    default:
        break;
    }
    return mr_err_set(err, rc, "%s: libolm %s%s", what, olm_text ? olm_text : "error", hint);
}

mr_code mr_olm_check_b64(const char *field, const char *s, size_t want, mr_err *err)
{
    if (!s)
        return mr_err_set(err, MR_EINVAL, "%s is missing", field);
    size_t len = strlen(s);
    /* Matrix uses the standard alphabet; libolm would misread the URL one. */
    size_t bad = strcspn(s, "-_=");
    if (bad < len)
        return mr_err_set(err, MR_EINVAL, "%s: character %zu is not unpadded standard base64", field, bad + 1);
    if (want > 0 && len != (want * 4 + 2) / 3)
        return mr_err_set(err, MR_EINVAL, "%s: %zu characters of base64, expected %zu (%zu bytes)", field, len,
                          (want * 4 + 2) / 3, want);
    mr_err why = {0};
    size_t n = 0;
    if (mr_b64_decode(s, len, MR_B64_STD_TOO | MR_B64_STRICT, NULL, 0, &n, &why) != MR_OK)
        return mr_err_set(err, MR_EINVAL, "%s: %s", field, why.msg);
    return MR_OK;
}

mr_code mr_olm_check_pickle_key(const void *key, size_t len, const char *what, mr_err *err)
{
    if (!key || len < MR_OLM_PICKLE_KEY_MIN)
        return mr_err_set(err, MR_EINVAL, "%s: the pickle key has %zu bytes, at least %d are needed", what,
                          key ? len : 0, MR_OLM_PICKLE_KEY_MIN);
    return MR_OK;
}

mr_code mr_olm_copy(const char *s, const char *what, char **copy, size_t *len, mr_err *err)
{
    *copy = NULL;
    *len = 0;
    if (!s)
        return mr_err_set(err, MR_EINVAL, "%s is missing", what);
    size_t n = strlen(s);
    *copy = malloc(n + 1);
    if (!*copy)
        return mr_err_set(err, MR_ENOMEM, "out of memory copying %s (%zu bytes)", what, n);
    memcpy(*copy, s, n + 1);
    *len = n;
    return MR_OK;
}

mr_code mr_olm_json_set(json_t *obj, const char *key, json_t *value, mr_err *err)
{
    if (!value || json_object_set_new(obj, key, value) != 0)
        return mr_err_set(err, MR_ENOMEM, "out of memory setting \"%s\" in a JSON object", key);
    return MR_OK;
}

mr_code mr_olm_parse_curve25519_map(const char *text, size_t len, const char *what, json_t **out, mr_err *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    json_t *map = json_object_get(doc, "curve25519");
    if (!json_is_object(map)) {
        json_decref(doc);
        return mr_err_set(err, MR_EINTERNAL, "%s: libolm gave no \"curve25519\" object", what);
    }
    *out = json_incref(map);
    json_decref(doc);
    return MR_OK;
}
