/* Admin API of the simulator (separate port, 127.0.0.1 only): script leader trades, move prices,
 * inspect what accounts sent and received. JSON in and out; errors are
 * {"error":"...","field":"..."} with 400 (bad input) or 404 (unknown account/symbol/path). */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sim.h"
#include "sim_bn_fmt.h"
#include "sim_bn_req.h"
#include "sim_by.h"
#include "sim_params.h"

#define ADMIN_MAX_FILLS 1000

struct ad_call {
    struct sim *sim;
    const struct shttp_req *req;
    struct shttp_resp *resp;
    struct sp_list q;
    json_t *body;
};

__attribute__((format(printf, 4, 5))) static void ad_err(struct ad_call *c, int status,
                                                         const char *field, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->resp->status = status;
    sbuf_reset(&c->resp->body);
    sbuf_adds(&c->resp->body, "{\"error\":");
    sbuf_add_jstr(&c->resp->body, msg);
    if (field) {
        sbuf_adds(&c->resp->body, ",\"field\":");
        sbuf_add_jstr(&c->resp->body, field);
    }
    sbuf_addc(&c->resp->body, '}');
}

/* JSON body object; answers 400 and returns false if absent or malformed. */
static bool need_body(struct ad_call *c)
{
    json_error_t je;
    if (c->req->body_len == 0) {
        ad_err(c, 400, NULL, "a JSON object body is required");
        return false;
    }
    c->body = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!c->body) {
        ad_err(c, 400, NULL, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
        return false;
    }
    if (!json_is_object(c->body)) {
        ad_err(c, 400, NULL, "the body must be a JSON object");
        return false;
    }
    return true;
}

/* Account from the body (from_body) or the "account" query parameter. */
static struct sim_acct *need_account(struct ad_call *c, bool from_body)
{
    const char *name = NULL;
    if (from_body) {
        json_t *v = json_object_get(c->body, "account");
        if (!v) {
            ad_err(c, 400, "account", "field 'account' is missing");
            return NULL;
        }
        if (!json_is_string(v)) {
            ad_err(c, 400, "account", "field 'account' must be a string");
            return NULL;
        }
        name = json_string_value(v);
    } else {
        name = sp_get(&c->q, "account");
        if (!name) {
            ad_err(c, 400, "account", "query parameter 'account' is missing");
            return NULL;
        }
    }
    struct sim_acct *a = sim_acct_by_name(c->sim, name);
    if (!a)
        ad_err(c, 404, "account", "unknown account '%s'", name);
    return a;
}

