/* copier_internal: the copier's state, shared by its files (copier.c: the hot path, start-up and
 * lifecycle; copier_backfill.c: fetching the leader fills a stream missed; copier_load.c: follower
 * state loaded after READY and the decisions that wait for it; copier_reload.c is still inside
 * copier.c). Not for anything outside the copier. */
#ifndef CT_COPIER_INTERNAL_H
#define CT_COPIER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uthash.h>
#include <uv.h>

#include "copier.h"
#include "copy_engine.h"
#include "copy_state.h"
#include "lat_hist.h"
#include "lev_map.h"
#include "exchange.h"
#include "market.h"
#include "metrics.h"

#define STARTUP_BACKOFF_MIN_MS 500
#define STARTUP_BACKOFF_MAX_MS 30000
#define MAX_SEND_ATTEMPTS 40    /* sends of one client id (throttled, not sent, confirmed absent) */
#define RETRY_WINDOW_MS 60000   /* resends only while the leader fill is younger than this */
#define RETRY_BACKOFF_MS 100
#define MAX_FINAL_CHECKS 12     /* queries of an accepted market/IOC order until it is final */
#define FINAL_CHECK_MS 25       /* doubling up to 1.6 s: ~7 s in all */
#define MAX_QUERY_ATTEMPTS 8    /* queries of an unknown outcome before leaving it to reconcile */
#define QUERY_BACKOFF_MS 200
#define COALESCE_SLOTS 64       /* leader orders coalesced at once per rule */
#define PREFLIGHT_MAX 32
#define RULE_ID_MAX 64          /* as the journal takes them */
#define BACKFILL_MARGIN_MS 60000 /* a reconnect's backfill starts this long before the last fill */

struct defer_item;
struct fill_wait;
struct fill_job;
struct fill_lat;
struct journal_fill_result;
struct journal_pending_defer;

/* ---------------------------------------------------------------------------------------- */

struct instruments { /* the filters of one exchange endpoint, by symbol */
    char url[512];
    struct inst_entry *map;
    struct acct *fetcher;  /* the account its public data (filters, tickers) is fetched with */
    bool tickers_busy;     /* a ticker refresh is out */
    bool inst_busy;        /* an instrument refresh is out */
    struct exch_ticker_stream *tstream; /* live tickers (the REST refresh stays as the fallback) */
    bool tstream_up;
    uint64_t tstream_sig;  /* the symbol set it was opened for (reopened when it grows) */
    bool loaded;
    UT_hash_handle hh;
};

struct inst_entry {
    struct mkt_instrument v;
    dec_t ticker;          /* last price, 0 = none yet */
    int64_t ticker_ms;     /* its exchange time (or our receipt time, exchange clock) */
    UT_hash_handle hh;
};

#define STREAM_REASON_MAX 128

