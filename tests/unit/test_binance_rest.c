/* binance_rest: request building (exact text, signature last, percent-encoding), response parsing
 * on the doc samples and on malformed/hostile bodies, and the order outcome classification table.
 * No I/O but reading sample files; expected signatures were computed independently (python hmac). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "binance_rest.h"
#include "binance_sign.h"
#include "dec_test.h"
#include "sample_util.h"

#define FUT_SECRET "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
#define FUT_KEY "dbefbc809e3e83c283a984c3a1459732ea7db1360ca80c5c2c8867408d28cc83"

static struct exch_account *test_account(void) {
    struct exch_account_cfg cfg = {
        .name = "follower-1",
        .kind = EXCH_BINANCE_USDM,
        .rest_url = "http://127.0.0.1:18080/",
        .ws_url = "ws://127.0.0.1:18080",
        .api_key = FUT_KEY,
        .api_secret = FUT_SECRET,
    };
    struct exch_account *a = exch_account_new(&cfg, NULL);
    assert_non_null(a);
    return a;
}

/* ---- exchange.c basics ---- */

static void test_kind_and_account(void **state) {
    (void)state;
    enum exch_kind k;
    assert_int_equal(exch_kind_parse("binance-usdm", &k), 0);
    assert_int_equal(k, EXCH_BINANCE_USDM);
    assert_int_equal(exch_kind_parse("bybit-linear", &k), 0);
    assert_int_equal(k, EXCH_BYBIT_LINEAR);
    assert_int_equal(exch_kind_parse("Binance-usdm", &k), -EINVAL);
    assert_int_equal(exch_kind_parse("", &k), -EINVAL);
    assert_string_equal(exch_kind_name(EXCH_BINANCE_USDM), "binance-usdm");
    assert_string_equal(exch_kind_name(EXCH_BYBIT_LINEAR), "bybit-linear");

    struct exch_account *a = test_account();
    assert_string_equal(exch_account_name(a), "follower-1");
    assert_string_equal(exch_account_rest_url(a), "http://127.0.0.1:18080"); /* '/' trimmed */
    assert_int_equal(exch_account_recv_window_ms(a), 5000);
    assert_int_equal(exch_account_timeout_ms(a), 5000);
    assert_int_equal(exch_account_time_offset_ms(a), 0);
    struct exch_usage u;
    exch_account_usage(a, &u);
    assert_int_equal(u.used_weight_1m, -1);
    /* No pool: calls are refused, never half-sent. */
    assert_int_equal(exch_sync_time(a, (exch_time_cb)1, NULL), -EINVAL);

    /* A reference keeps memory alive; free wipes the credentials at once. */
    exch_account_ref(a);
    assert_null(exch_account_free(a));
    assert_true(exch_account_is_closed(a));
    char hex[65];
    assert_int_equal(exch_account_sign_hex(a, "x", 1, hex), -ESHUTDOWN);
    assert_string_equal(exch_account_api_key(a), "");
    assert_int_equal(exch_place_order(a, NULL, NULL, NULL), -ESHUTDOWN);
    exch_account_unref(a);
    assert_null(exch_account_free(NULL));

    /* Bad configs: NULL, never a half-made account. */
    struct exch_account_cfg bad = {.name = "x", .kind = EXCH_BINANCE_USDM,
                                   .rest_url = "ftp://h", .api_key = "k", .api_secret = "s"};
    assert_null(exch_account_new(&bad, NULL));
    bad.rest_url = "http://h";
    bad.api_secret = "has space";
    assert_null(exch_account_new(&bad, NULL));
    bad.api_secret = "s";
    bad.api_key = "k\r\nX-Evil: 1";
    assert_null(exch_account_new(&bad, NULL));
    bad.api_key = "k";
    bad.kind = (enum exch_kind)7;
    assert_null(exch_account_new(&bad, NULL));
    bad.kind = EXCH_BYBIT_LINEAR;
    bad.recv_window_ms = 60001;
    assert_null(exch_account_new(&bad, NULL));
    assert_null(exch_account_new(NULL, NULL));
}

/* ---- request building ---- */

static void test_qs_percent_encoding(void **state) {
    (void)state;
    char b[128];
    int n = binance_qs_add(b, sizeof b, 0, "a b", "x&y=z/\xc3\xa9~._-+%");
    assert_int_equal(n, (int)strlen("a%20b=x%26y%3Dz%2F%C3%A9~._-%2B%25"));
    assert_string_equal(b, "a%20b=x%26y%3Dz%2F%C3%A9~._-%2B%25");
    n = binance_qs_add(b, sizeof b, (size_t)n, "k", "");
    assert_string_equal(b, "a%20b=x%26y%3Dz%2F%C3%A9~._-%2B%25&k=");

    /* No room: -ENOSPC and the string is left as it was. */
    char s[12] = "";
    n = binance_qs_add(s, sizeof s, 0, "abc", "def"); /* "abc=def" = 7 */
    assert_int_equal(n, 7);
    assert_int_equal(binance_qs_add(s, sizeof s, 7, "g", "hi"), -ENOSPC); /* would be 12+NUL */
    assert_string_equal(s, "abc=def");
    assert_int_equal(binance_qs_add(s, sizeof s, 7, "g", "\xff"), -ENOSPC);
    assert_string_equal(s, "abc=def");
    assert_int_equal(binance_qs_add(s, sizeof s, 7, "g", "h"), 11);
    assert_string_equal(s, "abc=def&g=h");
}

static void test_sign_params_official_vector(void **state) {
    (void)state;
    struct exch_account *a = test_account();
    char b[BINANCE_QS_MAX];
    const char *params = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC";
    snprintf(b, sizeof b, "%s", params);
    int n = binance_sign_params(a, b, sizeof b, strlen(b), 5000, 1591702613943LL);
    assert_true(n > 0);
    assert_string_equal(b, "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
                           "&recvWindow=5000&timestamp=1591702613943"
                           "&signature=3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9");
    assert_int_equal(n, (int)strlen(b));

    /* Too small a buffer: -ENOSPC, parameters untouched. */
    char small[100];
    snprintf(small, sizeof small, "%s", params);
    assert_int_equal(binance_sign_params(a, small, sizeof small, strlen(small), 5000, 1), -ENOSPC);
    assert_string_equal(small, params);
    exch_account_free(a);
}

static void test_order_market_reduce_only(void **state) {
    (void)state;
    struct exch_account *a = test_account();
    struct exch_order_req req = {
        .symbol = "BTCUSDT",
        .side = MKT_SELL,
        .type = EXCH_MARKET,
        .qty = D("0.0010"),
        .price = D("123.45"), /* ignored for MARKET */
        .reduce_only = true,
        .client_id = "ct4Xz_0",
    };
    char b[BINANCE_QS_MAX], err[128];
    int n = binance_order_params(&req, b, sizeof b, err, sizeof err);
    assert_true(n > 0);
    assert_string_equal(b, "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.001&reduceOnly=true"
                           "&newClientOrderId=ct4Xz_0&newOrderRespType=RESULT");
    n = binance_sign_params(a, b, sizeof b, (size_t)n, 5000, 1591702613943LL);
    assert_true(n > 0);
    assert_string_equal(b, "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.001&reduceOnly=true"
                           "&newClientOrderId=ct4Xz_0&newOrderRespType=RESULT&recvWindow=5000"
                           "&timestamp=1591702613943"
                           "&signature=8a57217e5e88250ae31dbd89fd5271aa0eba25abf0885937ce1eb2c8b3feedb8");
    /* signature is the last parameter and covers everything before it */
    const char *sig = strstr(b, "&signature=");
    assert_non_null(sig);
    assert_null(strchr(sig + 1, '&'));
    assert_true(binance_sign_verify(FUT_SECRET, strlen(FUT_SECRET), b, (size_t)(sig - b), sig + 11,
                                    strlen(sig + 11)));

    /* Not reduce-only: the parameter is absent, not "false". */
    req.reduce_only = false;
    req.side = MKT_BUY;
    n = binance_order_params(&req, b, sizeof b, err, sizeof err);
    assert_string_equal(b, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001"
                           "&newClientOrderId=ct4Xz_0&newOrderRespType=RESULT");
    exch_account_free(a);
}

static void test_order_limit_and_unicode_symbol(void **state) {
    (void)state;
    struct exch_account_cfg cfg = {.name = "f", .kind = EXCH_BINANCE_USDM,
                                   .rest_url = "https://fapi.binance.com", .api_key = FUT_KEY,
                                   .api_secret = FUT_SECRET, .recv_window_ms = 3000};
    struct exch_account *a = exch_account_new(&cfg, NULL);
    assert_non_null(a);
    struct exch_order_req req = {
        .symbol = "\xe5\xb8\x81\xe5\xae\x89\xe4\xba\xba\xe7\x94\x9f" "USDT",
        .side = MKT_BUY,
        .type = EXCH_LIMIT_IOC,
        .qty = D("12.50"),
        .price = D("0.04210"),
        .client_id = "ct-1",
    };
    char b[BINANCE_QS_MAX], err[128];
    int n = binance_order_params(&req, b, sizeof b, err, sizeof err);
    assert_true(n > 0);
    n = binance_sign_params(a, b, sizeof b, (size_t)n, exch_account_recv_window_ms(a),
                            1700000000000LL);
    assert_string_equal(b, "symbol=%E5%B8%81%E5%AE%89%E4%BA%BA%E7%94%9FUSDT&side=BUY&type=LIMIT"
                           "&timeInForce=IOC&quantity=12.5&price=0.0421&newClientOrderId=ct-1"
                           "&newOrderRespType=RESULT&recvWindow=3000&timestamp=1700000000000"
                           "&signature=65b2ea0ed21bca32d6bdb481e02f2160a6c9b2e6dbd05029539fa7b452b567c5");

    req.symbol = "ETHUSDT";
    req.type = EXCH_LIMIT_GTC;
    req.side = MKT_SELL;
    n = binance_order_params(&req, b, sizeof b, err, sizeof err);
    assert_string_equal(b, "symbol=ETHUSDT&side=SELL&type=LIMIT&timeInForce=GTC&quantity=12.5"
                           "&price=0.0421&newClientOrderId=ct-1&newOrderRespType=RESULT");
    exch_account_free(a);
}

static void test_order_invalid(void **state) {
    (void)state;
    const struct exch_order_req good = {.symbol = "BTCUSDT", .side = MKT_BUY, .type = EXCH_LIMIT_IOC,
                                        .qty = D("1"), .price = D("2"), .client_id = "abc"};
    char b[BINANCE_QS_MAX], err[128];
    struct exch_order_req r;

    assert_true(binance_order_params(&good, b, sizeof b, err, sizeof err) > 0);
#define BAD(field_change, needle)                                                   \
    do {                                                                            \
        r = good;                                                                   \
        field_change;                                                               \
        err[0] = '\0';                                                              \
        assert_int_equal(binance_order_params(&r, b, sizeof b, err, sizeof err), -EINVAL); \
        if (!strstr(err, needle)) fail_msg("error '%s' lacks '%s'", err, needle);  \
        assert_string_equal(b, "");                                                 \
    } while (0)
    BAD(r.client_id = "has.dot", "client id");
    BAD(r.client_id = "", "client id");
    BAD(r.client_id = NULL, "client id");
    BAD(r.client_id = "0123456789012345678901234567890123456", "client id"); /* 37 */
    BAD(r.qty = D("0"), "quantity");
    BAD(r.qty = D("-1"), "quantity");
    BAD(r.qty = ((dec_t){1, 200}), "quantity"); /* invalid scale */
    BAD(r.price = D("0"), "price");
    BAD(r.price = D("-3"), "price");
    BAD(r.side = (enum mkt_side)0, "side");
    BAD(r.type = (enum exch_order_type)9, "type");
    BAD(r.symbol = "BTC USDT", "symbol");
    BAD(r.symbol = "", "symbol");
    BAD(r.symbol = NULL, "symbol");
    BAD(r.symbol = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "symbol");
#undef BAD
    /* MARKET needs no price. */
    r = good;
    r.type = EXCH_MARKET;
    r.price = D("0");
    assert_true(binance_order_params(&r, b, sizeof b, err, sizeof err) > 0);
    /* Too small a buffer. */
    assert_int_equal(binance_order_params(&good, b, 20, err, sizeof err), -ENOSPC);
}

