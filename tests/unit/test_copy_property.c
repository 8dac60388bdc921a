/* Property tests for strategy/copy_engine: random leader fill sequences from a seeded generator.
 *
 * Seed: CT_SEED (decimal) or the time; printed at the start and in every failure so that a run
 * reproduces with CT_SEED=<seed>. CT_SEQUENCES overrides the number of sequences (default
 * 100000, the minimum).
 *
 * Each sequence draws a rule, an instrument and accounts, then 1..8 leader orders of 1..4 fills
 * each, kept consistent with a model of the leader's position (one-way or hedge). Every intent
 * the engine sends is applied to a model of the follower as if it filled in full. Checked for
 * every fill:
 *  - determinism: the decision is made twice from identical inputs and state copies; the
 *    decisions and the resulting states are identical field by field (padding aside);
 *  - sent quantities are > 0, multiples of the lot step of their order type, <= the max qty;
 *  - closes never flip: one-way closes are reduce-only, against the position and <= |net|;
 *    hedge closes are not reduce-only, on the side they close and <= that side's size;
 *  - no sent open leaves the follower's exposure above max_position_notional / P or
 *    equity x max_leverage / P (P = the intent's reference price);
 *  - limit prices sit on the tick grid and never pass the slippage bound;
 *  - pos_side is BOTH for one-way followers and the position's side for hedge ones;
 * and, for the "ideal" half of the sequences (multiplier sizing, no limits, no force_min,
 * min qty = one step, no min notional, no max qty, market or limit_ioc without a bound; any
 * reverse, leader mode, follower mode and coalescing table): after every fill the follower holds
 * EXACTLY floor(|L| x k) in the follower direction (per side hedge-to-hedge, on the net
 * otherwise), hence |F - L x k| < one step. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dec_test.h"

#include "copy_engine.h"

#define NOW_MS 1700000000000LL
#define SLOTS 4

static uint64_t g_seed;
static uint64_t rng;

static uint64_t next(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned pick(unsigned n) /* 0..n-1 */
{
    return (unsigned)(next() % n);
}

static bool chance(unsigned pct)
{
    return pick(100) < pct;
}


static dec_t scaled(int64_t m, unsigned scale)
{
    return dec_normalize((dec_t){m, (uint8_t)scale});
}

#define PICK(arr) (arr[pick(sizeof(arr) / sizeof(arr[0]))])

/* ---- one scenario ----------------------------------------------------------------------- */

struct scen {
    bool ideal;
    struct copy_rule rule;
    const char *allow[2];
    struct mkt_instrument inst;
    enum mkt_pos_mode lmode, fmode;
    dec_t lnet, llong, lshort; /* leader */
    dec_t fnet, flong, fshort; /* follower model */
    dec_t leq, feq;
    dec_t tick;
    int64_t base_ticks;
    struct copy_state st;
    struct copy_accum slots[SLOTS];
    int64_t trade_id, order_id;
};

static const char *seq_ctx; /* "seed=... seq=... fill=..." for failure messages */
static unsigned long n_skip[COPY_SKIP__COUNT], n_adjust[COPY_ADJUST__BITS], n_dropped[COPY_SKIP__COUNT];
static char ctx_buf[160];

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            fail_msg("%s: %s (line %d); reproduce with CT_SEED=%" PRIu64, seq_ctx, #cond,      \
                     __LINE__, g_seed);                                                        \
    } while (0)

