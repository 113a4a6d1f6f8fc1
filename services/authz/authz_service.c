/* authz_service.c -- the consume, decide, publish loop of mindroom-authz (see authz_service.h). */
#include "authz_service.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authz_internal.h"
#include "mindroom/authz.h"
#include "mindroom/msg.h"

#define COMPONENT "authz"
#define IN_TOPIC "matrix.cleartext"
#define OUT_TOPIC "agent.turns"
#define GROUP "authz"
#define POLL_TIMEOUT_MS 500
#define POLL_BATCH 64
#define METRIC "mindroom_authz_messages_total"

typedef struct authz_service {
    const mr_runtime *rt;
    mr_authz *az;            /* the rules in force, compiled from az_cfg */
    mr_config *az_cfg;
    unsigned long az_gen;    /* the config generation last looked at (built or not) */
    atomic_bool subscribed;  /* for /readyz */
    authz_markers *markers;  /* turn: markers waiting for the bus */
} authz_service;

static void count(const authz_service *svc, const char *outcome)
{
    const char *labels[] = {"outcome", outcome, NULL};
    mr_http_metrics_inc(svc->rt->metrics, METRIC, labels, 1);
}

/* Recompiles the rules when the config changed. A config that loads but does not compile keeps
 * the previous rules: authorization never falls open, and never stops. */
static void refresh_rules(authz_service *svc)
{
    unsigned long gen = 0;
    mr_config *cfg = mr_runtime_config(svc->rt, &gen);
    if (svc->az && gen == svc->az_gen) {
        mr_config_release(cfg);
        return;
    }
    mr_authz *fresh = NULL;
    mr_err err = {0};
    const mr_runtime_settings *s = &svc->rt->settings;
    if (mr_authz_new(cfg, s->server_name, s->ns, &fresh, &err) != MR_OK) {
        mr_log_error(COMPONENT, "config generation %lu: %s; keeping the previous rules", gen, err.msg);
        mr_config_release(cfg);
    } else {
        mr_authz_free(svc->az);
        mr_config_release(svc->az_cfg);
        svc->az = fresh;
        svc->az_cfg = cfg;
        mr_log_info(COMPONENT, "rules built from config generation %lu", gen);
    }
    svc->az_gen = gen;
}

/* Every entity of the config: router, agents, teams; the caller frees the array. */
static const char **entity_names(const mr_config *cfg, size_t *n)
{
    *n = 1 + cfg->n_agents + cfg->n_teams;
    const char **names = calloc(*n, sizeof *names);
    for (size_t i = 0; names && i < *n; i++)
        names[i] = i == 0 ? "router" : i <= cfg->n_agents ? cfg->agents[i - 1].name
                                                          : cfg->teams[i - 1 - cfg->n_agents].name;
    return names;
}

/* The entities whose reply permissions allow the sender. */
static size_t allowed_entities(const authz_service *svc, const turn_event *ev, room_members *members,
                               const char *const *names, size_t n_names, const char **out)
{
    mr_authz_reply_query q = {.sender = ev->sender, .original_sender = ev->original_sender,
                              .is_member = room_state_is_member, .member_ctx = members};
    size_t n = 0;
    for (size_t i = 0; i < n_names; i++) {
        q.entity = names[i];
        mr_authz_decision d;
        if (mr_authz_check_reply(svc->az, &q, &d))
            out[n++] = q.entity;
    }
    return n;
}

static void log_denied(const turn_event *ev, const mr_authz_decision *d)
{
    char reason[512];
    mr_authz_describe(d, reason, sizeof reason);
    const char *fields[] = {"event_id", ev->event_id, "room_id", ev->room_id, "sender", ev->sender,
                            "account", ev->account, "step", mr_authz_step_name(d->step), "reason", reason,
                            NULL};
    mr_log_write(MR_LOG_INFO, COMPONENT, fields, "message denied: no turn");
}

