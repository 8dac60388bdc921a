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

/* Longest parameter string we build: a batchOrders of 5 orders, JSON percent-encoded, needs up
 * to about 6 KB in the worst case (31-byte UTF-8 symbols, 48-digit decimals). */
#define BINANCE_QS_MAX 8192
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

#define BINANCE_BATCH_MAX 5 /* POST /fapi/v1/batchOrders takes at most 5 orders */
/* POST /fapi/v1/batchOrders parameters: batchOrders=<JSON array>, the JSON percent-encoded (the
 * 2023-06-16 changelog: '[', ']' and '"' must be encoded), unsigned. Each element holds the
 * parameters of binance_order_params as JSON strings, in the same order (newOrderRespType=RESULT
 * included: the batch doc lists it). n must be 1..BINANCE_BATCH_MAX and the client ids distinct.
 * Returns the length, or -EINVAL with "batch[i]: <reason>" in err, or -ENOSPC. */
int binance_batch_params(const struct exch_order_req *reqs, size_t n, char *buf, size_t cap,
                         char *err, size_t errlen);
/* GET /fapi/v1/order by exchange order id: symbol, orderId (> 0). Length or -EINVAL/-ENOSPC. */
int binance_order_id_params(const char *symbol, int64_t order_id, char *buf, size_t cap);
/* GET /fapi/v1/userTrades parameters: symbol, then fromId (when from_id >= 0) or orderId (when
 * order_id > 0), startTime and endTime (when start_ms >= 0; end_ms >= start_ms, at most 7 days
 * later), limit (1..1000). Binance refuses fromId with a time; -EINVAL if both are asked for.
 * Length or -EINVAL/-ENOSPC. */
int binance_user_trades_params(const char *symbol, int64_t from_id, int64_t order_id,
                               int64_t start_ms, int64_t end_ms, int limit, char *buf, size_t cap);
#define BINANCE_TRADES_WINDOW_MS (7LL * 86400000LL) /* longest startTime..endTime of userTrades */
#define BINANCE_TRADES_LIMIT 1000                   /* most trades per userTrades page */

/* ---- response parsing (pure); err gets "what: field: why" on failure ---- */

/* A Binance error object {"code": int, "msg": string}: 0 and code/msg (msg sanitised to
 * printable ASCII, truncated), or -EBADMSG if body is not one. */
int binance_parse_error(const char *body, size_t len, int *code, char *msg, size_t msglen);
/* An order object (new order RESULT/ACK or query): orderId, clientOrderId, status, executedQty,
 * avgPrice are required, updateTime optional. Fills outcome EXCH_OK and the order fields.
 * 0 or -EBADMSG. */
int binance_parse_order(const char *body, size_t len, struct exch_order_result *out, char *err,
                        size_t errlen);
/* The same with jansson only (what binance_parse_order falls back to; the fuzzer compares them). */
int binance_parse_order_tree(const char *body, size_t len, struct exch_order_result *out,
                             char *err, size_t errlen);
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
/* positionRisk v2 -> the position mode: every entry BOTH (absent = BOTH) -> MKT_PM_ONE_WAY, every
 * entry LONG or SHORT -> MKT_PM_HEDGE (A3.4: one-way accounts list BOTH, hedge-mode accounts a
 * LONG and a SHORT entry per symbol). -ENODATA with the reason in err when the body cannot tell
 * (no entries at all, or BOTH mixed with LONG/SHORT): ask GET /fapi/v1/positionSide/dual then.
 * -EBADMSG for a body binance_parse_positions refuses, -ENOMEM. */
int binance_parse_risk_mode(const char *body, size_t len, enum mkt_pos_mode *out, char *err,
                            size_t errlen);
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

/* One entry of GET /fapi/v1/userTrades. */
struct binance_trade {
    int64_t id;       /* "id": the o.t of the stream's ORDER_TRADE_UPDATE, > 0 */
    int64_t order_id; /* "orderId", > 0 */
    int64_t time_ms;  /* "time" */
    char symbol[MKT_SYMBOL_MAX];
    enum mkt_side side;         /* "side" BUY / SELL */
    enum mkt_pos_side pos_side; /* "positionSide" BOTH / LONG / SHORT (absent = BOTH) */
    dec_t qty, price;           /* "qty", "price": > 0 */
};
/* userTrades (a JSON array) -> trades in the order listed. want_symbol (may be NULL): every entry
 * must be of that symbol. Any malformed entry fails the whole body. 0 and a malloc'd array (NULL
 * when *n == 0), or -EBADMSG / -ENOMEM. */
