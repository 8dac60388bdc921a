#include "copier.h"
#include "copier_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <uthash.h>

#include "copy_engine.h"
#include "copy_preflight.h"
#include "copy_state.h"
#include "exchange.h"
#include "fill_dedupe.h"
#include "journal.h"
#include "log.h"
#include "market.h"
#include "metrics.h"
#include "position_book.h"
#include "redis_client.h"

#define TAG "copier"
static void startup_next(struct copier *c);
static void lane_kick(struct copier *c, struct lane *l);
static void job_send(struct order_job *j);
static void job_query(struct order_job *j);
static void drain_check(struct copier *c);
static void held_retry(uv_timer_t *t);
static void fill_hold(struct copier *c, struct fill_job *fj);
static bool may_retry(const struct order_job *j);
static void snapshot_positions(struct copier *c, struct acct *a, const char *source);
static void open_ticker_streams(struct copier *c);
static void open_stream(struct acct *a);
static uint64_t retry_backoff_ms(const struct order_job *j);

int64_t copier_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *fmt_dec(dec_t d, char buf[DEC_STR_MAX]) {
    if (dec_format(d, buf, DEC_STR_MAX) < 0) snprintf(buf, DEC_STR_MAX, "?");
    return buf;
}

/* Wall clock in the exchange's time (what trade and ticker times are in). */
int64_t copier_exchange_now_ms(const struct acct *a) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + exch_account_time_offset_ms(a->ex);
}

void copier_note_held(struct acct *a, const char *symbol) {
    struct sym_entry *e = NULL;
    HASH_FIND_STR(a->held, symbol, e);
    if (e || !(e = calloc(1, sizeof(*e)))) return;
    snprintf(e->symbol, sizeof(e->symbol), "%s", symbol);
    HASH_ADD_STR(a->held, symbol, e);
}

struct copy_pos copier_pos_view(const struct copier *c, const char *account, const char *symbol,
                                bool expected) {
    dec_t (*get)(const struct position_book *, const char *, const char *, enum mkt_pos_side) =
        expected ? position_book_expected : position_book_live;
    return (struct copy_pos){
        .net = get(c->pos, account, symbol, MKT_PS_BOTH),
        .long_size = get(c->pos, account, symbol, MKT_PS_LONG),
        .short_size = get(c->pos, account, symbol, MKT_PS_SHORT),
    };
}

/* A lev_map, not a hash table: one per follower, listing every symbol of its exchange (lev_map.h). */
static int follower_leverage(const struct acct *a, const char *symbol) {
    return lev_map_get(a->lev, symbol);
}

/* Never stale: a known symbol's changes in place; a new one that cannot be added (out of memory)
 * and a leverage outside 1..255 leave the symbol unknown (0). */
static void set_follower_leverage(struct acct *a, const char *symbol, int leverage) {
    (void)lev_map_set(&a->lev, symbol, leverage);
}

static void pair_key(char *out, size_t n, const char *a, const char *b) {
    snprintf(out, n, "%s\x1f%s", a, b);
}

/* ---- instruments ------------------------------------------------------------------------ */

static struct instruments *instruments_get(struct copier *c, const char *url) {
    struct instruments *t = NULL;
    HASH_FIND_STR(c->insts, url, t);
    if (t) return t;
    t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    snprintf(t->url, sizeof(t->url), "%s", url);
    HASH_ADD_STR(c->insts, url, t);
    return t;
}

/* ---- metrics ---------------------------------------------------------------------------- */

static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                        0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

/* ct_rules{state}: counted from the ct_rule_status gauges at scrape time, so it never disagrees. */
static double rules_in_state(void *ud) {
    const struct rules_in_state *ri = ud;
    size_t n = 0;
    for (size_t i = 0; i < ri->c->n_rules; i++)
        if ((int)met_gauge_value(ri->c->rules[i].m_status) == ri->status) n++;
    return (double)n;
}

static int rule_metrics_init(struct copier *c, struct rule *r) {
    r->m_status = met_gauge_child(c->f_rule_status, r->cr.id);
    r->m_preflight = met_gauge_child(c->f_rule_preflight, r->cr.id);
    if (!r->m_status || !r->m_preflight) return -ENOMEM;
    if (r->cr.sizing != COPY_SIZING_FIXED_NOTIONAL && !r->m_drift &&
        !(r->m_drift = met_gauge_child(c->f_rule_drift, r->cr.id)))
        return -ENOMEM;
    met_gauge_set(r->m_status, (double)copy_state_status(&r->st));
    return 0;
}

static uint64_t c_reconnects(void *ud);
static uint64_t c_silences(void *ud);

/* The per-leader series; also for an account that becomes a leader with a reload. */
static int leader_metrics_init(struct copier *c, struct acct *a) {
    struct met_counter *rc, *sc;
    if (a->m_fills) return 0;
    a->m_fills = met_counter_child(c->f_fills, a->name);
    a->m_dups = met_counter_child(c->f_dups, a->name);
    a->m_stream_up = met_gauge_child(c->f_stream_up, a->name);
    a->m_backfilled = met_counter_child(c->f_backfilled, a->name);
    rc = met_counter_child(c->f_reconnects, a->name);
    sc = met_counter_child(c->f_silences, a->name);
    if (!a->m_fills || !a->m_dups || !a->m_stream_up || !a->m_backfilled || !rc || !sc) return -ENOMEM;
    met_counter_set_fn(rc, c_reconnects, a);
    met_counter_set_fn(sc, c_silences, a);
    return 0;
}

static double g_followers_loading(void *ud) { return (double)((const struct copier *)ud)->ld_left; }
static double g_decisions_waiting(void *ud) { return (double)((const struct copier *)ud)->df_items; }
static double g_fills_waiting(void *ud) { return (double)((const struct copier *)ud)->fw_items; }

