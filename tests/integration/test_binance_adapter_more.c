/* The binance-usdm adapter's cancel, batch, fills backfill and book tickers (exchange/
 * binance_rest) end to end against the simulator (copytrader-exsim, Binance USD-M on its REST
 * port), started on a random port per test run. Needs no PostgreSQL or Redis.
 *
 * The simulator binary: $CT_EXSIM, else ../exchange/sim/copytrader-exsim next to this test's
 * build directory. Every wait drives the libuv loop until a condition holds or a deadline fails
 * the test.
 *
 * Covered: cancel of a resting order (CANCELED), of a filled one (-2011 -> query -> FILLED), of an
 * unknown id (NOT_FOUND), and with the follow-up query failing (UNKNOWN, never NOT_FOUND); a batch
 * of 5 with one refused order; a batch under the 503 "Unknown error" fault (all UNKNOWN, all
 * placed) and under a 429 (all THROTTLED, none placed); the fills backfill compared field by field
 * with the ORDER_TRADE_UPDATE events the simulator logged (split fills, reduce-only, cum_qty,
 * order_done), an order created before since_ms, small pages, 7-day windows walked from a month
 * back, the trade cap (-E2BIG); book tickers. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "binance_rest.h"
#include "exchange.h"
#include "exchange_internal.h"
#include "rest_pool.h"

#include "loop_wait.h"
#include "sim_proc.h"

#define LKEY "leaderKEY0001"
#define LSECRET "leaderSECRET0000000000000000000001"
#define FKEY "followerKEY0001"
#define FSECRET "followerSECRET000000000000000000001"
#define HKEY "hedgerKEY0001"
#define HSECRET "hedgerSECRET00000000000000000000001"

/* ======================================================================= simulator process */

static struct sim_proc SIM;

static const char SIM_CONFIG[] =
    "{\"accounts\":["
    "{\"name\":\"leader\",\"api_key\":\"" LKEY "\",\"api_secret\":\"" LSECRET "\",\"balance\":\"100000\"},"
    "{\"name\":\"follower\",\"api_key\":\"" FKEY "\",\"api_secret\":\"" FSECRET "\",\"balance\":\"50000\"},"
    "{\"name\":\"hedger\",\"api_key\":\"" HKEY "\",\"api_secret\":\"" HSECRET "\",\"balance\":\"50000\","
    "\"position_mode\":\"hedge\"}],"
    "\"symbols\":["
    "{\"symbol\":\"BTCUSDT\",\"price\":\"50000\",\"step_size\":\"0.001\",\"min_qty\":\"0.001\","
    "\"max_qty\":\"1000\",\"market_max_qty\":\"120\",\"tick_size\":\"0.10\",\"min_price\":\"0.10\","
    "\"max_price\":\"1000000\",\"min_notional\":\"5\"},"
    "{\"symbol\":\"ETHUSDT\",\"price\":\"3000\",\"step_size\":\"0.01\",\"tick_size\":\"0.01\","
    "\"min_notional\":\"5\"}]}";

static int sim_start(void **state) {
    (void)state;
    sim_proc_start(&SIM, "binance-adapter-more", SIM_CONFIG, NULL);
    return 0;
}

static int sim_stop(void **state) {
    (void)state;
    sim_proc_stop(&SIM);
    return 0;
}

/* Blocking admin call (the simulator is another process): status code, body into out. */
static long admin(const char *method, const char *path, const char *body, char *out) {
    return sim_proc_admin(&SIM, method, path, body, out);
}

/* ======================================================================= loop environment */

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    struct rest_pool *pool;
    struct exch_account *leader, *follower;
} E;


static void tick_cb(uv_timer_t *t) { (void)t; }

#define RUN_UNTIL(cond, ms) LW_RUN_UNTIL(&E.loop, cond, ms)

static void run_for(int ms) { lw_run_for(&E.loop, ms); }

