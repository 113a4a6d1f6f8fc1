/* coding.c -- the coding tool, as the reference's: line-numbered reads, edits that replace text
 * found exactly once (answered with the hunk changed), whole-file writes, grep, find by glob and
 * ls, all inside the agent's workspace (the file tool's path checks; hidden entries and symbolic
 * links are skipped by the recursive walks). */
#include "tools_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mindroom/clock.h"

#define TOOL "coding"
#define FILE_MAX (1024 * 1024)        /* largest file read, edited or searched */
#define READ_LINES_DEFAULT 200
#define MATCHES_MAX 100
#define WALK_DEPTH_MAX 16
#define WALK_ENTRIES_MAX 20000

static const char *const actions[] = {"read_file", "edit_file", "write_file", "grep", "find_files", "ls", NULL};

/* The whole file at rel (at most FILE_MAX bytes). */
static mr_code load(int root, const char *rel, char **text, size_t *len, mr_err *err)
{
    *text = NULL;
    int fd = tools_ws_open(root, TOOL, rel, O_RDONLY, err);
    if (fd < 0)
        return err->code;
    struct stat st;
    mr_code rc = MR_OK;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = mr_err_set(err, MR_EINVAL, "%s: '%.128s' is not a regular file", TOOL, rel);
    else if (st.st_size > FILE_MAX)
        rc = mr_err_set(err, MR_EINVAL, "%s: '%.128s' is larger than %d bytes", TOOL, rel, FILE_MAX);
    mr_strbuf b = {0};
    char buf[8192];
    ssize_t n;
    while (rc == MR_OK && (n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = mr_err_errno(err, MR_EIO, errno, "%s: reading '%.128s'", TOOL, rel);
        else
            mr_strbuf_add(&b, buf, (size_t)n);
    }
    close(fd);
    if (rc == MR_OK && !mr_strbuf_ok(&b))
        rc = mr_err_set(err, MR_ENOMEM, "%s: out of memory reading '%.128s'", TOOL, rel);
    if (rc != MR_OK) {
        free(b.s);
        return rc;
    }
    *len = b.len;
    *text = b.s ? b.s : strdup("");
    return *text ? MR_OK : mr_err_set(err, MR_ENOMEM, "%s: out of memory", TOOL);
}

/* Makes the directories on the way to rel, one component at a time from the workspace, none of
 * them a link ("..", absolute paths and links are then refused by tools_ws_open as usual). */
static mr_code make_parents(int root, const char *rel, mr_err *err)
{
    if (rel[0] == '/' || !strchr(rel, '/'))
        return MR_OK;
    char *dir = strdup(rel);
    if (!dir)
        return mr_err_set(err, MR_ENOMEM, "%s: out of memory", TOOL);
    *strrchr(dir, '/') = '\0';
    mr_code rc = MR_OK;
    int cur = dup(root);
    char *save = NULL;
    for (char *part = strtok_r(dir, "/", &save); rc == MR_OK && cur >= 0 && part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) {
            rc = mr_err_set(err, MR_EPERM, "%s: '%.128s' leaves the workspace ('..' is not allowed)", TOOL, rel);
            break;
        }
        if (mkdirat(cur, part, 0700) != 0 && errno != EEXIST) {
            rc = mr_err_errno(err, MR_EIO, errno, "%s: making the directories of '%.128s'", TOOL, rel);
            break;
        }
        int next = openat(cur, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            rc = mr_err_set(err, MR_EPERM, "%s: '%.128s' goes through a symbolic link or a non-directory; links are "
                            "not followed in the workspace", TOOL, rel);
        close(cur);
        cur = next;
    }
    if (cur >= 0)
        close(cur);
    free(dir);
    return rc;
}

static mr_code store(int root, const char *rel, const char *text, size_t len, mr_err *err)
{
    mr_code rc = make_parents(root, rel, err);
    int fd = rc == MR_OK ? tools_ws_open(root, TOOL, rel, O_WRONLY | O_CREAT | O_TRUNC, err) : -1;
    if (fd < 0)
        return err->code;
    while (rc == MR_OK && len) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = mr_err_errno(err, MR_EIO, errno, "%s: writing '%.128s'", TOOL, rel);
        else {
            text += n;
            len -= (size_t)n;
        }
    }
    close(fd);
    return rc;
}

