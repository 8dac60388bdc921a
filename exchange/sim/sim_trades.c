#include "sim_trades.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct strd {
    struct strd_trade *v; /* ring when limited */
    size_t head, n, cap, limit;
};

struct strd *strd_new(size_t limit)
{
    struct strd *t = calloc(1, sizeof(*t));
    if (t)
        t->limit = limit;
    return t;
}

struct strd *strd_free(struct strd *t)
{
    if (t) {
        free(t->v);
        free(t);
    }
    return NULL;
}

size_t strd_count(const struct strd *t)
{
    return t->n;
}

const struct strd_trade *strd_at(const struct strd *t, size_t i)
{
    return i < t->n ? &t->v[(t->head + i) % t->cap] : NULL;
}

int strd_add_event(struct strd *t, const struct sbook_event *ev)
{
    if (ev->kind != SBOOK_EV_ORDER || ev->exec != SBOOK_X_TRADE || !ev->order)
        return -EINVAL;
    if (t->limit && t->n == t->limit) {
        t->head = (t->head + 1) % t->cap; /* drop the oldest */
        t->n--;
    } else if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        if (t->limit && cap > t->limit)
            cap = t->limit;
        struct strd_trade *nv = malloc(cap * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        for (size_t i = 0; i < t->n; i++)
            nv[i] = t->v[(t->head + i) % t->cap];
        free(t->v);
        t->v = nv;
        t->head = 0;
        t->cap = cap;
    }
    const struct sbook_order *o = ev->order;
    struct strd_trade *tr = &t->v[(t->head + t->n) % t->cap];
    memset(tr, 0, sizeof(*tr));
    tr->sym = o->sym;
    tr->id = ev->trade_id;
    tr->order_id = o->order_id;
    tr->side = o->side;
    tr->pos_side = o->pos_side;
    tr->maker = o->maker;
    tr->price = ev->last_price;
    tr->qty = ev->last_qty;
    if (dec_mul(ev->last_qty, ev->last_price, &tr->quote_qty) < 0)
        tr->quote_qty = DEC_ZERO;
    tr->realized = ev->realized;
    tr->commission = ev->commission;
    tr->time_ms = ev->time_ms;
    t->n++;
    return 0;
}

static bool matches(const struct strd_trade *tr, const struct strd_query *q)
{
    if (tr->sym != q->sym || (q->order_id && tr->order_id != q->order_id))
        return false;
    if (q->from_id >= 0 && tr->id < q->from_id)
        return false;
    return tr->time_ms >= q->start_ms && tr->time_ms <= q->end_ms;
}

size_t strd_query(const struct strd *t, const struct strd_query *q,
                  void (*fn)(void *ud, const struct strd_trade *tr), void *ud)
{
    size_t first = 0, got = 0;
    if (q->limit == 0)
        return 0;
    if (q->newest) {
        /* Walk back to the limit-th newest match, then forward from there. */
        size_t k = 0;
        first = t->n;
        for (size_t i = t->n; i-- > 0;) {
            if (matches(strd_at(t, i), q)) {
                first = i;
                if (++k == q->limit)
                    break;
            }
        }
    }
    for (size_t i = first; i < t->n && got < q->limit; i++) {
        const struct strd_trade *tr = strd_at(t, i);
        if (!matches(tr, q))
            continue;
        fn(ud, tr);
        got++;
    }
    return got;
}