static void make_scenario(struct scen *s)
{
    static const char *const ks[] = {"1", "0.5", "0.013", "2", "0.333", "3.7", "0.1"};
    static const char *const steps[] = {"0.001", "0.01", "0.1", "1"};
    memset(s, 0, sizeof *s);
    s->ideal = chance(50);
    struct copy_rule *r = &s->rule;
    r->id = "prop";
    r->multiplier = D(PICK(ks));
    r->reverse = chance(30);
    r->order_type = chance(25) ? COPY_ORDER_LIMIT_IOC : COPY_ORDER_MARKET;
    s->lmode = chance(35) ? MKT_PM_HEDGE : MKT_PM_ONE_WAY;
    s->fmode = chance(35) ? MKT_PM_HEDGE : MKT_PM_ONE_WAY;
    dec_t step = D(PICK(steps));
    struct mkt_instrument *i = &s->inst;
    strcpy(i->symbol, "XUSDT");
    i->step = step;
    i->min_qty = step;
    s->tick = D("0.1");
    i->tick = s->tick;
    i->min_price = D("0.1");
    s->base_ticks = chance(50) ? 20000 : 500000; /* 2000 or 50000 */
    s->leq = D(chance(50) ? "10000" : "3333");
    s->feq = D(PICK(((const char *const[]){"0", "100", "1000", "25000"})));
    bool coalesce = chance(70);
    copy_state_init(&s->st, coalesce ? s->slots : NULL, coalesce ? SLOTS : 0);
    if (s->ideal)
        return;

    /* The general half: every other knob. */
    r->sizing = (enum copy_sizing)pick(COPY_SIZING__COUNT);
    r->fixed_notional = D(PICK(((const char *const[]){"10", "100", "1000", "5000"})));
    r->force_min = chance(30);
    r->dry_run = chance(10);
    r->sides = chance(80) ? COPY_SIDES_BOTH : (enum copy_sides)(1 + pick(2));
    r->max_position_notional = D(PICK(((const char *const[]){"0", "0", "500", "5000", "50000"})));
    r->max_leverage = D(PICK(((const char *const[]){"0", "0", "1", "3", "10"})));
    r->max_slippage_bps = D(PICK(((const char *const[]){"0", "0", "5", "50", "2.5"})));
    r->max_signal_age_ms = chance(20) ? 1000 : 0;
    r->daily_loss_limit = D(chance(20) ? "50" : "0");
    r->max_drawdown_pct = D(chance(20) ? "5" : "0");
    if (chance(10)) {
        s->allow[0] = "XUSDT";
        s->allow[1] = "YUSDT";
        r->allow_symbols = s->allow;
        r->n_allow = 2;
    } else if (chance(5)) {
        s->allow[0] = "XUSDT";
        r->deny_symbols = s->allow;
        r->n_deny = 1;
    }
    if (chance(30))
        CHECK(dec_mul(step, D("3"), &i->min_qty) == 0);
    i->min_notional = D(PICK(((const char *const[]){"0", "5", "100"})));
    i->max_qty = D("1000000");
    if (chance(30))
        CHECK(dec_mul(step, D("50"), &i->max_qty) == 0);
    if (chance(20)) {
        CHECK(dec_mul(step, D("10"), &i->mkt_step) == 0);
        i->mkt_min_qty = i->mkt_step;
        i->mkt_max_qty = D("500");
    }
    i->max_price = D("1000000");
    copy_state_set_paused(&s->st, chance(3));
}

/* ---- checks ----------------------------------------------------------------------------- */

static bool dec_same(dec_t a, dec_t b)
{
    return a.m == b.m && a.scale == b.scale;
}

static bool intent_same(const struct copy_intent *a, const struct copy_intent *b)
{
    return strcmp(a->client_id, b->client_id) == 0 && a->leg == b->leg && a->kind == b->kind &&
           a->side == b->side && a->pos_side == b->pos_side && a->reduce_only == b->reduce_only &&
           a->order_type == b->order_type && dec_same(a->price, b->price) &&
           dec_same(a->qty, b->qty) && dec_same(a->target, b->target) && a->skip == b->skip &&
           a->adjust == b->adjust && a->dry_run == b->dry_run;
}

static bool decision_same(const struct copy_decision *a, const struct copy_decision *b)
{
    if (a->n != b->n || a->dropped.set != b->dropped.set)
        return false;
    for (size_t k = 0; k < a->n; k++)
        if (!intent_same(&a->intents[k], &b->intents[k]))
            return false;
    if (a->dropped.set && (a->dropped.reason != b->dropped.reason ||
                           strcmp(a->dropped.symbol, b->dropped.symbol) != 0 ||
                           strcmp(a->dropped.order_id, b->dropped.order_id) != 0 ||
                           !dec_same(a->dropped.amount, b->dropped.amount)))
        return false;
    return true;
}

