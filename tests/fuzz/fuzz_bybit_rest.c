/* fuzz_bybit_rest: every Bybit v5 REST response parser and classifier of bybit_rest.h. The first
 * input byte selects the parser (modulo YR_COUNT; the YR_* numbers are what the seed corpus
 * uses), the rest is the body (an exact-size copy). Classifier modes read a struct rest_resp
 * from the rest (fuzz_rest_common.h). YR_EXEC_MODE runs what fetch_fills does with a page:
 * bybit_parse_executions, then bybit_exec_apply_mode per execution, in both position modes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bybit_rest.h"
#include "fuzz_rest_common.h"
#include "fuzz_util.h"

enum {
    YR_ENVELOPE, YR_ACK, YR_ORDER_LIST, YR_BATCH, YR_INSTRUMENTS, YR_POSITIONS, YR_SERVER_TIME,
    YR_WALLET, YR_TICKERS, YR_BOOK_TICKERS, YR_EXECUTIONS, YR_CLASSIFY_PLACE, YR_CLASSIFY_QUERY,
    YR_CLASSIFY_CANCEL, YR_STATUS, YR_USAGE, YR_STATUS_WORD, YR_EXEC_MODE, YR_COUNT
};

static const char *const g_ids[BYBIT_BATCH_MAX] = {
    "linear-004", "test-000005", "spot-btc-03", "ct-1", "ct-2", "ct-3", "ct-4", "ct-5", "ct-6", "ct-7"};

static void check_rc(int rc, const char *err)
{
    if (rc > 0) abort();
    if (rc < 0 && rc != -ENOMEM && err[0] == '\0') abort(); /* errors name a field */
}

