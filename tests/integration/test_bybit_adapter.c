/* The bybit-linear adapter (exchange/bybit_rest, bybit_stream) end to end against the simulator
 * (copytrader-exsim, Bybit v5 on its REST port, private websocket at /v5/private), started on a
 * random port per test run. Needs no PostgreSQL or Redis.
 *
 * The simulator binary: $CT_EXSIM, else ../exchange/sim/copytrader-exsim next to this test's
 * build directory. Every wait drives the one libuv loop (curl multi + lws guest) until a
 * condition holds or a deadline fails the test; teardown follows EVENT-LOOP.md 1.
 *
 * Covered: time sync, instruments, tickers, book tickers, wallet; place (market, limit GTC),
 * query (open, filled, unknown -> NOT_FOUND after realtime and history), duplicate orderLinkId ->
 * UNKNOWN, cancel (open -> CANCELED, filled -> its final status, unknown -> NOT_FOUND), a batch
 * with a refused item, positions, leverage (set, 110043 "not modified" = success, fetch),
 * position mode, fills backfill oldest first, usage headers, the simulator's 503-unknown and 5xx
 * faults, and the private stream: auth, subscribe, an execution -> on_fill, a position ->
 * on_position, a leverage change -> on_leverage, and an auth refusal -> DOWN with backoff. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libwebsockets.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <uv.h>

#include "bybit_rest.h"
#include "bybit_sign.h"
#include "bybit_stream.h"
#include "exchange.h"
#include "exchange_internal.h"
#include "rest_pool.h"
#include "ws_client.h"

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
    /* a quick unauthenticated-connection cut keeps the auth-timeout path testable */
    static const char *const env[] = {"EXSIM_BYBIT_AUTH_TIMEOUT_MS=5000", NULL};
    sim_proc_start(&SIM, "bybit-adapter", SIM_CONFIG, env);
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
    struct lws_context *ctx;
    struct exch_account *leader, *follower;
    struct by_stream *streams[4];
} E;

static int64_t now_ms(void) { return lw_now_ms(&E.loop); }

static void tick_cb(uv_timer_t *t) { (void)t; }

#define RUN_UNTIL(cond, ms) LW_RUN_UNTIL(&E.loop, cond, ms)

static void run_for(int ms) { lw_run_for(&E.loop, ms); }

static struct exch_account *account(const char *name, const char *key, const char *secret) {
    char rest[64], ws[96];
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", SIM.port);
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/v5/private", SIM.port);
    struct exch_account_cfg cfg = {
        .name = name, .kind = EXCH_BYBIT_LINEAR, .rest_url = rest, .ws_url = ws,
        .api_key = key, .api_secret = secret, .timeout_ms = 5000,
    };
    struct exch_account *a = exch_account_new(&cfg, E.pool);
    assert_non_null(a);
    return a;
}

static int env_setup(void **state) {
    (void)state;
    struct lws_context_creation_info info;
    void *loops[1];
    memset(&E, 0, sizeof E);
    assert_int_equal(uv_loop_init(&E.loop), 0);
    assert_int_equal(uv_timer_init(&E.loop, &E.tick), 0);
    assert_int_equal(uv_timer_start(&E.tick, tick_cb, 5, 5), 0);
    E.pool = rest_pool_new(&E.loop, NULL);
    assert_non_null(E.pool);
    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof info);
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    loops[0] = &E.loop;
    info.foreign_loops = loops;
    info.pcontext = &E.ctx;
    info.port = CONTEXT_PORT_NO_LISTEN;
    E.ctx = lws_create_context(&info);
    assert_non_null(E.ctx);
    assert_non_null(ws_client_vhost(E.ctx, NULL));
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
    for (int i = 0; i < 4; i++) E.streams[i] = bybit_stream_close(E.streams[i]);
    E.leader = exch_account_free(E.leader);
    E.follower = exch_account_free(E.follower);
    E.pool = rest_pool_free(E.pool);
    lws_context_destroy(E.ctx);
    uv_walk(&E.loop, close_tick, NULL);
    while (uv_run(&E.loop, UV_RUN_DEFAULT) != 0) {
    }
    lws_context_destroy(E.ctx);
    assert_null(E.ctx);
    uv_run(&E.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&E.loop), 0);
    return 0;
}

/* ======================================================================= callbacks */