static int metrics_init(struct copier *c) {
    struct met_registry *r = c->reg;
    c->f_orders = met_counter_new(r, "ct_follower_orders_total",
                                  "Follower orders by final result (skipped = never sent).",
                                  "follower", "exchange", "result");
    c->f_skips = met_counter_new(r, "ct_copy_skips_total", "Intents not sent, by reason.", "reason");
    c->f_fills = met_counter_new(r, "ct_leader_fills_total", "New leader fills taken.", "leader");
    c->f_dups = met_counter_new(r, "ct_leader_fills_duplicate_total",
                                "Leader fills seen again and ignored (memory, start-up mark or journal).",
                                "leader");
    c->f_stream_up = met_gauge_new(r, "ct_stream_up", "1 while the leader stream is connected.",
                                   "account");
    struct met_family *jf = met_counter_new(r, "ct_copy_journal_failures_total",
                                            "Leader fills whose intents could not be journaled (not sent).");
    struct met_family *rf = met_counter_new(r, "ct_order_retries_total",
                                            "Order resends with the same client id, by cause.", "cause");
    struct met_family *qf = met_counter_new(r, "ct_order_queries_total",
                                            "Order queries by client id after an unknown outcome.");
    struct met_family *bf = met_counter_new(r, "ct_stream_bad_frames_total",
                                            "Leader stream frames that could not be parsed.");
    struct met_family *sf = met_counter_new(r, "ct_stream_state_changes_total",
                                            "Leader stream connects and losses.");
    struct met_family *sl = met_histogram_new(
        r, "ct_copy_send_latency_seconds",
        "Leader frame received to follower order request handed to the connection pool.",
        latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
    struct met_family *al = met_histogram_new(
        r, "ct_copy_ack_latency_seconds", "Leader frame received to follower order answered.",
        latency_bounds, sizeof(latency_bounds) / sizeof(latency_bounds[0]));
    c->f_backfilled = met_counter_new(r, "ct_backfill_fills_total",
                                      "Leader fills the stream missed, found by a REST backfill and taken.", "leader");
    c->f_reconnects = met_counter_new(r, "ct_stream_reconnects_total",
                                      "Leader stream reconnects (after a loss, a refusal or a silence).", "account");
    c->f_silences = met_counter_new(r, "ct_stream_silences_total",
                                    "Leader streams declared dead because nothing (no data, no pong) came within the bound.",
                                    "account");
    {
        struct met_family *fl = met_gauge_new(r, "ct_followers_loading",
                                              "Follower accounts whose state (positions, mode, leverage, equity) "
                                              "is still loading after start-up; their copies wait for it.");
        struct met_family *dw = met_gauge_new(r, "ct_copy_decisions_waiting",
                                              "Copy rule decisions on leader fills waiting for their follower's state.");
        struct met_family *fw = met_gauge_new(r, "ct_leader_fills_waiting",
                                              "Leader fills not journaled yet, waiting (up to "
                                              "follower_state_wait_ms) for their followers' state.");
        struct met_gauge *g1 = fl ? met_gauge_child(fl) : NULL, *g2 = dw ? met_gauge_child(dw) : NULL;
        struct met_gauge *g3 = fw ? met_gauge_child(fw) : NULL;
        struct met_family *dp = met_gauge_new(r, "ct_journal_deferred_pending",
                                              "Placeholders of deferred copy decisions pending in the journal "
                                              "(deferred_decisions rows to decide, including earlier runs').");
        struct met_gauge *g4 = dp ? met_gauge_child(dp) : NULL;
        if (!g1 || !g2 || !g3 || !g4 || met_gauge_set_fn(g1, g_followers_loading, c) < 0 ||
            met_gauge_set_fn(g2, g_decisions_waiting, c) < 0 || met_gauge_set_fn(g3, g_fills_waiting, c) < 0 ||
            met_gauge_set_fn(g4, copier_defers_pending_metric, c) < 0)
            return -ENOMEM;
    }
    struct met_family *bfr = met_counter_new(r, "ct_backfill_runs_total",
                                             "Backfills after a stream (re)connect, by result.", "result");
    if (!c->f_orders || !c->f_skips || !c->f_fills || !c->f_dups || !c->f_stream_up || !jf || !rf ||
        !qf || !bf || !sf || !sl || !al || !c->f_backfilled || !c->f_reconnects || !c->f_silences || !bfr ||
        !(c->m_bf_ok = met_counter_child(bfr, "ok")) || !(c->m_bf_failed = met_counter_child(bfr, "failed")))
        return -ENOMEM;
    c->m_journal_fail = met_counter_child(jf);
    c->m_retries_throttled = met_counter_child(rf, "throttled");
    c->m_retries_absent = met_counter_child(rf, "confirmed_absent");
    c->m_retries_not_sent = met_counter_child(rf, "not_sent");
    struct met_family *fcf = met_counter_new(r, "ct_order_final_checks_total",
                                             "Queries of an accepted market or IOC order the exchange had not "
                                             "reported final yet (Bybit answers a placement before the fill).");
    c->m_final_checks = fcf ? met_counter_child(fcf) : NULL;
    c->m_queries = met_counter_child(qf);
    c->m_bad_frames = met_counter_child(bf);
    c->m_stream_changes = met_counter_child(sf);
    c->m_send_lat = met_hist_child(sl);
    {
        static const double e2e_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
        struct met_family *ef = met_histogram_new(
            r, "ct_copy_e2e_latency_seconds",
            "Leader fill at the exchange (its trade time, corrected by the measured clock offset) to "
            "follower order answered.", e2e_bounds, sizeof(e2e_bounds) / sizeof(e2e_bounds[0]));
        if (!ef || !(c->m_e2e_lat = met_hist_child(ef))) return -ENOMEM;
    }
    c->m_ack_lat = met_hist_child(al);
    {
        /* Per leader fill, finer below a millisecond: the budget of the hot path is there. */
        static const double fb[] = {0.00005, 0.0001, 0.00015, 0.0002, 0.00025, 0.0003, 0.0004, 0.0005,
                                    0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015,
                                    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
        struct met_family *fs = met_histogram_new(
            r, "ct_copy_fill_send_latency_seconds",
            "Per leader fill: frame received to the fill's last follower request written to its connection.",
            fb, sizeof(fb) / sizeof(fb[0]));
        struct met_family *fa = met_histogram_new(
            r, "ct_copy_fill_ack_latency_seconds",
            "Per leader fill: frame received to the fill's last follower order answered.",
            fb, sizeof(fb) / sizeof(fb[0]));
        if (!fs || !fa || !(c->m_fill_send_lat = met_hist_child(fs)) || !(c->m_fill_ack_lat = met_hist_child(fa)))
            return -ENOMEM;
    }
    {
        struct met_family *lf = met_counter_new(r, "ct_leverage_changes_total",
                                                "Follower leverage changes copied from leaders, by result.", "result");
        struct met_family *sf2 = met_counter_new(r, "ct_rule_stops_total",
                                                 "Copy rules moved to close_only by a loss stop.", "reason");
        struct met_family *rs = met_gauge_new(r, "ct_rule_status",
                                              "Copy rule state: 0 active, 1 paused, 2 close_only, 3 removed by a reload.", "rule");
        struct met_family *pf = met_gauge_new(r, "ct_rule_preflight_problems",
                                              "Problems the start-up pre-flight check found for a rule.", "rule");
        struct met_family *rc = met_gauge_new(r, "ct_rules", "Copy rules by state.", "state");
        if (!lf || !sf2 || !rs || !pf || !rc) return -ENOMEM;
        c->f_rule_status = rs;
        c->f_rule_preflight = pf;
        c->f_rule_drift = met_gauge_new(r, "ct_rule_position_drift_steps",
                                        "Largest distance, over the symbols the leader or follower has held, "
                                        "between the follower's position and the leader's x the rule's factor, "
                                        "in the follower's quantity steps (multiplier and equity_ratio rules; "
                                        "refreshed every account_refresh_ms).", "rule");
        if (!c->f_rule_drift) return -ENOMEM;
        for (int k = 0; k < COPY_STATUS__COUNT; k++) {
            struct met_gauge *g = met_gauge_child(rc, copy_status_name((enum copy_status)k));
            if (!g) return -ENOMEM;
            c->rules_in[k] = (struct rules_in_state){c, k};
            met_gauge_set_fn(g, rules_in_state, &c->rules_in[k]);
        }
        c->m_lev_set = met_counter_child(lf, "set");
        c->m_lev_failed = met_counter_child(lf, "failed");
        c->m_lev_skipped = met_counter_child(lf, "skipped");
        c->m_stops = met_counter_child(sf2, "loss_stop");
        c->m_dry_run = met_counter_child(c->f_skips, "dry_run");
        if (!c->m_lev_set || !c->m_lev_failed || !c->m_lev_skipped || !c->m_stops || !c->m_dry_run)
            return -ENOMEM;
        for (size_t i = 0; i < c->n_rules; i++)
            if (rule_metrics_init(c, &c->rules[i]) < 0) return -ENOMEM;
    }
    for (int s = 1; s < COPY_SKIP__COUNT; s++) {
        c->m_skip[s] = met_counter_child(c->f_skips, copy_skip_name((enum copy_skip)s));
        if (!c->m_skip[s]) return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_accts; i++) {
        struct acct *a = &c->accts[i];
        a->m_filled = met_counter_child(c->f_orders, a->name, a->exchange, "filled");
        a->m_partial = met_counter_child(c->f_orders, a->name, a->exchange, "partially_filled");
        a->m_acked = met_counter_child(c->f_orders, a->name, a->exchange, "acked");
        a->m_rejected = met_counter_child(c->f_orders, a->name, a->exchange, "rejected");
        a->m_unknown = met_counter_child(c->f_orders, a->name, a->exchange, "unknown");
        a->m_canceled = met_counter_child(c->f_orders, a->name, a->exchange, "canceled");
        a->m_expired = met_counter_child(c->f_orders, a->name, a->exchange, "expired");
        a->m_skipped = met_counter_child(c->f_orders, a->name, a->exchange, "skipped");
        if (!a->m_filled || !a->m_partial || !a->m_acked || !a->m_rejected || !a->m_unknown ||
            !a->m_canceled || !a->m_expired || !a->m_skipped || (a->is_leader && leader_metrics_init(c, a) < 0))
            return -ENOMEM;
    }
    if (!c->m_journal_fail || !c->m_retries_throttled || !c->m_retries_absent || !c->m_retries_not_sent ||
        !c->m_final_checks || !c->m_queries ||
        !c->m_bad_frames || !c->m_stream_changes || !c->m_send_lat || !c->m_ack_lat)
        return -ENOMEM;
    return 0;
}

/* ---- order jobs ------------------------------------------------------------------------- */

static void job_closed(uv_handle_t *h) { free(h->data); }

/* A job's first answer (or its end without one): when the fill's last job is in, its latencies
 * are recorded. */
static void fill_lat_answer(struct copier *c, struct order_job *j, int64_t sent_ns) {
    struct fill_lat *fl = j->fl;
    if (!fl || j->fl_answered) return;
    j->fl_answered = true;
    int64_t now = copier_now_ns();
    if (sent_ns <= 0) fl->incomplete = true;
    if (sent_ns > fl->last_sent_ns) fl->last_sent_ns = sent_ns;
    if (now > fl->last_ans_ns) fl->last_ans_ns = now;
    if (++fl->answered < fl->jobs || fl->incomplete) return;
    int64_t send_ns = fl->last_sent_ns - fl->received_ns, ack_ns = fl->last_ans_ns - fl->received_ns;
    lat_hist_record(c->h_fill_send, send_ns / 1000);
    lat_hist_record(c->h_fill_ack, ack_ns / 1000);
    met_hist_observe(c->m_fill_send_lat, (double)send_ns / 1e9);
    met_hist_observe(c->m_fill_ack_lat, (double)ack_ns / 1e9);
}

static void fill_lat_release(struct order_job *j) {
    if (j->fl && --j->fl->refs == 0) free(j->fl);
    j->fl = NULL;
}

static void job_free(struct order_job *j) {
    struct copier *c = j->c;
    if (j->fl && !j->fl_answered) {
        j->fl->incomplete = true;
        fill_lat_answer(c, j, 0);
    }
    fill_lat_release(j);
    if (j->lprev) j->lprev->lnext = j->lnext; else c->jobs = j->lnext;
    if (j->lnext) j->lnext->lprev = j->lprev;
    uv_close((uv_handle_t *)&j->timer, job_closed);
}

static struct lane *lane_get(struct copier *c, const char *follower, const char *symbol) {
    char key[sizeof(((struct lane *)0)->key)];
    struct lane *l = NULL;
    pair_key(key, sizeof(key), follower, symbol);
    HASH_FIND_STR(c->lanes, key, l);
    if (l) return l;
    l = calloc(1, sizeof(*l));
    if (!l) return NULL;
    memcpy(l->key, key, sizeof(key));
    HASH_ADD_STR(c->lanes, key, l);
    return l;
}

static void publish_position(struct copier *c, struct acct *a, const char *symbol) {
    (void)c;
    copier_cache_position(a, symbol); /* in process at once, Redis fire-and-forget */
}

static enum journal_status status_of(enum exch_order_status st) {
    switch (st) {
    case EXCH_ST_FILLED: return JOURNAL_FILLED;
    case EXCH_ST_PARTIALLY_FILLED: return JOURNAL_PARTIALLY_FILLED;
    case EXCH_ST_CANCELED: return JOURNAL_CANCELED;
    case EXCH_ST_EXPIRED: return JOURNAL_EXPIRED;
    case EXCH_ST_REJECTED: return JOURNAL_REJECTED;
    case EXCH_ST_NEW:
    default: return JOURNAL_ACKED;
    }
}

static void record(struct copier *c, const struct order_job *j, enum journal_status st,
                   const struct exch_order_result *r) {
    char exq[DEC_STR_MAX], avg[DEC_STR_MAX];
    struct journal_result jr = {
        .client_order_id = j->client_id,
        .status = st,
        .exchange_order_id = r ? r->order_id : NULL,
        .executed_qty = r && r->outcome == EXCH_OK ? fmt_dec(r->executed_qty, exq) : NULL,
        .avg_price = r && r->outcome == EXCH_OK ? fmt_dec(r->avg_price, avg) : NULL,
        .error_code = r ? r->error_code : 0,
        .error_msg = r && r->error_msg[0] ? r->error_msg : NULL,
    };
    int e = journal_record_result(c->journal, &jr);
    if (e < 0)
        log_error(TAG, "journal: cannot queue result %s for %s: %s", journal_status_name(st),
                  j->client_id, strerror(-e));
}

/* The job is finished (whatever the outcome): free its lane for the next order. */
static void job_done(struct order_job *j) {
    struct copier *c = j->c;
    struct lane *l = j->lane;
    if (j->in_flight) {
        j->in_flight = false;
        c->jobs_in_flight--;
    }
    if (position_book_add_pending(c->pos, c->accts[j->follower].name, j->symbol, j->pos_side,
                                  dec_neg(j->pending)) < 0)
        log_error(TAG, "%s %s: pending position overflow", c->accts[j->follower].name, j->symbol);
    l->head = j->next;
    if (!l->head) l->tail = NULL;
    l->busy = false;
    bool reconcile = j->reconcile;
    job_free(j);
    drain_check(c);
    if (!c->freeing) lane_kick(c, l);
    if (reconcile) copier_reconcile_job_done(c);
}

static void job_timer_cb(uv_timer_t *t) {
    struct order_job *j = t->data;
    if (j->retry_query) job_query(j);
    else if (!j->c->draining) job_send(j); /* draining: left as it is for the next start */
}

static void job_retry(struct order_job *j, bool query, uint64_t ms) {
    j->retry_query = query;
    uv_timer_start(&j->timer, job_timer_cb, ms, 0);
}

/* An answer that settles the order (EXCH_OK from a placement or a query). */
static void job_settled(struct order_job *j, const struct exch_order_result *r) {
    struct copier *c = j->c;
    struct acct *f = &c->accts[j->follower];
    char q[DEC_STR_MAX], p[DEC_STR_MAX];
    enum journal_status st = status_of(r->status);
    dec_t more;

    /* Only what was not counted at an earlier look at this order (a follow-up query below). An
     * order an earlier run placed is in the start-up positions already. */
    if (dec_sub(r->executed_qty, j->exec_seen, &more) < 0 || dec_sign(more) < 0) more = DEC_ZERO;
    j->exec_seen = dec_max(j->exec_seen, r->executed_qty);
    if (!dec_is_zero(more) && !(j->reconcile && j->send_attempts == 0)) {
        copier_note_held(f, j->symbol);
        if (position_book_add_live(c->pos, f->name, j->symbol, j->pos_side,
                                   position_book_delta(j->side, j->pos_side, more)) < 0)
            log_error(TAG, "%s %s: position overflow", f->name, j->symbol);
        publish_position(c, f, j->symbol);
    }
    /* A market or IOC order is final within moments, but some exchanges answer the placement
     * before it fills (Bybit's create returns only the ids). The lane waits and asks again, so
     * the next order of this follower and symbol is sized on the real fill. */
    if ((st == JOURNAL_ACKED || st == JOURNAL_PARTIALLY_FILLED) && j->final_checks < MAX_FINAL_CHECKS &&
        !c->freeing) {
        if (j->final_checks++ == 0) record(c, j, st, r);
        met_counter_inc(c->m_final_checks);
        job_retry(j, true, FINAL_CHECK_MS << (j->final_checks < 6 ? j->final_checks : 6));
        return;
    }
    switch (st) {
    case JOURNAL_FILLED: met_counter_inc(f->m_filled); break;
    case JOURNAL_PARTIALLY_FILLED: met_counter_inc(f->m_partial); break;
    case JOURNAL_CANCELED: met_counter_inc(f->m_canceled); break;
    case JOURNAL_EXPIRED: met_counter_inc(f->m_expired); break;
    case JOURNAL_REJECTED: met_counter_inc(f->m_rejected); break;
    default: met_counter_inc(f->m_acked); break;
    }
    if (!j->reconcile) met_hist_observe(c->m_ack_lat, (double)(copier_now_ns() - j->received_ns) / 1e9);
    if (!j->reconcile && j->fill_wall_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - j->fill_wall_ms;
        met_hist_observe(c->m_e2e_lat, ms > 0 ? (double)ms / 1000.0 : 0);
    }
    log_debug(TAG, "%s %s %s %s: %s executed %s at %s", f->name, j->symbol,
              j->side == MKT_BUY ? "BUY" : "SELL", j->client_id, journal_status_name(st),
              fmt_dec(r->executed_qty, q), fmt_dec(r->avg_price, p));
    record(c, j, st, r);
    job_done(j);
}

static void on_query(void *ud, const struct exch_order_result *r) {
    struct order_job *j = ud;
    struct copier *c = j->c;
    struct acct *f = &c->accts[j->follower];

    j->in_flight = false;
    c->jobs_in_flight--;
    if (c->freeing) {
        job_done(j);
        return;
    }
    switch (r->outcome) {
    case EXCH_OK:
        if (j->final_checks == 0)
            log_info(TAG, "%s %s: order %s found after an unknown outcome", f->name, j->symbol, j->client_id);
        job_settled(j, r);
        return;
    case EXCH_NOT_FOUND:
        /* Confirmed never placed: the one case where resending the same client id is allowed. */
        if (!may_retry(j)) {
            /* Never placed, and too old to place now: skipped as stale (the drift gauge shows
             * what the follower misses). */
            struct exch_order_result nr = *r;
            nr.outcome = EXCH_REJECTED;
            snprintf(nr.error_msg, sizeof(nr.error_msg), "stale");
            log_error(TAG, "%s %s: order %s confirmed absent and the leader fill is %" PRId64 " ms old: "
                      "not sent (skipped as stale)", f->name, j->symbol, j->client_id,
                      (copier_now_ns() - j->received_ns) / 1000000);
            met_counter_inc(f->m_skipped);
            record(c, j, JOURNAL_SKIPPED, &nr);
            job_done(j);
            return;
        }
        log_warn(TAG, "%s %s: order %s confirmed absent, resending it", f->name, j->symbol, j->client_id);
        met_counter_inc(c->m_retries_absent);
        if (j->reconcile && j->send_attempts == 0 && dec_is_zero(j->pending)) {
            /* It goes out now, after the start-up positions: expect it like any new order. */
            j->pending = position_book_delta(j->side, j->pos_side, j->qty);
            position_book_add_pending(c->pos, f->name, j->symbol, j->pos_side, j->pending);
        }
        job_send(j);
        return;
    default:
        if (j->query_attempts < MAX_QUERY_ATTEMPTS) {
            job_retry(j, true, (uint64_t)QUERY_BACKOFF_MS << (j->query_attempts < 5 ? j->query_attempts : 5));
            return;
        }
        break;
    }
    /* Still unknown: leave it 'unknown' for reconciliation; never resend blindly. */
    log_error(TAG, "%s %s: order %s outcome still unknown after %u queries (%s), left for reconciliation",
              f->name, j->symbol, j->client_id, j->query_attempts, r->error_msg);
    met_counter_inc(f->m_unknown);
    job_done(j);
}

static void job_query(struct order_job *j) {
    struct copier *c = j->c;
    int e;
    j->query_attempts++;
    met_counter_inc(c->m_queries);
    e = exch_query_order(c->accts[j->follower].ex, j->symbol, j->client_id, on_query, j);
    if (e < 0) {
        log_error(TAG, "%s: cannot query order %s: %s", c->accts[j->follower].name, j->client_id, strerror(-e));
        job_retry(j, true, QUERY_BACKOFF_MS);
        return;
    }
    j->in_flight = true;
    c->jobs_in_flight++;
}

/* An order that was not placed (throttled, not sent) goes again with the same client id while
 * the leader's fill is recent: RETRY_WINDOW_MS. Later, the copy would land at a price the leader
 * never saw; it is recorded as rejected instead (and shows in the drift gauge). */
static bool may_retry(const struct order_job *j) {
    return !j->c->freeing && !j->no_resend && j->send_attempts < MAX_SEND_ATTEMPTS &&
           copier_now_ns() - j->received_ns < (int64_t)RETRY_WINDOW_MS * 1000000;
}

static uint64_t retry_backoff_ms(const struct order_job *j) {
    unsigned n = j->send_attempts < 7 ? j->send_attempts : 7;
    return (uint64_t)RETRY_BACKOFF_MS << n; /* 200 ms doubling up to ~25 s */
}

static void on_placed(void *ud, const struct exch_order_result *r) {
    struct order_job *j = ud;
    struct copier *c = j->c;
    struct acct *f = &c->accts[j->follower];

    j->in_flight = false;
    c->jobs_in_flight--;
    fill_lat_answer(c, j, r->sent_ns);
    switch (r->outcome) {
    case EXCH_OK:
        job_settled(j, r);
        return;
    case EXCH_REJECTED:
    case EXCH_NOT_FOUND:
        /* No HTTP answer and no exchange code: the request never left (circuit open, budget wait
         * exceeded, connect failed). Nothing exists under this id, so the same id may go again. */
        if (r->outcome == EXCH_REJECTED && r->http_status == 0 && r->error_code == 0 && may_retry(j)) {
            uint64_t ms = retry_backoff_ms(j);
            log_warn(TAG, "%s %s: order %s: %s; trying again in %" PRIu64 " ms", f->name,
                     j->symbol, j->client_id, r->error_msg, ms);
            met_counter_inc(c->m_retries_not_sent);
            job_retry(j, false, ms);
            return;
        }
        log_warn(TAG, "%s %s: order %s rejected: %d %s", f->name, j->symbol, j->client_id,
                 r->error_code, r->error_msg);
        met_counter_inc(f->m_rejected);
        met_hist_observe(c->m_ack_lat, (double)(copier_now_ns() - j->received_ns) / 1e9);
        record(c, j, JOURNAL_REJECTED, r);
        job_done(j);
        return;
    case EXCH_THROTTLED:
        if (may_retry(j)) {
            uint64_t ms = r->retry_after_ms > 0 ? (uint64_t)r->retry_after_ms : retry_backoff_ms(j);
            log_warn(TAG, "%s %s: order %s throttled (%ld), resending in %" PRIu64 " ms", f->name,
                     j->symbol, j->client_id, r->http_status, ms);
            met_counter_inc(c->m_retries_throttled);
            job_retry(j, false, ms);
            return;
        }
        log_error(TAG, "%s %s: order %s throttled %u times over %" PRId64 " ms, giving up (not placed)",
                  f->name, j->symbol, j->client_id, j->send_attempts,
                  (copier_now_ns() - j->received_ns) / 1000000);
        met_counter_inc(f->m_rejected);
        record(c, j, JOURNAL_REJECTED, r);
        job_done(j);
        return;
    case EXCH_UNKNOWN:
    default:
        /* Invariant 3: the order may exist. Record that, then ask the exchange. */
        record(c, j, JOURNAL_UNKNOWN, r);
        if (c->freeing) {
            met_counter_inc(f->m_unknown);
            job_done(j);
            return;
        }
        log_warn(TAG, "%s %s: order %s outcome unknown (%s), querying", f->name, j->symbol,
                 j->client_id, r->error_msg);
        job_retry(j, true, QUERY_BACKOFF_MS);
        return;
    }
}

static void job_send(struct order_job *j) {
    struct copier *c = j->c;
    struct acct *f = &c->accts[j->follower];
    struct exch_order_req req = {
        .symbol = j->symbol,
        .side = j->side,
        .type = j->order_type == COPY_ORDER_LIMIT_IOC ? EXCH_LIMIT_IOC : EXCH_MARKET,
        .qty = j->qty,
        .price = j->price,
        .reduce_only = j->reduce_only,
        .pos_side = j->pos_side,
        .client_id = j->client_id,
    };
    int e;

    j->send_attempts++;
    e = exch_place_order(f->ex, &req, on_placed, j);
    if (e < 0) {
        /* Refused locally: nothing left the process, so the same id may go again later. */
        log_error(TAG, "%s %s: cannot send order %s: %s", f->name, j->symbol, j->client_id, strerror(-e));
        if (may_retry(j)) {
            job_retry(j, false, retry_backoff_ms(j));
        } else {
            struct exch_order_result r = {.outcome = EXCH_REJECTED};
            snprintf(r.error_msg, sizeof(r.error_msg), "not sent: %s", strerror(-e));
            met_counter_inc(f->m_rejected);
            record(c, j, JOURNAL_REJECTED, &r);
            job_done(j);
        }
        return;
    }
    j->in_flight = true;
    c->jobs_in_flight++;
    if (j->send_attempts == 1 && !j->reconcile) {
        c->orders_sent++;
        met_hist_observe(c->m_send_lat, (double)(copier_now_ns() - j->received_ns) / 1e9);
    }
}

static void lane_kick(struct copier *c, struct lane *l) {
    /* Draining: nothing new goes out; queued orders stay 'intent' for the next start
     * (copier_drain). */
    if (l->busy || !l->head || c->draining) return;
    l->busy = true;
    if (l->head->reconcile && l->head->send_attempts == 0) job_query(l->head);
    else job_send(l->head);
}

void copier_lane_kick(struct copier *c, struct lane *l) { lane_kick(c, l); }

/* A job at the tail of its (follower, symbol) lane; NULL when out of memory. */
struct order_job *copier_job_new(struct copier *c, size_t follower, const char *symbol) {
    struct acct *f = &c->accts[follower];
    struct order_job *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->c = c;
    j->follower = follower;
    snprintf(j->symbol, sizeof(j->symbol), "%s", symbol);
    j->lane = lane_get(c, f->name, j->symbol);
    if (!j->lane || uv_timer_init(c->loop, &j->timer) < 0) {
        free(j);
        return NULL;
    }
    j->timer.data = j;
    j->lnext = c->jobs;
    if (c->jobs) c->jobs->lprev = j;
    c->jobs = j;
    if (j->lane->tail) j->lane->tail->next = j; else j->lane->head = j;
    j->lane->tail = j;
    return j;
}

static int job_enqueue(struct copier *c, const struct fill_job *fj, const struct copy_intent *in,
                       size_t follower, struct fill_lat *fl) {
    struct order_job *j = copier_job_new(c, follower, fj->fill.symbol);
    if (!j) return -ENOMEM;
    if (fl) {
        j->fl = fl;
        fl->jobs++;
        fl->refs++;
    }
    memcpy(j->client_id, in->client_id, sizeof(j->client_id));
    j->side = in->side;
    j->pos_side = in->pos_side;
    j->order_type = in->order_type;
    j->price = in->price;
    j->qty = in->qty;
    j->reduce_only = in->reduce_only;
    j->pending = position_book_delta(in->side, in->pos_side, in->qty);
    j->received_ns = fj->fill.received_ns;
    /* The leader's trade time on our wall clock: the exchange's time minus its measured offset. */
    if (fj->fill.trade_time_ms > 0)
        j->fill_wall_ms = fj->fill.trade_time_ms - exch_account_time_offset_ms(c->accts[fj->leader].ex);
    return 0;
}

/* ---- leader fills ----------------------------------------------------------------------- */

static bool sendable(const struct copy_intent *in) { return in->skip == COPY_SKIP_NONE && !in->dry_run; }

static void add_pending(struct copier *c, const char *follower, const char *symbol,
                        const struct copy_intent *in, bool undo) {
    dec_t d = position_book_delta(in->side, in->pos_side, in->qty);
    position_book_add_pending(c->pos, follower, symbol, in->pos_side, undo ? dec_neg(d) : d);
}

/* Undo the pending position of the sendable intents that will not be sent. */
static void revert_pending(struct copier *c, struct fill_job *fj) {
    for (size_t i = 0; i < fj->n; i++) {
        const struct copy_intent *in = &fj->items[i].in;
        if (!sendable(in)) continue;
        add_pending(c, c->accts[c->rules[fj->items[i].rule].follower].name, fj->fill.symbol, in, true);
    }
}

void copier_drain_check(struct copier *c) { drain_check(c); }

static void drain_check(struct copier *c) {
    if (c->draining && c->jobs_in_flight == 0 && c->fills_in_journal == 0 && c->held == 0 &&
        c->drain_done && !copier_load_waiting(c)) {
        void (*done)(void *) = c->drain_done;
        c->drain_done = NULL;
        uv_timer_stop(&c->drain_timer);
        done(c->drain_ud);
    }
}

static void on_journaled(void *ud, const struct journal_fill_result *res) {
    struct fill_job *fj = ud;
    struct copier *c = fj->c;
    struct acct *leader = &c->accts[fj->leader];
    const struct mkt_fill *f = &fj->fill;

    c->fills_in_journal--;
    if (fj->deferred) {
        copier_defer_journaled(fj, res); /* owns fj from here */
        drain_check(c);
        return;
    }
    if (res->status == -ECONNRESET || res->status == -ETIMEDOUT) {
        /* The write may or may not have committed. Resubmitting is safe: the journal's unique
         * keys make a committed one come back "not new", and nothing is sent twice; its orders
         * then wait as 'intent' for start-up reconciliation. */
        log_warn(TAG, "%s %s trade %s: journal connection lost mid-write (%s), resubmitting",
                 f->account, f->symbol, f->trade_id, res->errmsg ? res->errmsg : strerror(-res->status));
        if (c->freeing) free(fj); else fill_hold(c, fj);
        drain_check(c);
        return;
    }
    if (res->status != 0) {
        /* Write-before-send (invariant 2): nothing of this fill goes out. */
        log_error(TAG, "%s %s trade %s: journal write failed (%s), NOT copying this fill",
                  f->account, f->symbol, f->trade_id, res->errmsg ? res->errmsg : strerror(-res->status));
        met_counter_inc(c->m_journal_fail);
        revert_pending(c, fj);
        copier_defer_settle(fj, false);
        fill_dedupe_forget(c->dedupe, f->account, f->symbol, f->trade_id);
        goto out;
    }
    if (!res->fill_new) {
        /* An earlier run (or an evicted memory entry) took it: its effect on the leader's
         * position is already in what we hold. */
        met_counter_inc(leader->m_dups);
        if (!fj->pre_adjusted)
            position_book_add_live(c->pos, leader->name, f->symbol, f->pos_side, dec_neg(fj->leader_delta));
        revert_pending(c, fj);
        copier_defer_settle(fj, false);
        log_info(TAG, "%s %s trade %s: already journaled, ignored (orders of an earlier attempt "
                 "that never went out are left to reconciliation)", f->account, f->symbol, f->trade_id);
        goto out;
    }
    met_counter_inc(leader->m_fills);
    /* From the fill's receipt (a backfilled fill: when the backfill found it); without memory
     * for the record, the fill is simply not measured. */
    struct fill_lat *fl = f->received_ns > 0 && fj->n ? calloc(1, sizeof(*fl)) : NULL;
    if (fl) fl->received_ns = f->received_ns;
    copier_enqueue_intents(c, fj, res, fl);
    /* The decisions that waited for this write (followers still loading their state). */
    copier_defer_settle(fj, true);
out:
    free(fj);
    drain_check(c);
}

/* The new intents of a journaled fill become order jobs (fl: its latency record, or NULL), then
 * their lanes are kicked. Skipped, dry-run and not-new intents are counted or logged. */
void copier_enqueue_intents(struct copier *c, struct fill_job *fj, const struct journal_fill_result *res,
                            struct fill_lat *fl) {
    const struct mkt_fill *f = &fj->fill;
    for (size_t i = 0; i < fj->n; i++) {
        const struct copy_intent *in = &fj->items[i].in;
        const struct rule *r = &c->rules[fj->items[i].rule];
        struct acct *fol = &c->accts[r->follower];
        bool send = sendable(in);
        if (!res->intent_new[i]) {
            log_error(TAG, "%s: intent %s already journaled for a new fill (client id clash?), not sent",
                      fol->name, in->client_id);
        } else if (in->skip != COPY_SKIP_NONE) {
            met_counter_inc(c->m_skip[in->skip]);
            met_counter_inc(fol->m_skipped);
            continue;
        } else if (in->dry_run) {
            met_counter_inc(c->m_dry_run);
            met_counter_inc(fol->m_skipped);
            log_info(TAG, "%s %s: dry run, not sent: %s %s", fol->name, f->symbol,
                     in->side == MKT_BUY ? "BUY" : "SELL", in->client_id);
            continue;
        } else if (!c->freeing && job_enqueue(c, fj, in, r->follower, fl) == 0) {
            continue; /* the job now owns the pending amount */
        } else if (!c->freeing) {
            log_error(TAG, "%s: out of memory queueing order %s (left as intent)", fol->name, in->client_id);
        }
        if (send) add_pending(c, fol->name, f->symbol, in, true);
    }
    if (fl && !fl->refs) free(fl);
    /* Kick after queueing all, so one fill's orders leave back to back. */
    for (size_t i = 0; i < fj->n && !c->freeing; i++) {
        struct lane *l = NULL;
        char key[sizeof(((struct lane *)0)->key)];
        pair_key(key, sizeof(key), c->accts[c->rules[fj->items[i].rule].follower].name, f->symbol);
        HASH_FIND_STR(c->lanes, key, l);
        if (l) lane_kick(c, l);
    }
}

static bool below_start_mark(struct copier *c, const struct mkt_fill *f) {
    char key[sizeof(((struct hwm_entry *)0)->key)];
    struct hwm_entry *h = NULL;
    pair_key(key, sizeof(key), f->account, f->symbol);
    HASH_FIND_STR(c->hwm, key, h);
    return h && f->trade_seq > 0 && f->trade_seq <= h->trade_seq;
}

#define HELD_MAX 100000        /* fills waiting for the journal; beyond, new fills are not copied */
#define HELD_RETRY_MS 100

/* A journal attempt token: nonzero, unpredictable across processes (a token equal to another
 * write's would make that write's rows look like ours), distinct within one. */
static uint64_t new_attempt(void) {
    static uint64_t seed, n;
    if (!seed) {
        if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + ((uint64_t)getpid() << 40);
        }
        seed |= 1;
    }
    uint64_t z = seed + 0x9e3779b97f4a7c15u * ++n; /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return z & INT64_MAX ? z & INT64_MAX : 1;
}

/* One round trip: the fill and all its intents (write-before-send). now_ok: the caller does not
 * touch fj after a 0 return, so the journal may complete it (on_journaled) before returning. */
static int fill_submit(struct copier *c, struct fill_job *fj, bool now_ok) {
    const struct mkt_fill *f = &fj->fill;
    struct journal_intent *ji = calloc(fj->n + 1, sizeof(*ji));
    char (*qtxt)[DEC_STR_MAX] = calloc(fj->n + 1, sizeof(*qtxt));
    char (*ptxt)[DEC_STR_MAX] = calloc(fj->n + 1, sizeof(*ptxt));
    char fq[DEC_STR_MAX], fp[DEC_STR_MAX];
    static const char *const pside[] = {[MKT_PS_BOTH] = "BOTH", [MKT_PS_LONG] = "LONG", [MKT_PS_SHORT] = "SHORT"};
    void *dstore = NULL; /* the text of deferred decisions' placeholders (copier_load.c) */
    int e = -ENOMEM;

    if (!ji || !qtxt || !ptxt) goto out;
    for (size_t n = 0; n < fj->n; n++) {
        const struct copy_intent *it = &fj->items[n].in;
        const struct rule *r = &c->rules[fj->items[n].rule];
        ji[n] = (struct journal_intent){
            .client_order_id = it->client_id,
            .rule_id = r->cr.id,
            .follower = c->accts[r->follower].name,
            .symbol = f->symbol,
            .side = it->side == MKT_BUY ? "BUY" : "SELL",
            .qty = fmt_dec(it->qty, qtxt[n]),
            .reduce_only = it->reduce_only,
            .order_type = it->order_type == COPY_ORDER_LIMIT_IOC ? "LIMIT_IOC" : "MARKET",
            .skip_reason = it->skip != COPY_SKIP_NONE ? copy_skip_name(it->skip)
                           : it->dry_run            ? "dry_run"
                                                    : NULL,
            .position_side = (unsigned)it->pos_side <= MKT_PS_SHORT ? pside[it->pos_side] : NULL,
            .limit_price = it->order_type == COPY_ORDER_LIMIT_IOC && dec_sign(it->price) > 0
                               ? fmt_dec(it->price, ptxt[n]) : NULL,
        };
    }
    struct journal_fill jf = {
        .account = f->account,
        .symbol = f->symbol,
        .trade_id = f->trade_id,
        .order_id = f->order_id,
        .trade_seq = f->trade_seq,
        .side = f->side == MKT_BUY ? "BUY" : "SELL",
        .qty = fmt_dec(f->qty, fq),
        .price = fmt_dec(f->price, fp),
        .event_time_ms = f->trade_time_ms > 0 ? f->trade_time_ms : f->event_time_ms,
        .ahead = fj->from_stream,
    };
    e = copier_defer_journal(c, fj, &jf, &dstore); /* placeholders, or the one it resolves */
    if (e < 0) goto out;
    /* With now_ok, on_journaled may run (and free fj) inside journal_write_fill: what is needed
     * afterwards is taken first, and the counters are set as if it had been called already. */
    bool again = fj->submitted;
    const char *why = again ? " (again)" : fj->deferred ? " (a follower's decision that waited for its state)" : "";
    size_t n = fj->n;
    struct mkt_fill fc = fj->fill;
    jf.now_ok = now_ok && !again;
    if (!fj->attempt) fj->attempt = new_attempt();
    jf.attempt = fj->attempt;
    c->fills_in_journal++;
    fj->submitted = true;
    e = journal_write_fill(c->journal, &jf, ji, n, on_journaled, fj);
    if (e == 0) {
        log_at(again ? LOG_LVL_DEBUG : LOG_LVL_INFO, TAG, "%s %s trade %s: %s %s at %s, %zu intents%s",
               fc.account, fc.symbol, fc.trade_id, jf.side, fq, fp, n, why);
    } else {
        c->fills_in_journal--;
        fj->submitted = again;
    }
out:
    free(dstore);
    free(ji);
    free(qtxt);
    free(ptxt);
    return e;
}

int copier_fill_submit(struct copier *c, struct fill_job *fj) { return fill_submit(c, fj, false); }
void copier_revert_pending(struct copier *c, struct fill_job *fj) { revert_pending(c, fj); }
bool copier_sendable(const struct copy_intent *in) { return sendable(in); }
void copier_add_pending(struct copier *c, const char *follower, const char *symbol,
                        const struct copy_intent *in, bool undo) {
    add_pending(c, follower, symbol, in, undo);
}

/* The fill cannot be journaled and so is not copied (until the spool of issue 5 exists). */
static void fill_drop(struct copier *c, struct fill_job *fj, const char *why) {
    const struct mkt_fill *f = &fj->fill;
    log_error(TAG, "%s %s trade %s: journal refused the fill (%s), NOT copying it",
              f->account, f->symbol, f->trade_id, why);
    met_counter_inc(c->m_journal_fail);
    revert_pending(c, fj);
    copier_defer_settle(fj, false);
    fill_dedupe_forget(c->dedupe, f->account, f->symbol, f->trade_id);
    free(fj);
}

static void fill_hold(struct copier *c, struct fill_job *fj) {
    if (c->held >= HELD_MAX) {
        fill_drop(c, fj, "too many fills waiting for the journal");
        return;
    }
    if (c->held == 0)
        log_warn(TAG, "journal not taking writes: holding fills until it does (nothing is sent meanwhile)");
    fj->next = NULL;
    if (c->held_tail) c->held_tail->next = fj; else c->held_head = fj;
    c->held_tail = fj;
    c->held++;
    if (!uv_is_active((uv_handle_t *)&c->held_timer))
        uv_timer_start(&c->held_timer, held_retry, HELD_RETRY_MS, HELD_RETRY_MS);
}

/* Resubmit held fills in order while the journal takes them. */
static void held_retry(uv_timer_t *t) {
    struct copier *c = t->data;
    while (c->held_head && !c->freeing) {
        struct fill_job *fj = c->held_head;
        int e = fill_submit(c, fj, false);
        if (e == -ENOTCONN || e == -ENOBUFS) return;
        c->held_head = fj->next;
        if (!c->held_head) c->held_tail = NULL;
        c->held--;
        if (e < 0) fill_drop(c, fj, strerror(-e));
    }
    uv_timer_stop(&c->held_timer);
    if (!c->freeing) log_info(TAG, "journal taking writes again: held fills submitted");
    drain_check(c);
}

bool copier_fill_seen(const struct copier *c, const struct mkt_fill *f) {
    return below_start_mark((struct copier *)c, f) ||
           fill_dedupe_contains(c->dedupe, f->account, f->symbol, f->trade_id);
}

static bool take_fill(struct acct *leader, const struct mkt_fill *f, bool pre_adjusted, bool from_stream,
                      bool now_ok);

void copier_on_fill(void *ud, const struct mkt_fill *f) {
    struct acct *a = ud;
    /* While missed fills are being fetched, newer ones wait: the engine must see a leader's fills
     * of a symbol in order (a close decided before the open it closes would be mis-sized). */
    if (a->bf_busy) {
        copier_backfill_hold(a, f);
        return;
    }
    (void)take_fill(a, f, false, true, true);
}

/* A coalescing rule's slots, on its first fill. Without memory this fill is decided without
 * coalescing (a small one is skipped as below the minimum, as with coalesce: false). */
static void rule_slots(struct rule *r) {
    if (!r->coalesce || r->st.acc_cap) return;
    if (!r->acc && !(r->acc = calloc(COALESCE_SLOTS, sizeof(*r->acc)))) return;
    r->st.acc = r->acc; /* zeroed: what copy_state_init would make of them */
    r->st.acc_cap = COALESCE_SLOTS;
}

/* Rule `rule` decides leader fill f (lpos: the leader's position before it): its intents are
 * appended to fj, the sendable ones added to the follower's pending position. */
void copier_decide_rule(struct copier *c, struct fill_job *fj, size_t rule, const struct mkt_fill *f,
                        struct copy_pos lpos, dec_t leader_equity, int64_t now_ms) {
    struct rule *r = &c->rules[rule];
    struct acct *fol = &c->accts[r->follower];
    struct inst_entry *fe = NULL;
    struct mkt_instrument none = {0};
    struct copy_decision dec;
    struct copy_fill_input in;
    if (fol->inst) HASH_FIND_STR(fol->inst->map, f->symbol, fe);
    in = (struct copy_fill_input){
        .rule = &r->cr,
        .fill = f,
        .instrument = fe ? &fe->v : &none, /* unknown symbol: the engine skips it as invalid_instrument */
        .leader = lpos,
        .leader_equity = leader_equity,
        .follower_mode = fol->mode,
        .follower = copier_pos_view(c, fol->name, f->symbol, true),
        .follower_equity = fol->equity,
        .ticker_price = fe ? fe->ticker : DEC_ZERO,
        .ticker_age_ms = fe && fe->ticker_ms > 0 ? now_ms - fe->ticker_ms : -1,
        .now_ms = now_ms,
    };
    rule_slots(r);
    if (copy_decide_fill(&in, &r->st, &dec) < 0) return;
    if (dec.dropped.set) {
        char amt[DEC_STR_MAX];
        met_counter_inc(c->m_skip[dec.dropped.reason]);
        log_info(TAG, "%s: coalesced %s of leader order %s %s dropped (%s)", r->cr.id,
                 fmt_dec(dec.dropped.amount, amt), dec.dropped.order_id, dec.dropped.symbol,
                 copy_skip_name(dec.dropped.reason));
    }
    for (size_t m = 0; m < dec.n; m++) {
        fj->items[fj->n].in = dec.intents[m];
        fj->items[fj->n].rule = rule;
        if (sendable(&dec.intents[m])) add_pending(c, fol->name, f->symbol, &dec.intents[m], false);
        fj->n++;
    }
}

/* now_ok: straight from the leader's stream, where nothing is held across the call, so the
 * journal may complete the write, and the orders leave, before this returns (fill_submit). */
static bool take_fill(struct acct *leader, const struct mkt_fill *f, bool pre_adjusted, bool from_stream,
                      bool now_ok) {
    struct copier *c = leader->c;
    struct fill_job *fj;
    struct copy_pos lpos;
    int64_t now_ms;
    size_t nrules = 0;
    int e;

    if (c->draining || c->freeing) return false; /* not taken: the next run backfills it */
    if (copier_fill_wait(leader, f, pre_adjusted, from_stream)) return true;
    if (below_start_mark(c, f) || fill_dedupe_seen(c->dedupe, f->account, f->symbol, f->trade_id)) {
        met_counter_inc(leader->m_dups);
        log_debug(TAG, "%s %s trade %s: duplicate, ignored", f->account, f->symbol, f->trade_id);
        return false;
    }
    if (f->trade_time_ms > leader->last_fill_ms) leader->last_fill_ms = f->trade_time_ms;
    for (size_t i = 0; i < c->n_rules; i++)
        if (c->rules[i].leader == leader->idx && c->rules[i].enabled) nrules++;
    fj = calloc(1, sizeof(*fj) + nrules * COPY_MAX_INTENTS * sizeof(fj->items[0]));
    if (!fj) {
        log_error(TAG, "%s %s trade %s: out of memory, fill NOT copied", f->account, f->symbol, f->trade_id);
        fill_dedupe_forget(c->dedupe, f->account, f->symbol, f->trade_id);
        return false;
    }
    fj->c = c;
    fj->fill = *f;
    fj->pre_adjusted = pre_adjusted;
    fj->from_stream = from_stream;
    fj->leader = leader->idx;
    fj->leader_delta = position_book_delta(f->side, f->pos_side, f->qty);
    lpos = copier_pos_view(c, leader->name, f->symbol, false);
    position_book_add_live(c->pos, leader->name, f->symbol, f->pos_side, fj->leader_delta);
    copier_note_held(leader, f->symbol);
    now_ms = copier_exchange_now_ms(leader);

    for (size_t i = 0; i < c->n_rules; i++) {
        struct rule *r = &c->rules[i];
        struct acct *fol = &c->accts[r->follower];
        if (r->leader != leader->idx || !r->enabled) continue;
        if (copier_follower_waits(fol)) {
            /* Its state is still loading (or decisions wait before it): decided once it is in,
             * after this fill's journal write, in order. Others do not wait for it. */
            int e = copier_defer(fj, i, &lpos, leader->equity);
            if (e < 0)
                log_error(TAG, "%s %s trade %s: rule %s: cannot wait for %s's state (%s): NOT copied",
                          f->account, f->symbol, f->trade_id, r->cr.id, fol->name, strerror(-e));
            continue;
        }
        copier_decide_rule(c, fj, i, f, lpos, leader->equity, now_ms);
    }

    if (!c->held_head) {
        e = fill_submit(c, fj, now_ok);
        if (e == 0) return true;
        if (e != -ENOTCONN && e != -ENOBUFS) {
            fill_drop(c, fj, strerror(-e));
            return true;
        }
    }
    fill_hold(c, fj);
    return true;
}

bool copier_take_fill(struct acct *leader, const struct mkt_fill *f, bool pre_adjusted, bool from_stream) {
    return take_fill(leader, f, pre_adjusted, from_stream, false);
}

static void on_position(void *ud, const struct mkt_position *p) {
    struct acct *a = ud;
    char buf[DEC_STR_MAX];
    /* Positions are tracked from the fills themselves; an ACCOUNT_UPDATE may be a replay of an
     * old one, so it is only shown, not applied. Drift reporting comes with issue 6. */
    log_debug(TAG, "%s %s: exchange reports position %s", a->name, p->symbol, fmt_dec(p->amount, buf));
}

/* The stream's counters may restart (a new websocket client after a refusal): add what grew. */
static void stream_stats_update(struct acct *a) {
    struct exch_stream_stats s;
    if (!a->stream) return;
    exch_stream_get_stats(a->stream, &s);
    a->n_reconnects += s.reconnects >= a->ss_last.reconnects ? s.reconnects - a->ss_last.reconnects : s.reconnects;
    a->n_silences += s.silences >= a->ss_last.silences ? s.silences - a->ss_last.silences : s.silences;
    a->ss_last = s;
}

static uint64_t c_reconnects(void *ud) {
    struct acct *a = ud;
    stream_stats_update(a);
    return a->n_reconnects;
}

static uint64_t c_silences(void *ud) {
    struct acct *a = ud;
    stream_stats_update(a);
    return a->n_silences;
}

static void on_state(void *ud, enum exch_stream_state st, const char *reason) {
    struct acct *a = ud;
    struct copier *c = a->c;
    bool up = st == EXCH_STREAM_UP;
    if (up != a->stream_up) {
        met_counter_inc(c->m_stream_changes);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        a->stream_since_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    if (!up && (a->stream_reason || (a->stream_reason = malloc(STREAM_REASON_MAX))))
        snprintf(a->stream_reason, STREAM_REASON_MAX, "%s", reason ? reason : "");
    bool was_up = a->stream_up;
    a->stream_up = up;
    met_gauge_set(a->m_stream_up, up ? 1 : 0);
    stream_stats_update(a);
    if (up && !was_up) {
        int64_t now = copier_exchange_now_ms(a);
        bool reconnect = a->stream_was_up;
        a->stream_was_up = true;
        log_info(TAG, "%s: leader stream up", a->name);
        if (reconnect) {
            /* What the stream missed: everything after the newest fill taken, with a margin (the
             * dedupe drops what was taken already). */
            int64_t from = a->last_fill_ms > 0 ? a->last_fill_ms : a->first_up_ms;
            copier_backfill_start(a, from - BACKFILL_MARGIN_MS, false);
        } else {
            a->first_up_ms = now;
            if (a->startup_since_ms > 0) copier_backfill_start(a, a->startup_since_ms, true);
        }
    } else if (!up) {
        log_warn(TAG, "%s: leader stream %s: %s", a->name,
                 st == EXCH_STREAM_DOWN ? "down" : "connecting", reason ? reason : "");
    }
    copier_check_ready(c);
}

void copier_check_ready(struct copier *c) {
    bool all = true;
    if (c->ready) return;
    for (size_t i = 0; i < c->n_accts; i++) {
        const struct acct *a = &c->accts[i];
        if (a->is_leader && (!a->stream_was_up || (a->bf_busy && a->bf_startup))) all = false;
    }
    if (all && c->phase >= 4) {
        c->ready = true;
        log_info(TAG, "ready: every leader stream is up and backfilled (%zu followers' state still loading)",
                 c->ld_left);
        if (c->ld_left) c->ld_start_ns = copier_now_ns();
        copier_load_pump(c); /* the followers' state, in the background from now on */
        if (c->on_ready) c->on_ready(c->on_ready_ud);
    }
}

struct lev_job {
    struct acct *follower;
    char rule_id[64];
};

static void on_leverage_set(void *ud, const struct exch_status *st, const char *symbol, int leverage) {
    struct lev_job *lj = ud;
    struct acct *f = lj->follower;
    if (!f->c->freeing) {
        if (st->err) {
            met_counter_inc(f->c->m_lev_failed);
            log_error(TAG, "rule %s: %s %s: setting leverage failed: %d %s", lj->rule_id, f->name, symbol,
                      st->error_code, st->error_msg);
        } else {
            met_counter_inc(f->c->m_lev_set);
            set_follower_leverage(f, symbol, leverage);
            log_info(TAG, "rule %s: %s %s: leverage now %d", lj->rule_id, f->name, symbol, leverage);
        }
    }
    free(lj);
}

/* A leader changed a symbol's leverage (ACCOUNT_CONFIG_UPDATE): each rule decides its follower's. */
static void on_leader_leverage(void *ud, const char *symbol, int leverage) {
    struct acct *leader = ud;
    struct copier *c = leader->c;
    if (c->draining || c->freeing) return;
    for (size_t i = 0; i < c->n_rules; i++) {
        struct rule *r = &c->rules[i];
        struct acct *f = &c->accts[r->follower];
        struct copy_leverage_intent li;
        struct copy_leverage_input in = {
            .rule = &r->cr, .symbol = symbol, .leader_leverage = dec_from_int(leverage),
            .follower_leverage = dec_from_int(follower_leverage(f, symbol)),
        };
        char lv[DEC_STR_MAX];
        struct lev_job *lj;
        int64_t want;
        if (r->leader != leader->idx || !r->enabled) continue;
        if (copy_decide_leverage(&in, &r->st, &li) < 0) continue;
        if (li.skip != COPY_SKIP_NONE || li.dry_run) {
            met_counter_inc(c->m_lev_skipped);
            log_info(TAG, "rule %s: leader %s %s leverage %d: follower %s not changed (%s)", r->cr.id,
                     leader->name, symbol, leverage, f->name, li.dry_run ? "dry_run" : copy_skip_name(li.skip));
            continue;
        }
        fmt_dec(li.leverage, lv);
        want = strtoll(lv, NULL, 10); /* the engine returns a whole number */
        lj = calloc(1, sizeof(*lj));
        if (!lj) continue;
        lj->follower = f;
        snprintf(lj->rule_id, sizeof(lj->rule_id), "%s", r->cr.id);
        if (exch_set_leverage(f->ex, symbol, (int)want, on_leverage_set, lj) < 0) {
            met_counter_inc(c->m_lev_failed);
            log_error(TAG, "rule %s: %s %s: cannot request leverage %s", r->cr.id, f->name, symbol, lv);
            free(lj);
        }
    }
}

static void on_bad_frame(void *ud, const char *why, const char *frame, size_t len) {
    struct acct *a = ud;
    met_counter_inc(a->c->m_bad_frames);
    log_error(TAG, "%s: unparseable stream frame (%s): %.*s", a->name, why, (int)(len > 300 ? 300 : len), frame);
}

/* ---- start-up --------------------------------------------------------------------------- */

static void step_done(struct copier *c) {
    if (--c->startup_pending == 0) {
        c->phase++;
        startup_next(c);
    }
}

static void step_failed(struct acct *a, void (*again)(uv_timer_t *), const char *what, const struct exch_status *st) {
    a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : STARTUP_BACKOFF_MIN_MS;
    if (a->backoff_ms > STARTUP_BACKOFF_MAX_MS) a->backoff_ms = STARTUP_BACKOFF_MAX_MS;
    log_warn(TAG, "%s: %s failed (err %d, HTTP %ld, code %d: %s), retrying in %u ms", a->name, what,
             st->err, st->http_status, st->error_code, st->error_msg, a->backoff_ms);
    if (a->bg && !a->state_ok) {
        copier_load_failed(a, again, a->backoff_ms); /* its slot goes to the next follower meanwhile */
        return;
    }
    uv_timer_start(&a->retry, again, a->backoff_ms, 0);
}

static void do_time(uv_timer_t *t);
static void do_instruments(uv_timer_t *t);
static void do_positions(uv_timer_t *t);
static void snap_key(char *k, size_t n, const char *symbol, enum mkt_pos_side ps);
static void snap_clear(struct acct *a);
static void do_mode(uv_timer_t *t);
static void do_leverage(uv_timer_t *t);
static void do_equity(uv_timer_t *t);
static void do_tickers(uv_timer_t *t);

/* A start-up request that could not even be issued: retry it like a failed one. */
static void step_call(struct acct *a, void (*again)(uv_timer_t *), const char *what, int e) {
    struct exch_status st = {.err = e};
    if (e >= 0) return;
    snprintf(st.error_msg, sizeof(st.error_msg), "%s", strerror(-e));
    step_failed(a, again, what, &st);
}

static void on_time(void *ud, const struct exch_status *st, int64_t offset_ms) {
    struct acct *a = ud;
    if (a->c->freeing) return;
    if (st->err) {
        step_failed(a, do_time, "server time", st);
        return;
    }
    a->backoff_ms = 0;
    log_info(TAG, "%s: server time offset %" PRId64 " ms", a->name, offset_ms);
    step_done(a->c);
}

static void do_time(uv_timer_t *t) {
    struct acct *a = t->data;
    step_call(a, do_time, "server time", exch_sync_time(a->ex, on_time, a));
}

static void on_instruments(void *ud, const struct exch_status *st, const struct mkt_instrument *v, size_t n) {
    struct acct *a = ud;
    struct instruments *t = a->inst;
    if (a->c->freeing) return;
    if (st->err) {
        step_failed(a, do_instruments, "exchange info", st);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct inst_entry *e = NULL;
        HASH_FIND_STR(t->map, v[i].symbol, e);
        if (!e) {
            e = calloc(1, sizeof(*e));
            if (!e) continue;
            e->v = v[i];
            HASH_ADD_STR(t->map, v.symbol, e);
        } else {
            e->v = v[i];
        }
    }
    t->loaded = true;
    a->backoff_ms = 0;
    copier_cache_put_instruments(t, v, n);
    log_info(TAG, "%s: %zu instruments", t->url, n);
    do_tickers(&a->retry);
}

static void do_instruments(uv_timer_t *t) {
    struct acct *a = t->data;
    step_call(a, do_instruments, "exchange info", exch_fetch_instruments(a->ex, on_instruments, a));
}

static void store_tickers(struct instruments *t, const struct exch_ticker *v, size_t n, int64_t now_ms) {
    for (size_t i = 0; i < n; i++) {
        struct inst_entry *e = NULL;
        HASH_FIND_STR(t->map, v[i].symbol, e);
        if (!e) continue;
        e->ticker = v[i].price;
        e->ticker_ms = v[i].time_ms > 0 ? v[i].time_ms : now_ms;
    }
}

static void on_tickers(void *ud, const struct exch_status *st, const struct exch_ticker *v, size_t n) {
    struct acct *a = ud;
    if (a->c->freeing) return;
    if (st->err) {
        step_failed(a, do_tickers, "tickers", st);
        return;
    }
    store_tickers(a->inst, v, n, copier_exchange_now_ms(a));
    copier_cache_put_tickers(a->inst, v, n);
    a->backoff_ms = 0;
    step_done(a->c);
}

static void do_tickers(uv_timer_t *t) {
    struct acct *a = t->data;
    step_call(a, do_tickers, "tickers", exch_fetch_tickers(a->ex, on_tickers, a));
}

static void on_positions(void *ud, const struct exch_status *st, const struct mkt_position *v, size_t n) {
    struct acct *a = ud;
    char buf[DEC_STR_MAX];
    if (a->c->freeing) return;
    if (st->err) {
        step_failed(a, do_positions, "positions", st);
        return;
    }
    snap_clear(a);
    for (size_t i = 0; i < n; i++) {
        position_book_set_live(a->c->pos, a->name, v[i].symbol, v[i].pos_side, v[i].amount);
        struct snap_entry *e = dec_is_zero(v[i].amount) ? NULL : calloc(1, sizeof(*e));
        if (e) {
            snap_key(e->key, sizeof e->key, v[i].symbol, v[i].pos_side);
            e->update_ms = v[i].update_ms;
            struct snap_entry *old = NULL;
            HASH_REPLACE_STR(a->snap, key, e, old);
            free(old);
        }
        if (!dec_is_zero(v[i].amount)) {
            copier_note_held(a, v[i].symbol);
            log_info(TAG, "%s %s %s: position %s", a->name, v[i].symbol, copy_pos_side_name(v[i].pos_side),
                     fmt_dec(v[i].amount, buf));
            publish_position(a->c, a, v[i].symbol);
        }
    }
    a->snap_ms = copier_exchange_now_ms(a);
    a->backoff_ms = 0;
    do_mode(&a->retry);
}

void copier_do_positions(uv_timer_t *t) { do_positions(t); }

static void do_positions(uv_timer_t *t) {
    struct acct *a = t->data;
    a->snap_req_ms = copier_exchange_now_ms(a);
    step_call(a, do_positions, "positions", exch_fetch_positions(a->ex, on_positions, a));
}

static void snap_key(char *k, size_t n, const char *symbol, enum mkt_pos_side ps) {
    snprintf(k, n, "%s/%d", symbol, (int)ps);
}

static void snap_clear(struct acct *a) {
    struct snap_entry *e, *tmp;
    HASH_ITER(hh, a->snap, e, tmp) {
        HASH_DEL(a->snap, e);
        free(e);
    }
}

/* Start-up: is leader fill f already in the position snapshot? A position the snapshot holds
 * contains every fill up to its own update time; one it does not hold (flat then) contains none
 * made after the snapshot was asked for. Without an update time, the arrival bounds it. */
bool copier_fill_in_snapshot(const struct acct *a, const struct mkt_fill *f) {
    char k[sizeof(((struct snap_entry *)0)->key)];
    struct snap_entry *e = NULL;
    snap_key(k, sizeof k, f->symbol, f->pos_side);
    HASH_FIND_STR(a->snap, k, e);
    if (!e) return f->trade_time_ms < a->snap_req_ms;
    return f->trade_time_ms <= (e->update_ms > 0 ? e->update_ms : a->snap_ms);
}

static void on_mode(void *ud, const struct exch_status *st, enum mkt_pos_mode mode) {
    struct acct *a = ud;
    if (a->c->freeing) return;
    if (st->err) {
        step_failed(a, do_mode, "position mode", st);
        return;
    }
    a->mode = mode;
    if (a->expect_mode >= 0 && (enum mkt_pos_mode)a->expect_mode != mode)
        log_error(TAG, "%s: the exchange says %s mode but the config expects %s: copying uses the exchange's",
                  a->name, mode == MKT_PM_HEDGE ? "hedge" : "one-way",
                  a->expect_mode == MKT_PM_HEDGE ? "hedge" : "one-way");
    a->backoff_ms = 0;
    snapshot_positions(a->c, a, "exchange"); /* the start-up positions, now that the mode is known */
    do_leverage(&a->retry);
}

static void do_mode(uv_timer_t *t) {
    struct acct *a = t->data;
    step_call(a, do_mode, "position mode", exch_fetch_position_mode(a->ex, on_mode, a));
}

static void on_leverages(void *ud, const struct exch_status *st, const struct exch_leverage *v, size_t n) {
    struct acct *a = ud;
    if (a->c->freeing) return;
    if (st->err) {
        step_failed(a, do_leverage, "leverage", st);
        return;
    }
    /* At once (one allocation), not symbol by symbol: the exchange lists every symbol's. */
    size_t bad = 0;
    int r = lev_map_merge(&a->lev, v, n, &bad);
    if (r < 0) { /* all unknown (0) rather than an older list's: the copy engine allows for that */
        a->lev = lev_map_free(a->lev);
        log_error(TAG, "%s: cannot keep the %zu symbols' leverages: %s", a->name, n, strerror(-r));
    } else if (bad) {
        log_warn(TAG, "%s: %zu of the exchange's %zu leverages are not 1..255 or name no symbol: "
                 "taken as unknown", a->name, bad, n);
    }
    a->backoff_ms = 0;
    do_equity(&a->retry);
}

static void do_leverage(uv_timer_t *t) {
    struct acct *a = t->data;
    step_call(a, do_leverage, "leverage", exch_fetch_leverage(a->ex, on_leverages, a));
}

/* c->follows: every live rule's index, grouped by follower (a counting sort). Equity samples
 * come for every account every refresh: scanning every rule each time was O(accounts x rules),
 * 10^8 a refresh with 10,000 followers. Without memory the old scan stays (follows NULL). */
static void follows_build(struct copier *c) {
    size_t *v = malloc((c->n_rules + 1) * sizeof(*v)), at = 0;
    free(c->follows);
    c->follows = v;
    if (!v) return;
    for (size_t i = 0; i < c->n_accts; i++) c->accts[i].n_follows = 0;
    for (size_t i = 0; i < c->n_rules; i++)
        if (!c->rules[i].removed) c->accts[c->rules[i].follower].n_follows++;
    for (size_t i = 0; i < c->n_accts; i++) {
        c->accts[i].follows_at = at;
        at += c->accts[i].n_follows;
        c->accts[i].n_follows = 0;
    }
    for (size_t i = 0; i < c->n_rules; i++) {
        struct acct *a = &c->accts[c->rules[i].follower];
        if (!c->rules[i].removed) v[a->follows_at + a->n_follows++] = i;
    }
}

/* An equity sample feeds the loss stops of every rule this account follows with. */
static void observe_equity(struct copier *c, struct acct *a, dec_t equity) {
    char eq[DEC_STR_MAX];
    a->equity = equity;
    size_t n = c->follows ? a->n_follows : c->n_rules;
    for (size_t k = 0; k < n; k++) {
        struct rule *r = &c->rules[c->follows ? c->follows[a->follows_at + k] : k];
        enum copy_stop stop;
        if (r->follower != a->idx || r->removed) continue;
        stop = copy_state_observe_equity(&r->st, &r->cr, equity, copier_exchange_now_ms(a));
        if (stop == COPY_STOP_NONE) continue;
        met_counter_inc(c->m_stops);
        met_gauge_set(r->m_status, (double)copy_state_status(&r->st));
        /* Persisted so a restart keeps the rule stopped until an operator resets it. */
        if (journal_set_rule_status(c->journal, r->cr.id, "close_only", -1) < 0)
            log_error(TAG, "rule %s: cannot queue its close_only state for the journal", r->cr.id);
        log_warn(TAG, "rule %s: %s stop tripped at %s equity %s: close_only (closes copied, opens skipped) "
                 "until an operator resets it", r->cr.id, copy_stop_name(stop), a->name, fmt_dec(equity, eq));
    }
}

static void on_equity(void *ud, const struct exch_status *st, const struct exch_balance *b) {
    struct acct *a = ud;
    if (a->c->freeing) return;
    if (st->err) {
        step_failed(a, do_equity, "account equity", st);
        return;
    }
    observe_equity(a->c, a, b->equity);
    copier_cache_put_balance(a, b);
    a->backoff_ms = 0;
    if (a->bg) {
        copier_load_done(a);
        return;
    }
    a->state_ok = true;
    step_done(a->c);
}

static void do_equity(uv_timer_t *t) {
    struct acct *a = t->data;
    step_call(a, do_equity, "account equity", exch_fetch_account(a->ex, on_equity, a));
}

/* ---- steady-state refresh (equity for sizing and loss stops, tickers for the slippage guard) -- */

void copier_observe_equity(struct acct *a, dec_t equity) { observe_equity(a->c, a, equity); }

/* |follower - leader x factor| in follower steps, worst symbol; factor = multiplier (x follower
 * equity / leader equity for equity_ratio), negated by reverse. Hedge slots count by their net. */
static double dec_double(dec_t d) { /* for gauges only: money math never goes through double */
    double v = (double)d.m;
    for (unsigned i = 0; i < d.scale; i++) v /= 10;
    return v;
}

static double rule_drift(const struct copier *c, const struct rule *r) {
    const struct acct *l = &c->accts[r->leader], *f = &c->accts[r->follower];
    const dec_t fine = {1, 8};
    dec_t num = r->cr.multiplier, den = dec_from_int(1);
    double worst = 0;
    if (r->cr.sizing == COPY_SIZING_EQUITY_RATIO) {
        if (dec_sign(l->equity) <= 0 || dec_sign(f->equity) <= 0 || dec_mul(f->equity, num, &num) < 0)
            return 0;
        den = l->equity;
    }
    for (int side = 0; side < 2; side++) {
        struct sym_entry *e, *tmp, *held = side ? f->held : l->held;
        HASH_ITER(hh, held, e, tmp) {
            struct copy_pos lp = copier_pos_view(c, l->name, e->symbol, false), fp = copier_pos_view(c, f->name, e->symbol, false);
            struct inst_entry *ie = NULL;
            dec_t ln, fn, want, diff;
            if (!copy_rule_symbol_allowed(&r->cr, e->symbol)) continue;
            if (f->inst) HASH_FIND_STR(f->inst->map, e->symbol, ie);
            if (!ie || dec_sign(ie->v.step) <= 0) continue;
            if (dec_add(lp.long_size, lp.short_size, &ln) < 0 || dec_add(lp.net, ln, &ln) < 0 ||
                dec_add(fp.long_size, fp.short_size, &fn) < 0 || dec_add(fp.net, fn, &fn) < 0 ||
                dec_muldiv_round_down(ln, num, den, fine, &want) < 0 ||
                dec_sub(fn, r->cr.reverse ? dec_neg(want) : want, &diff) < 0)
                continue;
            double steps = dec_double(dec_abs(diff)) / dec_double(ie->v.step);
            if (steps > worst) worst = steps;
        }
    }
    return worst;
}

#define SNAPSHOT_EVERY_MS 60000

/* The positions of the symbols an account has held, into the journal's position_snapshots
 * (write-behind): "exchange" at start-up, "book" (the daemon's own tracking) once a minute. */
static void snapshot_positions(struct copier *c, struct acct *a, const char *source) {
    static const char *const side_name[] = {"BOTH", "LONG", "SHORT"};
    size_t n = HASH_COUNT(a->held) * 3, k = 0;
    struct journal_position *v;
    char (*amt)[DEC_STR_MAX];
    struct sym_entry *e, *tmp;
    if (!n || !c->journal) return;
    v = calloc(n, sizeof(*v));
    amt = calloc(n, sizeof(*amt));
    if (v && amt) {
        HASH_ITER(hh, a->held, e, tmp) {
            for (int s = MKT_PS_BOTH; s <= MKT_PS_SHORT; s++) {
                dec_t q = position_book_live(c->pos, a->name, e->symbol, (enum mkt_pos_side)s);
                /* One-way accounts: the BOTH slot; hedge accounts: LONG and SHORT. */
                if ((a->mode == MKT_PM_HEDGE) != (s != MKT_PS_BOTH)) continue;
                v[k] = (struct journal_position){.account = a->name, .symbol = e->symbol,
                                                 .position_side = side_name[s],
                                                 .amount = fmt_dec(q, amt[k]), .source = source};
                k++;
            }
        }
        if (k && journal_record_positions(c->journal, v, k) < 0)
            log_debug(TAG, "%s: position snapshot not queued", a->name);
    }
    free(v);
    free(amt);
}

#define RESYNC_EVERY_MS 600000

static void on_resync(void *ud, const struct exch_status *st, int64_t offset_ms) {
    struct acct *a = ud;
    if (a->c->freeing) return;
    if (st->err) log_warn(TAG, "%s: server time re-sync failed: %s (keeping the last offset)", a->name, st->error_msg);
    else log_debug(TAG, "%s: server time offset %" PRId64 " ms", a->name, offset_ms);
}

static void refresh_tick(uv_timer_t *t) {
    struct copier *c = t->data;
    struct instruments *it, *tmp;
    /* Clocks drift: signed requests must stay inside the exchange's receive window. */
    c->resync_elapsed_ms += c->refresh_ms;
    if (c->resync_elapsed_ms >= RESYNC_EVERY_MS) {
        c->resync_elapsed_ms = 0;
        for (size_t i = 0; i < c->n_accts && !c->freeing; i++) (void)exch_sync_time(c->accts[i].ex, on_resync, &c->accts[i]);
    }
    c->snap_elapsed_ms += c->refresh_ms;
    if (c->snap_elapsed_ms >= SNAPSHOT_EVERY_MS) {
        c->snap_elapsed_ms = 0;
        for (size_t i = 0; i < c->n_accts && !c->freeing; i++) snapshot_positions(c, &c->accts[i], "book");
    }
    for (size_t i = 0; i < c->n_rules && !c->freeing; i++)
        if (c->rules[i].m_drift && !c->rules[i].removed && c->accts[c->rules[i].follower].state_ok)
            met_gauge_set(c->rules[i].m_drift, rule_drift(c, &c->rules[i]));
    /* Equity is refreshed by its own pacer (copier_cache.c), evenly within a share of each
     * exchange host's IP budget, not in bursts every tick. */
    if (c->started && !c->draining && !c->freeing) open_ticker_streams(c);
    copier_load_expire(c);
    HASH_ITER(hh, c->insts, it, tmp) {
        if (c->freeing) break;
        copier_cache_tickers(it);
        copier_cache_instruments(it);
    }
}

/* ---- pre-flight ------------------------------------------------------------------------- */

static void preflight_rule(struct copier *c, struct rule *r);

/* The rules whose accounts have their state; the others when their follower's comes in. */
static void preflight(struct copier *c) {
    for (size_t i = 0; i < c->n_rules; i++)
        if (!c->rules[i].removed && c->accts[c->rules[i].follower].state_ok &&
            c->accts[c->rules[i].leader].state_ok)
            preflight_rule(c, &c->rules[i]);
}

void copier_preflight_follower(struct copier *c, struct acct *a) {
    if (!c->started_refresh) return; /* preflight() runs later and covers it */
    size_t n = c->follows ? a->n_follows : c->n_rules;
    for (size_t k = 0; k < n; k++) {
        struct rule *r = &c->rules[c->follows ? c->follows[a->follows_at + k] : k];
        if (r->follower == a->idx && !r->removed && c->accts[r->leader].state_ok) preflight_rule(c, r);
    }
}

static void preflight_rule(struct copier *c, struct rule *r) {
    {
        struct acct *l = &c->accts[r->leader], *f = &c->accts[r->follower];
        struct copy_problem probs[PREFLIGHT_MAX];
        struct copy_preflight_symbol *syms;
        struct inst_entry *e, *tmp;
        size_t n = 0, k = 0;
        int np;
        if (!f->inst) return;
        syms = calloc(HASH_COUNT(f->inst->map) + 1, sizeof(*syms));
        if (!syms) return;
        HASH_ITER(hh, f->inst->map, e, tmp) {
            if (!copy_rule_symbol_allowed(&r->cr, e->v.symbol)) continue;
            syms[n++] = (struct copy_preflight_symbol){
                .instrument = &e->v,
                .price = e->ticker,
                .follower_leverage = dec_from_int(follower_leverage(f, e->v.symbol)),
            };
        }
        struct copy_preflight_input in = {
            .rule = &r->cr, .leader_mode = l->mode, .follower_mode = f->mode,
            .follower_equity = f->equity, .leader_equity = l->equity, .symbols = syms, .n_symbols = n,
        };
        np = copy_preflight(&in, probs, PREFLIGHT_MAX);
        free(syms);
        if (np < 0) return;
        met_gauge_set(r->m_preflight, np);
        for (k = 0; k < (size_t)np && k < PREFLIGHT_MAX; k++)
            log_at(probs[k].severity == COPY_SEV_ERROR ? LOG_LVL_ERROR : LOG_LVL_WARN, TAG,
                   "pre-flight: rule %s (%s -> %s): %s%s%s: %s", r->cr.id, l->name, f->name,
                   copy_problem_name(probs[k].code), probs[k].symbol[0] ? " " : "", probs[k].symbol,
                   probs[k].text);
        if (np == 0) log_info(TAG, "pre-flight: rule %s (%s -> %s): ok", r->cr.id, l->name, f->name);
    }
}

/* ---- live tickers: the slippage guard's reference price, between REST refreshes ---- */

static void on_stream_ticker(void *ud, const struct exch_ticker_update *u) {
    struct instruments *t = ud;
    struct inst_entry *e = NULL;
    HASH_FIND_STR(t->map, u->symbol, e);
    if (!e || dec_sign(u->last) <= 0) return;
    e->ticker = u->last;
    e->ticker_ms = u->time_ms > 0 ? u->time_ms : copier_exchange_now_ms(t->fetcher);
}

static void on_ticker_state(void *ud, enum exch_stream_state st, const char *reason) {
    struct instruments *t = ud;
    bool up = st == EXCH_STREAM_UP;
    if (up == t->tstream_up) return;
    t->tstream_up = up;
    if (up) log_info(TAG, "%s: ticker stream up", t->url);
    else log_warn(TAG, "%s: ticker stream %s (%s): prices come from the REST refresh meanwhile", t->url,
                  st == EXCH_STREAM_DOWN ? "down" : "connecting", reason ? reason : "");
}

static void on_ticker_bad_frame(void *ud, const char *why, const char *frame, size_t len) {
    struct instruments *t = ud;
    (void)frame;
    log_warn(TAG, "%s: ticker stream: unreadable frame (%zu bytes): %s", t->url, len, why);
}

static void add_sym(const char **v, size_t *n, size_t cap, const char *s) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(v[i], s)) return;
    if (*n < cap) v[(*n)++] = s;
}

