/* rt_test_util.h -- temp dirs, files and a clean environment for the runtime tests. */
#ifndef MINDROOM_RT_TEST_UTIL_H
#define MINDROOM_RT_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mindroom/fsutil.h"
#include "peers.h"

/* Two agents; a third, `c`, in RT_CONFIG_THREE. */
#define RT_CONFIG_TWO                                                                               \
    "models:\n  default: {provider: openai, id: gpt-5.6}\n"                                        \
    "agents:\n  a: {rooms: [lobby]}\n  b: {rooms: [lobby]}\n"
#define RT_CONFIG_THREE RT_CONFIG_TWO "  c: {rooms: [lobby]}\n"
/* A typo'd key under an agent: the loader reports it with its line. */
#define RT_CONFIG_BROKEN RT_CONFIG_TWO "  d: {romos: [lobby]}\n"

static const char *const rt_vars[] = {
    "MINDROOM_CONFIG_PATH", "MINDROOM_STORAGE_PATH", "MINDROOM_BUS_URL", "MINDROOM_STORE_URL",
    "MINDROOM_INSTANCE_SECRET", "MATRIX_HOMESERVER", "MATRIX_SERVER_NAME", "MINDROOM_NAMESPACE",
    "LOG_LEVEL", "LOG_FORMAT", "MINDROOM_RTDEMO_LISTEN", "MR_RTDEMO_FAIL", "MR_RTDEMO_NOT_READY",
};

static inline void rt_write(const char *dir, const char *name, const char *text)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        fail_msg("path %s/%s is too long", dir, name);
    mr_err err = {0};
    if (mr_fs_write_atomic(path, text, strlen(text), 0600, true, &err) != MR_OK)
        fail_msg("writing %s: %s", path, err.msg);
}

/* A fresh temp dir holding config.yaml, made the working directory and HOME, with every
 * variable the runtime reads unset. */
static inline void rt_fresh_dir(char *dir, size_t cap, const char *config)
{
    mr_err err = {0};
    if (mr_tp_mkdtemp("mr-rt", dir, cap, &err) != MR_OK)
        fail_msg("%s", err.msg);
    for (size_t i = 0; i < sizeof rt_vars / sizeof rt_vars[0]; i++)
        unsetenv(rt_vars[i]);
    setenv("HOME", dir, 1);
    assert_int_equal(chdir(dir), 0);
    rt_write(dir, "config.yaml", config);
}

static inline void rt_remove_dir(const char *dir)
{
    assert_int_equal(chdir("/"), 0);
    mr_tp_rmtree(dir, NULL);
}

/* A zeroed fixture of size bytes whose first member is `char dir[RT_DIR_SIZE]`: that dir made
 * fresh with RT_CONFIG_TWO (rt_fresh_dir), MATRIX_SERVER_NAME example.org. */
#define RT_DIR_SIZE 512
static inline void *rt_fixture_new(size_t size)
{
    char *f = calloc(1, size);
    assert_non_null(f);
    rt_fresh_dir(f, RT_DIR_SIZE, RT_CONFIG_TWO);
    setenv("MATRIX_SERVER_NAME", "example.org", 1);
    return f;
}

/* The teardown of an rt_fixture_new fixture with nothing else to free. */
static inline int rt_fixture_free(void **state)
{
    rt_remove_dir(*state);
    free(*state);
    return 0;
}

#endif