struct acct {
    struct copier *c;
    size_t idx;
    size_t follows_at, n_follows; /* its rules as follower: c->follows[follows_at ...] */
    char name[MKT_ACCOUNT_MAX];
    char exchange[32];
    struct exch_account *ex;
    struct instruments *inst;
    bool is_leader;
    struct exch_stream *stream;
    bool stream_up, stream_was_up;
    int64_t stream_since_ms;          /* wall clock of the last up/down change, for /health/ready */
    char *stream_reason;              /* why it last went down (STREAM_REASON_MAX; a leader's, made
                                         at its first down: 10,000 followers, 1.2 MB less) */
    bool time_ok, positions_ok;
    enum mkt_pos_mode mode;           /* as the exchange reports it */
    int expect_mode;                  /* from the config: -1 auto, else enum mkt_pos_mode */
    dec_t equity;                     /* last sample, 0 = none yet */
    bool equity_busy;                 /* an equity refresh is out */
    struct lev_map *lev;              /* its leverage per symbol (NULL: none known) */
    unsigned backoff_ms;
    uv_timer_t retry; /* start-up step retries */
    struct met_counter *m_filled, *m_partial, *m_acked, *m_rejected, *m_unknown, *m_canceled,
        *m_expired, *m_skipped;
    struct met_gauge *m_stream_up;
    struct met_counter *m_fills, *m_dups;
    struct sym_entry *held;           /* symbols it has held or traded (drift gauge, backfill) */
    /* Backfill (copier_backfill.c): the fills a stream may have missed, fetched over REST. */
    int64_t last_fill_ms;             /* trade time of the newest fill taken (exchange clock) */
    int64_t first_up_ms;              /* exchange time the stream first came up */
    int64_t snap_ms;                  /* exchange time the start-up position snapshot arrived */
    int64_t snap_req_ms;              /* ... and when it was asked for */
    struct snap_entry *snap;          /* its positions' own update times (exchange clock) */
    int64_t startup_since_ms;         /* start-up backfill from here (0 = none) */
    bool bf_busy, bf_startup, bf_again;
    int64_t bf_since, bf_again_since;
    char (*bf_syms)[MKT_SYMBOL_MAX];
    size_t bf_nsyms, bf_next;
    unsigned bf_attempts;
    struct mkt_fill *bf_fills;        /* collected until every symbol is in */
    size_t bf_n, bf_cap;
    struct mkt_fill *held_fills;      /* stream fills that arrived during a backfill, in order */
    size_t held_n, held_cap;
    struct exch_stream_stats ss_last; /* the stream's counters at the last look (they may reset) */
    uint64_t n_reconnects, n_silences;
    struct met_counter *m_backfilled;
    /* Account state (positions, mode, leverage, equity; copier_load.c). Leaders and followers with
     * orders to reconcile load before READY; every other follower loads after it, LOAD_PARALLEL at
     * a time, in the background (bg). Its rules' decisions wait in its deferred queue meanwhile. */
    bool state_ok;                    /* loaded: decisions for it may be made */
    bool bg;                          /* loaded in the background, after READY */
    bool ld_queued, ld_active, ld_urgent;
    struct acct *ld_prev, *ld_next;   /* the loading queue */
    void (*ld_resume)(uv_timer_t *);  /* the step a failed background load resumes at */
    struct defer_item *df_head, *df_tail; /* leader fills waiting for its state, in order */
    size_t df_n;
    bool df_busy;                     /* the head's decision is being journaled */
    bool df_retry;                    /* the head waits for the retry timer */
    struct fill_wait *fw_head, *fw_tail; /* (a leader) fills not journaled yet: followers loading */
    bool fw_bypass;                   /* copier_take_fill of a fill released from there */
    /* ---- Equity refreshes, paced per exchange host (copier_cache.c, refresh_pace.h) ---- */
    struct eq_host *eq_host;          /* its host's pace and queue */
    struct acct *eq_prev, *eq_next;   /* that queue: least recently refreshed (or tried) first */
    int64_t eq_at_ms;                 /* loop time its equity value is from, 0 = none yet */
    int64_t eq_try_ms;                /* loop time its last paced refresh started; the queue is
                                         ordered by the later of the two */
    bool eq_leader_q;                 /* in its host's leaders' queue (else the followers') */
    bool eq_loading;                  /* an exchange request for it is out: outlives the cache's
                                         wait (load_timeout_ms), so no second one is sent */
};

/* One copy rule's decision on one leader fill, waiting for its follower's state (copier_load.c).
 * Created with the fill's own journal write, which also journals its placeholder (a 'pending' row
 * of deferred_decisions, sql/010; armed once that write reports the fill new: the decision is
 * journaled after the fill, never before), or loaded from such a placeholder at start-up; decided
 * in order once the follower has its state, journaled with its placeholder resolved in the same
 * write (write-before-send) and sent. */
struct defer_item {
    struct defer_item *next;          /* the follower's queue */
    struct defer_item *fnext;         /* the leader fill's list (fill_job.defers) */
    bool armed;
    const char *reason;               /* not decided: why (its placeholder is resolved 'skipped') */
    struct mkt_fill fill;
    size_t leader, rule;
    struct copy_pos lpos;             /* the leader's position before the fill */
    dec_t leader_equity;
    struct fill_job *fj;              /* decided, not yet journaled (kept for a resubmission) */
};

