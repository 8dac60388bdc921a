/* copy_preflight: start-up checks of a copy rule against its follower (see copy_preflight.h). */
#include "copy_preflight.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "copy_internal.h"

struct sink {
    struct copy_problem *out;
    size_t cap, n;
};

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static void add(struct sink *s, enum copy_problem_code code, enum copy_severity sev,
                const char *symbol, const char *fmt, ...)
{
    if (s->n < s->cap) {
        struct copy_problem *p = &s->out[s->n];
        memset(p, 0, sizeof *p);
        p->code = code;
        p->severity = sev;
        if (symbol != NULL)
            snprintf(p->symbol, sizeof p->symbol, "%s", symbol);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->text, sizeof p->text, fmt, ap);
        va_end(ap);
    }
    s->n++;
}

static bool positive(dec_t d)
{
    return dec_valid(d) && dec_sign(d) > 0;
}

static const char *fmt(dec_t d, char buf[DEC_STR_MAX])
{
    if (dec_format(d, buf, DEC_STR_MAX) < 0)
        snprintf(buf, DEC_STR_MAX, "?");
    return buf;
}

static bool has_symbol(const struct copy_preflight_input *in, const char *sym)
{
    for (size_t i = 0; i < in->n_symbols; i++) {
        const struct mkt_instrument *ins = in->symbols[i].instrument;
        if (ins != NULL && strncmp(ins->symbol, sym, sizeof ins->symbol) == 0)
            return true;
    }
    return false;
}

/* The smallest order the symbol accepts at price p, as a notional: max(min qty, step) x p,
 * and the min notional. false if it cannot be computed. */
static bool min_order_notional(const struct copy_lot *l, dec_t p, dec_t *out)
{
    dec_t q = dec_max(l->min_qty, l->step), n;
    if (dec_round_up(q, l->step, &q) < 0 || dec_mul(q, p, &n) < 0)
        return false;
    *out = dec_max(n, l->min_notional);
    return true;
}

static void check_symbol(const struct copy_preflight_input *in, const struct copy_preflight_symbol *s,
                         struct sink *sk)
{
    const struct copy_rule *r = in->rule;
    const struct mkt_instrument *ins = s->instrument;
    char a[DEC_STR_MAX], b[DEC_STR_MAX], e[DEC_STR_MAX], pr[DEC_STR_MAX];
    if (ins == NULL || !copy_rule_symbol_allowed(r, ins->symbol))
        return;
    const char *sym = ins->symbol;
    struct copy_lot l = copy_lot_of(ins, r->order_type);
    if (positive(r->max_leverage) && positive(s->follower_leverage) &&
        dec_cmp(s->follower_leverage, r->max_leverage) > 0)
        add(sk, COPY_PROBLEM_LEVERAGE_ABOVE_MAX, COPY_SEV_WARNING, sym,
            "%s: follower leverage %s is above the rule's max_leverage %s", sym,
            fmt(s->follower_leverage, a), fmt(r->max_leverage, b));
    dec_t need;
    if (!copy_lot_valid(&l) || !positive(s->price) || !min_order_notional(&l, s->price, &need))
        return;

    /* The largest open notional the limits allow (unknown = unlimited). */
    bool bounded = false;
    dec_t most = DEC_ZERO, v;
    dec_t lev = positive(r->max_leverage) ? r->max_leverage : s->follower_leverage;
    if (positive(r->max_position_notional)) {
        bounded = true;
        most = r->max_position_notional;
    }
    if (positive(lev) && positive(in->follower_equity) && dec_mul(in->follower_equity, lev, &v) == 0 &&
        (!bounded || dec_cmp(v, most) < 0)) {
        bounded = true;
        most = v;
    }
    if (dec_sign(l.max_qty) > 0 && dec_mul(l.max_qty, s->price, &v) == 0 &&
        (!bounded || dec_cmp(v, most) < 0)) {
        bounded = true;
        most = v;
    }
    if (bounded && dec_cmp(most, need) < 0)
        add(sk, COPY_PROBLEM_CANNOT_REACH_MINIMUM, COPY_SEV_ERROR, sym,
            "%s: the largest open the limits allow (%s quote, equity %s) is below the smallest "
            "order (%s quote at price %s): every open would be skipped",
            sym, fmt(most, a), fmt(in->follower_equity, e), fmt(need, b), fmt(s->price, pr));
    if (r->sizing == COPY_SIZING_FIXED_NOTIONAL && dec_cmp(r->fixed_notional, need) < 0)
        add(sk, COPY_PROBLEM_FIXED_NOTIONAL_BELOW_MINIMUM,
            r->force_min ? COPY_SEV_WARNING : COPY_SEV_ERROR, sym,
            "%s: fixed_notional %s is below the smallest order (%s quote): %s", sym,
            fmt(r->fixed_notional, a), fmt(need, b),
            r->force_min ? "every open is forced up to the minimum" : "every open would be skipped");
}

