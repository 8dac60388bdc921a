/* Unit tests for the Bybit private-stream frame parser (exchange/bybit_stream.h): the doc samples
 * (execution, position, order, auth and subscribe replies, both pong shapes, wallet), category
 * filtering, exact decimals, and malformed frames that must fail with an error naming the
 * field. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bybit_stream.h"
#include "dec_test.h"
#include "sample_util.h"

static void parse_ok(const char *frame, struct by_event *ev) {
    char err[256] = "";
    int r = by_parse_event(frame, strlen(frame), ev, err, sizeof err);
    if (r != 0) fail_msg("parse failed: %s", err);
}

static void expect_error(const char *frame, const char *want) {
    struct by_event ev;
    char err[256];
    memset(err, 'x', sizeof err);
    int r = by_parse_event(frame, frame ? strlen(frame) : 0, &ev, err, sizeof err);
    if (r != -EINVAL) fail_msg("expected -EINVAL for %.200s, got %d", frame ? frame : "(null)", r);
    if (!strstr(err, want)) fail_msg("error \"%s\" does not contain \"%s\"", err, want);
    assert_null(ev.execs);
    assert_null(ev.positions);
    assert_null(ev.orders);
    assert_int_equal(ev.kind, BY_EV_OTHER);
    by_event_clear(&ev);
}

static void test_doc_execution(void **state) {
    (void)state;
    size_t len;
    char *doc = sample_load("bybit_execution.json", &len);
    struct by_event ev;
    char err[200];
    assert_int_equal(by_parse_event(doc, len, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, BY_EV_EXECUTION);
    assert_int_equal(ev.creation_time_ms, 1746270400355LL);
    assert_int_equal(ev.n_execs, 1);
    const struct bybit_exec *x = &ev.execs[0];
    const struct mkt_fill *f = &x->fill;
    assert_true(x->is_trade);
    assert_string_equal(x->exec_type, "Trade");
    assert_string_equal(f->symbol, "BTCUSDT");
    assert_string_equal(f->trade_id, "0ab1bdf7-4219-438b-b30a-32ec863018f7");
    assert_string_equal(f->order_id, "9aac161b-8ed6-450d-9cab-c5cc67c21784");
    assert_int_equal(f->trade_seq, 0);
    assert_string_equal(f->order_client_id, "");
    assert_int_equal(f->side, MKT_SELL);
    assert_dec(f->qty, "0.5");
    assert_dec(f->price, "95900.1");
    assert_dec(f->orig_qty, "0.5");
    assert_dec(f->cum_qty, "0.5");
    assert_true(f->order_done);
    assert_true(f->reduce_only); /* closedSize 0.5 == execQty: a pure close */
    assert_dec(x->closed_size, "0.5");
    assert_int_equal(f->pos_side, MKT_PS_BOTH);
    assert_int_equal(f->trade_time_ms, 1746270400353LL);
    assert_int_equal(f->event_time_ms, 1746270400355LL); /* the message's creationTime */
    assert_int_equal(f->received_ns, 0);                 /* the stream sets it */
    assert_string_equal(f->account, "");
    by_event_clear(&ev);
    assert_null(ev.execs);
    free(doc);
}

