/* What the daemon's per-account start-up costs in Binance request weight, and the positionRisk
 * sharing that makes it cheap (exchange/binance_rest: positions, position mode and leverage from
 * ONE GET /fapi/v2/positionRisk), end to end against the simulator (copytrader-exsim, started on
 * a random port). Needs no PostgreSQL or Redis.
 *
 * The simulator binary: $CT_EXSIM, else ../exchange/sim/copytrader-exsim next to this test's
 * build directory. Every wait drives the libuv loop until a condition holds or a deadline fails
 * the test.
 *
 * Covered:
 * - 50 accounts (one-way and hedge, some with positions, some with changed leverage) run the
 *   daemon's sequence (time -> positions -> mode -> leverage -> account, each step from the
 *   previous one's callback, all accounts at once): the weight the simulator reports
 *   (X-MBX-USED-WEIGHT-1M) is at most 21 per account, the server time is asked once for all
 *   the accounts, and mode, positions and leverage equal what the old calls (GET
 *   positionSide/dual, GET v2 positionRisk, sent by this test) return.
 *   The old request sequence is measured too, for the record.
 * - one account: calls made together share one request; a call within the TTL reuses the
 *   answer (never from inside the call); an order result drops it (the new position shows); TTL
 *   0 means a new request per call; an HTTP error is shared by the calls that joined, never
 *   kept; a closed account gets -ESHUTDOWN.
 * - the fallback: a positionRisk without entries (a small server of this test, the simulator
 *   always lists every symbol) makes the mode call ask positionSide/dual. */
#include <errno.h>
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

#define N_ACCTS 50
#define MAX_WEIGHT_PER_ACCT 21
#define N_SYMS 3 /* BTCUSDT, ETHUSDT, SOLUSDT */

static bool acct_hedge(int i) { return i % 3 == 1; }
static void acct_name(int i, char *b, size_t cap) { snprintf(b, cap, "acct%02d", i); }
static void acct_key(int i, char *b, size_t cap) { snprintf(b, cap, "costKEY%04d", i); }
static void acct_secret(int i, char *b, size_t cap) {
    snprintf(b, cap, "costSECRET%04d00000000000000000000", i);
}

/* ======================================================================= simulator process */

static struct sim_proc SIM;

static char *sim_config(void) {
    static char cfg[32768];
    size_t o = 0;
    o += (size_t)snprintf(cfg + o, sizeof cfg - o, "{\"accounts\":[");
    for (int i = 0; i < N_ACCTS; i++) {
        char name[32], key[64], sec[64];
        acct_name(i, name, sizeof name);
        acct_key(i, key, sizeof key);
        acct_secret(i, sec, sizeof sec);
        o += (size_t)snprintf(cfg + o, sizeof cfg - o,
                              "%s{\"name\":\"%s\",\"api_key\":\"%s\",\"api_secret\":\"%s\","
                              "\"balance\":\"%d\",\"position_mode\":\"%s\",\"leverage\":%d}",
                              i ? "," : "", name, key, sec, 10000 + i, acct_hedge(i) ? "hedge" : "oneway",
                              10 + i % 7);
    }
    o += (size_t)snprintf(
        cfg + o, sizeof cfg - o,
        "],\"symbols\":["
        "{\"symbol\":\"BTCUSDT\",\"price\":\"50000\",\"step_size\":\"0.001\",\"tick_size\":\"0.10\"},"
        "{\"symbol\":\"ETHUSDT\",\"price\":\"3000\",\"step_size\":\"0.01\",\"tick_size\":\"0.01\"},"
        "{\"symbol\":\"SOLUSDT\",\"price\":\"150\",\"step_size\":\"0.1\",\"tick_size\":\"0.01\"}]}");
    assert_true(o < sizeof cfg);
    return cfg;
}

static int sim_start(void **state) {
    (void)state;
    sim_proc_start(&SIM, "binance-startup-cost", sim_config(), NULL);
    return 0;
}

static int sim_stop(void **state) {
    (void)state;
    sim_proc_stop(&SIM);
    return 0;
}

/* ======================================================================= blocking HTTP */

#define BODY_MAX (1 << 20)

struct sink {
    char *b;
    size_t len;
    int64_t weight; /* X-MBX-USED-WEIGHT-1M, -1 if absent */
};

