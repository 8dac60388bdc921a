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
/* Constant-time, case-insensitive check of a hex signature against payload. */
bool binance_sign_verify(const char *secret, size_t secret_len, const char *payload,
                         size_t payload_len, const char *sig_hex, size_t sig_len);

#endif