/* One stream per exchange endpoint, for the symbols its followers are likely to trade: those
 * their rules name and those the leaders hold or traded (at most 100; the REST refresh covers
 * the rest). Called at start and from the refresh timer: a stream is reopened when a leader
 * starts trading a symbol it did not have. */
static void open_ticker_streams(struct copier *c) {
    enum { MAX_SYMS = 100 };
    struct instruments *t, *tmp;
    HASH_ITER(hh, c->insts, t, tmp) {
        const char *syms[MAX_SYMS];
        size_t n = 0;
        uint64_t sig = 1469598103934665603ULL;
        for (size_t i = 0; i < c->n_rules; i++) {
            const struct rule *r = &c->rules[i];
            if (r->removed || c->accts[r->follower].inst != t) continue;
            for (size_t k = 0; k < r->cr.n_allow; k++) add_sym(syms, &n, MAX_SYMS, r->cr.allow_symbols[k]);
            struct sym_entry *e, *etmp;
            HASH_ITER(hh, c->accts[r->leader].held, e, etmp) add_sym(syms, &n, MAX_SYMS, e->symbol);
        }
        if (!n) continue;
        for (size_t i = 0; i < n; i++)
            for (const char *p = syms[i]; *p; p++) sig = (sig ^ (unsigned char)*p) * 1099511628211ULL ^ i;
        if (t->tstream && sig == t->tstream_sig) continue;
        t->tstream = exch_ticker_stream_close(t->tstream);
        t->tstream_up = false;
        t->tstream_sig = sig;
        struct exch_ticker_stream_cbs cbs = {
            .on_ticker = on_stream_ticker, .on_state = on_ticker_state, .ud = t,
            .on_bad_frame = on_ticker_bad_frame,
        };
        t->tstream = exch_ticker_stream_open(t->fetcher->ex, c->lws, syms, n, &cbs);
        if (!t->tstream)
            log_warn(TAG, "%s: no ticker stream (%s): prices come from the REST refresh", t->url, strerror(errno));
        else
            log_info(TAG, "%s: ticker stream for %zu symbols", t->url, n);
    }
}

