/* agent_schedule.h -- schedules (schedule.c) and their chat commands (schedule_cmd.c). */
#ifndef MINDROOM_AGENT_SCHEDULE_H
#define MINDROOM_AGENT_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "agent_internal.h"
#include "mindroom/runtime.h"
#include "mindroom/str.h"
#include "mindroom/tz.h"

#define SCHEDULE_ID_MAX 32
#define SCHEDULE_ORIGIN_MAX 512 /* "tool|<event ID>|<entity>|<n>" */
#define SCHEDULE_TICK_MS 1000       /* how often each process looks for due schedules */

/* A cron expression as bit sets of the values each field allows (schedule_cron.c). */
#define CRON_TEXT_MAX 64
typedef struct cron_expr {
    uint64_t minute;                /* bits 0-59 */
    uint32_t hour;                  /* bits 0-23 */
    uint32_t dom;                   /* bits 1-31 */
    uint16_t month;                 /* bits 1-12 */
    uint8_t dow;                    /* bits 0-6, Sunday 0 */
    bool dom_any, dow_any;          /* the field began with '*': then both day fields must match */
    char text[CRON_TEXT_MAX];       /* the fields as written, or the @macro */
} cron_expr;

/* Five fields, or @hourly/@daily/@weekly/@monthly/@yearly, at the start of text; *used is how
 * far they went (the task follows). MR_EINVAL naming the field at fault, or when it can never
 * fire (30 February). */
mr_code cron_parse(const char *text, cron_expr *out, size_t *used, mr_err *err);
/* The first instant after after_s (seconds) whose wall time in tz matches; -1 when none in 30
 * years. A wall time repeated when clocks go back fires once, a skipped one as if they had not
 * changed yet (mr_tz_instant). */
long long cron_next(const cron_expr *c, const mr_tz *tz, long long after_s);

/* When a schedule fires, and its task: the text after "!schedule" (schedule_when.c). */
typedef struct schedule_spec {
    long long due_ms;               /* the first occurrence, wall clock */
    long long every_ms;             /* a fixed interval; 0: none */
    bool repeats;                   /* every_ms, or cron */
    cron_expr cron;                 /* when cron.text is set: the calendar it repeats on */
    char when[128];                 /* for people: "in 300s", "every 300s", "at 2026-12-08 15:00 (UTC)",
                                       "cron 30 8 * * 1-5 (Europe/Berlin), next 2026-12-08 08:30" */
    const char *task;               /* points into the parsed text */
} schedule_spec;

/* Reads "<when>[,] <task>" at now_ms, calendar times in tz. MR_EINVAL with a message a person
 * can act on: what was not understood, and how to write it. */
mr_code schedule_parse(const char *text, long long now_ms, const mr_tz *tz, schedule_spec *out, mr_err *err);

/* "Scheduled <id>: <when>, for @<display>: <task>", what a new schedule is confirmed with. */
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
    long long every_ms;             /* 0: once, or by cron */
    const char *cron;               /* NULL, or cron fields in config.yaml's timezone */
    const char *origin;             /* the request (command or tool call) it comes from: one
                                       request adds one schedule however often it is handled */
} schedule_new;

/* The zone cron schedules keep their wall times in: config.yaml's timezone (UTC without one). */
mr_code schedule_zone(const mr_runtime *rt, mr_tz **out, mr_err *err);

/* Stores a schedule under a new ID ("s<n>"), or finds the one n->origin already added. */
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