static size_t sink_write(char *p, size_t sz, size_t n, void *ud) {
    struct sink *s = ud;
    size_t add = sz * n;
    if (s->len + add >= BODY_MAX) add = BODY_MAX - 1 - s->len;
    memcpy(s->b + s->len, p, add);
    s->len += add;
    s->b[s->len] = '\0';
    return sz * n;
}

static size_t sink_header(char *p, size_t sz, size_t n, void *ud) {
    struct sink *s = ud;
    size_t l = sz * n;
    static const char h[] = "x-mbx-used-weight-1m:";
    if (l > sizeof h - 1 && strncasecmp(p, h, sizeof h - 1) == 0) {
        char v[32];
        size_t vl = l - (sizeof h - 1);
        if (vl >= sizeof v) vl = sizeof v - 1;
        memcpy(v, p + sizeof h - 1, vl);
        v[vl] = '\0';
        s->weight = strtoll(v, NULL, 10);
    }
    return l;
}

/* method url [body] [api key header] -> status; body into s (malloc'd, free s->b). */
static long http(const char *method, const char *url, const char *body, const char *key,
                 struct sink *s) {
    long code = 0;
    struct curl_slist *h = NULL;
    char kh[128];
    s->b = malloc(BODY_MAX);
    assert_non_null(s->b);
    s->b[0] = '\0';
    s->len = 0;
    s->weight = -1;
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (key) {
        snprintf(kh, sizeof kh, "X-MBX-APIKEY: %s", key);
        h = curl_slist_append(h, kh);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sink_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (curl_easy_perform(c) != CURLE_OK) fail_msg("%s %s failed", method, url);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return code;
}

static void admin(const char *method, const char *path, const char *body) {
    char url[256];
    struct sink s;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", SIM.admin_port, path);
    long code = http(method, url, body, NULL, &s);
    if (code != 200) fail_msg("admin %s %s: HTTP %ld %s", method, path, code, s.b);
    free(s.b);
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An old-style call sent by the test itself: signed GET of path as account a (key). Returns the
 * weight the simulator reported; body into s. */
static int64_t old_call(struct exch_account *a, const char *key, const char *path, bool sign,
                        struct sink *s) {
    char qs[BINANCE_QS_MAX] = "", url[BINANCE_QS_MAX + 256];
    int len = 0;
    if (sign) {
        len = binance_sign_params(a, qs, sizeof qs, 0, 5000,
                                  wall_ms() + exch_account_time_offset_ms(a));
        assert_true(len > 0);
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s%s%s", SIM.port, path, len ? "?" : "", qs);
    long code = http("GET", url, NULL, sign ? key : NULL, s);
    if (code != 200) fail_msg("GET %s: HTTP %ld %s", path, code, s->b);
    return s->weight;
}

/* ======================================================================= loop environment */

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    struct rest_pool *pool;
    struct exch_account *acct[N_ACCTS];
} E;


static void tick_cb(uv_timer_t *t) { (void)t; }

#define RUN_UNTIL(cond, ms) LW_RUN_UNTIL(&E.loop, cond, ms)

static struct exch_account *account_at(const char *rest_url, int i) {
    char name[32], key[64], sec[64];
    acct_name(i, name, sizeof name);
    acct_key(i, key, sizeof key);
    acct_secret(i, sec, sizeof sec);
    struct exch_account_cfg cfg = {
        .name = name, .kind = EXCH_BINANCE_USDM, .rest_url = rest_url,
        .api_key = key, .api_secret = sec, .timeout_ms = 5000,
    };
    struct exch_account *a = exch_account_new(&cfg, E.pool);
    assert_non_null(a);
    return a;
}

static int env_setup(void **state) {
    (void)state;
    char rest[64];
    memset(&E, 0, sizeof E);
    assert_int_equal(uv_loop_init(&E.loop), 0);
    assert_int_equal(uv_timer_init(&E.loop, &E.tick), 0);
    assert_int_equal(uv_timer_start(&E.tick, tick_cb, 5, 5), 0);
    E.pool = rest_pool_new(&E.loop, NULL);
    assert_non_null(E.pool);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", SIM.port);
    for (int i = 0; i < N_ACCTS; i++) E.acct[i] = account_at(rest, i);
    admin("POST", "/admin/limits/reset", "{}");
    admin("DELETE", "/admin/fault", NULL);
    binance_risk_test_ttl(-1);
    return 0;
}

static void close_tick(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h) && h == (uv_handle_t *)&E.tick) uv_close(h, NULL);
}

