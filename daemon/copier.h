/* copier: the hot path. A leader fill arrives from a leader's stream, is deduplicated, turned into
 * intents by the copy engine for every copy rule of that leader, journaled in one round trip
 * (write-before-send), and the new intents are sent as orders on the follower accounts, in
 * parallel across (follower, symbol) lanes and in order within one. Results are journaled
 * write-behind, positions and metrics updated, positions published to Redis.
 *
 * Start-up, before any stream opens: server time of every account, instrument filters per
 * exchange endpoint, live positions (mode, leverage, equity) of the leaders and of the followers
 * with orders to reconcile. Every other follower's state loads after READY, a bounded number at
 * a time (copier_ready). Failures are retried with backoff.
 *
 * Top-level glue: this module logs. Single-threaded, on the daemon's loop. */
#ifndef CT_COPIER_H
#define CT_COPIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "copy_rule.h"
#include "decimal.h"
#include "market.h"

struct journal;
struct met_registry;
struct rds;
struct lws_context;
struct exch_account;

struct copier_account {
    const char *name;
    const char *exchange;  /* "binance-usdm", for metrics labels */
    const char *rest_url;  /* instruments are fetched once per distinct rest_url */
    struct exch_account *ex; /* not owned */
    int expect_mode;         /* -1 auto, else the enum mkt_pos_mode the config expects */
    /* Leaders: the exchange time of the last fill the journal holds (0 = none): the first stream
     * connect backfills from there, so fills made while the daemon was down are copied. */
    int64_t backfill_since_ms;
};

struct copier_rule {
    struct copy_rule params; /* its strings must outlive the copier (they point into the config) */
    size_t leader;           /* index into the accounts */
    size_t follower;
    bool enabled;
    bool coalesce;           /* coalesce small leader partial fills */
    bool close_only;         /* the journal says a loss stop tripped in an earlier run */
    bool paused;             /* the journal says an operator paused it */
};

/* The highest ordered trade id (trade_seq, Binance) journaled per (leader account, symbol) when
 * the daemon started. A fill at or below it was copied by an earlier run, and the positions
 * fetched at start already hold it. Exchanges without ordered ids (Bybit) have no entry. */
/* A leader fill the journal holds: remembered as taken from the start (the in-memory dedupe), so
 * a stream that repeats a fill of the last minutes before a restart is not copied again even
 * where no trade id order exists (Bybit) and the journal writes ahead (journal.h). */
struct copier_seen {
    const char *account, *symbol, *trade_id;
};

struct copier_hwm {
    const char *account;
    const char *symbol;
    int64_t trade_seq;
};

/* A follower order the journal holds without a final state (a crash, a kill, an outcome never
 * learned): resolved at start-up by its client id before the leader streams open. Strings are
 * copied. pos_side_known false (rows from before the journal kept it) = BOTH for one-way
 * followers; a hedge-mode follower's such order is never resent. */
struct copier_pending {
    const char *client_id;
    const char *follower;
    const char *symbol;
    enum mkt_side side;
    dec_t qty;
    bool reduce_only;
    bool limit_ioc;          /* else market */
    dec_t price;             /* limit_ioc */
    enum mkt_pos_side pos_side;
    bool pos_side_known;
    int64_t intent_ms;       /* when it was journaled (wall clock): freshness */
};

struct copier_deps {
    uv_loop_t *loop;
    struct journal *journal;
    struct met_registry *metrics;
    struct rds *redis;           /* may be NULL */
    struct lws_context *lws;
    const struct copier_account *accounts; /* copied */
    size_t n_accounts;
    const struct copier_rule *rules;       /* copied */
    size_t n_rules;
    const struct copier_hwm *hwm;          /* copied */
    size_t n_hwm;
    const struct copier_seen *seen;        /* copied */
    size_t n_seen;
    unsigned position_ttl_ms;  /* Redis TTL of published positions; 0 = 10000 */
    unsigned refresh_ms;       /* equity and ticker refresh period; 0 = 5000 */
    unsigned state_wait_ms;    /* a leader fill's wait for followers' state, unjournaled */
    size_t dedupe_capacity;    /* trade ids remembered in memory; 0 = 1,000,000 */
    unsigned backfill_max_age_ms; /* a backfill never reaches further back than this; 0 = 1 h */
    /* Two-level caches (copier_cache.c); 0 = the defaults in brackets. */
    unsigned cache_ttl_tickers_ms;     /* [5000] */
    unsigned cache_ttl_balances_ms;    /* [15000] */
    unsigned cache_ttl_positions_ms;   /* [10000] */
    unsigned cache_ttl_instruments_ms; /* [3600000] */
    size_t cache_max_entries;          /* per cache [100000] */
    const struct copier_pending *pending; /* copied */
    size_t n_pending;
};

struct copier;

struct copier *copier_new(const struct copier_deps *d);
/* Begins start-up; streams open when it is done. 0 or a negative errno. */
int copier_start(struct copier *c);
/* The journal's connection state (from its on_state callback). Leader streams open only once
 * the journal is up; fills held while it was down are resubmitted when it comes back. */
