/* copier_load: follower state loaded after READY, and the copy decisions that wait for it.
 *
 * READY waits for the leaders' state (their positions are what every fill is decided against),
 * the followers with orders to reconcile, the journal, the reconciliation and every leader
 * stream with its start-up backfill. With real exchange limits the rest cannot be in a start-up
 * budget (Binance: ~10 weight per follower against 2,400 a minute), so every other follower's
 * state (positions, mode, leverage, equity: the chain in copier.c) loads here, LOAD_PARALLEL at a
 * time in queue order; the REST pool's rate budgets pace the requests. A failed step frees its
 * slot and comes back after its backoff, where it failed.
 *
 * A leader fill that a rule of a follower still loading must copy: the fill is journaled as
 * usual with the intents of every follower that has its state (they go out at once); the waiting
 * rule's decision becomes a defer_item in its follower's queue, and the follower moves to the
 * front of the loading queue. The same journal write (one transaction, or one spool record) holds
 * the decision's placeholder: a 'pending' row of deferred_decisions (sql/010), inserted only when
 * the fill is new there, with what the decision needs that cannot be recomputed later (the fill
 * as the stream gave it, the leader's position before the fill as it was then, its equity, when
 * the fill arrived; copier_defer_journal). An item is armed once that write reported the fill
 * new (a fill the journal refused or already had takes its items with it, and wrote none).
 * Once the follower is loaded, its items are decided in order with the engine (the leader's
 * position before the fill as it was then, the follower's own state now), journaled
 * (write-before-send: the same fill again, only the intents are new) and sent. The write that
 * journals a decision resolves its placeholder in the same transaction ('decided'), so a
 * placeholder is resolved exactly once, and only together with the decision's intents. A follower
 * with items waiting takes new decisions through its queue too, so its fills stay in order. A
 * decision journaled more than RETRY_WINDOW_MS after its fill arrived is not sent: its intents are
 * finalised as skipped "stale", like an order the exchange confirmed absent too late. A follower
 * whose state is still not in when that window has passed (its requests keep failing) has its
 * expired decisions journaled as skipped (stale_signal, quantity 0) without its state, their
 * placeholders 'skipped' (stale_signal) in the same write, so the wait is bounded in time and
 * memory (DEFER_MAX in all). A decision whose rule a reload removed or disabled meanwhile is not
 * made: its placeholder alone is resolved 'skipped' (rule_removed, rule_disabled), at once.
 *
 * Restart: a crash, kill -9 or drain deadline with decisions waiting leaves their placeholders
 * pending. The next start reads them back before any leader stream opens (copier_reconcile.c,
 * journal_load_defers: once PostgreSQL holds everything the spool held; placeholders of rules the
 * configuration no longer has are resolved 'skipped' there), queues each for its follower (which
 * loads urgently) ahead of any new fill, and decides it as above, with the send window counted
 * from when the fill arrived in the earlier run.
 *
 * SIGTERM: the drain keeps loading the followers that decisions wait for (urgent ones only) and
 * journals those decisions before the exit, within its deadline; their orders stay 'intent' for
 * the next start's reconciliation, which sends them while the fill is fresh; a decision the
 * deadline leaves waiting stays pending for the next start.
 *
 * First, though, the whole fill waits, unjournaled, up to daemon.follower_state_wait_ms for the followers it
 * needs (moved to the front of the loading queue), and the leader's later fills queue behind it:
 * a fill that is not journaled is durable where it came from, since the next start's backfill
 * fetches every leader fill after the last journaled one. A crash, kill -9 or SIGTERM in that wait
 * loses nothing. Only a follower whose state takes longer than that has its decision deferred as
 * above, so one follower that cannot load does not hold its leader's other followers for ever.
 *
 * What is not durable: nothing of a decision once its fill is journaled. A decision the journal
 * refuses for good (a bad field) is logged "NOT copied" and its placeholder stays pending: the
 * next start tries it again. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "client_id.h"
#include "copier_internal.h"
#include "journal.h"
#include "log.h"
#include "position_book.h"

#define TAG "copier"

static void df_kick(struct acct *f);
static void fw_arm(struct copier *c, uint64_t first_ms);

/* ---- the loading queue --------------------------------------------------------------------- */

static void ld_unlink(struct copier *c, struct acct *a) {
    if (!a->ld_queued) return;
    if (c->ld_utail == a) c->ld_utail = a->ld_prev && a->ld_prev->ld_urgent ? a->ld_prev : NULL;
    if (a->ld_prev) a->ld_prev->ld_next = a->ld_next; else c->ld_head = a->ld_next;
    if (a->ld_next) a->ld_next->ld_prev = a->ld_prev; else c->ld_tail = a->ld_prev;
    a->ld_prev = a->ld_next = NULL;
    a->ld_queued = false;
}

