/* sim_by_req, sim_by_fmt: Bybit v5 request checks (signing vectors of signing_vectors.txt §7-9,
 * order objects) and payload shapes checked against the doc samples (every sample key present). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "sim_book.h"
#include "sim_buf.h"
#include "sim_by_fmt.h"
#include "sim_by_req.h"

#define SECRET "TESTSECRETbybit0000000000000000000000"

static dec_t D(const char *s)
{
    dec_t d;
    assert_int_equal(dec_parse_cstr(s, &d), 0);
    return d;
}

static json_t *load_sample(const char *name)
{
    char path[512];
    json_error_t e;
    snprintf(path, sizeof(path), "%s/%s", CT_SAMPLES, name);
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fail_msg("%s: %s", path, e.text);
    return j;
}

/* Every key of want is in got (drop: keys of the sample we leave out on purpose). */
static void assert_has_keys(json_t *got, json_t *want, const char *const *drop, const char *what)
{
    const char *k;
    json_t *v;
    assert_true(json_is_object(got));
    assert_true(json_is_object(want));
    json_object_foreach(want, k, v) {
        bool dropped = false;
        for (size_t i = 0; drop && drop[i]; i++)
            dropped |= strcmp(drop[i], k) == 0;
        if (!dropped && !json_object_get(got, k))
            fail_msg("%s: missing key '%s'", what, k);
    }
}

static json_t *parse_buf(struct sbuf *b)
{
    json_error_t e;
    assert_false(sbuf_failed(b));
    json_t *j = json_loadb(b->p, b->len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("not JSON (%s): %.*s", e.text, (int)b->len, b->p);
    return j;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        fail_msg("key '%s' is not a string", k);
    return json_string_value(v);
}

/* ---- signing ---- */

static struct sbyr_auth auth_of(const char *key, const char *ts, const char *rw, const char *sign)
{
    struct sbyr_auth h = {key, ts, sign, rw, strlen(key), strlen(ts), strlen(sign), rw ? strlen(rw) : 0};
    return h;
}

static void test_verify_vectors(void **state)
{
    (void)state;
    char msg[256];
    const char *q = "category=linear&symbol=BTCUSDT";
    struct sbyr_auth h = auth_of("XXXXXXXXXX", "1658384314791", "5000",
                                 "096acc1005b1ff90949cddcbb801b092aa2c3f52db05c5ee073e602fdeb38482");
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &h, q, strlen(q), 1658384314791, msg, sizeof(msg)), 0);
    /* The clock rule: now - recvWindow <= ts < now + 1000. */
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &h, q, strlen(q), 1658384314791 + 5000, msg, sizeof(msg)), 0);
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &h, q, strlen(q), 1658384314791 + 5001, msg, sizeof(msg)),
                     10002);
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &h, q, strlen(q), 1658384314791 - 999, msg, sizeof(msg)), 0);
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &h, q, strlen(q), 1658384314791 - 1000, msg, sizeof(msg)),
                     10002);
    /* One byte of the payload changed: 10004. */
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &h, "category=linear&symbol=ETHUSDT", strlen(q),
                                 1658384314791, msg, sizeof(msg)),
                     10004);
    assert_non_null(strstr(msg, "Error sign"));
    /* The recv window is part of the signed string: without the header the same sign fails. */
    struct sbyr_auth h2 = auth_of("XXXXXXXXXX", "1658384314791", NULL,
                                  "096acc1005b1ff90949cddcbb801b092aa2c3f52db05c5ee073e602fdeb38482");
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &h2, q, strlen(q), 1658384314791, msg, sizeof(msg)), 10004);
    struct sbyr_auth h3 = auth_of("XXXXXXXXXX", "16583843x4791", "5000", "00");
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &h3, q, strlen(q), 1658384314791, msg, sizeof(msg)), 10001);

    const char *body = "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Limit\","
                       "\"qty\":\"0.001\",\"price\":\"25000\",\"timeInForce\":\"GTC\",\"orderLinkId\":\"copy-0001\"}";
    struct sbyr_auth hp = auth_of("XXXXXXXXXX", "1658385579423", "5000",
                                  "d5c258549bf239d2aa4de8c8cd4b9450e81f8e1018adfed4c4b27d6ea7aaf15b");
    assert_int_equal(sbyr_verify(SECRET, strlen(SECRET), &hp, body, strlen(body), 1658385579423, msg, sizeof(msg)), 0);

    const char *ws = "58b7cd19de0b977f0b04ce01ec8c70f55822b4f4fccc0a15a7cc713ae631d033";
    assert_int_equal(sbyr_verify_ws(SECRET, strlen(SECRET), 1662350400000, ws, strlen(ws), 1662350399000), 0);
    assert_int_equal(sbyr_verify_ws(SECRET, strlen(SECRET), 1662350400000, ws, strlen(ws), 1662350400000),
                     -ETIMEDOUT);
    assert_int_equal(sbyr_verify_ws(SECRET, strlen(SECRET), 1662350400001, ws, strlen(ws), 1662350399000), -EACCES);
}

