/* pending.c -- encrypted events whose Megolm session has not arrived: kept (as they came, they are
 * ciphertext) under crypto:pending:<room_id>:<session_id> and listed in the hash crypto:pending
 * ({since, account, notified, requested, sender, sender_key} per "<room_id> <session_id>"),
 * decrypted when the key comes, requested from the sender's devices after CRYPTO_KEY_REQUEST_MS,
 * and after CRYPTO_KEY_WAIT_MS announced to the room once per session instead of silence. What a
 * retry or a notice changes in the store is written only once its output is on the bus
 * (crypto_engine_commit), so a crash in between repeats it rather than loses it. */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"
#define INDEX "crypto:pending"
/* How long waiting events are kept at all. */
#define PENDING_TTL_MS (7L * 86400000L)

static mr_code oom(mr_err *err, const char *what)
{
    return mr_err_set(err, MR_ENOMEM, "out of memory %s", what);
}

mr_code crypto_pending_add(crypto_engine *e, const crypto_inbound *in, const char *raw, size_t raw_len,
                           long long now_ms, mr_err *err)
{
    char *key = mr_str_printf("crypto:pending:%s:%s", in->room_id, in->session_id);
    char *field = mr_str_printf("%s %s", in->room_id, in->session_id);
    json_t *list = NULL;
    mr_code rc = key && field ? crypto_vault_get_plain(&e->vault, key, &list, err) : oom(err, "parking an event");
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = (list = json_array()) ? MR_OK : oom(err, "parking an event");
    }
    bool known = false;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
        known = known || (json_is_string(v) && strlen(json_string_value(v)) == raw_len &&
                          memcmp(json_string_value(v), raw, raw_len) == 0);
    if (rc == MR_OK && !known && json_array_size(list) >= CRYPTO_PENDING_MAX) {
        mr_log_warn(COMPONENT, "refusing encrypted event %s: %d events already wait for session %s in %s",
                    in->event_id, CRYPTO_PENDING_MAX, in->session_id, in->room_id);
    } else if (rc == MR_OK && !known) {
        if (json_array_append_new(list, json_stringn(raw, raw_len)) != 0)
            rc = oom(err, "parking an event");
        if (rc == MR_OK)
            rc = crypto_vault_put_plain(&e->vault, key, list, PENDING_TTL_MS, err);
        char *had = NULL;
        size_t len = 0;
        mr_code hrc = rc == MR_OK ? mr_store_hget(e->vault.store, INDEX, field, &had, &len, err) : rc;
        free(had);
        if (hrc == MR_ENOTFOUND) {
            mr_err_clear(err);
            char *entry = NULL;
            json_t *ev = json_object_get(in->root, "event");
            json_t *o = json_pack("{s:I, s:O, s:b, s:b, s:O, s:O?}", "since", (json_int_t)now_ms, "account",
                                  json_object_get(in->root, "account"), "notified", 0, "requested", 0, "sender",
                                  json_object_get(ev, "sender"), "sender_key",
                                  json_object_get(json_object_get(ev, "content"), "sender_key"));
            entry = o ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            rc = entry ? mr_store_hset(e->vault.store, INDEX, field, entry, strlen(entry), err)
                       : oom(err, "parking an event");
            free(entry);
        } else {
            rc = hrc;
        }
        if (rc == MR_OK)
            mr_log_info(COMPONENT, "encrypted event %s waits for the key of session %s in %s", in->event_id,
                        in->session_id, in->room_id);
    }
    json_decref(list);
    free(key);
    free(field);
    return rc;
}

mr_code crypto_pending_entry(crypto_engine *e, const char *room_id, const char *session_id, json_t **entry,
                             mr_err *err)
{
    *entry = NULL;
    char *field = mr_str_printf("%s %s", room_id, session_id), *text = NULL;
    size_t len = 0;
    mr_code rc = field ? mr_store_hget(e->vault.store, INDEX, field, &text, &len, err) : oom(err, "reading an entry");
    if (rc == MR_OK && !(*entry = json_loadb(text, len, 0, NULL)))
        rc = mr_err_set(err, MR_EINVAL, "%s field %s is not JSON", INDEX, field);
    free(text);
    free(field);
    return rc;
}

