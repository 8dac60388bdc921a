/* binance_sign: the HMAC-SHA256 vectors of tests/data/samples/signing_vectors.txt that apply to
 * Binance (#1, #2, #3, #5, #4 only with the doc's stray space) and RFC 4231 #0, plus verify(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "binance_sign.h"

struct vec {
    const char *name;
    const char *secret;
    const char *payload;
    const char *hex;
};

static const struct vec vecs[] = {
    {"0 RFC 4231 case 2", "Jefe", "what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {"1 spot ex.1/2", "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
     "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&"
     "timestamp=1499827319559",
     "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"},
    {"2 spot ex.3 (query+body, no separator)",
     "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
     "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=0.1&recvWindow=5000&"
     "timestamp=1499827319559",
     "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"},
    {"3 futures ex.1/2", "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9",
     "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&"
     "timestamp=1591702613943",
     "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"},
    {"4 futures ex.3 with the doc's stray space",
     "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9",
     "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=9000&recvWindow=5000&"
     "timestamp= 1591702613943",
     "f9d0ae5e813ef6ccf15c2b5a434047a0181cb5a342b903b367ca6d27a66e36f2"},
    {"5 futures batchOrders (self-computed)",
     "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9",
     "batchOrders=%5B%7B%22type%22%3A%22LIMIT%22%2C%22timeInForce%22%3A%22GTC%22%2C%22symbol%22%"
     "3A%22BTCUSDT%22%2C%22side%22%3A%22BUY%22%2C%22price%22%3A%2210001%22%2C%22quantity%22%3A%"
     "220.001%22%7D%5D&recvWindow=5000&timestamp=1591702613943",
     "f9989392bce641701caf36bd26cd450a5dfe55cf28491470af9ba96483ecb538"},
};

static void test_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
        char out[BINANCE_SIG_HEX_LEN + 1];
        memset(out, 'x', sizeof out);
        assert_int_equal(binance_sign(vecs[i].secret, strlen(vecs[i].secret), vecs[i].payload,
                                      strlen(vecs[i].payload), out),
                         0);
        if (strcmp(out, vecs[i].hex) != 0) fail_msg("vector %s: got %s", vecs[i].name, out);
        assert_int_equal(strlen(out), BINANCE_SIG_HEX_LEN);
    }
}

/* The doc's Example 3 only reproduces WITH the stray space; without it the MAC differs. */
static void test_vector4_needs_the_space(void **state) {
    (void)state;
    const char *secret = vecs[4].secret;
    const char *p = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTCquantity=1&price=9000&"
                    "recvWindow=5000&timestamp=1591702613943";
    char out[BINANCE_SIG_HEX_LEN + 1];
    assert_int_equal(binance_sign(secret, strlen(secret), p, strlen(p), out), 0);
    assert_string_equal(out, "30baaf0fab549bbeda7f5ef201898b34122da25fd23c646cac2c529aebe670a4");
    assert_string_not_equal(out, vecs[4].hex);
}

/* Guards against transcription errors here: every payload and hex above is in the shared file. */
static void test_vectors_match_file(void **state) {
    (void)state;
    FILE *f = fopen(CT_SAMPLES "/signing_vectors.txt", "rb");
    assert_non_null(f);
    static char text[64 * 1024];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
        char line[1024];
        snprintf(line, sizeof line, "payload : %s\n", vecs[i].payload);
        if (!strstr(text, line)) fail_msg("vector %s: payload not in the file", vecs[i].name);
        snprintf(line, sizeof line, "hex     : %s\n", vecs[i].hex);
        if (!strstr(text, line)) fail_msg("vector %s: hex not in the file", vecs[i].name);
        snprintf(line, sizeof line, ": %s\n", vecs[i].secret);
        if (!strstr(text, line)) fail_msg("vector %s: secret not in the file", vecs[i].name);
    }
}

