/* cmd_connect.c -- `mindroom connect`: trades a pair code for local provisioning credentials and
 * stores them in .env (or prints them), then puts the owner's Matrix ID into config.yaml. */
#include <ctype.h>
#include <limits.h>
#include <openssl/evp.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "mindroom/config.h"
#include "mindroom/dotenv.h"
#include "mindroom/fsutil.h"
#include "mindroom/http.h"
#include "mindroom/ids.h"
#include "mindroom/str.h"

#define CMD "connect"
#define DEFAULT_URL "https://mindroom.chat"
#define COMPLETE_PATH "/v1/local-mindroom/pair/complete"
#define TIMEOUT_MS 10000L
#define DETAIL_MAX 300
#define CLIENT_NAME_MAX 120
/* config.yaml files reached through !include, at most this deep. */
#define INCLUDE_DEPTH 8
#define INCLUDES_MAX 16
#define LEGACY_PLACEHOLDER "__PLACEHOLDER__"
#define NEW_CODE "Generate a new pair code in the chat app (Settings -> Local MindRoom) and run connect again."

typedef struct connect_opts {
    const char *code;
    const char *url;
    const char *client_name;
    const char *path;
    bool persist;
} connect_opts;

/* What the service handed out, validated. */
typedef struct pairing {
    char *client_id;
    char *client_secret;
    char ns[MR_NAMESPACE_MAX + 1];
    char *owner; /* NULL when absent or not a user ID */
} pairing;

enum { OPT_PROVISIONING_URL = 256, OPT_CLIENT_NAME, OPT_PERSIST, OPT_NO_PERSIST, OPT_PAIR_CODE };

