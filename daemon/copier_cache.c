/* copier_cache: the copier's account and market data through two-level caches (cache.h): an
 * in-process TTL + LRU cache in front of Redis, shared by every daemon on the same Redis.
 *
 *   cache        key                 value (JSON)                          TTL (default)
 *   tickers      exchange endpoint   [[symbol, price, time_ms], ...]       5 s
 *   balances     account             {"equity","wallet","available"}       15 s
 *   positions    account/symbol      {"net","long","short"}                10 s
 *   instruments  exchange endpoint   [{symbol, filters...}, ...]           1 h
 *
 * Start-up fetches everything from the exchanges (one request per account or endpoint: the
 * warm-up) and puts it in the caches. Afterwards the refresh timer asks the caches: a fresh entry
 * costs nothing, a stale one is refreshed single-flight per key, from Redis when another daemon
 * refreshed it lately, else from the exchange. A follower's fill puts its position at once.
 *
 * Nothing on the hot path waits for a cache or for Redis: decisions read the copier's own maps
 * (instrument filters, tickers, the position book), which these refreshes keep current. Redis
 * down, slow or restarted: the caches work in-process (cache.h), redis_client reconnects. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "copier_internal.h"
#include "exch_limits.h"
#include "log.h"
#include "position_book.h"
#include "refresh_pace.h"

#define TAG "copier"

static const char *const cache_names[COPIER_CACHE__COUNT] = {
    [COPIER_CACHE_TICKERS] = "tickers", [COPIER_CACHE_BALANCES] = "balances",
    [COPIER_CACHE_POSITIONS] = "positions", [COPIER_CACHE_INSTRUMENTS] = "instruments",
};

static char *dec_str(dec_t d, char buf[DEC_STR_MAX]) {
    if (dec_format(d, buf, DEC_STR_MAX) < 0) snprintf(buf, DEC_STR_MAX, "0");
    return buf;
}

static int dec_of(json_t *o, const char *k, dec_t *out) {
    const char *s = json_string_value(json_object_get(o, k));
    return s && dec_parse_cstr(s, out) == 0 ? 0 : -EBADMSG;
}

/* Serialises a JSON value into the cache's load (consumes j). */
static void load_done_json(struct cache_load *ld, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        cache_load_done(ld, -ENOMEM, NULL, 0);
        return;
    }
    cache_load_done(ld, 0, s, strlen(s));
    free(s);
}

/* ---- tickers ---- */

static void on_tickers_loaded(void *ud, const struct exch_status *st, const struct exch_ticker *v, size_t n) {
    struct cache_load *ld = ud;
    char p[DEC_STR_MAX];
    json_t *a;
    if (st->err) {
        cache_load_done(ld, st->err, NULL, 0);
        return;
    }
    a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("[s,s,I]", v[i].symbol, dec_str(v[i].price, p), (json_int_t)v[i].time_ms));
    load_done_json(ld, a);
}

static void load_tickers(void *loader_ud, const char *key, struct cache_load *ld) {
    struct instruments *t = loader_ud;
    (void)key;
    int e = exch_fetch_tickers(t->fetcher->ex, on_tickers_loaded, ld);
    if (e < 0) cache_load_done(ld, e, NULL, 0);
}

static void apply_tickers(struct instruments *t, const char *val, size_t len) {
    json_t *a = json_loadb(val, len, 0, NULL), *row;
    size_t i;
    int64_t now = copier_exchange_now_ms(t->fetcher);
    if (!json_is_array(a)) {
        json_decref(a);
        return;
    }
    json_array_foreach(a, i, row) {
        struct inst_entry *e = NULL;
        const char *sym = json_string_value(json_array_get(row, 0));
        const char *px = json_string_value(json_array_get(row, 1));
        dec_t price;
        if (!sym || !px || dec_parse_cstr(px, &price) < 0) continue;
        HASH_FIND_STR(t->map, sym, e);
        if (!e) continue;
        e->ticker = price;
        e->ticker_ms = json_integer_value(json_array_get(row, 2)) > 0 ? json_integer_value(json_array_get(row, 2)) : now;
    }
    json_decref(a);
}

static void on_tickers(void *ud, int err, const void *val, size_t len) {
    struct instruments *t = ud;
    t->tickers_busy = false;
    if (err == -ECANCELED || t->fetcher->c->freeing) return;
    if (err < 0) {
        log_debug(TAG, "%s: ticker refresh failed: %s", t->url, strerror(-err));
        return;
    }
    apply_tickers(t, val, len);
}

void copier_cache_tickers(struct instruments *t) {
    struct cache *k = t->fetcher->c->caches[COPIER_CACHE_TICKERS];
    const void *val;
    size_t len;
    if (t->tickers_busy) return;
    if (cache_get(k, t->url, &val, &len, NULL) == CACHE_HIT) {
        apply_tickers(t, val, len); /* another daemon's refresh, or ours: fresh enough */
        return;
    }
    t->tickers_busy = true;
    if (cache_fetch(k, t->url, load_tickers, t, on_tickers, t) < 0) t->tickers_busy = false;
}

