/* agent_internal.h -- what the files of mindroom-agent share: who is who (roster), mentions, the
 * turn policy, thread state, streaming cadence, transaction IDs, replies and claims. */
#ifndef MINDROOM_AGENT_INTERNAL_H
#define MINDROOM_AGENT_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mindroom/config.h"
#include "mindroom/err.h"
#include "mindroom/ids.h"
#include "mindroom/store.h"

/* ---- roster: the entities of the config and their Matrix accounts (roster.c) ------------- */

typedef enum entity_kind { ENTITY_ROUTER = 0, ENTITY_AGENT, ENTITY_TEAM } entity_kind;

typedef struct roster_entry {
    const char *name;            /* "router", an agent or a team name (borrowed from the config) */
    const char *display_name;
    char user_id[MR_ID_MAX + 1]; /* the managed account */
    entity_kind kind;
    const mr_agent_cfg *agent;   /* ENTITY_AGENT */
    const mr_team_cfg *team;     /* ENTITY_TEAM */
} roster_entry;

typedef struct roster {
    mr_config *cfg;              /* a reference held while the roster lives */
    roster_entry *v;             /* the router, then agents, then teams, in config order */
    size_t n;
    char internal_user[MR_ID_MAX + 1]; /* @<mindroom_user.username>:<server>, a person */
} roster;

/* Builds the roster of cfg for the instance's server name and namespace (NULL or "" for none);
 * takes a reference on cfg. MR_EINVAL names the entity whose user ID cannot be made. */
mr_code roster_build(mr_config *cfg, const char *server_name, const char *ns, roster *out, mr_err *err);
void roster_free(roster *r);
const roster_entry *roster_by_name(const roster *r, const char *name);
const roster_entry *roster_by_user(const roster *r, const char *user_id);
bool roster_is_bot_account(const roster *r, const char *user_id);

/* ---- mentions (mentions.c) --------------------------------------------------------------- */

#define MENTIONS_MAX 16

typedef struct mentions {
    const char *names[MENTIONS_MAX]; /* mentioned entities (the router included), first first,
                                        each once; borrowed from the roster */
    size_t n;
    bool other;                      /* a person (not an entity, not a bot account) was mentioned */
    const char *source;              /* "m.mentions", "matrix.to", "body", or NULL for none */
} mentions;

/* Who content mentions, from the first source that names anyone: m.mentions.user_ids, then
 * matrix.to links (formatted_body, then body), then @name tokens in the body matched against
 * entity names, display names and account localparts (case-insensitive). The sender's own ID
 * and bot accounts never count. Tokens only ever find entities. */
void mentions_extract(const roster *r, json_t *content, const char *sender, mentions *out);

/* ---- the turn policy (turn_policy.c): pure, no I/O --------------------------------------- */

typedef struct policy_input {
    bool in_thread;
    size_t humans;                       /* distinct people who posted in the thread, this message
                                            included; bot accounts and entities are not people */
    const char *const *thread_agents;    /* entities that answered in the thread, in order of
                                            first answer; the router never counts */
    size_t n_thread_agents;
    const mentions *mentioned;
    const char *const *eligible;         /* entities (not the router) that are in the room and
                                            whose reply permissions allow the sender */
    size_t n_eligible;
    bool router_allowed;                 /* the router may answer the sender: it may hand over */
    bool relay;                          /* a router hand-off: only whom it mentions answers */
} policy_input;

typedef enum policy_kind { POLICY_SILENT = 0, POLICY_ANSWER, POLICY_ROUTE } policy_kind;

typedef struct policy_decision {
    policy_kind kind;
    const char **who;                    /* ANSWER: who answers; ROUTE: the candidates (a subset
                                            of eligible, in the caller's buffer) */
    size_t n;
    const char *why;                     /* a phrase for the log */
} policy_decision;

/* who: room for in->n_eligible names, which out->who points to (everyone named is eligible). */
void policy_decide(const policy_input *in, const char **who, policy_decision *out);

