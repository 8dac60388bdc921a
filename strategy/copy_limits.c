/* copy_limits: the guards and caps of opens, the limit price, lot filters and minimums.
 * See copy_engine.h sections 4 and 6 for the rules implemented here. */
#include "copy_internal.h"

static bool positive(dec_t d)
{
    return dec_valid(d) && dec_sign(d) > 0;
}

struct copy_lot copy_lot_of(const struct mkt_instrument *ins, enum copy_order_type t)
{
    struct copy_lot l;
    if (t == COPY_ORDER_LIMIT_IOC) {
        l.step = ins->step;
        l.min_qty = ins->min_qty;
        l.max_qty = ins->max_qty;
    } else {
        l.step = dec_sign(ins->mkt_step) > 0 ? ins->mkt_step : ins->step;
        l.min_qty = dec_sign(ins->mkt_min_qty) > 0 ? ins->mkt_min_qty : ins->min_qty;
        l.max_qty = dec_sign(ins->mkt_max_qty) > 0 ? ins->mkt_max_qty : ins->max_qty;
    }
    l.min_notional = ins->min_notional;
    return l;
}

bool copy_lot_valid(const struct copy_lot *l)
{
    return dec_valid(l->step) && dec_valid(l->min_qty) && dec_valid(l->max_qty) &&
           dec_valid(l->min_notional) && dec_sign(l->step) > 0 && dec_sign(l->min_qty) >= 0 &&
           dec_sign(l->max_qty) >= 0 && dec_sign(l->min_notional) >= 0;
}

/* |ticker - price| x 10000 > bps x price, exactly. */
static bool beyond_slippage(dec_t ticker, dec_t price, dec_t bps)
{
    static const dec_t ten_thousand = {10000, 0};
    dec_t diff, lhs;
    if (dec_sub(ticker, price, &diff) < 0 || dec_mul(dec_abs(diff), ten_thousand, &lhs) < 0)
        return true; /* a move too large to represent is beyond any bound */
    return dec_cmp_mul(bps, price, lhs) < 0;
}

enum copy_skip copy_open_gates(const struct copy_ctx *c, int fd)
{
    const struct copy_rule *r = c->r;
    const struct copy_fill_input *in = c->in;
    if (copy_state_status(c->st) == COPY_STATUS_CLOSE_ONLY)
        return COPY_SKIP_RULE_CLOSE_ONLY;
    if (!c->rule_ok)
        return COPY_SKIP_INVALID_RULE;
    if (!c->lot_ok)
        return COPY_SKIP_INVALID_INSTRUMENT;
    if (!copy_rule_symbol_allowed(r, c->f->symbol))
        return COPY_SKIP_SYMBOL_NOT_ALLOWED;
    if ((r->sides == COPY_SIDES_LONG_ONLY && fd < 0) || (r->sides == COPY_SIDES_SHORT_ONLY && fd > 0))
        return COPY_SKIP_SIDE_NOT_ALLOWED;
    if (r->max_signal_age_ms > 0) {
        int64_t t = c->f->trade_time_ms > 0 ? c->f->trade_time_ms : c->f->event_time_ms;
        /* No time at all: the age is unknown, and unknown is not fresh. A clock behind the
         * exchange's (now < t) counts as age 0. */
        if (t <= 0 || (in->now_ms > t && in->now_ms - t > r->max_signal_age_ms))
            return COPY_SKIP_STALE_SIGNAL;
    }
    if (dec_sign(r->max_slippage_bps) > 0) {
        int64_t max_age = r->max_ticker_age_ms > 0 ? r->max_ticker_age_ms : COPY_DEFAULT_TICKER_AGE_MS;
        if (!positive(in->ticker_price) || in->ticker_age_ms < 0 || in->ticker_age_ms > max_age)
            return COPY_SKIP_NO_FRESH_TICKER;
        if (!positive(c->f->price))
            return COPY_SKIP_NO_REFERENCE_PRICE;
        if (beyond_slippage(in->ticker_price, c->f->price, r->max_slippage_bps))
            return COPY_SKIP_SLIPPAGE;
    }
    return COPY_SKIP_NONE;
}

