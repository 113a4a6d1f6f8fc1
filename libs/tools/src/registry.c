/* registry.c -- which tools this build has, and the argument readers the tools share. */
#include "tools_internal.h"

#include <stdlib.h>
#include <string.h>

static const mr_tool_def *const builtin[] = {
    &mr_tool_matrix_message, &mr_tool_memory, &mr_tool_todo, &mr_tool_website, &mr_tool_file, &mr_tool_shell,
    &mr_tool_scheduler, &mr_tool_oauth_api, &mr_tool_thread_summary, &mr_tool_coding,
};

const mr_tool_def *mr_tools_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof builtin / sizeof *builtin; i++)
        if (strcmp(builtin[i]->name, name) == 0)
            return builtin[i];
    return NULL;
}

bool tools_event_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (id[0] != '$' || n < 2 || n > 255)
        return false;
    for (size_t i = 1; i < n; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return false;
    return true;
}

mr_code tools_arg_str(json_t *args, const char *tool, const char *key, bool required, const char **out,
                      mr_err *err)
{
    json_t *v = json_object_get(args, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return mr_err_set(err, MR_EINVAL, "%s: the argument '%s' is required", tool, key);
        return MR_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0)
        return mr_err_set(err, MR_EINVAL, "%s: the argument '%s' must be a non-empty string", tool, key);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return mr_err_set(err, MR_EINVAL, "%s: the argument '%s' must not contain NUL", tool, key);
    *out = json_string_value(v);
    return MR_OK;
}

mr_code tools_arg_text(json_t *args, const char *tool, const char *key, size_t max, const char **out, mr_err *err)
{
    json_t *v = json_object_get(args, key);
    *out = NULL;
    if (!json_is_string(v) || json_string_length(v) > max)
        return mr_err_set(err, MR_EINVAL, "%s: the argument '%s' must be a string of at most %zu bytes", tool, key,
                          max);
    *out = json_string_value(v);
    return MR_OK;
}

mr_code tools_arg_enum(json_t *args, const char *tool, const char *key, const char *const *choices,
                       const char **out, mr_err *err)
{
    mr_code rc = tools_arg_str(args, tool, key, true, out, err);
    if (rc != MR_OK)
        return rc;
    for (size_t i = 0; choices[i]; i++)
        if (strcmp(choices[i], *out) == 0)
            return MR_OK;
    mr_strbuf b = {0};
    for (size_t i = 0; choices[i]; i++) {
        mr_strbuf_puts(&b, i ? ", " : "");
        mr_strbuf_puts(&b, choices[i]);
    }
    rc = mr_err_set(err, MR_EINVAL, "%s: the argument '%s' must be one of %s, not '%.64s'", tool, key,
                    b.s && !b.failed ? b.s : "(out of memory)", *out);
    free(b.s);
    *out = NULL;
    return rc;
}

mr_code tools_arg_action(json_t *args, const char *tool, const char *const *actions, const char *const *arg_of,
                         const char **action, const char **arg, mr_err *err)
{
    *arg = NULL;
    mr_code rc = tools_arg_enum(args, tool, "action", actions, action, err);
    for (size_t i = 0; rc == MR_OK && actions[i]; i++)
        if (arg_of[i] && strcmp(actions[i], *action) == 0)
            return tools_arg_str(args, tool, arg_of[i], true, arg, err);
    return rc;
}

mr_code tools_arg_int(json_t *args, const char *tool, const char *key, long long min, long long max,
                      long long def, long long *out, mr_err *err)
{
    json_t *v = json_object_get(args, key);
    *out = def;
    if (!v || json_is_null(v))
        return MR_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return mr_err_set(err, MR_EINVAL, "%s: the argument '%s' must be an integer from %lld to %lld", tool, key,
                          min, max);
    *out = json_integer_value(v);
    return MR_OK;
}
