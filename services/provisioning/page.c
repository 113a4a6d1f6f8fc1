/* page.c -- serves the pairing page (Settings -> Local MindRoom) under /local-mindroom/: the
 * embedded HTML, CSS and JavaScript, and config.json telling the page its homeserver.
 *
 * Every answer carries a Content-Security-Policy that allows only this origin's script and style
 * (no inline code, no eval) and network calls only to this service and the homeserver, where the
 * page signs in; the page cannot be framed, and sends no Referer. */
#include "page.h"
#include "prov_internal.h"

#include <stdio.h>
#include <string.h>

#define PAGE_PREFIX "/local-mindroom/"

/* scheme://host[:port] of url: what connect-src names. */
static void origin_of(const char *url, char *out, size_t cap)
{
    const char *host = strstr(url, "://");
    size_t n = host ? (size_t)(host + 3 - url) + strcspn(host + 3, "/?#") : strlen(url);
    snprintf(out, cap, "%.*s", (int)n, url);
}

static mr_http_response *with_headers(const prov *p, mr_http_response *r)
{
    char origin[512], csp[1024];
    origin_of(p->s->homeserver, origin, sizeof origin);
    snprintf(csp, sizeof csp,
             "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' %s; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
             origin);
    bool ok = mr_http_response_header(r, "Content-Security-Policy", csp) &&
              mr_http_response_header(r, "X-Content-Type-Options", "nosniff") &&
              mr_http_response_header(r, "X-Frame-Options", "DENY") &&
              mr_http_response_header(r, "Referrer-Policy", "no-referrer") &&
              mr_http_response_header(r, "Cache-Control", "no-cache");
    if (!ok) {
        mr_http_response_free(r);
        return NULL;
    }
    return r;
}

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    return "text/html; charset=utf-8";
}

mr_http_response *page_reply(prov *p, const mr_http_request *req)
{
    const char *path = req->path;
    bool under = strncmp(path, PAGE_PREFIX, strlen(PAGE_PREFIX)) == 0;
    if (!under && strcmp(path, "/") != 0 && strcmp(path, "/local-mindroom") != 0)
        return NULL;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return mr_runtime_reply_detail(405, "Method Not Allowed: the pairing page %s takes GET", path);
    if (!under) {
        mr_http_response *r = mr_http_reply(302, "text/plain; charset=utf-8", "", 0);
        if (!mr_http_response_header(r, "Location", PAGE_PREFIX)) {
            mr_http_response_free(r);
            return NULL;
        }
        return r;
    }
    const char *name = path + strlen(PAGE_PREFIX);
    if (!*name)
        name = "index.html";
    if (strcmp(name, "config.json") == 0)
        return with_headers(p, mr_http_reply_json(200, json_pack("{s:s}", "homeserver", p->s->homeserver)));
    for (size_t i = 0; i < page_nassets; i++)
        if (strcmp(page_assets[i].name, name) == 0)
            return with_headers(p, mr_http_reply(200, content_type(name), page_assets[i].data, page_assets[i].len));
    return mr_runtime_reply_detail(404, "Not Found: the pairing page has no %s; open " PAGE_PREFIX, name);
}