void copier_cache_put_tickers(struct instruments *t, const struct exch_ticker *v, size_t n) {
    char p[DEC_STR_MAX], *s;
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("[s,s,I]", v[i].symbol, dec_str(v[i].price, p), (json_int_t)v[i].time_ms));
    if (a && (s = json_dumps(a, JSON_COMPACT))) {
        (void)cache_put(t->fetcher->c->caches[COPIER_CACHE_TICKERS], t->url, s, strlen(s));
        free(s);
    }
    json_decref(a);
}

/* ---- balances ---- */

static json_t *balance_json(const struct exch_balance *b) {
    char e[DEC_STR_MAX], w[DEC_STR_MAX], a[DEC_STR_MAX];
    return json_pack("{s:s,s:s,s:s}", "equity", dec_str(b->equity, e), "wallet", dec_str(b->wallet, w),
                     "available", dec_str(b->available, a));
}

/* One exchange request for an account's equity. The cache stops waiting for a load after its
 * load_timeout_ms (10 s) while the request may still wait in the REST pool for the IP budget;
 * until it is answered the account counts as loading (eq_loading), so no tick sends a second
 * one for it. Listed in the pacer so that copier_caches_free can detach them: their answers may
 * come after the accounts are gone. */
struct eq_load {
    struct eq_load *prev, *next;
    struct acct *a;           /* NULL once detached */
    struct cache_load *ld;
};

static void eq_loaded(struct eq_load *t, bool waited, int err);

static void on_balance_loaded(void *ud, const struct exch_status *st, const struct exch_balance *b) {
    struct eq_load *t = ud;
    struct acct *a = t->a;
    bool waited = a && a->equity_busy; /* its cache waiter was still there */
    if (st->err) cache_load_done(t->ld, st->err, NULL, 0);
    else load_done_json(t->ld, balance_json(b));
    if (a) eq_loaded(t, waited, st->err);
    free(t);
}

static void eq_load_link(struct acct *a, struct eq_load *t);

static void load_balance(void *loader_ud, const char *key, struct cache_load *ld) {
    struct acct *a = loader_ud;
    struct eq_load *t = calloc(1, sizeof *t);
    (void)key;
    if (!t) {
        cache_load_done(ld, -ENOMEM, NULL, 0);
        return;
    }
    t->a = a;
    t->ld = ld;
    int e = exch_fetch_account(a->ex, on_balance_loaded, t);
    if (e < 0) {
        free(t);
        cache_load_done(ld, e, NULL, 0);
        return;
    }
    a->eq_loading = true;
    eq_load_link(a, t);
}

static void apply_balance(struct acct *a, const void *val, size_t len) {
    json_t *o = json_loadb(val, len, 0, NULL);
    dec_t eq;
    if (json_is_object(o) && dec_of(o, "equity", &eq) == 0) copier_observe_equity(a, eq);
    json_decref(o);
}

static void eq_note(struct acct *a, int64_t at_ms);

/* A fresh cached value is the account's equity now (applied when `apply`): note how old it is (a
 * value read from Redis keeps its age). Returns the lookup's result. */
static enum cache_result eq_note_cached(struct acct *a, bool apply) {
    const void *val;
    size_t len;
    uint64_t age = 0;
    enum cache_result r = cache_get(a->c->caches[COPIER_CACHE_BALANCES], a->name, &val, &len, &age);
    if (r != CACHE_HIT) return r;
    if (apply) apply_balance(a, val, len);
    eq_note(a, (int64_t)uv_now(a->c->loop) - (int64_t)age);
    return r;
}

static void on_balance(void *ud, int err, const void *val, size_t len) {
    struct acct *a = ud;
    a->equity_busy = false;
    if (err == -ECANCELED || a->c->freeing) return;
    if (err < 0) {
        log_debug(TAG, "%s: equity refresh failed: %s", a->name, strerror(-err));
        return;
    }
    apply_balance(a, val, len);
    (void)eq_note_cached(a, false);
}

void copier_cache_equity(struct acct *a) {
    struct cache *k = a->c->caches[COPIER_CACHE_BALANCES];
    if (a->equity_busy || a->eq_loading) return;
    if (eq_note_cached(a, true) == CACHE_HIT) return;
    a->equity_busy = true;
    if (cache_fetch(k, a->name, load_balance, a, on_balance, a) < 0) a->equity_busy = false;
}

void copier_cache_put_balance(struct acct *a, const struct exch_balance *b) {
    json_t *o = balance_json(b);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s) (void)cache_put(a->c->caches[COPIER_CACHE_BALANCES], a->name, s, strlen(s));
    free(s);
    json_decref(o);
    eq_note(a, (int64_t)uv_now(a->c->loop));
}