/* A decimal field (JSON string or integer) with its exact text in raw (NULL if absent). */
static int get_dec_raw(json_t *o, const char *key, dec_t *out, char *raw, size_t n)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return -ENOENT;
    if (json_is_string(v))
        snprintf(raw, n, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(raw, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        return -EINVAL;
    return dec_parse_cstr(raw, out) < 0 ? -EINVAL : 0;
}

static const char *opt_str(json_t *o, const char *key, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* ---- POST /admin/order ---- */

static void h_order(struct ad_call *c)
{
    struct sbook_order_req rq = {.source = SBOOK_SRC_ADMIN};
    char qraw[64] = "", praw[64] = "", msg[256];
    dec_t fills[ADMIN_MAX_FILLS];
    bool bad = false, ro = false;
    struct sbook_reqlog *rl = NULL;
    struct sbook_order *o = NULL;

    if (!need_body(c))
        return;
    struct sim_acct *a = need_account(c, true);
    if (!a)
        return;
    json_t *b = c->body;
    const char *sym = opt_str(b, "symbol", &bad);
    const char *side = opt_str(b, "side", &bad);
    const char *type = opt_str(b, "type", &bad);
    const char *tif = opt_str(b, "timeInForce", &bad);
    const char *cid = opt_str(b, "clientOrderId", &bad);
    const char *ps = opt_str(b, "positionSide", &bad);
    if (!cid)
        cid = opt_str(b, "newClientOrderId", &bad);
    if (bad) {
        ad_err(c, 400, NULL, "symbol, side, type, timeInForce, positionSide and clientOrderId must be strings");
        return;
    }
    int qrc = get_dec_raw(b, "quantity", &rq.qty, qraw, sizeof(qraw));
    int prc = get_dec_raw(b, "price", &rq.price, praw, sizeof(praw));
    json_t *rov = json_object_get(b, "reduceOnly");
    if (rov && json_is_boolean(rov))
        ro = json_is_true(rov);
    else if (rov && json_is_string(rov) && !strcasecmp(json_string_value(rov), "true"))
        ro = true;
    else if (rov && !(json_is_string(rov) && !strcasecmp(json_string_value(rov), "false"))) {
        ad_err(c, 400, "reduceOnly", "field 'reduceOnly' must be true or false");
        return;
    }

    /* From here on the request is recorded, whatever its fate. */
    rl = sbook_reqlog_add(a->ba, SBOOK_SRC_ADMIN, sim_now_ms(), cid, sym, side, type ? type : "MARKET",
                          tif, qrc == -ENOENT ? NULL : qraw, prc == -ENOENT ? NULL : praw,
                          ro ? "true" : "false");
    if (sbook_reqlog_set_position_side(rl, ps) < 0)
        log_error("sim", "account %s: out of memory recording an order request", sbook_account_name(a->ba));
#define REJECT(status, field, code, ...)                                 \
    do {                                                                 \
        ad_err(c, status, field, __VA_ARGS__);                           \
        snprintf(msg, sizeof(msg), __VA_ARGS__);                         \
        sbook_reqlog_result(rl, NULL, code, msg);                        \
        return;                                                          \
    } while (0)

    if (!sym)
        REJECT(400, "symbol", -1102, "field 'symbol' is missing");
    if (!(rq.sym = sbook_symbol(c->sim->book, sym)))
        REJECT(404, "symbol", -1121, "unknown symbol '%s'", sym);
    if (!side)
        REJECT(400, "side", -1102, "field 'side' is missing");
    if (!strcasecmp(side, "BUY"))
        rq.side = SBOOK_BUY;
    else if (!strcasecmp(side, "SELL"))
        rq.side = SBOOK_SELL;
    else
        REJECT(400, "side", -1117, "field 'side' must be BUY or SELL");
    if (!type || !strcasecmp(type, "MARKET"))
        rq.type = SBOOK_MARKET;
    else if (!strcasecmp(type, "LIMIT"))
        rq.type = SBOOK_LIMIT;
    else
        REJECT(400, "type", -1116, "field 'type' must be MARKET or LIMIT");
    if (qrc == -ENOENT)
        REJECT(400, "quantity", -1102, "field 'quantity' is missing");
    if (qrc < 0)
        REJECT(400, "quantity", -1102, "field 'quantity' must be a decimal string");
    if (rq.type == SBOOK_LIMIT) {
        if (prc < 0)
            REJECT(400, "price", -1102, "field 'price' (a decimal string) is required for LIMIT");
        if (!tif || !strcasecmp(tif, "GTC"))
            rq.tif = SBOOK_GTC;
        else if (!strcasecmp(tif, "IOC"))
            rq.tif = SBOOK_IOC;
        else if (!strcasecmp(tif, "FOK"))
            rq.tif = SBOOK_FOK;
        else if (!strcasecmp(tif, "GTX"))
            rq.tif = SBOOK_GTX;
        else
            REJECT(400, "timeInForce", -1115, "field 'timeInForce' must be GTC, IOC, FOK or GTX");
    } else if (prc != -ENOENT) {
        REJECT(400, "price", -1106, "field 'price' is only for LIMIT orders");
    }
    rq.reduce_only = ro;
    rq.pos_side = MKT_PS_BOTH;
    if (ps) {
        if (!strcasecmp(ps, "LONG"))
            rq.pos_side = MKT_PS_LONG;
        else if (!strcasecmp(ps, "SHORT"))
            rq.pos_side = MKT_PS_SHORT;
        else if (strcasecmp(ps, "BOTH") != 0)
            REJECT(400, "positionSide", -4060, "field 'positionSide' must be BOTH, LONG or SHORT");
    }
    if (cid) {
        if (!sbook_client_id_valid(cid))
            REJECT(400, "clientOrderId", -4015, "field 'clientOrderId' must match ^[.A-Z:/a-z0-9_-]{1,36}$");
        rq.client_id = cid;
    }
    json_t *fv = json_object_get(b, "fills");
    if (fv) {
        dec_t sum = DEC_ZERO;
        if (!json_is_array(fv) || json_array_size(fv) == 0 || json_array_size(fv) > ADMIN_MAX_FILLS)
            REJECT(400, "fills", -1130, "field 'fills' must be a non-empty array of at most %d decimal strings",
                   ADMIN_MAX_FILLS);
        if (rq.type != SBOOK_MARKET)
            REJECT(400, "fills", -1130, "field 'fills' is only for MARKET orders");
        for (size_t i = 0; i < json_array_size(fv); i++) {
            json_t *e = json_array_get(fv, i);
            if (!json_is_string(e) || dec_parse_cstr(json_string_value(e), &fills[i]) < 0 ||
                dec_sign(fills[i]) <= 0)
                REJECT(400, "fills", -1130, "fills[%zu] must be a decimal string > 0", i);
            if (dec_add(sum, fills[i], &sum) < 0)
                REJECT(400, "fills", -1130, "fills: sum out of range");
        }
        if (dec_cmp(sum, rq.qty) != 0)
            REJECT(400, "fills", -1130, "fills must sum to quantity %s", qraw);
        rq.fills = fills;
        rq.nfills = json_array_size(fv);
    }

    enum sbook_err e = sbook_place(c->sim->book, a->ba, &rq, &o);
    if (e != SBOOK_OK) {
        int code = sbnf_map_err(e, rq.sym, msg, sizeof(msg));
        if (e == SBOOK_E_BAD_FILLS)
            snprintf(msg, sizeof(msg), "each fill must be a positive multiple of the step size");
        c->resp->status = 400;
        sbuf_reset(&c->resp->body);
        sbuf_adds(&c->resp->body, "{\"error\":");
        sbuf_add_jstr(&c->resp->body, msg);
        sbuf_adds(&c->resp->body, ",\"code\":");
        sbuf_add_i64(&c->resp->body, code);
        sbuf_adds(&c->resp->body, ",\"msg\":");
        sbuf_add_jstr(&c->resp->body, msg);
        sbuf_addc(&c->resp->body, '}');
        sbook_reqlog_result(rl, NULL, code, msg);
        return;
    }
#undef REJECT
    sbook_reqlog_result(rl, o, 0, NULL);
    sbnf_order(&c->resp->body, o, SBNF_QUERY);
}

/* ---- POST /admin/price ---- */

static void h_price(struct ad_call *c)
{
    char raw[64];
    dec_t px;
    bool bad = false;
    if (!need_body(c))
        return;
    const char *sym = opt_str(c->body, "symbol", &bad);
    if (!sym || bad) {
        ad_err(c, 400, "symbol", "field 'symbol' (a string) is missing");
        return;
    }
    struct sbook_symbol *s = sbook_symbol(c->sim->book, sym);
    if (!s) {
        ad_err(c, 404, "symbol", "unknown symbol '%s'", sym);
        return;
    }
    int rc = get_dec_raw(c->body, "price", &px, raw, sizeof(raw));
    if (rc < 0 || dec_sign(px) <= 0) {
        ad_err(c, 400, "price", "field 'price' must be a decimal string > 0");
        return;
    }
    sbook_set_price(c->sim->book, s, px);
    sbuf_adds(&c->resp->body, "{\"symbol\":");
    sbuf_add_jstr(&c->resp->body, s->ins.symbol);
    sbuf_adds(&c->resp->body, ",\"price\":");
    sbuf_add_jdec(&c->resp->body, s->price);
    sbuf_addc(&c->resp->body, '}');
}

/* ---- GET /admin/orders ---- */

static void add_reduce_only(struct sbuf *b, const char *raw)
{
    if (!raw || !strcasecmp(raw, "false"))
        sbuf_adds(b, "false");
    else if (!strcasecmp(raw, "true"))
        sbuf_adds(b, "true");
    else
        sbuf_add_jstr(b, raw);
}

static void h_orders(struct ad_call *c)
{
    struct sim_acct *a = need_account(c, false);
    struct sbuf *b = &c->resp->body;
    if (!a)
        return;
    sbuf_addc(b, '[');
    for (size_t i = 0; i < sbook_reqlog_count(a->ba); i++) {
        const struct sbook_reqlog *r = sbook_reqlog_at(a->ba, i);
        const struct sbook_order *o = r->order;
        if (i)
            sbuf_addc(b, ',');
        sbuf_adds(b, "{\"seq\":");
        sbuf_add_i64(b, r->seq);
        sbuf_adds(b, ",\"source\":");
        sbuf_adds(b, r->source == SBOOK_SRC_ADMIN ? "\"admin\"" : "\"rest\"");
        sbuf_adds(b, ",\"time\":");
        sbuf_add_i64(b, r->time_ms);
        sbuf_adds(b, ",\"clientOrderId\":");
        sbuf_add_jstr(b, r->client_id);
        sbuf_adds(b, ",\"symbol\":");
        sbuf_add_jstr(b, r->symbol);
        sbuf_adds(b, ",\"side\":");
        sbuf_add_jstr(b, r->side);
        sbuf_adds(b, ",\"type\":");
        sbuf_add_jstr(b, r->type);
        sbuf_adds(b, ",\"timeInForce\":");
        sbuf_add_jstr(b, r->tif);
        sbuf_adds(b, ",\"origQty\":");
        sbuf_add_jstr(b, r->quantity);
        sbuf_adds(b, ",\"price\":");
        sbuf_add_jstr(b, r->price);
        sbuf_adds(b, ",\"reduceOnly\":");
        add_reduce_only(b, r->reduce_only);
        sbuf_adds(b, ",\"positionSide\":");
        sbuf_add_jstr(b, r->position_side);
        sbuf_adds(b, ",\"status\":");
        sbuf_add_jstr(b, o ? sbook_status_name(o->status) : "REJECTED");
        sbuf_adds(b, ",\"executedQty\":");
        sbuf_add_jdec(b, o ? o->exec_qty : DEC_ZERO);
        sbuf_adds(b, ",\"avgPrice\":");
        sbuf_add_jdec(b, o ? o->avg_price : DEC_ZERO);
        sbuf_adds(b, ",\"orderId\":");
        if (o)
            sbuf_add_i64(b, o->order_id);
        else
            sbuf_adds(b, "null");
        sbuf_adds(b, ",\"errorCode\":");
        if (r->err_code)
            sbuf_add_i64(b, r->err_code);
        else
            sbuf_adds(b, "null");
        sbuf_adds(b, ",\"errorMsg\":");
        sbuf_add_jstr(b, r->err_code ? r->err_msg : NULL);
        sbuf_addc(b, '}');
    }
    sbuf_addc(b, ']');
}

/* ---- GET /admin/positions ---- */

static void h_positions(struct ad_call *c)
{
    struct sim_acct *a = need_account(c, false);
    struct sbuf *b = &c->resp->body;
    const char *all = sp_get(&c->q, "all");
    bool show_all = all && (!strcmp(all, "1") || !strcasecmp(all, "true"));
    size_t n = 0;
    if (!a)
        return;
    bool hedge = sbook_account_mode(a->ba) == MKT_PM_HEDGE;
    sbuf_addc(b, '[');
    for (size_t i = 0; i < sbook_nsymbols(c->sim->book) * 3; i++) {
        const struct sbook_symbol *s = sbook_symbol_at(c->sim->book, i / 3);
        enum mkt_pos_side ps = (enum mkt_pos_side)(i % 3);
        const struct sbook_position *p = sbook_position_side(a->ba, s, ps);
        if ((ps != MKT_PS_BOTH) != hedge || (!show_all && dec_is_zero(p->amount)))
            continue;
        if (n++)
            sbuf_addc(b, ',');
        sbuf_adds(b, "{\"symbol\":");
        sbuf_add_jstr(b, s->ins.symbol);
        sbuf_adds(b, ",\"positionSide\":");
        sbuf_add_jstr(b, sbook_pos_side_name(ps));
        sbuf_adds(b, ",\"leverage\":");
        sbuf_add_i64(b, p->leverage);
        sbuf_adds(b, ",\"positionAmt\":");
        sbuf_add_jdec(b, p->amount);
        sbuf_adds(b, ",\"entryPrice\":");
        sbuf_add_jdec(b, p->entry_price);
        sbuf_adds(b, ",\"realizedPnl\":");
        sbuf_add_jdec(b, p->realized);
        sbuf_adds(b, ",\"updateTime\":");
        sbuf_add_i64(b, p->update_ms);
        sbuf_addc(b, '}');
    }
    sbuf_addc(b, ']');
}

/* ---- streams, events, replay ---- */

static void h_streams(struct ad_call *c)
{
    struct sim_acct *a = need_account(c, false);
    struct sbuf *b = &c->resp->body;
    if (!a)
        return;
    sbuf_adds(b, "{\"account\":");
    sbuf_add_jstr(b, sbook_account_name(a->ba));
    /* Every private stream of the account: its Binance listen-key connections and its
     * authenticated Bybit /v5/private connections (also reported apart). */
    int64_t bn = a->key_active ? (int64_t)sws_chan_count(a->chan) : 0;
    int64_t by = (int64_t)sim_by_connections(c->sim->by, a->ba);
    sbuf_adds(b, ",\"connections\":");
    sbuf_add_i64(b, bn + by);
    sbuf_adds(b, ",\"binanceConnections\":");
    sbuf_add_i64(b, bn);
    sbuf_adds(b, ",\"bybitConnections\":");
    sbuf_add_i64(b, by);
    sbuf_adds(b, ",\"listenKey\":");
    sbuf_add_jstr(b, a->key_active ? a->listen_key : NULL);
    sbuf_adds(b, ",\"events\":");
    sbuf_add_i64(b, (int64_t)sevlog_count(a->log));
    /* Frames lost to ws_silent connections (fault injection), both protocols. */
    int64_t by_lost = (int64_t)sim_by_silenced_frames(c->sim->by, a->ba);
    sbuf_adds(b, ",\"silencedFrames\":");
    sbuf_add_i64(b, (int64_t)sws_silenced_frames(c->sim->ws, sbook_account_name(a->ba)) + by_lost);
    sbuf_adds(b, ",\"bybitSilencedFrames\":");
    sbuf_add_i64(b, by_lost);
    sbuf_addc(b, '}');
}

static void h_events(struct ad_call *c)
{
    struct sim_acct *a = need_account(c, false);
    struct sbuf *b = &c->resp->body;
    int64_t from = 0;
    const char *fs;
    if (!a)
        return;
    if ((fs = sp_get(&c->q, "from_seq")) && !sbnr_parse_i64(fs, &from)) {
        ad_err(c, 400, "from_seq", "query parameter 'from_seq' must be a non-negative integer");
        return;
    }
    sbuf_addc(b, '[');
    for (size_t i = sevlog_first_from(a->log, from), n = 0; i < sevlog_count(a->log); i++, n++) {
        const struct sevlog_entry *e = sevlog_at(a->log, i);
        if (n)
            sbuf_addc(b, ',');
        sbuf_adds(b, "{\"seq\":");
        sbuf_add_i64(b, e->seq);
        sbuf_adds(b, ",\"time\":");
        sbuf_add_i64(b, e->time_ms);
        sbuf_adds(b, ",\"event\":");
        sbuf_add(b, e->text, e->len);
        sbuf_addc(b, '}');
    }
    sbuf_addc(b, ']');
}

static void h_replay(struct ad_call *c)
{
    json_int_t from = 0;
    if (!need_body(c))
        return;
    struct sim_acct *a = need_account(c, true);
    if (!a)
        return;
    json_t *v = json_object_get(c->body, "from_seq");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            ad_err(c, 400, "from_seq", "field 'from_seq' must be a non-negative integer");
            return;
        }
        from = json_integer_value(v);
    }
    size_t sent = sim_replay(c->sim, a, (int64_t)from);
    sbuf_adds(&c->resp->body, "{\"sent\":");
    sbuf_add_i64(&c->resp->body, (int64_t)sent);
    sbuf_adds(&c->resp->body, ",\"connections\":");
    sbuf_add_i64(&c->resp->body, a->key_active ? (int64_t)sws_chan_count(a->chan) : 0);
    sbuf_addc(&c->resp->body, '}');
}