/* ---- thread state (thread_state.c): history kept in the store ---------------------------- */

#define HISTORY_MAX 30           /* messages kept per conversation */
#define HISTORY_BODY_MAX 4000    /* bytes kept of each body */
#define HISTORY_ROOM "room"      /* the conversation outside threads, for thread_mode: room */
#define HISTORY_KEY_MAX (3 * MR_ID_MAX)

/* One conversation: `history:<room_id>:<root>` (proto/store.md), root being the thread root
 * event ID or HISTORY_ROOM. */
typedef struct history_msg {
    const char *event_id;        /* may be NULL (a reply whose event ID is not known) */
    const char *sender;
    const char *entity;          /* the entity that wrote it, NULL for a person */
    const char *body;
    const char *answer;          /* an entity's answer: the prefix of its transaction IDs, so a
                                    second attempt at it replaces the first; NULL otherwise */
} history_msg;

typedef struct thread_state {
    json_t *doc;                 /* {"participants": {user: entity or ""}, "messages": [...]} */
    char *raw;                   /* the value it was read from or last written as; NULL: absent */
    size_t raw_len;
    bool unsaved;                /* doc holds `noted`, which the store does not yet */
    history_msg noted;           /* thread_note's message; its strings borrowed from the caller */
} thread_state;

/* An absent key gives an empty state. */
mr_code thread_load(mr_store *s, const char *room_id, const char *root, thread_state *out, mr_err *err);
void thread_state_free(thread_state *t);
/* People who posted, plus `sender` when it is a person too. */
size_t thread_humans(const thread_state *t, const roster *r, const char *sender);
/* Entities (not the router) that posted, in order of first post; names borrowed from r. */
size_t thread_agents(const thread_state *t, const roster *r, const char **out, size_t cap);
size_t thread_count(const thread_state *t);
/* The i-th message, oldest first; strings borrow from t. */
history_msg thread_message(const thread_state *t, size_t i);
/* Appends m (skipped when a message with its event ID is there; for an answer already there,
 * its body replaced), keeping the last HISTORY_MAX,
 * with compare-and-set so concurrent writers do not lose each other's messages. */
mr_code thread_append(mr_store *s, const char *room_id, const char *root, const history_msg *m, mr_err *err);
/* The same on a state loaded from that key, which is then the state written: one round trip
 * while nobody else wrote the key since (else it is read again). A message noted (thread_note)
 * is written with it, before it. */
mr_code thread_append_to(mr_store *s, const char *room_id, const char *root, thread_state *t, const history_msg *m,
                         mr_err *err);
/* Adds m to t without writing it: the next write of t (thread_append_to, thread_save, the
 * write of thread_save_op) writes it. For a turn's own message, whose write need not wait in
 * front of the model call. m's strings must outlive t's next write. */
void thread_note(thread_state *t, const history_msg *m);
/* Writes a noted message; nothing when there is none. */
mr_code thread_save(mr_store *s, const char *room_id, const char *root, thread_state *t, mr_err *err);
/* The compare-and-set that writes t's noted message, for a batch of the turn's writes: false when
 * nothing is noted. key has room for HISTORY_KEY_MAX bytes; *text (malloc'd) is the value, for
 * thread_saved to keep or free. */
bool thread_save_op(const char *room_id, const char *root, thread_state *t, char *key, char **text,
                    mr_store_op *op, mr_err *err);
/* After that batch: t is what was written, or (the key changed meanwhile) it is read again and
 * the noted message written by thread_save. Takes text. The write's own failure is returned
 * with err untouched: the batch's message names it. */
mr_code thread_saved(mr_store *s, const char *room_id, const char *root, thread_state *t, const mr_store_op *op,
                     char *text, mr_err *err);

/* ---- streaming cadence (stream.c): pure, the clock is the caller's ----------------------- */

