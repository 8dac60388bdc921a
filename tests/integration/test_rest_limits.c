/* Rate budgets and the circuit breaker in rest_pool (and through the Binance adapter), against an
 * in-process HTTP/1.1 server on the same libuv loop (testutil/http_stub, random loopback port; what
 * it answers is this file's on_request). No PostgreSQL/Redis.
 *
 * - a budget of 10 per 1 s window (queries may use 95 %: 9) and 25 requests at once: all 25
 *   succeed (they wait, none fails), the server never sees more than 9 in one window;
 * - a server that answers 429 + Retry-After: 1 after every 5 requests and 418 to anything that
 *   arrives inside the Retry-After time: 12 requests in a row all complete, 2 x 429, 0 x 418;
 * - a 418 blocks even cost-0 requests (orders on the IP budget) until Retry-After has passed;
 * - max_wait_ms: a request that cannot be admitted in time fails unsent (-ETIMEDOUT);
 * - the breaker opens after 3 x 503, fails fast without sending (-EHOSTDOWN), half-opens after
 *   its cool-down with exactly one probe (the pool's probe URL for an order-like request, or a
 *   probe-able request itself), re-opens on a failed probe and closes on a good one;
 * - an order through the Binance adapter while the circuit is open: REJECTED, http 0,
 *   "not sent: circuit open", nothing reached the server;
 * - 10,000 orders through the adapter, 64 in flight: connections opened reported (keep-alive). */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "breaker.h"
#include "exch_limits.h"
#include "exchange.h"
#include "http_stub.h"
#include "loop_until.h"
#include "rate_budget.h"
#include "rest_pool.h"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the server (testutil/http_stub) and what it answers ---- */

#define MAX_WINDOWS 64

struct srv {
    struct http_stub *http;
    int port;
    /* /lim: quota answers, then 429 Retry-After: 1; anything before ban_until gets 418 */
    int quota, served, n429, n418;
    int64_t ban_until;
    /* /ban: the first request gets 418 Retry-After: 1; later ones before ban_until are
     * violations */
    int ban_requests, ban_violations;
    int64_t ban2_until;
    /* /w: requests per wall-clock second */
    int64_t win_base;
    int win[MAX_WINDOWS];
    /* /svc, /probe, /fapi/v1/time: 503 while failing */
    bool failing;
    int svc, probes, times;
    /* /fapi/v1/order */
    int orders;
};

static void reply(struct http_stub_conn *c, int status, const char *extra, const char *body) {
    char h[512];
    snprintf(h, sizeof h, "Content-Type: application/json\r\n%s", extra ? extra : "");
    http_stub_reply(c, status, h, body, strlen(body));
}

static void on_request(void *ud, struct http_stub_conn *c, const struct http_stub_req *r) {
    struct srv *s = ud;
    if (!r->method) return; /* not a request: ignored */
    const char *target = r->target, *body = r->body;
    char path[256];
    const char *q = strchr(target, '?');
    snprintf(path, sizeof path, "%.*s", (int)(q ? (size_t)(q - target) : strlen(target)), target);
    int64_t now = now_ms();

    if (strcmp(path, "/lim") == 0) {
        if (now < s->ban_until) {
            s->n418++;
            reply(c, 418, "Retry-After: 1\r\n", "{\"code\":-1003,\"msg\":\"banned\"}");
        } else if (s->served >= s->quota) {
            s->n429++;
            s->served = 0;
            s->ban_until = now + 1000;
            reply(c, 429, "Retry-After: 1\r\n", "{\"code\":-1003,\"msg\":\"too many\"}");
        } else {
            s->served++;
            reply(c, 200, NULL, "{}");
        }
    } else if (strcmp(path, "/ban") == 0) {
        if (s->ban_requests++ == 0) {
            s->ban2_until = now + 1000;
            reply(c, 418, "Retry-After: 1\r\n", "{\"code\":-1003,\"msg\":\"banned\"}");
        } else {
            if (now < s->ban2_until) s->ban_violations++;
            reply(c, 200, NULL, "{}");
        }
    } else if (strcmp(path, "/w") == 0) {
        int64_t w = now / 1000 - s->win_base;
        if (w >= 0 && w < MAX_WINDOWS) s->win[w]++;
        reply(c, 200, NULL, "{}");
    } else if (strcmp(path, "/svc") == 0) {
        s->svc++;
        reply(c, s->failing ? 503 : 200, NULL, s->failing ? "{\"code\":-1,\"msg\":\"down\"}" : "{}");
    } else if (strcmp(path, "/probe") == 0) {
        s->probes++;
        reply(c, s->failing ? 503 : 200, NULL, "{}");
    } else if (strcmp(path, "/fapi/v1/time") == 0) {
        s->times++;
        char b[64];
        snprintf(b, sizeof b, "{\"serverTime\":%" PRId64 "}", now);
        reply(c, s->failing ? 503 : 200, NULL, s->failing ? "{\"code\":-1,\"msg\":\"down\"}" : b);
    } else if (strcmp(path, "/fapi/v1/order") == 0) {
        s->orders++;
        char id[64], b[512];
        http_stub_param(body, "newClientOrderId", id, sizeof id);
        snprintf(b, sizeof b,
                 "{\"orderId\":%d,\"clientOrderId\":\"%s\",\"status\":\"FILLED\","
                 "\"executedQty\":\"0.010\",\"avgPrice\":\"100.5\",\"updateTime\":1}",
                 s->orders, id);
        reply(c, 200, "X-MBX-ORDER-COUNT-10S: 1\r\nX-MBX-ORDER-COUNT-1M: 1\r\n", b);
    } else {
        reply(c, 404, NULL, "{\"code\":-1,\"msg\":\"no route\"}");
    }
}

