/* matrix_message.c -- the matrix_message tool: send a message, or react to an event, in the
 * room of the conversation, as the agent and through its normal outbound path. */
#include "tools_internal.h"

#include <string.h>

#include "mindroom/clock.h"

#define TOOL "matrix_message"
#define TEXT_MAX 16000

static const char *const actions[] = {"send", "react", NULL};

static mr_code mm_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out, mr_err *err)
{
    const char *action, *room = NULL, *text = NULL, *event_id = NULL;
    mr_code rc = tools_arg_enum(args, TOOL, "action", actions, &action, err);
    bool react = rc == MR_OK && strcmp(action, "react") == 0;
    if (rc == MR_OK)
        rc = tools_arg_str(args, TOOL, "room_id", false, &room, err);
    if (rc == MR_OK)
        rc = tools_arg_str(args, TOOL, react ? "key" : "text", true, &text, err);
    if (rc == MR_OK && react)
        rc = tools_arg_str(args, TOOL, "event_id", true, &event_id, err);
    if (rc != MR_OK)
        return rc;
    /* The agent's rooms are the gateway's to know; the room of the conversation is one the agent
     * has certainly joined. */
    if (room && env->room_id && strcmp(room, env->room_id) != 0)
        return mr_err_set(err, MR_EPERM, "%s: the argument 'room_id' may only name this conversation's room (%s)",
                          TOOL, env->room_id);
    if (strlen(text) > TEXT_MAX)
        return mr_err_set(err, MR_EINVAL, "%s: the argument '%s' is longer than %d bytes", TOOL,
                          react ? "key" : "text", TEXT_MAX);
    if (event_id && !tools_event_id_ok(event_id))
        return mr_err_set(err, MR_EINVAL, "%s: the argument 'event_id' is not a Matrix event ID: '%.80s'", TOOL,
                          event_id);
    if (!env->send || !env->room_id)
        return mr_err_set(err, MR_EPERM, "%s: there is no room to send to here", TOOL);
    /* A call abandoned at its deadline must not send late. */
    if (mr_clock_mono_ms() >= deadline_ms)
        return mr_err_set(err, MR_EUNAVAIL, "%s: out of time", TOOL);
    json_t *content = react ? json_pack("{s:{s:s, s:s, s:s}}", "m.relates_to", "rel_type", "m.annotation",
                                        "event_id", event_id, "key", text)
                            : json_pack("{s:s, s:s}", "msgtype", "m.text", "body", text);
    if (content && !react && env->thread_root &&
        json_object_set_new(content, "m.relates_to", json_pack("{s:s, s:s, s:b, s:{s:s}}", "rel_type", "m.thread",
                                                               "event_id", env->thread_root, "is_falling_back", 1,
                                                               "m.in_reply_to", "event_id", env->thread_root)) != 0) {
        json_decref(content);
        content = NULL;
    }
    if (!content)
        return mr_err_set(err, MR_EINVAL, "%s: the text is not UTF-8, or out of memory", TOOL);
    rc = env->send(env->send_ctx, env->room_id, react ? "m.reaction" : "m.room.message", content, err);
    json_decref(content);
    if (rc == MR_OK)
        mr_strbuf_puts(out, react ? "Reacted." : "Sent.");
    return rc;
}

const mr_tool_def mr_tool_matrix_message = {
    .name = TOOL,
    .description = "Send a message to this conversation's Matrix room (in its thread when there is one), or "
                   "react to one of its events with an emoji.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"action\":{\"type\":\"string\",\"enum\":[\"send\",\"react\"]},"
                  "\"text\":{\"type\":\"string\",\"description\":\"send: the message\"},"
                  "\"event_id\":{\"type\":\"string\",\"description\":\"react: the event reacted to\"},"
                  "\"key\":{\"type\":\"string\",\"description\":\"react: the emoji\"},"
                  "\"room_id\":{\"type\":\"string\",\"description\":\"optional: this conversation's room\"}},"
                  "\"required\":[\"action\"],\"additionalProperties\":false}",
    .run = mm_run,
};
