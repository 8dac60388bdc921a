/* bybit_rest: the Bybit v5 REST adapter for category=linear (USDT perpetuals), reached through
 * exchange.c for EXCH_BYBIT_LINEAR accounts, plus the pure request builders, response parsers and
 * the outcome classifier it is made of, exposed so they are testable without I/O.
 * (exchange-protocols.md part B.)
 *
 * Bybit answers most errors with HTTP 200 and a non-zero retCode in the envelope
 * {retCode, retMsg, result, retExtInfo, time}; HTTP status codes other than 200 are rare (403 IP
 * rate limit, 429 system protection, 401 bad key, 404 bad path, 5xx).
 *
 * Outcome classification of ONE order response (bybit_classify_order):
 *   transport error, nothing sent (connect/resolve failed before the request was ready)
 *                                     place: REJECTED, http 0, msg "not sent: ..." (the order
 *                                            does not exist; safe to send again, same id)
 *                                     query / cancel: UNKNOWN
 *   transport error, maybe sent (timeout, reset, refused re-send, cancelled)        UNKNOWN
 *   HTTP 429 or 403 (IP limit "access too frequent"), or retCode 10006 (any status)  THROTTLED
 *       retry_after_ms: Retry-After if sent, else X-Bapi-Limit-Reset-Timestamp - now (when in
 *       the future, at most 60 s), else for 403 the documented 10 minutes, else 0
 *   HTTP 5xx or 408, retCode 10016 (server error), 10000 (server timeout), 110079 (order is
 *       being processed)                                                            UNKNOWN
 *   2xx body that is not an envelope (bad JSON, no integer retCode)                 UNKNOWN
 *   retCode 0:
 *     place   result {orderId, orderLinkId == ours}: OK, status NEW (Bybit only acknowledges;
 *             fills arrive on the stream / by query), executed 0; anything else UNKNOWN
 *     query   result.list holds the order with our orderLinkId: OK + its status; an empty
 *             list: NOT_FOUND (the adapter then asks /v5/order/history, see below); a list
 *             without our order or an unreadable one: UNKNOWN
 *     cancel  result {orderId, orderLinkId == ours}: OK, status CANCELED (see below)
 *   retCode 110072 (duplicate orderLinkId): UNKNOWN for a place (an order with our id exists:
 *       query it), REJECTED for the others
 *   retCode 110001 (order does not exist): query / cancel NOT_FOUND; place REJECTED
 *   any other retCode: place / cancel REJECTED with error_code/error_msg; query UNKNOWN (a
 *       failed query -- 10002 clock, 10004 sign -- proves nothing about the order)
 *   other HTTP 4xx without an envelope: place / cancel REJECTED (code 0); query UNKNOWN
 *   anything else (1xx / 3xx)                                                       UNKNOWN
 *
 * The adapter chains requests where one answer is not enough (B3.3):
 *   query:  GET /v5/order/realtime?orderLinkId=; NOT_FOUND there -> GET /v5/order/history (closed
 *           orders leave "realtime" after 500 newer ones or a Bybit restart); NOT_FOUND only when
 *           both say so.
 *   cancel: POST /v5/order/cancel; then (ack, or retCode 110001 / 110008 / 110010) the order is
 *           queried as above: OK with its status (a still-open status after our ack reads
 *           CANCELED: the cancel is asynchronous), NOT_FOUND when neither list has it. If the
 *           follow-up query fails the cancel's own outcome is reported.
 *   batch:  POST /v5/order/create-batch (1..BYBIT_BATCH_MAX): result.list[i] and
 *           retExtInfo.list[i] per request, each classified like a place by its code; lists
 *           that do not match the request (length, orderLinkId) make the mismatched items
 *           UNKNOWN. A non-zero top-level retCode or a transport failure applies to every item.
 *
 * Non-order calls report struct exch_status: err 0 on success, else the transport errno
 * (-ETIMEDOUT, -ECONNREFUSED, -EPIPE, ...), -EAGAIN (throttled as above), -EREMOTEIO (an error
 * answer: HTTP error or retCode != 0; error_code = retCode, error_msg = retMsg), -EBADMSG
 * (unreadable success body; error_msg names the field). Lists are paginated with cursor
 * (nextPageCursor) up to BYBIT_MAX_PAGES pages. */
#ifndef CT_BYBIT_REST_H
#define CT_BYBIT_REST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exchange.h"
#include "exchange_internal.h"
#include "rest_pool.h"

