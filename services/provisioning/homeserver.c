/* homeserver.c -- the service's calls to the Matrix homeserver through libs/matrix: whoami for
 * browser tokens, and account registration with the registration token through whatever
 * user-interactive stages the homeserver asks for (Synapse: the token, then m.login.dummy). */
#include "prov_internal.h"

#include <stdio.h>
#include <string.h>

#include "mindroom/log.h"
#include "mindroom/matrix.h"

#define HS_TIMEOUT_MS 10000L
#define AGENT_DEVICE_NAME "mindroom_agent"

/* A client for the configured homeserver, with token as its session when given. Requests that
 * fail in transit are tried twice, so a browser waits seconds, not minutes. */
static mr_code client_for(prov *p, const char *token, mr_matrix **out, mr_err *err)
{
    mr_matrix_opts o = {.homeserver = p->s->homeserver, .access_token = token,
                        .timeout_ms = HS_TIMEOUT_MS, .max_attempts = 2, .max_rate_limited = 1};
    return mr_matrix_new(&o, out, err);
}

mr_code hs_whoami(prov *p, const char *token, char *user_id, size_t cap, bool *valid, mr_err *err)
{
    *valid = false;
    mr_matrix *m = NULL;
    mr_code rc = client_for(p, token, &m, err);
    char uid[MR_MATRIX_ID_SIZE];
    if (rc == MR_OK)
        rc = mr_matrix_whoami(m, uid, NULL, err);
    if (rc == MR_EAUTH) {
        /* The homeserver does not know the token: the caller's fault, not a failure. */
        mr_err_clear(err);
        rc = MR_OK;
    } else if (rc == MR_OK && strlen(uid) >= cap) {
        rc = mr_err_set(err, MR_EIO, "the whoami answer of %s has a user_id longer than %zu bytes",
                        p->s->homeserver, cap - 1);
    } else if (rc == MR_OK) {
        snprintf(user_id, cap, "%s", uid);
        *valid = true;
    }
    mr_matrix_free(m);
    return rc;
}

/* Display name and logout with the new account's session; failures only cost a default display
 * name or a leftover device, so they are logged and not returned. */
static void finish_account(mr_matrix *m, const char *user_id, const char *display_name)
{
    mr_err err = {0};
    if (display_name && *display_name && mr_matrix_displayname_put(m, display_name, &err) != MR_OK)
        mr_log_warn("provisioning", "display name of %s not set: %s", user_id, err.msg);
    /* The service never uses the session registration opened: end it. */
    if (mr_matrix_logout(m, &err) != MR_OK)
        mr_log_warn("provisioning", "the registration session of %s was not logged out: %s", user_id,
                    err.msg);
}

mr_code hs_register(prov *p, const char *username, const char *password, const char *display_name,
                    hs_reg *result, char *user_id, size_t cap, mr_err *err)
{
    mr_matrix *m = NULL;
    mr_code rc = client_for(p, NULL, &m, err);
    if (rc != MR_OK)
        return rc;
    mr_matrix_register_req req = {.username = username, .password = password,
                                  .device_display_name = AGENT_DEVICE_NAME,
                                  .registration_token = p->s->registration_token};
    char uid[MR_MATRIX_ID_SIZE] = "";
    rc = mr_matrix_register(m, &req, uid, err);
    if (rc == MR_EEXISTS) {
        mr_err_clear(err);
        *result = HS_REG_IN_USE;
        snprintf(user_id, cap, "@%s:%s", username, p->s->server_name);
        rc = MR_OK;
    } else if (rc == MR_OK && strlen(uid) >= cap) {
        rc = mr_err_set(err, MR_EIO, "the registration answer of %s has a user_id longer than %zu "
                        "bytes", p->s->homeserver, cap - 1);
    } else if (rc == MR_OK) {
        *result = HS_REG_CREATED;
        snprintf(user_id, cap, "%s", uid);
        finish_account(m, uid, display_name);
    }
    mr_matrix_free(m);
    return rc;
}