static size_t line_of(const char *text, const char *at)
{
    size_t line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

static size_t count_lines(const char *s)
{
    size_t n = *s != '\0';
    for (; *s; s++)
        n += *s == '\n' && s[1];
    return n;
}

static void put_lines(mr_strbuf *out, char sign, const char *s)
{
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        mr_strbuf_add(out, &sign, 1);
        mr_strbuf_add(out, s, n);
        mr_strbuf_puts(out, "\n");
        s += n + (nl != NULL);
    }
}

static mr_code read_file(int root, const char *rel, long long offset, long long limit, mr_strbuf *out, mr_err *err)
{
    char *text;
    size_t len;
    mr_code rc = load(root, rel, &text, &len, err);
    if (rc != MR_OK)
        return rc;
    long long line = 1, shown = 0;
    for (const char *p = text; *p && shown < limit; line++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (line >= offset) {
            mr_strbuf_printf(out, "%6lld\t", line);
            mr_strbuf_add(out, p, n);
            mr_strbuf_puts(out, "\n");
            shown++;
        }
        p += n + (nl != NULL);
        if (shown == limit && *p)
            mr_strbuf_printf(out, "[more from line %lld: read again with offset %lld]\n", line + 1, line + 1);
    }
    if (!shown)
        mr_strbuf_puts(out, len ? "(no lines there)" : "(empty file)");
    free(text);
    return MR_OK;
}

static mr_code edit_file(int root, const char *rel, const char *old_text, const char *new_text, mr_strbuf *out,
                         mr_err *err)
{
    char *text;
    size_t len;
    mr_code rc = load(root, rel, &text, &len, err);
    if (rc != MR_OK)
        return rc;
    const char *at = strstr(text, old_text);
    size_t found = 0;
    for (const char *p = at; p; p = strstr(p + 1, old_text))
        found++;
    if (found != 1) {
        free(text);
        return found ? mr_err_set(err, MR_EINVAL, "%s: old_text is found %zu times in '%.128s'; include more of "
                                                  "the lines around it so it is found once", TOOL, found, rel)
                     : mr_err_set(err, MR_EINVAL, "%s: old_text is not in '%.128s' (it must match exactly, "
                                                  "whitespace included; read_file shows the text)", TOOL, rel);
    }
    size_t before = (size_t)(at - text), olen = strlen(old_text), nlen = strlen(new_text);
    mr_strbuf b = {0};
    mr_strbuf_add(&b, text, before);
    mr_strbuf_add(&b, new_text, nlen);
    mr_strbuf_add(&b, at + olen, len - before - olen);
    rc = mr_strbuf_ok(&b) ? store(root, rel, b.s ? b.s : "", b.len, err)
                          : mr_err_set(err, MR_ENOMEM, "%s: out of memory", TOOL);
    if (rc == MR_OK) {
        size_t line = line_of(text, at);
        mr_strbuf_printf(out, "--- %s\n+++ %s\n@@ -%zu,%zu +%zu,%zu @@\n", rel, rel, line, count_lines(old_text), line,
                         count_lines(new_text));
        put_lines(out, '-', old_text);
        put_lines(out, '+', new_text);
    }
    free(b.s);
    free(text);
    return rc;
}

/* ---- the recursive walks of grep and find_files ---- */

typedef struct walk {
    const char *pattern;
    regex_t re;                  /* grep */
    bool grep;
    size_t base_len;             /* of the searched directory's path, with its '/': globs match below it */
    size_t matches, entries;
    long long deadline_ms;
    mr_strbuf *out;
} walk;

static void grep_file(walk *w, int dir, const char *name, const char *rel)
{
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
        if (fd >= 0)
            close(fd);
        return;
    }
    char *text = malloc((size_t)st.st_size + 1);
    ssize_t n = text ? read(fd, text, (size_t)st.st_size) : -1;
    close(fd);
    if (n < 0 || memchr(text, '\0', (size_t)n)) { /* unreadable, or binary */
        free(text);
        return;
    }
    text[n] = '\0';
    size_t line = 1;
    for (char *p = text; *p && w->matches < MATCHES_MAX; line++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (regexec(&w->re, p, 0, NULL, 0) == 0) {
            mr_strbuf_printf(w->out, "%s:%zu: %.300s\n", rel, line, p);
            w->matches++;
        }
        p = nl ? nl + 1 : p + strlen(p);
    }
    free(text);
}

