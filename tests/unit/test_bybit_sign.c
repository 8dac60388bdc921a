/* bybit_sign: the Bybit vectors of signing_vectors.txt (#7 GET, #8 POST, #9 websocket auth --
 * self-computed with openssl and python, Bybit publishes none with its secret), the string
 * assembly of the official doc examples (#6), signing through an account (the secret stays in
 * exchange.c) and the auth frame text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bybit_sign.h"
#include "exchange.h"
#include "exchange_internal.h"

#define SECRET "TESTSECRETbybit0000000000000000000000"
#define KEY "XXXXXXXXXX"
#define V7_HEX "096acc1005b1ff90949cddcbb801b092aa2c3f52db05c5ee073e602fdeb38482"
#define V8_BODY                                                                                 \
    "{\"category\":\"linear\",\"symbol\":\"BTCUSDT\",\"side\":\"Buy\",\"orderType\":\"Limit\"," \
    "\"qty\":\"0.001\",\"price\":\"25000\",\"timeInForce\":\"GTC\",\"orderLinkId\":\"copy-0001\"}"
#define V8_HEX "d5c258549bf239d2aa4de8c8cd4b9450e81f8e1018adfed4c4b27d6ea7aaf15b"
#define V9_HEX "58b7cd19de0b977f0b04ce01ec8c70f55822b4f4fccc0a15a7cc713ae631d033"

static struct exch_account *account(void) {
    struct exch_account_cfg cfg = {
        .name = "bybit-leader",
        .kind = EXCH_BYBIT_LINEAR,
        .rest_url = "http://127.0.0.1:18080",
        .ws_url = "ws://127.0.0.1:18080/v5/private",
        .api_key = KEY,
        .api_secret = SECRET,
    };
    struct exch_account *a = exch_account_new(&cfg, NULL);
    assert_non_null(a);
    return a;
}

static void test_prehash_assembly(void **state) {
    (void)state;
    char b[256];
    /* #6: the official doc strings (assembly only; the doc never gives its secret) */
    int n = bybit_sign_prehash(b, sizeof b, 1658384314791LL, "XXXXXXXXXX", 5000,
                               "category=option&symbol=BTC-29JUL22-25000-C",
                               strlen("category=option&symbol=BTC-29JUL22-25000-C"));
    assert_string_equal(b, "1658384314791XXXXXXXXXX5000category=option&symbol=BTC-29JUL22-25000-C");
    assert_int_equal(n, (int)strlen(b));
    n = bybit_sign_prehash(b, sizeof b, 1658385579423LL, "XXXXXXXXXX", 5000,
                           "{\"category\": \"option\"}", 22);
    assert_string_equal(b, "1658385579423XXXXXXXXXX5000{\"category\": \"option\"}");
    /* empty payload (a GET without parameters) */
    n = bybit_sign_prehash(b, sizeof b, 1, "k", 5000, "", 0);
    assert_string_equal(b, "1k5000");
    assert_int_equal(n, 6);
    /* payload is taken by length, not up to a NUL */
    n = bybit_sign_prehash(b, sizeof b, 1, "k", 1, "abcdef", 3);
    assert_string_equal(b, "1k1abc");
    /* too small: -ENOSPC and an empty string, never a truncated one */
    char s[10];
    assert_int_equal(bybit_sign_prehash(s, sizeof s, 1658384314791LL, "k", 5000, "", 0), -ENOSPC);
    assert_string_equal(s, "");
    assert_int_equal(bybit_sign_prehash(s, 8, 1, "k", 1, "abcdefgh", 8), -ENOSPC);
    /* a key that could not go into a header or a JSON string */
    assert_int_equal(bybit_sign_prehash(b, sizeof b, 1, "a b", 1, "", 0), -EINVAL);
    assert_int_equal(bybit_sign_prehash(b, sizeof b, 1, "a\"b", 1, "", 0), -EINVAL);
    assert_int_equal(bybit_sign_prehash(b, sizeof b, 1, "", 1, "", 0), -EINVAL);
    assert_int_equal(bybit_sign_prehash(b, sizeof b, -1, "k", 1, "", 0), -EINVAL);
    assert_int_equal(bybit_sign_prehash(b, sizeof b, 1, "k", 1, NULL, 3), -EINVAL);

    n = bybit_ws_prehash(b, sizeof b, 1662350400000LL);
    assert_string_equal(b, "GET/realtime1662350400000");
    assert_int_equal(n, 25);
    assert_int_equal(bybit_ws_prehash(b, sizeof b, 0), -EINVAL);
    assert_int_equal(bybit_ws_prehash(s, sizeof s, 1662350400000LL), -ENOSPC);
}

