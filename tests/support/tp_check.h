/* tp_check.h -- one line for a cmocka test's steps that must work for the test to go on. */
#ifndef MINDROOM_TEST_TP_CHECK_H
#define MINDROOM_TEST_TP_CHECK_H

#include "mindroom/err.h"

/* Fails the running test with err's message when rc is not MR_OK. */
void mr_tp_check(mr_code rc, const mr_err *err);
/* The same, with the step that failed named before err's message. */
void mr_tp_check_step(mr_code rc, const mr_err *err, const char *what);

#endif