/* Urgent accounts queue in front of the others, first come first served among themselves. */
static void ld_push(struct copier *c, struct acct *a) {
    struct acct *after;
    if (a->ld_queued) return;
    after = a->ld_urgent ? c->ld_utail : c->ld_tail;
    if (a->ld_urgent) c->ld_utail = a;
    a->ld_prev = after;
    a->ld_next = after ? after->ld_next : c->ld_head;
    if (a->ld_next) a->ld_next->ld_prev = a; else c->ld_tail = a;
    if (after) after->ld_next = a; else c->ld_head = a;
    a->ld_queued = true;
}

void copier_load_enqueue(struct acct *a) {
    struct copier *c = a->c;
    a->bg = true;
    c->ld_left++;
    c->ld_total++;
    ld_push(c, a);
}

void copier_load_urgent(struct acct *a) {
    struct copier *c = a->c;
    if (a->state_ok || a->ld_urgent) return;
    if (!a->bg) { /* not queued at start (an account without rules then, given one by a reload) */
        copier_load_enqueue(a);
    }
    a->ld_urgent = true;
    if (a->ld_queued) {
        ld_unlink(c, a);
        ld_push(c, a);
    }
    copier_load_pump(c);
}

void copier_load_pump(struct copier *c) {
    if (c->ld_pumping) return;
    c->ld_pumping = true;
    /* Urgent ones as soon as the streams open (a fill waits for them), also while draining (the
     * decision is journaled before the exit, its order then left to the next start's
     * reconciliation); the rest after READY and not while draining. */
    while (c->ld_active < LOAD_PARALLEL && c->ld_head && !c->freeing && c->phase >= 4 &&
           (c->ld_head->ld_urgent || (c->ready && !c->draining))) {
        struct acct *a = c->ld_head;
        void (*step)(uv_timer_t *) = a->ld_resume ? a->ld_resume : copier_do_positions;
        ld_unlink(c, a);
        a->ld_active = true;
        a->ld_resume = NULL;
        c->ld_active++;
        a->retry.data = a;
        step(&a->retry); /* may fail at once: copier_load_failed frees the slot */
    }
    c->ld_pumping = false;
}

static void ld_retry_cb(uv_timer_t *t) {
    struct acct *a = t->data;
    struct copier *c = a->c;
    if (c->freeing || a->state_ok) return;
    ld_push(c, a);
    copier_load_pump(c);
}

void copier_load_failed(struct acct *a, void (*again)(uv_timer_t *), unsigned ms) {
    struct copier *c = a->c;
    a->ld_resume = again;
    if (a->ld_active) {
        a->ld_active = false;
        c->ld_active--;
    }
    a->retry.data = a;
    uv_timer_start(&a->retry, ld_retry_cb, ms, 0);
    copier_load_pump(c);
}

void copier_load_done(struct acct *a) {
    struct copier *c = a->c;
    a->state_ok = true;
    if (a->ld_active) {
        a->ld_active = false;
        c->ld_active--;
    }
    ld_unlink(c, a);
    if (c->ld_left) c->ld_left--;
    log_debug(TAG, "%s: state loaded%s (%zu followers still loading)", a->name,
              a->ld_urgent ? " (a leader fill was waiting for it)" : "", c->ld_left);
    copier_preflight_follower(c, a);
    if (a->is_leader && c->started && !c->draining && !c->freeing) copier_open_stream(a);
    if (c->ld_left == 0 && c->ld_total && c->ld_start_ns)
        log_info(TAG, "start-up: state of %zu followers loaded in the background, %.2f s after ready",
                 c->ld_total, (double)(copier_now_ns() - c->ld_start_ns) / 1e9);
    df_kick(a);
    if (c->fw_items) fw_arm(c, 0); /* leader fills that waited for it, once this turn is done */
    copier_load_pump(c);
}

size_t copier_load_waiting(const struct copier *c) {
    /* Draining waits (within its deadline) for the decisions waiting here: their followers load
     * first, then each is journaled, its order left as 'intent' for the next start's
     * reconciliation (resent there while the fill is fresh). */
    size_t n = 0;
    if (!c->df_items) return 0;
    for (size_t i = 0; i < c->n_accts; i++) {
        const struct acct *f = &c->accts[i];
        if (f->df_head && f->df_head->armed) n++;
    }
    return n;
}

/* ---- decisions waiting for a follower's state ---------------------------------------------- */

bool copier_follower_waits(const struct acct *f) { return !f->state_ok || f->df_head; }

int copier_defer(struct fill_job *fj, size_t rule, const struct copy_pos *lpos, dec_t leader_equity) {
    struct copier *c = fj->c;
    struct acct *f = &c->accts[c->rules[rule].follower];
    struct defer_item *d;
    if (c->df_items >= DEFER_MAX) return -ENOBUFS;
    if (!(d = calloc(1, sizeof(*d)))) return -ENOMEM;
    d->fill = fj->fill;
    d->leader = fj->leader;
    d->rule = rule;
    d->lpos = *lpos;
    d->leader_equity = leader_equity;
    d->fnext = fj->defers;
    fj->defers = d;
    if (f->df_tail) f->df_tail->next = d; else f->df_head = d;
    f->df_tail = d;
    f->df_n++;
    c->df_items++;
    if (!f->state_ok) copier_load_urgent(f);
    return 0;
}

