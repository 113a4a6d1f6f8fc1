/* service_main.c -- the whole main() of a `mindroom-<service>` binary: options, health server, exit codes. */
#include "runtime_internal.h"
#include "mindroom/clock.h"

#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_LISTEN = 256, OPT_LOG_FORMAT };

#define STORE_WAIT_POLL_MS 500
/* libs/http's connection cap: no one address may hold more. */
#define MAX_HTTP_CONNECTIONS 256
#define STORE_WAIT_NOTE_MS 30000

typedef struct service_args {
    const char *config;
    const char *listen;
    const char *log_level;
    const char *log_format;
} service_args;

static unsigned uses_of(const mr_service_def *def)
{
    return def->uses ? def->uses : MR_RUNTIME_USES_ALL;
}

/* Lists the options and variables of exactly the settings this service uses. */
static void print_help(const char *prog, const char *listen_var, const mr_service_def *def)
{
    unsigned uses = uses_of(def);
    bool config = uses & MR_RUNTIME_USES_CONFIG;
    printf("Usage: %s [OPTIONS]\n%s\n\nOptions:\n", prog, def->summary);
    if (config)
        printf("  -c, --config PATH        config.yaml (default: $MINDROOM_CONFIG_PATH, ./config.yaml,\n"
               "                           ~/.mindroom/config.yaml)\n");
    printf("      --listen HOST:PORT   serve GET /healthz, /readyz and /metrics%s\n"
           "                           (default: $%s, else %s)\n"
           "  -l, --log-level LEVEL    debug, info, warn or error (default: $LOG_LEVEL, else info)\n"
           "      --log-format FORMAT  human or json (default: $LOG_FORMAT, else human)\n"
           "  -h, --help               show this help\n"
           "  -V, --version            print the version\n\n",
           def->routes ? ", and the service's API" : "", listen_var,
           def->default_listen ? def->default_listen : "no HTTP server");
    printf(config ? "Environment (the .env next to config.yaml fills in what the environment leaves unset):\n"
                  : "Environment (this service reads no config.yaml and no bus):\n");
    if (uses & MR_RUNTIME_USES_BUS)
        printf("  MINDROOM_BUS_URL          required: kafka://host:port[,host:port] or redis://host:port/db\n");
    if (uses & MR_RUNTIME_USES_STORE)
        printf("  MINDROOM_STORE_URL        required: redis://host:port/db (or sqlite:///path, one replica)\n");
    if (uses & MR_RUNTIME_USES_SECRET)
        printf("  MINDROOM_INSTANCE_SECRET  hex or base64, 32-64 bytes (else <storage>/instance_secret);\n"
               "                            replicas and services sharing the store need the same one\n"
               "  MINDROOM_STORAGE_PATH     default %s/mindroom_data\n",
               config ? "<config dir>" : "<working directory>");
    if (uses & MR_RUNTIME_USES_MATRIX)
        printf("  MATRIX_SERVER_NAME        default the host of MATRIX_HOMESERVER\n"
               "  MINDROOM_NAMESPACE        empty, or 4-32 letters and digits\n");
    printf("  MINDROOM_HTTP_MAX_CONNECTIONS_PER_ADDRESS  1-256, default 64: connections one client\n"
           "                            address may hold; raise it behind a reverse proxy, whose\n"
           "                            clients all come from its address\n");
    if (def->settings_help)
        printf("%s", def->settings_help);
    printf("\n%s"
           "Exit status: 0 stopped cleanly, 1 failed, 2 invalid settings or usage.\n",
           config ? "Signals: SIGHUP reloads config.yaml (a broken file keeps the running config);\n"
                    "SIGINT and SIGTERM stop after the message in hand.\n"
                  : "Signals: SIGINT and SIGTERM stop after the request in hand.\n");
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, const char *prog, const char *listen_var,
                      const mr_service_def *def, service_args *a)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:l:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case OPT_LISTEN: a->listen = optarg; break;
        case 'l': a->log_level = optarg; break;
        case OPT_LOG_FORMAT: a->log_format = optarg; break;
        case 'h': print_help(prog, listen_var, def); return 0;
        case 'V': printf("%s %s\n", prog, MR_VERSION); return 0;
        case ':':
            fprintf(stderr, "%s: option '%s' needs a value; try '%s --help'\n", prog, argv[optind - 1], prog);
            return 2;
        default:
            fprintf(stderr, "%s: unknown option '%s'; try '%s --help'\n", prog, argv[optind - 1], prog);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'; try '%s --help'\n", prog, argv[optind], prog);
        return 2;
    }
    return -1;
}

static int fail(const char *prog, const mr_err *err, mr_code rc)
{
    fprintf(stderr, "%s: %s\n", prog, err->msg);
    return rc == MR_EINVAL ? 2 : 1;
}

/* MINDROOM_HTTP_MAX_CONNECTIONS_PER_ADDRESS: 0 (unset) leaves libs/http's default. A reverse
 * proxy in front (the ingress before upstream-auth) is one address for all its clients. */
static mr_code per_address_limit(const mr_runtime *rt, unsigned *out, mr_err *err)
{
    long n = 0;
    mr_code rc = mr_runtime_setting_long(rt, "MINDROOM_HTTP_MAX_CONNECTIONS_PER_ADDRESS", 0, 1, MAX_HTTP_CONNECTIONS,
                                         &n, err);
    *out = (unsigned)n;
    return rc;
}

