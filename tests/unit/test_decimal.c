/* Unit tests for strategy/decimal: parse/format, comparison, exact arithmetic, rounding. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decimal.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

static dec_t D(const char *s)
{
    dec_t d = DEC_ZERO;
    int rc = dec_parse_cstr(s, &d);
    if (rc != 0)
        fail_msg("test setup: cannot parse \"%s\": %d", s, rc);
    return d;
}

static const char *F(dec_t d, char buf[DEC_STR_MAX])
{
    int rc = dec_format(d, buf, DEC_STR_MAX);
    if (rc < 0)
        fail_msg("format failed: %d (m=%lld scale=%u)", rc, (long long)d.m, d.scale);
    return buf;
}

static void assert_dec_str(dec_t d, const char *want, const char *ctx)
{
    char buf[DEC_STR_MAX];
    F(d, buf);
    if (strcmp(buf, want) != 0)
        fail_msg("%s: got %s want %s", ctx, buf, want);
}

/* ---- parse / format ---------------------------------------------------------------------- */

struct parse_case {
    const char *in;
    int rc;
    const char *out; /* canonical text when rc == 0 */
};

static const struct parse_case parse_cases[] = {
    {"0.001", 0, "0.001"},
    {"123456.78", 0, "123456.78"},
    {"0.00100000", 0, "0.001"},
    {"-0", 0, "0"},
    {"+0.000", 0, "0"},
    {"0", 0, "0"},
    {"000", 0, "0"},
    {"0.0", 0, "0"},
    {"+5", 0, "5"},
    {"-5.000", 0, "-5"},
    {"100", 0, "100"},
    {"1.10", 0, "1.1"},
    {"-0.0050", 0, "-0.005"},
    {"9223372036854775807", 0, "9223372036854775807"},
    {"-9223372036854775807", 0, "-9223372036854775807"},
    {"9223372036854775807.000", 0, "9223372036854775807"},
    {"922337203685477580.7", 0, "922337203685477580.7"},
    {"9.223372036854775807", 0, "9.223372036854775807"},
    {"0.000000000000000001", 0, "0.000000000000000001"},
    {"0.0000000000000000010", 0, "0.000000000000000001"},
    {"1234567890.1234567890", 0, "1234567890.123456789"},
    {"0000000000000000000000001.5000000000000000000000", 0, "1.5"},
    {"-0000000000000000000000000.0000000000000000000000", 0, "0"},
    /* out of range */
    {"9223372036854775808", -ERANGE, NULL},
    {"-9223372036854775808", -ERANGE, NULL}, /* INT64_MIN is outside the domain */
    {"12345678901234567890", -ERANGE, NULL},
    {"9999999999.999999999", -ERANGE, NULL},
    {"9223372036854775807.1", -ERANGE, NULL},
    {"0.0000000000000000001", -ERANGE, NULL},
    {"1.0000000000000000001", -ERANGE, NULL},
    /* malformed */
    {"", -EINVAL, NULL},
    {"-", -EINVAL, NULL},
    {"+", -EINVAL, NULL},
    {".", -EINVAL, NULL},
    {"1.", -EINVAL, NULL},
    {".5", -EINVAL, NULL},
    {"-.5", -EINVAL, NULL},
    {" 1", -EINVAL, NULL},
    {"1 ", -EINVAL, NULL},
    {"\t1", -EINVAL, NULL},
    {"1e5", -EINVAL, NULL},
    {"1E5", -EINVAL, NULL},
    {"1.5e-3", -EINVAL, NULL},
    {"0x10", -EINVAL, NULL},
    {"nan", -EINVAL, NULL},
    {"NaN", -EINVAL, NULL},
    {"inf", -EINVAL, NULL},
    {"-inf", -EINVAL, NULL},
    {"1.2.3", -EINVAL, NULL},
    {"1..2", -EINVAL, NULL},
    {"--1", -EINVAL, NULL},
    {"+-1", -EINVAL, NULL},
    {"1-", -EINVAL, NULL},
    {"1a", -EINVAL, NULL},
    {"1,5", -EINVAL, NULL},
    {"\"1\"", -EINVAL, NULL},
    {"\xd9\xa1", -EINVAL, NULL}, /* ARABIC-INDIC DIGIT ONE */
    {"12345678901234567890x", -EINVAL, NULL},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEM(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        dec_t d = {777, 3}; /* sentinel: must stay untouched on error */
        int rc = dec_parse_cstr(c->in, &d);
        if (rc != c->rc)
            fail_msg("parse \"%s\": rc %d want %d", c->in, rc, c->rc);
        if (rc == 0) {
            assert_dec_str(d, c->out, c->in);
            assert_true(dec_valid(d));
            /* Normalized on parse: re-normalizing changes nothing. */
            dec_t n = dec_normalize(d);
            assert_int_equal(n.m, d.m);
            assert_int_equal(n.scale, d.scale);
        } else {
            assert_int_equal(d.m, 777);
            assert_int_equal(d.scale, 3);
        }
    }
}

