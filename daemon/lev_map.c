#include "lev_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "market.h"

/* One allocation: the header, off[n] (each record's byte offset in the records, in symbol order),
 * then the records, in symbol order: the leverage byte, the symbol, NUL. An empty map is NULL. */
struct lev_map {
    uint16_t n;    /* records */
    uint16_t size; /* bytes of records */
    uint16_t off[];
};

static const char *records(const struct lev_map *m) { return (const char *)(m->off + m->n); }
static char *records_w(struct lev_map *m) { return (char *)(m->off + m->n); }

static size_t symbol_len(const char *s) { /* 0 when not a symbol */
    size_t len = strnlen(s, MKT_SYMBOL_MAX);
    return len < MKT_SYMBOL_MAX ? len : 0;
}

/* The record index of symbol, or -1. */
static int find(const struct lev_map *m, const char *symbol) {
    if (!m) return -1;
    const char *rec = records(m);
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(symbol, rec + m->off[mid] + 1);
        if (c == 0) return (int)mid;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

struct lev_map *lev_map_free(struct lev_map *m) {
    free(m);
    return NULL;
}

int lev_map_get(const struct lev_map *m, const char *symbol) {
    if (!symbol) return 0;
    int i = find(m, symbol);
    return i < 0 ? 0 : (unsigned char)records(m)[m->off[i]];
}

size_t lev_map_count(const struct lev_map *m) { return m ? m->n : 0; }

size_t lev_map_bytes(const struct lev_map *m) {
    return m ? sizeof(*m) + m->n * sizeof(m->off[0]) + m->size : 0;
}

struct item {
    const char *symbol;
    uint32_t seq; /* the order given: the later of two of a symbol wins */
    uint8_t leverage; /* 0: make the symbol unknown */
};

static int item_cmp(const void *pa, const void *pb) {
    const struct item *a = pa, *b = pb;
    int c = strcmp(a->symbol, b->symbol);
    if (c) return c;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

int lev_map_merge(struct lev_map **m, const struct exch_leverage *v, size_t n, size_t *n_bad) {
    size_t bad = 0;
    if (n_bad) *n_bad = 0;
    if (!m || (n && !v)) return -EINVAL;
    struct lev_map *old = *m;
    size_t old_n = old ? old->n : 0;
    if (old_n + n == 0) return 0;
    struct item *it = malloc((old_n + n) * sizeof(*it));
    if (!it) return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < old_n; i++) {
        const char *r = records(old) + old->off[i];
        it[k] = (struct item){.symbol = r + 1, .seq = (uint32_t)k, .leverage = (uint8_t)r[0]};
        k++;
    }
    for (size_t i = 0; i < n; i++) {
        bool lev_ok = v[i].leverage >= 1 && v[i].leverage <= UINT8_MAX;
        if (!symbol_len(v[i].symbol) || !lev_ok) bad++;
        if (!symbol_len(v[i].symbol)) continue; /* nothing to key it by */
        it[k] = (struct item){.symbol = v[i].symbol, .seq = (uint32_t)k,
                              .leverage = lev_ok ? (uint8_t)v[i].leverage : 0};
        k++;
    }
    qsort(it, k, sizeof(*it), item_cmp);
    /* The last of each symbol's run stands; sizes first. */
    size_t keep = 0, bytes = 0;
    for (size_t i = 0; i < k; i++) {
        if (i + 1 < k && strcmp(it[i].symbol, it[i + 1].symbol) == 0) continue;
        if (!it[i].leverage) continue;
        keep++;
        bytes += 1 + strlen(it[i].symbol) + 1;
    }
    if (bytes > UINT16_MAX) {
        free(it);
        return -E2BIG;
    }
    struct lev_map *nm = NULL;
    if (keep) {
        nm = malloc(sizeof(*nm) + keep * sizeof(nm->off[0]) + bytes);
        if (!nm) {
            free(it);
            return -ENOMEM;
        }
        nm->n = (uint16_t)keep;
        nm->size = (uint16_t)bytes;
        char *rec = (char *)(nm->off + keep);
        size_t j = 0, at = 0;
        for (size_t i = 0; i < k; i++) {
            if (i + 1 < k && strcmp(it[i].symbol, it[i + 1].symbol) == 0) continue;
            if (!it[i].leverage) continue;
            size_t len = strlen(it[i].symbol);
            nm->off[j++] = (uint16_t)at;
            rec[at] = (char)it[i].leverage;
            memcpy(rec + at + 1, it[i].symbol, len + 1);
            at += len + 2;
        }
    }
    free(it); /* it[] points into old: freed after the copy */
    free(old);
    *m = nm;
    if (n_bad) *n_bad = bad;
    return 0;
}

int lev_map_set(struct lev_map **m, const char *symbol, int leverage) {
    if (!m || !symbol || !symbol_len(symbol)) return -EINVAL;
    bool ok = leverage >= 1 && leverage <= UINT8_MAX;
    int i = find(*m, symbol);
    if (i >= 0 && ok) { /* the common case: a known symbol, in place */
        records_w(*m)[(*m)->off[i]] = (char)leverage;
        return 0;
    }
    if (i < 0 && !ok) return -ERANGE; /* unknown already */
    struct exch_leverage one = {.leverage = ok ? leverage : 0};
    memcpy(one.symbol, symbol, strlen(symbol) + 1);
    int r = lev_map_merge(m, &one, 1, NULL);
    return r < 0 ? r : ok ? 0 : -ERANGE;
}
