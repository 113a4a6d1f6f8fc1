/* tz.c -- time zones from TZif files (RFC 8536): the version 2+ transitions, and the POSIX TZ
 * rule in the footer for instants after the last of them. */
#include "mindroom/tz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/fsutil.h"

#define TZ_FILE_MAX (1 << 20)
#define DEFAULT_DIR "/usr/share/zoneinfo"
#define DAY 86400LL

/* A POSIX TZ rule ("CET-1CEST,M3.5.0,M10.5.0/3"): offsets east of UTC; the switches on the
 * d-th weekday of week w (5: the last) of month m, at a time after local midnight. */
typedef struct tz_rule {
    long std_off, dst_off;
    bool has_dst;
    int m[2], w[2], d[2];
    long at[2];
} tz_rule;

struct mr_tz {
    char name[MR_TZ_NAME_MAX];
    long long *trans;        /* transition instants, ascending */
    unsigned char *type_of;  /* the type each transition starts */
    size_t n_trans;
    long *offs;              /* each type's offset */
    size_t n_types;
    long before;             /* the offset before the first transition */
    bool has_rule;
    tz_rule rule;
};

/* ---- civil dates (days since 1970-01-01, proleptic Gregorian) ---- */

long long mr_tz_days_from_civil(int year, int month, int day)
{
    long long y = (long long)year - (month <= 2);
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153LL * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void mr_tz_civil_from_days(long long days, int *year, int *month, int *day)
{
    long long z = days + 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = m;
    *year = (int)(yoe + era * 400 + (m <= 2));
}

int mr_tz_weekday(long long days)
{
    long long w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

int mr_tz_month_days(int year, int month)
{
    static const int n[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : n[month - 1];
}

static long long floor_div(long long a, long long b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* ---- the POSIX TZ footer ---- */

static bool parse_abbr(const char **p)
{
    const char *s = *p;
    if (*s == '<') {
        const char *end = strchr(s, '>');
        if (!end || end - s < 4)
            return false;
        *p = end + 1;
        return true;
    }
    while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
        s++;
    if (s - *p < 3)
        return false;
    *p = s;
    return true;
}

/* [+-]hh[:mm[:ss]] in seconds; hours up to 167 (RFC 8536 allows that for rule times). */
static bool parse_hms(const char **p, long *out)
{
    const char *s = *p;
    long sign = 1, v[3] = {0, 0, 0};
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    for (int i = 0; i < 3; i++) {
        if (i > 0 && *s != ':')
            break;
        if (i > 0)
            s++;
        if (*s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9' && v[i] < 1000)
            v[i] = v[i] * 10 + (*s++ - '0');
    }
    if (v[0] > 167 || v[1] > 59 || v[2] > 59)
        return false;
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    *p = s;
    return true;
}

static bool parse_int(const char **p, int lo, int hi, int *out)
{
    const char *s = *p;
    int v = 0;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9' && v <= hi)
        v = v * 10 + (*s++ - '0');
    if (v < lo || v > hi)
        return false;
    *out = v;
    *p = s;
    return true;
}

/* ",Mm.w.d[/time]": the only form tzdata's footers use today (Julian-day forms are refused,
 * and the file's transitions are then all there is). */
static bool parse_switch(const char **p, tz_rule *r, int i)
{
    const char *s = *p;
    r->at[i] = 7200;
    if (*s++ != ',' || *s++ != 'M' || !parse_int(&s, 1, 12, &r->m[i]) || *s++ != '.' ||
        !parse_int(&s, 1, 5, &r->w[i]) || *s++ != '.' || !parse_int(&s, 0, 6, &r->d[i]))
        return false;
    if (*s == '/' && (s++, !parse_hms(&s, &r->at[i])))
        return false;
    *p = s;
    return true;
}

static bool parse_rule(const char *s, tz_rule *r)
{
    memset(r, 0, sizeof *r);
    long west;
    if (!parse_abbr(&s) || !parse_hms(&s, &west))
        return false;
    r->std_off = r->dst_off = -west;
    if (!*s)
        return true;
    if (!parse_abbr(&s))
        return false;
    r->dst_off = r->std_off + 3600;
    if (*s && *s != ',') {
        if (!parse_hms(&s, &west))
            return false;
        r->dst_off = -west;
    }
    r->has_dst = true;
    return parse_switch(&s, r, 0) && parse_switch(&s, r, 1) && !*s;
}

/* The day of month m's d-th weekday w of year y (w 5: the last one). */
static long long switch_day(int y, int m, int w, int d)
{
    long long first = mr_tz_days_from_civil(y, m, 1);
    long long day = first + (d - mr_tz_weekday(first) + 7) % 7 + (w - 1) * 7LL;
    while (day >= first + mr_tz_month_days(y, m))
        day -= 7;
    return day;
}

static long rule_offset(const tz_rule *r, long long t)
{
    if (!r->has_dst)
        return r->std_off;
    int y, mo, d;
    mr_tz_civil_from_days(floor_div(t + r->std_off, DAY), &y, &mo, &d);
    long long start = switch_day(y, r->m[0], r->w[0], r->d[0]) * DAY + r->at[0] - r->std_off;
    long long end = switch_day(y, r->m[1], r->w[1], r->d[1]) * DAY + r->at[1] - r->dst_off;
    if (start < end)
        return t >= start && t < end ? r->dst_off : r->std_off;
    return t >= end && t < start ? r->std_off : r->dst_off; /* the southern hemisphere */
}

/* ---- TZif ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static long long be64(const unsigned char *p)
{
    return (long long)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts;

static bool read_counts(const unsigned char *p, size_t len, tzif_counts *c)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return c->type >= 1 && c->type <= 256 && c->time < 100000 && c->leap < 10000 && c->chars < 100000 &&
           c->isut <= c->type && c->isstd <= c->type;
}

static size_t block_size(const tzif_counts *c, size_t tsize)
{
    return c->time * (tsize + 1) + c->type * 6 + c->chars + c->leap * (tsize + 4) + c->isstd + c->isut;
}

static mr_code parse_tzif(mr_tz *tz, const unsigned char *p, size_t len, const char *path, mr_err *err)
{
    tzif_counts c;
    if (!read_counts(p, len, &c) || p[4] < '2')
        return mr_err_set(err, MR_EIO, "%s is not a TZif file of version 2 or later; reinstall tzdata", path);
    size_t v1 = 44 + block_size(&c, 4);
    if (v1 > len || !read_counts(p + v1, len - v1, &c) || v1 + 44 + block_size(&c, 8) > len)
        return mr_err_set(err, MR_EIO, "%s is cut short; reinstall tzdata", path);
    const unsigned char *d = p + v1 + 44;
    tz->trans = malloc((c.time ? c.time : 1) * sizeof *tz->trans);
    tz->type_of = malloc(c.time ? c.time : 1);
    tz->offs = malloc(c.type * sizeof *tz->offs);
    if (!tz->trans || !tz->type_of || !tz->offs)
        return mr_err_set(err, MR_ENOMEM, "out of memory reading %s", path);
    for (uint32_t i = 0; i < c.time; i++) {
        tz->trans[i] = be64(d + 8 * i);
        if (i && tz->trans[i] <= tz->trans[i - 1])
            return mr_err_set(err, MR_EIO, "%s has transitions out of order; reinstall tzdata", path);
    }
    d += 8 * c.time;
    for (uint32_t i = 0; i < c.time; i++)
        if ((tz->type_of[i] = d[i]) >= c.type)
            return mr_err_set(err, MR_EIO, "%s names a type it does not have; reinstall tzdata", path);
    d += c.time;
    for (uint32_t i = 0; i < c.type; i++) {
        int32_t off = (int32_t)be32(d + 6 * i);
        if (off < -26 * 3600 || off > 26 * 3600)
            return mr_err_set(err, MR_EIO, "%s has an offset of %ld s; reinstall tzdata", path, (long)off);
        tz->offs[i] = off;
    }
    tz->n_trans = c.time;
    tz->n_types = c.type;
    tz->before = tz->offs[0];
    /* The footer: "\n<rule>\n" after the version 2 block. */
    const unsigned char *f = p + v1 + 44 + block_size(&c, 8), *end = p + len;
    if (f < end && *f == '\n') {
        const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
        char rule[128];
        if (nl && (size_t)(nl - f - 1) < sizeof rule) {
            memcpy(rule, f + 1, (size_t)(nl - f - 1));
            rule[nl - f - 1] = '\0';
            tz->has_rule = parse_rule(rule, &tz->rule);
        }
    }
    return MR_OK;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n >= MR_TZ_NAME_MAX || name[0] == '/' || name[0] == '.' || strstr(name, "/.") || name[n - 1] == '/')
        return false;
    for (const char *s = name; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '/' ||
              *s == '_' || *s == '-' || *s == '+' || *s == '.'))
            return false;
    return true;
}

mr_code mr_tz_open(const char *name, mr_tz **out, mr_err *err)
{
    *out = NULL;
    mr_tz *tz = calloc(1, sizeof *tz);
    if (!tz)
        return mr_err_set(err, MR_ENOMEM, "out of memory opening a time zone");
    if (!name || !*name || strcmp(name, "UTC") == 0) {
        strcpy(tz->name, "UTC");
        *out = tz;
        return MR_OK;
    }
    if (!name_ok(name)) {
        free(tz);
        return mr_err_set(err, MR_EINVAL, "'%.64s' is not a time zone name: write an IANA name such as Europe/Berlin "
                                          "or America/New_York, or UTC", name);
    }
    strcpy(tz->name, name);
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : DEFAULT_DIR, name);
    char *data = NULL;
    size_t len = 0;
    mr_code rc = mr_fs_read_all(path, TZ_FILE_MAX, &data, &len, err);
    if (rc == MR_ENOTFOUND)
        rc = mr_err_set(err, MR_ENOTFOUND, "time zone '%s' is unknown here: there is no %s (check the spelling, "
                                           "e.g. Europe/Berlin, or install tzdata)", name, path);
    if (rc == MR_OK)
        rc = parse_tzif(tz, (const unsigned char *)data, len, path, err);
    free(data);
    if (rc != MR_OK) {
        mr_tz_free(tz);
        return rc;
    }
    *out = tz;
    return MR_OK;
}

void mr_tz_free(mr_tz *tz)
{
    if (!tz)
        return;
    free(tz->trans);
    free(tz->type_of);
    free(tz->offs);
    free(tz);
}

const char *mr_tz_name(const mr_tz *tz)
{
    return tz->name;
}

long mr_tz_offset(const mr_tz *tz, long long utc_s)
{
    if (tz->n_types == 0)
        return 0;
    if (tz->n_trans == 0 || utc_s < tz->trans[0])
        return tz->n_trans == 0 && tz->has_rule ? rule_offset(&tz->rule, utc_s) : tz->before;
    if (utc_s >= tz->trans[tz->n_trans - 1] && tz->has_rule)
        return rule_offset(&tz->rule, utc_s);
    size_t lo = 0, hi = tz->n_trans; /* the last transition at or before utc_s */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= utc_s)
            lo = mid;
        else
            hi = mid;
    }
    return tz->offs[tz->type_of[lo]];
}

long long mr_tz_instant(const mr_tz *tz, long long local_s, long long after_s)
{
    /* Offsets stay within a day of UTC, and no zone changes twice in two days: the offsets in
     * force a day before and a day after are the only candidates. */
    long before = mr_tz_offset(tz, local_s - DAY), after = mr_tz_offset(tz, local_s + DAY);
    long long a = local_s - before, b = local_s - after;
    bool a_ok = mr_tz_offset(tz, a) == before, b_ok = mr_tz_offset(tz, b) == after;
    if (!a_ok && !b_ok) /* skipped: read with the offset before the change */
        return a > after_s ? a : -1;
    long long first = a_ok && (!b_ok || a <= b) ? a : b, second = a_ok && b_ok ? (a <= b ? b : a) : first;
    if (first > after_s)
        return first;
    return second > after_s ? second : -1;
}
