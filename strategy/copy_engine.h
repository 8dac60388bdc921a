/* copy_engine: derive the follower intents of one copy rule from one leader fill.
 *
 * Pure and synchronous: no I/O, no clock, no allocation. The caller supplies the positions and
 * the instrument filters it has cached and journals every intent this returns, sent or skipped.
 *
 * Semantics (one-way positions; L = leader position before the fill, F = follower position):
 *  - Open/add (the fill is in L's direction, or L is flat): qty = fill.qty x multiplier rounded
 *    down to the lot step, clamped to the max qty; skipped when it rounds to zero, is below the
 *    min qty or below the min notional (qty x ref_price). Not reduce-only.
 *  - Reduction (the fill is against L): leader_closed = min(fill.qty, |L|). A full close
 *    (leader_closed == |L|) closes all of |F|; a partial one closes |F| x leader_closed / |L|
 *    rounded down to the step, clamped to |F|. Reduce-only, side opposite to F, exempt from
 *    min notional, still subject to zero / min qty. F flat or on the other side than L: skip
 *    no_follower_position (a reduce-only order never opens or flips).
 *  - Flip (fill.qty > |L| against L): leg 0 = the full close above, leg 1 = an open of
 *    (fill.qty - |L|) x multiplier in the fill's direction. A reduce-only leader fill never
 *    produces an open leg.
 * Lot filters: MARKET_LOT_SIZE (mkt_*) fields when non-zero, else LOT_SIZE, per field (orders
 * are market orders for now).
 *
 * ORDERING: when leg 1 is to be sent, send it only after leg 0 is done (filled, rejected or
 * skipped). Sent in parallel, the open could land first and the reduce-only close would then
 * be trimmed or rejected, leaving the follower on the wrong side. */
#ifndef CT_COPY_ENGINE_H
#define CT_COPY_ENGINE_H

#include <stdbool.h>

#include "decimal.h"
#include "market.h"

#define COPY_MAX_INTENTS 2

/* Sizing of opens. Only multiplier for now; fixed_notional, equity_ratio (and the reverse flag,
 * max position notional, leverage and side limits) plug into the open sizing in copy_engine.c. */
enum copy_sizing {
    COPY_SIZING_MULTIPLIER = 0,
};

struct copy_rule {
    const char *id;          /* stable rule id: part of every client order id, never reused */
    enum copy_sizing sizing;
    dec_t multiplier;        /* COPY_SIZING_MULTIPLIER: follower qty = leader qty x multiplier, > 0 */
};

struct copy_input {
    const struct copy_rule *rule;
    const struct mkt_fill *fill;             /* account, symbol, trade_id, side, qty, reduce_only */
    const struct mkt_instrument *instrument; /* the follower exchange's filters for fill->symbol */
    dec_t leader_pos_before;                 /* signed, before this fill */
    dec_t follower_pos;                      /* signed, live */
    dec_t ref_price;                         /* for min notional (the leader fill price for now) */
};

enum copy_kind {
    COPY_KIND_OPEN = 1,  /* opens or adds; not reduce-only */
    COPY_KIND_CLOSE = 2, /* reduces; reduce-only */
};

/* Why an intent is not sent. Names (copy_skip_name) are stable: journal and metrics use them. */
enum copy_skip {
    COPY_SKIP_NONE = 0,
    COPY_SKIP_ROUNDS_TO_ZERO,             /* rounds_to_zero: below one lot step */
    COPY_SKIP_BELOW_MIN_QTY,              /* below_min_qty */
    COPY_SKIP_BELOW_MIN_NOTIONAL,         /* below_min_notional: opens only */
    COPY_SKIP_NO_FOLLOWER_POSITION,       /* no_follower_position: nothing on the leader's side to close */
    COPY_SKIP_LEADER_POSITION_MISMATCH,   /* leader_position_mismatch: reduce-only fill, yet L
                                             says it opens: our view of L is stale */
    COPY_SKIP_NO_REFERENCE_PRICE,         /* no_reference_price: min notional set, ref_price <= 0 */
    COPY_SKIP_INVALID_FILL,               /* invalid_fill: side, qty <= 0, unterminated strings */
    COPY_SKIP_INVALID_INSTRUMENT,         /* invalid_instrument: step <= 0, negative limits */
    COPY_SKIP_INVALID_RULE,               /* invalid_rule: multiplier <= 0, unknown sizing (opens) */
    COPY_SKIP_SIZE_OUT_OF_RANGE,          /* size_out_of_range: the size does not fit a decimal */
    COPY_SKIP__COUNT
};

/* How a sent quantity differs from the rounded target (journal and metrics). */
enum copy_adjust {
    COPY_ADJUST_NONE = 0,
    COPY_ADJUST_CLAMPED_MAX_QTY,  /* clamped_max_qty: the instrument's max qty */
    COPY_ADJUST_CLAMPED_POSITION, /* clamped_position: a close cannot exceed |F| */
    COPY_ADJUST__COUNT
};

struct copy_intent {
    char client_id[MKT_CLIENT_ID_MAX]; /* client_id_make(fill account, symbol, trade id, rule, leg) */
    unsigned leg;                      /* 0, or 1 for the open leg of a flip */
    enum copy_kind kind;
    enum mkt_side side;
    bool reduce_only;
    dec_t qty;        /* to send: a multiple of the step; for skips the value that failed (or 0) */
    dec_t target;     /* exact size before step rounding and clamps (truncated at 10^-18) */
    enum copy_skip skip;
    enum copy_adjust adjust;
};

/* Fill out[0..n) and return n (1 or 2): every (fill, rule) yields at least one intent so that
 * every decision is journaled. Returns -EINVAL only for NULL pointers (in, its rule, fill,
 * instrument, rule->id, out); bad values become skip reasons instead. */
int copy_decide(const struct copy_input *in, struct copy_intent out[COPY_MAX_INTENTS]);

/* Stable snake_case names; "unknown" for values out of range. */
const char *copy_skip_name(enum copy_skip s);
const char *copy_adjust_name(enum copy_adjust a);
const char *copy_kind_name(enum copy_kind k); /* "open", "close" */

#endif
