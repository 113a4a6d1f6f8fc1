/* log.c -- leveled logging as human lines or JSON lines, one whole line per write. */
#include "mindroom/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mindroom/str.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_min_level = MR_LOG_INFO;
static atomic_int g_format = MR_LOG_HUMAN;
static FILE *g_out; /* NULL means stderr; read and written under g_lock */

void mr_log_configure(mr_log_level min_level, mr_log_format format, FILE *out)
{
    atomic_store(&g_min_level, (int)min_level);
    atomic_store(&g_format, (int)format);
    pthread_mutex_lock(&g_lock);
    g_out = out;
    pthread_mutex_unlock(&g_lock);
}

mr_code mr_log_level_parse(const char *s, mr_log_level *out, mr_err *err)
{
    static const struct {
        const char *name;
        mr_log_level level;
    } names[] = {
        { "debug", MR_LOG_DEBUG }, { "info", MR_LOG_INFO },   { "warn", MR_LOG_WARN },
        { "warning", MR_LOG_WARN }, { "error", MR_LOG_ERROR },
    };
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return MR_OK;
        }
    }
    return mr_err_set(err, MR_EINVAL, "unknown log level '%s' (expected debug, info, warn or error)",
                      s ? s : "");
}

mr_code mr_log_format_parse(const char *s, mr_log_format *out, mr_err *err)
{
    if (s && (strcasecmp(s, "human") == 0 || strcasecmp(s, "text") == 0)) {
        *out = MR_LOG_HUMAN;
        return MR_OK;
    }
    if (s && strcasecmp(s, "json") == 0) {
        *out = MR_LOG_JSON;
        return MR_OK;
    }
    return mr_err_set(err, MR_EINVAL, "unknown log format '%s' (expected human or json)", s ? s : "");
}

bool mr_log_enabled(mr_log_level level)
{
    return (int)level >= atomic_load(&g_min_level);
}

/* Writes s with control characters escaped JSON-style (so a message cannot forge a second
 * line) and invalid UTF-8 replaced; with quotes, also escapes '"' and '\' for a quoted string. */
static void put_escaped(FILE *f, const char *s, bool quotes)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned char c = *p;
        const char *esc = NULL;
        switch (c) {
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '"': esc = quotes ? "\\\"" : NULL; break;
        case '\\': esc = quotes ? "\\\\" : NULL; break;
        default: break;
        }
        size_t n = mr_utf8_seq_len((const char *)p);
        if (esc)
            fputs(esc, f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else if (n == 0)
            fputs("\xEF\xBF\xBD", f); /* U+FFFD for a byte that is not UTF-8 */
        else
            fwrite(p, 1, n, f);
        p += n ? n : 1;
    }
}

static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    put_escaped(f, s, true);
    fputc('"', f);
}

/* A human-format value is quoted when it would otherwise be ambiguous in `key=value`. */
static void put_human_value(FILE *f, const char *s)
{
    bool quote = *s == '\0' || strpbrk(s, " \"=\\") != NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p && !quote; p++)
        quote = *p < 0x20 || *p == 0x7f;
    if (quote) {
        put_json_string(f, s);
        return;
    }
    put_escaped(f, s, false);
}

static void put_timestamp(FILE *f)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "%s.%03ldZ", buf, ts.tv_nsec / 1000000);
}

/* Redacts into a fresh buffer; "[redacted]" is longer than the shortest secrets, hence room
 * for growth. Returns NULL when out of memory. */
static char *redact_dup(const char *s)
{
    size_t cap = strlen(s) * 3 + 64;
    char *out = malloc(cap);
    return out ? mr_log_redact(s, out, cap) : NULL;
}

/* Builds the line in memory so it reaches the output in one write under the lock. */
static void write_line(mr_log_level level, const char *component, const char *const *fields,
                       const char *msg)
{
    static const char *const human_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };
    static const char *const json_names[] = { "debug", "info", "warn", "error" };
    int li = level < MR_LOG_DEBUG || level > MR_LOG_ERROR ? MR_LOG_ERROR : (int)level;
    bool json = atomic_load(&g_format) == MR_LOG_JSON;
    const char *comp = component ? component : "-";

    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (!f)
        return;
    if (json) {
        fputs("{\"ts\":\"", f);
        put_timestamp(f);
        fprintf(f, "\",\"level\":\"%s\",\"component\":", json_names[li]);
        put_json_string(f, comp);
        fputs(",\"msg\":", f);
        put_json_string(f, msg);
    } else {
        put_timestamp(f);
        fprintf(f, " %-5s ", human_names[li]);
        put_escaped(f, comp, false);
        fputs(": ", f);
        put_escaped(f, msg, false);
    }
    for (size_t i = 0; fields && fields[i]; i += 2) {
        const char *key = fields[i], *value = fields[i + 1] ? fields[i + 1] : "(null)";
        char *red = mr_log_key_is_secret(key) ? NULL : redact_dup(value);
        /* Out of memory while redacting shows "[redacted]" too: never the raw value. */
        const char *shown = red ? red : "[redacted]";
        if (json) {
            fputc(',', f);
            put_json_string(f, key);
            fputc(':', f);
            put_json_string(f, shown);
        } else {
            fputc(' ', f);
            put_escaped(f, key, false);
            fputc('=', f);
            put_human_value(f, shown);
        }
        free(red);
        /* A NULL value may be the list's terminator arriving early: read no further. */
        if (!fields[i + 1])
            break;
    }
    fputs(json ? "}\n" : "\n", f);
    bool ok = !ferror(f);
    if (fclose(f) == 0 && ok) {
        pthread_mutex_lock(&g_lock);
        FILE *out = g_out ? g_out : stderr;
        fwrite(line, 1, len, out);
        fflush(out);
        pthread_mutex_unlock(&g_lock);
    }
    free(line);
}

