/* Unit tests for strategy/copy_preflight: one case per problem code, severities, the cap on the
 * output and a clean rule that reports nothing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dec_test.h"

#include "copy_preflight.h"


/* BTCUSDT: step 0.001, min 0.001, min notional 100 at price 50000 -> smallest order 100.
 * ETHUSDT: step 0.01, min 0.01, min notional 5 at price 2000 -> smallest order 20. */
static struct mkt_instrument btc, eth;
static struct copy_preflight_symbol syms[2];

static void setup_symbols(void)
{
    memset(&btc, 0, sizeof btc);
    strcpy(btc.symbol, "BTCUSDT");
    btc.step = D("0.001");
    btc.min_qty = D("0.001");
    btc.max_qty = D("1000");
    btc.tick = D("0.1");
    btc.min_notional = D("100");
    memset(&eth, 0, sizeof eth);
    strcpy(eth.symbol, "ETHUSDT");
    eth.step = D("0.01");
    eth.min_qty = D("0.01");
    eth.max_qty = D("10000");
    eth.tick = D("0.01");
    eth.min_notional = D("5");
    syms[0] = (struct copy_preflight_symbol){&btc, D("50000"), D("20")};
    syms[1] = (struct copy_preflight_symbol){&eth, D("2000"), D("5")};
}

static struct copy_preflight_input base(const struct copy_rule *r)
{
    setup_symbols();
    return (struct copy_preflight_input){.rule = r, .leader_mode = MKT_PM_ONE_WAY,
                                         .follower_mode = MKT_PM_ONE_WAY,
                                         .follower_equity = D("10000"), .leader_equity = D("50000"),
                                         .symbols = syms, .n_symbols = 2};
}

struct expect {
    enum copy_problem_code code;
    enum copy_severity sev;
    const char *symbol;
    const char *text_has; /* a substring of the text */
};

