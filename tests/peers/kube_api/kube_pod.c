/* kube_pod.c -- what the kubelet makes of a Deployment's pod template before it starts the
 * container (pkg/kubelet/kubelet_pods.go: makeEnvironmentVariables, makeMounts), for a local
 * process: the environment from env (value, secretKeyRef, configMapKeyRef, fieldRef) and
 * envFrom, volumes as directories, and each container port on a free local port. A process
 * has no mount namespace, so paths under a mount (in arguments and variables) are rewritten
 * to its directory, and "HOST:PORT" arguments naming a container port to the local port:
 * simplifications README.md names. */
#define _GNU_SOURCE
#include "kube.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mindroom/b64.h"

#define MAX_MOUNTS 16

typedef struct mount {
    const char *path;      /* in the container */
    char host[1024];       /* here */
} mount;

/* Sets err (an invalid pod template, or a missing source) and gives false. */
#define POD_FAIL(...) (mr_err_set(err, MR_EINVAL, __VA_ARGS__) == MR_OK)

static const json_t *lookup(kube *k, const char *resource, const char *ns, const char *name)
{
    const kube_object *o = kube_get(k, kube_resource_find("", "v1", resource), ns, name);
    return o ? o->obj : NULL;
}

/* A Secret's data value (standard base64 with padding) decoded; NULL when it does not decode. */
static char *secret_value(const char *b64)
{
    size_t len = strlen(b64);
    while (len && b64[len - 1] == '=')
        len--;
    unsigned char *out = malloc(len + 1);
    size_t n = 0;
    mr_err err = {0};
    if (!out || mr_b64_decode(b64, len, MR_B64_STD_TOO, out, len, &n, &err) != MR_OK) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    return (char *)out;
}

/* The value of key in a Secret or ConfigMap (data, or a ConfigMap's binaryData left out);
 * NULL with err. */
static char *ref_value(kube *k, const char *ns, const json_t *ref, bool secret, mr_err *err)
{
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *key = json_string_value(json_object_get(ref, "key"));
    const char *what = secret ? "Secret" : "ConfigMap";
    const json_t *obj = name ? lookup(k, secret ? "secrets" : "configmaps", ns, name) : NULL;
    if (!obj) {
        mr_err_set(err, MR_EINVAL, "%s \"%s\" not found", secret ? "secret" : "configmap", name ? name : "");
        return NULL;
    }
    const char *v = key ? json_string_value(json_object_get(json_object_get(obj, "data"), key)) : NULL;
    if (!v) {
        mr_err_set(err, MR_EINVAL, "couldn't find key %s in %s %s/%s", key ? key : "", what, ns, name);
        return NULL;
    }
    char *out = secret ? secret_value(v) : strdup(v);
    if (!out)
        mr_err_set(err, MR_EINVAL, "key %s in %s %s/%s is not base64", key, what, ns, name);
    return out;
}

/* value with a mount's path (or, for "HOST:PORT", a container port) replaced by ours. */
static char *rewrite(const char *value, const mount *mounts, size_t nmounts, const kube_pod *pod)
{
    for (size_t i = 0; i < nmounts; i++) {
        size_t n = strlen(mounts[i].path);
        if (strncmp(value, mounts[i].path, n) == 0 && (value[n] == '\0' || value[n] == '/')) {
            char *out = NULL;
            return asprintf(&out, "%s%s", mounts[i].host, value + n) < 0 ? NULL : out;
        }
    }
    const char *colon = strrchr(value, ':');
    if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1) && !strchr(value, '/'))
        for (size_t i = 0; i < pod->nports; i++)
            if (pod->container_ports[i] == atoi(colon + 1)) {
                char *out = NULL;
                return asprintf(&out, "127.0.0.1:%d", pod->ports[i]) < 0 ? NULL : out;
            }
    return strdup(value);
}

/* Sets name=value (value taken) in env, the later one winning as in the kubelet. */
static bool env_put(json_t *env, const char *name, char *value)
{
    if (!value)
        return false;
    int rc = json_object_set_new(env, name, json_string(value));
    free(value);
    return rc == 0;
}