static void check_cursor(int rc, const char *cursor, size_t cap)
{
    if (rc == 0 && !memchr(cursor, '\0', cap)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned mode = data[0] % YR_COUNT;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *body = fz_dup(p, n);
    char err[256] = "";
    char cursor[BYBIT_CURSOR_MAX];
    int rc = 0;
    size_t cnt = 0, skipped = 0;

    switch (mode) {
    case YR_ENVELOPE: {
        int code;
        char msg[128];
        rc = bybit_parse_envelope(body, n, &code, msg, sizeof msg);
        if (rc > 0) abort();
        if (rc == 0) fz_touch(msg);
        break;
    }
    case YR_ACK: {
        struct exch_order_result o;
        memset(&o, 0, sizeof o);
        rc = bybit_parse_ack(body, n, n & 1 ? NULL : "linear-004", &o, err, sizeof err);
        check_rc(rc, err);
        fz_check_order_result(&o);
        break;
    }
    case YR_ORDER_LIST: {
        struct exch_order_result o;
        bool found = false;
        memset(&o, 0, sizeof o);
        rc = bybit_parse_order_list(body, n, "linear-004", &found, &o, err, sizeof err);
        check_rc(rc, err);
        fz_check_order_result(&o);
        break;
    }
    case YR_BATCH: {
        size_t k = n ? 1 + p[0] % BYBIT_BATCH_MAX : 1;
        struct exch_order_result o[BYBIT_BATCH_MAX];
        memset(o, 0, sizeof o);
        char *b = n ? body + 1 : body;
        rc = bybit_parse_batch(b, n ? n - 1 : 0, g_ids, k, o, err, sizeof err);
        check_rc(rc, err);
        for (size_t i = 0; rc == 0 && i < k; i++) fz_check_order_result(&o[i]);
        break;
    }
    case YR_INSTRUMENTS: {
        struct mkt_instrument *v = NULL;
        rc = bybit_parse_instruments(body, n, &v, &cnt, &skipped, cursor, sizeof cursor, err, sizeof err);
        check_rc(rc, err);
        check_cursor(rc, cursor, sizeof cursor);
        free(v);
        break;
    }
    case YR_POSITIONS: {
        struct mkt_position *v = NULL;
        rc = bybit_parse_positions(body, n, &v, &cnt, cursor, sizeof cursor, err, sizeof err);
        check_rc(rc, err);
        check_cursor(rc, cursor, sizeof cursor);
        struct bybit_modebook *mb = bybit_modebook_new();
        if (!mb) abort();
        for (size_t i = 0; rc == 0 && i < cnt; i++) {
            if (!FZ_TERMINATED(v[i].symbol)) abort();
            int idx = v[i].pos_side == MKT_PS_LONG ? 1 : v[i].pos_side == MKT_PS_SHORT ? 2 : 0;
            if (bybit_modebook_note(mb, v[i].symbol, idx, v[i].leverage, NULL) < 0) abort();
            (void)bybit_modebook_mode(mb, v[i].symbol);
        }
        bybit_modebook_free(mb);
        free(v);
        break;
    }
    case YR_SERVER_TIME: {
        int64_t ms;
        rc = bybit_parse_server_time(body, n, &ms, err, sizeof err);
        check_rc(rc, err);
        break;
    }
    case YR_WALLET: {
        struct exch_balance b;
        rc = bybit_parse_wallet(body, n, &b, err, sizeof err);
        check_rc(rc, err);
        break;
    }
    case YR_TICKERS: {
        struct exch_ticker *v = NULL;
        rc = bybit_parse_tickers(body, n, &v, &cnt, err, sizeof err);
        check_rc(rc, err);
        for (size_t i = 0; rc == 0 && i < cnt; i++)
            if (dec_sign(v[i].price) <= 0 || !FZ_TERMINATED(v[i].symbol)) abort();
        free(v);
        break;
    }
    case YR_BOOK_TICKERS: {
        struct exch_book_ticker *v = NULL;
        rc = bybit_parse_book_tickers(body, n, &v, &cnt, err, sizeof err);
        check_rc(rc, err);
        for (size_t i = 0; rc == 0 && i < cnt; i++)
            if (dec_sign(v[i].bid) <= 0 || dec_sign(v[i].ask) <= 0) abort();
        free(v);
        break;
    }
    case YR_EXECUTIONS:
    case YR_EXEC_MODE: {
        struct bybit_exec *v = NULL;
        rc = bybit_parse_executions(body, n, &v, &cnt, cursor, sizeof cursor, err, sizeof err);
        check_rc(rc, err);
        check_cursor(rc, cursor, sizeof cursor);
        for (size_t i = 0; rc == 0 && i < cnt; i++) {
            if (!v[i].is_trade) abort(); /* others are skipped */
            if (!FZ_TERMINATED(v[i].fill.trade_id) || !FZ_TERMINATED(v[i].fill.order_client_id)) abort();
            if (mode == YR_EXEC_MODE && !v[i].has_pos_idx)
                bybit_exec_apply_mode(&v[i], (p[0] & 1) ? MKT_PM_HEDGE : MKT_PM_ONE_WAY);
        }
        free(v);
        break;
    }
    case YR_CLASSIFY_PLACE:
    case YR_CLASSIFY_QUERY:
    case YR_CLASSIFY_CANCEL: {
        struct fz_resp f;
        fz_resp_make(&f, p, n);
        struct exch_order_result o;
        memset(&o, 0x5a, sizeof o);
        enum bybit_op op = mode == YR_CLASSIFY_PLACE ? BYBIT_OP_PLACE
                           : mode == YR_CLASSIFY_QUERY ? BYBIT_OP_QUERY : BYBIT_OP_CANCEL;
        bybit_classify_order(&f.r, op, "linear-004", 1700000000000LL, &o);
        fz_check_order_result(&o);
        if (o.outcome == EXCH_THROTTLED && (o.retry_after_ms < 0 || o.retry_after_ms > 3600000)) abort();
        fz_resp_free(&f);
        break;
    }
    case YR_STATUS: {
        struct fz_resp f;
        fz_resp_make(&f, p, n);
        struct exch_status st;
        memset(&st, 0x5a, sizeof st);
        bool ok = bybit_status_from_resp(&f.r, &st);
        if (!FZ_TERMINATED(st.error_msg)) abort();
        if (!ok && st.err >= 0) abort();
        fz_resp_free(&f);
        break;
    }
    case YR_USAGE: {
        struct fz_resp f;
        fz_resp_make(&f, p, n);
        struct exch_bybit_usage u;
        bybit_usage_from_resp(&f.r, 1700000000000LL, &u);
        fz_resp_free(&f);
        break;
    }
    case YR_STATUS_WORD: {
        char *s = fz_dupz(p, n);
        enum exch_order_status st;
        rc = bybit_status_parse(s, &st);
        if (rc != 0 && rc != -EINVAL) abort();
        free(s);
        break;
    }
    }
    free(body);
    return 0;
}
