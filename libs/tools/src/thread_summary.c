/* thread_summary.c -- the thread_summary tool, as the reference's set_thread_summary: the model
 * writes a one-line plain-text summary of a thread of this room, and the agent posts it into
 * that thread as an m.notice carrying "io.mindroom.thread_summary" (version, summary,
 * message_count, generated_at, model "manual"), the event shape clients of the reference read. */
#include "tools_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mindroom/clock.h"

#define TOOL "thread_summary"
#define SUMMARY_MAX 300          /* characters after normalisation, as the reference */

/* Drops a Markdown line prefix (heading, quote, list item) at p; returns what follows it. */
static const char *skip_line_prefix(const char *p)
{
    const char *q = p;
    while (*q == ' ' || *q == '\t')
        q++;
    size_t h = strspn(q, "#");
    if (h >= 1 && h <= 6 && q[h] == ' ')
        return q + h + 1;
    if (*q == '>')
        return q + 1 + (q[1] == ' ');
    if ((*q == '-' || *q == '*' || *q == '+') && q[1] == ' ')
        return q + 2;
    size_t d = strspn(q, "0123456789");
    if (d && q[d] == '.' && q[d + 1] == ' ')
        return q + d + 2;
    return q;
}

/* The summary as one plain line: Markdown line prefixes, emphasis markers ("**", "__", "~~")
 * and backticks dropped, runs of white space made one space, ends trimmed. Returns malloc'd
 * text, NULL when out of memory. */
static char *normalise(const char *s)
{
    char *out = malloc(strlen(s) + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    bool space = false;
    for (const char *p = skip_line_prefix(s); *p;) {
        if (*p == '\n') {
            space = true;
            p = skip_line_prefix(p + 1);
        } else if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\f' || *p == '\v') {
            space = true;
            p++;
        } else if (*p == '`' || ((p[0] == '*' || p[0] == '_' || p[0] == '~') && p[1] == p[0])) {
            p += *p == '`' ? 1 : 2;
        } else {
            if (space && n)
                out[n++] = ' ';
            space = false;
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

/* Characters, not bytes: the reference's limit is on Python string length. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static json_t *notice(const char *root, const char *latest, const char *summary, size_t count)
{
    char at[32];
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return NULL;
    /* A thread reply with the fallback reply to its latest event, as MSC3440 asks of clients
     * that send into a thread. */
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:b, s:{s:s}}, s:{s:i, s:s, s:I, s:s, s:s}}", "msgtype", "m.notice",
                     "body", summary, "m.relates_to", "rel_type", "m.thread", "event_id", root, "is_falling_back", 1,
                     "m.in_reply_to", "event_id", latest, "io.mindroom.thread_summary", "version", 1, "summary",
                     summary, "message_count", (json_int_t)count, "generated_at", at, "model", "manual");
}

static mr_code ts_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out, mr_err *err)
{
    const char *summary = NULL, *root = NULL;
    mr_code rc = tools_arg_str(args, TOOL, "summary", true, &summary, err);
    if (rc == MR_OK)
        rc = tools_arg_str(args, TOOL, "thread_id", false, &root, err);
    if (rc != MR_OK)
        return rc;
    if (!root)
        root = env->thread_root;
    if (!root)
        return mr_err_set(err, MR_EINVAL, "%s: the argument 'thread_id' is required outside a thread", TOOL);
    if (!tools_event_id_ok(root))
        return mr_err_set(err, MR_EINVAL, "%s: the argument 'thread_id' is not a Matrix event ID: '%.80s'", TOOL,
                          root);
    if (!env->send || !env->thread || !env->room_id)
        return mr_err_set(err, MR_EPERM, "%s: there is no room whose threads can be summarised here", TOOL);
    char *text = normalise(summary);
    if (!text)
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", TOOL);
    json_t *messages = NULL, *content = NULL;
    if (!*text)
        rc = mr_err_set(err, MR_EINVAL, "%s: the argument 'summary' has no text once Markdown is removed", TOOL);
    else if (utf8_chars(text) > SUMMARY_MAX)
        rc = mr_err_set(err, MR_EINVAL, "%s: the argument 'summary' must be %d characters or fewer (it has %zu)",
                        TOOL, SUMMARY_MAX, utf8_chars(text));
    if (rc == MR_OK) {
        rc = env->thread(env->thread_ctx, env->room_id, root, &messages, err);
        /* Only a thread the agent has seen in this room: a root from elsewhere is a mistake. */
        if (rc == MR_ENOTFOUND)
            rc = mr_err_set(err, MR_EINVAL, "%s: the argument 'thread_id' names no thread of this room (%.80s)",
                            TOOL, root);
    }
    size_t count = json_array_size(messages);
    const char *latest = count ? json_string_value(json_object_get(json_array_get(messages, count - 1), "event_id"))
                               : NULL;
    if (rc == MR_OK && !(content = notice(root, latest ? latest : root, text, count)))
        rc = mr_err_set(err, MR_EINVAL, "%s: the argument 'summary' is not UTF-8, or out of memory", TOOL);
    /* A call abandoned at its deadline must not send late. */
    if (rc == MR_OK && mr_clock_mono_ms() >= deadline_ms)
        rc = mr_err_set(err, MR_EUNAVAIL, "%s: out of time", TOOL);
    if (rc == MR_OK)
        rc = env->send(env->send_ctx, env->room_id, "m.room.message", content, err);
    if (rc == MR_OK) {
        json_t *res = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "status", "ok", "tool", TOOL, "action", "set",
                                "room_id", env->room_id, "thread_id", root, "message_count", (json_int_t)count,
                                "summary", text);
        char *dump = res ? json_dumps(res, JSON_SORT_KEYS) : NULL;
        rc = dump ? MR_OK : mr_err_set(err, MR_ENOMEM, "%s: out of memory", TOOL);
        if (dump)
            mr_strbuf_puts(out, dump);
        free(dump);
        json_decref(res);
    }
    json_decref(content);
    json_decref(messages);
    free(text);
    return rc;
}

const mr_tool_def mr_tool_thread_summary = {
    .name = TOOL,
    .description = "Write a plain-text summary notice into the current Matrix thread, or into another thread of "
                   "this room given its root event ID. The summary must be plain text (no Markdown), at most "
                   "300 characters.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"summary\":{\"type\":\"string\",\"description\":\"one line, plain text, at most 300 "
                  "characters\"},"
                  "\"thread_id\":{\"type\":\"string\",\"description\":\"optional: the root event ID of another "
                  "thread of this room\"}},"
                  "\"required\":[\"summary\"],\"additionalProperties\":false}",
    .run = ts_run,
};
