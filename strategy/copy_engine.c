/* copy_engine: leader fill x copy rule -> follower intents (see copy_engine.h).
 * This file maps the leader's move and the position modes onto legs; copy_sizing.c sizes them
 * and copy_limits.c guards and caps them. */
#include "copy_engine.h"

#include <errno.h>
#include <string.h>

#include "client_id.h"
#include "copy_internal.h"

static bool str_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static bool fill_valid(const struct mkt_fill *f)
{
    return (f->side == MKT_BUY || f->side == MKT_SELL) && dec_valid(f->qty) && dec_sign(f->qty) > 0 &&
           (unsigned)f->pos_side <= MKT_PS_SHORT && str_terminated(f->account, sizeof f->account) &&
           str_terminated(f->symbol, sizeof f->symbol) && str_terminated(f->trade_id, sizeof f->trade_id) &&
           f->trade_id[0] != '\0' && str_terminated(f->order_id, sizeof f->order_id);
}

static dec_t valid_or_zero(dec_t d)
{
    return dec_valid(d) ? d : DEC_ZERO; /* cannot happen with parsed values: unknown = flat */
}

/* What the leader did, in position directions (+1 long, -1 short; 0 = none). */
struct move {
    int mismatch_dir;  /* != 0: the fill reduces a position we see flat or on the other side */
    int close_dir;     /* the leader position reduced */
    dec_t closed, before_abs;
    int open_dir;
    dec_t open_qty, open_after_abs; /* leader position in open_dir after the fill */
};

static void classify(const struct copy_ctx *c, struct move *mv)
{
    const struct mkt_fill *f = c->f;
    const struct copy_pos *lp = &c->in->leader;
    int d = (int)f->side;
    memset(mv, 0, sizeof *mv);
    if (f->pos_side != MKT_PS_BOTH && c->hedge) {
        /* Hedge to hedge: per position side; a side never goes below zero, so no flip. */
        int pd = f->pos_side == MKT_PS_LONG ? 1 : -1;
        dec_t side = dec_abs(valid_or_zero(pd > 0 ? lp->long_size : lp->short_size));
        if (d == pd) {
            mv->open_dir = pd;
            mv->open_qty = f->qty;
            if (dec_add(side, f->qty, &mv->open_after_abs) < 0)
                mv->open_after_abs = f->qty; /* carry target only; cannot happen */
        } else if (dec_is_zero(side)) {
            mv->mismatch_dir = pd;
        } else {
            mv->close_dir = pd;
            mv->closed = dec_min(f->qty, side);
            mv->before_abs = side;
        }
        return;
    }
    dec_t L;
    if (f->pos_side == MKT_PS_BOTH) {
        L = valid_or_zero(lp->net);
    } else if (dec_sub(dec_abs(valid_or_zero(lp->long_size)), dec_abs(valid_or_zero(lp->short_size)),
                       &L) < 0) {
        L = DEC_ZERO;
    }
    /* o.R only means something on one-way accounts. */
    bool ro = f->reduce_only && f->pos_side == MKT_PS_BOTH;
    int s = dec_sign(L);
    dec_t labs = dec_abs(L);
    if (s == 0 || s == d) {
        if (ro) {
            mv->mismatch_dir = -d;
            return;
        }
        mv->open_dir = d;
        mv->open_qty = f->qty;
        if (dec_add(labs, f->qty, &mv->open_after_abs) < 0)
            mv->open_after_abs = f->qty;
        return;
    }
    mv->close_dir = s;
    mv->closed = dec_min(f->qty, labs);
    mv->before_abs = labs;
    if (dec_cmp(f->qty, labs) > 0 && !ro) {
        mv->open_dir = d;
        if (dec_sub(f->qty, labs, &mv->open_qty) < 0)
            mv->open_qty = DEC_ZERO; /* cannot happen: f->qty > labs >= 0 */
        mv->open_after_abs = mv->open_qty;
    }
}

/* The follower's position as the legs move it (they are assumed to fill, as sent). */
struct fpos {
    dec_t net, lng, shrt; /* net for one-way; lng/shrt (>= 0) for hedge */
};

