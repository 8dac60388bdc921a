/* refresh_pace: paces periodic refreshes (the copier's account equity) within a share of one
 * exchange host's rate budget, evenly over time.
 *
 * A token bucket in its GCRA form (one "theoretical arrival time"): refreshes may start one every
 * interval, interval = cost * window / (limit * share), and after a pause at most `burst` at once,
 * so any stretch of t ms admits at most t / interval + burst of them. Nothing accumulates beyond
 * that while nothing is asked for, so a caller that looks only now and then (a timer tick) gets
 * no burst larger than it configured.
 *
 * Example, Binance: 2400 weight a minute per IP, the account endpoint weighs 5, half the budget
 * for refreshes: one refresh every 250 ms, 240 a minute; 300 followers then get theirs every 75 s.
 *
 * Pure logic: the caller passes the time (ms of any monotonic clock). Single-threaded. */
#ifndef CT_REFRESH_PACE_H
#define CT_REFRESH_PACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct refresh_pace_cfg {
    int64_t limit;     /* the host's budget: units per window, > 0 (Binance: 2400 weight) */
    int64_t window_ms; /* > 0 (Binance: 60000) */
    int64_t cost;      /* units one refresh costs, > 0 (Binance's GET /fapi/v3/account: 5) */
    int share_pct;     /* share of the budget refreshes may use, 1..100 */
    unsigned burst;    /* refreshes at once after a pause, >= 1 (see refresh_pace_burst) */
};

struct refresh_pace;

/* NULL with errno EINVAL (a field out of range) or ENOMEM. */
struct refresh_pace *refresh_pace_new(const struct refresh_pace_cfg *cfg);
struct refresh_pace *refresh_pace_free(struct refresh_pace *p); /* takes NULL, returns NULL */

/* New limits (the budget's limit changed): the pace so far is kept. 0 or -EINVAL. */
int refresh_pace_set(struct refresh_pace *p, const struct refresh_pace_cfg *cfg);

/* May a refresh start now? true: it is counted. */
bool refresh_pace_take(struct refresh_pace *p, int64_t now_ms);

/* Microseconds between two refreshes at the configured pace (>= 1). */
int64_t refresh_pace_interval_us(const struct refresh_pace *p);

/* Refreshes a minute at the configured pace. */
double refresh_pace_per_minute(const struct refresh_pace *p);

/* How often, in ms, each account gets its refresh when every one of them is always due (refreshed
 * once per ttl_ms at most): leaders and followers take turns while both wait, so each group gets
 * at least half of the pace, or all it needs if that is less, and the other group the rest. The
 * followers' period is returned (0 for none), the leaders' in *leader_ms (may be NULL; 0 for
 * none). Neither is below ttl_ms. */
int64_t refresh_pace_period_ms(const struct refresh_pace *p, size_t n_leaders, size_t n_followers,
                               int64_t ttl_ms, int64_t *leader_ms);

/* The burst for a caller that looks every tick_ms: one tick's share of the pace and one more, so
 * a coarse tick still reaches the full rate (ceil(tick / interval) + 1). */
unsigned refresh_pace_burst(const struct refresh_pace_cfg *cfg, int64_t tick_ms);

#endif
