/* market: exchange-neutral facts the copy engine reasons about (instruments, fills, positions).
 * Filled by the exchange adapters from exchange JSON; read by the copy engine. */
#ifndef CT_MARKET_H
#define CT_MARKET_H

#include <stdbool.h>
#include <stdint.h>

#include "decimal.h"

#define MKT_SYMBOL_MAX 32   /* incl. NUL */
#define MKT_ACCOUNT_MAX 64  /* incl. NUL */
#define MKT_CLIENT_ID_MAX 37 /* 36 chars + NUL, [A-Za-z0-9_-] */
/* Exchange trade and order ids as text: Binance's are decimal int64s, Bybit's UUIDs (36 chars). */
#define MKT_TRADE_ID_MAX 48 /* incl. NUL */
#define MKT_ORDER_ID_MAX 48 /* incl. NUL */

enum mkt_side { MKT_BUY = 1, MKT_SELL = -1 };

/* Position side of an order or fill (Binance positionSide; Bybit positionIdx 0/1/2). BOTH is
 * one-way mode and the zero value, so structs cleared with memset default to one-way. */
enum mkt_pos_side { MKT_PS_BOTH = 0, MKT_PS_LONG = 1, MKT_PS_SHORT = 2 };

/* An account's position mode (Binance dualSidePosition; Bybit position mode 0 / 3). */
enum mkt_pos_mode { MKT_PM_ONE_WAY = 0, MKT_PM_HEDGE = 1 };

/* Quantity/price rules of one symbol (Binance LOT_SIZE/MARKET_LOT_SIZE/PRICE_FILTER/MIN_NOTIONAL). */
struct mkt_instrument {
    char symbol[MKT_SYMBOL_MAX];
    dec_t step;         /* LOT_SIZE.stepSize */
    dec_t min_qty;      /* LOT_SIZE.minQty */
    dec_t max_qty;      /* LOT_SIZE.maxQty (0 = unlimited) */
    dec_t mkt_step;     /* MARKET_LOT_SIZE.stepSize (0 = same as step) */
    dec_t mkt_min_qty;  /* MARKET_LOT_SIZE.minQty */
    dec_t mkt_max_qty;  /* MARKET_LOT_SIZE.maxQty (0 = unlimited) */
    dec_t tick;         /* PRICE_FILTER.tickSize */
    dec_t min_price;    /* PRICE_FILTER.minPrice */
    dec_t max_price;    /* PRICE_FILTER.maxPrice */
    dec_t min_notional; /* MIN_NOTIONAL.notional */
};

/* One execution report of a leader order: Binance ORDER_TRADE_UPDATE with x == TRADE. */
struct mkt_fill {
    char account[MKT_ACCOUNT_MAX]; /* our account name of the leader */
    char symbol[MKT_SYMBOL_MAX];
    char trade_id[MKT_TRADE_ID_MAX]; /* Binance o.t (decimal), Bybit execId: unique per symbol */
    char order_id[MKT_ORDER_ID_MAX]; /* Binance o.i (decimal), Bybit orderId */
    /* An id that grows with every trade of the account on this symbol, where the exchange has one
     * (Binance o.t), else 0 (Bybit: execIds are UUIDs). Only > 0 values feed the high-water-mark
     * dedupe; every fill is also deduped by (account, symbol, trade_id) in memory and journal. */
    int64_t trade_seq;
    char order_client_id[MKT_CLIENT_ID_MAX]; /* o.c (truncated if longer) */
    enum mkt_side side;            /* o.S */
    dec_t qty;                     /* o.l: last filled quantity */
    dec_t price;                   /* o.L: last filled price */
    dec_t cum_qty;                 /* o.z */
    dec_t orig_qty;                /* o.q */
    bool reduce_only;              /* o.R */
    bool order_done;               /* o.X == FILLED (no more fills of this order) */
    enum mkt_pos_side pos_side;    /* o.ps: BOTH (one-way account) or LONG/SHORT (hedge account) */
    int64_t event_time_ms;         /* E */
    int64_t trade_time_ms;         /* o.T */
    int64_t received_ns;           /* CLOCK_MONOTONIC when the frame arrived (set by the stream) */
};

/* Position of one symbol: one-way mode (pos_side BOTH) signed amount (negative = short); hedge
 * mode one entry per side (LONG / SHORT; Binance reports SHORT amounts negative). */
struct mkt_position {
    char symbol[MKT_SYMBOL_MAX];
    dec_t amount;
    dec_t entry_price;
    enum mkt_pos_side pos_side;
    int leverage;               /* the symbol's leverage when the source reports it, else 0 */
    int64_t update_ms;          /* exchange time of its last change (the last fill in it), 0 = not said */
};

#endif