static bool state_same(const struct copy_state *a, const struct copy_state *b)
{
    if (a->paused != b->paused || a->stopped != b->stopped || a->stop != b->stop ||
        a->have_day_mark != b->have_day_mark || a->day != b->day ||
        !dec_same(a->day_start_equity, b->day_start_equity) || a->have_peak != b->have_peak ||
        !dec_same(a->peak_equity, b->peak_equity) || a->acc_cap != b->acc_cap ||
        a->acc_seq != b->acc_seq)
        return false;
    for (size_t i = 0; i < a->acc_cap; i++) {
        const struct copy_accum *x = &a->acc[i], *y = &b->acc[i];
        if (x->used != y->used)
            return false;
        if (x->used && (strcmp(x->symbol, y->symbol) != 0 || strcmp(x->order_id, y->order_id) != 0 ||
                        x->dir != y->dir || !dec_same(x->amount, y->amount) || x->seq != y->seq))
            return false;
    }
    return true;
}

static dec_t lot_step(const struct scen *s, const struct copy_intent *it)
{
    if (it->order_type == COPY_ORDER_MARKET && dec_sign(s->inst.mkt_step) > 0)
        return s->inst.mkt_step;
    return s->inst.step;
}

static dec_t lot_max(const struct scen *s, const struct copy_intent *it)
{
    if (it->order_type == COPY_ORDER_MARKET && dec_sign(s->inst.mkt_max_qty) > 0)
        return s->inst.mkt_max_qty;
    return s->inst.max_qty;
}

/* Check one sent intent against the follower model, then apply it. */
static void check_and_apply(struct scen *s, const struct mkt_fill *f, const struct copy_intent *it)
{
    CHECK(dec_sign(it->qty) > 0);
    CHECK(dec_is_multiple(it->qty, lot_step(s, it)));
    CHECK(dec_sign(lot_max(s, it)) == 0 || dec_cmp(it->qty, lot_max(s, it)) <= 0);
    CHECK(it->order_type == s->rule.order_type);
    bool hedge = s->fmode == MKT_PM_HEDGE;
    dec_t P = f->price;
    if (it->order_type == COPY_ORDER_LIMIT_IOC) {
        static const dec_t bp = {1, 4};
        dec_t bound, frac;
        P = it->price;
        CHECK(dec_sign(P) > 0 && dec_is_multiple(P, s->tick));
        CHECK(dec_mul(s->rule.max_slippage_bps, bp, &frac) == 0);
        if (it->side == MKT_BUY) {
            CHECK(dec_add(D("1"), frac, &frac) == 0 && dec_mul(f->price, frac, &bound) == 0);
            CHECK(dec_cmp(P, bound) <= 0);
        } else {
            CHECK(dec_sub(D("1"), frac, &frac) == 0 && dec_mul(f->price, frac, &bound) == 0);
            CHECK(dec_cmp(P, bound) >= 0);
        }
    } else {
        CHECK(dec_is_zero(it->price));
    }
    dec_t *side = it->pos_side == MKT_PS_LONG ? &s->flong : &s->fshort;
    if (it->kind == COPY_KIND_CLOSE) {
        if (hedge) {
            CHECK(!it->reduce_only);
            CHECK(it->pos_side == (it->side == MKT_SELL ? MKT_PS_LONG : MKT_PS_SHORT));
            CHECK(dec_cmp(it->qty, *side) <= 0);
            CHECK(dec_sub(*side, it->qty, side) == 0);
        } else {
            CHECK(it->reduce_only && it->pos_side == MKT_PS_BOTH);
            CHECK((int)it->side == -dec_sign(s->fnet));
            CHECK(dec_cmp(it->qty, dec_abs(s->fnet)) <= 0);
            dec_t before = s->fnet;
            CHECK(dec_add(s->fnet, it->side == MKT_BUY ? it->qty : dec_neg(it->qty), &s->fnet) == 0);
            CHECK(dec_sign(s->fnet) == 0 || dec_sign(s->fnet) == dec_sign(before)); /* no flip */
        }
        return;
    }
    CHECK(!it->reduce_only);
    int fd = it->side == MKT_BUY ? 1 : -1;
    if (hedge) {
        CHECK(it->pos_side == (fd > 0 ? MKT_PS_LONG : MKT_PS_SHORT));
        CHECK(dec_add(*side, it->qty, side) == 0);
    } else {
        CHECK(it->pos_side == MKT_PS_BOTH);
        CHECK(dec_add(s->fnet, fd > 0 ? it->qty : dec_neg(it->qty), &s->fnet) == 0);
    }
    /* Exposure after the open, at P: one-way the net in the open's direction, hedge gross. */
    dec_t e = fd > 0 ? s->fnet : dec_neg(s->fnet), lim;
    if (hedge)
        CHECK(dec_add(s->flong, s->fshort, &e) == 0);
    if (dec_sign(s->rule.max_position_notional) > 0)
        CHECK(dec_cmp_mul(e, P, s->rule.max_position_notional) <= 0);
    if (dec_sign(s->rule.max_leverage) > 0) {
        CHECK(dec_mul(s->feq, s->rule.max_leverage, &lim) == 0);
        CHECK(dec_cmp_mul(e, P, lim) <= 0);
    }
}

