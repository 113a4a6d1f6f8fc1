/* test_tools.c -- the built-in tools with real files, processes and HTTP on loopback: bad
 * input named, the workspace never left (../ and symlinks), memory and todo files, the runner's
 * time limit, output bound and parallel calls, the website tool's address checks, and oauth_api's
 * arguments and connect link on a real SQLite store. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mindroom/clock.h"
#include "mindroom/fsutil.h"
#include "mindroom/http.h"
#include "mindroom/oauth.h"
#include "mindroom/tools.h"

static char dir[256], data[300], ws[300], outside[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/mr-tools-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(ws, sizeof ws, "%s/ws", dir);
    snprintf(outside, sizeof outside, "%s/secret.txt", dir);
    FILE *f = fopen(outside, "w");
    fputs("outside the workspace", f);
    fclose(f);
    return mkdir(ws, 0700);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static mr_tools_env env_of(void)
{
    return (mr_tools_env){.entity = "mind", .requester = "@alice:example.org", .room_id = "!r:example.org",
                          .data_dir = data, .workspace = ws, .timeout_ms = 20000};
}

/* One call: its result, and whether it failed. */
static char *call(const mr_tools_env *env, const char *tool, const char *args, bool *failed)
{
    mr_tools_call c = {.def = mr_tools_find(tool), .name = tool, .arguments = args};
    assert_int_equal(mr_tools_run(env, &c, 1, NULL), MR_OK);
    *failed = c.failed;
    return c.result;
}

static void expect(const mr_tools_env *env, const char *tool, const char *args, bool fails, const char *has)
{
    bool failed;
    char *r = call(env, tool, args, &failed);
    if (failed != fails || !strstr(r, has))
        fail_msg("%s %s: got %s \"%s\", wanted %s with \"%s\"", tool, args, failed ? "error" : "result", r,
                 fails ? "error" : "result", has);
    free(r);
}

static void test_bad_input_names_the_argument(void **state)
{
    (void)state;
    mr_tools_env env = env_of();
    expect(&env, "memory", "{}", true, "'action' is required");
    expect(&env, "memory", "{\"action\":\"shout\"}", true, "'action' must be one of add, search, forget, list");
    expect(&env, "memory", "{\"action\":\"add\"}", true, "'text' is required");
    expect(&env, "memory", "{\"action\":\"add\",\"text\":7}", true, "'text' must be a non-empty string");
    expect(&env, "memory", "[1]", true, "must be a JSON object");
    expect(&env, "memory", "{\"action\":", true, "must be a JSON object");
    expect(&env, "todo", "{\"action\":\"done\"}", true, "'id' is required");
    expect(&env, "todo", "{\"action\":\"done\",\"id\":\"t99\"}", true, "no item has the id 't99'");
    expect(&env, "file", "{\"action\":\"read\"}", true, "'path' is required");
    expect(&env, "file", "{\"action\":\"write\",\"path\":\"a\"}", true, "'content' must be a string");
    /* One byte over the bound of a write: refused, naming the bound, and nothing is written. */
    size_t big = 1024 * 1024 + 1;
    char *over = malloc(big + 80);
    assert_non_null(over);
    for (int coding = 0; coding <= 1; coding++) {
        int n = snprintf(over, 80, "{\"action\":\"%s\",\"path\":\"big.txt\",\"content\":\"",
                         coding ? "write_file" : "write");
        memset(over + n, 'x', big);
        strcpy(over + n + big, "\"}");
        expect(&env, coding ? "coding" : "file", over, true, "'content' must be a string of at most 1048576 bytes");
    }
    free(over);
    char big_path[400];
    snprintf(big_path, sizeof big_path, "%s/big.txt", ws);
    assert_int_equal(access(big_path, F_OK), -1);
    expect(&env, "shell", "{\"command\":\"\"}", true, "'command' must be a non-empty string");
    expect(&env, "website", "{\"url\":\"not a url\"}", true, "'url' is not a URL");
    expect(&env, "website", "{\"url\":\"ftp://example.org/x\"}", true, "must be http or https");
    expect(&env, "matrix_message", "{\"action\":\"react\",\"key\":\"+1\",\"event_id\":\"nope\"}", true,
           "'event_id' is not a Matrix event ID");
    expect(&env, "matrix_message", "{\"action\":\"send\",\"text\":\"hi\",\"room_id\":\"!other:example.org\"}",
           true, "may only name this conversation's room");
    expect(&env, "matrix_message", "{\"action\":\"send\",\"text\":\"hi\"}", true, "no room to send to");
    expect(&env, "thread_summary", "{}", true, "'summary' is required");
    expect(&env, "thread_summary", "{\"summary\":\"x\"}", true, "'thread_id' is required outside a thread");
    expect(&env, "thread_summary", "{\"summary\":\"x\",\"thread_id\":\"root\"}", true,
           "'thread_id' is not a Matrix event ID");
    expect(&env, "thread_summary", "{\"summary\":\"x\",\"thread_id\":\"$root\"}", true,
           "no room whose threads can be summarised");
    expect(&env, "scheduler", "{\"action\":\"add\",\"task\":\"x\"}", true, "'when' is required");
    expect(&env, "scheduler", "{\"action\":\"add\",\"when\":\"in 1 minute\"}", true, "'task' is required");
    expect(&env, "scheduler", "{\"action\":\"cancel\"}", true, "'id' is required");
    expect(&env, "scheduler", "{\"action\":\"list\"}", true, "schedules cannot be made here");
    /* A tool the model was not given. */
    mr_tools_call c = {.name = "rm_rf", .arguments = "{}"};
    assert_int_equal(mr_tools_run(&env, &c, 1, NULL), MR_OK);
    assert_true(c.failed);
    assert_non_null(strstr(c.result, "no tool named 'rm_rf'"));
    mr_tools_calls_clear(&c, 1);
}