struct snap_entry { /* "symbol/pos_side" of the start-up snapshot -> its update time */
    char key[MKT_SYMBOL_MAX + 4];
    int64_t update_ms;
    UT_hash_handle hh;
};

struct sym_entry {
    char symbol[MKT_SYMBOL_MAX];
    UT_hash_handle hh;
};

struct rule {
    struct copy_rule cr;              /* strings belong to the caller (the config) */
    struct copy_state st;
    /* COALESCE_SLOTS slots, allocated on the rule's first fill (rule_slots): inside the rule
     * they were 7 KiB each, 75 MB of resident memory with 10,000 rules that mostly never fill. */
    struct copy_accum *acc;
    bool coalesce;
    size_t leader, follower;
    bool enabled;
    /* Dropped by a reload: takes no new fills; kept (never moved or reused) because fills in the
     * journal's hands and orders in flight still name it by index. Its strings then live in
     * id_buf, not in a configuration that was freed. */
    bool removed;
    char id_buf[RULE_ID_MAX];
    struct met_gauge *m_status;       /* 0 active, 1 paused, 2 close_only, 3 removed */
    struct met_gauge *m_drift;        /* NULL for fixed_notional (no proportional target) */
    struct met_gauge *m_preflight;    /* problems found at start-up */
};

struct hwm_entry {
    char key[MKT_ACCOUNT_MAX + MKT_SYMBOL_MAX + 1];
    int64_t trade_seq;
    UT_hash_handle hh;
};

/* One follower order from intent to final answer. Lives in its lane's queue until it is at the
 * head, then in flight; freed from its timer's close callback. */
struct order_job {
    struct copier *c;
    struct lane *lane;
    struct order_job *next;     /* lane queue */
    struct order_job *lprev, *lnext; /* all live jobs */
    size_t follower;
    char symbol[MKT_SYMBOL_MAX];
    char client_id[MKT_CLIENT_ID_MAX];
    enum mkt_side side;
    enum mkt_pos_side pos_side;
    enum copy_order_type order_type;
    dec_t price;                /* limit_ioc */
    dec_t qty;
    dec_t pending;              /* amount added to the follower's pending position (slot pos_side) */
    bool reduce_only;
    int64_t received_ns;        /* leader frame arrival */
    unsigned send_attempts, query_attempts;
    bool in_flight;             /* a request is out */
    /* A start-up reconciliation of an order an earlier run journaled: queried first; found, its
     * fills are already in the start-up positions; absent and fresh, sent (then counted). */
    bool reconcile;
    bool no_resend;             /* found or not, never sent again (its position side is unknown) */
    unsigned final_checks;      /* queries of an accepted order that was not final yet */
    int64_t fill_wall_ms;       /* the leader fill's trade time on our wall clock, 0 = unknown */
    dec_t exec_seen;            /* executed quantity already counted in the position book */
    bool retry_query;           /* the timer fires a query (else a send) */
    struct fill_lat *fl;        /* its leader fill's latency record, NULL = not measured */
    bool fl_answered;           /* its first answer is in fl */
    uv_timer_t timer;
};

/* One leader fill's copies, for the per-fill latencies (GET /debug/latency and the
 * ct_copy_fill_*_latency_seconds histograms): frame received -> the LAST of its follower requests
 * written to its connection, and -> the last first answer. Shared by the fill's jobs, freed with
 * the last of them. */
struct fill_lat {
    int64_t received_ns, last_sent_ns, last_ans_ns;
    unsigned jobs, answered, refs;
    bool incomplete;            /* a job ended unanswered or its request was never written */
};

struct lane { /* (follower, symbol): orders go out one at a time, in order */
    char key[MKT_ACCOUNT_MAX + MKT_SYMBOL_MAX + 1];
    struct order_job *head, *tail;
    bool busy;
    UT_hash_handle hh;
};

