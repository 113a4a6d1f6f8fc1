/* connections.c -- local client connections in the store: credentials (the secret only as its
 * SHA-256), unique namespaces, the owner's list, revocation and authentication. */
#include "prov_internal.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Namespaces are 8 of 31 characters (~2^39): a clash is rare, several in a row means trouble. */
#define NS_ATTEMPTS 16

static void conn_key(char *out, size_t cap, const char *id)
{
    snprintf(out, cap, "pair:conn:%s", id);
}

static void ns_key(char *out, size_t cap, const char *ns)
{
    snprintf(out, cap, "pair:ns:%s", ns);
}

static void owner_key(char *out, size_t cap, const char *owner)
{
    snprintf(out, cap, "pair:user:%s:conns", owner);
}

static mr_code hset_str(prov *p, const char *key, const char *field, const char *value, mr_err *err)
{
    return mr_store_hset(prov_store(p), key, field, value, strlen(value), err);
}

static mr_code reserve_namespace(prov *p, const char *id, char ns[PAIR_NAMESPACE_LEN + 1], mr_err *err)
{
    return prov_claim_name(p, pair_namespace_generate, ns_key, id, 0, NS_ATTEMPTS, "namespace", ns, err);
}

mr_code conn_create(prov *p, const char *owner, const char *client_name, const char *fingerprint,
                    conn_new *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    mr_code rc = pair_random_token(PAIR_CLIENT_ID_BYTES, out->id, err);
    if (rc == MR_OK)
        rc = pair_random_token(PAIR_SECRET_BYTES, out->secret, err);
    if (rc == MR_OK)
        rc = reserve_namespace(p, out->id, out->ns, err);
    if (rc != MR_OK)
        return rc;
    char key[128], okey[600], digest[65], now[32];
    conn_key(key, sizeof key, out->id);
    owner_key(okey, sizeof okey, owner);
    pair_sha256_hex(out->secret, strlen(out->secret), digest);
    snprintf(now, sizeof now, "%lld", pair_now());
    const char *fields[][2] = {
        {"secret_sha256", digest}, {"namespace", out->ns}, {"owner_user_id", owner},
        {"client_name", client_name}, {"fingerprint", fingerprint}, {"created_at", now},
    };
    enum { NFIELDS = sizeof fields / sizeof fields[0] };
    mr_store_field record[NFIELDS];
    for (size_t i = 0; i < NFIELDS; i++)
        record[i] = (mr_store_field){fields[i][0], fields[i][1], strlen(fields[i][1])};
    /* One round trip for the whole record, and never a connection with only some of it. */
    rc = mr_store_hset_fields(prov_store(p), key, record, NFIELDS, err);
    /* Listed before the claim: should the process die between the two, the owner sees (and can
     * revoke) a connection nobody holds the secret of, rather than one they cannot see. */
    if (rc == MR_OK)
        rc = hset_str(p, okey, out->id, now, err);
    if (rc != MR_OK)
        conn_discard(p, owner, out);
    return rc;
}

void conn_discard(prov *p, const char *owner, const conn_new *c)
{
    char key[128], okey[600], nkey[64];
    conn_key(key, sizeof key, c->id);
    owner_key(okey, sizeof okey, owner);
    ns_key(nkey, sizeof nkey, c->ns);
    mr_err err = {0};
    /* Best effort: what is left over is a connection no one holds the secret of. */
    mr_store_hdel(prov_store(p), okey, c->id, &err);
    mr_store_del(prov_store(p), key, &err);
    if (c->ns[0])
        mr_store_del(prov_store(p), nkey, &err);
}

static const char *field(const mr_store_hash *h, const char *name)
{
    for (size_t i = 0; i < h->count; i++)
        if (strcmp(h->entries[i].field, name) == 0)
            return h->entries[i].value;
    return NULL;
}

static json_t *time_or_null(const char *epoch)
{
    if (!epoch || !*epoch)
        return json_null();
    char t[PAIR_TIME_LEN + 1];
    pair_time_format(strtoll(epoch, NULL, 10), t);
    return json_string(t);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *describe(const char *id, const mr_store_hash *h)
{
    return json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "id", id, "client_name",
                     str_or_null(field(h, "client_name")), "fingerprint", str_or_null(field(h, "fingerprint")),
                     "namespace", str_or_null(field(h, "namespace")), "created_at",
                     time_or_null(field(h, "created_at")), "last_seen_at", time_or_null(field(h, "last_seen_at")),
                     "revoked_at", time_or_null(field(h, "revoked_at")));
}

/* The connection's fields; none (h->count 0) when it does not exist. */
static mr_code load(prov *p, const char *id, mr_store_hash *h, mr_err *err)
{
    char key[128];
    conn_key(key, sizeof key, id);
    return mr_store_hgetall(prov_store(p), key, h, err);
}

