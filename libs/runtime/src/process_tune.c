/* process_tune.c -- process-wide settings of the C library, made once before any thread
 * starts, that keep a service's resident memory down (bench/pipeline/README.md has the
 * numbers). */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime_internal.h"

/* glibc gives each thread that finds the heap busy an arena of its own, up to eight per core,
 * and the free space in each stays resident: with ten agents that was 4.3 MiB of arenas for
 * under 3 MiB in use. Two arenas hold the same heap in about 1 MiB less and still spare the
 * threads one lock. */
#define ARENAS 2

/* AddressSanitizer brings its own malloc, which takes none of glibc's settings (its mallopt
 * refuses every one). */
#if defined(__SANITIZE_ADDRESS__)
#define GLIBC_MALLOC false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GLIBC_MALLOC false
#endif
#endif
#ifndef GLIBC_MALLOC
#define GLIBC_MALLOC true
#endif

bool mr_runtime_glibc_malloc(void)
{
    return GLIBC_MALLOC;
}

mr_code mr_runtime_tune_process(mr_err *err)
{
    if (!GLIBC_MALLOC)
        return MR_OK;
    if (mallopt(M_ARENA_MAX, ARENAS) != 1)
        return mr_err_set(err, MR_EINTERNAL, "mallopt(M_ARENA_MAX, %d) was refused", ARENAS);
    return MR_OK;
}

/* glibc reads its tunables once, when a program starts, and has no call to change them after:
 * so the program runs again with them set. */
#define TUNABLES "GLIBC_TUNABLES"
#define NO_TCACHE "glibc.malloc.tcache_count=0"

void mr_runtime_tune_exec(char **argv)
{
    if (!GLIBC_MALLOC)
        return;
    const char *given = getenv(TUNABLES);
    /* Set already: by the operator, whose value stands, or by this call before the exec. */
    if (given && strstr(given, "glibc.malloc.tcache_count="))
        return;
    char *want = NULL;
    if (given && given[0]) {
        size_t n = strlen(given) + sizeof ":" NO_TCACHE;
        if (!(want = malloc(n)))
            return;
        snprintf(want, n, "%s:%s", given, NO_TCACHE);
    }
    char *was = given ? strdup(given) : NULL;
    if ((given && !was) || setenv(TUNABLES, want ? want : NO_TCACHE, 1) != 0) {
        free(want);
        free(was);
        return;
    }
    free(want);
    execv("/proc/self/exe", argv);
    /* No /proc: the program goes on with the cache, and the environment as it was. */
    if (was)
        setenv(TUNABLES, was, 1);
    else
        unsetenv(TUNABLES);
    free(was);
}
