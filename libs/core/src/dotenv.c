/* dotenv.c -- parsing `.env` files, formatting values to read back unchanged, settings precedence. */
#include "mindroom/dotenv.h"

#include <stdlib.h>
#include <string.h>

#include "dotenv_internal.h"
#include "mindroom/fsutil.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_key_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_key_char(char c)
{
    return is_key_start(c) || (c >= '0' && c <= '9');
}

bool mr_dotenv_key_is_valid(const char *key)
{
    if (!key || !is_key_start(*key))
        return false;
    while (*++key)
        if (!is_key_char(*key))
            return false;
    return true;
}

/* Skips leading blanks and an `export ` prefix (only when a key follows it, so a key named
 * `export` still works). Returns where the key starts and its length (0 when none). */
static const char *line_key(const char *p, const char *end, size_t *key_len)
{
    while (p < end && is_blank(*p))
        p++;
    if (end - p > 6 && memcmp(p, "export", 6) == 0 && is_blank(p[6])) {
        const char *q = p + 6;
        while (q < end && is_blank(*q))
            q++;
        if (q < end && is_key_start(*q))
            p = q;
    }
    const char *k = p;
    if (k < end && is_key_start(*k))
        while (k < end && is_key_char(*k))
            k++;
    *key_len = (size_t)(k - p);
    return p;
}

const char *mr_dotenv_assigned_key(const char *p, const char *eol, size_t *key_len)
{
    const char *key = line_key(p, eol, key_len);
    const char *q = key + *key_len;
    while (q < eol && is_blank(*q))
        q++;
    return *key_len > 0 && q < eol && *q == '=' ? key : NULL;
}

/* One parsed line; `value` is malloc'd. */
typedef struct line_parse {
    const char *key;
    size_t key_len;
    char *value;
    bool is_entry;
} line_parse;

/* Errors name the key but never echo a value: the line may hold a secret. */
static mr_code line_error(mr_err *err, const char *path, int lineno, const char *what, const char *key,
                          size_t key_len)
{
    return mr_err_set(err, MR_EINVAL, "%s:%d: %s %.*s", path, lineno, what, (int)key_len, key);
}

/* Reads a quoted value starting after the opening quote at *pp; on success *pp points past
 * the closing quote. Single quotes are literal; double quotes decode \n \t \r \\ \" \$ and keep
 * any other backslash pair as written. out has room for end - *pp + 1 bytes. */
static bool read_quoted(const char **pp, const char *end, char quote, char *out)
{
    const char *p = *pp;
    size_t n = 0;
    while (p < end && *p != quote) {
        char c = *p++;
        if (quote == '"' && c == '\\' && p < end) {
            char e = *p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case '\\': case '"': case '$': c = e; break;
            default: out[n++] = '\\'; c = e; break;
            }
        }
        out[n++] = c;
    }
    out[n] = '\0';
    if (p == end)
        return false;
    *pp = p + 1;
    return true;
}

/* Parses one line (without its newline; a trailing CR already removed). */
static mr_code parse_line(const char *p, const char *end, const char *path, int lineno, line_parse *lp,
                          mr_err *err)
{
    memset(lp, 0, sizeof *lp);
    if (memchr(p, '\0', (size_t)(end - p)))
        return mr_err_set(err, MR_EINVAL, "%s:%d: NUL byte in line", path, lineno);
    size_t key_len;
    const char *key = line_key(p, end, &key_len);
    if (key == end || *key == '#')
        return MR_OK;
    p = key + key_len;
    while (p < end && is_blank(*p))
        p++;
    /* Without an '=' the "key" may be a pasted secret, so it is not echoed. */
    if (key_len == 0 || p == end || *p != '=')
        return mr_err_set(err, MR_EINVAL, "%s:%d: expected KEY=VALUE or a # comment", path, lineno);
    p++;
    while (p < end && is_blank(*p))
        p++;

    char *value = malloc((size_t)(end - p) + 1);
    if (!value)
        return mr_err_set(err, MR_ENOMEM, "%s:%d: out of memory", path, lineno);
    if (p < end && (*p == '\'' || *p == '"')) {
        char quote = *p++;
        if (!read_quoted(&p, end, quote, value)) {
            free(value);
            return line_error(err, path, lineno,
                              quote == '"' ? "unterminated double quote in the value of"
                                           : "unterminated single quote in the value of",
                              key, key_len);
        }
        while (p < end && is_blank(*p))
            p++;
        if (p < end && *p != '#') {
            free(value);
            return line_error(err, path, lineno, "unexpected text after the closing quote of", key,
                              key_len);
        }
    } else {
        /* Unquoted: a '#' after a blank begins a comment, as in a shell (p[-1] is at worst '='). */
        const char *v = p;
        while (p < end && !(*p == '#' && is_blank(p[-1])))
            p++;
        while (p > v && is_blank(p[-1]))
            p--;
        memcpy(value, v, (size_t)(p - v));
        value[p - v] = '\0';
    }
    lp->key = key;
    lp->key_len = key_len;
    lp->value = value;
    lp->is_entry = true;
    return MR_OK;
}

