/* schedule_when.c -- when a schedule fires, read from the start of "!schedule <when> <task>" (and
 * the scheduler tool's "when"): "in 5 minutes", "every 2 hours", the calendar phrases the
 * reference's chat commands show ("tomorrow at 3pm", "daily at 9am", "every weekday at 8:30",
 * "weekly on Friday"), or cron fields ("30 8 * * 1-5"); times are in config.yaml's timezone. */
#include "agent_schedule.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DAY 86400LL
#define EVERY_MIN_MS 60000LL /* a recurring schedule fires at most once a minute */
#define AMOUNT_MAX 1000000LL
#define DEFAULT_HOUR 9       /* a calendar phrase without "at <time>" fires at 09:00 */

static const char examples[] = "write it as in 5 minutes, every 2 hours, tomorrow at 3pm, at 17:30, daily at 9am, "
                               "every weekday at 8:30, every monday at 10am, weekly on friday, or cron fields such as "
                               "30 8 * * 1-5";

static const char *skip_space(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

static size_t word_len(const char *p)
{
    size_t n = 0;
    while (p[n] && !isspace((unsigned char)p[n]) && p[n] != ',')
        n++;
    return n;
}

/* When the next word is w (any case), moves past it and the space after. */
static bool take_word(const char **p, const char *w)
{
    size_t n = word_len(*p);
    if (n != strlen(w) || strncasecmp(*p, w, n) != 0)
        return false;
    *p = skip_space(*p + n);
    return true;
}

/* How much of the word at p an error quotes. */
static int shown(const char *p)
{
    size_t n = word_len(p);
    return (int)(n > 24 ? 24 : n ? n : *p != '\0');
}

static mr_code not_understood(const char *p, mr_err *err)
{
    if (!*p)
        return mr_err_set(err, MR_EINVAL, "when is missing: %s", examples);
    return mr_err_set(err, MR_EINVAL, "'%.*s' is not understood as a time: %s", shown(p), p, examples);
}

static long long unit_ms(const char *u, size_t len)
{
    static const struct { const char *name; long long ms; } units[] = {
        {"s", 1000}, {"sec", 1000}, {"secs", 1000}, {"second", 1000}, {"seconds", 1000},
        {"m", 60000}, {"min", 60000}, {"mins", 60000}, {"minute", 60000}, {"minutes", 60000},
        {"h", 3600000}, {"hour", 3600000}, {"hours", 3600000},
        {"d", 86400000}, {"day", 86400000}, {"days", 86400000},
        {"week", 7 * 86400000LL}, {"weeks", 7 * 86400000LL},
    };
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (strlen(units[i].name) == len && strncasecmp(units[i].name, u, len) == 0)
            return units[i].ms;
    return 0;
}

/* "<n> <unit>", "a|an <unit>", or (after "every") just "<unit>". */
static mr_code read_amount(const char **p, bool unit_alone, long long *ms, mr_err *err)
{
    long long n = 1;
    const char *s = *p;
    bool one = take_word(&s, "a") || take_word(&s, "an");
    if (!one && isdigit((unsigned char)*s)) {
        char *end;
        n = strtoll(s, &end, 10);
        if (n < 1 || n > AMOUNT_MAX)
            return mr_err_set(err, MR_EINVAL, "the number must be a whole number from 1 to %lld: %s", AMOUNT_MAX,
                              examples);
        s = skip_space(end);
    } else if (!one && !unit_alone) {
        return mr_err_set(err, MR_EINVAL, "'%.*s' is not a number: %s", shown(s), s, examples);
    }
    size_t ulen = word_len(s);
    long long unit = unit_ms(s, ulen);
    if (!unit)
        return ulen ? mr_err_set(err, MR_EINVAL, "unknown unit '%.*s': use seconds, minutes, hours, days or weeks",
                                 (int)(ulen > 16 ? 16 : ulen), s)
                    : mr_err_set(err, MR_EINVAL, "the unit is missing: use seconds, minutes, hours, days or weeks");
    *ms = n * unit;
    *p = s + ulen;
    return MR_OK;
}

/* "9am", "9 pm", "9:30am", "14:30", "9", "noon", "midnight". */
static mr_code read_time(const char **p, int *hour, int *minute, mr_err *err)
{
    const char *s = *p;
    if (take_word(&s, "noon") || take_word(&s, "midnight")) {
        *hour = tolower((unsigned char)**p) == 'n' ? 12 : 0;
        *minute = 0;
        *p = s;
        return MR_OK;
    }
    int h = 0, m = 0, digits = 0;
    while (isdigit((unsigned char)*s) && digits < 3)
        h = h * 10 + (*s++ - '0'), digits++;
    if (digits == 0 || digits > 2)
        return mr_err_set(err, MR_EINVAL, "'%.*s' is not a time of day: write 9am, 3:30pm or 14:30",
                          shown(*p), *p);
    if (*s == ':') {
        if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]) || isdigit((unsigned char)s[3]))
            return mr_err_set(err, MR_EINVAL, "a time's minutes are two digits, as in 8:30");
        m = (s[1] - '0') * 10 + (s[2] - '0');
        s += 3;
    }
    const char *after = skip_space(s);
    int half = -1; /* 0: am, 1: pm */
    if (strncasecmp(after, "am", 2) == 0 || strncasecmp(after, "pm", 2) == 0) {
        size_t n = word_len(after);
        if (n == 2) {
            half = tolower((unsigned char)*after) == 'p';
            s = after + 2;
        }
    }
    if (m > 59 || (half >= 0 && (h < 1 || h > 12)) || (half < 0 && h > 23))
        return mr_err_set(err, MR_EINVAL, "'%.*s' is not a time of day: hours are 1-12 with am/pm, else 0-23",
                          (int)(s - *p), *p);
    if (*s && !isspace((unsigned char)*s) && *s != ',')
        return mr_err_set(err, MR_EINVAL, "'%.*s' is not a time of day: write 9am, 3:30pm or 14:30",
                          shown(*p), *p);
    *hour = half < 0 ? h : h % 12 + 12 * half;
    *minute = m;
    *p = skip_space(s);
    return MR_OK;
}

