/* store.c -- the agent's own files (MEMORY.md, TODO.md) and the workspace path checks. */
#include "tools_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mindroom/fsutil.h"

#define DATA_MAX (4u * 1024u * 1024u)

static mr_code data_path(const mr_tools_env *env, const char *tool, const char *name, char *out, size_t cap,
                         mr_err *err)
{
    if (!env->data_dir)
        return mr_err_set(err, MR_EPERM, "%s: this agent has no data directory", tool);
    if ((size_t)snprintf(out, cap, "%s/%s", env->data_dir, name) >= cap)
        return mr_err_set(err, MR_EINVAL, "%s: the data directory path is too long", tool);
    return MR_OK;
}

mr_code tools_data_read(const mr_tools_env *env, const char *tool, const char *name, char **text, mr_err *err)
{
    size_t len = 0;
    *text = NULL;
    if (!env->data_dir)
        return mr_err_set(err, MR_EPERM, "%s: this agent has no data directory", tool);
    mr_code rc = mr_tools_workspace_read(env->data_dir, name, DATA_MAX, text, &len, err);
    if (rc == MR_ENOTFOUND)
        return MR_OK;
    if (rc != MR_OK)
        mr_err_prefix(err, "%s", tool);
    return rc;
}

mr_code tools_data_write(const mr_tools_env *env, const char *tool, const char *name, const char *text,
                         size_t len, mr_err *err)
{
    char path[4096];
    mr_code rc = data_path(env, tool, name, path, sizeof path, err);
    if (rc == MR_OK && len > DATA_MAX)
        rc = mr_err_set(err, MR_EINVAL, "%s: %s would exceed %u bytes", tool, name, DATA_MAX);
    if (rc == MR_OK)
        rc = mr_fs_mkdirs(env->data_dir, 0700, err);
    if (rc == MR_OK)
        rc = mr_fs_write_atomic(path, text, len, 0600, true, err);
    if (rc != MR_OK && rc != MR_EINVAL)
        mr_err_prefix(err, "%s", tool);
    return rc;
}

/* The workspace directory; made first when create (a tool about to work in it), else a missing
 * one is MR_ENOTFOUND (nothing to read). */
static int open_root(const char *dir, const char *tool, bool create, mr_err *err)
{
    if (create && mr_fs_mkdirs(dir, 0700, err) != MR_OK)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        mr_err_errno(err, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, errno, "%s: opening the workspace %s", tool, dir);
    return fd;
}

int tools_ws_root(const mr_tools_env *env, const char *tool, mr_err *err)
{
    if (!env->workspace) {
        mr_err_set(err, MR_EPERM, "%s: off: the file and shell tools are not turned on for this instance "
                   "(MINDROOM_TOOL_FILE_AND_SHELL)", tool);
        return -1;
    }
    return open_root(env->workspace, tool, true, err);
}

mr_code mr_tools_workspace_read(const char *workspace, const char *rel, size_t max, char **text, size_t *len,
                                mr_err *err)
{
    *text = NULL;
    *len = 0;
    int root = open_root(workspace, "workspace", false, err);
    if (root < 0)
        return err->code;
    int fd = tools_ws_open(root, "workspace", rel, O_RDONLY, err);
    close(root);
    if (fd < 0)
        return err->code;
    struct stat st;
    mr_code rc = MR_OK;
    if (fstat(fd, &st) != 0)
        rc = mr_err_errno(err, MR_EIO, errno, "%s", rel);
    else if (!S_ISREG(st.st_mode))
        rc = mr_err_set(err, MR_EINVAL, "%s is not a regular file", rel);
    else if ((size_t)st.st_size > max)
        rc = mr_err_set(err, MR_EINVAL, "%s is larger than %zu bytes", rel, max);
    char *buf = rc == MR_OK ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == MR_OK && !buf)
        rc = mr_err_set(err, MR_ENOMEM, "out of memory reading %s", rel);
    size_t got = 0;
    while (rc == MR_OK && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = mr_err_errno(err, MR_EIO, errno, "reading %s", rel);
        else if (n == 0)
            break;
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc != MR_OK) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return MR_OK;
}

int tools_ws_open(int root_fd, const char *tool, const char *rel, int flags, mr_err *err)
{
    if (!*rel || rel[0] == '/') {
        mr_err_set(err, MR_EINVAL, "%s: the argument 'path' must be relative to the workspace, not '%.128s'", tool,
                   rel);
        return -1;
    }
    char *copy = strdup(rel);
    if (!copy) {
        mr_err_set(err, MR_ENOMEM, "%s: out of memory", tool);
        return -1;
    }
    int dir = dup(root_fd);
    char *save = NULL;
    char *part = strtok_r(copy, "/", &save);
    int fd = -1;
    while (dir >= 0 && part) {
        char *next = strtok_r(NULL, "/", &save);
        if (strcmp(part, "..") == 0) {
            mr_err_set(err, MR_EPERM, "%s: '%.128s' leaves the workspace ('..' is not allowed)", tool, rel);
            break;
        }
        if (strcmp(part, ".") == 0) {
            part = next;
            if (!part)
                fd = dup(dir);
            continue;
        }
        /* O_NOFOLLOW on every component: a symlink anywhere, even one pointing inside, fails
         * with ELOOP (or ENOTDIR for a directory component), so no path resolves outside. */
        int f = next ? O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC : flags | O_NOFOLLOW | O_CLOEXEC;
        int opened = openat(dir, part, f, 0600);
        if (opened < 0) {
            int e = errno;
            struct stat lst;
            /* A link where a directory was asked for fails ENOTDIR, not ELOOP. */
            bool link = e == ENOTDIR && fstatat(dir, part, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode);
            if (e == ELOOP || link || (next && e == ENOTDIR))
                mr_err_set(err, MR_EPERM, "%s: '%.128s' goes through a symbolic link or a non-directory; "
                           "links are not followed in the workspace", tool, rel);
            else
                mr_err_errno(err, e == ENOENT ? MR_ENOTFOUND : MR_EIO, e, "%s: '%.128s'", tool, rel);
            break;
        }
        if (!next) {
            fd = opened;
            break;
        }
        close(dir);
        dir = opened;
        part = next;
    }
    if (dir >= 0)
        close(dir);
    if (fd < 0 && dir < 0)
        mr_err_errno(err, MR_EIO, errno, "%s: opening the workspace", tool);
    free(copy);
    return fd;
}

mr_code tools_ws_list(int dir, const char *tool, const char *path, size_t max, mr_strbuf *out, mr_err *err)
{
    DIR *d = fdopendir(dir);
    if (!d) {
        int e = errno;
        close(dir);
        return mr_err_errno(err, MR_EIO, e, "%s: listing '%.128s'", tool, path);
    }
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        mr_strbuf_printf(out, "%s%s\n", e->d_name, S_ISDIR(st.st_mode) ? "/" : S_ISLNK(st.st_mode) ? " (link)" : "");
        n++;
    }
    closedir(d);
    if (!n)
        mr_strbuf_puts(out, "(empty)");
    return MR_OK;
}
