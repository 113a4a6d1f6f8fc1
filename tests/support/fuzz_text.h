/* fuzz_text.h -- a libFuzzer input as C text, for the fuzz targets whose code under test reads a
 * NUL-terminated string. Header-only: fuzz targets link no test support library. */
#ifndef MINDROOM_TEST_FUZZ_TEXT_H
#define MINDROOM_TEST_FUZZ_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The size bytes of data with a NUL after them (data may hold NULs of its own: the text then
 * ends early for a reader of C strings, while size still covers them). The caller frees it;
 * NULL when out of memory. */
static inline char *mr_fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return NULL;
    memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

#endif
