/* store.c -- the store handle: picks a backend by URL, serialises calls, seals secret values. */
#include "store_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

struct mr_store {
    pthread_mutex_t mu;
    const mr_store_ops *ops;
    void *impl;
    bool has_secret;
    bool on_demand; /* mr_store_sync_on_demand: sealed writes sync themselves */
    unsigned char key[MR_STORE_KEY_LEN];
};

char *Mr_store_dup_bytes(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

mr_code mr_store_open(const char *url, const mr_store_options *opts, mr_store **out, mr_err *err)
{
    *out = NULL;
    if (opts && opts->secret && opts->secret_len < MR_STORE_SECRET_MIN)
        return mr_err_set(err, MR_EINVAL, "store: the instance secret is %zu bytes; at least %d are needed",
                          opts->secret_len, MR_STORE_SECRET_MIN);
    mr_store *s = calloc(1, sizeof *s);
    if (!s)
        return mr_err_set(err, MR_ENOMEM, "store: out of memory");
    if (opts && opts->secret) {
        mr_code rc = Mr_store_seal_derive(opts->secret, opts->secret_len, s->key, err);
        if (rc != MR_OK) {
            free(s);
            return rc;
        }
        s->has_secret = true;
    }
    mr_store_url u;
    mr_code rc = Mr_store_url_parse(url, &u, err);
    if (rc == MR_OK) {
        rc = u.kind == MR_STORE_SQLITE ? Mr_store_sqlite_open(&u, &s->ops, &s->impl, err)
                                       : Mr_store_redis_open(&u, &s->ops, &s->impl, err);
        if (rc != MR_OK)
            mr_err_prefix(err, "store %s", u.display);
        Mr_store_url_free(&u);
    }
    if (rc != MR_OK) {
        OPENSSL_cleanse(s->key, sizeof s->key);
        free(s);
        return rc;
    }
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return MR_OK;
}

void mr_store_close(mr_store *s)
{
    if (!s)
        return;
    s->ops->close(s->impl);
    pthread_mutex_destroy(&s->mu);
    OPENSSL_cleanse(s->key, sizeof s->key);
    free(s);
}

/* Checks shared by every keyed call; op names the call in messages. */
static mr_code check_args(const char *op, const char *key, long ttl_ms, mr_err *err)
{
    if (!key || !*key)
        return mr_err_set(err, MR_EINVAL, "store %s: the key is empty", op);
    if (ttl_ms < 0)
        return mr_err_set(err, MR_EINVAL, "store %s \"%s\": ttl %ld ms is negative", op, key, ttl_ms);
    return MR_OK;
}

/* Every failure message starts with the operation and the key, never the value. */
static mr_code finish(mr_code rc, const char *op, const char *key, mr_err *err)
{
    if (rc != MR_OK)
        mr_err_prefix(err, "store %s \"%s\"", op, key);
    return rc;
}

#define LOCKED(s, call)                  \
    do {                                 \
        pthread_mutex_lock(&(s)->mu);    \
        rc = (call);                     \
        pthread_mutex_unlock(&(s)->mu);  \
    } while (0)

mr_code mr_store_get(mr_store *s, const char *key, char **value, size_t *len, mr_err *err)
{
    mr_code rc = check_args("get", key, 0, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->get(s->impl, key, value, len, err));
    return finish(rc, "get", key, err);
}

mr_code mr_store_set(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms, mr_err *err)
{
    mr_code rc = check_args("set", key, ttl_ms, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->set(s->impl, key, v, len, ttl_ms, err));
    return finish(rc, "set", key, err);
}

mr_code mr_store_set_nx(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms, bool *won,
                        mr_err *err)
{
    *won = false;
    mr_code rc = check_args("set_nx", key, ttl_ms, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->set_nx(s->impl, key, v, len, ttl_ms, won, err));
    return finish(rc, "set_nx", key, err);
}

mr_code mr_store_cas(mr_store *s, const char *key, const void *expect, size_t expect_len, const void *v,
                     size_t len, long ttl_ms, bool *swapped, mr_err *err)
{
    *swapped = false;
    mr_code rc = check_args("cas", key, ttl_ms, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->cas(s->impl, key, expect, expect_len, v, len, ttl_ms, swapped, err));
    return finish(rc, "cas", key, err);
}

mr_code mr_store_del(mr_store *s, const char *key, mr_err *err)
{
    mr_code rc = check_args("del", key, 0, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->del(s->impl, key, err));
    return finish(rc, "del", key, err);
}

mr_code mr_store_ttl(mr_store *s, const char *key, long *ttl_ms, mr_err *err)
{
    mr_code rc = check_args("ttl", key, 0, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->ttl(s->impl, key, ttl_ms, err));
    return finish(rc, "ttl", key, err);
}

static mr_code check_field(const char *op, const char *key, const char *field, mr_err *err)
{
    mr_code rc = check_args(op, key, 0, err);
    if (rc == MR_OK && (!field || !*field))
        rc = mr_err_set(err, MR_EINVAL, "store %s \"%s\": the field is empty", op, key);
    return rc;
}

mr_code mr_store_hset(mr_store *s, const char *key, const char *field, const void *v, size_t len,
                      mr_err *err)
{
    mr_code rc = check_field("hset", key, field, err);
    if (rc != MR_OK)
        return rc;
    mr_store_field f = {field, v, len};
    LOCKED(s, s->ops->hset(s->impl, key, &f, 1, err));
    return finish(rc, "hset", key, err);
}

mr_code mr_store_hset_fields(mr_store *s, const char *key, const mr_store_field *fields, size_t n,
                             mr_err *err)
{
    mr_code rc = check_args("hset", key, 0, err);
    if (rc == MR_OK && (n == 0 || n > MR_STORE_HSET_MAX))
        rc = mr_err_set(err, MR_EINVAL, "store hset \"%s\": %zu fields; 1 to %d at once", key, n,
                        MR_STORE_HSET_MAX);
    for (size_t i = 0; rc == MR_OK && i < n; i++)
        rc = check_field("hset", key, fields[i].name, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->hset(s->impl, key, fields, n, err));
    return finish(rc, "hset", key, err);
}

mr_code mr_store_hget(mr_store *s, const char *key, const char *field, char **value, size_t *len,
                      mr_err *err)
{
    mr_code rc = check_field("hget", key, field, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->hget(s->impl, key, field, value, len, err));
    if (rc != MR_OK)
        mr_err_prefix(err, "field \"%s\"", field);
    return finish(rc, "hget", key, err);
}

mr_code mr_store_hdel(mr_store *s, const char *key, const char *field, mr_err *err)
{
    mr_code rc = check_field("hdel", key, field, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->hdel(s->impl, key, field, err));
    return finish(rc, "hdel", key, err);
}

mr_code mr_store_hgetall(mr_store *s, const char *key, mr_store_hash *out, mr_err *err)
{
    out->entries = NULL;
    out->count = 0;
    mr_code rc = check_args("hgetall", key, 0, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->hgetall(s->impl, key, out, err));
    return finish(rc, "hgetall", key, err);
}

void mr_store_hash_free(mr_store_hash *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++) {
        free(h->entries[i].field);
        free(h->entries[i].value);
    }
    free(h->entries);
    h->entries = NULL;
    h->count = 0;
}

