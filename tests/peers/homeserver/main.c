/* main.c -- mr-test-homeserver: a Matrix homeserver fixture for tests, serving the
 * client-server endpoints the project uses from memory. */
#include "hs.h"
#include "peer_main.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* Connections served at once; the open file limit is raised to fit them. */
#define HS_MAX_CONNECTIONS 4096u

static const char USAGE[] =
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
    "                        from an application service holding this token\n";

typedef struct peer {
    hs_opts opts;
    hs h;
    bool up; /* h was initialised */
} peer;

/* A whole decimal number in [min, max] for the flag. */
static mr_code number_flag(const char *flag, const char *v, long long min, long long max, long long *out,
                           mr_err *err)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return mr_err_set(err, MR_EINVAL, "%s takes a number from %lld to %lld, not '%s'", flag, min, max, v);
    *out = n;
    return MR_OK;
}

static mr_code take_flag(void *ctx, int ch, const char *value, mr_err *err)
{
    hs_opts *o = &((peer *)ctx)->opts;
    long long n = 0;
    mr_code rc = MR_OK;
    switch (ch) {
    case 'n': o->server_name = value; break;
    case 't': o->registration_token = value; break;
    case 'u':
        rc = number_flag("--registration-token-uses", value, 1, INT_MAX, &n, err);
        o->registration_token_uses = (int)n;
        break;
    case 'x': o->registration_token_expired = true; break;
    case 'r': o->registration_rate_limit = true; break;
    case 's': o->shared_secret = value; break;
    case 'N':
        rc = number_flag("--nonce-ttl-ms", value, 0, LLONG_MAX / 2, &o->nonce_ttl_ms, err);
        break;
    case 'o': o->open_registration = true; break;
    default: o->appservice_token = value; break;
    }
    return rc;
}

static mr_code ready(void *ctx, const char *listen, mr_err *err)
{
    peer *p = ctx;
    p->opts.listen = listen;
    if (!*p->opts.server_name)
        return mr_err_set(err, MR_EINVAL, "--server-name must not be empty");
    if (!p->opts.registration_token && (p->opts.registration_token_uses || p->opts.registration_token_expired))
        return mr_err_set(err, MR_EINVAL, "--registration-token-uses and --registration-token-expired need "
                          "--registration-token");
    unsigned long files = 0;
    mr_code rc = mr_http_fd_limit_raise(HS_MAX_CONNECTIONS + 64, &files, err);
    if (rc == MR_OK && (rc = hs_init(&p->h, &p->opts, err)) == MR_OK)
        p->up = true;
    return rc;
}

static mr_http_response *handle(void *ctx, const mr_http_request *req)
{
    return hs_handle(&((peer *)ctx)->h, req);
}

/* Wakes long-polling syncs so the server can finish their requests and stop. */
static void wake(void *ctx)
{
    hs *h = &((peer *)ctx)->h;
    pthread_rwlock_wrlock(&h->lock);
    h->stopping = true;
    hs_wake(h);
    pthread_rwlock_unlock(&h->lock);
}

int main(int argc, char **argv)
{
    static const struct option flags[] = {
        {"server-name", required_argument, NULL, 'n'},
        {"registration-token", required_argument, NULL, 't'},
        {"registration-token-uses", required_argument, NULL, 'u'},
        {"registration-token-expired", no_argument, NULL, 'x'},
        {"registration-rate-limit", no_argument, NULL, 'r'},
        {"shared-secret", required_argument, NULL, 's'},
        {"nonce-ttl-ms", required_argument, NULL, 'N'},
        {"open-registration", no_argument, NULL, 'o'},
        {"appservice-token", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    static const mr_peer_def def = {
        .prog = "mr-test-homeserver", .usage = USAGE, .flags = flags, .flag = take_flag, .ready = ready,
        .handler = handle, .wake = wake,
        /* Synapse sets no connection limit, per address or in all, and every agent under test
         * connects from loopback with a kept-alive connection of its own (1,000 accounts: 1,000
         * long polls at once). */
        .server = {.max_body = 1024 * 1024, .max_connections = HS_MAX_CONNECTIONS,
                   .max_per_address = HS_MAX_CONNECTIONS},
    };
    peer p = {.opts = {.server_name = "localhost", .nonce_ttl_ms = 60000}};
    int rc = mr_peer_main(argc, argv, &def, &p);
    if (p.up)
        hs_free(&p.h);
    return rc;
}
