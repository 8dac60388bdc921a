/* sim_by_req: Bybit v5 request checks that need no I/O, so they are unit-testable: the signature
 * and clock of private REST calls (X-BAPI-* headers), the private websocket's auth arguments,
 * and the order objects of POST /v5/order/create and /create-batch. Functions return 0 or a
 * Bybit retCode with its message in msg. */
#ifndef CT_SIM_BY_REQ_H
#define CT_SIM_BY_REQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_book.h"

#define SBYR_RECV_WINDOW_DEFAULT 5000

/* Raw X-BAPI-* header values (not NUL-terminated; NULL when absent). */
struct sbyr_auth {
    const char *key, *ts, *sign, *recv_window;
    size_t key_len, ts_len, sign_len, recv_window_len;
};

/* HMAC-SHA256 hex of timestamp + api key + recv window (as sent; "" if absent) + payload (the
 * query string of a GET, the raw body of a POST). Codes: 10001 timestamp / recv window header
 * missing or malformed, 10004 wrong signature, 10002 outside
 * now - recvWindow <= timestamp < now + 1000 (recvWindow default 5000). */
int sbyr_verify(const char *secret, size_t secret_len, const struct sbyr_auth *h, const char *payload,
                size_t payload_len, int64_t now_ms, char *msg, size_t n);

/* Private websocket auth: signature = hex HMAC-SHA256(secret, "GET/realtime" + expires), and
 * expires must be later than now. 0, -EACCES (signature) or -ETIMEDOUT (expired). */
int sbyr_verify_ws(const char *secret, size_t secret_len, int64_t expires, const char *sig, size_t sig_len,
                   int64_t now_ms);

/* Bybit's orderLinkId rule: [A-Za-z0-9_-]{1,36}. */
bool sbyr_link_id_valid(const char *s);

struct sbyr_order {
    struct sbook_order_req rq; /* source REST; client_id points into the JSON */
    int position_idx;          /* as sent, -1 if absent */
    /* Raw values for the request log (point into the JSON or are literals; NULL if absent).
     * position_side is the book's name of the side (BOTH/LONG/SHORT) when positionIdx was sent. */
    const char *symbol, *side, *type, *tif, *qty, *price, *link_id, *reduce_only, *position_side;
};

/* One order object. category: the batch's outer category, or NULL to read the object's own.
 * mode is the account's position mode (positionIdx must fit it: 0 one-way, 1 / 2 hedge).
 * Codes: 10001 (missing or malformed fields, unknown symbol, unsupported features such as
 * conditional or TP/SL orders), 110017 (reduceOnly on a hedge side's opening order).
 * out->symbol etc. are filled as far as parsing got, also on error. */
int sbyr_parse_order(json_t *o, const char *category, struct sbook *book, enum mkt_pos_mode mode,
                     struct sbyr_order *out, char *msg, size_t n);

/* Strict non-negative decimal integer (timestamps, limits, cursors). */
bool sbyr_parse_i64(const char *s, size_t len, int64_t *out);

#endif
