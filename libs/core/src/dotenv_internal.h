/* dotenv_internal.h -- line scanning shared by the .env reader (dotenv.c) and writer (dotenv_write.c). */
#ifndef MINDROOM_DOTENV_INTERNAL_H
#define MINDROOM_DOTENV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* A .env holds a few dozen lines; anything near this size is not one. */
#define DOTENV_MAX_BYTES (1u << 20)

/* True when key matches [A-Za-z_][A-Za-z0-9_]*. */
bool mr_dotenv_key_is_valid(const char *key);

/* The end of the line starting at p (its '\n', or end); *next is where the following line starts. */
const char *mr_dotenv_line_end(const char *p, const char *end, const char **next);

/* The key that the line [p, eol) assigns per ^\s*(export\s+)?KEY\s*=, with *key_len set, or NULL. */
const char *mr_dotenv_assigned_key(const char *p, const char *eol, size_t *key_len);

#endif
