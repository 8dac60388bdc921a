/* binance_stream: the Binance USD-M user data stream (exchange-protocols.md A4): listenKey over
 * REST, websocket <ws_url>/ws/<listenKey>, frames -> struct mkt_fill / mkt_position for the
 * exch_stream_cbs of exchange.h. exch_stream_open/close/state (exchange.h) are implemented here
 * on top of bn_stream_open with the account's listenKey calls and default timings.
 *
 * Upkeep: listenKey PUT every keepalive_ms (-1125 -> create a new key and reconnect);
 * listenKeyExpired -> the same; the connection is renewed every rotate_ms (Binance cuts it at
 * 24 h); after probe_after consecutive failed connects the key is checked with a PUT; the
 * websocket reconnects with jittered exponential backoff and treats a link without PONGs for
 * silence_secs as dead. State: CONNECTING while (re)connecting, UP once the websocket is open
 * with the current key, DOWN with a reason on loss. A stream that comes back UP after DOWN may
 * have missed events: the caller backfills over REST (DESIGN.md invariant 5).
 *
 * Threading: on the lws context's loop thread. exch_stream_close must not be called from inside
 * one of the stream's own callbacks. Close every stream before lws_context_destroy. */
#ifndef CT_BINANCE_STREAM_H
#define CT_BINANCE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exchange.h"
#include "exchange_internal.h"
#include "market.h"

#define BN_LISTEN_KEY_MAX 128 /* incl. NUL; Binance keys are 64 alphanumerics */

/* ---- the pure frame parser ---- */

enum bn_event_kind {
    BN_EV_OTHER = 0,    /* an event type we do not use (TRADE_LITE, ACCOUNT_CONFIG_UPDATE without
                           "ac" such as the multi-assets "ai", ...) */
    BN_EV_FILL,         /* ORDER_TRADE_UPDATE with o.x == "TRADE" */
    BN_EV_ORDER_UPDATE, /* ORDER_TRADE_UPDATE with any other o.x (NEW, CANCELED, EXPIRED,
                           CALCULATED, AMENDMENT): no fill */
    BN_EV_ACCOUNT_UPDATE,
    BN_EV_LISTEN_KEY_EXPIRED,
    BN_EV_LEVERAGE,     /* ACCOUNT_CONFIG_UPDATE with "ac": {"s": symbol, "l": leverage} */
};

/* Position side (o.ps / a.P[].ps). BOTH = one-way mode; LONG/SHORT = hedge mode. Same values
 * as enum mkt_pos_side, which the parser also fills in (fill.pos_side, pos.pos_side). */
enum bn_pos_side { BN_PS_BOTH = 0, BN_PS_LONG, BN_PS_SHORT };

struct bn_position {
    struct mkt_position pos; /* s, pa, ep, ps (pos_side); leverage 0 */
    enum bn_pos_side side;   /* ps */
};

struct bn_user_event {
    enum bn_event_kind kind;
    char type[32];         /* e (truncated) */
    int64_t event_time_ms; /* E (0 for BN_EV_OTHER without one) */
    /* BN_EV_FILL: everything but account and received_ns (the stream sets those). */
    struct mkt_fill fill;
    enum bn_pos_side fill_pos_side; /* o.ps of the fill (BOTH when absent) */
    char exec_type[16];             /* ORDER_TRADE_UPDATE: o.x (truncated) */
    char order_status[24];          /* ORDER_TRADE_UPDATE: o.X (truncated) */
    /* BN_EV_ACCOUNT_UPDATE: every a.P entry, hedge ones included (malloc'd; see clear). */
    struct bn_position *positions;
    size_t n_positions;
    char listen_key[BN_LISTEN_KEY_MAX]; /* BN_EV_LISTEN_KEY_EXPIRED */
    char leverage_symbol[MKT_SYMBOL_MAX]; /* BN_EV_LEVERAGE: ac.s */
    int leverage;                         /* BN_EV_LEVERAGE: ac.l (1..1000) */
};

/* Parses one user-stream frame. Returns 0, or -EINVAL with err naming the event and the field
 * ("ORDER_TRADE_UPDATE: o.l: not a decimal", "invalid JSON: ...") when the frame is not JSON,
 * not an object, or a field we need is missing or malformed. Unknown event types are
 * BN_EV_OTHER, not errors. ev is always left clearable; call bn_user_event_clear after use. */
int bn_parse_user_event(const char *frame, size_t len, struct bn_user_event *ev, char *err,
                        size_t errlen);
/* The same with jansson alone (bn_parse_user_event reads an ORDER_TRADE_UPDATE of the plain shape
 * with yajl): for fuzz_binance_stream's check that both agree. */
int bn_parse_user_event_tree(const char *frame, size_t len, struct bn_user_event *ev, char *err,
                             size_t errlen);
void bn_user_event_clear(struct bn_user_event *ev);

/* ---- the stream ---- */

/* The listenKey calls, replaceable for tests. Same contract as exch_listen_key_* in
 * exchange_internal.h: 0 = cb runs exactly once later; negative errno = cb never runs. */
struct bn_key_ops {
    int (*create)(void *key_ud, exch_listen_key_cb cb, void *ud);
    int (*keepalive)(void *key_ud, const char *listen_key, exch_listen_key_cb cb, void *ud);
    int (*remove)(void *key_ud, const char *listen_key, exch_listen_key_cb cb, void *ud);
};

struct bn_stream_cfg {
    const char *account; /* our account name, copied into every mkt_fill */
    const char *ws_url;  /* "wss://fstream.binance.com/private", "ws://127.0.0.1:18080" */
    const struct bn_key_ops *key_ops;
    void *key_ud;
    bool insecure_tls;           /* wss to the local simulator only */
    uint32_t keepalive_ms;       /* listenKey PUT period; 0 = 30 min */
    uint32_t keepalive_retry_ms; /* after a failed PUT (not -1125); 0 = 60 s */
    uint32_t rotate_ms;          /* reconnect after this long UP; 0 = 23 h */
    uint32_t key_retry_min_ms;   /* listenKey POST retry backoff; 0 = 1 s */
    uint32_t key_retry_max_ms;   /* 0 = 60 s */
    uint32_t ws_backoff_min_ms;  /* websocket reconnect backoff; 0 = 250 ms */
    uint32_t ws_backoff_max_ms;  /* 0 = 30 s */
    uint16_t ping_secs;          /* 0 = 20 */
    uint16_t silence_secs;       /* 0 = 40 */
    unsigned probe_after;        /* consecutive failed connects before a key check; 0 = 3 */
    size_t max_message;          /* 0 = 1 MiB */
};

/* NULL + errno (EINVAL: bad cfg or ws_url; ENOMEM; or the errno of the first create call). */
struct exch_stream *bn_stream_open(const struct bn_stream_cfg *cfg, struct lws_context *ctx,
                                   const struct exch_stream_cbs *cbs);

struct bn_stream_stats {
    uint64_t key_creates; /* listenKeys obtained */
    uint64_t keepalives;  /* successful PUTs */
    uint64_t key_lost;    /* -1125 or listenKeyExpired */
    uint64_t fills;
    uint64_t positions;
    uint64_t bad_frames;
    uint64_t rotations;
    uint64_t leverage_changes; /* ACCOUNT_CONFIG_UPDATE leverage events */
};
struct bn_stream_stats bn_stream_stats(const struct exch_stream *s);
/* The websocket client's counters (connects, reconnects, messages, bytes, ...). */
struct ws_client_stats;
void bn_stream_ws_stats(const struct exch_stream *s, struct ws_client_stats *out);

#endif
