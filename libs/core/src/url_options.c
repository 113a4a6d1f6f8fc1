/* url_options.c -- "name=value&name=value" options of bus and store URLs, each checked. */
#include "mindroom/url_options.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

static bool is_prefix(const char *v, size_t len)
{
    return len >= 1 && len <= MR_URL_PREFIX_MAX && strspn(v, PREFIX_CHARS) >= len;
}

/* A whole number from 1 to max, all of v's len characters. */
static bool is_count(const char *v, size_t len, long max, int *out)
{
    long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9' || n > max)
            return false;
        n = n * 10 + (v[i] - '0');
    }
    if (len == 0 || n < 1 || n > max)
        return false;
    *out = (int)n;
    return true;
}

/* "a, b and c": the names allowed, for the message about an unknown one. */
static void list_names(const mr_url_option *opts, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i == 0 ? "" : i + 1 == n ? " and " : ", ",
                                 opts[i].name);
}

mr_code mr_url_options_parse(const char *query, const mr_url_option *opts, size_t n, const char *what,
                             const char *display, mr_err *err)
{
    bool seen[16] = {false};
    if (n > sizeof seen / sizeof seen[0])
        return mr_err_set(err, MR_EINTERNAL, "%s: too many URL options declared", what);
    for (const char *p = query; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t name_len = eq ? (size_t)(eq - p) : len;
        const mr_url_option *o = NULL;
        size_t i = 0;
        for (; i < n && !o; i++)
            if (strlen(opts[i].name) == name_len && strncmp(opts[i].name, p, name_len) == 0)
                o = &opts[i];
        if (!o || !eq) {
            char names[256];
            list_names(opts, n, names, sizeof names);
            return n == 0 ? mr_err_set(err, MR_EINVAL, "%s \"%s\": this URL takes no options (\"%.*s\")", what,
                                       display, (int)len, p)
                   : !o   ? mr_err_set(err, MR_EINVAL, "%s \"%s\": unknown option \"%.*s\"; the options are %s",
                                       what, display, (int)name_len, p, names)
                          : mr_err_set(err, MR_EINVAL, "%s \"%s\": option \"%s\" needs a value (%s=...)", what,
                                       display, o->name, o->name);
        }
        if (seen[i - 1])
            return mr_err_set(err, MR_EINVAL, "%s \"%s\": option \"%s\" is given twice", what, display, o->name);
        seen[i - 1] = true;
        const char *v = eq + 1;
        size_t vlen = len - name_len - 1;
        if (o->max == 0) {
            if (!is_prefix(v, vlen))
                return mr_err_set(err, MR_EINVAL,
                                  "%s \"%s\": prefix \"%.*s\" must be 1 to %d letters, digits, '_' or '-' (the "
                                  "instance's namespace on a shared server)",
                                  what, display, (int)vlen, v, MR_URL_PREFIX_MAX);
            memcpy(o->out, v, vlen);
            ((char *)o->out)[vlen] = '\0';
        } else if (!is_count(v, vlen, o->max, o->out)) {
            return mr_err_set(err, MR_EINVAL, "%s \"%s\": %s \"%.*s\" must be a whole number from 1 to %ld", what,
                              display, o->name, (int)vlen, v, o->max);
        }
        p += len + (p[len] == '&');
    }
    return MR_OK;
}
