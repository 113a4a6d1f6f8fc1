/* agent_run.h -- the running service's shared parts: the turn in hand, the service state, and
 * what answering (answer.c) and handing over (route.c) need from it (agent_service.c). */
#ifndef MINDROOM_AGENT_RUN_H
#define MINDROOM_AGENT_RUN_H

#include <stdatomic.h>

#include "agent_internal.h"
#include "agent_tools.h"
#include "mindroom/clock.h"
#include "mindroom/llm.h"
#include "mindroom/runtime.h"

/* A turn, checked against its schema. Strings borrow from root. */
typedef struct agent_turn {
    json_t *root;
    json_t *content;               /* event.content */
    const char *room_id;
    const char *room_key;          /* NULL: a room the instance does not manage */
    const char *room_alias;        /* the managed room's alias as the instance recorded it, or NULL */
    const char *event_id;
    const char *event_sender;      /* event.sender: who posted */
    const char *sender;            /* the canonical sender authz judged */
    const char *original_sender;   /* the person a relay speaks for, or NULL */
    const char *thread_root;       /* NULL outside a thread */
    const char *body;
    const char *msgtype;
    const char *in_reply_to;       /* content.m.relates_to.m.in_reply_to.event_id, or NULL */
    const char **allowed;          /* allowed_entities, every one of them (malloc'd) */
    size_t n_allowed;
    const char **joined;           /* joined_entities of an unmanaged room (malloc'd) */
    size_t n_joined;
} agent_turn;

/* MR_EINVAL naming the field for a message that is not a valid turn. */
mr_code agent_turn_parse(const char *value, size_t len, agent_turn *out, mr_err *err);
void agent_turn_free(agent_turn *t);

/* A model client, made when first needed for the config in force. */
typedef struct model_slot {
    mr_llm_client *client;
    bool tried;
    mr_code rc;                    /* why there is no client */
    char why[MR_ERR_MSG_MAX];
} model_slot;

/* What one turn thread keeps: the entities of the config in force, their model clients (a
 * client is not thread-safe, so each thread has its own), and what its current turn found. */
typedef struct agent_svc {
    const mr_runtime *rt;
    const agent_self *self;        /* this process, the holder of its claims */
    mcp_hub *mcp;                  /* the process's MCP clients, shared by its turn threads */
    bool reports;                  /* logs the roster's rebuilds (one thread does, not each) */
    roster roster;
    bool have_roster;
    unsigned long gen;             /* config generation the roster was built from */
    model_slot *models;            /* one per roster.cfg->models */
    bool any_room_mode;            /* an agent replies outside threads: keep the room's history */
    long long park_until_ms;       /* the turn's claim is held by a live worker: look again then
                                      (wall clock); 0 when none is */
    bool counted;                  /* the turn ran before in this process: its outcome is counted */
    long typing_delay_ms;          /* MINDROOM_AGENT_TYPING_DELAY_MS */
    json_t *answered;              /* [event_id, entity] of each answer of the turn, its claim to
                                      be marked done once the answer is durable (agent_settle) */
} agent_svc;

#define AGENT_METRIC "mindroom_agent_turns_total"

/* Builds the roster of the config in force; false when it cannot be built (logged when
 * reports). */
bool agent_svc_init(agent_svc *svc, const mr_runtime *rt, const agent_self *self, bool reports);
void agent_svc_free(agent_svc *svc);
/* Counts a turn's outcome in AGENT_METRIC. */
void agent_count(const mr_runtime *rt, const char *outcome);
/* Whether t is one no entity answers (written by an entity other than in the router's hand-off,
 * no body, a notice): logged and counted as skipped when it is (turn_run.c). */
bool agent_turn_skipped(agent_svc *svc, const agent_turn *t);
/* Decides who answers t and has them answer (turn_run.c). A store or bus failure returns its
 * code: the turn is to run again. A claim a live worker holds sets svc->park_until_ms. */
mr_code agent_turn_handle(agent_svc *svc, const agent_turn *t, mr_err *err);
/* Notes that an answer of the turn waits for another worker's claim until until_ms. */
void agent_park(agent_svc *svc, long long until_ms);

/* What answering a turn needs to know beyond the turn. */
typedef struct turn_ctx {
    const agent_turn *turn;
    const char *root;              /* the thread root, or the message itself outside threads */
    const char *user_text;         /* what to answer: the body, or for a hand-off the message it
                                      hands over */
    const char *handed_over;       /* a hand-off: the event ID of that message, else NULL */
    thread_state *th;              /* the conversation at root as this turn last read or wrote it;
                                      appending from it finds out when another writer came between */
} turn_ctx;

/* The client of a model by name; NULL with *rc and why filled when it cannot be made (no key,
 * unknown provider). */
mr_llm_client *agent_model(agent_svc *svc, const char *name, mr_code *rc, const char **why);

