/* authz_map.c -- the fixed-size string hash map behind every user and key lookup. */
#include "authz_internal.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a, 64-bit: short IDs, no adversarial key control (keys come from the config). */
uint64_t mr_authz_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

mr_code mr_authz_map_init(mr_authz_map *m, size_t expected, mr_err *err)
{
    size_t cap = 8;
    while (cap < expected * 2) {
        if (cap > SIZE_MAX / 4)
            return mr_err_set(err, MR_ENOMEM, "authorization table for %zu entries is too large", expected);
        cap *= 2;
    }
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots)
        return mr_err_set(err, MR_ENOMEM, "out of memory for an authorization table of %zu entries", expected);
    m->mask = cap - 1;
    m->len = 0;
    return MR_OK;
}

/* The slot holding key, or the empty slot where it would go. Never full: load <= 1/2. */
static mr_authz_slot *probe(const mr_authz_map *m, const char *key, uint64_t hash)
{
    for (size_t i = (size_t)hash & m->mask;; i = (i + 1) & m->mask) {
        mr_authz_slot *s = &m->slots[i];
        if (!s->key || (s->hash == hash && strcmp(s->key, key) == 0))
            return s;
    }
}

bool mr_authz_map_put(mr_authz_map *m, const char *key, uint64_t hash, size_t value)
{
    mr_authz_slot *s = probe(m, key, hash);
    if (s->key)
        return false;
    s->key = key;
    s->hash = hash;
    s->value = value;
    m->len++;
    return true;
}

const mr_authz_slot *mr_authz_map_get(const mr_authz_map *m, const char *key, uint64_t hash)
{
    if (!m->slots)
        return NULL;
    const mr_authz_slot *s = probe(m, key, hash);
    return s->key ? s : NULL;
}

void mr_authz_map_free(mr_authz_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = 0;
    m->len = 0;
}
