/* pf_settings.c -- mindroom-platform's settings, each checked at start with a message naming it. */
#include "pf_internal.h"
#include "mindroom/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

static const char *get(const mr_runtime *rt, const char *key, const char *fallback)
{
    return mr_runtime_setting(rt, NULL, key, fallback);
}

static mr_code dup_to(char **dst, const char *v, mr_err *err)
{
    *dst = v ? strdup(v) : NULL;
    if (v && !*dst)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading settings");
    return MR_OK;
}

static bool truthy(const char *v)
{
    return v && strcasecmp(v, "true") == 0;
}

/* INSTANCE_TRUSTED_UPSTREAM_<SUFFIX> -> the instance chart's trustedUpstreamAuth.<key>. */
static mr_code instance_trusted(const mr_runtime *rt, json_t **out, mr_err *err)
{
    static const char *const map[][2] = {
        {"AUTH_ENABLED", "enabled"}, {"REQUIRE_JWT", "requireJwt"}, {"USER_ID_HEADER", "userIdHeader"},
        {"EMAIL_HEADER", "emailHeader"}, {"MATRIX_USER_ID_HEADER", "matrixUserIdHeader"},
        {"EMAIL_TO_MATRIX_USER_ID_TEMPLATE", "emailToMatrixUserIdTemplate"}, {"JWT_HEADER", "jwtHeader"},
        {"JWKS_URL", "jwksUrl"}, {"JWT_AUDIENCE", "jwtAudience"}, {"JWT_ISSUER", "jwtIssuer"},
        {"JWT_EMAIL_CLAIM", "jwtEmailClaim"}, {"JWT_USER_ID_CLAIM", "jwtUserIdClaim"},
        {"JWT_MATRIX_USER_ID_CLAIM", "jwtMatrixUserIdClaim"},
    };
    json_t *t = json_object();
    if (!t)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading settings");
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char key[80];
        snprintf(key, sizeof key, "INSTANCE_TRUSTED_UPSTREAM_%s", map[i][0]);
        const char *v = get(rt, key, NULL);
        if (v && json_object_set_new(t, map[i][1], json_string(v)) != 0) {
            json_decref(t);
            return mr_err_set(err, MR_EINVAL, "%s: not valid UTF-8", key);
        }
    }
    *out = t;
    return MR_OK;
}

/* MINDROOM_PLATFORM_INSTANCE_VALUES: a YAML (or JSON) file of values every instance is rendered
 * with: the cluster's homeserver, bus, store, image registry. */
static mr_code instance_values(const mr_runtime *rt, json_t **out, mr_err *err)
{
    const char *path = get(rt, "MINDROOM_PLATFORM_INSTANCE_VALUES", NULL);
    if (!path) {
        *out = json_object();
        return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory reading settings");
    }
    char *text = NULL;
    size_t len = 0;
    if (mr_fs_read_all(path, 1 << 20, &text, &len, err) != MR_OK) {
        mr_err_prefix(err, "MINDROOM_PLATFORM_INSTANCE_VALUES");
        return MR_EINVAL;
    }
    json_t *docs = NULL;
    mr_code rc = pf_yaml_docs(text, len, &docs, err);
    free(text);
    if (rc != MR_OK) {
        mr_err_prefix(err, "MINDROOM_PLATFORM_INSTANCE_VALUES (%s)", path);
        return MR_EINVAL;
    }
    if (json_array_size(docs) > 1 || (json_array_size(docs) == 1 && !json_is_object(json_array_get(docs, 0)))) {
        json_decref(docs);
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PLATFORM_INSTANCE_VALUES: %s must hold one mapping of values",
                          path);
    }
    *out = json_array_size(docs) ? json_incref(json_array_get(docs, 0)) : json_object();
    json_decref(docs);
    return *out ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory reading settings");
}

/* INSTANCE_SECRET_<NAME>=value: the homeserver's registration token, model provider keys. They
 * reach an instance only through its Secret, never its values. */
static mr_code instance_secrets(json_t **out, mr_err *err)
{
    static const char prefix[] = "INSTANCE_SECRET_";
    json_t *t = json_object();
    if (!t)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading settings");
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *name = *e + sizeof prefix - 1, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : 0;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)n, name);
        mr_code rc = MR_OK;
        if (!n || n >= sizeof key || strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != n)
            rc = mr_err_set(err, MR_EINVAL, "%s%s: the name after %s must be 1 to 127 of [A-Za-z0-9_]", prefix, key,
                            prefix);
        else if (strcmp(key, "MINDROOM_INSTANCE_SECRET") == 0 || strcmp(key, "MINDROOM_API_KEY") == 0)
            rc = mr_err_set(err, MR_EINVAL, "%s%s: the platform generates %s for each instance", prefix, key, key);
        else if (json_object_set_new(t, key, json_string(eq + 1)) != 0)
            rc = mr_err_set(err, MR_EINVAL, "%s%s: not valid UTF-8", prefix, key);
        if (rc != MR_OK) {
            json_decref(t);
            return rc;
        }
    }
    *out = t;
    return MR_OK;
}

