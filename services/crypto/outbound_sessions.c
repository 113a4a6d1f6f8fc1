/* outbound_sessions.c -- the sending side's sessions: one outbound Megolm session per (account,
 * room) sealed under crypto:megolm:out:<account>:<room_id>, rotated as m.room.encryption asks
 * and when a reader leaves; and the Olm sessions to readers' devices (crypto:olm:<account>:
 * <curve25519>, the list the inbound path keeps too) its key travels in. What an input advances
 * is sealed by crypto_engine_commit once its messages are on the bus: a crash before that
 * encrypts the same messages again from the same state, and the gateway's transaction IDs keep
 * the room from seeing them twice. */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"
/* The spec's defaults when m.room.encryption names no rotation: a week, 100 messages. */
#define ROTATION_MS_DEFAULT 604800000LL
#define ROTATION_MSGS_DEFAULT 100LL

static mr_code oom(mr_err *err, const char *what)
{
    return mr_err_set(err, MR_ENOMEM, "out of memory %s", what);
}

void crypto_outbound_free(crypto_outbound *s)
{
    free(s->key);
    mr_olm_outbound_group_free(s->group);
    json_decref(s->shared);
    memset(s, 0, sizeof *s);
}

/* A positive integer field of m.room.encryption, or dflt. */
static long long rotation(json_t *facts, const char *field, long long dflt)
{
    json_t *v = json_object_get(json_object_get(facts, "encryption"), field);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (long long)json_integer_value(v) : dflt;
}

/* Whether a device that has s's key is gone from its user's device list: deleted or signed out,
 * it must not read what comes next (as the reference rotates on a device removed). */
static bool device_gone(const crypto_outbound *s, const char *user, json_t *had, json_t *devices)
{
    json_t *now = json_object_get(devices, user);
    const char *did;
    json_t *curve;
    json_object_foreach(had, did, curve) {
        const char *c = mr_msg_string(json_object_get(now, did), "curve25519");
        if (!c || !json_is_string(curve) || strcmp(c, json_string_value(curve)) != 0) {
            mr_log_info(COMPONENT, "%s: device %s of %s no longer listed; rotating", s->session_id, did, user);
            return true;
        }
    }
    return false;
}

bool crypto_outbound_due(const crypto_outbound *s, json_t *facts, json_t *readers, json_t *devices, long long now_ms)
{
    if (s->sent >= rotation(facts, "rotation_period_msgs", ROTATION_MSGS_DEFAULT) ||
        now_ms - s->created_ms >= rotation(facts, "rotation_period_ms", ROTATION_MS_DEFAULT))
        return true;
    const char *user;
    json_t *v;
    json_object_foreach(s->shared, user, v)
        if (!json_object_get(readers, user) || device_gone(s, user, v, devices))
            return true;
    return false;
}

mr_code crypto_outbound_rotate(crypto_engine *e, crypto_device *d, const char *room_id, crypto_outbound *s,
                               json_t *out, mr_err *err)
{
    mr_olm_outbound_group *g = NULL;
    json_t *shared = json_object();
    mr_code rc = shared ? mr_olm_outbound_group_new(&g, err) : oom(err, "starting a Megolm session");
    char *skey = NULL;
    if (rc == MR_OK)
        rc = mr_olm_outbound_group_key(g, &skey, err);
    if (rc != MR_OK) {
        json_decref(shared);
        mr_olm_outbound_group_free(g);
        return rc;
    }
    mr_olm_outbound_group_free(s->group);
    json_decref(s->shared);
    s->group = g;
    s->shared = shared;
    mr_olm_outbound_group_id(g, s->session_id);
    s->created_ms = mr_clock_wall_ms();
    s->sent = 0;
    /* Kept as an inbound session as well: the account's own messages come back encrypted. */
    json_t *key = json_pack("{s:s, s:s, s:s, s:s}", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "room_id", room_id,
                            "session_id", s->session_id, "session_key", skey);
    rc = key ? crypto_room_key(e, d->user_id, d->device_id, mr_olm_account_curve25519(d->account),
                               mr_olm_account_ed25519(d->account), key, out, err)
             : oom(err, "starting a Megolm session");
    json_decref(key);
    mr_olm_free_secret(skey, strlen(skey));
    if (rc == MR_OK)
        mr_log_info(COMPONENT, "%s: new outbound Megolm session %s in %s", d->user_id, s->session_id, room_id);
    return rc;
}

