/* authz_glob.c -- reply-permission globs (`*`, `?`, `[...]`), split into tokens once. */
#include "authz_internal.h"

#include <stdlib.h>
#include <string.h>

enum { GLOB_LIT = 0, GLOB_ONE, GLOB_STAR, GLOB_CLASS };

bool mr_authz_glob_is_pattern(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* End of the class opened at p[i] == '[' (the index of its ']'), or 0 when unclosed. Like
 * fnmatch, a leading '!' negates and a ']' right after '[' or '[!' is a member. */
static size_t class_end(const char *p, size_t i, size_t n)
{
    size_t j = i + 1;
    if (j < n && p[j] == '!')
        j++;
    if (j < n && p[j] == ']')
        j++;
    while (j < n && p[j] != ']')
        j++;
    return j < n ? j : 0;
}

static void class_fill(const char *p, size_t open, size_t close, uint8_t set[32])
{
    size_t k = open + 1;
    bool negate = p[k] == '!';
    if (negate)
        k++;
    memset(set, 0, 32);
    while (k < close) {
        unsigned lo = (unsigned char)p[k], hi = lo;
        /* `a-z` is a range; a '-' first or last is itself. An inverted range matches nothing. */
        if (k + 2 < close && p[k + 1] == '-') {
            hi = (unsigned char)p[k + 2];
            k += 3;
        } else {
            k++;
        }
        for (unsigned c = lo; c <= hi; c++)
            set[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    if (negate)
        for (size_t b = 0; b < 32; b++)
            set[b] = (uint8_t)~set[b];
}

mr_code mr_authz_glob_compile(const char *pattern, mr_authz_glob *out, mr_err *err)
{
    size_t n = strlen(pattern);
    memset(out, 0, sizeof *out);
    out->pattern = pattern;
    /* Upper bounds: one token per byte at most, one class per '['. */
    size_t n_classes = 0;
    for (size_t i = 0; i < n; i++)
        n_classes += pattern[i] == '[';
    out->toks = calloc(n ? n : 1, sizeof *out->toks);
    out->classes = n_classes ? calloc(n_classes, sizeof *out->classes) : NULL;
    if (!out->toks || (n_classes && !out->classes)) {
        mr_authz_glob_free(out);
        return mr_err_set(err, MR_ENOMEM, "out of memory compiling reply-permission glob '%.80s'", pattern);
    }
    size_t used_classes = 0;
    for (size_t i = 0; i < n;) {
        mr_authz_glob_tok *t = &out->toks[out->n_toks];
        size_t close;
        if (pattern[i] == '*') {
            /* Consecutive stars are one. */
            if (out->n_toks == 0 || out->toks[out->n_toks - 1].kind != GLOB_STAR) {
                t->kind = GLOB_STAR;
                out->n_toks++;
            }
            i++;
        } else if (pattern[i] == '?') {
            t->kind = GLOB_ONE;
            out->n_toks++;
            out->min_len++;
            i++;
        } else if (pattern[i] == '[' && (close = class_end(pattern, i, n)) != 0) {
            t->kind = GLOB_CLASS;
            t->off = (uint32_t)used_classes;
            class_fill(pattern, i, close, out->classes[used_classes++]);
            out->n_toks++;
            out->min_len++;
            i = close + 1;
        } else {
            /* A literal run up to the next metacharacter; an unclosed '[' is literal. */
            size_t j = i + 1;
            while (j < n && pattern[j] != '*' && pattern[j] != '?' &&
                   !(pattern[j] == '[' && class_end(pattern, j, n)))
                j++;
            t->kind = GLOB_LIT;
            t->off = (uint32_t)i;
            t->len = (uint32_t)(j - i);
            out->n_toks++;
            out->min_len += j - i;
            i = j;
        }
    }
    return MR_OK;
}

/* Consumes one fixed-width token at s[pos]; returns the bytes used, or 0 on mismatch. */
static size_t tok_match(const mr_authz_glob *g, const mr_authz_glob_tok *t, const char *s,
                        size_t len, size_t pos)
{
    switch (t->kind) {
    case GLOB_LIT:
        return len - pos >= t->len && memcmp(s + pos, g->pattern + t->off, t->len) == 0 ? t->len : 0;
    case GLOB_ONE:
        return pos < len ? 1 : 0;
    default: {
        if (pos >= len)
            return 0;
        unsigned c = (unsigned char)s[pos];
        return (g->classes[t->off][c >> 3] >> (c & 7)) & 1u ? 1 : 0;
    }
    }
}

/* Every token but `*` has a fixed width, so on a mismatch it is enough to let the most recent
 * star absorb one more byte and retry from there: linear in practice, no recursion. */
bool mr_authz_glob_match(const mr_authz_glob *g, const char *s, size_t len)
{
    if (len < g->min_len)
        return false;
    size_t ti = 0, pos = 0;
    size_t star_ti = SIZE_MAX, star_pos = 0;
    while (pos < len || ti < g->n_toks) {
        if (ti < g->n_toks) {
            const mr_authz_glob_tok *t = &g->toks[ti];
            if (t->kind == GLOB_STAR) {
                star_ti = ti++;
                star_pos = pos;
                continue;
            }
            size_t used = tok_match(g, t, s, len, pos);
            if (used) {
                ti++;
                pos += used;
                continue;
            }
        }
        if (star_ti == SIZE_MAX || star_pos >= len)
            return false;
        ti = star_ti + 1;
        pos = ++star_pos;
    }
    return true;
}

void mr_authz_glob_free(mr_authz_glob *g)
{
    free(g->toks);
    free(g->classes);
    g->toks = NULL;
    g->classes = NULL;
    g->n_toks = 0;
}
