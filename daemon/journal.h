/* journal: the PostgreSQL journal.
 *
 * Start-up (synchronous, blocking): journal_migrate applies the embedded sql/NNN_*.sql migrations,
 * journal_sync_config upserts the configured accounts and copy rules.
 *
 * Running (asynchronous, on one libuv loop): one non-blocking libpq connection in pipeline mode.
 *  - journal_write_fill: the hot path's only database wait. The leader fill and all its intents go
 *    in one sync group (two pipelined statements, one transaction, ONE round trip per fill, not per
 *    follower; journal.c says why not a single CTE statement). The callback says which
 *    intents were newly inserted: ONLY those may be sent (write-before-send, invariant 2; a replayed
 *    fill or a restart finds its intents already there and sends nothing, invariant 4).
 *  - journal_record_result: write-behind. Results are queued and flushed as one UPDATE per batch
 *    (at most batch_size rows): at once when idle, grouped under load. A status never moves
 *    backwards (enforced in SQL by follower_order_status_rank, see sql/001_initial.sql).
 *  - journal_record_positions: position snapshots, write-behind like the results (one INSERT per
 *    batch, idempotent), spooled like them while PostgreSQL is away.
 *  - journal_flush: a callback once everything queued so far is committed.
 *  - Partition upkeep: once a day (opts.partitions_every_ms), when the pipeline is idle, the
 *    journal runs ensure_follower_order_partitions (sql/007) so monthly partitions of
 *    follower_orders exist ahead; it never waits more than 1 s for the lock a new partition
 *    needs (a failure is retried an hour later, counted in the stats).
 * The connection reconnects by itself with jittered backoff; a statement or connect attempt that
 * takes longer than timeout_ms resets the connection. A loop stall (a callback of the caller's
 * busy for longer than that) is not taken for PostgreSQL's silence: the deadline reads what the
 * socket holds first, and one that fired late by timeout_ms/10 or more is moved to timeout_ms
 * from then, once per statement or connect attempt.
 *
 * The spool (opts.spool_dir; invariant 7). When PostgreSQL is not connected, or a fill write has
 * waited longer than spool_after_ms, the journal switches to its local append-only spool (spool.h:
 * checksummed records, fsync'd in JOURNAL_DURABILITY_FSYNC): a fill and all its intents become ONE
 * record, durable before the callback reports every intent new (write-before-send holds); results
 * and rule state changes are appended in groups. Fills already in flight to a slow or lost server
 * are moved to the spool too (their callbacks then report new; PostgreSQL's reply is ignored).
 * While the spool holds a fill, writing the same fill again (account, symbol, trade id) reports
 * it not new. Once PostgreSQL is back, the spool is replayed in order, with the same statements,
 * in batches, before any direct write; new work keeps going to the spool until it is drained, then
 * the journal writes directly again. Each replayed batch also records the last applied sequence
 * number in spool_applied (sql/005_spool.sql) in the same transaction, and a new session acks the
 * spool up to it first: a crash between commit and ack never applies a record twice. A record
 * PostgreSQL refuses (SQLSTATE class 22 or 23) is dropped and counted; other errors are retried.
 * What the spool cannot know: a fill committed to PostgreSQL before the spool took over and then
 * replayed by the exchange is reported new from the spool (the copier's in-memory dedupe and the
 * start-up high-water mark are what stop those).
 *
 * Host names in conninfo are resolved synchronously by libpq: use a unix socket directory or a
 * numeric address (hostaddr=) for the asynchronous journal.
 *
 * Callbacks are never called from inside a journal_* call, except journal_free (which calls every
 * pending callback with -ECANCELED). From inside a callback any journal_* call is allowed,
 * including journal_free. Logs nothing: errors come back as negative errno plus a message.
 * Not thread-safe: everything belongs to the loop's thread. */
#ifndef CT_JOURNAL_H
#define CT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "spool.h"

/* ---- start-up, synchronous ---------------------------------------------------------------- */

