/* agent_service.c -- mindroom-agent's process: accepts turns from agent.turns into its in-flight
 * record (and sends the gateway gave up on from matrix.send_failed, send_failed.c), runs them on the turn threads (room_queue.c), beats its heartbeat, and adopts the turns
 * of workers that died (see agent_service.h). */
#include "agent_service.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_run.h"
#include "agent_schedule.h"
#include "agent_share.h"
#include "agent_tools.h"
#include "mindroom/str.h"
#include "mindroom/thread_name.h"
#include "room_queue.h"

#define COMPONENT "agent"
#define IN_TOPIC "agent.turns"
#define FAILED_TOPIC "matrix.send_failed"
#define GROUP "agent"
#define POLL_TIMEOUT_MS 500
#define POLL_BATCH 32
#define WAITING_MAX 1024           /* turns waiting in this process before it accepts no more */
#define TURNS_SETTING "MINDROOM_AGENT_MAX_CONCURRENT_TURNS"
#define TURNS_DEFAULT 16
#define TURNS_MAX 256
#define WORKER_SETTING "MINDROOM_WORKER_ID"
#define TYPING_SETTING "MINDROOM_AGENT_TYPING_DELAY_MS"
#define TYPING_DEFAULT_MS 200
#define TYPING_MAX_MS 60000
#define RETRY_MIN_MS 1000          /* a turn that failed runs again after this, doubling ... */
#define RETRY_MAX_MS 30000         /* ... up to this */
#define PARK_MIN_MS 200

typedef struct turn_job {
    char field[INFLIGHT_FIELD_MAX];
    agent_turn turn;
    int runs;
    int failures;
} turn_job;

typedef struct agent_node {
    const mr_runtime *rt;
    agent_self self;
    long long boot_ms;
    atomic_ullong accepted;        /* the sequence of in-flight fields of this boot */
    size_t n_threads;
    long typing_delay_ms;
    agent_svc *threads;            /* one per turn thread */
    agent_svc accepting;           /* the consumer's: turns no entity answers end there */
    room_queue *queue;
    mcp_hub *mcp;                  /* clients of the start-up config's mcp_servers */
    atomic_bool subscribed;        /* for /readyz */
    bool sharing;                  /* replicas may share this store: rooms run under leases (share.c) */
} agent_node;

/* ---- settings ---- */

/* The hostname and 8 hex of SHA-256 of the store URL and storage path: stable across restarts
 * of one deployment, different for two instances on one host. */