/* One leader fill between the planning and the journal's answer. */
struct fill_job {
    struct copier *c;
    struct fill_job *next;        /* held queue */
    /* A start-up backfill fill older than the position snapshot: its delta was taken off the
     * leader's book first, so "already journaled" must not take it off again. */
    bool pre_adjusted;
    bool from_stream;             /* not a REST backfill: the journal may write it ahead */
    /* A deferred decision (copier_load.c): the fill is journaled already; only its intents are new. */
    bool deferred;
    bool spool_dup;               /* the spool took it for a repeat and wrote nothing: resubmit */
    bool submitted;               /* journal_write_fill took it once already */
    uint64_t attempt;             /* its journal attempt token (journal_fill.attempt), set at the
                                     first submission and kept across resubmissions */
    size_t dfollower;             /* deferred: the follower */
    struct defer_item *defers;    /* decisions waiting for this fill's journal answer */
    struct mkt_fill fill;
    size_t leader;
    dec_t leader_delta;           /* applied to the leader's slot fill.pos_side */
    size_t n;
    struct fill_item {
        struct copy_intent in;
        size_t rule;              /* index into copier.rules */
    } items[];                    /* n entries */
};

struct copier {
    /* Rule indexes grouped by follower (follows_build); NULL: observe_equity scans every rule. */
    size_t *follows;
    uv_loop_t *loop;
    struct journal *journal;
    struct met_registry *reg;
    struct rds *redis;
    struct lws_context *lws;
    struct acct *accts;
    size_t n_accts;
    struct rule *rules;
    size_t n_rules;
    struct instruments *insts;
    struct hwm_entry *hwm;
    struct lane *lanes;
    struct order_job *jobs;    /* every live job */
    size_t jobs_in_flight;     /* sent, not answered */
    size_t fills_in_journal;   /* journal writes not answered */
    /* Fills planned while the journal could not take them (not connected, queue full, or a
     * connection lost mid-write): resubmitted in order once it can. Never sent before that. */
    struct fill_job *held_head, *held_tail;
    size_t held;
    bool journal_up;
    uv_timer_t held_timer;
    struct position_book *pos;
    struct fill_dedupe *dedupe;
    unsigned position_ttl_ms;
    unsigned refresh_ms;       /* equity and ticker refresh period */
    bool started_refresh;
    /* ---- Equity refreshes, paced per exchange host (copier_cache.c, refresh_pace.h) ---- */
    struct eq_pacer *eq;       /* its own timer; NULL before copier_caches_init */
    uv_timer_t refresh_timer;
    bool started, ready, draining, freeing;
    struct copier_pending *pend;   /* start-up reconciliation (copier_reconcile.c) */
    size_t n_pend, reconcile_left;
    bool reconcile_started, reconciled;
    bool timers_inited;        /* drain_timer and every account's retry timer */
    unsigned closing_handles;
    size_t startup_pending;
    int phase; /* 0 time, 1 instruments, 2 positions, 3 streams (once the journal is up), 4 running */
    uv_timer_t drain_timer;
    void (*drain_done)(void *ud);
    void *drain_ud;
    /* metrics */
    struct met_family *f_orders, *f_skips, *f_fills, *f_dups, *f_stream_up;
    struct met_counter *m_journal_fail, *m_retries_throttled, *m_retries_absent, *m_retries_not_sent, *m_queries,
        *m_final_checks,
        *m_bad_frames, *m_stream_changes;
    struct met_hist *m_send_lat, *m_ack_lat, *m_e2e_lat, *m_fill_send_lat, *m_fill_ack_lat;
    struct lat_hist *h_fill_send, *h_fill_ack; /* microseconds, per leader fill */
    struct met_counter *m_skip[COPY_SKIP__COUNT];
    struct met_counter *m_dry_run, *m_lev_set, *m_lev_failed, *m_lev_skipped, *m_stops;
    struct met_family *f_rule_status, *f_rule_preflight, *f_rule_drift;
    struct met_counter *m_bf_ok, *m_bf_failed;
    struct cache *caches[4];   /* enum copier_cache (copier_cache.c) */
    struct met_family *f_backfilled, *f_reconnects, *f_silences;
    int64_t backfill_max_age_ms;
    uint64_t orders_sent;      /* first sends (not resends or queries) */
    unsigned snap_elapsed_ms;  /* since the last position snapshot */
    unsigned resync_elapsed_ms; /* since the last server time re-sync */
    struct rules_in_state { const struct copier *c; int status; } rules_in[COPY_STATUS__COUNT];
    /* Background loading of follower state (copier_load.c). */
    struct acct *ld_head, *ld_tail, *ld_utail; /* ld_utail: the last urgent one queued */
    size_t ld_active, ld_left, ld_total;
    bool ld_pumping;
    int64_t ld_start_ns;
    size_t df_items, df_retrying;
    uv_timer_t df_timer;
    bool df_loading;                  /* start-up: journal_load_defers asked, not answered */
    unsigned df_load_tries;
    size_t fw_items;                  /* leader fills waiting, unjournaled, for followers' state */
    unsigned state_wait_ms;           /* how long at most (daemon.follower_state_wait_ms) */
    uv_timer_t fw_timer;
    void (*on_ready)(void *ud);
    void *on_ready_ud;
};

