/* exchange: the one adapter interface the daemon talks to. No exchange-specific code outside
 * the adapters (binance_*.c now, bybit_*.c later). Every call is asynchronous on the caller's
 * libuv loop; callbacks run on that loop. Results carry error codes, never log lines. */
#ifndef CT_EXCHANGE_H
#define CT_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "market.h"

struct rest_pool;
struct lws_context;

enum exch_kind { EXCH_BINANCE_USDM = 1, EXCH_BYBIT_LINEAR = 2 };

/* "binance-usdm" / "bybit-linear" -> kind; -EINVAL otherwise. */
int exch_kind_parse(const char *s, enum exch_kind *out);
const char *exch_kind_name(enum exch_kind k);

struct exch_account_cfg {
    const char *name;     /* our account name (copied) */
    enum exch_kind kind;
    const char *rest_url; /* e.g. "https://fapi.binance.com" or "http://127.0.0.1:18080" (copied) */
    const char *ws_url;   /* e.g. "wss://fstream.binance.com/private" or "ws://127.0.0.1:18080" (copied) */
    const char *api_key;  /* copied into locked memory of the account; never logged */
    const char *api_secret;
    int recv_window_ms;   /* 0 = 5000 */
    int timeout_ms;       /* total REST timeout, 0 = 5000 */
    /* Leader stream liveness: a ping every stream_ping_ms, and a link that brings nothing (no
     * data, no pong) for stream_silence_ms is dead and reconnected (then backfilled). 0 = the
     * exchange's defaults (20 s; 40 s Binance, 60 s Bybit). silence must exceed ping. */
    int stream_ping_ms;
    int stream_silence_ms;
};

struct exch_account;

/* The account keeps a pointer to pool (not owned). */
struct exch_account *exch_account_new(const struct exch_account_cfg *cfg, struct rest_pool *pool);
struct exch_account *exch_account_free(struct exch_account *a); /* takes NULL, returns NULL */
const char *exch_account_name(const struct exch_account *a);
/* Server time minus local time, as last measured by exch_sync_time (0 before). */
int64_t exch_account_time_offset_ms(const struct exch_account *a);

/* Rate-limit usage the exchange last reported in this account's responses (-1 = not seen yet):
 * Binance X-MBX-USED-WEIGHT-1M (per IP) and X-MBX-ORDER-COUNT-10S / -1M (per account).
 * (Added by the REST helper, for the rate limiter.) */
struct exch_usage {
    int64_t used_weight_1m;
    int64_t order_count_10s;
    int64_t order_count_1m;
    int64_t updated_ms; /* wall clock ms of the last response that carried any of them, 0 = never */
};
void exch_account_usage(const struct exch_account *a, struct exch_usage *out);
/* Bybit's rate-limit headers as last seen on this account's responses (added by the Bybit
 * helper; a separate struct so the positional initialisers of exch_usage stay valid): the
 * X-Bapi-Limit (the endpoint's per-second limit), X-Bapi-Limit-Status (what is left of it) and
 * X-Bapi-Limit-Reset-Timestamp (ms) of the last response that carried them, -1 = not seen.
 * Bybit's limits are per endpoint: these describe whichever endpoint answered last. */
struct exch_bybit_usage {
    int64_t limit;
    int64_t remaining;
    int64_t reset_ms;
    int64_t updated_ms; /* wall clock ms, 0 = never */
};
void exch_account_bybit_usage(const struct exch_account *a, struct exch_bybit_usage *out);

/* ---- orders ---- */

enum exch_order_type { EXCH_MARKET = 0, EXCH_LIMIT_IOC = 1, EXCH_LIMIT_GTC = 2 };

struct exch_order_req {
    const char *symbol;
    enum mkt_side side;
    enum exch_order_type type;
    dec_t qty;
    dec_t price;          /* limit orders only */
    bool reduce_only;
    const char *client_id; /* [A-Za-z0-9_-]{1,36} */
    /* Position side (added for the copy engine). MKT_PS_BOTH (the zero value) = one-way account,
     * nothing sent, the original behaviour. MKT_PS_LONG / MKT_PS_SHORT = hedge-mode account:
     * positionSide is sent and reduce_only must be false (Binance refuses reduceOnly in hedge
     * mode; a SELL on LONG / BUY on SHORT closes by itself): both set -> -EINVAL. */
    enum mkt_pos_side pos_side;
};

