/* turn_settle.c -- what a turn leaves once its messages are durable: its answers' claims marked
 * `done` and its field of the in-flight record removed.
 *
 * Neither may be kept before the answers are: a claim `done` or a dropped turn whose answer a
 * crash then loses would never be answered. On a journaled bus (`mindroom run`) the answers are
 * with their consumers as soon as they are published and reach the disk in the journal's next
 * commit, so the turn thread hands this bookkeeping to that commit (mr_bus_when_durable) and
 * goes on with the room's next turn instead of waiting a commit and its fsyncs. On Redis and
 * Kafka the same call flushes first, on the turn thread, as before. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "agent_run.h"

#define COMPONENT "agent"

typedef struct settle {
    mr_store *store;
    json_t *answered; /* [[event_id, entity], ...] */
    bool drop;        /* the turn is finished: remove field */
    char worker_id[WORKER_ID_MAX + 1];
    char field[INFLIGHT_FIELD_MAX];
} settle;

mr_code agent_answered(agent_svc *svc, const char *event_id, const char *entity, mr_err *err)
{
    if (!svc->answered)
        svc->answered = json_array();
    json_t *pair = json_pack("[s, s]", event_id, entity);
    if (!svc->answered || !pair || json_array_append_new(svc->answered, pair) != 0)
        return mr_err_set(err, MR_ENOMEM, "out of memory noting the answer of %s as %s", event_id, entity);
    return MR_OK;
}

/* Marks each claim done, or (durable false) gives it up, so the next run answers again under
 * the same transaction IDs (an edit of what went out, never a second message). */
static void close_claims(mr_store *store, json_t *answered, bool durable)
{
    size_t i;
    json_t *pair;
    json_array_foreach(answered, i, pair) {
        const char *event_id = json_string_value(json_array_get(pair, 0));
        const char *entity = json_string_value(json_array_get(pair, 1));
        mr_err err = {0};
        if (durable && claim_done(store, event_id, entity, &err) != MR_OK)
            mr_log_warn(COMPONENT, "marking the answer of %s as %s done: %s (a restart answers it again, "
                        "as an edit of the message sent)", event_id, entity, err.msg);
        else if (!durable)
            claim_release(store, event_id, entity, NULL);
    }
}

/* Runs once the turn's messages are durable, or (durable false) never will be in this boot: the
 * turn then stays in the record for the next run. */
static void settled(void *ctx, bool durable)
{
    settle *s = ctx;
    close_claims(s->store, s->answered, durable);
    mr_err err = {0};
    if (durable && s->drop && inflight_drop(s->store, s->worker_id, s->field, &err) != MR_OK)
        /* The turn is finished; a later start runs it again and its claims say so. */
        mr_log_warn(COMPONENT, "removing finished turn %s from the in-flight record: %s", s->field, err.msg);
    json_decref(s->answered);
    free(s);
}

mr_code agent_settle(agent_svc *svc, const char *field, mr_err *err)
{
    json_t *answered = svc->answered;
    svc->answered = NULL;
    if (!answered && !field)
        return MR_OK;
    settle *s = calloc(1, sizeof *s);
    if (!s) {
        close_claims(svc->rt->store, answered, false);
        json_decref(answered);
        return mr_err_set(err, MR_ENOMEM, "out of memory finishing a turn");
    }
    *s = (settle){.store = svc->rt->store, .answered = answered, .drop = field != NULL};
    snprintf(s->worker_id, sizeof s->worker_id, "%s", svc->self->worker_id);
    if (field)
        snprintf(s->field, sizeof s->field, "%s", field);
    return agent_when_durable(svc, settled, s, err);
}