/* Connects, takes an advisory lock (two daemons never migrate at once; waits at most 60 s),
 * creates schema_migrations and applies, in version order, each migration of sql_migrations[] not
 * recorded there yet, each in its own transaction together with its schema_migrations row; then
 * makes sure the monthly partitions of follower_orders exist for this month and the next three
 * (ensure_follower_order_partitions(3), sql/007). Returns how many were applied (0 when up to date), or a negative errno with err filled, naming
 * the migration and PostgreSQL's message: -ENOTCONN (cannot connect), -EIO (a statement failed;
 * that migration was rolled back, earlier ones stay), -EINVAL (bad arguments or duplicate versions
 * in sql_migrations[]), -ENOMEM. */
int journal_migrate(const char *conninfo, char *err, size_t errlen);

struct journal_account {
    const char *name;     /* the account's config name */
    const char *exchange; /* "binance-usdm", "bybit-linear", "sim" */
};

struct journal_rule {
    const char *id;
    const char *leader;      /* account names, synced in the same call or earlier */
    const char *follower;
    const char *sizing;      /* "multiplier", ... */
    const char *params_json; /* a JSON object as text (e.g. {"multiplier":"0.5"}); NULL = {} */
    bool enabled;
};

/* Upserts accounts (name, exchange) and copy rules in one transaction. A rule's status becomes
 * 'paused' when disabled, else 'active' — except that a rule in 'close_only' (a loss stop) stays
 * there until an operator resets it. Rules in the table but not in `rules` are marked 'removed'
 * (the config files are the source of truth); accounts are never deleted (history refers to them).
 * 0, or a negative errno with err naming the account or rule: -ENOTCONN, -EIO, -EINVAL, -ENOMEM. */
int journal_sync_config(const char *conninfo, const struct journal_account *accts, size_t na,
                        const struct journal_rule *rules, size_t nr, char *err, size_t errlen);

/* Appends one row to audit_log (blocking, its own connection: start-up, or a worker thread during a
 * reload). kind: "config_load", "config_reload" (ok false = rejected); rule state changes are
 * written by a trigger on copy_rules (sql/004_audit_log.sql). subject: the config file, or NULL.
 * detail_json: a JSON object or NULL. 0, or -ENOTCONN / -EIO / -EINVAL with err set. */
int journal_audit(const char *conninfo, const char *kind, const char *subject, bool ok,
                  const char *detail_json, char *err, size_t errlen);

/* The statements of journal_sync_config and journal_audit, built without running them, for a
 * caller that runs them itself on a connection of its own, e.g. as ONE pipeline of a pg_pool
 * connection (one implicit transaction: the SIGHUP reload's rules and its audit row commit
 * together or not at all). Pure: no I/O. The same SQL and checks as the blocking calls. */
#define JOURNAL_STMT_PARAMS 6
struct journal_stmt {
    char name[96];      /* what it writes, for logs: "copy rule 'fa-r'", "audit log" */
    const char *sql;
    int nparams;
    const char *params[JOURNAL_STMT_PARAMS]; /* text format; NULL = SQL NULL */
};
struct journal_stmts {
    struct journal_stmt *v; /* n statements, in order; may move when one is appended */
    size_t n, cap;
    char **owned;           /* strings the builder made (the removal's id array) */
    size_t n_owned;
};
/* Appends journal_sync_config's statements (without BEGIN/COMMIT): the account upserts, the rule
 * upserts, and the removal of every rule not in `rules`. Parameters point into accts and rules
 * (they must outlive the statements' use) or into s. 0, or -EINVAL (err names the account or
 * rule) / -ENOMEM; on error nothing is appended. */
int journal_sync_statements(struct journal_stmts *s, const struct journal_account *accts, size_t na,
                            const struct journal_rule *rules, size_t nr, char *err, size_t errlen);
/* Appends journal_audit's INSERT; kind, subject and detail_json are referenced, not copied.
 * 0, -EINVAL or -ENOMEM (err set). */
int journal_audit_statement(struct journal_stmts *s, const char *kind, const char *subject, bool ok,
                            const char *detail_json, char *err, size_t errlen);
/* Frees what the builders allocated and empties s (reusable). Takes NULL. */
void journal_stmts_reset(struct journal_stmts *s);

/* ---- the asynchronous journal ------------------------------------------------------------- */

