/* sim_by_ws: the simulator's Bybit v5 websockets, in an lws context of their own (a guest on the
 * same libuv loop as sim_ws' context; sim_http hands over upgrade requests for /v5/ paths).
 *
 * Private (/v5/private[?max_active_time=30s..600s|1m..10m]): the client sends
 *   {"op":"auth","args":[apiKey, expires, hex HMAC-SHA256(secret, "GET/realtime" + expires)]}
 * and then {"op":"subscribe","args":["order","execution","position","wallet"]} (or the categorised
 * "order.linear", "execution.linear", "position.linear"; the two forms cannot be mixed in one
 * request); {"op":"ping"} gets {"op":"pong","args":["<ms>"],...}. Account events are published
 * with sbyws_publish() to the subscribed connections of that account. A private connection that
 * has not authenticated within auth_timeout_ms is closed (it never receives anything); any
 * connection silent (no client message) for max_active_time (default 600 s) is closed.
 *
 * Public (/v5/public/linear): {"op":"subscribe","args":["tickers.BTCUSDT",...]} -> an ack, a
 * "snapshot" per topic, then a "delta" (lastPrice, markPrice, indexPrice, bid1Price, ask1Price,
 * tickDirection) within 100 ms of every price change of the book.
 *
 * Teardown as sim_ws (EVENT-LOOP.md §1): sbyws_destroy_begin(), run the loop until idle,
 * sbyws_destroy_finish(). */
#ifndef CT_SIM_BY_WS_H
#define CT_SIM_BY_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sim_book.h"

/* Private topics (all-in-one names; a connection may use the categorised ".linear" form). */
enum {
    SBYWS_ORDER = 1u << 0,
    SBYWS_EXECUTION = 1u << 1,
    SBYWS_POSITION = 1u << 2,
    SBYWS_WALLET = 1u << 3,
};

struct sbyws;

/* book: accounts (keys, secrets) for auth and symbols for tickers; it must outlive the sbyws. */
struct sbyws *sbyws_new(uv_loop_t *loop, struct sbook *book, int auth_timeout_ms);
/* Takes ownership of fd (closed on failure), a socket whose pending input starts with the
 * upgrade request bytes[0..len). Returns 0 or -EIO. */
int sbyws_adopt(struct sbyws *w, int fd, const char *bytes, size_t len);
void sbyws_destroy_begin(struct sbyws *w);
struct sbyws *sbyws_destroy_finish(struct sbyws *w);

/* Does an authenticated connection of account acct (book index) subscribe to topic? */
bool sbyws_wants(const struct sbyws *w, size_t acct, unsigned topic);
/* Sends {"id","topic","creationTime","data":[data]} (data: the comma-separated items, without
 * the brackets) to every connection of acct subscribed to topic. Returns the number of
 * connections it was queued on. */
int sbyws_publish(struct sbyws *w, size_t acct, unsigned topic, const char *data, size_t len, int64_t now_ms);
/* ---- fault injection (sim_fault; the admin API calls these through sim_by.h) ----
 * Per published message sbyws_publish asks sfault_match_ws_event(t, account name): ws_duplicate
 * sends it twice, ws_reorder holds it on each connection and sends it after that connection's
 * next topic message (or alone after 2 s). Only topic messages are affected, not op replies. */
struct sfault_table;
void sbyws_set_faults(struct sbyws *w, struct sfault_table *t); /* not owned; NULL: none */
/* acct below: a book account index, or SBYWS_ALL = every private connection (authenticated or
 * not). Public connections are never affected. */
#define SBYWS_ALL SIZE_MAX
/* Drop acct's private connections now, without a close frame (the TCP connection just ends);
 * they no longer count in sbyws_count. Returns how many. */
size_t sbyws_drop(struct sbyws *w, size_t acct);
/* Silence acct's current private connections: they stay open but get nothing (topic messages
 * are lost and counted, frames already queued too) and their input is not read (no answer to
 * {"op":"ping"}, no pong to websocket pings; what lws had already read is discarded) until the
 * wall-clock time until_ms (ms since the epoch, CLOCK_REALTIME like the fault table; <= 0: until
 * sbyws_unsilence). Input sent meanwhile is read afterwards. New connections are live. Returns
 * how many. */
size_t sbyws_silence(struct sbyws *w, size_t acct, int64_t until_ms);
size_t sbyws_unsilence(struct sbyws *w, size_t acct);
/* Frames lost to silenced connections of acct so far. */
uint64_t sbyws_silenced_frames(const struct sbyws *w, size_t acct);

/* Authenticated private connections of acct (dropped ones excluded), and all private / public
 * connections. */
size_t sbyws_count(const struct sbyws *w, size_t acct);
size_t sbyws_private_count(const struct sbyws *w);
size_t sbyws_public_count(const struct sbyws *w);

#endif
