/* copier_backfill: the leader fills a stream missed, fetched over REST and taken exactly once.
 *
 * When: on every reconnect of a leader stream (a drop, a silence, a listenKey expiry), from the
 * newest fill taken (minus a margin), and once at start-up from the last fill the journal holds,
 * so fills made while the daemon was down are copied too (READY waits for that one).
 *
 * Order: while a backfill runs, the stream's new fills wait in held_fills; the backfilled ones are
 * taken first, oldest first, then the held ones. The engine sizes a close against the leader's
 * position before it, so it must see a symbol's fills in order. Duplicates (fills the stream did
 * deliver, or an earlier run took) fall out in copier_take_fill: start-up mark, memory, journal.
 *
 * Start-up: the leader's book was seeded from positions fetched at start, which already contain
 * the fills made before then (each position up to its own update time, copier_fill_in_snapshot:
 * the answer may take a while, and fills made meanwhile are not in it). Those fills' deltas are
 * taken off the book before any of them is taken, so each is decided against the position it
 * really followed.
 *
 * Binance lists trades per symbol only: the symbols looked at are those the leader held or traded
 * (start-up positions, earlier journaled fills, fills since) and those its rules name. A symbol it
 * had never touched and opened and closed entirely inside a gap is not found (README). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "copier_internal.h"
#include "fill_dedupe.h"
#include "log.h"
#include "position_book.h"

#define TAG "copier"
#define BF_ATTEMPTS 4
#define BF_RETRY_MS 500
#define HELD_FILLS_MAX 100000

static void bf_request(struct acct *a);

static int push_fill(struct mkt_fill **v, size_t *n, size_t *cap, const struct mkt_fill *f) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        struct mkt_fill *nv = realloc(*v, nc * sizeof(*nv));
        if (!nv) return -ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = *f;
    return 0;
}

void copier_backfill_hold(struct acct *a, const struct mkt_fill *f) {
    if (a->held_n >= HELD_FILLS_MAX || push_fill(&a->held_fills, &a->held_n, &a->held_cap, f) < 0) {
        /* Cannot wait: take it now rather than lose it (order within the symbol may suffer). */
        log_error(TAG, "%s %s trade %s: cannot hold it during the backfill, taking it now", a->name,
                  f->symbol, f->trade_id);
        (void)copier_take_fill(a, f, false, true);
    }
}

static int add_symbol(struct acct *a, const char *sym) {
    for (size_t i = 0; i < a->bf_nsyms; i++)
        if (!strcmp(a->bf_syms[i], sym)) return 0;
    char(*ns)[MKT_SYMBOL_MAX] = realloc(a->bf_syms, (a->bf_nsyms + 1) * sizeof(*ns));
    if (!ns) return -ENOMEM;
    a->bf_syms = ns;
    snprintf(a->bf_syms[a->bf_nsyms++], MKT_SYMBOL_MAX, "%s", sym);
    return 0;
}

static int collect_symbols(struct acct *a) {
    struct copier *c = a->c;
    struct sym_entry *e, *tmp;
    a->bf_nsyms = 0;
    if (!strcmp(a->exchange, exch_kind_name(EXCH_BYBIT_LINEAR))) return add_symbol(a, ""); /* all at once */
    HASH_ITER(hh, a->held, e, tmp) if (add_symbol(a, e->symbol) < 0) return -ENOMEM;
    for (size_t i = 0; i < c->n_rules; i++) {
        const struct rule *r = &c->rules[i];
        if (r->leader != a->idx || r->removed) continue;
        for (size_t k = 0; k < r->cr.n_allow; k++)
            if (add_symbol(a, r->cr.allow_symbols[k]) < 0) return -ENOMEM;
    }
    return 0;
}

static int by_time(const void *x, const void *y) {
    const struct mkt_fill *a = x, *b = y;
    if (a->trade_time_ms != b->trade_time_ms) return a->trade_time_ms < b->trade_time_ms ? -1 : 1;
    if (a->trade_seq != b->trade_seq) return a->trade_seq < b->trade_seq ? -1 : 1;
    return 0;
}

