#include "position_book.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "market.h"

struct pos_entry {
    char key[MKT_ACCOUNT_MAX + MKT_SYMBOL_MAX + 3]; /* "account\x1fsymbol\x1f<B|L|S>" */
    dec_t live;
    dec_t pending;
    UT_hash_handle hh;
};

struct position_book {
    struct pos_entry *map;
};

/* On every leader fill, several times: concatenated by hand (snprintf cost ~1,000 instructions a
 * key, a sixth of the copier's own work per fill). */
static int make_key(char *key, size_t n, const char *account, const char *symbol, enum mkt_pos_side ps) {
    size_t la = strlen(account), ls = strlen(symbol);
    if (la + ls + 4 > n) return -ENAMETOOLONG;
    memcpy(key, account, la);
    key[la] = '\x1f';
    memcpy(key + la + 1, symbol, ls);
    key[la + 1 + ls] = '\x1f';
    key[la + 2 + ls] = ps == MKT_PS_LONG ? 'L' : ps == MKT_PS_SHORT ? 'S' : 'B';
    key[la + 3 + ls] = '\0';
    return 0;
}

static struct pos_entry *find(const struct position_book *b, const char *account, const char *symbol,
                              enum mkt_pos_side ps) {
    char key[sizeof(((struct pos_entry *)0)->key)];
    struct pos_entry *e = NULL;
    if (make_key(key, sizeof(key), account, symbol, ps) < 0) return NULL;
    HASH_FIND_STR(b->map, key, e);
    return e;
}

static struct pos_entry *get(struct position_book *b, const char *account, const char *symbol,
                             enum mkt_pos_side ps) {
    struct pos_entry *e = find(b, account, symbol, ps);
    if (e) return e;
    e = calloc(1, sizeof(*e));
    if (!e) return NULL;
    if (make_key(e->key, sizeof(e->key), account, symbol, ps) < 0) {
        free(e);
        return NULL;
    }
    HASH_ADD_STR(b->map, key, e);
    return e;
}

struct position_book *position_book_new(void) { return calloc(1, sizeof(struct position_book)); }

struct position_book *position_book_free(struct position_book *b) {
    struct pos_entry *e, *tmp;
    if (!b) return NULL;
    HASH_ITER(hh, b->map, e, tmp) {
        HASH_DEL(b->map, e);
        free(e);
    }
    free(b);
    return NULL;
}

dec_t position_book_live(const struct position_book *b, const char *account, const char *symbol,
                         enum mkt_pos_side ps) {
    struct pos_entry *e = find(b, account, symbol, ps);
    return e ? e->live : DEC_ZERO;
}

dec_t position_book_expected(const struct position_book *b, const char *account, const char *symbol,
                             enum mkt_pos_side ps) {
    struct pos_entry *e = find(b, account, symbol, ps);
    dec_t sum;
    if (!e) return DEC_ZERO;
    /* live and pending are each bounded by real order sizes; overflow here means corrupt state. */
    if (dec_add(e->live, e->pending, &sum) < 0) return e->live;
    return sum;
}

int position_book_set_live(struct position_book *b, const char *account, const char *symbol,
                           enum mkt_pos_side ps, dec_t amount) {
    struct pos_entry *e = get(b, account, symbol, ps);
    if (!e) return -ENOMEM;
    e->live = dec_normalize(ps == MKT_PS_BOTH ? amount : dec_abs(amount));
    return 0;
}

static int add_to(dec_t *slot, dec_t delta) {
    dec_t sum;
    int r = dec_add(*slot, delta, &sum);
    if (r < 0) return r;
    *slot = dec_normalize(sum);
    return 0;
}

int position_book_add_live(struct position_book *b, const char *account, const char *symbol,
                           enum mkt_pos_side ps, dec_t delta) {
    struct pos_entry *e = get(b, account, symbol, ps);
    return e ? add_to(&e->live, delta) : -ENOMEM;
}

int position_book_add_pending(struct position_book *b, const char *account, const char *symbol,
                              enum mkt_pos_side ps, dec_t delta) {
    struct pos_entry *e = get(b, account, symbol, ps);
    return e ? add_to(&e->pending, delta) : -ENOMEM;
}

dec_t position_book_delta(enum mkt_side side, enum mkt_pos_side ps, dec_t qty) {
    bool grows = ps == MKT_PS_SHORT ? side == MKT_SELL : side == MKT_BUY;
    return grows ? qty : dec_neg(qty);
}