mr_code pf_settings_load(const mr_runtime *rt, pf_settings *s, mr_err *err)
{
    memset(s, 0, sizeof *s);
    const char *ns = get(rt, "MINDROOM_PLATFORM_NAMESPACE", NULL);
    const char *chart = get(rt, "MINDROOM_PLATFORM_INSTANCE_CHART", NULL);
    if (!ns)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PLATFORM_NAMESPACE: required (the namespace instances go in)");
    if (strlen(ns) > 63 || strspn(ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(ns))
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PLATFORM_NAMESPACE: \"%s\" is not a namespace name", ns);
    if (!chart)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PLATFORM_INSTANCE_CHART: required (the instance chart to render)");
    char url[512];
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    /* In a pod the kubelet sets these; elsewhere the URL must be given. */
    if (host && port)
        snprintf(url, sizeof url, "https://%s%s%s:%s", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
                 port);
    const char *kube_url = get(rt, "MINDROOM_PLATFORM_KUBE_URL", host && port ? url : NULL);
    if (!kube_url)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PLATFORM_KUBE_URL: required outside a pod (no "
                                          "KUBERNETES_SERVICE_HOST/PORT)");
    if (strncmp(kube_url, "https://", 8) != 0 && strncmp(kube_url, "http://", 7) != 0)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PLATFORM_KUBE_URL: \"%s\" is not an http(s) URL", kube_url);
    const char *trusted = get(rt, "MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED", "false");
    if (strcasecmp(trusted, "true") != 0 && strcasecmp(trusted, "false") != 0)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED: expected true or false, got \"%s\"",
                          trusted);
    const char *header = get(rt, "MINDROOM_TRUSTED_UPSTREAM_USER_ID_HEADER", NULL);
    if (truthy(trusted) && !header)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_TRUSTED_UPSTREAM_USER_ID_HEADER: required when "
                                          "MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED is true");
    if (truthy(get(rt, "MINDROOM_TRUSTED_UPSTREAM_REQUIRE_JWT", NULL)))
        return mr_err_set(err, MR_EINVAL, "MINDROOM_TRUSTED_UPSTREAM_REQUIRE_JWT: strict JWT mode is not served by "
                                          "mindroom-platform; put mindroom-upstream-auth's forward auth in front and "
                                          "name its X-MindRoom-Auth-User-Id header here");
    const char *api_key = get(rt, "MINDROOM_PLATFORM_API_KEY", NULL);
    if (!truthy(trusted) && !api_key)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_PLATFORM_API_KEY: required when trusted upstream auth is off: "
                                          "the platform serves no anonymous caller");
    mr_code rc = MR_OK;
    if ((rc = mr_runtime_setting_long(rt, "MINDROOM_PLATFORM_MAX_INSTANCES_PER_OWNER", 3, 1, 1000, &s->max_per_owner, err)) ||
        (rc = mr_runtime_setting_long(rt, "MINDROOM_PLATFORM_RECONCILE_SECONDS", 30, 1, 86400, &s->reconcile_ms, err)) ||
        (rc = dup_to(&s->ns, ns, err)) || (rc = dup_to(&s->chart, chart, err)) ||
        (rc = dup_to(&s->helm, get(rt, "MINDROOM_PLATFORM_HELM", "helm"), err)) ||
        (rc = dup_to(&s->kube_url, kube_url, err)) ||
        (rc = dup_to(&s->token_file, get(rt, "MINDROOM_PLATFORM_KUBE_TOKEN_FILE", SA_DIR "/token"), err)) ||
        (rc = dup_to(&s->ca_file, get(rt, "MINDROOM_PLATFORM_KUBE_CA_FILE", SA_DIR "/ca.crt"), err)) ||
        (rc = dup_to(&s->api_key, api_key, err)) ||
        (rc = dup_to(&s->user_id_header, truthy(trusted) ? header : NULL, err)) ||
        (rc = dup_to(&s->scratch, rt->settings.storage_path, err)) || (rc = instance_trusted(rt, &s->instance_trusted, err)) ||
        (rc = instance_values(rt, &s->instance_values, err)) || (rc = instance_secrets(&s->instance_secrets, err))) {
        pf_settings_free(s);
        return rc;
    }
    s->reconcile_ms *= 1000;
    /* helm reads values from files here; the runtime makes the storage directory only for
     * services with a config. */
    if (mkdir(s->scratch, 0700) != 0 && errno != EEXIST) {
        rc = mr_err_set(err, MR_EIO, "MINDROOM_STORAGE_PATH: cannot create %s: %s", s->scratch, strerror(errno));
        pf_settings_free(s);
        return rc;
    }
    return MR_OK;
}

void pf_settings_free(pf_settings *s)
{
    free(s->ns);
    free(s->chart);
    free(s->helm);
    free(s->kube_url);
    free(s->token_file);
    free(s->ca_file);
    if (s->api_key) {
        /* The operator key should not linger in freed memory. */
        memset(s->api_key, 0, strlen(s->api_key));
        free(s->api_key);
    }
    free(s->user_id_header);
    free(s->scratch);
    json_decref(s->instance_trusted);
    json_decref(s->instance_values);
    json_decref(s->instance_secrets);
    memset(s, 0, sizeof *s);
}
