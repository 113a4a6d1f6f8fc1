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

/* mallopt refuses only where malloc is not glibc's (a sanitizer's or a preloaded allocator),
 * which keeps its own heaps: nothing to cap there, so a refusal is no error. */
void mr_runtime_tune_process(void)
{
    (void)mallopt(M_ARENA_MAX, ARENAS);
}
