/* Unit tests for strategy/client_id: determinism, shape, distinctness. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "client_id.h"

static void make(const char *acct, const char *sym, int64_t tid, const char *rule, unsigned leg,
                 char out[MKT_CLIENT_ID_MAX])
{
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)tid);
    int rc = client_id_make(acct, sym, t, rule, leg, out);
    if (rc != 0)
        fail_msg("client_id_make(%s, %s, %lld, %s, %u) = %d", acct, sym, (long long)tid, rule, leg,
                 rc);
}

static void assert_shape(const char *id, unsigned want_leg)
{
    assert_int_equal(strlen(id), CLIENT_ID_LEN);
    assert_true(client_id_valid(id));
    assert_memory_equal(id, "ct", 2);
    unsigned leg = 99;
    assert_true(client_id_is_ours(id, &leg));
    assert_int_equal(leg, want_leg);
    for (const char *p = id; *p; p++) {
        int ok = (*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                 *p == '_' || *p == '-';
        if (!ok)
            fail_msg("bad char 0x%02x in %s", (unsigned char)*p, id);
    }
}

static void test_deterministic_and_pinned(void **state)
{
    (void)state;
    char a[MKT_CLIENT_ID_MAX], b[MKT_CLIENT_ID_MAX];
    make("leader-1", "BTCUSDT", 123456789, "rule-a", 0, a);
    make("leader-1", "BTCUSDT", 123456789, "rule-a", 0, b);
    assert_string_equal(a, b);
    assert_shape(a, 0);
    /* Pinned: the scheme is part of the journal's contract (ids of intents written by one
     * version are matched against the exchange by the next). Changing it must be deliberate.
     * The value was cross-checked with an independent Python implementation of the scheme. */
    assert_string_equal(a, "ct6kJ6bmclN3NvBrCdZ281mN_0"); /* v2: trade id as text */
}

static void test_each_field_changes_id(void **state)
{
    (void)state;
    char base[MKT_CLIENT_ID_MAX], x[MKT_CLIENT_ID_MAX];
    make("leader-1", "BTCUSDT", 42, "rule-a", 0, base);

    make("leader-2", "BTCUSDT", 42, "rule-a", 0, x);
    assert_string_not_equal(base, x);
    make("leader-1", "ETHUSDT", 42, "rule-a", 0, x);
    assert_string_not_equal(base, x);
    make("leader-1", "BTCUSDT", 43, "rule-a", 0, x);
    assert_string_not_equal(base, x);
    make("leader-1", "BTCUSDT", -42, "rule-a", 0, x);
    assert_string_not_equal(base, x);
    make("leader-1", "BTCUSDT", 42, "rule-b", 0, x);
    assert_string_not_equal(base, x);

    /* The leg changes only the last character: legs of one decision share a stem. */
    for (unsigned leg = 1; leg <= CLIENT_ID_MAX_LEG; leg++) {
        make("leader-1", "BTCUSDT", 42, "rule-a", leg, x);
        assert_string_not_equal(base, x);
        assert_memory_equal(base, x, CLIENT_ID_LEN - 1);
        assert_int_equal(x[CLIENT_ID_LEN - 1], '0' + (int)leg);
        assert_shape(x, leg);
    }
}

static void test_field_boundaries(void **state)
{
    (void)state;
    /* Length prefixes keep shifted boundaries apart. */
    char a[MKT_CLIENT_ID_MAX], b[MKT_CLIENT_ID_MAX], c[MKT_CLIENT_ID_MAX];
    make("ab", "c", 1, "r", 0, a);
    make("a", "bc", 1, "r", 0, b);
    make("abc", "", 1, "r", 0, c);
    assert_string_not_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(b, c);
    make("a", "b", 1, "cr", 0, a);
    make("a", "bc", 1, "r", 0, b);
    assert_string_not_equal(a, b);
    make("", "", 0, "", 0, a);
    make("", "", 0, "", 1, b);
    assert_shape(a, 0);
    assert_shape(b, 1);
    assert_string_not_equal(a, b);
}

