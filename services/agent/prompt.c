/* prompt.c -- a conversation's history as the messages of a model prompt. */
#include "agent_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool left_out(const history_msg *m, const turn_ctx *t)
{
    if (m->entity && strcmp(m->entity, "router") == 0)
        return true;
    return m->event_id && (strcmp(m->event_id, t->turn->event_id) == 0 ||
                           (t->handed_over && strcmp(m->event_id, t->handed_over) == 0));
}

/* "<who>: <body>": people by user ID, entities by display name. malloc'd. */
static char *attributed(const roster *r, const history_msg *m)
{
    const roster_entry *e = m->entity ? roster_by_name(r, m->entity) : NULL;
    const char *who = e ? e->display_name : m->sender;
    size_t n = strlen(who) + strlen(m->body) + 3;
    char *text = malloc(n);
    if (text)
        snprintf(text, n, "%s: %s", who, m->body);
    return text;
}

mr_code prompt_history_build(const thread_state *th, const roster *r, const char *self, const turn_ctx *t,
                             size_t last, prompt_history *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    size_t total = thread_count(th);
    size_t *keep = calloc(total + 1, sizeof *keep);
    out->msgs = calloc(total + 1, sizeof *out->msgs);
    out->owned = calloc(total + 1, sizeof *out->owned);
    if (!keep || !out->msgs || !out->owned) {
        free(keep);
        prompt_history_free(out);
        return mr_err_set(err, MR_ENOMEM, "out of memory building a prompt");
    }
    /* The last `last` messages that count, oldest first. */
    size_t n = 0;
    for (size_t i = total; i-- > 0 && n < last;) {
        history_msg m = thread_message(th, i);
        if (!left_out(&m, t))
            keep[n++] = i;
    }
    mr_code rc = MR_OK;
    while (n-- > 0 && rc == MR_OK) {
        history_msg m = thread_message(th, keep[n]);
        mr_llm_message *msg = &out->msgs[out->n];
        if (self && m.entity && strcmp(m.entity, self) == 0) {
            msg->role = MR_LLM_ASSISTANT;
            msg->content = m.body;
        } else {
            msg->role = MR_LLM_USER;
            msg->content = out->owned[out->n] = attributed(r, &m);
            if (!msg->content)
                rc = mr_err_set(err, MR_ENOMEM, "out of memory building a prompt");
        }
        out->n++;
    }
    free(keep);
    if (rc != MR_OK)
        prompt_history_free(out);
    return rc;
}

void prompt_history_free(prompt_history *p)
{
    for (size_t i = 0; p->owned && i < p->n; i++)
        free(p->owned[i]);
    free(p->owned);
    free(p->msgs);
    memset(p, 0, sizeof *p);
}
