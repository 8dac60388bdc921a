/* bybit_rest: request building (exact JSON / query text), response parsing on the doc samples
 * and on malformed/hostile bodies, the mode book and fill position sides, and the order outcome
 * classification table row by row. No I/O but reading sample files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bybit_rest.h"
#include "dec_test.h"
#include "sample_util.h"

#define ENV(result) "{\"retCode\":0,\"retMsg\":\"OK\",\"result\":" result ",\"retExtInfo\":{},\"time\":1672211918471}"
#define ERR_ENV(code, msg) "{\"retCode\":" #code ",\"retMsg\":\"" msg "\",\"result\":{},\"retExtInfo\":{},\"time\":1}"

/* ================================================================ request building */

static struct exch_order_req order(const char *sym, enum mkt_side side, enum exch_order_type t,
                                   const char *qty, const char *price, bool ro,
                                   enum mkt_pos_side ps, const char *cid) {
    struct exch_order_req r = {
        .symbol = sym, .side = side, .type = t, .qty = D(qty), .price = price ? D(price) : DEC_ZERO,
        .reduce_only = ro, .client_id = cid, .pos_side = ps,
    };
    return r;
}

static void test_order_json(void **state) {
    (void)state;
    char b[BYBIT_BODY_MAX], err[160];
    struct exch_order_req r = order("BTCUSDT", MKT_BUY, EXCH_MARKET, "0.001", NULL, false,
                                    MKT_PS_BOTH, "ct-0001");
    int n = bybit_order_json(&r, b, sizeof b, err, sizeof err);
    assert_string_equal(b, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\","
                           "\"orderType\":\"Market\",\"qty\":\"0.001\",\"positionIdx\":0,"
                           "\"orderLinkId\":\"ct-0001\",\"reduceOnly\":false}");
    assert_int_equal(n, (int)strlen(b));

    r = order("ETHUSDT", MKT_SELL, EXCH_LIMIT_IOC, "1.50", "2500.10", true, MKT_PS_BOTH, "ct_2");
    bybit_order_json(&r, b, sizeof b, err, sizeof err);
    assert_string_equal(b, "{\"category\":\"linear\",\"symbol\":\"ETHUSDT\",\"side\":\"Sell\","
                           "\"orderType\":\"Limit\",\"qty\":\"1.5\",\"price\":\"2500.1\","
                           "\"timeInForce\":\"IOC\",\"positionIdx\":0,\"orderLinkId\":\"ct_2\","
                           "\"reduceOnly\":true}");

    /* hedge legs: positionIdx 1 (LONG) / 2 (SHORT) */
    r = order("BTCUSDT", MKT_BUY, EXCH_LIMIT_GTC, "2", "25000", false, MKT_PS_LONG, "a");
    bybit_order_json(&r, b, sizeof b, err, sizeof err);
    assert_non_null(strstr(b, "\"timeInForce\":\"GTC\",\"positionIdx\":1,"));
    r.pos_side = MKT_PS_SHORT;
    r.side = MKT_SELL;
    bybit_order_json(&r, b, sizeof b, err, sizeof err);
    assert_non_null(strstr(b, "\"side\":\"Sell\""));
    assert_non_null(strstr(b, "\"positionIdx\":2,"));

    /* refusals, each with a reason naming the field */
    struct {
        struct exch_order_req r;
        const char *why;
    } bad[] = {
        {order("BTC USDT", MKT_BUY, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH, "a"), "symbol"},
        {order("BTC\"USDT", MKT_BUY, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH, "a"), "symbol"},
        {order("", MKT_BUY, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH, "a"), "symbol"},
        {order("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", MKT_BUY, EXCH_MARKET, "1", NULL, false,
               MKT_PS_BOTH, "a"), "symbol"},
        {order("BTCUSDT", (enum mkt_side)0, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH, "a"), "side"},
        {order("BTCUSDT", MKT_BUY, (enum exch_order_type)9, "1", NULL, false, MKT_PS_BOTH, "a"), "type"},
        {order("BTCUSDT", MKT_BUY, EXCH_MARKET, "1", NULL, false, (enum mkt_pos_side)7, "a"), "position side"},
        {order("BTCUSDT", MKT_BUY, EXCH_MARKET, "1", NULL, true, MKT_PS_LONG, "a"), "reduceOnly"},
        {order("BTCUSDT", MKT_BUY, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH, "a.b"), "orderLinkId"},
        {order("BTCUSDT", MKT_BUY, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH,
               "0123456789012345678901234567890123456"), "orderLinkId"},
        {order("BTCUSDT", MKT_BUY, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH, NULL), "orderLinkId"},
        {order("BTCUSDT", MKT_BUY, EXCH_MARKET, "0", NULL, false, MKT_PS_BOTH, "a"), "qty"},
        {order("BTCUSDT", MKT_BUY, EXCH_MARKET, "-1", NULL, false, MKT_PS_BOTH, "a"), "qty"},
        {order("BTCUSDT", MKT_BUY, EXCH_LIMIT_IOC, "1", NULL, false, MKT_PS_BOTH, "a"), "price"},
        {order("BTCUSDT", MKT_BUY, EXCH_LIMIT_GTC, "1", "-5", false, MKT_PS_BOTH, "a"), "price"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = bybit_order_json(&bad[i].r, b, sizeof b, err, sizeof err);
        if (rc != -EINVAL) fail_msg("bad[%zu]: got %d", i, rc);
        if (!strstr(err, bad[i].why)) fail_msg("bad[%zu]: \"%s\" lacks \"%s\"", i, err, bad[i].why);
        assert_string_equal(b, "");
    }
    assert_int_equal(bybit_order_json(NULL, b, sizeof b, err, sizeof err), -EINVAL);
    r = order("BTCUSDT", MKT_BUY, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH, "a");
    assert_int_equal(bybit_order_json(&r, b, 20, err, sizeof err), -ENOSPC);
}

static void test_batch_json(void **state) {
    (void)state;
    char b[BYBIT_BODY_MAX], err[160];
    struct exch_order_req v[BYBIT_BATCH_MAX + 1];
    char ids[BYBIT_BATCH_MAX + 1][8];
    for (int i = 0; i <= BYBIT_BATCH_MAX; i++) {
        snprintf(ids[i], sizeof ids[i], "id%d", i);
        v[i] = order("BTCUSDT", MKT_BUY, EXCH_MARKET, "0.01", NULL, false, MKT_PS_BOTH, ids[i]);
    }
    v[1] = order("ETHUSDT", MKT_SELL, EXCH_LIMIT_IOC, "1", "3000", true, MKT_PS_BOTH, "id1");
    int n = bybit_batch_json(v, 2, b, sizeof b, err, sizeof err);
    assert_string_equal(b, "{\"category\":\"linear\",\"request\":["
                           "{\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\","
                           "\"qty\":\"0.01\",\"positionIdx\":0,\"orderLinkId\":\"id0\",\"reduceOnly\":false},"
                           "{\"symbol\":\"ETHUSDT\",\"side\":\"Sell\",\"orderType\":\"Limit\","
                           "\"qty\":\"1\",\"price\":\"3000\",\"timeInForce\":\"IOC\",\"positionIdx\":0,"
                           "\"orderLinkId\":\"id1\",\"reduceOnly\":true}]}");
    assert_int_equal(n, (int)strlen(b));
    assert_true(bybit_batch_json(v, BYBIT_BATCH_MAX, b, sizeof b, err, sizeof err) > 0);
    assert_int_equal(bybit_batch_json(v, BYBIT_BATCH_MAX + 1, b, sizeof b, err, sizeof err), -EINVAL);
    assert_int_equal(bybit_batch_json(v, 0, b, sizeof b, err, sizeof err), -EINVAL);
    /* one bad order names its index */
    v[3].qty = D("0");
    assert_int_equal(bybit_batch_json(v, 5, b, sizeof b, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "batch[3]: qty"));
    v[3].qty = D("1");
    /* the same orderLinkId twice would make the second a 110072 */
    v[4].client_id = "id2";
    assert_int_equal(bybit_batch_json(v, 5, b, sizeof b, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "batch[4]: orderLinkId: same as batch[2]"));
}

static void test_small_builders(void **state) {
    (void)state;
    char b[BYBIT_QS_MAX];
    { int n_ = bybit_cancel_json("BTCUSDT", "ct-1", b, sizeof b); assert_int_equal(n_, (int)strlen(b)); }
    assert_string_equal(b, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"orderLinkId\":\"ct-1\"}");
    assert_int_equal(bybit_cancel_json("BTCUSDT", "ct 1", b, sizeof b), -EINVAL);
    assert_int_equal(bybit_cancel_json("BTC&USDT", "ct1", b, sizeof b), -EINVAL);

    { int n_ = bybit_query_params("BTCUSDT", "ct-1", b, sizeof b); assert_int_equal(n_, (int)strlen(b)); }
    assert_string_equal(b, "category=linear&symbol=BTCUSDT&orderLinkId=ct-1");
    assert_int_equal(bybit_query_params("BTCUSDT", "ct&x=1", b, sizeof b), -EINVAL);

    { int n_ = bybit_leverage_json("BTCUSDT", 6, b, sizeof b); assert_int_equal(n_, (int)strlen(b)); }
    assert_string_equal(b, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"buyLeverage\":\"6\","
                           "\"sellLeverage\":\"6\"}");
    assert_int_equal(bybit_leverage_json("BTCUSDT", 0, b, sizeof b), -EINVAL);
    assert_int_equal(bybit_leverage_json("BTCUSDT", BYBIT_LEVERAGE_MAX + 1, b, sizeof b), -EINVAL);
    assert_true(bybit_leverage_json("BTCUSDT", BYBIT_LEVERAGE_MAX, b, sizeof b) > 0);

    assert_true(bybit_executions_params(NULL, 1000, 2000, NULL, b, sizeof b) > 0);
    assert_string_equal(b, "category=linear&execType=Trade&startTime=1000&endTime=2000&limit=100");
    /* Bybit's cursors arrive percent-encoded; they are encoded again like any value */
    bybit_executions_params("BTCUSDT", 1, 2, "132766%3A2%2C132766%3A2", b, sizeof b);
    assert_string_equal(b, "category=linear&symbol=BTCUSDT&execType=Trade&startTime=1&endTime=2&"
                           "limit=100&cursor=132766%253A2%252C132766%253A2");
    assert_int_equal(bybit_executions_params(NULL, 5, 4, NULL, b, sizeof b), -EINVAL);
    assert_int_equal(bybit_executions_params(NULL, 0, BYBIT_EXEC_WINDOW_MS + 1, NULL, b, sizeof b),
                     -EINVAL);
    assert_true(bybit_executions_params(NULL, 0, BYBIT_EXEC_WINDOW_MS, NULL, b, sizeof b) > 0);

    char s[16] = "";
    int n = bybit_qs_add(s, sizeof s, 0, "a b", "&=");
    assert_string_equal(s, "a%20b=%26%3D");
    assert_int_equal(n, 12);
    assert_int_equal(bybit_qs_add(s, sizeof s, (size_t)n, "k", "v"), -ENOSPC);
    assert_string_equal(s, "a%20b=%26%3D");
}

/* ================================================================ parsing: samples */

static void test_envelope_and_acks(void **state) {
    (void)state;
    size_t len;
    char msg[64], err[160];
    int code = -1;
    char *b = sample_load("bybit_common_response_envelope.json", &len);
    assert_int_equal(bybit_parse_envelope(b, len, &code, msg, sizeof msg), 0);
    assert_int_equal(code, 0);
    assert_string_equal(msg, "OK");
    free(b);
    /* length-limited: a body cut short is not an envelope */
    assert_int_equal(bybit_parse_envelope(ERR_ENV(10006, "Too many visits!"), 30, &code, msg,
                                          sizeof msg), -EBADMSG);
    const char *e = ERR_ENV(10006, "Too many visits!");
    assert_int_equal(bybit_parse_envelope(e, strlen(e), &code, msg, sizeof msg), 0);
    assert_int_equal(code, 10006);
    assert_string_equal(msg, "Too many visits!");
    assert_int_equal(bybit_parse_envelope("{\"retCode\":\"0\"}", 15, &code, msg, sizeof msg), -EBADMSG);
    assert_int_equal(bybit_parse_envelope("[0]", 3, &code, msg, sizeof msg), -EBADMSG);
    assert_int_equal(bybit_parse_envelope("{\"retCode\":99999999999}", 23, &code, msg, sizeof msg),
                     -EBADMSG);
    assert_int_equal(bybit_parse_envelope("", 0, &code, msg, sizeof msg), -EBADMSG);
    /* control characters in retMsg never reach a log line */
    e = "{\"retCode\":10001,\"retMsg\":\"bad\\nparam\\u0007\"}";
    assert_int_equal(bybit_parse_envelope(e, strlen(e), &code, msg, sizeof msg), 0);
    assert_string_equal(msg, "bad?param?");

    struct exch_order_result o;
    b = sample_load("bybit_create_order_response.json", &len);
    assert_int_equal(bybit_parse_ack(b, len, "spot-test-postonly", &o, err, sizeof err), 0);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_NEW);
    assert_string_equal(o.order_id, "1321003749386327552");
    assert_string_equal(o.client_id, "spot-test-postonly");
    assert_dec(o.executed_qty, "0");
    assert_int_equal(bybit_parse_ack(b, len, "other", &o, err, sizeof err), -EBADMSG);
    assert_non_null(strstr(err, "orderLinkId mismatch"));
    assert_string_equal(o.order_id, "");
    free(b);
    b = sample_load("bybit_cancel_order_response.json", &len);
    assert_int_equal(bybit_parse_ack(b, len, "linear-004", &o, err, sizeof err), 0);
    assert_string_equal(o.order_id, "c6f055d9-7f21-4079-913d-e6523a9cfffa");
    free(b);
    const char *bad[] = {
        ENV("{\"orderId\":\"\",\"orderLinkId\":\"x\"}"),
        ENV("{\"orderId\":123,\"orderLinkId\":\"x\"}"),
        ENV("{\"orderLinkId\":\"x\"}"),
        ENV("{\"orderId\":\"a b\",\"orderLinkId\":\"x\"}"),
        ENV("[]"),
        ERR_ENV(110001, "Order does not exist"),
        "{\"retCode\":0,\"retMsg\":\"OK\"}",
        "{\"retCode\":0,\"retCode\":0,\"result\":{\"orderId\":\"1\",\"orderLinkId\":\"x\"}}",
        "not json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (bybit_parse_ack(bad[i], strlen(bad[i]), "x", &o, err, sizeof err) != -EBADMSG)
            fail_msg("bad ack %zu accepted", i);
}

static void test_order_list(void **state) {
    (void)state;
    size_t len;
    char err[200];
    bool found = true;
    struct exch_order_result o;
    char *b = sample_load("bybit_open_order_realtime_response.json", &len);
    assert_int_equal(bybit_parse_order_list(b, len, "test-000005", &found, &o, err, sizeof err), 0);
    assert_true(found);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_NEW);
    assert_string_equal(o.order_id, "fd4300ae-7847-404e-b947-b46980a4d140");
    assert_dec(o.executed_qty, "0");
    assert_dec(o.avg_price, "0");
    assert_int_equal(o.update_time_ms, 1684738540561LL);
    /* a list of other orders is not "not found": we cannot account for it */
    assert_int_equal(bybit_parse_order_list(b, len, "someone-else", &found, &o, err, sizeof err),
                     -EBADMSG);
    assert_false(found);
    assert_non_null(strstr(err, "none with orderLinkId someone-else"));
    free(b);

    const char *empty = ENV("{\"list\":[],\"nextPageCursor\":\"\",\"category\":\"linear\"}");
    found = true;
    assert_int_equal(bybit_parse_order_list(empty, strlen(empty), "x", &found, &o, err, sizeof err), 0);
    assert_false(found);

    const char *filled = ENV("{\"list\":[{\"orderId\":\"9\",\"orderLinkId\":\"x\",\"orderStatus\":"
                             "\"Filled\",\"cumExecQty\":\"0.500\",\"avgPrice\":\"95900.1\","
                             "\"updatedTime\":\"1746270400353\"}]}");
    assert_int_equal(bybit_parse_order_list(filled, strlen(filled), "x", &found, &o, err, sizeof err), 0);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    assert_dec(o.executed_qty, "0.5");
    assert_dec(o.avg_price, "95900.1");

    struct {
        const char *status;
        enum exch_order_status want;
    } st[] = {
        {"New", EXCH_ST_NEW}, {"PartiallyFilled", EXCH_ST_PARTIALLY_FILLED},
        {"Untriggered", EXCH_ST_NEW}, {"Triggered", EXCH_ST_NEW}, {"Filled", EXCH_ST_FILLED},
        {"Cancelled", EXCH_ST_CANCELED}, {"PartiallyFilledCanceled", EXCH_ST_CANCELED},
        {"Deactivated", EXCH_ST_CANCELED}, {"Rejected", EXCH_ST_REJECTED},
    };
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        enum exch_order_status s;
        assert_int_equal(bybit_status_parse(st[i].status, &s), 0);
        assert_int_equal(s, st[i].want);
    }
    enum exch_order_status s;
    assert_int_equal(bybit_status_parse("FILLED", &s), -EINVAL);
    assert_int_equal(bybit_status_parse(NULL, &s), -EINVAL);

    const char *bad[] = {
        ENV("{\"list\":[{\"orderId\":\"9\",\"orderLinkId\":\"x\",\"orderStatus\":\"Weird\",\"cumExecQty\":\"0\"}]}"),
        ENV("{\"list\":[{\"orderId\":\"9\",\"orderLinkId\":\"x\",\"orderStatus\":\"New\",\"cumExecQty\":\"-1\"}]}"),
        ENV("{\"list\":[{\"orderId\":\"9\",\"orderLinkId\":\"x\",\"orderStatus\":\"New\",\"cumExecQty\":1.5}]}"),
        ENV("{\"list\":[{\"orderId\":\"9\",\"orderLinkId\":\"x\",\"orderStatus\":\"New\"}]}"),
        ENV("{\"list\":[{\"orderId\":\"9\",\"orderLinkId\":\"x\",\"orderStatus\":\"New\",\"cumExecQty\":\"0\",\"updatedTime\":\"12a\"}]}"),
        ENV("{\"list\":[{\"orderLinkId\":\"x\",\"orderStatus\":\"New\",\"cumExecQty\":\"0\"}]}"),
        ENV("{\"list\":[7]}"),
        ENV("{\"list\":{}}"),
        ENV("{}"),
        ERR_ENV(10002, "time window"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (bybit_parse_order_list(bad[i], strlen(bad[i]), "x", &found, &o, err, sizeof err) != -EBADMSG)
            fail_msg("bad order list %zu accepted", i);
        assert_true(err[0] != '\0');
    }
}