enum journal_durability {
    JOURNAL_DURABILITY_FSYNC = 0, /* synchronous_commit = on: a callback means fsync'd */
    JOURNAL_DURABILITY_OS = 1,    /* synchronous_commit = off: committed, the WAL flush follows
                                   * within ~3 wal_writer_delay; a server crash may lose the tail */
};

/* What an answered write was (journal_opts.on_write). With journal_durability os every fill and
 * result reaches PostgreSQL as JOURNAL_WRITE_SPOOL; with fsync only after an outage. */
enum journal_write_kind { JOURNAL_WRITE_FILL, JOURNAL_WRITE_RESULTS, JOURNAL_WRITE_SPOOL };

struct journal_opts {
    enum journal_durability durability;
    unsigned batch_size;         /* results per UPDATE statement; 0 = 100 */
    unsigned flush_interval_ms;  /* longest an idle journal holds a result to group it; 0 = flush
                                  * on the next loop iteration */
    unsigned timeout_ms;         /* connect or statement deadline, then reset; 0 = 10000 */
    unsigned backoff_min_ms;     /* reconnect delay, doubled per failure, jittered; 0 = 50 */
    unsigned backoff_max_ms;     /* 0 = 5000 */
    unsigned slow_ms;            /* a statement slower than this counts as slow; 0 = 100 */
    size_t max_queued_results;   /* journal_record_result refuses beyond this; 0 = 1000000 */
    size_t max_inflight_fills;   /* journal_write_fill refuses beyond this; 0 = 4096 */
    /* Connection state changes, for the daemon to log and to gate READY=1: connected=true once the
     * session is set up; connected=false with a message on every failed attempt and every loss.
     * Called from the loop, never from inside a journal_* call. May be NULL. */
    void (*on_state)(void *ud, bool connected, const char *errmsg);
    /* Every answered write (a fill's sync group, a results batch, a batch of spooled records
     * copied into PostgreSQL): its time from send to commit, for a latency histogram. Called from
     * the loop; may be NULL. Uses ud too. */
    void (*on_write)(void *ud, enum journal_write_kind kind, uint64_t us);
    void *ud;
    /* The spool. NULL = none: journal_write_fill refuses with -ENOTCONN while PostgreSQL is not
     * connected (the behaviour before the spool). The directory is created when missing (its
     * parent must exist, see spool_open). Spool durability follows `durability`: FSYNC appends
     * fdatasync before returning; OS appends only write, and a timer syncs every spool_sync_ms. */
    const char *spool_dir;
    unsigned spool_after_ms;      /* a fill write waiting longer than this moves to the spool;
                                   * 0 = 250 */
    unsigned spool_sync_ms;       /* JOURNAL_DURABILITY_OS only: spool fdatasync period; 0 = 200 */
    /* Write-ahead (needs spool_dir): a fill marked `ahead` is appended to the spool (durable as
     * `durability` says) and reported new at once, without waiting for PostgreSQL, which gets it
     * from the spool's replay right after, in order, like everything queued behind it (results,
     * positions, rule states). Fills not marked `ahead` still ask PostgreSQL while it is up:
     * only the spool's own keys (fills not replayed yet) answer "not new" without it. The
     * daemon turns this on with journal_durability: os. */
    bool write_ahead;
    uint64_t spool_segment_bytes; /* 0 = the spool's default (64 MiB) */
    bool spool_salvage;           /* open a spool corrupt in the middle by skipping the bad bytes
                                   * (their records are lost) instead of refusing to start */
    /* The spool took over (spooling=true, msg says why), was drained (false, msg says how many
     * records were replayed), or failed (msg names the error and file; spooling unchanged).
     * Called from the loop, never from inside a journal_* call. May be NULL. Uses ud too. */
    void (*on_spool)(void *ud, bool spooling, const char *msg);
    /* Partition upkeep (sql/007): how often the running journal checks that follower_orders has
     * its monthly partitions, and how many months ahead. 0 = once a day; 0 = 3 months. */
    unsigned partitions_every_ms;
    unsigned partitions_ahead;
};

struct journal;

/* Starts connecting at once (no callback before the loop runs). `o` may be NULL (defaults). NULL
 * with errno EINVAL when conninfo does not parse, ENOMEM, or a libuv error. */
