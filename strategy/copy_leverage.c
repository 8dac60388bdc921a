/* copy_leverage: a leader leverage change -> one follower set-leverage intent (copy_engine.h). */
#include <errno.h>
#include <string.h>

#include "copy_engine.h"
#include "copy_internal.h"

int copy_decide_leverage(const struct copy_leverage_input *in, const struct copy_state *st,
                         struct copy_leverage_intent *out)
{
    if (in == NULL || out == NULL || in->rule == NULL || in->symbol == NULL)
        return -EINVAL;
    const struct copy_rule *r = in->rule;
    memset(out, 0, sizeof *out);
    out->leverage = DEC_ZERO;
    out->dry_run = r->dry_run;
    enum copy_status status = copy_state_status(st);
    if (status == COPY_STATUS_PAUSED) {
        out->skip = COPY_SKIP_RULE_PAUSED;
        return 0;
    }
    if (copy_rule_validate(r, NULL, NULL) < 0) {
        out->skip = COPY_SKIP_INVALID_RULE;
        return 0;
    }
    if (!copy_rule_symbol_allowed(r, in->symbol)) {
        out->skip = COPY_SKIP_SYMBOL_NOT_ALLOWED;
        return 0;
    }
    dec_t lev = in->leader_leverage, whole;
    if (!dec_valid(lev) || dec_cmp(lev, copy_one) < 0) {
        out->skip = COPY_SKIP_INVALID_LEVERAGE;
        return 0;
    }
    if (dec_sign(r->max_leverage) > 0 && dec_cmp(r->max_leverage, lev) < 0) {
        lev = r->max_leverage;
        out->adjust |= COPY_ADJUST_CLAMPED_MAX_LEVERAGE;
    }
    /* Whole numbers (Binance takes integers), rounded down: lower leverage is the safe side. */
    if (dec_round_down(lev, copy_one, &whole) < 0 || dec_cmp(whole, copy_one) < 0) {
        out->skip = COPY_SKIP_INVALID_LEVERAGE;
        return 0;
    }
    out->leverage = whole;
    bool known = dec_valid(in->follower_leverage) && dec_sign(in->follower_leverage) > 0;
    if (known && dec_cmp(whole, in->follower_leverage) == 0)
        out->skip = COPY_SKIP_LEVERAGE_UNCHANGED;
    else if (status == COPY_STATUS_CLOSE_ONLY && (!known || dec_cmp(whole, in->follower_leverage) > 0))
        out->skip = COPY_SKIP_RULE_CLOSE_ONLY; /* a stopped rule may only lower its leverage */
    return 0;
}
