/* shell.c -- the shell tool: one /bin/sh command in the agent's workspace, with a scrubbed
 * environment (the agent's keys stay out), its output bounded, killed with its process group
 * at the call's deadline. It is not a sandbox: only agents whose operator turned the workspace
 * on get it. */
#define _GNU_SOURCE /* pipe2 */
#include "tools_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mindroom/clock.h"

#define TOOL "shell"

/* Reads the child's output until it closes or the deadline; keeps at most max + 1 bytes (so the
 * runner sees there was more) and drains the rest. Returns false at the deadline. */
static bool collect(int fd, long long deadline_ms, size_t max, mr_strbuf *out)
{
    char buf[8192];
    for (;;) {
        long long left = deadline_ms - mr_clock_mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return true;
        size_t room = out->len <= max ? max + 1 - out->len : 0;
        mr_strbuf_add(out, buf, (size_t)n < room ? (size_t)n : room);
    }
}

static mr_code shell_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out, mr_err *err)
{
    const char *command;
    mr_code rc = tools_arg_str(args, TOOL, "command", true, &command, err);
    if (rc != MR_OK)
        return rc;
    int root = tools_ws_root(env, TOOL, err);
    if (root < 0)
        return err->code;
    char home[4200];
    snprintf(home, sizeof home, "HOME=%s", env->workspace);
    char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", home, "LANG=C.UTF-8", NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        close(root);
        return mr_err_errno(err, MR_EIO, errno, "%s: pipe", TOOL);
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec: this process has threads. */
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (fchdir(root) != 0 || devnull < 0 || dup2(devnull, 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
            _exit(126);
        execle("/bin/sh", "sh", "-c", command, (char *)NULL, envp);
        _exit(127);
    }
    close(fds[1]);
    close(root);
    if (pid < 0) {
        close(fds[0]);
        return mr_err_errno(err, MR_EIO, errno, "%s: fork", TOOL);
    }
    size_t max = env->max_output > 0 ? env->max_output : MR_TOOLS_OUTPUT_MAX;
    bool in_time = collect(fds[0], deadline_ms, max, out);
    close(fds[0]);
    if (!in_time)
        kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!in_time)
        return mr_err_set(err, MR_EUNAVAIL, "%s: the command did not finish in time and was killed", TOOL);
    char tail[64];
    if (WIFEXITED(status))
        snprintf(tail, sizeof tail, "\n[exit code %d]", WEXITSTATUS(status));
    else
        snprintf(tail, sizeof tail, "\n[killed by signal %d]", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    mr_strbuf_puts(out, tail);
    return MR_OK;
}

const mr_tool_def mr_tool_shell = {
    .name = TOOL,
    .description = "Run one shell command (/bin/sh -c) in this agent's workspace directory; answers with its "
                   "output (stdout and stderr) and exit code. Long-running commands are killed.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"command\":{\"type\":\"string\",\"description\":\"the command line\"}},"
                  "\"required\":[\"command\"],\"additionalProperties\":false}",
    .run = shell_run,
};
