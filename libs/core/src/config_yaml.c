/* config_yaml.c -- libyaml events into a node tree with line and column, rejecting what a config
 * may not hold: a second document, duplicate keys, unknown tags, NUL characters. */
#include "config_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define CORE_TAG_PREFIX "tag:yaml.org,2002:"
/* Pairs `<<` may copy in one document; far more than any config needs, small enough that a
 * chain of merges cannot blow up memory. */
#define MAX_MERGED_PAIRS (1u << 20)

typedef struct frame {
    cy_node *node;
    size_t len, cap;   /* kids so far and room for them */
    size_t path_len;   /* this node's path is b->path[0..path_len) */
    char *anchor;      /* registered when the node is complete, so it cannot contain itself */
} frame;

typedef struct anchor {
    char *name;
    cy_node *node;
} anchor;

typedef struct builder {
    cfg_ctx *ctx;
    cy_doc *doc;
    frame *stack;
    size_t depth, cap;
    anchor *anchors;
    size_t n_anchors, cap_anchors;
    char path[CFG_PATH_MAX];
    size_t merged;
} builder;

/* Grows *arr (of elem-sized items) so index `need - 1` fits. */
static bool grow(cfg_ctx *ctx, void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p) {
        ctx->oom = true;
        return false;
    }
    *arr = p;
    *cap = n;
    return true;
}

