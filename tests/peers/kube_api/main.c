/* main.c -- mr-test-kube-api: a Kubernetes API server for tests, faithful for the calls the
 * platform makes (see README.md), driven by the real kubectl in its test. */
#include "kube.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
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
            "  --image        with run: pods of image NAME (registry and tag left out) run PATH\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"token", required_argument, NULL, 't'},
        {"deployments", required_argument, NULL, 'd'},
        {"image", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    kube k;
    kube_init(&k);
    const char *listen = "127.0.0.1:0";
    int ch, rc = -1;
    bool run = false, images = false;
    char why[512];
    kube_runner *runner = kube_runner_new();
    if (!runner) {
        fprintf(stderr, "mr-test-kube-api: out of memory\n");
        kube_free(&k);
        return 1;
    }
    while (rc < 0 && (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l': listen = optarg; break;
        case 't': k.token = optarg; break;
        case 'd':
            if (strcmp(optarg, "ready") != 0 && strcmp(optarg, "manual") != 0 && strcmp(optarg, "run") != 0) {
                fprintf(stderr, "mr-test-kube-api: --deployments must be ready, manual or run, not '%s'\n", optarg);
                rc = 2;
            }
            k.deployments_ready = strcmp(optarg, "ready") == 0;
            run = strcmp(optarg, "run") == 0;
            break;
        case 'i':
            images = true;
            if (!kube_runner_image(runner, optarg, why, sizeof why)) {
                fprintf(stderr, "mr-test-kube-api: %s\n", why);
                rc = 2;
            }
            break;
        case 'h': usage(stdout); rc = 0; break;
        default: usage(stderr); rc = 2; break;
        }
    }
    if (rc < 0 && optind < argc) {
        fprintf(stderr, "mr-test-kube-api: unexpected argument '%s'\n", argv[optind]);
        rc = 2;
    }
    if (rc < 0 && k.token && !*k.token) {
        fprintf(stderr, "mr-test-kube-api: --token must not be empty\n");
        rc = 2;
    }
    if (rc < 0 && !run && images) {
        fprintf(stderr, "mr-test-kube-api: --image needs --deployments run\n");
        rc = 2;
    }
    k.runner = runner;
    if (rc >= 0) {
        kube_runner_stop(&k);
        kube_free(&k);
        return rc;
    }
    /* Signals are taken synchronously by sigwait below, never by the server threads. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    /* The pods' processes start from the runner's thread, with these signals unblocked again. */
    if (run && !kube_runner_start(&k, why, sizeof why)) {
        fprintf(stderr, "mr-test-kube-api: %s\n", why);
        kube_runner_stop(&k);
        kube_free(&k);
        return 1;
    }
    mr_err err = {0};
    mr_http_server *srv = NULL;
    /* kubectl and the platform under test share loopback: no per-address limit. */
    mr_http_server_opts so = {.listen = listen, .max_body = 8 * 1024 * 1024, .max_per_address = 256};
    if (mr_http_server_start(&so, kube_handle, &k, &srv, &err) != MR_OK) {
        fprintf(stderr, "mr-test-kube-api: %s\n", err.msg);
        kube_runner_stop(&k);
        kube_free(&k);
        return 1;
    }
    char url[300];
    mr_http_server_url(listen, mr_http_server_port(srv), url, sizeof url);
    printf("listening on %s\n", url);
    fflush(stdout);
    int sig;
    sigwait(&stop_signals, &sig);
    mr_http_server_stop(srv);
    kube_runner_stop(&k);
    kube_free(&k);
    return 0;
}
