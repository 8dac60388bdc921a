/* rate_budget: admission against the safe share of a fixed (or rolling) window, priorities, the exchange's
 * usage reports, throttle/ban blocks with Retry-After and backoff, all with an injected clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rate_budget.h"

#define T0 1700000040000LL /* a multiple of 60 s and of 10 s: a window starts here */

static struct rate_budget *mk(int64_t limit, int64_t window_ms) {
    struct rate_budget_cfg c = {.name = "test", .limit = limit, .window_ms = window_ms};
    struct rate_budget *b = rate_budget_new(&c);
    assert_non_null(b);
    return b;
}

static void test_invalid_cfg(void **state) {
    (void)state;
    struct rate_budget_cfg c = {.limit = 0, .window_ms = 1000};
    errno = 0;
    assert_null(rate_budget_new(&c));
    assert_int_equal(errno, EINVAL);
    c.limit = 10;
    c.window_ms = 0;
    assert_null(rate_budget_new(&c));
    c.window_ms = 1000;
    c.safety_pct = 101;
    assert_null(rate_budget_new(&c));
    assert_null(rate_budget_new(NULL));
    assert_null(rate_budget_unref(NULL));
}

static void test_safety_share_and_window(void **state) {
    (void)state;
    struct rate_budget *b = mk(100, 60000);
    int64_t at = 0;
    /* orders may use 90 of 100 */
    for (int i = 0; i < 90; i++) assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + i, &at), 0);
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 100, &at), -EAGAIN);
    assert_int_equal(at, T0 + 60000); /* the window's end */
    struct rate_budget_stats st;
    rate_budget_get_stats(b, T0 + 100, &st);
    assert_int_equal(st.used, 90);
    assert_int_equal(st.headroom, 10);
    assert_int_equal(st.admitted, 90);
    assert_true(st.deferred >= 1);
    /* the next window starts from zero */
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 60000, &at), 0);
    rate_budget_get_stats(b, T0 + 60000, &st);
    assert_int_equal(st.used, 1);
    rate_budget_unref(b);
}

static void test_priorities_keep_headroom(void **state) {
    (void)state;
    struct rate_budget *b = mk(100, 60000);
    /* bulk stops at 72 (100 * 90 % * 80 %), queries at 85, orders at 90 */
    assert_int_equal(rate_budget_acquire(b, 72, RB_PRIO_BULK, T0, NULL), 0);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_BULK, T0, NULL), -EAGAIN);
    assert_int_equal(rate_budget_acquire(b, 13, RB_PRIO_QUERY, T0, NULL), 0);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_QUERY, T0, NULL), -EAGAIN);
    assert_int_equal(rate_budget_acquire(b, 5, RB_PRIO_ORDER, T0, NULL), 0);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0, NULL), -EAGAIN);
    /* check counts nothing; cost 0 always fits an unblocked budget */
    assert_int_equal(rate_budget_check(b, 0, RB_PRIO_BULK, T0, NULL), 0);
    rate_budget_unref(b);
}

static void test_oversized_cost_only_into_empty_window(void **state) {
    (void)state;
    struct rate_budget *b = mk(10, 1000);
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0, NULL), 0);
    assert_int_equal(rate_budget_acquire(b, 50, RB_PRIO_ORDER, T0, NULL), -EAGAIN);
    assert_int_equal(rate_budget_acquire(b, 50, RB_PRIO_ORDER, T0 + 1000, NULL), 0);
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 1001, NULL), -EAGAIN);
    rate_budget_unref(b);
}

static void test_server_usage_max_wins(void **state) {
    (void)state;
    struct rate_budget *b = mk(2400, 60000);
    struct rate_budget_stats st;
    assert_int_equal(rate_budget_acquire(b, 5, RB_PRIO_QUERY, T0, NULL), 0);
    /* the exchange counts other clients on our IP too */
    rate_budget_note_server(b, 2100, -1, -1, T0, T0 + 10);
    rate_budget_get_stats(b, T0 + 10, &st);
    assert_int_equal(st.used, 2100);
    assert_int_equal(st.local_used, 5);
    assert_int_equal(st.server_used, 2100);
    assert_int_equal(rate_budget_check(b, 60, RB_PRIO_ORDER, T0 + 10, NULL), 0);   /* 2160 */
    assert_int_equal(rate_budget_check(b, 61, RB_PRIO_ORDER, T0 + 10, NULL), -EAGAIN);
    /* a smaller report does not lower it */
    rate_budget_note_server(b, 100, -1, -1, T0, T0 + 20);
    rate_budget_get_stats(b, T0 + 20, &st);
    assert_int_equal(st.used, 2100);
    /* the next window: reports reset; a late answer to a request of the old window is ignored */
    rate_budget_note_server(b, 2300, -1, -1, T0 + 59990, T0 + 60005);
    rate_budget_get_stats(b, T0 + 60005, &st);
    assert_int_equal(st.used, 0);
    assert_int_equal(st.server_used, -1);
    rate_budget_note_server(b, 7, -1, -1, T0 + 60001, T0 + 60006);
    rate_budget_get_stats(b, T0 + 60006, &st);
    assert_int_equal(st.used, 7);
    rate_budget_unref(b);
}