static void h_accounts(struct ad_call *c)
{
    struct sbuf *b = &c->resp->body;
    sbuf_addc(b, '[');
    for (size_t i = 0; i < c->sim->naccts; i++) {
        struct sim_acct *a = &c->sim->accts[i];
        if (i)
            sbuf_addc(b, ',');
        sbuf_adds(b, "{\"name\":");
        sbuf_add_jstr(b, sbook_account_name(a->ba));
        struct sbnf_totals t;
        sbuf_adds(b, ",\"balance\":");
        sbuf_add_jdec(b, sbook_account_balance(a->ba));
        sbuf_adds(b, ",\"equity\":");
        if (sbnf_totals(c->sim->book, a->ba, &t) == 0)
            sbuf_add_jdec(b, t.equity);
        else
            sbuf_adds(b, "null");
        sbuf_adds(b, ",\"positionMode\":");
        sbuf_adds(b, sbook_account_mode(a->ba) == MKT_PM_HEDGE ? "\"hedge\"" : "\"oneway\"");
        sbuf_adds(b, ",\"orders\":");
        sbuf_add_i64(b, (int64_t)sbook_reqlog_count(a->ba));
        sbuf_adds(b, ",\"events\":");
        sbuf_add_i64(b, (int64_t)sevlog_count(a->log));
        sbuf_addc(b, '}');
    }
    sbuf_addc(b, ']');
}

