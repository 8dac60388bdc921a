/* Unit tests for the Binance user-stream frame parser (exchange/binance_stream.h): the doc
 * samples, a TRADE variant of the doc ORDER_TRADE_UPDATE, exact decimals, and malformed frames
 * that must fail with an error naming the field. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "binance_stream.h"
#include "dec_test.h"
#include "sample_util.h"

/* The doc ORDER_TRADE_UPDATE turned into a fill: x/X/l/L/t/z edited, then `o_over` (a JSON
 * object) merged into "o" (null deletes a key) and `top_over` merged into the top level. */
static char *otu_variant(const char *o_over, const char *top_over) {
    json_error_t jerr;
    json_t *root, *o, *over;
    const char *k;
    json_t *v;
    char *txt, *doc = sample_load("binance_order_trade_update.json", NULL);

    root = json_loads(doc, 0, &jerr);
    free(doc);
    if (!root) fail_msg("sample: %s", jerr.text);
    o = json_object_get(root, "o");
    json_object_set_new(o, "x", json_string("TRADE"));
    json_object_set_new(o, "X", json_string("PARTIALLY_FILLED"));
    json_object_set_new(o, "l", json_string("0.00040"));
    json_object_set_new(o, "L", json_string("7103.05"));
    json_object_set_new(o, "t", json_integer(987654321));
    json_object_set_new(o, "z", json_string("0.0004"));
    if (o_over) {
        over = json_loads(o_over, 0, &jerr);
        if (!over) fail_msg("o_over: %s", jerr.text);
        json_object_foreach(over, k, v) {
            if (json_is_null(v))
                json_object_del(o, k);
            else
                json_object_set(o, k, v);
        }
        json_decref(over);
    }
    if (top_over) {
        over = json_loads(top_over, 0, &jerr);
        if (!over) fail_msg("top_over: %s", jerr.text);
        json_object_foreach(over, k, v) {
            if (json_is_null(v))
                json_object_del(root, k);
            else
                json_object_set(root, k, v);
        }
        json_decref(over);
    }
    txt = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_non_null(txt);
    return txt;
}

static void expect_error(const char *frame, size_t len, const char *want) {
    struct bn_user_event ev;
    char err[256];
    int r;

    memset(err, 'x', sizeof(err));
    r = bn_parse_user_event(frame, len, &ev, err, sizeof(err));
    if (r != -EINVAL) fail_msg("expected -EINVAL for %.200s, got %d", frame ? frame : "(null)", r);
    if (!strstr(err, want)) fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_null(ev.positions);
    assert_int_equal(ev.n_positions, 0);
    bn_user_event_clear(&ev);
}

static void expect_error_str(const char *frame, const char *want) {
    expect_error(frame, strlen(frame), want);
}

