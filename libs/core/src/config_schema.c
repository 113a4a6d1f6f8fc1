/* config_schema.c -- the accepted keys of every config block (one table each) and the loader
 * that turns the YAML tree into typed fields, with a diagnostic for each value that misfits. */
#include "config_internal.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/ids.h"
#include "mindroom/str.h"
#include "mindroom/tz.h"

/* Longest room key: leaves room in a 255-byte alias for '#', "_<namespace>" and ":<server>". */
#define ROOM_KEY_MAX 160
/* Most keys in one block table. */
#define BLOCK_MAX_FIELDS 24

typedef enum field_kind {
    F_STR,
    F_BOOL,
    F_INT,     /* int >= 0 */
    F_LONG,    /* long >= 0 */
    F_DOUBLE,  /* double >= 0 */
    F_ENUM,    /* an enum stored as int: the index into values */
    F_CHOICE,  /* char *, one of values */
    F_LIST,    /* mr_strlist, items checked per item kind */
    F_MAP,     /* a mapping whose contents are not checked */
    F_BLOCK,   /* a nested struct with its own table */
    F_KEYED,   /* a mapping of name -> entry into an array and its count */
    F_CUSTOM,
} field_kind;

typedef enum item_kind {
    IT_TEXT,       /* any string */
    IT_TOOL,       /* a name, or {name: {settings}} */
    IT_ROOM,       /* managed room key, #alias:server or !room:server */
    IT_USER,       /* Matrix user ID */
    IT_USER_GLOB,  /* Matrix user ID or glob pattern */
} item_kind;

typedef struct block block;
typedef struct keyed keyed;
typedef void (*custom_fn)(cfg_ctx *ctx, const cy_node *v, const char *path, void *dest);

typedef struct field {
    const char *key;
    field_kind kind;
    size_t off;
    bool required;
    item_kind item;            /* F_LIST */
    const char *noun;          /* F_LIST: "expected a list of <noun>" */
    const char *const *values; /* F_ENUM, F_CHOICE; NULL-terminated */
    const block *sub;          /* F_BLOCK */
    const keyed *entries;      /* F_KEYED */
    size_t count_off;          /* F_KEYED: the size_t count beside the array */
    custom_fn fn;              /* F_CUSTOM */
} field;

struct block {
    const field *fields;
    size_t n;
};

#define BLOCK(arr) {arr, sizeof arr / sizeof arr[0]}
#define STR(T, k) {.key = #k, .kind = F_STR, .off = offsetof(T, k)}
#define STR_REQ(T, k) {.key = #k, .kind = F_STR, .off = offsetof(T, k), .required = true}
#define BOOL(T, k) {.key = #k, .kind = F_BOOL, .off = offsetof(T, k)}
#define INT(T, k) {.key = #k, .kind = F_INT, .off = offsetof(T, k)}
#define LONG(T, k) {.key = #k, .kind = F_LONG, .off = offsetof(T, k)}
#define DOUBLE(T, k) {.key = #k, .kind = F_DOUBLE, .off = offsetof(T, k)}
#define ENUM(T, k, vals) {.key = #k, .kind = F_ENUM, .off = offsetof(T, k), .values = vals}
#define CHOICE(T, k, vals) {.key = #k, .kind = F_CHOICE, .off = offsetof(T, k), .values = vals}
#define LIST(T, k, it, what) {.key = #k, .kind = F_LIST, .off = offsetof(T, k), .item = it, .noun = what}
#define OPAQUE_MAP(k) {.key = #k, .kind = F_MAP}
#define SUB(T, k, blk) {.key = #k, .kind = F_BLOCK, .off = offsetof(T, k), .sub = &blk}
#define KEYED(T, k, arr, count, spec)                                                              \
    {.key = k, .kind = F_KEYED, .off = offsetof(T, arr), .count_off = offsetof(T, count), .entries = &spec}
#define CUSTOM(T, k, f) {.key = #k, .kind = F_CUSTOM, .off = offsetof(T, k), .fn = f}

