/* kube_store.c -- mr-test-kube-api's objects in memory: identity (uid, resourceVersion,
 * generation), managedFields as served, label selectors, and the Deployment status the
 * controllers would write. */
#include "kube.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void kube_now(char *out, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void new_uid(char *out, size_t cap)
{
    unsigned char b[16] = {0};
    /* A uid must never repeat; without the kernel's random bytes the peer cannot promise that. */
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        abort();
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, cap, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static json_t *meta(json_t *obj)
{
    json_t *m = json_object_get(obj, "metadata");
    if (!json_is_object(m)) {
        m = json_object();
        if (!m || json_object_set_new(obj, "metadata", m) != 0)
            abort();
    }
    return m;
}

static void set_or_die(json_t *o, const char *key, json_t *v)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        abort();
}

void kube_init(kube *k)
{
    memset(k, 0, sizeof *k);
    pthread_mutex_init(&k->lock, NULL);
    k->deployments_ready = true;
    /* A new cluster has these namespaces. */
    const char *initial[] = {"default", "kube-system", "kube-public", "kube-node-lease"};
    const kube_resource *ns = kube_resource_find("", "v1", "namespaces");
    for (size_t i = 0; i < sizeof initial / sizeof initial[0]; i++) {
        json_t *o = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                              "metadata", "name", initial[i], "status", "phase", "Active");
        if (!o)
            abort();
        kube_add(k, ns, o);
    }
}

void kube_free(kube *k)
{
    for (size_t i = 0; i < k->n; i++) {
        json_decref(k->objs[i].obj);
        json_decref(k->objs[i].managers);
    }
    free(k->objs);
    pthread_mutex_destroy(&k->lock);
}

static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

kube_object *kube_get(kube *k, const kube_resource *r, const char *ns, const char *name)
{
    for (size_t i = 0; i < k->n; i++) {
        kube_object *o = &k->objs[i];
        const char *ons = str_at(o->obj, "namespace");
        if (o->res == r && strcmp(str_at(o->obj, "name"), name) == 0 &&
            (!r->namespaced || (ons && ns && strcmp(ons, ns) == 0)))
            return o;
    }
    return NULL;
}

void kube_touch(kube *k, kube_object *o)
{
    char rv[32];
    snprintf(rv, sizeof rv, "%llu", ++k->rv);
    set_or_die(meta(o->obj), "resourceVersion", json_string(rv));
}

kube_object *kube_add(kube *k, const kube_resource *r, json_t *obj)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        kube_object *grown = realloc(k->objs, cap * sizeof *grown);
        if (!grown)
            abort();
        k->objs = grown;
        k->cap = cap;
    }
    kube_object *o = &k->objs[k->n++];
    o->res = r;
    o->obj = obj;
    o->managers = json_object();
    if (!o->managers)
        abort();
    json_t *m = meta(obj);
    char uid[40], now[32];
    new_uid(uid, sizeof uid);
    kube_now(now, sizeof now);
    set_or_die(m, "uid", json_string(uid));
    set_or_die(m, "creationTimestamp", json_string(now));
    /* Only kinds with a spec count generations (Namespaces and ConfigMaps have none). */
    if (json_object_get(obj, "spec") || strcmp(r->kind, "Deployment") == 0)
        set_or_die(m, "generation", json_integer(1));
    kube_touch(k, o);
    return o;
}

void kube_remove(kube *k, kube_object *o)
{
    json_decref(o->obj);
    json_decref(o->managers);
    size_t i = (size_t)(o - k->objs);
    memmove(&k->objs[i], &k->objs[i + 1], (k->n - i - 1) * sizeof *o);
    k->n--;
}

/* {"f:spec": {"f:replicas": {}}} from {"spec\x1freplicas": true}: the FieldsV1 form. */
static json_t *fields_v1(const json_t *paths)
{
    json_t *root = json_object();
    const char *path;
    json_t *v;
    json_object_foreach((json_t *)paths, path, v) {
        json_t *node = root;
        const char *p = path;
        while (p) {
            const char *sep = strchr(p, '\x1f');
            char key[512];
            snprintf(key, sizeof key, "f:%.*s", (int)(sep ? (size_t)(sep - p) : strlen(p)), p);
            json_t *child = json_object_get(node, key);
            if (!child) {
                child = json_object();
                set_or_die(node, key, child);
            }
            node = child;
            p = sep ? sep + 1 : NULL;
        }
    }
    return root;
}

json_t *kube_render(const kube_object *o)
{
    json_t *out = json_deep_copy(o->obj);
    if (!out)
        abort();
    if (json_object_size(o->managers) == 0)
        return out;
    json_t *list = json_array();
    char api[64];
    kube_api_version(o->res, api, sizeof api);
    const char *name;
    json_t *m;
    json_object_foreach(o->managers, name, m) {
        json_t *e = json_pack("{s:s, s:O, s:s, s:O, s:s, s:o}", "manager", name, "operation",
                              json_object_get(m, "op"), "apiVersion", api, "time", json_object_get(m, "time"),
                              "fieldsType", "FieldsV1", "fieldsV1", fields_v1(json_object_get(m, "fields")));
        if (!e || json_array_append_new(list, e) != 0)
            abort();
    }
    set_or_die(meta(out), "managedFields", list);
    return out;
}

/* ---- label selectors (k8s.io/apimachinery/pkg/labels: Parse) ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Label names and values: [A-Za-z0-9._/-], as the apiserver's validation allows. */
static bool label_token(const char *s, bool allow_empty)
{
    if (!*s)
        return allow_empty;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-/", *s))
            return false;
    return true;
}

