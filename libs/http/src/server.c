/* server.c -- the HTTP server: binding, reading requests, calling the handler, sending replies.
 *
 * By default libmicrohttpd runs one thread per connection (MHD_USE_THREAD_PER_CONNECTION).
 * Handlers in this project block: the test homeserver long-polls /sync for up to 30 s, services
 * call upstreams. With a shared polling thread pool one blocked handler would stall every
 * connection on its thread; a thread each keeps them independent, and max_connections bounds
 * the thread count. A server whose handlers answer from memory (upstream-auth's forward auth)
 * may ask for a pool instead (pool_threads): each polling thread serves many connections with
 * one poll(), which saves a wake-up and two context switches a request. Not epoll: stopping
 * quiesces the daemon, and in epoll mode libmicrohttpd (0.9.75) has the quiescing call and a
 * polling thread both take the listening socket out of the epoll set; the one that comes
 * second panics and aborts the process (a few stops in a thousand here). There a handler that
 * has to wait says so (mr_http_reply_later); its connection is suspended, the handler called
 * again on a worker thread (workers.c), and the connection resumed with the answer, so the
 * polling thread goes on serving the others meanwhile. */
#include "http_internal.h"
#include "mindroom/str.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY (1024 * 1024)

/* The methods whose request metrics are kept at hand (any other takes the registry's lookup),
 * and the status codes, 100-599. */
static const char *const counted_methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
#define N_METHODS (sizeof counted_methods / sizeof *counted_methods)
#define N_STATUS 500

/* Every request is counted: the series of each method and status are looked up once, then
 * recorded into without a lock (mr_http_metrics_series). */
typedef struct request_series {
    _Atomic(mr_http_series *) counted[N_METHODS][N_STATUS];
    _Atomic(mr_http_series *) timed[N_METHODS];
} request_series;

struct mr_http_server {
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;
    size_t max_body;
    unsigned idle_timeout_s;
    unsigned header_timeout_s;
    mr_http_handler handler;
    void *ctx;
    mr_http_metrics *metrics;
    request_series *series;  /* with metrics */
    mr_http_error_fn error_reply;
    http_workers *workers;  /* pooled servers only */
    /* Requests between their first byte and their completion, so stop can wait for them:
     * MHD_stop_daemon alone would cut their connections. Counted without the lock, which only
     * the last request out takes, to wake stop. */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    atomic_uint inflight;
};

/* Where a request stands in its calls of the access handler. */
typedef enum conn_phase {
    PHASE_READING,   /* headers and body */
    PHASE_WAITING,   /* suspended, its handler queued for or running on a worker */
    PHASE_ANSWERED,  /* the worker's answer is in `answer`, the connection resumed */
} conn_phase;

/* Per-request state kept by MHD between calls of the access handler. */
typedef struct conn_state {
    mr_strbuf body;  /* limited to the server's max_body */
    struct timespec start;
    conn_phase phase;
    /* For a request handed to a worker: the job, and what the handler sees, kept until the
     * answer is sent; answer is the handler's (NULL: a 500). */
    http_job job;
    mr_http_server *srv;
    struct MHD_Connection *conn;
    mr_http_request req;
    mr_http_response *answer;
} conn_state;

static const double duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes %XX escapes in place; invalid escapes are kept as they are. */
static void pct_decode(char *s)
{
    char *out = s;
    for (const char *in = s; *in; in++) {
        if (*in == '%' && hexval(in[1]) >= 0 && hexval(in[2]) >= 0) {
            *out++ = (char)(hexval(in[1]) * 16 + hexval(in[2]));
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
}

/* MHD would decode the path before we see it, turning %2F into '/' and losing segment
 * boundaries (Matrix IDs in paths may hold any character). Keep everything raw and decode per
 * segment and per query parameter ourselves. MHD has already turned '+' into ' ' in query
 * strings by the time this runs. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* ---- listen address --------------------------------------------------------------------- */

static mr_code listen_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen,
                            mr_err *err)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return mr_err_set(err, MR_EINVAL, "listen address \"%s\": expected HOST:PORT", addr);
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof host)
        return mr_err_set(err, MR_EINVAL, "listen address \"%s\": host too long", addr);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || port < 0 || port > 65535)
        return mr_err_set(err, MR_EINVAL, "listen address \"%s\": port must be 0-65535", addr);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(hlen ? host : NULL, colon + 1, &hints, &res);
    if (gai != 0)
        return mr_err_set(err, MR_EINVAL, "listen address \"%s\": %s", addr, gai_strerror(gai));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return MR_OK;
}