/* ---- equity refreshes, paced per exchange host (refresh_pace.h) ----
 *
 * Every account's equity goes stale after cache_ttl_balances_ms. Refreshing each one then would
 * cost (accounts / TTL) x weight: 1,000 Binance followers every 15 s are 20,000 weight a minute,
 * 8x an IP's whole budget, and the refreshes would queue without bound in the REST pool in front
 * of every other query while equity got arbitrarily old. Instead each exchange host (one IP
 * budget) has a pace (EQ_SHARE_PCT of that budget) and two queues, its leaders' and its
 * followers', each ordered by when an account was last refreshed or tried. A timer looks every
 * refresh interval and starts, while the pace allows, the refreshes of stale leaders first (their
 * equity sizes every equity_ratio copy of their followers), then of the stale followers that have
 * waited longest; while both wait they take turns, so leaders never starve the followers. With
 * more followers than the pace refreshes within the TTL, each follower's equity is refreshed every
 * followers x interval instead (the same for all, the oldest first), a warning names the period
 * once, and ct_equity_age_max_seconds shows it. A refresh also waits while its host's budget is
 * blocked or nearly used up, and while a second's quarter of them is still out (EQ_ADMIT_PCT,
 * EQ_IN_FLIGHT_MS): then they would only queue in the REST pool. */

/* Share of an exchange host's IP budget equity refreshes may use. Half: the other half stays for
 * what must not wait behind them (status checks of orders with an unknown outcome, final checks,
 * the backfill after a stream reconnect, follower state loads, tickers and instruments); the
 * REST pool admits queries up to 95 % of its 90 % safety margin, so at 50 % a follower's order
 * check never queues behind a wall of refreshes. */
#define EQ_SHARE_PCT 50
/* What one refresh costs on its host's IP budget (the adapters' request tables): Binance's
 * GET /fapi/v3/account weighs 5 of 2,400 a minute (exchange-protocols.md A3; binance_rest.c,
 * BN_ACCOUNT); Bybit counts requests, 600 per 5 s (B7; its per-account 50/s on
 * /v5/account/wallet-balance is never near with one refresh per account at a time). */
#define EQ_COST_BINANCE 5
#define EQ_COST_BYBIT 1
/* The timer looks every refresh interval within these bounds: Binance's 250 ms leaves one refresh
 * at a time, Bybit's 17 ms would be too many wake-ups, so 3 leave together every 50 ms. */
#define EQ_TICK_MIN_MS 50
#define EQ_TICK_MAX_MS 1000
/* At most this many ms worth of a host's refreshes out at once (at least two bursts). One takes
 * a round trip; more out means they wait in the REST pool (the budget is blocked or used up by
 * something else): starting more would only pile them up there, to leave together as one burst
 * when the budget frees. */
#define EQ_IN_FLIGHT_MS 250
/* A refresh starts only while its host's IP budget would admit it at once: used + cost within
 * this share of the limit, which is where the REST pool stops admitting queries (its 90 % safety
 * margin x 95 % for queries, rate_budget.h). Above it, refreshes would only queue there behind
 * whatever used the budget (follower loads at start-up, a backfill); they wait here instead, and
 * leave at the pace again, not all at once, when it frees. */
#define EQ_ADMIT_PCT 85

struct eq_queue {
    struct acct *head, *tail;
    size_t n;
};

struct eq_host {
    char budget[80];             /* its IP budget's name ("ip:HOST:weight/1m"): one per host */
    const char *exchange;        /* of its first account */
    struct acct *probe;          /* an account on it: the budget's limit and blocks are read there */
    struct refresh_pace_cfg cfg;
    struct refresh_pace *pace;
    struct eq_queue leaders, followers;
    size_t in_flight;            /* its exchange requests out (eq_loading) */
    size_t in_flight_max;        /* EQ_IN_FLIGHT_MS of its pace, at least two bursts */
    bool last_leader;            /* the last refresh was a leader's (they take turns) */
    bool warned;                 /* the "older than the TTL" warning was logged */
};

struct eq_gauge { /* a ct_equity_age_max_seconds series */
    struct eq_pacer *q;
    const char *exchange;
    bool leaders;
};

struct eq_pacer {
    uv_timer_t timer;            /* first: the close callback gets the pacer from it */
    bool timer_inited, running;
    struct copier *c;
    int64_t ttl_ms;              /* cache_ttl_balances_ms */
    unsigned tick_ms;
    struct eq_host *hosts;
    size_t n_hosts;
    struct eq_gauge *gauges;     /* 2 per exchange (leaders, followers) */
    struct met_gauge **g_children;
    size_t n_gauges;
    struct eq_load *loads;       /* exchange requests out */
};

static int64_t eq_key(const struct acct *a) { return a->eq_at_ms > a->eq_try_ms ? a->eq_at_ms : a->eq_try_ms; }

static struct eq_queue *eq_queue_of(struct acct *a) {
    return a->eq_leader_q ? &a->eq_host->leaders : &a->eq_host->followers;
}