void copier_open_stream(struct acct *a) { open_stream(a); }

static void open_stream(struct acct *a) {
    struct exch_stream_cbs cbs = {
        .on_fill = copier_on_fill, .on_position = on_position, .on_state = on_state,
        .on_bad_frame = on_bad_frame, .on_leverage = on_leader_leverage, .ud = a,
    };
    if (a->stream) return;
    a->stream = exch_stream_open(a->ex, a->c->lws, &cbs);
    if (!a->stream) log_error(TAG, "%s: cannot open the leader stream: %s", a->name, strerror(errno));
}

void copier_startup_next(struct copier *c) { startup_next(c); }

static void startup_next(struct copier *c) {
    if (c->freeing || c->draining) return;
    c->startup_pending = 0;
    switch (c->phase) {
    case 0:
        log_info(TAG, "start-up: server time of %zu accounts", c->n_accts);
        c->startup_pending = c->n_accts;
        for (size_t i = 0; i < c->n_accts; i++) do_time(&c->accts[i].retry);
        break;
    case 1: {
        struct instruments *t, *tmp;
        size_t n = HASH_COUNT(c->insts);
        log_info(TAG, "start-up: instruments of %zu exchange endpoints", n);
        c->startup_pending = n;
        HASH_ITER(hh, c->insts, t, tmp) do_instruments(&t->fetcher->retry);
        if (n == 0) {
            c->phase++;
            startup_next(c);
        }
        break;
    }
    case 2: {
        /* Before READY: the leaders (their positions are what fills are decided against) and the
         * followers with orders to reconcile (reconciliation comes before any new order of
         * theirs). Every other follower loads after READY (copier_load.c). */
        bool *gate = calloc(c->n_accts + 1, sizeof(*gate));
        size_t n = 0;
        for (size_t i = 0; gate && i < c->n_accts; i++) gate[i] = c->accts[i].is_leader;
        for (size_t i = 0; gate && i < c->n_pend; i++)
            for (size_t k = 0; k < c->n_accts; k++)
                if (!strcmp(c->accts[k].name, c->pend[i].follower)) gate[k] = true;
        for (size_t i = 0; i < c->n_accts; i++) {
            if (!gate || gate[i]) n++;
            else copier_load_enqueue(&c->accts[i]);
        }
        log_info(TAG, "start-up: positions of %zu accounts (%zu more after ready)", n, c->n_accts - n);
        c->startup_pending = n;
        for (size_t i = 0; i < c->n_accts; i++)
            if (!gate || gate[i]) do_positions(&c->accts[i].retry);
        free(gate);
        if (n == 0) {
            c->phase++;
            startup_next(c);
        }
        break;
    }
    case 3:
        if (!c->started_refresh) {
            c->started_refresh = true;
            preflight(c);
            uv_timer_start(&c->refresh_timer, refresh_tick, c->refresh_ms, c->refresh_ms);
            copier_equity_pace_start(c);
        }
        if (!c->reconciled) {
            /* Orders an earlier run left open are resolved before any new fill is decided. */
            if (!c->reconcile_started) copier_reconcile_start(c);
            if (!c->reconciled) break;
        }
        if (!c->journal_up) {
            /* A fill needs the journal before anything can be sent: open the streams once it is up. */
            log_info(TAG, "start-up: waiting for the journal before opening the leader streams");
            break;
        }
        c->started = true;
        c->phase = 4;
        for (size_t i = 0; i < c->n_accts; i++)
            if (c->accts[i].is_leader) open_stream(&c->accts[i]);
        open_ticker_streams(c);
        log_info(TAG, "start-up: leader streams opening");
        break;
    default:
        break;
    }
}

