/* config_internal.h -- what the config_*.c files share: the YAML tree with positions, the
 * diagnostics sink and the loading passes. Not part of the public surface. */
#ifndef MINDROOM_CONFIG_INTERNAL_H
#define MINDROOM_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include "mindroom/config.h"

/* Longest field path kept in a diagnostic; deeper or longer paths are cut. */
#define CFG_PATH_MAX 256
/* Diagnostics stored per load; later ones are counted but not kept. */
#define CFG_MAX_DIAGS 500

typedef enum cy_kind { CY_NULL, CY_BOOL, CY_INT, CY_FLOAT, CY_STRING, CY_SEQ, CY_MAP } cy_kind;

/* One YAML node. Aliases share nodes, so the tree is a DAG; the document owns every node. */
typedef struct cy_node {
    cy_kind kind;
    int line, col;          /* 1-based start */
    bool plain;             /* an untagged plain scalar (so `<<` can be told from "<<") */
    char *text;             /* scalars: the text as written; "" for collections */
    bool b;                 /* CY_BOOL */
    long long i;            /* CY_INT */
    double d;               /* CY_INT and CY_FLOAT */
    struct cy_node **kids;  /* seq: items; map: key, value, key, value, ... */
    size_t n;               /* seq: items; map: pairs */
} cy_node;

typedef struct cy_doc {
    cy_node *root;          /* NULL for an empty file */
    cy_node **all;          /* every node, for freeing */
    size_t n_all, cap_all;
} cy_doc;

/* State shared by the passes of one load. */
typedef struct cfg_ctx {
    mr_config_diags *diags;
    mr_config *cfg;
    bool oom;               /* an allocation failed: the load ends with MR_ENOMEM */
    size_t budget;          /* values the loader may still visit; guards alias bombs */
    bool exhausted;         /* the budget ran out (reported once) */
} cfg_ctx;

/* config_yaml.c */
void cy_parse(cfg_ctx *ctx, const char *text, size_t len, cy_doc *doc);
void cy_free(cy_doc *doc);
/* "a mapping", "a list", "a string", "a number", "true/false", "null". */
const char *cy_kind_name(const cy_node *n);
/* The value for key in a mapping, or NULL. */
const cy_node *cy_map_get(const cy_node *map, const char *key);
static inline const cy_node *cy_key(const cy_node *map, size_t i) { return map->kids[2 * i]; }
static inline const cy_node *cy_val(const cy_node *map, size_t i) { return map->kids[2 * i + 1]; }

/* config_diag.c */
void cfg_diag(cfg_ctx *ctx, mr_diag_severity sev, const cy_node *at, const char *path,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void cfg_diag_at(cfg_ctx *ctx, mr_diag_severity sev, int line, int col, const char *path,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Orders the diagnostics by position, keeping the order of those at the same place. */
void cfg_diags_sort(mr_config_diags *diags);
/* out = parent + ".key" (or `["key"]` when key is not a plain word), cut to CFG_PATH_MAX. */
void cfg_path_key(char out[CFG_PATH_MAX], const char *parent, const char *key);
void cfg_path_index(char out[CFG_PATH_MAX], const char *parent, size_t i);
/* The candidate closest to word (edit distance <= 2, or a prefix either way), or NULL. */
const char *cfg_hint(const char *word, const char *const *cands, size_t n);
/* Takes one unit of budget; false (after one diagnostic) when the document expands too much. */
bool cfg_visit(cfg_ctx *ctx);
char *cfg_strdup(cfg_ctx *ctx, const char *s);
/* Sets *field to a copy of value when the file left it unset. */
void cfg_default_str(cfg_ctx *ctx, char **field, const char *value);
/* calloc that records failure in ctx. */
void *cfg_calloc(cfg_ctx *ctx, size_t n, size_t size);

/* config_schema.c: typed fields from the tree into ctx->cfg (defaults already set). */
void cfg_load_root(cfg_ctx *ctx, const cy_node *root);

/* config_validate.c: rules that span fields (names, references, duplicates). */
void cfg_validate(cfg_ctx *ctx, const cy_node *root);

/* config_tools.c: the names mr_config_tool_known knows, for hints. */
const char *const *cfg_tool_names(size_t *n);

/* config_load.c */
void cfg_strlist_free(mr_strlist *l);

#endif
