/* commit_hold.h -- the in-process bus journal's writer held before its commit, as on a disk
 * whose fsyncs stall: a test sees what goes on while nothing can commit. The hold takes the
 * journal's before-commit hook, which syncs the store first as `mindroom run`'s does. */
#ifndef MINDROOM_TEST_COMMIT_HOLD_H
#define MINDROOM_TEST_COMMIT_HOLD_H

#include <pthread.h>
#include <stdbool.h>

#include "mindroom/bus.h"
#include "mindroom/runtime.h"
#include "mindroom/store.h"

typedef struct mr_tp_commit_hold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mr_store *store;
    bool hold;
    int held; /* commits waiting at the hold */
    int (*serve)(const mr_runtime *rt); /* the service under test, on its own thread */
    const mr_runtime *rt;
    pthread_t service;
    bool serving;
} mr_tp_commit_hold;

#define MR_TP_COMMIT_HOLD_INIT {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}

/* For a group setup: opens the runtime as `mindroom run` would (MINDROOM_BUS_URL and
 * MINDROOM_STORE_URL unset: the journaled in-process bus and the SQLite store under the storage
 * path) and takes its journal's before-commit hook, before anything is published. 0, or -1
 * after saying on stderr why not. */
int mr_tp_commit_hold_open(mr_tp_commit_hold *h, const mr_runtime_opts *ro, mr_runtime **rt);
/* Holds the next commit at the hook, or lets every held one go. */
void mr_tp_commit_hold_set(mr_tp_commit_hold *h, bool on);
/* The number of commits waiting at the hold once one does, or 0 after timeout_ms. While one
 * waits, every earlier commit's mr_bus_when_durable functions have run. */
int mr_tp_commit_hold_wait(mr_tp_commit_hold *h, int timeout_ms);
/* The value at key in rt's store (caller frees), NULL when there is none; a store error fails
 * the running test, naming what was read. */
char *mr_tp_stored(const mr_runtime *rt, const char *key, const char *what);
/* Runs serve(rt) (a service's serve loop) on a thread of its own; 0, or -1 after saying why
 * on stderr. */
int mr_tp_commit_hold_serve(mr_tp_commit_hold *h, const mr_runtime *rt, int (*serve)(const mr_runtime *rt));
/* For a group teardown: lets every held commit go, stops rt, joins the service's thread when it
 * was started, then closes the test's consumer (NULL: none) and rt (NULL: not opened). */
void mr_tp_commit_hold_close(mr_tp_commit_hold *h, mr_runtime *rt, mr_bus_consumer *consumer);

#endif
