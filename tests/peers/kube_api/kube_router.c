/* kube_router.c -- mr-test-kube-api's routes: discovery as kubectl reads it, then get, list
 * (labelSelector), create, server-side apply and merge patch, the /status subresource and
 * delete with propagation, each answering as the apiserver's REST handlers do
 * (k8s.io/apiserver/pkg/endpoints/handlers). */
#include "kube.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct route {
    const kube_resource *res;
    const char *ns;       /* NULL: cluster-scoped, or a list across namespaces */
    const char *name;     /* NULL: the collection */
    bool status;          /* the /status subresource */
} route;

static mr_http_response *not_found_path(void)
{
    return kube_status(404, "NotFound", json_object(), "the server could not find the requested resource");
}

static json_t *resource_list(const char *group, const char *version)
{
    char gv[64];
    snprintf(gv, sizeof gv, "%s%s%s", group, *group ? "/" : "", version);
    json_t *list = json_array();
    for (size_t i = 0; i < kube_n_resources; i++) {
        const kube_resource *r = &kube_resources[i];
        if (strcmp(r->group, group) != 0 || strcmp(r->version, version) != 0)
            continue;
        json_t *e = json_pack("{s:s, s:s, s:b, s:s, s:[ssssssss]}", "name", r->name, "singularName", r->singular,
                              "namespaced", r->namespaced, "kind", r->kind, "verbs", "create", "delete",
                              "deletecollection", "get", "list", "patch", "update", "watch");
        if (r->short_name && json_object_set_new(e, "shortNames", json_pack("[s]", r->short_name)) != 0)
            abort();
        KUBE_MUST(json_array_append_new(list, e));
        if (r->has_status) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s/status", r->name);
            KUBE_MUST(json_array_append_new(list, json_pack("{s:s, s:s, s:b, s:s, s:[sss]}", "name", sub, "singularName", "",
                                                  "namespaced", r->namespaced, "kind", r->kind, "verbs", "get",
                                                  "patch", "update")));
        }
    }
    if (json_array_size(list) == 0) {
        json_decref(list);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "kind", "APIResourceList", "apiVersion", "v1", "groupVersion", gv,
                     "resources", list);
}

/* The OpenAPI v3 document of one group version, as far as kubectl reads it: its
 * QueryParamVerifierV3 looks for each kind's PATCH operation (by x-kubernetes-group-version-kind)
 * and whether it takes fieldValidation, to validate on the server instead of downloading
 * schemas. Schemas are left out, so kubectl's own validation is off and this peer, which
 * does not check fields, is the validator: a deviation README.md names. */
static json_t *openapi_gv(const char *group, const char *version)
{
    json_t *paths = json_object();
    for (size_t i = 0; i < kube_n_resources; i++) {
        const kube_resource *r = &kube_resources[i];
        if (strcmp(r->group, group) != 0 || strcmp(r->version, version) != 0)
            continue;
        char path[256], gv[64];
        kube_api_version(r, gv, sizeof gv);
        snprintf(path, sizeof path, "/%s%s/%s%s/{name}", *group ? "apis/" : "api/", gv,
                 r->namespaced ? "namespaces/{namespace}/" : "", r->name);
        json_t *op = json_pack("{s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:{s:s}}, {s:s, s:s, s:{s:s}}, {s:s, s:s, s:{s:s}}],"
                               " s:{s:{s:s}}}",
                               "x-kubernetes-group-version-kind", "group", group, "version", version, "kind", r->kind,
                               "parameters", "name", "fieldManager", "in", "query", "schema", "type", "string", "name",
                               "fieldValidation", "in", "query", "schema", "type", "string", "name", "force", "in",
                               "query", "schema", "type", "boolean", "responses", "200", "description", "OK");
        if (!op || json_object_set_new(paths, path, json_pack("{s:o}", "patch", op)) != 0)
            abort();
    }
    if (json_object_size(paths) == 0) {
        json_decref(paths);
        return NULL;
    }
    return json_pack("{s:s, s:{s:s, s:s}, s:o}", "openapi", "3.0.0", "info", "title", "Kubernetes", "version",
                     "v1.31.0", "paths", paths);
}

