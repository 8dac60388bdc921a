/* copy_preflight: start-up checks of one copy rule against its follower account.
 *
 * Pure: the caller gathers the follower's position mode, equity, per-symbol leverage setting,
 * instruments and prices, calls copy_preflight once per rule, logs each problem once and
 * exports the count (by code and severity) as a metric. Problems never stop copying by
 * themselves: errors say the rule cannot copy as configured (every open would be skipped, or
 * orders would be rejected), warnings that it copies differently from what one may expect.
 *
 * Checks, in this order:
 *  invalid_rule (error)            copy_rule_validate fails; text names the field. Stops here.
 *  no_equity (error)               follower equity <= 0 or unknown (equity_ratio and
 *                                  max_leverage need it; so does judging the minimums).
 *  no_leader_equity (error)        equity_ratio and the leader's equity <= 0 (unknown).
 *  position_mode_netting (warning) hedge leader, one-way follower: the follower copies the
 *                                  leader's net position, not its two sides.
 *  limit_ioc_at_leader_price (warning) limit_ioc with max_slippage_bps 0: limits at the
 *                                  leader's exact price often do not fill.
 *  unknown_symbol (error)          an allow_symbols entry the follower's exchange does not list.
 * then per given symbol that the lists allow:
 *  leverage_above_max (warning)    the follower's leverage setting > max_leverage.
 *  cannot_reach_minimum (error)    the largest open the limits allow, min(max_position_notional,
 *                                  equity x max_leverage, or equity x the follower's leverage
 *                                  setting when max_leverage is 0; max_qty x price), is below
 *                                  the smallest order the symbol accepts (max(min qty, step) x
 *                                  price, min notional): every open would be skipped.
 *  fixed_notional_below_minimum (error; warning with force_min) fixed_notional below that
 *                                  smallest order: opens are skipped (or all forced up). */
#ifndef CT_COPY_PREFLIGHT_H
#define CT_COPY_PREFLIGHT_H

#include <stddef.h>

#include "copy_rule.h"
#include "decimal.h"
#include "market.h"

enum copy_problem_code {
    COPY_PROBLEM_INVALID_RULE = 1,
    COPY_PROBLEM_NO_EQUITY,
    COPY_PROBLEM_NO_LEADER_EQUITY,
    COPY_PROBLEM_POSITION_MODE_NETTING,
    COPY_PROBLEM_LIMIT_IOC_AT_LEADER_PRICE,
    COPY_PROBLEM_UNKNOWN_SYMBOL,
    COPY_PROBLEM_LEVERAGE_ABOVE_MAX,
    COPY_PROBLEM_CANNOT_REACH_MINIMUM,
    COPY_PROBLEM_FIXED_NOTIONAL_BELOW_MINIMUM,
    COPY_PROBLEM__COUNT
};

enum copy_severity { COPY_SEV_WARNING = 1, COPY_SEV_ERROR = 2 };

#define COPY_PROBLEM_TEXT_MAX 200

struct copy_problem {
    enum copy_problem_code code;
    enum copy_severity severity;
    char symbol[MKT_SYMBOL_MAX];      /* "" when not about one symbol */
    char text[COPY_PROBLEM_TEXT_MAX]; /* one line, plain ASCII, no secrets */
};

struct copy_preflight_symbol {
    const struct mkt_instrument *instrument; /* the follower exchange's filters */
    dec_t price;                             /* a recent price (ticker or mark) */
    dec_t follower_leverage;                 /* current setting; <= 0 = unknown */
};

struct copy_preflight_input {
    const struct copy_rule *rule;
    enum mkt_pos_mode leader_mode;
    enum mkt_pos_mode follower_mode;
    dec_t follower_equity;
    dec_t leader_equity;                       /* equity_ratio only */
    const struct copy_preflight_symbol *symbols; /* the symbols the follower may copy */
    size_t n_symbols;
};

/* Write up to cap problems into out (out may be NULL when cap is 0) and return how many there
 * are in all (more than cap means some were left out), or -EINVAL for a NULL in or rule. */
int copy_preflight(const struct copy_preflight_input *in, struct copy_problem *out, size_t cap);

/* "invalid_rule", "no_equity", ...; "warning", "error"; "unknown" out of range. */
const char *copy_problem_name(enum copy_problem_code c);
const char *copy_severity_name(enum copy_severity s);

#endif
