/* pipeline_proxy.c -- the timing proxy of bench/pipeline: forwards each request to the homeserver
 * on a libcurl client of its connection's thread and notes the two moments the bench measures. */
#include "pipeline_proxy.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mindroom/http.h"

/* Longer than any long poll the gateway asks for. */
#define UPSTREAM_TIMEOUT_MS 120000

struct pp_proxy {
    mr_http_server *srv;
    char upstream[128];
    char human[128];
    size_t cap;
    long long *synced;   /* ns; 0: not yet */
    long long *replied;
    int *answers;        /* sends answering message i that are not edits: more than 1 is a duplicate */
    char **event_ids;    /* message i's event ID, as the first sync carrying it showed it */
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* a reply came in */
    pthread_key_t client_key;
};

long long pp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void client_free(void *c)
{
    mr_http_client_free(c);
}

/* One client per connection thread keeps its upstream connection alive between requests. */
static mr_http_client *thread_client(pp_proxy *p)
{
    mr_http_client *c = pthread_getspecific(p->client_key);
    if (c)
        return c;
    mr_http_client_opts o = {.timeout_ms = UPSTREAM_TIMEOUT_MS, .user_agent = "bench-pipeline-proxy"};
    if (mr_http_client_new(&o, &c, NULL) != MR_OK)
        return NULL;
    pthread_setspecific(p->client_key, c);
    return c;
}

/* Percent-encodes s (RFC 3986 unreserved characters pass) onto out. */
static void append_encoded(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(out);
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
}

static char *upstream_url(const pp_proxy *p, const mr_http_request *req)
{
    size_t cap = strlen(p->upstream) + strlen(req->path) + 2;
    for (size_t i = 0; i < req->nquery; i++)
        cap += 3 * (strlen(req->query[i].name) + strlen(req->query[i].value)) + 2;
    char *url = malloc(cap);
    if (!url)
        return NULL;
    snprintf(url, cap, "%s%s", p->upstream, req->path);
    for (size_t i = 0; i < req->nquery; i++) {
        strcat(url, i ? "&" : "?");
        append_encoded(url, cap, req->query[i].name);
        strcat(url, "=");
        append_encoded(url, cap, req->query[i].value);
    }
    return url;
}

/* "<prefix><i>..." with i < cap. */
static bool message_index(const pp_proxy *p, const char *body, const char *prefix, size_t *i)
{
    size_t n = strlen(prefix);
    if (!body || strncmp(body, prefix, n) != 0 || body[n] < '0' || body[n] > '9')
        return false;
    *i = (size_t)strtoull(body + n, NULL, 10);
    return *i < p->cap;
}

/* The first time a sync response carries bench message i. */
static void note_synced(pp_proxy *p, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *rooms = json_object_get(json_object_get(doc, "rooms"), "join");
    long long now = pp_now_ns();
    const char *room_id;
    json_t *room;
    json_object_foreach(rooms, room_id, room) {
        size_t k;
        json_t *ev;
        json_array_foreach(json_object_get(json_object_get(room, "timeline"), "events"), k, ev) {
            const char *sender = json_string_value(json_object_get(ev, "sender"));
            const char *text = json_string_value(json_object_get(json_object_get(ev, "content"), "body"));
            size_t i;
            if (!sender || strcmp(sender, p->human) != 0 || !message_index(p, text, "bench-", &i))
                continue;
            const char *event_id = json_string_value(json_object_get(ev, "event_id"));
            pthread_mutex_lock(&p->mu);
            if (!p->synced[i])
                p->synced[i] = now;
            if (!p->event_ids[i] && event_id)
                p->event_ids[i] = strdup(event_id);
            pthread_mutex_unlock(&p->mu);
        }
    }
    json_decref(doc);
}

/* The message whose event ID this is; false when none. Under p->mu. */
static bool index_of_event(const pp_proxy *p, const char *event_id, size_t *i)
{
    for (size_t k = 0; event_id && k < p->cap; k++) {
        if (p->event_ids[k] && strcmp(p->event_ids[k], event_id) == 0) {
            *i = k;
            return true;
        }
    }
    return false;
}

/* A streamed answer not yet complete ends in the agent's " ⋯". */
static bool in_progress(const char *text)
{
    static const char marker[] = " \xe2\x8b\xaf";
    size_t n = strlen(text), m = sizeof marker - 1;
    return n >= m && strcmp(text + n - m, marker) == 0;
}

/* The first send that carries the whole reply to bench message i, in its body or, for a
 * streamed answer, in an edit's m.new_content; and every answer (a send that is no edit, in
 * reply to the message) counted. */
