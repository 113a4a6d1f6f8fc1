/* process_tune.c -- process-wide settings of the C library, made once before any thread
 * starts, that keep a service's resident memory down (bench/pipeline/README.md has the
 * numbers). */
#include <limits.h>
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

/* The program's own file by its path, so the process keeps its name (ps, pgrep and top show
 * the file name an exec was given: "exe" for /proc/self/exe). /proc/self/exe itself when the
 * path cannot be read or the file was replaced since the start: the link still reaches the
 * program that is running. */
static const char *self_path(void)
{
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0 || (size_t)n >= sizeof path - 1)
        return "/proc/self/exe";
    path[n] = '\0';
    static const char gone[] = " (deleted)";
    size_t g = sizeof gone - 1;
    if ((size_t)n > g && strcmp(path + n - g, gone) == 0)
        return "/proc/self/exe";
    return path;
}

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
    execv(self_path(), argv);
    /* No /proc: the program goes on with the cache, and the environment as it was. */
    if (was)
        setenv(TUNABLES, was, 1);
    else
        unsetenv(TUNABLES);
    free(was);
}
