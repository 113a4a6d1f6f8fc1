/* memory.c -- the memory tool with the file backend: MEMORY.md in the agent's data directory,
 * one line per memory, each naming who asked for it to be kept (add, search, forget, list). */
#include "tools_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOOL "memory"
#define FILE_NAME "MEMORY.md"
#define TITLE "# Memory"
#define SEARCH_MAX 20

static const char *const actions[] = {"add", "search", "forget", "list", NULL};
static const char *const arg_of[] = {"text", "query", "id", NULL};

/* How many words of query text contains, ignoring case. */
static int score(const char *text, const char *query)
{
    int n = 0;
    const char *p = query;
    while (*p) {
        while (*p && isspace((unsigned char)*p))
            p++;
        size_t len = 0;
        while (p[len] && !isspace((unsigned char)p[len]))
            len++;
        for (const char *t = text; len && *t; t++)
            if (strncasecmp(t, p, len) == 0) {
                n++;
                break;
            }
        p += len;
    }
    return n;
}

static mr_code search(tools_items *l, const char *query, mr_strbuf *out)
{
    size_t shown = 0;
    /* Best matches first: those with the most words of the query. */
    for (int want = 64; want > 0 && shown < SEARCH_MAX; want--)
        for (size_t i = 0; i < l->n && shown < SEARCH_MAX; i++)
            if (score(l->v[i].text, query) == want) {
                tools_items_print(&l->v[i], out);
                shown++;
            }
    if (!shown)
        mr_strbuf_puts(out, "No memory matches.");
    return MR_OK;
}

static mr_code memory_apply(const mr_tools_env *env, tools_items *l, const char *action, const char *arg,
                            bool *changed, mr_strbuf *out, mr_err *err)
{
    if (strcmp(action, "add") == 0) {
        char *line = mr_str_printf("%s (from %s)", arg, env->requester ? env->requester : "unknown");
        char new_id[24];
        mr_code rc =
            line ? tools_items_add(l, 'm', -1, line, new_id, err) : mr_err_set(err, MR_ENOMEM, "out of memory");
        free(line);
        if (rc == MR_OK) {
            *changed = true;
            mr_strbuf_puts(out, "Remembered as ");
            mr_strbuf_puts(out, new_id);
        }
        return rc;
    }
    if (strcmp(action, "forget") == 0) {
        tools_item *it = tools_items_find(l, arg);
        if (!it)
            return mr_err_set(err, MR_ENOTFOUND, "%s: no memory has the id '%.32s' (search or list shows the ids)",
                              TOOL, arg);
        tools_items_remove(l, it);
        *changed = true;
        mr_strbuf_puts(out, "Forgot ");
        mr_strbuf_puts(out, arg);
        return MR_OK;
    }
    if (strcmp(action, "search") == 0)
        return search(l, arg, out);
    tools_items_print_all(l, "No memories yet.", out);
    return MR_OK;
}

static tools_items_tool memory_items = {
    .tool = TOOL, .file = FILE_NAME, .title = TITLE, .letter = 'm', .actions = actions, .arg_of = arg_of,
    .apply = memory_apply,
};

const mr_tool_def mr_tool_memory = {
    .name = TOOL,
    .description = "Long-term memory of this agent, kept in MEMORY.md: add a fact worth keeping, search "
                   "memories by words, forget one by its id, or list them all.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"action\":{\"type\":\"string\",\"enum\":[\"add\",\"search\",\"forget\",\"list\"]},"
                  "\"text\":{\"type\":\"string\",\"description\":\"add: what to remember\"},"
                  "\"query\":{\"type\":\"string\",\"description\":\"search: words to look for\"},"
                  "\"id\":{\"type\":\"string\",\"description\":\"forget: the memory's id, e.g. m3\"}},"
                  "\"required\":[\"action\"],\"additionalProperties\":false}",
    .run_bound = tools_items_run,
    .ctx = &memory_items,
};