mr_code crypto_outbound_load(crypto_engine *e, crypto_device *d, const char *room_id, json_t *facts,
                             json_t *readers, json_t *devices, crypto_outbound *s, json_t *out, mr_err *err)
{
    memset(s, 0, sizeof *s);
    json_t *rec = NULL;
    s->key = mr_str_printf("crypto:megolm:out:%s:%s", d->user_id, room_id);
    mr_code rc = s->key ? crypto_vault_get(&e->vault, s->key, &rec, err) : oom(err, "reading a Megolm session");
    if (rc == MR_OK) {
        const char *pickle = mr_msg_string(rec, "pickle");
        json_t *created = json_object_get(rec, "created_ms"), *sent = json_object_get(rec, "sent");
        s->shared = json_incref(json_object_get(rec, "shared"));
        if (!pickle || !json_is_integer(created) || !json_is_integer(sent) || !json_is_object(s->shared))
            rc = mr_err_set(err, MR_EINVAL, "%s in the store lacks pickle, created_ms, sent or shared", s->key);
        else if ((rc = mr_olm_outbound_group_unpickle(pickle, e->vault.pickle_key, sizeof e->vault.pickle_key,
                                                      &s->group, err)) == MR_OK) {
            mr_olm_outbound_group_id(s->group, s->session_id);
            s->created_ms = json_integer_value(created);
            s->sent = json_integer_value(sent);
        }
    }
    json_decref(rec);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        return crypto_outbound_rotate(e, d, room_id, s, out, err);
    }
    if (rc == MR_OK && crypto_outbound_due(s, facts, readers, devices, mr_clock_wall_ms()))
        rc = crypto_outbound_rotate(e, d, room_id, s, out, err);
    return rc;
}

mr_code crypto_outbound_encrypt(crypto_device *d, crypto_outbound *s, const char *room_id, const char *event_type,
                                json_t *content, json_t **encrypted, mr_err *err)
{
    *encrypted = NULL;
    /* The spec keeps m.relates_to out of the ciphertext, so servers can aggregate relations. */
    json_t *inner = json_copy(content);
    json_t *rel = json_object_get(content, "m.relates_to");
    if (inner)
        json_object_del(inner, "m.relates_to");
    json_t *payload = inner ? json_pack("{s:s, s:o, s:s}", "type", event_type, "content", inner, "room_id", room_id)
                            : NULL;
    char *plain = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    json_decref(payload);
    if (!plain)
        return oom(err, "encrypting a room event");
    char *ct = NULL;
    size_t plen = strlen(plain);
    mr_code rc = mr_olm_outbound_group_encrypt(s->group, plain, plen, &ct, err);
    mr_olm_free_secret(plain, plen);
    if (rc != MR_OK)
        return rc;
    /* sender_key and device_id are deprecated by the spec but clients (matrix-nio) still need them. */
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s}", "algorithm", MR_OLM_ALGORITHM_MEGOLM, "sender_key",
                          mr_olm_account_curve25519(d->account), "ciphertext", ct, "session_id", s->session_id,
                          "device_id", d->device_id);
    free(ct);
    if (c && rel && json_object_set(c, "m.relates_to", rel) != 0) {
        json_decref(c);
        c = NULL;
    }
    if (!c)
        return oom(err, "encrypting a room event");
    s->sent++;
    *encrypted = c;
    return MR_OK;
}

mr_code crypto_outbound_keep(crypto_engine *e, crypto_outbound *s, json_t *out, mr_err *err)
{
    char *pickle = NULL;
    mr_code rc = mr_olm_outbound_group_pickle(s->group, e->vault.pickle_key, sizeof e->vault.pickle_key, &pickle,
                                              err);
    if (rc != MR_OK)
        return rc;
    json_t *rec = json_pack("{s:s, s:s, s:I, s:I, s:O}", "pickle", pickle, "session_id", s->session_id,
                            "created_ms", (json_int_t)s->created_ms, "sent", (json_int_t)s->sent, "shared",
                            s->shared);
    mr_olm_free_secret(pickle, strlen(pickle));
    return rec ? crypto_out_put(out, s->key, rec, true, err) : oom(err, "keeping a Megolm session");
}

/* ---- Olm sessions to readers' devices ---- */

static char *olm_key(const char *account, const char *curve)
{
    return mr_str_printf("crypto:olm:%s:%s", account, curve);
}

/* The session list with curve as this input sees it (borrowed from o), or NULL when none. */
static mr_code olm_list(crypto_engine *e, crypto_olm_out *o, const char *account, const char *curve, json_t **list,
                        mr_err *err)
{
    *list = NULL;
    if (!o->sessions && !(o->sessions = json_object()))
        return oom(err, "reading Olm sessions");
    json_t *l = json_object_get(o->sessions, curve);
    if (l) {
        *list = json_array_size(l) ? l : NULL;
        return MR_OK;
    }
    char *key = olm_key(account, curve);
    mr_code rc = key ? crypto_vault_get(&e->vault, key, &l, err) : oom(err, "reading Olm sessions");
    free(key);
    if (rc == MR_ENOTFOUND) {
        /* Not cached: a claim may bring one before the next look. */
        mr_err_clear(err);
        return MR_OK;
    }
    if (rc == MR_OK && !json_is_array(l)) {
        json_decref(l);
        return mr_err_set(err, MR_EINVAL, "crypto:olm:%s:%s in the store is not a list", account, curve);
    }
    if (rc == MR_OK && json_object_set_new(o->sessions, curve, l) != 0)
        rc = oom(err, "reading Olm sessions");
    if (rc == MR_OK)
        *list = json_array_size(l) ? l : NULL;
    return rc;
}