/* Ideal runs: the follower holds exactly floor(|L| x k) in the follower direction. */
static void check_ideal(const struct scen *s)
{
    const struct copy_rule *r = &s->rule;
    dec_t step = s->inst.step, want, lk, diff;
    int rev = r->reverse ? -1 : 1;
    if (s->lmode == MKT_PM_HEDGE && s->fmode == MKT_PM_HEDGE) {
        dec_t wl, ws;
        CHECK(dec_muldiv_round_down(s->llong, r->multiplier, D("1"), step, &wl) == 0);
        CHECK(dec_muldiv_round_down(s->lshort, r->multiplier, D("1"), step, &ws) == 0);
        CHECK(dec_cmp(rev > 0 ? s->flong : s->fshort, wl) == 0);
        CHECK(dec_cmp(rev > 0 ? s->fshort : s->flong, ws) == 0);
        return;
    }
    dec_t N = s->lnet;
    if (s->lmode == MKT_PM_HEDGE)
        CHECK(dec_sub(s->llong, s->lshort, &N) == 0);
    CHECK(dec_muldiv_round_down(N, r->multiplier, D("1"), step, &want) == 0); /* toward zero */
    if (rev < 0)
        want = dec_neg(want);
    dec_t F = s->fnet;
    if (s->fmode == MKT_PM_HEDGE) {
        CHECK(dec_sub(s->flong, s->fshort, &F) == 0);
        CHECK(dec_is_zero(s->flong) || dec_is_zero(s->fshort)); /* one side at a time */
    }
    CHECK(dec_cmp(F, want) == 0);
    /* Hence the form: |F - L x k| < one step. */
    CHECK(dec_mul(N, r->multiplier, &lk) == 0);
    if (rev < 0)
        lk = dec_neg(lk);
    CHECK(dec_sub(F, lk, &diff) == 0 && dec_cmp(dec_abs(diff), step) < 0);
}

/* ---- the leader ------------------------------------------------------------------------- */

static dec_t rand_qty(void) /* 0.001 .. 100 in leader lots of 0.001 */
{
    unsigned r = pick(100);
    int64_t lots = r < 40 ? 1 + pick(20) : r < 75 ? 1 + pick(300) : r < 92 ? 1 + pick(2000)
                                                                          : 1 + pick(100000);
    return scaled(lots, 3);
}

static void copy_st(struct copy_state *dst, struct copy_accum *dslots, const struct copy_state *src)
{
    *dst = *src;
    if (src->acc_cap > 0) {
        memcpy(dslots, src->acc, sizeof(src->acc[0]) * src->acc_cap);
        dst->acc = dslots;
    }
}

