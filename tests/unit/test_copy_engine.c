/* Unit tests for strategy/copy_engine: the skeleton's plain multiplier rules (one-way, market,
 * no state) through both copy_decide_fill and the copy_decide compatibility wrapper: exact
 * sizing, skips, closes, flips, client ids, invalid inputs, names. The other modes and limits
 * are in test_copy_modes.c, test_copy_limits.c and test_copy_state.c. */
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


/* ---- instruments --------------------------------------------------------------------------- */

enum inst_id {
    I_BTC5,     /* step 0.001, min 0.001, max 1000, min notional 5 */
    I_BTC100,   /* same, min notional 100 */
    I_MKTLOT,   /* LOT 0.001/0.001/1000, MARKET_LOT 0.01/0.01/120, min notional 5 */
    I_COIN,     /* step 1, min 1, no max, no min notional */
    I_MINQTY,   /* step 0.001, min 0.005, max 1000, min notional 5 */
    I_BROKEN,   /* step 0 */
    I__COUNT
};

struct inst_text {
    const char *step, *min, *max, *mstep, *mmin, *mmax, *notional;
};

static const struct inst_text inst_text[I__COUNT] = {
    [I_BTC5] = {"0.001", "0.001", "1000", "0", "0", "0", "5"},
    [I_BTC100] = {"0.001", "0.001", "1000", "0", "0", "0", "100"},
    [I_MKTLOT] = {"0.001", "0.001", "1000", "0.01", "0.01", "120", "5"},
    [I_COIN] = {"1", "1", "0", "0", "0", "0", "0"},
    [I_MINQTY] = {"0.001", "0.005", "1000", "0", "0", "0", "5"},
    [I_BROKEN] = {"0", "0.001", "1000", "0", "0", "0", "5"},
};

static struct mkt_instrument make_inst(enum inst_id id)
{
    const struct inst_text *t = &inst_text[id];
    struct mkt_instrument i;
    memset(&i, 0, sizeof i);
    strcpy(i.symbol, "BTCUSDT");
    i.step = D(t->step);
    i.min_qty = D(t->min);
    i.max_qty = D(t->max);
    i.mkt_step = D(t->mstep);
    i.mkt_min_qty = D(t->mmin);
    i.mkt_max_qty = D(t->mmax);
    i.tick = D("0.1");
    i.min_price = D("0.1");
    i.max_price = D("1000000");
    i.min_notional = D(t->notional);
    return i;
}

static struct mkt_fill make_fill(enum mkt_side side, const char *qty, const char *price, bool ro)
{
    struct mkt_fill f;
    memset(&f, 0, sizeof f);
    strcpy(f.account, "leader-1");
    strcpy(f.symbol, "BTCUSDT");
    strcpy(f.trade_id, "5001");
    strcpy(f.order_id, "77");
    f.side = side;
    f.qty = D(qty);
    f.price = D(price);
    f.cum_qty = f.qty;
    f.orig_qty = f.qty;
    f.reduce_only = ro;
    return f;
}

/* ---- the table ----------------------------------------------------------------------------- */

#define OPEN COPY_KIND_OPEN
#define CLOSE COPY_KIND_CLOSE
#define BUY MKT_BUY
#define SELL MKT_SELL
#define OK COPY_SKIP_NONE
#define ZERO COPY_SKIP_ROUNDS_TO_ZERO
#define MINQ COPY_SKIP_BELOW_MIN_QTY
#define MINN COPY_SKIP_BELOW_MIN_NOTIONAL
#define NOPOS COPY_SKIP_NO_FOLLOWER_POSITION
#define NA COPY_ADJUST_NONE
#define CLMAX COPY_ADJUST_CLAMPED_MAX_QTY

struct want {
    enum copy_kind kind;
    enum mkt_side side;
    bool reduce_only;
    const char *qty, *target;
    enum copy_skip skip;
    uint32_t adjust;
};

struct ce_case {
    const char *name;
    enum inst_id inst;
    const char *mult;
    enum mkt_side side;
    const char *fill_qty, *price;
    bool fill_ro;
    const char *lpos, *fpos; /* signed positions: leader before the fill, follower live */
    int n;
    struct want w[2];
};

