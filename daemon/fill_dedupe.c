#include "fill_dedupe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "market.h"

struct dd_entry {
    char key[MKT_ACCOUNT_MAX + MKT_SYMBOL_MAX + MKT_TRADE_ID_MAX];
    struct dd_entry *older, *newer; /* insertion order, for eviction */
    UT_hash_handle hh;
};

struct fill_dedupe {
    struct dd_entry *map;
    struct dd_entry *oldest, *newest;
    size_t capacity;
};

static void make_key(char *key, size_t n, const char *account, const char *symbol, const char *trade_id) {
    snprintf(key, n, "%s\x1f%s\x1f%s", account, symbol, trade_id);
}

static void unlink_entry(struct fill_dedupe *d, struct dd_entry *e) {
    if (e->older) e->older->newer = e->newer; else d->oldest = e->newer;
    if (e->newer) e->newer->older = e->older; else d->newest = e->older;
    HASH_DEL(d->map, e);
    free(e);
}

struct fill_dedupe *fill_dedupe_new(size_t capacity) {
    struct fill_dedupe *d = calloc(1, sizeof(*d));
    if (d) d->capacity = capacity ? capacity : 1;
    return d;
}

struct fill_dedupe *fill_dedupe_free(struct fill_dedupe *d) {
    if (!d) return NULL;
    while (d->oldest) unlink_entry(d, d->oldest);
    free(d);
    return NULL;
}

bool fill_dedupe_seen(struct fill_dedupe *d, const char *account, const char *symbol, const char *trade_id) {
    char key[sizeof(((struct dd_entry *)0)->key)];
    struct dd_entry *e = NULL;

    make_key(key, sizeof(key), account, symbol, trade_id);
    HASH_FIND_STR(d->map, key, e);
    if (e) return true;
    e = calloc(1, sizeof(*e));
    if (!e) return false; /* cannot remember: the journal's unique key still dedupes */
    memcpy(e->key, key, sizeof(key));
    HASH_ADD_STR(d->map, key, e);
    e->older = d->newest;
    if (d->newest) d->newest->newer = e; else d->oldest = e;
    d->newest = e;
    if (HASH_COUNT(d->map) > d->capacity) unlink_entry(d, d->oldest);
    return false;
}

bool fill_dedupe_contains(const struct fill_dedupe *d, const char *account, const char *symbol,
                          const char *trade_id) {
    char key[sizeof(((struct dd_entry *)0)->key)];
    struct dd_entry *e = NULL;
    make_key(key, sizeof(key), account, symbol, trade_id);
    HASH_FIND_STR(d->map, key, e);
    return e != NULL;
}

void fill_dedupe_forget(struct fill_dedupe *d, const char *account, const char *symbol, const char *trade_id) {
    char key[sizeof(((struct dd_entry *)0)->key)];
    struct dd_entry *e = NULL;
    make_key(key, sizeof(key), account, symbol, trade_id);
    HASH_FIND_STR(d->map, key, e);
    if (e) unlink_entry(d, e);
}

size_t fill_dedupe_size(const struct fill_dedupe *d) { return HASH_COUNT(d->map); }