static void test_batch_parse(void **state) {
    (void)state;
    size_t len;
    char err[200];
    struct exch_order_result v[3];
    char *b = sample_load("bybit_batch_place_response.json", &len);
    const char *ids[] = {"spot-btc-03", "spot-atom-03"};
    assert_int_equal(bybit_parse_batch(b, len, ids, 2, v, err, sizeof err), 0);
    assert_int_equal(v[0].outcome, EXCH_OK);
    assert_int_equal(v[0].status, EXCH_ST_NEW);
    assert_string_equal(v[0].order_id, "1666800494330512128");
    assert_string_equal(v[1].order_id, "1666800494330512129");
    assert_string_equal(v[1].client_id, "spot-atom-03");
    /* our ids in the other order: both mismatch -> UNKNOWN (never OK on a guess) */
    const char *swapped[] = {"spot-atom-03", "spot-btc-03"};
    assert_int_equal(bybit_parse_batch(b, len, swapped, 2, v, err, sizeof err), 0);
    assert_int_equal(v[0].outcome, EXCH_UNKNOWN);
    assert_int_equal(v[1].outcome, EXCH_UNKNOWN);
    assert_string_equal(v[0].order_id, "");
    /* we sent three, the answer has two: the third is UNKNOWN */
    const char *three[] = {"spot-btc-03", "spot-atom-03", "third"};
    assert_int_equal(bybit_parse_batch(b, len, three, 3, v, err, sizeof err), 0);
    assert_int_equal(v[2].outcome, EXCH_UNKNOWN);
    assert_non_null(strstr(v[2].error_msg, "no code"));
    free(b);

    /* per-item failures: rejected, duplicate (exists: UNKNOWN), throttled, server error */
    const char *mixed =
        "{\"retCode\":0,\"retMsg\":\"OK\",\"result\":{\"list\":["
        "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"orderId\":\"1\",\"orderLinkId\":\"a\",\"createAt\":\"1\"},"
        "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"orderId\":\"\",\"orderLinkId\":\"b\",\"createAt\":\"\"},"
        "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"orderId\":\"\",\"orderLinkId\":\"c\",\"createAt\":\"\"},"
        "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"orderId\":\"\",\"orderLinkId\":\"d\",\"createAt\":\"\"},"
        "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"orderId\":\"\",\"orderLinkId\":\"e\",\"createAt\":\"\"}]},"
        "\"retExtInfo\":{\"list\":[{\"code\":0,\"msg\":\"OK\"},{\"code\":110094,\"msg\":\"Order notional value below the lower limit\"},"
        "{\"code\":110072,\"msg\":\"OrderLinkedID is duplicate\"},{\"code\":10006,\"msg\":\"Too many visits!\"},"
        "{\"code\":10016,\"msg\":\"Server error\"}]},\"time\":1}";
    struct exch_order_result m[5];
    const char *mids[] = {"a", "b", "c", "d", "e"};
    assert_int_equal(bybit_parse_batch(mixed, strlen(mixed), mids, 5, m, err, sizeof err), 0);
    assert_int_equal(m[0].outcome, EXCH_OK);
    assert_string_equal(m[0].order_id, "1");
    assert_int_equal(m[1].outcome, EXCH_REJECTED);
    assert_int_equal(m[1].error_code, 110094);
    assert_non_null(strstr(m[1].error_msg, "notional"));
    assert_int_equal(m[2].outcome, EXCH_UNKNOWN);
    assert_int_equal(m[2].error_code, 110072);
    assert_int_equal(m[3].outcome, EXCH_THROTTLED);
    assert_int_equal(m[4].outcome, EXCH_UNKNOWN);
    for (int i = 0; i < 5; i++) assert_string_equal(m[i].client_id, mids[i]);

    const char *bad[] = {
        ENV("{\"list\":[]}"), /* no retExtInfo.list */
        "{\"retCode\":0,\"result\":{\"list\":[]},\"retExtInfo\":{\"list\":{}}}",
        "{\"retCode\":0,\"result\":{},\"retExtInfo\":{\"list\":[]}}",
        ERR_ENV(10001, "params"),
        "]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (bybit_parse_batch(bad[i], strlen(bad[i]), mids, 1, m, err, sizeof err) != -EBADMSG)
            fail_msg("bad batch %zu accepted", i);
}

static void test_instruments(void **state) {
    (void)state;
    size_t len, n, skipped;
    char err[200], cur[BYBIT_CURSOR_MAX];
    struct mkt_instrument *v;
    char *b = sample_load("bybit_instruments_info_linear_usdt_perp.cleaned.json", &len);
    assert_int_equal(bybit_parse_instruments(b, len, &v, &n, &skipped, cur, sizeof cur, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(skipped, 0);
    assert_string_equal(cur, "");
    assert_string_equal(v[0].symbol, "BTCUSDT");
    assert_dec(v[0].step, "0.001");
    assert_dec(v[0].min_qty, "0.001");
    assert_dec(v[0].max_qty, "1190");
    assert_dec(v[0].mkt_max_qty, "500");
    assert_dec(v[0].mkt_step, "0");
    assert_dec(v[0].mkt_min_qty, "0");
    assert_dec(v[0].tick, "0.1");
    assert_dec(v[0].min_price, "0.1");
    assert_dec(v[0].max_price, "1999999.8");
    assert_dec(v[0].min_notional, "5");
    free(v);
    free(b);
    b = sample_load("bybit_instruments_info_linear_premarket.cleaned.json", &len);
    assert_int_equal(bybit_parse_instruments(b, len, &v, &n, &skipped, cur, sizeof cur, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].symbol, "BIOUSDT");
    assert_dec(v[0].step, "1");
    assert_dec(v[0].mkt_max_qty, "14000");
    assert_string_equal(cur, "first%3DBIOUSDT%26last%3DBIOUSDT");
    free(v);
    free(b);

    /* unusable entries are skipped with the first reason; good ones still arrive */
#define LOT(step) "\"lotSizeFilter\":{\"qtyStep\":" step ",\"minOrderQty\":\"0.1\",\"maxOrderQty\":\"10\"}"
#define PF "\"priceFilter\":{\"tickSize\":\"0.5\",\"minPrice\":\"0.5\",\"maxPrice\":\"1000\"}"
    const char *mixed = ENV("{\"list\":[{\"symbol\":\"AUSDT\"," LOT("\"0\"") "," PF "},"
                            "{\"symbol\":\"BUSDT\"," LOT("\"0.1\"") "," PF "},"
                            "{\"symbol\":\"C USDT\"," LOT("\"0.1\"") "," PF "},"
                            "{\"symbol\":\"DUSDT\"," LOT("\"0.1\"") "},"
                            "{\"symbol\":\"EUSDT\"," LOT("0.1") "," PF "},"
                            "7],\"nextPageCursor\":\"abc\"}");
    assert_int_equal(bybit_parse_instruments(mixed, strlen(mixed), &v, &n, &skipped, cur, sizeof cur,
                                             err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].symbol, "BUSDT");
    assert_dec(v[0].mkt_max_qty, "0"); /* absent: falls back to maxOrderQty in the engine */
    assert_dec(v[0].min_notional, "0");
    assert_int_equal(skipped, 5);
    assert_string_equal(err, "instruments: list[0].lotSizeFilter.qtyStep: must be > 0 (symbol AUSDT)");
    assert_string_equal(cur, "abc");
    free(v);

    const char *bad[] = {
        ENV("{\"list\":{}}"),
        ENV("{\"list\":[],\"nextPageCursor\":\"a b\"}"),
        ENV("{\"list\":[],\"nextPageCursor\":5}"),
        ERR_ENV(10001, "params error"),
        "{\"retCode\":0}",
        "null",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (bybit_parse_instruments(bad[i], strlen(bad[i]), &v, &n, &skipped, cur, sizeof cur, err,
                                    sizeof err) != -EBADMSG)
            fail_msg("bad instruments %zu accepted", i);
    assert_null(v);
}

static void test_positions(void **state) {
    (void)state;
    size_t len, n;
    char err[200], cur[BYBIT_CURSOR_MAX];
    struct mkt_position *v;
    char *b = sample_load("bybit_position_list_response_inverse.json", &len);
    assert_int_equal(bybit_parse_positions(b, len, &v, &n, cur, sizeof cur, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].symbol, "BTCUSD");
    assert_dec(v[0].amount, "-300"); /* side Sell */
    assert_dec(v[0].entry_price, "27464.50441675");
    assert_int_equal(v[0].pos_side, MKT_PS_BOTH);
    assert_int_equal(v[0].leverage, 10);
    assert_int_equal(v[0].update_ms, 1697673600012); /* "updatedTime", a string */
    free(v);
    free(b);

    const char *hedge = ENV("{\"list\":["
        "{\"positionIdx\":1,\"symbol\":\"ETHUSDT\",\"side\":\"Buy\",\"size\":\"0.5\",\"avgPrice\":\"3000\",\"leverage\":\"12.5\"},"
        "{\"positionIdx\":2,\"symbol\":\"ETHUSDT\",\"side\":\"\",\"size\":\"0\",\"avgPrice\":\"\",\"leverage\":\"\"},"
        "{\"positionIdx\":0,\"symbol\":\"XRPUSDT\",\"side\":\"None\",\"size\":\"0\",\"avgPrice\":\"0\",\"leverage\":\"5\"}],"
        "\"nextPageCursor\":\"next\"}");
    assert_int_equal(bybit_parse_positions(hedge, strlen(hedge), &v, &n, cur, sizeof cur, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].pos_side, MKT_PS_LONG);
    assert_dec(v[0].amount, "0.5");
    assert_int_equal(v[0].leverage, 13); /* rounded up */
    assert_int_equal(v[1].pos_side, MKT_PS_SHORT);
    assert_dec(v[1].amount, "0");
    assert_dec(v[1].entry_price, "0");
    assert_int_equal(v[1].leverage, 0);
    assert_dec(v[2].amount, "0");
    assert_string_equal(cur, "next");
    free(v);

    struct {
        const char *entry;
        const char *why;
    } bad[] = {
        {"{\"positionIdx\":3,\"symbol\":\"A\",\"side\":\"Buy\",\"size\":\"1\"}", "positionIdx"},
        {"{\"positionIdx\":\"0\",\"symbol\":\"A\",\"side\":\"Buy\",\"size\":\"1\"}", "positionIdx"},
        {"{\"positionIdx\":0,\"symbol\":\"A\",\"side\":\"\",\"size\":\"1\"}", "side"},
        {"{\"positionIdx\":0,\"symbol\":\"A\",\"side\":\"Long\",\"size\":\"1\"}", "side"},
        {"{\"positionIdx\":0,\"symbol\":\"A\",\"side\":\"Buy\",\"size\":\"-1\"}", "size"},
        {"{\"positionIdx\":0,\"symbol\":\"A\",\"side\":\"Buy\",\"size\":1e3}", "size"},
        {"{\"positionIdx\":0,\"symbol\":\"A\",\"side\":\"Buy\",\"size\":\"1\",\"avgPrice\":\"x\"}", "avgPrice"},
        {"{\"positionIdx\":0,\"symbol\":\"A\",\"side\":\"Buy\",\"size\":\"1\",\"leverage\":\"-2\"}", "leverage"},
        {"{\"positionIdx\":0,\"symbol\":\"A\",\"side\":\"Buy\",\"size\":\"1\",\"leverage\":\"5000\"}", "leverage"},
        {"{\"positionIdx\":0,\"symbol\":\"\",\"side\":\"Buy\",\"size\":\"1\"}", "symbol"},
        {"{\"positionIdx\":0,\"side\":\"Buy\",\"size\":\"1\"}", "symbol"},
        {"[]", "not an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"retCode\":0,\"result\":{\"list\":[%s]}}", bad[i].entry);
        err[0] = '\0';
        if (bybit_parse_positions(body, strlen(body), &v, &n, cur, sizeof cur, err, sizeof err) != -EBADMSG)
            fail_msg("bad position %zu accepted", i);
        if (!strstr(err, bad[i].why)) fail_msg("bad position %zu: \"%s\" lacks %s", i, err, bad[i].why);
        assert_null(v);
    }
}

static void test_time_wallet_tickers(void **state) {
    (void)state;
    size_t len, n;
    char err[200];
    int64_t ms = 0;
    char *b = sample_load("bybit_server_time_response.json", &len);
    assert_int_equal(bybit_parse_server_time(b, len, &ms, err, sizeof err), 0);
    assert_int_equal(ms, 1688639403423LL); /* from timeNano */
    free(b);
    const char *t2 = ENV("{\"timeSecond\":\"1688639403\"}");
    assert_int_equal(bybit_parse_server_time(t2, strlen(t2), &ms, err, sizeof err), 0);
    assert_int_equal(ms, 1688639403000LL);
    const char *t3 = ENV("{}"); /* the envelope's time as the last resort */
    assert_int_equal(bybit_parse_server_time(t3, strlen(t3), &ms, err, sizeof err), 0);
    assert_int_equal(ms, 1672211918471LL);
    const char *t4 = "{\"retCode\":0,\"result\":{\"timeNano\":\"x\"}}";
    assert_int_equal(bybit_parse_server_time(t4, strlen(t4), &ms, err, sizeof err), -EBADMSG);

    struct exch_balance bal;
    b = sample_load("bybit_wallet_balance_response.json", &len);
    assert_int_equal(bybit_parse_wallet(b, len, &bal, err, sizeof err), 0);
    assert_dec(bal.equity, "3.00326056");
    assert_dec(bal.wallet, "3.00326056");
    assert_dec(bal.available, "3.00326056");
    assert_dec(bal.unrealized, "0");
    free(b);
    const char *iso = ENV("{\"list\":[{\"totalMarginBalance\":\"10\",\"totalWalletBalance\":\"9\","
                          "\"totalAvailableBalance\":\"\",\"totalPerpUPL\":\"1\"}]}");
    assert_int_equal(bybit_parse_wallet(iso, strlen(iso), &bal, err, sizeof err), 0);
    assert_dec(bal.available, "0");
    const char *nowallet = ENV("{\"list\":[{\"totalMarginBalance\":\"10\",\"totalWalletBalance\":\"\","
                               "\"totalAvailableBalance\":\"1\",\"totalPerpUPL\":\"1\"}]}");
    assert_int_equal(bybit_parse_wallet(nowallet, strlen(nowallet), &bal, err, sizeof err), -EBADMSG);
    assert_string_equal(err, "wallet: result.list[0].totalWalletBalance: missing");
    const char *none = ENV("{\"list\":[]}");
    assert_int_equal(bybit_parse_wallet(none, strlen(none), &bal, err, sizeof err), -EBADMSG);
    const char *noupl = ENV("{\"list\":[{\"totalMarginBalance\":\"10\",\"totalWalletBalance\":\"9\","
                            "\"totalAvailableBalance\":\"1\"}]}");
    assert_int_equal(bybit_parse_wallet(noupl, strlen(noupl), &bal, err, sizeof err), -EBADMSG);

    struct exch_ticker *tk;
    struct exch_book_ticker *bk;
    b = sample_load("bybit_tickers_rest_inverse.json", &len);
    assert_int_equal(bybit_parse_tickers(b, len, &tk, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(tk[0].symbol, "BTCUSD");
    assert_dec(tk[0].price, "120635.5");
    assert_int_equal(tk[0].time_ms, 1760352369814LL);
    free(tk);
    assert_int_equal(bybit_parse_book_tickers(b, len, &bk, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_dec(bk[0].bid, "103401");
    assert_dec(bk[0].ask, "109152.8");
    free(bk);
    free(b);
    const char *some = ENV("{\"list\":[{\"symbol\":\"AUSDT\",\"lastPrice\":\"\",\"bid1Price\":\"1\",\"ask1Price\":\"\"},"
                           "{\"symbol\":\"BUSDT\",\"lastPrice\":\"0\",\"bid1Price\":\"1\",\"ask1Price\":\"2\"},"
                           "{\"symbol\":\"CUSDT\",\"lastPrice\":\"3\"}]}");
    assert_int_equal(bybit_parse_tickers(some, strlen(some), &tk, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(tk[0].symbol, "CUSDT");
    free(tk);
    assert_int_equal(bybit_parse_book_tickers(some, strlen(some), &bk, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(bk[0].symbol, "BUSDT");
    free(bk);
    const char *bad[] = {
        ENV("{\"list\":[{\"symbol\":\"A\",\"lastPrice\":\"-1\"}]}"),
        ENV("{\"list\":[{\"symbol\":\"A\",\"lastPrice\":\"abc\"}]}"),
        ENV("{\"list\":[{\"lastPrice\":\"1\"}]}"),
        ENV("{\"list\":[\"A\"]}"),
        ENV("{\"list\":null}"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bybit_parse_tickers(bad[i], strlen(bad[i]), &tk, &n, err, sizeof err) != -EBADMSG)
            fail_msg("bad tickers %zu accepted", i);
        assert_null(tk);
    }
}

/* The doc's GET /v5/execution/list example (docs/v5/order/execution.mdx, bybit-exchange/docs;
 * no sample file was kept for it), plus a second, older Trade and a Funding entry. */
static const char EXEC_LIST[] =
    "{\"retCode\":0,\"retMsg\":\"OK\",\"result\":{\"nextPageCursor\":\"132766%3A2%2C132766%3A2\","
    "\"category\":\"linear\",\"list\":[{\"symbol\":\"ETHPERP\",\"orderType\":\"Market\","
    "\"underlyingPrice\":\"\",\"orderLinkId\":\"\",\"side\":\"Buy\",\"indexPrice\":\"\","
    "\"orderId\":\"8c065341-7b52-4ca9-ac2c-37e31ac55c94\",\"stopOrderType\":\"UNKNOWN\","
    "\"leavesQty\":\"0\",\"execTime\":\"1672282722429\",\"feeCurrency\":\"\",\"isMaker\":false,"
    "\"execFee\":\"0.071409\",\"feeRate\":\"0.0006\",\"execId\":\"e0cbe81d-0f18-5866-9415-cf319b5dab3b\","
    "\"tradeIv\":\"\",\"blockTradeId\":\"\",\"markPrice\":\"1183.54\",\"execPrice\":\"1190.15\","
    "\"markIv\":\"\",\"orderQty\":\"0.1\",\"orderPrice\":\"1236.9\",\"execValue\":\"119.015\","
    "\"execType\":\"Trade\",\"execQty\":\"0.1\",\"closedSize\":\"\",\"extraFees\":\"\",\"seq\":4688002127},"
    "{\"symbol\":\"ETHPERP\",\"execType\":\"Funding\",\"execId\":\"f-1\",\"execTime\":\"1672282700000\"},"
    "{\"symbol\":\"ETHPERP\",\"orderType\":\"Limit\",\"orderLinkId\":\"ct-7\",\"side\":\"Sell\","
    "\"orderId\":\"o-2\",\"leavesQty\":\"0.3\",\"execTime\":\"1672282600000\",\"execId\":\"e-2\","
    "\"execPrice\":\"1200\",\"orderQty\":\"0.5\",\"execType\":\"Trade\",\"execQty\":\"0.2\","
    "\"closedSize\":\"0.2\"}]},\"retExtInfo\":{},\"time\":1672283754510}";

static void test_executions(void **state) {
    (void)state;
    size_t n;
    char err[200], cur[BYBIT_CURSOR_MAX];
    struct bybit_exec *x;
    assert_int_equal(bybit_parse_executions(EXEC_LIST, strlen(EXEC_LIST), &x, &n, cur, sizeof cur,
                                            err, sizeof err), 0);
    assert_int_equal(n, 2); /* Funding left out */
    assert_string_equal(cur, "132766%3A2%2C132766%3A2");
    struct mkt_fill *f = &x[0].fill;
    assert_string_equal(f->symbol, "ETHPERP");
    assert_string_equal(f->trade_id, "e0cbe81d-0f18-5866-9415-cf319b5dab3b");
    assert_string_equal(f->order_id, "8c065341-7b52-4ca9-ac2c-37e31ac55c94");
    assert_int_equal(f->trade_seq, 0);
    assert_string_equal(f->order_client_id, "");
    assert_int_equal(f->side, MKT_BUY);
    assert_dec(f->qty, "0.1");
    assert_dec(f->price, "1190.15");
    assert_dec(f->orig_qty, "0.1");
    assert_dec(f->cum_qty, "0.1");
    assert_true(f->order_done);
    assert_false(f->reduce_only); /* closedSize "": opened */
    assert_int_equal(f->pos_side, MKT_PS_BOTH);
    assert_int_equal(f->trade_time_ms, 1672282722429LL);
    assert_int_equal(f->event_time_ms, 1672282722429LL);
    assert_false(x[0].has_pos_idx);
    f = &x[1].fill;
    assert_string_equal(f->order_client_id, "ct-7");
    assert_int_equal(f->side, MKT_SELL);
    assert_dec(f->cum_qty, "0.2"); /* 0.5 - 0.3 */
    assert_false(f->order_done);
    assert_true(f->reduce_only); /* closedSize == execQty: opened nothing */
    assert_dec(x[1].closed_size, "0.2");

    /* hedge mode: a closing Sell belongs to the LONG leg, an opening Buy to LONG as well */
    bybit_exec_apply_mode(&x[1], MKT_PM_HEDGE);
    assert_int_equal(x[1].fill.pos_side, MKT_PS_LONG);
    bybit_exec_apply_mode(&x[0], MKT_PM_HEDGE);
    assert_int_equal(x[0].fill.pos_side, MKT_PS_LONG);
    x[0].fill.side = MKT_SELL;
    bybit_exec_apply_mode(&x[0], MKT_PM_HEDGE);
    assert_int_equal(x[0].fill.pos_side, MKT_PS_SHORT);
    x[1].fill.side = MKT_BUY;
    bybit_exec_apply_mode(&x[1], MKT_PM_HEDGE);
    assert_int_equal(x[1].fill.pos_side, MKT_PS_SHORT);
    bybit_exec_apply_mode(&x[1], MKT_PM_ONE_WAY);
    assert_int_equal(x[1].fill.pos_side, MKT_PS_BOTH);
    free(x);

    /* a flip (closes 1, opens 1) is not reduce-only; an explicit positionIdx wins over the mode */
    const char *flip = ENV("{\"list\":[{\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderId\":\"o\","
                           "\"leavesQty\":\"0\",\"execTime\":\"5\",\"execId\":\"e\",\"execPrice\":\"10\","
                           "\"orderQty\":\"2\",\"execType\":\"Trade\",\"execQty\":\"2\",\"closedSize\":\"1\","
                           "\"positionIdx\":2}]}");
    assert_int_equal(bybit_parse_executions(flip, strlen(flip), &x, &n, cur, sizeof cur, err, sizeof err), 0);
    assert_false(x[0].fill.reduce_only);
    assert_true(x[0].has_pos_idx);
    assert_int_equal(x[0].fill.pos_side, MKT_PS_SHORT);
    bybit_exec_apply_mode(&x[0], MKT_PM_ONE_WAY);
    assert_int_equal(x[0].fill.pos_side, MKT_PS_SHORT);
    assert_string_equal(cur, "");
    free(x);

#define EX(over) "{\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderId\":\"o\",\"leavesQty\":\"0\"," \
                 "\"execTime\":\"5\",\"execId\":\"e\",\"execPrice\":\"10\",\"orderQty\":\"2\"," \
                 "\"execType\":\"Trade\",\"execQty\":\"2\"" over "}"
    struct {
        const char *entry;
        const char *why;
    } bad[] = {
        {EX(",\"execQty\":\"0\""), "execQty"},
        {EX(",\"execPrice\":\"-1\""), "execPrice"},
        {EX(",\"side\":\"BUY\""), "side"},
        {EX(",\"leavesQty\":\"3\""), "leavesQty"},
        {EX(",\"execTime\":\"-5\""), "execTime"},
        {EX(",\"execTime\":1.5"), "execTime"},
        {EX(",\"execId\":\"\""), "execId"},
        {EX(",\"orderId\":\"a\\u0000b\""), "orderId"},
        {EX(",\"closedSize\":\"-1\""), "closedSize"},
        {EX(",\"positionIdx\":5"), "positionIdx"},
        {EX(",\"orderLinkId\":7"), "orderLinkId"},
        {EX(",\"symbol\":\"BTC/USDT\""), "symbol"},
        {"{\"symbol\":\"BTCUSDT\",\"execId\":\"e\"}", "execType"},
        {"5", "not an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body, "{\"retCode\":0,\"result\":{\"list\":[%s]}}", bad[i].entry);
        err[0] = '\0';
        if (bybit_parse_executions(body, strlen(body), &x, &n, cur, sizeof cur, err, sizeof err) != -EBADMSG)
            fail_msg("bad execution %zu accepted", i);
        if (!strstr(err, bad[i].why)) fail_msg("bad execution %zu: \"%s\" lacks %s", i, err, bad[i].why);
        assert_null(x);
    }
    /* a duplicated key is refused (JSON_REJECT_DUPLICATES), not silently resolved */
    const char *dup = "{\"retCode\":0,\"result\":{\"list\":[" EX(",\"execQty\":\"1\"") "]}}";
    (void)dup; /* EX(...) overrides by duplicate key: the loader must refuse it */
    char body[1024];
    snprintf(body, sizeof body, "{\"retCode\":0,\"result\":{\"list\":[%s]}}", EX(",\"execQty\":\"1\""));
    assert_int_equal(bybit_parse_executions(body, strlen(body), &x, &n, cur, sizeof cur, err, sizeof err),
                     -EBADMSG);
    assert_non_null(strstr(err, "invalid JSON"));
}

static void test_modebook(void **state) {
    (void)state;
    struct bybit_modebook *mb = bybit_modebook_new();
    int old = -1;
    assert_int_equal(bybit_modebook_mode(mb, "BTCUSDT"), MKT_PM_ONE_WAY);
    bybit_modebook_set_default(mb, MKT_PM_HEDGE);
    assert_int_equal(bybit_modebook_mode(mb, "BTCUSDT"), MKT_PM_HEDGE);
    assert_int_equal(bybit_modebook_note(mb, "ETHUSDT", 0, 10, &old), 0);
    assert_int_equal(old, 0);
    assert_int_equal(bybit_modebook_mode(mb, "ETHUSDT"), MKT_PM_ONE_WAY);
    /* unseen symbols follow the last one seen */
    assert_int_equal(bybit_modebook_mode(mb, "BTCUSDT"), MKT_PM_ONE_WAY);
    bybit_modebook_set_default(mb, MKT_PM_HEDGE); /* too late: something was seen */
    assert_int_equal(bybit_modebook_mode(mb, "BTCUSDT"), MKT_PM_ONE_WAY);
    assert_int_equal(bybit_modebook_note(mb, "XRPUSDT", 2, 0, &old), 0);
    assert_int_equal(bybit_modebook_mode(mb, "XRPUSDT"), MKT_PM_HEDGE);
    assert_int_equal(bybit_modebook_mode(mb, "ETHUSDT"), MKT_PM_ONE_WAY);
    assert_int_equal(bybit_modebook_mode(mb, "SOLUSDT"), MKT_PM_HEDGE);
    assert_int_equal(bybit_modebook_note(mb, "ETHUSDT", -1, 20, &old), 0);
    assert_int_equal(old, 10);
    assert_int_equal(bybit_modebook_mode(mb, "ETHUSDT"), MKT_PM_ONE_WAY); /* idx -1: unchanged */
    for (int i = 0; i < 100; i++) {
        char s[16];
        snprintf(s, sizeof s, "S%dUSDT", i);
        assert_int_equal(bybit_modebook_note(mb, s, 1, 0, NULL), 0);
    }
    assert_int_equal(bybit_modebook_mode(mb, "S42USDT"), MKT_PM_HEDGE);
    assert_int_equal(bybit_modebook_note(mb, "0123456789012345678901234567890123", 0, 0, NULL), -EINVAL);
    assert_null(bybit_modebook_free(mb));
    assert_null(bybit_modebook_free(NULL));
    assert_int_equal(bybit_modebook_mode(NULL, "X"), MKT_PM_ONE_WAY);
}

/* ================================================================ classification */

#define ACK ENV("{\"orderId\":\"1321003749386327552\",\"orderLinkId\":\"ct1\"}")
#define ACK_OTHER ENV("{\"orderId\":\"13\",\"orderLinkId\":\"zz\"}")
#define LIST_ONE ENV("{\"list\":[{\"orderId\":\"9\",\"orderLinkId\":\"ct1\",\"orderStatus\":\"PartiallyFilled\",\"cumExecQty\":\"0.3\",\"avgPrice\":\"100\"}]}")
#define LIST_EMPTY ENV("{\"list\":[]}")

static void test_classification_table(void **state) {
    (void)state;
    enum { P = BYBIT_OP_PLACE, Q = BYBIT_OP_QUERY, C = BYBIT_OP_CANCEL };
    struct row {
        struct rest_resp r;
        int op;
        enum exch_outcome want;
        int code;
    } rows[] = {
        /* retCode 0 */
        {resp(200, ACK), P, EXCH_OK, 0},
        {resp(200, ACK), C, EXCH_OK, 0},
        {resp(200, LIST_ONE), Q, EXCH_OK, 0},
        {resp(200, LIST_EMPTY), Q, EXCH_NOT_FOUND, 0},
        {resp(200, ACK_OTHER), P, EXCH_UNKNOWN, 0},          /* not our order */
        {resp(200, ENV("{}")), P, EXCH_UNKNOWN, 0},          /* unreadable ack */
        {resp(200, "<html>"), P, EXCH_UNKNOWN, 0},           /* not an envelope */
        {resp(200, ""), Q, EXCH_UNKNOWN, 0},
        {resp(200, ENV("{\"list\":[{\"orderLinkId\":\"x\"}]}")), Q, EXCH_UNKNOWN, 0},
        /* throttling */
        {resp(200, ERR_ENV(10006, "Too many visits!")), P, EXCH_THROTTLED, 10006},
        {resp(200, ERR_ENV(10006, "Too many visits!")), Q, EXCH_THROTTLED, 10006},
        {resp(429, ""), P, EXCH_THROTTLED, 0},
        {resp(403, "access too frequent"), C, EXCH_THROTTLED, 0},
        /* unknown outcome */
        {resp(200, ERR_ENV(10016, "Server error")), P, EXCH_UNKNOWN, 10016},
        {resp(200, ERR_ENV(10000, "Server Timeout")), P, EXCH_UNKNOWN, 10000},
        {resp(200, ERR_ENV(110079, "processing")), C, EXCH_UNKNOWN, 110079},
        {resp(502, "Bad Gateway"), P, EXCH_UNKNOWN, 0},
        {resp(503, ERR_ENV(10016, "x")), C, EXCH_UNKNOWN, 10016},
        {resp(408, ""), P, EXCH_UNKNOWN, 0},
        {resp(302, ""), P, EXCH_UNKNOWN, 0},
        {transport(-ETIMEDOUT, true, "Operation timed out"), P, EXCH_UNKNOWN, 0},
        {transport(-EPIPE, true, "reset"), C, EXCH_UNKNOWN, 0},
        {transport(-ECONNREFUSED, false, "refused"), Q, EXCH_UNKNOWN, 0},
        {transport(-ECONNREFUSED, false, "refused"), C, EXCH_UNKNOWN, 0},
        /* not sent at all: a place is safe to repeat */
        {transport(-ECONNREFUSED, false, "refused"), P, EXCH_REJECTED, 0},
        {transport(-EHOSTDOWN, false, "circuit open"), P, EXCH_REJECTED, 0},
        /* duplicate orderLinkId: the order exists */
        {resp(200, ERR_ENV(110072, "OrderLinkedID is duplicate")), P, EXCH_UNKNOWN, 110072},
        {resp(200, ERR_ENV(110072, "OrderLinkedID is duplicate")), C, EXCH_REJECTED, 110072},
        /* order does not exist */
        {resp(200, ERR_ENV(110001, "Order does not exist")), Q, EXCH_NOT_FOUND, 110001},
        {resp(200, ERR_ENV(110001, "Order does not exist")), C, EXCH_NOT_FOUND, 110001},
        {resp(200, ERR_ENV(110001, "Order does not exist")), P, EXCH_REJECTED, 110001},
        /* other codes: place/cancel REJECTED, query UNKNOWN */
        {resp(200, ERR_ENV(110094, "Order notional value below the lower limit")), P, EXCH_REJECTED, 110094},
        {resp(200, ERR_ENV(110007, "insufficient")), P, EXCH_REJECTED, 110007},
        {resp(200, ERR_ENV(10002, "time window")), P, EXCH_REJECTED, 10002},
        {resp(200, ERR_ENV(10004, "Error sign")), Q, EXCH_UNKNOWN, 10004},
        {resp(200, ERR_ENV(110008, "completed or cancelled")), C, EXCH_REJECTED, 110008},
        {resp(401, ERR_ENV(10003, "API key is invalid")), P, EXCH_REJECTED, 10003},
        {resp(401, "Unauthorized"), P, EXCH_REJECTED, 0},
        {resp(404, "Not Found"), Q, EXCH_UNKNOWN, 0},
        {resp(404, "Not Found"), C, EXCH_REJECTED, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct exch_order_result o;
        memset(&o, 0x5a, sizeof o);
        bybit_classify_order(&rows[i].r, (enum bybit_op)rows[i].op, "ct1", 1000, &o);
        if (o.outcome != rows[i].want)
            fail_msg("row %zu: outcome %d, want %d (%s)", i, o.outcome, rows[i].want, o.error_msg);
        if (o.error_code != rows[i].code)
            fail_msg("row %zu: code %d, want %d", i, o.error_code, rows[i].code);
        assert_string_equal(o.client_id, "ct1");
        if (o.outcome != EXCH_OK) assert_true(o.error_msg[0] != '\0');
        assert_non_null(memchr(o.error_msg, '\0', sizeof o.error_msg));
    }

    struct exch_order_result o;
    struct rest_resp r = resp(200, ACK);
    bybit_classify_order(&r, BYBIT_OP_PLACE, "ct1", 0, &o);
    assert_int_equal(o.status, EXCH_ST_NEW);
    assert_string_equal(o.order_id, "1321003749386327552");
    assert_int_equal(o.http_status, 200);
    bybit_classify_order(&r, BYBIT_OP_CANCEL, "ct1", 0, &o);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    r = resp(200, LIST_ONE);
    bybit_classify_order(&r, BYBIT_OP_QUERY, "ct1", 0, &o);
    assert_int_equal(o.status, EXCH_ST_PARTIALLY_FILLED);
    assert_dec(o.executed_qty, "0.3");
    assert_string_equal(o.order_id, "9");
    r = transport(-ECONNREFUSED, false, "Connection refused");
    bybit_classify_order(&r, BYBIT_OP_PLACE, "ct1", 0, &o);
    assert_string_equal(o.error_msg, "not sent: Connection refused");
    assert_int_equal(o.http_status, 0);
    r = resp(200, ERR_ENV(110094, "Order notional value below the lower limit"));
    bybit_classify_order(&r, BYBIT_OP_PLACE, "ct1", 0, &o);
    assert_string_equal(o.error_msg, "HTTP 200: 110094 Order notional value below the lower limit");
}

static void test_throttle_wait(void **state) {
    (void)state;
    struct exch_order_result o;
    struct exch_status st;
    /* Retry-After first */
    struct rest_resp r = resp(429, "");
    r.retry_after_ms = 3000;
    bybit_classify_order(&r, BYBIT_OP_PLACE, "ct1", 1000, &o);
    assert_int_equal(o.outcome, EXCH_THROTTLED);
    assert_int_equal(o.retry_after_ms, 3000);
    /* else the reset timestamp, relative to now */
    r = resp(200, ERR_ENV(10006, "Too many visits!"));
    r.raw_headers = "X-Bapi-Limit: 10\r\nX-Bapi-Limit-Status: 0\r\nX-Bapi-Limit-Reset-Timestamp: 1672738134824\r\n";
    r.raw_headers_len = strlen(r.raw_headers);
    bybit_classify_order(&r, BYBIT_OP_PLACE, "ct1", 1672738134000LL, &o);
    assert_int_equal(o.retry_after_ms, 824);
    /* a reset in the past says nothing; far in the future is capped */
    bybit_classify_order(&r, BYBIT_OP_PLACE, "ct1", 1672738135000LL, &o);
    assert_int_equal(o.retry_after_ms, 0);
    bybit_classify_order(&r, BYBIT_OP_PLACE, "ct1", 1672738134824LL - 3600000, &o);
    assert_int_equal(o.retry_after_ms, 60000);
    /* the IP limit: Bybit says wait 10 minutes */
    r = resp(403, "");
    bybit_classify_order(&r, BYBIT_OP_QUERY, "ct1", 0, &o);
    assert_int_equal(o.retry_after_ms, 600000);

    struct exch_bybit_usage u;
    r = resp(200, ACK);
    r.raw_headers = "Content-Type: application/json\r\nx-bapi-limit: 10\r\nX-Bapi-Limit-Status:  9 \r\nX-Bapi-Limit-Reset-Timestamp: 1672738134824\r\n";
    r.raw_headers_len = strlen(r.raw_headers);
    bybit_usage_from_resp(&r, 77, &u);
    assert_int_equal(u.limit, 10);
    assert_int_equal(u.remaining, 9);
    assert_int_equal(u.reset_ms, 1672738134824LL);
    assert_int_equal(u.updated_ms, 77);
    r.raw_headers = "X-Bapi-Limit: ten\r\n";
    r.raw_headers_len = strlen(r.raw_headers);
    bybit_usage_from_resp(&r, 77, &u);
    assert_int_equal(u.limit, -1);
    assert_int_equal(u.remaining, -1);

    /* non-order calls */
    r = resp(200, ENV("{}"));
    assert_true(bybit_status_from_resp(&r, &st));
    assert_int_equal(st.err, 0);
    r = resp(200, ERR_ENV(10006, "Too many visits!"));
    assert_false(bybit_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EAGAIN);
    r = resp(200, ERR_ENV(110043, "Set leverage has not been modified."));
    assert_false(bybit_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EREMOTEIO);
    assert_int_equal(st.error_code, 110043);
    r = resp(200, "oops");
    assert_false(bybit_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EBADMSG);
    r = resp(500, "");
    assert_false(bybit_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EREMOTEIO);
    assert_string_equal(st.error_msg, "HTTP 500: (empty body)");
    r = resp(403, "");
    assert_false(bybit_status_from_resp(&r, &st));
    assert_int_equal(st.err, -EAGAIN);
    r = transport(-ETIMEDOUT, true, "timeout");
    assert_false(bybit_status_from_resp(&r, &st));
    assert_int_equal(st.err, -ETIMEDOUT);
    assert_string_equal(st.error_msg, "timeout");
}

/* Without a pool nothing is sent and the callback never runs; bad arguments are refused first. */
static void never(void *ud, const struct exch_order_result *r) {
    (void)ud;
    (void)r;
    fail_msg("callback ran");
}

static void never_batch(void *ud, const struct exch_order_result *v, size_t n) {
    (void)ud;
    (void)v;
    (void)n;
    fail_msg("callback ran");
}

static void never_lev(void *ud, const struct exch_status *st, const char *s, int l) {
    (void)ud;
    (void)st;
    (void)s;
    (void)l;
    fail_msg("callback ran");
}

static void never_fills(void *ud, const struct exch_status *st, const struct mkt_fill *v, size_t n) {
    (void)ud;
    (void)st;
    (void)v;
    (void)n;
    fail_msg("callback ran");
}

static void test_entry_points_refuse(void **state) {
    (void)state;
    struct exch_account_cfg cfg = {.name = "by", .kind = EXCH_BYBIT_LINEAR,
                                   .rest_url = "http://127.0.0.1:1", .api_key = "k", .api_secret = "s"};
    struct exch_account *a = exch_account_new(&cfg, NULL);
    assert_non_null(a);
    struct exch_order_req r = order("BTCUSDT", MKT_BUY, EXCH_MARKET, "1", NULL, false, MKT_PS_BOTH, "ct1");
    assert_int_equal(bybit_place_order(a, &r, never, NULL), -EINVAL); /* no pool */
    assert_int_equal(exch_place_order(a, &r, never, NULL), -EINVAL);
    assert_int_equal(bybit_query_order(a, "BTC USDT", "ct1", never, NULL), -EINVAL);
    assert_int_equal(bybit_cancel_order(a, "BTCUSDT", "", never, NULL), -EINVAL);
    assert_int_equal(bybit_place_batch(a, &r, 0, NULL, NULL), -EINVAL);
    assert_int_equal(bybit_place_batch(a, &r, BYBIT_BATCH_MAX + 1, never_batch, NULL), -EINVAL);
    assert_int_equal(exch_batch_max(a), BYBIT_BATCH_MAX);
    assert_int_equal(bybit_set_leverage(a, "BTCUSDT", 0, never_lev, NULL), -EINVAL);
    assert_int_equal(bybit_fetch_fills(a, "BTC USDT", 0, never_fills, NULL), -EINVAL);
    assert_int_equal(bybit_fetch_fills(a, NULL, -1, never_fills, NULL), -EINVAL);
    struct exch_bybit_usage u;
    exch_account_bybit_usage(a, &u);
    assert_int_equal(u.limit, -1);
    assert_int_equal(u.updated_ms, 0);
    exch_account_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_json),
        cmocka_unit_test(test_batch_json),
        cmocka_unit_test(test_small_builders),
        cmocka_unit_test(test_envelope_and_acks),
        cmocka_unit_test(test_order_list),
        cmocka_unit_test(test_batch_parse),
        cmocka_unit_test(test_instruments),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_time_wallet_tickers),
        cmocka_unit_test(test_executions),
        cmocka_unit_test(test_modebook),
        cmocka_unit_test(test_classification_table),
        cmocka_unit_test(test_throttle_wait),
        cmocka_unit_test(test_entry_points_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
