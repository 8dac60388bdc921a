/* Bybit v5 (category=linear) REST front end of the simulator, its websocket entry and the Bybit
 * view of book events. */
#include "sim_by.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sim.h"
#include "sim_by_fmt.h"
#include "sim_by_req.h"
#include "sim_by_ws.h"
#include "sim_params.h"

#define BATCH_MAX 10

struct by_acct {
    struct sbyf_exec *ex; /* every execution, oldest first */
    size_t nex, capex;
    int64_t pos_seq;
};

struct sim_by {
    struct sim *sim;
    struct sbyws *ws;
    struct by_acct *accts;
    size_t naccts;
    struct sbuf buf; /* scratch for topic payloads */
};

/* ---- lifecycle ---- */

struct sim_by *sim_by_new(struct sim *s, char *err, size_t errlen)
{
    struct sim_by *b = calloc(1, sizeof(*b));
    int timeout = SIM_BY_AUTH_TIMEOUT_MS;
    const char *env = getenv("EXSIM_BYBIT_AUTH_TIMEOUT_MS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 1 || v > 3600000) {
            snprintf(err, errlen, "EXSIM_BYBIT_AUTH_TIMEOUT_MS: '%s' is not 1..3600000", env);
            free(b);
            return NULL;
        }
        timeout = (int)v;
    }
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->sim = s;
    b->naccts = sbook_naccounts(s->book);
    b->accts = calloc(b->naccts ? b->naccts : 1, sizeof(*b->accts));
    if (!b->accts) {
        snprintf(err, errlen, "out of memory");
        free(b);
        return NULL;
    }
    b->ws = sbyws_new(s->loop, s->book, timeout);
    if (!b->ws) {
        snprintf(err, errlen, "cannot create the Bybit websocket context (is libwebsockets-evlib-uv installed?)");
        free(b->accts);
        free(b);
        return NULL;
    }
    /* ws_duplicate / ws_reorder on the private topics: the same fault table as the REST side. */
    sbyws_set_faults(b->ws, s->faults);
    return b;
}

void sim_by_stop(struct sim_by *b)
{
    if (b)
        sbyws_destroy_begin(b->ws);
}

struct sim_by *sim_by_free(struct sim_by *b)
{
    if (!b)
        return NULL;
    b->ws = sbyws_destroy_finish(b->ws);
    for (size_t i = 0; i < b->naccts; i++)
        free(b->accts[i].ex);
    free(b->accts);
    sbuf_free(&b->buf);
    free(b);
    return NULL;
}

size_t sim_by_connections(const struct sim_by *b, const struct sbook_account *ba)
{
    return b ? sbyws_count(b->ws, sbook_account_index(ba)) : 0;
}

static size_t ws_acct(const struct sbook_account *ba)
{
    return ba ? sbook_account_index(ba) : SBYWS_ALL;
}

size_t sim_by_ws_drop(struct sim_by *b, const struct sbook_account *ba)
{
    return b ? sbyws_drop(b->ws, ws_acct(ba)) : 0;
}

size_t sim_by_ws_silence(struct sim_by *b, const struct sbook_account *ba, int64_t until_ms)
{
    return b ? sbyws_silence(b->ws, ws_acct(ba), until_ms) : 0;
}

size_t sim_by_ws_unsilence(struct sim_by *b, const struct sbook_account *ba)
{
    return b ? sbyws_unsilence(b->ws, ws_acct(ba)) : 0;
}

uint64_t sim_by_silenced_frames(const struct sim_by *b, const struct sbook_account *ba)
{
    return b ? sbyws_silenced_frames(b->ws, ws_acct(ba)) : 0;
}

/* ---- book events -> Bybit topics ---- */

static void publish(struct sim_by *b, size_t acct, unsigned topic, int64_t t)
{
    if (sbuf_failed(&b->buf)) {
        log_error("sim", "bybit: out of memory formatting an event, ignoring");
        return;
    }
    sbyws_publish(b->ws, acct, topic, b->buf.p, b->buf.len, t);
}

static void publish_positions(struct sim_by *b, struct sbook_account *ba, const struct sbook_symbol *s,
                              int only_side, int64_t t)
{
    size_t ai = sbook_account_index(ba);
    bool hedge = sbook_account_mode(ba) == MKT_PM_HEDGE;
    size_t n = 0;
    sbuf_reset(&b->buf);
    for (int k = 0; k < 3; k++) {
        if ((k == MKT_PS_BOTH) == hedge || (only_side >= 0 && k != only_side))
            continue;
        if (n++)
            sbuf_addc(&b->buf, ',');
        sbyf_position(&b->buf, ba, s, (enum mkt_pos_side)k, true, ++b->accts[ai].pos_seq);
    }
    publish(b, ai, SBYWS_POSITION, t);
}

static void publish_wallet(struct sim_by *b, struct sbook_account *ba, int64_t t)
{
    sbuf_reset(&b->buf);
    if (sbyf_wallet(&b->buf, b->sim->book, ba) == 0)
        publish(b, sbook_account_index(ba), SBYWS_WALLET, t);
}