/* ---- ids ---- */

static void test_ids(void **state)
{
    (void)state;
    char id[SBYF_UUID_LEN + 1];
    size_t idx;
    int64_t v;
    sbyf_exec_id(id, 3, 20000042);
    assert_string_equal(id, "00000003-0000-4000-a000-000020000042");
    assert_int_equal(sbyf_parse_id(id, true, &idx, &v), 0);
    assert_int_equal(idx, 3);
    assert_int_equal(v, 20000042);
    assert_int_equal(sbyf_parse_id(id, false, &idx, &v), -EINVAL); /* an execId is not an orderId */
    assert_int_equal(sbyf_parse_id("00000000-0000-4000-8000-00000100000x", false, &idx, &v), -EINVAL);
    assert_int_equal(sbyf_parse_id("00000000-0000-4000-8000-0000010000011", false, &idx, &v), -EINVAL);
    assert_int_equal(sbyf_parse_id("0000000g-0000-4000-8000-000001000001", false, &idx, &v), -EINVAL);
    assert_int_equal(sbyf_parse_id(NULL, false, &idx, &v), -EINVAL);
    assert_true(sbyr_link_id_valid("copy_0001-A"));
    assert_false(sbyr_link_id_valid("a.b"));  /* '.' is Binance-only */
    assert_false(sbyr_link_id_valid(""));
    assert_false(sbyr_link_id_valid("0123456789012345678901234567890123456"));
}

/* ---- a book to parse against and format from ---- */

struct fx {
    struct sbook *book;
    struct sbook_account *oneway, *hedge;
    struct sbook_event last_trade;
    const struct sbook_order *trade_order;
    int ntrades;
};

static int64_t clock_fn(void *ud)
{
    (void)ud;
    return 1700000000000;
}

static void emit_fn(void *ud, struct sbook_account *a, const struct sbook_event *ev)
{
    struct fx *f = ud;
    (void)a;
    if (ev->kind == SBOOK_EV_ORDER && ev->exec == SBOOK_X_TRADE) {
        f->last_trade = *ev;
        f->ntrades++;
    }
}

static int setup(void **state)
{
    static struct fx f;
    struct mkt_instrument in = {0};
    memset(&f, 0, sizeof(f));
    snprintf(in.symbol, sizeof(in.symbol), "BTCUSDT");
    in.step = in.min_qty = D("0.001");
    in.max_qty = D("1000");
    in.tick = D("0.10");
    in.min_price = D("0.10");
    in.min_notional = D("5");
    f.book = sbook_new(emit_fn, clock_fn, &f);
    assert_int_equal(sbook_add_symbol(f.book, &in, D("50000")), 0);
    assert_int_equal(sbook_add_account(f.book, "a", "KEYA", "secreta", D("1000")), 0);
    assert_int_equal(sbook_add_account(f.book, "h", "KEYH", "secreth", D("1000")), 0);
    f.oneway = sbook_account(f.book, "a");
    f.hedge = sbook_account(f.book, "h");
    assert_int_equal(sbook_set_position_mode(f.book, f.hedge, MKT_PM_HEDGE), SBOOK_OK);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sbook_free(f->book);
    return 0;
}

/* po's strings point into the JSON: it stays alive until the next call (or keep_free). */
static json_t *keep;

static int parse(struct fx *f, enum mkt_pos_mode mode, const char *json, struct sbyr_order *po, char *msg)
{
    json_error_t e;
    json_decref(keep);
    keep = json_loads(json, 0, &e);
    assert_non_null(keep);
    return sbyr_parse_order(keep, NULL, f->book, mode, po, msg, 256);
}

