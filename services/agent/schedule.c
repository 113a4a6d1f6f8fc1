/* schedule.c -- schedules: the chat commands !schedule, !list_schedules and !cancel_schedule
 * (answered by the router), kept in the store, and fired by every agent process, each occurrence
 * exactly once across processes and restarts. A firing is the router's message in the
 * schedule's room (or thread) mentioning the agent and speaking for the person who scheduled
 * it, as a hand-off does: the agent then answers it through the normal message path. */
#include "agent_run.h"
#include "agent_schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/str.h"

#define COMPONENT "agent"
#define SCHEDULES_KEY "agent:schedules"     /* hash: schedule ID -> the schedule (JSON) */
#define SCHEDULE_SEQ_KEY "agent:schedule_seq"
#define FIRED_TTL_MS (7L * 24 * 3600 * 1000)
#define LIST_MAX 50
#define LATEST_STEPS_MAX 100000             /* a minute-by-minute cron missed for over two months */
#define TICK_SLACK_MS 5000                  /* how late a tick may find an occurrence and still be on time */

/* ---- the store ---- */

static mr_code put(mr_store *s, const char *id, json_t *sched, mr_err *err)
{
    char *text = json_dumps(sched, JSON_COMPACT);
    mr_code rc = text ? mr_store_hset(s, SCHEDULES_KEY, id, text, strlen(text), err)
                      : mr_err_set(err, MR_ENOMEM, "out of memory saving schedule %s", id);
    free(text);
    return rc;
}

/* `schedule-origin:<origin>`: "<id> adding" while a request's schedule is being stored, "<id>"
 * once it is. A request handled again (its turn redelivered after a crash, before its
 * acknowledgement) so finds the schedule it made instead of making a second one. */
static mr_code origin_take(mr_store *s, const char *key, char id[SCHEDULE_ID_MAX], bool *stored, mr_err *err)
{
    for (int tries = 0; tries < 2; tries++) {
        char *v = NULL;
        size_t len = 0;
        mr_code rc = mr_store_get(s, key, &v, &len, err);
        if (rc == MR_OK) {
            int n = 0;
            bool ok = sscanf(v, "%31s%n", id, &n) == 1 && id[0] == 's';
            *stored = ok && v[n] == '\0';
            free(v);
            return ok ? MR_OK : mr_err_set(err, MR_EINVAL, "%s holds no schedule ID", key);
        }
        if (rc != MR_ENOTFOUND)
            return rc;
        long long seq = 0;
        if ((rc = mr_store_incr(s, SCHEDULE_SEQ_KEY, 1, 0, &seq, err)) != MR_OK)
            return rc;
        char value[SCHEDULE_ID_MAX + 8];
        int vn = snprintf(value, sizeof value, "s%lld adding", seq);
        bool won = false;
        if ((rc = mr_store_set_nx(s, key, value, (size_t)vn, CLAIM_TTL_MS, &won, err)) != MR_OK)
            return rc;
        if (won) {
            snprintf(id, SCHEDULE_ID_MAX, "s%lld", seq);
            *stored = false;
            return MR_OK;
        }
    }
    return mr_err_set(err, MR_EUNAVAIL, "%s changed twice while read", key);
}

mr_code schedule_add(mr_store *s, const schedule_new *n, char id[SCHEDULE_ID_MAX], mr_err *err)
{
    char key[SCHEDULE_ORIGIN_MAX + 32];
    if (snprintf(key, sizeof key, "schedule-origin:%s", n->origin) >= (int)sizeof key)
        return mr_err_set(err, MR_EINVAL, "schedule origin too long (%zu bytes)", strlen(n->origin));
    bool stored = false;
    mr_code rc = origin_take(s, key, id, &stored, err);
    if (rc != MR_OK || stored)
        return rc;
    json_t *sched = json_pack("{s:s, s:s*, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s*}", "room_id", n->room_id,
                              "thread_root", n->thread_root, "router", n->router_user, "entity", n->entity,
                              "entity_user", n->entity_user, "entity_display", n->entity_display, "requester",
                              n->requester, "task", n->task, "due_ms", (json_int_t)n->due_ms, "every_ms",
                              (json_int_t)n->every_ms, "cron", n->cron);
    rc = sched ? put(s, id, sched, err) : mr_err_set(err, MR_EINVAL, "schedule %s: the task is not UTF-8", id);
    json_decref(sched);
    if (rc == MR_OK)
        rc = mr_store_set(s, key, id, strlen(id), CLAIM_TTL_MS, err);
    return rc;
}