enum exch_outcome {
    EXCH_OK = 0,        /* the exchange answered with an order (see status) */
    EXCH_REJECTED,      /* the exchange answered with an error code: the order does not exist */
    EXCH_NOT_FOUND,     /* query: the exchange confirmed there is no such order (-2013) */
    EXCH_UNKNOWN,       /* timeout, reset, 5xx, 503 "Unknown error": the order MAY exist; query first */
    EXCH_THROTTLED,     /* 429/418/-1003/-1015: not placed, back off (retry_after_ms if known) */
};

enum exch_order_status {
    EXCH_ST_NONE = 0, EXCH_ST_NEW, EXCH_ST_PARTIALLY_FILLED, EXCH_ST_FILLED, EXCH_ST_CANCELED,
    EXCH_ST_REJECTED, EXCH_ST_EXPIRED,
};

struct exch_order_result {
    enum exch_outcome outcome;
    enum exch_order_status status;  /* when outcome == EXCH_OK */
    char order_id[MKT_ORDER_ID_MAX]; /* the exchange's order id as text ("" = not known) */
    char client_id[MKT_CLIENT_ID_MAX];
    dec_t executed_qty;
    dec_t avg_price;
    int64_t update_time_ms;
    long http_status;              /* 0 if no HTTP response */
    int error_code;                /* exchange error code (e.g. -4164) or 0 */
    char error_msg[160];           /* exchange or transport message, never contains secrets */
    int64_t retry_after_ms;        /* EXCH_THROTTLED: from Retry-After, else 0 */
    int64_t sent_ns;               /* CLOCK_MONOTONIC ns the request was written to its connection
                                      (0 = never, or not known) */
};

typedef void (*exch_order_cb)(void *ud, const struct exch_order_result *r);

/* Market orders ask for the final result (newOrderRespType=RESULT); EXCH_LIMIT_IOC / _GTC send
 * type=LIMIT, timeInForce=IOC / GTC and price (required > 0). Returns 0 (cb will be called
 * exactly once) or a negative errno (cb will not be called). */
int exch_place_order(struct exch_account *a, const struct exch_order_req *req, exch_order_cb cb, void *ud);
int exch_query_order(struct exch_account *a, const char *symbol, const char *client_id,
                     exch_order_cb cb, void *ud);

/* Cancels an open order by client id. OK with the order's status after the cancel (CANCELED, or
 * its final status if it finished first), NOT_FOUND if the exchange has no such order (Binance
 * -2011 "Unknown order sent" / Bybit 110001), REJECTED for another error, UNKNOWN / THROTTLED as
 * for a place. Same contract as exch_place_order. */
int exch_cancel_order(struct exch_account *a, const char *symbol, const char *client_id,
                      exch_order_cb cb, void *ud);

/* Several orders in one request (Binance POST /fapi/v1/batchOrders, at most 5; Bybit POST
 * /v5/order/create-batch, at most 10 for linear). The callback runs once with n results, one per
 * request in the same order (each its own outcome: one order may be REJECTED while the others are
 * OK; a transport failure makes them all UNKNOWN). n must be 1..exch_batch_max(a), else -EINVAL. */
typedef void (*exch_batch_cb)(void *ud, const struct exch_order_result *v, size_t n);
size_t exch_batch_max(const struct exch_account *a);
int exch_place_batch(struct exch_account *a, const struct exch_order_req *reqs, size_t n,
                     exch_batch_cb cb, void *ud);

/* ---- account and market data ---- */

struct exch_status {
    int err;          /* 0, or negative errno / EXCH-level failure */
    long http_status;
    int error_code;
    char error_msg[160];
};

typedef void (*exch_instruments_cb)(void *ud, const struct exch_status *st,
                                    const struct mkt_instrument *v, size_t n);
typedef void (*exch_positions_cb)(void *ud, const struct exch_status *st,
                                  const struct mkt_position *v, size_t n);
typedef void (*exch_time_cb)(void *ud, const struct exch_status *st, int64_t offset_ms);

int exch_fetch_instruments(struct exch_account *a, exch_instruments_cb cb, void *ud);
/* The account's open positions (non-zero amounts only). One-way accounts: one entry per symbol,
 * pos_side BOTH, signed amount. Hedge-mode accounts: LONG and SHORT entries (SHORT amounts
 * negative, as Binance reports them). leverage is the symbol's leverage where the exchange
 * reports it with the position (Binance positionRisk v2), else 0. */
int exch_fetch_positions(struct exch_account *a, exch_positions_cb cb, void *ud);
/* Measures server time offset (midpoint of the round trip) and keeps it for signing. */
int exch_sync_time(struct exch_account *a, exch_time_cb cb, void *ud);

