/* test_iostreams.c -- loading libolm leaves the C++ standard streams unconstructed: its
 * iostream initializer binds to the no-op of src/iostream_init.c, not libstdc++'s. */
#include "olm_test.h"

#include <dlfcn.h>

static void test_cout_not_constructed(void **state)
{
    (void)state;
    /* std::cout is static storage in libstdc++: all zero until ios_base::Init constructs it,
     * which sets its vtable pointer first. */
    void *const *cout = dlsym(RTLD_DEFAULT, "_ZSt4cout");
    assert_non_null(cout);
    assert_null(*cout);
    /* libolm is loaded and works. */
    mr_olm_account *a = NULL;
    mr_err err = {0};
    assert_ok(mr_olm_account_new(&a, &err), err);
    mr_olm_account_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cout_not_constructed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
