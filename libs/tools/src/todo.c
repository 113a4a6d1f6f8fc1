/* todo.c -- the todo tool: a checklist in TODO.md of the agent's data directory (add, done,
 * reopen, remove, list). */
#include "tools_internal.h"

#include <stdlib.h>
#include <string.h>

#define TOOL "todo"
#define FILE_NAME "TODO.md"
#define TITLE "# Todo"

static const char *const actions[] = {"add", "done", "reopen", "remove", "list", NULL};

static mr_code todo_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out, mr_err *err)
{
    (void)deadline_ms;
    const char *action, *text = NULL, *id = NULL;
    mr_code rc = tools_arg_enum(args, TOOL, "action", actions, &action, err);
    bool add = rc == MR_OK && strcmp(action, "add") == 0;
    bool list = rc == MR_OK && strcmp(action, "list") == 0;
    if (rc == MR_OK && add)
        rc = tools_arg_str(args, TOOL, "text", true, &text, err);
    else if (rc == MR_OK && !list)
        rc = tools_arg_str(args, TOOL, "id", true, &id, err);
    if (rc != MR_OK)
        return rc;
    tools_items l;
    tools_items_lock();
    rc = tools_items_load(env, TOOL, FILE_NAME, 't', &l, err);
    tools_item *it = NULL;
    char new_id[24] = "";
    if (rc == MR_OK && add) {
        rc = tools_items_add(&l, 't', 0, text, new_id, err);
    } else if (rc == MR_OK && !list) {
        if (!(it = tools_items_find(&l, id)))
            rc = mr_err_set(err, MR_ENOTFOUND, "%s: no item has the id '%.32s' (list shows the ids)", TOOL, id);
        else if (strcmp(action, "remove") == 0)
            tools_items_remove(&l, it);
        else
            it->state = strcmp(action, "done") == 0;
    }
    if (rc == MR_OK && !list)
        rc = tools_items_save(env, TOOL, FILE_NAME, TITLE, &l, err);
    if (rc == MR_OK && !list) {
        mr_strbuf_puts(out, add ? "Added " : "Updated ");
        mr_strbuf_puts(out, add ? new_id : id);
        mr_strbuf_puts(out, "\n");
    }
    for (size_t i = 0; rc == MR_OK && i < l.n; i++)
        tools_items_print(&l.v[i], out);
    if (rc == MR_OK && l.n == 0)
        mr_strbuf_puts(out, "The list is empty.");
    tools_items_unlock();
    tools_items_free(&l);
    return rc;
}

const mr_tool_def mr_tool_todo = {
    .name = TOOL,
    .description = "This agent's todo list (TODO.md): add an item, mark one done or open again, remove one, "
                   "or list them. Every action answers with the whole list.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"action\":{\"type\":\"string\",\"enum\":[\"add\",\"done\",\"reopen\",\"remove\",\"list\"]},"
                  "\"text\":{\"type\":\"string\",\"description\":\"add: the item\"},"
                  "\"id\":{\"type\":\"string\",\"description\":\"done, reopen, remove: the item's id, e.g. t2\"}},"
                  "\"required\":[\"action\"],\"additionalProperties\":false}",
    .run = todo_run,
};
