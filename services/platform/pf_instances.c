/* pf_instances.c -- the instance lifecycle: records in the store, the chart rendered and applied,
 * the generated Secret, status read from the Deployments, and the reconcile that finishes what a
 * crash interrupted.
 *
 * Store keys (the platform's own):
 *   platform:instance:<id>   the record: {id, owner, key, values, suspended, op, created}; op is
 *                            "apply" or "delete" while an operation is under way, so a restart
 *                            finishes it
 *   platform:instances       hash id -> owner: every instance, for the reconcile
 *   platform:owner:<digest>  hash id -> key: one owner's instances, for lists and the quota */
#include "pf_internal.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mindroom/log.h"

#define ALL_KEY "platform:instances"

/* Values a caller may set; the rest (names, Secret, trusted upstream auth, suspension, images)
 * belong to the platform. */
static const char *const caller_values[] = {"config", "services", "log", NULL};

static json_t *detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *detail(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "detail", msg);
}

/* Sets o[k] = v (taken); false when out of memory. */
static bool put(json_t *o, const char *k, json_t *v)
{
    return v && json_object_set_new(o, k, v) == 0;
}

static void hex_digest(const char *a, const char *b, char *out, size_t hexlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    /* A digest that cannot be computed would give every caller the same id: stop instead. */
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, a, strlen(a)) != 1 ||
        EVP_DigestUpdate(c, "\n", 1) != 1 || (b && EVP_DigestUpdate(c, b, strlen(b)) != 1) ||
        EVP_DigestFinal_ex(c, md, &n) != 1)
        abort();
    EVP_MD_CTX_free(c);
    for (size_t i = 0; i * 2 < hexlen && i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[hexlen] = '\0';
}

static void instance_key(const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "platform:instance:%s", id);
}

static void owner_key(const char *owner, char *out, size_t cap)
{
    char d[33];
    hex_digest(owner, NULL, d, 32);
    snprintf(out, cap, "platform:owner:%s", d);
}

static mr_code load(pf_service *svc, const char *id, json_t **rec, mr_err *err)
{
    char key[128], *raw = NULL;
    size_t len = 0;
    instance_key(id, key, sizeof key);
    mr_code rc = mr_store_get(svc->rt->store, key, &raw, &len, err);
    if (rc != MR_OK)
        return rc;
    *rec = json_loadb(raw, len, 0, NULL);
    free(raw);
    return *rec ? MR_OK : mr_err_set(err, MR_EIO, "%s: the record is not JSON", key);
}

static mr_code save(pf_service *svc, const json_t *rec, mr_err *err)
{
    char key[128];
    instance_key(json_string_value(json_object_get(rec, "id")), key, sizeof key);
    char *raw = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    if (!raw)
        return mr_err_set(err, MR_ENOMEM, "out of memory saving %s", key);
    mr_code rc = mr_store_set(svc->rt->store, key, raw, strlen(raw), 0, err);
    free(raw);
    return rc;
}

/* The record, if the caller may see it: another owner's instance does not exist for them. */
static int load_visible(pf_service *svc, const char *owner, const char *id, json_t **rec, json_t **body)
{
    mr_err err = {0};
    mr_code rc = load(svc, id, rec, &err);
    if (rc == MR_ENOTFOUND || (rc == MR_OK && owner && strcmp(json_string_value(json_object_get(*rec, "owner")), owner))) {
        if (rc == MR_OK)
            json_decref(*rec);
        *rec = NULL;
        *body = detail("instance %s not found", id);
        return 404;
    }
    if (rc != MR_OK) {
        mr_log_error(PF_COMPONENT, "%s", err.msg);
        *body = detail("the platform's store failed: %s", err.msg);
        return 503;
    }
    return 200;
}

/* Merges src into dst as helm merges values files: maps key by key, anything else replaced.
 * False when out of memory. */
static bool merge_values(json_t *dst, const json_t *src)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)src, k, v) {
        json_t *cur = json_object_get(dst, k);
        if (json_is_object(cur) && json_is_object(v)) {
            if (!merge_values(cur, v))
                return false;
        } else if (json_object_set_new(dst, k, json_deep_copy(v)) != 0) {
            return false;
        }
    }
    return true;
}

