/* kube_apply.c -- server-side apply as the apiserver's structured-merge-diff does it, for the
 * objects the platform applies: each manager owns the fields it applied; applying a field that
 * another manager owns with a different value is a conflict (409) unless forced, which takes the
 * field over; a field its sole owner stops applying is removed. One simplification, named in
 * README.md: lists are atomic (one field), where the apiserver merges some (containers, env) by
 * key. */
#include "kube.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEP '\x1f'

/* Fields that identify an object or that the server owns; never part of a manager's set. */
static bool server_field(const char *path)
{
    static const char *const own[] = {"apiVersion", "kind", "status", "metadata\x1fname", "metadata\x1fnamespace",
                                      "metadata\x1fuid", "metadata\x1fresourceVersion", "metadata\x1fgeneration",
                                      "metadata\x1f" "creationTimestamp", "metadata\x1fmanagedFields",
                                      "metadata\x1f" "deletionTimestamp"};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcmp(path, own[i]) == 0)
            return true;
    return false;
}

/* Every leaf of v (scalars, lists, empty maps) as a path into set. */
static void collect(const json_t *v, char *prefix, size_t len, size_t cap, json_t *set)
{
    const char *key;
    json_t *child;
    json_object_foreach((json_t *)v, key, child) {
        int n = snprintf(prefix + len, cap - len, "%s%s", len ? "\x1f" : "", key);
        if (n < 0 || (size_t)n >= cap - len || server_field(prefix))
            continue;
        if (json_is_object(child) && json_object_size(child) > 0)
            collect(child, prefix, len + (size_t)n, cap, set);
        else if (json_object_set_new(set, prefix, json_true()) != 0)
            abort();
    }
    prefix[len] = '\0';
}

static json_t *paths_of(const json_t *obj)
{
    json_t *set = json_object();
    char buf[2048] = "";
    if (!set)
        abort();
    collect(obj, buf, 0, sizeof buf, set);
    return set;
}

static json_t *value_at(const json_t *obj, const char *path)
{
    char key[512];
    const json_t *node = obj;
    for (const char *p = path; node && p;) {
        const char *sep = strchr(p, SEP);
        snprintf(key, sizeof key, "%.*s", (int)(sep ? (size_t)(sep - p) : strlen(p)), p);
        node = json_object_get(node, key);
        p = sep ? sep + 1 : NULL;
    }
    return (json_t *)node;
}

static void set_at(json_t *obj, const char *path, json_t *value)
{
    char key[512];
    json_t *node = obj;
    for (const char *p = path;;) {
        const char *sep = strchr(p, SEP);
        snprintf(key, sizeof key, "%.*s", (int)(sep ? (size_t)(sep - p) : strlen(p)), p);
        if (!sep) {
            if (json_object_set(node, key, value) != 0)
                abort();
            return;
        }
        json_t *child = json_object_get(node, key);
        if (!json_is_object(child)) {
            child = json_object();
            if (!child || json_object_set_new(node, key, child) != 0)
                abort();
        }
        node = child;
        p = sep + 1;
    }
}

/* Removes the field and the maps it leaves empty (the apiserver does not keep an empty map no
 * one applied). */
static void remove_at(json_t *obj, const char *path)
{
    const char *last = strrchr(path, SEP);
    if (!last) {
        json_object_del(obj, path);
        return;
    }
    char parent[2048];
    snprintf(parent, sizeof parent, "%.*s", (int)(last - path), path);
    json_t *p = value_at(obj, parent);
    json_object_del(p, last + 1);
    if (json_is_object(p) && json_object_size(p) == 0)
        remove_at(obj, parent);
}

/* ".spec.replicas": how structured-merge-diff prints a path. */
static void print_path(const char *path, char *out, size_t cap)
{
    size_t n = 0;
    out[n++] = '.';
    for (const char *p = path; *p && n + 1 < cap; p++)
        out[n++] = *p == SEP ? '.' : *p;
    out[n] = '\0';
}

