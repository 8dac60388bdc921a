/* breaker: closed -> open on consecutive failures or a failure ratio, fail fast while open,
 * exactly one probe when half-open, probe result closes or re-opens with a doubled cool-down.
 * Injected clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "breaker.h"

static struct breaker *mk(void) {
    struct breaker_cfg c = {.name = "fapi", .failures = 3, .cooldown_ms = 1000,
                            .cooldown_max_ms = 4000, .probe_url = "http://h/fapi/v1/time"};
    struct breaker *b = breaker_new(&c);
    assert_non_null(b);
    return b;
}

static void test_opens_after_consecutive_failures(void **state) {
    (void)state;
    struct breaker *b = mk();
    int64_t t = 1000;
    assert_int_equal(breaker_allow(b, false, t), BREAKER_ALLOW);
    breaker_record(b, false, false, t);
    breaker_record(b, false, false, t);
    breaker_record(b, true, false, t); /* a success resets the run */
    breaker_record(b, false, false, t);
    breaker_record(b, false, false, t);
    assert_int_equal(breaker_state(b, t), BREAKER_CLOSED);
    assert_false(breaker_refusing(b, t));
    breaker_record(b, false, false, t);
    assert_int_equal(breaker_state(b, t), BREAKER_OPEN);
    assert_true(breaker_refusing(b, t + 999));
    assert_int_equal(breaker_allow(b, true, t + 999), BREAKER_DENY);
    /* stragglers answered while open change nothing */
    breaker_record(b, true, false, t + 10);
    assert_int_equal(breaker_state(b, t + 10), BREAKER_OPEN);
    struct breaker_stats st;
    breaker_get_stats(b, t + 500, &st);
    assert_string_equal(st.name, "fapi");
    assert_int_equal(st.state, BREAKER_OPEN);
    assert_int_equal(st.opens, 1);
    assert_int_equal(st.open_ms_left, 500);
    assert_true(st.denied >= 2);
    breaker_unref(b);
}

static void test_half_open_single_probe_closes(void **state) {
    (void)state;
    struct breaker *b = mk();
    for (int i = 0; i < 3; i++) breaker_record(b, false, false, 0);
    assert_int_equal(breaker_state(b, 999), BREAKER_OPEN);
    assert_int_equal(breaker_state(b, 1000), BREAKER_HALF_OPEN);
    assert_false(breaker_refusing(b, 1000)); /* a probe may go */
    /* an order is not a probe */
    assert_int_equal(breaker_allow(b, false, 1000), BREAKER_DENY);
    assert_int_equal(breaker_allow(b, true, 1001), BREAKER_PROBE);
    assert_int_equal(breaker_allow(b, true, 1002), BREAKER_DENY); /* exactly one */
    assert_true(breaker_refusing(b, 1002));
    assert_false(breaker_take_probe(b, 1002));
    breaker_record(b, true, true, 1050);
    assert_int_equal(breaker_state(b, 1050), BREAKER_CLOSED);
    assert_int_equal(breaker_allow(b, false, 1051), BREAKER_ALLOW);
    struct breaker_stats st;
    breaker_get_stats(b, 1051, &st);
    assert_int_equal(st.half_opens, 1);
    assert_int_equal(st.closes, 1);
    assert_int_equal(st.probes, 1);
    assert_int_equal(st.consecutive_failures, 0);
    breaker_unref(b);
}

static void test_failed_probe_reopens_with_doubled_cooldown(void **state) {
    (void)state;
    struct breaker *b = mk();
    for (int i = 0; i < 3; i++) breaker_record(b, false, false, 0);
    assert_true(breaker_take_probe(b, 1000));
    breaker_record(b, false, true, 1100);
    assert_int_equal(breaker_state(b, 1100), BREAKER_OPEN);
    assert_int_equal(breaker_state(b, 3099), BREAKER_OPEN);     /* 2 s now */
    assert_int_equal(breaker_state(b, 3100), BREAKER_HALF_OPEN);
    assert_true(breaker_take_probe(b, 3100));
    breaker_record(b, false, true, 3100);                       /* 4 s */
    assert_true(breaker_take_probe(b, 7100));
    breaker_record(b, false, true, 7100);                       /* capped at 4 s */
    assert_int_equal(breaker_state(b, 11099), BREAKER_OPEN);
    assert_int_equal(breaker_state(b, 11100), BREAKER_HALF_OPEN);
    /* an aborted probe (never sent) frees the slot for another */
    assert_int_equal(breaker_allow(b, true, 11100), BREAKER_PROBE);
    breaker_probe_abort(b);
    assert_int_equal(breaker_allow(b, true, 11101), BREAKER_PROBE);
    breaker_record(b, true, true, 11102);
    assert_int_equal(breaker_state(b, 11102), BREAKER_CLOSED);
    /* closing resets the cool-down to the base */
    for (int i = 0; i < 3; i++) breaker_record(b, false, false, 20000);
    assert_int_equal(breaker_state(b, 20999), BREAKER_OPEN);
    assert_int_equal(breaker_state(b, 21000), BREAKER_HALF_OPEN);
    breaker_unref(b);
}

static void test_failure_ratio(void **state) {
    (void)state;
    struct breaker_cfg c = {.failures = 100, .ratio_pct = 50, .ratio_min = 10,
                            .ratio_window_ms = 10000, .cooldown_ms = 1000};
    struct breaker *b = breaker_new(&c);
    assert_non_null(b);
    /* alternating: never 100 in a row, 50 % after 10 results */
    for (int i = 0; i < 8; i++) breaker_record(b, i % 2 == 0, false, 100 + i);
    assert_int_equal(breaker_state(b, 200), BREAKER_CLOSED);
    breaker_record(b, true, false, 200);
    breaker_record(b, false, false, 201); /* 10 results, 5 failures */
    assert_int_equal(breaker_state(b, 202), BREAKER_OPEN);
    breaker_unref(b);

    /* the window restarts: old failures do not count */
    b = breaker_new(&c);
    for (int i = 0; i < 9; i++) breaker_record(b, false, false, 0);
    breaker_record(b, true, false, 10000); /* new window */
    for (int i = 0; i < 4; i++) breaker_record(b, false, false, 10001);
    assert_int_equal(breaker_state(b, 10002), BREAKER_CLOSED);
    breaker_unref(b);
}

static void test_config_and_names(void **state) {
    (void)state;
    struct breaker_cfg bad = {.ratio_pct = 101};
    errno = 0;
    assert_null(breaker_new(&bad));
    assert_int_equal(errno, EINVAL);
    struct breaker *b = mk();
    assert_string_equal(breaker_probe_url(b), "http://h/fapi/v1/time");
    struct breaker_cfg c = {.failures = 1};
    assert_int_equal(breaker_configure(b, &c), 0);
    breaker_record(b, false, false, 0);
    assert_int_equal(breaker_state(b, 0), BREAKER_OPEN);
    assert_int_equal(breaker_configure(b, &bad), -EINVAL);
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
    assert_ptr_equal(breaker_ref(b), b);
    breaker_unref(b);
    assert_null(breaker_unref(b));
    assert_int_equal(breaker_allow(NULL, false, 0), BREAKER_ALLOW);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_consecutive_failures),
        cmocka_unit_test(test_half_open_single_probe_closes),
        cmocka_unit_test(test_failed_probe_reopens_with_doubled_cooldown),
        cmocka_unit_test(test_failure_ratio),
        cmocka_unit_test(test_config_and_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