void copier_journal_state(struct copier *c, bool up);
/* True once start-up is done: the journal up, the leaders' state (positions, mode, leverage,
 * equity) and the instruments in, every order an earlier run left open reconciled, and every
 * leader stream up at least once with its start-up backfill decided. The other followers' state
 * loads after that, in the background (copier_followers_loading); a leader fill's decision for a
 * follower still loading waits for its state (that follower moves to the front), the others go
 * out at once. */
bool copier_ready(const struct copier *c);
/* cb(ud) once, from the loop, the moment copier_ready becomes true (no polling needed). */
void copier_on_ready(struct copier *c, void (*cb)(void *ud), void *ud);
/* Followers whose state is still loading (0 once all are in). */
size_t copier_followers_loading(const struct copier *c);
/* Follower orders sent so far (first sends; resends of the same client id are not counted). */
uint64_t copier_orders_sent(const struct copier *c);
/* Number of leader streams currently up, and configured. */
size_t copier_streams_up(const struct copier *c, size_t *total);
/* One leader stream, for /health/ready. Strings belong to the copier (valid until it is freed;
 * reason changes with the next state change). */
struct copier_stream_info {
    const char *account;
    bool up, was_up;
    int64_t since_ms;   /* wall clock (ms since the epoch) of the last up/down change; 0 = never */
    const char *reason; /* why it last went down or failed to connect; "" = none */
};
/* Fills out[0..max) with the leader streams in account order; returns how many there are (call
 * with max 0 to count). */
size_t copier_stream_info(const struct copier *c, struct copier_stream_info *out, size_t max);
/* Operator actions on a running rule (copytraderctl, through the daemon's local HTTP). PAUSE and
 * RESUME set the operator switch (a paused rule skips everything with rule_paused); RESET clears a
 * loss stop (close_only) and re-bases the loss marks, keeping the switch. Updates the
 * ct_rule_status gauge, queues the new effective state for the journal and logs the change.
 * *status (may be NULL) gets the new effective state ("active", "paused", "close_only", static).
 * 0, -ENOENT (no such rule), -EINVAL (bad op). */
enum copier_rule_op { COPIER_RULE_PAUSE, COPIER_RULE_RESUME, COPIER_RULE_RESET };
int copier_rule_action(struct copier *c, const char *rule_id, enum copier_rule_op op,
                       const char **status);
/* The live state as compact JSON (malloc'd, the caller frees; NULL when out of memory):
 * {"followers_loading":n,"ready":b,"leaders":[{"account","exchange","stream_up","stream_was_up"}],
 *  "rules":[{"id","leader","follower","status","stop","enabled","stopped","held"}]}. */
char *copier_state_json(const struct copier *c);
/* Stops taking fills, closes the streams, and calls done(ud) once every order in flight has an
 * answer or deadline_ms has passed (orders still queued then stay journaled as 'intent'). */
void copier_drain(struct copier *c, unsigned deadline_ms, void (*done)(void *ud), void *ud);
/* Applies a new set of copy rules (SIGHUP reload), matched by id: a kept rule takes the new
 * parameters and enabled flag and keeps its state (loss stop, operator pause, coalescing slots);
 * a new rule starts with the close_only/paused of its copier_rule; a rule missing from rules is
 * removed: it takes no new fills, its fills in the journal's hands and orders in flight finish.
 * A leader that gains its first rule gets its stream opened. Leader and follower index the
 * accounts of copier_deps (the account set does not change). The strings of rules must live until
 * the next reload or copier_free. 0, -EINVAL (bad index or id; nothing changed) or -ENOMEM. */
struct copier_reload_stats {
    size_t added, kept, removed;
};
int copier_reload(struct copier *c, const struct copier_rule *rules, size_t n,
                  struct copier_reload_stats *out);
/* Closes the leader streams and stops taking fills and sending; answers still arriving for
 * orders in flight are recorded. Call before freeing the REST pool. Idempotent. */
void copier_close(struct copier *c);
/* Frees everything. Free the REST pool FIRST: it cancels the orders still in flight, and their
 * callbacks land here (recorded as unknown) while the copier still exists. Takes NULL, returns
 * NULL. The loop must run afterwards to close the copier's timers. */
struct copier *copier_free(struct copier *c);

/* Per leader fill, in microseconds (HdrHistogram layout, lat_hist.h): COPIER_LAT_SEND = leader
 * frame received -> the fill's last follower request written to its connection; COPIER_LAT_ACK =
 * -> the fill's last follower order answered. Only fills whose every order got a first answer
 * count. Never NULL after copier_new. */
struct lat_hist;
enum copier_lat { COPIER_LAT_SEND, COPIER_LAT_ACK };
const struct lat_hist *copier_fill_latency(const struct copier *c, enum copier_lat which);
void copier_fill_latency_reset(struct copier *c);

#endif