/* printManager in k8s.io/apiserver's managedfields conflict.go: an Update manager is named
 * with the API version it used. */
static void print_manager(const char *name, const json_t *m, const char *api, char *out, size_t cap)
{
    if (strcmp(json_string_value(json_object_get(m, "op")), "Update") == 0)
        snprintf(out, cap, "\"%s\" using %s", name, api);
    else
        snprintf(out, cap, "\"%s\"", name);
}

static mr_http_response *conflict_error(json_t *conflicts)
{
    /* NewConflictError: one cause per field; the message lists them, by manager when several. */
    json_t *causes = json_array();
    char msg[4096];
    size_t n = json_array_size(conflicts);
    size_t used = 0;
    if (n == 1) {
        json_t *c = json_array_get(conflicts, 0);
        snprintf(msg, sizeof msg, "Apply failed with 1 conflict: conflict with %s: %s",
                 json_string_value(json_object_get(c, "manager")), json_string_value(json_object_get(c, "field")));
    } else {
        used = (size_t)snprintf(msg, sizeof msg, "Apply failed with %zu conflicts:", n);
        const char *prev = "";
        size_t i;
        json_t *c;
        /* Conflicts arrive grouped by manager, managers in name order. */
        json_array_foreach(conflicts, i, c) {
            const char *mgr = json_string_value(json_object_get(c, "manager"));
            if (strcmp(mgr, prev) != 0 && used < sizeof msg)
                used += (size_t)snprintf(msg + used, sizeof msg - used, "%sconflicts with %s:", i ? "\n" : " ", mgr);
            if (used < sizeof msg)
                used += (size_t)snprintf(msg + used, sizeof msg - used, "\n- %s",
                                         json_string_value(json_object_get(c, "field")));
            prev = mgr;
        }
    }
    size_t i;
    json_t *c;
    json_array_foreach(conflicts, i, c) {
        char m[600];
        snprintf(m, sizeof m, "conflict with %s", json_string_value(json_object_get(c, "manager")));
        json_t *cause = json_pack("{s:s, s:s, s:O}", "reason", "FieldManagerConflict", "message", m, "field",
                                  json_object_get(c, "field"));
        if (!cause || json_array_append_new(causes, cause) != 0)
            abort();
    }
    json_t *details = json_pack("{s:o}", "causes", causes);
    return kube_status(409, "Conflict", details, "%s", msg);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Conflicts of applying `paths` (values in config) by `manager` over o: [{manager, field,
 * path}], managers in name order as the apiserver prints them. */
static json_t *find_conflicts(const kube_object *o, const json_t *config, const json_t *paths, const char *manager)
{
    json_t *out = json_array();
    size_t n = json_object_size(o->managers), k = 0;
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (!out || !names)
        abort();
    const char *name;
    json_t *m;
    json_object_foreach(o->managers, name, m)
        names[k++] = name;
    qsort(names, n, sizeof *names, cmp_key);
    char api[64];
    kube_api_version(o->res, api, sizeof api);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], manager) == 0)
            continue;
        m = json_object_get(o->managers, names[i]);
        const char *path;
        json_t *v;
        json_object_foreach(json_object_get(m, "fields"), path, v) {
            if (!json_object_get(paths, path) || json_equal(value_at(o->obj, path), value_at(config, path)))
                continue;
            char field[2048], who[600];
            print_path(path, field, sizeof field);
            print_manager(names[i], m, api, who, sizeof who);
            json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "manager", who, "field", field, "path", path, "owner",
                                  names[i]);
            if (!c || json_array_append_new(out, c) != 0)
                abort();
        }
    }
    free(names);
    return out;
}

static void own(kube_object *o, const char *manager, const char *op, json_t *fields)
{
    char now[32];
    kube_now(now, sizeof now);
    json_t *m = json_pack("{s:s, s:s, s:o}", "op", op, "time", now, "fields", fields);
    if (!m || json_object_set_new(o->managers, manager, m) != 0)
        abort();
}