/* The values the chart renders an instance with: the operator's base
 * (MINDROOM_PLATFORM_INSTANCE_VALUES), the caller's, then the platform's own on top. The
 * instance's MINDROOM_NAMESPACE (its id's digest) keeps its Matrix accounts and room aliases
 * apart from other instances' on a shared homeserver, its tenant.prefix (the id) its keys, topics
 * and groups on a shared Redis or Kafka; secrets.checksum (its Secret's digest) rolls its pods
 * when the Secret changes. */
static json_t *instance_values(pf_service *svc, const json_t *rec, const pf_secret *secret)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    json_t *v = json_deep_copy(svc->settings.instance_values);
    json_t *env = json_deep_copy(json_object_get(svc->settings.instance_values, "extraEnv"));
    if (!json_is_array(env)) {
        json_decref(env);
        env = json_array();
    }
    json_t *mine = json_pack("{s:s, s:{s:s, s:s}, s:{s:s}, s:b, s:O}", "fullnameOverride", id, "secrets",
                             "existingSecret", secret->name, "checksum", secret->checksum, "tenant", "prefix", id,
                             "suspended", json_is_true(json_object_get(rec, "suspended")), "trustedUpstreamAuth",
                             svc->settings.instance_trusted);
    const char *ns = strncmp(id, "mr-", 3) == 0 ? id + 3 : id;
    if (!v || !env || !mine || !merge_values(v, json_object_get(rec, "values")) ||
        json_array_append_new(env, json_pack("{s:s, s:s}", "name", "MINDROOM_NAMESPACE", "value", ns)) != 0 ||
        json_object_set_new(mine, "extraEnv", env) != 0 || json_object_update(v, mine) != 0) {
        json_decref(v);
        json_decref(mine);
        return NULL;
    }
    json_decref(mine);
    return v;
}

static bool rendered(const json_t *docs, const char *kind, const char *name)
{
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d)
        if (strcmp(json_string_value(json_object_get(d, "kind")), kind) == 0 &&
            strcmp(json_string_value(json_object_get(json_object_get(d, "metadata"), "name")), name) == 0)
            return true;
    return false;
}

/* The instance rendered with rec's values and secret's digest, into *docs. */
static mr_code render_instance(pf_service *svc, const json_t *rec, const pf_secret *secret, json_t **docs,
                               mr_err *err)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    json_t *values = instance_values(svc, rec, secret);
    mr_code rc = values ? pf_render(&svc->settings, id, values, docs, err)
                        : mr_err_set(err, MR_ENOMEM, "out of memory rendering %s", id);
    json_decref(values);
    return rc;
}

/* The Secret rec's instance is to hold and the instance rendered with its digest, before an
 * operation changes anything (values the chart refuses are MR_EINVAL). built false: making rec
 * ran out of memory. *secret is the caller's to free in every case. */
static mr_code prepare_instance(pf_service *svc, const json_t *rec, bool built, pf_secret *secret, json_t **docs,
                                mr_err *err)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    *docs = NULL;
    memset(secret, 0, sizeof *secret);
    mr_code rc = built ? pf_secret_prepare(svc, id, secret, err)
                       : mr_err_set(err, MR_ENOMEM, "out of memory rendering %s", id ? id : "an instance");
    return rc == MR_OK ? render_instance(svc, rec, secret, docs, err) : rc;
}

/* Applies the instance's Secret, renders and applies the rest, then removes what it no longer
 * renders (an autoscaler while suspended). Applying again is harmless: server-side apply of the
 * same object changes nothing, so a retried operation leaves no duplicate, and a Secret whose
 * INSTANCE_SECRET_* copies changed gets them and a new digest, which rolls the pods. */
static mr_code apply_instance(pf_service *svc, const json_t *rec, json_t *docs, const pf_secret *given,
                              mr_err *err)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    /* given and docs: prepared and rendered from this record (a create checks its values that
     * way); docs is taken. */
    pf_secret own = {0};
    const pf_secret *secret = given;
    mr_code rc = given ? MR_OK : pf_secret_prepare(svc, id, &own, err);
    if (!given)
        secret = &own;
    if (rc == MR_OK && !docs)
        rc = render_instance(svc, rec, secret, &docs, err);
    if (rc == MR_OK)
        rc = pf_secret_apply(svc, id, secret, err);
    pf_secret_free(&own);
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) {
        if (rc != MR_OK)
            break;
        rc = pf_kube_apply(svc->kube, d, err);
    }
    for (const char *const *kind = pf_kube_instance_kinds; rc == MR_OK && *kind; kind++) {
        if (strcmp(*kind, "Secret") == 0)
            continue;
        json_t *items = NULL;
        rc = pf_kube_list(svc->kube, *kind, id, &items, err);
        json_t *it;
        json_array_foreach(items, i, it) {
            const char *name = json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
            if (rc == MR_OK && name && !rendered(docs, *kind, name))
                rc = pf_kube_delete(svc->kube, *kind, name, err);
        }
        json_decref(items);
    }
    json_decref(docs);
    return rc;
}

