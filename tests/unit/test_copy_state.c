/* Unit tests for strategy/copy_state and the stateful parts of copy_engine: the loss stops
 * (daily loss, max drawdown, reset, pause), coalescing of small leader partial fills (hold,
 * send, carry, release, force, eviction, drops) and leverage intents. */
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

#define DAY_MS 86400000LL
#define T0 (19700LL * DAY_MS + 3600000LL) /* 01:00 UTC on some day */



/* ---- loss stops ------------------------------------------------------------------------- */

static void test_daily_loss(void **state)
{
    (void)state;
    struct copy_rule r = {.id = "r", .multiplier = D("1"), .daily_loss_limit = D("100")};
    struct copy_state st;
    copy_state_init(&st, NULL, 0);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_ACTIVE);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("1000"), T0), COPY_STOP_NONE);
    assert_dec(st.day_start_equity, "1000");
    assert_int_equal(copy_state_observe_equity(&st, &r, D("1050"), T0 + 1000), COPY_STOP_NONE);
    assert_dec(st.day_start_equity, "1000"); /* the first sample of the day stays the mark */
    assert_dec(st.peak_equity, "1050");
    /* Exactly the limit lost: not more than it. */
    assert_int_equal(copy_state_observe_equity(&st, &r, D("900"), T0 + 2000), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("899.99"), T0 + 3000), COPY_STOP_DAILY_LOSS);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_CLOSE_ONLY);
    assert_int_equal(st.stop, COPY_STOP_DAILY_LOSS);
    /* Reported once; stays stopped on later samples, even a new day's. */
    assert_int_equal(copy_state_observe_equity(&st, &r, D("500"), T0 + 4000), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("2000"), T0 + DAY_MS), COPY_STOP_NONE);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_CLOSE_ONLY);

    /* Operator reset: active, marks re-based on the next sample. */
    copy_rule_reset(&st);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_ACTIVE);
    assert_int_equal(st.stop, COPY_STOP_NONE);
    assert_false(st.have_day_mark);
    assert_false(st.have_peak);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("800"), T0 + DAY_MS + 1), COPY_STOP_NONE);
    assert_dec(st.day_start_equity, "800");
    assert_int_equal(copy_state_observe_equity(&st, &r, D("750"), T0 + DAY_MS + 2), COPY_STOP_NONE);
    /* A new UTC day re-marks. */
    assert_int_equal(copy_state_observe_equity(&st, &r, D("700"), T0 + 2 * DAY_MS), COPY_STOP_NONE);
    assert_dec(st.day_start_equity, "700");
    assert_int_equal(st.day, T0 / DAY_MS + 2);
    /* A clock step back never re-marks an earlier day; the loss counts from today's mark. */
    assert_int_equal(copy_state_observe_equity(&st, &r, D("599"), T0 + DAY_MS), COPY_STOP_DAILY_LOSS);
    assert_dec(st.day_start_equity, "700");

    /* Invalid input is ignored. */
    copy_rule_reset(&st);
    assert_int_equal(copy_state_observe_equity(&st, &r, (dec_t){1, 30}, T0), COPY_STOP_NONE);
    assert_false(st.have_day_mark);
    assert_int_equal(copy_state_observe_equity(NULL, &r, D("1"), T0), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, NULL, D("1"), T0), COPY_STOP_NONE);
}