static void test_invalid_args(void **state)
{
    (void)state;
    char out[MKT_CLIENT_ID_MAX];
    assert_int_equal(client_id_make(NULL, "S", "1", "r", 0, out), -EINVAL);
    assert_int_equal(client_id_make("a", NULL, "1", "r", 0, out), -EINVAL);
    assert_int_equal(client_id_make("a", "S", NULL, "r", 0, out), -EINVAL);
    assert_int_equal(client_id_make("a", "S", "1", NULL, 0, out), -EINVAL);
    assert_int_equal(client_id_make("a", "S", "1", "r", 0, NULL), -EINVAL);
    assert_int_equal(client_id_make("a", "S", "1", "r", 10, out), -EINVAL);
    assert_int_equal(client_id_make("a", "S", "1", "r", 9, out), 0);
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(client_id_valid("a"));
    assert_true(client_id_valid("abc-_XYZ09"));
    assert_true(client_id_valid("123456789012345678901234567890123456")); /* 36 */
    assert_false(client_id_valid("1234567890123456789012345678901234567")); /* 37 */
    assert_false(client_id_valid(""));
    assert_false(client_id_valid(NULL));
    assert_false(client_id_valid("a.b")); /* Binance allows '.', Bybit does not */
    assert_false(client_id_valid("a:b"));
    assert_false(client_id_valid("a b"));
    assert_false(client_id_valid("a/b"));
    assert_false(client_id_valid("\xc3\xa9"));

    char id[MKT_CLIENT_ID_MAX];
    make("x", "y", 1, "z", 3, id);
    unsigned leg;
    assert_true(client_id_is_ours(id, NULL));
    assert_false(client_id_is_ours("web_abc", &leg));
    assert_false(client_id_is_ours("ct", &leg));
    assert_false(client_id_is_ours(NULL, &leg));
    char t[MKT_CLIENT_ID_MAX + 1];
    strcpy(t, id);
    t[CLIENT_ID_LEN - 2] = '-'; /* separator damaged */
    assert_false(client_id_is_ours(t, &leg));
    strcpy(t, id);
    t[5] = '.';
    assert_false(client_id_is_ours(t, &leg));
    strcpy(t, id);
    strcat(t, "0"); /* one char too many */
    assert_false(client_id_is_ours(t, &leg));
    strcpy(t, id);
    t[0] = 'C';
    assert_false(client_id_is_ours(t, &leg));
}

static uint64_t rng_state = 0x3141592653589793ULL;
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void random_str(char *buf, size_t max)
{
    size_t n = rng() % max;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)(1 + rng() % 255); /* any byte but NUL */
    buf[n] = '\0';
}

static void test_shape_random_inputs(void **state)
{
    (void)state;
    char acct[80], sym[40], rule[200], id[MKT_CLIENT_ID_MAX];
    for (int i = 0; i < 20000; i++) {
        random_str(acct, sizeof acct);
        random_str(sym, sizeof sym);
        random_str(rule, sizeof rule);
        unsigned leg = (unsigned)(rng() % 10);
        make(acct, sym, (int64_t)rng(), rule, leg, id);
        assert_shape(id, leg);
    }
}

static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, MKT_CLIENT_ID_MAX);
}

/* Realistic neighbours (sequential trade ids, similar names) and random ones: no two equal. */
static void test_distinct_100k(void **state)
{
    (void)state;
    enum { N = 120000 };
    char(*ids)[MKT_CLIENT_ID_MAX] = calloc(N, MKT_CLIENT_ID_MAX);
    assert_non_null(ids);
    static const char *accts[] = {"leader-1", "leader-2", "leader-10", "leader-11"};
    static const char *syms[] = {"BTCUSDT", "ETHUSDT", "BTCUSD", "TUSDT", "BTCUSDT_250627"};
    static const char *rules[] = {"r1", "r2", "r12", "r21", "follower-a/leader-1"};
    size_t n = 0;
    for (int64_t tid = 1; tid <= 1000; tid++)
        for (size_t a = 0; a < 4; a++)
            for (size_t s = 0; s < 5; s++)
                for (size_t r = 0; r < 5; r++)
                    make(accts[a], syms[s], tid, rules[r], 0, ids[n++]);
    /* 100000 so far; the rest random. */
    char acct[24], sym[16], rule[24];
    while (n < N) {
        random_str(acct, sizeof acct);
        random_str(sym, sizeof sym);
        random_str(rule, sizeof rule);
        make(acct, sym, (int64_t)(rng() % 1000), rule, 0, ids[n++]);
    }
    qsort(ids, N, MKT_CLIENT_ID_MAX, cmp_ids);
    for (size_t i = 1; i < N; i++)
        if (memcmp(ids[i - 1], ids[i], MKT_CLIENT_ID_MAX) == 0)
            fail_msg("duplicate id %s", ids[i]);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic_and_pinned),
        cmocka_unit_test(test_each_field_changes_id),
        cmocka_unit_test(test_field_boundaries),
        cmocka_unit_test(test_invalid_args),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_shape_random_inputs),
        cmocka_unit_test(test_distinct_100k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
