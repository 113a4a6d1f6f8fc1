/* cmd_config_validate.c -- `mindroom config validate`: loads config.yaml and reports every
 * problem with file:line:col, then the tools this build does not run, then one summary line. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mindroom/config.h"
#include "mindroom/tools.h"

#define CMD "config validate"

static const struct option long_options[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int print_help(void)
{
    return mr_cli_help("Usage: mindroom config validate [PATH]\n"
                       "\n"
                       "Loads config.yaml and prints every problem found, errors and warnings, as\n"
                       "file:line:col: field: message on stderr, then a summary line on stdout.\n"
                       "A tool name MindRoom does not know is an error; one this build does not\n"
                       "run yet is a warning.\n"
                       "\n"
                       "PATH is the config file, or a directory holding config.yaml (default:\n"
                       "$MINDROOM_CONFIG_PATH, then ./config.yaml, then ~/.mindroom/config.yaml).\n"
                       "\n"
                       "Options:\n"
                       "  -h, --help    Show this help and exit\n");
}

static const char *plural(size_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static bool seen(const char **keys, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return true;
    return false;
}

static void add_rooms(const char **keys, size_t *n, const mr_strlist *rooms)
{
    for (size_t i = 0; i < rooms->len; i++)
        if (!seen(keys, *n, rooms->v[i]))
            keys[(*n)++] = rooms->v[i];
}

/* Rooms the config makes MindRoom manage: the rooms block plus every agent's and team's rooms,
 * each counted once. Returns SIZE_MAX when out of memory. */
static size_t count_rooms(const mr_config *cfg)
{
    size_t cap = cfg->n_rooms;
    for (size_t i = 0; i < cfg->n_agents; i++)
        cap += cfg->agents[i].rooms.len;
    for (size_t i = 0; i < cfg->n_teams; i++)
        cap += cfg->teams[i].rooms.len;
    if (cap == 0)
        return 0;
    const char **keys = malloc(cap * sizeof *keys);
    if (!keys)
        return SIZE_MAX;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_rooms; i++)
        if (!seen(keys, n, cfg->rooms[i].key))
            keys[n++] = cfg->rooms[i].key;
    for (size_t i = 0; i < cfg->n_agents; i++)
        add_rooms(keys, &n, &cfg->agents[i].rooms);
    for (size_t i = 0; i < cfg->n_teams; i++)
        add_rooms(keys, &n, &cfg->teams[i].rooms);
    free(keys);
    return n;
}

/* A warning for each name of the list that MindRoom knows but this build has no tool for (the
 * loader already refused names nobody knows); the keys of mcp_servers are servers, not tools. */
static size_t warn_unbuilt(const char *path, const mr_config *cfg, const mr_strlist *tools, const char *what,
                           const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < tools->len; i++) {
        if (mr_tools_find(tools->v[i]) || mr_config_mcp_server(cfg, tools->v[i]))
            continue;
        fprintf(stderr, "%s: warning: %s%s%s.tools: this build does not implement the tool %s yet: the agent runs "
                "without it\n", path, what, name ? "." : "", name ? name : "", tools->v[i]);
        n++;
    }
    return n;
}

static size_t warn_unbuilt_tools(const char *path, const mr_config *cfg)
{
    size_t n = warn_unbuilt(path, cfg, &cfg->defaults.tools, "defaults", NULL);
    for (size_t i = 0; i < cfg->n_agents; i++)
        n += warn_unbuilt(path, cfg, &cfg->agents[i].tools, "agents", cfg->agents[i].name);
    return n;
}

static int summarize(const char *path, const mr_config *cfg, const mr_config_diags *diags)
{
    size_t warnings = diags->len - diags->n_errors;
    if (!cfg) {
        printf("%s: %zu %s", path, diags->n_errors, plural(diags->n_errors, "error", "errors"));
        if (warnings)
            printf(", %zu %s", warnings, plural(warnings, "warning", "warnings"));
        putchar('\n');
        return MR_CLI_EXIT_FAILED;
    }
    warnings += warn_unbuilt_tools(path, cfg);
    size_t rooms = count_rooms(cfg);
    if (rooms == SIZE_MAX)
        return mr_cli_fail(CMD, "out of memory counting the rooms of %s", path);
    printf("%s: valid (%zu %s, %zu %s, %zu %s)", path, cfg->n_agents,
           plural(cfg->n_agents, "agent", "agents"), cfg->n_teams, plural(cfg->n_teams, "team", "teams"),
           rooms, plural(rooms, "room", "rooms"));
    if (warnings)
        printf(", %zu %s", warnings, plural(warnings, "warning", "warnings"));
    putchar('\n');
    return MR_CLI_EXIT_OK;
}

int mr_cli_config_validate(int argc, char **argv)
{
    int c;
    while ((c = mr_cli_getopt(argc, argv, "h", long_options, CMD)) != -1) {
        if (c == 'h')
            return print_help();
        return MR_CLI_EXIT_USAGE;
    }
    if (argc - optind > 1)
        return mr_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind + 1]);

    mr_err err = {0};
    char path[PATH_MAX];
    if (mr_cli_config_path(optind < argc ? argv[optind] : NULL, true, path, sizeof path, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);

    mr_config *cfg = NULL;
    mr_config_diags diags = {0};
    mr_code rc = mr_config_load(path, &cfg, &diags, &err);
    mr_cli_print_diags(&diags);
    int status;
    if (rc != MR_OK && diags.n_errors == 0)
        status = mr_cli_fail(CMD, "%s", err.msg); /* unreadable: there is nothing to summarize */
    else
        status = summarize(path, cfg, &diags);
    mr_config_release(cfg);
    mr_config_diags_free(&diags);
    return status;
}
