/* sim_limits: Binance IP weight windows, 429 then 418 bans (escalating, capped), order counts per
 * account in 10 s / 1 min windows, weights of endpoints, headers and error bodies; Bybit's
 * rolling one-second window per account and endpoint with its X-Bapi-* headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "sim_limits.h"

/* A minute boundary, so windows are easy to reason about. */
#define T0 (1700000040000LL - 1700000040000LL % 60000)

static struct slim *mk(int weight, int o10, int o60, int ban_after, int ban_s, int ban_max)
{
    struct slim_cfg c;
    slim_cfg_default(&c);
    c.weight_1m = weight;
    c.orders_10s = o10;
    c.orders_1m = o60;
    c.ban_after = ban_after;
    c.ban_s = ban_s;
    c.ban_max_s = ban_max;
    c.bybit_trade_per_s = 2;
    c.bybit_query_per_s = 3;
    struct slim *l = slim_new(&c);
    assert_non_null(l);
    return l;
}

static void test_defaults(void **state)
{
    (void)state;
    struct slim_cfg c;
    slim_cfg_default(&c);
    assert_true(c.enabled);
    assert_int_equal(c.weight_1m, 2400);
    assert_int_equal(c.orders_10s, 300);
    assert_int_equal(c.orders_1m, 1200);
    assert_int_equal(c.ban_s, 120);
    assert_int_equal(c.ban_max_s, 259200);
    assert_int_equal(c.bybit_trade_per_s, 10);
    assert_int_equal(c.bybit_query_per_s, 50);
}

static void test_weights(void **state)
{
    (void)state;
    assert_int_equal(slim_bn_weight("POST", "/fapi/v1/order", true), 0);
    assert_int_equal(slim_bn_weight("POST", "/fapi/v1/batchOrders", false), 5);
    assert_int_equal(slim_bn_weight("GET", "/fapi/v1/openOrders", true), 1);
    assert_int_equal(slim_bn_weight("GET", "/fapi/v1/openOrders", false), 40);
    assert_int_equal(slim_bn_weight("GET", "/fapi/v2/positionRisk", false), 5);
    assert_int_equal(slim_bn_weight("GET", "/fapi/v2/ticker/price", false), 2);
    assert_int_equal(slim_bn_weight("GET", "/fapi/v2/ticker/price", true), 1);
    assert_int_equal(slim_bn_weight("GET", "/fapi/v1/userTrades", true), 5);
    assert_int_equal(slim_bn_weight("GET", "/fapi/v1/exchangeInfo", false), 1);
    assert_int_equal(slim_bn_weight("GET", "/fapi/v1/order", true), 1);
}

