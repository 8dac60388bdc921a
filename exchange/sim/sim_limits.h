/* sim_limits: the simulator's rate limiters (pure: no I/O, the clock is passed in).
 *
 * Binance USD-M (A6): request weight per client IP in fixed one-minute windows aligned on the
 * minute (X-MBX-USED-WEIGHT-1M), new orders per account in fixed 10-second and one-minute windows
 * (X-MBX-ORDER-COUNT-10S / -1M). Over the weight limit: 429 -1003 with Retry-After = seconds to
 * the window's end; an IP answered more than ban_after 429s in one window is banned: 418 -1003
 * with Retry-After = seconds to the ban's end, ban_s for the first ban, doubled for each repeat
 * (Binance: "from 2 minutes to 3 days"), at most ban_max_s. Over an order limit: 429 -1015 (does
 * not count towards a ban). Every request's weight is counted, limited ones too; orders only when
 * accepted by the limiter.
 *
 * Bybit v5 (B7): per account and endpoint ("POST /v5/order/create"), a rolling one-second window;
 * over the limit: retCode 10006 (HTTP 200). Headers X-Bapi-Limit, X-Bapi-Limit-Status (remaining)
 * and X-Bapi-Limit-Reset-Timestamp (ms when a slot frees if limited, else now).
 *
 * With enabled = false everything is counted and reported in headers but never refused. */
#ifndef CT_SIM_LIMITS_H
#define CT_SIM_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_buf.h"

struct slim_cfg {
    bool enabled;
    int weight_1m;  /* REQUEST_WEIGHT per IP per minute (Binance 2400) */
    int orders_10s; /* ORDERS per account per 10 s (300) */
    int orders_1m;  /* ORDERS per account per minute (1200) */
    int ban_after;  /* 429s to one IP in one window tolerated; the next limited request bans */
    int ban_s;      /* first ban (Binance 120 s) */
    int ban_max_s;  /* longest ban (Binance 3 days) */
    int bybit_trade_per_s; /* create/amend/cancel(-all)/batch, set-leverage (10) */
    int bybit_query_per_s; /* every other /v5 endpoint (50) */
};

/* Binance's and Bybit's published defaults, ban_after 5. */
void slim_cfg_default(struct slim_cfg *c);

struct slim;

struct slim *slim_new(const struct slim_cfg *cfg);
struct slim *slim_free(struct slim *l);
const struct slim_cfg *slim_config(const struct slim *l);
/* Forget every counter and ban (admin reset between tests). */
void slim_reset(struct slim *l);

enum slim_verdict {
    SLIM_OK = 0,
    SLIM_LIMITED, /* HTTP 429 */
    SLIM_BANNED,  /* HTTP 418 */
};

struct slim_bn_ip {
    enum slim_verdict verdict;
    int used_weight;    /* this window's weight, this request included */
    int limit;
    int retry_after_s;  /* LIMITED / BANNED */
    int64_t ban_until_ms;
};

/* Count one request of the given weight from ip. A banned IP is answered BANNED and nothing is
 * counted. Weight 0 requests (new orders) are never limited by weight. */
enum slim_verdict slim_bn_ip(struct slim *l, const char *ip, int weight, int64_t now_ms,
                             struct slim_bn_ip *out);

struct slim_bn_orders {
    enum slim_verdict verdict; /* OK or LIMITED */
    int count_10s, count_1m;   /* after this request (unchanged when limited) */
    int limit;                 /* the limit that refused it */
    const char *interval;      /* "10 SECOND" or "1 MINUTE": the window that refused it */
    int retry_after_s;
};

/* n orders (batchOrders counts n in the 10 s window and 1 in the minute window: pass n10s, n1m).
 * Counted only if both windows have room. */
enum slim_verdict slim_bn_orders(struct slim *l, const char *account, int n10s, int n1m,
                                 int64_t now_ms, struct slim_bn_orders *out);

/* "X-MBX-USED-WEIGHT-1M: n\r\n" (+ "Retry-After: s\r\n" when limited or banned). */
void slim_bn_ip_headers(const struct slim_bn_ip *r, struct sbuf *h);
/* "X-MBX-ORDER-COUNT-10S: a\r\nX-MBX-ORDER-COUNT-1M: b\r\n" (+ Retry-After when limited). */
void slim_bn_order_headers(const struct slim_bn_orders *r, struct sbuf *h);
/* The Binance error body for a verdict: -1003 (weight, ban) or -1015 (orders). */
void slim_bn_ip_error(const struct slim_bn_ip *r, struct sbuf *body);
void slim_bn_orders_error(const struct slim_bn_orders *r, struct sbuf *body);

/* Binance IP weight of a request (A3 numbers); has_symbol: a "symbol" parameter was sent. */
int slim_bn_weight(const char *method, const char *path, bool has_symbol);

struct slim_by {
    bool limited;     /* retCode 10006 */
    int limit;
    int remaining;    /* after this request */
    int64_t reset_ms; /* when a slot frees if limited, else now */
};

/* Per-second limit of a Bybit endpoint ("POST /v5/order/create"). */
int slim_by_limit(const struct slim *l, const char *method, const char *path);
/* Count one request of account on endpoint (method + path) in the rolling second before now.
 * Returns true if allowed (counted), false if limited (not counted). -ENOMEM is treated as
 * allowed. */
bool slim_by_request(struct slim *l, const char *account, const char *method, const char *path,
                     int64_t now_ms, struct slim_by *out);
/* "X-Bapi-Limit: 10\r\nX-Bapi-Limit-Status: 9\r\nX-Bapi-Limit-Reset-Timestamp: ...\r\n". */
void slim_by_headers(const struct slim_by *r, struct sbuf *h);

#endif