/* What the follower holds in direction fd (>= 0). */
static dec_t holding(const struct copy_ctx *c, const struct fpos *p, int fd)
{
    if (c->hedge)
        return fd > 0 ? p->lng : p->shrt;
    return dec_sign(p->net) == fd ? dec_abs(p->net) : DEC_ZERO;
}

/* Exposure for the open caps: one-way the signed net in direction fd, hedge the gross. */
static int exposure(const struct copy_ctx *c, const struct fpos *p, int fd, dec_t *e)
{
    if (c->hedge)
        return dec_add(p->lng, p->shrt, e);
    *e = fd > 0 ? p->net : dec_neg(p->net);
    return 0;
}

/* Apply a close of q from the holding in direction fd (leg 0, before the open leg). */
static void apply_close(const struct copy_ctx *c, struct fpos *p, int fd, dec_t q)
{
    dec_t *v = c->hedge ? (fd > 0 ? &p->lng : &p->shrt) : &p->net;
    dec_t delta = (c->hedge || fd > 0) ? dec_neg(q) : q, r;
    if (dec_add(*v, delta, &r) == 0)
        *v = r;
}

static void intent_init(const struct copy_ctx *c, struct copy_intent *it, const struct mkt_fill *f,
                        unsigned leg, enum copy_kind kind, int fd)
{
    memset(it, 0, sizeof *it);
    (void)client_id_make(f->account, f->symbol, f->trade_id, c->r->id, leg, it->client_id);
    it->leg = leg;
    it->kind = kind;
    /* An open goes the follower's way; a close the other way. */
    int s = kind == COPY_KIND_OPEN ? fd : -fd;
    it->side = s > 0 ? MKT_BUY : MKT_SELL;
    it->pos_side = c->hedge ? (fd > 0 ? MKT_PS_LONG : MKT_PS_SHORT) : MKT_PS_BOTH;
    it->reduce_only = kind == COPY_KIND_CLOSE && !c->hedge;
    it->order_type = c->rule_ok ? c->r->order_type : COPY_ORDER_MARKET;
    it->price = DEC_ZERO;
    it->qty = DEC_ZERO;
    it->target = DEC_ZERO;
    it->skip = COPY_SKIP_NONE;
    it->adjust = COPY_ADJUST_NONE;
    it->dry_run = c->r->dry_run;
}

static void decide_close(const struct copy_ctx *c, struct copy_intent *it, int fd,
                         const struct move *mv, const struct fpos *p)
{
    dec_t h = holding(c, p, fd);
    if (!c->lot_ok) {
        it->skip = COPY_SKIP_INVALID_INSTRUMENT;
        return;
    }
    if (dec_sign(h) <= 0) {
        /* Flat, or on the other side: a close would be rejected or, worse, grow the
         * wrong-way position. */
        it->skip = COPY_SKIP_NO_FOLLOWER_POSITION;
        return;
    }
    copy_size_close(c, it, h, mv->closed, mv->before_abs);
    if (it->skip == COPY_SKIP_NONE)
        it->skip = copy_order_price(c, it);
}

/* The order's accumulator is released (done fill): flag it on the open, free the slot. */
static void release(const struct copy_ctx *c, struct copy_intent *it, struct copy_accum *a)
{
    (void)c;
    if (a == NULL)
        return;
    it->adjust |= COPY_ADJUST_RELEASED;
    copy_accum_free(a);
}

static void drop(const struct copy_ctx *c, struct copy_accum *a)
{
    struct copy_dropped *d = &c->out->dropped;
    memset(d, 0, sizeof *d);
    d->set = true;
    d->reason = COPY_SKIP_COALESCE_DROPPED;
    memcpy(d->symbol, a->symbol, sizeof d->symbol);
    memcpy(d->order_id, a->order_id, sizeof d->order_id);
    d->amount = a->amount;
    copy_accum_free(a);
}

