/* cli_options.c -- option parsing, usage errors, help output and config path resolution and diagnostics shared
 * by every `mindroom` command. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mindroom/config.h"
#include "mindroom/fsutil.h"

const char mr_cli_exit_codes_help[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  the operation failed (validation errors, refused overwrite, I/O error)\n"
    "  2  bad usage (unknown command or option, bad option value)\n";

/* "--path=x" names the option "--path". */
static void long_option_name(const char *token, char *out, size_t cap)
{
    size_t n = strcspn(token, "=");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, token, n);
    out[n] = '\0';
}

int mr_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
                  const char *cmd)
{
    /* A leading ':' makes getopt report a missing value as ':' and print nothing itself. */
    char optstring[64];
    snprintf(optstring, sizeof optstring, ":%s", shortopts);
    int c = getopt_long(argc, argv, optstring, longopts, NULL);
    if (c != '?' && c != ':')
        return c;

    const char *token = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    bool is_long = strncmp(token, "--", 2) == 0;
    char name[64];
    if (is_long)
        long_option_name(token, name, sizeof name);
    else
        snprintf(name, sizeof name, "-%c", optopt);

    if (c == ':')
        mr_cli_usage_error(cmd, "option '%s' needs a value", name);
    else if (optopt == 0 && is_long)
        mr_cli_usage_error(cmd, "unknown option '%s'", name);
    else if (is_long && strchr(token, '='))
        mr_cli_usage_error(cmd, "option '%s' takes no value", name);
    else
        mr_cli_usage_error(cmd, "unknown option '%s'", name);
    return MR_CLI_GETOPT_USAGE;
}

static void print_prefixed(const char *cmd, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void print_prefixed(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "mindroom%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
}

int mr_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_prefixed(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; try 'mindroom%s%s --help'\n", cmd ? " " : "", cmd ? cmd : "");
    return MR_CLI_EXIT_USAGE;
}

int mr_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_prefixed(cmd, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return MR_CLI_EXIT_FAILED;
}

int mr_cli_help(const char *text)
{
    fputs(text, stdout);
    fputc('\n', stdout);
    fputs(mr_cli_exit_codes_help, stdout);
    return MR_CLI_EXIT_OK;
}

mr_code mr_cli_config_path(const char *arg, bool must_exist, char *out, size_t cap, mr_err *err)
{
    if (!arg)
        return mr_config_find_path(out, cap, must_exist, err);
    if (!*arg)
        return mr_err_set(err, MR_EINVAL, "the config path is empty");
    size_t n = strlen(arg);
    struct stat st;
    bool is_dir = arg[n - 1] == '/' || (stat(arg, &st) == 0 && S_ISDIR(st.st_mode));
    int len = is_dir ? snprintf(out, cap, "%s%sconfig.yaml", arg, arg[n - 1] == '/' ? "" : "/")
                     : snprintf(out, cap, "%s", arg);
    if (len < 0 || (size_t)len >= cap)
        return mr_err_set(err, MR_EINVAL, "config path '%s' is longer than %zu bytes", arg, cap - 1);
    return MR_OK;
}

mr_code mr_cli_config_files(const char *arg, bool must_exist, char config_path[PATH_MAX], char env_path[PATH_MAX],
                            mr_err *err)
{
    mr_code rc = mr_cli_config_path(arg, must_exist, config_path, PATH_MAX, err);
    if (rc != MR_OK)
        return rc;
    char dir[PATH_MAX];
    mr_fs_dirname(config_path, dir, sizeof dir);
    if (snprintf(env_path, PATH_MAX, "%s/.env", dir) >= PATH_MAX)
        return mr_err_set(err, MR_EINVAL, "path of .env next to %s is too long", config_path);
    return MR_OK;
}

void mr_cli_print_diags(const mr_config_diags *diags)
{
    char line[1024];
    for (size_t i = 0; i < diags->len; i++) {
        int n = mr_config_diag_format(diags, i, line, sizeof line);
        if (n < 0)
            continue;
        if ((size_t)n < sizeof line) {
            fprintf(stderr, "%s\n", line);
            continue;
        }
        /* Longer than the stack buffer (a long value quoted back): format it whole. */
        char *big = malloc((size_t)n + 1);
        if (big) {
            mr_config_diag_format(diags, i, big, (size_t)n + 1);
            fprintf(stderr, "%s\n", big);
            free(big);
        } else {
            fprintf(stderr, "%s...\n", line);
        }
    }
}

const char *mr_cli_setting(const mr_dotenv *env, const char *key)
{
    const char *v = mr_setting(NULL, key, env, NULL);
    return v && *v ? v : NULL;
}
