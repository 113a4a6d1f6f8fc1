/* runtime.h -- what every service shares: resolved settings, the config behind a reference-counted
 * pointer that reloads swap, the bus, the store, metrics, readiness checks and a stop flag; and
 * mr_service_main, the whole main() of a `mindroom-<service>` binary.
 *
 * A service is one function, `int mr_<service>_serve(const mr_runtime *rt)`, that runs until
 * mr_runtime_stopping() and returns 0 on a clean stop or 1 on a failure it cannot recover from.
 * `mindroom run` opens one runtime and starts every service on a thread; each
 * `mindroom-<service>` binary starts one through mr_service_main. No service knows which.
 *
 * Settings, each resolved flag > process environment > `.env` next to the config > default (an
 * empty value counts as unset):
 *   config path          --config, MINDROOM_CONFIG_PATH, ./config.yaml, ~/.mindroom/config.yaml
 *   MINDROOM_STORAGE_PATH   default <config dir>/mindroom_data; made absolute
 *   MINDROOM_BUS_URL        default inproc://<storage>/bus.db, in-process queues journaled to that
 *                           file (plain inproc: keeps them in memory only); a distributed binary
 *                           requires it, and not inproc:
 *   MINDROOM_STORE_URL      default sqlite:///<storage>/state.db (a distributed binary requires it)
 *   MINDROOM_INSTANCE_SECRET  hex or base64 (standard or URL-safe), 32 to 64 bytes; else the
 *                           32 random bytes of <storage>/instance_secret, created 0600 on first
 *                           start and reused
 *   MATRIX_HOMESERVER       optional here; services that talk to Matrix check it themselves
 *   MATRIX_SERVER_NAME      default the host of MATRIX_HOMESERVER; required one way or the other
 *   MINDROOM_NAMESPACE      lower-cased; empty or ^[a-z0-9]{4,32}$
 *   LOG_LEVEL / LOG_FORMAT  --log-level / --log-format; default info / human
 * A setting that is invalid makes mr_runtime_open fail with MR_EINVAL and a message that starts
 * with the setting's name ("MINDROOM_NAMESPACE: ..."); mr_service_main exits 2 on those.
 *
 * A runtime resolves only the settings its service uses (mr_runtime_opts.uses): without
 * MR_RUNTIME_USES_CONFIG no config.yaml is looked up (nor the .env beside it) and the storage
 * path defaults to ./mindroom_data; without _BUS, _STORE or _MATRIX their variables are not read
 * and rt->bus, rt->store or settings.server_name stay NULL; without _SECRET the store is opened
 * without the instance secret.
 */
#ifndef MINDROOM_RUNTIME_H
#define MINDROOM_RUNTIME_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "mindroom/bus.h"
#include "mindroom/config.h"
#include "mindroom/dotenv.h"
#include "mindroom/err.h"
#include "mindroom/http.h"
#include "mindroom/ids.h"
#include "mindroom/llm.h"
#include "mindroom/log.h"
#include "mindroom/store.h"

#define MR_RUNTIME_SECRET_MAX 64

/* The settings a service uses, for mr_runtime_opts.uses and mr_service_def.uses. */
enum {
    MR_RUNTIME_USES_CONFIG = 1u << 0,  /* config.yaml, the .env beside it, SIGHUP reloads */
    MR_RUNTIME_USES_BUS = 1u << 1,     /* MINDROOM_BUS_URL */
    MR_RUNTIME_USES_STORE = 1u << 2,   /* MINDROOM_STORE_URL */
    MR_RUNTIME_USES_SECRET = 1u << 3,  /* MINDROOM_INSTANCE_SECRET: values sealed in the store */
    MR_RUNTIME_USES_MATRIX = 1u << 4,  /* MATRIX_HOMESERVER, MATRIX_SERVER_NAME, MINDROOM_NAMESPACE */
    MR_RUNTIME_USES_ALL = (1u << 5) - 1,
};

