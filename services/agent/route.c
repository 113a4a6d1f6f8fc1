/* route.c -- the router's hand-off: with two or more candidates and no mention, the router's
 * model picks one (structured output: {entity_name, reasoning}, entity_name limited to the
 * candidates) from the message and the last messages of the thread, and the router posts
 * "@<name> could you help with this?" in the thread, speaking for the original sender. */
#include "agent_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "agent"
#define ROUTER_HISTORY 3

static json_t *choice_schema(const char *const *candidates, size_t n)
{
    json_t *names = json_array();
    for (size_t i = 0; names && i < n; i++)
        json_array_append_new(names, json_string(candidates[i]));
    return json_pack("{s:s, s:{s:{s:s, s:o}, s:{s:s}}, s:[s, s], s:b}", "type", "object", "properties", "entity_name",
                     "type", "string", "enum", names, "reasoning", "type", "string", "required", "entity_name",
                     "reasoning", "additionalProperties", 0);
}

/* "Choose ...\n- name: role\n..." (malloc'd). */
static char *candidates_text(const roster *r, const char *const *candidates, size_t n)
{
    static const char head[] = "Choose the agent that should answer the last message. The agents:\n";
    size_t cap = sizeof head;
    for (size_t i = 0; i < n; i++) {
        const roster_entry *e = roster_by_name(r, candidates[i]);
        const char *role = e->agent ? e->agent->role : e->team->role;
        cap += strlen(e->name) + strlen(role) + 8;
    }
    char *text = malloc(cap);
    if (!text)
        return NULL;
    size_t used = (size_t)snprintf(text, cap, "%s", head);
    for (size_t i = 0; i < n; i++) {
        const roster_entry *e = roster_by_name(r, candidates[i]);
        const char *role = e->agent ? e->agent->role : e->team->role;
        used += (size_t)snprintf(text + used, cap - used, "- %s%s%s\n", e->name, *role ? ": " : "", role);
    }
    return text;
}

static bool is_candidate(const char *name, const char *const *candidates, size_t n)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(candidates[i], name) == 0)
            return true;
    return false;
}

/* The router model's choice among the candidates; NULL with *why (and err) when there is none. */
static const roster_entry *choose(agent_svc *svc, const turn_ctx *t, const char *const *candidates, size_t n,
                                  mr_code *why, bool *no_client, mr_err *err)
{
    const roster *r = &svc->roster;
    const char *client_why = NULL;
    mr_llm_client *client = agent_model(svc, r->cfg->router.model, why, &client_why);
    *no_client = client == NULL;
    if (!client) {
        mr_err_set(err, *why, "%s", client_why);
        return NULL;
    }
    thread_state th = {0};
    prompt_history hist = {0};
    json_t *schema = choice_schema(candidates, n);
    char *context = candidates_text(r, candidates, n);
    *why = schema && context ? thread_load(svc->rt->store, t->turn->room_id, t->root, &th, err)
                             : mr_err_set(err, MR_ENOMEM, "out of memory asking the router");
    if (*why == MR_OK)
        *why = prompt_history_build(&th, r, NULL, t, ROUTER_HISTORY, &hist, err);
    const roster_entry *chosen = NULL;
    mr_llm_response out = {0};
    if (*why == MR_OK) {
        mr_llm_request req = {.context = context, .history = hist.msgs, .n_history = hist.n, .user = t->user_text,
                              .schema_name = "agent_choice", .schema = schema};
        *why = mr_llm_chat(client, &req, &out, err);
    }
    if (*why == MR_OK) {
        const char *name = json_string_value(json_object_get(out.json, "entity_name"));
        if (is_candidate(name, candidates, n))
            chosen = roster_by_name(r, name);
        else
            *why = mr_err_set(err, MR_EINVAL, "the router's model chose \"%s\", not one of the candidates",
                              name ? name : "(nothing)");
    }
    mr_llm_response_clear(&out);
    prompt_history_free(&hist);
    thread_state_free(&th);
    json_decref(schema);
    free(context);
    return chosen;
}

mr_code route_turn(agent_svc *svc, const turn_ctx *t, const char *const *candidates, size_t n, mr_err *err)
{
    const agent_turn *turn = t->turn;
    const roster_entry *router = roster_by_name(&svc->roster, "router");
    mr_store *store = svc->rt->store;
    claim_outcome claim;
    mr_code rc = claim_take(store, svc->self, turn->event_id, router->name, mr_clock_wall_ms(), &claim, err);
    if (rc != MR_OK || claim.result == CLAIM_DONE)
        return rc;
    if (claim.result == CLAIM_BUSY) {
        agent_park(svc, claim.busy_until_ms);
        return MR_OK;
    }
    mr_code why = MR_OK;
    bool no_client = false;
    mr_err cerr = {0};
    const roster_entry *chosen = choose(svc, t, candidates, n, &why, &no_client, &cerr);
    reply_where where = {.room_id = turn->room_id, .trigger = turn->event_id, .thread_root = t->root};
    json_t *content = NULL;
    char *sorry = NULL;
    if (chosen) {
        const char *fields[] = {"event_id", turn->event_id, "chosen", chosen->name, NULL};
        mr_log_write(MR_LOG_INFO, COMPONENT, fields, "handing over");
        content = reply_handoff_content(chosen, turn->sender, &where);
    } else {
        const char *fields[] = {"event_id", turn->event_id, "reason", cerr.msg, NULL};
        mr_log_write(MR_LOG_WARN, COMPONENT, fields, "the router could not choose: answering with an apology");
        sorry = agent_sorry(NULL, agent_reason(why, no_client));
        content = sorry ? reply_content(sorry, &where) : NULL;
    }
    char id[TXN_MAX];
    txn_id(turn->event_id, router->name, "m", -1, id);
    const char *body = json_string_value(json_object_get(content, "body"));
    rc = content ? agent_publish(svc, turn->room_id, reply_send_intent(router->user_id, turn->room_id, id,
                                                                       NULL, turn->event_id, content), err)
                 : mr_err_set(err, MR_ENOMEM, "out of memory handing over %s", turn->event_id);
    if (rc == MR_OK)
        rc = agent_flush(svc, err);
    history_msg m = {.sender = router->user_id, .entity = router->name, .body = body};
    if (rc == MR_OK)
        rc = thread_append(store, turn->room_id, t->root, &m, err);
    if (rc == MR_OK)
        rc = claim_done(store, turn->event_id, router->name, err);
    if (rc != MR_OK)
        claim_release(store, turn->event_id, router->name, NULL);
    json_decref(content);
    free(sorry);
    return rc;
}
