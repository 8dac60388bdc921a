/* sim_bn_req: Binance USD-M request checks that need no I/O, so they are unit-testable:
 * API-key/signature/timestamp verification of SIGNED endpoints and the parameters of
 * POST /fapi/v1/order. Every function returns 0 or a Binance error code (negative) with its
 * message in msg, and the HTTP status to answer with in *http where relevant. */
#ifndef CT_SIM_BN_REQ_H
#define CT_SIM_BN_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_book.h"
#include "sim_params.h"

#define SBNR_RECV_WINDOW_DEFAULT 5000
#define SBNR_RECV_WINDOW_MAX 60000

/* Signature: HMAC-SHA256 over query + body exactly as received, "signature" the last parameter
 * (-1102 if missing, -1022 if wrong or not last). Then the clock rule
 * timestamp < now + 1000 && now - timestamp <= recvWindow (-1102 for a missing/malformed
 * timestamp, -1130 for a bad recvWindow, -1021 outside the window). */
int sbnr_verify_signed(const char *secret, size_t secret_len, const char *query, size_t q_len,
                       const char *body, size_t b_len, const struct sp_list *params, int64_t now_ms,
                       char *msg, size_t n);

/* Strict unsigned decimal integer (what Binance accepts for timestamp, orderId, recvWindow). */
bool sbnr_parse_i64(const char *s, int64_t *out);

enum sbnr_resp_type { SBNR_ACK = 0, SBNR_RESULT };

struct sbnr_order {
    struct sbook_order_req rq;
    enum sbnr_resp_type resp_type;
    bool reduce_only_sent; /* reduceOnly was sent at all, "false" included (hedge mode: -1106) */
};

/* Parameters of POST /fapi/v1/order into out->rq (source REST, client_id points into params).
 * Mandatory: symbol, side, type, quantity; LIMIT also timeInForce and price. Codes: -1102
 * missing/malformed, -1121 unknown symbol, -1117 side, -1116 type (-4120 for conditional types),
 * -1115 timeInForce, -4060 positionSide not BOTH/LONG/SHORT (into rq.pos_side; whether it fits
 * the account's mode is checked by the book), -1130 reduceOnly/closePosition,
 * -4015 newClientOrderId, -1136 newOrderRespType. */
int sbnr_parse_order(const struct sp_list *p, struct sbook *book, struct sbnr_order *out, char *msg,
                     size_t n);

#endif
