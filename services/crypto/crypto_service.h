/* crypto_service.h -- mindroom-crypto, pass-through until end-to-end encryption arrives.
 *
 * One consumer (group "crypto") reads three topics:
 *   matrix.inbound   an unencrypted room event becomes a cleartext_event on matrix.cleartext
 *                    (encrypted false, verification "unencrypted"), keyed by room ID. Copies of
 *                    one event synced by several accounts go on as they are: authz dedups them.
 *                    An m.room.encrypted event cannot be read yet: it is logged once per (room,
 *                    Megolm session) and dropped.
 *   matrix.outbound  an outbound_intent becomes a send_request on matrix.send with the same
 *                    account and txn_id (send -> room_event, typing -> typing, redact -> redact),
 *                    keyed by room ID.
 *   matrix.todevice  acknowledged and ignored: there are no Olm sessions yet.
 * Each output is flushed before its input is acknowledged, so a crash replays rather than loses;
 * the transaction IDs keep a replayed send from making a second event. A message that breaks
 * its schema is logged and dropped: delivering it again would not fix it. */
#ifndef MINDROOM_CRYPTO_SERVICE_H
#define MINDROOM_CRYPTO_SERVICE_H

#include "mindroom/runtime.h"

/* Runs until the runtime stops; 0 on a clean stop, 1 when it cannot start. */
int mr_crypto_serve(const mr_runtime *rt);

#endif
