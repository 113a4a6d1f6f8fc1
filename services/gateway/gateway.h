/* gateway.h -- the gateway service: all Matrix client-server traffic of the instance (managed
 * accounts, rooms and room access, one sync loop per account feeding matrix.inbound and
 * matrix.todevice, and the matrix.send consumer). */
#ifndef MINDROOM_GATEWAY_H
#define MINDROOM_GATEWAY_H

#include "mindroom/runtime.h"

/* Runs until mr_runtime_stopping(rt); 0 on a clean stop, 1 on a failure it cannot recover
 * from (an account it cannot register or log in), 2 when a setting of its own is invalid (the
 * log names it). Reads, beside the
 * runtime's settings: MATRIX_HOMESERVER (required), MATRIX_REGISTRATION_TOKEN,
 * MATRIX_REGISTRATION_SHARED_SECRET[_FILE], MATRIX_MANAGED_ACCOUNT_AUTH (password or
 * appservice), MATRIX_APPSERVICE_TOKEN[_FILE], MINDROOM_PROVISIONING_URL,
 * MINDROOM_LOCAL_CLIENT_ID, MINDROOM_LOCAL_CLIENT_SECRET,
 * MINDROOM_MATRIX_HOMESERVER_STARTUP_TIMEOUT_SECONDS and MINDROOM_GATEWAY_SYNC_TIMEOUT_MS. */
int mr_gateway_serve(const mr_runtime *rt);

#endif