static void test_vectors_with_secret(void **state) {
    (void)state;
    char b[512], hex[BYBIT_SIG_HEX_LEN + 1];
    int n = bybit_sign_prehash(b, sizeof b, 1658384314791LL, KEY, 5000,
                               "category=linear&symbol=BTCUSDT", 30);
    assert_int_equal(bybit_sign_hex(SECRET, strlen(SECRET), b, (size_t)n, hex), 0);
    assert_string_equal(hex, V7_HEX);
    n = bybit_sign_prehash(b, sizeof b, 1658385579423LL, KEY, 5000, V8_BODY, strlen(V8_BODY));
    assert_int_equal(bybit_sign_hex(SECRET, strlen(SECRET), b, (size_t)n, hex), 0);
    assert_string_equal(hex, V8_HEX);
    n = bybit_ws_prehash(b, sizeof b, 1662350400000LL);
    assert_int_equal(bybit_sign_hex(SECRET, strlen(SECRET), b, (size_t)n, hex), 0);
    assert_string_equal(hex, V9_HEX);

    /* verify: case-insensitive, exact length, a wrong byte or secret fails */
    assert_true(bybit_sign_verify(SECRET, strlen(SECRET), b, (size_t)n, V9_HEX, 64));
    char up[65];
    for (int i = 0; i < 64; i++) up[i] = (char)(V9_HEX[i] >= 'a' ? V9_HEX[i] - 32 : V9_HEX[i]);
    up[64] = '\0';
    assert_true(bybit_sign_verify(SECRET, strlen(SECRET), b, (size_t)n, up, 64));
    assert_false(bybit_sign_verify(SECRET, strlen(SECRET), b, (size_t)n, V9_HEX, 63));
    up[10] = up[10] == '0' ? '1' : '0';
    assert_false(bybit_sign_verify(SECRET, strlen(SECRET), b, (size_t)n, up, 64));
    assert_false(bybit_sign_verify("other", 5, b, (size_t)n, V9_HEX, 64));
}

static void test_account_signing(void **state) {
    (void)state;
    struct exch_account *a = account();
    char hex[BYBIT_SIG_HEX_LEN + 1];
    assert_int_equal(bybit_sign_rest(a, 1658384314791LL, 5000, "category=linear&symbol=BTCUSDT",
                                     30, hex), 0);
    assert_string_equal(hex, V7_HEX);
    assert_int_equal(bybit_sign_rest(a, 1658385579423LL, 5000, V8_BODY, strlen(V8_BODY), hex), 0);
    assert_string_equal(hex, V8_HEX);
    /* a different recv window or timestamp changes the signature */
    assert_int_equal(bybit_sign_rest(a, 1658385579423LL, 5001, V8_BODY, strlen(V8_BODY), hex), 0);
    assert_string_not_equal(hex, V8_HEX);
    assert_int_equal(bybit_sign_ws_auth(a, 1662350400000LL, hex), 0);
    assert_string_equal(hex, V9_HEX);
    assert_int_equal(bybit_sign_ws_auth(a, 0, hex), -EINVAL);

    /* after free the credentials are gone: nothing can be signed */
    exch_account_ref(a);
    exch_account_free(a);
    assert_int_equal(bybit_sign_rest(a, 1, 5000, "", 0, hex), -ESHUTDOWN);
    assert_int_equal(bybit_sign_ws_auth(a, 1662350400000LL, hex), -ESHUTDOWN);
    exch_account_unref(a);
}

static void test_auth_frame(void **state) {
    (void)state;
    char b[256];
    int n = bybit_ws_auth_frame(b, sizeof b, KEY, 1662350400000LL, V9_HEX);
    /* byte for byte the frame of vector #9 */
    assert_string_equal(b, "{\"op\":\"auth\",\"args\":[\"XXXXXXXXXX\",1662350400000,\"" V9_HEX "\"]}");
    assert_int_equal(n, (int)strlen(b));
    assert_int_equal(bybit_ws_auth_frame(b, sizeof b, "k\"ey", 1, V9_HEX), -EINVAL);
    assert_int_equal(bybit_ws_auth_frame(b, sizeof b, KEY, 1, "abc"), -EINVAL);
    char bad[65];
    memcpy(bad, V9_HEX, 65);
    bad[3] = 'g';
    assert_int_equal(bybit_ws_auth_frame(b, sizeof b, KEY, 1, bad), -EINVAL);
    assert_int_equal(bybit_ws_auth_frame(b, sizeof b, KEY, 0, V9_HEX), -EINVAL);
    assert_int_equal(bybit_ws_auth_frame(b, 40, KEY, 1662350400000LL, V9_HEX), -ENOSPC);
    assert_string_equal(b, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prehash_assembly),
        cmocka_unit_test(test_vectors_with_secret),
        cmocka_unit_test(test_account_signing),
        cmocka_unit_test(test_auth_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