static void test_parse_order(void **state)
{
    struct fx *f = *state;
    struct sbyr_order po;
    char msg[256];

    assert_int_equal(parse(f, MKT_PM_ONE_WAY,
                           "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Sell\",\"orderType\":\"Limit\","
                           "\"qty\":\"0.002\",\"price\":\"51000\",\"timeInForce\":\"PostOnly\",\"positionIdx\":0,"
                           "\"reduceOnly\":true}",
                           &po, msg),
                     0);
    assert_int_equal(po.rq.side, SBOOK_SELL);
    assert_int_equal(po.rq.type, SBOOK_LIMIT);
    assert_int_equal(po.rq.tif, SBOOK_GTX);
    assert_true(po.rq.reduce_only);
    assert_int_equal(po.rq.pos_side, MKT_PS_BOTH);
    assert_int_equal(dec_cmp(po.rq.qty, D("0.002")), 0);
    assert_null(po.rq.client_id);
    assert_string_equal(po.reduce_only, "true");

    static const struct {
        enum mkt_pos_mode mode;
        const char *json;
        int code;
    } bad[] = {
        {MKT_PM_ONE_WAY, "{\"category\":\"spot\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\"}", 10001},
        {MKT_PM_ONE_WAY, "{\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\"}", 10001},
        {MKT_PM_ONE_WAY, "{\"category\":\"linear\",\"symbol\":\"XUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\"}", 10001},
        {MKT_PM_ONE_WAY, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"BUY\",\"orderType\":\"Market\",\"qty\":\"1\"}", 10001},
        {MKT_PM_ONE_WAY, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":1}", 10001},
        {MKT_PM_ONE_WAY, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Limit\",\"qty\":\"1\"}", 10001},
        {MKT_PM_ONE_WAY, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\",\"positionIdx\":1}", 10001},
        {MKT_PM_ONE_WAY, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\",\"reduceOnly\":\"true\"}", 10001},
        {MKT_PM_ONE_WAY, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\",\"orderLinkId\":\"a:b\"}", 10001},
        {MKT_PM_ONE_WAY, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\",\"stopLoss\":\"40000\"}", 10001},
        {MKT_PM_HEDGE, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\"}", 10001},
        {MKT_PM_HEDGE, "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\",\"qty\":\"1\",\"positionIdx\":1,\"reduceOnly\":true}", 110017},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int code = parse(f, bad[i].mode, bad[i].json, &po, msg);
        if (code != bad[i].code)
            fail_msg("case %zu: %d (%s), want %d", i, code, msg, bad[i].code);
    }

    /* Hedge: positionIdx 2 + Buy closes the short; reduceOnly is allowed there and handed to the
     * book as a plain close. */
    assert_int_equal(parse(f, MKT_PM_HEDGE,
                           "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Market\","
                           "\"qty\":\"0.001\",\"positionIdx\":\"2\",\"reduceOnly\":true,\"orderLinkId\":\"c-1\"}",
                           &po, msg),
                     0);
    assert_int_equal(po.rq.pos_side, MKT_PS_SHORT);
    assert_false(po.rq.reduce_only);
    assert_string_equal(po.rq.client_id, "c-1");
    assert_string_equal(po.position_side, "SHORT");
    json_decref(keep);
    keep = NULL;
}

/* ---- shapes against the doc samples ---- */

