/* dotenv.h -- reading `.env` files, upserting keys atomically, and the settings precedence
 * used everywhere: command-line flag > process environment > `.env` > default. */
#ifndef MINDROOM_DOTENV_H
#define MINDROOM_DOTENV_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

typedef struct mr_dotenv_entry {
    char *key;
    char *value;
    int line; /* 1-based line it came from */
} mr_dotenv_entry;

typedef struct mr_dotenv {
    mr_dotenv_entry *entries; /* in file order; a later duplicate key wins in mr_dotenv_get */
    size_t len;
    char *path; /* the file read, or NULL for an empty set */
} mr_dotenv;

/* Parses KEY=VALUE and `export KEY=VALUE`, with single quotes (literal), double quotes (with
 * \n \t \\ \" escapes), unquoted values (a ` #` starts a comment), blank and comment lines.
 * A line that is none of these is an error naming path:line. A missing file gives an empty set
 * when missing_ok, else MR_ENOTFOUND. */
mr_code mr_dotenv_parse(const char *text, size_t len, const char *path_for_errors, mr_dotenv *out,
                        mr_err *err);
mr_code mr_dotenv_read(const char *path, bool missing_ok, mr_dotenv *out, mr_err *err);
void mr_dotenv_free(mr_dotenv *env);
const char *mr_dotenv_get(const mr_dotenv *env, const char *key);

typedef struct mr_dotenv_kv {
    const char *key;
    const char *value;
} mr_dotenv_kv;

/* Replaces each line matching ^\s*(export\s+)?KEY\s*= with KEY=<value> (quoted only when the
 * value needs it) and appends keys not present; keeps every other line byte for byte. The file
 * is created if missing, written with mode 0600 through a temp file and rename, and a symlink
 * at path is refused. */
mr_code mr_dotenv_upsert(const char *path, const mr_dotenv_kv *kvs, size_t n, mr_err *err);

/* Appends only the keys not already present, under `heading` (a comment line, may be NULL)
 * when at least one is added. Same atomicity and symlink rule. Sets *added to the count. */
mr_code mr_dotenv_append_missing(const char *path, const mr_dotenv_kv *kvs, size_t n,
                                 const char *heading, size_t *added, mr_err *err);

/* Formats a value so mr_dotenv_parse reads it back unchanged (bare when safe, else quoted). */
char *mr_dotenv_format_value(const char *value);

/* The precedence rule: flag (if non-NULL) > getenv(key) > .env (env may be NULL) > fallback.
 * Empty strings count as set. The returned pointer is borrowed from one of the sources. */
const char *mr_setting(const char *flag, const char *key, const mr_dotenv *env, const char *fallback);

#endif
