/* sim_by_fmt: Bybit v5 (category=linear) JSON shapes of the simulator's state — the response
 * envelope, orders (REST and the "order" topic), executions, positions, the wallet, instruments,
 * tickers — the ids Bybit shows (UUID strings derived from the book's integer ids) and the
 * mapping of book refusals to Bybit retCodes. Pure: appends text to a struct sbuf.
 *
 * Ids: orderId = "SSSSSSSS-0000-4000-8000-NNNNNNNNNNNN", execId = "SSSSSSSS-0000-4000-a000-
 * NNNNNNNNNNNN", where SSSSSSSS is the symbol's book index in hex and NNNNNNNNNNNN the book's
 * order id / trade id in decimal, zero-padded: order 1000001 of the first symbol is
 * "00000000-0000-4000-8000-000001000001", the "orderId" the admin API shows for it. */
#ifndef CT_SIM_BY_FMT_H
#define CT_SIM_BY_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim_book.h"
#include "sim_buf.h"

#define SBYF_UUID_LEN 36

/* One execution (fill) of an account, as kept for GET /v5/execution/list. */
struct sbyf_exec {
    const struct sbook_order *order; /* lives as long as the book */
    int64_t trade_id;
    int64_t time_ms;
    dec_t qty, price;
    dec_t closed;  /* part of qty that reduced the position */
    dec_t leaves;  /* order quantity left after this fill */
    dec_t realized;
    dec_t mark;    /* symbol price at the fill */
    bool maker;
    int64_t seq;   /* per account, 1, 2, ... */
};

void sbyf_order_id(char out[SBYF_UUID_LEN + 1], const struct sbook_order *o);
void sbyf_exec_id(char out[SBYF_UUID_LEN + 1], size_t sym_idx, int64_t trade_id);
/* Parses an id of the form above (exec: the execId form). 0 or -EINVAL. */
int sbyf_parse_id(const char *s, bool exec, size_t *sym_idx, int64_t *id);
/* The orderLinkId Bybit shows: the client id, or "" when the book generated it (sim-auto-N). */
const char *sbyf_link_id(const struct sbook_order *o);
/* "New", "PartiallyFilled", "Filled", "Cancelled" (EXPIRED too: derivatives report an IOC/FOK
 * remainder and a knocked-out reduce-only as Cancelled). */
const char *sbyf_status(const struct sbook_order *o);
int sbyf_position_idx(enum mkt_pos_side ps); /* BOTH 0, LONG 1, SHORT 2 */

/* {"retCode":0,"retMsg":"OK","result": ... then sbyf_end: ,"retExtInfo":{},"time":N} */
void sbyf_begin(struct sbuf *b);
void sbyf_end(struct sbuf *b, int64_t now_ms);
/* A whole error envelope: {"retCode":code,"retMsg":msg,"result":{},"retExtInfo":{},"time":N} */
void sbyf_error(struct sbuf *b, int code, const char *msg, int64_t now_ms);

/* One order object (GET /v5/order/realtime and /history items; with ws, the "order" topic item
 * with its extra fields category, closedPnl, feeCurrency). */
void sbyf_order(struct sbuf *b, const struct sbook_order *o, bool ws);
/* One execution object (GET /v5/execution/list item; with ws, the "execution" topic item). */
void sbyf_execution(struct sbuf *b, const struct sbyf_exec *x, bool ws);
/* One position object of side ps (REST uses avgPrice, the topic entryPrice). */
void sbyf_position(struct sbuf *b, const struct sbook_account *a, const struct sbook_symbol *s,
                   enum mkt_pos_side ps, bool ws, int64_t seq);
/* One wallet object (accountType UNIFIED, one USDT coin). 0 or -ERANGE. */
int sbyf_wallet(struct sbuf *b, struct sbook *book, const struct sbook_account *a);
void sbyf_instrument(struct sbuf *b, const struct sbook_symbol *s);
/* One ticker object (REST item and the topic's snapshot data). */
void sbyf_ticker(struct sbuf *b, const struct sbook_symbol *s, int64_t now_ms);

/* Bybit retCode and message for a book refusal; msg gets at most n bytes. */
int sbyf_map_err(enum sbook_err e, const struct sbook_symbol *s, char *msg, size_t n);

#endif