static void default_worker_id(const mr_runtime *rt, char out[WORKER_ID_MAX + 1])
{
    char host[WORKER_ID_MAX - 8] = "agent";
    if (gethostname(host, sizeof host) != 0 || !host[0])
        snprintf(host, sizeof host, "agent");
    host[sizeof host - 1] = '\0';
    /* Characters a worker ID refuses (a hostname should have none) become '-'. */
    for (char *c = host; *c; c++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-", *c))
            *c = '-';
    char *identity = mr_str_printf("%s\n%s", rt->settings.store_url, rt->settings.storage_path);
    unsigned char digest[EVP_MAX_MD_SIZE] = {0};
    unsigned int len = 0;
    if (identity)
        EVP_Digest(identity, strlen(identity), digest, &len, EVP_sha256(), NULL);
    free(identity);
    snprintf(out, WORKER_ID_MAX + 1, "%s-%02x%02x%02x%02x", host, digest[0], digest[1], digest[2], digest[3]);
}

static mr_code read_settings(agent_node *node, mr_err *err)
{
    char fallback[WORKER_ID_MAX + 1];
    default_worker_id(node->rt, fallback);
    const char *id = mr_runtime_setting(node->rt, NULL, WORKER_SETTING, fallback);
    mr_code rc = worker_self_init(id, &node->self, err);
    if (rc != MR_OK)
        return rc;
    /* Read again for each answer; checked here so a bad value stops start-up. */
    tool_settings tools;
    rc = tool_settings_read(node->rt, &tools, err);
    if (rc != MR_OK)
        return rc;
    long turns;
    rc = mr_runtime_setting_long(node->rt, TURNS_SETTING, TURNS_DEFAULT, 1, TURNS_MAX, &turns, err);
    if (rc == MR_OK)
        node->n_threads = (size_t)turns;
    if (rc == MR_OK)
        rc = mr_runtime_setting_long(node->rt, TYPING_SETTING, TYPING_DEFAULT_MS, 0, TYPING_MAX_MS,
                                     &node->typing_delay_ms, err);
    return rc;
}

static const char *setting_of(void *ctx, const char *name)
{
    return mr_runtime_setting(ctx, NULL, name, NULL);
}

/* The MCP clients of the config in force at start-up: a change to mcp_servers takes effect at
 * the next start, since calls may be under way on the old clients. */
static mr_code mcp_open(agent_node *node, mr_err *err)
{
    mr_config *cfg = mr_runtime_config(node->rt, NULL);
    if (!cfg)
        return MR_OK;
    mr_code rc = mcp_hub_new(cfg, node->rt->settings.storage_path, setting_of, (void *)node->rt, &node->mcp, err);
    mr_config_release(cfg);
    return rc;
}

/* ---- jobs: accepted turns ---- */

static void job_free(void *p)
{
    turn_job *j = p;
    agent_turn_free(&j->turn);
    free(j);
}

/* Records the turn under a new field of this worker's in-flight record and queues it: ahead of
 * the room's turns here when it is older than them (a dead worker's). Takes turn's parts. */
static mr_code accept_turn(agent_node *node, const char *value, size_t len, agent_turn *turn, bool ahead,
                           mr_err *err)
{
    turn_job *j = calloc(1, sizeof *j);
    if (!j)
        return mr_err_set(err, MR_ENOMEM, "out of memory accepting turn %s", turn->event_id);
    inflight_field(node->boot_ms, atomic_fetch_add(&node->accepted, 1), turn->room_id, j->field);
    j->turn = *turn;
    memset(turn, 0, sizeof *turn);
    const char *room = j->turn.room_id;
    mr_store *store = node->rt->store;
    mr_code rc = inflight_put(store, node->self.worker_id, j->field, value, len, err);
    bool leased = rc == MR_OK && node->sharing;
    if (leased)
        rc = room_lease_accept(store, &node->self, room, err);
    if (rc == MR_OK)
        rc = ahead ? room_queue_push_ahead(node->queue, room, j, err) : room_queue_push(node->queue, room, j, err);
    if (rc != MR_OK) {
        /* Not queued: forgotten, so the bus delivers it again; the room's lease stays only for
         * the turns of the room queued here. */
        inflight_drop(store, node->self.worker_id, j->field, NULL);
        if (leased && !room_queue_jobs(node->queue, room))
            room_lease_end(store, &node->self, room, false, NULL);
        job_free(j);
    }
    return rc;
}

/* Queues a turn of this worker's record as it is (a restart's). */
static void resume_turn(agent_node *node, const mr_store_hash_entry *e)
{
    mr_err err = {0};
    turn_job *j = calloc(1, sizeof *j);
    mr_code rc = j ? agent_turn_parse(e->value, e->value_len, &j->turn, &err)
                   : mr_err_set(&err, MR_ENOMEM, "out of memory");
    if (rc == MR_OK) {
        snprintf(j->field, sizeof j->field, "%s", e->field);
        rc = room_queue_push(node->queue, j->turn.room_id, j, &err);
        if (rc == MR_OK)
            return;
    }
    if (j)
        job_free(j);
    mr_log_warn(COMPONENT, "in-flight turn %s: %s", e->field, err.msg);
    /* A record that is not a turn never becomes one; one that could not be queued waits for the
     * next start. */
    if (rc == MR_EINVAL)
        inflight_drop(node->rt->store, node->self.worker_id, e->field, NULL);
}

static long long park_ms(long long until_wall_ms)
{
    long long ms = until_wall_ms - mr_clock_wall_ms();
    return ms < PARK_MIN_MS ? PARK_MIN_MS : ms;
}

static long long retry_ms(turn_job *j, const mr_err *err)
{
    int shift = j->failures < 5 ? j->failures : 5;
    long long delay = (long long)RETRY_MIN_MS << shift;
    delay = delay > RETRY_MAX_MS ? RETRY_MAX_MS : delay;
    j->failures++;
    mr_log_warn(COMPONENT, "%s; running the turn again in %lld ms", err->msg, delay);
    return delay;
}

/* After a turn of the room ended here (share.c): called by the job running, so no other thread
 * here starts one of the room meanwhile. */
static void room_done(agent_node *node, const turn_job *j)
{
    mr_err err = {0};
    bool more = room_queue_jobs(node->queue, j->turn.room_id) > 1;
    if (node->sharing && room_lease_end(node->rt->store, &node->self, j->turn.room_id, more, &err) != MR_OK)
        mr_log_warn(COMPONENT, "leaving the lease of room %s: %s; another worker takes it %ld s after this one "
                    "stops", j->turn.room_id, err.msg, WORKER_LEASE_MS / 1000);
}

/* Whether the turn may run here now (share.c): 0 with *go when it may; 0 without when another
 * worker took it; a negative (hold the room's place) or positive (retry) park otherwise. */
static long long room_gate(agent_node *node, turn_job *j, bool *go)
{
    *go = !node->sharing;
    if (*go)
        return 0;
    mr_store *store = node->rt->store;
    lease_result lease = LEASE_BUSY;
    mr_err err = {0};
    mr_code rc = room_lease_start(store, &node->self, j->turn.room_id, mr_clock_wall_ms(), &lease, &err);
    if (rc == MR_OK && lease == LEASE_BUSY)
        return -ROOM_HOLD_MS;
    bool held = false;
    if (rc == MR_OK)
        rc = inflight_holds(store, node->self.worker_id, j->field, &held, &err);
    if (rc != MR_OK)
        return retry_ms(j, &err);
    if (lease == LEASE_TAKEN_OVER)
        mr_log_info(COMPONENT, "took over the lease of room %s: its holder no longer runs", j->turn.room_id);
    *go = held;
    if (!held)
        room_done(node, j);
    return 0;
}

static long long run_job(void *ctx, size_t worker, void *p)
{
    agent_node *node = ctx;
    agent_svc *svc = &node->threads[worker];
    turn_job *j = p;
    const agent_turn *t = &j->turn;
    bool go = false;
    long long gate = room_gate(node, j, &go);
    if (!go)
        return gate;
    svc->park_until_ms = 0;
    svc->counted = j->runs++ > 0;
    mr_err err = {0};
    mr_code rc = agent_turn_handle(svc, t, &err);
    bool finished = rc == MR_OK && !svc->park_until_ms;
    mr_err serr = {0};
    mr_code settled = agent_settle(svc, finished ? j->field : NULL, &serr);
    if (settled != MR_OK && rc == MR_OK) {
        rc = settled;
        err = serr;
    }
    if (rc == MR_OK && !svc->park_until_ms) {
        room_done(node, j);
        return 0;
    }
    /* Stopping: what is unfinished stays in the record for the next start. */
    if (mr_runtime_stopping(node->rt))
        return 0;
    if (rc != MR_OK)
        return retry_ms(j, &err);
    const char *fields[] = {"event_id", t->event_id, "room_id", t->room_id, NULL};
    mr_log_write(MR_LOG_INFO, COMPONENT, fields,
                 "parked: another live worker holds a claim of this turn; looking again when its lease ends");
    return park_ms(svc->park_until_ms);
}

/* ---- the heartbeat, and the turns of workers that died ---- */

/* Moves a dead worker's in-flight turns to this one's record, in their order, and queues them;
 * true when none is left there. */
static bool adopt(agent_node *node, const char *dead)
{
    mr_store *store = node->rt->store;
    mr_store_hash their = {0};
    mr_err err = {0};
    if (inflight_list(store, dead, &their, &err) != MR_OK) {
        mr_log_warn(COMPONENT, "reading the in-flight turns of dead worker %s: %s", dead, err.msg);
        return false;
    }
    size_t moved = 0;
    for (size_t i = 0; i < their.count; i++) {
        const mr_store_hash_entry *e = &their.entries[i];
        agent_turn turn;
        mr_code rc = agent_turn_parse(e->value, e->value_len, &turn, &err);
        if (rc == MR_OK) {
            /* The room's lease first: until it moves, the dead one's record keeps the room. */
            if (node->sharing)
                rc = room_lease_adopt(store, &node->self, turn.room_id, dead, &err);
            if (rc == MR_OK)
                rc = accept_turn(node, e->value, e->value_len, &turn, true, &err);
            agent_turn_free(&turn);
        }
        if (rc == MR_OK || rc == MR_EINVAL)
            rc = inflight_drop(store, dead, e->field, &err);
        if (rc != MR_OK) {
            mr_log_warn(COMPONENT, "adopting in-flight turn %s of dead worker %s: %s", e->field, dead, err.msg);
            break;
        }
        moved++;
    }
    if (moved)
        mr_log_info(COMPONENT, "adopted %zu in-flight turns of worker %s, whose heartbeat lease lapsed", moved, dead);
    bool empty = moved == their.count;
    mr_store_hash_free(&their);
    return empty;
}

static void adopt_dead(agent_node *node, long long now)
{
    mr_store_hash workers = {0};
    mr_err err = {0};
    if (mr_store_hgetall(node->rt->store, WORKERS_KEY, &workers, &err) != MR_OK) {
        mr_log_warn(COMPONENT, "reading %s: %s", WORKERS_KEY, err.msg);
        return;
    }
    for (size_t i = 0; i < workers.count; i++) {
        const mr_store_hash_entry *w = &workers.entries[i];
        long long beat = 0;
        if (strcmp(w->field, node->self.worker_id) == 0 || !worker_beat_of(w->value, &beat) ||
            now < beat + WORKER_LEASE_MS)
            continue;
        /* Long dead with nothing left: forgotten, so the scan stays short. */
        if (adopt(node, w->field) && now >= beat + WORKER_FORGET_MS)
            mr_store_hdel(node->rt->store, WORKERS_KEY, w->field, NULL);
    }
    mr_store_hash_free(&workers);
}

static void *beat_main(void *arg)
{
    agent_node *node = arg;
    mr_thread_name("agent-beat");
    while (!mr_runtime_sleep(node->rt, WORKER_HEARTBEAT_MS)) {
        long long now = mr_clock_wall_ms();
        mr_err err = {0};
        bool clash = false;
        if (worker_clash(node->rt->store, &node->self, &clash, &err) == MR_OK && clash)
            mr_log_error(COMPONENT, "another live process runs as worker %s: each takes the other's claims over; "
                         "give each process its own %s", node->self.worker_id, WORKER_SETTING);
        if (worker_beat(node->rt->store, &node->self, now, &err) != MR_OK)
            mr_log_warn(COMPONENT, "heartbeat of worker %s: %s", node->self.worker_id, err.msg);
        adopt_dead(node, now);
    }
    return NULL;
}

static mr_code share_take(void *ctx, const char *value, size_t len, agent_turn *turn, mr_err *err)
{
    return accept_turn(ctx, value, len, turn, false, err);
}

static bool share_has_room(void *ctx, const char *room_id)
{
    const agent_node *node = ctx;
    return room_queue_jobs(node->queue, room_id) > 0;
}

/* While turn threads idle, takes waiting turns of busy replicas (share.c). */
static void *share_main(void *arg)
{
    agent_node *node = arg;
    mr_thread_name("agent-share");
    const share_ops ops = {.take = share_take, .has_room = share_has_room, .ctx = node};
    while (!mr_runtime_sleep(node->rt, SHARE_TICK_MS)) {
        size_t idle = room_queue_idle(node->queue);
        if (idle)
            share_steal(node->rt->store, &node->self, mr_clock_wall_ms(), idle, &ops);
    }
    return NULL;
}

/* Fires due schedules; every process does, and each occurrence goes out once. */
static void *schedule_main(void *arg)
{
    agent_node *node = arg;
    mr_thread_name("agent-schedule");
    while (!mr_runtime_sleep(node->rt, SCHEDULE_TICK_MS))
        schedule_tick(node->rt, &node->self, mr_clock_wall_ms());
    return NULL;
}

/* The first heartbeat, before any claim: another worker must see this boot alive. */
static bool first_beat(agent_node *node)
{
    mr_err err = {0};
    while (worker_beat(node->rt->store, &node->self, mr_clock_wall_ms(), &err) != MR_OK) {
        mr_log_warn(COMPONENT, "heartbeat of worker %s: %s; trying again", node->self.worker_id, err.msg);
        if (mr_runtime_sleep(node->rt, 1000))
            return false;
    }
    return true;
}

static void resume_own(agent_node *node)
{
    mr_store_hash own = {0};
    mr_err err = {0};
    if (inflight_list(node->rt->store, node->self.worker_id, &own, &err) != MR_OK) {
        mr_log_warn(COMPONENT, "reading the in-flight turns of worker %s: %s; they run at the next start",
                    node->self.worker_id, err.msg);
        return;
    }
    if (own.count)
        mr_log_info(COMPONENT, "running again %zu turns accepted before the last stop", own.count);
    for (size_t i = 0; i < own.count; i++)
        resume_turn(node, &own.entries[i]);
    mr_store_hash_free(&own);
}

/* ---- the bus ---- */

static mr_code on_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    agent_node *node = ctx;
    if (strcmp(m->topic, FAILED_TOPIC) == 0)
        return delivery_failed(node->rt, m->value, m->len, err);
    agent_turn t;
    mr_err perr = {0};
    if (agent_turn_parse(m->value, m->len, &t, &perr) != MR_OK) {
        const char *fields[] = {"topic", m->topic, "id", m->id, "reason", perr.msg, NULL};
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "dropping a message that is not a turn");
        agent_count(node->rt, "malformed");
        return MR_OK;
    }
    /* Acknowledged without a record, a lease or a queue: every reply an entity sends comes back
     * as a turn, and it would hold up the room's next turn for as many store round trips. */
    if (agent_turn_skipped(&node->accepting, &t)) {
        agent_turn_free(&t);
        return MR_OK;
    }
    size_t waiting = room_queue_waiting(node->queue);
    mr_code rc = waiting >= WAITING_MAX
                     ? mr_err_set(err, MR_EUNAVAIL, "%zu turns wait already: leaving %s on the bus for now", waiting,
                                  t.event_id)
                     : accept_turn(node, m->value, m->len, &t, false, err);
    agent_turn_free(&t);
    return rc;
}