static void test_order_shapes(void **state)
{
    struct fx *f = *state;
    struct sbook_order *o;
    struct sbuf b = SBUF_INIT;
    struct sbook_order_req rq = {.sym = sbook_symbol(f->book, "BTCUSDT"), .side = SBOOK_BUY, .type = SBOOK_LIMIT,
                                 .tif = SBOOK_GTC, .qty = D("0.100"), .price = D("40000"), .client_id = "lim-1"};
    assert_int_equal(sbook_place(f->book, f->oneway, &rq, &o), SBOOK_OK);

    json_t *s = load_sample("bybit_open_order_realtime_response.json");
    sbyf_order(&b, o, false);
    json_t *got = parse_buf(&b);
    assert_has_keys(got, json_array_get(json_object_get(json_object_get(s, "result"), "list"), 0), NULL, "order REST");
    assert_string_equal(jstr(got, "orderStatus"), "New");
    assert_string_equal(jstr(got, "orderLinkId"), "lim-1");
    assert_string_equal(jstr(got, "leavesQty"), "0.1");
    assert_string_equal(jstr(got, "leavesValue"), "4000");
    assert_string_equal(jstr(got, "timeInForce"), "GTC");
    char id[SBYF_UUID_LEN + 1];
    sbyf_order_id(id, o);
    assert_string_equal(jstr(got, "orderId"), id);
    size_t idx;
    int64_t v;
    assert_int_equal(sbyf_parse_id(id, false, &idx, &v), 0);
    assert_int_equal(v, o->order_id);
    json_decref(got);
    json_decref(s);

    assert_int_equal(sbook_cancel(f->book, o), 0);
    sbuf_reset(&b);
    sbyf_order(&b, o, true);
    got = parse_buf(&b);
    s = load_sample("bybit_order.json");
    static const char *const drop_ws[] = {"rpiTakerAccess", "rpiMatchedQty", NULL};
    assert_has_keys(got, json_array_get(json_object_get(s, "data"), 0), drop_ws, "order topic");
    assert_string_equal(jstr(got, "orderStatus"), "Cancelled");
    assert_string_equal(jstr(got, "cancelType"), "CancelByUser");
    assert_string_equal(jstr(got, "leavesQty"), "0");
    assert_string_equal(jstr(got, "category"), "linear");
    json_decref(got);
    json_decref(s);

    /* A market order without a link id: Bybit shows "", and IOC. */
    struct sbook_order_req mk = {.sym = rq.sym, .side = SBOOK_SELL, .type = SBOOK_MARKET, .qty = D("0.004")};
    assert_int_equal(sbook_place(f->book, f->oneway, &mk, &o), SBOOK_OK);
    sbuf_reset(&b);
    sbyf_order(&b, o, false);
    got = parse_buf(&b);
    assert_string_equal(jstr(got, "orderLinkId"), "");
    assert_string_equal(jstr(got, "timeInForce"), "IOC");
    assert_string_equal(jstr(got, "orderStatus"), "Filled");
    assert_string_equal(jstr(got, "avgPrice"), "50000");
    json_decref(got);

    /* Its execution. */
    struct sbyf_exec x = {.order = o, .trade_id = f->last_trade.trade_id, .time_ms = 1700000000000,
                          .qty = D("0.004"), .price = D("50000"), .closed = D("0.004"), .leaves = DEC_ZERO,
                          .realized = D("1.5"), .mark = D("50000"), .seq = 7};
    sbuf_reset(&b);
    sbyf_execution(&b, &x, true);
    got = parse_buf(&b);
    s = load_sample("bybit_execution.json");
    assert_has_keys(got, json_array_get(json_object_get(s, "data"), 0), NULL, "execution topic");
    assert_string_equal(jstr(got, "execValue"), "200");
    assert_string_equal(jstr(got, "closedSize"), "0.004");
    assert_string_equal(jstr(got, "execPnl"), "1.5");
    assert_string_equal(jstr(got, "side"), "Sell");
    sbyf_exec_id(id, 0, f->last_trade.trade_id);
    assert_string_equal(jstr(got, "execId"), id);
    json_decref(got);
    json_decref(s);
    sbuf_free(&b);
}

