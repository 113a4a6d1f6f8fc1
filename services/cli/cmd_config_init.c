/* cmd_config_init.c -- `mindroom config init`: writes a starter config.yaml and the .env next
 * to it, without ever replacing a user's .env; for a self-hosted homeserver, files that run
 * once the model key and one registration secret are filled in. */
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
#include "mindroom/llm.h"

#define CMD "config init"
#define MATRIX_DEFAULTS_MAX 8
/* 32 random bytes in unpadded base64url: 43 characters. */
#define API_KEY_BYTES 32
#define API_KEY_CHARS 43

typedef struct init_opts {
    const char *path;
    bool force;
    bool print;
    mr_cli_matrix_target target;
    bool homeserver_given;      /* --homeserver or --server-name: .env is made to match */
    const char *owner;          /* --owner */
    const mr_cli_provider *provider;
    char host[MR_ID_MAX + 1];   /* of --homeserver: the default server name */
} init_opts;

enum { OPT_MATRIX_SERVER = 256, OPT_PROVIDER, OPT_PROFILE, OPT_PRINT, OPT_HOMESERVER, OPT_SERVER_NAME,
       OPT_OWNER, OPT_NO_INPUT };

static const struct option long_options[] = {
    {"path", required_argument, NULL, 'p'},
    {"force", no_argument, NULL, 'f'},
    {"matrix-server", required_argument, NULL, OPT_MATRIX_SERVER},
    {"provider", required_argument, NULL, OPT_PROVIDER},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"print", no_argument, NULL, OPT_PRINT},
    {"homeserver", required_argument, NULL, OPT_HOMESERVER},
    {"server-name", required_argument, NULL, OPT_SERVER_NAME},
    {"owner", required_argument, NULL, OPT_OWNER},
    {"no-input", no_argument, NULL, OPT_NO_INPUT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int print_help(void)
{
    fputs("Usage: mindroom config init [options]\n"
          "\n"
          "Writes a starter config.yaml (one agent, Mind, in a personal room; a router; access for\n"
          "you only) and the .env next to it, set up for the hosted Matrix server at mindroom.chat,\n"
          "or for your own homeserver with --matrix-server self-hosted. An existing .env is never\n"
          "replaced: only the missing Matrix settings are added to it (self-hosted: see below).\n"
          "\n"
          "Options:\n"
          "  -p, --path PATH          The config file to write, or a directory to write\n"
          "                           config.yaml into (default: $MINDROOM_CONFIG_PATH, else\n"
          "                           ./config.yaml if it exists, else ~/.mindroom/config.yaml)\n"
          "  -f, --force              Replace an existing config.yaml\n"
          "      --matrix-server S    mindroom.chat (default), or self-hosted for your own\n"
          "                           homeserver (adds mindroom_user; no provisioning API)\n"
          "      --homeserver URL     self-hosted: the homeserver's client API URL, http:// or\n"
          "                           https:// (default: " MR_CLI_SELF_HOSTED_URL ")\n"
          "      --server-name NAME   self-hosted: the part after ':' in Matrix IDs (default: the\n"
          "                           host of --homeserver)\n"
          "      --owner USER_ID      Your Matrix ID (@alice:example.org): written into\n"
          "                           config.yaml as the owner, who alone may talk to the agents\n"
          "                           (default: MINDROOM_OWNER_USER_ID in .env, set by `connect`)\n"
          "      --provider NAME      Model provider of the default model (default: openai):\n"
          "                           ",
          stdout);
    mr_cli_providers_list(stdout, "                           ");
    return mr_cli_help("\n"
                       "      --profile public     The hosted template (the default, and the only profile)\n"
                       "      --print              Print config.yaml to stdout and write nothing\n"
                       "      --no-input           Accepted for scripts; this command never prompts\n"
                       "  -h, --help               Show this help and exit\n"
                       "\n"
                       "Self-hosted, the .env has MATRIX_HOMESERVER and MATRIX_SERVER_NAME for your server,\n"
                       "no MINDROOM_PROVISIONING_URL (that is mindroom.chat's), and two commented lines,\n"
                       "MATRIX_REGISTRATION_SHARED_SECRET (Synapse's registration_shared_secret) and\n"
                       "MATRIX_REGISTRATION_TOKEN (a registration token): set the one your homeserver\n"
                       "allows, and the model key; OPENAI_BASE_URL, commented too, points models without\n"
                       "`host:` at another OpenAI-compatible server. With an existing .env, a self-hosted\n"
                       "init clears MINDROOM_PROVISIONING_URL and, when --homeserver or --server-name is\n"
                       "given, sets MATRIX_HOMESERVER and MATRIX_SERVER_NAME to match; other lines stay.\n"
                       "Then check the set-up with `mindroom doctor`.\n"
                       "\n"
                       "A bad --homeserver, --server-name or --owner is a usage error: nothing is written.\n");
}

/* A homeserver URL as .env holds it unquoted, with a host that can be a server name. */
static int check_homeserver(init_opts *o, const char *url)
{
    mr_err err = {0};
    if (mr_id_url_host(url, o->host, sizeof o->host, &err) != MR_OK)
        return mr_cli_usage_error(CMD, "--homeserver: %s", err.msg);
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || strchr("\"'#\\", *c))
            return mr_cli_usage_error(CMD, "--homeserver: \"%s\" has a character a URL cannot hold "
                                      "unescaped (space, quote, '#' or '\\')", url);
    if (mr_id_parse_server_name(o->host, NULL, &err) != MR_OK)
        return mr_cli_usage_error(CMD, "--homeserver: its host cannot be a Matrix server name: %s", err.msg);
    o->target.homeserver = url;
    return -1;
}