/* Publishes the turn; decide() marks the event once the bus holds it. */
static mr_code publish_turn(authz_service *svc, const turn_event *ev, const mr_authz_decision *room, mr_err *err)
{
    size_t n_all = 0;
    const char **all = entity_names(svc->az_cfg, &n_all);
    const char **names = calloc(n_all, sizeof *names), **joined = calloc(n_all, sizeof *joined);
    if (!all || !names || !joined) {
        free(all);
        free(names);
        free(joined);
        return mr_err_set(err, MR_ENOMEM, "out of memory deciding %s", ev->event_id);
    }
    room_members members = {.store = svc->rt->store, .server_name = svc->rt->settings.server_name,
                            .ns = svc->rt->settings.ns};
    turn_fields f = {.room_key = ev->room_key, .room_alias = ev->room_alias, .sender = room->canonical,
                     .relay = mr_authz_is_internal(svc->az, ev->sender), .entities = names, .joined = joined};
    f.n_entities = allowed_entities(svc, ev, &members, all, n_all, names);
    mr_code rc = members.rc;
    if (rc != MR_OK) {
        /* Deciding without the membership facts could leave out an entity for good. */
        *err = members.err;
        mr_err_prefix(err, "reading room members for %s", ev->event_id);
    }
    /* In a room the instance does not manage, the agent answers only with an account there. */
    if (rc == MR_OK && !ev->room_key &&
        (rc = room_state_joined_entities(&members, ev->room_id, all, n_all, joined, &f.n_joined, err)) != MR_OK)
        mr_err_prefix(err, "reading room members for %s", ev->event_id);
    char *turn = rc == MR_OK ? turn_build(ev, &f) : NULL;
    if (rc == MR_OK && !turn)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory writing the turn of %s", ev->event_id);
    if (rc == MR_OK)
        rc = mr_bus_publish(svc->rt->bus, OUT_TOPIC, ev->room_id, turn, strlen(turn), err);
    if (rc == MR_OK) {
        char n[32];
        snprintf(n, sizeof n, "%zu", f.n_entities);
        const char *fields[] = {"event_id", ev->event_id, "room_id", ev->room_id, "allowed", n, NULL};
        mr_log_write(MR_LOG_DEBUG, COMPONENT, fields, "turn published");
    }
    free(turn);
    free(names);
    free(joined);
    free(all);
    return rc;
}

static mr_code decide(authz_service *svc, const turn_event *ev, mr_err *err)
{
    mr_store *store = svc->rt->store;
    char marker[MR_ID_MAX + 16];
    snprintf(marker, sizeof marker, "turn:%s", ev->event_id);
    char *seen = NULL;
    size_t len = 0;
    mr_code rc = mr_store_get(store, marker, &seen, &len, err);
    free(seen);
    if (rc == MR_ENOTFOUND && authz_markers_waiting(svc->markers, marker))
        rc = MR_OK;
    if (rc == MR_OK) {
        const char *fields[] = {"event_id", ev->event_id, "account", ev->account, NULL};
        mr_log_write(MR_LOG_DEBUG, COMPONENT, fields, "already decided");
        count(svc, "duplicate");
        return MR_OK;
    }
    if (rc != MR_ENOTFOUND)
        return rc;
    rc = MR_OK;

    /* The room's key and alias as the instance recorded them, carried by the event itself. */
    mr_authz_room room = {.room_id = ev->room_id, .alias = ev->room_alias, .room_key = ev->room_key};
    mr_authz_decision d;
    const char *outcome = "turn";
    if (mr_authz_check_room(svc->az, ev->sender, &room, &d))
        rc = publish_turn(svc, ev, &d, err);
    else {
        outcome = "denied";
        log_denied(ev, &d);
    }
    /* The event is done only once its turn is durable: a crash before the marker replays it and
     * publishes the turn again (the agent's claim absorbs that), where marking it first could lose
     * the turn for good. */
    if (rc == MR_OK)
        rc = authz_markers_set_when_durable(svc->markers, svc->rt->bus, marker, outcome, err);
    if (rc == MR_OK)
        count(svc, outcome);
    return rc;
}

