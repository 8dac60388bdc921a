/* position_book: live and pending positions, exact decimals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dec_test.h"

#include "position_book.h"



static void test_live_and_pending(void **state) {
    (void)state;
    struct position_book *b = position_book_new();
    assert_dec(position_book_live(b, "f1", "BTCUSDT", MKT_PS_BOTH), "0");
    assert_int_equal(position_book_set_live(b, "f1", "BTCUSDT", MKT_PS_BOTH, D("0.100")), 0);
    assert_int_equal(position_book_add_pending(b, "f1", "BTCUSDT", MKT_PS_BOTH, D("0.05")), 0);
    assert_dec(position_book_live(b, "f1", "BTCUSDT", MKT_PS_BOTH), "0.1");
    assert_dec(position_book_expected(b, "f1", "BTCUSDT", MKT_PS_BOTH), "0.15");
    /* The order fills: pending moves to live. */
    assert_int_equal(position_book_add_pending(b, "f1", "BTCUSDT", MKT_PS_BOTH, D("-0.05")), 0);
    assert_int_equal(position_book_add_live(b, "f1", "BTCUSDT", MKT_PS_BOTH, D("0.05")), 0);
    assert_dec(position_book_expected(b, "f1", "BTCUSDT", MKT_PS_BOTH), "0.15");
    assert_dec(position_book_live(b, "f1", "BTCUSDT", MKT_PS_BOTH), "0.15");
    /* Other accounts and symbols are separate. */
    assert_dec(position_book_live(b, "f2", "BTCUSDT", MKT_PS_BOTH), "0");
    assert_dec(position_book_live(b, "f1", "ETHUSDT", MKT_PS_BOTH), "0");
    assert_int_equal(position_book_add_live(b, "f1", "BTCUSDT", MKT_PS_BOTH, D("-0.2")), 0);
    assert_dec(position_book_live(b, "f1", "BTCUSDT", MKT_PS_BOTH), "-0.05");
    position_book_free(b);
}

static void test_overflow_is_an_error(void **state) {
    (void)state;
    struct position_book *b = position_book_new();
    assert_int_equal(position_book_set_live(b, "a", "S", MKT_PS_BOTH, D("9000000000000000000")), 0);
    assert_true(position_book_add_live(b, "a", "S", MKT_PS_BOTH, D("9000000000000000000")) < 0);
    assert_dec(position_book_live(b, "a", "S", MKT_PS_BOTH), "9000000000000000000");
    position_book_free(b);
}

static void test_hedge_slots(void **state) {
    (void)state;
    struct position_book *b = position_book_new();
    /* Binance reports a SHORT hedge position negative: the book keeps the size. */
    assert_int_equal(position_book_set_live(b, "h", "BTCUSDT", MKT_PS_SHORT, D("-0.3")), 0);
    assert_int_equal(position_book_set_live(b, "h", "BTCUSDT", MKT_PS_LONG, D("0.2")), 0);
    assert_dec(position_book_live(b, "h", "BTCUSDT", MKT_PS_SHORT), "0.3");
    assert_dec(position_book_live(b, "h", "BTCUSDT", MKT_PS_LONG), "0.2");
    assert_dec(position_book_live(b, "h", "BTCUSDT", MKT_PS_BOTH), "0");
    /* A sell grows SHORT and shrinks LONG and BOTH; a buy the reverse. */
    assert_dec(position_book_delta(MKT_SELL, MKT_PS_SHORT, D("0.1")), "0.1");
    assert_dec(position_book_delta(MKT_BUY, MKT_PS_SHORT, D("0.1")), "-0.1");
    assert_dec(position_book_delta(MKT_SELL, MKT_PS_LONG, D("0.1")), "-0.1");
    assert_dec(position_book_delta(MKT_BUY, MKT_PS_BOTH, D("0.1")), "0.1");
    assert_int_equal(position_book_add_live(b, "h", "BTCUSDT", MKT_PS_SHORT,
                                            position_book_delta(MKT_BUY, MKT_PS_SHORT, D("0.1"))), 0);
    assert_dec(position_book_live(b, "h", "BTCUSDT", MKT_PS_SHORT), "0.2");
    position_book_free(b);
}

/* Keys are account, symbol and slot joined by a separator: names that would run together stay
 * apart, and names past the limits are refused, not cut. */
static void test_keys(void **state) {
    (void)state;
    struct position_book *b = position_book_new();
    assert_int_equal(position_book_set_live(b, "ab", "C", MKT_PS_BOTH, D("1")), 0);
    assert_int_equal(position_book_set_live(b, "a", "bC", MKT_PS_BOTH, D("2")), 0);
    assert_dec(position_book_live(b, "ab", "C", MKT_PS_BOTH), "1");
    assert_dec(position_book_live(b, "a", "bC", MKT_PS_BOTH), "2");
    char acct[MKT_ACCOUNT_MAX], sym[MKT_SYMBOL_MAX];
    memset(acct, 'a', sizeof acct - 1);
    acct[sizeof acct - 1] = 0;
    memset(sym, 'S', sizeof sym - 1);
    sym[sizeof sym - 1] = 0;
    assert_int_equal(position_book_set_live(b, acct, sym, MKT_PS_LONG, D("3")), 0); /* longest */
    assert_dec(position_book_live(b, acct, sym, MKT_PS_LONG), "3");
    assert_dec(position_book_live(b, acct, sym, MKT_PS_SHORT), "0");
    char longer[MKT_ACCOUNT_MAX + 2]; /* one more than the key has room for */
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = 0;
    assert_true(position_book_set_live(b, longer, sym, MKT_PS_LONG, D("4")) < 0);
    assert_dec(position_book_live(b, acct, sym, MKT_PS_LONG), "3");
    position_book_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_and_pending),
        cmocka_unit_test(test_overflow_is_an_error),
        cmocka_unit_test(test_hedge_slots),
        cmocka_unit_test(test_keys),
    };
    assert_null(position_book_free(NULL));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
