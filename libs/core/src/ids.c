/* ids.c -- Matrix identifier grammar (appendix "Identifier Grammar") and managed naming rules. */
#include "mindroom/ids.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Longest input quoted back in a message; the rest is elided so the rule still fits. */
#define QUOTE_MAX 80

static const char *quote(const char *s, char buf[QUOTE_MAX + 4])
{
    size_t n = strlen(s);
    if (n <= QUOTE_MAX)
        return s;
    memcpy(buf, s, QUOTE_MAX);
    memcpy(buf + QUOTE_MAX, "...", 4);
    return buf;
}

/* Fails with "'<input>' is not a valid <what>: <rule>". */
static mr_code bad(mr_err *err, const char *what, const char *s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static mr_code bad(mr_err *err, const char *what, const char *s, const char *fmt, ...)
{
    char rule[MR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    char qbuf[QUOTE_MAX + 4];
    return mr_err_set(err, MR_EINVAL, "'%s' is not a valid %s: %s", quote(s, qbuf), what, rule);
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || is_digit(c); }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* Checks host[0..len) against the grammar: `[` IPv6 `]`, or a DNS name (which also covers
 * IPv4 literals, whose characters are a subset). Returns the broken rule, NULL when valid. */
static const char *host_problem(const char *host, size_t len)
{
    if (len == 0)
        return "the host is empty";
    if (host[0] == '[') {
        if (len < 2 || host[len - 1] != ']')
            return "an IPv6 literal must be closed with ']'";
        size_t inner = len - 2;
        if (inner < 2 || inner > 45)
            return "an IPv6 literal holds 2 to 45 characters";
        for (size_t i = 1; i + 1 < len; i++)
            if (!is_hex(host[i]) && host[i] != ':' && host[i] != '.')
                return "an IPv6 literal holds only hex digits, ':' and '.'";
        return NULL;
    }
    if (len > 255)
        return "a DNS name is at most 255 characters";
    for (size_t i = 0; i < len; i++)
        if (!is_alpha(host[i]) && !is_digit(host[i]) && host[i] != '-' && host[i] != '.')
            return "a host name holds only letters, digits, '-' and '.'";
    return NULL;
}

mr_code mr_id_parse_server_name(const char *s, mr_server_name *out, mr_err *err)
{
    if (!s || !*s)
        return mr_err_set(err, MR_EINVAL, "'' is not a valid server name: it is empty");
    size_t total = strlen(s);
    size_t host_len;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        host_len = close ? (size_t)(close - s) + 1 : total;
    } else {
        const char *colon = strchr(s, ':');
        host_len = colon ? (size_t)(colon - s) : total;
    }
    const char *problem = host_problem(s, host_len);
    if (problem)
        return bad(err, "server name", s, "%s", problem);
    int port = 0;
    const char *rest = s + host_len;
    if (*rest) {
        if (*rest != ':')
            return bad(err, "server name", s, "expected ':' and a port after the IPv6 literal");
        size_t digits = strlen(rest + 1);
        if (digits < 1 || digits > 5)
            return bad(err, "server name", s, "a port is 1 to 5 digits");
        for (const char *p = rest + 1; *p; p++) {
            if (!is_digit(*p))
                return bad(err, "server name", s, "a port is 1 to 5 digits");
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return bad(err, "server name", s, "the port must be between 1 and 65535");
    }
    if (out) {
        memcpy(out->host, s, host_len);
        out->host[host_len] = '\0';
        out->port = port;
    }
    return MR_OK;
}

bool mr_id_localpart_is_modern(const char *localpart)
{
    if (!localpart || !*localpart)
        return false;
    for (const char *p = localpart; *p; p++)
        if (!is_lower_alnum(*p) && !strchr("._=/+-", *p))
            return false;
    return true;
}

/* Which bytes an opaque part or a localpart may hold, per sigil. */
typedef enum part_rule {
    PART_PRINTABLE,   /* historical user localparts and room ID opaque parts: 0x21-0x7E */
    PART_BASE64URL,   /* room IDs without a server (room version 12 and later) */
    PART_ALIAS,       /* aliases: anything but control characters and spaces */
} part_rule;

static const char *part_problem(const char *p, size_t len, part_rule rule)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (rule) {
        case PART_PRINTABLE:
            if (c < 0x21 || c > 0x7e)
                return "it may only hold printable ASCII characters without spaces";
            break;
        case PART_BASE64URL:
            if (!is_alpha((char)c) && !is_digit((char)c) && c != '-' && c != '_')
                return "a room ID without a server is unpadded URL-safe base64";
            break;
        case PART_ALIAS:
            if (c <= 0x20 || c == 0x7f)
                return "it may not hold spaces or control characters";
            break;
        }
    }
    return NULL;
}