/* "**" matches any number of directories: "**\/x" is tried against every tail of rel too. */
static bool glob_match(const char *pattern, const char *rel)
{
    if (fnmatch(pattern, rel, FNM_PATHNAME) == 0)
        return true;
    if (strncmp(pattern, "**/", 3) != 0)
        return false;
    for (const char *p = rel; *p; p++)
        if ((p == rel || p[-1] == '/') && fnmatch(pattern + 3, p, FNM_PATHNAME) == 0)
            return true;
    return false;
}

static void walk_dir(walk *w, int dir, const char *prefix, int depth)
{
    DIR *d = fdopendir(dir);
    if (!d) {
        close(dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) && w->matches < MATCHES_MAX && ++w->entries < WALK_ENTRIES_MAX &&
           mr_clock_mono_ms() < w->deadline_ms) {
        if (e->d_name[0] == '.') /* ".", "..", and hidden entries (.git) */
            continue;
        char rel[4096];
        if (snprintf(rel, sizeof rel, "%s%s%s", prefix, *prefix ? "/" : "", e->d_name) >= (int)sizeof rel)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < WALK_DEPTH_MAX) {
            int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                walk_dir(w, sub, rel, depth + 1);
        } else if (S_ISREG(st.st_mode) && w->grep) {
            grep_file(w, dirfd(d), e->d_name, rel);
        } else if (S_ISREG(st.st_mode) && glob_match(w->pattern, rel + w->base_len)) {
            mr_strbuf_printf(w->out, "%s\n", rel);
            w->matches++;
        }
    }
    closedir(d);
}

static mr_code search(int root, const char *path, const char *pattern, bool grep, long long deadline_ms,
                      mr_strbuf *out, mr_err *err)
{
    walk w = {.pattern = pattern, .grep = grep, .deadline_ms = deadline_ms, .out = out};
    if (grep) {
        int rc = regcomp(&w.re, pattern, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char why[128];
            regerror(rc, &w.re, why, sizeof why);
            return mr_err_set(err, MR_EINVAL, "%s: the pattern '%.128s' is not an extended regular expression: %s",
                              TOOL, pattern, why);
        }
    }
    int dir = tools_ws_open(root, TOOL, path, O_RDONLY | O_DIRECTORY, err);
    if (dir < 0) {
        if (grep)
            regfree(&w.re);
        return err->code;
    }
    const char *prefix = strcmp(path, ".") == 0 ? "" : path;
    w.base_len = *prefix ? strlen(prefix) + 1 : 0;
    walk_dir(&w, dir, prefix, 0);
    if (grep)
        regfree(&w.re);
    if (!w.matches)
        mr_strbuf_puts(out, grep ? "No line matches." : "No file matches.");
    else if (w.matches == MATCHES_MAX)
        mr_strbuf_printf(out, "[the first %d; narrow the pattern or the path for more]\n", MATCHES_MAX);
    if (mr_clock_mono_ms() >= deadline_ms || w.entries >= WALK_ENTRIES_MAX)
        mr_strbuf_puts(out, "[the search stopped early: too many files; narrow the path]\n");
    return MR_OK;
}

static mr_code ls(int root, const char *path, mr_strbuf *out, mr_err *err)
{
    int dir = tools_ws_open(root, TOOL, path, O_RDONLY | O_DIRECTORY, err);
    return dir >= 0 ? tools_ws_list(dir, TOOL, path, 1000, out, err) : err->code;
}

