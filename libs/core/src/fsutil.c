/* fsutil.c -- whole-file reads, crash-safe atomic writes, mkdir -p and dirname. */
#define _GNU_SOURCE /* mkostemp: the temp file gets O_CLOEXEC atomically, no window for a fork */
#include "mindroom/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

mr_code mr_fs_read_all(const char *path, size_t max_bytes, char **data, size_t *len, mr_err *err)
{
    *data = NULL;
    if (len)
        *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mr_err_errno(err, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, errno, "opening %s", path);

    mr_code rc = MR_OK;
    size_t used = 0, cap = 0;
    char *buf = NULL;
    for (;;) {
        if (cap - used < 2) {
            /* Grow geometrically but never past the cap (plus one byte to detect "too big"). */
            size_t want = cap ? cap * 2 : 4096;
            if (max_bytes < SIZE_MAX - 2 && want > max_bytes + 2)
                want = max_bytes + 2;
            char *grown = realloc(buf, want);
            if (!grown) {
                rc = mr_err_set(err, MR_ENOMEM, "reading %s: out of memory", path);
                break;
            }
            buf = grown;
            cap = want;
        }
        ssize_t n = read(fd, buf + used, cap - used - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = mr_err_errno(err, MR_EIO, errno, "reading %s", path);
            break;
        }
        if (n == 0)
            break;
        used += (size_t)n;
        if (used > max_bytes) {
            rc = mr_err_set(err, MR_EINVAL, "reading %s: file is larger than the limit of %zu bytes",
                            path, max_bytes);
            break;
        }
    }
    close(fd);
    if (rc != MR_OK) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *data = buf;
    if (len)
        *len = used;
    return MR_OK;
}

static mr_code write_all(int fd, const char *data, size_t len, const char *tmp, mr_err *err)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return mr_err_errno(err, MR_EIO, errno, "writing %s", tmp);
        }
        data += n;
        len -= (size_t)n;
    }
    return MR_OK;
}

/* Without the directory's fsync the rename itself may be lost in a crash. */
static mr_code fsync_dir(const char *dir, mr_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mr_err_errno(err, MR_EIO, errno, "opening directory %s", dir);
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0)
        return mr_err_errno(err, MR_EIO, saved, "syncing directory %s", dir);
    return MR_OK;
}

/* Fills, syncs and closes the already-open temp file. */
static mr_code fill_temp(int fd, const char *tmp, const void *data, size_t len, mode_t mode, mr_err *err)
{
    mr_code rc = write_all(fd, data, len, tmp, err);
    /* fchmod before the rename so the file never appears at path with the wrong mode. */
    if (rc == MR_OK && fchmod(fd, mode) != 0)
        rc = mr_err_errno(err, MR_EIO, errno, "setting mode %04o on %s", (unsigned)mode, tmp);
    if (rc == MR_OK && fsync(fd) != 0)
        rc = mr_err_errno(err, MR_EIO, errno, "syncing %s", tmp);
    if (close(fd) != 0 && rc == MR_OK)
        rc = mr_err_errno(err, MR_EIO, errno, "closing %s", tmp);
    return rc;
}

/* Moves tmp to path. Without overwrite, link() fails with EEXIST atomically, closing the
 * window between our lstat and the rename in which another process could create path. */
static mr_code publish(const char *tmp, const char *path, bool overwrite, mr_err *err)
{
    if (overwrite) {
        if (rename(tmp, path) != 0)
            return mr_err_errno(err, MR_EIO, errno, "renaming %s to %s", tmp, path);
        return MR_OK;
    }
    if (link(tmp, path) != 0) {
        if (errno == EEXIST)
            return mr_err_set(err, MR_EEXISTS, "%s already exists", path);
        return mr_err_errno(err, MR_EIO, errno, "linking %s to %s", tmp, path);
    }
    unlink(tmp);
    return MR_OK;
}

mr_code mr_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool overwrite,
                           mr_err *err)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (*base == '\0')
        return mr_err_set(err, MR_EINVAL, "writing %s: path names a directory, not a file", path);

    struct stat st;
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return mr_err_set(err, MR_EPERM, "refusing to write %s: it is a symbolic link", path);
        if (!overwrite)
            return mr_err_set(err, MR_EEXISTS, "%s already exists", path);
    } else if (errno != ENOENT) {
        return mr_err_errno(err, MR_EIO, errno, "checking %s", path);
    }

    /* The temp name is at most path plus "/." and ".tmp.XXXXXX". */
    char dir[4096], tmp[4096 + 16];
    if (strlen(path) >= sizeof dir)
        return mr_err_set(err, MR_EINVAL, "writing %s: path is too long", path);
    mr_fs_dirname(path, dir, sizeof dir);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.XXXXXX", dir, base);

    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return mr_err_errno(err, errno == ENOENT ? MR_ENOTFOUND : MR_EIO, errno,
                            "writing %s: creating a temp file in %s", path, dir);
    mr_code rc = fill_temp(fd, tmp, data, len, mode, err);
    if (rc == MR_OK)
        rc = publish(tmp, path, overwrite, err);
    if (rc != MR_OK) {
        unlink(tmp);
        return rc;
    }
    return fsync_dir(dir, err);
}

bool mr_fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Creates one directory; an existing directory is fine, an existing file is not. */
static mr_code mkdir_one(const char *path, mode_t mode, mr_err *err)
{
    if (mkdir(path, mode) == 0)
        return MR_OK;
    int saved = errno;
    struct stat st;
    if (saved == EEXIST && stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return MR_OK;
        return mr_err_set(err, MR_EEXISTS, "creating directory %s: a file of that name exists", path);
    }
    return mr_err_errno(err, MR_EIO, saved, "creating directory %s", path);
}

mr_code mr_fs_mkdirs(const char *path, mode_t mode, mr_err *err)
{
    if (!path || !*path)
        return mr_err_set(err, MR_EINVAL, "creating directory: empty path");
    char *copy = strdup(path);
    if (!copy)
        return mr_err_set(err, MR_ENOMEM, "creating directory %s: out of memory", path);
    mr_code rc = MR_OK;
    /* Walk each prefix ending before a '/', skipping the root and repeated slashes. */
    for (char *p = copy + 1; *p && rc == MR_OK; p++) {
        if (*p != '/' || p[-1] == '/')
            continue;
        *p = '\0';
        rc = mkdir_one(copy, mode, err);
        *p = '/';
    }
    if (rc == MR_OK)
        rc = mkdir_one(copy, mode, err);
    free(copy);
    return rc;
}

void mr_fs_dirname(const char *path, char *out, size_t cap)
{
    if (cap == 0)
        return;
    size_t end = strlen(path);
    /* POSIX dirname: drop trailing slashes, then the last component, then the slashes before it. */
    while (end > 1 && path[end - 1] == '/')
        end--;
    while (end > 0 && path[end - 1] != '/')
        end--;
    while (end > 1 && path[end - 1] == '/')
        end--;
    const char *src = path;
    if (end == 0) {
        src = ".";
        end = 1;
    }
    if (end >= cap)
        end = cap - 1;
    memcpy(out, src, end);
    out[end] = '\0';
}
