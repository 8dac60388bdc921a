#include "sim_limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uthash.h"

struct ip_rec {
    int64_t window;      /* minute index of the counters */
    int weight;
    int n429;            /* 429s answered in this window */
    int offences;        /* bans so far */
    int64_t ban_until_ms;
    UT_hash_handle hh;
    char ip[];
};

struct acct_rec {
    int64_t w10, w60;    /* window indexes */
    int n10, n60;
    UT_hash_handle hh;
    char name[];
};

/* Bybit: one rolling window per (account, endpoint): the times of the last `limit` requests. */
struct by_rec {
    int limit;
    int n;               /* entries held, <= limit */
    int head;            /* index of the oldest */
    int64_t *t;
    UT_hash_handle hh;
    char key[];          /* account '\n' method ' ' path */
};

struct slim {
    struct slim_cfg cfg;
    struct ip_rec *ips;
    struct acct_rec *accts;
    struct by_rec *by;
};

void slim_cfg_default(struct slim_cfg *c)
{
    *c = (struct slim_cfg){
        .enabled = true,
        .weight_1m = 2400,
        .orders_10s = 300,
        .orders_1m = 1200,
        .ban_after = 5,
        .ban_s = 120,
        .ban_max_s = 259200,
        .bybit_trade_per_s = 10,
        .bybit_query_per_s = 50,
    };
}

struct slim *slim_new(const struct slim_cfg *cfg)
{
    struct slim *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    if (cfg)
        l->cfg = *cfg;
    else
        slim_cfg_default(&l->cfg);
    return l;
}

void slim_reset(struct slim *l)
{
    struct ip_rec *i, *it;
    struct acct_rec *a, *at;
    struct by_rec *b, *bt;
    if (!l)
        return;
    HASH_ITER(hh, l->ips, i, it) {
        HASH_DEL(l->ips, i);
        free(i);
    }
    HASH_ITER(hh, l->accts, a, at) {
        HASH_DEL(l->accts, a);
        free(a);
    }
    HASH_ITER(hh, l->by, b, bt) {
        HASH_DEL(l->by, b);
        free(b->t);
        free(b);
    }
}

struct slim *slim_free(struct slim *l)
{
    if (!l)
        return NULL;
    slim_reset(l);
    free(l);
    return NULL;
}

const struct slim_cfg *slim_config(const struct slim *l)
{
    return &l->cfg;
}

/* Whole seconds until end_ms, at least 1. */
static int secs_until(int64_t end_ms, int64_t now_ms)
{
    int64_t d = end_ms - now_ms;
    int64_t s = (d + 999) / 1000;
    return s < 1 ? 1 : s > 1000000000 ? 1000000000 : (int)s;
}

