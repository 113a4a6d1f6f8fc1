/* fuzz_jwt_json.c -- libFuzzer entry: any bytes through the JWT JSON parser (src/json.c) and
 * through jansson with JSON_REJECT_DUPLICATES, which it replaced on the verify path; aborts
 * where they disagree on taking an object, or on a member's value. Text with a NUL byte is only
 * held to our refusing it where jansson does: jansson 2.14 skips a NUL after a literal
 * ("false\0,null" loads), which we refuse. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "fuzz_text.h"
#include "jwt_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = mr_fuzz_text(data, size);
    if (!text)
        return 0;
    mr_jwt_json ours;
    char why[128];
    mr_jwt_json_status st = mr_jwt_json_parse(text, size, &ours, why, sizeof why);
    json_error_t je;
    json_t *theirs = json_loadb(text, size, JSON_REJECT_DUPLICATES, &je);
    if (st == MR_JWT_JSON_NOMEM) {
        json_decref(theirs);
        free(text);
        return 0;
    }
    bool nul = memchr(data, '\0', size) != NULL;
    if ((st == MR_JWT_JSON_OK) != json_is_object(theirs) && !(nul && st != MR_JWT_JSON_OK))
        abort();
    if (st == MR_JWT_JSON_OK) {
        if (ours.n != json_object_size(theirs))
            abort();
        for (size_t i = 0; i < ours.n; i++) {
            const mr_jwt_json_member *m = &ours.members[i];
            json_t *t = json_object_get(theirs, m->name);
            bool same = t && (m->v.kind != MR_JWT_JSON_STRING ||
                              (json_is_string(t) && strcmp(json_string_value(t), m->v.str) == 0));
            same = same && (m->v.kind != MR_JWT_JSON_NUMBER ||
                            (json_is_number(t) && json_number_value(t) == m->v.num));
            if (!same)
                abort();
        }
        mr_jwt_json_free(&ours);
    }
    json_decref(theirs);
    free(text);
    return 0;
}
