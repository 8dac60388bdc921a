#include "binance_sign.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

int binance_sign(const char *secret, size_t secret_len, const char *payload, size_t payload_len,
                 char out[BINANCE_SIG_HEX_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;

    if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)payload, payload_len,
              mac, &mac_len) ||
        mac_len != BINANCE_SIG_HEX_LEN / 2)
        return -EIO;
    for (unsigned i = 0; i < mac_len; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 0xf];
    }
    out[BINANCE_SIG_HEX_LEN] = '\0';
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