mr_code crypto_pending_get(crypto_engine *e, const char *room_id, const char *session_id, json_t **events,
                           mr_err *err)
{
    *events = NULL;
    char *key = mr_str_printf("crypto:pending:%s:%s", room_id, session_id);
    mr_code rc = key ? crypto_vault_get_plain(&e->vault, key, events, err) : oom(err, "reading waiting events");
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = (*events = json_array()) ? MR_OK : oom(err, "reading waiting events");
    }
    free(key);
    return rc;
}

void crypto_pending_resolve(json_t *out, const char *room_id, const char *session_id, json_t *keep)
{
    json_array_append_new(out, json_pack("{s:{s:s, s:s, s:o}}", "resolve", "room_id", room_id, "session_id",
                                         session_id, "keep", keep));
}

/* What a retry decided, once its cleartexts are on the bus: the events that still wait, or none
 * (then the list and its index entry go). */
static mr_code resolve(crypto_engine *e, json_t *r, mr_err *err)
{
    const char *room = mr_msg_string(r, "room_id"), *session = mr_msg_string(r, "session_id");
    json_t *keep = json_object_get(r, "keep");
    char *key = mr_str_printf("crypto:pending:%s:%s", room, session), *field = mr_str_printf("%s %s", room, session);
    mr_code rc = key && field ? MR_OK : oom(err, "updating waiting events");
    if (rc == MR_OK && json_array_size(keep))
        rc = crypto_vault_put_plain(&e->vault, key, keep, PENDING_TTL_MS, err);
    else if (rc == MR_OK && (rc = mr_store_del(e->vault.store, key, err)) == MR_OK) {
        rc = mr_store_hdel(e->vault.store, INDEX, field, err);
        rc = rc == MR_ENOTFOUND ? MR_OK : rc;
    }
    free(key);
    free(field);
    return rc;
}

/* The notice as a send_request; its transaction ID comes from the session, so a sweep repeated
 * after a crash (before crypto_pending_mark) sends it once. */
static json_t *notice(const char *account, const char *room_id, const char *session_id)
{
    char *txn = mr_str_printf("mrcd.%s", session_id);
    for (char *p = txn; p && *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    char *body = mr_str_printf("I could not decrypt a message here: the sender's device has not shared its room "
                               "key (Megolm session %s) with my device. Sending it again from a client that "
                               "shares keys with unverified devices should work.", session_id);
    json_t *req = txn && body ? json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "v", 1, "type",
                                          "send_request", "account", account, "kind", "room_event", "txn_id", txn,
                                          "room_id", room_id, "event_type", "m.room.message", "content",
                                          "msgtype", "m.notice", "body", body)
                              : NULL;
    free(txn);
    free(body);
    return req;
}

/* One entry of the index: dropped when its events expired, else their key tried again, asked
 * for, or announced as it is due. */
static mr_code sweep_entry(const crypto_sweep *s, const char *field, const char *value, mr_err *err)
{
    crypto_engine *e = s->e;
    long long now_ms = s->now_ms;
    json_t *out = s->out;
    mr_code rc = MR_OK;
    json_t *o = json_loads(value, 0, NULL);
    const char *account = mr_msg_string(o, "account");
    const char *space = strchr(field, ' ');
    json_t *since = json_object_get(o, "since");
    if (json_is_integer(since) && json_integer_value(since) + PENDING_TTL_MS <= now_ms) {
        /* Its events expired with their list: the entry goes too. */
        rc = mr_store_hdel(e->vault.store, INDEX, field, err);
        rc = rc == MR_ENOTFOUND ? MR_OK : rc;
    } else if (account && space && json_is_integer(since)) {
        char *room = strndup(field, (size_t)(space - field));
        bool all = false;
        /* A key that came while events were being retried (a crash in between) is tried
         * again here. */
        rc = room ? crypto_room_retry(e, room, space + 1, out, &all, err) : oom(err, "sweeping waiting events");
        const char *sender = mr_msg_string(o, "sender"), *sender_key = mr_msg_string(o, "sender_key");
        if (rc == MR_OK && !all && sender && sender_key && !json_is_true(json_object_get(o, "requested")) &&
            json_integer_value(since) + CRYPTO_KEY_REQUEST_MS <= now_ms) {
            /* NULL: the account's device is not known yet; the next sweep asks. */
            json_t *kr = crypto_key_request(e, account, room, space + 1, sender, sender_key);
            if (kr) {
                mr_log_info(COMPONENT, "%s: the key of Megolm session %s did not come; asking %s's devices",
                            room, space + 1, sender);
                crypto_out_add(out, "matrix.send", account, kr);
                json_object_set_new(json_array_get(out, json_array_size(out) - 1), "requested",
                                    json_string(field));
            }
        }
        bool due = !all && !json_is_true(json_object_get(o, "notified")) &&
                   json_integer_value(since) + CRYPTO_KEY_WAIT_MS <= now_ms;
        json_t *req = rc == MR_OK && due ? notice(account, room, space + 1) : NULL;
        if (rc == MR_OK && due && !req)
            rc = oom(err, "announcing an undecryptable session");
        else if (req) {
            mr_log_warn(COMPONENT, "%s: the key of Megolm session %s did not come within %d s; telling the room",
                        room, space + 1, CRYPTO_KEY_WAIT_MS / 1000);
            crypto_out_add(out, "matrix.send", room, req);
            json_object_set_new(json_array_get(out, json_array_size(out) - 1), "pending", json_string(field));
        }
        free(room);
    }
    json_decref(o);
    return rc;
}

