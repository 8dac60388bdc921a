/* copy_engine: derive the follower intents of one copy rule from one leader fill.
 *
 * Pure and synchronous: no I/O, no clock (now_ms is an input), no allocation, deterministic
 * (the same input and state give the same output and state, field for field; struct padding
 * is not part of a value). The caller journals every
 * intent returned, sent or skipped, and sends only those with skip == COPY_SKIP_NONE and
 * dry_run false. Exact decimals throughout; "floor" below means rounding toward zero to the
 * lot step, "exact target" the exact value truncated at 10^-18, or for sizes of 9.2 and more
 * that need all 18 digits at the finest coarser power of ten that fits, never coarser than
 * the step's last digit (so the floor of the truncated value equals the floor of the exact
 * one). Held coalescing amounts are summed exactly the same way.
 *
 * 1. WHAT THE LEADER DID. Directions are position directions: +1 long, -1 short.
 *  - One-way leader fill (fill.pos_side BOTH), L = leader.net before the fill, d = fill side:
 *    L flat or on side d -> open d by l; otherwise reduce L by c = min(l, |L|) (full when
 *    c == |L|), and if l > |L| also open d by l - |L| (a flip). A reduce-only fill that would
 *    open means our L is stale: leader_position_mismatch (copied as nothing).
 *  - Hedge leader fill (pos_side LONG/SHORT), hedge follower: per side. On LONG a BUY opens long,
 *    a SELL reduces long by min(l, long_size) (full when it takes it all; never a flip);
 *    SHORT mirrored. Reducing a side we see flat: leader_position_mismatch.
 *  - Hedge leader fill, one-way follower: the follower copies the leader's NET position
 *    L = long_size - short_size with the one-way rule above (a SELL on LONG while the leader is
 *    also short is an open short for the net). pos_side does not matter past this point.
 * 2. WHAT THE FOLLOWER DOES. The follower direction is the leader's, or the opposite with
 *    `reverse`. Legs: a reduction is leg 0 and an open after it leg 1; an open alone is leg 0.
 *  - One-way follower: orders carry pos_side BOTH; closes are reduce_only.
 *  - Hedge follower: orders carry pos_side LONG (long direction) or SHORT, and are NEVER
 *    reduce_only (Binance rejects reduceOnly in hedge mode): a close is the side opposite to
 *    the position's direction on that position side (SELL LONG, BUY SHORT). The "never flips"
 *    guarantee is kept by sizing: a close never exceeds that side's size.
 *  kind tells opens from closes whatever the mode.
 * 3. CLOSES (all sizing modes; the rule's sizing never enters). H = the follower's holding in
 *    the follower direction (one-way: |net| if net has that sign, else none; hedge: that side's
 *    size). H none -> no_follower_position. Full leader close -> floor(H). Partial ->
 *    x = H x c / |L|, qty = floor(x), except that a multiplier rule sends floor(x) + step when
 *    that still leaves at least floor((|L| - c) x k) (rounding_carry, see 5). Then clamped to H
 *    (clamped_position, defensive) and the max qty (clamped_max_qty); exempt from min notional,
 *    price and every open guard; zero -> rounds_to_zero, below min qty -> below_min_qty unless
 *    force_min rounds it up to the min qty and that is <= floor(H) and <= max qty (forced_min).
 * 4. OPENS, in this order (the first failing check names the skip):
 *    rule_close_only; invalid_rule; invalid_instrument; symbol_not_allowed (allow/deny lists);
 *    side_not_allowed (the follower direction against `sides`); stale_signal
 *    (max_signal_age_ms set and now_ms - fill.trade_time_ms (event_time_ms when 0) >
 *    max_signal_age_ms, or no time at all; a trade time ahead of now_ms counts as age 0);
 *    no_fresh_ticker / slippage (max_slippage_bps set: the ticker must be > 0 and
 *    0 <= age <= max_ticker_age_ms (COPY_DEFAULT_TICKER_AGE_MS when 0), and
 *    |ticker - fill price| x 10000 <= bps x fill price; symmetric, an unexplained move either
 *    way skips); the limit price (limit_ioc); sizing (no_equity, no_reference_price,
 *    size_out_of_range); then rounding, coalescing, limits, minimums as below. Closes skip
 *    none of these: closing late, off-price, in a denied symbol or against the side filter
 *    still reduces risk (closes check only invalid_instrument, no_follower_position, their
 *    size and, for limit_ioc, their price).
 *  - Reference price P: the limit price for limit_ioc, the leader fill price for market. P
 *    values the order for min notional, max_position_notional and max_leverage. Sizing
 *    (fixed_notional) uses the leader fill price.
 *  - Exact target t (copy_rule.h): multiplier l x k; fixed_notional N x l / (q x p) (q = o.q,
 *    or l when the order has no usable quantity); equity_ratio l x Ef / El x k (no_equity when
 *    either equity <= 0). x = t plus what the accumulator of this leader order holds.
 *  - qty = floor(x) (0 when x <= 0); a multiplier rule sends floor(x) + step when the
 *    follower's holding in the direction (0 if it holds the other way) plus that is still
 *    <= floor(|L after| x k) (rounding_carry).
 *  - Coalescing: when that qty is below the follower minimum (zero, min qty, or qty x P <
 *    min notional), the fill's order is not done (fill.order_done false, order_id not empty) and the
 *    state has slots, x is held in the order's accumulator: skip `coalescing`, nothing sent.
 *    A later fill of the order adds its target to x; once the qty reaches the minimum one
 *    intent goes out (adjust coalesced) and x - qty stays held (the rounding remainder; < 0
 *    after a rounding_carry). The order's done fill releases the slot (adjust released): its
 *    qty is sent if it reaches the minimum, forced up with force_min, else skipped with the
 *    below-minimum reason. A full table evicts the slot created first (output `dropped`,
 *    reason coalesce_evicted); a done fill that cannot use its slot drops it
 *    (coalesce_dropped). Closes are never coalesced (their ratio keeps the shrinking
 *    position in proportion and a full close takes everything).
 *  - Limits, each a cap on qty (floor to the step): the instrument max qty (clamped_max_qty);
 *    max_position_notional: E + qty <= max_position_notional / P (clamped_max_notional);
 *    max_leverage: E + qty <= follower equity x max_leverage / P (clamped_max_leverage;
 *    no_equity when the equity is <= 0). E, the follower's exposure in this symbol: one-way the
 *    signed net in the open's direction (negative while it holds the other way, so an open that
 *    first unwinds the other side may be larger), hedge the gross long + short. A cap <= 0 ->
 *    max_notional_reached / max_leverage_reached; a clamp below the minimum -> the same reason.
 *  - Minimum: qty == 0 -> rounds_to_zero, < min qty -> below_min_qty, qty x P < min notional ->
 *    below_min_notional (no_reference_price when P <= 0). force_min instead rounds up to the
 *    smallest step multiple >= min qty with a notional >= min notional (forced_min), but only
 *    when x > 0 and that fits every cap: the limits win over force_min, and coalescing comes
 *    before it (a held fill is forced only when its order is done).
 * 5. ROUNDING CARRY (multiplier rules). Without it every fill loses up to a step and a
 *    follower with a small k drifts below L x k for good. With it, when every sent intent
 *    fills and nothing is skipped for a minimum or clamped, the follower holds exactly
 *    floor(|L| x k) in the follower direction after every fill, so |F - L x k| < step (per
 *    position side in hedge-to-hedge copying, on the net otherwise). The extra step is only
 *    taken when the follower is at least one step short of (opens) or above (closes) that
 *    target, so a follower that drifted is corrected by at most one step per intent.
 * 6. ORDER TYPE. market: price 0, lot MARKET_LOT_SIZE (mkt_* fields when > 0, else LOT_SIZE).
 *    limit_ioc: lot LOT_SIZE; price = fill price x (1 + bps/10000) rounded DOWN to the tick for
 *    a buy, x (1 - bps/10000) rounded UP for a sell, so the limit never passes the bound; a
 *    buy above max_price comes down to it, a sell below min_price (or <= 0) goes up to it (both
 *    the safe way); a buy below min_price or a sell above max_price -> price_out_of_range.
 *    Closes use the same type and price rule.
 * 7. DRY RUN: every intent is computed exactly as live (state included) and marked dry_run.
 * 8. Status: paused -> every intent rule_paused; close_only -> opens rule_close_only.
 *
 * ORDERING: when leg 1 is to be sent, send it only after leg 0 is done (filled, rejected or
 * skipped). Sent in parallel, the open could land first and the reduce-only close would then
 * be trimmed or rejected, leaving the follower on the wrong side. */