static void eq_unlink(struct acct *a) {
    struct eq_queue *u = eq_queue_of(a);
    if (a->eq_prev) a->eq_prev->eq_next = a->eq_next;
    else u->head = a->eq_next;
    if (a->eq_next) a->eq_next->eq_prev = a->eq_prev;
    else u->tail = a->eq_prev;
    a->eq_prev = a->eq_next = NULL;
    u->n--;
}

/* Into its role's queue by its key, from the tail: keys mostly grow, so this is O(1). */
static void eq_insert(struct acct *a) {
    a->eq_leader_q = a->is_leader;
    struct eq_queue *u = eq_queue_of(a);
    struct acct *p = u->tail;
    int64_t k = eq_key(a);
    while (p && eq_key(p) > k) p = p->eq_prev;
    a->eq_prev = p;
    a->eq_next = p ? p->eq_next : u->head;
    if (a->eq_next) a->eq_next->eq_prev = a;
    else u->tail = a;
    if (p) p->eq_next = a;
    else u->head = a;
    u->n++;
}

static void eq_requeue(struct acct *a) {
    if (!a->eq_host) return;
    eq_unlink(a);
    eq_insert(a);
}

static void eq_note(struct acct *a, int64_t at_ms) {
    int64_t k = eq_key(a);
    if (at_ms <= a->eq_at_ms) return;
    a->eq_at_ms = at_ms;
    if (eq_key(a) != k) eq_requeue(a);
}

static void eq_load_link(struct acct *a, struct eq_load *t) {
    struct eq_pacer *q = a->c->eq;
    if (a->eq_host) a->eq_host->in_flight++;
    if (!q) return;
    t->next = q->loads;
    if (q->loads) q->loads->prev = t;
    q->loads = t;
}

/* t's answer is in (and given to the cache): the account may be refreshed again. */
static void eq_loaded(struct eq_load *t, bool waited, int err) {
    struct acct *a = t->a;
    struct eq_pacer *q = a->c->eq;
    a->eq_loading = false;
    if (a->eq_host && a->eq_host->in_flight) a->eq_host->in_flight--;
    if (t->prev) t->prev->next = t->next;
    else if (q && q->loads == t) q->loads = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = NULL;
    /* The cache gave up waiting (load_timeout_ms) before the answer: what it stored still counts. */
    if (!waited && !err && !a->c->freeing) (void)eq_note_cached(a, true);
}

/* Reads the host's IP budget: false while it is blocked (a 429 or a ban) or too full to admit a
 * refresh at once (EQ_ADMIT_PCT): refreshes would only queue; a changed limit re-paces. */
static bool eq_host_open(struct eq_host *h) {
    struct rate_budget_stats st;
    if (!h->probe || exch_account_budget_stats(h->probe->ex, &st, 1) < 1) return true;
    if (st.blocked_ms > 0 || (st.used + h->cfg.cost) * 100 > st.limit * EQ_ADMIT_PCT) return false;
    if (st.limit > 0 && st.window_ms > 0 && (st.limit != h->cfg.limit || st.window_ms != h->cfg.window_ms)) {
        struct refresh_pace_cfg cfg = h->cfg;
        cfg.limit = st.limit;
        cfg.window_ms = st.window_ms;
        if (refresh_pace_set(h->pace, &cfg) == 0) h->cfg = cfg;
    }
    return true;
}

static void eq_warn(struct eq_pacer *q, struct eq_host *h) {
    int64_t lp, fp = refresh_pace_period_ms(h->pace, h->leaders.n, h->followers.n, q->ttl_ms, &lp);
    int64_t late = q->ttl_ms + (int64_t)q->tick_ms;
    if (h->warned || (fp <= late && lp <= late)) return;
    h->warned = true;
    log_warn(TAG, "equity refreshes paced on %s: %zu followers and %zu leaders, %" PRId64 " per refresh, "
                  "refreshes take at most %d%% of its %" PRId64 " per %" PRId64 " s (%.0f a minute, stale "
                  "leaders first, taking turns with followers): each follower's equity is refreshed about "
                  "every %.1f s, each leader's every %.1f s, not every %.1f s (cache_ttl_balances_ms) "
                  "(logged once)",
             h->budget, h->followers.n, h->leaders.n, h->cfg.cost, EQ_SHARE_PCT, h->cfg.limit,
             h->cfg.window_ms / 1000, refresh_pace_per_minute(h->pace), (double)fp / 1000, (double)lp / 1000,
             (double)q->ttl_ms / 1000);
}

/* The account of queue u that has waited longest and is due now, or NULL. Accounts that cannot
 * be refreshed now (loading, a refresh out) are passed over; one whose cached value is fresh
 * after all (a load put it, or an answer the cache had stopped waiting for came in) is moved to
 * its place. */