static void test_server_limit_and_reset(void **state) {
    (void)state;
    struct rate_budget_cfg c = {.name = "bybit ep", .limit = 10, .window_ms = 1000,
                                .hdr_remaining = "X-Bapi-Limit-Status", .hdr_limit = "X-Bapi-Limit",
                                .hdr_reset_ms = "X-Bapi-Limit-Reset-Timestamp"};
    struct rate_budget *b = rate_budget_new(&c);
    assert_non_null(b);
    assert_string_equal(rate_budget_hdr_remaining(b), "X-Bapi-Limit-Status");
    assert_string_equal(rate_budget_hdr_limit(b), "X-Bapi-Limit");
    assert_string_equal(rate_budget_hdr_reset(b), "X-Bapi-Limit-Reset-Timestamp");
    assert_null(rate_budget_hdr_used(b));
    struct rate_budget_stats st;
    rate_budget_note_server(b, 3, 20, -1, T0, T0 + 1); /* limit raised to 20 */
    rate_budget_get_stats(b, T0 + 1, &st);
    assert_int_equal(st.limit, 20);
    assert_int_equal(st.used, 3);
    /* exhausted, frees up at T0 + 1700 (past this window): blocked until then */
    rate_budget_note_server(b, 20, 20, T0 + 1700, T0 + 2, T0 + 3);
    int64_t at = 0;
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0 + 1200, &at), -EAGAIN);
    assert_int_equal(at, T0 + 1700);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0 + 1700, &at), 0);
    rate_budget_unref(b);
}

/* Rolling (Bybit): the window slides with the admissions; the exchange's rolling count of the
 * previous second does not fill the next one; exhaustion still blocks until its reset. */
static void test_rolling_window(void **state) {
    (void)state;
    struct rate_budget_cfg c = {.name = "bybit ep", .limit = 10, .window_ms = 1000, .safety_pct = 100,
                                .hdr_remaining = "X-Bapi-Limit-Status",
                                .hdr_reset_ms = "X-Bapi-Limit-Reset-Timestamp", .rolling = true};
    struct rate_budget *b = rate_budget_new(&c);
    assert_non_null(b);
    int64_t at = 0;
    /* 10 over the second half of a fixed window: the 11th waits for the first to slide out */
    for (int i = 0; i < 10; i++) assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 500 + 40 * i, &at), 0);
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 1100, &at), -EAGAIN);
    assert_int_equal(at, T0 + 1500);
    assert_int_equal(rate_budget_next_change(b, T0 + 1100), T0 + 1500);
    /* the server's rolling count, reported in the next fixed window, is not charged to it */
    rate_budget_note_server(b, 9, 10, T0 + 1500, T0 + 1050, T0 + 1060);
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 1500, &at), 0);
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 1540, &at), 0);
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 1541, &at), -EAGAIN);
    assert_int_equal(at, T0 + 1580);
    struct rate_budget_stats st;
    rate_budget_get_stats(b, T0 + 1541, &st);
    assert_int_equal(st.used, 10);
    /* a refund takes its admission out */
    rate_budget_release(b, 1, T0 + 1540, T0 + 1541);
    assert_int_equal(rate_budget_acquire(b, 1, RB_PRIO_ORDER, T0 + 1541, &at), 0);
    /* exhausted by the exchange's count (another client of the key): blocked until its reset */
    rate_budget_note_server(b, 10, 10, T0 + 2600, T0 + 2000, T0 + 2010);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0 + 2100, &at), -EAGAIN);
    assert_int_equal(at, T0 + 2600);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0 + 2600, &at), 0);
    /* many admissions: the log grows and still slides */
    for (int i = 0; i < 5000; i++) rate_budget_commit(b, 1, T0 + 10000 + i / 10);
    rate_budget_get_stats(b, T0 + 10499, &st);
    assert_int_equal(st.used, 5000);
    rate_budget_get_stats(b, T0 + 10999 + 250, &st);
    assert_int_equal(st.used, 5000 - 2500); /* 10 a ms up to T0 + 10249 slid out */
    rate_budget_unref(b);
}

static void test_throttle_retry_after_blocks_everything(void **state) {
    (void)state;
    struct rate_budget *b = mk(100, 60000);
    int64_t at = 0;
    rate_budget_throttled(b, 429, 3000, T0);
    assert_int_equal(rate_budget_check(b, 0, RB_PRIO_ORDER, T0 + 2999, &at), -EAGAIN);
    assert_int_equal(at, T0 + 3000);
    assert_int_equal(rate_budget_next_change(b, T0 + 1), T0 + 3000);
    struct rate_budget_stats st;
    rate_budget_get_stats(b, T0 + 1000, &st);
    assert_int_equal(st.blocked_ms, 2000);
    assert_int_equal(st.throttles, 1);
    assert_false(st.banned);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0 + 3000, NULL), 0);
    /* a block never shrinks */
    rate_budget_throttled(b, 429, 10000, T0 + 4000);
    rate_budget_throttled(b, 429, 1000, T0 + 4001);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0 + 13999, &at), -EAGAIN);
    assert_int_equal(at, T0 + 14000);
    rate_budget_unref(b);
}