static void srv_start(struct srv *s, uv_loop_t *loop) {
    memset(s, 0, sizeof *s);
    s->http = http_stub_new(loop, on_request, s);
    s->port = http_stub_port(s->http);
}

static void srv_stop(struct srv *s) {
    s->http = http_stub_free(s->http);
}

/* ---- loop helpers ---- */

static void flag_cb(uv_timer_t *t) { *(bool *)t->data = true; }

/* Every wait fails after 20 s: a hang is a failure, not a wait. */
#define RUN_UNTIL(loop, done, want) LU_RUN_UNTIL((loop), (done), (want), 20000)

/* Lets the loop run for ms milliseconds (a cool-down must pass; nothing is asserted on time). */
static void run_for(uv_loop_t *loop, uint64_t ms) {
    bool expired = false;
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &expired;
    uv_timer_start(&t, flag_cb, ms, 0);
    while (!expired) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void teardown_loop(uv_loop_t *loop, struct rest_pool *p, struct srv *s) {
    rest_pool_free(p);
    if (s) srv_stop(s);
    while (uv_run(loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(loop), 0);
}

static void mkurl(char *out, size_t n, int port, const char *path) {
    snprintf(out, n, "http://127.0.0.1:%d%s", port, path);
}

/* Results of plain requests. */
struct res {
    int done, ok, unsent, hostdown, timedout, s429, s418, s503;
    int64_t max_waited;
};

static void res_cb(void *ud, const struct rest_resp *r) {
    struct res *x = ud;
    x->done++;
    if (r->err == 0 && r->http_status == 200) x->ok++;
    if (r->err == 0 && r->http_status == 429) x->s429++;
    if (r->err == 0 && r->http_status == 418) x->s418++;
    if (r->err == 0 && r->http_status == 503) x->s503++;
    if (r->err != 0 && !r->maybe_sent) x->unsent++;
    if (r->err == -EHOSTDOWN) {
        x->hostdown++;
        assert_false(r->maybe_sent);
        assert_string_equal(r->error, "circuit open");
    }
    if (r->err == -ETIMEDOUT) x->timedout++;
    if (r->waited_ms > x->max_waited) x->max_waited = r->waited_ms;
}

static int send_get(struct rest_pool *p, int port, const char *path, struct rate_budget *b,
                    int64_t cost, struct breaker *brk, bool probe_ok, struct res *x) {
    char u[128];
    mkurl(u, sizeof u, port, path);
    struct rest_req req = {.method = REST_GET, .url = u, .breaker = brk, .probe_ok = probe_ok,
                           .prio = RB_PRIO_QUERY};
    req.limits[0].budget = b;
    req.limits[0].cost = cost;
    return rest_pool_send(p, &req, res_cb, x);
}

/* ---- budgets: requests wait, never more than the limit per window ---- */

static void test_budget_waits_instead_of_failing(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    struct rate_budget_cfg bc = {.name = "t10", .limit = 10, .window_ms = 1000, .safety_pct = 100};
    struct rate_budget *b = rate_budget_new(&bc);
    assert_non_null(p);
    assert_non_null(b);

    /* Start 30 ms into a fresh window, so that the first batch arrives inside it. */
    run_for(&loop, (uint64_t)(1030 - now_ms() % 1000));
    s.win_base = now_ms() / 1000;
    struct res x = {0};
    for (int i = 0; i < 25; i++) assert_int_equal(send_get(p, s.port, "/w", b, 1, NULL, false, &x), 0);
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.queued, 16); /* 9 (10 x 95 % for queries) left at once, 16 wait */
    RUN_UNTIL(&loop, &x.done, 25);
    assert_int_equal(x.ok, 25); /* nobody failed */
    int windows = 0;
    for (int w = 0; w < MAX_WINDOWS; w++) {
        assert_true(s.win[w] <= 9);
        if (s.win[w]) windows++;
    }
    assert_true(windows >= 3);
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.deferred, 16);
    assert_int_equal(st.queued, 0);
    assert_true(x.max_waited > 0);
    struct rate_budget_stats bs;
    rate_budget_get_stats(b, now_ms(), &bs);
    assert_int_equal(bs.admitted, 25);

    rate_budget_unref(b);
    teardown_loop(&loop, p, &s);
}