static bool env_from(kube *k, const char *ns, const json_t *container, json_t *env, mr_err *err)
{
    size_t i;
    const json_t *src;
    json_array_foreach(json_object_get(container, "envFrom"), i, src) {
        const json_t *sref = json_object_get(src, "secretRef"), *cref = json_object_get(src, "configMapRef");
        const json_t *ref = sref ? sref : cref;
        const char *name = json_string_value(json_object_get(ref, "name"));
        const char *prefix = json_string_value(json_object_get(src, "prefix"));
        const json_t *obj = name ? lookup(k, sref ? "secrets" : "configmaps", ns, name) : NULL;
        if (!obj) {
            if (json_is_true(json_object_get(ref, "optional")))
                continue;
            return POD_FAIL("%s \"%s\" not found", sref ? "secret" : "configmap", name ? name : "");
        }
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(obj, "data"), key, v) {
            char *name_out = NULL, *value = sref ? secret_value(json_string_value(v)) : strdup(json_string_value(v));
            if (asprintf(&name_out, "%s%s", prefix ? prefix : "", key) < 0) {
                free(value);
                return POD_FAIL("out of memory");
            }
            bool ok = env_put(env, name_out, value);
            free(name_out);
            if (!ok)
                return POD_FAIL("%s \"%s\": key %s has no usable value", sref ? "secret" : "configmap", name, key);
        }
    }
    return true;
}

static bool env_list(kube *k, const char *ns, const char *pod_name, const json_t *container, json_t *env,
                     mr_err *err)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(container, "env"), i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const json_t *from = json_object_get(e, "valueFrom");
        if (!name)
            return POD_FAIL("an env entry has no name");
        char *value = NULL;
        if (!from) {
            const char *v = json_string_value(json_object_get(e, "value"));
            value = strdup(v ? v : "");
        } else if (json_object_get(from, "fieldRef")) {
            const char *path = json_string_value(json_object_get(json_object_get(from, "fieldRef"), "fieldPath"));
            const char *v = !path                                     ? NULL
                            : strcmp(path, "metadata.name") == 0      ? pod_name
                            : strcmp(path, "metadata.namespace") == 0 ? ns
                            : strcmp(path, "status.podIP") == 0       ? "127.0.0.1"
                                                                      : NULL;
            if (!v)
                return POD_FAIL("env %s: fieldRef %s is not served by this test API", name, path ? path : "");
            value = strdup(v);
        } else {
            const json_t *sref = json_object_get(from, "secretKeyRef"), *cref = json_object_get(from, "configMapKeyRef");
            if (!sref && !cref)
                return POD_FAIL("env %s: this test API serves value, fieldRef, secretKeyRef and configMapKeyRef",
                            name);
            value = ref_value(k, ns, sref ? sref : cref, sref != NULL, err);
            if (!value) {
                if (json_is_true(json_object_get(sref ? sref : cref, "optional")))
                    continue;
                return false;
            }
        }
        if (!env_put(env, name, value))
            return POD_FAIL("out of memory");
    }
    return true;
}

/* Writes each key of a ConfigMap's or Secret's data as a file in dir. */
static bool write_files(const json_t *data, bool secret, const char *dir, mr_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)data, key, v) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, key);
        char *text = secret ? secret_value(json_string_value(v)) : strdup(json_string_value(v) ?: "");
        int fd = text ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
        size_t len = text ? strlen(text) : 0;
        bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
        if (fd >= 0 && close(fd) != 0)
            ok = false;
        free(text);
        if (!ok)
            return POD_FAIL("cannot write %s: %s", path, strerror(errno));
    }
    return true;
}

/* Makes the directory a volume is, filled as the kubelet would; false with err. */
static bool make_volume(kube *k, const char *ns, const json_t *vol, const char *dir, const char *claims,
                        char *host, size_t hcap, mr_err *err)
{
    const char *name = json_string_value(json_object_get(vol, "name"));
    const json_t *cm = json_object_get(vol, "configMap"), *sec = json_object_get(vol, "secret");
    const json_t *pvc = json_object_get(vol, "persistentVolumeClaim");
    if (pvc) {
        /* A claim outlives its pods: one directory per claim for the peer's lifetime. */
        snprintf(host, hcap, "%s/%s-%s", claims, ns, json_string_value(json_object_get(pvc, "claimName")) ?: "");
        if (mkdir(host, 0700) != 0 && errno != EEXIST)
            return POD_FAIL("cannot create %s: %s", host, strerror(errno));
        return true;
    }
    snprintf(host, hcap, "%s/volumes/%s", dir, name);
    if (mkdir(host, 0700) != 0 && errno != EEXIST)
        return POD_FAIL("cannot create %s: %s", host, strerror(errno));
    if (json_object_get(vol, "emptyDir"))
        return true;
    if (cm || sec) {
        const char *src = json_string_value(json_object_get(cm ? cm : sec, cm ? "name" : "secretName"));
        const json_t *obj = src ? lookup(k, cm ? "configmaps" : "secrets", ns, src) : NULL;
        if (!obj)
            return json_is_true(json_object_get(cm ? cm : sec, "optional"))
                       ? true
                       : POD_FAIL("%s \"%s\" not found", cm ? "configmap" : "secret", src ? src : "");
        /* items (a subset of keys) is not served: every key becomes a file. */
        return write_files(json_object_get(obj, "data"), sec != NULL, host, err);
    }
    return POD_FAIL("volume %s: this test API runs configMap, secret, emptyDir and persistentVolumeClaim",
                name ? name : "");
}

