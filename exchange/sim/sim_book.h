/* sim_book: the simulated exchange's core — instruments with a current price, accounts with a
 * wallet balance, a position mode and positions (one-way: one BOTH position per symbol; hedge
 * mode: a LONG and a SHORT position per symbol), leverage per symbol, orders and their fills. Exchange-neutral and
 * without I/O: the protocol layers (Binance now, Bybit later) parse requests into
 * struct sbook_order_req, map enum sbook_err to their own error codes, and turn the events the
 * book emits (struct sbook_event, through the emit callback) into their stream payloads.
 *
 * Matching model (deliberately simple; there is no order book depth):
 * - MARKET fills completely at once at the symbol's current price (optionally split into several
 *   executions of given sizes, all at that price).
 * - LIMIT that is marketable (BUY price >= current, SELL price <= current) fills completely at
 *   the current price as taker; GTX (post-only) that is marketable is rejected.
 *   Otherwise GTC rests; IOC and FOK expire at once.
 * - A resting LIMIT fills completely, as maker at its own limit price, when sbook_set_price moves
 *   the price to or through it. A resting reduce-only order that would no longer reduce is
 *   expired then, and one larger than the position is filled up to the position and the rest
 *   expired (it never flips the position).
 * - Positions: signed amount, entry price (weighted average, 8 decimals, rounded toward zero),
 *   realized PnL on reductions ((price - entry) * closed qty * sign), added to the wallet
 *   balance; no fees, no margin checks.
 * - Hedge mode (Binance dualSidePosition): every order names LONG or SHORT (else
 *   SBOOK_E_POS_SIDE); reduce-only is refused (SBOOK_E_HEDGE_REDUCE_ONLY). BUY+LONG / SELL+SHORT
 *   open or add; SELL+LONG / BUY+SHORT close and behave like reduce-only orders (no more than
 *   the side's position, exempt from min notional, resting ones clamped or expired). LONG
 *   amounts are >= 0, SHORT amounts <= 0 (Binance reports SHORT negative). One-way accounts
 *   take only BOTH. The mode can change only with no position and no open order.
 *
 * Lifetime: every order and request-log entry lives as long as the book. Records in this header
 * are read-only outside sim_book.c. */
#ifndef CT_SIM_BOOK_H
#define CT_SIM_BOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"
#include "market.h"
#include "uthash.h"

enum sbook_side { SBOOK_BUY = 1, SBOOK_SELL = -1 };
enum sbook_type { SBOOK_MARKET = 0, SBOOK_LIMIT };
enum sbook_tif { SBOOK_GTC = 0, SBOOK_IOC, SBOOK_FOK, SBOOK_GTX };
enum sbook_status {
    SBOOK_ST_NEW = 0,
    SBOOK_ST_PARTIALLY_FILLED,
    SBOOK_ST_FILLED,
    SBOOK_ST_CANCELED,
    SBOOK_ST_EXPIRED,
};
enum sbook_source { SBOOK_SRC_REST = 0, SBOOK_SRC_ADMIN };

/* Why the book refused an order; the protocol layer maps these to its own codes. */
enum sbook_err {
    SBOOK_OK = 0,
    SBOOK_E_QTY_LE_ZERO,      /* quantity <= 0 */
    SBOOK_E_QTY_PRECISION,    /* more decimals than the step size has */
    SBOOK_E_QTY_MIN,          /* below (MARKET_)LOT_SIZE.minQty */
    SBOOK_E_QTY_MAX,          /* above (MARKET_)LOT_SIZE.maxQty */
    SBOOK_E_QTY_STEP,         /* not minQty + k * stepSize */
    SBOOK_E_PRICE_LE_ZERO,    /* LIMIT price <= 0 */
    SBOOK_E_PRICE_PRECISION,  /* more decimals than the tick size has */
    SBOOK_E_PRICE_MIN,        /* below PRICE_FILTER.minPrice */
    SBOOK_E_PRICE_MAX,        /* above PRICE_FILTER.maxPrice */
    SBOOK_E_PRICE_TICK,       /* not minPrice + k * tickSize */
    SBOOK_E_MIN_NOTIONAL,     /* qty * price < MIN_NOTIONAL.notional and not reduce-only */
    SBOOK_E_REDUCE_ONLY,      /* reduce-only that would not reduce or would flip */
    SBOOK_E_DUP_CLIENT_ID,    /* an open order of the account has this client id */
    SBOOK_E_GTX_WOULD_TAKE,   /* post-only that would trade at once */
    SBOOK_E_BAD_FILLS,        /* fills split: not all > 0, or sum != quantity, or not MARKET */
    SBOOK_E_ARITH,            /* a value outside the decimal range */
    SBOOK_E_NOMEM,
    SBOOK_E_POS_SIDE,         /* position side does not fit the account's mode */
    SBOOK_E_HEDGE_REDUCE_ONLY,/* reduce-only sent by a hedge-mode account */
    SBOOK_E_MODE_SAME,        /* position mode change to the current mode */
    SBOOK_E_MODE_POSITION,    /* position mode change with a position open */
    SBOOK_E_MODE_ORDERS,      /* position mode change with an open order */
};