/* ---- account state for the copy engine (equity sizing, loss stops, leverage, position mode) ----
 * Same contract as above: 0 = cb runs exactly once on the loop; negative errno = cb never runs.
 * On failure st->err is set and the data pointers are NULL / counts 0 (see binance_rest.h for
 * the errors). */

/* Account totals in the margin asset (USDT), Binance GET /fapi/v3/account. */
struct exch_balance {
    dec_t equity;     /* wallet + unrealized PnL (totalMarginBalance) */
    dec_t wallet;     /* totalWalletBalance: deposits + realized PnL - fees */
    dec_t available;  /* availableBalance: what new orders may use */
    dec_t unrealized; /* totalUnrealizedProfit */
};
typedef void (*exch_balance_cb)(void *ud, const struct exch_status *st, const struct exch_balance *b);
int exch_fetch_account(struct exch_account *a, exch_balance_cb cb, void *ud);

/* Last traded price of every symbol (Binance GET /fapi/v2/ticker/price, public). Symbols without
 * a price yet (price 0) are left out. time_ms is the exchange's time of the price (0 if absent). */
struct exch_ticker {
    char symbol[MKT_SYMBOL_MAX];
    dec_t price;
    int64_t time_ms;
};
typedef void (*exch_tickers_cb)(void *ud, const struct exch_status *st, const struct exch_ticker *v,
                                size_t n);
int exch_fetch_tickers(struct exch_account *a, exch_tickers_cb cb, void *ud);

/* One-way or hedge mode (Binance: derived from GET /fapi/v2/positionRisk, shared with positions and
 * leverage, positionSide/dual only as a fallback; Bybit: from the position list). */
typedef void (*exch_pos_mode_cb)(void *ud, const struct exch_status *st, enum mkt_pos_mode mode);
int exch_fetch_position_mode(struct exch_account *a, exch_pos_mode_cb cb, void *ud);

/* The leverage of every symbol, flat or not (Binance GET /fapi/v2/positionRisk), one entry per
 * symbol, sorted by symbol (strcmp order, so bsearch works). */
struct exch_leverage {
    char symbol[MKT_SYMBOL_MAX];
    int leverage;
};
typedef void (*exch_leverages_cb)(void *ud, const struct exch_status *st,
                                  const struct exch_leverage *v, size_t n);
int exch_fetch_leverage(struct exch_account *a, exch_leverages_cb cb, void *ud);

/* Sets a symbol's leverage (Binance POST /fapi/v1/leverage, 1..125). The callback gets the
 * leverage the exchange granted (0 on failure; st->error_code e.g. -4028 for an invalid one).
 * -EINVAL at once for a bad symbol or a leverage outside 1..125. */
typedef void (*exch_set_leverage_cb)(void *ud, const struct exch_status *st, const char *symbol,
                                     int leverage);
int exch_set_leverage(struct exch_account *a, const char *symbol, int leverage,
                      exch_set_leverage_cb cb, void *ud);

/* The account's own fills (executions) of symbol with trade time >= since_ms, oldest first, as the
 * stream would have delivered them (received_ns 0): Binance GET /fapi/v1/userTrades (+ the order
 * fields the trade list lacks), Bybit GET /v5/execution/list. For the backfill after a stream
 * reconnect and at start-up; the caller dedupes by (account, symbol, trade_id). symbol NULL = all
 * symbols where the exchange allows it (Bybit), -EINVAL where it does not (Binance). */
typedef void (*exch_fills_cb)(void *ud, const struct exch_status *st, const struct mkt_fill *v,
                              size_t n);
int exch_fetch_fills(struct exch_account *a, const char *symbol, int64_t since_ms,
                     exch_fills_cb cb, void *ud);

/* Best bid and ask of every symbol (Binance GET /fapi/v1/ticker/bookTicker, Bybit tickers). */
struct exch_book_ticker {
    char symbol[MKT_SYMBOL_MAX];
    dec_t bid, ask;
    int64_t time_ms;
};
typedef void (*exch_book_tickers_cb)(void *ud, const struct exch_status *st,
                                     const struct exch_book_ticker *v, size_t n);
int exch_fetch_book_tickers(struct exch_account *a, exch_book_tickers_cb cb, void *ud);

/* ---- leader user stream ---- */

enum exch_stream_state { EXCH_STREAM_CONNECTING = 0, EXCH_STREAM_UP, EXCH_STREAM_DOWN };

