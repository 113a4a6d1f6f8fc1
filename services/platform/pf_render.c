/* pf_render.c -- the instance chart rendered by `helm template`, its YAML output read into JSON
 * objects ready to apply. */
/* pipe2 */
#define _GNU_SOURCE
#include "pf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

extern char **environ;

/* ---- YAML to JSON ---- */

/* A plain scalar's JSON value as YAML's core schema (which Kubernetes' decoder follows) reads
 * it: null, booleans, integers, floats, else a string. Quoted scalars are always strings. */
static json_t *plain_scalar(const char *v)
{
    if (!*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0)
        return json_null();
    if (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "TRUE") == 0)
        return json_true();
    if (strcmp(v, "false") == 0 || strcmp(v, "False") == 0 || strcmp(v, "FALSE") == 0)
        return json_false();
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*end && !errno && (v[0] != '0' || !v[1]))
        return json_integer(n);
    double d = strtod(v, &end);
    if (!*end && strspn(v, "+-.0123456789eE") == strlen(v) && strpbrk(v, "0123456789"))
        return json_real(d);
    return json_string(v);
}

typedef struct ynode {
    json_t *value;
    char *key;         /* a mapping's pending key */
} ynode;

mr_code pf_yaml_docs(const char *text, size_t len, json_t **out, mr_err *err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return mr_err_set(err, MR_ENOMEM, "out of memory reading helm's output");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    json_t *docs = json_array();
    if (!docs) {
        yaml_parser_delete(&p);
        return mr_err_set(err, MR_ENOMEM, "out of memory reading helm's output");
    }
    ynode stack[64];
    size_t depth = 0;
    json_t *doc = NULL;
    mr_code rc = MR_OK;
    bool done = false;
    while (!done && rc == MR_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = mr_err_set(err, MR_EIO, "helm's output is not YAML: %s at line %zu", p.problem ? p.problem : "?",
                            p.problem_mark.line + 1);
            break;
        }
        json_t *value = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_DOCUMENT_START_EVENT: doc = NULL; break;
        case YAML_DOCUMENT_END_EVENT:
            if (doc && !json_is_null(doc) && !(json_is_object(doc) && json_object_size(doc) == 0) &&
                json_array_append(docs, doc) != 0)
                rc = mr_err_set(err, MR_ENOMEM, "out of memory reading helm's output");
            json_decref(doc);
            doc = NULL;
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth == sizeof stack / sizeof stack[0]) {
                rc = mr_err_set(err, MR_EIO, "helm's output nests deeper than %zu levels", depth);
                break;
            }
            stack[depth++] = (ynode){.value = ev.type == YAML_MAPPING_START_EVENT ? json_object() : json_array()};
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            value = stack[--depth].value;
            break;
        case YAML_SCALAR_EVENT: {
            const char *s = (const char *)ev.data.scalar.value;
            value = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar(s) : json_string(s);
            if (depth && json_is_object(stack[depth - 1].value) && !stack[depth - 1].key) {
                stack[depth - 1].key = strdup(s);
                json_decref(value);
                value = NULL;
            }
            break;
        }
        case YAML_ALIAS_EVENT:
            rc = mr_err_set(err, MR_EIO, "helm's output uses a YAML alias, which the platform does not expand");
            break;
        default: break;
        }
        yaml_event_delete(&ev);
        if (!value)
            continue;
        if (depth == 0) {
            json_decref(doc);
            doc = value;
        } else if (json_is_array(stack[depth - 1].value)) {
            if (json_array_append_new(stack[depth - 1].value, value) != 0)
                rc = mr_err_set(err, MR_ENOMEM, "out of memory reading helm's output");
        } else {
            if (!stack[depth - 1].key || json_object_set_new(stack[depth - 1].value, stack[depth - 1].key, value) != 0)
                rc = mr_err_set(err, MR_ENOMEM, "out of memory reading helm's output");
            free(stack[depth - 1].key);
            stack[depth - 1].key = NULL;
        }
    }
    while (depth) {
        free(stack[depth - 1].key);
        json_decref(stack[--depth].value);
    }
    json_decref(doc);
    yaml_parser_delete(&p);
    if (rc != MR_OK) {
        json_decref(docs);
        return rc;
    }
    *out = docs;
    return MR_OK;
}