static void one_fill(struct scen *s, struct mkt_fill *f, unsigned fill_no)
{
    snprintf(ctx_buf, sizeof ctx_buf, "%s fill=%u", seq_ctx, fill_no);
    const char *saved = seq_ctx;
    seq_ctx = ctx_buf;
    int64_t ticks = s->base_ticks + (int64_t)pick(101) - 50;
    f->price = scaled(ticks, 1);
    snprintf(f->trade_id, sizeof f->trade_id, "%lld", (long long)++s->trade_id);
    f->trade_time_ms = NOW_MS - (chance(10) ? 5000 : 50);
    int64_t tt = s->base_ticks + (int64_t)pick(41) - 20;
    struct copy_fill_input in = {
        .rule = &s->rule, .fill = f, .instrument = &s->inst,
        .leader = {s->lnet, s->llong, s->lshort}, .leader_equity = s->leq,
        .follower_mode = s->fmode, .follower = {s->fnet, s->flong, s->fshort},
        .follower_equity = s->feq, .ticker_price = scaled(tt, 1),
        .ticker_age_ms = chance(10) ? 6000 : 100, .now_ms = NOW_MS,
    };
    if (!s->ideal && dec_sign(s->feq) > 0) {
        /* Equity samples drive the loss stops now and then. */
        dec_t eq;
        CHECK(dec_add(s->feq, scaled((int64_t)pick(200) - 100, 0), &eq) == 0);
        (void)copy_state_observe_equity(&s->st, &s->rule, eq, NOW_MS + (int64_t)fill_no);
    }
    struct copy_state st2;
    struct copy_accum slots2[SLOTS];
    copy_st(&st2, slots2, &s->st);
    struct copy_decision d1, d2;
    int n1 = copy_decide_fill(&in, &s->st, &d1);
    int n2 = copy_decide_fill(&in, &st2, &d2);
    CHECK(n1 >= 1 && n1 <= COPY_MAX_INTENTS && n1 == n2);
    CHECK(decision_same(&d1, &d2));
    CHECK(state_same(&s->st, &st2));
    CHECK(copy_state_held(&s->st) <= s->st.acc_cap);
    if (d1.dropped.set)
        n_dropped[d1.dropped.reason]++;
    for (size_t k = 0; k < d1.n; k++) {
        const struct copy_intent *it = &d1.intents[k];
        n_skip[it->skip]++;
        for (unsigned b = 0; b < COPY_ADJUST__BITS; b++)
            n_adjust[b] += (it->adjust >> b) & 1;
        CHECK(it->leg == k);
        CHECK(it->dry_run == s->rule.dry_run);
        if (s->ideal)
            CHECK(it->skip == COPY_SKIP_NONE || it->skip == COPY_SKIP_ROUNDS_TO_ZERO ||
                  it->skip == COPY_SKIP_COALESCING || it->skip == COPY_SKIP_NO_FOLLOWER_POSITION);
        if (it->skip == COPY_SKIP_NONE)
            check_and_apply(s, f, it); /* dry-run intents too: computed as if live */
    }
    /* The leader's position moves by the fill. */
    dec_t signed_q = f->side == MKT_BUY ? f->qty : dec_neg(f->qty);
    if (f->pos_side == MKT_PS_BOTH) {
        CHECK(dec_add(s->lnet, signed_q, &s->lnet) == 0);
    } else if (f->pos_side == MKT_PS_LONG) {
        CHECK(dec_add(s->llong, signed_q, &s->llong) == 0);
    } else {
        CHECK(dec_sub(s->lshort, signed_q, &s->lshort) == 0);
    }
    if (s->ideal)
        check_ideal(s);
    seq_ctx = saved;
}

/* One leader order of 1..4 fills, consistent with the leader's position. */
static void one_order(struct scen *s, unsigned *fill_no)
{
    struct mkt_fill f;
    memset(&f, 0, sizeof f);
    strcpy(f.account, "leader-p");
    strcpy(f.symbol, "XUSDT");
    snprintf(f.order_id, sizeof f.order_id, "%lld", (long long)++s->order_id);
    unsigned nfills = 1 + pick(4);
    dec_t q[4], total = DEC_ZERO;
    if (s->lmode == MKT_PM_ONE_WAY) {
        f.pos_side = MKT_PS_BOTH;
        f.side = chance(50) ? MKT_BUY : MKT_SELL;
        bool reduces = dec_sign(s->lnet) == -(int)f.side;
        f.reduce_only = reduces && chance(30);
        dec_t cap = dec_abs(s->lnet);
        for (unsigned i = 0; i < nfills; i++) {
            q[i] = rand_qty();
            if (f.reduce_only) { /* a reduce-only order never passes the position */
                dec_t left;
                CHECK(dec_sub(cap, total, &left) == 0);
                if (dec_sign(left) <= 0) {
                    nfills = i;
                    break;
                }
                q[i] = dec_min(q[i], left);
            }
            CHECK(dec_add(total, q[i], &total) == 0);
        }
        if (nfills == 0)
            return;
    } else {
        f.pos_side = chance(50) ? MKT_PS_LONG : MKT_PS_SHORT;
        dec_t *side = f.pos_side == MKT_PS_LONG ? &s->llong : &s->lshort;
        bool close = dec_sign(*side) > 0 && chance(45);
        bool buy = (f.pos_side == MKT_PS_LONG) != close;
        f.side = buy ? MKT_BUY : MKT_SELL;
        for (unsigned i = 0; i < nfills; i++) {
            q[i] = rand_qty();
            if (close) { /* a hedge side never goes below zero */
                dec_t left;
                CHECK(dec_sub(*side, total, &left) == 0);
                if (dec_sign(left) <= 0) {
                    nfills = i;
                    break;
                }
                q[i] = dec_min(q[i], left);
            }
            CHECK(dec_add(total, q[i], &total) == 0);
        }
        if (nfills == 0)
            return;
    }
    f.orig_qty = chance(90) ? total : DEC_ZERO;
    dec_t cum = DEC_ZERO;
    for (unsigned i = 0; i < nfills; i++) {
        f.qty = q[i];
        CHECK(dec_add(cum, q[i], &cum) == 0);
        f.cum_qty = cum;
        f.order_done = i + 1 == nfills;
        one_fill(s, &f, (*fill_no)++);
    }
}

