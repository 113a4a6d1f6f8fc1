/* url.c -- parsing MINDROOM_BUS_URL into a backend and its address, with passwords masked. */
#include "bus_internal.h"

#include "mindroom/redis_url.h"
#include "mindroom/url_options.h"

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

/* The comma-separated host:port list after kafka://. */
static mr_code parse_brokers(const char *rest, mr_bus_url *u, mr_err *err)
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

/* Copies url into base (cap bytes) without its query, whose options go where opts say. */
static mr_code split_options(const char *url, char *base, size_t cap, const mr_url_option *opts, size_t n,
                             const mr_bus_url *u, mr_err *err)
{
    snprintf(base, cap, "%s", url);
    char *query = strchr(base, '?');
    if (!query)
        return MR_OK;
    *query++ = '\0';
    return mr_url_options_parse(query, opts, n, "bus URL", u->display, err);
}

static mr_code parse_kafka(const char *url, mr_bus_url *u, mr_err *err)
{
    /* fetch_wait_ms: how long a broker may hold a consumer's fetch that finds nothing. prefix:
     * the instance's namespace on a shared cluster, in front of its topics and groups. */
    const mr_url_option opts[] = {{"fetch_wait_ms", 10000, &u->fetch_wait_ms}, {"prefix", 0, u->prefix}};
    char brokers[sizeof u->brokers + 1];
    mr_code rc = split_options(url, brokers, sizeof brokers, opts, 2, u, err);
    return rc == MR_OK ? parse_brokers(brokers, u, err) : rc;
}

/* The bus's own query first, then the rest through the shared redis:// parser, copied into
 * the bus URL's fixed fields. */
static mr_code parse_redis(const char *url, mr_bus_url *u, mr_err *err)
{
    /* partitions: more let more consumers of a group share a topic (each partition has one
     * consumer at a time), past the default 8. prefix: the instance's namespace on a shared
     * server, in front of every key. */
    const mr_url_option opts[] = {{"partitions", 1024, &u->partitions}, {"prefix", 0, u->prefix}};
    char base[512];
    mr_code rc = split_options(url, base, sizeof base, opts, 2, u, err);
    if (rc != MR_OK)
        return rc;
    mr_redis_url r;
    rc = mr_redis_url_parse(base, "bus URL", &r, err);
    if (rc != MR_OK)
        return rc;
    if (strlen(r.host) >= sizeof u->host || (r.user && strlen(r.user) >= sizeof u->user) ||
        (r.password && strlen(r.password) >= sizeof u->password))
        rc = mr_err_set(err, MR_EINVAL, "bus URL \"%s\": host, user or password too long", u->display);
    if (rc == MR_OK) {
        snprintf(u->host, sizeof u->host, "%s", r.host);
        snprintf(u->user, sizeof u->user, "%s", r.user ? r.user : "");
        snprintf(u->password, sizeof u->password, "%s", r.password ? r.password : "");
        u->port = r.port;
        u->db = r.db;
    }
    mr_redis_url_free(&r);
    return rc;
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

mr_code Mr_bus_url_parse(const char *url, mr_bus_url *u, mr_err *err)
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
        return parse_redis(url, u, err);
    }
    return mr_err_set(err, MR_EINVAL, "bus URL \"%s\": unknown scheme; " EXPECTED, u->display);
}