static void df_pop(struct acct *f) {
    struct defer_item *d = f->df_head;
    f->df_head = d->next;
    if (!f->df_head) f->df_tail = NULL;
    f->df_n--;
    f->c->df_items--;
    free(d->fj);
    free(d);
}

static void df_remove(struct acct *f, struct defer_item *d) {
    struct defer_item *prev = NULL;
    for (struct defer_item *x = f->df_head; x && x != d; x = x->next) prev = x;
    if (prev) prev->next = d->next; else f->df_head = d->next;
    if (f->df_tail == d) f->df_tail = prev;
    f->df_n--;
    f->c->df_items--;
    free(d->fj);
    free(d);
}

void copier_defer_settle(struct fill_job *fj, bool fill_taken) {
    struct copier *c = fj->c;
    size_t n = 0, *fol = NULL;
    struct defer_item *d, *next;
    if (!fj->defers) return;
    if (c->freeing) { /* copier_load_free has the items */
        fj->defers = NULL;
        return;
    }
    for (d = fj->defers; d; d = d->fnext) n++;
    if (fill_taken) fol = calloc(n, sizeof(*fol));
    n = 0;
    for (d = fj->defers; d; d = next) {
        struct acct *f = &c->accts[c->rules[d->rule].follower];
        next = d->fnext;
        d->fnext = NULL;
        if (fill_taken) {
            d->armed = true;
            if (fol) fol[n++] = f->idx;
            else df_kick(f); /* no memory for the list: the items of one follower stay in order */
        } else {
            df_remove(f, d);
        }
    }
    fj->defers = NULL;
    for (size_t i = 0; i < n; i++) df_kick(&c->accts[fol[i]]);
    free(fol);
}

static void df_timer_cb(uv_timer_t *t) {
    struct copier *c = t->data;
    for (size_t i = 0; i < c->n_accts && c->df_retrying && !c->freeing; i++) {
        struct acct *f = &c->accts[i];
        if (!f->df_retry) continue;
        f->df_retry = false;
        c->df_retrying--;
        df_kick(f);
    }
    if (!c->df_retrying) uv_timer_stop(&c->df_timer);
}

/* The head waits (journal not taking writes, or the spool took the write for a repeat). */
static void df_wait(struct acct *f) {
    struct copier *c = f->c;
    if (!f->df_retry) {
        f->df_retry = true;
        c->df_retrying++;
    }
    if (!uv_is_active((uv_handle_t *)&c->df_timer))
        uv_timer_start(&c->df_timer, df_timer_cb, DEFER_RETRY_MS, DEFER_RETRY_MS);
}

static bool df_expired(const struct defer_item *d) {
    return copier_now_ns() - d->fill.received_ns > (int64_t)RETRY_WINDOW_MS * 1000000;
}

/* Not to be decided at all (its rule was removed or disabled meanwhile): its placeholder is
 * resolved without waiting for the follower's state. */
static bool df_moot(const struct copier *c, const struct defer_item *d) {
    return d->reason || c->rules[d->rule].removed || !c->rules[d->rule].enabled;
}

/* A follower whose state has not come in within the window of every send: its decisions cannot
 * be made, and could not be sent any more. Each is journaled as an intent of quantity 0 skipped
 * as stale_signal (one row per leader fill and rule, like every other decision). */
static void df_expire(struct acct *f, struct defer_item *d, struct fill_job *fj) {
    struct copier *c = f->c;
    const struct rule *r = &c->rules[d->rule];
    struct copy_intent *in = &fj->items[0].in;
    memset(in, 0, sizeof(*in));
    (void)client_id_make(d->fill.account, d->fill.symbol, d->fill.trade_id, r->cr.id, 0, in->client_id);
    in->side = (d->fill.side == MKT_BUY) != r->cr.reverse ? MKT_BUY : MKT_SELL;
    in->pos_side = MKT_PS_BOTH;
    in->qty = DEC_ZERO;
    in->order_type = COPY_ORDER_MARKET;
    in->skip = COPY_SKIP_STALE_SIGNAL;
    fj->items[0].rule = d->rule;
    fj->n = 1;
    d->reason = "stale_signal"; /* its placeholder: skipped, with the skipped intent */
    log_error(TAG, "%s %s trade %s: rule %s: %s's state did not come in within %d ms of the leader fill: "
              "NOT copied (journaled as skipped, stale_signal)", d->fill.account, d->fill.symbol,
              d->fill.trade_id, r->cr.id, f->name, RETRY_WINDOW_MS);
}

/* Decides the head item (once: the engine's state moves with a decision, so a resubmission
 * journals the same one). Always a write, even without intents: it resolves the placeholder. */
