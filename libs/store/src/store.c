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
    /* The URL's ?prefix=: "<prefix>:" in front of every key the backend sees, so instances
     * sharing one server keep apart; "" for none. Callers' keys (and messages) stay unprefixed. */
    char prefix[MR_URL_PREFIX_MAX + 2];
};

/* A key as the backend names it. Most fit buf; a longer one is allocated. */
typedef struct store_key {
    const char *name;
    char *heap;
    char buf[256];
} store_key;

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
        if (*u.prefix)
            snprintf(s->prefix, sizeof s->prefix, "%s:", u.prefix);
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

/* Checks shared by every keyed call, and the backend's name for key (free it with key_done);
 * op names the call in messages. */
static mr_code begin(const mr_store *s, const char *op, const char *key, long ttl_ms, store_key *k, mr_err *err)
{
    k->heap = NULL;
    k->name = key;
    if (!key || !*key)
        return mr_err_set(err, MR_EINVAL, "store %s: the key is empty", op);
    if (ttl_ms < 0)
        return mr_err_set(err, MR_EINVAL, "store %s \"%s\": ttl %ld ms is negative", op, key, ttl_ms);
    if (!*s->prefix)
        return MR_OK;
    size_t n = strlen(s->prefix) + strlen(key) + 1;
    char *to = n <= sizeof k->buf ? k->buf : (k->heap = malloc(n));
    if (!to)
        return mr_err_set(err, MR_ENOMEM, "store %s \"%s\": out of memory", op, key);
    snprintf(to, n, "%s%s", s->prefix, key);
    k->name = to;
    return MR_OK;
}

static void key_done(store_key *k)
{
    free(k->heap);
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
    store_key k;
    mr_code rc = begin(s, "get", key, 0, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->get(s->impl, k.name, value, len, err));
    key_done(&k);
    return finish(rc, "get", key, err);
}

mr_code mr_store_get_many(mr_store *s, const char *const *keys, size_t n, char **values, size_t *lens,
                          mr_err *err)
{
    for (size_t i = 0; i < n && i < MR_STORE_GET_MANY_MAX; i++)
        values[i] = NULL;
    if (n == 0 || n > MR_STORE_GET_MANY_MAX)
        return mr_err_set(err, MR_EINVAL, "store get_many: %zu keys; 1 to %d can be read at once", n,
                          MR_STORE_GET_MANY_MAX);
    store_key k[MR_STORE_GET_MANY_MAX];
    const char *names[MR_STORE_GET_MANY_MAX];
    size_t made = 0;
    mr_code rc = MR_OK;
    for (; rc == MR_OK && made < n; made++) {
        rc = begin(s, "get_many", keys[made], 0, &k[made], err);
        names[made] = k[made].name;
    }
    bool checked = rc == MR_OK;
    if (checked)
        LOCKED(s, s->ops->get_many(s->impl, names, n, values, lens, err));
    for (size_t i = 0; i < made; i++)
        key_done(&k[i]);
    return checked ? finish(rc, "get_many", keys[0], err) : rc;
}

mr_code mr_store_set(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms, mr_err *err)
{
    store_key k;
    mr_code rc = begin(s, "set", key, ttl_ms, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->set(s->impl, k.name, v, len, ttl_ms, err));
    key_done(&k);
    return finish(rc, "set", key, err);
}

mr_code mr_store_set_nx(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms, bool *won,
                        mr_err *err)
{
    *won = false;
    store_key k;
    mr_code rc = begin(s, "set_nx", key, ttl_ms, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->set_nx(s->impl, k.name, v, len, ttl_ms, won, err));
    key_done(&k);
    return finish(rc, "set_nx", key, err);
}

mr_code mr_store_cas(mr_store *s, const char *key, const void *expect, size_t expect_len, const void *v,
                     size_t len, long ttl_ms, bool *swapped, mr_err *err)
{
    *swapped = false;
    store_key k;
    mr_code rc = begin(s, "cas", key, ttl_ms, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->cas(s->impl, k.name, expect, expect_len, v, len, ttl_ms, swapped, err));
    key_done(&k);
    return finish(rc, "cas", key, err);
}