static void test_drawdown(void **state)
{
    (void)state;
    struct copy_rule r = {.id = "r", .multiplier = D("1"), .max_drawdown_pct = D("10")};
    struct copy_state st;
    copy_state_init(&st, NULL, 0);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("1000"), T0), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("1200"), T0 + DAY_MS), COPY_STOP_NONE);
    /* The peak spans days (only the daily mark resets). 1080 = 1200 x 0.9 is not below. */
    assert_int_equal(copy_state_observe_equity(&st, &r, D("1080"), T0 + 2 * DAY_MS), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("1079.99"), T0 + 2 * DAY_MS + 1),
                     COPY_STOP_MAX_DRAWDOWN);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_CLOSE_ONLY);
    assert_int_equal(st.stop, COPY_STOP_MAX_DRAWDOWN);

    r.max_drawdown_pct = D("12.5");
    copy_rule_reset(&st);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("800"), T0), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("700"), T0), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("699.99"), T0), COPY_STOP_MAX_DRAWDOWN);

    /* No limits: nothing ever stops. */
    struct copy_rule none = {.id = "n", .multiplier = D("1")};
    copy_state_init(&st, NULL, 0);
    assert_int_equal(copy_state_observe_equity(&st, &none, D("1000"), T0), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &none, D("1"), T0), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &none, D("-5"), T0), COPY_STOP_NONE);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_ACTIVE);
}

static void test_pause_overlay(void **state)
{
    (void)state;
    struct copy_rule r = {.id = "r", .multiplier = D("1"), .daily_loss_limit = D("1")};
    struct copy_state st;
    copy_state_init(&st, NULL, 0);
    copy_state_set_paused(&st, true);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_PAUSED);
    /* Stops still trip while paused, and show once the pause is lifted. */
    assert_int_equal(copy_state_observe_equity(&st, &r, D("10"), T0), COPY_STOP_NONE);
    assert_int_equal(copy_state_observe_equity(&st, &r, D("8"), T0), COPY_STOP_DAILY_LOSS);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_PAUSED);
    copy_state_set_paused(&st, false);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_CLOSE_ONLY);
    /* Reset keeps the pause switch. */
    copy_state_set_paused(&st, true);
    copy_rule_reset(&st);
    assert_int_equal(copy_state_status(&st), COPY_STATUS_PAUSED);
    assert_int_equal(copy_state_status(NULL), COPY_STATUS_ACTIVE);
    copy_state_set_paused(NULL, true); /* no crash */
    copy_rule_reset(NULL);
    assert_int_equal(copy_state_held(NULL), 0);
}

/* ---- coalescing ------------------------------------------------------------------------- */

struct cz {
    struct copy_rule rule;
    struct mkt_instrument inst;
    struct copy_state st;
    struct copy_accum slots[8];
    dec_t L, F; /* one-way positions, moved by each step as if every sent intent filled */
    bool flat;  /* decide every fill from flat positions (no rounding carry in play) */
    int64_t trade_id;
};

/* Flat positions again (a new symbol, say): keeps the multiplier's rounding carry, which
 * tracks floor(L x k), out of the coalescing expectations below. */
static void cz_flat(struct cz *z)
{
    z->L = DEC_ZERO;
    z->F = DEC_ZERO;
}

/* I_BTC100 at 50000: step 0.001, min notional 100, so the minimum order is 0.002. */
static void cz_init(struct cz *z, size_t slots)
{
    memset(z, 0, sizeof *z);
    z->rule.id = "rule-c";
    z->rule.multiplier = D("1");
    strcpy(z->inst.symbol, "BTCUSDT");
    z->inst.step = D("0.001");
    z->inst.min_qty = D("0.001");
    z->inst.max_qty = D("1000");
    z->inst.tick = D("0.1");
    z->inst.min_price = D("0.1");
    z->inst.max_price = D("1000000");
    z->inst.min_notional = D("100");
    copy_state_init(&z->st, slots ? z->slots : NULL, slots);
    z->L = DEC_ZERO;
    z->F = DEC_ZERO;
    z->trade_id = 100;
}