static int df_decide(struct acct *f, struct defer_item *d) {
    struct copier *c = f->c;
    struct rule *r = &c->rules[d->rule];
    struct fill_job *fj;
    if (!d->reason && (r->removed || !r->enabled)) d->reason = r->removed ? "rule_removed" : "rule_disabled";
    if (d->reason && strcmp(d->reason, "stale_signal"))
        log_info(TAG, "%s %s trade %s: rule %s was removed or disabled while %s's state loaded: not decided "
                 "(journaled as skipped, %s)", d->fill.account, d->fill.symbol, d->fill.trade_id, r->cr.id,
                 f->name, d->reason);
    fj = calloc(1, sizeof(*fj) + COPY_MAX_INTENTS * sizeof(fj->items[0]));
    if (!fj) return -ENOMEM;
    fj->c = c;
    fj->fill = d->fill;
    fj->leader = d->leader;
    fj->deferred = true;
    fj->dfollower = f->idx;
    if (d->reason) {
        /* no decision: only its placeholder is resolved */
    } else if (!f->state_ok) {
        df_expire(f, d, fj); /* df_kick gets here without state only once expired */
    } else {
        copier_decide_rule(c, fj, d->rule, &d->fill, d->lpos, d->leader_equity,
                           copier_exchange_now_ms(&c->accts[d->leader]));
    }
    d->fj = fj; /* no intents (coalesced, nothing to do): still journaled, to resolve the placeholder */
    return 0;
}

/* 0: submitted; 1: waits for the retry timer; -1: given up (the item is gone). */
static int df_submit(struct acct *f, struct defer_item *d) {
    struct copier *c = f->c;
    struct journal_stats before = {0}, after = {0};
    const struct mkt_fill *fl = &d->fill;
    if (c->journal) journal_get_stats(c->journal, &before);
    int e = copier_fill_submit(c, d->fj);
    if (e == 0) {
        /* The spool answers a write of a fill it holds "not new, nothing new" without writing
         * the intents: this one is resubmitted until the spool is drained (journal.h). */
        if (c->journal) journal_get_stats(c->journal, &after);
        d->fj->spool_dup = after.spool_fills_dup > before.spool_fills_dup;
        f->df_busy = true;
        return 0;
    }
    if (e == -ENOTCONN || e == -ENOBUFS) {
        df_wait(f);
        return 1;
    }
    log_error(TAG, "%s %s trade %s: journal refused %s's deferred decision (%s): NOT copied", fl->account,
              fl->symbol, fl->trade_id, f->name, strerror(-e));
    copier_revert_pending(c, d->fj);
    df_pop(f);
    return -1;
}

static void df_kick(struct acct *f) {
    struct copier *c = f->c;
    while (!c->freeing && !f->df_busy && !f->df_retry && f->df_head && f->df_head->armed &&
           (f->state_ok || df_expired(f->df_head) || df_moot(c, f->df_head))) {
        struct defer_item *d = f->df_head;
        if (!d->fj) {
            if (df_decide(f, d) < 0) {
                df_wait(f); /* out of memory: again later */
                return;
            }
            if (!d->fj) {
                df_pop(f);
                continue;
            }
        }
        if (df_submit(f, d) >= 0 && (f->df_busy || f->df_retry)) return;
    }
    copier_drain_check(c);
}

/* The deferred write's answer (copier.c's on_journaled hands it over; fills_in_journal is
 * already counted down). */