static void test_parse_length_and_nul(void **state)
{
    (void)state;
    dec_t d;
    /* Only len bytes are read: the source need not be NUL-terminated. */
    assert_int_equal(dec_parse("1234", 2, &d), 0);
    assert_dec_str(d, "12", "prefix");
    assert_int_equal(dec_parse("0.5xyz", 3, &d), 0);
    assert_dec_str(d, "0.5", "prefix");
    /* An embedded NUL inside len is junk. */
    assert_int_equal(dec_parse("1\0" "2", 3, &d), -EINVAL);
    assert_int_equal(dec_parse("", 0, &d), -EINVAL);
    assert_int_equal(dec_parse(NULL, 0, &d), -EINVAL);
    assert_int_equal(dec_parse_cstr(NULL, &d), -EINVAL);
    assert_int_equal(dec_parse_cstr("1", NULL), -EINVAL);
}

static void test_parse_very_long(void **state)
{
    (void)state;
    /* 5000 leading zeros, "1.5", 5000 trailing zeros. */
    size_t n = 5000;
    char *s = malloc(2 * n + 4);
    assert_non_null(s);
    memset(s, '0', n);
    memcpy(s + n, "1.5", 3);
    memset(s + n + 3, '0', n);
    s[2 * n + 3] = '\0';
    dec_t d;
    assert_int_equal(dec_parse_cstr(s, &d), 0);
    assert_dec_str(d, "1.5", "long");

    /* 5000 zeros after the point and then a digit: far below the smallest unit. */
    memcpy(s, "0.", 2);
    memset(s + 2, '0', 2 * n);
    s[2 * n + 2] = '1';
    s[2 * n + 3] = '\0';
    assert_int_equal(dec_parse_cstr(s, &d), -ERANGE);

    /* 5000 significant digits. */
    memset(s, '7', 2 * n + 3);
    assert_int_equal(dec_parse_cstr(s, &d), -ERANGE);
    free(s);
}

struct format_case {
    dec_t d;
    const char *out;
};

static void test_format_table(void **state)
{
    (void)state;
    static const struct format_case cases[] = {
        {{0, 0}, "0"},
        {{0, 18}, "0"},
        {{1000, 3}, "1"},         /* unnormalized input prints canonically */
        {{12300, 4}, "1.23"},
        {{-5, 3}, "-0.005"},
        {{5, 0}, "5"},
        {{-5, 0}, "-5"},
        {{12345678, 2}, "123456.78"},
        {{INT64_MAX, 0}, "9223372036854775807"},
        {{-INT64_MAX, 18}, "-9.223372036854775807"},
        {{-1, 18}, "-0.000000000000000001"},
        {{INT64_MAX, 5}, "92233720368547.75807"},
    };
    for (size_t i = 0; i < N_ELEM(cases); i++)
        assert_dec_str(cases[i].d, cases[i].out, cases[i].out);
}

static void test_format_buffer(void **state)
{
    (void)state;
    char buf[8];
    dec_t d = D("-0.005"); /* 6 chars */
    assert_int_equal(dec_format(d, buf, 7), 6);
    assert_string_equal(buf, "-0.005");
    assert_int_equal(dec_format(d, buf, 6), -ENOSPC);
    assert_int_equal(dec_format(d, NULL, 0), -ENOSPC);
    assert_int_equal(dec_format((dec_t){1, 19}, buf, sizeof buf), -EINVAL);
    assert_int_equal(dec_format((dec_t){INT64_MIN, 0}, buf, sizeof buf), -EINVAL);
    /* The worst case fits DEC_STR_MAX. */
    char big[DEC_STR_MAX];
    assert_true(dec_format((dec_t){-INT64_MAX, 18}, big, sizeof big) > 0);
    assert_true(dec_format((dec_t){-1, 18}, big, sizeof big) > 0);
}

