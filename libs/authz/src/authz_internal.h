/* authz_internal.h -- the compiled form shared by the files of libs/authz (not public). */
#ifndef MINDROOM_AUTHZ_INTERNAL_H
#define MINDROOM_AUTHZ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mindroom/authz.h"
#include "mindroom/ids.h"

/* Open-addressing string map with borrowed keys, sized once at compile time (load <= 1/2) so
 * it never grows and lookups never allocate. */
typedef struct mr_authz_slot {
    const char *key; /* NULL: empty */
    uint64_t hash;
    size_t value;
} mr_authz_slot;

typedef struct mr_authz_map {
    mr_authz_slot *slots;
    size_t mask; /* capacity - 1 */
    size_t len;
} mr_authz_map;

uint64_t mr_authz_hash(const char *s);
/* Room for `expected` keys. */
mr_code mr_authz_map_init(mr_authz_map *m, size_t expected, mr_err *err);
/* Adds key unless present; returns false if it was already there (value left unchanged). */
bool mr_authz_map_put(mr_authz_map *m, const char *key, uint64_t hash, size_t value);
/* The slot holding key, or NULL. hash must be mr_authz_hash(key). */
const mr_authz_slot *mr_authz_map_get(const mr_authz_map *m, const char *key, uint64_t hash);
void mr_authz_map_free(mr_authz_map *m);

/* A glob pre-split into tokens: literal runs, `?`, `*` and byte classes. Case-sensitive; an
 * unclosed `[` is a literal, as in Python's fnmatchcase. */
typedef struct mr_authz_glob_tok {
    uint8_t kind;    /* GLOB_LIT, GLOB_ONE, GLOB_STAR, GLOB_CLASS (see glob.c) */
    uint32_t off;    /* literal: offset in the pattern; class: index into classes */
    uint32_t len;    /* literal length */
} mr_authz_glob_tok;

typedef struct mr_authz_glob {
    const char *pattern;
    mr_authz_glob_tok *toks;
    size_t n_toks;
    uint8_t (*classes)[32]; /* one 256-bit set per class token */
    size_t min_len;         /* bytes the non-star tokens consume: a quick reject */
} mr_authz_glob;

/* True when s holds a glob metacharacter (`*`, `?`, `[`). */
bool mr_authz_glob_is_pattern(const char *s);
mr_code mr_authz_glob_compile(const char *pattern, mr_authz_glob *out, mr_err *err);
bool mr_authz_glob_match(const mr_authz_glob *g, const char *s, size_t len);
void mr_authz_glob_free(mr_authz_glob *g);

/* One agent_reply_permissions entry. */
typedef struct mr_authz_policy {
    const char *key;           /* entity name or "*" */
    bool anyone;               /* the users list holds "*" */
    mr_authz_map exact;        /* entries without metacharacters */
    mr_authz_glob *globs;
    size_t n_globs;
    const mr_strlist *joined_rooms;
} mr_authz_policy;

/* One room_permissions entry. */
typedef struct mr_authz_room_perm {
    const char *key;
    mr_authz_map users;
} mr_authz_room_perm;

/* An internal identity or an entity that may be asked about. */
typedef struct mr_authz_entity {
    mr_authz_entity_kind kind;
    const char *name;          /* agent/team name, "router"; the username for the internal user */
    char *user_id;             /* owned: its Matrix ID on this server */
    const mr_team_cfg *team;   /* teams only */
} mr_authz_entity;

struct mr_authz {
    mr_config *cfg;            /* retained; every borrowed string below lives in it */
    char server[MR_ID_MAX + 1];
    char ns[MR_NAMESPACE_MAX + 1];

    mr_authz_entity *entities; /* [0] the internal user, then agents, teams, router */
    size_t n_entities;
    mr_authz_map internal_ids; /* user ID -> entities index */
    mr_authz_map entity_names; /* entity name -> entities index (not the internal user) */

    mr_authz_map aliases;      /* alias user ID -> index into cfg->authorization.aliases */
    mr_authz_map global_users;
    mr_authz_room_perm *rooms;
    size_t n_rooms;
    mr_authz_map room_keys;    /* room_permissions key -> rooms index */

    mr_authz_policy *policies;
    size_t n_policies;
    mr_authz_map policy_keys;  /* key -> policies index */
    const mr_authz_policy *star; /* the "*" policy, or NULL */
};

#endif
