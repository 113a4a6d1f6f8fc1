/* thread_name.c -- the calling thread's name, cut to what the kernel keeps. */
#define _GNU_SOURCE
#include "mindroom/thread_name.h"

#include <pthread.h>
#include <stdio.h>

/* 15 bytes and the terminating NUL: TASK_COMM_LEN. */
#define NAME_CAP 16

void mr_thread_name(const char *name)
{
    char cut[NAME_CAP];
    snprintf(cut, sizeof cut, "%s", name);
    /* Fails only for a name over the cap, which the cut rules out. */
    (void)pthread_setname_np(pthread_self(), cut);
}