static int env_teardown(void **state) {
    (void)state;
    binance_risk_test_ttl(-1);
    for (int i = 0; i < N_ACCTS; i++) E.acct[i] = exch_account_free(E.acct[i]);
    E.pool = rest_pool_free(E.pool);
    uv_walk(&E.loop, close_tick, NULL);
    while (uv_run(&E.loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&E.loop), 0);
    return 0;
}

static uint64_t pool_requests(void) {
    struct rest_pool_stats st;
    rest_pool_get_stats(E.pool, &st);
    return st.requests;
}

/* ======================================================================= the daemon's sequence */

struct seq {
    struct exch_account *a;
    int step; /* 0 time, 1 positions, 2 mode, 3 leverage, 4 account, 5 done */
    bool done, in_call;
    int sync_callbacks; /* callbacks that ran inside the call that asked for them */
    struct exch_status fail;
    int fail_step;
    struct mkt_position *pos;
    size_t n_pos;
    struct exch_leverage *lev;
    size_t n_lev;
    enum mkt_pos_mode mode;
    dec_t equity;
};

static void seq_next(struct seq *s);

static bool seq_failed(struct seq *s, const struct exch_status *st) {
    if (s->in_call) s->sync_callbacks++;
    if (!st->err) return false;
    s->fail = *st;
    s->fail_step = s->step;
    s->done = true;
    return true;
}

static void q_time(void *ud, const struct exch_status *st, int64_t off) {
    struct seq *s = ud;
    (void)off;
    if (seq_failed(s, st)) return;
    s->step = 1;
    seq_next(s);
}
static void q_pos(void *ud, const struct exch_status *st, const struct mkt_position *v, size_t n) {
    struct seq *s = ud;
    if (seq_failed(s, st)) return;
    free(s->pos);
    s->pos = n ? malloc(n * sizeof *v) : NULL;
    if (n) memcpy(s->pos, v, n * sizeof *v);
    s->n_pos = n;
    s->step = 2;
    seq_next(s);
}
static void q_mode(void *ud, const struct exch_status *st, enum mkt_pos_mode m) {
    struct seq *s = ud;
    if (seq_failed(s, st)) return;
    s->mode = m;
    s->step = 3;
    seq_next(s);
}
static void q_lev(void *ud, const struct exch_status *st, const struct exch_leverage *v, size_t n) {
    struct seq *s = ud;
    if (seq_failed(s, st)) return;
    free(s->lev);
    s->lev = n ? malloc(n * sizeof *v) : NULL;
    if (n) memcpy(s->lev, v, n * sizeof *v);
    s->n_lev = n;
    s->step = 4;
    seq_next(s);
}
static void q_bal(void *ud, const struct exch_status *st, const struct exch_balance *b) {
    struct seq *s = ud;
    if (seq_failed(s, st)) return;
    s->equity = b->equity;
    s->step = 5;
    s->done = true;
}

static void seq_next(struct seq *s) {
    int r = -EINVAL;
    s->in_call = true;
    switch (s->step) {
    case 0: r = exch_sync_time(s->a, q_time, s); break;
    case 1: r = exch_fetch_positions(s->a, q_pos, s); break;
    case 2: r = exch_fetch_position_mode(s->a, q_mode, s); break;
    case 3: r = exch_fetch_leverage(s->a, q_lev, s); break;
    case 4: r = exch_fetch_account(s->a, q_bal, s); break;
    }
    s->in_call = false;
    if (r < 0) fail_msg("%s: step %d could not be issued: %d", exch_account_name(s->a), s->step, r);
}

static void seq_clear(struct seq *s) {
    free(s->pos);
    free(s->lev);
    memset(s, 0, sizeof *s);
}

static bool all_done(struct seq *v, int n) {
    for (int i = 0; i < n; i++)
        if (!v[i].done) return false;
    return true;
}

/* Opens positions and changes leverage on some accounts through the admin API, so the accounts
 * differ: one-way accounts i % 4 == 0 long BTC, i % 4 == 2 short ETH; hedge accounts LONG BTC
 * and SHORT ETH at once on i % 4 == 1; SOLUSDT leverage 3 + i % 40 on i % 5 == 0. */