#define STREAM_MIN_INTERVAL_MS 500   /* edit interval at the start ... */
#define STREAM_MAX_INTERVAL_MS 5000  /* ... ramping to this ... */
#define STREAM_RAMP_MS 15000         /* ... over this long */
#define STREAM_MIN_CHARS 48          /* character threshold at the start, ramping to ... */
#define STREAM_MAX_CHARS 240
#define STREAM_CHAR_FLOOR_MS 350     /* a character-triggered update waits at least this long */

typedef struct stream_state {
    long long started_ms;        /* when the answer began (the ramp starts there) */
    long long last_ms;           /* the last send or edit; started_ms before the first */
    size_t chars_since;          /* characters (code points) since then */
    int updates;                 /* sends and edits so far */
} stream_state;

void stream_begin(stream_state *s, long long now_ms);
long stream_interval_ms(long long elapsed_ms);
size_t stream_char_threshold(long long elapsed_ms);
/* Adds a piece of text and says whether the message should be sent or edited now: when the
 * current interval has passed since the last update, or the character threshold is reached and
 * STREAM_CHAR_FLOOR_MS has passed; the first update as soon as STREAM_MIN_CHARS are there or
 * STREAM_MIN_INTERVAL_MS has passed. Never with nothing new. Marks the update as done when it
 * says yes. */
bool stream_push(stream_state *s, const char *text, size_t len, long long now_ms);
/* The same rule with no new text: whether what came since the last update should be shown by
 * now_ms. Asked while the model is quiet, so a stall holds nothing back past the interval.
 * Marks the update as done when it says yes. */
bool stream_due(stream_state *s, long long now_ms);

/* ---- transaction IDs (txn.c) -------------------------------------------------------------- */

#define TXN_MAX 48

/* "mr<24 hex of SHA-256(event_id \n entity)>.<kind><seq>", e.g. mr0a1b...c9.e3: the same
 * (event, entity, kind, seq) always gives the same ID, so a replay re-sends under the IDs the
 * homeserver already knows. kind: "m" the message, "e" an edit, "f" the final edit, "t" typing;
 * seq < 0 leaves the number out. */
void txn_id(const char *event_id, const char *entity, const char *kind, int seq, char out[TXN_MAX]);

/* ---- replies (reply.c): Matrix content for answers ---------------------------------------- */

typedef struct reply_where {
    const char *room_id;
    const char *trigger;         /* the event answered (m.in_reply_to) */
    const char *thread_root;     /* MSC3440 thread root; NULL: a plain reply (thread_mode room) */
} reply_where;

/* m.room.message m.text content: body, and the thread relation when where has a root. */
json_t *reply_content(const char *body, const reply_where *where);
/* An m.replace edit to body; the gateway fills in the replaced event's ID (m.relates_to.event_id)
 * from the transaction ID the intent names in replaces_txn. */
json_t *reply_edit_content(const char *body);
/* The router's hand-off: "@<display> could you help with this?" with m.mentions of the agent,
 * a matrix.to pill, com.mindroom.original_sender and the thread relation. */
json_t *reply_handoff_content(const roster_entry *agent, const char *original_sender, const reply_where *where);
/* "@<display><text>" mentioning user_id (m.mentions and a matrix.to pill), speaking for
 * original_sender, in where's thread: the hand-off, and a schedule's trigger. */
json_t *reply_mention_content(const char *user_id, const char *display, const char *text, const char *original_sender,
                              const reply_where *where);
/* The outbound_intent (JSON text, malloc'd) for content or typing; NULL when out of memory.
 * replaces_txn (NULL unless an edit) is the transaction ID of the message content replaces. */
char *reply_send_intent(const char *account, const char *room_id, const char *txn, const char *replaces_txn,
                        const char *in_reply_to, json_t *content);
/* The same for an event of another type (m.reaction). */
char *reply_event_intent(const char *account, const char *room_id, const char *txn, const char *event_type,
                         const char *replaces_txn, const char *in_reply_to, json_t *content);
char *reply_typing_intent(const char *account, const char *room_id, const char *txn, bool typing);