static int record_exec(struct sim_by *b, struct sbook_account *ba, const struct sbook_event *ev)
{
    struct by_acct *a = &b->accts[sbook_account_index(ba)];
    const struct sbook_order *o = ev->order;
    if (a->nex == a->capex) {
        size_t cap = a->capex ? a->capex * 2 : 64;
        struct sbyf_exec *v = realloc(a->ex, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        a->ex = v;
        a->capex = cap;
    }
    struct sbyf_exec *x = &a->ex[a->nex];
    memset(x, 0, sizeof(*x));
    x->order = o;
    x->trade_id = ev->trade_id;
    x->time_ms = ev->time_ms;
    x->qty = ev->last_qty;
    x->price = ev->last_price;
    x->realized = ev->realized;
    x->maker = o->maker;
    x->mark = o->sym->price;
    x->seq = (int64_t)a->nex + 1;
    if (dec_sub(o->orig_qty, o->exec_qty, &x->leaves) < 0 || !sbook_order_is_open(o))
        x->leaves = DEC_ZERO;
    /* The book applied the fill before emitting it: the position before was now - fill. */
    dec_t now_amt = sbook_position_side(ba, o->sym, o->pos_side)->amount, before;
    dec_t signed_q = o->side == SBOOK_BUY ? ev->last_qty : dec_neg(ev->last_qty);
    x->closed = DEC_ZERO;
    if (dec_sub(now_amt, signed_q, &before) == 0 && dec_sign(before) != 0 && dec_sign(before) != (int)o->side)
        x->closed = dec_min(ev->last_qty, dec_abs(before));
    a->nex++;
    return 0;
}

void sim_by_on_event(struct sim_by *b, struct sbook_account *ba, const struct sbook_event *ev)
{
    size_t ai;
    if (!b)
        return;
    ai = sbook_account_index(ba);
    if (ai >= b->naccts)
        return;
    switch (ev->kind) {
    case SBOOK_EV_ORDER:
        if (ev->exec == SBOOK_X_TRADE) {
            if (record_exec(b, ba, ev) < 0) {
                log_error("sim", "account %s: out of memory recording a Bybit execution, ignoring",
                          sbook_account_name(ba));
            } else if (sbyws_wants(b->ws, ai, SBYWS_EXECUTION)) {
                sbuf_reset(&b->buf);
                sbyf_execution(&b->buf, &b->accts[ai].ex[b->accts[ai].nex - 1], true);
                publish(b, ai, SBYWS_EXECUTION, ev->time_ms);
            }
        }
        if (sbyws_wants(b->ws, ai, SBYWS_ORDER)) {
            sbuf_reset(&b->buf);
            sbyf_order(&b->buf, ev->order, true);
            publish(b, ai, SBYWS_ORDER, ev->time_ms);
        }
        break;
    case SBOOK_EV_ACCOUNT:
        if (sbyws_wants(b->ws, ai, SBYWS_POSITION))
            publish_positions(b, ba, ev->sym, (int)ev->pos_side, ev->time_ms);
        if (sbyws_wants(b->ws, ai, SBYWS_WALLET))
            publish_wallet(b, ba, ev->time_ms);
        break;
    case SBOOK_EV_LEVERAGE:
        if (sbyws_wants(b->ws, ai, SBYWS_POSITION))
            publish_positions(b, ba, ev->sym, -1, ev->time_ms);
        break;
    case SBOOK_EV_BALANCE:
        if (sbyws_wants(b->ws, ai, SBYWS_WALLET))
            publish_wallet(b, ba, ev->time_ms);
        break;
    }
}

/* ---- REST ---- */

enum by_sec { BY_NONE = 0, BY_SIGNED };

struct by_call {
    struct sim *sim;
    struct sim_by *by;
    const struct shttp_req *req;
    struct shttp_resp *resp;
    struct sp_list q;  /* query parameters */
    json_t *body;      /* POST: the JSON body */
    struct sbook_account *ba;
    int64_t now;
};

typedef void (*by_fn)(struct by_call *c);

struct by_route {
    enum shttp_method method;
    const char *path;
    enum by_sec sec;
    by_fn fn;
};

static void reply_error(struct by_call *c, int http, int code, const char *msg)
{
    c->resp->status = http;
    sbuf_reset(&c->resp->body);
    sbyf_error(&c->resp->body, code, msg, c->now);
}

static void reply_errorf(struct by_call *c, int code, const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, arg);
    reply_error(c, 200, code, msg);
}

/* A query parameter or a string member of the JSON body (NULL if absent or empty). */
static const char *param(struct by_call *c, const char *key)
{
    const char *v = NULL;
    if (c->body) {
        json_t *j = json_object_get(c->body, key);
        if (json_is_string(j))
            v = json_string_value(j);
    } else {
        v = sp_get(&c->q, key);
    }
    return v && *v ? v : NULL;
}

/* category must be linear; false (answered) otherwise. With others_empty, the other Bybit
 * categories are accepted and *empty set (a market list without them). */
static bool check_category(struct by_call *c, bool others_empty, bool *empty)
{
    const char *cat = param(c, "category");
    if (empty)
        *empty = false;
    if (!cat) {
        reply_error(c, 200, 10001, "params error: category is missing");
        return false;
    }
    if (!strcmp(cat, "linear"))
        return true;
    if (others_empty && (!strcmp(cat, "spot") || !strcmp(cat, "inverse") || !strcmp(cat, "option"))) {
        *empty = true;
        return true;
    }
    reply_errorf(c, 10001, "params error: category %s is not served by the simulator (linear only)", cat);
    return false;
}

/* symbol parameter: NULL if absent; *bad (answered) if unknown. */
static struct sbook_symbol *opt_symbol(struct by_call *c, bool *bad)
{
    const char *v = param(c, "symbol");
    *bad = false;
    if (!v)
        return NULL;
    struct sbook_symbol *s = sbook_symbol(c->sim->book, v);
    if (!s) {
        *bad = true;
        reply_error(c, 200, 10001, "params error: symbol invalid");
    }
    return s;
}

static bool int_param(struct by_call *c, const char *key, int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = param(c, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!sbyr_parse_i64(v, strlen(v), out) || *out < lo || *out > hi) {
        reply_errorf(c, 10001, "params error: %s invalid", key);
        return false;
    }
    return true;
}

/* ---- market ---- */

static void h_time(struct by_call *c)
{
    sbyf_begin(&c->resp->body);
    sbuf_addf(&c->resp->body, "{\"timeSecond\":\"%" PRId64 "\",\"timeNano\":\"%" PRId64 "000000\"}", c->now / 1000,
              c->now);
    sbyf_end(&c->resp->body, c->now);
}

