/* kube_run.c -- `--deployments run`: the deployment controller, the kubelet and its prober in one
 * loop, with each pod a local process. Per Deployment, `spec.replicas` pods of the current
 * template run; pods of an older template are stopped (the rollout replaces them all at once);
 * a process that exits is restarted after the kubelet's back-off (10 s doubling to 300 s); the
 * readinessProbe (httpGet) decides readiness, and the Deployment's status is written from the
 * pods as the deployment controller would. A stopped pod gets SIGTERM, then SIGKILL after its
 * terminationGracePeriodSeconds. Every process dies with the peer: it is stopped on exit, and
 * PR_SET_PDEATHSIG kills it if the peer itself is killed. */
#define _GNU_SOURCE
#include "kube.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STEP_MS 50
#define BACKOFF_FIRST_S 10
#define BACKOFF_MAX_S 300

struct kube_runner {
    json_t *images;        /* image name -> binary */
    char root[256];        /* pods/ and claims/ live here; removed at exit */
    char claims[300];
    kube_pod **pods;
    size_t npods, cap;
    unsigned long next_id;
    mr_http_client *http;  /* the prober's */
    pthread_t thread;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stop;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

kube_runner *kube_runner_new(void)
{
    kube_runner *r = calloc(1, sizeof *r);
    if (!r || !(r->images = json_object())) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->stop_lock, NULL);
    pthread_cond_init(&r->stop_cond, NULL);
    return r;
}

bool kube_runner_image(kube_runner *r, const char *spec, char *why, size_t cap)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
        snprintf(why, cap, "--image must be NAME=PATH, not '%s'", spec);
        return false;
    }
    if (access(eq + 1, X_OK) != 0) {
        snprintf(why, cap, "--image %s: %s is not an executable: %s", spec, eq + 1, strerror(errno));
        return false;
    }
    /* Absolute: a pod runs in its own directory. */
    char *path = realpath(eq + 1, NULL);
    if (!path) {
        snprintf(why, cap, "--image %s: %s", spec, strerror(errno));
        return false;
    }
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
    KUBE_MUST(json_object_set_new(r->images, name, json_string(path)));
    free(path);
    return true;
}

/* FNV-1a 64 of the template, as ComputeHash names a ReplicaSet's pods. */
static void template_hash(const json_t *tmpl, char *out, size_t cap)
{
    char *text = json_dumps(tmpl, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        abort();
    unsigned long long h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    free(text);
    snprintf(out, cap, "%016llx", h);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void log_pod(const kube_pod *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_pod(const kube_pod *p, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "mr-test-kube-api: pod %s/%s: %s\n", p->ns, p->name, msg);
}

/* Forks the pod's process. Only async-signal-safe calls run between fork and exec: everything
 * else was prepared by kube_pod_build. */
static void spawn(kube_pod *p)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Dies with the peer's runner thread, the one that forked it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(137);
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, 0);
        if (chdir(p->dir) != 0)
            _exit(126);
        closefrom(3);
        execve(p->argv[0], p->argv, p->envp);
        static const char msg[] = "mr-test-kube-api: a pod's execve failed: ";
        struct iovec parts[] = {{(void *)msg, sizeof msg - 1}, {p->argv[0], strlen(p->argv[0])}, {"\n", 1}};
        (void)!writev(2, parts, 3);
        _exit(127);
    }
    if (pid > 0)
        setpgid(pid, pid); /* as the child does: whichever runs first, a kill reaches the group */
    if (pid < 0) {
        log_pod(p, "fork: %s", strerror(errno));
        p->restart_at = now_s() + BACKOFF_FIRST_S;
        return;
    }
    p->pid = pid;
    p->ready = false;
    p->fails = 0;
    p->started = now_s();
    p->next_probe = p->started + p->initial_delay_s;
    log_pod(p, "started %s (pid %d)%s", p->argv[0], (int)pid, p->restarts ? " again" : "");
}