static bool ready(void *ctx, char *why, size_t cap)
{
    const agent_node *node = ctx;
    if (atomic_load(&node->subscribed))
        return true;
    snprintf(why, cap, "agent: not yet consuming %s", IN_TOPIC);
    return false;
}

static void after_poll(const mr_runtime *rt, const mr_runtime_consumer *c, mr_bus_consumer *bc, mr_code rc,
                       const mr_err *err)
{
    (void)rt;
    const agent_node *node = c->ctx;
    /* Without a partition a replica that shares turns still answers them: ready once it polls. */
    if (mr_bus_consumer_partitions(bc) > 0 || (node->sharing && rc == MR_OK))
        atomic_store(c->consuming, true);
    /* A refused turn comes again after mr_runtime_consume's pause. */
    if (rc != MR_OK)
        mr_log_warn(COMPONENT, "%s", err->msg);
}

/* Handlers only record and queue, so a poll takes many turns at once; answering happens on the
 * turn threads. */
static void consume(agent_node *node)
{
    static const char *const topics[] = {IN_TOPIC, FAILED_TOPIC};
    const mr_runtime_consumer c = {.component = COMPONENT, .group = GROUP, .topics = topics, .n_topics = 2,
                                   .poll_timeout_ms = POLL_TIMEOUT_MS, .batch = POLL_BATCH, .subscribe_retry_ms = 1000,
                                   .handler = on_message, .ctx = node, .consuming = &node->subscribed,
                                   .after_poll = after_poll};
    mr_runtime_consume(node->rt, &c);
}