static void h_instruments(struct by_call *c)
{
    bool empty, bad;
    struct sbuf *b = &c->resp->body;
    if (!check_category(c, true, &empty))
        return;
    struct sbook_symbol *only = empty ? NULL : opt_symbol(c, &bad);
    if (!empty && bad)
        return;
    const char *status = param(c, "status");
    if (status && strcmp(status, "Trading") != 0)
        empty = true;
    sbyf_begin(b);
    sbuf_adds(b, "{\"category\":");
    sbuf_add_jstr(b, param(c, "category"));
    sbuf_adds(b, ",\"list\":[");
    size_t n = 0;
    for (size_t i = 0; !empty && i < sbook_nsymbols(c->sim->book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(c->sim->book, i);
        if (only && s != only)
            continue;
        if (n++)
            sbuf_addc(b, ',');
        sbyf_instrument(b, s);
    }
    sbuf_adds(b, "],\"nextPageCursor\":\"\"}");
    sbyf_end(b, c->now);
}

static void h_tickers(struct by_call *c)
{
    bool empty, bad;
    struct sbuf *b = &c->resp->body;
    if (!check_category(c, true, &empty))
        return;
    struct sbook_symbol *only = empty ? NULL : opt_symbol(c, &bad);
    if (!empty && bad)
        return;
    sbyf_begin(b);
    sbuf_adds(b, "{\"category\":");
    sbuf_add_jstr(b, param(c, "category"));
    sbuf_adds(b, ",\"list\":[");
    size_t n = 0;
    for (size_t i = 0; !empty && i < sbook_nsymbols(c->sim->book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(c->sim->book, i);
        if (only && s != only)
            continue;
        if (n++)
            sbuf_addc(b, ',');
        sbyf_ticker(b, s, c->now);
    }
    sbuf_adds(b, "]}");
    sbyf_end(b, c->now);
}

/* ---- orders ---- */

/* Any order of the account (any symbol, open or not) with this client id: Bybit's orderLinkId
 * is unique for good, not only among open orders. */
static bool link_id_used(struct by_call *c, const char *link)
{
    for (size_t i = 0; i < sbook_nsymbols(c->sim->book); i++)
        if (sbook_order_by_client(c->ba, sbook_symbol_at(c->sim->book, i), link))
            return true;
    return false;
}

/* Parse, log, check and place one order object; answers nothing. Returns 0 (and *out) or a
 * retCode with msg. */
static int place_one(struct by_call *c, json_t *obj, const char *category, struct sbyr_order *po,
                     struct sbook_order **out, char *msg, size_t n)
{
    int code = sbyr_parse_order(obj, category, c->sim->book, sbook_account_mode(c->ba), po, msg, n);
    struct sbook_reqlog *rl = sbook_reqlog_add(c->ba, SBOOK_SRC_REST, c->now, po->link_id, po->symbol, po->side,
                                               po->type, po->tif, po->qty, po->price, po->reduce_only);
    if (rl && sbook_reqlog_set_position_side(rl, po->position_side) < 0)
        rl = NULL;
    if (!rl)
        log_error("sim", "account %s: out of memory recording an order request, ignoring", sbook_account_name(c->ba));
    *out = NULL;
    if (!code && po->rq.client_id && link_id_used(c, po->rq.client_id))
        code = sbyf_map_err(SBOOK_E_DUP_CLIENT_ID, po->rq.sym, msg, n);
    if (!code) {
        enum sbook_err e = sbook_place(c->sim->book, c->ba, &po->rq, out);
        if (e != SBOOK_OK)
            code = sbyf_map_err(e, po->rq.sym, msg, n);
    }
    sbook_reqlog_result(rl, code ? NULL : *out, code, code ? msg : NULL);
    return code;
}

static void h_create(struct by_call *c)
{
    struct sbyr_order po;
    struct sbook_order *o;
    char msg[256], id[SBYF_UUID_LEN + 1];
    int code = place_one(c, c->body, NULL, &po, &o, msg, sizeof(msg));
    if (code) {
        reply_error(c, 200, code, msg);
        return;
    }
    sbyf_order_id(id, o);
    sbyf_begin(&c->resp->body);
    sbuf_adds(&c->resp->body, "{\"orderId\":");
    sbuf_add_jstr(&c->resp->body, id);
    sbuf_adds(&c->resp->body, ",\"orderLinkId\":");
    sbuf_add_jstr(&c->resp->body, sbyf_link_id(o));
    sbuf_addc(&c->resp->body, '}');
    sbyf_end(&c->resp->body, c->now);
}

static void h_create_batch(struct by_call *c)
{
    json_t *list = json_object_get(c->body, "request");
    struct sbuf ext = SBUF_INIT, *b = &c->resp->body;
    char msg[256], id[SBYF_UUID_LEN + 1];
    size_t i;
    json_t *item;
    if (!check_category(c, false, NULL))
        return;
    if (!json_is_array(list) || json_array_size(list) == 0) {
        reply_error(c, 200, 10001, "params error: request must be a non-empty array");
        return;
    }
    if (json_array_size(list) > BATCH_MAX) {
        reply_error(c, 200, 10001, "params error: at most 10 orders per batch for category linear");
        return;
    }
    sbyf_begin(b);
    sbuf_adds(b, "{\"list\":[");
    json_array_foreach(list, i, item) {
        struct sbyr_order po;
        struct sbook_order *o;
        int code = place_one(c, item, "linear", &po, &o, msg, sizeof(msg));
        if (i) {
            sbuf_addc(b, ',');
            sbuf_addc(&ext, ',');
        }
        sbuf_adds(b, "{\"category\":\"linear\",\"symbol\":");
        sbuf_add_jstr(b, po.symbol ? po.symbol : "");
        if (code) {
            sbuf_adds(b, ",\"orderId\":\"\",\"orderLinkId\":");
            sbuf_add_jstr(b, po.link_id ? po.link_id : "");
            sbuf_adds(b, ",\"createAt\":\"\"}");
            sbuf_addf(&ext, "{\"code\":%d,\"msg\":", code);
            sbuf_add_jstr(&ext, msg);
            sbuf_addc(&ext, '}');
        } else {
            sbyf_order_id(id, o);
            sbuf_adds(b, ",\"orderId\":");
            sbuf_add_jstr(b, id);
            sbuf_adds(b, ",\"orderLinkId\":");
            sbuf_add_jstr(b, sbyf_link_id(o));
            sbuf_addf(b, ",\"createAt\":\"%" PRId64 "\"}", o->time_ms);
            sbuf_adds(&ext, "{\"code\":0,\"msg\":\"OK\"}");
        }
    }
    sbuf_adds(b, "]},\"retExtInfo\":{\"list\":[");
    sbuf_add(b, ext.p ? ext.p : "", ext.len);
    if (sbuf_failed(&ext))
        b->failed = true;
    sbuf_addf(b, "]},\"time\":%" PRId64 "}", c->now);
    sbuf_free(&ext);
}

/* orderId or orderLinkId (+ symbol, optional here): the account's order, or NULL (answered). */
static struct sbook_order *find_order(struct by_call *c)
{
    bool bad;
    struct sbook_symbol *s = opt_symbol(c, &bad);
    const char *oid = param(c, "orderId"), *link = param(c, "orderLinkId");
    struct sbook_order *o = NULL;
    if (bad)
        return NULL;
    if (!oid && !link) {
        reply_error(c, 200, 10001, "params error: orderId or orderLinkId is required");
        return NULL;
    }
    if (oid) {
        size_t idx;
        int64_t id;
        struct sbook_symbol *os;
        if (sbyf_parse_id(oid, false, &idx, &id) == 0 && (os = sbook_symbol_at(c->sim->book, idx)) &&
            (!s || s == os))
            o = sbook_order_by_id(c->ba, os, id);
        if (o && link && strcmp(sbyf_link_id(o), link) != 0)
            o = NULL;
    } else {
        for (size_t i = 0; !o && i < sbook_nsymbols(c->sim->book); i++) {
            struct sbook_symbol *os = sbook_symbol_at(c->sim->book, i);
            if (!s || s == os)
                o = sbook_order_by_client(c->ba, os, link);
        }
    }
    if (!o)
        reply_error(c, 200, 110001, "Order does not exist");
    return o;
}

static void ack(struct by_call *c, const struct sbook_order *o)
{
    char id[SBYF_UUID_LEN + 1];
    sbyf_order_id(id, o);
    sbyf_begin(&c->resp->body);
    sbuf_adds(&c->resp->body, "{\"orderId\":");
    sbuf_add_jstr(&c->resp->body, id);
    sbuf_adds(&c->resp->body, ",\"orderLinkId\":");
    sbuf_add_jstr(&c->resp->body, sbyf_link_id(o));
    sbuf_addc(&c->resp->body, '}');
    sbyf_end(&c->resp->body, c->now);
}

static void h_cancel(struct by_call *c)
{
    if (!check_category(c, false, NULL))
        return;
    struct sbook_order *o = find_order(c);
    if (!o)
        return;
    if (sbook_cancel(c->sim->book, o) < 0) {
        reply_error(c, 200, 110001, "Order does not exist");
        return;
    }
    ack(c, o);
}

struct collect {
    struct sbook_order **v;
    size_t n, cap;
    bool failed;
};

static void collect_one(void *ud, const struct sbook_order *o)
{
    struct collect *x = ud;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        struct sbook_order **v = realloc(x->v, cap * sizeof(*v));
        if (!v) {
            x->failed = true;
            return;
        }
        x->v = v;
        x->cap = cap;
    }
    x->v[x->n++] = (struct sbook_order *)o;
}

static void h_cancel_all(struct by_call *c)
{
    bool bad;
    struct collect x = {0};
    struct sbuf *b = &c->resp->body;
    char id[SBYF_UUID_LEN + 1];
    if (!check_category(c, false, NULL))
        return;
    struct sbook_symbol *s = opt_symbol(c, &bad);
    if (bad)
        return;
    const char *settle = param(c, "settleCoin");
    if (!s && !settle && !param(c, "baseCoin")) {
        reply_error(c, 200, 10001, "params error: symbol, baseCoin or settleCoin is required");
        return;
    }
    if (!settle || !strcmp(settle, "USDT"))
        sbook_open_orders(c->sim->book, c->ba, s, collect_one, &x);
    if (x.failed) {
        free(x.v);
        reply_error(c, 200, 10016, "Server error.");
        return;
    }
    sbyf_begin(b);
    sbuf_adds(b, "{\"list\":[");
    for (size_t i = 0; i < x.n; i++) {
        sbook_cancel(c->sim->book, x.v[i]);
        if (i)
            sbuf_addc(b, ',');
        sbyf_order_id(id, x.v[i]);
        sbuf_adds(b, "{\"orderId\":");
        sbuf_add_jstr(b, id);
        sbuf_adds(b, ",\"orderLinkId\":");
        sbuf_add_jstr(b, sbyf_link_id(x.v[i]));
        sbuf_addc(b, '}');
    }
    sbuf_adds(b, "],\"success\":\"1\"}");
    sbyf_end(b, c->now);
    free(x.v);
}

/* Cursor: the index (exclusive) below which a newest-first walk continues; "" = from the end.
 * Indices into append-only arrays stay valid while new entries arrive. */
static bool parse_cursor(struct by_call *c, size_t count, size_t *start)
{
    const char *v = param(c, "cursor");
    int64_t x;
    *start = count;
    if (!v)
        return true;
    if (!sbyr_parse_i64(v, strlen(v), &x) || (size_t)x > count) {
        reply_error(c, 200, 10001, "params error: cursor invalid");
        return false;
    }
    *start = (size_t)x;
    return true;
}

enum order_view { OV_REALTIME = 0, OV_HISTORY };

static void list_orders(struct by_call *c, enum order_view view)
{
    bool bad;
    int64_t limit, open_only, t0, t1;
    size_t start, n = 0, i;
    struct sbuf *b = &c->resp->body;
    if (!check_category(c, false, NULL))
        return;
    struct sbook_symbol *s = opt_symbol(c, &bad);
    if (bad)
        return;
    const char *oid = param(c, "orderId"), *link = param(c, "orderLinkId"), *settle = param(c, "settleCoin");
    const char *status = param(c, "orderStatus");
    if (view == OV_REALTIME && !s && !oid && !link && !settle && !param(c, "baseCoin")) {
        reply_error(c, 200, 10001, "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin");
        return;
    }
    if (!int_param(c, "limit", 20, 1, 50, &limit) || !int_param(c, "openOnly", 0, 0, 2, &open_only) ||
        !int_param(c, "startTime", 0, 0, INT64_MAX, &t0) || !int_param(c, "endTime", INT64_MAX, 0, INT64_MAX, &t1))
        return;
    size_t count = sbook_reqlog_count(c->ba);
    if (!parse_cursor(c, count, &start))
        return;
    bool wrong_coin = settle && strcmp(settle, "USDT") != 0;

    sbyf_begin(b);
    sbuf_adds(b, "{\"category\":\"linear\",\"list\":[");
    for (i = start; i > 0 && !wrong_coin; i--) {
        const struct sbook_reqlog *r = sbook_reqlog_at(c->ba, i - 1);
        const struct sbook_order *o = r->order;
        char id[SBYF_UUID_LEN + 1];
        if (!o || (s && o->sym != s))
            continue;
        if (oid) {
            sbyf_order_id(id, o);
            if (strcmp(id, oid) != 0)
                continue;
        }
        if (link && strcmp(sbyf_link_id(o), link) != 0)
            continue;
        bool open = sbook_order_is_open(o);
        if (view == OV_REALTIME && !oid && !link && open_only == 0 && !open)
            continue;
        if (view == OV_HISTORY && open && !status)
            continue;
        if (status && strcmp(sbyf_status(o), status) != 0)
            continue;
        if (o->time_ms < t0 || o->time_ms > t1)
            continue;
        if ((int64_t)n == limit)
            break;
        if (n++)
            sbuf_addc(b, ',');
        sbyf_order(b, o, false);
    }
    sbuf_adds(b, "],\"nextPageCursor\":");
    if (i > 0 && (int64_t)n == limit && !wrong_coin)
        sbuf_addf(b, "\"%zu\"", i);
    else
        sbuf_adds(b, "\"\"");
    sbuf_addc(b, '}');
    sbyf_end(b, c->now);
}

static void h_realtime(struct by_call *c)
{
    list_orders(c, OV_REALTIME);
}

static void h_history(struct by_call *c)
{
    list_orders(c, OV_HISTORY);
}

static void h_executions(struct by_call *c)
{
    bool bad;
    int64_t limit, t0, t1;
    size_t start, n = 0, i;
    struct sbuf *b = &c->resp->body;
    struct by_acct *a = &c->by->accts[sbook_account_index(c->ba)];
    if (!check_category(c, false, NULL))
        return;
    struct sbook_symbol *s = opt_symbol(c, &bad);
    if (bad)
        return;
    if (!int_param(c, "limit", 50, 1, 100, &limit) || !int_param(c, "startTime", 0, 0, INT64_MAX, &t0) ||
        !int_param(c, "endTime", INT64_MAX, 0, INT64_MAX, &t1))
        return;
    const char *oid = param(c, "orderId"), *link = param(c, "orderLinkId"), *type = param(c, "execType");
    if (!parse_cursor(c, a->nex, &start))
        return;
    bool none = type && strcmp(type, "Trade") != 0; /* only trades happen here */

    sbyf_begin(b);
    sbuf_adds(b, "{\"category\":\"linear\",\"list\":[");
    for (i = start; i > 0 && !none; i--) {
        const struct sbyf_exec *x = &a->ex[i - 1];
        char id[SBYF_UUID_LEN + 1];
        if (s && x->order->sym != s)
            continue;
        if (oid) {
            sbyf_order_id(id, x->order);
            if (strcmp(id, oid) != 0)
                continue;
        }
        if (link && strcmp(sbyf_link_id(x->order), link) != 0)
            continue;
        if (x->time_ms < t0 || x->time_ms > t1)
            continue;
        if ((int64_t)n == limit)
            break;
        if (n++)
            sbuf_addc(b, ',');
        sbyf_execution(b, x, false);
    }
    sbuf_adds(b, "],\"nextPageCursor\":");
    if (i > 0 && (int64_t)n == limit && !none)
        sbuf_addf(b, "\"%zu\"", i);
    else
        sbuf_adds(b, "\"\"");
    sbuf_addc(b, '}');
    sbyf_end(b, c->now);
}

/* ---- positions and account ---- */

static void h_positions(struct by_call *c)
{
    bool bad;
    int64_t limit, skip = 0;
    struct sbuf *b = &c->resp->body;
    if (!check_category(c, false, NULL))
        return;
    struct sbook_symbol *only = opt_symbol(c, &bad);
    if (bad)
        return;
    const char *settle = param(c, "settleCoin"), *cur = param(c, "cursor");
    if (!only && !settle && !param(c, "baseCoin")) {
        reply_error(c, 200, 10001, "Missing some parameters that must be filled in, symbol or settleCoin");
        return;
    }
    if (!int_param(c, "limit", 20, 1, 200, &limit))
        return;
    if (cur && (!sbyr_parse_i64(cur, strlen(cur), &skip))) {
        reply_error(c, 200, 10001, "params error: cursor invalid");
        return;
    }
    bool hedge = sbook_account_mode(c->ba) == MKT_PM_HEDGE;
    bool wrong_coin = !only && settle && strcmp(settle, "USDT") != 0;
    int64_t seen = 0, n = 0;
    bool more = false;
    sbyf_begin(b);
    sbuf_adds(b, "{\"category\":\"linear\",\"list\":[");
    for (size_t i = 0; i < sbook_nsymbols(c->sim->book) && !wrong_coin && !more; i++) {
        const struct sbook_symbol *s = sbook_symbol_at(c->sim->book, i);
        if (only && s != only)
            continue;
        for (int k = 0; k < 3; k++) {
            if ((k == MKT_PS_BOTH) == hedge)
                continue;
            /* With a symbol every side is listed; by coin only open positions. */
            if (!only && dec_is_zero(sbook_position_side(c->ba, s, (enum mkt_pos_side)k)->amount))
                continue;
            if (seen++ < skip)
                continue;
            if (n == limit) {
                more = true;
                break;
            }
            if (n++)
                sbuf_addc(b, ',');
            sbyf_position(b, c->ba, s, (enum mkt_pos_side)k, false,
                          c->by->accts[sbook_account_index(c->ba)].pos_seq);
        }
    }
    sbuf_adds(b, "],\"nextPageCursor\":");
    if (more)
        sbuf_addf(b, "\"%" PRId64 "\"", skip + n);
    else
        sbuf_adds(b, "\"\"");
    sbuf_addc(b, '}');
    sbyf_end(b, c->now);
}

/* A leverage string: an integer value 1..SBOOK_MAX_LEVERAGE ("10", "10.00"). */
static int leverage_value(const char *v)
{
    dec_t d, one = dec_from_int(1);
    if (!v || dec_parse_cstr(v, &d) < 0 || !dec_is_multiple(d, one) || dec_cmp(d, one) < 0 ||
        dec_cmp(d, dec_from_int(SBOOK_MAX_LEVERAGE)) > 0)
        return -1;
    for (int l = 1; l <= SBOOK_MAX_LEVERAGE; l++)
        if (dec_cmp(d, dec_from_int(l)) == 0)
            return l;
    return -1;
}

static void h_set_leverage(struct by_call *c)
{
    bool bad;
    if (!check_category(c, false, NULL))
        return;
    struct sbook_symbol *s = opt_symbol(c, &bad);
    if (bad)
        return;
    if (!s) {
        reply_error(c, 200, 10001, "params error: symbol is missing");
        return;
    }
    const char *bl = param(c, "buyLeverage"), *sl = param(c, "sellLeverage");
    if (!bl || !sl) {
        reply_error(c, 200, 10001, "params error: buyLeverage and sellLeverage are required");
        return;
    }
    int lb = leverage_value(bl), ls = leverage_value(sl);
    if (lb < 0 || ls < 0) {
        reply_errorf(c, 10001, "params error: leverage must be a whole number 1..125 in the simulator, got %s",
                     lb < 0 ? bl : sl);
        return;
    }
    if (lb != ls) {
        reply_error(c, 200, 10001, "params error: buyLeverage must equal sellLeverage");
        return;
    }
    if (sbook_leverage(c->ba, s) == lb) {
        reply_error(c, 200, 110043, "Set leverage has not been modified.");
        return;
    }
    if (sbook_change_leverage(c->sim->book, c->ba, s, lb) < 0) {
        reply_error(c, 200, 10001, "params error: leverage invalid");
        return;
    }
    sbyf_begin(&c->resp->body);
    sbuf_adds(&c->resp->body, "{}");
    sbyf_end(&c->resp->body, c->now);
}

static void h_switch_mode(struct by_call *c)
{
    bool bad;
    char msg[160];
    int64_t mode;
    if (!check_category(c, false, NULL))
        return;
    (void)opt_symbol(c, &bad);
    if (bad)
        return;
    if (!param(c, "symbol") && !param(c, "coin")) {
        reply_error(c, 200, 10001, "params error: symbol or coin is required");
        return;
    }
    json_t *m = json_object_get(c->body, "mode");
    if (json_is_integer(m))
        mode = json_integer_value(m);
    else if (!(json_is_string(m) && sbyr_parse_i64(json_string_value(m), strlen(json_string_value(m)), &mode)))
        mode = -1;
    if (mode != 0 && mode != 3) {
        reply_error(c, 200, 10001, "params error: mode must be 0 (one-way) or 3 (hedge)");
        return;
    }
    /* Bybit keeps the mode per symbol / coin; the book keeps one per account: any switch
     * switches the whole account. */
    enum sbook_err e = sbook_set_position_mode(c->sim->book, c->ba, mode == 3 ? MKT_PM_HEDGE : MKT_PM_ONE_WAY);
    if (e != SBOOK_OK) {
        int code = sbyf_map_err(e, NULL, msg, sizeof(msg));
        reply_error(c, 200, code, msg);
        return;
    }
    sbyf_begin(&c->resp->body);
    sbuf_adds(&c->resp->body, "{}");
    sbyf_end(&c->resp->body, c->now);
}

static void h_wallet(struct by_call *c)
{
    const char *type = param(c, "accountType"), *coin = param(c, "coin");
    struct sbuf *b = &c->resp->body;
    if (!type || strcmp(type, "UNIFIED") != 0) {
        reply_error(c, 200, 10001, "accountType only support UNIFIED");
        return;
    }
    sbyf_begin(b);
    sbuf_adds(b, "{\"list\":[");
    if (!coin || strstr(coin, "USDT")) {
        if (sbyf_wallet(b, c->sim->book, c->ba) < 0) {
            reply_error(c, 200, 10016, "Server error.");
            return;
        }
    }
    sbuf_adds(b, "]}");
    sbyf_end(b, c->now);
}

static void h_account_info(struct by_call *c)
{
    sbyf_begin(&c->resp->body);
    sbuf_addf(&c->resp->body,
              "{\"unifiedMarginStatus\":5,\"marginMode\":\"REGULAR_MARGIN\",\"isMasterTrader\":false,"
              "\"spotHedgingStatus\":\"OFF\",\"updatedTime\":\"%" PRId64 "\",\"dcpStatus\":\"OFF\","
              "\"timeWindow\":10,\"smpGroup\":0}",
              c->now);
    sbyf_end(&c->resp->body, c->now);
}

static void h_query_api(struct by_call *c)
{
    struct sbuf *b = &c->resp->body;
    size_t klen = 0;
    const char *key = shttp_header(c->req, "X-BAPI-API-KEY", &klen);
    sbyf_begin(b);
    sbuf_addf(b, "{\"id\":\"%zu\",\"note\":\"copytrader-exsim\",\"apiKey\":", sbook_account_index(c->ba) + 1);
    sbuf_add_jstrn(b, key, klen);
    sbuf_adds(b, ",\"readOnly\":0,\"secret\":\"\",\"permissions\":{\"ContractTrade\":[\"Order\",\"Position\"],"
                 "\"Spot\":[],\"Wallet\":[\"AccountTransfer\"],\"Options\":[],\"Derivatives\":[],"
                 "\"CopyTrading\":[],\"BlockTrade\":[],\"Exchange\":[],\"NFT\":[],\"Affiliate\":[]},"
                 "\"ips\":[\"*\"],\"type\":1,\"deadlineDay\":-1,\"expiredAt\":\"\","
                 "\"createdAt\":\"2024-01-01T00:00:00Z\",\"unified\":0,\"uta\":1,");
    sbuf_addf(b, "\"userID\":%zu,", sbook_account_index(c->ba) + 1000001);
    sbuf_adds(b, "\"inviterID\":0,\"vipLevel\":\"No VIP\",\"mktMakerLevel\":\"0\",\"affiliateID\":0,"
                 "\"rsaPublicKey\":\"\",\"isMaster\":true,\"parentUid\":\"0\",\"kycLevel\":\"LEVEL_DEFAULT\","
                 "\"kycRegion\":\"\"}");
    sbyf_end(b, c->now);
}

/* The USDT symbols' base coin ("BTCUSDT" -> "BTC"); false for other symbols. */
static bool usdt_base(const char *sym, char *out, size_t n)
{
    size_t l = strlen(sym);
    if (l <= 4 || strcmp(sym + l - 4, "USDT") != 0)
        return false;
    snprintf(out, n, "%.*s", (int)(l - 4), sym);
    return true;
}

/* USDT and one coin per distinct base coin: enough for clients that load currencies. */
static void h_coin_info(struct by_call *c)
{
    struct sbuf *b = &c->resp->body;
    struct sbook *book = c->sim->book;
    sbyf_begin(b);
    sbuf_adds(b, "{\"rows\":[");
    for (size_t i = 0; i <= sbook_nsymbols(book); i++) {
        char coin[MKT_SYMBOL_MAX], other[MKT_SYMBOL_MAX];
        if (i == 0) {
            snprintf(coin, sizeof(coin), "USDT");
        } else {
            if (!usdt_base(sbook_symbol_at(book, i - 1)->ins.symbol, coin, sizeof(coin)))
                continue;
            bool dup = false;
            for (size_t k = 0; k + 1 < i && !dup; k++)
                dup = usdt_base(sbook_symbol_at(book, k)->ins.symbol, other, sizeof(other)) && !strcmp(coin, other);
            if (dup)
                continue;
            sbuf_addc(b, ',');
        }
        sbuf_adds(b, "{\"name\":");
        sbuf_add_jstr(b, coin);
        sbuf_adds(b, ",\"coin\":");
        sbuf_add_jstr(b, coin);
        sbuf_adds(b, ",\"remainAmount\":\"1000000\",\"chains\":[{\"chainType\":\"SIM\",\"confirmation\":\"1\","
                     "\"withdrawFee\":\"0\",\"depositMin\":\"0\",\"withdrawMin\":\"0\",\"chain\":\"SIM\","
                     "\"chainDeposit\":\"1\",\"chainWithdraw\":\"1\",\"minAccuracy\":\"8\","
                     "\"withdrawPercentageFee\":\"0\",\"contractAddress\":\"\",\"safeConfirmNumber\":\"1\"}]}");
    }
    sbuf_adds(b, "]}");
    sbyf_end(b, c->now);
}

static const struct by_route routes[] = {
    {SHTTP_GET, "/v5/market/time", BY_NONE, h_time},
    {SHTTP_GET, "/v5/market/instruments-info", BY_NONE, h_instruments},
    {SHTTP_GET, "/v5/market/tickers", BY_NONE, h_tickers},
    {SHTTP_POST, "/v5/order/create", BY_SIGNED, h_create},
    {SHTTP_POST, "/v5/order/create-batch", BY_SIGNED, h_create_batch},
    {SHTTP_POST, "/v5/order/cancel", BY_SIGNED, h_cancel},
    {SHTTP_POST, "/v5/order/cancel-all", BY_SIGNED, h_cancel_all},
    {SHTTP_GET, "/v5/order/realtime", BY_SIGNED, h_realtime},
    {SHTTP_GET, "/v5/order/history", BY_SIGNED, h_history},
    {SHTTP_GET, "/v5/execution/list", BY_SIGNED, h_executions},
    {SHTTP_GET, "/v5/position/list", BY_SIGNED, h_positions},
    {SHTTP_POST, "/v5/position/set-leverage", BY_SIGNED, h_set_leverage},
    {SHTTP_POST, "/v5/position/switch-mode", BY_SIGNED, h_switch_mode},
    {SHTTP_GET, "/v5/account/wallet-balance", BY_SIGNED, h_wallet},
    {SHTTP_GET, "/v5/account/info", BY_SIGNED, h_account_info},
    {SHTTP_GET, "/v5/user/query-api", BY_SIGNED, h_query_api},
    {SHTTP_GET, "/v5/asset/coin/query-info", BY_SIGNED, h_coin_info},
};

bool sim_by_owns(const struct shttp_req *req)
{
    return req->path_len >= 4 && memcmp(req->path, "/v5/", 4) == 0;
}

bool sim_by_owns_bytes(const char *bytes, size_t len)
{
    return len >= 8 && memcmp(bytes, "GET /v5/", 8) == 0;
}

/* X-BAPI-* headers: answers and returns false when the key is missing or unknown, or the
 * signature or clock is wrong. */
static bool authenticate(struct by_call *c)
{
    struct sbyr_auth h;
    char kbuf[256], msg[256];
    memset(&h, 0, sizeof(h));
    h.key = shttp_header(c->req, "X-BAPI-API-KEY", &h.key_len);
    h.ts = shttp_header(c->req, "X-BAPI-TIMESTAMP", &h.ts_len);
    h.sign = shttp_header(c->req, "X-BAPI-SIGN", &h.sign_len);
    h.recv_window = shttp_header(c->req, "X-BAPI-RECV-WINDOW", &h.recv_window_len);
    if (!h.key || h.key_len == 0 || h.key_len >= sizeof(kbuf)) {
        reply_error(c, 401, 10003, "API key is invalid.");
        return false;
    }
    memcpy(kbuf, h.key, h.key_len);
    kbuf[h.key_len] = '\0';
    c->ba = sbook_account_by_key(c->sim->book, kbuf);
    if (!c->ba) {
        reply_error(c, 401, 10003, "API key is invalid.");
        return false;
    }
    size_t slen;
    const char *secret = sbook_account_secret(c->ba, &slen);
    const char *payload = c->req->method == SHTTP_POST ? c->req->body : c->req->query;
    size_t plen = c->req->method == SHTTP_POST ? c->req->body_len : c->req->query_len;
    int code = sbyr_verify(secret, slen, &h, payload, plen, c->now, msg, sizeof(msg));
    if (code) {
        reply_error(c, 200, code, msg);
        return false;
    }
    return true;
}

void sim_by_handle(void *ud, const struct shttp_req *req, struct shttp_resp *resp)
{
    struct sim *s = ud;
    struct by_call c = {.sim = s, .by = s->by, .req = req, .resp = resp, .now = sim_now_ms()};
    const struct by_route *r = NULL;
    bool path_known = false;
    enum shttp_method m = req->method == SHTTP_HEAD ? SHTTP_GET : req->method;
    char msg[256];

    sp_init(&c.q);
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!shttp_path_is(req, routes[i].path))
            continue;
        path_known = true;
        if (routes[i].method == m) {
            r = &routes[i];
            break;
        }
    }
    if (!r || !c.by) {
        snprintf(msg, sizeof(msg), "%s %.*s", path_known ? "Method not allowed:" : "Not found:",
                 (int)(req->path_len > 200 ? 200 : req->path_len), req->path);
        reply_error(&c, path_known ? 405 : 404, 10001, msg);
        goto out;
    }
    if (sp_parse(&c.q, req->query, req->query_len) < 0) {
        reply_error(&c, 200, 10001, "params error: malformed query string");
        goto out;
    }
    if (r->sec == BY_SIGNED) {
        if (!authenticate(&c))
            goto out;
        /* Per account and endpoint, a rolling second (sim_limits.h): every authenticated answer
         * carries the X-Bapi-Limit headers; over the limit, retCode 10006 and nothing done. */
        struct slim_by lim;
        bool allowed = slim_by_request(s->limits, sbook_account_name(c.ba), shttp_method_name(r->method),
                                       r->path, c.now, &lim);
        slim_by_headers(&lim, &resp->headers);
        if (!allowed) {
            reply_error(&c, 200, 10006, "Too many visits!");
            goto out;
        }
    }
    if (r->method == SHTTP_POST) {
        json_error_t je;
        c.body = json_loadb(req->body, req->body_len, 0, &je);
        if (!json_is_object(c.body)) {
            snprintf(msg, sizeof(msg), "params error: the body is not a JSON object (%s)", je.text);
            reply_error(&c, 200, 10001, msg);
            goto out;
        }
    }
    r->fn(&c);