/* ---- helm ---- */

/* Reads all of fd into a NUL-terminated buffer. */
static char *slurp(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (ssize_t r; buf && (r = read(fd, buf + n, cap - n - 1)) != 0;) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            return NULL;
        }
        n += (size_t)r;
        if (cap - n < 2) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) {
                free(buf);
                return NULL;
            }
            buf = grown;
        }
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

/* helm's "Error: ..." line(s), without its advice about --debug. */
static void helm_reason(const char *stderr_text, char *out, size_t cap)
{
    const char *e = strstr(stderr_text, "Error: ");
    snprintf(out, cap, "%s", e ? e + 7 : stderr_text);
    char *debug = strstr(out, "\n\nUse --debug");
    if (debug)
        *debug = '\0';
    size_t n = strlen(out);
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
}

mr_code pf_render(const pf_settings *s, const char *release, const json_t *values, json_t **docs, mr_err *err)
{
    char vpath[1024], epath[1024];
    snprintf(vpath, sizeof vpath, "%s/values-XXXXXX", s->scratch);
    snprintf(epath, sizeof epath, "%s/helm-err-XXXXXX", s->scratch);
    /* mkstemp makes both 0600; values hold no secret, but nobody else needs them. */
    int vfd = mkstemp(vpath);
    int efd = vfd >= 0 ? mkstemp(epath) : -1;
    if (vfd < 0 || efd < 0) {
        if (vfd >= 0) {
            close(vfd);
            unlink(vpath);
        }
        return mr_err_set(err, MR_EIO, "cannot create a values file in %s: %s", s->scratch, strerror(errno));
    }
    unlink(epath);
    mr_code rc = json_dumpfd(values, vfd, JSON_COMPACT) == 0 ? MR_OK
                                                              : mr_err_set(err, MR_EIO, "cannot write %s", vpath);
    close(vfd);
    int pipefd[2] = {-1, -1};
    pid_t pid = -1;
    posix_spawn_file_actions_t fa;
    bool fa_ok = false;
    if (rc == MR_OK && pipe2(pipefd, O_CLOEXEC) != 0)
        rc = mr_err_set(err, MR_EIO, "pipe: %s", strerror(errno));
    if (rc == MR_OK) {
        fa_ok = posix_spawn_file_actions_init(&fa) == 0;
        char *argv[] = {s->helm, "template", (char *)release, s->chart, "--namespace", s->ns, "-f", vpath, NULL};
        int e = !fa_ok ? ENOMEM
                : posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1) || posix_spawn_file_actions_adddup2(&fa, efd, 2)
                    ? ENOMEM
                    : posix_spawnp(&pid, s->helm, &fa, NULL, argv, environ);
        if (e != 0)
            rc = mr_err_set(err, MR_EIO, "cannot run %s (MINDROOM_PLATFORM_HELM): %s", s->helm, strerror(e));
    }
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    size_t len = 0;
    char *text = rc == MR_OK ? slurp(pipefd[0], &len) : NULL;
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    unlink(vpath);
    if (rc == MR_OK && !text)
        rc = mr_err_set(err, MR_EIO, "reading helm's output: %s", strerror(errno));
    if (rc == MR_OK && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        size_t elen = 0;
        lseek(efd, 0, SEEK_SET);
        char *etext = slurp(efd, &elen);
        char reason[2048];
        helm_reason(etext ? etext : "", reason, sizeof reason);
        free(etext);
        /* A value the chart refuses is the caller's to fix; anything else (no chart, no helm)
         * is the operator's. */
        bool values_refused = strstr(reason, "values don't meet the specifications") ||
                              strstr(reason, "execution error at");
        rc = mr_err_set(err, values_refused ? MR_EINVAL : MR_EIO, "%s", reason);
    }
    close(efd);
    if (rc == MR_OK)
        rc = pf_yaml_docs(text, len, docs, err);
    free(text);
    size_t i;
    json_t *d;
    json_array_foreach(rc == MR_OK ? *docs : NULL, i, d)
        if (!json_is_object(d)) {
            rc = mr_err_set(err, MR_EIO, "helm's output holds a document that is not an object (#%zu)", i + 1);
            json_decref(*docs);
            *docs = NULL;
            break;
        }
    return rc;
}