/* GET /openapi/v3: each group version and where its document is. */
static json_t *openapi_root(void)
{
    json_t *paths = json_object();
    for (size_t i = 0; i < kube_n_resources; i++) {
        char gv[64], key[96], url[128];
        kube_api_version(&kube_resources[i], gv, sizeof gv);
        snprintf(key, sizeof key, "%s%s", *kube_resources[i].group ? "apis/" : "api/", gv);
        snprintf(url, sizeof url, "/openapi/v3/%s?hash=0", key);
        if (json_object_set_new(paths, key, json_pack("{s:s}", "serverRelativeURL", url)) != 0)
            abort();
    }
    return json_pack("{s:o}", "paths", paths);
}

static mr_http_response *discovery(const mr_http_request *req)
{
    size_t n = req->nsegments;
    char **s = req->segments;
    if (n >= 2 && strcmp(s[0], "openapi") == 0 && strcmp(s[1], "v3") == 0) {
        json_t *doc = n == 2                                    ? openapi_root()
                      : n == 4 && strcmp(s[2], "api") == 0      ? openapi_gv("", s[3])
                      : n == 5 && strcmp(s[2], "apis") == 0     ? openapi_gv(s[3], s[4])
                                                                : NULL;
        return doc ? mr_http_reply_json(200, doc) : NULL;
    }
    if (n == 1 && strcmp(s[0], "version") == 0)
        return mr_http_reply_json(200, json_pack("{s:s, s:s, s:s, s:s, s:s}", "major", "1", "minor", "31",
                                                 "gitVersion", "v1.31.0", "goVersion", "go1.22.5", "platform",
                                                 "linux/amd64"));
    if (n == 1 && strcmp(s[0], "api") == 0)
        return mr_http_reply_json(200, json_pack("{s:s, s:[s], s:[{s:s, s:s}]}", "kind", "APIVersions", "versions",
                                                 "v1", "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0",
                                                 "serverAddress", "127.0.0.1"));
    if (n == 1 && strcmp(s[0], "apis") == 0) {
        json_t *groups = json_array();
        for (size_t i = 0; i < kube_n_resources; i++) {
            const kube_resource *r = &kube_resources[i];
            bool seen = !*r->group;
            for (size_t j = 0; j < i && !seen; j++)
                seen = strcmp(kube_resources[j].group, r->group) == 0;
            if (seen)
                continue;
            char gv[64];
            kube_api_version(r, gv, sizeof gv);
            KUBE_MUST(json_array_append_new(groups, json_pack("{s:s, s:[{s:s, s:s}], s:{s:s, s:s}}", "name", r->group,
                                                    "versions", "groupVersion", gv, "version", r->version,
                                                    "preferredVersion", "groupVersion", gv, "version", r->version)));
        }
        return mr_http_reply_json(200, json_pack("{s:s, s:s, s:o}", "kind", "APIGroupList", "apiVersion", "v1",
                                                 "groups", groups));
    }
    json_t *list = NULL;
    if (n == 2 && strcmp(s[0], "api") == 0)
        list = resource_list("", s[1]);
    else if (n == 3 && strcmp(s[0], "apis") == 0)
        list = resource_list(s[1], s[2]);
    return list ? mr_http_reply_json(200, list) : NULL;
}

