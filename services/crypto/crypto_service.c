/* crypto_service.c -- the consume, convert, publish loop of mindroom-crypto (see crypto_service.h). */
#include "crypto_service.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_internal.h"
#include "mindroom/clock.h"
#include "mindroom/msg.h"

#define COMPONENT "crypto"
#define TOPIC_INBOUND "matrix.inbound"
#define TOPIC_TODEVICE "matrix.todevice"
#define TOPIC_OUTBOUND "matrix.outbound"
#define TOPIC_CLEARTEXT "matrix.cleartext"
#define TOPIC_KEYS "matrix.keys"
/* How often events that wait for keys are checked against CRYPTO_KEY_WAIT_MS, and parked outbound
 * messages for a key request that went unanswered. */
#define SWEEP_EVERY_MS 5000
#define GROUP "crypto"
#define FLUSH_TIMEOUT_MS 30000
#define POLL_TIMEOUT_MS 500
#define POLL_BATCH 64
#define METRIC "mindroom_crypto_messages_total"

typedef struct crypto_service {
    const mr_runtime *rt;
    crypto_engine engine;    /* devices, sessions, waiting events */
    long long next_sweep_ms;
    atomic_bool subscribed;  /* for /readyz */
} crypto_service;

static void count(const crypto_service *svc, const char *topic, const char *outcome)
{
    const char *labels[] = {"topic", topic, "outcome", outcome, NULL};
    mr_http_metrics_inc(svc->rt->metrics, METRIC, labels, 1);
}

static void log_malformed(const mr_bus_msg *m, const mr_err *why)
{
    const char *fields[] = {"topic", m->topic, "id", m->id, "reason", why->msg, NULL};
    mr_log_write(MR_LOG_WARN, COMPONENT, fields, "dropping a message that breaks its schema");
}

/* Publishes text under key so that acknowledging the input after this never loses it. Only the
 * acknowledgement follows, so on `mindroom run`'s journal nothing waits for the disk here: the
 * next message (often the answer on its way out) is not held up behind the fsyncs. */
static mr_code forward(crypto_service *svc, const char *topic, const char *key, const char *text, mr_err *err)
{
    mr_code rc = mr_bus_publish(svc->rt->bus, topic, key, text, strlen(text), err);
    if (rc == MR_OK)
        rc = mr_bus_flush_for_ack(svc->rt->bus, FLUSH_TIMEOUT_MS, err);
    return rc;
}

/* Publishes what the engine produced, then lets the engine write what that output settled, so
 * acknowledging the input after this never loses it: the engine's writes wait for the bus to hold
 * the output; without any (a cleartext room's send, a typing notice) only the acknowledgement
 * follows, which on `mindroom run`'s journal need not wait for the disk, so the answer behind a
 * typing notice is not held up by its fsyncs. */
static mr_code publish_out(crypto_service *svc, json_t *out, mr_err *err)
{
    size_t i;
    json_t *o;
    mr_code rc = MR_OK;
    json_array_foreach(out, i, o) {
        if (!json_object_get(o, "msg"))
            continue;
        char *text = json_dumps(json_object_get(o, "msg"), JSON_COMPACT);
        rc = text ? mr_bus_publish(svc->rt->bus, mr_msg_string(o, "topic"), mr_msg_string(o, "key"), text,
                                   strlen(text), err)
                  : mr_err_set(err, MR_ENOMEM, "out of memory publishing");
        free(text);
        if (rc != MR_OK)
            return rc;
    }
    if (!crypto_engine_commit_writes(out))
        return json_array_size(out) ? mr_bus_flush_for_ack(svc->rt->bus, FLUSH_TIMEOUT_MS, err) : MR_OK;
    if ((rc = mr_bus_flush(svc->rt->bus, FLUSH_TIMEOUT_MS, err)) != MR_OK)
        return rc;
    return crypto_engine_commit(&svc->engine, out, err);
}

static mr_code on_inbound(crypto_service *svc, const mr_bus_msg *m, mr_err *err)
{
    crypto_inbound in;
    mr_err perr = {0};
    if (crypto_inbound_parse(m->value, m->len, &in, &perr) != MR_OK) {
        log_malformed(m, &perr);
        count(svc, m->topic, "malformed");
        return MR_OK;
    }
    /* What the room's state says is noted before anything of the room is sent on. */
    mr_code rc = crypto_room_observe(&svc->engine, &in, err);
    if (rc != MR_OK) {
        crypto_inbound_free(&in);
        return rc;
    }
    if (in.encrypted) {
        json_t *out = json_array();
        rc = out ? crypto_engine_room_event(&svc->engine, &in, m->value, m->len, out, err)
                 : mr_err_set(err, MR_ENOMEM, "out of memory decrypting %s", in.event_id);
        if (rc == MR_OK)
            rc = publish_out(svc, out, err);
        if (rc == MR_OK)
            count(svc, m->topic, json_array_size(out) ? "decrypted" : "waiting_or_refused");
        json_decref(out);
    } else {
        char *text = crypto_cleartext_build(&in);
        rc = text ? forward(svc, TOPIC_CLEARTEXT, in.room_id, text, err)
                  : mr_err_set(err, MR_ENOMEM, "out of memory forwarding %s", in.event_id);
        free(text);
        if (rc == MR_OK)
            count(svc, m->topic, "forwarded");
    }
    crypto_inbound_free(&in);
    return rc;
}