struct sbook;
struct sbook_account;

struct sbook_symbol {
    struct mkt_instrument ins;
    dec_t price;            /* current (last = mark) price */
    int price_precision;    /* decimals of the tick size */
    int qty_precision;      /* decimals of the step size */
    size_t idx;             /* 0..nsymbols-1, config order */
    int64_t next_order_id;  /* order ids increase per symbol, like Binance */
    int64_t next_trade_id;  /* trade ids increase per symbol */
    struct sbook_order *resting; /* open GTC LIMIT orders, arrival order (utlist DL) */
    UT_hash_handle hh;
};

struct sbook_position {
    dec_t amount;       /* signed; > 0 long */
    dec_t entry_price;  /* 0 when flat */
    dec_t realized;     /* accumulated realized PnL of this symbol */
    int leverage;
    int64_t update_ms;
};

struct sbook_order {
    int64_t order_id;
    char client_id[MKT_CLIENT_ID_MAX];
    const struct sbook_symbol *sym;
    struct sbook_account *acct;
    enum sbook_side side;
    enum sbook_type type;
    enum sbook_tif tif;
    enum sbook_status status;
    enum sbook_source source;
    bool reduce_only;
    enum mkt_pos_side pos_side; /* BOTH (one-way account) or LONG / SHORT (hedge) */
    bool maker;         /* last fill was as maker (resting order) */
    int expire_reason;  /* Binance "er": 0 none, 2 IOC remainder, 4 reduce-only knocked out, 9 market remainder */
    dec_t orig_qty;
    dec_t price;        /* LIMIT price, 0 for MARKET */
    dec_t exec_qty;
    dec_t cum_quote;    /* sum of fill qty * fill price */
    dec_t avg_price;    /* cum_quote / exec_qty, 8 decimals rounded toward zero; 0 before a fill */
    int64_t time_ms, update_ms;
    /* internal */
    uint64_t hkey;
    struct sbook_order *cid_prev; /* older order of the same account with the same client id */
    struct sbook_order *prev, *next; /* resting list of the symbol */
    UT_hash_handle hh;     /* account's orders by hkey */
    UT_hash_handle hh_cid; /* account's latest order per client id */
};

/* One entry of an account's request log: every order request, accepted or not, in arrival
 * order, with the raw strings as received (NULL when absent). */
struct sbook_reqlog {
    int64_t seq; /* 1, 2, ... per account */
    enum sbook_source source;
    int64_t time_ms;
    char *client_id, *symbol, *side, *type, *tif, *quantity, *price, *reduce_only;
    char *position_side;       /* see sbook_reqlog_set_position_side */
    struct sbook_order *order; /* NULL if rejected */
    int err_code;              /* protocol error code, 0 if accepted */
    char *err_msg;
};

enum sbook_ev_kind {
    SBOOK_EV_ORDER = 0, /* an order changed (NEW, TRADE, CANCELED, EXPIRED) */
    SBOOK_EV_ACCOUNT,   /* a fill changed a position and the wallet */
    SBOOK_EV_LEVERAGE,  /* sbook_change_leverage: sym, leverage */
    SBOOK_EV_BALANCE,   /* sbook_set_balance: balance, balance_change */
};
enum sbook_exec { SBOOK_X_NEW = 0, SBOOK_X_TRADE, SBOOK_X_CANCELED, SBOOK_X_EXPIRED };