mr_code schedule_zone(const mr_runtime *rt, mr_tz **out, mr_err *err)
{
    mr_config *cfg = mr_runtime_config(rt, NULL);
    mr_code rc = mr_tz_open(cfg ? cfg->timezone : NULL, out, err);
    mr_config_release(cfg);
    if (rc != MR_OK)
        mr_err_prefix(err, "timezone");
    return rc;
}

/* ---- firing ---- */

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The schedule's cron expression, and the zone it is read in (loaded once into *tz). */
static mr_code schedule_cron(const mr_runtime *rt, const char *id, const char *cron, cron_expr *c, mr_tz **tz,
                             mr_err *err)
{
    size_t used;
    mr_code rc = cron_parse(cron, c, &used, err);
    if (rc == MR_OK && !*tz)
        rc = schedule_zone(rt, tz, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "schedule %s", id);
    return rc;
}

/* An occurrence of the schedule: with latest, the latest at or before now_ms (the ones missed
 * while no process ran coalesce into it; for cron found by stepping from the stored one, at most
 * LATEST_STEPS_MAX steps, past which the stored one stands and the catch-up window judges it);
 * otherwise the first after both the stored one and now (missed ones coalesce into the one that
 * fires now), 0 when there is none. */
static mr_code occurrence(const mr_runtime *rt, const char *id, json_t *sched, long long now_ms, mr_tz **tz,
                          bool latest, long long *out, mr_err *err)
{
    long long due = json_integer_value(json_object_get(sched, "due_ms"));
    long long every = json_integer_value(json_object_get(sched, "every_ms"));
    const char *cron = str(sched, "cron");
    *out = latest ? due : 0;
    if (every > 0) {
        if (latest)
            *out = due + (now_ms - due) / every * every;
        else
            *out = due > now_ms ? due : due + ((now_ms - due) / every + 1) * every;
        return MR_OK;
    }
    if (!cron)
        return MR_OK;
    cron_expr c;
    mr_code rc = schedule_cron(rt, id, cron, &c, tz, err);
    if (rc != MR_OK)
        return rc;
    if (!latest) {
        long long at = cron_next(&c, *tz, (due > now_ms ? due : now_ms) / 1000);
        *out = at > 0 ? at * 1000 : 0;
        return MR_OK;
    }
    for (int i = 0; i < LATEST_STEPS_MAX; i++) {
        long long next = cron_next(&c, *tz, *out / 1000);
        if (next < 0 || next * 1000 > now_ms)
            break;
        *out = next * 1000;
    }
    return MR_OK;
}

/* Moves the schedule to its next occurrence, or out of the store when it has none. */
static mr_code finish(const mr_runtime *rt, const char *id, json_t *sched, long long now_ms, mr_tz **tz, mr_err *err)
{
    mr_store *s = rt->store;
    long long due;
    mr_code rc = occurrence(rt, id, sched, now_ms, tz, false, &due, err);
    if (rc != MR_OK)
        return rc;
    if (due == 0)
        return mr_store_hdel(s, SCHEDULES_KEY, id, err);
    /* Cancelled while it fired: not brought back (a cancel in the instant between this look and
     * the write below is the one that can be undone; the next !cancel_schedule takes it). */
    char *v = NULL;
    size_t len = 0;
    mr_code found = mr_store_hget(s, SCHEDULES_KEY, id, &v, &len, err);
    free(v);
    if (found != MR_OK)
        return found == MR_ENOTFOUND ? MR_OK : found;
    json_t *next = json_deep_copy(sched);
    rc = next && json_object_set_new(next, "due_ms", json_integer(due)) == 0
                     ? put(s, id, next, err)
                     : mr_err_set(err, MR_ENOMEM, "out of memory rescheduling %s", id);
    json_decref(next);
    return rc;
}

/* The router's message for one occurrence; its transaction ID is the occurrence's, so sending it
 * again (after a crash between send and record) makes no second event. */