static void test_weight_window_429_then_ban(void **state)
{
    (void)state;
    struct slim *l = mk(10, 300, 1200, 2, 120, 400);
    struct slim_bn_ip r;
    struct sbuf h = SBUF_INIT, b = SBUF_INIT;

    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 5, T0 + 1000, &r), SLIM_OK);
    assert_int_equal(r.used_weight, 5);
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 5, T0 + 2000, &r), SLIM_OK);
    assert_int_equal(r.used_weight, 10);
    /* Another IP has its own budget. */
    assert_int_equal(slim_bn_ip(l, "127.0.0.2", 10, T0 + 2000, &r), SLIM_OK);
    /* Over: 429 until the minute ends (58 s left at +2.5 s -> 58). */
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 1, T0 + 2500, &r), SLIM_LIMITED);
    assert_int_equal(r.used_weight, 11);
    assert_int_equal(r.retry_after_s, 58);
    slim_bn_ip_headers(&r, &h);
    assert_string_equal(h.p, "X-MBX-USED-WEIGHT-1M: 11\r\nRetry-After: 58\r\n");
    slim_bn_ip_error(&r, &b);
    assert_non_null(strstr(b.p, "\"code\":-1003"));
    assert_non_null(strstr(b.p, "current limit is 10 requests per minute"));
    /* Weight-0 requests (new orders) pass. */
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 0, T0 + 2600, &r), SLIM_OK);
    /* Second 429, then the third limited request bans (ban_after 2). */
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 1, T0 + 3000, &r), SLIM_LIMITED);
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 1, T0 + 4000, &r), SLIM_BANNED);
    assert_int_equal(r.retry_after_s, 120);
    assert_true(r.ban_until_ms == T0 + 4000 + 120000);
    sbuf_reset(&b);
    slim_bn_ip_error(&r, &b);
    assert_non_null(strstr(b.p, "IP banned until"));
    /* Banned: everything refused, weight 0 too, nothing counted; Retry-After counts down. */
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 0, T0 + 64000, &r), SLIM_BANNED);
    assert_int_equal(r.retry_after_s, 60);
    assert_int_equal(slim_bn_ip(l, "127.0.0.2", 0, T0 + 64000, &r), SLIM_OK);
    /* Ban over, a new window: fine again. */
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 1, T0 + 124001, &r), SLIM_OK);
    assert_int_equal(r.used_weight, 1);
    /* Repeat offence in the same window: 240 s, then capped at 400 s. */
    for (int i = 0; i < 2; i++)
        slim_bn_ip(l, "127.0.0.1", 20, T0 + 125000, &r);
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 20, T0 + 125000, &r), SLIM_BANNED);
    assert_int_equal(r.retry_after_s, 240);
    for (int i = 0; i < 3; i++)
        slim_bn_ip(l, "127.0.0.1", 20, T0 + 125000 + 240000, &r);
    assert_int_equal(r.verdict, SLIM_BANNED);
    assert_int_equal(r.retry_after_s, 400);
    /* Reset forgets bans. */
    slim_reset(l);
    assert_int_equal(slim_bn_ip(l, "127.0.0.1", 1, T0 + 125000 + 300000, &r), SLIM_OK);
    sbuf_free(&h);
    sbuf_free(&b);
    slim_free(l);
}

static void test_disabled_counts_only(void **state)
{
    (void)state;
    struct slim_cfg c;
    slim_cfg_default(&c);
    c.enabled = false;
    c.weight_1m = 1;
    c.orders_10s = 1;
    struct slim *l = slim_new(&c);
    struct slim_bn_ip r;
    struct slim_bn_orders o;
    for (int i = 0; i < 5; i++)
        assert_int_equal(slim_bn_ip(l, "ip", 3, T0, &r), SLIM_OK);
    assert_int_equal(r.used_weight, 15);
    for (int i = 0; i < 5; i++)
        assert_int_equal(slim_bn_orders(l, "a", 1, 1, T0, &o), SLIM_OK);
    assert_int_equal(o.count_10s, 5);
    slim_free(l);
}

