/* ru_time_offset: the server-time sample that sets every signed request's timestamp. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rest_pool.h"
#include "rest_util.h"

static struct rest_resp timed(int64_t pre_us, int64_t ttfb_us, int64_t total_us)
{
    struct rest_resp r;
    memset(&r, 0, sizeof r);
    r.pretransfer_us = pre_us;
    r.ttfb_us = ttfb_us;
    r.total_us = total_us;
    return r;
}

/* The call waited 10 s in the pool before curl got it (start-up with thousands of requests):
 * the offset comes from when the request left, not from when the call was made. */
static void test_queue_wait_does_not_skew_the_offset(void **state)
{
    (void)state;
    struct rest_resp r = timed(1000, 3000, 3500); /* left 2.5 ms ago, answered 0.5 ms ago */
    int64_t now_ms = ru_wall_us() / 1000, off = 0;
    char err[256] = "";
    assert_int_equal(ru_time_offset(&r, ru_wall_us() - 10000000, now_ms + 5000, &off, err,
                                    sizeof err), 0);
    assert_in_range(off, 5000, 5003);
}

/* Without curl's timings, the midpoint of the whole call. */
static void test_without_timings_midpoint_of_the_call(void **state)
{
    (void)state;
    struct rest_resp r = timed(0, 0, 0);
    int64_t now_us = ru_wall_us(), off = 0;
    char err[256] = "";
    assert_int_equal(ru_time_offset(&r, now_us - 200000, now_us / 1000 + 5000, &off, err,
                                    sizeof err), 0);
    assert_in_range(off, 5099, 5103);
}

/* A round trip longer than the bound is refused: the offset's error could be half of it. */
static void test_long_round_trip_refused(void **state)
{
    (void)state;
    int64_t off = 77;
    char err[256] = "";
    struct rest_resp r = timed(1000, 1000 + (RU_TIME_MAX_RTT_MS + 500) * 1000LL,
                               1000 + (RU_TIME_MAX_RTT_MS + 500) * 1000LL);
    assert_int_equal(ru_time_offset(&r, ru_wall_us(), ru_wall_us() / 1000, &off, err, sizeof err),
                     -ETIMEDOUT);
    assert_non_null(strstr(err, "round trip"));
    assert_int_equal(off, 77);

    r = timed(0, 0, 0);
    err[0] = 0;
    assert_int_equal(ru_time_offset(&r, ru_wall_us() - 3000000, ru_wall_us() / 1000, &off, err,
                                    sizeof err), -ETIMEDOUT);
    assert_non_null(strstr(err, "round trip"));

    /* Just inside the bound: taken. */
    r = timed(1000, 1000 + (RU_TIME_MAX_RTT_MS - 10) * 1000LL, 1000 + (RU_TIME_MAX_RTT_MS - 10) * 1000LL);
    assert_int_equal(ru_time_offset(&r, ru_wall_us(), ru_wall_us() / 1000, &off, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_wait_does_not_skew_the_offset),
        cmocka_unit_test(test_without_timings_midpoint_of_the_call),
        cmocka_unit_test(test_long_round_trip_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
