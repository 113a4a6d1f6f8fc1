/* kube.h -- mr-test-kube-api: what its files share (resource table, object store, server-side
 * apply, Status errors, routes). */
#ifndef MINDROOM_KUBE_API_H
#define MINDROOM_KUBE_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <jansson.h>

#include "mindroom/http.h"

/* One served resource, as the apiserver's discovery lists it. */
typedef struct kube_resource {
    const char *group;       /* "" for the core group */
    const char *version;
    const char *name;        /* plural, the URL segment: "deployments" */
    const char *singular;
    const char *kind;
    const char *short_name;  /* kubectl's abbreviation ("deploy"), or NULL */
    bool namespaced;
    bool has_status;         /* a /status subresource */
} kube_resource;

/* One stored object with what the apiserver keeps beside it. */
typedef struct kube_object {
    const kube_resource *res;
    json_t *obj;             /* the object as served, without metadata.managedFields */
    json_t *managers;        /* {manager: {"op": "Apply"|"Update", "time": ..., "fields": {path: true}}} */
} kube_object;

typedef struct kube_runner kube_runner;

typedef struct kube {
    pthread_mutex_t lock;
    kube_object *objs;
    size_t n, cap;
    unsigned long long rv;    /* the last resourceVersion handed out (etcd's revision) */
    const char *token;        /* required bearer token; NULL: any request is let in */
    bool deployments_ready;   /* a Deployment's status follows its spec at once */
    kube_runner *runner;      /* --deployments run: pods as local processes; else NULL */
} kube;

/* A jansson call that fails only when memory runs out: a test peer has nothing better to do
 * then than stop. */
#define KUBE_MUST(call)        \
    do {                       \
        if ((call) != 0)       \
            abort();           \
    } while (0)

/* ---- kube_resources.c ---- */
extern const kube_resource kube_resources[];
extern const size_t kube_n_resources;
const kube_resource *kube_resource_find(const char *group, const char *version, const char *name);
/* "deployments.apps", or "configmaps" in the core group: how the apiserver names a resource
 * in messages. */
void kube_qualified(const kube_resource *r, char *out, size_t cap);
/* "apps/v1" or "v1". */
void kube_api_version(const kube_resource *r, char *out, size_t cap);

/* ---- kube_store.c (callers hold k->lock) ---- */
void kube_init(kube *k);
void kube_free(kube *k);
kube_object *kube_get(kube *k, const kube_resource *r, const char *ns, const char *name);
/* Adds obj (taken) as a new object with uid, creationTimestamp, generation 1. */
kube_object *kube_add(kube *k, const kube_resource *r, json_t *obj);
void kube_remove(kube *k, kube_object *o);
/* Stamps a new resourceVersion on o (after a change). */
void kube_touch(kube *k, kube_object *o);
/* A copy of o's object as served: with metadata.managedFields. Caller releases. */
json_t *kube_render(const kube_object *o);
/* Parses a label selector ("a=b,c!=d,e,!f,g in (x,y),h notin (z)"); NULL and why on a bad one. */
json_t *kube_selector_parse(const char *text, char *why, size_t cap);
bool kube_selector_match(const json_t *selector, const json_t *labels);
/* The Deployment's status the way the deployment controller leaves it once every replica is
 * available. */
void kube_deployment_settle(kube_object *o);
/* The status the deployment controller writes for `replicas` pods, `updated` of them from the
 * current template and `ready` of them ready. */
void kube_deployment_status(kube_object *o, json_int_t replicas, json_int_t updated, json_int_t ready);
void kube_now(char *out, size_t cap);

/* ---- kube_apply.c ---- */
/* Server-side apply of config (taken) by manager to the object at (r, ns, name), which may be
 * missing. *created says whether it was made. Returns the Status error, or NULL on success
 * with *out the stored object. */
mr_http_response *kube_apply(kube *k, const kube_resource *r, const char *ns, const char *name,
                             json_t *config, const char *manager, bool force, bool *created,
                             kube_object **out);
/* Records an Update by manager of the fields of `after` that differ from `before`, as the
 * apiserver does for PUT and non-apply PATCH. */
void kube_track_update(kube_object *o, const json_t *before, const char *manager);

/* ---- kube_status.c: errors as the apiserver's metav1.Status ---- */
mr_http_response *kube_status(int code, const char *reason, json_t *details, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
mr_http_response *kube_not_found(const kube_resource *r, const char *name);
mr_http_response *kube_bad_request(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
json_t *kube_details(const kube_resource *r, const char *name);

/* ---- kube_pod.c: a pod template made into a local process's argv and environment ---- */
#define KUBE_POD_PORTS 8

typedef struct kube_pod {
    char name[192];           /* <deployment>-<template hash>-<n>, as a ReplicaSet names pods */
    char ns[64], deployment[128];
    char hash[17];            /* the pod-template-hash: FNV-1a of the template, as Kubernetes */
    char dir[1024];           /* its volumes and HOME */
    char **argv, **envp;      /* NULL-terminated; owned */
    int container_ports[KUBE_POD_PORTS], ports[KUBE_POD_PORTS]; /* container port -> local */
    char port_names[KUBE_POD_PORTS][16];
    size_t nports;
    bool has_probe;           /* readinessProbe.httpGet */
    char probe_path[256];
    int probe_port;           /* local */
    int initial_delay_s, period_s, timeout_s, failure_threshold, grace_s;
    /* kube_run.c's */
    pid_t pid;                /* 0: not running */
    bool ready, stopping;
    int fails, restarts;
    double started, next_probe, restart_at, kill_at;
    char last_error[MR_ERR_MSG_MAX];
} kube_pod;

/* Under k->lock: fills pod (name set) from deployment's template: volumes made in dir (claims:
 * the directory persistent claims live in), ports, probe, argv (the binary `images` maps the
 * image to) and environment. False with err when it cannot start yet (a missing Secret). */
bool kube_pod_build(kube *k, const json_t *deployment, const json_t *images, const char *dir, const char *claims,
                    kube_pod *pod, mr_err *err);
void kube_pod_clear(kube_pod *pod);

/* ---- kube_run.c: --deployments run ---- */
kube_runner *kube_runner_new(void);
/* "NAME=PATH": pods whose image is NAME (without registry and tag) run PATH. False with why. */
bool kube_runner_image(kube_runner *r, const char *spec, char *why, size_t cap);
/* Starts the controller thread: Deployments become processes, their status follows. */
bool kube_runner_start(kube *k, char *why, size_t cap);
/* Stops every process (SIGTERM, SIGKILL after its grace period) and frees the runner. */
void kube_runner_stop(kube *k);

/* ---- kube_router.c ---- */
mr_http_response *kube_handle(void *ctx, const mr_http_request *req);

#endif
