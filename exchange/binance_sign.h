/* binance_sign: HMAC-SHA256 request signing for Binance USD-M (signature = lowercase hex of
 * HMAC_SHA256(secret, query string + request body, no separator)). Used by the adapter to sign
 * and by the simulator to verify. */
#ifndef CT_BINANCE_SIGN_H
#define CT_BINANCE_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#define BINANCE_SIG_HEX_LEN 64

/* Writes 64 lowercase hex chars plus NUL into out[65]. Returns 0 or -EIO. */
int binance_sign(const char *secret, size_t secret_len, const char *payload, size_t payload_len,
                 char out[BINANCE_SIG_HEX_LEN + 1]);
/* A secret keyed once for many signatures (OpenSSL 3's one-shot HMAC() fetches the algorithm and
 * derives the key pads on every call: 3 us a request). It holds only HMAC-SHA256's two midstates
 * (the SHA-256 states after the key's inner and outer pad blocks: 224 bytes, wiped on free), copied
 * for each signature: no allocation or lock per signature, ~0.35 us for a 250-byte order
 * (tests/bench/bench_sign.c). Read-only once made: thread-safe. */
struct binance_key;
/* NULL when out of memory or OpenSSL refuses the key. */
struct binance_key *binance_key_new(const char *secret, size_t secret_len);
struct binance_key *binance_key_free(struct binance_key *k); /* takes NULL, returns NULL */
/* The same signature as binance_sign with k's secret. 0 or -EIO (-EINVAL for a NULL k). */
int binance_sign_key(struct binance_key *k, const char *payload, size_t payload_len,
                     char out[BINANCE_SIG_HEX_LEN + 1]);
/* Constant-time, case-insensitive check of a hex signature against payload. */
bool binance_sign_verify(const char *secret, size_t secret_len, const char *payload,
                         size_t payload_len, const char *sig_hex, size_t sig_len);

#endif
