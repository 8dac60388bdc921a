/* copy_state: status, loss-stop marks and coalescing slots of one copy rule (see copy_state.h). */
#include "copy_state.h"

#include <string.h>

#include "copy_internal.h"

#define MS_PER_DAY 86400000LL

void copy_state_init(struct copy_state *st, struct copy_accum *slots, size_t n_slots)
{
    if (st == NULL)
        return;
    memset(st, 0, sizeof *st);
    st->day_start_equity = DEC_ZERO;
    st->peak_equity = DEC_ZERO;
    st->acc = n_slots > 0 ? slots : NULL;
    st->acc_cap = slots != NULL ? n_slots : 0;
    for (size_t i = 0; i < st->acc_cap; i++)
        memset(&st->acc[i], 0, sizeof st->acc[i]);
}

enum copy_status copy_state_status(const struct copy_state *st)
{
    if (st == NULL)
        return COPY_STATUS_ACTIVE;
    if (st->paused)
        return COPY_STATUS_PAUSED;
    return st->stopped ? COPY_STATUS_CLOSE_ONLY : COPY_STATUS_ACTIVE;
}

void copy_state_set_paused(struct copy_state *st, bool paused)
{
    if (st != NULL)
        st->paused = paused;
}

/* Floor division: days before 1970 stay ordered (a negative clock is still deterministic). */
static int64_t utc_day(int64_t ms)
{
    int64_t d = ms / MS_PER_DAY;
    return (ms % MS_PER_DAY < 0) ? d - 1 : d;
}

/* equity < peak x (100 - pct) / 100, exactly (pct has few digits: the fraction fits). */
static bool below_drawdown(dec_t equity, dec_t peak, dec_t pct)
{
    static const dec_t hundred = {100, 0}, hundredth = {1, 2};
    dec_t keep, frac;
    if (dec_sub(hundred, pct, &keep) < 0 || dec_mul(keep, hundredth, &frac) < 0)
        return false;
    return dec_cmp_mul(peak, frac, equity) > 0;
}

enum copy_stop copy_state_observe_equity(struct copy_state *st, const struct copy_rule *r,
                                         dec_t equity, int64_t now_ms)
{
    if (st == NULL || r == NULL || !dec_valid(equity))
        return COPY_STOP_NONE;
    int64_t day = utc_day(now_ms);
    if (!st->have_day_mark || day > st->day) {
        st->have_day_mark = true;
        st->day = day;
        st->day_start_equity = equity;
    }
    if (!st->have_peak || dec_cmp(equity, st->peak_equity) > 0) {
        st->have_peak = true;
        st->peak_equity = equity;
    }
    if (st->stopped)
        return COPY_STOP_NONE;

    enum copy_stop stop = COPY_STOP_NONE;
    dec_t lost;
    if (dec_valid(r->daily_loss_limit) && dec_sign(r->daily_loss_limit) > 0 &&
        dec_sub(st->day_start_equity, equity, &lost) == 0 &&
        dec_cmp(lost, r->daily_loss_limit) > 0)
        stop = COPY_STOP_DAILY_LOSS;
    else if (dec_valid(r->max_drawdown_pct) && dec_sign(r->max_drawdown_pct) > 0 &&
             below_drawdown(equity, st->peak_equity, r->max_drawdown_pct))
        stop = COPY_STOP_MAX_DRAWDOWN;
    if (stop != COPY_STOP_NONE) {
        st->stopped = true;
        st->stop = stop;
    }
    return stop;
}

void copy_rule_reset(struct copy_state *st)
{
    if (st == NULL)
        return;
    st->stopped = false;
    st->stop = COPY_STOP_NONE;
    st->have_day_mark = false;
    st->day = 0;
    st->day_start_equity = DEC_ZERO;
    st->have_peak = false;
    st->peak_equity = DEC_ZERO;
}

size_t copy_state_held(const struct copy_state *st)
{
    size_t n = 0;
    if (st == NULL)
        return 0;
    for (size_t i = 0; i < st->acc_cap; i++)
        n += st->acc[i].used;
    return n;
}

/* ---- accumulators (linear scans: the table is small and bounded by the caller) ------------- */

struct copy_accum *copy_accum_find(struct copy_state *st, const char *symbol, const char *order_id)
{
    if (st == NULL)
        return NULL;
    for (size_t i = 0; i < st->acc_cap; i++) {
        struct copy_accum *a = &st->acc[i];
        if (a->used && strcmp(a->order_id, order_id) == 0 && strcmp(a->symbol, symbol) == 0)
            return a;
    }
    return NULL;
}

struct copy_accum *copy_accum_take(struct copy_state *st, const char *symbol, const char *order_id,
                                   int dir, struct copy_dropped *dropped)
{
    if (st == NULL || st->acc_cap == 0)
        return NULL;
    struct copy_accum *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < st->acc_cap && slot == NULL; i++) {
        struct copy_accum *a = &st->acc[i];
        if (!a->used)
            slot = a;
        else if (oldest == NULL || a->seq < oldest->seq)
            oldest = a;
    }
    if (slot == NULL) {
        slot = oldest;
        if (dropped != NULL) {
            memset(dropped, 0, sizeof *dropped);
            dropped->set = true;
            dropped->reason = COPY_SKIP_COALESCE_EVICTED;
            memcpy(dropped->symbol, slot->symbol, sizeof dropped->symbol);
            memcpy(dropped->order_id, slot->order_id, sizeof dropped->order_id);
            dropped->amount = slot->amount;
        }
    }
    memset(slot, 0, sizeof *slot);
    slot->used = true;
    size_t len = strnlen(symbol, sizeof slot->symbol - 1);
    memcpy(slot->symbol, symbol, len);
    slot->symbol[len] = '\0';
    len = strnlen(order_id, sizeof slot->order_id - 1);
    memcpy(slot->order_id, order_id, len);
    slot->order_id[len] = '\0';
    slot->dir = dir;
    slot->amount = DEC_ZERO;
    slot->seq = st->acc_seq++;
    return slot;
}

void copy_accum_free(struct copy_accum *a)
{
    if (a != NULL)
        memset(a, 0, sizeof *a);
}

const char *copy_status_name(enum copy_status s)
{
    switch (s) {
    case COPY_STATUS_ACTIVE: return "active";
    case COPY_STATUS_PAUSED: return "paused";
    case COPY_STATUS_CLOSE_ONLY: return "close_only";
    case COPY_STATUS__COUNT: break;
    }
    return "unknown";
}

const char *copy_stop_name(enum copy_stop s)
{
    switch (s) {
    case COPY_STOP_NONE: return "none";
    case COPY_STOP_DAILY_LOSS: return "daily_loss";
    case COPY_STOP_MAX_DRAWDOWN: return "max_drawdown";
    case COPY_STOP__COUNT: break;
    }
    return "unknown";
}