static void test_random_sequences(void **state)
{
    (void)state;
    const char *e = getenv("CT_SEED");
    g_seed = e != NULL && *e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    const char *ns = getenv("CT_SEQUENCES");
    unsigned long nseq = ns != NULL && *ns ? strtoul(ns, NULL, 10) : 100000;
    print_message("copy property: seed %" PRIu64 ", %lu sequences (CT_SEED, CT_SEQUENCES)\n", g_seed,
                  nseq);
    rng = g_seed;
    unsigned long fills = 0, ideal = 0;
    char buf[96];
    for (unsigned long i = 0; i < nseq; i++) {
        struct scen s;
        make_scenario(&s);
        snprintf(buf, sizeof buf, "seed=%" PRIu64 " seq=%lu%s", g_seed, i, s.ideal ? " (ideal)" : "");
        seq_ctx = buf;
        unsigned norders = 1 + pick(8), fill_no = 0;
        for (unsigned o = 0; o < norders; o++)
            one_order(&s, &fill_no);
        fills += fill_no;
        ideal += s.ideal;
    }
    print_message("copy property: %lu sequences (%lu ideal), %lu leader fills, each decided twice\n",
                  nseq, ideal, fills);
    assert_true(nseq < 1000 || fills > nseq); /* the generator does produce sequences */

    /* What the run exercised; a full run must reach every reason and adjustment a fill can
     * produce (clamped_position is defence in depth, unreachable by construction). */
    for (int k = 0; k < COPY_SKIP__COUNT; k++)
        if (n_skip[k] || n_dropped[k])
            print_message("  %-26s %9lu%s\n", copy_skip_name((enum copy_skip)k),
                          n_skip[k] + n_dropped[k], n_dropped[k] ? " (dropped slots)" : "");
    for (unsigned b = 0; b < COPY_ADJUST__BITS; b++)
        print_message("  adjust %-19s %9lu\n", copy_adjust_name((enum copy_adjust)(1u << b)),
                      n_adjust[b]);
    if (nseq >= 100000) {
        static const enum copy_skip must[] = {
            COPY_SKIP_NONE, COPY_SKIP_ROUNDS_TO_ZERO, COPY_SKIP_BELOW_MIN_QTY,
            COPY_SKIP_BELOW_MIN_NOTIONAL, COPY_SKIP_NO_FOLLOWER_POSITION, COPY_SKIP_RULE_PAUSED,
            COPY_SKIP_RULE_CLOSE_ONLY, COPY_SKIP_SYMBOL_NOT_ALLOWED, COPY_SKIP_SIDE_NOT_ALLOWED,
            COPY_SKIP_STALE_SIGNAL, COPY_SKIP_NO_FRESH_TICKER, COPY_SKIP_SLIPPAGE,
            COPY_SKIP_NO_EQUITY, COPY_SKIP_MAX_NOTIONAL_REACHED, COPY_SKIP_MAX_LEVERAGE_REACHED,
            COPY_SKIP_COALESCING};
        for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
            if (n_skip[must[i]] == 0)
                fail_msg("seed %" PRIu64 ": no intent skipped as %s", g_seed, copy_skip_name(must[i]));
        assert_true(n_dropped[COPY_SKIP_COALESCE_EVICTED] + n_dropped[COPY_SKIP_COALESCE_DROPPED] > 0);
        for (unsigned b = 0; b < COPY_ADJUST__BITS; b++)
            if (n_adjust[b] == 0 && (1u << b) != COPY_ADJUST_CLAMPED_POSITION)
                fail_msg("seed %" PRIu64 ": no intent adjusted as %s", g_seed,
                         copy_adjust_name((enum copy_adjust)(1u << b)));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
