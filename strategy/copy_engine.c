/* copy_engine: leader fill x copy rule -> follower intents (see copy_engine.h). */
#include "copy_engine.h"

#include <errno.h>
#include <string.h>

#include "client_id.h"

/* Finest unit kept in intent.target: the exact size truncated here is only for the journal. */
static const dec_t target_unit = {1, DEC_MAX_SCALE};
static const dec_t one = {1, 0};

/* The quantity filters that apply to the order we will send. Market orders: MARKET_LOT_SIZE
 * where the exchange gives one, LOT_SIZE otherwise. Seam: limit_ioc orders take LOT_SIZE. */
struct lot {
    dec_t step, min_qty, max_qty; /* max_qty 0 = unlimited */
    dec_t min_notional;
};

static struct lot market_lot(const struct mkt_instrument *ins)
{
    struct lot l;
    l.step = dec_sign(ins->mkt_step) > 0 ? ins->mkt_step : ins->step;
    l.min_qty = dec_sign(ins->mkt_min_qty) > 0 ? ins->mkt_min_qty : ins->min_qty;
    l.max_qty = dec_sign(ins->mkt_max_qty) > 0 ? ins->mkt_max_qty : ins->max_qty;
    l.min_notional = ins->min_notional;
    return l;
}

static bool lot_valid(const struct lot *l)
{
    return dec_valid(l->step) && dec_valid(l->min_qty) && dec_valid(l->max_qty) &&
           dec_valid(l->min_notional) && dec_sign(l->step) > 0 && dec_sign(l->min_qty) >= 0 &&
           dec_sign(l->max_qty) >= 0 && dec_sign(l->min_notional) >= 0;
}

static bool str_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static bool fill_valid(const struct mkt_fill *f)
{
    return (f->side == MKT_BUY || f->side == MKT_SELL) && dec_valid(f->qty) && dec_sign(f->qty) > 0 &&
           str_terminated(f->account, sizeof f->account) && str_terminated(f->symbol, sizeof f->symbol);
}

/* Common part of every intent; the caller has checked the strings, so the id cannot fail. */
static void intent_init(struct copy_intent *it, const struct copy_input *in, unsigned leg,
                        enum copy_kind kind, enum mkt_side side)
{
    memset(it, 0, sizeof *it);
    (void)client_id_make(in->fill->account, in->fill->symbol, in->fill->trade_id, in->rule->id,
                         leg, it->client_id);
    it->leg = leg;
    it->kind = kind;
    it->side = side;
    it->reduce_only = kind == COPY_KIND_CLOSE;
    it->qty = DEC_ZERO;
    it->target = DEC_ZERO;
    it->skip = COPY_SKIP_NONE;
    it->adjust = COPY_ADJUST_NONE;
}

/* Clamp to the max qty (kept on the step grid), then the checks shared by opens and closes. */
static void finish_qty(struct copy_intent *it, const struct lot *l)
{
    if (dec_sign(l->max_qty) > 0 && dec_cmp(it->qty, l->max_qty) > 0) {
        if (dec_round_down(l->max_qty, l->step, &it->qty) < 0) {
            it->skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
            return;
        }
        it->adjust = COPY_ADJUST_CLAMPED_MAX_QTY;
    }
    if (dec_is_zero(it->qty))
        it->skip = COPY_SKIP_ROUNDS_TO_ZERO;
    else if (dec_cmp(it->qty, l->min_qty) < 0)
        it->skip = COPY_SKIP_BELOW_MIN_QTY;
}

/* Size of an open for a leader quantity (> 0). The sizing-mode seam: fixed_notional and
 * equity_ratio compute `target` differently; reverse flips `side` before this is called. */