static void shape_accounts(void) {
    static bool shaped;
    char body[512], name[32];
    if (shaped) return;
    shaped = true;
    for (int i = 0; i < N_ACCTS; i++) {
        acct_name(i, name, sizeof name);
        if (!acct_hedge(i) && i % 4 == 0) {
            snprintf(body, sizeof body, "{\"account\":\"%s\",\"symbol\":\"BTCUSDT\",\"side\":\"BUY\","
                     "\"type\":\"MARKET\",\"quantity\":\"0.%03d\"}", name, 1 + i);
            admin("POST", "/admin/order", body);
        }
        if (!acct_hedge(i) && i % 4 == 2) {
            snprintf(body, sizeof body, "{\"account\":\"%s\",\"symbol\":\"ETHUSDT\",\"side\":\"SELL\","
                     "\"type\":\"MARKET\",\"quantity\":\"0.%02d\"}", name, 1 + i);
            admin("POST", "/admin/order", body);
        }
        if (acct_hedge(i) && i % 4 == 1) {
            snprintf(body, sizeof body, "{\"account\":\"%s\",\"symbol\":\"BTCUSDT\",\"side\":\"BUY\","
                     "\"type\":\"MARKET\",\"quantity\":\"0.%03d\",\"positionSide\":\"LONG\"}", name, 2 + i);
            admin("POST", "/admin/order", body);
            snprintf(body, sizeof body, "{\"account\":\"%s\",\"symbol\":\"ETHUSDT\",\"side\":\"SELL\","
                     "\"type\":\"MARKET\",\"quantity\":\"0.%02d\",\"positionSide\":\"SHORT\"}", name, 3 + i);
            admin("POST", "/admin/order", body);
        }
        if (i % 5 == 0) {
            snprintf(body, sizeof body, "{\"account\":\"%s\",\"symbol\":\"SOLUSDT\",\"leverage\":%d}",
                     name, 3 + i % 40);
            admin("POST", "/admin/leverage", body);
        }
    }
}

static bool same_position(const struct mkt_position *x, const struct mkt_position *y) {
    return strcmp(x->symbol, y->symbol) == 0 && x->pos_side == y->pos_side &&
           dec_cmp(x->amount, y->amount) == 0 && dec_cmp(x->entry_price, y->entry_price) == 0 &&
           x->leverage == y->leverage;
}

/* The sequence for every account at once; the weight the simulator reported at the end (the
 * highest X-MBX-USED-WEIGHT-1M any account saw: the window's count after the last request).
 * Re-run once if a minute window boundary fell inside (the simulator's windows are aligned on
 * the wall-clock minute; the counts would then be split). */
static int64_t run_startup(struct seq *v, uint64_t *requests) {
    for (int attempt = 0;; attempt++) {
        admin("POST", "/admin/limits/reset", "{}");
        int64_t minute = wall_ms() / 60000;
        uint64_t req0 = pool_requests();
        for (int i = 0; i < N_ACCTS; i++) {
            seq_clear(&v[i]);
            v[i].a = E.acct[i];
            seq_next(&v[i]);
        }
        RUN_UNTIL(all_done(v, N_ACCTS), 60000);
        int64_t w = -1;
        for (int i = 0; i < N_ACCTS; i++) {
            struct exch_usage u;
            exch_account_usage(E.acct[i], &u);
            if (u.used_weight_1m > w) w = u.used_weight_1m;
        }
        *requests = pool_requests() - req0;
        if (wall_ms() / 60000 == minute || attempt == 1) return w;
        print_message("a minute window began during the run: once more\n");
    }
}

