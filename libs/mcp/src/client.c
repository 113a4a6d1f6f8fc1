/* client.c -- the MCP client: options, the initialise handshake, requests with timeouts and
 * cancellation, restarts with backoff, and tools listed and called. */
#include "mcp_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/clock.h"
#include "mindroom/log.h"

#define MCP_DEFAULT_TIMEOUT_MS 30000
#define MCP_DEFAULT_MAX_MESSAGE ((size_t)4 << 20)
#define MCP_DEFAULT_BACKOFF_MS 500
#define MCP_MAX_BACKOFF_MS 30000
#define MCP_MAX_TOOL_PAGES 32

/* Revisions whose tools/list and tools/call this client reads alike. */
static const char *const known_versions[] = {MR_MCP_PROTOCOL_VERSION, "2025-03-26", "2024-11-05"};

static char **copy_strv(const char *const *v, bool *failed)
{
    if (!v)
        return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    char **out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = strdup(v[i])))
            *failed = true;
    if (!out)
        *failed = true;
    return out;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static mr_code check_opts(const mr_mcp_server_opts *o, mr_err *err)
{
    const char *name = o->name && *o->name ? o->name : "(unnamed)";
    if (!o->name || !*o->name)
        return mr_err_set(err, MR_EINVAL, "MCP server: name is empty");
    if (!!(o->command && *o->command) == !!(o->url && *o->url))
        return mr_err_set(err, MR_EINVAL, "MCP server %s: set exactly one of command (stdio) and url (HTTP)", name);
    if (o->url && strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)
        return mr_err_set(err, MR_EINVAL, "MCP server %s: url \"%s\" is not http:// or https://", name, o->url);
    for (size_t i = 0; o->env && o->env[i]; i++) {
        const char *eq = strchr(o->env[i], '=');
        if (!eq || eq == o->env[i])
            return mr_err_set(err, MR_EINVAL, "MCP server %s: env entry %zu is not NAME=value", name, i + 1);
    }
    for (size_t i = 0; o->headers && o->headers[i]; i++) {
        const char *colon = strchr(o->headers[i], ':');
        if (!colon || colon == o->headers[i] || strpbrk(o->headers[i], "\r\n"))
            return mr_err_set(err, MR_EINVAL, "MCP server %s: header %zu is not \"Name: value\" on one line", name,
                              i + 1);
    }
    if (o->timeout_ms < 0 || o->restart_backoff_ms < 0)
        return mr_err_set(err, MR_EINVAL, "MCP server %s: timeouts must not be negative", name);
    return MR_OK;
}

mr_code mr_mcp_client_new(const mr_mcp_server_opts *o, mr_mcp_client **out, mr_err *err)
{
    *out = NULL;
    mr_code rc = check_opts(o, err);
    if (rc != MR_OK)
        return rc;
    mr_mcp_client *c = calloc(1, sizeof *c);
    if (!c)
        return mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", o->name);
    atomic_init(&c->starts, 0);
    atomic_init(&c->tools_changed, 0);
    atomic_init(&c->awaiting, 0);
    bool failed = false;
    c->name = strdup(o->name);
    c->command = o->command ? strdup(o->command) : NULL;
    c->cwd = o->cwd ? strdup(o->cwd) : NULL;
    c->url = o->url ? strdup(o->url) : NULL;
    c->args = copy_strv(o->args, &failed);
    c->env = copy_strv(o->env, &failed);
    c->headers = copy_strv(o->headers, &failed);
    if (failed || !c->name || (o->command && !c->command) || (o->cwd && !c->cwd) || (o->url && !c->url)) {
        mr_mcp_client_free(c);
        return mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", o->name);
    }
    c->timeout_ms = o->timeout_ms ? o->timeout_ms : MCP_DEFAULT_TIMEOUT_MS;
    c->max_message = o->max_message ? o->max_message : MCP_DEFAULT_MAX_MESSAGE;
    c->first_backoff_ms = o->restart_backoff_ms ? o->restart_backoff_ms : MCP_DEFAULT_BACKOFF_MS;
    c->backoff_ms = c->first_backoff_ms;
    c->ops = c->command ? &mr_mcp_stdio_ops : &mr_mcp_http_ops;
    c->to_child = c->from_child = -1;
    pthread_condattr_t ca;
    bool cv_ok = pthread_condattr_init(&ca) == 0;
    cv_ok = cv_ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&c->cv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv_ok) {
        c->ops = NULL; /* nothing to stop or destroy */
        mr_mcp_client_free(c);
        return mr_err_set(err, MR_ENOMEM, "MCP server %s: cannot make a condition variable", o->name);
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return MR_OK;
}