static mr_code delete_instance(pf_service *svc, const json_t *rec, mr_err *err)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    mr_code rc = MR_OK;
    for (const char *const *kind = pf_kube_instance_kinds; rc == MR_OK && *kind; kind++) {
        json_t *items = NULL;
        rc = pf_kube_list(svc->kube, *kind, id, &items, err);
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
            if (rc == MR_OK)
                rc = pf_kube_delete(svc->kube, *kind,
                                    json_string_value(json_object_get(json_object_get(it, "metadata"), "name")), err);
        json_decref(items);
    }
    char key[128];
    instance_key(id, key, sizeof key);
    const char *owner = json_string_value(json_object_get(rec, "owner"));
    char okey[128];
    owner_key(owner, okey, sizeof okey);
    if (rc == MR_OK)
        rc = mr_store_hdel(svc->rt->store, okey, id, err);
    if (rc == MR_OK)
        rc = mr_store_hdel(svc->rt->store, ALL_KEY, id, err);
    if (rc == MR_OK)
        rc = mr_store_del(svc->rt->store, key, err);
    return rc;
}

/* Runs the record's pending operation and, once it is done, clears it. docs and secret as for
 * apply_instance. */
static mr_code finish(pf_service *svc, json_t *rec, json_t *docs, const pf_secret *secret, mr_err *err)
{
    const char *op = json_string_value(json_object_get(rec, "op"));
    if (op && strcmp(op, "delete") == 0) {
        json_decref(docs);
        return delete_instance(svc, rec, err);
    }
    mr_code rc = apply_instance(svc, rec, docs, secret, err);
    if (rc == MR_OK && op) {
        json_object_del(rec, "op");
        rc = save(svc, rec, err);
    }
    return rc;
}

/* The phase, from the instance's Deployments as the API reports them. */
static json_t *view(pf_service *svc, const json_t *rec)
{
    const char *id = json_string_value(json_object_get(rec, "id"));
    bool suspended = json_is_true(json_object_get(rec, "suspended"));
    const char *op = json_string_value(json_object_get(rec, "op"));
    json_t *deps = NULL;
    mr_err err = {0};
    const char *phase = "provisioning";
    char reason[512] = "";
    if (op && strcmp(op, "delete") == 0) {
        phase = "deleting";
    } else if (pf_kube_list(svc->kube, "Deployment", id, &deps, &err) != MR_OK) {
        phase = "unknown";
        snprintf(reason, sizeof reason, "%s", err.msg);
    } else if (json_array_size(deps) > 0) {
        bool ready = true, stopped = true;
        size_t i;
        json_t *d;
        json_array_foreach(deps, i, d) {
            json_t *spec = json_object_get(d, "spec"), *st = json_object_get(d, "status");
            json_int_t want = json_integer_value(json_object_get(spec, "replicas"));
            json_int_t gen = json_integer_value(json_object_get(json_object_get(d, "metadata"), "generation"));
            bool seen = json_integer_value(json_object_get(st, "observedGeneration")) >= gen;
            if (want > 0 || json_integer_value(json_object_get(st, "replicas")) > 0)
                stopped = false;
            if (!seen || json_integer_value(json_object_get(st, "readyReplicas")) < (want > 0 ? want : 1))
                ready = false;
            size_t j;
            json_t *c;
            /* The deployment controller's verdict on a rollout that cannot finish. */
            json_array_foreach(json_object_get(st, "conditions"), j, c)
                if (strcmp(json_string_value(json_object_get(c, "type")) ?: "", "Progressing") == 0 &&
                    strcmp(json_string_value(json_object_get(c, "status")) ?: "", "False") == 0)
                    snprintf(reason, sizeof reason, "%s: %s",
                             json_string_value(json_object_get(json_object_get(d, "metadata"), "name")),
                             json_string_value(json_object_get(c, "message")) ?: "rollout stalled");
        }
        phase = *reason ? "failed" : suspended ? (stopped ? "suspended" : "suspending") : ready ? "ready"
                                                                                              : "provisioning";
    }
    json_decref(deps);
    json_t *v = json_pack("{s:O, s:O, s:O, s:s, s:b, s:s, s:O}", "id", json_object_get(rec, "id"), "key",
                          json_object_get(rec, "key"), "owner", json_object_get(rec, "owner"), "phase", phase,
                          "suspended", suspended, "namespace", svc->settings.ns, "created",
                          json_object_get(rec, "created"));
    if (v && *reason && !put(v, "reason", json_string(reason))) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* recorded: the operation is in the store, so the reconcile finishes it. */
pthread_mutex_t *pf_instance_lock(pf_service *svc, const char *id)
{
    /* FNV-1a: instances spread over the stripes; two that share one just wait for each other. */
    unsigned h = 2166136261u;
    for (const char *c = id; *c; c++)
        h = (h ^ (unsigned char)*c) * 16777619u;
    return &svc->stripes[h % PF_LOCK_STRIPES];
}

static int failed(const char *what, const char *id, bool recorded, const mr_err *err, json_t **body)
{
    mr_log_error(PF_COMPONENT, "%s %s: %s", what, id, err->msg);
    *body = detail("%s %s failed%s: %s", what, id, recorded ? ", the platform will finish it" : "", err->msg);
    return 503;
}

/* The caller's values: only the keys they may set, each an object. */
static bool check_values(const json_t *values, json_t **body)
{
    if (!values)
        return true;
    if (!json_is_object(values)) {
        *body = detail("values: expected an object");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)values, k, v) {
        bool allowed = false;
        for (const char *const *a = caller_values; *a && !allowed; a++)
            allowed = strcmp(*a, k) == 0;
        if (!allowed) {
            *body = detail("values.%s: not settable through the platform (allowed: config, services, log)", k);
            return false;
        }
    }
    return true;
}