#define BYBIT_CATEGORY "linear"
#define BYBIT_SETTLE_COIN "USDT"
#define BYBIT_BATCH_MAX 10         /* linear create-batch; the docs say 20 on one page, 10 on
                                      another (exchange-protocols.md B3.2): the safe one */
#define BYBIT_QS_MAX 1024          /* longest query string we build */
#define BYBIT_BODY_MAX 8192        /* longest JSON body we build (a batch of 10 fits in ~3 KB) */
#define BYBIT_CURSOR_MAX 512       /* incl. NUL */
#define BYBIT_MAX_PAGES 200        /* pagination guard per call */
#define BYBIT_LEVERAGE_MAX 200     /* set-leverage range 1..200 (per-symbol caps are Bybit's) */
#define BYBIT_EXEC_WINDOW_MS (7LL * 24 * 3600 * 1000) /* /v5/execution/list: endTime-startTime <= 7 d */
#define BYBIT_EXEC_HISTORY_MS (730LL * 24 * 3600 * 1000) /* trade history is kept 2 years */
/* GET /v5/position/list by settleCoin lists only non-zero positions; the position mode of an
 * account without any is read from this symbol's (flat) entries instead. */
#define BYBIT_MODE_PROBE_SYMBOL "BTCUSDT"

/* retCodes the classification and the adapter name. */
#define BYBIT_RC_SERVER_TIMEOUT 10000
#define BYBIT_RC_TOO_MANY_VISITS 10006
#define BYBIT_RC_SERVER_ERROR 10016
#define BYBIT_RC_ORDER_NOT_EXISTS 110001
#define BYBIT_RC_ORDER_FINISHED 110008  /* "The order has been completed or cancelled" */
#define BYBIT_RC_ORDER_CANCELLED 110010
#define BYBIT_RC_LEVERAGE_NOT_MODIFIED 110043
#define BYBIT_RC_DUPLICATE_LINK_ID 110072
#define BYBIT_RC_ORDER_PROCESSING 110079

/* ---- request building (pure) ---- */

/* Appends "key=value" ('&' first unless len == 0), both percent-encoded (all but A-Z a-z 0-9
 * - _ . ~). The new length or -ENOSPC (buf as it was). */
int bybit_qs_add(char *buf, size_t cap, size_t len, const char *key, const char *value);

/* POST /v5/order/create body, compact JSON in this key order: category, symbol, side (Buy/Sell),
 * orderType (Market/Limit), qty, [price, timeInForce (IOC/GTC) for limits], positionIdx (0 for
 * MKT_PS_BOTH, 1 LONG, 2 SHORT), orderLinkId, reduceOnly (bool). Length, or -EINVAL with a reason
 * in err (symbol not [A-Za-z0-9._-]{1,31}, side, type, position side, client id not
 * [A-Za-z0-9_-]{1,36}, qty <= 0, a limit without a price > 0, reduce_only with LONG/SHORT
 * (the exchange.h contract: a hedge leg closes by its side)), or -ENOSPC / -ENOMEM. */
int bybit_order_json(const struct exch_order_req *req, char *buf, size_t cap, char *err,
                     size_t errlen);
/* POST /v5/order/create-batch body {"category":"linear","request":[<order without category>..]}.
 * n must be 1..BYBIT_BATCH_MAX; each request checked as above (err names its index). */
int bybit_batch_json(const struct exch_order_req *reqs, size_t n, char *buf, size_t cap,
                     char *err, size_t errlen);
/* POST /v5/order/cancel body {"category":"linear","symbol":..,"orderLinkId":..}. Length,
 * -EINVAL, -ENOSPC. */
int bybit_cancel_json(const char *symbol, const char *client_id, char *buf, size_t cap);
/* GET /v5/order/realtime and /v5/order/history query: category=linear&symbol=..&orderLinkId=..
 * Length, -EINVAL, -ENOSPC. */
int bybit_query_params(const char *symbol, const char *client_id, char *buf, size_t cap);
/* POST /v5/position/set-leverage body {"category":"linear","symbol":..,"buyLeverage":"N",
 * "sellLeverage":"N"} (equal: required in one-way mode and cross margin). leverage
 * 1..BYBIT_LEVERAGE_MAX. Length, -EINVAL, -ENOSPC. */
