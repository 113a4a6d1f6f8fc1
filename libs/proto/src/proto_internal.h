/* proto_internal.h -- what the generated validators (proto_check.c) are written with: the path of
 * the value being checked and one helper per schema keyword (proto_rules.c). Each helper returns
 * 0 when the value passes and -1 after writing "<path>: <problem>" into err. */
#ifndef MINDROOM_PROTO_INTERNAL_H
#define MINDROOM_PROTO_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "mindroom/err.h"

/* Longest field path kept; a longer one is cut, which still names where it starts. */
#define PROTO_PATH_MAX 200

typedef struct proto_path {
    char text[PROTO_PATH_MAX + 1];
    size_t len;
} proto_path;

typedef int (*proto_check_fn)(const json_t *v, proto_path *p, mr_err *err);

typedef enum proto_json_type {
    PROTO_OBJECT,
    PROTO_STRING,
    PROTO_INTEGER,
    PROTO_BOOLEAN,
    PROTO_ARRAY,
} proto_json_type;

typedef struct proto_entry {
    const char *name;
    mr_code (*check)(const json_t *msg, mr_err *err);
} proto_entry;

/* The generated table of every type with a schema. */
extern const proto_entry proto_types[];
extern const size_t proto_n_types;

/* Runs a message's root check with an empty path: MR_OK or MR_EINVAL. */
mr_code proto_run(const json_t *msg, proto_check_fn check, mr_err *err);
/* Whether v passes check, without a message: the `if` of an allOf. */
bool proto_holds(const json_t *v, proto_check_fn check, const proto_path *p);

int proto_type(const json_t *v, proto_json_type t, const proto_path *p, mr_err *err);
int proto_const_bool(const json_t *v, bool want, const proto_path *p, mr_err *err);
int proto_const_int(const json_t *v, json_int_t want, const proto_path *p, mr_err *err);
int proto_const_string(const json_t *v, const char *want, const proto_path *p, mr_err *err);
int proto_enum(const json_t *v, const char *const *allowed, size_t n, const proto_path *p, mr_err *err);
/* minLength/maxLength in characters; max < 0 is no maximum. */
int proto_length(const json_t *v, long min, long max, const proto_path *p, mr_err *err);
/* ^[<chars>]{min,max}$ (max < 0: no maximum); pattern is quoted in the message. */
int proto_charset(const char *s, const char *chars, long min, long max, const char *pattern,
                  const proto_path *p, mr_err *err);
int proto_user_id(const char *s, const proto_path *p, mr_err *err);
int proto_room_id(const char *s, const proto_path *p, mr_err *err);
int proto_room_alias(const char *s, const proto_path *p, mr_err *err);
int proto_event_id(const char *s, const proto_path *p, mr_err *err);
int proto_range(const json_t *v, bool has_min, json_int_t min, bool has_max, json_int_t max,
                const proto_path *p, mr_err *err);
/* "<path>.<key>: missing", with " (required when <when>)" when when is not NULL. */
int proto_missing(const proto_path *p, const char *key, const char *when, mr_err *err);
/* obj.key checked by check under its own path; absent is a failure only when required. */
int proto_field(const json_t *obj, const char *key, bool required, proto_check_fn check, proto_path *p,
                mr_err *err);
/* additionalProperties false, and additionalProperties with a schema: the fields of obj not in
 * known[0..n). */
int proto_no_other_fields(const json_t *obj, const char *const *known, size_t n, const proto_path *p,
                          mr_err *err);
int proto_other_fields(const json_t *obj, const char *const *known, size_t n, proto_check_fn check,
                       proto_path *p, mr_err *err);
int proto_items(const json_t *arr, proto_check_fn check, proto_path *p, mr_err *err);
int proto_unique(const json_t *arr, const proto_path *p, mr_err *err);

#endif
