/* json_flat: the order responses' and the leader fills' fast path reads what it accepts exactly
 * as jansson does, and refuses (so that jansson decides) everything where the two could differ. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "binance_rest.h"
#include "binance_stream.h"
#include "json_flat.h"

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", CT_SAMPLES, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *b = malloc(1 << 16);
    assert_non_null(b);
    *len = fread(b, 1, (1 << 16) - 1, f);
    b[*len] = '\0';
    fclose(f);
    return b;
}

/* Both parsers on one body: same return, same error text, same fields. */
static int both(const char *body, struct exch_order_result *o)
{
    struct exch_order_result t;
    char e1[256] = "", e2[256] = "";
    memset(o, 0, sizeof *o);
    memset(&t, 0, sizeof t);
    int r1 = binance_parse_order(body, strlen(body), o, e1, sizeof e1);
    int r2 = binance_parse_order_tree(body, strlen(body), &t, e2, sizeof e2);
    assert_int_equal(r1, r2);
    assert_string_equal(e1, e2);
    assert_string_equal(o->order_id, t.order_id);
    assert_string_equal(o->client_id, t.client_id);
    assert_int_equal(o->status, t.status);
    assert_true(o->executed_qty.m == t.executed_qty.m && o->executed_qty.scale == t.executed_qty.scale);
    assert_true(o->avg_price.m == t.avg_price.m && o->avg_price.scale == t.avg_price.scale);
    assert_int_equal(o->update_time_ms, t.update_time_ms);
    return r1;
}

static void test_the_documented_order_response_takes_the_fast_path(void **state)
{
    (void)state;
    size_t len;
    char *b = slurp("binance_new_order_response.json", &len);
    struct jflat f;
    struct jsrc s = {.flat = &f};
    const char *str;
    int64_t i;
    dec_t d;
    assert_int_equal(jflat_parse(&f, b, len), 0);
    assert_int_equal(js_get_str(&s, "clientOrderId", &str), 0);
    assert_string_equal(str, "testOrder");
    assert_int_equal(js_get_i64(&s, "orderId", &i), 0);
    assert_int_equal(i, 22542179);
    assert_int_equal(js_get_dec(&s, "avgPrice", &d), 0);
    assert_int_equal(js_get_i64(&s, "symbol", &i), -EINVAL);
    assert_int_equal(js_get_str(&s, "reduceOnly", &str), -EINVAL);
    assert_int_equal(js_get_str(&s, "nope", &str), -ENOENT);
    char small[4];
    assert_int_equal(js_get_strbuf(&s, "symbol", small, sizeof small), -ERANGE);
    struct exch_order_result o;
    assert_int_equal(both(b, &o), 0);
    assert_string_equal(o.order_id, "22542179");
    free(b);
}

