/* test_tz.c -- time zones from the system's tzdata, checked against offsets Python's zoneinfo
 * gives for the same instants: inside the files' transitions, past them (the footer rule, both
 * hemispheres), the hour clocks skip and the hour they repeat; bad names and broken files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mindroom/fsutil.h"
#include "mindroom/tz.h"

static mr_tz *open_tz(const char *name)
{
    mr_tz *tz = NULL;
    mr_err err = {0};
    if (mr_tz_open(name, &tz, &err) != MR_OK)
        fail_msg("%s: %s", name, err.msg);
    return tz;
}

static void expect_offset(const char *name, long long utc_s, long want)
{
    mr_tz *tz = open_tz(name);
    long got = mr_tz_offset(tz, utc_s);
    mr_tz_free(tz);
    if (got != want)
        fail_msg("%s at %lld: offset %ld, wanted %ld", name, utc_s, got, want);
}

static void test_offsets(void **state)
{
    (void)state;
    expect_offset("UTC", 1768478400, 0);
    expect_offset(NULL, 1768478400, 0);
    expect_offset("America/New_York", 1768478400, -18000);       /* 2026-01-15 */
    expect_offset("America/New_York", 1782907200, -14400);       /* 2026-07-01 */
    expect_offset("America/New_York", 1772953140, -18000);       /* 2026-03-08 06:59Z */
    expect_offset("America/New_York", 1772953200, -14400);       /* 07:00Z: clocks go forward */
    /* After the files' last transition (2037): the footer rule. */
    expect_offset("America/New_York", 2540289600, -14400);       /* 2050-07-01 */
    expect_offset("America/New_York", 2553508800, -18000);       /* 2050-12-01 */
    expect_offset("Australia/Sydney", 2840140800, 39600);        /* 2060-01-01: summer in the south */
    expect_offset("Australia/Sydney", 2855865600, 36000);        /* 2060-07-01 */
    expect_offset("Asia/Kolkata", 1767225600, 19800);
    expect_offset("Europe/Berlin", 3163366740, 3600);            /* 2070-03-30 00:59Z */
    expect_offset("Europe/Berlin", 3163366800, 7200);            /* 01:00Z, the last Sunday of March */
    expect_offset("Europe/Berlin", 3163449600, 7200);
}

static void test_local_instants(void **state)
{
    (void)state;
    mr_tz *ny = open_tz("America/New_York");
    /* 2026-03-08 02:30 does not happen in New York: read as EST, it is 07:30Z. */
    assert_int_equal(mr_tz_instant(ny, 1772937000, 0), 1772955000);
    /* 2026-11-01 01:30 happens twice: first as EDT, then as EST. */
    assert_int_equal(mr_tz_instant(ny, 1793496600, 0), 1793511000);
    assert_int_equal(mr_tz_instant(ny, 1793496600, 1793511000), 1793514600);
    assert_int_equal(mr_tz_instant(ny, 1793496600, 1793514600), -1);
    mr_tz_free(ny);
    mr_tz *utc = open_tz("UTC");
    assert_int_equal(mr_tz_instant(utc, 1000, 999), 1000);
    assert_int_equal(mr_tz_instant(utc, 1000, 1000), -1);
    mr_tz_free(utc);
}

static void test_civil(void **state)
{
    (void)state;
    assert_int_equal(mr_tz_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(mr_tz_days_from_civil(2000, 3, 1), 11017);
    int y, m, d;
    mr_tz_civil_from_days(11016, &y, &m, &d);
    assert_true(y == 2000 && m == 2 && d == 29);
    mr_tz_civil_from_days(-1, &y, &m, &d);
    assert_true(y == 1969 && m == 12 && d == 31);
    assert_int_equal(mr_tz_weekday(0), 4);
    assert_int_equal(mr_tz_weekday(-1), 3);
    assert_int_equal(mr_tz_month_days(2100, 2), 28);
    assert_int_equal(mr_tz_month_days(2000, 2), 29);
}

static void expect_bad(const char *name, mr_code code, const char *why)
{
    mr_tz *tz = (mr_tz *)1;
    mr_err err = {0};
    assert_int_equal(mr_tz_open(name, &tz, &err), code);
    assert_null(tz);
    if (!strstr(err.msg, why))
        fail_msg("%s: got \"%s\", wanted \"%s\"", name, err.msg, why);
}

static void test_bad_names_and_files(void **state)
{
    (void)state;
    expect_bad("Europe/Berln", MR_ENOTFOUND, "time zone 'Europe/Berln' is unknown here");
    expect_bad("../../etc/passwd", MR_EINVAL, "is not a time zone name: write an IANA name");
    expect_bad("/etc/localtime", MR_EINVAL, "is not a time zone name");
    expect_bad("Europe/Berlin;rm", MR_EINVAL, "is not a time zone name");
    expect_bad("Europe/", MR_EINVAL, "is not a time zone name");
    /* A file that is not TZif, and one cut short, in a zone directory of our own. */
    char dir[] = "/tmp/mr-tz-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    mr_err err = {0};
    snprintf(path, sizeof path, "%s/Nowhere", dir);
    assert_int_equal(mr_fs_write_atomic(path, "hello", 5, 0644, true, &err), MR_OK);
    char *whole = NULL;
    size_t len = 0;
    assert_int_equal(mr_fs_read_all("/usr/share/zoneinfo/Europe/Berlin", 1 << 20, &whole, &len, &err), MR_OK);
    snprintf(path, sizeof path, "%s/Cut", dir);
    assert_int_equal(mr_fs_write_atomic(path, whole, 200, 0644, true, &err), MR_OK);
    free(whole);
    setenv("TZDIR", dir, 1);
    expect_bad("Nowhere", MR_EIO, "is not a TZif file");
    expect_bad("Cut", MR_EIO, "is cut short");
    unsetenv("TZDIR");
    snprintf(path, sizeof path, "%s/Nowhere", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/Cut", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    if (access("/usr/share/zoneinfo/America/New_York", R_OK) != 0 && !getenv("TZDIR")) {
        fprintf(stderr, "tzdata is not installed (/usr/share/zoneinfo): skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_local_instants),
        cmocka_unit_test(test_civil),
        cmocka_unit_test(test_bad_names_and_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
