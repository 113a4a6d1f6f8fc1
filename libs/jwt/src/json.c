/* json.c -- the JSON of a JWT's header and claims: one object whose members are read by name.
 *
 * A token is parsed on every strict-mode request, and jansson's trees (a hash table, an
 * allocation a name and a value) cost about a tenth of a request of upstream-auth without the
 * token cache. This parser makes one allocation an object (two with its member list) and refuses
 * all jansson refuses with JSON_REJECT_DUPLICATES (fuzz_jwt_json holds the two to it), and a NUL
 * byte between tokens besides, which jansson 2.14 may skip: nesting deeper than 2048, escapes
 * decoded before names compare (a name spelled "\u0065xp" is "exp"), surrogates paired, valid
 * UTF-8 only, no \u0000, no duplicate member names in any object, integers within 64 bits, reals
 * within a double, nothing after the value. Values nested in arrays and objects are checked and
 * skipped; only the strings of a top-level array are read again (aud). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt_internal.h"
#include "mindroom/str.h"

/* jansson's own limits: nesting 2048 deep, integers within 64 bits, reals within a double. */
#define MAX_DEPTH 2048

typedef struct parser {
    const char *start, *at, *end;
    char *arena;          /* unescaped strings, NUL-terminated; never longer than their source */
    mr_jwt_json *obj;     /* members are recorded at depth 1 only */
    char *why;
    size_t why_cap;
    bool nomem;
} parser;

static bool fail(parser *p, const char *what)
{
    snprintf(p->why, p->why_cap, "%s at character %zu", what, (size_t)(p->at - p->start) + 1);
    return false;
}

static void skip_ws(parser *p)
{
    while (p->at < p->end && (*p->at == ' ' || *p->at == '\t' || *p->at == '\n' || *p->at == '\r'))
        p->at++;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8_put(unsigned long cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The \uXXXX escape at p->at (past the backslash and 'u'), a surrogate pair whole; the code point
 * in *cp. */
static bool unicode_escape(parser *p, unsigned long *cp)
{
    int hi = p->end - p->at >= 4 ? hex4(p->at) : -1;
    if (hi < 0)
        return fail(p, "a \\u escape without four hex digits");
    p->at += 4;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return fail(p, "a lone low surrogate");
    if (hi >= 0xD800 && hi <= 0xDBFF) {
        int lo = p->end - p->at >= 6 && p->at[0] == '\\' && p->at[1] == 'u' ? hex4(p->at + 2) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(p, "a high surrogate without its low half");
        p->at += 6;
        *cp = 0x10000 + (((unsigned long)hi - 0xD800) << 10) + ((unsigned long)lo - 0xDC00);
        return true;
    }
    if (hi == 0)
        return fail(p, "\\u0000");
    *cp = (unsigned long)hi;
    return true;
}

/* The string at p->at (its opening quote), unescaped into the arena when out is not NULL. */
static bool parse_string(parser *p, const char **out)
{
    char *w = p->arena;
    p->at++;
    for (;;) {
        if (p->at >= p->end)
            return fail(p, "an unterminated string");
        unsigned char c = (unsigned char)*p->at;
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, "a control character in a string");
        if (c == '\\') {
            if (++p->at >= p->end)
                return fail(p, "an unterminated string");
            char e = *p->at++;
            unsigned long cp = 0;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (!unicode_escape(p, &cp))
                    return false;
                break;
            default: p->at--; return fail(p, "an invalid escape");
            }
            w += utf8_put(cp, w);
            continue;
        }
        if (c < 0x80) {
            /* A run of plain ASCII at once: the claims are mostly that. */
            const char *run = p->at + 1;
            while (run < p->end && (unsigned char)*run >= 0x20 && (unsigned char)*run < 0x80 && *run != '"' &&
                   *run != '\\')
                run++;
            memcpy(w, p->at, (size_t)(run - p->at));
            w += run - p->at;
            p->at = run;
            continue;
        }
        /* The text ends in a NUL, at which mr_utf8_seq_len stops. */
        size_t n = mr_utf8_seq_len(p->at);
        if (n == 0 || n > (size_t)(p->end - p->at))
            return fail(p, "invalid UTF-8");
        memcpy(w, p->at, n);
        w += n;
        p->at += n;
    }
    p->at++;
    *w++ = '\0';
    if (out)
        *out = p->arena;
    p->arena = w;
    return true;
}

static bool digits(parser *p)
{
    const char *from = p->at;
    while (p->at < p->end && *p->at >= '0' && *p->at <= '9')
        p->at++;
    return p->at > from;
}