static struct acct *eq_due(struct eq_pacer *q, struct eq_queue *u, int64_t now) {
    for (struct acct *a = u->head, *next; a && !q->c->freeing; a = next) {
        next = a->eq_next;
        if (eq_key(a) > now - q->ttl_ms) return NULL; /* refreshed or tried within the TTL, as all after it */
        if (a->eq_leader_q != a->is_leader) { /* a reload made it a leader */
            eq_requeue(a);
            continue;
        }
        if (!a->state_ok || a->equity_busy || a->eq_loading) continue;
        if (eq_note_cached(a, true) == CACHE_HIT) continue;
        return a;
    }
    return NULL;
}

/* Starts the refreshes the pace allows now. Stale leaders go first (their equity sizes every
 * equity_ratio copy of their followers), but while followers wait too the two take turns, so
 * leaders get at most half of the pace and can never starve the followers (a few hundred leaders
 * with a short TTL would). */
static void eq_serve(struct eq_pacer *q, struct eq_host *h, int64_t now, bool followers) {
    while (!q->c->freeing && h->in_flight < h->in_flight_max) {
        struct acct *l = eq_due(q, &h->leaders, now), *f = followers ? eq_due(q, &h->followers, now) : NULL;
        struct acct *a = l && (!f || !h->last_leader) ? l : f;
        if (!a || !refresh_pace_take(h->pace, now)) return;
        h->last_leader = a == l;
        a->eq_try_ms = now;
        eq_requeue(a);
        copier_cache_equity(a);
    }
}

static void eq_tick(uv_timer_t *t) {
    struct eq_pacer *q = (struct eq_pacer *)t;
    struct copier *c = q->c;
    if (c->freeing || c->draining) {
        uv_timer_stop(t);
        q->running = false;
        return;
    }
    int64_t now = (int64_t)uv_now(c->loop);
    for (size_t i = 0; i < q->n_hosts && !c->freeing; i++) {
        struct eq_host *h = &q->hosts[i];
        eq_warn(q, h);
        /* While followers load, only leaders: the loads need the budget (and bring the
         * followers' equity with them). */
        if (eq_host_open(h)) eq_serve(q, h, now, c->ld_left == 0);
    }
}

void copier_equity_pace_start(struct copier *c) {
    struct eq_pacer *q = c->eq;
    if (!q || q->running || !q->n_hosts) return;
    q->running = true;
    for (size_t i = 0; i < q->n_hosts; i++) {
        struct eq_host *h = &q->hosts[i];
        int64_t lp, fp = refresh_pace_period_ms(h->pace, h->leaders.n, h->followers.n, q->ttl_ms, &lp);
        log_info(TAG, "equity refreshes on %s: at most %.0f a minute (%d%% of its %" PRId64 " per %" PRId64
                      " s, %" PRId64 " each), stale leaders first: %zu leaders, %zu followers, each refreshed "
                      "about every %.1f s and %.1f s",
                 h->budget, refresh_pace_per_minute(h->pace), EQ_SHARE_PCT, h->cfg.limit, h->cfg.window_ms / 1000,
                 h->cfg.cost, h->leaders.n, h->followers.n, (double)(lp ? lp : q->ttl_ms) / 1000,
                 (double)(fp ? fp : q->ttl_ms) / 1000);
        eq_warn(q, h);
    }
    uv_timer_start(&q->timer, eq_tick, q->tick_ms, q->tick_ms);
}

static double eq_age_max(void *ud) {
    struct eq_gauge *g = ud;
    struct copier *c = g->q->c;
    int64_t now = (int64_t)uv_now(c->loop), max = 0;
    for (size_t i = 0; i < c->n_accts; i++) {
        const struct acct *a = &c->accts[i];
        if (a->is_leader != g->leaders || !a->state_ok || !a->eq_at_ms || strcmp(a->exchange, g->exchange)) continue;
        if (now - a->eq_at_ms > max) max = now - a->eq_at_ms;
    }
    return (double)max / 1000;
}

