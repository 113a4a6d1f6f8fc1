/* provisioning.h -- mindroom-provisioning: pairs local MindRoom installs with a Matrix account and
 * registers their agent accounts on the homeserver.
 *
 * The HTTP API (every error body is {"detail": "..."}, whose text starts with the reference
 * product's message, e.g. "Pair code expired", and goes on with what to do about it):
 *   POST   /v1/local-mindroom/pair/start         browser: a pair code ABCD-EFGH for the caller
 *   GET    /v1/local-mindroom/pair/status        browser + X-Local-MindRoom-Pair-Session-Id
 *   POST   /v1/local-mindroom/pair/complete      no auth: the code buys client credentials
 *   GET    /v1/local-mindroom/connections        browser: the caller's connections
 *   DELETE /v1/local-mindroom/connections/{id}   browser, owner only: revoke
 *   POST   /v1/local-mindroom/register-agent     local client: register a namespaced account
 *   GET    /healthz, /readyz (store reachable), /metrics (Prometheus)
 *   GET    /local-mindroom/                      the pairing page (page.c), / redirects there
 * A request body must be JSON (Content-Type: application/json), else 415. Rate limits are
 * sliding 60 s windows (rate_limit.c); a 429 carries Retry-After.
 * Browser auth is a Matrix access token (Authorization: Bearer, or X-Matrix-Access-Token)
 * checked with the homeserver's whoami; local client auth is X-Local-MindRoom-Client-Id/-Secret.
 *
 * All state is in the store (proto/store.md, "Pairing"), so replicas behind one load balancer
 * share it and a restart loses nothing: codes and secrets only as SHA-256 digests, claims by
 * compare-and-set, rate limits as store counters. */
#ifndef MINDROOM_PROVISIONING_H
#define MINDROOM_PROVISIONING_H

#include <stddef.h>
#include "mindroom/err.h"
#include "mindroom/runtime.h"

#define MR_PROVISIONING_DEFAULT_LISTEN "127.0.0.1:8776"
#define MR_PROVISIONING_MIN_TTL_S 30

/* The service's own settings (--listen, logging and MINDROOM_STORE_URL are the runtime's). Each
 * comes from the environment variable named in the comment, else the default; an empty
 * variable counts as unset. */
typedef struct mr_provisioning_settings {
    char *homeserver;         /* MATRIX_HOMESERVER; required, http(s)://, no trailing '/' */
    char *server_name;        /* MATRIX_SERVER_NAME; default the homeserver's host */
    char *registration_token; /* MATRIX_REGISTRATION_TOKEN, else the first line of the file
                                 named by MATRIX_REGISTRATION_TOKEN_FILE; required */
    long pair_ttl_s;          /* MINDROOM_PROVISIONING_PAIR_TTL_SECONDS; 600, at least 30 */
    long poll_interval_s;     /* MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS; 3, 1..300 */
    /* MINDROOM_PROVISIONING_TRUSTED_PROXIES: comma-separated IP addresses. Only a request whose
     * TCP peer is one of them has its X-Forwarded-For read for the client address of rate
     * limits; by default none, so the TCP peer is the client and the header is ignored. */
    char **trusted_proxies;
    size_t n_trusted_proxies;
    /* MINDROOM_PROVISIONING_CORS_ORIGINS: comma-separated origins of the chat web app allowed
     * to call the API from a browser; https://chat.mindroom.chat by default. */
    char **cors_origins;
    size_t n_cors_origins;
} mr_provisioning_settings;

/* MR_EINVAL with a message that starts with the setting's name when one is missing or invalid
 * (never quoting a secret). Frees nothing on failure: call mr_provisioning_settings_free. */
mr_code mr_provisioning_settings_resolve(mr_provisioning_settings *out, mr_err *err);
/* Frees every field, wiping the registration token first. */
void mr_provisioning_settings_free(mr_provisioning_settings *s);

/* mr_service_def.check_settings: resolves the settings above and drops them. */
mr_code mr_provisioning_check_settings(const mr_runtime *rt, mr_err *err);
/* mr_service_def.serve: opens the store connections, installs the API on the runtime's
 * --listen server and answers until the runtime stops. */
int mr_provisioning_serve(const mr_runtime *rt);
/* mr_service_def.http_error_reply: libs/http's own error answers (400, 413, 500) as
 * {"detail": message}. */
mr_http_response *mr_provisioning_error_reply(int status, const char *message);

#endif
