/* process_tune.c -- process-wide settings of the C library, made once before any thread
 * starts, that keep a service's resident memory down (bench/pipeline/README.md has the
 * numbers). */
#include <malloc.h>

#include "runtime_internal.h"

/* glibc gives each thread that finds the heap busy an arena of its own, up to eight per core,
 * and the free space in each stays resident: with ten agents that was 4.3 MiB of arenas for
 * under 3 MiB in use. Two arenas hold the same heap in about 1 MiB less and still spare the
 * threads one lock. */
#define ARENAS 2

mr_code mr_runtime_tune_process(mr_err *err)
{
    if (mallopt(M_ARENA_MAX, ARENAS) != 1)
        return mr_err_set(err, MR_EINTERNAL, "mallopt(M_ARENA_MAX, %d) was refused", ARENAS);
    return MR_OK;
}