bool copier_defer_journaled(struct fill_job *fj, const struct journal_fill_result *res) {
    struct copier *c = fj->c;
    struct acct *f = &c->accts[fj->dfollower];
    struct defer_item *d = f->df_head;
    const struct mkt_fill *fl = &fj->fill;
    if (c->freeing || !d || d->fj != fj) { /* copier_load_free let go of it */
        free(fj);
        return false;
    }
    f->df_busy = false;
    if (res->status == -ECONNRESET || res->status == -ETIMEDOUT || (res->status == 0 && fj->spool_dup)) {
        /* Not written (the spool's repeat), or maybe written: resubmitted; a committed one comes
         * back "not new" and nothing is sent twice. */
        log_debug(TAG, "%s %s trade %s: %s's deferred decision not journaled yet (%s), again in %d ms",
                  fl->account, fl->symbol, fl->trade_id, f->name,
                  res->status ? (res->errmsg ? res->errmsg : strerror(-res->status)) : "spool holds the fill",
                  DEFER_RETRY_MS);
        fj->spool_dup = false;
        df_wait(f);
        return false;
    }
    if (res->status != 0) {
        log_error(TAG, "%s %s trade %s: journal write of %s's deferred decision failed (%s), NOT copied",
                  fl->account, fl->symbol, fl->trade_id, f->name,
                  res->errmsg ? res->errmsg : strerror(-res->status));
        met_counter_inc(c->m_journal_fail);
        copier_revert_pending(c, fj);
        df_pop(f);
        df_kick(f);
        return false;
    }
    d->fj = NULL; /* this function frees it */
    if (copier_now_ns() - fl->received_ns > (int64_t)RETRY_WINDOW_MS * 1000000) {
        /* Too old to send (the window of every send): finalised as stale, never sent. */
        for (size_t i = 0; i < fj->n; i++) {
            const struct copy_intent *in = &fj->items[i].in;
            if (!copier_sendable(in)) {
                if (res->intent_new[i] && in->skip != COPY_SKIP_NONE) met_counter_inc(c->m_skip[in->skip]);
                else if (res->intent_new[i]) met_counter_inc(c->m_dry_run);
                if (res->intent_new[i]) met_counter_inc(f->m_skipped);
                continue;
            }
            copier_add_pending(c, f->name, fl->symbol, in, true);
            if (!res->intent_new[i]) continue;
            struct journal_result jr = {.client_order_id = in->client_id, .status = JOURNAL_SKIPPED,
                                        .error_msg = "stale"};
            met_counter_inc(f->m_skipped);
            if (journal_record_result(c->journal, &jr) < 0)
                log_error(TAG, "journal: cannot queue skipped (stale) for %s", in->client_id);
            log_error(TAG, "%s %s: order %s not sent: %s's state came %" PRId64 " ms after the leader fill "
                      "(skipped as stale)", f->name, fl->symbol, in->client_id, f->name,
                      (copier_now_ns() - fl->received_ns) / 1000000);
        }
    } else {
        copier_enqueue_intents(c, fj, res, NULL);
    }
    free(fj);
    df_pop(f);
    df_kick(f);
    return true;
}

/* ---- placeholders: deferred decisions made durable (sql/010_deferred_decisions.sql) ---------- */

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const ps_names[] = {[MKT_PS_BOTH] = "BOTH", [MKT_PS_LONG] = "LONG", [MKT_PS_SHORT] = "SHORT"};

static json_t *jdec(dec_t d) {
    char b[DEC_STR_MAX];
    return json_string(dec_format(d, b, sizeof(b)) < 0 ? "0" : b);
}

/* What a decision needs that cannot be recomputed later, beyond the fill's identity: the fill as
 * the stream gave it, the leader's position before it and its equity then, and when it arrived
 * (wall clock: the send window counts from there after a restart too). Compact JSON, malloc'd. */