/* Symbol from the body: answers 400/404 and returns NULL when missing or unknown. */
static struct sbook_symbol *need_symbol(struct ad_call *c)
{
    bool bad = false;
    const char *sym = opt_str(c->body, "symbol", &bad);
    if (!sym || bad) {
        ad_err(c, 400, "symbol", "field 'symbol' (a string) is missing");
        return NULL;
    }
    struct sbook_symbol *s = sbook_symbol(c->sim->book, sym);
    if (!s)
        ad_err(c, 404, "symbol", "unknown symbol '%s'", sym);
    return s;
}

/* ---- POST /admin/leverage: as if the account's owner changed it ---- */

static void h_leverage(struct ad_call *c)
{
    if (!need_body(c))
        return;
    struct sim_acct *a = need_account(c, true);
    if (!a)
        return;
    struct sbook_symbol *s = need_symbol(c);
    if (!s)
        return;
    json_t *v = json_object_get(c->body, "leverage");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > SBOOK_MAX_LEVERAGE) {
        ad_err(c, 400, "leverage", "field 'leverage' must be an integer in [1, %d]", SBOOK_MAX_LEVERAGE);
        return;
    }
    int lev = (int)json_integer_value(v);
    if (sbook_change_leverage(c->sim->book, a->ba, s, lev) < 0) {
        ad_err(c, 400, "leverage", "leverage %d refused", lev);
        return;
    }
    sbuf_addf(&c->resp->body, "{\"leverage\":%d,\"maxNotionalValue\":\"1000000000\",\"symbol\":", lev);
    sbuf_add_jstr(&c->resp->body, s->ins.symbol);
    sbuf_addc(&c->resp->body, '}');
}

