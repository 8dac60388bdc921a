/* Unit tests for strategy/copy_engine: sizing modes (multiplier, fixed_notional, equity_ratio),
 * reverse, the four leader x follower position-mode combinations, order types (limit_ioc
 * prices, lot filters) and dry-run. Table-driven with exact decimal expectations. */
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

#include "client_id.h"
#include "copy_engine.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NOW_MS 1700000000000LL




enum inst_id {
    I_BTC5,   /* step 0.001, min 0.001, max 1000, min notional 5, tick 0.1, price 0.1..1000000 */
    I_BTC100, /* same, min notional 100 */
    I_MKTLOT, /* LOT 0.001/0.001/1000, MARKET_LOT 0.01/0.01/120, min notional 5 */
    I_PRICE,  /* step 1, min 1, tick 0.1, price 1..100, no min notional */
    I_NOTICK, /* I_BTC5 with tick 0 */
};

static struct mkt_instrument make_inst(enum inst_id id)
{
    struct mkt_instrument i;
    memset(&i, 0, sizeof i);
    strcpy(i.symbol, "BTCUSDT");
    i.step = D("0.001");
    i.min_qty = D("0.001");
    i.max_qty = D("1000");
    i.tick = D("0.1");
    i.min_price = D("0.1");
    i.max_price = D("1000000");
    i.min_notional = D("5");
    switch (id) {
    case I_BTC5: break;
    case I_BTC100: i.min_notional = D("100"); break;
    case I_MKTLOT:
        i.mkt_step = D("0.01");
        i.mkt_min_qty = D("0.01");
        i.mkt_max_qty = D("120");
        break;
    case I_PRICE:
        i.step = D("1");
        i.min_qty = D("1");
        i.min_price = D("1");
        i.max_price = D("100");
        i.min_notional = DEC_ZERO;
        break;
    case I_NOTICK: i.tick = DEC_ZERO; break;
    }
    return i;
}

#define OPEN COPY_KIND_OPEN
#define CLOSE COPY_KIND_CLOSE
#define BUY MKT_BUY
#define SELL MKT_SELL
#define BOTH MKT_PS_BOTH
#define LONG MKT_PS_LONG
#define SHORT MKT_PS_SHORT
#define OK COPY_SKIP_NONE
#define MULT COPY_SIZING_MULTIPLIER
#define FIXED COPY_SIZING_FIXED_NOTIONAL
#define EQR COPY_SIZING_EQUITY_RATIO
#define HEDGE MKT_PM_HEDGE
#define ONEWAY MKT_PM_ONE_WAY
#define LIMIT COPY_ORDER_LIMIT_IOC
#define CARRY COPY_ADJUST_ROUNDING_CARRY

struct want {
    enum copy_kind kind;
    enum mkt_side side;
    enum mkt_pos_side ps;
    bool ro;
    const char *qty, *target;
    enum copy_skip skip;
    uint32_t adjust;
    const char *price; /* NULL = "0" */
};

/* Unset strings take the defaults in run(). */
struct mcase {
    const char *name;
    enum copy_sizing sizing;
    const char *k, *notional, *bps;
    bool reverse, dry_run;
    enum copy_order_type ot;
    enum inst_id inst;
    enum mkt_pos_side fps; /* the leader fill's position side */
    enum mkt_side side;
    const char *qty, *price, *oqty;
    bool ro;
    const char *lnet, *llong, *lshort, *leq;
    enum mkt_pos_mode fmode;
    const char *fnet, *flong, *fshort, *feq;
    int n;
    struct want w[2];
};

