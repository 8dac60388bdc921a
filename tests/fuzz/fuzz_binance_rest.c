/* fuzz_binance_rest: every Binance REST response parser and classifier of binance_rest.h.
 * The first input byte selects the parser (modulo BR_COUNT; the BR_* numbers below are what the
 * seed corpus uses), the rest is the response body (an exact-size copy: the parsers take
 * (body, len)). Classifier modes read a struct rest_resp from the rest (fuzz_rest_common.h).
 * BR_FILLS splits the rest at the first NUL: userTrades body, then order-info bodies separated
 * by further NULs, and runs binance_build_fills on them like fetch_fills does. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "binance_rest.h"
#include "fuzz_rest_common.h"
#include "fuzz_util.h"

enum {
    BR_ERROR, BR_ORDER, BR_INSTRUMENTS, BR_POSITIONS, BR_RISK_MODE, BR_LEVERAGES, BR_ACCOUNT,
    BR_TICKERS, BR_POSITION_MODE, BR_SET_LEVERAGE, BR_SERVER_TIME, BR_LISTEN_KEY, BR_USER_TRADES,
    BR_ORDER_INFO, BR_BOOK_TICKERS, BR_CLASSIFY_PLACE, BR_CLASSIFY_QUERY, BR_CLASSIFY_CANCEL,
    BR_CLASSIFY_BATCH, BR_STATUS, BR_FILLS, BR_COUNT
};

static const char *const g_ids[BINANCE_BATCH_MAX] = {"testOrder", "myOrder1", "abc", "ct-1", "ct-2"};

static void check_rc(int rc, const char *err)
{
    if (rc > 0) abort();
    if (rc < 0 && rc != -ENOMEM && rc != -ENODATA && err[0] == '\0') abort(); /* errors name a field */
}

static bool same_dec(dec_t a, dec_t b) { return a.m == b.m && a.scale == b.scale; }

static bool same_order(const struct exch_order_result *a, const struct exch_order_result *b)
{
    return a->outcome == b->outcome && a->status == b->status &&
           !strcmp(a->order_id, b->order_id) && !strcmp(a->client_id, b->client_id) &&
           same_dec(a->executed_qty, b->executed_qty) && same_dec(a->avg_price, b->avg_price) &&
           a->update_time_ms == b->update_time_ms;
}