static bool owned_by_other(const kube_object *o, const char *manager, const char *path)
{
    const char *name;
    json_t *m;
    json_object_foreach(o->managers, name, m)
        if (strcmp(name, manager) != 0 && json_object_get(json_object_get(m, "fields"), path))
            return true;
    return false;
}

/* Drops managers that own nothing any more, as the apiserver drops their entries. */
static void drop_empty_managers(kube_object *o)
{
    const char *name;
    json_t *m;
    void *tmp;
    json_object_foreach_safe(o->managers, tmp, name, m)
        if (json_object_size(json_object_get(m, "fields")) == 0)
            json_object_del(o->managers, name);
}

/* A Secret's stringData is write-only: the apiserver's strategy folds it into data, base64
 * encoded, and never stores or returns it. */
static void fold_string_data(json_t *obj)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    json_t *sd = json_object_get(obj, "stringData");
    if (!json_is_object(sd))
        return;
    json_t *data = json_object_get(obj, "data");
    if (!json_is_object(data)) {
        data = json_object();
        if (!data || json_object_set_new(obj, "data", data) != 0)
            abort();
    }
    const char *key;
    json_t *v;
    json_object_foreach(sd, key, v) {
        const unsigned char *in = (const unsigned char *)(json_string_value(v) ? json_string_value(v) : "");
        size_t n = strlen((const char *)in), o = 0;
        char *enc = malloc(4 * ((n + 2) / 3) + 1);
        if (!enc)
            abort();
        for (size_t i = 0; i < n; i += 3) {
            unsigned t = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
            enc[o++] = b64[t >> 18 & 63];
            enc[o++] = b64[t >> 12 & 63];
            enc[o++] = i + 1 < n ? b64[t >> 6 & 63] : '=';
            enc[o++] = i + 2 < n ? b64[t & 63] : '=';
        }
        enc[o] = '\0';
        if (json_object_set_new(data, key, json_string(enc)) != 0)
            abort();
        free(enc);
    }
    json_object_del(obj, "stringData");
}

/* Defaults the apiserver fills in that the platform relies on. */
static void apply_defaults(kube_object *o)
{
    if (strcmp(o->res->kind, "Secret") == 0)
        fold_string_data(o->obj);
    /* SetDefaults_Deployment: replicas 1 when unset, so a count its sole manager stops applying
     * returns to 1 (how an autoscaled Deployment resumes from 0). */
    if (strcmp(o->res->kind, "Deployment") == 0) {
        json_t *spec = json_object_get(o->obj, "spec");
        if (json_is_object(spec) && !json_object_get(spec, "replicas"))
            KUBE_MUST(json_object_set_new(spec, "replicas", json_integer(1)));
    }
}

static json_t *without_meta_and_status(const json_t *obj)
{
    json_t *c = json_deep_copy(obj);
    if (!c)
        abort();
    json_object_del(c, "metadata");
    json_object_del(c, "status");
    return c;
}

