/* exch_limits: the rate budgets and the circuit breaker of exchange accounts, for the adapters
 * (attach them to each request) and the daemon (overrides, metrics).
 *
 * Budgets (see rate_budget.h):
 *   per exchange host (shared by every account whose rest_url has that scheme://host:port):
 *     binance-usdm  "ip weight/1m"   2400 per minute, fed by X-MBX-USED-WEIGHT-1M
 *     bybit-linear  "ip req/5s"      600 per 5 s (no header; a 403 blocks >= 10 min)
 *   per account:
 *     binance-usdm  "orders/10s" 300 (X-MBX-ORDER-COUNT-10S), "orders/1m" 1200 (X-MBX-ORDER-COUNT-1M)
 *     bybit-linear  one per endpoint path, per second (X-Bapi-Limit, X-Bapi-Limit-Status,
 *                   X-Bapi-Limit-Reset-Timestamp): 10/s for order create/amend/cancel (single
 *                   and batch) and set-leverage, 50/s for order/realtime, order/history,
 *                   execution/list, position/list, account/wallet-balance; 10/s otherwise
 *   An account's budgets are made on first use (Binance's by its first order or throttle, Bybit's
 *   per endpoint): an account that never orders (a leader) has none.
 * Breaker: one per exchange host; probe GET /fapi/v1/time (Binance) or /v5/market/time (Bybit).
 *
 * Thread safety: budgets and breakers lock themselves; the host registry has its own lock. */
#ifndef CT_EXCH_LIMITS_H
#define CT_EXCH_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "exchange.h"
#include "rate_budget.h"
#include "rest_pool.h"

/* Overrides; 0 keeps the default. */
struct exch_limits_cfg {
    int64_t ip_limit;            /* binance: weight per minute per IP (2400); bybit: requests per
                                    5 s per IP (600). Shared by the host's accounts: the last
                                    account configured wins. */
    int64_t orders_10s_limit;    /* binance, per account: 300 */
    int64_t orders_1m_limit;     /* binance, per account: 1200 */
    int safety_pct;              /* share of each limit we use: 90 */
    int breaker_failures;        /* consecutive transport errors / 5xx that open the breaker: 5 */
    int64_t breaker_cooldown_ms; /* open before the first probe: 5000 (doubles up to 60 s) */
    int64_t order_max_wait_ms;   /* an order waits at most this for budgets, then fails unsent
                                    (REJECTED "not sent: rate limit wait ..."): 30000 */
    int64_t query_max_wait_ms;   /* other requests: 120000 */
};

/* What one request costs (the adapter's table per endpoint). */
struct exch_rl {
    enum rb_prio prio;      /* RB_PRIO_ORDER for orders and cancels, _QUERY, _BULK (market data,
                               refreshes) */
    int64_t ip_cost;        /* binance: request weight; bybit: 1 */
    int64_t orders_short;   /* binance: X-MBX-ORDER-COUNT-10S units (order 1, batch n) */
    int64_t orders_long;    /* binance: X-MBX-ORDER-COUNT-1M units (order 1, batch 1) */
    const char *endpoint;   /* bybit: path of the per-endpoint budget ("/v5/order/create"),
                               NULL = none */
    bool probe_ok;          /* idempotent and cheap (a GET): may be the breaker's probe */
};

struct exch_limits;

/* Per account, made by exch_account_new (exchange.c). NULL with errno on failure. */
struct exch_limits *exch_limits_new(enum exch_kind kind, const char *rest_url, const char *account);
struct exch_limits *exch_limits_free(struct exch_limits *l); /* takes NULL, returns NULL */
/* exchange.c: the account's limits (NULL for NULL). */
struct exch_limits *exch_account_limits(const struct exch_account *a);

/* Applies overrides to the account (and to its host's IP budget and breaker). 0 / -EINVAL. */
int exch_account_set_limits(struct exch_account *a, const struct exch_limits_cfg *cfg);

/* Fills req's limits, breaker, prio, probe_ok and (when 0) max_wait_ms from rl. One line per
 * request in an adapter:
 *   exch_limits_attach(a, &req, &(struct exch_rl){.prio = RB_PRIO_ORDER, .ip_cost = 1,
 *                                                 .endpoint = "/v5/order/create"});
 * 0, -EINVAL, -ENOMEM (a new bybit endpoint budget). */
int exch_limits_attach(struct exch_account *a, struct rest_req *req, const struct exch_rl *rl);

/* An exchange-level throttle answer the pool cannot see in the HTTP status (Bybit retCode
 * 10006 with HTTP 200): blocks the account's endpoint budget (or its order budgets when
 * endpoint is NULL) for retry_after_ms, or until reset_at_ms (wall ms) when > 0, or a backoff. */
void exch_limits_throttled(struct exch_account *a, const char *endpoint, int64_t retry_after_ms,
                           int64_t reset_at_ms);

/* ---- metrics ---- */

/* Up to cap budgets of the account, the host's IP budget first; returns how many exist (the
 * account's own only once made: see above). */
size_t exch_account_budget_stats(const struct exch_account *a, struct rate_budget_stats *out,
                                 size_t cap);
/* The breaker of the account's host. 0, or -EINVAL. */
int exch_account_breaker_stats(const struct exch_account *a, struct breaker_stats *out);

#endif
