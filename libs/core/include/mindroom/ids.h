/* ids.h -- Matrix identifiers (user IDs, room IDs, aliases, server names) and the managed
 * naming rules: namespaces, `mindroom_<entity>[_<ns>]` usernames, `<room_key>[_<ns>]` aliases. */
#ifndef MINDROOM_IDS_H
#define MINDROOM_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

/* The spec's limit on a whole identifier, sigil and server included. */
#define MR_ID_MAX 255
#define MR_NAMESPACE_MAX 32

/* A server name split into host and optional port. host keeps IPv6 brackets ("[::1]"). */
typedef struct mr_server_name {
    char host[MR_ID_MAX + 1];
    int port; /* 0 when absent */
} mr_server_name;

/* A parsed `<sigil><localpart>:<server>`. For room IDs of room version 12 and later, which
 * have no server part, server is empty. */
typedef struct mr_id {
    char sigil; /* '@', '!', '#' */
    char localpart[MR_ID_MAX + 1];
    char server[MR_ID_MAX + 1];
} mr_id;

/* Each returns MR_OK, or MR_EINVAL with a message that quotes the input and says which rule
 * it broke. `out` may be NULL to only validate. */
mr_code mr_id_parse_server_name(const char *s, mr_server_name *out, mr_err *err);
/* User IDs accept the historical localpart grammar (printable ASCII except ':'), as the spec
 * asks clients to; mr_id_localpart_is_modern tells whether it also fits today's grammar. */
mr_code mr_id_parse_user(const char *s, mr_id *out, mr_err *err);
mr_code mr_id_parse_room_id(const char *s, mr_id *out, mr_err *err);
mr_code mr_id_parse_room_alias(const char *s, mr_id *out, mr_err *err);
bool mr_id_localpart_is_modern(const char *localpart);

/* The host of an http:// or https:// URL (a homeserver's), without port; IPv6 keeps its
 * brackets ("[::1]"). This is the default Matrix server name when none is configured. URLs
 * with credentials are refused. Messages quote the URL and do not name the setting: callers
 * prefix it. */
mr_code mr_id_url_host(const char *url, char *host, size_t cap, mr_err *err);

/* Lower-cases `in` into `out`; an empty input is a valid empty namespace. Otherwise the result
 * must match ^[a-z0-9]{4,32}$. out has room for MR_NAMESPACE_MAX + 1 bytes. */
mr_code mr_id_namespace_normalize(const char *in, char out[MR_NAMESPACE_MAX + 1], mr_err *err);

/* Entity names (agents, teams) match ^[a-zA-Z0-9_]+$; `router` and `user` are reserved for
 * entities the user defines (allow_reserved lets the caller name the router itself). */
mr_code mr_id_entity_name_check(const char *name, bool allow_reserved, mr_err *err);

/* `mindroom_<entity>` or `mindroom_<entity>_<ns>`, lower-cased; fails if it would not be a
 * valid modern localpart or would exceed the size. */
mr_code mr_id_managed_username(const char *entity, const char *ns, char *out, size_t cap, mr_err *err);
/* `@<managed username>:<server>` */
mr_code mr_id_managed_user_id(const char *entity, const char *ns, const char *server, char *out,
                              size_t cap, mr_err *err);
/* `<room_key>` or `<room_key>_<ns>`: the alias localpart of a managed room. */
mr_code mr_id_managed_alias_localpart(const char *room_key, const char *ns, char *out, size_t cap,
                                      mr_err *err);
/* Inverse of the above: strips `_<ns>` when present. Returns false if the localpart does not
 * belong to this namespace (it lacks the suffix while ns is non-empty). */
bool mr_id_room_key_from_alias_localpart(const char *localpart, const char *ns, char *out, size_t cap);

#endif