/* We bind ourselves so a failure carries errno and the address, which MHD would only log. */
static mr_code listen_open(const char *addr, int *fd_out, int *port_out, mr_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    mr_code rc = listen_parse(addr, &ss, &sslen, err);
    if (rc != MR_OK)
        return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mr_err_errno(err, MR_EIO, errno, "socket for %s", addr);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return mr_err_errno(err, MR_EIO, e, "binding %s", addr);
    }
    sslen = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sslen);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return MR_OK;
}

/* ---- requests --------------------------------------------------------------------------- */

const char *mr_http_request_header(const mr_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->impl, MHD_HEADER_KIND, name);
}

/* A header field holds no control character but HTAB (RFC 9110 5.5): a CR, LF or NUL in a
 * value would let a client smuggle a second header past a proxy that forwards it whole. RFC
 * 9112 5.2 lets a server refuse a folded line with 400, as we do. */
static bool field_clean(const char *s, size_t n)
{
    for (size_t i = mr_str_printable_run(s, n); i < n; i += 1 + mr_str_printable_run(s + i + 1, n - i - 1))
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return false;
    return true;
}

/* Whitespace a client may put between a header's colon and its value, and more. */
#define MAX_VALUE_INDENT 256

/* libmicrohttpd 0.9.75 ends a header line at a bare LF, cuts the value it reports at a NUL, and
 * glues a folded continuation line onto the header's name ("X-A: v\r\n -B" becomes "X-A-B: v",
 * a name the proxy in front never saw), telling us of none of it. It parses in place,
 * overwriting the colon with a NUL, a CRLF with two NULs and a bare LF with one, and hands out
 * names and values pointing into that buffer. So a well-formed line has its value right after
 * its name (the colon's NUL, then blanks) and two NULs after its value; a bare LF leaves the
 * next line's first byte there, a NUL the rest of the value, and a folded name lives elsewhere. */
static bool single_clean_line(const char *key, size_t key_len, const char *value, size_t value_len)
{
    uintptr_t name_end = (uintptr_t)(key + key_len), at = (uintptr_t)value;
    if (at <= name_end || at - name_end > MAX_VALUE_INDENT || key[key_len] != '\0')
        return false;
    for (const char *p = key + key_len + 1; p < value; p++)
        if (*p != ' ' && *p != '\t')
            return false;
    return value[value_len] == '\0' && value[value_len + 1] == '\0' && field_clean(key, key_len) &&
           field_clean(value, value_len);
}

/* A name fit to quote in an error: printable ASCII, not too long. */
static bool quotable(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"')
            return false;
    return true;
}

typedef struct header_check {
    char bad[72]; /* what names the first offending header in an error: "header \"X-User\"" */
} header_check;

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_len, const char *value, size_t value_len)
{
    (void)kind;
    header_check *hc = cls;
    if (value && single_clean_line(key, key_len, value, value_len))
        return MHD_YES;
    if (quotable(key, key_len))
        snprintf(hc->bad, sizeof hc->bad, "header \"%.*s\"", (int)key_len, key);
    else
        snprintf(hc->bad, sizeof hc->bad, "a header");
    return MHD_NO;
}

/* Whether every header came as a clean single line; when not, names the first that did not. */
static bool headers_clean(struct MHD_Connection *c, header_check *hc)
{
    hc->bad[0] = '\0';
    MHD_get_connection_values_n(c, MHD_HEADER_KIND, check_header, hc);
    return hc->bad[0] == '\0';
}

typedef struct header_count {
    const char *name;
    const char *first;
    size_t n;
} header_count;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    header_count *hc = cls;
    if (strcasecmp(key, hc->name) == 0 && hc->n++ == 0)
        hc->first = value;
    return MHD_YES;
}

const char *mr_http_request_header_n(const mr_http_request *req, const char *name, size_t *count)
{
    header_count hc = {name, NULL, 0};
    MHD_get_connection_values(req->impl, MHD_HEADER_KIND, count_header, &hc);
    *count = hc.n;
    return hc.first;
}

size_t mr_http_request_header_count(const mr_http_request *req, const char *name)
{
    size_t n;
    mr_http_request_header_n(req, name, &n);
    return n;
}

const char *mr_http_request_query(const mr_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nquery; i++)
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    return NULL;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    mr_http_request *req = cls;
    mr_http_param *q = realloc(req->query, (req->nquery + 1) * sizeof *q);
    if (!q)
        return MHD_NO;
    req->query = q;
    char *k = strdup(key), *v = strdup(value ? value : "");
    if (!k || !v) {
        free(k);
        free(v);
        return MHD_NO;
    }
    pct_decode(k);
    pct_decode(v);
    q[req->nquery++] = (mr_http_param){k, v};
    return MHD_YES;
}

