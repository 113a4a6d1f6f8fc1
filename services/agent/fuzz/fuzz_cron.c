/* fuzz_cron.c -- libFuzzer target: the cron parser (schedule_cron.c) and the "!schedule" reader
 * around it (schedule_when.c) never crash on any text; a parsed expression's next matches are
 * later each time, on whole minutes, in UTC and across New York's clock changes. */
#include <stdint.h>
#include <stdlib.h>

#include "agent_schedule.h"
#include "fuzz_text.h"

#define T0 1772884800LL /* 2026-03-07 12:00 UTC: New York's clocks go forward the next night */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_next(const cron_expr *c, const mr_tz *tz)
{
    long long t = T0;
    for (int i = 0; i < 4; i++) {
        long long n = cron_next(c, tz, t);
        if (n < 0)
            return;
        if (n <= t || n % 60 != 0)
            abort();
        t = n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mr_tz *utc, *ny;
    mr_err err = {0};
    if (!utc && mr_tz_open("UTC", &utc, &err) != MR_OK)
        abort();
    if (!ny && mr_tz_open("America/New_York", &ny, &err) != MR_OK)
        ny = utc;
    char *text = mr_fuzz_text(data, size);
    if (!text)
        return 0;
    cron_expr c;
    size_t used = 0;
    if (cron_parse(text, &c, &used, &err) == MR_OK) {
        if (used > size || !c.text[0])
            abort();
        check_next(&c, utc);
        check_next(&c, ny);
    }
    schedule_spec spec;
    if (schedule_parse(text, T0 * 1000, ny, &spec, &err) == MR_OK &&
        (!spec.task || !*spec.task || spec.due_ms <= T0 * 1000 || (spec.every_ms && !spec.repeats)))
        abort();
    free(text);
    return 0;
}