/* The turn threads' own parts; false (logged) when the config's entities cannot be built. */
static bool threads_init(agent_node *node)
{
    node->threads = calloc(node->n_threads, sizeof *node->threads);
    if (!node->threads) {
        mr_log_error(COMPONENT, "out of memory starting %zu turn threads", node->n_threads);
        return false;
    }
    for (size_t i = 0; i < node->n_threads; i++) {
        if (!agent_svc_init(&node->threads[i], node->rt, &node->self, i == 0))
            return false;
        node->threads[i].mcp = node->mcp;
        node->threads[i].typing_delay_ms = node->typing_delay_ms;
    }
    return agent_svc_init(&node->accepting, node->rt, &node->self, false);
}

static void threads_free(agent_node *node)
{
    for (size_t i = 0; node->threads && i < node->n_threads; i++)
        agent_svc_free(&node->threads[i]);
    free(node->threads);
    agent_svc_free(&node->accepting);
}

static int run(agent_node *node)
{
    mr_err err = {0};
    room_queue_opts qo = {.workers = node->n_threads, .run = run_job, .free_job = job_free, .ctx = node};
    if (room_queue_start(&qo, &node->queue, &err) != MR_OK) {
        mr_log_error(COMPONENT, "%s", err.msg);
        return 1;
    }
    mr_log_info(COMPONENT, "worker %s (boot %s): up to %zu turns at once", node->self.worker_id, node->self.boot,
                node->n_threads);
    pthread_t beat, sched, share;
    bool beating = false, scheduling = false, sharing = false;
    int e = 0;
    if (first_beat(node)) {
        resume_own(node);
        e = pthread_create(&beat, NULL, beat_main, node);
        beating = e == 0;
        if (beating)
            e = pthread_create(&sched, NULL, schedule_main, node);
        scheduling = beating && e == 0;
        if (scheduling && node->sharing)
            e = pthread_create(&share, NULL, share_main, node);
        sharing = scheduling && node->sharing && e == 0;
        if (e) {
            mr_log_error(COMPONENT, "starting the %s thread: %s",
                         !beating ? "heartbeat" : !scheduling ? "schedule" : "sharing", strerror(e));
            /* Ends the heartbeat thread, if it runs. */
            mr_runtime_stop(node->rt);
        } else {
            consume(node);
        }
    }
    if (sharing)
        pthread_join(share, NULL);
    room_queue_stop(node->queue);
    if (scheduling)
        pthread_join(sched, NULL);
    if (beating)
        pthread_join(beat, NULL);
    return e ? 1 : 0;
}

