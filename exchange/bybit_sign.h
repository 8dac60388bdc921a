/* bybit_sign: Bybit v5 signing (exchange-protocols.md B2). REST: lowercase hex of
 * HMAC_SHA256(secret, timestamp + api_key + recv_window + payload), payload = the query string of
 * a GET exactly as sent, or the raw JSON body of a POST exactly as sent; the signature travels in
 * the X-BAPI-SIGN header. Private websocket auth: HMAC_SHA256(secret, "GET/realtime" + expires)
 * in {"op":"auth","args":[api_key, expires, signature]}.
 *
 * The adapter signs through exch_account_sign_hex (the secret never leaves exchange.c); the
 * secret-taking functions are for the simulator (verification) and the tests. */
#ifndef CT_BYBIT_SIGN_H
#define CT_BYBIT_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct exch_account;

#define BYBIT_SIG_HEX_LEN 64
#define BYBIT_WS_AUTH_PREFIX "GET/realtime"

/* The REST string to sign: "<timestamp_ms><api_key><recv_window_ms><payload>" into buf
 * (NUL-terminated). Returns its length, -EINVAL (NULL/negative arguments, an api_key with
 * characters outside printable ASCII) or -ENOSPC. */
int bybit_sign_prehash(char *buf, size_t cap, int64_t timestamp_ms, const char *api_key,
                       int recv_window_ms, const char *payload, size_t payload_len);
/* The websocket auth string "GET/realtime<expires_ms>". Length, -EINVAL or -ENOSPC. */
int bybit_ws_prehash(char *buf, size_t cap, int64_t expires_ms);

/* With the account's secret (exch_account_sign_hex): the X-BAPI-SIGN value of a REST request
 * and the signature of a websocket auth. 0, or -EINVAL / -ENOSPC (see above; payloads up to
 * 64 KiB), -ENOMEM, -ESHUTDOWN (account freed), -EIO. */
int bybit_sign_rest(const struct exch_account *a, int64_t timestamp_ms, int recv_window_ms,
                    const char *payload, size_t payload_len, char out[BYBIT_SIG_HEX_LEN + 1]);
int bybit_sign_ws_auth(const struct exch_account *a, int64_t expires_ms,
                       char out[BYBIT_SIG_HEX_LEN + 1]);

/* The auth frame {"op":"auth","args":["<api_key>",<expires_ms>,"<sig>"]} (compact, this key
 * order). api_key must be printable ASCII without '"' or '\\', sig 64 hex chars. Length,
 * -EINVAL or -ENOSPC. */
int bybit_ws_auth_frame(char *buf, size_t cap, const char *api_key, int64_t expires_ms,
                        const char *sig);

/* With an explicit secret (simulator, tests): HMAC-SHA256 hex of payload, and a constant-time,
 * case-insensitive check of a received signature against it. */
int bybit_sign_hex(const char *secret, size_t secret_len, const char *payload, size_t payload_len,
                   char out[BYBIT_SIG_HEX_LEN + 1]);
bool bybit_sign_verify(const char *secret, size_t secret_len, const char *payload,
                       size_t payload_len, const char *sig_hex, size_t sig_len);

#endif