int copy_preflight(const struct copy_preflight_input *in, struct copy_problem *out, size_t cap)
{
    if (in == NULL || in->rule == NULL || (out == NULL && cap > 0))
        return -EINVAL;
    const struct copy_rule *r = in->rule;
    struct sink sk = {out, cap, 0};
    const char *field = NULL, *why = NULL;
    if (copy_rule_validate(r, &field, &why) < 0) {
        add(&sk, COPY_PROBLEM_INVALID_RULE, COPY_SEV_ERROR, NULL, "rule %s: %s %s",
            r->id ? r->id : "(no id)", field, why);
        return (int)sk.n;
    }
    if (!positive(in->follower_equity))
        add(&sk, COPY_PROBLEM_NO_EQUITY, COPY_SEV_ERROR, NULL,
            "rule %s: the follower's equity is unknown or not positive", r->id);
    if (r->sizing == COPY_SIZING_EQUITY_RATIO && !positive(in->leader_equity))
        add(&sk, COPY_PROBLEM_NO_LEADER_EQUITY, COPY_SEV_ERROR, NULL,
            "rule %s: equity_ratio needs the leader's equity, which is unknown or not positive",
            r->id);
    if (in->leader_mode == MKT_PM_HEDGE && in->follower_mode == MKT_PM_ONE_WAY)
        add(&sk, COPY_PROBLEM_POSITION_MODE_NETTING, COPY_SEV_WARNING, NULL,
            "rule %s: the leader is in hedge mode and the follower in one-way mode: the follower "
            "copies the leader's net position", r->id);
    if (r->order_type == COPY_ORDER_LIMIT_IOC && dec_is_zero(r->max_slippage_bps))
        add(&sk, COPY_PROBLEM_LIMIT_IOC_AT_LEADER_PRICE, COPY_SEV_WARNING, NULL,
            "rule %s: limit_ioc with max_slippage_bps 0 limits at the leader's exact price and "
            "may often not fill", r->id);
    for (size_t i = 0; i < r->n_allow; i++)
        if (!has_symbol(in, r->allow_symbols[i]))
            add(&sk, COPY_PROBLEM_UNKNOWN_SYMBOL, COPY_SEV_ERROR, r->allow_symbols[i],
                "rule %s: allow_symbols lists %s, which the follower's exchange does not list",
                r->id, r->allow_symbols[i]);
    for (size_t i = 0; i < in->n_symbols && in->symbols != NULL; i++)
        check_symbol(in, &in->symbols[i], &sk);
    return sk.n > (size_t)INT_MAX ? INT_MAX : (int)sk.n;
}

const char *copy_problem_name(enum copy_problem_code c)
{
    switch (c) {
    case COPY_PROBLEM_INVALID_RULE: return "invalid_rule";
    case COPY_PROBLEM_NO_EQUITY: return "no_equity";
    case COPY_PROBLEM_NO_LEADER_EQUITY: return "no_leader_equity";
    case COPY_PROBLEM_POSITION_MODE_NETTING: return "position_mode_netting";
    case COPY_PROBLEM_LIMIT_IOC_AT_LEADER_PRICE: return "limit_ioc_at_leader_price";
    case COPY_PROBLEM_UNKNOWN_SYMBOL: return "unknown_symbol";
    case COPY_PROBLEM_LEVERAGE_ABOVE_MAX: return "leverage_above_max";
    case COPY_PROBLEM_CANNOT_REACH_MINIMUM: return "cannot_reach_minimum";
    case COPY_PROBLEM_FIXED_NOTIONAL_BELOW_MINIMUM: return "fixed_notional_below_minimum";
    case COPY_PROBLEM__COUNT: break;
    }
    return "unknown";
}

const char *copy_severity_name(enum copy_severity s)
{
    switch (s) {
    case COPY_SEV_WARNING: return "warning";
    case COPY_SEV_ERROR: return "error";
    }
    return "unknown";
}
