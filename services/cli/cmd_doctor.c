/* cmd_doctor.c -- `mindroom doctor`: checks what `mindroom run` needs (a valid config, a
 * writable storage path, the homeserver and a way to register on it, each model's endpoint
 * and key) and prints one line per check with what to fix. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "doctor.h"
#include "mindroom/runtime.h"
#include "mindroom/fsutil.h"

#define CMD "doctor"
/* A model endpoint gets one try this long: the doctor reports, it does not retry. */
#define MODEL_TIMEOUT_MS 10000L
#define MODEL_CONNECT_MS 5000L

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int print_help(void)
{
    return mr_cli_help(
        "Usage: mindroom doctor [--config PATH]\n"
        "\n"
        "Checks what `mindroom run` needs and prints one line per check, ok, warn or FAIL, with\n"
        "what to fix:\n"
        "  config        config.yaml loads and is valid (problems are listed on stderr)\n"
        "  storage       MINDROOM_STORAGE_PATH (default mindroom_data next to config.yaml) is a\n"
        "                directory this user can write, or can be created\n"
        "  homeserver    MATRIX_HOMESERVER answers GET /_matrix/client/versions\n"
        "  registration  what the homeserver offers: shared-secret registration\n"
        "                (POST /_synapse/admin/v1/register), the flows of POST /register, and\n"
        "                application-service login; then whether the settings complete one:\n"
        "                MATRIX_REGISTRATION_SHARED_SECRET, MATRIX_REGISTRATION_TOKEN (also asked\n"
        "                whether it is still valid), MATRIX_MANAGED_ACCOUNT_AUTH=appservice, the\n"
        "                provisioning service after `mindroom connect`, or open registration\n"
        "  model         for each model in config.yaml: its API key is set, and GET <base>/models\n"
        "                answers with that key (the base is `host:`, else OPENAI_BASE_URL and the\n"
        "                like, else the provider's) and lists the model's id\n"
        "Settings come from the environment, then the .env next to config.yaml. Secrets are never\n"
        "printed. Nothing is written; probing POST /register starts no account.\n"
        "\n"
        "Options:\n"
        "  -c, --config PATH   config.yaml, or its directory (default: $MINDROOM_CONFIG_PATH,\n"
        "                      else ./config.yaml, else ~/.mindroom/config.yaml)\n"
        "  -h, --help          Show this help and exit\n"
        "\n"
        "Exit codes here: 0 every check ok, or only warnings; 1 a check FAILed; 2 bad usage, or\n"
        "a config that is missing or invalid.\n");
}

void doctor_line(doctor *d, doctor_level level, const char *fmt, ...)
{
    static const char *const labels[] = {"ok", "warn", "FAIL"};
    printf("%-4s  ", labels[level]);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    d->counts[level]++;
}

/* Loads the config; NULL when it is invalid (the diagnostics are on stderr). */
static mr_config *check_config(doctor *d, const char *path)
{
    mr_config *cfg = NULL;
    mr_config_diags diags = {0};
    mr_err err = {0};
    mr_code rc = mr_config_load(path, &cfg, &diags, &err);
    mr_cli_print_diags(&diags);
    size_t warnings = diags.len - diags.n_errors;
    if (rc != MR_OK && diags.n_errors == 0)
        doctor_line(d, DOCTOR_FAIL, "config: %s", err.msg);
    else if (!cfg)
        doctor_line(d, DOCTOR_FAIL, "config: %s has %zu error%s (listed above): fix them, then run "
                    "`mindroom config validate %s`", path, diags.n_errors, diags.n_errors == 1 ? "" : "s",
                    path);
    else if (warnings)
        doctor_line(d, DOCTOR_WARN, "config: %s is valid with %zu warning%s (listed above)", path,
                    warnings, warnings == 1 ? "" : "s");
    else
        doctor_line(d, DOCTOR_OK, "config: %s is valid (%zu agent%s, %zu model%s)", path, cfg->n_agents,
                    cfg->n_agents == 1 ? "" : "s", cfg->n_models, cfg->n_models == 1 ? "" : "s");
    mr_config_diags_free(&diags);
    return cfg;
}