/* ---- lifecycle -------------------------------------------------------------------------- */

struct copier *copier_new(const struct copier_deps *d) {
    struct copier *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->loop = d->loop;
    c->journal = d->journal;
    c->reg = d->metrics;
    c->redis = d->redis;
    c->lws = d->lws;
    c->position_ttl_ms = d->position_ttl_ms ? d->position_ttl_ms : 10000;
    c->pos = position_book_new();
    c->h_fill_send = lat_hist_new();
    c->h_fill_ack = lat_hist_new();
    c->dedupe = fill_dedupe_new(d->dedupe_capacity ? d->dedupe_capacity : 1000000);
    c->accts = calloc(d->n_accounts ? d->n_accounts : 1, sizeof(*c->accts));
    c->rules = calloc(d->n_rules ? d->n_rules : 1, sizeof(*c->rules));
    if (!c->pos || !c->dedupe || !c->accts || !c->rules || !c->h_fill_send || !c->h_fill_ack) goto fail;
    c->n_accts = d->n_accounts;
    for (size_t i = 0; i < d->n_seen; i++)
        (void)fill_dedupe_seen(c->dedupe, d->seen[i].account, d->seen[i].symbol, d->seen[i].trade_id);
    uv_timer_init(c->loop, &c->drain_timer);
    c->drain_timer.data = c;
    uv_timer_init(c->loop, &c->held_timer);
    c->held_timer.data = c;
    uv_timer_init(c->loop, &c->refresh_timer);
    c->refresh_timer.data = c;
    uv_timer_init(c->loop, &c->df_timer);
    c->df_timer.data = c;
    uv_timer_init(c->loop, &c->fw_timer);
    c->fw_timer.data = c;
    c->refresh_ms = d->refresh_ms ? d->refresh_ms : 5000;
    c->state_wait_ms = d->state_wait_ms;
    for (size_t i = 0; i < d->n_accounts; i++) {
        uv_timer_init(c->loop, &c->accts[i].retry);
        c->accts[i].retry.data = &c->accts[i];
    }
    c->timers_inited = true;
    for (size_t i = 0; i < d->n_accounts; i++) {
        struct acct *a = &c->accts[i];
        a->c = c;
        a->idx = i;
        snprintf(a->name, sizeof(a->name), "%s", d->accounts[i].name);
        snprintf(a->exchange, sizeof(a->exchange), "%s", d->accounts[i].exchange);
        a->ex = d->accounts[i].ex;
        a->expect_mode = d->accounts[i].expect_mode;
        a->startup_since_ms = d->accounts[i].backfill_since_ms;
        a->inst = instruments_get(c, d->accounts[i].rest_url);
        if (!a->inst) goto fail;
        if (!a->inst->fetcher) a->inst->fetcher = a;
    }
    c->n_rules = d->n_rules;
    for (size_t i = 0; i < d->n_rules; i++) {
        struct rule *r = &c->rules[i];
        r->cr = d->rules[i].params;
        r->leader = d->rules[i].leader;
        r->follower = d->rules[i].follower;
        r->enabled = d->rules[i].enabled;
        copy_state_init(&r->st, NULL, 0);
        r->coalesce = d->rules[i].coalesce;
        if (d->rules[i].close_only) r->st.stopped = true; /* kept from the journal until a reset */
        if (d->rules[i].paused) copy_state_set_paused(&r->st, true); /* an operator's pause */
        if (r->leader >= c->n_accts || r->follower >= c->n_accts) goto fail;
        c->accts[r->leader].is_leader = true;
    }
    for (size_t i = 0; i < d->n_hwm; i++) {
        struct hwm_entry *h = calloc(1, sizeof(*h));
        if (!h) goto fail;
        pair_key(h->key, sizeof(h->key), d->hwm[i].account, d->hwm[i].symbol);
        h->trade_seq = d->hwm[i].trade_seq;
        HASH_ADD_STR(c->hwm, key, h);
        /* A symbol the leader traded before: the start-up backfill looks there (Binance lists
         * trades per symbol only). */
        for (size_t k = 0; k < c->n_accts; k++)
            if (!strcmp(c->accts[k].name, d->hwm[i].account)) copier_note_held(&c->accts[k], d->hwm[i].symbol);
    }
    c->backfill_max_age_ms = d->backfill_max_age_ms ? (int64_t)d->backfill_max_age_ms : 3600000;
    if (copier_reconcile_copy(c, d->pending, d->n_pending) < 0) goto fail;
    if (copier_caches_init(c, d) < 0) goto fail;
    if (metrics_init(c) < 0) goto fail;
    follows_build(c);
    return c;
fail:
    copier_free(c);
    return NULL;
}

