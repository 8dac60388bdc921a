/* Unit tests for daemon/metrics: exact text exposition output, escaping, histogram buckets,
 * registration errors.
 *
 * `test_metrics --dump` prints a sample registry (every kind, escaping, Inf/NaN) and exits, for
 * the separate check `test_metrics --dump | promtool check metrics` (promtool is optional). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(const struct met_registry *reg)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(met_render(reg, &out, &len), 0);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

static double queue_depth(void *ud) { return (double)*(int *)ud; }
static double queue_depth_d(void *ud) { return *(double *)ud; }
static uint64_t external_total(void *ud) { return *(uint64_t *)ud; }

/* Builds the registry shared by the exact-text test and --dump. */
static struct met_registry *sample_registry(int *depth)
{
    struct met_registry *reg = met_registry_new();
    assert_non_null(reg);

    struct met_family *orders =
        met_counter_new(reg, "ct_orders_total", "Follower orders by result.\nSecond \\ line.",
                        "result", "exchange");
    assert_non_null(orders);
    struct met_counter *filled = met_counter_child(orders, "filled", "binance-usdm");
    struct met_counter *odd = met_counter_child(orders, "we\"ird\\va\nlue", "sim");
    assert_non_null(filled);
    assert_non_null(odd);
    met_counter_inc(filled);
    met_counter_add(filled, 41);
    met_counter_inc(odd);

    struct met_family *up = met_gauge_new(reg, "ct_up", "1 when running.");
    assert_non_null(up);
    met_gauge_set(met_gauge_child(up), 1);

    struct met_family *q = met_gauge_new(reg, "ct_queue_depth", "Read at scrape time.", "queue");
    assert_non_null(q);
    met_gauge_set_fn(met_gauge_child(q, "journal"), queue_depth, depth);
    met_gauge_set(met_gauge_child(q, "spool"), 0.1);

    static const double bounds[] = {0.25, 1, 2.5};
    struct met_family *lat =
        met_histogram_new(reg, "ct_copy_latency_seconds", "Leader fill to follower ack.",
                          bounds, 3, "exchange");
    assert_non_null(lat);
    struct met_hist *h = met_hist_child(lat, "binance-usdm");
    assert_non_null(h);
    met_hist_observe(h, 0.125);
    met_hist_observe(h, 0.25); /* on the bound: le is inclusive */
    met_hist_observe(h, 0.5);
    met_hist_observe(h, 4);
    met_hist_observe(h, 1000);
    assert_int_equal(met_hist_count(h), 5);
    /* a child with no observations still renders all buckets as 0 */
    assert_non_null(met_hist_child(lat, "sim"));
    return reg;
}

static const char expected_sample[] =
    "# HELP ct_orders_total Follower orders by result.\\nSecond \\\\ line.\n"
    "# TYPE ct_orders_total counter\n"
    "ct_orders_total{result=\"filled\",exchange=\"binance-usdm\"} 42\n"
    "ct_orders_total{result=\"we\\\"ird\\\\va\\nlue\",exchange=\"sim\"} 1\n"
    "# HELP ct_up 1 when running.\n"
    "# TYPE ct_up gauge\n"
    "ct_up 1\n"
    "# HELP ct_queue_depth Read at scrape time.\n"
    "# TYPE ct_queue_depth gauge\n"
    "ct_queue_depth{queue=\"journal\"} 7\n"
    "ct_queue_depth{queue=\"spool\"} 0.1\n"
    "# HELP ct_copy_latency_seconds Leader fill to follower ack.\n"
    "# TYPE ct_copy_latency_seconds histogram\n"
    "ct_copy_latency_seconds_bucket{exchange=\"binance-usdm\",le=\"0.25\"} 2\n"
    "ct_copy_latency_seconds_bucket{exchange=\"binance-usdm\",le=\"1\"} 3\n"
    "ct_copy_latency_seconds_bucket{exchange=\"binance-usdm\",le=\"2.5\"} 3\n"
    "ct_copy_latency_seconds_bucket{exchange=\"binance-usdm\",le=\"+Inf\"} 5\n"
    "ct_copy_latency_seconds_sum{exchange=\"binance-usdm\"} 1004.875\n"
    "ct_copy_latency_seconds_count{exchange=\"binance-usdm\"} 5\n"
    "ct_copy_latency_seconds_bucket{exchange=\"sim\",le=\"0.25\"} 0\n"
    "ct_copy_latency_seconds_bucket{exchange=\"sim\",le=\"1\"} 0\n"
    "ct_copy_latency_seconds_bucket{exchange=\"sim\",le=\"2.5\"} 0\n"
    "ct_copy_latency_seconds_bucket{exchange=\"sim\",le=\"+Inf\"} 0\n"
    "ct_copy_latency_seconds_sum{exchange=\"sim\"} 0\n"
    "ct_copy_latency_seconds_count{exchange=\"sim\"} 0\n";

