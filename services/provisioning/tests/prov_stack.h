/* prov_stack.h -- the peers of provisioning tests: redis-server, the test homeserver and
 * mindroom-provisioning processes, plus small HTTP helpers. Shared with the CLI's connect tests. */
#ifndef MINDROOM_PROV_STACK_H
#define MINDROOM_PROV_STACK_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "hs_peer.h"
#include "mindroom/err.h"
#include "peers.h"

#define PROV_TEST_REG_TOKEN "reg-token-Zq8vX2"

typedef struct prov_stack {
    mr_tp_redis redis;
    mr_hs_peer hs;   /* started with PROV_TEST_REG_TOKEN */
    char dir[256];   /* logs of the provisioning processes */
} prov_stack;

typedef struct prov_proc {
    pid_t pid;
    int port;
    char url[64];    /* "http://127.0.0.1:<port>" */
    char log[320];
} prov_proc;

mr_code prov_stack_start(prov_stack *st, mr_err *err);
/* Stops everything; MR_OK only when the homeserver exited cleanly. */
mr_code prov_stack_stop(prov_stack *st, mr_err *err);

/* Starts $MINDROOM_PROVISIONING_BIN with the stack's settings plus extra "K=V" entries
 * (NULL-terminated, may be NULL) on `port` (0: the kernel picks), logging to <dir>/<name>.log,
 * and waits until /healthz answers. */
mr_code prov_proc_start(const prov_stack *st, const char *name, int port, const char *const *extra_env,
                        prov_proc *out, mr_err *err);
/* SIGTERM and wait; MR_OK only for exit status 0 (so sanitizer reports fail the test). */
mr_code prov_proc_stop(prov_proc *p, mr_err *err);

/* Runs the provisioning binary with exactly the variables of env (plus PATH and sanitizer
 * options) and the arguments, and waits: its exit status and stderr (malloc'd). */
int prov_run_binary(const char *const *env, const char *const *args, char **stderr_text);

typedef struct prov_reply {
    long status;
    json_t *json;        /* NULL for a non-JSON body */
    long retry_after;    /* -1 when absent */
    char allow_origin[128]; /* Access-Control-Allow-Origin, "" when absent */
} prov_reply;

/* One request; headers are "Name: value" lines (NULL-terminated, may be NULL); body may be NULL. */
prov_reply prov_call(const char *base, const char *method, const char *path, const char *const *headers,
                     const char *body);
void prov_reply_clear(prov_reply *r);
/* r.json's "detail" string, or "" */
const char *prov_detail(const prov_reply *r);

/* Registers a Matrix user on the stack's homeserver; its access token into token. */
mr_code prov_matrix_user(const prov_stack *st, const char *localpart, char *token, size_t cap, mr_err *err);

/* POST pair/start as the user; the code and session ID (each at least 64 bytes). */
mr_code prov_pair_start(const prov_proc *p, const char *token, char *code, char *session, mr_err *err);

/* The whole file, or NULL. */
char *prov_slurp(const char *path);

/* Every key of the stack's Redis with its value or hash fields, one per line (redis-cli). */
char *prov_redis_dump(const prov_stack *st);

#endif
