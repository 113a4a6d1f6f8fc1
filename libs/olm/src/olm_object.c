/* olm_object.c -- memory, errors and pickles of the picklable libolm objects, once for every
 * kind (account, session, outbound and inbound group session). */
#include "olm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *mr_olm_object_new(const mr_olm_kind *k, mr_err *err)
{
    void *mem = mr_olm_mem_new(k->size(), k->name, err);
    return mem ? k->init(mem) : NULL;
}

void mr_olm_object_free(const mr_olm_kind *k, void *obj)
{
    if (!obj)
        return;
    k->clear(obj);
    mr_olm_mem_free(obj, k->size());
}

mr_code mr_olm_object_fail(const mr_olm_kind *k, void *obj, const char *what, mr_err *err)
{
    return mr_olm_fail(err, k->last_error_code(obj), k->last_error(obj), what);
}

mr_code mr_olm_object_pickle(const mr_olm_kind *k, void *obj, const void *key, size_t key_len, char **pickle,
                             mr_err *err)
{
    *pickle = NULL;
    char what[64];
    snprintf(what, sizeof what, "pickling %s", k->name);
    mr_code rc = mr_olm_check_pickle_key(key, key_len, what, err);
    if (rc != MR_OK)
        return rc;
    size_t len = k->pickle_length(obj);
    char *p = malloc(len + 1);
    if (!p)
        return mr_err_set(err, MR_ENOMEM, "out of memory %s", what);
    size_t n = k->pickle(obj, key, key_len, p, len);
    if (n == olm_error()) {
        free(p);
        return mr_olm_object_fail(k, obj, what, err);
    }
    p[n] = '\0';
    *pickle = p;
    return MR_OK;
}

mr_code mr_olm_object_unpickle(const mr_olm_kind *k, const char *pickle, const void *key, size_t key_len,
                               void **obj, mr_err *err)
{
    *obj = NULL;
    char what[64];
    snprintf(what, sizeof what, "unpickling %s", k->name);
    mr_code rc = mr_olm_check_pickle_key(key, key_len, what, err);
    if (rc != MR_OK)
        return rc;
    char *copy = NULL;
    size_t len = 0;
    if (pickle)
        rc = mr_olm_check_b64("the pickle", pickle, 0, err);
    if (rc == MR_OK)
        rc = mr_olm_copy(pickle, "the pickle", &copy, &len, err);
    if (rc != MR_OK) {
        mr_err_prefix(err, "%s", what);
        return rc;
    }
    void *o = mr_olm_object_new(k, err);
    if (!o) {
        free(copy);
        return MR_ENOMEM;
    }
    if (k->unpickle(o, key, key_len, copy, len) == olm_error())
        rc = mr_olm_object_fail(k, o, what, err);
    /* libolm decrypts the pickle in place: the copy now holds the object's keys. */
    mr_olm_free_secret(copy, len);
    if (rc != MR_OK) {
        mr_olm_object_free(k, o);
        return rc;
    }
    *obj = o;
    return MR_OK;
}