static void size_open(struct copy_intent *it, const struct copy_input *in, const struct lot *l,
                      dec_t leader_qty)
{
    const struct copy_rule *r = in->rule;
    if (r->sizing != COPY_SIZING_MULTIPLIER || !dec_valid(r->multiplier) ||
        dec_sign(r->multiplier) <= 0) {
        it->skip = COPY_SKIP_INVALID_RULE;
        return;
    }
    if (dec_muldiv_round_down(leader_qty, r->multiplier, one, target_unit, &it->target) < 0 ||
        dec_muldiv_round_down(leader_qty, r->multiplier, one, l->step, &it->qty) < 0) {
        it->skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
        return;
    }
    finish_qty(it, l);
    if (it->skip != COPY_SKIP_NONE || dec_is_zero(l->min_notional))
        return;
    if (!dec_valid(in->ref_price) || dec_sign(in->ref_price) <= 0)
        it->skip = COPY_SKIP_NO_REFERENCE_PRICE;
    else if (dec_cmp_mul(it->qty, in->ref_price, l->min_notional) < 0)
        it->skip = COPY_SKIP_BELOW_MIN_NOTIONAL;
}

/* Size of a reduce-only close of the follower, who holds `fpos` (same sign as the leader's
 * position): all of it on a full close, else the leader's closed fraction of it. */
static void size_close(struct copy_intent *it, const struct lot *l, dec_t fpos, dec_t closed,
                       dec_t lpos_abs)
{
    dec_t fabs = dec_abs(fpos);
    bool full = dec_cmp(closed, lpos_abs) >= 0;
    int rc;
    if (full) {
        it->target = fabs;
        /* A position is normally on the step grid already; if the step changed under it, the
         * remainder below one step cannot be sent anyway. */
        rc = dec_round_down(fabs, l->step, &it->qty);
    } else {
        rc = dec_muldiv_round_down(fabs, closed, lpos_abs, target_unit, &it->target);
        if (rc == 0)
            rc = dec_muldiv_round_down(fabs, closed, lpos_abs, l->step, &it->qty);
    }
    if (rc < 0) {
        it->skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
        return;
    }
    if (dec_cmp(it->qty, fabs) > 0) { /* cannot happen for closed < |L|: defence in depth */
        it->qty = fabs;
        it->adjust = COPY_ADJUST_CLAMPED_POSITION;
    }
    finish_qty(it, l);
}

