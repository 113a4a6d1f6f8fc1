/* peer_main.h -- the main every test peer shares (mr-test-homeserver, mr-model-stub,
 * mr-test-kube-api): flags, the HTTP server, 'listening on URL' as the first line of output, and
 * a clean stop on SIGTERM or SIGINT. */
#ifndef MR_PEER_MAIN_H
#define MR_PEER_MAIN_H

#include <getopt.h>

#include "mindroom/err.h"
#include "mindroom/http.h"

typedef struct mr_peer_def {
    const char *prog;  /* names the peer in every message */
    const char *usage; /* for --help (stdout, exit 0) and a bad flag (stderr, exit 2) */
    /* The peer's own flags, ended by a zero entry: --listen (default 127.0.0.1:0, a free port)
     * and --help are every peer's; 'l' and 'h' are theirs. */
    const struct option *flags;
    /* One of flags with its value (NULL for no_argument); MR_EINVAL ends with exit 2. */
    mr_code (*flag)(void *ctx, int ch, const char *value, mr_err *err);
    /* After the flags: checks them together and prepares the peer, which will listen on listen.
     * MR_EINVAL ends with exit 2, anything else with 1. */
    mr_code (*ready)(void *ctx, const char *listen, mr_err *err);
    mr_http_server_opts server; /* body and connection limits; listen comes from --listen */
    mr_http_handler handler; /* called with ctx */
    /* Ends the waits handlers are in (long polls, stalls) so the server can stop; may be NULL. */
    void (*wake)(void *ctx);
} mr_peer_def;

/* Runs the peer until SIGTERM or SIGINT; the exit code: 0 after a clean stop or --help, 2 for a
 * bad flag, 1 when it could not start (each after a line on stderr saying why). The caller
 * frees what ctx holds. */
int mr_peer_main(int argc, char **argv, const mr_peer_def *def, void *ctx);

#endif