struct sbook_event {
    enum sbook_ev_kind kind;
    int64_t time_ms;
    const struct sbook_order *order;        /* ORDER: state after this execution */
    enum sbook_exec exec;                   /* ORDER */
    int64_t trade_id;                       /* ORDER+TRADE */
    dec_t last_qty, last_price;             /* ORDER+TRADE */
    dec_t realized;                         /* ORDER+TRADE: realized PnL of this fill */
    dec_t commission;                       /* ORDER+TRADE: always 0 for now */
    const struct sbook_symbol *sym;         /* ACCOUNT, LEVERAGE: the symbol */
    const struct sbook_position *pos;       /* ACCOUNT */
    dec_t balance;                          /* ACCOUNT, BALANCE: wallet balance after it */
    enum mkt_pos_side pos_side;             /* ACCOUNT: the side of pos */
    int leverage;                           /* LEVERAGE */
    dec_t balance_change;                   /* BALANCE: new - old wallet balance */
};

typedef void (*sbook_emit_fn)(void *ud, struct sbook_account *a, const struct sbook_event *ev);
typedef int64_t (*sbook_clock_fn)(void *ud);

struct sbook_order_req {
    const struct sbook_symbol *sym;
    enum sbook_side side;
    enum sbook_type type;
    enum sbook_tif tif;
    dec_t qty;
    dec_t price;            /* LIMIT */
    bool reduce_only;
    enum mkt_pos_side pos_side; /* BOTH for one-way accounts, LONG / SHORT for hedge ones */
    const char *client_id;  /* NULL: generate one */
    enum sbook_source source;
    const dec_t *fills;     /* optional split of a MARKET order (admin) */
    size_t nfills;
};

struct sbook *sbook_new(sbook_emit_fn emit, sbook_clock_fn clock, void *ud);
struct sbook *sbook_free(struct sbook *b);

/* Symbols and accounts are added at start-up. Returns 0, -EEXIST, -EINVAL or -ENOMEM. */
int sbook_add_symbol(struct sbook *b, const struct mkt_instrument *ins, dec_t price);
int sbook_add_account(struct sbook *b, const char *name, const char *api_key,
                      const char *api_secret, dec_t balance);

size_t sbook_nsymbols(const struct sbook *b);
struct sbook_symbol *sbook_symbol_at(struct sbook *b, size_t idx);
struct sbook_symbol *sbook_symbol(struct sbook *b, const char *name);
size_t sbook_naccounts(const struct sbook *b);
struct sbook_account *sbook_account_at(struct sbook *b, size_t idx);
struct sbook_account *sbook_account(struct sbook *b, const char *name);
struct sbook_account *sbook_account_by_key(struct sbook *b, const char *api_key);

size_t sbook_account_index(const struct sbook_account *a);
const char *sbook_account_name(const struct sbook_account *a);
/* The secret, for signature checks only: never log it. */
const char *sbook_account_secret(const struct sbook_account *a, size_t *len);
dec_t sbook_account_balance(const struct sbook_account *a);
/* The one-way (BOTH) position of a symbol (all zero for a hedge-mode account). */
const struct sbook_position *sbook_position(const struct sbook_account *a, const struct sbook_symbol *s);
/* The position of one side: BOTH, LONG or SHORT. */
const struct sbook_position *sbook_position_side(const struct sbook_account *a, const struct sbook_symbol *s,
                                                 enum mkt_pos_side ps);
/* Leverage is bookkeeping only (1..SBOOK_MAX_LEVERAGE; it sets the margins shown, nothing is
 * refused for margin). sbook_set_leverage is silent (start-up); sbook_change_leverage is the
 * account owner's change and emits SBOOK_EV_LEVERAGE. Return 0 or -EINVAL. */
