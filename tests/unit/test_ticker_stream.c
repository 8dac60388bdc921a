/* Unit tests of ticker_stream's pure parts: the Binance market and Bybit public ticker parsers
 * against the doc samples and malformed input, the snapshot/delta merge, the midpoint, URLs and
 * subscribe frames. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dec_test.h"
#include "sample_util.h"
#include "ticker_stream.h"

static int parse_bn(const char *s, struct tk_event *ev, char *err) {
    return tk_parse_binance(s, strlen(s), ev, err, 200);
}
static int parse_by(const char *s, struct tk_event *ev, char *err) {
    return tk_parse_bybit(s, strlen(s), ev, err, 200);
}

static void test_binance_samples(void **state) {
    (void)state;
    struct tk_event ev;
    char err[200];
    size_t len;
    char *s = sample_load("binance_ws_book_ticker.json", &len);
    assert_int_equal(tk_parse_binance(s, len, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, TK_TICKER);
    assert_string_equal(ev.t.symbol, "BNBUSDT");
    assert_int_equal(ev.has, TK_HAS_BID | TK_HAS_ASK);
    assert_dec(ev.t.bid, "25.3519");
    assert_dec(ev.t.ask, "25.3652");
    assert_int_equal(ev.t.time_ms, 1568014460893);
    assert_false(ev.snapshot);

    /* the same in the combined envelope */
    char *env = malloc(len + 64);
    assert_non_null(env);
    snprintf(env, len + 64, "{\"stream\":\"bnbusdt@bookTicker\",\"data\":%s}", s);
    assert_int_equal(parse_bn(env, &ev, err), 0);
    assert_int_equal(ev.kind, TK_TICKER);
    assert_dec(ev.t.ask, "25.3652");
    free(env);
    free(s);

    s = sample_load("binance_ws_ticker.json", &len);
    assert_int_equal(tk_parse_binance(s, len, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, TK_TICKER);
    assert_string_equal(ev.t.symbol, "BTCUSDT");
    assert_int_equal(ev.has, TK_HAS_LAST);
    assert_dec(ev.t.last, "0.0025");
    assert_int_equal(ev.t.time_ms, 123456789);
    free(s);

    /* !ticker@arr is an array: not one of ours, not an error */
    s = sample_load("binance_ws_all_tickers_arr.json", &len);
    assert_int_equal(tk_parse_binance(s, len, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, TK_OTHER);
    free(s);

    s = sample_load("binance_ws_subscribe_response.json", &len);
    assert_int_equal(tk_parse_binance(s, len, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, TK_SUB_ACK);
    assert_true(ev.success);
    assert_int_equal(ev.id, 1);
    free(s);

    /* a refused control request */
    assert_int_equal(parse_bn("{\"error\":{\"code\":2,\"msg\":\"Invalid request\"},\"id\":7}", &ev, err), 0);
    assert_int_equal(ev.kind, TK_SUB_ACK);
    assert_false(ev.success);
    assert_int_equal(ev.id, 7);
    assert_string_equal(ev.msg, "Invalid request");

    /* other events are ignored */
    assert_int_equal(parse_bn("{\"e\":\"markPriceUpdate\",\"s\":\"BTCUSDT\",\"p\":\"1\"}", &ev, err), 0);
    assert_int_equal(ev.kind, TK_OTHER);
}

static void test_binance_malformed(void **state) {
    (void)state;
    static const struct {
        const char *frame, *want;
    } rows[] = {
        {"", "invalid JSON"},
        {"{\"e\":\"bookTicker\",\"s\":\"BTCUSDT\",\"b\":\"1\"", "invalid JSON"},
        {"{\"e\":\"bookTicker\",\"b\":\"1\",\"a\":\"2\"}", "bookTicker: s: missing"},
        {"{\"e\":\"bookTicker\",\"s\":\"BTC USDT\",\"b\":\"1\",\"a\":\"2\"}", "bookTicker: s: not a symbol"},
        {"{\"e\":\"bookTicker\",\"s\":\"BTCUSDT\",\"a\":\"2\"}", "bookTicker: b: missing"},
        {"{\"e\":\"bookTicker\",\"s\":\"BTCUSDT\",\"b\":1.5,\"a\":\"2\"}", "bookTicker: b: not a decimal"},
        {"{\"e\":\"bookTicker\",\"s\":\"BTCUSDT\",\"b\":\"1\",\"a\":\"-2\"}", "bookTicker: a: not a decimal"},
        {"{\"e\":\"bookTicker\",\"s\":\"BTCUSDT\",\"b\":\"1\",\"a\":\"2\",\"E\":\"x\"}", "bookTicker: E: not an integer"},
        {"{\"e\":\"24hrTicker\",\"s\":\"BTCUSDT\",\"c\":\"1e5\"}", "24hrTicker: c: not a decimal"},
        {"{\"stream\":\"x\",\"data\":{\"e\":\"24hrTicker\",\"s\":\"BTCUSDT\"}}", "24hrTicker: c: missing"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct tk_event ev;
        char err[200] = "";
        if (parse_bn(rows[i].frame, &ev, err) != -EINVAL) fail_msg("row %zu: accepted %s", i, rows[i].frame);
        if (!strstr(err, rows[i].want)) fail_msg("row %zu: error \"%s\", want \"%s\"", i, err, rows[i].want);
        assert_int_equal(ev.kind, TK_OTHER);
    }
}

static void test_bybit_samples_and_merge(void **state) {
    (void)state;
    struct tk_event ev;
    char err[200];
    size_t len;
    char *s = sample_load("bybit_ws_ticker_linear_perp_snapshot.json", &len);
    assert_int_equal(tk_parse_bybit(s, len, &ev, err, sizeof err), 0);
    free(s);
    assert_int_equal(ev.kind, TK_TICKER);
    assert_true(ev.snapshot);
    assert_string_equal(ev.t.symbol, "BTCUSDT");
    assert_int_equal(ev.has, TK_HAS_ALL);
    assert_dec(ev.t.last, "66666.6");
    assert_dec(ev.t.bid, "66666.6");
    assert_dec(ev.t.ask, "66666.7");
    assert_int_equal(ev.t.time_ms, 1760325052630);

    struct exch_ticker_update st;
    unsigned has = 0;
    memset(&st, 0, sizeof st);
    tk_merge(&st, &has, &ev);
    assert_int_equal(has, TK_HAS_ALL);

    /* a delta changes only what it carries; "" means unchanged too */
    assert_int_equal(parse_by("{\"topic\":\"tickers.BTCUSDT\",\"type\":\"delta\",\"data\":{\"symbol\":"
                              "\"BTCUSDT\",\"bid1Price\":\"66660.1\",\"ask1Price\":\"\"},\"cs\":1,\"ts\":1760325052730}",
                              &ev, err), 0);
    assert_int_equal(ev.kind, TK_TICKER);
    assert_false(ev.snapshot);
    assert_int_equal(ev.has, TK_HAS_BID);
    tk_merge(&st, &has, &ev);
    assert_int_equal(has, TK_HAS_ALL);
    assert_dec(st.bid, "66660.1");
    assert_dec(st.ask, "66666.7");
    assert_dec(st.last, "66666.6");
    assert_int_equal(st.time_ms, 1760325052730);

    /* a snapshot replaces the state: fields it lacks are unknown again */
    assert_int_equal(parse_by("{\"topic\":\"tickers.BTCUSDT\",\"type\":\"snapshot\",\"data\":{\"symbol\":"
                              "\"BTCUSDT\",\"lastPrice\":\"1\"},\"ts\":5}", &ev, err), 0);
    tk_merge(&st, &has, &ev);
    assert_int_equal(has, TK_HAS_LAST);

    s = sample_load("bybit_ws_ticker_linear_futures_snapshot.json", &len);
    assert_int_equal(tk_parse_bybit(s, len, &ev, err, sizeof err), 0);
    free(s);
    assert_string_equal(ev.t.symbol, "BTC-26DEC25");
    assert_dec(ev.t.ask, "131001");

    /* op replies */
    s = sample_load("bybit_ws_pong_public_linear.json", &len);
    assert_int_equal(tk_parse_bybit(s, len, &ev, err, sizeof err), 0);
    free(s);
    assert_int_equal(ev.kind, TK_PONG);
    assert_int_equal(parse_by("{\"success\":false,\"ret_msg\":\"Invalid symbol :[tickers.X]\",\"conn_id\":"
                              "\"c\",\"req_id\":\"\",\"op\":\"subscribe\"}", &ev, err), 0);
    assert_int_equal(ev.kind, TK_SUB_ACK);
    assert_false(ev.success);
    assert_string_equal(ev.msg, "Invalid symbol :[tickers.X]");
    assert_int_equal(parse_by("{\"topic\":\"orderbook.1.BTCUSDT\",\"type\":\"snapshot\",\"data\":{}}", &ev, err), 0);
    assert_int_equal(ev.kind, TK_OTHER);
}

static void test_bybit_malformed(void **state) {
    (void)state;
    static const struct {
        const char *frame, *want;
    } rows[] = {
        {"nope", "invalid JSON"},
        {"[1]", "not a JSON object"},
        {"{\"op\":\"subscribe\"}", "subscribe reply: success"},
        {"{\"topic\":\"tickers.BTCUSDT\",\"data\":{\"symbol\":\"BTCUSDT\"}}", "tickers: type"},
        {"{\"topic\":\"tickers.BTCUSDT\",\"type\":\"delta\",\"data\":[]}", "tickers: data: missing"},
        {"{\"topic\":\"tickers.BTCUSDT\",\"type\":\"delta\",\"data\":{}}", "tickers: symbol: missing"},
        {"{\"topic\":\"tickers.BTCUSDT\",\"type\":\"delta\",\"data\":{\"symbol\":\"ETHUSDT\"}}", "does not match"},
        {"{\"topic\":\"tickers.BTCUSDT\",\"type\":\"delta\",\"data\":{\"symbol\":\"BTCUSDT\",\"lastPrice\":\"abc\"}}",
         "tickers: data.lastPrice: not a decimal"},
        {"{\"topic\":\"tickers.BTCUSDT\",\"type\":\"delta\",\"data\":{\"symbol\":\"BTCUSDT\",\"bid1Price\":5}}",
         "tickers: data.bid1Price: not a decimal"},
        {"{\"topic\":\"tickers.BTCUSDT\",\"type\":\"delta\",\"data\":{\"symbol\":\"BTCUSDT\"},\"ts\":true}",
         "tickers: ts: not an integer"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct tk_event ev;
        char err[200] = "";
        if (parse_by(rows[i].frame, &ev, err) != -EINVAL) fail_msg("row %zu: accepted %s", i, rows[i].frame);
        if (!strstr(err, rows[i].want)) fail_msg("row %zu: error \"%s\", want \"%s\"", i, err, rows[i].want);
        assert_int_equal(ev.kind, TK_OTHER);
    }
}

static void test_mid(void **state) {
    (void)state;
    dec_t m;
    assert_int_equal(tk_mid(D("25.3519"), D("25.3652"), &m), 0);
    assert_dec(m, "25.35855");
    assert_int_equal(tk_mid(D("100"), D("100"), &m), 0);
    assert_dec(m, "100");
    assert_int_equal(tk_mid(D("0.1"), D("0.2"), &m), 0);
    assert_dec(m, "0.15");
}

static void test_urls_and_frames(void **state) {
    (void)state;
    char buf[512];
    const char *syms[] = {"BTCUSDT", "ETHUSDT"};
    assert_true(tk_binance_url("wss://fstream.binance.com/private", syms, 2, buf, sizeof buf) > 0);
    assert_string_equal(buf, "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker");
    assert_true(tk_binance_url("ws://127.0.0.1:9000/", syms, 1, buf, sizeof buf) > 0);
    assert_string_equal(buf, "ws://127.0.0.1:9000/stream?streams=btcusdt@bookTicker");
    assert_true(tk_binance_url("wss://fstream.binance.com", syms, 2, buf, sizeof buf) > 0);
    assert_string_equal(buf, "wss://fstream.binance.com/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker");
    assert_int_equal(tk_binance_url("ws://h", syms, 2, buf, 30), -ENOSPC);
    assert_int_equal(tk_binance_url("ws://h", syms, 0, buf, sizeof buf), -EINVAL);
    const char *bad[] = {"BTC/USDT"};
    assert_int_equal(tk_binance_url("ws://h", bad, 1, buf, sizeof buf), -EINVAL);

    assert_true(tk_bybit_url("wss://stream.bybit.com/v5/private", buf, sizeof buf) > 0);
    assert_string_equal(buf, "wss://stream.bybit.com/v5/public/linear");
    assert_true(tk_bybit_url("ws://127.0.0.1:9000/v5/private/", buf, sizeof buf) > 0);
    assert_string_equal(buf, "ws://127.0.0.1:9000/v5/public/linear");
    assert_true(tk_bybit_url("wss://stream.bybit.com/v5", buf, sizeof buf) > 0);
    assert_string_equal(buf, "wss://stream.bybit.com/v5/public/linear");
    assert_true(tk_bybit_url("ws://127.0.0.1:9000", buf, sizeof buf) > 0);
    assert_string_equal(buf, "ws://127.0.0.1:9000/v5/public/linear");
    assert_int_equal(tk_bybit_url("ws://127.0.0.1:9000/v5/private", buf, 20), -ENOSPC);

    assert_true(tk_bybit_subscribe(syms, 2, buf, sizeof buf) > 0);
    assert_string_equal(buf, "{\"op\":\"subscribe\",\"args\":[\"tickers.BTCUSDT\",\"tickers.ETHUSDT\"]}");
    assert_int_equal(tk_bybit_subscribe(bad, 1, buf, sizeof buf), -EINVAL);
    assert_int_equal(tk_bybit_subscribe(syms, 2, buf, 40), -ENOSPC);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binance_samples),
        cmocka_unit_test(test_binance_malformed),
        cmocka_unit_test(test_bybit_samples_and_merge),
        cmocka_unit_test(test_bybit_malformed),
        cmocka_unit_test(test_mid),
        cmocka_unit_test(test_urls_and_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
