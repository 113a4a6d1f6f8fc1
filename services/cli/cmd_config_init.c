/* cmd_config_init.c -- `mindroom config init`: writes a starter config.yaml and the .env next
 * to it, without ever replacing a user's .env. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "cli.h"
#include "config_templates.h"
#include "mindroom/config.h"
#include "mindroom/dotenv.h"
#include "mindroom/fsutil.h"
#include "mindroom/ids.h"

#define CMD "config init"
#define MATRIX_DEFAULTS_MAX 8
/* 32 random bytes in unpadded base64url: 43 characters. */
#define API_KEY_BYTES 32
#define API_KEY_CHARS 43

typedef struct init_opts {
    const char *path;
    bool force;
    bool print;
    mr_cli_matrix_server server;
    const mr_cli_provider *provider;
} init_opts;

enum { OPT_MATRIX_SERVER = 256, OPT_PROVIDER, OPT_PROFILE, OPT_PRINT };

static const struct option long_options[] = {
    {"path", required_argument, NULL, 'p'},
    {"force", no_argument, NULL, 'f'},
    {"matrix-server", required_argument, NULL, OPT_MATRIX_SERVER},
    {"provider", required_argument, NULL, OPT_PROVIDER},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"print", no_argument, NULL, OPT_PRINT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int print_help(void)
{
    fputs("Usage: mindroom config init [options]\n"
          "\n"
          "Writes a starter config.yaml (one agent, Mind, in a personal room; a router; access for\n"
          "you only) and the .env next to it, set up for the hosted Matrix server at mindroom.chat.\n"
          "An existing .env is never replaced: only the missing Matrix settings are added to it.\n"
          "\n"
          "Options:\n"
          "  -p, --path PATH          The config file to write, or a directory to write\n"
          "                           config.yaml into (default: $MINDROOM_CONFIG_PATH, else\n"
          "                           ./config.yaml if it exists, else ~/.mindroom/config.yaml)\n"
          "  -f, --force              Replace an existing config.yaml\n"
          "      --matrix-server S    mindroom.chat (default), or self-hosted for a homeserver on\n"
          "                           this machine (http://localhost:8008, adds mindroom_user)\n"
          "      --provider NAME      Model provider of the default model (default: openai):\n"
          "                           ",
          stdout);
    mr_cli_providers_list(stdout, "                           ");
    return mr_cli_help("\n"
                       "      --profile public     The hosted template (the default, and the only profile)\n"
                       "      --print              Print config.yaml to stdout and write nothing\n"
                       "  -h, --help               Show this help and exit\n");
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, init_opts *o)
{
    *o = (init_opts){.server = MR_CLI_MATRIX_HOSTED, .provider = mr_cli_provider_default()};
    int c;
    while ((c = mr_cli_getopt(argc, argv, "p:fh", long_options, CMD)) != -1) {
        switch (c) {
        case 'p':
            if (!*optarg)
                return mr_cli_usage_error(CMD, "option '--path' needs a non-empty value");
            o->path = optarg;
            break;
        case 'f': o->force = true; break;
        case OPT_PRINT: o->print = true; break;
        case 'h': return print_help();
        case OPT_MATRIX_SERVER:
            if (strcmp(optarg, "mindroom.chat") == 0)
                o->server = MR_CLI_MATRIX_HOSTED;
            else if (strcmp(optarg, "self-hosted") == 0)
                o->server = MR_CLI_MATRIX_SELF_HOSTED;
            else
                return mr_cli_usage_error(CMD, "unknown --matrix-server '%s'; accepted: mindroom.chat, self-hosted",
                                          optarg);
            break;
        case OPT_PROVIDER:
            o->provider = mr_cli_provider_find(optarg);
            if (!o->provider) {
                fprintf(stderr, "mindroom " CMD ": unknown --provider '%s'; accepted: ", optarg);
                mr_cli_providers_list(stderr, NULL);
                fputs("; try 'mindroom " CMD " --help'\n", stderr);
                return MR_CLI_EXIT_USAGE;
            }
            break;
        case OPT_PROFILE:
            /* Only the hosted template is left; the flag stays for the documented command. */
            if (strcmp(optarg, "public") != 0)
                return mr_cli_usage_error(CMD, "unknown --profile '%s'; accepted: public", optarg);
            break;
        default:
            return MR_CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return mr_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    return -1;
}

typedef enum env_state { ENV_MISSING, ENV_FILE, ENV_SYMLINK } env_state;

static mr_code probe_env(const char *path, env_state *state, mr_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT)
            return mr_err_errno(err, MR_EIO, errno, "checking %s", path);
        *state = ENV_MISSING;
    } else {
        *state = S_ISLNK(st.st_mode) ? ENV_SYMLINK : ENV_FILE;
    }
    return MR_OK;
}

/* MINDROOM_OWNER_USER_ID from an earlier `connect`, when it is a valid user ID. */
static const char *owner_from_env(const mr_dotenv *env)
{
    const char *owner = mr_dotenv_get(env, "MINDROOM_OWNER_USER_ID");
    if (!owner || !*owner)
        return NULL;
    mr_err err = {0};
    if (mr_id_parse_user(owner, NULL, &err) != MR_OK) {
        fprintf(stderr, "mindroom " CMD ": warning: ignoring MINDROOM_OWNER_USER_ID in %s: %s\n",
                env->path ? env->path : ".env", err.msg);
        return NULL;
    }
    return owner;
}

static mr_code generate_api_key(char out[API_KEY_CHARS + 1], mr_err *err)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[API_KEY_BYTES + 1] = {0}; /* one spare zero byte rounds out the last group */
    size_t got = 0;
    while (got < API_KEY_BYTES) {
        ssize_t n = getrandom(raw + got, API_KEY_BYTES - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mr_err_errno(err, MR_EIO, errno, "getrandom for MINDROOM_API_KEY");
        }
        got += (size_t)n;
    }
    size_t o = 0;
    for (size_t i = 0; i < API_KEY_BYTES; i += 3) {
        unsigned long v = (unsigned long)raw[i] << 16 | (unsigned long)raw[i + 1] << 8;
        if (i + 2 < API_KEY_BYTES)
            v |= raw[i + 2];
        size_t chars = API_KEY_BYTES - i >= 3 ? 4 : API_KEY_BYTES - i + 1;
        for (size_t k = 0; k < chars; k++)
            out[o++] = alphabet[(v >> (18 - 6 * k)) & 0x3f];
    }
    out[o] = '\0';
    explicit_bzero(raw, sizeof raw);
    return MR_OK;
}

