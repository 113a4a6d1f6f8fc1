/* main.c -- the `mindroom` command: finds the command named on the command line and runs it. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mindroom/runtime.h"

typedef struct cli_group {
    const char *name;
    const char *summary;
} cli_group;

typedef struct cli_command {
    const char *group;   /* NULL for a top-level command ("connect") */
    const char *name;
    const char *args;    /* shown after the command name in help */
    const char *summary;
    mr_cli_cmd_fn run;
} cli_command;

static const cli_group groups[] = {
    {"config", "Create and check config.yaml"},
    {"authz", "Debug who may talk to the agents"},
};

/* The only commands that exist; every help text is generated from this table. */
static const cli_command commands[] = {
    {"config", "init", "[options]", "Write a starter config.yaml and .env", mr_cli_config_init},
    {"config", "validate", "[PATH]", "Check config.yaml; report every problem with file:line",
     mr_cli_config_validate},
    {"authz", "explain", "[options]", "Show the authorization decision and the rule behind it",
     mr_cli_authz_explain},
    {NULL, "connect", "--pair-code CODE", "Pair this install with your Matrix account", mr_cli_connect},
    {NULL, "run", "[options]", "Run the agents: every service in this process", mr_cli_run},
    {NULL, "doctor", "[--config PATH]", "Check the config, homeserver, registration and models",
     mr_cli_doctor},
};

#define N_GROUPS (sizeof groups / sizeof groups[0])
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static bool is_help_flag(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static void print_command_list(FILE *out, const char *group)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (group && (!commands[i].group || strcmp(commands[i].group, group) != 0))
            continue;
        char usage[64];
        if (commands[i].group)
            snprintf(usage, sizeof usage, "%s %s %s", commands[i].group, commands[i].name, commands[i].args);
        else
            snprintf(usage, sizeof usage, "%s %s", commands[i].name, commands[i].args);
        fprintf(out, "  %-28s %s\n", usage, commands[i].summary);
    }
}

static void print_top_help(FILE *out)
{
    fputs("Usage: mindroom <command> [options]\n"
          "       mindroom --help | --version\n"
          "\n"
          "MindRoom runs AI agents as Matrix users.\n"
          "\n"
          "Commands:\n",
          out);
    print_command_list(out, NULL);
    fprintf(out, "  %-28s %s\n", "help [COMMAND]", "Show help for mindroom or for one command");
    fputs("\n"
          "Options:\n"
          "  -h, --help    Show this help and exit\n"
          "      --version Print the version and exit\n"
          "\n"
          "Run 'mindroom <command> --help' for a command's options.\n"
          "\n"
          "The configuration is looked up at $MINDROOM_CONFIG_PATH, then ./config.yaml, then\n"
          "~/.mindroom/config.yaml; .env sits next to it. Settings resolve as command-line flag,\n"
          "then process environment, then .env, then the default.\n"
          "\n",
          out);
    fputs(mr_cli_exit_codes_help, out);
}

static int group_help(const cli_group *g)
{
    printf("Usage: mindroom %s <command> [options]\n\n%s.\n\nCommands:\n", g->name, g->summary);
    print_command_list(stdout, g->name);
    printf("\nRun 'mindroom %s <command> --help' for a command's options.\n\n", g->name);
    fputs(mr_cli_exit_codes_help, stdout);
    return MR_CLI_EXIT_OK;
}

static const cli_group *find_group(const char *name)
{
    for (size_t i = 0; i < N_GROUPS; i++)
        if (strcmp(groups[i].name, name) == 0)
            return &groups[i];
    return NULL;
}

/* group NULL finds a top-level command. */
static const cli_command *find_command(const char *group, const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const char *g = commands[i].group;
        if ((g && group ? strcmp(g, group) == 0 : g == group) && strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

/* Each process runs one command; start getopt from scratch for it. argv[0] is its name. */
static int run_command(const cli_command *c, int argc, char **argv)
{
    optind = 0;
    opterr = 0;
    return c->run(argc, argv);
}

/* argv[0] is a group name ("config"); the rest is the command and its arguments. */
static int run_group(const cli_group *g, int argc, char **argv)
{
    if (argc < 2)
        return mr_cli_usage_error(g->name, "missing command");
    if (is_help_flag(argv[1]))
        return group_help(g);
    if (argv[1][0] == '-')
        return mr_cli_usage_error(g->name, "unknown option '%s'", argv[1]);
    const cli_command *c = find_command(g->name, argv[1]);
    if (!c)
        return mr_cli_usage_error(g->name, "unknown command '%s'", argv[1]);
    return run_command(c, argc - 1, argv + 1);
}

/* `mindroom help [GROUP [COMMAND]]` shows what the same words with --help would. */
static int run_help(int argc, char **argv)
{
    if (argc < 2 || is_help_flag(argv[1])) {
        print_top_help(stdout);
        return MR_CLI_EXIT_OK;
    }
    char help_flag[] = "--help";
    const cli_group *g = find_group(argv[1]);
    const cli_command *top = g ? NULL : find_command(NULL, argv[1]);
    if (!g && !top)
        return mr_cli_usage_error(NULL, "unknown command '%s'", argv[1]);
    if (top && argc > 2)
        return mr_cli_usage_error(NULL, "unexpected argument '%s' after 'help %s'", argv[2], argv[1]);
    if (top) {
        char *top_argv[] = {argv[1], help_flag, NULL};
        return run_command(top, 2, top_argv);
    }
    if (argc < 3)
        return group_help(g);
    if (argc > 3)
        return mr_cli_usage_error(NULL, "unexpected argument '%s' after 'help %s %s'", argv[3],
                                  argv[1], argv[2]);
    char *group_argv[] = {argv[1], argv[2], help_flag, NULL};
    return run_group(g, 3, group_argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_top_help(stderr);
        return MR_CLI_EXIT_USAGE;
    }
    const char *first = argv[1];
    if (is_help_flag(first))
        return run_help(1, argv + 1);
    if (strcmp(first, "--version") == 0) {
        printf("mindroom %s\n", MR_VERSION);
        return MR_CLI_EXIT_OK;
    }
    if (first[0] == '-')
        return mr_cli_usage_error(NULL, "unknown option '%s'", first);
    /* `run` starts every service's threads: before any, the process tuning that needs a start. */
    if (strcmp(first, "run") == 0)
        mr_runtime_tune_exec(argv);
    if (strcmp(first, "help") == 0)
        return run_help(argc - 1, argv + 1);
    const cli_group *g = find_group(first);
    if (g)
        return run_group(g, argc - 1, argv + 1);
    const cli_command *c = find_command(NULL, first);
    if (!c)
        return mr_cli_usage_error(NULL, "unknown command '%s'", first);
    return run_command(c, argc - 1, argv + 1);
}
