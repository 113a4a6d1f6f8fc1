/* send_consumer.c -- the matrix.send consumer: performs each send_request as the account it
 * names, with the request's transaction ID, so a redelivered request never makes a second event;
 * 429s wait out the advertised delay, unavailability leaves the request for redelivery, and
 * requests the homeserver refuses for good are dropped with an error, a room event's reported on
 * matrix.send_failed so its sender can tell the person. Typing notices go to the typing lane
 * (typing_lane.c), so the room's next request does not wait for them. A cleartext m.room.message for a room
 * known encrypted (room_encryption.c) is refused and reported the same way, never sent. */
#include "gateway_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mindroom/msg.h"
#include "mindroom/thread_name.h"

#define GROUP "gateway"
#define TOPIC "matrix.send"
#define FAILED_TOPIC "matrix.send_failed"
#define REASON_MAX 1024             /* schema send_failure */
#define POLL_MS 1000
#define POLL_MAX 16
#define SUBSCRIBE_RETRY_MS 2000

/* Consumers of matrix.send in this process, each a thread of its own in the gateway group: the
 * bus gives each partition to one of them at a time, so one room's sends stay in order while
 * other rooms' go out beside them (one thread did every room's sends one after another, and 100
 * answers streaming at once waited on each other's edits). As many as the topic's default
 * partitions: more would have none to take. */
#define LANES 8
/* Clients a lane keeps, those of the accounts it sent for last: every lane takes every
 * partition in turn, so with a client per account each, 1,000 accounts held 8,000 connections
 * (about 9 descriptors and 0.1 MiB an account). Past this, the one unused longest is freed. */
#define LANE_CLIENTS 32

typedef struct sender_lane {
    gw *g;
    struct gw_sender *sender;
    pthread_t thread;
    bool started;
    mr_matrix **clients;    /* per account, made by the lane's thread when first needed */
    unsigned long *gens;
    unsigned long long *used; /* per account: the lane's tick when its client last sent */
    unsigned long long tick;
    size_t held;            /* clients not NULL */
} sender_lane;

struct gw_sender {
    sender_lane lanes[LANES];
    sender_lane typing;     /* the clients of the typing lane's thread (typing_lane.c) */
    gw_typing *typing_lane;
};