/* The shared shape `<sigil><part>[:<server>]`, split at the first ':' as the spec says. */
static mr_code parse_sigiled(const char *s, char sigil, const char *what, bool server_optional,
                             part_rule rule, mr_id *out, mr_err *err)
{
    if (!s)
        s = "";
    size_t total = strlen(s);
    if (total > MR_ID_MAX)
        return bad(err, what, s, "it is %zu bytes long; the limit is %d", total, MR_ID_MAX);
    if (s[0] != sigil)
        return bad(err, what, s, "it must start with '%c'", sigil);
    const char *colon = strchr(s, ':');
    if (!colon && !server_optional)
        return bad(err, what, s, "expected ':' and a server name after the localpart");
    size_t part_len = colon ? (size_t)(colon - s) - 1 : total - 1;
    if (part_len == 0)
        return bad(err, what, s, "the part before the server is empty");
    const char *problem = part_problem(s + 1, part_len, colon ? rule : PART_BASE64URL);
    if (problem)
        return bad(err, what, s, "%s", problem);
    if (colon) {
        mr_err sub;
        if (mr_id_parse_server_name(colon + 1, NULL, &sub) != MR_OK)
            return bad(err, what, s, "%s", sub.msg);
    }
    if (out) {
        out->sigil = sigil;
        memcpy(out->localpart, s + 1, part_len);
        out->localpart[part_len] = '\0';
        snprintf(out->server, sizeof out->server, "%s", colon ? colon + 1 : "");
    }
    return MR_OK;
}

mr_code mr_id_parse_user(const char *s, mr_id *out, mr_err *err)
{
    return parse_sigiled(s, '@', "user ID", false, PART_PRINTABLE, out, err);
}

mr_code mr_id_parse_room_id(const char *s, mr_id *out, mr_err *err)
{
    return parse_sigiled(s, '!', "room ID", true, PART_PRINTABLE, out, err);
}

mr_code mr_id_parse_room_alias(const char *s, mr_id *out, mr_err *err)
{
    return parse_sigiled(s, '#', "room alias", false, PART_ALIAS, out, err);
}

mr_code mr_id_namespace_normalize(const char *in, char out[MR_NAMESPACE_MAX + 1], mr_err *err)
{
    size_t n = in ? strlen(in) : 0;
    if (n == 0) {
        out[0] = '\0';
        return MR_OK;
    }
    if (n < 4 || n > MR_NAMESPACE_MAX)
        return bad(err, "namespace", in, "it must be 4 to %d characters long", MR_NAMESPACE_MAX);
    char tmp[MR_NAMESPACE_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!is_lower_alnum(c))
            return bad(err, "namespace", in, "it may only hold letters and digits");
        tmp[i] = c;
    }
    tmp[n] = '\0';
    memcpy(out, tmp, n + 1);
    return MR_OK;
}

static bool equals_ignore_case(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        if (x != *b)
            return false;
    }
    return *a == *b;
}

mr_code mr_id_entity_name_check(const char *name, bool allow_reserved, mr_err *err)
{
    if (!name || !*name)
        return mr_err_set(err, MR_EINVAL, "'' is not a valid name: it is empty");
    for (const char *p = name; *p; p++)
        if (!is_alpha(*p) && !is_digit(*p) && *p != '_')
            return bad(err, "name", name, "names may only hold letters, digits and '_'");
    /* Case-insensitive: "Router" would get the router's Matrix account (mindroom_router). */
    if (!allow_reserved && (equals_ignore_case(name, "router") || equals_ignore_case(name, "user")))
        return mr_err_set(err, MR_EINVAL, "'%s' is a reserved name; choose another", name);
    return MR_OK;
}

