/* agent_service.c -- the consume, decide, answer loop of mindroom-agent (see agent_service.h). */
#include "agent_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_run.h"

#define COMPONENT "agent"
#define IN_TOPIC "agent.turns"
#define OUT_TOPIC "matrix.outbound"
#define GROUP "agent"
#define FLUSH_TIMEOUT_MS 30000
#define POLL_TIMEOUT_MS 500
#define METRIC "mindroom_agent_turns_total"

static void count(const agent_svc *svc, const char *outcome)
{
    const char *labels[] = {"outcome", outcome, NULL};
    mr_http_metrics_inc(svc->rt->metrics, METRIC, labels, 1);
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
        mr_log_error(COMPONENT, "config generation %lu: %s; keeping the previous entities", gen, err.msg);
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
    mr_log_info(COMPONENT, "entities built from config generation %lu", gen);
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

/* What the gateway recorded about the room, read once per turn when needed. */
typedef struct room_facts {
    const agent_turn *turn;
    char *alias;                 /* the managed room's alias, or NULL */
    mr_store_hash members;       /* rooms the instance does not manage: who joined */
} room_facts;

static mr_code room_facts_load(agent_svc *svc, const agent_turn *t, room_facts *f, mr_err *err)
{
    memset(f, 0, sizeof *f);
    f->turn = t;
    char key[MR_ID_MAX + 16];
    if (t->room_key) {
        snprintf(key, sizeof key, "room:%s", t->room_id);
        size_t len = 0;
        mr_code rc = mr_store_hget(svc->rt->store, key, "alias", &f->alias, &len, err);
        return rc == MR_ENOTFOUND ? MR_OK : rc;
    }
    snprintf(key, sizeof key, "members:%s", t->room_id);
    return mr_store_hgetall(svc->rt->store, key, &f->members, err);
}

static void room_facts_free(room_facts *f)
{
    free(f->alias);
    mr_store_hash_free(&f->members);
}

/* Configured for the room by key, alias or ID; in a room the instance does not manage, joined. */
static bool in_room(const roster_entry *e, const room_facts *f)
{
    const agent_turn *t = f->turn;
    if (!t->room_key) {
        for (size_t i = 0; i < f->members.count; i++)
            if (strcmp(f->members.entries[i].field, e->user_id) == 0)
                return strcmp(f->members.entries[i].value, "join") == 0;
        return false;
    }
    const mr_strlist *rooms = e->agent ? &e->agent->rooms : &e->team->rooms;
    for (size_t i = 0; i < rooms->len; i++) {
        const char *r = rooms->v[i];
        if (strcmp(r, t->room_key) == 0 || strcmp(r, t->room_id) == 0 || (f->alias && strcmp(r, f->alias) == 0))
            return true;
    }
    return false;
}

static size_t eligible_entities(agent_svc *svc, const agent_turn *t, const room_facts *f, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_allowed; i++) {
        const roster_entry *e = roster_by_name(&svc->roster, t->allowed[i]);
        if (e && e->kind != ENTITY_ROUTER && in_room(e, f))
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
    char who[512] = "";
    for (size_t i = 0; i < d->n; i++) {
        size_t used = strlen(who);
        snprintf(who + used, sizeof who - used, "%s%s", i ? "," : "", d->who[i]);
    }
    const char *fields[] = {"event_id", t->event_id, "room_id", t->room_id, "decision", kinds[d->kind], "who", who,
                            "why", d->why, NULL};
    mr_log_write(MR_LOG_INFO, COMPONENT, fields, "turn decided");
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

static mr_code record(agent_svc *svc, const agent_turn *t, const char *root, mr_err *err)
{
    history_msg m = {.event_id = t->event_id, .sender = t->sender, .body = t->body};
    mr_code rc = thread_append(svc->rt->store, t->room_id, root, &m, err);
    if (rc == MR_OK && !t->thread_root && svc->any_room_mode)
        rc = thread_append(svc->rt->store, t->room_id, HISTORY_ROOM, &m, err);
    return rc;
}

static mr_code act(agent_svc *svc, const turn_ctx *ctx, const policy_decision *d, mr_err *err)
{
    if (d->kind == POLICY_ROUTE) {
        count(svc, "routed");
        return route_turn(svc, ctx, d->who, d->n, err);
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

static mr_code handle_turn(agent_svc *svc, const agent_turn *t, mr_err *err)
{
    refresh_roster(svc);
    const roster *r = &svc->roster;
    const roster_entry *author = roster_by_user(r, t->event_sender);
    bool relay = author && author->kind == ENTITY_ROUTER && t->original_sender;
    const char *skip = NULL;
    if (author && !relay)
        skip = "written by an entity";
    else if (!t->body)
        skip = "no body";
    else if (t->msgtype && strcmp(t->msgtype, "m.notice") == 0)
        skip = "a notice: bots talk in notices, and answering them loops";
    if (skip) {
        const char *fields[] = {"event_id", t->event_id, "reason", skip, NULL};
        mr_log_write(MR_LOG_DEBUG, COMPONENT, fields, "skipped");
        count(svc, "skipped");
        return MR_OK;
    }
    const char *root = t->thread_root ? t->thread_root : t->event_id;
    thread_state th = {0};
    room_facts facts;
    mr_code rc = thread_load(svc->rt->store, t->room_id, root, &th, err);
    /* The hand-off itself is in the history already: the router wrote it when it posted. */
    if (rc == MR_OK && !relay)
        rc = record(svc, t, root, err);
    if (rc == MR_OK)
        rc = room_facts_load(svc, t, &facts, err);
    if (rc != MR_OK) {
        thread_state_free(&th);
        return rc;
    }
    mentions m;
    mentions_extract(r, t->content, t->event_sender, &m);
    const char *eligible[POLICY_MAX], *taking_part[POLICY_MAX];
    policy_input in = {
        .in_thread = t->thread_root != NULL,
        .humans = thread_humans(&th, r, relay ? NULL : t->sender),
        .thread_agents = taking_part,
        .n_thread_agents = thread_agents(&th, r, taking_part, POLICY_MAX),
        .mentioned = &m,
        .eligible = eligible,
        .n_eligible = eligible_entities(svc, t, &facts, eligible),
        .router_allowed = router_allowed(t),
        .relay = relay,
    };
    policy_decision d;
    policy_decide(&in, &d);
    log_decision(t, &d);
    const char *handed = relay ? handed_over_text(&th, t) : NULL;
    turn_ctx ctx = {.turn = t, .root = root, .user_text = handed ? handed : t->body,
                    .handed_over = handed ? t->in_reply_to : NULL};
    rc = act(svc, &ctx, &d, err);
    room_facts_free(&facts);
    thread_state_free(&th);
    return rc;
}

static mr_code on_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    agent_svc *svc = ctx;
    agent_turn t;
    mr_err perr = {0};
    if (agent_turn_parse(m->value, m->len, &t, &perr) != MR_OK) {
        const char *fields[] = {"topic", m->topic, "id", m->id, "reason", perr.msg, NULL};
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "dropping a message that is not a turn");
        count(svc, "malformed");
        return MR_OK;
    }
    mr_code rc = handle_turn(svc, &t, err);
    agent_turn_free(&t);
    return rc;
}

static bool ready(void *ctx, char *why, size_t cap)
{
    const agent_svc *svc = ctx;
    if (atomic_load(&svc->subscribed))
        return true;
    snprintf(why, cap, "agent: not yet consuming %s", IN_TOPIC);
    return false;
}

static void after_poll(const mr_runtime *rt, const mr_runtime_consumer *c, mr_bus_consumer *bc, mr_code rc,
                       const mr_err *err)
{
    /* Ready once it owns partitions, even while a turn fails (one another worker holds). */
    if (mr_bus_consumer_partitions(bc) > 0)
        atomic_store(c->consuming, true);
    if (rc == MR_OK)
        return;
    mr_log_warn(COMPONENT, "%s", err->msg);
    /* A failed turn comes again at once (inproc), whatever its code (a busy claim is
     * MR_EUNAVAIL too): pause, or it spins until the claim frees. */
    mr_runtime_sleep(rt, 200);
}

/* Polls one turn at a time until the runtime stops: an answer takes seconds, and a partition
 * held by a long batch would wait for all of it. */
static void consume(agent_svc *svc)
{
    static const char *const topics[] = {IN_TOPIC};
    const mr_runtime_consumer c = {.component = COMPONENT, .group = GROUP, .topics = topics, .n_topics = 1,
                                   .poll_timeout_ms = POLL_TIMEOUT_MS, .batch = 1, .subscribe_retry_ms = 1000,
                                   .handler = on_message, .ctx = svc, .consuming = &svc->subscribed,
                                   .after_poll = after_poll};
    mr_runtime_consume(svc->rt, &c);
}

int mr_agent_serve(const mr_runtime *rt)
{
    agent_svc *svc = calloc(1, sizeof *svc);
    if (!svc) {
        mr_log_error(COMPONENT, "out of memory starting");
        return 1;
    }
    svc->rt = rt;
    atomic_init(&svc->subscribed, false);
    mr_err err = {0};
    if (mr_http_metrics_counter(rt->metrics, METRIC,
                                "Turns of agent.turns by outcome: answered, routed, silent, skipped, malformed",
                                &err) != MR_OK ||
        mr_runtime_add_check(rt, ready, svc, &err) != MR_OK) {
        mr_log_error(COMPONENT, "%s", err.msg);
        free(svc);
        return 1;
    }
    refresh_roster(svc);
    int status = 1;
    if (svc->have_roster) {
        consume(svc);
        status = 0;
    }
    mr_runtime_remove_check(rt, ready, svc);
    if (svc->have_roster) {
        drop_models(svc);
        roster_free(&svc->roster);
    }
    free(svc);
    return status;
}
