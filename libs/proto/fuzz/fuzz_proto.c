/* fuzz_proto.c -- libFuzzer target: the generated validators never crash on any JSON, answer
 * MR_OK or MR_EINVAL only, and a refusal always names a field ("<path>: <problem>"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* JSON_ALLOW_NUL: messages made in memory can hold what mr_msg_load would refuse. */
    json_t *msg = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!msg)
        return 0;
    for (size_t i = 0; i < mr_proto_type_count(); i++) {
        mr_err err = {0};
        mr_code rc = mr_proto_check(mr_proto_type_name(i), msg, &err);
        if (rc != MR_OK && (rc != MR_EINVAL || !strstr(err.msg, ": ")))
            abort();
        /* A message valid as one type is an object of that type. */
        if (rc == MR_OK && (!json_is_object(msg) ||
                            strcmp(json_string_value(json_object_get(msg, "type")), mr_proto_type_name(i)) != 0))
            abort();
    }
    json_decref(msg);
    return 0;
}
