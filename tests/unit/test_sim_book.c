/* sim_book: the simulator's order/position/filter logic, without I/O. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sim_book.h"

static dec_t D(const char *s)
{
    dec_t d;
    assert_int_equal(dec_parse_cstr(s, &d), 0);
    return d;
}

static void assert_dec(dec_t got, const char *want)
{
    char buf[DEC_STR_MAX];
    assert_true(dec_format(got, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, want);
}

/* Recorded events, flattened to text so tests can compare sequences. */
#define MAXEV 64
struct rec {
    char ev[MAXEV][512];
    int n;
    int64_t clock;
};

static void emit(void *ud, struct sbook_account *a, const struct sbook_event *ev)
{
    struct rec *r = ud;
    char q[DEC_STR_MAX], p[DEC_STR_MAX], z[DEC_STR_MAX], x[DEC_STR_MAX];
    assert_true(r->n < MAXEV);
    if (ev->kind == SBOOK_EV_ORDER) {
        static const char *const xs[] = {"NEW", "TRADE", "CANCELED", "EXPIRED"};
        dec_format(ev->last_qty, q, sizeof(q));
        dec_format(ev->last_price, p, sizeof(p));
        dec_format(ev->order->exec_qty, z, sizeof(z));
        dec_format(ev->realized, x, sizeof(x));
        if (ev->exec == SBOOK_X_TRADE)
            snprintf(r->ev[r->n++], 512, "%s %s %s %s %s@%s z=%s rp=%s t=%lld %s", sbook_account_name(a),
                     ev->order->client_id, xs[ev->exec], sbook_status_name(ev->order->status), q, p, z, x,
                     (long long)ev->trade_id, ev->order->maker ? "maker" : "taker");
        else
            snprintf(r->ev[r->n++], 512, "%s %s %s %s", sbook_account_name(a), ev->order->client_id,
                     xs[ev->exec], sbook_status_name(ev->order->status));
    } else if (ev->kind == SBOOK_EV_ACCOUNT) {
        dec_format(ev->pos->amount, q, sizeof(q));
        dec_format(ev->pos->entry_price, p, sizeof(p));
        dec_format(ev->balance, z, sizeof(z));
        if (ev->pos_side == MKT_PS_BOTH)
            snprintf(r->ev[r->n++], 512, "%s ACCOUNT %s pa=%s ep=%s wb=%s", sbook_account_name(a),
                     ev->sym->ins.symbol, q, p, z);
        else
            snprintf(r->ev[r->n++], 512, "%s ACCOUNT %s %s pa=%s ep=%s wb=%s", sbook_account_name(a),
                     ev->sym->ins.symbol, sbook_pos_side_name(ev->pos_side), q, p, z);
    } else if (ev->kind == SBOOK_EV_LEVERAGE) {
        snprintf(r->ev[r->n++], 512, "%s LEVERAGE %s %d", sbook_account_name(a), ev->sym->ins.symbol,
                 ev->leverage);
    } else {
        assert_int_equal(ev->kind, SBOOK_EV_BALANCE);
        dec_format(ev->balance, z, sizeof(z));
        dec_format(ev->balance_change, x, sizeof(x));
        snprintf(r->ev[r->n++], 512, "%s BALANCE wb=%s bc=%s", sbook_account_name(a), z, x);
    }
}

static int64_t clk(void *ud)
{
    return ((struct rec *)ud)->clock;
}

struct fx {
    struct rec rec;
    struct sbook *b;
    struct sbook_account *a, *f;
    struct sbook_symbol *btc;
};

