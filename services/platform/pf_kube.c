/* pf_kube.c -- the Kubernetes API as the platform uses it: server-side apply, get, list by
 * instance label and delete, over libs/http's libcurl client with the service account's bearer
 * token and CA. */
#include "pf_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"

/* Where each kind an instance can own is served (the apiserver's group, version, resource). */
typedef struct kind_path {
    const char *kind;
    const char *prefix;     /* "/api/v1" or "/apis/<group>/<version>" */
    const char *resource;
} kind_path;

static const kind_path kinds[] = {
    {"Secret", "/api/v1", "secrets"},
    {"ConfigMap", "/api/v1", "configmaps"},
    {"Service", "/api/v1", "services"},
    {"ServiceAccount", "/api/v1", "serviceaccounts"},
    {"Deployment", "/apis/apps/v1", "deployments"},
    {"HorizontalPodAutoscaler", "/apis/autoscaling/v2", "horizontalpodautoscalers"},
    {"PodDisruptionBudget", "/apis/policy/v1", "poddisruptionbudgets"},
    {"Ingress", "/apis/networking.k8s.io/v1", "ingresses"},
    {"NetworkPolicy", "/apis/networking.k8s.io/v1", "networkpolicies"},
    {"ScaledObject", "/apis/keda.sh/v1alpha1", "scaledobjects"},
};

const char *const pf_kube_instance_kinds[] = {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                                              "ScaledObject", "Service", "Ingress", "NetworkPolicy", "ConfigMap",
                                              "ServiceAccount",
                                              "Secret", NULL};

struct pf_kube {
    mr_http_client *http;
    char *ns;
    pthread_mutex_t lock;   /* the client is not thread-safe */
};

static const kind_path *find_kind(const char *kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kind && strcmp(kinds[i].kind, kind) == 0)
            return &kinds[i];
    return NULL;
}

/* The bearer token: the file's content without its trailing newline. */
static mr_code read_token(const char *path, char **out, mr_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return mr_err_set(err, MR_EIO, "MINDROOM_PLATFORM_KUBE_TOKEN_FILE: cannot open %s", path);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!*buf)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PLATFORM_KUBE_TOKEN_FILE: %s is empty", path);
    *out = strdup(buf);
    memset(buf, 0, sizeof buf);
    return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory reading the token");
}

mr_code pf_kube_open(const pf_settings *s, pf_kube **out, mr_err *err)
{
    char *token = NULL;
    mr_code rc = read_token(s->token_file, &token, err);
    if (rc != MR_OK)
        return rc;
    pf_kube *k = calloc(1, sizeof *k);
    if (!k || !(k->ns = strdup(s->ns))) {
        free(k);
        free(token);
        return mr_err_set(err, MR_ENOMEM, "out of memory opening the Kubernetes client");
    }
    /* The CA only matters for https; a plain-http URL (a local test API) has none to check. */
    bool https = strncmp(s->kube_url, "https://", 8) == 0;
    mr_http_client_opts o = {.base_url = s->kube_url, .bearer_token = token, .ca_file = https ? s->ca_file : NULL,
                             .user_agent = "mindroom-platform"};
    rc = mr_http_client_new(&o, &k->http, err);
    memset(token, 0, strlen(token));
    free(token);
    if (rc != MR_OK) {
        free(k->ns);
        free(k);
        return rc;
    }
    pthread_mutex_init(&k->lock, NULL);
    *out = k;
    return MR_OK;
}

void pf_kube_close(pf_kube *k)
{
    if (!k)
        return;
    mr_http_client_free(k->http);
    pthread_mutex_destroy(&k->lock);
    free(k->ns);
    free(k);
}

