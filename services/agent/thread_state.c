/* thread_state.c -- a conversation's recent messages and participants, kept in the store as one
 * JSON value per (room, thread root), written as turns arrive and as replies are sent. */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_TTL_MS (30L * 24 * 3600 * 1000)
#define APPEND_TRIES 8

static void history_key(const char *room_id, const char *root, char *out, size_t cap)
{
    snprintf(out, cap, "history:%s:%s", room_id, root);
}

/* The document in raw (NULL: absent), or an empty one when raw is absent or damaged: history is
 * context for the model, and a damaged copy is better replaced than kept failing. */
static json_t *parse_doc(const char *raw, size_t len)
{
    json_t *doc = raw ? json_loadb(raw, len, 0, NULL) : NULL;
    if (!json_is_object(json_object_get(doc, "participants")) || !json_is_array(json_object_get(doc, "messages"))) {
        json_decref(doc);
        doc = json_pack("{s:{}, s:[]}", "participants", "messages");
    }
    return doc;
}

mr_code thread_load(mr_store *s, const char *room_id, const char *root, thread_state *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    char key[HISTORY_KEY_MAX];
    history_key(room_id, root, key, sizeof key);
    mr_code rc = mr_store_get(s, key, &out->raw, &out->raw_len, err);
    if (rc != MR_OK && rc != MR_ENOTFOUND)
        return rc;
    out->doc = parse_doc(out->raw, out->raw_len);
    if (!out->doc) {
        thread_state_free(out);
        return mr_err_set(err, MR_ENOMEM, "out of memory reading %s", key);
    }
    return MR_OK;
}

void thread_state_free(thread_state *t)
{
    json_decref(t->doc);
    free(t->raw);
    memset(t, 0, sizeof *t);
}

static bool is_person(const roster *r, const char *user_id)
{
    return !roster_by_user(r, user_id) && !roster_is_bot_account(r, user_id);
}

size_t thread_humans(const thread_state *t, const roster *r, const char *sender)
{
    size_t n = 0;
    const char *user;
    json_t *entity;
    json_object_foreach(json_object_get(t->doc, "participants"), user, entity) {
        /* Judged with today's config: a bot account added since no longer counts. */
        if (is_person(r, user) && !(sender && strcmp(user, sender) == 0))
            n++;
    }
    return n + (sender && is_person(r, sender));
}

size_t thread_agents(const thread_state *t, const roster *r, const char **out, size_t cap)
{
    size_t n = 0;
    const char *user;
    json_t *entity;
    json_object_foreach(json_object_get(t->doc, "participants"), user, entity) {
        const roster_entry *e = roster_by_user(r, user);
        if (e && e->kind != ENTITY_ROUTER && n < cap)
            out[n++] = e->name;
    }
    return n;
}

size_t thread_count(const thread_state *t)
{
    return json_array_size(json_object_get(t->doc, "messages"));
}

history_msg thread_message(const thread_state *t, size_t i)
{
    json_t *m = json_array_get(json_object_get(t->doc, "messages"), i);
    history_msg h = {
        .event_id = json_string_value(json_object_get(m, "event_id")),
        .sender = json_string_value(json_object_get(m, "sender")),
        .entity = json_string_value(json_object_get(m, "entity")),
        .body = json_string_value(json_object_get(m, "body")),
    };
    if (!h.sender)
        h.sender = "";
    if (!h.body)
        h.body = "";
    return h;
}

/* At most HISTORY_BODY_MAX bytes of body, cut before a UTF-8 continuation byte. */
static json_t *cut_body(const char *body)
{
    size_t n = strlen(body);
    if (n > HISTORY_BODY_MAX) {
        n = HISTORY_BODY_MAX;
        while (n > 0 && ((unsigned char)body[n] & 0xC0) == 0x80)
            n--;
    }
    return json_stringn(body, n);
}

/* The message of messages whose field is value, or NULL. */
static json_t *find_by(json_t *messages, const char *field, const char *value)
{
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        const char *v = json_string_value(json_object_get(m, field));
        if (v && strcmp(v, value) == 0)
            return m;
    }
    return NULL;
}

/* doc with m added; false when it already holds m. An answer tried again after a crash (its
 * first attempt recorded, its claim not done) replaces the first attempt's text: the room shows
 * the second attempt, as an edit of the first's message. */
static bool add_message(json_t *doc, const history_msg *m)
{
    json_t *messages = json_object_get(doc, "messages");
    if (m->event_id && find_by(messages, "event_id", m->event_id))
        return false;
    json_t *earlier = m->answer ? find_by(messages, "answer", m->answer) : NULL;
    if (earlier)
        return json_object_set_new(earlier, "body", cut_body(m->body)) == 0;
    json_t *entry = json_pack("{s:s, s:o}", "sender", m->sender, "body", cut_body(m->body));
    if (!entry)
        return false;
    if (m->event_id)
        json_object_set_new(entry, "event_id", json_string(m->event_id));
    if (m->answer)
        json_object_set_new(entry, "answer", json_string(m->answer));
    if (m->entity)
        json_object_set_new(entry, "entity", json_string(m->entity));
    json_array_append_new(messages, entry);
    while (json_array_size(messages) > HISTORY_MAX)
        json_array_remove(messages, 0);
    json_t *participants = json_object_get(doc, "participants");
    if (!json_object_get(participants, m->sender))
        json_object_set_new(participants, m->sender, json_string(m->entity ? m->entity : ""));
    return true;
}

