/* exch_limits: see exch_limits.h. */
#include "exch_limits.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOST_MAX 256

/* The exchanges' IP limits (A3, B-part) are multiplied by this. 1 in every real build. A benchmark
 * against the simulator may build with -DCT_BENCH_IP_LIMIT_SCALE=1000 to measure the daemon's own
 * start-up cost instead of the wait for Binance's weight window (tests/bench/config_scale.py);
 * such a binary must never talk to a real exchange. */
#ifndef CT_BENCH_IP_LIMIT_SCALE
#define CT_BENCH_IP_LIMIT_SCALE 1
#endif
#define EP_MAX 24
#define EP_KEY_MAX 64

/* One exchange host: its IP budget and breaker, shared by the accounts on it. */
struct host_entry {
    struct host_entry *next;
    unsigned refs; /* under reg_mu */
    enum exch_kind kind;
    char host[HOST_MAX];
    struct rate_budget *ip;
    struct breaker *brk;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct host_entry *reg_head;

struct ep_budget {
    char key[EP_KEY_MAX];
    struct rate_budget *b;
};

struct exch_limits {
    enum exch_kind kind;
    struct host_entry *host;
    /* binance: made by the account's first order (or throttle), so that 10,000 accounts that have
     * not ordered yet (every leader, every follower at start-up) cost nothing here (they were
     * 2 x ~370 bytes an account, and 8 metric series); orders_* are the overrides for them. */
    struct rate_budget *ord_short, *ord_long;
    int64_t orders_10s_limit, orders_1m_limit;
    pthread_mutex_t mu;                       /* guards ord_*, ep[] (created on first use) */
    struct ep_budget *ep;                     /* bybit: grown as endpoints are first used, up to
                                                 EP_MAX (72 bytes each: all 24 at once were
                                                 1.7 KiB an account) */
    size_t n_ep, cap_ep;
    int safety_pct;
    int64_t order_max_wait_ms, query_max_wait_ms;
    char account[]; /* the account's name (budget names), at its length */
};

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "scheme://host[:port]" of a URL (the connection's identity; the path is left out). */
static int host_of(const char *url, char *out, size_t cap) {
    const char *s = strstr(url, "://");
    if (!s) return -EINVAL;
    const char *e = strchr(s + 3, '/');
    size_t n = e ? (size_t)(e - url) : strlen(url);
    if (n == 0 || n >= cap) return -EINVAL;
    memcpy(out, url, n);
    out[n] = '\0';
    return 0;
}

static struct host_entry *host_get(enum exch_kind kind, const char *rest_url) {
    char host[HOST_MAX], name[80], probe[HOST_MAX + 32];
    if (host_of(rest_url, host, sizeof host) < 0) {
        errno = EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&reg_mu);
    struct host_entry *h;
    for (h = reg_head; h; h = h->next)
        if (h->kind == kind && strcmp(h->host, host) == 0) {
            h->refs++;
            pthread_mutex_unlock(&reg_mu);
            return h;
        }
    h = calloc(1, sizeof *h);
    if (!h) goto fail;
    h->kind = kind;
    h->refs = 1;
    snprintf(h->host, sizeof h->host, "%s", host);
    const char *hn = strstr(host, "://") + 3;
    struct rate_budget_cfg bc = {.name = name};
    if (kind == EXCH_BYBIT_LINEAR) {
        snprintf(name, sizeof name, "ip:%s:req/5s", hn);
        bc.limit = 600 * (int64_t)CT_BENCH_IP_LIMIT_SCALE;
        bc.window_ms = 5000;
        bc.rolling = true; /* Bybit counts the last 5 s, not aligned windows */
        bc.forbidden_min_ms = 600000; /* B7: 403 "access too frequent": wait >= 10 min */
        snprintf(probe, sizeof probe, "%s/v5/market/time", rest_url);
    } else {
        snprintf(name, sizeof name, "ip:%s:weight/1m", hn);
        bc.limit = 2400 * (int64_t)CT_BENCH_IP_LIMIT_SCALE;
        bc.window_ms = 60000;
        bc.hdr_used = "X-MBX-USED-WEIGHT-1M";
        snprintf(probe, sizeof probe, "%s/fapi/v1/time", rest_url);
    }
    char bname[80];
    snprintf(bname, sizeof bname, "%s", hn);
    struct breaker_cfg kc = {.name = bname, .probe_url = probe};
    h->ip = rate_budget_new(&bc);
    h->brk = breaker_new(&kc);
    if (!h->ip || !h->brk) {
        rate_budget_unref(h->ip);
        breaker_unref(h->brk);
        free(h);
        goto fail;
    }
    h->next = reg_head;
    reg_head = h;
    pthread_mutex_unlock(&reg_mu);
    return h;
fail:
    pthread_mutex_unlock(&reg_mu);
    errno = ENOMEM;
    return NULL;
}

static void host_put(struct host_entry *h) {
    if (!h) return;
    pthread_mutex_lock(&reg_mu);
    if (--h->refs > 0) {
        pthread_mutex_unlock(&reg_mu);
        return;
    }
    struct host_entry **pp = &reg_head;
    while (*pp && *pp != h) pp = &(*pp)->next;
    if (*pp) *pp = h->next;
    pthread_mutex_unlock(&reg_mu);
    rate_budget_unref(h->ip);
    breaker_unref(h->brk);
    free(h);
}

static struct rate_budget *mk_budget(const char *account, const char *what, int64_t limit,
                                     int64_t window_ms, const char *hdr_used) {
    char name[128]; /* rate_budget keeps the first 79 bytes */
    snprintf(name, sizeof name, "account:%s:%s", account, what);
    struct rate_budget_cfg c = {.name = name, .limit = limit, .window_ms = window_ms,
                                .hdr_used = hdr_used};
    return rate_budget_new(&c);
}

struct exch_limits *exch_limits_new(enum exch_kind kind, const char *rest_url, const char *account) {
    if (!rest_url || !account) {
        errno = EINVAL;
        return NULL;
    }
    size_t an = strnlen(account, 63); /* budget names kept the first 63 bytes before too */
    struct exch_limits *l = calloc(1, sizeof *l + an + 1);
    if (!l) return NULL;
    if (pthread_mutex_init(&l->mu, NULL) != 0) {
        free(l);
        errno = ENOMEM;
        return NULL;
    }
    l->kind = kind;
    memcpy(l->account, account, an);
    l->account[an] = '\0';
    l->order_max_wait_ms = 30000;
    l->query_max_wait_ms = 120000;
    if (!(l->host = host_get(kind, rest_url))) goto fail;
    return l;
fail:;
    int e = errno ? errno : ENOMEM;
    exch_limits_free(l);
    errno = e;
    return NULL;
}

struct exch_limits *exch_limits_free(struct exch_limits *l) {
    if (!l) return NULL;
    host_put(l->host);
    rate_budget_unref(l->ord_short);
    rate_budget_unref(l->ord_long);
    for (size_t i = 0; i < l->n_ep; i++) rate_budget_unref(l->ep[i].b);
    free(l->ep);
    pthread_mutex_destroy(&l->mu);
    free(l);
    return NULL;
}

/* Binance: the account's order budgets, made on first use (under l->mu). 0, or -ENOMEM. */
static int ord_budgets_locked(struct exch_limits *l) {
    if (l->kind != EXCH_BINANCE_USDM) return 0;
    /* A6: the 10 s order limit is not in the stored doc; 300 is Binance's usual default. */
    if (!l->ord_short) {
        l->ord_short = mk_budget(l->account, "orders/10s", 300, 10000, "X-MBX-ORDER-COUNT-10S");
        if (l->ord_short)
            rate_budget_set_limit(l->ord_short, l->orders_10s_limit, l->safety_pct);
    }
    if (!l->ord_long) {
        l->ord_long = mk_budget(l->account, "orders/1m", 1200, 60000, "X-MBX-ORDER-COUNT-1M");
        if (l->ord_long) rate_budget_set_limit(l->ord_long, l->orders_1m_limit, l->safety_pct);
    }
    return l->ord_short && l->ord_long ? 0 : -ENOMEM;
}

/* B7 default per-UID limits per second (linear, UTA). */
static int64_t bybit_ep_default(const char *ep) {
    static const char *const fifty[] = {"/v5/order/realtime", "/v5/order/history",
                                        "/v5/execution/list", "/v5/position/list",
                                        "/v5/account/wallet-balance"};
    for (size_t i = 0; i < sizeof fifty / sizeof fifty[0]; i++)
        if (strcmp(ep, fifty[i]) == 0) return 50;
    return 10;
}

/* The account's budget for a Bybit endpoint, made on first use. NULL: ENOMEM / too many. */
static struct rate_budget *ep_budget(struct exch_limits *l, const char *ep) {
    if (strlen(ep) >= EP_KEY_MAX) return NULL;
    pthread_mutex_lock(&l->mu);
    struct rate_budget *b = NULL;
    for (size_t i = 0; i < l->n_ep && !b; i++)
        if (strcmp(l->ep[i].key, ep) == 0) b = l->ep[i].b;
    if (!b && l->n_ep == l->cap_ep && l->cap_ep < EP_MAX) {
        size_t cap = l->cap_ep ? l->cap_ep * 2 : 4;
        if (cap > EP_MAX) cap = EP_MAX;
        struct ep_budget *v = realloc(l->ep, cap * sizeof(*v));
        if (v) {
            l->ep = v;
            l->cap_ep = cap;
        }
    }
    if (!b && l->n_ep < l->cap_ep) {
        char name[80];
        snprintf(name, sizeof name, "account:%s:%s", l->account, ep);
        struct rate_budget_cfg c = {.name = name, .limit = bybit_ep_default(ep), .window_ms = 1000,
                                    .safety_pct = l->safety_pct,
                                    .hdr_limit = "X-Bapi-Limit",
                                    .hdr_remaining = "X-Bapi-Limit-Status",
                                    .hdr_reset_ms = "X-Bapi-Limit-Reset-Timestamp",
                                    .rolling = true /* Bybit's per-second limits slide */};
        if ((b = rate_budget_new(&c))) {
            snprintf(l->ep[l->n_ep].key, EP_KEY_MAX, "%s", ep);
            l->ep[l->n_ep++].b = b;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return b;
}

int exch_account_set_limits(struct exch_account *a, const struct exch_limits_cfg *cfg) {
    struct exch_limits *l = exch_account_limits(a);
    if (!l || !cfg || cfg->ip_limit < 0 || cfg->orders_10s_limit < 0 || cfg->orders_1m_limit < 0 ||
        cfg->safety_pct < 0 || cfg->safety_pct > 100 || cfg->breaker_failures < 0 ||
        cfg->breaker_cooldown_ms < 0 || cfg->order_max_wait_ms < 0 || cfg->query_max_wait_ms < 0)
        return -EINVAL;
    rate_budget_set_limit(l->host->ip, cfg->ip_limit, cfg->safety_pct);
    pthread_mutex_lock(&l->mu);
    if (cfg->orders_10s_limit) l->orders_10s_limit = cfg->orders_10s_limit;
    if (cfg->orders_1m_limit) l->orders_1m_limit = cfg->orders_1m_limit;
    if (l->ord_short) rate_budget_set_limit(l->ord_short, cfg->orders_10s_limit, cfg->safety_pct);
    if (l->ord_long) rate_budget_set_limit(l->ord_long, cfg->orders_1m_limit, cfg->safety_pct);
    if (cfg->safety_pct) l->safety_pct = cfg->safety_pct;
    for (size_t i = 0; i < l->n_ep; i++) rate_budget_set_limit(l->ep[i].b, 0, cfg->safety_pct);
    pthread_mutex_unlock(&l->mu);
    struct breaker_cfg bc = {.failures = cfg->breaker_failures,
                             .cooldown_ms = cfg->breaker_cooldown_ms};
    breaker_configure(l->host->brk, &bc);
    if (cfg->order_max_wait_ms) l->order_max_wait_ms = cfg->order_max_wait_ms;
    if (cfg->query_max_wait_ms) l->query_max_wait_ms = cfg->query_max_wait_ms;
    return 0;
}

int exch_limits_attach(struct exch_account *a, struct rest_req *req, const struct exch_rl *rl) {
    struct exch_limits *l = exch_account_limits(a);
    if (!l || !req || !rl || rl->ip_cost < 0 || rl->orders_short < 0 || rl->orders_long < 0 ||
        (int)rl->prio < 0 || (int)rl->prio >= RB_PRIO_N)
        return -EINVAL;
    unsigned n = 0;
    memset(req->limits, 0, sizeof req->limits);
    /* The IP budget goes on every request, also at cost 0: a 418 ban stops them all. */
    req->limits[n++] = (struct rest_limit){l->host->ip, rl->ip_cost};
    if (l->kind == EXCH_BINANCE_USDM && (rl->orders_short > 0 || rl->orders_long > 0)) {
        pthread_mutex_lock(&l->mu);
        int r = ord_budgets_locked(l);
        struct rate_budget *bs = l->ord_short, *bl = l->ord_long;
        pthread_mutex_unlock(&l->mu);
        if (r < 0) return r;
        req->limits[n++] = (struct rest_limit){bs, rl->orders_short};
        req->limits[n++] = (struct rest_limit){bl, rl->orders_long};
    }
    if (rl->endpoint && l->kind == EXCH_BYBIT_LINEAR) {
        struct rate_budget *b = ep_budget(l, rl->endpoint);
        if (!b) return -ENOMEM;
        req->limits[n++] = (struct rest_limit){b, 1};
    }
    req->breaker = l->host->brk;
    req->prio = rl->prio;
    req->probe_ok = rl->probe_ok;
    if (req->max_wait_ms == 0)
        req->max_wait_ms = rl->prio == RB_PRIO_ORDER ? l->order_max_wait_ms : l->query_max_wait_ms;
    return 0;
}

void exch_limits_throttled(struct exch_account *a, const char *endpoint, int64_t retry_after_ms,
                           int64_t reset_at_ms) {
    struct exch_limits *l = exch_account_limits(a);
    if (!l) return;
    int64_t now = wall_ms();
    if (reset_at_ms > now) retry_after_ms = reset_at_ms - now;
    if (endpoint && l->kind == EXCH_BYBIT_LINEAR) {
        struct rate_budget *b = ep_budget(l, endpoint);
        if (b) rate_budget_throttled(b, 0, retry_after_ms, now);
        return;
    }
    pthread_mutex_lock(&l->mu);
    (void)ord_budgets_locked(l); /* a throttle before the first order still blocks the next */
    struct rate_budget *bs = l->ord_short, *bl = l->ord_long;
    pthread_mutex_unlock(&l->mu);
    if (bs) rate_budget_throttled(bs, 0, retry_after_ms, now);
    if (bl) rate_budget_throttled(bl, 0, retry_after_ms, now);
}

size_t exch_account_budget_stats(const struct exch_account *a, struct rate_budget_stats *out,
                                 size_t cap) {
    struct exch_limits *l = exch_account_limits(a);
    if (!l) return 0;
    int64_t now = wall_ms();
    size_t n = 0;
    pthread_mutex_lock(&l->mu);
    struct rate_budget *v[3] = {l->host->ip, l->ord_short, l->ord_long};
    for (size_t i = 0; i < 3; i++) {
        if (!v[i]) continue;
        if (out && n < cap) rate_budget_get_stats(v[i], now, &out[n]);
        n++;
    }
    for (size_t i = 0; i < l->n_ep; i++, n++)
        if (out && n < cap) rate_budget_get_stats(l->ep[i].b, now, &out[n]);
    pthread_mutex_unlock(&l->mu);
    return n;
}

int exch_account_breaker_stats(const struct exch_account *a, struct breaker_stats *out) {
    struct exch_limits *l = exch_account_limits(a);
    if (!l || !out) return -EINVAL;
    breaker_get_stats(l->host->brk, wall_ms(), out);
    return 0;
}
