/* Unit tests for strategy/copy_engine: the per-rule guards and limits of opens (status, symbol
 * lists, sides, stale signal, ticker and slippage, max position notional, max leverage, max qty)
 * and force_min, one case per limit and reason code, with exact decimal expectations; closes
 * pass every guard. */
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

#include "copy_engine.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NOW_MS 1700000000000LL



enum inst_id {
    I_BTC5,   /* step 0.001, min 0.001, max 1000, min notional 5 */
    I_BTC100, /* same, min notional 100 */
    I_MINQTY, /* step 0.001, min 0.005, max 1000, min notional 5 */
    I_SMALLMAX, /* step 0.001, min 0.001, max 0.004, min notional 5 */
};

static struct mkt_instrument make_inst(enum inst_id id)
{
    struct mkt_instrument i;
    memset(&i, 0, sizeof i);
    strcpy(i.symbol, "ETHUSDT");
    i.step = D("0.001");
    i.min_qty = D("0.001");
    i.max_qty = D("1000");
    i.tick = D("0.01");
    i.min_price = D("0.01");
    i.max_price = D("1000000");
    i.min_notional = D("5");
    if (id == I_BTC100)
        i.min_notional = D("100");
    if (id == I_MINQTY)
        i.min_qty = D("0.005");
    if (id == I_SMALLMAX)
        i.max_qty = D("0.004");
    return i;
}

#define OPEN COPY_KIND_OPEN
#define CLOSE COPY_KIND_CLOSE
#define BUY MKT_BUY
#define SELL MKT_SELL
#define OK COPY_SKIP_NONE
#define NO_TIME INT64_MIN

enum status { ACTIVE, PAUSED, CLOSE_ONLY };

static const char *const allow_eth[] = {"BTCUSDT", "ETHUSDT"};
static const char *const allow_btc[] = {"BTCUSDT"};
static const char *const deny_eth[] = {"ETHUSDT"};

struct want {
    enum copy_kind kind;
    enum mkt_side side;
    const char *qty, *target;
    enum copy_skip skip;
    uint32_t adjust;
};

struct lcase {
    const char *name;
    enum status status;
    const char *k;
    bool reverse, force_min;
    enum copy_sides sides;
    const char *const *allow;
    size_t n_allow;
    const char *const *deny;
    size_t n_deny;
    int64_t max_age, age; /* age: now - trade time (NO_TIME = no time at all) */
    const char *bps, *ticker;
    int64_t tage;          /* ticker age (default 100; -1 = unknown) */
    int64_t max_tage;
    const char *max_notional, *max_lev, *feq;
    enum inst_id inst;
    enum mkt_pos_mode fmode;
    enum mkt_side side;
    const char *qty, *price, *lnet, *fnet, *flong, *fshort;
    int n;
    struct want w[2];
};

#define CN COPY_ADJUST_CLAMPED_MAX_NOTIONAL
#define CL COPY_ADJUST_CLAMPED_MAX_LEVERAGE
#define CQ COPY_ADJUST_CLAMPED_MAX_QTY
#define FM COPY_ADJUST_FORCED_MIN

