/* pairing.c -- pair sessions in the store: start, status, and the once-only claim of a code.
 *
 * A session is one JSON value that only ever changes by compare-and-set, from "pending" to
 * "connected" (a complete) or to "expired" (superseded by a newer start). Both ends are final,
 * so of two racing changes exactly one lands and the other re-reads the outcome. Each user has
 * one current session: a complete also checks it is still the current one, which covers a
 * start that died between moving the pointer and expiring the old session. */
#include "prov_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLAIM_ATTEMPTS 3
#define CODE_ATTEMPTS 8

typedef struct session {
    char status[16];
    char user_id[256];
    long long created_at;
    long long expires_at;
    char connection[PAIR_TOKEN_MAX];
} session;

static void session_key(char *out, size_t cap, const char *id)
{
    snprintf(out, cap, "pair:session:%s", id);
}

static void code_key(char *out, size_t cap, const char *code)
{
    char digest[65];
    pair_sha256_hex(code, strlen(code), digest);
    snprintf(out, cap, "pair:code:%s", digest);
}

static void current_key(char *out, size_t cap, const char *user_id)
{
    snprintf(out, cap, "pair:user:%s:current", user_id);
}

static long keep_ms(const prov *p)
{
    return (p->s->pair_ttl_s + PROV_RETENTION_S) * 1000L;
}

static char *session_dump(const session *s)
{
    json_t *j = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s}", "v", 1, "status", s->status, "user_id",
                          s->user_id, "created_at", (json_int_t)s->created_at, "expires_at",
                          (json_int_t)s->expires_at, "connection", s->connection);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return text;
}

static mr_code session_parse(const char *id, const char *text, size_t len, session *out, mr_err *err)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    const char *status = NULL, *user = NULL, *conn = NULL;
    json_int_t created = 0, expires = 0;
    int bad = !j || json_unpack(j, "{s:s, s:s, s:I, s:I, s:s}", "status", &status, "user_id", &user,
                                "created_at", &created, "expires_at", &expires, "connection", &conn);
    if (!bad) {
        snprintf(out->status, sizeof out->status, "%s", status);
        snprintf(out->user_id, sizeof out->user_id, "%s", user);
        snprintf(out->connection, sizeof out->connection, "%s", conn);
        out->created_at = created;
        out->expires_at = expires;
    }
    json_decref(j);
    return bad ? mr_err_set(err, MR_EINTERNAL, "store value pair:session:%s is not a pair session", id) : MR_OK;
}

/* The raw value (for a later compare-and-set) and its parsed form. */
static mr_code session_read(prov *p, const char *id, char **raw, size_t *len, session *out, mr_err *err)
{
    char key[128];
    session_key(key, sizeof key, id);
    mr_code rc = mr_store_get(prov_store(p), key, raw, len, err);
    if (rc == MR_OK && (rc = session_parse(id, *raw, *len, out, err)) != MR_OK) {
        free(*raw);
        *raw = NULL;
    }
    return rc;
}

/* Moves a session from raw (as read) to next; *swapped false when it changed in between. */
static mr_code session_swap(prov *p, const char *id, const char *raw, size_t len, const session *next,
                            long ttl_ms, bool *swapped, mr_err *err)
{
    char key[128];
    session_key(key, sizeof key, id);
    char *text = session_dump(next);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory writing pair session %s", id);
    mr_code rc = mr_store_cas(prov_store(p), key, raw, len, text, strlen(text), ttl_ms, swapped, err);
    free(text);
    return rc;
}

/* Whether id is user_id's current session. */
static mr_code is_current(prov *p, const char *user_id, const char *id, bool *yes, mr_err *err)
{
    char key[600];
    current_key(key, sizeof key, user_id);
    char *cur = NULL;
    size_t len = 0;
    mr_code rc = mr_store_get(prov_store(p), key, &cur, &len, err);
    *yes = rc == MR_OK && strcmp(cur, id) == 0;
    free(cur);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = MR_OK;
    }
    return rc;
}

/* A superseded session goes from pending to expired; one that finished meanwhile stays. */
static void expire_session(prov *p, const char *id)
{
    mr_err err = {0};
    char *raw = NULL;
    size_t len = 0;
    session s;
    if (session_read(p, id, &raw, &len, &s, &err) == MR_OK && strcmp(s.status, "pending") == 0) {
        snprintf(s.status, sizeof s.status, "expired");
        bool swapped = false;
        if (session_swap(p, id, raw, len, &s, PROV_RETENTION_S * 1000L, &swapped, &err) != MR_OK)
            mr_log_warn("provisioning", "could not expire superseded pair session %s: %s", id, err.msg);
    }
    free(raw);
}

mr_code prov_claim_name(prov *p, prov_name_fn gen, prov_key_fn key_of, const char *id, long ttl_ms, int attempts,
                        const char *what, char *out, mr_err *err)
{
    for (int i = 0; i < attempts; i++) {
        mr_code rc = gen(out, err);
        char key[128];
        key_of(key, sizeof key, out);
        bool won = false;
        if (rc == MR_OK)
            rc = mr_store_set_nx(prov_store(p), key, id, strlen(id), ttl_ms, &won, err);
        if (rc != MR_OK || won)
            return rc;
    }
    return mr_err_set(err, MR_EINTERNAL, "no free %s after %d random picks", what, attempts);
}

