/* ws_client: one outgoing websocket (ws:// or wss://) on an existing lws context that runs as a
 * guest on a libuv loop (EVENT-LOOP.md section 1). It keeps itself connected: reconnects with
 * jittered exponential backoff after a failed connect, a close, an oversized message or a silent
 * peer (no PONG within silence_secs), until it is freed.
 *
 * Threading and re-entrancy: every call on the context's loop thread. Callbacks run from inside
 * lws callbacks. From a callback you may call ws_client_send_text, ws_client_set_url,
 * ws_client_reconnect_now and ws_client_stats, and free OTHER clients, but never ws_client_free
 * on the client whose callback is running (it asserts). Free every client before the first
 * lws_context_destroy of its context.
 *
 * The context must have been created with LWS_SERVER_OPTION_LIBUV and
 * LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT (needed for wss even on a plain vhost). With
 * LWS_SERVER_OPTION_EXPLICIT_VHOSTS the clients share one non-listening client vhost per context
 * ("ct-ws-client"), created on first use by ws_client_vhost(). */
#ifndef CT_WS_CLIENT_H
#define CT_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lws_context;
struct lws_vhost;
struct ws_client;

struct ws_client_opts {
    const char *url;         /* ws://host[:port][/path[?query]] or wss://...; copied */
    bool insecure_tls;       /* wss: accept self-signed certificates and skip the host name
                                check. Local simulator only; never for a real exchange. */
    uint16_t ping_secs;      /* send a PING this long after the last PONG (or the open); 0 = 30 */
    uint16_t silence_secs;   /* no PONG for this long after the last one: the link is dead, hang up
                                and reconnect. Must exceed ping_secs; 0 = 2 * ping_secs */
    uint32_t backoff_min_ms; /* first reconnect delay; 0 = 250 */
    uint32_t backoff_max_ms; /* the delay doubles up to this; 0 = 30000. Each delay is jittered
                                by +-20 %. */
    uint32_t stable_ms;      /* a connection that stayed open this long resets the backoff;
                                0 = 10000 */
    size_t max_message;      /* a reassembled message larger than this is an error (close with
                                1009, reconnect); 0 = 1 MiB */
    size_t max_send_queue;   /* bytes queued for sending; 0 = 1 MiB */

    /* All optional. on_connecting: a connect attempt starts (first one and every retry).
     * on_open: the websocket handshake completed. on_message: one complete message (text or
     * binary; fragments reassembled); msg is NUL-terminated for convenience and valid only during
     * the call. on_close: the connection closed or the connect attempt failed, with a short
     * reason ("connect failed: ...", "peer closed: 1000 ...", "message too large", ...); a
     * retry is already scheduled when it is called. */
    void (*on_connecting)(void *ud);
    void (*on_open)(void *ud);
    void (*on_message)(void *ud, const char *msg, size_t len);
    void (*on_close)(void *ud, const char *reason);
    void *ud;
};

struct ws_client_stats {
    uint64_t connects;   /* handshakes completed */
    uint64_t reconnects; /* retries scheduled after a failure or close */
    uint64_t messages;   /* complete messages received */
    uint64_t bytes;      /* payload bytes of those messages */
    uint64_t failures;   /* connect attempts that failed before the handshake completed */
    uint64_t sent;       /* messages written */
    uint64_t pongs;      /* PONGs received (answers to our idle pings) */
    uint64_t silences;   /* links hung up for silence (no PONG within the bound) */
};

/* 0 if url is a ws:// or wss:// URL this client can connect to, else -EINVAL. */
int ws_client_check_url(const char *url);

/* The shared client vhost of ctx, created on the first call. provided_ssl_ctx (an OpenSSL
 * SSL_CTX *, or NULL) is used only when this call creates the vhost: pass the daemon's own client
 * SSL_CTX there before the first ws_client_new when several lws contexts exist (EVENT-LOOP.md,
 * 4.1.6 SSL_CTX leak); NULL lets lws build one with the OS CA store. NULL + errno on failure. */
struct lws_vhost *ws_client_vhost(struct lws_context *ctx, void *provided_ssl_ctx);

/* Starts connecting at once (on the next loop iteration). NULL + errno (EINVAL, ENOMEM, ENOSPC
 * when too many distinct ping/silence pairs are in use) on failure. */
struct ws_client *ws_client_new(struct lws_context *ctx, const struct ws_client_opts *o);
/* Cancels timers, closes the connection (a normal close frame if it is open), drops queued
 * messages. No callback of c runs after it returns. Safe from a uv callback; NOT from inside
 * one of c's own callbacks. Takes NULL, returns NULL. */
struct ws_client *ws_client_free(struct ws_client *c);

/* Queues one text message for the open connection (one lws_write per WRITEABLE callback).
 * -ENOTCONN when not open (nothing is kept for the next connection: protocols that need
 * a login or subscription send it again from on_open), -ENOBUFS when the queue is full,
 * -ENOMEM. */
int ws_client_send_text(struct ws_client *c, const char *text, size_t len);
/* The next connect attempt uses url; the current connection is left alone. 0 or -EINVAL. */
int ws_client_set_url(struct ws_client *c, const char *url);
/* Closes the current connection (or abandons the attempt or the backoff wait) and connects again
 * at once, with the backoff reset. */
void ws_client_reconnect_now(struct ws_client *c);
bool ws_client_is_open(const struct ws_client *c);
struct ws_client_stats ws_client_stats(const struct ws_client *c);

#endif