/* An entity's own message the gateway could not read (encrypted) and so published: once
 * decrypted, the rule the gateway applies to the others (mr_msg_entity_echo_read) drops it here
 * rather than in the agent. */
static const char *echo_skip_reason(const authz_service *svc, const turn_event *ev)
{
    mr_authz_entity_kind kind = mr_authz_kind_of(svc->az, ev->sender);
    if (kind == MR_AUTHZ_ENTITY_NONE || kind == MR_AUTHZ_ENTITY_INTERNAL_USER ||
        mr_msg_entity_echo_read(ev->event, kind == MR_AUTHZ_ENTITY_ROUTER))
        return NULL;
    return "an entity's own message: nothing reads it back";
}

static mr_code on_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    authz_service *svc = ctx;
    turn_event ev;
    mr_err perr = {0};
    if (turn_event_parse(m->value, m->len, &ev, &perr) != MR_OK) {
        const char *fields[] = {"topic", m->topic, "id", m->id, "reason", perr.msg, NULL};
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "dropping a message that is not a cleartext_event");
        count(svc, "malformed");
        return MR_OK;
    }
    refresh_rules(svc);
    const char *skip = turn_event_skip_reason(&ev);
    if (!skip)
        skip = echo_skip_reason(svc, &ev);
    /* Every event, skipped or not, may change who is in the room. */
    mr_code rc = room_state_note(svc->rt->store, &ev, err);
    if (rc != MR_OK) {
        turn_event_free(&ev);
        return rc;
    }
    if (skip) {
        const char *fields[] = {"event_id", ev.event_id, "type", ev.type, "reason", skip, NULL};
        mr_log_write(MR_LOG_DEBUG, COMPONENT, fields, "skipped");
        count(svc, "skipped");
    } else {
        rc = decide(svc, &ev, err);
    }
    turn_event_free(&ev);
    return rc;
}

static bool ready(void *ctx, char *why, size_t cap)
{
    const authz_service *svc = ctx;
    if (atomic_load(&svc->subscribed))
        return true;
    snprintf(why, cap, "authz: not yet consuming %s", IN_TOPIC);
    return false;
}

static void consume(authz_service *svc)
{
    static const char *const topics[] = {IN_TOPIC};
    const mr_runtime_consumer c = {.component = COMPONENT, .group = GROUP, .topics = topics, .n_topics = 1,
                                   .poll_timeout_ms = POLL_TIMEOUT_MS, .batch = POLL_BATCH,
                                   .subscribe_retry_ms = 1000, .handler = on_message, .ctx = svc,
                                   .consuming = &svc->subscribed};
    mr_runtime_consume(svc->rt, &c);
}

int mr_authz_serve(const mr_runtime *rt)
{
    authz_service svc = {.rt = rt, .markers = authz_markers_new(rt->store)};
    atomic_init(&svc.subscribed, false);
    if (!svc.markers) {
        mr_log_error(COMPONENT, "out of memory starting");
        return 1;
    }
    mr_err err = {0};
    if (mr_http_metrics_counter(rt->metrics, METRIC,
                                "Messages of matrix.cleartext by outcome: turn, denied, duplicate, skipped, malformed",
                                &err) != MR_OK ||
        mr_runtime_add_check(rt, ready, &svc, &err) != MR_OK) {
        mr_log_error(COMPONENT, "%s", err.msg);
        authz_markers_release(svc.markers);
        return 1;
    }
    refresh_rules(&svc);
    int status = 1;
    if (svc.az) {
        consume(&svc);
        status = 0;
    }
    mr_runtime_remove_check(rt, ready, &svc);
    mr_authz_free(svc.az);
    mr_config_release(svc.az_cfg);
    authz_markers_release(svc.markers);
    return status;
}