/* Fills rt from /api/v1/... or /apis/G/V/...; false when the path names no served resource. */
static bool parse_route(const mr_http_request *req, route *rt)
{
    memset(rt, 0, sizeof *rt);
    char **s = req->segments;
    size_t n = req->nsegments, at;
    const char *group, *version;
    if (n >= 3 && strcmp(s[0], "api") == 0) {
        group = "";
        version = s[1];
        at = 2;
    } else if (n >= 4 && strcmp(s[0], "apis") == 0) {
        group = s[1];
        version = s[2];
        at = 3;
    } else {
        return false;
    }
    size_t left = n - at;
    /* namespaces/NS/RESOURCE[/NAME[/status]] */
    if (left >= 3 && strcmp(s[at], "namespaces") == 0) {
        rt->res = kube_resource_find(group, version, s[at + 2]);
        if (!rt->res || !rt->res->namespaced || left > 5)
            return false;
        rt->ns = s[at + 1];
        rt->name = left >= 4 ? s[at + 3] : NULL;
        rt->status = left == 5;
        return left < 5 || (strcmp(s[at + 4], "status") == 0 && rt->res->has_status);
    }
    /* RESOURCE[/NAME[/status]]: a cluster-scoped object, or a list across namespaces. */
    rt->res = kube_resource_find(group, version, s[at]);
    if (!rt->res || left > 3 || (left >= 2 && rt->res->namespaced))
        return false;
    rt->name = left >= 2 ? s[at + 1] : NULL;
    rt->status = left == 3;
    return left < 3 || (strcmp(s[at + 2], "status") == 0 && rt->res->has_status);
}

static mr_http_response *reply_object(int code, const kube_object *o)
{
    return mr_http_reply_json(code, kube_render(o));
}

static bool ns_exists(kube *k, const char *ns)
{
    return kube_get(k, kube_resource_find("", "v1", "namespaces"), NULL, ns) != NULL;
}

static mr_http_response *ns_not_found(const char *ns)
{
    return kube_not_found(kube_resource_find("", "v1", "namespaces"), ns);
}

static mr_http_response *list(kube *k, const route *rt, const mr_http_request *req)
{
    char why[256];
    json_t *sel = kube_selector_parse(mr_http_request_query(req, "labelSelector"), why, sizeof why);
    if (!sel)
        return kube_bad_request("%s", why);
    json_t *items = json_array();
    /* Objects come in key order (namespace, then name), as etcd returns them; they were
     * stored in creation order, so sort. */
    for (size_t i = 0; i < k->n; i++) {
        const kube_object *o = &k->objs[i];
        const json_t *m = json_object_get(o->obj, "metadata");
        const char *ons = json_string_value(json_object_get(m, "namespace"));
        if (o->res != rt->res || (rt->ns && (!ons || strcmp(ons, rt->ns) != 0)) ||
            !kube_selector_match(sel, json_object_get(m, "labels")))
            continue;
        json_t *item = kube_render(o);
        /* Items of a typed list carry no kind or apiVersion. */
        json_object_del(item, "kind");
        json_object_del(item, "apiVersion");
        KUBE_MUST(json_array_append_new(items, item));
    }
    json_decref(sel);
    size_t n = json_array_size(items);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            json_t *a = json_object_get(json_array_get(items, j - 1), "metadata");
            json_t *b = json_object_get(json_array_get(items, j), "metadata");
            const char *ans = json_string_value(json_object_get(a, "namespace"));
            const char *bns = json_string_value(json_object_get(b, "namespace"));
            int c = strcmp(ans ? ans : "", bns ? bns : "");
            if (c == 0)
                c = strcmp(json_string_value(json_object_get(a, "name")), json_string_value(json_object_get(b, "name")));
            if (c <= 0)
                break;
            json_t *tmp = json_incref(json_array_get(items, j - 1));
            KUBE_MUST(json_array_set(items, j - 1, json_array_get(items, j)));
            KUBE_MUST(json_array_set_new(items, j, tmp));
        }
    char kind[96], api[64], rv[32];
    snprintf(kind, sizeof kind, "%sList", rt->res->kind);
    kube_api_version(rt->res, api, sizeof api);
    snprintf(rv, sizeof rv, "%llu", k->rv);
    return mr_http_reply_json(200, json_pack("{s:s, s:s, s:{s:s}, s:o}", "kind", kind, "apiVersion", api, "metadata",
                                             "resourceVersion", rv, "items", items));
}