static void test_memory_file_backend(void **state)
{
    (void)state;
    mr_tools_env env = env_of();
    expect(&env, "memory", "{\"action\":\"add\",\"text\":\"Alice likes green tea\"}", false, "m1");
    expect(&env, "memory", "{\"action\":\"add\",\"text\":\"The deploy\\nis on Fridays\"}", false, "m2");
    expect(&env, "memory", "{\"action\":\"search\",\"query\":\"TEA\"}", false, "m1: Alice likes green tea");
    expect(&env, "memory", "{\"action\":\"forget\",\"id\":\"m1\"}", false, "Forgot m1");
    expect(&env, "memory", "{\"action\":\"search\",\"query\":\"tea\"}", false, "No memory matches");
    char path[400], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/MEMORY.md", data);
    assert_int_equal(mr_fs_read_all(path, 1 << 20, &text, &len, NULL), MR_OK);
    /* Who asked travels with the call and is kept; a line break cannot start a new item. */
    assert_string_equal(text, "# Memory\n\n- m2: The deploy is on Fridays (from @alice:example.org)\n");
    free(text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* MEMORY.md must be a regular file of the workspace: a symlink is neither read nor replaced. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(outside, path), 0);
    expect(&env, "memory", "{\"action\":\"list\"}", true, "symbolic link");
    expect(&env, "memory", "{\"action\":\"add\",\"text\":\"x\"}", true, "symbolic link");
    assert_int_equal(mr_fs_read_all(outside, 1 << 20, &text, &len, NULL), MR_OK);
    assert_string_equal(text, "outside the workspace");
    free(text);
}

static void test_todo(void **state)
{
    (void)state;
    mr_tools_env env = env_of();
    expect(&env, "todo", "{\"action\":\"add\",\"text\":\"write tests\"}", false, "- [ ] t1: write tests");
    expect(&env, "todo", "{\"action\":\"add\",\"text\":\"ship\"}", false, "- [ ] t2: ship");
    expect(&env, "todo", "{\"action\":\"done\",\"id\":\"t1\"}", false, "- [x] t1: write tests");
    expect(&env, "todo", "{\"action\":\"remove\",\"id\":\"t2\"}", false, "Updated t2");
    expect(&env, "todo", "{\"action\":\"list\"}", false, "- [x] t1");
}