static struct exch_account *account(const char *name, const char *key, const char *secret) {
    char rest[64], ws[96];
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", SIM.port);
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d", SIM.port);
    struct exch_account_cfg cfg = {
        .name = name, .kind = EXCH_BINANCE_USDM, .rest_url = rest, .ws_url = ws,
        .api_key = key, .api_secret = secret, .timeout_ms = 5000,
    };
    struct exch_account *a = exch_account_new(&cfg, E.pool);
    assert_non_null(a);
    return a;
}

static int env_setup(void **state) {
    (void)state;
    memset(&E, 0, sizeof E);
    assert_int_equal(uv_loop_init(&E.loop), 0);
    assert_int_equal(uv_timer_init(&E.loop, &E.tick), 0);
    assert_int_equal(uv_timer_start(&E.tick, tick_cb, 5, 5), 0);
    E.pool = rest_pool_new(&E.loop, NULL);
    assert_non_null(E.pool);
    E.leader = account("leader", LKEY, LSECRET);
    E.follower = account("follower", FKEY, FSECRET);
    admin("POST", "/admin/limits/reset", "{}", NULL);
    admin("DELETE", "/admin/fault", NULL, NULL);
    return 0;
}

static void close_tick(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h) && h == (uv_handle_t *)&E.tick) uv_close(h, NULL);
}

static int env_teardown(void **state) {
    (void)state;
    E.leader = exch_account_free(E.leader);
    E.follower = exch_account_free(E.follower);
    E.pool = rest_pool_free(E.pool);
    uv_walk(&E.loop, close_tick, NULL);
    while (uv_run(&E.loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&E.loop), 0);
    return 0;
}

/* ======================================================================= callbacks */

struct res {
    int calls;
    struct exch_status st;
    struct exch_order_result o;
    struct exch_order_result v[BINANCE_BATCH_MAX];
    size_t n;
    void *arr; /* copy of a list result */
    int64_t i64;
    int lev;
    enum mkt_pos_mode mode;
    struct exch_balance bal;
};

static void on_order(void *ud, const struct exch_order_result *r) {
    struct res *x = ud;
    x->calls++;
    x->o = *r;
}
static void on_batch(void *ud, const struct exch_order_result *v, size_t n) {
    struct res *x = ud;
    x->calls++;
    x->n = n;
    memcpy(x->v, v, n * sizeof *v);
}
#define COPY_LIST(x, st_, v, n)                                  \
    do {                                                         \
        (x)->calls++;                                            \
        (x)->st = *(st_);                                        \
        (x)->n = (n);                                            \
        free((x)->arr);                                          \
        (x)->arr = NULL;                                         \
        if ((n) > 0) {                                           \
            (x)->arr = malloc((n) * sizeof *(v));                \
            memcpy((x)->arr, (v), (n) * sizeof *(v));            \
        }                                                        \
    } while (0)
static void on_book(void *ud, const struct exch_status *st, const struct exch_book_ticker *v, size_t n) {
    COPY_LIST((struct res *)ud, st, v, n);
}
static void on_fills(void *ud, const struct exch_status *st, const struct mkt_fill *v, size_t n) {
    COPY_LIST((struct res *)ud, st, v, n);
}
static void on_time(void *ud, const struct exch_status *st, int64_t off) {
    struct res *x = ud;
    x->calls++;
    x->st = *st;
    x->i64 = off;
}
static void res_clear(struct res *x) {
    free(x->arr);
    memset(x, 0, sizeof *x);
}

static dec_t D(const char *s) {
    dec_t d;
    if (dec_parse_cstr(s, &d) != 0) fail_msg("bad decimal %s", s);
    return d;
}

static void assert_dec(dec_t got, const char *want) {
    char b[DEC_STR_MAX];
    assert_true(dec_format(got, b, sizeof b) > 0);
    if (strcmp(b, want) != 0) fail_msg("decimal: got %s want %s", b, want);
}

