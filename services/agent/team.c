/* team.c -- a team answers as a team, by its mode. coordinate: the team's model leads, hands
 * tasks to members with delegate_task, then answers. collaborate: every member answers the
 * request side by side, then one call writes the team's answer from theirs. Each member runs on
 * a thread of its own with its own model client, role, instructions and tools, for the turn's
 * requester, within its deadline; its tool progress is queued to the answer's thread, the only
 * one that touches the answer. */
#include "agent_run.h"
#include "agent_tools.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mindroom/thread_name.h"

#define COMPONENT "agent"
#define WAIT_TICK_MS 250             /* how often the answer is kept alive while members work */

static const char delegate_params[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"member\":{\"type\":\"string\",\"description\":\"the member's name, as your team lists it\"},"
    "\"task\":{\"type\":\"string\",\"description\":\"what the member is to do, complete in itself\"}},"
    "\"required\":[\"member\",\"task\"],\"additionalProperties\":false}";

/* Only a team's answer runs delegate_task (tool_hooks.run_local); anywhere else it refuses. */
static mr_code delegate_elsewhere(void *ctx, const mr_tools_env *env, json_t *args, long long deadline_ms,
                                  mr_strbuf *out, mr_err *err)
{
    (void)ctx, (void)env, (void)args, (void)deadline_ms, (void)out;
    return mr_err_set(err, MR_EINVAL, "delegate_task runs only in a team's answer");
}

static const mr_tool_def delegate_def = {
    .name = "delegate_task",
    .description = "Hand a task to one member of your team. The member answers with its own role, instructions "
                   "and tools; it sees the conversation and your task, so write the task complete in itself. Its "
                   "answer comes back as the result. Calls in one round run side by side.",
    .parameters = delegate_params,
    .run_bound = delegate_elsewhere,
};

/* A member's tool call shown in the answer: a pending block (pending NULL, text the block), or a
 * finished one replacing it. */
typedef struct progress {
    char *pending;
    char *text;
    struct progress *next;
} progress;

typedef struct team_run {
    agent_svc *svc;
    const turn_ctx *t;
    const roster_entry *team;
    const mr_llm_request *req;   /* the team's: members get its history, its tick keeps the answer up */
    const tool_hooks *hooks;     /* the answer's */
    tool_settings ts;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    progress *head, **tail;      /* under lock */
    size_t running;              /* under lock */
    atomic_bool cancel;          /* the answer stopped: members stop too */
} team_run;

typedef struct member_job {
    team_run *run;
    const roster_entry *member;  /* NULL: nothing to run (the call was refused) */
    const char *task;
    long long deadline_ms;
    bool late;                   /* stopped at its deadline */
    bool started;
    pthread_t th;
    char *answer;                /* what the team is told (malloc'd) */
    bool failed;
} member_job;

static void queue(member_job *j, const char *pending, const char *text, size_t len)
{
    team_run *r = j->run;
    progress *p = calloc(1, sizeof *p);
    if (p) {
        p->pending = pending ? strdup(pending) : NULL;
        p->text = strndup(text, len);
    }
    if (!p || !p->text || (pending && !p->pending)) {
        /* Only the display of a call is lost; the call and its result are not. */
        if (p) {
            free(p->pending);
            free(p->text);
        }
        free(p);
        return;
    }
    pthread_mutex_lock(&r->lock);
    *r->tail = p;
    r->tail = &p->next;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* Whether the member goes on: not past its deadline, the answer not stopped, the service not
 * stopping. */
static bool member_on(void *ctx)
{
    member_job *j = ctx;
    if (mr_clock_mono_ms() >= j->deadline_ms)
        j->late = true;
    return !j->late && !atomic_load(&j->run->cancel) && !mr_runtime_stopping(j->run->svc->rt);
}

/* The member's words are its result, not the team's answer: only its tool calls are shown. */
static bool member_text(void *ctx, const char *text, size_t len)
{
    (void)text, (void)len;
    return member_on(ctx);
}

static bool member_call(void *ctx, const char *block, size_t len)
{
    queue(ctx, NULL, block, len);
    return member_on(ctx);
}

static void member_done(void *ctx, const char *pending, const char *done)
{
    queue(ctx, pending, done, strlen(done));
}

static char *member_failed(member_job *j, const char *why, const char *detail)
{
    const char *fields[] = {"entity", j->run->team->name, "member", j->member->name, "reason", detail, NULL};
    mr_log_write(MR_LOG_WARN, COMPONENT, fields, "a team member could not answer: the team is told why");
    j->failed = true;
    return mr_str_printf("error: %s could not answer: %s", j->member->name, why);
}

/* The member's answer to its task, or an error text for the team. */
static char *member_answer(member_job *j)
{
    team_run *r = j->run;
    const roster_entry *m = j->member;
    const mr_agent_cfg *a = m->agent;
    const mr_model_cfg *model = mr_config_model(r->svc->roster.cfg, a->model);
    mr_llm_opts opts = {.timeout_ms = r->ts.member_timeout_ms};
    mr_llm_client *client = NULL;
    mr_err err = {0};
    mr_code rc = model ? mr_llm_client_new(model, &opts, &client, &err)
                       : mr_err_set(&err, MR_ENOTFOUND, "no model %s in the config", a->model);
    if (rc != MR_OK)
        return member_failed(j, agent_reason(rc, true), err.msg);
    char *context = answer_context(r->svc, r->t->turn, m, r->team);
    /* Streamed, so the member's deadline is checked while its model writes. */
    mr_llm_request req = {
        .role = a->role,
        .instructions = (const char *const *)a->instructions.v,
        .n_instructions = a->instructions.len,
        .context = context,
        .history = r->req->history,
        .n_history = r->req->n_history,
        .user = j->task,
        .stream = true,
        .on_delta = member_text,
        .on_tick = member_on,
        .delta_ctx = j,
    };
    tool_hooks hooks = {.on_text = member_text, .on_call = member_call, .on_done = member_done, .ctx = j,
                        .show = a->show_tool_calls};
    mr_llm_response out = {0};
    bool used = false;
    rc = context ? answer_with_tools(r->svc, r->t, m, client, &req, &hooks, &out, &used, &err)
                 : mr_err_set(&err, MR_ENOMEM, "out of memory writing a prompt");
    if (rc == MR_OK && !used)
        rc = mr_llm_chat(client, &req, &out, &err);
    char *answer;
    if (rc == MR_OK && j->late) {
        char why[96];
        snprintf(why, sizeof why, "it did not finish within %ld seconds", r->ts.member_timeout_ms / 1000);
        answer = member_failed(j, why, why);
    } else if (rc == MR_OK && out.cancelled) {
        answer = member_failed(j, "the answer was stopped", "cancelled");
    } else if (rc != MR_OK) {
        answer = member_failed(j, agent_reason(rc, false), err.msg);
    } else if (!out.content || !*out.content) {
        answer = member_failed(j, "it gave an empty answer", "empty answer");
    } else {
        answer = strdup(out.content);
    }
    mr_llm_response_clear(&out);
    mr_llm_client_free(client);
    free(context);
    return answer;
}

static void *member_main(void *arg)
{
    member_job *j = arg;
    mr_thread_name("agent-member");
    j->answer = member_answer(j);
    team_run *r = j->run;
    pthread_mutex_lock(&r->lock);
    r->running--;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* Shows what the members queued, on the answer's thread; a refused text stops the members. */
static void deliver(team_run *r, progress *p)
{
    while (p) {
        progress *next = p->next;
        if (!p->pending && !r->hooks->on_text(r->hooks->ctx, p->text, strlen(p->text)))
            atomic_store(&r->cancel, true);
        else if (p->pending)
            r->hooks->on_done(r->hooks->ctx, p->pending, p->text);
        free(p->pending);
        free(p->text);
        free(p);
        p = next;
    }
}

/* Runs the jobs that have a member side by side and waits for them all, showing their tool
 * calls meanwhile. Each job ends with an answer (an error text when it could not run). */
static void members_run(team_run *r, member_job *jobs, size_t n)
{
    long long now = mr_clock_mono_ms();
    for (size_t i = 0; i < n; i++) {
        member_job *j = &jobs[i];
        if (!j->member)
            continue;
        j->run = r;
        j->deadline_ms = now + r->ts.member_timeout_ms;
        pthread_mutex_lock(&r->lock);
        r->running++;
        pthread_mutex_unlock(&r->lock);
        j->started = pthread_create(&j->th, NULL, member_main, j) == 0;
        if (!j->started) {
            pthread_mutex_lock(&r->lock);
            r->running--;
            pthread_mutex_unlock(&r->lock);
            j->answer = member_failed(j, "no thread could be started for it", "pthread_create failed");
        }
    }
    pthread_mutex_lock(&r->lock);
    while (r->running > 0 || r->head) {
        if (!r->head) {
            long long at = mr_clock_mono_ms() + WAIT_TICK_MS;
            struct timespec until = {.tv_sec = at / 1000, .tv_nsec = (at % 1000) * 1000000L};
            int e = pthread_cond_timedwait(&r->cond, &r->lock, &until);
            if (e != 0 && e != ETIMEDOUT)
                break;
        }
        progress *p = r->head;
        r->head = NULL;
        r->tail = &r->head;
        pthread_mutex_unlock(&r->lock);
        deliver(r, p);
        if (r->req->on_tick && !r->req->on_tick(r->req->delta_ctx))
            atomic_store(&r->cancel, true);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < n; i++)
        if (jobs[i].started)
            pthread_join(jobs[i].th, NULL);
    /* Calls that finished after the last look are shown too. */
    deliver(r, r->head);
    r->head = NULL;
    r->tail = &r->head;
}

static bool is_member(const team_run *r, const char *name)
{
    const mr_strlist *agents = &r->team->team->agents;
    for (size_t i = 0; i < agents->len; i++)
        if (strcmp(agents->v[i], name) == 0)
            return true;
    return false;
}

/* The member and task of a delegate_task call, or an error text for the leader in call. */
static const roster_entry *delegate_args(team_run *r, mr_tools_call *call, const char **task, json_t **args)
{
    json_error_t je;
    *args = json_loads(call->arguments && *call->arguments ? call->arguments : "{}", JSON_REJECT_DUPLICATES, &je);
    const char *member = json_string_value(json_object_get(*args, "member"));
    *task = json_string_value(json_object_get(*args, "task"));
    const roster_entry *e = member && is_member(r, member) ? roster_by_name(&r->svc->roster, member) : NULL;
    call->failed = true;
    if (!json_is_object(*args))
        call->result = mr_str_printf("error: delegate_task: the arguments must be a JSON object (%s)",
                                     je.text[0] ? je.text : "another JSON type");
    else if (!member)
        call->result = strdup("error: delegate_task: member (a string) is missing");
    else if (!e || !e->agent)
        call->result = mr_str_printf("error: delegate_task: '%s' is not a member of this team; its members are "
                                     "listed in your instructions", member);
    else if (!*task || !**task)
        call->result = strdup("error: delegate_task: task (a non-empty string) is missing");
    else
        call->failed = false;
    return call->failed ? NULL : e;
}

/* tool_hooks.run_local: the leader's delegate_task calls of one round, side by side. */
static mr_code delegate_run(void *ctx, mr_tools_call *calls, size_t n, mr_err *err)
{
    team_run *r = ctx;
    member_job *jobs = calloc(n + 1, sizeof *jobs);
    json_t **args = calloc(n + 1, sizeof *args);
    if (!jobs || !args) {
        free(jobs);
        free(args);
        return mr_err_set(err, MR_ENOMEM, "out of memory delegating %zu tasks", n);
    }
    for (size_t i = 0; i < n; i++) {
        jobs[i].member = delegate_args(r, &calls[i], &jobs[i].task, &args[i]);
        const char *fields[] = {"entity", r->team->name, "member", jobs[i].member ? jobs[i].member->name : "",
                                "requester", r->t->turn->original_sender ? r->t->turn->original_sender
                                                                         : r->t->turn->sender, NULL};
        if (jobs[i].member)
            mr_log_write(MR_LOG_INFO, COMPONENT, fields, "the team hands a task to a member");
    }
    members_run(r, jobs, n);
    mr_code rc = MR_OK;
    for (size_t i = 0; i < n; i++) {
        if (jobs[i].member) {
            calls[i].result = jobs[i].answer;
            calls[i].failed = jobs[i].failed;
        }
        if (!calls[i].result)
            rc = mr_err_set(err, MR_ENOMEM, "out of memory writing the result of a delegated task");
        json_decref(args[i]);
    }
    free(jobs);
    free(args);
    return rc;
}

/* "\n\n## Your team\n- name (Display): role" for each member. */
static void add_members(mr_strbuf *b, const team_run *r)
{
    const mr_strlist *agents = &r->team->team->agents;
    mr_strbuf_puts(b, "\n\n## Your team's members\n");
    for (size_t i = 0; i < agents->len; i++) {
        const roster_entry *m = roster_by_name(&r->svc->roster, agents->v[i]);
        if (!m || !m->agent)
            continue;
        mr_strbuf_puts(b, "- ");
        mr_strbuf_puts(b, m->name);
        mr_strbuf_puts(b, " (");
        mr_strbuf_puts(b, m->display_name);
        mr_strbuf_puts(b, *m->agent->role ? "): " : ")");
        mr_strbuf_puts(b, m->agent->role);
        mr_strbuf_puts(b, "\n");
    }
}

/* The leader's loop: delegate_task, and the memory tool in the team's own workspace with the
 * file backend. */
static mr_code coordinate(team_run *r, mr_llm_client *client, mr_llm_request *req, mr_llm_response *out, mr_err *err)
{
    const mr_config *cfg = r->svc->roster.cfg;
    const mr_tool_def *defs[2] = {&delegate_def};
    size_t n = 1;
    if (cfg->memory.backend && strcmp(cfg->memory.backend, "file") == 0 && mr_tools_find("memory"))
        defs[n++] = mr_tools_find("memory");
    const agent_turn *turn = r->t->turn;
    char *workspace = tool_workspace(r->svc->rt, r->team->name);
    if (!workspace)
        return mr_err_set(err, MR_ENOMEM, "out of memory preparing the team's tools");
    mr_tools_env env = {
        .entity = r->team->name,
        .requester = turn->original_sender ? turn->original_sender : turn->sender,
        .room_id = turn->room_id,
        .thread_root = r->t->root,
        .data_dir = workspace,
        .timeout_ms = r->ts.timeout_ms,
        .max_output = r->ts.max_output,
    };
    tool_hooks hooks = *r->hooks;
    hooks.local_def = &delegate_def;
    hooks.run_local = delegate_run;
    hooks.local_ctx = r;
    mr_code rc = tool_loop_chat(client, req, defs, n, &env, r->ts.max_rounds, &hooks, out, err);
    free(workspace);
    return rc;
}

/* Every member answers the request, then one call writes the team's answer from theirs. */
static mr_code collaborate(team_run *r, mr_llm_client *client, mr_llm_request *req, mr_strbuf *context,
                           mr_llm_response *out, mr_err *err)
{
    const mr_strlist *agents = &r->team->team->agents;
    member_job *jobs = calloc(agents->len + 1, sizeof *jobs);
    if (!jobs)
        return mr_err_set(err, MR_ENOMEM, "out of memory asking the team's members");
    for (size_t i = 0; i < agents->len; i++) {
        const roster_entry *m = roster_by_name(&r->svc->roster, agents->v[i]);
        jobs[i].member = m && m->agent ? m : NULL;
        jobs[i].task = r->t->user_text;
    }
    members_run(r, jobs, agents->len);
    mr_strbuf_puts(context, "\n\n## What your members answered\n");
    for (size_t i = 0; i < agents->len; i++) {
        if (!jobs[i].member)
            continue;
        mr_strbuf_puts(context, "\n### ");
        mr_strbuf_puts(context, jobs[i].member->display_name);
        mr_strbuf_puts(context, " (");
        mr_strbuf_puts(context, jobs[i].member->name);
        mr_strbuf_puts(context, ")\n");
        mr_strbuf_puts(context, jobs[i].answer ? jobs[i].answer : "error: out of memory reading its answer");
        mr_strbuf_puts(context, "\n");
        free(jobs[i].answer);
    }
    free(jobs);
    mr_strbuf_puts(context, "\nWrite your team's one answer to the user from your members' answers: keep what "
                            "they found, say where they disagree, and say so when a member could not answer.");
    if (context->failed)
        return mr_err_set(err, MR_ENOMEM, "out of memory writing the team's prompt");
    if (atomic_load(&r->cancel)) {
        memset(out, 0, sizeof *out);
        out->cancelled = true;
        return MR_OK;
    }
    req->context = context->s;
    mr_code rc = mr_llm_chat(client, req, out, err);
    /* As the tool loop does: an answer not streamed reaches the hooks whole. */
    if (rc == MR_OK && !req->stream && out->content && *out->content &&
        !r->hooks->on_text(r->hooks->ctx, out->content, strlen(out->content)))
        out->cancelled = true;
    return rc;
}

mr_code team_answer(agent_svc *svc, const turn_ctx *t, const roster_entry *e, mr_llm_client *client,
                    const mr_llm_request *req, const tool_hooks *hooks, mr_llm_response *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    team_run r = {.svc = svc, .t = t, .team = e, .req = req, .hooks = hooks};
    r.tail = &r.head;
    atomic_init(&r.cancel, false);
    mr_code rc = tool_settings_read(svc->rt, &r.ts, err);
    if (rc != MR_OK)
        return rc;
    pthread_condattr_t ca;
    /* Waits are on the monotonic clock, as the members' deadlines are. */
    bool sync = pthread_condattr_init(&ca) == 0;
    sync = sync && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_mutex_init(&r.lock, NULL) == 0;
    if (sync && pthread_cond_init(&r.cond, &ca) != 0) {
        pthread_mutex_destroy(&r.lock);
        sync = false;
    }
    pthread_condattr_destroy(&ca);
    if (!sync)
        return mr_err_set(err, MR_EINTERNAL, "cannot set up the wait for the members of %s", e->name);
    mr_strbuf context = {0};
    mr_strbuf_puts(&context, req->context ? req->context : "");
    add_members(&context, &r);
    bool lead = e->team->mode == MR_TEAM_COORDINATE;
    if (lead)
        mr_strbuf_puts(&context, "\nYou lead this team. Hand a member a task with delegate_task when its role fits, "
                                 "then answer the user yourself from what your members found.");
    mr_llm_request team_req = *req;
    team_req.context = context.s;
    if (context.failed)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory writing the team's prompt");
    else if (lead)
        rc = coordinate(&r, client, &team_req, out, err);
    else
        rc = collaborate(&r, client, &team_req, &context, out, err);
    free(context.s);
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.lock);
    return rc;
}
