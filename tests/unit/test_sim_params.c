/* sim_params + sim_bn_req: query/form parsing, the signed-payload split, HMAC and timestamp
 * checks against the official Binance futures vector, and POST /fapi/v1/order parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "binance_sign.h"
#include "sim_bn_req.h"
#include "sim_params.h"

/* samples/signing_vectors.txt, vector #3 (official, Binance USD-M futures docs). */
#define V3_SECRET "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
#define V3_PAYLOAD "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943"
#define V3_SIG "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
#define V3_TS 1591702613943LL

static void test_vector3_is_in_samples(void **state)
{
    (void)state;
    /* Guard against the constants above drifting from the shared vectors file. */
    char buf[8192];
    FILE *f = fopen(CT_SAMPLES "/signing_vectors.txt", "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "secret  : " V3_SECRET));
    assert_non_null(strstr(buf, "payload : " V3_PAYLOAD "\n"));
    assert_non_null(strstr(buf, "hex     : " V3_SIG));
}

static void test_url_decode_and_parse(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(sp_url_decode("a%3Ab%2fc+d", 11, out), 7);
    assert_string_equal(out, "a:b/c d");
    assert_int_equal(sp_url_decode("%4", 2, out), -EINVAL);
    assert_int_equal(sp_url_decode("%zz", 3, out), -EINVAL);
    assert_int_equal(sp_url_decode("a%00b", 5, out), -EINVAL);

    struct sp_list l;
    sp_init(&l);
    const char *q = "symbol=BTCUSDT&&side=BUY&flag&empty=&x=%3D%26";
    assert_int_equal(sp_parse(&l, q, strlen(q)), 0);
    assert_int_equal(l.n, 5);
    assert_string_equal(sp_get(&l, "symbol"), "BTCUSDT");
    assert_string_equal(sp_get(&l, "flag"), "");
    assert_string_equal(sp_get(&l, "empty"), "");
    assert_string_equal(sp_get(&l, "x"), "=&");
    assert_null(sp_get(&l, "nope"));
    /* the body is parsed after the query: the query's value wins */
    assert_int_equal(sp_parse(&l, "side=SELL&y=1", 13), 0);
    assert_string_equal(sp_get(&l, "side"), "BUY");
    assert_string_equal(sp_get(&l, "y"), "1");
    assert_int_equal(sp_parse(&l, "bad=%g0", 7), -EINVAL);
    sp_free(&l);

    sp_init(&l);
    char many[1024] = "";
    for (int i = 0; i < SP_MAX_PARAMS + 1; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "p%d=1&", i);
    assert_int_equal(sp_parse(&l, many, strlen(many)), -E2BIG);
    assert_int_equal(l.n, SP_MAX_PARAMS);
    sp_free(&l);
}

static void test_split_signature(void **state)
{
    (void)state;
    struct sp_signed s;
    const char *q = "a=1&b=2&signature=abc";
    assert_int_equal(sp_split_signature(q, strlen(q), "", 0, &s), 0);
    assert_int_equal(s.q_len, 7);
    assert_memory_equal(s.q, "a=1&b=2", 7);
    assert_int_equal(s.b_len, 0);
    assert_int_equal(s.sig_len, 3);
    assert_memory_equal(s.sig, "abc", 3);

    /* mixed: query + body, signature last in the body */
    const char *b = "c=3&signature=def";
    assert_int_equal(sp_split_signature("a=1", 3, b, strlen(b), &s), 0);
    assert_int_equal(s.q_len, 3);
    assert_int_equal(s.b_len, 3);
    assert_memory_equal(s.b, "c=3", 3);
    assert_memory_equal(s.sig, "def", 3);

    /* signature alone in the body: the whole query is signed */
    assert_int_equal(sp_split_signature("a=1&b=2", 7, "signature=ff", 12, &s), 0);
    assert_int_equal(s.q_len, 7);
    assert_int_equal(s.b_len, 0);

    /* absent, not last, in the query while the body has data, empty, doubled */
    assert_int_equal(sp_split_signature("a=1", 3, "", 0, &s), -ENOENT);
    q = "signature=abc&a=1";
    assert_int_equal(sp_split_signature(q, strlen(q), "", 0, &s), -EINVAL);
    q = "a=1&signature=abc";
    assert_int_equal(sp_split_signature(q, strlen(q), "b=2", 3, &s), -EINVAL);
    q = "a=1&signature=";
    assert_int_equal(sp_split_signature(q, strlen(q), "", 0, &s), -EINVAL);
    q = "signature=1&a=1&signature=2";
    assert_int_equal(sp_split_signature(q, strlen(q), "", 0, &s), -EINVAL);
    /* a parameter that merely starts with the word is not a signature */
    q = "a=1&signatures=2";
    assert_int_equal(sp_split_signature(q, strlen(q), "", 0, &s), -ENOENT);
}

static int verify(const char *query, const char *body, int64_t now, char *msg)
{
    struct sp_list l;
    sp_init(&l);
    assert_int_equal(sp_parse(&l, query, strlen(query)), 0);
    assert_int_equal(sp_parse(&l, body, strlen(body)), 0);
    int rc = sbnr_verify_signed(V3_SECRET, strlen(V3_SECRET), query, strlen(query), body, strlen(body), &l,
                                now, msg, 256);
    sp_free(&l);
    return rc;
}

static void test_verify_vector3(void **state)
{
    (void)state;
    char msg[256];
    const char *q = V3_PAYLOAD "&signature=" V3_SIG;
    assert_int_equal(verify(q, "", V3_TS + 10, msg), 0);
    /* upper-case hex is accepted (Binance: not case sensitive) */
    char upper[512];
    snprintf(upper, sizeof(upper), "%s", q);
    for (char *p = strstr(upper, "signature=") + 10; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 32);
    assert_int_equal(verify(upper, "", V3_TS, msg), 0);
    /* the same bytes split between query and body, no separator, sign identically */
    assert_int_equal(verify("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1",
                            "&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943&signature=" V3_SIG,
                            V3_TS, msg), 0);
    /* one byte changed */
    assert_int_equal(verify("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=2&price=9000&timeInForce=GTC&recvWindow=5000"
                            "&timestamp=1591702613943&signature=" V3_SIG, "", V3_TS, msg), -1022);
    assert_string_equal(msg, "Signature for this request is not valid.");
    /* an equivalent but differently encoded query is a different signature (exact bytes) */
    assert_int_equal(verify("symbol=BTC%55SDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000"
                            "&timestamp=1591702613943&signature=" V3_SIG, "", V3_TS, msg), -1022);
    assert_int_equal(verify(V3_PAYLOAD, "", V3_TS, msg), -1102);
    assert_non_null(strstr(msg, "'signature'"));

    /* clock rule: timestamp < now + 1000 && now - timestamp <= recvWindow (5000 here) */
    assert_int_equal(verify(q, "", V3_TS + 5000, msg), 0);
    assert_int_equal(verify(q, "", V3_TS + 5001, msg), -1021);
    assert_string_equal(msg, "Timestamp for this request is outside of the recvWindow.");
    assert_int_equal(verify(q, "", V3_TS - 999, msg), 0);
    assert_int_equal(verify(q, "", V3_TS - 1000, msg), -1021);
    assert_string_equal(msg, "Timestamp for this request was 1000ms ahead of the server's time.");
}

static void test_verify_timestamp_params(void **state)
{
    (void)state;
    char msg[256], q[512], sig[BINANCE_SIG_HEX_LEN + 1];
    const char *bodies[] = {"a=1", "a=1&timestamp=abc", "a=1&timestamp=100&recvWindow=60001",
                            "a=1&timestamp=100&recvWindow=0", "a=1&timestamp=100&recvWindow=60000"};
    const int want[] = {-1102, -1102, -1130, -1130, 0};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(binance_sign(V3_SECRET, strlen(V3_SECRET), bodies[i], strlen(bodies[i]), sig), 0);
        snprintf(q, sizeof(q), "%s&signature=%s", bodies[i], sig);
        assert_int_equal(verify(q, "", 60100, msg), want[i]);
    }
}

