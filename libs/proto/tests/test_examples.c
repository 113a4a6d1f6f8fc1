/* test_examples.c -- every proto/examples line through the generated validators: each valid
 * message passes, each invalid one fails naming the field its "// <field>: why" line names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/proto.h"

/* Runs every line of examples/<type>.<kind>.jsonl; returns how many messages it checked. */
static size_t run_file(const char *type, const char *kind)
{
    const char *dir = getenv("MR_PROTO_EXAMPLES");
    assert_non_null(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s.jsonl", dir, type, kind);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("%s: cannot open", path);
    char *line = NULL, field[256] = "";
    size_t cap = 0, checked = 0;
    ssize_t n;
    for (int lineno = 1; (n = getline(&line, &cap, f)) >= 0; lineno++) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (strncmp(line, "// ", 3) == 0) {
            /* The field path is the comment's text up to its first ": ". */
            const char *end = strstr(line + 3, ": ");
            snprintf(field, sizeof field, "%.*s: ", end ? (int)(end - line - 3) : 0, line + 3);
            continue;
        }
        if (n == 0)
            continue;
        json_error_t jerr;
        json_t *msg = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
        if (!msg)
            fail_msg("%s:%d: not JSON: %s", path, lineno, jerr.text);
        mr_err err = {0};
        mr_code rc = mr_proto_check(type, msg, &err);
        json_decref(msg);
        if (strcmp(kind, "valid") == 0 && rc != MR_OK)
            fail_msg("%s:%d: should be valid: %s", path, lineno, err.msg);
        if (strcmp(kind, "invalid") == 0) {
            if (rc != MR_EINVAL)
                fail_msg("%s:%d: should be invalid but passed", path, lineno);
            if (!field[0] || strncmp(err.msg, field, strlen(field)) != 0)
                fail_msg("%s:%d: the error should name '%s' but says: %s", path, lineno, field, err.msg);
            field[0] = '\0';
        }
        checked++;
    }
    free(line);
    fclose(f);
    return checked;
}

static void test_every_example_behaves(void **state)
{
    (void)state;
    assert_true(mr_proto_type_count() >= 8);
    for (size_t i = 0; i < mr_proto_type_count(); i++) {
        const char *type = mr_proto_type_name(i);
        assert_true(run_file(type, "valid") > 0);
        assert_true(run_file(type, "invalid") > 0);
    }
    assert_null(mr_proto_type_name(mr_proto_type_count()));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_example_behaves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