/* Polling threads for a service that asks for a pool: a core each, as more only add thread
 * switches (on 2 cores, 4 threads cost a forward-auth request up to 15% more CPU than 2 in our
 * runs), and at least 2, so a request that waits holds up half the connections at most. */
static unsigned http_pool_size(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 2 ? (unsigned)cores : 2u;
}

/* A service started before its store (Kubernetes starts pods in any order) waits for it with
 * /readyz answering 503, rather than exiting into a restart loop. False when stopped first. */
static bool wait_for_store(const mr_runtime *rt, const char *name)
{
    long long next_note = 0;
    for (;;) {
        mr_err err = {0};
        if (mr_store_ping(rt->store, &err) == MR_OK)
            return true;
        long long now = mr_clock_mono_ms();
        if (now >= next_note) {
            mr_log_warn(name, "waiting for the store (MINDROOM_STORE_URL): %s", err.msg);
            next_note = now + STORE_WAIT_NOTE_MS;
        }
        if (mr_runtime_sleep(rt, STORE_WAIT_POLL_MS))
            return false;
    }
}

/* One line with the settings in force; those the service does not use are left out. */
static void log_started(const mr_runtime *rt, const char *prog)
{
    const mr_runtime_settings *s = &rt->settings;
    char bus[512], store[512];
    const char *fields[16];
    size_t n = 0;
    if (s->config_path) {
        fields[n++] = "config";
        fields[n++] = s->config_path;
    }
    if (s->bus_url) {
        mr_runtime_mask_url(s->bus_url, bus, sizeof bus);
        fields[n++] = "bus";
        fields[n++] = bus;
    }
    if (s->store_url) {
        mr_runtime_mask_url(s->store_url, store, sizeof store);
        fields[n++] = "store";
        fields[n++] = store;
    }
    if (s->server_name) {
        fields[n++] = "server_name";
        fields[n++] = s->server_name;
        fields[n++] = "namespace";
        fields[n++] = s->ns;
    }
    fields[n] = NULL;
    mr_log_write(MR_LOG_INFO, rt->service, fields, "%s %s started", prog, MR_VERSION);
}

int mr_service_main(int argc, char **argv, const mr_service_def *def)
{
    mr_runtime_tune_exec(argv);
    char prog[64], listen_var[96];
    snprintf(prog, sizeof prog, "mindroom-%s", def->name);
    int n = snprintf(listen_var, sizeof listen_var, "MINDROOM_%s_LISTEN", def->name);
    for (int i = 9; i < n - 7; i++)
        listen_var[i] = listen_var[i] == '-' ? '_' : (char)toupper((unsigned char)listen_var[i]);

    service_args a = {0};
    int status = parse_args(argc, argv, prog, listen_var, def, &a);
    if (status >= 0)
        return status;

    mr_err err = {0};
    mr_code rc = mr_runtime_block_signals(&err);
    if (rc != MR_OK)
        return fail(prog, &err, rc);
    mr_runtime_opts opts = {.service = def->name, .distributed = true, .uses = uses_of(def), .config_path = a.config,
                            .log_level = a.log_level, .log_format = a.log_format,
                            .model_settings = def->calls_models};
    mr_runtime *rt = NULL;
    rc = mr_runtime_open(&opts, &rt, &err);
    if (rc != MR_OK)
        return fail(prog, &err, rc);

    mr_http_server *srv = NULL;
    const char *listen = mr_runtime_setting(rt, a.listen, listen_var, def->default_listen);
    unsigned per_address = 0;
    if ((rc = per_address_limit(rt, &per_address, &err)) != MR_OK) {
        mr_runtime_close(rt);
        return fail(prog, &err, rc);
    }
    if (def->check_settings && (rc = def->check_settings(rt, &err)) != MR_OK) {
        mr_runtime_close(rt);
        return fail(prog, &err, rc);
    }
    if (def->serve_check && (rc = mr_runtime_add_check(rt, mr_runtime_serve_check_added, rt, &err)) != MR_OK) {
        mr_runtime_close(rt);
        return fail(prog, &err, rc);
    }
    if (def->routes && (rc = mr_runtime_add_check(rt, mr_runtime_routes_installed, rt, &err)) != MR_OK) {
        mr_runtime_close(rt);
        return fail(prog, &err, rc);
    }
    mr_runtime_checks_from_here(rt);
    if (listen) {
        mr_http_server_opts so = {.listen = listen, .metrics = rt->metrics, .max_per_address = per_address,
                                  .max_body = def->http_max_body, .error_reply = def->http_error_reply,
                                  .pool_threads = def->http_pool ? http_pool_size() : 0};
        rc = mr_http_server_start(&so, mr_runtime_http_handle, rt, &srv, &err);
        if (rc != MR_OK) {
            mr_err_prefix(&err, "%s", a.listen ? "--listen" : listen_var);
            mr_runtime_close(rt);
            return fail(prog, &err, rc);
        }
        mr_log_info(def->name, "health endpoints on %s (port %d)", listen, mr_http_server_port(srv));
    }
    rc = mr_runtime_watch_signals(rt, &err);
    if (rc == MR_OK) {
        log_started(rt, prog);
        int served = !rt->store || wait_for_store(rt, def->name) ? def->serve(rt) : 0;
        status = served == 0 || served == 2 ? served : 1;
        mr_log_info(def->name, "%s stopped (exit status %d)", prog, status);
    } else {
        status = fail(prog, &err, rc);
    }
    mr_http_server_stop(srv);
    mr_runtime_close(rt);
    return status;
}