uint64_t copier_orders_sent(const struct copier *c) { return c->orders_sent; }

int copier_start(struct copier *c) {
    c->phase = 0;
    startup_next(c);
    return 0;
}

bool copier_ready(const struct copier *c) { return c->ready; }

void copier_on_ready(struct copier *c, void (*cb)(void *ud), void *ud) {
    c->on_ready = cb;
    c->on_ready_ud = ud;
}

size_t copier_followers_loading(const struct copier *c) { return c->ld_left; }

void copier_journal_state(struct copier *c, bool up) {
    c->journal_up = up;
    if (!up || c->freeing || c->draining) return;
    if (c->phase == 3) startup_next(c);
    if (c->held_head) held_retry(&c->held_timer);
}

size_t copier_streams_up(const struct copier *c, size_t *total) {
    size_t up = 0, n = 0;
    for (size_t i = 0; i < c->n_accts; i++) {
        if (!c->accts[i].is_leader) continue;
        n++;
        if (c->accts[i].stream_up) up++;
    }
    if (total) *total = n;
    return up;
}

size_t copier_stream_info(const struct copier *c, struct copier_stream_info *out, size_t max) {
    size_t n = 0;
    for (size_t i = 0; i < c->n_accts; i++) {
        const struct acct *a = &c->accts[i];
        if (!a->is_leader) continue;
        if (n < max)
            out[n] = (struct copier_stream_info){a->name, a->stream_up, a->stream_was_up,
                                                 a->stream_since_ms,
                                                 a->stream_reason ? a->stream_reason : ""};
        n++;
    }
    return n;
}

