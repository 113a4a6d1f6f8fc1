/* agent_service.h -- mindroom-agent: answers turns as the entities the policy selects.
 *
 * Consumes agent.turns (consumer group "agent"), one turn per poll, and for each turn:
 *   1. skips messages the entities wrote themselves (their replies are recorded when sent);
 *      a router hand-off (the router's message carrying com.mindroom.original_sender) is kept;
 *   2. records the message in its conversation's history (`history:<room_id>:<root>`);
 *   3. reads who is mentioned and who takes part in the thread, keeps the entities of
 *      allowed_entities that are in the room (configured for it; in rooms the instance does not
 *      manage, joined per `members:<room_id>`), and lets the turn policy decide (turn_policy.c);
 *   4. each entity that answers claims `reply:<event_id>:<entity>` (claim.c), sets typing, calls
 *      its model with role, instructions and the thread's recent history, and streams the
 *      answer as a thread reply: one send, then m.replace edits at a throttled rate ending in
 *      " ⋯", and a final edit without it (stream.c). Edits name the first message by the event
 *      ID the gateway recorded for its transaction (`sent:<txn_id>`, proto/store.md);
 *   5. with two or more candidates and no mention, the router asks its model to pick one (a
 *      json_schema answer with an enum of the candidates) and posts "@<name> could you help
 *      with this?" in the thread; that post comes back as a turn and the agent answers it.
 * A model that cannot be reached gives a short "Sorry, I could not reach the model (...)" reply.
 * A store or bus failure leaves the turn unacknowledged: it comes again, and the claims make
 * the second pass answer only what the first did not finish. */
#ifndef MINDROOM_AGENT_SERVICE_H
#define MINDROOM_AGENT_SERVICE_H

#include "mindroom/runtime.h"

/* Runs until the runtime stops; 0 on a clean stop, 1 when it cannot start. */
int mr_agent_serve(const mr_runtime *rt);

#endif
