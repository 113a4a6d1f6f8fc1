/* pf_internal.h -- what mindroom-platform's files share: settings, the Kubernetes client, chart
 * rendering and the instance lifecycle. */
#ifndef MINDROOM_PF_INTERNAL_H
#define MINDROOM_PF_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <jansson.h>

#include "mindroom/err.h"
#include "mindroom/http.h"
#include "mindroom/runtime.h"

#define PF_COMPONENT "platform"
#define PF_FIELD_MANAGER "mindroom-platform"
#define PF_INSTANCE_LABEL "app.kubernetes.io/instance"

typedef struct pf_settings {
    char *ns;               /* MINDROOM_PLATFORM_NAMESPACE */
    char *chart;            /* MINDROOM_PLATFORM_INSTANCE_CHART */
    char *helm;             /* MINDROOM_PLATFORM_HELM */
    char *kube_url;
    char *token_file;
    char *ca_file;
    char *api_key;          /* operator bearer token; NULL when unset */
    char *user_id_header;   /* trusted identity header; NULL when trusted auth is off */
    char *scratch;          /* where values files are written for helm (the storage path) */
    long max_per_owner;
    long reconcile_ms;
    json_t *instance_trusted; /* the instance chart's trustedUpstreamAuth values */
    json_t *instance_values;  /* MINDROOM_PLATFORM_INSTANCE_VALUES: every instance's base values */
    json_t *instance_secrets; /* INSTANCE_SECRET_<NAME>: name -> value copied into each new Secret */
} pf_settings;

/* ---- pf_settings.c ---- */
/* MR_EINVAL naming the variable on a bad value. */
mr_code pf_settings_load(const mr_runtime *rt, pf_settings *s, mr_err *err);
void pf_settings_free(pf_settings *s);

/* ---- pf_kube.c: the Kubernetes API over libcurl (one client, calls serialised) ---- */
typedef struct pf_kube pf_kube;
mr_code pf_kube_open(const pf_settings *s, pf_kube **out, mr_err *err);
void pf_kube_close(pf_kube *k);
/* Server-side apply of obj (force: the platform owns what it applies). */
mr_code pf_kube_apply(pf_kube *k, const json_t *obj, mr_err *err);
/* MR_ENOTFOUND when absent. */
mr_code pf_kube_get(pf_kube *k, const char *kind, const char *name, json_t **out, mr_err *err);
/* Items of kind carrying label instance=id. */
mr_code pf_kube_list(pf_kube *k, const char *kind, const char *id, json_t **items, mr_err *err);
/* Deletes (Background propagation); an absent object is no error. */
mr_code pf_kube_delete(pf_kube *k, const char *kind, const char *name, mr_err *err);
/* The kinds an instance may own, for pruning and deletion; NULL-terminated. */
extern const char *const pf_kube_instance_kinds[];

/* ---- pf_render.c ---- */
/* `helm template <release> <chart> --namespace NS -f <values>`, parsed into a JSON array of
 * objects. MR_EINVAL (with helm's reason) when the values are refused. */
mr_code pf_render(const pf_settings *s, const char *release, const json_t *values, json_t **docs, mr_err *err);
/* Multi-document YAML to a JSON array of its documents (empty ones skipped). */
mr_code pf_yaml_docs(const char *text, size_t len, json_t **out, mr_err *err);

/* ---- pf_instances.c ---- */
#define PF_LOCK_STRIPES 32

typedef struct pf_service {
    const mr_runtime *rt;
    pf_settings settings;
    pf_kube *kube;
    pthread_mutex_t lock;   /* an owner's count and a new record change together (the quota) */
    pthread_mutex_t stripes[PF_LOCK_STRIPES]; /* one operation at a time per instance */
} pf_service;

/* The lock of one instance's operations; taken before svc->lock, never after. */
pthread_mutex_t *pf_instance_lock(pf_service *svc, const char *id);

/* Each returns an HTTP status and sets *body (a JSON object: the instance, a list, or
 * {"detail"}). owner NULL: the operator, who sees every instance. */
int pf_instance_create(pf_service *svc, const char *owner, const json_t *req, json_t **body);
int pf_instance_get(pf_service *svc, const char *owner, const char *id, json_t **body);
int pf_instance_list(pf_service *svc, const char *owner, json_t **body);
int pf_instance_set_suspended(pf_service *svc, const char *owner, const char *id, bool suspended, json_t **body);
/* New caller values ({"values": {...}}), rendered and applied; refused ones change nothing. */
int pf_instance_upgrade(pf_service *svc, const char *owner, const char *id, const json_t *req, json_t **body);
int pf_instance_delete(pf_service *svc, const char *owner, const char *id, json_t **body);
/* Finishes interrupted operations and re-applies every instance; logs what fails. */
void pf_reconcile(pf_service *svc);

/* ---- pf_secret.c: an instance's Secret ---- */
typedef struct pf_secret {
    char name[128];     /* <id>-secrets */
    json_t *data;       /* name -> value: what the Secret is to hold */
    char checksum[65];  /* SHA-256 (hex) of data: the instance's secrets.checksum */
} pf_secret;
/* What the instance's Secret is to hold: the generated values it has (new ones for a new
 * instance) and the platform's INSTANCE_SECRET_* as they are now, with their digest. Free with
 * pf_secret_free, which wipes the values. */
mr_code pf_secret_prepare(pf_service *svc, const char *id, pf_secret *out, mr_err *err);
/* Server-side apply of it: nothing is written when nothing changed. */
mr_code pf_secret_apply(pf_service *svc, const char *id, const pf_secret *s, mr_err *err);
void pf_secret_free(pf_secret *s);

/* ---- pf_routes.c ---- */
mr_http_response *pf_routes_handle(void *ctx, const mr_http_request *req);

#endif