static int setup(void **state)
{
    static struct fx fx;
    memset(&fx, 0, sizeof(fx));
    fx.rec.clock = 1700000000000;
    fx.b = sbook_new(emit, clk, &fx.rec);
    struct mkt_instrument in = {
        .symbol = "BTCUSDT",
        .step = D("0.001"), .min_qty = D("0.001"), .max_qty = D("1000"),
        .mkt_step = D("0.001"), .mkt_min_qty = D("0.001"), .mkt_max_qty = D("120"),
        .tick = D("0.10"), .min_price = D("0.10"), .max_price = D("1000000"),
        .min_notional = D("5"),
    };
    assert_int_equal(sbook_add_symbol(fx.b, &in, D("50000")), 0);
    struct mkt_instrument eth = {.symbol = "ETHUSDT", .step = D("0.01"), .min_qty = D("0.01"), .tick = D("0.01"),
                                 .mkt_step = D("0.01"), .mkt_min_qty = D("0.01")};
    assert_int_equal(sbook_add_symbol(fx.b, &eth, D("3000")), 0);
    assert_int_equal(sbook_add_symbol(fx.b, &eth, D("3000")), -EEXIST);
    assert_int_equal(sbook_add_account(fx.b, "leader", "K1", "S1", D("1000")), 0);
    assert_int_equal(sbook_add_account(fx.b, "follower", "K2", "S2", D("0")), 0);
    assert_int_equal(sbook_add_account(fx.b, "dup", "K1", "S3", D("0")), -EEXIST);
    /* Symbols must all come before accounts (positions are sized then). */
    assert_int_equal(sbook_add_symbol(fx.b, &in, D("1")), -EINVAL);
    fx.a = sbook_account(fx.b, "leader");
    fx.f = sbook_account_by_key(fx.b, "K2");
    fx.btc = sbook_symbol(fx.b, "BTCUSDT");
    assert_non_null(fx.a);
    assert_non_null(fx.f);
    assert_non_null(fx.btc);
    assert_ptr_equal(sbook_symbol_at(fx.b, 0), fx.btc);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    sbook_free(fx->b);
    return 0;
}

static struct sbook_order_req mkt(struct fx *fx, enum sbook_side side, const char *qty, const char *cid)
{
    return (struct sbook_order_req){.sym = fx->btc, .side = side, .type = SBOOK_MARKET, .qty = D(qty),
                                    .client_id = cid};
}

static struct sbook_order_req lim(struct fx *fx, enum sbook_side side, const char *qty, const char *px,
                                  enum sbook_tif tif, const char *cid)
{
    return (struct sbook_order_req){.sym = fx->btc, .side = side, .type = SBOOK_LIMIT, .qty = D(qty),
                                    .price = D(px), .tif = tif, .client_id = cid};
}

static void test_filters(void **state)
{
    struct fx *fx = *state;
    struct sbook_order_req r;
    struct sbook_order *o = NULL;

    r = mkt(fx, SBOOK_BUY, "0", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_QTY_LE_ZERO);
    r = mkt(fx, SBOOK_BUY, "-1", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_QTY_LE_ZERO);
    r = mkt(fx, SBOOK_BUY, "0.0015", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_QTY_PRECISION);
    /* MARKET uses MARKET_LOT_SIZE (max 120), LIMIT uses LOT_SIZE (max 1000). */
    r = mkt(fx, SBOOK_BUY, "121", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_QTY_MAX);
    r = lim(fx, SBOOK_BUY, "121", "100", SBOOK_GTC, NULL);
    assert_int_equal(sbook_check(fx->b, fx->a, &r), SBOOK_OK);
    r = lim(fx, SBOOK_BUY, "1001", "100", SBOOK_GTC, NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_QTY_MAX);
    /* min notional: 0.001 * 50000 = 50 >= 5; LIMIT at 100: 0.001 * 100 = 0.1 < 5 */
    r = lim(fx, SBOOK_BUY, "0.001", "100", SBOOK_GTC, NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_MIN_NOTIONAL);
    r = lim(fx, SBOOK_BUY, "0.05", "100", SBOOK_GTC, NULL);
    assert_int_equal(sbook_check(fx->b, fx->a, &r), SBOOK_OK); /* 0.05 * 100 = 5: exactly the minimum */
    r = lim(fx, SBOOK_BUY, "0.01", "100.05", SBOOK_GTC, NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_PRICE_PRECISION);
    r = lim(fx, SBOOK_BUY, "0.01", "0", SBOOK_GTC, NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_PRICE_LE_ZERO);
    r = lim(fx, SBOOK_BUY, "1", "1000000.1", SBOOK_GTC, NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_PRICE_MAX);
    r.price = D("1000000");
    assert_int_equal(sbook_check(fx->b, fx->a, &r), SBOOK_OK);
    /* nothing was accepted, nothing emitted */
    assert_int_equal(fx->rec.n, 0);
    assert_dec(sbook_position(fx->a, fx->btc)->amount, "0");
}

