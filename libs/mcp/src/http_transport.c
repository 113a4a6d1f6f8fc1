/* http_transport.c -- MCP's streamable HTTP transport: each message POSTed to the endpoint,
 * the answer read from a JSON body or from an event stream; the session named by the
 * Mcp-Session-Id header the server gave at initialisation. */
#include "mcp_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mindroom/clock.h"
#include "mindroom/sse.h"

static mr_code new_client(const mr_mcp_client *c, mr_http_client **out, mr_err *err)
{
    mr_http_client_opts o = {.timeout_ms = c->timeout_ms, .max_response = c->max_message,
                             .user_agent = "mindroom-mcp/" MR_VERSION};
    return mr_http_client_new(&o, out, err);
}

static mr_code http_start(mr_mcp_client *c, mr_err *err)
{
    free(c->session_id);
    c->session_id = NULL;
    return new_client(c, &c->http, err);
}

static void http_stop(mr_mcp_client *c)
{
    /* The specification asks a client that is done with a session to DELETE it. */
    if (c->http && c->session_id) {
        char sid[512];
        snprintf(sid, sizeof sid, "Mcp-Session-Id: %s", c->session_id);
        const char *h[] = {sid, NULL};
        mr_http_call call = {.method = "DELETE", .url = c->url, .headers = h, .timeout_ms = 2000};
        mr_http_result res;
        mr_err ignored;
        mr_http_client_do(c->http, &call, &res, &ignored);
        mr_http_result_clear(&res);
    }
    mr_http_client_free(c->http);
    c->http = NULL;
    while (c->n_idle > 0)
        mr_http_client_free(c->http_idle[--c->n_idle]);
    free(c->session_id);
    c->session_id = NULL;
}

/* The headers of every POST: the configured ones, the session and the agreed version. */
static const char **post_headers(const mr_mcp_client *c, char *sid, size_t sid_cap, char *ver, size_t ver_cap)
{
    size_t n = 0;
    while (c->headers && c->headers[n])
        n++;
    const char **h = calloc(n + 4, sizeof *h);
    if (!h)
        return NULL;
    size_t k = 0;
    h[k++] = "Accept: application/json, text/event-stream";
    for (size_t i = 0; i < n; i++)
        h[k++] = c->headers[i];
    if (c->session_id) {
        snprintf(sid, sid_cap, "Mcp-Session-Id: %s", c->session_id);
        h[k++] = sid;
    }
    if (c->protocol[0]) {
        snprintf(ver, ver_cap, "MCP-Protocol-Version: %s", c->protocol);
        h[k++] = ver;
    }
    return h;
}

typedef struct stream_read {
    mr_mcp_client *c;
    long long id;
    json_t *answer;
    mr_strbuf replies;       /* the server's requests answered, one JSON text per line */
} stream_read;

static mr_code route_one(stream_read *s, const char *text, size_t len, mr_err *err)
{
    json_t *answer = NULL;
    char *reply = NULL;
    long long id = -1;
    mr_code rc = mr_mcp_route(s->c, text, len, &answer, &id, &reply, err);
    if (answer && id == s->id && !s->answer)
        s->answer = answer;
    else
        json_decref(answer);
    if (reply && (!mr_strbuf_puts(&s->replies, reply) || !mr_strbuf_add(&s->replies, "\n", 1)))
        rc = mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", s->c->name);
    free(reply);
    return rc;
}

static mr_code on_event(void *ctx, const char *event, const char *data, size_t len, mr_err *err)
{
    if (strcmp(event, "message") != 0 || len == 0)
        return MR_OK;
    return route_one(ctx, data, len, err);
}

static mr_code post(const mr_mcp_client *c, mr_http_client *hc, const char **headers, const char *msg,
                    long long deadline_ms, mr_http_result *res, bool *timed_out, mr_err *err)
{
    long long left = deadline_ms - mr_clock_mono_ms();
    mr_http_call call = {.method = "POST", .url = c->url, .body = msg, .body_len = strlen(msg),
                         .content_type = "application/json", .headers = headers,
                         .timeout_ms = left > 1 ? (long)left : 1};
    mr_code rc = mr_http_client_do(hc, &call, res, err);
    *timed_out = rc != MR_OK && mr_clock_mono_ms() >= deadline_ms;
    return rc;
}

