/* cmd_run.c -- `mindroom run`: the gateway, crypto, authz and agent services on threads of one
 * process, sharing one runtime (bus, store, config), until SIGINT or SIGTERM. */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_service.h"
#include "authz_service.h"
#include "cli.h"
#include "crypto_service.h"
#include "gateway.h"
#include "mindroom/clock.h"
#include "mindroom/llm.h"
#include "mindroom/runtime.h"
#include "mindroom/thread_name.h"

#define CMD "run"
#define LOG "run"
/* How often start-up progress and the services' threads are looked at. */
#define WATCH_MS 250

enum { OPT_STORAGE_PATH = 256, OPT_LOG_FORMAT, OPT_LISTEN };

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"storage-path", required_argument, NULL, OPT_STORAGE_PATH},
    {"log-level", required_argument, NULL, 'l'},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct run_opts {
    const char *config;
    const char *storage;
    const char *log_level;
    const char *log_format;
    const char *listen;
} run_opts;

/* One service on its own thread. */
typedef struct service_thread {
    const char *name;
    int (*serve)(const mr_runtime *rt);
    const mr_runtime *rt;
    pthread_t tid;
    bool started;
    int status;
} service_thread;

static int print_help(void)
{
    return mr_cli_help(
        "Usage: mindroom run [options]\n"
        "\n"
        "Runs the agents: the Matrix gateway, the crypto, authorization and agent services on\n"
        "threads of this process, over an in-process bus and the SQLite store under the storage\n"
        "path. Reads config.yaml and the .env next to it as `mindroom config init` wrote them;\n"
        "logs each step of start-up, then \"ready\". SIGINT or SIGTERM stops every service after\n"
        "the message in hand; the next start resumes where this one left off. SIGHUP reloads\n"
        "config.yaml (a broken file keeps the running config).\n"
        "\n"
        "Options:\n"
        "  -c, --config PATH        config.yaml, or its directory (default: $MINDROOM_CONFIG_PATH,\n"
        "                           else ./config.yaml, else ~/.mindroom/config.yaml)\n"
        "      --storage-path DIR   Where state lives (default: $MINDROOM_STORAGE_PATH, else\n"
        "                           mindroom_data next to config.yaml)\n"
        "  -l, --log-level LEVEL    debug, info, warn or error (default: $LOG_LEVEL, else info)\n"
        "      --log-format FORMAT  human or json (default: $LOG_FORMAT, else human)\n"
        "      --listen HOST:PORT   Serve GET /healthz, /readyz and /metrics (default:\n"
        "                           $MINDROOM_LISTEN; none when unset)\n"
        "  -h, --help               Show this help and exit\n"
        "\n"
        "Settings (flag, then environment, then .env): MATRIX_HOMESERVER (required),\n"
        "MATRIX_SERVER_NAME, MATRIX_REGISTRATION_SHARED_SECRET or MATRIX_REGISTRATION_TOKEN\n"
        "(or MATRIX_ACCOUNT_<ENTITY>_USER_ID with _PASSWORD or _ACCESS_TOKEN for accounts that\n"
        "exist already), MINDROOM_NAMESPACE, the model providers' API keys (a missing key is a\n"
        "warning: that model's agents apologise until it is set) and base URLs (OPENAI_BASE_URL,\n"
        "... for models without `host:`), MINDROOM_BUS_URL and MINDROOM_STORE_URL (defaults:\n"
        "in-process bus, SQLite under the storage path).\n"
        "\n"
        "Exit codes here: 0 stopped cleanly; 1 a service failed; 2 bad usage or an invalid\n"
        "setting (the message names it).\n");
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, run_opts *o)
{
    *o = (run_opts){0};
    int c;
    while ((c = mr_cli_getopt(argc, argv, "c:l:h", long_options, CMD)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case OPT_STORAGE_PATH: o->storage = optarg; break;
        case 'l': o->log_level = optarg; break;
        case OPT_LOG_FORMAT: o->log_format = optarg; break;
        case OPT_LISTEN: o->listen = optarg; break;
        case 'h': return print_help();
        default: return MR_CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return mr_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if ((o->config && !*o->config) || (o->storage && !*o->storage))
        return mr_cli_usage_error(CMD, "option '%s' needs a non-empty value",
                                  o->config && !*o->config ? "--config" : "--storage-path");
    return -1;
}

/* Where a bus or store URL points, without the user:password@ part a Redis URL may carry. */
static void url_place(const char *url, char *out, size_t cap)
{
    const char *scheme_end = strstr(url, "://");
    const char *at = scheme_end ? strrchr(scheme_end, '@') : NULL;
    if (at)
        snprintf(out, cap, "%.*s%s", (int)(scheme_end + 3 - url), url, at + 1);
    else
        snprintf(out, cap, "%s", url);
}

static void log_start(const mr_runtime *rt)
{
    const mr_runtime_settings *s = &rt->settings;
    char bus[512], store[512];
    url_place(s->bus_url, bus, sizeof bus);
    url_place(s->store_url, store, sizeof store);
    mr_config *cfg = mr_runtime_config(rt, NULL);
    mr_log_info(LOG, "mindroom %s: config %s (%zu agents, %zu teams, %zu models)", MR_VERSION,
                s->config_path, cfg->n_agents, cfg->n_teams, cfg->n_models);
    mr_config_release(cfg);
    mr_log_info(LOG, "storage %s, bus %s, store %s", s->storage_path, bus, store);
    mr_log_info(LOG, "homeserver %s, server name %s%s%s",
                s->homeserver ? s->homeserver : "(MATRIX_HOMESERVER not set)", s->server_name,
                s->ns[0] ? ", namespace " : "", s->ns);
}

static void *service_main(void *arg)
{
    service_thread *t = arg;
    mr_thread_name(t->name);
    t->status = t->serve(t->rt);
    /* Wakes the supervisor: one service ending (by failure or stop) ends them all. */
    mr_runtime_stop(t->rt);
    return NULL;
}

static mr_code start_services(service_thread *svcs, size_t n, mr_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int e = pthread_create(&svcs[i].tid, NULL, service_main, &svcs[i]);
        if (e)
            return mr_err_errno(err, MR_EINTERNAL, e, "starting the %s thread", svcs[i].name);
        svcs[i].started = true;
        mr_log_info(LOG, "%s started", svcs[i].name);
    }
    return MR_OK;
}

/* Logs each step of start-up as readiness reports it (the first thing still missing), then
 * "ready"; returns once the runtime stops, by signal or because a service ended. */
static void supervise(const mr_runtime *rt, size_t n)
{
    long long t0 = mr_clock_mono_ms();
    char last[256] = "";
    bool ready = false;
    while (!mr_runtime_sleep(rt, WATCH_MS)) {
        if (ready)
            continue;
        char why[256] = "";
        if (mr_runtime_ready((void *)rt, why, sizeof why)) {
            ready = true;
            mr_log_info(LOG, "ready: %zu services up after %.1f s", n, (double)(mr_clock_mono_ms() - t0) / 1000);
        } else if (strcmp(why, last) != 0) {
            mr_log_info(LOG, "start-up: %s", why);
            snprintf(last, sizeof last, "%s", why);
        }
    }
}

/* Joins the threads in table order and folds their statuses: 2 when a service found a setting
 * invalid, else 1 on any failure. Every service sees the one stop flag at once and ends after
 * the message in hand; nothing needs to drain first, because the bus journal (the default,
 * inproc:///<storage>/bus.db) keeps what is still queued, and an answer cut short, for the next
 * start, where claims and transaction IDs keep it from being answered twice. */
static int join_services(service_thread *svcs, size_t n)
{
    int status = MR_CLI_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        if (!svcs[i].started)
            continue;
        pthread_join(svcs[i].tid, NULL);
        mr_log_info(LOG, "%s stopped (status %d)", svcs[i].name, svcs[i].status);
        if (svcs[i].status == 2)
            status = MR_CLI_EXIT_USAGE;
        else if (svcs[i].status != 0 && status == MR_CLI_EXIT_OK)
            status = MR_CLI_EXIT_FAILED;
    }
    return status;
}