/* The host of each account (its IP budget), its pace, queues and gauges. 0 or -ENOMEM. */
static int eq_init(struct copier *c, unsigned ttl_ms) {
    struct eq_pacer *q = calloc(1, sizeof *q);
    if (!q) return -ENOMEM;
    c->eq = q;
    q->c = c;
    q->ttl_ms = ttl_ms;
    /* Hosts are few (one or two per exchange): grown as found, each account's index kept aside
     * until the array stops moving. */
    size_t *at = calloc(c->n_accts ? c->n_accts : 1, sizeof *at), cap = 0;
    if (!at) return -ENOMEM;
    int64_t tick_us = (int64_t)EQ_TICK_MAX_MS * 1000;
    int e = 0;
    for (size_t i = 0; i < c->n_accts && !e; i++) {
        struct acct *a = &c->accts[i];
        struct rate_budget_stats st;
        bool bybit = !strcmp(a->exchange, "bybit-linear");
        char name[sizeof st.name];
        struct refresh_pace_cfg cfg = {.limit = bybit ? 600 : 2400, .window_ms = bybit ? 5000 : 60000,
                                       .cost = bybit ? EQ_COST_BYBIT : EQ_COST_BINANCE,
                                       .share_pct = EQ_SHARE_PCT, .burst = 1};
        /* exch_limits.h: the host's IP budget comes first (its name is the host's identity) */
        if (a->ex && exch_account_budget_stats(a->ex, &st, 1) >= 1) {
            snprintf(name, sizeof name, "%s", st.name);
            if (st.limit > 0 && st.window_ms > 0) {
                cfg.limit = st.limit;
                cfg.window_ms = st.window_ms;
            }
        } else {
            snprintf(name, sizeof name, "%s", a->exchange);
        }
        size_t k = 0;
        while (k < q->n_hosts && strcmp(q->hosts[k].budget, name)) k++;
        if (k == q->n_hosts) {
            if (q->n_hosts == cap) {
                struct eq_host *v = realloc(q->hosts, (cap ? 2 * cap : 2) * sizeof *v);
                if (!v) {
                    e = -ENOMEM;
                    break;
                }
                q->hosts = v;
                cap = cap ? 2 * cap : 2;
            }
            struct eq_host *h = &q->hosts[q->n_hosts++];
            memset(h, 0, sizeof *h);
            snprintf(h->budget, sizeof h->budget, "%s", name);
            h->exchange = a->exchange;
            h->probe = a->ex ? a : NULL;
            h->cfg = cfg;
            if (!(h->pace = refresh_pace_new(&cfg))) e = -ENOMEM;
            else if (refresh_pace_interval_us(h->pace) < tick_us) tick_us = refresh_pace_interval_us(h->pace);
        }
        at[i] = k;
    }
    for (size_t i = 0; i < c->n_accts && !e; i++) {
        c->accts[i].eq_host = &q->hosts[at[i]];
        eq_insert(&c->accts[i]);
    }
    free(at);
    if (e) return e;
    q->tick_ms = (unsigned)(tick_us / 1000);
    if (q->tick_ms < EQ_TICK_MIN_MS) q->tick_ms = EQ_TICK_MIN_MS;
    for (size_t k = 0; k < q->n_hosts; k++) { /* a tick's share of each pace may leave at once */
        struct eq_host *h = &q->hosts[k];
        h->cfg.burst = refresh_pace_burst(&h->cfg, q->tick_ms);
        if (refresh_pace_set(h->pace, &h->cfg) < 0) return -ENOMEM;
        h->in_flight_max = (size_t)(refresh_pace_per_minute(h->pace) / 60000 * EQ_IN_FLIGHT_MS);
        if (h->in_flight_max < 2 * (size_t)h->cfg.burst) h->in_flight_max = 2 * (size_t)h->cfg.burst;
    }
    uv_timer_init(c->loop, &q->timer);
    q->timer_inited = true;
    /* ct_equity_age_max_seconds{exchange, role}: a leader and a follower series per exchange */
    struct met_registry *reg = c->reg;
    struct met_family *fam = met_gauge_new(reg, "ct_equity_age_max_seconds",
                                           "Age of the oldest account equity the copier sizes and checks loss stops "
                                           "with, per exchange and role (leader, follower).",
                                           "exchange", "role");
    if (!fam) return -ENOMEM;
    if (!(q->gauges = calloc(2 * q->n_hosts, sizeof *q->gauges)) ||
        !(q->g_children = calloc(2 * q->n_hosts, sizeof *q->g_children)))
        return -ENOMEM;
    for (size_t k = 0; k < q->n_hosts; k++) {
        bool seen = false;
        for (size_t j = 0; j < q->n_gauges && !seen; j++) seen = !strcmp(q->gauges[j].exchange, q->hosts[k].exchange);
        for (int role = 0; role < 2 && !seen; role++) {
            struct eq_gauge *g = &q->gauges[q->n_gauges];
            *g = (struct eq_gauge){q, q->hosts[k].exchange, role == 0};
            struct met_gauge *m = met_gauge_child(fam, g->exchange, role == 0 ? "leader" : "follower");
            if (!m || met_gauge_set_fn(m, eq_age_max, g) < 0) return -ENOMEM;
            q->g_children[q->n_gauges++] = m;
        }
    }
    return 0;
}

static void eq_closed(uv_handle_t *h) {
    struct eq_pacer *q = (struct eq_pacer *)h;
    free(q);
}

static void eq_free(struct copier *c) {
    struct eq_pacer *q = c->eq;
    if (!q) return;
    c->eq = NULL;
    /* answers still out only give their value to the cache (it detaches too) */
    for (struct eq_load *t = q->loads, *n; t; t = n) {
        n = t->next;
        t->a = NULL;
        t->prev = t->next = NULL;
    }
    for (size_t i = 0; i < q->n_gauges; i++) (void)met_gauge_set_fn(q->g_children[i], NULL, NULL);
    for (size_t i = 0; i < q->n_hosts; i++) refresh_pace_free(q->hosts[i].pace);
    for (size_t i = 0; i < c->n_accts; i++) c->accts[i].eq_host = NULL;
    free(q->hosts);
    free(q->gauges);
    free(q->g_children);
    if (q->timer_inited) uv_close((uv_handle_t *)&q->timer, eq_closed);
    else free(q);
}