static void cz_fill(struct cz *z, int64_t order, enum mkt_side side, const char *qty, bool done,
                    struct copy_decision *d)
{
    struct mkt_fill f;
    memset(&f, 0, sizeof f);
    strcpy(f.account, "leader-c");
    strcpy(f.symbol, "BTCUSDT");
    snprintf(f.trade_id, sizeof f.trade_id, "%lld", (long long)z->trade_id++);
    if (order > 0)
        snprintf(f.order_id, sizeof f.order_id, "%lld", (long long)order);
    f.side = side;
    f.qty = D(qty);
    f.price = D("50000");
    f.orig_qty = D("1");
    f.order_done = done;
    f.trade_time_ms = T0;
    if (z->flat)
        cz_flat(z);
    struct copy_fill_input in = {.rule = &z->rule, .fill = &f, .instrument = &z->inst,
                                 .leader = {.net = z->L}, .follower = {.net = z->F},
                                 .ticker_age_ms = -1, .now_ms = T0 + 10};
    assert_true(copy_decide_fill(&in, &z->st, d) >= 1);
    for (size_t k = 0; k < d->n; k++) {
        const struct copy_intent *it = &d->intents[k];
        if (it->skip == COPY_SKIP_NONE)
            assert_int_equal(dec_add(z->F, it->side == MKT_BUY ? it->qty : dec_neg(it->qty), &z->F), 0);
    }
    assert_int_equal(dec_add(z->L, side == MKT_BUY ? f.qty : dec_neg(f.qty), &z->L), 0);
}

static void want(const struct copy_intent *it, enum copy_skip skip, const char *qty,
                 const char *target, uint32_t adjust)
{
    char a[COPY_ADJUST_STR_MAX], w[COPY_ADJUST_STR_MAX];
    assert_true(copy_adjust_format(it->adjust, a, sizeof a) >= 0);
    assert_true(copy_adjust_format(adjust, w, sizeof w) >= 0);
    if (it->skip != skip || it->adjust != adjust)
        fail_msg("got skip=%s adjust=%s; want skip=%s adjust=%s", copy_skip_name(it->skip), a,
                 copy_skip_name(skip), w);
    assert_dec(it->qty, qty);
    assert_dec(it->target, target);
}

#define CO COPY_ADJUST_COALESCED
#define RE COPY_ADJUST_RELEASED

static void test_coalesce_hold_send_carry_release(void **state)
{
    (void)state;
    struct cz z;
    struct copy_decision d;
    cz_init(&z, 4);
    cz_fill(&z, 77, MKT_BUY, "0.0007", false, &d);
    want(&d.intents[0], COPY_SKIP_COALESCING, "0", "0.0007", 0);
    assert_int_equal(copy_state_held(&z.st), 1);
    cz_fill(&z, 77, MKT_BUY, "0.0008", false, &d); /* 0.0015: 0.001 is below 0.002 */
    want(&d.intents[0], COPY_SKIP_COALESCING, "0.001", "0.0015", CO);
    cz_fill(&z, 77, MKT_BUY, "0.0009", false, &d); /* 0.0024: send 0.002, hold 0.0004 */
    want(&d.intents[0], COPY_SKIP_NONE, "0.002", "0.0024", CO);
    assert_int_equal(copy_state_held(&z.st), 1);
    assert_dec(z.F, "0.002");
    cz_fill(&z, 77, MKT_BUY, "0.0003", true, &d); /* done: 0.0007 cannot be sent */
    want(&d.intents[0], COPY_SKIP_ROUNDS_TO_ZERO, "0", "0.0007", CO | RE);
    assert_false(d.dropped.set);
    assert_int_equal(copy_state_held(&z.st), 0);

    /* Released at the done fill when it reaches the minimum. */
    cz_flat(&z);
    cz_fill(&z, 78, MKT_BUY, "0.0015", false, &d);
    want(&d.intents[0], COPY_SKIP_COALESCING, "0.001", "0.0015", 0);
    cz_fill(&z, 78, MKT_BUY, "0.0006", true, &d);
    want(&d.intents[0], COPY_SKIP_NONE, "0.002", "0.0021", CO | RE);
    assert_int_equal(copy_state_held(&z.st), 0);

    /* force_min at the done fill. */
    z.rule.force_min = true;
    cz_flat(&z);
    cz_fill(&z, 79, MKT_BUY, "0.0005", false, &d);
    want(&d.intents[0], COPY_SKIP_COALESCING, "0", "0.0005", 0);
    cz_fill(&z, 79, MKT_BUY, "0.0005", true, &d);
    want(&d.intents[0], COPY_SKIP_NONE, "0.002", "0.001", CO | RE | COPY_ADJUST_FORCED_MIN);
    /* A single done fill below the minimum is forced at once (nothing to wait for). */
    cz_flat(&z);
    cz_fill(&z, 80, MKT_BUY, "0.0001", true, &d);
    want(&d.intents[0], COPY_SKIP_NONE, "0.002", "0.0001", COPY_ADJUST_FORCED_MIN);
    assert_int_equal(copy_state_held(&z.st), 0);
}

