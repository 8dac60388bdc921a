/* Binance USD-M REST front end of the simulator, and the user-data stream's websocket entry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sim.h"
#include "sim_bn_fmt.h"
#include "sim_bn_req.h"
#include "sim_params.h"

enum bn_security { BN_NONE = 0, BN_USER_STREAM, BN_SIGNED };

struct bn_call {
    struct sim *sim;
    const struct shttp_req *req;
    struct shttp_resp *resp;
    struct sp_list params;
    struct sim_acct *acct;
    struct sbook_reqlog *rlog; /* POST /fapi/v1/order with a known account */
};

typedef void (*bn_fn)(struct bn_call *c);

struct bn_route {
    enum shttp_method method;
    const char *path;
    enum bn_security sec;
    bn_fn fn;
};

#define MANDATORY "Mandatory parameter '%s' was not sent, was empty/null, or malformed."

static void reply_error(struct bn_call *c, int http, int code, const char *msg)
{
    c->resp->status = http;
    sbuf_reset(&c->resp->body);
    sbnf_error(&c->resp->body, code, msg);
    if (c->rlog)
        sbook_reqlog_result(c->rlog, NULL, code, msg);
}

static void reply_errorf(struct bn_call *c, int http, int code, const char *fmt, const char *arg)
{
    char msg[256];
    snprintf(msg, sizeof(msg), fmt, arg);
    reply_error(c, http, code, msg);
}

/* Symbol parameter: NULL if absent; *bad set (and the error answered) if unknown. */
static struct sbook_symbol *opt_symbol(struct bn_call *c, bool *bad)
{
    const char *v = sp_get(&c->params, "symbol");
    *bad = false;
    if (!v)
        return NULL;
    struct sbook_symbol *s = sbook_symbol(c->sim->book, v);
    if (!s) {
        *bad = true;
        reply_error(c, 400, -1121, "Invalid symbol.");
    }
    return s;
}

/* ---- market data ---- */

static void h_ping(struct bn_call *c)
{
    sbuf_adds(&c->resp->body, "{}");
}

static void h_time(struct bn_call *c)
{
    sbuf_adds(&c->resp->body, "{\"serverTime\":");
    sbuf_add_i64(&c->resp->body, sim_now_ms());
    sbuf_addc(&c->resp->body, '}');
}

static void h_exchange_info(struct bn_call *c)
{
    const struct slim_cfg *l = slim_config(c->sim->limits);
    sbnf_exchange_info_limits(&c->resp->body, c->sim->book, sim_now_ms(), l->weight_1m, l->orders_1m, l->orders_10s);
}

static void ticker_one(struct sbuf *b, const struct sbook_symbol *s, int64_t now)
{
    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, s->ins.symbol);
    sbuf_adds(b, ",\"price\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"time\":");
    sbuf_add_i64(b, now);
    sbuf_addc(b, '}');
}

static void h_ticker(struct bn_call *c);

/* One symbol or all of them (array), each written by fn. */
static void per_symbol(struct bn_call *c, void (*fn)(struct sbuf *b, const struct sbook_symbol *s, int64_t now))
{
    bool bad;
    struct sbook_symbol *s = opt_symbol(c, &bad);
    int64_t now = sim_now_ms();
    if (bad)
        return;
    if (s) {
        fn(&c->resp->body, s, now);
        return;
    }
    sbuf_addc(&c->resp->body, '[');
    for (size_t i = 0; i < sbook_nsymbols(c->sim->book); i++) {
        if (i)
            sbuf_addc(&c->resp->body, ',');
        fn(&c->resp->body, sbook_symbol_at(c->sim->book, i), now);
    }
    sbuf_addc(&c->resp->body, ']');
}

/* 24 h statistics of a market that never moved: everything at the current price. */
static void ticker24_one(struct sbuf *b, const struct sbook_symbol *s, int64_t now)
{
    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, s->ins.symbol);
    sbuf_adds(b, ",\"priceChange\":\"0\",\"priceChangePercent\":\"0\",\"weightedAvgPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"lastPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"lastQty\":\"0\",\"openPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"highPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"lowPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"volume\":\"0\",\"quoteVolume\":\"0\",\"openTime\":");
    sbuf_add_i64(b, now - 86400000);
    sbuf_adds(b, ",\"closeTime\":");
    sbuf_add_i64(b, now);
    sbuf_adds(b, ",\"firstId\":0,\"lastId\":0,\"count\":0}");
}

static void h_ticker24(struct bn_call *c)
{
    per_symbol(c, ticker24_one);
}

/* No depth is simulated: best bid and ask are both the current price. */
static void book_ticker_one(struct sbuf *b, const struct sbook_symbol *s, int64_t now)
{
    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, s->ins.symbol);
    sbuf_adds(b, ",\"bidPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"bidQty\":\"1000\",\"askPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"askQty\":\"1000\",\"time\":");
    sbuf_add_i64(b, now);
    sbuf_addc(b, '}');
}

static void h_book_ticker(struct bn_call *c)
{
    per_symbol(c, book_ticker_one);
}

static void premium_one(struct sbuf *b, const struct sbook_symbol *s, int64_t now)
{
    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, s->ins.symbol);
    sbuf_adds(b, ",\"markPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"indexPrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"estimatedSettlePrice\":");
    sbuf_add_jdec(b, s->price);
    sbuf_adds(b, ",\"lastFundingRate\":\"0\",\"interestRate\":\"0\",\"nextFundingTime\":");
    sbuf_add_i64(b, (now / 28800000 + 1) * 28800000);
    sbuf_adds(b, ",\"time\":");
    sbuf_add_i64(b, now);
    sbuf_addc(b, '}');
}

