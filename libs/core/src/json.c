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

json_t *mr_json_array_pluck(const json_t *array, const char *key, bool (*ok)(const json_t *member))
{
    json_t *out = json_is_array(array) ? json_array() : NULL;
    for (size_t i = 0; out && i < json_array_size(array); i++) {
        json_t *m = json_object_get(json_array_get(array, i), key);
        if (!m || !ok(m) || json_array_append(out, m) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}