/* One call; a non-2xx answer becomes an error carrying the Status message the API sent. */
static mr_code call(pf_kube *k, const char *method, const char *path, const char *query, const char *body,
                    const char *content_type, json_t **out, long *status, mr_err *err)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s%s", path, query ? "?" : "", query ? query : "");
    mr_http_call c = {.method = method, .url = url, .body = body, .body_len = body ? strlen(body) : 0,
                      .content_type = content_type};
    mr_http_result r;
    pthread_mutex_lock(&k->lock);
    mr_code rc = mr_http_client_do(k->http, &c, &r, err);
    pthread_mutex_unlock(&k->lock);
    if (rc == MR_OK) {
        *status = r.status;
        json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
        if (r.status >= 200 && r.status < 300) {
            if (out)
                *out = j;
            else
                json_decref(j);
        } else {
            const char *msg = json_string_value(json_object_get(j, "message"));
            rc = mr_err_set(err, r.status == 404 ? MR_ENOTFOUND : r.status == 409 ? MR_ECONFLICT : MR_EIO,
                            "%s %s: %ld %s", method, path, r.status, msg ? msg : "(no Status message)");
            json_decref(j);
        }
    }
    mr_http_result_clear(&r);
    return rc;
}

static mr_code object_path(pf_kube *k, const char *kind, const char *name, char *out, size_t cap, mr_err *err)
{
    const kind_path *kp = find_kind(kind);
    if (!kp)
        return mr_err_set(err, MR_EINVAL, "the instance chart rendered a %s, which the platform does not apply",
                          kind ? kind : "(kindless object)");
    snprintf(out, cap, "%s/namespaces/%s/%s%s%s", kp->prefix, k->ns, kp->resource, name ? "/" : "", name ? name : "");
    return MR_OK;
}

mr_code pf_kube_apply(pf_kube *k, const json_t *obj, mr_err *err)
{
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    char path[512];
    mr_code rc = object_path(k, kind, name ? name : "", path, sizeof path, err);
    if (rc != MR_OK)
        return rc;
    char *body = json_dumps(obj, JSON_COMPACT);
    if (!body)
        return mr_err_set(err, MR_ENOMEM, "out of memory serialising %s %s", kind, name);
    long status = 0;
    /* force: the platform is the one manager of what it renders; a field someone changed by
     * hand is drift it takes back. */
    rc = call(k, "PATCH", path, "fieldManager=" PF_FIELD_MANAGER "&force=true", body, "application/apply-patch+yaml",
              NULL, &status, err);
    /* A Secret body carries the generated values: wipe the serialisation. */
    memset(body, 0, strlen(body));
    free(body);
    return rc;
}

mr_code pf_kube_get(pf_kube *k, const char *kind, const char *name, json_t **out, mr_err *err)
{
    char path[512];
    long status = 0;
    mr_code rc = object_path(k, kind, name, path, sizeof path, err);
    return rc != MR_OK ? rc : call(k, "GET", path, NULL, NULL, NULL, out, &status, err);
}

mr_code pf_kube_list(pf_kube *k, const char *kind, const char *id, json_t **items, mr_err *err)
{
    char path[512], query[256];
    long status = 0;
    json_t *list = NULL;
    mr_code rc = object_path(k, kind, NULL, path, sizeof path, err);
    snprintf(query, sizeof query, "labelSelector=%s%%3D%s", PF_INSTANCE_LABEL, id);
    if (rc == MR_OK)
        rc = call(k, "GET", path, query, NULL, NULL, &list, &status, err);
    if (rc != MR_OK)
        return rc;
    *items = json_incref(json_object_get(list, "items"));
    json_decref(list);
    if (!json_is_array(*items)) {
        json_decref(*items);
        return mr_err_set(err, MR_EIO, "GET %s: the list has no items", path);
    }
    return MR_OK;
}

mr_code pf_kube_delete(pf_kube *k, const char *kind, const char *name, mr_err *err)
{
    char path[512];
    long status = 0;
    mr_code rc = object_path(k, kind, name, path, sizeof path, err);
    if (rc == MR_OK)
        rc = call(k, "DELETE", path, "propagationPolicy=Background", NULL, NULL, NULL, &status, err);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        rc = MR_OK;
    }
    return rc;
}
