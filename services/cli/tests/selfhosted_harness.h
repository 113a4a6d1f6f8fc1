/* selfhosted_harness.h -- what the self-hosted CLI tests share: the test homeserver and the
 * model stub on loopback, a `config init --matrix-server self-hosted` install in the sandbox,
 * and the .env lines a person then fills in. Included once, after cli_harness.h. */
#ifndef MINDROOM_CLI_SELFHOSTED_HARNESS_H
#define MINDROOM_CLI_SELFHOSTED_HARNESS_H

#include "hs_peer.h"
#include "mindroom/dotenv.h"
#include "model_stub_peer.h"
#include "peers.h"

#define SH_SECRET "admin-shared-secret-0123"
#define SH_TOKEN "registration-token-4567"
#define SH_KEY "sk-selfhosted-test-9f8e7d6c5b4a"
#define SH_OWNER "@alice:localhost"
#define SH_MODEL "gpt-5.6"

/* Settings of the environment the tests run in would win over the .env under test. */
static inline void sh_clear_environment(void)
{
    static const char *const keys[] = {
        "OPENAI_API_KEY", "OPENAI_BASE_URL", "MATRIX_HOMESERVER", "MATRIX_SERVER_NAME",
        "MATRIX_REGISTRATION_TOKEN", "MATRIX_REGISTRATION_TOKEN_FILE",
        "MATRIX_REGISTRATION_SHARED_SECRET", "MATRIX_REGISTRATION_SHARED_SECRET_FILE",
        "MATRIX_MANAGED_ACCOUNT_AUTH", "MATRIX_APPSERVICE_TOKEN", "MINDROOM_PROVISIONING_URL",
        "MINDROOM_LOCAL_CLIENT_ID", "MINDROOM_LOCAL_CLIENT_SECRET", "MINDROOM_STORAGE_PATH",
        "MINDROOM_NAMESPACE", "MINDROOM_CONFIG_PATH", "MINDROOM_BUS_URL", "MINDROOM_STORE_URL",
    };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        unsetenv(keys[i]);
}

static inline void sh_check(mr_code rc, const mr_err *err, const char *what)
{
    if (rc != MR_OK)
        fail_msg("%s: %s", what, err->msg);
}

/* `mindroom config init --matrix-server self-hosted --homeserver URL --server-name localhost
 * --owner SH_OWNER --force` into the sandbox's work dir, as a person would run it. The test
 * homeserver listens on 127.0.0.1 and names itself localhost, as a server behind a proxy does. */
static inline void sh_init(sandbox *sb, const char *homeserver)
{
    cli_run r = run_cli(sb, "config", "init", "--matrix-server", "self-hosted", "--homeserver",
                        homeserver, "--server-name", "localhost", "--owner", SH_OWNER, "--path", sb_path(sb, "config.yaml"), "--force");
    if (r.status != 0)
        fail_msg("config init: exit %d\n%s%s", r.status, r.out, r.err);
    cli_run_free(&r);
}

/* Sets KEY=value lines in the sandbox's .env, as a person fills it in. */
static inline void sh_set_env(sandbox *sb, const mr_dotenv_kv *kvs, size_t n)
{
    mr_err err = {0};
    sh_check(mr_dotenv_upsert(sb_path(sb, ".env"), kvs, n, &err), &err, "filling in .env");
}

#endif
