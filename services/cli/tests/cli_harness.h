/* cli_harness.h -- runs the `mindroom` binary as a process in a scratch HOME/cwd and captures its
 * exit code, stdout and stderr, for the CLI tests. Each test file includes it once. */
#ifndef MINDROOM_CLI_HARNESS_H
#define MINDROOM_CLI_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

/* root/ holds the captured output; root/work is both HOME and the working directory. */
typedef struct sandbox {
    char root[PATH_MAX / 2];
    char work[PATH_MAX / 2 + 8];
    char paths[8][PATH_MAX]; /* ring for sb_path */
    int next_path;
} sandbox;

typedef struct cli_run {
    int status; /* exit code; -1 when the process did not exit normally */
    char *out;
    char *err;
} cli_run;

static inline int sandbox_setup(void **state)
{
    sandbox *sb = calloc(1, sizeof *sb);
    if (!sb)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(sb->root, sizeof sb->root, "%s/mr-cli-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(sb->root)) {
        free(sb);
        return -1;
    }
    /* Resolved, so paths the binary derives with realpath() compare equal. */
    char resolved[PATH_MAX];
    if (!realpath(sb->root, resolved) ||
        snprintf(sb->root, sizeof sb->root, "%s", resolved) >= (int)sizeof sb->root ||
        snprintf(sb->work, sizeof sb->work, "%s/work", sb->root) >= (int)sizeof sb->work ||
        mkdir(sb->work, 0700) != 0) {
        free(sb);
        return -1;
    }
    *state = sb;
    return 0;
}

static inline int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline int sandbox_teardown(void **state)
{
    sandbox *sb = *state;
    nftw(sb->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(sb);
    return 0;
}

/* A test that runs in a fresh sandbox of its own: how every CLI test file lists its tests. */
#define SANDBOXED(test) cmocka_unit_test_setup_teardown(test, sandbox_setup, sandbox_teardown)

/* "<work>/<rel>" (or "<root>/<rel>" when rel starts with "../"), in a small ring of buffers so a
 * call can take a few at once. */
static inline const char *sb_path(sandbox *sb, const char *rel)
{
    /* Built aside first: rel may itself be an earlier result living in the ring. */
    char built[PATH_MAX];
    if (strncmp(rel, "../", 3) == 0)
        snprintf(built, sizeof built, "%s/%s", sb->root, rel + 3);
    else
        snprintf(built, sizeof built, "%s/%s", sb->work, rel);
    char *out = sb->paths[sb->next_path];
    sb->next_path = (sb->next_path + 1) % 8;
    memcpy(out, built, sizeof built);
    return out;
}

/* Whole file as a string, NULL when it cannot be read. */
static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (len + 1 >= cap) {
            cap = cap ? cap * 2 : 256;
            char *grown = realloc(buf, cap);
            assert_non_null(grown);
            buf = grown;
        }
        buf[len++] = (char)c;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    assert_non_null(buf);
    buf[len] = '\0';
    return buf;
}

static inline void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static inline void make_dirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0700);
        *p = '/';
    }
    mkdir(buf, 0700);
}

static inline int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static inline bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The environment of the child: ours minus HOME/PWD/MINDROOM_CONFIG_PATH, plus HOME=work and
 * the extra "K=V" entries. */
static inline char **child_env(const sandbox *sb, const char *const *extra, char *home)
{
    size_t n = 0, n_extra = 0;
    while (environ[n])
        n++;
    while (extra && extra[n_extra])
        n_extra++;
    char **env = calloc(n + n_extra + 2, sizeof *env);
    assert_non_null(env);
    size_t used = 0;
    for (size_t i = 0; i < n; i++)
        if (!starts_with(environ[i], "HOME=") && !starts_with(environ[i], "PWD=") &&
            !starts_with(environ[i], "MINDROOM_CONFIG_PATH="))
            env[used++] = environ[i];
    snprintf(home, PATH_MAX + 8, "HOME=%s", sb->work);
    env[used++] = home;
    for (size_t i = 0; i < n_extra; i++)
        env[used++] = (char *)extra[i];
    return env;
}