static void test_startup_cost_50_accounts(void **state) {
    (void)state;
    static struct seq v[N_ACCTS];
    uint64_t requests = 0;

    shape_accounts();
    int64_t weight = run_startup(v, &requests);
    for (int i = 0; i < N_ACCTS; i++) {
        if (v[i].fail_step || v[i].fail.err)
            fail_msg("%s: step %d failed: %d %s", exch_account_name(E.acct[i]), v[i].fail_step,
                     v[i].fail.err, v[i].fail.error_msg);
        assert_int_equal(v[i].step, 5);
        assert_int_equal(v[i].sync_callbacks, 0); /* never from inside a call */
    }
    print_message("start-up of %d accounts (time, positions, mode, leverage, account): %" PRId64
                  " weight, %.1f per account, %" PRIu64 " requests\n",
                  N_ACCTS, weight, (double)weight / N_ACCTS, requests);
    assert_true(weight > 0);
    assert_true(weight <= (int64_t)MAX_WEIGHT_PER_ACCT * N_ACCTS);
    /* positionRisk and account per account, server time once for the host (exch_sync_time
     * shares one request among the accounts that ask while it is in flight), and no
     * positionSide/dual */
    assert_true(requests >= 2 * N_ACCTS + 1);
    assert_true(requests < 3 * N_ACCTS);
    assert_true(weight >= 10 * N_ACCTS + 1);

    /* What the old calls say, sent by this test (GET positionSide/dual, GET v2 positionRisk
     * parsed by the positions and the leverage parsers), against what the adapter delivered;
     * and the old request sequence's weight, measured the same way. */
    admin("POST", "/admin/limits/reset", "{}");
    int64_t minute = wall_ms() / 60000, old_w = 0;
    int hedges = 0, with_pos = 0, hedge_with_pos = 0;
    for (int i = 0; i < N_ACCTS; i++) {
        struct exch_account *a = E.acct[i];
        char key[64], err[160];
        struct sink s;
        enum mkt_pos_mode m;
        struct mkt_position *pv;
        struct exch_leverage *lv;
        size_t np, nl;
        acct_key(i, key, sizeof key);

        old_w = old_call(a, key, "/fapi/v1/time", false, &s);
        free(s.b);
        old_w = old_call(a, key, "/fapi/v2/positionRisk", true, &s);
        if (binance_parse_positions(s.b, s.len, &pv, &np, err, sizeof err) != 0) fail_msg("%s", err);
        free(s.b);
        old_w = old_call(a, key, "/fapi/v1/positionSide/dual", true, &s);
        if (binance_parse_position_mode(s.b, s.len, &m, err, sizeof err) != 0) fail_msg("%s", err);
        free(s.b);
        old_w = old_call(a, key, "/fapi/v2/positionRisk", true, &s);
        if (binance_parse_leverages(s.b, s.len, &lv, &nl, err, sizeof err) != 0) fail_msg("%s", err);
        free(s.b);
        old_w = old_call(a, key, "/fapi/v3/account", true, &s);
        free(s.b);

        assert_int_equal(v[i].mode, m);
        assert_int_equal(m, acct_hedge(i) ? MKT_PM_HEDGE : MKT_PM_ONE_WAY);
        if (v[i].n_pos != np) fail_msg("%s: %zu positions, old call %zu", exch_account_name(a), v[i].n_pos, np);
        for (size_t k = 0; k < np; k++) assert_true(same_position(&v[i].pos[k], &pv[k]));
        assert_int_equal(v[i].n_lev, nl);
        assert_int_equal(nl, N_SYMS);
        for (size_t k = 0; k < nl; k++) {
            assert_string_equal(v[i].lev[k].symbol, lv[k].symbol);
            assert_int_equal(v[i].lev[k].leverage, lv[k].leverage);
        }
        /* and what the simulator was told */
        for (size_t k = 0; k < nl; k++)
            assert_int_equal(lv[k].leverage, strcmp(lv[k].symbol, "SOLUSDT") == 0 && i % 5 == 0
                                                 ? 3 + i % 40 : 10 + i % 7);
        hedges += acct_hedge(i);
        with_pos += np > 0;
        hedge_with_pos += acct_hedge(i) && np == 2;
        free(pv);
        free(lv);
    }
    assert_true(hedges > 10 && hedges < N_ACCTS - 10);
    assert_true(with_pos >= 20);
    assert_true(hedge_with_pos >= 4);
    if (wall_ms() / 60000 == minute)
        print_message("the old sequence, same accounts: %" PRId64 " weight, %.1f per account\n",
                      old_w, (double)old_w / N_ACCTS);
    for (int i = 0; i < N_ACCTS; i++) seq_clear(&v[i]);
}

/* ======================================================================= sharing, one account */

struct rd {
    int calls;
    bool in_call;
    int sync;
    struct exch_status st;
    size_t n;
    struct mkt_position pos[8];
    int lev_btc;
    enum mkt_pos_mode mode;
};