struct journal *journal_new(uv_loop_t *loop, const char *conninfo, const struct journal_opts *o);

/* What journal_open found in the spool. */
struct journal_open_report {
    struct spool_open_report spool; /* spool.torn_bytes > 0: a torn last record (a crash mid-write)
                                     * was cut off at spool.torn_offset of spool.torn_file; every
                                     * complete record before it is kept */
    uint64_t pending_records;       /* records not yet applied to PostgreSQL: replayed first */
    uint64_t pending_fills;         /* ... of which fills */
    uint64_t bad_records;           /* pending records that do not parse: dropped at replay */
};
/* journal_new with the spool's start-up report and a clear error: 0 with *out set, or a negative
 * errno with *out NULL and err filled: -EINVAL (conninfo does not parse, bad arguments), -EBADMSG
 * (the spool is corrupt in the middle: err names the file and offset; see spool_salvage), -EPERM,
 * -EBUSY (another process has the spool), -ENOMEM, or a failed system call's errno. rep may be
 * NULL. Without a spool it cannot fail but for -EINVAL/-ENOMEM. */
int journal_open(uv_loop_t *loop, const char *conninfo, const struct journal_opts *o,
                 struct journal **out, struct journal_open_report *rep, char *err, size_t errlen);
/* Calls every pending fill and flush callback with -ECANCELED, drops queued results and position
 * snapshots (flush first to keep them), closes the connection and the journal's libuv handles;
 * the memory is released by their close callbacks, so the loop must run afterwards. A fill already in the spool whose
 * callback had not run is cancelled too: it stays in the spool and is replayed later as intents
 * never sent (start-up reconcile finds no order for them). The spool is synced and closed.
 * Takes NULL; returns NULL. */
struct journal *journal_free(struct journal *j);

/* True when the PostgreSQL session is set up (the spool plays no part here). */
bool journal_connected(const struct journal *j);
/* True when journal_write_fill would take a fill now: directly (connected, spool drained) or
 * into the spool (spool open, not broken, its last append did not fail). Without a spool the same
 * as journal_connected. */
bool journal_writable(const struct journal *j);

/* A copy decision deferred until its follower's state is in (copier_load.c): its placeholder,
 * a 'pending' row of deferred_decisions (sql/010), is written with the fill, in the same
 * transaction (spool record), and only when the fill is new there. */
#define JOURNAL_DEFER_INPUT_MAX 2048
struct journal_defer {
    const char *rule_id;
    const char *follower;
    /* What the decision needs that cannot be recomputed later: a JSON object as text (printable
     * ASCII, at most JOURNAL_DEFER_INPUT_MAX bytes), written and read by the caller. */
    const char *input;
};

struct journal_fill {
    const char *account;   /* the leader account */
    const char *symbol;
    const char *trade_id;  /* the identity, with account and symbol: 1..47 printable ASCII chars */
    const char *order_id;  /* same charset; NULL or "" = not known */
    int64_t trade_seq;     /* > 0: the exchange's ordered trade id (Binance), 0 = none (Bybit) */
    const char *side;      /* "BUY" or "SELL" */
    const char *qty;       /* exact decimal text, [0-9]+(.[0-9]+)?, > 0 */
    const char *price;     /* same */
    int64_t event_time_ms; /* the exchange's trade time, ms since the epoch, > 0 */
    /* Write-ahead allowed (opts.write_ahead): the caller knows this fill is new to it, not a
     * replay of one PostgreSQL may already hold (a stream fill, not a REST backfill), so the
     * spool alone may decide it new. false: PostgreSQL (or the spool's keys) decides. */
    bool ahead;
    /* The callback may run before journal_write_fill returns (it then returns 0 after it): when
     * the spool makes the fill durable at once (new, write-ahead or spooling) and no other fill's
     * callback is still to come, so callbacks keep the order of the writes. The caller must not
     * touch ud after the call. It saves the loop iteration between the write and the orders,
     * in which the rest of the leader's frames would be read first. */
    bool now_ok;
    /* This decision's attempt token (sql/011): random, nonzero, the same in every write of the
     * same decision (a resubmission after a lost connection or a timeout). A write that finds
     * the fill and intents its own earlier write committed reports them as if new (fill_new,
     * intent_new), since their answer was lost and nothing of them was sent. 0 = none. */
    uint64_t attempt;
    /* Placeholders of deferred decisions, inserted when (and only when) the fill is new. */
    const struct journal_defer *defers;
    size_t n_defers;
    /* Non-NULL: this write holds the decision deferred for (this fill, resolve_rule_id): its
     * placeholder, if still 'pending', becomes 'decided' (resolve_reason NULL: the intents of
     * this write are the decision) or 'skipped' with resolve_reason (1..64 printable chars), in
     * the same transaction as the intents. */
    const char *resolve_rule_id;
    const char *resolve_reason;
};