typedef struct mr_runtime_opts {
    const char *service;      /* "authz": log component; MINDROOM_AUTHZ_LISTEN; NULL for `run` */
    bool distributed;         /* a `mindroom-<service>` binary: bus and store URLs are required */
    unsigned uses;            /* MR_RUNTIME_USES_* the service needs; 0 means all (`mindroom run`) */
    /* Command-line values, NULL when not given; they win over every other source. */
    const char *config_path;
    const char *storage_path;
    const char *log_level;
    const char *log_format;
    /* Models are called in this process (`run`, mindroom-agent): their API key and base URL
     * variables are copied from .env into the process environment, where the model client
     * reads them, while no thread runs yet; a missing key is a warning. */
    bool model_settings;
} mr_runtime_opts;

/* The resolved settings; read-only once mr_runtime_open returns. */
typedef struct mr_runtime_settings {
    unsigned uses;            /* MR_RUNTIME_USES_*: what was resolved; the rest is NULL */
    char *config_path;        /* absolute, so a reload reads the same file */
    char *env_path;           /* <config dir>/.env, read when it exists */
    char *storage_path;       /* absolute */
    char *bus_url;
    char *store_url;
    char *homeserver;         /* NULL when unset */
    char *server_name;
    char ns[MR_NAMESPACE_MAX + 1]; /* normalised; "" for none */
    unsigned char secret[MR_RUNTIME_SECRET_MAX];
    size_t secret_len;
    bool secret_from_file;    /* the secret came from <storage>/instance_secret */
    mr_log_level log_level;
    mr_log_format log_format;
} mr_runtime_settings;

typedef struct mr_runtime_state mr_runtime_state;

typedef struct mr_runtime {
    const char *service;      /* component name for logs ("authz", or "mindroom") */
    mr_runtime_settings settings;
    mr_dotenv env;            /* the .env next to the config (empty when there is none) */
    mr_bus *bus;
    mr_store *store;
    mr_http_metrics *metrics; /* served on /metrics; services declare their own series */
    mr_runtime_state *state;  /* config pointer, stop flag, checks, signal thread: see runtime.c */
} mr_runtime;

/* Resolves the settings, configures logging, loads the config (every diagnostic is logged),
 * creates the storage directory and the secret file when needed, and opens the store and the
 * bus. MR_EINVAL: a setting or the config is invalid (message starts with the setting's name);
 * anything else: a peer or the file system failed. */
mr_code mr_runtime_open(const mr_runtime_opts *opts, mr_runtime **out, mr_err *err);
/* Stops the signal watcher if any, closes bus and store, drops the config. NULL is a no-op. */
void mr_runtime_close(mr_runtime *rt);

/* The first thing a long-running program's main() calls, with its own argv: runs the program
 * again in place (same PID, arguments, descriptors) with glibc's per-thread malloc cache off,
 * unless GLIBC_TUNABLES already sets glibc.malloc.tcache_count (the operator's value stands).
 * Returns only when there is nothing to do or the exec failed (the program then runs as it
 * is). Each thread's cache keeps freed blocks out of every other thread's reach: with thirty
 * threads that held about 1 MiB (bench/pipeline/README.md). Programs it starts inherit the
 * setting through the environment. */
void mr_runtime_tune_exec(char **argv);

/* env > .env > fallback for a setting the runtime does not resolve itself (flag wins when
 * non-NULL); an empty value counts as unset. Borrowed from one of the sources. */
const char *mr_runtime_setting(const mr_runtime *rt, const char *flag, const char *key,
                               const char *fallback);

/* text as the whole number setting key holds: an optional '-' and decimal digits only, from
 * min to max. Else MR_EINVAL, `KEY: "text" is not a whole number from MIN to MAX`, *out kept.
 * For a service that reads its settings without a runtime (provisioning, upstream-auth). */
mr_code mr_runtime_parse_long(const char *key, const char *text, long min, long max, long *out,
                              mr_err *err);
/* The setting key (env > .env, empty as unset) read by mr_runtime_parse_long; dflt when unset. */
mr_code mr_runtime_setting_long(const mr_runtime *rt, const char *key, long dflt, long min,
                                long max, long *out, mr_err *err);