#ifndef CT_COPY_ENGINE_H
#define CT_COPY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "copy_rule.h"
#include "copy_state.h"
#include "decimal.h"
#include "market.h"

#define COPY_MAX_INTENTS 2

enum copy_kind {
    COPY_KIND_OPEN = 1,  /* opens or adds */
    COPY_KIND_CLOSE = 2, /* reduces (reduce_only on one-way followers) */
};

/* Why an intent is not sent. Names (copy_skip_name) are stable: journal and metrics use them. */
enum copy_skip {
    COPY_SKIP_NONE = 0,
    COPY_SKIP_ROUNDS_TO_ZERO,           /* rounds_to_zero: below one lot step */
    COPY_SKIP_BELOW_MIN_QTY,            /* below_min_qty */
    COPY_SKIP_BELOW_MIN_NOTIONAL,       /* below_min_notional: opens only */
    COPY_SKIP_NO_FOLLOWER_POSITION,     /* no_follower_position: nothing to close that way */
    COPY_SKIP_LEADER_POSITION_MISMATCH, /* leader_position_mismatch: our view of L is stale */
    COPY_SKIP_NO_REFERENCE_PRICE,       /* no_reference_price: a price is needed and is <= 0 */
    COPY_SKIP_INVALID_FILL,             /* invalid_fill: side, qty <= 0, strings, pos_side */
    COPY_SKIP_INVALID_INSTRUMENT,       /* invalid_instrument: step <= 0, negative limits */
    COPY_SKIP_INVALID_RULE,             /* invalid_rule: copy_rule_validate fails (opens) */
    COPY_SKIP_SIZE_OUT_OF_RANGE,        /* size_out_of_range: the size does not fit a decimal */
    COPY_SKIP_RULE_PAUSED,              /* rule_paused */
    COPY_SKIP_RULE_CLOSE_ONLY,          /* rule_close_only: a loss stop tripped */
    COPY_SKIP_SYMBOL_NOT_ALLOWED,       /* symbol_not_allowed */
    COPY_SKIP_SIDE_NOT_ALLOWED,         /* side_not_allowed */
    COPY_SKIP_STALE_SIGNAL,             /* stale_signal */
    COPY_SKIP_NO_FRESH_TICKER,          /* no_fresh_ticker */
    COPY_SKIP_SLIPPAGE,                 /* slippage */
    COPY_SKIP_NO_EQUITY,                /* no_equity */
    COPY_SKIP_MAX_NOTIONAL_REACHED,     /* max_notional_reached */
    COPY_SKIP_MAX_LEVERAGE_REACHED,     /* max_leverage_reached */
    COPY_SKIP_COALESCING,               /* coalescing: held until the order reaches the minimum */
    COPY_SKIP_COALESCE_EVICTED,         /* coalesce_evicted: (copy_dropped only) table full */
    COPY_SKIP_COALESCE_DROPPED,         /* coalesce_dropped: (copy_dropped only) order done */
    COPY_SKIP_PRICE_OUT_OF_RANGE,       /* price_out_of_range: limit price outside PRICE_FILTER */
    COPY_SKIP_INVALID_LEVERAGE,         /* invalid_leverage: (leverage) leader value < 1 */
    COPY_SKIP_LEVERAGE_UNCHANGED,       /* leverage_unchanged: (leverage) already set */
    COPY_SKIP__COUNT
};