enum copy_skip copy_order_price(const struct copy_ctx *c, struct copy_intent *it)
{
    static const dec_t ten_thousand = {10000, 0}, bp = {1, 4};
    const struct mkt_instrument *ins = c->in->instrument;
    dec_t factor, p, tick = ins->tick;
    it->price = DEC_ZERO;
    if (it->order_type != COPY_ORDER_LIMIT_IOC)
        return COPY_SKIP_NONE;
    if (!positive(tick) || !dec_valid(ins->min_price) || !dec_valid(ins->max_price))
        return COPY_SKIP_INVALID_INSTRUMENT;
    if (!positive(c->f->price))
        return COPY_SKIP_NO_REFERENCE_PRICE;
    dec_t bps = dec_valid(c->r->max_slippage_bps) ? c->r->max_slippage_bps : DEC_ZERO;
    int rc = it->side == MKT_BUY ? dec_add(ten_thousand, bps, &factor)
                                 : dec_sub(ten_thousand, bps, &factor);
    if (rc == 0)
        rc = dec_mul(c->f->price, factor, &p);
    if (rc == 0)
        rc = dec_mul(p, bp, &p);
    if (rc < 0)
        return COPY_SKIP_PRICE_OUT_OF_RANGE;
    bool has_max = dec_sign(ins->max_price) > 0;
    if (it->side == MKT_BUY) {
        /* Down for a buy: never above the bound. Over the filter's max: lower is still safe. */
        if (dec_round_down(p, tick, &p) < 0)
            return COPY_SKIP_PRICE_OUT_OF_RANGE;
        if (has_max && dec_cmp(p, ins->max_price) > 0 && dec_round_down(ins->max_price, tick, &p) < 0)
            return COPY_SKIP_PRICE_OUT_OF_RANGE;
        if (dec_sign(p) <= 0 || dec_cmp(p, ins->min_price) < 0)
            return COPY_SKIP_PRICE_OUT_OF_RANGE;
    } else {
        /* Up for a sell: never below the bound. Under the filter's min: higher is still safe. */
        if (dec_sign(p) > 0 && dec_round_up(p, tick, &p) < 0)
            return COPY_SKIP_PRICE_OUT_OF_RANGE;
        if (dec_sign(p) <= 0 || dec_cmp(p, ins->min_price) < 0) {
            if (dec_round_up(dec_max(dec_abs(ins->min_price), tick), tick, &p) < 0)
                return COPY_SKIP_PRICE_OUT_OF_RANGE;
        }
        if (has_max && dec_cmp(p, ins->max_price) > 0)
            return COPY_SKIP_PRICE_OUT_OF_RANGE;
    }
    it->price = p;
    return COPY_SKIP_NONE;
}

dec_t copy_ref_price(const struct copy_ctx *c, const struct copy_intent *it)
{
    if (it->order_type == COPY_ORDER_LIMIT_IOC)
        return it->price;
    return dec_valid(c->f->price) ? c->f->price : DEC_ZERO;
}

enum copy_skip copy_below_min(const struct copy_ctx *c, dec_t qty, dec_t p, bool open)
{
    const struct copy_lot *l = &c->lot;
    if (dec_is_zero(qty))
        return COPY_SKIP_ROUNDS_TO_ZERO;
    if (dec_cmp(qty, l->min_qty) < 0)
        return COPY_SKIP_BELOW_MIN_QTY;
    if (!open || dec_is_zero(l->min_notional))
        return COPY_SKIP_NONE;
    if (!positive(p))
        return COPY_SKIP_NO_REFERENCE_PRICE;
    if (dec_cmp_mul(qty, p, l->min_notional) < 0)
        return COPY_SKIP_BELOW_MIN_NOTIONAL;
    return COPY_SKIP_NONE;
}

