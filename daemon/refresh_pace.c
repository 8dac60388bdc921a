/* refresh_pace: see refresh_pace.h. */
#include "refresh_pace.h"

#include <errno.h>
#include <stdlib.h>

/* Bounds that keep cost * window_ms * 1000 * 100 (+ limit * 100) inside int64: 8.64e18 at most. */
#define COST_MAX 1000000
#define WINDOW_MAX_MS 86400000
#define LIMIT_MAX 1000000000000

struct refresh_pace {
    int64_t interval_us; /* between two refreshes */
    int64_t tau_us;      /* how far ahead of the pace a burst may run: (burst - 1) intervals */
    int64_t tat_us;      /* theoretical arrival time of the next refresh */
    bool started;
};

static int64_t interval_of(const struct refresh_pace_cfg *c) {
    int64_t den = c->limit * (int64_t)c->share_pct;
    int64_t v = (c->cost * c->window_ms * 1000 * 100 + den - 1) / den; /* rounded up: never faster */
    return v > 0 ? v : 1;
}

static bool cfg_ok(const struct refresh_pace_cfg *c) {
    return c && c->limit > 0 && c->limit <= LIMIT_MAX && c->window_ms > 0 &&
           c->window_ms <= WINDOW_MAX_MS && c->cost > 0 && c->cost <= COST_MAX && c->share_pct >= 1 &&
           c->share_pct <= 100 && c->burst >= 1;
}

int refresh_pace_set(struct refresh_pace *p, const struct refresh_pace_cfg *cfg) {
    if (!p || !cfg_ok(cfg)) return -EINVAL;
    p->interval_us = interval_of(cfg);
    p->tau_us = (int64_t)(cfg->burst - 1) * p->interval_us;
    return 0;
}

struct refresh_pace *refresh_pace_new(const struct refresh_pace_cfg *cfg) {
    if (!cfg_ok(cfg)) {
        errno = EINVAL;
        return NULL;
    }
    struct refresh_pace *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    (void)refresh_pace_set(p, cfg);
    return p;
}

struct refresh_pace *refresh_pace_free(struct refresh_pace *p) {
    free(p);
    return NULL;
}

bool refresh_pace_take(struct refresh_pace *p, int64_t now_ms) {
    int64_t now = now_ms * 1000;
    if (!p) return false;
    if (!p->started || p->tat_us < now) { /* idle: no credit beyond the burst builds up */
        p->started = true;
        p->tat_us = now;
    }
    if (p->tat_us - p->tau_us > now) return false;
    p->tat_us += p->interval_us;
    return true;
}

int64_t refresh_pace_interval_us(const struct refresh_pace *p) { return p ? p->interval_us : 0; }

double refresh_pace_per_minute(const struct refresh_pace *p) {
    return p ? 60e6 / (double)p->interval_us : 0;
}

static double min_d(double a, double b) { return a < b ? a : b; }
static double max_d(double a, double b) { return a > b ? a : b; }

/* n accounts sharing `share` refreshes a ms: ms between two refreshes of each, at least ttl_ms */
static int64_t period_of(size_t n, double share, int64_t ttl_ms) {
    if (n == 0) return 0;
    double period = (double)n / share;
    if (period > (double)INT64_MAX / 2) return INT64_MAX / 2;
    int64_t ms = (int64_t)period;
    if ((double)ms < period) ms++; /* rounded up */
    return ms > ttl_ms ? ms : ttl_ms;
}

int64_t refresh_pace_period_ms(const struct refresh_pace *p, size_t n_leaders, size_t n_followers,
                               int64_t ttl_ms, int64_t *leader_ms) {
    if (leader_ms) *leader_ms = 0;
    if (!p) return 0;
    if (ttl_ms < 1) ttl_ms = 1;
    /* per ms: the pace, what each group would use (each account once per TTL), and what each
     * gets: its need, up to half, more when the other group leaves some */
    double r = 1000.0 / (double)p->interval_us, dl = (double)n_leaders / (double)ttl_ms,
           df = (double)n_followers / (double)ttl_ms;
    double sl = min_d(dl, max_d(r / 2, r - df)), sf = min_d(df, max_d(r / 2, r - dl));
    if (leader_ms) *leader_ms = period_of(n_leaders, sl, ttl_ms);
    return period_of(n_followers, sf, ttl_ms);
}

unsigned refresh_pace_burst(const struct refresh_pace_cfg *cfg, int64_t tick_ms) {
    if (!cfg || tick_ms <= 0 || tick_ms > WINDOW_MAX_MS) return 1;
    struct refresh_pace_cfg c = *cfg;
    c.burst = 1;
    if (!cfg_ok(&c)) return 1;
    /* a tick's share, plus one: after a tick's refreshes the next one may be up to an interval
     * away, and a burst that could not run that far ahead would lose part of every tick's credit
     * (a 50 ms tick at 16.667 ms intervals gave 2.5, not 3, a tick) */
    int64_t iv = interval_of(&c), n = (tick_ms * 1000 + iv - 1) / iv + 1;
    return n < 1 ? 1 : n > 1000 ? 1000 : (unsigned)n;
}
