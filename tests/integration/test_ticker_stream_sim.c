/* exch_ticker_stream (exchange/ticker_stream.c) end to end against the simulator: a Binance
 * market stream (/public/stream?streams=..@bookTicker, derived from a ".../private" ws_url) and a
 * Bybit public stream (/v5/public/linear tickers.<symbol>) on two symbols each. Needs no
 * PostgreSQL or Redis.
 *
 * Covered: the first tickers (bid = ask = last = the simulator's price), new bid/ask/last after
 * POST /admin/price on each symbol, a lost connection (the simulator is stopped, then started
 * again on the same port: the stream goes DOWN, reconnects with its backoff, subscribes again and
 * delivers the restarted simulator's prices), refused subscriptions (DOWN with the reason, no UP)
 * and bad arguments. (The simulator's ws_drop fault acts on private streams only; the restart is
 * the harder case anyway: every connection and subscription is gone.) */
#include <errno.h>
#include <libwebsockets.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "exchange.h"
#include "rest_pool.h"
#include "ws_client.h"

#include "loop_wait.h"
#include "sim_proc.h"

#define KEY "leaderKEY0001"
#define SECRET "leaderSECRET0000000000000000000001"

static struct sim_proc SIM;

static void sim_config(char *buf, size_t n, int port) {
    snprintf(buf, n,
             "{\"port\":%d,\"accounts\":[{\"name\":\"leader\",\"api_key\":\"" KEY "\",\"api_secret\":\"" SECRET
             "\",\"balance\":\"1000\"}],\"symbols\":["
             "{\"symbol\":\"BTCUSDT\",\"price\":\"50000\",\"step_size\":\"0.001\",\"tick_size\":\"0.10\"},"
             "{\"symbol\":\"ETHUSDT\",\"price\":\"3000\",\"step_size\":\"0.01\",\"tick_size\":\"0.01\"}]}",
             port);
}

static int sim_start(void **state) {
    char cfg[1024];
    (void)state;
    sim_config(cfg, sizeof cfg, 0);
    sim_proc_start(&SIM, "ticker-stream", cfg, NULL);
    return 0;
}

static int sim_stop(void **state) {
    (void)state;
    sim_proc_stop(&SIM);
    return 0;
}

static void set_price(const char *sym, const char *price) {
    char body[128];
    snprintf(body, sizeof body, "{\"symbol\":\"%s\",\"price\":\"%s\"}", sym, price);
    assert_int_equal(sim_proc_admin(&SIM, "POST", "/admin/price", body, NULL), 200);
}

/* ======================================================================= loop environment */

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    struct rest_pool *pool;
    struct lws_context *ctx;
} E;

static void tick_cb(uv_timer_t *t) { (void)t; }

#define RUN_UNTIL(cond, ms) LW_RUN_UNTIL(&E.loop, cond, ms)

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
    return 0;
}

static void close_tick(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h) && h == (uv_handle_t *)&E.tick) uv_close(h, NULL);
}

static int env_teardown(void **state) {
    (void)state;
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

static struct exch_account *account(enum exch_kind kind) {
    char rest[64], ws[96];
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", SIM.port);
    /* the real hosts' shapes: Binance's routed ".../private", Bybit's ".../v5/private" */
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d%s", SIM.port,
             kind == EXCH_BINANCE_USDM ? "/private" : "/v5/private");
    struct exch_account_cfg cfg = {
        .name = kind == EXCH_BINANCE_USDM ? "bn" : "by", .kind = kind, .rest_url = rest, .ws_url = ws,
        .api_key = KEY, .api_secret = SECRET,
    };
    struct exch_account *a = exch_account_new(&cfg, E.pool);
    assert_non_null(a);
    return a;
}

/* ======================================================================= recorder */

struct rec {
    enum exch_stream_state st;
    int ups, downs, updates, bad;
    char reason[192];
    struct exch_ticker_update t[2]; /* BTCUSDT, ETHUSDT */
    int n[2];
};

