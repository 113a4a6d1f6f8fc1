/* test_metrics.c -- the metrics registry: declaration rules, counting, exact text output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mindroom/http.h"

static void test_counter_render(void **state)
{
    (void)state;
    mr_http_metrics *m = mr_http_metrics_new();
    assert_non_null(m);
    assert_int_equal(mr_http_metrics_counter(m, "jobs_total", "Jobs done\nby kind", NULL), MR_OK);
    const char *a[] = {"kind", "say \"hi\"\\", NULL};
    const char *b[] = {"kind", "plain", NULL};
    assert_int_equal(mr_http_metrics_inc(m, "jobs_total", a, 2), MR_OK);
    assert_int_equal(mr_http_metrics_inc(m, "jobs_total", b, 1), MR_OK);
    assert_int_equal(mr_http_metrics_inc(m, "jobs_total", a, 0.5), MR_OK);
    char *text = mr_http_metrics_render(m);
    assert_string_equal(text, "# HELP jobs_total Jobs done\\nby kind\n"
                              "# TYPE jobs_total counter\n"
                              "jobs_total{kind=\"say \\\"hi\\\"\\\\\"} 2.5\n"
                              "jobs_total{kind=\"plain\"} 1\n");
    free(text);
    mr_http_metrics_free(m);
}

static void test_histogram_render(void **state)
{
    (void)state;
    mr_http_metrics *m = mr_http_metrics_new();
    const double buckets[] = {0.1, 1};
    assert_int_equal(mr_http_metrics_histogram(m, "lat_seconds", "Latency", buckets, 2, NULL), MR_OK);
    assert_int_equal(mr_http_metrics_observe(m, "lat_seconds", NULL, 0.05), MR_OK);
    assert_int_equal(mr_http_metrics_observe(m, "lat_seconds", NULL, 0.1), MR_OK);
    assert_int_equal(mr_http_metrics_observe(m, "lat_seconds", NULL, 0.5), MR_OK);
    assert_int_equal(mr_http_metrics_observe(m, "lat_seconds", NULL, 7), MR_OK);
    const char *lab[] = {"route", "x", NULL};
    assert_int_equal(mr_http_metrics_observe(m, "lat_seconds", lab, 2), MR_OK);
    char *text = mr_http_metrics_render(m);
    assert_string_equal(text, "# HELP lat_seconds Latency\n"
                              "# TYPE lat_seconds histogram\n"
                              "lat_seconds_bucket{le=\"0.1\"} 2\n"
                              "lat_seconds_bucket{le=\"1\"} 3\n"
                              "lat_seconds_bucket{le=\"+Inf\"} 4\n"
                              "lat_seconds_sum 7.65\n"
                              "lat_seconds_count 4\n"
                              "lat_seconds_bucket{route=\"x\",le=\"0.1\"} 0\n"
                              "lat_seconds_bucket{route=\"x\",le=\"1\"} 0\n"
                              "lat_seconds_bucket{route=\"x\",le=\"+Inf\"} 1\n"
                              "lat_seconds_sum{route=\"x\"} 2\n"
                              "lat_seconds_count{route=\"x\"} 1\n");
    free(text);
    mr_http_metrics_free(m);
}

static void test_declaration_rules(void **state)
{
    (void)state;
    mr_http_metrics *m = mr_http_metrics_new();
    mr_err err = {0};
    assert_int_equal(mr_http_metrics_counter(m, "9bad", "x", &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "\"9bad\""));
    assert_int_equal(mr_http_metrics_counter(m, "c_total", "x", NULL), MR_OK);
    assert_int_equal(mr_http_metrics_counter(m, "c_total", "x", NULL), MR_OK);
    assert_int_equal(mr_http_metrics_histogram(m, "c_total", "x", NULL, 0, &err), MR_EEXISTS);
    const double unordered[] = {1, 0.5};
    assert_int_equal(mr_http_metrics_histogram(m, "h", "x", unordered, 2, &err), MR_EINVAL);
    assert_non_null(strstr(err.msg, "bucket 1"));
    assert_int_equal(mr_http_metrics_inc(m, "missing_total", NULL, 1), MR_ENOTFOUND);
    assert_int_equal(mr_http_metrics_inc(m, "c_total", NULL, -1), MR_EINVAL);
    assert_int_equal(mr_http_metrics_observe(m, "c_total", NULL, 1), MR_EINVAL);
    const char *bad_label[] = {"bad-name", "v", NULL};
    assert_int_equal(mr_http_metrics_inc(m, "c_total", bad_label, 1), MR_EINVAL);
    char *text = mr_http_metrics_render(m);
    assert_string_equal(text, "# HELP c_total x\n# TYPE c_total counter\n");
    free(text);
    mr_http_metrics_free(m);
}

#define ADDERS 4
#define ADDS 20000

static void *add_many(void *arg)
{
    mr_http_series *const *s = arg;
    for (int i = 0; i < ADDS; i++) {
        mr_http_series_add(s[0], 1);
        mr_http_series_add(s[1], 0.5);
    }
    return NULL;
}

/* A series held by its caller is the one the name finds: adds from threads at once, without the
 * registry's lock, all land, beside those made by name. */
static void test_series_held(void **state)
{
    (void)state;
    mr_http_metrics *m = mr_http_metrics_new();
    const double buckets[] = {1};
    assert_int_equal(mr_http_metrics_counter(m, "req_total", "Requests", NULL), MR_OK);
    assert_int_equal(mr_http_metrics_histogram(m, "dur_seconds", "Durations", buckets, 1, NULL), MR_OK);
    const char *lab[] = {"code", "200", NULL};
    mr_http_series *s[2] = {mr_http_metrics_series(m, "req_total", lab, false),
                            mr_http_metrics_series(m, "dur_seconds", NULL, true)};
    assert_non_null(s[0]);
    assert_non_null(s[1]);
    assert_ptr_equal(mr_http_metrics_series(m, "req_total", lab, false), s[0]);
    assert_null(mr_http_metrics_series(m, "req_total", lab, true));
    assert_null(mr_http_metrics_series(m, "missing_total", NULL, false));
    pthread_t t[ADDERS];
    for (int i = 0; i < ADDERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, add_many, s), 0);
    assert_int_equal(mr_http_metrics_inc(m, "req_total", lab, 3), MR_OK);
    for (int i = 0; i < ADDERS; i++)
        pthread_join(t[i], NULL);
    char *text = mr_http_metrics_render(m);
    assert_string_equal(text, "# HELP req_total Requests\n"
                              "# TYPE req_total counter\n"
                              "req_total{code=\"200\"} 80003\n"
                              "# HELP dur_seconds Durations\n"
                              "# TYPE dur_seconds histogram\n"
                              "dur_seconds_bucket{le=\"1\"} 80000\n"
                              "dur_seconds_bucket{le=\"+Inf\"} 80000\n"
                              "dur_seconds_sum 40000\n"
                              "dur_seconds_count 80000\n");
    free(text);
    mr_http_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_render),
        cmocka_unit_test(test_histogram_render),
        cmocka_unit_test(test_declaration_rules),
        cmocka_unit_test(test_series_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
