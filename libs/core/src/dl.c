/* dl.c -- binds the functions of a shared library loaded at run time (see dl.h). */
#include "mindroom/dl.h"

#include <dlfcn.h>

mr_code mr_dl_load(const char *soname, const char *package, const mr_dl_sym *syms, size_t n, mr_err *err)
{
    /* RTLD_LOCAL: the library's symbols bind only through the slots, never another's lookup. */
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return mr_err_set(err, MR_EUNAVAIL, "cannot load %s (%s): install the %s package", soname,
                          why ? why : "no reason given", package);
    }
    for (size_t i = 0; i < n; i++) {
        if (!dlsym(h, syms[i].name)) {
            dlclose(h);
            return mr_err_set(err, MR_EUNAVAIL, "%s has no %s: install a newer %s package", soname, syms[i].name,
                              package);
        }
    }
    for (size_t i = 0; i < n; i++)
        *syms[i].slot = dlsym(h, syms[i].name);
    return MR_OK;
}
