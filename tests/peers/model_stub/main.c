/* main.c -- mr-model-stub: an OpenAI-compatible model provider for tests (chat completions
 * with SSE, models list, OpenAI errors) that tests can script to fail or stall. */
#include "peer_main.h"
#include "stub.h"

#include <stdio.h>
#include <stdlib.h>

static const char USAGE[] =
    "usage: mr-model-stub [--listen HOST:PORT] [--api-key KEY] [--model ID]...\n"
    "Serves POST /v1/chat/completions (streamed or not) and GET /v1/models like the\n"
    "OpenAI API, plus the /_stub/ control API (see README.md). Prints\n"
    "'listening on http://HOST:PORT' as its first line; stops on SIGTERM or SIGINT.\n"
    "  --listen   address to bind (default 127.0.0.1:0, a free port)\n"
    "  --api-key  require 'Authorization: Bearer KEY' on /v1/ (default: no check)\n"
    "  --model    serve this model ID (repeatable); others get 404 model_not_found.\n"
    "             Without it every model ID is served.\n";

static mr_code take_flag(void *ctx, int ch, const char *value, mr_err *err)
{
    (void)err;
    stub *s = ctx;
    if (ch == 'k')
        s->api_key = value;
    else
        s->models[s->n_models++] = (char *)value;
    return MR_OK;
}

static mr_code ready(void *ctx, const char *listen, mr_err *err)
{
    (void)listen;
    stub *s = ctx;
    return s->api_key && !*s->api_key ? mr_err_set(err, MR_EINVAL, "--api-key must not be empty") : MR_OK;
}

/* Ends stalls so the server can finish their requests and stop. */
static void wake(void *ctx)
{
    stub_stop(ctx);
}

int main(int argc, char **argv)
{
    static const struct option flags[] = {
        {"api-key", required_argument, NULL, 'k'},
        {"model", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    static const mr_peer_def def = {
        .prog = "mr-model-stub", .usage = USAGE, .flags = flags, .flag = take_flag, .ready = ready,
        .handler = stub_handle, .wake = wake,
        /* Every agent under test calls the model from loopback: no per-address limit. */
        .server = {.max_body = 8 * 1024 * 1024, .max_per_address = 256},
    };
    stub s;
    stub_init(&s);
    /* Each --model takes two argv slots, so argc bounds their number. */
    s.models = calloc((size_t)argc, sizeof *s.models);
    int rc = s.models ? mr_peer_main(argc, argv, &def, &s) : 1;
    if (!s.models)
        fprintf(stderr, "mr-model-stub: out of memory\n");
    free(s.models);
    stub_free(&s);
    return rc;
}
