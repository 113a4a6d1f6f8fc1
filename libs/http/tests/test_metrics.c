/* test_metrics.c -- the metrics registry: declaration rules, counting, exact text output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_render),
        cmocka_unit_test(test_histogram_render),
        cmocka_unit_test(test_declaration_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