struct res {
    int calls;
    struct exch_status st;
    struct exch_order_result o;
    struct exch_order_result v[BYBIT_BATCH_MAX];
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
static void on_instr(void *ud, const struct exch_status *st, const struct mkt_instrument *v, size_t n) {
    COPY_LIST((struct res *)ud, st, v, n);
}
static void on_pos(void *ud, const struct exch_status *st, const struct mkt_position *v, size_t n) {
    COPY_LIST((struct res *)ud, st, v, n);
}
static void on_tick(void *ud, const struct exch_status *st, const struct exch_ticker *v, size_t n) {
    COPY_LIST((struct res *)ud, st, v, n);
}
static void on_book(void *ud, const struct exch_status *st, const struct exch_book_ticker *v, size_t n) {
    COPY_LIST((struct res *)ud, st, v, n);
}
static void on_levs(void *ud, const struct exch_status *st, const struct exch_leverage *v, size_t n) {
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
static void on_setlev(void *ud, const struct exch_status *st, const char *sym, int lev) {
    struct res *x = ud;
    (void)sym;
    x->calls++;
    x->st = *st;
    x->lev = lev;
}
static void on_mode(void *ud, const struct exch_status *st, enum mkt_pos_mode m) {
    struct res *x = ud;
    x->calls++;
    x->st = *st;
    x->mode = m;
}
static void on_bal(void *ud, const struct exch_status *st, const struct exch_balance *b) {
    struct res *x = ud;
    x->calls++;
    x->st = *st;
    if (b) x->bal = *b;
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

/* A client id unique per test run: the simulator keeps orderLinkIds unique for good. */
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

static void test_market_data_and_account(void **state) {
    (void)state;
    struct res x = {0};
    assert_int_equal(exch_sync_time(E.follower, on_time, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_true(x.i64 > -2000 && x.i64 < 2000); /* same host */
    res_clear(&x);

    assert_int_equal(exch_fetch_instruments(E.follower, on_instr, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.n, 2);
    const struct mkt_instrument *in = x.arr;
    const struct mkt_instrument *btc = strcmp(in[0].symbol, "BTCUSDT") == 0 ? &in[0] : &in[1];
    assert_string_equal(btc->symbol, "BTCUSDT");
    assert_dec(btc->step, "0.001");
    assert_dec(btc->min_qty, "0.001");
    assert_dec(btc->max_qty, "1000");
    assert_dec(btc->mkt_max_qty, "120");
    assert_dec(btc->tick, "0.1");
    assert_dec(btc->min_notional, "5");
    res_clear(&x);

    assert_int_equal(exch_fetch_tickers(E.follower, on_tick, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.n, 2);
    bool seen = false;
    for (size_t i = 0; i < x.n; i++) {
        const struct exch_ticker *t = &((struct exch_ticker *)x.arr)[i];
        if (!strcmp(t->symbol, "ETHUSDT")) {
            assert_dec(t->price, "3000");
            seen = true;
        }
    }
    assert_true(seen);
    res_clear(&x);

    assert_int_equal(exch_fetch_book_tickers(E.follower, on_book, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.n, 2);
    const struct exch_book_ticker *bk = x.arr;
    assert_true(dec_sign(bk[0].bid) > 0 && dec_cmp(bk[0].bid, bk[0].ask) <= 0);
    res_clear(&x);

    assert_int_equal(exch_fetch_account(E.follower, on_bal, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_true(dec_sign(x.bal.wallet) > 0);
    assert_true(dec_sign(x.bal.equity) > 0);
    res_clear(&x);

    assert_int_equal(exch_fetch_position_mode(E.follower, on_mode, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.mode, MKT_PM_ONE_WAY);
    res_clear(&x);

    /* the signed calls fed the Bybit usage headers -- when the simulator sends them (its
     * sim_limits has them; sim_by.c did not emit them yet when this was written) */
    struct exch_bybit_usage u;
    exch_account_bybit_usage(E.follower, &u);
    if (u.updated_ms > 0) {
        assert_true(u.limit > 0);
        assert_true(u.remaining >= 0 && u.remaining <= u.limit);
    } else {
        print_message("note: the simulator sent no X-Bapi-Limit headers; usage not checked\n");
        assert_int_equal(u.limit, -1);
    }

    /* a wrong secret: 10004, reported as an exchange error */
    struct exch_account *bad = account("bad", FKEY, "wrong-secret");
    assert_int_equal(exch_fetch_account(bad, on_bal, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, -EREMOTEIO);
    assert_int_equal(x.st.error_code, 10004);
    exch_account_free(bad);
    res_clear(&x);
}

static void test_orders_query_cancel(void **state) {
    (void)state;
    /* a market order: acknowledged (NEW), then found FILLED */
    const char *m1 = cid("m1");
    struct exch_order_result o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.002", NULL, false, m1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_NEW);
    assert_string_equal(o.client_id, m1);
    assert_true(o.order_id[0] != '\0');
    char oid[MKT_ORDER_ID_MAX];
    snprintf(oid, sizeof oid, "%s", o.order_id);
    o = query(E.follower, "BTCUSDT", m1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    assert_string_equal(o.order_id, oid);
    assert_dec(o.executed_qty, "0.002");
    assert_dec(o.avg_price, "50000");

    /* the same orderLinkId again: the order exists -> UNKNOWN (query it), never a second order */
    o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.002", NULL, false, m1);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    assert_int_equal(o.error_code, BYBIT_RC_DUPLICATE_LINK_ID);

    /* refused orders */
    o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.0001", NULL, false, cid("small"));
    assert_int_equal(o.outcome, EXCH_REJECTED);
    assert_true(o.error_code != 0);
    o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_LIMIT_GTC, "0.001", "1000", false, cid("notional"));
    assert_int_equal(o.outcome, EXCH_REJECTED); /* 1 USDT < minNotionalValue 5 */
    assert_int_equal(o.error_code, 110094);
    /* an IOC limit that cannot trade: acknowledged, then reads CANCELED */
    const char *ioc = cid("ioc");
    o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_LIMIT_IOC, "0.001", "40000", false, ioc);
    assert_int_equal(o.outcome, EXCH_OK);
    o = query(E.follower, "BTCUSDT", ioc);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    assert_dec(o.executed_qty, "0");

    /* unknown everywhere: NOT_FOUND after realtime and history */
    o = query(E.follower, "BTCUSDT", cid("never"));
    assert_int_equal(o.outcome, EXCH_NOT_FOUND);

    /* a resting limit: open, cancelled, then reads CANCELED */
    const char *l1 = cid("l1");
    o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_LIMIT_GTC, "0.001", "40000", false, l1);
    assert_int_equal(o.outcome, EXCH_OK);
    o = query(E.follower, "BTCUSDT", l1);
    assert_int_equal(o.status, EXCH_ST_NEW);
    o = cancel(E.follower, "BTCUSDT", l1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    o = query(E.follower, "BTCUSDT", l1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    /* cancelling a filled order: OK with its final status (the follow-up query) */
    o = cancel(E.follower, "BTCUSDT", m1);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    /* cancelling what never existed */
    o = cancel(E.follower, "BTCUSDT", cid("ghost"));
    assert_int_equal(o.outcome, EXCH_NOT_FOUND);

    /* close the position reduce-only */
    o = place(E.follower, "BTCUSDT", MKT_SELL, EXCH_MARKET, "0.002", NULL, true, cid("close"));
    assert_int_equal(o.outcome, EXCH_OK);
    /* nothing left to reduce: refused */
    o = place(E.follower, "BTCUSDT", MKT_SELL, EXCH_MARKET, "0.002", NULL, true, cid("close2"));
    assert_int_equal(o.outcome, EXCH_REJECTED);
}

static void test_batch(void **state) {
    (void)state;
    struct res x = {0};
    const char *ids[3] = {cid("b0"), cid("b1"), cid("b2")};
    struct exch_order_req r[3] = {
        {.symbol = "ETHUSDT", .side = MKT_BUY, .type = EXCH_MARKET, .qty = D("0.1"), .client_id = ids[0]},
        {.symbol = "ETHUSDT", .side = MKT_BUY, .type = EXCH_MARKET, .qty = D("0.001"), .client_id = ids[1]},
        {.symbol = "ETHUSDT", .side = MKT_BUY, .type = EXCH_LIMIT_GTC, .qty = D("0.1"),
         .price = D("2000"), .client_id = ids[2]},
    };
    assert_int_equal(exch_batch_max(E.follower), BYBIT_BATCH_MAX);
    assert_int_equal(exch_place_batch(E.follower, r, 3, on_batch, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.n, 3);
    assert_int_equal(x.v[0].outcome, EXCH_OK);
    assert_true(x.v[0].order_id[0] != '\0');
    assert_int_equal(x.v[1].outcome, EXCH_REJECTED); /* 0.001 is off the 0.01 step */
    assert_true(x.v[1].error_code != 0);
    assert_int_equal(x.v[2].outcome, EXCH_OK);
    for (int i = 0; i < 3; i++) assert_string_equal(x.v[i].client_id, ids[i]);
    struct exch_order_result o = query(E.follower, "ETHUSDT", ids[2]);
    assert_int_equal(o.status, EXCH_ST_NEW);
    o = cancel(E.follower, "ETHUSDT", ids[2]);
    assert_int_equal(o.status, EXCH_ST_CANCELED);
    o = query(E.follower, "ETHUSDT", ids[1]);
    assert_int_equal(o.outcome, EXCH_NOT_FOUND); /* refused: never existed */
    assert_int_equal(exch_place_batch(E.follower, r, 0, on_batch, &x), -EINVAL);
    res_clear(&x);
    o = place(E.follower, "ETHUSDT", MKT_SELL, EXCH_MARKET, "0.1", NULL, true, cid("bflat"));
    assert_int_equal(o.outcome, EXCH_OK);
}

static void test_positions_leverage(void **state) {
    (void)state;
    struct res x = {0};
    struct exch_order_result o =
        place(E.follower, "ETHUSDT", MKT_SELL, EXCH_MARKET, "0.5", NULL, false, cid("short"));
    assert_int_equal(o.outcome, EXCH_OK);

    assert_int_equal(exch_set_leverage(E.follower, "ETHUSDT", 7, on_setlev, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.lev, 7);
    /* again: 110043 "not modified" is success */
    assert_int_equal(exch_set_leverage(E.follower, "ETHUSDT", 7, on_setlev, &x), 0);
    RUN_UNTIL(x.calls == 2, 5000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.lev, 7);
    assert_int_equal(exch_set_leverage(E.follower, "ETHUSDT", 126, on_setlev, &x), 0);
    RUN_UNTIL(x.calls == 3, 5000);
    assert_int_equal(x.st.err, -EREMOTEIO);
    assert_int_equal(x.lev, 0);
    res_clear(&x);

    assert_int_equal(exch_fetch_positions(E.follower, on_pos, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    const struct mkt_position *p = NULL;
    for (size_t i = 0; i < x.n; i++)
        if (!strcmp(((struct mkt_position *)x.arr)[i].symbol, "ETHUSDT")) p = &((struct mkt_position *)x.arr)[i];
    assert_non_null(p);
    assert_true(dec_sign(p->amount) < 0);
    assert_int_equal(p->pos_side, MKT_PS_BOTH);
    assert_int_equal(p->leverage, 7);
    res_clear(&x);

    assert_int_equal(exch_fetch_leverage(E.follower, on_levs, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    const struct exch_leverage *lv = x.arr;
    bool eth = false;
    for (size_t i = 0; i < x.n; i++) {
        if (i) assert_true(strcmp(lv[i - 1].symbol, lv[i].symbol) < 0);
        if (!strcmp(lv[i].symbol, "ETHUSDT")) eth = lv[i].leverage == 7;
    }
    assert_true(eth);
    res_clear(&x);
    o = place(E.follower, "ETHUSDT", MKT_BUY, EXCH_MARKET, "0.5", NULL, true, cid("flat"));
    assert_int_equal(o.outcome, EXCH_OK);
}

static void test_fills_backfill(void **state) {
    (void)state;
    struct res x = {0};
    struct res t = {0};
    assert_int_equal(exch_sync_time(E.leader, on_time, &t), 0);
    RUN_UNTIL(t.calls == 1, 5000);
    int64_t since = (int64_t)time(NULL) * 1000 + t.i64 - 1000;
    const char *a = cid("fa"), *b = cid("fb");
    assert_int_equal(place(E.leader, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.003", NULL, false, a).outcome, EXCH_OK);
    run_for(20);
    assert_int_equal(place(E.leader, "BTCUSDT", MKT_SELL, EXCH_MARKET, "0.003", NULL, true, b).outcome, EXCH_OK);

    assert_int_equal(exch_fetch_fills(E.leader, "BTCUSDT", since, on_fills, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.st.err, 0);
    const struct mkt_fill *f = x.arr;
    /* ours are the last two, oldest first */
    assert_true(x.n >= 2);
    const struct mkt_fill *fa = &f[x.n - 2], *fb = &f[x.n - 1];
    assert_string_equal(fa->order_client_id, a);
    assert_string_equal(fb->order_client_id, b);
    assert_true(fa->trade_time_ms <= fb->trade_time_ms);
    for (size_t i = 1; i < x.n; i++) assert_true(f[i - 1].trade_time_ms <= f[i].trade_time_ms);
    assert_string_equal(fa->account, "leader");
    assert_string_equal(fa->symbol, "BTCUSDT");
    assert_int_equal(fa->side, MKT_BUY);
    assert_dec(fa->qty, "0.003");
    assert_dec(fa->price, "50000");
    assert_dec(fa->orig_qty, "0.003");
    assert_dec(fa->cum_qty, "0.003");
    assert_true(fa->order_done);
    assert_false(fa->reduce_only);
    assert_true(fb->reduce_only); /* closedSize == execQty */
    assert_int_equal(fa->pos_side, MKT_PS_BOTH);
    assert_int_equal(fa->trade_seq, 0);
    assert_int_equal(fa->received_ns, 0);
    assert_true(fa->trade_id[0] && fa->order_id[0]);
    assert_string_not_equal(fa->trade_id, fb->trade_id);
    size_t all_btc = x.n;
    res_clear(&x);

    /* all symbols; and a later since leaves the older fill out */
    assert_int_equal(exch_fetch_fills(E.leader, NULL, since, on_fills, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.st.err, 0);
    assert_true(x.n >= all_btc);
    int64_t t_b = ((struct mkt_fill *)x.arr)[x.n - 1].trade_time_ms;
    res_clear(&x);
    assert_int_equal(exch_fetch_fills(E.leader, "BTCUSDT", t_b + 1, on_fills, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.n, 0);
    assert_null(x.arr);
    res_clear(&x);
}

static void test_faults(void **state) {
    (void)state;
    /* the order is placed, the answer says Server Timeout (10000): UNKNOWN, and a query finds it */
    assert_int_equal(admin("POST", "/admin/fault",
                           "{\"kind\":\"503_unknown\",\"account\":\"follower\",\"endpoint\":"
                           "\"POST /v5/order/create\",\"count\":1}", NULL), 200);
    const char *u = cid("unk");
    struct exch_order_result o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.001", NULL, false, u);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    o = query(E.follower, "BTCUSDT", u);
    assert_int_equal(o.outcome, EXCH_OK);
    assert_int_equal(o.status, EXCH_ST_FILLED);
    /* nothing handled, 10016: UNKNOWN, and a query says it does not exist */
    assert_int_equal(admin("POST", "/admin/fault",
                           "{\"kind\":\"http_5xx\",\"account\":\"follower\",\"endpoint\":"
                           "\"POST /v5/order/create\",\"count\":1}", NULL), 200);
    const char *v = cid("5xx");
    o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.001", NULL, false, v);
    assert_int_equal(o.outcome, EXCH_UNKNOWN);
    o = query(E.follower, "BTCUSDT", v);
    assert_int_equal(o.outcome, EXCH_NOT_FOUND);
    /* throttled: 10006 */
    assert_int_equal(admin("POST", "/admin/fault",
                           "{\"kind\":\"429\",\"account\":\"follower\",\"endpoint\":"
                           "\"POST /v5/order/create\",\"count\":1}", NULL), 200);
    o = place(E.follower, "BTCUSDT", MKT_BUY, EXCH_MARKET, "0.001", NULL, false, cid("thr"));
    assert_int_equal(o.outcome, EXCH_THROTTLED);
    admin("DELETE", "/admin/fault", NULL, NULL);
    o = place(E.follower, "BTCUSDT", MKT_SELL, EXCH_MARKET, "0.001", NULL, true, cid("flat"));
    assert_int_equal(o.outcome, EXCH_OK);
}

/* ---- stream ---- */

struct sev {
    int fills, positions, levs, bad, ups, downs;
    struct mkt_fill last_fill;
    struct mkt_position last_pos;
    char last_down[200];
    char lev_symbol[MKT_SYMBOL_MAX];
    int lev;
    enum exch_stream_state st;
};

static void s_fill(void *ud, const struct mkt_fill *f) {
    struct sev *s = ud;
    s->fills++;
    s->last_fill = *f;
}
static void s_pos(void *ud, const struct mkt_position *p) {
    struct sev *s = ud;
    s->positions++;
    s->last_pos = *p;
}
static void s_state(void *ud, enum exch_stream_state st, const char *why) {
    struct sev *s = ud;
    s->st = st;
    if (st == EXCH_STREAM_UP) s->ups++;
    if (st == EXCH_STREAM_DOWN) {
        s->downs++;
        snprintf(s->last_down, sizeof s->last_down, "%s", why);
    }
}
static void s_bad(void *ud, const char *why, const char *frame, size_t len) {
    struct sev *s = ud;
    (void)frame;
    (void)len;
    s->bad++;
    fail_msg("bad frame: %s", why);
}
static void s_lev(void *ud, const char *symbol, int lev) {
    struct sev *s = ud;
    s->levs++;
    snprintf(s->lev_symbol, sizeof s->lev_symbol, "%s", symbol);
    s->lev = lev;
}

static void test_stream(void **state) {
    (void)state;
    struct sev ev = {0};
    struct exch_stream_cbs cbs = {.on_fill = s_fill, .on_position = s_pos, .on_state = s_state,
                                  .on_bad_frame = s_bad, .on_leverage = s_lev, .ud = &ev};
    E.streams[0] = bybit_stream_open_account(E.leader, E.ctx, &cbs);
    assert_non_null(E.streams[0]);
    RUN_UNTIL(ev.st == EXCH_STREAM_UP, 10000);
    struct by_stream_stats st = bybit_stream_stats(E.streams[0]);
    assert_int_equal(st.auths, 1);

    const char *c = cid("sf");
    int64_t before_ns;
    {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        before_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    struct exch_order_result o = place(E.leader, "ETHUSDT", MKT_BUY, EXCH_MARKET, "0.2", NULL, false, c);
    assert_int_equal(o.outcome, EXCH_OK);
    RUN_UNTIL(ev.fills >= 1 && ev.positions >= 1, 5000);
    assert_string_equal(ev.last_fill.account, "leader");
    assert_string_equal(ev.last_fill.symbol, "ETHUSDT");
    assert_string_equal(ev.last_fill.order_client_id, c);
    assert_string_equal(ev.last_fill.order_id, o.order_id);
    assert_int_equal(ev.last_fill.side, MKT_BUY);
    assert_dec(ev.last_fill.qty, "0.2");
    assert_dec(ev.last_fill.price, "3000");
    assert_true(ev.last_fill.order_done);
    assert_false(ev.last_fill.reduce_only);
    assert_int_equal(ev.last_fill.pos_side, MKT_PS_BOTH);
    assert_true(ev.last_fill.received_ns >= before_ns);
    assert_true(ev.last_fill.trade_time_ms > 0 && ev.last_fill.event_time_ms > 0);
    RUN_UNTIL(!strcmp(ev.last_pos.symbol, "ETHUSDT") && dec_sign(ev.last_pos.amount) > 0, 5000);
    assert_dec(ev.last_pos.amount, "0.2");
    assert_true(ev.last_pos.leverage > 0);

    /* the backfill sees the same fill under the same trade id */
    struct res x = {0};
    assert_int_equal(exch_fetch_fills(E.leader, "ETHUSDT", ev.last_fill.trade_time_ms, on_fills, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.st.err, 0);
    assert_true(x.n >= 1);
    assert_string_equal(((struct mkt_fill *)x.arr)[x.n - 1].trade_id, ev.last_fill.trade_id);
    res_clear(&x);

    /* the owner changes the leverage: on_leverage */
    int lev_before = ev.last_pos.leverage;
    int want = lev_before == 9 ? 8 : 9;
    struct res l = {0};
    assert_int_equal(exch_set_leverage(E.leader, "ETHUSDT", want, on_setlev, &l), 0);
    RUN_UNTIL(l.calls == 1, 5000);
    assert_int_equal(l.st.err, 0);
    RUN_UNTIL(ev.levs >= 1, 5000);
    assert_string_equal(ev.lev_symbol, "ETHUSDT");
    assert_int_equal(ev.lev, want);

    /* app-level pings are answered */
    o = place(E.leader, "ETHUSDT", MKT_SELL, EXCH_MARKET, "0.2", NULL, true, cid("sc"));
    assert_int_equal(o.outcome, EXCH_OK);
    RUN_UNTIL(ev.fills >= 2, 5000);
    assert_true(ev.last_fill.reduce_only);
    assert_int_equal(ev.bad, 0);
    assert_int_equal(ev.downs, 0);
    E.streams[0] = bybit_stream_close(E.streams[0]);
}

/* An auth frame signed with the secret in ud (leader's key). */
static int test_auth_frame(void *ud, int64_t expires, char *buf, size_t cap) {
    const char *secret = ud;
    char pre[64], sig[BYBIT_SIG_HEX_LEN + 1];
    int n = bybit_ws_prehash(pre, sizeof pre, expires);
    if (n < 0) return n;
    if (bybit_sign_hex(secret, strlen(secret), pre, (size_t)n, sig) < 0) return -EIO;
    return bybit_ws_auth_frame(buf, cap, LKEY, expires, sig);
}

static void test_stream_ping(void **state) {
    (void)state;
    struct sev ev = {0};
    struct exch_stream_cbs cbs = {.on_fill = s_fill, .on_position = s_pos, .on_state = s_state,
                                  .on_bad_frame = s_bad, .ud = &ev};
    struct by_stream_cfg cfg;
    char ws[96];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/v5/private", SIM.port);
    memset(&cfg, 0, sizeof cfg);
    cfg.account = "leader";
    cfg.ws_url = ws;
    cfg.ping_ms = 200;
    cfg.silence_ms = 3000;
    cfg.auth_frame = test_auth_frame;
    cfg.auth_ud = (void *)LSECRET;
    E.streams[1] = bybit_stream_open(&cfg, E.ctx, &cbs);
    assert_non_null(E.streams[1]);
    RUN_UNTIL(ev.st == EXCH_STREAM_UP, 10000);
    RUN_UNTIL(bybit_stream_stats(E.streams[1]).pongs >= 3, 5000);
    assert_true(bybit_stream_stats(E.streams[1]).pings >= 3);
    assert_int_equal(ev.downs, 0);
}

static void test_stream_auth_refused(void **state) {
    (void)state;
    struct sev ev = {0};
    struct exch_stream_cbs cbs = {.on_fill = s_fill, .on_state = s_state, .on_bad_frame = s_bad,
                                  .ud = &ev};
    struct by_stream_cfg cfg;
    char ws[96];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/v5/private", SIM.port);
    memset(&cfg, 0, sizeof cfg);
    cfg.account = "leader";
    cfg.ws_url = ws;
    cfg.auth_frame = test_auth_frame;
    cfg.auth_ud = (void *)"not-the-secret";
    cfg.backoff_min_ms = 100;
    cfg.backoff_max_ms = 400;
    int64_t t0 = now_ms();
    E.streams[2] = bybit_stream_open(&cfg, E.ctx, &cbs);
    assert_non_null(E.streams[2]);
    RUN_UNTIL(bybit_stream_stats(E.streams[2]).auth_failures >= 3, 10000);
    int64_t took = now_ms() - t0;
    assert_int_equal(ev.ups, 0);
    assert_true(ev.downs >= 1);
    assert_non_null(strstr(ev.last_down, "auth failed"));
    assert_int_equal(ev.st, EXCH_STREAM_DOWN);
    /* three refusals with >= 2 backoff waits between them (>= 80 ms and >= 160 ms jittered) */
    assert_true(took >= 200);
    /* the refused connection gets no events */
    assert_int_equal(place(E.leader, "ETHUSDT", MKT_BUY, EXCH_MARKET, "0.01", NULL, false, cid("x")).outcome, EXCH_OK);
    run_for(200);
    assert_int_equal(ev.fills, 0);
    assert_int_equal(place(E.leader, "ETHUSDT", MKT_SELL, EXCH_MARKET, "0.01", NULL, true, cid("y")).outcome, EXCH_OK);
}

static struct exch_order_result place_ps(struct exch_account *a, const char *sym, enum mkt_side side,
                                         const char *qty, enum mkt_pos_side ps, const char *c) {
    struct res x = {0};
    struct exch_order_req r = {.symbol = sym, .side = side, .type = EXCH_MARKET, .qty = D(qty),
                               .client_id = c, .pos_side = ps};
    assert_int_equal(exch_place_order(a, &r, on_order, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    return x.o;
}

/* A hedge-mode leader: Bybit's executions carry no positionIdx, so the side of each fill comes
 * from the account's mode and closedSize (bybit_exec_apply_mode), on the stream and in the
 * backfill alike. */
static void test_hedge_mode(void **state) {
    (void)state;
    struct exch_account *h = account("hedger", HKEY, HSECRET);
    struct res x = {0};
    assert_int_equal(exch_fetch_position_mode(h, on_mode, &x), 0);
    RUN_UNTIL(x.calls == 1, 5000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.mode, MKT_PM_HEDGE); /* no positions yet: read from the probe symbol */
    res_clear(&x);

    struct sev ev = {0};
    struct exch_stream_cbs cbs = {.on_fill = s_fill, .on_position = s_pos, .on_state = s_state,
                                  .on_bad_frame = s_bad, .ud = &ev};
    E.streams[3] = bybit_stream_open_account(h, E.ctx, &cbs);
    assert_non_null(E.streams[3]);
    RUN_UNTIL(ev.st == EXCH_STREAM_UP, 10000);
    struct res t = {0};
    assert_int_equal(exch_sync_time(h, on_time, &t), 0);
    RUN_UNTIL(t.calls == 1, 5000);
    int64_t since = (int64_t)time(NULL) * 1000 + t.i64 - 1000;

    struct {
        enum mkt_side side;
        enum mkt_pos_side ps;
        bool closes;
    } steps[] = {
        {MKT_BUY, MKT_PS_LONG, false},   /* open long */
        {MKT_SELL, MKT_PS_SHORT, false}, /* open short */
        {MKT_SELL, MKT_PS_LONG, true},   /* close long */
        {MKT_BUY, MKT_PS_SHORT, true},   /* close short */
    };
    for (int i = 0; i < 4; i++) {
        int before = ev.fills;
        struct exch_order_result o = place_ps(h, "ETHUSDT", steps[i].side, "0.1", steps[i].ps, cid("h"));
        assert_int_equal(o.outcome, EXCH_OK);
        RUN_UNTIL(ev.fills == before + 1, 5000);
        if (ev.last_fill.pos_side != steps[i].ps)
            fail_msg("step %d: stream pos_side %d, want %d", i, ev.last_fill.pos_side, steps[i].ps);
        assert_int_equal(ev.last_fill.reduce_only, steps[i].closes);
        if (i == 1) {
            /* both legs open: LONG and SHORT entries */
            assert_int_equal(exch_fetch_positions(h, on_pos, &x), 0);
            RUN_UNTIL(x.calls == 1, 5000);
            assert_int_equal(x.st.err, 0);
            assert_int_equal(x.n, 2);
            const struct mkt_position *p = x.arr;
            for (int k = 0; k < 2; k++) {
                if (p[k].pos_side == MKT_PS_LONG) assert_dec(p[k].amount, "0.1");
                else if (p[k].pos_side == MKT_PS_SHORT) assert_dec(p[k].amount, "-0.1");
                else fail_msg("position %d: side %d", k, p[k].pos_side);
            }
            res_clear(&x);
        }
    }
    assert_int_equal(exch_fetch_fills(h, "ETHUSDT", since, on_fills, &x), 0);
    RUN_UNTIL(x.calls == 1, 10000);
    assert_int_equal(x.st.err, 0);
    assert_int_equal(x.n, 4);
    const struct mkt_fill *f = x.arr;
    for (int i = 0; i < 4; i++) {
        if (f[i].pos_side != steps[i].ps)
            fail_msg("backfill %d: pos_side %d, want %d", i, f[i].pos_side, steps[i].ps);
        assert_int_equal(f[i].side, steps[i].side);
        assert_int_equal(f[i].reduce_only, steps[i].closes);
    }
    res_clear(&x);
    E.streams[3] = bybit_stream_close(E.streams[3]);
    exch_account_free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_market_data_and_account, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_orders_query_cancel, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_batch, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_positions_leverage, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_fills_backfill, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_faults, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_stream, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_stream_ping, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_stream_auth_refused, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_hedge_mode, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