int mr_agent_serve(const mr_runtime *rt)
{
    agent_node *node = calloc(1, sizeof *node);
    if (!node) {
        mr_log_error(COMPONENT, "out of memory starting");
        return 1;
    }
    node->rt = rt;
    node->boot_ms = mr_clock_wall_ms();
    /* A SQLite store belongs to one process: no other replica can take its turns. */
    node->sharing = rt->settings.store_url && strncmp(rt->settings.store_url, "sqlite:", 7) != 0;
    atomic_init(&node->subscribed, false);
    atomic_init(&node->accepted, 0);
    mr_err err = {0};
    int status = 1;
    mr_code rc = read_settings(node, &err);
    if (rc == MR_OK)
        rc = mcp_open(node, &err);
    if (rc == MR_OK)
        rc = mr_http_metrics_counter(rt->metrics, AGENT_METRIC,
                                     "Turns of agent.turns by outcome: answered, routed, silent, skipped, malformed",
                                     &err);
    if (rc == MR_OK)
        rc = mr_runtime_add_check(rt, ready, node, &err);
    if (rc != MR_OK) {
        mr_log_error(COMPONENT, "%s", err.msg);
        mcp_hub_free(node->mcp);
        free(node);
        return rc == MR_EINVAL ? 2 : 1;
    }
    if (threads_init(node))
        status = run(node);
    mr_runtime_remove_check(rt, ready, node);
    threads_free(node);
    mcp_hub_free(node->mcp);
    free(node);
    return status;
}
