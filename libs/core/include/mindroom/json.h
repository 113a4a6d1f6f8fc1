/* json.h -- lookups in jansson documents, one way for every library and service. */
#ifndef MINDROOM_JSON_H
#define MINDROOM_JSON_H

#include <jansson.h>
#include <stdbool.h>

/* Whether array holds the string s. False for anything but an array and for a NULL s (a value
 * read with json_string_value from what a peer sent); entries that are not strings never match. */
bool mr_json_array_has(const json_t *array, const char *s);

/* A new array of the member key of each element of array, in order (a list of IDs out of a
 * list of objects). All or nothing: NULL when array is not an array, an element lacks the member
 * or has one ok refuses, or memory runs out. */
json_t *mr_json_array_pluck(const json_t *array, const char *key, bool (*ok)(const json_t *member));

#endif
