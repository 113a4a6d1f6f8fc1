/* tp_check.c -- fails a cmocka test on a step that did not work (tp_check.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tp_check.h"

void mr_tp_check(mr_code rc, const mr_err *err)
{
    if (rc != MR_OK)
        fail_msg("%s", err->msg);
}

void mr_tp_check_step(mr_code rc, const mr_err *err, const char *what)
{
    if (rc != MR_OK)
        fail_msg("%s: %s", what, err->msg);
}
