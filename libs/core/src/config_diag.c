/* config_diag.c -- collecting config findings with their position and field path, formatting
 * them, and the "did you mean" hint. */
#include "config_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/str.h"

/* Candidates longer than this are never suggested (and keep the distance table small). */
#define HINT_MAX_LEN 64

char *cfg_strdup(cfg_ctx *ctx, const char *s)
{
    char *p = strdup(s);
    if (!p)
        ctx->oom = true;
    return p;
}

void cfg_default_str(cfg_ctx *ctx, char **field, const char *value)
{
    if (!*field)
        *field = cfg_strdup(ctx, value);
}

void *cfg_calloc(cfg_ctx *ctx, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        ctx->oom = true;
    return p;
}

static void diag_add(cfg_ctx *ctx, mr_diag_severity sev, int line, int col, const char *path,
                     const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
static void diag_add(cfg_ctx *ctx, mr_diag_severity sev, int line, int col, const char *path,
                     const char *fmt, va_list ap)
{
    mr_config_diags *d = ctx->diags;
    if (sev == MR_DIAG_ERROR)
        d->n_errors++;
    if (d->len >= CFG_MAX_DIAGS)
        return;
    /* Grow at powers of two: len alone tells the capacity. */
    if (d->len == 0 || (d->len & (d->len - 1)) == 0) {
        size_t cap = d->len < 8 ? 8 : d->len * 2;
        mr_config_diag *v = realloc(d->v, cap * sizeof *v);
        if (!v) {
            ctx->oom = true;
            return;
        }
        d->v = v;
    }
    mr_config_diag *g = &d->v[d->len];
    g->severity = sev;
    g->line = line;
    g->col = col;
    g->path = strdup(path ? path : "");
    g->message = mr_str_vprintf(fmt, ap);
    if (!g->path || !g->message) {
        free(g->path);
        free(g->message);
        ctx->oom = true;
        return;
    }
    d->len++;
}

void cfg_diag(cfg_ctx *ctx, mr_diag_severity sev, const cy_node *at, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(ctx, sev, at ? at->line : 1, at ? at->col : 1, path, fmt, ap);
    va_end(ap);
}

void cfg_diag_at(cfg_ctx *ctx, mr_diag_severity sev, int line, int col, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_add(ctx, sev, line, col, path, fmt, ap);
    va_end(ap);
}

/* Insertion sort: stable, and the lists are short (at most CFG_MAX_DIAGS). */
void cfg_diags_sort(mr_config_diags *diags)
{
    for (size_t i = 1; i < diags->len; i++) {
        mr_config_diag cur = diags->v[i];
        size_t j = i;
        while (j > 0 && (diags->v[j - 1].line > cur.line ||
                         (diags->v[j - 1].line == cur.line && diags->v[j - 1].col > cur.col))) {
            diags->v[j] = diags->v[j - 1];
            j--;
        }
        diags->v[j] = cur;
    }
}

static bool is_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-'))
            return false;
    return true;
}

void cfg_path_key(char out[CFG_PATH_MAX], const char *parent, const char *key)
{
    const char *dot = *parent ? "." : "";
    if (is_word(key))
        snprintf(out, CFG_PATH_MAX, "%s%s%s", parent, dot, key);
    else
        snprintf(out, CFG_PATH_MAX, "%s[\"%.60s%s\"]", parent, key, strlen(key) > 60 ? "..." : "");
}

void cfg_path_index(char out[CFG_PATH_MAX], const char *parent, size_t i)
{
    snprintf(out, CFG_PATH_MAX, "%s[%zu]", parent, i);
}

/* Optimal string alignment distance: edits plus swaps of neighbours ("modle" -> "model" is 1). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[HINT_MAX_LEN + 1][HINT_MAX_LEN + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *cfg_hint(const char *word, const char *const *cands, size_t n)
{
    size_t wl = strlen(word);
    if (wl == 0 || wl > HINT_MAX_LEN)
        return NULL;
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t cl = strlen(cands[i]);
        if (cl > HINT_MAX_LEN || strcmp(cands[i], word) == 0)
            continue;
        size_t d = edit_distance(word, cands[i]);
        /* A distance as long as the word itself would suggest anything for "ab". */
        if (d >= wl)
            d = 3;
        size_t shorter = wl < cl ? wl : cl;
        if (d > 2 && shorter >= 3 && strncmp(word, cands[i], shorter) == 0)
            d = 2;
        if (d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

bool cfg_visit(cfg_ctx *ctx)
{
    if (ctx->exhausted)
        return false;
    if (ctx->budget > 0) {
        ctx->budget--;
        return true;
    }
    ctx->exhausted = true;
    cfg_diag_at(ctx, MR_DIAG_ERROR, 1, 1, "", "the document repeats its anchors too often (alias expansion)");
    return false;
}

void mr_config_diags_free(mr_config_diags *diags)
{
    if (!diags)
        return;
    for (size_t i = 0; i < diags->len; i++) {
        free(diags->v[i].path);
        free(diags->v[i].message);
    }
    free(diags->v);
    free(diags->file);
    memset(diags, 0, sizeof *diags);
}

int mr_config_diag_format(const mr_config_diags *diags, size_t i, char *buf, size_t cap)
{
    if (!diags || i >= diags->len) {
        if (cap)
            buf[0] = '\0';
        return 0;
    }
    const mr_config_diag *g = &diags->v[i];
    const char *warn = g->severity == MR_DIAG_WARNING ? "warning: " : "";
    /* Errors about the file as a whole (syntax, documents) have no field path. */
    const char *sep = *g->path ? ": " : "";
    return snprintf(buf, cap, "%s:%d:%d: %s%s%s%s", diags->file ? diags->file : "config.yaml", g->line, g->col,
                    warn, g->path, sep, g->message);
}