/* ---- 429 + Retry-After: the next request waits it out; the server's 418 is never reached ---- */

struct chain {
    struct rest_pool *p;
    struct srv *s;
    struct rate_budget *b;
    int want, ok, n429, n418, done;
    int64_t after429_waited_min;
    bool last_was_429;
};

static void chain_cb(void *ud, const struct rest_resp *r) {
    struct chain *c = ud;
    assert_int_equal(r->err, 0);
    if (c->last_was_429 && (c->after429_waited_min < 0 || r->waited_ms < c->after429_waited_min))
        c->after429_waited_min = r->waited_ms;
    c->last_was_429 = false;
    if (r->http_status == 200) c->ok++;
    else if (r->http_status == 429) {
        c->n429++;
        c->last_was_429 = true;
        assert_int_equal(r->retry_after_ms, 1000);
    } else if (r->http_status == 418) c->n418++;
    if (c->ok >= c->want || c->n418) {
        c->done = 1;
        return;
    }
    /* the caller retries a throttled request, as the copier would; the pool makes it wait */
    char u[128];
    mkurl(u, sizeof u, c->s->port, "/lim");
    struct rest_req req = {.method = REST_GET, .url = u};
    req.limits[0].budget = c->b;
    req.limits[0].cost = 1;
    assert_int_equal(rest_pool_send(c->p, &req, chain_cb, c), 0);
}

static void test_429_retry_after_never_418(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    s.quota = 5;
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    /* the local limit is far away: only the server's 429 says stop */
    struct rate_budget_cfg bc = {.name = "ip", .limit = 100000, .window_ms = 60000};
    struct rate_budget *b = rate_budget_new(&bc);
    struct chain c = {.p = p, .s = &s, .b = b, .want = 12, .after429_waited_min = -1};
    char u[128];
    mkurl(u, sizeof u, s.port, "/lim");
    struct rest_req req = {.method = REST_GET, .url = u};
    req.limits[0].budget = b;
    req.limits[0].cost = 1;
    assert_int_equal(rest_pool_send(p, &req, chain_cb, &c), 0);
    RUN_UNTIL(&loop, &c.done, 1);

    assert_int_equal(c.n418, 0);
    assert_int_equal(s.n418, 0);     /* nothing arrived inside a Retry-After */
    assert_int_equal(c.ok, 12);      /* throughput resumed each time */
    assert_int_equal(c.n429, 2);
    assert_int_equal(s.n429, 2);
    assert_true(c.after429_waited_min >= 900); /* the retry waited, it did not fail */
    struct rate_budget_stats bs;
    rate_budget_get_stats(b, now_ms(), &bs);
    assert_int_equal(bs.throttles, 2);
    assert_int_equal(bs.bans, 0);
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.throttled, 2);
    assert_int_equal(st.bans, 0);

    rate_budget_unref(b);
    teardown_loop(&loop, p, &s);
}

