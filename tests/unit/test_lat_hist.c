/* Unit tests for daemon/lat_hist: exact below 2048 us, 3 significant digits above, percentiles
 * against a sorted list of the same samples, bucket walk totals, clamping, reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "lat_hist.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_exact_small_values(void **state)
{
    (void)state;
    struct lat_hist *h = lat_hist_new();
    assert_non_null(h);
    assert_int_equal(lat_hist_count(h), 0);
    assert_int_equal(lat_hist_percentile(h, 99), 0);
    for (int64_t v = 1; v <= 2000; v++) lat_hist_record(h, v);
    assert_int_equal(lat_hist_count(h), 2000);
    assert_int_equal(lat_hist_min(h), 1);
    assert_int_equal(lat_hist_max(h), 2000);
    assert_int_equal(lat_hist_percentile(h, 50), 1000);
    assert_int_equal(lat_hist_percentile(h, 99), 1980);
    assert_int_equal(lat_hist_percentile(h, 100), 2000);
    lat_hist_free(h);
}

struct walk { uint64_t total; int64_t last; int ordered; };
static void walk_fn(void *ud, int64_t upper, uint64_t n)
{
    struct walk *w = ud;
    if (upper <= w->last) w->ordered = 0;
    w->last = upper;
    w->total += n;
}

static void test_against_sorted_samples(void **state)
{
    (void)state;
    enum { N = 100000 };
    int64_t *v = malloc(N * sizeof *v);
    assert_non_null(v);
    struct lat_hist *h = lat_hist_new();
    srand(7);
    for (int i = 0; i < N; i++) {
        /* spread over 1 us .. ~10 s, log-uniform-ish */
        int64_t x = ((int64_t)rand() % 1000 + 1) << (rand() % 24);
        v[i] = x;
        lat_hist_record(h, x);
    }
    qsort(v, N, sizeof *v, cmp_i64);
    const double ps[] = {1, 10, 50, 90, 99, 99.9, 99.99, 100};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        size_t rank = (size_t)(ps[k] / 100.0 * N + 0.5);
        if (rank < 1) rank = 1;
        int64_t exact = v[rank - 1], got = lat_hist_percentile(h, ps[k]);
        /* the bucket's highest value: never below the sample, at most 1/1024 above it */
        assert_true(got >= exact);
        assert_true(got <= exact + exact / 1024 + 1);
    }
    assert_int_equal(lat_hist_max(h), v[N - 1]);
    assert_int_equal(lat_hist_min(h), v[0]);
    struct walk w = {0, -1, 1};
    lat_hist_foreach(h, walk_fn, &w);
    assert_int_equal(w.total, N);
    assert_true(w.ordered);
    lat_hist_reset(h);
    assert_int_equal(lat_hist_count(h), 0);
    assert_int_equal(lat_hist_max(h), 0);
    lat_hist_free(h);
    free(v);
}

static void test_clamps(void **state)
{
    (void)state;
    struct lat_hist *h = lat_hist_new();
    lat_hist_record(h, -5);
    lat_hist_record(h, INT64_MAX);
    assert_int_equal(lat_hist_count(h), 2);
    assert_int_equal(lat_hist_min(h), 0);
    assert_int_equal(lat_hist_max(h), (INT64_C(1) << 36) - 1);
    assert_int_equal(lat_hist_percentile(h, 100), (INT64_C(1) << 36) - 1);
    assert_null(lat_hist_free(h));
    assert_null(lat_hist_free(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_small_values),
        cmocka_unit_test(test_against_sorted_samples),
        cmocka_unit_test(test_clamps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