static bool split_path(mr_http_request *req, const char *path)
{
    const char *p = path[0] == '/' ? path + 1 : path;
    if (!*p)
        return true;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char **segs = realloc(req->segments, (req->nsegments + 1) * sizeof *segs);
        if (!segs)
            return false;
        req->segments = segs;
        char *seg = strndup(p, n);
        if (!seg)
            return false;
        pct_decode(seg);
        segs[req->nsegments++] = seg;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

static void request_clear(mr_http_request *req)
{
    for (size_t i = 0; i < req->nsegments; i++)
        free(req->segments[i]);
    free(req->segments);
    for (size_t i = 0; i < req->nquery; i++) {
        free(req->query[i].name);
        free(req->query[i].value);
    }
    free(req->query);
}

/* The peer's address and port: the port tells one connection from another. */
static void client_address(struct MHD_Connection *c, mr_http_request *req)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    req->client_ip[0] = '\0';
    req->client_port = 0;
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, req->client_ip, (socklen_t)sizeof req->client_ip);
        req->client_port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, req->client_ip, (socklen_t)sizeof req->client_ip);
        req->client_port = ntohs(in6->sin6_port);
    }
}

/* ---- sending ---------------------------------------------------------------------------- */

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int method_index(const char *method)
{
    for (size_t i = 0; i < N_METHODS; i++)
        if (strcmp(method, counted_methods[i]) == 0)
            return (int)i;
    return -1;
}

/* The series in *slot, or looked up and kept there; NULL when the registry has none. */
static mr_http_series *series_at(_Atomic(mr_http_series *) *slot, mr_http_metrics *m, const char *name,
                                 const char *const *labels, bool histogram)
{
    mr_http_series *s = atomic_load_explicit(slot, memory_order_acquire);
    if (!s && (s = mr_http_metrics_series(m, name, labels, histogram)))
        atomic_store_explicit(slot, s, memory_order_release);
    return s;
}

static void count_request(mr_http_server *srv, const char *method, int status,
                          const conn_state *st)
{
    if (!srv->metrics)
        return;
    double secs = seconds_since(&st->start);
    int mi = method_index(method);
    bool kept = mi >= 0 && status >= 100 && status < 100 + N_STATUS;
    mr_http_series *c = kept ? atomic_load_explicit(&srv->series->counted[mi][status - 100], memory_order_acquire) : NULL;
    mr_http_series *t = kept ? atomic_load_explicit(&srv->series->timed[mi], memory_order_acquire) : NULL;
    if (!c || !t) {
        /* The first request of its method and status, or one not kept at hand. */
        char code[12];
        snprintf(code, sizeof code, "%d", status);
        const char *counted[] = {"method", method, "code", code, NULL};
        const char *timed[] = {"method", method, NULL};
        if (!kept) {
            mr_http_metrics_inc(srv->metrics, "http_requests_total", counted, 1);
            mr_http_metrics_observe(srv->metrics, "http_request_duration_seconds", timed, secs);
            return;
        }
        c = series_at(&srv->series->counted[mi][status - 100], srv->metrics, "http_requests_total", counted, false);
        t = series_at(&srv->series->timed[mi], srv->metrics, "http_request_duration_seconds", timed, true);
    }
    if (c)
        mr_http_series_add(c, 1);
    if (t)
        mr_http_series_add(t, secs);
}

/* A streamed body as MHD sees it: the handler's producer and its context. */
typedef struct stream_body {
    mr_http_stream_fn next;
    void *ctx;
    void (*done)(void *ctx);
} stream_body;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_body *sb = cls;
    long n = sb->next(sb->ctx, buf, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0 || (size_t)n > max)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_body *sb = cls;
    if (sb->done)
        sb->done(sb->ctx);
    free(sb);
}

/* The MHD response for r; r's body, or a stream's context, moves from r to it. */
static struct MHD_Response *mhd_response(mr_http_response *r)
{
    if (!r->stream) {
        struct MHD_Response *mr = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (mr)
            r->body = NULL;
        return mr;
    }
    stream_body *sb = malloc(sizeof *sb);
    if (!sb)
        return NULL;
    *sb = (stream_body){r->stream, r->stream_ctx, r->stream_done};
    struct MHD_Response *mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
                                                                stream_read, sb, stream_free);
    if (!mr) {
        free(sb);
        return NULL;
    }
    r->stream_done = NULL;
    return mr;
}

