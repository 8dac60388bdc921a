/* copy_names: the stable snake_case names of the engine's codes (journal values, metric labels). */
#include <errno.h>
#include <string.h>

#include "copy_engine.h"

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
    case COPY_SKIP_RULE_PAUSED: return "rule_paused";
    case COPY_SKIP_RULE_CLOSE_ONLY: return "rule_close_only";
    case COPY_SKIP_SYMBOL_NOT_ALLOWED: return "symbol_not_allowed";
    case COPY_SKIP_SIDE_NOT_ALLOWED: return "side_not_allowed";
    case COPY_SKIP_STALE_SIGNAL: return "stale_signal";
    case COPY_SKIP_NO_FRESH_TICKER: return "no_fresh_ticker";
    case COPY_SKIP_SLIPPAGE: return "slippage";
    case COPY_SKIP_NO_EQUITY: return "no_equity";
    case COPY_SKIP_MAX_NOTIONAL_REACHED: return "max_notional_reached";
    case COPY_SKIP_MAX_LEVERAGE_REACHED: return "max_leverage_reached";
    case COPY_SKIP_COALESCING: return "coalescing";
    case COPY_SKIP_COALESCE_EVICTED: return "coalesce_evicted";
    case COPY_SKIP_COALESCE_DROPPED: return "coalesce_dropped";
    case COPY_SKIP_PRICE_OUT_OF_RANGE: return "price_out_of_range";
    case COPY_SKIP_INVALID_LEVERAGE: return "invalid_leverage";
    case COPY_SKIP_LEVERAGE_UNCHANGED: return "leverage_unchanged";
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
    case COPY_ADJUST_CLAMPED_MAX_NOTIONAL: return "clamped_max_notional";
    case COPY_ADJUST_CLAMPED_MAX_LEVERAGE: return "clamped_max_leverage";
    case COPY_ADJUST_FORCED_MIN: return "forced_min";
    case COPY_ADJUST_COALESCED: return "coalesced";
    case COPY_ADJUST_RELEASED: return "released";
    case COPY_ADJUST_ROUNDING_CARRY: return "rounding_carry";
    }
    return "unknown";
}

int copy_adjust_format(uint32_t adjust, char *buf, size_t n)
{
    size_t len = 0;
    if (buf == NULL || n == 0)
        return -ENOSPC;
    buf[0] = '\0';
    for (unsigned b = 0; b < 32; b++) {
        uint32_t bit = 1u << b;
        if (!(adjust & bit))
            continue;
        const char *name = b < COPY_ADJUST__BITS ? copy_adjust_name((enum copy_adjust)bit) : "unknown";
        size_t k = strlen(name) + (len > 0);
        if (len + k + 1 > n)
            return -ENOSPC;
        if (len > 0)
            buf[len++] = ',';
        memcpy(buf + len, name, strlen(name) + 1);
        len += strlen(name);
    }
    return (int)len;
}

const char *copy_kind_name(enum copy_kind k)
{
    switch (k) {
    case COPY_KIND_OPEN: return "open";
    case COPY_KIND_CLOSE: return "close";
    }
    return "unknown";
}

const char *copy_pos_side_name(enum mkt_pos_side p)
{
    switch (p) {
    case MKT_PS_BOTH: return "both";
    case MKT_PS_LONG: return "long";
    case MKT_PS_SHORT: return "short";
    }
    return "unknown";
}
