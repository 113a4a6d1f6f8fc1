/* turn_run.c -- one turn on one turn thread: who may answer here, the policy's decision, the
 * answers; and what each turn thread keeps for it (the entities of the config, model clients). */
#include "agent_run.h"
#include "agent_schedule.h"
#include "agent_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/str.h"

#define COMPONENT "agent"
#define OUT_TOPIC "matrix.outbound"
#define FLUSH_TIMEOUT_MS 30000

void agent_count(const mr_runtime *rt, const char *outcome)
{
    const char *labels[] = {"outcome", outcome, NULL};
    mr_http_metrics_inc(rt->metrics, AGENT_METRIC, labels, 1);
}

static void count(const agent_svc *svc, const char *outcome)
{
    if (!svc->counted)
        agent_count(svc->rt, outcome);
}

static void drop_models(agent_svc *svc)
{
    for (size_t i = 0; svc->models && i < svc->roster.cfg->n_models; i++)
        mr_llm_client_free(svc->models[i].client);
    free(svc->models);
    svc->models = NULL;
}

/* Rebuilds the roster and forgets the model clients when the config changed. A config whose
 * roster cannot be built keeps the previous one. */
static void refresh_roster(agent_svc *svc)
{
    unsigned long gen = 0;
    mr_config *cfg = mr_runtime_config(svc->rt, &gen);
    if (svc->have_roster && gen == svc->gen) {
        mr_config_release(cfg);
        return;
    }
    svc->gen = gen;
    roster fresh;
    mr_err err = {0};
    const mr_runtime_settings *s = &svc->rt->settings;
    model_slot *slots = calloc(cfg->n_models + 1, sizeof *slots);
    mr_code rc = slots ? roster_build(cfg, s->server_name, s->ns, &fresh, &err)
                       : mr_err_set(&err, MR_ENOMEM, "out of memory");
    mr_config_release(cfg);
    if (rc != MR_OK) {
        free(slots);
        mr_log_write(svc->reports ? MR_LOG_ERROR : MR_LOG_DEBUG, COMPONENT, NULL,
                     "config generation %lu: %s; keeping the previous entities", gen, err.msg);
        return;
    }
    if (svc->have_roster) {
        drop_models(svc);
        roster_free(&svc->roster);
    }
    svc->roster = fresh;
    svc->models = slots;
    svc->have_roster = true;
    svc->any_room_mode = false;
    for (size_t i = 0; i < fresh.cfg->n_agents; i++)
        svc->any_room_mode |= fresh.cfg->agents[i].thread_mode == MR_THREAD_MODE_ROOM;
    tool_settings ts;
    if (svc->reports && tool_settings_read(svc->rt, &ts, &err) == MR_OK)
        tool_config_warn(fresh.cfg, &ts, &svc->rt->env);
    mr_log_write(svc->reports ? MR_LOG_INFO : MR_LOG_DEBUG, COMPONENT, NULL, "entities built from config generation %lu",
                 gen);
}

bool agent_svc_init(agent_svc *svc, const mr_runtime *rt, const agent_self *self, bool reports)
{
    memset(svc, 0, sizeof *svc);
    svc->rt = rt;
    svc->self = self;
    svc->reports = reports;
    refresh_roster(svc);
    return svc->have_roster;
}

void agent_svc_free(agent_svc *svc)
{
    json_decref(svc->answered);
    svc->answered = NULL;
    if (!svc->have_roster)
        return;
    drop_models(svc);
    roster_free(&svc->roster);
    svc->have_roster = false;
}

void agent_park(agent_svc *svc, long long until_ms)
{
    if (until_ms > svc->park_until_ms)
        svc->park_until_ms = until_ms;
}

mr_llm_client *agent_model(agent_svc *svc, const char *name, mr_code *rc, const char **why)
{
    const mr_config *cfg = svc->roster.cfg;
    for (size_t i = 0; i < cfg->n_models; i++) {
        if (strcmp(cfg->models[i].name, name) != 0)
            continue;
        model_slot *slot = &svc->models[i];
        if (!slot->tried) {
            mr_err err = {0};
            slot->tried = true;
            slot->rc = mr_llm_client_new(&cfg->models[i], NULL, &slot->client, &err);
            snprintf(slot->why, sizeof slot->why, "%s", err.msg);
        }
        *rc = slot->rc;
        *why = slot->why;
        return slot->client;
    }
    /* The config loader checks model names, so this is a model removed by a reload race. */
    *rc = MR_ENOTFOUND;
    *why = "no such model in the config";
    return NULL;
}

mr_code agent_publish(agent_svc *svc, const char *room_id, char *intent, mr_err *err)
{
    if (!intent)
        return mr_err_set(err, MR_ENOMEM, "out of memory writing an intent for %s", room_id);
    mr_code rc = mr_bus_publish(svc->rt->bus, OUT_TOPIC, room_id, intent, strlen(intent), err);
    free(intent);
    return rc;
}

mr_code agent_flush(agent_svc *svc, mr_err *err)
{
    return mr_bus_flush(svc->rt->bus, FLUSH_TIMEOUT_MS, err);
}