/* ---- a 418 stops everything on that budget, also what costs nothing ---- */

static void test_418_blocks_all_until_retry_after(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    struct rate_budget_cfg bc = {.name = "ip", .limit = 2400, .window_ms = 60000};
    struct rate_budget *b = rate_budget_new(&bc);
    struct res x = {0};
    assert_int_equal(send_get(p, s.port, "/ban", b, 1, NULL, false, &x), 0);
    RUN_UNTIL(&loop, &x.done, 1);
    assert_int_equal(x.s418, 1);
    struct rate_budget_stats bs;
    rate_budget_get_stats(b, now_ms(), &bs);
    assert_true(bs.banned);
    assert_true(bs.blocked_ms > 500 && bs.blocked_ms <= 1000);
    /* cost 0 (an order on the IP budget) waits too */
    for (int i = 0; i < 3; i++) assert_int_equal(send_get(p, s.port, "/ban", b, 0, NULL, false, &x), 0);
    RUN_UNTIL(&loop, &x.done, 4);
    assert_int_equal(x.ok, 3);
    assert_int_equal(s.ban_requests, 4);
    assert_int_equal(s.ban_violations, 0);
    rate_budget_get_stats(b, now_ms(), &bs);
    assert_int_equal(bs.bans, 1);
    assert_false(bs.banned);
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.bans, 1);

    rate_budget_unref(b);
    teardown_loop(&loop, p, &s);
}

/* ---- a wait longer than max_wait_ms fails without sending ---- */

static void test_max_wait_fails_unsent(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    struct rate_budget_cfg bc = {.name = "acct", .limit = 10, .window_ms = 10000};
    struct rate_budget *b = rate_budget_new(&bc);
    rate_budget_throttled(b, 429, 5000, now_ms());
    char u[128];
    mkurl(u, sizeof u, s.port, "/w");
    struct rest_req req = {.method = REST_POST, .url = u, .body = "x=1", .body_len = 3,
                           .max_wait_ms = 150, .prio = RB_PRIO_ORDER, .no_resend = true};
    req.limits[0].budget = b;
    req.limits[0].cost = 1;
    struct res x = {0};
    assert_int_equal(rest_pool_send(p, &req, res_cb, &x), 0);
    assert_int_equal(x.done, 0); /* never from inside rest_pool_send */
    RUN_UNTIL(&loop, &x.done, 1);
    assert_int_equal(x.timedout, 1);
    assert_int_equal(x.unsent, 1);
    assert_int_equal(http_stub_requests(s.http), 0);
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.wait_timeouts, 1);
    assert_int_equal(st.queued, 0);

    /* freeing the pool cancels a waiting request: -ECANCELED, not sent */
    struct res y = {0};
    req.max_wait_ms = 0;
    assert_int_equal(rest_pool_send(p, &req, res_cb, &y), 0);
    rest_pool_free(p);
    assert_int_equal(y.done, 1);
    assert_int_equal(y.unsent, 1);
    assert_int_equal(http_stub_requests(s.http), 0);
    rate_budget_unref(b);
    teardown_loop(&loop, NULL, &s);
}

/* ---- breaker: opens on 5xx, fails fast, one probe, closes ---- */

static void run_until_state(uv_loop_t *loop, struct breaker *b, enum breaker_state want) {
    int64_t until = now_ms() + 20000;
    while (breaker_state(b, now_ms()) != want && now_ms() < until) uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(breaker_state(b, now_ms()), want);
}

