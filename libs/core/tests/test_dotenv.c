/* test_dotenv.c -- .env parsing forms and errors, upsert/append round trips, quoting, precedence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mindroom/dotenv.h"
#include "mindroom/fsutil.h"

static char g_dir[64];
static char g_env[128]; /* g_dir/.env */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/mr_dotenv_XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_env, sizeof g_env, "%s/.env", g_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(g_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void put_file(const char *text, mode_t mode)
{
    FILE *f = fopen(g_env, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(g_env, mode), 0);
}

static void assert_env_file(const char *want)
{
    char *data;
    size_t len;
    mr_err err = { 0 };
    assert_int_equal(mr_fs_read_all(g_env, 1 << 20, &data, &len, &err), MR_OK);
    assert_string_equal(data, want);
    free(data);
}

static void assert_env_mode(mode_t want)
{
    struct stat st;
    assert_int_equal(lstat(g_env, &st), 0);
    assert_int_equal(st.st_mode & 0777, want);
}

static void test_parse_forms(void **state)
{
    (void)state;
    static const struct {
        const char *text, *key, *value;
    } cases[] = {
        { "K=V", "K", "V" },
        { "K=V\n", "K", "V" },
        { "export K=V\n", "K", "V" },
        { "  export\t K = V  \n", "K", "V" },
        { "K = V", "K", "V" },
        { "K='a #b $c \\n \"q\"'", "K", "a #b $c \\n \"q\"" },
        { "K=\"a\\nb\\tc\\\\d\\\"e\\$f\\rg\"", "K", "a\nb\tc\\d\"e$f\rg" },
        { "K=\"keep \\q as is\"", "K", "keep \\q as is" },
        { "K=\"#not a comment\" # comment", "K", "#not a comment" },
        { "K='x'#c", "K", "x" },
        { "K=a b # comment", "K", "a b" },
        { "K=a#b", "K", "a#b" },
        { "K=#abc", "K", "#abc" },
        { "K= # only a comment", "K", "" },
        { "K=a\t#tab comment", "K", "a" },
        { "K=", "K", "" },
        { "K=   \n", "K", "" },
        { "K=''", "K", "" },
        { "K=\"\"", "K", "" },
        { "K=v\r\n", "K", "v" },
        { "K='v'\r\n", "K", "v" },
        { "K=a=b", "K", "a=b" },
        { "K=it's", "K", "it's" },
        { "export=1", "export", "1" },
        { "export =1", "export", "1" },
        { "_a1_=x", "_a1_", "x" },
        { "URL=https://mindroom.chat/x?y=1&z=2", "URL", "https://mindroom.chat/x?y=1&z=2" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mr_dotenv env;
        mr_err err = { 0 };
        mr_code rc = mr_dotenv_parse(cases[i].text, strlen(cases[i].text), "t.env", &env, &err);
        if (rc != MR_OK)
            fail_msg("case %zu (%s): %s", i, cases[i].text, err.msg);
        assert_int_equal(env.len, 1);
        assert_string_equal(env.entries[0].key, cases[i].key);
        assert_string_equal(env.entries[0].value, cases[i].value);
        assert_int_equal(env.entries[0].line, 1);
        assert_string_equal(env.path, "t.env");
        mr_dotenv_free(&env);
    }
}

static void test_parse_file_shape(void **state)
{
    (void)state;
    const char *text = "# heading\n\n   \nA=1\r\n# A=commented\nexport B='two'\n\tC = 3\nA=override";
    mr_dotenv env;
    mr_err err = { 0 };
    assert_int_equal(mr_dotenv_parse(text, strlen(text), NULL, &env, &err), MR_OK);
    assert_null(env.path);
    assert_int_equal(env.len, 4);
    static const struct {
        const char *key, *value;
        int line;
    } want[] = { { "A", "1", 4 }, { "B", "two", 6 }, { "C", "3", 7 }, { "A", "override", 8 } };
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(env.entries[i].key, want[i].key);
        assert_string_equal(env.entries[i].value, want[i].value);
        assert_int_equal(env.entries[i].line, want[i].line);
    }
    /* A later duplicate wins. */
    assert_string_equal(mr_dotenv_get(&env, "A"), "override");
    assert_string_equal(mr_dotenv_get(&env, "C"), "3");
    assert_null(mr_dotenv_get(&env, "D"));
    assert_null(mr_dotenv_get(NULL, "A"));
    mr_dotenv_free(&env);

    assert_int_equal(mr_dotenv_parse("", 0, "empty.env", &env, &err), MR_OK);
    assert_int_equal(env.len, 0);
    mr_dotenv_free(&env);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *msg;
    } cases[] = {
        { "A=1\nB='x\n", "f.env:2: unterminated single quote in the value of B" },
        { "A=\"x", "f.env:1: unterminated double quote in the value of A" },
        { "A=\"x\\\"", "f.env:1: unterminated double quote in the value of A" },
        { "1A=x", "f.env:1: expected KEY=VALUE or a # comment" },
        { "=x", "f.env:1: expected KEY=VALUE or a # comment" },
        { "\n\nA x", "f.env:3: expected KEY=VALUE or a # comment" },
        { "A-B=1", "f.env:1: expected KEY=VALUE or a # comment" },
        { "export", "f.env:1: expected KEY=VALUE or a # comment" },
        { "A=\"x\" y", "f.env:1: unexpected text after the closing quote of A" },
        { "A='x'y", "f.env:1: unexpected text after the closing quote of A" },
        { "# ok\r\nghp_pasted_token_alone\r\n", "f.env:2: expected KEY=VALUE or a # comment" },
        { "A=\"multi\nline\"", "f.env:1: unterminated double quote in the value of A" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mr_dotenv env;
        mr_err err = { 0 };
        assert_int_equal(mr_dotenv_parse(cases[i].text, strlen(cases[i].text), "f.env", &env, &err),
                         MR_EINVAL);
        assert_string_equal(err.msg, cases[i].msg);
        assert_int_equal(env.len, 0);
        assert_null(env.entries);
    }

    mr_dotenv env;
    mr_err err = { 0 };
    assert_int_equal(mr_dotenv_parse("A=1\nB=x\0y\n", 10, "f.env", &env, &err), MR_EINVAL);
    assert_string_equal(err.msg, "f.env:2: NUL byte in line");

    /* The value of a broken line never reaches the message: it may be a secret. */
    assert_int_equal(mr_dotenv_parse("TOKEN=\"hunter2", 14, NULL, &env, &err), MR_EINVAL);
    assert_string_equal(err.msg, "<text>:1: unterminated double quote in the value of TOKEN");
}

static void test_read(void **state)
{
    (void)state;
    mr_dotenv env;
    mr_err err = { 0 };
    assert_int_equal(mr_dotenv_read(g_env, true, &env, &err), MR_OK);
    assert_int_equal(env.len, 0);
    assert_null(env.path);
    mr_dotenv_free(&env);

    assert_int_equal(mr_dotenv_read(g_env, false, &env, &err), MR_ENOTFOUND);
    assert_non_null(strstr(err.msg, g_env));

    put_file("A=1\nB=\"unterminated\n", 0600);
    char want[200];
    snprintf(want, sizeof want, "%s:2: unterminated double quote in the value of B", g_env);
    assert_int_equal(mr_dotenv_read(g_env, true, &env, &err), MR_EINVAL);
    assert_string_equal(err.msg, want);

    put_file("A=1\nB=2\n", 0600);
    assert_int_equal(mr_dotenv_read(g_env, false, &env, &err), MR_OK);
    assert_string_equal(env.path, g_env);
    assert_string_equal(mr_dotenv_get(&env, "B"), "2");
    mr_dotenv_free(&env);
}

static void upsert_ok(const mr_dotenv_kv *kvs, size_t n)
{
    mr_err err = { 0 };
    mr_code rc = mr_dotenv_upsert(g_env, kvs, n, &err);
    if (rc != MR_OK)
        fail_msg("upsert: %s", err.msg);
}

static void test_upsert_keeps_other_lines(void **state)
{
    (void)state;
    put_file("# MindRoom settings\n"
             "FOO=1\n"
             "export MINDROOM_NAMESPACE=old\n"
             "  this line is not an assignment ###\n"
             "\n"
             "BAR = 2   # note\n"
             "  MINDROOM_LOCAL_CLIENT_ID = stale\n",
             0644);
    const mr_dotenv_kv kvs[] = {
        { "MINDROOM_NAMESPACE", "abcd1234" },
        { "MINDROOM_LOCAL_CLIENT_ID", "client-1" },
        { "MINDROOM_OWNER_USER_ID", "@owner:mindroom.chat" },
        { "GREETING", "hello world" },
    };
    upsert_ok(kvs, 4);
    assert_env_file("# MindRoom settings\n"
                    "FOO=1\n"
                    "MINDROOM_NAMESPACE=abcd1234\n"
                    "  this line is not an assignment ###\n"
                    "\n"
                    "BAR = 2   # note\n"
                    "MINDROOM_LOCAL_CLIENT_ID=client-1\n"
                    "MINDROOM_OWNER_USER_ID=@owner:mindroom.chat\n"
                    "GREETING='hello world'\n");
    /* The file was 0644 before; an upsert always leaves it 0600. */
    assert_env_mode(0600);
}

static void test_upsert_duplicates_replace_first_drop_later(void **state)
{
    (void)state;
    put_file("A=1\nB=2\nexport A=3\n", 0600);
    const mr_dotenv_kv kv = { "A", "9" };
    upsert_ok(&kv, 1);
    assert_env_file("A=9\nB=2\n");
}

static void test_upsert_trailing_newline_state(void **state)
{
    (void)state;
    put_file("A=1\nB=2", 0600);
    const mr_dotenv_kv b = { "B", "9" };
    upsert_ok(&b, 1);
    assert_env_file("A=1\nB=9");

    const mr_dotenv_kv c = { "C", "3" };
    upsert_ok(&c, 1);
    assert_env_file("A=1\nB=9\nC=3\n");
}

static void test_upsert_crlf_and_lookalikes(void **state)
{
    (void)state;
    /* AB and A_B must not match A; a commented-out A stays a comment. */
    put_file("A=1\r\nAB=2\r\n# A=old\r\nA_B=3\r\n", 0600);
    const mr_dotenv_kv kv = { "A", "new value" };
    upsert_ok(&kv, 1);
    assert_env_file("A='new value'\r\nAB=2\r\n# A=old\r\nA_B=3\r\n");
}

static void test_upsert_creates_file(void **state)
{
    (void)state;
    const mr_dotenv_kv kvs[] = { { "A", "1" }, { "EMPTY", "" } };
    upsert_ok(kvs, 2);
    assert_env_file("A=1\nEMPTY=\n");
    assert_env_mode(0600);
}

static void test_upsert_rejects_bad_input(void **state)
{
    (void)state;
    put_file("A=1\n", 0644);
    char want[200];
    mr_err err = { 0 };
    const mr_dotenv_kv bad_key = { "1BAD", "x" };
    assert_int_equal(mr_dotenv_upsert(g_env, &bad_key, 1, &err), MR_EINVAL);
    snprintf(want, sizeof want, "%s: invalid key '1BAD' (expected [A-Za-z_][A-Za-z0-9_]*)", g_env);
    assert_string_equal(err.msg, want);

    const mr_dotenv_kv twice[] = { { "A", "1" }, { "A", "2" } };
    assert_int_equal(mr_dotenv_upsert(g_env, twice, 2, &err), MR_EINVAL);
    snprintf(want, sizeof want, "%s: key A given twice", g_env);
    assert_string_equal(err.msg, want);

    /* Refused before any write: content and mode untouched. */
    assert_env_file("A=1\n");
    assert_env_mode(0644);
}

static void test_upsert_refuses_symlink(void **state)
{
    (void)state;
    char target[128], want[200];
    snprintf(target, sizeof target, "%s/real.env", g_dir);
    FILE *f = fopen(target, "w");
    assert_non_null(f);
    fputs("A=1\n", f);
    fclose(f);
    assert_int_equal(symlink(target, g_env), 0);

    const mr_dotenv_kv kv = { "A", "2" };
    mr_err err = { 0 };
    assert_int_equal(mr_dotenv_upsert(g_env, &kv, 1, &err), MR_EPERM);
    snprintf(want, sizeof want, "refusing to write %s: it is a symbolic link", g_env);
    assert_string_equal(err.msg, want);
    size_t added = 99;
    assert_int_equal(mr_dotenv_append_missing(g_env, &kv, 1, NULL, &added, &err), MR_EPERM);
    assert_int_equal(added, 0);

    char *data;
    size_t len;
    assert_int_equal(mr_fs_read_all(target, 100, &data, &len, &err), MR_OK);
    assert_string_equal(data, "A=1\n");
    free(data);
}

static const char *const tricky_values[] = {
    "plain",
    "",
    "a b",
    " leading and trailing ",
    "it's",
    "say \"hi\"",
    "#hash",
    "a #b",
    "$HOME and ${PATH}",
    "line1\nline2\n",
    "tab\there",
    "cr\r",
    "back\\slash",
    "ends with \\",
    "\\n is not a newline",
    "all '\"$\\\n\t\r#` at once",
    "caf\xc3\xa9 \xe2\x9c\x93",
    "a=b",
    "https://mindroom.chat/x?y=1&z=2",
    "`whoami`",
    "\x01\x7f",
};

static void test_format_value(void **state)
{
    (void)state;
    static const struct {
        const char *value, *want;
    } cases[] = {
        { "abc", "abc" },
        { "", "" },
        { "@owner:mindroom.chat", "@owner:mindroom.chat" },
        { "https://mindroom.chat", "https://mindroom.chat" },
        { "a b", "'a b'" },
        { "$HOME", "'$HOME'" },
        { "#x", "'#x'" },
        { "it's", "\"it's\"" },
        { "a\nb", "\"a\\nb\"" },
        { "q\"$\\'", "\"q\\\"\\$\\\\'\"" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = mr_dotenv_format_value(cases[i].value);
        assert_non_null(got);
        assert_string_equal(got, cases[i].want);
        free(got);
    }
}

static void test_quoting_round_trip(void **state)
{
    (void)state;
    size_t n = sizeof tricky_values / sizeof tricky_values[0];
    mr_dotenv_kv kvs[sizeof tricky_values / sizeof tricky_values[0]];
    char keys[sizeof tricky_values / sizeof tricky_values[0]][16];
    for (size_t i = 0; i < n; i++) {
        snprintf(keys[i], sizeof keys[i], "K%zu", i);
        kvs[i] = (mr_dotenv_kv){ keys[i], tricky_values[i] };
    }
    put_file("# existing\nK0=old\n", 0600);
    upsert_ok(kvs, n);

    mr_dotenv env;
    mr_err err = { 0 };
    assert_int_equal(mr_dotenv_read(g_env, false, &env, &err), MR_OK);
    assert_int_equal(env.len, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(mr_dotenv_get(&env, keys[i]), tricky_values[i]);
    mr_dotenv_free(&env);

    /* A second upsert replaces every quoted line in place: same text again. */
    char *first;
    size_t len;
    assert_int_equal(mr_fs_read_all(g_env, 1 << 20, &first, &len, &err), MR_OK);
    upsert_ok(kvs, n);
    assert_env_file(first);
    free(first);
}

static void test_append_missing(void **state)
{
    (void)state;
    put_file("MATRIX_HOMESERVER=https://matrix.example.org\n# keep me\nOPENAI_API_KEY=sk", 0644);
    const mr_dotenv_kv kvs[] = {
        { "MATRIX_HOMESERVER", "https://mindroom.chat" },
        { "MATRIX_SERVER_NAME", "mindroom.chat" },
        { "MINDROOM_NAMESPACE", "" },
    };
    size_t added = 0;
    mr_err err = { 0 };
    assert_int_equal(mr_dotenv_append_missing(g_env, kvs, 3, "# Hosted Matrix defaults for mindroom.chat",
                                              &added, &err),
                     MR_OK);
    assert_int_equal(added, 2);
    const char *want = "MATRIX_HOMESERVER=https://matrix.example.org\n# keep me\nOPENAI_API_KEY=sk\n"
                       "\n# Hosted Matrix defaults for mindroom.chat\n"
                       "MATRIX_SERVER_NAME=mindroom.chat\nMINDROOM_NAMESPACE=\n";
    assert_env_file(want);
    assert_env_mode(0600);

    /* Everything present now: nothing added and the file left as it is. */
    assert_int_equal(mr_dotenv_append_missing(g_env, kvs, 3, "# Hosted", &added, &err), MR_OK);
    assert_int_equal(added, 0);
    assert_env_file(want);
}

static void test_append_missing_creates_file(void **state)
{
    (void)state;
    const mr_dotenv_kv kvs[] = { { "A", "1" }, { "B", "x y" } };
    size_t added = 0;
    mr_err err = { 0 };
    assert_int_equal(mr_dotenv_append_missing(g_env, kvs, 2, "Defaults", &added, &err), MR_OK);
    assert_int_equal(added, 2);
    assert_env_file("# Defaults\nA=1\nB='x y'\n");
    assert_env_mode(0600);

    /* An `export` line counts as present; no heading when NULL. */
    put_file("export A=0\n\n", 0600);
    assert_int_equal(mr_dotenv_append_missing(g_env, kvs, 2, NULL, &added, &err), MR_OK);
    assert_int_equal(added, 1);
    assert_env_file("export A=0\n\nB='x y'\n");
}

#define PREC_KEY "MR_TEST_DOTENV_PRECEDENCE"

static void test_precedence(void **state)
{
    (void)state;
    const char *text = PREC_KEY "=from-dotenv\nOTHER=x\n";
    mr_dotenv env;
    mr_err err = { 0 };
    assert_int_equal(mr_dotenv_parse(text, strlen(text), NULL, &env, &err), MR_OK);

    assert_int_equal(setenv(PREC_KEY, "from-env", 1), 0);
    assert_string_equal(mr_setting("from-flag", PREC_KEY, &env, "default"), "from-flag");
    assert_string_equal(mr_setting("", PREC_KEY, &env, "default"), "");
    assert_string_equal(mr_setting(NULL, PREC_KEY, &env, "default"), "from-env");
    assert_int_equal(setenv(PREC_KEY, "", 1), 0);
    assert_string_equal(mr_setting(NULL, PREC_KEY, &env, "default"), "");
    assert_int_equal(unsetenv(PREC_KEY), 0);
    assert_string_equal(mr_setting(NULL, PREC_KEY, &env, "default"), "from-dotenv");
    assert_string_equal(mr_setting(NULL, PREC_KEY, NULL, "default"), "default");
    assert_null(mr_setting(NULL, PREC_KEY, NULL, NULL));
    assert_string_equal(mr_setting(NULL, "MR_TEST_DOTENV_ABSENT", &env, "default"), "default");
    mr_dotenv_free(&env);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_file_shape),
        cmocka_unit_test(test_parse_errors),
        T(test_read),
        T(test_upsert_keeps_other_lines),
        T(test_upsert_duplicates_replace_first_drop_later),
        T(test_upsert_trailing_newline_state),
        T(test_upsert_crlf_and_lookalikes),
        T(test_upsert_creates_file),
        T(test_upsert_rejects_bad_input),
        T(test_upsert_refuses_symlink),
        cmocka_unit_test(test_format_value),
        T(test_quoting_round_trip),
        T(test_append_missing),
        T(test_append_missing_creates_file),
        cmocka_unit_test(test_precedence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
