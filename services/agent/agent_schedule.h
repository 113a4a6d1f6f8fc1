/* agent_schedule.h -- schedules (schedule.c) and their chat commands (schedule_cmd.c). */
#ifndef MINDROOM_AGENT_SCHEDULE_H
#define MINDROOM_AGENT_SCHEDULE_H

#include <stdbool.h>

#include "agent_internal.h"
#include "mindroom/runtime.h"
#include "mindroom/str.h"

#define SCHEDULE_ID_MAX 32
#define SCHEDULE_TICK_MS 1000       /* how often each process looks for due schedules */

/* "in <n> <unit> <task>" or "every <n> <unit> <task>" (the text after "!schedule"). */
typedef struct schedule_spec {
    long long delay_ms;             /* until the first occurrence; the interval when every */
    bool every;
    const char *task;               /* points into the parsed text */
} schedule_spec;

/* MR_EINVAL with a message a person can act on (it says how to write the command). */
mr_code schedule_parse(const char *text, schedule_spec *out, mr_err *err);

/* "Scheduled <id>: in|every <n>s, for @<display>: <task>", what a new schedule is confirmed with. */
void schedule_confirm(mr_strbuf *out, const char *id, const schedule_spec *spec, const char *display,
                      const char *task);

typedef struct schedule_new {
    const char *room_id;
    const char *thread_root;        /* NULL: the room's timeline */
    const char *router_user;        /* the account that posts the trigger */
    const char *entity;             /* who does the task */
    const char *entity_user;
    const char *entity_display;
    const char *requester;          /* who scheduled it: the trigger speaks for them */
    const char *task;
    long long due_ms;               /* wall clock */
    long long every_ms;             /* 0: once */
} schedule_new;

/* Stores a schedule under a new ID ("s<n>"). */
mr_code schedule_add(mr_store *s, const schedule_new *n, char id[SCHEDULE_ID_MAX], mr_err *err);
/* Fires what is due at now_ms (wall clock), each occurrence once across every process: failures
 * are logged and tried again on the next tick. */
void schedule_tick(const mr_runtime *rt, const agent_self *me, long long now_ms);
/* "\n- <id>: <when>, for @<who>: <task>" per schedule of the room. */
mr_code schedule_list(mr_store *s, const char *room_id, long long now_ms, mr_strbuf *out, mr_err *err);
/* Removes the room's schedule `which`, or all of the room's for "all"; *cancelled counts them. */
mr_code schedule_cancel(mr_store *s, const char *room_id, const char *which, size_t *cancelled, mr_err *err);

/* When the turn is a schedule command (!schedule, !list_schedules, !cancel_schedule), the router
 * answers it in the turn's thread and *handled is set; nothing is answered when the router may
 * not answer the sender. eligible: the entities that may answer here (the scheduled one must be
 * one of them). */
struct agent_svc;
struct agent_turn;
mr_code schedule_command(struct agent_svc *svc, const struct agent_turn *t, const char *root, const mentions *m,
                         const char *const *eligible, size_t n_eligible, bool router_allowed, bool *handled,
                         mr_err *err);

#endif
