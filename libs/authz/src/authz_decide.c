/* authz_decide.c -- the two questions, answered from the compiled tables without allocating. */
#include "authz_internal.h"

#include <stdio.h>
#include <string.h>

/* Room identifiers tried against room_permissions, in order; the first present key decides. */
typedef struct room_names {
    const char *v[5];
    size_t n;
    char alias[MR_ID_MAX + 1];
    char localpart[MR_ID_MAX + 1];
    char key[MR_ID_MAX + 1];
} room_names;

static bool present(const char *s)
{
    return s && *s;
}

static void decision_init(mr_authz_decision *d, const char *sender, bool reply)
{
    memset(d, 0, sizeof *d);
    d->sender = d->subject = d->canonical = sender;
    d->reply = reply;
}

static const mr_authz_entity *internal_entity(const mr_authz *az, const char *user, uint64_t h)
{
    const mr_authz_slot *s = mr_authz_map_get(&az->internal_ids, user, h);
    return s ? &az->entities[s->value] : NULL;
}

/* Step 3: a bridge alias stands for its canonical user. */
static const char *resolve_alias(const mr_authz *az, const char *user, uint64_t h)
{
    const mr_authz_slot *s = mr_authz_map_get(&az->aliases, user, h);
    return s ? az->cfg->authorization.aliases[s->value].canonical : user;
}

static void names_add(room_names *rn, const char *s)
{
    rn->v[rn->n++] = s;
}

/* The managed alias of a bare room key: `#<key>[_<ns>]:<server>`. */
static const char *alias_of_key(const mr_authz *az, const char *key, room_names *rn)
{
    char lp[MR_ID_MAX + 1];
    if (mr_id_managed_alias_localpart(key, az->ns, lp, sizeof lp, NULL) != MR_OK)
        return NULL;
    int n = snprintf(rn->alias, sizeof rn->alias, "#%s:%s", lp, az->server);
    return n > 0 && (size_t)n < sizeof rn->alias ? rn->alias : NULL;
}

/* Room ID, managed room key, full alias, alias localpart, then the room key that localpart
 * names in this namespace (`ops_ab3k9xyz` -> `ops`), as the reference implementation orders
 * them. */
static void room_names_build(const mr_authz *az, const mr_authz_room *room, room_names *rn)
{
    rn->n = 0;
    if (!room)
        return;
    if (present(room->room_id))
        names_add(rn, room->room_id);
    if (present(room->room_key))
        names_add(rn, room->room_key);
    const char *alias = present(room->alias) ? room->alias
                        : present(room->room_key) ? alias_of_key(az, room->room_key, rn)
                                                  : NULL;
    if (!alias)
        return;
    names_add(rn, alias);
    const char *colon = strchr(alias, ':');
    size_t lp_len = colon ? (size_t)(colon - alias - 1) : 0;
    if (alias[0] != '#' || lp_len == 0 || lp_len >= sizeof rn->localpart)
        return;
    memcpy(rn->localpart, alias + 1, lp_len);
    rn->localpart[lp_len] = '\0';
    names_add(rn, rn->localpart);
    if (mr_id_room_key_from_alias_localpart(rn->localpart, az->ns, rn->key, sizeof rn->key) &&
        strcmp(rn->key, rn->localpart) != 0)
        names_add(rn, rn->key);
}

static const char *room_label(const mr_authz_room *room)
{
    if (!room)
        return NULL;
    return present(room->room_id) ? room->room_id
           : present(room->alias) ? room->alias
           : present(room->room_key) ? room->room_key
                                     : NULL;
}

/* Steps 1 and 2, shared by both questions: the subject is a managed identity. */
static bool decide_internal(mr_authz_decision *d, const mr_authz_entity *e, mr_authz_step step)
{
    d->allowed = true;
    d->step = step;
    d->subject_kind = e->kind;
    d->subject_entity = e->name;
    return true;
}

bool mr_authz_check_room(const mr_authz *az, const char *sender, const mr_authz_room *room,
                         mr_authz_decision *out)
{
    decision_init(out, sender, false);
    out->room = room_label(room);
    uint64_t h = mr_authz_hash(sender);
    const mr_authz_entity *e = internal_entity(az, sender, h);
    if (e)
        return decide_internal(out, e, e->kind == MR_AUTHZ_ENTITY_INTERNAL_USER
                                           ? MR_AUTHZ_STEP_INTERNAL_USER
                                           : MR_AUTHZ_STEP_MANAGED_ENTITY);
    out->canonical = resolve_alias(az, sender, h);
    if (out->canonical != sender)
        h = mr_authz_hash(out->canonical);
    const mr_authz_slot *s = mr_authz_map_get(&az->global_users, out->canonical, h);
    if (s) {
        out->allowed = true;
        out->step = MR_AUTHZ_STEP_GLOBAL_USERS;
        out->matched = s->key;
        return true;
    }
    room_names rn;
    room_names_build(az, room, &rn);
    for (size_t i = 0; i < rn.n; i++) {
        s = mr_authz_map_get(&az->room_keys, rn.v[i], mr_authz_hash(rn.v[i]));
        if (!s)
            continue;
        const mr_authz_room_perm *rp = &az->rooms[s->value];
        /* No fall-through: once the room is listed, only its list counts. */
        out->allowed = mr_authz_map_get(&rp->users, out->canonical, h) != NULL;
        out->step = MR_AUTHZ_STEP_ROOM_PERMISSIONS;
        out->matched = rp->key;
        return out->allowed;
    }
    out->allowed = az->cfg->authorization.default_room_access;
    out->step = MR_AUTHZ_STEP_DEFAULT_ACCESS;
    return out->allowed;
}