mr_code agent_when_durable(agent_svc *svc, mr_bus_durable_fn fn, void *ctx, mr_err *err)
{
    return mr_bus_when_durable(svc->rt->bus, FLUSH_TIMEOUT_MS, fn, ctx, err);
}

mr_code agent_publish_now(const mr_runtime *rt, const char *room_id, char *intent, mr_err *err)
{
    if (!intent)
        return mr_err_set(err, MR_ENOMEM, "out of memory writing an intent for %s", room_id);
    mr_code rc = mr_bus_publish(rt->bus, OUT_TOPIC, room_id, intent, strlen(intent), err);
    free(intent);
    return rc == MR_OK ? mr_bus_flush(rt->bus, FLUSH_TIMEOUT_MS, err) : rc;
}

const char *agent_reason(mr_code rc, bool no_client)
{
    switch (rc) {
    case MR_EAUTH:
        return no_client ? "no API key is set for it" : "the provider did not accept the API key";
    case MR_EPERM:
        return "the provider denied access to the model";
    case MR_ENOTFOUND:
        return "the model was not found";
    case MR_EINVAL:
        return no_client ? "its provider is not supported" : "the provider could not use the request or answer";
    case MR_EUNAVAIL:
        return "the provider is unavailable or did not answer in time";
    case MR_OK:
        return "it gave an empty answer";
    default:
        return "an unexpected error";
    }
}

char *agent_sorry(const char *partial, const char *reason)
{
    static const char fmt[] = "%s%sSorry, I could not reach the model (%s). Try again in a moment.";
    const char *sep = partial && *partial ? "\n\n" : "";
    partial = partial ? partial : "";
    size_t n = strlen(partial) + strlen(reason) + sizeof fmt + 2;
    char *text = malloc(n);
    if (text)
        snprintf(text, n, fmt, partial, sep, reason);
    return text;
}

/* ---- who may answer here ---- */

/* Configured for the room by key, alias or ID; in a room the instance does not manage, joined. */
static bool in_room(const roster_entry *e, const agent_turn *t)
{
    if (!t->room_key) {
        for (size_t i = 0; i < t->n_joined; i++)
            if (strcmp(t->joined[i], e->name) == 0)
                return true;
        return false;
    }
    const mr_strlist *rooms = e->agent ? &e->agent->rooms : &e->team->rooms;
    for (size_t i = 0; i < rooms->len; i++) {
        const char *r = rooms->v[i];
        if (strcmp(r, t->room_key) == 0 || strcmp(r, t->room_id) == 0 || (t->room_alias && strcmp(r, t->room_alias) == 0))
            return true;
    }
    return false;
}

static size_t eligible_entities(agent_svc *svc, const agent_turn *t, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_allowed; i++) {
        const roster_entry *e = roster_by_name(&svc->roster, t->allowed[i]);
        if (e && e->kind != ENTITY_ROUTER && in_room(e, t))
            out[n++] = e->name;
    }
    return n;
}

static bool router_allowed(const agent_turn *t)
{
    for (size_t i = 0; i < t->n_allowed; i++)
        if (strcmp(t->allowed[i], "router") == 0)
            return true;
    return false;
}

/* ---- one turn ---- */

static void log_decision(const agent_turn *t, const policy_decision *d)
{
    static const char *const kinds[] = {"silent", "answer", "route"};
    mr_strbuf who = {0};
    for (size_t i = 0; i < d->n; i++) {
        if (i)
            mr_strbuf_puts(&who, ",");
        mr_strbuf_puts(&who, d->who[i]);
    }
    const char *fields[] = {"event_id", t->event_id, "room_id", t->room_id, "decision", kinds[d->kind], "who",
                            who.failed ? "(out of memory)" : who.s ? who.s : "", "why", d->why, NULL};
    mr_log_write(MR_LOG_INFO, COMPONENT, fields, "turn decided");
    free(who.s);
}

/* The message a hand-off hands over: the router replied to it. */
static const char *handed_over_text(const thread_state *th, const agent_turn *t)
{
    for (size_t i = thread_count(th); t->in_reply_to && i-- > 0;) {
        history_msg m = thread_message(th, i);
        if (m.event_id && strcmp(m.event_id, t->in_reply_to) == 0)
            return m.body;
    }
    return NULL;
}

/* The person's message in the thread's history: noted now, written with the answer's first
 * records once the model's request is out (answer.c get_ready), or, when no answer does, before
 * the router reads the thread or at the end of the turn. This process runs a room's turns one
 * at a time, so nothing reads the thread in between. */
static mr_code record(agent_svc *svc, const agent_turn *t, thread_state *th, mr_err *err)
{
    history_msg m = {.event_id = t->event_id, .sender = t->sender, .body = t->body};
    thread_note(th, &m);
    if (!t->thread_root && svc->any_room_mode)
        return thread_append(svc->rt->store, t->room_id, HISTORY_ROOM, &m, err);
    return MR_OK;
}