static void test_exact_text(void **state)
{
    (void)state;
    int depth = 7;
    struct met_registry *reg = sample_registry(&depth);
    char *out = render(reg);
    assert_string_equal(out, expected_sample);
    free(out);

    /* the callback gauge is read at render time */
    depth = 9;
    out = render(reg);
    assert_non_null(strstr(out, "ct_queue_depth{queue=\"journal\"} 9\n"));
    free(out);
    assert_null(met_registry_free(reg));
}

static void test_child_pointer_is_stable(void **state)
{
    (void)state;
    struct met_registry *reg = met_registry_new();
    struct met_family *f = met_counter_new(reg, "x_total", "x", "a", "b");
    struct met_counter *c1 = met_counter_child(f, "1", "2");
    assert_non_null(c1);
    /* growing the children array must not move children already handed out */
    for (int i = 0; i < 100; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        assert_non_null(met_counter_child(f, v, "z"));
    }
    assert_ptr_equal(met_counter_child(f, "1", "2"), c1);
    met_counter_add(c1, 5);
    assert_int_equal(met_counter_value(c1), 5);

    /* callback-driven counter: read at render time, stored value ignored meanwhile */
    uint64_t ext = 17;
    struct met_family *e = met_counter_new(reg, "ext_total", "kept elsewhere");
    struct met_counter *ec = met_counter_child(e);
    met_counter_add(ec, 1000);
    met_counter_set_fn(ec, external_total, &ext);
    ext = 18;
    assert_int_equal(met_counter_value(ec), 18);
    char *out = render(reg);
    assert_non_null(strstr(out, "\n# TYPE ext_total counter\next_total 18\n"));
    free(out);
    met_counter_set_fn(ec, NULL, NULL);
    assert_int_equal(met_counter_value(ec), 1000);
    met_registry_free(reg);
}

static void test_registration_errors(void **state)
{
    (void)state;
    struct met_registry *reg = met_registry_new();
    static const double ok[] = {1, 2}, dec[] = {2, 1}, dup[] = {1, 1};
    const double nan_b[] = {1, NAN};
    const double inf_tail[] = {1, 2, INFINITY};

    errno = 0;
    assert_null(met_counter_new(reg, "no_suffix", "h"));
    assert_int_equal(errno, EINVAL);
    assert_null(met_gauge_new(reg, "1bad", "h"));
    assert_null(met_gauge_new(reg, "bad-name", "h"));
    assert_null(met_gauge_new(reg, "", "h"));
    assert_null(met_gauge_new(reg, "g", NULL));
    assert_null(met_gauge_new(reg, "g", "h", "__reserved"));
    assert_null(met_gauge_new(reg, "g", "h", "bad-label"));
    assert_null(met_gauge_new(reg, "g", "h", "a", "a"));
    assert_null(met_histogram_new(reg, "h", "h", ok, 2, "le"));
    assert_null(met_histogram_new(reg, "h", "h", dec, 2));
    assert_null(met_histogram_new(reg, "h", "h", dup, 2));
    assert_null(met_histogram_new(reg, "h", "h", nan_b, 2));
    assert_int_equal(errno, EINVAL);

    struct met_family *g = met_gauge_new(reg, "g", "h", "a");
    assert_non_null(g);
    errno = 0;
    assert_null(met_gauge_new(reg, "g", "again"));
    assert_int_equal(errno, EEXIST);

    /* a trailing +Inf bound is the implicit bucket, not a second one */
    struct met_family *h = met_histogram_new(reg, "lat", "h", inf_tail, 3);
    assert_non_null(h);
    assert_null(met_gauge_new(reg, "lat_count", "collides with the histogram's series"));
    assert_int_equal(errno, EEXIST);
    assert_null(met_histogram_new(reg, "g", "h", ok, 2));

    /* wrong label count or kind */
    errno = 0;
    assert_null(met_gauge_child(g));
    assert_int_equal(errno, EINVAL);
    assert_null(met_gauge_child(g, "x", "y"));
    assert_null(met_counter_child(g, "x"));
    assert_non_null(met_gauge_child(g, "x"));

    char *out = render(reg);
    assert_string_equal(out, "# HELP g h\n# TYPE g gauge\ng{a=\"x\"} 0\n"
                             "# HELP lat h\n# TYPE lat histogram\n"
                             "lat_bucket{le=\"1\"} 0\nlat_bucket{le=\"2\"} 0\n"
                             "lat_bucket{le=\"+Inf\"} 0\nlat_sum 0\nlat_count 0\n");
    free(out);
    met_registry_free(reg);
}