static mr_code trigger(const mr_runtime *rt, const char *id, json_t *sched, long long at_ms, mr_err *err)
{
    const char *room = str(sched, "room_id"), *root = str(sched, "thread_root");
    reply_where where = {.room_id = room, .trigger = root, .thread_root = root};
    char *text = mr_str_printf(" %s", str(sched, "task"));
    json_t *content = text ? reply_mention_content(str(sched, "entity_user"), str(sched, "entity_display"), text,
                                                   str(sched, "requester"), &where)
                           : NULL;
    free(text);
    char occurrence[SCHEDULE_ID_MAX + 32], txn[TXN_MAX];
    snprintf(occurrence, sizeof occurrence, "%s@%lld", id, at_ms);
    txn_id(occurrence, "schedule", "m", -1, txn);
    mr_code rc = content ? agent_publish_now(rt, room, reply_send_intent(str(sched, "router"), room, txn, NULL, NULL,
                                                                         content), err)
                         : mr_err_set(err, MR_ENOMEM, "out of memory firing schedule %s", id);
    json_decref(content);
    return rc;
}

static const char *const FIRING_FORMS[] = {"", NULL};

/* Whether this process fires the occurrence: `schedule-fired:<id>@<due>` set-if-absent to
 * "<worker> <boot>"; "done" once it went out. Held by this boot (a send that failed), it is
 * fired again; one whose holder is dead or that names none is taken over. */
static mr_code take(mr_store *s, const agent_self *me, const char *key, long long now_ms, bool *mine, bool *done,
                    mr_err *err)
{
    holder_try t;
    *mine = *done = false;
    mr_code rc = holder_take(s, me, key, NULL, FIRING_FORMS, FIRED_TTL_MS, &t, mine, err);
    if (rc == MR_OK && !*mine) {
        *done = strcmp(t.held, "done") == 0;
        *mine = t.whose == HOLDER_ME;
        long long until = 0;
        if (!*done && !*mine) {
            rc = holder_alive_until(s, &t, now_ms, &until, err);
            if (rc == MR_OK && until == 0)
                rc = holder_take_over(s, &t, mine, err);
        }
    }
    holder_try_free(&t);
    return rc == MR_ENOTFOUND ? MR_OK : rc;
}

/* config.yaml's scheduler_catch_up_grace_seconds, in ms. */
static long long catch_up_ms(const mr_runtime *rt)
{
    mr_config *cfg = mr_runtime_config(rt, NULL);
    long long ms = cfg ? cfg->scheduler_catch_up_grace_seconds * 1000LL : 3600000LL;
    mr_config_release(cfg);
    return ms;
}

static mr_code fire_one(const mr_runtime *rt, const agent_self *me, const char *id, json_t *sched, long long now_ms,
                        long long grace_ms, mr_tz **tz, mr_err *err)
{
    long long at;
    mr_code rc = occurrence(rt, id, sched, now_ms, tz, true, &at, err);
    if (rc != MR_OK)
        return rc;
    char key[SCHEDULE_ID_MAX + 64];
    snprintf(key, sizeof key, "schedule-fired:%s@%lld", id, at);
    /* Too late, as the reference's catch-up window says, unless a process already began to
     * send it (that one is finished whatever its age: its event may be out). */
    if (now_ms - at > grace_ms + TICK_SLACK_MS) {
        char *v = NULL;
        size_t len = 0;
        rc = mr_store_get(rt->store, key, &v, &len, err);
        free(v);
        if (rc == MR_ENOTFOUND) {
            const char *fields[] = {"schedule", id, "room_id", str(sched, "room_id"), NULL};
            mr_log_write(MR_LOG_WARN, COMPONENT, fields, "schedule %s skipped an occurrence missed by %lld s, more "
                         "than scheduler_catch_up_grace_seconds", id, (now_ms - at) / 1000);
            return finish(rt, id, sched, now_ms, tz, err);
        }
        if (rc != MR_OK)
            return rc;
    }
    bool mine, done;
    rc = take(rt->store, me, key, now_ms, &mine, &done, err);
    if (rc != MR_OK || (!mine && !done))
        return rc;
    if (mine) {
        rc = trigger(rt, id, sched, at, err);
        if (rc == MR_OK)
            rc = mr_store_set(rt->store, key, "done", 4, FIRED_TTL_MS, err);
        if (rc == MR_OK) {
            const char *fields[] = {"schedule", id, "room_id", str(sched, "room_id"), "entity", str(sched, "entity"),
                                    NULL};
            mr_log_write(MR_LOG_INFO, COMPONENT, fields, "schedule fired");
        }
    }
    return rc == MR_OK ? finish(rt, id, sched, now_ms, tz, err) : rc;
}