mr_code crypto_pending_sweep(crypto_engine *e, long long now_ms, json_t *out, mr_err *err)
{
    return crypto_sweep_hash(e, now_ms, out, INDEX, sweep_entry, err);
}

/* Marks an entry as announced ("notified") or its key as asked for ("requested"). */
static mr_code mark(crypto_engine *e, const char *field, const char *what, mr_err *err)
{
    char *had = NULL;
    size_t len = 0;
    mr_code rc = mr_store_hget(e->vault.store, INDEX, field, &had, &len, err);
    json_t *entry = rc == MR_OK ? json_loadb(had, len, 0, NULL) : NULL;
    free(had);
    if (rc == MR_ENOTFOUND) {
        /* The key came in the meantime. */
        mr_err_clear(err);
        return MR_OK;
    }
    char *text = entry && json_object_set_new(entry, what, json_true()) == 0 ? json_dumps(entry, JSON_COMPACT) : NULL;
    json_decref(entry);
    if (rc == MR_OK)
        rc = text ? mr_store_hset(e->vault.store, INDEX, field, text, strlen(text), err)
                  : oom(err, "marking a notice as sent");
    free(text);
    return rc;
}

/* A crypto_out_put entry. */
static mr_code put(crypto_engine *e, json_t *o, mr_err *err)
{
    const char *key = mr_msg_string(o, "put");
    json_t *v = json_object_get(o, "value");
    if (!v) {
        mr_code rc = mr_store_del(e->vault.store, key, err);
        return rc == MR_ENOTFOUND ? MR_OK : rc;
    }
    return json_is_true(json_object_get(o, "sealed")) ? crypto_vault_put(&e->vault, key, v, err)
                                                     : crypto_vault_put_plain(&e->vault, key, v, 0, err);
}

/* Whether crypto_engine_commit acts on the entry (the fields it reads below). */
static bool commits(const json_t *o)
{
    static const char *const fields[] = {"pending", "requested", "resolve", "put"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (json_object_get(o, fields[i]))
            return true;
    return false;
}

bool crypto_engine_commit_writes(const json_t *out)
{
    size_t i;
    const json_t *o;
    json_array_foreach(out, i, o) {
        if (commits(o))
            return true;
    }
    return false;
}

mr_code crypto_engine_commit(crypto_engine *e, json_t *out, mr_err *err)
{
    size_t i;
    json_t *o;
    mr_code rc = MR_OK;
    json_array_foreach(out, i, o) {
        const char *field = mr_msg_string(o, "pending"), *asked = mr_msg_string(o, "requested");
        json_t *r = json_object_get(o, "resolve");
        if (field)
            rc = mark(e, field, "notified", err);
        else if (asked)
            rc = mark(e, asked, "requested", err);
        else if (r)
            rc = resolve(e, r, err);
        else if (mr_msg_string(o, "put"))
            rc = put(e, o, err);
        if (rc != MR_OK)
            break;
    }
    return rc;
}