static void test_file_stays_in_the_workspace(void **state)
{
    (void)state;
    mr_tools_env env = env_of();
    expect(&env, "file", "{\"action\":\"write\",\"path\":\"notes/a.txt\",\"content\":\"x\"}", true, "notes/a.txt");
    char sub[400];
    snprintf(sub, sizeof sub, "%s/notes", ws);
    assert_int_equal(mkdir(sub, 0700), 0);
    expect(&env, "file", "{\"action\":\"write\",\"path\":\"notes/a.txt\",\"content\":\"hello\"}", false, "Written");
    expect(&env, "file", "{\"action\":\"read\",\"path\":\"./notes//a.txt\"}", false, "hello");
    expect(&env, "file", "{\"action\":\"list\"}", false, "notes/");
    expect(&env, "file", "{\"action\":\"read\",\"path\":\"../secret.txt\"}", true, "'..' is not allowed");
    expect(&env, "file", "{\"action\":\"read\",\"path\":\"notes/../../secret.txt\"}", true, "'..' is not allowed");
    expect(&env, "file", "{\"action\":\"read\",\"path\":\"/etc/passwd\"}", true, "must be relative");
    /* Symlinks out, as the last component or on the way, are not followed. */
    char link[400], dlink[400];
    snprintf(link, sizeof link, "%s/leak", ws);
    snprintf(dlink, sizeof dlink, "%s/up", ws);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(symlink(dir, dlink), 0);
    expect(&env, "file", "{\"action\":\"read\",\"path\":\"leak\"}", true, "symbolic link");
    expect(&env, "file", "{\"action\":\"write\",\"path\":\"leak\",\"content\":\"x\"}", true, "symbolic link");
    expect(&env, "file", "{\"action\":\"read\",\"path\":\"up/secret.txt\"}", true, "symbolic link");
    char *text = NULL;
    size_t len;
    assert_int_equal(mr_fs_read_all(outside, 1 << 20, &text, &len, NULL), MR_OK);
    assert_string_equal(text, "outside the workspace");
    free(text);
    /* No workspace configured: off. */
    env.workspace = NULL;
    expect(&env, "file", "{\"action\":\"list\"}", true, "MINDROOM_TOOL_FILE_AND_SHELL");
    expect(&env, "shell", "{\"command\":\"true\"}", true, "MINDROOM_TOOL_FILE_AND_SHELL");
}

/* coding: numbered reads in pages, edits of text found once (with the hunk), writes that make
 * their directories, grep and find over the tree without hidden files or links, ls; every path
 * kept in the workspace, and bad input named. */