static const struct ce_case cases[] = {
    /* opens and adds */
    {"open x1", I_BTC5, "1", BUY, "0.01", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.01", "0.01", OK, NA}}},
    {"open x0.5 rounds down", I_BTC5, "0.5", BUY, "0.015", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.007", "0.0075", OK, NA}}},
    {"open x0.013", I_BTC5, "0.013", BUY, "1", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.013", "0.013", OK, NA}}},
    {"open x0.013 of 1.234", I_BTC5, "0.013", BUY, "1.234", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.016", "0.016042", OK, NA}}},
    {"open x0.013 rounds to zero", I_BTC5, "0.013", BUY, "0.05", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0", "0.00065", ZERO, NA}}},
    {"add long x0.5", I_BTC5, "0.5", BUY, "0.02", "50000", false, "0.01", "0.005", 1,
     {{OPEN, BUY, false, "0.01", "0.01", OK, NA}}},
    {"open short x0.5", I_BTC5, "0.5", SELL, "0.2", "50000", false, "0", "0", 1,
     {{OPEN, SELL, false, "0.1", "0.1", OK, NA}}},
    {"add short x1", I_BTC5, "1", SELL, "0.1", "50000", false, "-0.2", "-0.2", 1,
     {{OPEN, SELL, false, "0.1", "0.1", OK, NA}}},
    {"open below min notional 5", I_BTC5, "1", BUY, "0.04", "100", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.04", "0.04", MINN, NA}}},
    {"open at min notional 5 exactly", I_BTC5, "1", BUY, "0.05", "100", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.05", "0.05", OK, NA}}},
    {"open below min notional 100", I_BTC100, "1", BUY, "0.001", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.001", "0.001", MINN, NA}}},
    {"open at min notional 100", I_BTC100, "1", BUY, "0.002", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.002", "0.002", OK, NA}}},
    {"open just below 100 by a tick", I_BTC100, "1", BUY, "0.002", "49999.9", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.002", "0.002", MINN, NA}}},
    {"open x0.013 below notional 100", I_BTC100, "0.013", BUY, "0.1", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.001", "0.0013", MINN, NA}}},
    {"open below min qty", I_MINQTY, "1", BUY, "0.004", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.004", "0.004", MINQ, NA}}},
    {"open at min qty", I_MINQTY, "1", BUY, "0.005", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.005", "0.005", OK, NA}}},
    {"open clamped to LOT max", I_BTC5, "1", BUY, "2000", "10", false, "0", "0", 1,
     {{OPEN, BUY, false, "1000", "2000", OK, CLMAX}}},
    {"open clamped to MARKET_LOT max", I_MKTLOT, "2", BUY, "100", "10", false, "0", "0", 1,
     {{OPEN, BUY, false, "120", "200", OK, CLMAX}}},
    {"open uses MARKET_LOT step", I_MKTLOT, "1", BUY, "0.015", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.01", "0.015", OK, NA}}},
    {"open below MARKET_LOT step", I_MKTLOT, "1", BUY, "0.009", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0", "0.009", ZERO, NA}}},
    {"open no ref price", I_BTC5, "1", BUY, "0.01", "0", false, "0", "0", 1,
     {{OPEN, BUY, false, "0.01", "0.01", COPY_SKIP_NO_REFERENCE_PRICE, NA}}},
    {"open step 1 no notional", I_COIN, "1", BUY, "2.9", "0", false, "0", "0", 1,
     {{OPEN, BUY, false, "2", "2.9", OK, NA}}},
    {"open step 1 unlimited max", I_COIN, "3", SELL, "1000000", "1", false, "0", "0", 1,
     {{OPEN, SELL, false, "3000000", "3000000", OK, NA}}},
    {"open size out of range", I_COIN, "1000000000", BUY, "10000000000", "1", false, "0", "0", 1,
     {{OPEN, BUY, false, "0", "0", COPY_SKIP_SIZE_OUT_OF_RANGE, NA}}},
    {"open broken instrument", I_BROKEN, "1", BUY, "0.01", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0", "0", COPY_SKIP_INVALID_INSTRUMENT, NA}}},
    {"open invalid multiplier", I_BTC5, "0", BUY, "0.01", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0", "0", COPY_SKIP_INVALID_RULE, NA}}},
    {"open negative multiplier", I_BTC5, "-1", BUY, "0.01", "50000", false, "0", "0", 1,
     {{OPEN, BUY, false, "0", "0", COPY_SKIP_INVALID_RULE, NA}}},

    /* closes */
    {"partial close 50%", I_BTC5, "0.5", SELL, "0.01", "50000", false, "0.02", "0.007", 1,
     {{CLOSE, SELL, true, "0.003", "0.0035", OK, NA}}},
    {"partial close 1/3", I_BTC5, "1", SELL, "0.1", "50000", false, "0.3", "0.01", 1,
     {{CLOSE, SELL, true, "0.003", "0.003333333333333333", OK, NA}}},
    /* Rounding carry: 0.00325 rounds down to 0.003, but closing 0.004 leaves 0.009 =
     * floor(0.75 x 0.013), the follower's target, where 0.003 would leave it above. */
    {"partial close of short", I_BTC5, "0.013", BUY, "0.25", "50000", false, "-1", "-0.013", 1,
     {{CLOSE, BUY, true, "0.004", "0.00325", OK, COPY_ADJUST_ROUNDING_CARRY}}},
    {"partial close of short, no carry at target", I_BTC5, "0.013", BUY, "0.25", "50000", false,
     "-1", "-0.012", 1, {{CLOSE, BUY, true, "0.003", "0.003", OK, NA}}},
    {"add with rounding carry", I_BTC5, "0.5", BUY, "0.015", "50000", false, "0.015", "0.007", 1,
     {{OPEN, BUY, false, "0.008", "0.0075", OK, COPY_ADJUST_ROUNDING_CARRY}}},
    {"add without carry when follower at target", I_BTC5, "0.5", BUY, "0.015", "50000", false,
     "0.015", "0.008", 1, {{OPEN, BUY, false, "0.007", "0.0075", OK, NA}}},
    {"full close", I_BTC5, "0.5", SELL, "0.02", "50000", false, "0.02", "0.007", 1,
     {{CLOSE, SELL, true, "0.007", "0.007", OK, NA}}},
    {"full close short", I_BTC5, "0.013", BUY, "1", "50000", false, "-1", "-0.013", 1,
     {{CLOSE, BUY, true, "0.013", "0.013", OK, NA}}},
    {"full close ignores multiplier", I_BTC5, "0.5", SELL, "1", "50000", false, "1", "3.333", 1,
     {{CLOSE, SELL, true, "3.333", "3.333", OK, NA}}},
    {"full close exempt from min notional", I_BTC100, "1", SELL, "0.02", "50000", false, "0.02",
     "0.001", 1, {{CLOSE, SELL, true, "0.001", "0.001", OK, NA}}},
    {"partial close exempt from min notional", I_BTC100, "1", SELL, "0.01", "50000", false, "0.02",
     "0.002", 1, {{CLOSE, SELL, true, "0.001", "0.001", OK, NA}}},
    {"full close off-grid position", I_BTC5, "1", SELL, "1", "50000", false, "1", "0.0075", 1,
     {{CLOSE, SELL, true, "0.007", "0.0075", OK, NA}}},
    {"close rounds to zero", I_BTC5, "1", SELL, "0.1", "50000", false, "1", "0.005", 1,
     {{CLOSE, SELL, true, "0", "0.0005", ZERO, NA}}},
    {"close below min qty", I_MINQTY, "1", SELL, "0.5", "50000", false, "1", "0.008", 1,
     {{CLOSE, SELL, true, "0.004", "0.004", MINQ, NA}}},
    {"close follower flat", I_BTC5, "1", SELL, "0.5", "50000", false, "1", "0", 1,
     {{CLOSE, SELL, true, "0", "0", NOPOS, NA}}},
    {"close follower on other side", I_BTC5, "1", SELL, "0.5", "50000", false, "1", "-0.5", 1,
     {{CLOSE, SELL, true, "0", "0", NOPOS, NA}}},
    {"close short follower long", I_BTC5, "1", BUY, "1", "50000", false, "-1", "0.5", 1,
     {{CLOSE, BUY, true, "0", "0", NOPOS, NA}}},
    {"full close clamped to MARKET_LOT max", I_MKTLOT, "1", SELL, "1", "50000", false, "1", "500",
     1, {{CLOSE, SELL, true, "120", "500", OK, CLMAX}}},
    {"close broken instrument", I_BROKEN, "1", SELL, "1", "50000", false, "1", "1", 1,
     {{CLOSE, SELL, true, "0", "0", COPY_SKIP_INVALID_INSTRUMENT, NA}}},
    {"close with invalid multiplier still closes", I_BTC5, "0", SELL, "0.5", "50000", false, "1",
     "0.2", 1, {{CLOSE, SELL, true, "0.1", "0.1", OK, NA}}},
    {"reduce-only close larger than L closes all, no flip", I_BTC5, "1", SELL, "0.03", "50000",
     true, "0.01", "0.005", 1, {{CLOSE, SELL, true, "0.005", "0.005", OK, NA}}},
    {"reduce-only fill from flat: stale leader position", I_BTC5, "1", SELL, "0.03", "50000", true,
     "0", "0.005", 1,
     {{CLOSE, SELL, true, "0", "0", COPY_SKIP_LEADER_POSITION_MISMATCH, NA}}},
    {"reduce-only fill adding to L: stale leader position", I_BTC5, "1", BUY, "0.03", "50000",
     true, "0.5", "0.005", 1,
     {{CLOSE, BUY, true, "0", "0", COPY_SKIP_LEADER_POSITION_MISMATCH, NA}}},

    /* flips */
    {"flip long to short x0.5", I_BTC5, "0.5", SELL, "0.03", "50000", false, "0.01", "0.005", 2,
     {{CLOSE, SELL, true, "0.005", "0.005", OK, NA}, {OPEN, SELL, false, "0.01", "0.01", OK, NA}}},
    {"flip short to long x0.013", I_BTC5, "0.013", BUY, "3", "50000", false, "-1", "-0.013", 2,
     {{CLOSE, BUY, true, "0.013", "0.013", OK, NA}, {OPEN, BUY, false, "0.026", "0.026", OK, NA}}},
    {"flip with follower flat", I_BTC5, "0.5", SELL, "0.03", "50000", false, "0.01", "0", 2,
     {{CLOSE, SELL, true, "0", "0", NOPOS, NA}, {OPEN, SELL, false, "0.01", "0.01", OK, NA}}},
    {"flip open leg below notional", I_BTC100, "1", SELL, "0.011", "50000", false, "0.01", "0.01",
     2,
     {{CLOSE, SELL, true, "0.01", "0.01", OK, NA}, {OPEN, SELL, false, "0.001", "0.001", MINN, NA}}},
    {"flip open leg rounds to zero", I_BTC5, "0.5", SELL, "0.011", "50000", false, "0.01", "0.01",
     2,
     {{CLOSE, SELL, true, "0.01", "0.01", OK, NA}, {OPEN, SELL, false, "0", "0.0005", ZERO, NA}}},
    {"flip with invalid multiplier closes only", I_BTC5, "0", SELL, "0.03", "50000", false, "0.01",
     "0.01", 2,
     {{CLOSE, SELL, true, "0.01", "0.01", OK, NA},
      {OPEN, SELL, false, "0", "0", COPY_SKIP_INVALID_RULE, NA}}},
};

static bool dec_same(dec_t a, dec_t b)
{
    return a.m == b.m && a.scale == b.scale;
}

/* Field by field: struct padding is not part of a value. */
static bool intent_same(const struct copy_intent *a, const struct copy_intent *b)
{
    return strcmp(a->client_id, b->client_id) == 0 && a->leg == b->leg && a->kind == b->kind &&
           a->side == b->side && a->pos_side == b->pos_side && a->reduce_only == b->reduce_only &&
           a->order_type == b->order_type && dec_same(a->price, b->price) &&
           dec_same(a->qty, b->qty) && dec_same(a->target, b->target) && a->skip == b->skip &&
           a->adjust == b->adjust && a->dry_run == b->dry_run;
}

static void check_intent(const struct ce_case *c, size_t k, const struct copy_intent *got,
                         const struct want *w)
{
    char q[DEC_STR_MAX], t[DEC_STR_MAX], ga[COPY_ADJUST_STR_MAX], wa[COPY_ADJUST_STR_MAX];
    assert_true(dec_format(got->qty, q, sizeof q) > 0);
    assert_true(dec_format(got->target, t, sizeof t) > 0);
    assert_true(copy_adjust_format(got->adjust, ga, sizeof ga) >= 0);
    assert_true(copy_adjust_format(w->adjust, wa, sizeof wa) >= 0);
    if (got->kind != w->kind || got->side != w->side || got->reduce_only != w->reduce_only ||
        strcmp(q, w->qty) != 0 || strcmp(t, w->target) != 0 || got->skip != w->skip ||
        got->adjust != w->adjust || got->leg != k)
        fail_msg("%s leg %zu: got %s %s ro=%d qty=%s target=%s skip=%s adjust=%s leg=%u; "
                 "want %s %s ro=%d qty=%s target=%s skip=%s adjust=%s",
                 c->name, k, copy_kind_name(got->kind), got->side == MKT_BUY ? "buy" : "sell",
                 got->reduce_only, q, t, copy_skip_name(got->skip), ga, got->leg,
                 copy_kind_name(w->kind), w->side == MKT_BUY ? "buy" : "sell", w->reduce_only,
                 w->qty, w->target, copy_skip_name(w->skip), wa);
    /* The skeleton's rules are one-way market orders, live. */
    assert_int_equal(got->pos_side, MKT_PS_BOTH);
    assert_int_equal(got->order_type, COPY_ORDER_MARKET);
    assert_true(dec_is_zero(got->price));
    assert_false(got->dry_run);
    char id[MKT_CLIENT_ID_MAX];
    assert_int_equal(client_id_make("leader-1", "BTCUSDT", "5001", "rule-7", (unsigned)k, id), 0);
    assert_string_equal(got->client_id, id);
}

static void run_case(const struct ce_case *c, struct copy_intent out[COPY_MAX_INTENTS])
{
    struct copy_rule rule = {.id = "rule-7", .sizing = COPY_SIZING_MULTIPLIER, .multiplier = D(c->mult)};
    struct mkt_fill fill = make_fill(c->side, c->fill_qty, c->price, c->fill_ro);
    struct mkt_instrument inst = make_inst(c->inst);
    struct copy_input in = {
        .rule = &rule,
        .fill = &fill,
        .instrument = &inst,
        .leader_pos_before = D(c->lpos),
        .follower_pos = D(c->fpos),
        .ref_price = fill.price,
    };
    memset(out, 0xA5, sizeof(struct copy_intent) * COPY_MAX_INTENTS);
    int n = copy_decide(&in, out);
    if (n != c->n)
        fail_msg("%s: %d intents, want %d", c->name, n, c->n);

    /* The same decision through the full API (one-way, no state): byte-identical intents. */
    struct copy_fill_input fi = {
        .rule = &rule,
        .fill = &fill,
        .instrument = &inst,
        .leader = {.net = D(c->lpos)},
        .follower_mode = MKT_PM_ONE_WAY,
        .follower = {.net = D(c->fpos)},
        .ticker_age_ms = -1,
    };
    struct copy_decision d;
    assert_int_equal(copy_decide_fill(&fi, NULL, &d), n);
    assert_int_equal(d.n, (size_t)n);
    assert_false(d.dropped.set);
    for (int k = 0; k < n; k++)
        assert_true(intent_same(&d.intents[k], &out[k]));
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        const struct ce_case *c = &cases[i];
        struct copy_intent out[COPY_MAX_INTENTS];
        run_case(c, out);
        for (int k = 0; k < c->n; k++) {
            check_intent(c, (size_t)k, &out[k], &c->w[k]);
            /* Invariants of every intent that would be sent. */
            if (out[k].skip == COPY_SKIP_NONE) {
                assert_true(dec_sign(out[k].qty) > 0);
                assert_int_equal(out[k].reduce_only, out[k].kind == COPY_KIND_CLOSE);
            }
        }
        if (c->n == 2)
            assert_string_not_equal(out[0].client_id, out[1].client_id);
    }
}

/* Sent closes never exceed the follower position and never flip it, over a grid of inputs. */
static void test_close_never_exceeds_position(void **state)
{
    (void)state;
    static const char *lpos[] = {"0.001", "0.01", "0.3", "1", "7.777", "1000"};
    static const char *fpos[] = {"0.001", "0.002", "0.0075", "0.013", "1", "3.333", "999.999"};
    static const char *fq[] = {"0.001", "0.005", "0.01", "0.1", "0.3", "1", "7.777", "2000"};
    static const enum inst_id insts[] = {I_BTC5, I_MKTLOT, I_MINQTY};
    for (size_t a = 0; a < N_ELEM(lpos); a++)
        for (size_t b = 0; b < N_ELEM(fpos); b++)
            for (size_t q = 0; q < N_ELEM(fq); q++)
                for (size_t i = 0; i < N_ELEM(insts); i++)
                    for (int sgn = -1; sgn <= 1; sgn += 2) {
                        struct ce_case c = {.name = "grid", .inst = insts[i], .mult = "0.5",
                                            .side = sgn > 0 ? SELL : BUY, .fill_qty = fq[q],
                                            .price = "100", .lpos = lpos[a], .fpos = fpos[b]};
                        struct mkt_fill fill = make_fill(c.side, fq[q], "100", false);
                        struct mkt_instrument inst = make_inst(insts[i]);
                        struct copy_rule rule = {.id = "r", .multiplier = D("0.5")};
                        dec_t L = D(lpos[a]), F = D(fpos[b]);
                        if (sgn < 0) {
                            L = dec_neg(L);
                            F = dec_neg(F);
                        }
                        struct copy_input in = {&rule, &fill, &inst, L, F, fill.price};
                        struct copy_intent out[COPY_MAX_INTENTS];
                        int n = copy_decide(&in, out);
                        assert_true(n == 1 || n == 2);
                        assert_int_equal(out[0].kind, COPY_KIND_CLOSE);
                        assert_true(out[0].reduce_only);
                        assert_int_equal((int)out[0].side, -dec_sign(F));
                        assert_true(dec_cmp(out[0].qty, dec_abs(F)) <= 0);
                        dec_t step = dec_sign(inst.mkt_step) > 0 ? inst.mkt_step : inst.step;
                        assert_true(dec_is_multiple(out[0].qty, step));
                        /* Flip iff the fill exceeds the leader position. */
                        assert_int_equal(n, dec_cmp(fill.qty, dec_abs(L)) > 0 ? 2 : 1);
                        /* Full close iff the leader closed all: then it sends |F| floored to
                         * the step unless the max qty clamps it. */
                        if (n == 2 || dec_cmp(fill.qty, dec_abs(L)) == 0) {
                            dec_t want;
                            assert_int_equal(dec_round_down(dec_abs(F), step, &want), 0);
                            if (out[0].adjust == COPY_ADJUST_NONE)
                                assert_int_equal(dec_cmp(out[0].qty, want), 0);
                        }
                    }
}

static void test_client_ids(void **state)
{
    (void)state;
    struct copy_rule r1 = {.id = "rule-1", .multiplier = D("1")};
    struct copy_rule r2 = {.id = "rule-2", .multiplier = D("1")};
    struct mkt_fill fill = make_fill(SELL, "0.03", "50000", false);
    struct mkt_instrument inst = make_inst(I_BTC5);
    struct copy_input in = {&r1, &fill, &inst, D("0.01"), D("0.01"), fill.price};
    struct copy_intent a[COPY_MAX_INTENTS], b[COPY_MAX_INTENTS], c[COPY_MAX_INTENTS];
    assert_int_equal(copy_decide(&in, a), 2);
    assert_int_equal(copy_decide(&in, b), 2); /* deterministic */
    assert_string_equal(a[0].client_id, b[0].client_id);
    assert_string_equal(a[1].client_id, b[1].client_id);
    assert_string_not_equal(a[0].client_id, a[1].client_id);
    assert_true(client_id_valid(a[0].client_id));
    unsigned leg;
    assert_true(client_id_is_ours(a[1].client_id, &leg));
    assert_int_equal(leg, 1);
    in.rule = &r2;
    assert_int_equal(copy_decide(&in, c), 2);
    assert_string_not_equal(a[0].client_id, c[0].client_id);
    assert_string_not_equal(a[1].client_id, c[1].client_id);
    /* Another trade of the same order: a different id. */
    in.rule = &r1;
    strcpy(fill.trade_id, "5002");
    assert_int_equal(copy_decide(&in, c), 2);
    assert_string_not_equal(a[0].client_id, c[0].client_id);
    /* The positions do not enter the id: the same decision key after a restart even if
     * positions moved in between. */
    strcpy(fill.trade_id, "5001");
    in.follower_pos = D("0.5");
    assert_int_equal(copy_decide(&in, c), 2);
    assert_string_equal(a[0].client_id, c[0].client_id);
}

static void test_invalid_inputs(void **state)
{
    (void)state;
    struct copy_rule rule = {.id = "r", .multiplier = D("1")};
    struct mkt_fill fill = make_fill(BUY, "1", "100", false);
    struct mkt_instrument inst = make_inst(I_BTC5);
    struct copy_input in = {&rule, &fill, &inst, DEC_ZERO, DEC_ZERO, fill.price};
    struct copy_intent out[COPY_MAX_INTENTS];

    assert_int_equal(copy_decide(NULL, out), -EINVAL);
    assert_int_equal(copy_decide(&in, NULL), -EINVAL);
    struct copy_input bad = in;
    bad.rule = NULL;
    assert_int_equal(copy_decide(&bad, out), -EINVAL);
    bad = in;
    bad.fill = NULL;
    assert_int_equal(copy_decide(&bad, out), -EINVAL);
    bad = in;
    bad.instrument = NULL;
    assert_int_equal(copy_decide(&bad, out), -EINVAL);
    struct copy_rule noid = {.id = NULL, .multiplier = D("1")};
    bad = in;
    bad.rule = &noid;
    assert_int_equal(copy_decide(&bad, out), -EINVAL);

    /* Bad fill values become a journaled skip, never a crash or an order. */
    fill.qty = DEC_ZERO;
    assert_int_equal(copy_decide(&in, out), 1);
    assert_int_equal(out[0].skip, COPY_SKIP_INVALID_FILL);
    fill.qty = D("-1");
    assert_int_equal(copy_decide(&in, out), 1);
    assert_int_equal(out[0].skip, COPY_SKIP_INVALID_FILL);
    fill.qty = D("1");
    fill.side = (enum mkt_side)0;
    assert_int_equal(copy_decide(&in, out), 1);
    assert_int_equal(out[0].skip, COPY_SKIP_INVALID_FILL);
    fill.side = MKT_BUY;
    fill.pos_side = (enum mkt_pos_side)3;
    assert_int_equal(copy_decide(&in, out), 1);
    assert_int_equal(out[0].skip, COPY_SKIP_INVALID_FILL);
    fill.pos_side = MKT_PS_BOTH;
    memset(fill.account, 'x', sizeof fill.account); /* unterminated */
    assert_int_equal(copy_decide(&in, out), 1);
    assert_int_equal(out[0].skip, COPY_SKIP_INVALID_FILL);
    assert_true(client_id_valid(out[0].client_id));
    strcpy(fill.account, "leader-1");
    assert_int_equal(copy_decide(&in, out), 1);
    assert_int_equal(out[0].skip, COPY_SKIP_NONE);
    assert_int_equal(dec_cmp(out[0].qty, D("1")), 0);

    /* Negative limits make the instrument invalid. */
    inst.min_notional = D("-1");
    assert_int_equal(copy_decide(&in, out), 1);
    assert_int_equal(out[0].skip, COPY_SKIP_INVALID_INSTRUMENT);
    inst.min_notional = D("5");

    /* The full API: NULL pointers are -EINVAL, the output is cleared and always 1..2 intents. */
    struct copy_fill_input fi = {.rule = &rule, .fill = &fill, .instrument = &inst,
                                 .ticker_age_ms = -1};
    struct copy_decision d;
    assert_int_equal(copy_decide_fill(NULL, NULL, &d), -EINVAL);
    assert_int_equal(copy_decide_fill(&fi, NULL, NULL), -EINVAL);
    struct copy_fill_input fbad = fi;
    fbad.instrument = NULL;
    assert_int_equal(copy_decide_fill(&fbad, NULL, &d), -EINVAL);
    fbad = fi;
    fbad.rule = &noid;
    assert_int_equal(copy_decide_fill(&fbad, NULL, &d), -EINVAL);
    memset(&d, 0x5A, sizeof d);
    assert_int_equal(copy_decide_fill(&fi, NULL, &d), 1);
    assert_int_equal(d.n, 1);
    assert_false(d.dropped.set);
    assert_int_equal(d.intents[0].skip, COPY_SKIP_NONE);
    /* Invalid decimals in positions count as flat rather than poisoning the sizes. */
    fi.leader.net = (dec_t){INT64_MIN, 0};
    fi.follower.net = (dec_t){1, 40};
    assert_int_equal(copy_decide_fill(&fi, NULL, &d), 1);
    assert_int_equal(d.intents[0].kind, COPY_KIND_OPEN);
    assert_int_equal(d.intents[0].skip, COPY_SKIP_NONE);
    assert_int_equal(dec_cmp(d.intents[0].qty, D("1")), 0);
}

static void test_names(void **state)
{
    (void)state;
    const char *seen[COPY_SKIP__COUNT];
    for (int s = 0; s < COPY_SKIP__COUNT; s++) {
        const char *n = copy_skip_name((enum copy_skip)s);
        assert_string_not_equal(n, "unknown");
        for (const char *p = n; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
        for (int t = 0; t < s; t++)
            assert_string_not_equal(seen[t], n);
        seen[s] = n;
    }
    /* The skeleton's names, unchanged (journal rows and metric labels already use them). */
    assert_string_equal(copy_skip_name(COPY_SKIP_NONE), "none");
    assert_string_equal(copy_skip_name(COPY_SKIP_ROUNDS_TO_ZERO), "rounds_to_zero");
    assert_string_equal(copy_skip_name(COPY_SKIP_BELOW_MIN_QTY), "below_min_qty");
    assert_string_equal(copy_skip_name(COPY_SKIP_BELOW_MIN_NOTIONAL), "below_min_notional");
    assert_string_equal(copy_skip_name(COPY_SKIP_NO_FOLLOWER_POSITION), "no_follower_position");
    assert_string_equal(copy_skip_name(COPY_SKIP_LEADER_POSITION_MISMATCH), "leader_position_mismatch");
    assert_string_equal(copy_skip_name(COPY_SKIP_RULE_CLOSE_ONLY), "rule_close_only");
    assert_string_equal(copy_skip_name(COPY_SKIP_RULE_PAUSED), "rule_paused");
    assert_string_equal(copy_skip_name(COPY_SKIP_NO_FRESH_TICKER), "no_fresh_ticker");
    assert_string_equal(copy_skip_name(COPY_SKIP__COUNT), "unknown");
    assert_string_equal(copy_skip_name((enum copy_skip)-1), "unknown");

    /* Adjust bits: one distinct snake_case name each, joined in bit order. */
    static const char *const adj[COPY_ADJUST__BITS] = {
        "clamped_max_qty", "clamped_position", "clamped_max_notional", "clamped_max_leverage",
        "forced_min", "coalesced", "released", "rounding_carry"};
    for (unsigned b = 0; b < COPY_ADJUST__BITS; b++)
        assert_string_equal(copy_adjust_name((enum copy_adjust)(1u << b)), adj[b]);
    assert_string_equal(copy_adjust_name(COPY_ADJUST_NONE), "none");
    assert_string_equal(copy_adjust_name((enum copy_adjust)(1u << COPY_ADJUST__BITS)), "unknown");
    assert_string_equal(copy_adjust_name((enum copy_adjust)3), "unknown");
    char buf[COPY_ADJUST_STR_MAX];
    assert_int_equal(copy_adjust_format(0, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_int_equal(copy_adjust_format(COPY_ADJUST_COALESCED | COPY_ADJUST_CLAMPED_MAX_QTY, buf,
                                        sizeof buf),
                     (int)strlen("clamped_max_qty,coalesced"));
    assert_string_equal(buf, "clamped_max_qty,coalesced");
    assert_true(copy_adjust_format((1u << COPY_ADJUST__BITS) - 1, buf, sizeof buf) > 0);
    assert_string_equal(buf, "clamped_max_qty,clamped_position,clamped_max_notional,"
                             "clamped_max_leverage,forced_min,coalesced,released,rounding_carry");
    char small[10];
    assert_int_equal(copy_adjust_format(COPY_ADJUST_FORCED_MIN, small, sizeof small), -ENOSPC);
    assert_int_equal(copy_adjust_format(COPY_ADJUST_FORCED_MIN, NULL, 0), -ENOSPC);

    assert_string_equal(copy_kind_name(COPY_KIND_OPEN), "open");
    assert_string_equal(copy_kind_name(COPY_KIND_CLOSE), "close");
    assert_string_equal(copy_kind_name((enum copy_kind)0), "unknown");
    assert_string_equal(copy_pos_side_name(MKT_PS_BOTH), "both");
    assert_string_equal(copy_pos_side_name(MKT_PS_LONG), "long");
    assert_string_equal(copy_pos_side_name(MKT_PS_SHORT), "short");
    assert_string_equal(copy_pos_side_name((enum mkt_pos_side)7), "unknown");
    assert_string_equal(copy_sizing_name(COPY_SIZING_MULTIPLIER), "multiplier");
    assert_string_equal(copy_sizing_name(COPY_SIZING_FIXED_NOTIONAL), "fixed_notional");
    assert_string_equal(copy_sizing_name(COPY_SIZING_EQUITY_RATIO), "equity_ratio");
    assert_string_equal(copy_sizing_name(COPY_SIZING__COUNT), "unknown");
    assert_string_equal(copy_sides_name(COPY_SIDES_BOTH), "both");
    assert_string_equal(copy_sides_name(COPY_SIDES_LONG_ONLY), "long_only");
    assert_string_equal(copy_sides_name(COPY_SIDES_SHORT_ONLY), "short_only");
    assert_string_equal(copy_sides_name(COPY_SIDES__COUNT), "unknown");
    assert_string_equal(copy_order_type_name(COPY_ORDER_MARKET), "market");
    assert_string_equal(copy_order_type_name(COPY_ORDER_LIMIT_IOC), "limit_ioc");
    assert_string_equal(copy_order_type_name(COPY_ORDER__COUNT), "unknown");
    assert_string_equal(copy_status_name(COPY_STATUS_ACTIVE), "active");
    assert_string_equal(copy_status_name(COPY_STATUS_PAUSED), "paused");
    assert_string_equal(copy_status_name(COPY_STATUS_CLOSE_ONLY), "close_only");
    assert_string_equal(copy_status_name(COPY_STATUS__COUNT), "unknown");
    assert_string_equal(copy_stop_name(COPY_STOP_NONE), "none");
    assert_string_equal(copy_stop_name(COPY_STOP_DAILY_LOSS), "daily_loss");
    assert_string_equal(copy_stop_name(COPY_STOP_MAX_DRAWDOWN), "max_drawdown");
    assert_string_equal(copy_stop_name(COPY_STOP__COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_close_never_exceeds_position),
        cmocka_unit_test(test_client_ids),
        cmocka_unit_test(test_invalid_inputs),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