static void r_pos(void *ud, const struct exch_status *st, const struct mkt_position *v, size_t n) {
    struct rd *x = ud;
    x->calls++;
    x->sync += x->in_call;
    x->st = *st;
    x->n = n;
    if (n > 8) n = 8;
    if (n) memcpy(x->pos, v, n * sizeof *v);
}
static void r_lev(void *ud, const struct exch_status *st, const struct exch_leverage *v, size_t n) {
    struct rd *x = ud;
    x->calls++;
    x->sync += x->in_call;
    x->st = *st;
    x->n = n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].symbol, "BTCUSDT") == 0) x->lev_btc = v[i].leverage;
}
static void r_mode(void *ud, const struct exch_status *st, enum mkt_pos_mode m) {
    struct rd *x = ud;
    x->calls++;
    x->sync += x->in_call;
    x->st = *st;
    x->mode = m;
}
static void r_time(void *ud, const struct exch_status *st, int64_t off) {
    struct rd *x = ud;
    (void)off;
    x->calls++;
    x->sync += x->in_call;
    x->st = *st;
}
static void r_order(void *ud, const struct exch_order_result *r) {
    struct rd *x = ud;
    x->calls++;
    x->st.err = r->outcome == EXCH_OK ? 0 : -EIO;
}

#define CALL(x, expr)                                                                              \
    do {                                                                                           \
        (x)->in_call = true;                                                                       \
        assert_int_equal((expr), 0);                                                               \
        (x)->in_call = false;                                                                      \
    } while (0)

static void test_sharing_one_account(void **state) {
    (void)state;
    struct exch_account *a = E.acct[0]; /* one-way; acct00 holds a long BTC (shape_accounts) */
    struct rd p = {0}, m = {0}, l = {0}, p2 = {0}, o = {0};

    shape_accounts();
    struct rd tm = {0};
    CALL(&tm, exch_sync_time(a, r_time, &tm)); /* server time first, as the daemon does */
    RUN_UNTIL(tm.calls == 1, 10000);
    assert_int_equal(tm.st.err, 0);

    /* together: one request */
    uint64_t r0 = pool_requests();
    CALL(&p, exch_fetch_positions(a, r_pos, &p));
    CALL(&m, exch_fetch_position_mode(a, r_mode, &m));
    CALL(&l, exch_fetch_leverage(a, r_lev, &l));
    assert_int_equal(pool_requests() - r0, 1);
    RUN_UNTIL(p.calls && m.calls && l.calls, 10000);
    assert_int_equal(p.st.err + m.st.err + l.st.err, 0);
    assert_int_equal(p.sync + m.sync + l.sync, 0);
    assert_int_equal(m.mode, MKT_PM_ONE_WAY);
    assert_int_equal(l.n, N_SYMS);
    assert_int_equal(l.lev_btc, 10);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.pos[0].symbol, "BTCUSDT");
    dec_t before = p.pos[0].amount;

    /* right after: the same answer, no request, never from inside the call */
    CALL(&p2, exch_fetch_positions(a, r_pos, &p2));
    assert_int_equal(p2.calls, 0);
    RUN_UNTIL(p2.calls == 1, 10000);
    assert_int_equal(pool_requests() - r0, 1);
    assert_int_equal(p2.sync, 0);
    assert_int_equal(p2.n, 1);
    assert_int_equal(dec_cmp(p2.pos[0].amount, before), 0);

    /* an order result drops it: the next read is a new request and sees the order */
    dec_t q;
    assert_int_equal(dec_parse_cstr("0.004", &q), 0);
    struct exch_order_req req = {.symbol = "BTCUSDT", .side = MKT_BUY, .type = EXCH_MARKET,
                                 .qty = q, .client_id = "ctCost1"};
    assert_int_equal(exch_place_order(a, &req, r_order, &o), 0);
    RUN_UNTIL(o.calls == 1, 10000);
    assert_int_equal(o.st.err, 0);
    memset(&p2, 0, sizeof p2);
    r0 = pool_requests();
    CALL(&p2, exch_fetch_positions(a, r_pos, &p2));
    assert_int_equal(pool_requests() - r0, 1);
    RUN_UNTIL(p2.calls == 1, 10000);
    assert_int_equal(p2.st.err, 0);
    assert_int_equal(p2.n, 1);
    dec_t want;
    assert_int_equal(dec_add(before, q, &want), 0);
    assert_int_equal(dec_cmp(p2.pos[0].amount, want), 0);

    /* TTL 0: only calls made while the request is in flight share it */
    binance_risk_test_ttl(0);
    memset(&p2, 0, sizeof p2);
    memset(&l, 0, sizeof l);
    r0 = pool_requests();
    CALL(&p2, exch_fetch_positions(a, r_pos, &p2));
    RUN_UNTIL(p2.calls == 1, 10000);
    CALL(&l, exch_fetch_leverage(a, r_lev, &l));
    RUN_UNTIL(l.calls == 1, 10000);
    assert_int_equal(pool_requests() - r0, 2);
    assert_int_equal(l.st.err, 0);
    binance_risk_test_ttl(-1);

    /* an HTTP error reaches every call that joined, and is not kept (an order result first, so
     * no earlier answer is fresh) */
    req.side = MKT_SELL;
    req.client_id = "ctCost2";
    o.calls = 0;
    assert_int_equal(exch_place_order(a, &req, r_order, &o), 0);
    RUN_UNTIL(o.calls == 1, 10000);
    assert_int_equal(o.st.err, 0);
    admin("POST", "/admin/fault",
          "{\"kind\":\"http_5xx\",\"account\":\"acct00\",\"endpoint\":\"GET /fapi/v2/positionRisk\","
          "\"count\":1}");
    memset(&p2, 0, sizeof p2);
    memset(&m, 0, sizeof m);
    memset(&l, 0, sizeof l);
    r0 = pool_requests();
    CALL(&p2, exch_fetch_positions(a, r_pos, &p2));
    CALL(&m, exch_fetch_position_mode(a, r_mode, &m));
    CALL(&l, exch_fetch_leverage(a, r_lev, &l));
    RUN_UNTIL(p2.calls && m.calls && l.calls, 10000);
    assert_int_equal(pool_requests() - r0, 1);
    assert_int_equal(p2.st.err, -EREMOTEIO);
    assert_int_equal(m.st.err, -EREMOTEIO);
    assert_int_equal(l.st.err, -EREMOTEIO);
    assert_int_equal(p2.n + l.n, 0);
    memset(&m, 0, sizeof m);
    CALL(&m, exch_fetch_position_mode(a, r_mode, &m));
    assert_int_equal(pool_requests() - r0, 2);
    RUN_UNTIL(m.calls == 1, 10000);
    assert_int_equal(m.st.err, 0);
    assert_int_equal(m.mode, MKT_PM_ONE_WAY);

    /* a hedge account: LONG and SHORT entries, told apart without positionSide/dual */
    struct exch_account *h = E.acct[1];
    memset(&m, 0, sizeof m);
    memset(&p2, 0, sizeof p2);
    r0 = pool_requests();
    CALL(&m, exch_fetch_position_mode(h, r_mode, &m));
    CALL(&p2, exch_fetch_positions(h, r_pos, &p2));
    RUN_UNTIL(m.calls && p2.calls, 10000);
    assert_int_equal(pool_requests() - r0, 1);
    assert_int_equal(m.st.err, 0);
    assert_int_equal(m.mode, MKT_PM_HEDGE);
    assert_int_equal(p2.n, 2);

    /* a closed account (a reference of ours keeps the memory for the call) */
    struct exch_account *c = exch_account_ref(E.acct[3]);
    E.acct[3] = exch_account_free(E.acct[3]);
    assert_int_equal(exch_fetch_positions(c, r_pos, &p2), -ESHUTDOWN);
    assert_int_equal(exch_fetch_position_mode(c, r_mode, &p2), -ESHUTDOWN);
    exch_account_unref(c);
}

