/* rest_pool: HTTP requests on pooled keep-alive connections, libcurl multi driven by a libuv loop
 * (EVENT-LOOP.md section 2). One pool per loop; every call and callback on that loop's thread.
 *
 * Guarantees:
 * - rest_pool_send() returning 0 means the callback runs exactly once, later, from the loop
 *   (never from inside rest_pool_send), with a response, a transport error, or -ECANCELED when
 *   the pool is freed first. A negative return means the callback never runs.
 * - Bodies and headers of a request are copied; the caller's buffers may go away at once.
 * - A request marked no_resend is sent at most once: libcurl silently re-sends a request when a
 *   reused keep-alive connection dies before any response byte arrives; for such a request the
 *   second attempt is aborted instead and the callback gets -EPIPE with maybe_sent = true (the
 *   first copy may have been processed). Use it for every non-idempotent request (orders).
 * - Plain http:// uses HTTP/1.1 keep-alive (h2c is broken in curl 7.88); https:// negotiates
 *   HTTP/2 where the server offers it (ALPN), multiplexing requests on one connection per host
 *   (new transfers wait for a connection being set up rather than open another), HTTP/1.1
 *   keep-alive otherwise. TCP_NODELAY, no signals, "Expect:" disabled.
 *
 * Connections: libcurl gets at most as many transfers of one host (scheme, host, port) as it can
 * run at once: max_host_connections, times 100 streams per connection once the host has answered
 * over HTTP/2. Further requests wait in the pool, per host: orders first, then queries, then
 * bulk, FIFO within a priority; queries and bulk together take at most half of a host's slots,
 * so orders always find room soon. A request leaves the pool (budgets charged, built, signed,
 * handed to curl) only when its host has a free slot, so its timeout (timeout_ms) starts then.
 *
 * Rate limits and circuit breaking (optional, per request; see rate_budget.h, breaker.h):
 * - A request with budgets (limits[]) is sent only when every budget admits its cost; until then
 *   it waits in the pool (never blocking the loop), in the order above, and a request waiting on
 *   a budget holds back later ones on that budget. A wait (for budgets or a connection slot)
 *   longer than max_wait_ms fails with -ETIMEDOUT, maybe_sent false, "not sent: ..." (found
 *   when the request is at the head of its host's queue, or on its budgets' timer).
 * - Every response feeds its budgets: usage headers (the budget's header names), and
 *   HTTP 429 / 403 block the budgets the request was charged on (all of its budgets if it was
 *   charged on none) until Retry-After, or an exponential backoff; HTTP 418 blocks all of its
 *   budgets (the IP budget too) until Retry-After or the default ban time. Nothing attached to
 *   a blocked budget is sent until the block ends.
 * - A request with a breaker is refused while the breaker is open: the callback gets
 *   -EHOSTDOWN, maybe_sent false, error "circuit open" (nothing was sent). When the cool-down
 *   ends, one probe goes out (this request if probe_ok, else a GET of the breaker's probe URL
 *   charged to this request's admission, and this request is refused); transport errors and
 *   5xx count as failures.
 * - build (optional) makes the request at the moment it leaves, after any wait, so signatures
 *   and timestamps are fresh. */
#ifndef CT_REST_POOL_H
#define CT_REST_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "breaker.h"
#include "rate_budget.h"

struct rest_pool;

enum rest_method { REST_GET = 0, REST_POST, REST_PUT, REST_DELETE };
struct rest_resp;