typedef mr_code (*engine_input)(crypto_engine *e, const char *value, size_t len, json_t *out, mr_err *err);

/* matrix.outbound, matrix.todevice and matrix.keys go to the engine. */
static mr_code on_engine_input(crypto_service *svc, const mr_bus_msg *m, engine_input input, mr_err *err)
{
    json_t *out = json_array();
    if (!out)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading %s", m->topic);
    mr_err perr = {0};
    mr_code rc = input(&svc->engine, m->value, m->len, out, &perr);
    if (rc != MR_OK && !crypto_retry(rc)) {
        log_malformed(m, &perr);
        count(svc, m->topic, "malformed");
        rc = MR_OK;
    } else if (rc != MR_OK) {
        *err = perr;
    } else if ((rc = publish_out(svc, out, err)) == MR_OK) {
        count(svc, m->topic, "handled");
    }
    json_decref(out);
    return rc;
}

static mr_code on_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    crypto_service *svc = ctx;
    if (strcmp(m->topic, TOPIC_INBOUND) == 0)
        return on_inbound(svc, m, err);
    if (strcmp(m->topic, TOPIC_OUTBOUND) == 0)
        return on_engine_input(svc, m, crypto_engine_outbound, err);
    if (strcmp(m->topic, TOPIC_KEYS) == 0)
        return on_engine_input(svc, m, crypto_engine_keys_reply, err);
    return on_engine_input(svc, m, crypto_engine_todevice, err);
}

/* The default judgement of a poll, and now and then the sweep of events that waited too long. */
static void after_poll(const mr_runtime *rt, const mr_runtime_consumer *c, mr_bus_consumer *bc, mr_code rc,
                       const mr_err *perr)
{
    (void)bc;
    crypto_service *svc = c->ctx;
    if (rc == MR_OK)
        atomic_store(c->consuming, true);
    else
        mr_log_warn(COMPONENT, "%s", perr->msg);
    long long now = mr_clock_mono_ms();
    if (rc != MR_OK || now < svc->next_sweep_ms)
        return;
    svc->next_sweep_ms = now + SWEEP_EVERY_MS;
    json_t *out = json_array();
    mr_err err = {0};
    long long wall = mr_clock_wall_ms();
    mr_code src = out ? crypto_pending_sweep(&svc->engine, wall, out, &err)
                      : mr_err_set(&err, MR_ENOMEM, "out of memory sweeping waiting events");
    if (src == MR_OK)
        src = crypto_outbound_sweep(&svc->engine, wall, out, &err);
    if (src == MR_OK)
        src = publish_out(svc, out, &err);
    if (src != MR_OK && !mr_runtime_stopping(rt))
        mr_log_warn(COMPONENT, "checking the events and messages that wait for keys: %s", err.msg);
    json_decref(out);
}

static bool ready(void *ctx, char *why, size_t cap)
{
    const crypto_service *svc = ctx;
    if (atomic_load(&svc->subscribed))
        return true;
    snprintf(why, cap, "crypto: not yet consuming %s, %s, %s and %s", TOPIC_INBOUND, TOPIC_OUTBOUND, TOPIC_TODEVICE,
             TOPIC_KEYS);
    return false;
}

static void consume(crypto_service *svc)
{
    static const char *const topics[] = {TOPIC_INBOUND, TOPIC_OUTBOUND, TOPIC_TODEVICE, TOPIC_KEYS};
    const mr_runtime_consumer c = {.component = COMPONENT, .group = GROUP, .topics = topics, .n_topics = 4,
                                   .poll_timeout_ms = POLL_TIMEOUT_MS, .batch = POLL_BATCH,
                                   .subscribe_retry_ms = 1000, .handler = on_message, .ctx = svc,
                                   .consuming = &svc->subscribed, .after_poll = after_poll};
    mr_runtime_consume(svc->rt, &c);
}

int mr_crypto_serve(const mr_runtime *rt)
{
    crypto_service *svc = calloc(1, sizeof *svc);
    if (!svc) {
        mr_log_error(COMPONENT, "out of memory starting");
        return 1;
    }
    svc->rt = rt;
    atomic_init(&svc->subscribed, false);
    mr_err err = {0};
    if (crypto_engine_init(&svc->engine, rt->store, rt->settings.secret, rt->settings.secret_len, &err) != MR_OK ||
        mr_http_metrics_counter(rt->metrics, METRIC,
                                "Messages by topic and outcome: forwarded, decrypted, waiting_or_refused, handled, "
                                "malformed",
                                &err) != MR_OK ||
        mr_runtime_add_check(rt, ready, svc, &err) != MR_OK) {
        mr_log_error(COMPONENT, "%s", err.msg);
        crypto_engine_free(&svc->engine);
        free(svc);
        return 1;
    }
    consume(svc);
    mr_runtime_remove_check(rt, ready, svc);
    crypto_engine_free(&svc->engine);
    free(svc);
    return 0;
}