static void test_coding_in_the_workspace(void **state)
{
    (void)state;
    mr_tools_env env = env_of();
    expect(&env, "coding", "{\"action\":\"write_file\",\"path\":\"src/lib/a.c\",\"content\":\"int a;\\nint b;\\n"
                           "int a2;\\n\"}", false, "Wrote 22 bytes to src/lib/a.c.");
    expect(&env, "coding", "{\"action\":\"read_file\",\"path\":\"src/lib/a.c\"}", false, "     2\tint b;\n");
    expect(&env, "coding", "{\"action\":\"read_file\",\"path\":\"src/lib/a.c\",\"offset\":2,\"limit\":1}", false,
           "     2\tint b;\n[more from line 3: read again with offset 3]");
    /* "int a" is in two places: refused, the file unchanged; then made unique. */
    expect(&env, "coding", "{\"action\":\"edit_file\",\"path\":\"src/lib/a.c\",\"old_text\":\"int a\","
                           "\"new_text\":\"long a\"}", true, "old_text is found 2 times in 'src/lib/a.c'");
    expect(&env, "coding", "{\"action\":\"edit_file\",\"path\":\"src/lib/a.c\",\"old_text\":\"nope\","
                           "\"new_text\":\"x\"}", true, "old_text is not in 'src/lib/a.c'");
    expect(&env, "coding", "{\"action\":\"edit_file\",\"path\":\"src/lib/a.c\",\"old_text\":\"int b;\\nint a2;\","
                           "\"new_text\":\"long b;\"}", false, "@@ -2,2 +2,1 @@\n-int b;\n-int a2;\n+long b;\n");
    char path[400], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/src/lib/a.c", ws);
    assert_int_equal(mr_fs_read_all(path, 1 << 20, &text, &len, NULL), MR_OK);
    assert_string_equal(text, "int a;\nlong b;\n");
    free(text);
    /* grep and find walk the tree; hidden directories and links out are not entered. */
    expect(&env, "coding", "{\"action\":\"write_file\",\"path\":\".git/x.c\",\"content\":\"long b;\"}", false, "Wrote");
    expect(&env, "coding", "{\"action\":\"write_file\",\"path\":\"docs/b.md\",\"content\":\"# long b\"}", false,
           "Wrote");
    char link[400];
    snprintf(link, sizeof link, "%s/up", ws);
    assert_int_equal(symlink(dir, link), 0);
    bool failed;
    char *r = call(&env, "coding", "{\"action\":\"grep\",\"pattern\":\"long +b\"}", &failed);
    assert_false(failed);
    assert_non_null(strstr(r, "src/lib/a.c:2: long b;"));
    assert_non_null(strstr(r, "docs/b.md:1: # long b"));
    assert_null(strstr(r, ".git"));
    assert_null(strstr(r, "secret"));
    free(r);
    expect(&env, "coding", "{\"action\":\"grep\",\"pattern\":\"outside\"}", false, "No line matches.");
    r = call(&env, "coding", "{\"action\":\"find_files\",\"pattern\":\"**/*.c\"}", &failed);
    assert_false(failed);
    assert_string_equal(r, "src/lib/a.c\n");
    free(r);
    expect(&env, "coding", "{\"action\":\"find_files\",\"pattern\":\"*.md\",\"path\":\"docs\"}", false, "docs/b.md");
    expect(&env, "coding", "{\"action\":\"ls\",\"path\":\"src\"}", false, "lib/");
    expect(&env, "coding", "{\"action\":\"ls\"}", false, "up (link)");
    /* Out of the workspace, and bad input. */
    expect(&env, "coding", "{\"action\":\"read_file\",\"path\":\"../secret.txt\"}", true, "'..' is not allowed");
    expect(&env, "coding", "{\"action\":\"read_file\",\"path\":\"up/secret.txt\"}", true, "symbolic link");
    expect(&env, "coding", "{\"action\":\"write_file\",\"path\":\"up/x/y.txt\",\"content\":\"x\"}", true,
           "symbolic link");
    expect(&env, "coding", "{\"action\":\"write_file\",\"path\":\"a/../../y.txt\",\"content\":\"x\"}", true,
           "'..' is not allowed");
    expect(&env, "coding", "{\"action\":\"grep\",\"path\":\"up\",\"pattern\":\"x\"}", true, "symbolic link");
    expect(&env, "coding", "{\"action\":\"grep\",\"pattern\":\"(\"}", true, "is not an extended regular expression");
    expect(&env, "coding", "{\"action\":\"grep\"}", true, "the argument 'pattern' is required");
    expect(&env, "coding", "{\"action\":\"read_file\",\"path\":\"src/lib/a.c\",\"offset\":0}", true,
           "the argument 'offset' must be an integer from 1");
    expect(&env, "coding", "{\"action\":\"edit_file\",\"path\":\"src/lib/a.c\",\"old_text\":\"int a\"}", true,
           "the argument 'new_text' must be a string");
    expect(&env, "coding", "{\"action\":\"read_file\",\"path\":\"src\"}", true, "is not a regular file");
    expect(&env, "coding", "{\"action\":\"rm\"}", true, "the argument 'action' must be one of read_file");
    char outside_text[64];
    FILE *f = fopen(outside, "r");
    assert_non_null(fgets(outside_text, sizeof outside_text, f));
    fclose(f);
    assert_string_equal(outside_text, "outside the workspace");
    env.workspace = NULL;
    expect(&env, "coding", "{\"action\":\"ls\"}", true, "MINDROOM_TOOL_FILE_AND_SHELL");
}

static void test_shell_runs_in_the_workspace_without_secrets(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-must-not-leak", 1);
    mr_tools_env env = env_of();
    expect(&env, "shell", "{\"command\":\"pwd; echo key=$OPENAI_API_KEY; exit 3\"}", false, "/ws\nkey=\n\n[exit code 3]");
}