int binance_parse_user_trades(const char *body, size_t len, const char *want_symbol,
                              struct binance_trade **out, size_t *n, char *err, size_t errlen);

/* What a fill needs of its order (GET /fapi/v1/order, the query shape). */
struct binance_order_info {
    int64_t order_id;
    char client_id[MKT_CLIENT_ID_MAX];
    dec_t orig_qty, executed_qty;
    bool reduce_only;
    enum exch_order_status status;
    int64_t time_ms; /* creation ("time"), -1 when absent */
    /* set by the adapter, not the parser: the order's quantity filled by trades older than the
     * first one being backfilled (so cum_qty counts from the order's start) */
    dec_t prior_qty;
};
/* An order object -> info: orderId, clientOrderId, origQty, executedQty, reduceOnly, status
 * required; time optional. want_order_id (> 0) must match. 0 / -EBADMSG. */
int binance_parse_order_info(const char *body, size_t len, int64_t want_order_id,
                             struct binance_order_info *out, char *err, size_t errlen);
/* Turns trades (any order; sorted by id here, in place; duplicate ids dropped) and the info of
 * every order they name (any order) into fills as the stream's ORDER_TRADE_UPDATE would have
 * carried them: trade_id = decimal id, trade_seq = id, order_id = decimal orderId,
 * order_client_id, side, qty, price, pos_side, reduce_only and orig_qty of the order, cum_qty =
 * prior_qty + the running sum of the order's trades up to this one (o.z), order_done = the order
 * is FILLED and cum_qty reached its executedQty, trade_time_ms = event_time_ms = time,
 * received_ns 0, account copied. out must hold n fills; returns how many were written (n minus
 * duplicates), or -EBADMSG with err naming a trade whose order is not in infos. */
int binance_build_fills(const char *account, struct binance_trade *trades, size_t n,
                        const struct binance_order_info *infos, size_t n_infos,
                        struct mkt_fill *out, char *err, size_t errlen);

/* GET /fapi/v1/ticker/bookTicker: an array of {symbol, bidPrice, askPrice, time?} or one such
 * object. Prices must be >= 0; entries without both a bid and an ask (0) are left out; time
 * optional (0). 0 and a malloc'd array (NULL when *n == 0), or -EBADMSG / -ENOMEM. */
int binance_parse_book_tickers(const char *body, size_t len, struct exch_book_ticker **out,
                               size_t *n, char *err, size_t errlen);

/* ---- classification (pure) ---- */

/* The table at the top of this file. want_client_id (may be NULL) is copied into out->client_id
 * for every outcome and must match the response's clientOrderId for EXCH_OK. */
void binance_classify_order(const struct rest_resp *r, bool is_query, const char *want_client_id,
                            struct exch_order_result *out);
/* A cancel (DELETE /fapi/v1/order): like a place, except that a transport error is always
 * UNKNOWN (even "not sent": the caller asked to stop an order and must learn its state) and the
 * message says "cancel outcome unknown". -2011 "Unknown order sent" comes back as REJECTED with
 * error_code -2011: Binance says it for a finished order as well as for a missing one, so the
 * adapter then queries the order (binance_cancel_order). */
void binance_classify_cancel(const struct rest_resp *r, const char *want_client_id,
                             struct exch_order_result *out);
/* A batchOrders answer: n results, out[i] for client_ids[i]. Not a 2xx: every entry classified
 * like a single place (a transport failure, 5xx or 503 "Unknown error" makes all UNKNOWN, 429/418
 * all THROTTLED, a 4xx error object all REJECTED). 2xx: the body must be an array of n entries,
 * else all UNKNOWN (it may hold orders we cannot see); each entry is an order object (OK; its
 * clientOrderId must match, else UNKNOWN) or an error object {code, msg}: -1003/-1015/-1008
 * THROTTLED, -1000/-1001/-1006/-1007 UNKNOWN (maybe placed), any other code REJECTED; an entry
 * that is neither is UNKNOWN. */