static struct exch_order_result place(struct exch_account *a, const char *sym, enum mkt_side side,
                                      enum exch_order_type t, const char *qty, const char *price,
                                      bool ro, const char *cid) {
    struct res x = {0};
    struct exch_order_req r = {.symbol = sym, .side = side, .type = t, .qty = D(qty),
                               .price = price ? D(price) : DEC_ZERO, .reduce_only = ro,
                               .client_id = cid};
    assert_int_equal(exch_place_order(a, &r, on_order, &x), 0);
    assert_int_equal(x.calls, 0); /* never from inside the call */
    RUN_UNTIL(x.calls == 1, 10000);
    return x.o;
}

static struct exch_order_result query(struct exch_account *a, const char *sym, const char *cid) {
    struct res x = {0};
    assert_int_equal(exch_query_order(a, sym, cid, on_order, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    return x.o;
}

static struct exch_order_result cancel(struct exch_account *a, const char *sym, const char *cid) {
    struct res x = {0};
    assert_int_equal(exch_cancel_order(a, sym, cid, on_order, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    return x.o;
}

/* A client id unique per test run (Binance dedupes only open orders; unique keeps it simple). */
static const char *cid(const char *stem) {
    static char buf[8][MKT_CLIENT_ID_MAX];
    static int k;
    static unsigned run;
    if (!run) run = (unsigned)time(NULL) ^ (unsigned)getpid();
    char *b = buf[k++ % 8];
    snprintf(b, MKT_CLIENT_ID_MAX, "%s-%x-%d", stem, run, k);
    return b;
}

/* ======================================================================= tests */

/* Server time now, ms (the simulator runs on this host: wall clock + the measured offset). */
static int64_t server_ms(struct exch_account *a) {
    struct res x = {0};
    assert_int_equal(exch_sync_time(a, on_time, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + x.i64;
}

static void test_cancel(void **state) {
    (void)state;
    /* a resting limit: cancelled */
    const char *l1 = cid("l1");
    struct exch_order_result o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_LIMIT_GTC, "0.001", "40000", false, l1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_NEW);
    char oid[MKT_ORDER_ID_MAX];
    snprintf(oid, sizeof oid, "%s", o.order_id);
    o = cancel(E.follower, "BTCUSDT", l1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    assert_string_equal(o.order_id, oid);
    assert_string_equal(o.client_id, l1);
    o = query(E.follower, "BTCUSDT", l1);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    /* again: -2011, and the query says it is CANCELED */
    o = cancel(E.follower, "BTCUSDT", l1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_CANCELED);

    /* a filled market order: -2011 "Unknown order sent", the query finds it FILLED */
    const char *m1 = cid("m1");
    o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.002", NULL, false, m1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    o = cancel(E.follower, "BTCUSDT", m1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    assert_dec(o.executed_qty, "0.002");

    /* never existed: NOT_FOUND (-2013 from the query) */
    o = cancel(E.follower, "BTCUSDT", cid("ghost"));
    assert_int_equal(o.outcome, EXCH_NOT_FOUND);
    assert_int_equal(o.error_code, -2013);

    /* -2011, and the query fails: UNKNOWN, never NOT_FOUND */
    assert_int_equal(admin("POST", "/admin/fault",
                           "{\"kind\":\"http_5xx\",\"account\":\"follower\",\"endpoint\":"
                           "\"GET /fapi/v1/order\",\"count\":1}", NULL), 200);
    o = cancel(E.follower, "BTCUSDT", m1);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    assert_non_null(strstr(o.error_msg, "cancel: -2011; then "));
    admin("DELETE", "/admin/fault", NULL, NULL);

    /* bad arguments never reach the exchange */
    struct res x = {0};
    assert_int_equal(exch_cancel_order(E.follower, "BTCUSDT", "no spaces", on_order, &x), -EINVAL);
    assert_int_equal(exch_cancel_order(E.follower, "", m1, on_order, &x), -EINVAL);

    o = place(E.follower, "BTCUSDT", MKT_SELL, EXCH_MARKET, "0.002", NULL, true, cid("flat"));
    assert_int_equal(o.outcome, EXCH_OK);
}

/* GET /admin/orders?account=follower: how many order requests carry client id c. */
static int sim_orders_with(const char *c) {
    static char out[65536];
    assert_int_equal(admin("GET", "/admin/orders?account=follower", NULL, out), 200);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j) fail_msg("admin orders: %s (the answer is over 64 KB?)", je.text);
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(j, i, e) {
        const char *s = json_string_value(json_object_get(e, "clientOrderId"));
        if (s && !strcmp(s, c)) n++;
    }
    json_decref(j);
    return (int)n;
}

static void batch5(const char *stem, const char *ids[5], struct exch_order_req r[5]) {
    for (int i = 0; i < 5; i++) ids[i] = strdup(cid(stem));
    r[0] = (struct exch_order_req){.symbol = "ETHUSDT", .side = MKT_BUY, .type = EXCH_MARKET,
                                   .qty = D("0.1"), .client_id = ids[0]};
    r[1] = (struct exch_order_req){.symbol = "ETHUSDT", .side = MKT_BUY, .type = EXCH_MARKET,
                                   .qty = D("0.001"), .client_id = ids[1]}; /* below step/min */
    r[2] = (struct exch_order_req){.symbol = "ETHUSDT", .side = MKT_BUY, .type = EXCH_LIMIT_GTC,
                                   .qty = D("0.1"), .price = D("2000"), .client_id = ids[2]};
    r[3] = (struct exch_order_req){.symbol = "BTCUSDT", .side = MKT_BUY, .type = EXCH_LIMIT_IOC,
                                   .qty = D("0.001"), .price = D("60000"), .client_id = ids[3]};
    r[4] = (struct exch_order_req){.symbol = "ETHUSDT", .side = MKT_SELL, .type = EXCH_MARKET,
                                   .qty = D("0.1"), .reduce_only = true, .client_id = ids[4]};
}

static void free_ids(const char *ids[5]) {
    for (int i = 0; i < 5; i++) free((void *)ids[i]);
}

static void test_batch(void **state) {
    (void)state;
    struct res x = {0};
    const char *ids[5];
    struct exch_order_req r[5];
    assert_int_equal(exch_batch_max(E.follower), 5);
    assert_int_equal(exch_place_batch(E.follower, r, 6, on_batch, &x), -EINVAL);
    batch5("b", ids, r);
    assert_int_equal(exch_place_batch(E.follower, r, 5, on_batch, &x), 0);
    assert_int_equal(x.calls, 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.n, 5);
    for (int i = 0; i < 5; i++) assert_string_equal(x.v[i].client_id, ids[i]);
    assert_int_equal(x.v[0].outcome, EXCH_OK);
    assert_int_equal(x.v[0].status, EXCH_ST_FILLED); /* newOrderRespType=RESULT */
    assert_dec(x.v[0].executed_qty, "0.1");
    assert_int_equal(x.v[1].outcome, EXCH_REJECTED);
    assert_true(x.v[1].error_code < 0);
    assert_true(strlen(x.v[1].error_msg) > 0);
    assert_int_equal(x.v[2].outcome, EXCH_OK);
    assert_int_equal(x.v[2].status, EXCH_ST_NEW);
    assert_int_equal(x.v[3].outcome, EXCH_OK);
    assert_int_equal(x.v[3].status, EXCH_ST_FILLED); /* marketable IOC */
    assert_int_equal(x.v[4].outcome, EXCH_OK);
    assert_int_equal(x.v[4].status, EXCH_ST_FILLED);
    for (int i = 0; i < 5; i++)
        if (i != 1) assert_true(x.v[i].order_id[0] != '\0');
    /* what the exchange got: each order once, the refused one logged as refused */
    for (int i = 0; i < 5; i++) assert_int_equal(sim_orders_with(ids[i]), 1);
    struct exch_usage u;
    exch_account_usage(E.follower, &u);
    assert_true(u.order_count_10s >= 5);
    /* the resting one is cancelled through the new cancel */
    struct exch_order_result o = cancel(E.follower, "ETHUSDT", ids[2]);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    o = place(E.follower, "BTCUSDT", MKT_SELL, EXCH_MARKET, "0.001", NULL, true, cid("flatb"));
    assert_int_equal(o.outcome, EXCH_OK);
    /* two orders with one client id: refused before sending */
    r[1].client_id = r[0].client_id;
    assert_int_equal(exch_place_batch(E.follower, r, 2, on_batch, &x), -EINVAL);
    free_ids(ids);
}

static void test_batch_faults(void **state) {
    (void)state;
    struct res x = {0};
    const char *ids[5];
    struct exch_order_req r[5];
    /* handled, then 503 "Unknown error": every entry UNKNOWN, and the orders do exist */
    assert_int_equal(admin("POST", "/admin/fault",
                           "{\"kind\":\"503_unknown\",\"account\":\"follower\",\"endpoint\":"
                           "\"POST /fapi/v1/batchOrders\",\"count\":1}", NULL), 200);
    batch5("u", ids, r);
    assert_int_equal(exch_place_batch(E.follower, r, 5, on_batch, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(x.v[i].outcome, EXCH_UNKNOWN);
        assert_int_equal(x.v[i].http_status, 503);
        assert_string_equal(x.v[i].client_id, ids[i]);
    }
    struct exch_order_result o = query(E.follower, "ETHUSDT", ids[0]);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    o = query(E.follower, "ETHUSDT", ids[2]);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_NEW);
    o = query(E.follower, "ETHUSDT", ids[1]); /* the refused one does not exist */
    assert_int_equal(o.outcome, EXCH_NOT_FOUND);
    o = cancel(E.follower, "ETHUSDT", ids[2]);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    free_ids(ids);

    /* 429: nothing handled, every entry THROTTLED, nothing placed */
    x.calls = 0;
    assert_int_equal(admin("POST", "/admin/fault",
                           "{\"kind\":\"429\",\"account\":\"follower\",\"endpoint\":"
                           "\"POST /fapi/v1/batchOrders\",\"count\":1}", NULL), 200);
    batch5("t", ids, r);
    assert_int_equal(exch_place_batch(E.follower, r, 5, on_batch, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(x.v[i].outcome, EXCH_THROTTLED);
        assert_int_equal(sim_orders_with(ids[i]), 0);
    }
    free_ids(ids);
    admin("DELETE", "/admin/fault", NULL, NULL);
    /* flatten what the 503 batch bought (0.1 ETH, 0.001 BTC; the reduce-only sold 0.1 ETH) */
    o = place(E.follower, "BTCUSDT", MKT_SELL, EXCH_MARKET, "0.001", NULL, true, cid("flatu"));
    assert_int_equal(o.outcome, EXCH_OK);
}

/* Compares fills with the simulator's ORDER_TRADE_UPDATE x=TRADE events of the leader on symbol
 * with o.T >= since: same count, same order, every field the stream parser fills. */
static void assert_fills_match_events(const struct mkt_fill *f, size_t n, const char *symbol,
                                      int64_t since) {
    static char out[65536 * 8];
    out[0] = '\0';
    /* admin() caps at 64 KB: page through the log */
    size_t k = 0;
    int64_t from = 0;
    for (;;) {
        char path[128];
        snprintf(path, sizeof path, "/admin/events?account=leader&from_seq=%" PRId64, from);
        assert_int_equal(admin("GET", path, NULL, out), 200);
        json_error_t je;
        json_t *j = json_loads(out, 0, &je);
        if (!j) {
            /* cut at 64 KB: the admin helper's buffer */
            fail_msg("events: %s", je.text);
        }
        size_t i;
        json_t *e;
        if (json_array_size(j) == 0) {
            json_decref(j);
            break;
        }
        json_array_foreach(j, i, e) {
            from = json_integer_value(json_object_get(e, "seq")) + 1;
            json_t *ev = json_object_get(e, "event");
            json_t *o = json_object_get(ev, "o");
            if (strcmp(json_string_value(json_object_get(ev, "e")), "ORDER_TRADE_UPDATE") != 0) continue;
            if (strcmp(json_string_value(json_object_get(o, "x")), "TRADE") != 0) continue;
            if (strcmp(json_string_value(json_object_get(o, "s")), symbol) != 0) continue;
            if (json_integer_value(json_object_get(o, "T")) < since) continue;
            if (k >= n) fail_msg("the stream had more fills than the backfill's %zu", n);
            const struct mkt_fill *x = &f[k++];
            char buf[64];
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(o, "t")));
            assert_string_equal(x->trade_id, buf);
            assert_int_equal(x->trade_seq, json_integer_value(json_object_get(o, "t")));
            snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(o, "i")));
            assert_string_equal(x->order_id, buf);
            assert_string_equal(x->order_client_id, json_string_value(json_object_get(o, "c")));
            assert_string_equal(x->symbol, symbol);
            assert_string_equal(x->account, "leader");
            assert_int_equal(x->side, strcmp(json_string_value(json_object_get(o, "S")), "BUY") == 0
                                          ? MKT_BUY : MKT_SELL);
            assert_int_equal(dec_cmp(x->qty, D(json_string_value(json_object_get(o, "l")))), 0);
            assert_int_equal(dec_cmp(x->price, D(json_string_value(json_object_get(o, "L")))), 0);
            if (dec_cmp(x->cum_qty, D(json_string_value(json_object_get(o, "z")))) != 0) {
                char got[DEC_STR_MAX];
                dec_format(x->cum_qty, got, sizeof got);
                fail_msg("trade %s: cum_qty %s, the stream's z %s", x->trade_id, got,
                         json_string_value(json_object_get(o, "z")));
            }
            assert_int_equal(dec_cmp(x->orig_qty, D(json_string_value(json_object_get(o, "q")))), 0);
            assert_int_equal(x->reduce_only, json_is_true(json_object_get(o, "R")));
            assert_int_equal(x->order_done,
                             strcmp(json_string_value(json_object_get(o, "X")), "FILLED") == 0);
            const char *ps = json_string_value(json_object_get(o, "ps"));
            assert_int_equal(x->pos_side, !strcmp(ps, "LONG") ? MKT_PS_LONG
                                          : !strcmp(ps, "SHORT") ? MKT_PS_SHORT : MKT_PS_BOTH);
            assert_int_equal(x->trade_time_ms, json_integer_value(json_object_get(o, "T")));
            assert_int_equal(x->event_time_ms, x->trade_time_ms);
            assert_int_equal(x->received_ns, 0);
        }
        json_decref(j);
    }
    if (k != n) fail_msg("the backfill had %zu fills, the stream %zu", n, k);
}

static void admin_order(const char *body) {
    char out[4096];
    long code = admin("POST", "/admin/order", body, out);
    if (code != 200) fail_msg("admin order %s: %ld %s", body, code, out);
}

static size_t fetch_fills(struct exch_account *a, const char *sym, int64_t since, struct res *x) {
    res_clear(x);
    assert_int_equal(exch_fetch_fills(a, sym, since, on_fills, x), 0);
    assert_int_equal(x->calls, 0);
    RUN_UNTIL(x->calls == 1, 20000);
    if (x->st.err) fail_msg("fetch_fills: %d %s", x->st.err, x->st.error_msg);
    return x->n;
}

static int64_t T_SINCE; /* start of the fills tests' trades */

static void test_fills_backfill(void **state) {
    (void)state;
    struct res x = {0};
    char body[512];
    T_SINCE = server_ms(E.leader) - 1;
    /* a market buy in two fills, a plain one, a reduce-only sell in three fills, a reduce-only
     * close of the rest */
    const char *c1 = cid("f1"), *c3 = cid("f3");
    snprintf(body, sizeof body, "{\"account\":\"leader\",\"symbol\":\"BTCUSDT\",\"side\":\"BUY\","
             "\"type\":\"MARKET\",\"quantity\":\"0.010\",\"clientOrderId\":\"%s\","
             "\"fills\":[\"0.004\",\"0.006\"]}", c1);
    admin_order(body);
    struct exch_order_result o = place(E.leader, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.003", NULL, false, cid("f2"));
    assert_int_equal(o.outcome, EXCH_OK);
    snprintf(body, sizeof body, "{\"account\":\"leader\",\"symbol\":\"BTCUSDT\",\"side\":\"SELL\","
             "\"type\":\"MARKET\",\"quantity\":\"0.005\",\"reduceOnly\":true,\"clientOrderId\":\"%s\","
             "\"fills\":[\"0.001\",\"0.002\",\"0.002\"]}", c3);
    admin_order(body);
    o = place(E.leader, "BTCUSDT", MKT_SELL, EXCH_MARKET, "0.008", NULL, true, cid("f4"));
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_FILLED);

    size_t n = fetch_fills(E.leader, "BTCUSDT", T_SINCE, &x);
    assert_int_equal(n, 7);
    const struct mkt_fill *f = x.arr;
    for (size_t i = 1; i < n; i++) assert_true(f[i - 1].trade_seq < f[i].trade_seq);
    /* spot checks of what the events comparison covers as a whole */
    assert_string_equal(f[0].order_client_id, c1);
    assert_dec(f[0].cum_qty, "0.004");
    assert_false(f[0].order_done);
    assert_dec(f[1].cum_qty, "0.01");
    assert_true(f[1].order_done);
    assert_string_equal(f[3].order_client_id, c3);
    assert_true(f[3].reduce_only);
    assert_dec(f[5].cum_qty, "0.005");
    assert_true(f[5].order_done);
    assert_dec(f[6].qty, "0.008");
    assert_fills_match_events(f, n, "BTCUSDT", T_SINCE);

    /* a later since leaves the older ones out; nothing yet: NULL, 0 */
    n = fetch_fills(E.leader, "BTCUSDT", f[4].trade_time_ms + 1, &x);
    assert_true(n <= 3);
    n = fetch_fills(E.leader, "BTCUSDT", server_ms(E.leader) + 60000, &x);
    assert_int_equal(n, 0);
    assert_null(x.arr);
    /* Binance needs the symbol */
    assert_int_equal(exch_fetch_fills(E.leader, NULL, T_SINCE, on_fills, &x), -EINVAL);
    res_clear(&x);
}

/* An order created before since_ms and filled after it: the order's own trades are looked up
 * (it could have filled before since_ms), cum_qty still equals the stream's z. */
static void test_fills_order_older_than_since(void **state) {
    (void)state;
    struct res x = {0};
    const char *c = cid("old");
    struct exch_order_result o = place(E.leader, "ETHUSDT", MKT_BUY, EXCH_LIMIT_GTC, "0.5", "2990", false, c);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_NEW);
    int64_t since = server_ms(E.leader) + 5;
    while (server_ms(E.leader) <= since + 1) run_for(5);
    assert_int_equal(admin("POST", "/admin/price", "{\"symbol\":\"ETHUSDT\",\"price\":\"2990\"}", NULL), 200);
    assert_int_equal(admin("POST", "/admin/price", "{\"symbol\":\"ETHUSDT\",\"price\":\"3000\"}", NULL), 200);
    o = query(E.leader, "ETHUSDT", c);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    size_t n = fetch_fills(E.leader, "ETHUSDT", since, &x);
    assert_int_equal(n, 1);
    const struct mkt_fill *f = x.arr;
    assert_string_equal(f[0].order_client_id, c);
    assert_dec(f[0].qty, "0.5");
    assert_dec(f[0].price, "2990");
    assert_dec(f[0].cum_qty, "0.5");
    assert_true(f[0].order_done);
    assert_fills_match_events(f, n, "ETHUSDT", since);
    res_clear(&x);
    o = place(E.leader, "ETHUSDT", MKT_SELL, EXCH_MARKET, "0.5", NULL, true, cid("oldc"));
    assert_int_equal(o.outcome, EXCH_OK);
}

/* Pages of 3 trades (fromId paging), 7-day windows walked from a month back, and the cap. */
static void test_fills_paging(void **state) {
    (void)state;
    struct res x = {0};
    size_t want = fetch_fills(E.leader, "BTCUSDT", T_SINCE, &x);
    assert_int_equal(want, 7);
    struct mkt_fill all[7];
    memcpy(all, x.arr, sizeof all);

    binance_fills_test_limits(3, 0);
    size_t n = fetch_fills(E.leader, "BTCUSDT", T_SINCE, &x);
    assert_int_equal(n, want);
    assert_memory_equal(x.arr, all, sizeof all);
    /* a month back: four empty windows, then the trades (pages of 3) */
    n = fetch_fills(E.leader, "BTCUSDT", T_SINCE - 30LL * 86400000, &x);
    assert_int_equal(n, want);
    assert_memory_equal(x.arr, all, sizeof all);
    binance_fills_test_limits(2, 0);
    n = fetch_fills(E.leader, "BTCUSDT", T_SINCE - 30LL * 86400000, &x);
    assert_int_equal(n, want);
    assert_memory_equal(x.arr, all, sizeof all);
    assert_fills_match_events(x.arr, n, "BTCUSDT", T_SINCE);

    /* more trades than the cap: -E2BIG, no fills */
    binance_fills_test_limits(3, 5);
    res_clear(&x);
    assert_int_equal(exch_fetch_fills(E.leader, "BTCUSDT", T_SINCE, on_fills, &x), 0);
    RUN_UNTIL(x.calls == 1, 20000);
    assert_int_equal(x.st.err, -E2BIG);
    assert_int_equal(x.n, 0);
    assert_null(x.arr);
    assert_non_null(strstr(x.st.error_msg, "more than 5 trades"));
    binance_fills_test_limits(0, 0);

    /* an exchange refusal: st says what and where */
    res_clear(&x);
    assert_int_equal(exch_fetch_fills(E.leader, "NOSUCHUSDT", T_SINCE, on_fills, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.st.err, -EREMOTEIO);
    assert_int_equal(x.st.error_code, -1121);
    assert_non_null(strstr(x.st.error_msg, "fills: userTrades: "));
    res_clear(&x);
}

static void test_book_tickers(void **state) {
    (void)state;
    struct res x = {0};
    assert_int_equal(exch_fetch_book_tickers(E.follower, on_book, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.n, 2);
    const struct exch_book_ticker *b = x.arr;
    bool btc = false, eth = false;
    for (size_t i = 0; i < x.n; i++) {
        assert_true(dec_sign(b[i].bid) > 0);
        assert_true(dec_cmp(b[i].bid, b[i].ask) <= 0);
        if (!strcmp(b[i].symbol, "BTCUSDT")) btc = true;
        if (!strcmp(b[i].symbol, "ETHUSDT")) eth = true;
    }
    assert_true(btc && eth);
    res_clear(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cancel, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_batch, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_batch_faults, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_fills_backfill, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_fills_order_older_than_since, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_fills_paging, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_book_tickers, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
