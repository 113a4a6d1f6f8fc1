/* proto_rules.c -- the schema keywords the generated validators are made of, each failing with
 * the path of the field and what is wrong with it. */
#include "proto_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mindroom/ids.h"

/* Longest value quoted back in a message. */
#define QUOTE_MAX 80

static const char *path_text(const proto_path *p)
{
    return p->len ? p->text : "message";
}

static int fail(mr_err *err, const proto_path *p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(mr_err *err, const proto_path *p, const char *fmt, ...)
{
    char what[MR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    mr_err_set(err, MR_EINVAL, "%s: %s", path_text(p), what);
    return -1;
}

/* Appends ".key" (or "key" at the root) or "[i]", returning the length to restore. */
static size_t push(proto_path *p, const char *key, size_t index)
{
    size_t was = p->len;
    int n = key ? snprintf(p->text + p->len, sizeof p->text - p->len, "%s%s", p->len ? "." : "", key)
                : snprintf(p->text + p->len, sizeof p->text - p->len, "[%zu]", index);
    p->len += n < 0 ? 0 : (size_t)n;
    if (p->len > PROTO_PATH_MAX)
        p->len = PROTO_PATH_MAX;
    return was;
}

static void pop(proto_path *p, size_t was)
{
    p->len = was;
    p->text[was] = '\0';
}

mr_code proto_run(const json_t *msg, proto_check_fn check, mr_err *err)
{
    proto_path p = {.len = 0};
    if (!msg)
        return mr_err_set(err, MR_EINVAL, "message: missing");
    return check(msg, &p, err) == 0 ? MR_OK : MR_EINVAL;
}

bool proto_holds(const json_t *v, proto_check_fn check, const proto_path *p)
{
    proto_path scratch = *p;
    mr_err ignored = {0};
    return check(v, &scratch, &ignored) == 0;
}

static const char *const type_words[] = {
    [PROTO_OBJECT] = "an object", [PROTO_STRING] = "a string", [PROTO_INTEGER] = "an integer",
    [PROTO_BOOLEAN] = "a boolean", [PROTO_ARRAY] = "an array",
};

int proto_type(const json_t *v, proto_json_type t, const proto_path *p, mr_err *err)
{
    bool ok = false;
    switch (t) {
    case PROTO_OBJECT: ok = json_is_object(v); break;
    case PROTO_STRING: ok = json_is_string(v); break;
    case PROTO_INTEGER: ok = json_is_integer(v); break;
    case PROTO_BOOLEAN: ok = json_is_boolean(v); break;
    case PROTO_ARRAY: ok = json_is_array(v); break;
    }
    if (!ok)
        return fail(err, p, "not %s", type_words[t]);
    /* Services read strings as C strings: a NUL inside would cut what they see short. */
    if (t == PROTO_STRING && strlen(json_string_value(v)) != json_string_length(v))
        return fail(err, p, "holds a NUL character");
    return 0;
}

int proto_const_bool(const json_t *v, bool want, const proto_path *p, mr_err *err)
{
    if (!json_is_boolean(v) || json_is_true(v) != want)
        return fail(err, p, "expected %s", want ? "true" : "false");
    return 0;
}

int proto_const_int(const json_t *v, json_int_t want, const proto_path *p, mr_err *err)
{
    if (!json_is_integer(v) || json_integer_value(v) != want)
        return fail(err, p, "expected %" JSON_INTEGER_FORMAT, want);
    return 0;
}

/* s as quoted back in a message: its first QUOTE_MAX bytes, "..." when there is more. */
static const char *quote(const char *s, char buf[QUOTE_MAX + 4])
{
    snprintf(buf, QUOTE_MAX + 4, "%.*s%s", QUOTE_MAX, s, strlen(s) > QUOTE_MAX ? "..." : "");
    return buf;
}

int proto_const_string(const json_t *v, const char *want, const proto_path *p, mr_err *err)
{
    char q[QUOTE_MAX + 4];
    if (!json_is_string(v))
        return fail(err, p, "expected \"%s\"", want);
    if (strlen(want) != json_string_length(v) || strcmp(json_string_value(v), want) != 0)
        return fail(err, p, "expected \"%s\", got \"%s\"", want, quote(json_string_value(v), q));
    return 0;
}

int proto_enum(const json_t *v, const char *const *allowed, size_t n, const proto_path *p, mr_err *err)
{
    char list[MR_ERR_MSG_MAX / 2] = "";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (json_is_string(v) && strlen(allowed[i]) == json_string_length(v) &&
            strcmp(json_string_value(v), allowed[i]) == 0)
            return 0;
        int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", allowed[i]);
        used += w < 0 || (size_t)w >= sizeof list - used ? 0 : (size_t)w;
    }
    char q[QUOTE_MAX + 4];
    if (!json_is_string(v))
        return fail(err, p, "not one of %s", list);
    return fail(err, p, "\"%s\" is not one of %s", quote(json_string_value(v), q), list);
}

/* Characters as JSON Schema counts them: code points, that is UTF-8 bytes that do not continue
 * a sequence (jansson only holds valid UTF-8). */
static size_t characters(const json_t *v)
{
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    size_t n = 0;
    for (size_t i = 0; i < json_string_length(v); i++)
        n += (s[i] & 0xC0) != 0x80;
    return n;
}

int proto_length(const json_t *v, long min, long max, const proto_path *p, mr_err *err)
{
    size_t n = characters(v);
    if (n < (size_t)min)
        return min == 1 ? fail(err, p, "empty") : fail(err, p, "shorter than %ld characters", min);
    if (max >= 0 && n > (size_t)max)
        return fail(err, p, "longer than %ld characters", max);
    return 0;
}

int proto_charset(const char *s, const char *chars, long min, long max, const char *pattern,
                  const proto_path *p, mr_err *err)
{
    size_t n = strlen(s);
    char q[QUOTE_MAX + 4];
    if (strspn(s, chars) != n || n < (size_t)min || (max >= 0 && n > (size_t)max))
        return fail(err, p, "\"%s\" does not match %s", quote(s, q), pattern);
    return 0;
}

/* The libs/core grammar's complaint ("'x' is not a valid user ID: ...") under the path. */
static int id(mr_code (*parse)(const char *, mr_id *, mr_err *), const char *s, const proto_path *p,
              mr_err *err)
{
    mr_err why = {0};
    if (parse(s, NULL, &why) != MR_OK)
        return fail(err, p, "%s", why.msg);
    return 0;
}

int proto_user_id(const char *s, const proto_path *p, mr_err *err) { return id(mr_id_parse_user, s, p, err); }
int proto_room_id(const char *s, const proto_path *p, mr_err *err) { return id(mr_id_parse_room_id, s, p, err); }
int proto_room_alias(const char *s, const proto_path *p, mr_err *err)
{
    return id(mr_id_parse_room_alias, s, p, err);
}

/* ^\$.+$: the sigil and at least one character, no line break (an event ID is opaque). */
int proto_event_id(const char *s, const proto_path *p, mr_err *err)
{
    char q[QUOTE_MAX + 4];
    if (s[0] != '$' || !s[1] || strpbrk(s, "\n\r"))
        return fail(err, p, "\"%s\" is not an event ID: '$' and one or more characters on one line",
                    quote(s, q));
    return 0;
}

int proto_range(const json_t *v, bool has_min, json_int_t min, bool has_max, json_int_t max,
                const proto_path *p, mr_err *err)
{
    json_int_t n = json_integer_value(v);
    if (has_min && n < min)
        return fail(err, p, "%" JSON_INTEGER_FORMAT " is less than %" JSON_INTEGER_FORMAT, n, min);
    if (has_max && n > max)
        return fail(err, p, "%" JSON_INTEGER_FORMAT " is more than %" JSON_INTEGER_FORMAT, n, max);
    return 0;
}

int proto_missing(const proto_path *p, const char *key, const char *when, mr_err *err)
{
    proto_path at = *p;
    push(&at, key, 0);
    return when ? fail(err, &at, "missing (required when %s)", when) : fail(err, &at, "missing");
}

int proto_field(const json_t *obj, const char *key, bool required, proto_check_fn check, proto_path *p,
                mr_err *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? proto_missing(p, key, NULL, err) : 0;
    size_t was = push(p, key, 0);
    int rc = check(v, p, err);
    pop(p, was);
    return rc;
}

static bool known_field(const char *key, const char *const *known, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, known[i]) == 0)
            return true;
    return false;
}

int proto_no_other_fields(const json_t *obj, const char *const *known, size_t n, const proto_path *p,
                          mr_err *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (!known_field(key, known, n)) {
            proto_path at = *p;
            push(&at, key, 0);
            return fail(err, &at, "not a field of this message (proto/schemas)");
        }
    }
    return 0;
}

int proto_other_fields(const json_t *obj, const char *const *known, size_t n, proto_check_fn check,
                       proto_path *p, mr_err *err)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (known_field(key, known, n))
            continue;
        size_t was = push(p, key, 0);
        int rc = check(v, p, err);
        pop(p, was);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int proto_items(const json_t *arr, proto_check_fn check, proto_path *p, mr_err *err)
{
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        size_t was = push(p, NULL, i);
        int rc = check(v, p, err);
        pop(p, was);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int proto_unique(const json_t *arr, const proto_path *p, mr_err *err)
{
    size_t n = json_array_size(arr);
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (json_equal(json_array_get(arr, i), json_array_get(arr, j))) {
                proto_path at = *p;
                push(&at, NULL, i);
                return fail(err, &at, "the same as [%zu]: items must be unique", j);
            }
    return 0;
}
