/* peers.c -- starting real test peers (redis-server, helper programs) on loopback for tests. */
#include "peers.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mindroom/clock.h"
#include "mindroom/fsutil.h"

mr_code mr_tp_mkdtemp(const char *prefix, char *out, size_t cap, mr_err *err)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if (snprintf(out, cap, "%s/%s-XXXXXX", base, prefix) >= (int)cap)
        return mr_err_set(err, MR_EINVAL, "temp dir name under %s too long", base);
    if (!mkdtemp(out))
        return mr_err_errno(err, MR_EIO, errno, "mkdtemp %s", out);
    return MR_OK;
}

static int rmtree_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

mr_code mr_tp_rmtree(const char *path, mr_err *err)
{
    if (nftw(path, rmtree_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        return mr_err_errno(err, MR_EIO, errno, "removing %s", path);
    return MR_OK;
}

mr_code mr_tp_free_port(int *port, mr_err *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mr_err_errno(err, MR_EIO, errno, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int e = errno;
        close(fd);
        return mr_err_errno(err, MR_EIO, e, "binding 127.0.0.1:0");
    }
    *port = ntohs(sa.sin_port);
    close(fd);
    return MR_OK;
}

static int connect_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

mr_code mr_tp_wait_port(int port, int timeout_ms, mr_err *err)
{
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    do {
        int fd = connect_loopback(port);
        if (fd >= 0) {
            close(fd);
            return MR_OK;
        }
        mr_clock_sleep_ms(20);
    } while (mr_clock_mono_ms() < deadline);
    return mr_err_set(err, MR_EUNAVAIL, "nothing accepted connections on 127.0.0.1:%d within %d ms",
                      port, timeout_ms);
}

/* Every child a helper started and has not reaped yet: at exit (a failed assertion ends a cmocka
 * run through main's return), each one's process group is killed, grandchildren included. */
#define MAX_CHILDREN 256
static pid_t children[MAX_CHILDREN];
static pid_t exit_hook_owner; /* a forked child inherits the table and the hook: not its children */

static void kill_children_at_exit(void)
{
    if (getpid() != exit_hook_owner)
        return;
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] <= 0)
            continue;
        kill(-children[i], SIGKILL);
        kill(children[i], SIGKILL);
        while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR)
            ;
        children[i] = 0;
    }
}

void mr_tp_child_prepare(pid_t parent)
{
    setpgid(0, 0);
    /* The test process dying without running its exit hooks (abort, SIGKILL, a CTest timeout)
     * takes the child with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
}

void mr_tp_adopt(pid_t pid)
{
    if (exit_hook_owner != getpid() && atexit(kill_children_at_exit) == 0)
        exit_hook_owner = getpid();
    for (size_t i = 0; i < MAX_CHILDREN; i++) {
        if (children[i] == 0) {
            children[i] = pid;
            return;
        }
    }
}

/* pid was reaped: it no longer needs killing at exit, and its number may come back. */
static void forget_child(pid_t pid)
{
    for (size_t i = 0; i < MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
}

mr_code mr_tp_spawn(char *const argv[], const char *log_path, pid_t *pid, mr_err *err)
{
    const char *out = log_path ? log_path : "/dev/null";
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return mr_err_errno(err, MR_EIO, errno, "opening %s", out);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) {
        int e = errno;
        close(fd);
        return mr_err_errno(err, MR_EIO, e, "fork for %s", argv[0]);
    }
    if (child == 0) {
        mr_tp_child_prepare(parent);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        execvp(argv[0], argv);
        dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    mr_tp_adopt(child);
    *pid = child;
    return MR_OK;
}

mr_code mr_tp_kill_wait(pid_t pid, int sig, int *status, mr_err *err)
{
    /* kill(0, ...) and kill(-1, ...) signal the caller's own group or every process it may. */
    if (pid <= 0)
        return mr_err_set(err, MR_EINVAL, "refusing to signal pid %d: not a child process", (int)pid);
    if (kill(pid, sig) != 0 && errno != ESRCH)
        return mr_err_errno(err, MR_EIO, errno, "kill %d", (int)pid);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return mr_err_errno(err, MR_EIO, errno, "waitpid %d", (int)pid);
    }
    forget_child(pid);
    if (status)
        *status = st;
    return MR_OK;
}

mr_code mr_tp_wait_exit(pid_t pid, int timeout_ms, int *status, mr_err *err)
{
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 || (r < 0 && errno == EINTR)) {
        if (mr_clock_mono_ms() > deadline) {
            mr_tp_kill_wait(pid, SIGKILL, NULL, NULL);
            return mr_err_set(err, MR_EUNAVAIL, "process %d did not exit within %d ms", (int)pid, timeout_ms);
        }
        mr_clock_sleep_ms(10);
    }
    if (r < 0)
        return mr_err_errno(err, MR_EIO, errno, "waitpid %d", (int)pid);
    forget_child(pid);
    if (status)
        *status = st;
    return MR_OK;
}