/* Runs $MINDROOM_BIN with args (NULL-terminated) in the sandbox and waits for it. */
static inline cli_run run_cli_env(sandbox *sb, const char *const *extra_env, const char *const *args)
{
    const char *bin = getenv("MINDROOM_BIN");
    assert_non_null(bin);
    size_t n_args = 0;
    while (args[n_args])
        n_args++;
    char **argv = calloc(n_args + 2, sizeof *argv);
    assert_non_null(argv);
    argv[0] = (char *)bin;
    for (size_t i = 0; i < n_args; i++)
        argv[i + 1] = (char *)args[i];
    char home[PATH_MAX + 8];
    char **env = child_env(sb, extra_env, home);
    char out_path[PATH_MAX + 8], err_path[PATH_MAX + 8];
    snprintf(out_path, sizeof out_path, "%s/stdout", sb->root);
    snprintf(err_path, sizeof err_path, "%s/stderr", sb->root);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int in = open("/dev/null", O_RDONLY);
        if (out < 0 || err < 0 || in < 0 || chdir(sb->work) != 0)
            _exit(126);
        dup2(in, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(err, STDERR_FILENO);
        execve(bin, argv, env);
        _exit(127);
    }
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0)
        assert_int_equal(errno, EINTR);
    free(argv);
    free(env);
    cli_run r = {
        .status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
        .out = slurp(out_path),
        .err = slurp(err_path),
    };
    assert_non_null(r.out);
    assert_non_null(r.err);
    return r;
}

#define run_cli(sb, ...) run_cli_env((sb), NULL, (const char *const[]){__VA_ARGS__, NULL})
#define run_cli_with(sb, env, ...) run_cli_env((sb), (env), (const char *const[]){__VA_ARGS__, NULL})

static inline void cli_run_free(cli_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* Runs args and asserts the exit code and that stderr is exactly `err` (when non-NULL). */
static inline void expect_run(sandbox *sb, int status, const char *err, const char *const *args)
{
    cli_run r = run_cli_env(sb, NULL, args);
    if (r.status != status)
        fprintf(stderr, "exit %d, stdout:\n%s\nstderr:\n%s\n", r.status, r.out, r.err);
    assert_int_equal(r.status, status);
    if (err)
        assert_string_equal(r.err, err);
    cli_run_free(&r);
}

/* Fails naming the first of needles (NULL-terminated) that text lacks; what says which text. */
static inline void expect_all_in(const char *what, const char *text, const char *const *needles)
{
    for (size_t i = 0; needles[i]; i++)
        if (!strstr(text, needles[i]))
            fail_msg("%s lacks \"%s\"; it is:\n%s", what, needles[i], text);
}

/* The help on topic (NULL-terminated words: none for the top level, {"config", "init", NULL}),
 * asked for all three ways (`TOPIC --help`, `TOPIC -h`, `help TOPIC`): each exits 0 with nothing
 * on stderr and the same text, which starts with usage and names the exit codes. Returns the
 * text, for the caller to free. */
static inline char *expect_help(sandbox *sb, const char *usage, const char *const *topic)
{
    size_t n = 0;
    while (topic[n])
        n++;
    assert_true(n <= 4);
    const char *forms[3][6] = {{NULL}};
    for (size_t i = 0; i < n; i++) {
        forms[0][i] = forms[1][i] = forms[2][i + 1] = topic[i];
    }
    forms[0][n] = "--help";
    forms[1][n] = "-h";
    forms[2][0] = "help";
    char *text = NULL;
    for (size_t f = 0; f < 3; f++) {
        cli_run r = run_cli_env(sb, NULL, forms[f]);
        if (r.status != 0 || *r.err || !starts_with(r.out, usage) || !strstr(r.out, "Exit codes:\n") ||
            (text && strcmp(r.out, text) != 0))
            fail_msg("`%s %s`: exit %d, stderr \"%s\", stdout:\n%s", forms[f][0], forms[f][1] ? forms[f][1] : "",
                     r.status, r.err, r.out);
        if (!text) {
            text = r.out;
            r.out = NULL;
        }
        cli_run_free(&r);
    }
    return text;
}

#define expect_help_of(sb, usage, ...) expect_help((sb), (usage), (const char *const[]){__VA_ARGS__, NULL})

#endif
