/* agent_service.h -- mindroom-agent: answers turns as the entities the policy selects.
 *
 * Consumes agent.turns (consumer group "agent"). A turn is accepted by writing it to this
 * worker's in-flight record (`agent:inflight:<worker_id>`, proto/store.md) and only then
 * acknowledged on the bus; it runs on a pool of turn threads with one FIFO per room, so one
 * room's turns are answered in order and many rooms at once, and a slow model in one room never
 * delays another. A finished turn leaves the record once its answers are durable on the bus (on
 * `mindroom run`'s journal the writer does it after the commit, and the room's next turn does not
 * wait for that, turn_settle.c); on start, the turns a worker had accepted
 * but not finished run again, and a worker whose heartbeat lease lapsed has its turns adopted by
 * a live one (claims keep every answer exactly-once). For each turn:
 *   1. skips messages the entities wrote themselves (their replies are recorded when sent);
 *      a router hand-off (the router's message carrying com.mindroom.original_sender) is kept;
 *   2. records the message in its conversation's history (`history:<room_id>:<root>`);
 *   3. reads who is mentioned and who takes part in the thread, keeps the entities of
 *      allowed_entities (all of them, however many) that are in the room (configured for it; in
 *      rooms the instance does not manage, joined per `members:<room_id>`), and lets the turn
 *      policy decide (turn_policy.c);
 *   4. each entity that answers claims `reply:<event_id>:<entity>` in the name of this worker and
 *      boot (claim.c), sets typing, calls its model with role, instructions and the thread's
 *      recent history, and streams the answer as a thread reply: one send, then m.replace edits
 *      at a throttled rate ending in " ⋯", and a final edit without it (stream.c). Edits name the
 *      first message by the event ID the gateway recorded for its transaction (`sent:<txn_id>`,
 *      proto/store.md). A claim a live worker holds parks the turn until that worker's lease
 *      would end; it is not retried meanwhile;
 *   5. with two or more candidates and no mention, the router asks its model to pick one (a
 *      json_schema answer with an enum of the candidates) and posts "@<name> could you help
 *      with this?" in the thread; that post comes back as a turn and the agent answers it.
 * A model that cannot be reached gives a short "Sorry, I could not reach the model (...)" reply.
 * A store or bus failure keeps the turn in flight: it runs again after 1 s, then 2, 4, ... up to
 * 30 s, and the claims make the next pass answer only what the first did not finish. A stop in
 * the middle of an answer leaves it unfinished (never sent a second time) for the next start,
 * which edits the message already in the room.
 *
 * Settings (flag > environment > .env > default, as every setting):
 *   MINDROOM_WORKER_ID   names this process in claims, the heartbeat registry and its in-flight
 *                        record: 1 to 64 of [A-Za-z0-9._-]; default the hostname and 8 hex of
 *                        SHA-256 of the store URL and storage path. A restart under the same ID
 *                        takes over its own earlier boot's claims at once; two processes that
 *                        run at the same time need different IDs (set it when replicas share a
 *                        host and a storage path).
 *   MINDROOM_AGENT_MAX_CONCURRENT_TURNS  turn threads, so the most turns (and model calls)
 *                        in progress at once: 1 to 256, default 16.
 *   MINDROOM_AGENT_TYPING_DELAY_MS  how long a streamed answer runs before typing shows: 0 to
 *                        60000, default 200; an answer done sooner publishes no typing.
 * Each worker beats its heartbeat (`agent:workers`) every 3 s; it holds its claims and its
 * in-flight turns while its last beat is younger than 10 s (the lease). An invalid setting
 * makes mr_agent_serve return 2. */
#ifndef MINDROOM_AGENT_SERVICE_H
#define MINDROOM_AGENT_SERVICE_H

#include "mindroom/runtime.h"

/* Runs until the runtime stops; 0 on a clean stop, 1 when it cannot start. */
int mr_agent_serve(const mr_runtime *rt);

#endif