/* How a sent (or skipped) size differs from the plain floor of the target: a bit set. */
enum copy_adjust {
    COPY_ADJUST_NONE = 0,
    COPY_ADJUST_CLAMPED_MAX_QTY = 1u << 0,      /* clamped_max_qty: the instrument's max qty */
    COPY_ADJUST_CLAMPED_POSITION = 1u << 1,     /* clamped_position: a close cannot exceed H */
    COPY_ADJUST_CLAMPED_MAX_NOTIONAL = 1u << 2, /* clamped_max_notional */
    COPY_ADJUST_CLAMPED_MAX_LEVERAGE = 1u << 3, /* clamped_max_leverage */
    COPY_ADJUST_FORCED_MIN = 1u << 4,           /* forced_min: rounded up to the minimum */
    COPY_ADJUST_COALESCED = 1u << 5,            /* coalesced: includes held earlier fills */
    COPY_ADJUST_RELEASED = 1u << 6,             /* released: the order is done, slot freed */
    COPY_ADJUST_ROUNDING_CARRY = 1u << 7,       /* rounding_carry: floor + one step (see 5) */
};
#define COPY_ADJUST__BITS 8

struct copy_intent {
    char client_id[MKT_CLIENT_ID_MAX]; /* client_id_make(fill account, symbol, trade id, rule, leg) */
    unsigned leg;                      /* index in the decision: 0, or 1 for the open of a flip */
    enum copy_kind kind;
    enum mkt_side side;
    enum mkt_pos_side pos_side;        /* BOTH for one-way followers, LONG/SHORT for hedge ones */
    bool reduce_only;                  /* one-way closes only */
    enum copy_order_type order_type;
    dec_t price;      /* limit_ioc: the limit price (also for skips when computed); market: 0 */
    dec_t qty;        /* to send: a multiple of the step; for skips the value that failed (or 0) */
    dec_t target;     /* exact size before rounding and limits (incl. held amounts) */
    enum copy_skip skip;
    uint32_t adjust;  /* enum copy_adjust bits */
    bool dry_run;     /* the rule is dry-run: journal, never send */
};