static const struct mcase cases[] = {
    /* ---- sizing modes (one-way to one-way, market) ---- */
    {"multiplier x2", .k = "2", .side = BUY, .qty = "0.01", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0.02", "0.02", OK}}},
    {"multiplier reverse open", .reverse = true, .side = BUY, .qty = "0.01", .n = 1,
     .w = {{OPEN, SELL, BOTH, false, "0.01", "0.01", OK}}},
    {"multiplier reverse partial close", .reverse = true, .side = SELL, .qty = "0.01", .lnet = "0.02",
     .fnet = "-0.01", .n = 1, .w = {{CLOSE, BUY, BOTH, true, "0.005", "0.005", OK}}},
    {"multiplier reverse flip", .reverse = true, .side = SELL, .qty = "0.03", .lnet = "0.01",
     .fnet = "-0.01", .n = 2,
     .w = {{CLOSE, BUY, BOTH, true, "0.01", "0.01", OK}, {OPEN, BUY, BOTH, false, "0.02", "0.02", OK}}},
    {"multiplier reverse: follower on the leader's side has nothing to close", .reverse = true,
     .side = SELL, .qty = "0.01", .lnet = "0.02", .fnet = "0.01", .n = 1,
     .w = {{CLOSE, BUY, BOTH, true, "0", "0", COPY_SKIP_NO_FOLLOWER_POSITION}}},
    {"fixed_notional whole order", .sizing = FIXED, .notional = "1000", .side = BUY, .qty = "0.1",
     .n = 1, .w = {{OPEN, BUY, BOTH, false, "0.02", "0.02", OK}}},
    {"fixed_notional pro rata fill of an order", .sizing = FIXED, .notional = "1000", .side = BUY,
     .qty = "0.03", .oqty = "0.1", .n = 1, .w = {{OPEN, BUY, BOTH, false, "0.006", "0.006", OK}}},
    {"fixed_notional non-terminating", .sizing = FIXED, .notional = "100", .side = BUY, .qty = "1",
     .price = "30000", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0.003", "0.003333333333333333", OK}}},
    {"fixed_notional order without quantity: per fill", .sizing = FIXED, .notional = "1000",
     .side = BUY, .qty = "0.05", .oqty = "0", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0.02", "0.02", OK}}},
    {"fixed_notional reverse", .sizing = FIXED, .notional = "500", .reverse = true, .side = SELL,
     .qty = "0.1", .n = 1, .w = {{OPEN, BUY, BOTH, false, "0.01", "0.01", OK}}},
    {"fixed_notional add", .sizing = FIXED, .notional = "500", .side = SELL, .qty = "0.1",
     .lnet = "-1", .fnet = "-0.05", .n = 1, .w = {{OPEN, SELL, BOTH, false, "0.01", "0.01", OK}}},
    {"fixed_notional close is a ratio close, no carry", .sizing = FIXED, .notional = "1000",
     .side = SELL, .qty = "0.03", .lnet = "0.1", .fnet = "0.02", .n = 1,
     .w = {{CLOSE, SELL, BOTH, true, "0.006", "0.006", OK}}},
    {"fixed_notional flip: open part of the order pro rata", .sizing = FIXED, .notional = "1000",
     .side = SELL, .qty = "0.15", .lnet = "0.1", .fnet = "0.02", .n = 2,
     .w = {{CLOSE, SELL, BOTH, true, "0.02", "0.02", OK},
           {OPEN, SELL, BOTH, false, "0.006", "0.006666666666666666", OK}}},
    {"fixed_notional below one step", .sizing = FIXED, .notional = "4", .side = BUY, .qty = "1",
     .n = 1, .w = {{OPEN, BUY, BOTH, false, "0", "0.00008", COPY_SKIP_ROUNDS_TO_ZERO}}},
    {"fixed_notional without a price", .sizing = FIXED, .notional = "1000", .side = BUY,
     .qty = "0.1", .price = "0", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0", "0", COPY_SKIP_NO_REFERENCE_PRICE}}},
    {"equity_ratio", .sizing = EQR, .side = BUY, .qty = "0.5", .leq = "10000", .feq = "1000", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0.05", "0.05", OK}}},
    {"equity_ratio with factor 2", .sizing = EQR, .k = "2", .side = BUY, .qty = "0.01",
     .leq = "3000", .feq = "1000", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0.006", "0.006666666666666666", OK}}},
    {"equity_ratio reverse", .sizing = EQR, .reverse = true, .side = BUY, .qty = "0.5",
     .leq = "10000", .feq = "1000", .n = 1, .w = {{OPEN, SELL, BOTH, false, "0.05", "0.05", OK}}},
    {"equity_ratio no leader equity", .sizing = EQR, .side = BUY, .qty = "0.5", .feq = "1000",
     .n = 1, .w = {{OPEN, BUY, BOTH, false, "0", "0", COPY_SKIP_NO_EQUITY}}},
    {"equity_ratio no follower equity", .sizing = EQR, .side = BUY, .qty = "0.5", .leq = "1000",
     .n = 1, .w = {{OPEN, BUY, BOTH, false, "0", "0", COPY_SKIP_NO_EQUITY}}},
    {"equity_ratio large non-terminating size", .sizing = EQR, .side = BUY, .qty = "100",
     .leq = "3000", .feq = "1000", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "33.333", "33.33333333333333333", OK}}},
    {"large ratio close: a third of 100", .sizing = FIXED, .notional = "100", .side = SELL,
     .qty = "1", .lnet = "3", .fnet = "100", .n = 1,
     .w = {{CLOSE, SELL, BOTH, true, "33.333", "33.33333333333333333", OK}}},
    {"equity_ratio close is a ratio close, no equity needed", .sizing = EQR, .side = SELL,
     .qty = "0.5", .lnet = "1", .fnet = "0.1", .n = 1,
     .w = {{CLOSE, SELL, BOTH, true, "0.05", "0.05", OK}}},

    /* ---- one-way leader -> hedge follower ---- */
    {"oneway->hedge open long", .fmode = HEDGE, .side = BUY, .qty = "0.01", .n = 1,
     .w = {{OPEN, BUY, LONG, false, "0.01", "0.01", OK}}},
    {"oneway->hedge open short", .fmode = HEDGE, .side = SELL, .qty = "0.01", .n = 1,
     .w = {{OPEN, SELL, SHORT, false, "0.01", "0.01", OK}}},
    {"oneway->hedge partial close: not reduce-only", .fmode = HEDGE, .side = SELL, .qty = "0.01",
     .lnet = "0.02", .flong = "0.02", .fshort = "0.5", .n = 1,
     .w = {{CLOSE, SELL, LONG, false, "0.01", "0.01", OK}}},
    {"oneway->hedge close short side (Binance sends it negative)", .fmode = HEDGE, .side = BUY,
     .qty = "0.02", .lnet = "-0.02", .fshort = "-0.004", .n = 1,
     .w = {{CLOSE, BUY, SHORT, false, "0.004", "0.004", OK}}},
    {"oneway->hedge flip: close long, open short", .fmode = HEDGE, .side = SELL, .qty = "0.03",
     .lnet = "0.01", .flong = "0.01", .n = 2,
     .w = {{CLOSE, SELL, LONG, false, "0.01", "0.01", OK},
           {OPEN, SELL, SHORT, false, "0.02", "0.02", OK}}},
    {"oneway->hedge reverse open", .fmode = HEDGE, .reverse = true, .side = BUY, .qty = "0.01",
     .n = 1, .w = {{OPEN, SELL, SHORT, false, "0.01", "0.01", OK}}},
    {"oneway->hedge only the other side held", .fmode = HEDGE, .side = SELL, .qty = "0.01",
     .lnet = "0.02", .fshort = "0.5", .n = 1,
     .w = {{CLOSE, SELL, LONG, false, "0", "0", COPY_SKIP_NO_FOLLOWER_POSITION}}},

    /* ---- hedge leader -> hedge follower: per position side ---- */
    {"hedge->hedge BUY LONG opens long", .fps = LONG, .fmode = HEDGE, .side = BUY, .qty = "0.01",
     .lshort = "1", .fshort = "1", .n = 1, .w = {{OPEN, BUY, LONG, false, "0.01", "0.01", OK}}},
    {"hedge->hedge SELL LONG reduces long", .fps = LONG, .fmode = HEDGE, .side = SELL,
     .qty = "0.01", .llong = "0.02", .lshort = "5", .flong = "0.02", .fshort = "5", .n = 1,
     .w = {{CLOSE, SELL, LONG, false, "0.01", "0.01", OK}}},
    {"hedge->hedge SELL LONG beyond the side: full close, never a flip", .fps = LONG,
     .fmode = HEDGE, .side = SELL, .qty = "0.05", .llong = "0.02", .flong = "0.02", .n = 1,
     .w = {{CLOSE, SELL, LONG, false, "0.02", "0.02", OK}}},
    {"hedge->hedge SELL SHORT opens short", .fps = SHORT, .fmode = HEDGE, .side = SELL,
     .qty = "0.01", .llong = "1", .lshort = "1", .flong = "1", .fshort = "1", .n = 1,
     .w = {{OPEN, SELL, SHORT, false, "0.01", "0.01", OK}}},
    {"hedge->hedge BUY SHORT reduces short", .fps = SHORT, .fmode = HEDGE, .side = BUY,
     .qty = "0.5", .lshort = "-1", .fshort = "-0.3", .n = 1,
     .w = {{CLOSE, BUY, SHORT, false, "0.15", "0.15", OK}}},
    {"hedge->hedge reducing a side we see flat", .fps = LONG, .fmode = HEDGE, .side = SELL,
     .qty = "0.01", .lshort = "1", .flong = "1", .n = 1,
     .w = {{CLOSE, SELL, LONG, false, "0", "0", COPY_SKIP_LEADER_POSITION_MISMATCH}}},
    {"hedge->hedge reverse: BUY LONG -> SELL SHORT", .fps = LONG, .fmode = HEDGE, .reverse = true,
     .side = BUY, .qty = "0.01", .n = 1, .w = {{OPEN, SELL, SHORT, false, "0.01", "0.01", OK}}},
    {"hedge->hedge reverse close: SELL LONG -> BUY SHORT", .fps = LONG, .fmode = HEDGE,
     .reverse = true, .side = SELL, .qty = "1", .llong = "2", .flong = "3", .fshort = "0.2",
     .n = 1, .w = {{CLOSE, BUY, SHORT, false, "0.1", "0.1", OK}}},

    /* ---- hedge leader -> one-way follower: the net position ---- */
    {"hedge->oneway SELL LONG while net flat opens short", .fps = LONG, .side = SELL, .qty = "0.5",
     .llong = "1", .lshort = "1", .n = 1, .w = {{OPEN, SELL, BOTH, false, "0.5", "0.5", OK}}},
    {"hedge->oneway SELL LONG reduces the net long", .fps = LONG, .side = SELL, .qty = "0.4",
     .llong = "1", .fnet = "1", .n = 1, .w = {{CLOSE, SELL, BOTH, true, "0.4", "0.4", OK}}},
    {"hedge->oneway BUY SHORT full close", .fps = SHORT, .side = BUY, .qty = "1", .lshort = "-1",
     .fnet = "-1", .n = 1, .w = {{CLOSE, BUY, BOTH, true, "1", "1", OK}}},
    {"hedge->oneway BUY LONG flips the net", .fps = LONG, .side = BUY, .qty = "0.5",
     .llong = "0.2", .lshort = "0.5", .fnet = "-0.3", .n = 2,
     .w = {{CLOSE, BUY, BOTH, true, "0.3", "0.3", OK}, {OPEN, BUY, BOTH, false, "0.2", "0.2", OK}}},
    {"hedge->oneway: o.R is ignored on hedge fills", .fps = SHORT, .side = SELL, .qty = "0.5",
     .ro = true, .n = 1, .w = {{OPEN, SELL, BOTH, false, "0.5", "0.5", OK}}},

    /* ---- order types ---- */
    {"limit_ioc buy: up by the bound, rounded down to the tick", .ot = LIMIT, .bps = "10",
     .side = BUY, .qty = "0.01", .price = "50000.3", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0.01", "0.01", OK, 0, "50050.3"}}},
    {"limit_ioc sell: down by the bound, rounded up to the tick", .ot = LIMIT, .bps = "10",
     .side = SELL, .qty = "0.01", .price = "50000.3", .n = 1,
     .w = {{OPEN, SELL, BOTH, false, "0.01", "0.01", OK, 0, "49950.3"}}},
    {"limit_ioc without bound: the leader's price", .ot = LIMIT, .side = BUY, .qty = "0.01",
     .n = 1, .w = {{OPEN, BUY, BOTH, false, "0.01", "0.01", OK, 0, "50000"}}},
    {"limit_ioc close uses the same price rule", .ot = LIMIT, .bps = "10", .side = SELL,
     .qty = "0.01", .price = "50000.3", .lnet = "0.02", .fnet = "0.02", .n = 1,
     .w = {{CLOSE, SELL, BOTH, true, "0.01", "0.01", OK, 0, "49950.3"}}},
    {"limit_ioc uses LOT_SIZE, not MARKET_LOT_SIZE", .ot = LIMIT, .inst = I_MKTLOT, .side = BUY,
     .qty = "0.015", .n = 1, .w = {{OPEN, BUY, BOTH, false, "0.015", "0.015", OK, 0, "50000"}}},
    {"market uses MARKET_LOT_SIZE", .inst = I_MKTLOT, .side = BUY, .qty = "0.015", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0.01", "0.015", OK}}},
    {"limit_ioc min notional at the limit price", .ot = LIMIT, .bps = "100", .inst = I_BTC100,
     .side = SELL, .qty = "0.002", .n = 1,
     .w = {{OPEN, SELL, BOTH, false, "0.002", "0.002", COPY_SKIP_BELOW_MIN_NOTIONAL, 0, "49500"}}},
    {"limit_ioc buy above max price comes down to it", .ot = LIMIT, .bps = "100", .inst = I_PRICE,
     .side = BUY, .qty = "1", .price = "99.5", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "1", "1", OK, 0, "100"}}},
    {"limit_ioc sell below min price goes up to it", .ot = LIMIT, .bps = "5000", .inst = I_PRICE,
     .side = SELL, .qty = "1", .price = "1.5", .n = 1,
     .w = {{OPEN, SELL, BOTH, false, "1", "1", OK, 0, "1"}}},
    {"limit_ioc buy below min price", .ot = LIMIT, .inst = I_PRICE, .side = BUY, .qty = "1",
     .price = "0.5", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0", "0", COPY_SKIP_PRICE_OUT_OF_RANGE}}},
    {"limit_ioc sell above max price", .ot = LIMIT, .inst = I_PRICE, .side = SELL, .qty = "1",
     .price = "101", .n = 1,
     .w = {{OPEN, SELL, BOTH, false, "0", "0", COPY_SKIP_PRICE_OUT_OF_RANGE}}},
    {"limit_ioc needs a tick", .ot = LIMIT, .inst = I_NOTICK, .side = BUY, .qty = "1", .n = 1,
     .w = {{OPEN, BUY, BOTH, false, "0", "0", COPY_SKIP_INVALID_INSTRUMENT}}},
    {"limit_ioc hedge close", .ot = LIMIT, .bps = "20", .fmode = HEDGE, .side = BUY, .qty = "1",
     .price = "100", .lnet = "-1", .fshort = "0.5", .n = 1,
     .w = {{CLOSE, BUY, SHORT, false, "0.5", "0.5", OK, 0, "100.2"}}},

    /* ---- dry run: the same intents, marked ---- */
    {"dry run flip", .dry_run = true, .side = SELL, .qty = "0.03", .lnet = "0.01", .fnet = "0.01",
     .n = 2,
     .w = {{CLOSE, SELL, BOTH, true, "0.01", "0.01", OK}, {OPEN, SELL, BOTH, false, "0.02", "0.02", OK}}},
};

struct env {
    struct copy_rule rule;
    struct mkt_fill fill;
    struct mkt_instrument inst;
    struct copy_fill_input in;
};

static void build(const struct mcase *c, struct env *e)
{
    memset(e, 0, sizeof *e);
    e->rule.id = "rule-m";
    e->rule.sizing = c->sizing;
    e->rule.multiplier = Dor(c->k, "1");
    e->rule.fixed_notional = Dor(c->notional, "0");
    e->rule.max_slippage_bps = Dor(c->bps, "0");
    e->rule.reverse = c->reverse;
    e->rule.dry_run = c->dry_run;
    e->rule.order_type = c->ot;
    e->inst = make_inst(c->inst);
    struct mkt_fill *f = &e->fill;
    strcpy(f->account, "leader-m");
    strcpy(f->symbol, "BTCUSDT");
    strcpy(f->trade_id, "9001");
    f->order_id[0] = '\0'; /* no coalescing in these tables */
    f->side = c->side;
    f->pos_side = c->fps;
    f->qty = D(c->qty);
    f->price = Dor(c->price, "50000");
    f->orig_qty = c->oqty != NULL ? D(c->oqty) : f->qty;
    f->cum_qty = f->qty;
    f->reduce_only = c->ro;
    f->order_done = true;
    f->trade_time_ms = NOW_MS - 10;
    e->in = (struct copy_fill_input){
        .rule = &e->rule,
        .fill = &e->fill,
        .instrument = &e->inst,
        .leader = {Dor(c->lnet, "0"), Dor(c->llong, "0"), Dor(c->lshort, "0")},
        .leader_equity = Dor(c->leq, "0"),
        .follower_mode = c->fmode,
        .follower = {Dor(c->fnet, "0"), Dor(c->flong, "0"), Dor(c->fshort, "0")},
        .follower_equity = Dor(c->feq, "0"),
        .ticker_price = f->price, /* a fresh ticker at the fill price: the slippage guard passes */
        .ticker_age_ms = 100,
        .now_ms = NOW_MS,
    };
}

static void check(const struct mcase *c, const struct copy_decision *d)
{
    char q[DEC_STR_MAX], t[DEC_STR_MAX], p[DEC_STR_MAX], a[COPY_ADJUST_STR_MAX], wa[COPY_ADJUST_STR_MAX];
    if (d->n != (size_t)c->n)
        fail_msg("%s: %zu intents, want %d", c->name, d->n, c->n);
    for (size_t k = 0; k < d->n; k++) {
        const struct copy_intent *g = &d->intents[k];
        const struct want *w = &c->w[k];
        F(g->qty, q);
        F(g->target, t);
        F(g->price, p);
        assert_true(copy_adjust_format(g->adjust, a, sizeof a) >= 0);
        assert_true(copy_adjust_format(w->adjust, wa, sizeof wa) >= 0);
        const char *wp = w->price ? w->price : "0";
        if (g->kind != w->kind || g->side != w->side || g->pos_side != w->ps ||
            g->reduce_only != w->ro || strcmp(q, w->qty) != 0 || strcmp(t, w->target) != 0 ||
            g->skip != w->skip || g->adjust != w->adjust || strcmp(p, wp) != 0 || g->leg != k)
            fail_msg("%s leg %zu: got %s %s %s ro=%d qty=%s target=%s price=%s skip=%s adj=%s; want "
                     "%s %s %s ro=%d qty=%s target=%s price=%s skip=%s adj=%s",
                     c->name, k, copy_kind_name(g->kind), g->side == BUY ? "buy" : "sell",
                     copy_pos_side_name(g->pos_side), g->reduce_only, q, t, p,
                     copy_skip_name(g->skip), a, copy_kind_name(w->kind),
                     w->side == BUY ? "buy" : "sell", copy_pos_side_name(w->ps), w->ro, w->qty,
                     w->target, wp, copy_skip_name(w->skip), wa);
        assert_int_equal(g->order_type, c->ot);
        assert_int_equal(g->dry_run, c->dry_run);
        char id[MKT_CLIENT_ID_MAX];
        assert_int_equal(client_id_make("leader-m", "BTCUSDT", "9001", "rule-m", (unsigned)k, id), 0);
        assert_string_equal(g->client_id, id);
        /* Hedge followers never get reduce-only; one-way closes always do. */
        if (c->fmode == HEDGE)
            assert_false(g->reduce_only);
        else
            assert_int_equal(g->reduce_only, g->kind == CLOSE);
    }
    assert_false(d->dropped.set);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        struct env e;
        struct copy_decision d;
        build(&cases[i], &e);
        assert_int_equal(copy_decide_fill(&e.in, NULL, &d), cases[i].n);
        check(&cases[i], &d);
    }
}

/* Dry-run intents equal the live ones in every field but the flag. */
static void test_dry_run_equals_live(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        struct env e;
        struct copy_decision live, dry;
        build(&cases[i], &e);
        e.rule.dry_run = false;
        assert_int_equal(copy_decide_fill(&e.in, NULL, &live), cases[i].n);
        e.rule.dry_run = true;
        assert_int_equal(copy_decide_fill(&e.in, NULL, &dry), cases[i].n);
        for (size_t k = 0; k < live.n; k++) {
            assert_false(live.intents[k].dry_run);
            assert_true(dry.intents[k].dry_run);
            dry.intents[k].dry_run = false;
            assert_string_equal(live.intents[k].client_id, dry.intents[k].client_id);
            assert_int_equal(dec_cmp(live.intents[k].qty, dry.intents[k].qty), 0);
            assert_int_equal(dec_cmp(live.intents[k].price, dry.intents[k].price), 0);
            assert_int_equal(live.intents[k].skip, dry.intents[k].skip);
            assert_int_equal(live.intents[k].adjust, dry.intents[k].adjust);
            assert_int_equal(live.intents[k].side, dry.intents[k].side);
            assert_int_equal(live.intents[k].pos_side, dry.intents[k].pos_side);
        }
    }
}

/* Every combination of leader mode x follower mode x reverse x fill side: a close never exceeds
 * what the follower holds on that side, and a one-way close is reduce-only and against F. */
static void test_closes_never_flip_any_mode(void **state)
{
    (void)state;
    static const char *fq[] = {"0.001", "0.007", "0.3", "1", "2.5"};
    static const char *pos[] = {"0", "0.004", "0.5", "1.3"};
    static const enum mkt_pos_side fps[] = {BOTH, LONG, SHORT};
    unsigned checked = 0;
    for (size_t a = 0; a < N_ELEM(fps); a++)
        for (int fm = 0; fm < 2; fm++)
            for (int rev = 0; rev < 2; rev++)
                for (int sd = -1; sd <= 1; sd += 2)
                    for (size_t q = 0; q < N_ELEM(fq); q++)
                        for (size_t lp = 0; lp < N_ELEM(pos); lp++)
                            for (size_t fp = 0; fp < N_ELEM(pos); fp++) {
                                struct mcase c = {.name = "grid", .k = "0.7", .reverse = rev,
                                                  .fps = fps[a], .fmode = (enum mkt_pos_mode)fm,
                                                  .side = sd > 0 ? BUY : SELL, .qty = fq[q]};
                                char neg[DEC_STR_MAX];
                                snprintf(neg, sizeof neg, "-%s", pos[lp]);
                                c.lnet = sd > 0 ? neg : pos[lp];
                                c.llong = pos[lp];
                                c.lshort = pos[(lp + 1) % N_ELEM(pos)];
                                char fneg[DEC_STR_MAX];
                                snprintf(fneg, sizeof fneg, "-%s", pos[fp]);
                                c.fnet = (sd > 0) != rev ? fneg : pos[fp];
                                c.flong = pos[fp];
                                c.fshort = pos[(fp + 2) % N_ELEM(pos)];
                                struct env e;
                                struct copy_decision d;
                                build(&c, &e);
                                int n = copy_decide_fill(&e.in, NULL, &d);
                                assert_true(n == 1 || n == 2);
                                for (size_t k = 0; k < d.n; k++) {
                                    const struct copy_intent *it = &d.intents[k];
                                    if (it->kind != CLOSE || it->skip != OK)
                                        continue;
                                    checked++;
                                    if (fm == HEDGE) {
                                        dec_t side = it->pos_side == LONG ? e.in.follower.long_size
                                                                          : e.in.follower.short_size;
                                        assert_false(it->reduce_only);
                                        assert_int_equal(it->side, it->pos_side == LONG ? SELL : BUY);
                                        assert_true(dec_cmp(it->qty, dec_abs(side)) <= 0);
                                    } else {
                                        dec_t fn = e.in.follower.net;
                                        assert_true(it->reduce_only);
                                        assert_int_equal((int)it->side, -dec_sign(fn));
                                        assert_true(dec_cmp(it->qty, dec_abs(fn)) <= 0);
                                    }
                                }
                            }
    assert_true(checked > 100); /* the grid does reach closes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_dry_run_equals_live),
        cmocka_unit_test(test_closes_never_flip_any_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