/* The field manager of a non-apply write: ?fieldManager=, else the User-Agent's program name,
 * as the apiserver's managerFromUserAgent does. */
static void update_manager(const mr_http_request *req, char *out, size_t cap)
{
    const char *m = mr_http_request_query(req, "fieldManager");
    const char *ua = mr_http_request_header(req, "User-Agent");
    if (m && *m)
        snprintf(out, cap, "%s", m);
    else if (ua && *ua)
        snprintf(out, cap, "%.*s", (int)strcspn(ua, "/"), ua);
    else
        snprintf(out, cap, "unknown");
}

/* Checks the body names the object and kind the URL does; a Status error, or NULL. */
static mr_http_response *check_body(const route *rt, const json_t *body, const char *name)
{
    char api[64];
    kube_api_version(rt->res, api, sizeof api);
    const char *kind = json_string_value(json_object_get(body, "kind"));
    const char *av = json_string_value(json_object_get(body, "apiVersion"));
    const json_t *m = json_object_get(body, "metadata");
    const char *bname = json_string_value(json_object_get(m, "name"));
    const char *bns = json_string_value(json_object_get(m, "namespace"));
    if (!kind || !av || strcmp(kind, rt->res->kind) != 0 || strcmp(av, api) != 0)
        return kube_bad_request("the API version in the data (%s) does not match the expected API version (%s) or "
                                "kind %s is not %s", av ? av : "", api, kind ? kind : "", rt->res->kind);
    if (!bname || (name && strcmp(bname, name) != 0))
        return kube_bad_request("the name of the object (%s) does not match the name on the URL (%s)",
                                bname ? bname : "", name ? name : "");
    if (bns && rt->ns && strcmp(bns, rt->ns) != 0)
        return kube_bad_request("the namespace of the provided object does not match the namespace sent on the "
                                "request");
    return NULL;
}

static json_t *parse_body(const mr_http_request *req, mr_http_response **err)
{
    json_error_t je;
    json_t *body = json_loadb(req->body, req->body_len, 0, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        /* A YAML apply body is a deviation this peer does not take: the platform and kubectl
         * --server-side send the JSON form. */
        *err = kube_bad_request("error decoding the body: only JSON bodies are served by this test API: %s", je.text);
        return NULL;
    }
    return body;
}

static mr_http_response *apply(kube *k, const route *rt, const mr_http_request *req)
{
    const char *manager = mr_http_request_query(req, "fieldManager");
    if (!manager || !*manager)
        return kube_bad_request("PATCH /%s: fieldManager is required for apply requests", rt->res->name);
    const char *force = mr_http_request_query(req, "force");
    if (force && strcmp(force, "true") != 0 && strcmp(force, "false") != 0)
        return kube_bad_request("force: invalid value \"%s\": must be true or false", force);
    mr_http_response *err = NULL;
    json_t *body = parse_body(req, &err);
    if (!body)
        return err;
    if ((err = check_body(rt, body, rt->name))) {
        json_decref(body);
        return err;
    }
    if (rt->res->namespaced && !ns_exists(k, rt->ns)) {
        json_decref(body);
        return ns_not_found(rt->ns);
    }
    bool created = false;
    kube_object *o = NULL;
    err = kube_apply(k, rt->res, rt->ns, rt->name, body, manager, force && strcmp(force, "true") == 0, &created, &o);
    return err ? err : reply_object(created ? 201 : 200, o);
}