/* Deterministic generator for property tests (splitmix64). */
static uint64_t rng_state = 0x243f6a8885a308d3ULL;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static dec_t random_dec(void)
{
    /* Mixed magnitudes: up to 19 digits, any scale. */
    unsigned digits = 1 + (unsigned)(rng() % 19);
    uint64_t lim = 1;
    for (unsigned k = 0; k < digits && lim <= UINT64_MAX / 10; k++)
        lim *= 10;
    int64_t m = (int64_t)(rng() % lim % (uint64_t)INT64_MAX);
    if (rng() & 1)
        m = -m;
    return (dec_t){m, (uint8_t)(rng() % (DEC_MAX_SCALE + 1))};
}

static void test_round_trip_random(void **state)
{
    (void)state;
    for (int i = 0; i < 20000; i++) {
        dec_t d = random_dec();
        char buf[DEC_STR_MAX];
        int len = dec_format(d, buf, sizeof buf);
        assert_true(len > 0);
        assert_int_equal((size_t)len, strlen(buf));
        dec_t back;
        assert_int_equal(dec_parse_cstr(buf, &back), 0);
        assert_int_equal(dec_cmp(back, d), 0);
        dec_t n = dec_normalize(d);
        assert_int_equal(back.m, n.m);
        assert_int_equal(back.scale, n.scale);
        /* Canonical text re-formats to itself. */
        char buf2[DEC_STR_MAX];
        assert_string_equal(F(back, buf2), buf);
    }
}

/* ---- comparison and small helpers -------------------------------------------------------- */

struct cmp_case {
    const char *a, *b;
    int want;
};

static void test_cmp(void **state)
{
    (void)state;
    static const struct cmp_case cases[] = {
        {"1.5", "1.50", 0},
        {"0.1", "0.09", 1},
        {"-0.1", "-0.09", -1},
        {"0", "-0", 0},
        {"0.000000000000000001", "0", 1},
        {"-0.000000000000000001", "0", -1},
        {"9223372036854775807", "9.223372036854775807", 1},
        {"-9223372036854775807", "-9.223372036854775807", -1},
        {"100", "99.9999999999999999", 1},
        {"0.5", "0.499999999999999999", 1},
    };
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        int got = dec_cmp(D(cases[i].a), D(cases[i].b));
        if (got != cases[i].want)
            fail_msg("cmp(%s, %s) = %d want %d", cases[i].a, cases[i].b, got, cases[i].want);
        assert_int_equal(dec_cmp(D(cases[i].b), D(cases[i].a)), -cases[i].want);
    }
    assert_int_equal(dec_cmp((dec_t){1000, 3}, (dec_t){1, 0}), 0); /* unnormalized equal */
}

static void test_helpers(void **state)
{
    (void)state;
    dec_t d = dec_from_int(-42);
    assert_int_equal(d.m, -42);
    assert_int_equal(d.scale, 0);
    assert_int_equal(dec_from_int(INT64_MIN).m, -INT64_MAX);
    assert_true(dec_valid(D("1.5")));
    assert_false(dec_valid((dec_t){1, 19}));
    assert_false(dec_valid((dec_t){INT64_MIN, 0}));
    assert_true(dec_is_zero(D("-0.000")));
    assert_false(dec_is_zero(D("0.000000000000000001")));
    assert_int_equal(dec_sign(D("-0.1")), -1);
    assert_int_equal(dec_sign(D("0")), 0);
    assert_int_equal(dec_sign(D("0.1")), 1);
    assert_dec_str(dec_neg(D("1.25")), "-1.25", "neg");
    assert_dec_str(dec_neg(D("-1.25")), "1.25", "neg");
    assert_dec_str(dec_abs(D("-1.25")), "1.25", "abs");
    assert_dec_str(dec_abs(D("1.25")), "1.25", "abs");
    assert_dec_str(dec_min(D("1.25"), D("1.3")), "1.25", "min");
    assert_dec_str(dec_max(D("1.25"), D("1.3")), "1.3", "max");
    assert_dec_str(dec_min(D("-1"), D("0.5")), "-1", "min");
    dec_t n = dec_normalize((dec_t){-1200, 5});
    assert_int_equal(n.m, -12);
    assert_int_equal(n.scale, 3);
    n = dec_normalize((dec_t){0, 7});
    assert_int_equal(n.m, 0);
    assert_int_equal(n.scale, 0);
}

