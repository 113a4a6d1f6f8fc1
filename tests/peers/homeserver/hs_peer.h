/* hs_peer.h -- starting the test homeserver (mr-test-homeserver) from tests. */
#ifndef MINDROOM_TEST_HS_PEER_H
#define MINDROOM_TEST_HS_PEER_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>
#include "mindroom/err.h"

typedef struct mr_hs_peer_opts {
    const char *server_name;        /* NULL: "localhost" */
    const char *registration_token; /* NULL: no token stage */
    int registration_token_uses;    /* 0: unlimited */
    bool registration_token_expired;
    bool registration_rate_limit;   /* Synapse's default rc_registration on /register */
    const char *shared_secret;      /* NULL: no admin registration */
    bool open_registration;
    const char *appservice_token;   /* NULL: no application service */
} mr_hs_peer_opts;

typedef struct mr_hs_peer {
    pid_t pid;
    int port;
    char url[64];    /* "http://127.0.0.1:<port>" */
    char dir[256];   /* temp dir holding homeserver.log */
    char log[300];
} mr_hs_peer;

/* Starts the homeserver on a free loopback port and waits for its "listening on" line.
 * opts may be NULL. */
mr_code mr_hs_peer_start(const mr_hs_peer_opts *opts, mr_hs_peer *hs, mr_err *err);
/* Whether the homeserver has the account user_id (its /_test/state), in *exists. */
mr_code mr_hs_peer_has_user(const mr_hs_peer *hs, const char *user_id, bool *exists, mr_err *err);
/* Whether user_id is among the typing users of room_id in sync, a client's /sync response
 * (without since, the room's typing users as they are now). */
bool mr_hs_peer_sync_typing(json_t *sync, const char *room_id, const char *user_id);
/* Stops it with SIGTERM and removes its dir. Fails (naming the log) when the homeserver did
 * not exit cleanly, e.g. a sanitizer found a leak or an error in it. */
mr_code mr_hs_peer_stop(mr_hs_peer *hs, mr_err *err);

#endif