static void test_step_and_tick_grid(void **state)
{
    struct fx *fx = *state;
    /* A step that is not a power of ten: (qty - minQty) must be a multiple of it. */
    struct mkt_instrument in = {.symbol = "XUSDT", .step = D("0.5"), .min_qty = D("1"), .tick = D("0.25"),
                                .min_price = D("0.5"), .mkt_step = D("0.5"), .mkt_min_qty = D("1")};
    struct sbook *b = sbook_new(NULL, clk, &fx->rec);
    assert_int_equal(sbook_add_symbol(b, &in, D("10")), 0);
    assert_int_equal(sbook_add_account(b, "a", "k", "s", D("0")), 0);
    struct sbook_account *a = sbook_account(b, "a");
    struct sbook_order_req r = {.sym = sbook_symbol(b, "XUSDT"), .side = SBOOK_BUY, .type = SBOOK_LIMIT,
                                .qty = D("1.5"), .price = D("9.75"), .tif = SBOOK_GTC};
    assert_int_equal(sbook_check(b, a, &r), SBOOK_OK);
    r.qty = D("1.7"); /* decimals fine, but (1.7 - 1) is not a multiple of 0.5 */
    assert_int_equal(sbook_check(b, a, &r), SBOOK_E_QTY_STEP);
    r.qty = D("1.55"); /* more decimals than the step has */
    assert_int_equal(sbook_check(b, a, &r), SBOOK_E_QTY_PRECISION);
    r.qty = D("0.5");
    assert_int_equal(sbook_check(b, a, &r), SBOOK_E_QTY_MIN);
    r.qty = D("2");
    r.price = D("9.755");
    assert_int_equal(sbook_check(b, a, &r), SBOOK_E_PRICE_PRECISION);
    r.price = D("9.8"); /* (9.8 - 0.5) is not a multiple of 0.25 */
    assert_int_equal(sbook_check(b, a, &r), SBOOK_E_PRICE_TICK);
    r.price = D("9.70");
    assert_int_equal(sbook_check(b, a, &r), SBOOK_E_PRICE_TICK);
    r.price = D("9.5");
    assert_int_equal(sbook_check(b, a, &r), SBOOK_OK);
    r.price = D("0.25");
    assert_int_equal(sbook_check(b, a, &r), SBOOK_E_PRICE_MIN);
    struct mkt_instrument in2 = {.symbol = "YUSDT", .step = D("0.003"), .min_qty = D("0.001"), .tick = D("0.01")};
    struct sbook *b2 = sbook_new(NULL, clk, &fx->rec);
    assert_int_equal(sbook_add_symbol(b2, &in2, D("10")), 0);
    assert_int_equal(sbook_add_account(b2, "a", "k", "s", D("0")), 0);
    struct sbook_order_req r2 = {.sym = sbook_symbol(b2, "YUSDT"), .side = SBOOK_BUY, .type = SBOOK_LIMIT,
                                 .qty = D("0.004"), .price = D("9"), .tif = SBOOK_GTC};
    assert_int_equal(sbook_check(b2, sbook_account(b2, "a"), &r2), SBOOK_OK);
    r2.qty = D("0.005");
    assert_int_equal(sbook_check(b2, sbook_account(b2, "a"), &r2), SBOOK_E_QTY_STEP);
    sbook_free(b2);
    sbook_free(b);
}