static char *defer_input(const struct defer_item *d) {
    const struct mkt_fill *fl = &d->fill;
    int64_t rx = fl->received_ns > 0 ? wall_ms() - (copier_now_ns() - fl->received_ns) / 1000000 : 0;
    json_t *o = json_object();
    char *s = NULL;
    if (!o) return NULL;
    if (json_object_set_new(o, "v", json_integer(1)) == 0 &&
        json_object_set_new(o, "order_id", json_string(fl->order_id)) == 0 &&
        json_object_set_new(o, "trade_seq", json_integer(fl->trade_seq)) == 0 &&
        json_object_set_new(o, "side", json_string(fl->side == MKT_BUY ? "BUY" : "SELL")) == 0 &&
        json_object_set_new(o, "qty", jdec(fl->qty)) == 0 &&
        json_object_set_new(o, "price", jdec(fl->price)) == 0 &&
        json_object_set_new(o, "cum_qty", jdec(fl->cum_qty)) == 0 &&
        json_object_set_new(o, "orig_qty", jdec(fl->orig_qty)) == 0 &&
        json_object_set_new(o, "reduce_only", json_boolean(fl->reduce_only)) == 0 &&
        json_object_set_new(o, "order_done", json_boolean(fl->order_done)) == 0 &&
        json_object_set_new(o, "pos_side", json_string((unsigned)fl->pos_side <= MKT_PS_SHORT
                                                           ? ps_names[fl->pos_side] : "BOTH")) == 0 &&
        json_object_set_new(o, "event_ms", json_integer(fl->event_time_ms)) == 0 &&
        json_object_set_new(o, "trade_ms", json_integer(fl->trade_time_ms)) == 0 &&
        json_object_set_new(o, "received_ms", json_integer(rx)) == 0 &&
        json_object_set_new(o, "leader_net", jdec(d->lpos.net)) == 0 &&
        json_object_set_new(o, "leader_long", jdec(d->lpos.long_size)) == 0 &&
        json_object_set_new(o, "leader_short", jdec(d->lpos.short_size)) == 0 &&
        json_object_set_new(o, "leader_equity", jdec(d->leader_equity)) == 0)
        s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

int copier_defer_journal(struct copier *c, const struct fill_job *fj, struct journal_fill *jf, void **store) {
    const struct defer_item *d;
    struct journal_defer *v;
    size_t n = 0;
    *store = NULL;
    if (fj->deferred) {
        /* The write holding a deferred decision resolves its placeholder in the same transaction
         * (a decision never had one only if its fill's write failed: then it is not here). */
        d = c->accts[fj->dfollower].df_head;
        if (d && d->fj == fj) {
            jf->resolve_rule_id = c->rules[d->rule].cr.id;
            jf->resolve_reason = d->reason;
        }
        return 0;
    }
    for (d = fj->defers; d; d = d->fnext) n++;
    if (!n) return 0;
    /* One block: the array, then each input's text. */
    v = calloc(1, n * (sizeof(*v) + JOURNAL_DEFER_INPUT_MAX + 1));
    if (!v) return -ENOMEM;
    char *text = (char *)(v + n);
    n = 0;
    for (d = fj->defers; d; d = d->fnext, n++) {
        const struct rule *r = &c->rules[d->rule];
        char *in = defer_input(d), *dst = text + n * (JOURNAL_DEFER_INPUT_MAX + 1);
        size_t len = in ? strlen(in) : 0;
        if (!in || len > JOURNAL_DEFER_INPUT_MAX) {
            free(in);
            free(v);
            return in ? -EINVAL : -ENOMEM;
        }
        memcpy(dst, in, len + 1);
        free(in);
        v[n] = (struct journal_defer){r->cr.id, c->accts[r->follower].name, dst};
    }
    jf->defers = v;
    jf->n_defers = n;
    *store = v;
    return 0;
}

static bool jstr_dec(json_t *o, const char *k, dec_t *out) {
    const char *s = json_string_value(json_object_get(o, k));
    return s && dec_parse_cstr(s, out) == 0;
}

static long acct_index(const struct copier *c, const char *name) {
    for (size_t i = 0; i < c->n_accts; i++)
        if (!strcmp(c->accts[i].name, name)) return (long)i;
    return -1;
}

/* One placeholder an earlier run left pending: a defer_item again, armed (its fill is
 * journaled), at the tail of its follower's queue (rows come in the order they were written).
 * false: it cannot be read (left pending, logged by the caller). */
static bool df_restore(struct copier *c, const struct journal_pending_defer *p) {
    json_error_t jerr;
    json_t *o = json_loads(p->input, 0, &jerr);
    struct defer_item *d = NULL;
    size_t rule = c->n_rules;
    long fi, li;
    bool ok = false;
    for (size_t i = 0; i < c->n_rules; i++)
        if (!strcmp(c->rules[i].cr.id, p->rule_id) && !c->rules[i].removed) rule = i;
    fi = acct_index(c, p->follower);
    li = acct_index(c, p->account);
    if (!o || rule == c->n_rules || fi < 0 || c->rules[rule].follower != (size_t)fi ||
        !(d = calloc(1, sizeof(*d))))
        goto out;
    struct mkt_fill *fl = &d->fill;
    const char *side = json_string_value(json_object_get(o, "side"));
    const char *ps = json_string_value(json_object_get(o, "pos_side"));
    const char *oid = json_string_value(json_object_get(o, "order_id"));
    int64_t rx = json_integer_value(json_object_get(o, "received_ms"));
    snprintf(fl->account, sizeof(fl->account), "%s", p->account);
    snprintf(fl->symbol, sizeof(fl->symbol), "%s", p->symbol);
    snprintf(fl->trade_id, sizeof(fl->trade_id), "%s", p->trade_id);
    snprintf(fl->order_id, sizeof(fl->order_id), "%s", oid ? oid : "");
    fl->trade_seq = json_integer_value(json_object_get(o, "trade_seq"));
    fl->side = side && !strcmp(side, "SELL") ? MKT_SELL : MKT_BUY;
    fl->reduce_only = json_is_true(json_object_get(o, "reduce_only"));
    fl->order_done = json_is_true(json_object_get(o, "order_done"));
    fl->pos_side = ps && !strcmp(ps, "LONG") ? MKT_PS_LONG : ps && !strcmp(ps, "SHORT") ? MKT_PS_SHORT : MKT_PS_BOTH;
    fl->event_time_ms = json_integer_value(json_object_get(o, "event_ms"));
    fl->trade_time_ms = json_integer_value(json_object_get(o, "trade_ms"));
    /* Its age is the fill's: the send window counts from when it arrived in the earlier run. */
    fl->received_ns = rx > 0 ? copier_now_ns() - (wall_ms() - rx) * 1000000 : 0;
    if (!side || !jstr_dec(o, "qty", &fl->qty) || !jstr_dec(o, "price", &fl->price) ||
        !jstr_dec(o, "cum_qty", &fl->cum_qty) || !jstr_dec(o, "orig_qty", &fl->orig_qty) ||
        !jstr_dec(o, "leader_net", &d->lpos.net) || !jstr_dec(o, "leader_long", &d->lpos.long_size) ||
        !jstr_dec(o, "leader_short", &d->lpos.short_size) ||
        !jstr_dec(o, "leader_equity", &d->leader_equity) || (fl->event_time_ms <= 0 && fl->trade_time_ms <= 0))
        goto out;
    d->rule = rule;
    d->leader = c->rules[rule].leader;
    /* The rule's id now names a rule of another leader: not this decision's rule any more. */
    if (li < 0 || c->rules[rule].leader != (size_t)li) d->reason = "rule_removed";
    d->armed = true;
    struct acct *f = &c->accts[fi];
    if (f->df_tail) f->df_tail->next = d; else f->df_head = d;
    f->df_tail = d;
    f->df_n++;
    c->df_items++;
    if (!f->state_ok) copier_load_urgent(f);
    d = NULL;
    ok = true;
out:
    free(d);
    json_decref(o);
    return ok;
}

/* Every placeholder read back is queued, beyond DEFER_MAX too: each is a durable promise (its
 * fill is journaled, so no backfill brings it back) that must be decided or resolved, never
 * dropped. The backlog is bounded anyway: a run defers at most DEFER_MAX at a time, loaded ones
 * included (df_items), and nothing new before these are read (no leader stream is open yet); the
 * old ones are mostly past the send window, so they are resolved as stale_signal once the
 * reconciliation is done (copier_defer_kick_all) or their follower loads. What a large backlog
 * could do to a start-up is bounded here: ~400 bytes each in memory, one pass without I/O, and
 * at most DEFER_LOG_MAX log lines per kind (the rest counted; ct_journal_deferred_pending shows
 * them all). While it is bigger than DEFER_MAX, new decisions that must wait are refused
 * (copier_defer, logged NOT copied): the old promises go first. */
#define DEFER_LOG_MAX 20

void copier_defer_load(struct copier *c, const struct journal_pending_defer *v, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (df_restore(c, &v[i])) {
            if (i - bad < DEFER_LOG_MAX)
                log_warn(TAG, "%s %s trade %s: rule %s: %s's decision was deferred by an earlier run: decided "
                         "once its state is in", v[i].account, v[i].symbol, v[i].trade_id, v[i].rule_id,
                         v[i].follower);
            continue;
        }
        if (++bad <= DEFER_LOG_MAX)
            log_error(TAG, "%s %s trade %s: rule %s: the deferred decision an earlier run journaled for %s cannot "
                      "be read or has no rule (left pending)", v[i].account, v[i].symbol, v[i].trade_id,
                      v[i].rule_id, v[i].follower);
    }
    if (n)
        log_info(TAG, "start-up: %zu copy decisions an earlier run deferred are waiting for their follower's "
                 "state%s%s", n - bad, bad ? " (some unreadable: see above)" : "",
                 n > DEFER_LOG_MAX ? " (only the first of each kind are named)" : "");
    if (c->df_items > DEFER_MAX)
        log_warn(TAG, "start-up: %zu copy decisions wait, more than the %d that may wait at once: new ones that "
                 "must wait for a follower's state are refused until they are down", c->df_items, DEFER_MAX);
}

