/* bybit_stream: the Bybit v5 private websocket (exchange-protocols.md B2.1, B4, B6) for a leader
 * account: connect <ws_url> (e.g. wss://stream.bybit.com/v5/private), send
 * {"op":"auth","args":[key, expires, sig]}, on success subscribe to ["order","execution",
 * "position"], then deliver `execution` (execType Trade, category linear) as mkt_fill and
 * `position` (category linear) as mkt_position through the exch_stream_cbs of exchange.h.
 *
 * Upkeep: {"op":"ping"} every ping_ms (Bybit cuts a private connection idle for 10 min and
 * recommends 20 s); a link that delivers nothing (no pong, no data) for silence_ms is dead and is
 * reconnected; ws_client also pings at the websocket level and hangs up a link without PONGs.
 * Reconnects use ws_client's jittered exponential backoff and re-authenticate. An auth refusal
 * (or no answer within auth_timeout_ms) puts the stream DOWN with the reason and retries on a
 * fresh connection after its own jittered backoff (doubling up to backoff_max_ms) -- never in a
 * tight loop against a refusing server.
 *
 * State: CONNECTING while connecting / authenticating / subscribing, UP once the subscription
 * is acknowledged, DOWN with a reason on loss. A stream that comes back UP after DOWN may have
 * missed events: the caller backfills with exch_fetch_fills (DESIGN.md invariant 5).
 *
 * Position side of fills: Bybit's execution carries no positionIdx. The stream keeps the
 * positionIdx last seen per symbol on the `position` and `order` topics (and, at open, the
 * account's mode from position/list) and derives LONG/SHORT in hedge mode from side and
 * closedSize (bybit_exec_apply_mode). Leverage: a `position` entry whose leverage differs from
 * the one last seen for that symbol calls on_leverage (not the first sighting).
 *
 * The all-in-one topics carry every category: entries whose category is not "linear" are
 * ignored (an entry without category is taken as linear).
 *
 * Threading: on the lws context's loop thread; close must not be called from inside one of the
 * stream's own callbacks. Close every stream before lws_context_destroy. */
#ifndef CT_BYBIT_STREAM_H
#define CT_BYBIT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bybit_rest.h"
#include "exchange.h"
#include "market.h"

/* ---- the pure frame parser ---- */

enum by_event_kind {
    BY_EV_OTHER = 0,   /* a topic or op we do not use (wallet, ...) */
    BY_EV_AUTH,        /* {"op":"auth","success":..,"ret_msg":..} */
    BY_EV_SUBSCRIBE,   /* {"op":"subscribe","success":..} */
    BY_EV_PONG,        /* {"op":"pong",...} (private) or {"op":"ping","ret_msg":"pong"} (public) */
    BY_EV_EXECUTION,
    BY_EV_POSITION,
    BY_EV_ORDER,
};

struct by_order_note { /* what the stream keeps of an `order` entry */
    char symbol[MKT_SYMBOL_MAX];
    int position_idx;  /* -1 when absent */
};

struct by_event {
    enum by_event_kind kind;
    bool success;              /* AUTH / SUBSCRIBE / PONG: "success" (true when absent on pong) */
    char ret_msg[128];         /* op replies (sanitised, truncated) */
    int64_t creation_time_ms;  /* topic messages: creationTime (0 if absent) */
    /* BY_EV_EXECUTION: the linear entries, Trade or not (malloc'd; see clear) */
    struct bybit_exec *execs;
    size_t n_execs;
    size_t n_skipped;          /* entries of another category */
    /* BY_EV_POSITION: linear entries */
    struct mkt_position *positions;
    size_t n_positions;
    /* BY_EV_ORDER: linear entries */
    struct by_order_note *orders;
    size_t n_orders;
};

/* Parses one frame. 0, or -EINVAL with err naming the message and the field ("execution:
 * data[0].execQty: not a decimal", "invalid JSON: ..."). Unknown topics and ops are BY_EV_OTHER.
 * ev is always clearable; call by_event_clear after use. */
int by_parse_event(const char *frame, size_t len, struct by_event *ev, char *err, size_t errlen);
void by_event_clear(struct by_event *ev);

/* The subscribe and ping requests the stream sends. */
#define BY_SUBSCRIBE_FRAME "{\"op\":\"subscribe\",\"args\":[\"order\",\"execution\",\"position\"]}"
#define BY_PING_FRAME "{\"op\":\"ping\"}"

/* ---- the stream ---- */

struct by_stream;

struct by_stream_cfg {
    const char *account; /* our account name, copied into every mkt_fill */
    const char *ws_url;  /* "wss://stream.bybit.com/v5/private", "ws://127.0.0.1:18080/v5/private" */
    /* Writes the auth frame for expires_ms into buf (bybit_sign_ws_auth + bybit_ws_auth_frame);
     * length or a negative errno. The stream wipes buf after sending. */
    int (*auth_frame)(void *auth_ud, int64_t expires_ms, char *buf, size_t cap);
    void *auth_ud;
    /* Optional: the account's position mode, asked once at open (seeds the mode of symbols not
     * yet seen). Same contract as exch_fetch_position_mode. */
    int (*fetch_mode)(void *auth_ud, exch_pos_mode_cb cb, void *ud);
    int64_t clock_offset_ms;     /* server - local, for expires */
    uint32_t expires_ahead_ms;   /* expires = now + offset + this; 0 = 10 s */
    bool insecure_tls;           /* wss to the local simulator only */
    uint32_t ping_ms;            /* {"op":"ping"} period; 0 = 20 s */
    uint32_t silence_ms;         /* nothing received this long: dead; 0 = 3 * ping_ms */
    uint32_t auth_timeout_ms;    /* no auth / subscribe answer: reconnect; 0 = 10 s */
    uint32_t backoff_min_ms;     /* websocket reconnect and auth-failure backoff; 0 = 250 ms */
    uint32_t backoff_max_ms;     /* 0 = 30 s */
    uint16_t ws_ping_secs;       /* websocket-level PING (ws_client); 0 = 20 */
    uint16_t ws_silence_secs;    /* 0 = 60 */
    size_t max_message;          /* 0 = 1 MiB */
};

/* NULL + errno (EINVAL: bad cfg or ws_url; ENOMEM). Starts connecting at once. */
struct by_stream *bybit_stream_open(const struct by_stream_cfg *cfg, struct lws_context *ctx,
                                    const struct exch_stream_cbs *cbs);
/* Closes the websocket; no callback runs after it returns. Takes NULL, returns NULL. */
struct by_stream *bybit_stream_close(struct by_stream *s);
enum exch_stream_state bybit_stream_state(const struct by_stream *s);

/* The exch_stream_open of a bybit-linear account: cfg from the account (ws_url, auth through
 * exch_account_sign_hex, position mode through exch_fetch_position_mode). */
struct by_stream *bybit_stream_open_account(struct exch_account *a, struct lws_context *ctx,
                                            const struct exch_stream_cbs *cbs);

struct by_stream_stats {
    uint64_t auths;         /* successful auths */
    uint64_t auth_failures; /* refusals and timeouts */
    uint64_t fills;
    uint64_t positions;
    uint64_t orders;
    uint64_t pings, pongs;
    uint64_t silences;      /* links declared dead for silence */
    uint64_t bad_frames;
    uint64_t skipped;       /* entries of other categories, non-Trade executions */
    uint64_t leverage_changes;
};
struct by_stream_stats bybit_stream_stats(const struct by_stream *s);
struct ws_client_stats;
void bybit_stream_ws_stats(const struct by_stream *s, struct ws_client_stats *out);

#endif
