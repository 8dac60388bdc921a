#include "sim_evlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sevlog {
    struct sevlog_entry *v;
    size_t n, cap;
};

struct sevlog *sevlog_new(void)
{
    return calloc(1, sizeof(struct sevlog));
}

struct sevlog *sevlog_free(struct sevlog *l)
{
    if (!l)
        return NULL;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].text);
    free(l->v);
    free(l);
    return NULL;
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
    struct sevlog_entry *e = &l->v[l->n];
    e->seq = (int64_t)l->n + 1;
    e->time_ms = time_ms;
    e->len = len;
    e->text = t;
    l->n++;
    return e->seq;
}

size_t sevlog_count(const struct sevlog *l)
{
    return l->n;
}

size_t sevlog_first_from(const struct sevlog *l, int64_t from_seq)
{
    /* seq == index + 1 */
    if (from_seq <= 1)
        return 0;
    return (uint64_t)(from_seq - 1) >= l->n ? l->n : (size_t)(from_seq - 1);
}

const struct sevlog_entry *sevlog_at(const struct sevlog *l, size_t i)
{
    return i < l->n ? &l->v[i] : NULL;
}
