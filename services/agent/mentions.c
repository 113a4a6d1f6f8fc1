/* mentions.c -- who a message mentions: m.mentions, then matrix.to links, then @name tokens. */
#include "agent_internal.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define MATRIX_TO "matrix.to/#/"

static void add_name(mentions *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->names[i] == name)
            return;
    if (m->n < MENTIONS_MAX)
        m->names[m->n++] = name;
}

/* One mentioned user ID: an entity, someone else, or nobody that counts. */
static void add_user(const roster *r, mentions *m, const char *user_id, const char *sender)
{
    if (sender && strcmp(user_id, sender) == 0)
        return;
    const roster_entry *e = roster_by_user(r, user_id);
    if (e)
        add_name(m, e->name);
    else if (!roster_is_bot_account(r, user_id))
        m->other = true;
}

static bool from_m_mentions(const roster *r, json_t *content, const char *sender, mentions *m)
{
    json_t *ids = json_object_get(json_object_get(content, "m.mentions"), "user_ids");
    size_t i;
    json_t *id;
    bool any = false;
    json_array_foreach(ids, i, id) {
        const char *s = json_string_value(id);
        if (s && mr_id_parse_user(s, NULL, NULL) == MR_OK) {
            add_user(r, m, s, sender);
            any = true;
        }
    }
    return any;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The user ID of a link that starts at p (after "matrix.to/#/"), percent-decoded; false when it
 * is not a user ID (a room, an event) or does not fit. */
static bool link_user(const char *p, char out[MR_ID_MAX + 1])
{
    size_t n = 0;
    for (; *p && !strchr("\"'<> ?/\t\r\n)", *p); p++) {
        char c = *p;
        if (c == '%' && hex_value(p[1]) >= 0 && hex_value(p[2]) >= 0) {
            c = (char)(hex_value(p[1]) * 16 + hex_value(p[2]));
            p += 2;
        }
        if (n == MR_ID_MAX)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return out[0] == '@' && mr_id_parse_user(out, NULL, NULL) == MR_OK;
}

static bool from_links(const roster *r, const char *text, const char *sender, mentions *m)
{
    bool any = false;
    for (const char *p = text; p && (p = strstr(p, MATRIX_TO)); p += strlen(MATRIX_TO)) {
        char id[MR_ID_MAX + 1];
        if (link_user(p + strlen(MATRIX_TO), id)) {
            add_user(r, m, id, sender);
            any = true;
        }
    }
    return any;
}

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* The length of `name` at p when p starts with it (case-insensitive) and the word ends there. */
static size_t match_at(const char *p, const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || strncasecmp(p, name, n) != 0 || word_char(p[n]))
        return 0;
    return n;
}

/* The entity whose name, display name, localpart or full user ID the text after '@' starts
 * with; the longest match wins, so "@Dev Team" beats "@Dev". */
static const char *token_entity(const roster *r, const char *p)
{
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < r->n; i++) {
        const roster_entry *e = &r->v[i];
        const char *id = e->user_id + 1; /* "mindroom_mind:example.org" */
        size_t localpart = strcspn(id, ":");
        size_t lens[4] = {match_at(p, e->name), match_at(p, e->display_name), 0, match_at(p, id)};
        if (strncasecmp(p, id, localpart) == 0 && !word_char(p[localpart]))
            lens[2] = localpart;
        for (size_t k = 0; k < 4; k++) {
            if (lens[k] > best_len) {
                best_len = lens[k];
                best = e->name;
            }
        }
    }
    return best;
}

static bool from_tokens(const roster *r, const char *body, mentions *m)
{
    bool any = false;
    for (const char *p = body; p && (p = strchr(p, '@')); p++) {
        /* "bob@example.org" is an e-mail address, not a mention. */
        if (p > body && (word_char(p[-1]) || p[-1] == '.'))
            continue;
        const char *name = token_entity(r, p + 1);
        if (name) {
            add_name(m, name);
            any = true;
        }
    }
    return any;
}

void mentions_extract(const roster *r, json_t *content, const char *sender, mentions *out)
{
    memset(out, 0, sizeof *out);
    const char *body = json_string_value(json_object_get(content, "body"));
    const char *formatted = json_string_value(json_object_get(content, "formatted_body"));
    if (from_m_mentions(r, content, sender, out))
        out->source = "m.mentions";
    else if (from_links(r, formatted, sender, out) || from_links(r, body, sender, out))
        out->source = "matrix.to";
    else if (from_tokens(r, body, out))
        out->source = "body";
}