/* An answer the server makes itself, in the service's error shape when it has one. */
static mr_http_response *server_error(const mr_http_server *srv, int status, const char *errcode,
                                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static mr_http_response *server_error(const mr_http_server *srv, int status, const char *errcode,
                                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (srv->error_reply)
        return srv->error_reply(status, msg);
    return mr_http_reply_error(status, errcode, "%s", msg);
}

/* Queues r (or a 500 when r is NULL) and frees it. */
static enum MHD_Result send_response(mr_http_server *srv, struct MHD_Connection *c,
                                     const char *method, const conn_state *st,
                                     mr_http_response *r)
{
    if (!r)
        r = server_error(srv, 500, "M_UNKNOWN", "internal error");
    struct MHD_Response *mr = r ? mhd_response(r) : NULL;
    if (!mr) {
        mr_http_response_free(r);
        return MHD_NO;
    }
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    const char *h = r->headers.s;
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *value = h + strlen(h) + 1;
        MHD_add_response_header(mr, h, value);
        h = value + strlen(value) + 1;
    }
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, mr);
    count_request(srv, method, r->status, st);
    MHD_destroy_response(mr);
    mr_http_response_free(r);
    return ok;
}

static mr_http_response *too_large(const mr_http_server *srv)
{
    return server_error(srv, 413, "M_TOO_LARGE", "request body exceeds %zu bytes", srv->max_body);
}

/* A worker's turn: the handler again, where it may wait, then the connection back to its polling
 * thread, which sends the answer (libmicrohttpd lets any thread resume a connection). */
static void run_waiting(http_job *j)
{
    conn_state *st = (conn_state *)(void *)((char *)j - offsetof(conn_state, job));
    mr_http_response *r = st->srv->handler(st->srv->ctx, &st->req);
    st->answer = r == &http_later_reply ? NULL : r;
    st->phase = PHASE_ANSWERED;
    MHD_resume_connection(st->conn);
}

static enum MHD_Result dispatch(mr_http_server *srv, struct MHD_Connection *c, const char *url,
                                const char *method, conn_state *st)
{
    mr_http_request *req = &st->req;
    mr_http_response *r = NULL;
    if (st->phase == PHASE_ANSWERED) {
        r = st->answer;
        st->answer = NULL;
    } else {
        *req = (mr_http_request){.method = method, .path = url, .impl = c, .may_block = !srv->workers};
        req->body = st->body.s ? st->body.s : "";
        req->body_len = st->body.len;
        client_address(c, req);
        if (split_path(req, url) && MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_query, req) >= 0)
            r = srv->handler(srv->ctx, req);
        if (r == &http_later_reply && !req->may_block) {
            /* Suspended before it is queued: a worker may resume it at once. */
            req->may_block = true;
            st->phase = PHASE_WAITING;
            st->srv = srv;
            st->conn = c;
            st->job.run = run_waiting;
            MHD_suspend_connection(c);
            http_workers_submit(srv->workers, &st->job);
            return MHD_YES;
        }
        if (r == &http_later_reply)
            r = NULL;
    }
    enum MHD_Result ok = send_response(srv, c, method, st, r);
    request_clear(req);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    mr_http_server *srv = cls;
    conn_state *st = *con_cls;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        mr_strbuf_init(&st->body, srv->max_body);
        clock_gettime(CLOCK_MONOTONIC, &st->start);
        *con_cls = st;
        atomic_fetch_add(&srv->inflight, 1);
        /* The headers are in: from now on the connection may idle as long as any other. */
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, srv->idle_timeout_s);
        header_check hc;
        if (!headers_clean(c, &hc))
            return send_response(srv, c, method, st,
                                 server_error(srv, 400, "M_UNKNOWN",
                                              "%s holds a control character, a NUL, a bare line "
                                              "end or a folded line",
                                              hc.bad));
        /* A declared length over the limit is refused before any of the body is read. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > srv->max_body)
            return send_response(srv, c, method, st, too_large(srv));
        return MHD_YES;
    }
    if (*upload_size) {
        /* Chunked bodies have no declared length: discard past the limit, answer at the end. */
        mr_strbuf_add(&st->body, upload, *upload_size);
        *upload_size = 0;
        return st->body.failed ? MHD_NO : MHD_YES;
    }
    if (st->body.too_big)
        return send_response(srv, c, method, st, too_large(srv));
    return dispatch(srv, c, url, method, st);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    mr_http_server *srv = cls;
    conn_state *st = *con_cls;
    if (!st)
        return;
    mr_strbuf_free(&st->body);
    mr_http_response_free(st->answer);
    free(st);
    *con_cls = NULL;
    if (atomic_fetch_sub(&srv->inflight, 1) == 1) {
        pthread_mutex_lock(&srv->lock);
        pthread_cond_broadcast(&srv->idle);
        pthread_mutex_unlock(&srv->lock);
    }
}

