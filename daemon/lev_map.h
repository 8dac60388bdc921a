/* lev_map: one account's leverage setting per symbol, compact. The exchanges list every symbol's
 * leverage (Binance's positionRisk: ~300 symbols an account), and a copier holds one map per
 * follower, so the map is a single allocation of sorted, packed records (~4 + symbol length bytes
 * each; a uthash map took ~100 bytes an entry plus ~600 a table) searched by bisection. Lookups
 * allocate nothing; adding a symbol rebuilds the map (rare: a symbol listed after the first load).
 * Leverages are 1..255 (Binance's maximum is 125, Bybit's 200); 0 means unknown. */
#ifndef CT_LEV_MAP_H
#define CT_LEV_MAP_H

#include <stddef.h>

#include "exchange.h"

struct lev_map;

/* Takes NULL (the empty map, as every lev_map_* call does) and returns NULL. */
struct lev_map *lev_map_free(struct lev_map *m);
/* The symbol's leverage, 0 when unknown (or m is NULL). */
int lev_map_get(const struct lev_map *m, const char *symbol);
/* Sets one symbol's leverage. *m may be replaced (NULL: a new map); a known symbol's is changed in
 * place. 0; -ERANGE for a leverage outside 1..255, after forgetting the symbol's (unknown now);
 * -EINVAL (symbol empty or not shorter than MKT_SYMBOL_MAX), -ENOMEM or -E2BIG (over 64 KiB of
 * records): *m unchanged. */
int lev_map_set(struct lev_map **m, const char *symbol, int leverage);
/* Sets the n leverages of v at once (an exchange's list; a later entry of a symbol wins), keeping
 * the symbols v does not list. Invalid entries (a symbol as above, a leverage outside 1..255) make
 * their symbol unknown and are counted in *n_bad (may be NULL). 0, -ENOMEM or -E2BIG (*m
 * unchanged). */
int lev_map_merge(struct lev_map **m, const struct exch_leverage *v, size_t n, size_t *n_bad);
/* Symbols with a known leverage. */
size_t lev_map_count(const struct lev_map *m);
/* Heap bytes m takes (its one allocation, as requested). */
size_t lev_map_bytes(const struct lev_map *m);

#endif