static void decide(mr_authz_decision *d, bool allowed, mr_authz_step step, const char *matched)
{
    d->allowed = allowed;
    d->step = step;
    d->matched = matched;
}

/* One entity's reply policy (its own entry, else "*", else none) against the subject. */
static void check_policy(const mr_authz *az, const char *entity, const mr_authz_reply_query *q,
                         uint64_t canonical_hash, mr_authz_decision *d)
{
    const mr_authz_slot *s = mr_authz_map_get(&az->policy_keys, entity, mr_authz_hash(entity));
    const mr_authz_policy *p = s ? &az->policies[s->value] : az->star;
    d->policy_entity = entity;
    d->policy_key = p ? p->key : NULL;
    if (!p) {
        decide(d, true, MR_AUTHZ_STEP_REPLY_NO_POLICY, NULL);
        return;
    }
    if (p->anyone) {
        decide(d, true, MR_AUTHZ_STEP_REPLY_ANYONE, "*");
        return;
    }
    s = mr_authz_map_get(&p->exact, d->canonical, canonical_hash);
    if (s) {
        decide(d, true, MR_AUTHZ_STEP_REPLY_LISTED, s->key);
        return;
    }
    size_t len = strlen(d->canonical);
    for (size_t i = 0; i < p->n_globs; i++)
        if (mr_authz_glob_match(&p->globs[i], d->canonical, len)) {
            decide(d, true, MR_AUTHZ_STEP_REPLY_LISTED, p->globs[i].pattern);
            return;
        }
    /* Membership is a fact about the account in the room, which for a bridged user is the
     * alias; the canonical user's own membership counts for its aliases too. */
    for (size_t i = 0; q->is_member && i < p->joined_rooms->len; i++) {
        const char *room = p->joined_rooms->v[i];
        if (q->is_member(q->member_ctx, room, d->subject) ||
            (d->canonical != d->subject && q->is_member(q->member_ctx, room, d->canonical))) {
            decide(d, true, MR_AUTHZ_STEP_REPLY_JOINED_ROOM, room);
            return;
        }
    }
    decide(d, false, MR_AUTHZ_STEP_REPLY_NOT_LISTED, NULL);
}

bool mr_authz_check_reply(const mr_authz *az, const mr_authz_reply_query *q,
                          mr_authz_decision *out)
{
    decision_init(out, q->sender, true);
    out->entity = q->entity;
    const mr_authz_slot *s = mr_authz_map_get(&az->entity_names, q->entity, mr_authz_hash(q->entity));
    if (!s) {
        decide(out, false, MR_AUTHZ_STEP_REPLY_UNKNOWN_ENTITY, NULL);
        return false;
    }
    const mr_authz_entity *target = &az->entities[s->value];
    out->entity_kind = target->kind;

    uint64_t h = mr_authz_hash(q->sender);
    /* A relay is believed only from an identity this instance runs. */
    if (internal_entity(az, q->sender, h) && present(q->original_sender)) {
        out->subject = out->canonical = q->original_sender;
        h = mr_authz_hash(q->original_sender);
    }
    const mr_authz_entity *e = internal_entity(az, out->subject, h);
    if (e)
        return decide_internal(out, e, MR_AUTHZ_STEP_REPLY_INTERNAL);
    out->canonical = resolve_alias(az, out->subject, h);
    if (out->canonical != out->subject)
        h = mr_authz_hash(out->canonical);

    check_policy(az, target->name, q, h, out);
    if (!out->allowed || target->kind != MR_AUTHZ_ENTITY_TEAM)
        return out->allowed;
    const mr_strlist *members = &target->team->agents;
    for (size_t i = 0; i < members->len; i++) {
        mr_authz_decision member = *out;
        check_policy(az, members->v[i], q, h, &member);
        out->n_members++;
        if (!member.allowed) {
            member.n_members = out->n_members;
            *out = member;
            return false;
        }
    }
    return true;
}

bool mr_authz_is_internal(const mr_authz *az, const char *user_id)
{
    return internal_entity(az, user_id, mr_authz_hash(user_id)) != NULL;
}

mr_authz_entity_kind mr_authz_kind_of(const mr_authz *az, const char *user_id)
{
    const mr_authz_entity *e = internal_entity(az, user_id, mr_authz_hash(user_id));
    return e ? e->kind : MR_AUTHZ_ENTITY_NONE;
}

void mr_authz_room_from_string(const char *s, mr_authz_room *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    if (s[0] == '!')
        out->room_id = s;
    else if (s[0] == '#')
        out->alias = s;
    else
        out->room_key = s;
}