/* A new connection may stay silent header_timeout_s before its first request's headers are in,
 * not the whole idle timeout, so connections opened and left silent free their slots soon. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)socket_ctx;
    mr_http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, srv->header_timeout_s);
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void server_free(mr_http_server *srv)
{
    http_workers_free(srv->workers);
    free(srv->series);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->idle);
    free(srv);
}

mr_code mr_http_server_start(const mr_http_server_opts *opts, mr_http_handler handler,
                             void *ctx, mr_http_server **out, mr_err *err)
{
    *out = NULL;
    if (!opts || !opts->listen || !handler)
        return mr_err_set(err, MR_EINVAL, "http server: listen address and handler are required");
    mr_http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return mr_err_set(err, MR_ENOMEM, "out of memory starting server on %s", opts->listen);
    srv->handler = handler;
    srv->ctx = ctx;
    srv->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    srv->idle_timeout_s = opts->idle_timeout_s ? opts->idle_timeout_s : 60u;
    srv->header_timeout_s = opts->header_timeout_s ? opts->header_timeout_s : 10u;
    srv->metrics = opts->metrics;
    srv->error_reply = opts->error_reply;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->idle, NULL);
    if (opts->pool_threads && !(srv->workers = http_workers_new(opts->pool_workers ? opts->pool_workers : 16u))) {
        server_free(srv);
        return mr_err_set(err, MR_ENOMEM, "cannot start the worker threads of the server on %s", opts->listen);
    }
    mr_code rc;
    if (srv->metrics && !(srv->series = calloc(1, sizeof *srv->series))) {
        server_free(srv);
        return mr_err_set(err, MR_ENOMEM, "out of memory for the request metrics of the server on %s", opts->listen);
    }
    if (srv->metrics) {
        rc = mr_http_metrics_counter(srv->metrics, "http_requests_total",
                                     "HTTP requests answered, by method and status code", err);
        if (rc == MR_OK)
            rc = mr_http_metrics_histogram(srv->metrics, "http_request_duration_seconds",
                                           "Time from request start to response, by method",
                                           duration_buckets,
                                           sizeof duration_buckets / sizeof *duration_buckets, err);
        if (rc != MR_OK) {
            server_free(srv);
            return rc;
        }
    }
    rc = listen_open(opts->listen, &srv->listen_fd, &srv->port, err);
    if (rc != MR_OK) {
        server_free(srv);
        return rc;
    }
    unsigned flags = MHD_USE_ITC | (opts->pool_threads ? MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME
                                                       : MHD_USE_THREAD_PER_CONNECTION |
                                                             MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL);
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv,
        MHD_OPTION_THREAD_POOL_SIZE, opts->pool_threads,
        MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
        MHD_OPTION_CONNECTION_LIMIT, opts->max_connections ? opts->max_connections : 256u,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, opts->max_per_address ? opts->max_per_address : 64u,
        MHD_OPTION_CONNECTION_TIMEOUT, srv->idle_timeout_s,
        MHD_OPTION_END);
    if (!srv->daemon) {
        close(srv->listen_fd);
        server_free(srv);
        return mr_err_set(err, MR_EIO, "libmicrohttpd did not start on %s", opts->listen);
    }
    *out = srv;
    return MR_OK;
}

int mr_http_server_port(const mr_http_server *srv)
{
    return srv->port;
}

void mr_http_server_url(const char *listen, int port, char *out, size_t cap)
{
    const char *colon = strrchr(listen, ':');
    int hlen = colon ? (int)(colon - listen) : 0;
    if (hlen == 0 || (hlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0))
        snprintf(out, cap, "http://127.0.0.1:%d", port);
    else if (hlen == 4 && strncmp(listen, "[::]", 4) == 0)
        snprintf(out, cap, "http://[::1]:%d", port);
    else
        snprintf(out, cap, "http://%.*s:%d", hlen, listen, port);
}

void mr_http_server_stop(mr_http_server *srv)
{
    if (!srv)
        return;
    /* Quiesce and close the listening socket first: new connections are refused at once,
     * while requests in flight run to their last byte before MHD closes the connections. */
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    pthread_mutex_lock(&srv->lock);
    while (atomic_load(&srv->inflight) > 0)
        pthread_cond_wait(&srv->idle, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    MHD_stop_daemon(srv->daemon);
    server_free(srv);
}