static void test_execution_variants(void **state) {
    (void)state;
    struct by_event ev;
    /* several fills of one order in one message, a funding entry, and a spot entry */
    parse_ok("{\"topic\":\"execution\",\"id\":\"1\",\"creationTime\":10,\"data\":["
             "{\"category\":\"linear\",\"symbol\":\"ETHUSDT\",\"execId\":\"a\",\"execType\":\"Trade\","
             "\"orderId\":\"o1\",\"orderLinkId\":\"ct7\",\"side\":\"Buy\",\"execQty\":\"0.01\","
             "\"execPrice\":\"3000.5\",\"execTime\":\"9\",\"orderQty\":\"0.03\",\"leavesQty\":\"0.02\","
             "\"closedSize\":\"0\"},"
             "{\"category\":\"linear\",\"symbol\":\"ETHUSDT\",\"execId\":\"b\",\"execType\":\"Trade\","
             "\"orderId\":\"o1\",\"orderLinkId\":\"ct7\",\"side\":\"Buy\",\"execQty\":\"0.02\","
             "\"execPrice\":\"3000.6\",\"execTime\":\"9\",\"orderQty\":\"0.03\",\"leavesQty\":\"0\"},"
             "{\"category\":\"linear\",\"symbol\":\"ETHUSDT\",\"execId\":\"f\",\"execType\":\"Funding\","
             "\"execQty\":\"\",\"execPrice\":\"\"},"
             "{\"category\":\"spot\",\"symbol\":\"ETHUSDT\",\"execId\":\"s\",\"execType\":\"Trade\"}]}",
             &ev);
    assert_int_equal(ev.kind, BY_EV_EXECUTION);
    assert_int_equal(ev.n_execs, 3);
    assert_int_equal(ev.n_skipped, 1);
    assert_string_equal(ev.execs[0].fill.order_client_id, "ct7");
    assert_dec(ev.execs[0].fill.cum_qty, "0.01");
    assert_false(ev.execs[0].fill.order_done);
    assert_false(ev.execs[0].fill.reduce_only);
    assert_dec(ev.execs[1].fill.cum_qty, "0.03");
    assert_true(ev.execs[1].fill.order_done);
    assert_false(ev.execs[2].is_trade);
    assert_string_equal(ev.execs[2].exec_type, "Funding");
    by_event_clear(&ev);

    /* categorised topic; no creationTime: event time = trade time */
    parse_ok("{\"topic\":\"execution.linear\",\"data\":[{\"symbol\":\"XRPUSDT\",\"execId\":\"e\","
             "\"execType\":\"Trade\",\"orderId\":\"o\",\"side\":\"Sell\",\"execQty\":\"25\","
             "\"execPrice\":\"0.3374\",\"execTime\":\"1672364174443\",\"orderQty\":\"25\","
             "\"leavesQty\":\"0\"}]}",
             &ev);
    assert_int_equal(ev.n_execs, 1);
    assert_int_equal(ev.execs[0].fill.event_time_ms, 1672364174443LL);
    by_event_clear(&ev);

    /* empty data is fine */
    parse_ok("{\"topic\":\"execution\",\"data\":[]}", &ev);
    assert_int_equal(ev.kind, BY_EV_EXECUTION);
    assert_int_equal(ev.n_execs, 0);
    by_event_clear(&ev);
}