/* An accumulator freed without an intent of its own (journal or log it; count the reason). */
struct copy_dropped {
    bool set;
    enum copy_skip reason; /* COPY_SKIP_COALESCE_EVICTED or COPY_SKIP_COALESCE_DROPPED */
    char symbol[MKT_SYMBOL_MAX];
    char order_id[MKT_ORDER_ID_MAX];
    dec_t amount;          /* the exact follower quantity that was held */
};

struct copy_decision {
    size_t n;                                  /* intents[0..n): 1 or 2 */
    struct copy_intent intents[COPY_MAX_INTENTS];
    struct copy_dropped dropped;
};

/* A position in one symbol. One-way accounts use net; hedge accounts long_size and short_size
 * (signs ignored: Binance reports SHORT sizes negative, Bybit positive). */
struct copy_pos {
    dec_t net;
    dec_t long_size;
    dec_t short_size;
};

struct copy_fill_input {
    const struct copy_rule *rule;
    const struct mkt_fill *fill;             /* the leader mode follows from fill->pos_side */
    const struct mkt_instrument *instrument; /* the follower exchange's filters for the symbol */
    struct copy_pos leader;                  /* the leader's position before this fill */
    dec_t leader_equity;                     /* equity_ratio; <= 0 = unknown */
    enum mkt_pos_mode follower_mode;
    struct copy_pos follower;                /* live plus orders in flight (what it will hold) */
    dec_t follower_equity;                   /* equity_ratio, max_leverage; <= 0 = unknown */
    dec_t ticker_price;                      /* cached last price, follower exchange; 0 = none */
    int64_t ticker_age_ms;                   /* now - ticker time; < 0 = unknown */
    int64_t now_ms;                          /* wall clock, ms since the epoch */
};

/* Decide one (fill, rule): fills out (always 1 or 2 intents, so every decision is journaled)
 * and updates st (accumulators). st may be NULL: active, no coalescing. Returns out->n, or
 * -EINVAL only for NULL pointers (in, rule, rule->id, fill, instrument, out); bad values
 * become skip reasons. */
int copy_decide_fill(const struct copy_fill_input *in, struct copy_state *st,
                     struct copy_decision *out);

/* LEVERAGE. A leader leverage change (Binance ACCOUNT_CONFIG_UPDATE ac) becomes one follower
 * set-leverage intent: min(leader, max_leverage) rounded DOWN to a whole number (Binance takes
 * integers; lower is the safe side), adjust clamped_max_leverage when the cap binds.
 * Skips: rule_paused; symbol_not_allowed; invalid_leverage (leader value invalid or < 1, or a
 * cap below 1); leverage_unchanged (the follower is known to be at that value already);
 * rule_close_only only for a raise (lowering leverage is always allowed). */
struct copy_leverage_input {
    const struct copy_rule *rule;
    const char *symbol;
    dec_t leader_leverage;
    dec_t follower_leverage; /* current setting, <= 0 = unknown */
};

struct copy_leverage_intent {
    dec_t leverage;   /* to set (the capped value also for skips, 0 when invalid) */
    enum copy_skip skip;
    uint32_t adjust;  /* COPY_ADJUST_CLAMPED_MAX_LEVERAGE or none */
    bool dry_run;
};

/* Returns 0, or -EINVAL for NULL pointers (in, rule, symbol, out). st may be NULL (active). */
int copy_decide_leverage(const struct copy_leverage_input *in, const struct copy_state *st,
                         struct copy_leverage_intent *out);

/* Stable snake_case names; "unknown" for values out of range. copy_adjust_name takes one bit. */
const char *copy_skip_name(enum copy_skip s);
const char *copy_adjust_name(enum copy_adjust a);
const char *copy_kind_name(enum copy_kind k);      /* "open", "close" */
const char *copy_pos_side_name(enum mkt_pos_side p); /* "both", "long", "short" */
/* The set bits of an adjust mask joined with ',' in bit order ("" for none). Returns the length,
 * or -ENOSPC when buf is too small (COPY_ADJUST_STR_MAX always suffices). */
#define COPY_ADJUST_STR_MAX 160
int copy_adjust_format(uint32_t adjust, char *buf, size_t n);

/* ---- skeleton compatibility (daemon/copier.c until it moves to copy_decide_fill) ---------
 * One-way leader and follower, no state, the fill price replaced by ref_price; intents are
 * those of copy_decide_fill. Remove once the caller has moved. */
struct copy_input {
    const struct copy_rule *rule;
    const struct mkt_fill *fill;
    const struct mkt_instrument *instrument;
    dec_t leader_pos_before; /* signed, before this fill */
    dec_t follower_pos;      /* signed, live */
    dec_t ref_price;
};
int copy_decide(const struct copy_input *in, struct copy_intent out[COPY_MAX_INTENTS]);

#endif