/* Publishes an outbound intent (JSON text, freed here; NULL counts as out of memory) keyed by
 * room ID. */
mr_code agent_publish(agent_svc *svc, const char *room_id, char *intent, mr_err *err);
mr_code agent_flush(agent_svc *svc, mr_err *err);
/* mr_bus_when_durable on the runtime's bus, with the flush timeout of agent_flush. */
mr_code agent_when_durable(agent_svc *svc, mr_bus_durable_fn fn, void *ctx, mr_err *err);

/* ---- a turn's bookkeeping once its answers are durable (turn_settle.c) ---- */

/* Notes an answer whose claim agent_settle marks done. */
mr_code agent_answered(agent_svc *svc, const char *event_id, const char *entity, mr_err *err);
/* Once what the turn published is durable: the claims of its answers marked done and, with a
 * field (the turn is finished), the turn removed from this worker's in-flight record. On a
 * journaled bus this returns at once and the journal's writer does it after its next commit;
 * otherwise the bus is flushed first. A failure (returned) gives the claims up and keeps the turn
 * in the record: it is to run again. */
mr_code agent_settle(agent_svc *svc, const char *field, mr_err *err);
/* agent_publish and agent_flush in one, for a thread without an agent_svc. */
mr_code agent_publish_now(const mr_runtime *rt, const char *room_id, char *intent, mr_err *err);

/* ---- sends the gateway gave up on (send_failed.c) ---- */

/* The record, `answer:<txn_prefix>` (key) = *value (malloc'd), of where the answer of (event_id,
 * entity) goes, so a send_failure of any of its transaction IDs finds the thread; thread_root
 * NULL: a plain reply. The caller writes it (CLAIM_TTL_MS) with the answer's other records. */
mr_code delivery_record(const char *event_id, const char *entity, const char *account, const char *room_id,
                        const char *thread_root, char key[TXN_MAX + 8], char **value, mr_err *err);
/* Handles one send_failure (JSON text): one short notice in the answer's thread, nothing when the
 * notice itself failed or the message is not one (logged). Errors leave it for redelivery. */
mr_code delivery_failed(const mr_runtime *rt, const char *msg, size_t len, mr_err *err);

/* Why a model call failed, in a few words a user can read (never a key or a URL). */
const char *agent_reason(mr_code rc, bool no_client);
/* "Sorry, I could not reach the model (<reason>). Try again in a moment." (malloc'd), after
 * partial when the answer had begun; NULL when out of memory. */
char *agent_sorry(const char *partial, const char *reason);

/* The conversation as prompt messages (prompt.c): the last `last` messages of th, without the
 * message answered, the message a hand-off hands over, and the router's hand-offs. self's own
 * messages are the assistant's; the others are the user's, as "<who>: <body>". */
typedef struct prompt_history {
    mr_llm_message *msgs;
    char **owned;
    size_t n;
} prompt_history;

mr_code prompt_history_build(const thread_state *th, const roster *r, const char *self, const turn_ctx *t,
                             size_t last, prompt_history *out, mr_err *err);
void prompt_history_free(prompt_history *p);

/* The system context of e answering turn (answer.c): who it is, in a Matrix chat (a member of
 * team when team is not NULL), then its workspace files and, with the file memory backend, its
 * MEMORY.md (a team's in the team's own workspace). malloc'd; NULL when out of memory. */
char *answer_context(agent_svc *svc, const agent_turn *turn, const roster_entry *e, const roster_entry *team);
/* Answers as e (answer.c). */
mr_code answer_as(agent_svc *svc, const turn_ctx *t, const roster_entry *e, mr_err *err);
/* Answers with the entity's tools when it has any (answer_tools.c): *used false and nothing done
 * when it has none. */
struct tool_hooks;
mr_code answer_with_tools(agent_svc *svc, const turn_ctx *t, const roster_entry *e, mr_llm_client *client,
                          const mr_llm_request *req, const struct tool_hooks *hooks, mr_llm_response *out,
                          bool *used, mr_err *err);
/* Answers as the team e (team.c) with its mode: coordinate, the team's model leads and hands
 * tasks to members with delegate_task; collaborate, every member answers side by side and one
 * more call writes the team's answer from theirs. Members answer with their own role, model and
 * tools for the turn's requester, each within MINDROOM_TEAM_MEMBER_TIMEOUT_SECONDS; their tool
 * calls show through hooks, and a member that fails gives the team an error text. Text reaches
 * hooks->on_text, as tool_loop_chat's does; out holds the team's last model answer. */
mr_code team_answer(agent_svc *svc, const turn_ctx *t, const roster_entry *e, mr_llm_client *client,
                    const mr_llm_request *req, const tool_hooks *hooks, mr_llm_response *out, mr_err *err);
/* Asks the router's model which candidate answers, and hands over to it (route.c). */
mr_code route_turn(agent_svc *svc, const turn_ctx *t, const char *const *candidates, size_t n, mr_err *err);

#endif
