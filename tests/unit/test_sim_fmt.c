/* sim_bn_fmt, sim_evlog, sim_config, sim_buf: Binance payload shapes checked against the doc
 * samples (same field sets), the event log, and configuration errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "binance_rest.h"
#include "binance_stream.h"
#include "sim_bn_fmt.h"
#include "sim_buf.h"
#include "sim_config.h"
#include "sim_evlog.h"

static dec_t D(const char *s)
{
    dec_t d;
    assert_int_equal(dec_parse_cstr(s, &d), 0);
    return d;
}

static json_t *load_sample(const char *name)
{
    json_error_t e;
    json_t *j = json_load_file(name, 0, &e);
    if (!j)
        fail_msg("%s: %s", name, e.text);
    return j;
}

/* Same key set in both objects (values ignored); drop lists keys a sample has but we leave out. */
static void assert_same_keys(json_t *got, json_t *want, const char *const *drop, const char *what)
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
    json_object_foreach(got, k, v) {
        if (!json_object_get(want, k))
            fail_msg("%s: extra key '%s'", what, k);
    }
}

static json_t *parse_buf(struct sbuf *b)
{
    json_error_t e;
    assert_false(sbuf_failed(b));
    json_t *j = json_loadb(b->p, b->len, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("invalid JSON (%s): %.*s", e.text, (int)b->len, b->p);
    return j;
}

struct cap {
    struct sbuf ev[16];
    int n;
};

static void emit(void *ud, struct sbook_account *a, const struct sbook_event *ev)
{
    struct cap *c = ud;
    (void)a;
    assert_true(c->n < 16);
    struct sbuf *b = &c->ev[c->n++];
    *b = (struct sbuf)SBUF_INIT;
    sbnf_event(b, ev);
}

static int64_t clk(void *ud)
{
    (void)ud;
    return 1700000000123;
}

static struct sbook *mkbook(struct cap *cap)
{
    struct sbook *b = sbook_new(emit, clk, cap);
    struct mkt_instrument in = {
        .symbol = "BTCUSDT", .step = D("0.001"), .min_qty = D("0.001"), .max_qty = D("1000"),
        .mkt_step = D("0.001"), .mkt_min_qty = D("0.001"), .mkt_max_qty = D("120"),
        .tick = D("0.10"), .min_price = D("0.10"), .max_price = D("1000000"), .min_notional = D("5"),
    };
    assert_int_equal(sbook_add_symbol(b, &in, D("50000")), 0);
    assert_int_equal(sbook_add_account(b, "leader", "K", "S", D("100000")), 0);
    return b;
}

static void test_stream_events_match_samples(void **state)
{
    (void)state;
    struct cap cap = {.n = 0};
    struct sbook *b = mkbook(&cap);
    struct sbook_order *o;
    struct sbook_order_req r = {.sym = sbook_symbol(b, "BTCUSDT"), .side = SBOOK_SELL, .type = SBOOK_MARKET,
                                .qty = D("0.010"), .client_id = "cp-1"};
    assert_int_equal(sbook_place(b, sbook_account(b, "leader"), &r, &o), SBOOK_OK);
    assert_int_equal(cap.n, 3);

    json_t *sample = load_sample(CT_SAMPLES "/binance_order_trade_update.json");
    json_t *new_ev = parse_buf(&cap.ev[0]);
    json_t *trade = parse_buf(&cap.ev[1]);
    assert_same_keys(new_ev, sample, NULL, "ORDER_TRADE_UPDATE");
    assert_same_keys(json_object_get(new_ev, "o"), json_object_get(sample, "o"), NULL, "ORDER_TRADE_UPDATE.o");
    assert_same_keys(json_object_get(trade, "o"), json_object_get(sample, "o"), NULL, "ORDER_TRADE_UPDATE.o (TRADE)");
    json_t *to = json_object_get(trade, "o");
    assert_string_equal(json_string_value(json_object_get(trade, "e")), "ORDER_TRADE_UPDATE");
    assert_int_equal(json_integer_value(json_object_get(trade, "E")), 1700000000123);
    assert_string_equal(json_string_value(json_object_get(to, "x")), "TRADE");
    assert_string_equal(json_string_value(json_object_get(to, "X")), "FILLED");
    assert_string_equal(json_string_value(json_object_get(to, "c")), "cp-1");
    assert_string_equal(json_string_value(json_object_get(to, "S")), "SELL");
    assert_string_equal(json_string_value(json_object_get(to, "l")), "0.01");
    assert_string_equal(json_string_value(json_object_get(to, "L")), "50000");
    assert_string_equal(json_string_value(json_object_get(to, "z")), "0.01");
    assert_string_equal(json_string_value(json_object_get(to, "ap")), "50000");
    assert_string_equal(json_string_value(json_object_get(to, "ps")), "BOTH");
    assert_true(json_is_false(json_object_get(to, "R")));
    assert_int_equal(json_integer_value(json_object_get(to, "i")), o->order_id);
    assert_true(json_integer_value(json_object_get(to, "t")) > 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(new_ev, "o"), "X")), "NEW");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(new_ev, "o"), "t")), 0);

    json_t *acc_sample = load_sample(CT_SAMPLES "/binance_account_update.cleaned.json");
    json_t *acc = parse_buf(&cap.ev[2]);
    assert_same_keys(acc, acc_sample, NULL, "ACCOUNT_UPDATE");
    json_t *a = json_object_get(acc, "a"), *sa = json_object_get(acc_sample, "a");
    assert_same_keys(a, sa, NULL, "ACCOUNT_UPDATE.a");
    assert_string_equal(json_string_value(json_object_get(a, "m")), "ORDER");
    assert_same_keys(json_array_get(json_object_get(a, "B"), 0), json_array_get(json_object_get(sa, "B"), 0), NULL,
                     "ACCOUNT_UPDATE.a.B[0]");
    json_t *p = json_array_get(json_object_get(a, "P"), 0);
    assert_same_keys(p, json_array_get(json_object_get(sa, "P"), 0), NULL, "ACCOUNT_UPDATE.a.P[0]");
    assert_int_equal(json_array_size(json_object_get(a, "P")), 1);
    assert_string_equal(json_string_value(json_object_get(p, "pa")), "-0.01");
    assert_string_equal(json_string_value(json_object_get(p, "ep")), "50000");
    assert_string_equal(json_string_value(json_object_get(p, "ps")), "BOTH");

    /* order responses */
    struct sbuf rb = SBUF_INIT;
    json_t *resp_sample = load_sample(CT_SAMPLES "/binance_new_order_response.json");
    sbnf_order(&rb, o, SBNF_ACK);
    json_t *ack = parse_buf(&rb);
    assert_same_keys(ack, resp_sample, NULL, "new order response");
    assert_string_equal(json_string_value(json_object_get(ack, "status")), "NEW");
    assert_string_equal(json_string_value(json_object_get(ack, "executedQty")), "0");
    sbuf_reset(&rb);
    sbnf_order(&rb, o, SBNF_RESULT);
    json_t *res = parse_buf(&rb);
    assert_same_keys(res, resp_sample, NULL, "new order response (RESULT)");
    assert_string_equal(json_string_value(json_object_get(res, "status")), "FILLED");
    assert_string_equal(json_string_value(json_object_get(res, "executedQty")), "0.01");
    assert_string_equal(json_string_value(json_object_get(res, "cumQuote")), "500");
    sbuf_reset(&rb);
    sbnf_order(&rb, o, SBNF_QUERY);
    json_t *qry = parse_buf(&rb);
    json_t *qsample = load_sample(CT_SAMPLES "/binance_query_order_response.json");
    /* The sample is a trailing stop: activatePrice/priceRate exist only for those. The query page
     * also lists priceMatch/selfTradePreventionMode/goodTillDate, which the sample predates. */
    static const char *const trailing[] = {"activatePrice", "priceRate", NULL};
    json_object_set_new(qsample, "priceMatch", json_string("NONE"));
    json_object_set_new(qsample, "selfTradePreventionMode", json_string("NONE"));
    json_object_set_new(qsample, "goodTillDate", json_integer(0));
    assert_same_keys(qry, qsample, trailing, "query order response");

    /* positionRisk v2 */
    sbuf_reset(&rb);
    sbnf_position_risk(&rb, sbook_symbol(b, "BTCUSDT"),
                       sbook_position(sbook_account(b, "leader"), sbook_symbol(b, "BTCUSDT")), MKT_PS_BOTH);
    json_t *pr = parse_buf(&rb);
    json_t *prs = load_sample(CT_SAMPLES "/binance_position_risk_v2_hedge.json");
    assert_same_keys(pr, json_array_get(prs, 0), NULL, "positionRisk");
    assert_string_equal(json_string_value(json_object_get(pr, "positionAmt")), "-0.01");
    assert_string_equal(json_string_value(json_object_get(pr, "notional")), "-500");

    /* positionRisk v3 and account v3 */
    sbuf_reset(&rb);
    sbnf_position_risk_v3(&rb, sbook_symbol(b, "BTCUSDT"),
                          sbook_position(sbook_account(b, "leader"), sbook_symbol(b, "BTCUSDT")), MKT_PS_BOTH);
    json_t *pr3 = parse_buf(&rb);
    json_t *pr3s = load_sample(CT_SAMPLES "/binance_position_risk_v3_oneway.json");
    assert_same_keys(pr3, json_array_get(pr3s, 0), NULL, "positionRisk v3");
    assert_string_equal(json_string_value(json_object_get(pr3, "initialMargin")), "25"); /* 500 / 20 */
    assert_string_equal(json_string_value(json_object_get(pr3, "maintMargin")), "2");    /* 500 * 0.004 */
    sbuf_reset(&rb);
    assert_int_equal(sbnf_account(&rb, b, sbook_account(b, "leader"), 7), 0);
    json_t *ac = parse_buf(&rb);
    json_t *acs = load_sample(CT_SAMPLES "/binance_account_v3_single_asset.cleaned.json");
    assert_same_keys(ac, acs, NULL, "account v3");
    assert_same_keys(json_array_get(json_object_get(ac, "assets"), 0), json_array_get(json_object_get(acs, "assets"), 0),
                     NULL, "account v3 assets[0]");
    assert_same_keys(json_array_get(json_object_get(ac, "positions"), 0),
                     json_array_get(json_object_get(acs, "positions"), 0), NULL, "account v3 positions[0]");
    assert_string_equal(json_string_value(json_object_get(ac, "totalWalletBalance")), "100000");
    assert_string_equal(json_string_value(json_object_get(ac, "availableBalance")), "99975");
    json_decref(ac);
    json_decref(acs);
    json_decref(pr3);
    json_decref(pr3s);
    json_decref(pr);
    json_decref(prs);
    json_decref(qry);
    json_decref(qsample);
    json_decref(res);
    json_decref(ack);
    json_decref(resp_sample);
    json_decref(acc);
    json_decref(acc_sample);
    json_decref(trade);
    json_decref(new_ev);
    json_decref(sample);
    sbuf_free(&rb);
    for (int i = 0; i < cap.n; i++)
        sbuf_free(&cap.ev[i]);
    sbook_free(b);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    if (!v)
        fail_msg("no string '%s'", k);
    return v;
}