/* Shared between the copier's files (defined in copier.c unless noted). */
void copier_on_fill(void *ud, const struct mkt_fill *f);   /* an exch_stream_cbs.on_fill */
/* Takes one leader fill (dedupe, engine, journal, orders); false if it was a duplicate or could
 * not be taken. pre_adjusted: see struct fill_job. */
bool copier_take_fill(struct acct *leader, const struct mkt_fill *f, bool pre_adjusted, bool from_stream);
/* true if the fill was taken before (start-up mark or memory); adds nothing. */
bool copier_fill_seen(const struct copier *c, const struct mkt_fill *f);
void copier_check_ready(struct copier *c);
bool copier_fill_in_snapshot(const struct acct *a, const struct mkt_fill *f);
/* copier_backfill.c */
void copier_backfill_start(struct acct *a, int64_t since_ms, bool startup);
void copier_backfill_hold(struct acct *a, const struct mkt_fill *f); /* a stream fill meanwhile */
void copier_backfill_free(struct acct *a);
/* copier_cache.c */
enum copier_cache { COPIER_CACHE_TICKERS, COPIER_CACHE_BALANCES, COPIER_CACHE_POSITIONS,
                    COPIER_CACHE_INSTRUMENTS, COPIER_CACHE__COUNT };
struct cache;
int copier_caches_init(struct copier *c, const struct copier_deps *d);
void copier_caches_free(struct copier *c);
void copier_cache_tickers(struct instruments *t);      /* refresh through the cache */
void copier_cache_equity(struct acct *a);              /* refresh through the cache */
/* Equity refreshes, paced within EQ_SHARE_PCT of each exchange host's IP budget, leaders first,
 * then the least recently refreshed follower (copier_cache.c). Started with the refresh timer;
 * stops by itself when the copier drains or closes; freed by copier_caches_free. */
void copier_equity_pace_start(struct copier *c);
void copier_cache_instruments(struct instruments *t);  /* refresh when the entry expired */
void copier_cache_position(struct acct *a, const char *symbol); /* its position changed */
void copier_cache_put_tickers(struct instruments *t, const struct exch_ticker *v, size_t n);
void copier_cache_put_balance(struct acct *a, const struct exch_balance *b);
void copier_cache_put_instruments(struct instruments *t, const struct mkt_instrument *v, size_t n);
void copier_observe_equity(struct acct *a, dec_t equity); /* copier.c: loss stops, sizing */
/* copier_load.c */
#define LOAD_PARALLEL 16        /* background follower loads at once (the REST budgets pace them) */
#define DEFER_MAX 200000        /* decisions waiting for follower state (~400 bytes each); beyond,
                                 * not copied */
