/* str.h -- strings on the heap: formatted, and grown piece by piece. */
#ifndef MINDROOM_STR_H
#define MINDROOM_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* printf into a fresh string the caller frees; NULL when out of memory or fmt is invalid. */
char *mr_str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *mr_str_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* A string grown by appending, the one growable buffer (curl's dynbuf is the model): start
 * from {0} or mr_strbuf_init. s stays NUL-terminated once anything is added. Every buffer has a
 * limit, max bytes of content (0 means MR_STRBUF_DEFAULT_MAX): an append past it sets too_big,
 * one that cannot allocate sets failed, and after either further appends do nothing and return
 * false, so a caller may check once at the end. Growth is checked for overflow. The caller
 * frees s (mr_strbuf_free). */
typedef struct mr_strbuf {
    char *s;
    size_t len, cap;
    size_t max;
    bool failed;
    bool too_big;
} mr_strbuf;

#define MR_STRBUF_DEFAULT_MAX ((size_t)64 << 20)

void mr_strbuf_init(mr_strbuf *b, size_t max);
bool mr_strbuf_add(mr_strbuf *b, const char *s, size_t n);
bool mr_strbuf_puts(mr_strbuf *b, const char *s);
bool mr_strbuf_printf(mr_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* true while no append has failed or hit the limit. */
bool mr_strbuf_ok(const mr_strbuf *b);
/* Empties the buffer and clears its errors, keeping its memory and limit. */
void mr_strbuf_reset(mr_strbuf *b);
/* Hands s to the caller ("" when nothing was added; NULL, s freed, after a failed or too-big
 * append) and empties b. */
char *mr_strbuf_take(mr_strbuf *b);
void mr_strbuf_free(mr_strbuf *b);

/* Length of the valid UTF-8 sequence at s (1 to 4; 1 for the NUL), or 0 when the bytes there are
 * not one: an overlong form, a surrogate, a code point past U+10FFFF, a sequence cut short. */
size_t mr_utf8_seq_len(const char *s);

/* Appends the n bytes at s as a JSON string literal: '"', '\\' and the control characters
 * escaped (\b \f \n \r \t by name, the rest as \u00XX with upper-case hex when upper_hex, as
 * jansson writes it, else lower-case, as Matrix canonical JSON asks), every other byte as it is.
 * false when an append failed or the bytes are not UTF-8 (nothing is added past them). s[n] must
 * be readable, a NUL as in C and jansson strings: a multi-byte sequence is checked up to it. */
bool mr_strbuf_add_json_string(mr_strbuf *b, const char *s, size_t n, bool upper_hex);

/* Length of the leading run of printable ASCII (0x20-0x7e) in the n bytes at s, checked eight
 * bytes at a time: for the scans of header values on every request. */
size_t mr_str_printable_run(const char *s, size_t n);

#endif
