/* str.c -- strings on the heap: formatted, and grown piece by piece. */
#include "mindroom/str.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *mr_str_vprintf(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *mr_str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = mr_str_vprintf(fmt, ap);
    va_end(ap);
    return s;
}

void mr_strbuf_init(mr_strbuf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

/* Never more than half the address space, so len + need + 1 and the doubling cannot wrap. */
static size_t strbuf_limit(const mr_strbuf *b)
{
    size_t max = b->max ? b->max : MR_STRBUF_DEFAULT_MAX;
    return max < SIZE_MAX / 2 ? max : SIZE_MAX / 2;
}

/* Room for need more bytes and the NUL; doubling keeps appends amortised O(1). */
static bool strbuf_reserve(mr_strbuf *b, size_t need)
{
    if (b->failed || b->too_big)
        return false;
    size_t limit = strbuf_limit(b);
    if (need > limit || b->len > limit - need) {
        b->too_big = true;
        return false;
    }
    size_t want = b->len + need + 1;
    if (want <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want)
        cap = cap > limit / 2 ? limit + 1 : cap * 2;
    char *grown = realloc(b->s, cap);
    if (!grown) {
        b->failed = true;
        return false;
    }
    b->s = grown;
    b->cap = cap;
    return true;
}

bool mr_strbuf_add(mr_strbuf *b, const char *s, size_t n)
{
    if (!strbuf_reserve(b, n))
        return false;
    if (n)
        memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

bool mr_strbuf_puts(mr_strbuf *b, const char *s)
{
    return mr_strbuf_add(b, s, strlen(s));
}

bool mr_strbuf_printf(mr_strbuf *b, const char *fmt, ...)
{
    va_list ap, copy;
    va_start(ap, fmt);
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    bool ok = n >= 0 && strbuf_reserve(b, (size_t)n);
    if (n < 0)
        b->failed = true;
    if (ok) {
        vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
    }
    va_end(ap);
    return ok;
}

bool mr_strbuf_ok(const mr_strbuf *b)
{
    return !b->failed && !b->too_big;
}

void mr_strbuf_reset(mr_strbuf *b)
{
    b->len = 0;
    if (b->s)
        b->s[0] = '\0';
    b->failed = b->too_big = false;
}

char *mr_strbuf_take(mr_strbuf *b)
{
    char *s = b->s;
    if (!mr_strbuf_ok(b)) {
        free(s);
        s = NULL;
    } else if (!s) {
        s = calloc(1, 1);
    }
    size_t max = b->max;
    mr_strbuf_init(b, max);
    return s;
}

void mr_strbuf_free(mr_strbuf *b)
{
    free(b->s);
    mr_strbuf_init(b, b->max);
}

size_t mr_utf8_seq_len(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n < 2)
        return n;
    /* The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF. */
    unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

bool mr_strbuf_add_json_string(mr_strbuf *b, const char *s, size_t n, bool upper_hex)
{
    mr_strbuf_add(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && (unsigned char)s[run] >= 0x20 && (unsigned char)s[run] < 0x80 && s[run] != '"' &&
               s[run] != '\\')
            run++;
        mr_strbuf_add(b, s + i, run - i);
        if (run == n)
            break;
        unsigned char c = (unsigned char)s[run];
        if (c >= 0x80) {
            size_t len = mr_utf8_seq_len(s + run);
            if (len == 0 || len > n - run)
                return false;
            mr_strbuf_add(b, s + run, len);
            i = run + len;
            continue;
        }
        char esc[8];
        switch (c) {
        case '"': memcpy(esc, "\\\"", 3); break;
        case '\\': memcpy(esc, "\\\\", 3); break;
        case '\b': memcpy(esc, "\\b", 3); break;
        case '\f': memcpy(esc, "\\f", 3); break;
        case '\n': memcpy(esc, "\\n", 3); break;
        case '\r': memcpy(esc, "\\r", 3); break;
        case '\t': memcpy(esc, "\\t", 3); break;
        default: snprintf(esc, sizeof esc, upper_hex ? "\\u%04X" : "\\u%04x", c); break;
        }
        mr_strbuf_puts(b, esc);
        i = run + 1;
    }
    return mr_strbuf_add(b, "\"", 1);
}

size_t mr_str_printable_run(const char *s, size_t n)
{
    /* Eight bytes at a time: a byte below 0x20 or at 0x7f or above sets its top bit in
     * (w - 0x20..) | w | (w + 0x01..) (the last one carries 0x7f into the top bit). */
    const uint64_t ones = 0x0101010101010101u, tops = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (((w - ones * 0x20) | w | (w + ones)) & tops)
            break;
    }
    while (i < n && (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f)
        i++;
    return i;
}
