/* file.c -- the file tool: read, write and list files inside the agent's workspace, never
 * outside it (every path component is opened with O_NOFOLLOW, ".." is refused). */
#include "tools_internal.h"

#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOOL "file"
#define WRITE_MAX (1024 * 1024)

static const char *const actions[] = {"read", "write", "list", NULL};

static mr_code read_fd(int fd, size_t max, mr_strbuf *out, mr_err *err)
{
    char buf[8192];
    ssize_t n;
    /* The runner cuts what the model sees; reading a little past that shows the cut. */
    while (out->len <= max && (n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mr_err_errno(err, MR_EIO, errno, "%s: reading", TOOL);
        mr_strbuf_add(out, buf, (size_t)n);
    }
    return MR_OK;
}

static mr_code write_fd(int fd, const char *text, size_t len, mr_err *err)
{
    while (len) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return mr_err_errno(err, MR_EIO, errno, "%s: writing", TOOL);
        text += n;
        len -= (size_t)n;
    }
    return MR_OK;
}

static mr_code file_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out, mr_err *err)
{
    (void)deadline_ms;
    const char *action, *path = NULL, *content = NULL;
    mr_code rc = tools_arg_enum(args, TOOL, "action", actions, &action, err);
    bool list = rc == MR_OK && strcmp(action, "list") == 0;
    bool write_it = rc == MR_OK && strcmp(action, "write") == 0;
    if (rc == MR_OK)
        rc = tools_arg_str(args, TOOL, "path", !list, &path, err);
    if (rc == MR_OK && write_it)
        rc = tools_arg_text(args, TOOL, "content", WRITE_MAX, &content, err);
    if (rc != MR_OK)
        return rc;
    int root = tools_ws_root(env, TOOL, err);
    if (root < 0)
        return err->code;
    int flags = list ? O_RDONLY | O_DIRECTORY : write_it ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY;
    int fd = tools_ws_open(root, TOOL, path ? path : ".", flags, err);
    close(root);
    if (fd < 0)
        return err->code;
    size_t max = env->max_output > 0 ? env->max_output : MR_TOOLS_OUTPUT_MAX;
    if (list)
        return tools_ws_list(fd, TOOL, path ? path : ".", SIZE_MAX, out, err);
    rc = write_it ? write_fd(fd, content, strlen(content), err) : read_fd(fd, max, out, err);
    close(fd);
    if (rc == MR_OK && write_it)
        mr_strbuf_puts(out, "Written.");
    return rc;
}

const mr_tool_def mr_tool_file = {
    .name = TOOL,
    .description = "Read, write or list files in this agent's workspace directory. Paths are relative to it; "
                   "'..' and symbolic links are refused.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"action\":{\"type\":\"string\",\"enum\":[\"read\",\"write\",\"list\"]},"
                  "\"path\":{\"type\":\"string\",\"description\":\"relative to the workspace; list: default .\"},"
                  "\"content\":{\"type\":\"string\",\"description\":\"write: the whole new content\"}},"
                  "\"required\":[\"action\"],\"additionalProperties\":false}",
    .run = file_run,
};
