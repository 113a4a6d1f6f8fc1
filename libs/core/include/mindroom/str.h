/* str.h -- formatted strings on the heap. */
#ifndef MINDROOM_STR_H
#define MINDROOM_STR_H

#include <stdarg.h>

/* printf into a fresh string the caller frees; NULL when out of memory or fmt is invalid. */
char *mr_str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *mr_str_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
