/* website.c -- the website tool: fetch one http(s) page as readable text, with size and time
 * limits. No server-side request forgery: the host is resolved once, the address is checked
 * (loopback, private, link-local, CGNAT, multicast and unspecified addresses are refused unless
 * the operator allows them), curl is pinned to that address (CURLOPT_RESOLVE) and every socket
 * it opens is checked again (CURLOPT_OPENSOCKETFUNCTION); redirects are not followed. */
#define _GNU_SOURCE /* strcasestr */
#include "tools_internal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "mindroom/clock.h"

#define TOOL "website"
#define PAGE_MAX (2 * 1024 * 1024)

typedef struct fetch {
    bool private_ok;
    bool refused;                /* a socket to a forbidden address was asked for */
    mr_strbuf body;
    bool too_big;
} fetch;

/* Whether an address is one a fetch may reach without the operator's leave. */
static bool public_addr(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return !((a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 || (a >> 16) == 0xA9FE ||
                 (a >> 20) == 0xAC1 || (a >> 16) == 0xC0A8 || (a >> 22) == (100u << 2 | 1) ||
                 (a >> 28) == 0xE || (a >> 28) == 0xF);
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, a->s6_addr + 12, 4);
            return public_addr((const struct sockaddr *)&v4);
        }
        return !(IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
                 IN6_IS_ADDR_SITELOCAL(a) || IN6_IS_ADDR_MULTICAST(a) || (a->s6_addr[0] & 0xFE) == 0xFC);
    }
    return false;
}

static curl_socket_t open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *addr)
{
    fetch *f = ctx;
    (void)purpose;
    if (!f->private_ok && !public_addr(&addr->addr)) {
        f->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype, addr->protocol);
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    fetch *f = ctx;
    if (f->body.len + size * n > PAGE_MAX) {
        f->too_big = true;
        return 0;
    }
    mr_strbuf_add(&f->body, data, size * n);
    return f->body.failed ? 0 : size * n;
}

/* Text of an HTML page: tags, scripts and styles out, a few entities decoded, runs of blank
 * space made one, block ends made line breaks. */
