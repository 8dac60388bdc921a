/* fill_dedupe: seen/forget semantics and bounded eviction in insertion order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "fill_dedupe.h"

static void test_seen_once(void **state) {
    (void)state;
    struct fill_dedupe *d = fill_dedupe_new(10);
    assert_false(fill_dedupe_seen(d, "leader", "BTCUSDT", "1"));
    assert_true(fill_dedupe_seen(d, "leader", "BTCUSDT", "1"));
    /* Trade ids are per symbol and per account: the same number elsewhere is another fill. */
    assert_false(fill_dedupe_seen(d, "leader", "ETHUSDT", "1"));
    assert_false(fill_dedupe_seen(d, "other", "BTCUSDT", "1"));
    /* Bybit execIds are UUIDs. */
    assert_false(fill_dedupe_seen(d, "by", "BTCUSDT", "7c3f2d51-9a4e-4b1a-8d0e-5f6a7b8c9d0e"));
    assert_true(fill_dedupe_seen(d, "by", "BTCUSDT", "7c3f2d51-9a4e-4b1a-8d0e-5f6a7b8c9d0e"));
    assert_int_equal(fill_dedupe_size(d), 4);
    fill_dedupe_free(d);
}

static void test_forget(void **state) {
    (void)state;
    struct fill_dedupe *d = fill_dedupe_new(10);
    assert_false(fill_dedupe_contains(d, "a", "S", "7"));
    assert_false(fill_dedupe_seen(d, "a", "S", "7"));
    assert_true(fill_dedupe_contains(d, "a", "S", "7"));
    assert_int_equal(fill_dedupe_size(d), 1); /* contains never adds */
    fill_dedupe_forget(d, "a", "S", "7");
    assert_false(fill_dedupe_contains(d, "a", "S", "7"));
    assert_false(fill_dedupe_seen(d, "a", "S", "7"));
    fill_dedupe_forget(d, "a", "S", "999"); /* unknown key: no effect */
    assert_int_equal(fill_dedupe_size(d), 1);
    fill_dedupe_free(d);
}

static void test_eviction_oldest_first(void **state) {
    (void)state;
    struct fill_dedupe *d = fill_dedupe_new(3);
    for (int i = 1; i <= 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "%d", i);
        assert_false(fill_dedupe_seen(d, "a", "S", id));
    }
    assert_int_equal(fill_dedupe_size(d), 3);
    assert_true(fill_dedupe_seen(d, "a", "S", "5"));
    assert_true(fill_dedupe_seen(d, "a", "S", "4"));
    assert_true(fill_dedupe_seen(d, "a", "S", "3"));
    /* 1 and 2 were evicted; seeing 1 again re-adds it and evicts the oldest (3). */
    assert_false(fill_dedupe_seen(d, "a", "S", "1"));
    assert_false(fill_dedupe_seen(d, "a", "S", "3"));
    fill_dedupe_free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seen_once),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_eviction_oldest_first),
    };
    assert_null(fill_dedupe_free(NULL));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
