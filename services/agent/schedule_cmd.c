/* schedule_cmd.c -- the chat commands !schedule, !list_schedules and !cancel_schedule: parsed
 * from the message, done in the store, answered by the router in the message's thread. */
#include "agent_run.h"
#include "agent_schedule.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "agent"

typedef enum cmd_kind { CMD_NONE = 0, CMD_SCHEDULE, CMD_LIST, CMD_CANCEL } cmd_kind;

/* The command a body starts with, and where its arguments begin. */
static cmd_kind command_of(const char *body, const char **args)
{
    static const struct { const char *name; cmd_kind kind; } cmds[] = {
        {"!schedule", CMD_SCHEDULE}, {"!list_schedules", CMD_LIST}, {"!cancel_schedule", CMD_CANCEL},
    };
    while (*body && isspace((unsigned char)*body))
        body++;
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        size_t n = strlen(cmds[i].name);
        if (strncmp(body, cmds[i].name, n) == 0 && (!body[n] || isspace((unsigned char)body[n]))) {
            *args = body + n;
            while (**args && isspace((unsigned char)**args))
                (*args)++;
            return cmds[i].kind;
        }
    }
    return CMD_NONE;
}

static bool listed(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Who does the task: the first entity mentioned that may answer here, else the only one. */
static const roster_entry *assignee(const roster *r, const mentions *m, const char *const *eligible, size_t n)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->names[i], "router") != 0 && listed(m->names[i], eligible, n))
            return roster_by_name(r, m->names[i]);
    return n == 1 ? roster_by_name(r, eligible[0]) : NULL;
}

static void do_schedule(agent_svc *svc, const agent_turn *t, const char *args, const mentions *m,
                        const char *const *eligible, size_t n_eligible, mr_strbuf *out)
{
    schedule_spec spec;
    mr_err err = {0};
    mr_tz *tz = NULL;
    const roster_entry *who = assignee(&svc->roster, m, eligible, n_eligible);
    if (schedule_zone(svc->rt, &tz, &err) != MR_OK || schedule_parse(args, mr_clock_wall_ms(), tz, &spec, &err) != MR_OK) {
        mr_strbuf_puts(out, "Not scheduled: ");
        mr_strbuf_puts(out, err.msg);
        mr_tz_free(tz);
        return;
    }
    mr_tz_free(tz);
    if (!who) {
        mr_strbuf_puts(out, "Not scheduled: mention the agent that should do it (@name); more than one could here.");
        return;
    }
    /* The mention that named the agent is not part of the task. */
    const char *task = spec.task;
    if (*task == '@') {
        while (*task && !isspace((unsigned char)*task))
            task++;
        while (*task && isspace((unsigned char)*task))
            task++;
    }
    if (!*task) {
        mr_strbuf_puts(out, "Not scheduled: the task is missing.");
        return;
    }
    const roster_entry *router = roster_by_name(&svc->roster, "router");
    char origin[SCHEDULE_ORIGIN_MAX];
    snprintf(origin, sizeof origin, "command|%s", t->event_id);
    schedule_new n = {.room_id = t->room_id, .thread_root = t->thread_root, .router_user = router->user_id,
                      .entity = who->name, .entity_user = who->user_id, .entity_display = who->display_name,
                      .requester = t->sender, .task = task, .due_ms = spec.due_ms, .every_ms = spec.every_ms,
                      .cron = spec.cron.text[0] ? spec.cron.text : NULL, .origin = origin};
    char id[SCHEDULE_ID_MAX];
    if (schedule_add(svc->rt->store, &n, id, &err) != MR_OK) {
        mr_strbuf_puts(out, "Not scheduled: the store failed; try again.");
        mr_log_warn(COMPONENT, "adding a schedule: %s", err.msg);
        return;
    }
    schedule_confirm(out, id, &spec, who->display_name, task);
}

static void do_cancel(agent_svc *svc, const agent_turn *t, const char *args, mr_strbuf *out)
{
    char which[SCHEDULE_ID_MAX];
    size_t n = 0;
    while (args[n] && !isspace((unsigned char)args[n]))
        n++;
    if (n == 0 || n >= sizeof which) {
        mr_strbuf_puts(out, "Write !cancel_schedule <id> (as !list_schedules shows it), or !cancel_schedule all.");
        return;
    }
    memcpy(which, args, n);
    which[n] = '\0';
    size_t cancelled = 0;
    mr_err err = {0};
    char line[120];
    if (schedule_cancel(svc->rt->store, t->room_id, which, &cancelled, &err) != MR_OK)
        snprintf(line, sizeof line, "Not cancelled: the store failed; try again.");
    else if (cancelled == 0)
        snprintf(line, sizeof line, "No schedule %s in this room.", which);
    else
        snprintf(line, sizeof line, "Cancelled %zu schedule%s.", cancelled, cancelled == 1 ? "" : "s");
    mr_strbuf_puts(out, line);
}

mr_code schedule_command(agent_svc *svc, const agent_turn *t, const char *root, const mentions *m,
                         const char *const *eligible, size_t n_eligible, bool router_allowed, bool *handled,
                         mr_err *err)
{
    const char *args = NULL;
    cmd_kind kind = command_of(t->body, &args);
    *handled = kind != CMD_NONE;
    if (!*handled || !router_allowed)
        return MR_OK;
    const roster_entry *router = roster_by_name(&svc->roster, "router");
    mr_store *store = svc->rt->store;
    claim_outcome claim;
    mr_code rc = claim_take(store, svc->self, t->event_id, router->name, mr_clock_wall_ms(), &claim, err);
    if (rc != MR_OK || claim.result == CLAIM_DONE)
        return rc;
    if (claim.result == CLAIM_BUSY) {
        agent_park(svc, claim.busy_until_ms);
        return MR_OK;
    }
    mr_strbuf text = {0};
    if (kind == CMD_SCHEDULE) {
        do_schedule(svc, t, args, m, eligible, n_eligible, &text);
    } else if (kind == CMD_CANCEL) {
        do_cancel(svc, t, args, &text);
    } else {
        mr_strbuf_puts(&text, "Schedules in this room:");
        mr_err lerr = {0};
        if (schedule_list(store, t->room_id, mr_clock_wall_ms(), &text, &lerr) != MR_OK)
            mr_strbuf_puts(&text, "\n(the store failed; try again)");
    }
    reply_where where = {.room_id = t->room_id, .trigger = t->event_id, .thread_root = root};
    json_t *content = text.failed ? NULL : reply_content(text.s, &where);
    char id[TXN_MAX];
    txn_id(t->event_id, router->name, "m", -1, id);
    rc = content ? agent_publish(svc, t->room_id, reply_send_intent(router->user_id, t->room_id, id, NULL, t->event_id,
                                                                    content), err)
                 : mr_err_set(err, MR_ENOMEM, "out of memory answering %s", t->event_id);
    if (rc == MR_OK)
        rc = agent_flush(svc, err);
    if (rc == MR_OK)
        rc = claim_done(store, t->event_id, router->name, err);
    if (rc != MR_OK)
        claim_release(store, t->event_id, router->name, NULL);
    json_decref(content);
    free(text.s);
    return rc;
}
