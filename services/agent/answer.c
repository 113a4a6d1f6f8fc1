/* answer.c -- one entity answers one turn: claim, typing, the model call streamed into a
 * thread reply (one send, throttled m.replace edits ending in " ⋯", a final edit, each edit
 * naming its message by transaction ID; a long answer goes on in further messages of the thread,
 * each kept under Synapse's event size limit), the reply recorded in the history, the claim
 * marked done. */
#include "agent_run.h"
#include "agent_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "agent"
#define IN_PROGRESS " \xe2\x8b\xaf"     /* " ⋯" */
#define TYPING_REFRESH_MS 15000         /* min(timeout / 2, 15 s) of a 30 s typing notice */
#define HISTORY_PROMPT_DEFAULT 20
/* The most text one message carries, counted as its JSON escapes it: an edit holds it twice (the
 * fallback and m.new_content), and both must stay well under Synapse's 65,536-byte event limit
 * (413 M_TOO_LARGE) with room for the relations and the server's own fields. */
#define PART_MAX_BYTES 24000
/* How far back from the limit a message may end early to end at a line or a word. */
#define PART_BREAK_WINDOW 2000

typedef struct answer_run {
    agent_svc *svc;
    const turn_ctx *t;
    const roster_entry *e;
    reply_where where;
    char *text;                  /* the answer so far */
    size_t len, cap;
    stream_state st;
    size_t part_start;           /* where the text of the current message begins */
    int part;                    /* the current message: 0 is the first */
    bool sent;                   /* the current message is on the bus */
    int edits;
    int typing;                  /* typing notices sent */
    long long typing_ms;         /* when the last "on" went out */
    bool typing_on;              /* an "on" went out, so an "off" must follow */
    bool ticks;                  /* the call runs on_tick while the model is quiet */
    bool ready;                  /* get_ready ran */
    bool first_again;            /* get_ready found the first message begun by an earlier attempt */
    long long ready_ms;          /* when it did: the model's request was out */
    mr_code failed;              /* the first bus or store failure; it cancels the call */
    mr_err err;
} answer_run;

static void txn(const answer_run *a, const char *kind, int seq, char out[TXN_MAX])
{
    txn_id(a->t->turn->event_id, a->e->name, kind, seq, out);
}

/* The current message's transaction ID: the first as before splitting existed, the others by
 * their number, so a replay makes the same messages under the same IDs. */
static void part_txn(const answer_run *a, char out[TXN_MAX])
{
    txn(a, "m", a->part == 0 ? -1 : a->part, out);
}

static void fail(answer_run *a, mr_code rc, const mr_err *err)
{
    if (rc != MR_OK && a->failed == MR_OK) {
        a->failed = rc;
        a->err = *err;
    }
}

static void publish(answer_run *a, char *intent)
{
    mr_err err = {0};
    if (a->failed == MR_OK)
        fail(a, agent_publish(a->svc, a->t->turn->room_id, intent, &err), &err);
    else
        free(intent);
}

static void typing(answer_run *a, bool on)
{
    char id[TXN_MAX];
    txn(a, "t", a->typing++, id);
    publish(a, reply_typing_intent(a->e->user_id, a->t->turn->room_id, id, on));
    a->typing_ms = mr_clock_mono_ms();
    a->typing_on = on;
}

/* Typing goes on once the model has worked typing_delay_ms without finishing, so an answer done
 * sooner publishes no typing at all, neither "on" nor "off"; then it is kept up. A call without
 * ticks (not streamed) cannot look again while the model works, so its typing goes on at once. */
static void keep_typing(answer_run *a, long long now)
{
    if (a->failed != MR_OK || !a->ready)
        return;
    if (a->typing_on ? now - a->typing_ms >= TYPING_REFRESH_MS
                     : !a->ticks || now - a->ready_ms >= a->svc->typing_delay_ms)
        typing(a, true);
}

/* `begun:<txn_id>` of the current message: set before that message goes on the bus, so an
 * attempt after a stop knows its first part may be out, or still on its way to the gateway. */
static void begun_key(const answer_run *a, char key[TXN_MAX + 8])
{
    char id[TXN_MAX];
    part_txn(a, id);
    snprintf(key, TXN_MAX + 8, "begun:%s", id);
}

/* What must be done before anything of the answer goes out, in one store transaction: the
 * person's message written to the thread's history (turn_run.c notes it), where the answer goes
 * recorded (for a send failure's notice), and the first message's `begun:` marker; then the
 * typing delay started. Once, as soon as the model's request is out (on_sent), so it runs while
 * the model works rather than in front of the call; at the latest before the first message. */
