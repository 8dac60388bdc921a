/* ticker_stream: public ticker websockets (no auth) behind exch_ticker_stream_open (exchange.h).
 *
 * Binance USD-M (exchange-protocols.md A5): one connection in combined mode,
 *   <base>/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker
 * where <base> is the account's ws_url with a trailing "/private" replaced by "/public" (the 2026
 * routed host serves the high-frequency bookTicker there), any other ws_url as it is (the legacy
 * host and the simulator serve /stream at the root). bookTicker carries the best bid and ask but no
 * last trade price: `last` is the MIDPOINT (bid + ask) / 2, exact. (A true last price needs
 * <symbol>@ticker on the separate "/market" route, updated every 2 s only; the tickers serve for
 * sizing and price checks, where the live mid is the better number.) The subscription is in the
 * URL, so every reconnect resubscribes by itself.
 *
 * Bybit v5 linear (B5, B6): the account's ws_url with "/v5/private" replaced by
 * "/v5/public/linear" (a ws_url without it gets "/v5/public/linear" appended, "/v5" ->
 * "/v5/public/linear"); on every open {"op":"subscribe","args":["tickers.BTCUSDT",...]} in
 * requests of at most TK_BYBIT_ARGS_PER_REQ topics; a snapshot replaces a symbol's state, a delta
 * changes only the fields it carries (empty strings count as absent); {"op":"ping"} every ping_ms.
 *
 * Delivery: on_ticker once a symbol's bid, ask and last are all known, then on every update of
 * one of them (with the full current state). Symbols not asked for are ignored. State: CONNECTING
 * while connecting / subscribing, UP when Binance's socket opens or every Bybit subscribe request
 * is acknowledged, DOWN with a reason on loss or refusal (a refused subscription is retried on a
 * fresh connection after a jittered, doubling delay up to 30 s, never in a tight loop).
 * Reconnects use ws_client's jittered exponential backoff.
 *
 * Frames that do not parse go to the optional on_bad_frame and are skipped.
 *
 * Threading: the lws context's loop thread; close not from inside the stream's own callbacks. */
#ifndef CT_TICKER_STREAM_H
#define CT_TICKER_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exchange.h"

#define TK_MAX_SYMBOLS 100       /* per stream (Binance: keeps the URL near 2 KB) */
#define TK_BYBIT_ARGS_PER_REQ 10 /* Bybit: topics per subscribe request (spot's limit; safe) */

/* ---- pure parsers ---- */

enum tk_kind {
    TK_OTHER = 0, /* a message we do not use (another stream, LIST_SUBSCRIPTIONS, ...) */
    TK_TICKER,    /* t and has are set */
    TK_SUB_ACK,   /* Binance {"result":null,"id":N} / {"error":{..},"id":N}; Bybit op subscribe */
    TK_PONG,      /* Bybit {"op":"ping","ret_msg":"pong"} (public) or {"op":"pong"} */
};

#define TK_HAS_LAST 1u
#define TK_HAS_BID 2u
#define TK_HAS_ASK 4u
#define TK_HAS_ALL (TK_HAS_LAST | TK_HAS_BID | TK_HAS_ASK)

struct tk_event {
    enum tk_kind kind;
    bool snapshot;  /* TK_TICKER, Bybit: a snapshot (replaces the state); Binance: always false */
    bool success;   /* TK_SUB_ACK */
    char msg[128];  /* TK_SUB_ACK: Bybit ret_msg / Binance error msg (sanitised) */
    int64_t id;     /* TK_SUB_ACK, Binance: the request id (-1 if absent) */
    unsigned has;   /* TK_TICKER: TK_HAS_* of the fields present */
    struct exch_ticker_update t; /* TK_TICKER: symbol, the present fields, time_ms (0 if none) */
};

/* One Binance market message, raw or in the combined envelope {"stream","data"}: bookTicker
 * (b, a -> bid, ask; E, else T -> time), 24hrTicker (c -> last; E), control replies. 0, or
 * -EINVAL with err naming the field ("bookTicker: b: not a decimal", "invalid JSON: ..."). */
int tk_parse_binance(const char *frame, size_t len, struct tk_event *ev, char *err, size_t errlen);
/* One Bybit public message: tickers.<symbol> snapshot / delta (lastPrice, bid1Price, ask1Price;
 * ts), subscribe replies, pongs. Same contract. */
int tk_parse_bybit(const char *frame, size_t len, struct tk_event *ev, char *err, size_t errlen);

/* Applies a TK_TICKER event to a symbol's state (a snapshot first clears it). */
void tk_merge(struct exch_ticker_update *st, unsigned *has, const struct tk_event *ev);
/* (bid + ask) / 2, exact (one more decimal at most). 0 or -ERANGE. */
int tk_mid(dec_t bid, dec_t ask, dec_t *out);

/* URLs and frames as described above. Length written, or -EINVAL (bad symbol: not
 * [A-Za-z0-9_-]{1,MKT_SYMBOL_MAX-1}, n 0 or > TK_MAX_SYMBOLS) / -ENOSPC. */
int tk_binance_url(const char *ws_url, const char *const *symbols, size_t n, char *out, size_t cap);
int tk_bybit_url(const char *ws_url, char *out, size_t cap);
/* {"op":"subscribe","args":["tickers.A","tickers.B"]} for symbols[0..n). */
int tk_bybit_subscribe(const char *const *symbols, size_t n, char *out, size_t cap);

#endif
