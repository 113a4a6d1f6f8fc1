/* scheduler.c -- the scheduler tool: the agent schedules a task for itself in the conversation's
 * room (once, or repeating), lists the room's schedules, or cancels one; the agent service keeps
 * and fires them (env->schedule). */
#include "tools_internal.h"

#include <string.h>

#include "mindroom/clock.h"

#define TOOL "scheduler"

static const char *const actions[] = {"add", "list", "cancel", NULL};

static mr_code scheduler_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out,
                             mr_err *err)
{
    const char *action, *when = NULL, *task = NULL, *id = NULL;
    mr_code rc = tools_arg_enum(args, TOOL, "action", actions, &action, err);
    bool add = rc == MR_OK && strcmp(action, "add") == 0;
    if (rc == MR_OK && add)
        rc = tools_arg_str(args, TOOL, "when", true, &when, err);
    if (rc == MR_OK && add)
        rc = tools_arg_str(args, TOOL, "task", true, &task, err);
    if (rc == MR_OK && strcmp(action, "cancel") == 0)
        rc = tools_arg_str(args, TOOL, "id", true, &id, err);
    if (rc != MR_OK)
        return rc;
    if (!env->schedule)
        return mr_err_set(err, MR_EPERM, "%s: schedules cannot be made here", TOOL);
    if (mr_clock_mono_ms() >= deadline_ms)
        return mr_err_set(err, MR_EUNAVAIL, "%s: out of time", TOOL);
    rc = env->schedule(env->schedule_ctx, action, when, task, id, out, err);
    if (rc != MR_OK)
        mr_err_prefix(err, "%s", TOOL);
    return rc;
}

const mr_tool_def mr_tool_scheduler = {
    .name = TOOL,
    .description = "Schedule a task for yourself in this room: once ('in 10 minutes', 'tomorrow at 9am') or "
                   "repeating ('every 2 hours', 'every weekday at 8:30', 'weekly on friday', or cron fields "
                   "'30 8 * * 1-5'), in the configured timezone; when it is due, the task is posted to you as a "
                   "message from the person asking now. Also lists the room's schedules, or cancels one by id "
                   "(or 'all').",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"action\":{\"type\":\"string\",\"enum\":[\"add\",\"list\",\"cancel\"]},"
                  "\"when\":{\"type\":\"string\",\"description\":\"add: 'in <n> <seconds|minutes|hours|days>', "
                  "'tomorrow at 3pm', 'at 17:30', 'every <n> <minutes|hours|days>', 'daily at 9am', 'every weekday "
                  "at 8:30', 'every monday at 10am', 'weekly on friday', or five cron fields such as '30 8 * * "
                  "1-5'\"},"
                  "\"task\":{\"type\":\"string\",\"description\":\"add: what to do then\"},"
                  "\"id\":{\"type\":\"string\",\"description\":\"cancel: the schedule's id, e.g. s3, or all\"}},"
                  "\"required\":[\"action\"],\"additionalProperties\":false}",
    .run = scheduler_run,
};