/* ---- POST /admin/balance: set the wallet balance (ACCOUNT_UPDATE m=ADJUSTMENT) ---- */

static void h_balance(struct ad_call *c)
{
    char raw[64];
    dec_t bal;
    if (!need_body(c))
        return;
    struct sim_acct *a = need_account(c, true);
    if (!a)
        return;
    int rc = get_dec_raw(c->body, "balance", &bal, raw, sizeof(raw));
    if (rc < 0) {
        ad_err(c, 400, "balance", "field 'balance' must be a decimal string");
        return;
    }
    if (sbook_set_balance(c->sim->book, a->ba, bal) < 0) {
        ad_err(c, 400, "balance", "field 'balance' is out of range");
        return;
    }
    sbuf_adds(&c->resp->body, "{\"account\":");
    sbuf_add_jstr(&c->resp->body, sbook_account_name(a->ba));
    sbuf_adds(&c->resp->body, ",\"balance\":");
    sbuf_add_jdec(&c->resp->body, sbook_account_balance(a->ba));
    sbuf_addc(&c->resp->body, '}');
}

/* ---- POST /admin/position_mode: one-way <-> hedge, Binance's rules (-4059/-4067/-4068) ---- */

static void h_position_mode(struct ad_call *c)
{
    bool bad = false;
    char msg[160];
    enum mkt_pos_mode m;
    if (!need_body(c))
        return;
    struct sim_acct *a = need_account(c, true);
    if (!a)
        return;
    const char *v = opt_str(c->body, "position_mode", &bad);
    if (!v || bad || (strcmp(v, "hedge") != 0 && strcmp(v, "oneway") != 0)) {
        ad_err(c, 400, "position_mode", "field 'position_mode' must be \"oneway\" or \"hedge\"");
        return;
    }
    m = !strcmp(v, "hedge") ? MKT_PM_HEDGE : MKT_PM_ONE_WAY;
    enum sbook_err e = sbook_set_position_mode(c->sim->book, a->ba, m);
    if (e != SBOOK_OK) {
        int code = sbnf_map_err(e, NULL, msg, sizeof(msg));
        c->resp->status = 400;
        sbuf_reset(&c->resp->body);
        sbuf_adds(&c->resp->body, "{\"error\":");
        sbuf_add_jstr(&c->resp->body, msg);
        sbuf_adds(&c->resp->body, ",\"field\":\"position_mode\",\"code\":");
        sbuf_add_i64(&c->resp->body, code);
        sbuf_adds(&c->resp->body, ",\"msg\":");
        sbuf_add_jstr(&c->resp->body, msg);
        sbuf_addc(&c->resp->body, '}');
        return;
    }
    sbuf_adds(&c->resp->body, "{\"account\":");
    sbuf_add_jstr(&c->resp->body, sbook_account_name(a->ba));
    sbuf_adds(&c->resp->body, ",\"positionMode\":");
    sbuf_add_jstr(&c->resp->body, v);
    sbuf_addc(&c->resp->body, '}');
}

