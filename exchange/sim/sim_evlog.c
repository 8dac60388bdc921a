#include "sim_evlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sevlog {
    struct sevlog_entry *v; /* held entries are v[first .. n) */
    size_t first, n, cap;
    size_t limit;
    int64_t next_seq;
};

struct sevlog *sevlog_new(size_t limit)
{
    struct sevlog *l = calloc(1, sizeof(*l));
    if (l) {
        l->limit = limit;
        l->next_seq = 1;
    }
    return l;
}

struct sevlog *sevlog_free(struct sevlog *l)
{
    if (!l)
        return NULL;
    for (size_t i = l->first; i < l->n; i++)
        free(l->v[i].text);
    free(l->v);
    free(l);
    return NULL;
}

/* Drop the oldest entries beyond the limit; compact when half the array is dead. */
static void trim(struct sevlog *l)
{
    while (l->limit && l->n - l->first > l->limit) {
        free(l->v[l->first].text);
        l->first++;
    }
    if (l->first && l->first >= l->n / 2) {
        memmove(l->v, l->v + l->first, (l->n - l->first) * sizeof(*l->v));
        l->n -= l->first;
        l->first = 0;
    }
}

int64_t sevlog_append(struct sevlog *l, const char *text, size_t len, int64_t time_ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct sevlog_entry *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *t = malloc(len + 1);
    if (!t)
        return -ENOMEM;
    memcpy(t, text, len);
    t[len] = '\0';
    struct sevlog_entry *e = &l->v[l->n++];
    e->seq = l->next_seq++;
    e->time_ms = time_ms;
    e->len = len;
    e->text = t;
    int64_t seq = e->seq;
    trim(l);
    return seq;
}

size_t sevlog_count(const struct sevlog *l)
{
    return l->n - l->first;
}

size_t sevlog_first_from(const struct sevlog *l, int64_t from_seq)
{
    size_t count = l->n - l->first;
    if (count == 0)
        return 0;
    /* Held seqs are consecutive: v[first].seq, +1, ... */
    int64_t oldest = l->v[l->first].seq;
    if (from_seq <= oldest)
        return 0;
    uint64_t off = (uint64_t)(from_seq - oldest);
    return off >= count ? count : (size_t)off;
}

const struct sevlog_entry *sevlog_at(const struct sevlog *l, size_t i)
{
    return i < l->n - l->first ? &l->v[l->first + i] : NULL;
}

int64_t sevlog_next_seq(const struct sevlog *l)
{
    return l->next_seq;
}