struct rest_pool_opts {
    long max_host_connections; /* per host (CURLMOPT_MAX_HOST_CONNECTIONS); 0 = 64 */
    long max_connects;         /* idle connections kept (CURLMOPT_MAXCONNECTS); 0 = 64 */
    long connect_timeout_ms;   /* 0 = 3000 */
    long default_timeout_ms;   /* total per request when the request says 0; 0 = 5000 */
    long max_idle_reuse_s;     /* do not reuse a connection idle longer than this (keeps clear
                                  of servers' keep-alive cut-offs, where a request races the
                                  close); 0 = 30 */
    size_t max_response_bytes; /* larger bodies fail with -EMSGSIZE; 0 = 16 MiB */
    unsigned max_idle_handles; /* easy handles kept on the free list; 0 = 64 */
    unsigned max_queued;       /* requests waiting in the pool (rate budgets or a connection slot);
                                  more -> -ENOBUFS; 0 = 100000 */
    /* Called for every request of a caller (not the pool's own probes) just before its callback,
     * sent or not: metrics by exchange and endpoint (the labels of struct rest_req). */
    void (*on_done)(void *ud, enum rest_method m, const char *exchange, const char *endpoint,
                    const struct rest_resp *r);
    void *on_done_ud;
};


#define REST_MAX_LIMITS 4

struct rest_req {
    enum rest_method method;
    const char *url;             /* full URL incl. query string (copied). With build: optional,
                                    the URL (or just scheme://host[:port]) the built request goes
                                    to: its host's slots are used, and a built URL on another
                                    host is refused (-EINVAL). Without it, built requests share
                                    one host of their own ("") */
    const char *const *headers;  /* NULL-terminated "Name: value" lines, or NULL (copied) */
    const char *body;            /* POST/PUT/DELETE body or NULL (copied; Content-Length is sent,
                                    also when empty) */
    size_t body_len;
    long timeout_ms;             /* total time limit; 0 = pool default */
    bool no_resend;              /* see the header comment: never let curl send it twice */
    /* Labels for rest_pool_opts.on_done, e.g. "binance-usdm" and "/fapi/v1/order": static
     * strings (not copied); NULL = "". */
    const char *exchange, *endpoint;

    /* ---- rate limits and circuit breaker (all optional; zero = none). The pool takes a
     * reference on each budget and on the breaker for the request's lifetime. ---- */
    struct rest_limit {
        struct rate_budget *budget; /* NULL = unused slot */
        int64_t cost;               /* units charged when the request is admitted (>= 0) */
    } limits[REST_MAX_LIMITS];
    struct breaker *breaker;
    enum rb_prio prio;           /* queue order while waiting (RB_PRIO_ORDER is 0) */
    bool probe_ok;               /* cheap and idempotent: may be the breaker's half-open probe */
    int64_t max_wait_ms;         /* longest wait for the budgets; 0 = as long as they need */
    /* Called when the request leaves (after any wait), with *out holding method, timeout_ms and
     * no_resend of this request: sets url, headers, body, body_len, pointing at memory that
     * stays valid until the response callback runs (e.g. inside ud). 0, or a negative errno:
     * the callback then gets that error with maybe_sent false. With build set, url/headers/
     * body given to rest_pool_send are ignored. */
    int (*build)(void *ud, struct rest_req *out);
};

struct rest_resp {
    int err;             /* 0: a complete HTTP response arrived (any status). Otherwise negative:
                            -ETIMEDOUT, -ECONNREFUSED (connect failed), -EHOSTUNREACH (resolve or
                            route), -EPIPE (connection lost / reset / resend refused),
                            -EMSGSIZE (body too big), -ECANCELED (pool freed), -EPROTO (other);
                            never sent (maybe_sent false): -EHOSTDOWN (circuit open),
                            -ETIMEDOUT (rate-limit wait over max_wait_ms), build's error */
    int curl_code;       /* CURLcode of the transfer */
    const char *error;   /* transport error text, "" when err == 0; never contains headers */
    bool maybe_sent;     /* false only when no byte of the request can have reached the server
                            (failed before a connection was ready for it) */
    long http_status;    /* 0 when no response status line arrived */
    const char *body;    /* response body, NUL-terminated (body_len excludes the NUL); never NULL */
    size_t body_len;
    /* Parsed response headers (-1 when absent). Retry-After in seconds or HTTP-date -> ms. */
    int64_t retry_after_ms;
    int64_t used_weight_1m;    /* X-MBX-USED-WEIGHT-1M */
    int64_t order_count_10s;   /* X-MBX-ORDER-COUNT-10S */
    int64_t order_count_1m;    /* X-MBX-ORDER-COUNT-1M */
    int64_t waited_ms;         /* time spent waiting for rate budgets before it was sent */
    /* Timing from libcurl, microseconds since the transfer started (0 if not reached). */
    int64_t pretransfer_us;    /* request about to be sent */
    int64_t ttfb_us;           /* first response byte */
    int64_t total_us;
    int64_t sent_ns;           /* CLOCK_MONOTONIC ns when the request was about to be written to
                                  its connection (curl's pre-request callback); 0 = never */
    /* All response header lines of the final response, raw ("Name: value\r\n"...); see
     * rest_resp_header(). */
    const char *raw_headers;
    size_t raw_headers_len;
};