static double since_s(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

#define SENT_TTL_MS 86400000L

static void sent_key(const char *txn, char key[300])
{
    snprintf(key, 300, "sent:%s", txn);
}

/* What a room event's send reads of the store, in one call: `sent:<txn_id>` (the event ID it got
 * when sent already), the room's encryption record, and for an edit `sent:<replaces_txn>`. */
enum { READ_SENT, READ_ENCRYPTION, READ_REPLACED, READS };

/* An edit names the message it replaces by transaction ID (replaces_txn): that message went out
 * before it on the same partition, so its event ID (replaced, read from `sent:`) goes into the
 * edit's m.relates_to (outside any encryption, as the spec keeps relations). */
static mr_code resolve_replaced(json_t *req, const char *replaced, mr_err *err)
{
    const char *replaces = str(req, "replaces_txn");
    if (!replaces)
        return MR_OK;
    if (!replaced)
        return mr_err_set(err, MR_EINVAL, "replaces_txn %s: this gateway sent no message of that transaction ID",
                          replaces);
    json_t *content = json_object_get(req, "content");
    json_t *rel = json_object_get(content, "m.relates_to");
    mr_code rc = MR_OK;
    if (!json_is_object(rel) && json_object_set_new(content, "m.relates_to", rel = json_object()) != 0)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory resolving replaces_txn %s", replaces);
    if (rc == MR_OK && (json_object_set_new(rel, "event_id", json_string(replaced)) != 0 ||
                        (!json_object_get(rel, "rel_type") &&
                         json_object_set_new(rel, "rel_type", json_string("m.replace")) != 0)))
        rc = mr_err_set(err, MR_ENOMEM, "out of memory resolving replaces_txn %s", replaces);
    return rc;
}

/* A room event: sent unless `sent:` has its transaction ID already; an edit of a message that
 * never went out, or a message in clear for an encrypted room, is refused before any request. */
static mr_code send_room_event(gw *g, mr_matrix *m, json_t *req, bool *asked, mr_err *err)
{
    const char *room = str(req, "room_id"), *txn = str(req, "txn_id"), *replaces = str(req, "replaces_txn");
    char keys[READS][300];
    const char *names[READS] = {keys[READ_SENT], keys[READ_ENCRYPTION], keys[READ_REPLACED]};
    char *v[READS];
    size_t lens[READS];
    sent_key(txn, keys[READ_SENT]);
    gw_enc_key(room, keys[READ_ENCRYPTION]);
    if (replaces)
        sent_key(replaces, keys[READ_REPLACED]);
    mr_code rc = mr_store_get_many(g->rt->store, names, replaces ? READS : READ_REPLACED, v, lens, err);
    if (rc != MR_OK)
        return rc;
    char event_id[MR_MATRIX_ID_SIZE];
    *asked = false;
    if (!v[READ_SENT] &&
        (rc = gw_enc_check_send(g, m, req, v[READ_ENCRYPTION], lens[READ_ENCRYPTION], err)) == MR_OK &&
        (rc = resolve_replaced(req, replaces ? v[READ_REPLACED] : NULL, err)) == MR_OK) {
        *asked = true;
        rc = mr_matrix_send(m, room, str(req, "event_type"), txn, json_object_get(req, "content"), event_id, err);
        if (rc == MR_OK)
            rc = mr_store_set(g->rt->store, keys[READ_SENT], event_id, strlen(event_id), SENT_TTL_MS, err);
    }
    for (size_t i = 0; i < (replaces ? READS : READ_REPLACED); i++)
        free(v[i]);
    return rc;
}

/* The request as the client-server API call it names. A room event's ID is recorded under
 * `sent:<txn_id>` (proto/store.md), the gateway's own key: edits name the message they replace
 * by it, and a request sent already is not sent again. A failure to record it leaves the request
 * for redelivery, and its transaction ID gets the same event ID back without a second event. */
static mr_code perform(gw *g, mr_matrix *m, json_t *req, const char *kind, bool *asked, mr_err *err)
{
    const char *room = str(req, "room_id"), *txn = str(req, "txn_id");
    *asked = true;
    if (strcmp(kind, "room_event") == 0)
        return send_room_event(g, m, req, asked, err);
    if (strcmp(kind, "typing") == 0)
        return mr_matrix_typing(m, room, gw_typing_wanted(req), gw_typing_timeout_ms(req), err);
    if (strcmp(kind, "redact") == 0)
        return mr_matrix_redact(m, room, str(req, "redacts"), txn, NULL, NULL, err);
    if (gw_keys_kind(kind))
        return gw_keys_perform(g, m, req, kind, err);
    return mr_matrix_send_to_device(m, str(req, "event_type"), txn, json_object_get(req, "messages"),
                                    err);
}

/* Publishes the send_failure of a room event given up on: the homeserver's status, errcode and
 * words when it answered (st), else what refused it here. A failure to publish leaves the request
 * for redelivery, so the failure is never lost. */
static mr_code report_failure(gw *g, json_t *req, const mr_matrix_status *st, mr_err *err)
{
    char reason[REASON_MAX + 1];
    snprintf(reason, sizeof reason, "%s", st && st->error[0] ? st->error : err->msg);
    json_t *f = json_pack("{s:i, s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "v", 1, "type", "send_failure", "account",
                          str(req, "account"), "room_id", str(req, "room_id"), "txn_id", str(req, "txn_id"),
                          "status", (json_int_t)(st ? st->status : 0), "errcode", st ? st->errcode : "", "reason",
                          reason[0] ? reason : "refused");
    char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
    json_decref(f);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory reporting a failed send on %s", FAILED_TOPIC);
    mr_code rc = mr_bus_publish(g->rt->bus, FAILED_TOPIC, str(req, "room_id"), text, strlen(text), err);
    free(text);
    return rc == MR_OK ? mr_bus_flush(g->rt->bus, GW_FLUSH_TIMEOUT_MS, err) : rc;
}

/* Frees the lane's client that has gone unused longest. */
static void lane_evict(sender_lane *s)
{
    size_t oldest = SIZE_MAX;
    for (size_t i = 0; i < s->g->n_accounts; i++)
        if (s->clients[i] && (oldest == SIZE_MAX || s->used[i] < s->used[oldest]))
            oldest = i;
    if (oldest == SIZE_MAX)
        return;
    mr_matrix_free(s->clients[oldest]);
    s->clients[oldest] = NULL;
    s->held--;
}

/* Performs req, a valid request of account a, with the lane's client of a: what it asks, once,
 * then its outcome counted, and a refusal for good logged (a room event's also reported). */
static mr_code lane_send(sender_lane *s, gw_account *a, json_t *req, const char *msg_id, mr_err *err)
{
    gw *g = s->g;
    const char *kind = str(req, "kind");
    size_t idx = (size_t)(a - g->accounts);
    mr_code rc = MR_OK;
    if (!s->clients[idx]) {
        if (s->held >= LANE_CLIENTS)
            lane_evict(s);
        rc = gw_client_new(g, a, &s->clients[idx], &s->gens[idx], err);
        s->held += s->clients[idx] != NULL;
    }
    s->used[idx] = ++s->tick;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool asked = false;
    if (rc == MR_OK)
        rc = perform(g, s->clients[idx], req, kind, &asked, err);
    if (rc == MR_EAUTH && (rc = gw_account_relogin(g, a, s->clients[idx], &s->gens[idx], err)) == MR_OK)
        rc = perform(g, s->clients[idx], req, kind, &asked, err);
    if (rc == MR_OK) {
        gw_metrics_send(g, kind, "sent", since_s(&t0));
        gw_crash_point(g, GW_CRASH_AFTER_SEND);
    } else if (rc == MR_EUNAVAIL || rc == MR_ENOMEM) {
        /* Left unacknowledged: the bus hands it over again, and its transaction ID keeps a
         * second attempt from making a second event. */
        gw_metrics_send(g, kind, "retried", -1);
    } else {
        const mr_matrix_status *st = asked && s->clients[idx] ? mr_matrix_last(s->clients[idx]) : NULL;
        const char *fields[] = {"account", a->user_id, "txn_id", str(req, "txn_id"), "errcode",
                                st && st->errcode[0] ? st->errcode : "", NULL};
        mr_log_write(MR_LOG_ERROR, GW, fields, "matrix.send %s: dropped %s request: %s", msg_id,
                     kind, err->msg);
        gw_metrics_send(g, kind, "dropped", -1);
        rc = strcmp(kind, "room_event") == 0 ? report_failure(g, req, st, err) : MR_OK;
    }
    return rc;
}

/* The typing lane's sends (gw_typing_fn), on its own clients. */
static mr_code typing_send(void *ctx, size_t account, json_t *req, mr_err *err)
{
    sender_lane *s = ctx;
    return lane_send(s, &s->g->accounts[account], req, str(req, "txn_id"), err);
}

static mr_code handle(void *ctx, const mr_bus_msg *msg, mr_err *err)
{
    sender_lane *s = ctx;
    gw *g = s->g;
    json_t *req = NULL;
    mr_err bad = {0};
    mr_code valid = mr_msg_load(msg->value, msg->len, "send_request", &req, &bad);
    const char *kind = str(req, "kind");
    gw_account *a = valid == MR_OK ? gw_account_by_user(g, str(req, "account")) : NULL;
    if (!a) {
        mr_log_error(GW, "matrix.send %s: dropped: %s", msg->id,
                     valid != MR_OK ? bad.msg : "the account is not one this gateway manages");
        gw_metrics_send(g, kind ? kind : "invalid", "dropped", -1);
        json_decref(req);
        return MR_OK;
    }
    /* A typing notice goes to the typing lane and the room's next request on at once; when that
     * lane is full, it is sent here as any other. */
    if (strcmp(kind, "typing") == 0 && gw_typing_queue(s->sender->typing_lane, (size_t)(a - g->accounts), req))
        return MR_OK;
    mr_code rc = lane_send(s, a, req, msg->id, err);
    json_decref(req);
    return rc;
}

static void after_poll(const mr_runtime *rt, const mr_runtime_consumer *c, mr_bus_consumer *bc, mr_code rc,
                       const mr_err *err)
{
    (void)bc;
    if (rc == MR_OK)
        atomic_store(c->consuming, true);
    else if (rc != MR_EUNAVAIL)
        mr_log_warn(GW, "%s", err->msg);
    else if (!mr_runtime_stopping(rt))
        mr_runtime_sleep(rt, POLL_MS);
}

static void *sender_main(void *arg)
{
    sender_lane *s = arg;
    mr_thread_name("gw-send");
    static const char *const topics[] = {TOPIC};
    const mr_runtime_consumer c = {.component = GW, .group = GROUP, .topics = topics, .n_topics = 1,
                                   .poll_timeout_ms = POLL_MS, .batch = POLL_MAX,
                                   .subscribe_retry_ms = SUBSCRIBE_RETRY_MS, .handler = handle, .ctx = s,
                                   .consuming = &s->g->send_ready, .after_poll = after_poll};
    mr_runtime_consume(s->g->rt, &c);
    return NULL;
}

static void lane_stop(sender_lane *l)
{
    if (l->started)
        pthread_join(l->thread, NULL);
    for (size_t i = 0; l->clients && i < l->g->n_accounts; i++)
        mr_matrix_free(l->clients[i]);
    free(l->clients);
    free(l->gens);
    free(l->used);
}

/* The lane's client tables, one entry per account. */
static mr_code lane_init(sender_lane *l, gw *g, gw_sender *s, mr_err *err)
{
    l->g = g;
    l->sender = s;
    l->clients = calloc(g->n_accounts, sizeof *l->clients);
    l->gens = calloc(g->n_accounts, sizeof *l->gens);
    l->used = calloc(g->n_accounts, sizeof *l->used);
    if (!l->clients || !l->gens || !l->used)
        return mr_err_set(err, MR_ENOMEM, "out of memory starting the %s consumers", TOPIC);
    return MR_OK;
}

mr_code gw_sender_start(gw *g, gw_sender **out, mr_err *err)
{
    gw_sender *s = *out = calloc(1, sizeof *s);
    if (!s)
        return mr_err_set(err, MR_ENOMEM, "out of memory starting the %s consumers", TOPIC);
    mr_code rc = lane_init(&s->typing, g, s, err);
    if (rc == MR_OK)
        rc = gw_typing_start(g, typing_send, &s->typing, &s->typing_lane, err);
    if (rc != MR_OK)
        return rc;
    /* On a failure the lanes started so far run on until the runtime stops: the caller stops
     * it, then gw_sender_stop joins them. */
    for (size_t i = 0; i < LANES; i++) {
        sender_lane *l = &s->lanes[i];
        if ((rc = lane_init(l, g, s, err)) != MR_OK)
            return rc;
        int e = pthread_create(&l->thread, NULL, sender_main, l);
        if (e != 0)
            return mr_err_errno(err, MR_EINTERNAL, e, "starting the %s consumers", TOPIC);
        l->started = true;
    }
    return MR_OK;
}

/* Joins the threads (the runtime is stopping) and frees the clients: the lanes first, then the
 * typing lane they hand notices to, which sends those still waiting before it ends. */
void gw_sender_stop(gw_sender *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < LANES; i++)
        lane_stop(&s->lanes[i]);
    gw_typing_stop(s->typing_lane);
    lane_stop(&s->typing);
    free(s);
}
