/* proto.h -- the validators of the bus messages, generated from proto/schemas at build time:
 * one mr_proto_check_<type> per schema (mindroom/proto_check.h) and a lookup by type name. */
#ifndef MINDROOM_PROTO_H
#define MINDROOM_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include "mindroom/err.h"
#include "mindroom/proto_check.h"

/* Checks msg against proto/schemas/<type>.schema.json: MR_OK, or MR_EINVAL with the first
 * problem prefixed with its field path ("event.sender: '@x' is not a valid user ID: ...",
 * "txn_id: missing"). A type with no schema is MR_EINVAL too. Strings the schema types may not
 * hold a NUL character (services read them as C strings); lengths count characters as JSON
 * Schema does; integers are JSON integers (1.0 is not one). */
mr_code mr_proto_check(const char *type, const json_t *msg, mr_err *err);

/* The type names that have a schema, for tests and fuzzing: *n of them. */
const char *mr_proto_type_name(size_t i);
size_t mr_proto_type_count(void);

#endif