/* Each body where yajl and jansson could disagree goes to jansson, and the outcome is the same. */
static void test_everything_else_is_jansson_s_call(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "", "[]", "\"x\"", "1", "{\"a\":{}}", "{\"a\":[1]}", "{\"a\":1.5}", "{\"a\":1e3}",
        "{\"a\":\"\\u0041\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\u0000\"}", "\f{}", "{}\v",
        "{\"a\":1,\"a\":2}", "{\"a\":99999999999999999999}", "{\"a\":-9223372036854775809}",
        "{\"a\":1} x", "{\n \"k\": \"v\"\n}\"", "{\"a\":\"}\"} \"\\", "{\"a\":1} 12", "{\"a\":1}{}", "{\"a\":01}", "{\"a\":\"x\ny\"}", "{\"a\":\"\xff\"}",
        "{\"a\":1", "{/*c*/\"a\":1}", "{'a':1}", "{\"a\":tru}", "\xef\xbb\xbf{}",
    };
    struct jflat f;
    struct exch_order_result o;
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++) {
        if (jflat_parse(&f, refused[k], strlen(refused[k])) != -ENOTSUP)
            fail_msg("accepted: %s", refused[k]);
        assert_int_equal(both(refused[k], &o), -EBADMSG);
    }
    /* the edges it does take */
    const char *ok = "{\"a\":-9223372036854775808,\"b\":-0,\"c\":null,\"d\":true,\"e\":\"\\\"\\n\",\"\":\"\"}";
    assert_int_equal(jflat_parse(&f, ok, strlen(ok)), 0);
    assert_int_equal(f.n, 6);
    struct jsrc s = {.flat = &f};
    int64_t i;
    const char *str;
    assert_int_equal(js_get_i64(&s, "a", &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(js_get_str(&s, "e", &str), 0);
    assert_string_equal(str, "\"\n");
}

/* More members or text than the table holds: jansson, same result. */
static void test_big_objects_fall_back(void **state)
{
    (void)state;
    char body[16384];
    size_t o = (size_t)snprintf(body, sizeof body, "{\"orderId\":1,\"clientOrderId\":\"c\","
                                "\"status\":\"FILLED\",\"executedQty\":\"1\",\"avgPrice\":\"2\"");
    for (int k = 0; k < JF_MAX; k++) o += (size_t)snprintf(body + o, sizeof body - o, ",\"k%d\":%d", k, k);
    snprintf(body + o, sizeof body - o, "}");
    struct jflat f;
    assert_int_equal(jflat_parse(&f, body, strlen(body)), -ENOTSUP);
    struct exch_order_result r;
    assert_int_equal(both(body, &r), 0);
    assert_int_equal(r.status, EXCH_ST_FILLED);

    o = (size_t)snprintf(body, sizeof body, "{\"orderId\":1,\"clientOrderId\":\"c\",\"status\":\"NEW\","
                         "\"executedQty\":\"0\",\"avgPrice\":\"0\",\"pad\":\"");
    memset(body + o, 'x', JF_TEXT_MAX);
    snprintf(body + o + JF_TEXT_MAX, sizeof body - o - JF_TEXT_MAX, "\"}");
    assert_int_equal(jflat_parse(&f, body, strlen(body)), -ENOTSUP);
    assert_int_equal(both(body, &r), 0);
    assert_int_equal(r.status, EXCH_ST_NEW);
}

/* Field errors come out the same on both paths. */
static void test_field_errors_agree(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"orderId\":\"1\",\"clientOrderId\":\"c\",\"status\":\"NEW\",\"executedQty\":\"0\",\"avgPrice\":\"0\"}",
        "{\"orderId\":1,\"clientOrderId\":2,\"status\":\"NEW\",\"executedQty\":\"0\",\"avgPrice\":\"0\"}",
        "{\"orderId\":1,\"clientOrderId\":\"c\",\"status\":\"BOGUS\",\"executedQty\":\"0\",\"avgPrice\":\"0\"}",
        "{\"orderId\":1,\"clientOrderId\":\"c\",\"status\":\"NEW\",\"executedQty\":\"x\",\"avgPrice\":\"0\"}",
        "{\"orderId\":1,\"clientOrderId\":\"c\",\"status\":\"NEW\",\"executedQty\":\"-1\",\"avgPrice\":\"0\"}",
        "{\"orderId\":1,\"clientOrderId\":\"c\",\"status\":\"NEW\",\"executedQty\":7,\"avgPrice\":\"0\",\"updateTime\":\"1\"}",
        "{\"orderId\":1,\"clientOrderId\":\"c\",\"status\":\"NEW\",\"executedQty\":7,\"avgPrice\":null}",
        "{\"orderId\":1,\"clientOrderId\":\"c\",\"status\":\"NEW\",\"executedQty\":7,\"avgPrice\":\"1.5\",\"updateTime\":5}",
    };
    struct exch_order_result o;
    int ok = 0;
    for (size_t k = 0; k < sizeof bodies / sizeof *bodies; k++) ok += both(bodies[k], &o) == 0;
    assert_int_equal(ok, 1); /* only the last one is a valid order */
    assert_int_equal(o.update_time_ms, 5);
}

/* An ORDER_TRADE_UPDATE: the flat event with the flat order nested in "o", read into two tables. */
static void test_nested_order_event(void **state)
{
    (void)state;
    size_t len;
    char *b = slurp("binance_order_trade_update.json", &len);
    struct jflat top, order;
    assert_int_equal(jflat_parse_nested(&top, "o", &order, b, len), 0);
    struct jsrc s = {.flat = &top}, o;
    const char *str;
    int64_t i;
    bool v = true;
    assert_int_equal(js_get_str(&s, "e", &str), 0);
    assert_string_equal(str, "ORDER_TRADE_UPDATE");
    assert_int_equal(js_get_str(&s, "o", &str), -EINVAL); /* an object, as jansson would say */
    assert_int_equal(js_get_obj(&s, "o", &o), 0);
    assert_int_equal(js_get_obj(&s, "E", &o), -EINVAL);
    assert_int_equal(js_get_obj(&s, "nope", &o), -ENOENT);
    assert_int_equal(js_get_obj(&s, "o", &o), 0);
    assert_int_equal(js_get_str(&o, "o", &str), 0); /* the order's own "o": its type */
    assert_string_equal(str, "TRAILING_STOP_MARKET");
    assert_int_equal(js_get_i64(&o, "i", &i), 0);
    assert_true(i == 8886774);
    assert_int_equal(js_get_bool(&o, "R", &v), 0);
    assert_false(v);
    assert_int_equal(js_get_bool(&o, "s", &v), -EINVAL);
    free(b);

    static const char *const refused[] = {
        "{\"o\":{\"a\":{}}}", "{\"o\":{},\"p\":{}}", "{\"p\":{}}", "{\"o\":{},\"o\":{}}",
        "{\"o\":{\"a\":1,\"a\":2}}", "{\"o\":[]}", "{\"o\":{\"a\":[1]}}", "{\"o\":{\"a\":\"\xc1\xb6\"}}",
        "{\"o\":{}} x", "{\"o\":{}}}", "{\"o\":{\"a\":1.5}}", "{\"o\":{\"a\":\"\\u0041\"}}", "{\"o\":{}",
    };
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++)
        if (jflat_parse_nested(&top, "o", &order, refused[k], strlen(refused[k])) != -ENOTSUP)
            fail_msg("accepted: %s", refused[k]);
    /* without a nest key, jflat_parse refuses the object member as before */
    assert_int_equal(jflat_parse(&top, "{\"o\":{}}", 8), -ENOTSUP);
    const char *ok = "{\"e\":1,\"o\":{\"x\":true},\"f\":\"}\"}";
    assert_int_equal(jflat_parse_nested(&top, "o", &order, ok, strlen(ok)), 0);
    assert_int_equal(top.n, 3);
    assert_int_equal(order.n, 1);
}