static void test_timeout_output_bound_and_parallel_calls(void **state)
{
    (void)state;
    mr_tools_env env = env_of();
    env.timeout_ms = 1500;
    env.max_output = 1000;
    mr_tools_call c[3] = {
        {.def = mr_tools_find("shell"), .name = "shell", .arguments = "{\"command\":\"sleep 30\"}"},
        {.def = mr_tools_find("shell"), .name = "shell", .arguments = "{\"command\":\"head -c 10000000 /dev/zero | tr '\\\\0' x\"}"},
        {.def = mr_tools_find("todo"), .name = "todo", .arguments = "{\"action\":\"add\",\"text\":\"parallel\"}"},
    };
    long long t0 = mr_clock_mono_ms();
    assert_int_equal(mr_tools_run(&env, c, 3, NULL), MR_OK);
    long long took = mr_clock_mono_ms() - t0;
    assert_true(c[0].failed);
    assert_non_null(strstr(c[0].result, "did not finish in time"));
    assert_false(c[1].failed);
    assert_non_null(strstr(c[1].result, "[output cut at 1000 of "));
    assert_int_equal(strspn(c[1].result, "x"), 1000);
    assert_false(c[2].failed);
    assert_non_null(strstr(c[2].result, "parallel"));
    /* The sleep was killed at the deadline, not waited for (a bound, not a timing claim: 30 s). */
    assert_true(took < 25000);
    mr_tools_calls_clear(c, 3);
}

static json_t *sent;

static mr_code capture(void *ctx, const char *room_id, const char *event_type, json_t *content, mr_err *err)
{
    (void)ctx;
    (void)err;
    json_array_append_new(sent, json_pack("{s:s, s:s, s:O}", "room", room_id, "type", event_type, "content", content));
    return MR_OK;
}

static void test_matrix_message_sends_and_reacts(void **state)
{
    (void)state;
    sent = json_array();
    mr_tools_env env = env_of();
    env.send = capture;
    env.thread_root = "$root";
    expect(&env, "matrix_message", "{\"action\":\"send\",\"text\":\"Reminder!\"}", false, "Sent.");
    expect(&env, "matrix_message", "{\"action\":\"react\",\"event_id\":\"$ev1\",\"key\":\"\xf0\x9f\x91\x8d\"}", false,
           "Reacted.");
    assert_int_equal(json_array_size(sent), 2);
    json_t *m = json_array_get(sent, 0), *r = json_array_get(sent, 1);
    assert_string_equal(json_string_value(json_object_get(m, "type")), "m.room.message");
    assert_string_equal(json_string_value(json_object_get(m, "room")), "!r:example.org");
    json_t *rel = json_object_get(json_object_get(m, "content"), "m.relates_to");
    assert_string_equal(json_string_value(json_object_get(rel, "rel_type")), "m.thread");
    assert_string_equal(json_string_value(json_object_get(rel, "event_id")), "$root");
    assert_string_equal(json_string_value(json_object_get(r, "type")), "m.reaction");
    rel = json_object_get(json_object_get(r, "content"), "m.relates_to");
    assert_string_equal(json_string_value(json_object_get(rel, "rel_type")), "m.annotation");
    assert_string_equal(json_string_value(json_object_get(rel, "event_id")), "$ev1");
    json_decref(sent);
}

static mr_http_response *page(void *ctx, const mr_http_request *req)
{
    (void)ctx;
    (void)req;
    static const char html[] = "<html><head><style>p{}</style><script>var x=1;</script></head>"
                               "<body><h1>Title</h1><p>Fish &amp; chips</p></body></html>";
    return mr_http_reply(200, "text/html; charset=utf-8", html, sizeof html - 1);
}

/* The agent's history of one thread: "$root" holds three messages, other roots none. */
static mr_code thread_of(void *ctx, const char *room_id, const char *root, json_t **messages, mr_err *err)
{
    (void)ctx;
    if (strcmp(room_id, "!r:example.org") != 0 || strcmp(root, "$root") != 0)
        return mr_err_set(err, MR_ENOTFOUND, "no history for %s", root);
    *messages = json_pack("[{s:s, s:s, s:s}, {s:s, s:s}, {s:s, s:s, s:s}]", "event_id", "$root", "sender",
                          "@alice:example.org", "body", "plan the trip", "sender", "@mind:example.org", "body",
                          "sure", "event_id", "$last", "sender", "@alice:example.org", "body", "thanks");
    return *messages ? MR_OK : mr_err_set(err, MR_ENOMEM, "out of memory");
}