static mr_code push_entry(mr_dotenv *env, size_t *cap, line_parse *lp, int lineno)
{
    if (env->len == *cap) {
        size_t want = *cap ? *cap * 2 : 16;
        mr_dotenv_entry *grown = realloc(env->entries, want * sizeof *grown);
        if (!grown)
            return MR_ENOMEM;
        env->entries = grown;
        *cap = want;
    }
    char *key = strndup(lp->key, lp->key_len);
    if (!key)
        return MR_ENOMEM;
    env->entries[env->len++] = (mr_dotenv_entry){ .key = key, .value = lp->value, .line = lineno };
    lp->value = NULL;
    return MR_OK;
}

const char *mr_dotenv_line_end(const char *p, const char *end, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *next = nl ? nl + 1 : end;
    return nl ? nl : end;
}

mr_code mr_dotenv_parse(const char *text, size_t len, const char *path_for_errors, mr_dotenv *out,
                        mr_err *err)
{
    const char *path = path_for_errors ? path_for_errors : "<text>";
    memset(out, 0, sizeof *out);
    if (path_for_errors && !(out->path = strdup(path_for_errors)))
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", path);

    size_t cap = 0;
    const char *end = text + len, *next;
    mr_code rc = MR_OK;
    for (int lineno = 1; text < end && rc == MR_OK; lineno++, text = next) {
        const char *eol = mr_dotenv_line_end(text, end, &next);
        if (eol > text && eol[-1] == '\r')
            eol--;
        line_parse lp;
        rc = parse_line(text, eol, path, lineno, &lp, err);
        if (rc == MR_OK && lp.is_entry && push_entry(out, &cap, &lp, lineno) != MR_OK)
            rc = mr_err_set(err, MR_ENOMEM, "%s:%d: out of memory", path, lineno);
        free(lp.value);
    }
    if (rc != MR_OK)
        mr_dotenv_free(out);
    return rc;
}

mr_code mr_dotenv_read(const char *path, bool missing_ok, mr_dotenv *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    mr_code rc = mr_fs_read_all(path, DOTENV_MAX_BYTES, &text, &len, err);
    if (rc == MR_ENOTFOUND && missing_ok) {
        mr_err_clear(err);
        return MR_OK;
    }
    if (rc != MR_OK)
        return rc;
    rc = mr_dotenv_parse(text, len, path, out, err);
    free(text);
    return rc;
}

void mr_dotenv_free(mr_dotenv *env)
{
    if (!env)
        return;
    for (size_t i = 0; i < env->len; i++) {
        free(env->entries[i].key);
        free(env->entries[i].value);
    }
    free(env->entries);
    free(env->path);
    memset(env, 0, sizeof *env);
}

const char *mr_dotenv_get(const mr_dotenv *env, const char *key)
{
    if (!env || !key)
        return NULL;
    for (size_t i = env->len; i-- > 0;)
        if (strcmp(env->entries[i].key, key) == 0)
            return env->entries[i].value;
    return NULL;
}

/* Characters that leave a value readable bare by us and by a POSIX shell sourcing the file. */
static bool is_bare_safe(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           strchr("_-./:@%+,=^", c) != NULL;
}

char *mr_dotenv_format_value(const char *value)
{
    bool bare = true, single_ok = true;
    size_t escapes = 0;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        bare = bare && is_bare_safe(*p);
        if (*p == '\'' || *p < 0x20 || *p == 0x7f)
            single_ok = false;
        if (strchr("\\\"$\n\t\r", *p))
            escapes++;
    }
    size_t len = strlen(value);
    if (bare)
        return strdup(value);
    char *out = malloc(len + escapes + 3);
    if (!out)
        return NULL;
    char *w = out;
    /* Single quotes keep the value as written; double quotes are for values single quotes
     * cannot hold (a quote or a control character). */
    *w++ = single_ok ? '\'' : '"';
    for (const char *p = value; *p; p++) {
        const char *esc = strchr("\\\"$\n\t\r", *p);
        if (single_ok || !esc) {
            *w++ = *p;
            continue;
        }
        *w++ = '\\';
        *w++ = "\\\"$ntr"[esc - "\\\"$\n\t\r"];
    }
    *w++ = single_ok ? '\'' : '"';
    *w = '\0';
    return out;
}

const char *mr_setting(const char *flag, const char *key, const mr_dotenv *env, const char *fallback)
{
    if (flag)
        return flag;
    const char *v = key ? getenv(key) : NULL;
    if (v)
        return v;
    v = mr_dotenv_get(env, key);
    return v ? v : fallback;
}