int bybit_leverage_json(const char *symbol, int leverage, char *buf, size_t cap);
/* GET /v5/execution/list query: category=linear[&symbol=..]&execType=Trade&startTime=..&
 * endTime=..&limit=100[&cursor=..]. symbol and cursor may be NULL / "". Length, -EINVAL,
 * -ENOSPC. */
int bybit_executions_params(const char *symbol, int64_t start_ms, int64_t end_ms,
                            const char *cursor, char *buf, size_t cap);

/* ---- response parsing (pure); err gets "what: field: why" on failure ---- */

/* The envelope: 0 with *ret_code and retMsg (sanitised, truncated; "" when absent) if body is
 * a JSON object with an integer retCode, else -EBADMSG. */
int bybit_parse_envelope(const char *body, size_t len, int *ret_code, char *msg, size_t msglen);

/* Order status words -> exch_order_status: New, Untriggered, Triggered -> NEW; PartiallyFilled;
 * Filled; Cancelled, PartiallyFilledCanceled, Deactivated -> CANCELED; Rejected. -EINVAL else. */
int bybit_status_parse(const char *s, enum exch_order_status *out);

/* One order object (order/realtime, order/history, the `order` ws topic): orderId, orderLinkId,
 * orderStatus, cumExecQty required; avgPrice ("" or absent = 0) and updatedTime (string or
 * integer ms; absent = 0) optional. Fills outcome EXCH_OK. 0 or -EBADMSG. */
int bybit_parse_order_obj(const json_t *o, struct exch_order_result *out, char *err,
                          size_t errlen);
/* Place / cancel acknowledgement (retCode 0 required): result {orderId, orderLinkId}.
 * orderLinkId must equal want_client_id when that is not NULL. 0 or -EBADMSG. */
int bybit_parse_ack(const char *body, size_t len, const char *want_client_id,
                    struct exch_order_result *out, char *err, size_t errlen);
/* order/realtime or order/history answer (retCode 0): 0 with *found and the order with
 * orderLinkId == client_id in out when result.list has it; *found false for an empty list.
 * -EBADMSG for an unreadable body or a non-empty list without our order (never NOT_FOUND on
 * a list we cannot account for). */
int bybit_parse_order_list(const char *body, size_t len, const char *client_id, bool *found,
                           struct exch_order_result *out, char *err, size_t errlen);
/* create-batch answer: out[i] for each of the n requests (client_ids[i] each), classified as
 * described at the top (the envelope must be retCode 0 here). 0, or -EBADMSG when the body as a
 * whole is unreadable (the caller then reports every item UNKNOWN). */
int bybit_parse_batch(const char *body, size_t len, const char *const *client_ids, size_t n,
                      struct exch_order_result *out, char *err, size_t errlen);

/* instruments-info page -> one instrument per usable list entry: lotSizeFilter.qtyStep (step,
 * > 0), minOrderQty (min_qty), maxOrderQty (max_qty), maxMktOrderQty (mkt_max_qty, optional),
 * minNotionalValue (min_notional, optional = 0), priceFilter.tickSize / minPrice / maxPrice;
 * mkt_step and mkt_min_qty 0 (= the limit values). Unusable entries are skipped, counted in
 * *skipped, the first reason left in err. nextPageCursor into cursor ("" = last page).
 * 0 and a malloc'd array (NULL when *n == 0), or -EBADMSG / -ENOMEM. */
int bybit_parse_instruments(const char *body, size_t len, struct mkt_instrument **out, size_t *n,
                            size_t *skipped, char *cursor, size_t cursor_cap, char *err,
                            size_t errlen);
/* position/list page -> every entry, flat ones included: symbol, amount = size signed by side
 * (Sell negative; "" side with size 0 = flat), entry_price = avgPrice ("" = 0), pos_side from
 * positionIdx (0 BOTH, 1 LONG, 2 SHORT), leverage from the decimal string "leverage" (rounded
 * up to an integer: a fractional 12.5 counts as 13 for max-leverage checks; "" = 0). Any
 * malformed entry fails the body. cursor as above. 0 and a malloc'd array, or -EBADMSG/-ENOMEM. */
int bybit_parse_positions(const char *body, size_t len, struct mkt_position **out, size_t *n,
                          char *cursor, size_t cursor_cap, char *err, size_t errlen);
/* A position object (REST list entry or ws `position` data entry; ws uses entryPrice where
 * REST has avgPrice -- either is accepted). 0 or -EBADMSG. */