static void test_backoff_doubles_with_jitter_and_resets(void **state) {
    (void)state;
    struct rate_budget_cfg c = {.limit = 100, .window_ms = 60000, .backoff_min_ms = 1000,
                                .backoff_max_ms = 8000};
    struct rate_budget *b = rate_budget_new(&c);
    int64_t now = T0, at = 0;
    int64_t expect[] = {1000, 2000, 4000, 8000, 8000};
    for (int i = 0; i < 5; i++) {
        rate_budget_throttled(b, 429, -1, now);
        assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, now, &at), -EAGAIN);
        int64_t d = at - now;
        assert_true(d >= expect[i] * 8 / 10 && d <= expect[i] * 12 / 10);
        now = at;
    }
    rate_budget_ok(b);
    rate_budget_throttled(b, 429, -1, now);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, now, &at), -EAGAIN);
    assert_true(at - now >= 800 && at - now <= 1200);
    rate_budget_unref(b);
}

static void test_forbidden_minimum(void **state) {
    (void)state;
    struct rate_budget_cfg c = {.limit = 600, .window_ms = 5000, .forbidden_min_ms = 600000};
    struct rate_budget *b = rate_budget_new(&c);
    int64_t at = 0;
    rate_budget_throttled(b, 403, 2000, T0);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0, &at), -EAGAIN);
    assert_int_equal(at, T0 + 600000);
    rate_budget_unref(b);
}

static void test_ban_blocks_even_free_requests(void **state) {
    (void)state;
    struct rate_budget *b = mk(2400, 60000);
    int64_t at = 0;
    rate_budget_banned(b, -1, T0); /* no Retry-After: 2 min */
    assert_int_equal(rate_budget_check(b, 0, RB_PRIO_ORDER, T0 + 119999, &at), -EAGAIN);
    assert_int_equal(at, T0 + 120000);
    struct rate_budget_stats st;
    rate_budget_get_stats(b, T0 + 1, &st);
    assert_true(st.banned);
    assert_int_equal(st.bans, 1);
    assert_int_equal(rate_budget_check(b, 0, RB_PRIO_ORDER, T0 + 120000, NULL), 0);
    rate_budget_banned(b, 7000, T0 + 200000);
    assert_int_equal(rate_budget_check(b, 0, RB_PRIO_ORDER, T0 + 206999, &at), -EAGAIN);
    assert_int_equal(rate_budget_check(b, 0, RB_PRIO_ORDER, T0 + 207000, &at), 0);
    rate_budget_get_stats(b, T0 + 207000, &st);
    assert_false(st.banned);
    rate_budget_unref(b);
}

static void test_release_and_refs(void **state) {
    (void)state;
    struct rate_budget *b = mk(10, 10000);
    assert_ptr_equal(rate_budget_ref(b), b);
    assert_int_equal(rate_budget_acquire(b, 9, RB_PRIO_ORDER, T0, NULL), 0);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0, NULL), -EAGAIN);
    rate_budget_release(b, 9, T0, T0 + 5);
    assert_int_equal(rate_budget_check(b, 9, RB_PRIO_ORDER, T0 + 5, NULL), 0);
    /* a release from an earlier window changes nothing */
    assert_int_equal(rate_budget_acquire(b, 9, RB_PRIO_ORDER, T0 + 10000, NULL), 0);
    rate_budget_release(b, 9, T0, T0 + 10001);
    assert_int_equal(rate_budget_check(b, 1, RB_PRIO_ORDER, T0 + 10001, NULL), -EAGAIN);
    assert_int_equal(rate_budget_set_limit(b, 20, 100), 0);
    assert_int_equal(rate_budget_check(b, 11, RB_PRIO_ORDER, T0 + 10001, NULL), 0);
    assert_int_equal(rate_budget_set_limit(b, -1, 0), -EINVAL);
    assert_string_equal(rate_budget_name(b), "test");
    assert_null(rate_budget_unref(b));
    assert_null(rate_budget_unref(b)); /* the last reference */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_cfg),
        cmocka_unit_test(test_safety_share_and_window),
        cmocka_unit_test(test_priorities_keep_headroom),
        cmocka_unit_test(test_oversized_cost_only_into_empty_window),
        cmocka_unit_test(test_server_usage_max_wins),
        cmocka_unit_test(test_server_limit_and_reset),
        cmocka_unit_test(test_rolling_window),
        cmocka_unit_test(test_throttle_retry_after_blocks_everything),
        cmocka_unit_test(test_backoff_doubles_with_jitter_and_resets),
        cmocka_unit_test(test_forbidden_minimum),
        cmocka_unit_test(test_ban_blocks_even_free_requests),
        cmocka_unit_test(test_release_and_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
