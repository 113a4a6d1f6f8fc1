/* config_tools.c -- the tool names config.yaml may write under tools: the names of the
 * reference MindRoom's tools. Which of them this build runs is libs/tools' to say. */
#include "config_internal.h"

#include <string.h>

/* The tool names the reference's documentation gives (docs.mindroom.chat/tools/, the agent
 * configuration page, and the tools `mindroom config init` of the reference writes). */
static const char *const tool_names[] = {
    "matrix_message", "memory", "todo", "website", "file", "shell", "scheduler", "thread_summary",
    "coding", "python", "docker", "github", "duckduckgo", "arxiv", "wikipedia", "pubmed", "hackernews",
    "gmail", "google_drive", "browser", "e2b", "spotify", "homeassistant", "update_awareness",
    "openclaw_compat", "attachments", "matrix_room", "matrix_api", "chat_ui", "thread_tags",
    "thread_resolution", "config_manager", "subagents",
    /* This build's own: an OAuth provider's API with the requester's credential. */
    "oauth_api",
};

const char *const *cfg_tool_names(size_t *n)
{
    *n = sizeof tool_names / sizeof *tool_names;
    return tool_names;
}

bool mr_config_tool_known(const char *name)
{
    for (size_t i = 0; name && i < sizeof tool_names / sizeof *tool_names; i++)
        if (strcmp(tool_names[i], name) == 0)
            return true;
    return false;
}