/* Hedge mode, leverage and balance events: the shapes against the doc samples, and the
 * copytrader adapter's own parsers reading what the simulator writes. */
static void test_hedge_leverage_balance_shapes(void **state)
{
    (void)state;
    struct cap cap = {.n = 0};
    struct sbook *b = mkbook(&cap);
    struct sbook_account *a = sbook_account(b, "leader");
    struct sbook_symbol *btc = sbook_symbol(b, "BTCUSDT");
    struct sbook_order *o;
    struct bn_user_event ev;
    char err[200];

    assert_int_equal(sbook_set_position_mode(b, a, MKT_PM_HEDGE), SBOOK_OK);
    struct sbook_order_req r = {.sym = btc, .side = SBOOK_SELL, .type = SBOOK_MARKET, .qty = D("0.010"),
                                .client_id = "h-1", .pos_side = MKT_PS_SHORT};
    assert_int_equal(sbook_place(b, a, &r, &o), SBOOK_OK);
    assert_int_equal(cap.n, 3);
    json_t *trade = parse_buf(&cap.ev[1]);
    assert_string_equal(jstr(json_object_get(trade, "o"), "ps"), "SHORT");
    assert_int_equal(bn_parse_user_event(cap.ev[1].p, cap.ev[1].len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_FILL);
    assert_int_equal(ev.fill.pos_side, MKT_PS_SHORT);
    assert_int_equal(ev.fill.side, MKT_SELL);
    bn_user_event_clear(&ev);
    json_t *acc = parse_buf(&cap.ev[2]);
    json_t *p0 = json_array_get(json_object_get(json_object_get(acc, "a"), "P"), 0);
    assert_string_equal(jstr(p0, "ps"), "SHORT");
    assert_string_equal(jstr(p0, "pa"), "-0.01");
    assert_int_equal(bn_parse_user_event(cap.ev[2].p, cap.ev[2].len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.n_positions, 1);
    assert_int_equal(ev.positions[0].pos.pos_side, MKT_PS_SHORT);
    bn_user_event_clear(&ev);

    /* order response and positionRisk carry the side; the adapter reads them back */
    struct sbuf rb = SBUF_INIT;
    sbnf_order(&rb, o, SBNF_RESULT);
    json_t *res = parse_buf(&rb);
    assert_string_equal(jstr(res, "positionSide"), "SHORT");
    sbuf_reset(&rb);
    assert_int_equal(sbook_change_leverage(b, a, btc, 5), 0);
    sbuf_addc(&rb, '[');
    sbnf_position_risk(&rb, btc, sbook_position_side(a, btc, MKT_PS_LONG), MKT_PS_LONG);
    sbuf_addc(&rb, ',');
    sbnf_position_risk(&rb, btc, sbook_position_side(a, btc, MKT_PS_SHORT), MKT_PS_SHORT);
    sbuf_addc(&rb, ']');
    json_t *pr = parse_buf(&rb);
    json_t *prs = load_sample(CT_SAMPLES "/binance_position_risk_v2_hedge.json");
    assert_same_keys(json_array_get(pr, 1), json_array_get(prs, 1), NULL, "positionRisk SHORT");
    assert_string_equal(jstr(json_array_get(pr, 0), "positionSide"), "LONG");
    assert_string_equal(jstr(json_array_get(pr, 1), "positionAmt"), "-0.01");
    assert_string_equal(jstr(json_array_get(pr, 1), "leverage"), "5");
    struct mkt_position *mp;
    size_t n;
    assert_int_equal(binance_parse_positions(rb.p, rb.len, &mp, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(mp[0].pos_side, MKT_PS_SHORT);
    assert_int_equal(mp[0].leverage, 5);
    free(mp);
    struct exch_leverage *lv;
    assert_int_equal(binance_parse_leverages(rb.p, rb.len, &lv, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(lv[0].leverage, 5);
    free(lv);

    /* the leverage change went out as ACCOUNT_CONFIG_UPDATE, same keys as the doc sample */
    assert_int_equal(cap.n, 4);
    json_t *cu = parse_buf(&cap.ev[3]);
    json_t *cus = load_sample(CT_SAMPLES "/binance_account_config_update_leverage.json");
    assert_same_keys(cu, cus, NULL, "ACCOUNT_CONFIG_UPDATE");
    assert_same_keys(json_object_get(cu, "ac"), json_object_get(cus, "ac"), NULL, "ACCOUNT_CONFIG_UPDATE.ac");
    assert_int_equal(bn_parse_user_event(cap.ev[3].p, cap.ev[3].len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_LEVERAGE);
    assert_string_equal(ev.leverage_symbol, "BTCUSDT");
    assert_int_equal(ev.leverage, 5);
    bn_user_event_clear(&ev);

    /* price up 1000: the short loses 10; equity = wallet + unrealized, margin at leverage 5 */
    assert_int_equal(sbook_set_price(b, btc, D("51000")), 0);
    struct sbnf_totals t;
    assert_int_equal(sbnf_totals(b, a, &t), 0);
    char x[DEC_STR_MAX];
    dec_format(t.unrealized, x, sizeof(x));
    assert_string_equal(x, "-10");
    dec_format(t.equity, x, sizeof(x));
    assert_string_equal(x, "99990");
    dec_format(t.initial, x, sizeof(x));
    assert_string_equal(x, "102"); /* 510 / 5 */
    sbuf_reset(&rb);
    assert_int_equal(sbnf_account(&rb, b, a, 9), 0);
    json_t *ac = parse_buf(&rb);
    assert_string_equal(jstr(json_array_get(json_object_get(ac, "positions"), 0), "positionSide"), "SHORT");
    struct exch_balance eb;
    assert_int_equal(binance_parse_account(rb.p, rb.len, &eb, err, sizeof(err)), 0);
    dec_format(eb.equity, x, sizeof(x));
    assert_string_equal(x, "99990");
    dec_format(eb.available, x, sizeof(x));
    assert_string_equal(x, "99888");
    sbuf_reset(&rb);
    assert_int_equal(sbnf_balance(&rb, b, a, 9), 0);
    json_t *bal = parse_buf(&rb);
    json_t *bals = load_sample(CT_SAMPLES "/binance_balance_v3.json");
    assert_same_keys(json_array_get(bal, 0), json_array_get(bals, 0), NULL, "balance");
    assert_string_equal(jstr(json_array_get(bal, 0), "crossUnPnl"), "-10");

    /* a wallet adjustment: ACCOUNT_UPDATE m=ADJUSTMENT, bc = the change, no positions */
    assert_int_equal(sbook_set_balance(b, a, D("90000.5")), 0);
    assert_int_equal(cap.n, 5);
    json_t *adj = parse_buf(&cap.ev[4]);
    json_t *aa = json_object_get(adj, "a");
    assert_string_equal(jstr(aa, "m"), "ADJUSTMENT");
    json_t *b0 = json_array_get(json_object_get(aa, "B"), 0);
    assert_string_equal(jstr(b0, "wb"), "90000.5");
    assert_string_equal(jstr(b0, "bc"), "-9999.5");
    assert_int_equal(json_array_size(json_object_get(aa, "P")), 0);
    assert_int_equal(bn_parse_user_event(cap.ev[4].p, cap.ev[4].len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_ACCOUNT_UPDATE);
    assert_int_equal(ev.n_positions, 0);
    bn_user_event_clear(&ev);

    json_decref(adj);
    json_decref(bal);
    json_decref(bals);
    json_decref(ac);
    json_decref(cu);
    json_decref(cus);
    json_decref(pr);
    json_decref(prs);
    json_decref(res);
    json_decref(acc);
    json_decref(trade);
    sbuf_free(&rb);
    for (int i = 0; i < cap.n; i++)
        sbuf_free(&cap.ev[i]);
    sbook_free(b);
}

static json_t *filter(json_t *sym, const char *type)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(sym, "filters"), i, f) {
        if (!strcmp(json_string_value(json_object_get(f, "filterType")), type))
            return f;
    }
    fail_msg("no %s filter", type);
    return NULL;
}

static void test_exchange_info(void **state)
{
    (void)state;
    struct cap cap = {.n = 0};
    struct sbook *b = mkbook(&cap);
    struct sbuf sb = SBUF_INIT;
    sbnf_exchange_info(&sb, b, 42);
    json_t *j = parse_buf(&sb);
    json_t *sample = load_sample(CT_SAMPLES "/binance_exchangeinfo.cleaned.json");
    assert_int_equal(json_integer_value(json_object_get(j, "serverTime")), 42);
    assert_true(json_array_size(json_object_get(j, "rateLimits")) >= 2);
    json_t *s = json_array_get(json_object_get(j, "symbols"), 0);
    json_t *ss = json_array_get(json_object_get(sample, "symbols"), 0);
    assert_same_keys(s, ss, NULL, "exchangeInfo.symbols[0]");
    assert_string_equal(json_string_value(json_object_get(s, "symbol")), "BTCUSDT");
    assert_string_equal(json_string_value(json_object_get(s, "status")), "TRADING");
    assert_string_equal(json_string_value(json_object_get(s, "baseAsset")), "BTC");
    assert_int_equal(json_integer_value(json_object_get(s, "pricePrecision")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "quantityPrecision")), 3);
    assert_string_equal(json_string_value(json_object_get(filter(s, "PRICE_FILTER"), "tickSize")), "0.1");
    assert_string_equal(json_string_value(json_object_get(filter(s, "PRICE_FILTER"), "minPrice")), "0.1");
    assert_string_equal(json_string_value(json_object_get(filter(s, "LOT_SIZE"), "stepSize")), "0.001");
    assert_string_equal(json_string_value(json_object_get(filter(s, "LOT_SIZE"), "maxQty")), "1000");
    assert_string_equal(json_string_value(json_object_get(filter(s, "MARKET_LOT_SIZE"), "maxQty")), "120");
    assert_string_equal(json_string_value(json_object_get(filter(s, "MIN_NOTIONAL"), "notional")), "5");
    json_decref(j);
    json_decref(sample);
    sbuf_free(&sb);
    sbook_free(b);
}

static void test_error_mapping(void **state)
{
    (void)state;
    struct cap cap = {.n = 0};
    struct sbook *b = mkbook(&cap);
    char msg[256];
    struct sbuf sb = SBUF_INIT;
    assert_int_equal(sbnf_map_err(SBOOK_E_MIN_NOTIONAL, sbook_symbol(b, "BTCUSDT"), msg, sizeof(msg)), -4164);
    assert_string_equal(msg, "Order's notional must be no smaller than 5 (unless you choose reduce only).");
    assert_int_equal(sbnf_map_err(SBOOK_E_REDUCE_ONLY, NULL, msg, sizeof(msg)), -2022);
    assert_int_equal(sbnf_map_err(SBOOK_E_DUP_CLIENT_ID, NULL, msg, sizeof(msg)), -4116);
    assert_int_equal(sbnf_map_err(SBOOK_E_QTY_STEP, NULL, msg, sizeof(msg)), -4023);
    assert_int_equal(sbnf_map_err(SBOOK_E_QTY_PRECISION, NULL, msg, sizeof(msg)), -1111);
    assert_int_equal(sbnf_map_err(SBOOK_E_PRICE_TICK, NULL, msg, sizeof(msg)), -4014);
    assert_int_equal(sbnf_map_err(SBOOK_E_PRICE_MIN, NULL, msg, sizeof(msg)), -4013);
    assert_int_equal(sbnf_map_err(SBOOK_E_QTY_LE_ZERO, NULL, msg, sizeof(msg)), -4003);
    assert_int_equal(sbnf_map_err(SBOOK_E_QTY_MIN, NULL, msg, sizeof(msg)), -4004);
    assert_int_equal(sbnf_map_err(SBOOK_E_QTY_MAX, NULL, msg, sizeof(msg)), -4005);
    assert_int_equal(sbnf_map_err(SBOOK_E_GTX_WOULD_TAKE, NULL, msg, sizeof(msg)), -5022);
    assert_int_equal(sbnf_map_err(SBOOK_E_POS_SIDE, NULL, msg, sizeof(msg)), -4061);
    assert_string_equal(msg, "Order's position side does not match user's setting.");
    assert_int_equal(sbnf_map_err(SBOOK_E_HEDGE_REDUCE_ONLY, NULL, msg, sizeof(msg)), -1106);
    assert_string_equal(msg, "Parameter 'reduceOnly' sent when not required.");
    assert_int_equal(sbnf_map_err(SBOOK_E_MODE_SAME, NULL, msg, sizeof(msg)), -4059);
    assert_int_equal(sbnf_map_err(SBOOK_E_MODE_POSITION, NULL, msg, sizeof(msg)), -4068);
    assert_int_equal(sbnf_map_err(SBOOK_E_MODE_ORDERS, NULL, msg, sizeof(msg)), -4067);
    sbnf_error(&sb, -1121, "Invalid \"symbol\".");
    assert_string_equal(sb.p, "{\"code\":-1121,\"msg\":\"Invalid \\\"symbol\\\".\"}");
    sbuf_free(&sb);
    sbook_free(b);
}

static void test_sbuf_escape(void **state)
{
    (void)state;
    struct sbuf b = SBUF_INIT;
    sbuf_add_jstrn(&b, "a\"b\\c\n\x01\xff", 8);
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\u0001\\u00ff\"");
    sbuf_reset(&b);
    sbuf_add_jstr(&b, NULL);
    assert_string_equal(b.p, "null");
    sbuf_reset(&b);
    for (int i = 0; i < 1000; i++)
        sbuf_addf(&b, "%d,", i);
    assert_int_equal(b.len, 3890);
    size_t n;
    char *s = sbuf_steal(&b, &n);
    assert_int_equal(n, 3890);
    assert_int_equal(strlen(s), 3890);
    assert_null(b.p);
    free(s);
}

static void test_evlog(void **state)
{
    (void)state;
    struct sevlog *l = sevlog_new(0);
    assert_int_equal(sevlog_append(l, "{\"a\":1}", 7, 10), 1);
    assert_int_equal(sevlog_append(l, "{\"a\":2}", 7, 11), 2);
    assert_int_equal(sevlog_append(l, "{\"a\":3}", 7, 12), 3);
    assert_int_equal(sevlog_count(l), 3);
    assert_int_equal(sevlog_first_from(l, 0), 0);
    assert_int_equal(sevlog_first_from(l, 1), 0);
    assert_int_equal(sevlog_first_from(l, 3), 2);
    assert_int_equal(sevlog_first_from(l, 4), 3);
    assert_int_equal(sevlog_first_from(l, 1000), 3);
    assert_string_equal(sevlog_at(l, 1)->text, "{\"a\":2}");
    assert_int_equal(sevlog_at(l, 1)->seq, 2);
    assert_null(sevlog_at(l, 3));
    sevlog_free(l);

    /* With a limit the oldest go, sequence numbers continue. */
    l = sevlog_new(4);
    char t[16];
    for (int i = 1; i <= 10; i++) {
        int n = snprintf(t, sizeof(t), "{\"i\":%d}", i);
        assert_int_equal(sevlog_append(l, t, (size_t)n, i), i);
        assert_int_equal(sevlog_count(l), i < 4 ? i : 4);
    }
    assert_int_equal(sevlog_at(l, 0)->seq, 7);
    assert_string_equal(sevlog_at(l, 0)->text, "{\"i\":7}");
    assert_string_equal(sevlog_at(l, 3)->text, "{\"i\":10}");
    assert_int_equal(sevlog_first_from(l, 1), 0); /* dropped: start at the oldest held */
    assert_int_equal(sevlog_first_from(l, 9), 2);
    assert_int_equal(sevlog_first_from(l, 11), 4);
    assert_int_equal(sevlog_next_seq(l), 11);
    sevlog_free(l);
}

static const char *GOOD =
    "{\"port\":0,\"admin_port\":0,\"ping_interval_s\":180,"
    "\"accounts\":[{\"name\":\"leader\",\"api_key\":\"k1\",\"api_secret\":\"s1\",\"balance\":\"100000\"},"
    "{\"name\":\"f\",\"api_key\":\"k2\",\"api_secret\":\"s2\",\"position_mode\":\"hedge\",\"leverage\":7,"
    "\"unsigned_ok\":true}],"
    "\"symbols\":[{\"symbol\":\"BTCUSDT\",\"price\":\"50000\",\"step_size\":\"0.001\",\"min_qty\":\"0.001\","
    "\"max_qty\":\"1000\",\"market_step_size\":\"0.001\",\"market_min_qty\":\"0.001\",\"market_max_qty\":\"120\","
    "\"tick_size\":\"0.10\",\"min_price\":\"0.10\",\"max_price\":\"1000000\",\"min_notional\":\"5\"},"
    "{\"symbol\":\"ETHUSDT\",\"price\":3000,\"step_size\":\"0.01\",\"tick_size\":\"0.01\"}]}";

static void test_config_good(void **state)
{
    (void)state;
    struct scfg *c = NULL;
    char err[256];
    assert_int_equal(scfg_parse(GOOD, strlen(GOOD), "sim.json", &c, err, sizeof(err)), 0);
    assert_int_equal(c->naccounts, 2);
    assert_string_equal(c->accounts[0].name, "leader");
    assert_int_equal(c->accounts[0].position_mode, MKT_PM_ONE_WAY); /* defaults */
    assert_int_equal(c->accounts[0].leverage, 20);
    assert_int_equal(c->accounts[1].position_mode, MKT_PM_HEDGE);
    assert_int_equal(c->accounts[1].leverage, 7);
    assert_false(c->accounts[0].unsigned_ok); /* benchmarks only: never the default */
    assert_true(c->accounts[1].unsigned_ok);
    assert_string_equal(c->accounts[0].api_secret, "s1");
    assert_int_equal(c->nsymbols, 2);
    assert_int_equal(c->ping_interval_s, 180);
    assert_int_equal(c->listen_key_ttl_s, 3600);
    assert_int_equal(c->event_log_limit, 0);
    char buf[DEC_STR_MAX];
    dec_format(c->symbols[0].ins.mkt_max_qty, buf, sizeof(buf));
    assert_string_equal(buf, "120");
    /* defaults of the second symbol: min_qty = step, market_* = LOT_SIZE, others 0 */
    dec_format(c->symbols[1].ins.min_qty, buf, sizeof(buf));
    assert_string_equal(buf, "0.01");
    dec_format(c->symbols[1].ins.mkt_step, buf, sizeof(buf));
    assert_string_equal(buf, "0.01");
    assert_true(dec_is_zero(c->symbols[1].ins.max_qty));
    dec_format(c->symbols[1].price, buf, sizeof(buf));
    assert_string_equal(buf, "3000");
    scfg_free(c);
}

static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *from, *to, *want;
    } cases[] = {
        {"\"api_secret\":\"s1\",", "", "sim.json: field 'accounts[0].api_secret': missing"},
        {"\"tick_size\":\"0.10\"", "\"tick_size\":0.1", "field 'symbols[0].tick_size': must be a decimal string"},
        {"\"step_size\":\"0.01\"", "\"step_size\":\"-0.01\"", "field 'symbols[1].step_size': must be > 0"},
        {"\"ping_interval_s\":180", "\"ping_interval_s\":0", "field 'ping_interval_s': must be an integer"},
        {"\"port\":0", "\"port\":70000", "field 'port'"},
        {"\"port\":0", "\"prot\":0", "field 'prot': unknown key"},
        {"\"min_notional\":\"5\"", "\"min_notional\":\"5\",\"minNotional\":\"1\"",
         "field 'symbols[0].minNotional': unknown key"},
        {"\"symbol\":\"ETHUSDT\"", "\"symbol\":\"BTCUSDT\"", "field 'symbols[1].symbol': duplicate"},
        {"\"symbol\":\"ETHUSDT\"", "\"symbol\":\"eth\"", "field 'symbols[1].symbol': only upper-case"},
        {"\"name\":\"leader\"", "\"name\":\"le ader\"", "field 'accounts[0].name'"},
        {"\"max_qty\":\"1000\"", "\"max_qty\":\"0.0001\"", "field 'symbols[0].max_qty': must be >= min_qty"},
        {"{\"port\"", "[{\"port\"", "invalid JSON"},
        {"\"hedge\"", "\"dual\"", "field 'accounts[1].position_mode': must be \"oneway\" or \"hedge\""},
        {"\"hedge\"", "true", "field 'accounts[1].position_mode': must be"},
        {"\"leverage\":7", "\"leverage\":126", "field 'accounts[1].leverage': must be an integer in [1, 125]"},
        {"\"leverage\":7", "\"leverage\":\"7\"", "field 'accounts[1].leverage'"},
        {"\"leverage\":7", "\"leverage\":0", "field 'accounts[1].leverage'"},
        {"\"unsigned_ok\":true", "\"unsigned_ok\":1", "field 'accounts[1].unsigned_ok': must be true or false"},
        {"\"unsigned_ok\":true", "\"unsigned_ok\":\"yes\"", "field 'accounts[1].unsigned_ok'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[2048], err[256] = "";
        const char *at = strstr(GOOD, cases[i].from);
        assert_non_null(at);
        snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - GOOD), GOOD, cases[i].to, at + strlen(cases[i].from));
        struct scfg *c = NULL;
        int rc = scfg_parse(text, strlen(text), "sim.json", &c, err, sizeof(err));
        if (rc != -EINVAL || c || !strstr(err, cases[i].want))
            fail_msg("case %zu: rc %d, err '%s', want '%s'", i, rc, err, cases[i].want);
    }
    char err[256];
    struct scfg *c = NULL;
    assert_true(scfg_load("/nonexistent/sim.json", &c, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent/sim.json: cannot open"));
    const char *empty = "{\"accounts\":[],\"symbols\":[]}";
    assert_int_equal(scfg_parse(empty, strlen(empty), "x.json", &c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "field 'accounts': must be a non-empty array"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_events_match_samples),
        cmocka_unit_test(test_hedge_leverage_balance_shapes),
        cmocka_unit_test(test_exchange_info),
        cmocka_unit_test(test_error_mapping),
        cmocka_unit_test(test_sbuf_escape),
        cmocka_unit_test(test_evlog),
        cmocka_unit_test(test_config_good),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
