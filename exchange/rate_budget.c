/* rate_budget: see rate_budget.h. */
#include "rate_budget.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rate_budget {
    pthread_mutex_t mu;
    unsigned refs; /* under mu */
    const char *name; /* these point into strs[] */
    const char *hdr_used, *hdr_remaining, *hdr_limit, *hdr_reset;
    int64_t limit;
    int64_t window_ms;
    int safety_pct;
    int64_t backoff_min_ms, backoff_max_ms, ban_default_ms, forbidden_min_ms;

    int64_t win_start;    /* start of the current window */
    int64_t local_used;
    int64_t server_used;  /* -1 = no report in this window */
    int64_t blocked_until; /* 0 = not blocked */
    bool banned;
    unsigned strikes;     /* consecutive throttles, for the backoff */
    uint64_t rng;
    uint64_t admitted, deferred, throttles, bans;
    /* rolling: admissions of the last window_ms, oldest at head (a ring) */
    bool rolling;
    struct adm { int64_t t, cost; } *log;
    size_t log_cap, log_head, log_n;
    int64_t roll_used;
    /* The name and the header names, in the budget's own block: an account's budget was 4
     * mallocs and an 80-byte name (10,000 followers have 20,000 of them). */
    char strs[];
};

#define LOG_MAX 1000000 /* admissions remembered at most (beyond: the newest entry grows) */

/* Share of the safe limit per priority, in percent: orders may use it all, queries leave a
 * little for orders, bulk traffic leaves a fifth. */
static const int prio_share[RB_PRIO_N] = {100, 95, 80};

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static void roll(struct rate_budget *b, int64_t now) {
    while (b->rolling && b->log_n && b->log[b->log_head].t <= now - b->window_ms) {
        b->roll_used -= b->log[b->log_head].cost;
        b->log_head = (b->log_head + 1) % b->log_cap;
        b->log_n--;
    }
    int64_t start = floor_div(now, b->window_ms) * b->window_ms;
    if (start != b->win_start) {
        b->win_start = start;
        b->local_used = 0;
        b->server_used = -1;
    }
    if (b->blocked_until && now >= b->blocked_until) {
        b->blocked_until = 0;
        b->banned = false;
    }
}

static int64_t used_of(const struct rate_budget *b) {
    if (b->rolling) return b->roll_used;
    return b->server_used > b->local_used ? b->server_used : b->local_used;
}

/* rolling: when the next admission leaves the window (or a window from now when none is in). */
static int64_t next_out(const struct rate_budget *b, int64_t now) {
    return b->log_n ? b->log[b->log_head].t + b->window_ms : now + b->window_ms;
}

static void log_push(struct rate_budget *b, int64_t t, int64_t cost) {
    if (b->log_n == b->log_cap && b->log_cap < LOG_MAX) {
        /* from 8: a Bybit endpoint's budget (10 a second) per account needs no more */
        size_t cap = b->log_cap ? b->log_cap * 2 : 8;
        struct adm *v = malloc(cap * sizeof *v);
        if (v) {
            for (size_t i = 0; i < b->log_n; i++) v[i] = b->log[(b->log_head + i) % b->log_cap];
            free(b->log);
            b->log = v;
            b->log_cap = cap;
            b->log_head = 0;
        }
    }
    b->roll_used += cost;
    if (b->log_n == b->log_cap) { /* no room: counted on the newest (leaves later, errs safe) */
        if (b->log_n) b->log[(b->log_head + b->log_n - 1) % b->log_cap].cost += cost;
        else b->roll_used -= cost;
        return;
    }
    b->log[(b->log_head + b->log_n) % b->log_cap] = (struct adm){t, cost};
    b->log_n++;
}

static int64_t threshold(const struct rate_budget *b, enum rb_prio prio) {
    int p = (int)prio;
    if (p < 0 || p >= RB_PRIO_N) p = RB_PRIO_BULK;
    /* limit * safety% * share%, rounded down, at least 1 */
    int64_t t = b->limit * b->safety_pct / 100 * prio_share[p] / 100;
    return t > 0 ? t : 1;
}

