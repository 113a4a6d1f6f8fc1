/* peer_main.c -- mr_peer_main: one start, first line and stop for every test peer. */
#include "peer_main.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#define MAX_FLAGS 32

/* The peer's flags with --listen and --help after them, for getopt_long. */
static int all_flags(const mr_peer_def *def, struct option *out)
{
    size_t n = 0;
    while (def->flags && def->flags[n].name && n < MAX_FLAGS)
        n++;
    if (def->flags && def->flags[n].name)
        return -1;
    for (size_t i = 0; i < n; i++)
        out[i] = def->flags[i];
    out[n++] = (struct option){"listen", required_argument, NULL, 'l'};
    out[n++] = (struct option){"help", no_argument, NULL, 'h'};
    out[n] = (struct option){0};
    return 0;
}

/* The exit code when the process should end after the flags, -1 to serve. */
static int parse_flags(int argc, char **argv, const mr_peer_def *def, void *ctx, const char **listen)
{
    struct option flags[MAX_FLAGS + 3];
    if (all_flags(def, flags) != 0) {
        fprintf(stderr, "%s: more than %d flags\n", def->prog, MAX_FLAGS);
        return 1;
    }
    *listen = "127.0.0.1:0";
    int ch;
    while ((ch = getopt_long(argc, argv, "", flags, NULL)) != -1) {
        mr_err err = {0};
        if (ch == 'l') {
            *listen = optarg;
        } else if (ch == 'h') {
            fputs(def->usage, stdout);
            return 0;
        } else if (ch == '?') {
            fputs(def->usage, stderr);
            return 2;
        } else if (def->flag(ctx, ch, optarg, &err) != MR_OK) {
            fprintf(stderr, "%s: %s\n", def->prog, err.msg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", def->prog, argv[optind]);
        return 2;
    }
    return -1;
}

int mr_peer_main(int argc, char **argv, const mr_peer_def *def, void *ctx)
{
    /* Taken synchronously by sigwait below, never by the threads ready or the server start. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    mr_http_server_opts so = def->server;
    int rc = parse_flags(argc, argv, def, ctx, &so.listen);
    if (rc >= 0)
        return rc;
    mr_err err = {0};
    mr_http_server *srv = NULL;
    mr_code code = def->ready(ctx, so.listen, &err);
    if (code == MR_OK && mr_http_server_start(&so, def->handler, ctx, &srv, &err) != MR_OK)
        code = MR_EUNAVAIL; /* a server that cannot start (an address in use) exits 1 */
    if (code != MR_OK) {
        fprintf(stderr, "%s: %s\n", def->prog, err.msg);
        return code == MR_EINVAL ? 2 : 1;
    }
    char url[300];
    mr_http_server_url(so.listen, mr_http_server_port(srv), url, sizeof url);
    printf("listening on %s\n", url);
    fflush(stdout);

    int sig;
    sigwait(&stop_signals, &sig);
    if (def->wake)
        def->wake(ctx);
    mr_http_server_stop(srv);
    return 0;
}
