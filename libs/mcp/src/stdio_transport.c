/* stdio_transport.c -- an MCP server as a child process: newline-delimited JSON-RPC on its
 * stdin and stdout, its stderr left to ours (the specification's log channel). */
#define _GNU_SOURCE /* pipe2, posix_spawn_file_actions_addchdir_np */
#include "mcp_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mindroom/clock.h"
#include "mindroom/log.h"
#include "mindroom/sigpipe.h"

extern char **environ;

/* What a child inherits, as the MCP SDKs' default environment: enough to run, no secrets. */
static const char *const inherited_env[] = {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"};

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* The inherited variables, then the configured ones (which win). */
static char **child_env(const mr_mcp_client *c)
{
    size_t n_extra = 0;
    while (c->env && c->env[n_extra])
        n_extra++;
    size_t n_inh = sizeof inherited_env / sizeof inherited_env[0];
    char **v = calloc(n_inh + n_extra + 1, sizeof *v);
    if (!v)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < n_inh; i++) {
        const char *val = getenv(inherited_env[i]);
        size_t klen = strlen(inherited_env[i]);
        bool overridden = false;
        for (size_t j = 0; j < n_extra; j++)
            overridden |= strncmp(c->env[j], inherited_env[i], klen) == 0 && c->env[j][klen] == '=';
        if (!val || overridden)
            continue;
        size_t len = klen + strlen(val) + 2;
        if (!(v[n] = malloc(len)))
            goto fail;
        snprintf(v[n++], len, "%s=%s", inherited_env[i], val);
    }
    for (size_t j = 0; j < n_extra; j++)
        if (!(v[n++] = strdup(c->env[j])))
            goto fail;
    return v;
fail:
    free_strv(v);
    return NULL;
}

static char **child_argv(const mr_mcp_client *c)
{
    size_t n = 0;
    while (c->args && c->args[n])
        n++;
    char **v = calloc(n + 2, sizeof *v);
    if (!v)
        return NULL;
    v[0] = c->command;
    for (size_t i = 0; i < n; i++)
        v[i + 1] = c->args[i];
    return v;
}

static mr_code spawn_child(mr_mcp_client *c, int in[2], int out[2], mr_err *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    char **argv = child_argv(c), **envp = child_env(c);
    mr_code rc = MR_OK;
    if (!argv || !envp) {
        rc = mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory starting it", c->name);
        goto out;
    }
    int e = posix_spawn_file_actions_init(&fa);
    if (e == 0) {
        /* The child gets the pipes as 0 and 1; our ends are close-on-exec already. */
        e = posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        e = e ? e : posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        if (!e && c->cwd)
            e = posix_spawn_file_actions_addchdir_np(&fa, c->cwd);
        e = e ? e : posix_spawnattr_init(&attr);
        /* Its own process group, so that stopping it reaches what it started (npx, a shell). */
        e = e ? e : posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
        e = e ? e : posix_spawnattr_setpgroup(&attr, 0);
        if (!e) {
            e = posix_spawnp(&c->pid, c->command, &fa, &attr, argv, envp);
            posix_spawnattr_destroy(&attr);
        }
        posix_spawn_file_actions_destroy(&fa);
    }
    if (e)
        rc = mr_err_set(err, MR_EUNAVAIL, "MCP server %s: cannot start \"%s\": %s", c->name, c->command,
                        strerror(e));
out:
    free(argv);
    free_strv(envp);
    return rc;
}

static mr_code stdio_start(mr_mcp_client *c, mr_err *err)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (in[i] >= 0)
                close(in[i]);
            if (out[i] >= 0)
                close(out[i]);
        }
        return mr_err_set(err, MR_EIO, "MCP server %s: pipe: %s", c->name, strerror(e));
    }
    mr_code rc = spawn_child(c, in, out, err);
    close(in[0]);
    close(out[1]);
    if (rc != MR_OK) {
        close(in[1]);
        close(out[0]);
        c->pid = 0;
        return rc;
    }
    c->to_child = in[1];
    c->from_child = out[0];
    mr_strbuf_init(&c->inbuf, c->max_message + 1);
    return MR_OK;
}

/* Waits up to ms for the child to end; true when it has (and is reaped). */
static bool reaped_within(pid_t pid, long long ms)
{
    long long end = mr_clock_mono_ms() + ms;
    do {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return true;
        mr_clock_sleep_ms(20);
    } while (mr_clock_mono_ms() < end);
    return false;
}