out:
    /* Method, path and status only: headers carry the API key. */
    log_debug("rest", "%s %.*s -> %d", shttp_method_name(req->method), (int)(req->path_len > 200 ? 200 : req->path_len),
              req->path, resp->status);
    json_decref(c.body);
    sp_free(&c.q);
}

bool sim_by_upgrade(void *ud, const struct shttp_req *req, struct shttp_resp *resp)
{
    struct sim *s = ud;
    size_t klen = 0, vlen = 0;
    if (!s->by || !(shttp_path_is(req, "/v5/private") || shttp_path_is(req, "/v5/public/linear"))) {
        shttp_resp_json(resp, 404, "{\"retCode\":10001,\"retMsg\":\"Not found: no stream at this path\"}");
        return false;
    }
    const char *wskey = shttp_header(req, "Sec-WebSocket-Key", &klen);
    const char *ver = shttp_header(req, "Sec-WebSocket-Version", &vlen);
    if (!wskey || klen == 0 || !ver || vlen != 2 || memcmp(ver, "13", 2) != 0) {
        shttp_resp_json(resp, 400, "{\"retCode\":10001,\"retMsg\":\"Bad websocket handshake\"}");
        return false;
    }
    return true;
}

void sim_by_adopt(struct sim_by *b, int fd, const char *bytes, size_t len)
{
    if (!b) {
        close(fd);
        return;
    }
    if (sbyws_adopt(b->ws, fd, bytes, len) < 0)
        log_warn("sim", "bybit websocket hand-over to lws failed, connection dropped");
}