static void close_streams(struct copier *c) {
    struct instruments *t, *tmp;
    HASH_ITER(hh, c->insts, t, tmp) t->tstream = exch_ticker_stream_close(t->tstream);
    for (size_t i = 0; i < c->n_accts; i++) {
        c->accts[i].stream = exch_stream_close(c->accts[i].stream);
        c->accts[i].stream_up = false;
        uv_timer_stop(&c->accts[i].retry);
    }
}

static void drain_timeout(uv_timer_t *t) {
    struct copier *c = t->data;
    void (*done)(void *) = c->drain_done;
    if (!done) return;
    log_warn(TAG, "drain deadline passed with %zu orders in flight, %zu fills being journaled and %zu "
             "held (not copied)", c->jobs_in_flight, c->fills_in_journal, c->held);
    c->drain_done = NULL;
    done(c->drain_ud);
}

void copier_drain(struct copier *c, unsigned deadline_ms, void (*done)(void *ud), void *ud) {
    c->draining = true;
    uv_timer_stop(&c->refresh_timer);
    close_streams(c);
    copier_fill_wait_drop(c); /* not journaled: the next start's backfill takes them */
    /* Queued orders not yet sent stay journaled as 'intent' for the next start to reconcile;
     * those already in flight get their answers. */
    c->drain_done = done;
    c->drain_ud = ud;
    uv_timer_start(&c->drain_timer, drain_timeout, deadline_ms, 0);
    drain_check(c);
}

