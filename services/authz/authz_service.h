/* authz_service.h -- mindroom-authz: turns authorized cleartext events into turns for the agents.
 *
 * Consumes matrix.cleartext (consumer group "authz"), and for each m.room.message event:
 *   1. skips it when `turn:<event_id>` is in the store (another account's copy was decided);
 *   2. looks up the identifiers the gateway recorded for the room (room:<room_id>, see
 *      proto/store.md) and asks libs/authz whether the sender may be served there;
 *   3. denied: logs one line with the reason (never the body) and publishes nothing;
 *      allowed: publishes a turn to agent.turns, keyed by room ID, naming every entity (the
 *      router, then agents, then teams, in config order) whose reply permissions allow the
 *      sender, and flushes it;
 *   4. sets `turn:<event_id>` (7 days).
 * State events, edits (m.replace; not turns yet: the agent has no use for them so far),
 * reactions, events crypto could not decrypt and other event types are skipped. A message that
 * breaks the cleartext_event schema is logged and dropped: delivering it again would not fix it.
 * A store or bus failure leaves the message unacknowledged so it comes again.
 *
 * The rules are rebuilt when the runtime's config generation changes (SIGHUP); a message in
 * hand finishes under the rules it started with. */
#ifndef MINDROOM_AUTHZ_SERVICE_H
#define MINDROOM_AUTHZ_SERVICE_H

#include "mindroom/runtime.h"

/* Runs until the runtime stops; 0 on a clean stop, 1 when the rules cannot be built at start. */
int mr_authz_serve(const mr_runtime *rt);

#endif
