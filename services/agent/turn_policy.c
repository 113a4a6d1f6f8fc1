/* turn_policy.c -- who answers a message, as the reference decides it: a mentioned entity
 * answers; a mention of anyone else silences the rest; outside a thread the only eligible entity
 * answers; in a thread the one entity already taking part answers, and once two or more people
 * have posted there an explicit mention is required; with two or more candidates and no mention
 * the router hands over. Pure: the inputs are gathered by the caller. */
#include "agent_internal.h"

#include <string.h>

static bool listed(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

static const char *silent(policy_decision *out, const char *why)
{
    out->kind = POLICY_SILENT;
    out->n = 0;
    return why;
}

/* The answer when no one is addressed: the single eligible entity, or a hand-off. */
static const char *one_or_route(const policy_input *in, policy_decision *out)
{
    if (in->n_eligible == 0)
        return silent(out, "no entity here may answer the sender");
    if (in->n_eligible == 1) {
        out->kind = POLICY_ANSWER;
        out->who[out->n++] = in->eligible[0];
        return "the only entity that may answer";
    }
    if (!in->router_allowed)
        return silent(out, "several entities could answer and the router may not hand over");
    out->kind = POLICY_ROUTE;
    for (size_t i = 0; i < in->n_eligible; i++)
        out->who[out->n++] = in->eligible[i];
    return "several entities could answer: the router picks one";
}

static const char *in_thread(const policy_input *in, policy_decision *out)
{
    if (in->humans >= 2)
        return silent(out, "two or more people posted in the thread: a mention is required");
    const char *taking_part = NULL;
    size_t n = 0;
    for (size_t i = 0; i < in->n_thread_agents; i++) {
        if (listed(in->thread_agents[i], in->eligible, in->n_eligible)) {
            taking_part = in->thread_agents[i];
            n++;
        }
    }
    if (n > 1)
        return silent(out, "several entities take part in the thread: a mention is required");
    if (n == 0)
        return one_or_route(in, out);
    out->kind = POLICY_ANSWER;
    out->who[out->n++] = taking_part;
    return "the entity taking part in the thread";
}

static const char *mentioned(const policy_input *in, policy_decision *out)
{
    const mentions *m = in->mentioned;
    for (size_t i = 0; i < m->n; i++)
        if (listed(m->names[i], in->eligible, in->n_eligible))
            out->who[out->n++] = m->names[i];
    if (out->n == 0)
        return silent(out, "the message mentions someone who does not answer here");
    out->kind = POLICY_ANSWER;
    return "mentioned";
}

void policy_decide(const policy_input *in, const char **who, policy_decision *out)
{
    memset(out, 0, sizeof *out);
    out->who = who;
    const mentions *m = in->mentioned;
    /* Mentioning only the router asks it to hand over, as if no one was mentioned. */
    bool router_only = m->n == 1 && !m->other && strcmp(m->names[0], "router") == 0;
    if ((m->n > 0 || m->other) && !router_only)
        out->why = mentioned(in, out);
    else if (in->relay)
        out->why = silent(out, "a hand-off is answered only by the entity it mentions");
    else if (!in->in_thread)
        out->why = one_or_route(in, out);
    else
        out->why = in_thread(in, out);
}
