/* items.c -- the Markdown item lists MEMORY.md and TODO.md are made of, read and written
 * whole (each is small, and atomic replacement keeps a crash from leaving half a file). */
#include "tools_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t items_lock = PTHREAD_MUTEX_INITIALIZER;

static void items_free(tools_items *l);

static bool parse_line(const char *line, size_t len, char letter, tools_item *out)
{
    if (len < 2 || memcmp(line, "- ", 2) != 0)
        return false;
    const char *p = line + 2, *end = line + len;
    out->state = -1;
    if (end - p >= 4 && (memcmp(p, "[ ] ", 4) == 0 || memcmp(p, "[x] ", 4) == 0)) {
        out->state = p[1] == 'x';
        p += 4;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (!colon || *p != letter || colon - p < 2 || (size_t)(colon - p) >= sizeof out->id || colon + 1 >= end ||
        colon[1] != ' ')
        return false;
    for (const char *d = p + 1; d < colon; d++)
        if (*d < '0' || *d > '9')
            return false;
    memcpy(out->id, p, (size_t)(colon - p));
    out->id[colon - p] = '\0';
    out->text = strndup(colon + 2, (size_t)(end - colon - 2));
    return true;
}

static bool push(tools_items *l, tools_item *it)
{
    tools_item *v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v)
        return false;
    l->v = v;
    l->v[l->n++] = *it;
    long num = strtol(it->id + 1, NULL, 10);
    if (num >= l->next)
        l->next = num + 1;
    return true;
}

/* Takes the lock, then loads the file's items (lines of another shape are kept out: the file is
 * ours). Whatever it returns, items_close ends it. */
static mr_code items_open(const mr_tools_env *env, const char *tool, const char *file, char letter,
                          tools_items *out, mr_err *err)
{
    pthread_mutex_lock(&items_lock);
    memset(out, 0, sizeof *out);
    out->next = 1;
    char *text = NULL;
    mr_code rc = tools_data_read(env, tool, file, &text, err);
    for (char *line = text; rc == MR_OK && line && *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        tools_item it = {0};
        if (parse_line(line, len, letter, &it) && (!it.text || !push(out, &it))) {
            free(it.text);
            rc = mr_err_set(err, MR_ENOMEM, "%s: out of memory reading %s", tool, file);
        }
        line = nl ? nl + 1 : line + len;
    }
    free(text);
    if (rc != MR_OK)
        items_free(out);
    return rc;
}

mr_code tools_items_add(tools_items *l, char letter, int state, const char *text, char id_out[24], mr_err *err)
{
    tools_item it = {.state = state};
    snprintf(it.id, sizeof it.id, "%c%ld", letter, l->next);
    /* One line per item: line breaks in the text would start a line of another shape. */
    it.text = strdup(text);
    for (char *p = it.text; p && *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (!it.text || !push(l, &it)) {
        free(it.text);
        return mr_err_set(err, MR_ENOMEM, "out of memory adding an item");
    }
    memcpy(id_out, it.id, sizeof it.id);
    return MR_OK;
}

tools_item *tools_items_find(tools_items *l, const char *id)
{
    for (size_t i = 0; id && i < l->n; i++)
        if (strcmp(l->v[i].id, id) == 0)
            return &l->v[i];
    return NULL;
}

void tools_items_remove(tools_items *l, tools_item *it)
{
    size_t i = (size_t)(it - l->v);
    free(it->text);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
    l->n--;
}

void tools_items_print(const tools_item *it, mr_strbuf *out)
{
    mr_strbuf_puts(out, "- ");
    if (it->state >= 0)
        mr_strbuf_puts(out, it->state ? "[x] " : "[ ] ");
    mr_strbuf_puts(out, it->id);
    mr_strbuf_puts(out, ": ");
    mr_strbuf_puts(out, it->text);
    mr_strbuf_puts(out, "\n");
}

void tools_items_print_all(const tools_items *l, const char *empty, mr_strbuf *out)
{
    for (size_t i = 0; i < l->n; i++)
        tools_items_print(&l->v[i], out);
    if (!l->n)
        mr_strbuf_puts(out, empty);
}

mr_code tools_items_save(const mr_tools_env *env, const char *tool, const char *file, const char *title,
                         const tools_items *l, mr_err *err)
{
    mr_strbuf b = {0};
    mr_strbuf_puts(&b, title);
    mr_strbuf_puts(&b, "\n\n");
    for (size_t i = 0; i < l->n; i++)
        tools_items_print(&l->v[i], &b);
    mr_code rc = b.failed ? mr_err_set(err, MR_ENOMEM, "%s: out of memory writing %s", tool, file)
                          : tools_data_write(env, tool, file, b.s, b.len, err);
    free(b.s);
    return rc;
}

static void items_free(tools_items *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].text);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static void items_close(tools_items *l)
{
    items_free(l);
    pthread_mutex_unlock(&items_lock);
}

mr_code tools_items_run(void *ctx, const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out,
                        mr_err *err)
{
    (void)deadline_ms;
    const tools_items_tool *t = ctx;
    const char *action, *arg;
    mr_code rc = tools_arg_action(args, t->tool, t->actions, t->arg_of, &action, &arg, err);
    if (rc != MR_OK)
        return rc;
    tools_items l;
    bool changed = false;
    rc = items_open(env, t->tool, t->file, t->letter, &l, err);
    if (rc == MR_OK)
        rc = t->apply(env, &l, action, arg, &changed, out, err);
    if (rc == MR_OK && changed)
        rc = tools_items_save(env, t->tool, t->file, t->title, &l, err);
    items_close(&l);
    return rc;
}