/* ---- exact arithmetic -------------------------------------------------------------------- */

enum op { OP_ADD, OP_SUB, OP_MUL };

struct arith_case {
    enum op op;
    const char *a, *b;
    int rc;
    const char *want;
};

static void test_arith(void **state)
{
    (void)state;
    static const struct arith_case cases[] = {
        {OP_ADD, "0.1", "0.2", 0, "0.3"},
        {OP_ADD, "1", "0.001", 0, "1.001"},
        {OP_ADD, "0.5", "0.5", 0, "1"},
        {OP_ADD, "-0.5", "0.5", 0, "0"},
        {OP_ADD, "9223372036854775806", "1", 0, "9223372036854775807"},
        {OP_ADD, "9223372036854775807", "1", -ERANGE, NULL},
        {OP_ADD, "-9223372036854775807", "-1", -ERANGE, NULL},
        {OP_ADD, "922337203685477580.6", "0.1", 0, "922337203685477580.7"},
        {OP_ADD, "922337203685477580.7", "0.1", -ERANGE, NULL},
        {OP_ADD, "922337203685477580.7", "0.01", -ERANGE, NULL}, /* needs 20 digits */
        {OP_ADD, "9223372036854775800", "0.000000000000000001", -ERANGE, NULL},
        {OP_ADD, "0.000000000000000001", "0.000000000000000009", 0, "0.00000000000000001"},
        {OP_SUB, "1.25", "2", 0, "-0.75"},
        {OP_SUB, "0.5", "0.5", 0, "0"},
        {OP_SUB, "-9223372036854775807", "1", -ERANGE, NULL},
        {OP_SUB, "9223372036854775807", "-1", -ERANGE, NULL},
        {OP_SUB, "0", "9223372036854775807", 0, "-9223372036854775807"},
        {OP_MUL, "0.013", "3", 0, "0.039"},
        {OP_MUL, "1.5", "1.5", 0, "2.25"},
        {OP_MUL, "0.5", "0.2", 0, "0.1"},
        {OP_MUL, "-2", "0.5", 0, "-1"},
        {OP_MUL, "-2", "-0.5", 0, "1"},
        {OP_MUL, "0", "-0.5", 0, "0"},
        {OP_MUL, "0.000000001", "0.000000001", 0, "0.000000000000000001"},
        {OP_MUL, "0.000000001", "0.0000000001", -ERANGE, NULL}, /* 10^-19 */
        {OP_MUL, "0.000000000000000002", "0.5", 0, "0.000000000000000001"},
        {OP_MUL, "0.0000000002", "5000000000", 0, "1"},
        {OP_MUL, "3037000499", "3037000499", 0, "9223372030926249001"},
        {OP_MUL, "3037000500", "3037000500", -ERANGE, NULL},
        {OP_MUL, "9223372036854775807", "9223372036854775807", -ERANGE, NULL},
        {OP_MUL, "9223372036854775807", "0.000000000000000001", 0, "9.223372036854775807"},
        {OP_MUL, "9223372036854775807", "-1", 0, "-9223372036854775807"},
    };
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        const struct arith_case *c = &cases[i];
        dec_t r = {555, 1};
        int rc = c->op == OP_ADD ? dec_add(D(c->a), D(c->b), &r)
                 : c->op == OP_SUB ? dec_sub(D(c->a), D(c->b), &r)
                                   : dec_mul(D(c->a), D(c->b), &r);
        if (rc != c->rc)
            fail_msg("case %zu (%s op%d %s): rc %d want %d", i, c->a, (int)c->op, c->b, rc, c->rc);
        if (rc == 0) {
            assert_dec_str(r, c->want, c->a);
            dec_t n = dec_normalize(r);
            assert_int_equal(n.scale, r.scale);
        }
    }
    dec_t r;
    assert_int_equal(dec_add((dec_t){1, 19}, D("1"), &r), -EINVAL);
    assert_int_equal(dec_mul(D("1"), (dec_t){INT64_MIN, 0}, &r), -EINVAL);
    assert_int_equal(dec_sub(D("1"), D("1"), NULL), -EINVAL);
}

