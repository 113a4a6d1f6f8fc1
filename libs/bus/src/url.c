/* url.c -- parsing MINDROOM_BUS_URL into a backend and its address, with passwords masked. */
#include "bus_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPECTED "expected inproc:, kafka://host:port[,host:port] or redis://host:port/db"

/* Copies url to out with the user-info part of the authority masked ("user:***@", "***@"), so
 * messages may quote the URL without leaking a password. */
static void mask_url(const char *url, char *out, size_t cap)
{
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t auth_len = strcspn(auth, "/");
    const char *at = NULL;
    for (const char *p = auth; p < auth + auth_len; p++)
        if (*p == '@')
            at = p;
    if (!at) {
        snprintf(out, cap, "%s", url);
        return;
    }
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    const char *keep_end = colon ? colon + 1 : auth;
    snprintf(out, cap, "%.*s***%s", (int)(keep_end - url), url, at);
}

/* A TCP port: all digits, 1..65535. */
static bool parse_port(const char *s, size_t len, int *port)
{
    if (len == 0 || len > 5)
        return false;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *port = v;
    return true;
}

static mr_code parse_kafka(const char *rest, mr_bus_url *u, mr_err *err)
{
    const char *d = u->display;
    if (!*rest)
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": no broker; expected kafka://host:port[,host:port]",
                          d);
    if (strchr(rest, '@'))
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": credentials are not supported in kafka:// URLs",
                          d);
    if (strlen(rest) >= sizeof u->brokers)
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": broker list too long", d);
    for (const char *p = rest;;) {
        size_t len = strcspn(p, ",");
        if (len == 0)
            return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": empty broker in the list", d);
        const char *colon = NULL;
        for (const char *q = p; q < p + len; q++)
            if (*q == ':')
                colon = q;
        int port;
        if (!colon)
            return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": broker \"%.*s\" needs a port (host:port)", d,
                              (int)len, p);
        if (colon == p)
            return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": broker \"%.*s\" has no host", d, (int)len, p);
        if (!parse_port(colon + 1, (size_t)(p + len - colon - 1), &port))
            return mr_err_set(err, MR_EINVAL,
                              "bus URL \"%s\": broker \"%.*s\": port must be a number from 1 to 65535", d,
                              (int)len, p);
        if (!p[len])
            break;
        p += len + 1;
    }
    snprintf(u->brokers, sizeof u->brokers, "%s", rest);
    return MR_OK;
}

static mr_code parse_redis_userinfo(const char *s, size_t len, mr_bus_url *u, mr_err *err)
{
    const char *colon = memchr(s, ':', len);
    if (!colon)
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": credentials must be user:password or :password",
                          u->display);
    size_t ulen = (size_t)(colon - s), plen = len - ulen - 1;
    if (ulen >= sizeof u->user || plen >= sizeof u->password)
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": user or password too long", u->display);
    memcpy(u->user, s, ulen);
    u->user[ulen] = '\0';
    memcpy(u->password, colon + 1, plen);
    u->password[plen] = '\0';
    return MR_OK;
}

/* "?partitions=N" after a Redis URL's database: more partitions let more consumers of a group
 * share a topic (each partition has one consumer at a time), past the default 8. */
static mr_code parse_redis_query(const char *query, mr_bus_url *u, mr_err *err)
{
    static const char key[] = "partitions=";
    if (strncmp(query, key, sizeof key - 1) != 0)
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": unknown option \"%s\"; the only one is partitions=N",
                          u->display, query);
    const char *v = query + sizeof key - 1;
    char *end = NULL;
    long n = *v >= '0' && *v <= '9' ? strtol(v, &end, 10) : 0;
    if (n < 1 || n > 1024 || *end)
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": partitions \"%s\" must be a whole number from 1 to 1024",
                          u->display, v);
    u->partitions = (int)n;
    return MR_OK;
}

static mr_code parse_redis(const char *url_rest, mr_bus_url *u, mr_err *err)
{
    const char *d = u->display;
    char rest[512];
    snprintf(rest, sizeof rest, "%s", url_rest);
    char *query = strchr(rest, '?');
    if (query) {
        *query++ = '\0';
        mr_code rc = parse_redis_query(query, u, err);
        if (rc != MR_OK)
            return rc;
    }
    size_t auth_len = strcspn(rest, "/");
    const char *at = NULL;
    for (const char *p = rest; p < rest + auth_len; p++)
        if (*p == '@')
            at = p;
    const char *host = rest;
    if (at) {
        mr_code rc = parse_redis_userinfo(rest, (size_t)(at - rest), u, err);
        if (rc != MR_OK)
            return rc;
        host = at + 1;
    }
    size_t hostport_len = (size_t)(rest + auth_len - host);
    const char *colon = memchr(host, ':', hostport_len);
    size_t host_len = colon ? (size_t)(colon - host) : hostport_len;
    if (host_len == 0)
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": no host; expected redis://host:port/db", d);
    if (host_len >= sizeof u->host)
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": host too long", d);
    memcpy(u->host, host, host_len);
    u->host[host_len] = '\0';
    u->port = 6379;
    if (colon && !parse_port(colon + 1, hostport_len - host_len - 1, &u->port))
        return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": port \"%.*s\" must be a number from 1 to 65535", d,
                          (int)(hostport_len - host_len - 1), colon + 1);
    u->db = 0;
    const char *db = rest + auth_len;
    if (*db == '/' && db[1]) {
        char *end;
        long v = strtol(db + 1, &end, 10);
        if (*end || db[1] < '0' || db[1] > '9' || v > 1000000)
            return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": database \"%s\" must be a non-negative number",
                              d, db + 1);
        u->db = (int)v;
    }
    return MR_OK;
}

/* "inproc:" alone keeps messages in memory; "inproc:///absolute/path" adds a journal file. */
static mr_code parse_inproc(const char *rest, mr_bus_url *u, mr_err *err)
{
    if (!*rest)
        return MR_OK;
    if (strncmp(rest, "///", 3) != 0)
        return mr_err_set(err, MR_EINVAL,
                          "bus URL \"%s\": expected inproc: (in memory) or "
                          "inproc:///absolute/path/journal.db",
                          u->display);
    const char *path = rest + 2;
    if (path[strlen(path) - 1] == '/')
        return mr_err_set(err, MR_EINVAL,
                          "bus URL \"%s\": the journal path names a directory; add a file name "
                          "such as bus.db",
                          u->display);
    snprintf(u->path, sizeof u->path, "%s", path);
    return MR_OK;
}

mr_code mr_bus_url_parse(const char *url, mr_bus_url *u, mr_err *err)
{
    memset(u, 0, sizeof *u);
    if (!url || !*url)
        return mr_err_set(err, MR_EINVAL, "bus URL is empty; " EXPECTED);
    if (strlen(url) > 500)
        return mr_err_set(err, MR_EINVAL, "bus URL is longer than 500 characters");
    mask_url(url, u->display, sizeof u->display);
    if (strncmp(url, "inproc:", 7) == 0) {
        u->kind = MR_BUS_INPROC;
        return parse_inproc(url + 7, u, err);
    }
    if (strncmp(url, "kafka://", 8) == 0) {
        u->kind = MR_BUS_KAFKA;
        return parse_kafka(url + 8, u, err);
    }
    if (strncmp(url, "redis://", 8) == 0) {
        u->kind = MR_BUS_REDIS;
        return parse_redis(url + 8, u, err);
    }
    return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": unknown scheme; " EXPECTED, u->display);
}
