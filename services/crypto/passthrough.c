/* passthrough.c -- inbound_event to cleartext_event and outbound_intent to send_request, as they
 * go in a room that is not encrypted (room_encrypt.c encrypts the others). */
#include "crypto_internal.h"

#include <string.h>

#include "mindroom/msg.h"

mr_code crypto_inbound_parse(const char *value, size_t len, crypto_inbound *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    mr_code rc = mr_msg_load(value, len, "inbound_event", &out->root, err);
    if (rc != MR_OK)
        return rc;
    mr_msg_event e;
    mr_msg_event_read(json_object_get(out->root, "event"), &e);
    out->room_id = mr_msg_string(out->root, "room_id");
    out->event_id = e.event_id;
    out->encrypted = strcmp(e.type, "m.room.encrypted") == 0;
    if (out->encrypted) {
        const char *session = mr_msg_string(e.content, "session_id");
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

/* The fields an action needs on top of the common ones, copied into the request; the schema
 * made sure each is there. */
static mr_code copy_action(json_t *in, json_t *req, const char *action, mr_err *err)
{
    static const struct {
        const char *action, *kind, *fields[3];
    } actions[] = {
        {"send", "room_event", {"event_type", "content", "replaces_txn"}},
        {"typing", "typing", {"typing", "timeout_ms", NULL}},
        {"redact", "redact", {"redacts", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++) {
        if (strcmp(action, actions[i].action) != 0)
            continue;
        bool bad = false;
        for (size_t f = 0; f < 3 && actions[i].fields[f]; f++) {
            json_t *v = json_object_get(in, actions[i].fields[f]);
            bad |= v && json_object_set(req, actions[i].fields[f], v) != 0;
        }
        bad |= json_object_set_new(req, "kind", json_string(actions[i].kind)) != 0;
        return bad ? mr_err_set(err, MR_ENOMEM, "out of memory converting a %s intent", action) : MR_OK;
    }
    /* Reached only when the schema gains an action this file does not know yet. */
    return mr_err_set(err, MR_EINVAL, "action: \"%s\" has no send_request kind in crypto", action);
}

mr_code crypto_send_request(const char *value, size_t len, json_t **out, mr_err *err)
{
    *out = NULL;
    json_t *in = NULL;
    mr_code rc = mr_msg_load(value, len, "outbound_intent", &in, err);
    if (rc != MR_OK)
        return rc;
    json_t *req = json_pack("{s:i, s:s, s:O, s:O, s:O}", "v", 1, "type", "send_request", "account",
                            json_object_get(in, "account"), "txn_id", json_object_get(in, "txn_id"), "room_id",
                            json_object_get(in, "room_id"));
    if (!req)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory converting intent %s", mr_msg_string(in, "txn_id"));
    if (rc == MR_OK)
        rc = copy_action(in, req, mr_msg_string(in, "action"), err);
    if (rc == MR_OK)
        *out = req;
    else
        json_decref(req);
    json_decref(in);
    return rc;
}