static void test_market_fill_events(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o = NULL;
    struct sbook_order_req r = mkt(fx, SBOOK_BUY, "0.010", "c1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_non_null(o);
    assert_int_equal(o->status, SBOOK_ST_FILLED);
    assert_string_equal(o->client_id, "c1");
    assert_dec(o->exec_qty, "0.01");
    assert_dec(o->avg_price, "50000");
    assert_dec(o->cum_quote, "500");
    assert_int_equal(fx->rec.n, 3);
    assert_string_equal(fx->rec.ev[0], "leader c1 NEW NEW");
    assert_string_equal(fx->rec.ev[1], "leader c1 TRADE FILLED 0.01@50000 z=0.01 rp=0 t=5000001 taker");
    assert_string_equal(fx->rec.ev[2], "leader ACCOUNT BTCUSDT pa=0.01 ep=50000 wb=1000");
    assert_ptr_equal(sbook_order_by_client(fx->a, fx->btc, "c1"), o);
    assert_ptr_equal(sbook_order_by_id(fx->a, fx->btc, o->order_id), o);
    assert_null(sbook_order_by_id(fx->f, fx->btc, o->order_id)); /* other account */
    assert_null(sbook_order_by_client(fx->a, sbook_symbol(fx->b, "ETHUSDT"), "c1"));
    assert_false(sbook_order_is_open(o));
}

static void test_fills_split(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o = NULL;
    dec_t fills[2] = {D("0.004"), D("0.006")};
    dec_t bad[2] = {D("0.004"), D("0.005")};
    dec_t offstep[2] = {D("0.0045"), D("0.0055")};
    struct sbook_order_req r = mkt(fx, SBOOK_SELL, "0.010", NULL);
    r.fills = bad;
    r.nfills = 2;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_BAD_FILLS);
    r.fills = offstep;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_BAD_FILLS);
    r.fills = fills;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_int_equal(fx->rec.n, 5);
    assert_true(strstr(fx->rec.ev[1], "TRADE PARTIALLY_FILLED 0.004@50000 z=0.004") != NULL);
    assert_string_equal(fx->rec.ev[2], "leader ACCOUNT BTCUSDT pa=-0.004 ep=50000 wb=1000");
    assert_true(strstr(fx->rec.ev[3], "TRADE FILLED 0.006@50000 z=0.01") != NULL);
    assert_string_equal(fx->rec.ev[4], "leader ACCOUNT BTCUSDT pa=-0.01 ep=50000 wb=1000");
    assert_string_equal(o->client_id, "sim-auto-1"); /* generated */
}

static void test_position_average_realized_flip(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o;
    struct sbook_order_req r = mkt(fx, SBOOK_BUY, "1", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("51000")), 0);
    r = mkt(fx, SBOOK_BUY, "2", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    const struct sbook_position *p = sbook_position(fx->a, fx->btc);
    assert_dec(p->amount, "3");
    assert_dec(p->entry_price, "50666.66666666"); /* (50000 + 2*51000)/3, 8 decimals, toward zero */
    /* Sell 1 at 52000: realized = (52000 - 50666.66666666) * 1 */
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("52000")), 0);
    r = mkt(fx, SBOOK_SELL, "1", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_dec(p->amount, "2");
    assert_dec(p->entry_price, "50666.66666666");
    assert_dec(p->realized, "1333.33333334");
    assert_dec(sbook_account_balance(fx->a), "2333.33333334");
    /* Sell 5 at 49000: closes 2 (realized (49000-50666.66666666)*2), opens 3 short at 49000. */
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("49000")), 0);
    r = mkt(fx, SBOOK_SELL, "5", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_dec(p->amount, "-3");
    assert_dec(p->entry_price, "49000");
    /* 1333.33333334 - 3333.33333332: the entry price's 8-decimal rounding shows, exactly. */
    assert_dec(p->realized, "-1999.99999998");
    /* Buy back exactly 3 at 48000: short profit 3000, flat, entry 0. */
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("48000")), 0);
    r = mkt(fx, SBOOK_BUY, "3", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_dec(p->amount, "0");
    assert_dec(p->entry_price, "0");
    assert_dec(p->realized, "1000.00000002");
    assert_dec(sbook_account_balance(fx->a), "2000.00000002");
}

static void test_reduce_only(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o;
    /* Flat: any reduce-only is rejected. */
    struct sbook_order_req r = mkt(fx, SBOOK_SELL, "0.01", NULL);
    r.reduce_only = true;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_REDUCE_ONLY);
    struct sbook_order_req open = mkt(fx, SBOOK_BUY, "0.01", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &open, &o), SBOOK_OK);
    /* Same side would increase. */
    r.side = SBOOK_BUY;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_REDUCE_ONLY);
    /* Larger than the position would flip. */
    r.side = SBOOK_SELL;
    r.qty = D("0.011");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_REDUCE_ONLY);
    /* Reduce-only is exempt from min notional: 0.0001 BTC... use a small price instead. */
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("1000")), 0);
    r.qty = D("0.001"); /* notional 1 < 5 */
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    struct sbook_order_req plain = mkt(fx, SBOOK_SELL, "0.001", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &plain, &o), SBOOK_E_MIN_NOTIONAL);
    r.qty = D("0.009");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_dec(sbook_position(fx->a, fx->btc)->amount, "0");
}