/* The current config with a reference taken (NULL for a runtime without MR_RUNTIME_USES_CONFIG):
 * hold it for one message, then mr_config_release.
 * *generation (may be NULL) counts successful reloads, so a service can tell when to rebuild
 * what it derives from the config. */
mr_config *mr_runtime_config(const mr_runtime *rt, unsigned long *generation);
/* Loads the config file again; swaps it in only when it is valid. A broken file logs every
 * diagnostic, keeps the old config and returns MR_EINVAL. MR_OK and nothing to do for a runtime
 * without a config. */
mr_code mr_runtime_reload(const mr_runtime *rt, mr_err *err);

/* The stop flag. mr_runtime_stop may be called from any thread (and by the signal watcher). */
void mr_runtime_stop(const mr_runtime *rt);
bool mr_runtime_stopping(const mr_runtime *rt);
/* Sleeps up to ms, returning early (true) when a stop is requested. */
bool mr_runtime_sleep(const mr_runtime *rt, int ms);

/* How mr_runtime_consume reads a service's input topics. */
typedef struct mr_runtime_consumer mr_runtime_consumer;
/* Called after each poll with its result; decides readiness, logging and any pause. */
typedef void (*mr_runtime_after_poll)(const mr_runtime *rt, const mr_runtime_consumer *c, mr_bus_consumer *bc,
                                      mr_code rc, const mr_err *err);
struct mr_runtime_consumer {
    const char *component;      /* names the service in log lines */
    const char *group;
    const char *const *topics;
    size_t n_topics;
    int poll_timeout_ms;
    size_t batch;               /* messages per poll, at most */
    int subscribe_retry_ms;     /* the pause after the bus refuses to subscribe */
    mr_bus_handler handler;
    void *ctx;                  /* the handler's */
    atomic_bool *consuming;     /* readiness flag, set by the default after_poll */
    /* NULL: the default, which sets *consuming after a poll without error and logs a failed
     * one. */
    mr_runtime_after_poll after_poll;
};
/* Subscribes and polls until the runtime stops; while the bus refuses to subscribe, logs that
 * and tries again. A failed poll is for after_poll to judge: the bus reconnects by itself, and a
 * message whose handling failed comes again, after a pause of 200 ms that doubles while polls
 * keep failing, up to 5 s. */
void mr_runtime_consume(const mr_runtime *rt, const mr_runtime_consumer *c);

/* Blocks SIGHUP, SIGINT and SIGTERM in the calling thread and the threads it starts later. Call
 * it first in main(), before anything starts threads (librdkafka, libmicrohttpd). */
mr_code mr_runtime_block_signals(mr_err *err);
/* Starts a thread that takes those signals: SIGHUP reloads the config (mr_runtime_reload),
 * SIGINT and SIGTERM stop the runtime. mr_runtime_close ends it. */
mr_code mr_runtime_watch_signals(const mr_runtime *rt, mr_err *err);

/* Readiness: /readyz asks mr_runtime_ready (an mr_http_ready_fn whose ctx is the runtime), which
 * pings the store (when there is one) and then each added check (at most 8). A service adds its checks when it
 * starts and removes them before it returns. Checks run under the runtime's lock, so that
 * removing one waits for it to finish: a check reads its service's flags and nothing more (no
 * runtime calls). */
mr_code mr_runtime_add_check(const mr_runtime *rt, mr_http_ready_fn fn, void *ctx, mr_err *err);
void mr_runtime_remove_check(const mr_runtime *rt, mr_http_ready_fn fn, void *ctx);
bool mr_runtime_ready(void *ctx, char *why, size_t cap);

/* Routes of a service's own on the --listen server: requests other than /healthz, /readyz and
 * /metrics go to fn (404 while none is set). A service sets it when it starts; setting NULL
 * before it returns waits for the calls in flight, so ctx may be freed afterwards. */
void mr_runtime_set_http_handler(const mr_runtime *rt, mr_http_handler fn, void *ctx);
/* What the --listen server answers (ctx is the runtime): the health endpoints, else the
 * service's handler, else 404. */
