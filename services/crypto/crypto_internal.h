/* crypto_internal.h -- what the files of mindroom-crypto share: the pass-through conversions. */
#ifndef MINDROOM_CRYPTO_INTERNAL_H
#define MINDROOM_CRYPTO_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mindroom/err.h"

/* An inbound_event, checked against its schema. Strings borrow from root. */
typedef struct crypto_inbound {
    json_t *root;
    const char *room_id;
    const char *event_id;
    bool encrypted;          /* an m.room.encrypted event */
    const char *session_id;  /* encrypted: content.session_id, "" when absent */
} crypto_inbound;

/* MR_EINVAL naming the field for a message that is not a valid inbound_event. */
mr_code crypto_inbound_parse(const char *value, size_t len, crypto_inbound *out, mr_err *err);
void crypto_inbound_free(crypto_inbound *in);
/* The cleartext_event of an unencrypted inbound event (JSON, malloc'd); NULL when out of memory. */
char *crypto_cleartext_build(const crypto_inbound *in);

/* The send_request for an outbound_intent (JSON, malloc'd, in *out) and its bus key, the room ID
 * (malloc'd, in *key). MR_EINVAL naming the field for a message that is not a valid intent. */
mr_code crypto_send_build(const char *value, size_t len, char **out, char **key, mr_err *err);

/* The (room, session) pairs already reported as undecryptable, the most recent CRYPTO_SEEN_MAX. */
#define CRYPTO_SEEN_MAX 512

typedef struct crypto_seen {
    char *keys[CRYPTO_SEEN_MAX];
    size_t next;             /* the slot the next new pair replaces */
} crypto_seen;

/* True the first time the pair is seen (and remembers it); false after, or when out of memory
 * (a lost notice beats one per event). */
bool crypto_seen_first(crypto_seen *s, const char *room_id, const char *session_id);
void crypto_seen_free(crypto_seen *s);

#endif