static struct sbook *mkbook(void)
{
    struct sbook *b = sbook_new(NULL, NULL, NULL);
    struct mkt_instrument in = {.symbol = "BTCUSDT"};
    dec_parse_cstr("0.001", &in.step);
    dec_parse_cstr("0.1", &in.tick);
    dec_t px;
    dec_parse_cstr("50000", &px);
    assert_int_equal(sbook_add_symbol(b, &in, px), 0);
    return b;
}

static int parse(struct sbook *b, const char *q, struct sbnr_order *o, char *msg)
{
    struct sp_list l;
    sp_init(&l);
    assert_int_equal(sp_parse(&l, q, strlen(q)), 0);
    int rc = sbnr_parse_order(&l, b, o, msg, 256);
    if (rc == 0 && o->rq.client_id) /* points into l: check it before freeing */
        assert_true(sbook_client_id_valid(o->rq.client_id));
    sp_free(&l);
    return rc;
}

static void test_parse_order(void **state)
{
    (void)state;
    struct sbook *b = mkbook();
    struct sbnr_order o;
    char msg[256], buf[DEC_STR_MAX];

    assert_int_equal(parse(b, "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010", &o, msg), 0);
    assert_int_equal(o.rq.side, SBOOK_BUY);
    assert_int_equal(o.rq.type, SBOOK_MARKET);
    dec_format(o.rq.qty, buf, sizeof(buf));
    assert_string_equal(buf, "0.01");
    assert_false(o.rq.reduce_only);
    assert_null(o.rq.client_id);
    assert_int_equal(o.resp_type, SBNR_ACK);
    assert_int_equal(o.rq.source, SBOOK_SRC_REST);

    assert_int_equal(parse(b, "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=IOC&quantity=1&price=49000.5"
                              "&reduceOnly=true&newClientOrderId=x:y/z&newOrderRespType=RESULT&positionSide=BOTH",
                           &o, msg), 0);
    assert_int_equal(o.rq.side, SBOOK_SELL);
    assert_int_equal(o.rq.tif, SBOOK_IOC);
    assert_true(o.rq.reduce_only);
    assert_true(o.reduce_only_sent);
    assert_int_equal(o.rq.pos_side, MKT_PS_BOTH);
    assert_int_equal(o.resp_type, SBNR_RESULT);

    /* positionSide is parsed; whether it fits the account's mode is the book's call (-4061) */
    assert_int_equal(parse(b, "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=1&positionSide=SHORT", &o, msg), 0);
    assert_int_equal(o.rq.pos_side, MKT_PS_SHORT);
    assert_false(o.reduce_only_sent);
    assert_int_equal(parse(b, "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=1&positionSide=LONG"
                              "&reduceOnly=false", &o, msg), 0);
    assert_int_equal(o.rq.pos_side, MKT_PS_LONG);
    assert_false(o.rq.reduce_only);
    assert_true(o.reduce_only_sent); /* "false" counts as sent: hedge mode refuses it (-1106) */

    static const struct {
        const char *q;
        int code;
        const char *in_msg;
    } bad[] = {
        {"side=BUY&type=MARKET&quantity=1", -1102, "'symbol'"},
        {"symbol=ETHUSDT&side=BUY&type=MARKET&quantity=1", -1121, "Invalid symbol."},
        {"symbol=BTCUSDT&type=MARKET&quantity=1", -1102, "'side'"},
        {"symbol=BTCUSDT&side=buy&type=MARKET&quantity=1", -1117, "Invalid side."},
        {"symbol=BTCUSDT&side=BUY&quantity=1", -1102, "'type'"},
        {"symbol=BTCUSDT&side=BUY&type=LIMITX&quantity=1", -1116, "Invalid orderType."},
        {"symbol=BTCUSDT&side=BUY&type=STOP_MARKET&quantity=1", -4120, "Algo Order"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET", -1102, "'quantity'"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1e3", -1102, "'quantity'"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=abc", -1102, "'quantity'"},
        {"symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=1", -1102, "'timeInForce'"},
        {"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTD&quantity=1&price=1", -1115, "timeInForce"},
        {"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1", -1102, "'price'"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&positionSide=UP", -4060, "position side"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&positionSide=long", -4060, "position side"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&reduceOnly=yes", -1130, "'reduceOnly'"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&closePosition=true", -1130, "'closePosition'"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&newClientOrderId=a+b", -4015, "Client order id"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&newClientOrderId=", -4015, "Client order id"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&newClientOrderId=1234567890123456789012345678901234567",
         -4015, "Client order id"},
        {"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&newOrderRespType=FULL", -1136, "newOrderRespType"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg[0] = '\0';
        int rc = parse(b, bad[i].q, &o, msg);
        if (rc != bad[i].code || !strstr(msg, bad[i].in_msg))
            fail_msg("%s: got %d '%s', want %d containing '%s'", bad[i].q, rc, msg, bad[i].code, bad[i].in_msg);
    }
    sbook_free(b);
}

static void test_parse_i64(void **state)
{
    (void)state;
    int64_t v;
    assert_true(sbnr_parse_i64("1591702613943", &v));
    assert_int_equal(v, 1591702613943LL);
    assert_false(sbnr_parse_i64("", &v));
    assert_false(sbnr_parse_i64("-1", &v));
    assert_false(sbnr_parse_i64("12a", &v));
    assert_false(sbnr_parse_i64(" 1", &v));
    assert_false(sbnr_parse_i64("1234567890123456789", &v));
    assert_false(sbnr_parse_i64(NULL, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector3_is_in_samples),
        cmocka_unit_test(test_url_decode_and_parse),
        cmocka_unit_test(test_split_signature),
        cmocka_unit_test(test_verify_vector3),
        cmocka_unit_test(test_verify_timestamp_params),
        cmocka_unit_test(test_parse_order),
        cmocka_unit_test(test_parse_i64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
