/* sync_loop.c -- the sync loop of one managed account, round by round (sync_driver.c runs every
 * account's rounds, their long polls on one thread): each batch's room events go to
 * matrix.inbound (from the room's publishing account only, room_publisher.c, with the facts of a
 * managed room; not the entities' messages nothing reads back) and its to-device events to
 * matrix.todevice, and only once the bus holds them all is next_batch saved (sync_token.c), so a
 * crash replays and loses nothing. The next /sync starts without waiting for the bus unless the
 * batch had to-device events (the homeserver deletes them once a later token is used) or rooms
 * left (handed to another publisher).
 * A limited timeline is backfilled from /messages; events from before the account first synced
 * or joined a room, or older than the answer bound, are marked history (recorded, never
 * answered). Invites are accepted when the inviter is authorized. */
#include "gateway_internal.h"
#include "mindroom/clock.h"
#include "mindroom/json.h"
#include "mindroom/msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Events one /messages page asks for while backfilling a gap. */
#define BACKFILL_PAGE 100
#define RETRY_MIN_MS 5000
#define RETRY_MAX_MS 60000

struct gw_loop {
    gw *g;
    gw_account *a;
    unsigned long gen;      /* of the session a->m uses */
    char *since;            /* the last batch's token, NULL before the first batch */
    gw_sync_token *saved;   /* since as kept in the store, once its batch is durable */
    bool loaded;            /* since and the history cutoffs are read from the store */
    long delay;             /* before the next try after a failure */
    /* The rooms another account publishes when this round's request was made: its filter
     * leaves their timelines out, so the homeserver serves each timeline to one account. */
    json_t *left_out;
    /* history:<account> in the store: "epoch" (wall ms of this account's first sync by the
     * gateway) and, per room, the time before which its events are history. */
    long long epoch;
    json_t *cutoffs;        /* room ID -> ms */
    json_t *key_counts;     /* {one_time_key_counts, unused_fallback_key_types} last published */
};
typedef struct gw_loop loop;

/* What one batch did, for the crash point and the logs. */
typedef struct batch {
    size_t inbound, todevice, history, backfilled, echoes;
    bool had_message;
} batch;

static mr_code publish(gw *g, const char *topic, const char *key, json_t *msg, mr_err *err)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    json_decref(msg);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "out of memory encoding a %s message", topic);
    mr_code rc = mr_bus_publish(g->rt->bus, topic, key, text, strlen(text), err);
    free(text);
    return rc;
}

/* ---- rooms ---- */

/* Where a room's live events start: after the account joined it, and never before the
 * gateway first synced the account (a fresh store on an old account). Kept in the store before
 * anything of the room is published, so a replay of the batch decides the same. */
static mr_code room_cutoff(loop *l, const char *room_id, json_t *room, long long *out, mr_err *err)
{
    json_t *known = json_object_get(l->cutoffs, room_id);
    if (known) {
        *out = json_integer_value(known);
        return MR_OK;
    }
    long long joined = gw_sync_own_join_ts(l->a->user_id, json_object_get(json_object_get(room, "state"),
                                                                          "events"));
    long long in_timeline = gw_sync_own_join_ts(l->a->user_id, json_object_get(json_object_get(room, "timeline"),
                                                                               "events"));
    joined = in_timeline > joined ? in_timeline : joined;
    *out = joined > l->epoch ? joined : l->epoch;
    char key[MR_MATRIX_ID_SIZE + 16], value[32];
    snprintf(key, sizeof key, "history:%s", l->a->user_id);
    int n = snprintf(value, sizeof value, "%lld", *out);
    mr_code rc = mr_store_hset(l->g->rt->store, key, room_id, value, (size_t)n, err);
    if (rc == MR_OK && json_object_set_new(l->cutoffs, room_id, json_integer(*out)) != 0)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory noting the history cutoff of %s", room_id);
    return rc;
}

static bool is_history(const gw *g, long long cutoff, long long ts)
{
    return ts < cutoff || mr_clock_wall_ms() - ts > g->s.answer_max_age_ms;
}

/* An entity's own message, answers and their edits above all, comes back in the sync of the
 * room's publisher; it is left off the bus when nothing reads it back (mr_msg_entity_echo_read):
 * a rule of the event and the config alone, so every gateway process, before and after a
 * restart, decides the same. An encrypted one is published: only crypto can read it, and authz
 * drops it once decrypted. */