static void h_premium_index(struct bn_call *c)
{
    per_symbol(c, premium_one);
}

static void h_ticker(struct bn_call *c)
{
    per_symbol(c, ticker_one);
}

/* ---- orders ---- */

/* Places one order from the parameters p: 0 with the order's JSON appended to out (and the
 * outcome recorded in rl, which may be NULL), or a Binance error code with msg and *http (the
 * caller records errors). */
static int place_order(struct bn_call *c, const struct sp_list *p, struct sbook_reqlog *rl,
                       struct sbuf *out, char *msg, size_t n, int *http)
{
    struct sbnr_order po;
    struct sbook_order *o = NULL;
    *http = 400;
    int code = sbnr_parse_order(p, c->sim->book, &po, msg, n);
    if (code)
        return code;
    /* Hedge mode refuses the reduceOnly parameter itself, "false" too: hand it to the book as
     * set, which answers SBOOK_E_HEDGE_REDUCE_ONLY after its position-side check. */
    if (po.reduce_only_sent && sbook_account_mode(c->acct->ba) == MKT_PM_HEDGE)
        po.rq.reduce_only = true;
    enum sbook_err e = sbook_place(c->sim->book, c->acct->ba, &po.rq, &o);
    if (e != SBOOK_OK) {
        *http = e == SBOOK_E_NOMEM || e == SBOOK_E_ARITH ? 500 : 400;
        return sbnf_map_err(e, po.rq.sym, msg, n);
    }
    sbook_reqlog_result(rl, o, 0, NULL);
    sbnf_order(out, o, po.resp_type == SBNR_RESULT ? SBNF_RESULT : SBNF_ACK);
    return 0;
}

static void h_order_new(struct bn_call *c)
{
    char msg[256];
    int http;
    int code = place_order(c, &c->params, c->rlog, &c->resp->body, msg, sizeof(msg), &http);
    if (code)
        reply_error(c, http, code, msg);
}

static struct sbook_reqlog *log_order_request(struct bn_call *c, const struct sp_list *p)
{
    struct sbook_reqlog *rl = sbook_reqlog_add(c->acct->ba, SBOOK_SRC_REST, sim_now_ms(),
                                               sp_get(p, "newClientOrderId"), sp_get(p, "symbol"),
                                               sp_get(p, "side"), sp_get(p, "type"), sp_get(p, "timeInForce"),
                                               sp_get(p, "quantity"), sp_get(p, "price"), sp_get(p, "reduceOnly"));
    if (rl && sbook_reqlog_set_position_side(rl, sp_get(p, "positionSide")) < 0)
        rl = NULL; /* the entry stays, without its outcome */
    if (!rl)
        log_error("sim", "account %s: out of memory recording an order request, ignoring",
                  sbook_account_name(c->acct->ba));
    return rl;
}

/* One batchOrders element (a JSON object of strings, numbers or booleans) as request
 * parameters. 0, or -EINVAL (not an object, a nested value) / -ENOMEM. */
static int batch_params(json_t *o, struct sp_list *p)
{
    const char *k;
    json_t *v;
    if (!json_is_object(o))
        return -EINVAL;
    json_object_foreach(o, k, v) {
        char num[64];
        const char *val;
        if (json_is_string(v))
            val = json_string_value(v);
        else if (json_is_integer(v))
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v)), val = num;
        else if (json_is_boolean(v))
            val = json_is_true(v) ? "true" : "false";
        else
            return -EINVAL; /* reals lose their exact text; objects and arrays make no parameter */
        if (p->n >= SP_MAX_PARAMS)
            return -EINVAL;
        size_t kl = strlen(k), vl = strlen(val);
        char *m = malloc(kl + vl + 2);
        if (!m)
            return -ENOMEM;
        memcpy(m, k, kl + 1);
        memcpy(m + kl + 1, val, vl + 1);
        p->mem[p->n] = m;
        p->v[p->n] = (struct sp_param){m, m + kl + 1, kl, vl};
        p->n++;
    }
    return 0;
}

#define BATCH_MAX 5

/* POST /fapi/v1/batchOrders: up to 5 orders; HTTP 200 with, in request order, each order or its
 * error object. */
static void h_batch_orders(struct bn_call *c)
{
    const char *v = sp_get(&c->params, "batchOrders");
    json_error_t je;
    if (!v || !*v) {
        reply_errorf(c, 400, -1102, MANDATORY, "batchOrders");
        return;
    }
    json_t *arr = json_loads(v, JSON_REJECT_DUPLICATES, &je);
    if (!arr || !json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > BATCH_MAX) {
        json_decref(arr);
        reply_errorf(c, 400, -1130, "Data sent for parameter '%s' is not valid.", "batchOrders");
        return;
    }
    struct sbuf *b = &c->resp->body;
    sbuf_addc(b, '[');
    for (size_t i = 0; i < json_array_size(arr); i++) {
        struct sp_list p;
        char msg[256];
        int http, code;
        sp_init(&p);
        if (i)
            sbuf_addc(b, ',');
        int rc = batch_params(json_array_get(arr, i), &p);
        struct sbook_reqlog *rl = log_order_request(c, &p);
        if (rc < 0) {
            code = -1130;
            snprintf(msg, sizeof(msg), "Data sent for parameter '%s' is not valid.", "batchOrders");
        } else {
            code = place_order(c, &p, rl, b, msg, sizeof(msg), &http);
        }
        if (code) {
            sbnf_error(b, code, msg);
            sbook_reqlog_result(rl, NULL, code, msg);
        }
        sp_free(&p);
    }
    sbuf_addc(b, ']');
    json_decref(arr);
}


