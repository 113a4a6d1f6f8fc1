/* passthrough.c -- inbound_event to cleartext_event and outbound_intent to send_request, as they
 * go in a room that is not encrypted (room_encrypt.c encrypts the others). */
#include "crypto_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/ids.h"
#include "mindroom/msg.h"

/* account and room_id, the two identifiers every message here starts with. */
static mr_code need_account_room(json_t *r, const char **room_id, mr_err *err)
{
    const char *account = NULL;
    mr_code rc = mr_msg_need_user(r, "", "account", &account, err);
    if (rc == MR_OK)
        rc = mr_msg_need_room_id(r, "", "room_id", room_id, err);
    return rc;
}

static mr_code check_event(json_t *e, const char **event_id, mr_err *err)
{
    if (!json_is_object(e))
        return mr_err_set(err, MR_EINVAL, "event: missing or not an object");
    const char *sender = NULL, *type = NULL;
    mr_code rc = mr_msg_need_string(e, "event.", "event_id", event_id, err);
    if (rc == MR_OK && (*event_id)[0] != '$')
        rc = mr_err_set(err, MR_EINVAL, "event.event_id: \"%s\" is not an event ID", *event_id);
    if (rc == MR_OK)
        rc = mr_msg_need_user(e, "event.", "sender", &sender, err);
    if (rc == MR_OK)
        rc = mr_msg_need_string(e, "event.", "type", &type, err);
    if (rc != MR_OK)
        return rc;
    json_t *ts = json_object_get(e, "origin_server_ts");
    if (!json_is_integer(ts) || json_integer_value(ts) < 0)
        return mr_err_set(err, MR_EINVAL, "event.origin_server_ts: missing or not a non-negative integer");
    if (!json_is_object(json_object_get(e, "content")))
        return mr_err_set(err, MR_EINVAL, "event.content: missing or not an object");
    return MR_OK;
}

mr_code crypto_inbound_parse(const char *value, size_t len, crypto_inbound *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    mr_code rc = mr_msg_load(value, len, "inbound_event", &out->root, err);
    if (rc != MR_OK)
        return rc;
    json_t *e = json_object_get(out->root, "event");
    rc = need_account_room(out->root, &out->room_id, err);
    if (rc == MR_OK)
        rc = check_event(e, &out->event_id, err);
    json_t *enc = json_object_get(out->root, "encryption");
    if (rc == MR_OK && enc && !json_is_object(enc))
        rc = mr_err_set(err, MR_EINVAL, "encryption: not an object");
    else if (rc == MR_OK && enc && !mr_msg_string(enc, "algorithm"))
        rc = mr_err_set(err, MR_EINVAL, "encryption.algorithm: missing or not a string");
    if (rc != MR_OK) {
        crypto_inbound_free(out);
        return rc;
    }
    out->encrypted = strcmp(mr_msg_string(e, "type"), "m.room.encrypted") == 0;
    if (out->encrypted) {
        const char *session = mr_msg_string(json_object_get(e, "content"), "session_id");
        out->session_id = session ? session : "";
    }
    return MR_OK;
}

void crypto_inbound_free(crypto_inbound *in)
{
    json_decref(in->root);
    memset(in, 0, sizeof *in);
}

char *crypto_cleartext_build(const crypto_inbound *in)
{
    json_t *r = in->root;
    json_t *c = json_pack("{s:i, s:s, s:O, s:O, s:O, s:b, s:s}", "v", 1, "type", "cleartext_event", "account",
                          json_object_get(r, "account"), "room_id", json_object_get(r, "room_id"), "event",
                          json_object_get(r, "event"), "encrypted", 0, "verification", "unencrypted");
    /* history, and the managed room's facts authz and the agent go by. */
    static const char *const carried[] = {"history", "room"};
    for (size_t i = 0; c && i < sizeof carried / sizeof *carried; i++) {
        json_t *v = json_object_get(r, carried[i]);
        if (v && json_object_set(c, carried[i], v) != 0) {
            json_decref(c);
            c = NULL;
        }
    }
    if (!c)
        return NULL;
    char *text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return text;
}