static void test_limit_rest_fill_cancel(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o1, *o2, *o3, *o4;
    struct sbook_order_req r = lim(fx, SBOOK_BUY, "0.002", "49000", SBOOK_GTC, "L1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o1), SBOOK_OK);
    assert_int_equal(o1->status, SBOOK_ST_NEW);
    assert_true(sbook_order_is_open(o1));
    /* Same client id while L1 is open: duplicate, also on another symbol. */
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o2), SBOOK_E_DUP_CLIENT_ID);
    /* Another account may use it. */
    assert_int_equal(sbook_place(fx->b, fx->f, &r, &o2), SBOOK_OK);
    r = lim(fx, SBOOK_BUY, "0.002", "48000", SBOOK_GTC, "L2");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o3), SBOOK_OK);
    r = lim(fx, SBOOK_BUY, "0.002", "49000", SBOOK_IOC, "I1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o4), SBOOK_OK);
    assert_int_equal(o4->status, SBOOK_ST_EXPIRED);
    assert_int_equal(o4->expire_reason, 2);
    r = lim(fx, SBOOK_BUY, "0.002", "50000", SBOOK_GTX, "X1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o4), SBOOK_E_GTX_WOULD_TAKE);
    r = lim(fx, SBOOK_BUY, "0.002", "49999.9", SBOOK_GTX, "X1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o4), SBOOK_OK); /* rests as maker */
    assert_int_equal(sbook_cancel(fx->b, o4), 0);
    assert_int_equal(o4->status, SBOOK_ST_CANCELED);
    assert_int_equal(sbook_cancel(fx->b, o4), -ENOENT);

    fx->rec.n = 0;
    /* Price falls to 49000: L1 of both accounts fill at 49000 as maker; L2 stays. */
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("49000")), 0);
    assert_int_equal(o1->status, SBOOK_ST_FILLED);
    assert_int_equal(o2->status, SBOOK_ST_FILLED);
    assert_int_equal(o3->status, SBOOK_ST_NEW);
    assert_int_equal(fx->rec.n, 4);
    assert_string_equal(fx->rec.ev[0], "leader L1 TRADE FILLED 0.002@49000 z=0.002 rp=0 t=5000001 maker");
    assert_string_equal(fx->rec.ev[2], "follower L1 TRADE FILLED 0.002@49000 z=0.002 rp=0 t=5000002 maker");
    /* L1 is no longer open: its id can be reused, and queries find the newest. */
    r = lim(fx, SBOOK_SELL, "0.002", "60000", SBOOK_GTC, "L1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o4), SBOOK_OK);
    assert_ptr_equal(sbook_order_by_client(fx->a, fx->btc, "L1"), o4);
    assert_ptr_equal(sbook_order_by_id(fx->a, fx->btc, o1->order_id), o1);
    /* A marketable LIMIT fills at the current price (taker), not at its limit. */
    r = lim(fx, SBOOK_SELL, "0.001", "40000", SBOOK_GTC, "T1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o4), SBOOK_OK);
    assert_int_equal(o4->status, SBOOK_ST_FILLED);
    assert_dec(o4->avg_price, "49000");
    assert_false(o4->maker);
}

static void test_resting_reduce_only(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o, *ro1, *ro2;
    struct sbook_order_req r = mkt(fx, SBOOK_BUY, "0.01", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    r = lim(fx, SBOOK_SELL, "0.008", "51000", SBOOK_GTC, "RO1");
    r.reduce_only = true;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &ro1), SBOOK_OK);
    r = lim(fx, SBOOK_SELL, "0.008", "51000", SBOOK_GTC, "RO2");
    r.reduce_only = true;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &ro2), SBOOK_OK);
    /* Both become marketable: RO1 takes 0.008, RO2 only the 0.002 left, the rest expires. */
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("51000")), 0);
    assert_int_equal(ro1->status, SBOOK_ST_FILLED);
    assert_int_equal(ro2->status, SBOOK_ST_EXPIRED);
    assert_dec(ro2->exec_qty, "0.002");
    assert_dec(sbook_position(fx->a, fx->btc)->amount, "0");
    assert_dec(sbook_position(fx->a, fx->btc)->realized, "10"); /* 0.01 * 1000 */
}

