/* platform.h -- mindroom-platform: per-user MindRoom instances through the Kubernetes API.
 *
 * Routes on the --listen server (besides /healthz, /readyz, /metrics), each authenticated
 * first (trusted upstream user ID header, or the operator's API key as a bearer token):
 *   POST   /v1/instances                {"key", "values"?, "owner"? (operator only)}: creates,
 *                                       idempotent on (owner, key): 201, or 200 with the same one
 *   GET    /v1/instances                the caller's instances (every one for the operator)
 *   GET    /v1/instances/<id>           one, with its phase read from Kubernetes
 *   POST   /v1/instances/<id>/suspend   every Deployment to 0 replicas; config and Secret kept
 *   POST   /v1/instances/<id>/resume
 *   PATCH  /v1/instances/<id>           {"values"}: upgrade to new values
 *   DELETE /v1/instances/<id>           everything the instance owned
 * Another owner's instance is 404; no identity 401; the quota 403; invalid values 422 naming
 * the field, with nothing applied. Errors are JSON {"detail": "..."}.
 *
 * Each instance is the instance chart rendered with `helm template` and applied object by
 * object with server-side apply (field manager "mindroom-platform"), in one namespace; its
 * generated secrets live only in its Kubernetes Secret. Records live in the store under
 * platform:*; a reconcile loop finishes interrupted operations and re-applies drifted ones. */
#ifndef MINDROOM_PLATFORM_H
#define MINDROOM_PLATFORM_H

#include "mindroom/runtime.h"

#define MR_PLATFORM_SETTINGS_HELP \
    "  MINDROOM_PLATFORM_NAMESPACE   namespace instances are applied in (required)\n" \
    "  MINDROOM_PLATFORM_INSTANCE_CHART   the instance chart (.tgz or directory; required)\n" \
    "  MINDROOM_PLATFORM_HELM   helm binary, default helm\n" \
    "  MINDROOM_PLATFORM_KUBE_URL   API server, default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT\n" \
    "  MINDROOM_PLATFORM_KUBE_TOKEN_FILE, _KUBE_CA_FILE   default the service account's token and ca.crt\n" \
    "  MINDROOM_PLATFORM_MAX_INSTANCES_PER_OWNER   default 3\n" \
    "  MINDROOM_PLATFORM_RECONCILE_SECONDS   default 30\n" \
    "  MINDROOM_PLATFORM_API_KEY   the operator's bearer token\n" \
    "  MINDROOM_TRUSTED_UPSTREAM_AUTH_ENABLED, _USER_ID_HEADER   the caller's identity header\n" \
    "  INSTANCE_TRUSTED_UPSTREAM_*   every instance's trustedUpstreamAuth values\n" \
    "  MINDROOM_PLATFORM_INSTANCE_VALUES   YAML file of every instance's base values (homeserver, bus, store)\n" \
    "  INSTANCE_SECRET_<NAME>   copied into each new instance's Secret as <NAME> (registration token, keys)\n"

/* Runs until the runtime stops: 0 on a clean stop, 2 for an invalid setting, 1 otherwise. */
int mr_platform_serve(const mr_runtime *rt);

#endif