static void h_ping(struct ad_call *c)
{
    sbuf_adds(&c->resp->body, "{}");
}

/* ---- faults and rate limits (sim_fault.h, sim_limits.h) ---- */

static bool one_shot(enum sfault_kind k)
{
    return k == SFAULT_WS_DROP || k == SFAULT_LISTEN_KEY_EXPIRE;
}

static void h_fault_add(struct ad_call *c)
{
    struct sfault_spec sp;
    char err[300];
    const char *field = NULL;
    struct sim_acct *acct = NULL;
    int64_t now = sim_now_ms(), applied = 0;

    if (!need_body(c))
        return;
    if (sfault_parse(c->body, &sp, err, sizeof(err), &field) < 0) {
        ad_err(c, 400, field, "%s", err);
        return;
    }
    if (strcmp(sp.account, "*") != 0 && !(acct = sim_acct_by_name(c->sim, sp.account))) {
        ad_err(c, 404, "account", "unknown account '%s'", sp.account);
        return;
    }
    const struct sfault *f = sfault_add(c->sim->faults, &sp, c->body, now);
    if (!f) {
        ad_err(c, 500, NULL, "out of memory");
        return;
    }
    /* Stream faults act now on the account's (or every account's) current connections: its
     * Binance user-data streams and its Bybit private websockets. */
    const char *label = acct ? sp.account : NULL;
    const struct sbook_account *ba = acct ? acct->ba : NULL;
    switch (sp.kind) {
    case SFAULT_WS_DROP:
        applied = (int64_t)sws_drop(c->sim->ws, label);
        applied += (int64_t)sim_by_ws_drop(c->sim->by, ba);
        break;
    case SFAULT_WS_SILENT:
        applied = (int64_t)sws_silence(c->sim->ws, label, sp.duration_ms);
        /* Ends exactly when the fault stops being active (same clock, same start). */
        applied += (int64_t)sim_by_ws_silence(c->sim->by, ba, sp.duration_ms ? now + sp.duration_ms : 0);
        break;
    case SFAULT_LISTEN_KEY_EXPIRE: /* Binance only: Bybit has no listen key */
        for (size_t i = 0; i < c->sim->naccts; i++) {
            struct sim_acct *a = &c->sim->accts[i];
            if ((!acct || a == acct) && sim_lkey_expire_now(c->sim, a) == 0)
                applied++;
        }
        break;
    default:
        break;
    }
    if (applied)
        sfault_note(c->sim->faults, f->id, applied);
    if (one_shot(sp.kind))
        sfault_finish(c->sim->faults, f->id);
    log_info("admin", "fault %lld added: %s on account %s%s", (long long)f->id, sfault_kind_name(sp.kind),
             sp.account, applied ? " (applied now)" : "");
    sfault_json(f, now, &c->resp->body);
}