/* (mu held) Requests still waiting on the old transport see stops move and give up. */
static void stop(mr_mcp_client *c)
{
    c->ops->stop(c);
    c->running = false;
    c->protocol[0] = '\0';
    c->stops++;
    pthread_cond_broadcast(&c->cv);
}

void mr_mcp_client_free(mr_mcp_client *c)
{
    if (!c)
        return;
    if (c->ops) {
        pthread_mutex_lock(&c->mu);
        stop(c);
        pthread_mutex_unlock(&c->mu);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
    }
    free(c->name);
    free(c->command);
    free(c->cwd);
    free(c->url);
    free_strv(c->args);
    free_strv(c->env);
    free_strv(c->headers);
    free(c);
}

/* A transport that failed is stopped; the next start waits out a doubling backoff. */
static void failed_transport(mr_mcp_client *c, const mr_err *why)
{
    stop(c);
    c->next_start_ms = mr_clock_mono_ms() + c->backoff_ms;
    mr_log_warn("mcp", "MCP server %s stopped: %s; restarting in %lld ms", c->name, why->msg, c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > MCP_MAX_BACKOFF_MS ? MCP_MAX_BACKOFF_MS : c->backoff_ms * 2;
}

static char *message_text(long long id, const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    if (m && id >= 0 && json_object_set_new(m, "id", json_integer(id)) != 0)
        json_decref(m), m = NULL;
    if (m && params && json_object_set(m, "params", params) != 0)
        json_decref(m), m = NULL;
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    return text;
}

/* The server's error object as "message (code N)". */
static mr_code server_error(mr_mcp_client *c, const char *method, json_t *e, mr_err *err)
{
    const char *msg = json_string_value(json_object_get(e, "message"));
    return mr_err_set(err, MR_EINVAL, "MCP server %s refused %s: %s (code %lld)", c->name, method,
                      msg ? msg : "no message", (long long)json_integer_value(json_object_get(e, "code")));
}

/* One request on a running transport; *result (caller owns) is the answer's result. */
static mr_code exchange(mr_mcp_client *c, const char *method, json_t *params, long timeout_ms, json_t **result,
                        mr_err *err)
{
    *result = NULL;
    long long id = ++c->next_id;
    char *text = message_text(id, method, params);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", c->name);
    json_t *answer = NULL;
    bool timed_out = false;
    long long deadline = mr_clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : c->timeout_ms);
    unsigned long stops = c->stops;
    atomic_fetch_add(&c->awaiting, 1);
    mr_code rc = c->ops->exchange(c, text, id, deadline, &answer, &timed_out, err);
    atomic_fetch_sub(&c->awaiting, 1);
    free(text);
    if (rc != MR_OK && timed_out) {
        /* The server may stop the work; its late answer is dropped when it comes. */
        json_t *p = json_pack("{s:I, s:s}", "requestId", (json_int_t)id, "reason", "timed out");
        char *cancel = p ? message_text(-1, "notifications/cancelled", p) : NULL;
        json_decref(p);
        json_t *none = NULL;
        bool again = false;
        mr_err ignored;
        if (cancel)
            c->ops->exchange(c, cancel, -1, mr_clock_mono_ms() + 1000, &none, &again, &ignored);
        free(cancel);
        return mr_err_set(err, MR_EUNAVAIL, "MCP server %s: %s took longer than %ld ms", c->name, method,
                          timeout_ms > 0 ? timeout_ms : c->timeout_ms);
    }
    if (rc != MR_OK) {
        if (c->stops == stops) /* the first to see it fail; others saw it stopped */
            failed_transport(c, err);
        return rc;
    }
    json_t *e = json_object_get(answer, "error");
    if (e)
        rc = server_error(c, method, e, err);
    else if (!json_is_object(json_object_get(answer, "result")))
        rc = mr_err_set(err, MR_EINVAL, "MCP server %s: the answer to %s has no result object", c->name, method);
    else
        *result = json_incref(json_object_get(answer, "result"));
    json_decref(answer);
    return rc;
}

