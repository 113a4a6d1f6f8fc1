/* answer_tools.c -- an answer with tools: the agent's tools and their environment (who asked,
 * where, the agent's data directory and workspace), matrix_message and thread_summary sends put
 * on the bus as the agent's own intents, thread histories for thread_summary, and the tool loop. */
#include "agent_run.h"
#include "agent_schedule.h"
#include "agent_tools.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tool_sender {
    agent_svc *svc;
    const turn_ctx *t;
    const roster_entry *e;
    atomic_int seq;
    atomic_int schedules; /* added by this answer: the n-th names its origin */
} tool_sender;

/* Transaction IDs "x<n>" of the answer's event and entity: a replay sends under the same IDs. */
static mr_code send_event(void *ctx, const char *room_id, const char *event_type, json_t *content, mr_err *err)
{
    tool_sender *s = ctx;
    char id[TXN_MAX];
    txn_id(s->t->turn->event_id, s->e->name, "x", atomic_fetch_add(&s->seq, 1), id);
    mr_code rc = agent_publish(s->svc, room_id, reply_event_intent(s->e->user_id, room_id, id, event_type, NULL,
                                                                   NULL, content), err);
    return rc == MR_OK ? agent_flush(s->svc, err) : rc;
}

/* The scheduler tool: schedules of this room, the agent doing the task for the requester. */
static mr_code schedule_for(void *ctx, const char *action, const char *when, const char *task, const char *id,
                            mr_strbuf *out, mr_err *err)
{
    tool_sender *s = ctx;
    mr_store *store = s->svc->rt->store;
    const agent_turn *turn = s->t->turn;
    if (strcmp(action, "list") == 0) {
        mr_strbuf_puts(out, "Schedules in this room:");
        return schedule_list(store, turn->room_id, mr_clock_wall_ms(), out, err);
    }
    if (strcmp(action, "cancel") == 0) {
        size_t n = 0;
        mr_code rc = schedule_cancel(store, turn->room_id, id, &n, err);
        if (rc == MR_OK && n == 0)
            return mr_err_set(err, MR_ENOTFOUND, "no schedule %s in this room (list shows the ids)", id);
        if (rc == MR_OK)
            mr_strbuf_puts(out, n == 1 ? "Cancelled 1 schedule." : "Cancelled the room's schedules.");
        return rc;
    }
    char *text = mr_str_printf("%s, %s", when, task);
    schedule_spec spec = {0};
    mr_tz *tz = NULL;
    mr_code rc = text ? schedule_zone(s->svc->rt, &tz, err) : mr_err_set(err, MR_ENOMEM, "out of memory");
    if (rc == MR_OK)
        rc = schedule_parse(text, mr_clock_wall_ms(), tz, &spec, err);
    mr_tz_free(tz);
    const roster_entry *router = roster_by_name(&s->svc->roster, "router");
    bool room_mode = s->e->agent->thread_mode == MR_THREAD_MODE_ROOM;
    char origin[SCHEDULE_ORIGIN_MAX];
    snprintf(origin, sizeof origin, "tool|%s|%s|%d", turn->event_id, s->e->name, atomic_fetch_add(&s->schedules, 1));
    schedule_new n = {.room_id = turn->room_id, .thread_root = room_mode ? NULL : s->t->root,
                      .router_user = router->user_id, .entity = s->e->name, .entity_user = s->e->user_id,
                      .entity_display = s->e->display_name,
                      .requester = turn->original_sender ? turn->original_sender : turn->sender,
                      .task = rc == MR_OK ? spec.task : "", .due_ms = spec.due_ms, .every_ms = spec.every_ms,
                      .cron = spec.cron.text[0] ? spec.cron.text : NULL, .origin = origin};
    char sid[SCHEDULE_ID_MAX];
    if (rc == MR_OK)
        rc = schedule_add(store, &n, sid, err);
    if (rc == MR_OK)
        schedule_confirm(out, sid, &spec, s->e->display_name, spec.task);
    free(text);
    return rc;
}