static void fills(const uint8_t *p, size_t n)
{
    const uint8_t *nul = memchr(p, 0, n);
    size_t tlen = nul ? (size_t)(nul - p) : n;
    char err[256];
    char *tb = fz_dup(p, tlen);
    struct binance_trade *trades = NULL;
    size_t nt = 0;
    int rc = binance_parse_user_trades(tb, tlen, NULL, &trades, &nt, err, sizeof err);
    free(tb);
    check_rc(rc, err);
    if (rc < 0) return;
    struct binance_order_info infos[8];
    size_t ni = 0;
    const uint8_t *q = nul ? nul + 1 : p + n;
    while (q < p + n && ni < 8) {
        const uint8_t *e = memchr(q, 0, (size_t)(p + n - q));
        size_t len = e ? (size_t)(e - q) : (size_t)(p + n - q);
        char *ib = fz_dup(q, len);
        if (binance_parse_order_info(ib, len, 0, &infos[ni], err, sizeof err) == 0) {
            infos[ni].prior_qty = DEC_ZERO;
            ni++;
        }
        free(ib);
        q += len + 1;
    }
    struct mkt_fill *out = calloc(nt ? nt : 1, sizeof *out);
    if (!out) abort();
    rc = binance_build_fills("fuzz", trades, nt, infos, ni, out, err, sizeof err);
    if (rc > (int)nt) abort();
    for (int i = 0; i < rc; i++)
        if (!FZ_TERMINATED(out[i].trade_id) || !FZ_TERMINATED(out[i].order_id) ||
            !FZ_TERMINATED(out[i].order_client_id))
            abort();
    free(out);
    free(trades);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = data[0] % BR_COUNT;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *body = fz_dup(p, n);
    char err[256] = "";
    int rc = 0;
    size_t cnt = 0, skipped = 0;

    switch (mode) {
    case BR_ERROR: {
        int code;
        char msg[128];
        rc = binance_parse_error(body, n, &code, msg, sizeof msg);
        if (rc == 0) fz_touch(msg);
        if (rc > 0) abort();
        break;
    }
    case BR_ORDER: {
        struct exch_order_result o;
        memset(&o, 0, sizeof o);
        rc = binance_parse_order(body, n, &o, err, sizeof err);
        check_rc(rc, err);
        fz_check_order_result(&o);
        /* The flat fast path must read every body exactly as jansson does: same outcome, same
         * fields, same error text. */
        struct exch_order_result t;
        char terr[256] = "";
        memset(&t, 0, sizeof t);
        if (binance_parse_order_tree(body, n, &t, terr, sizeof terr) != rc || strcmp(err, terr) ||
            !same_order(&o, &t))
            abort();
        break;
    }
    case BR_INSTRUMENTS: {
        struct mkt_instrument *v = NULL;
        rc = binance_parse_instruments(body, n, &v, &cnt, &skipped, err, sizeof err);
        check_rc(rc, err);
        if (rc == 0 && cnt && !v) abort();
        free(v);
        break;
    }
    case BR_POSITIONS: {
        struct mkt_position *v = NULL;
        rc = binance_parse_positions(body, n, &v, &cnt, err, sizeof err);
        check_rc(rc, err);
        for (size_t i = 0; rc == 0 && i < cnt; i++) fz_touch(v[i].symbol);
        free(v);
        break;
    }
    case BR_RISK_MODE: {
        enum mkt_pos_mode m;
        rc = binance_parse_risk_mode(body, n, &m, err, sizeof err);
        check_rc(rc, err);
        break;
    }
    case BR_LEVERAGES: {
        struct exch_leverage *v = NULL;
        rc = binance_parse_leverages(body, n, &v, &cnt, err, sizeof err);
        check_rc(rc, err);
        for (size_t i = 1; rc == 0 && i < cnt; i++) /* sorted, one per symbol */
            if (strcmp(v[i - 1].symbol, v[i].symbol) >= 0) abort();
        free(v);
        break;
    }
    case BR_ACCOUNT: {
        struct exch_balance b;
        rc = binance_parse_account(body, n, &b, err, sizeof err);
        check_rc(rc, err);
        break;
    }
    case BR_TICKERS: {
        struct exch_ticker *v = NULL;
        rc = binance_parse_tickers(body, n, &v, &cnt, err, sizeof err);
        check_rc(rc, err);
        for (size_t i = 0; rc == 0 && i < cnt; i++)
            if (dec_sign(v[i].price) <= 0 || !FZ_TERMINATED(v[i].symbol)) abort();
        free(v);
        break;
    }
    case BR_POSITION_MODE: {
        enum mkt_pos_mode m;
        rc = binance_parse_position_mode(body, n, &m, err, sizeof err);
        check_rc(rc, err);
        break;
    }
    case BR_SET_LEVERAGE: {
        int lev = 0;
        rc = binance_parse_set_leverage(body, n, n & 1 ? "BTCUSDT" : NULL, &lev, err, sizeof err);
        check_rc(rc, err);
        if (rc == 0 && (lev < 1 || lev > BINANCE_LEVERAGE_PARSE_MAX)) abort();
        break;
    }
    case BR_SERVER_TIME: {
        int64_t ms;
        rc = binance_parse_server_time(body, n, &ms, err, sizeof err);
        check_rc(rc, err);
        break;
    }
    case BR_LISTEN_KEY: {
        char key[BINANCE_LISTEN_KEY_MAX];
        rc = binance_parse_listen_key(body, n, key, sizeof key, err, sizeof err);
        check_rc(rc, err);
        if (rc == 0) { /* it goes into a URL: [A-Za-z0-9_-]{1,255} */
            size_t kl = strlen(key);
            if (kl == 0 || kl > 255 || strspn(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != kl)
                abort();
        }
        break;
    }
    case BR_USER_TRADES: {
        struct binance_trade *v = NULL;
        rc = binance_parse_user_trades(body, n, n & 1 ? "BTCUSDT" : NULL, &v, &cnt, err, sizeof err);
        check_rc(rc, err);
        for (size_t i = 0; rc == 0 && i < cnt; i++)
            if (v[i].id <= 0 || v[i].order_id <= 0 || dec_sign(v[i].qty) <= 0 || dec_sign(v[i].price) <= 0)
                abort();
        free(v);
        break;
    }
    case BR_ORDER_INFO: {
        struct binance_order_info info;
        rc = binance_parse_order_info(body, n, n & 1 ? 1917641 : 0, &info, err, sizeof err);
        check_rc(rc, err);
        if (rc == 0 && !FZ_TERMINATED(info.client_id)) abort();
        break;
    }
    case BR_BOOK_TICKERS: {
        struct exch_book_ticker *v = NULL;
        rc = binance_parse_book_tickers(body, n, &v, &cnt, err, sizeof err);
        check_rc(rc, err);
        free(v);
        break;
    }
    case BR_CLASSIFY_PLACE:
    case BR_CLASSIFY_QUERY:
    case BR_CLASSIFY_CANCEL: {
        struct fz_resp f;
        fz_resp_make(&f, p, n);
        struct exch_order_result o;
        memset(&o, 0x5a, sizeof o); /* the classifier must set everything it reports */
        if (mode == BR_CLASSIFY_CANCEL)
            binance_classify_cancel(&f.r, n & 1 ? NULL : "testOrder", &o);
        else
            binance_classify_order(&f.r, mode == BR_CLASSIFY_QUERY, n & 1 ? NULL : "testOrder", &o);
        fz_check_order_result(&o);
        fz_resp_free(&f);
        break;
    }
    case BR_CLASSIFY_BATCH: {
        struct fz_resp f;
        size_t k = n ? 1 + p[0] % BINANCE_BATCH_MAX : 1;
        fz_resp_make(&f, n ? p + 1 : p, n ? n - 1 : 0);
        struct exch_order_result o[BINANCE_BATCH_MAX];
        memset(o, 0x5a, sizeof o);
        binance_classify_batch(&f.r, g_ids, k, o);
        for (size_t i = 0; i < k; i++) fz_check_order_result(&o[i]);
        fz_resp_free(&f);
        break;
    }
    case BR_STATUS: {
        struct fz_resp f;
        fz_resp_make(&f, p, n);
        struct exch_status st;
        memset(&st, 0x5a, sizeof st);
        bool ok = binance_status_from_resp(&f.r, &st);
        if (!FZ_TERMINATED(st.error_msg)) abort();
        if (!ok && st.err >= 0) abort(); /* a refusal carries an error */
        fz_resp_free(&f);
        break;
    }
    case BR_FILLS:
        fills(p, n);
        break;
    }
    free(body);
    return 0;
}