struct cmp_mul_case {
    const char *a, *b, *c;
    int want;
};

static void test_cmp_mul(void **state)
{
    (void)state;
    static const struct cmp_mul_case cases[] = {
        {"0.001", "5000", "5", 0},
        {"0.001", "4999.99", "5", -1},
        {"0.001", "5000.01", "5", 1},
        {"0.0000000001", "0.0000000001", "0", 1},          /* 10^-20 > 0 */
        {"0.0000000001", "0.0000000001", "0.000000000000000001", -1},
        {"0.000000000000000001", "1", "0.000000000000000001", 0},
        {"0.000000000000000001", "0.000000000000000001", "0.000000000000000001", -1},
        {"9223372036854775807", "9223372036854775807", "9223372036854775807", 1},
        {"9223372036854775807", "0.000000000000000001", "9.223372036854775807", 0},
        {"-1", "2", "-2", 0},
        {"-1", "2", "-3", 1},
        {"-1", "2", "-1", -1},
        {"-1", "-2", "2", 0},
        {"-1", "2", "0", -1},
        {"0", "2", "0", 0},
        {"0", "2", "-0.1", 1},
        {"0", "2", "0.1", -1},
        {"3.33", "3", "9.99", 0},
        {"0.1", "0.1", "0.01", 0},
        {"123456.789", "0.001", "123.456789", 0},
        {"123456.789", "0.001", "123.456788", 1},
        {"123456.789", "0.001", "123.45679", -1},
        {"1.5", "2", "3000000000000000000", -1},
    };
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        const struct cmp_mul_case *c = &cases[i];
        int got = dec_cmp_mul(D(c->a), D(c->b), D(c->c));
        if (got != c->want)
            fail_msg("cmp_mul(%s, %s, %s) = %d want %d", c->a, c->b, c->c, got, c->want);
        assert_int_equal(dec_cmp_mul(D(c->b), D(c->a), D(c->c)), c->want); /* commutative */
    }
}

/* ---- rounding ---------------------------------------------------------------------------- */

enum rop { R_DOWN, R_UP };

struct round_case {
    enum rop op;
    const char *x, *step;
    int rc;
    const char *want;
};

static void test_round(void **state)
{
    (void)state;
    static const struct round_case cases[] = {
        {R_DOWN, "0.0129", "0.001", 0, "0.012"},
        {R_DOWN, "-0.0129", "0.001", 0, "-0.012"},
        {R_DOWN, "0.012", "0.001", 0, "0.012"},
        {R_DOWN, "0.0009", "0.001", 0, "0"},
        {R_DOWN, "-0.0009", "0.001", 0, "0"},
        {R_DOWN, "0", "0.001", 0, "0"},
        {R_DOWN, "1.7", "0.5", 0, "1.5"},
        {R_DOWN, "-1.7", "0.5", 0, "-1.5"},
        {R_DOWN, "2", "0.5", 0, "2"},
        {R_DOWN, "123", "10", 0, "120"},
        {R_DOWN, "-129", "10", 0, "-120"},
        {R_DOWN, "9.99", "10", 0, "0"},
        {R_DOWN, "5", "0.3", 0, "4.8"},
        {R_DOWN, "1.23456789", "0.00000001", 0, "1.23456789"},
        {R_DOWN, "1.234567891", "0.00000001", 0, "1.23456789"},
        {R_DOWN, "9223372036854775807", "1", 0, "9223372036854775807"},
        {R_DOWN, "9223372036854775807", "0.3", -ERANGE, NULL}, /* ...806.9 does not fit */
        {R_DOWN, "1", "0", -EINVAL, NULL},
        {R_DOWN, "1", "-0.1", -EINVAL, NULL},
        {R_UP, "0.0121", "0.001", 0, "0.013"},
        {R_UP, "0.012", "0.001", 0, "0.012"},
        {R_UP, "0", "0.001", 0, "0"},
        {R_UP, "0.000000000000000001", "0.001", 0, "0.001"},
        {R_UP, "1.1", "0.5", 0, "1.5"},
        {R_UP, "11", "10", 0, "20"},
        {R_UP, "5", "0.3", 0, "5.1"},
        {R_UP, "9223372036854775807", "10", -ERANGE, NULL},
        {R_UP, "-1", "0.1", -EINVAL, NULL},
        {R_UP, "1", "0", -EINVAL, NULL},
    };
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        const struct round_case *c = &cases[i];
        dec_t r = {555, 1};
        int rc = c->op == R_DOWN ? dec_round_down(D(c->x), D(c->step), &r)
                                 : dec_round_up(D(c->x), D(c->step), &r);
        if (rc != c->rc)
            fail_msg("case %zu round%s(%s, %s): rc %d want %d", i, c->op == R_DOWN ? "down" : "up",
                     c->x, c->step, rc, c->rc);
        if (rc == 0) {
            assert_dec_str(r, c->want, c->x);
            assert_true(dec_is_multiple(r, D(c->step)));
        }
    }
}