mr_code mr_store_del(mr_store *s, const char *key, mr_err *err)
{
    store_key k;
    mr_code rc = begin(s, "del", key, 0, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->del(s->impl, k.name, err));
    key_done(&k);
    return finish(rc, "del", key, err);
}

mr_code mr_store_ttl(mr_store *s, const char *key, long *ttl_ms, mr_err *err)
{
    store_key k;
    mr_code rc = begin(s, "ttl", key, 0, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->ttl(s->impl, k.name, ttl_ms, err));
    key_done(&k);
    return finish(rc, "ttl", key, err);
}

static const char *const OP_NAMES[] = {"set", "set_nx", "cas", "del"};

static mr_code batch_check(const mr_store_op *ops, size_t n, mr_err *err)
{
    if (!ops || n == 0 || n > MR_STORE_BATCH_MAX)
        return mr_err_set(err, MR_EINVAL, "store batch: %zu writes; 1 to %d at once", ops ? n : 0,
                          MR_STORE_BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        const mr_store_op *o = &ops[i];
        if ((unsigned)o->kind > MR_STORE_OP_DEL)
            return mr_err_set(err, MR_EINVAL, "store batch: write %zu is of no known kind (%d)", i, (int)o->kind);
        if (!o->key || !*o->key)
            return mr_err_set(err, MR_EINVAL, "store batch: write %zu (%s): the key is empty", i, OP_NAMES[o->kind]);
        if (o->ttl_ms < 0)
            return mr_err_set(err, MR_EINVAL, "store batch: write %zu (%s \"%s\"): ttl %ld ms is negative", i,
                              OP_NAMES[o->kind], o->key, o->ttl_ms);
    }
    return MR_OK;
}

mr_code mr_store_batch(mr_store *s, mr_store_op *ops, size_t n, mr_err *err)
{
    mr_code rc = batch_check(ops, n, err);
    if (rc != MR_OK)
        return rc;
    store_key k[MR_STORE_BATCH_MAX];
    const char *names[MR_STORE_BATCH_MAX];
    size_t ready = 0;
    for (; rc == MR_OK && ready < n; ready++) {
        ops[ready].rc = MR_OK;
        ops[ready].done = false;
        rc = begin(s, OP_NAMES[ops[ready].kind], ops[ready].key, ops[ready].ttl_ms, &k[ready], err);
        names[ready] = k[ready].name;
    }
    size_t failed = n;
    if (rc == MR_OK)
        LOCKED(s, s->ops->batch(s->impl, names, ops, n, &failed, err));
    else
        for (size_t i = 0; i < n; i++)
            ops[i].rc = rc;
    for (size_t i = 0; i < ready; i++)
        key_done(&k[i]);
    if (rc != MR_OK && failed < n)
        mr_err_prefix(err, "store batch: write %zu (%s \"%s\")", failed, OP_NAMES[ops[failed].kind], ops[failed].key);
    else if (rc != MR_OK)
        mr_err_prefix(err, "store batch of %zu writes", n);
    return rc;
}

/* Checked before begin(): the key's checks first, as every call makes them. */
static mr_code check_field(const char *op, const char *key, const char *field, mr_err *err)
{
    if (!key || !*key)
        return mr_err_set(err, MR_EINVAL, "store %s: the key is empty", op);
    if (!field || !*field)
        return mr_err_set(err, MR_EINVAL, "store %s \"%s\": the field is empty", op, key);
    return MR_OK;
}

mr_code mr_store_hset(mr_store *s, const char *key, const char *field, const void *v, size_t len,
                      mr_err *err)
{
    store_key k;
    mr_code rc = check_field("hset", key, field, err);
    if (rc == MR_OK)
        rc = begin(s, "hset", key, 0, &k, err);
    if (rc != MR_OK)
        return rc;
    mr_store_field f = {field, v, len};
    LOCKED(s, s->ops->hset(s->impl, k.name, &f, 1, err));
    key_done(&k);
    return finish(rc, "hset", key, err);
}

