/* fsutil.h -- whole-file reads and crash-safe writes. */
#ifndef MINDROOM_FSUTIL_H
#define MINDROOM_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "mindroom/err.h"

/* Reads a whole file (NUL-terminated; *len excludes the NUL). Refuses files over max_bytes. */
mr_code mr_fs_read_all(const char *path, size_t max_bytes, char **data, size_t *len, mr_err *err);

/* Writes data to a temp file in path's directory, fsyncs it, sets mode, renames it over path
 * and fsyncs the directory: a crash leaves the old file or the new one, never a mix. Refuses
 * when path is a symlink (MR_EPERM), and when it exists and overwrite is false (MR_EEXISTS). */
mr_code mr_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, bool overwrite,
                           mr_err *err);

bool mr_fs_exists(const char *path);
/* mkdir -p with the given mode for directories it creates. */
mr_code mr_fs_mkdirs(const char *path, mode_t mode, mr_err *err);
/* Directory part of path ("." when none), into out. */
void mr_fs_dirname(const char *path, char *out, size_t cap);

#endif