static void note_replied(pp_proxy *p, const mr_http_request *req, long long at)
{
    if (strcmp(req->method, "PUT") != 0 || !strstr(req->path, "/send/m.room.message/"))
        return;
    json_t *doc = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *rel = json_object_get(doc, "m.relates_to");
    const char *rel_type = json_string_value(json_object_get(rel, "rel_type"));
    bool edit = rel_type && strcmp(rel_type, "m.replace") == 0;
    const char *text = json_string_value(json_object_get(edit ? json_object_get(doc, "m.new_content") : doc, "body"));
    const char *trigger = json_string_value(json_object_get(json_object_get(rel, "m.in_reply_to"), "event_id"));
    size_t i;
    pthread_mutex_lock(&p->mu);
    if (!edit && index_of_event(p, trigger, &i))
        p->answers[i]++;
    if (message_index(p, text, "Echo: bench-", &i) && !in_progress(text) && !p->replied[i]) {
        p->replied[i] = at;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    json_decref(doc);
}

static mr_http_response *forward(void *ctx, const mr_http_request *req)
{
    long long entered = pp_now_ns();
    pp_proxy *p = ctx;
    note_replied(p, req, entered);
    mr_http_client *c = thread_client(p);
    char *url = upstream_url(p, req);
    if (!c || !url) {
        free(url);
        return mr_http_reply_error(500, "M_UNKNOWN", "proxy: out of memory");
    }
    const char *auth = mr_http_request_header(req, "Authorization");
    char auth_line[1024];
    snprintf(auth_line, sizeof auth_line, "Authorization: %s", auth ? auth : "");
    const char *headers[] = {auth ? auth_line : NULL, NULL};
    mr_http_call call = {.method = req->method, .url = url, .body = req->body_len ? req->body : NULL,
                         .body_len = req->body_len, .content_type = mr_http_request_header(req, "Content-Type"),
                         .headers = headers};
    mr_http_result res;
    mr_err err = {0};
    mr_http_response *r;
    if (mr_http_client_do(c, &call, &res, &err) != MR_OK) {
        r = mr_http_reply_error(502, "M_UNKNOWN", "proxy: %s", err.msg);
    } else {
        if (res.status == 200 && strstr(req->path, "/sync"))
            note_synced(p, res.body, res.body_len);
        const char *type = mr_http_result_header(&res, "Content-Type");
        r = mr_http_reply((int)res.status, type ? type : "application/json", res.body, res.body_len);
    }
    mr_http_result_clear(&res);
    free(url);
    return r;
}

mr_code pp_proxy_start(const char *upstream, const char *human, size_t cap, pp_proxy **out, int *port,
                       mr_err *err)
{
    pp_proxy *p = calloc(1, sizeof *p);
    if (!p || !(p->synced = calloc(cap, sizeof *p->synced)) || !(p->replied = calloc(cap, sizeof *p->replied)) ||
        !(p->answers = calloc(cap, sizeof *p->answers)) || !(p->event_ids = calloc(cap, sizeof *p->event_ids))) {
        if (p) {
            free(p->synced);
            free(p->replied);
            free(p->answers);
        }
        free(p);
        return mr_err_set(err, MR_ENOMEM, "out of memory for the proxy");
    }
    snprintf(p->upstream, sizeof p->upstream, "%s", upstream);
    snprintf(p->human, sizeof p->human, "%s", human);
    p->cap = cap;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_key_create(&p->client_key, client_free);
    /* Stands in for the homeserver, which every agent reaches from loopback. */
    mr_http_server_opts so = {.listen = "127.0.0.1:0", .max_body = 4u << 20, .max_per_address = 256};
    mr_code rc = mr_http_server_start(&so, forward, p, &p->srv, err);
    if (rc != MR_OK) {
        pp_proxy_stop(p);
        return rc;
    }
    *port = mr_http_server_port(p->srv);
    *out = p;
    return MR_OK;
}

void pp_proxy_stop(pp_proxy *p)
{
    if (!p)
        return;
    mr_http_server_stop(p->srv);
    pthread_key_delete(p->client_key);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->synced);
    free(p->replied);
    free(p->answers);
    for (size_t i = 0; i < p->cap; i++)
        free(p->event_ids[i]);
    free(p->event_ids);
    free(p);
}

bool pp_proxy_wait_reply(pp_proxy *p, size_t i, long long deadline_ms)
{
    struct timespec until = {deadline_ms / 1000, (long)(deadline_ms % 1000) * 1000000L};
    pthread_mutex_lock(&p->mu);
    while (!p->replied[i] && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0)
        ;
    bool seen = p->replied[i] != 0;
    pthread_mutex_unlock(&p->mu);
    return seen;
}

static long long read_locked(pp_proxy *p, const long long *v, size_t i)
{
    pthread_mutex_lock(&p->mu);
    long long t = v[i];
    pthread_mutex_unlock(&p->mu);
    return t;
}

long long pp_proxy_synced_ns(pp_proxy *p, size_t i)
{
    return read_locked(p, p->synced, i);
}

long long pp_proxy_replied_ns(pp_proxy *p, size_t i)
{
    return read_locked(p, p->replied, i);
}

int pp_proxy_answers(pp_proxy *p, size_t i)
{
    pthread_mutex_lock(&p->mu);
    int n = i < p->cap ? p->answers[i] : 0;
    pthread_mutex_unlock(&p->mu);
    return n;
}