mr_code conn_describe(prov *p, const char *id, json_t **out, mr_err *err)
{
    mr_store_hash h = {0};
    mr_code rc = load(p, id, &h, err);
    if (rc != MR_OK)
        return rc;
    if (h.count == 0) {
        mr_store_hash_free(&h);
        return mr_err_set(err, MR_ENOTFOUND, "connection %s not found", id);
    }
    *out = describe(id, &h);
    mr_store_hash_free(&h);
    return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory describing connection %s", id);
}

typedef struct listed {
    long long created;
    const char *id;
    json_t *json;
} listed;

static int by_creation(const void *a, const void *b)
{
    const listed *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

mr_code conn_list(prov *p, const char *owner, json_t **out, mr_err *err)
{
    char okey[600];
    owner_key(okey, sizeof okey, owner);
    mr_store_hash index = {0};
    mr_code rc = mr_store_hgetall(prov_store(p), okey, &index, err);
    if (rc != MR_OK)
        return rc;
    listed *items = calloc(index.count ? index.count : 1, sizeof *items);
    size_t n = 0;
    if (!items)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory listing connections of %s", owner);
    for (size_t i = 0; rc == MR_OK && i < index.count; i++) {
        mr_store_hash h = {0};
        rc = load(p, index.entries[i].field, &h, err);
        if (rc != MR_OK)
            break;
        if (h.count == 0) {
            /* Left behind by a pairing that lost its claim; nothing to show. */
            mr_store_hash_free(&h);
            continue;
        }
        const char *created = field(&h, "created_at");
        items[n] = (listed){created ? strtoll(created, NULL, 10) : 0, index.entries[i].field,
                            describe(index.entries[i].field, &h)};
        mr_store_hash_free(&h);
        if (!items[n++].json)
            rc = mr_err_set(err, MR_ENOMEM, "out of memory listing connections of %s", owner);
    }
    json_t *arr = NULL;
    if (rc == MR_OK) {
        qsort(items, n, sizeof *items, by_creation);
        arr = json_array();
    }
    for (size_t i = 0; i < n; i++) {
        if (arr)
            json_array_append(arr, items[i].json);
        json_decref(items[i].json);
    }
    free(items);
    mr_store_hash_free(&index);
    if (rc == MR_OK && !(*out = json_pack("{s:o}", "connections", arr)))
        rc = mr_err_set(err, MR_ENOMEM, "out of memory listing connections of %s", owner);
    return rc;
}

/* Sets the connection's field to the time now, in seconds since the epoch. */
static mr_code stamp(prov *p, const char *id, const char *name, mr_err *err)
{
    char key[128], now[32];
    conn_key(key, sizeof key, id);
    snprintf(now, sizeof now, "%lld", pair_now());
    return hset_str(p, key, name, now, err);
}

mr_code conn_revoke(prov *p, const char *owner, const char *id, bool *found, mr_err *err)
{
    *found = false;
    mr_store_hash h = {0};
    mr_code rc = load(p, id, &h, err);
    if (rc != MR_OK)
        return rc;
    const char *holder = field(&h, "owner_user_id");
    *found = holder && strcmp(holder, owner) == 0;
    if (*found && !field(&h, "revoked_at")) {
        rc = stamp(p, id, "revoked_at", err);
    }
    mr_store_hash_free(&h);
    return rc;
}

mr_code conn_authenticate(prov *p, const char *id, const char *secret, conn_auth *out,
                          char ns[PAIR_NAMESPACE_LEN + 1], mr_err *err)
{
    ns[0] = '\0';
    if (!id || !*id || !secret || !*secret) {
        *out = CONN_AUTH_MISSING;
        return MR_OK;
    }
    *out = CONN_AUTH_INVALID;
    if (!pair_token_shape_ok(id))
        return MR_OK;
    mr_store_hash h = {0};
    mr_code rc = load(p, id, &h, err);
    if (rc != MR_OK)
        return rc;
    char digest[65];
    pair_sha256_hex(secret, strlen(secret), digest);
    const char *want = field(&h, "secret_sha256");
    const char *space = field(&h, "namespace");
    if (want && strlen(want) == 64 && CRYPTO_memcmp(want, digest, 64) == 0) {
        if (field(&h, "revoked_at")) {
            *out = CONN_AUTH_REVOKED;
        } else {
            *out = CONN_AUTH_OK;
            snprintf(ns, PAIR_NAMESPACE_LEN + 1, "%s", space ? space : "");
            rc = stamp(p, id, "last_seen_at", err);
        }
    }
    mr_store_hash_free(&h);
    return rc;
}