/* fixed_notional 100 over an order of 1 filled in quarters at 50000: 0.0005 per fill, min
 * notional 5 (0.001 at 50000). Exact in total: 0.002 = 100 / 50000. */
static void test_coalesce_fixed_notional(void **state)
{
    (void)state;
    struct cz z;
    struct copy_decision d;
    cz_init(&z, 2);
    z.inst.min_notional = D("5");
    z.rule.sizing = COPY_SIZING_FIXED_NOTIONAL;
    z.rule.fixed_notional = D("100");
    cz_fill(&z, 5, MKT_SELL, "0.25", false, &d);
    want(&d.intents[0], COPY_SKIP_COALESCING, "0", "0.0005", 0);
    cz_fill(&z, 5, MKT_SELL, "0.25", false, &d);
    want(&d.intents[0], COPY_SKIP_NONE, "0.001", "0.001", CO);
    cz_fill(&z, 5, MKT_SELL, "0.25", false, &d);
    want(&d.intents[0], COPY_SKIP_COALESCING, "0", "0.0005", CO);
    cz_fill(&z, 5, MKT_SELL, "0.25", true, &d);
    want(&d.intents[0], COPY_SKIP_NONE, "0.001", "0.001", CO | RE);
    assert_dec(z.F, "-0.002");
    assert_int_equal(copy_state_held(&z.st), 0);
}

static void test_coalesce_off(void **state)
{
    (void)state;
    struct cz z;
    struct copy_decision d;
    /* No slots: below the minimum is a skip at once. */
    cz_init(&z, 0);
    cz_fill(&z, 1, MKT_BUY, "0.0015", false, &d);
    want(&d.intents[0], COPY_SKIP_BELOW_MIN_NOTIONAL, "0.001", "0.0015", 0);
    /* Unknown order id: nothing to key on. */
    cz_init(&z, 4);
    cz_fill(&z, 0, MKT_BUY, "0.0015", false, &d);
    want(&d.intents[0], COPY_SKIP_BELOW_MIN_NOTIONAL, "0.001", "0.0015", 0);
    assert_int_equal(copy_state_held(&z.st), 0);
    /* Fills at or above the minimum take no slot. */
    cz_flat(&z);
    cz_fill(&z, 3, MKT_BUY, "0.0025", false, &d);
    want(&d.intents[0], COPY_SKIP_NONE, "0.002", "0.0025", 0);
    assert_int_equal(copy_state_held(&z.st), 0);
}