static void readable(const char *html, size_t len, bool is_html, mr_strbuf *out)
{
    if (!is_html) {
        mr_strbuf_add(out, html, len);
        return;
    }
    static const struct { const char *name; const char *text; } entities[] = {
        {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", " "},
    };
    bool space = true;
    for (size_t i = 0; i < len;) {
        if (html[i] == '<') {
            const char *skip_to = NULL;
            if (len - i > 7 && strncasecmp(html + i, "<script", 7) == 0)
                skip_to = "</script>";
            else if (len - i > 6 && strncasecmp(html + i, "<style", 6) == 0)
                skip_to = "</style>";
            bool block = len - i > 2 && (strncasecmp(html + i, "<p", 2) == 0 || strncasecmp(html + i, "<br", 3) == 0 ||
                                         strncasecmp(html + i, "<h", 2) == 0 || strncasecmp(html + i, "<li", 3) == 0 ||
                                         strncasecmp(html + i, "<div", 4) == 0 || strncasecmp(html + i, "</", 2) == 0);
            size_t j = i;
            if (skip_to) {
                const char *end = strcasestr(html + i, skip_to);
                j = end ? (size_t)(end - html) + strlen(skip_to) : len;
            } else {
                while (j < len && html[j] != '>')
                    j++;
                j = j < len ? j + 1 : len;
            }
            if (block && out->len && out->s[out->len - 1] != '\n') {
                mr_strbuf_puts(out, "\n");
                space = true;
            }
            i = j;
            continue;
        }
        bool decoded = false;
        for (size_t e = 0; html[i] == '&' && e < sizeof entities / sizeof *entities; e++) {
            size_t n = strlen(entities[e].name);
            if (len - i >= n && strncmp(html + i, entities[e].name, n) == 0) {
                mr_strbuf_puts(out, entities[e].text);
                i += n;
                decoded = true;
                space = false;
                break;
            }
        }
        if (decoded)
            continue;
        bool ws = html[i] == ' ' || html[i] == '\n' || html[i] == '\t' || html[i] == '\r';
        if (!ws || !space)
            mr_strbuf_add(out, ws ? " " : html + i, 1);
        space = ws || html[i] == '\n';
        i++;
    }
}

/* Resolves the URL's host once and pins curl to its first address after checking it. */
static mr_code pin(CURL *c, CURLU *u, fetch *f, struct curl_slist **resolve, mr_err *err)
{
    char *host = NULL, *port = NULL, *scheme = NULL;
    mr_code rc = MR_OK;
    /* The scheme first: libcurl knows no default port for one it was built without. */
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        rc = mr_err_set(err, MR_EINVAL, "%s: the argument 'url' must be http or https, not %.16s", TOOL,
                        scheme ? scheme : "none");
    else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
             curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        rc = mr_err_set(err, MR_EINVAL, "%s: the argument 'url' has no host", TOOL);
    struct addrinfo *ai = NULL, hints = {.ai_socktype = SOCK_STREAM};
    char bare[256] = "";
    if (rc == MR_OK) {
        /* IPv6 literals come bracketed. */
        size_t n = strlen(host);
        snprintf(bare, sizeof bare, "%.*s", (int)(host[0] == '[' ? n - 2 : n), host + (host[0] == '['));
        int g = getaddrinfo(bare, port, &hints, &ai);
        if (g != 0)
            rc = mr_err_set(err, MR_ENOTFOUND, "%s: cannot resolve %s: %s", TOOL, bare, gai_strerror(g));
    }
    if (rc == MR_OK && !f->private_ok && !public_addr(ai->ai_addr))
        rc = mr_err_set(err, MR_EPERM, "%s: %s is a loopback, private or otherwise internal address: refused",
                        TOOL, bare);
    if (rc == MR_OK) {
        char addr[INET6_ADDRSTRLEN + 2] = "";
        void *raw = ai->ai_family == AF_INET ? (void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                             : (void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        char text[INET6_ADDRSTRLEN];
        inet_ntop(ai->ai_family, raw, text, sizeof text);
        snprintf(addr, sizeof addr, ai->ai_family == AF_INET6 ? "[%s]" : "%s", text);
        char *entry = mr_str_printf("%s:%s:%s", bare, port, addr);
        struct curl_slist *l = entry ? curl_slist_append(NULL, entry) : NULL;
        free(entry);
        if (!l || curl_easy_setopt(c, CURLOPT_RESOLVE, l) != CURLE_OK)
            rc = mr_err_set(err, MR_ENOMEM, "%s: out of memory pinning the address", TOOL);
        *resolve = l;
    }
    if (ai)
        freeaddrinfo(ai);
    curl_free(host);
    curl_free(port);
    curl_free(scheme);
    return rc;
}

static mr_code website_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out, mr_err *err)
{
    const char *url;
    mr_code rc = tools_arg_str(args, TOOL, "url", true, &url, err);
    if (rc != MR_OK)
        return rc;
    CURLU *u = curl_url();
    /* Any scheme parses, so one libcurl was built without is refused by name (pin). */
    if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
        curl_url_cleanup(u);
        return mr_err_set(err, MR_EINVAL, "%s: the argument 'url' is not a URL: '%.200s'", TOOL, url);
    }
    fetch f = {.private_ok = env->website_private_ok};
    struct curl_slist *resolve = NULL;
    CURL *c = curl_easy_init();
    long left = (long)(deadline_ms - mr_clock_mono_ms());
    rc = c ? pin(c, u, &f, &resolve, err) : mr_err_set(err, MR_ENOMEM, "%s: out of memory", TOOL);
    if (rc == MR_OK && left <= 0)
        rc = mr_err_set(err, MR_EUNAVAIL, "%s: out of time", TOOL);
    if (rc == MR_OK &&
        (curl_easy_setopt(c, CURLOPT_CURLU, u) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
         /* A proxy from the environment would be checked instead of the page's address. */
         curl_easy_setopt(c, CURLOPT_PROXY, "") != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, left) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)PAGE_MAX) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &f) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_WRITEDATA, &f) != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_USERAGENT, "MindRoom-website-tool") != CURLE_OK ||
         curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK))
        rc = mr_err_set(err, MR_EINTERNAL, "%s: cannot set up the request", TOOL);
    if (rc == MR_OK) {
        CURLcode cc = curl_easy_perform(c);
        long status = 0;
        char *type = NULL, *location = NULL;
        bool info = curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
                    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK &&
                    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location) == CURLE_OK;
        if (f.refused)
            rc = mr_err_set(err, MR_EPERM, "%s: the connection went to an internal address: refused", TOOL);
        else if (f.too_big || cc == CURLE_FILESIZE_EXCEEDED)
            rc = mr_err_set(err, MR_EINVAL, "%s: the page is larger than %d bytes", TOOL, PAGE_MAX);
        else if (cc != CURLE_OK)
            rc = mr_err_set(err, MR_EUNAVAIL, "%s: fetching %.200s: %s", TOOL, url, curl_easy_strerror(cc));
        else if (!info)
            rc = mr_err_set(err, MR_EINTERNAL, "%s: curl gave no status for %.200s", TOOL, url);
        else if (status >= 300 && status < 400 && location)
            rc = mr_err_set(err, MR_EINVAL, "%s: HTTP %ld redirects to %.200s (fetch that URL if wanted)", TOOL,
                            status, location);
        else if (status >= 400)
            rc = mr_err_set(err, MR_EUNAVAIL, "%s: HTTP %ld from %.200s", TOOL, status, url);
        else
            readable(f.body.s ? f.body.s : "", f.body.len, type && strcasestr(type, "html"), out);
    }
    curl_slist_free_all(resolve);
    curl_easy_cleanup(c);
    curl_url_cleanup(u);
    free(f.body.s);
    return rc;
}

const mr_tool_def mr_tool_website = {
    .name = TOOL,
    .description = "Fetch one web page (http or https) and read it as plain text. Redirects are reported, "
                   "not followed; internal addresses are refused.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"url\":{\"type\":\"string\",\"description\":\"the page's address\"}},"
                  "\"required\":[\"url\"],\"additionalProperties\":false}",
    .run = website_run,
};
