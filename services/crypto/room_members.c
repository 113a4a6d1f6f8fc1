/* room_members.c -- what crypto learns of a room from the events that pass through it on
 * matrix.inbound: whether it is encrypted (and how often its sessions rotate: the state event, or
 * the copy of it the gateway puts on every event), its history visibility and who is in it (member
 * events, and the senders of live messages), so outbound messages are encrypted for the right
 * devices. The gateway publishes state and timeline events of each room in order under the room's
 * key, so the record follows the room as its members see it. */
#include "crypto_internal.h"

#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"
#include "mindroom/msg.h"
#include "mindroom/str.h"

#define COMPONENT "crypto"

static char *facts_key(const char *room_id)
{
    return mr_str_printf("crypto:room:%s", room_id);
}

mr_code crypto_room_facts(crypto_engine *e, const char *room_id, json_t **facts, mr_err *err)
{
    char *key = facts_key(room_id);
    mr_code rc = key ? crypto_vault_get_plain(&e->vault, key, facts, err)
                     : mr_err_set(err, MR_ENOMEM, "out of memory reading what is known of %s", room_id);
    free(key);
    return rc;
}

/* The change a state event makes to facts, applied; false when it changes nothing. */
static bool apply(json_t *facts, const char *room_id, const char *type, const char *state_key, json_t *content)
{
    json_t *had = NULL, *now = NULL;
    const char *field = NULL;
    json_t *where = facts;
    if (strcmp(type, "m.room.encryption") == 0 && !state_key[0]) {
        const char *alg = mr_msg_string(content, "algorithm");
        /* The spec: once a room is encrypted, a later event cannot switch that off. */
        if (!alg || strcmp(alg, MR_OLM_ALGORITHM_MEGOLM) != 0) {
            mr_log_warn(COMPONENT, "%s: ignoring m.room.encryption with algorithm \"%s\" (only " MR_OLM_ALGORITHM_MEGOLM
                        " is supported)", room_id, alg ? alg : "");
            return false;
        }
        field = "encryption";
        now = content;
    } else if (strcmp(type, "m.room.history_visibility") == 0 && !state_key[0]) {
        field = "history_visibility";
        now = json_object_get(content, "history_visibility");
    } else if (strcmp(type, "m.room.member") == 0 && state_key[0] == '@') {
        where = json_object_get(facts, "members");
        field = state_key;
        now = json_object_get(content, "membership");
    }
    if (!field || !now || !json_is_object(where))
        return false;
    had = json_object_get(where, field);
    if (had && json_equal(had, now))
        return false;
    return json_object_set(where, field, now) == 0;
}

/* Whether type is a state event the record follows. */
static bool followed(const char *type)
{
    return strcmp(type, "m.room.encryption") == 0 || strcmp(type, "m.room.history_visibility") == 0 ||
           strcmp(type, "m.room.member") == 0;
}

mr_code crypto_room_observe(crypto_engine *e, const crypto_inbound *in, mr_err *err)
{
    json_t *ev = json_object_get(in->root, "event"), *enc = json_object_get(in->root, "encryption");
    const char *state_key = mr_msg_string(ev, "state_key"), *type = mr_msg_string(ev, "type");
    const char *sender = mr_msg_string(ev, "sender");
    bool state = state_key && type && followed(type);
    /* The sender of a live message is joined when it is sent (the spec's auth rules): how crypto
     * learns who reads a room whose member events it never saw (they came before it kept the
     * room's record). Not from history, whose senders may have left since. */
    bool speaks = !state_key && sender && !json_is_true(json_object_get(in->root, "history"));
    if (!state && !enc && !speaks)
        return MR_OK;
    json_t *facts = NULL;
    mr_code rc = crypto_room_facts(e, in->room_id, &facts, err);
    if (rc == MR_ENOTFOUND && !state && !enc) {
        /* A message alone does not start a record: only encrypted rooms need one. */
        mr_err_clear(err);
        return MR_OK;
    }
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = (facts = json_pack("{s:{}}", "members")) ? MR_OK
                                                      : mr_err_set(err, MR_ENOMEM, "out of memory noting %s",
                                                                   in->event_id);
    }
    json_t *members = json_object_get(facts, "members");
    if (rc == MR_OK && !json_is_object(members))
        rc = mr_err_set(err, MR_EINVAL, "crypto:room:%s in the store has no members object", in->room_id);
    bool changed = false;
    /* The gateway's copy of m.room.encryption rides on every event: a room crypto never saw that
     * state event in is encrypted all the same, so no answer goes there in clear. */
    if (rc == MR_OK && enc)
        changed = apply(facts, in->room_id, "m.room.encryption", "", enc);
    if (rc == MR_OK && state)
        changed = apply(facts, in->room_id, type, state_key, json_object_get(ev, "content")) || changed;
    if (rc == MR_OK && speaks && !json_object_get(members, sender)) {
        if (json_object_set_new(members, sender, json_string("join")) != 0)
            rc = mr_err_set(err, MR_ENOMEM, "out of memory noting %s", in->event_id);
        changed = true;
    }
    if (rc == MR_OK && changed) {
        char *key = facts_key(in->room_id);
        rc = key ? crypto_vault_put_plain(&e->vault, key, facts, 0, err)
                 : mr_err_set(err, MR_ENOMEM, "out of memory noting %s", in->event_id);
        free(key);
    }
    json_decref(facts);
    return rc;
}

json_t *crypto_room_readers(json_t *facts)
{
    json_t *readers = json_object();
    const char *vis = mr_msg_string(facts, "history_visibility");
    /* The reference shares with invited members unless they may only read from their join on. */
    bool invited = !vis || strcmp(vis, "joined") != 0;
    const char *user;
    json_t *m;
    json_object_foreach(json_object_get(facts, "members"), user, m) {
        const char *ms = json_string_value(m);
        if (readers && ms && (strcmp(ms, "join") == 0 || (invited && strcmp(ms, "invite") == 0)) &&
            json_object_set_new(readers, user, json_true()) != 0) {
            json_decref(readers);
            readers = NULL;
        }
    }
    return readers;
}