static void test_verify(void **state) {
    (void)state;
    const struct vec *v = &vecs[3];
    size_t sl = strlen(v->secret), pl = strlen(v->payload);
    char up[BINANCE_SIG_HEX_LEN + 1];

    assert_true(binance_sign_verify(v->secret, sl, v->payload, pl, v->hex, strlen(v->hex)));
    for (size_t i = 0; i <= BINANCE_SIG_HEX_LEN; i++)
        up[i] = (char)(v->hex[i] >= 'a' && v->hex[i] <= 'f' ? v->hex[i] - 32 : v->hex[i]);
    assert_string_not_equal(up, v->hex);
    assert_true(binance_sign_verify(v->secret, sl, v->payload, pl, up, strlen(up)));

    /* One character changed anywhere in the signature: rejected. */
    for (size_t i = 0; i < BINANCE_SIG_HEX_LEN; i++) {
        char bad[BINANCE_SIG_HEX_LEN + 1];
        memcpy(bad, v->hex, sizeof bad);
        bad[i] = bad[i] == '0' ? '1' : '0';
        assert_false(binance_sign_verify(v->secret, sl, v->payload, pl, bad, strlen(bad)));
    }
    /* One character changed in the payload or the secret: rejected. */
    char p2[512];
    snprintf(p2, sizeof p2, "%s", v->payload);
    p2[7] = 'C'; /* BTCUSDT -> CTCUSDT */
    assert_false(binance_sign_verify(v->secret, sl, p2, pl, v->hex, strlen(v->hex)));
    char s2[128];
    snprintf(s2, sizeof s2, "%s", v->secret);
    s2[0] = '3';
    assert_false(binance_sign_verify(s2, sl, v->payload, pl, v->hex, strlen(v->hex)));
    /* Wrong lengths: rejected, including a correct prefix. */
    assert_false(binance_sign_verify(v->secret, sl, v->payload, pl, v->hex, 63));
    assert_false(binance_sign_verify(v->secret, sl, v->payload, pl, "", 0));
    char longer[BINANCE_SIG_HEX_LEN + 2];
    snprintf(longer, sizeof longer, "%s0", v->hex);
    assert_false(binance_sign_verify(v->secret, sl, v->payload, pl, longer, strlen(longer)));
    /* Non-hex characters that only match after case folding of letters outside a-f. */
    char junk[BINANCE_SIG_HEX_LEN + 1];
    memset(junk, 'G', BINANCE_SIG_HEX_LEN);
    junk[BINANCE_SIG_HEX_LEN] = '\0';
    assert_false(binance_sign_verify(v->secret, sl, v->payload, pl, junk, strlen(junk)));
}

/* A keyed secret signs exactly as the one-shot call, every time (the context is re-initialised
 * between signatures), including an empty payload and a key longer than SHA-256's block. */
static void test_keyed(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        struct binance_key *k = binance_key_new(vecs[i].secret, strlen(vecs[i].secret));
        assert_non_null(k);
        for (int round = 0; round < 3; round++) {
            char got[BINANCE_SIG_HEX_LEN + 1];
            assert_int_equal(binance_sign_key(k, vecs[i].payload, strlen(vecs[i].payload), got), 0);
            assert_string_equal(got, vecs[i].hex);
            char want[BINANCE_SIG_HEX_LEN + 1];
            assert_int_equal(binance_sign(vecs[i].secret, strlen(vecs[i].secret), "", 0, want), 0);
            assert_int_equal(binance_sign_key(k, "", 0, got), 0);
            assert_string_equal(got, want);
        }
        assert_null(binance_key_free(k));
    }
    char big[200];
    memset(big, 'k', sizeof(big));
    struct binance_key *k = binance_key_new(big, sizeof(big));
    char a[BINANCE_SIG_HEX_LEN + 1], b[BINANCE_SIG_HEX_LEN + 1];
    assert_int_equal(binance_sign_key(k, "x=1", 3, a), 0);
    assert_int_equal(binance_sign(big, sizeof(big), "x=1", 3, b), 0);
    assert_string_equal(a, b);
    binance_key_free(k);
    assert_null(binance_key_free(NULL));
    assert_int_equal(binance_sign_key(NULL, "x", 1, a), -EINVAL);
}

/* RFC 4231 cases 1, 6 and 7 (keys of 20 and 131 bytes: shorter and longer than SHA-256's 64-byte
 * block, the long one hashed first), through both the one-shot and the keyed path. */