static void on_ticker(void *ud, const struct exch_ticker_update *t) {
    struct rec *r = ud;
    int i = !strcmp(t->symbol, "BTCUSDT") ? 0 : !strcmp(t->symbol, "ETHUSDT") ? 1 : -1;
    if (i < 0) fail_msg("ticker of a symbol not asked for: %s", t->symbol);
    r->t[i] = *t;
    r->n[i]++;
    r->updates++;
}

static void on_bad_frame(void *ud, const char *why, const char *frame, size_t len) {
    struct rec *r = ud;
    r->bad++;
    fail_msg("bad frame: %s: %.*s", why, (int)(len > 300 ? 300 : len), frame);
}

static void on_state(void *ud, enum exch_stream_state st, const char *reason) {
    struct rec *r = ud;
    r->st = st;
    if (st == EXCH_STREAM_UP) r->ups++;
    if (st == EXCH_STREAM_DOWN) r->downs++;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

static bool is(dec_t d, const char *want) {
    char buf[DEC_STR_MAX];
    return dec_format(d, buf, sizeof buf) > 0 && !strcmp(buf, want);
}

/* Every field of the symbol's last ticker equals price (the simulator has no spread). */
static bool at(const struct rec *r, int i, const char *price) {
    return r->n[i] > 0 && is(r->t[i].last, price) && is(r->t[i].bid, price) && is(r->t[i].ask, price) &&
           r->t[i].time_ms > 0;
}

static const char *const SYMS[] = {"BTCUSDT", "ETHUSDT"};

/* ======================================================================= tests */

static void test_prices_and_reconnect(void **state) {
    (void)state;
    struct exch_account *bn = account(EXCH_BINANCE_USDM), *by = account(EXCH_BYBIT_LINEAR);
    struct rec rb, ry;
    memset(&rb, 0, sizeof rb);
    memset(&ry, 0, sizeof ry);
    struct exch_ticker_stream_cbs cb_b = {.on_ticker = on_ticker, .on_state = on_state, .ud = &rb,
                                          .on_bad_frame = on_bad_frame};
    struct exch_ticker_stream_cbs cb_y = cb_b;
    cb_y.ud = &ry;
    struct exch_ticker_stream *sb = exch_ticker_stream_open(bn, E.ctx, SYMS, 2, &cb_b);
    struct exch_ticker_stream *sy = exch_ticker_stream_open(by, E.ctx, SYMS, 2, &cb_y);
    assert_non_null(sb);
    assert_non_null(sy);

    /* first tickers: the simulator's configured prices */
    RUN_UNTIL(rb.ups == 1 && ry.ups == 1, 5000);
    assert_int_equal(exch_ticker_stream_state(sb), EXCH_STREAM_UP);
    assert_int_equal(exch_ticker_stream_state(sy), EXCH_STREAM_UP);
    RUN_UNTIL(at(&rb, 0, "50000") && at(&rb, 1, "3000") && at(&ry, 0, "50000") && at(&ry, 1, "3000"), 5000);

    /* price moves reach both streams, per symbol */
    set_price("BTCUSDT", "50123.4");
    RUN_UNTIL(at(&rb, 0, "50123.4") && at(&ry, 0, "50123.4"), 5000);
    assert_true(at(&rb, 1, "3000") && at(&ry, 1, "3000"));
    set_price("ETHUSDT", "2990.55");
    RUN_UNTIL(at(&rb, 1, "2990.55") && at(&ry, 1, "2990.55"), 5000);
    assert_true(at(&rb, 0, "50123.4") && at(&ry, 0, "50123.4"));
    set_price("BTCUSDT", "49000");
    RUN_UNTIL(at(&rb, 0, "49000") && at(&ry, 0, "49000"), 5000);

    /* the connection is lost: the simulator goes away and comes back on the same port with its
     * configured prices; both streams reconnect, subscribe again and deliver them */
    int port = SIM.port;
    sim_proc_stop(&SIM);
    RUN_UNTIL(rb.downs >= 1 && ry.downs >= 1, 10000);
    assert_int_equal(exch_ticker_stream_state(sb), EXCH_STREAM_DOWN);
    assert_int_equal(exch_ticker_stream_state(sy), EXCH_STREAM_DOWN);
    lw_run_for(&E.loop, 300); /* a failed reconnect attempt or two */
    char cfg[1024];
    sim_config(cfg, sizeof cfg, port);
    sim_proc_start(&SIM, "ticker-stream", cfg, NULL);
    assert_int_equal(SIM.port, port);
    RUN_UNTIL(rb.ups == 2 && ry.ups == 2, 15000);
    RUN_UNTIL(at(&rb, 0, "50000") && at(&rb, 1, "3000") && at(&ry, 0, "50000") && at(&ry, 1, "3000"), 5000);
    set_price("ETHUSDT", "3333.33");
    RUN_UNTIL(at(&rb, 1, "3333.33") && at(&ry, 1, "3333.33"), 5000);

    sb = exch_ticker_stream_close(sb);
    sy = exch_ticker_stream_close(sy);
    assert_null(sb);
    int before = rb.updates + ry.updates;
    set_price("ETHUSDT", "3334");
    lw_run_for(&E.loop, 300);
    assert_int_equal(rb.updates + ry.updates, before); /* nothing after close */
    exch_account_free(bn);
    exch_account_free(by);
}

static void test_refused(void **state) {
    (void)state;
    struct exch_account *bn = account(EXCH_BINANCE_USDM), *by = account(EXCH_BYBIT_LINEAR);
    struct rec rb, ry;
    memset(&rb, 0, sizeof rb);
    memset(&ry, 0, sizeof ry);
    static const char *const bad[] = {"BTCUSDT", "NOPEUSDT"};
    struct exch_ticker_stream_cbs cb_b = {.on_ticker = on_ticker, .on_state = on_state, .ud = &rb,
                                          .on_bad_frame = on_bad_frame};
    struct exch_ticker_stream_cbs cb_y = cb_b;
    cb_y.ud = &ry;
    struct exch_ticker_stream *sb = exch_ticker_stream_open(bn, E.ctx, bad, 2, &cb_b);
    struct exch_ticker_stream *sy = exch_ticker_stream_open(by, E.ctx, bad, 2, &cb_y);
    assert_non_null(sb);
    assert_non_null(sy);
    /* Binance: the simulator refuses the upgrade (unknown stream); Bybit: the subscription */
    RUN_UNTIL(rb.downs >= 1 && ry.downs >= 1, 5000);
    assert_non_null(strstr(ry.reason, "subscribe refused: Invalid symbol"));
    assert_true(rb.reason[0] != '\0');
    lw_run_for(&E.loop, 1000); /* retried with backoff, never UP */
    assert_int_equal(rb.ups + ry.ups, 0);
    assert_int_not_equal(exch_ticker_stream_state(sb), EXCH_STREAM_UP);
    assert_int_not_equal(exch_ticker_stream_state(sy), EXCH_STREAM_UP);
    assert_true(rb.downs >= 2); /* Binance: the upgrade refused again after the backoff */
    exch_ticker_stream_close(sb);
    exch_ticker_stream_close(sy);
    exch_account_free(bn);
    exch_account_free(by);
}

static void test_bad_args(void **state) {
    (void)state;
    struct exch_account *bn = account(EXCH_BINANCE_USDM);
    struct rec r;
    struct exch_ticker_stream_cbs cbs = {.on_ticker = on_ticker, .ud = &r}, none = {.ud = &r};
    static const char *const bad_sym[] = {"BTC/USDT"};
    errno = 0;
    assert_null(exch_ticker_stream_open(bn, E.ctx, bad_sym, 1, &cbs));
    assert_int_equal(errno, EINVAL);
    assert_null(exch_ticker_stream_open(bn, E.ctx, SYMS, 0, &cbs));
    assert_int_equal(errno, EINVAL);
    assert_null(exch_ticker_stream_open(bn, E.ctx, SYMS, 2, &none));
    assert_int_equal(errno, EINVAL);
    assert_null(exch_ticker_stream_open(NULL, E.ctx, SYMS, 2, &cbs));
    assert_int_equal(errno, EINVAL);
    assert_null(exch_ticker_stream_close(NULL));
    assert_int_equal(exch_ticker_stream_state(NULL), EXCH_STREAM_DOWN);
    exch_account_free(bn);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_args, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_refused, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_prices_and_reconnect, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, sim_start, sim_stop);
}
