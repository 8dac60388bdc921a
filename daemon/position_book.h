/* position_book: the daemon's view of signed one-way positions per (account, symbol).
 *
 * `live` is what the exchange confirmed (positionRisk at start, then our own fills); `pending` is the
 * signed quantity of orders planned but not yet answered. The copy engine sizes against live +
 * pending, so a close planned while an open is still in flight sees the open (invariant 9 keeps
 * closes clamped to that). */
#ifndef CT_POSITION_BOOK_H
#define CT_POSITION_BOOK_H

#include "decimal.h"

struct position_book;

struct position_book *position_book_new(void);
struct position_book *position_book_free(struct position_book *b);

/* Live position (0 when unknown). */
dec_t position_book_live(const struct position_book *b, const char *account, const char *symbol);
/* live + pending. */
dec_t position_book_expected(const struct position_book *b, const char *account, const char *symbol);
int position_book_set_live(struct position_book *b, const char *account, const char *symbol, dec_t amount);
/* Adds signed delta to live (a fill) or pending (an order planned / answered). 0 or -ERANGE/-ENOMEM. */
int position_book_add_live(struct position_book *b, const char *account, const char *symbol, dec_t delta);
int position_book_add_pending(struct position_book *b, const char *account, const char *symbol, dec_t delta);

#endif
