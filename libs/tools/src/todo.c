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

static mr_code todo_apply(const mr_tools_env *env, tools_items *l, const char *action, const char *arg,
                          bool *changed, mr_strbuf *out, mr_err *err)
{
    (void)env;
    bool add = strcmp(action, "add") == 0;
    bool list = strcmp(action, "list") == 0;
    mr_code rc = MR_OK;
    tools_item *it = NULL;
    char new_id[24] = "";
    if (add) {
        rc = tools_items_add(l, 't', 0, arg, new_id, err);
    } else if (!list) {
        if (!(it = tools_items_find(l, arg)))
            rc = mr_err_set(err, MR_ENOTFOUND, "%s: no item has the id '%.32s' (list shows the ids)", TOOL, arg);
        else if (strcmp(action, "remove") == 0)
            tools_items_remove(l, it);
        else
            it->state = strcmp(action, "done") == 0;
    }
    if (rc != MR_OK)
        return rc;
    if (!list) {
        *changed = true;
        mr_strbuf_puts(out, add ? "Added " : "Updated ");
        mr_strbuf_puts(out, add ? new_id : arg);
        mr_strbuf_puts(out, "\n");
    }
    tools_items_print_all(l, "The list is empty.", out);
    return MR_OK;
}

static tools_items_tool todo_items = {
    .tool = TOOL, .file = FILE_NAME, .title = TITLE, .letter = 't', .actions = actions, .arg_of = arg_of,
    .apply = todo_apply,
};

const mr_tool_def mr_tool_todo = {
    .name = TOOL,
    .description = "This agent's todo list (TODO.md): add an item, mark one done or open again, remove one, "
                   "or list them. Every action answers with the whole list.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"action\":{\"type\":\"string\",\"enum\":[\"add\",\"done\",\"reopen\",\"remove\",\"list\"]},"
                  "\"text\":{\"type\":\"string\",\"description\":\"add: the item\"},"
                  "\"id\":{\"type\":\"string\",\"description\":\"done, reopen, remove: the item's id, e.g. t2\"}},"
                  "\"required\":[\"action\"],\"additionalProperties\":false}",
    .run_bound = tools_items_run,
    .ctx = &todo_items,
};