static void test_orders(void **state)
{
    (void)state;
    struct slim *l = mk(2400, 3, 5, 5, 120, 259200);
    struct slim_bn_orders o;
    struct sbuf h = SBUF_INIT, b = SBUF_INIT;

    for (int i = 1; i <= 3; i++) {
        assert_int_equal(slim_bn_orders(l, "f1", 1, 1, T0 + 1000, &o), SLIM_OK);
        assert_int_equal(o.count_10s, i);
    }
    assert_int_equal(slim_bn_orders(l, "f1", 1, 1, T0 + 2500, &o), SLIM_LIMITED);
    assert_int_equal(o.limit, 3);
    assert_string_equal(o.interval, "10 SECOND");
    assert_int_equal(o.retry_after_s, 8);
    assert_int_equal(o.count_10s, 3); /* not counted */
    slim_bn_order_headers(&o, &h);
    assert_string_equal(h.p, "X-MBX-ORDER-COUNT-10S: 3\r\nX-MBX-ORDER-COUNT-1M: 3\r\nRetry-After: 8\r\n");
    slim_bn_orders_error(&o, &b);
    assert_string_equal(b.p, "{\"code\":-1015,\"msg\":\"Too many new orders; current limit is 3 orders per 10 SECOND.\"}");
    /* Per account. */
    assert_int_equal(slim_bn_orders(l, "f2", 1, 1, T0 + 2500, &o), SLIM_OK);
    /* Next 10 s window: 2 more fit the minute (5), then the minute refuses. */
    assert_int_equal(slim_bn_orders(l, "f1", 1, 1, T0 + 10000, &o), SLIM_OK);
    assert_int_equal(o.count_10s, 1);
    assert_int_equal(o.count_1m, 4);
    assert_int_equal(slim_bn_orders(l, "f1", 1, 1, T0 + 10001, &o), SLIM_OK);
    assert_int_equal(slim_bn_orders(l, "f1", 1, 1, T0 + 20000, &o), SLIM_LIMITED);
    assert_string_equal(o.interval, "1 MINUTE");
    assert_int_equal(o.retry_after_s, 40);
    /* A batch: 5 in the 10 s window, 1 in the minute. */
    assert_int_equal(slim_bn_orders(l, "f3", 5, 1, T0 + 60000, &o), SLIM_LIMITED);
    assert_int_equal(slim_bn_orders(l, "f3", 3, 1, T0 + 60000, &o), SLIM_OK);
    assert_int_equal(o.count_1m, 1);
    sbuf_free(&h);
    sbuf_free(&b);
    slim_free(l);
}

static void test_bybit(void **state)
{
    (void)state;
    struct slim *l = mk(2400, 300, 1200, 5, 120, 259200);
    struct slim_by r;
    struct sbuf h = SBUF_INIT;
    assert_int_equal(slim_by_limit(l, "POST", "/v5/order/create"), 2);
    assert_int_equal(slim_by_limit(l, "POST", "/v5/position/set-leverage"), 2);
    assert_int_equal(slim_by_limit(l, "GET", "/v5/order/realtime"), 3);

    assert_true(slim_by_request(l, "f1", "POST", "/v5/order/create", 1000, &r));
    assert_int_equal(r.limit, 2);
    assert_int_equal(r.remaining, 1);
    assert_true(r.reset_ms == 1000);
    slim_by_headers(&r, &h);
    assert_string_equal(h.p, "X-Bapi-Limit: 2\r\nX-Bapi-Limit-Status: 1\r\nX-Bapi-Limit-Reset-Timestamp: 1000\r\n");
    assert_true(slim_by_request(l, "f1", "POST", "/v5/order/create", 1400, &r));
    assert_int_equal(r.remaining, 0);
    /* Third within the rolling second: refused until the first leaves (1000 + 1000). */
    assert_false(slim_by_request(l, "f1", "POST", "/v5/order/create", 1900, &r));
    assert_true(r.limited);
    assert_true(r.reset_ms == 2000);
    /* Per endpoint and per account. */
    assert_true(slim_by_request(l, "f1", "POST", "/v5/order/cancel", 1900, &r));
    assert_true(slim_by_request(l, "f2", "POST", "/v5/order/create", 1900, &r));
    /* Rolling: at 2000 the first has left, one slot. */
    assert_true(slim_by_request(l, "f1", "POST", "/v5/order/create", 2000, &r));
    assert_int_equal(r.remaining, 0);
    assert_false(slim_by_request(l, "f1", "POST", "/v5/order/create", 2300, &r));
    assert_true(r.reset_ms == 2400);
    assert_true(slim_by_request(l, "f1", "POST", "/v5/order/create", 3500, &r));
    assert_int_equal(r.remaining, 1);
    sbuf_free(&h);
    slim_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_weight_window_429_then_ban),
        cmocka_unit_test(test_disabled_counts_only),
        cmocka_unit_test(test_orders),
        cmocka_unit_test(test_bybit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