/* RFC 7386 JSON merge patch: null removes, objects merge, anything else replaces. */
static void merge_patch(json_t *target, const json_t *patch)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)patch, key, v) {
        json_t *cur = json_object_get(target, key);
        if (json_is_null(v))
            json_object_del(target, key);
        else if (json_is_object(v) && json_is_object(cur))
            merge_patch(cur, v);
        else if (json_is_object(v)) {
            json_t *fresh = json_object();
            merge_patch(fresh, v);
            KUBE_MUST(json_object_set_new(target, key, fresh));
        } else
            KUBE_MUST(json_object_set(target, key, v));
    }
}

/* Writes to an existing object outside apply: a merge patch, or a PUT of the whole object
 * (with its resourceVersion checked). The main resource leaves status alone and /status
 * touches status only, as the apiserver's status strategy does. */
static mr_http_response *update(kube *k, const route *rt, const mr_http_request *req, bool put)
{
    kube_object *o = kube_get(k, rt->res, rt->ns, rt->name);
    if (!o)
        return kube_not_found(rt->res, rt->name);
    mr_http_response *err = NULL;
    json_t *body = parse_body(req, &err);
    if (!body)
        return err;
    json_t *m = json_object_get(o->obj, "metadata");
    const char *rv = json_string_value(json_object_get(json_object_get(body, "metadata"), "resourceVersion"));
    if (put && rv && strcmp(rv, json_string_value(json_object_get(m, "resourceVersion"))) != 0) {
        char q[128];
        kube_qualified(rt->res, q, sizeof q);
        json_decref(body);
        return kube_status(409, "Conflict", kube_details(rt->res, rt->name),
                           "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please "
                           "apply your changes to the latest version and try again", q, rt->name);
    }
    if (put && (err = check_body(rt, body, rt->name))) {
        json_decref(body);
        return err;
    }
    json_t *before = json_deep_copy(o->obj);
    if (rt->status) {
        json_t *st = json_object_get(body, "status");
        if (put)
            KUBE_MUST(json_object_set_new(o->obj, "status", st ? json_incref(st) : json_object()));
        else if (json_is_object(st)) {
            json_t *cur = json_object_get(o->obj, "status");
            if (!json_is_object(cur)) {
                cur = json_object();
                KUBE_MUST(json_object_set_new(o->obj, "status", cur));
            }
            merge_patch(cur, st);
        }
    } else {
        json_t *keep = json_incref(json_object_get(o->obj, "status"));
        json_t *keep_meta = json_deep_copy(m);
        if (put) {
            json_object_clear(o->obj);
            KUBE_MUST(json_object_update(o->obj, body));
        } else {
            merge_patch(o->obj, body);
        }
        json_t *nm = json_object_get(o->obj, "metadata");
        if (!json_is_object(nm)) {
            nm = json_object();
            KUBE_MUST(json_object_set_new(o->obj, "metadata", nm));
        }
        const char *server_owned[] = {"name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion"};
        for (size_t i = 0; i < sizeof server_owned / sizeof server_owned[0]; i++) {
            json_t *v = json_object_get(keep_meta, server_owned[i]);
            if (v)
                KUBE_MUST(json_object_set(nm, server_owned[i], v));
        }
        json_object_del(nm, "managedFields");
        json_decref(keep_meta);
        if (keep)
            KUBE_MUST(json_object_set_new(o->obj, "status", keep));
        else
            json_object_del(o->obj, "status");
        json_t *a = json_deep_copy(before), *b = json_deep_copy(o->obj);
        json_object_del(a, "metadata");
        json_object_del(a, "status");
        json_object_del(b, "metadata");
        json_object_del(b, "status");
        if (!json_equal(a, b)) {
            json_t *gen = json_object_get(nm, "generation");
            if (gen)
                KUBE_MUST(json_object_set_new(nm, "generation", json_integer(json_integer_value(gen) + 1)));
            if (strcmp(rt->res->kind, "Deployment") == 0 && k->deployments_ready)
                kube_deployment_settle(o);
        }
        json_decref(a);
        json_decref(b);
    }
    json_decref(body);
    char manager[128];
    update_manager(req, manager, sizeof manager);
    kube_track_update(o, before, manager);
    if (!json_equal(before, o->obj))
        kube_touch(k, o);
    json_decref(before);
    return reply_object(200, o);
}