static bool echo_read(gw *g, json_t *ev)
{
    const gw_account *author = gw_entity_by_user(g, json_string_value(json_object_get(ev, "sender")));
    return !author || mr_msg_entity_echo_read(ev, author == g->router);
}

/* What every event of a room in one batch carries: the room's facts and m.room.encryption,
 * looked up once per room and batch (when its first events come) rather than once per list of
 * events (gap, state, timeline); an m.room.encryption among the events updates enc for those
 * after it. */
typedef struct room_pub {
    const char *room_id;
    const char *membership;
    json_t *facts, *enc;
    bool looked;
} room_pub;

static void room_pub_done(room_pub *r)
{
    json_decref(r->facts);
    json_decref(r->enc);
}

/* Publishes the events of a room, each with the room's facts and m.room.encryption (asked of
 * the homeserver through m, once, when the gateway has no record of the room). */
static mr_code room_events(loop *l, mr_matrix *m, room_pub *r, long long cutoff, json_t *events, bool timeline,
                           batch *b, mr_err *err)
{
    gw *g = l->g;
    const char *room_id = r->room_id;
    size_t i;
    json_t *ev;
    mr_code rc = MR_OK;
    if (json_array_size(events) && !r->looked) {
        r->facts = gw_pub_facts(g, room_id);
        /* Only a joined account may read the room's state. */
        rc = gw_enc_of(g, strcmp(r->membership, "join") == 0 ? m : NULL, room_id, &r->enc, err);
        r->looked = rc == MR_OK;
    }
    json_array_foreach(rc == MR_OK ? events : NULL, i, ev) {
        const char *id = gw_sync_event_id(ev);
        if ((rc = gw_enc_note(g, room_id, ev, &r->enc, err)) != MR_OK)
            break;
        if (!id || !gw_pub_claim(g, room_id, id, l->a->user_id))
            continue;
        if (!echo_read(g, ev)) {
            b->echoes++;
            continue;
        }
        json_t *ts = json_object_get(ev, "origin_server_ts");
        bool history = is_history(g, cutoff, json_integer_value(ts));
        json_t *msg = gw_sync_inbound(l->a->user_id, room_id, ev, r->membership, history, r->facts);
        if (msg && r->enc && json_object_set(msg, "encryption", r->enc) != 0) {
            json_decref(msg);
            msg = NULL;
        }
        if (msg && !gw_sync_publishable("inbound_event", msg)) {
            json_decref(msg);
            continue;
        }
        if ((rc = publish(g, "matrix.inbound", room_id, msg, err)) != MR_OK)
            break;
        b->inbound++;
        b->history += history;
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (timeline && type && strcmp(type, "m.room.message") == 0)
            b->had_message = true;
        if (timeline)
            gw_metrics_sync_lag(g, (double)(mr_clock_wall_ms() - json_integer_value(ts)) / 1000.0);
    }
    return rc;
}

/* Events oldest first: /messages backwards from `from` down to the token `to`, or to the event
 * `stop` (left out), at most backfill_max of them. */
typedef struct gap_req {
    const char *from, *to, *stop;
} gap_req;

static mr_code backfill(loop *l, mr_matrix *m, const char *room_id, const gap_req *q, json_t **out,
                        mr_err *err)
{
    *out = json_array();
    if (!*out)
        return mr_err_set(err, MR_ENOMEM, "out of memory backfilling %s", room_id);
    char *next = q->from ? strdup(q->from) : NULL;
    mr_code rc = q->from && !next ? mr_err_set(err, MR_ENOMEM, "out of memory backfilling %s", room_id) : MR_OK;
    bool gap = false, stopped = false;
    while (rc == MR_OK && next && !stopped) {
        if (json_array_size(*out) >= (size_t)l->g->s.backfill_max) {
            gap = true;
            break;
        }
        size_t room = (size_t)l->g->s.backfill_max - json_array_size(*out);
        json_t *page = NULL;
        rc = mr_matrix_messages(m, room_id, next, q->to, 'b',
                                room < BACKFILL_PAGE ? (int)room : BACKFILL_PAGE, &page, err);
        free(next);
        next = NULL;
        json_t *chunk = json_object_get(page, "chunk");
        const char *end = json_string_value(json_object_get(page, "end"));
        size_t i;
        json_t *ev;
        json_array_foreach(chunk, i, ev) {
            const char *id = json_string_value(json_object_get(ev, "event_id"));
            if ((stopped = q->stop && id && strcmp(id, q->stop) == 0))
                break;
            if (rc == MR_OK && json_array_insert(*out, 0, ev) != 0)
                rc = mr_err_set(err, MR_ENOMEM, "out of memory backfilling %s", room_id);
        }
        /* No end, or an empty page: the gap is closed. */
        if (rc == MR_OK && !stopped && end && json_array_size(chunk) && !(next = strdup(end)))
            rc = mr_err_set(err, MR_ENOMEM, "out of memory backfilling %s", room_id);
        json_decref(page);
    }
    free(next);
    if (rc != MR_OK) {
        json_decref(*out);
        *out = NULL;
        return rc;
    }
    if (gap)
        mr_log_warn(GW, "sync of %s: the gap in %s holds more than %ld events; "
                    "the %zu newest were fetched, older ones are not published "
                    "(MINDROOM_GATEWAY_BACKFILL_MAX_EVENTS)", l->a->user_id, room_id,
                    l->g->s.backfill_max, json_array_size(*out));
    return MR_OK;
}