static bool known_version(const char *v)
{
    for (size_t i = 0; v && i < sizeof known_versions / sizeof known_versions[0]; i++)
        if (strcmp(v, known_versions[i]) == 0)
            return true;
    return false;
}

static mr_code initialize(mr_mcp_client *c, mr_err *err)
{
    json_t *params = json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", MR_MCP_PROTOCOL_VERSION,
                               "capabilities", "clientInfo", "name", "mindroom", "version", MR_VERSION);
    if (!params)
        return mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", c->name);
    json_t *result = NULL;
    mr_code rc = exchange(c, "initialize", params, 0, &result, err);
    json_decref(params);
    if (rc != MR_OK)
        return rc;
    const char *v = json_string_value(json_object_get(result, "protocolVersion"));
    if (!known_version(v))
        rc = mr_err_set(err, MR_EINVAL, "MCP server %s speaks protocol revision %s; this client speaks %s", c->name,
                        v ? v : "(none given)", MR_MCP_PROTOCOL_VERSION);
    else if (!json_is_object(json_object_get(json_object_get(result, "capabilities"), "tools")))
        rc = mr_err_set(err, MR_EINVAL, "MCP server %s offers no tools (no tools capability)", c->name);
    else
        snprintf(c->protocol, sizeof c->protocol, "%s", v);
    json_decref(result);
    if (rc != MR_OK)
        return rc;
    char *note = message_text(-1, "notifications/initialized", NULL);
    json_t *none = NULL;
    bool timed_out = false;
    rc = note ? c->ops->exchange(c, note, -1, mr_clock_mono_ms() + c->timeout_ms, &none, &timed_out, err)
              : mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", c->name);
    free(note);
    return rc;
}

static mr_code ensure_running(mr_mcp_client *c, mr_err *err)
{
    /* The handshake lets mu go while it waits (stdio): one request starts, the rest wait. */
    while (c->starting)
        pthread_cond_wait(&c->cv, &c->mu);
    if (c->running)
        return MR_OK;
    long long wait = c->next_start_ms - mr_clock_mono_ms();
    if (wait > 0)
        return mr_err_set(err, MR_EUNAVAIL, "MCP server %s is down; the next start is in %lld ms", c->name, wait);
    c->starting = true;
    mr_code rc = c->ops->start(c, err);
    if (rc == MR_OK)
        rc = initialize(c, err);
    c->starting = false;
    pthread_cond_broadcast(&c->cv);
    if (rc != MR_OK) {
        /* exchange already stopped a failed transport; a refused handshake stops here. */
        if (c->pid > 0 || c->http)
            failed_transport(c, err);
        else
            c->next_start_ms = mr_clock_mono_ms() + c->backoff_ms;
        return rc;
    }
    c->running = true;
    atomic_fetch_add(&c->starts, 1);
    return MR_OK;
}

unsigned long mr_mcp_client_starts(mr_mcp_client *c)
{
    return atomic_load(&c->starts);
}

unsigned long mr_mcp_client_awaiting(mr_mcp_client *c)
{
    return atomic_load(&c->awaiting);
}

unsigned long mr_mcp_client_tools_version(mr_mcp_client *c)
{
    return atomic_load(&c->starts) + atomic_load(&c->tools_changed);
}

