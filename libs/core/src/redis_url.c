/* redis_url.c -- redis:// URLs through libcurl's CURLU, with the checks CURLU leaves to us
 * (an empty authority, port 0, the database number) and passwords never echoed. */
#include "mindroom/redis_url.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#define REDIS_SCHEME "redis://"
#define REDIS_EXPECTED "expected redis://[user:password@]host[:port][/db]"
#define REDIS_DEFAULT_PORT 6379

/* "redis://" + ("***@" when there is userinfo) + what follows it. The last '@' ends the
 * userinfo, so a password holding an unescaped '@' is masked whole. */
static char *masked(const char *url)
{
    const char *rest = url + strlen(REDIS_SCHEME);
    const char *at = strrchr(rest, '@');
    const char *tail = at ? at + 1 : rest;
    size_t n = strlen(tail) + sizeof REDIS_SCHEME "***@";
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", REDIS_SCHEME, at ? "***@" : "", tail);
    return s;
}

/* Passwords are overwritten before their memory goes back; volatile so the stores stay. */
static void wipe_free(char *s, void (*release)(void *))
{
    if (!s)
        return;
    for (volatile char *p = s; *p; p++)
        *p = '\0';
    release(s);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* CURLU passes "%zz" through as text; a mistyped escape in a password must be an error. */
static bool escapes_ok(const char *url)
{
    const char *rest = url + strlen(REDIS_SCHEME);
    const char *at = strrchr(rest, '@');
    for (const char *p = rest; at && p < at; p++)
        if (*p == '%' && (p + 2 >= at || !is_hex(p[1]) || !is_hex(p[2])))
            return false;
    return true;
}

/* A whole decimal number within [0, INT_MAX]. */
static bool parse_db(const char *s, int *out)
{
    if (!*s || strlen(s) > 10)
        return false;
    long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    if (v > INT_MAX)
        return false;
    *out = (int)v;
    return true;
}

static mr_code from_curl_error(CURLUcode uc, const char *what, const mr_redis_url *u, mr_err *err)
{
    switch (uc) {
    case CURLUE_NO_HOST:
        return mr_err_set(err, MR_EINVAL, "%s \"%s\": the host is empty; " REDIS_EXPECTED, what, u->display);
    case CURLUE_BAD_PORT_NUMBER:
        return mr_err_set(err, MR_EINVAL, "%s \"%s\": the port must be a number from 1 to 65535%s", what,
                          u->display,
                          strstr(u->display, "***@") ? " (a '/', ':' or '@' in the password must be written "
                                                       "%2F, %3A or %40)"
                                                     : "");
    case CURLUE_OUT_OF_MEMORY:
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", what);
    default:
        return mr_err_set(err, MR_EINVAL, "%s \"%s\": %s; " REDIS_EXPECTED, what, u->display,
                          curl_url_strerror(uc));
    }
}

/* The parts after a successful CURLU parse. */
static mr_code take_parts(CURLU *cu, const char *what, mr_redis_url *u, mr_err *err)
{
    char *host = NULL, *port = NULL, *path = NULL, *query = NULL, *fragment = NULL, *user = NULL,
         *password = NULL;
    mr_code rc = MR_OK;
    CURLUcode uc = curl_url_get(cu, CURLUPART_HOST, &host, 0);
    if (uc == CURLUE_OK) {
        uc = curl_url_get(cu, CURLUPART_USER, &user, CURLU_URLDECODE);
        if (uc == CURLUE_NO_USER)
            uc = CURLUE_OK;
    }
    if (uc == CURLUE_OK) {
        uc = curl_url_get(cu, CURLUPART_PASSWORD, &password, CURLU_URLDECODE);
        if (uc == CURLUE_NO_PASSWORD)
            uc = CURLUE_OK;
    }
    if (uc == CURLUE_OK && user && *user && !password)
        rc = mr_err_set(err, MR_EINVAL,
                        "%s \"%s\": a user without a password; write user:password@ or :password@", what,
                        u->display);
    if (rc != MR_OK)
        goto out;
    if (uc != CURLUE_OK) {
        rc = uc == CURLUE_URLDECODE
                 ? mr_err_set(err, MR_EINVAL, "%s \"%s\": the user or password has a bad %%-escape", what,
                              u->display)
                 : from_curl_error(uc, what, u, err);
        goto out;
    }
    curl_url_get(cu, CURLUPART_PORT, &port, 0);
    curl_url_get(cu, CURLUPART_PATH, &path, 0);
    curl_url_get(cu, CURLUPART_QUERY, &query, 0);
    curl_url_get(cu, CURLUPART_FRAGMENT, &fragment, 0);
    if (query || fragment) {
        rc = mr_err_set(err, MR_EINVAL, "%s \"%s\": a query or fragment is not supported; " REDIS_EXPECTED,
                        what, u->display);
        goto out;
    }
    u->port = REDIS_DEFAULT_PORT;
    if (port && (!parse_db(port, &u->port) || u->port < 1 || u->port > 65535)) {
        rc = mr_err_set(err, MR_EINVAL, "%s \"%s\": the port must be a number from 1 to 65535", what, u->display);
        goto out;
    }
    const char *db = path && path[0] == '/' ? path + 1 : "";
    if (*db && !parse_db(db, &u->db)) {
        rc = mr_err_set(err, MR_EINVAL, "%s \"%s\": database \"%s\" is not a non-negative integer", what,
                        u->display, db);
        goto out;
    }
    size_t hlen = strlen(host);
    bool bracketed = hlen > 2 && host[0] == '[' && host[hlen - 1] == ']';
    u->host = bracketed ? strndup(host + 1, hlen - 2) : strdup(host);
    if (user && *user)
        u->user = strdup(user);
    if (password)
        u->password = strdup(password);
    if (!u->host || (user && *user && !u->user) || (password && !u->password))
        rc = mr_err_set(err, MR_ENOMEM, "%s: out of memory", what);
out:
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_free(fragment);
    curl_free(user);
    wipe_free(password, curl_free);
    return rc;
}

mr_code mr_redis_url_parse(const char *url, const char *what, mr_redis_url *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    if (strncmp(url, REDIS_SCHEME, strlen(REDIS_SCHEME)) != 0)
        return mr_err_set(err, MR_EINVAL, "%s: not a redis:// URL", what);
    out->display = masked(url);
    if (!out->display)
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", what);
    const char *authority = url + strlen(REDIS_SCHEME);
    mr_code rc = MR_OK;
    /* CURLU reads "redis:///3" as the host 0.0.0.3: an empty authority is refused first. */
    if (*authority == '\0' || *authority == '/') {
        rc = from_curl_error(CURLUE_NO_HOST, what, out, err);
    } else if (!escapes_ok(url)) {
        rc = mr_err_set(err, MR_EINVAL, "%s \"%s\": the user or password has a bad %%-escape", what,
                        out->display);
    } else {
        CURLU *cu = curl_url();
        if (!cu)
            return mr_err_set(err, MR_ENOMEM, "%s: out of memory", what);
        CURLUcode uc = curl_url_set(cu, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
        rc = uc == CURLUE_OK ? take_parts(cu, what, out, err) : from_curl_error(uc, what, out, err);
        curl_url_cleanup(cu);
    }
    if (rc != MR_OK)
        mr_redis_url_free(out);
    return rc;
}

void mr_redis_url_free(mr_redis_url *u)
{
    free(u->host);
    free(u->user);
    wipe_free(u->password, free);
    free(u->display);
    memset(u, 0, sizeof *u);
}
