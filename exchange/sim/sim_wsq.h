/* sim_wsq: the simulator's websocket send queues. A frame is built once and shared, reference
 * counted, by every connection it goes to; each connection keeps a ring of them until lws lets
 * it write. Used by the Binance user-data (sim_ws.c), Bybit (sim_by_ws.c) and market
 * (sim_market.c) websockets. */
#ifndef CT_SIM_WSQ_H
#define CT_SIM_WSQ_H

#include <stddef.h>

struct swq_msg {
    unsigned refs;
    size_t len;
    unsigned char data[]; /* LWS_PRE bytes of room, then len bytes of text */
};

/* A copy of text with one reference; NULL when out of memory. */
struct swq_msg *swq_msg_new(const char *text, size_t len);
void swq_msg_ref(struct swq_msg *m);
void swq_msg_unref(struct swq_msg *m); /* takes NULL */

struct swq {
    struct swq_msg **q;
    size_t head, len, cap;
};

/* Appends m, taking a reference of its own. 0 or -ENOMEM (nothing changed). */
int swq_push(struct swq *q, struct swq_msg *m);
/* The oldest frame with the queue's reference (the caller unrefs it), or NULL when empty. */
struct swq_msg *swq_pop(struct swq *q);
struct lws;
/* Writes the oldest frame to wsi as text and asks for another writable callback while frames
 * remain. 0 (also when empty), or -1 when lws_write failed: the connection is dead, the
 * writable callback returns -1. */
int swq_write_one(struct swq *q, struct lws *wsi);
/* Drops every frame and the ring. */
void swq_clear(struct swq *q);

#endif