static void destroy(struct rate_budget *b) {
    free(b->log);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* Appends s (NULL or "" = none: NULL) at *p. */
static const char *put_str(char **p, const char *s) {
    if (!s || !*s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*p, s, n);
    *p += n;
    return d;
}

static size_t str_size(const char *s) { return s && *s ? strlen(s) + 1 : 0; }

struct rate_budget *rate_budget_new(const struct rate_budget_cfg *cfg) {
    if (!cfg || cfg->limit <= 0 || cfg->window_ms <= 0 || cfg->safety_pct < 0 ||
        cfg->safety_pct > 100 || cfg->backoff_min_ms < 0 || cfg->backoff_max_ms < 0 ||
        cfg->ban_default_ms < 0 || cfg->forbidden_min_ms < 0) {
        errno = EINVAL;
        return NULL;
    }
    /* the name is cut to what struct rate_budget_stats holds, as it always was */
    size_t nl = cfg->name ? strnlen(cfg->name, sizeof(((struct rate_budget_stats *)0)->name) - 1) : 0;
    size_t extra = nl + 1 + str_size(cfg->hdr_used) + str_size(cfg->hdr_remaining) +
                   str_size(cfg->hdr_limit) + str_size(cfg->hdr_reset_ms);
    struct rate_budget *b = calloc(1, sizeof *b + extra);
    if (!b) return NULL;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        errno = ENOMEM;
        return NULL;
    }
    b->refs = 1;
    char *p = b->strs;
    if (nl) memcpy(p, cfg->name, nl);
    p[nl] = '\0';
    b->name = p;
    p += nl + 1;
    b->hdr_used = put_str(&p, cfg->hdr_used);
    b->hdr_remaining = put_str(&p, cfg->hdr_remaining);
    b->hdr_limit = put_str(&p, cfg->hdr_limit);
    b->hdr_reset = put_str(&p, cfg->hdr_reset_ms);
    b->limit = cfg->limit;
    b->window_ms = cfg->window_ms;
    b->safety_pct = cfg->safety_pct ? cfg->safety_pct : 90;
    b->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 1000;
    b->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 60000;
    if (b->backoff_max_ms < b->backoff_min_ms) b->backoff_max_ms = b->backoff_min_ms;
    b->ban_default_ms = cfg->ban_default_ms ? cfg->ban_default_ms : 120000;
    b->forbidden_min_ms = cfg->forbidden_min_ms;
    b->win_start = INT64_MIN;
    b->server_used = -1;
    b->rolling = cfg->rolling;
    b->rng = (uint64_t)(uintptr_t)b ^ 0x9e3779b97f4a7c15ull;
    return b;
}

struct rate_budget *rate_budget_ref(struct rate_budget *b) {
    if (!b) return NULL;
    pthread_mutex_lock(&b->mu);
    b->refs++;
    pthread_mutex_unlock(&b->mu);
    return b;
}

struct rate_budget *rate_budget_unref(struct rate_budget *b) {
    if (!b) return NULL;
    pthread_mutex_lock(&b->mu);
    unsigned left = --b->refs;
    pthread_mutex_unlock(&b->mu);
    if (left == 0) destroy(b);
    return NULL;
}

int rate_budget_set_limit(struct rate_budget *b, int64_t limit, int safety_pct) {
    if (!b || limit < 0 || safety_pct < 0 || safety_pct > 100) return -EINVAL;
    pthread_mutex_lock(&b->mu);
    if (limit > 0) b->limit = limit;
    if (safety_pct > 0) b->safety_pct = safety_pct;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

static int check_locked(struct rate_budget *b, int64_t cost, enum rb_prio prio, int64_t now,
                        int64_t *retry_at) {
    roll(b, now);
    if (b->blocked_until) {
        if (retry_at) *retry_at = b->blocked_until;
        return -EAGAIN;
    }
    if (cost <= 0) return 0;
    int64_t used = used_of(b), t = threshold(b, prio);
    if (used + cost <= t || (used == 0 && cost > t)) return 0;
    if (retry_at) *retry_at = b->rolling ? next_out(b, now) : b->win_start + b->window_ms;
    return -EAGAIN;
}

int rate_budget_check(struct rate_budget *b, int64_t cost, enum rb_prio prio, int64_t now_ms,
                      int64_t *retry_at_ms) {
    if (!b) return 0;
    pthread_mutex_lock(&b->mu);
    int r = check_locked(b, cost, prio, now_ms, retry_at_ms);
    if (r < 0) b->deferred++;
    pthread_mutex_unlock(&b->mu);
    return r;
}

static void commit_locked(struct rate_budget *b, int64_t cost, int64_t now) {
    roll(b, now);
    if (cost > 0) b->local_used += cost;
    if (cost > 0 && b->rolling) log_push(b, now, cost);
    b->admitted++;
}

void rate_budget_commit(struct rate_budget *b, int64_t cost, int64_t now_ms) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    commit_locked(b, cost, now_ms);
    pthread_mutex_unlock(&b->mu);
}

int rate_budget_acquire(struct rate_budget *b, int64_t cost, enum rb_prio prio, int64_t now_ms,
                        int64_t *retry_at_ms) {
    if (!b) return 0;
    pthread_mutex_lock(&b->mu);
    int r = check_locked(b, cost, prio, now_ms, retry_at_ms);
    if (r == 0) commit_locked(b, cost, now_ms);
    else b->deferred++;
    pthread_mutex_unlock(&b->mu);
    return r;
}