/* symbol + orderId or origClientOrderId; answers the error itself and returns NULL. */
static struct sbook_order *find_order(struct bn_call *c, int not_found_code, const char *not_found_msg)
{
    const char *sym = sp_get(&c->params, "symbol");
    const char *oid = sp_get(&c->params, "orderId");
    const char *cid = sp_get(&c->params, "origClientOrderId");
    struct sbook_order *o = NULL;
    int64_t id;

    if (!sym || !*sym) {
        reply_errorf(c, 400, -1102, MANDATORY, "symbol");
        return NULL;
    }
    struct sbook_symbol *s = sbook_symbol(c->sim->book, sym);
    if (!s) {
        reply_error(c, 400, -1121, "Invalid symbol.");
        return NULL;
    }
    if ((!oid || !*oid) && (!cid || !*cid)) {
        reply_error(c, 400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!");
        return NULL;
    }
    if (oid && *oid) {
        if (!sbnr_parse_i64(oid, &id)) {
            reply_errorf(c, 400, -1102, MANDATORY, "orderId");
            return NULL;
        }
        o = sbook_order_by_id(c->acct->ba, s, id);
        /* Both given: they must name the same order. */
        if (o && cid && *cid && strcmp(o->client_id, cid) != 0)
            o = NULL;
    } else {
        o = sbook_order_by_client(c->acct->ba, s, cid);
    }
    if (!o)
        reply_error(c, 400, not_found_code, not_found_msg);
    return o;
}

static void h_order_get(struct bn_call *c)
{
    struct sbook_order *o = find_order(c, -2013, "Order does not exist.");
    if (o)
        sbnf_order(&c->resp->body, o, SBNF_QUERY);
}

static void h_order_cancel(struct bn_call *c)
{
    struct sbook_order *o = find_order(c, -2011, "Unknown order sent.");
    if (!o)
        return;
    if (sbook_cancel(c->sim->book, o) < 0) {
        reply_error(c, 400, -2011, "Unknown order sent.");
        return;
    }
    sbnf_order(&c->resp->body, o, SBNF_RESULT);
}

struct open_ctx {
    struct sbuf *b;
    size_t n;
};

static void open_one(void *ud, const struct sbook_order *o)
{
    struct open_ctx *x = ud;
    if (x->n++)
        sbuf_addc(x->b, ',');
    sbnf_order(x->b, o, SBNF_QUERY);
}

static void h_open_orders(struct bn_call *c)
{
    bool bad;
    struct sbook_symbol *s = opt_symbol(c, &bad);
    struct open_ctx x = {&c->resp->body, 0};
    if (bad)
        return;
    sbuf_addc(x.b, '[');
    sbook_open_orders(c->sim->book, c->acct->ba, s, open_one, &x);
    sbuf_addc(x.b, ']');
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

/* DELETE /fapi/v1/allOpenOrders: every open order of the symbol (mandatory), collected first
 * because cancelling changes the list being walked. */
static void h_cancel_all(struct bn_call *c)
{
    bool bad;
    struct collect x = {0};
    struct sbook_symbol *s = opt_symbol(c, &bad);
    if (bad)
        return;
    if (!s) {
        reply_errorf(c, 400, -1102, MANDATORY, "symbol");
        return;
    }
    sbook_open_orders(c->sim->book, c->acct->ba, s, collect_one, &x);
    if (x.failed) {
        free(x.v);
        reply_error(c, 500, -1000, "An unknown error occured while processing the request.");
        return;
    }
    for (size_t i = 0; i < x.n; i++)
        sbook_cancel(c->sim->book, x.v[i]);
    free(x.v);
    sbuf_adds(&c->resp->body, "{\"code\":200,\"msg\":\"The operation of cancel all open order is done.\"}");
}

/* Optional integer parameter: 1 set, 0 absent; -1 malformed (answered). */
static int opt_i64(struct bn_call *c, const char *key, int64_t *out)
{
    const char *v = sp_get(&c->params, key);
    if (!v || !*v)
        return 0;
    if (!sbnr_parse_i64(v, out)) {
        reply_errorf(c, 400, -1130, "Data sent for parameter '%s' is not valid.", key);
        return -1;
    }
    return 1;
}

#define WEEK_MS (7 * 86400000LL)

/* symbol (required), limit (default 500, max 1000). NULL if answered with an error. */
static struct sbook_symbol *list_args(struct bn_call *c, int64_t *limit)
{
    const char *sym = sp_get(&c->params, "symbol");
    if (!sym || !*sym) {
        reply_errorf(c, 400, -1102, MANDATORY, "symbol");
        return NULL;
    }
    struct sbook_symbol *s = sbook_symbol(c->sim->book, sym);
    if (!s) {
        reply_error(c, 400, -1121, "Invalid symbol.");
        return NULL;
    }
    *limit = 500;
    int rc = opt_i64(c, "limit", limit);
    if (rc < 0)
        return NULL;
    if (rc && (*limit < 1 || *limit > 1000)) {
        reply_errorf(c, 400, -1130, "Data sent for parameter '%s' is not valid.", "limit");
        return NULL;
    }
    return s;
}

/* startTime / endTime: at most 7 days apart; neither = the last 7 days. *newest: the newest
 * matches are wanted (no startTime). false if answered with an error. */
static bool time_range(struct bn_call *c, int64_t *start, int64_t *end, bool *newest, bool *given)
{
    int64_t st = 0, en = 0;
    int hs = opt_i64(c, "startTime", &st), he = opt_i64(c, "endTime", &en);
    if (hs < 0 || he < 0)
        return false;
    *given = hs || he;
    if (hs && he && en < st) {
        reply_error(c, 400, -1128, "Combination of optional parameters invalid.");
        return false;
    }
    if (hs && he && en - st > WEEK_MS) {
        reply_error(c, 400, -1127, "Lookup interval is too big.");
        return false;
    }
    if (!hs && !he) {
        en = sim_now_ms();
        st = en - WEEK_MS;
    } else if (!he) {
        en = st + WEEK_MS;
    } else if (!hs) {
        st = en - WEEK_MS;
    }
    *start = st;
    *end = en;
    *newest = !hs;
    return true;
}

static void trade_one(void *ud, const struct strd_trade *t)
{
    struct open_ctx *x = ud;
    struct sbuf *b = x->b;
    if (x->n++)
        sbuf_addc(b, ',');
    sbuf_adds(b, t->side == SBOOK_BUY ? "{\"buyer\":true" : "{\"buyer\":false");
    sbuf_adds(b, ",\"commission\":");
    sbuf_add_jdec(b, t->commission);
    sbuf_adds(b, ",\"commissionAsset\":\"USDT\",\"id\":");
    sbuf_add_i64(b, t->id);
    sbuf_adds(b, t->maker ? ",\"maker\":true" : ",\"maker\":false");
    sbuf_adds(b, ",\"orderId\":");
    sbuf_add_i64(b, t->order_id);
    sbuf_adds(b, ",\"price\":");
    sbuf_add_jdec(b, t->price);
    sbuf_adds(b, ",\"qty\":");
    sbuf_add_jdec(b, t->qty);
    sbuf_adds(b, ",\"quoteQty\":");
    sbuf_add_jdec(b, t->quote_qty);
    sbuf_adds(b, ",\"realizedPnl\":");
    sbuf_add_jdec(b, t->realized);
    sbuf_adds(b, t->side == SBOOK_BUY ? ",\"side\":\"BUY\"" : ",\"side\":\"SELL\"");
    sbuf_adds(b, ",\"positionSide\":");
    sbuf_add_jstr(b, sbook_pos_side_name(t->pos_side));
    sbuf_adds(b, ",\"symbol\":");
    sbuf_add_jstr(b, t->sym->ins.symbol);
    sbuf_adds(b, ",\"time\":");
    sbuf_add_i64(b, t->time_ms);
    sbuf_addc(b, '}');
}

/* GET /fapi/v1/userTrades. fromId: trades with id >= fromId, oldest first (not limited to 7
 * days here, so a backfill from a trade id is complete); startTime/endTime: that window, oldest
 * first from startTime, else the newest; neither: the newest of the last 7 days. */
static void h_user_trades(struct bn_call *c)
{
    struct strd_query q = {.from_id = -1, .start_ms = INT64_MIN, .end_ms = INT64_MAX};
    int64_t limit, from = 0, oid = 0;
    bool given = false;
    if (!(q.sym = list_args(c, &limit)))
        return;
    int hf = opt_i64(c, "fromId", &from), ho = opt_i64(c, "orderId", &oid);
    if (hf < 0 || ho < 0)
        return;
    if (!time_range(c, &q.start_ms, &q.end_ms, &q.newest, &given))
        return;
    if (hf && given) {
        reply_error(c, 400, -1128, "Combination of optional parameters invalid.");
        return;
    }
    if (hf) {
        q.from_id = from;
        q.start_ms = INT64_MIN;
        q.end_ms = INT64_MAX;
        q.newest = false;
    }
    q.order_id = ho ? oid : 0;
    q.limit = (size_t)limit;
    struct open_ctx x = {&c->resp->body, 0};
    sbuf_addc(&c->resp->body, '[');
    strd_query(c->acct->trades, &q, trade_one, &x);
    sbuf_addc(&c->resp->body, ']');
}

static bool all_match(const struct sbook_order *o, const struct sbook_symbol *s, int64_t min_id,
                      int64_t st, int64_t en)
{
    return o && o->sym == s && o->order_id >= min_id && o->time_ms >= st && o->time_ms <= en;
}

/* GET /fapi/v1/allOrders: every order of the account on the symbol (from the request log, so
 * admin orders too); orderId: those with id >= it, oldest first; else the newest in the window. */
static void h_all_orders(struct bn_call *c)
{
    int64_t limit, oid = 0, st, en;
    bool newest, given;
    struct sbook_symbol *s = list_args(c, &limit);
    if (!s)
        return;
    int ho = opt_i64(c, "orderId", &oid);
    if (ho < 0 || !time_range(c, &st, &en, &newest, &given))
        return;
    if (ho) {
        newest = false;
        if (!given) {
            st = INT64_MIN;
            en = INT64_MAX;
        }
    }
    size_t n = sbook_reqlog_count(c->acct->ba), first = 0, k = 0;
    if (newest) {
        first = n;
        for (size_t i = n; i-- > 0;) {
            const struct sbook_order *o = sbook_reqlog_at(c->acct->ba, i)->order;
            if (all_match(o, s, ho ? oid : INT64_MIN, st, en)) {
                first = i;
                if (++k == (size_t)limit)
                    break;
            }
        }
    }
    struct open_ctx x = {&c->resp->body, 0};
    sbuf_addc(x.b, '[');
    for (size_t i = first; i < n && x.n < (size_t)limit; i++) {
        const struct sbook_order *o = sbook_reqlog_at(c->acct->ba, i)->order;
        if (all_match(o, s, ho ? oid : INT64_MIN, st, en))
            open_one(&x, o);
    }
    sbuf_addc(x.b, ']');
}

/* ---- account ---- */

static void h_position_risk(struct bn_call *c)
{
    bool bad;
    struct sbook_symbol *only = opt_symbol(c, &bad);
    struct sbuf *b = &c->resp->body;
    size_t n = 0;
    if (bad)
        return;
    sbuf_addc(b, '[');
    for (size_t i = 0; i < sbook_nsymbols(c->sim->book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(c->sim->book, i);
        if (only && s != only)
            continue;
        /* One-way: the BOTH entry; hedge mode: a LONG and a SHORT entry per symbol. */
        for (int k = 0; k < 3; k++) {
            enum mkt_pos_side ps = (enum mkt_pos_side)k;
            if ((ps == MKT_PS_BOTH) != (sbook_account_mode(c->acct->ba) == MKT_PM_ONE_WAY))
                continue;
            if (n++)
                sbuf_addc(b, ',');
            sbnf_position_risk(b, s, sbook_position_side(c->acct->ba, s, ps), ps);
        }
    }
    sbuf_addc(b, ']');
}

/* V3 lists only symbols with a position or open orders. */
static void h_position_risk_v3(struct bn_call *c)
{
    bool bad;
    struct sbook_symbol *only = opt_symbol(c, &bad);
    struct sbuf *b = &c->resp->body;
    size_t n = 0;
    if (bad)
        return;
    sbuf_addc(b, '[');
    for (size_t i = 0; i < sbook_nsymbols(c->sim->book); i++) {
        struct sbook_symbol *s = sbook_symbol_at(c->sim->book, i);
        if (only && s != only)
            continue;
        for (int k = 0; k < 3; k++) {
            enum mkt_pos_side ps = (enum mkt_pos_side)k;
            const struct sbook_position *p = sbook_position_side(c->acct->ba, s, ps);
            if ((ps == MKT_PS_BOTH) != (sbook_account_mode(c->acct->ba) == MKT_PM_ONE_WAY))
                continue;
            if (dec_is_zero(p->amount) && !sbook_has_open_orders(c->sim->book, c->acct->ba, s, k))
                continue;
            if (n++)
                sbuf_addc(b, ',');
            sbnf_position_risk_v3(b, s, p, ps);
        }
    }
    sbuf_addc(b, ']');
}

static void h_balance(struct bn_call *c)
{
    if (sbnf_balance(&c->resp->body, c->sim->book, c->acct->ba, sim_now_ms()) < 0)
        reply_error(c, 500, -1000, "An unknown error occured while processing the request.");
}

/* One bracket up to a large cap: the simulator does no margin or leverage-tier checks. */
static void h_leverage_bracket(struct bn_call *c)
{
    bool bad;
    struct sbook_symbol *only = opt_symbol(c, &bad);
    struct sbuf *b = &c->resp->body;
    size_t n = 0;
    if (bad)
        return;
    sbuf_addc(b, '[');
    for (size_t i = 0; i < sbook_nsymbols(c->sim->book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(c->sim->book, i);
        if (only && s != only)
            continue;
        if (n++)
            sbuf_addc(b, ',');
        sbuf_adds(b, "{\"symbol\":");
        sbuf_add_jstr(b, s->ins.symbol);
        sbuf_adds(b, ",\"notionalCoef\":1.0,\"brackets\":[{\"bracket\":1,\"initialLeverage\":125,"
                     "\"notionalCap\":1000000000,\"notionalFloor\":0,\"maintMarginRatio\":0.004,\"cum\":0.0}]}");
    }
    sbuf_addc(b, ']');
}

/* GET /sapi/v1/capital/config/getall (wallet API, api.binance.com on Binance): ccxt's binance
 * classes load currencies from it whenever they hold an API key, before any futures call. USDT
 * (the margin asset, with the account's wallet balance) and the base coin of each USDT symbol
 * (unique, as the symbols are). */
static void h_capital_config(struct bn_call *c)
{
    struct sbuf *b = &c->resp->body;
    struct sbook *book = c->sim->book;
    sbuf_addc(b, '[');
    for (size_t i = 0; i <= sbook_nsymbols(book); i++) {
        char coin[MKT_SYMBOL_MAX];
        const char *sym = i ? sbook_symbol_at(book, i - 1)->ins.symbol : "USDT";
        size_t l = strlen(sym);
        if (i == 0) {
            snprintf(coin, sizeof(coin), "USDT");
        } else {
            if (l <= 4 || strcmp(sym + l - 4, "USDT") != 0)
                continue;
            snprintf(coin, sizeof(coin), "%.*s", (int)(l - 4), sym);
            sbuf_addc(b, ',');
        }
        sbuf_adds(b, "{\"coin\":");
        sbuf_add_jstr(b, coin);
        sbuf_adds(b, ",\"name\":");
        sbuf_add_jstr(b, coin);
        sbuf_adds(b, ",\"depositAllEnable\":true,\"withdrawAllEnable\":true,\"free\":");
        if (i == 0)
            sbuf_add_jdec(b, sbook_account_balance(c->acct->ba));
        else
            sbuf_adds(b, "\"0\"");
        sbuf_adds(b, ",\"locked\":\"0\",\"freeze\":\"0\",\"withdrawing\":\"0\",\"ipoing\":\"0\","
                     "\"ipoable\":\"0\",\"storage\":\"0\",\"isLegalMoney\":false,\"trading\":true,"
                     "\"networkList\":[{\"network\":\"SIM\",\"coin\":");
        sbuf_add_jstr(b, coin);
        sbuf_adds(b, ",\"withdrawIntegerMultiple\":\"0.00000001\",\"isDefault\":true,\"depositEnable\":true,"
                     "\"withdrawEnable\":true,\"depositDesc\":\"\",\"withdrawDesc\":\"\",\"name\":\"Simulator\","
                     "\"resetAddressStatus\":false,\"addressRegex\":\"\",\"memoRegex\":\"\",\"withdrawFee\":\"0\","
                     "\"withdrawMin\":\"0\",\"withdrawMax\":\"9999999999\",\"minConfirm\":1,\"unLockConfirm\":0,"
                     "\"sameAddress\":false,\"busy\":false}]}");
    }
    sbuf_addc(b, ']');
}

/* GET /sapi/v1/margin/allPairs (MARKET_DATA: API key, no signature): ccxt asks with the
 * currencies. The simulator has no cross-margin (spot) pairs. */
static void h_margin_pairs(struct bn_call *c)
{
    sbuf_adds(&c->resp->body, "[]");
}

static void h_account(struct bn_call *c)
{
    if (sbnf_account(&c->resp->body, c->sim->book, c->acct->ba, sim_now_ms()) < 0)
        reply_error(c, 500, -1000, "An unknown error occured while processing the request.");
}

static void h_dual(struct bn_call *c)
{
    bool hedge = sbook_account_mode(c->acct->ba) == MKT_PM_HEDGE;
    sbuf_adds(&c->resp->body, hedge ? "{\"dualSidePosition\":true}" : "{\"dualSidePosition\":false}");
}

static void h_dual_set(struct bn_call *c)
{
    const char *v = sp_get(&c->params, "dualSidePosition");
    enum mkt_pos_mode m;
    char msg[160];
    if (!v || !*v) {
        reply_errorf(c, 400, -1102, MANDATORY, "dualSidePosition");
        return;
    }
    if (!strcasecmp(v, "true"))
        m = MKT_PM_HEDGE;
    else if (!strcasecmp(v, "false"))
        m = MKT_PM_ONE_WAY;
    else {
        reply_errorf(c, 400, -1130, "Data sent for parameter '%s' is not valid.", "dualSidePosition");
        return;
    }
    enum sbook_err e = sbook_set_position_mode(c->sim->book, c->acct->ba, m);
    if (e != SBOOK_OK) {
        int code = sbnf_map_err(e, NULL, msg, sizeof(msg));
        reply_error(c, 400, code, msg);
        return;
    }
    sbuf_adds(&c->resp->body, "{\"code\":200,\"msg\":\"success\"}");
}

static void h_leverage(struct bn_call *c)
{
    const char *sym = sp_get(&c->params, "symbol");
    const char *lev = sp_get(&c->params, "leverage");
    int64_t l;
    if (!sym || !*sym) {
        reply_errorf(c, 400, -1102, MANDATORY, "symbol");
        return;
    }
    struct sbook_symbol *s = sbook_symbol(c->sim->book, sym);
    if (!s) {
        reply_error(c, 400, -1121, "Invalid symbol.");
        return;
    }
    if (!sbnr_parse_i64(lev, &l)) {
        reply_errorf(c, 400, -1102, MANDATORY, "leverage");
        return;
    }
    /* The owner's change: ACCOUNT_CONFIG_UPDATE goes out on the account's stream. */
    if (sbook_change_leverage(c->sim->book, c->acct->ba, s, l > 1000 ? 0 : (int)l) < 0) {
        reply_errorf(c, 400, -4028, "Leverage %s is not valid", lev);
        return;
    }
    sbuf_addf(&c->resp->body, "{\"leverage\":%d,\"maxNotionalValue\":\"1000000000\",\"symbol\":", (int)l);
    sbuf_add_jstr(&c->resp->body, s->ins.symbol);
    sbuf_addc(&c->resp->body, '}');
}

/* ---- user data stream ---- */

static void lk_reply(struct bn_call *c, const char *key)
{
    sbuf_adds(&c->resp->body, "{\"listenKey\":");
    sbuf_add_jstr(&c->resp->body, key);
    sbuf_addc(&c->resp->body, '}');
}

static void h_lk_post(struct bn_call *c)
{
    lk_reply(c, sim_lkey_open(c->sim, c->acct));
}

static void h_lk_put(struct bn_call *c)
{
    if (sim_lkey_keepalive(c->sim, c->acct, sp_get(&c->params, "listenKey")) < 0) {
        reply_error(c, 400, -1125, "This listenKey does not exist.");
        return;
    }
    lk_reply(c, c->acct->listen_key);
}

static void h_lk_delete(struct bn_call *c)
{
    if (sim_lkey_close(c->sim, c->acct, sp_get(&c->params, "listenKey")) < 0) {
        reply_error(c, 400, -1125, "This listenKey does not exist.");
        return;
    }
    sbuf_adds(&c->resp->body, "{}");
}

static const struct bn_route routes[] = {
    {SHTTP_GET, "/fapi/v1/ping", BN_NONE, h_ping},
    {SHTTP_GET, "/fapi/v1/time", BN_NONE, h_time},
    {SHTTP_GET, "/fapi/v1/exchangeInfo", BN_NONE, h_exchange_info},
    {SHTTP_GET, "/fapi/v1/ticker/price", BN_NONE, h_ticker},
    {SHTTP_GET, "/fapi/v2/ticker/price", BN_NONE, h_ticker},
    {SHTTP_GET, "/fapi/v1/ticker/24hr", BN_NONE, h_ticker24},
    {SHTTP_GET, "/fapi/v1/ticker/bookTicker", BN_NONE, h_book_ticker},
    {SHTTP_GET, "/fapi/v1/premiumIndex", BN_NONE, h_premium_index},
    {SHTTP_GET, "/fapi/v1/leverageBracket", BN_SIGNED, h_leverage_bracket},
    {SHTTP_POST, "/fapi/v1/order", BN_SIGNED, h_order_new},
    {SHTTP_POST, "/fapi/v1/batchOrders", BN_SIGNED, h_batch_orders},
    {SHTTP_GET, "/fapi/v1/userTrades", BN_SIGNED, h_user_trades},
    {SHTTP_GET, "/fapi/v1/allOrders", BN_SIGNED, h_all_orders},
    {SHTTP_GET, "/fapi/v1/order", BN_SIGNED, h_order_get},
    {SHTTP_DELETE, "/fapi/v1/order", BN_SIGNED, h_order_cancel},
    {SHTTP_GET, "/fapi/v1/openOrders", BN_SIGNED, h_open_orders},
    {SHTTP_DELETE, "/fapi/v1/allOpenOrders", BN_SIGNED, h_cancel_all},
    {SHTTP_GET, "/fapi/v2/positionRisk", BN_SIGNED, h_position_risk},
    {SHTTP_GET, "/fapi/v3/positionRisk", BN_SIGNED, h_position_risk_v3},
    {SHTTP_GET, "/fapi/v2/balance", BN_SIGNED, h_balance},
    {SHTTP_GET, "/fapi/v3/balance", BN_SIGNED, h_balance},
    {SHTTP_GET, "/fapi/v2/account", BN_SIGNED, h_account},
    {SHTTP_GET, "/fapi/v3/account", BN_SIGNED, h_account},
    {SHTTP_GET, "/fapi/v1/positionSide/dual", BN_SIGNED, h_dual},
    {SHTTP_POST, "/fapi/v1/positionSide/dual", BN_SIGNED, h_dual_set},
    {SHTTP_POST, "/fapi/v1/leverage", BN_SIGNED, h_leverage},
    {SHTTP_POST, "/fapi/v1/listenKey", BN_USER_STREAM, h_lk_post},
    {SHTTP_PUT, "/fapi/v1/listenKey", BN_USER_STREAM, h_lk_put},
    {SHTTP_DELETE, "/fapi/v1/listenKey", BN_USER_STREAM, h_lk_delete},
    {SHTTP_GET, "/sapi/v1/capital/config/getall", BN_SIGNED, h_capital_config},
    {SHTTP_GET, "/sapi/v1/margin/allPairs", BN_USER_STREAM, h_margin_pairs},
};

/* Benchmarks only (sim_config.h "unsigned_ok"): a new order of an account so flagged, carrying
 * neither signature nor timestamp, skips the signature check; everything else about the order
 * (parameters, book, events, response) is the same work. */
static bool bench_unsigned_order(const struct bn_call *c, const struct bn_route *r)
{
    if (r->fn != h_order_new || !c->acct)
        return false;
    size_t i = (size_t)(c->acct - c->sim->accts);
    return i < c->sim->cfg->naccounts && c->sim->cfg->accounts[i].unsigned_ok &&
           !sp_get(&c->params, "signature") && !sp_get(&c->params, "timestamp");
}

void sim_bn_handle(void *ud, const struct shttp_req *req, struct shttp_resp *resp)
{
    struct bn_call c = {.sim = ud, .req = req, .resp = resp};
    const struct bn_route *r = NULL;
    bool path_known = false;
    enum shttp_method m = req->method == SHTTP_HEAD ? SHTTP_GET : req->method;
    char msg[256];
    int rc;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!shttp_path_is(req, routes[i].path))
            continue;
        path_known = true;
        if (routes[i].method == m) {
            r = &routes[i];
            break;
        }
    }
    sp_init(&c.params);
    rc = sp_parse(&c.params, req->query, req->query_len);
    if (rc == 0 && req->body_len)
        rc = sp_parse(&c.params, req->body, req->body_len);

    /* IP weight (A6): every request counts, answered or refused. */
    struct slim_bn_ip lim;
    enum slim_verdict verdict = slim_bn_ip(c.sim->limits, req->peer_ip ? req->peer_ip : "unknown",
                                           r ? slim_bn_weight(shttp_method_name(r->method), r->path,
                                                              sp_get(&c.params, "symbol") != NULL)
                                             : 1,
                                           sim_now_ms(), &lim);
    slim_bn_ip_headers(&lim, &resp->headers);
    if (verdict != SLIM_OK) {
        resp->status = verdict == SLIM_BANNED ? 418 : 429;
        sbuf_reset(&resp->body);
        slim_bn_ip_error(&lim, &resp->body);
        goto out;
    }

    if (!r) {
        snprintf(msg, sizeof(msg), "%s %.*s", path_known ? "Method not allowed:" : "Not found:",
                 (int)(req->path_len > 200 ? 200 : req->path_len), req->path);
        reply_error(&c, path_known ? 405 : 404, path_known ? -1000 : -1099, msg);
        goto out;
    }

    if (rc == -E2BIG) {
        reply_error(&c, 400, -1101, "Too many parameters sent for this endpoint.");
        goto out;
    }
    if (rc < 0) {
        reply_error(&c, 400, -1100, "Illegal characters found in a parameter.");
        goto out;
    }

    if (r->sec >= BN_USER_STREAM) {
        size_t klen = 0;
        const char *key = shttp_header(req, "X-MBX-APIKEY", &klen);
        char kbuf[300];
        if (!key || klen == 0 || klen >= sizeof(kbuf)) {
            reply_error(&c, 401, -2014, "API-key format invalid.");
            goto out;
        }
        memcpy(kbuf, key, klen);
        kbuf[klen] = '\0';
        struct sbook_account *ba = sbook_account_by_key(c.sim->book, kbuf);
        if (!ba) {
            reply_error(&c, 401, -2015, "Invalid API-key, IP, or permissions for action.");
            goto out;
        }
        c.acct = sim_acct_of(c.sim, ba);
    }

    if (r->fn == h_order_new) /* Every order request of a known account is recorded, rejected or not. */
        c.rlog = log_order_request(&c, &c.params);

    if (r->sec == BN_SIGNED && !bench_unsigned_order(&c, r)) {
        size_t slen;
        const char *secret = sbook_account_secret(c.acct->ba, &slen);
        int code = sbnr_verify_signed(secret, slen, req->query, req->query_len, req->body,
                                      req->body_len, &c.params, sim_now_ms(), msg, sizeof(msg));
        if (code) {
            reply_error(&c, code == -1022 || code == -1021 || code == -1102 || code == -1130 ? 400 : 500,
                        code, msg);
            goto out;
        }
    }

    if (r->fn == h_order_new || r->fn == h_batch_orders) {
        /* Order count per account (A6): an order 1 + 1; a batch 5 (10 s) + 1 (1 min). */
        struct slim_bn_orders ol;
        bool batch = r->fn == h_batch_orders;
        slim_bn_orders(c.sim->limits, sbook_account_name(c.acct->ba), batch ? 5 : 1, 1, sim_now_ms(), &ol);
        slim_bn_order_headers(&ol, &resp->headers);
        if (ol.verdict != SLIM_OK) {
            snprintf(msg, sizeof(msg), "Too many new orders; current limit is %d orders per %s.", ol.limit,
                     ol.interval);
            reply_error(&c, 429, -1015, msg);
            goto out;
        }
    }

    r->fn(&c);
out:
    /* Method, path and status only: query strings carry signatures and headers the API key. */
    log_debug("rest", "%s %.*s -> %d", shttp_method_name(req->method), (int)(req->path_len > 200 ? 200 : req->path_len),
              req->path, resp->status);
    sp_free(&c.params);
}

/* ---- websocket entry ---- */

/* The listen key named by a stream path: /ws/<key>, /private/ws/<key>, or /private/ws (and /ws)
 * with a listenKey query argument. */
static const char *stream_key(const char *path, size_t len, const char *key_arg, char *buf, size_t n)
{
    static const char *const prefixes[] = {"/private/ws/", "/ws/"};
    for (size_t i = 0; i < 2; i++) {
        size_t pl = strlen(prefixes[i]);
        if (len > pl && memcmp(path, prefixes[i], pl) == 0) {
            size_t kl = len - pl;
            if (kl >= n || memchr(path + pl, '/', kl))
                return NULL;
            memcpy(buf, path + pl, kl);
            buf[kl] = '\0';
            return buf;
        }
    }
    if (key_arg && ((len == 11 && memcmp(path, "/private/ws", 11) == 0) || (len == 3 && memcmp(path, "/ws", 3) == 0)))
        return key_arg;
    return NULL;
}

struct sws_chan *sim_bn_resolve_stream(void *ud, const char *path, const char *key_arg)
{
    struct sim *s = ud;
    char buf[128];
    const char *key = stream_key(path, strlen(path), key_arg, buf, sizeof(buf));
    struct sim_acct *a = sim_lkey_lookup(s, key);
    return a ? a->chan : NULL;
}

bool sim_bn_upgrade(void *ud, const struct shttp_req *req, struct shttp_resp *resp)
{
    struct sim *s = ud;
    struct sp_list q;
    char buf[128];
    size_t klen = 0, vlen = 0;
    bool ok = false;

    sp_init(&q);
    if (sp_parse(&q, req->query, req->query_len) < 0) {
        shttp_resp_json(resp, 400, "{\"code\":-1100,\"msg\":\"Illegal characters found in a parameter.\"}");
        goto out;
    }
    const char *key = stream_key(req->path, req->path_len, sp_get(&q, "listenKey"), buf, sizeof(buf));
    if (!key) {
        shttp_resp_json(resp, 404, "{\"code\":-1099,\"msg\":\"Not found: no stream at this path\"}");
        goto out;
    }
    const char *wskey = shttp_header(req, "Sec-WebSocket-Key", &klen);
    const char *ver = shttp_header(req, "Sec-WebSocket-Version", &vlen);
    if (!wskey || klen == 0 || !ver || vlen != 2 || memcmp(ver, "13", 2) != 0) {
        shttp_resp_json(resp, 400, "{\"code\":-1000,\"msg\":\"Bad websocket handshake\"}");
        goto out;
    }
    if (!sim_lkey_lookup(s, key)) {
        shttp_resp_json(resp, 400, "{\"code\":-1125,\"msg\":\"This listenKey does not exist.\"}");
        goto out;
    }
    ok = true;
out:
    sp_free(&q);
    return ok;
}