static void h_faults(struct ad_call *c)
{
    sfault_list_json(c->sim->faults, sim_now_ms(), &c->resp->body);
}

/* A silence ends with its fault. */
static void fault_removed(struct ad_call *c, const struct sfault *f)
{
    if (f->spec.kind != SFAULT_WS_SILENT)
        return;
    bool all = !strcmp(f->spec.account, "*");
    struct sim_acct *a = all ? NULL : sim_acct_by_name(c->sim, f->spec.account);
    sws_unsilence(c->sim->ws, all ? NULL : f->spec.account);
    if (all || a)
        sim_by_ws_unsilence(c->sim->by, a ? a->ba : NULL);
}

static void h_fault_clear(struct ad_call *c)
{
    const char *ids = sp_get(&c->q, "id");
    int64_t id = -1;
    int n;
    if (!ids && c->req->body_len) {
        if (!need_body(c))
            return;
        json_t *v = json_object_get(c->body, "id");
        if (v && (!json_is_integer(v) || json_integer_value(v) < 1)) {
            ad_err(c, 400, "id", "field 'id' must be a fault id");
            return;
        }
        if (v)
            id = json_integer_value(v);
    } else if (ids && (!sbnr_parse_i64(ids, &id) || id < 1)) {
        ad_err(c, 400, "id", "query parameter 'id' must be a fault id");
        return;
    }
    if (id > 0) {
        const struct sfault *f = sfault_by_id(c->sim->faults, id);
        if (!f) {
            ad_err(c, 404, "id", "no fault %lld", (long long)id);
            return;
        }
        fault_removed(c, f);
    } else {
        for (size_t i = 0; i < sfault_count(c->sim->faults); i++)
            fault_removed(c, sfault_at(c->sim->faults, i));
    }
    n = sfault_clear(c->sim->faults, id);
    sbuf_addf(&c->resp->body, "{\"cleared\":%d}", n < 0 ? 0 : n);
}

