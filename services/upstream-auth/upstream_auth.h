/* upstream_auth.h -- mindroom-upstream-auth: the HTTP identity boundary of the dashboard and API.
 *
 * Routes on the --listen server (besides /healthz, /readyz, /metrics), each authenticated first:
 *   any  /auth/verify                       forward auth for ingress controllers (nginx
 *                                           auth_request, Traefik ForwardAuth): 200 with
 *                                           X-MindRoom-Auth-User-Id, -Email, -Matrix-User-Id,
 *                                           -Method, or 401 (503 while JWKS keys are unavailable)
 *   GET  /api/auth/me                       the caller's identity as JSON
 *   GET  /api/oauth/<provider>/authorize    redeems ?connect_token= for its requester (403 for
 *                                           anyone else), 302 to the provider
 *   GET  /api/oauth/<provider>/callback     redeems ?state=, exchanges ?code=, seals the
 *                                           credentials under the requester
 * Errors are JSON {"detail": "..."}.
 *
 * Authentication, in the order of the seed (trusted upstream browser auth):
 *   MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED=true: the configured headers, header-only or, with
 *   MINDROOM_TRUSTED_UPSTREAM_REQUIRE_JWT=true, backed by a JWT verified against the JWKS;
 *   otherwise MINDROOM_API_KEY (Authorization: Bearer, or the mindroom_api_key cookie), or no
 *   key at all; MINDROOM_OWNER_USER_ID then names the one Matrix user of the instance.
 * Every variable is checked at start; a bad one stops the service with exit status 2. */
#ifndef MINDROOM_UPSTREAM_AUTH_H
#define MINDROOM_UPSTREAM_AUTH_H

#include "mindroom/runtime.h"

/* The service's own variables, for --help (README.md has the whole table). */
#define MR_UPSTREAM_AUTH_SETTINGS_HELP \
    "  MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED, _USER_ID_HEADER, _EMAIL_HEADER,\n" \
    "    _MATRIX_USER_ID_HEADER, _EMAIL_TO_MATRIX_USER_ID_TEMPLATE   trusted upstream headers\n" \
    "  MINDROOM_TRUSTED_UPSTREAM_REQUIRE_JWT, _JWT_HEADER, _JWKS_URL, _JWT_AUDIENCE, _JWT_ISSUER,\n" \
    "    _JWT_EMAIL_CLAIM, _JWT_USER_ID_CLAIM, _JWT_MATRIX_USER_ID_CLAIM   strict JWT mode\n" \
    "  MINDROOM_TRUSTED_UPSTREAM_JWT_LEEWAY_SECONDS   clock skew allowed for exp/nbf/iat, default 30\n" \
    "  MINDROOM_UPSTREAM_AUTH_JWT_CACHE   verified tokens kept, default 4096 (0 = off)\n" \
    "  MINDROOM_API_KEY, MINDROOM_OWNER_USER_ID   standalone mode\n" \
    "  MINDROOM_OAUTH_PROVIDERS, MINDROOM_OAUTH_<NAME>_*, MINDROOM_PUBLIC_URL   OAuth connect flow\n"

/* Runs until the runtime stops: 0 on a clean stop, 2 for an invalid setting, 1 otherwise. */
int mr_upstream_auth_serve(const mr_runtime *rt);

#endif
