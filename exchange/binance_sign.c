#include "binance_sign.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>

static void to_hex(const unsigned char *mac, char out[BINANCE_SIG_HEX_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < BINANCE_SIG_HEX_LEN / 2; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 0xf];
    }
    out[BINANCE_SIG_HEX_LEN] = '\0';
}

int binance_sign(const char *secret, size_t secret_len, const char *payload, size_t payload_len,
                 char out[BINANCE_SIG_HEX_LEN + 1]) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)payload, payload_len,
              mac, &mac_len) ||
        mac_len != BINANCE_SIG_HEX_LEN / 2)
        return -EIO;
    to_hex(mac, out);
    return 0;
}

struct binance_key {
    pthread_mutex_t mu;
    EVP_MAC_CTX *ctx; /* keyed; re-initialised (same key) for each signature */
};

static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static void hmac_fetch(void) { hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL); }

struct binance_key *binance_key_new(const char *secret, size_t secret_len) {
    pthread_once(&hmac_once, hmac_fetch);
    if (!hmac_alg || !secret) return NULL;
    struct binance_key *k = calloc(1, sizeof(*k));
    if (!k) return NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    k->ctx = EVP_MAC_CTX_new(hmac_alg);
    if (!k->ctx || !EVP_MAC_init(k->ctx, (const unsigned char *)secret, secret_len, params)) {
        EVP_MAC_CTX_free(k->ctx);
        free(k);
        return NULL;
    }
    pthread_mutex_init(&k->mu, NULL);
    return k;
}

struct binance_key *binance_key_free(struct binance_key *k) {
    if (!k) return NULL;
    EVP_MAC_CTX_free(k->ctx); /* clears the key */
    pthread_mutex_destroy(&k->mu);
    free(k);
    return NULL;
}

int binance_sign_key(struct binance_key *k, const char *payload, size_t payload_len,
                     char out[BINANCE_SIG_HEX_LEN + 1]) {
    if (!k) return -EINVAL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    pthread_mutex_lock(&k->mu);
    int ok = EVP_MAC_init(k->ctx, NULL, 0, NULL) &&
             EVP_MAC_update(k->ctx, (const unsigned char *)payload, payload_len) &&
             EVP_MAC_final(k->ctx, mac, &mac_len, sizeof(mac));
    pthread_mutex_unlock(&k->mu);
    if (!ok || mac_len != BINANCE_SIG_HEX_LEN / 2) return -EIO;
    to_hex(mac, out);
    return 0;
}

bool binance_sign_verify(const char *secret, size_t secret_len, const char *payload,
                         size_t payload_len, const char *sig_hex, size_t sig_len) {
    char want[BINANCE_SIG_HEX_LEN + 1];
    unsigned char diff = 0;

    if (sig_len != BINANCE_SIG_HEX_LEN) return false;
    if (binance_sign(secret, secret_len, payload, payload_len, want) < 0) return false;
    /* Binance says the signature is not case sensitive. */
    for (size_t i = 0; i < BINANCE_SIG_HEX_LEN; i++)
        diff |= (unsigned char)(want[i] ^ (char)tolower((unsigned char)sig_hex[i]));
    return diff == 0;
}
