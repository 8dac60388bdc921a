/* copier_reconcile: start-up resolution of the follower orders an earlier run left without a
 * final state (killed mid-batch, an outcome never learned, results not yet written).
 *
 * Each goes through its (follower, symbol) lane as a job that starts with a query by client id
 * (copier.c does the rest, with the same rules as a live unknown outcome):
 *   found             -> its state is recorded; its fills are in the start-up positions already;
 *   confirmed absent  -> sent with the same client id if the intent is younger than the resend
 *                        window (RETRY_WINDOW_MS), else recorded as not placed;
 *   still unknown     -> left 'unknown' (never resent blindly).
 * The leader streams open only once every one of them is done, so no new fill is decided against
 * positions that are about to change under it.
 *
 * Also before the streams open: the copy decisions an earlier run deferred and did not make (a
 * crash, kill -9 or drain deadline while a follower's state loaded) are read back from their
 * placeholders (journal_load_defers, sql/010) and queued again for their followers
 * (copier_load.c), ahead of any new fill; they are decided once reconciliation is done and the
 * follower's state is in. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "copier_internal.h"
#include "journal.h"
#include "log.h"

#define TAG "copier"

int copier_reconcile_copy(struct copier *c, const struct copier_pending *v, size_t n) {
    if (!n) return 0;
    c->pend = calloc(n, sizeof(*c->pend));
    if (!c->pend) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct copier_pending *p = &c->pend[c->n_pend++];
        *p = v[i];
        p->client_id = strdup(v[i].client_id);
        p->follower = strdup(v[i].follower);
        p->symbol = strdup(v[i].symbol);
        if (!p->client_id || !p->follower || !p->symbol) return -ENOMEM;
    }
    return 0;
}

void copier_reconcile_free(struct copier *c) {
    if (c->df_loading && c->journal) journal_load_defers_cancel(c->journal); /* the copier goes */
    c->df_loading = false;
    for (size_t i = 0; i < c->n_pend; i++) {
        free((char *)c->pend[i].client_id);
        free((char *)c->pend[i].follower);
        free((char *)c->pend[i].symbol);
    }
    free(c->pend);
    c->pend = NULL;
    c->n_pend = 0;
}

static long follower_index(const struct copier *c, const char *name) {
    for (size_t i = 0; i < c->n_accts; i++)
        if (!strcmp(c->accts[i].name, name)) return (long)i;
    return -1;
}

void copier_reconcile_job_done(struct copier *c) {
    if (c->reconcile_left == 0 || --c->reconcile_left > 0) return;
    c->reconciled = true;
    log_info(TAG, "start-up: reconciliation of %zu open orders done", c->n_pend);
    copier_reconcile_free(c);
    if (c->freeing) return;
    copier_defer_kick_all(c); /* decisions an earlier run deferred, whose follower has its state */
    if (!c->draining) copier_startup_next(c);
}

#define DEFERS_LOAD_TRIES 5

/* The placeholders still pending (journal_load_defers). A failure is asked again a few times;
 * then start-up goes on without them: they stay pending for the next start (logged). */
static void on_defers(void *ud, int status, const char *errmsg, const struct journal_pending_defer *v, size_t n) {
    struct copier *c = ud;
    if (status == -ECANCELED) return; /* journal_free: the copier may be gone */
    c->df_loading = false;
    if (c->freeing) return;
    if (status < 0) {
        if (++c->df_load_tries < DEFERS_LOAD_TRIES && journal_load_defers(c->journal, on_defers, c) == 0) {
            c->df_loading = true;
            log_warn(TAG, "start-up: cannot read the deferred copy decisions (%s): asking again",
                     errmsg ? errmsg : strerror(-status));
            return;
        }
        log_error(TAG, "start-up: cannot read the deferred copy decisions an earlier run left (%s): they stay "
                  "pending until the next start", errmsg ? errmsg : strerror(-status));
    } else {
        copier_defer_load(c, v, n);
    }
    copier_reconcile_job_done(c);
}

void copier_reconcile_start(struct copier *c) {
    struct timespec ts;
    int64_t now_ms, now_ns = copier_now_ns();
    size_t queued = 0;

    c->reconcile_started = true;
    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (c->n_pend) log_info(TAG, "start-up: reconciling %zu orders an earlier run left open", c->n_pend);
    /* Counted before any job can finish (a query may answer synchronously on an error). */
    c->reconcile_left = 1;
    /* The deferred decisions: answered from the loop, once PostgreSQL holds what the spool held. */
    c->df_load_tries = 0;
    if (c->journal && journal_load_defers(c->journal, on_defers, c) == 0) {
        c->df_loading = true;
        c->reconcile_left++;
    }
    else if (c->journal) log_error(TAG, "start-up: cannot ask for the deferred copy decisions: they stay pending");
    for (size_t i = 0; i < c->n_pend; i++) {
        const struct copier_pending *p = &c->pend[i];
        long fi = follower_index(c, p->follower);
        struct order_job *j;
        if (fi < 0) {
            log_error(TAG, "start-up: order %s of %s: the account is not configured any more; left as it is",
                      p->client_id, p->follower);
            continue;
        }
        if (!p->pos_side_known && c->accts[fi].mode == MKT_PM_HEDGE) {
            /* Without its position side it cannot be sent again; it can still be found. */
            log_warn(TAG, "start-up: order %s of %s: position side not journaled; it is looked up but "
                     "never resent", p->client_id, p->follower);
        }
        if (!(j = copier_job_new(c, (size_t)fi, p->symbol))) {
            log_error(TAG, "start-up: out of memory reconciling %s: left as it is", p->client_id);
            continue;
        }
        snprintf(j->client_id, sizeof(j->client_id), "%s", p->client_id);
        j->side = p->side;
        j->qty = p->qty;
        j->reduce_only = p->reduce_only;
        j->order_type = p->limit_ioc ? COPY_ORDER_LIMIT_IOC : COPY_ORDER_MARKET;
        j->price = p->price;
        j->pos_side = p->pos_side_known ? p->pos_side : MKT_PS_BOTH;
        j->reconcile = true;
        /* Its age is the intent's: the resend window counts from when it was decided. */
        j->received_ns = now_ns - (now_ms - p->intent_ms) * 1000000;
        j->no_resend = !p->pos_side_known && c->accts[fi].mode == MKT_PM_HEDGE;
        c->reconcile_left++;
        queued++;
    }
    /* Kick every lane that got one. */
    struct lane *l, *tmp;
    HASH_ITER(hh, c->lanes, l, tmp) copier_lane_kick(c, l);
    /* The extra count from above; the caller (start-up) goes on by itself when nothing is left. */
    if (--c->reconcile_left == 0) {
        c->reconciled = true;
        if (queued) log_info(TAG, "start-up: reconciliation of %zu open orders done", queued);
        copier_reconcile_free(c);
        copier_defer_kick_all(c);
    }
}