/* ======================================================================= the fallback */

/* A one-connection-at-a-time HTTP server on the test's loop: GET /fapi/v2/positionRisk answers
 * risk_body, GET /fapi/v1/positionSide/dual {"dualSidePosition":true}; counts both. */
static struct {
    uv_tcp_t tcp;
    int port;
    const char *risk_body;
    int risk, dual;
    char buf[8192];
    size_t len;
} FS;

static void fs_closed(uv_handle_t *h) { free(h); }
static void fs_written(uv_write_t *w, int status) {
    (void)status;
    free(w->data);
    free(w);
}
static void fs_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *b) {
    (void)h;
    (void)sugg;
    *b = uv_buf_init(FS.buf + FS.len, (unsigned)(sizeof FS.buf - FS.len - 1));
}
static void fs_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)s, fs_closed);
        return;
    }
    FS.len += (size_t)n;
    FS.buf[FS.len] = '\0';
    char *end;
    while ((end = strstr(FS.buf, "\r\n\r\n"))) {
        const char *body = "{\"code\":-1,\"msg\":\"no route\"}";
        int status = 404;
        if (strncmp(FS.buf, "GET /fapi/v2/positionRisk?", 26) == 0) {
            FS.risk++;
            body = FS.risk_body;
            status = 200;
        } else if (strncmp(FS.buf, "GET /fapi/v1/positionSide/dual?", 31) == 0) {
            FS.dual++;
            body = "{\"dualSidePosition\":true}";
            status = 200;
        }
        char *out = malloc(strlen(body) + 256);
        assert_non_null(out);
        int k = sprintf(out, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                        status, strlen(body), body);
        uv_write_t *w = malloc(sizeof *w);
        assert_non_null(w);
        w->data = out;
        uv_buf_t ob = uv_buf_init(out, (unsigned)k);
        assert_int_equal(uv_write(w, s, &ob, 1, fs_written), 0);
        size_t used = (size_t)(end + 4 - FS.buf);
        memmove(FS.buf, FS.buf + used, FS.len - used + 1);
        FS.len -= used;
    }
}
static void fs_conn(uv_stream_t *srv, int status) {
    assert_int_equal(status, 0);
    uv_tcp_t *c = malloc(sizeof *c);
    assert_non_null(c);
    uv_tcp_init(&E.loop, c);
    assert_int_equal(uv_accept(srv, (uv_stream_t *)c), 0);
    FS.len = 0;
    uv_read_start((uv_stream_t *)c, fs_alloc, fs_read);
}
static void fs_close_all(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h) && h->type == UV_TCP)
        uv_close(h, h == (uv_handle_t *)&FS.tcp ? NULL : fs_closed);
}