static mr_code coding_run(const mr_tools_env *env, json_t *args, long long deadline_ms, mr_strbuf *out, mr_err *err)
{
    const char *action, *path = NULL, *pattern = NULL, *old_text = NULL, *new_text = NULL, *content = NULL;
    long long offset = 1, limit = READ_LINES_DEFAULT;
    mr_code rc = tools_arg_enum(args, TOOL, "action", actions, &action, err);
    bool needs_path = rc == MR_OK && strcmp(action, "grep") != 0 && strcmp(action, "find_files") != 0 &&
                      strcmp(action, "ls") != 0;
    if (rc == MR_OK)
        rc = tools_arg_str(args, TOOL, "path", needs_path, &path, err);
    if (rc == MR_OK && (strcmp(action, "grep") == 0 || strcmp(action, "find_files") == 0))
        rc = tools_arg_str(args, TOOL, "pattern", true, &pattern, err);
    if (rc == MR_OK && strcmp(action, "read_file") == 0)
        rc = tools_arg_int(args, TOOL, "offset", 1, 100000000, 1, &offset, err);
    if (rc == MR_OK && strcmp(action, "read_file") == 0)
        rc = tools_arg_int(args, TOOL, "limit", 1, 5000, READ_LINES_DEFAULT, &limit, err);
    if (rc == MR_OK && strcmp(action, "edit_file") == 0) {
        rc = tools_arg_str(args, TOOL, "old_text", true, &old_text, err);
        json_t *n = json_object_get(args, "new_text");
        if (rc == MR_OK && !json_is_string(n))
            rc = mr_err_set(err, MR_EINVAL, "%s: the argument 'new_text' must be a string (\"\" deletes)", TOOL);
        new_text = json_string_value(n);
    }
    if (rc == MR_OK && strcmp(action, "write_file") == 0)
        rc = tools_arg_text(args, TOOL, "content", FILE_MAX, &content, err);
    if (rc != MR_OK)
        return rc;
    int root = tools_ws_root(env, TOOL, err);
    if (root < 0)
        return err->code;
    if (strcmp(action, "read_file") == 0)
        rc = read_file(root, path, offset, limit, out, err);
    else if (strcmp(action, "edit_file") == 0)
        rc = edit_file(root, path, old_text, new_text, out, err);
    else if (strcmp(action, "write_file") == 0 && (rc = store(root, path, content, strlen(content), err)) == MR_OK)
        mr_strbuf_printf(out, "Wrote %zu bytes to %s.", strlen(content), path);
    else if (strcmp(action, "grep") == 0 || strcmp(action, "find_files") == 0)
        rc = search(root, path ? path : ".", pattern, strcmp(action, "grep") == 0, deadline_ms, out, err);
    else if (strcmp(action, "ls") == 0)
        rc = ls(root, path ? path : ".", out, err);
    close(root);
    return rc;
}

const mr_tool_def mr_tool_coding = {
    .name = TOOL,
    .description = "Work on code in this agent's workspace: read_file (numbered lines, offset and limit), "
                   "edit_file (replace old_text, which must be found exactly once, with new_text; answers with "
                   "the hunk changed), write_file (the whole content; directories made), grep (an extended regular "
                   "expression, recursively), find_files (a glob such as **/*.c), ls. Paths are relative to the "
                   "workspace; '..' and symbolic links are refused, hidden files skipped by grep and find_files.",
    .parameters = "{\"type\":\"object\",\"properties\":{"
                  "\"action\":{\"type\":\"string\",\"enum\":[\"read_file\",\"edit_file\",\"write_file\",\"grep\","
                  "\"find_files\",\"ls\"]},"
                  "\"path\":{\"type\":\"string\",\"description\":\"relative to the workspace; grep, find_files "
                  "and ls: the directory, default .\"},"
                  "\"offset\":{\"type\":\"integer\",\"description\":\"read_file: the first line, from 1\"},"
                  "\"limit\":{\"type\":\"integer\",\"description\":\"read_file: how many lines, default 200\"},"
                  "\"old_text\":{\"type\":\"string\"},\"new_text\":{\"type\":\"string\"},"
                  "\"content\":{\"type\":\"string\",\"description\":\"write_file: the whole new content\"},"
                  "\"pattern\":{\"type\":\"string\",\"description\":\"grep: a regular expression; find_files: "
                  "a glob below path\"}},"
                  "\"required\":[\"action\"],\"additionalProperties\":false}",
    .run = coding_run,
};
