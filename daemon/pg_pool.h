/* pg_pool: a pool of non-blocking libpq connections owned by one libuv loop.
 *
 * Connections are kept at `size` (connected at start, asynchronously, unless lazy), may grow by
 * `overflow` under load (the extra ones close after idle_timeout_ms idle), are replaced when
 * older than recycle_age_ms (at release, or while idle), and are checked before reuse:
 *  - always (free): an idle connection's socket stays watched, so a server-side close (restart,
 *    pg_terminate_backend) is seen when it happens and the connection is replaced at once; and
 *    at hand-out a non-blocking read + MSG_PEEK sees an EOF that the loop has not reported yet;
 *  - when idle longer than health_idle_ms: one round trip of a bare Sync message (the cheapest
 *    round trip of the protocol: no parse, no plan, no snapshot) with health_timeout_ms. It
 *    catches what the socket cannot show: a hung server or a path that died without FIN/RST.
 * A connection that fails a check is closed and replaced before anything is handed out.
 *
 * Acquirers wait in FIFO order, at most acquire_timeout_ms, then get -ETIMEDOUT and a message
 * ("no connection free within N ms ..." or "cannot connect: <libpq's message>"). Connect
 * failures back off exponentially with jitter (one attempt at a time while failing). Messages
 * never contain the conninfo (libpq's messages name host and port, never the password).
 *
 * Connections are in libpq pipeline mode. pgp_exec sends one statement or a batch of them with
 * one Sync (one implicit transaction) and times each statement: its time runs from when the
 * server could start it (sent, and the one before it answered) to its first result; a Flush
 * after each statement of a batch makes the server answer each one as soon as it is done (it
 * would otherwise hold every result until the Sync). Measured on the client: a loop stalled
 * while results arrive can shift time between neighbours. Statements slower than slow_stmt_ms
 * are reported through on_slow (this module logs nothing).
 *
 * Host names in conninfo are resolved synchronously by libpq: use a unix socket directory or a
 * numeric address (hostaddr=).
 *
 * Callbacks run from the loop, never from inside a pgp_* call, except pgp_free (every waiter
 * and pending exec gets -ECANCELED) and pgp_release of a connection with execs still pending
 * (those get -ECANCELED). From inside a callback any pgp_* call is allowed, including pgp_free.
 * Not thread-safe: everything belongs to the loop's thread. */
#ifndef CT_PG_POOL_H
#define CT_PG_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

struct pgp_prepare {
    const char *name; /* prepared on every new connection (PQsendPrepare), for pgp_stmt.prepared */
    const char *sql;
};

struct pgp_opts {
    unsigned size;               /* connections kept open; 0 = 4 */
    unsigned overflow;           /* extra connections allowed under load; 0 = none */
    unsigned idle_timeout_ms;    /* an extra connection idle this long is closed; 0 = 60000 */
    unsigned acquire_timeout_ms; /* longest an acquirer waits; 0 = 5000 */
    unsigned recycle_age_ms;     /* a connection older than this is closed at release (or while
                                  * idle) and replaced; each connection's age limit is jittered
                                  * down by up to 10% so they do not all go at once;
                                  * 0 = 3600000; UINT32_MAX ~ never (49 days) */
    unsigned health_idle_ms;     /* round-trip check before handing out a connection idle longer
                                  * than this; 0 = 10000; 1 = (almost) always */
    unsigned health_timeout_ms;  /* answer to the check within this, or closed; 0 = 2000 */
    unsigned connect_timeout_ms; /* connect + session setup; 0 = 5000 */
    unsigned stmt_timeout_ms;    /* an exec not answered within this: the connection is closed
                                  * (the exec gets -ETIMEDOUT); 0 = 30000. The server finishes the
                                  * statement before it notices: also set statement_timeout in
                                  * session_sql if that matters. */
    unsigned backoff_min_ms;     /* reconnect delay after a failed connect, doubled per failure,
                                  * jittered; 0 = 50 */
    unsigned backoff_max_ms;     /* 0 = 5000 */
    unsigned slow_stmt_ms;       /* statements slower than this go to on_slow; 0 = 100 */
    unsigned max_waiters;        /* pgp_acquire refuses beyond this; 0 = 10000 */
    bool lazy;                   /* do not connect `size` connections at start: connect on demand
                                  * (then keep up to `size`) */
    const char *application_name; /* overrides the conninfo's; NULL = conninfo's, else
                                   * "copytrader" */
    /* Run on every new connection before it is handed out, in one Sync (a failure fails the
     * connect): e.g. "SET synchronous_commit = off", and statements to prepare. Copied. */
    const char *const *session_sql;
    size_t n_session_sql;
    const struct pgp_prepare *prepares;
    size_t n_prepares;

    /* A statement slower than slow_stmt_ms: its name (pgp_stmt.name, or the start of its SQL)
     * and duration. The top level logs "slow statement: <name> took N ms". May be NULL. */
    void (*on_slow)(void *ud, const char *name, uint64_t us);
    /* Every successful acquire's wait, for a histogram. May be NULL. */
    void (*on_wait)(void *ud, uint64_t us);
    /* A failed connect attempt or a connection lost/closed as broken, with the reason (one line,
     * no conninfo), for the top level to log (rate-limit it: a down server fails every
     * backoff_max_ms per pool). May be NULL. */
    void (*on_error)(void *ud, const char *msg);
    void *ud;
};

struct pgp;
struct pgp_conn;