static void test_number_formatting(void **state)
{
    (void)state;
    struct met_registry *reg = met_registry_new();
    struct met_family *f = met_gauge_new(reg, "v", "values", "k");
    met_gauge_set(met_gauge_child(f, "a"), 0.1);
    met_gauge_set(met_gauge_child(f, "b"), -2.5);
    met_gauge_set(met_gauge_child(f, "c"), 1e21);
    met_gauge_set(met_gauge_child(f, "d"), INFINITY);
    met_gauge_set(met_gauge_child(f, "e"), -INFINITY);
    met_gauge_set(met_gauge_child(f, "f"), NAN);
    met_gauge_set(met_gauge_child(f, "g"), 123456789);
    met_gauge_set(met_gauge_child(f, "h"), 1.0 / 3);
    struct met_gauge *i = met_gauge_child(f, "i");
    met_gauge_add(i, 3);
    met_gauge_add(i, -1);
    static const double b[] = {0.005, 0.1};
    struct met_family *hf = met_histogram_new(reg, "hh", "", b, 2);
    met_hist_observe(met_hist_child(hf), NAN);

    struct met_family *c = met_counter_new(reg, "big_total", "");
    met_counter_add(met_counter_child(c), UINT64_MAX);

    char *out = render(reg);
    assert_string_equal(out, "# HELP v values\n# TYPE v gauge\n"
                             "v{k=\"a\"} 0.1\n"
                             "v{k=\"b\"} -2.5\n"
                             "v{k=\"c\"} 1e+21\n"
                             "v{k=\"d\"} +Inf\n"
                             "v{k=\"e\"} -Inf\n"
                             "v{k=\"f\"} NaN\n"
                             "v{k=\"g\"} 123456789\n"
                             "v{k=\"h\"} 0.3333333333333333\n"
                             "v{k=\"i\"} 2\n"
                             "# HELP hh \n# TYPE hh histogram\n"
                             "hh_bucket{le=\"0.005\"} 0\nhh_bucket{le=\"0.1\"} 0\n"
                             "hh_bucket{le=\"+Inf\"} 1\nhh_sum NaN\nhh_count 1\n"
                             "# HELP big_total \n# TYPE big_total counter\n"
                             "big_total 18446744073709551615\n");
    free(out);
    met_registry_free(reg);
}

static void test_empty_and_large(void **state)
{
    (void)state;
    struct met_registry *reg = met_registry_new();
    char *out = render(reg);
    assert_string_equal(out, "");
    free(out);

    /* well past the initial 4 KiB buffer */
    struct met_family *f = met_counter_new(reg, "many_total", "many", "id");
    for (int i = 0; i < 5000; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        met_counter_add(met_counter_child(f, v), (uint64_t)i);
    }
    size_t len = 0;
    assert_int_equal(met_render(reg, &out, &len), 0);
    size_t lines = 0;
    for (size_t k = 0; k < len; k++) lines += out[k] == '\n';
    assert_int_equal(lines, 5002);
    assert_non_null(strstr(out, "\nmany_total{id=\"4999\"} 4999\n"));
    assert_int_equal(out[len - 1], '\n');
    free(out);
    met_registry_free(reg);
    assert_null(met_registry_free(NULL));
}