/* RFC 8259 section 6, then strtoll or strtod on the text: an integer past 64 bits or a real past
 * a double's range is refused, as jansson does. */
static bool parse_number(parser *p, double *out)
{
    const char *from = p->at;
    bool integer = true;
    if (p->at < p->end && *p->at == '-')
        p->at++;
    if (p->at < p->end && *p->at == '0')
        p->at++;
    else if (!digits(p))
        return fail(p, "a malformed number");
    if (p->at < p->end && *p->at == '.') {
        p->at++;
        integer = false;
        if (!digits(p))
            return fail(p, "a malformed number");
    }
    if (p->at < p->end && (*p->at == 'e' || *p->at == 'E')) {
        p->at++;
        integer = false;
        if (p->at < p->end && (*p->at == '+' || *p->at == '-'))
            p->at++;
        if (!digits(p))
            return fail(p, "a malformed number");
    }
    /* The text goes on past the number, but only with a character that ends it for strtoll and
     * strtod as well, or the parse fails and the value is never read. */
    errno = 0;
    if (integer) {
        long long i = strtoll(from, NULL, 10);
        if (errno == ERANGE)
            return fail(p, "an integer out of range");
        *out = (double)i;
        return true;
    }
    double v = strtod(from, NULL);
    if (errno == ERANGE && isinf(v))
        return fail(p, "a number out of range");
    *out = v;
    return true;
}

static bool literal(parser *p, const char *word, size_t n)
{
    if ((size_t)(p->end - p->at) < n || memcmp(p->at, word, n) != 0)
        return fail(p, "an invalid literal");
    p->at += n;
    return true;
}

static bool parse_value(parser *p, int depth, mr_jwt_json_value *v);

static bool record(parser *p, const char *name, const mr_jwt_json_value *v)
{
    mr_jwt_json *o = p->obj;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 8;
        mr_jwt_json_member *m = realloc(o->members, cap * sizeof *m);
        if (!m) {
            p->nomem = true;
            return fail(p, "out of memory");
        }
        o->members = m;
        o->cap = cap;
    }
    o->members[o->n++] = (mr_jwt_json_member){name, *v};
    return true;
}

/* The members of the object at p->at (its '{'), recorded into p->obj at depth 1. Names are
 * compared once unescaped, so a duplicate is found however it is spelled; a nested object keeps
 * its names in a list of its own. */
static bool parse_object(parser *p, int depth)
{
    bool top = depth == 1 && p->obj;
    const char **nested = NULL;
    size_t n_nested = 0, cap_nested = 0;
    bool ok = false;
    p->at++;
    skip_ws(p);
    if (p->at < p->end && *p->at == '}') {
        p->at++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        if (p->at >= p->end || *p->at != '"') {
            fail(p, "a member without a quoted name");
            break;
        }
        const char *name, *name_at = p->at;
        if (!parse_string(p, &name))
            break;
        size_t n = top ? p->obj->n : n_nested;
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(top ? p->obj->members[i].name : nested[i], name) == 0;
        if (dup) {
            p->at = name_at;
            fail(p, "a duplicate member name");
            break;
        }
        if (!top && n_nested == cap_nested) {
            cap_nested = cap_nested ? 2 * cap_nested : 8;
            const char **grown = realloc(nested, cap_nested * sizeof *grown);
            if (!grown) {
                p->nomem = true;
                fail(p, "out of memory");
                break;
            }
            nested = grown;
        }
        if (!top)
            nested[n_nested++] = name;
        skip_ws(p);
        if (p->at >= p->end || *p->at != ':') {
            fail(p, "a member without ':'");
            break;
        }
        p->at++;
        skip_ws(p);
        mr_jwt_json_value v = {0};
        if (!parse_value(p, depth, &v) || (top && !record(p, name, &v)))
            break;
        skip_ws(p);
        if (p->at < p->end && *p->at == ',') {
            p->at++;
            continue;
        }
        if (p->at < p->end && *p->at == '}') {
            p->at++;
            ok = true;
        } else {
            fail(p, "an object without ',' or '}'");
        }
        break;
    }
    free(nested);
    return ok;
}

static bool parse_array(parser *p, int depth)
{
    p->at++;
    skip_ws(p);
    if (p->at < p->end && *p->at == ']') {
        p->at++;
        return true;
    }
    for (;;) {
        skip_ws(p);
        mr_jwt_json_value v = {0};
        if (!parse_value(p, depth, &v))
            return false;
        skip_ws(p);
        if (p->at < p->end && *p->at == ',') {
            p->at++;
            continue;
        }
        if (p->at < p->end && *p->at == ']') {
            p->at++;
            return true;
        }
        return fail(p, "an array without ',' or ']'");
    }
}

