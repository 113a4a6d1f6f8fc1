/* reply.c -- the Matrix content of answers (MSC3440 thread replies, m.replace edits, the
 * router's hand-off) and the outbound intents that carry them. */
#include "agent_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/str.h"

#define TYPING_TIMEOUT_MS 30000
#define HANDOFF_TEXT " could you help with this?"

static json_t *text_content(const char *body)
{
    return json_pack("{s:s, s:s}", "msgtype", "m.text", "body", body);
}

static void relate(json_t *content, const reply_where *where)
{
    /* thread_mode room: a plain message, as the reference sends for bridges and mobile clients. */
    if (!where->thread_root)
        return;
    json_object_set_new(content, "m.relates_to",
                        json_pack("{s:s, s:s, s:b, s:{s:s}}", "rel_type", "m.thread", "event_id", where->thread_root,
                                  "is_falling_back", 1, "m.in_reply_to", "event_id", where->trigger));
}

json_t *reply_content(const char *body, const reply_where *where)
{
    json_t *c = text_content(body);
    if (c)
        relate(c, where);
    return c;
}

json_t *reply_edit_content(const char *body)
{
    /* Clients without edit support show the fallback body: "* " marks it as a correction. */
    char *starred = mr_str_printf("* %s", body);
    if (!starred)
        return NULL;
    json_t *c = json_pack("{s:s, s:s, s:o, s:{s:s}}", "msgtype", "m.text", "body", starred, "m.new_content",
                          text_content(body), "m.relates_to", "rel_type", "m.replace");
    free(starred);
    return c;
}

/* text with &, <, > and " escaped for formatted_body; malloc'd. */
static char *html_escape(const char *text)
{
    char *out = malloc(6 * strlen(text) + 1), *o = out;
    for (const char *p = text; out && *p; p++) {
        const char *rep = *p == '&' ? "&amp;" : *p == '<' ? "&lt;" : *p == '>' ? "&gt;" : *p == '"' ? "&quot;" : NULL;
        size_t k = rep ? strlen(rep) : 1;
        memcpy(o, rep ? rep : p, k);
        o += k;
    }
    if (out)
        *o = '\0';
    return out;
}

json_t *reply_mention_content(const char *user_id, const char *display, const char *text, const char *original_sender,
                              const reply_where *where)
{
    char *name = html_escape(display);
    char *id = html_escape(user_id);
    char *rest = html_escape(text);
    char *body = mr_str_printf("@%s%s", display, text);
    char *formatted = name && id && rest ? mr_str_printf("<a href=\"https://matrix.to/#/%s\">@%s</a>%s", id, name, rest)
                                         : NULL;
    json_t *c = NULL;
    if (body && formatted)
        c = json_pack("{s:s, s:s, s:s, s:s, s:{s:[s]}, s:s}", "msgtype", "m.text", "body", body, "format",
                      "org.matrix.custom.html", "formatted_body", formatted, "m.mentions", "user_ids",
                      user_id, "com.mindroom.original_sender", original_sender);
    if (c)
        relate(c, where);
    free(name);
    free(id);
    free(rest);
    free(body);
    free(formatted);
    return c;
}

json_t *reply_handoff_content(const roster_entry *agent, const char *original_sender, const reply_where *where)
{
    return reply_mention_content(agent->user_id, agent->display_name, HANDOFF_TEXT, original_sender, where);
}

static char *intent_text(json_t *intent)
{
    char *text = intent ? json_dumps(intent, JSON_COMPACT) : NULL;
    json_decref(intent);
    return text;
}

char *reply_send_intent(const char *account, const char *room_id, const char *txn, const char *replaces_txn,
                        const char *in_reply_to, json_t *content)
{
    return reply_event_intent(account, room_id, txn, "m.room.message", replaces_txn, in_reply_to, content);
}

char *reply_event_intent(const char *account, const char *room_id, const char *txn, const char *event_type,
                         const char *replaces_txn, const char *in_reply_to, json_t *content)
{
    json_t *i = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "v", 1, "type", "outbound_intent", "account",
                          account, "room_id", room_id, "action", "send", "txn_id", txn, "event_type",
                          event_type, "content", content);
    if (i && in_reply_to && json_object_set_new(i, "in_reply_to", json_string(in_reply_to)) != 0) {
        json_decref(i);
        i = NULL;
    }
    if (i && replaces_txn && json_object_set_new(i, "replaces_txn", json_string(replaces_txn)) != 0) {
        json_decref(i);
        i = NULL;
    }
    return intent_text(i);
}

char *reply_typing_intent(const char *account, const char *room_id, const char *txn, bool typing)
{
    json_t *i = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:b}", "v", 1, "type", "outbound_intent", "account",
                          account, "room_id", room_id, "action", "typing", "txn_id", txn, "typing", typing);
    if (i && typing)
        json_object_set_new(i, "timeout_ms", json_integer(TYPING_TIMEOUT_MS));
    return intent_text(i);
}