mr_code mr_id_managed_username(const char *entity, const char *ns, char *out, size_t cap, mr_err *err)
{
    char buf[MR_ID_MAX + 1];
    bool has_ns = ns && *ns;
    int n = snprintf(buf, sizeof buf, "mindroom_%s%s%s", entity ? entity : "", has_ns ? "_" : "",
                     has_ns ? ns : "");
    if (n < 0 || (size_t)n >= sizeof buf)
        return mr_err_set(err, MR_EINVAL, "the Matrix username for '%.80s' would be longer than %d bytes",
                          entity ? entity : "", MR_ID_MAX);
    for (char *p = buf; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!mr_id_localpart_is_modern(buf))
        return bad(err, "Matrix username", buf, "usernames hold only a-z, 0-9 and ._=/+-");
    if ((size_t)n >= cap)
        return mr_err_set(err, MR_EINVAL, "the Matrix username '%s' does not fit in %zu bytes", buf, cap);
    memcpy(out, buf, (size_t)n + 1);
    return MR_OK;
}

mr_code mr_id_managed_user_id(const char *entity, const char *ns, const char *server, char *out,
                              size_t cap, mr_err *err)
{
    char user[MR_ID_MAX + 1];
    mr_code rc = mr_id_managed_username(entity, ns, user, sizeof user, err);
    if (rc != MR_OK)
        return rc;
    rc = mr_id_parse_server_name(server, NULL, err);
    if (rc != MR_OK)
        return rc;
    char buf[2 * MR_ID_MAX + 4];
    int n = snprintf(buf, sizeof buf, "@%s:%s", user, server);
    if (n > MR_ID_MAX)
        return mr_err_set(err, MR_EINVAL, "the Matrix user ID '@%s:%.80s' would be %d bytes; the limit is %d",
                          user, server, n, MR_ID_MAX);
    if ((size_t)n >= cap)
        return mr_err_set(err, MR_EINVAL, "the Matrix user ID '%s' does not fit in %zu bytes", buf, cap);
    memcpy(out, buf, (size_t)n + 1);
    return MR_OK;
}

mr_code mr_id_managed_alias_localpart(const char *room_key, const char *ns, char *out, size_t cap,
                                      mr_err *err)
{
    if (!room_key || !*room_key)
        return mr_err_set(err, MR_EINVAL, "a managed room key is empty");
    if (strchr(room_key, ':'))
        return bad(err, "room key", room_key, "room keys may not hold ':'");
    bool has_ns = ns && *ns;
    int n = snprintf(out, cap, "%s%s%s", room_key, has_ns ? "_" : "", has_ns ? ns : "");
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            out[0] = '\0';
        return mr_err_set(err, MR_EINVAL, "the alias for room '%.80s' does not fit in %zu bytes", room_key, cap);
    }
    return MR_OK;
}

bool mr_id_room_key_from_alias_localpart(const char *localpart, const char *ns, char *out, size_t cap)
{
    size_t n = strlen(localpart);
    size_t ns_len = ns ? strlen(ns) : 0;
    if (ns_len) {
        /* `<key>_<ns>` with a non-empty key. */
        if (n < ns_len + 2 || localpart[n - ns_len - 1] != '_' || strcmp(localpart + n - ns_len, ns) != 0)
            return false;
        n -= ns_len + 1;
    }
    if (n >= cap)
        return false;
    memcpy(out, localpart, n);
    out[n] = '\0';
    return true;
}

mr_code mr_id_url_host(const char *url, char *host, size_t cap, mr_err *err)
{
    const char *p = NULL;
    if (strncmp(url, "https://", 8) == 0)
        p = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        p = url + 7;
    else
        return mr_err_set(err, MR_EINVAL, "\"%s\" is not an http:// or https:// URL", url);
    size_t authority = strcspn(p, "/?#");
    if (memchr(p, '@', authority))
        return mr_err_set(err, MR_EINVAL, "credentials are not allowed in the URL");
    size_t n = p[0] == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/?#");
    if (n == 0 || n >= cap || (p[0] == '[' && p[n - 1] != ']'))
        return mr_err_set(err, MR_EINVAL, "\"%s\" has no usable host", url);
    memcpy(host, p, n);
    host[n] = '\0';
    return MR_OK;
}
