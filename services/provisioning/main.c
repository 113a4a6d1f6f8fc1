/* main.c -- mindroom-provisioning: pair codes and agent registration for local installs. */
#include "provisioning.h"

#define SETTINGS_HELP                                                                                    \
    "  MATRIX_HOMESERVER         required: the homeserver's URL; register-agent accepts no other\n"     \
    "  MATRIX_SERVER_NAME        default: the homeserver's host\n"                                      \
    "  MATRIX_REGISTRATION_TOKEN required (or MATRIX_REGISTRATION_TOKEN_FILE naming a file\n"           \
    "                            that holds it): registers agent accounts\n"                            \
    "  MINDROOM_PROVISIONING_PAIR_TTL_SECONDS       pair code lifetime, 600 (at least 30)\n"            \
    "  MINDROOM_PROVISIONING_POLL_INTERVAL_SECONDS  status poll interval for browsers, 3\n"             \
    "  MINDROOM_PROVISIONING_TRUSTED_PROXIES        comma-separated proxy IPs whose\n"                  \
    "      X-Forwarded-For names the client for rate limits; without it the TCP peer is the\n"          \
    "      client and X-Forwarded-For is ignored (a client could forge it). Behind them, set\n"         \
    "      MINDROOM_HTTP_MAX_CONNECTIONS_PER_ADDRESS=256, as all clients share their addresses\n"       \
    "  MINDROOM_PROVISIONING_CORS_ORIGINS  origins of the chat web app, default\n"                      \
    "                            https://chat.mindroom.chat\n"

/* The pairing API takes small JSON bodies only. */
#define MAX_BODY (64u * 1024u)

int main(int argc, char **argv)
{
    static const mr_service_def def = {
        .name = "provisioning",
        .summary = "Pairs local MindRoom installs with a Matrix account (pair codes) and registers their\n"
                   "namespaced agent accounts on the homeserver; the pairing page is /local-mindroom/.",
        .serve = mr_provisioning_serve,
        /* It runs on the hosted side, beside the homeserver: its state is in the store; no
         * config.yaml, bus or instance secret. */
        .uses = MR_RUNTIME_USES_STORE,
        .settings_help = SETTINGS_HELP,
        .routes = true,
        .default_listen = MR_PROVISIONING_DEFAULT_LISTEN,
        .http_max_body = MAX_BODY,
        .http_error_reply = mr_provisioning_error_reply,
        .check_settings = mr_provisioning_check_settings,
    };
    return mr_service_main(argc, argv, &def);
}
