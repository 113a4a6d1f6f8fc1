/* todo.c -- the todo tool: a checklist in TODO.md of the agent's data directory (add, done,
 * reopen, remove, list). */
#include "tools_internal.h"

#include <stdlib.h>
#include <string.h>

#define TOOL "todo"
#define FILE_NAME "TODO.md"
#define TITLE "# Todo"

static const char *const actions[] = {"add", "done", "reopen", "remove", "list", NULL};
static const char *const arg_of[] = {"text", "id", "id", "id", NULL};

static mr_code todo_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out, mr_err *err)
{
    (void)deadline_ms;
    const char *action, *arg;
    mr_code rc = tools_arg_action(args, TOOL, actions, arg_of, &action, &arg, err);
    if (rc != MR_OK)
        return rc;
    bool add = strcmp(action, "add") == 0;
    bool list = strcmp(action, "list") == 0;
    tools_items l;
    rc = tools_items_open(env, TOOL, FILE_NAME, 't', &l, err);
    tools_item *it = NULL;
    char new_id[24] = "";
    if (rc == MR_OK && add) {
        rc = tools_items_add(&l, 't', 0, arg, new_id, err);
    } else if (rc == MR_OK && !list) {
        if (!(it = tools_items_find(&l, arg)))
            rc = mr_err_set(err, MR_ENOTFOUND, "%s: no item has the id '%.32s' (list shows the ids)", TOOL, arg);
        else if (strcmp(action, "remove") == 0)
            tools_items_remove(&l, it);
        else
            it->state = strcmp(action, "done") == 0;
    }
    if (rc == MR_OK && !list)
        rc = tools_items_save(env, TOOL, FILE_NAME, TITLE, &l, err);
    if (rc == MR_OK && !list) {
        mr_strbuf_puts(out, add ? "Added " : "Updated ");
        mr_strbuf_puts(out, add ? new_id : arg);
        mr_strbuf_puts(out, "\n");
    }
    if (rc == MR_OK)
        tools_items_print_all(&l, "The list is empty.", out);
    tools_items_close(&l);
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