int pf_instance_create(pf_service *svc, const char *owner, const json_t *req, json_t **body)
{
    const char *key = json_string_value(json_object_get(req, "key"));
    const json_t *values = json_object_get(req, "values");
    const char *as = json_string_value(json_object_get(req, "owner"));
    if (!json_is_object(req)) {
        *body = detail("expected a JSON object");
        return 422;
    }
    if (owner && as && strcmp(as, owner) != 0) {
        *body = detail("owner: only the operator names another owner");
        return 422;
    }
    if (!owner && !as) {
        *body = detail("owner: required when the operator creates an instance");
        return 422;
    }
    owner = owner ? owner : as;
    if (!key || !*key || strlen(key) > 64 || strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(key)) {
        *body = detail("key: required, 1 to 64 of [A-Za-z0-9._-], chosen by the client so a retried create finds "
                       "the same instance");
        return 422;
    }
    if (!check_values(values, body))
        return 422;
    char hex[17], id[24];
    hex_digest(owner, key, hex, 16);
    snprintf(id, sizeof id, "mr-%s", hex);
    mr_err err = {0};
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:o, s:b, s:s, s:s}", "id", id, "owner", owner, "key", key, "values",
                            values ? json_deep_copy(values) : json_object(), "suspended", 0, "op", "apply",
                            "created", now);
    /* Rendered before anything is stored or applied, and outside the locks (helm is the slow
     * part): values the chart refuses change nothing. The Secret it is rendered with (new values
     * for a new instance) is the one applied. */
    pf_secret secret;
    json_t *docs;
    mr_code rc = prepare_instance(svc, rec, rec != NULL, &secret, &docs, &err);
    if (rc != MR_OK) {
        pf_secret_free(&secret);
        json_decref(rec);
        if (rc != MR_EINVAL)
            return failed("create", id, false, &err, body);
        *body = detail("values: %s", err.msg);
        return 422;
    }
    pthread_mutex_t *mine_lock = pf_instance_lock(svc, id);
    pthread_mutex_lock(mine_lock);
    /* The owner's count and the new record change together: two creates cannot both take the
     * last place of a quota. */
    pthread_mutex_lock(&svc->lock);
    json_t *existing = NULL;
    rc = load(svc, id, &existing, &err);
    if (rc == MR_OK) {
        pthread_mutex_unlock(&svc->lock);
        json_decref(docs);
        pf_secret_free(&secret);
        json_decref(rec);
        /* The same key again: the instance it made, finished if a crash cut it short. */
        int code = 200;
        if (json_object_get(existing, "op") && finish(svc, existing, NULL, NULL, &err) != MR_OK)
            code = failed("create", id, true, &err, body);
        else
            *body = view(svc, existing);
        json_decref(existing);
        pthread_mutex_unlock(mine_lock);
        return code;
    }
    char okey[128];
    owner_key(owner, okey, sizeof okey);
    mr_store_hash mine = {0};
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(&err);
        rc = mr_store_hgetall(svc->rt->store, okey, &mine, &err);
    }
    size_t count = mine.count;
    mr_store_hash_free(&mine);
    if (rc == MR_OK && (long)count >= svc->settings.max_per_owner) {
        pthread_mutex_unlock(&svc->lock);
        pthread_mutex_unlock(mine_lock);
        json_decref(docs);
        pf_secret_free(&secret);
        json_decref(rec);
        *body = detail("quota reached: %s has %ld instances, the most one owner may have "
                       "(MINDROOM_PLATFORM_MAX_INSTANCES_PER_OWNER)", owner, svc->settings.max_per_owner);
        return 403;
    }
    /* Indexed first, then the record: a crash in between leaves index entries without a record,
     * which the reconcile removes. */
    if (rc == MR_OK)
        rc = mr_store_hset(svc->rt->store, okey, id, key, strlen(key), &err);
    if (rc == MR_OK)
        rc = mr_store_hset(svc->rt->store, ALL_KEY, id, owner, strlen(owner), &err);
    bool recorded = rc == MR_OK && (rc = save(svc, rec, &err)) == MR_OK;
    pthread_mutex_unlock(&svc->lock);
    int code = 201;
    if (rc == MR_OK && finish(svc, rec, docs, &secret, &err) != MR_OK) {
        code = failed("create", id, true, &err, body);
    } else if (rc != MR_OK) {
        json_decref(docs);
        code = failed("create", id, recorded, &err, body);
    } else {
        *body = view(svc, rec);
        mr_log_info(PF_COMPONENT, "created instance %s (key %s)", id, key);
    }
    pf_secret_free(&secret);
    json_decref(rec);
    pthread_mutex_unlock(mine_lock);
    return code;
}

