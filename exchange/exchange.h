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
    int64_t order_id;
    char client_id[MKT_CLIENT_ID_MAX];
    dec_t executed_qty;
    dec_t avg_price;
    int64_t update_time_ms;
    long http_status;              /* 0 if no HTTP response */
    int error_code;                /* exchange error code (e.g. -4164) or 0 */
    char error_msg[160];           /* exchange or transport message, never contains secrets */
    int64_t retry_after_ms;        /* EXCH_THROTTLED: from Retry-After, else 0 */
};

typedef void (*exch_order_cb)(void *ud, const struct exch_order_result *r);

/* Market orders ask for the final result (newOrderRespType=RESULT). Returns 0 (cb will be called
 * exactly once) or a negative errno (cb will not be called). */
int exch_place_order(struct exch_account *a, const struct exch_order_req *req, exch_order_cb cb, void *ud);
int exch_query_order(struct exch_account *a, const char *symbol, const char *client_id,
                     exch_order_cb cb, void *ud);

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
int exch_fetch_positions(struct exch_account *a, exch_positions_cb cb, void *ud);
/* Measures server time offset (midpoint of the round trip) and keeps it for signing. */
int exch_sync_time(struct exch_account *a, exch_time_cb cb, void *ud);

/* ---- leader user stream ---- */

enum exch_stream_state { EXCH_STREAM_CONNECTING = 0, EXCH_STREAM_UP, EXCH_STREAM_DOWN };

struct exch_stream_cbs {
    void (*on_fill)(void *ud, const struct mkt_fill *f);
    /* ACCOUNT_UPDATE position entries (one call per position). */
    void (*on_position)(void *ud, const struct mkt_position *p);
    /* State changes, with a short reason for logs ("listenKey expired", "connect failed: ..."). */
    void (*on_state)(void *ud, enum exch_stream_state st, const char *reason);
    /* A frame that could not be parsed: what and why (never dropped silently). */
    void (*on_bad_frame)(void *ud, const char *why, const char *frame, size_t len);
    void *ud;
};

struct exch_stream;

/* Creates the listenKey over REST, connects the websocket on ctx (an lws context on the same
 * libuv loop), keeps the listenKey alive, reconnects with jittered exponential backoff. */
struct exch_stream *exch_stream_open(struct exch_account *a, struct lws_context *ctx,
                                     const struct exch_stream_cbs *cbs);
/* Closes the websocket and deletes the listenKey (best effort). Takes NULL, returns NULL. */
struct exch_stream *exch_stream_close(struct exch_stream *s);
enum exch_stream_state exch_stream_state(const struct exch_stream *s);

#endif