static void test_reqlog(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o;
    struct sbook_reqlog *r1 = sbook_reqlog_add(fx->a, SBOOK_SRC_REST, 5, NULL, "BTCUSDT", "BUY", "MARKET",
                                                NULL, "0.010", NULL, NULL);
    struct sbook_order_req r = mkt(fx, SBOOK_BUY, "0.010", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    sbook_reqlog_result(r1, o, 0, NULL);
    struct sbook_reqlog *r2 = sbook_reqlog_add(fx->a, SBOOK_SRC_ADMIN, 6, "x", "NOPE", "BUY", "MARKET", NULL,
                                                "1", NULL, "true");
    sbook_reqlog_result(r2, NULL, -1121, "Invalid symbol.");
    assert_int_equal(sbook_reqlog_count(fx->a), 2);
    assert_int_equal(sbook_reqlog_count(fx->f), 0);
    assert_int_equal(sbook_reqlog_set_position_side(r2, "LONG"), 0);
    assert_string_equal(sbook_reqlog_at(fx->a, 1)->position_side, "LONG");
    assert_null(sbook_reqlog_at(fx->a, 0)->position_side);
    const struct sbook_reqlog *e = sbook_reqlog_at(fx->a, 0);
    assert_int_equal(e->seq, 1);
    assert_string_equal(e->quantity, "0.010"); /* exactly as received */
    assert_string_equal(e->client_id, o->client_id); /* generated id filled in */
    assert_ptr_equal(e->order, o);
    e = sbook_reqlog_at(fx->a, 1);
    assert_int_equal(e->seq, 2);
    assert_int_equal(e->source, SBOOK_SRC_ADMIN);
    assert_null(e->order);
    assert_int_equal(e->err_code, -1121);
    assert_string_equal(e->err_msg, "Invalid symbol.");
    assert_null(sbook_reqlog_at(fx->a, 2));
}

static void test_client_id_rule(void **state)
{
    (void)state;
    assert_true(sbook_client_id_valid("abc-DEF_123.x:y/z"));
    assert_true(sbook_client_id_valid("123456789012345678901234567890123456"));
    assert_false(sbook_client_id_valid("1234567890123456789012345678901234567"));
    assert_false(sbook_client_id_valid(""));
    assert_false(sbook_client_id_valid("a b"));
    assert_false(sbook_client_id_valid("a+b"));
    assert_false(sbook_client_id_valid("é"));
}

static void open_cb(void *ud, const struct sbook_order *o)
{
    int *n = ud;
    (*n)++;
    assert_true(sbook_order_is_open(o));
}

static void test_open_orders_leverage(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o;
    int n = 0;
    struct sbook_order_req r = lim(fx, SBOOK_BUY, "0.002", "49000", SBOOK_GTC, NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_int_equal(sbook_place(fx->b, fx->f, &r, &o), SBOOK_OK);
    sbook_open_orders(fx->b, fx->a, NULL, open_cb, &n);
    assert_int_equal(n, 2);
    n = 0;
    sbook_open_orders(fx->b, fx->a, sbook_symbol(fx->b, "ETHUSDT"), open_cb, &n);
    assert_int_equal(n, 0);
    assert_int_equal(sbook_position(fx->a, fx->btc)->leverage, 20);
    assert_int_equal(sbook_set_leverage(fx->a, fx->btc, 126), -EINVAL);
    assert_int_equal(sbook_set_leverage(fx->a, fx->btc, 5), 0);
    assert_int_equal(sbook_position(fx->a, fx->btc)->leverage, 5);
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("0")), -EINVAL);
}

static struct sbook_order_req hmkt(struct fx *fx, enum sbook_side side, enum mkt_pos_side ps, const char *qty,
                                   const char *cid)
{
    struct sbook_order_req r = mkt(fx, side, qty, cid);
    r.pos_side = ps;
    return r;
}

