/* binance_rest: the Binance USD-M futures REST adapter (exchange.h calls land here through
 * exchange.c), plus the pure request builders, response parsers and the outcome classifier it is
 * made of, exposed so they are testable without I/O.
 *
 * Outcome classification of an order call (binance_classify_order), the table that keeps orders
 * from being lost or duplicated:
 *   transport error, nothing sent (connect/resolve failed before the request was ready)
 *                                          place: REJECTED, http 0, code 0, msg "not sent: ..."
 *                                                 (the order does not exist; safe to send again
 *                                                 with the same client id)
 *                                          query: UNKNOWN (the query said nothing)
 *   transport error, maybe sent (timeout, reset, refused re-send, cancelled)     UNKNOWN
 *   2xx + order object (clientOrderId must match)                                OK + status
 *   2xx + anything else (bad JSON, missing/invalid field, unknown status)        UNKNOWN
 *   429, 418, 403 (WAF), or code -1003 / -1015 / -1008 (any status but 2xx)      THROTTLED
 *                                                 (retry_after_ms from Retry-After, else 0)
 *   5xx (incl. 503 "Unknown error..."), 408, code -1000/-1001/-1006/-1007        UNKNOWN
 *   other 4xx + Binance error object      place: REJECTED + code/msg
 *                                          query: -2013 -> NOT_FOUND; anything else UNKNOWN,
 *                                                 because a failed query (-1021, -1022, ...)
 *                                                 proves nothing about the order's existence
 *   other 4xx without an error object      place: REJECTED (code 0); query: UNKNOWN
 *   anything else (1xx/3xx)                                                      UNKNOWN
 *
 * Non-order calls report struct exch_status: err 0 on success, else the transport errno
 * (-ETIMEDOUT, -ECONNREFUSED, -EPIPE, ...), -EAGAIN (throttled as above), -EREMOTEIO (the
 * exchange answered with an error; error_code/error_msg set), -EBADMSG (unparseable success
 * body; error_msg names the field). */
#ifndef CT_BINANCE_REST_H
#define CT_BINANCE_REST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exchange.h"
#include "exchange_internal.h"
#include "rest_pool.h"

#define BINANCE_QS_MAX 2048       /* longest parameter string we build */
#define BINANCE_LISTEN_KEY_MAX 256 /* incl. NUL */

/* ---- request building (pure) ---- */

/* Appends "key=value" to the parameter string buf[0..len) ('&' first unless len == 0), both
 * percent-encoded (everything but A-Z a-z 0-9 - _ . ~ becomes %XX). Returns the new length,
 * or -ENOSPC (buf untouched beyond len). */
int binance_qs_add(char *buf, size_t cap, size_t len, const char *key, const char *value);

/* POST /fapi/v1/order parameters, unsigned, in this order: symbol, side, [positionSide], type,
 * [timeInForce], quantity, [price], [reduceOnly=true], newClientOrderId, newOrderRespType=RESULT.
 * positionSide (LONG/SHORT) only for req->pos_side != MKT_PS_BOTH. Returns the length, or -EINVAL
 * with a reason in err (bad symbol, side, type, position side, client id, quantity <= 0, price
 * <= 0 on a limit order, reduce_only with a LONG/SHORT position side), or -ENOSPC. */
int binance_order_params(const struct exch_order_req *req, char *buf, size_t cap, char *err,
                         size_t errlen);
/* GET /fapi/v1/order parameters: symbol, origClientOrderId. Length or -EINVAL/-ENOSPC. */
int binance_query_params(const char *symbol, const char *client_id, char *buf, size_t cap);
/* POST /fapi/v1/leverage parameters: symbol, leverage (1..BINANCE_LEVERAGE_MAX). Length or
 * -EINVAL/-ENOSPC. */
#define BINANCE_LEVERAGE_MAX 125
int binance_leverage_params(const char *symbol, int leverage, char *buf, size_t cap);
/* Appends recvWindow, timestamp and, last, signature (HMAC of the whole string as sent) to the
 * parameter string buf[0..len). Returns the new length, -ENOSPC, or the signing error. */
int binance_sign_params(const struct exch_account *a, char *buf, size_t cap, size_t len,
                        int recv_window_ms, int64_t timestamp_ms);

/* ---- response parsing (pure); err gets "what: field: why" on failure ---- */

/* A Binance error object {"code": int, "msg": string}: 0 and code/msg (msg sanitised to
 * printable ASCII, truncated), or -EBADMSG if body is not one. */
int binance_parse_error(const char *body, size_t len, int *code, char *msg, size_t msglen);
/* An order object (new order RESULT/ACK or query): orderId, clientOrderId, status, executedQty,
 * avgPrice are required, updateTime optional. Fills outcome EXCH_OK and the order fields.
 * 0 or -EBADMSG. */
int binance_parse_order(const char *body, size_t len, struct exch_order_result *out, char *err,
                        size_t errlen);
/* exchangeInfo -> one instrument per symbol (LOT_SIZE and PRICE_FILTER required, MARKET_LOT_SIZE
 * and MIN_NOTIONAL optional). A symbol whose filters are unusable is skipped, counted in
 * *skipped, and the first such reason is left in err (err[0] == 0 if none). Returns 0 and a
 * malloc'd array (free it; NULL when *n == 0), or -EBADMSG / -ENOMEM when the body as a whole
 * is unusable. */
