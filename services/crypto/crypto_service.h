/* crypto_service.h -- mindroom-crypto: decrypts what people write in encrypted rooms and
 * encrypts what the agents answer there.
 *
 * One consumer (group "crypto") reads four topics:
 *   matrix.inbound   state events tell crypto which rooms are encrypted, their history
 *                    visibility and members. An unencrypted room event becomes a
 *                    cleartext_event on matrix.cleartext (encrypted false, verification
 *                    "unencrypted"), keyed by room ID. An
 *                    m.room.encrypted event is decrypted with its Megolm session into a
 *                    cleartext_event (encrypted true, sender_device, verification "unverified");
 *                    without its session it waits in the store, is decrypted when the key comes,
 *                    and after CRYPTO_KEY_WAIT_MS the room gets one m.notice per session saying so.
 *                    Forged, replayed or malformed ones are refused with a log line.
 *   matrix.outbound  an outbound_intent becomes a send_request on matrix.send with the same
 *                    account and txn_id (send -> room_event, typing -> typing, redact -> redact),
 *                    keyed by room ID. In a room whose m.room.encryption crypto saw on
 *                    matrix.inbound, a room_event goes as m.room.encrypted (m.relates_to in
 *                    clear) under the account's outbound Megolm session, after a to_device
 *                    request that shares its key over Olm with readers' devices lacking it; a
 *                    message that needs keys_query or keys_claim first waits, in order, for them.
 *   matrix.todevice  the first event of a sync carries the device's key counts: the account's Olm
 *                    account is made (once per device, sealed in the store) and its device keys,
 *                    one-time keys and fallback key are uploaded; Olm-encrypted events from a
 *                    device /keys/query vouches for are decrypted, and an m.room_key inside
 *                    becomes a Megolm session.
 *   matrix.keys      the gateway's answers to the keys_upload, keys_query and keys_claim
 *                    requests crypto put on matrix.send (the gateway holds the access tokens).
 * Each output is flushed before its input is acknowledged, so a crash replays rather than loses;
 * the transaction IDs keep a replayed send from making a second event. A message that breaks
 * its schema is logged and dropped: delivering it again would not fix it. */
#ifndef MINDROOM_CRYPTO_SERVICE_H
#define MINDROOM_CRYPTO_SERVICE_H

#include "mindroom/runtime.h"

/* Runs until the runtime stops; 0 on a clean stop, 1 when it cannot start. */
int mr_crypto_serve(const mr_runtime *rt);

#endif
