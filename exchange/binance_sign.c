#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init/Update/Final: see binance_key below */

#include "binance_sign.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

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

/* HMAC-SHA256 (RFC 2104) keyed once: H((K ^ opad) || H((K ^ ipad) || m)). Both hashes start with
 * one 64-byte block that depends on the key alone, so the SHA-256 states after those blocks (the
 * midstates) are all a signature needs of the key: each signature copies them and hashes on.
 *
 * Why SHA256_CTX, deprecated in OpenSSL 3.0: it is a plain struct, so a copy is an assignment: no
 * allocation, no lock, 224 bytes a key. OpenSSL 3.0's alternatives allocate on every signature:
 * EVP_MD_CTX_copy_ex frees and re-allocates the provider's context (dupctx) on each copy, and a
 * keyed EVP_MAC_CTX (the earlier binance_key: ~1 KiB and a mutex a key) copies so in EVP_MAC_init.
 * tests/bench/bench_sign.c measures the three. The low-level SHA-256 runs the same assembly as the
 * EVP one and is in every OpenSSL 3.x libcrypto; OPENSSL_SUPPRESS_DEPRECATED (above, this file
 * only) is OpenSSL's own per-file opt-out. A libcrypto built without the deprecated API fails to
 * compile here, loudly (below), rather than silently. */
#if defined(OPENSSL_NO_DEPRECATED_3_0)
#error "binance_sign.c needs OpenSSL's SHA256_Init/Update/Final (see the comment above)"
#endif

struct binance_key {
    SHA256_CTX inner, outer; /* after (K ^ ipad) and (K ^ opad): key material, read-only */
};

struct binance_key *binance_key_new(const char *secret, size_t secret_len) {
    if (!secret) return NULL;
    struct binance_key *k = calloc(1, sizeof(*k));
    if (!k) return NULL;
    unsigned char block[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK];
    int ok = 1;
    if (secret_len > SHA256_CBLOCK) /* a key longer than the block is its hash (RFC 2104) */
        ok = SHA256((const unsigned char *)secret, secret_len, block) != NULL;
    else
        memcpy(block, secret, secret_len);
    for (size_t i = 0; i < SHA256_CBLOCK; i++) pad[i] = block[i] ^ 0x36;
    ok = ok && SHA256_Init(&k->inner) && SHA256_Update(&k->inner, pad, sizeof(pad));
    for (size_t i = 0; i < SHA256_CBLOCK; i++) pad[i] = block[i] ^ 0x5c;
    ok = ok && SHA256_Init(&k->outer) && SHA256_Update(&k->outer, pad, sizeof(pad));
    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));
    if (!ok) k = binance_key_free(k);
    return k;
}

struct binance_key *binance_key_free(struct binance_key *k) {
    if (!k) return NULL;
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
    return NULL;
}

int binance_sign_key(struct binance_key *k, const char *payload, size_t payload_len,
                     char out[BINANCE_SIG_HEX_LEN + 1]) {
    if (!k) return -EINVAL;
    unsigned char inner[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
    SHA256_CTX c = k->inner;
    int ok = SHA256_Update(&c, payload, payload_len) && SHA256_Final(inner, &c);
    c = k->outer;
    ok = ok && SHA256_Update(&c, inner, sizeof(inner)) && SHA256_Final(mac, &c);
    OPENSSL_cleanse(&c, sizeof(c)); /* a copy of a midstate when a step failed */
    if (!ok) return -EIO;
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
