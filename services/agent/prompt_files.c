/* prompt_files.c -- what the agent's workspace adds to its system prompt, as the reference does:
 * the agent's context_files (paths relative to the workspace) under "Personality Context", and,
 * with the file memory backend, the start of MEMORY.md under a header naming it. Files are read
 * with the workspace checks (no "..", no symbolic links). */
#include "agent_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/log.h"

#define COMPONENT "agent"
#define CONTEXT_FILE_MAX (256u * 1024u)
#define MEMORY_FILE_MAX (1024u * 1024u)
#define MEMORY_LINES_MAX 200       /* the reference's memory.file.max_entrypoint_lines */

static void skipped(const char *agent, const char *file, const mr_err *err)
{
    const char *fields[] = {"entity", agent, "file", file, "reason", err->msg, NULL};
    mr_log_write(MR_LOG_WARN, COMPONENT, fields, "a context file was left out of the prompt");
}

/* The first MEMORY_LINES_MAX lines of text, with a note when there are more. */
static void add_memory(mr_strbuf *b, const char *text)
{
    const char *p = text;
    size_t lines = 0;
    while (*p && lines < MEMORY_LINES_MAX) {
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
        lines++;
    }
    mr_strbuf_add(b, text, (size_t)(p - text));
    if (*p) {
        size_t total = lines;
        for (const char *q = p; *q; q++)
            total += *q == '\n' || (!q[1] && *q != '\n');
        char note[160];
        snprintf(note, sizeof note, "\n[MEMORY.md: %zu of %zu lines shown; read the file for the rest]", lines, total);
        mr_strbuf_puts(b, note);
    }
}

char *prompt_files_context(const char *workspace, const char *memory_root, const mr_config *cfg,
                           const mr_agent_cfg *agent)
{
    mr_strbuf b = {0};
    for (size_t i = 0; i < agent->context_files.len; i++) {
        const char *rel = agent->context_files.v[i];
        char *text = NULL;
        size_t len = 0;
        mr_err err = {0};
        if (mr_tools_workspace_read(workspace, rel, CONTEXT_FILE_MAX, &text, &len, &err) != MR_OK) {
            skipped(agent->name, rel, &err);
            continue;
        }
        mr_strbuf_puts(&b, b.len ? "\n\n### " : "\n\n## Personality Context\n\n### ");
        mr_strbuf_puts(&b, rel);
        mr_strbuf_puts(&b, "\n");
        mr_strbuf_add(&b, text, len);
        free(text);
    }
    const char *backend = agent->memory_backend ? agent->memory_backend : cfg->memory.backend;
    if (backend && strcmp(backend, "file") == 0) {
        char *text = NULL;
        size_t len = 0;
        mr_err err = {0};
        mr_code rc = mr_tools_workspace_read(memory_root, "MEMORY.md", MEMORY_FILE_MAX, &text, &len, &err);
        if (rc == MR_OK && len) {
            mr_strbuf_puts(&b, "\n\n## Memory (MEMORY.md in your workspace)\n");
            add_memory(&b, text);
        } else if (rc != MR_OK && rc != MR_ENOTFOUND) {
            skipped(agent->name, "MEMORY.md", &err);
        }
        free(text);
    }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : strdup("");
}