int bybit_parse_position_obj(const json_t *p, struct mkt_position *out, char *err, size_t errlen);
/* market/time: result.timeNano (string, ns) -> ms; else result.timeSecond * 1000; else the
 * envelope's time. 0 / -EBADMSG. */
int bybit_parse_server_time(const char *body, size_t len, int64_t *ms, char *err, size_t errlen);
/* account/wallet-balance (UNIFIED): result.list[0]: equity = totalMarginBalance (wallet +
 * perp unrealized PnL, the Binance meaning), wallet = totalWalletBalance, available =
 * totalAvailableBalance, unrealized = totalPerpUPL. equity and wallet are required decimals;
 * the other two may be "" (Bybit leaves account-level fields empty in isolated-margin mode): 0.
 * 0 / -EBADMSG. */
int bybit_parse_wallet(const char *body, size_t len, struct exch_balance *out, char *err,
                       size_t errlen);
/* market/tickers: lastPrice per symbol (entries with "" or 0 left out), time_ms = the
 * envelope's time (Bybit gives no per-ticker time). 0 and a malloc'd array, or -EBADMSG/-ENOMEM. */
int bybit_parse_tickers(const char *body, size_t len, struct exch_ticker **out, size_t *n,
                        char *err, size_t errlen);
/* market/tickers: bid1Price / ask1Price per symbol (entries without both > 0 left out). */
int bybit_parse_book_tickers(const char *body, size_t len, struct exch_book_ticker **out,
                             size_t *n, char *err, size_t errlen);

/* One execution (REST /v5/execution/list entry or ws `execution` data entry). */
struct bybit_exec {
    struct mkt_fill fill; /* all but account / received_ns / event_time_ms (callers set them);
                             pos_side BOTH unless positionIdx was present (see below) */
    char exec_type[24];   /* execType (truncated): only "Trade" is a fill */
    bool is_trade;
    dec_t closed_size;    /* closedSize ("" / absent = 0) */
    bool has_pos_idx;     /* the entry carried positionIdx (Bybit's docs do not list it) */
};
/* Field mapping: trade_id = execId, order_id = orderId, trade_seq = 0 (execIds are UUIDs),
 * order_client_id = orderLinkId (truncated), side, qty = execQty, price = execPrice,
 * trade_time_ms = execTime, orig_qty = orderQty, cum_qty = orderQty - leavesQty, order_done =
 * leavesQty == 0. reduce_only: an execution has no reduceOnly flag, so it is set when the fill
 * closed its whole quantity (closedSize == execQty > 0): true exactly when the fill opened
 * nothing, which is what the copy engine reads it as. Non-Trade executions (Funding, AdlTrade,
 * BustTrade, Settle, ...) are parsed leniently (is_trade false, only symbol/execId/execType
 * needed). 0 or -EBADMSG; where is prefixed to err ("execution.data[2]"). */
int bybit_parse_exec_obj(const json_t *e, const char *where, struct bybit_exec *out, char *err,
                         size_t errlen);
/* The fill's position side when the entry had no positionIdx: MKT_PS_BOTH on a one-way
 * account; on a hedge-mode account a fill that closed something (closedSize > 0) belongs to the
 * opposite leg (a Buy closes SHORT), one that closed nothing to its own (a Buy opens LONG). */
void bybit_exec_apply_mode(struct bybit_exec *x, enum mkt_pos_mode mode);
/* execution/list page: every Trade execution (others skipped), in the order listed (Bybit:
 * newest first); pos_side is BOTH unless the entry had positionIdx (apply the account's mode with
 * bybit_exec_apply_mode). cursor as above. 0 and a malloc'd array (NULL when *n == 0), or
 * -EBADMSG / -ENOMEM. */
int bybit_parse_executions(const char *body, size_t len, struct bybit_exec **out, size_t *n,
                           char *cursor, size_t cursor_cap, char *err, size_t errlen);

/* Position modes by symbol as learned from positionIdx values (position/list, ws position and
 * order topics): 0 -> one-way, 1/2 -> hedge. Symbols never seen take the mode of the last symbol
 * seen (Bybit sets the USDT-perp mode per coin unless changed per symbol), one-way before any. */
struct bybit_modebook;
struct bybit_modebook *bybit_modebook_new(void);
struct bybit_modebook *bybit_modebook_free(struct bybit_modebook *mb); /* takes NULL */
/* Notes symbol's positionIdx (0/1/2; others ignored) and, when leverage > 0, its leverage; the
 * previous leverage (0 = none known) into *old_leverage when not NULL. 0 or -ENOMEM. */
