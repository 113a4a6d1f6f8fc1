/* main.c -- mindroom-provisioning: options, settings, then serve until SIGINT or SIGTERM.
 *
 * It does not go through mr_service_main: the service runs on the hosted side, beside the
 * homeserver, and has no config.yaml, no bus and no instance secret; what it needs is its own
 * API on --listen (health and metrics share that server). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "mindroom/log.h"
#include "provisioning.h"

#define PROG "mindroom-provisioning"

enum { OPT_LISTEN = 256, OPT_LOG_FORMAT };

static void print_help(void)
{
    printf("Usage: " PROG " [OPTIONS]\n"
           "Pairs local MindRoom installs with a Matrix account (pair codes) and registers their\n"
           "namespaced agent accounts on the homeserver.\n"
           "\n"
           "Options:\n"
           "      --listen HOST:PORT   serve the API, the pairing page (/local-mindroom/), /healthz,\n"
           "                           /readyz and /metrics here\n"
           "                           (default: $MINDROOM_PROVISIONING_LISTEN, else " MR_PROVISIONING_DEFAULT_LISTEN ")\n"
           "  -l, --log-level LEVEL    debug, info, warn or error (default: $LOG_LEVEL, else info)\n"
           "      --log-format FORMAT  human or json (default: $LOG_FORMAT, else human)\n"
           "  -h, --help               show this help\n"
           "  -V, --version            print the version\n"
           "\n"
           "Environment:\n"
           "  MINDROOM_STORE_URL          required: redis://host:6379/0 (replicas share it) or\n"
           "                              sqlite:///path/state.db (one replica)\n"
           "  MATRIX_HOMESERVER           required: the homeserver's URL; register-agent accepts no other\n"
           "  MATRIX_SERVER_NAME          default: the homeserver's host\n"
           "  MATRIX_REGISTRATION_TOKEN   required (or MATRIX_REGISTRATION_TOKEN_FILE naming a file\n"
           "                              that holds it): registers agent accounts\n"
           "  MINDROOM_PROVISIONING_PAIR_TTL_SECONDS       pair code lifetime, 600 (at least 30)\n"
           "  MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS  status poll interval for browsers, 3\n"
           "  MINDROOM_PROVISIONING_TRUSTED_PROXIES        comma-separated proxy IPs whose\n"
           "      X-Forwarded-For names the client for rate limits; without it the TCP peer is the\n"
           "      client and X-Forwarded-For is ignored (a client could forge it). Each client\n"
           "      address may hold 64 connections; with trusted proxies, which all clients share,\n"
           "      the limit is the total, 256\n"
           "  MINDROOM_PROVISIONING_CORS_ORIGINS  origins of the chat web app, default\n"
           "                              https://chat.mindroom.chat\n"
           "\n"
           "Exit status: 0 stopped cleanly, 1 failed, 2 invalid settings or usage.\n");
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, mr_provisioning_flags *f)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":l:hV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN: f->listen = optarg; break;
        case 'l': f->log_level = optarg; break;
        case OPT_LOG_FORMAT: f->log_format = optarg; break;
        case 'h': print_help(); return 0;
        case 'V': printf(PROG " %s\n", MR_VERSION); return 0;
        case ':':
            fprintf(stderr, PROG ": option '%s' needs a value; try '" PROG " --help'\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, PROG ": unknown option '%s'; try '" PROG " --help'\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'; try '" PROG " --help'\n", argv[optind]);
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    mr_provisioning_flags flags = {0};
    int status = parse_args(argc, argv, &flags);
    if (status >= 0)
        return status;

    /* Blocked before any thread starts, so only sigwait below sees them. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    mr_provisioning_settings s;
    mr_err err = {0};
    mr_code rc = mr_provisioning_settings_resolve(&flags, &s, &err);
    if (rc != MR_OK) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        mr_provisioning_settings_free(&s);
        return rc == MR_EINVAL ? 2 : 1;
    }
    mr_log_configure(s.log_level, s.log_format, NULL);
    mr_provisioning *p = NULL;
    rc = mr_provisioning_start(&s, &p, &err);
    if (rc != MR_OK) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        mr_provisioning_settings_free(&s);
        return rc == MR_EINVAL ? 2 : 1;
    }
    const char *fields[] = {"homeserver", s.homeserver, "server_name", s.server_name, NULL};
    mr_log_write(MR_LOG_INFO, "provisioning", fields, PROG " %s listening on %s (port %d), pair codes valid %ld s",
                 MR_VERSION, s.listen, mr_provisioning_port(p), s.pair_ttl_s);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    mr_log_info("provisioning", "stopping on signal %d", sig);
    mr_provisioning_stop(p);
    mr_provisioning_settings_free(&s);
    return 0;
}