static void bf_finish(struct acct *a, int err) {
    struct copier *c = a->c;
    size_t fetched = a->bf_n, taken = 0, held = a->held_n;
    bool *pre = NULL;

    if (err == 0 && fetched) {
        qsort(a->bf_fills, fetched, sizeof(*a->bf_fills), by_time);
        pre = calloc(fetched, sizeof(*pre));
        /* Start-up: fills inside the position snapshot come off the book first (see the top). */
        for (size_t i = 0; pre && a->bf_startup && i < fetched; i++) {
            const struct mkt_fill *f = &a->bf_fills[i];
            if (!copier_fill_in_snapshot(a, f) || copier_fill_seen(c, f)) continue;
            position_book_add_live(c->pos, a->name, f->symbol, f->pos_side,
                                   dec_neg(position_book_delta(f->side, f->pos_side, f->qty)));
            pre[i] = true;
        }
    }
    a->bf_busy = false;
    for (size_t i = 0; err == 0 && i < fetched && !c->freeing; i++) {
        a->bf_fills[i].received_ns = copier_now_ns();
        if (copier_take_fill(a, &a->bf_fills[i], pre ? pre[i] : false, false)) {
            taken++;
            met_counter_inc(a->m_backfilled);
        }
    }
    free(pre);
    /* What the stream delivered meanwhile, in its order. A fill taken above is a duplicate now. */
    for (size_t i = 0; i < held && !c->freeing; i++) (void)copier_take_fill(a, &a->held_fills[i], false, true);
    a->held_n = 0;
    a->bf_n = 0;
    if (err == 0) {
        met_counter_inc(c->m_bf_ok);
        if (taken || a->bf_startup)
            log_info(TAG, "%s: backfill%s: %zu fills fetched from %zu symbol list%s, %zu new (copied), "
                     "%zu stream fills held meanwhile", a->name, a->bf_startup ? " at start-up" : "", fetched,
                     a->bf_nsyms, a->bf_nsyms == 1 ? "" : "s", taken, held);
    } else {
        met_counter_inc(c->m_bf_failed);
        log_error(TAG, "%s: backfill failed (%s): fills made while the stream was away may be missing; "
                  "the next reconnect tries again", a->name, strerror(-err));
    }
    if (a->bf_again && !c->freeing && !c->draining) {
        a->bf_again = false;
        copier_backfill_start(a, a->bf_again_since, false);
        return;
    }
    copier_check_ready(c);
}

static void bf_retry_cb(uv_timer_t *t) {
    bf_request(t->data);
}

static void bf_failed(struct acct *a, int err, const char *why) {
    if (a->c->freeing) return;
    if (++a->bf_attempts < BF_ATTEMPTS && !a->c->draining) {
        unsigned ms = BF_RETRY_MS << a->bf_attempts;
        log_warn(TAG, "%s: backfill of %s failed (%s), again in %u ms", a->name,
                 a->bf_syms[a->bf_next][0] ? a->bf_syms[a->bf_next] : "all symbols", why, ms);
        a->retry.data = a;
        uv_timer_start(&a->retry, bf_retry_cb, ms, 0);
        return;
    }
    bf_finish(a, err);
}

static void on_fills(void *ud, const struct exch_status *st, const struct mkt_fill *v, size_t n) {
    struct acct *a = ud;
    if (a->c->freeing) return;
    if (st->err) {
        char why[200];
        snprintf(why, sizeof(why), "%s%s%s", strerror(-st->err), st->error_msg[0] ? ": " : "", st->error_msg);
        bf_failed(a, st->err, why);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (push_fill(&a->bf_fills, &a->bf_n, &a->bf_cap, &v[i]) < 0) {
            bf_finish(a, -ENOMEM);
            return;
        }
    }
    a->bf_attempts = 0;
    a->bf_next++;
    bf_request(a);
}

static void bf_request(struct acct *a) {
    int e;
    if (a->c->freeing) return;
    if (a->bf_next >= a->bf_nsyms) {
        bf_finish(a, 0);
        return;
    }
    const char *sym = a->bf_syms[a->bf_next][0] ? a->bf_syms[a->bf_next] : NULL;
    e = exch_fetch_fills(a->ex, sym, a->bf_since, on_fills, a);
    if (e < 0) bf_failed(a, e, strerror(-e));
}

void copier_backfill_start(struct acct *a, int64_t since_ms, bool startup) {
    struct copier *c = a->c;
    int64_t floor_ms = copier_exchange_now_ms(a) - c->backfill_max_age_ms;
    if (c->freeing || c->draining) return;
    if (since_ms < floor_ms) {
        log_warn(TAG, "%s: backfill from %" PRId64 " clamped to the last %" PRId64 " ms (backfill_max_age_ms): "
                 "older fills are not copied", a->name, since_ms, c->backfill_max_age_ms);
        since_ms = floor_ms;
    }
    if (a->bf_busy) {
        /* A second reconnect during a backfill: run again once this one is done. */
        if (!a->bf_again || since_ms < a->bf_again_since) a->bf_again_since = since_ms;
        a->bf_again = true;
        return;
    }
    a->bf_busy = true;
    a->bf_startup = startup;
    a->bf_since = since_ms;
    a->bf_next = 0;
    a->bf_attempts = 0;
    a->bf_n = 0;
    if (collect_symbols(a) < 0) {
        bf_finish(a, -ENOMEM);
        return;
    }
    log_info(TAG, "%s: backfill%s from %" PRId64 " (%zu %s)", a->name, startup ? " at start-up" : " after a reconnect",
             since_ms, a->bf_nsyms == 1 && !a->bf_syms[0][0] ? (size_t)0 : a->bf_nsyms,
             a->bf_nsyms == 1 && !a->bf_syms[0][0] ? "symbols: all at once" : "symbols");
    bf_request(a);
}

void copier_backfill_free(struct acct *a) {
    free(a->bf_syms);
    free(a->bf_fills);
    free(a->held_fills);
    a->bf_syms = NULL;
    a->bf_fills = a->held_fills = NULL;
    a->bf_nsyms = a->bf_n = a->bf_cap = a->held_n = a->held_cap = 0;
}
