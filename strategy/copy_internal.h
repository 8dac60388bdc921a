/* copy_internal: seams between the copy engine's files (not for callers outside strategy/). */
#ifndef CT_COPY_INTERNAL_H
#define CT_COPY_INTERNAL_H

#include <stdbool.h>

#include "copy_engine.h"

extern const dec_t copy_one;

/* The quantity filters of the order we will send (market: MARKET_LOT_SIZE fields when > 0,
 * else LOT_SIZE; limit: LOT_SIZE). */
struct copy_lot {
    dec_t step, min_qty, max_qty; /* max_qty 0 = unlimited */
    dec_t min_notional;
};

struct copy_lot copy_lot_of(const struct mkt_instrument *ins, enum copy_order_type t);
bool copy_lot_valid(const struct copy_lot *l);

/* Everything one decision needs, computed once. */
struct copy_ctx {
    const struct copy_fill_input *in;
    const struct copy_rule *r;
    const struct mkt_fill *f;
    struct copy_state *st;      /* may be NULL */
    struct copy_decision *out;
    struct copy_lot lot;
    bool lot_ok;
    bool rule_ok;               /* copy_rule_validate passed */
    bool hedge;                 /* follower in hedge mode */
};

/* ---- copy_sizing.c ------------------------------------------------------------------------ */

/* Exact target of an open of leader quantity lq (> 0): *t, or a skip reason. */
enum copy_skip copy_open_target(const struct copy_ctx *c, dec_t lq, dec_t *t);

/* floor(|pos| x k) to the step: the multiplier rule's target holding (rounding carry). Returns
 * false when it cannot be computed (the carry is then not taken). */
bool copy_carry_target(const struct copy_ctx *c, dec_t pos_abs, dec_t *target);

/* Size the close leg `it` (side, pos_side set) of a follower holding h > 0 when the leader
 * reduces c of before_abs (full when c >= before_abs). */
void copy_size_close(const struct copy_ctx *c, struct copy_intent *it, dec_t h, dec_t closed,
                     dec_t before_abs);

/* a x b x c / (d x e), truncated toward zero to a multiple of unit; exact (tries the
 * groupings that fit). 0, -ERANGE, -EINVAL (d x e == 0). */
int copy_ratio(dec_t a, dec_t b, dec_t c, dec_t d, dec_t e, dec_t unit, dec_t *out);
/* The same, truncated at 10^-18, or at the finest coarser unit that fits (never coarser than
 * step's last digit, so flooring the result to step is still exact). */
int copy_ratio_fit(dec_t a, dec_t b, dec_t c, dec_t d, dec_t e, dec_t step, dec_t *out);
/* a + b, exact when it fits; else both truncated to the finest unit that fits (not coarser than
 * step's last digit). */
int copy_add_fit(dec_t a, dec_t b, dec_t step, dec_t *out);

/* ---- copy_limits.c ------------------------------------------------------------------------ */

/* Status, rule, symbol, side, stale and ticker guards of an open in follower direction fd. */
enum copy_skip copy_open_gates(const struct copy_ctx *c, int fd);

/* The limit price of `it` (limit_ioc) into it->price; market leaves 0. A skip reason or NONE. */
enum copy_skip copy_order_price(const struct copy_ctx *c, struct copy_intent *it);

/* The reference price P of an intent: its limit price, else the fill price. */
dec_t copy_ref_price(const struct copy_ctx *c, const struct copy_intent *it);

/* The smallest sendable open at price p (step multiple >= min qty, notional >= min notional),
 * at least one step. Returns a skip reason (no_reference_price, size_out_of_range) or NONE. */
enum copy_skip copy_min_open(const struct copy_ctx *c, dec_t p, dec_t *minq);

/* Which minimum qty (> 0 or 0) misses at price p: NONE when it is sendable. */
enum copy_skip copy_below_min(const struct copy_ctx *c, dec_t qty, dec_t p, bool open);

/* Caps of an open: *cap = the largest qty allowed by max qty, max_position_notional and
 * max_leverage given exposure e at price p (step multiple; may be 0). *which gets the adjust
 * bit of the tightest cap that is below `want` (0 if none) and *why the skip reason of a cap
 * (max_notional_reached / max_leverage_reached / NONE for the instrument's max qty).
 * Returns a skip reason when a cap cannot be computed (no_equity, size_out_of_range). */
enum copy_skip copy_open_caps(const struct copy_ctx *c, dec_t e, dec_t p, dec_t want, dec_t *cap,
                              uint32_t *which, enum copy_skip *why);

/* ---- copy_state.c ------------------------------------------------------------------------- */

struct copy_accum *copy_accum_find(struct copy_state *st, const char *symbol, const char *order_id);
/* A fresh slot; when full, the oldest is evicted into *dropped first. NULL if no slots. */
struct copy_accum *copy_accum_take(struct copy_state *st, const char *symbol, const char *order_id,
                                   int dir, struct copy_dropped *dropped);
void copy_accum_free(struct copy_accum *a);

#endif