static void test_breaker_open_probe_close(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    char probe[128];
    mkurl(probe, sizeof probe, s.port, "/probe");
    struct breaker_cfg kc = {.name = "test", .failures = 3, .cooldown_ms = 300,
                             .cooldown_max_ms = 600, .probe_url = probe};
    struct breaker *k = breaker_new(&kc);
    struct res x = {0};

    s.failing = true;
    for (int i = 0; i < 3; i++) assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, false, &x), 0);
    RUN_UNTIL(&loop, &x.done, 3);
    assert_int_equal(x.s503, 3);
    assert_int_equal(breaker_state(k, now_ms()), BREAKER_OPEN);

    /* open: refused before anything is sent, probe-able or not */
    assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, false, &x), 0);
    assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, true, &x), 0);
    RUN_UNTIL(&loop, &x.done, 5);
    assert_int_equal(x.hostdown, 2);
    assert_int_equal(s.svc, 3);

    /* cool-down over, the host is back: an order-like request is refused, but the pool probes */
    s.failing = false;
    run_for(&loop, 350);
    assert_int_equal(breaker_state(k, now_ms()), BREAKER_HALF_OPEN);
    assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, false, &x), 0);
    RUN_UNTIL(&loop, &x.done, 6);
    assert_int_equal(x.hostdown, 3);
    run_until_state(&loop, k, BREAKER_CLOSED);
    assert_int_equal(s.probes, 1);
    assert_int_equal(s.svc, 3);
    assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, false, &x), 0);
    RUN_UNTIL(&loop, &x.done, 7);
    assert_int_equal(x.ok, 1);

    /* open again; the first probe-able request after the cool-down is the probe: it fails
     * -> open again (cool-down doubled to 600 ms) */
    s.failing = true;
    for (int i = 0; i < 3; i++) assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, false, &x), 0);
    RUN_UNTIL(&loop, &x.done, 10);
    assert_int_equal(breaker_state(k, now_ms()), BREAKER_OPEN);
    run_for(&loop, 350);
    assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, true, &x), 0);
    RUN_UNTIL(&loop, &x.done, 11);
    assert_int_equal(s.svc, 8);
    assert_int_equal(breaker_state(k, now_ms()), BREAKER_OPEN);
    run_for(&loop, 350);
    assert_int_equal(breaker_state(k, now_ms()), BREAKER_OPEN); /* 600 ms now */

    /* healthy, cool-down over: two probe-able requests at once -> exactly one goes */
    s.failing = false;
    run_for(&loop, 300);
    assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, true, &x), 0);
    assert_int_equal(send_get(p, s.port, "/svc", NULL, 0, k, true, &x), 0);
    RUN_UNTIL(&loop, &x.done, 13);
    assert_int_equal(s.svc, 9);
    assert_int_equal(x.hostdown, 4);
    assert_int_equal(breaker_state(k, now_ms()), BREAKER_CLOSED);

    struct breaker_stats bs;
    breaker_get_stats(k, now_ms(), &bs);
    assert_int_equal(bs.opens, 3);
    assert_int_equal(bs.closes, 2);
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.breaker_rejects, 4);
    assert_int_equal(st.probes, 1);
    assert_int_equal(st.requests, 13); /* the pool's own probe is not one of them */
    assert_int_equal(st.completed, 13);

    breaker_unref(k);
    teardown_loop(&loop, p, &s);
}

/* ---- the Binance adapter: an order while the circuit is open is not sent ---- */

#define SECRET "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
#define APIKEY "dbefbc809e3e83c283a984c3a1459732ea7db1360ca80c5c2c8867408d28cc83"

struct ord {
    int done, ok, bad;
    struct exch_order_result last;
};

static void time_cb(void *ud, const struct exch_status *st, int64_t off) {
    (void)st, (void)off;
    ((struct ord *)ud)->done++;
}

static void ord_cb(void *ud, const struct exch_order_result *r) {
    struct ord *o = ud;
    o->done++;
    o->last = *r;
    if (r->outcome == EXCH_OK) o->ok++;
    else o->bad++;
}

static struct exch_account *mk_account(struct rest_pool *p, int port) {
    char u[128];
    mkurl(u, sizeof u, port, "");
    struct exch_account_cfg cfg = {.name = "lim1", .kind = EXCH_BINANCE_USDM, .rest_url = u,
                                   .api_key = APIKEY, .api_secret = SECRET};
    struct exch_account *a = exch_account_new(&cfg, p);
    assert_non_null(a);
    return a;
}

