/* json.c -- lookups in jansson documents, one way for every library and service. */
#include "mindroom/json.h"

#include <string.h>

bool mr_json_array_has(const json_t *array, const char *s)
{
    for (size_t i = 0; i < json_array_size(array); i++) {
        const char *v = json_string_value(json_array_get(array, i));
        if (v && s && strcmp(v, s) == 0)
            return true;
    }
    return false;
}
