/* copy_state: the running state of one copy rule, owned by the caller, updated by the engine.
 *
 * It holds the rule's status, the equity marks of the loss stops and the coalescing
 * accumulators. No allocation: the caller gives the accumulator slots (a fixed array) at init.
 * Everything is deterministic: the same sequence of calls gives the same state.
 *
 * Status. `paused` is an operator switch laid over the stop status: a paused rule skips
 * everything (rule_paused), opens and closes. A stopped rule (close_only) copies closes and
 * skips opens (rule_close_only) until copy_rule_reset(). copy_state_status() gives the
 * effective one.
 *
 * Loss stops (copy_state_observe_equity): the caller feeds follower equity samples (wallet plus
 * unrealized, in the quote currency) with their time.
 *  - Day mark: the first sample of each UTC day (now_ms / 86400000) becomes day_start_equity.
 *    Daily-loss stop: day_start_equity - equity > daily_loss_limit (strictly more than).
 *  - Peak mark: the highest sample since init or reset. Drawdown stop:
 *    equity < peak_equity x (1 - max_drawdown_pct / 100) (strictly below).
 *  Either stop moves an active rule to close_only and is returned once so that the caller
 *  journals it; later samples return COPY_STOP_NONE until a reset. copy_rule_reset() makes the
 *  rule active again and forgets both marks: the next sample re-bases them (otherwise the same
 *  loss would trip the stop again at once).
 *  To survive a restart the caller may persist and restore status, stop, and the marks
 *  (fields below); without them a restart re-marks the day and the peak at the first sample.
 *
 * Coalescing accumulators: one slot per (symbol, leader order id) that has held back small
 * fills (see copy_engine.h). They are in memory only: a restart forgets held amounts (each is
 * below one follower minimum). */
#ifndef CT_COPY_STATE_H
#define CT_COPY_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "copy_rule.h"
#include "decimal.h"
#include "market.h"

enum copy_status {
    COPY_STATUS_ACTIVE = 0,
    COPY_STATUS_PAUSED = 1,
    COPY_STATUS_CLOSE_ONLY = 2,
    COPY_STATUS__COUNT
};

/* Why a rule is close_only (also what copy_state_observe_equity reports). */
enum copy_stop {
    COPY_STOP_NONE = 0,
    COPY_STOP_DAILY_LOSS = 1,   /* daily_loss */
    COPY_STOP_MAX_DRAWDOWN = 2, /* max_drawdown */
    COPY_STOP__COUNT
};

/* One coalescing accumulator. Read-only for the caller (it may list them for an operator). */
struct copy_accum {
    bool used;
    char symbol[MKT_SYMBOL_MAX];
    char order_id[MKT_ORDER_ID_MAX]; /* the leader's order id */
    int dir;           /* follower position direction of the held opens: +1 long, -1 short */
    dec_t amount;      /* follower quantity held, exact (unrounded); may be < 0 (see engine) */
    uint64_t seq;      /* creation order: the smallest is evicted first */
};

struct copy_state {
    bool paused;
    bool stopped;             /* close_only */
    enum copy_stop stop;      /* why stopped */
    bool have_day_mark;
    int64_t day;              /* UTC day number of day_start_equity */
    dec_t day_start_equity;
    bool have_peak;
    dec_t peak_equity;
    struct copy_accum *acc;   /* caller's slots */
    size_t acc_cap;
    uint64_t acc_seq;         /* next seq */
};

/* Active, no marks, every slot free. slots may be NULL when n_slots is 0: coalescing is then
 * off (small fills are skipped as below the minimum at once). */
void copy_state_init(struct copy_state *st, struct copy_accum *slots, size_t n_slots);

enum copy_status copy_state_status(const struct copy_state *st);
void copy_state_set_paused(struct copy_state *st, bool paused);

/* Feed one equity sample (see above). Returns the stop that this sample triggered (the caller
 * journals it), else COPY_STOP_NONE. Invalid decimals are ignored. Samples from an earlier UTC
 * day than the current mark (a clock step back) update the peak but never the day mark. */
enum copy_stop copy_state_observe_equity(struct copy_state *st, const struct copy_rule *r,
                                         dec_t equity, int64_t now_ms);

/* Operator reset: active again, stop cleared, both marks forgotten. Keeps paused and the
 * accumulators. */
void copy_rule_reset(struct copy_state *st);

/* Accumulator slots in use. */
size_t copy_state_held(const struct copy_state *st);

/* "active", "paused", "close_only"; "none", "daily_loss", "max_drawdown"; "unknown" else. */
const char *copy_status_name(enum copy_status s);
const char *copy_stop_name(enum copy_stop s);

#endif
