/* lev_map: the follower leverage map, against a plain reference (an array of every symbol seen and
 * its leverage) through random sets and merges; the exchange-list merge rules; limits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lev_map.h"

static void test_empty(void **state) {
    (void)state;
    struct lev_map *m = NULL;
    assert_int_equal(lev_map_get(NULL, "BTCUSDT"), 0);
    assert_int_equal(lev_map_get(m, NULL), 0);
    assert_int_equal(lev_map_count(m), 0);
    assert_int_equal(lev_map_bytes(m), 0);
    assert_int_equal(lev_map_merge(&m, NULL, 0, NULL), 0);
    assert_null(m);
    assert_null(lev_map_free(NULL));
    /* Forgetting what is not there: -ERANGE, still empty. */
    assert_int_equal(lev_map_set(&m, "BTCUSDT", 0), -ERANGE);
    assert_null(m);
}

static void test_set_get(void **state) {
    (void)state;
    struct lev_map *m = NULL;
    assert_int_equal(lev_map_set(&m, "ETHUSDT", 20), 0);
    assert_non_null(m);
    assert_int_equal(lev_map_set(&m, "BTCUSDT", 125), 0);
    assert_int_equal(lev_map_set(&m, "1000PEPEUSDT", 1), 0);
    assert_int_equal(lev_map_set(&m, "XRPUSDT", 255), 0);
    assert_int_equal(lev_map_count(m), 4);
    assert_int_equal(lev_map_get(m, "ETHUSDT"), 20);
    assert_int_equal(lev_map_get(m, "BTCUSDT"), 125);
    assert_int_equal(lev_map_get(m, "1000PEPEUSDT"), 1);
    assert_int_equal(lev_map_get(m, "XRPUSDT"), 255);
    /* Prefixes and extensions of known symbols are other symbols. */
    assert_int_equal(lev_map_get(m, "BTCUSD"), 0);
    assert_int_equal(lev_map_get(m, "BTCUSDTT"), 0);
    assert_int_equal(lev_map_get(m, ""), 0);
    /* A change of a known symbol's: in place (the map is not reallocated). */
    struct lev_map *before = m;
    assert_int_equal(lev_map_set(&m, "BTCUSDT", 50), 0);
    assert_ptr_equal(m, before);
    assert_int_equal(lev_map_get(m, "BTCUSDT"), 50);
    /* Out of range: the symbol is forgotten (unknown), not left at its old value. */
    assert_int_equal(lev_map_set(&m, "BTCUSDT", 256), -ERANGE);
    assert_int_equal(lev_map_get(m, "BTCUSDT"), 0);
    assert_int_equal(lev_map_set(&m, "ETHUSDT", -3), -ERANGE);
    assert_int_equal(lev_map_get(m, "ETHUSDT"), 0);
    assert_int_equal(lev_map_count(m), 2);
    assert_int_equal(lev_map_get(m, "XRPUSDT"), 255);
    /* Bad symbols: refused, nothing changed. */
    char longsym[MKT_SYMBOL_MAX + 1];
    memset(longsym, 'A', sizeof(longsym) - 1);
    longsym[sizeof(longsym) - 1] = '\0';
    assert_int_equal(lev_map_set(&m, longsym, 5), -EINVAL);
    longsym[MKT_SYMBOL_MAX - 1] = '\0'; /* 31 chars: the longest that fits */
    assert_int_equal(lev_map_set(&m, longsym, 5), 0);
    assert_int_equal(lev_map_get(m, longsym), 5);
    assert_int_equal(lev_map_set(&m, "", 5), -EINVAL);
    assert_int_equal(lev_map_set(NULL, "X", 5), -EINVAL);
    assert_int_equal(lev_map_count(m), 3);
    /* Forgetting every symbol leaves the empty map. */
    assert_int_equal(lev_map_set(&m, "XRPUSDT", 0), -ERANGE);
    assert_int_equal(lev_map_set(&m, "1000PEPEUSDT", 0), -ERANGE);
    assert_int_equal(lev_map_set(&m, longsym, 0), -ERANGE);
    assert_null(m);
}

/* An exchange's list: later entries of a symbol win, symbols it does not list are kept, invalid
 * entries make their symbol unknown and are counted. */
static void test_merge(void **state) {
    (void)state;
    struct lev_map *m = NULL;
    assert_int_equal(lev_map_set(&m, "KEEPUSDT", 7), 0);
    assert_int_equal(lev_map_set(&m, "DROPUSDT", 7), 0);
    struct exch_leverage v[] = {
        {"ETHUSDT", 10}, {"BTCUSDT", 20}, {"ETHUSDT", 30}, {"DROPUSDT", 0}, {"BADUSDT", 300},
        {"", 5},
    };
    size_t bad = 99;
    assert_int_equal(lev_map_merge(&m, v, sizeof(v) / sizeof(v[0]), &bad), 0);
    assert_int_equal(bad, 3);
    assert_int_equal(lev_map_get(m, "ETHUSDT"), 30);
    assert_int_equal(lev_map_get(m, "BTCUSDT"), 20);
    assert_int_equal(lev_map_get(m, "KEEPUSDT"), 7);
    assert_int_equal(lev_map_get(m, "DROPUSDT"), 0);
    assert_int_equal(lev_map_get(m, "BADUSDT"), 0);
    assert_int_equal(lev_map_count(m), 3);
    /* A symbol array without its NUL: refused as a symbol, not read past. */
    struct exch_leverage nonul;
    memset(nonul.symbol, 'Z', sizeof(nonul.symbol));
    nonul.leverage = 3;
    assert_int_equal(lev_map_merge(&m, &nonul, 1, &bad), 0);
    assert_int_equal(bad, 1);
    assert_int_equal(lev_map_count(m), 3);
    assert_int_equal(lev_map_merge(&m, NULL, 1, NULL), -EINVAL);
    m = lev_map_free(m);
}

