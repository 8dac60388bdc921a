/* fuzz_bybit_stream: by_parse_event on one Bybit v5 private-websocket frame, and what the stream
 * does next with a parsed one: the position-mode book (bybit_modebook_note / _mode) fed from
 * position and order entries, and bybit_exec_apply_mode on every execution. Strings the parser
 * fills must be NUL-terminated inside their arrays; counts and arrays must agree. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bybit_stream.h"
#include "fuzz_util.h"

#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *frame = fz_dup(data, size);
    struct by_event ev;
    char err[256];
    int rc = by_parse_event(frame, size, &ev, err, sizeof err);
    if (rc > 0 || (rc < 0 && rc != -ENOMEM && err[0] == '\0')) abort();
    if (!TERMINATED(err)) abort();
    if (rc == 0) {
        if (!TERMINATED(ev.ret_msg)) abort();
        if ((ev.n_execs && !ev.execs) || (ev.n_positions && !ev.positions) ||
            (ev.n_orders && !ev.orders))
            abort();
        struct bybit_modebook *mb = bybit_modebook_new();
        if (!mb) abort();
        for (size_t i = 0; i < ev.n_positions; i++) {
            struct mkt_position *p = &ev.positions[i];
            if (!TERMINATED(p->symbol)) abort();
            int idx = p->pos_side == MKT_PS_LONG ? 1 : p->pos_side == MKT_PS_SHORT ? 2 : 0;
            int old = 0;
            if (bybit_modebook_note(mb, p->symbol, idx, p->leverage, &old) < 0) abort();
        }
        for (size_t i = 0; i < ev.n_orders; i++) {
            if (!TERMINATED(ev.orders[i].symbol)) abort();
            if (bybit_modebook_note(mb, ev.orders[i].symbol, ev.orders[i].position_idx, 0, NULL) < 0)
                abort();
        }
        for (size_t i = 0; i < ev.n_execs; i++) {
            struct bybit_exec *x = &ev.execs[i];
            if (!TERMINATED(x->exec_type) || !TERMINATED(x->fill.symbol) ||
                !TERMINATED(x->fill.trade_id) || !TERMINATED(x->fill.order_id) ||
                !TERMINATED(x->fill.order_client_id))
                abort();
            if (!x->has_pos_idx) bybit_exec_apply_mode(x, bybit_modebook_mode(mb, x->fill.symbol));
            if (x->is_trade) {
                char buf[DEC_STR_MAX];
                if (dec_format(x->fill.qty, buf, sizeof buf) < 0) abort();
                if (dec_format(x->fill.price, buf, sizeof buf) < 0) abort();
            }
        }
        bybit_modebook_free(mb);
    }
    by_event_clear(&ev);
    by_event_clear(&ev);
    free(frame);
    return 0;
}