/* The directory `run` would use, as it resolves it; the nearest existing one must be a
 * directory this user may write, since `run` creates the rest. */
static void check_storage(doctor *d, const char *config_path)
{
    char dflt[PATH_MAX], path[PATH_MAX];
    mr_fs_dirname(config_path, dflt, sizeof dflt);
    size_t n = strlen(dflt);
    snprintf(dflt + n, sizeof dflt - n, "/mindroom_data");
    const char *set = mr_cli_setting(d->env, "MINDROOM_STORAGE_PATH");
    const char *name = set ? "MINDROOM_STORAGE_PATH" : "storage path";
    char cwd[PATH_MAX] = "";
    const char *s = set ? set : dflt;
    if (s[0] != '/' && !getcwd(cwd, sizeof cwd)) {
        doctor_line(d, DOCTOR_FAIL, "storage: %s %s: cannot resolve it: %s", name, s, strerror(errno));
        return;
    }
    if (snprintf(path, sizeof path, "%s%s%s", cwd, cwd[0] ? "/" : "", s) >= (int)sizeof path) {
        doctor_line(d, DOCTOR_FAIL, "storage: %s is longer than %d bytes", name, PATH_MAX - 1);
        return;
    }
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s", path);
    struct stat st;
    while (stat(probe, &st) != 0 && errno == ENOENT && strcmp(probe, "/") != 0) {
        char up[PATH_MAX];
        mr_fs_dirname(probe, up, sizeof up);
        snprintf(probe, sizeof probe, "%s", up);
    }
    bool exists = strcmp(probe, path) == 0;
    if (stat(probe, &st) != 0)
        doctor_line(d, DOCTOR_FAIL, "storage: %s %s: %s", name, probe, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        doctor_line(d, DOCTOR_FAIL, "storage: %s %s: %s is not a directory: set MINDROOM_STORAGE_PATH "
                    "to a directory", name, path, probe);
    else if (access(probe, W_OK | X_OK) != 0)
        doctor_line(d, DOCTOR_FAIL, "storage: %s %s: %s is not writable by this user: fix its "
                    "permissions or set MINDROOM_STORAGE_PATH", name, path, probe);
    else if (exists)
        doctor_line(d, DOCTOR_OK, "storage: %s is writable", path);
    else
        doctor_line(d, DOCTOR_OK, "storage: %s will be created under %s (writable)", path, probe);
}

/* Where the model's base URL comes from, for the line that names it. */
static const char *base_source(const mr_model_cfg *m, const mr_llm_provider *p)
{
    if (m->host && *m->host)
        return "host:";
    const char *v = p->base_url_env ? getenv(p->base_url_env) : NULL;
    return v && *v ? p->base_url_env : "the provider's default";
}

static void check_model_endpoint(doctor *d, const mr_model_cfg *m, const mr_llm_provider *p,
                                 const char *key_var)
{
    mr_llm_opts lo = {.timeout_ms = MODEL_TIMEOUT_MS, .connect_timeout_ms = MODEL_CONNECT_MS,
                      .max_attempts = 1};
    mr_llm_client *c = NULL;
    json_t *ids = NULL;
    mr_err err = {0};
    mr_code rc = mr_llm_client_new(m, &lo, &c, &err);
    if (rc == MR_OK)
        rc = mr_llm_models(c, &ids, &err);
    const char *fix = rc == MR_EAUTH || rc == MR_EPERM ? "check the key"
                      : rc == MR_EINVAL             ? "fix the URL"
                                                    : "check that the server runs and its URL";
    if (rc != MR_OK) {
        doctor_line(d, DOCTOR_FAIL, "%s (base URL from %s%s%s): %s", err.msg, base_source(m, p),
                    key_var ? ", key from " : "", key_var ? key_var : "", fix);
    } else {
        bool listed = false;
        size_t i;
        json_t *id;
        json_array_foreach(ids, i, id)
            listed |= strcmp(json_string_value(id), m->id) == 0;
        doctor_line(d, listed ? DOCTOR_OK : DOCTOR_WARN, "model %s: %s/models (from %s) answers%s%s%s; "
                    "%s %s", m->name, mr_llm_client_base_url(c), base_source(m, p),
                    key_var ? " with " : "", key_var ? key_var : "", key_var ? " as the key" : "", m->id,
                    listed ? "is listed" : "is not listed: check the model's id");
    }
    json_decref(ids);
    mr_llm_client_free(c);
}

static void check_models(doctor *d, const mr_config *cfg)
{
    for (size_t i = 0; i < cfg->n_models; i++) {
        const mr_model_cfg *m = &cfg->models[i];
        const mr_llm_provider *p;
        const char *var;
        switch (mr_runtime_model_env(m, d->env, &p, &var)) {
        case MR_RUNTIME_MODEL_READY:
            check_model_endpoint(d, m, p, var);
            break;
        case MR_RUNTIME_MODEL_UNSUPPORTED:
            doctor_line(d, DOCTOR_WARN, "model %s: provider %s is not supported yet; its agents answer "
                        "with an apology", m->name, m->provider);
            break;
        case MR_RUNTIME_MODEL_NO_KEY:
            doctor_line(d, DOCTOR_FAIL, "model %s (provider %s): %s is not set (environment or %s): put "
                        "the key there", m->name, p->name, var, d->env_path);
            break;
        case MR_RUNTIME_MODEL_NOT_PASSED:
            doctor_line(d, DOCTOR_FAIL, "model %s: could not pass its settings from %s to the model "
                        "client: %s", m->name, d->env_path, strerror(errno));
            break;
        }
    }
}

int mr_cli_doctor(int argc, char **argv)
{
    const char *arg = NULL;
    int c;
    while ((c = mr_cli_getopt(argc, argv, "c:h", long_options, CMD)) != -1) {
        if (c == 'h')
            return print_help();
        if (c != 'c')
            return MR_CLI_EXIT_USAGE;
        arg = optarg;
    }
    if (optind < argc)
        return mr_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);

    mr_err err = {0};
    char config_path[PATH_MAX], env_path[PATH_MAX];
    struct stat st;
    if (mr_cli_config_files(arg, true, config_path, env_path, &err) != MR_OK) {
        fprintf(stderr, "mindroom " CMD ": %s\n", err.msg);
        return MR_CLI_EXIT_USAGE;
    }
    /* A path given on the command line is not looked up, so its absence shows only here. */
    if (stat(config_path, &st) != 0) {
        fprintf(stderr, "mindroom " CMD ": --config: %s: %s\n", config_path, strerror(errno));
        return MR_CLI_EXIT_USAGE;
    }
    mr_dotenv env = {0};
    if (mr_dotenv_read(env_path, true, &env, &err) != MR_OK) {
        fprintf(stderr, "mindroom " CMD ": %s\n", err.msg);
        return MR_CLI_EXIT_USAGE;
    }
    doctor d = {.env = &env, .env_path = env_path};
    mr_config *cfg = check_config(&d, config_path);
    check_storage(&d, config_path);
    doctor_check_matrix(&d);
    if (cfg)
        check_models(&d, cfg);
    printf("\n%zu ok, %zu warning%s, %zu FAIL\n", d.counts[DOCTOR_OK], d.counts[DOCTOR_WARN],
           d.counts[DOCTOR_WARN] == 1 ? "" : "s", d.counts[DOCTOR_FAIL]);
    mr_config_release(cfg);
    mr_dotenv_free(&env);
    if (!cfg)
        return MR_CLI_EXIT_USAGE;
    return d.counts[DOCTOR_FAIL] ? MR_CLI_EXIT_FAILED : MR_CLI_EXIT_OK;
}