static bool left_out(const loop *l, const char *room_id)
{
    return mr_json_array_has(l->left_out, room_id);
}

/* The sync filter of the next request: no presence, account data or ephemeral events (typing
 * notices, which nothing here reads, would wake the long poll for a round of nothing several
 * times per answer), and no timeline of the rooms another account publishes (their state,
 * membership and this account's invites, to-device events, device lists and key counts still
 * come). */
static char *sync_filter(loop *l, mr_err *err)
{
    json_decref(l->left_out);
    l->left_out = gw_pub_others(l->g, l->a->user_id);
    json_t *f = l->left_out ? json_pack("{s:{s:{s:I, s:O}, s:{s:[s]}}, s:{s:[s]}, s:{s:[s]}}", "room",
                                        "timeline", "limit", (json_int_t)l->g->s.timeline_limit, "not_rooms",
                                        l->left_out, "ephemeral", "not_types", "*", "presence", "not_types",
                                        "*", "account_data", "not_types", "*") : NULL;
    char *text = f ? json_dumps(f, JSON_COMPACT) : NULL;
    json_decref(f);
    if (!text)
        mr_err_set(err, MR_ENOMEM, "out of memory preparing the sync filter of %s", l->a->user_id);
    return text;
}

/* The events of rooms this account took over from another publisher, after the newest one that
 * publisher claimed: they passed this loop while the other one published. Fetched back from
 * where this batch's timeline of the room begins: `since` when the request asked for it, else
 * `next`. With no event claimed by the former publisher, what this account's own filter left out
 * is fetched (since..next). They were live to the former publisher, so only their age makes
 * them history. */
static mr_code handovers(loop *l, mr_matrix *m, const char *since, const char *next, batch *b,
                         mr_err *err)
{
    json_t *rooms = gw_pub_take_handovers(l->g, l->a->user_id);
    if (!rooms)
        return mr_err_set(err, MR_ENOMEM, "out of memory taking over rooms for %s", l->a->user_id);
    mr_code rc = MR_OK;
    const char *room_id;
    json_t *stop;
    json_object_foreach(rooms, room_id, stop) {
        json_t *gap = NULL;
        bool out = left_out(l, room_id);
        gap_req q = {.from = out ? next : since, .stop = json_string_value(stop)};
        q.to = q.stop ? NULL : since;
        /* Nothing claimed and nothing left out, or a first sync, which starts the room anyway. */
        if (!q.stop && (!out || !since))
            continue;
        if (q.from && (rc = backfill(l, m, room_id, &q, &gap, err)) == MR_OK) {
            mr_log_info(GW, "%s publishes %s now; %zu events after %s fetched again", l->a->user_id, room_id,
                        json_array_size(gap), q.stop ? q.stop : since);
            b->backfilled += json_array_size(gap);
            room_pub r = {.room_id = room_id, .membership = "join"};
            rc = room_events(l, m, &r, 0, gap, true, b, err);
            room_pub_done(&r);
        }
        json_decref(gap);
        if (rc != MR_OK)
            break;
    }
    json_decref(rooms);
    return rc;
}

/* joined rooms: a limited timeline's gap, state, then timeline; left rooms: their timeline up to
 * the leave. Only the rooms this account publishes and whose timeline it asked for (a room taken
 * over in this batch comes through handovers). */
