/* store_url.c -- parsing MINDROOM_STORE_URL (sqlite:// and redis://) without ever echoing a password. */
#include "store_impl.h"

#include "mindroom/redis_url.h"
#include "mindroom/url_options.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#define URL_EXPECTED "(expected sqlite:///path/to/file.db or redis://host:port/db)"

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

/* The address through the shared redis:// parser, then the store's one option, ?prefix=<ns>:
 * the instance's namespace on a server other instances share. The store URL takes over the
 * parser's strings. */
static mr_code parse_redis(const char *url, mr_store_url *u, mr_err *err)
{
    u->kind = MR_STORE_REDIS;
    const char *q = strchr(url, '?');
    char *base = q ? strndup(url, (size_t)(q - url)) : strdup(url);
    if (!base)
        return mr_err_set(err, MR_ENOMEM, "store URL: out of memory");
    mr_redis_url r;
    mr_code rc = mr_redis_url_parse(base, "store URL", &r, err);
    free(base);
    if (rc != MR_OK)
        return rc;
    u->host = r.host;
    u->port = r.port;
    u->db = r.db;
    u->user = r.user;
    u->password = r.password;
    u->display = r.display;
    if (!q)
        return MR_OK;
    /* The display keeps the options: an error or a log line names the namespace too. */
    char *display = malloc(strlen(r.display) + strlen(q) + 1);
    if (!display)
        return mr_err_set(err, MR_ENOMEM, "store URL: out of memory");
    sprintf(display, "%s%s", r.display, q);
    free(u->display);
    u->display = display;
    const mr_url_option opts[] = {{"prefix", 0, u->prefix}};
    return mr_url_options_parse(q + 1, opts, 1, "store URL", u->display, err);
}

mr_code Mr_store_url_parse(const char *url, mr_store_url *out, mr_err *err)
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
        rc = parse_redis(url, out, err);
    else
        return mr_err_set(err, MR_EINVAL, "store URL scheme \"%.*s\" is not supported " URL_EXPECTED,
                          (int)scheme_len, url);
    if (rc != MR_OK)
        Mr_store_url_free(out);
    return rc;
}

void Mr_store_url_free(mr_store_url *u)
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
