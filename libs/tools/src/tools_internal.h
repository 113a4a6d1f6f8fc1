/* tools_internal.h -- what the files of libs/tools share: each tool's definition, argument
 * readers that name the argument at fault, and the workspace path checks. */
#ifndef MINDROOM_TOOLS_INTERNAL_H
#define MINDROOM_TOOLS_INTERNAL_H

#include "mindroom/tools.h"

extern const mr_tool_def mr_tool_matrix_message;
extern const mr_tool_def mr_tool_memory;
extern const mr_tool_def mr_tool_todo;
extern const mr_tool_def mr_tool_website;
extern const mr_tool_def mr_tool_file;
extern const mr_tool_def mr_tool_shell;
extern const mr_tool_def mr_tool_scheduler;
extern const mr_tool_def mr_tool_oauth_api;
extern const mr_tool_def mr_tool_thread_summary;
extern const mr_tool_def mr_tool_coding;

/* args[key] as a non-empty string; MR_EINVAL naming the tool and key when it is missing (and
 * required) or not a non-empty string. *out is NULL for an absent optional argument. */
mr_code tools_arg_str(json_t *args, const char *tool, const char *key, bool required, const char **out,
                      mr_err *err);
/* args[key] as a string, empty allowed (file content), of at most max bytes. */
mr_code tools_arg_text(json_t *args, const char *tool, const char *key, size_t max, const char **out, mr_err *err);
/* args[key] as one of the NULL-terminated choices. */
mr_code tools_arg_enum(json_t *args, const char *tool, const char *key, const char *const *choices,
                       const char **out, mr_err *err);
/* args.action as one of the NULL-terminated actions and, where arg_of (one entry an action)
 * names an argument for it, that argument as a required non-empty string; *arg is NULL for an
 * action that takes none. */
mr_code tools_arg_action(json_t *args, const char *tool, const char *const *actions, const char *const *arg_of,
                         const char **action, const char **arg, mr_err *err);
/* args[key] as an integer in [min, max], def when absent. */
mr_code tools_arg_int(json_t *args, const char *tool, const char *key, long long min, long long max,
                      long long def, long long *out, mr_err *err);

/* "$" and 1 to 254 printable ASCII characters, as the spec's event IDs of every room version. */
bool tools_event_id_ok(const char *id);

/* Reads a whole text file of the agent's data directory (NULL and len 0 when absent). */
mr_code tools_data_read(const mr_tools_env *env, const char *tool, const char *name, char **text, mr_err *err);
/* Replaces that file atomically (0600: it holds what people told the agent). */
mr_code tools_data_write(const mr_tools_env *env, const char *tool, const char *name, const char *text,
                         size_t len, mr_err *err);

/* Opens rel (relative, no NUL) under the workspace directory fd, one component at a time with
 * O_NOFOLLOW, refusing "..", absolute paths and symlinks anywhere on the way, so nothing it
 * opens lies outside the workspace. flags apply to the last component (O_CREAT: mode 0600).
 * Returns the fd, or -1 with err naming the path. */
int tools_ws_open(int root_fd, const char *tool, const char *rel, int flags, mr_err *err);
/* The workspace directory itself, opened O_DIRECTORY | O_NOFOLLOW. -1 with err when env has
 * none (the tool is off) or it cannot be opened. */
int tools_ws_root(const mr_tools_env *env, const char *tool, mr_err *err);
/* Lists the directory dir (taken: closed here) into out, one name a line, directories with a
 * trailing "/", symlinks marked " (link)", at most max names; "(empty)" when there are none.
 * path only names the directory in an error. */
mr_code tools_ws_list(int dir, const char *tool, const char *path, size_t max, mr_strbuf *out, mr_err *err);


/* ---- Markdown item lists (items.c): MEMORY.md and TODO.md ---- */

/* One line "- <id>: <text>", or for a checklist "- [ ] <id>: <text>" / "- [x] ...". */
typedef struct tools_item {
    char id[24];                 /* "<letter><number>", e.g. "m3" */
    int state;                   /* -1: no box; 0: open; 1: done */
    char *text;
} tools_item;

typedef struct tools_items {
    tools_item *v;
    size_t n;
    long next;                   /* the next number to give */
} tools_items;

/* Appends an item with the next ID (written to id_out) and the given state. */
mr_code tools_items_add(tools_items *l, char letter, int state, const char *text, char id_out[24], mr_err *err);
/* The item with that ID, or NULL. */
tools_item *tools_items_find(tools_items *l, const char *id);
void tools_items_remove(tools_items *l, tools_item *it);
/* Writes the list back under a title line. */
mr_code tools_items_save(const mr_tools_env *env, const char *tool, const char *file, const char *title,
                         const tools_items *l, mr_err *err);
/* Appends "- <id>: <text>" lines (with boxes when state >= 0) to out. */
void tools_items_print(const tools_item *it, mr_strbuf *out);
/* Every item of l as tools_items_print writes it, or empty when there is none. */
void tools_items_print_all(const tools_items *l, const char *empty, mr_strbuf *out);

/* A tool over one item list in the data directory (memory, todo). */
typedef struct tools_items_tool {
    const char *tool, *file, *title;
    char letter;                      /* of the item IDs: m1, t2 */
    const char *const *actions;       /* the values of args.action */
    const char *const *arg_of;        /* the one argument each action takes, or NULL */
    /* Does action with arg to l and writes the answer to out; sets *changed when l is to be
     * saved (an answer with an error or a failed save is not shown). */
    mr_code (*apply)(const mr_tools_env *env, tools_items *l, const char *action, const char *arg, bool *changed,
                     mr_strbuf *out, mr_err *err);
} tools_items_tool;

/* The run_bound of an item-list tool whose ctx is its tools_items_tool: reads the action and its
 * argument, loads the list, applies the action and saves the list when it changed, all under one
 * lock in this process, so parallel calls of a round do not lose each other's changes. */
mr_code tools_items_run(void *ctx, const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out,
                        mr_err *err);

#endif
