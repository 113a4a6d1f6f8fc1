/* send_failed.c -- when the gateway gives up on part of an answer (send_failure on
 * matrix.send_failed), the person gets one short notice in the answer's thread instead of a
 * message that never arrives; a notice that fails too is only logged, so nothing loops. */
#include "agent_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/str.h"

#define COMPONENT "agent"
#define NOTICE_KIND "n"
#define NOTICE_TEXT "I could not deliver part of my answer: "

/* `answer:<txn_prefix>`, the prefix being "mr<hash>." that every transaction ID of one answer
 * starts with (txn.c). */
static void answer_key(const char *prefix, size_t len, char key[TXN_MAX + 8])
{
    snprintf(key, TXN_MAX + 8, "answer:%.*s", (int)len, prefix);
}

mr_code delivery_record(const char *event_id, const char *entity, const char *account, const char *room_id,
                        const char *thread_root, char key[TXN_MAX + 8], char **value, mr_err *err)
{
    char prefix[TXN_MAX];
    txn_id(event_id, entity, "", -1, prefix);
    answer_key(prefix, strlen(prefix), key);
    json_t *where = json_pack("{s:s, s:s, s:s, s:s, s:s?}", "event_id", event_id, "entity", entity, "account", account,
                              "room_id", room_id, "thread_root", thread_root);
    *value = where ? json_dumps(where, JSON_COMPACT) : NULL;
    json_decref(where);
    return *value ? MR_OK
                  : mr_err_set(err, MR_ENOMEM, "out of memory recording where the answer to %s goes", event_id);
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static mr_code notify(const mr_runtime *rt, json_t *failure, json_t *where, const char *prefix, mr_err *err)
{
    const char *errcode = str(failure, "errcode");
    char *text = errcode && errcode[0] ? mr_str_printf(NOTICE_TEXT "%s (%s)", str(failure, "reason"), errcode)
                                       : mr_str_printf(NOTICE_TEXT "%s", str(failure, "reason"));
    reply_where to = {.room_id = str(where, "room_id"), .trigger = str(where, "event_id"),
                      .thread_root = str(where, "thread_root")};
    json_t *content = text ? reply_content(text, &to) : NULL;
    free(text);
    char txn[TXN_MAX + 1];
    snprintf(txn, sizeof txn, "%s" NOTICE_KIND, prefix);
    char *intent = content ? reply_send_intent(str(where, "account"), to.room_id, txn, NULL, to.trigger, content) : NULL;
    json_decref(content);
    return agent_publish_now(rt, to.room_id, intent, err);
}

mr_code delivery_failed(const mr_runtime *rt, const char *msg, size_t len, mr_err *err)
{
    json_t *f = json_loadb(msg, len, 0, NULL);
    const char *txn = str(f, "txn_id"), *dot = txn ? strchr(txn, '.') : NULL;
    const char *fields[] = {"txn_id", txn ? txn : "", "reason", str(f, "reason") ? str(f, "reason") : "", NULL};
    if (!str(f, "room_id") || !str(f, "reason") || !str(f, "errcode") || !dot || strncmp(txn, "mr", 2) != 0 ||
        (size_t)(dot - txn + 1) >= TXN_MAX) {
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "dropping a send_failure of no answer of ours");
        json_decref(f);
        return MR_OK;
    }
    if (strcmp(dot + 1, NOTICE_KIND) == 0) {
        mr_log_write(MR_LOG_ERROR, COMPONENT, fields, "the notice of an undelivered answer could not be delivered either");
        json_decref(f);
        return MR_OK;
    }
    char prefix[TXN_MAX], key[TXN_MAX + 8], *stored = NULL;
    size_t plen = (size_t)(dot - txn + 1), slen = 0;
    snprintf(prefix, sizeof prefix, "%.*s", (int)plen, txn);
    answer_key(prefix, plen, key);
    mr_code rc = mr_store_get(rt->store, key, &stored, &slen, err);
    json_t *where = rc == MR_OK ? json_loadb(stored, slen, 0, NULL) : NULL;
    free(stored);
    if (rc == MR_ENOTFOUND || (rc == MR_OK && (!str(where, "room_id") || !str(where, "event_id") || !str(where, "account")))) {
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "an undelivered send of an answer this store does not know");
        rc = MR_OK;
    } else if (rc == MR_OK) {
        rc = notify(rt, f, where, prefix, err);
        if (rc == MR_OK)
            mr_log_write(MR_LOG_WARN, COMPONENT, fields, "part of an answer was not delivered: told the person");
    }
    json_decref(where);
    json_decref(f);
    return rc;
}