static mr_http_response *create(kube *k, const route *rt, const mr_http_request *req)
{
    mr_http_response *err = NULL;
    json_t *body = parse_body(req, &err);
    if (!body)
        return err;
    if ((err = check_body(rt, body, NULL))) {
        json_decref(body);
        return err;
    }
    const char *name = json_string_value(json_object_get(json_object_get(body, "metadata"), "name"));
    if (rt->res->namespaced && !ns_exists(k, rt->ns)) {
        json_decref(body);
        return ns_not_found(rt->ns);
    }
    if (kube_get(k, rt->res, rt->ns, name)) {
        char q[128];
        kube_qualified(rt->res, q, sizeof q);
        mr_http_response *r = kube_status(409, "AlreadyExists", kube_details(rt->res, name),
                                          "%s \"%s\" already exists", q, name);
        json_decref(body);
        return r;
    }
    json_t *m = json_object_get(body, "metadata");
    json_object_del(m, "resourceVersion");
    json_object_del(m, "managedFields");
    if (rt->res->namespaced)
        KUBE_MUST(json_object_set_new(m, "namespace", json_string(rt->ns)));
    json_t *before = json_object();
    kube_object *o = kube_add(k, rt->res, body);
    if (strcmp(rt->res->kind, "Deployment") == 0) {
        json_t *spec = json_object_get(o->obj, "spec");
        if (json_is_object(spec) && !json_object_get(spec, "replicas"))
            KUBE_MUST(json_object_set_new(spec, "replicas", json_integer(1)));
        if (k->deployments_ready)
            kube_deployment_settle(o);
    }
    char manager[128];
    update_manager(req, manager, sizeof manager);
    kube_track_update(o, before, manager);
    json_decref(before);
    return reply_object(201, o);
}

/* Deletes o and, by its propagation policy, the objects whose ownerReferences name it: the
 * garbage collector's work, done at once. Orphan strips those references instead. */
static void delete_tree(kube *k, kube_object *o, const char *policy)
{
    char uid[64];
    snprintf(uid, sizeof uid, "%s", json_string_value(json_object_get(json_object_get(o->obj, "metadata"), "uid")));
    kube_remove(k, o);
    for (size_t i = 0; i < k->n;) {
        json_t *refs = json_object_get(json_object_get(k->objs[i].obj, "metadata"), "ownerReferences");
        size_t j;
        json_t *ref;
        bool owned = false;
        json_array_foreach(refs, j, ref)
            if (strcmp(json_string_value(json_object_get(ref, "uid")) ?: "", uid) == 0) {
                owned = true;
                if (strcmp(policy, "Orphan") == 0) {
                    json_array_remove(refs, j);
                    if (json_array_size(refs) == 0)
                        json_object_del(json_object_get(k->objs[i].obj, "metadata"), "ownerReferences");
                    kube_touch(k, &k->objs[i]);
                }
                break;
            }
        if (owned && strcmp(policy, "Orphan") != 0) {
            delete_tree(k, &k->objs[i], policy);
            i = 0;
            continue;
        }
        i++;
    }
}