/* "at <time>": a one-time schedule needs one; a repeating one fires at 09:00 without. */
static mr_code read_at(const char **p, bool required, int *hour, int *minute, mr_err *err)
{
    if (take_word(p, "at"))
        return read_time(p, hour, minute, err);
    if (required)
        return mr_err_set(err, MR_EINVAL, "say at what time, as in tomorrow at 9am");
    *hour = DEFAULT_HOUR;
    *minute = 0;
    return MR_OK;
}

/* "monday" / "mondays" / "mon" -> 1. -1 when the word is no weekday. */
static int weekday_of(const char *p)
{
    static const char *const names[] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
    size_t n = word_len(p);
    for (int i = 0; i < 7; i++) {
        size_t full = strlen(names[i]);
        if ((n == 3 || n == full || (n == full + 1 && tolower((unsigned char)p[full]) == 's')) &&
            strncasecmp(p, names[i], n < full ? n : full) == 0)
            return i;
    }
    return -1;
}

static void format_local(const mr_tz *tz, long long at_s, char *out, size_t cap)
{
    long long local = at_s + mr_tz_offset(tz, at_s);
    long long day = local >= 0 ? local / DAY : (local - DAY + 1) / DAY;
    int y, m, d, sec = (int)(local - day * DAY);
    mr_tz_civil_from_days(day, &y, &m, &d);
    snprintf(out, cap, "%04d-%02d-%02d %02d:%02d", y, m, d, sec / 3600, sec / 60 % 60);
}

/* A calendar phrase as cron fields, then as any cron expression. */
static mr_code set_cron(const char *fields, const mr_tz *tz, long long now_ms, schedule_spec *out, mr_err *err)
{
    size_t used;
    cron_expr c;
    mr_code rc = cron_parse(fields, &c, &used, err);
    if (rc != MR_OK)
        return rc;
    out->cron = c;
    long long next = cron_next(&out->cron, tz, now_ms / 1000);
    if (next < 0)
        return mr_err_set(err, MR_EINVAL, "cron '%s' does not fire in the next 30 years", out->cron.text);
    char at[32];
    format_local(tz, next, at, sizeof at);
    out->due_ms = next * 1000;
    out->repeats = true;
    snprintf(out->when, sizeof out->when, "cron %s (%s), next %s", out->cron.text, mr_tz_name(tz), at);
    return MR_OK;
}

/* Once, at a wall time of today (plus days ahead), which must still be to come. */
static mr_code set_once(int days_ahead, int hour, int minute, bool roll, const mr_tz *tz, long long now_ms,
                        schedule_spec *out, mr_err *err)
{
    long long now_s = now_ms / 1000, local = now_s + mr_tz_offset(tz, now_s);
    long long today = local >= 0 ? local / DAY : (local - DAY + 1) / DAY;
    long long at = mr_tz_instant(tz, (today + days_ahead) * DAY + hour * 3600LL + minute * 60LL, now_s);
    if (at < 0 && roll) /* "at 9am" after nine: tomorrow */
        at = mr_tz_instant(tz, (today + days_ahead + 1) * DAY + hour * 3600LL + minute * 60LL, now_s);
    if (at < 0)
        return mr_err_set(err, MR_EINVAL, "%02d:%02d has passed today (%s): say tomorrow at ..., or a later time",
                          hour, minute, mr_tz_name(tz));
    char when[32];
    format_local(tz, at, when, sizeof when);
    out->due_ms = at * 1000;
    snprintf(out->when, sizeof out->when, "at %s (%s)", when, mr_tz_name(tz));
    return MR_OK;
}

static bool cron_like(const char *p)
{
    size_t n = word_len(p);
    if (*p == '@')
        return true;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]) && !strchr("*,/-", p[i]))
            return false;
    return n > 0;
}

