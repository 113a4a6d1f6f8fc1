/* main.c -- mr-test-homeserver: a Matrix homeserver fixture for tests, serving the
 * client-server endpoints the project uses from memory. */
#include "hs.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Connections served at once; the open file limit is raised to fit them. */
#define HS_MAX_CONNECTIONS 4096u

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mr-test-homeserver [--listen HOST:PORT] [--server-name NAME]\n"
            "                          [--registration-token T [--registration-token-uses N]\n"
            "                           [--registration-token-expired]] [--open-registration]\n"
            "                          [--registration-rate-limit] [--shared-secret S]\n"
            "                          [--nonce-ttl-ms MS] [--appservice-token T]\n"
            "Serves the Matrix client-server API from memory for tests, as Synapse answers it.\n"
            "Prints 'listening on http://HOST:PORT' as its first line; stops on SIGTERM or SIGINT.\n"
            "  --listen              address to bind (default 127.0.0.1:0, a free port)\n"
            "  --server-name         domain of user IDs, room IDs and aliases (default localhost)\n"
            "  --registration-token  require this registration token: every flow starts with\n"
            "                        m.login.registration_token (Synapse's\n"
            "                        registration_requires_token)\n"
            "  --registration-token-uses  the token's uses_allowed (default unlimited)\n"
            "  --registration-token-expired  the token's expiry_time has passed\n"
            "  --open-registration   anyone may register with m.login.dummy; with a token too,\n"
            "                        the token is a second flow (Synapse's\n"
            "                        enable_registration_token_3pid_bypass)\n"
            "  --registration-rate-limit  Synapse's default rc_registration (0.17/s, burst 3)\n"
            "  --shared-secret       enable POST /_synapse/admin/v1/register with this secret\n"
            "  --nonce-ttl-ms        how long an admin registration nonce lasts (default 60000)\n"
            "  --appservice-token    accept m.login.application_service registration and login\n"
            "                        from an application service holding this token\n");
}

/* A whole decimal number in [min, max], or -1 (after a message naming the flag). */
static long long number_arg(const char *flag, const char *v, long long min, long long max)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        fprintf(stderr, "mr-test-homeserver: %s takes a number from %lld to %lld, not '%s'\n",
                flag, min, max, v);
        return -1;
    }
    return n;
}

static int parse_args(int argc, char **argv, hs_opts *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"server-name", required_argument, NULL, 'n'},
        {"registration-token", required_argument, NULL, 't'},
        {"registration-token-uses", required_argument, NULL, 'u'},
        {"registration-token-expired", no_argument, NULL, 'x'},
        {"registration-rate-limit", no_argument, NULL, 'r'},
        {"shared-secret", required_argument, NULL, 's'},
        {"nonce-ttl-ms", required_argument, NULL, 'N'},
        {"open-registration", no_argument, NULL, 'o'},
        {"appservice-token", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (hs_opts){.listen = "127.0.0.1:0", .server_name = "localhost", .nonce_ttl_ms = 60000};
    int ch;
    long long n;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l': o->listen = optarg; break;
        case 'n': o->server_name = optarg; break;
        case 't': o->registration_token = optarg; break;
        case 'u':
            if ((n = number_arg("--registration-token-uses", optarg, 1, INT_MAX)) < 0)
                return 2;
            o->registration_token_uses = (int)n;
            break;
        case 'x': o->registration_token_expired = true; break;
        case 'r': o->registration_rate_limit = true; break;
        case 's': o->shared_secret = optarg; break;
        case 'N':
            if ((n = number_arg("--nonce-ttl-ms", optarg, 0, LLONG_MAX / 2)) < 0)
                return 2;
            o->nonce_ttl_ms = n;
            break;
        case 'o': o->open_registration = true; break;
        case 'a': o->appservice_token = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mr-test-homeserver: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!*o->server_name) {
        fprintf(stderr, "mr-test-homeserver: --server-name must not be empty\n");
        return 2;
    }
    if (!o->registration_token && (o->registration_token_uses || o->registration_token_expired)) {
        fprintf(stderr, "mr-test-homeserver: --registration-token-uses and "
                        "--registration-token-expired need --registration-token\n");
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    hs_opts opts;
    int rc = parse_args(argc, argv, &opts);
    if (rc >= 0)
        return rc;
    /* Signals are taken synchronously by sigwait below, never by the server threads. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    hs h;
    mr_err err = {0};
    mr_http_server *srv = NULL;
    /* Synapse sets no connection limit, per address or in all, and every agent under test
     * connects from loopback with a kept-alive connection of its own (1,000 accounts: 1,000
     * long polls at once). */
    unsigned long files = 0;
    mr_http_server_opts so = {.listen = opts.listen, .max_body = 1024 * 1024,
                              .max_connections = HS_MAX_CONNECTIONS, .max_per_address = HS_MAX_CONNECTIONS};
    if (mr_http_fd_limit_raise(HS_MAX_CONNECTIONS + 64, &files, &err) != MR_OK || hs_init(&h, &opts, &err) != MR_OK ||
        mr_http_server_start(&so, hs_handle, &h, &srv, &err) != MR_OK) {
        fprintf(stderr, "mr-test-homeserver: %s\n", err.msg);
        return 1;
    }
    char url[300];
    mr_http_server_url(opts.listen, mr_http_server_port(srv), url, sizeof url);
    printf("listening on %s\n", url);
    fflush(stdout);

    int sig;
    sigwait(&stop_signals, &sig);
    /* Wake long-polling syncs so the server can finish their requests and stop. */
    pthread_rwlock_wrlock(&h.lock);
    h.stopping = true;
    hs_wake(&h);
    pthread_rwlock_unlock(&h.lock);
    mr_http_server_stop(srv);
    hs_free(&h);
    return 0;
}