static void get_ready(answer_run *a)
{
    if (a->ready)
        return;
    a->ready = true;
    a->ready_ms = mr_clock_mono_ms();
    const agent_turn *turn = a->t->turn;
    mr_store *store = a->svc->rt->store;
    mr_store_op ops[3];
    size_t n = 0;
    char history[HISTORY_KEY_MAX], answer[TXN_MAX + 8], begun[TXN_MAX + 8];
    char *thread_text = NULL, *where = NULL;
    mr_err err = {0};
    bool thread = a->t->th && thread_save_op(turn->room_id, a->t->root, a->t->th, history, &thread_text, &ops[n], &err);
    if (thread)
        n++;
    mr_code rc = a->t->th && a->t->th->unsaved && !thread ? MR_ENOMEM : MR_OK;
    if (rc == MR_OK)
        rc = delivery_record(turn->event_id, a->e->name, a->e->user_id, turn->room_id, a->where.thread_root, answer,
                             &where, &err);
    if (rc == MR_OK) {
        ops[n++] = (mr_store_op){.kind = MR_STORE_OP_SET, .key = answer, .value = where, .len = strlen(where),
                                 .ttl_ms = CLAIM_TTL_MS};
        begun_key(a, begun);
        ops[n++] = (mr_store_op){.kind = MR_STORE_OP_SET_NX, .key = begun, .value = "1", .len = 1,
                                 .ttl_ms = CLAIM_TTL_MS};
        rc = mr_store_batch(store, ops, n, &err);
        a->first_again = ops[n - 1].rc == MR_OK && !ops[n - 1].done;
    }
    mr_err terr = {0};
    mr_code trc = thread ? thread_saved(store, turn->room_id, a->t->root, a->t->th, &ops[0], thread_text, &terr)
                         : MR_OK;
    if (rc == MR_OK && trc != MR_OK) {
        rc = trc;
        err = terr;
    }
    free(where);
    fail(a, rc, &err);
    keep_typing(a, a->ready_ms);
}

static void on_sent(void *ctx)
{
    get_ready(ctx);
}

static bool append(answer_run *a, const char *text, size_t len)
{
    if (a->len + len + 1 > a->cap) {
        size_t cap = (a->len + len + 1) * 2;
        char *grown = realloc(a->text, cap);
        if (!grown)
            return false;
        a->text = grown;
        a->cap = cap;
    }
    memcpy(a->text + a->len, text, len);
    a->len += len;
    a->text[a->len] = '\0';
    return true;
}

/* Marks the current message begun (set-if-absent: one round trip; the first message's, get_ready
 * did); whether an earlier attempt had. */
static bool begun_before(answer_run *a)
{
    if (a->part == 0)
        return a->first_again;
    char key[TXN_MAX + 8];
    mr_err err = {0};
    begun_key(a, key);
    bool won = true;
    if (a->failed == MR_OK)
        fail(a, mr_store_set_nx(a->svc->rt->store, key, "1", 1, CLAIM_TTL_MS, &won, &err), &err);
    return !won;
}

static void send_content(answer_run *a, const char *txn_id, const char *replaces, json_t *content)
{
    if (!content) {
        mr_err err;
        fail(a, mr_err_set(&err, MR_ENOMEM, "out of memory showing an answer"), &err);
        return;
    }
    publish(a, reply_send_intent(a->e->user_id, a->t->turn->room_id, txn_id, replaces, a->t->turn->event_id,
                                 content));
    json_decref(content);
}

/* Bytes c takes in a JSON string. */
static size_t json_cost(unsigned char c)
{
    if (c == '"' || c == '\\' || c == '\n' || c == '\t' || c == '\r' || c == '\b' || c == '\f')
        return 2;
    return c < 0x20 ? 6 : 1;
}

/* Where the current message must end because the text goes on past PART_MAX_BYTES: after the
 * last line break or space near the limit, else at a character boundary; 0 while it all fits.
 * It depends on the text alone, never on how it arrived, so a replay splits it alike. */
static size_t part_end(const answer_run *a)
{
    size_t cost = 0, p = a->part_start;
    while (p < a->len && cost + json_cost((unsigned char)a->text[p]) <= PART_MAX_BYTES)
        cost += json_cost((unsigned char)a->text[p++]);
    if (p == a->len)
        return 0;
    size_t floor = p - a->part_start > PART_BREAK_WINDOW ? p - PART_BREAK_WINDOW : a->part_start;
    for (const char *brk = "\n "; *brk; brk++)
        for (size_t q = p; q > floor; q--)
            if (a->text[q - 1] == *brk)
                return q;
    while (p > a->part_start + 1 && ((unsigned char)a->text[p] & 0xC0) == 0x80)
        p--;
    return p;
}