/* Under k->lock: builds the pod from its Deployment and starts it; a pod that cannot start yet
 * (its Secret missing) waits and is tried again, its reason logged once. */
static void start_pod(kube *k, const json_t *dep, kube_pod *p)
{
    kube_runner *r = k->runner;
    mr_err err = {0};
    kube_pod_clear(p);
    p->nports = 0;
    p->probe_port = 0;
    p->has_probe = false;
    if (!kube_pod_build(k, dep, r->images, p->dir, r->claims, p, &err)) {
        if (strcmp(err.msg, p->last_error) != 0)
            log_pod(p, "cannot start: %s", err.msg);
        snprintf(p->last_error, sizeof p->last_error, "%s", err.msg);
        p->restart_at = now_s() + 1;
        return;
    }
    p->last_error[0] = '\0';
    spawn(p);
}

static void stop_pod(kube_pod *p)
{
    if (p->stopping)
        return;
    p->stopping = true;
    p->ready = false;
    p->kill_at = now_s() + p->grace_s;
    if (p->pid > 0) {
        kill(-p->pid, SIGTERM);
        log_pod(p, "stopping (SIGTERM, SIGKILL after %d s)", p->grace_s);
    }
}

static kube_pod *new_pod(kube_runner *r, const json_t *dep, const char *hash)
{
    if (r->npods == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        kube_pod **grown = realloc(r->pods, cap * sizeof *grown);
        if (!grown)
            abort();
        r->pods = grown;
        r->cap = cap;
    }
    kube_pod *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    const json_t *m = json_object_get(dep, "metadata");
    snprintf(p->ns, sizeof p->ns, "%s", json_string_value(json_object_get(m, "namespace")));
    snprintf(p->deployment, sizeof p->deployment, "%s", json_string_value(json_object_get(m, "name")));
    snprintf(p->hash, sizeof p->hash, "%s", hash);
    snprintf(p->name, sizeof p->name, "%s-%.10s-%05lu", p->deployment, hash, r->next_id++);
    snprintf(p->dir, sizeof p->dir, "%s/pods/%s-%s", r->root, p->ns, p->name);
    r->pods[r->npods++] = p;
    return p;
}

static void free_pod(kube_runner *r, size_t i)
{
    kube_pod *p = r->pods[i];
    rm_tree(p->dir);
    kube_pod_clear(p);
    free(p);
    r->pods[i] = r->pods[--r->npods];
}

static bool pod_of(const kube_pod *p, const json_t *dep)
{
    const json_t *m = json_object_get(dep, "metadata");
    return strcmp(p->ns, json_string_value(json_object_get(m, "namespace")) ?: "") == 0 &&
           strcmp(p->deployment, json_string_value(json_object_get(m, "name")) ?: "") == 0;
}

/* Under k->lock: the deployment controller's part. Each Deployment gets spec.replicas pods of
 * its current template; other pods stop. */
static void reconcile(kube *k)
{
    kube_runner *r = k->runner;
    const kube_resource *deployments = kube_resource_find("apps", "v1", "deployments");
    for (size_t i = 0; i < r->npods; i++) {
        kube_pod *p = r->pods[i];
        if (!p->stopping && !kube_get(k, deployments, p->ns, p->deployment))
            stop_pod(p);
    }
    for (size_t i = 0; i < k->n; i++) {
        if (k->objs[i].res != deployments)
            continue;
        const json_t *dep = k->objs[i].obj;
        const json_t *spec = json_object_get(dep, "spec");
        json_int_t want = json_integer_value(json_object_get(spec, "replicas"));
        char hash[17];
        template_hash(json_object_get(spec, "template"), hash, sizeof hash);
        json_int_t have = 0;
        for (size_t j = 0; j < r->npods; j++) {
            kube_pod *p = r->pods[j];
            if (p->stopping || !pod_of(p, dep))
                continue;
            if (strcmp(p->hash, hash) != 0 || have >= want)
                stop_pod(p);
            else
                have++;
        }
        for (; have < want; have++)
            start_pod(k, dep, new_pod(r, dep, hash));
    }
    double now = now_s();
    for (size_t i = 0; i < r->npods; i++) {
        kube_pod *p = r->pods[i];
        if (!p->stopping && p->pid == 0 && now >= p->restart_at)
            for (size_t j = 0; j < k->n; j++)
                if (k->objs[j].res == deployments && pod_of(p, k->objs[j].obj)) {
                    start_pod(k, k->objs[j].obj, p);
                    break;
                }
    }
}