#define SBOOK_MAX_LEVERAGE 125
#define SBOOK_DEFAULT_LEVERAGE 20
int sbook_set_leverage(struct sbook_account *a, const struct sbook_symbol *s, int leverage);
int sbook_change_leverage(struct sbook *b, struct sbook_account *a, const struct sbook_symbol *s,
                          int leverage);
int sbook_leverage(const struct sbook_account *a, const struct sbook_symbol *s);

enum mkt_pos_mode sbook_account_mode(const struct sbook_account *a);
/* Switches one-way <-> hedge. SBOOK_OK, SBOOK_E_MODE_SAME, SBOOK_E_MODE_POSITION (any position
 * open), SBOOK_E_MODE_ORDERS (any open order). Nothing is emitted. */
enum sbook_err sbook_set_position_mode(struct sbook *b, struct sbook_account *a, enum mkt_pos_mode m);
/* Sets the wallet balance (an adjustment: deposit, withdrawal, test script) and emits
 * SBOOK_EV_BALANCE. -EINVAL if balance is not a valid decimal. */
int sbook_set_balance(struct sbook *b, struct sbook_account *a, dec_t balance);
/* True if the account has an open order on s (every symbol when s is NULL) with position side
 * ps (any side when ps < 0). */
bool sbook_has_open_orders(struct sbook *b, struct sbook_account *a, const struct sbook_symbol *s, int ps);

/* Validate and execute an order. Events are emitted synchronously, in order, before it returns.
 * Returns SBOOK_OK with *out set, or the reason it was refused (nothing emitted). */
enum sbook_err sbook_place(struct sbook *b, struct sbook_account *a, const struct sbook_order_req *rq,
                           struct sbook_order **out);
/* Checks only (no state change, no events): the same verdict sbook_place would give now. */
enum sbook_err sbook_check(struct sbook *b, struct sbook_account *a, const struct sbook_order_req *rq);

/* Cancel an open order (CANCELED event). Returns 0 or -ENOENT if it is not open. */
int sbook_cancel(struct sbook *b, struct sbook_order *o);

/* Move a symbol's price and fill the resting orders it makes marketable. Returns 0 or -EINVAL
 * (price <= 0). */
int sbook_set_price(struct sbook *b, struct sbook_symbol *s, dec_t price);

/* Lookups on one account. by_client finds the newest order with that client id on that symbol. */
struct sbook_order *sbook_order_by_id(struct sbook_account *a, const struct sbook_symbol *s, int64_t id);
struct sbook_order *sbook_order_by_client(struct sbook_account *a, const struct sbook_symbol *s,
                                          const char *client_id);
/* Open orders of the account (all symbols when s is NULL), oldest first; calls fn for each. */
void sbook_open_orders(struct sbook *b, struct sbook_account *a, const struct sbook_symbol *s,
                       void (*fn)(void *ud, const struct sbook_order *o), void *ud);

/* Request log. Strings are copied. Returns the new entry or NULL (out of memory). */
struct sbook_reqlog *sbook_reqlog_add(struct sbook_account *a, enum sbook_source src,
                                      int64_t time_ms, const char *client_id, const char *symbol,
                                      const char *side, const char *type, const char *tif,
                                      const char *quantity, const char *price,
                                      const char *reduce_only);
/* The raw positionSide parameter of the request (NULL: absent); copied. 0 or -ENOMEM. */
int sbook_reqlog_set_position_side(struct sbook_reqlog *r, const char *raw);
/* Record the outcome; msg is copied. */
void sbook_reqlog_result(struct sbook_reqlog *r, struct sbook_order *o, int err_code, const char *msg);
size_t sbook_reqlog_count(const struct sbook_account *a);
const struct sbook_reqlog *sbook_reqlog_at(const struct sbook_account *a, size_t i);

/* Client order id rule shared by both exchanges' sims: ^[\.A-Z\:/a-z0-9_-]{1,36}$ (Binance). */
bool sbook_client_id_valid(const char *s);

const char *sbook_status_name(enum sbook_status s); /* "NEW", "PARTIALLY_FILLED", ... */
const char *sbook_pos_side_name(enum mkt_pos_side ps); /* "BOTH", "LONG", "SHORT" */
bool sbook_order_is_open(const struct sbook_order *o);

#endif
