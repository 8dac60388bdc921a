/* fuzz_binance_stream: bn_parse_user_event on one Binance user-data-stream frame (the bytes the
 * websocket hands over, exactly as received). Checks beyond "no crash": every string the parser
 * fills is NUL-terminated inside its array, an error leaves a message, and the yajl fast path
 * of ORDER_TRADE_UPDATE reads every frame exactly as jansson's tree does (same result, same
 * error text, the same event byte for byte). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "binance_stream.h"
#include "fuzz_util.h"

#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *frame = fz_dup(data, size);
    struct bn_user_event ev;
    char err[256];
    int rc = bn_parse_user_event(frame, size, &ev, err, sizeof err);
    /* The contract: 0, or a negative errno with a message (ENOMEM may come without one). */
    if (rc > 0 || (rc < 0 && rc != -ENOMEM && err[0] == '\0')) abort();
    if (!TERMINATED(err)) abort();
    if (rc == 0) {
        if (!TERMINATED(ev.type) || !TERMINATED(ev.exec_type) || !TERMINATED(ev.order_status) ||
            !TERMINATED(ev.listen_key) || !TERMINATED(ev.leverage_symbol) ||
            !TERMINATED(ev.fill.symbol) || !TERMINATED(ev.fill.trade_id) ||
            !TERMINATED(ev.fill.order_id) || !TERMINATED(ev.fill.order_client_id))
            abort();
        if (ev.kind == BN_EV_FILL) {
            char buf[DEC_STR_MAX];
            if (dec_format(ev.fill.qty, buf, sizeof buf) < 0) abort(); /* a valid dec_t */
            if (dec_format(ev.fill.price, buf, sizeof buf) < 0) abort();
        }
        if (ev.kind == BN_EV_LEVERAGE && (ev.leverage < 1 || ev.leverage > 1000)) abort();
        volatile size_t sum = 0;
        for (size_t i = 0; i < ev.n_positions; i++) sum += fz_touch(ev.positions[i].pos.symbol);
        (void)sum;
    }
    struct bn_user_event tree;
    char terr[256];
    int trc = bn_parse_user_event_tree(frame, size, &tree, terr, sizeof terr);
    if (trc != rc || strcmp(err, terr)) abort();
    /* Both zero the event first and fill it with the same code; only the positions array (not
     * an ORDER_TRADE_UPDATE's) is a pointer of its own. */
    if (!ev.positions && !tree.positions && memcmp(&ev, &tree, sizeof ev)) abort();
    bn_user_event_clear(&tree);
    bn_user_event_clear(&ev);
    bn_user_event_clear(&ev); /* clear twice: the header says ev stays clearable */
    free(frame);
    return 0;
}
