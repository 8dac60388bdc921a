/* exch_metrics: the operators' view of the exchange side. REST latency and answers per exchange
 * and endpoint (fed by the REST pool's on_done hook), rate-limit headroom per budget and the
 * circuit breaker of every exchange host (sampled by the caller once a second); breaker state
 * changes are returned so top-level code logs them. */
#ifndef CT_EXCH_METRICS_H
#define CT_EXCH_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "exchange.h"
#include "metrics.h"
#include "rest_pool.h"

struct exch_metrics;

struct exch_metrics *exch_metrics_new(struct met_registry *reg);
struct exch_metrics *exch_metrics_free(struct exch_metrics *m); /* takes NULL, returns NULL */

/* The rest_pool_opts.on_done hook (ud = the exch_metrics). */
void exch_metrics_on_rest(void *ud, enum rest_method m, const char *exchange, const char *endpoint,
                          const struct rest_resp *r);

/* One breaker state change seen by exch_metrics_sample. */
struct exch_breaker_change {
    char host[80];
    const char *from, *to; /* "closed", "open", "half_open" */
};
/* Samples the budgets and breakers of the accounts (gauges, counters); writes up to max state
 * changes since the last sample to out and returns how many there were.
 * Series: a host's IP budget and breaker from the first sample; an account's budget (orders/10s,
 * a Bybit endpoint) only once it has something to report (a throttle, a ban, a block, or half its
 * limit used in a window), then for good. Its counters show 0 in the first /metrics page that has
 * them (met_counter_from_zero), so that increase() counts the first throttle too. */
size_t exch_metrics_sample(struct exch_metrics *m, struct exch_account *const *accounts, size_t n,
                           struct exch_breaker_change *out, size_t max);

#endif
