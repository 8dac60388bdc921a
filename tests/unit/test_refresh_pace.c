/* Unit tests for daemon/refresh_pace: the pace of equity refreshes within a share of an exchange
 * host's budget (Binance: 2400 weight a minute, 5 a refresh, half of it: one every 250 ms), even
 * over time (no tick-sized bursts, nothing banked while idle beyond the burst), the burst a coarse
 * tick needs, and the refresh period each follower gets when leaders go first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "refresh_pace.h"

static const struct refresh_pace_cfg BINANCE = {.limit = 2400, .window_ms = 60000, .cost = 5,
                                                .share_pct = 50, .burst = 1};
static const struct refresh_pace_cfg BYBIT = {.limit = 600, .window_ms = 5000, .cost = 1,
                                              .share_pct = 50, .burst = 1};

static void test_binance_numbers(void **state) {
    (void)state;
    struct refresh_pace *p = refresh_pace_new(&BINANCE);
    assert_non_null(p);
    assert_int_equal(refresh_pace_interval_us(p), 250000);
    assert_true(refresh_pace_per_minute(p) > 239.99 && refresh_pace_per_minute(p) < 240.01);
    static const struct {
        size_t leaders, followers;
        int64_t ttl_ms, follower_ms, leader_ms;
    } cases[] = {
        /* 300 followers, no leaders, TTL 15 s: 240 a minute -> each every 75 s */
        {0, 300, 15000, 75000, 0},
        /* one leader refreshed every 1 s takes 1 of the 4 a second: 300 / 3 per second = 100 s */
        {1, 300, 1000, 100000, 1000},
        /* few followers: each as soon as it is due, never more often than the TTL */
        {1, 20, 60000, 60000, 60000},
        /* leaders that would need more than the pace (300 every 15 s = 20 a second > 4) take
         * turns with the followers: 10 followers get what they need (every 15 s), the leaders
         * the rest (4 - 2/3 a second: every 90 s) */
        {300, 10, 15000, 15000, 90000},
        /* both over: half each, 2 a second: 300 of each every 150 s */
        {300, 300, 15000, 150000, 150000},
        /* a TTL shorter than the pace allows even for one leader (test_copy_modes: 8 followers
         * and a leader, 200 ms): the leader every 500 ms, each follower every 4 s */
        {1, 8, 200, 4000, 500},
        {5, 0, 15000, 0, 15000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t lp = -1;
        assert_int_equal(refresh_pace_period_ms(p, cases[i].leaders, cases[i].followers, cases[i].ttl_ms, &lp),
                         cases[i].follower_ms);
        assert_int_equal(lp, cases[i].leader_ms);
    }
    assert_int_equal(refresh_pace_period_ms(p, 5, 0, 15000, NULL), 0);
    refresh_pace_free(p);
}

/* Asked every millisecond for a minute: 240 refreshes, never two within 250 ms. */
static void test_even_over_time(void **state) {
    (void)state;
    struct refresh_pace *p = refresh_pace_new(&BINANCE);
    int64_t t0 = 1000000, last = -1;
    int n = 0;
    for (int64_t t = t0; t < t0 + 60000; t++) {
        if (!refresh_pace_take(p, t)) continue;
        if (last >= 0) assert_true(t - last >= 250);
        last = t;
        n++;
    }
    assert_int_equal(n, 240);
    refresh_pace_free(p);
}

/* Nothing banked while idle beyond the burst: after 10 idle minutes, burst 3 gives 3 at once,
 * then the pace again. */
static void test_idle_banks_only_the_burst(void **state) {
    (void)state;
    struct refresh_pace_cfg c = BINANCE;
    c.burst = 3;
    struct refresh_pace *p = refresh_pace_new(&c);
    assert_true(refresh_pace_take(p, 0));
    int64_t t = 600000;
    int n = 0;
    while (refresh_pace_take(p, t)) n++;
    assert_int_equal(n, 3);
    assert_false(refresh_pace_take(p, t + 249));
    assert_true(refresh_pace_take(p, t + 250));
    assert_false(refresh_pace_take(p, t + 250));
    refresh_pace_free(p);
}

/* A 50 ms tick on Bybit's budget (600 per 5 s, half: 60 a second): the burst covers a tick's share
 * and one more (4; with 3 the rounding lost half a refresh a tick: 3000 a minute, not 3600), the
 * minute's total is the pace, and no second holds more than its share plus one burst. */
