/* ua_token_cache.c -- verified JWTs by SHA-256, so a token seen again skips the PEM parse and the
 * signature check; its exp is checked again on every use. */
#include "ua_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    bool used;
    unsigned char digest[32];
    int64_t exp;
    char *email;
    char *user_id;
    char *matrix_user_id;
} slot;

struct ua_token_cache {
    pthread_mutex_t mu;
    size_t n;
    slot *slots;
};

ua_token_cache *ua_token_cache_new(size_t entries)
{
    if (entries == 0)
        return NULL;
    ua_token_cache *c = calloc(1, sizeof *c);
    if (c && !(c->slots = calloc(entries, sizeof *c->slots))) {
        free(c);
        return NULL;
    }
    if (c) {
        c->n = entries;
        pthread_mutex_init(&c->mu, NULL);
    }
    return c;
}

static void slot_clear(slot *s)
{
    free(s->email);
    free(s->user_id);
    free(s->matrix_user_id);
    memset(s, 0, sizeof *s);
}

void ua_token_cache_free(ua_token_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        slot_clear(&c->slots[i]);
    free(c->slots);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The digest is uniform, so its first bytes pick a slot as well as any hash would. */
static slot *slot_for(ua_token_cache *c, const unsigned char digest[32])
{
    uint64_t h;
    memcpy(&h, digest, sizeof h);
    return &c->slots[h % c->n];
}

static bool dup_opt(const char *in, char **out)
{
    *out = in ? strdup(in) : NULL;
    return !in || *out;
}

bool ua_token_cache_get(ua_token_cache *c, const unsigned char digest[32], int64_t now_s, mr_jwt_identity *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return false;
    pthread_mutex_lock(&c->mu);
    slot *s = slot_for(c, digest);
    bool hit = s->used && memcmp(s->digest, digest, 32) == 0;
    if (hit && now_s >= s->exp) {
        slot_clear(s);
        hit = false;
    }
    if (hit) {
        out->exp = s->exp;
        hit = dup_opt(s->email, &out->email) && dup_opt(s->user_id, &out->user_id) &&
              dup_opt(s->matrix_user_id, &out->matrix_user_id);
    }
    pthread_mutex_unlock(&c->mu);
    if (!hit)
        mr_jwt_identity_free(out);
    return hit;
}

void ua_token_cache_put(ua_token_cache *c, const unsigned char digest[32], const mr_jwt_identity *id)
{
    if (!c)
        return;
    slot fresh = {.used = true, .exp = id->exp};
    memcpy(fresh.digest, digest, 32);
    if (!dup_opt(id->email, &fresh.email) || !dup_opt(id->user_id, &fresh.user_id) ||
        !dup_opt(id->matrix_user_id, &fresh.matrix_user_id)) {
        slot_clear(&fresh);
        return;
    }
    pthread_mutex_lock(&c->mu);
    slot *s = slot_for(c, digest);
    slot old = *s;
    *s = fresh;
    pthread_mutex_unlock(&c->mu);
    slot_clear(&old);
}