static const struct option long_options[] = {
    {"pair-code", required_argument, NULL, OPT_PAIR_CODE},
    {"provisioning-url", required_argument, NULL, OPT_PROVISIONING_URL},
    {"client-name", required_argument, NULL, OPT_CLIENT_NAME},
    {"persist-env", no_argument, NULL, OPT_PERSIST},
    {"no-persist-env", no_argument, NULL, OPT_NO_PERSIST},
    {"path", required_argument, NULL, 'p'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int print_help(void)
{
    return mr_cli_help(
        "Usage: mindroom connect --pair-code ABCD-EFGH [options]\n"
        "\n"
        "Pairs this install with your Matrix account. Generate the code in the chat app (Settings ->\n"
        "Local MindRoom -> Generate Pair Code); it is valid for 10 minutes and works once. The\n"
        "provisioning service answers with local client credentials (not a Matrix login) that let\n"
        "`mindroom run` register its agent accounts, and a namespace that keeps their names apart\n"
        "from other installs. They are written to the .env next to config.yaml (mode 0600):\n"
        "MINDROOM_PROVISIONING_URL, MINDROOM_LOCAL_CLIENT_ID, MINDROOM_LOCAL_CLIENT_SECRET,\n"
        "MINDROOM_NAMESPACE and MINDROOM_OWNER_USER_ID; the owner placeholder in config.yaml (and\n"
        "in files it !includes) becomes your Matrix ID.\n"
        "\n"
        "Options:\n"
        "      --pair-code CODE         The code from the chat app (required)\n"
        "      --provisioning-url URL   The provisioning service (default:\n"
        "                               $MINDROOM_PROVISIONING_URL, else " DEFAULT_URL ")\n"
        "      --client-name NAME       How this install is listed in the chat app (default: the\n"
        "                               host name)\n"
        "      --no-persist-env         Print shell export lines instead of writing any file\n"
        "      --persist-env            Write .env and config.yaml (the default)\n"
        "  -p, --path PATH              The config file whose .env to use, or its directory\n"
        "                               (default: $MINDROOM_CONFIG_PATH, else ./config.yaml if it\n"
        "                               exists, else ~/.mindroom/config.yaml)\n"
        "  -h, --help                   Show this help and exit\n");
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, connect_opts *o)
{
    *o = (connect_opts){.persist = true};
    int c;
    while ((c = mr_cli_getopt(argc, argv, "p:h", long_options, CMD)) != -1) {
        switch (c) {
        case OPT_PAIR_CODE: o->code = optarg; break;
        case OPT_PROVISIONING_URL: o->url = optarg; break;
        case OPT_CLIENT_NAME: o->client_name = optarg; break;
        case OPT_PERSIST: o->persist = true; break;
        case OPT_NO_PERSIST: o->persist = false; break;
        case 'p':
            if (!*optarg)
                return mr_cli_usage_error(CMD, "option '--path' needs a non-empty value");
            o->path = optarg;
            break;
        case 'h': return print_help();
        default: return MR_CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return mr_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->code)
        return mr_cli_usage_error(CMD, "missing --pair-code (generate one in the chat app: Settings -> Local MindRoom)");
    return -1;
}

/* Stripped and upper-cased into out; false unless it matches ^[A-Z0-9]{4}-[A-Z0-9]{4}$. */
static bool normalize_code(const char *in, char out[10])
{
    while (isspace((unsigned char)*in))
        in++;
    size_t n = strlen(in);
    while (n > 0 && isspace((unsigned char)in[n - 1]))
        n--;
    if (n != 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        int c = toupper((unsigned char)in[i]);
        if (i == 4 ? c != '-' : !(isdigit(c) || (c >= 'A' && c <= 'Z')))
            return false;
        out[i] = (char)c;
    }
    out[9] = '\0';
    return true;
}

static bool matches(const char *pattern, const char *s)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The config path made absolute (resolving symlinks as far as the file or its directory exist). */
static void resolved_config_path(const char *config_path, char *out, size_t cap)
{
    char buf[PATH_MAX], dir[PATH_MAX];
    if (realpath(config_path, buf)) {
        snprintf(out, cap, "%s", buf);
        return;
    }
    mr_fs_dirname(config_path, dir, sizeof dir);
    const char *base = strrchr(config_path, '/');
    base = base ? base + 1 : config_path;
    /* A joined path that does not fit is no better than the path as given. */
    if (!realpath(dir, buf) || snprintf(out, cap, "%s/%s", buf, base) >= (int)cap)
        snprintf(out, cap, "%s", config_path);
}

/* "<status>: <detail>" of a failed answer: FastAPI's detail string, or its list of loc/msg. */
static void failure_detail(const mr_http_result *r, char *out, size_t cap)
{
    json_t *detail = json_object_get(r->json, "detail");
    out[0] = '\0';
    if (json_is_string(detail)) {
        snprintf(out, cap, "%s", json_string_value(detail));
    } else if (json_is_array(detail)) {
        size_t i, used = 0;
        json_t *item;
        json_array_foreach(detail, i, item) {
            char loc[128] = "";
            size_t j, lused = 0;
            json_t *part;
            json_array_foreach(json_object_get(item, "loc"), j, part) {
                char piece[64];
                if (json_is_string(part))
                    snprintf(piece, sizeof piece, "%s", json_string_value(part));
                else
                    snprintf(piece, sizeof piece, "%lld", (long long)json_integer_value(part));
                lused += (size_t)snprintf(loc + lused, sizeof loc - lused, "%s%s", j ? "." : "", piece);
                if (lused >= sizeof loc)
                    break;
            }
            const char *msg = json_string_value(json_object_get(item, "msg"));
            used += (size_t)snprintf(out + used, cap - used, "%s%s%s%s", i ? "; " : "", loc, *loc ? ": " : "",
                                     msg ? msg : "invalid");
            if (used >= cap)
                break;
        }
    } else if (r->body_len) {
        snprintf(out, cap, "%s", r->body);
    }
    if (!out[0])
        snprintf(out, cap, "no detail given");
    if (strlen(out) > DETAIL_MAX)
        out[DETAIL_MAX] = '\0';
}

/* What to do about a refusal, by status. */
static const char *next_step(long status)
{
    switch (status) {
    case 404: return "Check the code for typos, or generate a new one in the chat app (Settings -> Local MindRoom).";
    case 409: return "Each code pairs one install. " NEW_CODE;
    case 410: return "The code expired (codes last 10 minutes, and only the newest one counts). " NEW_CODE;
    case 422: return "Check --client-name (1 to 120 characters) and the code.";
    case 429: return "Too many attempts from this address; wait a minute, then run connect again.";
    default:
        return status >= 500 ? "The provisioning service failed; try again in a minute."
                             : "Check --provisioning-url: it must name a MindRoom provisioning service.";
    }
}

static char *dup_str(const json_t *v)
{
    const char *s = json_string_value(v);
    return s && *s ? strdup(s) : NULL;
}

/* Takes what the service returned; warns about and drops a namespace or owner of the wrong
 * shape, as the reference product does. */
static int read_pairing(const json_t *body, const char *url, pairing *p)
{
    p->client_id = dup_str(json_object_get(body, "client_id"));
    p->client_secret = dup_str(json_object_get(body, "client_secret"));
    if (!p->client_id || !p->client_secret)
        return mr_cli_fail(CMD, "%s answered without client_id and client_secret; check --provisioning-url", url);
    const char *ns = json_string_value(json_object_get(body, "namespace"));
    mr_err err = {0};
    /* Lower-cased, then ^[a-z0-9]{4,32}$; an empty one is no namespace at all. */
    if (!ns || mr_id_namespace_normalize(ns, p->ns, &err) != MR_OK || !p->ns[0]) {
        p->ns[0] = '\0';
        fprintf(stderr, "mindroom " CMD ": warning: ignoring the namespace '%s' from %s (expected 4 to 32 of "
                        "a-z and 0-9); MINDROOM_NAMESPACE stays empty\n",
                ns ? ns : "", url);
    }
    const char *owner = json_string_value(json_object_get(body, "owner_user_id"));
    if (owner && matches("^@[^:[:space:]]+:[^[:space:]]+$", owner))
        p->owner = strdup(owner);
    else if (owner)
        fprintf(stderr, "mindroom " CMD ": warning: ignoring the owner '%s' from %s: not a Matrix user ID\n", owner,
                url);
    return -1;
}

static void pairing_free(pairing *p)
{
    if (p->client_secret) {
        explicit_bzero(p->client_secret, strlen(p->client_secret));
        free(p->client_secret);
    }
    free(p->client_id);
    free(p->owner);
}

/* POSTs the code; -1 with *p filled on success, else the exit code after saying what to do. */
static int complete(const char *url, const char *code, const char *client_name, const char *fingerprint,
                    pairing *p)
{
    mr_http_client *c = NULL;
    mr_http_client_opts co = {.timeout_ms = TIMEOUT_MS, .max_response = 1u << 20};
    mr_err err = {0};
    if (mr_http_client_new(&co, &c, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    char full[2048];
    snprintf(full, sizeof full, "%s" COMPLETE_PATH, url);
    json_t *body = json_pack("{s:s, s:s, s:s}", "pair_code", code, "client_name", client_name,
                             "client_pubkey_or_fingerprint", fingerprint);
    mr_http_result r = {0};
    mr_code rc = body ? mr_http_client_json(c, "POST", full, body, &r, &err) : MR_ENOMEM;
    int status = -1;
    char detail[DETAIL_MAX + 512];
    if (rc == MR_EUNAVAIL || rc == MR_EIO || rc == MR_ENOMEM) {
        status = mr_cli_fail(CMD, "could not reach the provisioning service: %s\nCheck --provisioning-url (or "
                                  "MINDROOM_PROVISIONING_URL) and the network, then run connect again.",
                             rc == MR_ENOMEM ? "out of memory" : err.msg);
    } else if (r.status < 200 || r.status > 299) {
        failure_detail(&r, detail, sizeof detail);
        status = mr_cli_fail(CMD, "Pairing failed (%ld): %s\n%s", r.status, detail, next_step(r.status));
    } else if (rc != MR_OK || !json_is_object(r.json)) {
        status = mr_cli_fail(CMD, "%s answered %ld without a JSON object; check --provisioning-url", full, r.status);
    } else {
        status = read_pairing(r.json, url, p);
    }
    json_decref(body);
    mr_http_result_clear(&r);
    mr_http_client_free(c);
    return status;
}

/* owner as a YAML double-quoted scalar. */
static void sb_add_quoted(mr_strbuf *b, const char *owner)
{
    mr_strbuf_add(b, "\"", 1);
    for (const char *c = owner; *c; c++) {
        if (*c == '"' || *c == '\\')
            mr_strbuf_add(b, "\\", 1);
        mr_strbuf_add(b, c, 1);
    }
    mr_strbuf_add(b, "\"", 1);
}

/* text with every placeholder (bare, or already in matching quotes) replaced by the quoted
 * owner; *count says how many. */
static void replace_placeholders(const char *text, const char *owner, mr_strbuf *out, int *count)
{
    static const char *const tokens[] = {MR_CONFIG_OWNER_PLACEHOLDER, LEGACY_PLACEHOLDER};
    const char *p = text;
    while (*p) {
        const char *hit = NULL;
        size_t hit_len = 0;
        for (size_t i = 0; i < 2; i++) {
            const char *h = strstr(p, tokens[i]);
            if (h && (!hit || h < hit)) {
                hit = h;
                hit_len = strlen(tokens[i]);
            }
        }
        if (!hit) {
            mr_strbuf_add(out, p, strlen(p));
            break;
        }
        const char *start = hit, *end = hit + hit_len;
        if (start > p && (start[-1] == '"' || start[-1] == '\'') && *end == start[-1]) {
            start--;
            end++;
        }
        mr_strbuf_add(out, p, (size_t)(start - p));
        sb_add_quoted(out, owner);
        (*count)++;
        p = end;
    }
}

/* The paths named by `!include <path>` in text, relative ones resolved against dir. */
static size_t include_paths(const char *text, const char *dir, char paths[][PATH_MAX], size_t max)
{
    size_t n = 0;
    for (const char *p = text; n < max && (p = strstr(p, "!include")) != NULL;) {
        p += 8;
        if (*p != ' ' && *p != '\t')
            continue;
        p += strspn(p, " \t");
        char quote = *p == '"' || *p == '\'' ? *p++ : '\0';
        size_t len = quote ? strcspn(p, quote == '"' ? "\"\n" : "'\n") : strcspn(p, " \t\r\n,]}#");
        if (len == 0 || len >= PATH_MAX / 2)
            continue;
        int w = *p == '/' ? snprintf(paths[n], PATH_MAX, "%.*s", (int)len, p)
                          : snprintf(paths[n], PATH_MAX, "%s/%.*s", dir, (int)len, p);
        /* A path too long to hold is skipped rather than cut into another file's name. */
        if (w > 0 && w < PATH_MAX)
            n++;
        p += len;
    }
    return n;
}

/* Replaces the placeholders in path and the files it includes; a missing file is skipped. */
static mr_code set_owner_in(const char *path, const char *owner, int depth, int *count, mr_err *err)
{
    char *text = NULL;
    size_t len = 0;
    mr_code rc = mr_fs_read_all(path, MR_CONFIG_MAX_BYTES, &text, &len, err);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        return MR_OK;
    }
    if (rc != MR_OK)
        return rc;
    mr_strbuf out = {0};
    int here = 0;
    replace_placeholders(text, owner, &out, &here);
    struct stat st;
    if (out.failed)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory rewriting %s", path);
    else if (here)
        rc = mr_fs_write_atomic(path, out.s, out.len, stat(path, &st) == 0 ? st.st_mode & 07777 : 0644, true, err);
    *count += here;
    char (*paths)[PATH_MAX] = rc == MR_OK && depth < INCLUDE_DEPTH ? calloc(INCLUDES_MAX, PATH_MAX) : NULL;
    if (paths) {
        char dir[PATH_MAX];
        mr_fs_dirname(path, dir, sizeof dir);
        size_t n = include_paths(text, dir, paths, INCLUDES_MAX);
        for (size_t i = 0; rc == MR_OK && i < n; i++)
            rc = set_owner_in(paths[i], owner, depth + 1, count, err);
        free(paths);
    }
    free(out.s);
    free(text);
    return rc;
}

/* Python's shlex.quote: bare when safe, else in single quotes with ' as '"'"'. */
static void print_export(const char *key, const char *value)
{
    printf("export %s=", key);
    if (*value && strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@%+=:,./_-") ==
                      strlen(value)) {
        printf("%s\n", value);
        return;
    }
    putchar('\'');
    for (const char *c = value; *c; c++) {
        if (*c == '\'')
            fputs("'\"'\"'", stdout);
        else
            putchar(*c);
    }
    fputs("'\n", stdout);
}

static int persist(const char *config_path, const char *env_path, const mr_dotenv_kv *kvs, size_t n,
                   const pairing *p, const char *url)
{
    mr_err err = {0};
    char dir[PATH_MAX];
    mr_fs_dirname(env_path, dir, sizeof dir);
    if (mr_fs_mkdirs(dir, 0700, &err) != MR_OK || mr_dotenv_upsert(env_path, kvs, n, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s\nThe pairing worked but its credentials are not saved: run connect again with "
                                "a new code, or with --no-persist-env to see them",
                           err.msg);
    printf("Paired with %s as connection %s (namespace %s, owner %s).\n", url, p->client_id, p->ns[0] ? p->ns : "none",
           p->owner ? p->owner : "unknown");
    printf("Wrote the local client credentials to %s (mode 0600).\n", env_path);
    if (p->owner) {
        int count = 0;
        if (set_owner_in(config_path, p->owner, 0, &count, &err) != MR_OK)
            return mr_cli_fail(CMD, "%s\nPut %s into config.yaml in place of " MR_CONFIG_OWNER_PLACEHOLDER " yourself",
                               err.msg, p->owner);
        if (count)
            printf("Set the owner %s in %s (%d placeholder%s).\n", p->owner, config_path, count, count == 1 ? "" : "s");
    }
    printf("Next: mindroom run\n");
    return MR_CLI_EXIT_OK;
}

/* The service URL: flag > environment > .env > default, without trailing slashes. */
static int provisioning_url(const connect_opts *o, const mr_dotenv *env, char *out, size_t cap)
{
    const char *url = mr_setting(o->url, "MINDROOM_PROVISIONING_URL", env, NULL);
    if (!url || !*url)
        url = DEFAULT_URL;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return o->url ? mr_cli_usage_error(CMD, "--provisioning-url '%s' is not an http:// or https:// URL", url)
                      : mr_cli_fail(CMD, "MINDROOM_PROVISIONING_URL '%s' is not an http:// or https:// URL", url);
    if (strlen(url) >= cap)
        return mr_cli_fail(CMD, "the provisioning URL is longer than %zu bytes", cap - 1);
    snprintf(out, cap, "%s", url);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    return -1;
}

static int run_connect(const connect_opts *o, const char *code, const char *config_path, const char *env_path,
                       const mr_dotenv *env)
{
    char url[1024];
    int status = provisioning_url(o, env, url, sizeof url);
    if (status >= 0)
        return status;
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    const char *name = o->client_name ? o->client_name : host;
    size_t chars = 0;
    for (const char *c = name; *c; c++)
        chars += ((unsigned char)*c & 0xC0) != 0x80;
    if (chars == 0 || chars > CLIENT_NAME_MAX)
        return mr_cli_usage_error(CMD, "--client-name must be 1 to %d characters", CLIENT_NAME_MAX);
    char resolved[PATH_MAX], seed[PATH_MAX + 300], digest[65], fingerprint[80];
    resolved_config_path(config_path, resolved, sizeof resolved);
    snprintf(seed, sizeof seed, "%s:%s", host, resolved);
    sha256_hex(seed, digest);
    snprintf(fingerprint, sizeof fingerprint, "sha256:%s", digest);

    pairing p = {0};
    status = complete(url, code, name, fingerprint, &p);
    if (status < 0) {
        mr_dotenv_kv kvs[] = {
            {"MINDROOM_PROVISIONING_URL", url}, {"MINDROOM_LOCAL_CLIENT_ID", p.client_id},
            {"MINDROOM_LOCAL_CLIENT_SECRET", p.client_secret}, {"MINDROOM_NAMESPACE", p.ns},
            {"MINDROOM_OWNER_USER_ID", p.owner},
        };
        size_t n = p.owner ? 5 : 4;
        if (o->persist) {
            status = persist(config_path, env_path, kvs, n, &p, url);
        } else {
            for (size_t i = 0; i < n; i++)
                print_export(kvs[i].key, kvs[i].value);
            status = ferror(stdout) ? mr_cli_fail(CMD, "writing to stdout failed") : MR_CLI_EXIT_OK;
        }
    }
    pairing_free(&p);
    return status;
}

int mr_cli_connect(int argc, char **argv)
{
    connect_opts o;
    int status = parse_args(argc, argv, &o);
    if (status >= 0)
        return status;
    /* Checked before anything else, so a typo costs no request and no rate-limit budget. */
    char code[10];
    if (!normalize_code(o.code, code))
        return mr_cli_fail(CMD, "Invalid pair code format. Expected ABCD-EFGH.");

    mr_err err = {0};
    char config_path[PATH_MAX], env_path[PATH_MAX];
    if (mr_cli_config_files(o.path, false, config_path, env_path, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    mr_dotenv env = {0};
    if (mr_dotenv_read(env_path, true, &env, &err) != MR_OK)
        return mr_cli_fail(CMD, "%s", err.msg);
    status = run_connect(&o, code, config_path, env_path, &env);
    mr_dotenv_free(&env);
    return status;
}