/* ---- positions: written on every change, read by other daemons and tools ---- */

void copier_cache_position(struct acct *a, const char *symbol) {
    struct copier *c = a->c;
    char key[MKT_ACCOUNT_MAX + MKT_SYMBOL_MAX + 2], n[DEC_STR_MAX], l[DEC_STR_MAX], s[DEC_STR_MAX], *v;
    json_t *o;
    snprintf(key, sizeof(key), "%s/%s", a->name, symbol);
    o = json_pack("{s:s,s:s,s:s}", "net", dec_str(position_book_live(c->pos, a->name, symbol, MKT_PS_BOTH), n),
                  "long", dec_str(position_book_live(c->pos, a->name, symbol, MKT_PS_LONG), l),
                  "short", dec_str(position_book_live(c->pos, a->name, symbol, MKT_PS_SHORT), s));
    v = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (v) (void)cache_put(c->caches[COPIER_CACHE_POSITIONS], key, v, strlen(v));
    free(v);
    json_decref(o);
}

/* ---- instruments: refreshed hourly (filters change rarely; a new listing appears) ---- */

static json_t *instrument_json(const struct mkt_instrument *m) {
    char b[10][DEC_STR_MAX];
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "symbol", m->symbol,
                     "step", dec_str(m->step, b[0]), "min_qty", dec_str(m->min_qty, b[1]),
                     "max_qty", dec_str(m->max_qty, b[2]), "mkt_step", dec_str(m->mkt_step, b[3]),
                     "mkt_min_qty", dec_str(m->mkt_min_qty, b[4]), "mkt_max_qty", dec_str(m->mkt_max_qty, b[5]),
                     "tick", dec_str(m->tick, b[6]), "min_price", dec_str(m->min_price, b[7]),
                     "max_price", dec_str(m->max_price, b[8]), "min_notional", dec_str(m->min_notional, b[9]));
}

static json_t *instruments_json(const struct mkt_instrument *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, instrument_json(&v[i]));
    return a;
}

static void on_instruments_loaded(void *ud, const struct exch_status *st, const struct mkt_instrument *v,
                                  size_t n) {
    struct cache_load *ld = ud;
    if (st->err) cache_load_done(ld, st->err, NULL, 0);
    else load_done_json(ld, instruments_json(v, n));
}

static void load_instruments(void *loader_ud, const char *key, struct cache_load *ld) {
    struct instruments *t = loader_ud;
    (void)key;
    int e = exch_fetch_instruments(t->fetcher->ex, on_instruments_loaded, ld);
    if (e < 0) cache_load_done(ld, e, NULL, 0);
}

static void on_instruments(void *ud, int err, const void *val, size_t len) {
    struct instruments *t = ud;
    json_t *a, *o;
    size_t i, n = 0;
    t->inst_busy = false;
    if (err == -ECANCELED || t->fetcher->c->freeing) return;
    if (err < 0) {
        log_warn(TAG, "%s: instrument refresh failed (%s): the filters from before stay", t->url, strerror(-err));
        return;
    }
    a = json_loadb(val, len, 0, NULL);
    json_array_foreach(a, i, o) {
        struct mkt_instrument m;
        struct inst_entry *e = NULL;
        const char *sym = json_string_value(json_object_get(o, "symbol"));
        memset(&m, 0, sizeof(m));
        if (!sym || strlen(sym) >= sizeof(m.symbol) || dec_of(o, "step", &m.step) || dec_of(o, "min_qty", &m.min_qty) ||
            dec_of(o, "max_qty", &m.max_qty) || dec_of(o, "mkt_step", &m.mkt_step) ||
            dec_of(o, "mkt_min_qty", &m.mkt_min_qty) || dec_of(o, "mkt_max_qty", &m.mkt_max_qty) ||
            dec_of(o, "tick", &m.tick) || dec_of(o, "min_price", &m.min_price) ||
            dec_of(o, "max_price", &m.max_price) || dec_of(o, "min_notional", &m.min_notional))
            continue;
        snprintf(m.symbol, sizeof(m.symbol), "%s", sym);
        HASH_FIND_STR(t->map, m.symbol, e);
        if (!e) {
            if (!(e = calloc(1, sizeof(*e)))) continue;
            e->v = m;
            HASH_ADD_STR(t->map, v.symbol, e);
        } else {
            e->v = m;
        }
        n++;
    }
    json_decref(a);
    log_debug(TAG, "%s: instrument filters refreshed (%zu)", t->url, n);
}

