/* dl.h -- shared libraries that only some configurations need, loaded when first used, so a
 * process that never needs one never maps it (bench/pipeline/README.md has the memory). */
#ifndef MINDROOM_DL_H
#define MINDROOM_DL_H

#include <stddef.h>

#include "mindroom/err.h"

/* One function to bind: its name and where its address goes (a function pointer, cast). */
typedef struct mr_dl_sym {
    const char *name;
    void **slot;
} mr_dl_sym;

/* Loads `soname` and sets every slot of syms[0..n); on failure unloads it, leaves the slots as
 * they were, and err names the library, the package that ships it (`package`) and why: the
 * loader's reason, or the first function missing (a library older than the one built
 * against). The library stays loaded for the life of the process. */
mr_code mr_dl_load(const char *soname, const char *package, const mr_dl_sym *syms, size_t n, mr_err *err);

#endif