static void test_coarse_tick_reaches_the_rate(void **state) {
    (void)state;
    struct refresh_pace_cfg c = BYBIT;
    c.burst = refresh_pace_burst(&BYBIT, 50);
    assert_int_equal(c.burst, 4);
    struct refresh_pace *p = refresh_pace_new(&c);
    assert_int_equal(refresh_pace_interval_us(p), 16667); /* rounded up: never faster */
    int per_s[60] = {0}, total = 0;
    for (int64_t t = 0; t < 60000; t += 50)
        while (refresh_pace_take(p, t)) {
            per_s[t / 1000]++;
            total++;
        }
    assert_true(total >= 3590 && total <= 3600 + 4);
    for (int s = 0; s < 60; s++) assert_true(per_s[s] <= 60 + 4);
    refresh_pace_free(p);
    /* the burst for Binance's 250 ms interval at a 250 ms tick is 2, at a 1 s tick 5 */
    assert_int_equal(refresh_pace_burst(&BINANCE, 250), 2);
    assert_int_equal(refresh_pace_burst(&BINANCE, 1000), 5);
    /* and at a 250 ms tick it keeps the full pace: 240 a minute, one a tick */
    c = BINANCE;
    c.burst = refresh_pace_burst(&BINANCE, 250);
    p = refresh_pace_new(&c);
    total = 0;
    for (int64_t t = 0; t < 60000; t += 250) {
        int k = 0;
        while (refresh_pace_take(p, t)) k++;
        assert_true(k <= (t == 0 ? 2 : 1));
        total += k;
    }
    assert_true(total >= 240 && total <= 241);
    refresh_pace_free(p);
    assert_int_equal(refresh_pace_burst(NULL, 1000), 1);
}

/* Any window of w ms admits at most w / interval + burst, however irregularly it is asked. */
static void test_any_window_bounded(void **state) {
    (void)state;
    struct refresh_pace_cfg c = BINANCE;
    c.burst = 2;
    struct refresh_pace *p = refresh_pace_new(&c);
    int64_t times[2000];
    size_t n = 0;
    uint32_t x = 12345;
    for (int64_t t = 0; t < 300000 && n < 2000;) {
        x = x * 1103515245u + 12345u;
        t += (x >> 16) % 700; /* 0..699 ms apart, sometimes many at one instant */
        for (int k = 0; k < 3; k++)
            if (refresh_pace_take(p, t)) times[n++] = t;
    }
    assert_true(n > 800); /* about 1000: 300 s at 4 a second, with gaps */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n && times[j] - times[i] < 10000; j++)
            assert_true((int64_t)(j - i + 1) <= 10000 / 250 + 2);
    refresh_pace_free(p);
}

/* A new limit re-paces at once (a budget's limit changed); the pace so far stays. */
static void test_set_and_invalid(void **state) {
    (void)state;
    struct refresh_pace *p = refresh_pace_new(&BINANCE);
    assert_true(refresh_pace_take(p, 0));
    struct refresh_pace_cfg c = BINANCE;
    c.limit = 24000; /* 10x: one every 25 ms */
    assert_int_equal(refresh_pace_set(p, &c), 0);
    assert_int_equal(refresh_pace_interval_us(p), 25000);
    assert_false(refresh_pace_take(p, 100)); /* the 250 ms already promised still holds */
    assert_true(refresh_pace_take(p, 250));
    assert_true(refresh_pace_take(p, 275));
    c.share_pct = 0;
    assert_int_equal(refresh_pace_set(p, &c), -EINVAL);
    assert_int_equal(refresh_pace_interval_us(p), 25000);
    refresh_pace_free(p);

    const struct refresh_pace_cfg bad[] = {
        {0, 60000, 5, 50, 1}, {2400, 0, 5, 50, 1}, {2400, 60000, 0, 50, 1},
        {2400, 60000, 5, 101, 1}, {2400, 60000, 5, 50, 0}, {-1, 60000, 5, 50, 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        assert_null(refresh_pace_new(&bad[i]));
        assert_int_equal(errno, EINVAL);
    }
    assert_null(refresh_pace_new(NULL));
    assert_false(refresh_pace_take(NULL, 0));
    assert_null(refresh_pace_free(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binance_numbers),
        cmocka_unit_test(test_even_over_time),
        cmocka_unit_test(test_idle_banks_only_the_burst),
        cmocka_unit_test(test_coarse_tick_reaches_the_rate),
        cmocka_unit_test(test_any_window_bounded),
        cmocka_unit_test(test_set_and_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
