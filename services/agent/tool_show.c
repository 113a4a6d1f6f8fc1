/* tool_show.c -- how a tool call shows in the streamed answer, as the reference shows it
 * (show_tool_calls): "\n\n<tool>name(key=value, ...)</tool>\n" when the call starts, the same
 * block with "\n<result>" inside once it is done; arguments and results shortened, '@' kept
 * from making mentions, HTML escaped. */
#include "agent_tools.h"

#include <stdlib.h>
#include <string.h>

#define ARGS_MAX 1200           /* characters of the whole argument list */
#define ARG_VALUE_MAX 250       /* ... of one argument's value */
#define RESULT_MAX 500          /* ... of the result */
#define ZWSP "\xe2\x80\x8b"     /* after '@', so a user ID in a tool call pings nobody */

/* text cut to max characters (code points), the last one "…" when cut. */
static void add_cut(mr_strbuf *b, const char *text, size_t max, bool one_line)
{
    size_t chars = 0, i = 0, n = strlen(text);
    for (size_t k = 0; k < n; k++)
        chars += ((unsigned char)text[k] & 0xC0) != 0x80;
    size_t keep = chars <= max ? chars : max - 1;
    for (size_t c = 0; i < n; i++) {
        if (((unsigned char)text[i] & 0xC0) != 0x80 && c++ == keep)
            break;
        mr_strbuf_add(b, one_line && text[i] == '\n' ? " " : text + i, 1);
    }
    if (chars > max)
        mr_strbuf_puts(b, "\xe2\x80\xa6");
}

/* Escapes as Python's html.escape, with '@' defused. */
static void add_safe(mr_strbuf *b, const char *text)
{
    for (; *text; text++) {
        switch (*text) {
        case '&': mr_strbuf_puts(b, "&amp;"); break;
        case '<': mr_strbuf_puts(b, "&lt;"); break;
        case '>': mr_strbuf_puts(b, "&gt;"); break;
        case '"': mr_strbuf_puts(b, "&quot;"); break;
        case '\'': mr_strbuf_puts(b, "&#x27;"); break;
        case '@': mr_strbuf_puts(b, "@" ZWSP); break;
        default: mr_strbuf_add(b, text, 1);
        }
    }
}

/* "name(k=v, ...)" with the model's arguments (text as written when not a JSON object). */
static char *call_text(const char *name, const char *arguments)
{
    mr_strbuf args = {0}, call = {0};
    json_t *o = json_loads(arguments ? arguments : "{}", 0, NULL);
    if (json_is_object(o)) {
        const char *k;
        json_t *v;
        bool first = true;
        json_object_foreach(o, k, v) {
            char *dumped = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            mr_strbuf_puts(&args, first ? "" : ", ");
            mr_strbuf_puts(&args, k);
            mr_strbuf_puts(&args, "=");
            add_cut(&args, json_is_string(v) ? json_string_value(v) : dumped ? dumped : "", ARG_VALUE_MAX, true);
            free(dumped);
            first = false;
        }
    } else if (arguments && *arguments) {
        mr_strbuf_puts(&args, arguments);
    }
    json_decref(o);
    mr_strbuf_puts(&call, name ? name : "tool");
    mr_strbuf_puts(&call, "(");
    add_cut(&call, args.s ? args.s : "", ARGS_MAX, true);
    mr_strbuf_puts(&call, ")");
    free(args.s);
    if (args.failed || call.failed) {
        free(call.s);
        return NULL;
    }
    return call.s;
}

char *tool_show_pending(const char *name, const char *arguments)
{
    char *call = call_text(name, arguments);
    mr_strbuf b = {0};
    mr_strbuf_puts(&b, "<tool>");
    add_safe(&b, call ? call : "");
    mr_strbuf_puts(&b, "</tool>");
    free(call);
    if (!call || b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

char *tool_show_done(const char *name, const char *arguments, const char *result)
{
    char *call = call_text(name, arguments);
    mr_strbuf cut = {0}, b = {0};
    add_cut(&cut, result ? result : "", RESULT_MAX, false);
    mr_strbuf_puts(&b, "<tool>");
    add_safe(&b, call ? call : "");
    mr_strbuf_puts(&b, "\n");
    add_safe(&b, cut.s ? cut.s : "");
    mr_strbuf_puts(&b, "</tool>");
    free(call);
    bool ok = call && !cut.failed && !b.failed;
    free(cut.s);
    if (!ok) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
