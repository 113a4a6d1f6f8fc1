/* err.c -- filling and naming mr_err values. */
#include "mindroom/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 0)))
static void err_vformat(mr_err *err, mr_code code, const char *fmt, va_list ap)
{
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

mr_code mr_err_set(mr_err *err, mr_code code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err_vformat(err, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

mr_code mr_err_errno(mr_err *err, mr_code code, int errno_value, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err_vformat(err, code, fmt, ap);
        va_end(ap);
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof err->msg - used, ": %s", strerror(errno_value));
    }
    return code;
}

void mr_err_prefix(mr_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[MR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[MR_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    /* A message longer than the buffer is cut; the prefix, which says where, matters most. */
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old) >= (int)sizeof err->msg)
        err->msg[sizeof err->msg - 1] = '\0';
}

void mr_err_clear(mr_err *err)
{
    if (err) {
        err->code = MR_OK;
        err->msg[0] = '\0';
    }
}

const char *mr_code_str(mr_code code)
{
    switch (code) {
    case MR_OK: return "ok";
    case MR_EINVAL: return "invalid input";
    case MR_EIO: return "I/O error";
    case MR_ENOMEM: return "out of memory";
    case MR_ENOTFOUND: return "not found";
    case MR_EEXISTS: return "already exists";
    case MR_EAUTH: return "authentication failed";
    case MR_EPERM: return "not permitted";
    case MR_EUNAVAIL: return "unavailable";
    case MR_ECONFLICT: return "conflict";
    case MR_EINTERNAL: return "internal error";
    }
    return "unknown error";
}