static bool txn_id_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 255 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") == n;
}

/* The fields an action needs on top of the common ones, copied into the request. */
static mr_code copy_action(json_t *in, json_t *req, const char *action, mr_err *err)
{
    const char *kind;
    if (strcmp(action, "send") == 0) {
        const char *type = NULL;
        mr_code rc = mr_msg_need_string(in, "", "event_type", &type, err);
        if (rc != MR_OK)
            return rc;
        if (!json_is_object(json_object_get(in, "content")))
            return mr_err_set(err, MR_EINVAL, "content: missing or not an object (action send)");
        kind = "room_event";
        json_t *replaces = json_object_get(in, "replaces_txn");
        if (replaces && (!json_is_string(replaces) || !txn_id_ok(json_string_value(replaces))))
            return mr_err_set(err, MR_EINVAL, "replaces_txn: not 1 to 255 of [A-Za-z0-9._~-]");
        json_object_set(req, "event_type", json_object_get(in, "event_type"));
        json_object_set(req, "content", json_object_get(in, "content"));
        if (replaces && json_object_set(req, "replaces_txn", replaces) != 0)
            return mr_err_set(err, MR_ENOMEM, "out of memory copying replaces_txn");
    } else if (strcmp(action, "typing") == 0) {
        if (!json_is_boolean(json_object_get(in, "typing")))
            return mr_err_set(err, MR_EINVAL, "typing: missing or not a boolean (action typing)");
        json_t *t = json_object_get(in, "timeout_ms");
        if (t && (!json_is_integer(t) || json_integer_value(t) < 0))
            return mr_err_set(err, MR_EINVAL, "timeout_ms: not a non-negative integer");
        kind = "typing";
        json_object_set(req, "typing", json_object_get(in, "typing"));
        if (t)
            json_object_set(req, "timeout_ms", t);
    } else if (strcmp(action, "redact") == 0) {
        const char *redacts = NULL;
        mr_code rc = mr_msg_need_string(in, "", "redacts", &redacts, err);
        if (rc != MR_OK)
            return rc;
        if (redacts[0] != '$')
            return mr_err_set(err, MR_EINVAL, "redacts: \"%s\" is not an event ID", redacts);
        kind = "redact";
        json_object_set(req, "redacts", json_object_get(in, "redacts"));
    } else {
        return mr_err_set(err, MR_EINVAL, "action: \"%s\" is not send, typing or redact", action);
    }
    json_object_set_new(req, "kind", json_string(kind));
    return MR_OK;
}

mr_code crypto_send_request(const char *value, size_t len, json_t **out, mr_err *err)
{
    *out = NULL;
    json_t *in = NULL;
    mr_code rc = mr_msg_load(value, len, "outbound_intent", &in, err);
    if (rc != MR_OK)
        return rc;
    const char *room_id = NULL, *txn = NULL, *action = NULL;
    rc = need_account_room(in, &room_id, err);
    if (rc == MR_OK && (rc = mr_msg_need_string(in, "", "txn_id", &txn, err)) == MR_OK && !txn_id_ok(txn))
        rc = mr_err_set(err, MR_EINVAL, "txn_id: \"%s\" is not 1 to 255 of [A-Za-z0-9._~-]", txn);
    if (rc == MR_OK)
        rc = mr_msg_need_string(in, "", "action", &action, err);
    json_t *req = NULL;
    if (rc == MR_OK) {
        req = json_pack("{s:i, s:s, s:O, s:O, s:O}", "v", 1, "type", "send_request", "account",
                        json_object_get(in, "account"), "txn_id", json_object_get(in, "txn_id"), "room_id",
                        json_object_get(in, "room_id"));
        if (!req)
            rc = mr_err_set(err, MR_ENOMEM, "out of memory converting intent %s", txn);
    }
    if (rc == MR_OK)
        rc = copy_action(in, req, action, err);
    if (rc == MR_OK)
        *out = req;
    else
        json_decref(req);
    json_decref(in);
    return rc;
}
