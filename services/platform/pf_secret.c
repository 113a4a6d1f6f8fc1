/* pf_secret.c -- an instance's Secret: the two values generated once (never again, never logged
 * or stored elsewhere) beside the platform's INSTANCE_SECRET_* copies, which follow the platform's
 * environment, and the digest that rolls the pods when the Secret changes. */
#include "pf_internal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/b64.h"
#include "mindroom/log.h"

/* The values the platform generates; the rest of the Secret are copies. */
static const char *const generated[] = {"MINDROOM_INSTANCE_SECRET", "MINDROOM_API_KEY", NULL};
#define GENERATED_BYTES 32

static void random_hex(char *out, size_t bytes)
{
    unsigned char raw[64];
    /* A guessable instance secret is worse than none: stop. */
    if (bytes > sizeof raw || RAND_bytes(raw, (int)bytes) != 1)
        abort();
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof raw);
}

/* One value of a Secret as the API returns it (data: padded standard base64); NULL when absent
 * or not text. The caller wipes and frees it. */
static char *secret_value(const json_t *secret, const char *name)
{
    const char *b64 = json_string_value(json_object_get(json_object_get(secret, "data"), name));
    if (!b64)
        return NULL;
    size_t len = strcspn(b64, "="), n = 0;
    char *out = malloc(len + 1);
    mr_err err = {0};
    if (out && mr_b64_decode(b64, len, MR_B64_STD_TOO, (unsigned char *)out, len, &n, &err) == MR_OK && n <= len &&
        memchr(out, '\0', n) == NULL) {
        out[n] = '\0';
        return out;
    }
    free(out);
    return NULL;
}

/* Sets o[k] to a copy of v; false when out of memory. */
static bool put_string(json_t *o, const char *k, const char *v)
{
    json_t *s = json_string(v);
    return s && json_object_set_new(o, k, s) == 0;
}

static mr_code digest(pf_secret *s, mr_err *err)
{
    /* Over every value, the generated instance secret among them: 32 random bytes make the digest
     * useless for guessing the other values from a pod annotation. */
    char *canon = json_dumps(s->data, JSON_COMPACT | JSON_SORT_KEYS);
    if (!canon)
        return mr_err_set(err, MR_ENOMEM, "out of memory digesting a Secret");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = EVP_Digest(canon, strlen(canon), md, &n, EVP_sha256(), NULL);
    OPENSSL_cleanse(canon, strlen(canon));
    free(canon);
    if (ok != 1 || n != 32)
        return mr_err_set(err, MR_EINTERNAL, "OpenSSL has no SHA-256 for the Secret's digest");
    for (unsigned i = 0; i < n; i++)
        snprintf(s->checksum + 2 * i, 3, "%02x", md[i]);
    return MR_OK;
}

/* A bus or store URL the operator keeps in the Secret (it carries a password) gets the
 * instance's prefix there, as the chart gives it to the URLs in values (tenant.prefix). */
static mr_code prefix_urls(json_t *data, const char *id, mr_err *err)
{
    static const char *const urls[] = {"MINDROOM_BUS_URL", "MINDROOM_STORE_URL", NULL};
    for (const char *const *u = urls; *u; u++) {
        const char *url = json_string_value(json_object_get(data, *u));
        if (!url || !*url)
            continue;
        size_t n = strlen(url) + strlen(id) + sizeof "&prefix=";
        char *with = malloc(n);
        if (!with)
            return mr_err_set(err, MR_ENOMEM, "out of memory making the Secret of %s", id);
        snprintf(with, n, "%s%cprefix=%s", url, strchr(url, '?') ? '&' : '?', id);
        bool ok = put_string(data, *u, with);
        OPENSSL_cleanse(with, n);
        free(with);
        if (!ok)
            return mr_err_set(err, MR_ENOMEM, "out of memory making the Secret of %s", id);
    }
    return MR_OK;
}

mr_code pf_secret_prepare(pf_service *svc, const char *id, pf_secret *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s-secrets", id);
    json_t *have = NULL;
    mr_code rc = pf_kube_get(svc->kube, "Secret", out->name, &have, err);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = MR_OK;
    }
    if (rc != MR_OK)
        return rc;
    /* The operator's INSTANCE_SECRET_* as they are now: a rotated one reaches the instance. */
    out->data = json_deep_copy(svc->settings.instance_secrets);
    if (!out->data)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory making the Secret of %s", id);
    if (rc == MR_OK)
        rc = prefix_urls(out->data, id, err);
    for (const char *const *g = generated; rc == MR_OK && *g; g++) {
        char fresh[2 * GENERATED_BYTES + 1];
        char *kept = have ? secret_value(have, *g) : NULL;
        if (!kept) {
            if (have)
                mr_log_warn(PF_COMPONENT, "instance %s: its Secret lost %s; a new one is generated", id, *g);
            random_hex(fresh, GENERATED_BYTES);
        }
        if (!out->data || !put_string(out->data, *g, kept ? kept : fresh))
            rc = mr_err_set(err, MR_ENOMEM, "out of memory making the Secret of %s", id);
        OPENSSL_cleanse(fresh, sizeof fresh);
        if (kept) {
            OPENSSL_cleanse(kept, strlen(kept));
            free(kept);
        }
    }
    json_decref(have);
    if (rc == MR_OK)
        rc = digest(out, err);
    if (rc != MR_OK)
        pf_secret_free(out);
    return rc;
}

mr_code pf_secret_apply(pf_service *svc, const char *id, const pf_secret *s, mr_err *err)
{
    json_t *secret = json_pack("{s:s, s:s, s:{s:s, s:{s:s, s:s}}, s:s, s:O}", "apiVersion", "v1", "kind", "Secret",
                               "metadata", "name", s->name, "labels", PF_INSTANCE_LABEL, id,
                               "app.kubernetes.io/managed-by", PF_FIELD_MANAGER, "type", "Opaque", "stringData",
                               s->data);
    if (!secret)
        return mr_err_set(err, MR_ENOMEM, "out of memory making the Secret of %s", id);
    /* Server-side apply: unchanged values write nothing; a rotated copy replaces the old. */
    mr_code rc = pf_kube_apply(svc->kube, secret, err);
    json_decref(secret);
    return rc;
}

void pf_secret_free(pf_secret *s)
{
    const char *k;
    json_t *v;
    /* The values' memory is wiped before it goes back: json_decref would only free it. */
    json_object_foreach(s->data, k, v)
        if (json_is_string(v))
            OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    json_decref(s->data);
    s->data = NULL;
}