static const struct lcase cases[] = {
    /* ---- status ---- */
    {"paused skips opens", .status = PAUSED, .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0", "0", COPY_SKIP_RULE_PAUSED}}},
    {"paused skips closes too", .status = PAUSED, .side = SELL, .qty = "0.1", .lnet = "1",
     .fnet = "1", .n = 1, .w = {{CLOSE, SELL, "0", "0", COPY_SKIP_RULE_PAUSED}}},
    {"paused flip: both legs", .status = PAUSED, .side = SELL, .qty = "2", .lnet = "1", .fnet = "1",
     .n = 2,
     .w = {{CLOSE, SELL, "0", "0", COPY_SKIP_RULE_PAUSED}, {OPEN, SELL, "0", "0", COPY_SKIP_RULE_PAUSED}}},
    {"close_only skips opens", .status = CLOSE_ONLY, .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0", "0", COPY_SKIP_RULE_CLOSE_ONLY}}},
    {"close_only copies closes", .status = CLOSE_ONLY, .side = SELL, .qty = "0.5", .lnet = "1",
     .fnet = "1", .n = 1, .w = {{CLOSE, SELL, "0.5", "0.5", OK}}},
    {"close_only flip: close only", .status = CLOSE_ONLY, .side = SELL, .qty = "2", .lnet = "1",
     .fnet = "1", .n = 2,
     .w = {{CLOSE, SELL, "1", "1", OK}, {OPEN, SELL, "0", "0", COPY_SKIP_RULE_CLOSE_ONLY}}},
    {"invalid rule before the other guards", .k = "0", .max_age = 1, .age = 5, .side = BUY,
     .qty = "0.1", .n = 1, .w = {{OPEN, BUY, "0", "0", COPY_SKIP_INVALID_RULE}}},

    /* ---- symbol lists ---- */
    {"allow list includes the symbol", .allow = allow_eth, .n_allow = 2, .side = BUY, .qty = "0.1",
     .n = 1, .w = {{OPEN, BUY, "0.1", "0.1", OK}}},
    {"allow list without the symbol", .allow = allow_btc, .n_allow = 1, .side = BUY, .qty = "0.1",
     .n = 1, .w = {{OPEN, BUY, "0", "0", COPY_SKIP_SYMBOL_NOT_ALLOWED}}},
    {"deny wins over allow", .allow = allow_eth, .n_allow = 2, .deny = deny_eth, .n_deny = 1,
     .side = BUY, .qty = "0.1", .n = 1, .w = {{OPEN, BUY, "0", "0", COPY_SKIP_SYMBOL_NOT_ALLOWED}}},
    {"denied symbol: closes still copied", .deny = deny_eth, .n_deny = 1, .side = SELL,
     .qty = "0.5", .lnet = "1", .fnet = "0.2", .n = 1, .w = {{CLOSE, SELL, "0.1", "0.1", OK}}},

    /* ---- sides ---- */
    {"long_only blocks a short open", .sides = COPY_SIDES_LONG_ONLY, .side = SELL, .qty = "0.1",
     .n = 1, .w = {{OPEN, SELL, "0", "0", COPY_SKIP_SIDE_NOT_ALLOWED}}},
    {"long_only lets a long open", .sides = COPY_SIDES_LONG_ONLY, .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0.1", "0.1", OK}}},
    {"long_only with reverse: the follower's side counts", .sides = COPY_SIDES_LONG_ONLY,
     .reverse = true, .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, SELL, "0", "0", COPY_SKIP_SIDE_NOT_ALLOWED}}},
    {"short_only blocks a long open", .sides = COPY_SIDES_SHORT_ONLY, .side = BUY, .qty = "0.1",
     .n = 1, .w = {{OPEN, BUY, "0", "0", COPY_SKIP_SIDE_NOT_ALLOWED}}},
    {"short_only: a long close still copied", .sides = COPY_SIDES_SHORT_ONLY, .side = SELL,
     .qty = "1", .lnet = "1", .fnet = "0.3", .n = 1, .w = {{CLOSE, SELL, "0.3", "0.3", OK}}},
    {"short_only flip long->short: close and open", .sides = COPY_SIDES_SHORT_ONLY, .side = SELL,
     .qty = "2", .lnet = "1", .fnet = "1", .n = 2,
     .w = {{CLOSE, SELL, "1", "1", OK}, {OPEN, SELL, "1", "1", OK}}},

    /* ---- stale signal ---- */
    {"signal at the age bound", .max_age = 5000, .age = 5000, .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0.1", "0.1", OK}}},
    {"signal past the age bound", .max_age = 5000, .age = 5001, .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0", "0", COPY_SKIP_STALE_SIGNAL}}},
    {"signal without any time", .max_age = 5000, .age = NO_TIME, .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0", "0", COPY_SKIP_STALE_SIGNAL}}},
    {"signal from a clock ahead of ours", .max_age = 5000, .age = -60000, .side = BUY,
     .qty = "0.1", .n = 1, .w = {{OPEN, BUY, "0.1", "0.1", OK}}},
    {"stale close still copied", .max_age = 5000, .age = 600000, .side = SELL, .qty = "0.5",
     .lnet = "1", .fnet = "1", .n = 1, .w = {{CLOSE, SELL, "0.5", "0.5", OK}}},
    {"no guard: old signal copied", .age = 600000, .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0.1", "0.1", OK}}},

    /* ---- ticker and slippage (bps 10 of 2000 = 2) ---- */
    {"ticker at the bound above", .bps = "10", .ticker = "2002", .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0.1", "0.1", OK}}},
    {"ticker past the bound above", .bps = "10", .ticker = "2002.01", .side = BUY, .qty = "0.1",
     .n = 1, .w = {{OPEN, BUY, "0", "0", COPY_SKIP_SLIPPAGE}}},
    {"ticker past the bound below (symmetric)", .bps = "10", .ticker = "1997.99", .side = BUY,
     .qty = "0.1", .n = 1, .w = {{OPEN, BUY, "0", "0", COPY_SKIP_SLIPPAGE}}},
    {"ticker at the bound below", .bps = "10", .ticker = "1998", .side = SELL, .qty = "0.1", .n = 1,
     .w = {{OPEN, SELL, "0.1", "0.1", OK}}},
    {"fractional bps", .bps = "2.5", .ticker = "2000.51", .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0", "0", COPY_SKIP_SLIPPAGE}}},
    {"no ticker", .bps = "10", .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0", "0", COPY_SKIP_NO_FRESH_TICKER}}},
    {"ticker of unknown age", .bps = "10", .ticker = "2000", .tage = -1, .side = BUY, .qty = "0.1",
     .n = 1, .w = {{OPEN, BUY, "0", "0", COPY_SKIP_NO_FRESH_TICKER}}},
    {"ticker older than the default 5 s", .bps = "10", .ticker = "2000", .tage = 5001, .side = BUY,
     .qty = "0.1", .n = 1, .w = {{OPEN, BUY, "0", "0", COPY_SKIP_NO_FRESH_TICKER}}},
    {"ticker at the default age", .bps = "10", .ticker = "2000", .tage = 5000, .side = BUY,
     .qty = "0.1", .n = 1, .w = {{OPEN, BUY, "0.1", "0.1", OK}}},
    {"ticker within a custom age", .bps = "10", .ticker = "2000", .tage = 9000, .max_tage = 10000,
     .side = BUY, .qty = "0.1", .n = 1, .w = {{OPEN, BUY, "0.1", "0.1", OK}}},
    {"slippage never blocks a close", .bps = "10", .ticker = "2500", .side = SELL, .qty = "0.5",
     .lnet = "1", .fnet = "1", .n = 1, .w = {{CLOSE, SELL, "0.5", "0.5", OK}}},
    {"no ticker never blocks a close", .bps = "10", .side = SELL, .qty = "0.5", .lnet = "1",
     .fnet = "1", .n = 1, .w = {{CLOSE, SELL, "0.5", "0.5", OK}}},

    /* ---- max position notional (1000 at 2000 = 0.5) ---- */
    {"open within max notional", .max_notional = "1000", .side = BUY, .qty = "0.3", .n = 1,
     .w = {{OPEN, BUY, "0.3", "0.3", OK}}},
    {"open exactly at max notional", .max_notional = "1000", .side = BUY, .qty = "0.5", .n = 1,
     .w = {{OPEN, BUY, "0.5", "0.5", OK}}},
    {"open clamped to max notional", .max_notional = "1000", .side = BUY, .qty = "0.8", .n = 1,
     .w = {{OPEN, BUY, "0.5", "0.8", OK, CN}}},
    {"add clamped to what is left", .max_notional = "1000", .side = BUY, .qty = "0.8",
     .lnet = "0.8", .fnet = "0.4", .k = "0.5", .n = 1, .w = {{OPEN, BUY, "0.1", "0.4", OK, CN}}},
    {"add clamped, with a rounding carry", .max_notional = "1000", .side = BUY, .qty = "0.8",
     .lnet = "0.8", .fnet = "0.35", .k = "0.5", .n = 1,
     .w = {{OPEN, BUY, "0.15", "0.4", OK, CN | COPY_ADJUST_ROUNDING_CARRY}}},
    {"add at the limit: nothing fits", .max_notional = "1000", .side = BUY, .qty = "0.1",
     .lnet = "0.5", .fnet = "0.5", .n = 1,
     .w = {{OPEN, BUY, "0", "0.1", COPY_SKIP_MAX_NOTIONAL_REACHED, CN}}},
    {"add over the limit: nothing fits", .max_notional = "1000", .side = BUY, .qty = "0.1",
     .lnet = "0.7", .fnet = "0.7", .n = 1,
     .w = {{OPEN, BUY, "0", "0.1", COPY_SKIP_MAX_NOTIONAL_REACHED, CN}}},
    {"one-way open while holding the other side", .max_notional = "1000", .side = BUY,
     .qty = "0.9", .fnet = "-0.2", .n = 1, .w = {{OPEN, BUY, "0.7", "0.9", OK, CN}}},
    {"clamp below min notional", .max_notional = "1000", .inst = I_BTC100, .side = BUY,
     .qty = "0.1", .lnet = "0.46", .fnet = "0.46", .n = 1,
     .w = {{OPEN, BUY, "0.04", "0.1", COPY_SKIP_MAX_NOTIONAL_REACHED, CN}}},
    {"hedge: gross exposure counts", .max_notional = "1000", .fmode = MKT_PM_HEDGE, .side = SELL,
     .qty = "0.5", .flong = "0.2", .fshort = "0.1", .n = 1, .w = {{OPEN, SELL, "0.2", "0.5", OK, CN}}},
    {"close over the limit still copied", .max_notional = "1000", .side = SELL, .qty = "0.5",
     .lnet = "2", .fnet = "2", .n = 1, .w = {{CLOSE, SELL, "0.5", "0.5", OK}}},

    /* ---- max leverage (equity 250 x 2 = 500 at 2000 = 0.25) ---- */
    {"open within max leverage", .max_lev = "2", .feq = "250", .side = BUY, .qty = "0.2", .n = 1,
     .w = {{OPEN, BUY, "0.2", "0.2", OK}}},
    {"open clamped to max leverage", .max_lev = "2", .feq = "250", .side = BUY, .qty = "0.3",
     .n = 1, .w = {{OPEN, BUY, "0.25", "0.3", OK, CL}}},
    {"add at max leverage", .max_lev = "2", .feq = "250", .side = SELL, .qty = "0.1", .lnet = "-0.25",
     .fnet = "-0.25", .n = 1, .w = {{OPEN, SELL, "0", "0.1", COPY_SKIP_MAX_LEVERAGE_REACHED, CL}}},
    {"max leverage without equity", .max_lev = "2", .side = BUY, .qty = "0.1", .n = 1,
     .w = {{OPEN, BUY, "0.1", "0.1", COPY_SKIP_NO_EQUITY}}},
    {"fractional leverage", .max_lev = "1.5", .feq = "100", .side = BUY, .qty = "1", .n = 1,
     .w = {{OPEN, BUY, "0.075", "1", OK, CL}}},
    {"the tighter limit wins: leverage", .max_notional = "1000", .max_lev = "1", .feq = "300",
     .side = BUY, .qty = "1", .n = 1, .w = {{OPEN, BUY, "0.15", "1", OK, CL}}},
    {"the tighter limit wins: notional", .max_notional = "200", .max_lev = "1", .feq = "300",
     .side = BUY, .qty = "1", .n = 1, .w = {{OPEN, BUY, "0.1", "1", OK, CN}}},
    {"max qty tighter than the limits", .max_notional = "1000", .inst = I_SMALLMAX, .side = BUY,
     .qty = "1", .n = 1, .w = {{OPEN, BUY, "0.004", "1", OK, CQ}}},

    /* ---- force_min ---- */
    {"force_min: below min notional rounds up", .force_min = true, .inst = I_BTC100, .side = BUY,
     .qty = "0.01", .n = 1, .w = {{OPEN, BUY, "0.05", "0.01", OK, FM}}},
    {"force_min: below min qty rounds up", .force_min = true, .inst = I_MINQTY, .side = BUY,
     .qty = "0.001", .n = 1, .w = {{OPEN, BUY, "0.005", "0.001", OK, FM}}},
    {"force_min: rounds to zero still forced", .force_min = true, .k = "0.001", .side = BUY,
     .qty = "0.1", .n = 1, .w = {{OPEN, BUY, "0.003", "0.0001", OK, FM}}},
    {"without force_min: below min notional", .inst = I_BTC100, .side = BUY, .qty = "0.01",
     .n = 1, .w = {{OPEN, BUY, "0.01", "0.01", COPY_SKIP_BELOW_MIN_NOTIONAL}}},
    {"force_min never beyond max notional", .force_min = true, .inst = I_BTC100,
     .max_notional = "90", .side = BUY, .qty = "0.01", .n = 1,
     .w = {{OPEN, BUY, "0.01", "0.01", COPY_SKIP_MAX_NOTIONAL_REACHED, CN}}},
    {"force_min never beyond max leverage", .force_min = true, .inst = I_BTC100, .max_lev = "1",
     .feq = "99", .side = BUY, .qty = "0.01", .n = 1,
     .w = {{OPEN, BUY, "0.01", "0.01", COPY_SKIP_MAX_LEVERAGE_REACHED, CL}}},
    {"force_min within the limits", .force_min = true, .inst = I_BTC100, .max_notional = "100",
     .side = BUY, .qty = "0.01", .n = 1, .w = {{OPEN, BUY, "0.05", "0.01", OK, FM}}},
    {"force_min close up to the min qty", .force_min = true, .inst = I_MINQTY, .side = SELL,
     .qty = "0.5", .lnet = "1", .fnet = "0.008", .n = 1, .w = {{CLOSE, SELL, "0.005", "0.004", OK, FM}}},
    {"force_min close never beyond the position", .force_min = true, .inst = I_MINQTY,
     .side = SELL, .qty = "1", .lnet = "1", .fnet = "0.004", .n = 1,
     .w = {{CLOSE, SELL, "0.004", "0.004", COPY_SKIP_BELOW_MIN_QTY}}},
};

struct env {
    struct copy_rule rule;
    struct mkt_fill fill;
    struct mkt_instrument inst;
    struct copy_fill_input in;
    struct copy_state st;
};

static void build(const struct lcase *c, struct env *e)
{
    memset(e, 0, sizeof *e);
    struct copy_rule *r = &e->rule;
    r->id = "rule-l";
    r->multiplier = Dor(c->k, "1");
    r->reverse = c->reverse;
    r->force_min = c->force_min;
    r->sides = c->sides;
    r->allow_symbols = c->allow;
    r->n_allow = c->n_allow;
    r->deny_symbols = c->deny;
    r->n_deny = c->n_deny;
    r->max_signal_age_ms = c->max_age;
    r->max_slippage_bps = Dor(c->bps, "0");
    r->max_ticker_age_ms = c->max_tage;
    r->max_position_notional = Dor(c->max_notional, "0");
    r->max_leverage = Dor(c->max_lev, "0");
    e->inst = make_inst(c->inst);
    struct mkt_fill *f = &e->fill;
    strcpy(f->account, "leader-l");
    strcpy(f->symbol, "ETHUSDT");
    strcpy(f->trade_id, "42");
    f->side = c->side;
    f->qty = D(c->qty);
    f->price = Dor(c->price, "2000");
    f->orig_qty = f->qty;
    f->cum_qty = f->qty;
    f->order_done = true;
    f->trade_time_ms = c->age == NO_TIME ? 0 : NOW_MS - c->age;
    f->event_time_ms = c->age == NO_TIME ? 0 : f->trade_time_ms;
    copy_state_init(&e->st, NULL, 0);
    copy_state_set_paused(&e->st, c->status == PAUSED);
    e->st.stopped = c->status == CLOSE_ONLY;
    e->in = (struct copy_fill_input){
        .rule = r,
        .fill = f,
        .instrument = &e->inst,
        .leader = {.net = Dor(c->lnet, "0")},
        .follower_mode = c->fmode,
        .follower = {Dor(c->fnet, "0"), Dor(c->flong, "0"), Dor(c->fshort, "0")},
        .follower_equity = Dor(c->feq, "0"),
        .ticker_price = Dor(c->ticker, "0"),
        .ticker_age_ms = c->tage != 0 ? c->tage : 100,
        .now_ms = NOW_MS,
    };
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        const struct lcase *c = &cases[i];
        struct env e;
        struct copy_decision d;
        build(c, &e);
        int n = copy_decide_fill(&e.in, &e.st, &d);
        if (n != c->n)
            fail_msg("%s: %d intents, want %d", c->name, n, c->n);
        for (size_t k = 0; k < d.n; k++) {
            const struct copy_intent *g = &d.intents[k];
            const struct want *w = &c->w[k];
            char q[DEC_STR_MAX], t[DEC_STR_MAX], a[COPY_ADJUST_STR_MAX], wa[COPY_ADJUST_STR_MAX];
            assert_true(dec_format(g->qty, q, sizeof q) > 0);
            assert_true(dec_format(g->target, t, sizeof t) > 0);
            assert_true(copy_adjust_format(g->adjust, a, sizeof a) >= 0);
            assert_true(copy_adjust_format(w->adjust, wa, sizeof wa) >= 0);
            if (g->kind != w->kind || g->side != w->side || strcmp(q, w->qty) != 0 ||
                strcmp(t, w->target) != 0 || g->skip != w->skip || g->adjust != w->adjust)
                fail_msg("%s leg %zu: got %s %s qty=%s target=%s skip=%s adj=%s; want %s %s "
                         "qty=%s target=%s skip=%s adj=%s",
                         c->name, k, copy_kind_name(g->kind), g->side == BUY ? "buy" : "sell", q, t,
                         copy_skip_name(g->skip), a, copy_kind_name(w->kind),
                         w->side == BUY ? "buy" : "sell", w->qty, w->target,
                         copy_skip_name(w->skip), wa);
            /* Sent opens never breach the limits at the reference price. */
            if (g->kind == OPEN && g->skip == OK) {
                dec_t e0 = g->side == BUY ? e.in.follower.net : dec_neg(e.in.follower.net), after;
                if (e.in.follower_mode == MKT_PM_HEDGE)
                    assert_int_equal(dec_add(e.in.follower.long_size, e.in.follower.short_size, &e0), 0);
                assert_int_equal(dec_add(e0, g->qty, &after), 0);
                if (dec_sign(e.rule.max_position_notional) > 0)
                    assert_true(dec_cmp_mul(after, e.fill.price, e.rule.max_position_notional) <= 0);
                if (dec_sign(e.rule.max_leverage) > 0) {
                    dec_t lim;
                    assert_int_equal(dec_mul(e.in.follower_equity, e.rule.max_leverage, &lim), 0);
                    assert_true(dec_cmp_mul(after, e.fill.price, lim) <= 0);
                }
            }
        }
    }
}

/* The guards run in the documented order: with every guard failing, the first one names it. */
static void test_gate_order(void **state)
{
    (void)state;
    struct lcase c = {.name = "all", .status = CLOSE_ONLY, .allow = allow_btc, .n_allow = 1,
                      .sides = COPY_SIDES_SHORT_ONLY, .max_age = 10, .age = 100, .bps = "1",
                      .max_notional = "1", .side = BUY, .qty = "1"};
    static const enum copy_skip order[] = {
        COPY_SKIP_RULE_CLOSE_ONLY, COPY_SKIP_SYMBOL_NOT_ALLOWED, COPY_SKIP_SIDE_NOT_ALLOWED,
        COPY_SKIP_STALE_SIGNAL, COPY_SKIP_NO_FRESH_TICKER, COPY_SKIP_MAX_NOTIONAL_REACHED};
    for (size_t i = 0; i < N_ELEM(order); i++) {
        struct env e;
        struct copy_decision d;
        build(&c, &e);
        assert_int_equal(copy_decide_fill(&e.in, &e.st, &d), 1);
        if (d.intents[0].skip != order[i])
            fail_msg("step %zu: %s, want %s", i, copy_skip_name(d.intents[0].skip),
                     copy_skip_name(order[i]));
        /* Clear that guard for the next round. */
        switch (i) {
        case 0: c.status = ACTIVE; break;
        case 1: c.n_allow = 0; break;
        case 2: c.sides = COPY_SIDES_BOTH; break;
        case 3: c.max_age = 0; break;
        case 4: c.bps = NULL; break;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_gate_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