static void test_coalesce_evict_and_drop(void **state)
{
    (void)state;
    struct cz z;
    struct copy_decision d;
    cz_init(&z, 2);
    z.flat = true;
    cz_fill(&z, 1, MKT_BUY, "0.0007", false, &d);
    assert_false(d.dropped.set);
    cz_fill(&z, 2, MKT_BUY, "0.0006", false, &d);
    assert_false(d.dropped.set);
    cz_fill(&z, 3, MKT_BUY, "0.0005", false, &d); /* full: order 1, the oldest, goes */
    want(&d.intents[0], COPY_SKIP_COALESCING, "0", "0.0005", 0);
    assert_true(d.dropped.set);
    assert_int_equal(d.dropped.reason, COPY_SKIP_COALESCE_EVICTED);
    assert_string_equal(d.dropped.symbol, "BTCUSDT");
    assert_string_equal(d.dropped.order_id, "1");
    assert_dec(d.dropped.amount, "0.0007");
    assert_int_equal(copy_state_held(&z.st), 2);
    /* Order 1 starts over; order 2 is now the oldest. */
    cz_fill(&z, 1, MKT_BUY, "0.0001", false, &d);
    want(&d.intents[0], COPY_SKIP_COALESCING, "0", "0.0001", 0);
    assert_string_equal(d.dropped.order_id, "2");

    /* A done fill whose open a guard skips: released, the held amount reported dropped. */
    z.rule.max_signal_age_ms = 5;
    cz_fill(&z, 3, MKT_BUY, "0.0001", true, &d);
    want(&d.intents[0], COPY_SKIP_STALE_SIGNAL, "0", "0", RE);
    assert_true(d.dropped.set);
    assert_int_equal(d.dropped.reason, COPY_SKIP_COALESCE_DROPPED);
    assert_string_equal(d.dropped.order_id, "3");
    assert_dec(d.dropped.amount, "0.0005");
    z.rule.max_signal_age_ms = 0;

    /* The same order turning the other way (our view was off): the old slot is dropped. */
    cz_init(&z, 2);
    z.flat = true; /* as if the leader's position had been reset under us */
    cz_fill(&z, 9, MKT_BUY, "0.0007", false, &d);
    cz_fill(&z, 9, MKT_SELL, "0.0004", false, &d);
    want(&d.intents[0], COPY_SKIP_COALESCING, "0", "0.0004", 0);
    assert_int_equal(d.dropped.reason, COPY_SKIP_COALESCE_DROPPED);
    assert_dec(d.dropped.amount, "0.0007");
    assert_int_equal(copy_state_held(&z.st), 1);
    assert_int_equal(z.st.acc[0].used ? z.st.acc[0].dir : z.st.acc[1].dir, -1);

    /* A done fill that only closes leaves no slot behind either. */
    cz_init(&z, 2);
    cz_fill(&z, 11, MKT_BUY, "0.0007", false, &d);
    z.L = D("1");
    z.F = D("1");
    cz_fill(&z, 11, MKT_SELL, "0.5", true, &d);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.intents[0].kind, COPY_KIND_CLOSE);
    assert_true(d.dropped.set);
    assert_int_equal(d.dropped.reason, COPY_SKIP_COALESCE_DROPPED);
    assert_int_equal(copy_state_held(&z.st), 0);

    /* Paused: nothing is held, and a done fill still frees its slot. */
    cz_init(&z, 2);
    z.flat = true;
    cz_fill(&z, 12, MKT_BUY, "0.0007", false, &d);
    copy_state_set_paused(&z.st, true);
    cz_fill(&z, 12, MKT_BUY, "0.0007", false, &d);
    want(&d.intents[0], COPY_SKIP_RULE_PAUSED, "0", "0", 0);
    cz_fill(&z, 12, MKT_BUY, "0.0007", true, &d);
    want(&d.intents[0], COPY_SKIP_RULE_PAUSED, "0", "0", RE);
    assert_int_equal(d.dropped.reason, COPY_SKIP_COALESCE_DROPPED);
    assert_dec(d.dropped.amount, "0.0007");
    assert_int_equal(copy_state_held(&z.st), 0);
}

/* ---- leverage --------------------------------------------------------------------------- */