static mr_code write_new_env(const init_opts *o, const char *dir, const char *env_path, mr_err *err)
{
    char *abs_dir = realpath(dir, NULL);
    if (!abs_dir)
        return mr_err_errno(err, MR_EIO, errno, "resolving %s", dir);
    char storage[PATH_MAX];
    int len = snprintf(storage, sizeof storage, "%s/mindroom_data", abs_dir);
    free(abs_dir);
    if (len < 0 || (size_t)len >= sizeof storage)
        return mr_err_set(err, MR_EINVAL, "storage path under %s is too long", dir);
    char api_key[API_KEY_CHARS + 1];
    mr_code rc = generate_api_key(api_key, err);
    if (rc != MR_OK)
        return rc;
    char *text = mr_cli_template_env(o->provider, o->server, storage, api_key);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "building %s", env_path);
    rc = mr_fs_write_atomic(env_path, text, strlen(text), 0600, false, err);
    /* The text holds the API key: wipe it before it goes back to the allocator. */
    explicit_bzero(text, strlen(text));
    free(text);
    explicit_bzero(api_key, sizeof api_key);
    return rc;
}

static void print_next_steps(const init_opts *o, const char *config_path, const char *env_path,
                             const char *owner)
{
    const mr_cli_provider *p = o->provider;
    int step = 1;
    puts("\nNext steps:");
    if (p->key_env)
        printf("  %d. Put your %s API key in %s: %s=...\n", step++, p->label, env_path, p->key_env);
    else
        printf("  %d. %s (settings in %s).\n", step++, p->setup, env_path);
    if (o->server == MR_CLI_MATRIX_SELF_HOSTED)
        printf("  %d. Check that MATRIX_HOMESERVER and MATRIX_SERVER_NAME in %s name your\n"
               "     homeserver; set MATRIX_REGISTRATION_TOKEN if it gates registration.\n",
               step++, env_path);
    else if (!owner)
        printf("  %d. Pair this install with your Matrix account: sign in at https://chat.mindroom.chat,\n"
               "     open Settings -> Local MindRoom -> Generate Pair Code, then run\n"
               "       mindroom connect --pair-code ABCD-EFGH\n",
               step++);
    printf("  %d. After editing the config, check it: mindroom config validate %s\n", step, config_path);
}

