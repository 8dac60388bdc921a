/* rate_budget: one exchange rate limit (a fixed window with a limit), as the client sees it.
 *
 * A budget counts what we sent in the current window (locally, at admission) and what the
 * exchange says was used (usage headers such as X-MBX-USED-WEIGHT-1M); the larger of the two
 * is "used". Windows are aligned to multiples of window_ms of the wall clock (UTC minutes for a
 * 60 s window, like Binance's), and both counts start from 0 at each boundary.
 *
 * Rolling budgets (cfg.rolling, Bybit's per-second limits): the window slides instead, "used" is
 * what we admitted in the last window_ms (a log of admissions), and the exchange's reports only
 * count when they say the limit is exhausted (then nothing is admitted before its reset time): a
 * rolling count taken in one fixed window would charge the previous second's requests to the
 * next one and halve the rate.
 *
 * A request is admitted when used + cost <= limit * safety_pct / 100 * share(prio), where the
 * share keeps headroom for the more important traffic: orders 100 %, queries 95 %, bulk (market
 * data, refreshes) 80 %. A request costing more than the whole threshold is admitted only into
 * an empty window (it could never fit otherwise).
 *
 * Blocks: after a throttle answer (HTTP 429 / 403, Bybit 10006) the budget admits nothing until
 * Retry-After has passed (or an exponential backoff with jitter when there is none); after a 418
 * ban until the ban is over. The caller decides which budgets a response blocks.
 *
 * Pure logic: every call takes the time (wall clock ms) from the caller, so tests inject it.
 * A budget may be shared by several loops/threads (an IP budget is shared by every account on
 * that host): each call takes the budget's mutex. */
#ifndef CT_RATE_BUDGET_H
#define CT_RATE_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

enum rb_prio { RB_PRIO_ORDER = 0, RB_PRIO_QUERY = 1, RB_PRIO_BULK = 2 };
#define RB_PRIO_N 3

struct rate_budget_cfg {
    const char *name;          /* for metrics and logs, e.g. "binance-usdm ip weight/1m" (copied) */
    int64_t limit;             /* units per window, > 0 */
    int64_t window_ms;         /* > 0 */
    int safety_pct;            /* share of the limit we allow ourselves, 1..100; 0 = 90 */
    /* Response headers that report the exchange's view (names copied; NULL = none): */
    const char *hdr_used;      /* used in this window (X-MBX-USED-WEIGHT-1M) */
    const char *hdr_remaining; /* remaining in this window (X-Bapi-Limit-Status) */
    const char *hdr_limit;     /* the limit (X-Bapi-Limit): replaces ours when present */
    const char *hdr_reset_ms;  /* wall ms when an exhausted window frees up
                                  (X-Bapi-Limit-Reset-Timestamp) */
    int64_t backoff_min_ms;    /* first throttle without Retry-After; 0 = 1000 */
    int64_t backoff_max_ms;    /* cap of the doubling; 0 = 60000 */
    int64_t ban_default_ms;    /* a 418 without Retry-After; 0 = 120000 (Binance bans >= 2 min) */
    int64_t forbidden_min_ms;  /* a 403 blocks at least this long (Bybit's IP limit asks for
                                  10 min); 0 = like a 429 */
    bool rolling;              /* a sliding window (see above) */
};

struct rate_budget_stats {
    char name[80];
    int64_t limit;
    int64_t window_ms;
    int64_t used;           /* max(local, server) in the current window */
    int64_t local_used;     /* what we admitted in the current window */
    int64_t server_used;    /* last exchange report in the current window, -1 = none */
    int64_t headroom;       /* limit - used (may be negative) */
    int64_t blocked_ms;     /* time left of a throttle/ban block, 0 = not blocked */
    bool banned;            /* the block is a 418 ban */
    uint64_t admitted;      /* requests admitted */
    uint64_t deferred;      /* admission attempts refused (the request waited) */
    uint64_t throttles;     /* 429 / 403 / exchange "too many" answers */
    uint64_t bans;          /* 418 answers */
};

struct rate_budget;

/* NULL with errno EINVAL (limit or window <= 0, safety_pct > 100) or ENOMEM. The budget starts
 * with one reference. */
struct rate_budget *rate_budget_new(const struct rate_budget_cfg *cfg);
struct rate_budget *rate_budget_ref(struct rate_budget *b);
/* Drops a reference; frees on the last. Takes NULL. Returns NULL. */
struct rate_budget *rate_budget_unref(struct rate_budget *b);

/* Changes limit (> 0) and/or safety_pct (1..100); 0 keeps the current value. */
int rate_budget_set_limit(struct rate_budget *b, int64_t limit, int safety_pct);

/* Would cost fit now? 0 = yes; -EAGAIN = no, *retry_at_ms (if not NULL) = the earliest wall
 * time it may (block end or window end). Nothing is counted. */
int rate_budget_check(struct rate_budget *b, int64_t cost, enum rb_prio prio, int64_t now_ms,
                      int64_t *retry_at_ms);
/* Counts cost as sent now (after a successful check of every budget of the request). */
void rate_budget_commit(struct rate_budget *b, int64_t cost, int64_t now_ms);
/* check + commit under one lock: 0 or -EAGAIN as rate_budget_check. */
int rate_budget_acquire(struct rate_budget *b, int64_t cost, enum rb_prio prio, int64_t now_ms,
                        int64_t *retry_at_ms);
/* Gives back cost committed at acquired_ms for a request that was not sent after all (only
 * while that window lasts). */
void rate_budget_release(struct rate_budget *b, int64_t cost, int64_t acquired_ms, int64_t now_ms);

/* The exchange's report from a response to a request sent at sent_ms. used: -1 unknown;
 * limit: -1 unknown (else replaces ours); reset_at_ms: -1 unknown. A used value from a request
 * sent in an earlier window is ignored (it describes that window). When the report says the
 * window is exhausted (used >= limit) and reset_at_ms is in the future, the budget is blocked
 * until then. */
void rate_budget_note_server(struct rate_budget *b, int64_t used, int64_t limit,
                             int64_t reset_at_ms, int64_t sent_ms, int64_t now_ms);
/* Header names from the config (NULL when not set), for the caller's parsing. */
const char *rate_budget_hdr_used(const struct rate_budget *b);
const char *rate_budget_hdr_remaining(const struct rate_budget *b);
const char *rate_budget_hdr_limit(const struct rate_budget *b);
const char *rate_budget_hdr_reset(const struct rate_budget *b);

/* A throttle answer (http_status 429, 403, or 0 for an exchange code such as Bybit 10006):
 * blocks until now + retry_after_ms when > 0, else now + backoff (backoff_min doubling per
 * consecutive throttle up to backoff_max, +-20 % jitter); a 403 at least forbidden_min_ms.
 * A block only ever grows. */
void rate_budget_throttled(struct rate_budget *b, long http_status, int64_t retry_after_ms,
                           int64_t now_ms);
/* A 418 ban: blocked until now + retry_after_ms (> 0) or now + ban_default_ms. */
void rate_budget_banned(struct rate_budget *b, int64_t retry_after_ms, int64_t now_ms);
/* A response that was not a throttle: the backoff starts from backoff_min again. */
void rate_budget_ok(struct rate_budget *b);

/* Wall time of the budget's next change (block end, else the current window's end). */
int64_t rate_budget_next_change(struct rate_budget *b, int64_t now_ms);
void rate_budget_get_stats(struct rate_budget *b, int64_t now_ms, struct rate_budget_stats *out);
const char *rate_budget_name(const struct rate_budget *b);

#endif
