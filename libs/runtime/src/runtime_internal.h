/* runtime_internal.h -- what the files of libs/runtime share and nothing else sees. */
#ifndef MINDROOM_RUNTIME_INTERNAL_H
#define MINDROOM_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "mindroom/runtime.h"

#define MR_RUNTIME_MAX_CHECKS 8

/* Copies every configured model's key and base URL variables from .env into the process
 * environment (model_env.c), warning about what is missing. */
void mr_runtime_export_model_settings(const mr_runtime *rt);

/* Process-wide memory settings of glibc (process_tune.c), made before any thread starts. */
mr_code mr_runtime_tune_process(mr_err *err);
/* False when malloc is not glibc's (AddressSanitizer's): the tuning above is then skipped. */
bool mr_runtime_glibc_malloc(void);

/* The pause after a failed poll that follows one of previous_ms (0: the last poll worked). */
int mr_runtime_failure_pause(int previous_ms);

typedef struct mr_runtime_check {
    mr_http_ready_fn fn;
    void *ctx;
} mr_runtime_check;

/* The mutable part of a runtime; services see the runtime as const and reach this only
 * through the functions of runtime.h. */
struct mr_runtime_state {
    pthread_mutex_t mu;          /* guards cfg, generation, checks; cv waits on it */
    pthread_cond_t cv;           /* broadcast on stop */
    mr_config *cfg;
    unsigned long generation;
    mr_runtime_check checks[MR_RUNTIME_MAX_CHECKS];
    size_t n_checks;
    size_t base_checks;          /* checks service_main added itself, before serve's */
    pthread_mutex_t reload_mu;   /* one reload at a time */
    /* The service's HTTP handler; readers call it under the lock so that clearing it waits
     * for them. Writer-preferring, so a stream of requests cannot hold a clear off. */
    pthread_rwlock_t http_lock;
    mr_http_handler http_fn;
    void *http_ctx;
    atomic_bool stop;
    atomic_bool closing;         /* tells the signal watcher to end */
    bool watching;
    pthread_t watcher;
    /* The last bus probe for /readyz, reused for BUS_PROBE_EVERY_MS so probes cannot flood
     * the brokers; guarded by bus_mu. */
    pthread_mutex_t bus_mu;
    long long bus_probed_ms;     /* 0: never */
    mr_code bus_rc;
    char bus_why[MR_ERR_MSG_MAX];
};

/* Resolves every setting of rt->settings but the secret (and reads rt->env), configuring the
 * logger on the way so later steps can log. Touches no file. */
mr_code mr_runtime_settings_resolve(const mr_runtime_opts *opts, mr_runtime *rt, mr_err *err);
/* The instance secret: MINDROOM_INSTANCE_SECRET, else the secret file (created when missing). */
mr_code mr_runtime_settings_secret(mr_runtime *rt, mr_err *err);
void mr_runtime_settings_free(mr_runtime_settings *s);

/* Decodes MINDROOM_INSTANCE_SECRET (hex, else base64 standard or URL-safe, padding optional)
 * into out; MR_EINVAL names the variable, never the value. */
mr_code mr_runtime_secret_decode(const char *text, unsigned char out[MR_RUNTIME_SECRET_MAX],
                                 size_t *len, mr_err *err);
/* Reads <storage>/instance_secret, creating it (32 random bytes, mode 0600, atomically, with
 * the storage directory) on first start. */
mr_code mr_runtime_secret_file(const char *storage, unsigned char out[MR_RUNTIME_SECRET_MAX],
                               size_t *len, mr_err *err);

/* Loads path, logging every diagnostic under component; MR_EINVAL when it has errors. */
mr_code mr_runtime_load_config(const char *component, const char *path, mr_config **out, mr_err *err);

/* Copies url with the password of a user:password@ part replaced by ***, for logs. */
void mr_runtime_mask_url(const char *url, char *out, size_t cap);

/* Ends the signal watcher, if one runs. */
void mr_runtime_unwatch_signals(const mr_runtime *rt);
/* A readiness check (ctx: the runtime) that holds while an HTTP handler is installed. */
bool mr_runtime_routes_installed(void *ctx, char *why, size_t cap);
/* A readiness check: false until serve added a check of its own. Checks run under the state's
 * lock, which this one reads without taking again. */
bool mr_runtime_serve_check_added(void *ctx, char *why, size_t cap);
/* The checks added so far are service_main's: mr_runtime_serve_check_added waits for more. */
void mr_runtime_checks_from_here(const mr_runtime *rt);

#endif
