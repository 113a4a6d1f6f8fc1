/* txn.c -- transaction IDs derived from the triggering event, the entity and the step. */
#include "agent_internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#define TXN_HASH_BYTES 12

void txn_id(const char *event_id, const char *entity, const char *kind, int seq, char out[TXN_MAX])
{
    /* A newline occurs in neither part, so (event, entity) pairs cannot collide by shifting. */
    char input[2 * MR_ID_MAX + 2];
    int len = snprintf(input, sizeof input, "%s\n%s", event_id, entity);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    /* Identifiers are at most MR_ID_MAX bytes (the turn is checked) and SHA-256 needs no
     * allocation, so this fallback is never taken in practice; it keeps the output defined. */
    if (len < 0 || (size_t)len >= sizeof input ||
        !EVP_Digest(input, (size_t)len, digest, &digest_len, EVP_sha256(), NULL))
        memset(digest, 0, sizeof digest);
    char hex[2 * TXN_HASH_BYTES + 1];
    for (int i = 0; i < TXN_HASH_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    if (seq < 0)
        snprintf(out, TXN_MAX, "mr%s.%s", hex, kind);
    else
        snprintf(out, TXN_MAX, "mr%s.%s%d", hex, kind, seq);
}