/* ---- this process among the agent's workers (workers.c) ----------------------------------- */

#define WORKER_ID_MAX 64
#define WORKER_BOOT_LEN 16           /* hex characters of the per-boot nonce */
#define WORKER_LEASE_MS 10000L       /* a worker whose heartbeat is older than this is dead */
#define WORKER_HEARTBEAT_MS 3000     /* how often a live worker says so */
#define WORKERS_KEY "agent:workers"  /* hash: worker ID -> "<boot> <heartbeat unix ms>" */

/* Who holds a claim: the worker (stable across restarts: MINDROOM_WORKER_ID) and its boot. */
typedef struct agent_self {
    char worker_id[WORKER_ID_MAX + 1];
    char boot[WORKER_BOOT_LEN + 1];
} agent_self;

/* A worker ID is 1 to WORKER_ID_MAX of [A-Za-z0-9._-]. MR_EINVAL names the setting. */
mr_code worker_id_check(const char *id, mr_err *err);
/* worker_id (copied) and a fresh random boot nonce. */
mr_code worker_self_init(const char *worker_id, agent_self *out, mr_err *err);
/* Records me's heartbeat at now_ms (wall clock) in WORKERS_KEY. */
mr_code worker_beat(mr_store *s, const agent_self *me, long long now_ms, mr_err *err);
/* Whether another boot beat under me's worker ID since me last did: a second live process
 * with the same ID (after me's first beat, a predecessor that died never beats again). */
mr_code worker_clash(mr_store *s, const agent_self *me, bool *clash, mr_err *err);
/* The heartbeat (unix ms) in a WORKERS_KEY value; false when it holds none. */
bool worker_beat_of(const char *value, long long *beat_ms);
/* Until when the boot `boot` of worker_id is alive: its last heartbeat plus WORKER_LEASE_MS, or
 * 0 when it is dead (that worker restarted since, never beat, or its lease lapsed by now_ms). */
mr_code worker_alive_until(mr_store *s, const char *worker_id, const char *boot, long long now_ms,
                           long long *until_ms, mr_err *err);

/* ---- holders: a store key one boot of one worker holds (workers.c) ----------------------- */

#define HOLDER_STATE_MAX 8
#define HOLDER_MAX (HOLDER_STATE_MAX + WORKER_ID_MAX + WORKER_BOOT_LEN + 3)

/* "[<state> ]<worker_id> <boot>": a reply claim ("started"), a room's lease ("started" or
 * "queued"), a schedule occurrence being fired (no state). */
typedef struct worker_holder {
    char state[HOLDER_STATE_MAX];  /* "" in the form with none */
    char worker[WORKER_ID_MAX + 1];
    char boot[WORKER_BOOT_LEN + 1];
} worker_holder;

typedef enum holder_whose {
    HOLDER_NONE = 0,             /* names no holder: another value ("done"), or no known form */
    HOLDER_ME,                   /* this boot */
    HOLDER_MY_EARLIER_BOOT,      /* dead: this process replaced it */
    HOLDER_OTHER,                /* another worker, alive or not (holder_alive_until) */
} holder_whose;

/* One attempt at a held key: set-if-absent of this boot's value, and what was there instead. */
typedef struct holder_try {
    const char *key;             /* borrowed */
    long long ttl_ms;
    char mine[HOLDER_MAX];
    size_t mine_len;
    char *held;                  /* the value found when set-if-absent lost; holder_try_free */
    size_t held_len;
    worker_holder h;             /* whom held names, unless whose is HOLDER_NONE */
    holder_whose whose;
} holder_try;

/* me's value in state (NULL: the form with none); its length. */
size_t holder_format(const char *state, const agent_self *me, char out[HOLDER_MAX]);
/* The holder value names when its state is one of states (NULL-terminated; "" for the form with
 * none); false for any other value. */
bool holder_parse(const char *value, const char *const states[], worker_holder *out);
/* Sets key to me's value in state if absent (*won); otherwise reads the value there into t and
 * says whose it is (MR_ENOTFOUND: given up between the two calls). Free t with holder_try_free
 * whatever it returns. */
