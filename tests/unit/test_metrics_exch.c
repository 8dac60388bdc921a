/* exch_metrics: the rate-limit series of the exchange side. A host's IP budget and breaker have
 * series from the first sample; an account's own budgets get theirs only once there is
 * something to report (a throttle, a block, half the limit used), and a budget's counters are
 * published at 0 until /metrics has been rendered once with them (so that Prometheus's
 * increase() counts the first throttle). No I/O: budgets are driven directly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "exch_limits.h"
#include "exch_metrics.h"
#include "metrics.h"

static struct exch_account *account(const char *name) {
    struct exch_account_cfg cfg = {.name = name, .kind = EXCH_BINANCE_USDM,
                                   .rest_url = "http://127.0.0.1:18183",
                                   .api_key = "key-0123456789", .api_secret = "secret-0123456789"};
    struct exch_account *a = exch_account_new(&cfg, NULL);
    assert_non_null(a);
    return a;
}

static char *render(struct met_registry *reg) {
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(met_render(reg, &out, &len), 0);
    return out;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct exch_rl order = {.prio = RB_PRIO_ORDER, .orders_short = 1, .orders_long = 1};

static void sample(struct exch_metrics *m, struct exch_account **acc, size_t n) {
    struct exch_breaker_change ch[4];
    assert_int_equal(exch_metrics_sample(m, acc, n, ch, 4), 0);
}

static void test_account_series_only_when_reportable(void **state) {
    (void)state;
    struct met_registry *reg = met_registry_new();
    struct exch_metrics *m = exch_metrics_new(reg);
    assert_non_null(m);
    struct exch_account *acc[3] = {account("quiet"), account("busy"), account("throttled")};

    /* every account orders once: its budgets exist, but nothing to report yet */
    struct rest_req req[3];
    for (int i = 0; i < 3; i++) {
        memset(&req[i], 0, sizeof req[i]);
        assert_int_equal(exch_limits_attach(acc[i], &req[i], &order), 0);
    }
    sample(m, acc, 3);
    char *out = render(reg);
    assert_non_null(strstr(out, "ct_rate_limit_headroom{budget=\"ip:127.0.0.1:18183:weight/1m\"}"));
    assert_non_null(strstr(out, "ct_rate_limit_throttles_total{budget=\"ip:127.0.0.1:18183:weight/1m\"} 0\n"));
    assert_non_null(strstr(out, "ct_breaker_state{host=\"127.0.0.1:18183\"} 0\n"));
    assert_non_null(strstr(out, "ct_breaker_opens_total{host=\"127.0.0.1:18183\"} 0\n"));
    assert_null(strstr(out, "account:"));
    free(out);

    /* "busy" uses more than half of its orders/1m (1200): its headroom is reported. A minute
     * boundary between the commit and the sample would empty the window: then again. */
    bool seen = false;
    for (int tries = 0; tries < 2 && !seen; tries++) {
        int64_t t0 = wall_ms();
        rate_budget_commit(req[1].limits[2].budget, 700, t0);
        sample(m, acc, 3);
        out = render(reg);
        seen = strstr(out, "ct_rate_limit_headroom{budget=\"account:busy:orders/1m\"} 5e+02\n") != NULL;
        free(out);
        if (!seen) assert_true(wall_ms() / 60000 != t0 / 60000);
    }
    assert_true(seen);

    /* "throttled": a 429 on its order budgets. Sampled twice before any render: its counters
     * are there at 0; after a render has shown the 0, the next sample adds the throttle. */
    exch_limits_throttled(acc[2], NULL, 60000, 0);
    sample(m, acc, 3);
    sample(m, acc, 3);
    out = render(reg);
    assert_non_null(strstr(out, "ct_rate_limit_throttles_total{budget=\"account:throttled:orders/10s\"} 0\n"));
    assert_non_null(strstr(out, "ct_rate_limit_bans_total{budget=\"account:throttled:orders/10s\"} 0\n"));
    assert_null(strstr(out, "ct_rate_limit_blocked_seconds{budget=\"account:throttled:orders/10s\"} 0\n"));
    assert_non_null(strstr(out, "ct_rate_limit_blocked_seconds{budget=\"account:throttled:orders/10s\"} "));
    free(out);
    sample(m, acc, 3);
    out = render(reg);
    assert_non_null(strstr(out, "ct_rate_limit_throttles_total{budget=\"account:throttled:orders/10s\"} 1\n"));
    assert_non_null(strstr(out, "ct_rate_limit_throttles_total{budget=\"account:throttled:orders/1m\"} 1\n"));
    /* the quiet account never got a series */
    assert_null(strstr(out, "account:quiet:"));
    free(out);
    /* a second throttle is added at once */
    exch_limits_throttled(acc[2], NULL, 60000, 0);
    sample(m, acc, 3);
    out = render(reg);
    assert_non_null(strstr(out, "ct_rate_limit_throttles_total{budget=\"account:throttled:orders/10s\"} 2\n"));
    free(out);

    for (int i = 0; i < 3; i++) exch_account_free(acc[i]);
    exch_metrics_free(m);
    met_registry_free(reg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_series_only_when_reportable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