/* bn_parse_user_event (yajl for the plain ORDER_TRADE_UPDATE) and its jansson-only twin: the same
 * result, error text and event, byte for byte, for fills, errors and the shapes only jansson takes. */
static void test_fill_events_agree(void **state)
{
    (void)state;
    static const char *const frames[] = {
        /* the simulator's fill, as the copy path sees it */
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1700000000123,\"T\":1700000000122,\"o\":{\"s\":\"BTCUSDT\","
        "\"c\":\"web_1\",\"S\":\"BUY\",\"o\":\"MARKET\",\"f\":\"GTC\",\"q\":\"0.002\",\"p\":\"0\",\"ap\":\"50000\","
        "\"sp\":\"0\",\"x\":\"TRADE\",\"X\":\"PARTIALLY_FILLED\",\"i\":42,\"l\":\"0.001\",\"z\":\"0.001\","
        "\"L\":\"50000.10\",\"N\":\"USDT\",\"n\":\"0\",\"T\":1700000000122,\"t\":7,\"b\":\"0\",\"a\":\"0\","
        "\"m\":false,\"R\":true,\"wt\":\"CONTRACT_PRICE\",\"ot\":\"MARKET\",\"ps\":\"LONG\",\"cp\":false}}",
        /* field errors on the fast path */
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":{\"x\":\"TRADE\",\"X\":\"FILLED\",\"s\":\"BTCUSDT\",\"c\":\"c\","
        "\"S\":\"SELL\",\"t\":1,\"i\":1,\"l\":\"1\",\"L\":\"2\",\"z\":\"1\",\"q\":\"1\",\"R\":1,\"T\":1}}",
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":\"x\"}",
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1}",
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":\"1\",\"o\":{}}",
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":{\"x\":\"NEW\",\"X\":\"NEW\"}}",
        /* jansson's: an envelope, a duplicate, a real, another event */
        "{\"stream\":\"k\",\"data\":{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":{\"x\":\"NEW\",\"X\":\"NEW\"}}}",
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":{\"x\":\"NEW\",\"x\":\"NEW\"}}",
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1.5,\"o\":{}}",
        "{\"e\":\"listenKeyExpired\",\"E\":1,\"listenKey\":\"k\"}",
    };
    for (size_t k = 0; k < sizeof frames / sizeof *frames; k++) {
        struct bn_user_event a, b;
        char ea[256], eb[256];
        int ra = bn_parse_user_event(frames[k], strlen(frames[k]), &a, ea, sizeof ea);
        int rb = bn_parse_user_event_tree(frames[k], strlen(frames[k]), &b, eb, sizeof eb);
        if (ra != rb || strcmp(ea, eb) || memcmp(&a, &b, sizeof a))
            fail_msg("frame %zu: %d '%s' vs %d '%s'", k, ra, ea, rb, eb);
        if (k == 0) {
            assert_int_equal(ra, 0);
            assert_int_equal(a.kind, BN_EV_FILL);
            assert_true(a.fill.reduce_only);
            assert_int_equal(a.fill.pos_side, MKT_PS_LONG);
            assert_string_equal(a.fill.trade_id, "7");
        }
        if (k == 1) assert_string_equal(ea, "ORDER_TRADE_UPDATE: o.R: not a boolean");
        bn_user_event_clear(&a);
        bn_user_event_clear(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_documented_order_response_takes_the_fast_path),
        cmocka_unit_test(test_everything_else_is_jansson_s_call),
        cmocka_unit_test(test_big_objects_fall_back),
        cmocka_unit_test(test_field_errors_agree),
        cmocka_unit_test(test_nested_order_event),
        cmocka_unit_test(test_fill_events_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