void mr_tp_stop_if_running(pid_t pid)
{
    if (pid <= 0)
        return;
    /* What it started in its group goes too, even when it already exited itself. */
    kill(-pid, SIGKILL);
    if (waitpid(pid, NULL, WNOHANG) == 0)
        mr_tp_kill_wait(pid, SIGKILL, NULL, NULL);
    else
        forget_child(pid);
}

mr_code mr_tp_run(char *const argv[], const char *log_path, int *exit_code, mr_err *err)
{
    pid_t pid = 0;
    mr_code rc = mr_tp_spawn(argv, log_path, &pid, err);
    if (rc != MR_OK)
        return rc;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return mr_err_errno(err, MR_EIO, errno, "waitpid %d (%s)", (int)pid, argv[0]);
    }
    forget_child(pid);
    *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return MR_OK;
}

static size_t append_body(char *p, size_t size, size_t n, void *ctx)
{
    return fwrite(p, size, n, ctx);
}

static size_t keep_header(char *p, size_t size, size_t n, void *ctx)
{
    mr_tp_http_reply *r = ctx;
    size_t used = strlen(r->headers), room = sizeof r->headers - used - 1;
    size_t take = size * n < room ? size * n : room;
    memcpy(r->headers + used, p, take);
    r->headers[used + take] = '\0';
    return size * n;
}

mr_code mr_tp_http_do(const char *method, const char *url, const char *const *header_lines, const char *body,
                      long timeout_s, mr_tp_http_reply *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = open_memstream(&out->body, &out->len);
    CURL *c = curl_easy_init();
    struct curl_slist *hs = NULL;
    for (size_t i = 0; header_lines && header_lines[i]; i++)
        hs = curl_slist_append(hs, header_lines[i]);
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (f && c) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "HEAD") == 0)
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        if (body)
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, keep_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
        rc = curl_easy_perform(c);
        if (rc == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    }
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    if (f)
        fclose(f);
    if (rc != CURLE_OK) {
        free(out->body);
        out->body = NULL;
        out->len = 0;
    }
    if (!out->body && !(out->body = strdup("")))
        abort(); /* out of memory in a test: nothing sensible to go on with */
    if (rc != CURLE_OK)
        return mr_err_set(err, MR_EUNAVAIL, "%s %s: %s", method, url, curl_easy_strerror(rc));
    return MR_OK;
}

long mr_tp_http_get(int port, const char *path, char **body)
{
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    mr_tp_http_reply r;
    mr_tp_http_do("GET", url, NULL, NULL, 20, &r, NULL);
    if (body)
        *body = r.body;
    else
        free(r.body);
    return r.status;
}

char *mr_tp_read_text(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (mr_fs_read_all(path, 64u << 20, &text, &len, NULL) != MR_OK)
        text = strdup("");
    if (!text)
        abort(); /* out of memory in a test: nothing sensible to go on with */
    return text;
}

int mr_tp_count_in_file(const char *path, const char *needle)
{
    char *text = mr_tp_read_text(path);
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(text);
    return n;
}

mr_code mr_tp_wait_in_file(const char *path, const char *needle, int times, int timeout_ms, pid_t watch,
                           mr_err *err)
{
    long long deadline = mr_clock_mono_ms() + timeout_ms;
    while (mr_tp_count_in_file(path, needle) < times) {
        if (mr_clock_mono_ms() > deadline)
            return mr_err_set(err, MR_EUNAVAIL, "%s never showed \"%s\" %d times within %d ms", path, needle,
                              times, timeout_ms);
        if (watch > 0 && waitpid(watch, NULL, WNOHANG) == watch) {
            forget_child(watch);
            return mr_err_set(err, MR_EUNAVAIL, "process %d exited before %s showed \"%s\" %d times", (int)watch,
                              path, needle, times);
        }
        mr_clock_sleep_ms(20);
    }
    return MR_OK;
}

void mr_tp_cleanup_dir(const char *dir)
{
    if (getenv("MR_KEEP_TMP"))
        fprintf(stderr, "kept %s\n", dir);
    else
        mr_tp_rmtree(dir, NULL);
}

const char *mr_tp_mcp_everything(void)
{
    const char *entry = getenv("MR_MCP_EVERYTHING");
    if (!entry || access(entry, R_OK) != 0) {
        printf("SKIPPED: %s not found; `make deps` installs @modelcontextprotocol/server-everything\n",
               entry ? entry : "MR_MCP_EVERYTHING");
        return NULL;
    }
    if (system("node --version >/dev/null 2>&1") != 0) {
        printf("SKIPPED: node not found; install Debian's nodejs\n");
        return NULL;
    }
    return entry;
}