static int dump_sample(void)
{
    int depth = 7;
    struct met_registry *reg = sample_registry(&depth);
    struct met_family *f = met_gauge_new(reg, "ct_special_values", "Inf and NaN.", "k");
    met_gauge_set(met_gauge_child(f, "inf"), INFINITY);
    met_gauge_set(met_gauge_child(f, "nan"), NAN);
    char *out = NULL;
    size_t len = 0;
    if (met_render(reg, &out, &len) != 0) return 1;
    fwrite(out, 1, len, stdout);
    free(out);
    met_registry_free(reg);
    return 0;
}

/* Children live in the registry's arena and its hash index: 20,000 series (the index doubles
 * many times) keep their pointers and their creation order, label values longer than the
 * lookup's stack key and values that differ only in how they split into labels are separate
 * series. */
static void test_many_children(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct met_registry *reg = met_registry_new();
    assert_non_null(reg);
    struct met_family *f = met_counter_new(reg, "many_total", "many", "account", "result");
    static struct met_counter *kept[N];
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof v, "f%06d", i);
        kept[i] = met_counter_child(f, v, i % 2 ? "filled" : "rejected");
        assert_non_null(kept[i]);
        met_counter_add(kept[i], (uint64_t)i);
    }
    for (int i = 0; i < N; i += 7) {
        char v[16];
        snprintf(v, sizeof v, "f%06d", i);
        assert_ptr_equal(met_counter_child(f, v, i % 2 ? "filled" : "rejected"), kept[i]);
        assert_int_equal(met_counter_value(kept[i]), (uint64_t)i);
    }
    /* ("ab", "c") and ("a", "bc") are two series */
    struct met_counter *ab = met_counter_child(f, "ab", "c"), *a_bc = met_counter_child(f, "a", "bc");
    assert_non_null(ab);
    assert_non_null(a_bc);
    assert_ptr_not_equal(ab, a_bc);
    /* a key far longer than the stack buffer */
    char big[1200];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct met_counter *bc = met_counter_child(f, big, "filled");
    assert_non_null(bc);
    met_counter_inc(bc);
    assert_ptr_equal(met_counter_child(f, big, "filled"), bc);
    big[5] = 'y';
    assert_ptr_not_equal(met_counter_child(f, big, "filled"), bc);
    /* histogram children in the arena: independent buckets */
    static const double b[] = {1, 2};
    struct met_family *hf = met_histogram_new(reg, "many_seconds", "h", b, 2, "k");
    struct met_hist *h1 = met_hist_child(hf, "one"), *h2 = met_hist_child(hf, "two");
    met_hist_observe(h1, 1.5);
    met_hist_observe(h2, 0.5);
    met_hist_observe(h2, 0.5);
    assert_int_equal(met_hist_count(h1), 1);
    assert_int_equal(met_hist_count(h2), 2);

    char *out = render(reg);
    /* creation order, values rendered from the stored key */
    const char *first = strstr(out, "many_total{account=\"f000000\",result=\"rejected\"} 0\n");
    const char *second = strstr(out, "many_total{account=\"f000001\",result=\"filled\"} 1\n");
    const char *last = strstr(out, "many_total{account=\"f019999\",result=\"filled\"} 19999\n");
    assert_non_null(first);
    assert_true(first < second && second < last);
    assert_non_null(strstr(out, "many_total{account=\"ab\",result=\"c\"} 0\n"));
    assert_non_null(strstr(out, "many_total{account=\"a\",result=\"bc\"} 0\n"));
    assert_non_null(strstr(out, "many_seconds_bucket{k=\"one\",le=\"2\"} 1\n"));
    assert_non_null(strstr(out, "many_seconds_bucket{k=\"two\",le=\"1\"} 2\n"));
    size_t len1 = strlen(out);
    free(out);
    out = render(reg); /* sized from the last page: same text */
    assert_int_equal(strlen(out), len1);
    free(out);
    met_registry_free(reg);
}