static int64_t floordiv(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* ---- Binance ---- */

enum slim_verdict slim_bn_ip(struct slim *l, const char *ip, int weight, int64_t now_ms,
                             struct slim_bn_ip *out)
{
    struct ip_rec *r;
    int64_t win = floordiv(now_ms, 60000);
    memset(out, 0, sizeof(*out));
    out->limit = l->cfg.weight_1m;
    HASH_FIND_STR(l->ips, ip, r);
    if (!r) {
        size_t n = strlen(ip) + 1;
        r = calloc(1, sizeof(*r) + n);
        if (!r)
            return SLIM_OK; /* out of memory: do not refuse traffic for it */
        memcpy(r->ip, ip, n);
        r->window = win;
        HASH_ADD_STR(l->ips, ip, r);
    }
    if (r->ban_until_ms > now_ms) {
        out->verdict = SLIM_BANNED;
        out->used_weight = r->window == win ? r->weight : 0;
        out->retry_after_s = secs_until(r->ban_until_ms, now_ms);
        out->ban_until_ms = r->ban_until_ms;
        return SLIM_BANNED;
    }
    if (r->window != win) {
        r->window = win;
        r->weight = 0;
        r->n429 = 0;
    }
    if (weight > 0)
        r->weight = r->weight > 1000000000 - weight ? 1000000000 : r->weight + weight;
    out->used_weight = r->weight;
    if (!l->cfg.enabled || weight <= 0 || r->weight <= l->cfg.weight_1m)
        return out->verdict = SLIM_OK;
    if (++r->n429 > l->cfg.ban_after) {
        int64_t len = (int64_t)l->cfg.ban_s * 1000;
        for (int i = 0; i < r->offences && len < (int64_t)l->cfg.ban_max_s * 1000; i++)
            len *= 2;
        if (len > (int64_t)l->cfg.ban_max_s * 1000)
            len = (int64_t)l->cfg.ban_max_s * 1000;
        r->offences++;
        r->ban_until_ms = now_ms + len;
        out->verdict = SLIM_BANNED;
        out->retry_after_s = secs_until(r->ban_until_ms, now_ms);
        out->ban_until_ms = r->ban_until_ms;
        return SLIM_BANNED;
    }
    out->verdict = SLIM_LIMITED;
    out->retry_after_s = secs_until((win + 1) * 60000, now_ms);
    return SLIM_LIMITED;
}

enum slim_verdict slim_bn_orders(struct slim *l, const char *account, int n10s, int n1m,
                                 int64_t now_ms, struct slim_bn_orders *out)
{
    struct acct_rec *r;
    int64_t w10 = floordiv(now_ms, 10000), w60 = floordiv(now_ms, 60000);
    memset(out, 0, sizeof(*out));
    HASH_FIND_STR(l->accts, account, r);
    if (!r) {
        size_t n = strlen(account) + 1;
        r = calloc(1, sizeof(*r) + n);
        if (!r)
            return SLIM_OK;
        memcpy(r->name, account, n);
        r->w10 = w10;
        r->w60 = w60;
        HASH_ADD_STR(l->accts, name, r);
    }
    if (r->w10 != w10) {
        r->w10 = w10;
        r->n10 = 0;
    }
    if (r->w60 != w60) {
        r->w60 = w60;
        r->n60 = 0;
    }
    if (l->cfg.enabled && r->n10 + n10s > l->cfg.orders_10s) {
        out->verdict = SLIM_LIMITED;
        out->limit = l->cfg.orders_10s;
        out->interval = "10 SECOND";
        out->retry_after_s = secs_until((w10 + 1) * 10000, now_ms);
    } else if (l->cfg.enabled && r->n60 + n1m > l->cfg.orders_1m) {
        out->verdict = SLIM_LIMITED;
        out->limit = l->cfg.orders_1m;
        out->interval = "1 MINUTE";
        out->retry_after_s = secs_until((w60 + 1) * 60000, now_ms);
    } else {
        r->n10 += n10s;
        r->n60 += n1m;
        out->verdict = SLIM_OK;
    }
    out->count_10s = r->n10;
    out->count_1m = r->n60;
    return out->verdict;
}

void slim_bn_ip_headers(const struct slim_bn_ip *r, struct sbuf *h)
{
    sbuf_addf(h, "X-MBX-USED-WEIGHT-1M: %d\r\n", r->used_weight);
    if (r->verdict != SLIM_OK)
        sbuf_addf(h, "Retry-After: %d\r\n", r->retry_after_s);
}

void slim_bn_order_headers(const struct slim_bn_orders *r, struct sbuf *h)
{
    sbuf_addf(h, "X-MBX-ORDER-COUNT-10S: %d\r\nX-MBX-ORDER-COUNT-1M: %d\r\n", r->count_10s, r->count_1m);
    if (r->verdict != SLIM_OK)
        sbuf_addf(h, "Retry-After: %d\r\n", r->retry_after_s);
}

void slim_bn_ip_error(const struct slim_bn_ip *r, struct sbuf *body)
{
    if (r->verdict == SLIM_BANNED)
        sbuf_addf(body, "{\"code\":-1003,\"msg\":\"Way too many requests; IP banned until %lld. "
                        "Please use the websocket for live updates to avoid bans.\"}",
                  (long long)r->ban_until_ms);
    else
        sbuf_addf(body, "{\"code\":-1003,\"msg\":\"Too many requests; current limit is %d requests per "
                        "minute. Please use the websocket for live updates to avoid polling the API.\"}",
                  r->limit);
}

void slim_bn_orders_error(const struct slim_bn_orders *r, struct sbuf *body)
{
    sbuf_addf(body, "{\"code\":-1015,\"msg\":\"Too many new orders; current limit is %d orders per %s.\"}",
              r->limit, r->interval ? r->interval : "MINUTE");
}

int slim_bn_weight(const char *method, const char *path, bool has_symbol)
{
    static const struct {
        const char *method, *path;
        int with_symbol, without;
    } t[] = {
        {"POST", "/fapi/v1/order", 0, 0},
        {"POST", "/fapi/v1/batchOrders", 5, 5},
        {"GET", "/fapi/v1/openOrders", 1, 40},
        {"GET", "/fapi/v2/positionRisk", 5, 5},
        {"GET", "/fapi/v3/positionRisk", 5, 5},
        {"GET", "/fapi/v2/balance", 5, 5},
        {"GET", "/fapi/v3/balance", 5, 5},
        {"GET", "/fapi/v2/account", 5, 5},
        {"GET", "/fapi/v3/account", 5, 5},
        {"GET", "/fapi/v1/positionSide/dual", 30, 30},
        {"GET", "/fapi/v1/ticker/price", 1, 2},
        {"GET", "/fapi/v2/ticker/price", 1, 2},
        {"GET", "/fapi/v1/ticker/24hr", 1, 40},
        {"GET", "/fapi/v1/ticker/bookTicker", 2, 5},
        {"GET", "/fapi/v1/premiumIndex", 1, 10},
        {"GET", "/fapi/v1/userTrades", 5, 5},
        {"GET", "/fapi/v1/allOrders", 5, 5},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcmp(method, t[i].method) && !strcmp(path, t[i].path))
            return has_symbol ? t[i].with_symbol : t[i].without;
    return 1; /* ping, time, exchangeInfo, order query/cancel, leverage, listenKey, ... */
}

/* ---- Bybit ---- */

int slim_by_limit(const struct slim *l, const char *method, const char *path)
{
    static const char *const trade[] = {
        "POST /v5/order/create", "POST /v5/order/amend", "POST /v5/order/cancel",
        "POST /v5/order/cancel-all", "POST /v5/order/create-batch", "POST /v5/order/amend-batch",
        "POST /v5/order/cancel-batch", "POST /v5/position/set-leverage",
    };
    char ep[160];
    snprintf(ep, sizeof(ep), "%s %s", method, path);
    for (size_t i = 0; i < sizeof(trade) / sizeof(trade[0]); i++)
        if (!strcmp(ep, trade[i]))
            return l->cfg.bybit_trade_per_s;
    return l->cfg.bybit_query_per_s;
}

bool slim_by_request(struct slim *l, const char *account, const char *method, const char *path,
                     int64_t now_ms, struct slim_by *out)
{
    char key[256];
    struct by_rec *r;
    int limit = slim_by_limit(l, method, path);
    int n = snprintf(key, sizeof(key), "%s\n%s %s", account, method, path);
    memset(out, 0, sizeof(*out));
    out->limit = limit;
    out->reset_ms = now_ms;
    if (n < 0 || (size_t)n >= sizeof(key) || limit <= 0) {
        out->remaining = limit > 0 ? limit - 1 : 0;
        return true;
    }
    HASH_FIND_STR(l->by, key, r);
    if (!r) {
        r = calloc(1, sizeof(*r) + (size_t)n + 1);
        int64_t *t = calloc((size_t)limit, sizeof(*t));
        if (!r || !t) {
            free(r);
            free(t);
            out->remaining = limit - 1;
            return true;
        }
        memcpy(r->key, key, (size_t)n + 1);
        r->limit = limit;
        r->t = t;
        HASH_ADD_STR(l->by, key, r);
    }
    /* Drop the requests that left the window (oldest first). */
    while (r->n > 0 && r->t[r->head] <= now_ms - 1000) {
        r->head = (r->head + 1) % r->limit;
        r->n--;
    }
    if (r->n >= r->limit && l->cfg.enabled) {
        out->limited = true;
        out->remaining = 0;
        out->reset_ms = r->t[r->head] + 1000;
        return false;
    }
    if (r->n >= r->limit) { /* disabled: forget the oldest to keep counting */
        r->head = (r->head + 1) % r->limit;
        r->n--;
    }
    r->t[(r->head + r->n) % r->limit] = now_ms;
    r->n++;
    out->remaining = r->limit - r->n;
    return true;
}

void slim_by_headers(const struct slim_by *r, struct sbuf *h)
{
    sbuf_addf(h, "X-Bapi-Limit: %d\r\nX-Bapi-Limit-Status: %d\r\nX-Bapi-Limit-Reset-Timestamp: %lld\r\n",
              r->limit, r->remaining, (long long)r->reset_ms);
}
