/* log.h -- leveled logging as human lines or JSON lines, with secrets redacted on the way out. */
#ifndef MINDROOM_LOG_H
#define MINDROOM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "mindroom/err.h"

typedef enum mr_log_level {
    MR_LOG_DEBUG = 0,
    MR_LOG_INFO,
    MR_LOG_WARN,
    MR_LOG_ERROR,
} mr_log_level;

typedef enum mr_log_format {
    MR_LOG_HUMAN = 0, /* "2026-11-23T17:00:00.123Z WARN  gateway: message key=value" */
    MR_LOG_JSON,      /* {"ts":"...","level":"warn","component":"gateway","msg":"...","key":"value"} */
} mr_log_format;

/* Process-wide settings; safe to call before threads start. Output defaults to stderr. */
void mr_log_configure(mr_log_level min_level, mr_log_format format, FILE *out);
/* "debug"|"info"|"warn"|"warning"|"error", case-insensitive. */
mr_code mr_log_level_parse(const char *s, mr_log_level *out, mr_err *err);
mr_code mr_log_format_parse(const char *s, mr_log_format *out, mr_err *err);
bool mr_log_enabled(mr_log_level level);

/* Writes one line, thread-safe. `fields` is a NULL-terminated list of key, value pairs
 * (may be NULL). Values of keys that name secrets (token, secret, password, authorization,
 * api_key, ...) are replaced by "[redacted]", and the message and every value pass through
 * mr_log_redact. */
void mr_log_write(mr_log_level level, const char *component, const char *const *fields,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define mr_log_debug(comp, ...) mr_log_write(MR_LOG_DEBUG, comp, NULL, __VA_ARGS__)
#define mr_log_info(comp, ...) mr_log_write(MR_LOG_INFO, comp, NULL, __VA_ARGS__)
#define mr_log_warn(comp, ...) mr_log_write(MR_LOG_WARN, comp, NULL, __VA_ARGS__)
#define mr_log_error(comp, ...) mr_log_write(MR_LOG_ERROR, comp, NULL, __VA_ARGS__)

/* True when a key/field/variable name denotes a secret (case-insensitive substring match on
 * token, secret, password, passwd, authorization, api_key, apikey, cookie, private_key). */
bool mr_log_key_is_secret(const char *key);

/* Copies `in` to `out` (always NUL-terminated, truncated to cap) with secrets masked:
 * `Bearer <x>`, `<secret-key>=<x>`, `"<secret-key>": "<x>"`, `<secret-key>: <x>`, and
 * `access_token=` query parameters become "[redacted]". Returns out. */
char *mr_log_redact(const char *in, char *out, size_t cap);

#endif