static mr_http_response *delete(kube *k, const route *rt, const mr_http_request *req)
{
    const char *policy = mr_http_request_query(req, "propagationPolicy");
    json_t *opts = req->body_len ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
    if (!policy)
        policy = json_string_value(json_object_get(opts, "propagationPolicy"));
    /* The REST default for apps/v1 and the core kinds the platform uses. */
    if (!policy)
        policy = "Background";
    if (strcmp(policy, "Background") != 0 && strcmp(policy, "Foreground") != 0 && strcmp(policy, "Orphan") != 0) {
        json_decref(opts);
        return kube_status(422, "Invalid", NULL,
                           "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"%s\": "
                           "supported values: \"Foreground\", \"Background\", \"Orphan\"", policy);
    }
    kube_object *o = kube_get(k, rt->res, rt->ns, rt->name);
    if (!o) {
        json_decref(opts);
        return kube_not_found(rt->res, rt->name);
    }
    json_t *gone = kube_render(o);
    json_t *details = kube_details(rt->res, rt->name);
    KUBE_MUST(json_object_set(details, "uid", json_object_get(json_object_get(gone, "metadata"), "uid")));
    char p[16];
    snprintf(p, sizeof p, "%s", policy);
    json_decref(opts);
    delete_tree(k, o, p);
    if (strcmp(p, "Foreground") == 0) {
        /* Foreground returns the object marked for deletion, its dependents going first. */
        char now[32];
        kube_now(now, sizeof now);
        json_t *m = json_object_get(gone, "metadata");
        KUBE_MUST(json_object_set_new(m, "deletionTimestamp", json_string(now)));
        KUBE_MUST(json_object_set_new(m, "finalizers", json_pack("[s]", "foregroundDeletion")));
        json_decref(details);
        return mr_http_reply_json(200, gone);
    }
    json_decref(gone);
    /* The registry's finalizeDelete: a Success Status naming what went. */
    return mr_http_reply_json(200, json_pack("{s:s, s:s, s:{}, s:s, s:o}", "kind", "Status", "apiVersion", "v1",
                                             "metadata", "status", "Success", "details", details));
}

static bool authorized(const kube *k, const mr_http_request *req)
{
    if (!k->token)
        return true;
    const char *auth = mr_http_request_header(req, "Authorization");
    return auth && strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, k->token) == 0;
}

static mr_http_response *route_request(kube *k, const mr_http_request *req)
{
    mr_http_response *r = NULL;
    if (strcmp(req->method, "GET") == 0 && (r = discovery(req)))
        return r;
    route rt;
    if (!parse_route(req, &rt))
        return not_found_path();
    const char *m = req->method;
    if (strcmp(m, "GET") == 0) {
        if (!rt.name)
            return list(k, &rt, req);
        kube_object *o = kube_get(k, rt.res, rt.ns, rt.name);
        return o ? reply_object(200, o) : kube_not_found(rt.res, rt.name);
    }
    if (strcmp(m, "POST") == 0 && !rt.name && (rt.ns || !rt.res->namespaced))
        return create(k, &rt, req);
    if (strcmp(m, "PUT") == 0 && rt.name)
        return update(k, &rt, req, true);
    if (strcmp(m, "PATCH") == 0 && rt.name) {
        const char *ct = mr_http_request_header(req, "Content-Type");
        size_t n = ct ? strcspn(ct, ";") : 0;
        if (ct && strncmp(ct, "application/apply-patch+yaml", n) == 0 && n == 28 && !rt.status)
            return apply(k, &rt, req);
        if (ct && strncmp(ct, "application/merge-patch+json", n) == 0 && n == 28)
            return update(k, &rt, req, false);
        return kube_status(415, "UnsupportedMediaType", NULL,
                           "the body of the request was in an unknown format - accepted media types include: "
                           "application/merge-patch+json, application/apply-patch+yaml");
    }
    if (strcmp(m, "DELETE") == 0 && rt.name && !rt.status)
        return delete(k, &rt, req);
    return kube_status(405, "MethodNotAllowed", NULL, "the server does not allow this method on the requested resource");
}

mr_http_response *kube_handle(void *ctx, const mr_http_request *req)
{
    kube *k = ctx;
    if (!authorized(k, req))
        return kube_status(401, "Unauthorized", NULL, "Unauthorized");
    pthread_mutex_lock(&k->lock);
    mr_http_response *r = route_request(k, req);
    pthread_mutex_unlock(&k->lock);
    return r;
}
