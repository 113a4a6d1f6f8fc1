/* tz.h -- IANA time zones read from the system's TZif files (tzdata): the UTC offset at an
 * instant, so calendar times ("9:00 on weekdays") can be kept in the zone config.yaml names,
 * without touching the process-wide TZ (other threads read it). */
#ifndef MINDROOM_TZ_H
#define MINDROOM_TZ_H

#include "mindroom/err.h"

typedef struct mr_tz mr_tz;

#define MR_TZ_NAME_MAX 64

/* The zone named like "Europe/Berlin", read from $TZDIR or /usr/share/zoneinfo. NULL, "" and
 * "UTC" need no file. MR_EINVAL for a malformed name, MR_ENOTFOUND for one the system does not
 * have (the message says how to fix either), MR_EIO when its file is not TZif. */
mr_code mr_tz_open(const char *name, mr_tz **out, mr_err *err);
void mr_tz_free(mr_tz *tz);
const char *mr_tz_name(const mr_tz *tz);

/* Seconds east of UTC at utc_s (seconds since the epoch); past the file's last transition the
 * zone's rule (its POSIX TZ footer) decides. */
long mr_tz_offset(const mr_tz *tz, long long utc_s);

/* The instant of a local wall time (local_s: the wall time's fields read as if in UTC) that is
 * later than after_s: of two (the hour repeated when clocks go back) the earlier one that is;
 * a wall time the clocks skip counts as if they had not changed yet. -1 when none is. */
long long mr_tz_instant(const mr_tz *tz, long long local_s, long long after_s);

/* Civil dates, proleptic Gregorian: days since 1970-01-01 and back; weekday 0 = Sunday. */
long long mr_tz_days_from_civil(int year, int month, int day);
void mr_tz_civil_from_days(long long days, int *year, int *month, int *day);
int mr_tz_weekday(long long days);
int mr_tz_month_days(int year, int month);

#endif