mr_http_response *kube_apply(kube *k, const kube_resource *r, const char *ns, const char *name,
                             json_t *config, const char *manager, bool force, bool *created,
                             kube_object **out)
{
    *created = false;
    json_t *cm = json_object_get(config, "metadata");
    const char *rv = json_string_value(json_object_get(cm, "resourceVersion"));
    kube_object *o = kube_get(k, r, ns, name);
    if (rv && (!o || strcmp(rv, json_string_value(json_object_get(json_object_get(o->obj, "metadata"),
                                                                  "resourceVersion"))) != 0)) {
        char q[128];
        kube_qualified(r, q, sizeof q);
        json_decref(config);
        return kube_status(409, "Conflict", kube_details(r, name),
                           "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please "
                           "apply your changes to the latest version and try again", q, name);
    }
    /* The main resource ignores status (it is the /status subresource's). */
    json_object_del(config, "status");
    json_t *paths = paths_of(config);
    if (!o) {
        json_t *obj = json_deep_copy(config);
        json_t *m = json_object_get(obj, "metadata");
        const char *drop[] = {"resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"};
        for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
            json_object_del(m, drop[i]);
        if (r->namespaced && json_object_set_new(m, "namespace", json_string(ns)) != 0)
            abort();
        o = kube_add(k, r, obj);
        own(o, manager, "Apply", paths);
        apply_defaults(o);
        if (strcmp(r->kind, "Deployment") == 0 && k->deployments_ready)
            kube_deployment_settle(o);
        json_decref(config);
        *created = true;
        *out = o;
        return NULL;
    }
    json_t *conflicts = find_conflicts(o, config, paths, manager);
    if (json_array_size(conflicts) > 0 && !force) {
        json_decref(paths);
        json_decref(config);
        mr_http_response *resp = conflict_error(conflicts);
        json_decref(conflicts);
        return resp;
    }
    json_t *before = json_deep_copy(o->obj);
    json_t *before_managers = json_deep_copy(o->managers);
    /* Forced: the fields change hands. */
    size_t i;
    json_t *c;
    json_array_foreach(conflicts, i, c) {
        json_t *m = json_object_get(o->managers, json_string_value(json_object_get(c, "owner")));
        json_object_del(json_object_get(m, "fields"), json_string_value(json_object_get(c, "path")));
    }
    json_decref(conflicts);
    /* Fields this manager applied before and no longer does, that no one else owns, go. */
    json_t *old = json_object_get(json_object_get(o->managers, manager), "fields");
    const char *path;
    json_t *v;
    json_object_foreach(old, path, v)
        if (!json_object_get(paths, path) && !owned_by_other(o, manager, path))
            remove_at(o->obj, path);
    json_object_foreach(paths, path, v)
        set_at(o->obj, path, value_at(config, path));
    json_decref(config);
    json_t *prev_mgr = json_object_get(o->managers, manager);
    bool same_fields = prev_mgr && json_equal(json_object_get(prev_mgr, "fields"), paths);
    if (same_fields)
        json_decref(paths);
    else
        own(o, manager, "Apply", paths);
    drop_empty_managers(o);
    apply_defaults(o);
    json_t *spec_before = without_meta_and_status(before), *spec_after = without_meta_and_status(o->obj);
    bool spec_changed = !json_equal(spec_before, spec_after);
    json_decref(spec_before);
    json_decref(spec_after);
    json_t *m = json_object_get(o->obj, "metadata");
    if (spec_changed) {
        json_t *gen = json_object_get(m, "generation");
        if (gen && json_object_set_new(m, "generation", json_integer(json_integer_value(gen) + 1)) != 0)
            abort();
        if (strcmp(r->kind, "Deployment") == 0 && k->deployments_ready)
            kube_deployment_settle(o);
    }
    /* A no-op apply writes nothing and keeps the resourceVersion, as the apiserver does. */
    if (!json_equal(before, o->obj) || !json_equal(before_managers, o->managers))
        kube_touch(k, o);
    json_decref(before);
    json_decref(before_managers);
    *out = o;
    return NULL;
}

void kube_track_update(kube_object *o, const json_t *before, const char *manager)
{
    json_t *after_paths = paths_of(o->obj), *changed = json_object();
    if (!changed)
        abort();
    const char *path;
    json_t *v;
    json_object_foreach(after_paths, path, v)
        if (!json_equal(value_at(before, path), value_at(o->obj, path)))
            KUBE_MUST(json_object_set_new(changed, path, json_true()));
    json_decref(after_paths);
    if (json_object_size(changed) == 0) {
        json_decref(changed);
        return;
    }
    /* An update takes the fields it changed from whoever owned them, without a conflict. */
    const char *name;
    json_t *m;
    json_object_foreach(o->managers, name, m)
        json_object_foreach(changed, path, v)
            json_object_del(json_object_get(m, "fields"), path);
    json_t *mine = json_object_get(json_object_get(o->managers, manager), "fields");
    if (mine)
        KUBE_MUST(json_object_update(changed, mine));
    own(o, manager, "Update", changed);
    drop_empty_managers(o);
}