static void test_thread_summary_posts_a_notice_into_the_thread(void **state)
{
    (void)state;
    sent = json_array();
    mr_tools_env env = env_of();
    env.send = capture;
    env.thread = thread_of;
    env.thread_root = "$root";
    expect(&env, "thread_summary", "{\"summary\":\"  ## **Trip**   planning\\n- `Lisbon` in May  \"}", false,
           "\"message_count\": 3");
    /* Another thread of this room, named by its root; one the agent never saw is refused. */
    expect(&env, "thread_summary", "{\"summary\":\"x\",\"thread_id\":\"$elsewhere\"}", true,
           "'thread_id' names no thread of this room");
    char *long_summary = malloc(302 * 2 + 40);
    strcpy(long_summary, "{\"summary\":\"");
    for (int i = 0; i < 301; i++)
        strcat(long_summary, "\xc3\xa9");
    strcat(long_summary, "\"}");
    expect(&env, "thread_summary", long_summary, true, "300 characters or fewer (it has 301)");
    /* 300 two-byte characters are 600 bytes and still fit. */
    long_summary[strlen(long_summary) - 4] = '\0';
    strcat(long_summary, "\"}");
    expect(&env, "thread_summary", long_summary, false, "\"status\": \"ok\"");
    free(long_summary);
    expect(&env, "thread_summary", "{\"summary\":\" ** ` \"}", true, "'summary' has no text");
    assert_int_equal(json_array_size(sent), 2);
    json_t *m = json_array_get(sent, 0);
    assert_string_equal(json_string_value(json_object_get(m, "type")), "m.room.message");
    assert_string_equal(json_string_value(json_object_get(m, "room")), "!r:example.org");
    json_t *c = json_object_get(m, "content");
    assert_string_equal(json_string_value(json_object_get(c, "msgtype")), "m.notice");
    assert_string_equal(json_string_value(json_object_get(c, "body")), "Trip planning Lisbon in May");
    json_t *rel = json_object_get(c, "m.relates_to");
    assert_string_equal(json_string_value(json_object_get(rel, "rel_type")), "m.thread");
    assert_string_equal(json_string_value(json_object_get(rel, "event_id")), "$root");
    assert_string_equal(json_string_value(json_object_get(json_object_get(rel, "m.in_reply_to"), "event_id")),
                        "$last");
    json_t *meta = json_object_get(c, "io.mindroom.thread_summary");
    assert_int_equal(json_integer_value(json_object_get(meta, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(meta, "message_count")), 3);
    assert_string_equal(json_string_value(json_object_get(meta, "summary")), "Trip planning Lisbon in May");
    assert_string_equal(json_string_value(json_object_get(meta, "model")), "manual");
    assert_non_null(strchr(json_string_value(json_object_get(meta, "generated_at")), 'T'));
    json_decref(sent);
}

static void test_website_refuses_internal_addresses(void **state)
{
    (void)state;
    mr_http_server_opts o = {.listen = "127.0.0.1:0"};
    mr_http_server *srv = NULL;
    assert_int_equal(mr_http_server_start(&o, page, NULL, &srv, NULL), MR_OK);
    char args[200];
    snprintf(args, sizeof args, "{\"url\":\"http://127.0.0.1:%d/\"}", mr_http_server_port(srv));
    mr_tools_env env = env_of();
    expect(&env, "website", args, true, "internal address: refused");
    expect(&env, "website", "{\"url\":\"http://10.1.2.3/\"}", true, "internal address: refused");
    expect(&env, "website", "{\"url\":\"http://169.254.169.254/latest/meta-data\"}", true, "internal address");
    expect(&env, "website", "{\"url\":\"http://[::1]:1/\"}", true, "internal address: refused");
    expect(&env, "website", "{\"url\":\"http://[::ffff:127.0.0.1]:1/\"}", true, "internal address: refused");
    expect(&env, "website", "{\"url\":\"http://localhost:1/\"}", true, "internal address: refused");
    env.website_private_ok = true;
    expect(&env, "website", args, false, "Title\nFish & chips");
    bool failed;
    char *r = call(&env, "website", args, &failed);
    assert_null(strstr(r, "var x"));
    free(r);
    mr_http_server_stop(srv);
}

static void test_oauth_api_arguments_and_connect_link(void **state)
{
    (void)state;
    static const char yaml[] = "oauth_providers:\n"
                               "  github:\n"
                               "    authorize_url: https://github.example/authorize\n"
                               "    token_url: https://github.example/token\n"
                               "    client_id: c\n"
                               "    client_secret_env: GH_SECRET\n"
                               "    scopes: [repo, 'read:user']\n"
                               "    api_base_url: https://api.github.example/\n";
    mr_config *cfg = NULL;
    mr_err err = {0};
    assert_int_equal(mr_config_parse(yaml, strlen(yaml), "config.yaml", &cfg, NULL, &err), MR_OK);
    char url[400];
    snprintf(url, sizeof url, "sqlite://%s/store.db", dir);
    static const unsigned char secret[32] = "0123456789abcdef0123456789abcde";
    mr_store_options so = {.secret = secret, .secret_len = sizeof secret};
    mr_store *store = NULL;
    assert_int_equal(mr_store_open(url, &so, &store, &err), MR_OK);
    mr_dotenv dotenv = {0};
    mr_tools_oauth oauth = {.store = store, .providers = cfg->oauth_providers, .n_providers = cfg->n_oauth_providers,
                            .dotenv = &dotenv, .public_url = "https://mr.example.org"};
    mr_tools_env env = env_of();
    expect(&env, "oauth_api", "{\"provider\":\"github\",\"path\":\"/user\"}", true,
           "no OAuth providers are set up for this agent");
    env.oauth = &oauth;
    expect(&env, "oauth_api", "{\"path\":\"/user\"}", true, "'provider' is required");
    expect(&env, "oauth_api", "{\"provider\":\"github\"}", true, "'path' is required");
    expect(&env, "oauth_api", "{\"provider\":\"gitlab\",\"path\":\"/user\"}", true,
           "'provider' must be one of the configured providers (github), not 'gitlab'");
    expect(&env, "oauth_api", "{\"provider\":\"github\",\"path\":\"user\"}", true, "'path' must start with '/'");
    expect(&env, "oauth_api", "{\"provider\":\"github\",\"path\":\"@evil.example/x\"}", true,
           "'path' must start with '/'");
    expect(&env, "oauth_api", "{\"provider\":\"github\",\"path\":\"/a/../../b\"}", true,
           "must not hold '.' or '..' segments");
    expect(&env, "oauth_api", "{\"provider\":\"github\",\"path\":\"/a b\"}", true, "must not hold spaces");
    expect(&env, "oauth_api", "{\"provider\":\"github\",\"path\":\"/user\"}", true,
           "GH_SECRET is not set in the environment or .env");

    /* No credentials yet: a link for the requester, bound to them, the agent and the room. */
    assert_int_equal(mr_dotenv_parse("GH_SECRET=s3cret\n", 16, ".env", &dotenv, &err), MR_OK);
    bool failed;
    char *r = call(&env, "oauth_api", "{\"provider\":\"github\",\"path\":\"/user?per_page=1\"}", &failed);
    assert_false(failed);
    const char *prefix = "https://mr.example.org/api/oauth/github/authorize?connect_token=";
    const char *at = strstr(r, prefix);
    if (!at || !strstr(r, "@alice:example.org must connect their github account first"))
        fail_msg("no connect link in \"%s\"", r);
    char token[MR_OAUTH_CONNECT_TOKEN_LEN + 1];
    snprintf(token, sizeof token, "%s", at + strlen(prefix));
    mr_oauth_connect_grant g;
    assert_int_equal(mr_oauth_connect_lookup(store, token, &g, &err), MR_OK);
    assert_string_equal(g.requester, "@alice:example.org");
    assert_string_equal(g.provider, "github");
    assert_string_equal(g.scopes, "repo read:user");
    assert_string_equal(g.agent, "mind");
    assert_string_equal(g.room_id, "!r:example.org");
    mr_oauth_connect_grant_clear(&g);
    free(r);
    mr_dotenv_free(&dotenv);
    mr_store_close(store);
    mr_config_release(cfg);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_bad_input_names_the_argument),
        T(test_memory_file_backend),
        T(test_todo),
        T(test_file_stays_in_the_workspace),
        T(test_coding_in_the_workspace),
        T(test_shell_runs_in_the_workspace_without_secrets),
        T(test_timeout_output_bound_and_parallel_calls),
        T(test_matrix_message_sends_and_reacts),
        T(test_thread_summary_posts_a_notice_into_the_thread),
        T(test_website_refuses_internal_addresses),
        T(test_oauth_api_arguments_and_connect_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
