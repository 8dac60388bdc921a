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
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "copier_internal.h"
#include "log.h"
#include "position_book.h"

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

static void on_balance_loaded(void *ud, const struct exch_status *st, const struct exch_balance *b) {
    struct cache_load *ld = ud;
    if (st->err) cache_load_done(ld, st->err, NULL, 0);
    else load_done_json(ld, balance_json(b));
}

static void load_balance(void *loader_ud, const char *key, struct cache_load *ld) {
    struct acct *a = loader_ud;
    (void)key;
    int e = exch_fetch_account(a->ex, on_balance_loaded, ld);
    if (e < 0) cache_load_done(ld, e, NULL, 0);
}

static void apply_balance(struct acct *a, const void *val, size_t len) {
    json_t *o = json_loadb(val, len, 0, NULL);
    dec_t eq;
    if (json_is_object(o) && dec_of(o, "equity", &eq) == 0) copier_observe_equity(a, eq);
    json_decref(o);
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
}

bool copier_cache_equity(struct acct *a) {
    struct cache *k = a->c->caches[COPIER_CACHE_BALANCES];
    const void *val;
    size_t len;
    if (a->equity_busy) return false;
    if (cache_get(k, a->name, &val, &len, NULL) == CACHE_HIT) {
        apply_balance(a, val, len);
        return false;
    }
    a->equity_busy = true;
    if (cache_fetch(k, a->name, load_balance, a, on_balance, a) < 0) a->equity_busy = false;
    return a->equity_busy;
}

bool copier_cache_equity_fresh(struct acct *a) {
    const void *val;
    size_t len;
    return cache_get(a->c->caches[COPIER_CACHE_BALANCES], a->name, &val, &len, NULL) == CACHE_HIT;
}

void copier_cache_put_balance(struct acct *a, const struct exch_balance *b) {
    json_t *o = balance_json(b);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s) (void)cache_put(a->c->caches[COPIER_CACHE_BALANCES], a->name, s, strlen(s));
    free(s);
    json_decref(o);
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
    return 0;
}

void copier_caches_free(struct copier *c) {
    for (int i = 0; i < COPIER_CACHE__COUNT; i++) c->caches[i] = cache_free(c->caches[i]);
}