/* 300 symbols (a Binance account's list) take a few KiB, not ~30 KiB. */
static void test_size(void **state) {
    (void)state;
    struct exch_leverage v[300];
    for (int i = 0; i < 300; i++) {
        snprintf(v[i].symbol, sizeof(v[i].symbol), "SYM%03dUSDT", 299 - i);
        v[i].leverage = 20;
    }
    struct lev_map *m = NULL;
    assert_int_equal(lev_map_merge(&m, v, 300, NULL), 0);
    assert_int_equal(lev_map_count(m), 300);
    /* 2 (offset) + 1 (leverage) + 10 (symbol) + 1 (NUL) per entry, plus the header. */
    assert_int_equal(lev_map_bytes(m), 4 + 300 * 14);
    for (int i = 0; i < 300; i++) assert_int_equal(lev_map_get(m, v[i].symbol), 20);
    m = lev_map_free(m);
}

/* Beyond 64 KiB of records: -E2BIG and the map as it was. */
static void test_too_big(void **state) {
    (void)state;
    enum { N = 2200 }; /* 2200 x 32 bytes > 65535 */
    struct exch_leverage *v = calloc(N, sizeof(*v));
    assert_non_null(v);
    for (int i = 0; i < N; i++) {
        snprintf(v[i].symbol, sizeof(v[i].symbol), "%030d", i);
        v[i].leverage = 2;
    }
    struct lev_map *m = NULL;
    assert_int_equal(lev_map_set(&m, "BTCUSDT", 9), 0);
    struct lev_map *before = m;
    assert_int_equal(lev_map_merge(&m, v, N, NULL), -E2BIG);
    assert_ptr_equal(m, before);
    assert_int_equal(lev_map_count(m), 1);
    assert_int_equal(lev_map_get(m, "BTCUSDT"), 9);
    /* Just under the limit is fine: 2000 x 32 = 64000. */
    assert_int_equal(lev_map_merge(&m, v, 2000, NULL), 0);
    assert_int_equal(lev_map_count(m), 2001);
    assert_int_equal(lev_map_get(m, v[1999].symbol), 2);
    assert_int_equal(lev_map_get(m, v[2000].symbol), 0);
    m = lev_map_free(m);
    free(v);
}

/* Random sets and merges against a reference array. */
static void test_random(void **state) {
    (void)state;
    enum { SYMS = 120, STEPS = 4000 };
    char syms[SYMS][MKT_SYMBOL_MAX];
    int ref[SYMS] = {0};
    uint32_t x = 88172645u;
#define RND() (x ^= x << 13, x ^= x >> 17, x ^= x << 5, x)
    for (int i = 0; i < SYMS; i++) {
        int len = 1 + (int)(RND() % (MKT_SYMBOL_MAX - 1));
        for (int j = 0; j < len; j++) syms[i][j] = (char)('A' + RND() % 4); /* shared prefixes */
        syms[i][len] = '\0';
        for (int j = 0; j < i; j++)
            if (strcmp(syms[i], syms[j]) == 0) /* keep them distinct */
                snprintf(syms[i], sizeof(syms[i]), "u%d", i);
    }
    struct lev_map *m = NULL;
    for (int step = 0; step < STEPS; step++) {
        if (RND() % 8 == 0) {
            struct exch_leverage v[40];
            size_t n = RND() % 40;
            for (size_t i = 0; i < n; i++) {
                int s = (int)(RND() % SYMS);
                int lev = (int)(RND() % 260); /* 0 and 256..259: forget */
                snprintf(v[i].symbol, sizeof(v[i].symbol), "%s", syms[s]);
                v[i].leverage = lev;
                ref[s] = lev >= 1 && lev <= 255 ? lev : 0;
            }
            assert_int_equal(lev_map_merge(&m, v, n, NULL), 0);
        } else {
            int s = (int)(RND() % SYMS);
            int lev = (int)(RND() % 260);
            int r = lev_map_set(&m, syms[s], lev);
            assert_int_equal(r, lev >= 1 && lev <= 255 ? 0 : -ERANGE);
            ref[s] = r == 0 ? lev : 0;
        }
        size_t known = 0;
        for (int i = 0; i < SYMS; i++) {
            if (lev_map_get(m, syms[i]) != ref[i])
                fail_msg("step %d: %s is %d, want %d", step, syms[i], lev_map_get(m, syms[i]), ref[i]);
            known += ref[i] != 0;
        }
        assert_int_equal(lev_map_count(m), known);
    }
#undef RND
    m = lev_map_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),     cmocka_unit_test(test_set_get),
        cmocka_unit_test(test_merge),     cmocka_unit_test(test_size),
        cmocka_unit_test(test_too_big),   cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