void rate_budget_release(struct rate_budget *b, int64_t cost, int64_t acquired_ms, int64_t now_ms) {
    if (!b || cost <= 0) return;
    pthread_mutex_lock(&b->mu);
    roll(b, now_ms);
    if (floor_div(acquired_ms, b->window_ms) * b->window_ms == b->win_start) {
        b->local_used -= cost;
        if (b->local_used < 0) b->local_used = 0;
    }
    for (size_t i = b->log_n; b->rolling && i-- > 0;) {
        struct adm *e = &b->log[(b->log_head + i) % b->log_cap];
        if (e->t == acquired_ms && e->cost >= cost) {
            e->cost -= cost;
            b->roll_used -= cost;
            break;
        }
    }
    pthread_mutex_unlock(&b->mu);
}

static void block_until(struct rate_budget *b, int64_t until, bool ban) {
    if (until > b->blocked_until) b->blocked_until = until;
    if (ban) b->banned = true;
}

void rate_budget_note_server(struct rate_budget *b, int64_t used, int64_t limit,
                             int64_t reset_at_ms, int64_t sent_ms, int64_t now_ms) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    roll(b, now_ms);
    if (limit > 0) b->limit = limit;
    bool same_window = floor_div(sent_ms, b->window_ms) * b->window_ms == b->win_start;
    if (used >= 0 && same_window && used > b->server_used && !b->rolling) b->server_used = used;
    /* Exhausted with a known reset time (Bybit's rolling window): nothing fits before it. */
    if (used >= 0 && used >= b->limit && reset_at_ms > now_ms)
        block_until(b, reset_at_ms, false);
    pthread_mutex_unlock(&b->mu);
}

const char *rate_budget_hdr_used(const struct rate_budget *b) { return b ? b->hdr_used : NULL; }
const char *rate_budget_hdr_remaining(const struct rate_budget *b) {
    return b ? b->hdr_remaining : NULL;
}
const char *rate_budget_hdr_limit(const struct rate_budget *b) { return b ? b->hdr_limit : NULL; }
const char *rate_budget_hdr_reset(const struct rate_budget *b) { return b ? b->hdr_reset : NULL; }

static uint64_t next_rand(struct rate_budget *b) {
    /* xorshift64*: jitter only, no need for quality */
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 2685821657736338717ull;
}

void rate_budget_throttled(struct rate_budget *b, long http_status, int64_t retry_after_ms,
                           int64_t now_ms) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    roll(b, now_ms);
    int64_t d;
    if (retry_after_ms > 0) {
        d = retry_after_ms;
    } else {
        d = b->backoff_min_ms;
        for (unsigned i = 0; i < b->strikes && d < b->backoff_max_ms; i++) d *= 2;
        if (d > b->backoff_max_ms) d = b->backoff_max_ms;
        /* +-20 % so that several clients do not come back in step */
        int64_t span = d / 5;
        if (span > 0) d += (int64_t)(next_rand(b) % (uint64_t)(2 * span + 1)) - span;
    }
    if (http_status == 403 && d < b->forbidden_min_ms) d = b->forbidden_min_ms;
    b->strikes++;
    b->throttles++;
    block_until(b, now_ms + d, false);
    pthread_mutex_unlock(&b->mu);
}

void rate_budget_banned(struct rate_budget *b, int64_t retry_after_ms, int64_t now_ms) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    roll(b, now_ms);
    b->bans++;
    b->strikes++;
    block_until(b, now_ms + (retry_after_ms > 0 ? retry_after_ms : b->ban_default_ms), true);
    pthread_mutex_unlock(&b->mu);
}

void rate_budget_ok(struct rate_budget *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->strikes = 0;
    pthread_mutex_unlock(&b->mu);
}

int64_t rate_budget_next_change(struct rate_budget *b, int64_t now_ms) {
    if (!b) return now_ms;
    pthread_mutex_lock(&b->mu);
    roll(b, now_ms);
    int64_t t = b->blocked_until ? b->blocked_until
                : b->rolling     ? next_out(b, now_ms)
                                 : b->win_start + b->window_ms;
    pthread_mutex_unlock(&b->mu);
    return t;
}

void rate_budget_get_stats(struct rate_budget *b, int64_t now_ms, struct rate_budget_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    roll(b, now_ms);
    snprintf(out->name, sizeof out->name, "%s", b->name);
    out->limit = b->limit;
    out->window_ms = b->window_ms;
    out->local_used = b->rolling ? b->roll_used : b->local_used;
    out->server_used = b->server_used;
    out->used = used_of(b);
    out->headroom = b->limit - out->used;
    out->blocked_ms = b->blocked_until ? b->blocked_until - now_ms : 0;
    out->banned = b->banned;
    out->admitted = b->admitted;
    out->deferred = b->deferred;
    out->throttles = b->throttles;
    out->bans = b->bans;
    pthread_mutex_unlock(&b->mu);
}

const char *rate_budget_name(const struct rate_budget *b) { return b ? b->name : ""; }