static void decide_open(const struct copy_ctx *c, struct copy_intent *it, int fd,
                        const struct move *mv, const struct fpos *p)
{
    const struct mkt_fill *f = c->f;
    bool done = f->order_done || f->order_id[0] == '\0';
    struct copy_accum *a = f->order_id[0] ? copy_accum_find(c->st, f->symbol, f->order_id) : NULL;
    if (a != NULL && a->dir != fd) {
        drop(c, a); /* the order changed direction under us (our L was off): start over */
        a = NULL;
    }
    enum copy_skip skip = copy_open_gates(c, fd);
    if (skip == COPY_SKIP_NONE)
        skip = copy_order_price(c, it);
    dec_t t = DEC_ZERO;
    if (skip == COPY_SKIP_NONE)
        skip = copy_open_target(c, mv->open_qty, &t);
    if (skip != COPY_SKIP_NONE) {
        it->skip = skip;
        if (done && a != NULL) {
            it->adjust |= COPY_ADJUST_RELEASED;
            drop(c, a);
        }
        return;
    }

    const struct copy_lot *l = &c->lot;
    dec_t x = t, q = DEC_ZERO, tg, hi, e;
    if (a != NULL) {
        it->adjust |= COPY_ADJUST_COALESCED;
        if (copy_add_fit(t, a->amount, l->step, &x) < 0)
            skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
    }
    it->target = x;
    if (skip == COPY_SKIP_NONE && dec_sign(x) > 0 && dec_round_down(x, l->step, &q) < 0)
        skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
    if (skip == COPY_SKIP_NONE && exposure(c, p, fd, &e) < 0)
        skip = COPY_SKIP_SIZE_OUT_OF_RANGE;
    if (skip != COPY_SKIP_NONE) {
        it->skip = skip;
        if (done)
            release(c, it, a);
        return;
    }
    /* Rounding carry: one step more while the follower is a step or more below its target. */
    dec_t have = holding(c, p, fd), with;
    if (copy_carry_target(c, mv->open_after_abs, &tg) && dec_add(q, l->step, &hi) == 0 &&
        dec_add(have, hi, &with) == 0 && dec_cmp(with, tg) <= 0) {
        q = hi;
        it->adjust |= COPY_ADJUST_ROUNDING_CARRY;
    }
    dec_t P = copy_ref_price(c, it), cap;
    uint32_t which;
    enum copy_skip why;
    it->qty = q;
    enum copy_skip below = copy_below_min(c, q, P, true);
    if (below == COPY_SKIP_NO_REFERENCE_PRICE) {
        it->skip = below;
        if (done)
            release(c, it, a);
        return;
    }
    if (below != COPY_SKIP_NONE) {
        if (!done && c->st != NULL && c->st->acc_cap > 0) {
            if (a == NULL)
                a = copy_accum_take(c->st, f->symbol, f->order_id, fd, &c->out->dropped);
            a->amount = x;
            it->skip = COPY_SKIP_COALESCING;
            return;
        }
        release(c, it, a);
        dec_t minq;
        if (c->r->force_min && dec_sign(x) > 0) {
            skip = copy_min_open(c, P, &minq);
            if (skip == COPY_SKIP_NONE)
                skip = copy_open_caps(c, e, P, minq, &cap, &which, &why);
            if (skip != COPY_SKIP_NONE) {
                it->skip = skip;
                return;
            }
            if (which == 0) {
                it->qty = minq;
                it->adjust |= COPY_ADJUST_FORCED_MIN;
                return;
            }
            /* The limits win over force_min. */
            it->adjust |= which;
            it->skip = why != COPY_SKIP_NONE ? why : below;
            return;
        }
        it->skip = below;
        return;
    }

    skip = copy_open_caps(c, e, P, q, &cap, &which, &why);
    if (skip != COPY_SKIP_NONE) {
        it->skip = skip;
        if (done)
            release(c, it, a);
        return;
    }
    if (which != 0) {
        it->qty = cap;
        it->adjust |= which;
        below = copy_below_min(c, cap, P, true);
        if (below != COPY_SKIP_NONE)
            it->skip = why != COPY_SKIP_NONE ? why : below;
    }
    /* Carry the rounding remainder x - q (q before the limits: what a limit cut off is not
     * sent later). */
    if (a != NULL) {
        if (done) {
            release(c, it, a);
        } else if (dec_sub(x, q, &a->amount) < 0) {
            a->amount = DEC_ZERO;
        }
    }
}

int copy_decide_fill(const struct copy_fill_input *in, struct copy_state *st,
                     struct copy_decision *out)
{
    if (in == NULL || out == NULL || in->rule == NULL || in->rule->id == NULL || in->fill == NULL ||
        in->instrument == NULL)
        return -EINVAL;
    memset(out, 0, sizeof *out);