int copy_decide(const struct copy_input *in, struct copy_intent out[COPY_MAX_INTENTS])
{
    if (in == NULL || out == NULL || in->rule == NULL || in->rule->id == NULL || in->fill == NULL ||
        in->instrument == NULL)
        return -EINVAL;

    const struct mkt_fill *f = in->fill;
    if (!fill_valid(f)) {
        /* Strings may be unterminated: build the id from safe empties plus the trade id, so
         * the decision is still journaled under a deterministic key. */
        struct mkt_fill safe;
        memset(&safe, 0, sizeof safe);
        if (str_terminated(f->account, sizeof f->account))
            memcpy(safe.account, f->account, sizeof safe.account);
        if (str_terminated(f->symbol, sizeof f->symbol))
            memcpy(safe.symbol, f->symbol, sizeof safe.symbol);
        safe.trade_id = f->trade_id;
        struct copy_input sin = *in;
        sin.fill = &safe;
        intent_init(&out[0], &sin, 0, f->reduce_only ? COPY_KIND_CLOSE : COPY_KIND_OPEN,
                    f->side == MKT_SELL ? MKT_SELL : MKT_BUY);
        out[0].skip = COPY_SKIP_INVALID_FILL;
        return 1;
    }

    struct lot l = market_lot(in->instrument);
    bool lot_ok = lot_valid(&l);
    dec_t lpos = in->leader_pos_before, fpos = in->follower_pos;
    if (!dec_valid(lpos))
        lpos = DEC_ZERO; /* cannot happen with parsed values; treated as unknown = flat */
    if (!dec_valid(fpos))
        fpos = DEC_ZERO;
    int lsign = dec_sign(lpos);

    /* Open or add: in the direction of the leader's position, or from flat. */
    if (lsign == 0 || lsign == (int)f->side) {
        if (f->reduce_only) {
            /* The exchange never lets a reduce-only order open: our L is stale. Copying it as an
             * open would put the follower on the wrong side of the leader. */
            intent_init(&out[0], in, 0, COPY_KIND_CLOSE, f->side);
            out[0].skip = COPY_SKIP_LEADER_POSITION_MISMATCH;
            return 1;
        }
        intent_init(&out[0], in, 0, COPY_KIND_OPEN, f->side);
        if (!lot_ok)
            out[0].skip = COPY_SKIP_INVALID_INSTRUMENT;
        else
            size_open(&out[0], in, &l, f->qty);
        return 1;
    }

    /* Reduction: leg 0 closes the follower's share; a flip adds leg 1. */
    dec_t lpos_abs = dec_abs(lpos);
    dec_t closed = dec_min(f->qty, lpos_abs);
    int n = 1;
    intent_init(&out[0], in, 0, COPY_KIND_CLOSE, f->side);
    if (!lot_ok) {
        out[0].skip = COPY_SKIP_INVALID_INSTRUMENT;
    } else if (dec_sign(fpos) != lsign) {
        /* Flat, or on the other side: a reduce-only order would be rejected or, worse, a
         * plain one would grow the wrong-way position. */
        out[0].skip = COPY_SKIP_NO_FOLLOWER_POSITION;
    } else {
        out[0].side = dec_sign(fpos) > 0 ? MKT_SELL : MKT_BUY; /* opposite to the follower */
        size_close(&out[0], &l, fpos, closed, lpos_abs);
    }

    if (dec_cmp(f->qty, lpos_abs) > 0 && !f->reduce_only) {
        dec_t rest;
        intent_init(&out[1], in, 1, COPY_KIND_OPEN, f->side);
        if (dec_sub(f->qty, lpos_abs, &rest) < 0)
            out[1].skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
        else if (!lot_ok)
            out[1].skip = COPY_SKIP_INVALID_INSTRUMENT;
        else
            size_open(&out[1], in, &l, rest);
        n = 2;
    }
    return n;
}

const char *copy_skip_name(enum copy_skip s)
{
    switch (s) {
    case COPY_SKIP_NONE: return "none";
    case COPY_SKIP_ROUNDS_TO_ZERO: return "rounds_to_zero";
    case COPY_SKIP_BELOW_MIN_QTY: return "below_min_qty";
    case COPY_SKIP_BELOW_MIN_NOTIONAL: return "below_min_notional";
    case COPY_SKIP_NO_FOLLOWER_POSITION: return "no_follower_position";
    case COPY_SKIP_LEADER_POSITION_MISMATCH: return "leader_position_mismatch";
    case COPY_SKIP_NO_REFERENCE_PRICE: return "no_reference_price";
    case COPY_SKIP_INVALID_FILL: return "invalid_fill";
    case COPY_SKIP_INVALID_INSTRUMENT: return "invalid_instrument";
    case COPY_SKIP_INVALID_RULE: return "invalid_rule";
    case COPY_SKIP_SIZE_OUT_OF_RANGE: return "size_out_of_range";
    case COPY_SKIP__COUNT: break;
    }
    return "unknown";
}

const char *copy_adjust_name(enum copy_adjust a)
{
    switch (a) {
    case COPY_ADJUST_NONE: return "none";
    case COPY_ADJUST_CLAMPED_MAX_QTY: return "clamped_max_qty";
    case COPY_ADJUST_CLAMPED_POSITION: return "clamped_position";
    case COPY_ADJUST__COUNT: break;
    }
    return "unknown";
}

const char *copy_kind_name(enum copy_kind k)
{
    switch (k) {
    case COPY_KIND_OPEN: return "open";
    case COPY_KIND_CLOSE: return "close";
    }
    return "unknown";
}
