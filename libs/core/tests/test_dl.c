/* test_dl.c -- mr_dl_load binds functions of a library found at run time, and names the
 * library and its package when the library or one of its functions is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mindroom/dl.h"

typedef double (*math_fn)(double);

static void test_binds_functions(void **state)
{
    (void)state;
    math_fn cos_fn = NULL, sqrt_fn = NULL;
    const mr_dl_sym syms[] = {{"cos", (void **)&cos_fn}, {"sqrt", (void **)&sqrt_fn}};
    mr_err err = {0};
    assert_int_equal(mr_dl_load("libm.so.6", "libc6", syms, 2, &err), MR_OK);
    assert_non_null(cos_fn);
    assert_true(cos_fn(0.0) == 1.0);
    assert_true(sqrt_fn(9.0) == 3.0);
}

static void test_missing_library_names_package(void **state)
{
    (void)state;
    math_fn fn = NULL;
    const mr_dl_sym syms[] = {{"cos", (void **)&fn}};
    mr_err err = {0};
    assert_int_equal(mr_dl_load("libmr-absent.so.7", "libmr-absent7", syms, 1, &err), MR_EUNAVAIL);
    assert_null(fn);
    assert_non_null(strstr(err.msg, "cannot load libmr-absent.so.7 ("));
    assert_non_null(strstr(err.msg, "): install the libmr-absent7 package"));
}

static void test_missing_function_binds_nothing(void **state)
{
    (void)state;
    math_fn cos_fn = NULL, absent = NULL;
    const mr_dl_sym syms[] = {{"cos", (void **)&cos_fn}, {"mr_absent_function", (void **)&absent}};
    mr_err err = {0};
    assert_int_equal(mr_dl_load("libm.so.6", "libc6", syms, 2, &err), MR_EUNAVAIL);
    assert_null(cos_fn);
    assert_null(absent);
    assert_string_equal(err.msg, "libm.so.6 has no mr_absent_function: install a newer libc6 package");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binds_functions),
        cmocka_unit_test(test_missing_library_names_package),
        cmocka_unit_test(test_missing_function_binds_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