#define DEFER_RETRY_MS 100
int copier_load_init(struct copier *c);
void copier_load_enqueue(struct acct *a);          /* a background account, at the tail */
void copier_load_pump(struct copier *c);           /* starts loads while slots are free */
void copier_load_failed(struct acct *a, void (*again)(uv_timer_t *), unsigned ms);
void copier_load_done(struct acct *a);             /* its state is in */
void copier_load_urgent(struct acct *a);           /* to the front of the queue (a fill waits) */
bool copier_follower_waits(const struct acct *f);  /* decisions for it must be deferred */
int copier_defer(struct fill_job *fj, size_t rule, const struct copy_pos *lpos, dec_t leader_equity);
void copier_defer_settle(struct fill_job *fj, bool fill_taken); /* A's answer: arm or cancel */
bool copier_defer_journaled(struct fill_job *fj, const struct journal_fill_result *res);
void copier_load_free(struct copier *c);
size_t copier_load_waiting(const struct copier *c);
void copier_load_expire(struct copier *c);         /* refresh timer: decisions past the window */
/* fill_submit: a fill's placeholders (fj->defers) or the placeholder its deferred decision
 * resolves, into jf; *store (freed by the caller after journal_write_fill) holds their text. */
struct journal_fill;
int copier_defer_journal(struct copier *c, const struct fill_job *fj, struct journal_fill *jf, void **store);
/* copier_reconcile.c: the placeholders an earlier run left pending become defer_items again,
 * before the leader streams open. */
void copier_defer_load(struct copier *c, const struct journal_pending_defer *v, size_t n);
void copier_defer_kick_all(struct copier *c);      /* reconciliation done: decide what can be */
double copier_defers_pending_metric(void *ud);    /* ct_journal_deferred_pending */
/* A leader fill that a follower still loading must copy waits here whole, unjournaled (true:
 * taken), up to daemon.follower_state_wait_ms; see copier_load.c. */
bool copier_fill_wait(struct acct *leader, const struct mkt_fill *f, bool pre_adjusted, bool from_stream);
void copier_fill_wait_drop(struct copier *c);      /* drain and free: left to the next backfill */
/* copier.c, for copier_load.c */
int copier_fill_submit(struct copier *c, struct fill_job *fj);
void copier_revert_pending(struct copier *c, struct fill_job *fj);
void copier_enqueue_intents(struct copier *c, struct fill_job *fj, const struct journal_fill_result *res,
                            struct fill_lat *fl);
void copier_preflight_follower(struct copier *c, struct acct *a);
void copier_open_stream(struct acct *a);
void copier_decide_rule(struct copier *c, struct fill_job *fj, size_t rule, const struct mkt_fill *f,
                        struct copy_pos lpos, dec_t leader_equity, int64_t now_ms);
bool copier_sendable(const struct copy_intent *in);
void copier_add_pending(struct copier *c, const char *follower, const char *symbol,
                        const struct copy_intent *in, bool undo);
void copier_do_positions(uv_timer_t *t);
void copier_drain_check(struct copier *c);         /* a drain waiting for the copier may end */
/* copier_reconcile.c */
int copier_reconcile_copy(struct copier *c, const struct copier_pending *v, size_t n);
void copier_reconcile_start(struct copier *c); /* sets c->reconciled when there is nothing to do */
void copier_reconcile_job_done(struct copier *c);
void copier_reconcile_free(struct copier *c);
/* copier.c, for copier_reconcile.c */
struct order_job *copier_job_new(struct copier *c, size_t follower, const char *symbol);
void copier_lane_kick(struct copier *c, struct lane *l);
void copier_startup_next(struct copier *c);
int64_t copier_now_ns(void);
int64_t copier_exchange_now_ms(const struct acct *a);
void copier_note_held(struct acct *a, const char *symbol);
struct copy_pos copier_pos_view(const struct copier *c, const char *account, const char *symbol,
                                bool expected);

#endif
