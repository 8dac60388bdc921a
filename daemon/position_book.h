/* position_book: the daemon's view of signed one-way positions per (account, symbol).
 *
 * `live` is what the exchange confirmed (positionRisk at start, then our own fills); `pending` is the
 * signed quantity of orders planned but not yet answered. The copy engine sizes against live +
 * pending, so a close planned while an open is still in flight sees the open (invariant 9 keeps
 * closes clamped to that).
 *
 * Each (account, symbol) has three slots: BOTH (one-way mode, signed: negative = short), LONG
 * and SHORT (hedge mode, sizes kept positive whatever sign the exchange reports). */
#ifndef CT_POSITION_BOOK_H
#define CT_POSITION_BOOK_H

#include "decimal.h"
#include "market.h"

struct position_book;

struct position_book *position_book_new(void);
struct position_book *position_book_free(struct position_book *b);

/* Live position (0 when unknown). */
dec_t position_book_live(const struct position_book *b, const char *account, const char *symbol,
                          enum mkt_pos_side ps);
/* live + pending. */
dec_t position_book_expected(const struct position_book *b, const char *account, const char *symbol,
                          enum mkt_pos_side ps);
int position_book_set_live(struct position_book *b, const char *account, const char *symbol,
                           enum mkt_pos_side ps, dec_t amount);
/* Adds signed delta to live (a fill) or pending (an order planned / answered). 0 or -ERANGE/-ENOMEM. */
int position_book_add_live(struct position_book *b, const char *account, const char *symbol,
                           enum mkt_pos_side ps, dec_t delta);
int position_book_add_pending(struct position_book *b, const char *account, const char *symbol,
                              enum mkt_pos_side ps, dec_t delta);
/* The signed change an order of `qty` on `side` makes to slot `ps`: BOTH and LONG grow on a buy,
 * SHORT (a positive size) grows on a sell. */
dec_t position_book_delta(enum mkt_side side, enum mkt_pos_side ps, dec_t qty);

#endif