/* The value at p->at, inside containers `depth` deep. */
static bool parse_value(parser *p, int depth, mr_jwt_json_value *v)
{
    if (p->at >= p->end)
        return fail(p, "a missing value");
    if (depth >= MAX_DEPTH)
        return fail(p, "nesting too deep");
    const char *from = p->at;
    switch (*p->at) {
    case '"':
        v->kind = MR_JWT_JSON_STRING;
        return parse_string(p, &v->str);
    case '{':
        v->kind = MR_JWT_JSON_OBJECT;
        return parse_object(p, depth + 1);
    case '[':
        v->kind = MR_JWT_JSON_ARRAY;
        if (!parse_array(p, depth + 1))
            return false;
        v->raw = from;
        v->raw_len = (size_t)(p->at - from);
        return true;
    case 't': v->kind = MR_JWT_JSON_TRUE; return literal(p, "true", 4);
    case 'f': v->kind = MR_JWT_JSON_FALSE; return literal(p, "false", 5);
    case 'n': v->kind = MR_JWT_JSON_NULL; return literal(p, "null", 4);
    default:
        if (*p->at == '-' || (*p->at >= '0' && *p->at <= '9')) {
            v->kind = MR_JWT_JSON_NUMBER;
            return parse_number(p, &v->num);
        }
        return fail(p, "an unexpected character");
    }
}

/* Sets up a parser over len bytes at text, with an arena for its strings. */
static bool parser_open(parser *p, const char *text, size_t len, mr_jwt_json *obj, char *why, size_t cap)
{
    *p = (parser){.start = text, .at = text, .end = text + len, .obj = obj, .why = why, .why_cap = cap};
    p->arena = malloc(len + 1);
    if (!p->arena)
        snprintf(why, cap, "out of memory for %zu bytes of JSON", len);
    return p->arena != NULL;
}

mr_jwt_json_status mr_jwt_json_parse(const char *text, size_t len, mr_jwt_json *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    parser p;
    if (!parser_open(&p, text, len, out, why, cap))
        return MR_JWT_JSON_NOMEM;
    out->arena = p.arena;
    skip_ws(&p);
    bool object = p.at < p.end && *p.at == '{';
    mr_jwt_json_value v = {0};
    bool ok = parse_value(&p, 0, &v);
    if (ok) {
        skip_ws(&p);
        if (p.at < p.end)
            ok = fail(&p, "text after the value");
    }
    if (!ok) {
        mr_jwt_json_free(out);
        return p.nomem ? MR_JWT_JSON_NOMEM : MR_JWT_JSON_INVALID;
    }
    if (!object) {
        mr_jwt_json_free(out);
        return MR_JWT_JSON_NOT_OBJECT;
    }
    return MR_JWT_JSON_OK;
}

const mr_jwt_json_value *mr_jwt_json_get(const mr_jwt_json *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->members[i].name, name) == 0)
            return &o->members[i].v;
    return NULL;
}

const char *mr_jwt_json_string(const mr_jwt_json *o, const char *name)
{
    const mr_jwt_json_value *v = mr_jwt_json_get(o, name);
    return v && v->kind == MR_JWT_JSON_STRING ? v->str : NULL;
}

bool mr_jwt_json_array_has(const mr_jwt_json_value *array, const char *want)
{
    char why[64];
    parser p;
    if (array->kind != MR_JWT_JSON_ARRAY ||
        !parser_open(&p, array->raw, array->raw_len, NULL, why, sizeof why))
        return false;
    char *arena = p.arena;
    bool found = false;
    /* The array was checked whole by the first parse: this one only walks it. */
    p.at++;
    for (;;) {
        skip_ws(&p);
        if (p.at >= p.end || *p.at == ']')
            break;
        mr_jwt_json_value v = {0};
        if (!parse_value(&p, 1, &v))
            break;
        if (v.kind == MR_JWT_JSON_STRING && strcmp(v.str, want) == 0) {
            found = true;
            break;
        }
        skip_ws(&p);
        if (p.at < p.end && *p.at == ',')
            p.at++;
    }
    free(arena);
    return found;
}

void mr_jwt_json_free(mr_jwt_json *o)
{
    free(o->members);
    free(o->arena);
    memset(o, 0, sizeof *o);
}
