/* copy_sizing: exact targets of opens (the sizing modes) and the size of closes (ratio closes).
 * See copy_engine.h sections 3, 4 and 5 for the rules implemented here. */
#include <errno.h>

#include "copy_internal.h"

const dec_t copy_one = {1, 0};

int copy_ratio(dec_t a, dec_t b, dec_t c, dec_t d, dec_t e, dec_t unit, dec_t *out)
{
    dec_t den, x;
    int rc = dec_mul(d, e, &den);
    if (rc < 0)
        return rc;
    if (dec_is_zero(den))
        return -EINVAL;
    /* a x b x c may not fit one decimal while a pair does: try each pairing. The division is
     * exact in between, so every pairing gives the same result; the first that fits wins. */
    const dec_t pairs[3][3] = {{a, b, c}, {b, c, a}, {a, c, b}};
    for (int i = 0; i < 3; i++) {
        if (dec_mul(pairs[i][0], pairs[i][1], &x) == 0)
            return dec_muldiv_round_down(x, pairs[i][2], den, unit, out);
    }
    return -ERANGE;
}

/* The finest unit 10^-k (k <= 18) that keeps the value in a decimal, but never coarser than the
 * step's last digit: 10^-k then divides the step, so flooring to the step after truncating to
 * the unit still equals flooring the exact value. */
int copy_ratio_fit(dec_t a, dec_t b, dec_t c, dec_t d, dec_t e, dec_t step, dec_t *out)
{
    unsigned floor_scale = dec_valid(step) ? dec_normalize(step).scale : DEC_MAX_SCALE;
    int rc = -ERANGE;
    for (int k = DEC_MAX_SCALE; k >= (int)floor_scale && rc == -ERANGE; k--)
        rc = copy_ratio(a, b, c, d, e, (dec_t){1, (uint8_t)k}, out);
    return rc;
}

int copy_add_fit(dec_t a, dec_t b, dec_t step, dec_t *out)
{
    int rc = dec_add(a, b, out);
    if (rc != -ERANGE || !dec_valid(step))
        return rc;
    /* Only when both carry 18 digits and the sum is large: drop digits far below the step. */
    for (int k = DEC_MAX_SCALE - 1; k >= (int)dec_normalize(step).scale && rc == -ERANGE; k--) {
        dec_t u = {1, (uint8_t)k}, x, y;
        if (dec_round_down(a, u, &x) < 0 || dec_round_down(b, u, &y) < 0)
            continue;
        rc = dec_add(x, y, out);
    }
    return rc;
}

static bool positive(dec_t d)
{
    return dec_valid(d) && dec_sign(d) > 0;
}

/* The quantity of the leader's order to spread fixed_notional over (see copy_rule.h). */
static dec_t order_qty(const struct mkt_fill *f, dec_t lq)
{
    dec_t q = f->orig_qty;
    if (!positive(q) || dec_cmp(q, lq) < 0 || dec_cmp(q, f->qty) < 0)
        return lq;
    if (dec_valid(f->cum_qty) && dec_cmp(q, f->cum_qty) < 0)
        return lq;
    return q;
}

enum copy_skip copy_open_target(const struct copy_ctx *c, dec_t lq, dec_t *t)
{
    const struct copy_rule *r = c->r;
    const struct copy_fill_input *in = c->in;
    int rc;
    switch (r->sizing) {
    case COPY_SIZING_MULTIPLIER:
        rc = copy_ratio_fit(lq, r->multiplier, copy_one, copy_one, copy_one, c->lot.step, t);
        break;
    case COPY_SIZING_FIXED_NOTIONAL:
        if (!positive(c->f->price))
            return COPY_SKIP_NO_REFERENCE_PRICE;
        rc = copy_ratio_fit(r->fixed_notional, lq, copy_one, order_qty(c->f, lq), c->f->price,
                            c->lot.step, t);
        break;
    case COPY_SIZING_EQUITY_RATIO:
        if (!positive(in->follower_equity) || !positive(in->leader_equity))
            return COPY_SKIP_NO_EQUITY;
        rc = copy_ratio_fit(lq, in->follower_equity, r->multiplier, in->leader_equity, copy_one,
                            c->lot.step, t);
        break;
    default:
        return COPY_SKIP_INVALID_RULE;
    }
    return rc < 0 ? COPY_SKIP_SIZE_OUT_OF_RANGE : COPY_SKIP_NONE;
}

bool copy_carry_target(const struct copy_ctx *c, dec_t pos_abs, dec_t *target)
{
    if (!c->rule_ok || c->r->sizing != COPY_SIZING_MULTIPLIER || !c->lot_ok)
        return false;
    return dec_muldiv_round_down(pos_abs, c->r->multiplier, copy_one, c->lot.step, target) == 0;
}

void copy_size_close(const struct copy_ctx *c, struct copy_intent *it, dec_t h, dec_t closed,
                     dec_t before_abs)
{
    const struct copy_lot *l = &c->lot;
    dec_t q, hi, rest, tg;
    int rc;
    if (dec_cmp(closed, before_abs) >= 0) {
        it->target = h;
        /* A position is normally on the step grid already; if the step changed under it, the
         * part below one step cannot be sent anyway. */
        rc = dec_round_down(h, l->step, &q);
    } else {
        rc = copy_ratio_fit(h, closed, copy_one, before_abs, copy_one, l->step, &it->target);
        if (rc == 0)
            rc = dec_round_down(it->target, l->step, &q);
        /* Rounding carry: close one step more when that still leaves the follower at or above
         * floor(|L after| x k), i.e. when it holds more than its target. */
        if (rc == 0 && dec_add(q, l->step, &hi) == 0 && dec_cmp(hi, h) <= 0 &&
            dec_sub(before_abs, closed, &rest) == 0 && copy_carry_target(c, rest, &tg)) {
            dec_t left;
            if (dec_sub(h, hi, &left) == 0 && dec_cmp(left, tg) >= 0) {
                q = hi;
                it->adjust |= COPY_ADJUST_ROUNDING_CARRY;
            }
        }
    }
    if (rc < 0) {
        it->skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
        return;
    }
    if (dec_cmp(q, h) > 0) { /* cannot happen: defence in depth */
        if (dec_round_down(h, l->step, &q) < 0) {
            it->skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
            return;
        }
        it->adjust |= COPY_ADJUST_CLAMPED_POSITION;
    }
    if (dec_sign(l->max_qty) > 0 && dec_cmp(q, l->max_qty) > 0) {
        if (dec_round_down(l->max_qty, l->step, &q) < 0) {
            it->skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
            return;
        }
        it->adjust |= COPY_ADJUST_CLAMPED_MAX_QTY;
    }
    it->qty = q;
    enum copy_skip below = copy_below_min(c, q, DEC_ZERO, false);
    if (below == COPY_SKIP_NONE)
        return;
    if (c->r->force_min && dec_sign(it->target) > 0) {
        /* Round up to the min qty, never past what the follower holds or the max qty. */
        dec_t qm, hmax;
        if (dec_round_up(dec_max(l->min_qty, l->step), l->step, &qm) == 0 &&
            dec_round_down(h, l->step, &hmax) == 0 && dec_cmp(qm, hmax) <= 0 &&
            (dec_sign(l->max_qty) == 0 || dec_cmp(qm, l->max_qty) <= 0)) {
            it->qty = qm;
            it->adjust |= COPY_ADJUST_FORCED_MIN;
            return;
        }
    }
    it->skip = below;
}