struct exch_stream_cbs {
    /* ORDER_TRADE_UPDATE executions; f->pos_side is the order's position side (o.ps). */
    void (*on_fill)(void *ud, const struct mkt_fill *f);
    /* ACCOUNT_UPDATE position entries (one call per position), one-way (BOTH) and hedge-mode
     * (LONG / SHORT) alike; p->leverage is 0 (the event does not carry it). */
    void (*on_position)(void *ud, const struct mkt_position *p);
    /* State changes, with a short reason for logs ("listenKey expired", "connect failed: ..."). */
    void (*on_state)(void *ud, enum exch_stream_state st, const char *reason);
    /* A frame that could not be parsed: what and why (never dropped silently). */
    void (*on_bad_frame)(void *ud, const char *why, const char *frame, size_t len);
    void *ud;
    /* ACCOUNT_CONFIG_UPDATE with "ac": the account's leverage of symbol is now leverage (the
     * owner changed it). May be NULL (callers from before it existed leave it out). */
    void (*on_leverage)(void *ud, const char *symbol, int leverage);
};

struct exch_stream;

/* Counters of one stream since it was opened (for metrics). */
struct exch_stream_stats {
    uint64_t connects;   /* websocket handshakes completed */
    uint64_t reconnects; /* reconnects scheduled after a failure, close or silence */
    uint64_t silences;   /* links declared dead for silence (no data / no pong within the bound) */
    uint64_t messages;   /* frames received */
    uint64_t fills;      /* fills delivered */
    uint64_t key_lost;   /* Binance: listenKey expired or unknown (-1125 / listenKeyExpired) */
};
void exch_stream_get_stats(const struct exch_stream *s, struct exch_stream_stats *out);

/* Creates the listenKey over REST, connects the websocket on ctx (an lws context on the same
 * libuv loop), keeps the listenKey alive, reconnects with jittered exponential backoff. */
struct exch_stream *exch_stream_open(struct exch_account *a, struct lws_context *ctx,
                                     const struct exch_stream_cbs *cbs);
/* Closes the websocket and deletes the listenKey (best effort). Takes NULL, returns NULL. */
struct exch_stream *exch_stream_close(struct exch_stream *s);
enum exch_stream_state exch_stream_state(const struct exch_stream *s);

/* ---- public ticker stream (added by the ticker-stream helper; ticker_stream.h has the details) ----
 * Best bid / ask and last price of a few symbols, pushed: Binance <symbol>@bookTicker on the
 * public market route (last = the bid/ask midpoint: bookTicker has no last trade), Bybit
 * tickers.<symbol> on /v5/public/linear (snapshot + deltas merged). Public data: any account of
 * the exchange will do, its credentials are not used (only ws_url and the stream ping/silence
 * settings). Reconnects with jittered backoff and subscribes again. */
struct exch_ticker_update {
    char symbol[MKT_SYMBOL_MAX];
    dec_t last, bid, ask;
    int64_t time_ms; /* the exchange's event time (0 if absent) */
};

struct exch_ticker_stream_cbs {
    /* Every update of a symbol once its last, bid and ask are all known (the full state). */
    void (*on_ticker)(void *ud, const struct exch_ticker_update *t);
    /* May be NULL. CONNECTING / UP / DOWN with a short reason, as exch_stream_cbs.on_state. */
    void (*on_state)(void *ud, enum exch_stream_state st, const char *reason);
    void *ud;
    /* Optional: a frame that could not be parsed, what and why (the stream carries on). */
    void (*on_bad_frame)(void *ud, const char *why, const char *frame, size_t len);
};

struct exch_ticker_stream;

/* symbols: 1..100 exchange symbols ("BTCUSDT"), copied. Starts connecting at once on ctx (an lws
 * context on the account's loop). NULL + errno: EINVAL (bad symbol, n, cbs without on_ticker),
 * ENOTSUP, ENOMEM. The account must outlive the stream. */
struct exch_ticker_stream *exch_ticker_stream_open(struct exch_account *a, struct lws_context *ctx,
                                                   const char *const *symbols, size_t n,
                                                   const struct exch_ticker_stream_cbs *cbs);
/* No callback runs after it returns; not from inside the stream's own callbacks. Takes NULL,
 * returns NULL. */
struct exch_ticker_stream *exch_ticker_stream_close(struct exch_ticker_stream *s);
enum exch_stream_state exch_ticker_stream_state(const struct exch_ticker_stream *s);

#endif