mr_http_response *mr_runtime_http_handle(void *ctx, const mr_http_request *req);
/* {"detail": "<formatted>"} with status: the error shape of the services' own JSON APIs
 * (provisioning, upstream-auth), the text cut at 1023 bytes. */
mr_http_response *mr_runtime_reply_detail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
mr_http_response *mr_runtime_vreply_detail(int status, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* ---- a service binary ------------------------------------------------------------------- */

typedef struct mr_service_def {
    const char *name;         /* "authz": binary mindroom-authz, variable MINDROOM_AUTHZ_LISTEN */
    const char *summary;      /* one line for --help */
    /* Returns 0 on a clean stop, 1 on a failure, 2 when a setting of its own is invalid (it has
     * logged which): the binary then exits 2 as for any other invalid setting. */
    int (*serve)(const mr_runtime *rt);
    /* MR_RUNTIME_USES_*: exactly the settings the service reads; the binary requires those (bus
     * and store URLs included) and no others, and --help lists them. 0 means all. */
    unsigned uses;
    /* More lines for --help's Environment list: the service's own variables; may be NULL. */
    const char *settings_help;
    bool calls_models;        /* sets mr_runtime_opts.model_settings */
    /* Serve HTTP from a pool of polling threads (one per core, at least 2) rather than a thread
     * per connection: for services whose handlers answer most requests from memory. Their
     * handler must hand what waits (store, upstream calls) to a worker: on a polling thread
     * (req->may_block false) it returns mr_http_reply_later for those. */
    bool http_pool;
    /* serve installs an HTTP handler (mr_runtime_set_http_handler): /readyz answers 503 while
     * none is, from the server's start until serve installs it and again once it removes it, so
     * an ingress never sends a request to a process that would answer it 404. */
    bool routes;
    /* serve adds its own readiness check (mr_runtime_add_check): /readyz answers 503 from the
     * server's start until it has, so a process is never ready before serve can say. */
    bool serve_check;
    /* --listen when neither the flag nor MINDROOM_<NAME>_LISTEN is set; NULL: no HTTP server. */
    const char *default_listen;
    /* Request bodies the --listen server takes before it answers 413; 0: libs/http's default. */
    size_t http_max_body;
    /* The --listen server's own error answers (413, 404, ...) in the service's shape; NULL: the
     * Matrix shape. */
    mr_http_error_fn http_error_reply;
    /* Checks the service's own settings before anything waits on a peer, so that an invalid one
     * exits 2 at once even while the store is down; may be NULL. MR_EINVAL with a message that
     * starts with the setting's name. */
    mr_code (*check_settings)(const mr_runtime *rt, mr_err *err);
} mr_service_def;

typedef enum mr_runtime_model_env_status {
    MR_RUNTIME_MODEL_READY = 0,    /* the client can be made: key set or none needed */
    MR_RUNTIME_MODEL_UNSUPPORTED,  /* the provider does not speak the OpenAI API (yet) */
    MR_RUNTIME_MODEL_NO_KEY,       /* *key_var is set in neither the environment nor .env */
    MR_RUNTIME_MODEL_NOT_PASSED,   /* setenv failed */
} mr_runtime_model_env_status;

/* Passes the model's key variable (*key_var: model api_key_env, else the provider's; NULL when
 * it needs none) and its provider's base URL variable (OPENAI_BASE_URL, ...) from env (may be
 * NULL) to the process environment unless the environment has them. Call it only while no
 * other thread runs. */
mr_runtime_model_env_status mr_runtime_model_env(const mr_model_cfg *m, const mr_dotenv *env,
                                                 const mr_llm_provider **provider,
                                                 const char **key_var);

/* The whole main() of `mindroom-<name>`: --help, --version, --config (when it uses one),
 * --listen HOST:PORT (or MINDROOM_<NAME>_LISTEN; no HTTP server when neither is set) for
 * /healthz, /readyz and /metrics, --log-level, --log-format. Invalid settings print `mindroom-<name>: <SETTING>: <what
 * is wrong>` and return 2; a failure at start or in the service returns 1; a clean stop 0. */
int mr_service_main(int argc, char **argv, const mr_service_def *def);

#endif
