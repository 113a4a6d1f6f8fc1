/* client.c -- the HTTP client on libcurl: one easy handle per client for connection reuse,
 * timeouts, JSON bodies, response headers and errors that name the request. */
#include "http_internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mindroom/log.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_RESPONSE (16u * 1024 * 1024)

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

/* curl_global_init is not thread-safe in every libcurl this builds against: run it once. */
static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = true;
    return d;
}

mr_code mr_http_client_new(const mr_http_client_opts *opts, mr_http_client **out, mr_err *err)
{
    static const mr_http_client_opts none = {0};
    opts = opts ? opts : &none;
    *out = NULL;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return mr_err_set(err, MR_EINTERNAL, "curl_global_init: %s", curl_easy_strerror(global_rc));
    mr_http_client *c = calloc(1, sizeof *c);
    if (!c)
        return mr_err_set(err, MR_ENOMEM, "out of memory creating an HTTP client");
    bool failed = false;
    c->easy = curl_easy_init();
    c->base_url = dup_or_null(opts->base_url, &failed);
    if (opts->bearer_token) {
        size_t n = strlen(opts->bearer_token) + 32;
        c->auth_header = malloc(n);
        if (c->auth_header)
            snprintf(c->auth_header, n, "Authorization: Bearer %s", opts->bearer_token);
        else
            failed = true;
    }
    c->user_agent = dup_or_null(opts->user_agent ? opts->user_agent : "mindroom/" MR_VERSION, &failed);
    c->ca_file = dup_or_null(opts->ca_file, &failed);
    c->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
                                                         : DEFAULT_CONNECT_TIMEOUT_MS;
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->max_response = opts->max_response ? opts->max_response : DEFAULT_MAX_RESPONSE;
    if (!c->easy || failed) {
        mr_http_client_free(c);
        return mr_err_set(err, MR_ENOMEM, "out of memory creating an HTTP client");
    }
    /* Trim trailing slashes so base + "/path" never doubles them. */
    size_t n = c->base_url ? strlen(c->base_url) : 0;
    while (n && c->base_url[n - 1] == '/')
        c->base_url[--n] = '\0';
    *out = c;
    return MR_OK;
}

void mr_http_client_free(mr_http_client *c)
{
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    free(c->base_url);
    if (c->auth_header) {
        /* The token should not linger in freed memory. */
        memset(c->auth_header, 0, strlen(c->auth_header));
        free(c->auth_header);
    }
    free(c->user_agent);
    free(c->ca_file);
    free(c);
}

static void headers_clear(mr_http_result *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    r->nheaders = 0;
}

void mr_http_result_clear(mr_http_result *r)
{
    if (!r)
        return;
    headers_clear(r);
    free(r->headers);
    free(r->url);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* ---- callbacks ---- */

/* call->sent, once: from the progress callback once the body is out, or before the first byte
 * of the answer when that comes first. */
static void tell_sent(http_transfer *t)
{
    if (t->call->sent && !t->told_sent) {
        t->told_sent = true;
        t->call->sent(t->call->sent_ctx);
    }
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    http_transfer *t = ud;
    size_t len = size * n;
    tell_sent(t);
    if (t->call->on_data) {
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            if (t->call->on_data(t->call->data_ctx, p, len))
                return len;
            t->aborted = true;
            return 0;
        }
    }
    if (!mr_strbuf_add(&t->body, p, len)) {
        t->failed_alloc = t->body.failed;
        return 0;
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    http_transfer *t = ud;
    mr_http_result *r = t->out;
    size_t len = size * n;
    /* A status line starts a new response (after a 100 Continue or a redirect): only the
     * final response's headers are kept. */
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        headers_clear(r);
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon)
        return len;
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    mr_http_param *h = realloc(r->headers, (r->nheaders + 1) * sizeof *h);
    if (!h) {
        t->failed_alloc = true;
        return 0;
    }
    r->headers = h;
    h[r->nheaders].name = strndup(p, (size_t)(colon - p));
    h[r->nheaders].value = strndup(v, (size_t)(end - v));
    if (!h[r->nheaders].name || !h[r->nheaders].value) {
        free(h[r->nheaders].name);
        free(h[r->nheaders].value);
        t->failed_alloc = true;
        return 0;
    }
    r->nheaders++;
    return len;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* libcurl calls this as the transfer moves and about once a second even while nothing
 * arrives, which is what lets a stalled peer be noticed and a caller cancel; any byte moving
 * either way restarts the stall clock. Its first call with the whole body counted as sent is
 * the moment the request is out. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    http_transfer *t = ud;
    if (ultotal > 0 && ulnow >= ultotal)
        tell_sent(t);
    if (t->call->cancelled && t->call->cancelled(t->call->cancel_ctx)) {
        t->cancelled = true;
        return 1;
    }
    if (t->call->stall_timeout_ms <= 0)
        return 0;
    if (dlnow + ulnow != t->moved) {
        t->moved = dlnow + ulnow;
        clock_gettime(CLOCK_MONOTONIC, &t->last_move);
        return 0;
    }
    if (ms_since(&t->last_move) >= t->call->stall_timeout_ms) {
        t->stalled = true;
        return 1;
    }
    return 0;
}

