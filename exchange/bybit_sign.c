/* bybit_sign: see bybit_sign.h. The HMAC itself is the same as Binance's (binance_sign); only
 * the string that is signed differs. */
#include "bybit_sign.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binance_sign.h"
#include "exchange_internal.h"

#define PAYLOAD_MAX (64u * 1024u)

static bool key_text_ok(const char *s) {
    if (!s || !*s) return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c <= ' ' || *c > '~' || *c == '"' || *c == '\\') return false;
    return true;
}

int bybit_sign_prehash(char *buf, size_t cap, int64_t timestamp_ms, const char *api_key,
                       int recv_window_ms, const char *payload, size_t payload_len) {
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (timestamp_ms < 0 || recv_window_ms < 0 || !key_text_ok(api_key) ||
        (!payload && payload_len))
        return -EINVAL;
    int n = snprintf(buf, cap, "%" PRId64 "%s%d", timestamp_ms, api_key, recv_window_ms);
    if (n < 0 || (size_t)n >= cap || cap - (size_t)n <= payload_len) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    if (payload_len) memcpy(buf + n, payload, payload_len);
    buf[(size_t)n + payload_len] = '\0';
    return n + (int)payload_len;
}

int bybit_ws_prehash(char *buf, size_t cap, int64_t expires_ms) {
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (expires_ms <= 0) return -EINVAL;
    int n = snprintf(buf, cap, BYBIT_WS_AUTH_PREFIX "%" PRId64, expires_ms);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    return n;
}

int bybit_sign_rest(const struct exch_account *a, int64_t timestamp_ms, int recv_window_ms,
                    const char *payload, size_t payload_len, char out[BYBIT_SIG_HEX_LEN + 1]) {
    if (!a || !out) return -EINVAL;
    if (exch_account_is_closed(a)) return -ESHUTDOWN;
    if (payload_len > PAYLOAD_MAX) return -ENOSPC;
    const char *key = exch_account_api_key(a);
    size_t cap = 64 + strlen(key) + payload_len;
    char *buf = malloc(cap);
    if (!buf) return -ENOMEM;
    int n = bybit_sign_prehash(buf, cap, timestamp_ms, key, recv_window_ms, payload, payload_len);
    int r = n < 0 ? n : exch_account_sign_hex(a, buf, (size_t)n, out);
    free(buf);
    return r;
}

int bybit_sign_ws_auth(const struct exch_account *a, int64_t expires_ms,
                       char out[BYBIT_SIG_HEX_LEN + 1]) {
    char buf[64];
    if (!a || !out) return -EINVAL;
    int n = bybit_ws_prehash(buf, sizeof buf, expires_ms);
    if (n < 0) return n;
    return exch_account_sign_hex(a, buf, (size_t)n, out);
}

int bybit_ws_auth_frame(char *buf, size_t cap, const char *api_key, int64_t expires_ms,
                        const char *sig) {
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!key_text_ok(api_key) || !sig || strlen(sig) != BYBIT_SIG_HEX_LEN || expires_ms <= 0)
        return -EINVAL;
    for (const char *c = sig; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F')))
            return -EINVAL;
    int n = snprintf(buf, cap, "{\"op\":\"auth\",\"args\":[\"%s\",%" PRId64 ",\"%s\"]}", api_key,
                     expires_ms, sig);
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    return n;
}

int bybit_sign_hex(const char *secret, size_t secret_len, const char *payload, size_t payload_len,
                   char out[BYBIT_SIG_HEX_LEN + 1]) {
    return binance_sign(secret, secret_len, payload, payload_len, out);
}

bool bybit_sign_verify(const char *secret, size_t secret_len, const char *payload,
                       size_t payload_len, const char *sig_hex, size_t sig_len) {
    return binance_sign_verify(secret, secret_len, payload, payload_len, sig_hex, sig_len);
}
