/* ua_serve.c -- mr_upstream_auth_serve: settings, authenticator and routes, until the runtime stops. */
#include "upstream_auth.h"
#include "ua_internal.h"

#include <stdio.h>

#define COMPONENT "upstream-auth"

static const char *runtime_env(void *ctx, const char *name)
{
    return mr_runtime_setting(ctx, NULL, name, NULL);
}

/* One line on the mode in force, and the warnings the seed asks operators to heed. */
static void log_mode(const ua_settings *s)
{
    if (s->trusted) {
        const char *fields[] = {"user_id_header", s->user_id_header, "jwt_header", s->jwt_header,
                                "jwks_url", s->jwks_url, NULL};
        mr_log_write(MR_LOG_INFO, COMPONENT, fields, "trusted upstream auth, %s",
                     s->require_jwt ? "strict JWT mode" : "header-only mode");
        if (!s->require_jwt)
            mr_log_warn(COMPONENT, "header-only mode: every path to this service must strip client copies of %s",
                        s->user_id_header);
        if (s->api_key)
            mr_log_warn(COMPONENT, "MINDROOM_API_KEY is not used while trusted upstream auth is enabled");
    } else if (s->api_key) {
        mr_log_info(COMPONENT, "standalone API key auth%s%s", s->owner_user_id ? ", single owner " : "",
                    s->owner_user_id ? s->owner_user_id : "");
    } else {
        mr_log_warn(COMPONENT, "no MINDROOM_API_KEY and trusted upstream auth is off: every request is accepted%s%s",
                    s->owner_user_id ? " as " : "", s->owner_user_id ? s->owner_user_id : "");
    }
    for (size_t i = 0; i < s->n_providers; i++)
        mr_log_info(COMPONENT, "OAuth provider %s, callback %s", s->providers[i].name, s->providers[i].redirect_url);
}

int mr_upstream_auth_serve(const mr_runtime *rt)
{
    ua_service svc = {.metrics = rt->metrics};
    mr_err err = {0};
    ua_auth_options ao = {.metrics = rt->metrics};
    mr_code rc = ua_settings_load(runtime_env, (void *)rt, &svc.settings, &err);
    if (rc == MR_OK)
        rc = ua_metrics_declare(rt->metrics, &err);
    if (rc == MR_OK)
        rc = ua_auth_new(&svc.settings, &ao, &svc.auth, &err);
    if (rc == MR_EINVAL) {
        /* As mr_service_main prints a bad setting, and not through the logger: it would mask
         * "MINDROOM_OAUTH_X_CLIENT_SECRET: required" as if a secret followed the colon. The
         * messages name variables, never their secret values. */
        fprintf(stderr, "mindroom-%s: %s\n", rt->service, err.msg);
    } else if (rc != MR_OK) {
        mr_log_error(COMPONENT, "%s", err.msg);
    }
    if (rc != MR_OK) {
        ua_settings_free(&svc.settings);
        return rc == MR_EINVAL ? 2 : 1;
    }
    svc.oauth = (ua_oauth){.settings = &svc.settings, .store = rt->store, .metrics = rt->metrics};
    log_mode(&svc.settings);
    /* From here /readyz answers 200 (mr_service_def.routes). */
    mr_runtime_set_http_handler(rt, ua_routes_handle, &svc);
    while (!mr_runtime_sleep(rt, 60000))
        ;
    mr_runtime_set_http_handler(rt, NULL, NULL);
    ua_auth_free(svc.auth);
    ua_settings_free(&svc.settings);
    return 0;
}