static void test_query_params(void **state) {
    (void)state;
    char b[BINANCE_QS_MAX];
    assert_int_equal(binance_query_params("BTCUSDT", "ct_a-1", b, sizeof b),
                     (int)strlen("symbol=BTCUSDT&origClientOrderId=ct_a-1"));
    assert_string_equal(b, "symbol=BTCUSDT&origClientOrderId=ct_a-1");
    assert_int_equal(binance_query_params("BTCUSDT", "a&b", b, sizeof b), -EINVAL);
    assert_int_equal(binance_query_params("", "ab", b, sizeof b), -EINVAL);
    assert_int_equal(binance_query_params("BTCUSDT", NULL, b, sizeof b), -EINVAL);
}

/* ---- parsing: samples ---- */

static void test_parse_new_order_sample(void **state) {
    (void)state;
    size_t len;
    char *body = sample_load("binance_new_order_response.json", &len);
    struct exch_order_result o;
    char err[160];
    assert_int_equal(binance_parse_order(body, len, &o, err, sizeof err), 0);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_NEW);
    assert_string_equal(o.order_id, "22542179");
    assert_string_equal(o.client_id, "testOrder");
    assert_dec(o.executed_qty, "0");
    assert_dec(o.avg_price, "0");
    assert_int_equal(o.update_time_ms, 1566818724722LL);
    free(body);
}

static void test_parse_query_order_sample(void **state) {
    (void)state;
    size_t len;
    char *body = sample_load("binance_query_order_response.json", &len);
    struct exch_order_result o;
    char err[160];
    assert_int_equal(binance_parse_order(body, len, &o, err, sizeof err), 0);
    assert_int_equal(o.status, EXCH_ST_NEW);
    assert_string_equal(o.order_id, "1917641");
    assert_string_equal(o.client_id, "abc");
    assert_int_equal(o.update_time_ms, 1579276756075LL);
    free(body);

    body = sample_load("binance_cancel_order_response.json", &len);
    assert_int_equal(binance_parse_order(body, len, &o, err, sizeof err), 0);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    assert_string_equal(o.client_id, "myOrder1");
    free(body);
}

static void test_parse_filled_result(void **state) {
    (void)state;
    const char *b = "{\"orderId\":7,\"clientOrderId\":\"ct1\",\"status\":\"FILLED\","
                    "\"executedQty\":\"0.010\",\"avgPrice\":\"65000.10\",\"updateTime\":1}";
    struct exch_order_result o;
    char err[160];
    assert_int_equal(binance_parse_order(b, strlen(b), &o, err, sizeof err), 0);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    assert_dec(o.executed_qty, "0.01");
    assert_dec(o.avg_price, "65000.1");
    const char *statuses[][2] = {{"PARTIALLY_FILLED", "2"}, {"REJECTED", "5"}, {"EXPIRED", "6"},
                                 {"EXPIRED_IN_MATCH", "6"}};
    for (size_t i = 0; i < 4; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"orderId\":7,\"clientOrderId\":\"ct1\",\"status\":\"%s\",\"executedQty\":\"0\","
                 "\"avgPrice\":\"0\"}",
                 statuses[i][0]);
        assert_int_equal(binance_parse_order(body, strlen(body), &o, err, sizeof err), 0);
        assert_int_equal(o.status, atoi(statuses[i][1]));
        assert_int_equal(o.update_time_ms, 0);
    }
}

static void test_parse_exchangeinfo_sample(void **state) {
    (void)state;
    size_t len, n, skipped;
    char *body = sample_load("binance_exchangeinfo.cleaned.json", &len);
    struct mkt_instrument *v;
    char err[160];
    assert_int_equal(binance_parse_instruments(body, len, &v, &n, &skipped, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(skipped, 0);
    assert_string_equal(err, "");
    assert_string_equal(v[0].symbol, "BLZUSDT");
    assert_dec(v[0].step, "1");
    assert_dec(v[0].min_qty, "1");
    assert_dec(v[0].max_qty, "10000000");
    assert_dec(v[0].mkt_step, "1");
    assert_dec(v[0].mkt_min_qty, "1");
    assert_dec(v[0].mkt_max_qty, "590119");
    assert_dec(v[0].tick, "0.0001");
    assert_dec(v[0].min_price, "0.0001");
    assert_dec(v[0].max_price, "300");
    assert_dec(v[0].min_notional, "5");
    free(v);
    free(body);
}

static void test_parse_positions_samples(void **state) {
    (void)state;
    size_t len, n;
    struct mkt_position *v;
    char err[160];

    /* hedge mode: LONG and SHORT entries with their side; the flat SHORT is left out; v2
     * carries the leverage ("4", a string) */
    char *body = sample_load("binance_position_risk_v2_hedge.json", &len);
    assert_int_equal(binance_parse_positions(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].symbol, "BTCUSDT");
    assert_int_equal(v[0].pos_side, MKT_PS_LONG);
    assert_dec(v[0].amount, "0.001");
    assert_dec(v[0].entry_price, "22185.2");
    assert_int_equal(v[0].leverage, 4);
    assert_int_equal(v[0].update_ms, 1655217461579); /* what the start-up snapshot includes */
    free(v);
    free(body);

    /* v3 hedge: no leverage field (0), SHORT amount negative as Binance sends it */
    body = sample_load("binance_position_risk_v3_hedge.json", &len);
    assert_int_equal(binance_parse_positions(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].symbol, "ADAUSDT");
    assert_int_equal(v[0].pos_side, MKT_PS_LONG);
    assert_dec(v[0].amount, "30");
    assert_int_equal(v[0].leverage, 0);
    assert_string_equal(v[1].symbol, "COMPUSDT");
    assert_int_equal(v[1].pos_side, MKT_PS_SHORT);
    assert_dec(v[1].amount, "-1");
    assert_dec(v[1].entry_price, "70.92841");
    free(v);
    free(body);

    body = sample_load("binance_position_risk_v2_oneway.cleaned.json", &len);
    assert_int_equal(binance_parse_positions(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 0); /* flat positions are left out */
    assert_null(v);
    free(body);

    body = sample_load("binance_position_risk_v3_oneway.json", &len);
    assert_int_equal(binance_parse_positions(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].symbol, "ADAUSDT");
    assert_dec(v[0].amount, "30");
    assert_dec(v[0].entry_price, "0.385");
    assert_int_equal(v[0].pos_side, MKT_PS_BOTH);
    free(v);
    free(body);

    const char *b = "[{\"symbol\":\"BTCUSDT\",\"positionSide\":\"BOTH\",\"positionAmt\":\"-0.250\","
                    "\"entryPrice\":\"60000.5\"},{\"symbol\":\"ETHUSDT\",\"positionAmt\":\"0.000\","
                    "\"entryPrice\":\"0.0\"},{\"symbol\":\"SOLUSDT\",\"positionSide\":\"BOTH\","
                    "\"positionAmt\":\"3\",\"entryPrice\":\"150\"}]";
    assert_int_equal(binance_parse_positions(b, strlen(b), &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].symbol, "BTCUSDT");
    assert_dec(v[0].amount, "-0.25");
    assert_int_equal(v[0].pos_side, MKT_PS_BOTH);
    assert_string_equal(v[1].symbol, "SOLUSDT");
    free(v);

    /* leverage as an integer too */
    b = "[{\"symbol\":\"BTCUSDT\",\"positionAmt\":\"1\",\"entryPrice\":\"2\",\"leverage\":125}]";
    assert_int_equal(binance_parse_positions(b, strlen(b), &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].leverage, 125);
    free(v);
}

static void test_parse_error_and_listen_key_samples(void **state) {
    (void)state;
    size_t len;
    int code = 0;
    char msg[160], key[BINANCE_LISTEN_KEY_MAX], err[160];

    char *body = sample_load("binance_error_payload.json", &len);
    assert_int_equal(binance_parse_error(body, len, &code, msg, sizeof msg), 0);
    assert_int_equal(code, -1121);
    assert_string_equal(msg, "Invalid symbol.");
    free(body);

    body = sample_load("binance_listenkey_start_response.json", &len);
    assert_int_equal(binance_parse_listen_key(body, len, key, sizeof key, err, sizeof err), 0);
    assert_string_equal(key, "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1");
    free(body);
    body = sample_load("binance_listenkey_keepalive_response.json", &len);
    assert_int_equal(binance_parse_listen_key(body, len, key, sizeof key, err, sizeof err), 0);
    assert_string_equal(key, "3HBntNTepshgEdjIwSUIBgB9keLyOCg5qv3n6bYAtktG8ejcaW5HXz9Vx1JgIieg");
    free(body);
    body = sample_load("binance_listenkey_close_response.json", &len); /* {} */
    assert_int_equal(binance_parse_listen_key(body, len, key, sizeof key, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "listenKey: listenKey: missing");
    free(body);

    /* A key that would escape the URL path. */
    const char *evil = "{\"listenKey\":\"abc/../x?y\"}";
    assert_int_equal(binance_parse_listen_key(evil, strlen(evil), key, sizeof key, err, sizeof err),
                     -EBADMSG);
    assert_non_null(strstr(err, "unexpected characters"));

    const char *t = "{\"serverTime\":1499827319559}";
    int64_t ms = 0;
    assert_int_equal(binance_parse_server_time(t, strlen(t), &ms, err, sizeof err), 0);
    assert_int_equal(ms, 1499827319559LL);
    t = "{\"serverTime\":\"1499827319559\"}";
    assert_int_equal(binance_parse_server_time(t, strlen(t), &ms, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "time: serverTime: wrong type");
}

/* ---- parsing: malformed and hostile bodies ---- */

static void expect_order_err(const char *body, size_t len, const char *want) {
    struct exch_order_result o;
    char err[160] = "";
    memset(&o, 0x5a, sizeof o);
    assert_int_equal(binance_parse_order(body, len, &o, err, sizeof err), -EBADMSG);
    if (!strstr(err, want)) fail_msg("order body %.60s: error '%s' lacks '%s'", body, err, want);
    for (const char *c = err; *c; c++) assert_true(*c >= 0x20 && *c < 0x7f);
}

static void test_order_malformed(void **state) {
    (void)state;
    size_t len;
    char *sample = sample_load("binance_new_order_response.json", &len);
    /* truncated at every length: always a clean error */
    for (size_t l = 0; l < len - 2; l++) {
        struct exch_order_result o;
        char err[160];
        assert_int_equal(binance_parse_order(sample, l, &o, err, sizeof err), -EBADMSG);
        assert_true(strlen(err) > 0);
    }
    free(sample);

#define S(x) x, strlen(x)
    expect_order_err(S(""), "order: invalid JSON");
    expect_order_err(S("{\"orderId\":1"), "order: invalid JSON");
    expect_order_err(S("[1,2]"), "order: not a JSON object");
    expect_order_err(S("null"), "order: invalid JSON"); /* jansson refuses bare scalars */
    expect_order_err(S("{}"), "order: orderId: missing");
    expect_order_err(S("{\"orderId\":\"1\"}"), "order: orderId: wrong type");
    expect_order_err(S("{\"orderId\":1.5}"), "order: orderId: wrong type");
    expect_order_err(S("{\"orderId\":99999999999999999999999999}"), "order: invalid JSON");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":5}"), "order: clientOrderId: wrong type");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"0123456789012345678901234567890123456\"}"),
                     "order: clientOrderId: too long");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\"}"), "order: status: missing");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"NEW_ADL\"}"),
                     "order: status: unknown value \"NEW_ADL\"");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"NEW\"}"),
                     "order: executedQty: missing");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"NEW\",\"executedQty\":0.1}"),
                     "order: executedQty: not a decimal");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"NEW\",\"executedQty\":\"1e5\"}"),
                     "order: executedQty: not a decimal");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"NEW\",\"executedQty\":"
                       "\"123456789012345678901234567890\"}"),
                     "order: executedQty: out of range");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"NEW\",\"executedQty\":\"1\"}"),
                     "order: avgPrice: missing");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"NEW\",\"executedQty\":\"1\","
                       "\"avgPrice\":\"1\",\"updateTime\":\"x\"}"),
                     "order: updateTime: wrong type");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"NEW\",\"executedQty\":\"-1\","
                       "\"avgPrice\":\"1\"}"),
                     "negative");
    expect_order_err(S("{\"orderId\":1,\"orderId\":2}"), "order: invalid JSON"); /* duplicate key */
    /* A NUL byte inside the body and control characters: rejected, message stays printable. */
    expect_order_err("{\"orderId\":1,\0\"x\":1}", 20, "order: invalid JSON");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"\x01\x02\xff\"}"),
                     "order: invalid JSON");
    expect_order_err(S("{\"orderId\":1,\"clientOrderId\":\"a\",\"status\":\"\\u0001BAD\"}"),
                     "order: status: unknown value \"?BAD\"");