static void run(const struct copy_preflight_input *in, const struct expect *want, size_t n)
{
    struct copy_problem out[16];
    int got = copy_preflight(in, out, 16);
    if (got != (int)n) {
        for (int i = 0; i < got && i < 16; i++)
            print_message("  %s %s %s\n", copy_problem_name(out[i].code),
                          copy_severity_name(out[i].severity), out[i].text);
        fail_msg("%d problems, want %zu", got, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (out[i].code != want[i].code)
            fail_msg("problem %zu: %s, want %s", i, copy_problem_name(out[i].code),
                     copy_problem_name(want[i].code));
        assert_int_equal(out[i].severity, want[i].sev);
        assert_string_equal(out[i].symbol, want[i].symbol);
        if (strstr(out[i].text, want[i].text_has) == NULL)
            fail_msg("problem %zu text \"%s\" lacks \"%s\"", i, out[i].text, want[i].text_has);
        assert_null(strchr(out[i].text, '\n'));
    }
}

static void test_clean(void **state)
{
    (void)state;
    struct copy_rule r = {.id = "r", .multiplier = D("1"), .max_leverage = D("20")};
    struct copy_preflight_input in = base(&r);
    run(&in, NULL, 0);
    assert_int_equal(copy_preflight(&in, NULL, 0), 0);
}

static void test_invalid_rule(void **state)
{
    (void)state;
    struct copy_rule r = {.id = "r7", .multiplier = D("0")};
    struct copy_preflight_input in = base(&r);
    in.follower_equity = DEC_ZERO; /* not reported: an invalid rule stops the checks */
    struct expect w[] = {{COPY_PROBLEM_INVALID_RULE, COPY_SEV_ERROR, "", "rule r7: multiplier"}};
    run(&in, w, 1);
}

static void test_equity_and_modes(void **state)
{
    (void)state;
    struct copy_rule r = {.id = "r", .sizing = COPY_SIZING_EQUITY_RATIO, .multiplier = D("1"),
                          .order_type = COPY_ORDER_LIMIT_IOC};
    struct copy_preflight_input in = base(&r);
    in.follower_equity = DEC_ZERO;
    in.leader_equity = D("-1");
    in.leader_mode = MKT_PM_HEDGE;
    struct expect w[] = {
        {COPY_PROBLEM_NO_EQUITY, COPY_SEV_ERROR, "", "equity"},
        {COPY_PROBLEM_NO_LEADER_EQUITY, COPY_SEV_ERROR, "", "leader's equity"},
        {COPY_PROBLEM_POSITION_MODE_NETTING, COPY_SEV_WARNING, "", "net position"},
        {COPY_PROBLEM_LIMIT_IOC_AT_LEADER_PRICE, COPY_SEV_WARNING, "", "max_slippage_bps 0"},
    };
    run(&in, w, 4);
    /* Hedge follower of a hedge leader, or a one-way leader: no netting. */
    in.follower_mode = MKT_PM_HEDGE;
    r.max_slippage_bps = D("5");
    in.follower_equity = D("10000");
    in.leader_equity = D("1");
    run(&in, NULL, 0);
}

static void test_symbols_and_limits(void **state)
{
    (void)state;
    static const char *const allow[] = {"BTCUSDT", "SOLUSDT"};
    struct copy_rule r = {.id = "r", .multiplier = D("1"), .allow_symbols = allow, .n_allow = 2,
                          .max_leverage = D("10"), .max_position_notional = D("50")};
    struct copy_preflight_input in = base(&r);
    /* SOLUSDT unknown; BTCUSDT: leverage 20 > 10, and 50 quote < 100 minimum. ETHUSDT is not
     * allowed, so it is not checked. */
    struct expect w[] = {
        {COPY_PROBLEM_UNKNOWN_SYMBOL, COPY_SEV_ERROR, "SOLUSDT", "SOLUSDT"},
        {COPY_PROBLEM_LEVERAGE_ABOVE_MAX, COPY_SEV_WARNING, "BTCUSDT", "leverage 20"},
        {COPY_PROBLEM_CANNOT_REACH_MINIMUM, COPY_SEV_ERROR, "BTCUSDT", "(50 quote"},
    };
    run(&in, w, 3);

    /* Equity x max_leverage is the bound: 9 x 10 = 90 < 100 on BTC, >= 20 on ETH. */
    r.n_allow = 0;
    r.max_position_notional = DEC_ZERO;
    r.max_leverage = D("10");
    in.follower_equity = D("9");
    syms[0].follower_leverage = D("10");
    struct expect w2[] = {{COPY_PROBLEM_CANNOT_REACH_MINIMUM, COPY_SEV_ERROR, "BTCUSDT", "(90 quote"}};
    run(&in, w2, 1);
    /* Without max_leverage the follower's own setting bounds it: 9 x 2 = 18 < 20 on ETH. */
    r.max_leverage = DEC_ZERO;
    syms[1].follower_leverage = D("2");
    struct expect w3[] = {
        {COPY_PROBLEM_CANNOT_REACH_MINIMUM, COPY_SEV_ERROR, "BTCUSDT", "(90 quote"},
        {COPY_PROBLEM_CANNOT_REACH_MINIMUM, COPY_SEV_ERROR, "ETHUSDT", "(18 quote"},
    };
    run(&in, w3, 2);
    /* Unknown leverage and no limit: nothing bounds it, nothing to report. */
    syms[0].follower_leverage = DEC_ZERO;
    syms[1].follower_leverage = DEC_ZERO;
    run(&in, NULL, 0);
    /* The instrument's max qty bounds it too: 0.001 x 50000 = 50 < 100. */
    btc.max_qty = D("0.001");
    struct expect w4[] = {{COPY_PROBLEM_CANNOT_REACH_MINIMUM, COPY_SEV_ERROR, "BTCUSDT", "(50 quote"}};
    run(&in, w4, 1);
}

static void test_fixed_notional(void **state)
{
    (void)state;
    struct copy_rule r = {.id = "r", .sizing = COPY_SIZING_FIXED_NOTIONAL, .fixed_notional = D("50")};
    struct copy_preflight_input in = base(&r);
    struct expect w[] = {{COPY_PROBLEM_FIXED_NOTIONAL_BELOW_MINIMUM, COPY_SEV_ERROR, "BTCUSDT",
                          "every open would be skipped"}};
    run(&in, w, 1);
    r.force_min = true;
    struct expect w2[] = {{COPY_PROBLEM_FIXED_NOTIONAL_BELOW_MINIMUM, COPY_SEV_WARNING, "BTCUSDT",
                           "forced up"}};
    run(&in, w2, 1);
    r.fixed_notional = D("100"); /* exactly the minimum: fine */
    run(&in, NULL, 0);
}

static void test_cap_and_errors(void **state)
{
    (void)state;
    static const char *const allow[] = {"A", "B", "C", "D"};
    struct copy_rule r = {.id = "r", .multiplier = D("1"), .allow_symbols = allow, .n_allow = 4};
    struct copy_preflight_input in = base(&r);
    struct copy_problem out[2];
    memset(out, 0x5A, sizeof out);
    assert_int_equal(copy_preflight(&in, out, 2), 4); /* all counted, two written */
    assert_int_equal(out[0].code, COPY_PROBLEM_UNKNOWN_SYMBOL);
    assert_string_equal(out[1].symbol, "B");
    assert_int_equal(copy_preflight(NULL, out, 2), -EINVAL);
    in.rule = NULL;
    assert_int_equal(copy_preflight(&in, out, 2), -EINVAL);
    in.rule = &r;
    assert_int_equal(copy_preflight(&in, NULL, 2), -EINVAL);

    for (int c = COPY_PROBLEM_INVALID_RULE; c < COPY_PROBLEM__COUNT; c++) {
        const char *n = copy_problem_name((enum copy_problem_code)c);
        assert_string_not_equal(n, "unknown");
        for (const char *p = n; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_');
    }
    assert_string_equal(copy_problem_name(COPY_PROBLEM__COUNT), "unknown");
    assert_string_equal(copy_severity_name(COPY_SEV_WARNING), "warning");
    assert_string_equal(copy_severity_name(COPY_SEV_ERROR), "error");
    assert_string_equal(copy_severity_name((enum copy_severity)0), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_invalid_rule),
        cmocka_unit_test(test_equity_and_modes),
        cmocka_unit_test(test_symbols_and_limits),
        cmocka_unit_test(test_fixed_notional),
        cmocka_unit_test(test_cap_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
