/* cmd_authz_explain.c -- `mindroom authz explain`: the authorization decision for one sender in
 * one room (and one entity's reply permission), with the rule that made it. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mindroom/authz.h"
#include "mindroom/dotenv.h"
#include "mindroom/ids.h"

#define CMD "authz explain"

/* Exit codes of this command, which differ from the others: denied is a normal answer. */
enum { EXPLAIN_ALLOWED = 0, EXPLAIN_DENIED = 1, EXPLAIN_BAD_INPUT = 2 };

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"sender", required_argument, NULL, 's'},
    {"room", required_argument, NULL, 'r'},
    {"entity", required_argument, NULL, 'e'},
    {"original-sender", required_argument, NULL, 'o'},
    {"server-name", required_argument, NULL, 'S'},
    {"namespace", required_argument, NULL, 'n'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int print_help(void)
{
    fputs("Usage: mindroom authz explain [--config PATH] --sender USER --room ROOM [--entity NAME]\n"
          "\n"
          "Prints whether USER may be served in ROOM and, with --entity, whether that agent,\n"
          "team or the router may reply to USER, each with the rule that decided, e.g.\n"
          "  room access: denied: room_permissions lists #lobby:example.com and\n"
          "  @bob:example.com is not in it\n"
          "\n"
          "Options:\n"
          "  -c, --config PATH         config.yaml (default: the usual lookup order)\n"
          "  -s, --sender USER         the Matrix user ID asking, e.g. @alice:example.com\n"
          "  -r, --room ROOM           a room ID (!abc:example.com), a full alias\n"
          "                            (#lobby:example.com) or a managed room key (lobby)\n"
          "  -e, --entity NAME         also check this agent's, team's or router's reply permission\n"
          "  -o, --original-sender USER  the human a relayed message speaks for (honoured only\n"
          "                            when --sender is one of the instance's own accounts)\n"
          "      --server-name NAME    the instance's Matrix server name (default:\n"
          "                            MATRIX_SERVER_NAME, else the host of MATRIX_HOMESERVER)\n"
          "      --namespace NS        the instance's namespace (default: MINDROOM_NAMESPACE)\n"
          "  -h, --help                Show this help and exit\n"
          "\n"
          "Settings resolve as flag, then process environment, then the .env next to the\n"
          "config. Reply permissions that grant members of joined_rooms are not applied here:\n"
          "membership is only known to a running instance.\n"
          "\n"
          "Exit codes:\n"
          "  0  allowed\n"
          "  1  denied\n"
          "  2  bad input (unknown option, malformed ID, a config that does not load)\n",
          stdout);
    return EXPLAIN_ALLOWED;
}

typedef struct explain_args {
    const char *config;
    const char *sender;
    const char *room;
    const char *entity;
    const char *original_sender;
    const char *server_name;
    const char *ns;
} explain_args;

static int bad_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_input(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mindroom " CMD ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXPLAIN_BAD_INPUT;
}

static int check_user_arg(const char *flag, const char *value)
{
    mr_err err = {0};
    if (mr_id_parse_user(value, NULL, &err) != MR_OK)
        return bad_input("%s: %s", flag, err.msg);
    return EXPLAIN_ALLOWED;
}

static int check_room_arg(const char *room)
{
    mr_err err = {0};
    mr_code rc = MR_OK;
    if (room[0] == '!')
        rc = mr_id_parse_room_id(room, NULL, &err);
    else if (room[0] == '#')
        rc = mr_id_parse_room_alias(room, NULL, &err);
    else if (!*room)
        return bad_input("--room: empty");
    if (rc != MR_OK)
        return bad_input("--room: %s", err.msg);
    return EXPLAIN_ALLOWED;
}

/* The instance identity the decision depends on: server name and namespace. */
static int resolve_identity(const explain_args *a, const mr_dotenv *env, char *server, size_t cap,
                            char ns[MR_NAMESPACE_MAX + 1])
{
    mr_err err = {0};
    const char *name = mr_setting(a->server_name, "MATRIX_SERVER_NAME", env, NULL);
    if (!name) {
        const char *hs = mr_setting(NULL, "MATRIX_HOMESERVER", env, NULL);
        if (!hs)
            return bad_input("no server name: pass --server-name, or set MATRIX_SERVER_NAME or "
                             "MATRIX_HOMESERVER (environment or .env)");
        if (mr_id_url_host(hs, server, cap, &err) != MR_OK)
            return bad_input("MATRIX_HOMESERVER: %s", err.msg);
    } else if ((size_t)snprintf(server, cap, "%s", name) >= cap) {
        return bad_input("server name is longer than %zu bytes", cap - 1);
    }
    if (mr_id_parse_server_name(server, NULL, &err) != MR_OK)
        return bad_input("server name: %s", err.msg);
    if (mr_id_namespace_normalize(mr_setting(a->ns, "MINDROOM_NAMESPACE", env, ""), ns, &err) != MR_OK)
        return bad_input("namespace: %s", err.msg);
    return EXPLAIN_ALLOWED;
}

static void print_decision(const char *question, const mr_authz_decision *d)
{
    char line[1024];
    mr_authz_describe(d, line, sizeof line);
    printf("%s: %s\n", question, line);
}

static int explain(const explain_args *a, mr_config *cfg, const mr_dotenv *env)
{
    char server[MR_ID_MAX + 1];
    char ns[MR_NAMESPACE_MAX + 1];
    int status = resolve_identity(a, env, server, sizeof server, ns);
    if (status != EXPLAIN_ALLOWED)
        return status;
    mr_err err = {0};
    mr_authz *az = NULL;
    if (mr_authz_new(cfg, server, ns, &az, &err) != MR_OK)
        return bad_input("%s", err.msg);

    mr_authz_room room;
    mr_authz_room_from_string(a->room, &room);
    mr_authz_decision d;
    bool allowed = mr_authz_check_room(az, a->sender, &room, &d);
    print_decision("room access", &d);
    if (a->entity) {
        mr_authz_reply_query q = {.entity = a->entity, .sender = a->sender,
                                  .original_sender = a->original_sender};
        mr_authz_decision r;
        bool may_reply = mr_authz_check_reply(az, &q, &r);
        char question[128];
        snprintf(question, sizeof question, "reply (%s)", a->entity);
        print_decision(question, &r);
        allowed = allowed && may_reply;
    }
    mr_authz_free(az);
    return allowed ? EXPLAIN_ALLOWED : EXPLAIN_DENIED;
}

int mr_cli_authz_explain(int argc, char **argv)
{
    explain_args a = {0};
    int c;
    while ((c = mr_cli_getopt(argc, argv, "c:s:r:e:o:h", long_options, CMD)) != -1) {
        switch (c) {
        case 'h': return print_help();
        case 'c': a.config = optarg; break;
        case 's': a.sender = optarg; break;
        case 'r': a.room = optarg; break;
        case 'e': a.entity = optarg; break;
        case 'o': a.original_sender = optarg; break;
        case 'S': a.server_name = optarg; break;
        case 'n': a.ns = optarg; break;
        default: return MR_CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return mr_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!a.sender)
        return mr_cli_usage_error(CMD, "--sender is required");
    if (!a.room)
        return mr_cli_usage_error(CMD, "--room is required");
    if (check_user_arg("--sender", a.sender) != EXPLAIN_ALLOWED || check_room_arg(a.room) != EXPLAIN_ALLOWED)
        return EXPLAIN_BAD_INPUT;
    if (a.original_sender && check_user_arg("--original-sender", a.original_sender) != EXPLAIN_ALLOWED)
        return EXPLAIN_BAD_INPUT;

    mr_err err = {0};
    char path[PATH_MAX], env_path[PATH_MAX];
    if (mr_cli_config_files(a.config, true, path, env_path, &err) != MR_OK)
        return bad_input("%s", err.msg);
    mr_config *cfg = NULL;
    mr_config_diags diags = {0};
    mr_code rc = mr_config_load(path, &cfg, &diags, &err);
    mr_cli_print_diags(&diags);
    mr_config_diags_free(&diags);
    if (rc != MR_OK)
        return bad_input("%s", err.msg);

    mr_dotenv env = {0};
    int status;
    if (mr_dotenv_read(env_path, true, &env, &err) != MR_OK)
        status = bad_input("%s", err.msg);
    else
        status = explain(&a, cfg, &env);
    mr_dotenv_free(&env);
    mr_config_release(cfg);
    return status;
}