void thread_note(thread_state *t, const history_msg *m)
{
    if (add_message(t->doc, m)) {
        t->unsaved = true;
        t->noted = *m;
    }
}

/* Reads t again, keeping its noted message on top of what the store holds. */
static mr_code reload(mr_store *s, const char *room_id, const char *root, thread_state *t, mr_err *err)
{
    history_msg noted = t->noted;
    bool unsaved = t->unsaved;
    thread_state_free(t);
    mr_code rc = thread_load(s, room_id, root, t, err);
    if (rc == MR_OK && unsaved)
        thread_note(t, &noted);
    return rc;
}

/* t's document with m added (m NULL: as it is), as written: *text NULL when nothing changed. */
static mr_code next_doc(thread_state *t, const history_msg *m, const char *key, json_t **doc, char **text, mr_err *err)
{
    *text = NULL;
    *doc = json_deep_copy(t->doc);
    bool changed = *doc && ((m && add_message(*doc, m)) || t->unsaved);
    *text = changed ? json_dumps(*doc, JSON_COMPACT) : NULL;
    if (!*doc || (changed && !*text)) {
        json_decref(*doc);
        *doc = NULL;
        return mr_err_set(err, MR_ENOMEM, "out of memory writing %s", key);
    }
    return MR_OK;
}

/* t's document was written as text. */
static void written(thread_state *t, char *text)
{
    free(t->raw);
    t->raw = text;
    t->raw_len = strlen(text);
    t->unsaved = false;
}

/* t is now doc, written as text. */
static void keep(thread_state *t, json_t *doc, char *text)
{
    json_decref(t->doc);
    t->doc = doc;
    written(t, text);
}

mr_code thread_append_to(mr_store *s, const char *room_id, const char *root, thread_state *t, const history_msg *m,
                         mr_err *err)
{
    char key[HISTORY_KEY_MAX];
    history_key(room_id, root, key, sizeof key);
    for (int attempt = 0; attempt < APPEND_TRIES; attempt++) {
        mr_code rc = attempt > 0 ? reload(s, room_id, root, t, err) : MR_OK;
        json_t *doc = NULL;
        char *text = NULL;
        if (rc == MR_OK)
            rc = next_doc(t, m, key, &doc, &text, err);
        if (rc != MR_OK || !text) {
            json_decref(doc);
            return rc;
        }
        bool swapped = false;
        rc = mr_store_cas(s, key, t->raw, t->raw ? t->raw_len : 0, text, strlen(text), HISTORY_TTL_MS, &swapped, err);
        if (rc == MR_OK && swapped) {
            keep(t, doc, text);
            return MR_OK;
        }
        json_decref(doc);
        free(text);
        if (rc != MR_OK)
            return rc;
    }
    return mr_err_set(err, MR_ECONFLICT, "%s: changed by others %d times in a row", key, APPEND_TRIES);
}

mr_code thread_save(mr_store *s, const char *room_id, const char *root, thread_state *t, mr_err *err)
{
    return t->unsaved ? thread_append_to(s, room_id, root, t, NULL, err) : MR_OK;
}

bool thread_save_op(const char *room_id, const char *root, thread_state *t, char *key, char **text,
                    mr_store_op *op, mr_err *err)
{
    *text = NULL;
    if (!t->unsaved)
        return false;
    history_key(room_id, root, key, HISTORY_KEY_MAX);
    /* t->doc holds the noted message already: it is written as it is. */
    *text = json_dumps(t->doc, JSON_COMPACT);
    if (!*text) {
        mr_err_set(err, MR_ENOMEM, "out of memory writing %s", key);
        return false;
    }
    *op = (mr_store_op){.kind = MR_STORE_OP_CAS, .key = key, .value = *text, .len = strlen(*text),
                        .expect = t->raw, .expect_len = t->raw ? t->raw_len : 0, .ttl_ms = HISTORY_TTL_MS};
    return true;
}

mr_code thread_saved(mr_store *s, const char *room_id, const char *root, thread_state *t, const mr_store_op *op,
                     char *text, mr_err *err)
{
    if (op->rc == MR_OK && op->done) {
        written(t, text);
        return MR_OK;
    }
    free(text);
    /* The batch's message names this write's own failure. */
    if (op->rc != MR_OK)
        return op->rc;
    return thread_save(s, room_id, root, t, err);
}

mr_code thread_append(mr_store *s, const char *room_id, const char *root, const history_msg *m, mr_err *err)
{
    thread_state t;
    mr_code rc = thread_load(s, room_id, root, &t, err);
    if (rc == MR_OK)
        rc = thread_append_to(s, room_id, root, &t, m, err);
    thread_state_free(&t);
    return rc;
}
