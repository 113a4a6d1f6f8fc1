/* client.c -- the Matrix client's core: session, one request with retries and backoff, 429
 * handling through retry_after_ms, soft logout detection, path encoding. */
#include "matrix_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_ATTEMPTS 5
#define DEFAULT_BACKOFF_MS 500L
#define DEFAULT_MAX_BACKOFF_MS 30000L

static bool default_sleep(void *ctx, long ms)
{
    (void)ctx;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return false;
}

static void wipe_free(char *s)
{
    if (!s)
        return;
    memset(s, 0, strlen(s));
    free(s);
}

mr_code mr_matrix_new(const mr_matrix_opts *opts, mr_matrix **out, mr_err *err)
{
    *out = NULL;
    if (!opts || !opts->homeserver || !*opts->homeserver)
        return mr_err_set(err, MR_EINVAL, "Matrix client: no homeserver URL given");
    if (strncmp(opts->homeserver, "http://", 7) != 0 && strncmp(opts->homeserver, "https://", 8) != 0)
        return mr_err_set(err, MR_EINVAL, "Matrix client: homeserver URL \"%s\" must start with "
                          "http:// or https://", opts->homeserver);
    mr_matrix *m = calloc(1, sizeof *m);
    if (!m)
        return mr_err_set(err, MR_ENOMEM, "out of memory creating a Matrix client");
    m->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    m->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_MAX_ATTEMPTS;
    m->max_rate_limited = opts->max_rate_limited > 0 ? opts->max_rate_limited : 0;
    m->backoff_ms = opts->backoff_ms > 0 ? opts->backoff_ms : DEFAULT_BACKOFF_MS;
    m->max_backoff_ms = opts->max_backoff_ms > 0 ? opts->max_backoff_ms : DEFAULT_MAX_BACKOFF_MS;
    m->sleep = opts->sleep ? opts->sleep : default_sleep;
    m->sleep_ctx = opts->sleep_ctx;
    m->observe = opts->observe;
    m->observe_ctx = opts->observe_ctx;
    m->stopping = opts->stopping;
    m->stopping_ctx = opts->stopping_ctx;
    m->seed = (unsigned int)time(NULL) ^ (unsigned int)getpid() ^ (unsigned int)(size_t)m;
    m->last.retry_after_ms = -1;
    mr_http_client_opts ho = {.base_url = opts->homeserver, .timeout_ms = m->timeout_ms,
                              .connect_timeout_ms = opts->connect_timeout_ms};
    mr_code rc = mr_http_client_new(&ho, &m->http, err);
    if (rc == MR_OK)
        rc = mr_matrix_set_session(m, opts->user_id, opts->device_id, opts->access_token, err);
    if (rc != MR_OK) {
        mr_matrix_free(m);
        return rc;
    }
    *out = m;
    return MR_OK;
}

void mr_matrix_free(mr_matrix *m)
{
    if (!m)
        return;
    mr_http_client_free(m->http);
    /* A sync left in a multi (the caller should have cancelled it): its own allocations. */
    free(m->run.path);
    wipe_free(m->run.auth);
    mr_http_result_clear(&m->run.res);
    wipe_free(m->token);
    free(m);
}

const mr_matrix_status *mr_matrix_last(const mr_matrix *m)
{
    return &m->last;
}

bool mr_matrix_errcode_is(const mr_matrix *m, const char *errcode)
{
    return strcmp(m->last.errcode, errcode) == 0;
}

mr_code mr_matrix_set_session(mr_matrix *m, const char *user_id, const char *device_id,
                              const char *access_token, mr_err *err)
{
    if ((user_id && strlen(user_id) >= MR_MATRIX_ID_SIZE) ||
        (device_id && strlen(device_id) >= MR_MATRIX_ID_SIZE))
        return mr_err_set(err, MR_EINVAL, "Matrix session: user or device ID longer than %d bytes",
                          MR_MATRIX_ID_SIZE - 1);
    char *token = NULL;
    if (access_token && !(token = strdup(access_token)))
        return mr_err_set(err, MR_ENOMEM, "out of memory keeping an access token");
    snprintf(m->user_id, sizeof m->user_id, "%s", user_id ? user_id : "");
    snprintf(m->device_id, sizeof m->device_id, "%s", device_id ? device_id : "");
    wipe_free(m->token);
    m->token = token;
    return MR_OK;
}

const char *mr_matrix_user_id(const mr_matrix *m)
{
    return m->user_id;
}

const char *mr_matrix_device_id(const mr_matrix *m)
{
    return m->device_id;
}

const char *mr_matrix_access_token(const mr_matrix *m)
{
    return m->token;
}