/* Picks a code no live session holds and points it at the session. */
static mr_code claim_code(prov *p, const char *id, char code[PAIR_CODE_LEN + 1], mr_err *err)
{
    return prov_claim_name(p, pair_code_generate, code_key, id, keep_ms(p), CODE_ATTEMPTS, "pair code", code, err);
}

mr_code pairing_start(prov *p, const char *user_id, pair_started *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    session s = {.status = "pending", .created_at = pair_now()};
    s.expires_at = s.created_at + p->s->pair_ttl_s;
    snprintf(s.user_id, sizeof s.user_id, "%s", user_id);
    mr_code rc = pair_random_token(PAIR_CLIENT_ID_BYTES, out->session_id, err);
    if (rc != MR_OK)
        return rc;
    char key[128];
    session_key(key, sizeof key, out->session_id);
    char *text = session_dump(&s);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory writing a pair session");
    /* The session first: a code must never point at nothing. */
    rc = mr_store_set(prov_store(p), key, text, strlen(text), keep_ms(p), err);
    free(text);
    if (rc == MR_OK)
        rc = claim_code(p, out->session_id, out->code, err);
    if (rc != MR_OK)
        return rc;
    char ckey[600], *old = NULL;
    size_t old_len = 0;
    current_key(ckey, sizeof ckey, user_id);
    rc = mr_store_get(prov_store(p), ckey, &old, &old_len, err);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = MR_OK;
    }
    if (rc == MR_OK)
        rc = mr_store_set(prov_store(p), ckey, out->session_id, strlen(out->session_id), keep_ms(p), err);
    if (rc == MR_OK && old && strcmp(old, out->session_id) != 0)
        expire_session(p, old);
    free(old);
    out->expires_at = s.expires_at;
    return rc;
}

static mr_code view_of(prov *p, const char *id, const session *s, pair_view *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    out->expires_at = s->expires_at;
    if (strcmp(s->status, "connected") == 0) {
        out->state = PAIR_CONNECTED;
        snprintf(out->connection, sizeof out->connection, "%s", s->connection);
        return MR_OK;
    }
    bool current = false;
    mr_code rc = MR_OK;
    if (strcmp(s->status, "pending") == 0 && pair_now() < s->expires_at)
        rc = is_current(p, s->user_id, id, &current, err);
    out->state = current ? PAIR_PENDING : PAIR_EXPIRED;
    return rc;
}

mr_code pairing_status(prov *p, const char *user_id, const char *session_id, pair_view *out, mr_err *err)
{
    char *raw = NULL;
    size_t len = 0;
    session s;
    mr_code rc = session_read(p, session_id, &raw, &len, &s, err);
    free(raw);
    if (rc == MR_OK && strcmp(s.user_id, user_id) != 0)
        rc = mr_err_set(err, MR_ENOTFOUND, "pair session %s belongs to another user", session_id);
    return rc == MR_OK ? view_of(p, session_id, &s, out, err) : rc;
}

/* One round of the claim: decides, or asks for another round after losing a race. */
static mr_code claim_round(prov *p, const char *sid, const char *client_name, const char *fingerprint,
                           bool *allocated, pair_outcome *outcome, bool *decided, pair_done *out, mr_err *err)
{
    char *raw = NULL;
    size_t len = 0;
    session s;
    mr_code rc = session_read(p, sid, &raw, &len, &s, err);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        *outcome = PAIR_NOT_FOUND;
        *decided = true;
        return MR_OK;
    }
    if (rc != MR_OK)
        return rc;
    pair_view v;
    rc = view_of(p, sid, &s, &v, err);
    if (rc == MR_OK && v.state != PAIR_PENDING) {
        *outcome = v.state == PAIR_CONNECTED ? PAIR_USED : PAIR_GONE;
        *decided = true;
    }
    if (rc == MR_OK && !*decided && !*allocated) {
        snprintf(out->owner, sizeof out->owner, "%s", s.user_id);
        rc = conn_create(p, s.user_id, client_name, fingerprint, &out->conn, err);
        *allocated = rc == MR_OK;
    }
    if (rc == MR_OK && !*decided) {
        snprintf(s.status, sizeof s.status, "connected");
        snprintf(s.connection, sizeof s.connection, "%s", out->conn.id);
        bool swapped = false;
        rc = session_swap(p, sid, raw, len, &s, PROV_RETENTION_S * 1000L, &swapped, err);
        if (rc == MR_OK && swapped) {
            *outcome = PAIR_DONE;
            *decided = true;
        }
    }
    free(raw);
    return rc;
}

mr_code pairing_complete(prov *p, const char *code, const char *client_name, const char *fingerprint,
                         pair_outcome *outcome, pair_done *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    *outcome = PAIR_NOT_FOUND;
    char key[128], *sid = NULL;
    size_t len = 0;
    code_key(key, sizeof key, code);
    mr_code rc = mr_store_get(prov_store(p), key, &sid, &len, err);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        return MR_OK;
    }
    if (rc != MR_OK)
        return rc;
    bool allocated = false, decided = false;
    for (int i = 0; rc == MR_OK && !decided && i < CLAIM_ATTEMPTS; i++)
        rc = claim_round(p, sid, client_name, fingerprint, &allocated, outcome, &decided, out, err);
    if (rc == MR_OK && !decided)
        rc = mr_err_set(err, MR_ECONFLICT, "pair session %s kept changing while it was claimed", sid);
    if (allocated && (rc != MR_OK || *outcome != PAIR_DONE)) {
        conn_discard(p, out->owner, &out->conn);
        memset(&out->conn, 0, sizeof out->conn);
    }
    free(sid);
    return rc;
}