static void test_hedge_mode(void **state)
{
    struct fx *fx = *state;
    struct sbook_order *o;
    struct sbook_order_req r;

    /* one-way accounts take only BOTH */
    r = hmkt(fx, SBOOK_BUY, MKT_PS_LONG, "0.01", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_POS_SIDE);
    assert_int_equal(sbook_account_mode(fx->a), MKT_PM_ONE_WAY);
    assert_int_equal(sbook_set_position_mode(fx->b, fx->a, MKT_PM_ONE_WAY), SBOOK_E_MODE_SAME);
    assert_int_equal(sbook_set_position_mode(fx->b, fx->a, MKT_PM_HEDGE), SBOOK_OK);
    assert_int_equal(sbook_account_mode(fx->a), MKT_PM_HEDGE);
    assert_int_equal(sbook_account_mode(fx->f), MKT_PM_ONE_WAY); /* per account */

    /* hedge accounts must name LONG or SHORT, and may not send reduce-only */
    r = hmkt(fx, SBOOK_BUY, MKT_PS_BOTH, "0.01", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_POS_SIDE);
    r = hmkt(fx, SBOOK_SELL, MKT_PS_LONG, "0.01", NULL);
    r.reduce_only = true;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_HEDGE_REDUCE_ONLY);
    /* nothing to close yet */
    r.reduce_only = false;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_REDUCE_ONLY);
    assert_int_equal(fx->rec.n, 0);

    /* a long and a short side by side */
    r = hmkt(fx, SBOOK_BUY, MKT_PS_LONG, "0.010", "L1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_int_equal(o->pos_side, MKT_PS_LONG);
    r = hmkt(fx, SBOOK_SELL, MKT_PS_SHORT, "0.020", "S1");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_string_equal(fx->rec.ev[2], "leader ACCOUNT BTCUSDT LONG pa=0.01 ep=50000 wb=1000");
    assert_string_equal(fx->rec.ev[5], "leader ACCOUNT BTCUSDT SHORT pa=-0.02 ep=50000 wb=1000");
    assert_dec(sbook_position_side(fx->a, fx->btc, MKT_PS_LONG)->amount, "0.01");
    assert_dec(sbook_position_side(fx->a, fx->btc, MKT_PS_SHORT)->amount, "-0.02");
    assert_dec(sbook_position(fx->a, fx->btc)->amount, "0"); /* BOTH stays empty */

    /* the mode cannot change with positions */
    assert_int_equal(sbook_set_position_mode(fx->b, fx->a, MKT_PM_ONE_WAY), SBOOK_E_MODE_POSITION);

    /* SELL on LONG closes the long, never more than it holds */
    r = hmkt(fx, SBOOK_SELL, MKT_PS_LONG, "0.011", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_REDUCE_ONLY);
    /* BUY on SHORT: same for the short */
    r = hmkt(fx, SBOOK_BUY, MKT_PS_SHORT, "0.021", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_REDUCE_ONLY);

    /* at 51000: close the long with profit 10 (into the wallet), part of the short with loss 5 */
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("51000")), 0);
    fx->rec.n = 0;
    r = hmkt(fx, SBOOK_SELL, MKT_PS_LONG, "0.010", "CL");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_string_equal(fx->rec.ev[1], "leader CL TRADE FILLED 0.01@51000 z=0.01 rp=10 t=5000003 taker");
    assert_string_equal(fx->rec.ev[2], "leader ACCOUNT BTCUSDT LONG pa=0 ep=0 wb=1010");
    r = hmkt(fx, SBOOK_BUY, MKT_PS_SHORT, "0.005", "CS");
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_dec(sbook_position_side(fx->a, fx->btc, MKT_PS_SHORT)->amount, "-0.015");
    assert_dec(sbook_account_balance(fx->a), "1005");
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("100")), 0);
    r = hmkt(fx, SBOOK_BUY, MKT_PS_SHORT, "0.001", NULL); /* notional 0.1 < 5: a close, allowed */
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    r = hmkt(fx, SBOOK_BUY, MKT_PS_LONG, "0.001", NULL); /* an open: min notional applies */
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_MIN_NOTIONAL);

    /* a resting close larger than what is left is clamped when it fills */
    struct sbook_order *rest;
    r = lim(fx, SBOOK_BUY, "0.014", "90", SBOOK_GTC, "RC");
    r.pos_side = MKT_PS_SHORT;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &rest), SBOOK_OK);
    assert_int_equal(sbook_set_position_mode(fx->b, fx->a, MKT_PM_ONE_WAY), SBOOK_E_MODE_POSITION);
    r = hmkt(fx, SBOOK_BUY, MKT_PS_SHORT, "0.004", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK); /* short now -0.010 */
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("90")), 0);
    assert_int_equal(rest->status, SBOOK_ST_EXPIRED);
    assert_dec(rest->exec_qty, "0.01");
    assert_dec(sbook_position_side(fx->a, fx->btc, MKT_PS_SHORT)->amount, "0");

    /* flat, but an open order still blocks the switch */
    r = lim(fx, SBOOK_BUY, "1", "80", SBOOK_GTC, "OPEN");
    r.pos_side = MKT_PS_LONG;
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &rest), SBOOK_OK);
    assert_true(sbook_has_open_orders(fx->b, fx->a, fx->btc, MKT_PS_LONG));
    assert_false(sbook_has_open_orders(fx->b, fx->a, fx->btc, MKT_PS_SHORT));
    assert_int_equal(sbook_set_position_mode(fx->b, fx->a, MKT_PM_ONE_WAY), SBOOK_E_MODE_ORDERS);
    assert_int_equal(sbook_cancel(fx->b, rest), 0);
    assert_int_equal(sbook_set_position_mode(fx->b, fx->a, MKT_PM_ONE_WAY), SBOOK_OK);
    r = hmkt(fx, SBOOK_BUY, MKT_PS_LONG, "1", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_E_POS_SIDE);
}