/* ---- paths ---- */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

char *mr_matrix_escape(const char *s)
{
    char *out = malloc(strlen(s) * 3 + 1), *p = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (unreserved(c))
            *p++ = (char)c;
        else
            p += sprintf(p, "%%%02X", c);
    }
    *p = '\0';
    return out;
}

char *mx_path(const char *fmt, ...)
{
    /* Two passes over the arguments: measure, then write. */
    va_list ap;
    size_t len = 0;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        if (f[0] == '%' && (f[1] == 's' || f[1] == 'S')) {
            len += strlen(va_arg(ap, const char *)) * (f[1] == 's' ? 3 : 1);
            f++;
        } else {
            len++;
        }
    }
    va_end(ap);
    char *out = malloc(len + 1), *p = out;
    if (!out)
        return NULL;
    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        if (f[0] == '%' && (f[1] == 's' || f[1] == 'S')) {
            const char *arg = va_arg(ap, const char *);
            for (; *arg; arg++) {
                unsigned char c = (unsigned char)*arg;
                if (f[1] == 'S' || unreserved(c))
                    *p++ = (char)c;
                else
                    p += sprintf(p, "%%%02X", c);
            }
            f++;
        } else {
            *p++ = *f;
        }
    }
    va_end(ap);
    *p = '\0';
    return out;
}

bool mx_copy_str(json_t *obj, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(obj, key));
    if (!v || strlen(v) >= cap)
        return false;
    memcpy(out, v, strlen(v) + 1);
    return true;
}

mr_code mx_take_session(mr_matrix *m, json_t *reply, const char *what, mr_err *err)
{
    const char *user = json_string_value(json_object_get(reply, "user_id"));
    const char *device = json_string_value(json_object_get(reply, "device_id"));
    const char *token = json_string_value(json_object_get(reply, "access_token"));
    if (!user || !device || !token)
        return mr_err_set(err, MR_EINVAL, "%s: the reply lacks user_id, device_id or access_token",
                          what);
    return mr_matrix_set_session(m, user, device, token, err);
}

/* ---- one request ---- */

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Exponential, capped, with the upper half jittered so clients that failed together do not
 * come back together. */
static long backoff_for(mr_matrix *m, int attempt)
{
    long d = m->backoff_ms;
    for (int i = 1; i < attempt && d < m->max_backoff_ms; i++)
        d *= 2;
    if (d > m->max_backoff_ms)
        d = m->max_backoff_ms;
    long half = d / 2;
    return half + (long)(rand_r(&m->seed) % (unsigned)(half + 1));
}

static void record_status(mr_matrix *m, const mr_http_result *res)
{
    mr_matrix_status *s = &m->last;
    memset(s, 0, sizeof *s);
    s->retry_after_ms = -1;
    s->status = res ? res->status : 0;
    if (!res || !json_is_object(res->json))
        return;
    mx_copy_str(res->json, "errcode", s->errcode, sizeof s->errcode);
    const char *e = json_string_value(json_object_get(res->json, "error"));
    snprintf(s->error, sizeof s->error, "%s", e ? e : "");
    s->soft_logout = res->status == 401 && json_is_true(json_object_get(res->json, "soft_logout"));
    json_t *ra = json_object_get(res->json, "retry_after_ms");
    if (json_is_integer(ra) && json_integer_value(ra) >= 0)
        s->retry_after_ms = json_integer_value(ra);
}

long mx_rate_limit_delay(mr_matrix *m, const mr_http_result *res, int attempt)
{
    if (m->last.retry_after_ms >= 0)
        return (long)m->last.retry_after_ms;
    long long h = mr_http_result_retry_after_ms(res);
    return h >= 0 ? (long)h : backoff_for(m, attempt);
}

static bool retryable_status(long status)
{
    return status == 502 || status == 503 || status == 504;
}

mr_code mx_auth_header(mr_matrix *m, const mx_req *r, char **auth, mr_err *err)
{
    const char *token = r->bearer ? r->bearer : (r->anonymous ? NULL : m->token);
    *auth = NULL;
    if (!token)
        return MR_OK;
    size_t n = strlen(token) + 32;
    if (!(*auth = malloc(n)))
        return mr_err_set(err, MR_ENOMEM, "out of memory preparing %s %s", r->method, r->path);
    snprintf(*auth, n, "Authorization: Bearer %s", token);
    return MR_OK;
}

void mx_auth_free(char *auth)
{
    wipe_free(auth);
}