int pf_instance_get(pf_service *svc, const char *owner, const char *id, json_t **body)
{
    json_t *rec = NULL;
    int code = load_visible(svc, owner, id, &rec, body);
    if (code != 200)
        return code;
    *body = view(svc, rec);
    json_decref(rec);
    return 200;
}

int pf_instance_list(pf_service *svc, const char *owner, json_t **body)
{
    char okey[128];
    if (owner)
        owner_key(owner, okey, sizeof okey);
    mr_store_hash h = {0};
    mr_err err = {0};
    if (mr_store_hgetall(svc->rt->store, owner ? okey : ALL_KEY, &h, &err) != MR_OK) {
        *body = detail("the platform's store failed: %s", err.msg);
        return 503;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < h.count; i++) {
        json_t *rec = NULL;
        json_t *one = load(svc, h.entries[i].field, &rec, &err) == MR_OK ? view(svc, rec) : NULL;
        /* A record deleted since the listing, or a view out of memory, is left out. */
        if (one && json_array_append_new(items, one) != 0)
            break;
        json_decref(rec);
    }
    mr_store_hash_free(&h);
    *body = json_pack("{s:o}", "instances", items);
    return 200;
}

/* Records rec, whose op the caller has just set (edited false: setting it ran out of memory),
 * and carries the op out on the cluster: 200, else 503 with why in *body. */
static int record_and_finish(pf_service *svc, json_t *rec, bool edited, const char *what, const char *id,
                             json_t **body)
{
    mr_err err = {0};
    if (!edited)
        mr_err_set(&err, MR_ENOMEM, "out of memory recording the %s of %s", what, id);
    if (err.code != MR_OK || save(svc, rec, &err) != MR_OK || finish(svc, rec, NULL, NULL, &err) != MR_OK)
        return failed(what, id, true, &err, body);
    return 200;
}

int pf_instance_set_suspended(pf_service *svc, const char *owner, const char *id, bool suspended, json_t **body)
{
    pthread_mutex_t *lock = pf_instance_lock(svc, id);
    pthread_mutex_lock(lock);
    json_t *rec = NULL;
    int code = load_visible(svc, owner, id, &rec, body);
    if (code == 200) {
        bool edited = put(rec, "suspended", json_boolean(suspended)) && put(rec, "op", json_string("apply"));
        code = record_and_finish(svc, rec, edited, suspended ? "suspend" : "resume", id, body);
        if (code == 200)
            *body = view(svc, rec);
    }
    json_decref(rec);
    pthread_mutex_unlock(lock);
    return code;
}