mr_code crypto_olm_out_has(crypto_engine *e, crypto_olm_out *o, const char *account, const char *curve25519,
                           bool *has, mr_err *err)
{
    json_t *list = NULL;
    mr_code rc = olm_list(e, o, account, curve25519, &list, err);
    *has = list != NULL;
    return rc;
}

mr_code crypto_olm_out_start(crypto_engine *e, crypto_device *d, const mr_olm_device *dev, json_t *claimed,
                             mr_err *err)
{
    mr_olm_session *s = NULL;
    mr_code rc = mr_olm_session_new_outbound(d->account, dev, claimed, &s, err);
    char *pickle = NULL, *key = olm_key(d->user_id, dev->curve25519);
    if (rc == MR_OK && !key)
        rc = oom(err, "saving an Olm session");
    if (rc == MR_OK)
        rc = mr_olm_session_pickle(s, e->vault.pickle_key, sizeof e->vault.pickle_key, &pickle, err);
    json_t *list = NULL;
    if (rc == MR_OK && (rc = crypto_vault_get(&e->vault, key, &list, err)) == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = (list = json_array()) ? MR_OK : oom(err, "saving an Olm session");
    }
    if (rc == MR_OK && (!json_is_array(list) || json_array_append_new(list, json_string(pickle)) != 0))
        rc = mr_err_set(err, MR_EINVAL, "%s in the store is not a list", key);
    if (rc == MR_OK)
        rc = crypto_vault_put(&e->vault, key, list, err);
    if (rc == MR_OK)
        mr_log_info(COMPONENT, "%s: new Olm session to device %s of %s", d->user_id, dev->device_id, dev->user_id);
    json_decref(list);
    mr_olm_free_secret(pickle, pickle ? strlen(pickle) : 0);
    free(key);
    mr_olm_session_free(s);
    return rc;
}

mr_code crypto_olm_out_encrypt(crypto_engine *e, crypto_olm_out *o, crypto_device *d, const mr_olm_device *dev,
                               const char *type, json_t *content, json_t **encrypted, mr_err *err)
{
    *encrypted = NULL;
    json_t *list = NULL;
    mr_code rc = olm_list(e, o, d->user_id, dev->curve25519, &list, err);
    if (rc == MR_OK && !list)
        rc = mr_err_set(err, MR_ENOTFOUND, "no Olm session with device %s of %s", dev->device_id, dev->user_id);
    if (rc != MR_OK)
        return rc;
    /* The most recently used session is the last (the inbound path keeps the list so). */
    size_t last = json_array_size(list) - 1;
    const unsigned char *pk = e->vault.pickle_key;
    mr_olm_session *s = NULL;
    const mr_olm_payload_parties p = {.sender = d->user_id, .sender_ed25519 = mr_olm_account_ed25519(d->account),
                                      .recipient = dev->user_id, .recipient_ed25519 = dev->ed25519};
    char *plain = NULL, *body = NULL, *pickle = NULL;
    int mtype = 0;
    const char *stored = json_string_value(json_array_get(list, last));
    rc = stored ? mr_olm_session_unpickle(stored, pk, sizeof e->vault.pickle_key, &s, err)
                : mr_err_set(err, MR_EINVAL, "crypto:olm:%s:%s holds a damaged session", d->user_id, dev->curve25519);
    if (rc == MR_OK)
        rc = mr_olm_payload_build(&p, type, content, &plain, err);
    if (rc == MR_OK)
        rc = mr_olm_session_encrypt(s, plain, strlen(plain), &mtype, &body, err);
    if (rc == MR_OK)
        rc = mr_olm_session_pickle(s, pk, sizeof e->vault.pickle_key, &pickle, err);
    if (rc == MR_OK && (json_array_set_new(list, last, json_string(pickle)) != 0 ||
                        (!o->advanced && !(o->advanced = json_object())) ||
                        json_object_set_new(o->advanced, dev->curve25519, json_true()) != 0))
        rc = oom(err, "advancing an Olm session");
    if (rc == MR_OK) {
        *encrypted = json_pack("{s:s, s:s, s:{s:{s:i, s:s}}}", "algorithm", MR_OLM_ALGORITHM_OLM, "sender_key",
                               mr_olm_account_curve25519(d->account), "ciphertext", dev->curve25519, "type", mtype,
                               "body", body);
        if (!*encrypted)
            rc = oom(err, "encrypting a to-device event");
    }
    mr_olm_free_secret(plain, plain ? strlen(plain) : 0);
    mr_olm_free_secret(pickle, pickle ? strlen(pickle) : 0);
    free(body);
    mr_olm_session_free(s);
    return rc;
}

mr_code crypto_olm_out_keep(crypto_olm_out *o, const char *account, json_t *out, mr_err *err)
{
    const char *curve;
    json_t *v;
    json_object_foreach(o->advanced, curve, v) {
        char *key = olm_key(account, curve);
        mr_code rc = key ? crypto_out_put(out, key, json_incref(json_object_get(o->sessions, curve)), true, err)
                         : oom(err, "keeping Olm sessions");
        free(key);
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

void crypto_olm_out_free(crypto_olm_out *o)
{
    json_decref(o->sessions);
    json_decref(o->advanced);
    memset(o, 0, sizeof *o);
}