/* ---- requests ---- */

static char *full_url(const mr_http_client *c, const char *url)
{
    bool absolute = strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
    if (absolute || !c->base_url)
        return strdup(url);
    size_t n = strlen(c->base_url) + strlen(url) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", c->base_url, url[0] == '/' ? "" : "/", url);
    return s;
}

static mr_code transport_error(const mr_http_client *c, const mr_http_result *out,
                               CURLcode rc, const http_transfer *t, mr_err *err)
{
    char detail[CURL_ERROR_SIZE + 128];
    if (t->body.too_big)
        snprintf(detail, sizeof detail, "response larger than %zu bytes", t->body.max);
    else if (t->stalled)
        snprintf(detail, sizeof detail, "no data for %ld ms (stall timeout)",
                 t->call->stall_timeout_ms);
    else if (t->aborted)
        snprintf(detail, sizeof detail, "aborted by the receiver");
    else if (t->cancelled)
        snprintf(detail, sizeof detail, "cancelled by the caller");
    else if (t->failed_alloc)
        snprintf(detail, sizeof detail, "out of memory reading the response");
    else
        snprintf(detail, sizeof detail, "%s%s%s", curl_easy_strerror(rc), c->errbuf[0] ? ": " : "",
                 c->errbuf);
    char clean[sizeof detail];
    mr_log_redact(detail, clean, sizeof clean);
    mr_code code = MR_EIO;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        code = MR_EUNAVAIL;
        break;
    default:
        break;
    }
    if (t->failed_alloc)
        code = MR_ENOMEM;
    else if (t->stalled || t->cancelled)
        code = MR_EUNAVAIL;
    return mr_err_set(err, code, "%s %s: %s", out->method, out->url, clean);
}

static struct curl_slist *request_headers(const mr_http_client *c, const mr_http_call *call,
                                          bool *failed)
{
    struct curl_slist *list = NULL, *next;
    char ct[256];
    const char *fixed[3] = {c->auth_header, NULL, NULL};
    if (call->content_type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", call->content_type);
        fixed[1] = ct;
    }
    /* libcurl would otherwise send Expect: 100-continue for large bodies and wait a second. */
    fixed[2] = "Expect:";
    for (size_t i = 0; i < 3; i++) {
        if (!fixed[i])
            continue;
        if (!(next = curl_slist_append(list, fixed[i])))
            goto fail;
        list = next;
    }
    for (size_t i = 0; call->headers && call->headers[i]; i++) {
        if (!(next = curl_slist_append(list, call->headers[i])))
            goto fail;
        list = next;
    }
    return list;
fail:
    curl_slist_free_all(list);
    *failed = true;
    return NULL;
}

mr_code http_client_prepare(mr_http_client *c, const mr_http_call *call, mr_http_result *out,
                            http_transfer *t, char **url_out, struct curl_slist **hdrs_out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->method, sizeof out->method, "%s", call->method ? call->method : "GET");
    char *url = full_url(c, call->url);
    char redacted[2048];
    out->url = url ? strdup(mr_log_redact(url, redacted, sizeof redacted)) : NULL;
    bool failed = !url || !out->url;
    struct curl_slist *hdrs = failed ? NULL : request_headers(c, call, &failed);
    if (failed) {
        free(url);
        curl_slist_free_all(hdrs);
        return mr_err_set(err, MR_ENOMEM, "out of memory preparing %s %s", out->method, call->url);
    }
    /* reset keeps the connection cache: only the options of the last request go. */
    CURL *e = c->easy;
    curl_easy_reset(e);
    *t = (http_transfer){.out = out, .call = call, .easy = e};
    mr_strbuf_init(&t->body, c->max_response);
    clock_gettime(CLOCK_MONOTONIC, &t->last_move);
    c->errbuf[0] = '\0';
    /* Each option is checked: a string option can fail for memory, any for a libcurl built
     * without it. The first failure names the option. */
    CURLcode sc = CURLE_OK;
    const char *opt = NULL;
#define SET(o, v)                                                                                  \
    do {                                                                                           \
        if (sc == CURLE_OK && (sc = curl_easy_setopt(e, o, v)) != CURLE_OK)                        \
            opt = #o;                                                                              \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_USERAGENT, c->user_agent);
    if (c->ca_file)
        SET(CURLOPT_CAINFO, c->ca_file);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, call->timeout_ms > 0 ? call->timeout_ms : c->timeout_ms);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, t);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, t);
    if (call->stall_timeout_ms > 0 || call->cancelled || call->sent) {
        SET(CURLOPT_XFERINFOFUNCTION, on_progress);
        SET(CURLOPT_XFERINFODATA, t);
        SET(CURLOPT_NOPROGRESS, 0L);
    }
    if (strcmp(out->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (call->body || strcmp(out->method, "POST") == 0 || strcmp(out->method, "PUT") == 0) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(call->body ? call->body_len : 0));
        SET(CURLOPT_POSTFIELDS, call->body ? call->body : "");
    }
    if (strcmp(out->method, "GET") != 0 && strcmp(out->method, "HEAD") != 0)
        SET(CURLOPT_CUSTOMREQUEST, out->method);