struct journal_intent {
    const char *client_order_id; /* [A-Za-z0-9_-]{1,36}, deterministic per (fill, rule) */
    const char *rule_id;
    const char *follower;
    const char *symbol;
    const char *side;            /* "BUY" or "SELL" */
    const char *qty;             /* exact decimal text, >= 0 */
    bool reduce_only;
    const char *order_type;      /* e.g. "MARKET", "LIMIT_IOC" */
    const char *skip_reason;     /* NULL = sendable (status 'intent'); else status 'skipped' */
    /* What a resend after a restart needs (sql/006): "BOTH", "LONG", "SHORT" or NULL, and the
     * limit price of a limit order (exact decimal text > 0) or NULL. */
    const char *position_side;
    const char *limit_price;
};

struct journal_fill_result {
    /* 0: committed. Otherwise send NOTHING:
     *   -ECONNRESET, -ETIMEDOUT  connection lost or reset with the statement in flight: it may or
     *                            may not have committed (start-up reconcile sorts that out);
     *   -EIO, -EPROTO            PostgreSQL refused it (errmsg says why): nothing was written;
     *   -ECANCELED               journal_free. */
    int status;
    const char *errmsg;        /* NULL when status == 0 */
    bool fill_new;             /* the leader fill was not journaled before */
    const bool *intent_new;    /* n flags in the order given: newly inserted, may be sent; all
                                * false unless status == 0. Valid during the callback only. */
    size_t n;
};
typedef void (*journal_fill_cb)(void *ud, const struct journal_fill_result *r);

/* Queues the fill and intents statements (copied: the arguments need not outlive the call) and
 * their sync, and sends them at once; or, while the spool has taken over, appends them to the
 * spool as one record (durable when this returns) and completes cb from the loop with status 0,
 * every intent new (or, when the spool already holds this fill, fill_new false and none new);
 * with fill->now_ok, maybe before returning (see there).
 * 0 (cb will be called exactly once), or a negative errno and cb is never called: -EINVAL (bad
 * field; client order ids must be distinct), -ENOTCONN (neither PostgreSQL nor the spool can take
 * it: no spool, or the spool append failed, e.g. disk full; do not send the intents, try again
 * later), -ENOBUFS (max_inflight_fills reached), -ENOMEM. */
int journal_write_fill(struct journal *j, const struct journal_fill *fill,
                       const struct journal_intent *intents, size_t n, journal_fill_cb cb,
                       void *ud);

/* The placeholders still 'pending' (journal_defer), for a start-up to decide them. Runs once
 * PostgreSQL is connected and the spool has nothing left to replay (so every placeholder the spool
 * held is in PostgreSQL too): first resolves as skipped ("rule_removed") the pending placeholders
 * of rules that copy_rules marks removed or whose follower changed, then reads the rest in the
 * order they were written. cb is called exactly once, from the loop: status 0 with the rows
 * (valid during the callback only), -EIO/-EPROTO (errmsg says why), -ECANCELED (journal_free).
 * Waits across reconnects. 0, -EINVAL, -EBUSY (one already asked), -ENOMEM. */
struct journal_pending_defer {
    const char *account, *symbol, *trade_id; /* the leader fill */
    const char *rule_id, *follower;
    const char *input;                        /* as written (JSON text) */
};
typedef void (*journal_defers_cb)(void *ud, int status, const char *errmsg,
                                  const struct journal_pending_defer *v, size_t n);
int journal_load_defers(struct journal *j, journal_defers_cb cb, void *ud);
/* Forgets the callback of journal_load_defers (never called then). Takes NULL. */
void journal_load_defers_cancel(struct journal *j);

