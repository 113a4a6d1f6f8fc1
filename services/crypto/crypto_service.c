/* crypto_service.c -- the consume, convert, publish loop of mindroom-crypto (see crypto_service.h). */
#include "crypto_service.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_internal.h"

#define COMPONENT "crypto"
#define TOPIC_INBOUND "matrix.inbound"
#define TOPIC_TODEVICE "matrix.todevice"
#define TOPIC_OUTBOUND "matrix.outbound"
#define TOPIC_CLEARTEXT "matrix.cleartext"
#define TOPIC_SEND "matrix.send"
#define GROUP "crypto"
#define FLUSH_TIMEOUT_MS 30000
#define POLL_TIMEOUT_MS 500
#define POLL_BATCH 64
#define METRIC "mindroom_crypto_messages_total"

typedef struct crypto_service {
    const mr_runtime *rt;
    crypto_seen seen;        /* sessions already reported as undecryptable */
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

/* Publishes text under key and waits until the bus holds it, so acknowledging the input after
 * this never loses it. */
static mr_code forward(crypto_service *svc, const char *topic, const char *key, const char *text, mr_err *err)
{
    mr_code rc = mr_bus_publish(svc->rt->bus, topic, key, text, strlen(text), err);
    if (rc == MR_OK)
        rc = mr_bus_flush(svc->rt->bus, FLUSH_TIMEOUT_MS, err);
    return rc;
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
    mr_code rc = MR_OK;
    if (in.encrypted) {
        if (crypto_seen_first(&svc->seen, in.room_id, in.session_id)) {
            const char *fields[] = {"room_id", in.room_id, "session_id", in.session_id, "event_id", in.event_id,
                                    NULL};
            mr_log_write(MR_LOG_WARN, COMPONENT, fields,
                         "cannot decrypt yet: end-to-end encryption arrives with the crypto service");
        }
        count(svc, m->topic, "undecryptable");
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

static mr_code on_outbound(crypto_service *svc, const mr_bus_msg *m, mr_err *err)
{
    char *text = NULL, *key = NULL;
    mr_err perr = {0};
    mr_code rc = crypto_send_build(m->value, m->len, &text, &key, &perr);
    if (rc == MR_ENOMEM) {
        *err = perr;
        return rc;
    }
    if (rc != MR_OK) {
        log_malformed(m, &perr);
        count(svc, m->topic, "malformed");
        return MR_OK;
    }
    rc = forward(svc, TOPIC_SEND, key, text, err);
    if (rc == MR_OK)
        count(svc, m->topic, "forwarded");
    free(text);
    free(key);
    return rc;
}

static mr_code on_message(void *ctx, const mr_bus_msg *m, mr_err *err)
{
    crypto_service *svc = ctx;
    if (strcmp(m->topic, TOPIC_INBOUND) == 0)
        return on_inbound(svc, m, err);
    if (strcmp(m->topic, TOPIC_OUTBOUND) == 0)
        return on_outbound(svc, m, err);
    /* matrix.todevice: no Olm sessions to feed yet. */
    count(svc, m->topic, "ignored");
    return MR_OK;
}

static bool ready(void *ctx, char *why, size_t cap)
{
    const crypto_service *svc = ctx;
    if (atomic_load(&svc->subscribed))
        return true;
    snprintf(why, cap, "crypto: not yet consuming %s, %s and %s", TOPIC_INBOUND, TOPIC_OUTBOUND, TOPIC_TODEVICE);
    return false;
}

static void consume(crypto_service *svc)
{
    static const char *const topics[] = {TOPIC_INBOUND, TOPIC_OUTBOUND, TOPIC_TODEVICE};
    const mr_runtime_consumer c = {.component = COMPONENT, .group = GROUP, .topics = topics, .n_topics = 3,
                                   .poll_timeout_ms = POLL_TIMEOUT_MS, .batch = POLL_BATCH,
                                   .subscribe_retry_ms = 1000, .handler = on_message, .ctx = svc,
                                   .consuming = &svc->subscribed};
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
    if (mr_http_metrics_counter(rt->metrics, METRIC,
                                "Messages by topic and outcome: forwarded, undecryptable, ignored, malformed",
                                &err) != MR_OK ||
        mr_runtime_add_check(rt, ready, svc, &err) != MR_OK) {
        mr_log_error(COMPONENT, "%s", err.msg);
        free(svc);
        return 1;
    }
    consume(svc);
    mr_runtime_remove_check(rt, ready, svc);
    crypto_seen_free(&svc->seen);
    free(svc);
    return 0;
}