/* Sends text as the current message (in progress: with " ⋯"), or edits that message to it. */
static void show_part(answer_run *a, const char *text, size_t len, bool final)
{
    char *body = malloc(len + sizeof IN_PROGRESS);
    if (!body) {
        mr_err err;
        fail(a, mr_err_set(&err, MR_ENOMEM, "out of memory showing an answer"), &err);
        return;
    }
    memcpy(body, text, len);
    memcpy(body + len, final ? "" : IN_PROGRESS, final ? 1 : sizeof IN_PROGRESS);
    char first[TXN_MAX], id[TXN_MAX];
    part_txn(a, first);
    if (!a->sent) {
        /* An earlier attempt stopped midway may have put this part on the bus under this
         * transaction ID: sent again, it makes no second event (the gateway and the homeserver
         * know the ID), and an edit follows at once, or a short answer would stay the partial text. */
        bool again = begun_before(a);
        send_content(a, first, NULL, reply_content(body, &a->where));
        a->sent = true;
        if (!again) {
            free(body);
            body = NULL;
        }
    }
    if (body) {
        if (final)
            txn(a, "f", a->part == 0 ? -1 : a->part, id);
        else
            txn(a, "e", ++a->edits, id);
        send_content(a, id, first, reply_edit_content(body));
    }
    free(body);
}

/* Shows the text so far: each message that is full is finished and the rest goes on in the next
 * message of the thread; the last one is in progress unless final. */
static void show(answer_run *a, bool final)
{
    get_ready(a);
    size_t cut;
    while (a->failed == MR_OK && (cut = part_end(a)) != 0) {
        show_part(a, a->text + a->part_start, cut - a->part_start, true);
        a->part_start = cut;
        a->part++;
        a->sent = false;
    }
    if (a->failed == MR_OK && (final || a->len > a->part_start))
        show_part(a, a->text ? a->text + a->part_start : "", a->len - a->part_start, final);
    if (!final) {
        mr_err err = {0};
        /* Out now rather than at the end: the message is meant to be seen while it grows. */
        if (a->failed == MR_OK)
            fail(a, agent_flush(a->svc, &err), &err);
    }
}

static bool on_delta(void *ctx, const char *text, size_t len)
{
    answer_run *a = ctx;
    if (!append(a, text, len)) {
        mr_err err;
        fail(a, mr_err_set(&err, MR_ENOMEM, "out of memory streaming an answer"), &err);
        return false;
    }
    long long now = mr_clock_mono_ms();
    if (stream_push(&a->st, text, len, now))
        show(a, false);
    keep_typing(a, now);
    if (mr_runtime_stopping(a->svc->rt)) {
        /* Left unfinished, not done: the claim is given up and the next start answers again. */
        mr_err err;
        fail(a, mr_err_set(&err, MR_EUNAVAIL, "stopping in the middle of an answer"), &err);
    }
    return a->failed == MR_OK;
}

/* A tool call finished: its block in the current message becomes the finished one, shown at
 * once; a block already in a finished message stays, and the finished one follows. */
static void on_tool_done(void *ctx, const char *pending, const char *done)
{
    answer_run *a = ctx;
    size_t plen = strlen(pending), dlen = strlen(done);
    char *at = NULL;
    for (char *p = a->text ? strstr(a->text + a->part_start, pending) : NULL; p; p = strstr(p + 1, pending))
        at = p;
    if (!at) {
        on_delta(a, "\n\n", 2);
        on_delta(a, done, dlen);
        return;
    }
    size_t off = (size_t)(at - a->text), tail = a->len - off - plen;
    /* Grows the buffer by appending the extra length, then moves the tail into place. */
    if (dlen > plen && !append(a, done, dlen - plen)) {
        mr_err err;
        fail(a, mr_err_set(&err, MR_ENOMEM, "out of memory showing a tool call"), &err);
        return;
    }
    if (dlen < plen)
        a->len -= plen - dlen;
    memmove(a->text + off + dlen, a->text + off + plen, tail);
    memcpy(a->text + off, done, dlen);
    a->text[a->len] = '\0';
    if (a->failed == MR_OK)
        show(a, false);
}

/* While the model is quiet: text that came since the last update goes out once the interval
 * has passed, so a stalled stream shows what it has; the typing notice goes on or is kept up
 * meanwhile. libs/llm ticks about once a second while nothing arrives, so typing shows between
 * the delay and about a second after it. */
