/* main.c -- mr-test-kube-api: a Kubernetes API server for tests, faithful for the calls the
 * platform makes (see README.md), driven by the real kubectl in its test. */
#include "kube.h"
#include "peer_main.h"

#include <string.h>

static const char USAGE[] =
    "usage: mr-test-kube-api [--listen HOST:PORT] [--token TOKEN] [--deployments ready|manual]\n"
    "Serves the Kubernetes API's discovery, get, list, create, server-side apply, merge\n"
    "patch, /status and delete for the kinds the platform applies (see README.md). Prints\n"
    "'listening on http://HOST:PORT' as its first line; stops on SIGTERM or SIGINT.\n"
    "  --listen       address to bind (default 127.0.0.1:0, a free port)\n"
    "  --token        require 'Authorization: Bearer TOKEN' (default: no check)\n"
    "  --deployments  ready (default): a Deployment's status shows every replica\n"
    "                 available once written; manual: status changes only through /status\n";

static mr_code take_flag(void *ctx, int ch, const char *value, mr_err *err)
{
    kube *k = ctx;
    if (ch == 't') {
        k->token = value;
    } else if (strcmp(value, "ready") == 0 || strcmp(value, "manual") == 0) {
        k->deployments_ready = strcmp(value, "ready") == 0;
    } else {
        return mr_err_set(err, MR_EINVAL, "--deployments must be ready or manual, not '%s'", value);
    }
    return MR_OK;
}

static mr_code ready(void *ctx, const char *listen, mr_err *err)
{
    (void)listen;
    kube *k = ctx;
    return k->token && !*k->token ? mr_err_set(err, MR_EINVAL, "--token must not be empty") : MR_OK;
}

int main(int argc, char **argv)
{
    static const struct option flags[] = {
        {"token", required_argument, NULL, 't'},
        {"deployments", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    static const mr_peer_def def = {
        .prog = "mr-test-kube-api", .usage = USAGE, .flags = flags, .flag = take_flag, .ready = ready,
        .handler = kube_handle,
        /* kubectl and the platform under test share loopback: no per-address limit. */
        .server = {.max_body = 8 * 1024 * 1024, .max_per_address = 256},
    };
    kube k;
    kube_init(&k);
    int rc = mr_peer_main(argc, argv, &def, &k);
    kube_free(&k);
    return rc;
}