static void test_leverage_and_balance_events(void **state)
{
    struct fx *fx = *state;
    struct sbook_symbol *eth = sbook_symbol(fx->b, "ETHUSDT");
    assert_int_equal(sbook_leverage(fx->a, fx->btc), 20);
    assert_int_equal(sbook_set_leverage(fx->a, eth, 3), 0); /* start-up: silent */
    assert_int_equal(fx->rec.n, 0);
    assert_int_equal(sbook_change_leverage(fx->b, fx->a, fx->btc, 50), 0);
    assert_int_equal(sbook_change_leverage(fx->b, fx->a, fx->btc, 0), -EINVAL);
    assert_int_equal(sbook_change_leverage(fx->b, fx->a, fx->btc, 126), -EINVAL);
    assert_int_equal(fx->rec.n, 1);
    assert_string_equal(fx->rec.ev[0], "leader LEVERAGE BTCUSDT 50");
    assert_int_equal(sbook_leverage(fx->a, fx->btc), 50);
    assert_int_equal(sbook_leverage(fx->a, eth), 3);
    assert_int_equal(sbook_leverage(fx->f, fx->btc), 20); /* per account */
    /* every side's record carries the symbol's leverage */
    assert_int_equal(sbook_position_side(fx->a, fx->btc, MKT_PS_SHORT)->leverage, 50);
    assert_int_equal(sbook_position(fx->a, fx->btc)->leverage, 50);

    assert_int_equal(sbook_set_balance(fx->b, fx->a, D("750.25")), 0);
    assert_string_equal(fx->rec.ev[1], "leader BALANCE wb=750.25 bc=-249.75");
    assert_dec(sbook_account_balance(fx->a), "750.25");
    assert_int_equal(sbook_set_balance(fx->b, fx->a, ((dec_t){1, 200})), -EINVAL);
    assert_int_equal(fx->rec.n, 2);
    /* realized PnL keeps landing on the adjusted wallet */
    struct sbook_order *o;
    struct sbook_order_req r = mkt(fx, SBOOK_BUY, "0.01", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_int_equal(sbook_set_price(fx->b, fx->btc, D("49000")), 0);
    r = mkt(fx, SBOOK_SELL, "0.01", NULL);
    assert_int_equal(sbook_place(fx->b, fx->a, &r, &o), SBOOK_OK);
    assert_dec(sbook_account_balance(fx->a), "740.25");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_and_tick_grid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_market_fill_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fills_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_position_average_realized_flip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reduce_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_rest_fill_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resting_reduce_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reqlog, setup, teardown),
        cmocka_unit_test(test_client_id_rule),
        cmocka_unit_test_setup_teardown(test_open_orders_leverage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hedge_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leverage_and_balance_events, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
