/* exch_limits: an account's own rate budgets are made on first use. A Binance account has only
 * its host's IP budget until its first order (or an order throttle) makes orders/10s and
 * orders/1m, with the overrides set before; a Bybit account gets an endpoint's budget with the
 * first request to it. No I/O: requests are only attached, never sent. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "exch_limits.h"

static struct exch_account *account(const char *name, enum exch_kind kind, const char *url) {
    struct exch_account_cfg cfg = {.name = name, .kind = kind, .rest_url = url,
                                   .api_key = "key-0123456789", .api_secret = "secret-0123456789"};
    struct exch_account *a = exch_account_new(&cfg, NULL);
    assert_non_null(a);
    return a;
}

static const struct exch_rl query = {.prio = RB_PRIO_QUERY, .ip_cost = 5, .probe_ok = true};
static const struct exch_rl order = {.prio = RB_PRIO_ORDER, .ip_cost = 0, .orders_short = 1,
                                     .orders_long = 1};

static void test_binance_order_budgets_on_first_order(void **state) {
    (void)state;
    struct exch_account *a = account("lazy-1", EXCH_BINANCE_USDM, "http://127.0.0.1:18181");
    struct rate_budget_stats v[8];
    assert_int_equal(exch_account_budget_stats(a, v, 8), 1); /* the host's IP budget only */
    assert_non_null(strstr(v[0].name, "weight/1m"));

    /* overrides set before the budgets exist are applied when they are made */
    struct exch_limits_cfg lc = {.orders_10s_limit = 50, .safety_pct = 80};
    assert_int_equal(exch_account_set_limits(a, &lc), 0);

    struct rest_req req;
    memset(&req, 0, sizeof req);
    assert_int_equal(exch_limits_attach(a, &req, &query), 0);
    assert_non_null(req.limits[0].budget);
    assert_int_equal(req.limits[0].cost, 5);
    assert_null(req.limits[1].budget);
    assert_non_null(req.breaker);
    assert_int_equal(exch_account_budget_stats(a, NULL, 0), 1); /* a query makes none */

    memset(&req, 0, sizeof req);
    assert_int_equal(exch_limits_attach(a, &req, &order), 0);
    assert_non_null(req.limits[1].budget);
    assert_non_null(req.limits[2].budget);
    assert_int_equal(req.limits[1].cost, 1);
    assert_int_equal(req.max_wait_ms, 30000);
    assert_int_equal(exch_account_budget_stats(a, v, 8), 3);
    assert_non_null(strstr(v[1].name, "account:lazy-1:orders/10s"));
    assert_int_equal(v[1].limit, 50);
    assert_non_null(strstr(v[2].name, "account:lazy-1:orders/1m"));
    assert_int_equal(v[2].limit, 1200);
    /* the same budgets for the next order */
    struct rate_budget *first = req.limits[1].budget;
    memset(&req, 0, sizeof req);
    assert_int_equal(exch_limits_attach(a, &req, &order), 0);
    assert_ptr_equal(req.limits[1].budget, first);
    assert_int_equal(exch_account_budget_stats(a, NULL, 0), 3);

    /* an override after they exist still reaches them */
    lc = (struct exch_limits_cfg){.orders_1m_limit = 600};
    assert_int_equal(exch_account_set_limits(a, &lc), 0);
    assert_int_equal(exch_account_budget_stats(a, v, 8), 3);
    assert_int_equal(v[2].limit, 600);
    exch_account_free(a);
}

static void test_binance_throttle_before_first_order(void **state) {
    (void)state;
    struct exch_account *a = account("lazy-2", EXCH_BINANCE_USDM, "http://127.0.0.1:18181");
    exch_limits_throttled(a, NULL, 60000, 0);
    struct rate_budget_stats v[8];
    assert_int_equal(exch_account_budget_stats(a, v, 8), 3);
    assert_true(v[1].blocked_ms > 0 && v[1].blocked_ms <= 60000);
    assert_true(v[2].blocked_ms > 0);
    assert_int_equal(v[1].throttles, 1);
    assert_int_equal(v[0].blocked_ms, 0); /* the IP budget is not the account's */
    /* the next order carries the blocked budgets */
    struct rest_req req;
    memset(&req, 0, sizeof req);
    assert_int_equal(exch_limits_attach(a, &req, &order), 0);
    struct rate_budget_stats st;
    rate_budget_get_stats(req.limits[1].budget, 0, &st);
    assert_int_equal(st.throttles, 1);
    exch_account_free(a);
}

static void test_bybit_endpoint_budgets(void **state) {
    (void)state;
    struct exch_account *a = account("lazy-3", EXCH_BYBIT_LINEAR, "http://127.0.0.1:18182");
    assert_int_equal(exch_account_budget_stats(a, NULL, 0), 1);
    struct rest_req req;
    memset(&req, 0, sizeof req);
    /* Binance's order units mean nothing on Bybit: no order budgets there */
    struct exch_rl rl = {.prio = RB_PRIO_ORDER, .ip_cost = 1, .orders_short = 1, .orders_long = 1,
                         .endpoint = "/v5/order/create"};
    assert_int_equal(exch_limits_attach(a, &req, &rl), 0);
    assert_non_null(req.limits[1].budget);
    assert_null(req.limits[2].budget);
    struct rate_budget_stats v[8];
    assert_int_equal(exch_account_budget_stats(a, v, 8), 2);
    assert_non_null(strstr(v[1].name, "account:lazy-3:/v5/order/create"));
    assert_int_equal(v[1].limit, 10);
    exch_limits_throttled(a, NULL, 1000, 0); /* no endpoint: Bybit has no order budgets */
    assert_int_equal(exch_account_budget_stats(a, NULL, 0), 2);
    struct rate_budget *create = req.limits[1].budget;

    /* the table grows as endpoints come, up to 24; each keeps its budget */
    char eps[24][32];
    for (int i = 1; i < 24; i++) {
        snprintf(eps[i], sizeof eps[i], "/v5/test/ep%d", i);
        memset(&req, 0, sizeof req);
        rl.endpoint = eps[i];
        assert_int_equal(exch_limits_attach(a, &req, &rl), 0);
        assert_non_null(req.limits[1].budget);
        assert_ptr_not_equal(req.limits[1].budget, create);
    }
    assert_int_equal(exch_account_budget_stats(a, v, 8), 25);
    memset(&req, 0, sizeof req);
    rl.endpoint = "/v5/order/create";
    assert_int_equal(exch_limits_attach(a, &req, &rl), 0);
    assert_ptr_equal(req.limits[1].budget, create);
    memset(&req, 0, sizeof req);
    rl.endpoint = "/v5/test/one-too-many";
    assert_int_equal(exch_limits_attach(a, &req, &rl), -ENOMEM);
    assert_int_equal(exch_account_budget_stats(a, NULL, 0), 25);
    exch_account_free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binance_order_budgets_on_first_order),
        cmocka_unit_test(test_binance_throttle_before_first_order),
        cmocka_unit_test(test_bybit_endpoint_budgets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