#undef S
    /* Deep nesting: an error, not a stack overflow. */
    size_t deep = 100000;
    char *d = malloc(deep + 1);
    memset(d, '[', deep);
    d[deep] = '\0';
    expect_order_err(d, deep, "order: invalid JSON");
    free(d);
}

static void test_exchangeinfo_malformed(void **state) {
    (void)state;
    struct mkt_instrument *v;
    size_t n, skipped;
    char err[160];
#define EI_FAIL(body, want)                                                                    \
    do {                                                                                       \
        assert_int_equal(binance_parse_instruments(body, strlen(body), &v, &n, &skipped, err,  \
                                                   sizeof err),                                \
                         -EBADMSG);                                                            \
        assert_null(v);                                                                        \
        if (!strstr(err, want)) fail_msg("error '%s' lacks '%s'", err, want);                  \
    } while (0)
    EI_FAIL("", "exchangeInfo: invalid JSON");
    EI_FAIL("{\"symbols\":[", "exchangeInfo: invalid JSON");
    EI_FAIL("[]", "exchangeInfo: not a JSON object");
    EI_FAIL("{}", "exchangeInfo: symbols: missing");
    EI_FAIL("{\"symbols\":{}}", "exchangeInfo: symbols: not an array");
#undef EI_FAIL

#define GOOD_LOT "{\"filterType\":\"LOT_SIZE\",\"minQty\":\"0.001\",\"maxQty\":\"1000\",\"stepSize\":\"0.001\"}"
#define GOOD_PRICE "{\"filterType\":\"PRICE_FILTER\",\"minPrice\":\"0.1\",\"maxPrice\":\"0\",\"tickSize\":\"0.1\"}"
    struct {
        const char *sym; /* the second symbol's JSON */
        const char *want;
    } cases[] = {
        {"{\"symbol\":\"BAD\",\"filters\":[" GOOD_PRICE ",{\"filterType\":\"LOT_SIZE\",\"minQty\":\"1\","
         "\"maxQty\":\"1\",\"stepSize\":0.1}]}",
         "exchangeInfo: symbols[1].filters: LOT_SIZE.stepSize: not a decimal (symbol BAD)"},
        {"{\"symbol\":\"BAD\",\"filters\":[" GOOD_PRICE ",{\"filterType\":\"LOT_SIZE\",\"minQty\":\"1\","
         "\"maxQty\":\"1\",\"stepSize\":\"0\"}]}",
         "exchangeInfo: symbols[1].filters: LOT_SIZE.stepSize: must be > 0 (symbol BAD)"},
        {"{\"symbol\":\"BAD\",\"filters\":[" GOOD_PRICE "]}",
         "exchangeInfo: symbols[1].filters: LOT_SIZE: missing (symbol BAD)"},
        {"{\"symbol\":\"BAD\",\"filters\":[" GOOD_LOT "]}",
         "exchangeInfo: symbols[1].filters: PRICE_FILTER: missing (symbol BAD)"},
        {"{\"symbol\":\"BAD\",\"filters\":[" GOOD_LOT "," GOOD_PRICE
         ",{\"filterType\":\"MIN_NOTIONAL\",\"notional\":\"-5\"}]}",
         "exchangeInfo: symbols[1].filters: MIN_NOTIONAL.notional: negative (symbol BAD)"},
        {"{\"symbol\":\"BAD\",\"filters\":[" GOOD_LOT ",{\"filterType\":\"PRICE_FILTER\",\"minPrice\":"
         "\"0.1\",\"maxPrice\":\"0\",\"tickSize\":\"99999999999999999999.5\"}]}",
         "exchangeInfo: symbols[1].filters: PRICE_FILTER.tickSize: out of range (symbol BAD)"},
        {"{\"symbol\":\"BAD\",\"filters\":[" GOOD_LOT "," GOOD_PRICE
         ",{\"filterType\":\"MARKET_LOT_SIZE\",\"minQty\":null,\"maxQty\":\"1\",\"stepSize\":\"1\"}]}",
         "exchangeInfo: symbols[1].filters: MARKET_LOT_SIZE.minQty: not a decimal (symbol BAD)"},
        {"{\"symbol\":\"BAD\",\"filters\":[3]}", "exchangeInfo: symbols[1].filters[0]: no filterType"},
        {"{\"symbol\":\"BAD\"}", "exchangeInfo: symbols[1].filters: missing (symbol BAD)"},
        {"{\"symbol\":\"BAD\",\"filters\":\"x\"}", "exchangeInfo: symbols[1].filters: not an array"},
        {"{\"filters\":[]}", "exchangeInfo: symbols[1].symbol: missing"},
        {"{\"symbol\":7,\"filters\":[]}", "exchangeInfo: symbols[1].symbol: wrong type"},
        {"{\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\",\"filters\":[]}",
         "exchangeInfo: symbols[1].symbol: empty, too long"},
        {"\"BTCUSDT\"", "exchangeInfo: symbols[1]: not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[2048];
        snprintf(body, sizeof body,
                 "{\"symbols\":[{\"symbol\":\"GOODUSDT\",\"status\":\"TRADING\",\"filters\":["
                 GOOD_PRICE "," GOOD_LOT "]},%s]}",
                 cases[i].sym);
        assert_int_equal(binance_parse_instruments(body, strlen(body), &v, &n, &skipped, err,
                                                   sizeof err),
                         0);
        /* the good symbol survives; the bad one is skipped and named */
        assert_int_equal(n, 1);
        assert_int_equal(skipped, 1);
        assert_string_equal(v[0].symbol, "GOODUSDT");
        assert_dec(v[0].step, "0.001");
        assert_dec(v[0].mkt_step, "0"); /* no MARKET_LOT_SIZE: 0 = same as step */
        assert_dec(v[0].max_price, "0");
        if (strcmp(err, cases[i].want) != 0 && !strstr(err, cases[i].want))
            fail_msg("case %zu: error '%s', want '%s'", i, err, cases[i].want);
        free(v);
    }
#undef GOOD_LOT
#undef GOOD_PRICE
    /* Empty list: fine, nothing. */
    const char *empty = "{\"symbols\":[]}";
    assert_int_equal(binance_parse_instruments(empty, strlen(empty), &v, &n, &skipped, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(v);
}

static void test_positions_malformed(void **state) {
    (void)state;
    struct mkt_position *v;
    size_t n;
    char err[160];
    struct {
        const char *body, *want;
    } cases[] = {
        {"", "positionRisk: invalid JSON"},
        {"{\"code\":-2015,\"msg\":\"x\"}", "positionRisk: not a JSON array"},
        {"[1]", "positionRisk: [0]: not an object"},
        {"[{\"positionAmt\":\"1\"}]", "positionRisk: [0].symbol: missing"},
        {"[{\"symbol\":\"A\",\"positionAmt\":1.5,\"entryPrice\":\"1\"}]",
         "positionRisk: [0].positionAmt: not a decimal (symbol A)"},
        {"[{\"symbol\":\"A\",\"positionAmt\":\"1\"}]", "positionRisk: [0].entryPrice: missing (symbol A)"},
        {"[{\"symbol\":\"A\",\"positionSide\":1,\"positionAmt\":\"1\",\"entryPrice\":\"1\"}]",
         "positionRisk: [0].positionSide: wrong type"},
        {"[{\"symbol\":\"A\",\"positionSide\":\"BOTH\",\"positionAmt\":\"1\",\"entryPrice\":\"1\"},"
         "{\"symbol\":\"B\",\"positionSide\":\"UP\",\"positionAmt\":\"0\",\"entryPrice\":\"0\"}]",
         "positionRisk: [1].positionSide: \"UP\" is not BOTH, LONG or SHORT (symbol B)"},
        {"[{\"symbol\":\"A\",\"positionAmt\":\"1\",\"entryPrice\":\"1\",\"leverage\":\"x\"}]",
         "positionRisk: [0].leverage: not an integer 1..1000 (symbol A)"},
        {"[{\"symbol\":\"A\",\"positionAmt\":\"1\",\"entryPrice\":\"1\",\"leverage\":\"0\"}]",
         "positionRisk: [0].leverage: not an integer 1..1000"},
        {"[{\"symbol\":\"A\",\"positionAmt\":\"1\",\"entryPrice\":\"1\",\"leverage\":\"-5\"}]",
         "positionRisk: [0].leverage: not an integer 1..1000"},
        {"[{\"symbol\":\"A\",\"positionAmt\":\"1\",\"entryPrice\":\"1\",\"leverage\":20.0}]",
         "positionRisk: [0].leverage: not an integer 1..1000"},
        {"[{\"symbol\":\"A\",\"positionAmt\":\"1\",\"entryPrice\":\"1\",\"leverage\":1001}]",
         "positionRisk: [0].leverage: not an integer 1..1000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(binance_parse_positions(cases[i].body, strlen(cases[i].body), &v, &n, err,
                                                 sizeof err),
                         -EBADMSG);
        assert_null(v);
        assert_int_equal(n, 0);
        if (!strstr(err, cases[i].want)) fail_msg("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
    }
}


/* ---- hedge mode, leverage, account, tickers ---- */

static void test_order_position_side(void **state) {
    (void)state;
    struct exch_account *a = test_account();
    struct exch_order_req req = {
        .symbol = "BTCUSDT",
        .side = MKT_SELL,
        .type = EXCH_LIMIT_IOC,
        .qty = D("0.250"),
        .price = D("64999.90"),
        .client_id = "ctH_1",
        .pos_side = MKT_PS_SHORT,
    };
    char b[BINANCE_QS_MAX], err[128];
    int n = binance_order_params(&req, b, sizeof b, err, sizeof err);
    assert_true(n > 0);
    assert_string_equal(b, "symbol=BTCUSDT&side=SELL&positionSide=SHORT&type=LIMIT&timeInForce=IOC"
                           "&quantity=0.25&price=64999.9&newClientOrderId=ctH_1"
                           "&newOrderRespType=RESULT");
    n = binance_sign_params(a, b, sizeof b, (size_t)n, 5000, 1700000000000LL);
    assert_string_equal(b, "symbol=BTCUSDT&side=SELL&positionSide=SHORT&type=LIMIT&timeInForce=IOC"
                           "&quantity=0.25&price=64999.9&newClientOrderId=ctH_1"
                           "&newOrderRespType=RESULT&recvWindow=5000&timestamp=1700000000000"
                           "&signature=c6076217cc46fda62ddeef3fc299ca57ea3feae1ffeb9893e37a70221fd96e57");

    /* a SELL on LONG closes the long: MARKET, no reduceOnly */
    req.type = EXCH_MARKET;
    req.pos_side = MKT_PS_LONG;
    n = binance_order_params(&req, b, sizeof b, err, sizeof err);
    assert_string_equal(b, "symbol=BTCUSDT&side=SELL&positionSide=LONG&type=MARKET&quantity=0.25"
                           "&newClientOrderId=ctH_1&newOrderRespType=RESULT");

    /* BOTH (the zero value) sends nothing: the one-way request is unchanged */
    req.pos_side = MKT_PS_BOTH;
    req.reduce_only = true;
    n = binance_order_params(&req, b, sizeof b, err, sizeof err);
    assert_string_equal(b, "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.25&reduceOnly=true"
                           "&newClientOrderId=ctH_1&newOrderRespType=RESULT");

    /* reduceOnly is refused in hedge mode */
    req.pos_side = MKT_PS_LONG;
    err[0] = '\0';
    assert_int_equal(binance_order_params(&req, b, sizeof b, err, sizeof err), -EINVAL);
    assert_string_equal(b, "");
    assert_non_null(strstr(err, "reduceOnly"));
    assert_non_null(strstr(err, "LONG"));
    req.reduce_only = false;
    req.pos_side = (enum mkt_pos_side)7;
    assert_int_equal(binance_order_params(&req, b, sizeof b, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "position side"));
    /* IOC without a price */
    req.pos_side = MKT_PS_BOTH;
    req.type = EXCH_LIMIT_IOC;
    req.price = D("0");
    assert_int_equal(binance_order_params(&req, b, sizeof b, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "price"));
    exch_account_free(a);
}

static void test_leverage_params_and_answer(void **state) {
    (void)state;
    struct exch_account *a = test_account();
    char b[BINANCE_QS_MAX], err[160];
    int n = binance_leverage_params("BTCUSDT", 25, b, sizeof b);
    assert_int_equal(n, (int)strlen("symbol=BTCUSDT&leverage=25"));
    assert_string_equal(b, "symbol=BTCUSDT&leverage=25");
    n = binance_sign_params(a, b, sizeof b, (size_t)n, 5000, 1700000000000LL);
    assert_string_equal(b, "symbol=BTCUSDT&leverage=25&recvWindow=5000&timestamp=1700000000000"
                           "&signature=f6514e86bd63122eaf682e7edb6153b0b3319b04abf910a2745c5f8ac0343577");
    assert_int_equal(binance_leverage_params("BTCUSDT", 0, b, sizeof b), -EINVAL);
    assert_int_equal(binance_leverage_params("BTCUSDT", 126, b, sizeof b), -EINVAL);
    assert_int_equal(binance_leverage_params("", 5, b, sizeof b), -EINVAL);
    assert_int_equal(binance_leverage_params("BTCUSDT", 5, b, 10), -ENOSPC);
    /* no pool: refused before anything is sent */
    assert_int_equal(exch_set_leverage(a, "BTCUSDT", 5, (exch_set_leverage_cb)1, NULL), -EINVAL);

    size_t len;
    int lev = -1;
    char *body = sample_load("binance_change_leverage_response.json", &len);
    assert_int_equal(binance_parse_set_leverage(body, len, "BTCUSDT", &lev, err, sizeof err), 0);
    assert_int_equal(lev, 21);
    assert_int_equal(binance_parse_set_leverage(body, len, "ETHUSDT", &lev, err, sizeof err),
                     -EBADMSG);
    assert_int_equal(lev, 0);
    assert_non_null(strstr(err, "leverage: symbol: \"BTCUSDT\" is not the one asked for (ETHUSDT)"));
    free(body);
    static const struct {
        const char *body, *want;
    } bad[] = {
        {"", "leverage: invalid JSON"},
        {"[]", "leverage: not a JSON object"},
        {"{\"leverage\":5}", "leverage: symbol: missing"},
        {"{\"symbol\":\"BTCUSDT\"}", "leverage: leverage: missing"},
        {"{\"symbol\":\"BTCUSDT\",\"leverage\":\"5\"}", "leverage: leverage: not an integer"},
        {"{\"symbol\":\"BTCUSDT\",\"leverage\":0}", "leverage: leverage: not an integer 1..1000"},
        {"{\"symbol\":\"BTCUSDT\",\"leverage\":2.5}", "leverage: leverage: not an integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(binance_parse_set_leverage(bad[i].body, strlen(bad[i].body), "BTCUSDT",
                                                    &lev, err, sizeof err),
                         -EBADMSG);
        if (!strstr(err, bad[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].want);
    }
    exch_account_free(a);
}

static void test_parse_leverages(void **state) {
    (void)state;
    size_t len, n;
    struct exch_leverage *v;
    char err[160];
    char *body = sample_load("binance_position_risk_v2_hedge.json", &len);
    assert_int_equal(binance_parse_leverages(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1); /* LONG and SHORT of BTCUSDT: one entry */
    assert_string_equal(v[0].symbol, "BTCUSDT");
    assert_int_equal(v[0].leverage, 4);
    free(v);
    free(body);
    body = sample_load("binance_position_risk_v2_oneway.cleaned.json", &len);
    assert_int_equal(binance_parse_leverages(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1); /* flat, still reported */
    assert_int_equal(v[0].leverage, 10);
    free(v);
    free(body);
    /* v3 has no leverage: an error naming the field, not a silent 0 */
    body = sample_load("binance_position_risk_v3_oneway.json", &len);
    assert_int_equal(binance_parse_leverages(body, len, &v, &n, err, sizeof err), -EBADMSG);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_string_equal(err, "positionRisk: [0].leverage: missing (symbol ADAUSDT)");
    free(body);

    const char *b = "[{\"symbol\":\"SOLUSDT\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"},"
                    "{\"symbol\":\"BTCUSDT\",\"positionSide\":\"LONG\",\"positionAmt\":\"1\",\"entryPrice\":\"2\",\"leverage\":\"3\"},"
                    "{\"symbol\":\"ETHUSDT\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"50\"},"
                    "{\"symbol\":\"BTCUSDT\",\"positionSide\":\"SHORT\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"7\"}]";
    assert_int_equal(binance_parse_leverages(b, strlen(b), &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].symbol, "BTCUSDT");
    assert_int_equal(v[0].leverage, 7); /* disagreeing sides: the highest */
    assert_string_equal(v[1].symbol, "ETHUSDT");
    assert_int_equal(v[1].leverage, 50);
    assert_string_equal(v[2].symbol, "SOLUSDT");
    assert_int_equal(v[2].leverage, 5);
    free(v);
    assert_int_equal(binance_parse_leverages("[]", 2, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(v);
    assert_int_equal(binance_parse_leverages("{}", 2, &v, &n, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "positionRisk: not a JSON array");
}

/* The position mode from positionRisk v2 (what binance_fetch_position_mode uses instead of
 * positionSide/dual): every entry BOTH -> one-way, every entry LONG/SHORT -> hedge, else
 * -ENODATA (the adapter then asks positionSide/dual). */
static void test_parse_risk_mode(void **state) {
    (void)state;
    size_t len;
    enum mkt_pos_mode m;
    char err[160];
    char *body = sample_load("binance_position_risk_v2_hedge.json", &len);
    m = MKT_PM_ONE_WAY;
    assert_int_equal(binance_parse_risk_mode(body, len, &m, err, sizeof err), 0);
    assert_int_equal(m, MKT_PM_HEDGE);
    free(body);
    body = sample_load("binance_position_risk_v2_oneway.cleaned.json", &len);
    m = MKT_PM_HEDGE;
    assert_int_equal(binance_parse_risk_mode(body, len, &m, err, sizeof err), 0);
    assert_int_equal(m, MKT_PM_ONE_WAY);
    free(body);
    /* v3 hedge (no leverage): the mode does not need it */
    body = sample_load("binance_position_risk_v3_hedge.json", &len);
    m = MKT_PM_ONE_WAY;
    assert_int_equal(binance_parse_risk_mode(body, len, &m, err, sizeof err), 0);
    assert_int_equal(m, MKT_PM_HEDGE);
    free(body);

    /* positionSide absent = BOTH, flat entries count too */
    const char *b = "[{\"symbol\":\"SOLUSDT\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"},"
                    "{\"symbol\":\"BTCUSDT\",\"positionSide\":\"BOTH\",\"positionAmt\":\"-1\",\"entryPrice\":\"2\",\"leverage\":\"3\"}]";
    m = MKT_PM_HEDGE;
    assert_int_equal(binance_parse_risk_mode(b, strlen(b), &m, err, sizeof err), 0);
    assert_int_equal(m, MKT_PM_ONE_WAY);
    /* a hedge account with every position flat is still told apart */
    b = "[{\"symbol\":\"ETHUSDT\",\"positionSide\":\"LONG\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"},"
        "{\"symbol\":\"ETHUSDT\",\"positionSide\":\"SHORT\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"}]";
    m = MKT_PM_ONE_WAY;
    assert_int_equal(binance_parse_risk_mode(b, strlen(b), &m, err, sizeof err), 0);
    assert_int_equal(m, MKT_PM_HEDGE);

    /* cannot tell: no entries; BOTH mixed with LONG/SHORT. *out untouched. */
    m = MKT_PM_HEDGE;
    assert_int_equal(binance_parse_risk_mode("[]", 2, &m, err, sizeof err), -ENODATA);
    assert_string_equal(err, "positionRisk: no entries, the position mode cannot be told");
    assert_int_equal(m, MKT_PM_HEDGE);
    b = "[{\"symbol\":\"ETHUSDT\",\"positionSide\":\"BOTH\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"},"
        "{\"symbol\":\"ETHUSDT\",\"positionSide\":\"LONG\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"},"
        "{\"symbol\":\"ETHUSDT\",\"positionSide\":\"SHORT\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"}]";
    assert_int_equal(binance_parse_risk_mode(b, strlen(b), &m, err, sizeof err), -ENODATA);
    assert_string_equal(err, "positionRisk: 1 BOTH and 2 LONG/SHORT entries, the position mode "
                             "cannot be told");
    /* malformed: the entry's error */
    b = "[{\"symbol\":\"ETHUSDT\",\"positionSide\":\"UP\",\"positionAmt\":\"0\",\"entryPrice\":\"0\"}]";
    assert_int_equal(binance_parse_risk_mode(b, strlen(b), &m, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "positionRisk: [0].positionSide"));
    assert_int_equal(binance_parse_risk_mode("{}", 2, &m, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "positionRisk: not a JSON array");
    assert_int_equal(binance_parse_risk_mode("[", 1, &m, err, sizeof err), -EBADMSG);
    assert_int_equal(m, MKT_PM_HEDGE);

    /* positions, leverages and mode keep their own outcomes: a missing leverage fails only
     * the leverages; a malformed entry after it keeps the leverages' first error */
    struct exch_leverage *lv;
    struct mkt_position *pv;
    size_t n;
    b = "[{\"symbol\":\"ETHUSDT\",\"positionAmt\":\"1\",\"entryPrice\":\"2\"},"
        "{\"symbol\":\"BTCUSDT\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"}]";
    assert_int_equal(binance_parse_positions(b, strlen(b), &pv, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(pv[0].symbol, "ETHUSDT");
    free(pv);
    assert_int_equal(binance_parse_leverages(b, strlen(b), &lv, &n, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "positionRisk: [0].leverage: missing (symbol ETHUSDT)");
    assert_int_equal(binance_parse_risk_mode(b, strlen(b), &m, err, sizeof err), 0);
    assert_int_equal(m, MKT_PM_ONE_WAY);
    b = "[{\"symbol\":\"ETHUSDT\",\"positionAmt\":\"1\",\"entryPrice\":\"2\"},"
        "{\"symbol\":\"BTCUSDT\",\"positionAmt\":\"x\",\"entryPrice\":\"0\",\"leverage\":\"5\"}]";
    assert_int_equal(binance_parse_leverages(b, strlen(b), &lv, &n, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "positionRisk: [0].leverage: missing (symbol ETHUSDT)");
    assert_int_equal(binance_parse_positions(b, strlen(b), &pv, &n, err, sizeof err), -EBADMSG);
    assert_null(pv);
    assert_non_null(strstr(err, "positionRisk: [1].positionAmt"));
}

static void test_parse_account(void **state) {
    (void)state;
    size_t len;
    struct exch_balance bal;
    char err[160];
    char *body = sample_load("binance_account_v3_single_asset.cleaned.json", &len);
    assert_int_equal(binance_parse_account(body, len, &bal, err, sizeof err), 0);
    assert_dec(bal.equity, "103.12345678");
    assert_dec(bal.wallet, "103.12345678");
    assert_dec(bal.available, "103.12345678");
    assert_dec(bal.unrealized, "0");
    /* truncated at every length: a clean error */
    for (size_t l = 0; l + 1 < len; l++)
        assert_int_equal(binance_parse_account(body, l, &bal, err, sizeof err), -EBADMSG);
    free(body);

    const char *b = "{\"totalMarginBalance\":\"950.5\",\"totalWalletBalance\":\"1000\","
                    "\"availableBalance\":\"-3.25\",\"totalUnrealizedProfit\":\"-49.5\"}";
    assert_int_equal(binance_parse_account(b, strlen(b), &bal, err, sizeof err), 0);
    assert_dec(bal.equity, "950.5");
    assert_dec(bal.available, "-3.25");
    assert_dec(bal.unrealized, "-49.5");
    static const struct {
        const char *body, *want;
    } bad[] = {
        {"[]", "account: not a JSON object"},
        {"{}", "account: totalMarginBalance: missing"},
        {"{\"totalMarginBalance\":1.5}", "account: totalMarginBalance: not a decimal"},
        {"{\"totalMarginBalance\":\"1\",\"totalWalletBalance\":\"x\"}",
         "account: totalWalletBalance: not a decimal"},
        {"{\"totalMarginBalance\":\"1\",\"totalWalletBalance\":\"1\"}", "account: availableBalance: missing"},
        {"{\"totalMarginBalance\":\"1\",\"totalWalletBalance\":\"1\",\"availableBalance\":\"1\","
         "\"totalUnrealizedProfit\":\"123456789012345678901234567890\"}",
         "account: totalUnrealizedProfit: out of range"},
        {"{\"code\":-2015,\"msg\":\"Invalid API-key\"}", "account: totalMarginBalance: missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(binance_parse_account(bad[i].body, strlen(bad[i].body), &bal, err, sizeof err),
                         -EBADMSG);
        if (!strstr(err, bad[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].want);
        assert_true(dec_is_zero(bal.equity));
    }
}

static void test_parse_tickers_and_mode(void **state) {
    (void)state;
    size_t len, n;
    struct exch_ticker *v;
    char err[160];
    char *body = sample_load("binance_ticker_price_v2_all.json", &len);
    assert_int_equal(binance_parse_tickers(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].symbol, "BTCUSDT");
    assert_dec(v[0].price, "6000.01");
    assert_int_equal(v[0].time_ms, 1589437530011LL);
    free(v);
    free(body);
    body = sample_load("binance_ticker_price_v2_single.json", &len);
    assert_int_equal(binance_parse_tickers(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_dec(v[0].price, "6000.01");
    free(v);
    free(body);

    const char *b = "[{\"symbol\":\"A\",\"price\":\"1.5\"},{\"symbol\":\"DEAD\",\"price\":\"0.000\","
                    "\"time\":1},{\"symbol\":\"B\",\"price\":\"2\",\"time\":7}]";
    assert_int_equal(binance_parse_tickers(b, strlen(b), &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 2); /* DEAD has no price */
    assert_string_equal(v[0].symbol, "A");
    assert_int_equal(v[0].time_ms, 0);
    assert_string_equal(v[1].symbol, "B");
    assert_int_equal(v[1].time_ms, 7);
    free(v);
    static const struct {
        const char *body, *want;
    } bad[] = {
        {"", "ticker: invalid JSON"},
        {"5", "ticker: invalid JSON"},
        {"\"x\"", "ticker: invalid JSON"},
        {"[1]", "ticker: [0]: not an object"},
        {"[{\"price\":\"1\"}]", "ticker: [0].symbol: missing"},
        {"[{\"symbol\":\"A\",\"price\":\"1\"},{\"symbol\":\"B\",\"price\":1.5}]",
         "ticker: [1].price: not a decimal (symbol B)"},
        {"[{\"symbol\":\"A\",\"price\":\"-1\"}]", "ticker: [0].price: negative (symbol A)"},
        {"[{\"symbol\":\"A\",\"price\":\"1\",\"time\":\"now\"}]", "ticker: [0].time: wrong type (symbol A)"},
        {"[{\"symbol\":\"\",\"price\":\"1\"}]", "ticker: [0].symbol: empty"},
        {"{\"symbol\":\"A\"}", "ticker: price: missing (symbol A)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(binance_parse_tickers(bad[i].body, strlen(bad[i].body), &v, &n, err, sizeof err),
                         -EBADMSG);
        assert_null(v);
        assert_int_equal(n, 0);
        if (!strstr(err, bad[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].want);
    }

    enum mkt_pos_mode m = MKT_PM_ONE_WAY;
    b = "{\"dualSidePosition\":true}";
    assert_int_equal(binance_parse_position_mode(b, strlen(b), &m, err, sizeof err), 0);
    assert_int_equal(m, MKT_PM_HEDGE);
    b = "{\"dualSidePosition\":false}";
    assert_int_equal(binance_parse_position_mode(b, strlen(b), &m, err, sizeof err), 0);
    assert_int_equal(m, MKT_PM_ONE_WAY);
    b = "{\"dualSidePosition\":\"true\"}";
    assert_int_equal(binance_parse_position_mode(b, strlen(b), &m, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "positionSide/dual: dualSidePosition: wrong type");
    b = "{}";
    assert_int_equal(binance_parse_position_mode(b, strlen(b), &m, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "positionSide/dual: dualSidePosition: missing");
    b = "[true]";
    assert_int_equal(binance_parse_position_mode(b, strlen(b), &m, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "positionSide/dual: not a JSON object");
}


/* ---- cancel, batch, fills, book tickers ---- */

static void test_batch_params(void **state) {
    (void)state;
    char b[BINANCE_QS_MAX], err[200];
    struct exch_order_req r[6] = {
        {.symbol = "BTCUSDT", .side = MKT_SELL, .type = EXCH_MARKET, .qty = D("0.002"),
         .reduce_only = true, .client_id = "a1"},
        {.symbol = "ETHUSDT", .side = MKT_BUY, .type = EXCH_LIMIT_GTC, .qty = D("0.1"),
         .price = D("2000"), .client_id = "a2", .pos_side = MKT_PS_LONG},
    };
    int n = binance_batch_params(r, 2, b, sizeof b, err, sizeof err);
    /* python: "batchOrders=" + urllib.parse.quote(json, safe="-_.~") */
    const char *want =
        "batchOrders=%5B%7B%22symbol%22%3A%22BTCUSDT%22%2C%22side%22%3A%22SELL%22%2C%22type%22%3A"
        "%22MARKET%22%2C%22quantity%22%3A%220.002%22%2C%22reduceOnly%22%3A%22true%22%2C%22newCl"
        "ientOrderId%22%3A%22a1%22%2C%22newOrderRespType%22%3A%22RESULT%22%7D%2C%7B%22symbol%22"
        "%3A%22ETHUSDT%22%2C%22side%22%3A%22BUY%22%2C%22positionSide%22%3A%22LONG%22%2C%22type%"
        "22%3A%22LIMIT%22%2C%22timeInForce%22%3A%22GTC%22%2C%22quantity%22%3A%220.1%22%2C%22pri"
        "ce%22%3A%222000%22%2C%22newClientOrderId%22%3A%22a2%22%2C%22newOrderRespType%22%3A%22R"
        "ESULT%22%7D%5D";
    assert_string_equal(b, want);
    assert_int_equal(n, (int)strlen(want));

    /* five long orders fit, signature included */
    for (int i = 0; i < 5; i++) {
        static char ids[5][37];
        snprintf(ids[i], sizeof ids[i], "%036d", i);
        r[i] = (struct exch_order_req){.symbol = "1000000000000000000000000000XYZ", .side = MKT_BUY,
                                       .type = EXCH_LIMIT_IOC, .qty = D("123456789.123456789"),
                                       .price = D("987654321.987654321"), .client_id = ids[i],
                                       .pos_side = MKT_PS_SHORT};
    }
    n = binance_batch_params(r, 5, b, sizeof b, err, sizeof err);
    assert_true(n > 0);
    struct exch_account *a = test_account();
    assert_true(binance_sign_params(a, b, sizeof b, (size_t)n, 5000, 1591702613943LL) > n);
    exch_account_free(a);

    /* refusals name the order */
    assert_int_equal(binance_batch_params(r, 0, b, sizeof b, err, sizeof err), -EINVAL);
    assert_string_equal(err, "batch: 0 orders (1..5)");
    assert_int_equal(binance_batch_params(r, 6, b, sizeof b, err, sizeof err), -EINVAL);
    r[2].qty = D("0");
    assert_int_equal(binance_batch_params(r, 5, b, sizeof b, err, sizeof err), -EINVAL);
    assert_string_equal(err, "batch[2]: order: quantity: must be > 0");
    r[2].qty = D("1");
    r[3].client_id = r[1].client_id;
    assert_int_equal(binance_batch_params(r, 5, b, sizeof b, err, sizeof err), -EINVAL);
    assert_string_equal(err, "batch[3]: client id: same as batch[1]");
    assert_string_equal(b, "");
    char small[64];
    assert_int_equal(binance_batch_params(r, 1, small, sizeof small, err, sizeof err), -ENOSPC);
}

static void test_trades_and_order_id_params(void **state) {
    (void)state;
    char b[BINANCE_QS_MAX];
    assert_true(binance_user_trades_params("BTCUSDT", 42, 0, -1, -1, 1000, b, sizeof b) > 0);
    assert_string_equal(b, "symbol=BTCUSDT&fromId=42&limit=1000");
    const int64_t t0 = 1700000000000LL, w = BINANCE_TRADES_WINDOW_MS;
    assert_true(binance_user_trades_params("BTCUSDT", -1, 0, t0, t0 + w - 1, 7, b, sizeof b) > 0);
    assert_string_equal(b, "symbol=BTCUSDT&startTime=1700000000000&endTime=1700604799999&limit=7");
    assert_true(binance_user_trades_params("BTCUSDT", -1, 99, t0, t0, 1000, b, sizeof b) > 0);
    assert_string_equal(b, "symbol=BTCUSDT&orderId=99&startTime=1700000000000&endTime=1700000000000"
                           "&limit=1000");
    assert_true(binance_user_trades_params("BTCUSDT", -1, 99, -1, -1, 1000, b, sizeof b) > 0);
    assert_string_equal(b, "symbol=BTCUSDT&orderId=99&limit=1000");
    /* what Binance refuses is not built */
    assert_int_equal(binance_user_trades_params("BTCUSDT", 1, 0, t0, t0 + 1, 10, b, sizeof b), -EINVAL);
    assert_int_equal(binance_user_trades_params("BTCUSDT", -1, 0, t0, t0 + w, 10, b, sizeof b), -EINVAL);
    assert_int_equal(binance_user_trades_params("BTCUSDT", -1, 0, t0, t0 - 1, 10, b, sizeof b), -EINVAL);
    assert_int_equal(binance_user_trades_params("BTCUSDT", -1, 0, -1, -1, 0, b, sizeof b), -EINVAL);
    assert_int_equal(binance_user_trades_params("BTCUSDT", -1, 0, -1, -1, 1001, b, sizeof b), -EINVAL);
    assert_int_equal(binance_user_trades_params(NULL, -1, 0, -1, -1, 10, b, sizeof b), -EINVAL);

    assert_true(binance_order_id_params("ETHUSDT", 8886774, b, sizeof b) > 0);
    assert_string_equal(b, "symbol=ETHUSDT&orderId=8886774");
    assert_int_equal(binance_order_id_params("ETHUSDT", 0, b, sizeof b), -EINVAL);
    assert_int_equal(binance_order_id_params("", 1, b, sizeof b), -EINVAL);

    /* the adapter entry points refuse bad arguments before anything is queued */
    struct exch_account *a = test_account();
    assert_int_equal(exch_batch_max(a), BINANCE_BATCH_MAX);
    assert_int_equal(binance_fetch_fills(a, NULL, 0, (exch_fills_cb)1, NULL), -EINVAL);
    assert_int_equal(binance_fetch_fills(a, "BTCUSDT", -1, (exch_fills_cb)1, NULL), -EINVAL);
    struct exch_order_req r = {.symbol = "BTCUSDT", .side = MKT_BUY, .type = EXCH_MARKET,
                               .qty = D("1"), .client_id = "x"};
    assert_int_equal(binance_place_batch(a, &r, 0, (exch_batch_cb)1, NULL), -EINVAL);
    assert_int_equal(binance_place_batch(a, &r, 6, (exch_batch_cb)1, NULL), -EINVAL);
    assert_int_equal(binance_cancel_order(a, "BTCUSDT", "bad id!", (exch_order_cb)1, NULL), -EINVAL);
    exch_account_free(a);
}

#define ERRB(code, msg) "{\"code\":" #code ",\"msg\":\"" msg "\"}"

static void test_classify_batch(void **state) {
    (void)state;
    size_t len;
    char *body = sample_load("binance_batch_orders_response.json", &len);
    const char *ids[5] = {"testOrder", "second", "third", "fourth", "fifth"};
    struct exch_order_result v[5];

    /* the doc sample: an order, then {-2022} */
    struct rest_resp r = resp(200, body);
    binance_classify_batch(&r, ids, 2, v);
    assert_int_equal(v[0].outcome, EXCH_OK);
    assert_int_equal(v[0].status, EXCH_ST_NEW);
    assert_string_equal(v[0].order_id, "22542179");
    assert_string_equal(v[0].client_id, "testOrder");
    assert_int_equal(v[0].http_status, 200);
    assert_int_equal(v[1].outcome, EXCH_REJECTED);
    assert_int_equal(v[1].error_code, -2022);
    assert_string_equal(v[1].client_id, "second");
    assert_string_equal(v[1].error_msg, "HTTP 200: batch[1]: -2022 ReduceOnly Order is rejected.");
    /* an answer for another client id, or a count that does not match: maybe placed */
    const char *other[2] = {"mine", "second"};
    binance_classify_batch(&r, other, 2, v);
    assert_int_equal(v[0].outcome, EXCH_UNKNOWN);
    assert_non_null(strstr(v[0].error_msg, "clientOrderId mismatch"));
    assert_int_equal(v[1].outcome, EXCH_REJECTED);
    binance_classify_batch(&r, ids, 3, v);
    for (int i = 0; i < 3; i++) assert_int_equal(v[i].outcome, EXCH_UNKNOWN);
    assert_non_null(strstr(v[2].error_msg, "2 entries for 3 orders"));
    assert_string_equal(v[2].client_id, "third");
    free(body);

    /* per-entry codes: throttled, unknown outcome, rejected, garbage */
    r = resp(200, "[" ERRB(-1015, "Too many new orders") "," ERRB(-1007, "Timeout") ","
                  ERRB(-4164, "notional") ",17,{\"code\":\"x\"}]");
    binance_classify_batch(&r, ids, 5, v);
    assert_int_equal(v[0].outcome, EXCH_THROTTLED);
    assert_int_equal(v[1].outcome, EXCH_UNKNOWN);
    assert_int_equal(v[1].error_code, -1007);
    assert_int_equal(v[2].outcome, EXCH_REJECTED);
    assert_int_equal(v[2].error_code, -4164);
    assert_int_equal(v[3].outcome, EXCH_UNKNOWN);
    assert_int_equal(v[4].outcome, EXCH_UNKNOWN);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(v[i].client_id, ids[i]);
        assert_true(v[i].error_msg[0] != '\0');
    }
    r = resp(200, "{\"not\":\"an array\"}");
    binance_classify_batch(&r, ids, 1, v);
    assert_int_equal(v[0].outcome, EXCH_UNKNOWN);
    r = resp(200, "[");
    binance_classify_batch(&r, ids, 1, v);
    assert_int_equal(v[0].outcome, EXCH_UNKNOWN);

    /* one answer for all */
    struct {
        struct rest_resp r;
        enum exch_outcome want;
    } all[] = {
        {resp(503, ERRB(-1000, "Unknown error, please check your request or try again later.")), EXCH_UNKNOWN},
        {resp(500, ""), EXCH_UNKNOWN},
        {resp(429, ERRB(-1003, "Too many requests")), EXCH_THROTTLED},
        {resp(418, ""), EXCH_THROTTLED},
        {resp(400, ERRB(-1130, "Data sent for parameter 'batchOrders' is not valid.")), EXCH_REJECTED},
        {resp(400, ERRB(-1022, "Signature for this request is not valid.")), EXCH_REJECTED},
        {transport(-ETIMEDOUT, true, "Operation timed out"), EXCH_UNKNOWN},
        {transport(-ECONNREFUSED, false, "Failed to connect"), EXCH_REJECTED},
    };
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        binance_classify_batch(&all[k].r, ids, 3, v);
        for (int i = 0; i < 3; i++) {
            if (v[i].outcome != all[k].want)
                fail_msg("case %zu entry %d: outcome %d want %d (%s)", k, i, v[i].outcome,
                         all[k].want, v[i].error_msg);
            assert_string_equal(v[i].client_id, ids[i]);
        }
    }
}

static void test_classify_cancel(void **state) {
    (void)state;
    size_t len;
    char *body = sample_load("binance_cancel_order_response.json", &len);
    struct exch_order_result o;
    struct rest_resp r = resp(200, body);
    binance_classify_cancel(&r, "myOrder1", &o);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    assert_string_equal(o.order_id, "283194212");
    binance_classify_cancel(&r, "other", &o);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    free(body);

    r = resp(400, ERRB(-2011, "Unknown order sent."));
    binance_classify_cancel(&r, "c1", &o);
    assert_int_equal(o.outcome, EXCH_REJECTED); /* the adapter then queries */
    assert_int_equal(o.error_code, -2011);
    r = resp(400, ERRB(-1021, "Timestamp for this request is outside of the recvWindow."));
    binance_classify_cancel(&r, "c1", &o);
    assert_int_equal(o.outcome, EXCH_REJECTED);
    r = resp(429, ERRB(-1003, "x"));
    binance_classify_cancel(&r, "c1", &o);
    assert_int_equal(o.outcome, EXCH_THROTTLED);
    r = resp(503, "");
    binance_classify_cancel(&r, "c1", &o);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    /* not even sent: still UNKNOWN (the order's state is what the caller needs) */
    r = transport(-ECONNREFUSED, false, "Failed to connect");
    binance_classify_cancel(&r, "c1", &o);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    assert_string_equal(o.error_msg, "cancel outcome unknown: Failed to connect");
}

/* The doc's userTrades example (Account-Trade-List), as one entry. */
#define DOC_TRADE                                                                                 \
    "{\"buyer\":false,\"commission\":\"-0.07819010\",\"commissionAsset\":\"USDT\",\"id\":698759," \
    "\"maker\":false,\"orderId\":25851813,\"price\":\"7819.01\",\"qty\":\"0.002\",\"quoteQty\":"  \
    "\"15.63802\",\"realizedPnl\":\"-0.91539999\",\"side\":\"SELL\",\"positionSide\":\"SHORT\","   \
    "\"symbol\":\"BTCUSDT\",\"time\":1569514978020}"

static void test_parse_user_trades(void **state) {
    (void)state;
    struct binance_trade *v;
    size_t n;
    char err[200];
    const char *b = "[" DOC_TRADE "]";
    assert_int_equal(binance_parse_user_trades(b, strlen(b), "BTCUSDT", &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].id, 698759);
    assert_int_equal(v[0].order_id, 25851813);
    assert_int_equal(v[0].time_ms, 1569514978020LL);
    assert_string_equal(v[0].symbol, "BTCUSDT");
    assert_int_equal(v[0].side, MKT_SELL);
    assert_int_equal(v[0].pos_side, MKT_PS_SHORT);
    assert_dec(v[0].qty, "0.002");
    assert_dec(v[0].price, "7819.01");
    free(v);
    assert_int_equal(binance_parse_user_trades("[]", 2, NULL, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(v);

    struct {
        const char *body, *want;
    } bad[] = {
        {"{}", "userTrades: not a JSON array"},
        {"[1]", "userTrades: [0]: not an object"},
        {"[{\"symbol\":\"BTCUSDT\"}]", "userTrades: [0].id: missing"},
        {"[{\"id\":0}]", "userTrades: [0].id: not positive"},
        {"[{\"id\":5,\"symbol\":\"ETHUSDT\"}]", "userTrades: [0].symbol: not the symbol asked for (id 5)"},
        {"[{\"id\":5,\"symbol\":\"BTCUSDT\",\"orderId\":\"7\"}]", "userTrades: [0].orderId: wrong type (id 5)"},
        {"[{\"id\":5,\"symbol\":\"BTCUSDT\",\"orderId\":7,\"time\":1,\"side\":\"buy\"}]",
         "userTrades: [0].side: not BUY or SELL (id 5)"},
        {"[{\"id\":5,\"symbol\":\"BTCUSDT\",\"orderId\":7,\"time\":1,\"side\":\"BUY\","
         "\"positionSide\":\"UP\",\"qty\":\"1\",\"price\":\"1\"}]",
         "userTrades: [0].positionSide: not BOTH, LONG or SHORT (id 5)"},
        {"[{\"id\":5,\"symbol\":\"BTCUSDT\",\"orderId\":7,\"time\":1,\"side\":\"BUY\",\"qty\":\"0\","
         "\"price\":\"1\"}]", "userTrades: [0].qty: not positive (id 5)"},
        {"[{\"id\":5,\"symbol\":\"BTCUSDT\",\"orderId\":7,\"time\":1,\"side\":\"BUY\",\"qty\":\"1\","
         "\"price\":1.5}]", "userTrades: [0].price: not a decimal (id 5)"},
        {"[" DOC_TRADE "," DOC_TRADE ",{\"id\":-1}]", "userTrades: [2].id: not positive"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = (void *)1;
        assert_int_equal(binance_parse_user_trades(bad[i].body, strlen(bad[i].body), "BTCUSDT", &v,
                                                   &n, err, sizeof err), -EBADMSG);
        assert_null(v);
        assert_int_equal(n, 0);
        if (strcmp(err, bad[i].want) != 0) fail_msg("case %zu: '%s' want '%s'", i, err, bad[i].want);
    }
    /* no positionSide: BOTH */
    b = "[{\"id\":5,\"symbol\":\"X\",\"orderId\":7,\"time\":1,\"side\":\"BUY\",\"qty\":\"1\",\"price\":\"2\"}]";
    assert_int_equal(binance_parse_user_trades(b, strlen(b), NULL, &v, &n, err, sizeof err), 0);
    assert_int_equal(v[0].pos_side, MKT_PS_BOTH);
    free(v);
}

static void test_parse_order_info(void **state) {
    (void)state;
    size_t len;
    char err[200];
    char *body = sample_load("binance_query_order_response.json", &len);
    struct binance_order_info o;
    assert_int_equal(binance_parse_order_info(body, len, 1917641, &o, err, sizeof err), 0);
    assert_int_equal(o.order_id, 1917641);
    assert_string_equal(o.client_id, "abc");
    assert_dec(o.orig_qty, "0.4");
    assert_dec(o.executed_qty, "0");
    assert_false(o.reduce_only);
    assert_int_equal(o.status, EXCH_ST_NEW);
    assert_int_equal(o.time_ms, 1579276756075LL);
    assert_int_equal(binance_parse_order_info(body, len, 1917642, &o, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "order: orderId: 1917641 is not the one asked for (1917642)");
    free(body);
    const char *b = "{\"orderId\":3,\"clientOrderId\":\"c\",\"status\":\"FILLED\",\"origQty\":\"1\","
                    "\"executedQty\":\"1\"}";
    assert_int_equal(binance_parse_order_info(b, strlen(b), 3, &o, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "order 3: reduceOnly: missing");
    b = "{\"orderId\":3,\"clientOrderId\":\"c\",\"status\":\"FILLED\",\"origQty\":\"1\","
        "\"executedQty\":\"1\",\"reduceOnly\":true}";
    assert_int_equal(binance_parse_order_info(b, strlen(b), 3, &o, err, sizeof err), 0);
    assert_true(o.reduce_only);
    assert_int_equal(o.time_ms, -1);
    b = "{\"orderId\":3,\"clientOrderId\":\"c\",\"status\":\"DONE\"}";
    assert_int_equal(binance_parse_order_info(b, strlen(b), 3, &o, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "order 3: status: unknown value \"DONE\"");
    assert_int_equal(binance_parse_order_info("[]", 2, 3, &o, err, sizeof err), -EBADMSG);
}

static struct binance_trade T(int64_t id, int64_t oid, const char *qty, enum mkt_pos_side ps) {
    struct binance_trade t = {.id = id, .order_id = oid, .time_ms = 1000 + id, .side = MKT_BUY,
                              .pos_side = ps, .qty = D(qty), .price = D("100")};
    snprintf(t.symbol, sizeof t.symbol, "BTCUSDT");
    return t;
}

static void test_build_fills(void **state) {
    (void)state;
    char err[200];
    /* order 7: 1 of 3 filled before the backfill, then 1 + 1 (FILLED); order 8: 0.5 of 2, open;
     * trades out of order and one listed twice (overlapping pages) */
    struct binance_trade t[] = {T(12, 8, "0.5", MKT_PS_LONG), T(11, 7, "1", MKT_PS_BOTH),
                                T(13, 7, "1", MKT_PS_BOTH), T(11, 7, "1", MKT_PS_BOTH)};
    struct binance_order_info o[2] = {
        {.order_id = 8, .client_id = "open8", .orig_qty = D("2"), .executed_qty = D("0.5"),
         .status = EXCH_ST_PARTIALLY_FILLED, .prior_qty = DEC_ZERO},
        {.order_id = 7, .client_id = "done7", .orig_qty = D("3"), .executed_qty = D("3"),
         .reduce_only = true, .status = EXCH_ST_FILLED, .prior_qty = D("1")},
    };
    struct mkt_fill f[4];
    int n = binance_build_fills("leader", t, 4, o, 2, f, err, sizeof err);
    assert_int_equal(n, 3);
    assert_string_equal(f[0].trade_id, "11");
    assert_int_equal(f[0].trade_seq, 11);
    assert_string_equal(f[0].order_id, "7");
    assert_string_equal(f[0].order_client_id, "done7");
    assert_string_equal(f[0].account, "leader");
    assert_string_equal(f[0].symbol, "BTCUSDT");
    assert_dec(f[0].cum_qty, "2");
    assert_dec(f[0].orig_qty, "3");
    assert_true(f[0].reduce_only);
    assert_false(f[0].order_done);
    assert_int_equal(f[0].trade_time_ms, 1011);
    assert_int_equal(f[0].event_time_ms, 1011);
    assert_int_equal(f[0].received_ns, 0);
    assert_string_equal(f[1].trade_id, "12");
    assert_dec(f[1].cum_qty, "0.5");
    assert_false(f[1].order_done);
    assert_int_equal(f[1].pos_side, MKT_PS_LONG);
    assert_false(f[1].reduce_only);
    assert_string_equal(f[2].trade_id, "13");
    assert_dec(f[2].cum_qty, "3");
    assert_true(f[2].order_done);
    assert_dec(f[2].qty, "1");
    assert_dec(f[2].price, "100");

    /* a trade of an order we know nothing about */
    struct binance_trade u[] = {T(20, 9, "1", MKT_PS_BOTH)};
    assert_int_equal(binance_build_fills("leader", u, 1, o, 2, f, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "fills: trade 20: order 9 unknown");
    assert_int_equal(binance_build_fills("leader", u, 0, o, 2, f, err, sizeof err), 0);
}

static void test_parse_book_tickers(void **state) {
    (void)state;
    size_t len, n;
    char err[200];
    struct exch_book_ticker *v;
    char *body = sample_load("binance_book_ticker_rest_single.json", &len);
    assert_int_equal(binance_parse_book_tickers(body, len, &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].symbol, "BTCUSDT");
    assert_dec(v[0].bid, "4");
    assert_dec(v[0].ask, "4.000002");
    assert_int_equal(v[0].time_ms, 1589437530011LL);
    free(v);
    free(body);
    const char *b = "[{\"symbol\":\"A\",\"bidPrice\":\"1\",\"askPrice\":\"2\"},"
                    "{\"symbol\":\"B\",\"bidPrice\":\"0\",\"askPrice\":\"2\",\"time\":5},"
                    "{\"symbol\":\"C\",\"bidPrice\":\"3\",\"askPrice\":\"4\",\"time\":6}]";
    assert_int_equal(binance_parse_book_tickers(b, strlen(b), &v, &n, err, sizeof err), 0);
    assert_int_equal(n, 2); /* B has no bid */
    assert_string_equal(v[0].symbol, "A");
    assert_int_equal(v[0].time_ms, 0);
    assert_string_equal(v[1].symbol, "C");
    free(v);
    struct {
        const char *body, *want;
    } bad[] = {
        {"7", "bookTicker: invalid JSON: '[' or '{' expected near '7' (line 1, column 1)"},
        {"[1]", "bookTicker: [0]: not an object"},
        {"[{\"bidPrice\":\"1\"}]", "bookTicker: [0].symbol: missing"},
        {"{\"symbol\":\"A\",\"bidPrice\":\"-1\",\"askPrice\":\"2\"}", "bookTicker: bidPrice: negative (symbol A)"},
        {"[{\"symbol\":\"A\",\"bidPrice\":\"1\"}]", "bookTicker: [0].askPrice: missing (symbol A)"},
        {"[{\"symbol\":\"A\",\"bidPrice\":\"1\",\"askPrice\":\"x\"}]", "bookTicker: [0].askPrice: not a decimal (symbol A)"},
        {"[{\"symbol\":\"A\",\"bidPrice\":\"1\",\"askPrice\":\"2\",\"time\":\"now\"}]",
         "bookTicker: [0].time: wrong type (symbol A)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(binance_parse_book_tickers(bad[i].body, strlen(bad[i].body), &v, &n, err,
                                                    sizeof err), -EBADMSG);
        assert_null(v);
        if (strcmp(err, bad[i].want) != 0) fail_msg("case %zu: '%s' want '%s'", i, err, bad[i].want);
    }
}

#undef ERRB

/* ---- classification ---- */

#define ORDER_OK "{\"orderId\":42,\"clientOrderId\":\"ct1\",\"status\":\"FILLED\",\"executedQty\":\"1\",\"avgPrice\":\"10\"}"
#define ERRB(code, msg) "{\"code\":" #code ",\"msg\":\"" msg "\"}"

static void test_classification_table(void **state) {
    (void)state;
    struct row {
        struct rest_resp r;
        bool query;
        enum exch_outcome want;
        int code;
    } rows[] = {
        /* success */
        {resp(200, ORDER_OK), false, EXCH_OK, 0},
        {resp(200, ORDER_OK), true, EXCH_OK, 0},
        /* unreadable 200: the order may exist */
        {resp(200, ""), false, EXCH_UNKNOWN, 0},
        {resp(200, "{\"orderId\":42"), false, EXCH_UNKNOWN, 0},
        {resp(200, "<html>ok</html>"), false, EXCH_UNKNOWN, 0},
        {resp(200, ERRB(200, "success")), false, EXCH_UNKNOWN, 0},
        {resp(200, "{\"orderId\":42,\"clientOrderId\":\"ct1\",\"status\":\"FILLED\",\"executedQty\":1.0,"
                   "\"avgPrice\":\"10\"}"), false, EXCH_UNKNOWN, 0},
        /* plain rejections */
        {resp(400, ERRB(-4164, "Order's notional must be no smaller than 5.0")), false, EXCH_REJECTED, -4164},
        {resp(400, ERRB(-2019, "Margin is insufficient.")), false, EXCH_REJECTED, -2019},
        {resp(400, ERRB(-1021, "Timestamp for this request is outside of the recvWindow.")), false, EXCH_REJECTED, -1021},
        {resp(400, ERRB(-1022, "Signature for this request is not valid.")), false, EXCH_REJECTED, -1022},
        {resp(400, ERRB(-4116, "clientOrderId is duplicated")), false, EXCH_REJECTED, -4116},
        {resp(401, ERRB(-2015, "Invalid API-key, IP, or permissions for action.")), false, EXCH_REJECTED, -2015},
        {resp(404, "<html>Not Found</html>"), false, EXCH_REJECTED, 0},
        /* query: only -2013 says "no such order"; other errors say nothing */
        {resp(400, ERRB(-2013, "Order does not exist.")), true, EXCH_NOT_FOUND, -2013},
        {resp(400, ERRB(-2013, "Order does not exist.")), false, EXCH_REJECTED, -2013},
        {resp(400, ERRB(-1021, "Timestamp...")), true, EXCH_UNKNOWN, -1021},
        {resp(400, ERRB(-1022, "Signature...")), true, EXCH_UNKNOWN, -1022},
        {resp(404, "nope"), true, EXCH_UNKNOWN, 0},
        /* throttling */
        {resp(429, ERRB(-1003, "Too many requests")), false, EXCH_THROTTLED, -1003},
        {resp(429, ""), false, EXCH_THROTTLED, 0},
        {resp(418, ERRB(-1003, "Way too many requests; IP banned")), false, EXCH_THROTTLED, -1003},
        {resp(400, ERRB(-1015, "Too many new orders")), false, EXCH_THROTTLED, -1015},
        {resp(503, ERRB(-1008, "Request throttled by system-level protection.")), false, EXCH_THROTTLED, -1008},
        {resp(403, "<html>WAF</html>"), false, EXCH_THROTTLED, 0},
        {resp(429, ERRB(-1003, "x")), true, EXCH_THROTTLED, -1003},
        /* unknown outcome */
        {resp(503, ERRB(-1000, "Unknown error, please check your request or try again later.")), false, EXCH_UNKNOWN, -1000},
        {resp(503, "Unknown error, please check your request or try again later."), false, EXCH_UNKNOWN, 0},
        {resp(503, "Service Unavailable."), false, EXCH_UNKNOWN, 0},
        {resp(500, ""), false, EXCH_UNKNOWN, 0},
        {resp(502, "<html>bad gateway</html>"), false, EXCH_UNKNOWN, 0},
        {resp(504, ""), true, EXCH_UNKNOWN, 0},
        {resp(408, ""), false, EXCH_UNKNOWN, 0},
        {resp(400, ERRB(-1000, "An unknown error occured")), false, EXCH_UNKNOWN, -1000},
        {resp(400, ERRB(-1001, "Internal error")), false, EXCH_UNKNOWN, -1001},
        {resp(400, ERRB(-1006, "Unexpected response")), false, EXCH_UNKNOWN, -1006},
        {resp(408, ERRB(-1007, "Timeout waiting for response from backend server.")), false, EXCH_UNKNOWN, -1007},
        {resp(400, ERRB(-1007, "Timeout waiting for response from backend server.")), false, EXCH_UNKNOWN, -1007},
        {resp(302, ""), false, EXCH_UNKNOWN, 0},
        {resp(100, ""), false, EXCH_UNKNOWN, 0},
        /* transport */
        {transport(-ETIMEDOUT, true, "Operation timed out after 5000 milliseconds"), false, EXCH_UNKNOWN, 0},
        {transport(-EPIPE, true, "Connection reset by peer"), false, EXCH_UNKNOWN, 0},
        {transport(-ECONNREFUSED, true, "connect refused on the re-send"), false, EXCH_UNKNOWN, 0},
        {transport(-ECANCELED, true, "cancelled"), false, EXCH_UNKNOWN, 0},
        {transport(-EMSGSIZE, true, "too big"), false, EXCH_UNKNOWN, 0},
        {transport(-ECONNREFUSED, false, "Failed to connect"), false, EXCH_REJECTED, 0},
        {transport(-EHOSTUNREACH, false, "Could not resolve host"), false, EXCH_REJECTED, 0},
        {transport(-ETIMEDOUT, false, "Connection timed out"), false, EXCH_REJECTED, 0},
        {transport(-ECONNREFUSED, false, "Failed to connect"), true, EXCH_UNKNOWN, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct exch_order_result o;
        memset(&o, 0x5a, sizeof o);
        binance_classify_order(&rows[i].r, rows[i].query, "ct1", &o);
        if (o.outcome != rows[i].want || o.error_code != rows[i].code)
            fail_msg("row %zu (HTTP %ld %s, query %d): outcome %d code %d (msg '%s'), want %d code %d",
                     i, rows[i].r.http_status, rows[i].r.body, rows[i].query, o.outcome,
                     o.error_code, o.error_msg, rows[i].want, rows[i].code);
        assert_string_equal(o.client_id, "ct1");
        if (o.outcome != EXCH_OK) assert_true(strlen(o.error_msg) > 0);
        for (const char *c = o.error_msg; *c; c++) assert_true(*c >= 0x20 && *c < 0x7f);
        if (rows[i].r.err) assert_int_equal(o.http_status, 0);
        else assert_int_equal(o.http_status, rows[i].r.http_status);
    }
}

static void test_classification_details(void **state) {
    (void)state;
    struct exch_order_result o;
    struct rest_resp r = resp(200, ORDER_OK);
    binance_classify_order(&r, false, "ct1", &o);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    assert_string_equal(o.order_id, "42");
    assert_dec(o.executed_qty, "1");
    assert_dec(o.avg_price, "10");
    assert_int_equal(o.http_status, 200);
    assert_string_equal(o.error_msg, "");

    /* A 200 for somebody else's client id is not our order: unknown, say so. */
    binance_classify_order(&r, false, "ct2", &o);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    assert_string_equal(o.client_id, "ct2");
    assert_non_null(strstr(o.error_msg, "clientOrderId mismatch"));

    /* Retry-After (already in ms from the pool) is passed on for throttling only. */
    r = resp(429, ERRB(-1003, "Too many requests"));
    r.retry_after_ms = 7000;
    binance_classify_order(&r, false, "ct1", &o);
    assert_int_equal(o.outcome, EXCH_THROTTLED);
    assert_int_equal(o.retry_after_ms, 7000);
    assert_string_equal(o.error_msg, "HTTP 429: -1003 Too many requests");
    r.retry_after_ms = -1;
    binance_classify_order(&r, false, "ct1", &o);
    assert_int_equal(o.retry_after_ms, 0);

    r = resp(400, ERRB(-4164, "Order's notional must be no smaller than 5.0"));
    binance_classify_order(&r, false, "ct1", &o);
    assert_string_equal(o.error_msg, "HTTP 400: -4164 Order's notional must be no smaller than 5.0");

    r = transport(-ECONNREFUSED, false, "Failed to connect to 127.0.0.1 port 1: Connection refused");
    binance_classify_order(&r, false, "ct1", &o);
    assert_int_equal(o.outcome, EXCH_REJECTED);
    assert_int_equal(o.http_status, 0);
    assert_int_equal(o.error_code, 0);
    assert_string_equal(o.error_msg, "not sent: Failed to connect to 127.0.0.1 port 1: Connection refused");

    r = transport(-ETIMEDOUT, true, "Operation timed out");
    binance_classify_order(&r, false, NULL, &o);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    assert_string_equal(o.client_id, "");
    assert_string_equal(o.error_msg, "outcome unknown: Operation timed out");

    /* Hostile error text: control characters never reach error_msg; long text is cut. */
    char big[600];
    memset(big, 'A', sizeof big);
    memcpy(big, "{\"code\":-2010,\"msg\":\"\\u001b[31mred\\n", 36);
    memcpy(big + sizeof big - 3, "\"}", 3);
    r = resp(400, big);
    binance_classify_order(&r, false, "ct1", &o);
    assert_int_equal(o.outcome, EXCH_REJECTED);
    assert_int_equal(o.error_code, -2010);
    assert_true(strlen(o.error_msg) < sizeof o.error_msg);
    assert_null(strchr(o.error_msg, '\x1b'));
    assert_null(strchr(o.error_msg, '\n'));

    /* Error object with a code that does not fit an int: not an error object. */
    r = resp(400, "{\"code\":-99999999999,\"msg\":\"x\"}");
    binance_classify_order(&r, false, "ct1", &o);
    assert_int_equal(o.outcome, EXCH_REJECTED);
    assert_int_equal(o.error_code, 0);
}

static void test_status_from_resp(void **state) {
    (void)state;
    struct exch_status st;
    struct rest_resp r = resp(200, "{}");
    assert_true(binance_status_from_resp(&r, &st));
    assert_int_equal(st.err, 0);
    assert_int_equal(st.http_status, 200);

    r = resp(400, ERRB(-1125, "This listenKey does not exist."));
    assert_false(binance_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EREMOTEIO);
    assert_int_equal(st.error_code, -1125);
    assert_string_equal(st.error_msg, "HTTP 400: -1125 This listenKey does not exist.");

    r = resp(429, "");
    assert_false(binance_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EAGAIN);
    r = resp(418, ERRB(-1003, "banned"));
    assert_false(binance_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EAGAIN);
    r = resp(503, "Service Unavailable.");
    assert_false(binance_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EREMOTEIO);
    assert_string_equal(st.error_msg, "HTTP 503: Service Unavailable.");

    r = transport(-ETIMEDOUT, true, "Operation timed out");
    assert_false(binance_status_from_resp(&r, &st));
    assert_int_equal(st.err, -ETIMEDOUT);
    assert_int_equal(st.http_status, 0);
    assert_string_equal(st.error_msg, "Operation timed out");
}

static void test_retry_after_parse(void **state) {
    (void)state;
    assert_int_equal(rest_parse_retry_after("120", 3, 0), 120000);
    assert_int_equal(rest_parse_retry_after("0", 1, 0), 0);
    assert_int_equal(rest_parse_retry_after("", 0, 0), -1);
    assert_int_equal(rest_parse_retry_after("-5", 2, 0), -1);
    assert_int_equal(rest_parse_retry_after("1.5", 3, 0), -1);
    assert_int_equal(rest_parse_retry_after("99999999999999", 14, 0), -1);
    const char *date = "Wed, 21 Oct 2015 07:28:00 GMT"; /* 1445412480 */
    assert_int_equal(rest_parse_retry_after(date, strlen(date), 1445412470), 10000);
    assert_int_equal(rest_parse_retry_after(date, strlen(date), 1445412490), 0); /* past */
    assert_int_equal(rest_parse_retry_after("soon", 4, 0), -1);

    struct rest_resp r = resp(429, "");
    r.raw_headers = "Content-Type: application/json\r\nretry-after:  30 \r\nX-MBX-USED-WEIGHT-1M: 2401\r\n\r\n";
    r.raw_headers_len = strlen(r.raw_headers);
    size_t n;
    const char *v = rest_resp_header(&r, "Retry-After", &n);
    assert_non_null(v);
    assert_int_equal(n, 2);
    assert_memory_equal(v, "30", 2);
    v = rest_resp_header(&r, "x-mbx-used-weight-1m", &n);
    assert_non_null(v);
    assert_memory_equal(v, "2401", n);
    assert_null(rest_resp_header(&r, "X-MBX-USED-WEIGHT", &n)); /* prefix is not a match */
    assert_null(rest_resp_header(&r, "Retry", &n));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_and_account),
        cmocka_unit_test(test_qs_percent_encoding),
        cmocka_unit_test(test_sign_params_official_vector),
        cmocka_unit_test(test_order_market_reduce_only),
        cmocka_unit_test(test_order_limit_and_unicode_symbol),
        cmocka_unit_test(test_order_invalid),
        cmocka_unit_test(test_query_params),
        cmocka_unit_test(test_parse_new_order_sample),
        cmocka_unit_test(test_parse_query_order_sample),
        cmocka_unit_test(test_parse_filled_result),
        cmocka_unit_test(test_parse_exchangeinfo_sample),
        cmocka_unit_test(test_parse_positions_samples),
        cmocka_unit_test(test_parse_error_and_listen_key_samples),
        cmocka_unit_test(test_order_malformed),
        cmocka_unit_test(test_exchangeinfo_malformed),
        cmocka_unit_test(test_positions_malformed),
        cmocka_unit_test(test_order_position_side),
        cmocka_unit_test(test_leverage_params_and_answer),
        cmocka_unit_test(test_parse_leverages),
        cmocka_unit_test(test_parse_risk_mode),
        cmocka_unit_test(test_parse_account),
        cmocka_unit_test(test_parse_tickers_and_mode),
        cmocka_unit_test(test_classification_table),
        cmocka_unit_test(test_classification_details),
        cmocka_unit_test(test_status_from_resp),
        cmocka_unit_test(test_retry_after_parse),
        cmocka_unit_test(test_batch_params),
        cmocka_unit_test(test_trades_and_order_id_params),
        cmocka_unit_test(test_classify_batch),
        cmocka_unit_test(test_classify_cancel),
        cmocka_unit_test(test_parse_user_trades),
        cmocka_unit_test(test_parse_order_info),
        cmocka_unit_test(test_build_fills),
        cmocka_unit_test(test_parse_book_tickers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
