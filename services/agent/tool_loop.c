/* tool_loop.c -- rounds of model call and tool calls for one answer: the model's calls run side
 * by side, their results go back to it as `tool` messages answering each tool_call_id, until it
 * answers in words or the round bound is reached. */
#include "agent_tools.h"

#include <stdlib.h>
#include <string.h>

#define COMPONENT "agent"

typedef struct loop {
    mr_llm_message *msgs;        /* the conversation after req's history: user, then the rounds */
    size_t n, cap;
    mr_llm_response *answers;    /* every round's answer: the messages borrow their tool calls */
    size_t n_answers;
    mr_tools_call **results;     /* every round's calls: the tool messages borrow their results */
    size_t *n_results;
    const tool_hooks *hooks;
    const mr_llm_request *req;   /* the caller's: its on_tick takes its own delta_ctx */
} loop;

static bool on_delta(void *ctx, const char *text, size_t len)
{
    const loop *l = ctx;
    return l->hooks->on_text(l->hooks->ctx, text, len);
}

/* Each round's request carries the loop as its context: the caller's tick gets its own back. */
static bool on_tick(void *ctx)
{
    const loop *l = ctx;
    return l->req->on_tick(l->req->delta_ctx);
}

static bool push_msg(loop *l, mr_llm_message m)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        mr_llm_message *v = realloc(l->msgs, cap * sizeof *v);
        if (!v)
            return false;
        l->msgs = v;
        l->cap = cap;
    }
    l->msgs[l->n++] = m;
    return true;
}

static void loop_free(loop *l)
{
    for (size_t i = 0; i < l->n_answers; i++) {
        mr_llm_response_clear(&l->answers[i]);
        mr_tools_calls_clear(l->results[i], l->n_results[i]);
        free(l->results[i]);
    }
    free(l->answers);
    free(l->results);
    free(l->n_results);
    free(l->msgs);
}

/* Runs a round's calls: those of the local tool through run_local, the others side by side in
 * mr_tools_run; each keeps its place in calls. */
static mr_code run_round(const tool_hooks *h, const mr_tools_env *env, mr_tools_call *calls, size_t n, mr_err *err)
{
    size_t k = 0;
    for (size_t i = 0; h->local_def && i < n; i++)
        k += calls[i].def == h->local_def;
    if (k == 0)
        return mr_tools_run(env, calls, n, err);
    mr_tools_call *local = calloc(k, sizeof *local), *other = calloc(n - k + 1, sizeof *other);
    mr_code rc = local && other ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory running tool calls");
    for (size_t i = 0, a = 0, b = 0; rc == MR_OK && i < n; i++) {
        if (calls[i].def == h->local_def)
            local[a++] = calls[i];
        else
            other[b++] = calls[i];
    }
    if (rc == MR_OK && n > k)
        rc = mr_tools_run(env, other, n - k, err);
    if (rc == MR_OK)
        rc = h->run_local(h->local_ctx, local, k, err);
    for (size_t i = 0, a = 0, b = 0; local && other && i < n; i++)
        calls[i] = calls[i].def == h->local_def ? local[a++] : other[b++];
    free(local);
    free(other);
    return rc;
}

/* Runs (or, past the bound, refuses) the calls of answer a, shows them, and adds the assistant
 * turn and one tool message per call. */
