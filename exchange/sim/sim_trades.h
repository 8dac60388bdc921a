/* sim_trades: an account's executions (fills) in the order they happened, for Binance
 * GET /fapi/v1/userTrades (the leader backfill after a stream gap). Trade ids are the book's
 * (per symbol, increasing), the same as `t` of ORDER_TRADE_UPDATE. With a limit only the newest
 * `limit` trades are kept. Pure: no I/O. */
#ifndef CT_SIM_TRADES_H
#define CT_SIM_TRADES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_book.h"

struct strd_trade {
    const struct sbook_symbol *sym;
    int64_t id;
    int64_t order_id;
    enum sbook_side side;
    enum mkt_pos_side pos_side;
    bool maker;
    dec_t price, qty, quote_qty, realized, commission;
    int64_t time_ms;
};

struct strd;

/* limit 0 = keep everything. */
struct strd *strd_new(size_t limit);
struct strd *strd_free(struct strd *t);
/* Records the execution of an SBOOK_EV_ORDER / SBOOK_X_TRADE event; 0 or -ENOMEM (-EINVAL for
 * any other event). */
int strd_add_event(struct strd *t, const struct sbook_event *ev);
size_t strd_count(const struct strd *t);
const struct strd_trade *strd_at(const struct strd *t, size_t i); /* oldest first */

struct strd_query {
    const struct sbook_symbol *sym; /* required */
    int64_t order_id;               /* 0: any */
    int64_t from_id;                /* -1: none; else trades with id >= from_id, oldest first */
    int64_t start_ms, end_ms;       /* inclusive; INT64_MIN / INT64_MAX when open */
    bool newest;                    /* no from_id and no start: the newest `limit` of the range */
    size_t limit;
};

/* Calls fn for the matching trades, ascending by id (= time order per symbol); returns how many. */
size_t strd_query(const struct strd *t, const struct strd_query *q,
                  void (*fn)(void *ud, const struct strd_trade *tr), void *ud);

#endif
