/* sim_wsq: see sim_wsq.h. */
#include "sim_wsq.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

struct swq_msg *swq_msg_new(const char *text, size_t len)
{
    struct swq_msg *m = malloc(sizeof(*m) + LWS_PRE + len);
    if (!m)
        return NULL;
    m->refs = 1;
    m->len = len;
    memcpy(m->data + LWS_PRE, text, len);
    return m;
}

void swq_msg_ref(struct swq_msg *m) { m->refs++; }

void swq_msg_unref(struct swq_msg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

int swq_push(struct swq *q, struct swq_msg *m)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct swq_msg **v = malloc(cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (size_t i = 0; i < q->len; i++)
            v[i] = q->q[(q->head + i) % q->cap];
        free(q->q);
        q->q = v;
        q->head = 0;
        q->cap = cap;
    }
    q->q[(q->head + q->len) % q->cap] = m;
    q->len++;
    swq_msg_ref(m);
    return 0;
}

struct swq_msg *swq_pop(struct swq *q)
{
    if (q->len == 0)
        return NULL;
    struct swq_msg *m = q->q[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return m;
}

void swq_clear(struct swq *q)
{
    for (size_t i = 0; i < q->len; i++)
        swq_msg_unref(q->q[(q->head + i) % q->cap]);
    free(q->q);
    memset(q, 0, sizeof(*q));
}

int swq_write_one(struct swq *q, struct lws *wsi)
{
    struct swq_msg *m = swq_pop(q);
    if (!m)
        return 0;
    int n = lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT);
    swq_msg_unref(m);
    if (n < 0)
        return -1;
    if (q->len)
        lws_callback_on_writable(wsi);
    return 0;
}
