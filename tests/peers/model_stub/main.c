/* main.c -- mr-model-stub: an OpenAI-compatible model provider for tests (chat completions
 * with SSE, models list, OpenAI errors) that tests can script to fail or stall. */
#include "stub.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mr-model-stub [--listen HOST:PORT] [--api-key KEY] [--model ID]...\n"
            "Serves POST /v1/chat/completions (streamed or not) and GET /v1/models like the\n"
            "OpenAI API, plus the /_stub/ control API (see README.md). Prints\n"
            "'listening on http://HOST:PORT' as its first line; stops on SIGTERM or SIGINT.\n"
            "  --listen   address to bind (default 127.0.0.1:0, a free port)\n"
            "  --api-key  require 'Authorization: Bearer KEY' on /v1/ (default: no check)\n"
            "  --model    serve this model ID (repeatable); others get 404 model_not_found.\n"
            "             Without it every model ID is served.\n");
}

/* Returns the exit code when the process should end now, -1 to go on. */
static int parse_args(int argc, char **argv, const char **listen, stub *s)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"api-key", required_argument, NULL, 'k'},
        {"model", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *listen = "127.0.0.1:0";
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l': *listen = optarg; break;
        case 'k': s->api_key = optarg; break;
        case 'm': s->models[s->n_models++] = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mr-model-stub: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (s->api_key && !*s->api_key) {
        fprintf(stderr, "mr-model-stub: --api-key must not be empty\n");
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    stub s;
    stub_init(&s);
    /* Each --model takes two argv slots, so argc bounds their number. */
    s.models = calloc((size_t)argc, sizeof *s.models);
    const char *listen;
    int rc = s.models ? parse_args(argc, argv, &listen, &s) : 1;
    if (rc >= 0) {
        free(s.models);
        stub_free(&s);
        return rc;
    }
    /* Signals are taken synchronously by sigwait below, never by the server threads. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    mr_err err = {0};
    mr_http_server *srv = NULL;
    /* Every agent under test calls the model from loopback: no per-address limit. */
    mr_http_server_opts so = {.listen = listen, .max_body = 8 * 1024 * 1024, .max_per_address = 256};
    if (mr_http_server_start(&so, stub_handle, &s, &srv, &err) != MR_OK) {
        fprintf(stderr, "mr-model-stub: %s\n", err.msg);
        free(s.models);
        stub_free(&s);
        return 1;
    }
    char url[300];
    mr_http_server_url(listen, mr_http_server_port(srv), url, sizeof url);
    printf("listening on %s\n", url);
    fflush(stdout);

    int sig;
    sigwait(&stop_signals, &sig);
    /* End stalls so the server can finish their requests and stop. */
    stub_stop(&s);
    mr_http_server_stop(srv);
    free(s.models);
    stub_free(&s);
    return 0;
}