static mr_code act(agent_svc *svc, const turn_ctx *ctx, const policy_decision *d, mr_err *err)
{
    if (d->kind == POLICY_ROUTE) {
        count(svc, "routed");
        mr_code rc = thread_save(svc->rt->store, ctx->turn->room_id, ctx->root, ctx->th, err);
        return rc == MR_OK ? route_turn(svc, ctx, d->who, d->n, err) : rc;
    }
    if (d->kind == POLICY_SILENT) {
        count(svc, "silent");
        return MR_OK;
    }
    count(svc, "answered");
    mr_code first = MR_OK;
    for (size_t i = 0; i < d->n; i++) {
        mr_err one = {0};
        mr_code rc = answer_as(svc, ctx, roster_by_name(&svc->roster, d->who[i]), &one);
        /* The others still answer; the turn comes again for this one (its claim was given up). */
        if (rc != MR_OK && first == MR_OK) {
            first = rc;
            *err = one;
        }
    }
    return first;
}

/* The policy's decision and what it says to do; names has room for 2 * (n_allowed + 1) + the
 * roster's size. */
static mr_code decide_and_act(agent_svc *svc, const agent_turn *t, const char *root, bool relay,
                              thread_state *th, const char **names, mr_err *err)
{
    const roster *r = &svc->roster;
    const char **eligible = names, **who = names + t->n_allowed + 1, **taking_part = who + t->n_allowed + 1;
    mentions m;
    mentions_extract(r, t->content, t->event_sender, &m);
    policy_input in = {
        .in_thread = t->thread_root != NULL,
        .humans = thread_humans(th, r, relay ? NULL : t->sender),
        .thread_agents = taking_part,
        .n_thread_agents = thread_agents(th, r, taking_part, r->n),
        .mentioned = &m,
        .eligible = eligible,
        .n_eligible = eligible_entities(svc, t, eligible),
        .router_allowed = router_allowed(t),
        .relay = relay,
    };
    bool command = false;
    mr_code rc = relay ? MR_OK
                       : schedule_command(svc, t, root, &m, eligible, in.n_eligible, in.router_allowed, &command, err);
    if (rc != MR_OK || command)
        return rc;
    policy_decision d;
    policy_decide(&in, who, &d);
    log_decision(t, &d);
    const char *handed = relay ? handed_over_text(th, t) : NULL;
    turn_ctx ctx = {.turn = t, .root = root, .user_text = handed ? handed : t->body,
                    .handed_over = handed ? t->in_reply_to : NULL, .th = th};
    return act(svc, &ctx, &d, err);
}

/* The router hands a message over: it reposts it naming the entity that answers. */
static bool is_relay(const roster *r, const agent_turn *t)
{
    const roster_entry *author = roster_by_user(r, t->event_sender);
    return author && author->kind == ENTITY_ROUTER && t->original_sender;
}

bool agent_turn_skipped(agent_svc *svc, const agent_turn *t)
{
    refresh_roster(svc);
    const char *skip = NULL;
    if (roster_by_user(&svc->roster, t->event_sender) && !is_relay(&svc->roster, t))
        skip = "written by an entity";
    else if (!t->body)
        skip = "no body";
    else if (t->msgtype && strcmp(t->msgtype, "m.notice") == 0)
        skip = "a notice: bots talk in notices, and answering them loops";
    if (!skip)
        return false;
    const char *fields[] = {"event_id", t->event_id, "reason", skip, NULL};
    mr_log_write(MR_LOG_DEBUG, COMPONENT, fields, "skipped");
    count(svc, "skipped");
    return true;
}

mr_code agent_turn_handle(agent_svc *svc, const agent_turn *t, mr_err *err)
{
    if (agent_turn_skipped(svc, t))
        return MR_OK;
    const roster *r = &svc->roster;
    bool relay = is_relay(r, t);
    const char *root = t->thread_root ? t->thread_root : t->event_id;
    thread_state th = {0};
    mr_code rc = thread_load(svc->rt->store, t->room_id, root, &th, err);
    /* The hand-off itself is in the history already: the router wrote it when it posted. */
    if (rc == MR_OK && !relay)
        rc = record(svc, t, &th, err);
    if (rc != MR_OK) {
        thread_state_free(&th);
        return rc;
    }
    /* Every entity allowed, however many: room for the eligible ones and who answers (a subset),
     * each as many as the turn allows, and for those taking part, as many as the roster has. */
    size_t room = t->n_allowed + 1;
    const char **names = malloc((2 * room + r->n + 1) * sizeof *names);
    rc = names ? decide_and_act(svc, t, root, relay, &th, names, err)
               : mr_err_set(err, MR_ENOMEM, "out of memory deciding who answers %s", t->event_id);
    free(names);
    /* No answer wrote the person's message (silent, a command, answered before, a failure). */
    mr_err serr = {0};
    mr_code saved = thread_save(svc->rt->store, t->room_id, root, &th, &serr);
    if (saved != MR_OK && rc == MR_OK) {
        rc = saved;
        *err = serr;
    }
    thread_state_free(&th);
    return rc;
}