mr_code holder_take(mr_store *s, const agent_self *me, const char *key, const char *state, const char *const states[],
                    long long ttl_ms, holder_try *t, bool *won, mr_err *err);
/* Until when the holder t found lives: 0 for none, an earlier boot of this worker, or another
 * worker's boot that is dead by now_ms (worker_alive_until); this boot lives while it beats. */
mr_code holder_alive_until(mr_store *s, const holder_try *t, long long now_ms, long long *until_ms, mr_err *err);
/* Replaces the value t found by this boot's, unless it changed meanwhile (*swapped false). */
mr_code holder_take_over(mr_store *s, const holder_try *t, bool *swapped, mr_err *err);
void holder_try_free(holder_try *t);

/* ---- the in-flight record (inflight.c) ---------------------------------------------------- */

#define INFLIGHT_ORDER_LEN 28     /* "<boot ms, 15 digits>.<sequence, 12 digits>" */
#define INFLIGHT_FIELD_MAX (INFLIGHT_ORDER_LEN + 1 + MR_ID_MAX + 1)
#define WORKER_FORGET_MS (3600L * 1000) /* a dead worker with nothing in flight is forgotten */

/* `agent:inflight:<worker_id>` (proto/store.md): a hash of the turns the worker accepted from
 * the bus and has not finished, field "<boot ms>.<sequence>.<room_id>" (zero-padded, so sorting
 * the fields gives the order of acceptance; the room, so a replica looking for rooms to take
 * reads it without parsing the turn) -> the turn as it came. A room ID too long for the field is
 * left out, as in the fields of older releases. */
void inflight_field(long long boot_ms, unsigned long long seq, const char *room_id, char out[INFLIGHT_FIELD_MAX]);
/* The room a field names; NULL when it names none (then the turn says). */
const char *inflight_room(const char *field);
mr_code inflight_put(mr_store *s, const char *worker_id, const char *field, const char *turn, size_t len,
                     mr_err *err);
mr_code inflight_drop(mr_store *s, const char *worker_id, const char *field, mr_err *err);
/* Whether field is still in the worker's record (*held); another worker may have moved it. */
mr_code inflight_holds(mr_store *s, const char *worker_id, const char *field, bool *held, mr_err *err);
/* The worker's record, in order of acceptance. Free with mr_store_hash_free. */
mr_code inflight_list(mr_store *s, const char *worker_id, mr_store_hash *out, mr_err *err);

/* ---- claims (claim.c) --------------------------------------------------------------------- */

#define CLAIM_TTL_MS (7L * 24 * 3600 * 1000)

typedef enum claim_result { CLAIM_WON = 0, CLAIM_TAKEN_OVER, CLAIM_DONE, CLAIM_BUSY } claim_result;

typedef struct claim_outcome {
    claim_result result;
    long long busy_until_ms;     /* BUSY: when the holder's lease lapses unless it beats again */
    const char *why;             /* TAKEN_OVER: whose claim it was, in words for the log */
} claim_outcome;

/* `reply:<event_id>:<entity>` (proto/store.md): set-if-absent to "started <worker> <boot>".
 * A claim already there is DONE; ours (this boot) is WON again; an earlier boot of this worker
 * is dead, so its claim is taken over at once; another worker's is BUSY while its heartbeat
 * lease runs and taken over (compare-and-set) once it lapsed. now_ms is wall-clock time. */
mr_code claim_take(mr_store *s, const agent_self *me, const char *event_id, const char *entity, long long now_ms,
                   claim_outcome *out, mr_err *err);
mr_code claim_done(mr_store *s, const char *event_id, const char *entity, mr_err *err);
/* Gives a claim up after a failure this worker saw, so the turn's next run answers at once
 * (with the same transaction IDs). */
mr_code claim_release(mr_store *s, const char *event_id, const char *entity, mr_err *err);

#endif