/* The answer in a JSON body or an event stream, per the response's Content-Type. */
static mr_code read_body(mr_mcp_client *c, const mr_http_result *res, stream_read *s, mr_err *err)
{
    const char *ct = mr_http_result_header(res, "Content-Type");
    if (ct && strncasecmp(ct, "text/event-stream", 17) == 0) {
        mr_sse p;
        mr_sse_init(&p, c->max_message, on_event, s);
        mr_code rc = mr_sse_feed(&p, res->body, res->body_len, err);
        if (rc == MR_OK)
            rc = mr_sse_feed(&p, "\n\n", 2, err);
        mr_sse_free(&p);
        return rc;
    }
    if (ct && strncasecmp(ct, "application/json", 16) == 0)
        return route_one(s, res->body, res->body_len, err);
    return mr_err_set(err, MR_EINVAL, "MCP server %s answered with Content-Type \"%s\", not JSON or an event stream",
                      c->name, ct ? ct : "(none)");
}

/* One POST and what it brings back, without mu: the headers and client are the request's own. */
static mr_code post_and_read(mr_mcp_client *c, mr_http_client *hc, const char **headers, const char *msg,
                             long long id, long long deadline_ms, stream_read *s, char **session_id,
                             bool *timed_out, mr_err *err)
{
    mr_http_result res;
    mr_code rc = post(c, hc, headers, msg, deadline_ms, &res, timed_out, err);
    if (rc == MR_OK && res.status == 404 && *session_id)
        rc = mr_err_set(err, MR_EUNAVAIL, "MCP server %s: the session expired (HTTP 404)", c->name);
    else if (rc == MR_OK && (res.status < 200 || res.status >= 300))
        rc = mr_err_set(err, MR_EUNAVAIL, "MCP server %s: HTTP %ld: %.200s", c->name, res.status,
                        res.body ? res.body : "");
    else if (rc == MR_OK && id >= 0)
        rc = read_body(c, &res, s, err);
    const char *sid = rc == MR_OK && !*session_id ? mr_http_result_header(&res, "Mcp-Session-Id") : NULL;
    if (sid && !(*session_id = strdup(sid)))
        rc = mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", c->name);
    mr_http_result_clear(&res);
    /* Each answer to a server's request is a POST of its own; none expects a body back. */
    for (char *line = s->replies.s, *nl; rc == MR_OK && line && (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        bool ignored;
        rc = post(c, hc, headers, line, deadline_ms, &res, &ignored, err);
        mr_http_result_clear(&res);
    }
    return rc;
}

static mr_code http_exchange(mr_mcp_client *c, const char *msg, long long id, long long deadline_ms,
                             json_t **answer, bool *timed_out, mr_err *err)
{
    *answer = NULL;
    *timed_out = false;
    /* What the request needs of the session is copied while mu is held. */
    char sid[512], ver[64];
    const char **headers = post_headers(c, sid, sizeof sid, ver, sizeof ver);
    char *session_id = c->session_id ? strdup(c->session_id) : NULL;
    mr_http_client *hc = c->n_idle > 0 ? c->http_idle[--c->n_idle] : NULL;
    mr_code rc = headers && (!c->session_id || session_id) ? MR_OK
                                                           : mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory",
                                                                        c->name);
    if (rc == MR_OK && !hc)
        rc = new_client(c, &hc, err);
    bool had_session = session_id != NULL;
    unsigned long stops = c->stops;
    stream_read s = {.c = c, .id = id};
    if (rc == MR_OK) {
        pthread_mutex_unlock(&c->mu);
        rc = post_and_read(c, hc, headers, msg, id, deadline_ms, &s, &session_id, timed_out, err);
        pthread_mutex_lock(&c->mu);
    }
    /* A session stopped meanwhile is gone: its clients and its ID are not kept. */
    bool same = c->stops == stops;
    if (same && !had_session && session_id && !c->session_id) {
        c->session_id = session_id;
        session_id = NULL;
    }
    if (hc && same && c->n_idle < MCP_HTTP_IDLE_MAX)
        c->http_idle[c->n_idle++] = hc;
    else
        mr_http_client_free(hc);
    free(session_id);
    free(headers);
    mr_strbuf_free(&s.replies);
    if (rc == MR_OK && id >= 0 && !s.answer)
        rc = mr_err_set(err, MR_EUNAVAIL, "MCP server %s: the response held no answer to request %lld", c->name, id);
    if (rc == MR_OK)
        *answer = s.answer;
    else
        json_decref(s.answer);
    return rc;
}

const mcp_transport_ops mr_mcp_http_ops = {http_start, http_exchange, http_stop};
