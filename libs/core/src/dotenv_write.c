/* dotenv_write.c -- upserting and appending `.env` keys while keeping every other line as written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dotenv_internal.h"
#include "mindroom/dotenv.h"
#include "mindroom/fsutil.h"

/* The key a line assigns (per ^\s*(export\s+)?KEY\s*=), as an index into kvs, or -1. */
static long line_assigns(const char *p, const char *eol, const mr_dotenv_kv *kvs, size_t n)
{
    size_t key_len;
    const char *key = mr_dotenv_assigned_key(p, eol, &key_len);
    if (!key)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strlen(kvs[i].key) == key_len && memcmp(kvs[i].key, key, key_len) == 0)
            return (long)i;
    return -1;
}

static mr_code check_kvs(const char *path, const mr_dotenv_kv *kvs, size_t n, mr_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!mr_dotenv_key_is_valid(kvs[i].key))
            return mr_err_set(err, MR_EINVAL, "%s: invalid key '%s' (expected [A-Za-z_][A-Za-z0-9_]*)",
                              path, kvs[i].key ? kvs[i].key : "(null)");
        if (!kvs[i].value)
            return mr_err_set(err, MR_EINVAL, "%s: no value given for %s", path, kvs[i].key);
        for (size_t j = 0; j < i; j++)
            if (strcmp(kvs[i].key, kvs[j].key) == 0)
                return mr_err_set(err, MR_EINVAL, "%s: key %s given twice", path, kvs[i].key);
    }
    return MR_OK;
}

/* Loads the current file (missing = empty), refusing a symlink before reading through it. */
static mr_code load_existing(const char *path, char **text, size_t *len, mr_err *err)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return mr_err_set(err, MR_EPERM, "refusing to write %s: it is a symbolic link", path);
    mr_code rc = mr_fs_read_all(path, DOTENV_MAX_BYTES, text, len, err);
    if (rc == MR_ENOTFOUND) {
        mr_err_clear(err);
        *text = strdup("");
        *len = 0;
        return *text ? MR_OK : mr_err_set(err, MR_ENOMEM, "%s: out of memory", path);
    }
    return rc;
}

/* Writes one KEY=<formatted value> line. */
static bool put_assignment(FILE *f, const mr_dotenv_kv *kv)
{
    char *v = mr_dotenv_format_value(kv->value);
    if (!v)
        return false;
    bool ok = fprintf(f, "%s=%s\n", kv->key, v) >= 0;
    free(v);
    return ok;
}

/* Before the first appended line: end the last line, then a blank line and the heading. */
static void put_heading(FILE *f, const char *text, size_t len, const char *heading)
{
    if (len > 0 && text[len - 1] != '\n')
        fputc('\n', f);
    if (!heading)
        return;
    bool blank_before = len > 0 && !(len >= 2 && text[len - 1] == '\n' && text[len - 2] == '\n');
    fprintf(f, "%s%s%s\n", blank_before ? "\n" : "", heading[0] == '#' ? "" : "# ", heading);
}

/* What a rewrite does to the existing text: with replace, lines assigning a key in kvs get the
 * new value (the first) or are dropped (later duplicates); without, they are left alone. Keys
 * never seen are appended, under heading when one is given. */
typedef struct rewrite {
    bool replace;
    const char *heading;
    size_t appended;
} rewrite;

static bool rewrite_text(const char *text, size_t len, const mr_dotenv_kv *kvs, size_t n, bool *seen,
                         rewrite *rw, FILE *f)
{
    const char *end = text + len, *next;
    for (const char *p = text; p < end; p = next) {
        const char *eol = mr_dotenv_line_end(p, end, &next);
        long k = line_assigns(p, eol, kvs, n);
        if (k < 0 || !rw->replace) {
            if (k >= 0)
                seen[k] = true;
            fwrite(p, 1, (size_t)(next - p), f);
            continue;
        }
        if (seen[k])
            continue;
        seen[k] = true;
        /* Keep this line's own ending (LF, CRLF, or none on a last line). */
        if (eol > p && eol[-1] == '\r')
            eol--;
        char *v = mr_dotenv_format_value(kvs[k].value);
        if (!v)
            return false;
        fprintf(f, "%s=%s%.*s", kvs[k].key, v, (int)(next - eol), eol);
        free(v);
    }
    for (size_t i = 0; i < n; i++) {
        if (seen[i])
            continue;
        if (rw->appended++ == 0)
            put_heading(f, text, len, rw->heading);
        if (!put_assignment(f, &kvs[i]))
            return false;
    }
    return !ferror(f);
}

static mr_code rewrite_file(const char *path, const mr_dotenv_kv *kvs, size_t n, rewrite *rw, mr_err *err)
{
    mr_code rc = check_kvs(path, kvs, n, err);
    if (rc != MR_OK)
        return rc;
    char *text;
    size_t len;
    if ((rc = load_existing(path, &text, &len, err)) != MR_OK)
        return rc;

    char *out = NULL;
    size_t out_len = 0;
    bool *seen = calloc(n ? n : 1, sizeof *seen);
    FILE *f = seen ? open_memstream(&out, &out_len) : NULL;
    bool ok = f && rewrite_text(text, len, kvs, n, seen, rw, f);
    if (f && fclose(f) != 0)
        ok = false;
    free(seen);
    free(text);
    if (!ok) {
        free(out);
        return mr_err_set(err, MR_ENOMEM, "updating %s: out of memory", path);
    }
    /* Nothing to add to a file that exists: leave it untouched. */
    if (rw->replace || rw->appended > 0)
        rc = mr_fs_write_atomic(path, out, out_len, 0600, true, err);
    free(out);
    return rc;
}

mr_code mr_dotenv_upsert(const char *path, const mr_dotenv_kv *kvs, size_t n, mr_err *err)
{
    rewrite rw = { .replace = true };
    return rewrite_file(path, kvs, n, &rw, err);
}

mr_code mr_dotenv_append_missing(const char *path, const mr_dotenv_kv *kvs, size_t n,
                                 const char *heading, size_t *added, mr_err *err)
{
    rewrite rw = { .heading = heading };
    mr_code rc = rewrite_file(path, kvs, n, &rw, err);
    if (added)
        *added = rc == MR_OK ? rw.appended : 0;
    return rc;
}