/* The kubelet's part: exits reaped (a running pod's restarted after the back-off, a stopping
 * one's gone), SIGKILL after the grace period. */
static void reap(kube_runner *r)
{
    double now = now_s();
    for (size_t i = 0; i < r->npods;) {
        kube_pod *p = r->pods[i];
        int status = 0;
        if (p->pid > 0 && waitpid(p->pid, &status, WNOHANG) == p->pid) {
            if (!p->stopping) {
                int backoff = BACKOFF_FIRST_S << (p->restarts < 5 ? p->restarts : 5);
                if (backoff > BACKOFF_MAX_S)
                    backoff = BACKOFF_MAX_S;
                log_pod(p, "exited (%s %d); restarting in %d s", WIFEXITED(status) ? "status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), backoff);
                p->restarts++;
                p->restart_at = now + backoff;
            }
            /* Whatever it started in its group goes with it. */
            kill(-p->pid, SIGKILL);
            p->pid = 0;
            p->ready = false;
        }
        if (p->stopping && p->pid > 0 && now >= p->kill_at) {
            log_pod(p, "did not stop within %d s: SIGKILL", p->grace_s);
            kill(-p->pid, SIGKILL);
            p->kill_at = now + 3600;
        }
        if (p->stopping && p->pid == 0) {
            free_pod(r, i);
            continue;
        }
        i++;
    }
}

/* The prober: readinessProbe.httpGet on the pod's local port; 200-399 passes, failureThreshold
 * failures in a row make it unready. Runs without k->lock (a probe may wait its timeout). */
static void probe(kube_runner *r, kube_pod *p)
{
    double now = now_s();
    if (p->pid == 0 || p->stopping || now < p->next_probe)
        return;
    p->next_probe = now + p->period_s;
    if (!p->has_probe) {
        p->ready = true;
        return;
    }
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", p->probe_port, p->probe_path);
    mr_http_call call = {.method = "GET", .url = url, .timeout_ms = p->timeout_s * 1000L};
    mr_http_result res = {0};
    mr_err err = {0};
    bool ok = mr_http_client_do(r->http, &call, &res, &err) == MR_OK && res.status >= 200 && res.status < 400;
    mr_http_result_clear(&res);
    if (ok) {
        if (!p->ready)
            log_pod(p, "ready");
        p->ready = true;
        p->fails = 0;
    } else if (++p->fails >= p->failure_threshold && p->ready) {
        log_pod(p, "not ready: %s", err.msg[0] ? err.msg : "probe failed");
        p->ready = false;
    }
    /* Until the first success a failing probe is retried each period, as the kubelet does. */
}

/* Under k->lock: each Deployment's status from its pods, written when a count changed. */
static void write_status(kube *k)
{
    kube_runner *r = k->runner;
    const kube_resource *deployments = kube_resource_find("apps", "v1", "deployments");
    for (size_t i = 0; i < k->n; i++) {
        kube_object *o = &k->objs[i];
        if (o->res != deployments)
            continue;
        char hash[17];
        template_hash(json_object_get(json_object_get(o->obj, "spec"), "template"), hash, sizeof hash);
        json_int_t replicas = 0, updated = 0, ready = 0;
        for (size_t j = 0; j < r->npods; j++) {
            const kube_pod *p = r->pods[j];
            /* A terminating pod no longer counts, as a ReplicaSet counts only active pods. */
            if (!pod_of(p, o->obj) || p->stopping)
                continue;
            replicas++;
            if (strcmp(p->hash, hash) == 0) {
                updated++;
                ready += p->ready;
            }
        }
        const json_t *st = json_object_get(o->obj, "status");
        json_int_t gen = json_integer_value(json_object_get(json_object_get(o->obj, "metadata"), "generation"));
        if (json_is_object(st) && json_integer_value(json_object_get(st, "observedGeneration")) == gen &&
            json_integer_value(json_object_get(st, "replicas")) == replicas &&
            json_integer_value(json_object_get(st, "updatedReplicas")) == updated &&
            json_integer_value(json_object_get(st, "readyReplicas")) == ready)
            continue;
        kube_deployment_status(o, replicas, updated, ready);
        kube_touch(k, o);
    }
}

static bool stopping(kube_runner *r)
{
    pthread_mutex_lock(&r->stop_lock);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += STEP_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (!r->stop)
        pthread_cond_timedwait(&r->stop_cond, &r->stop_lock, &ts);
    bool stop = r->stop;
    pthread_mutex_unlock(&r->stop_lock);
    return stop;
}

static void *run(void *arg)
{
    kube *k = arg;
    kube_runner *r = k->runner;
    while (!stopping(r)) {
        pthread_mutex_lock(&k->lock);
        reconcile(k);
        pthread_mutex_unlock(&k->lock);
        reap(r);
        for (size_t i = 0; i < r->npods; i++)
            probe(r, r->pods[i]);
        pthread_mutex_lock(&k->lock);
        write_status(k);
        pthread_mutex_unlock(&k->lock);
    }
    /* The peer stops: every pod as if deleted, then waited for. */
    for (size_t i = 0; i < r->npods; i++)
        stop_pod(r->pods[i]);
    while (r->npods > 0) {
        reap(r);
        if (r->npods > 0)
            nanosleep(&(struct timespec){.tv_nsec = STEP_MS * 1000000L}, NULL);
    }
    return NULL;
}

bool kube_runner_start(kube *k, char *why, size_t cap)
{
    kube_runner *r = k->runner;
    const char *tmp = getenv("TMPDIR");
    snprintf(r->root, sizeof r->root, "%s/mr-kube-run-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(r->root)) {
        snprintf(why, cap, "cannot create a directory for pods under %s: %s", tmp && *tmp ? tmp : "/tmp",
                 strerror(errno));
        return false;
    }
    char pods[300];
    snprintf(pods, sizeof pods, "%s/pods", r->root);
    snprintf(r->claims, sizeof r->claims, "%s/claims", r->root);
    mr_err err = {0};
    mr_http_client_opts o = {.connect_timeout_ms = 1000, .user_agent = "kube-probe/1.31"};
    if (mkdir(pods, 0700) != 0 || mkdir(r->claims, 0700) != 0 || mr_http_client_new(&o, &r->http, &err) != MR_OK) {
        snprintf(why, cap, "cannot prepare %s for pods: %s", r->root, err.msg[0] ? err.msg : strerror(errno));
        rm_tree(r->root);
        return false;
    }
    int e = pthread_create(&r->thread, NULL, run, k);
    if (e != 0) {
        snprintf(why, cap, "cannot start the pod runner: %s", strerror(e));
        rm_tree(r->root);
        return false;
    }
    return true;
}

void kube_runner_stop(kube *k)
{
    kube_runner *r = k->runner;
    if (!r)
        return;
    if (r->http) {
        pthread_mutex_lock(&r->stop_lock);
        r->stop = true;
        pthread_cond_signal(&r->stop_cond);
        pthread_mutex_unlock(&r->stop_lock);
        pthread_join(r->thread, NULL);
        mr_http_client_free(r->http);
        rm_tree(r->root);
    }
    free(r->pods);
    json_decref(r->images);
    pthread_mutex_destroy(&r->stop_lock);
    pthread_cond_destroy(&r->stop_cond);
    free(r);
    k->runner = NULL;
}