/* Order states, in follower_orders.status. */
enum journal_status {
    JOURNAL_INTENT = 0, /* written by journal_write_fill only */
    JOURNAL_SENT,
    JOURNAL_ACKED,
    JOURNAL_PARTIALLY_FILLED,
    JOURNAL_FILLED,
    JOURNAL_REJECTED,
    JOURNAL_SKIPPED,    /* by journal_write_fill; as a result only for an intent never sent (its
                         * error_msg, 1..64 printable chars, becomes the skip reason: "stale") */
    JOURNAL_UNKNOWN,    /* outcome unknown (timeout, reset, 5xx): query before any retry */
    JOURNAL_RECONCILED,
    JOURNAL_CANCELED,
    JOURNAL_EXPIRED,
};
/* "intent", "sent", ...; NULL for a value outside the enum. */
const char *journal_status_name(enum journal_status s);

struct journal_result {
    const char *client_order_id;
    enum journal_status status;  /* not INTENT or SKIPPED */
    const char *exchange_order_id; /* NULL or "" = not known (keeps the stored value) */
    const char *executed_qty;    /* exact decimal text; NULL keeps the stored value */
    const char *avg_price;       /* same */
    int error_code;              /* the exchange's error code; 0 = none */
    const char *error_msg;       /* NULL = none; non-printable bytes become '?', cut at 255
                                  * bytes. Never put secrets here. */
    int64_t at_us;               /* when the state was reached, µs since the epoch; 0 = now */
};

/* Copies the result into the write-behind queue. The row's status only moves forward; a later
 * partially_filled with a larger executed_qty also applies. Results are kept across reconnects;
 * while the spool has taken over, the queue is appended to it in groups (at most batch_size per
 * record) from the loop, and replayed from there. 0, or -EINVAL (bad field), -ENOBUFS
 * (max_queued_results reached), -ENOMEM. */
int journal_record_result(struct journal *j, const struct journal_result *r);

/* Records a copy rule's state ("active", "paused" or "close_only": a loss stop) in copy_rules,
 * and the operator's pause switch (paused: 1 on, 0 off, -1 unchanged), asynchronously, kept and
 * resent across reconnects until it commits; a rule marked 'removed' is left alone. The config
 * sync keeps an operator-paused rule paused. 0, or -EINVAL, -ENOMEM. */
int journal_set_rule_status(struct journal *j, const char *rule_id, const char *status, int paused);

/* A position as the exchange reported it or as the daemon's position book holds it. */
struct journal_position {
    const char *account;       /* an account name (synced by journal_sync_config) */
    const char *symbol;
    const char *position_side; /* "BOTH", "LONG" or "SHORT" */
    const char *amount;        /* exact decimal text with an optional '-' (one-way shorts) */
    const char *source;        /* "exchange" (fetched from it) or "book" (the daemon's tracking) */
    int64_t taken_at_us;       /* µs since the epoch; 0 = now */
};

/* Copies n snapshots into a write-behind queue of their own (position_snapshots, sql/008): sent
 * like results, at most batch_size per INSERT, never on the hot path; kept across reconnects and
 * spooled while the spool has taken over. A snapshot already stored (same account, symbol, side,
 * time and source) is not stored twice. journal_flush waits for them too. 0 (also for n == 0), or
 * -EINVAL (a bad field: nothing queued), -ENOBUFS (more than max_queued_results would be
 * queued), -ENOMEM, -ECANCELED (journal_free was called). */
int journal_record_positions(struct journal *j, const struct journal_position *v, size_t n);

/* The text of the journal's own statements, for tests that EXPLAIN them: "fill", "intents",
 * "results", "positions", "partitions"; NULL for another name. */
const char *journal_statement_sql(const char *name);

/* cb(ud, status) once every fill and result queued before this call is finished: 0 when all of
 * it is committed or durable in the spool (spool fdatasync'd first in JOURNAL_DURABILITY_OS; the
 * spool is replayed by a later session or run), -EIO when some fill or result batch failed
 * meanwhile (see the counters), -ECANCELED from journal_free. Waits across reconnects. 0, or
 * -ENOMEM. */
