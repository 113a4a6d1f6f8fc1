/* clock.c -- milliseconds on the monotonic and wall clocks, sleeps, and absolute deadlines. */
#include "mindroom/clock.h"

#include <errno.h>

static long long clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long mr_clock_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

long long mr_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double mr_clock_mono_s(void)
{
    return (double)mr_clock_mono_ns() / 1e9;
}

long long mr_clock_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

void mr_clock_sleep_ms(long long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct timespec mr_clock_add_ms(struct timespec t, long long ms)
{
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

struct timespec mr_clock_after_ms(clockid_t clock, long long ms)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return mr_clock_add_ms(now, ms);
}
