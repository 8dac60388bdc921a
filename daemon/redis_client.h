/* redis_client: one hiredis 0.14 async connection on the daemon's libuv loop, kept alive by
 * itself. Nothing here ever blocks and nothing on the hot path waits for Redis: writes are
 * fire-and-forget and simply dropped (and counted) while Redis is away.
 *
 * - Connects to "unix:/path", "a.b.c.d:port" or "[v6]:port" (numeric only: hiredis resolves
 *   names with a blocking getaddrinfo).
 * - A connection counts as up once connect succeeded AND a first PING was answered, so a hung
 *   server whose kernel still accepts connections is not reported as up.
 * - Health check: a PING every ping_interval_ms; no reply within ping_timeout_ms (or no
 *   connect + PONG within connect_timeout_ms) frees the context and reconnects. This is what
 *   catches a SIGSTOPped or wedged server: hiredis 0.14 async has no timeouts of its own.
 * - Reconnects with backoff backoff_min_ms doubling to backoff_max_ms, reset once up.
 * - Contexts are only ever freed from our own timers or from rds_free, never from inside one of
 *   the context's callbacks.
 *
 * Single-threaded: every call from the loop thread. */
#ifndef CT_REDIS_CLIENT_H
#define CT_REDIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rds;

struct rds_opts {
    unsigned ping_interval_ms;   /* 0 = 1000 */
    unsigned ping_timeout_ms;    /* 0 = 300 */
    unsigned connect_timeout_ms; /* connect + first PONG; 0 = 1000 */
    unsigned backoff_min_ms;     /* 0 = 50 */
    unsigned backoff_max_ms;     /* 0 = 5000 */
    unsigned max_outstanding;    /* commands awaiting a reply before new ones are refused;
                                    0 = 4096 (deep pipelines only slow hiredis 0.14 down) */
    /* Optional: told when the connection comes up (up = true, why = NULL) or goes down or a
     * connect attempt fails (up = false, why = hiredis' error text or "ping timeout" etc.). For
     * the top level to log. Must not call rds_free. */
    void (*on_state)(void *ud, bool up, const char *why);
    void *ud;
};

struct rds_stats {
    uint64_t sent;             /* SET/GET/PTTL/DEL handed to hiredis */
    uint64_t errors;           /* error replies, and commands lost with a connection */
    uint64_t dropped;          /* commands refused: not connected or too many outstanding */
    uint64_t reconnects;       /* times the connection came back up after being up before */
    uint64_t connect_failures; /* attempts that failed (refused, no PONG in time, ...) */
    uint64_t ping_timeouts;    /* health checks that gave up on a connected server */
};

/* Creates the client and starts connecting on the next loop iteration. NULL with errno EINVAL
 * (address not "unix:/path" or numeric "ip:port") or ENOMEM. opts may be NULL. */
struct rds *rds_new(uv_loop_t *loop, const char *addr, const struct rds_opts *opts);

/* Frees the connection at once: pending rds_get callbacks run inside this call with -ECANCELED.
 * The uv handles close asynchronously, so run the loop afterwards before uv_loop_close. Must not
 * be called from an rds callback (get callback, on_state). Takes NULL; returns NULL. */
struct rds *rds_free(struct rds *r);

/* True while connected and answering PINGs. */
bool rds_connected(const struct rds *r);

/* SET key value PX ttl_ms, fire-and-forget (the reply only feeds the counters). Key and value
 * are copied (binary-safe; key is NUL-terminated). 0 = queued; -ENOTCONN or -ENOBUFS = dropped
 * (counted); -EINVAL for ttl_ms 0 or NULL key. */
int rds_set_px(struct rds *r, const char *key, const void *value, size_t len, uint64_t ttl_ms);

/* Called exactly once per accepted rds_get, never from inside rds_get itself.
 *   err 0, value != NULL: the value (len bytes, also NUL-terminated; valid during the call only)
 *   err 0, value == NULL: no such key
 *   err < 0: -ECONNRESET (connection lost), -ETIMEDOUT (health check gave up on the server),
 *            -EPROTO (error reply or a non-string value), -ECANCELED (rds_free) */
typedef void (*rds_get_cb)(void *ud, int err, const char *value, size_t len);

/* GET key. 0 = cb will be called; -ENOTCONN, -ENOBUFS (counted as dropped), -EINVAL or
 * -ENOMEM = cb will not be called. */
int rds_get(struct rds *r, const char *key, rds_get_cb cb, void *ud);

/* GET key and PTTL key, pipelined back to back (one round trip), for a reader that must know
 * how old a value is (a second-level cache: the remaining TTL tells when it was written).
 * Called exactly once per accepted request, never from inside rds_get_pttl itself, with err and
 * value as for rds_get_cb plus pttl_ms as Redis answered it: > 0 remaining ms, -1 no expiry,
 * -2 the key was gone by the time PTTL ran (value may still be set: treat it as expired).
 * Counts as two commands against max_outstanding. */
typedef void (*rds_get_pttl_cb)(void *ud, int err, const char *value, size_t len,
                                int64_t pttl_ms);

/* 0 = cb will be called; -ENOTCONN, -ENOBUFS (counted as dropped), -EINVAL or -ENOMEM = cb will
 * not be called. */
int rds_get_pttl(struct rds *r, const char *key, rds_get_pttl_cb cb, void *ud);

/* DEL key, fire-and-forget like rds_set_px. 0 = queued; -ENOTCONN or -ENOBUFS = dropped
 * (counted); -EINVAL for a NULL key. */
int rds_del(struct rds *r, const char *key);

void rds_get_stats(const struct rds *r, struct rds_stats *out);

#endif