static mr_code request(mr_mcp_client *c, const char *method, json_t *params, long timeout_ms, json_t **result,
                       mr_err *err)
{
    pthread_mutex_lock(&c->mu);
    mr_code rc = ensure_running(c, err);
    if (rc == MR_OK)
        rc = exchange(c, method, params, timeout_ms, result, err);
    if (rc == MR_OK)
        c->backoff_ms = c->first_backoff_ms;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

mr_code mr_mcp_tools_list(mr_mcp_client *c, json_t **tools, mr_err *err)
{
    *tools = json_array();
    if (!*tools)
        return mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", c->name);
    json_t *cursor = NULL;
    mr_code rc = MR_OK;
    for (int page = 0; rc == MR_OK; page++) {
        if (page == MCP_MAX_TOOL_PAGES) {
            rc = mr_err_set(err, MR_EINVAL, "MCP server %s: tools/list goes on past %d pages", c->name, page);
            break;
        }
        json_t *params = cursor ? json_pack("{s:O}", "cursor", cursor) : NULL;
        json_t *result = NULL;
        rc = request(c, "tools/list", params, 0, &result, err);
        json_decref(params);
        json_decref(cursor);
        cursor = NULL;
        if (rc != MR_OK)
            break;
        json_t *list = json_object_get(result, "tools");
        if (!json_is_array(list))
            rc = mr_err_set(err, MR_EINVAL, "MCP server %s: tools/list result has no tools array", c->name);
        size_t i;
        json_t *t;
        json_array_foreach(list, i, t)
        {
            if (rc != MR_OK)
                break;
            if (!json_is_string(json_object_get(t, "name")) || !json_is_object(json_object_get(t, "inputSchema")))
                rc = mr_err_set(err, MR_EINVAL, "MCP server %s: tool %zu has no name or no inputSchema object",
                                c->name, i + 1);
            else if (json_array_append(*tools, t) != 0)
                rc = mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", c->name);
        }
        json_t *next = json_object_get(result, "nextCursor");
        cursor = json_is_string(next) ? json_incref(next) : NULL;
        json_decref(result);
        if (!cursor)
            break;
    }
    json_decref(cursor);
    if (rc != MR_OK) {
        json_decref(*tools);
        *tools = NULL;
    }
    return rc;
}

mr_code mr_mcp_tool_call(mr_mcp_client *c, const char *tool, json_t *arguments, long timeout_ms, json_t **result,
                         mr_err *err)
{
    *result = NULL;
    if (!tool || !*tool)
        return mr_err_set(err, MR_EINVAL, "MCP server %s: no tool name", c->name);
    if (arguments && !json_is_object(arguments))
        return mr_err_set(err, MR_EINVAL, "MCP server %s: the arguments of %s must be an object", c->name, tool);
    json_t *params = arguments ? json_pack("{s:s, s:O}", "name", tool, "arguments", arguments)
                               : json_pack("{s:s, s:{}}", "name", tool, "arguments");
    if (!params)
        return mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory", c->name);
    mr_code rc = request(c, "tools/call", params, timeout_ms, result, err);
    json_decref(params);
    if (rc == MR_OK && !json_is_array(json_object_get(*result, "content"))) {
        json_decref(*result);
        *result = NULL;
        rc = mr_err_set(err, MR_EINVAL, "MCP server %s: the result of %s has no content array", c->name, tool);
    }
    return rc;
}

bool mr_mcp_result_text(const json_t *result, mr_strbuf *out)
{
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(result, "content"), i, item)
    {
        const char *type = json_string_value(json_object_get(item, "type"));
        if (i > 0)
            mr_strbuf_puts(out, "\n");
        if (type && strcmp(type, "text") == 0) {
            json_t *t = json_object_get(item, "text");
            mr_strbuf_add(out, json_string_value(t) ? json_string_value(t) : "", json_string_length(t));
        } else if (type && (strcmp(type, "image") == 0 || strcmp(type, "audio") == 0)) {
            const char *mime = json_string_value(json_object_get(item, "mimeType"));
            mr_strbuf_printf(out, "[%s %s, %zu bytes of base64]", type, mime ? mime : "?",
                             json_string_length(json_object_get(item, "data")));
        } else if (type && strcmp(type, "resource_link") == 0) {
            const char *uri = json_string_value(json_object_get(item, "uri"));
            mr_strbuf_printf(out, "[resource %s]", uri ? uri : "?");
        } else if (type && strcmp(type, "resource") == 0) {
            json_t *r = json_object_get(item, "resource");
            const char *text = json_string_value(json_object_get(r, "text"));
            const char *uri = json_string_value(json_object_get(r, "uri"));
            if (text)
                mr_strbuf_puts(out, text);
            else
                mr_strbuf_printf(out, "[resource %s]", uri ? uri : "?");
        } else {
            mr_strbuf_printf(out, "[%s content]", type ? type : "untyped");
        }
    }
    return mr_strbuf_ok(out);
}