typedef void (*rest_cb)(void *ud, const struct rest_resp *r);

struct rest_pool_stats {
    uint64_t requests;            /* accepted by rest_pool_send */
    uint64_t completed;           /* callbacks delivered */
    uint64_t transport_errors;    /* callbacks with err != 0 (incl. cancelled) */
    uint64_t connections_opened;  /* sockets opened for connections (reuse keeps it low) */
    uint64_t connections_closed;
    uint64_t resends_refused;     /* no_resend requests curl wanted to send a second time */
    uint32_t in_flight;           /* in curl's hands now */
    uint32_t idle_handles;
    uint32_t queued;              /* waiting in the pool now (rate budgets or a connection slot) */
    uint64_t deferred;            /* requests that had to wait for a budget */
    uint64_t wait_timeouts;       /* failed after max_wait_ms */
    uint64_t breaker_rejects;     /* refused by an open circuit */
    uint64_t probes;              /* probe requests of the pool's own (breaker probe URL) */
    uint64_t throttled;           /* 429 / 403 answers */
    uint64_t bans;                /* 418 answers */
    uint32_t queued_orders;       /* of queued: orders (RB_PRIO_ORDER) */
    uint32_t in_curl_host_max;    /* most transfers of one host in curl's hands at once, ever */
};

/* NULL on allocation or libcurl init failure. opts may be NULL (all defaults).
 * Each pool calls curl_global_init and, when its memory is finally released, curl_global_cleanup
 * (libcurl counts them). With several loop threads, call curl_global_init once in main() before
 * starting them so the count never drops to zero while another thread initialises. */
struct rest_pool *rest_pool_new(uv_loop_t *loop, const struct rest_pool_opts *opts);
/* Cancels every request in flight: each callback runs once, inside this call, with
 * err = -ECANCELED (maybe_sent tells whether it may already have reached the server).
 * The libuv handles close asynchronously: run the loop afterwards so their memory is freed.
 * Safe to call from a rest callback. Takes NULL, returns NULL. */
struct rest_pool *rest_pool_free(struct rest_pool *p);

/* 0, or -EINVAL (bad request), -ENOMEM, -ESHUTDOWN (pool being freed), -EIO (curl refused),
 * -ENOBUFS (too many requests waiting for budgets). */
int rest_pool_send(struct rest_pool *p, const struct rest_req *req, rest_cb cb, void *ud);

void rest_pool_get_stats(const struct rest_pool *p, struct rest_pool_stats *out);
/* The host of url (NULL: the host of built requests sent without a URL): its transfers in curl's
 * hands and waiting in the pool now. 0, or -ENOENT when nothing has been sent to it. */
int rest_pool_host_load(const struct rest_pool *p, const char *url, uint32_t *in_curl,
                        uint32_t *queued);
uv_loop_t *rest_pool_loop(const struct rest_pool *p);

/* Value of response header `name` (case-insensitive), trimmed, not NUL-terminated; NULL if
 * absent. */
const char *rest_resp_header(const struct rest_resp *r, const char *name, size_t *len);

/* Retry-After value (delta seconds or HTTP-date) -> milliseconds from now_s; -1 if malformed. */
int64_t rest_parse_retry_after(const char *v, size_t len, int64_t now_s);

#endif