int pf_instance_upgrade(pf_service *svc, const char *owner, const char *id, const json_t *req, json_t **body)
{
    const json_t *values = json_object_get(req, "values");
    if (!json_is_object(req) || !values) {
        *body = detail("values: required, the instance's new values");
        return 422;
    }
    if (!check_values(values, body))
        return 422;
    pthread_mutex_t *lock = pf_instance_lock(svc, id);
    pthread_mutex_lock(lock);
    json_t *rec = NULL;
    int code = load_visible(svc, owner, id, &rec, body);
    mr_err err = {0};
    if (code != 200) {
        pthread_mutex_unlock(lock);
        return code;
    }
    bool set = put(rec, "values", json_deep_copy(values)) && put(rec, "op", json_string("apply"));
    /* Rendered before the record changes: values the chart refuses leave the instance as it was. */
    pf_secret secret;
    json_t *docs;
    mr_code rc = prepare_instance(svc, rec, set, &secret, &docs, &err);
    if (rc == MR_EINVAL) {
        *body = detail("values: %s", err.msg);
        code = 422;
    } else if (rc != MR_OK || (rc = save(svc, rec, &err)) != MR_OK) {
        json_decref(docs);
        code = failed("upgrade", id, false, &err, body);
    } else if (finish(svc, rec, docs, &secret, &err) != MR_OK) {
        code = failed("upgrade", id, true, &err, body);
    } else {
        *body = view(svc, rec);
        mr_log_info(PF_COMPONENT, "upgraded instance %s", id);
    }
    pf_secret_free(&secret);
    json_decref(rec);
    pthread_mutex_unlock(lock);
    return code;
}

int pf_instance_delete(pf_service *svc, const char *owner, const char *id, json_t **body)
{
    pthread_mutex_t *lock = pf_instance_lock(svc, id);
    pthread_mutex_lock(lock);
    json_t *rec = NULL;
    int code = load_visible(svc, owner, id, &rec, body);
    if (code == 200) {
        code = record_and_finish(svc, rec, put(rec, "op", json_string("delete")), "delete", id, body);
        if (code == 200) {
            *body = json_pack("{s:s, s:s}", "id", id, "phase", "deleted");
            mr_log_info(PF_COMPONENT, "deleted instance %s", id);
        }
    }
    json_decref(rec);
    pthread_mutex_unlock(lock);
    return code;
}

void pf_reconcile(pf_service *svc)
{
    mr_store_hash h = {0};
    mr_err err = {0};
    if (mr_store_hgetall(svc->rt->store, ALL_KEY, &h, &err) != MR_OK) {
        mr_log_warn(PF_COMPONENT, "reconcile: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < h.count && !mr_runtime_stopping(svc->rt); i++) {
        pthread_mutex_t *lock = pf_instance_lock(svc, h.entries[i].field);
        pthread_mutex_lock(lock);
        json_t *rec = NULL;
        mr_code rc = load(svc, h.entries[i].field, &rec, &err);
        if (rc == MR_ENOTFOUND) {
            /* Index entries a create left when it stopped before its record: they would hold a
             * place of the owner's quota for ever. */
            char okey[128];
            owner_key(h.entries[i].value, okey, sizeof okey);
            if (mr_store_hdel(svc->rt->store, okey, h.entries[i].field, &err) != MR_OK ||
                mr_store_hdel(svc->rt->store, ALL_KEY, h.entries[i].field, &err) != MR_OK)
                mr_log_warn(PF_COMPONENT, "reconcile %s: %s", h.entries[i].field, err.msg);
        } else if (rc == MR_OK) {
            /* Copied: finishing removes the op from the record. */
            char op[16] = "";
            snprintf(op, sizeof op, "%s", json_string_value(json_object_get(rec, "op")) ?: "");
            if (finish(svc, rec, NULL, NULL, &err) != MR_OK)
                mr_log_warn(PF_COMPONENT, "reconcile %s: %s", h.entries[i].field, err.msg);
            else if (*op)
                mr_log_info(PF_COMPONENT, "reconcile %s: finished an interrupted %s", h.entries[i].field, op);
        }
        json_decref(rec);
        pthread_mutex_unlock(lock);
    }
    mr_store_hash_free(&h);
}
