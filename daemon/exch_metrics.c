/* exch_metrics: see exch_metrics.h. */
#include "exch_metrics.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HASH_NONFATAL_OOM 1 /* a failed add leaves the entry out (hh.tbl == NULL) */
#include <uthash.h>

#include "breaker.h"
#include "exch_limits.h"
#include "rate_budget.h"

#define SLOTS 512      /* (exchange, endpoint, code) series remembered by pointer; more: lookups */
#define MAX_BUDGETS 64 /* per account, per sample */

static const double rest_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5, 1, 2.5, 5, 10};

/* The adapters label requests with static strings: a (pointer, pointer, code) key finds the series
 * without string work; the registry's own lookup only runs the first time. */
struct slot {
    const char *exchange, *endpoint;
    int method;
    long code;
    struct met_hist *lat;
    struct met_counter *answers;
};

struct host {
    char name[80];
    enum breaker_state state;
    struct met_gauge *g_state;
    struct met_counter *c_opens;
    uint64_t opens; /* the breaker's total last added to c_opens */
};

struct exch_metrics {
    struct met_family *f_lat, *f_answers, *f_headroom, *f_blocked, *f_throttles, *f_bans, *f_breaker,
        *f_breaker_opens;
    struct slot slots[SLOTS];
    struct host *hosts;
    size_t n_hosts;
    /* The budgets with series, by name. A host's IP budget has them from the first sample; an
     * account's budget only once there is something to report (see reportable): with 10,000
     * follower accounts, 4 series for each of their 2 order budgets were 80,000 series (~20 MB
     * and 6 MB of every scrape) that said "nothing happened". Counters are fed from the budget's
     * own totals as they grow. */
    struct seen {
        char name[80];
        uint64_t throttles, bans; /* the totals last added to the counters */
        struct met_gauge *headroom, *blocked;
        struct met_counter *c_throttles, *c_bans;
        UT_hash_handle hh;
    } *seen;
};

struct exch_metrics *exch_metrics_new(struct met_registry *reg) {
    struct exch_metrics *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->f_lat = met_histogram_new(reg, "ct_rest_request_seconds",
                                 "REST requests, sent to answered, by exchange and endpoint.", rest_bounds,
                                 sizeof(rest_bounds) / sizeof(rest_bounds[0]), "exchange", "endpoint");
    m->f_answers = met_counter_new(reg, "ct_rest_responses_total",
                                   "REST answers by exchange, endpoint and HTTP status (\"transport\": no "
                                   "answer after sending, \"not_sent\": never left).",
                                   "exchange", "endpoint", "code");
    m->f_headroom = met_gauge_new(reg, "ct_rate_limit_headroom",
                                  "Units left in a rate budget's current window (limit - used, the "
                                  "exchange's usage headers included).", "budget");
    m->f_blocked = met_gauge_new(reg, "ct_rate_limit_blocked_seconds",
                                 "Time left of a budget's back-off after a 429/403 (or a 418 ban).", "budget");
    m->f_throttles = met_counter_new(reg, "ct_rate_limit_throttles_total",
                                     "429 / 403 / \"too many\" answers per rate budget.", "budget");
    m->f_bans = met_counter_new(reg, "ct_rate_limit_bans_total",
                                "418 answers (IP ban) per rate budget: should stay 0.", "budget");
    m->f_breaker = met_gauge_new(reg, "ct_breaker_state",
                                 "Circuit breaker of an exchange host: 0 closed, 1 open, 2 half-open.", "host");
    m->f_breaker_opens = met_counter_new(reg, "ct_breaker_opens_total",
                                         "Times an exchange host's circuit breaker opened.", "host");
    if (!m->f_lat || !m->f_answers || !m->f_headroom || !m->f_blocked || !m->f_throttles || !m->f_bans ||
        !m->f_breaker || !m->f_breaker_opens)
        return exch_metrics_free(m);
    return m;
}

struct exch_metrics *exch_metrics_free(struct exch_metrics *m) {
    if (!m) return NULL;
    free(m->hosts);
    struct seen *e, *tmp;
    HASH_ITER(hh, m->seen, e, tmp) {
        HASH_DEL(m->seen, e);
        free(e);
    }
    free(m);
    return NULL;
}

static const char *method_name(enum rest_method m) {
    switch (m) {
    case REST_POST: return "POST";
    case REST_PUT: return "PUT";
    case REST_DELETE: return "DELETE";
    default: return "GET";
    }
}

