/* secret.c -- the instance secret: decoded from MINDROOM_INSTANCE_SECRET or kept in a 0600 file. */
#include "runtime_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "mindroom/b64.h"
#include "mindroom/fsutil.h"

#define SECRET_FILE_BYTES 32

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hex_value(s[i]) < 0)
            return false;
    return n % 2 == 0;
}

/* Returns the decoded length (bytes past cap are counted, not written), or -1 when text is not
 * base64 in either alphabet. */
static long b64_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    size_t len = 0;
    if (n == 0 || mr_b64_decode(s, n, MR_B64_STD_TOO, out, cap, &len, NULL) != MR_OK)
        return -1;
    return (long)len;
}

mr_code mr_runtime_secret_decode(const char *text, unsigned char out[MR_RUNTIME_SECRET_MAX], size_t *len,
                                 mr_err *err)
{
    size_t n = strlen(text);
    long got;
    /* Hex first: 64 hex digits would also parse as base64, into the wrong 48 bytes. */
    if (n > 0 && is_hex(text, n)) {
        got = (long)(n / 2);
        for (size_t i = 0; i + 1 < n && i / 2 < MR_RUNTIME_SECRET_MAX; i += 2)
            out[i / 2] = (unsigned char)(hex_value(text[i]) << 4 | hex_value(text[i + 1]));
    } else {
        got = b64_decode(text, n, out, MR_RUNTIME_SECRET_MAX);
    }
    if (got < 0) {
        explicit_bzero(out, MR_RUNTIME_SECRET_MAX);
        return mr_err_set(err, MR_EINVAL,
                          "MINDROOM_INSTANCE_SECRET: neither hex nor base64 (generate one with `openssl rand "
                          "-hex 32`)");
    }
    if (got < MR_STORE_SECRET_MIN || got > MR_RUNTIME_SECRET_MAX) {
        explicit_bzero(out, MR_RUNTIME_SECRET_MAX);
        return mr_err_set(err, MR_EINVAL,
                          "MINDROOM_INSTANCE_SECRET: decodes to %ld bytes; it must be %d to %d (generate one "
                          "with `openssl rand -hex 32`)",
                          got, MR_STORE_SECRET_MIN, MR_RUNTIME_SECRET_MAX);
    }
    *len = (size_t)got;
    return MR_OK;
}

static mr_code read_secret_file(const char *path, unsigned char *out, size_t *len, mr_err *err)
{
    char *data = NULL;
    size_t n = 0;
    mr_code rc = mr_fs_read_all(path, MR_RUNTIME_SECRET_MAX + 1, &data, &n, err);
    if (rc != MR_OK)
        return rc;
    if (n < MR_STORE_SECRET_MIN || n > MR_RUNTIME_SECRET_MAX)
        rc = mr_err_set(err, MR_EINVAL,
                        "MINDROOM_STORAGE_PATH: %s holds %zu bytes; an instance secret is %d to %d bytes "
                        "(remove it only if nothing was stored with it yet)",
                        path, n, MR_STORE_SECRET_MIN, MR_RUNTIME_SECRET_MAX);
    else {
        memcpy(out, data, n);
        *len = n;
    }
    explicit_bzero(data, n);
    free(data);
    struct stat st;
    if (rc == MR_OK && stat(path, &st) == 0 && (st.st_mode & 077))
        mr_log_warn("runtime", "%s is readable by other users; run chmod 600 on it", path);
    return rc;
}

mr_code mr_runtime_secret_file(const char *storage, unsigned char out[MR_RUNTIME_SECRET_MAX], size_t *len,
                               mr_err *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/instance_secret", storage) >= (int)sizeof path)
        return mr_err_set(err, MR_EINVAL, "MINDROOM_STORAGE_PATH: %s is too long", storage);
    if (mr_fs_exists(path))
        return read_secret_file(path, out, len, err);

    mr_code rc = mr_fs_mkdirs(storage, 0700, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "MINDROOM_STORAGE_PATH");
        return rc;
    }
    unsigned char fresh[SECRET_FILE_BYTES];
    if (getrandom(fresh, sizeof fresh, 0) != (ssize_t)sizeof fresh)
        return mr_err_errno(err, MR_EIO, errno, "getrandom for the instance secret");
    rc = mr_fs_write_atomic(path, fresh, sizeof fresh, 0600, false, err);
    if (rc == MR_OK) {
        memcpy(out, fresh, sizeof fresh);
        *len = sizeof fresh;
        mr_log_info("runtime", "created a new instance secret in %s", path);
    }
    explicit_bzero(fresh, sizeof fresh);
    /* Another process starting at the same moment won the race: use its secret. */
    if (rc == MR_EEXISTS)
        return read_secret_file(path, out, len, err);
    return rc;
}
