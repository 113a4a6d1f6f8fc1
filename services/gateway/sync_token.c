/* sync_token.c -- an account's saved sync token (sync:<account> in the store), written once
 * every event its batch published is durable on the bus (mr_bus_when_durable), so the sync
 * loop starts its next /sync without waiting for the disk. On the journaled in-process bus the
 * journal's writer saves it after the commit; a failed commit saves nothing until a later one
 * succeeds. Saves of one account can finish out of order (a save whose batch was committed
 * already runs on the caller while the writer still runs an earlier one), so each carries its
 * round's number and an earlier round never overwrites a later round's token. */
#include "gateway_internal.h"
#include "mindroom/log.h"
#include "mindroom/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gw_sync_token {
    pthread_mutex_t mu;
    int refs;              /* the loop's and one per save in flight */
    mr_store *store;
    char key[MR_MATRIX_ID_SIZE + 16];
    unsigned long long asked, saved; /* round numbers: of the last save asked for, last saved */
};

typedef struct token_save {
    gw_sync_token *t;
    unsigned long long round;
    char token[];
} token_save;

gw_sync_token *gw_sync_token_new(mr_store *store, const char *user_id)
{
    gw_sync_token *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    t->refs = 1;
    t->store = store;
    snprintf(t->key, sizeof t->key, "sync:%s", user_id);
    return t;
}

void gw_sync_token_release(gw_sync_token *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

mr_code gw_sync_token_load(gw_sync_token *t, char **token, mr_err *err)
{
    size_t len;
    mr_code rc = mr_store_get(t->store, t->key, token, &len, err);
    if (rc == MR_ENOTFOUND) {
        *token = NULL;
        return MR_OK;
    }
    return rc;
}

/* Runs once the batch is durable (or never will be: the bus closed first). The store write is
 * under the mutex so that two rounds' saves cannot cross. */
static void on_durable(void *ctx, bool durable)
{
    token_save *s = ctx;
    gw_sync_token *t = s->t;
    pthread_mutex_lock(&t->mu);
    if (durable && s->round > t->saved) {
        mr_err err = {0};
        if (mr_store_set(t->store, t->key, s->token, strlen(s->token), 0, &err) == MR_OK)
            t->saved = s->round;
        else
            mr_log_warn(GW, "saving %s: %s; a crash now replays the batches since the last token saved",
                        t->key, err.msg);
    }
    pthread_mutex_unlock(&t->mu);
    free(s);
    gw_sync_token_release(t);
}

mr_code gw_sync_token_save(gw_sync_token *t, mr_bus *bus, const char *token, mr_err *err)
{
    size_t len = strlen(token);
    token_save *s = malloc(sizeof *s + len + 1);
    if (!s)
        return mr_err_set(err, MR_ENOMEM, "out of memory saving %s", t->key);
    memcpy(s->token, token, len + 1);
    s->t = t;
    pthread_mutex_lock(&t->mu);
    t->refs++;
    s->round = ++t->asked;
    pthread_mutex_unlock(&t->mu);
    return mr_bus_when_durable(bus, GW_FLUSH_TIMEOUT_MS, on_durable, s, err);
}
