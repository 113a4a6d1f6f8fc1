/* test_fsutil.c -- atomic writes (mode, no-overwrite, symlinks, failures), capped reads, mkdirs, dirname. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mindroom/fsutil.h"

static char g_dir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/mr_fsutil_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(g_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void in_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static void write_plain(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void assert_file_is(const char *path, const char *want)
{
    char *data;
    size_t len;
    mr_err err = { 0 };
    assert_int_equal(mr_fs_read_all(path, 1 << 20, &data, &len, &err), MR_OK);
    assert_string_equal(data, want);
    assert_int_equal(len, strlen(want));
    free(data);
}

/* Entries in the test directory: a leftover temp file would show up here. */
static int count_entries(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_write_creates_with_mode(void **state)
{
    (void)state;
    char path[128];
    in_dir(path, sizeof path, "secret.env");
    mr_err err = { 0 };
    assert_int_equal(mr_fs_write_atomic(path, "A=1\n", 4, 0600, false, &err), MR_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_file_is(path, "A=1\n");
    assert_int_equal(count_entries(), 1);

    /* fchmod is not subject to the umask, so a wider mode is kept exactly too. */
    in_dir(path, sizeof path, "public.txt");
    assert_int_equal(mr_fs_write_atomic(path, "x", 1, 0644, false, &err), MR_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_write_empty(void **state)
{
    (void)state;
    char path[128];
    in_dir(path, sizeof path, "empty");
    mr_err err = { 0 };
    assert_int_equal(mr_fs_write_atomic(path, "", 0, 0600, false, &err), MR_OK);
    assert_file_is(path, "");
}

static void test_write_no_overwrite(void **state)
{
    (void)state;
    char path[128], want[160];
    in_dir(path, sizeof path, "config.yaml");
    write_plain(path, "old");
    mr_err err = { 0 };
    assert_int_equal(mr_fs_write_atomic(path, "new", 3, 0600, false, &err), MR_EEXISTS);
    assert_int_equal(err.code, MR_EEXISTS);
    snprintf(want, sizeof want, "%s already exists", path);
    assert_string_equal(err.msg, want);
    assert_file_is(path, "old");
    assert_int_equal(count_entries(), 1);

    assert_int_equal(mr_fs_write_atomic(path, "new", 3, 0600, true, &err), MR_OK);
    assert_file_is(path, "new");
    assert_int_equal(count_entries(), 1);
}

static void test_write_refuses_symlink(void **state)
{
    (void)state;
    char target[128], link_path[128], want[200];
    in_dir(target, sizeof target, "target");
    in_dir(link_path, sizeof link_path, "link");
    write_plain(target, "original");
    assert_int_equal(symlink(target, link_path), 0);

    for (int overwrite = 0; overwrite <= 1; overwrite++) {
        mr_err err = { 0 };
        assert_int_equal(mr_fs_write_atomic(link_path, "evil", 4, 0600, overwrite, &err), MR_EPERM);
        snprintf(want, sizeof want, "refusing to write %s: it is a symbolic link", link_path);
        assert_string_equal(err.msg, want);
    }
    assert_file_is(target, "original");
    struct stat st;
    assert_int_equal(lstat(link_path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(count_entries(), 2);
}

static void test_write_refuses_dangling_symlink(void **state)
{
    (void)state;
    char target[128], link_path[128];
    in_dir(target, sizeof target, "not-there");
    in_dir(link_path, sizeof link_path, "dangling");
    assert_int_equal(symlink(target, link_path), 0);
    mr_err err = { 0 };
    assert_int_equal(mr_fs_write_atomic(link_path, "x", 1, 0600, true, &err), MR_EPERM);
    assert_false(mr_fs_exists(target));
    assert_true(mr_fs_exists(link_path));
}

static void test_write_missing_dir(void **state)
{
    (void)state;
    char path[128], dir[128], want[400];
    in_dir(path, sizeof path, "nope/deeper/.env");
    in_dir(dir, sizeof dir, "nope/deeper");
    mr_err err = { 0 };
    assert_int_equal(mr_fs_write_atomic(path, "x", 1, 0600, true, &err), MR_ENOTFOUND);
    snprintf(want, sizeof want, "writing %s: creating a temp file in %s: No such file or directory", path,
             dir);
    assert_string_equal(err.msg, want);
    assert_int_equal(count_entries(), 0);
}

static void test_write_failure_removes_temp(void **state)
{
    (void)state;
    /* A directory at path makes the final rename fail after the temp file was written. */
    char path[128];
    in_dir(path, sizeof path, "occupied");
    assert_int_equal(mkdir(path, 0700), 0);
    mr_err err = { 0 };
    assert_int_equal(mr_fs_write_atomic(path, "x", 1, 0600, true, &err), MR_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(count_entries(), 1);
}

static void test_write_rejects_directory_path(void **state)
{
    (void)state;
    char path[128];
    in_dir(path, sizeof path, "sub/");
    mr_err err = { 0 };
    assert_int_equal(mr_fs_write_atomic(path, "x", 1, 0600, true, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, path));
}

static void test_read_cap(void **state)
{
    (void)state;
    char path[128], want[200];
    char body[101];
    memset(body, 'a', 100);
    body[100] = '\0';
    in_dir(path, sizeof path, "hundred");
    write_plain(path, body);

    char *data;
    size_t len;
    mr_err err = { 0 };
    assert_int_equal(mr_fs_read_all(path, 100, &data, &len, &err), MR_OK);
    assert_int_equal(len, 100);
    assert_string_equal(data, body);
    free(data);

    assert_int_equal(mr_fs_read_all(path, 99, &data, &len, &err), MR_EINVAL);
    assert_null(data);
    snprintf(want, sizeof want, "reading %s: file is larger than the limit of 99 bytes", path);
    assert_string_equal(err.msg, want);
}

static void test_read_large_file(void **state)
{
    (void)state;
    /* Bigger than the first buffer, so the growth path runs. */
    char path[128];
    in_dir(path, sizeof path, "large");
    size_t n = 100000;
    char *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + i % 26);
    mr_err err = { 0 };
    assert_int_equal(mr_fs_write_atomic(path, body, n, 0600, false, &err), MR_OK);
    char *data;
    size_t len;
    assert_int_equal(mr_fs_read_all(path, n, &data, &len, &err), MR_OK);
    assert_int_equal(len, n);
    assert_memory_equal(data, body, n);
    assert_int_equal(data[n], '\0');
    free(data);
    free(body);
}

static void test_read_missing(void **state)
{
    (void)state;
    char path[128], want[200];
    in_dir(path, sizeof path, "absent");
    char *data;
    size_t len;
    mr_err err = { 0 };
    assert_int_equal(mr_fs_read_all(path, 10, &data, &len, &err), MR_ENOTFOUND);
    snprintf(want, sizeof want, "opening %s: No such file or directory", path);
    assert_string_equal(err.msg, want);
}

static void test_mkdirs(void **state)
{
    (void)state;
    char path[128], file[128];
    in_dir(path, sizeof path, "a//b/c/");
    mr_err err = { 0 };
    assert_int_equal(mr_fs_mkdirs(path, 0700, &err), MR_OK);
    in_dir(path, sizeof path, "a/b/c");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Existing directories are fine. */
    assert_int_equal(mr_fs_mkdirs(path, 0700, &err), MR_OK);

    in_dir(file, sizeof file, "a/file");
    write_plain(file, "x");
    in_dir(path, sizeof path, "a/file/sub");
    assert_int_equal(mr_fs_mkdirs(path, 0700, &err), MR_EEXISTS);
    char want[300];
    snprintf(want, sizeof want, "creating directory %s: a file of that name exists", file);
    assert_string_equal(err.msg, want);
    assert_int_equal(mr_fs_mkdirs("", 0700, &err), MR_EINVAL);
}

static void test_dirname(void **state)
{
    (void)state;
    static const struct {
        const char *path, *want;
    } cases[] = {
        { "a/b/c", "a/b" }, { "c", "." }, { "/c", "/" }, { "/", "/" }, { "a/b/", "a" },
        { "//a", "/" },     { "", "." },  { "a//b", "a" }, { "./x", "." }, { "/etc/mindroom/.env", "/etc/mindroom" },
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mr_fs_dirname(cases[i].path, out, sizeof out);
        assert_string_equal(out, cases[i].want);
    }
    mr_fs_dirname("abc/def", out, 3);
    assert_string_equal(out, "ab");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_write_creates_with_mode),
        T(test_write_empty),
        T(test_write_no_overwrite),
        T(test_write_refuses_symlink),
        T(test_write_refuses_dangling_symlink),
        T(test_write_missing_dir),
        T(test_write_failure_removes_temp),
        T(test_write_rejects_directory_path),
        T(test_read_cap),
        T(test_read_large_file),
        T(test_read_missing),
        T(test_mkdirs),
        cmocka_unit_test(test_dirname),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