static bool on_tick(void *ctx)
{
    answer_run *a = ctx;
    long long now = mr_clock_mono_ms();
    if (a->failed == MR_OK && stream_due(&a->st, now))
        show(a, false);
    keep_typing(a, now);
    return a->failed == MR_OK;
}

static const char *model_of(const roster *r, const roster_entry *e)
{
    if (e->agent)
        return e->agent->model;
    if (e->team->model)
        return e->team->model;
    const roster_entry *first = e->team->agents.len ? roster_by_name(r, e->team->agents.v[0]) : NULL;
    return first && first->agent ? first->agent->model : "default";
}

char *answer_context(agent_svc *svc, const agent_turn *turn, const roster_entry *e, const roster_entry *team)
{
    const char *what = e->team ? "a team of agents answering as one" : "an agent";
    char *context = team ? mr_str_printf("You are %s (%s), %s in a Matrix chat, a member of the team %s: you do "
                                         "the part of the answer your team gives you.",
                                         e->display_name, e->user_id, what, team->display_name)
                         : mr_str_printf("You are %s (%s), %s in a Matrix chat.", e->display_name, e->user_id, what);
    /* The workspace files (context_files, MEMORY.md) follow, as the reference adds them; a team's
     * memory is its own, in its workspace. */
    const mr_agent_cfg as_team = {.name = (char *)e->name};
    const mr_agent_cfg *a = e->agent ? e->agent : &as_team;
    char *workspace = tool_workspace(svc->rt, e->name);
    char *memory = e->agent ? tool_memory_root(svc->rt, e->agent, e->name,
                                               turn->original_sender ? turn->original_sender : turn->sender)
                            : workspace ? strdup(workspace) : NULL;
    char *files = context && workspace && memory ? prompt_files_context(workspace, memory, svc->roster.cfg, a) : NULL;
    char *full = files && *files ? mr_str_printf("%s%s", context, files) : NULL;
    if (full) {
        free(context);
        context = full;
    }
    free(files);
    free(memory);
    free(workspace);
    return context;
}

/* The model call, its answer left in a->text (an apology when it failed). */
static void call_model(answer_run *a)
{
    agent_svc *svc = a->svc;
    const roster_entry *e = a->e;
    const mr_config *cfg = svc->roster.cfg;
    bool room_mode = e->agent && e->agent->thread_mode == MR_THREAD_MODE_ROOM;
    thread_state th = {0};
    prompt_history hist = {0};
    mr_err err = {0};
    /* The turn's own copy of the thread is as fresh as a read: this turn wrote it last. */
    mr_code rc = room_mode || !a->t->th
                     ? thread_load(svc->rt->store, a->t->turn->room_id, room_mode ? HISTORY_ROOM : a->t->root, &th, &err)
                     : MR_OK;
    int runs = e->agent ? e->agent->num_history_runs : 0;
    if (rc == MR_OK)
        rc = prompt_history_build(th.doc ? &th : a->t->th, &svc->roster, e->name, a->t,
                                  runs > 0 ? 2 * (size_t)runs : HISTORY_PROMPT_DEFAULT, &hist, &err);
    if (rc != MR_OK) {
        fail(a, rc, &err);
        thread_state_free(&th);
        return;
    }
    char *context = answer_context(svc, a->t->turn, e, NULL);
    if (!context) {
        fail(a, mr_err_set(&err, MR_ENOMEM, "out of memory writing a prompt"), &err);
        prompt_history_free(&hist);
        thread_state_free(&th);
        return;
    }
    const mr_strlist *instructions = e->agent ? &e->agent->instructions : &e->team->instructions;
    mr_llm_request req = {
        .role = e->agent ? e->agent->role : e->team->role,
        .instructions = (const char *const *)instructions->v,
        .n_instructions = instructions->len,
        .context = context,
        .history = hist.msgs,
        .n_history = hist.n,
        .user = a->t->user_text,
        .stream = cfg->defaults.enable_streaming,
        .on_delta = on_delta,
        .on_tick = on_tick,
        .delta_ctx = a,
        .on_sent = on_sent,
        .sent_ctx = a,
    };
    /* A team's coordinator ticks whether or not its members stream. */
    a->ticks = req.stream || e->team;
    mr_code why = MR_OK;
    const char *no_client = NULL;
    mr_llm_client *client = agent_model(svc, model_of(&svc->roster, e), &why, &no_client);
    mr_llm_response out = {0};
    bool tools = false;
    if (client) {
        tool_hooks hooks = {.on_text = on_delta, .on_done = on_tool_done, .ctx = a,
                            .show = e->agent ? e->agent->show_tool_calls : cfg->defaults.show_tool_calls};
        /* A team's answer goes through its hooks as the tool loop's does; its members may call
         * side by side, so it gets ready first. */
        tools = e->team != NULL;
        if (tools)
            get_ready(a);
        why = e->team ? team_answer(svc, a->t, e, client, &req, &hooks, &out, &err)
                      : answer_with_tools(svc, a->t, e, client, &req, &hooks, &out, &tools, &err);
        if (!tools)
            why = mr_llm_chat(client, &req, &out, &err);
        /* Not streamed: the whole answer arrives at once (the tool loop hands it over itself). */
        if (why == MR_OK && !req.stream && !tools && !append(a, out.content, strlen(out.content)))
            fail(a, mr_err_set(&err, MR_ENOMEM, "out of memory reading an answer"), &err);
    }
    if (a->failed == MR_OK && (why != MR_OK || a->len == 0)) {
        const char *fields[] = {"event_id", a->t->turn->event_id, "entity", e->name, "reason",
                                client ? (why == MR_OK ? "empty answer" : err.msg) : no_client, NULL};
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "model call failed: answering with an apology");
        char *sorry = agent_sorry(a->text, agent_reason(why, !client));
        a->len = 0;
        if (!sorry || !append(a, sorry, strlen(sorry)))
            fail(a, mr_err_set(&err, MR_ENOMEM, "out of memory apologising"), &err);
        free(sorry);
    }
    mr_llm_response_clear(&out);
    free(context);
    prompt_history_free(&hist);
    thread_state_free(&th);
}

