/* sim_bn_fmt: Binance USD-M JSON shapes of the simulator's state — order responses, user-stream
 * events (ORDER_TRADE_UPDATE, ACCOUNT_UPDATE), positionRisk, exchangeInfo, error bodies — and the
 * mapping of book refusals to Binance error codes. Pure: appends text to a struct sbuf.
 * Decimals are canonical strings (dec_format): "0.01", "50000", "0". */
#ifndef CT_SIM_BN_FMT_H
#define CT_SIM_BN_FMT_H

#include <stdint.h>

#include "sim_book.h"
#include "sim_buf.h"

enum sbnf_order_view {
    SBNF_ACK = 0, /* POST /fapi/v1/order newOrderRespType=ACK: the order as accepted (NEW, nothing executed) */
    SBNF_RESULT,  /* newOrderRespType=RESULT and DELETE: the order's state now */
    SBNF_QUERY,   /* GET /fapi/v1/order and openOrders: state now, with "time" */
};

void sbnf_order(struct sbuf *b, const struct sbook_order *o, enum sbnf_order_view view);
/* ORDER_TRADE_UPDATE for an SBOOK_EV_ORDER event. */
void sbnf_order_update(struct sbuf *b, const struct sbook_event *ev);
/* ACCOUNT_UPDATE (reason ORDER) for an SBOOK_EV_ACCOUNT event: B = the wallet, P = the changed
 * position with its side (ps). */
void sbnf_account_update(struct sbuf *b, const struct sbook_event *ev);
/* ACCOUNT_UPDATE (reason ADJUSTMENT) for an SBOOK_EV_BALANCE event: B = the wallet with bc = the
 * change, P = []. */
void sbnf_balance_update(struct sbuf *b, const struct sbook_event *ev);
/* ACCOUNT_CONFIG_UPDATE {"ac":{"s","l"}} for an SBOOK_EV_LEVERAGE event. */
void sbnf_config_update(struct sbuf *b, const struct sbook_event *ev);
/* The user-stream payload of any book event (one of the above by ev->kind). */
void sbnf_event(struct sbuf *b, const struct sbook_event *ev);
void sbnf_listen_key_expired(struct sbuf *b, int64_t now_ms, const char *key);
/* One /fapi/v2/positionRisk element of side ps (BOTH in one-way mode, LONG / SHORT in hedge). */
void sbnf_position_risk(struct sbuf *b, const struct sbook_symbol *s, const struct sbook_position *p,
                        enum mkt_pos_side ps);
/* One /fapi/v3/positionRisk element (margins: |notional| / leverage, maintenance 0.4 %). */
void sbnf_position_risk_v3(struct sbuf *b, const struct sbook_symbol *s, const struct sbook_position *p,
                           enum mkt_pos_side ps);

/* Account totals over every position of every side, at the current prices: wallet, unrealized
 * PnL, equity (= margin balance = wallet + unrealized), initial margin (|notional| / leverage),
 * maintenance margin (0.4 %), available (equity - initial margin). 0 or -ERANGE. */
struct sbnf_totals {
    dec_t wallet, unrealized, equity, initial, maint, available;
};
int sbnf_totals(struct sbook *book, const struct sbook_account *a, struct sbnf_totals *t);
/* /fapi/v2/balance and v3: one USDT element with the totals. 0 or -ERANGE. */
int sbnf_balance(struct sbuf *b, struct sbook *book, const struct sbook_account *a, int64_t now);
/* GET /fapi/v3/account (also served for v2): one USDT asset, cross margin, the totals above,
 * positions (every side) with a non-zero amount. 0 or -ERANGE. */
int sbnf_account(struct sbuf *b, struct sbook *book, const struct sbook_account *a, int64_t now);
/* GET /fapi/v1/exchangeInfo for every symbol of the book. */
void sbnf_exchange_info(struct sbuf *b, struct sbook *book, int64_t now_ms);
/* The same with the rate limits the simulator enforces (sbnf_exchange_info: Binance's 2400, 1200,
 * 300). */
void sbnf_exchange_info_limits(struct sbuf *b, struct sbook *book, int64_t now_ms, int weight_1m,
                               int orders_1m, int orders_10s);
/* {"code":-1121,"msg":"Invalid symbol."} */
void sbnf_error(struct sbuf *b, int code, const char *msg);

/* Binance code and message for a book refusal; msg gets at most n bytes. */
int sbnf_map_err(enum sbook_err e, const struct sbook_symbol *s, char *msg, size_t n);

/* Unrealized PnL of p at the symbol's current price (8 decimals, toward zero). */
dec_t sbnf_unrealized(const struct sbook_symbol *s, const struct sbook_position *p);

#endif