static void lev(const struct copy_rule *r, const struct copy_state *st, const char *symbol,
                const char *leader, const char *follower, enum copy_skip skip, const char *value,
                uint32_t adjust)
{
    struct copy_leverage_input in = {.rule = r, .symbol = symbol, .leader_leverage = D(leader),
                                     .follower_leverage = D(follower)};
    struct copy_leverage_intent out;
    assert_int_equal(copy_decide_leverage(&in, st, &out), 0);
    if (out.skip != skip)
        fail_msg("leader %s follower %s: %s, want %s", leader, follower, copy_skip_name(out.skip),
                 copy_skip_name(skip));
    assert_dec(out.leverage, value);
    assert_int_equal(out.adjust, adjust);
    assert_int_equal(out.dry_run, r->dry_run);
}

static void test_leverage(void **state)
{
    (void)state;
    static const char *const deny[] = {"DOGEUSDT"};
    struct copy_rule r = {.id = "r", .multiplier = D("1"), .max_leverage = D("10"),
                          .deny_symbols = deny, .n_deny = 1};
    struct copy_state st;
    copy_state_init(&st, NULL, 0);
    const uint32_t CL = COPY_ADJUST_CLAMPED_MAX_LEVERAGE;
    lev(&r, &st, "BTCUSDT", "20", "0", COPY_SKIP_NONE, "10", CL);
    lev(&r, &st, "BTCUSDT", "5", "20", COPY_SKIP_NONE, "5", 0);
    lev(&r, &st, "BTCUSDT", "10", "10", COPY_SKIP_LEVERAGE_UNCHANGED, "10", 0);
    lev(&r, &st, "BTCUSDT", "125", "10", COPY_SKIP_LEVERAGE_UNCHANGED, "10", CL);
    lev(&r, &st, "BTCUSDT", "0.5", "0", COPY_SKIP_INVALID_LEVERAGE, "0", 0);
    lev(&r, &st, "DOGEUSDT", "5", "0", COPY_SKIP_SYMBOL_NOT_ALLOWED, "0", 0);
    r.max_leverage = D("2.5");
    lev(&r, &st, "BTCUSDT", "20", "0", COPY_SKIP_NONE, "2", CL);
    r.max_leverage = D("0.5");
    lev(&r, &st, "BTCUSDT", "20", "0", COPY_SKIP_INVALID_LEVERAGE, "0", CL);
    r.max_leverage = DEC_ZERO;
    lev(&r, &st, "BTCUSDT", "7.5", "0", COPY_SKIP_NONE, "7", 0);
    /* close_only: lowering is allowed, raising (or an unknown current value) is not. */
    st.stopped = true;
    lev(&r, &st, "BTCUSDT", "5", "20", COPY_SKIP_NONE, "5", 0);
    lev(&r, &st, "BTCUSDT", "20", "5", COPY_SKIP_RULE_CLOSE_ONLY, "20", 0);
    lev(&r, &st, "BTCUSDT", "20", "0", COPY_SKIP_RULE_CLOSE_ONLY, "20", 0);
    copy_state_set_paused(&st, true);
    lev(&r, &st, "BTCUSDT", "5", "20", COPY_SKIP_RULE_PAUSED, "0", 0);
    r.dry_run = true;
    lev(&r, NULL, "BTCUSDT", "3", "20", COPY_SKIP_NONE, "3", 0);
    r.multiplier = DEC_ZERO;
    lev(&r, NULL, "BTCUSDT", "3", "20", COPY_SKIP_INVALID_RULE, "0", 0);

    struct copy_leverage_input in = {.rule = &r, .symbol = "X"};
    struct copy_leverage_intent out;
    assert_int_equal(copy_decide_leverage(NULL, NULL, &out), -EINVAL);
    assert_int_equal(copy_decide_leverage(&in, NULL, NULL), -EINVAL);
    in.symbol = NULL;
    assert_int_equal(copy_decide_leverage(&in, NULL, &out), -EINVAL);
}

/* ---- rule validation -------------------------------------------------------------------- */