/* The specification's order: close its input, then SIGTERM, then SIGKILL. */
static void stdio_stop(mr_mcp_client *c)
{
    while (c->reading) /* the reader has the pipe for at most a slice */
        pthread_cond_wait(&c->cv, &c->mu);
    if (c->to_child >= 0)
        close(c->to_child);
    c->to_child = -1;
    if (c->pid > 0 && !reaped_within(c->pid, 2000)) {
        kill(-c->pid, SIGTERM);
        if (!reaped_within(c->pid, 2000)) {
            kill(-c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
        }
    }
    c->pid = 0;
    if (c->from_child >= 0)
        close(c->from_child);
    c->from_child = -1;
    mr_strbuf_free(&c->inbuf);
}

static mr_code write_all(mr_mcp_client *c, const char *s, size_t n, mr_err *err)
{
    mr_sigpipe_guard g;
    mr_sigpipe_hold(&g);
    int e = 0;
    while (n > 0) {
        ssize_t w = write(c->to_child, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            e = errno;
            break;
        }
        s += w;
        n -= (size_t)w;
    }
    mr_sigpipe_release(&g);
    if (e)
        return mr_err_set(err, MR_EUNAVAIL, "MCP server %s: writing to it: %s", c->name,
                          e == EPIPE ? "it has exited" : strerror(e));
    return MR_OK;
}

static mr_code send_line(mr_mcp_client *c, const char *msg, mr_err *err)
{
    mr_code rc = write_all(c, msg, strlen(msg), err);
    return rc == MR_OK ? write_all(c, "\n", 1, err) : rc;
}

/* Takes one full line out of inbuf into *line (caller frees); false when none is complete. */
static bool next_line(mr_mcp_client *c, char **line, size_t *len)
{
    char *nl = c->inbuf.s ? memchr(c->inbuf.s, '\n', c->inbuf.len) : NULL;
    if (!nl)
        return false;
    *len = (size_t)(nl - c->inbuf.s);
    *line = strndup(c->inbuf.s, *len);
    size_t rest = c->inbuf.len - *len - 1;
    memmove(c->inbuf.s, nl + 1, rest);
    c->inbuf.len = rest;
    c->inbuf.s[rest] = '\0';
    return true;
}

/* Reads more of the child's output before the deadline (without mu: only the reader touches
 * from_child and inbuf, and stop waits for it). */
static mr_code read_more(mr_mcp_client *c, long long deadline_ms, bool *timed_out, mr_err *err)
{
    for (;;) {
        long long left = deadline_ms - mr_clock_mono_ms();
        if (left <= 0) {
            *timed_out = true;
            return mr_err_set(err, MR_EUNAVAIL, "MCP server %s: no answer in time", c->name);
        }
        struct pollfd p = {.fd = c->from_child, .events = POLLIN};
        int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        char buf[16384];
        ssize_t r = read(c->from_child, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return mr_err_set(err, MR_EUNAVAIL, "MCP server %s: it closed its output (exited?)", c->name);
        if (!mr_strbuf_add(&c->inbuf, buf, (size_t)r))
            return mr_err_set(err, c->inbuf.failed ? MR_ENOMEM : MR_EINVAL,
                              "MCP server %s: a message longer than %zu bytes", c->name, c->max_message);
        return MR_OK;
    }
}

/* An answer to its waiter; one nobody waits for (timed out) is dropped. */
static void deliver(mr_mcp_client *c, json_t *answer, long long id)
{
    for (mcp_pending *p = c->pending; p; p = p->next)
        if (p->id == id && !p->answer) {
            p->answer = answer;
            return;
        }
    json_decref(answer);
}

/* Routes every full line read so far (mu held): answers to their waiters, the server's
 * requests answered. */
static mr_code route_lines(mr_mcp_client *c, mr_err *err)
{
    mr_code rc = MR_OK;
    char *line = NULL;
    size_t len = 0;
    while (rc == MR_OK && next_line(c, &line, &len)) {
        if (!line)
            return mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", c->name);
        json_t *answer = NULL;
        long long id = -1;
        char *reply = NULL;
        mr_err rerr = {0};
        /* A stray line (a server printing logs to stdout) is skipped, not fatal. */
        if (len > 0 && mr_mcp_route(c, line, len, &answer, &id, &reply, &rerr) != MR_OK)
            mr_log_warn("mcp", "%s", rerr.msg);
        free(line);
        if (answer)
            deliver(c, answer, id);
        if (reply)
            rc = send_line(c, reply, err);
        free(reply);
    }
    return rc;
}

/* Reads for every waiter for a while (mu let go meanwhile), then routes what came. */
static mr_code read_for_all(mr_mcp_client *c, long long deadline_ms, mr_err *err)
{
    long long slice = mr_clock_mono_ms() + 200;
    bool slice_over = false;
    c->reading = true;
    pthread_mutex_unlock(&c->mu);
    mr_code rc = read_more(c, deadline_ms < slice ? deadline_ms : slice, &slice_over, err);
    pthread_mutex_lock(&c->mu);
    if (slice_over) /* the waiter looks at its own deadline */
        rc = MR_OK;
    if (rc == MR_OK)
        rc = route_lines(c, err);
    c->reading = false;
    pthread_cond_broadcast(&c->cv);
    return rc;
}

static mr_code stdio_exchange(mr_mcp_client *c, const char *msg, long long id, long long deadline_ms,
                              json_t **answer, bool *timed_out, mr_err *err)
{
    *answer = NULL;
    *timed_out = false;
    unsigned long stops = c->stops;
    mcp_pending me = {.id = id, .next = c->pending};
    if (id >= 0)
        c->pending = &me;
    mr_code rc = send_line(c, msg, err);
    while (rc == MR_OK && id >= 0 && !me.answer) {
        if (c->stops != stops) {
            rc = mr_err_set(err, MR_EUNAVAIL, "MCP server %s stopped while answering", c->name);
        } else if (mr_clock_mono_ms() >= deadline_ms) {
            *timed_out = true;
            rc = mr_err_set(err, MR_EUNAVAIL, "MCP server %s: no answer in time", c->name);
        } else if (!c->reading) {
            rc = read_for_all(c, deadline_ms, err);
        } else {
            struct timespec until = mr_clock_after_ms(CLOCK_MONOTONIC, deadline_ms - mr_clock_mono_ms());
            pthread_cond_timedwait(&c->cv, &c->mu, &until);
        }
    }
    for (mcp_pending **p = &c->pending; id >= 0 && *p; p = &(*p)->next)
        if (*p == &me) {
            *p = me.next;
            break;
        }
    if (rc == MR_OK)
        *answer = me.answer;
    else
        json_decref(me.answer);
    return rc;
}

const mcp_transport_ops mr_mcp_stdio_ops = {stdio_start, stdio_exchange, stdio_stop};