/* The calendar forms after "every" / "daily" / "weekly". */
static mr_code read_every(const char **p, const mr_tz *tz, long long now_ms, schedule_spec *out, mr_err *err)
{
    const char *s = *p;
    int hour, minute, wd;
    char fields[48];
    const char *days = NULL;
    if (take_word(&s, "weekday") || take_word(&s, "weekdays")) {
        days = "1-5";
    } else if (take_word(&s, "weekend") || take_word(&s, "weekends")) {
        days = "0,6";
    } else if ((wd = weekday_of(s)) >= 0) {
        static const char *const digit[] = {"0", "1", "2", "3", "4", "5", "6"};
        days = digit[wd];
        s = skip_space(s + word_len(s));
    } else if (take_word(&s, "day")) {
        days = "*";
    }
    if (!days) { /* "every 2 hours", "every hour" */
        long long ms;
        mr_code rc = read_amount(&s, true, &ms, err);
        if (rc != MR_OK)
            return rc;
        if (ms < EVERY_MIN_MS)
            return mr_err_set(err, MR_EINVAL, "a schedule repeats at most once a minute");
        out->due_ms = now_ms + ms;
        out->every_ms = ms;
        out->repeats = true;
        snprintf(out->when, sizeof out->when, "every %llds", ms / 1000);
        *p = s;
        return MR_OK;
    }
    mr_code rc = read_at(&s, false, &hour, &minute, err);
    if (rc != MR_OK)
        return rc;
    snprintf(fields, sizeof fields, "%d %d * * %s", minute, hour, days);
    *p = s;
    return set_cron(fields, tz, now_ms, out, err);
}

mr_code schedule_parse(const char *text, long long now_ms, const mr_tz *tz, schedule_spec *out, mr_err *err)
{
    memset(out, 0, sizeof *out);
    const char *p = skip_space(text);
    const char *unit = skip_space(p + word_len(p)); /* "5 minutes" without in or every */
    int hour, minute;
    mr_code rc;
    if (take_word(&p, "in")) {
        long long ms;
        rc = read_amount(&p, false, &ms, err);
        if (rc == MR_OK) {
            out->due_ms = now_ms + ms;
            snprintf(out->when, sizeof out->when, "in %llds", ms / 1000);
        }
    } else if (take_word(&p, "every")) {
        rc = read_every(&p, tz, now_ms, out, err);
    } else if (take_word(&p, "daily")) {
        rc = read_at(&p, false, &hour, &minute, err);
        if (rc == MR_OK) {
            char fields[32];
            snprintf(fields, sizeof fields, "%d %d * * *", minute, hour);
            rc = set_cron(fields, tz, now_ms, out, err);
        }
    } else if (take_word(&p, "weekly")) {
        rc = take_word(&p, "on") && weekday_of(p) >= 0
                 ? read_every(&p, tz, now_ms, out, err)
                 : mr_err_set(err, MR_EINVAL, "say which day, as in weekly on friday");
    } else if (take_word(&p, "tomorrow")) {
        rc = read_at(&p, true, &hour, &minute, err);
        if (rc == MR_OK)
            rc = set_once(1, hour, minute, false, tz, now_ms, out, err);
    } else if (take_word(&p, "today")) {
        rc = read_at(&p, true, &hour, &minute, err);
        if (rc == MR_OK)
            rc = set_once(0, hour, minute, false, tz, now_ms, out, err);
    } else if (take_word(&p, "at")) {
        rc = read_time(&p, &hour, &minute, err);
        if (rc == MR_OK)
            rc = set_once(0, hour, minute, true, tz, now_ms, out, err);
    } else if (isdigit((unsigned char)*p) && unit_ms(unit, word_len(unit))) {
        return mr_err_set(err, MR_EINVAL, "'%.*s %.*s' needs in or every: write in %.*s %.*s, or every %.*s %.*s",
                          shown(p), p, shown(unit), unit, shown(p), p, shown(unit), unit, shown(p), p, shown(unit),
                          unit);
    } else if (cron_like(p)) {
        size_t used;
        cron_expr c;
        rc = cron_parse(p, &c, &used, err);
        if (rc == MR_OK) {
            p += used;
            rc = set_cron(c.text, tz, now_ms, out, err);
        }
    } else {
        return not_understood(p, err);
    }
    if (rc != MR_OK)
        return rc;
    while (*p == ',' || isspace((unsigned char)*p)) /* "every hour, task"; the tool joins with ", " too */
        p++;
    if (!*p)
        return mr_err_set(err, MR_EINVAL, "the task is missing: say what to do after when, as in in 5 minutes "
                                          "check the deploy");
    out->task = p;
    return MR_OK;
}

void schedule_confirm(mr_strbuf *out, const char *id, const schedule_spec *spec, const char *display,
                      const char *task)
{
    mr_strbuf_printf(out, "Scheduled %s: %s, for @%s: ", id, spec->when, display);
    mr_strbuf_puts(out, task);
}