static bool mounts_of(kube *k, const char *ns, const json_t *podspec, const json_t *container, const char *dir,
                      const char *claims, mount *mounts, size_t *n, mr_err *err)
{
    char vdir[1100];
    snprintf(vdir, sizeof vdir, "%s/volumes", dir);
    if (mkdir(vdir, 0700) != 0 && errno != EEXIST)
        return POD_FAIL("cannot create %s: %s", vdir, strerror(errno));
    size_t i;
    const json_t *vm;
    *n = 0;
    json_array_foreach(json_object_get(container, "volumeMounts"), i, vm) {
        const char *name = json_string_value(json_object_get(vm, "name"));
        const char *path = json_string_value(json_object_get(vm, "mountPath"));
        const char *sub = json_string_value(json_object_get(vm, "subPath"));
        const json_t *vol = NULL, *v;
        size_t j;
        json_array_foreach(json_object_get(podspec, "volumes"), j, v)
            if (name && strcmp(json_string_value(json_object_get(v, "name")) ?: "", name) == 0)
                vol = v;
        if (!vol || !path)
            return POD_FAIL("volumeMount %s: no such volume", name ? name : "");
        if (*n == MAX_MOUNTS)
            return POD_FAIL("more than %d volume mounts", MAX_MOUNTS);
        mount *m = &mounts[(*n)++];
        m->path = path;
        if (!make_volume(k, ns, vol, dir, claims, m->host, sizeof m->host, err))
            return false;
        if (sub) {
            size_t len = strlen(m->host);
            snprintf(m->host + len, sizeof m->host - len, "/%s", sub);
        }
    }
    /* The longest mount path first, so /a/b wins over /a. */
    for (size_t a = 1; a < *n; a++)
        for (size_t b = a; b > 0 && strlen(mounts[b].path) > strlen(mounts[b - 1].path); b--) {
            mount t = mounts[b];
            mounts[b] = mounts[b - 1];
            mounts[b - 1] = t;
        }
    return true;
}

/* A free port on loopback, as the kernel hands it out. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                       getsockname(fd, (struct sockaddr *)&a, &len) == 0
                   ? ntohs(a.sin_port)
                   : -1;
    if (fd >= 0)
        close(fd);
    return port;
}

static bool ports_of(const json_t *container, kube_pod *pod, mr_err *err)
{
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(container, "ports"), i, p) {
        if (pod->nports == KUBE_POD_PORTS)
            return POD_FAIL("more than %d container ports", KUBE_POD_PORTS);
        size_t n = pod->nports++;
        pod->container_ports[n] = (int)json_integer_value(json_object_get(p, "containerPort"));
        snprintf(pod->port_names[n], sizeof pod->port_names[n], "%s", json_string_value(json_object_get(p, "name")) ?: "");
        if ((pod->ports[n] = free_port()) < 0)
            return POD_FAIL("no free local port: %s", strerror(errno));
    }
    return true;
}

/* readinessProbe.httpGet, with the kubelet's defaults for what is left out. */
static bool probe_of(const json_t *container, kube_pod *pod, mr_err *err)
{
    const json_t *probe = json_object_get(container, "readinessProbe");
    pod->period_s = 10;
    pod->timeout_s = 1;
    pod->failure_threshold = 3;
    if (!probe)
        return true;
    const json_t *get = json_object_get(probe, "httpGet");
    if (!get)
        return POD_FAIL("readinessProbe: this test API runs httpGet probes only");
    const json_t *port = json_object_get(get, "port");
    for (size_t i = 0; i < pod->nports && !pod->probe_port; i++)
        if ((json_is_string(port) && strcmp(json_string_value(port), pod->port_names[i]) == 0) ||
            (json_is_integer(port) && json_integer_value(port) == pod->container_ports[i]))
            pod->probe_port = pod->ports[i];
    if (!pod->probe_port)
        return POD_FAIL("readinessProbe: port %s is not a container port",
                    json_is_string(port) ? json_string_value(port) : "(number)");
    const char *path = json_string_value(json_object_get(get, "path"));
    snprintf(pod->probe_path, sizeof pod->probe_path, "%s", path ? path : "/");
    pod->has_probe = true;
    const struct { const char *key; int *to; } ints[] = {
        {"initialDelaySeconds", &pod->initial_delay_s}, {"periodSeconds", &pod->period_s},
        {"timeoutSeconds", &pod->timeout_s}, {"failureThreshold", &pod->failure_threshold}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const json_t *v = json_object_get(probe, ints[i].key);
        if (json_is_integer(v) && json_integer_value(v) > 0)
            *ints[i].to = (int)json_integer_value(v);
    }
    return true;
}