/* Starts connecting (from the loop: no callback fires before it runs). `o` may be NULL
 * (defaults); it is copied. NULL with errno: EINVAL (no loop or conninfo, conninfo does not
 * parse, size == 0 after defaults is impossible), ENOMEM. */
struct pgp *pgp_new(uv_loop_t *loop, const char *conninfo, const struct pgp_opts *o);

/* Every waiter and pending exec gets -ECANCELED (a pgp_release from those callbacks is ignored),
 * every connection is closed, including those handed out: the caller must not use a pgp_conn
 * afterwards. Handles close asynchronously, so the loop must run afterwards to release the
 * memory. Takes NULL; returns NULL. */
struct pgp *pgp_free(struct pgp *p);

/* status 0: c is a healthy connection, idle (no transaction open), now owned by the caller
 * until pgp_release. Otherwise c is NULL and err says why: -ETIMEDOUT (acquire_timeout_ms
 * passed; err is "no connection free within N ms (...)" or "cannot connect: <libpq message>"),
 * -ECANCELED (pgp_free). err is valid during the call only. */
typedef void (*pgp_acquire_cb)(void *ud, struct pgp_conn *c, int status, const char *err);

/* Queues an acquirer (FIFO). 0 (cb will be called exactly once), or -ENOBUFS (max_waiters),
 * -ESHUTDOWN (pgp_free called), -EINVAL, -ENOMEM; then cb is never called. */
int pgp_acquire(struct pgp *p, pgp_acquire_cb cb, void *ud);

/* Gives the connection back. broken = true when the caller saw it misbehave: it is closed and
 * replaced. Also closed: one whose connection died, one left inside a transaction, one past its
 * recycle age, or one with execs still pending (they get -ECANCELED first). Takes NULL. */
void pgp_release(struct pgp *p, struct pgp_conn *c, bool broken);

/* The libpq connection, for PQescapeLiteral, PQserverVersion and the like. Do not send
 * queries, change its modes or wait on its socket yourself: use pgp_exec. NULL once dead. */
PGconn *pgp_conn_pg(const struct pgp_conn *c);
/* The server's backend pid of this connection (0 once dead). */
int pgp_conn_backend_pid(const struct pgp_conn *c);

struct pgp_stmt {
    const char *name;            /* for slow-statement reports; NULL = the start of sql */
    const char *sql;             /* SQL text, or a pgp_opts.prepares name when prepared */
    bool prepared;
    int nparams;
    const char *const *params;   /* text format; NULL entries are SQL NULL */
};

struct pgp_result {
    /* 0: every statement succeeded and the Sync was answered (the batch committed unless it
     * opened a transaction itself). Otherwise:
     *   -EIO         a statement failed (err is PostgreSQL's message); the whole batch rolled
     *                back; res[i] shows which (PGRES_FATAL_ERROR, then PGRES_PIPELINE_ABORTED);
     *   -ECONNRESET  connection lost: outcome unknown (it may have committed); release it;
     *   -ETIMEDOUT   stmt_timeout_ms passed: the connection was closed; outcome unknown;
     *   -EPROTO      unexpected reply; the connection was closed;
     *   -ECANCELED   pgp_free, or pgp_release with the exec pending. */
    int status;
    const char *err;             /* NULL when status == 0 */
    PGresult *const *res;        /* n results, one per statement, NULL if none arrived. Valid
                                  * during the callback only (copy what you need). */
    size_t n;
    uint64_t us;                 /* send to Sync answered */
};
typedef void (*pgp_exec_cb)(void *ud, struct pgp_conn *c, const struct pgp_result *r);

/* Sends n >= 1 statements (pipelined, then one Sync: one implicit transaction) on an acquired
 * connection. Several execs may be in flight on one connection; they complete in order.
 * 0 (cb will be called exactly once), or -EINVAL, -ENOTCONN (the connection is dead: release
 * it), -ECONNRESET (sending failed: the connection is now dead), -ENOMEM; then cb is never
 * called. Parameters are copied into libpq's buffer: they need not outlive the call. */
int pgp_exec(struct pgp_conn *c, const struct pgp_stmt *stmts, size_t n, pgp_exec_cb cb, void *ud);

/* Counters (monotonic, *_total) and gauges, for /metrics. */
struct pgp_stats {
    unsigned size;               /* connections open or opening now (at most size + overflow) */
    unsigned connecting;         /* ... of which connecting or setting up */
    unsigned idle;               /* ... idle in the pool (health checks included) */
    unsigned in_use;             /* handed out and not released (dead ones included) */
    unsigned waiting;            /* acquirers queued */
    uint64_t created_total;      /* connections set up */
    uint64_t connect_failures_total;
    uint64_t recycled_total;     /* closed for age */
    uint64_t broken_total;       /* closed as dead, failed check, released broken, timed out */
    uint64_t idle_closed_total;  /* extra connections closed after idle_timeout_ms */
    uint64_t health_checks_total; /* round-trip checks sent */
    uint64_t acquires_total;     /* successful acquires */
    uint64_t acquire_timeouts_total;
    uint64_t statements_total;   /* statements answered */
    uint64_t slow_statements_total;
    uint64_t last_wait_us;       /* the last successful acquire's wait */
    uint64_t wait_us_total;      /* sum over acquires_total */
    uint64_t max_wait_us;
};
void pgp_get_stats(const struct pgp *p, struct pgp_stats *out);

/* The last connect or connection error, one line, "" if none. Valid until the next loop
 * callback. */
const char *pgp_last_error(const struct pgp *p);

#endif