/* A counter made at its first event shows 0 in the next page and its value from then on; the
 * events meanwhile are not lost. Other counters, and the labelless ones, are not affected. */
static void test_counter_from_zero(void **state)
{
    (void)state;
    struct met_registry *reg = met_registry_new();
    struct met_family *f = met_counter_new(reg, "thr_total", "throttles", "budget");
    struct met_counter *eager = met_counter_child(f, "ip");
    met_counter_add(eager, 3);
    struct met_counter *lazy = met_counter_child(f, "account:a");
    met_counter_inc(lazy);
    met_counter_from_zero(lazy);
    met_counter_inc(lazy);
    assert_int_equal(met_counter_value(lazy), 2);
    char *out = render(reg);
    assert_non_null(strstr(out, "thr_total{budget=\"ip\"} 3\n"));
    assert_non_null(strstr(out, "thr_total{budget=\"account:a\"} 0\n"));
    free(out);
    out = render(reg);
    assert_non_null(strstr(out, "thr_total{budget=\"account:a\"} 2\n"));
    free(out);
    met_counter_inc(lazy);
    out = render(reg);
    assert_non_null(strstr(out, "thr_total{budget=\"account:a\"} 3\n"));
    free(out);
    met_registry_free(reg);
}

static double half(void *ud) { return *(double *)ud / 2; }
static uint64_t twice(void *ud) { return *(uint64_t *)ud * 2; }

/* A callback replaces the value while it is set (also a second set_fn: the new one), updates
 * meanwhile go to the stored value, which is back when the callback is removed; the callbacks'
 * records are freed with the registry (ASan's leak check). */
static void test_callbacks_keep_stored_value(void **state)
{
    (void)state;
    struct met_registry *reg = met_registry_new();
    struct met_family *gf = met_gauge_new(reg, "cb_gauge", "g", "k");
    struct met_family *cf = met_counter_new(reg, "cb_total", "c", "k");
    struct met_gauge *g = met_gauge_child(gf, "a"), *plain = met_gauge_child(gf, "b");
    struct met_counter *c = met_counter_child(cf, "a");
    double src = 10;
    uint64_t csrc = 21;
    met_gauge_set(g, 3);
    met_gauge_set(plain, 4);
    assert_int_equal(met_gauge_set_fn(g, queue_depth_d, &src), 0);
    assert_true(met_gauge_value(g) == 10);
    assert_int_equal(met_gauge_set_fn(g, half, &src), 0);
    assert_true(met_gauge_value(g) == 5);
    met_gauge_add(g, 2); /* stored: 5 */
    assert_true(met_gauge_value(g) == 5);
    assert_true(met_gauge_value(plain) == 4);
    met_counter_add(c, 7);
    assert_int_equal(met_counter_set_fn(c, twice, &csrc), 0);
    met_counter_inc(c);
    assert_int_equal(met_counter_value(c), 42);
    char *out = render(reg);
    assert_non_null(strstr(out, "cb_gauge{k=\"a\"} 5\ncb_gauge{k=\"b\"} 4\n"));
    assert_non_null(strstr(out, "cb_total{k=\"a\"} 42\n"));
    free(out);
    assert_int_equal(met_gauge_set_fn(g, NULL, NULL), 0);
    assert_true(met_gauge_value(g) == 5);
    assert_int_equal(met_gauge_set_fn(plain, NULL, NULL), 0); /* none set: nothing changes */
    assert_true(met_gauge_value(plain) == 4);
    /* c keeps its callback: freed with the registry */
    met_registry_free(reg);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--dump") == 0) return dump_sample();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_text),
        cmocka_unit_test(test_child_pointer_is_stable),
        cmocka_unit_test(test_registration_errors),
        cmocka_unit_test(test_number_formatting),
        cmocka_unit_test(test_empty_and_large),
        cmocka_unit_test(test_many_children),
        cmocka_unit_test(test_counter_from_zero),
        cmocka_unit_test(test_callbacks_keep_stored_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
