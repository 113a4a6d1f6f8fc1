/* str.c -- strings on the heap: formatted, and grown piece by piece. */
#include "mindroom/str.h"

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

void mr_strbuf_add(mr_strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        /* Doubling keeps appends amortised O(1). */
        size_t cap = (b->len + n + 1) * 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void mr_strbuf_puts(mr_strbuf *b, const char *s)
{
    mr_strbuf_add(b, s, strlen(s));
}