int bybit_modebook_note(struct bybit_modebook *mb, const char *symbol, int position_idx,
                        int leverage, int *old_leverage);
enum mkt_pos_mode bybit_modebook_mode(const struct bybit_modebook *mb, const char *symbol);
/* The mode of symbols not seen yet, unless a symbol was noted already (what was seen wins). */
void bybit_modebook_set_default(struct bybit_modebook *mb, enum mkt_pos_mode mode);

/* ---- classification (pure) ---- */

enum bybit_op { BYBIT_OP_PLACE = 0, BYBIT_OP_QUERY, BYBIT_OP_CANCEL };

/* The table at the top of this file for one response. want_client_id is copied into
 * out->client_id for every outcome. now_ms (wall clock) is for X-Bapi-Limit-Reset-Timestamp. */
void bybit_classify_order(const struct rest_resp *r, enum bybit_op op, const char *want_client_id,
                          int64_t now_ms, struct exch_order_result *out);
/* For non-order calls: true if r is a 2xx envelope with retCode 0 (st zeroed apart from
 * http_status); false with st filled as described at the top otherwise. 110043 on
 * set-leverage is the caller's business (it arrives here as -EREMOTEIO, code 110043). */
bool bybit_status_from_resp(const struct rest_resp *r, struct exch_status *st);
/* Rate-limit headers of r into u (X-Bapi-Limit, -Status, -Reset-Timestamp; -1 when absent). */
void bybit_usage_from_resp(const struct rest_resp *r, int64_t now_ms, struct exch_bybit_usage *u);

/* ---- adapter entry points (exchange.c dispatches here for EXCH_BYBIT_LINEAR) ---- */

int bybit_place_order(struct exch_account *a, const struct exch_order_req *req, exch_order_cb cb,
                      void *ud);
int bybit_place_batch(struct exch_account *a, const struct exch_order_req *reqs, size_t n,
                      exch_batch_cb cb, void *ud);
int bybit_query_order(struct exch_account *a, const char *symbol, const char *client_id,
                      exch_order_cb cb, void *ud);
int bybit_cancel_order(struct exch_account *a, const char *symbol, const char *client_id,
                       exch_order_cb cb, void *ud);
int bybit_fetch_instruments(struct exch_account *a, exch_instruments_cb cb, void *ud);
/* Non-zero positions (settleCoin=USDT), leverage filled in. */
int bybit_fetch_positions(struct exch_account *a, exch_positions_cb cb, void *ud);
int bybit_sync_time(struct exch_account *a, exch_time_cb cb, void *ud);
int bybit_fetch_account(struct exch_account *a, exch_balance_cb cb, void *ud);
int bybit_fetch_tickers(struct exch_account *a, exch_tickers_cb cb, void *ud);
int bybit_fetch_book_tickers(struct exch_account *a, exch_book_tickers_cb cb, void *ud);
/* Bybit has no "get position mode" call: the mode is read from position/list positionIdx
 * values (settleCoin=USDT; if that is empty, the flat entries of BYBIT_MODE_PROBE_SYMBOL):
 * any 1/2 -> HEDGE, else ONE_WAY. */
int bybit_fetch_position_mode(struct exch_account *a, exch_pos_mode_cb cb, void *ud);
/* Leverage per symbol from position/list?settleCoin=USDT: Bybit lists only symbols with a
 * position there, so flat symbols are absent (callers treat absent as unknown). Sorted by
 * symbol, one entry per symbol (the highest if the legs differ). */
int bybit_fetch_leverage(struct exch_account *a, exch_leverages_cb cb, void *ud);
/* buyLeverage = sellLeverage = leverage; 110043 "not modified" is success with leverage. */
int bybit_set_leverage(struct exch_account *a, const char *symbol, int leverage,
                       exch_set_leverage_cb cb, void *ud);
/* Trade executions since since_ms (clamped to the last BYBIT_EXEC_HISTORY_MS), in 7-day windows,
 * each paginated; oldest first (by execTime, ties in Bybit's order reversed). The position mode
 * is learned first from position/list (symbol given: its entries; else settleCoin=USDT) to set
 * pos_side. symbol NULL = all symbols. */
int bybit_fetch_fills(struct exch_account *a, const char *symbol, int64_t since_ms,
                      exch_fills_cb cb, void *ud);

#endif