static int run(mr_runtime *rt, const run_opts *o)
{
    service_thread svcs[] = {
        {.name = "gateway", .serve = mr_gateway_serve, .rt = rt},
        {.name = "crypto", .serve = mr_crypto_serve, .rt = rt},
        {.name = "authz", .serve = mr_authz_serve, .rt = rt},
        {.name = "agent", .serve = mr_agent_serve, .rt = rt},
    };
    const size_t n = sizeof svcs / sizeof svcs[0];
    log_start(rt);

    mr_err err = {0};
    mr_http_server *srv = NULL;
    const char *listen = mr_runtime_setting(rt, o->listen, "MINDROOM_LISTEN", NULL);
    if (listen) {
        mr_http_server_opts so = {.listen = listen, .metrics = rt->metrics};
        if (mr_http_server_start(&so, mr_runtime_http_handle, rt, &srv, &err) != MR_OK)
            return mr_cli_usage_error(CMD, "%s: %s", o->listen ? "--listen" : "MINDROOM_LISTEN", err.msg);
        mr_log_info(LOG, "health endpoints on %s (port %d)", listen, mr_http_server_port(srv));
    }
    int status = MR_CLI_EXIT_OK;
    if (mr_runtime_watch_signals(rt, &err) != MR_OK || start_services(svcs, n, &err) != MR_OK) {
        mr_log_error(LOG, "%s", err.msg);
        status = MR_CLI_EXIT_FAILED;
        mr_runtime_stop(rt);
    } else {
        supervise(rt, n);
    }
    mr_log_info(LOG, "stopping");
    int joined = join_services(svcs, n);
    mr_http_server_stop(srv);
    status = status != MR_CLI_EXIT_OK ? status : joined;
    mr_log_info(LOG, "stopped (exit status %d)", status);
    return status;
}

int mr_cli_run(int argc, char **argv)
{
    run_opts o;
    int early = parse_args(argc, argv, &o);
    if (early >= 0)
        return early;
    mr_err err = {0};
    char config[PATH_MAX];
    /* Blocked before any thread starts, so only the signal watcher takes them. */
    if (mr_runtime_block_signals(&err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    if (o.config && mr_cli_config_path(o.config, false, config, sizeof config, &err) != MR_OK)
        return mr_cli_usage_error(CMD, "--config: %s", err.msg);
    mr_runtime_opts ro = {.config_path = o.config ? config : NULL, .storage_path = o.storage,
                          .log_level = o.log_level, .log_format = o.log_format,
                          .model_settings = true};
    mr_runtime *rt = NULL;
    mr_code rc = mr_runtime_open(&ro, &rt, &err);
    if (rc != MR_OK) {
        fprintf(stderr, "mindroom %s: %s\n", CMD, err.msg);
        return rc == MR_EINVAL ? MR_CLI_EXIT_USAGE : MR_CLI_EXIT_FAILED;
    }
    int status = run(rt, &o);
    mr_runtime_close(rt);
    return status;
}