/* The local binary of an image: "registry/path/NAME:TAG" by NAME. */
static const char *binary_of(const json_t *images, const char *image)
{
    const char *slash = strrchr(image, '/'), *base = slash ? slash + 1 : image;
    size_t len = strcspn(base, ":@");
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)len, base);
    return json_string_value(json_object_get(images, name));
}

static char **string_array(size_t n)
{
    return calloc(n + 1, sizeof(char *));
}

static void free_strings(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

void kube_pod_clear(kube_pod *pod)
{
    free_strings(pod->argv);
    free_strings(pod->envp);
    pod->argv = pod->envp = NULL;
}

bool kube_pod_build(kube *k, const json_t *deployment, const json_t *images, const char *dir, const char *claims,
                    kube_pod *pod, mr_err *err)
{
    const json_t *m = json_object_get(deployment, "metadata");
    const char *ns = json_string_value(json_object_get(m, "namespace"));
    const json_t *podspec = json_object_get(json_object_get(json_object_get(deployment, "spec"), "template"), "spec");
    const json_t *containers = json_object_get(podspec, "containers");
    if (json_array_size(containers) != 1)
        return POD_FAIL("this test API runs pods of one container, not %zu", json_array_size(containers));
    const json_t *c = json_array_get(containers, 0);
    const json_t *grace = json_object_get(podspec, "terminationGracePeriodSeconds");
    pod->grace_s = json_is_integer(grace) ? (int)json_integer_value(grace) : 30;
    const char *image = json_string_value(json_object_get(c, "image"));
    const char *bin = image ? binary_of(images, image) : NULL;
    if (!bin)
        return POD_FAIL("image \"%s\": no binary given for it (--image NAME=PATH)", image ? image : "");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return POD_FAIL("cannot create %s: %s", dir, strerror(errno));
    mount mounts[MAX_MOUNTS];
    size_t nmounts = 0;
    /* What the kubelet and the image set before the container's own variables: the host name,
     * PATH (the peer's, standing in for the image's) and HOME. */
    const char *path = getenv("PATH");
    json_t *env = json_pack("{s:s, s:s, s:s}", "HOSTNAME", pod->name, "PATH", path ? path : "/usr/bin:/bin", "HOME", dir);
    if (!env)
        return POD_FAIL("out of memory");
    bool ok = mounts_of(k, ns, podspec, c, dir, claims, mounts, &nmounts, err) && ports_of(c, pod, err) &&
              probe_of(c, pod, err) && env_from(k, ns, c, env, err) &&
              env_list(k, ns, pod->name, c, env, err);
    /* The image's command is its one binary; what follows it and args are kept. */
    const json_t *command = json_object_get(c, "command"), *args = json_object_get(c, "args");
    size_t ncmd = json_array_size(command), nargs = json_array_size(args);
    pod->argv = ok ? string_array(1 + (ncmd ? ncmd - 1 : 0) + nargs) : NULL;
    pod->envp = ok ? string_array(json_object_size(env)) : NULL;
    ok = ok && pod->argv && pod->envp && (pod->argv[0] = strdup(bin));
    size_t at = 1, i;
    json_t *v;
    json_array_foreach(command, i, v)
        if (ok && i > 0)
            ok = (pod->argv[at++] = rewrite(json_string_value(v) ?: "", mounts, nmounts, pod)) != NULL;
    json_array_foreach(args, i, v)
        if (ok)
            ok = (pod->argv[at++] = rewrite(json_string_value(v) ?: "", mounts, nmounts, pod)) != NULL;
    at = 0;
    const char *name;
    json_object_foreach(env, name, v) {
        if (!ok)
            break;
        char *value = rewrite(json_string_value(v), mounts, nmounts, pod), *line = NULL;
        ok = value && asprintf(&line, "%s=%s", name, value) >= 0;
        pod->envp[at++] = ok ? line : NULL;
        free(value);
    }
    json_decref(env);
    if (!ok) {
        if (!err->msg[0])
            mr_err_set(err, MR_ENOMEM, "out of memory");
        kube_pod_clear(pod);
    }
    return ok;
}