static void test_doc_order_update_new_is_no_fill(void **state) {
    (void)state;
    size_t len;
    char *doc = sample_load("binance_order_trade_update.json", &len);
    struct bn_user_event ev;
    char err[200];

    assert_int_equal(bn_parse_user_event(doc, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_ORDER_UPDATE);
    assert_string_equal(ev.type, "ORDER_TRADE_UPDATE");
    assert_string_equal(ev.exec_type, "NEW");
    assert_string_equal(ev.order_status, "NEW");
    assert_int_equal(ev.event_time_ms, 1568879465651LL);
    assert_string_equal(ev.fill.trade_id, ""); /* nothing filled in */
    bn_user_event_clear(&ev);
    free(doc);

    doc = sample_load("binance_order_trade_update_expired_in_match.json", &len);
    assert_int_equal(bn_parse_user_event(doc, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_ORDER_UPDATE);
    assert_string_equal(ev.exec_type, "EXPIRED");
    assert_string_equal(ev.order_status, "EXPIRED_IN_MATCH");
    bn_user_event_clear(&ev);
    free(doc);
}

static void test_trade_variant_is_fill(void **state) {
    (void)state;
    char *f = otu_variant(NULL, NULL);
    struct bn_user_event ev;
    char err[200];

    assert_int_equal(bn_parse_user_event(f, strlen(f), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_FILL);
    assert_string_equal(ev.exec_type, "TRADE");
    assert_string_equal(ev.fill.symbol, "BTCUSDT");
    assert_string_equal(ev.fill.trade_id, "987654321");
    assert_int_equal(ev.fill.trade_seq, 987654321);
    assert_string_equal(ev.fill.order_id, "8886774");
    assert_string_equal(ev.fill.order_client_id, "TEST");
    assert_int_equal(ev.fill.side, MKT_SELL);
    assert_dec(ev.fill.qty, "0.0004");
    {
        dec_t want;
        assert_int_equal(dec_parse_cstr("0.0004", &want), 0);
        assert_int_equal(dec_cmp(ev.fill.qty, want), 0); /* exactly 4e-4, no binary rounding */
    }
    assert_dec(ev.fill.price, "7103.05");
    assert_dec(ev.fill.cum_qty, "0.0004");
    assert_dec(ev.fill.orig_qty, "0.001");
    assert_false(ev.fill.reduce_only);
    assert_false(ev.fill.order_done);
    assert_int_equal(ev.fill.event_time_ms, 1568879465651LL);
    assert_int_equal(ev.fill.trade_time_ms, 1568879465650LL);
    assert_int_equal(ev.fill_pos_side, BN_PS_LONG);
    assert_int_equal(ev.fill.pos_side, MKT_PS_LONG); /* o.ps reaches the engine's fill */
    assert_string_equal(ev.fill.account, ""); /* the stream fills it in */
    assert_int_equal(ev.fill.received_ns, 0);
    bn_user_event_clear(&ev);
    free(f);

    /* the last fill of the order, reduce-only, BUY, no ps field */
    f = otu_variant("{\"X\":\"FILLED\",\"R\":true,\"S\":\"BUY\",\"ps\":null,\"z\":\"0.001\","
                    "\"l\":\"0.0006\",\"L\":\"0.00000001\",\"T\":1568879465999}",
                    NULL);
    assert_int_equal(bn_parse_user_event(f, strlen(f), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_FILL);
    assert_true(ev.fill.order_done);
    assert_true(ev.fill.reduce_only);
    assert_int_equal(ev.fill.side, MKT_BUY);
    assert_int_equal(ev.fill_pos_side, BN_PS_BOTH);
    assert_int_equal(ev.fill.pos_side, MKT_PS_BOTH);
    assert_dec(ev.fill.qty, "0.0006");
    assert_dec(ev.fill.price, "0.00000001");
    assert_dec(ev.fill.cum_qty, "0.001");
    assert_int_equal(ev.fill.trade_time_ms, 1568879465999LL);
    bn_user_event_clear(&ev);
    free(f);

    /* a hedge-mode SHORT fill */
    f = otu_variant("{\"ps\":\"SHORT\",\"S\":\"BUY\"}", NULL);
    assert_int_equal(bn_parse_user_event(f, strlen(f), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_FILL);
    assert_int_equal(ev.fill.pos_side, MKT_PS_SHORT);
    assert_int_equal(ev.fill_pos_side, BN_PS_SHORT);
    bn_user_event_clear(&ev);
    free(f);

    /* big exact values survive untouched */
    f = otu_variant(
        "{\"l\":\"123456.123456789\",\"L\":\"99999999.12345678\",\"t\":9007199254740993}", NULL);
    assert_int_equal(bn_parse_user_event(f, strlen(f), &ev, err, sizeof(err)), 0);
    assert_dec(ev.fill.qty, "123456.123456789");
    assert_dec(ev.fill.price, "99999999.12345678");
    assert_string_equal(ev.fill.trade_id, "9007199254740993"); /* 2^53 + 1: no double on the way */
    assert_int_equal(ev.fill.trade_seq, 9007199254740993LL);
    bn_user_event_clear(&ev);
    free(f);
}

static void test_client_id_truncated(void **state) {
    (void)state;
    char *f = otu_variant("{\"c\":\"settlement_autoclose-BTCUSDT-0123456789abcdefghij\"}", NULL);
    struct bn_user_event ev;
    char err[200];

    assert_int_equal(bn_parse_user_event(f, strlen(f), &ev, err, sizeof(err)), 0);
    assert_int_equal(strlen(ev.fill.order_client_id), MKT_CLIENT_ID_MAX - 1);
    assert_memory_equal(ev.fill.order_client_id, "settlement_autoclose-BTCUSDT-0123456", 36);
    bn_user_event_clear(&ev);
    free(f);
}

static void test_combined_stream_envelope(void **state) {
    (void)state;
    char *inner = otu_variant(NULL, NULL);
    size_t n = strlen(inner) + 64;
    char *f = malloc(n);
    struct bn_user_event ev;
    char err[200];

    snprintf(f, n, "{\"stream\":\"abc\",\"data\":%s}", inner);
    assert_int_equal(bn_parse_user_event(f, strlen(f), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_FILL);
    assert_string_equal(ev.fill.trade_id, "987654321");
    bn_user_event_clear(&ev);
    free(f);
    free(inner);
}

static void test_account_update_sample(void **state) {
    (void)state;
    size_t len;
    char *doc = sample_load("binance_account_update.cleaned.json", &len);
    struct bn_user_event ev;
    char err[200];

    assert_int_equal(bn_parse_user_event(doc, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_ACCOUNT_UPDATE);
    assert_int_equal(ev.event_time_ms, 1564745798939LL);
    assert_int_equal(ev.n_positions, 3);
    assert_string_equal(ev.positions[0].pos.symbol, "BTCUSDT");
    assert_int_equal(ev.positions[0].side, BN_PS_BOTH);
    assert_int_equal(ev.positions[0].pos.pos_side, MKT_PS_BOTH);
    assert_dec(ev.positions[0].pos.amount, "0");
    assert_dec(ev.positions[0].pos.entry_price, "0");
    assert_int_equal(ev.positions[1].side, BN_PS_LONG);
    assert_int_equal(ev.positions[1].pos.pos_side, MKT_PS_LONG);
    assert_int_equal(ev.positions[2].pos.pos_side, MKT_PS_SHORT);
    assert_int_equal(ev.positions[2].pos.leverage, 0);
    assert_dec(ev.positions[1].pos.amount, "20");
    assert_dec(ev.positions[1].pos.entry_price, "6563.665");
    assert_int_equal(ev.positions[2].side, BN_PS_SHORT);
    assert_dec(ev.positions[2].pos.amount, "-10");
    assert_dec(ev.positions[2].pos.entry_price, "6563.86");
    bn_user_event_clear(&ev);
    assert_null(ev.positions);
    free(doc);

    /* funding fee on a cross position: balances only, no P */
    expect_error_str("{\"e\":\"ACCOUNT_UPDATE\",\"E\":1,\"T\":1}", "ACCOUNT_UPDATE: a: missing");
    {
        const char *f = "{\"e\":\"ACCOUNT_UPDATE\",\"E\":1,\"a\":{\"m\":\"FUNDING_FEE\",\"B\":[]}}";
        assert_int_equal(bn_parse_user_event(f, strlen(f), &ev, err, sizeof(err)), 0);
        assert_int_equal(ev.kind, BN_EV_ACCOUNT_UPDATE);
        assert_int_equal(ev.n_positions, 0);
        bn_user_event_clear(&ev);
    }
}

static void test_listen_key_expired_and_others(void **state) {
    (void)state;
    size_t len;
    char *doc = sample_load("binance_listen_key_expired.json", &len);
    struct bn_user_event ev;
    char err[200];

    assert_int_equal(bn_parse_user_event(doc, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_LISTEN_KEY_EXPIRED);
    assert_int_equal(ev.event_time_ms, 1736996475556LL);
    assert_string_equal(ev.listen_key,
                        "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv");
    bn_user_event_clear(&ev);
    free(doc);

    doc = sample_load("binance_account_config_update_leverage.json", &len);
    assert_int_equal(bn_parse_user_event(doc, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_LEVERAGE);
    assert_string_equal(ev.type, "ACCOUNT_CONFIG_UPDATE");
    assert_int_equal(ev.event_time_ms, 1611646737479LL);
    assert_string_equal(ev.leverage_symbol, "BTCUSDT");
    assert_int_equal(ev.leverage, 25);
    bn_user_event_clear(&ev);
    free(doc);

    /* the multi-assets flavour ("ai") is not a leverage change */
    doc = sample_load("binance_account_config_update_multiassets.json", &len);
    assert_int_equal(bn_parse_user_event(doc, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_OTHER);
    assert_string_equal(ev.type, "ACCOUNT_CONFIG_UPDATE");
    assert_int_equal(ev.leverage, 0);
    bn_user_event_clear(&ev);
    free(doc);

    doc = sample_load("binance_trade_lite.cleaned.json", &len);
    assert_int_equal(bn_parse_user_event(doc, len, &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.kind, BN_EV_OTHER);
    assert_string_equal(ev.type, "TRADE_LITE");
    bn_user_event_clear(&ev);
    free(doc);
}

static void test_malformed_frames(void **state) {
    (void)state;
    static const struct {
        const char *o_over, *top_over, *want;
    } cases[] = {
        {"{\"l\":\"abc\"}", NULL, "ORDER_TRADE_UPDATE: o.l: not a decimal"},
        {"{\"l\":\"1e-3\"}", NULL, "ORDER_TRADE_UPDATE: o.l: not a decimal"},
        {"{\"l\":0.5}", NULL, "ORDER_TRADE_UPDATE: o.l: not a decimal"},
        {"{\"l\":\"\"}", NULL, "ORDER_TRADE_UPDATE: o.l: not a decimal"},
        {"{\"l\":\"0\"}", NULL, "ORDER_TRADE_UPDATE: o.l: not positive"},
        {"{\"l\":\"123456789012345678901234567890\"}", NULL,
         "ORDER_TRADE_UPDATE: o.l: out of range"},
        {"{\"l\":null}", NULL, "ORDER_TRADE_UPDATE: o.l: missing"},
        {"{\"L\":null}", NULL, "ORDER_TRADE_UPDATE: o.L: missing"},
        {"{\"L\":\"-1\"}", NULL, "ORDER_TRADE_UPDATE: o.L: not positive"},
        {"{\"z\":true}", NULL, "ORDER_TRADE_UPDATE: o.z: not a decimal"},
        {"{\"q\":null}", NULL, "ORDER_TRADE_UPDATE: o.q: missing"},
        {"{\"t\":\"123\"}", NULL, "ORDER_TRADE_UPDATE: o.t: not an integer"},
        {"{\"t\":1.5}", NULL, "ORDER_TRADE_UPDATE: o.t: not an integer"},
        {"{\"t\":0}", NULL, "ORDER_TRADE_UPDATE: o.t: not a positive integer"},
        {"{\"t\":null}", NULL, "ORDER_TRADE_UPDATE: o.t: missing"},
        {"{\"i\":-5}", NULL, "ORDER_TRADE_UPDATE: o.i: not a positive integer"},
        {"{\"T\":\"now\"}", NULL, "ORDER_TRADE_UPDATE: o.T: not an integer"},
        {"{\"S\":\"HOLD\"}", NULL, "ORDER_TRADE_UPDATE: o.S: not BUY or SELL"},
        {"{\"S\":null}", NULL, "ORDER_TRADE_UPDATE: o.S: missing"},
        {"{\"s\":\"\"}", NULL, "ORDER_TRADE_UPDATE: o.s: empty"},
        {"{\"s\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\"}", NULL,
         "ORDER_TRADE_UPDATE: o.s: too long"},
        {"{\"s\":7}", NULL, "ORDER_TRADE_UPDATE: o.s: not a string"},
        {"{\"c\":null}", NULL, "ORDER_TRADE_UPDATE: o.c: missing"},
        {"{\"R\":\"false\"}", NULL, "ORDER_TRADE_UPDATE: o.R: not a boolean"},
        {"{\"ps\":\"UP\"}", NULL, "ORDER_TRADE_UPDATE: o.ps: not BOTH, LONG or SHORT"},
        {"{\"x\":null}", NULL, "ORDER_TRADE_UPDATE: o.x: missing"},
        {"{\"X\":1}", NULL, "ORDER_TRADE_UPDATE: o.X: not a string"},
        {NULL, "{\"o\":null}", "ORDER_TRADE_UPDATE: o: missing"},
        {NULL, "{\"o\":\"x\"}", "ORDER_TRADE_UPDATE: o: not an object"},
        {NULL, "{\"E\":null}", "ORDER_TRADE_UPDATE: E: missing"},
        {NULL, "{\"E\":\"1\"}", "ORDER_TRADE_UPDATE: E: not an integer"},
        {NULL, "{\"e\":null}", "e: missing"},
        {NULL, "{\"e\":[1]}", "e: not a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *f = otu_variant(cases[i].o_over, cases[i].top_over);
        expect_error_str(f, cases[i].want);
        free(f);
    }

    expect_error_str("this is not json", "invalid JSON");
    expect_error_str("", "invalid JSON");
    expect_error(NULL, 0, "invalid JSON");
    expect_error_str("[1,2,3]", "not a JSON object");
    expect_error_str("{}", "e: missing");
    expect_error_str(
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":{\"x\":\"TRADE\",\"X\":\"NEW\"}} trailing",
        "invalid JSON");
    /* an integer jansson cannot hold fails the whole frame, with the position */
    expect_error_str(
        "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":{\"t\":123456789012345678901234567890}}",
        "invalid JSON: too big integer");
    /* duplicate keys are ambiguous for money: refused */
    expect_error_str("{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"E\":2}", "duplicate");
    /* a NUL inside the frame */
    expect_error("{\"e\":\"A\0B\"}", 11, "invalid JSON");

    /* ACCOUNT_UPDATE fields are named with their index */
    expect_error_str("{\"e\":\"ACCOUNT_UPDATE\",\"E\":1,\"a\":{\"P\":{}}}",
                     "ACCOUNT_UPDATE: a.P: not an array");
    expect_error_str("{\"e\":\"ACCOUNT_UPDATE\",\"E\":1,\"a\":[]}",
                     "ACCOUNT_UPDATE: a: not an object");
    expect_error_str(
        "{\"e\":\"ACCOUNT_UPDATE\",\"E\":1,\"a\":{\"P\":[{\"s\":\"BTCUSDT\",\"pa\":\"1\",\"ep\":"
        "\"2\","
        "\"ps\":\"BOTH\"},{\"s\":\"ETHUSDT\",\"pa\":\"x\",\"ep\":\"2\",\"ps\":\"BOTH\"}]}}",
        "ACCOUNT_UPDATE: a.P[1].pa: not a decimal");
    expect_error_str("{\"e\":\"ACCOUNT_UPDATE\",\"E\":1,\"a\":{\"P\":[{\"s\":\"BTCUSDT\",\"pa\":"
                     "\"1\",\"ep\":\"2\","
                     "\"ps\":\"UP\"}]}}",
                     "ACCOUNT_UPDATE: a.P[0].ps: not BOTH, LONG or SHORT");
    expect_error_str("{\"e\":\"ACCOUNT_UPDATE\",\"E\":1,\"a\":{\"P\":[{\"pa\":\"1\",\"ep\":\"2\","
                     "\"ps\":\"BOTH\"}]}}",
                     "ACCOUNT_UPDATE: a.P[0].s: missing");
    expect_error_str("{\"e\":\"ACCOUNT_UPDATE\",\"E\":1,\"a\":{\"P\":[7]}}",
                     "ACCOUNT_UPDATE: a.P[0]: not an object");
    expect_error_str("{\"e\":\"listenKeyExpired\",\"E\":1,\"listenKey\":5}",
                     "listenKeyExpired: listenKey: not a string");
    expect_error_str("{\"e\":\"listenKeyExpired\"}", "listenKeyExpired: E: missing");

    /* ACCOUNT_CONFIG_UPDATE leverage changes */
    expect_error_str("{\"e\":\"ACCOUNT_CONFIG_UPDATE\",\"E\":1,\"ac\":[]}",
                     "ACCOUNT_CONFIG_UPDATE: ac: not an object");
    expect_error_str("{\"e\":\"ACCOUNT_CONFIG_UPDATE\",\"E\":1,\"ac\":{\"l\":5}}",
                     "ACCOUNT_CONFIG_UPDATE: ac.s: missing");
    expect_error_str("{\"e\":\"ACCOUNT_CONFIG_UPDATE\",\"E\":1,\"ac\":{\"s\":\"\",\"l\":5}}",
                     "ACCOUNT_CONFIG_UPDATE: ac.s: empty");
    expect_error_str("{\"e\":\"ACCOUNT_CONFIG_UPDATE\",\"E\":1,\"ac\":{\"s\":"
                     "\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\",\"l\":5}}",
                     "ACCOUNT_CONFIG_UPDATE: ac.s: too long");
    expect_error_str("{\"e\":\"ACCOUNT_CONFIG_UPDATE\",\"E\":1,\"ac\":{\"s\":\"BTCUSDT\"}}",
                     "ACCOUNT_CONFIG_UPDATE: ac.l: missing");
    expect_error_str("{\"e\":\"ACCOUNT_CONFIG_UPDATE\",\"E\":1,\"ac\":{\"s\":\"BTCUSDT\",\"l\":\"5\"}}",
                     "ACCOUNT_CONFIG_UPDATE: ac.l: not an integer");
    expect_error_str("{\"e\":\"ACCOUNT_CONFIG_UPDATE\",\"E\":1,\"ac\":{\"s\":\"BTCUSDT\",\"l\":0}}",
                     "ACCOUNT_CONFIG_UPDATE: ac.l: not in 1..1000");
    expect_error_str("{\"e\":\"ACCOUNT_CONFIG_UPDATE\",\"ac\":{\"s\":\"BTCUSDT\",\"l\":5}}",
                     "ACCOUNT_CONFIG_UPDATE: E: missing");
}

static void test_junk_megabyte(void **state) {
    (void)state;
    size_t n = 1024 * 1024;
    char *junk = malloc(n);
    uint32_t x = 12345;

    assert_non_null(junk);
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (char)(x >> 16);
    }
    expect_error(junk, n, "invalid JSON");

    /* deep nesting: jansson's depth limit, not our stack */
    memset(junk, '[', n);
    expect_error(junk, n, "invalid JSON");

    /* a huge but valid string value where a decimal belongs */
    {
        const char *pre = "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":{\"x\":\"TRADE\",\"X\":"
                          "\"NEW\",\"s\":\"BTCUSDT\","
                          "\"c\":\"a\",\"S\":\"BUY\",\"t\":1,\"i\":1,\"l\":\"";
        const char *post = "\"}}";
        size_t lp = strlen(pre), lq = strlen(post);
        memcpy(junk, pre, lp);
        memset(junk + lp, '9', n - lp - lq);
        memcpy(junk + n - lq, post, lq);
        expect_error(junk, n, "ORDER_TRADE_UPDATE: o.l: out of range");
    }
    free(junk);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_order_update_new_is_no_fill),
        cmocka_unit_test(test_trade_variant_is_fill),
        cmocka_unit_test(test_client_id_truncated),
        cmocka_unit_test(test_combined_stream_envelope),
        cmocka_unit_test(test_account_update_sample),
        cmocka_unit_test(test_listen_key_expired_and_others),
        cmocka_unit_test(test_malformed_frames),
        cmocka_unit_test(test_junk_megabyte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
