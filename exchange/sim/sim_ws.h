/* sim_ws: the simulator's websocket server — libwebsockets as a guest on the libuv loop
 * (LWS_SERVER_OPTION_LIBUV, foreign loop). lws does not listen itself: sim_http accepts the TCP
 * connection, and when a request is a websocket upgrade it hands the socket plus the bytes it
 * already read to sws_adopt(). Connections are grouped in channels (one per account stream);
 * sws_chan_send() queues one text frame for every connection of a channel. Server pings go out
 * every ping_interval_s through lws' validity policy; a connection that has not answered with a
 * pong ping_interval_s + 600 s after the last pong (10 minutes after the ping, like Binance) is
 * dropped.
 *
 * Teardown (EVENT-LOOP.md §1): sws_destroy_begin(), close your own handles, run the loop until it
 * is idle, sws_destroy_finish(), run the loop once more; channels may be freed only after that. */
#ifndef CT_SIM_WS_H
#define CT_SIM_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct sws;
struct sws_chan;

/* Maps an upgrade request to its channel: path is the decoded request path, key_arg the value of
 * a "listenKey" query argument or NULL. NULL refuses the connection. */
typedef struct sws_chan *(*sws_resolve_fn)(void *ud, const char *path, const char *key_arg);

struct sws *sws_new(uv_loop_t *loop, int ping_interval_s, sws_resolve_fn resolve, void *ud);
/* Takes ownership of fd (closed on failure). Returns 0 or -EIO. */
int sws_adopt(struct sws *ws, int fd, const char *bytes, size_t len);
void sws_destroy_begin(struct sws *ws);
/* Returns NULL; frees ws once the lws context is gone. */
struct sws *sws_destroy_finish(struct sws *ws);

struct sws_chan *sws_chan_new(struct sws *ws);
/* Detaches any remaining connections (they keep running without a channel). */
struct sws_chan *sws_chan_free(struct sws_chan *ch);
size_t sws_chan_count(const struct sws_chan *ch);
/* Queue a text frame to every connection of the channel. Returns the number of connections it was
 * queued on, or -ENOMEM. */
int sws_chan_send(struct sws_chan *ch, const char *text, size_t len);
/* Detach every connection from the channel (they receive nothing more from it); with close, also
 * close them (normal closure, after the frames already queued), else they stay open and idle. */
void sws_chan_close_all(struct sws_chan *ch, bool close);

/* ---- fault injection (sim_fault) ----
 * Channels are labelled with their account's name; faults address an account's channels by it
 * (every protocol's private stream of that account). label NULL below = every channel. */
int sws_chan_set_label(struct sws_chan *ch, const char *label); /* copied; 0 or -ENOMEM */
#define SWS_SEND_DUP 1u  /* queue the frame twice */
#define SWS_SEND_HOLD 2u /* hold the frame and send it after the channel's next one (or ~2 s later) */
/* Asked once per sws_chan_send on a labelled channel with connections (and nothing held). */
typedef unsigned (*sws_send_hook_fn)(void *ud, const char *label);
void sws_set_send_hook(struct sws *ws, sws_send_hook_fn fn, void *ud);
/* Drop the connections now, without a close frame (the TCP connection just ends). Returns how
 * many. */
size_t sws_drop(struct sws *ws, const char *label);
/* Silence the current connections: they stay open but get nothing — no frames (lost, as on a
 * dead connection), no pings, and what they send is not read (so their pings get no pong) —
 * for duration_ms (<= 0: until sws_unsilence). Returns how many. */
size_t sws_silence(struct sws *ws, const char *label, int64_t duration_ms);
size_t sws_unsilence(struct sws *ws, const char *label);
/* Frames lost to silenced connections so far (every channel with this label). */
uint64_t sws_silenced_frames(const struct sws *ws, const char *label);

#endif