/* The checks that need every option: which flags go with which server, the derived name. */
static int check_target(init_opts *o)
{
    mr_cli_matrix_target *t = &o->target;
    mr_err err = {0};
    if (t->server == MR_CLI_MATRIX_HOSTED && o->homeserver_given)
        return mr_cli_usage_error(CMD, "--%s is for --matrix-server self-hosted; the hosted server "
                                  "is mindroom.chat", t->homeserver ? "homeserver" : "server-name");
    if (t->server == MR_CLI_MATRIX_HOSTED)
        return -1;
    if (!t->homeserver) {
        t->homeserver = MR_CLI_SELF_HOSTED_URL;
        snprintf(o->host, sizeof o->host, "%s", MR_CLI_SELF_HOSTED_NAME);
    }
    if (!t->server_name)
        t->server_name = o->host;
    else if (mr_id_parse_server_name(t->server_name, NULL, &err) != MR_OK)
        return mr_cli_usage_error(CMD, "--server-name: %s", err.msg);
    return -1;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, init_opts *o)
{
    *o = (init_opts){.target.server = MR_CLI_MATRIX_HOSTED, .provider = mr_cli_provider_default()};
    mr_err err = {0};
    int c, status;
    while ((c = mr_cli_getopt(argc, argv, "p:fh", long_options, CMD)) != -1) {
        switch (c) {
        case 'p':
            if (!*optarg)
                return mr_cli_usage_error(CMD, "option '--path' needs a non-empty value");
            o->path = optarg;
            break;
        case 'f': o->force = true; break;
        case OPT_PRINT: o->print = true; break;
        case OPT_NO_INPUT: break;
        case 'h': return print_help();
        case OPT_HOMESERVER:
            o->homeserver_given = true;
            if ((status = check_homeserver(o, optarg)) >= 0)
                return status;
            break;
        case OPT_SERVER_NAME:
            o->homeserver_given = true;
            o->target.server_name = optarg;
            break;
        case OPT_OWNER:
            if (mr_id_parse_user(optarg, NULL, &err) != MR_OK)
                return mr_cli_usage_error(CMD, "--owner: %s (a Matrix user ID looks like "
                                          "@alice:example.org)", err.msg);
            o->owner = optarg;
            break;
        case OPT_MATRIX_SERVER:
            if (strcmp(optarg, "mindroom.chat") == 0)
                o->target.server = MR_CLI_MATRIX_HOSTED;
            else if (strcmp(optarg, "self-hosted") == 0)
                o->target.server = MR_CLI_MATRIX_SELF_HOSTED;
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
    return check_target(o);
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
    char *text = mr_cli_template_env(o->provider, &o->target, storage, api_key);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "building %s", env_path);
    rc = mr_fs_write_atomic(env_path, text, strlen(text), 0600, false, err);
    /* The text holds the API key: wipe it before it goes back to the allocator. */
    explicit_bzero(text, strlen(text));
    free(text);
    explicit_bzero(api_key, sizeof api_key);
    return rc;
}

static void print_self_hosted_steps(const init_opts *o, const char *config_path, const char *env_path,
                                    const char *owner, int *step)
{
    const mr_cli_matrix_target *t = &o->target;
    const mr_llm_provider *lp = mr_llm_provider_find(o->provider->provider);
    if (lp && lp->base_url_env)
        printf("     For another server speaking the same API, set %s there too.\n", lp->base_url_env);
    printf("  %d. Let MindRoom register its agents on %s: in %s, uncomment and set\n"
           "     MATRIX_REGISTRATION_SHARED_SECRET (registration_shared_secret of Synapse's\n"
           "     homeserver.yaml) or MATRIX_REGISTRATION_TOKEN (a registration token), the one\n"
           "     your homeserver allows.\n",
           (*step)++, t->homeserver, env_path);
    if (!owner)
        printf("  %d. Name yourself as the owner, who alone may talk to the agents: run this command\n"
               "     again with --owner @you:%s --force, or replace each of the three\n"
               "     %s in %s with your quoted Matrix ID\n"
               "     (e.g. \"@alice:%s\").\n",
               (*step)++, t->server_name, MR_CONFIG_OWNER_PLACEHOLDER, config_path, t->server_name);
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
    if (o->target.server == MR_CLI_MATRIX_SELF_HOSTED)
        print_self_hosted_steps(o, config_path, env_path, owner, &step);
    else if (!owner)
        printf("  %d. Pair this install with your Matrix account: sign in at https://chat.mindroom.chat,\n"
               "     open Settings -> Local MindRoom -> Generate Pair Code, then run\n"
               "       mindroom connect --pair-code ABCD-EFGH\n",
               step++);
    if (o->target.server == MR_CLI_MATRIX_SELF_HOSTED)
        printf("  %d. Check the config, homeserver, registration and model, then start the agents:\n"
               "       mindroom doctor --config %s\n"
               "       mindroom run --config %s\n",
               step, config_path, config_path);
    else
        printf("  %d. After editing the config, check it: mindroom config validate %s\n", step, config_path);
}

/* Self-hosted with a .env from before (often the hosted one): the provisioning API is
 * mindroom.chat's, and with it set `run` would register through it; a homeserver named on the
 * command line replaces the one in the file. */
static mr_code retarget_env(const init_opts *o, const mr_dotenv *env, const char *env_path,
                            mr_err *err)
{
    mr_dotenv_kv kvs[3];
    size_t n = 0;
    const char *prov = mr_dotenv_get(env, "MINDROOM_PROVISIONING_URL");
    if (prov && *prov)
        kvs[n++] = (mr_dotenv_kv){"MINDROOM_PROVISIONING_URL", ""};
    const mr_dotenv_kv mine[] = {{"MATRIX_HOMESERVER", o->target.homeserver},
                                 {"MATRIX_SERVER_NAME", o->target.server_name}};
    for (size_t i = 0; o->homeserver_given && i < 2; i++) {
        const char *have = mr_dotenv_get(env, mine[i].key);
        if (have && strcmp(have, mine[i].value) != 0)
            kvs[n++] = mine[i];
    }
    if (n == 0)
        return MR_OK;
    mr_code rc = mr_dotenv_upsert(env_path, kvs, n, err);
    for (size_t i = 0; rc == MR_OK && i < n; i++) {
        if (*kvs[i].value)
            printf("Set %s=%s in %s\n", kvs[i].key, kvs[i].value, env_path);
        else
            printf("Cleared %s in %s (the provisioning API is for mindroom.chat only)\n", kvs[i].key,
                   env_path);
    }
    return rc;
}

/* Creates .env, or adds the missing Matrix settings to the one the user has. */
static mr_code write_env(const init_opts *o, env_state state, const mr_dotenv *env, const char *dir,
                         const char *env_path, mr_err *err)
{
    if (state == ENV_MISSING) {
        mr_code rc = write_new_env(o, dir, env_path, err);
        if (rc == MR_OK)
            printf("Wrote %s (mode 0600; it holds a generated MINDROOM_API_KEY)\n", env_path);
        return rc;
    }
    if (o->target.server == MR_CLI_MATRIX_SELF_HOSTED) {
        mr_code rc = retarget_env(o, env, env_path, err);
        if (rc != MR_OK)
            return rc;
    }
    mr_dotenv_kv kvs[MATRIX_DEFAULTS_MAX];
    const char *heading;
    size_t n = mr_cli_template_matrix_defaults(&o->target, kvs, MATRIX_DEFAULTS_MAX, &heading);
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
                      const char *env_path, env_state state, const mr_dotenv *env, const char *yaml,
                      const char *owner)
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
    if (write_env(o, state, env, dir, env_path, &err) != MR_OK)
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
    if (mr_cli_config_files(o.path, false, config_path, env_path, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    mr_fs_dirname(config_path, dir, sizeof dir);

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
    const char *owner = o.owner ? o.owner : owner_from_env(&env);
    char *yaml = mr_cli_template_config(o.provider, &o.target, owner);
    if (!yaml) {
        mr_dotenv_free(&env);
        return mr_cli_fail(CMD, "out of memory building %s", config_path);
    }
    if (o.print) {
        fputs(yaml, stdout);
        status = ferror(stdout) ? mr_cli_fail(CMD, "writing to stdout failed") : MR_CLI_EXIT_OK;
    } else {
        status = init_files(&o, config_path, dir, env_path, state, &env, yaml, owner);
    }
    free(yaml);
    mr_dotenv_free(&env);
    return status;
}