static mr_code rooms(loop *l, mr_matrix *m, const char *since, const char *next, json_t *r, batch *b,
                     mr_err *err)
{
    const char *room_id;
    json_t *room;
    mr_code rc = MR_OK;
    long long cutoff = 0;
    bool mine = false;
    json_object_foreach(json_object_get(r, "join"), room_id, room) {
        if ((rc = gw_pub_note(l->g, room_id, l->a->user_id, true, &mine, err)) != MR_OK)
            return rc;
    }
    /* The leave of the publisher hands its rooms over when its own batch is published. */
    if ((rc = handovers(l, m, since, next, b, err)) != MR_OK)
        return rc;
    json_object_foreach(json_object_get(r, "join"), room_id, room) {
        json_t *timeline = json_object_get(room, "timeline");
        json_t *gap = NULL;
        gap_req q = {.from = json_string_value(json_object_get(timeline, "prev_batch")), .to = since};
        if ((rc = gw_pub_note(l->g, room_id, l->a->user_id, true, &mine, err)) != MR_OK)
            return rc;
        if (!mine || left_out(l, room_id))
            continue;
        /* A first sync is limited by design: what came before it is history, not a gap. */
        if ((rc = room_cutoff(l, room_id, room, &cutoff, err)) == MR_OK && since &&
            json_is_true(json_object_get(timeline, "limited")) &&
            (rc = backfill(l, m, room_id, &q, &gap, err)) == MR_OK)
            b->backfilled += json_array_size(gap);
        room_pub rp = {.room_id = room_id, .membership = "join"};
        if (rc == MR_OK)
            rc = room_events(l, m, &rp, cutoff, gap, true, b, err);
        json_decref(gap);
        if (rc == MR_OK)
            rc = room_events(l, m, &rp, cutoff, json_object_get(json_object_get(room, "state"), "events"), false, b,
                             err);
        if (rc == MR_OK)
            rc = room_events(l, m, &rp, cutoff, json_object_get(timeline, "events"), true, b, err);
        room_pub_done(&rp);
        if (rc != MR_OK)
            return rc;
    }
    json_object_foreach(json_object_get(r, "leave"), room_id, room) {
        if ((rc = gw_pub_note(l->g, room_id, l->a->user_id, true, &mine, err)) != MR_OK)
            return rc;
        if (!mine || left_out(l, room_id))
            continue;
        room_pub rp = {.room_id = room_id, .membership = "leave"};
        if ((rc = room_cutoff(l, room_id, room, &cutoff, err)) == MR_OK)
            rc = room_events(l, m, &rp, cutoff, json_object_get(json_object_get(room, "timeline"), "events"), true,
                             b, err);
        room_pub_done(&rp);
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

/* After the batch is on the bus: the rooms left pass to the next publisher. */
static mr_code rooms_left(loop *l, json_t *r, mr_err *err)
{
    const char *room_id;
    json_t *room;
    bool mine;
    json_object_foreach(json_object_get(r, "leave"), room_id, room) {
        mr_code rc = gw_pub_note(l->g, room_id, l->a->user_id, false, &mine, err);
        if (rc != MR_OK)
            return rc;
    }
    return MR_OK;
}

/* Accepts an invite when router.accept_invites is on and the inviter may use the room. */
static mr_code invites(gw *g, gw_account *a, mr_matrix *m, json_t *invited, mr_err *err)
{
    const char *room_id;
    json_t *room;
    json_object_foreach(invited, room_id, room) {
        const char *inviter = gw_sync_inviter(a->user_id, room);
        mr_authz_room where = {.room_id = room_id};
        mr_authz_decision d;
        if (!inviter || !g->cfg->router.accept_invites ||
            !mr_authz_check_room(g->az, inviter, &where, &d)) {
            char why[256] = "router.accept_invites is off";
            if (g->cfg->router.accept_invites && inviter)
                mr_authz_describe(&d, why, sizeof why);
            mr_log_info(GW, "%s leaves the invite to %s from %s unanswered: %s", a->user_id,
                        room_id, inviter ? inviter : "an unknown sender", why);
            continue;
        }
        mr_code rc = mr_matrix_join(m, room_id, NULL, err);
        if (rc == MR_EUNAVAIL)
            return rc;
        if (rc == MR_OK)
            mr_log_info(GW, "%s accepted the invite to %s from %s", a->user_id, room_id, inviter);
        else
            mr_log_warn(GW, "%s could not accept the invite to %s: %s", a->user_id, room_id, err->msg);
    }
    mr_err_clear(err);
    return MR_OK;
}

/* ---- to-device ---- */

/* The sync's key counts when they differ from what this loop last published (every first
 * sync of a loop publishes them), else NULL. */
static json_t *key_counts(loop *l, json_t *sync)
{
    json_t *now = gw_sync_key_counts(sync);
    if (!now || (l->key_counts && json_equal(now, l->key_counts))) {
        json_decref(now);
        return NULL;
    }
    return now;
}

static mr_code to_device(loop *l, json_t *sync, batch *b, mr_err *err)
{
    gw_account *a = l->a;
    json_t *lists = gw_sync_device_lists(sync), *counts = key_counts(l, sync);
    json_t *msgs = gw_sync_todevice(a->user_id, a->device_id, sync, lists, counts);
    mr_code rc = msgs ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory reading the to-device events of %s",
                                           a->user_id);
    size_t i;
    json_t *msg;
    json_array_foreach(msgs, i, msg) {
        if (!gw_sync_publishable("todevice_event", msg))
            continue;
        if ((rc = publish(l->g, "matrix.todevice", a->user_id, json_incref(msg), err)) != MR_OK)
            break;
        b->todevice++;
    }
    json_decref(msgs);
    json_decref(lists);
    if (rc == MR_OK && counts) {
        json_decref(l->key_counts);
        l->key_counts = counts;
    } else {
        json_decref(counts);
    }
    return rc;
}

/* ---- the loop ---- */

static mr_code handle(loop *l, mr_matrix *m, const char *since, json_t *sync, batch *b, mr_err *err)
{
    gw *g = l->g;
    gw_account *a = l->a;
    json_t *r = json_object_get(sync, "rooms");
    const char *next = json_string_value(json_object_get(sync, "next_batch"));
    mr_code rc;
    if ((rc = rooms(l, m, since, next, r, b, err)) != MR_OK || (rc = to_device(l, sync, b, err)) != MR_OK)
        return rc;
    /* The bus must hold the to-device events before the next /sync acknowledges them, and the
     * batch of a room before another account publishes it. Otherwise only a journal's failed
     * commit stops the round here, without waiting for the disk. */
    bool wait = b->todevice || json_object_size(json_object_get(r, "leave"));
    rc = wait ? mr_bus_flush(g->rt->bus, GW_FLUSH_TIMEOUT_MS, err)
              : mr_bus_flush_for_ack(g->rt->bus, GW_FLUSH_TIMEOUT_MS, err);
    if (rc != MR_OK || (rc = rooms_left(l, r, err)) != MR_OK)
        return rc;
    gw_metrics_published(g, "matrix.inbound", b->inbound);
    gw_metrics_published(g, "matrix.todevice", b->todevice);
    gw_metrics_echoes(g, b->echoes);
    return invites(g, a, m, json_object_get(r, "invite"), err);
}

/* The history cutoffs of the account; a first sync sets the epoch. An account that has a sync
 * token but no epoch was synced before cutoffs existed: its rooms' new events stay live. */
static mr_code load_history(loop *l, bool first_sync, mr_err *err)
{
    char key[MR_MATRIX_ID_SIZE + 16];
    snprintf(key, sizeof key, "history:%s", l->a->user_id);
    mr_store_hash h = {0};
    mr_code rc = mr_store_hgetall(l->g->rt->store, key, &h, err);
    bool have_epoch = false;
    for (size_t i = 0; rc == MR_OK && i < h.count; i++) {
        long long v = strtoll(h.entries[i].value, NULL, 10);
        if (strcmp(h.entries[i].field, "epoch") == 0) {
            l->epoch = v;
            have_epoch = true;
        } else if (json_object_set_new(l->cutoffs, h.entries[i].field, json_integer(v)) != 0) {
            rc = mr_err_set(err, MR_ENOMEM, "out of memory reading %s", key);
        }
    }
    mr_store_hash_free(&h);
    if (rc != MR_OK || have_epoch)
        return rc;
    l->epoch = first_sync ? mr_clock_wall_ms() : 0;
    char value[32];
    int n = snprintf(value, sizeof value, "%lld", l->epoch);
    return mr_store_hset(l->g->rt->store, key, "epoch", value, (size_t)n, err);
}

static mr_code load_state(loop *l, mr_err *err)
{
    mr_code rc = gw_sync_token_load(l->saved, &l->since, err);
    return rc == MR_OK ? load_history(l, l->since == NULL, err) : rc;
}

gw_loop *gw_loop_new(gw *g, gw_account *a)
{
    loop *l = malloc(sizeof *l);
    if (!l)
        return NULL;
    *l = (loop){.g = g, .a = a, .gen = a->generation, .delay = RETRY_MIN_MS, .cutoffs = json_object(),
                .saved = gw_sync_token_new(g->rt->store, a->user_id)};
    if (!l->cutoffs || !l->saved) {
        gw_loop_free(l);
        return NULL;
    }
    return l;
}

void gw_loop_free(gw_loop *l)
{
    if (!l)
        return;
    free(l->since);
    gw_sync_token_release(l->saved);
    json_decref(l->cutoffs);
    json_decref(l->key_counts);
    json_decref(l->left_out);
    free(l);
}

gw_account *gw_loop_account(gw_loop *l)
{
    return l->a;
}

mr_code gw_loop_begin(gw_loop *l, mr_http_multi *mu, void *tag, mr_err *err)
{
    gw *g = l->g;
    gw_account *a = l->a;
    mr_code rc = l->loaded ? MR_OK : load_state(l, err);
    if (rc != MR_OK)
        return rc;
    l->loaded = true;
    char *filter = sync_filter(l, err);
    if (!filter)
        return MR_ENOMEM;
    /* The first round returns at once, so readiness means "caught up", not "a message came". */
    mr_matrix_sync_req req = {.filter = filter, .since = l->since, .full_state = !l->since,
                              .timeout_ms = atomic_load(&a->synced) ? g->s.sync_timeout_ms : 0};
    rc = mr_matrix_sync_start(a->m, mu, &req, tag, err);
    free(filter);
    return rc;
}

/* The rest of a round once its sync came back: hand the batch to the bus, then save its token
 * once the bus holds the batch; the next round starts from it at once. */
static mr_code round_end(loop *l, json_t *sync, mr_err *err)
{
    gw *g = l->g;
    gw_account *a = l->a;
    batch b = {0};
    mr_code rc = handle(l, a->m, l->since, sync, &b, err);
    const char *next = json_string_value(json_object_get(sync, "next_batch"));
    if (rc == MR_OK && b.had_message)
        gw_crash_point(g, GW_CRASH_AFTER_PUBLISH);
    if (rc == MR_OK)
        rc = gw_sync_token_save(l->saved, g->rt->bus, next, err);
    if (rc == MR_OK) {
        char *copy = strdup(next);
        if (copy) {
            free(l->since);
            l->since = copy;
        }
        if (b.inbound || b.todevice)
            mr_log_debug(GW, "%s: published %zu room events (%zu history, %zu backfilled) and %zu "
                         "to-device events up to %s", a->user_id, b.inbound, b.history, b.backfilled,
                         b.todevice, next);
        atomic_store(&a->synced, true);
    }
    return rc;
}

long gw_loop_end(gw_loop *l, mr_code rc, const mr_err *why)
{
    gw *g = l->g;
    gw_account *a = l->a;
    mr_matrix *m = a->m;
    json_t *sync = NULL;
    long retry_ms = -1;
    mr_err err = {0};
    rc = mr_matrix_sync_finish(m, rc, why, &sync, &retry_ms, &err);
    if (rc == MR_EAUTH) {
        rc = gw_account_relogin(g, a, m, &l->gen, &err);
    } else if (rc == MR_EINVAL && l->since && mr_matrix_last(m)->status == 400) {
        /* The homeserver no longer knows the token (it was reset): start over with a full
         * sync; what it brings again is history unless newer than the rooms' cutoffs, and the
         * agent's claims keep those from a second answer. */
        mr_log_warn(GW, "sync of %s: %s; starting again with a full sync", a->user_id, err.msg);
        free(l->since);
        l->since = NULL;
        rc = MR_OK;
    } else if (rc == MR_OK && !mr_runtime_stopping(g->rt)) {
        rc = round_end(l, sync, &err);
    }
    json_decref(sync);
    if (rc == MR_OK || mr_runtime_stopping(g->rt)) {
        l->delay = RETRY_MIN_MS;
        return 0;
    }
    return gw_loop_failed(l, &err, retry_ms);
}

long gw_loop_failed(gw_loop *l, const mr_err *err, long retry_ms)
{
    /* The batch was not saved: the next round asks for it again, key counts included. */
    json_decref(l->key_counts);
    l->key_counts = NULL;
    long delay = retry_ms >= 0 ? retry_ms : l->delay;
    mr_log_warn(GW, "sync of %s failed, again in %ld ms: %s", l->a->user_id, delay, err->msg);
    if (retry_ms < 0)
        l->delay = l->delay * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : l->delay * 2;
    return delay;
}