static void test_account_shapes(void **state)
{
    struct fx *f = *state;
    struct sbuf b = SBUF_INIT;
    struct sbook_symbol *sym = sbook_symbol(f->book, "BTCUSDT");
    struct sbook_order *o;
    struct sbook_order_req rq = {.sym = sym, .side = SBOOK_SELL, .type = SBOOK_MARKET, .qty = D("0.010"),
                                 .pos_side = MKT_PS_SHORT};
    assert_int_equal(sbook_place(f->book, f->hedge, &rq, &o), SBOOK_OK);

    json_t *s = load_sample("bybit_position_list_response_inverse.json");
    sbyf_position(&b, f->hedge, sym, MKT_PS_SHORT, false, 3);
    json_t *got = parse_buf(&b);
    /* The sample spells it mmrSysUpdateTime; the field table and the topic say mmrSysUpdatedTime. */
    static const char *const drop_pos[] = {"mmrSysUpdateTime", NULL};
    assert_has_keys(got, json_array_get(json_object_get(json_object_get(s, "result"), "list"), 0), drop_pos,
                    "position REST");
    assert_int_equal(json_integer_value(json_object_get(got, "positionIdx")), 2);
    assert_string_equal(jstr(got, "side"), "Sell");
    assert_string_equal(jstr(got, "size"), "0.01");
    assert_string_equal(jstr(got, "avgPrice"), "50000");
    assert_string_equal(jstr(got, "positionValue"), "500");
    assert_string_equal(jstr(got, "leverage"), "20");
    assert_string_equal(jstr(got, "positionIM"), "25");
    json_decref(got);
    json_decref(s);

    sbuf_reset(&b);
    sbyf_position(&b, f->hedge, sym, MKT_PS_LONG, true, 4);
    got = parse_buf(&b);
    s = load_sample("bybit_position.json");
    assert_has_keys(got, json_array_get(json_object_get(s, "data"), 0), NULL, "position topic");
    assert_string_equal(jstr(got, "side"), "");
    assert_string_equal(jstr(got, "size"), "0");
    assert_string_equal(jstr(got, "entryPrice"), "0");
    json_decref(got);
    json_decref(s);

    sbuf_reset(&b);
    assert_int_equal(sbyf_wallet(&b, f->book, f->hedge), 0);
    got = parse_buf(&b);
    s = load_sample("bybit_wallet_balance_response.json");
    json_t *want = json_array_get(json_object_get(json_object_get(s, "result"), "list"), 0);
    assert_has_keys(got, want, NULL, "wallet");
    assert_has_keys(json_array_get(json_object_get(got, "coin"), 0), json_array_get(json_object_get(want, "coin"), 0),
                    NULL, "wallet coin");
    assert_string_equal(jstr(got, "totalWalletBalance"), "1000");
    assert_string_equal(jstr(got, "totalInitialMargin"), "25");
    assert_string_equal(jstr(got, "totalAvailableBalance"), "975");
    json_decref(got);
    json_decref(s);

    sbuf_reset(&b);
    sbyf_instrument(&b, sym);
    got = parse_buf(&b);
    s = load_sample("bybit_instruments_info_linear_usdt_perp.cleaned.json");
    want = json_array_get(json_object_get(json_object_get(s, "result"), "list"), 0);
    assert_has_keys(got, want, NULL, "instrument");
    assert_has_keys(json_object_get(got, "lotSizeFilter"), json_object_get(want, "lotSizeFilter"), NULL, "lot size");
    assert_string_equal(jstr(json_object_get(got, "lotSizeFilter"), "qtyStep"), "0.001");
    assert_string_equal(jstr(json_object_get(got, "lotSizeFilter"), "minNotionalValue"), "5");
    assert_string_equal(jstr(json_object_get(got, "priceFilter"), "tickSize"), "0.1");
    assert_string_equal(jstr(got, "baseCoin"), "BTC");
    json_decref(got);
    json_decref(s);

    sbuf_reset(&b);
    sbyf_ticker(&b, sym, 1700000000000);
    got = parse_buf(&b);
    s = load_sample("bybit_tickers_rest_inverse.json");
    assert_has_keys(got, json_array_get(json_object_get(json_object_get(s, "result"), "list"), 0), NULL, "ticker");
    assert_string_equal(jstr(got, "lastPrice"), "50000");
    json_decref(got);
    json_decref(s);

    sbuf_reset(&b);
    sbyf_error(&b, 10001, "x \"y\"", 5);
    got = parse_buf(&b);
    assert_int_equal(json_integer_value(json_object_get(got, "retCode")), 10001);
    assert_string_equal(jstr(got, "retMsg"), "x \"y\"");
    assert_true(json_is_object(json_object_get(got, "result")));
    json_decref(got);
    sbuf_free(&b);
}

static void test_map_err(void **state)
{
    (void)state;
    char msg[160];
    assert_int_equal(sbyf_map_err(SBOOK_E_DUP_CLIENT_ID, NULL, msg, sizeof(msg)), 110072);
    assert_int_equal(sbyf_map_err(SBOOK_E_MIN_NOTIONAL, NULL, msg, sizeof(msg)), 110094);
    assert_int_equal(sbyf_map_err(SBOOK_E_REDUCE_ONLY, NULL, msg, sizeof(msg)), 110017);
    assert_int_equal(sbyf_map_err(SBOOK_E_QTY_STEP, NULL, msg, sizeof(msg)), 10001);
    assert_int_equal(sbyf_map_err(SBOOK_E_PRICE_MAX, NULL, msg, sizeof(msg)), 110003);
    assert_int_equal(sbyf_map_err(SBOOK_E_MODE_SAME, NULL, msg, sizeof(msg)), 110025);
    assert_int_equal(sbyf_map_err(SBOOK_E_MODE_POSITION, NULL, msg, sizeof(msg)), 110024);
    assert_int_equal(sbyf_map_err(SBOOK_E_MODE_ORDERS, NULL, msg, sizeof(msg)), 110028);
    assert_int_equal(sbyf_map_err(SBOOK_E_NOMEM, NULL, msg, sizeof(msg)), 10016);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_vectors),
        cmocka_unit_test(test_ids),
        cmocka_unit_test_setup_teardown(test_parse_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_shapes, setup, teardown),
        cmocka_unit_test(test_map_err),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
