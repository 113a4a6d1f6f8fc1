/* proto.c -- the generated validators looked up by message type. */
#include "mindroom/proto.h"

#include <string.h>

#include "proto_internal.h"

mr_code mr_proto_check(const char *type, const json_t *msg, mr_err *err)
{
    for (size_t i = 0; type && i < proto_n_types; i++)
        if (strcmp(proto_types[i].name, type) == 0)
            return proto_types[i].check(msg, err);
    return mr_err_set(err, MR_EINVAL, "type: no schema for \"%s\" in proto/schemas", type ? type : "(none)");
}

const char *mr_proto_type_name(size_t i)
{
    return i < proto_n_types ? proto_types[i].name : NULL;
}

size_t mr_proto_type_count(void)
{
    return proto_n_types;
}