enum copy_skip copy_min_open(const struct copy_ctx *c, dec_t p, dec_t *minq)
{
    const struct copy_lot *l = &c->lot;
    dec_t m = dec_max(l->min_qty, l->step), n;
    if (dec_round_up(m, l->step, &m) < 0)
        return COPY_SKIP_SIZE_OUT_OF_RANGE;
    if (dec_sign(l->min_notional) > 0) {
        if (!positive(p))
            return COPY_SKIP_NO_REFERENCE_PRICE;
        /* ceil(min_notional / p) on the step grid: the floor, plus a step when it falls short. */
        if (dec_muldiv_round_down(l->min_notional, copy_one, p, l->step, &n) < 0)
            return COPY_SKIP_SIZE_OUT_OF_RANGE;
        if (dec_cmp_mul(n, p, l->min_notional) < 0 && dec_add(n, l->step, &n) < 0)
            return COPY_SKIP_SIZE_OUT_OF_RANGE;
        m = dec_max(m, n);
    }
    *minq = m;
    return COPY_SKIP_NONE;
}

/* floor(limit / p - e) on the step grid, 0 when nothing fits; limit = a x b. */
static int room(const struct copy_ctx *c, dec_t a, dec_t b, dec_t p, dec_t e, dec_t *out)
{
    dec_t total, left;
    int rc = copy_ratio_fit(a, b, copy_one, p, copy_one, c->lot.step, &total);
    if (rc < 0)
        return rc;
    /* total is the exact bound truncated to a unit that divides the step, and e (a position)
     * normally sits on that grid, so flooring total - e to the step equals flooring the exact
     * bound minus e. */
    if ((rc = copy_add_fit(total, dec_neg(e), c->lot.step, &left)) < 0)
        return rc;
    if (dec_sign(left) <= 0) {
        *out = DEC_ZERO;
        return 0;
    }
    return dec_round_down(left, c->lot.step, out);
}

enum copy_skip copy_open_caps(const struct copy_ctx *c, dec_t e, dec_t p, dec_t want, dec_t *cap,
                              uint32_t *which, enum copy_skip *why)
{
    const struct copy_rule *r = c->r;
    bool have = false;
    dec_t best = want, v;
    uint32_t bit = 0;
    enum copy_skip reason = COPY_SKIP_NONE;
    if (dec_sign(c->lot.max_qty) > 0) {
        if (dec_round_down(c->lot.max_qty, c->lot.step, &v) < 0)
            return COPY_SKIP_SIZE_OUT_OF_RANGE;
        have = true;
        best = v;
        bit = COPY_ADJUST_CLAMPED_MAX_QTY;
    }
    if (dec_sign(r->max_position_notional) > 0) {
        if (!positive(p))
            return COPY_SKIP_NO_REFERENCE_PRICE;
        if (room(c, r->max_position_notional, copy_one, p, e, &v) < 0)
            return COPY_SKIP_SIZE_OUT_OF_RANGE;
        if (!have || dec_cmp(v, best) < 0) {
            have = true;
            best = v;
            bit = COPY_ADJUST_CLAMPED_MAX_NOTIONAL;
            reason = COPY_SKIP_MAX_NOTIONAL_REACHED;
        }
    }
    if (dec_sign(r->max_leverage) > 0) {
        if (!positive(c->in->follower_equity))
            return COPY_SKIP_NO_EQUITY;
        if (!positive(p))
            return COPY_SKIP_NO_REFERENCE_PRICE;
        if (room(c, c->in->follower_equity, r->max_leverage, p, e, &v) < 0)
            return COPY_SKIP_SIZE_OUT_OF_RANGE;
        if (!have || dec_cmp(v, best) < 0) {
            have = true;
            best = v;
            bit = COPY_ADJUST_CLAMPED_MAX_LEVERAGE;
            reason = COPY_SKIP_MAX_LEVERAGE_REACHED;
        }
    }
    bool binds = have && dec_cmp(best, want) < 0;
    *cap = binds ? best : want;
    *which = binds ? bit : 0;
    *why = binds ? reason : COPY_SKIP_NONE;
    return COPY_SKIP_NONE;
}