/* thread_summary: the thread's history as the agent keeps it in the store (thread_state.c). */
static mr_code thread_for(void *ctx, const char *room_id, const char *root, json_t **messages, mr_err *err)
{
    tool_sender *s = ctx;
    thread_state th;
    mr_code rc = thread_load(s->svc->rt->store, room_id, root, &th, err);
    if (rc != MR_OK)
        return rc;
    size_t n = thread_count(&th);
    *messages = n ? json_array() : NULL;
    for (size_t i = 0; rc == MR_OK && i < n; i++) {
        history_msg m = thread_message(&th, i);
        json_t *o = json_pack("{s:s, s:s}", "sender", m.sender, "body", m.body);
        if (!o || (m.event_id && json_object_set_new(o, "event_id", json_string(m.event_id)) != 0) ||
            json_array_append_new(*messages, o) != 0)
            rc = mr_err_set(err, MR_ENOMEM, "out of memory reading the thread %s", root);
    }
    thread_state_free(&th);
    if (rc == MR_OK && !n)
        rc = mr_err_set(err, MR_ENOTFOUND, "no history of the thread %s in %s", root, room_id);
    if (rc != MR_OK) {
        json_decref(*messages);
        *messages = NULL;
    }
    return rc;
}

mr_code answer_with_tools(agent_svc *svc, const turn_ctx *t, const roster_entry *e, mr_llm_client *client,
                          const mr_llm_request *req, const tool_hooks *hooks, mr_llm_response *out, bool *used,
                          mr_err *err)
{
    tool_settings ts;
    mr_code rc = tool_settings_read(svc->rt, &ts, err);
    const mr_tool_def *defs[TOOLS_PER_AGENT_MAX];
    size_t n = rc == MR_OK && e->agent ? tool_defs_for(svc->roster.cfg, e->agent, &ts, defs, TOOLS_PER_AGENT_MAX) : 0;
    if (rc == MR_OK && e->agent && svc->mcp) {
        n = mcp_hub_defs(svc->mcp, &e->agent->tools, defs, n, TOOLS_PER_AGENT_MAX);
        n = mcp_hub_defs(svc->mcp, &svc->roster.cfg->defaults.tools, defs, n, TOOLS_PER_AGENT_MAX);
    }
    *used = n > 0;
    if (!n)
        return rc;
    const char *requester = t->turn->original_sender ? t->turn->original_sender : t->turn->sender;
    char *workspace = tool_memory_root(svc->rt, e->agent, e->name, requester);
    tool_sender sender = {.svc = svc, .t = t, .e = e};
    atomic_init(&sender.seq, 0);
    const mr_config *cfg = svc->roster.cfg;
    mr_tools_oauth oauth = {.store = svc->rt->store, .providers = cfg->oauth_providers,
                            .n_providers = cfg->n_oauth_providers, .dotenv = &svc->rt->env,
                            .public_url = ts.public_url};
    mr_tools_env env = {
        .entity = e->name,
        .requester = requester,
        .room_id = t->turn->room_id,
        .thread_root = e->agent->thread_mode == MR_THREAD_MODE_ROOM ? NULL : t->root,
        .data_dir = workspace,
        .workspace = ts.file_and_shell ? workspace : NULL,
        .website_private_ok = ts.website_private_ok,
        .timeout_ms = ts.timeout_ms,
        .max_output = ts.max_output,
        .send = send_event,
        .send_ctx = &sender,
        .schedule = schedule_for,
        .schedule_ctx = &sender,
        .oauth = &oauth,
        .thread = thread_for,
        .thread_ctx = &sender,
    };
    if (!workspace)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory preparing tools");
    else
        rc = tool_loop_chat(client, req, defs, n, &env, ts.max_rounds, hooks, out, err);
    free(workspace);
    return rc;
}