static json_t *requirement(char *text, char *why, size_t cap)
{
    char *t = trim(text);
    const char *op = NULL;
    char *key = t, *vals = NULL;
    char *p;
    if (*t == '!') {
        op = "!";
        key = trim(t + 1);
    } else if ((p = strstr(t, " notin ")) || (p = strstr(t, " in "))) {
        op = p[1] == 'n' ? "notin" : "in";
        *p = '\0';
        vals = trim(p + (op[0] == 'n' ? 7 : 4));
        size_t n = strlen(vals);
        if (n < 2 || vals[0] != '(' || vals[n - 1] != ')') {
            snprintf(why, cap, "unable to parse requirement: found '%s', expected: '('", vals);
            return NULL;
        }
        vals[n - 1] = '\0';
        vals++;
    } else if ((p = strstr(t, "!="))) {
        op = "!=";
        *p = '\0';
        vals = p + 2;
    } else if ((p = strstr(t, "=="))) {
        op = "=";
        *p = '\0';
        vals = p + 2;
    } else if ((p = strchr(t, '='))) {
        op = "=";
        *p = '\0';
        vals = p + 1;
    } else {
        op = "exists";
    }
    key = trim(key);
    if (!label_token(key, false)) {
        snprintf(why, cap, "unable to parse requirement: invalid label key \"%s\"", key);
        return NULL;
    }
    json_t *values = json_array();
    for (char *save = NULL, *v = vals ? strtok_r(vals, ",", &save) : NULL; v; v = strtok_r(NULL, ",", &save)) {
        v = trim(v);
        if (!label_token(v, true)) {
            snprintf(why, cap, "unable to parse requirement: invalid label value: \"%s\"", v);
            json_decref(values);
            return NULL;
        }
        KUBE_MUST(json_array_append_new(values, json_string(v)));
    }
    return json_pack("{s:s, s:s, s:o}", "key", key, "op", op, "values", values);
}

json_t *kube_selector_parse(const char *text, char *why, size_t cap)
{
    json_t *reqs = json_array();
    char *copy = strdup(text ? text : "");
    if (!reqs || !copy)
        abort();
    /* Requirements are split on commas outside the parentheses of a set. */
    int depth = 0;
    char *start = copy;
    for (char *c = copy;; c++) {
        if (*c == '(')
            depth++;
        else if (*c == ')')
            depth--;
        if (*c == '\0' || (*c == ',' && depth == 0)) {
            bool end = *c == '\0';
            *c = '\0';
            if (*trim(start)) {
                json_t *r = requirement(start, why, cap);
                if (!r) {
                    free(copy);
                    json_decref(reqs);
                    return NULL;
                }
                KUBE_MUST(json_array_append_new(reqs, r));
            }
            if (end)
                break;
            start = c + 1;
        }
    }
    free(copy);
    return reqs;
}

static bool in_values(const json_t *values, const char *v)
{
    size_t i;
    json_t *x;
    json_array_foreach(values, i, x)
        if (v && strcmp(json_string_value(x), v) == 0)
            return true;
    return false;
}

bool kube_selector_match(const json_t *selector, const json_t *labels)
{
    size_t i;
    json_t *r;
    json_array_foreach(selector, i, r) {
        const char *op = json_string_value(json_object_get(r, "op"));
        const char *v = json_string_value(json_object_get(labels, json_string_value(json_object_get(r, "key"))));
        const json_t *values = json_object_get(r, "values");
        bool ok = strcmp(op, "exists") == 0 ? v != NULL
                  : strcmp(op, "!") == 0    ? v == NULL
                  : strcmp(op, "=") == 0 || strcmp(op, "in") == 0 ? in_values(values, v)
                  /* != and notin also match objects without the label, as Kubernetes does. */
                  : !in_values(values, v);
        if (!ok)
            return false;
    }
    return true;
}

void kube_deployment_settle(kube_object *o)
{
    json_int_t replicas = json_integer_value(json_object_get(json_object_get(o->obj, "spec"), "replicas"));
    kube_deployment_status(o, replicas, replicas, replicas);
}

void kube_deployment_status(kube_object *o, json_int_t replicas, json_int_t updated, json_int_t ready)
{
    json_int_t want = json_integer_value(json_object_get(json_object_get(o->obj, "spec"), "replicas"));
    json_t *gen = json_object_get(json_object_get(o->obj, "metadata"), "generation");
    char now[32];
    kube_now(now, sizeof now);
    /* As the deployment controller writes it (pkg/controller/deployment/sync.go,
     * calculateStatus); counts that are 0 are omitted, as the API's omitempty leaves them out.
     * Available needs every wanted replica ready: maxUnavailable's 25% rounds down to 0 for the
     * small counts an instance runs. */
    json_t *st = json_pack("{s:O}", "observedGeneration", gen);
    if (!st)
        abort();
    const char *names[] = {"replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"};
    json_int_t counts[] = {replicas, updated, ready, ready, want > ready ? want - ready : 0};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i] > 0)
            set_or_die(st, names[i], json_integer(counts[i]));
    bool available = ready >= want, done = available && updated >= want && replicas == updated;
    json_t *conds = json_pack(
        "[{s:s, s:s, s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:s, s:s}]", "type", "Available", "status",
        available ? "True" : "False", "lastUpdateTime", now, "lastTransitionTime", now, "reason",
        available ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable", "message",
        available ? "Deployment has minimum availability." : "Deployment does not have minimum availability.",
        "type", "Progressing", "status", "True", "lastUpdateTime", now, "lastTransitionTime", now, "reason",
        done ? "NewReplicaSetAvailable" : "ReplicaSetUpdated", "message",
        done ? "ReplicaSet has successfully progressed." : "ReplicaSet is progressing.");
    set_or_die(st, "conditions", conds);
    set_or_die(o->obj, "status", st);
}