int binance_parse_instruments(const char *body, size_t len, struct mkt_instrument **out,
                              size_t *n, size_t *skipped, char *err, size_t errlen);
/* positionRisk (v2 or v3) -> the non-zero positions: positionSide BOTH (absent = BOTH), LONG or
 * SHORT into pos_side (amounts as sent: SHORT negative); "leverage" (v2: a string such as "20",
 * or an integer; 1..BINANCE_LEVERAGE_PARSE_MAX) into leverage, 0 when absent (v3). Any malformed
 * entry (also an unknown positionSide) fails the whole body. 0 and a malloc'd array (NULL when
 * *n == 0), or -EBADMSG / -ENOMEM. */
int binance_parse_positions(const char *body, size_t len, struct mkt_position **out, size_t *n,
                            char *err, size_t errlen);
/* Largest leverage a response may report (more than Binance's 125 today, so a future raise does
 * not fail start-up; an absurd value still does). */
#define BINANCE_LEVERAGE_PARSE_MAX 1000
/* positionRisk v2 -> every symbol's leverage, flat or not (leverage required in every entry),
 * one entry per symbol (hedge mode lists LONG and SHORT; if they disagree the highest is kept),
 * sorted by symbol with strcmp. 0 and a malloc'd array (NULL when *n == 0), or -EBADMSG / -ENOMEM. */
int binance_parse_leverages(const char *body, size_t len, struct exch_leverage **out, size_t *n,
                            char *err, size_t errlen);
/* GET /fapi/v3/account (or v2): totalMarginBalance, totalWalletBalance, availableBalance,
 * totalUnrealizedProfit (all required decimals). 0 / -EBADMSG. */
int binance_parse_account(const char *body, size_t len, struct exch_balance *out, char *err,
                          size_t errlen);
/* /fapi/v2/ticker/price: an array of {symbol, price, time?} or one such object. price must be
 * >= 0; entries with price 0 are left out; time optional (0). 0 and a malloc'd array (NULL when
 * *n == 0), or -EBADMSG / -ENOMEM. */
int binance_parse_tickers(const char *body, size_t len, struct exch_ticker **out, size_t *n,
                          char *err, size_t errlen);
/* {"dualSidePosition": bool} -> MKT_PM_HEDGE / MKT_PM_ONE_WAY. 0 / -EBADMSG. */
int binance_parse_position_mode(const char *body, size_t len, enum mkt_pos_mode *out, char *err,
                                size_t errlen);
/* POST /fapi/v1/leverage answer {"leverage": int, "symbol": str, ...}: symbol must equal
 * want_symbol (when not NULL), leverage 1..BINANCE_LEVERAGE_PARSE_MAX. 0 / -EBADMSG. */
int binance_parse_set_leverage(const char *body, size_t len, const char *want_symbol,
                               int *leverage, char *err, size_t errlen);
/* {"serverTime": ms} -> 0 / -EBADMSG. */
int binance_parse_server_time(const char *body, size_t len, int64_t *ms, char *err,
                              size_t errlen);
/* {"listenKey": "..."} -> 0 / -EBADMSG; the key must be 1..255 chars of [A-Za-z0-9_-] (it goes
 * into a URL). */
int binance_parse_listen_key(const char *body, size_t len, char *key, size_t cap, char *err,
                             size_t errlen);

/* ---- classification (pure) ---- */

/* The table at the top of this file. want_client_id (may be NULL) is copied into out->client_id
 * for every outcome and must match the response's clientOrderId for EXCH_OK. */
void binance_classify_order(const struct rest_resp *r, bool is_query, const char *want_client_id,
                            struct exch_order_result *out);
/* For non-order calls: true if r is a 2xx response whose body should now be parsed (st zeroed
 * apart from http_status); false with st filled as described at the top otherwise. */
bool binance_status_from_resp(const struct rest_resp *r, struct exch_status *st);

/* ---- adapter entry points (exchange.c dispatches here for EXCH_BINANCE_USDM) ---- */

int binance_place_order(struct exch_account *a, const struct exch_order_req *req, exch_order_cb cb,
                        void *ud);
int binance_query_order(struct exch_account *a, const char *symbol, const char *client_id,
                        exch_order_cb cb, void *ud);
int binance_fetch_instruments(struct exch_account *a, exch_instruments_cb cb, void *ud);
int binance_fetch_positions(struct exch_account *a, exch_positions_cb cb, void *ud);
int binance_sync_time(struct exch_account *a, exch_time_cb cb, void *ud);
int binance_listen_key_create(struct exch_account *a, exch_listen_key_cb cb, void *ud);
int binance_listen_key_keepalive(struct exch_account *a, const char *listen_key,
                                 exch_listen_key_cb cb, void *ud);
int binance_listen_key_delete(struct exch_account *a, const char *listen_key,
                              exch_listen_key_cb cb, void *ud);
int binance_fetch_account(struct exch_account *a, exch_balance_cb cb, void *ud);
int binance_fetch_tickers(struct exch_account *a, exch_tickers_cb cb, void *ud);
int binance_fetch_position_mode(struct exch_account *a, exch_pos_mode_cb cb, void *ud);
int binance_fetch_leverage(struct exch_account *a, exch_leverages_cb cb, void *ud);
int binance_set_leverage(struct exch_account *a, const char *symbol, int leverage,
                         exch_set_leverage_cb cb, void *ud);

#endif
