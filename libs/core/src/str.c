/* str.c -- formatted strings on the heap. */
#include "mindroom/str.h"

#include <stdio.h>
#include <stdlib.h>

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