static cy_node *new_node(builder *b, cy_kind kind, yaml_mark_t mark)
{
    cy_doc *d = b->doc;
    if (!grow(b->ctx, (void **)&d->all, &d->cap_all, d->n_all + 1, sizeof *d->all))
        return NULL;
    cy_node *n = cfg_calloc(b->ctx, 1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->line = (int)mark.line + 1;
    n->col = (int)mark.column + 1;
    d->all[d->n_all++] = n;
    return n;
}

/* The path of the node about to be added under the top frame. */
static void child_path(const builder *b, char out[CFG_PATH_MAX])
{
    if (b->depth == 0) {
        out[0] = '\0';
        return;
    }
    const frame *f = &b->stack[b->depth - 1];
    char parent[CFG_PATH_MAX];
    memcpy(parent, b->path, f->path_len);
    parent[f->path_len] = '\0';
    if (f->node->kind == CY_SEQ) {
        cfg_path_index(out, parent, f->len);
    } else if (f->len % 2 == 0) {
        memcpy(out, parent, f->path_len + 1); /* a key: errors about it name the mapping */
    } else {
        const cy_node *key = f->node->kids[f->len - 1];
        cfg_path_key(out, parent, key->text ? key->text : "?");
    }
}

static void attach(builder *b, cy_node *n)
{
    if (b->depth == 0) {
        b->doc->root = n;
        return;
    }
    frame *f = &b->stack[b->depth - 1];
    if (!grow(b->ctx, (void **)&f->node->kids, &f->cap, f->len + 1, sizeof *f->node->kids))
        return;
    f->node->kids[f->len++] = n;
}

static void register_anchor(builder *b, const char *name, cy_node *n)
{
    if (!name)
        return;
    if (!grow(b->ctx, (void **)&b->anchors, &b->cap_anchors, b->n_anchors + 1, sizeof *b->anchors))
        return;
    char *copy = cfg_strdup(b->ctx, name);
    if (!copy)
        return;
    b->anchors[b->n_anchors++] = (anchor){copy, n};
}

/* Latest definition wins, as YAML allows an anchor to be redefined. */
static cy_node *find_anchor(const builder *b, const char *name)
{
    for (size_t i = b->n_anchors; i-- > 0;)
        if (strcmp(b->anchors[i].name, name) == 0)
            return b->anchors[i].node;
    return NULL;
}

/* "!!int" for core tags, the tag itself otherwise. */
static void tag_display(const char *tag, char out[64])
{
    size_t plen = strlen(CORE_TAG_PREFIX);
    if (strncmp(tag, CORE_TAG_PREFIX, plen) == 0)
        snprintf(out, 64, "!!%s", tag + plen);
    else
        snprintf(out, 64, "%s", tag);
}

static const char *core_tag(const char *tag)
{
    size_t plen = strlen(CORE_TAG_PREFIX);
    return strncmp(tag, CORE_TAG_PREFIX, plen) == 0 ? tag + plen : NULL;
}

static bool all_of(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

/* YAML 1.2 core schema: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float_text(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    size_t int_digits = strspn(s, "0123456789");
    s += int_digits;
    size_t frac_digits = 0;
    if (*s == '.') {
        s++;
        frac_digits = strspn(s, "0123456789");
        s += frac_digits;
    }
    if (int_digits == 0 && frac_digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        size_t exp_digits = strspn(s, "0123456789");
        if (exp_digits == 0)
            return false;
        s += exp_digits;
    }
    return *s == '\0';
}

static bool text_in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

/* Plain scalars take their type from their text (YAML 1.2 core schema). */
static void resolve_plain(cy_node *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const neg_infs[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    const char *s = n->text;
    n->kind = CY_STRING;
    if (text_in(s, nulls)) {
        n->kind = CY_NULL;
    } else if (text_in(s, trues) || text_in(s, falses)) {
        n->kind = CY_BOOL;
        n->b = text_in(s, trues);
    } else if (text_in(s, infs) || text_in(s, neg_infs) || text_in(s, nans)) {
        n->kind = CY_FLOAT;
        n->d = text_in(s, nans) ? NAN : text_in(s, infs) ? INFINITY : -INFINITY;
    } else {
        const char *digits = s + (*s == '-' || *s == '+');
        int base = 0;
        if (all_of(digits, "0123456789"))
            base = 10;
        else if (s[0] == '0' && s[1] == 'o' && all_of(s + 2, "01234567"))
            base = 8;
        else if (s[0] == '0' && s[1] == 'x' && all_of(s + 2, "0123456789abcdefABCDEF"))
            base = 16;
        if (base) {
            errno = 0;
            n->i = strtoll(base == 10 ? s : s + 2, NULL, base);
            n->d = (double)n->i;
            /* Too big for an integer: still a number, never a valid count. */
            n->kind = errno == ERANGE ? CY_FLOAT : CY_INT;
        } else if (is_float_text(s)) {
            n->kind = CY_FLOAT;
            n->d = strtod(s, NULL);
        }
    }
}

static void resolve_scalar(builder *b, cy_node *n, const char *tag, bool quoted, const char *path)
{
    if (!tag) {
        n->plain = !quoted;
        if (quoted)
            n->kind = CY_STRING;
        else
            resolve_plain(n);
        return;
    }
    const char *core = core_tag(tag);
    if (strcmp(tag, "!") == 0 || (core && strcmp(core, "str") == 0)) {
        n->kind = CY_STRING;
        return;
    }
    char shown[64];
    tag_display(tag, shown);
    static const char *const typed[] = {"int", "float", "bool", "null", NULL};
    if (!core || !text_in(core, typed)) {
        cfg_diag(b->ctx, MR_DIAG_ERROR, n, path, "unknown tag '%s'", shown);
        n->kind = CY_STRING;
        return;
    }
    resolve_plain(n);
    bool fits = (strcmp(core, "int") == 0 && n->kind == CY_INT) ||
                (strcmp(core, "float") == 0 && (n->kind == CY_INT || n->kind == CY_FLOAT)) ||
                (strcmp(core, "bool") == 0 && n->kind == CY_BOOL) ||
                (strcmp(core, "null") == 0 && n->kind == CY_NULL);
    if (!fits) {
        cfg_diag(b->ctx, MR_DIAG_ERROR, n, path, "'%s' is not a valid %s value", n->text, shown);
        n->kind = CY_STRING;
    } else if (strcmp(core, "float") == 0) {
        n->kind = CY_FLOAT;
    }
}

static void check_collection_tag(builder *b, const cy_node *n, const char *tag, const char *path)
{
    if (!tag || strcmp(tag, "!") == 0)
        return;
    const char *core = core_tag(tag);
    const char *want = n->kind == CY_SEQ ? "seq" : "map";
    if (core && strcmp(core, want) == 0)
        return;
    char shown[64];
    tag_display(tag, shown);
    if (core && (strcmp(core, "seq") == 0 || strcmp(core, "map") == 0))
        cfg_diag(b->ctx, MR_DIAG_ERROR, n, path, "tag '%s' does not fit %s", shown, cy_kind_name(n));
    else
        cfg_diag(b->ctx, MR_DIAG_ERROR, n, path, "unknown tag '%s'", shown);
}

static void on_scalar(builder *b, const yaml_event_t *ev)
{
    char path[CFG_PATH_MAX];
    child_path(b, path);
    cy_node *n = new_node(b, CY_STRING, ev->start_mark);
    if (!n)
        return;
    size_t len = ev->data.scalar.length;
    n->text = malloc(len + 1);
    if (!n->text) {
        b->ctx->oom = true;
        return;
    }
    memcpy(n->text, ev->data.scalar.value, len);
    n->text[len] = '\0';
    if (strlen(n->text) != len)
        cfg_diag(b->ctx, MR_DIAG_ERROR, n, path, "text holds a NUL character");
    resolve_scalar(b, n, (const char *)ev->data.scalar.tag, ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE,
                   path);
    attach(b, n);
    register_anchor(b, (const char *)ev->data.scalar.anchor, n);
}

static void on_alias(builder *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    cy_node *n = find_anchor(b, name);
    if (!n) {
        char path[CFG_PATH_MAX];
        child_path(b, path);
        n = new_node(b, CY_NULL, ev->start_mark);
        if (!n || !(n->text = cfg_strdup(b->ctx, "")))
            return;
        cfg_diag(b->ctx, MR_DIAG_ERROR, n, path, "alias '*%s' has no anchor '&%s' before it", name, name);
    }
    attach(b, n);
}

static void on_start(builder *b, const yaml_event_t *ev, cy_kind kind, const char *tag, const char *anchor_name)
{
    char path[CFG_PATH_MAX];
    child_path(b, path);
    cy_node *n = new_node(b, kind, ev->start_mark);
    if (!n)
        return;
    check_collection_tag(b, n, tag, path);
    attach(b, n);
    if (!grow(b->ctx, (void **)&b->stack, &b->cap, b->depth + 1, sizeof *b->stack))
        return;
    char *anchor_copy = NULL;
    if (anchor_name && !(anchor_copy = cfg_strdup(b->ctx, anchor_name)))
        return;
    size_t plen = strlen(path);
    memcpy(b->path, path, plen + 1);
    b->stack[b->depth++] = (frame){n, 0, 0, plen, anchor_copy};
}

typedef struct entry {
    const cy_node *k, *v;
    size_t order;
    bool merged;
} entry;

static int entry_by_key(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    int c = strcmp(a->k->text, b->k->text);
    if (c)
        return c;
    if (a->merged != b->merged)
        return a->merged ? 1 : -1;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int entry_by_order(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    return a->order < b->order ? -1 : a->order > b->order;
}

static bool is_merge_key(const cy_node *k)
{
    return k->kind == CY_STRING && k->plain && strcmp(k->text, "<<") == 0;
}

/* A `<<` value: a mapping or a list of mappings. */
static bool mergeable(const cy_node *v)
{
    if (v->kind == CY_MAP)
        return true;
    if (v->kind != CY_SEQ)
        return false;
    for (size_t i = 0; i < v->n; i++)
        if (v->kids[i]->kind != CY_MAP)
            return false;
    return true;
}

static void report_unmergeable(builder *b, const cy_node *v, const char *path)
{
    const cy_node *bad = v;
    for (size_t i = 0; v->kind == CY_SEQ && bad == v; i++)
        if (v->kids[i]->kind != CY_MAP)
            bad = v->kids[i];
    cfg_diag(b->ctx, MR_DIAG_ERROR, bad, path, "'<<' merges a mapping or a list of mappings; this is %s",
             cy_kind_name(bad));
}

static size_t merge_count(const cy_node *v)
{
    if (v->kind == CY_MAP)
        return v->n;
    size_t total = 0;
    for (size_t i = 0; i < v->n; i++)
        total += v->kids[i]->n;
    return total;
}

static void add_merged(entry *e, size_t *n, size_t *order, const cy_node *src)
{
    for (size_t i = 0; i < src->n; i++)
        e[(*n)++] = (entry){cy_key(src, i), cy_val(src, i), (*order)++, true};
}

/* Applies `<<` merges (explicit keys win, then earlier sources) and reports duplicate keys. */
static void finish_map(builder *b, cy_node *map, const char *path)
{
    size_t total = 0;
    for (size_t i = 0; i < map->n; i++) {
        const cy_node *k = cy_key(map, i);
        if (k->kind == CY_SEQ || k->kind == CY_MAP)
            cfg_diag(b->ctx, MR_DIAG_ERROR, k, path, "a mapping key must be a string, got %s", cy_kind_name(k));
        else if (!is_merge_key(k))
            total++;
        else if (mergeable(cy_val(map, i)))
            total += merge_count(cy_val(map, i));
        else
            report_unmergeable(b, cy_val(map, i), path);
    }
    if (b->merged + total > MAX_MERGED_PAIRS) {
        cfg_diag(b->ctx, MR_DIAG_ERROR, map, path, "'<<' merges copy more than %u keys", MAX_MERGED_PAIRS);
        return;
    }
    b->merged += total;
    if (total == 0) {
        map->n = 0;
        return;
    }
    entry *e = cfg_calloc(b->ctx, total, sizeof *e);
    if (!e)
        return;
    size_t n = 0, order = 0;
    for (size_t i = 0; i < map->n; i++) {
        const cy_node *k = cy_key(map, i), *v = cy_val(map, i);
        if (k->kind == CY_SEQ || k->kind == CY_MAP)
            continue;
        if (!is_merge_key(k))
            e[n++] = (entry){k, v, order++, false};
        else if (v->kind == CY_MAP)
            add_merged(e, &n, &order, v);
        else if (mergeable(v))
            for (size_t j = 0; j < v->n; j++)
                add_merged(e, &n, &order, v->kids[j]);
    }
    qsort(e, n, sizeof *e, entry_by_key);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (kept && strcmp(e[kept - 1].k->text, e[i].k->text) == 0) {
            if (!e[i].merged) {
                char kpath[CFG_PATH_MAX];
                cfg_path_key(kpath, path, e[i].k->text);
                cfg_diag(b->ctx, MR_DIAG_ERROR, e[i].k, kpath, "duplicate key '%s'; the first is at line %d",
                         e[i].k->text, e[kept - 1].k->line);
            }
            continue;
        }
        e[kept++] = e[i];
    }
    qsort(e, kept, sizeof *e, entry_by_order);
    cy_node **kids = cfg_calloc(b->ctx, 2 * kept, sizeof *kids);
    if (kids) {
        for (size_t i = 0; i < kept; i++) {
            kids[2 * i] = (cy_node *)e[i].k;
            kids[2 * i + 1] = (cy_node *)e[i].v;
        }
        free(map->kids);
        map->kids = kids;
        map->n = kept;
    }
    free(e);
}

static void on_end(builder *b)
{
    if (b->depth == 0)
        return;
    frame *f = &b->stack[--b->depth];
    cy_node *n = f->node;
    if (n->kind == CY_SEQ) {
        n->n = f->len;
    } else {
        /* A key without a value cannot come from the parser, but keep pairs whole regardless. */
        n->n = f->len / 2;
        char path[CFG_PATH_MAX];
        memcpy(path, b->path, f->path_len);
        path[f->path_len] = '\0';
        finish_map(b, n, path);
    }
    register_anchor(b, f->anchor, n);
    free(f->anchor);
    f->anchor = NULL;
}

/* Line and column of a byte offset, for reader errors that carry no mark. */
static void offset_position(const char *text, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void syntax_error(builder *b, const yaml_parser_t *p, const char *text, size_t len)
{
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_position(text, len, p->problem_offset, &line, &col);
    } else {
        line = (int)p->problem_mark.line + 1;
        col = (int)p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->context)
        cfg_diag_at(b->ctx, MR_DIAG_ERROR, line, col, "", "YAML syntax error: %s (%s)", problem, p->context);
    else if (p->error == YAML_MEMORY_ERROR)
        b->ctx->oom = true;
    else
        cfg_diag_at(b->ctx, MR_DIAG_ERROR, line, col, "", "YAML syntax error: %s", problem);
}

void cy_parse(cfg_ctx *ctx, const char *text, size_t len, cy_doc *doc)
{
    memset(doc, 0, sizeof *doc);
    builder b = {.ctx = ctx, .doc = doc};
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        ctx->oom = true;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    bool done = false, usable = true;
    int documents = 0;
    while (!done && !ctx->oom) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            syntax_error(&b, &parser, text, len);
            usable = false;
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1) {
                cfg_diag_at(ctx, MR_DIAG_ERROR, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, "",
                            "a second YAML document; a config file holds exactly one");
                done = true;
            }
            break;
        case YAML_SCALAR_EVENT:
            on_scalar(&b, &ev);
            break;
        case YAML_ALIAS_EVENT:
            on_alias(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            on_start(&b, &ev, CY_SEQ, (const char *)ev.data.sequence_start.tag,
                     (const char *)ev.data.sequence_start.anchor);
            break;
        case YAML_MAPPING_START_EVENT:
            on_start(&b, &ev, CY_MAP, (const char *)ev.data.mapping_start.tag,
                     (const char *)ev.data.mapping_start.anchor);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            on_end(&b);
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    while (b.depth > 0)
        free(b.stack[--b.depth].anchor);
    free(b.stack);
    for (size_t i = 0; i < b.n_anchors; i++)
        free(b.anchors[i].name);
    free(b.anchors);
    /* After a syntax error the tree is cut short; checking it would only add noise. */
    if (!usable || ctx->oom)
        doc->root = NULL;
}

void cy_free(cy_doc *doc)
{
    for (size_t i = 0; i < doc->n_all; i++) {
        free(doc->all[i]->text);
        free(doc->all[i]->kids);
        free(doc->all[i]);
    }
    free(doc->all);
    memset(doc, 0, sizeof *doc);
}

const char *cy_kind_name(const cy_node *n)
{
    switch (n->kind) {
    case CY_NULL: return "null";
    case CY_BOOL: return "true/false";
    case CY_INT:
    case CY_FLOAT: return "a number";
    case CY_STRING: return "a string";
    case CY_SEQ: return "a list";
    case CY_MAP: return "a mapping";
    }
    return "a value";
}

const cy_node *cy_map_get(const cy_node *map, const char *key)
{
    if (!map || map->kind != CY_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        const cy_node *k = cy_key(map, i);
        if (k->text && strcmp(k->text, key) == 0)
            return cy_val(map, i);
    }
    return NULL;
}
