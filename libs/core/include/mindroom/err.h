/* err.h -- the one error type: a code a program branches on and a message a person acts on. */
#ifndef MINDROOM_ERR_H
#define MINDROOM_ERR_H

#include <stddef.h>

typedef enum mr_code {
    MR_OK = 0,
    MR_EINVAL,      /* bad input: config, arguments, identifiers, message shape */
    MR_EIO,         /* file or socket failure; the message carries strerror */
    MR_ENOMEM,
    MR_ENOTFOUND,
    MR_EEXISTS,     /* would overwrite, or already claimed */
    MR_EAUTH,       /* bad credentials, wrong secret */
    MR_EPERM,       /* authenticated but not allowed */
    MR_EUNAVAIL,    /* a peer (Redis, Kafka, homeserver) is down; worth retrying */
    MR_ECONFLICT,   /* compare-and-set lost, concurrent change */
    MR_EINTERNAL,
} mr_code;

#define MR_ERR_MSG_MAX 512

typedef struct mr_err {
    mr_code code;
    char msg[MR_ERR_MSG_MAX];
} mr_err;

/* Set *err (if non-NULL) to code and a printf-style message; returns code so callers can
 * write `return mr_err_set(err, MR_EINVAL, "...")`. */
mr_code mr_err_set(mr_err *err, mr_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like mr_err_set, appending ": <strerror(errno_value)>". */
mr_code mr_err_errno(mr_err *err, mr_code code, int errno_value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefix an existing message with more context ("loading config.yaml: <old msg>"). */
void mr_err_prefix(mr_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void mr_err_clear(mr_err *err);

/* Stable lower-case name of a code, e.g. "invalid input". */
const char *mr_code_str(mr_code code);

#endif