/* ct_journal_deferred_pending (registered by copier.c's metrics_init): placeholders pending in
 * the journal as it knows them (journal_stats.defers_pending), including those the copier could
 * not read back and those its last start-up left. */
double copier_defers_pending_metric(void *ud) {
    const struct copier *c = ud;
    struct journal_stats s;
    if (!c->journal) return 0;
    journal_get_stats(c->journal, &s);
    return (double)s.defers_pending;
}

void copier_defer_kick_all(struct copier *c) {
    for (size_t i = 0; i < c->n_accts && c->df_items && !c->freeing; i++)
        if (c->accts[i].df_head) df_kick(&c->accts[i]);
}

/* ---- whole leader fills waiting, unjournaled, for their followers' state -------------------- */

#define FILL_WAIT_MAX 100000

struct fill_wait {
    struct fill_wait *next;
    struct mkt_fill f;
    bool pre_adjusted, from_stream;
    int64_t since_ns;
};

/* Whether a rule of this leader has a follower whose state is not in; with urge, every such
 * follower goes to the front of the loading queue. */
static bool fw_needs(struct copier *c, const struct acct *leader, bool urge) {
    bool need = false;
    for (size_t i = 0; i < c->n_rules; i++) {
        const struct rule *r = &c->rules[i];
        struct acct *f = &c->accts[r->follower];
        if (r->leader != leader->idx || !r->enabled || f->state_ok) continue;
        need = true;
        if (!urge) break;
        copier_load_urgent(f);
    }
    return need;
}

static void fw_timer_cb(uv_timer_t *t);

/* One shot: a load that completes re-arms it at 0; otherwise it fires when the oldest waiting
 * fill has waited state_wait_ms (heads are each leader's oldest). */
static void fw_arm(struct copier *c, uint64_t ms) {
    uv_timer_start(&c->fw_timer, fw_timer_cb, ms, 0);
}