static void test_mode_fallback(void **state) {
    (void)state;
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    char url[64];
    memset(&FS, 0, sizeof FS);
    assert_int_equal(uv_tcp_init(&E.loop, &FS.tcp), 0);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&FS.tcp, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&FS.tcp, 16, fs_conn), 0);
    assert_int_equal(uv_tcp_getsockname(&FS.tcp, (struct sockaddr *)&ss, &sl), 0);
    FS.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", FS.port);
    struct exch_account *a = account_at(url, 0);
    struct rd m = {0}, p = {0};

    /* no entries: the mode comes from positionSide/dual; positions share the one answer */
    FS.risk_body = "[]";
    CALL(&m, exch_fetch_position_mode(a, r_mode, &m));
    CALL(&p, exch_fetch_positions(a, r_pos, &p));
    RUN_UNTIL(m.calls && p.calls, 10000);
    assert_int_equal(m.st.err, 0);
    assert_int_equal(m.mode, MKT_PM_HEDGE);
    assert_int_equal(p.st.err, 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(FS.risk, 1);
    assert_int_equal(FS.dual, 1);

    /* BOTH mixed with LONG/SHORT: the same (TTL 0 so the new body is read) */
    binance_risk_test_ttl(0);
    FS.risk_body = "[{\"symbol\":\"BTCUSDT\",\"positionSide\":\"BOTH\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"},"
                   "{\"symbol\":\"BTCUSDT\",\"positionSide\":\"LONG\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"}]";
    memset(&m, 0, sizeof m);
    CALL(&m, exch_fetch_position_mode(a, r_mode, &m));
    RUN_UNTIL(m.calls, 10000);
    assert_int_equal(m.st.err, 0);
    assert_int_equal(m.mode, MKT_PM_HEDGE);
    assert_int_equal(FS.risk, 2);
    assert_int_equal(FS.dual, 2);

    /* LONG/SHORT only: no positionSide/dual */
    FS.risk_body = "[{\"symbol\":\"BTCUSDT\",\"positionSide\":\"LONG\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"},"
                   "{\"symbol\":\"BTCUSDT\",\"positionSide\":\"SHORT\",\"positionAmt\":\"0\",\"entryPrice\":\"0\",\"leverage\":\"5\"}]";
    memset(&m, 0, sizeof m);
    CALL(&m, exch_fetch_position_mode(a, r_mode, &m));
    RUN_UNTIL(m.calls, 10000);
    assert_int_equal(m.mode, MKT_PM_HEDGE);
    assert_int_equal(FS.risk, 3);
    assert_int_equal(FS.dual, 2);
    binance_risk_test_ttl(-1);

    exch_account_free(a);
    uv_walk(&E.loop, fs_close_all, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_startup_cost_50_accounts, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_sharing_one_account, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_mode_fallback, env_setup, env_teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, sim_start, sim_stop);
    curl_global_cleanup();
    return rc;
}
