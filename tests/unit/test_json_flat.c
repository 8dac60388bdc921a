/* json_flat: the order responses' fast path reads what it accepts exactly as jansson does, and
 * refuses (so that jansson decides) everything where the two could differ. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_documented_order_response_takes_the_fast_path),
        cmocka_unit_test(test_everything_else_is_jansson_s_call),
        cmocka_unit_test(test_big_objects_fall_back),
        cmocka_unit_test(test_field_errors_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
