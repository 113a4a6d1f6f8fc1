/* route.c -- sorting what an MCP server sends: the answer awaited, its own requests, and the
 * rest. */
#include "mcp_internal.h"

#include <string.h>

/* JSON-RPC's "Method not found". */
#define JSONRPC_METHOD_NOT_FOUND (-32601)

static char *reply_to(json_t *id, const char *method)
{
    json_t *r = strcmp(method, "ping") == 0
                    ? json_pack("{s:s, s:O, s:{}}", "jsonrpc", "2.0", "id", id, "result")
                    : json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                                JSONRPC_METHOD_NOT_FOUND, "message", "this client offers no such method");
    char *text = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    return text;
}

mr_code mr_mcp_route(mr_mcp_client *c, const char *text, size_t len, json_t **answer, long long *answer_id,
                     char **reply, mr_err *err)
{
    *answer = NULL;
    *answer_id = -1;
    *reply = NULL;
    json_error_t je;
    json_t *m = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(m) || !json_is_string(json_object_get(m, "jsonrpc"))) {
        json_decref(m);
        return mr_err_set(err, MR_EINVAL, "MCP server %s sent something that is not a JSON-RPC message%s%s",
                          c->name, m ? "" : ": ", m ? "" : je.text);
    }
    json_t *id = json_object_get(m, "id");
    json_t *method = json_object_get(m, "method");
    if (json_is_string(method)) {
        if (!id && strcmp(json_string_value(method), "notifications/tools/list_changed") == 0)
            atomic_fetch_add(&c->tools_changed, 1);
        if (id && !json_is_null(id)) {
            *reply = reply_to(id, json_string_value(method));
            if (!*reply) {
                json_decref(m);
                return mr_err_set(err, MR_ENOMEM, "MCP server %s: out of memory answering it", c->name);
            }
        }
        json_decref(m);
        return MR_OK;
    }
    bool is_answer = json_object_get(m, "result") || json_is_object(json_object_get(m, "error"));
    if (is_answer && json_is_integer(id) && json_integer_value(id) >= 0) {
        *answer = m;
        *answer_id = json_integer_value(id);
        return MR_OK;
    }
    json_decref(m);
    return MR_OK;
}
