/* clock.h -- milliseconds on the monotonic and wall clocks, sleeps, and absolute deadlines. */
#ifndef MINDROOM_CLOCK_H
#define MINDROOM_CLOCK_H

#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and durations inside one process. */
long long mr_clock_mono_ms(void);
/* Nanoseconds, and seconds (to the nanosecond), on CLOCK_MONOTONIC: for measuring rates. */
long long mr_clock_mono_ns(void);
double mr_clock_mono_s(void);
/* Milliseconds since the epoch on CLOCK_REALTIME: for timestamps other processes compare. */
long long mr_clock_wall_ms(void);
/* Sleeps ms milliseconds (none when ms <= 0), resuming after a signal interrupts it. */
void mr_clock_sleep_ms(long long ms);
/* t plus ms (ms >= 0), with tv_nsec kept below one second. */
struct timespec mr_clock_add_ms(struct timespec t, long long ms);
/* The time on clock ms milliseconds from now: an absolute deadline for pthread_cond_timedwait
 * (CLOCK_REALTIME unless the condition variable was set to another clock). */
struct timespec mr_clock_after_ms(clockid_t clock, long long ms);

#endif