void schedule_tick(const mr_runtime *rt, const agent_self *me, long long now_ms)
{
    mr_store_hash all = {0};
    mr_err err = {0};
    mr_tz *tz = NULL; /* opened when a cron schedule fires */
    long long grace_ms = catch_up_ms(rt);
    if (mr_store_hgetall(rt->store, SCHEDULES_KEY, &all, &err) != MR_OK) {
        mr_log_warn(COMPONENT, "reading the schedules: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < all.count; i++) {
        json_t *sched = json_loadb(all.entries[i].value, all.entries[i].value_len, 0, NULL);
        json_int_t due = json_integer_value(json_object_get(sched, "due_ms"));
        if (!json_is_object(sched) || !str(sched, "room_id") || !str(sched, "router") || !str(sched, "entity_user") ||
            !str(sched, "entity_display") || !str(sched, "requester") || !str(sched, "task")) {
            mr_log_warn(COMPONENT, "schedule %s in the store is not a schedule: left alone", all.entries[i].field);
        } else if (due <= now_ms &&
                   fire_one(rt, me, all.entries[i].field, sched, now_ms, grace_ms, &tz, &err) != MR_OK) {
            mr_log_warn(COMPONENT, "firing schedule %s: %s; trying again", all.entries[i].field, err.msg);
        }
        json_decref(sched);
    }
    mr_store_hash_free(&all);
    mr_tz_free(tz);
}

/* ---- listing and cancelling ---- */

mr_code schedule_list(mr_store *s, const char *room_id, long long now_ms, mr_strbuf *out, mr_err *err)
{
    mr_store_hash all = {0};
    mr_code rc = mr_store_hgetall(s, SCHEDULES_KEY, &all, err);
    size_t shown = 0;
    for (size_t i = 0; rc == MR_OK && i < all.count && shown < LIST_MAX; i++) {
        json_t *sched = json_loadb(all.entries[i].value, all.entries[i].value_len, 0, NULL);
        const char *room = str(sched, "room_id");
        if (room && strcmp(room, room_id) == 0) {
            long long every = json_integer_value(json_object_get(sched, "every_ms")) / 1000;
            long long next = (json_integer_value(json_object_get(sched, "due_ms")) - now_ms + 999) / 1000;
            char when[96], line[240];
            if (str(sched, "cron"))
                snprintf(when, sizeof when, "cron %.40s, next in %llds", str(sched, "cron"), next > 0 ? next : 0);
            else if (every)
                snprintf(when, sizeof when, "every %llds, next in %llds", every, next > 0 ? next : 0);
            else
                snprintf(when, sizeof when, "once, in %llds", next > 0 ? next : 0);
            snprintf(line, sizeof line, "\n- %s: %s, for @%s: ", all.entries[i].field, when,
                     str(sched, "entity_display") ? str(sched, "entity_display") : "?");
            mr_strbuf_puts(out, line);
            mr_strbuf_puts(out, str(sched, "task") ? str(sched, "task") : "");
            shown++;
        }
        json_decref(sched);
    }
    mr_store_hash_free(&all);
    if (rc == MR_OK && !shown)
        mr_strbuf_puts(out, "\nNo schedules in this room.");
    return rc;
}

mr_code schedule_cancel(mr_store *s, const char *room_id, const char *which, size_t *cancelled, mr_err *err)
{
    mr_store_hash all = {0};
    *cancelled = 0;
    mr_code rc = mr_store_hgetall(s, SCHEDULES_KEY, &all, err);
    for (size_t i = 0; rc == MR_OK && i < all.count; i++) {
        json_t *sched = json_loadb(all.entries[i].value, all.entries[i].value_len, 0, NULL);
        const char *room = str(sched, "room_id");
        /* Schedules belong to their room: an ID from another room is not found here. */
        if (room && strcmp(room, room_id) == 0 && (strcmp(which, "all") == 0 || strcmp(which, all.entries[i].field) == 0)) {
            rc = mr_store_hdel(s, SCHEDULES_KEY, all.entries[i].field, err);
            *cancelled += rc == MR_OK;
        }
        json_decref(sched);
    }
    mr_store_hash_free(&all);
    return rc;
}