struct muldiv_case {
    const char *x, *num, *den, *step;
    int rc;
    const char *want;
};

static void test_muldiv(void **state)
{
    (void)state;
    static const struct muldiv_case cases[] = {
        {"0.013", "3", "7", "0.001", 0, "0.005"}, /* 0.039/7 = 0.00557… */
        {"1.234", "0.5", "2", "0.001", 0, "0.308"},
        {"-1.234", "0.5", "2", "0.001", 0, "-0.308"},
        {"1.234", "-0.5", "2", "0.001", 0, "-0.308"},
        {"1.234", "0.5", "-2", "0.001", 0, "-0.308"},
        {"-1.234", "-0.5", "-2", "0.001", 0, "-0.308"},
        {"1", "1", "3", "0.001", 0, "0.333"},
        {"2", "1", "3", "0.001", 0, "0.666"},
        {"10", "1", "1", "0.001", 0, "10"},
        {"10", "3", "3", "0.001", 0, "10"},
        {"0.003", "0.5", "1", "0.001", 0, "0.001"},
        {"5", "1", "0.5", "1", 0, "10"},
        {"0", "1", "3", "0.001", 0, "0"},
        {"7", "1", "2", "0.5", 0, "3.5"},
        {"7", "1", "3", "0.5", 0, "2"},
        {"7", "1", "3", "10", 0, "0"},
        {"70", "1", "3", "10", 0, "20"},
        /* extremes of the intermediate */
        {"9223372036854775807", "9223372036854775807", "9223372036854775807", "1", 0,
         "9223372036854775807"},
        {"9223372036854775807", "9223372036854775807", "9223372036854775807",
         "0.000000000000000001", 0, "9223372036854775807"},
        {"9223372036854775807", "2", "3", "0.000000000000000001", -ERANGE, NULL},
        {"9223372036854775807", "2", "3", "1", 0, "6148914691236517204"},
        {"9223372036854775807", "2", "3", "0.1", -ERANGE, NULL}, /* 6148914691236517204.6 */
        {"9223372036854775807", "2", "1", "1", -ERANGE, NULL},
        {"9223372036854775807", "2", "2", "0.5", 0, "9223372036854775807"},
        {"0.000000000000000001", "0.000000000000000001", "0.000000000000000001",
         "0.000000000000000001", 0, "0.000000000000000001"},
        {"0.000000000000000001", "1", "9223372036854775807", "0.000000000000000001", 0, "0"},
        {"0.000000000000000001", "0.000000000000000001", "9223372036854775807",
         "9223372036854775807", 0, "0"},
        {"1", "1", "0.000000000000000003", "1", 0, "333333333333333333"},
        {"1", "1", "0.000000000000000003", "0.000000000000000001", -ERANGE, NULL},
        {"9223372036854775807", "9223372036854775807", "0.000000000000000001", "1", -ERANGE, NULL},
        {"1", "1", "0", "0.001", -EINVAL, NULL},
        {"1", "1", "1", "0", -EINVAL, NULL},
        {"1", "1", "1", "-1", -EINVAL, NULL},
    };
    for (size_t i = 0; i < N_ELEM(cases); i++) {
        const struct muldiv_case *c = &cases[i];
        dec_t r = {555, 1};
        int rc = dec_muldiv_round_down(D(c->x), D(c->num), D(c->den), D(c->step), &r);
        if (rc != c->rc)
            fail_msg("case %zu muldiv(%s, %s, %s, %s): rc %d want %d", i, c->x, c->num, c->den,
                     c->step, rc, c->rc);
        if (rc == 0)
            assert_dec_str(r, c->want, c->x);
    }
}