void copier_cache_instruments(struct instruments *t) {
    struct cache *k = t->fetcher->c->caches[COPIER_CACHE_INSTRUMENTS];
    if (t->inst_busy || cache_get(k, t->url, NULL, NULL, NULL) == CACHE_HIT) return;
    t->inst_busy = true;
    if (cache_fetch(k, t->url, load_instruments, t, on_instruments, t) < 0) t->inst_busy = false;
}

void copier_cache_put_instruments(struct instruments *t, const struct mkt_instrument *v, size_t n) {
    json_t *a = instruments_json(v, n);
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    if (s) (void)cache_put(t->fetcher->c->caches[COPIER_CACHE_INSTRUMENTS], t->url, s, strlen(s));
    free(s);
    json_decref(a);
}

/* ---- set-up and metrics ---- */

#define STAT_FN(field)                                                                             \
    static uint64_t st_##field(void *ud) {                                                         \
        struct cache_stats s;                                                                      \
        cache_get_stats(ud, &s);                                                                   \
        return s.field;                                                                            \
    }
STAT_FN(hits)
STAT_FN(stale_hits)
STAT_FN(misses)
STAT_FN(redis_hits)
STAT_FN(redis_misses)
STAT_FN(redis_errors)
STAT_FN(evictions)
STAT_FN(loads)
static double st_entries(void *ud) {
    struct cache_stats s;
    cache_get_stats(ud, &s);
    return (double)s.entries;
}

/* One counter family per row, labelled by cache (tests/integration/test_docs.py reads these rows). */
#define COUNTER_ROW(name, help, fn) {name, help, fn}

int copier_caches_init(struct copier *c, const struct copier_deps *d) {
    struct met_registry *r = c->reg;
    static const struct {
        const char *name, *help;
        uint64_t (*fn)(void *);
    } counters[] = {
        COUNTER_ROW("ct_cache_hits_total", "Cache lookups answered by a fresh in-process entry.", st_hits),
        COUNTER_ROW("ct_cache_stale_hits_total", "Cache lookups that found only an expired entry.", st_stale_hits),
        COUNTER_ROW("ct_cache_misses_total", "Cache lookups without a fresh in-process entry.", st_misses),
        COUNTER_ROW("ct_cache_redis_hits_total", "Read-throughs answered by Redis (another daemon's refresh).", st_redis_hits),
        COUNTER_ROW("ct_cache_redis_misses_total", "Read-throughs Redis had nothing for.", st_redis_misses),
        COUNTER_ROW("ct_cache_redis_errors_total", "Redis reads and writes refused, failed or timed out (the cache went on in-process).", st_redis_errors),
        COUNTER_ROW("ct_cache_evictions_total", "Entries dropped to stay within cache_max_entries.", st_evictions),
        COUNTER_ROW("ct_cache_loads_total", "Refreshes from the exchange (one per key however many waited).", st_loads),
    };
    const unsigned ttl[COPIER_CACHE__COUNT] = {
        [COPIER_CACHE_TICKERS] = d->cache_ttl_tickers_ms ? d->cache_ttl_tickers_ms : 5000,
        [COPIER_CACHE_BALANCES] = d->cache_ttl_balances_ms ? d->cache_ttl_balances_ms : 15000,
        [COPIER_CACHE_POSITIONS] = d->cache_ttl_positions_ms ? d->cache_ttl_positions_ms : 10000,
        [COPIER_CACHE_INSTRUMENTS] = d->cache_ttl_instruments_ms ? d->cache_ttl_instruments_ms : 3600000,
    };
    struct met_family *fam[sizeof(counters) / sizeof(counters[0])], *ent;
    for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++)
        if (!(fam[k] = met_counter_new(r, counters[k].name, counters[k].help, "cache"))) return -ENOMEM;
    if (!(ent = met_gauge_new(r, "ct_cache_entries", "Entries held in process, per cache.", "cache")))
        return -ENOMEM;
    for (int i = 0; i < COPIER_CACHE__COUNT; i++) {
        struct cache_opts o = {
            .name = cache_names[i], .ttl_ms = ttl[i],
            .max_entries = d->cache_max_entries ? d->cache_max_entries : 100000,
        };
        struct met_gauge *g;
        if (!(c->caches[i] = cache_new(c->loop, c->redis, &o))) return -ENOMEM;
        for (size_t k = 0; k < sizeof(counters) / sizeof(counters[0]); k++) {
            struct met_counter *m = met_counter_child(fam[k], cache_names[i]);
            if (!m) return -ENOMEM;
            met_counter_set_fn(m, counters[k].fn, c->caches[i]);
        }
        if (!(g = met_gauge_child(ent, cache_names[i]))) return -ENOMEM;
        met_gauge_set_fn(g, st_entries, c->caches[i]);
    }
    return eq_init(c, ttl[COPIER_CACHE_BALANCES]);
}

void copier_caches_free(struct copier *c) {
    eq_free(c); /* first: the caches' cancelled waiters find no pacer to requeue in */
    for (int i = 0; i < COPIER_CACHE__COUNT; i++) c->caches[i] = cache_free(c->caches[i]);
}
