/* store_url.c -- parsing MINDROOM_STORE_URL (sqlite:// and redis://) without ever echoing a password. */
#include "store_impl.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#define URL_EXPECTED "(expected sqlite:///path/to/file.db or redis://host:port/db)"
#define REDIS_DEFAULT_PORT 6379

static char *dup_range(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes userinfo so a password may hold '@', ':' or '/'. NULL on a bad escape. */
static char *dup_decoded(const char *p, size_t n, bool *bad)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%') {
            s[o++] = p[i];
            continue;
        }
        int hi = i + 2 < n ? hex_value(p[i + 1]) : -1;
        int lo = i + 2 < n ? hex_value(p[i + 2]) : -1;
        /* A NUL would silently cut the password short. */
        if (hi < 0 || lo < 0 || hi + lo == 0) {
            free(s);
            *bad = true;
            return NULL;
        }
        s[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    s[o] = '\0';
    return s;
}

/* A whole string of digits within [lo, hi]. */
static bool parse_int(const char *p, size_t n, long lo, long hi, int *out)
{
    if (n == 0 || n > 10)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return false;
        v = v * 10 + (p[i] - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static mr_code parse_sqlite(const char *rest, mr_store_url *u, mr_err *err)
{
    if (!*rest)
        return mr_err_set(err, MR_EINVAL, "store URL sqlite://: the database path is empty");
    u->kind = MR_STORE_SQLITE;
    u->path = strdup(rest);
    u->display = malloc(strlen(rest) + sizeof "sqlite://");
    if (!u->path || !u->display)
        return mr_err_set(err, MR_ENOMEM, "store URL: out of memory");
    sprintf(u->display, "sqlite://%s", rest);
    return MR_OK;
}

static mr_code parse_userinfo(const char *p, size_t n, mr_store_url *u, mr_err *err)
{
    const char *colon = memchr(p, ':', n);
    size_t user_len = colon ? (size_t)(colon - p) : n;
    bool bad = false;
    if (user_len > 0) {
        u->user = dup_decoded(p, user_len, &bad);
        if (!u->user)
            goto fail;
    }
    if (colon) {
        u->password = dup_decoded(colon + 1, n - user_len - 1, &bad);
        if (!u->password)
            goto fail;
    }
    return MR_OK;
fail:
    if (bad)
        return mr_err_set(err, MR_EINVAL, "store URL %s: the user or password has a bad %%-escape",
                          u->display);
    return mr_err_set(err, MR_ENOMEM, "store URL: out of memory");
}

static mr_code parse_hostport(const char *p, size_t n, mr_store_url *u, mr_err *err)
{
    const char *host = p, *port = NULL;
    size_t host_len = n;
    if (n > 0 && p[0] == '[') {
        /* IPv6 literal: [::1]:6379 */
        const char *close = memchr(p, ']', n);
        if (!close)
            return mr_err_set(err, MR_EINVAL, "store URL %s: the IPv6 host has no closing ']'",
                              u->display);
        host = p + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < p + n) {
            if (close[1] != ':')
                return mr_err_set(err, MR_EINVAL, "store URL %s: expected ':' after ']'", u->display);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon) {
            host_len = (size_t)(colon - p);
            port = colon + 1;
        }
    }
    if (host_len == 0)
        return mr_err_set(err, MR_EINVAL, "store URL %s: the host is empty", u->display);
    u->port = REDIS_DEFAULT_PORT;
    if (port) {
        size_t port_len = (size_t)(p + n - port);
        if (!parse_int(port, port_len, 1, 65535, &u->port))
            return mr_err_set(err, MR_EINVAL, "store URL %s: port \"%.*s\" is not a number from 1 to 65535",
                              u->display, (int)port_len, port);
    }
    u->host = dup_range(host, host_len);
    return u->host ? MR_OK : mr_err_set(err, MR_ENOMEM, "store URL: out of memory");
}

/* display = "redis://" + ("***@" when there is userinfo) + everything after it. */
static mr_code make_redis_display(const char *rest, const char *at, mr_store_url *u, mr_err *err)
{
    const char *tail = at ? at + 1 : rest;
    u->display = malloc(strlen(tail) + sizeof "redis://***@");
    if (!u->display)
        return mr_err_set(err, MR_ENOMEM, "store URL: out of memory");
    sprintf(u->display, "redis://%s%s", at ? "***@" : "", tail);
    return MR_OK;
}

static mr_code parse_redis(const char *rest, mr_store_url *u, mr_err *err)
{
    u->kind = MR_STORE_REDIS;
    /* The authority ends at the first '/' after the last '@', so an unescaped '/' in a
     * password does not cut it short. */
    const char *at = strrchr(rest, '@');
    const char *slash = strchr(at ? at : rest, '/');
    size_t auth_len = slash ? (size_t)(slash - rest) : strlen(rest);
    mr_code rc = make_redis_display(rest, at, u, err);
    if (rc != MR_OK)
        return rc;
    const char *hostport = rest;
    if (at) {
        rc = parse_userinfo(rest, (size_t)(at - rest), u, err);
        if (rc != MR_OK)
            return rc;
        hostport = at + 1;
    }
    rc = parse_hostport(hostport, (size_t)(rest + auth_len - hostport), u, err);
    if (rc != MR_OK)
        return rc;
    u->db = 0;
    if (slash && slash[1] && !parse_int(slash + 1, strlen(slash + 1), 0, INT_MAX, &u->db))
        return mr_err_set(err, MR_EINVAL, "store URL %s: database \"%s\" is not a non-negative integer",
                          u->display, slash + 1);
    return MR_OK;
}

mr_code mr_store_url_parse(const char *url, mr_store_url *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    if (!url || !*url)
        return mr_err_set(err, MR_EINVAL, "store URL is empty " URL_EXPECTED);
    const char *sep = strstr(url, "://");
    size_t scheme_len = sep ? (size_t)(sep - url) : 0;
    for (size_t i = 0; i < scheme_len; i++) {
        if (!isalnum((unsigned char)url[i]) && !strchr("+.-", url[i]))
            scheme_len = 0;
    }
    /* Anything that does not look like a scheme is not echoed: it may hold a password. */
    if (scheme_len == 0 || scheme_len > 16)
        return mr_err_set(err, MR_EINVAL, "store URL has no scheme " URL_EXPECTED);
    const char *rest = sep + 3;
    mr_code rc;
    if (scheme_len == 6 && strncmp(url, "sqlite", 6) == 0)
        rc = parse_sqlite(rest, out, err);
    else if (scheme_len == 5 && strncmp(url, "redis", 5) == 0)
        rc = parse_redis(rest, out, err);
    else
        return mr_err_set(err, MR_EINVAL, "store URL scheme \"%.*s\" is not supported " URL_EXPECTED,
                          (int)scheme_len, url);
    if (rc != MR_OK)
        mr_store_url_free(out);
    return rc;
}

void mr_store_url_free(mr_store_url *u)
{
    free(u->path);
    free(u->host);
    free(u->user);
    if (u->password) {
        OPENSSL_cleanse(u->password, strlen(u->password));
        free(u->password);
    }
    free(u->display);
    memset(u, 0, sizeof *u);
}
