/* authz_describe.c -- a decision in one sentence, for `authz explain` and the logs. */
#include "authz_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* An snprintf-style writer: keeps counting past cap so the caller learns the full length. */
typedef struct writer {
    char *buf;
    size_t cap;
    size_t len;
} writer;

static void put(writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(writer *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = w->len < w->cap ? w->buf + w->len : NULL;
    int n = vsnprintf(dst, dst ? w->cap - w->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->len += (size_t)n;
}

static const char *kind_name(mr_authz_entity_kind k)
{
    switch (k) {
    case MR_AUTHZ_ENTITY_AGENT: return "agent";
    case MR_AUTHZ_ENTITY_TEAM: return "team";
    case MR_AUTHZ_ENTITY_INTERNAL_USER: return "internal user";
    default: return "entity";
    }
}

/* "agent code", "team devteam", "the router". */
static void entity_ref(writer *w, mr_authz_entity_kind kind, const char *name)
{
    if (kind == MR_AUTHZ_ENTITY_ROUTER)
        put(w, "the router");
    else
        put(w, "%s %s", kind_name(kind), name);
}

/* The judged user, with the canonical user it stands for when it is an alias. */
static void who(writer *w, const mr_authz_decision *d)
{
    put(w, "%s", d->subject);
    if (strcmp(d->canonical, d->subject) != 0)
        put(w, " (alias of %s)", d->canonical);
}

/* `agent_reply_permissions["code"]`, or the "*" entry with the entity it stood in for. */
static void policy(writer *w, const mr_authz_decision *d)
{
    put(w, "agent_reply_permissions[\"%s\"]", d->policy_key);
    if (strcmp(d->policy_key, "*") == 0)
        put(w, " (the default for %s)", d->policy_entity);
}

static void describe_room(writer *w, const mr_authz_decision *d)
{
    const char *room = d->room ? d->room : "this room";
    switch (d->step) {
    case MR_AUTHZ_STEP_INTERNAL_USER:
        put(w, "%s is the internal MindRoom user", d->sender);
        break;
    case MR_AUTHZ_STEP_MANAGED_ENTITY:
        put(w, "%s is ", d->sender);
        entity_ref(w, d->subject_kind, d->subject_entity);
        break;
    case MR_AUTHZ_STEP_GLOBAL_USERS:
        who(w, d);
        put(w, " is in global_users");
        break;
    case MR_AUTHZ_STEP_ROOM_PERMISSIONS:
        put(w, "room_permissions lists %s and ", d->matched);
        who(w, d);
        put(w, d->allowed ? " is in it" : " is not in it");
        break;
    default:
        put(w, "room_permissions has no entry for %s, ", room);
        who(w, d);
        put(w, " is not in global_users, and default_room_access is %s",
            d->allowed ? "true" : "false");
        break;
    }
}

/* The sentence for one policy check (the team's own, or the member's that failed). */
static void describe_policy(writer *w, const mr_authz_decision *d)
{
    switch (d->step) {
    case MR_AUTHZ_STEP_REPLY_NO_POLICY:
        put(w, "agent_reply_permissions has no entry for %s and no \"*\" entry", d->policy_entity);
        break;
    case MR_AUTHZ_STEP_REPLY_ANYONE:
        policy(w, d);
        put(w, " allows anyone");
        break;
    case MR_AUTHZ_STEP_REPLY_LISTED:
        if (strcmp(d->matched, d->canonical) == 0) {
            policy(w, d);
            put(w, " lists ");
            who(w, d);
        } else {
            who(w, d);
            put(w, " matches \"%s\" in ", d->matched);
            policy(w, d);
        }
        break;
    case MR_AUTHZ_STEP_REPLY_JOINED_ROOM:
        who(w, d);
        put(w, " is a member of %s, listed in ", d->matched);
        policy(w, d);
        put(w, ".joined_rooms");
        break;
    default:
        policy(w, d);
        put(w, " does not list ");
        who(w, d);
        break;
    }
}

static void describe_reply(writer *w, const mr_authz_decision *d)
{
    if (d->step == MR_AUTHZ_STEP_REPLY_UNKNOWN_ENTITY) {
        put(w, "'%s' is not an agent, team or the router in this config", d->entity);
        return;
    }
    if (d->step == MR_AUTHZ_STEP_REPLY_INTERNAL) {
        put(w, "%s is an internal MindRoom identity (", d->subject);
        entity_ref(w, d->subject_kind, d->subject_entity);
        put(w, "), exempt from reply permissions");
    } else {
        bool member_failed = d->entity_kind == MR_AUTHZ_ENTITY_TEAM && !d->allowed &&
                             strcmp(d->policy_entity, d->entity) != 0;
        if (member_failed)
            put(w, "team %s needs every member agent to allow the sender, and ", d->entity);
        describe_policy(w, d);
        if (d->entity_kind == MR_AUTHZ_ENTITY_TEAM && d->allowed)
            put(w, "; every member agent of team %s allows it too (%zu checked)", d->entity, d->n_members);
    }
    if (strcmp(d->subject, d->sender) != 0)
        put(w, " (relayed by %s)", d->sender);
}

int mr_authz_describe(const mr_authz_decision *d, char *buf, size_t cap)
{
    writer w = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    put(&w, "%s: ", d->allowed ? "allowed" : "denied");
    if (d->reply)
        describe_reply(&w, d);
    else
        describe_room(&w, d);
    return (int)w.len;
}

const char *mr_authz_step_name(mr_authz_step step)
{
    switch (step) {
    case MR_AUTHZ_STEP_INTERNAL_USER: return "internal_user";
    case MR_AUTHZ_STEP_MANAGED_ENTITY: return "managed_entity";
    case MR_AUTHZ_STEP_GLOBAL_USERS: return "global_users";
    case MR_AUTHZ_STEP_ROOM_PERMISSIONS: return "room_permissions";
    case MR_AUTHZ_STEP_DEFAULT_ACCESS: return "default_room_access";
    case MR_AUTHZ_STEP_REPLY_UNKNOWN_ENTITY: return "unknown_entity";
    case MR_AUTHZ_STEP_REPLY_INTERNAL: return "internal_identity";
    case MR_AUTHZ_STEP_REPLY_NO_POLICY: return "no_reply_policy";
    case MR_AUTHZ_STEP_REPLY_ANYONE: return "reply_anyone";
    case MR_AUTHZ_STEP_REPLY_LISTED: return "reply_listed";
    case MR_AUTHZ_STEP_REPLY_JOINED_ROOM: return "reply_joined_room";
    case MR_AUTHZ_STEP_REPLY_NOT_LISTED: return "reply_not_listed";
    }
    return "unknown";
}
