/* copy_rule: validation and names of copy rule parameters (see copy_rule.h). */
#include "copy_rule.h"

#include <errno.h>
#include <string.h>

static int bad(const char **field, const char **why, const char *f, const char *w)
{
    if (field)
        *field = f;
    if (why)
        *why = w;
    return -EINVAL;
}

static bool nonneg(dec_t d)
{
    return dec_valid(d) && dec_sign(d) >= 0;
}

static bool positive(dec_t d)
{
    return dec_valid(d) && dec_sign(d) > 0;
}

static bool list_ok(const char *const *v, size_t n)
{
    if (n > 0 && v == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] == NULL || v[i][0] == '\0')
            return false;
    return true;
}

int copy_rule_validate(const struct copy_rule *r, const char **field, const char **why)
{
    static const dec_t hundred = {100, 0}, ten_thousand = {10000, 0};
    if (r == NULL)
        return bad(field, why, "", "no rule");
    if (r->id == NULL || r->id[0] == '\0')
        return bad(field, why, "id", "must not be empty");
    if ((unsigned)r->sizing >= COPY_SIZING__COUNT)
        return bad(field, why, "sizing", "must be multiplier, fixed_notional or equity_ratio");
    if (r->sizing == COPY_SIZING_FIXED_NOTIONAL ? !nonneg(r->multiplier) : !positive(r->multiplier))
        return bad(field, why, "multiplier", "must be a decimal > 0");
    if (r->sizing == COPY_SIZING_FIXED_NOTIONAL ? !positive(r->fixed_notional)
                                                : !nonneg(r->fixed_notional))
        return bad(field, why, "fixed_notional", "must be a decimal > 0");
    if ((unsigned)r->order_type >= COPY_ORDER__COUNT)
        return bad(field, why, "order_type", "must be market or limit_ioc");
    if ((unsigned)r->sides >= COPY_SIDES__COUNT)
        return bad(field, why, "sides", "must be both, long_only or short_only");
    if (!list_ok(r->allow_symbols, r->n_allow))
        return bad(field, why, "allow_symbols", "entries must be non-empty symbols");
    if (!list_ok(r->deny_symbols, r->n_deny))
        return bad(field, why, "deny_symbols", "entries must be non-empty symbols");
    if (!nonneg(r->max_position_notional))
        return bad(field, why, "max_position_notional", "must be a decimal >= 0 (0 = no limit)");
    if (!nonneg(r->max_leverage))
        return bad(field, why, "max_leverage", "must be a decimal >= 0 (0 = no limit)");
    if (!nonneg(r->max_slippage_bps) || dec_cmp(r->max_slippage_bps, ten_thousand) >= 0)
        return bad(field, why, "max_slippage_bps", "must be a decimal >= 0 and < 10000");
    if (r->max_ticker_age_ms < 0)
        return bad(field, why, "max_ticker_age_ms", "must be >= 0 (0 = default)");
    if (r->max_signal_age_ms < 0)
        return bad(field, why, "max_signal_age_ms", "must be >= 0 (0 = no guard)");
    if (!nonneg(r->daily_loss_limit))
        return bad(field, why, "daily_loss_limit", "must be a decimal >= 0 (0 = none)");
    if (!nonneg(r->max_drawdown_pct) || dec_cmp(r->max_drawdown_pct, hundred) >= 0)
        return bad(field, why, "max_drawdown_pct", "must be a decimal >= 0 and < 100 (0 = none)");
    return 0;
}

static bool listed(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != NULL && strcmp(v[i], s) == 0)
            return true;
    return false;
}

bool copy_rule_symbol_allowed(const struct copy_rule *r, const char *symbol)
{
    if (r == NULL || symbol == NULL)
        return false;
    if (r->n_deny > 0 && r->deny_symbols != NULL && listed(r->deny_symbols, r->n_deny, symbol))
        return false;
    if (r->n_allow == 0)
        return true;
    return r->allow_symbols != NULL && listed(r->allow_symbols, r->n_allow, symbol);
}

const char *copy_sizing_name(enum copy_sizing s)
{
    switch (s) {
    case COPY_SIZING_MULTIPLIER: return "multiplier";
    case COPY_SIZING_FIXED_NOTIONAL: return "fixed_notional";
    case COPY_SIZING_EQUITY_RATIO: return "equity_ratio";
    case COPY_SIZING__COUNT: break;
    }
    return "unknown";
}

const char *copy_sides_name(enum copy_sides s)
{
    switch (s) {
    case COPY_SIDES_BOTH: return "both";
    case COPY_SIDES_LONG_ONLY: return "long_only";
    case COPY_SIDES_SHORT_ONLY: return "short_only";
    case COPY_SIDES__COUNT: break;
    }
    return "unknown";
}

const char *copy_order_type_name(enum copy_order_type t)
{
    switch (t) {
    case COPY_ORDER_MARKET: return "market";
    case COPY_ORDER_LIMIT_IOC: return "limit_ioc";
    case COPY_ORDER__COUNT: break;
    }
    return "unknown";
}