static void test_adapter_order_circuit_open(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    struct exch_account *a = mk_account(p, s.port);
    struct exch_limits_cfg lc = {.breaker_failures = 2, .breaker_cooldown_ms = 60000};
    assert_int_equal(exch_account_set_limits(a, &lc), 0);

    s.failing = true;
    struct ord t = {0};
    assert_int_equal(exch_sync_time(a, time_cb, &t), 0);
    assert_int_equal(exch_sync_time(a, time_cb, &t), 0);
    RUN_UNTIL(&loop, &t.done, 2);
    struct breaker_stats bs;
    assert_int_equal(exch_account_breaker_stats(a, &bs), 0);
    assert_int_equal(bs.state, BREAKER_OPEN);

    dec_t qty;
    dec_parse_cstr("0.010", &qty);
    struct exch_order_req o = {.symbol = "BTCUSDT", .side = MKT_BUY, .type = EXCH_MARKET,
                               .qty = qty, .client_id = "cb-open-1"};
    struct ord r = {0};
    assert_int_equal(exch_place_order(a, &o, ord_cb, &r), 0);
    RUN_UNTIL(&loop, &r.done, 1);
    assert_int_equal(r.last.outcome, EXCH_REJECTED);
    assert_int_equal(r.last.http_status, 0);
    assert_string_equal(r.last.error_msg, "not sent: circuit open");
    assert_string_equal(r.last.client_id, "cb-open-1");
    assert_int_equal(s.orders, 0);

    /* the IP budget and the order budgets are there for the daemon's metrics */
    struct rate_budget_stats v[8];
    size_t n = exch_account_budget_stats(a, v, 8);
    assert_int_equal(n, 3);
    assert_non_null(strstr(v[0].name, "weight/1m"));
    assert_int_equal(v[0].limit, 2400);
    assert_non_null(strstr(v[1].name, "orders/10s"));
    assert_non_null(strstr(v[2].name, "orders/1m"));
    assert_int_equal(v[2].limit, 1200);

    exch_account_free(a);
    teardown_loop(&loop, p, &s);
}

/* ---- 10,000 orders, 64 in flight: keep-alive connections opened ---- */

#define ORDERS 10000
#define INFLIGHT 64

struct flood {
    struct exch_account *a;
    int sent, done, ok;
    struct ord o;
};

static void flood_send(struct flood *f);

static void flood_cb(void *ud, const struct exch_order_result *r) {
    struct flood *f = ud;
    f->done++;
    if (r->outcome == EXCH_OK) f->ok++;
    else fail_msg("order %d: outcome %d: %s", f->done, (int)r->outcome, r->error_msg);
    flood_send(f);
}

static void flood_send(struct flood *f) {
    if (f->sent >= ORDERS) return;
    char id[40];
    snprintf(id, sizeof id, "fl-%d", f->sent);
    dec_t qty;
    dec_parse_cstr("0.010", &qty);
    struct exch_order_req o = {.symbol = "BTCUSDT", .side = MKT_BUY, .type = EXCH_MARKET,
                               .qty = qty, .client_id = id};
    f->sent++;
    assert_int_equal(exch_place_order(f->a, &o, flood_cb, f), 0);
}

static void test_ten_thousand_orders_connections(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    struct flood f = {.a = mk_account(p, s.port)};
    struct exch_limits_cfg lc = {.orders_10s_limit = 1000000, .orders_1m_limit = 1000000};
    assert_int_equal(exch_account_set_limits(f.a, &lc), 0);
    for (int i = 0; i < INFLIGHT; i++) flood_send(&f);
    RUN_UNTIL(&loop, &f.done, ORDERS);
    assert_int_equal(f.ok, ORDERS);
    assert_int_equal(s.orders, ORDERS);
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    printf("connections opened per %d orders (%d in flight, HTTP/1.1 keep-alive): %" PRIu64
           " (server accepted %d)\n",
           ORDERS, INFLIGHT, st.connections_opened, http_stub_accepted(s.http));
    assert_true(st.connections_opened <= INFLIGHT);
    exch_account_free(f.a);
    teardown_loop(&loop, p, &s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_waits_instead_of_failing),
        cmocka_unit_test(test_429_retry_after_never_418),
        cmocka_unit_test(test_418_blocks_all_until_retry_after),
        cmocka_unit_test(test_max_wait_fails_unsent),
        cmocka_unit_test(test_breaker_open_probe_close),
        cmocka_unit_test(test_adapter_order_circuit_open),
        cmocka_unit_test(test_ten_thousand_orders_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