void mr_log_write(mr_log_level level, const char *component, const char *const *fields, const char *fmt,
                  ...)
{
    if (!mr_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = mr_str_vprintf(fmt, ap);
    va_end(ap);
    char *red = msg ? redact_dup(msg) : NULL;
    write_line(level, component, fields, red ? red : "(log message lost: out of memory)");
    free(red);
    free(msg);
}

/* ---- redaction ---- */

static const char *const secret_words[] = {
    "token", "secret", "password", "passwd", "authorization", "api_key", "apikey", "cookie", "private_key",
};

/* Case-insensitive, and '-' counts as '_' so header names (X-Api-Key) match too. */
static char fold(char c)
{
    return c == '-' ? '_' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool name_is_secret(const char *s, size_t n)
{
    for (size_t w = 0; w < sizeof secret_words / sizeof secret_words[0]; w++) {
        size_t wl = strlen(secret_words[w]);
        for (size_t i = 0; i + wl <= n; i++) {
            size_t j = 0;
            while (j < wl && fold(s[i + j]) == secret_words[w][j])
                j++;
            if (j == wl)
                return true;
        }
    }
    return false;
}

bool mr_log_key_is_secret(const char *key)
{
    return key && name_is_secret(key, strlen(key));
}

/* Bounded output: copies what fits, always leaving room for the NUL. */
typedef struct sink {
    char *out;
    size_t cap, len;
} sink;

static void put(sink *s, const char *p, size_t n)
{
    size_t room = s->cap - 1 - s->len;
    if (n > room)
        n = room;
    memcpy(s->out + s->len, p, n);
    s->len += n;
}

static void put_str(sink *s, const char *p)
{
    put(s, p, strlen(p));
}

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* End of an unquoted secret: whitespace, a query/list separator, a quote or a closing brace. */
static const char *bare_end(const char *p)
{
    while (*p && !is_space(*p) && !strchr("&,;\"'}\r\n", *p))
        p++;
    return p;
}

/* Length of an auth scheme word ("Bearer ", "Basic ", "Digest ") and the blanks after it. */
static size_t scheme_len(const char *p)
{
    static const char *const schemes[] = { "bearer", "basic", "digest" };
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncasecmp(p, schemes[i], n) == 0 && is_space(p[n])) {
            while (is_space(p[n]))
                n++;
            return n;
        }
    }
    return 0;
}

/* Writes the value at v as "[redacted]", keeping its quotes; returns the end of the value. */
static const char *redact_value(sink *s, const char *v)
{
    if (*v == '"' || *v == '\'') {
        char q = *v++;
        while (*v && *v != q)
            v += v[0] == '\\' && v[1] ? 2 : 1;
        put(s, &q, 1);
        put_str(s, "[redacted]");
        if (*v)
            put(s, v++, 1);
        return v;
    }
    size_t scheme = scheme_len(v);
    put(s, v, scheme);
    v += scheme;
    const char *end = bare_end(v);
    if (end > v)
        put_str(s, "[redacted]");
    return end;
}

/* Called after a name at [name, p) was copied. Masks what follows when the name is `Bearer`
 * or a secret key followed by `=` or `:`; returns where copying resumes. */
static const char *redact_after_name(sink *s, const char *name, const char *p, bool key_quoted)
{
    size_t n = (size_t)(p - name);
    if (n == 6 && strncasecmp(name, "bearer", 6) == 0 && is_space(*p)) {
        const char *v = p;
        while (is_space(*v))
            v++;
        if (bare_end(v) == v)
            return p;
        put(s, p, (size_t)(v - p));
        return redact_value(s, v);
    }
    if (!name_is_secret(name, n))
        return p;
    /* `"password": "x"`: the key's own closing quote comes before the separator. */
    const char *v = p + (key_quoted && *p == '"');
    while (is_space(*v))
        v++;
    if (*v != '=' && *v != ':')
        return p;
    v++;
    while (is_space(*v))
        v++;
    if (!*v || (*v != '"' && *v != '\'' && bare_end(v) == v))
        return p;
    put(s, p, (size_t)(v - p));
    return redact_value(s, v);
}

char *mr_log_redact(const char *in, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    sink s = { out, cap, 0 };
    const char *p = in;
    while (*p) {
        if (!is_name_char(*p)) {
            put(&s, p++, 1);
            continue;
        }
        const char *name = p;
        while (is_name_char(*p))
            p++;
        put(&s, name, (size_t)(p - name));
        p = redact_after_name(&s, name, p, name > in && name[-1] == '"');
    }
    out[s.len] = '\0';
    return out;
}