static void test_doc_position_and_order(void **state) {
    (void)state;
    size_t len;
    struct by_event ev;
    char err[200];
    char *doc = sample_load("bybit_position.json", &len);
    assert_int_equal(by_parse_event(doc, len, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, BY_EV_POSITION);
    assert_int_equal(ev.n_positions, 1);
    assert_string_equal(ev.positions[0].symbol, "BTCUSDT");
    assert_int_equal(ev.positions[0].pos_side, MKT_PS_SHORT); /* positionIdx 2 */
    assert_dec(ev.positions[0].amount, "0");
    assert_dec(ev.positions[0].entry_price, "0"); /* ws: entryPrice */
    assert_int_equal(ev.positions[0].leverage, 10);
    by_event_clear(&ev);
    free(doc);

    parse_ok("{\"topic\":\"position\",\"creationTime\":1,\"data\":[{\"positionIdx\":0,\"symbol\":"
             "\"ETHUSDT\",\"side\":\"Sell\",\"size\":\"1.25\",\"entryPrice\":\"3100.5\",\"leverage\":"
             "\"20\",\"category\":\"linear\"},{\"positionIdx\":0,\"symbol\":\"BTCUSD\",\"side\":\"Buy\","
             "\"size\":\"100\",\"entryPrice\":\"1\",\"leverage\":\"5\",\"category\":\"inverse\"}]}",
             &ev);
    assert_int_equal(ev.n_positions, 1);
    assert_int_equal(ev.n_skipped, 1);
    assert_dec(ev.positions[0].amount, "-1.25");
    assert_dec(ev.positions[0].entry_price, "3100.5");
    by_event_clear(&ev);

    /* the doc's order sample is for an option: not ours */
    doc = sample_load("bybit_order.json", &len);
    assert_int_equal(by_parse_event(doc, len, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, BY_EV_ORDER);
    assert_int_equal(ev.n_orders, 0);
    assert_int_equal(ev.n_skipped, 1);
    by_event_clear(&ev);
    free(doc);
    parse_ok("{\"topic\":\"order\",\"data\":[{\"category\":\"linear\",\"symbol\":\"ETHUSDT\","
             "\"positionIdx\":1,\"orderStatus\":\"New\"},{\"category\":\"linear\",\"symbol\":\"BTCUSDT\"}]}",
             &ev);
    assert_int_equal(ev.n_orders, 2);
    assert_string_equal(ev.orders[0].symbol, "ETHUSDT");
    assert_int_equal(ev.orders[0].position_idx, 1);
    assert_int_equal(ev.orders[1].position_idx, -1);
    by_event_clear(&ev);

    doc = sample_load("bybit_wallet.json", &len);
    assert_int_equal(by_parse_event(doc, len, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, BY_EV_OTHER);
    by_event_clear(&ev);
    free(doc);
}

static void test_op_replies(void **state) {
    (void)state;
    size_t len;
    struct by_event ev;
    char err[200];
    struct {
        const char *file;
        enum by_event_kind kind;
        bool success;
        const char *msg;
    } s[] = {
        {"bybit_ws_auth_success_response.json", BY_EV_AUTH, true, ""},
        {"bybit_ws_subscribe_response_private.json", BY_EV_SUBSCRIBE, true, ""},
        {"bybit_ws_subscribe_response_linear.json", BY_EV_SUBSCRIBE, true, ""},
        {"bybit_ws_pong_private.json", BY_EV_PONG, true, ""},
        {"bybit_ws_pong_public_linear.json", BY_EV_PONG, true, "pong"},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        char *doc = sample_load(s[i].file, &len);
        if (by_parse_event(doc, len, &ev, err, sizeof err) != 0) fail_msg("%s: %s", s[i].file, err);
        if (ev.kind != s[i].kind) fail_msg("%s: kind %d", s[i].file, ev.kind);
        assert_int_equal(ev.success, s[i].success);
        assert_string_equal(ev.ret_msg, s[i].msg);
        by_event_clear(&ev);
        free(doc);
    }
    /* the failure shape is not in the docs: {"success":false,"ret_msg":...} as the simulator says */
    parse_ok("{\"success\":false,\"ret_msg\":\"Invalid apikey\",\"op\":\"auth\",\"conn_id\":\"x\"}", &ev);
    assert_int_equal(ev.kind, BY_EV_AUTH);
    assert_false(ev.success);
    assert_string_equal(ev.ret_msg, "Invalid apikey");
    by_event_clear(&ev);
    parse_ok("{\"success\":false,\"ret_msg\":\"bad\\u0001\",\"op\":\"subscribe\"}", &ev);
    assert_false(ev.success);
    assert_string_equal(ev.ret_msg, "bad?");
    by_event_clear(&ev);
    parse_ok("{\"op\":\"unsubscribe\",\"success\":true}", &ev);
    assert_int_equal(ev.kind, BY_EV_OTHER);
    by_event_clear(&ev);
    parse_ok("{\"topic\":\"wallet\",\"data\":{}}", &ev);
    assert_int_equal(ev.kind, BY_EV_OTHER);
    by_event_clear(&ev);

    /* the frames we send */
    json_error_t je;
    json_t *j = json_loads(BY_SUBSCRIBE_FRAME, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "op")), "subscribe");
    assert_int_equal(json_array_size(json_object_get(j, "args")), 3);
    json_decref(j);
    j = json_loads(BY_PING_FRAME, 0, &je);
    assert_non_null(j);
    json_decref(j);
}

static void test_bad_frames(void **state) {
    (void)state;
#define X(over) "{\"topic\":\"execution\",\"data\":[{\"symbol\":\"BTCUSDT\",\"execId\":\"e\"," \
                "\"execType\":\"Trade\",\"orderId\":\"o\",\"side\":\"Buy\",\"execQty\":\"1\","  \
                "\"execPrice\":\"10\",\"execTime\":\"9\",\"orderQty\":\"1\",\"leavesQty\":\"0\"" over "}]}"
    /* sanity: the base frame parses */
    struct by_event ev;
    parse_ok(X(""), &ev);
    assert_int_equal(ev.n_execs, 1);
    by_event_clear(&ev);

    expect_error(NULL, "invalid JSON");
    expect_error("", "invalid JSON");
    expect_error("{\"topic\":\"execution\"", "invalid JSON");
    expect_error("[1,2]", "not a JSON object");
    expect_error("\"pong\"", "invalid JSON"); /* a bare string is no JSON text for jansson */
    expect_error("{\"conn_id\":\"x\"}", "neither a topic message nor an op reply");
    expect_error("{\"topic\":\"execution\"}", "execution: data: missing");
    expect_error("{\"topic\":\"execution\",\"data\":{}}", "execution: data: not an array");
    expect_error("{\"topic\":\"execution\",\"data\":[5]}", "execution: data[0]: not an object");
    expect_error("{\"topic\":\"execution\",\"creationTime\":\"1\",\"data\":[]}", "creationTime");
    expect_error(X(",\"execQty\":\"abc\""), "invalid JSON"); /* duplicate key */
    expect_error("{\"topic\":\"execution\",\"data\":[{\"symbol\":\"BTCUSDT\",\"execId\":\"e\","
                 "\"execType\":\"Trade\",\"orderId\":\"o\",\"side\":\"Buy\",\"execQty\":\"abc\","
                 "\"execPrice\":\"10\",\"execTime\":\"9\",\"orderQty\":\"1\",\"leavesQty\":\"0\"}]}",
                 "execution: data[0].execQty: not a decimal");
    expect_error("{\"topic\":\"execution\",\"data\":[{\"symbol\":\"BTCUSDT\",\"execId\":\"e\","
                 "\"execType\":\"Trade\",\"orderId\":\"o\",\"side\":\"Buy\",\"execQty\":1.5,"
                 "\"execPrice\":\"10\",\"execTime\":\"9\",\"orderQty\":\"1\",\"leavesQty\":\"0\"}]}",
                 "execQty");
    expect_error("{\"topic\":\"execution\",\"data\":[{\"symbol\":\"BTCUSDT\",\"execId\":\"e\","
                 "\"execType\":\"Trade\",\"side\":\"Buy\",\"execQty\":\"1\","
                 "\"execPrice\":\"10\",\"execTime\":\"9\",\"orderQty\":\"1\",\"leavesQty\":\"0\"}]}",
                 "execution: data[0].orderId: missing");
    expect_error("{\"topic\":\"execution\",\"data\":[{\"symbol\":\"BTCUSDT\",\"execId\":\"e\","
                 "\"execType\":\"Trade\",\"orderId\":\"o\",\"side\":\"buy\",\"execQty\":\"1\","
                 "\"execPrice\":\"10\",\"execTime\":\"9\",\"orderQty\":\"1\",\"leavesQty\":\"0\"}]}",
                 "side");
    expect_error("{\"topic\":\"execution\",\"data\":[{\"symbol\":\"BTCUSDT\",\"execId\":\"e\","
                 "\"execType\":\"Trade\",\"orderId\":\"o\",\"side\":\"Buy\",\"execQty\":\"1\","
                 "\"execPrice\":\"10\",\"execTime\":\"9\",\"orderQty\":\"1\",\"leavesQty\":\"2\"}]}",
                 "leavesQty: more than orderQty");
    expect_error("{\"topic\":\"execution\",\"data\":[{\"symbol\":\"\",\"execId\":\"e\",\"execType\":\"Trade\"}]}",
                 "symbol");
    /* an id longer than our text fields is refused, not truncated into a collision */
    char big[400];
    snprintf(big, sizeof big,
             "{\"topic\":\"execution\",\"data\":[{\"symbol\":\"BTCUSDT\",\"execId\":\"%0100d\","
             "\"execType\":\"Trade\"}]}", 7);
    expect_error(big, "execId: too long");
    expect_error("{\"topic\":\"position\",\"data\":[{\"positionIdx\":0,\"symbol\":\"BTCUSDT\","
                 "\"side\":\"Buy\",\"size\":\"x\"}]}",
                 "position: data[0]: position: size");
    expect_error("{\"topic\":\"position\",\"data\":[{\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"size\":\"1\"}]}",
                 "positionIdx");
    expect_error("{\"topic\":\"order\",\"data\":[{\"positionIdx\":1}]}", "order: data[0].symbol");
    expect_error("{\"op\":\"auth\",\"ret_msg\":\"\"}", "auth reply: success: missing");
    expect_error("{\"op\":\"auth\",\"success\":\"true\"}", "success: not a boolean");
    expect_error("{\"op\":\"subscribe\"}", "subscribe reply: success: missing");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_execution),
        cmocka_unit_test(test_execution_variants),
        cmocka_unit_test(test_doc_position_and_order),
        cmocka_unit_test(test_op_replies),
        cmocka_unit_test(test_bad_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