/* Records the reply in the conversation it belongs to. */
static void remember(answer_run *a)
{
    bool room_mode = a->e->agent && a->e->agent->thread_mode == MR_THREAD_MODE_ROOM;
    char answer[TXN_MAX];
    txn(a, "", -1, answer);
    history_msg m = {.sender = a->e->user_id, .entity = a->e->name, .body = a->text, .answer = answer};
    mr_err err = {0};
    mr_store *s = a->svc->rt->store;
    const char *room_id = a->t->turn->room_id;
    fail(a, room_mode || !a->t->th ? thread_append(s, room_id, room_mode ? HISTORY_ROOM : a->t->root, &m, &err)
                                   : thread_append_to(s, room_id, a->t->root, a->t->th, &m, &err),
         &err);
}

mr_code answer_as(agent_svc *svc, const turn_ctx *t, const roster_entry *e, mr_err *err)
{
    mr_store *store = svc->rt->store;
    const char *event_id = t->turn->event_id;
    claim_outcome claim;
    mr_code rc = claim_take(store, svc->self, event_id, e->name, mr_clock_wall_ms(), &claim, err);
    if (rc != MR_OK)
        return rc;
    const char *fields[] = {"event_id", event_id, "entity", e->name, NULL};
    if (claim.result == CLAIM_DONE) {
        mr_log_write(MR_LOG_DEBUG, COMPONENT, fields, "already answered");
        return MR_OK;
    }
    if (claim.result == CLAIM_BUSY) {
        agent_park(svc, claim.busy_until_ms);
        return MR_OK;
    }
    if (claim.result == CLAIM_TAKEN_OVER) {
        const char *why[] = {"event_id", event_id, "entity", e->name, "reason", claim.why, NULL};
        mr_log_write(MR_LOG_INFO, COMPONENT, why, "answering again: the earlier attempt was abandoned");
    }
    bool room_mode = e->agent && e->agent->thread_mode == MR_THREAD_MODE_ROOM;
    answer_run a = {.svc = svc, .t = t, .e = e,
                    .where = {.room_id = t->turn->room_id, .trigger = event_id,
                              .thread_root = room_mode ? NULL : t->root}};
    mr_err ferr = {0};
    stream_begin(&a.st, mr_clock_mono_ms());
    call_model(&a);
    if (a.failed == MR_OK)
        show(&a, true);
    if (a.typing_on)
        typing(&a, false);
    /* Before the answer is durable: the room's next turn, which may start before then, reads it. */
    if (a.failed == MR_OK)
        remember(&a);
    if (a.failed == MR_OK)
        fail(&a, agent_answered(svc, event_id, e->name, &ferr), &ferr);
    if (a.failed == MR_OK) {
        mr_log_write(MR_LOG_INFO, COMPONENT, fields, "answered");
    } else {
        *err = a.err;
        mr_err_prefix(err, "answering %s as %s", event_id, e->name);
        /* Answer again at once on the next delivery, under the same transaction IDs. */
        claim_release(store, event_id, e->name, NULL);
    }
    rc = a.failed;
    free(a.text);
    return rc;
}
