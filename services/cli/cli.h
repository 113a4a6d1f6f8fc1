/* cli.h -- what the files of the `mindroom` command share: exit codes, commands, option and
 * usage helpers. */
#ifndef MINDROOM_CLI_H
#define MINDROOM_CLI_H

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include "mindroom/config.h"
#include "mindroom/dotenv.h"
#include "mindroom/err.h"
#include "mindroom/llm.h"

/* The exit codes every command uses, and that --help documents. */
enum {
    MR_CLI_EXIT_OK = 0,     /* success */
    MR_CLI_EXIT_FAILED = 1, /* the operation failed: validation errors, refused overwrite, I/O */
    MR_CLI_EXIT_USAGE = 2,  /* bad usage: unknown command or option, bad option value */
};

/* A command's entry point. argv[0] is the command's last word ("init"); returns an exit code. */
typedef int (*mr_cli_cmd_fn)(int argc, char **argv);

int mr_cli_config_init(int argc, char **argv);
int mr_cli_config_validate(int argc, char **argv);
int mr_cli_authz_explain(int argc, char **argv);
int mr_cli_connect(int argc, char **argv);
int mr_cli_run(int argc, char **argv);
int mr_cli_doctor(int argc, char **argv);

/* getopt_long over a command's arguments with errors reported by us, not getopt: returns the
 * option's value, -1 when options end, or MR_CLI_GETOPT_USAGE after printing a one-line
 * error naming the bad option (the caller then returns MR_CLI_EXIT_USAGE). shortopts is
 * written as for getopt, without a leading ':'. cmd is the full command ("config init"). */
#define MR_CLI_GETOPT_USAGE (-2)
int mr_cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
                  const char *cmd);

/* Prints "mindroom <cmd>: <message>; try 'mindroom <cmd> --help'" to stderr and returns
 * MR_CLI_EXIT_USAGE. cmd may be NULL for the top level. */
int mr_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "mindroom <cmd>: <message>" to stderr and returns MR_CLI_EXIT_FAILED. */
int mr_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints a help text and the exit-code table to stdout; returns MR_CLI_EXIT_OK. */
int mr_cli_help(const char *text);
/* The exit-code table as --help shows it. */
extern const char mr_cli_exit_codes_help[];

/* The config file a command works on: arg when given (a file, or a directory meaning
 * DIR/config.yaml; must_exist is not checked for it), else the lookup order of
 * mr_config_find_path. */
mr_code mr_cli_config_path(const char *arg, bool must_exist, char *out, size_t cap, mr_err *err);
/* mr_cli_config_path, and the .env beside that config, which every command reads with it. */
mr_code mr_cli_config_files(const char *arg, bool must_exist, char config_path[PATH_MAX], char env_path[PATH_MAX],
                            mr_err *err);

/* Prints every diagnostic of a config load to stderr as file:line:col: field: message. */
void mr_cli_print_diags(const mr_config_diags *diags);

/* A setting as `run` resolves it: process environment, then .env (env may be NULL); an empty
 * value counts as unset (NULL). */
const char *mr_cli_setting(const mr_dotenv *env, const char *key);


#endif