/* Creates .env, or adds the missing Matrix settings to the one the user has. */
static mr_code write_env(const init_opts *o, env_state state, const char *dir, const char *env_path,
                         mr_err *err)
{
    if (state == ENV_MISSING) {
        mr_code rc = write_new_env(o, dir, env_path, err);
        if (rc == MR_OK)
            printf("Wrote %s (mode 0600; it holds a generated MINDROOM_API_KEY)\n", env_path);
        return rc;
    }
    mr_dotenv_kv kvs[MATRIX_DEFAULTS_MAX];
    const char *heading;
    size_t n = mr_cli_template_matrix_defaults(o->server, kvs, MATRIX_DEFAULTS_MAX, &heading);
    size_t added = 0;
    mr_code rc = mr_dotenv_append_missing(env_path, kvs, n, heading, &added, err);
    if (rc != MR_OK)
        return rc;
    if (added)
        printf("Kept %s and added %zu missing Matrix setting%s to it\n", env_path, added,
               added == 1 ? "" : "s");
    else
        printf("Kept %s (it already has the Matrix settings)\n", env_path);
    return MR_OK;
}

static int init_files(const init_opts *o, const char *config_path, const char *dir,
                      const char *env_path, env_state state, const char *yaml, const char *owner)
{
    mr_err err = {0};
    if (mr_fs_mkdirs(dir, 0700, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    mr_code rc = mr_fs_write_atomic(config_path, yaml, strlen(yaml), 0644, o->force, &err);
    if (rc == MR_EEXISTS)
        return mr_cli_fail(CMD, "%s already exists; use --force to replace it", config_path);
    if (rc != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    printf("Wrote %s (model: %s %s)\n", config_path, o->provider->label, o->provider->model_id);
    if (write_env(o, state, dir, env_path, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    print_next_steps(o, config_path, env_path, owner);
    return MR_CLI_EXIT_OK;
}

int mr_cli_config_init(int argc, char **argv)
{
    init_opts o;
    int status = parse_args(argc, argv, &o);
    if (status >= 0)
        return status;

    mr_err err = {0};
    char config_path[PATH_MAX], dir[PATH_MAX], env_path[PATH_MAX];
    if (mr_cli_config_path(o.path, false, config_path, sizeof config_path, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    mr_fs_dirname(config_path, dir, sizeof dir);
    if (snprintf(env_path, sizeof env_path, "%s/.env", dir) >= (int)sizeof env_path)
        return mr_cli_fail(CMD, "path of .env next to %s is too long", config_path);

    env_state state;
    if (probe_env(env_path, &state, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    /* Check everything before writing anything, so a refusal leaves both files as they were. */
    if (!o.print && state == ENV_SYMLINK)
        return mr_cli_fail(CMD, "%s is a symbolic link; refusing to write through it (make it a regular file)",
                           env_path);
    struct stat st;
    if (!o.print && !o.force && lstat(config_path, &st) == 0)
        return mr_cli_fail(CMD, "%s already exists; use --force to replace it (.env is kept either way)",
                           config_path);

    mr_dotenv env = {0};
    if (state == ENV_FILE && mr_dotenv_read(env_path, true, &env, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    const char *owner = owner_from_env(&env);
    char *yaml = mr_cli_template_config(o.provider, o.server, owner);
    if (!yaml) {
        mr_dotenv_free(&env);
        return mr_cli_fail(CMD, "out of memory building %s", config_path);
    }
    if (o.print) {
        fputs(yaml, stdout);
        status = ferror(stdout) ? mr_cli_fail(CMD, "writing to stdout failed") : MR_CLI_EXIT_OK;
    } else {
        status = init_files(&o, config_path, dir, env_path, state, yaml, owner);
    }
    free(yaml);
    mr_dotenv_free(&env);
    return status;
}