void exch_metrics_on_rest(void *ud, enum rest_method method, const char *exchange, const char *endpoint,
                          const struct rest_resp *r) {
    struct exch_metrics *m = ud;
    long code = r->err == 0 ? r->http_status : r->maybe_sent ? -1 : -2;
    size_t h = ((uintptr_t)exchange * 31 + (uintptr_t)endpoint * 17 + (size_t)method * 7 + (size_t)code) % SLOTS;
    struct slot *s = NULL;
    for (size_t i = 0; i < SLOTS; i++) {
        struct slot *x = &m->slots[(h + i) % SLOTS];
        if (x->answers && x->exchange == exchange && x->endpoint == endpoint && x->method == (int)method &&
            x->code == code) {
            s = x;
            break;
        }
        if (!x->answers) {
            char ep[160], c[16];
            snprintf(ep, sizeof(ep), "%s %s", method_name(method), endpoint);
            if (code == -1) snprintf(c, sizeof(c), "transport");
            else if (code == -2) snprintf(c, sizeof(c), "not_sent");
            else snprintf(c, sizeof(c), "%ld", code);
            x->answers = met_counter_child(m->f_answers, exchange, ep, c);
            x->lat = met_hist_child(m->f_lat, exchange, ep);
            if (!x->answers || !x->lat) {
                x->answers = NULL;
                return;
            }
            x->exchange = exchange;
            x->endpoint = endpoint;
            x->method = (int)method;
            x->code = code;
            s = x;
            break;
        }
    }
    if (!s) return; /* table full: this series is not counted (SLOTS is far above what exists) */
    met_counter_inc(s->answers);
    if (code != -2 && r->total_us > 0) met_hist_observe(s->lat, (double)r->total_us / 1e6);
}

/* An account's budget gets series once it has something to say: a throttle, a ban, a block, or
 * half of its limit used in a window (the headroom an operator may want to watch). */
static bool reportable(const struct rate_budget_stats *b) {
    if (strncmp(b->name, "account:", 8) != 0) return true; /* a host's budget: always */
    return b->throttles || b->bans || b->blocked_ms > 0 || b->headroom * 2 <= b->limit;
}

static struct seen *seen_of(struct exch_metrics *m, const struct rate_budget_stats *b) {
    struct seen *v = NULL;
    HASH_FIND_STR(m->seen, b->name, v);
    if (v || !reportable(b)) return v;
    if (!(v = calloc(1, sizeof(*v)))) return NULL;
    snprintf(v->name, sizeof(v->name), "%s", b->name);
    v->headroom = met_gauge_child(m->f_headroom, v->name);
    v->blocked = met_gauge_child(m->f_blocked, v->name);
    v->c_throttles = met_counter_child(m->f_throttles, v->name);
    v->c_bans = met_counter_child(m->f_bans, v->name);
    /* made at the budget's first throttle: shown at 0 once, so that increase() counts it */
    if (v->c_throttles) met_counter_from_zero(v->c_throttles);
    if (v->c_bans) met_counter_from_zero(v->c_bans);
    HASH_ADD_STR(m->seen, name, v);
    if (!v->hh.tbl) { /* uthash could not grow */
        free(v);
        return NULL;
    }
    return v;
}

static void add_growth(struct met_counter *c, uint64_t *last, uint64_t now) {
    if (c && now > *last) met_counter_add(c, now - *last);
    *last = now;
}

static struct host *host_of(struct exch_metrics *m, const char *name) {
    for (size_t k = 0; k < m->n_hosts; k++)
        if (!strcmp(m->hosts[k].name, name)) return &m->hosts[k];
    struct host *v = realloc(m->hosts, (m->n_hosts + 1) * sizeof(*v));
    if (!v) return NULL;
    m->hosts = v;
    struct host *h = &v[m->n_hosts++];
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->state = BREAKER_CLOSED;
    h->g_state = met_gauge_child(m->f_breaker, h->name);
    h->c_opens = met_counter_child(m->f_breaker_opens, h->name);
    return h;
}

size_t exch_metrics_sample(struct exch_metrics *m, struct exch_account *const *accounts, size_t n,
                           struct exch_breaker_change *out, size_t max) {
    struct rate_budget_stats bs[MAX_BUDGETS];
    size_t changes = 0;
    for (size_t i = 0; i < n; i++) {
        struct breaker_stats br;
        size_t nb;
        if (!accounts[i]) continue;
        nb = exch_account_budget_stats(accounts[i], bs, MAX_BUDGETS);
        for (size_t k = 0; k < nb && k < MAX_BUDGETS; k++) {
            struct seen *s = seen_of(m, &bs[k]);
            if (!s) continue;
            if (s->headroom) met_gauge_set(s->headroom, (double)bs[k].headroom);
            if (s->blocked) met_gauge_set(s->blocked, (double)bs[k].blocked_ms / 1000.0);
            add_growth(s->c_throttles, &s->throttles, bs[k].throttles);
            add_growth(s->c_bans, &s->bans, bs[k].bans);
        }
        if (exch_account_breaker_stats(accounts[i], &br) == 0) {
            struct host *h = host_of(m, br.name);
            if (!h) continue;
            if (h->g_state) met_gauge_set(h->g_state, (double)br.state);
            add_growth(h->c_opens, &h->opens, br.opens);
            if (br.state != h->state) {
                if (changes < max) {
                    snprintf(out[changes].host, sizeof(out[changes].host), "%s", h->name);
                    out[changes].from = breaker_state_name(h->state);
                    out[changes].to = breaker_state_name(br.state);
                }
                changes++;
                h->state = br.state;
            }
        }
    }
    return changes;
}