/* Property: r = muldiv(x, n, d, step) is a multiple of step with |r|*|d| <= |x*n| < (|r|+step)*|d|
 * and the sign of x*n/d. Small operands keep the products exact so dec_mul can check it. */
static dec_t small_dec(bool allow_neg, bool nonzero, unsigned max_scale)
{
    for (;;) {
        int64_t m = (int64_t)(rng() % 100000);
        if (allow_neg && (rng() & 1))
            m = -m;
        dec_t d = dec_normalize((dec_t){m, (uint8_t)(rng() % (max_scale + 1))});
        if (!nonzero || m != 0)
            return d;
    }
}

static void test_muldiv_property(void **state)
{
    (void)state;
    static const char *steps[] = {"0.001", "0.5", "10", "1", "0.000001", "0.25"};
    for (int i = 0; i < 20000; i++) {
        /* |x*n| < 10^10 and |d| >= 0.01: the result fits even at step 10^-6. */
        dec_t x = small_dec(true, false, 6), n = small_dec(true, false, 6), d = small_dec(true, true, 2);
        dec_t step = D(steps[rng() % N_ELEM(steps)]);
        dec_t r;
        assert_int_equal(dec_muldiv_round_down(x, n, d, step, &r), 0);
        assert_true(dec_is_multiple(r, step));
        dec_t xn, ra, rd, hi, hid;
        assert_int_equal(dec_mul(x, n, &xn), 0);
        xn = dec_abs(xn);
        ra = dec_abs(r);
        dec_t da = dec_abs(d);
        assert_int_equal(dec_mul(ra, da, &rd), 0);
        assert_true(dec_cmp(rd, xn) <= 0);
        assert_int_equal(dec_add(ra, step, &hi), 0);
        assert_int_equal(dec_mul(hi, da, &hid), 0);
        assert_true(dec_cmp(xn, hid) < 0);
        if (!dec_is_zero(r))
            assert_int_equal(dec_sign(r), dec_sign(x) * dec_sign(n) * dec_sign(d));
        /* dec_cmp_mul agrees with dec_mul + dec_cmp when the product is exact. */
        dec_t xn_signed;
        assert_int_equal(dec_mul(x, n, &xn_signed), 0);
        assert_int_equal(dec_cmp_mul(x, n, r), dec_cmp(xn_signed, r));
    }
}

static void test_is_multiple(void **state)
{
    (void)state;
    assert_true(dec_is_multiple(D("0.012"), D("0.001")));
    assert_false(dec_is_multiple(D("0.0125"), D("0.001")));
    assert_true(dec_is_multiple(D("10"), D("2.5")));
    assert_true(dec_is_multiple(D("-7.5"), D("2.5")));
    assert_false(dec_is_multiple(D("-7.4"), D("2.5")));
    assert_true(dec_is_multiple(D("0"), D("0.001")));
    assert_true(dec_is_multiple(D("120"), D("10")));
    assert_false(dec_is_multiple(D("125"), D("10")));
    assert_false(dec_is_multiple(D("1"), D("0")));
    assert_false(dec_is_multiple(D("1"), D("-1")));
    assert_false(dec_is_multiple((dec_t){1, 19}, D("1")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_length_and_nul),
        cmocka_unit_test(test_parse_very_long),
        cmocka_unit_test(test_format_table),
        cmocka_unit_test(test_format_buffer),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_cmp),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_arith),
        cmocka_unit_test(test_cmp_mul),
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_muldiv),
        cmocka_unit_test(test_muldiv_property),
        cmocka_unit_test(test_is_multiple),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