/* Enums are read and written as int; these keep that honest. */
_Static_assert(sizeof(mr_thread_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(mr_team_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(mr_room_access_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(mr_join_rule) == sizeof(int), "enum size");

static const char *const thread_modes[] = {"thread", "room", NULL};
static const char *const team_modes[] = {"coordinate", "collaborate", NULL};
static const char *const access_modes[] = {"single_user_private", "multi_user", NULL};
static const char *const join_rules[] = {"public", "knock", NULL};
static const char *const memory_backends[] = {"mem0", "file", "none", NULL};

const char *const mr_config_providers[] = {
    "anthropic", "bedrock_claude", "azure", "openai", "codex", "kimi", "google", "gemini",
    "vertexai_claude", "ollama", "llama_cpp", "groq", "openrouter", "cerebras", "deepseek", "zai",
    "synthetic", NULL,
};

static void load_block(cfg_ctx *ctx, const cy_node *map, const char *path, const block *blk, void *base);
static void load_keyed(cfg_ctx *ctx, const cy_node *map, const char *path, const keyed *spec, void *arr_field,
                       size_t *count);

/* ---- item checks ---------------------------------------------------------------------------- */

static bool is_collection(const cy_node *n)
{
    return n->kind == CY_SEQ || n->kind == CY_MAP;
}

static const char *room_key_problem(const char *s)
{
    if (!*s)
        return "a room key is empty";
    if (s[0] == '@')
        return "this is a user ID; rooms are named by room key, #alias:server or !id:server";
    if (strlen(s) > ROOM_KEY_MAX)
        return "a room key is at most 160 bytes";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == ':' || *p <= 0x20 || *p == 0x7f)
            return "room keys become room alias localparts and may not hold ':', spaces or control characters";
    return NULL;
}

/* A room named by key, full alias or room ID; reports and returns false when malformed. */
static bool check_room_ref(cfg_ctx *ctx, const cy_node *at, const char *path, const char *s)
{
    mr_err err;
    mr_code rc = MR_OK;
    if (s[0] == '#') {
        rc = mr_id_parse_room_alias(s, NULL, &err);
    } else if (s[0] == '!') {
        rc = mr_id_parse_room_id(s, NULL, &err);
    } else {
        const char *problem = room_key_problem(s);
        if (problem) {
            cfg_diag(ctx, MR_DIAG_ERROR, at, path, "'%s' is not a valid room: %s", s, problem);
            return false;
        }
    }
    if (rc != MR_OK)
        cfg_diag(ctx, MR_DIAG_ERROR, at, path, "%s", err.msg);
    return rc == MR_OK;
}

static const char *glob_problem(const char *s)
{
    if (!strchr("@*?[", s[0]))
        return "it can never match: user IDs start with '@'";
    for (const char *p = s; *p; p++) {
        if (*p == '\\') {
            if (!p[1])
                return "a trailing '\\' escapes nothing";
            p++;
        } else if (*p == '[') {
            const char *q = p + 1;
            if (*q == '!' || *q == '^')
                q++;
            if (*q == ']') /* a ']' right after '[' is a member, not the end */
                q++;
            q = strchr(q, ']');
            if (!q)
                return "'[' is not closed by ']'";
            p = q;
        }
    }
    return NULL;
}

static bool check_user(cfg_ctx *ctx, const cy_node *at, const char *path, const char *s, bool glob_ok)
{
    if (strcmp(s, MR_CONFIG_OWNER_PLACEHOLDER) == 0) {
        cfg_diag(ctx, MR_DIAG_WARNING, at, path, "owner placeholder not replaced yet; run `mindroom connect`");
        return true;
    }
    if (glob_ok && strpbrk(s, "*?[")) {
        if (strcmp(s, "*") == 0)
            return true;
        const char *problem = glob_problem(s);
        if (problem)
            cfg_diag(ctx, MR_DIAG_ERROR, at, path, "'%s' is not a valid user pattern: %s", s, problem);
        return !problem;
    }
    mr_err err;
    if (mr_id_parse_user(s, NULL, &err) != MR_OK) {
        cfg_diag(ctx, MR_DIAG_ERROR, at, path, "%s", err.msg);
        return false;
    }
    return true;
}

/* The string an item contributes to its list, or NULL after reporting why it has none. */
static const char *item_value(cfg_ctx *ctx, const cy_node *item, const char *path, item_kind kind)
{
    if (kind == IT_TOOL && item->kind == CY_MAP && item->n == 1 && !is_collection(cy_key(item, 0)))
        return cy_key(item, 0)->text;
    if (item->kind != CY_STRING) {
        if (kind == IT_TOOL)
            cfg_diag(ctx, MR_DIAG_ERROR, item, path,
                     "expected a tool name or a one-key mapping {name: {settings}}, got %s", cy_kind_name(item));
        else
            cfg_diag(ctx, MR_DIAG_ERROR, item, path, "expected a string, got %s", cy_kind_name(item));
        return NULL;
    }
    const char *s = item->text;
    bool ok = true;
    switch (kind) {
    case IT_TEXT:
    case IT_TOOL:
        break;
    case IT_ROOM:
        ok = check_room_ref(ctx, item, path, s);
        break;
    case IT_USER:
    case IT_USER_GLOB:
        ok = check_user(ctx, item, path, s, kind == IT_USER_GLOB);
        break;
    }
    return ok ? s : NULL;
}

static void load_list(cfg_ctx *ctx, const cy_node *v, const char *path, item_kind kind, const char *noun,
                      mr_strlist *out)
{
    if (v->kind != CY_SEQ) {
        cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a list of %s, got %s", noun, cy_kind_name(v));
        return;
    }
    cfg_strlist_free(out);
    if (!(out->v = cfg_calloc(ctx, v->n, sizeof *out->v)))
        return;
    for (size_t i = 0; i < v->n && cfg_visit(ctx); i++) {
        char ipath[CFG_PATH_MAX];
        cfg_path_index(ipath, path, i);
        const char *s = item_value(ctx, v->kids[i], ipath, kind);
        if (s && (out->v[out->len] = cfg_strdup(ctx, s)))
            out->len++;
    }
}

/* ---- scalar fields -------------------------------------------------------------------------- */

static void values_list(const char *const *values, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *const *v = values; *v && used < cap; v++) {
        int n = snprintf(out + used, cap - used, "%s%s", v == values ? "" : ", ", *v);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Index of v's text in values, or -1 after reporting it. */
static int choose(cfg_ctx *ctx, const cy_node *v, const char *path, const char *const *values)
{
    char allowed[512];
    values_list(values, allowed, sizeof allowed);
    if (v->kind != CY_STRING) {
        cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected one of %s; got %s", allowed, cy_kind_name(v));
        return -1;
    }
    for (int i = 0; values[i]; i++)
        if (strcmp(values[i], v->text) == 0)
            return i;
    cfg_diag(ctx, MR_DIAG_ERROR, v, path, "'%s' is not one of %s", v->text, allowed);
    return -1;
}

/* A whole number in [0, max]; false after reporting anything else. */
static bool whole_number(cfg_ctx *ctx, const cy_node *v, const char *path, long long max, long long *out)
{
    if (v->kind == CY_INT && v->i >= 0 && v->i <= max) {
        *out = v->i;
        return true;
    }
    if (v->kind == CY_INT || v->kind == CY_FLOAT)
        cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a whole number from 0 to %lld, got %s", max, v->text);
    else
        cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a whole number, got %s", cy_kind_name(v));
    return false;
}

static void load_field(cfg_ctx *ctx, const cy_node *v, const char *path, const field *f, char *base)
{
    void *p = base + f->off;
    long long num;
    int idx;
    switch (f->kind) {
    case F_STR:
        if (v->kind != CY_STRING) {
            cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a string, got %s", cy_kind_name(v));
            return;
        }
        free(*(char **)p);
        *(char **)p = cfg_strdup(ctx, v->text);
        return;
    case F_BOOL:
        if (v->kind != CY_BOOL)
            cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected true/false, got %s", cy_kind_name(v));
        else
            *(bool *)p = v->b;
        return;
    case F_INT:
        if (whole_number(ctx, v, path, INT_MAX, &num))
            *(int *)p = (int)num;
        return;
    case F_LONG:
        if (whole_number(ctx, v, path, LONG_MAX, &num))
            *(long *)p = (long)num;
        return;
    case F_DOUBLE:
        if ((v->kind == CY_INT || v->kind == CY_FLOAT) && isfinite(v->d) && v->d >= 0)
            *(double *)p = v->d;
        else if (v->kind == CY_INT || v->kind == CY_FLOAT)
            cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a number >= 0, got %s", v->text);
        else
            cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a number, got %s", cy_kind_name(v));
        return;
    case F_ENUM:
        if ((idx = choose(ctx, v, path, f->values)) >= 0)
            *(int *)p = idx;
        return;
    case F_CHOICE:
        if ((idx = choose(ctx, v, path, f->values)) >= 0) {
            free(*(char **)p);
            *(char **)p = cfg_strdup(ctx, f->values[idx]);
        }
        return;
    case F_LIST:
        load_list(ctx, v, path, f->item, f->noun, p);
        return;
    case F_MAP:
        if (v->kind != CY_MAP)
            cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a mapping, got %s", cy_kind_name(v));
        return;
    case F_BLOCK:
        load_block(ctx, v, path, f->sub, p);
        return;
    case F_KEYED:
        load_keyed(ctx, v, path, f->entries, p, (size_t *)(base + f->count_off));
        return;
    case F_CUSTOM:
        f->fn(ctx, v, path, p);
        return;
    }
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void unknown_key(cfg_ctx *ctx, const cy_node *k, const char *path, const block *blk)
{
    const char *names[BLOCK_MAX_FIELDS + 1];
    size_t n = blk->n < BLOCK_MAX_FIELDS ? blk->n : BLOCK_MAX_FIELDS;
    for (size_t i = 0; i < n; i++)
        names[i] = blk->fields[i].key;
    char kpath[CFG_PATH_MAX];
    cfg_path_key(kpath, path, k->text);
    const char *hint = cfg_hint(k->text, names, n);
    if (hint) {
        cfg_diag(ctx, MR_DIAG_ERROR, k, kpath, "unknown key '%s'; did you mean '%s'?", k->text, hint);
        return;
    }
    /* Alphabetical: tables are in load order, which is not how a reader looks for a key. */
    qsort(names, n, sizeof *names, str_cmp);
    char allowed[512];
    names[n] = NULL;
    values_list(names, allowed, sizeof allowed);
    cfg_diag(ctx, MR_DIAG_ERROR, k, kpath, "unknown key '%s'; expected one of: %s", k->text, allowed);
}

/* A mapping checked against a table. null counts as an empty mapping. */
static void load_block(cfg_ctx *ctx, const cy_node *map, const char *path, const block *blk, void *base)
{
    if (map->kind != CY_MAP && map->kind != CY_NULL) {
        cfg_diag(ctx, MR_DIAG_ERROR, map, path, "expected a mapping, got %s", cy_kind_name(map));
        return;
    }
    for (size_t i = 0; i < map->n; i++) {
        const cy_node *k = cy_key(map, i);
        if (is_collection(k))
            continue; /* reported by the YAML pass */
        size_t j = 0;
        while (j < blk->n && strcmp(blk->fields[j].key, k->text) != 0)
            j++;
        if (j == blk->n)
            unknown_key(ctx, k, path, blk);
    }
    for (size_t j = 0; j < blk->n; j++) {
        const field *f = &blk->fields[j];
        const cy_node *v = cy_map_get(map, f->key);
        if (!v || v->kind == CY_NULL) {
            if (f->required)
                cfg_diag(ctx, MR_DIAG_ERROR, map, path, "missing required key '%s'", f->key);
            continue;
        }
        if (!cfg_visit(ctx))
            return;
        char fpath[CFG_PATH_MAX];
        cfg_path_key(fpath, path, f->key);
        load_field(ctx, v, fpath, f, base);
    }
}

/* ---- named entries: models, agents, teams, rooms and the authorization maps ---------------- */

struct keyed {
    size_t elem_size;
    size_t name_off;  /* char * in the element: the mapping key */
    const char *noun; /* "expected a mapping of <noun>" */
    void (*load)(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem);
};

/* A mapping of name -> settings into an array of elements, one per key, in file order. */
static void load_keyed(cfg_ctx *ctx, const cy_node *map, const char *path, const keyed *spec, void *arr_field,
                       size_t *count)
{
    if (map->kind != CY_MAP) {
        cfg_diag(ctx, MR_DIAG_ERROR, map, path, "expected a mapping of %s, got %s", spec->noun, cy_kind_name(map));
        return;
    }
    char *arr = cfg_calloc(ctx, map->n, spec->elem_size);
    if (!arr)
        return;
    memcpy(arr_field, &arr, sizeof arr);
    *count = 0;
    for (size_t i = 0; i < map->n && cfg_visit(ctx); i++) {
        const cy_node *k = cy_key(map, i);
        if (is_collection(k))
            continue;
        char *elem = arr + *count * spec->elem_size;
        char *name = cfg_strdup(ctx, k->text);
        if (!name)
            return;
        memcpy(elem + spec->name_off, &name, sizeof name);
        (*count)++;
        char epath[CFG_PATH_MAX];
        cfg_path_key(epath, path, k->text);
        spec->load(ctx, k, cy_val(map, i), epath, elem);
    }
}

/* A key the reference writes and this build accepts but does not act on: when on, a warning
 * naming it and what happens instead, never silence. */
static void warn_unbuilt(cfg_ctx *ctx, const cy_node *map, const char *path, const char *key, bool on,
                         const char *instead)
{
    const cy_node *k = on ? cy_map_get(map, key) : NULL;
    if (!k)
        return;
    char sub[CFG_PATH_MAX];
    cfg_path_key(sub, path, key);
    cfg_diag(ctx, MR_DIAG_WARNING, k, sub, "not implemented in this build: ignored (%s)", instead);
}

/* An optional mapping that is there and loaded (a wrong type is an error already). */
static bool has_map(const cy_node *map, const char *key)
{
    const cy_node *v = cy_map_get(map, key);
    return v && v->kind == CY_MAP;
}

static bool is_mem0(const char *backend)
{
    return backend && strcmp(backend, "mem0") == 0;
}

static const field model_fields[] = {
    {.key = "provider", .kind = F_CHOICE, .off = offsetof(mr_model_cfg, provider), .required = true,
     .values = mr_config_providers},
    STR_REQ(mr_model_cfg, id),
    STR(mr_model_cfg, host),
    STR(mr_model_cfg, api_key_env),
    LONG(mr_model_cfg, context_window),
    DOUBLE(mr_model_cfg, temperature),
    OPAQUE_MAP(extra_kwargs),
};
static const block model_block = BLOCK(model_fields);

static void load_model(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    (void)key;
    mr_model_cfg *m = elem;
    m->temperature = -1;
    load_block(ctx, v, path, &model_block, m);
    warn_unbuilt(ctx, v, path, "extra_kwargs", has_map(v, "extra_kwargs"), "the model is sent no extra arguments");
}

static const char *const private_pers[] = {"user", "user_agent", NULL};
_Static_assert(sizeof(mr_private_per) == sizeof(int), "enum size");

static const field private_fields[] = {
    {.key = "per", .kind = F_ENUM, .off = offsetof(mr_private_cfg, per), .values = private_pers, .required = true},
    STR(mr_private_cfg, root),
    STR(mr_private_cfg, template_dir),
    LIST(mr_private_cfg, context_files, IT_TEXT, "file paths"),
    OPAQUE_MAP(knowledge),
};
static const block private_block = BLOCK(private_fields);

/* Names the reference writes beside a private root, which the root may not start with. */
static const char *const private_reserved[] = {"sessions", "learning", "chroma", "knowledge_db", "memory_files",
                                               "calls", "agent_modes.json", "agent_modes.lock", "browser",
                                               "browser-profiles", ".sessions-recovery.lock", NULL};

static void load_private(cfg_ctx *ctx, const cy_node *v, const char *path, void *dest)
{
    mr_private_cfg *p = dest;
    p->configured = true;
    load_block(ctx, v, path, &private_block, p);
    const cy_node *root = cy_map_get(v, "root");
    char sub[CFG_PATH_MAX];
    if (root && root->kind == CY_STRING) {
        const char *r = root->text, *bad = NULL;
        if (!*r || r[0] == '/' || strcmp(r, "..") == 0 || strncmp(r, "../", 3) == 0 || strstr(r, "/../") ||
            (strlen(r) >= 3 && strcmp(r + strlen(r) - 3, "/..") == 0))
            bad = "must be a relative path that stays inside the private instance";
        for (size_t i = 0; !bad && private_reserved[i]; i++) {
            size_t n = strlen(private_reserved[i]);
            if (strncmp(r, private_reserved[i], n) == 0 && (r[n] == '\0' || r[n] == '/'))
                bad = "starts with a name MindRoom keeps beside the root (sessions, learning, memory_files, ...)";
        }
        cfg_path_key(sub, path, "root");
        if (bad)
            cfg_diag(ctx, MR_DIAG_ERROR, root, sub, "'%s' %s", r, bad);
    }
    static const char *const unbuilt[] = {"template_dir", "context_files", "knowledge"};
    for (size_t i = 0; i < sizeof unbuilt / sizeof *unbuilt; i++)
        warn_unbuilt(ctx, v, path, unbuilt[i], true,
                     "the private root starts empty and holds the agent's file memory");
}

static const field agent_fields[] = {
    STR(mr_agent_cfg, display_name),
    STR(mr_agent_cfg, role),
    STR(mr_agent_cfg, model),
    LIST(mr_agent_cfg, rooms, IT_ROOM, "room keys"),
    LIST(mr_agent_cfg, tools, IT_TOOL, "tool names"),
    LIST(mr_agent_cfg, skills, IT_TEXT, "skill names"),
    LIST(mr_agent_cfg, instructions, IT_TEXT, "strings"),
    LIST(mr_agent_cfg, context_files, IT_TEXT, "file paths"),
    LIST(mr_agent_cfg, knowledge_bases, IT_TEXT, "knowledge base names"),
    CHOICE(mr_agent_cfg, memory_backend, memory_backends),
    ENUM(mr_agent_cfg, thread_mode, thread_modes),
    BOOL(mr_agent_cfg, markdown),
    BOOL(mr_agent_cfg, show_tool_calls),
    BOOL(mr_agent_cfg, learning),
    INT(mr_agent_cfg, num_history_runs),
    {.key = "private", .kind = F_CUSTOM, .off = offsetof(mr_agent_cfg, private_state), .fn = load_private},
};
static const block agent_block = BLOCK(agent_fields);

static void load_agent(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    mr_agent_cfg *a = elem;
    a->markdown = ctx->cfg->defaults.markdown;
    a->show_tool_calls = ctx->cfg->defaults.show_tool_calls;
    load_block(ctx, v, path, &agent_block, a);
    cfg_default_str(ctx, &a->display_name, key->text);
    cfg_default_str(ctx, &a->role, "");
    cfg_default_str(ctx, &a->model, "default");
    warn_unbuilt(ctx, v, path, "skills", a->skills.len > 0, "the agent gets no skill's instructions");
    warn_unbuilt(ctx, v, path, "knowledge_bases", a->knowledge_bases.len > 0,
                 "no knowledge base is searched or put in the prompt");
    warn_unbuilt(ctx, v, path, "learning", a->learning, "the agent does not learn from its conversations");
    warn_unbuilt(ctx, v, path, "memory_backend", is_mem0(a->memory_backend),
                 "mem0 keeps no memory here; file keeps MEMORY.md and puts it in the prompt");
    if (a->private_state.configured && !a->private_state.root) {
        char *root = mr_str_printf("%s_data", key->text);
        cfg_default_str(ctx, &a->private_state.root, root ? root : "agent_data");
        free(root);
    }
}

static const field team_fields[] = {
    STR(mr_team_cfg, display_name),
    STR(mr_team_cfg, role),
    {.key = "agents", .kind = F_LIST, .off = offsetof(mr_team_cfg, agents), .required = true, .item = IT_TEXT,
     .noun = "agent names"},
    ENUM(mr_team_cfg, mode, team_modes),
    STR(mr_team_cfg, model),
    LIST(mr_team_cfg, rooms, IT_ROOM, "room keys"),
    LIST(mr_team_cfg, instructions, IT_TEXT, "strings"),
};
static const block team_block = BLOCK(team_fields);

static void load_team(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    mr_team_cfg *t = elem;
    load_block(ctx, v, path, &team_block, t);
    const cy_node *agents = cy_map_get(v, "agents");
    if (agents && agents->kind == CY_SEQ && agents->n == 0) {
        char apath[CFG_PATH_MAX];
        cfg_path_key(apath, path, "agents");
        cfg_diag(ctx, MR_DIAG_ERROR, agents, apath, "a team needs at least one agent");
    }
    cfg_default_str(ctx, &t->display_name, key->text);
    cfg_default_str(ctx, &t->role, "");
}

static const field room_fields[] = {
    STR(mr_room_cfg, display_name),
    STR(mr_room_cfg, topic),
    BOOL(mr_room_cfg, encrypted),
};
static const block room_block = BLOCK(room_fields);

static void load_room(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    const char *problem = key->text[0] == '#' || key->text[0] == '!'
                              ? "rooms: is keyed by managed room keys, not aliases or room IDs"
                              : room_key_problem(key->text);
    if (problem)
        cfg_diag(ctx, MR_DIAG_ERROR, key, path, "'%s' is not a valid room key: %s", key->text, problem);
    load_block(ctx, v, path, &room_block, elem);
}

static void load_room_perm(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    check_room_ref(ctx, key, path, key->text);
    load_list(ctx, v, path, IT_USER, "user IDs", &((mr_room_perm *)elem)->users);
}

static void load_alias_map(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    check_user(ctx, key, path, key->text, false);
    load_list(ctx, v, path, IT_USER, "user IDs", &((mr_alias_map *)elem)->aliases);
}

static const field reply_fields[] = {
    LIST(mr_reply_policy, users, IT_USER_GLOB, "user IDs or patterns"),
    LIST(mr_reply_policy, joined_rooms, IT_ROOM, "room keys"),
};
static const block reply_block = BLOCK(reply_fields);

/* Entity names are checked against the agents and teams in config_validate.c. */
static void load_reply(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    (void)key;
    mr_reply_policy *r = elem;
    if (v->kind == CY_SEQ)
        load_list(ctx, v, path, IT_USER_GLOB, "user IDs or patterns", &r->users);
    else if (v->kind == CY_MAP)
        load_block(ctx, v, path, &reply_block, r);
    else if (v->kind != CY_NULL)
        cfg_diag(ctx, MR_DIAG_ERROR, v, path,
                 "expected a list of user IDs or a mapping with users and joined_rooms, got %s", cy_kind_name(v));
}

/* A mapping of names to scalar values, kept as "<name><sep><value>" strings in order. Names are
 * checked by valid_name; values may not hold a line break (they end up in an environment or an
 * HTTP header). */
static void load_string_map(cfg_ctx *ctx, const cy_node *v, const char *path, mr_strlist *out, const char *sep,
                            bool (*valid_name)(const char *), const char *name_rule)
{
    if (v->kind != CY_MAP) {
        cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a mapping of names to values, got %s", cy_kind_name(v));
        return;
    }
    cfg_strlist_free(out);
    if (!(out->v = cfg_calloc(ctx, v->n, sizeof *out->v)))
        return;
    for (size_t i = 0; i < v->n; i++) {
        const cy_node *k = v->kids[2 * i], *val = v->kids[2 * i + 1];
        char kpath[CFG_PATH_MAX];
        cfg_path_key(kpath, path, k->text);
        if (!valid_name(k->text)) {
            cfg_diag(ctx, MR_DIAG_ERROR, k, kpath, "'%s' is not a valid name: %s", k->text, name_rule);
            continue;
        }
        if (val->kind == CY_SEQ || val->kind == CY_MAP || val->kind == CY_NULL) {
            cfg_diag(ctx, MR_DIAG_ERROR, val, kpath, "expected a string, got %s", cy_kind_name(val));
            continue;
        }
        if (strpbrk(val->text, "\r\n")) {
            cfg_diag(ctx, MR_DIAG_ERROR, val, kpath, "the value holds a line break");
            continue;
        }
        char *item = mr_str_printf("%s%s%s", k->text, sep, val->text);
        if (!item || !(out->v[out->len] = cfg_strdup(ctx, item))) {
            free(item);
            return;
        }
        free(item);
        out->len++;
    }
}

static bool env_name_ok(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

/* An HTTP field name: RFC 9110's token characters. */
static bool header_name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static void load_mcp_env(cfg_ctx *ctx, const cy_node *v, const char *path, void *dest)
{
    load_string_map(ctx, v, path, dest, "=", env_name_ok, "use letters, digits and _, not starting with a digit");
}

static void load_mcp_headers(cfg_ctx *ctx, const cy_node *v, const char *path, void *dest)
{
    load_string_map(ctx, v, path, dest, ": ", header_name_ok, "an HTTP header name");
}

static const field mcp_server_fields[] = {
    STR(mr_mcp_server_cfg, command),
    LIST(mr_mcp_server_cfg, args, IT_TEXT, "strings"),
    CUSTOM(mr_mcp_server_cfg, env, load_mcp_env),
    STR(mr_mcp_server_cfg, cwd),
    STR(mr_mcp_server_cfg, url),
    CUSTOM(mr_mcp_server_cfg, headers, load_mcp_headers),
    LONG(mr_mcp_server_cfg, timeout_seconds),
};
static const block mcp_server_block = BLOCK(mcp_server_fields);

static void load_mcp_server(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    mr_mcp_server_cfg *m = elem;
    load_block(ctx, v, path, &mcp_server_block, m);
    if (v->kind != CY_MAP)
        return;
    if (!env_name_ok(key->text) && !header_name_ok(key->text))
        cfg_diag(ctx, MR_DIAG_ERROR, key, path, "'%s' is not a valid MCP server name: use letters, digits, - and _",
                 key->text);
    if (!m->command == !m->url)
        cfg_diag(ctx, MR_DIAG_ERROR, v, path,
                 "set exactly one of command (a program speaking MCP on stdio) and url (a streamable HTTP "
                 "endpoint)");
    else if (m->url && strncmp(m->url, "http://", 7) != 0 && strncmp(m->url, "https://", 8) != 0)
        cfg_diag(ctx, MR_DIAG_ERROR, cy_map_get(v, "url"), path, "url '%s' is not an http:// or https:// URL",
                 m->url);
    else if (m->command && m->headers.len)
        cfg_diag(ctx, MR_DIAG_WARNING, cy_map_get(v, "headers"), path, "headers are only sent to url servers; "
                 "this one runs a command");
    else if (m->url && (m->args.len || m->env.len || m->cwd))
        cfg_diag(ctx, MR_DIAG_WARNING, v, path, "args, env and cwd only apply to command servers; this one has a url");
    if (m->timeout_seconds > 3600)
        cfg_diag(ctx, MR_DIAG_ERROR, cy_map_get(v, "timeout_seconds"), path,
                 "timeout_seconds is %ld; it must be 1 to 3600", m->timeout_seconds);
}

/* https://, or http:// to a loopback host (a provider run beside the instance, or a test's). */
static bool oauth_url_ok(const char *url)
{
    static const char *const loopback[] = {"127.0.0.1", "localhost", "[::1]"};
    if (strncmp(url, "https://", 8) == 0)
        return url[8] != '\0';
    if (strncmp(url, "http://", 7) != 0)
        return false;
    for (size_t i = 0; i < sizeof loopback / sizeof *loopback; i++) {
        size_t n = strlen(loopback[i]);
        if (strncmp(url + 7, loopback[i], n) == 0 && (!url[7 + n] || strchr(":/", url[7 + n])))
            return true;
    }
    return false;
}

/* The names mindroom-upstream-auth uses in MINDROOM_OAUTH_<NAME>_* and /api/oauth/<name>/. */
static bool oauth_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static const field oauth_provider_fields[] = {
    STR_REQ(mr_oauth_provider_cfg, authorize_url),
    STR_REQ(mr_oauth_provider_cfg, token_url),
    STR_REQ(mr_oauth_provider_cfg, client_id),
    STR(mr_oauth_provider_cfg, client_secret_env),
    LIST(mr_oauth_provider_cfg, scopes, IT_TEXT, "scope names"),
    STR_REQ(mr_oauth_provider_cfg, api_base_url),
};
static const block oauth_provider_block = BLOCK(oauth_provider_fields);

static void load_oauth_provider(cfg_ctx *ctx, const cy_node *key, const cy_node *v, const char *path, void *elem)
{
    mr_oauth_provider_cfg *p = elem;
    load_block(ctx, v, path, &oauth_provider_block, p);
    if (v->kind != CY_MAP)
        return;
    if (!oauth_name_ok(key->text))
        cfg_diag(ctx, MR_DIAG_ERROR, key, path, "'%s' is not a valid OAuth provider name: use 1 to 64 of a-z, 0-9 "
                 "and _", key->text);
    static const char *const urls[] = {"authorize_url", "token_url", "api_base_url"};
    char *const values[] = {p->authorize_url, p->token_url, p->api_base_url};
    for (size_t i = 0; i < 3; i++) {
        char upath[CFG_PATH_MAX];
        cfg_path_key(upath, path, urls[i]);
        if (values[i] && !oauth_url_ok(values[i]))
            cfg_diag(ctx, MR_DIAG_ERROR, cy_map_get(v, urls[i]), upath,
                     "'%s' must be an https:// URL (http:// only to a loopback host)", values[i]);
    }
    for (size_t i = 0; i < p->scopes.len; i++)
        if (!*p->scopes.v[i] || strpbrk(p->scopes.v[i], " \t\"\\")) {
            char spath[CFG_PATH_MAX];
            cfg_path_key(spath, path, "scopes");
            cfg_diag(ctx, MR_DIAG_ERROR, cy_map_get(v, "scopes"), spath,
                     "scope '%s' must be one non-empty token without spaces, quotes or backslashes", p->scopes.v[i]);
        }
    if (p->client_secret_env && !env_name_ok(p->client_secret_env)) {
        char epath[CFG_PATH_MAX];
        cfg_path_key(epath, path, "client_secret_env");
        cfg_diag(ctx, MR_DIAG_ERROR, cy_map_get(v, "client_secret_env"), epath,
                 "'%s' is not an environment variable name: use letters, digits and _, not starting with a digit",
                 p->client_secret_env);
    }
    if (!p->client_secret_env && oauth_name_ok(key->text)) {
        char var[96];
        snprintf(var, sizeof var, "MINDROOM_OAUTH_%s_CLIENT_SECRET", key->text);
        for (char *c = var; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        p->client_secret_env = cfg_strdup(ctx, var);
    }
}

static const keyed oauth_providers_spec = {sizeof(mr_oauth_provider_cfg), offsetof(mr_oauth_provider_cfg, name),
                                           "OAuth provider names to settings", load_oauth_provider};
static const keyed mcp_servers_spec = {sizeof(mr_mcp_server_cfg), offsetof(mr_mcp_server_cfg, name),
                                       "MCP server names to settings", load_mcp_server};
static const keyed models_spec = {sizeof(mr_model_cfg), offsetof(mr_model_cfg, name),
                                  "model names to settings", load_model};
static const keyed agents_spec = {sizeof(mr_agent_cfg), offsetof(mr_agent_cfg, name),
                                  "agent names to settings", load_agent};
static const keyed teams_spec = {sizeof(mr_team_cfg), offsetof(mr_team_cfg, name),
                                 "team names to settings", load_team};
static const keyed rooms_spec = {sizeof(mr_room_cfg), offsetof(mr_room_cfg, key),
                                 "room keys to settings", load_room};
static const keyed room_perms_spec = {sizeof(mr_room_perm), offsetof(mr_room_perm, room),
                                      "rooms to lists of user IDs", load_room_perm};
static const keyed aliases_spec = {sizeof(mr_alias_map), offsetof(mr_alias_map, canonical),
                                   "user IDs to lists of their bridged IDs", load_alias_map};
static const keyed replies_spec = {sizeof(mr_reply_policy), offsetof(mr_reply_policy, entity),
                                   "agent, team, 'router' or '*' to allowed users", load_reply};

/* ---- blocks --------------------------------------------------------------------------------- */

static const field router_fields[] = {
    STR(mr_router_cfg, model),
    BOOL(mr_router_cfg, accept_invites),
};
static const block router_block = BLOCK(router_fields);

static const field authz_fields[] = {
    LIST(mr_authz_cfg, global_users, IT_USER, "user IDs"),
    KEYED(mr_authz_cfg, "room_permissions", room_permissions, n_room_permissions, room_perms_spec),
    BOOL(mr_authz_cfg, default_room_access),
    KEYED(mr_authz_cfg, "aliases", aliases, n_aliases, aliases_spec),
    KEYED(mr_authz_cfg, "agent_reply_permissions", reply_permissions, n_reply_permissions, replies_spec),
};
static const block authz_block = BLOCK(authz_fields);

static const field mindroom_user_fields[] = {
    STR(mr_mindroom_user_cfg, username),
    STR(mr_mindroom_user_cfg, display_name),
};
static const block mindroom_user_block = BLOCK(mindroom_user_fields);

static void load_mindroom_user(cfg_ctx *ctx, const cy_node *v, const char *path, void *dest)
{
    mr_mindroom_user_cfg *u = dest;
    u->configured = true;
    load_block(ctx, v, path, &mindroom_user_block, u);
    const cy_node *name = cy_map_get(v, "username");
    if (name && name->kind == CY_STRING && !mr_id_localpart_is_modern(name->text)) {
        char upath[CFG_PATH_MAX];
        cfg_path_key(upath, path, "username");
        cfg_diag(ctx, MR_DIAG_ERROR, name, upath,
                 "'%s' is not a valid username: use only a-z, 0-9 and the characters ._=/+-", name->text);
    }
}

static const field room_access_fields[] = {
    ENUM(mr_room_access_cfg, mode, access_modes),
    ENUM(mr_room_access_cfg, multi_user_join_rule, join_rules),
    BOOL(mr_room_access_cfg, publish_to_room_directory),
    LIST(mr_room_access_cfg, invite_only_rooms, IT_ROOM, "room keys"),
    BOOL(mr_room_access_cfg, reconcile_existing_rooms),
    BOOL(mr_room_access_cfg, encrypt_managed_rooms),
    LIST(mr_room_access_cfg, room_admins, IT_USER, "user IDs"),
};
static const block room_access_block = BLOCK(room_access_fields);

static const field space_fields[] = {
    BOOL(mr_space_cfg, enabled),
    STR(mr_space_cfg, name),
};
static const block space_block = BLOCK(space_fields);

static const field defaults_fields[] = {
    BOOL(mr_defaults_cfg, markdown),
    BOOL(mr_defaults_cfg, enable_streaming),
    BOOL(mr_defaults_cfg, show_stop_button),
    BOOL(mr_defaults_cfg, show_tool_calls),
    INT(mr_defaults_cfg, num_history_runs),
    LIST(mr_defaults_cfg, tools, IT_TOOL, "tool names"),
    LIST(mr_defaults_cfg, worker_tools, IT_TOOL, "tool names"),
    OPAQUE_MAP(compaction),
};
static const block defaults_block = BLOCK(defaults_fields);

static const field memory_fields[] = {
    CHOICE(mr_memory_cfg, backend, memory_backends),
    OPAQUE_MAP(embedder),
};
static const block memory_block = BLOCK(memory_fields);

/* An IANA zone this system has (schedules keep their wall times in it). */
static void load_timezone(cfg_ctx *ctx, const cy_node *v, const char *path, void *dest)
{
    if (v->kind != CY_STRING) {
        cfg_diag(ctx, MR_DIAG_ERROR, v, path, "expected a time zone name such as Europe/Berlin, got %s",
                 cy_kind_name(v));
        return;
    }
    mr_tz *tz = NULL;
    mr_err err = {0};
    if (mr_tz_open(v->text, &tz, &err) != MR_OK) {
        cfg_diag(ctx, MR_DIAG_ERROR, v, path, "%s", err.msg);
        return;
    }
    mr_tz_free(tz);
    free(*(char **)dest);
    *(char **)dest = cfg_strdup(ctx, v->text);
}

/* Loaded in this order: defaults first, since agents inherit from it. */
static const field top_fields[] = {
    SUB(mr_config, defaults, defaults_block),
    KEYED(mr_config, "models", models, n_models, models_spec),
    KEYED(mr_config, "agents", agents, n_agents, agents_spec),
    KEYED(mr_config, "teams", teams, n_teams, teams_spec),
    SUB(mr_config, router, router_block),
    KEYED(mr_config, "rooms", rooms, n_rooms, rooms_spec),
    SUB(mr_config, authorization, authz_block),
    LIST(mr_config, bot_accounts, IT_USER, "user IDs"),
    CUSTOM(mr_config, mindroom_user, load_mindroom_user),
    SUB(mr_config, matrix_room_access, room_access_block),
    SUB(mr_config, matrix_space, space_block),
    SUB(mr_config, memory, memory_block),
    KEYED(mr_config, "mcp_servers", mcp_servers, n_mcp_servers, mcp_servers_spec),
    KEYED(mr_config, "oauth_providers", oauth_providers, n_oauth_providers, oauth_providers_spec),
    CUSTOM(mr_config, timezone, load_timezone),
    INT(mr_config, scheduler_catch_up_grace_seconds),
};
static const block top_block = BLOCK(top_fields);

void cfg_load_root(cfg_ctx *ctx, const cy_node *root)
{
    if (!root || root->kind == CY_NULL)
        return;
    if (root->kind != CY_MAP) {
        cfg_diag(ctx, MR_DIAG_ERROR, root, "", "the top level must be a mapping of settings (models:, agents:, ...), got %s",
                 cy_kind_name(root));
        return;
    }
    load_block(ctx, root, "", &top_block, ctx->cfg);
    const mr_config *c = ctx->cfg;
    const cy_node *defaults = cy_map_get(root, "defaults"), *memory = cy_map_get(root, "memory");
    if (defaults && defaults->kind == CY_MAP) {
        warn_unbuilt(ctx, defaults, "defaults", "show_stop_button", c->defaults.show_stop_button,
                     "answers have no stop button");
        warn_unbuilt(ctx, defaults, "defaults", "worker_tools", c->defaults.worker_tools.len > 0,
                     "tools run in the agent's process, none on a worker");
        warn_unbuilt(ctx, defaults, "defaults", "compaction", has_map(defaults, "compaction"),
                     "the prompt keeps the last num_history_runs exchanges, never a summary");
    }
    if (memory && memory->kind == CY_MAP) {
        warn_unbuilt(ctx, memory, "memory", "backend", is_mem0(c->memory.backend),
                     "mem0 keeps no memory here; file keeps MEMORY.md and puts it in the prompt");
        warn_unbuilt(ctx, memory, "memory", "embedder", has_map(memory, "embedder"), "only mem0 uses an embedder");
    }
}
