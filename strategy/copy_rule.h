/* copy_rule: the parameters of one copy rule (leader -> follower) and their validation.
 *
 * A plain value struct the config layer fills; the engine only reads it. Zero means "off" or
 * "default" for every optional field, so a rule cleared with memset plus an id and a multiplier
 * is the skeleton's plain multiplier rule. Money fields are exact decimals (dec_t). */
#ifndef CT_COPY_RULE_H
#define CT_COPY_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"

/* How the size of an open (or add) is derived from the leader's opened quantity l.
 * Closes never use it: they are always ratio closes of the follower's own position. */
enum copy_sizing {
    /* l x multiplier */
    COPY_SIZING_MULTIPLIER = 0,
    /* fixed_notional quote per leader ORDER that opens or adds, spread over the order's fills
     * pro rata: a fill opening l of an order of quantity q (o.q) at price p gets
     * fixed_notional x l / (q x p). An order without a quantity (o.q <= 0, or o.q below what has
     * filled) counts each fill as a whole order: fixed_notional / p. */
    COPY_SIZING_FIXED_NOTIONAL = 1,
    /* l x follower equity / leader equity x multiplier (set multiplier 1 for the pure ratio). */
    COPY_SIZING_EQUITY_RATIO = 2,
    COPY_SIZING__COUNT
};

/* Which follower positions an open may create or grow (the follower's side, after `reverse`). */
enum copy_sides {
    COPY_SIDES_BOTH = 0,
    COPY_SIDES_LONG_ONLY = 1,
    COPY_SIDES_SHORT_ONLY = 2,
    COPY_SIDES__COUNT
};

enum copy_order_type {
    COPY_ORDER_MARKET = 0,
    /* Limit, immediate-or-cancel, at the leader's fill price widened by max_slippage_bps and
     * rounded to the tick on the safe side (see copy_engine.h). */
    COPY_ORDER_LIMIT_IOC = 1,
    COPY_ORDER__COUNT
};

/* Ticker age accepted by the slippage guard when max_ticker_age_ms is 0 (the ticker cache TTL). */
#define COPY_DEFAULT_TICKER_AGE_MS 5000

struct copy_rule {
    const char *id;          /* stable rule id: part of every client order id, never reused */
    enum copy_sizing sizing;
    dec_t multiplier;        /* multiplier: k > 0; equity_ratio: extra factor > 0 (1 = none) */
    dec_t fixed_notional;    /* fixed_notional: quote amount per leader order, > 0 */
    bool reverse;            /* the follower takes the opposite side of the leader */
    bool force_min;          /* below the instrument minimum: round up to it instead of skipping */
    bool dry_run;            /* intents are computed and journaled, never sent */
    enum copy_order_type order_type;
    enum copy_sides sides;
    /* Symbol lists (exact, case-sensitive). allow empty = every symbol; deny wins over allow.
     * They gate opens only: closes of what the follower holds are always copied. */
    const char *const *allow_symbols;
    size_t n_allow;
    const char *const *deny_symbols;
    size_t n_deny;
    dec_t max_position_notional; /* quote; 0 = no limit */
    dec_t max_leverage;          /* follower position notional / follower equity; 0 = no limit */
    dec_t max_slippage_bps;      /* |ticker - leader price| bound for opens; 0 = no guard */
    int64_t max_ticker_age_ms;   /* slippage guard: older tickers do not count; 0 = default */
    int64_t max_signal_age_ms;   /* stale-signal guard for opens: now - trade time; 0 = none */
    dec_t daily_loss_limit;      /* quote lost since the UTC day's first equity sample; 0 = none */
    dec_t max_drawdown_pct;      /* percent below the equity peak, 0 < x < 100; 0 = none */
};

/* Check every field. Returns 0, or -EINVAL with *field set to the offending field's name as
 * spelled in this struct (the config's key: "multiplier", "allow_symbols", ...) and *why to a
 * short static explanation ("must be > 0"). field and why may be NULL. */
int copy_rule_validate(const struct copy_rule *r, const char **field, const char **why);

/* true if opens of `symbol` pass the allow and deny lists. */
bool copy_rule_symbol_allowed(const struct copy_rule *r, const char *symbol);

/* Stable snake_case names ("multiplier", "fixed_notional", "equity_ratio"; "both", "long_only",
 * "short_only"; "market", "limit_ioc"); "unknown" out of range. */
const char *copy_sizing_name(enum copy_sizing s);
const char *copy_sides_name(enum copy_sides s);
const char *copy_order_type_name(enum copy_order_type t);

#endif