static void test_rfc4231_long_keys(void **state) {
    (void)state;
    unsigned char k20[20], k131[131];
    memset(k20, 0x0b, sizeof(k20));
    memset(k131, 0xaa, sizeof(k131));
    static const char d7[] = "This is a test using a larger than block-size key and a larger than "
                             "block-size data. The key needs to be hashed before being used by the "
                             "HMAC algorithm.";
    const struct {
        const unsigned char *key;
        size_t key_len;
        const char *data, *hex;
    } rv[] = {
        {k20, sizeof(k20), "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {k131, sizeof(k131), "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {k131, sizeof(k131), d7, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (size_t i = 0; i < sizeof(rv) / sizeof(rv[0]); i++) {
        char a[BINANCE_SIG_HEX_LEN + 1], b[BINANCE_SIG_HEX_LEN + 1];
        assert_int_equal(binance_sign((const char *)rv[i].key, rv[i].key_len, rv[i].data,
                                      strlen(rv[i].data), a), 0);
        assert_string_equal(a, rv[i].hex);
        struct binance_key *k = binance_key_new((const char *)rv[i].key, rv[i].key_len);
        assert_non_null(k);
        assert_int_equal(binance_sign_key(k, rv[i].data, strlen(rv[i].data), b), 0);
        assert_string_equal(b, rv[i].hex);
        binance_key_free(k);
    }
}

/* The keyed path (HMAC midstates) equals the one-shot HMAC() for keys shorter than, equal to and
 * longer than the 64-byte block (long keys are hashed first), with any byte values (NUL, 0x36,
 * 0x5c, 0xff), and payloads around SHA-256's padding boundaries (55/56 and 64-byte multiples). */
static void test_keyed_equals_oneshot(void **state) {
    (void)state;
    static const size_t key_lens[] = {0, 1, 16, 32, 63, 64, 65, 100, 127, 128, 129, 200, 1024};
    static const size_t pay_lens[] = {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 250, 1000, 4096};
    static char key[1024], pay[4096];
    uint32_t x = 2463534242u; /* xorshift: varied bytes, the same every run */
    for (size_t i = 0; i < sizeof(key); i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        key[i] = (char)(i % 7 == 0 ? 0 : i % 11 == 0 ? 0x36 : i % 13 == 0 ? 0x5c : (int)(x & 0xff));
    }
    for (size_t i = 0; i < sizeof(pay); i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        pay[i] = (char)(x & 0xff);
    }
    for (size_t ki = 0; ki < sizeof(key_lens) / sizeof(key_lens[0]); ki++) {
        struct binance_key *k = binance_key_new(key, key_lens[ki]);
        assert_non_null(k);
        char prev[BINANCE_SIG_HEX_LEN + 1] = "";
        for (size_t pi = 0; pi < sizeof(pay_lens) / sizeof(pay_lens[0]); pi++) {
            char a[BINANCE_SIG_HEX_LEN + 1], b[BINANCE_SIG_HEX_LEN + 1];
            assert_int_equal(binance_sign(key, key_lens[ki], pay, pay_lens[pi], a), 0);
            assert_int_equal(binance_sign_key(k, pay, pay_lens[pi], b), 0);
            if (strcmp(a, b) != 0)
                fail_msg("key %zu bytes, payload %zu bytes: keyed %s, one-shot %s", key_lens[ki],
                         pay_lens[pi], b, a);
            assert_string_not_equal(b, prev); /* the payload reaches the MAC */
            memcpy(prev, b, sizeof(prev));
        }
        binance_key_free(k);
    }
    /* Long keys differing only after the first block sign differently (all of the key counts). */
    char a[BINANCE_SIG_HEX_LEN + 1], b[BINANCE_SIG_HEX_LEN + 1];
    struct binance_key *k1 = binance_key_new(key, 200);
    key[150] ^= 1;
    struct binance_key *k2 = binance_key_new(key, 200);
    key[150] ^= 1;
    assert_int_equal(binance_sign_key(k1, "x=1", 3, a), 0);
    assert_int_equal(binance_sign_key(k2, "x=1", 3, b), 0);
    assert_string_not_equal(a, b);
    binance_key_free(k1);
    binance_key_free(k2);
    assert_null(binance_key_new(NULL, 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_vector4_needs_the_space),
        cmocka_unit_test(test_vectors_match_file),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_keyed),
        cmocka_unit_test(test_rfc4231_long_keys),
        cmocka_unit_test(test_keyed_equals_oneshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