/* The copier's own timers (drain, per-account retries) are inside its allocations: the memory
 * goes once the last of them has closed. */
static void copier_handle_closed(uv_handle_t *h) {
    struct copier *c = h->data;
    if (--c->closing_handles == 0) {
        free(c->accts);
        for (size_t i = 0; i < c->n_rules; i++) free(c->rules[i].acc);
        free(c->rules);
        free(c->follows);
        free(c);
    }
}

static void close_own(struct copier *c, uv_timer_t *t) {
    t->data = c;
    c->closing_handles++;
    uv_close((uv_handle_t *)t, copier_handle_closed);
}

void copier_close(struct copier *c) {
    c->freeing = true;
    uv_timer_stop(&c->refresh_timer);
    close_streams(c);
}

struct copier *copier_free(struct copier *c) {
    struct order_job *j;
    struct lane *l, *ltmp;
    struct instruments *t, *ttmp;
    struct hwm_entry *h, *htmp;
    if (!c) return NULL;
    copier_close(c);
    copier_caches_free(c); /* before the maps its waiters refer to */
    copier_load_free(c);
    while ((j = c->jobs)) {
        uv_timer_stop(&j->timer);
        c->jobs = j->lnext;
        if (c->jobs) c->jobs->lprev = NULL;
        j->lprev = j->lnext = NULL;
        fill_lat_release(j);
        uv_close((uv_handle_t *)&j->timer, job_closed);
    }
    while (c->held_head) {
        struct fill_job *fj = c->held_head;
        c->held_head = fj->next;
        log_error(TAG, "%s %s trade %s: still waiting for the journal at exit, NOT copied",
                  fj->fill.account, fj->fill.symbol, fj->fill.trade_id);
        free(fj);
    }
    c->held_tail = NULL;
    c->held = 0;
    HASH_ITER(hh, c->lanes, l, ltmp) {
        HASH_DEL(c->lanes, l);
        free(l);
    }
    HASH_ITER(hh, c->insts, t, ttmp) {
        struct inst_entry *e, *etmp;
        HASH_ITER(hh, t->map, e, etmp) {
            HASH_DEL(t->map, e);
            free(e);
        }
        HASH_DEL(c->insts, t);
        free(t);
    }
    for (size_t i = 0; i < c->n_accts; i++) {
        struct sym_entry *se, *stmp;
        c->accts[i].lev = lev_map_free(c->accts[i].lev);
        free(c->accts[i].stream_reason);
        copier_backfill_free(&c->accts[i]);
        snap_clear(&c->accts[i]);
        HASH_ITER(hh, c->accts[i].held, se, stmp) {
            HASH_DEL(c->accts[i].held, se);
            free(se);
        }
    }
    HASH_ITER(hh, c->hwm, h, htmp) {
        HASH_DEL(c->hwm, h);
        free(h);
    }
    copier_reconcile_free(c);
    position_book_free(c->pos);
    fill_dedupe_free(c->dedupe);
    lat_hist_free(c->h_fill_send);
    lat_hist_free(c->h_fill_ack);
    if (!c->timers_inited) {
        free(c->accts);
        for (size_t i = 0; i < c->n_rules; i++) free(c->rules[i].acc);
        free(c->rules);
        free(c->follows);
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < c->n_accts; i++) close_own(c, &c->accts[i].retry);
    close_own(c, &c->drain_timer);
    close_own(c, &c->held_timer);
    close_own(c, &c->refresh_timer);
    close_own(c, &c->df_timer);
    close_own(c, &c->fw_timer);
    return NULL;
}

/* ---- operator actions (copytraderctl through the daemon's local HTTP) ------------------------ */

static struct rule *rule_find(const struct copier *c, const char *id) {
    for (size_t i = 0; id && i < c->n_rules; i++)
        if (strcmp(c->rules[i].cr.id, id) == 0) return &c->rules[i];
    return NULL;
}

int copier_rule_action(struct copier *c, const char *rule_id, enum copier_rule_op op,
                       const char **status) {
    struct rule *r = rule_find(c, rule_id);
    enum copy_status before, after;
    if (!r || r->removed) return -ENOENT;
    before = copy_state_status(&r->st);
    switch (op) {
    case COPIER_RULE_PAUSE: copy_state_set_paused(&r->st, true); break;
    case COPIER_RULE_RESUME: copy_state_set_paused(&r->st, false); break;
    case COPIER_RULE_RESET: copy_rule_reset(&r->st); break;
    default: return -EINVAL;
    }
    after = copy_state_status(&r->st);
    met_gauge_set(r->m_status, (double)after);
    /* The journal keeps the loss stop (close_only until a reset, even while paused) and the
     * operator's pause switch separately, so a restart restores both. */
    if (journal_set_rule_status(c->journal, r->cr.id,
                                r->st.stopped ? "close_only" : copy_status_name(after),
                                r->st.paused ? 1 : 0) < 0)
        log_error(TAG, "rule %s: cannot queue its %s state for the journal", r->cr.id,
                  copy_status_name(after));
    log_info(TAG, "rule %s: operator %s: %s -> %s", r->cr.id,
             op == COPIER_RULE_PAUSE ? "pause" : op == COPIER_RULE_RESUME ? "resume" : "reset",
             copy_status_name(before), copy_status_name(after));
    if (status) *status = copy_status_name(after);
    return 0;
}

char *copier_state_json(const struct copier *c) {
    json_t *root = json_object(), *rules = json_array(), *leaders = json_array();
    char *out = NULL;
    if (!root || !rules || !leaders) goto out;
    for (size_t i = 0; i < c->n_accts; i++) {
        const struct acct *a = &c->accts[i];
        if (!a->is_leader) continue;
        if (json_array_append_new(leaders, json_pack("{s:s, s:s, s:b, s:b}", "account", a->name,
                                                     "exchange", a->exchange, "stream_up", a->stream_up,
                                                     "stream_was_up", a->stream_was_up)) < 0)
            goto out;
    }
    for (size_t i = 0; i < c->n_rules; i++) {
        const struct rule *r = &c->rules[i];
        if (r->removed) continue;
        if (json_array_append_new(rules, json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:I}", "id", r->cr.id,
                                                   "leader", c->accts[r->leader].name,
                                                   "follower", c->accts[r->follower].name,
                                                   "status", copy_status_name(copy_state_status(&r->st)),
                                                   "stop", copy_stop_name(r->st.stop),
                                                   "enabled", r->enabled, "stopped", r->st.stopped,
                                                   "held", (json_int_t)copy_state_held(&r->st))) < 0)
            goto out;
    }
    if (json_object_set_new(root, "followers_loading", json_integer((json_int_t)c->ld_left)) < 0 ||
        json_object_set(root, "ready", json_boolean(c->ready)) < 0 ||
        json_object_set(root, "leaders", leaders) < 0 || json_object_set(root, "rules", rules) < 0)
        goto out;
    out = json_dumps(root, JSON_COMPACT);
out:
    json_decref(leaders);
    json_decref(rules);
    json_decref(root);
    return out;
}

/* ---- reload ------------------------------------------------------------------------------ */

static void rule_set(struct rule *r, const struct copier_rule *in) {
    r->cr = in->params;
    r->leader = in->leader;
    r->follower = in->follower;
    r->enabled = in->enabled;
    r->removed = false;
    if (in->coalesce) r->coalesce = true; /* slots on the next fill; slots in use stay */
}

int copier_reload(struct copier *c, const struct copier_rule *rules, size_t n,
                  struct copier_reload_stats *out) {
    struct copier_reload_stats s = {0};
    size_t add = 0, old_n = c->n_rules;
    bool *seen;
    for (size_t i = 0; i < n; i++) {
        if (rules[i].leader >= c->n_accts || rules[i].follower >= c->n_accts || !rules[i].params.id ||
            strlen(rules[i].params.id) >= RULE_ID_MAX)
            return -EINVAL;
        if (!rule_find(c, rules[i].params.id)) add++;
    }
    seen = calloc(old_n + add + 1, sizeof(*seen));
    if (!seen) return -ENOMEM;
    if (add) {
        struct rule *nr = realloc(c->rules, (old_n + add) * sizeof(*nr));
        if (!nr) {
            free(seen);
            return -ENOMEM;
        }
        c->rules = nr;
    }
    for (size_t i = 0; i < n; i++) {
        struct rule *r = rule_find(c, rules[i].params.id);
        if (r) {
            if (r->removed) s.added++; else s.kept++;
            rule_set(r, &rules[i]);
        } else {
            r = &c->rules[c->n_rules];
            memset(r, 0, sizeof(*r));
            copy_state_init(&r->st, NULL, 0);
            if (rules[i].close_only) r->st.stopped = true;
            if (rules[i].paused) copy_state_set_paused(&r->st, true);
            rule_set(r, &rules[i]);
            if (rule_metrics_init(c, r) < 0) {
                free(seen);
                return -ENOMEM; /* the rule is not counted: n_rules unchanged */
            }
            c->n_rules++;
            s.added++;
        }
        seen[r - c->rules] = true;
        met_gauge_set(r->m_status, (double)copy_state_status(&r->st));
        if (c->started_refresh) preflight_rule(c, r);
        if (r->enabled && !c->accts[r->leader].is_leader) {
            c->accts[r->leader].is_leader = true;
            if (leader_metrics_init(c, &c->accts[r->leader]) < 0) log_error(TAG, "out of memory: leader metrics");
            /* Its fills are decided against its positions: a leader still loading its state gets
             * its stream once that is in (copier_load_done). */
            if (c->started && !c->draining && c->accts[r->leader].state_ok) open_stream(&c->accts[r->leader]);
            else if (c->started) copier_load_urgent(&c->accts[r->leader]);
        }
    }
    for (size_t i = 0; i < c->n_rules; i++) {
        struct rule *r = &c->rules[i];
        if (seen[i] || r->removed) continue;
        snprintf(r->id_buf, sizeof(r->id_buf), "%s", r->cr.id);
        memset(&r->cr, 0, sizeof(r->cr));
        r->cr.id = r->id_buf;
        r->enabled = false;
        r->removed = true;
        met_gauge_set(r->m_status, 3);
        s.removed++;
    }
    free(seen);
    follows_build(c);
    if (out) *out = s;
    return 0;
}

const struct lat_hist *copier_fill_latency(const struct copier *c, enum copier_lat which) {
    return which == COPIER_LAT_ACK ? c->h_fill_ack : c->h_fill_send;
}

void copier_fill_latency_reset(struct copier *c) {
    lat_hist_reset(c->h_fill_send);
    lat_hist_reset(c->h_fill_ack);
}