typedef void (*journal_flush_cb)(void *ud, int status);
int journal_flush(struct journal *j, journal_flush_cb cb, void *ud);

/* Counters (monotonic) and gauges for /metrics. */
struct journal_stats {
    bool connected;
    uint64_t connects;           /* sessions set up */
    uint64_t connect_failures;   /* failed attempts */
    uint64_t disconnects;        /* set-up sessions lost or reset */
    size_t results_queued;       /* gauge: results not yet committed (incl. in flight) */
    size_t inflight_statements;  /* gauge: statements sent, not yet answered (2 per fill) */
    size_t inflight_fills;       /* gauge */
    uint64_t fills_written;      /* fills committed */
    uint64_t fills_new;          /* ... of which the fill was new */
    uint64_t fills_failed;       /* fill callbacks with an error */
    uint64_t intents_new;        /* intents newly inserted */
    uint64_t results_written;    /* rows updated */
    uint64_t results_stale;      /* results that changed no row: backwards or unknown id */
    uint64_t results_dropped;    /* results lost to a refused statement */
    uint64_t statement_errors;   /* statements PostgreSQL refused */
    uint64_t writes;             /* sync groups answered (a fill's two statements count once;
                                  * latency below is over these, from send to commit) */
    uint64_t write_us_last;
    uint64_t write_us_total;
    uint64_t slow_statements;    /* > slow_ms */
    uint64_t slow_us_last;       /* duration of the last slow one */
    /* Journal lag: now minus the append time of the oldest record not yet applied from the
     * spool, else the age of the oldest statement in flight; 0 when caught up. */
    uint64_t lag_us;
    /* The spool (all zero without one). */
    bool spooling;               /* new writes go to the spool (PostgreSQL down or slow, or the
                                  * replay has not caught up yet) */
    bool spool_writable;         /* open, not broken, and its last append did not fail */
    uint64_t spool_records;      /* gauge: spool depth, records not yet applied to PostgreSQL */
    uint64_t spool_bytes;        /* gauge: the same, bytes on disk */
    int64_t spool_oldest_us;     /* append time of the oldest of them, µs since the epoch; 0 none */
    uint64_t spool_fills;        /* fills appended to the spool (reported new) */
    uint64_t spool_diverted;     /* ... of which were in flight to PostgreSQL (slow or lost) */
    uint64_t spool_fills_dup;    /* fills reported not new because the spool holds them */
    uint64_t spool_results;      /* results appended */
    uint64_t spool_rules;        /* rule state changes appended */
    uint64_t spool_replayed;     /* records applied to PostgreSQL by replay */
    uint64_t spool_skipped;      /* records already applied (spool_applied) acked at session start */
    uint64_t spool_replay_dropped; /* records PostgreSQL refused or that did not parse: lost */
    uint64_t spool_errors;       /* failed appends, syncs, acks and replay reads */
    /* Position snapshots (journal_record_positions). */
    size_t positions_queued;     /* gauge: not yet committed (incl. in flight) */
    uint64_t positions_written;  /* rows inserted (a snapshot stored already counts nowhere) */
    uint64_t positions_dropped;  /* lost to a refused statement (e.g. an unknown account) */
    uint64_t spool_positions;    /* appended to the spool */
    /* Partition upkeep. */
    uint64_t partition_checks;         /* ensure_follower_order_partitions runs answered */
    uint64_t partition_check_failures; /* ... of which failed (last_error says why) */
    uint64_t partitions_created;
    /* Gauge: placeholders of deferred decisions (journal_defer) pending in the journal, as this
     * journal knows them: the rows journal_load_defers read, plus those written since with a new
     * fill, minus the resolutions written since (a write committed or durable in the spool; the
     * spool's "not new" repeat of a fill it holds records nothing and counts nothing). Not seen:
     * placeholders of a fill write whose outcome was unknown (-ECONNRESET/-ETIMEDOUT) that did
     * commit; the next start's load counts them. */
    uint64_t defers_pending;
};
void journal_get_stats(const struct journal *j, struct journal_stats *out);
/* The last error (connection or statement), "" if none. Valid until the next loop callback. */
const char *journal_last_error(const struct journal *j);

#endif
