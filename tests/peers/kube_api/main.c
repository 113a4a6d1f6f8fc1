/* main.c -- mr-test-kube-api: a Kubernetes API server for tests, faithful for the calls the
 * platform makes (see README.md), driven by the real kubectl in its test. */
#include "kube.h"
#include "peer_main.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: mr-test-kube-api [--listen HOST:PORT] [--token TOKEN] [--deployments ready|manual|run]\n"
    "                        [--image NAME=PATH]...\n"
    "Serves the Kubernetes API's discovery, get, list, create, server-side apply, merge\n"
    "patch, /status and delete for the kinds the platform applies (see README.md). Prints\n"
    "'listening on http://HOST:PORT' as its first line; stops on SIGTERM or SIGINT.\n"
    "  --listen       address to bind (default 127.0.0.1:0, a free port)\n"
    "  --token        require 'Authorization: Bearer TOKEN' (default: no check)\n"
    "  --deployments  ready (default): a Deployment's status shows every replica\n"
    "                 available once written; manual: status changes only through /status;\n"
    "                 run: each replica is a local process, ready when its readinessProbe passes\n"
    "  --image        with run: pods of image NAME (registry and tag left out) run PATH\n";

/* k comes first: the server hands the handler this struct as the kube it serves. */
typedef struct kube_peer {
    kube k;
    bool run, images;
} kube_peer;

static mr_code take_flag(void *ctx, int ch, const char *value, mr_err *err)
{
    kube_peer *p = ctx;
    char why[512];
    if (ch == 't') {
        p->k.token = value;
    } else if (ch == 'i') {
        p->images = true;
        if (!kube_runner_image(p->k.runner, value, why, sizeof why))
            return mr_err_set(err, MR_EINVAL, "%s", why);
    } else if (strcmp(value, "ready") == 0 || strcmp(value, "manual") == 0 || strcmp(value, "run") == 0) {
        p->k.deployments_ready = strcmp(value, "ready") == 0;
        p->run = strcmp(value, "run") == 0;
    } else {
        return mr_err_set(err, MR_EINVAL, "--deployments must be ready, manual or run, not '%s'", value);
    }
    return MR_OK;
}

static mr_code ready(void *ctx, const char *listen, mr_err *err)
{
    (void)listen;
    kube_peer *p = ctx;
    char why[512];
    if (p->k.token && !*p->k.token)
        return mr_err_set(err, MR_EINVAL, "--token must not be empty");
    if (p->images && !p->run)
        return mr_err_set(err, MR_EINVAL, "--image needs --deployments run");
    /* The pods' processes start from the runner's thread, with the stop signals unblocked again. */
    if (p->run && !kube_runner_start(&p->k, why, sizeof why))
        return mr_err_set(err, MR_EUNAVAIL, "%s", why);
    return MR_OK;
}

int main(int argc, char **argv)
{
    static const struct option flags[] = {
        {"token", required_argument, NULL, 't'},
        {"deployments", required_argument, NULL, 'd'},
        {"image", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    static const mr_peer_def def = {
        .prog = "mr-test-kube-api", .usage = USAGE, .flags = flags, .flag = take_flag, .ready = ready,
        .handler = kube_handle,
        /* kubectl and the platform under test share loopback: no per-address limit. */
        .server = {.max_body = 8 * 1024 * 1024, .max_per_address = 256},
    };
    kube_peer p = {0};
    kube_init(&p.k);
    p.k.runner = kube_runner_new();
    if (!p.k.runner) {
        fprintf(stderr, "mr-test-kube-api: out of memory\n");
        kube_free(&p.k);
        return 1;
    }
    int rc = mr_peer_main(argc, argv, &def, &p);
    kube_runner_stop(&p.k);
    kube_free(&p.k);
    return rc;
}