static mr_code run_calls(loop *l, mr_llm_response *a, const mr_tool_def *const *defs, size_t n_defs,
                         const mr_tools_env *env, bool refuse, int max_rounds, mr_err *err)
{
    size_t n = a->n_tool_calls;
    mr_tools_call *calls = calloc(n, sizeof *calls);
    char **pending = calloc(n, sizeof *pending);
    l->results[l->n_answers - 1] = calls;
    if (!calls || !pending) {
        free(pending);
        return mr_err_set(err, MR_ENOMEM, "out of memory running tool calls");
    }
    l->n_results[l->n_answers - 1] = n;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        calls[i].name = a->tool_calls[i].name;
        calls[i].arguments = a->tool_calls[i].arguments;
        for (size_t d = 0; d < n_defs && calls[i].name; d++)
            if (strcmp(defs[d]->name, calls[i].name) == 0)
                calls[i].def = defs[d];
        if (!l->hooks->show)
            continue;
        pending[i] = tool_show_pending(calls[i].name, calls[i].arguments);
        char *block = pending[i] ? mr_str_printf("\n\n%s\n", pending[i]) : NULL;
        bool (*shown)(void *, const char *, size_t) = l->hooks->on_call ? l->hooks->on_call : l->hooks->on_text;
        ok = ok && block && shown(l->hooks->ctx, block, strlen(block));
        free(block);
    }
    mr_code rc = MR_OK;
    if (refuse) {
        for (size_t i = 0; i < n; i++) {
            calls[i].result = mr_str_printf("error: not run: this answer has used its %d rounds of tool calls; "
                                            "answer with what you have", max_rounds);
            calls[i].failed = true;
            if (!calls[i].result)
                rc = mr_err_set(err, MR_ENOMEM, "out of memory refusing a tool call");
        }
    } else {
        rc = run_round(l->hooks, env, calls, n, err);
    }
    for (size_t i = 0; i < n; i++) {
        const char *fields[] = {"entity", env->entity, "requester", env->requester ? env->requester : "", "tool",
                                calls[i].name ? calls[i].name : "", "outcome", calls[i].failed ? "error" : "ok", NULL};
        mr_log_write(calls[i].failed ? MR_LOG_WARN : MR_LOG_INFO, COMPONENT, fields, "tool call");
        char *done = pending[i] && calls[i].result ? tool_show_done(calls[i].name, calls[i].arguments,
                                                                     calls[i].result)
                                                   : NULL;
        if (done)
            l->hooks->on_done(l->hooks->ctx, pending[i], done);
        free(done);
        free(pending[i]);
    }
    free(pending);
    if (rc != MR_OK)
        return rc;
    const char *said = a->content && *a->content ? a->content : NULL;
    /* Without the blocks between them, what the model says before and after its calls would run
     * together. */
    if (ok && said && !l->hooks->show)
        ok = l->hooks->on_text(l->hooks->ctx, "\n\n", 2);
    ok = ok && push_msg(l, (mr_llm_message){.role = MR_LLM_ASSISTANT, .content = said, .tool_calls = a->tool_calls,
                                            .n_tool_calls = n});
    for (size_t i = 0; ok && i < n; i++)
        ok = push_msg(l, (mr_llm_message){.role = MR_LLM_TOOL, .content = calls[i].result,
                                          .tool_call_id = a->tool_calls[i].id ? a->tool_calls[i].id : ""});
    return ok ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory (or the answer was cancelled) in a tool round");
}

mr_code tool_loop_chat(mr_llm_client *client, const mr_llm_request *req, const mr_tool_def *const *defs,
                       size_t n_defs, const mr_tools_env *env, int max_rounds, const tool_hooks *hooks,
                       mr_llm_response *out, mr_err *err)
{
    loop l = {.hooks = hooks, .req = req};
    mr_llm_tool *tools = calloc(n_defs + 1, sizeof *tools);
    size_t rounds = (size_t)max_rounds + 2;
    l.answers = calloc(rounds, sizeof *l.answers);
    l.results = calloc(rounds, sizeof *l.results);
    l.n_results = calloc(rounds, sizeof *l.n_results);
    mr_code rc = tools && l.answers && l.results && l.n_results ? MR_OK
                                                                  : mr_err_set(err, MR_ENOMEM, "out of memory");
    for (size_t i = 0; rc == MR_OK && i < n_defs; i++) {
        tools[i] = (mr_llm_tool){.name = defs[i]->name, .description = defs[i]->description,
                                 .parameters = json_loads(defs[i]->parameters, 0, NULL)};
        if (!tools[i].parameters)
            rc = mr_err_set(err, MR_EINTERNAL, "the JSON Schema of tool %s does not parse", defs[i]->name);
    }
    /* The whole conversation as history, so rounds can follow the user's message. */
    for (size_t i = 0; rc == MR_OK && i < req->n_history; i++)
        if (!push_msg(&l, req->history[i]))
            rc = mr_err_set(err, MR_ENOMEM, "out of memory");
    if (rc == MR_OK && req->user && !push_msg(&l, (mr_llm_message){.role = MR_LLM_USER, .content = req->user}))
        rc = mr_err_set(err, MR_ENOMEM, "out of memory");
    memset(out, 0, sizeof *out);
    for (int round = 0; rc == MR_OK; round++) {
        mr_llm_request r = *req;
        r.user = NULL;
        r.history = l.msgs;
        r.n_history = l.n;
        r.tools = tools;
        r.n_tools = n_defs;
        r.on_delta = on_delta;
        r.on_tick = req->on_tick ? on_tick : NULL;
        r.delta_ctx = &l;
        bool last = round > max_rounds;
        if (last)
            r.tool_choice = "none";
        mr_llm_response *a = &l.answers[l.n_answers++];
        rc = mr_llm_chat(client, &r, a, err);
        bool said = a->content && *a->content;
        if (rc == MR_OK && !req->stream && said && !hooks->on_text(hooks->ctx, a->content, strlen(a->content)))
            a->cancelled = true;
        if (rc != MR_OK || a->cancelled || a->n_tool_calls == 0 || last) {
            *out = *a;
            memset(a, 0, sizeof *a);
            break;
        }
        rc = run_calls(&l, a, defs, n_defs, env, round == max_rounds, max_rounds, err);
    }
    for (size_t i = 0; tools && i < n_defs; i++)
        json_decref(tools[i].parameters);
    free(tools);
    loop_free(&l);
    return rc;
}