bool copier_fill_wait(struct acct *leader, const struct mkt_fill *f, bool pre_adjusted, bool from_stream) {
    struct copier *c = leader->c;
    if (leader->fw_bypass || c->draining || c->freeing || !c->state_wait_ms) return false;
    if (!leader->fw_head && (c->fw_items >= FILL_WAIT_MAX || !fw_needs(c, leader, false))) return false;
    if (copier_fill_seen(c, f)) return false; /* a repeat: copier_take_fill counts it as one */
    struct fill_wait *w = calloc(1, sizeof(*w));
    if (!w) return false; /* decided now: the followers still loading defer */
    *w = (struct fill_wait){.f = *f, .pre_adjusted = pre_adjusted, .from_stream = from_stream,
                            .since_ns = copier_now_ns()};
    if (leader->fw_tail) leader->fw_tail->next = w; else leader->fw_head = w;
    leader->fw_tail = w;
    c->fw_items++;
    (void)fw_needs(c, leader, true);
    if (!uv_is_active((uv_handle_t *)&c->fw_timer)) fw_arm(c, c->state_wait_ms); /* none older */
    log_debug(TAG, "%s %s trade %s: waits for followers' state before it is journaled", f->account,
              f->symbol, f->trade_id);
    return true;
}

/* Takes the leader's waiting fills in order while their followers are in, or once the head has
 * waited state_wait_ms. */
static void fw_release(struct acct *leader) {
    struct copier *c = leader->c;
    while (leader->fw_head && !c->draining && !c->freeing) {
        struct fill_wait *w = leader->fw_head;
        bool late = copier_now_ns() - w->since_ns >= (int64_t)c->state_wait_ms * 1000000;
        if (fw_needs(c, leader, false)) {
            if (!late) break;
            log_warn(TAG, "%s %s trade %s: followers' state not in after %u ms: copied to those that have "
                     "it; the others' decisions wait for theirs (journaled as pending)",
                     w->f.account, w->f.symbol, w->f.trade_id, c->state_wait_ms);
        }
        leader->fw_head = w->next;
        if (!leader->fw_head) leader->fw_tail = NULL;
        c->fw_items--;
        leader->fw_bypass = true;
        (void)copier_take_fill(leader, &w->f, w->pre_adjusted, w->from_stream);
        leader->fw_bypass = false;
        free(w);
    }
}

static void fw_timer_cb(uv_timer_t *t) {
    struct copier *c = t->data;
    int64_t oldest = 0;
    for (size_t i = 0; i < c->n_accts && c->fw_items && !c->freeing; i++) {
        struct acct *a = &c->accts[i];
        if (!a->fw_head) continue;
        fw_release(a);
        if (a->fw_head && (!oldest || a->fw_head->since_ns < oldest)) oldest = a->fw_head->since_ns;
    }
    if (c->fw_items && oldest && !c->freeing) {
        int64_t due_ns = oldest + (int64_t)c->state_wait_ms * 1000000 - copier_now_ns();
        fw_arm(c, due_ns > 0 ? (uint64_t)(due_ns + 999999) / 1000000 : 0);
    }
}

void copier_fill_wait_drop(struct copier *c) {
    size_t n = 0;
    for (size_t i = 0; i < c->n_accts; i++) {
        struct acct *a = &c->accts[i];
        while (a->fw_head) {
            struct fill_wait *w = a->fw_head;
            a->fw_head = w->next;
            free(w);
            n++;
        }
        a->fw_tail = NULL;
    }
    c->fw_items = 0;
    uv_timer_stop(&c->fw_timer);
    if (n)
        log_info(TAG, "%zu leader fills were waiting for followers' state, not journaled: the next start's "
                 "backfill takes them", n);
}

/* From the refresh timer: the decisions of followers still without state that have expired, or
 * whose rule a reload removed or disabled. */
void copier_load_expire(struct copier *c) {
    for (size_t i = 0; i < c->n_accts && c->df_items && !c->freeing; i++) {
        struct acct *f = &c->accts[i];
        if (f->df_head && !f->state_ok && f->df_head->armed && (df_expired(f->df_head) || df_moot(c, f->df_head)))
            df_kick(f);
    }
}

void copier_load_free(struct copier *c) {
    size_t left = 0;
    copier_fill_wait_drop(c);
    for (size_t i = 0; i < c->n_accts; i++) {
        struct acct *f = &c->accts[i];
        while (f->df_head) {
            struct defer_item *d = f->df_head;
            left++;
            log_debug(TAG, "%s %s trade %s: %s's decision was still waiting for its state at exit: its "
                      "placeholder stays pending for the next start", d->fill.account, d->fill.symbol,
                      d->fill.trade_id, f->name);
            if (f->df_busy && d->fj) d->fj = NULL; /* the journal's callback frees it */
            f->df_head = d->next;
            free(d->fj);
            free(d);
        }
        f->df_tail = NULL;
        f->df_n = 0;
        f->df_busy = f->df_retry = false;
    }
    if (left)
        log_warn(TAG, "%zu copy decisions were still waiting for their follower's state at exit: journaled as "
                 "pending (deferred_decisions), the next start decides them (debug level names each)", left);
    c->df_items = c->df_retrying = 0;
    c->ld_head = c->ld_tail = c->ld_utail = NULL;
}
