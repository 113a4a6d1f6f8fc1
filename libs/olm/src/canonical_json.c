/* canonical_json.c -- Matrix canonical JSON: the bytes every signature in Matrix is made over. */
#include "olm_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/str.h"

/* Integers must fit an IEEE double exactly: [-(2^53)+1, (2^53)-1]. */
#define CANONICAL_INT_MAX 9007199254740991LL

/* The shortest form: only '"', '\\' and control characters are escaped (lower-case hex), everything
 * else is the UTF-8 byte itself. A failed append stays on the buffer, which the caller checks at
 * the end; bytes that are not UTF-8 (jansson checks its strings, so only a bug) are an error. */
static mr_code put_string(mr_strbuf *b, const char *s, size_t n, mr_err *err)
{
    if (!mr_strbuf_add_json_string(b, s, n, false) && mr_strbuf_ok(b))
        return mr_err_set(err, MR_EINVAL, "canonical JSON: a string that is not UTF-8");
    return MR_OK;
}

static mr_code put_integer(mr_strbuf *b, long long v, const char *where, mr_err *err)
{
    if (v > CANONICAL_INT_MAX || v < -CANONICAL_INT_MAX)
        return mr_err_set(err, MR_EINVAL, "canonical JSON: the integer %lld at \"%s\" is outside +-(2^53 - 1)", v,
                          where);
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", v);
    mr_strbuf_add(b, num, (size_t)n);
    return MR_OK;
}

static int compare_keys(const void *a, const void *b)
{
    /* Byte order of UTF-8 is code point order, which the spec asks for. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static mr_code put_value(mr_strbuf *b, const json_t *v, const char *where, mr_err *err);

static mr_code put_object(mr_strbuf *b, const json_t *v, mr_err *err)
{
    size_t n = json_object_size(v);
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys)
        return mr_err_set(err, MR_ENOMEM, "canonical JSON: out of memory sorting %zu keys", n);
    size_t i = 0;
    const char *key;
    json_t *member;
    json_object_foreach((json_t *)v, key, member)
        keys[i++] = key;
    qsort(keys, n, sizeof *keys, compare_keys);
    mr_code rc = MR_OK;
    mr_strbuf_add(b, "{", 1);
    for (i = 0; i < n && rc == MR_OK; i++) {
        if (i > 0)
            mr_strbuf_add(b, ",", 1);
        rc = put_string(b, keys[i], strlen(keys[i]), err);
        mr_strbuf_add(b, ":", 1);
        if (rc == MR_OK)
            rc = put_value(b, json_object_get(v, keys[i]), keys[i], err);
    }
    mr_strbuf_add(b, "}", 1);
    free(keys);
    return rc;
}

static mr_code put_value(mr_strbuf *b, const json_t *v, const char *where, mr_err *err)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return put_object(b, v, err);
    case JSON_ARRAY: {
        mr_strbuf_add(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                mr_strbuf_add(b, ",", 1);
            mr_code rc = put_value(b, json_array_get(v, i), where, err);
            if (rc != MR_OK)
                return rc;
        }
        mr_strbuf_add(b, "]", 1);
        return MR_OK;
    }
    case JSON_STRING:
        return put_string(b, json_string_value(v), json_string_length(v), err);
    case JSON_INTEGER:
        return put_integer(b, (long long)json_integer_value(v), where, err);
    case JSON_REAL: {
        /* 1e10 parses as a real; the spec's examples write it as the integer it is. */
        double d = json_real_value(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > (double)CANONICAL_INT_MAX)
            return mr_err_set(err, MR_EINVAL, "canonical JSON: the number %g at \"%s\" is not an integer", d,
                              where);
        return put_integer(b, (long long)d, where, err);
    }
    case JSON_TRUE:
        mr_strbuf_puts(b, "true");
        return MR_OK;
    case JSON_FALSE:
        mr_strbuf_puts(b, "false");
        return MR_OK;
    case JSON_NULL:
        mr_strbuf_puts(b, "null");
        return MR_OK;
    }
    return mr_err_set(err, MR_EINVAL, "canonical JSON: unknown value type at \"%s\"", where);
}

mr_code mr_olm_canonical_json(const json_t *v, char **out, size_t *len, mr_err *err)
{
    *out = NULL;
    if (len)
        *len = 0;
    if (!v)
        return mr_err_set(err, MR_EINVAL, "canonical JSON: no value");
    mr_strbuf b = {0};
    mr_code rc = put_value(&b, v, "(top level)", err);
    if (rc == MR_OK && (b.failed || !b.s))
        rc = mr_err_set(err, MR_ENOMEM, "canonical JSON: out of memory");
    if (rc != MR_OK) {
        free(b.s);
        return rc;
    }
    *out = b.s;
    if (len)
        *len = b.len;
    return MR_OK;
}
