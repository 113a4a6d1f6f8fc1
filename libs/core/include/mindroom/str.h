/* str.h -- strings on the heap: formatted, and grown piece by piece. */
#ifndef MINDROOM_STR_H
#define MINDROOM_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* printf into a fresh string the caller frees; NULL when out of memory or fmt is invalid. */
char *mr_str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *mr_str_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* A string grown by appending; start from {0}. s stays NUL-terminated once anything is added.
 * After an allocation fails, failed is set and further appends do nothing, so a caller checks
 * once at the end. The caller frees s. */
typedef struct mr_strbuf {
    char *s;
    size_t len, cap;
    bool failed;
} mr_strbuf;

void mr_strbuf_add(mr_strbuf *b, const char *s, size_t n);
void mr_strbuf_puts(mr_strbuf *b, const char *s);

#endif