mr_code mr_store_incr(mr_store *s, const char *key, long long by, long ttl_ms_on_create, long long *value,
                      mr_err *err)
{
    mr_code rc = check_args("incr", key, ttl_ms_on_create, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->incr(s->impl, key, by, ttl_ms_on_create, value, err));
    return finish(rc, "incr", key, err);
}

static mr_code check_secret(mr_store *s, const char *op, const char *key, mr_err *err)
{
    if (!s->has_secret)
        return mr_err_set(err, MR_EINVAL,
                          "store %s \"%s\": this store was opened without an instance secret, so it "
                          "cannot handle secret values",
                          op, key ? key : "");
    return MR_OK;
}

mr_code mr_store_set_secret(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms,
                            mr_err *err)
{
    mr_code rc = check_args("set_secret", key, ttl_ms, err);
    if (rc == MR_OK)
        rc = check_secret(s, "set_secret", key, err);
    if (rc != MR_OK)
        return rc;
    unsigned char *sealed;
    size_t sealed_len;
    rc = Mr_store_seal(s->key, key, v, len, &sealed, &sealed_len, err);
    if (rc == MR_OK) {
        pthread_mutex_lock(&s->mu);
        rc = s->ops->set(s->impl, key, sealed, sealed_len, ttl_ms, err);
        /* Secrets hold ratchets: one rolled back by a power loss would reuse a message index. */
        if (rc == MR_OK && s->on_demand)
            rc = s->ops->sync(s->impl, err);
        pthread_mutex_unlock(&s->mu);
        free(sealed);
    }
    return finish(rc, "set_secret", key, err);
}

mr_code mr_store_get_secret(mr_store *s, const char *key, char **v, size_t *len, mr_err *err)
{
    mr_code rc = check_args("get_secret", key, 0, err);
    if (rc == MR_OK)
        rc = check_secret(s, "get_secret", key, err);
    if (rc != MR_OK)
        return rc;
    char *sealed;
    size_t sealed_len;
    LOCKED(s, s->ops->get(s->impl, key, &sealed, &sealed_len, err));
    if (rc == MR_OK) {
        rc = Mr_store_unseal(s->key, key, (const unsigned char *)sealed, sealed_len, v, len, err);
        free(sealed);
    }
    return finish(rc, "get_secret", key, err);
}

mr_code mr_store_sync_on_demand(mr_store *s, mr_err *err)
{
    if (!s->ops->sync_on_demand)
        return MR_OK;
    pthread_mutex_lock(&s->mu);
    mr_code rc = s->ops->sync_on_demand(s->impl, err);
    s->on_demand |= rc == MR_OK;
    pthread_mutex_unlock(&s->mu);
    if (rc != MR_OK)
        mr_err_prefix(err, "store sync_on_demand");
    return rc;
}

mr_code mr_store_sync(mr_store *s, mr_err *err)
{
    if (!s->ops->sync)
        return MR_OK;
    /* Without the lock: the backend syncs through a descriptor of its own (store_impl.h). */
    mr_code rc = s->ops->sync(s->impl, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "store sync");
    return rc;
}

mr_code mr_store_ping(mr_store *s, mr_err *err)
{
    mr_code rc;
    LOCKED(s, s->ops->ping(s->impl, err));
    if (rc != MR_OK)
        mr_err_prefix(err, "store ping");
    return rc;
}