mr_code mr_store_hset_fields(mr_store *s, const char *key, const mr_store_field *fields, size_t n,
                             mr_err *err)
{
    store_key k;
    mr_code rc = check_field("hset", key, "-", err);
    if (rc == MR_OK && (n == 0 || n > MR_STORE_HSET_MAX))
        rc = mr_err_set(err, MR_EINVAL, "store hset \"%s\": %zu fields; 1 to %d at once", key, n,
                        MR_STORE_HSET_MAX);
    for (size_t i = 0; rc == MR_OK && i < n; i++)
        rc = check_field("hset", key, fields[i].name, err);
    if (rc == MR_OK)
        rc = begin(s, "hset", key, 0, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->hset(s->impl, k.name, fields, n, err));
    key_done(&k);
    return finish(rc, "hset", key, err);
}

mr_code mr_store_hget(mr_store *s, const char *key, const char *field, char **value, size_t *len,
                      mr_err *err)
{
    store_key k;
    mr_code rc = check_field("hget", key, field, err);
    if (rc == MR_OK)
        rc = begin(s, "hget", key, 0, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->hget(s->impl, k.name, field, value, len, err));
    if (rc != MR_OK)
        mr_err_prefix(err, "field \"%s\"", field);
    key_done(&k);
    return finish(rc, "hget", key, err);
}

mr_code mr_store_hdel(mr_store *s, const char *key, const char *field, mr_err *err)
{
    store_key k;
    mr_code rc = check_field("hdel", key, field, err);
    if (rc == MR_OK)
        rc = begin(s, "hdel", key, 0, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->hdel(s->impl, k.name, field, err));
    key_done(&k);
    return finish(rc, "hdel", key, err);
}

mr_code mr_store_hgetall(mr_store *s, const char *key, mr_store_hash *out, mr_err *err)
{
    out->entries = NULL;
    out->count = 0;
    store_key k;
    mr_code rc = begin(s, "hgetall", key, 0, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->hgetall(s->impl, k.name, out, err));
    key_done(&k);
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
    store_key k;
    mr_code rc = begin(s, "incr", key, ttl_ms_on_create, &k, err);
    if (rc != MR_OK)
        return rc;
    LOCKED(s, s->ops->incr(s->impl, k.name, by, ttl_ms_on_create, value, err));
    key_done(&k);
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

/* A sealed value is bound to the key the backend holds it under, prefix included: a copy into
 * another instance's namespace does not open there, even under the same instance secret. */
mr_code mr_store_set_secret(mr_store *s, const char *key, const void *v, size_t len, long ttl_ms,
                            mr_err *err)
{
    store_key k;
    mr_code rc = begin(s, "set_secret", key, ttl_ms, &k, err);
    if (rc == MR_OK && (rc = check_secret(s, "set_secret", key, err)) != MR_OK)
        key_done(&k);
    if (rc != MR_OK)
        return rc;
    unsigned char *sealed = NULL;
    size_t sealed_len;
    rc = Mr_store_seal(s->key, k.name, v, len, &sealed, &sealed_len, err);
    if (rc == MR_OK) {
        pthread_mutex_lock(&s->mu);
        rc = s->ops->set(s->impl, k.name, sealed, sealed_len, ttl_ms, err);
        /* Secrets hold ratchets: one rolled back by a power loss would reuse a message index. */
        if (rc == MR_OK && s->on_demand)
            rc = s->ops->sync(s->impl, err);
        pthread_mutex_unlock(&s->mu);
        free(sealed);
    }
    key_done(&k);
    return finish(rc, "set_secret", key, err);
}

mr_code mr_store_get_secret(mr_store *s, const char *key, char **v, size_t *len, mr_err *err)
{
    store_key k;
    mr_code rc = begin(s, "get_secret", key, 0, &k, err);
    if (rc == MR_OK && (rc = check_secret(s, "get_secret", key, err)) != MR_OK)
        key_done(&k);
    if (rc != MR_OK)
        return rc;
    char *sealed;
    size_t sealed_len;
    LOCKED(s, s->ops->get(s->impl, k.name, &sealed, &sealed_len, err));
    if (rc == MR_OK) {
        rc = Mr_store_unseal(s->key, k.name, (const unsigned char *)sealed, sealed_len, v, len, err);
        free(sealed);
    }
    key_done(&k);
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