void binance_classify_batch(const struct rest_resp *r, const char *const *client_ids, size_t n,
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

/* Positions, position mode and leverage: ONE GET /fapi/v2/positionRisk (weight 5) answers all
 * three. v2 lists every symbol, flat or not, with its leverage and positionSide, so:
 *   binance_fetch_positions   its non-zero entries (binance_parse_positions; v2 and v3 give the
 *                             same positions, v2 also the leverage, so v2 it is)
 *   binance_fetch_leverage    its leverages (binance_parse_leverages)
 *   binance_fetch_position_mode  derived from its positionSides (binance_parse_risk_mode); only
 *                             when that cannot tell (an account with no entries, a mix of BOTH
 *                             and LONG/SHORT, an unreadable body) GET /fapi/v1/positionSide/dual,
 *                             weight 30, is asked. Start-up costs time 1 + positionRisk 5 +
 *                             account 5 = 11 weight per account instead of 46.
 * Sharing, per account: calls made while a positionRisk request is in flight join it (single
 * flight); calls made less than BINANCE_RISK_TTL_MS after an answer arrived get that answer
 * (delivered from the loop, never inside the call); later calls send a new request. Transport
 * and HTTP errors are shared by the calls that joined that request but never kept. The answer is
 * also dropped on any order, batch, cancel or set-leverage response of the account, so a reader
 * after one of ours never sees positions from before it. Position changes the adapter does not
 * see (leader fills of another process, manual trades, liquidations) are at most the TTL old in
 * what it hands out; the daemon reads these at start-up and refresh, where that is fine. */
#ifndef BINANCE_RISK_TTL_MS
#define BINANCE_RISK_TTL_MS 1000
#endif
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
/* DELETE /fapi/v1/order by client id; on -2011/-2013 a GET of the order by client id decides:
 * found -> OK with its status (it finished before the cancel), -2013 -> NOT_FOUND, a failed query
 * -> its own outcome (UNKNOWN / THROTTLED), never NOT_FOUND. Same contract as place. */
int binance_cancel_order(struct exch_account *a, const char *symbol, const char *client_id,
                         exch_order_cb cb, void *ud);
/* POST /fapi/v1/batchOrders, 1..BINANCE_BATCH_MAX orders (-EINVAL otherwise, or for an invalid
 * order or a client id used twice): the callback gets n results in request order (see
 * binance_classify_batch). Orders are sent with no_resend. */
int binance_place_batch(struct exch_account *a, const struct exch_order_req *reqs, size_t n,
                        exch_batch_cb cb, void *ud);
/* The account's fills of symbol (required: -EINVAL for NULL) with time >= since_ms, oldest first
 * (by trade id), as the stream would have delivered them (binance_build_fills): GET
 * /fapi/v1/userTrades in 7-day windows from since_ms (startTime/endTime) until the first trade,
 * then by fromId = last id + 1 until a page comes back short; then GET /fapi/v1/order?orderId=
 * once per order (one at a time) for the order fields, and for an order created before since_ms
 * (it may have filled earlier) GET userTrades?orderId= for the quantity it filled before. Errors
 * in st as for the other calls; more than the cap of trades (100,000) -> -E2BIG, pages beyond a
 * bound -> -EBADMSG. */
int binance_fetch_fills(struct exch_account *a, const char *symbol, int64_t since_ms,
                        exch_fills_cb cb, void *ud);
/* GET /fapi/v1/ticker/bookTicker (public, every symbol, weight 5, bulk priority). */
int binance_fetch_book_tickers(struct exch_account *a, exch_book_tickers_cb cb, void *ud);

/* Tests only (process-wide, read when a fetch_fills starts): the userTrades page size (1..1000)
 * and the cap on trades; 0 restores the default (1000, 100,000). */
void binance_fills_test_limits(int page_limit, size_t max_trades);
/* Tests only (process-wide): how long a positionRisk answer is reused (ms, 0 = only by calls
 * joining the request in flight); negative restores BINANCE_RISK_TTL_MS. */
void binance_risk_test_ttl(int64_t ttl_ms);
#define BINANCE_FILLS_MAX 100000

#endif
