/* gateway.h -- the gateway service: all Matrix client-server traffic of the instance (managed
 * accounts, rooms and room access, one sync loop per account feeding matrix.inbound and
 * matrix.todevice, and the matrix.send consumer). */
#ifndef MINDROOM_GATEWAY_H
#define MINDROOM_GATEWAY_H

#include "mindroom/runtime.h"

/* Runs until mr_runtime_stopping(rt); 0 on a clean stop, 1 on a failure it cannot recover
 * from (an account collision, a homeserver that never answers), 2 when a setting of its own is
 * invalid or the homeserver refuses what the settings give (a registration method, an existing
 * account's credentials); the log names the setting. Reads, beside the runtime's settings:
 * MATRIX_HOMESERVER (required), MATRIX_REGISTRATION_TOKEN[_FILE],
 * MATRIX_REGISTRATION_SHARED_SECRET[_FILE], MATRIX_MANAGED_ACCOUNT_AUTH (password or
 * appservice), MATRIX_APPSERVICE_TOKEN[_FILE], MINDROOM_PROVISIONING_URL,
 * MINDROOM_LOCAL_CLIENT_ID, MINDROOM_LOCAL_CLIENT_SECRET[_FILE],
 * MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS, MINDROOM_GATEWAY_SYNC_TIMEOUT_MS, and for
 * accounts the admin already has, MATRIX_ACCOUNT_<ENTITY>_USER_ID with
 * MATRIX_ACCOUNT_<ENTITY>_PASSWORD[_FILE] or MATRIX_ACCOUNT_<ENTITY>_ACCESS_TOKEN[_FILE]
 * (ENTITY: ROUTER, USER for mindroom_user, or an agent or team name in capitals).
 *
 * Accounts without given credentials are registered by the first method that applies:
 * appservice when MATRIX_MANAGED_ACCOUNT_AUTH says so; the provisioning service when
 * MINDROOM_PROVISIONING_URL is set, MATRIX_REGISTRATION_TOKEN is not, and pairing left the
 * local client credentials; the shared secret; the registration token; open registration. */
int mr_gateway_serve(const mr_runtime *rt);

#endif