mr_code mr_tp_proto_check(const char *topic, const char *path, mr_err *err)
{
    const char *py = getenv("MR_PYTHON3"), *check_py = getenv("MR_PROTO_CHECK");
    if (!py || !check_py)
        return mr_err_set(err, MR_EINVAL, "MR_PYTHON3 and MR_PROTO_CHECK must name python3 and proto/check.py");
    char log[1024];
    if (snprintf(log, sizeof log, "%s.check", path) >= (int)sizeof log)
        return mr_err_set(err, MR_EINVAL, "path %s too long", path);
    unlink(log);
    char *argv[] = {(char *)py, (char *)check_py, "messages", (char *)topic, (char *)path, NULL};
    int code = -1;
    mr_code rc = mr_tp_run(argv, log, &code, err);
    if (rc != MR_OK || code == 0)
        return rc;
    char *text = mr_tp_read_text(log);
    fprintf(stderr, "%s", text);
    free(text);
    return mr_err_set(err, MR_EINVAL, "proto/check.py messages %s %s: exit %d; see %s", topic, path, code, log);
}

/* PING over a raw socket: the support library stays free of hiredis so it can test it. */
static bool redis_answers_ping(int port)
{
    int fd = connect_loopback(port);
    if (fd < 0)
        return false;
    char buf[16] = {0};
    bool ok = write(fd, "PING\r\n", 6) == 6 && read(fd, buf, sizeof buf - 1) > 0 &&
              strncmp(buf, "+PONG", 5) == 0;
    close(fd);
    return ok;
}

static mr_code redis_launch(mr_tp_redis *r, mr_err *err)
{
    char port[16], log[300];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r->dir,
                    "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                    "--protected-mode", "no", NULL};
    mr_code rc = mr_tp_spawn(argv, log, &r->pid, err);
    if (rc != MR_OK)
        return rc;
    long long deadline = mr_clock_mono_ms() + 10000;
    while (mr_clock_mono_ms() < deadline) {
        if (redis_answers_ping(r->port))
            return MR_OK;
        int st;
        if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
            forget_child(r->pid);
            r->pid = 0;
            return mr_err_set(err, MR_EUNAVAIL, "redis-server exited at start on port %d; see %s",
                              r->port, log);
        }
        mr_clock_sleep_ms(20);
    }
    mr_tp_kill_wait(r->pid, SIGKILL, NULL, NULL);
    r->pid = 0;
    return mr_err_set(err, MR_EUNAVAIL, "redis-server did not answer PING on port %d; see %s",
                      r->port, log);
}

mr_code mr_tp_redis_start(mr_tp_redis *r, mr_err *err)
{
    memset(r, 0, sizeof *r);
    mr_code rc = mr_tp_mkdtemp("mr-redis", r->dir, sizeof r->dir, err);
    if (rc != MR_OK)
        return rc;
    /* Another process may take the port between the probe and redis binding it: retry. */
    for (int attempt = 0; attempt < 5; attempt++) {
        rc = mr_tp_free_port(&r->port, err);
        if (rc != MR_OK)
            return rc;
        rc = redis_launch(r, err);
        if (rc == MR_OK) {
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
            return MR_OK;
        }
    }
    return rc;
}

mr_code mr_tp_redis_stop(mr_tp_redis *r, bool hard, mr_err *err)
{
    if (r->pid <= 0)
        return MR_OK;
    mr_code rc = mr_tp_kill_wait(r->pid, hard ? SIGKILL : SIGTERM, NULL, err);
    r->pid = 0;
    return rc;
}

mr_code mr_tp_redis_restart(mr_tp_redis *r, mr_err *err)
{
    mr_code rc = mr_tp_redis_stop(r, false, err);
    if (rc != MR_OK)
        return rc;
    return redis_launch(r, err);
}

void mr_tp_redis_destroy(mr_tp_redis *r)
{
    mr_tp_redis_stop(r, true, NULL);
    if (r->dir[0])
        mr_tp_rmtree(r->dir, NULL);
    r->dir[0] = '\0';
}

pid_t mr_tp_child_running(const char *needle)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;
    while (d && !found && (e = readdir(d))) {
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int pid = 0, ppid = 0;
        char st;
        if (fscanf(f, "%d %*s %c %d", &pid, &st, &ppid) != 3)
            ppid = 0;
        fclose(f);
        if (ppid != getpid())
            continue;
        snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
        f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n] = '\0';
        if (strstr(buf, needle))
            found = pid;
    }
    if (d)
        closedir(d);
    return found;
}