static void h_limits_reset(struct ad_call *c)
{
    slim_reset(c->sim->limits);
    sbuf_adds(&c->resp->body, "{}");
}

struct ad_route {
    enum shttp_method method;
    const char *path;
    void (*fn)(struct ad_call *c);
};

static const struct ad_route routes[] = {
    {SHTTP_POST, "/admin/order", h_order},
    {SHTTP_POST, "/admin/price", h_price},
    {SHTTP_POST, "/admin/leverage", h_leverage},
    {SHTTP_POST, "/admin/balance", h_balance},
    {SHTTP_POST, "/admin/position_mode", h_position_mode},
    {SHTTP_GET, "/admin/orders", h_orders},
    {SHTTP_GET, "/admin/positions", h_positions},
    {SHTTP_GET, "/admin/streams", h_streams},
    {SHTTP_GET, "/admin/events", h_events},
    {SHTTP_POST, "/admin/replay", h_replay},
    {SHTTP_GET, "/admin/accounts", h_accounts},
    {SHTTP_GET, "/admin/ping", h_ping},
    {SHTTP_POST, "/admin/fault", h_fault_add},
    {SHTTP_DELETE, "/admin/fault", h_fault_clear},
    {SHTTP_DELETE, "/admin/faults", h_fault_clear},
    {SHTTP_GET, "/admin/faults", h_faults},
    {SHTTP_POST, "/admin/limits/reset", h_limits_reset},
};

void sim_admin_handle(void *ud, const struct shttp_req *req, struct shttp_resp *resp)
{
    struct ad_call c = {.sim = ud, .req = req, .resp = resp};
    enum shttp_method m = req->method == SHTTP_HEAD ? SHTTP_GET : req->method;
    bool path_known = false;
    const struct ad_route *r = NULL;

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!shttp_path_is(req, routes[i].path))
            continue;
        path_known = true;
        if (routes[i].method == m) {
            r = &routes[i];
            break;
        }
    }
    if (!r) {
        ad_err(&c, path_known ? 405 : 404, NULL, "%s %.*s", path_known ? "method not allowed:" : "no such endpoint:",
               (int)(req->path_len > 200 ? 200 : req->path_len), req->path);
        return;
    }
    sp_init(&c.q);
    if (sp_parse(&c.q, req->query, req->query_len) < 0) {
        ad_err(&c, 400, NULL, "malformed query string");
        goto out;
    }
    r->fn(&c);
out:
    log_debug("admin", "%s %.*s -> %d", shttp_method_name(req->method),
              (int)(req->path_len > 200 ? 200 : req->path_len), req->path, resp->status);
    sp_free(&c.q);
    json_decref(c.body);
}