    struct copy_ctx c;
    memset(&c, 0, sizeof c);
    c.in = in;
    c.r = in->rule;
    c.f = in->fill;
    c.st = st;
    c.out = out;
    c.rule_ok = copy_rule_validate(in->rule, NULL, NULL) == 0;
    c.hedge = in->follower_mode == MKT_PM_HEDGE;
    c.lot = copy_lot_of(in->instrument, c.rule_ok ? in->rule->order_type : COPY_ORDER_MARKET);
    c.lot_ok = copy_lot_valid(&c.lot);

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
        if (str_terminated(f->trade_id, sizeof f->trade_id))
            memcpy(safe.trade_id, f->trade_id, sizeof safe.trade_id);
        int d = f->side == MKT_SELL ? -1 : 1;
        intent_init(&c, &out->intents[0], &safe, 0,
                    f->reduce_only ? COPY_KIND_CLOSE : COPY_KIND_OPEN, f->reduce_only ? -d : d);
        out->intents[0].skip = COPY_SKIP_INVALID_FILL;
        out->n = 1;
        return 1;
    }

    struct move mv;
    classify(&c, &mv);
    int rev = c.r->reverse ? -1 : 1;
    struct fpos p = {
        .net = valid_or_zero(in->follower.net),
        .lng = dec_abs(valid_or_zero(in->follower.long_size)),
        .shrt = dec_abs(valid_or_zero(in->follower.short_size)),
    };
    bool paused = copy_state_status(st) == COPY_STATUS_PAUSED;

    if (mv.mismatch_dir != 0) {
        /* The exchange never lets a reduce-only order open: our L is stale. Copying it as an
         * open would put the follower on the wrong side of the leader. */
        struct copy_intent *it = &out->intents[out->n++];
        intent_init(&c, it, f, 0, COPY_KIND_CLOSE, rev * mv.mismatch_dir);
        it->skip = paused ? COPY_SKIP_RULE_PAUSED : COPY_SKIP_LEADER_POSITION_MISMATCH;
    }
    if (mv.close_dir != 0) {
        struct copy_intent *it = &out->intents[out->n];
        intent_init(&c, it, f, (unsigned)out->n, COPY_KIND_CLOSE, rev * mv.close_dir);
        out->n++;
        if (paused) {
            it->skip = COPY_SKIP_RULE_PAUSED;
        } else {
            decide_close(&c, it, rev * mv.close_dir, &mv, &p);
            if (it->skip == COPY_SKIP_NONE)
                apply_close(&c, &p, rev * mv.close_dir, it->qty);
        }
    }
    struct copy_intent *open = NULL;
    if (mv.open_dir != 0) {
        open = &out->intents[out->n];
        intent_init(&c, open, f, (unsigned)out->n, COPY_KIND_OPEN, rev * mv.open_dir);
        out->n++;
        if (paused)
            open->skip = COPY_SKIP_RULE_PAUSED;
        else
            decide_open(&c, open, rev * mv.open_dir, &mv, &p);
    }
    /* A done order leaves no slot behind, whatever happened to this fill. */
    if (f->order_done && f->order_id[0]) {
        struct copy_accum *a = copy_accum_find(st, f->symbol, f->order_id);
        if (a != NULL) {
            if (open != NULL)
                open->adjust |= COPY_ADJUST_RELEASED;
            drop(&c, a);
        }
    }
    return (int)out->n;
}

/* ---- skeleton compatibility --------------------------------------------------------------- */

int copy_decide(const struct copy_input *in, struct copy_intent out[COPY_MAX_INTENTS])
{
    if (in == NULL || out == NULL || in->fill == NULL)
        return -EINVAL;
    struct mkt_fill f = *in->fill;
    f.price = in->ref_price;
    struct copy_fill_input fi = {
        .rule = in->rule,
        .fill = &f,
        .instrument = in->instrument,
        .leader = {.net = in->leader_pos_before},
        .follower_mode = MKT_PM_ONE_WAY,
        .follower = {.net = in->follower_pos},
        .ticker_age_ms = -1,
    };
    struct copy_decision d;
    int n = copy_decide_fill(&fi, NULL, &d);
    if (n > 0)
        memcpy(out, d.intents, sizeof(out[0]) * (size_t)n);
    return n;
}