mr_code mx_parse_reply(mr_code rc, mr_http_result *res, mr_err *err)
{
    if (rc != MR_OK || res->body_len == 0)
        return rc;
    json_error_t je;
    res->json = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, &je);
    if (!res->json && res->status >= 200 && res->status < 300)
        return mr_err_set(err, MR_EINVAL, "%s %s: HTTP %ld reply is not JSON (%s at byte %d)",
                          res->method, res->url, res->status, je.text, je.position);
    return MR_OK;
}

/* One HTTP exchange; res is filled (and must be cleared) whatever happens. */
static mr_code exchange(mr_matrix *m, const mx_req *r, const char *body, mr_http_result *res,
                        mr_err *err)
{
    char *auth = NULL;
    mr_code rc = mx_auth_header(m, r, &auth, err);
    if (rc != MR_OK) {
        memset(res, 0, sizeof *res);
        return rc;
    }
    const char *headers[] = {"Accept: application/json", auth, NULL};
    mr_http_call call = {.method = r->method, .url = r->path, .body = body,
                         .body_len = body ? strlen(body) : 0,
                         .content_type = body ? "application/json" : NULL, .headers = headers,
                         .timeout_ms = r->timeout_ms, .cancelled = m->stopping,
                         .cancel_ctx = m->stopping_ctx};
    rc = mr_http_client_do(m->http, &call, res, err);
    wipe_free(auth);
    return mx_parse_reply(rc, res, err);
}

void mx_observe(mr_matrix *m, const mx_req *r, mr_code rc, const mr_http_result *res,
                const struct timespec *t0)
{
    bool transport = rc != MR_OK && res->status == 0;
    record_status(m, transport ? NULL : res);
    if (m->observe) {
        mr_matrix_attempt a = {.endpoint = r->endpoint, .method = r->method,
                               .status = m->last.status,
                               .errcode = m->last.errcode[0] ? m->last.errcode : NULL,
                               .seconds = seconds_since(t0)};
        m->observe(m->observe_ctx, &a);
    }
}

static bool stopping(mr_matrix *m)
{
    return m->stopping && m->stopping(m->stopping_ctx);
}

mr_code mx_call(mr_matrix *m, const mx_req *r, json_t **out, mr_err *err)
{
    if (out)
        *out = NULL;
    char *body = NULL;
    if (r->body && !(body = json_dumps(r->body, JSON_COMPACT)))
        return mr_err_set(err, MR_ENOMEM, "out of memory encoding the body of %s %s", r->method,
                          r->path);
    int failures = 0, limited = 0;
    mr_code rc;
    for (;;) {
        if (stopping(m)) {
            rc = mr_err_set(err, MR_EUNAVAIL, "%s %s: not sent, the caller is stopping", r->method,
                            r->path);
            break;
        }
        mr_http_result res;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = exchange(m, r, body, &res, err);
        bool transport = rc != MR_OK && res.status == 0;
        mx_observe(m, r, rc, &res, &t0);
        long delay = -1;
        if (transport) {
            if (r->retry && rc == MR_EUNAVAIL && !stopping(m) && ++failures < m->max_attempts)
                delay = backoff_for(m, failures);
        } else if (rc == MR_OK && res.status == 429) {
            if (!m->max_rate_limited || ++limited < m->max_rate_limited)
                delay = mx_rate_limit_delay(m, &res, limited + 1);
        } else if (rc == MR_OK && retryable_status(res.status)) {
            if (r->retry && ++failures < m->max_attempts)
                delay = backoff_for(m, failures);
        }
        if (delay >= 0) {
            mr_http_result_clear(&res);
            if (m->sleep(m->sleep_ctx, delay)) {
                rc = mr_err_set(err, MR_EUNAVAIL, "%s %s: stopped while waiting %ld ms to retry",
                                r->method, r->path, delay);
                break;
            }
            continue;
        }
        if (rc == MR_OK) {
            rc = mr_http_result_check(&res, err);
            if (rc == MR_OK || r->error_body) {
                if (out) {
                    *out = res.json ? res.json : json_object();
                    res.json = NULL;
                }
            }
            if (rc == MR_EAUTH && m->last.soft_logout)
                mr_err_prefix(err, "soft logout of %s", m->user_id[0] ? m->user_id : "the session");
        }
        mr_http_result_clear(&res);
        break;
    }
    free(body);
    return rc;
}

mr_code mr_matrix_request(mr_matrix *m, const char *endpoint, const char *method, const char *path,
                          json_t *body, bool retry, json_t **out, mr_err *err)
{
    mx_req r = {.endpoint = endpoint, .method = method, .path = path, .body = body, .retry = retry};
    return mx_call(m, &r, out, err);
}