#undef SET
    if (sc != CURLE_OK) {
        curl_slist_free_all(hdrs);
        free(url);
        mr_strbuf_free(&t->body);
        if (c->ca_file && strcmp(opt, "CURLOPT_CAINFO") == 0)
            return mr_err_set(err, MR_EINVAL, "%s %s: CA file %s cannot be used: %s", out->method, out->url,
                              c->ca_file, curl_easy_strerror(sc));
        return mr_err_set(err, sc == CURLE_OUT_OF_MEMORY ? MR_ENOMEM : MR_EINTERNAL, "%s %s: setting %s: %s",
                          out->method, out->url, opt, curl_easy_strerror(sc));
    }
    *url_out = url;
    *hdrs_out = hdrs;
    return MR_OK;
}

mr_code http_client_finish(mr_http_client *c, CURLcode rc, http_transfer *t, mr_err *err)
{
    mr_http_result *out = t->out;
    CURL *e = c->easy;
    if (rc != CURLE_OK || t->failed_alloc) {
        mr_code code = transport_error(c, out, rc, t, err);
        mr_strbuf_free(&t->body);
        return code;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &out->new_connections);
    out->body_len = t->body.len;
    out->body = mr_strbuf_take(&t->body);
    if (!out->body)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading %s %s", out->method, out->url);
    return MR_OK;
}

mr_code mr_http_client_do(mr_http_client *c, const mr_http_call *call, mr_http_result *out,
                          mr_err *err)
{
    http_transfer t;
    char *url = NULL;
    struct curl_slist *hdrs = NULL;
    mr_code rc = http_client_prepare(c, call, out, &t, &url, &hdrs, err);
    if (rc != MR_OK)
        return rc;
    c->own_used = true;
    CURLcode cc = curl_easy_perform(c->easy);
    curl_slist_free_all(hdrs);
    free(url);
    return http_client_finish(c, cc, &t, err);
}

mr_code mr_http_client_json(mr_http_client *c, const char *method, const char *url,
                            json_t *body, mr_http_result *out, mr_err *err)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text) {
        memset(out, 0, sizeof *out);
        return mr_err_set(err, MR_ENOMEM, "out of memory encoding the body of %s", method);
    }
    static const char *const accept[] = {"Accept: application/json", NULL};
    mr_http_call call = {.method = method, .url = url, .body = text,
                         .body_len = text ? strlen(text) : 0,
                         .content_type = text ? "application/json" : NULL, .headers = accept};
    mr_code rc = mr_http_client_do(c, &call, out, err);
    free(text);
    if (rc != MR_OK || out->body_len == 0)
        return rc;
    json_error_t je;
    out->json = json_loadb(out->body, out->body_len, JSON_DECODE_ANY, &je);
    if (!out->json)
        return mr_err_set(err, MR_EINVAL, "%s %s: HTTP %ld response is not JSON (%s at byte %d)",
                          out->method, out->url, out->status, je.text, je.position);
    return MR_OK;
}

/* ---- reading results ---- */

const char *mr_http_result_header(const mr_http_result *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

long long mr_http_result_retry_after_ms(const mr_http_result *r)
{
    const char *v = mr_http_result_header(r, "Retry-After");
    if (!v || !*v)
        return -1;
    char *end;
    long long secs = strtoll(v, &end, 10);
    if (*end == '\0')
        return secs < 0 ? -1 : secs * 1000;
    time_t when = curl_getdate(v, NULL);
    if (when == (time_t)-1)
        return -1;
    long long delta = (long long)(when - time(NULL)) * 1000;
    return delta > 0 ? delta : 0;
}

mr_code mr_http_result_check(const mr_http_result *r, mr_err *err)
{
    if (r->status >= 200 && r->status < 300)
        return MR_OK;
    mr_code code = MR_EIO;
    if (r->status == 400)
        code = MR_EINVAL;
    else if (r->status == 401)
        code = MR_EAUTH;
    else if (r->status == 403)
        code = MR_EPERM;
    else if (r->status == 404)
        code = MR_ENOTFOUND;
    else if (r->status == 409)
        code = MR_ECONFLICT;
    else if (r->status == 429 || r->status >= 500)
        code = MR_EUNAVAIL;
    const char *errcode = json_string_value(json_object_get(r->json, "errcode"));
    const char *error = json_string_value(json_object_get(r->json, "error"));
    char detail[MR_ERR_MSG_MAX] = "", clean[MR_ERR_MSG_MAX];
    if (errcode || error)
        snprintf(detail, sizeof detail, ": %s%s%s", errcode ? errcode : "",
                 errcode && error ? ": " : "", error ? error : "");
    return mr_err_set(err, code, "%s %s: HTTP %ld%s", r->method, r->url ? r->url : "?", r->status,
                      mr_log_redact(detail, clean, sizeof clean));
}