static void test_rule_validate(void **state)
{
    (void)state;
    static const char *const list[] = {"BTCUSDT"};
    static const char *const bad_list[] = {""};
    struct copy_rule good = {.id = "r", .multiplier = D("1")};
    const char *field = NULL, *why = NULL;
    assert_int_equal(copy_rule_validate(&good, &field, &why), 0);
    assert_int_equal(copy_rule_validate(&good, NULL, NULL), 0);
    struct {
        const char *field;
        struct copy_rule r;
    } bad[] = {
        {"id", {.id = "", .multiplier = D("1")}},
        {"sizing", {.id = "r", .sizing = COPY_SIZING__COUNT, .multiplier = D("1")}},
        {"multiplier", {.id = "r", .multiplier = D("0")}},
        {"multiplier", {.id = "r", .sizing = COPY_SIZING_EQUITY_RATIO, .multiplier = D("-1")}},
        {"fixed_notional", {.id = "r", .sizing = COPY_SIZING_FIXED_NOTIONAL}},
        {"order_type", {.id = "r", .multiplier = D("1"), .order_type = COPY_ORDER__COUNT}},
        {"sides", {.id = "r", .multiplier = D("1"), .sides = COPY_SIDES__COUNT}},
        {"allow_symbols", {.id = "r", .multiplier = D("1"), .n_allow = 1}},
        {"deny_symbols", {.id = "r", .multiplier = D("1"), .deny_symbols = bad_list, .n_deny = 1}},
        {"max_position_notional", {.id = "r", .multiplier = D("1"), .max_position_notional = D("-1")}},
        {"max_leverage", {.id = "r", .multiplier = D("1"), .max_leverage = D("-2")}},
        {"max_slippage_bps", {.id = "r", .multiplier = D("1"), .max_slippage_bps = D("10000")}},
        {"max_ticker_age_ms", {.id = "r", .multiplier = D("1"), .max_ticker_age_ms = -1}},
        {"max_signal_age_ms", {.id = "r", .multiplier = D("1"), .max_signal_age_ms = -1}},
        {"daily_loss_limit", {.id = "r", .multiplier = D("1"), .daily_loss_limit = D("-1")}},
        {"max_drawdown_pct", {.id = "r", .multiplier = D("1"), .max_drawdown_pct = D("100")}},
        {"multiplier", {.id = "r", .multiplier = {1, 40}}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        field = why = NULL;
        assert_int_equal(copy_rule_validate(&bad[i].r, &field, &why), -EINVAL);
        assert_string_equal(field, bad[i].field);
        assert_non_null(why);
        assert_true(strlen(why) > 0);
    }
    assert_int_equal(copy_rule_validate(NULL, &field, &why), -EINVAL);
    /* fixed_notional ignores the multiplier; the lists take exact symbols. */
    struct copy_rule fixed = {.id = "f", .sizing = COPY_SIZING_FIXED_NOTIONAL,
                              .fixed_notional = D("10"), .allow_symbols = list, .n_allow = 1};
    assert_int_equal(copy_rule_validate(&fixed, &field, &why), 0);
    assert_true(copy_rule_symbol_allowed(&fixed, "BTCUSDT"));
    assert_false(copy_rule_symbol_allowed(&fixed, "btcusdt"));
    assert_false(copy_rule_symbol_allowed(&fixed, "ETHUSDT"));
    assert_false(copy_rule_symbol_allowed(NULL, "BTCUSDT"));
    assert_true(copy_rule_symbol_allowed(&good, "ANY"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daily_loss),
        cmocka_unit_test(test_drawdown),
        cmocka_unit_test(test_pause_overlay),
        cmocka_unit_test(test_coalesce_hold_send_carry_release),
        cmocka_unit_test(test_coalesce_fixed_notional),
        cmocka_unit_test(test_coalesce_off),
        cmocka_unit_test(test_coalesce_evict_and_drop),
        cmocka_unit_test(test_leverage),
        cmocka_unit_test(test_rule_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
