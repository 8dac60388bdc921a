/* binance_rest: Binance USD-M futures REST adapter. See binance_rest.h for the outcome table.
 *
 * Signed requests (TRADE / USER_DATA): every parameter in ONE place (the query string for GET,
 * the form body for POST/PUT/DELETE), percent-encoded, then recvWindow, timestamp (local clock +
 * the offset measured by exch_sync_time) and, last, signature = HMAC of exactly that string.
 * Orders are sent with no_resend: curl never transmits an order twice on its own. */
#include "binance_rest.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#define HASH_NONFATAL_OOM 1 /* a failed add leaves the entry out (hh.tbl == NULL) */
#include <uthash.h>

#include "binance_sign.h"
#include "client_id.h"
#include "exch_limits.h"
#include "json_flat.h"
#include "json_util.h"
#include "rest_util.h"

#define URL_BUF 3072
#define BN_SIGN_ROOM 256 /* "&recvWindow=...&timestamp=...&signature=<64 hex>" and then some */

/* ---- small helpers ---- */

/* ---- request building ---- */

int binance_qs_add(char *buf, size_t cap, size_t len, const char *key, const char *value) {
    return ru_qs_add(buf, cap, len, key, value);
}

/* Non-empty, fits a market.h symbol, no controls or spaces (UTF-8 is fine: it gets encoded;
 * Binance does list symbols with non-ASCII names). */
static bool symbol_ok(const char *s) {
    if (!s || !*s || strlen(s) >= MKT_SYMBOL_MAX) return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c <= ' ' || *c == 0x7f) return false;
    return true;
}

#define ADD(k, v)                                               \
    do {                                                        \
        int r_ = binance_qs_add(buf, cap, (size_t)len, (k), (v)); \
        if (r_ < 0) return r_;                                  \
        len = r_;                                               \
    } while (0)

/* The parameters of one order, in the order they are sent (shared by the single order and the
 * batch). The pointers point into o or at literals. */
struct order_kv {
    struct {
        const char *k, *v;
    } kv[12];
    size_t n;
    char qty[DEC_STR_MAX], price[DEC_STR_MAX];
};

static int order_kv(const struct exch_order_req *req, struct order_kv *o, char *err,
                    size_t errlen) {
    const char *type, *tif = NULL, *pos_side = NULL;

    o->n = 0;
    if (!req) {
        ru_seterr(err, errlen, "order: no request");
        return -EINVAL;
    }
    if (!symbol_ok(req->symbol)) {
        ru_seterr(err, errlen, "order: symbol: empty, too long or has control characters");
        return -EINVAL;
    }
    if (req->side != MKT_BUY && req->side != MKT_SELL) {
        ru_seterr(err, errlen, "order: side: %d is neither BUY nor SELL", (int)req->side);
        return -EINVAL;
    }
    switch (req->type) {
    case EXCH_MARKET: type = "MARKET"; break;
    case EXCH_LIMIT_IOC: type = "LIMIT"; tif = "IOC"; break;
    case EXCH_LIMIT_GTC: type = "LIMIT"; tif = "GTC"; break;
    default:
        ru_seterr(err, errlen, "order: type: unknown value %d", (int)req->type);
        return -EINVAL;
    }
    switch (req->pos_side) {
    case MKT_PS_BOTH: break;
    case MKT_PS_LONG: pos_side = "LONG"; break;
    case MKT_PS_SHORT: pos_side = "SHORT"; break;
    default:
        ru_seterr(err, errlen, "order: position side: unknown value %d", (int)req->pos_side);
        return -EINVAL;
    }
    if (pos_side && req->reduce_only) {
        /* Binance answers -1106 to reduceOnly in hedge mode; a SELL on LONG closes anyway. */
        ru_seterr(err, errlen, "order: reduceOnly: not allowed with positionSide %s (hedge mode)",
                  pos_side);
        return -EINVAL;
    }
    if (!req->client_id || !client_id_valid(req->client_id)) {
        ru_seterr(err, errlen, "order: client id: must match [A-Za-z0-9_-]{1,36}");
        return -EINVAL;
    }
    if (!dec_valid(req->qty) || dec_sign(req->qty) <= 0 ||
        dec_format(req->qty, o->qty, sizeof o->qty) < 0) {
        ru_seterr(err, errlen, "order: quantity: must be > 0");
        return -EINVAL;
    }
    if (tif && (!dec_valid(req->price) || dec_sign(req->price) <= 0 ||
                dec_format(req->price, o->price, sizeof o->price) < 0)) {
        ru_seterr(err, errlen, "order: price: a limit order needs a price > 0");
        return -EINVAL;
    }
#define KV(key, val) (o->kv[o->n].k = (key), o->kv[o->n++].v = (val))
    KV("symbol", req->symbol);
    KV("side", req->side == MKT_BUY ? "BUY" : "SELL");
    if (pos_side) KV("positionSide", pos_side);
    KV("type", type);
    if (tif) KV("timeInForce", tif);
    KV("quantity", o->qty);
    if (tif) KV("price", o->price);
    if (req->reduce_only) KV("reduceOnly", "true");
    KV("newClientOrderId", req->client_id);
    KV("newOrderRespType", "RESULT");
#undef KV
    return 0;
}

int binance_order_params(const struct exch_order_req *req, char *buf, size_t cap, char *err,
                         size_t errlen) {
    struct order_kv o;
    int len = 0, r;

    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if ((r = order_kv(req, &o, err, errlen)) < 0) return r;
    for (size_t i = 0; i < o.n; i++) ADD(o.kv[i].k, o.kv[i].v);
    return len;
}

int binance_batch_params(const struct exch_order_req *reqs, size_t n, char *buf, size_t cap,
                         char *err, size_t errlen) {
    json_t *arr = NULL;
    char *text = NULL;
    int len = 0, rc = -EINVAL;

    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!reqs || n == 0 || n > BINANCE_BATCH_MAX) {
        ru_seterr(err, errlen, "batch: %zu orders (1..%d)", n, BINANCE_BATCH_MAX);
        return -EINVAL;
    }
    if (!(arr = json_array())) goto nomem;
    for (size_t i = 0; i < n; i++) {
        struct order_kv o;
        char e[160];
        if (order_kv(&reqs[i], &o, e, sizeof e) < 0) {
            ru_seterr(err, errlen, "batch[%zu]: %s", i, e);
            goto out;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(reqs[k].client_id, reqs[i].client_id) == 0) {
                /* Binance would place one and refuse the other (-4116) or, once the first has
                 * finished, place both: never send that. */
                ru_seterr(err, errlen, "batch[%zu]: client id: same as batch[%zu]", i, k);
                goto out;
            }
        json_t *obj = json_object();
        if (!obj || json_array_append_new(arr, obj) < 0) goto nomem;
        /* Every value as a JSON string, as Binance's own examples send them. */
        for (size_t k = 0; k < o.n; k++)
            if (json_object_set_new(obj, o.kv[k].k, json_string(o.kv[k].v)) < 0) goto nomem;
    }
    if (!(text = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER))) goto nomem;
    rc = len = binance_qs_add(buf, cap, 0, "batchOrders", text);
    if (rc == -ENOSPC) ru_seterr(err, errlen, "batch: parameters too long");
    goto out;
nomem:
    ru_seterr(err, errlen, "batch: out of memory");
    rc = -ENOMEM;
out:
    free(text);
    json_decref(arr);
    return rc;
}

int binance_query_params(const char *symbol, const char *client_id, char *buf, size_t cap) {
    int len = 0;
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!symbol_ok(symbol) || !client_id || !client_id_valid(client_id)) return -EINVAL;
    ADD("symbol", symbol);
    ADD("origClientOrderId", client_id);
    return len;
}

int binance_leverage_params(const char *symbol, int leverage, char *buf, size_t cap) {
    char num[16];
    int len = 0;
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!symbol_ok(symbol) || leverage < 1 || leverage > BINANCE_LEVERAGE_MAX) return -EINVAL;
    snprintf(num, sizeof num, "%d", leverage);
    ADD("symbol", symbol);
    ADD("leverage", num);
    return len;
}

int binance_order_id_params(const char *symbol, int64_t order_id, char *buf, size_t cap) {
    char num[24];
    int len = 0;
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!symbol_ok(symbol) || order_id <= 0) return -EINVAL;
    snprintf(num, sizeof num, "%" PRId64, order_id);
    ADD("symbol", symbol);
    ADD("orderId", num);
    return len;
}

int binance_user_trades_params(const char *symbol, int64_t from_id, int64_t order_id,
                               int64_t start_ms, int64_t end_ms, int limit, char *buf, size_t cap) {
    char num[24];
    int len = 0;
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!symbol_ok(symbol) || limit < 1 || limit > BINANCE_TRADES_LIMIT) return -EINVAL;
    if (start_ms >= 0 && (from_id >= 0 || end_ms < start_ms ||
                          end_ms - start_ms >= BINANCE_TRADES_WINDOW_MS))
        return -EINVAL;
    ADD("symbol", symbol);
    if (order_id > 0) {
        snprintf(num, sizeof num, "%" PRId64, order_id);
        ADD("orderId", num);
    }
    if (from_id >= 0) {
        snprintf(num, sizeof num, "%" PRId64, from_id);
        ADD("fromId", num);
    }
    if (start_ms >= 0) {
        snprintf(num, sizeof num, "%" PRId64, start_ms);
        ADD("startTime", num);
        snprintf(num, sizeof num, "%" PRId64, end_ms);
        ADD("endTime", num);
    }
    snprintf(num, sizeof num, "%d", limit);
    ADD("limit", num);
    return len;
}

int binance_sign_params(const struct exch_account *a, char *buf, size_t cap, size_t len,
                        int recv_window_ms, int64_t timestamp_ms) {
    char num[24], hex[BINANCE_SIG_HEX_LEN + 1];
    int l = (int)len;
    int r;
    if (!buf || len >= cap) return -ENOSPC;
    snprintf(num, sizeof num, "%d", recv_window_ms);
    if ((r = l = binance_qs_add(buf, cap, (size_t)l, "recvWindow", num)) < 0) goto fail;
    snprintf(num, sizeof num, "%" PRId64, timestamp_ms);
    if ((r = l = binance_qs_add(buf, cap, (size_t)l, "timestamp", num)) < 0) goto fail;
    /* The signature covers exactly the bytes sent before it. */
    if ((r = exch_account_sign_hex(a, buf, (size_t)l, hex)) < 0) goto fail;
    if ((r = binance_qs_add(buf, cap, (size_t)l, "signature", hex)) < 0) goto fail;
    return r;
fail:
    buf[len] = '\0'; /* as it was */
    return r;
}

#undef ADD

/* ---- response parsing ---- */

int binance_parse_error(const char *body, size_t len, int *code, char *msg, size_t msglen) {
    json_error_t je;
    json_t *j = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    int rc = -EBADMSG;
    int64_t c;
    const char *m;
    if (j && json_is_object(j) && ju_get_i64(j, "code", &c) == 0 && c != 0 && c > INT32_MIN &&
        c < INT32_MAX && ju_get_str(j, "msg", &m) == 0) {
        if (code) *code = (int)c;
        if (msg) ru_copy_text(msg, msglen, m, strlen(m));
        rc = 0;
    }
    json_decref(j);
    return rc;
}

static int status_parse(const char *s, enum exch_order_status *out) {
    static const struct {
        const char *s;
        enum exch_order_status st;
    } map[] = {
        {"NEW", EXCH_ST_NEW},           {"PARTIALLY_FILLED", EXCH_ST_PARTIALLY_FILLED},
        {"FILLED", EXCH_ST_FILLED},     {"CANCELED", EXCH_ST_CANCELED},
        {"REJECTED", EXCH_ST_REJECTED}, {"EXPIRED", EXCH_ST_EXPIRED},
        {"EXPIRED_IN_MATCH", EXCH_ST_EXPIRED},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].s) == 0) {
            *out = map[i].st;
            return 0;
        }
    return -EINVAL;
}

/* An order object j (what names it in messages: "order", "batch[2]") into *out. 0 / -EBADMSG. */
static int parse_order_obj(const struct jsrc *j, const char *what, struct exch_order_result *out,
                           char *err, size_t errlen) {
    struct exch_order_result o;
    const char *st;
    int r;
    int64_t oid;

    memset(&o, 0, sizeof o);
    if (!js_is_object(j)) {
        ru_seterr(err, errlen, "%s: not a JSON object", what);
        return -EBADMSG;
    }
    if ((r = js_get_i64(j, "orderId", &oid)) < 0) {
        ru_seterr(err, errlen, "%s: orderId: %s", what, ru_why(r));
        return -EBADMSG;
    }
    snprintf(o.order_id, sizeof o.order_id, "%" PRId64, oid);
    if ((r = js_get_strbuf(j, "clientOrderId", o.client_id, sizeof o.client_id)) < 0) {
        ru_seterr(err, errlen, "%s: clientOrderId: %s", what,
                  r == -ERANGE ? "too long" : ru_why(r));
        return -EBADMSG;
    }
    if ((r = js_get_str(j, "status", &st)) < 0) {
        ru_seterr(err, errlen, "%s: status: %s", what, ru_why(r));
        return -EBADMSG;
    }
    if (status_parse(st, &o.status) < 0) {
        ru_seterr(err, errlen, "%s: status: unknown value \"%.40s\"", what, st);
        return -EBADMSG;
    }
    if ((r = js_get_dec(j, "executedQty", &o.executed_qty)) < 0) {
        ru_seterr(err, errlen, "%s: executedQty: %s", what, ru_why_dec(r));
        return -EBADMSG;
    }
    if ((r = js_get_dec(j, "avgPrice", &o.avg_price)) < 0) {
        ru_seterr(err, errlen, "%s: avgPrice: %s", what, ru_why_dec(r));
        return -EBADMSG;
    }
    if ((r = js_get_i64(j, "updateTime", &o.update_time_ms)) < 0 && r != -ENOENT) {
        ru_seterr(err, errlen, "%s: updateTime: %s", what, ru_why(r));
        return -EBADMSG;
    }
    if (dec_sign(o.executed_qty) < 0 || dec_sign(o.avg_price) < 0) {
        ru_seterr(err, errlen, "%s: executedQty/avgPrice: negative", what);
        return -EBADMSG;
    }
    o.outcome = EXCH_OK;
    *out = o;
    return 0;
}

/* One per follower order: the flat table when it reads the body exactly as jansson would
 * (json_flat.h), else jansson. */
int binance_parse_order(const char *body, size_t len, struct exch_order_result *out, char *err,
                        size_t errlen) {
    struct jflat flat;
    struct jsrc src = {.flat = &flat};
    if (jflat_parse(&flat, body, len) == 0) return parse_order_obj(&src, "order", out, err, errlen);
    return binance_parse_order_tree(body, len, out, err, errlen);
}

int binance_parse_order_tree(const char *body, size_t len, struct exch_order_result *out,
                             char *err, size_t errlen) {
    json_t *j = ru_load_json(body, len, "order", err, errlen);
    if (!j) return -EBADMSG;
    struct jsrc src = {.obj = j};
    int rc = parse_order_obj(&src, "order", out, err, errlen);
    json_decref(j);
    return rc;
}

int binance_parse_order_info(const char *body, size_t len, int64_t want_order_id,
                             struct binance_order_info *out, char *err, size_t errlen) {
    struct binance_order_info o;
    const char *st;
    int r, rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "order", err, errlen);

    memset(&o, 0, sizeof o);
    if (!j) return -EBADMSG;
    if (!json_is_object(j)) {
        ru_seterr(err, errlen, "order: not a JSON object");
        goto out;
    }
    if ((r = ju_get_i64(j, "orderId", &o.order_id)) < 0) {
        ru_seterr(err, errlen, "order: orderId: %s", ru_why(r));
        goto out;
    }
    if (want_order_id > 0 && o.order_id != want_order_id) {
        ru_seterr(err, errlen, "order: orderId: %" PRId64 " is not the one asked for (%" PRId64 ")",
                  o.order_id, want_order_id);
        goto out;
    }
    if ((r = ju_get_strbuf(j, "clientOrderId", o.client_id, sizeof o.client_id)) < 0) {
        /* A longer id (Binance allows 36 of a wider set; ours are <= 36) is cut like o.c. */
        const char *cid;
        if (r != -ERANGE || ju_get_str(j, "clientOrderId", &cid) < 0) {
            ru_seterr(err, errlen, "order %" PRId64 ": clientOrderId: %s", o.order_id, ru_why(r));
            goto out;
        }
        ru_copy_text(o.client_id, sizeof o.client_id, cid, strlen(cid));
    }
    if ((r = ju_get_str(j, "status", &st)) < 0) {
        ru_seterr(err, errlen, "order %" PRId64 ": status: %s", o.order_id, ru_why(r));
        goto out;
    }
    if (status_parse(st, &o.status) < 0) {
        ru_seterr(err, errlen, "order %" PRId64 ": status: unknown value \"%.40s\"", o.order_id,
                  st);
        goto out;
    }
    if ((r = ju_get_dec(j, "origQty", &o.orig_qty)) < 0 || dec_sign(o.orig_qty) < 0) {
        ru_seterr(err, errlen, "order %" PRId64 ": origQty: %s", o.order_id,
                  r < 0 ? ru_why_dec(r) : "negative");
        goto out;
    }
    if ((r = ju_get_dec(j, "executedQty", &o.executed_qty)) < 0 || dec_sign(o.executed_qty) < 0) {
        ru_seterr(err, errlen, "order %" PRId64 ": executedQty: %s", o.order_id,
                  r < 0 ? ru_why_dec(r) : "negative");
        goto out;
    }
    if ((r = ju_get_bool(j, "reduceOnly", &o.reduce_only)) < 0) {
        ru_seterr(err, errlen, "order %" PRId64 ": reduceOnly: %s", o.order_id, ru_why(r));
        goto out;
    }
    r = ju_get_i64(j, "time", &o.time_ms);
    if (r == -ENOENT) {
        o.time_ms = -1;
    } else if (r < 0 || o.time_ms < 0) {
        ru_seterr(err, errlen, "order %" PRId64 ": time: %s", o.order_id,
                  r < 0 ? ru_why(r) : "negative");
        goto out;
    }
    o.prior_qty = DEC_ZERO;
    *out = o;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* One userTrades entry. 0, or -EBADMSG with err naming [i].field. */
static int parse_trade(const json_t *t, size_t i, const char *want_symbol, struct binance_trade *x,
                       char *err, size_t errlen) {
    const char *s;
    int r;
    memset(x, 0, sizeof *x);
    if (!json_is_object(t)) {
        ru_seterr(err, errlen, "userTrades: [%zu]: not an object", i);
        return -EBADMSG;
    }
    if ((r = ju_get_i64(t, "id", &x->id)) < 0 || x->id <= 0) {
        ru_seterr(err, errlen, "userTrades: [%zu].id: %s", i, r < 0 ? ru_why(r) : "not positive");
        return -EBADMSG;
    }
    if ((r = ju_get_str(t, "symbol", &s)) < 0) {
        ru_seterr(err, errlen, "userTrades: [%zu].symbol: %s (id %" PRId64 ")", i, ru_why(r),
                  x->id);
        return -EBADMSG;
    }
    if (!symbol_ok(s) || (want_symbol && strcmp(s, want_symbol) != 0)) {
        ru_seterr(err, errlen, "userTrades: [%zu].symbol: %s (id %" PRId64 ")", i,
                  symbol_ok(s) ? "not the symbol asked for" : "empty, too long or bad characters",
                  x->id);
        return -EBADMSG;
    }
    snprintf(x->symbol, sizeof x->symbol, "%s", s);
    if ((r = ju_get_i64(t, "orderId", &x->order_id)) < 0 || x->order_id <= 0) {
        ru_seterr(err, errlen, "userTrades: [%zu].orderId: %s (id %" PRId64 ")", i,
                  r < 0 ? ru_why(r) : "not positive", x->id);
        return -EBADMSG;
    }
    if ((r = ju_get_i64(t, "time", &x->time_ms)) < 0 || x->time_ms < 0) {
        ru_seterr(err, errlen, "userTrades: [%zu].time: %s (id %" PRId64 ")", i,
                  r < 0 ? ru_why(r) : "negative", x->id);
        return -EBADMSG;
    }
    if ((r = ju_get_str(t, "side", &s)) < 0 || (strcmp(s, "BUY") != 0 && strcmp(s, "SELL") != 0)) {
        ru_seterr(err, errlen, "userTrades: [%zu].side: %s (id %" PRId64 ")", i,
                  r < 0 ? ru_why(r) : "not BUY or SELL", x->id);
        return -EBADMSG;
    }
    x->side = strcmp(s, "BUY") == 0 ? MKT_BUY : MKT_SELL;
    x->pos_side = MKT_PS_BOTH;
    r = ju_get_str(t, "positionSide", &s);
    if (r == 0) {
        if (strcmp(s, "LONG") == 0) x->pos_side = MKT_PS_LONG;
        else if (strcmp(s, "SHORT") == 0) x->pos_side = MKT_PS_SHORT;
        else if (strcmp(s, "BOTH") != 0) r = -EINVAL;
    }
    if (r < 0 && r != -ENOENT) {
        ru_seterr(err, errlen,
                  "userTrades: [%zu].positionSide: not BOTH, LONG or SHORT (id %" PRId64 ")", i,
                  x->id);
        return -EBADMSG;
    }
    if ((r = ju_get_dec(t, "qty", &x->qty)) < 0 || dec_sign(x->qty) <= 0) {
        ru_seterr(err, errlen, "userTrades: [%zu].qty: %s (id %" PRId64 ")", i,
                  r < 0 ? ru_why_dec(r) : "not positive", x->id);
        return -EBADMSG;
    }
    if ((r = ju_get_dec(t, "price", &x->price)) < 0 || dec_sign(x->price) <= 0) {
        ru_seterr(err, errlen, "userTrades: [%zu].price: %s (id %" PRId64 ")", i,
                  r < 0 ? ru_why_dec(r) : "not positive", x->id);
        return -EBADMSG;
    }
    return 0;
}

int binance_parse_user_trades(const char *body, size_t len, const char *want_symbol,
                              struct binance_trade **out, size_t *n, char *err, size_t errlen) {
    json_t *j, *t;
    size_t i;
    struct binance_trade *v = NULL;
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if (!(j = ru_load_json(body, len, "userTrades", err, errlen))) return -EBADMSG;
    if (!json_is_array(j)) {
        ru_seterr(err, errlen, "userTrades: not a JSON array");
        goto fail;
    }
    if (json_array_size(j) > 0 && !(v = calloc(json_array_size(j), sizeof *v))) {
        ru_seterr(err, errlen, "userTrades: out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    json_array_foreach(j, i, t) {
        if (parse_trade(t, i, want_symbol, &v[i], err, errlen) < 0) goto fail;
    }
    *out = v;
    *n = json_array_size(j);
    json_decref(j);
    return 0;
fail:
    free(v);
    json_decref(j);
    return rc;
}

static int trade_id_cmp(const void *x, const void *y) {
    const struct binance_trade *a = x, *b = y;
    return (a->id > b->id) - (a->id < b->id);
}

static int info_ptr_cmp(const void *x, const void *y) {
    const struct binance_order_info *a = *(const struct binance_order_info *const *)x;
    const struct binance_order_info *b = *(const struct binance_order_info *const *)y;
    return (a->order_id > b->order_id) - (a->order_id < b->order_id);
}

int binance_build_fills(const char *account, struct binance_trade *trades, size_t n,
                        const struct binance_order_info *infos, size_t n_infos,
                        struct mkt_fill *out, char *err, size_t errlen) {
    const struct binance_order_info **idx = NULL;
    dec_t *cum = NULL;
    size_t w = 0;
    int rc = -ENOMEM;

    if (n == 0) return 0;
    if (n_infos > 0 && (!(idx = malloc(n_infos * sizeof *idx)) || !(cum = calloc(n_infos, sizeof *cum)))) {
        ru_seterr(err, errlen, "fills: out of memory");
        goto out;
    }
    for (size_t k = 0; k < n_infos; k++) {
        idx[k] = &infos[k];
    }
    if (n_infos > 1) qsort(idx, n_infos, sizeof *idx, info_ptr_cmp);
    for (size_t k = 0; k < n_infos; k++) cum[k] = idx[k]->prior_qty;
    qsort(trades, n, sizeof *trades, trade_id_cmp);
    for (size_t i = 0; i < n; i++) {
        const struct binance_trade *t = &trades[i];
        if (i > 0 && t->id == trades[i - 1].id) continue; /* pages overlapped */
        struct binance_order_info key = {.order_id = t->order_id}, *kp = &key;
        const struct binance_order_info **hit =
            n_infos ? bsearch(&kp, idx, n_infos, sizeof *idx, info_ptr_cmp) : NULL;
        if (!hit) {
            ru_seterr(err, errlen, "fills: trade %" PRId64 ": order %" PRId64 " unknown", t->id,
                      t->order_id);
            rc = -EBADMSG;
            goto out;
        }
        const struct binance_order_info *o = *hit;
        size_t k = (size_t)(hit - idx);
        if (dec_add(cum[k], t->qty, &cum[k]) < 0) {
            ru_seterr(err, errlen, "fills: order %" PRId64 ": cumulative quantity overflows",
                      o->order_id);
            rc = -EBADMSG;
            goto out;
        }
        struct mkt_fill *f = &out[w++];
        memset(f, 0, sizeof *f);
        snprintf(f->account, sizeof f->account, "%s", account ? account : "");
        snprintf(f->symbol, sizeof f->symbol, "%s", t->symbol);
        snprintf(f->trade_id, sizeof f->trade_id, "%" PRId64, t->id);
        snprintf(f->order_id, sizeof f->order_id, "%" PRId64, t->order_id);
        f->trade_seq = t->id;
        snprintf(f->order_client_id, sizeof f->order_client_id, "%s", o->client_id);
        f->side = t->side;
        f->qty = t->qty;
        f->price = t->price;
        f->cum_qty = cum[k];
        f->orig_qty = o->orig_qty;
        f->reduce_only = o->reduce_only;
        /* X == FILLED is on the trade that completed the order, not on the earlier ones */
        f->order_done = o->status == EXCH_ST_FILLED && dec_cmp(cum[k], o->executed_qty) >= 0;
        f->pos_side = t->pos_side;
        f->event_time_ms = t->time_ms;
        f->trade_time_ms = t->time_ms;
        f->received_ns = 0;
    }
    rc = (int)w;
out:
    free(idx);
    free(cum);
    return rc;
}

static int parse_book_ticker(const json_t *t, const char *where, struct exch_book_ticker *out,
                             char *err, size_t errlen) {
    const char *sym;
    int r;
    memset(out, 0, sizeof *out);
    if (!json_is_object(t)) {
        ru_seterr(err, errlen, "bookTicker: %.*s: not an object",
                  (int)(strlen(where) ? strlen(where) - 1 : 0), where);
        return -EBADMSG;
    }
    if ((r = ju_get_str(t, "symbol", &sym)) < 0) {
        ru_seterr(err, errlen, "bookTicker: %ssymbol: %s", where, ru_why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        ru_seterr(err, errlen, "bookTicker: %ssymbol: empty, too long or bad characters", where);
        return -EBADMSG;
    }
    snprintf(out->symbol, sizeof out->symbol, "%s", sym);
    static const char *const keys[2] = {"bidPrice", "askPrice"};
    dec_t *dst[2] = {&out->bid, &out->ask};
    for (int k = 0; k < 2; k++) {
        if ((r = ju_get_dec(t, keys[k], dst[k])) < 0 || dec_sign(*dst[k]) < 0) {
            ru_seterr(err, errlen, "bookTicker: %s%s: %s (symbol %s)", where, keys[k],
                      r < 0 ? ru_why_dec(r) : "negative", out->symbol);
            return -EBADMSG;
        }
    }
    r = ju_get_i64(t, "time", &out->time_ms);
    if (r == -ENOENT) {
        out->time_ms = 0;
    } else if (r < 0 || out->time_ms < 0) {
        ru_seterr(err, errlen, "bookTicker: %stime: %s (symbol %s)", where,
                  r < 0 ? ru_why(r) : "negative", out->symbol);
        return -EBADMSG;
    }
    return 0;
}

int binance_parse_book_tickers(const char *body, size_t len, struct exch_book_ticker **out,
                               size_t *n, char *err, size_t errlen) {
    json_t *j, *t;
    size_t i, cnt = 0, cap;
    struct exch_book_ticker *v = NULL;
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if (!(j = ru_load_json(body, len, "bookTicker", err, errlen))) return -EBADMSG;
    if (!json_is_object(j) && !json_is_array(j)) {
        ru_seterr(err, errlen, "bookTicker: neither a JSON array nor an object");
        goto fail;
    }
    cap = json_is_object(j) ? 1 : json_array_size(j);
    if (cap > 0 && !(v = calloc(cap, sizeof *v))) {
        ru_seterr(err, errlen, "bookTicker: out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    if (json_is_object(j)) { /* the one-symbol answer */
        if (parse_book_ticker(j, "", &v[0], err, errlen) < 0) goto fail;
        if (dec_sign(v[0].bid) > 0 && dec_sign(v[0].ask) > 0) cnt = 1;
    } else {
        json_array_foreach(j, i, t) {
            char where[32];
            snprintf(where, sizeof where, "[%zu].", i);
            if (parse_book_ticker(t, where, &v[cnt], err, errlen) < 0) goto fail;
            /* an empty side (no bid or no ask yet) is no quote to check a price against */
            if (dec_sign(v[cnt].bid) > 0 && dec_sign(v[cnt].ask) > 0) cnt++;
        }
    }
    if (cnt == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = cnt;
    json_decref(j);
    return 0;
fail:
    free(v);
    json_decref(j);
    return rc;
}

/* Reads filter field `key` of filter object f into *out; NULL or the reason. */
static const char *filter_dec(const json_t *f, const char *key, dec_t *out, bool positive) {
    int r = ju_get_dec(f, key, out);
    if (r < 0) return ru_why_dec(r);
    if (dec_sign(*out) < 0) return "negative";
    if (positive && dec_sign(*out) == 0) return "must be > 0";
    return NULL;
}

/* One symbols[i] entry: 0, or -EBADMSG with the reason in err. */
static int parse_instrument(const json_t *s, size_t i, struct mkt_instrument *in, char *err,
                            size_t errlen) {
    const char *sym, *ft, *bad = NULL, *fname = NULL, *field = NULL;
    json_t *filters, *f;
    size_t k;
    bool lot = false, price = false;
    int r;

    memset(in, 0, sizeof *in);
    if (!json_is_object(s)) {
        ru_seterr(err, errlen, "exchangeInfo: symbols[%zu]: not an object", i);
        return -EBADMSG;
    }
    if ((r = ju_get_str(s, "symbol", &sym)) < 0) {
        ru_seterr(err, errlen, "exchangeInfo: symbols[%zu].symbol: %s", i, ru_why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        ru_seterr(err, errlen,
                  "exchangeInfo: symbols[%zu].symbol: empty, too long or bad characters", i);
        return -EBADMSG;
    }
    snprintf(in->symbol, sizeof in->symbol, "%s", sym);
    filters = json_object_get(s, "filters");
    if (!json_is_array(filters)) {
        ru_seterr(err, errlen, "exchangeInfo: symbols[%zu].filters: %s (symbol %s)", i,
                  filters ? "not an array" : "missing", in->symbol);
        return -EBADMSG;
    }
    json_array_foreach(filters, k, f) {
        if (!json_is_object(f) || ju_get_str(f, "filterType", &ft) < 0) {
            ru_seterr(err, errlen,
                      "exchangeInfo: symbols[%zu].filters[%zu]: no filterType (symbol %s)", i, k,
                      in->symbol);
            return -EBADMSG;
        }
        if (strcmp(ft, "LOT_SIZE") == 0) {
            fname = "LOT_SIZE";
            lot = true;
            if ((bad = filter_dec(f, field = "stepSize", &in->step, true)) ||
                (bad = filter_dec(f, field = "minQty", &in->min_qty, false)) ||
                (bad = filter_dec(f, field = "maxQty", &in->max_qty, false)))
                break;
        } else if (strcmp(ft, "MARKET_LOT_SIZE") == 0) {
            fname = "MARKET_LOT_SIZE";
            if ((bad = filter_dec(f, field = "stepSize", &in->mkt_step, false)) ||
                (bad = filter_dec(f, field = "minQty", &in->mkt_min_qty, false)) ||
                (bad = filter_dec(f, field = "maxQty", &in->mkt_max_qty, false)))
                break;
        } else if (strcmp(ft, "PRICE_FILTER") == 0) {
            fname = "PRICE_FILTER";
            price = true;
            /* Binance: each rule is disabled when 0, so 0 is legal here. */
            if ((bad = filter_dec(f, field = "tickSize", &in->tick, false)) ||
                (bad = filter_dec(f, field = "minPrice", &in->min_price, false)) ||
                (bad = filter_dec(f, field = "maxPrice", &in->max_price, false)))
                break;
        } else if (strcmp(ft, "MIN_NOTIONAL") == 0) {
            fname = "MIN_NOTIONAL";
            if ((bad = filter_dec(f, field = "notional", &in->min_notional, false))) break;
        }
    }
    if (bad) {
        ru_seterr(err, errlen, "exchangeInfo: symbols[%zu].filters: %s.%s: %s (symbol %s)", i,
                  fname, field, bad, in->symbol);
        return -EBADMSG;
    }
    if (!lot || !price) {
        ru_seterr(err, errlen, "exchangeInfo: symbols[%zu].filters: %s: missing (symbol %s)", i,
                  !lot ? "LOT_SIZE" : "PRICE_FILTER", in->symbol);
        return -EBADMSG;
    }
    return 0;
}

int binance_parse_instruments(const char *body, size_t len, struct mkt_instrument **out,
                              size_t *n, size_t *skipped, char *err, size_t errlen) {
    json_t *j, *syms, *s;
    size_t i, cnt = 0, skip = 0;
    struct mkt_instrument *v = NULL;
    char first[200] = "";
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if (skipped) *skipped = 0;
    if (err && errlen) err[0] = '\0';
    if (!(j = ru_load_json(body, len, "exchangeInfo", err, errlen))) return -EBADMSG;
    syms = json_is_object(j) ? json_object_get(j, "symbols") : NULL;
    if (!json_is_object(j)) {
        ru_seterr(err, errlen, "exchangeInfo: not a JSON object");
        goto out;
    }
    if (!json_is_array(syms)) {
        ru_seterr(err, errlen, "exchangeInfo: symbols: %s", syms ? "not an array" : "missing");
        goto out;
    }
    if (json_array_size(syms) > 0) {
        v = calloc(json_array_size(syms), sizeof *v);
        if (!v) {
            ru_seterr(err, errlen, "exchangeInfo: out of memory");
            rc = -ENOMEM;
            goto out;
        }
    }
    json_array_foreach(syms, i, s) {
        char e[200];
        if (parse_instrument(s, i, &v[cnt], e, sizeof e) == 0) {
            cnt++;
        } else {
            if (skip++ == 0) ru_seterr(first, sizeof first, "%s", e);
        }
    }
    if (cnt == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = cnt;
    if (skipped) *skipped = skip;
    ru_seterr(err, errlen, "%s", first);
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* "leverage" of a positionRisk entry: a decimal integer string ("20", v2) or a JSON integer.
 * 0 and *lev, -ENOENT when absent, -EINVAL when malformed or outside 1..PARSE_MAX. */
static int get_leverage(const json_t *obj, const char *key, int *lev) {
    const json_t *v = json_object_get(obj, key);
    int64_t x = 0;
    if (!v) return -ENOENT;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t l = strlen(s);
        if (l == 0 || l > 6) return -EINVAL;
        for (size_t k = 0; k < l; k++) {
            if (s[k] < '0' || s[k] > '9') return -EINVAL;
            x = x * 10 + (s[k] - '0');
        }
    } else {
        return -EINVAL;
    }
    if (x < 1 || x > BINANCE_LEVERAGE_PARSE_MAX) return -EINVAL;
    *lev = (int)x;
    return 0;
}

/* One positionRisk entry i into pos (symbol, positionSide, positionAmt, entryPrice, leverage when
 * present). need_lev: leverage is required. 0 or -EBADMSG with err naming the field. */
static int parse_position_entry(const json_t *p, size_t i, bool need_lev, struct mkt_position *pos,
                                char *err, size_t errlen) {
    const char *sym, *side;
    int r;
    memset(pos, 0, sizeof *pos);
    if (!json_is_object(p)) {
        ru_seterr(err, errlen, "positionRisk: [%zu]: not an object", i);
        return -EBADMSG;
    }
    if ((r = ju_get_str(p, "symbol", &sym)) < 0) {
        ru_seterr(err, errlen, "positionRisk: [%zu].symbol: %s", i, ru_why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        ru_seterr(err, errlen, "positionRisk: [%zu].symbol: empty, too long or bad characters", i);
        return -EBADMSG;
    }
    snprintf(pos->symbol, sizeof pos->symbol, "%s", sym);
    r = ju_get_str(p, "positionSide", &side);
    if (r == -EINVAL) {
        ru_seterr(err, errlen, "positionRisk: [%zu].positionSide: wrong type (symbol %s)", i,
                  pos->symbol);
        return -EBADMSG;
    }
    pos->pos_side = MKT_PS_BOTH;
    if (r == 0) {
        if (strcmp(side, "LONG") == 0) pos->pos_side = MKT_PS_LONG;
        else if (strcmp(side, "SHORT") == 0) pos->pos_side = MKT_PS_SHORT;
        else if (strcmp(side, "BOTH") != 0) {
            ru_seterr(err, errlen,
                      "positionRisk: [%zu].positionSide: \"%.10s\" is not BOTH, LONG or SHORT "
                      "(symbol %s)",
                      i, side, pos->symbol);
            return -EBADMSG;
        }
    }
    if ((r = ju_get_dec(p, "positionAmt", &pos->amount)) < 0) {
        ru_seterr(err, errlen, "positionRisk: [%zu].positionAmt: %s (symbol %s)", i, ru_why_dec(r),
                  pos->symbol);
        return -EBADMSG;
    }
    if ((r = ju_get_dec(p, "entryPrice", &pos->entry_price)) < 0) {
        ru_seterr(err, errlen, "positionRisk: [%zu].entryPrice: %s (symbol %s)", i, ru_why_dec(r),
                  pos->symbol);
        return -EBADMSG;
    }
    if ((r = ju_get_i64(p, "updateTime", &pos->update_ms)) < 0 && r != -ENOENT) {
        ru_seterr(err, errlen, "positionRisk: [%zu].updateTime: %s (symbol %s)", i, ru_why(r),
                  pos->symbol);
        return -EBADMSG;
    }
    r = get_leverage(p, "leverage", &pos->leverage);
    if (r == -EINVAL || (r == -ENOENT && need_lev)) {
        ru_seterr(err, errlen, "positionRisk: [%zu].leverage: %s (symbol %s)", i,
                  r == -ENOENT ? "missing" : "not an integer 1..1000", pos->symbol);
        return -EBADMSG;
    }
    return 0;
}

/* Everything one positionRisk body says, parsed in one pass: the non-zero positions, every
 * symbol's leverage and the position mode, each with its own outcome (rc 0 or a negative errno,
 * err naming the field), so a body without "leverage" (v3) still gives positions. */
struct risk_parsed {
    struct mkt_position *pos; /* non-zero positions, NULL when n_pos == 0 or pos_rc != 0 */
    size_t n_pos;
    int pos_rc;
    char pos_err[160];
    struct exch_leverage *lev; /* one per symbol, sorted, NULL when n_lev == 0 or lev_rc != 0 */
    size_t n_lev;
    int lev_rc;
    char lev_err[160];
    enum mkt_pos_mode mode;
    int mode_rc; /* -ENODATA: the body cannot tell (no entries, or BOTH mixed with LONG/SHORT) */
    char mode_err[160];
};

static void risk_parsed_free(struct risk_parsed *p) {
    free(p->pos);
    free(p->lev);
    p->pos = NULL;
    p->lev = NULL;
    p->n_pos = p->n_lev = 0;
}

/* Fails every part that has not failed already (the first error of each part is kept). */
static void risk_fail(struct risk_parsed *p, int rc, const char *err) {
    if (!p->pos_rc) {
        p->pos_rc = rc;
        snprintf(p->pos_err, sizeof p->pos_err, "%s", err);
    }
    if (!p->lev_rc) {
        p->lev_rc = rc;
        snprintf(p->lev_err, sizeof p->lev_err, "%s", err);
    }
    if (!p->mode_rc) {
        p->mode_rc = rc;
        snprintf(p->mode_err, sizeof p->mode_err, "%s", err);
    }
}

/* By symbol, then highest leverage first (so deduplication keeps the highest). */
static int lev_cmp(const void *a, const void *b) {
    const struct exch_leverage *x = a, *y = b;
    int c = strcmp(x->symbol, y->symbol);
    if (c) return c;
    return (y->leverage > x->leverage) - (y->leverage < x->leverage);
}

static void risk_parse(const char *body, size_t len, struct risk_parsed *p) {
    char err[160];
    json_t *j, *e;
    size_t i, n, n_both = 0, n_hedge = 0;

    memset(p, 0, sizeof *p);
    p->mode = MKT_PM_ONE_WAY;
    if (!(j = ru_load_json(body, len, "positionRisk", err, sizeof err))) {
        risk_fail(p, -EBADMSG, err);
        return;
    }
    if (!json_is_array(j)) {
        risk_fail(p, -EBADMSG, "positionRisk: not a JSON array");
        goto out;
    }
    n = json_array_size(j);
    if (n > 0 && (!(p->pos = calloc(n, sizeof *p->pos)) || !(p->lev = calloc(n, sizeof *p->lev)))) {
        risk_fail(p, -ENOMEM, "positionRisk: out of memory");
        goto out;
    }
    json_array_foreach(j, i, e) {
        struct mkt_position pos;
        if (parse_position_entry(e, i, false, &pos, err, sizeof err) < 0) {
            risk_fail(p, -EBADMSG, err);
            goto out;
        }
        if (!dec_is_zero(pos.amount)) p->pos[p->n_pos++] = pos;
        if (pos.leverage == 0) { /* absent (v3); a present one is 1..PARSE_MAX */
            if (!p->lev_rc) {
                p->lev_rc = -EBADMSG;
                ru_seterr(p->lev_err, sizeof p->lev_err,
                          "positionRisk: [%zu].leverage: missing (symbol %s)", i, pos.symbol);
            }
        } else if (!p->lev_rc) {
            snprintf(p->lev[p->n_lev].symbol, sizeof p->lev[p->n_lev].symbol, "%s", pos.symbol);
            p->lev[p->n_lev++].leverage = pos.leverage;
        }
        if (pos.pos_side == MKT_PS_BOTH) n_both++;
        else n_hedge++;
    }
    if (!p->lev_rc && p->n_lev > 1) {
        /* Hedge mode lists LONG and SHORT of a symbol with the same leverage (it is per
         * symbol on Binance). Should they ever differ, the highest is kept: the max-leverage
         * check then errs on the safe side. */
        size_t w = 1;
        qsort(p->lev, p->n_lev, sizeof *p->lev, lev_cmp);
        for (size_t k = 1; k < p->n_lev; k++)
            if (strcmp(p->lev[k].symbol, p->lev[w - 1].symbol) != 0) p->lev[w++] = p->lev[k];
        p->n_lev = w;
    }
    /* One-way accounts list BOTH entries only, hedge-mode accounts LONG and SHORT ones (A3.4).
     * Anything else is not guessed at: the caller asks positionSide/dual. */
    if (n == 0) {
        p->mode_rc = -ENODATA;
        ru_seterr(p->mode_err, sizeof p->mode_err,
                  "positionRisk: no entries, the position mode cannot be told");
    } else if (n_both && n_hedge) {
        p->mode_rc = -ENODATA;
        ru_seterr(p->mode_err, sizeof p->mode_err,
                  "positionRisk: %zu BOTH and %zu LONG/SHORT entries, the position mode cannot be "
                  "told",
                  n_both, n_hedge);
    } else {
        p->mode = n_hedge ? MKT_PM_HEDGE : MKT_PM_ONE_WAY;
    }
out:
    json_decref(j);
    if (p->pos_rc || p->n_pos == 0) {
        free(p->pos);
        p->pos = NULL;
        p->n_pos = 0;
    }
    if (p->lev_rc || p->n_lev == 0) {
        free(p->lev);
        p->lev = NULL;
        p->n_lev = 0;
    }
}

int binance_parse_positions(const char *body, size_t len, struct mkt_position **out, size_t *n,
                            char *err, size_t errlen) {
    struct risk_parsed p;
    risk_parse(body, len, &p);
    *out = NULL;
    *n = 0;
    if (p.pos_rc) {
        ru_seterr(err, errlen, "%s", p.pos_err);
        risk_parsed_free(&p);
        return p.pos_rc;
    }
    *out = p.pos;
    *n = p.n_pos;
    p.pos = NULL;
    risk_parsed_free(&p);
    return 0;
}

int binance_parse_leverages(const char *body, size_t len, struct exch_leverage **out, size_t *n,
                            char *err, size_t errlen) {
    struct risk_parsed p;
    risk_parse(body, len, &p);
    *out = NULL;
    *n = 0;
    if (p.lev_rc) {
        ru_seterr(err, errlen, "%s", p.lev_err);
        risk_parsed_free(&p);
        return p.lev_rc;
    }
    *out = p.lev;
    *n = p.n_lev;
    p.lev = NULL;
    risk_parsed_free(&p);
    return 0;
}

int binance_parse_risk_mode(const char *body, size_t len, enum mkt_pos_mode *out, char *err,
                            size_t errlen) {
    struct risk_parsed p;
    risk_parse(body, len, &p);
    risk_parsed_free(&p);
    if (p.mode_rc) {
        ru_seterr(err, errlen, "%s", p.mode_err);
        return p.mode_rc;
    }
    *out = p.mode;
    return 0;
}

int binance_parse_account(const char *body, size_t len, struct exch_balance *out, char *err,
                          size_t errlen) {
    static const struct {
        const char *key;
        size_t off;
    } fields[] = {
        {"totalMarginBalance", offsetof(struct exch_balance, equity)},
        {"totalWalletBalance", offsetof(struct exch_balance, wallet)},
        {"availableBalance", offsetof(struct exch_balance, available)},
        {"totalUnrealizedProfit", offsetof(struct exch_balance, unrealized)},
    };
    int r, rc = -EBADMSG;
    json_t *j;

    memset(out, 0, sizeof *out);
    if (!(j = ru_load_json(body, len, "account", err, errlen))) return -EBADMSG;
    if (!json_is_object(j)) {
        ru_seterr(err, errlen, "account: not a JSON object");
        goto out;
    }
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        if ((r = ju_get_dec(j, fields[k].key, (dec_t *)((char *)out + fields[k].off))) < 0) {
            ru_seterr(err, errlen, "account: %s: %s", fields[k].key, ru_why_dec(r));
            memset(out, 0, sizeof *out);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

static int parse_ticker(const json_t *t, const char *where, struct exch_ticker *out, char *err,
                        size_t errlen) {
    const char *sym;
    int r;
    memset(out, 0, sizeof *out);
    if (!json_is_object(t)) {
        /* only reachable for array elements: where is "[i]." */
        ru_seterr(err, errlen, "ticker: %.*s: not an object",
                  (int)(strlen(where) ? strlen(where) - 1 : 0), where);
        return -EBADMSG;
    }
    if ((r = ju_get_str(t, "symbol", &sym)) < 0) {
        ru_seterr(err, errlen, "ticker: %ssymbol: %s", where, ru_why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        ru_seterr(err, errlen, "ticker: %ssymbol: empty, too long or bad characters", where);
        return -EBADMSG;
    }
    snprintf(out->symbol, sizeof out->symbol, "%s", sym);
    if ((r = ju_get_dec(t, "price", &out->price)) < 0) {
        ru_seterr(err, errlen, "ticker: %sprice: %s (symbol %s)", where, ru_why_dec(r),
                  out->symbol);
        return -EBADMSG;
    }
    if (dec_sign(out->price) < 0) {
        ru_seterr(err, errlen, "ticker: %sprice: negative (symbol %s)", where, out->symbol);
        return -EBADMSG;
    }
    r = ju_get_i64(t, "time", &out->time_ms);
    if (r == -ENOENT) {
        out->time_ms = 0;
    } else if (r < 0 || out->time_ms < 0) {
        ru_seterr(err, errlen, "ticker: %stime: %s (symbol %s)", where,
                  r < 0 ? ru_why(r) : "negative", out->symbol);
        return -EBADMSG;
    }
    return 0;
}

int binance_parse_tickers(const char *body, size_t len, struct exch_ticker **out, size_t *n,
                          char *err, size_t errlen) {
    json_t *j, *t;
    size_t i, cnt = 0;
    struct exch_ticker *v = NULL;
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if (!(j = ru_load_json(body, len, "ticker", err, errlen))) return -EBADMSG;
    if (json_is_object(j)) { /* the one-symbol answer */
        struct exch_ticker one;
        if (parse_ticker(j, "", &one, err, errlen) < 0) goto fail;
        if (dec_sign(one.price) > 0) {
            if (!(v = malloc(sizeof *v))) {
                ru_seterr(err, errlen, "ticker: out of memory");
                rc = -ENOMEM;
                goto fail;
            }
            v[cnt++] = one;
        }
    } else if (json_is_array(j)) {
        if (json_array_size(j) > 0 && !(v = calloc(json_array_size(j), sizeof *v))) {
            ru_seterr(err, errlen, "ticker: out of memory");
            rc = -ENOMEM;
            goto fail;
        }
        json_array_foreach(j, i, t) {
            char where[32];
            snprintf(where, sizeof where, "[%zu].", i);
            if (parse_ticker(t, where, &v[cnt], err, errlen) < 0) goto fail;
            if (dec_sign(v[cnt].price) > 0) cnt++;
        }
    } else {
        ru_seterr(err, errlen, "ticker: neither a JSON array nor an object");
        goto fail;
    }
    if (cnt == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = cnt;
    json_decref(j);
    return 0;
fail:
    free(v);
    json_decref(j);
    return rc;
}

int binance_parse_position_mode(const char *body, size_t len, enum mkt_pos_mode *out, char *err,
                                size_t errlen) {
    bool dual = false;
    int r, rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "positionSide/dual", err, errlen);
    if (!j) return -EBADMSG;
    if (!json_is_object(j)) {
        ru_seterr(err, errlen, "positionSide/dual: not a JSON object");
    } else if ((r = ju_get_bool(j, "dualSidePosition", &dual)) < 0) {
        ru_seterr(err, errlen, "positionSide/dual: dualSidePosition: %s", ru_why(r));
    } else {
        *out = dual ? MKT_PM_HEDGE : MKT_PM_ONE_WAY;
        rc = 0;
    }
    json_decref(j);
    return rc;
}

int binance_parse_set_leverage(const char *body, size_t len, const char *want_symbol,
                               int *leverage, char *err, size_t errlen) {
    const char *sym;
    int r, rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "leverage", err, errlen);
    *leverage = 0;
    if (!j) return -EBADMSG;
    if (!json_is_object(j)) {
        ru_seterr(err, errlen, "leverage: not a JSON object");
    } else if ((r = ju_get_str(j, "symbol", &sym)) < 0) {
        ru_seterr(err, errlen, "leverage: symbol: %s", ru_why(r));
    } else if (want_symbol && strcmp(sym, want_symbol) != 0) {
        ru_seterr(err, errlen, "leverage: symbol: \"%.31s\" is not the one asked for (%.31s)", sym,
                  want_symbol);
    } else if ((r = get_leverage(j, "leverage", leverage)) < 0 ||
               !json_is_integer(json_object_get(j, "leverage"))) {
        *leverage = 0;
        ru_seterr(err, errlen, "leverage: leverage: %s",
                  r == -ENOENT ? "missing" : "not an integer 1..1000");
    } else {
        rc = 0;
    }
    json_decref(j);
    return rc;
}

int binance_parse_server_time(const char *body, size_t len, int64_t *ms, char *err,
                              size_t errlen) {
    int r, rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "time", err, errlen);
    if (!j) return -EBADMSG;
    if (!json_is_object(j))
        ru_seterr(err, errlen, "time: not a JSON object");
    else if ((r = ju_get_i64(j, "serverTime", ms)) < 0)
        ru_seterr(err, errlen, "time: serverTime: %s", ru_why(r));
    else if (*ms <= 0)
        ru_seterr(err, errlen, "time: serverTime: not positive");
    else rc = 0;
    json_decref(j);
    return rc;
}

int binance_parse_listen_key(const char *body, size_t len, char *key, size_t cap, char *err,
                             size_t errlen) {
    const char *k;
    int r, rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "listenKey", err, errlen);
    if (!j) return -EBADMSG;
    if (!json_is_object(j)) {
        ru_seterr(err, errlen, "listenKey: not a JSON object");
    } else if ((r = ju_get_str(j, "listenKey", &k)) < 0) {
        ru_seterr(err, errlen, "listenKey: listenKey: %s", ru_why(r));
    } else {
        size_t kl = strlen(k);
        bool ok = kl > 0 && kl < BINANCE_LISTEN_KEY_MAX && kl < cap;
        for (size_t i = 0; ok && i < kl; i++)
            ok = (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
                 (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '-';
        if (!ok) {
            ru_seterr(err, errlen,
                      "listenKey: listenKey: empty, too long or unexpected characters");
        } else {
            memcpy(key, k, kl + 1);
            rc = 0;
        }
    }
    json_decref(j);
    return rc;
}

/* ---- classification ---- */

static bool throttle_code(int code) { return code == -1003 || code == -1015 || code == -1008; }
static bool unknown_code(int code) {
    return code == -1000 || code == -1001 || code == -1006 || code == -1007;
}

enum bn_op { BN_OP_PLACE, BN_OP_QUERY, BN_OP_CANCEL };

static void classify(const struct rest_resp *r, enum bn_op op, const char *want_client_id,
                     struct exch_order_result *out) {
    char emsg[sizeof out->error_msg];
    int code = 0;
    memset(out, 0, sizeof *out);
    out->outcome = EXCH_UNKNOWN;
    if (want_client_id) snprintf(out->client_id, sizeof out->client_id, "%s", want_client_id);
    out->http_status = r->http_status;
    out->sent_ns = r->sent_ns;

    if (r->err != 0) {
        /* Transport failure. "Not sent" only when curl never had a connection ready for the
         * request (connect refused, resolve failure, connect timeout): then the order cannot
         * exist. Anything later (timeout after sending, reset, refused re-send, cancellation
         * in flight) may have reached the matching engine. A cancel is UNKNOWN either way:
         * the caller must learn the order's state, which an unsent cancel did not change. */
        if (!r->maybe_sent && op == BN_OP_PLACE) {
            out->outcome = EXCH_REJECTED;
            out->http_status = 0;
            ru_seterr(out->error_msg, sizeof out->error_msg, "not sent: %s", r->error);
        } else {
            out->outcome = EXCH_UNKNOWN;
            ru_seterr(out->error_msg, sizeof out->error_msg, "%s%s",
                      op == BN_OP_QUERY    ? "query failed: "
                      : op == BN_OP_CANCEL ? "cancel outcome unknown: "
                                           : "outcome unknown: ",
                      r->error);
        }
        ru_sanitize(out->error_msg);
        return;
    }

    long s = r->http_status;
    if (s >= 200 && s < 300) {
        struct exch_order_result o;
        char perr[sizeof out->error_msg];
        if (binance_parse_order(r->body, r->body_len, &o, perr, sizeof perr) < 0) {
            /* An order endpoint answered 200 with something we cannot read: it may be an
             * order we cannot see. */
            out->outcome = EXCH_UNKNOWN;
            ru_seterr(out->error_msg, sizeof out->error_msg, "HTTP %ld, unreadable body: %s", s,
                      perr);
            ru_sanitize(out->error_msg);
            return;
        }
        if (want_client_id && strcmp(o.client_id, want_client_id) != 0) {
            out->outcome = EXCH_UNKNOWN;
            ru_seterr(out->error_msg, sizeof out->error_msg,
                      "clientOrderId mismatch: sent %.36s, got %.36s", want_client_id, o.client_id);
            ru_sanitize(out->error_msg);
            return;
        }
        o.http_status = s;
        o.sent_ns = r->sent_ns;
        *out = o;
        return;
    }

    bool has_err = binance_parse_error(r->body, r->body_len, &code, emsg, sizeof emsg) == 0;
    if (has_err) out->error_code = code;
    ru_http_msg(out->error_msg, sizeof out->error_msg, r, has_err, code, has_err ? emsg : "");

    if (s == 429 || s == 418 || s == 403 || (has_err && throttle_code(code))) {
        out->outcome = EXCH_THROTTLED;
        out->retry_after_ms = r->retry_after_ms > 0 ? r->retry_after_ms : 0;
        return;
    }
    if (s >= 500 || s == 408 || (has_err && unknown_code(code))) {
        out->outcome = EXCH_UNKNOWN;
        return;
    }
    if (s >= 400 && s < 500) {
        if (op == BN_OP_QUERY) out->outcome = has_err && code == -2013 ? EXCH_NOT_FOUND : EXCH_UNKNOWN;
        else out->outcome = EXCH_REJECTED;
        return;
    }
    out->outcome = EXCH_UNKNOWN; /* 1xx / 3xx / nonsense */
}

void binance_classify_order(const struct rest_resp *r, bool is_query, const char *want_client_id,
                            struct exch_order_result *out) {
    classify(r, is_query ? BN_OP_QUERY : BN_OP_PLACE, want_client_id, out);
}

void binance_classify_cancel(const struct rest_resp *r, const char *want_client_id,
                             struct exch_order_result *out) {
    classify(r, BN_OP_CANCEL, want_client_id, out);
}

/* One element i of a 2xx batchOrders array into out (client id already set). */
static void classify_batch_entry(const json_t *e, size_t i, long http, const char *want,
                                 struct exch_order_result *out) {
    char what[32], perr[sizeof out->error_msg];
    int64_t code;
    const char *msg;
    snprintf(what, sizeof what, "batch[%zu]", i);
    if (json_is_object(e) && !json_object_get(e, "orderId") && json_object_get(e, "code")) {
        /* {"code": -2022, "msg": "..."}: this order was not placed -- unless the code is one of
         * those that say the outcome is unknown or the engine was too busy */
        if (ju_get_i64(e, "code", &code) < 0 || code == 0 || code <= INT32_MIN ||
            code >= INT32_MAX || ju_get_str(e, "msg", &msg) < 0) {
            out->outcome = EXCH_UNKNOWN;
            ru_seterr(out->error_msg, sizeof out->error_msg, "HTTP %ld, %s: malformed error object",
                      http, what);
            return;
        }
        char m[120];
        ru_copy_text(m, sizeof m, msg, strlen(msg));
        out->error_code = (int)code;
        ru_seterr(out->error_msg, sizeof out->error_msg, "HTTP %ld: %s: %d %s", http, what,
                  (int)code, m);
        out->outcome = throttle_code((int)code) ? EXCH_THROTTLED
                       : unknown_code((int)code) ? EXCH_UNKNOWN
                                                 : EXCH_REJECTED;
        return;
    }
    struct exch_order_result o;
    struct jsrc src = {.obj = e};
    if (parse_order_obj(&src, what, &o, perr, sizeof perr) < 0) {
        out->outcome = EXCH_UNKNOWN;
        ru_seterr(out->error_msg, sizeof out->error_msg, "HTTP %ld, unreadable entry: %s", http,
                  perr);
        return;
    }
    if (strcmp(o.client_id, want) != 0) {
        out->outcome = EXCH_UNKNOWN;
        ru_seterr(out->error_msg, sizeof out->error_msg,
                  "%s: clientOrderId mismatch: sent %.36s, got %.36s", what, want, o.client_id);
        return;
    }
    o.http_status = http;
    *out = o;
}

void binance_classify_batch(const struct rest_resp *r, const char *const *client_ids, size_t n,
                            struct exch_order_result *out) {
    long s = r->http_status;
    if (r->err != 0 || s < 200 || s >= 300) {
        /* One answer for all of them: each classified like a single place. */
        for (size_t i = 0; i < n; i++) classify(r, BN_OP_PLACE, client_ids[i], &out[i]);
        return;
    }
    char err[sizeof out->error_msg] = "";
    json_t *j = ru_load_json(r->body, r->body_len, "batch", err, sizeof err);
    if (j && (!json_is_array(j) || json_array_size(j) != n)) {
        if (json_is_array(j))
            ru_seterr(err, sizeof err, "batch: %zu entries for %zu orders", json_array_size(j), n);
        else
            ru_seterr(err, sizeof err, "batch: not a JSON array");
        json_decref(j);
        j = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].outcome = EXCH_UNKNOWN;
        out[i].http_status = s;
        snprintf(out[i].client_id, sizeof out[i].client_id, "%s", client_ids[i]);
        if (!j) {
            /* the answer may list orders we cannot see: they may exist */
            ru_seterr(out[i].error_msg, sizeof out[i].error_msg, "HTTP %ld, unreadable body: %s", s,
                      err);
            continue;
        }
        classify_batch_entry(json_array_get(j, i), i, s, client_ids[i], &out[i]);
    }
    json_decref(j);
    for (size_t i = 0; i < n; i++) out[i].sent_ns = r->sent_ns;
}

bool binance_status_from_resp(const struct rest_resp *r, struct exch_status *st) {
    char emsg[sizeof st->error_msg];
    int code = 0;
    memset(st, 0, sizeof *st);
    st->http_status = r->http_status;
    if (r->err != 0) {
        st->err = r->err;
        ru_seterr(st->error_msg, sizeof st->error_msg, "%s", r->error);
        ru_sanitize(st->error_msg);
        return false;
    }
    long s = r->http_status;
    if (s >= 200 && s < 300) return true;
    bool has_err = binance_parse_error(r->body, r->body_len, &code, emsg, sizeof emsg) == 0;
    if (has_err) st->error_code = code;
    ru_http_msg(st->error_msg, sizeof st->error_msg, r, has_err, code, has_err ? emsg : "");
    if (s == 429 || s == 418 || s == 403 || (has_err && throttle_code(code))) st->err = -EAGAIN;
    else st->err = -EREMOTEIO;
    return false;
}

/* ---- adapter: calls in flight ---- */

enum bn_kind {
    BN_PLACE, BN_QUERY, BN_INSTR, BN_POS, BN_TIME, BN_LK_CREATE, BN_LK_KEEP, BN_LK_DEL,
    BN_ACCOUNT, BN_TICKERS, BN_POS_MODE, BN_LEVERAGES, BN_SET_LEV, BN_CANCEL, BN_BATCH,
    BN_FILLS, BN_BOOK,
    BN_RISK, /* GET /fapi/v2/positionRisk shared by BN_POS, BN_POS_MODE and BN_LEVERAGES */
};

/* Stages of a BN_FILLS call. */
enum { FL_TRADES = 0, FL_ORDER, FL_PRIOR };

#define FILLS_HISTORY_MS (180LL * 86400000LL) /* userTrades: "only the past 6 months" */

static int fills_page_limit = BINANCE_TRADES_LIMIT;
static size_t fills_max_trades = BINANCE_FILLS_MAX;

void binance_fills_test_limits(int page_limit, size_t max_trades) {
    fills_page_limit = page_limit > 0 && page_limit <= BINANCE_TRADES_LIMIT ? page_limit
                                                                            : BINANCE_TRADES_LIMIT;
    fills_max_trades = max_trades > 0 ? max_trades : BINANCE_FILLS_MAX;
}

/* The state of a fills backfill across its requests. */
struct bn_fills {
    char symbol[MKT_SYMBOL_MAX];
    int64_t since_ms, now_ms, win_start, win_end;
    int64_t last_id; /* highest trade id seen, -1 before the first: then pages go by fromId */
    int page_limit;
    size_t max_trades;
    unsigned pages, max_pages;
    struct binance_trade *t; /* trades with time >= since_ms */
    size_t nt, capt;
    struct binance_order_info *o; /* one per distinct order id, ascending */
    int64_t *first_id;            /* per order: its first trade being backfilled */
    dec_t *sum;                   /* per order: the quantity of those trades */
    size_t no, oi;                /* orders, the one being queried */
};

struct bn_call {
    struct exch_account *a; /* reference held until the callback has run */
    enum bn_kind kind;
    union {
        exch_order_cb order;
        exch_instruments_cb instr;
        exch_positions_cb pos;
        exch_time_cb time;
        exch_listen_key_cb lk;
        exch_balance_cb bal;
        exch_tickers_cb tick;
        exch_pos_mode_cb mode;
        exch_leverages_cb levs;
        exch_set_leverage_cb setlev;
        exch_batch_cb batch;
        exch_fills_cb fills;
        exch_book_tickers_cb book;
    } cb;
    void *ud;
    int64_t send_wall_us;
    char client_id[MKT_CLIENT_ID_MAX];
    char listen_key[BINANCE_LISTEN_KEY_MAX];
    char symbol[MKT_SYMBOL_MAX]; /* BN_SET_LEV, BN_CANCEL */
    int stage;                   /* BN_CANCEL: 0 the cancel, 1 the query; BN_FILLS: FL_* */
    int first_code;              /* BN_CANCEL: the cancel's error code while we query */
    size_t n;                    /* BN_BATCH */
    char batch_ids[BINANCE_BATCH_MAX][MKT_CLIENT_ID_MAX];
    struct bn_fills *fl;         /* BN_FILLS */
    /* BN_RISK: the readers waiting for its answer (FIFO through next) */
    struct bn_call *waiters, **waiters_tail;
    struct bn_call *next;
    /* The request as bn_build makes it when it leaves (after any rate-limit wait), so the
     * timestamp and signature are fresh; keyhdr is wiped before the call is freed. qs, body and
     * url share one block sized by bn_send for this request (fixed 8 KiB + 8 KiB + 3 KiB buffers
     * made 20,000 start-up calls waiting for their turn cost 400 MB). */
    struct {
        const char *path;
        bool sign, api_key;
        int qs_len;
        char *buf;          /* the block, NULL before bn_send */
        char *qs;           /* parameters, unsigned (qs_len + 1 bytes) */
        char *body;         /* parameters as sent (signed), body_cap bytes */
        char *url;          /* url_cap bytes */
        size_t body_cap, url_cap;
        char keyhdr[600];
        const char *hdrs[3];
    } w;
};

static void on_order(struct bn_call *c, const struct rest_resp *r) {
    struct exch_order_result res;
    binance_classify_order(r, c->kind == BN_QUERY, c->client_id, &res);
    c->cb.order(c->ud, &res);
}

static void on_instruments(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct mkt_instrument *v = NULL;
    size_t n = 0, skipped = 0;
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_instruments(r->body, r->body_len, &v, &n, &skipped, err, sizeof err);
        if (rc < 0) {
            st.err = rc == -ENOMEM ? -ENOMEM : -EBADMSG;
            ru_seterr(st.error_msg, sizeof st.error_msg, "%s", err);
        } else if (skipped > 0) {
            /* Usable symbols are still delivered; the message says what was left out. */
            if (n == 0) st.err = -EBADMSG;
            ru_seterr(st.error_msg, sizeof st.error_msg, "skipped %zu symbol(s); first: %s",
                      skipped, err);
        }
    }
    c->cb.instr(c->ud, &st, st.err ? NULL : v, st.err ? 0 : n);
    free(v);
}

static void on_time(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    int64_t server_ms = 0, offset = 0;
    if (binance_status_from_resp(r, &st)) {
        if (binance_parse_server_time(r->body, r->body_len, &server_ms, st.error_msg,
                                      sizeof st.error_msg) < 0) {
            st.err = -EBADMSG;
        } else {
            st.err = ru_time_offset(r, c->send_wall_us, server_ms, &offset, st.error_msg,
                                    sizeof st.error_msg);
            if (!st.err && !exch_account_is_closed(c->a)) exch_account_set_time_offset_ms(c->a, offset);
        }
    }
    c->cb.time(c->ud, &st, st.err ? 0 : offset);
}

static bool is_empty_object(const struct rest_resp *r) {
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    bool empty = json_is_object(j) && json_object_size(j) == 0;
    json_decref(j);
    return empty;
}

static void on_listen_key(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    char key[BINANCE_LISTEN_KEY_MAX];
    const char *out = NULL;
    if (binance_status_from_resp(r, &st)) {
        if (c->kind == BN_LK_DEL) {
            out = c->listen_key; /* the response is {} */
        } else if (binance_parse_listen_key(r->body, r->body_len, key, sizeof key, st.error_msg,
                                            sizeof st.error_msg) == 0) {
            out = key;
        } else if (c->kind == BN_LK_KEEP && c->listen_key[0] && is_empty_object(r)) {
            /* Keep-alive answered {} before 2024-04-25; success all the same. */
            st.error_msg[0] = '\0';
            out = c->listen_key;
        } else {
            st.err = -EBADMSG;
        }
    }
    c->cb.lk(c->ud, &st, out);
}

/* A parser failure into st: -ENOMEM stays, anything else is -EBADMSG; err becomes the message. */
static void on_account(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct exch_balance b;
    memset(&b, 0, sizeof b);
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_account(r->body, r->body_len, &b, err, sizeof err);
        if (rc < 0) ru_parse_failed(&st, rc, err);
    }
    c->cb.bal(c->ud, &st, st.err ? NULL : &b);
}

static void on_tickers(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct exch_ticker *v = NULL;
    size_t n = 0;
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_tickers(r->body, r->body_len, &v, &n, err, sizeof err);
        if (rc < 0) ru_parse_failed(&st, rc, err);
    }
    c->cb.tick(c->ud, &st, st.err ? NULL : v, st.err ? 0 : n);
    free(v);
}

static void on_pos_mode(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    enum mkt_pos_mode m = MKT_PM_ONE_WAY;
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_position_mode(r->body, r->body_len, &m, err, sizeof err);
        if (rc < 0) ru_parse_failed(&st, rc, err);
    }
    c->cb.mode(c->ud, &st, m);
}

static void on_set_leverage(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    int lev = 0;
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_set_leverage(r->body, r->body_len, c->symbol, &lev, err, sizeof err);
        if (rc < 0) ru_parse_failed(&st, rc, err);
    }
    c->cb.setlev(c->ud, &st, c->symbol, st.err ? 0 : lev);
}

static int bn_send(struct exch_account *a, struct bn_call *c, enum rest_method m, const char *path,
                   char *qs, int qs_len, bool sign, bool api_key, bool no_resend);
static struct bn_call *call_new(enum bn_kind kind, void *ud);

static void call_free(struct bn_call *c) {
    if (!c) return;
    explicit_bzero(c->w.keyhdr, sizeof c->w.keyhdr);
    free(c->w.buf);
    if (c->fl) {
        free(c->fl->t);
        free(c->fl->o);
        free(c->fl->first_id);
        free(c->fl->sum);
        free(c->fl);
    }
    free(c);
}

/* ---- cancel: DELETE, then on -2011 a query by client id ---- */

static int cancel_send_query(struct exch_account *a, struct bn_call *c) {
    char qs[BINANCE_QS_MAX];
    int len = binance_query_params(c->symbol, c->client_id, qs, sizeof qs);
    if (len < 0) return len;
    c->stage = 1;
    return bn_send(a, c, REST_GET, "/fapi/v1/order", qs, len, true, true, false);
}

/* true when the call is finished (the callback ran) */
static bool on_cancel(struct bn_call *c, struct exch_account *a, const struct rest_resp *r) {
    struct exch_order_result res;
    if (c->stage == 0) {
        binance_classify_cancel(r, c->client_id, &res);
        if (res.outcome == EXCH_REJECTED && (res.error_code == -2011 || res.error_code == -2013)) {
            /* -2011 "Unknown order sent" is also the answer for an order that has finished:
             * only a query tells a filled order from a missing one. */
            c->first_code = res.error_code;
            int e = cancel_send_query(a, c);
            if (e == 0) return false;
            res.outcome = EXCH_UNKNOWN;
            ru_seterr(res.error_msg, sizeof res.error_msg,
                      "cancel answered %d; the follow-up query could not be sent: %s",
                      res.error_code, strerror(-e));
        }
        c->cb.order(c->ud, &res);
        return true;
    }
    binance_classify_order(r, true, c->client_id, &res);
    if (res.outcome != EXCH_OK && res.outcome != EXCH_NOT_FOUND) {
        /* The query failed: the order may be filled or missing. Never NOT_FOUND on a guess
         * (a caller could then place it again): the query's own outcome, UNKNOWN or THROTTLED. */
        char q[sizeof res.error_msg];
        snprintf(q, sizeof q, "%s", res.error_msg);
        ru_seterr(res.error_msg, sizeof res.error_msg, "cancel: %d; then %s", c->first_code, q);
    }
    c->cb.order(c->ud, &res);
    return true;
}

static void on_batch(struct bn_call *c, const struct rest_resp *r) {
    struct exch_order_result v[BINANCE_BATCH_MAX];
    const char *ids[BINANCE_BATCH_MAX];
    for (size_t i = 0; i < c->n; i++) ids[i] = c->batch_ids[i];
    binance_classify_batch(r, ids, c->n, v);
    c->cb.batch(c->ud, v, c->n);
}

static void on_book(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct exch_book_ticker *v = NULL;
    size_t n = 0;
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_book_tickers(r->body, r->body_len, &v, &n, err, sizeof err);
        if (rc < 0) ru_parse_failed(&st, rc, err);
    }
    c->cb.book(c->ud, &st, st.err ? NULL : v, st.err ? 0 : n);
    free(v);
}

/* ---- fills backfill ---- */

static int fills_send_trades(struct exch_account *a, struct bn_call *c) {
    struct bn_fills *f = c->fl;
    char qs[BINANCE_QS_MAX];
    int len = f->last_id >= 0
                  ? binance_user_trades_params(f->symbol, f->last_id + 1, 0, -1, -1, f->page_limit,
                                               qs, sizeof qs)
                  : binance_user_trades_params(f->symbol, -1, 0, f->win_start, f->win_end,
                                               f->page_limit, qs, sizeof qs);
    if (len < 0) return len;
    c->stage = FL_TRADES;
    return bn_send(a, c, REST_GET, "/fapi/v1/userTrades", qs, len, true, true, false);
}

static int fills_send_order(struct exch_account *a, struct bn_call *c) {
    struct bn_fills *f = c->fl;
    char qs[BINANCE_QS_MAX];
    int len = binance_order_id_params(f->symbol, f->o[f->oi].order_id, qs, sizeof qs);
    if (len < 0) return len;
    c->stage = FL_ORDER;
    return bn_send(a, c, REST_GET, "/fapi/v1/order", qs, len, true, true, false);
}

/* The order's trades from its creation (a 7-day window, the most Binance allows; the last 7 days
 * when its creation time is unknown), to count what it filled before the backfill's first. */
static int fills_send_prior(struct exch_account *a, struct bn_call *c) {
    struct bn_fills *f = c->fl;
    const struct binance_order_info *o = &f->o[f->oi];
    char qs[BINANCE_QS_MAX];
    int64_t start = o->time_ms >= 0 ? o->time_ms : -1;
    int len = binance_user_trades_params(f->symbol, -1, o->order_id, start,
                                         start >= 0 ? start + BINANCE_TRADES_WINDOW_MS - 1 : -1,
                                         BINANCE_TRADES_LIMIT, qs, sizeof qs);
    if (len < 0) return len;
    c->stage = FL_PRIOR;
    return bn_send(a, c, REST_GET, "/fapi/v1/userTrades", qs, len, true, true, false);
}

static int i64_cmp(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* After the trade pages (sorted here by id): one entry per distinct order id, ascending, with
 * its first trade id and the quantity of its trades. 0, -ENOMEM, -ERANGE. */
static int fills_orders(struct bn_fills *f) {
    int64_t *ids = malloc(f->nt * sizeof *ids);
    size_t n = 0;
    if (!ids) return -ENOMEM;
    qsort(f->t, f->nt, sizeof *f->t, trade_id_cmp);
    for (size_t i = 0; i < f->nt; i++) ids[i] = f->t[i].order_id;
    qsort(ids, f->nt, sizeof *ids, i64_cmp);
    for (size_t i = 0; i < f->nt; i++)
        if (n == 0 || ids[n - 1] != ids[i]) ids[n++] = ids[i];
    f->o = calloc(n, sizeof *f->o);
    f->first_id = calloc(n, sizeof *f->first_id);
    f->sum = calloc(n, sizeof *f->sum);
    if (!f->o || !f->first_id || !f->sum) {
        free(ids);
        return -ENOMEM;
    }
    for (size_t k = 0; k < n; k++) f->o[k].order_id = ids[k];
    f->no = n;
    for (size_t i = 0; i < f->nt; i++) {
        const int64_t *hit = bsearch(&f->t[i].order_id, ids, n, sizeof *ids, i64_cmp);
        size_t k = (size_t)(hit - ids); /* always found: ids holds every order id */
        if (f->first_id[k] == 0) f->first_id[k] = f->t[i].id; /* ascending: the first */
        if (dec_add(f->sum[k], f->t[i].qty, &f->sum[k]) < 0) {
            free(ids);
            return -ERANGE;
        }
    }
    free(ids);
    return 0;
}

/* A trades page: keeps those since since_ms; decides the next page. *more: another page was
 * sent. 0, or an error in st. */
static void fills_trades_page(struct bn_call *c, struct exch_account *a, const struct rest_resp *r,
                              struct exch_status *st, bool *more) {
    struct bn_fills *f = c->fl;
    struct binance_trade *v = NULL;
    size_t n = 0;
    char err[sizeof st->error_msg];
    int rc = binance_parse_user_trades(r->body, r->body_len, f->symbol, &v, &n, err, sizeof err);
    *more = false;
    if (rc < 0) {
        ru_parse_failed(st, rc, err);
        return;
    }
    bool by_id = f->last_id >= 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].id > f->last_id) f->last_id = v[i].id;
        if (v[i].time_ms < f->since_ms) continue;
        if (f->nt >= f->max_trades) {
            free(v);
            st->err = -E2BIG;
            ru_seterr(st->error_msg, sizeof st->error_msg,
                      "fills: more than %zu trades of %s since %" PRId64, f->max_trades, f->symbol,
                      f->since_ms);
            return;
        }
        if (f->nt == f->capt) {
            size_t nc = f->capt ? f->capt * 2 : 256;
            if (nc > f->max_trades) nc = f->max_trades;
            struct binance_trade *nv = realloc(f->t, nc * sizeof *nv);
            if (!nv) {
                free(v);
                ru_parse_failed(st, -ENOMEM, "fills: out of memory");
                return;
            }
            f->t = nv;
            f->capt = nc;
        }
        f->t[f->nt++] = v[i];
    }
    free(v);
    bool next;
    if (by_id) {
        next = n >= (size_t)f->page_limit; /* a short page is the end */
    } else if (n > 0) {
        /* the window's oldest trades: the rest (of this window and later ones) by id */
        next = n >= (size_t)f->page_limit || f->win_end < f->now_ms;
    } else if (f->win_end < f->now_ms) {
        f->win_start = f->win_end + 1; /* nothing in this window: the next 7 days */
        f->win_end = f->win_start + BINANCE_TRADES_WINDOW_MS - 1;
        next = true;
    } else {
        next = false;
    }
    if (!next) return;
    if (++f->pages >= f->max_pages) {
        st->err = -EBADMSG;
        ru_seterr(st->error_msg, sizeof st->error_msg, "fills: pagination: more than %u pages",
                  f->max_pages);
        return;
    }
    int e = fills_send_trades(a, c);
    if (e == 0) *more = true;
    else
        ru_send_failed(st, e, "fills: userTrades");
}

/* The quantity order oi filled before its first backfilled trade, from its own trades. */
static void fills_prior(struct bn_fills *f, const struct binance_trade *v, size_t n) {
    struct binance_order_info *o = &f->o[f->oi];
    dec_t before = DEC_ZERO;
    bool complete = false;
    for (size_t i = 0; i < n; i++) {
        if (v[i].order_id != o->order_id) continue;
        if (v[i].id == f->first_id[f->oi]) complete = true;
        else if (v[i].id < f->first_id[f->oi] && dec_add(before, v[i].qty, &before) < 0)
            return;
    }
    if (complete) {
        o->prior_qty = before;
    } else if (o->status == EXCH_ST_FILLED || o->status == EXCH_ST_CANCELED ||
               o->status == EXCH_ST_EXPIRED || o->status == EXCH_ST_REJECTED) {
        /* Its trades are out of reach (older than the window, or more than a page): a finished
         * order's executedQty is final, what our trades do not explain came before them. */
        dec_t d;
        if (dec_sub(o->executed_qty, f->sum[f->oi], &d) == 0 && dec_sign(d) > 0) o->prior_qty = d;
    }
}

/* Next order to query, or the end: true when the call is finished. */
static bool fills_next_order(struct bn_call *c, struct exch_account *a, struct exch_status *st) {
    struct bn_fills *f = c->fl;
    if (++f->oi < f->no) {
        int e = fills_send_order(a, c);
        if (e == 0) return false;
        ru_send_failed(st, e, "fills: order");
    }
    return true;
}

static bool on_fills(struct bn_call *c, struct exch_account *a, const struct rest_resp *r) {
    struct bn_fills *f = c->fl;
    struct exch_status st;
    struct mkt_fill *out = NULL;
    int n = 0;
    char err[sizeof st.error_msg];

    if (!binance_status_from_resp(r, &st)) {
        if (c->stage == FL_PRIOR && st.err == -EREMOTEIO) {
            /* Binance refused the look-back (an order older than its history): estimate it */
            memset(&st, 0, sizeof st);
            fills_prior(f, NULL, 0);
            if (!fills_next_order(c, a, &st)) return false;
            if (st.err == 0) goto build;
        } else {
            char m[sizeof st.error_msg];
            snprintf(m, sizeof m, "%s", st.error_msg);
            ru_seterr(st.error_msg, sizeof st.error_msg, "fills: %s: %s",
                      c->stage == FL_ORDER ? "order" : "userTrades", m);
        }
        goto done;
    }
    switch (c->stage) {
    case FL_TRADES: {
        bool more = false;
        fills_trades_page(c, a, r, &st, &more);
        if (more) return false;
        if (st.err || f->nt == 0) goto done;
        int e = fills_orders(f);
        if (e < 0) {
            ru_parse_failed(&st, e,
                            e == -ENOMEM ? "fills: out of memory"
                                         : "fills: cumulative quantity overflows");
            goto done;
        }
        f->oi = 0;
        e = fills_send_order(a, c);
        if (e == 0) return false;
        ru_send_failed(&st, e, "fills: order");
        goto done;
    }
    case FL_ORDER: {
        struct binance_order_info *o = &f->o[f->oi];
        int rc = binance_parse_order_info(r->body, r->body_len, o->order_id, o, err, sizeof err);
        if (rc < 0) {
            ru_parse_failed(&st, rc, err);
            goto done;
        }
        if (o->time_ms < 0 || o->time_ms < f->since_ms) {
            /* created before since_ms: it may have filled before, and o.z counts that */
            int e = fills_send_prior(a, c);
            if (e == 0) return false;
            ru_send_failed(&st, e, "fills: order trades");
            goto done;
        }
        break;
    }
    case FL_PRIOR: {
        struct binance_trade *v = NULL;
        size_t nv = 0;
        int rc = binance_parse_user_trades(r->body, r->body_len, f->symbol, &v, &nv, err, sizeof err);
        if (rc < 0) {
            ru_parse_failed(&st, rc, err);
            goto done;
        }
        fills_prior(f, v, nv);
        free(v);
        break;
    }
    }
    if (!fills_next_order(c, a, &st)) return false;
    if (st.err) goto done;
build:
    if (f->nt > 0) {
        if (!(out = calloc(f->nt, sizeof *out))) {
            ru_parse_failed(&st, -ENOMEM, "fills: out of memory");
            goto done;
        }
        n = binance_build_fills(exch_account_name(a), f->t, f->nt, f->o, f->no, out, err,
                                sizeof err);
        if (n < 0) {
            ru_parse_failed(&st, n, err);
            n = 0;
        }
    }
done:
    c->cb.fills(c->ud, &st, st.err || n == 0 ? NULL : out, st.err ? 0 : (size_t)n);
    free(out);
    return true;
}

/* ---- positionRisk v2, one request for positions, position mode and leverage ----
 *
 * Per account: at most one GET /fapi/v2/positionRisk in flight that new readers join, and its
 * answer kept for risk_ttl_ms after it arrived (monotonic clock) for readers that come later.
 * The entries live in a process-wide hash by account (the account object has no room for
 * adapter state) under risk_mu; an entry's fields are used only on its account's loop thread,
 * and only that thread frees it (risk_entry sweeps the idle entries of its own loop, at most once
 * a second or when the table doubled: a sweep on every call made start-up with 10,000 accounts
 * quadratic), so several executor loops may share the table. An entry holds a reference on its
 * account so the pointer cannot be reused by another account while the entry exists. */

static int64_t risk_ttl_ms = BINANCE_RISK_TTL_MS;

void binance_risk_test_ttl(int64_t ttl_ms) {
    risk_ttl_ms = ttl_ms >= 0 ? ttl_ms : BINANCE_RISK_TTL_MS;
}

/* One answer, shared by its readers and the cache (loop thread only). */
struct bn_risk_data {
    unsigned refs;
    struct exch_status st; /* the HTTP outcome; nothing parsed unless st.err == 0 */
    struct risk_parsed p;
};

struct bn_risk {
    struct bn_risk *next;        /* on the drop list of a sweep */
    struct exch_account *a;      /* the key; reference held while the entry exists */
    UT_hash_handle hh;
    uv_loop_t *loop;             /* the account's loop (compared, never used) */
    struct bn_call *flight;      /* the request new readers join, NULL = none */
    struct bn_risk_data *cached; /* the last good answer, NULL = none */
    int64_t cached_ms;           /* monotonic ms of its arrival */
};

static pthread_mutex_t risk_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bn_risk *risk_table;          /* uthash by account pointer */
static int64_t risk_swept_ms;                 /* last sweep (monotonic ms) */
static unsigned risk_swept_n;                 /* entries left by it */

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void risk_data_unref(struct bn_risk_data *d) {
    if (d && --d->refs == 0) {
        risk_parsed_free(&d->p);
        free(d);
    }
}

static bool risk_fresh(const struct bn_risk *e, int64_t now) {
    return e->cached && now - e->cached_ms < risk_ttl_ms;
}

/* a's entry (created when create is set; NULL if absent or out of memory). Drops, now and then,
 * the entries of a's loop with nothing in flight and nothing fresh, or whose account is closed. */
static struct bn_risk *risk_entry(struct exch_account *a, bool create) {
    uv_loop_t *loop = exch_account_loop(a);
    int64_t now = mono_ms();
    struct bn_risk *found = NULL, *drop = NULL, *e, *tmp;

    pthread_mutex_lock(&risk_mu);
    if (now - risk_swept_ms >= 1000 || HASH_COUNT(risk_table) > 2 * risk_swept_n + 64) {
        HASH_ITER(hh, risk_table, e, tmp) {
            if (e->a == a || e->loop != loop || e->flight ||
                (!exch_account_is_closed(e->a) && risk_fresh(e, now)))
                continue;
            HASH_DEL(risk_table, e);
            e->next = drop;
            drop = e;
        }
        risk_swept_ms = now;
        risk_swept_n = HASH_COUNT(risk_table);
    }
    HASH_FIND_PTR(risk_table, &a, found);
    if (!found && create && (found = calloc(1, sizeof *found))) {
        found->a = a;
        found->loop = loop;
        HASH_ADD_PTR(risk_table, a, found);
        if (!found->hh.tbl) { /* uthash could not grow */
            free(found);
            found = NULL;
        } else {
            exch_account_ref(a);
        }
    }
    pthread_mutex_unlock(&risk_mu);
    /* outside the lock: the last reference frees the account (and its limits, with their own
     * locks) */
    while (drop) {
        struct bn_risk *next = drop->next;
        risk_data_unref(drop->cached);
        exch_account_unref(drop->a);
        free(drop);
        drop = next;
    }
    return found;
}

/* After an order result: readers from now on get a newer answer than any so far. A request in
 * flight still answers the readers it has (they asked before the result). */
static void risk_invalidate(struct exch_account *a) {
    struct bn_risk *e = risk_entry(a, false);
    if (!e) return;
    e->flight = NULL;
    risk_data_unref(e->cached);
    e->cached = NULL;
}

/* Hands reader c (holding a reference on c->a) its part of d and frees it; a BN_POS_MODE
 * reader whose answer cannot tell the mode goes on to GET /fapi/v1/positionSide/dual. */
static void risk_deliver(struct bn_call *c, const struct bn_risk_data *d) {
    struct exch_account *a = c->a;
    struct exch_status st = d->st;
    switch (c->kind) {
    case BN_POS:
        if (!st.err && d->p.pos_rc) ru_parse_failed(&st, d->p.pos_rc, d->p.pos_err);
        c->cb.pos(c->ud, &st, st.err ? NULL : d->p.pos, st.err ? 0 : d->p.n_pos);
        break;
    case BN_LEVERAGES:
        if (!st.err && d->p.lev_rc) ru_parse_failed(&st, d->p.lev_rc, d->p.lev_err);
        c->cb.levs(c->ud, &st, st.err ? NULL : d->p.lev, st.err ? 0 : d->p.n_lev);
        break;
    case BN_POS_MODE:
        if (!st.err && d->p.mode_rc) {
            /* No entries, a mix of BOTH and LONG/SHORT, or a body we could not read: ask
             * the authoritative (and 6 times dearer) endpoint rather than guess. */
            char qs[1] = "";
            c->a = NULL;
            int r = bn_send(a, c, REST_GET, "/fapi/v1/positionSide/dual", qs, 0, true, true,
                            false);
            exch_account_unref(a); /* bn_send took its own reference on success */
            if (r == 0) return;    /* on_pos_mode answers */
            a = NULL;
            ru_send_failed(&st, r, "positionSide/dual");
        }
        c->cb.mode(c->ud, &st, st.err ? MKT_PM_ONE_WAY : d->p.mode);
        break;
    default: break;
    }
    exch_account_unref(a); /* takes NULL */
    call_free(c);
}

/* A cached answer goes out from the loop, never inside the fetch call (callers may set state
 * after a call returns 0, expecting the callback later). */
struct bn_risk_defer {
    uv_timer_t t;
    struct bn_call *c;
    struct bn_risk_data *d;
};

static void risk_defer_closed(uv_handle_t *h) { free(h->data); }

static void risk_defer_fire(uv_timer_t *t) {
    struct bn_risk_defer *df = t->data;
    risk_deliver(df->c, df->d);
    risk_data_unref(df->d);
    uv_close((uv_handle_t *)&df->t, risk_defer_closed);
}

static int risk_defer(struct exch_account *a, struct bn_call *c, struct bn_risk_data *d) {
    struct bn_risk_defer *df = calloc(1, sizeof *df);
    uv_loop_t *loop = exch_account_loop(a);
    if (!df) return -ENOMEM;
    if (!loop || uv_timer_init(loop, &df->t) != 0) {
        free(df);
        return -EINVAL;
    }
    df->t.data = df;
    df->c = c;
    df->d = d;
    d->refs++;
    c->a = exch_account_ref(a);
    uv_timer_start(&df->t, risk_defer_fire, 0, 0);
    return 0;
}

/* Reader c (BN_POS, BN_POS_MODE or BN_LEVERAGES, callback set) of a's positionRisk: a fresh
 * cached answer, the request in flight, or a new request. 0 (c is taken), or a negative errno
 * (c freed, its callback never runs). */
static int risk_read(struct exch_account *a, struct bn_call *c) {
    struct bn_risk *e;
    int r = 0;
    if (exch_account_is_closed(a)) r = -ESHUTDOWN;
    else if (!exch_account_pool(a)) r = -EINVAL;
    else if (!(e = risk_entry(a, true))) r = -ENOMEM;
    if (r < 0) goto fail;
    if (risk_fresh(e, mono_ms())) {
        if ((r = risk_defer(a, c, e->cached)) < 0) goto fail;
        return 0;
    }
    if (!e->flight) {
        char qs[1] = "";
        struct bn_call *f = call_new(BN_RISK, NULL);
        if (!f) {
            r = -ENOMEM;
            goto fail;
        }
        f->waiters_tail = &f->waiters;
        if ((r = bn_send(a, f, REST_GET, "/fapi/v2/positionRisk", qs, 0, true, true, false)) < 0) {
            free(f);
            goto fail;
        }
        e->flight = f;
    }
    c->a = exch_account_ref(a);
    c->next = NULL;
    *e->flight->waiters_tail = c;
    e->flight->waiters_tail = &c->next;
    return 0;
fail:
    free(c);
    return r;
}

static void on_risk(struct bn_call *c, const struct rest_resp *r) {
    struct bn_risk_data *d = calloc(1, sizeof *d), nomem;
    struct bn_call *w = c->waiters;
    struct bn_risk *e;

    c->waiters = NULL;
    if (d) {
        d->refs = 1;
        if (binance_status_from_resp(r, &d->st)) risk_parse(r->body, r->body_len, &d->p);
    } else {
        memset(&nomem, 0, sizeof nomem);
        nomem.st.err = -ENOMEM;
        ru_seterr(nomem.st.error_msg, sizeof nomem.st.error_msg, "positionRisk: out of memory");
    }
    /* The entry first, so readers that come back from a callback find the answer. */
    if ((e = risk_entry(c->a, false)) && e->flight == c) {
        e->flight = NULL;
        if (d && !d->st.err && !d->p.pos_rc && !exch_account_is_closed(c->a)) {
            risk_data_unref(e->cached);
            e->cached = d;
            e->cached_ms = mono_ms();
            d->refs++;
        }
    }
    while (w) {
        struct bn_call *next = w->next;
        risk_deliver(w, d ? d : &nomem);
        w = next;
    }
    risk_data_unref(d);
}

static void on_resp(void *ud, const struct rest_resp *r) {
    struct bn_call *c = ud;
    struct exch_account *a = c->a; /* this request's reference (a re-send takes its own) */
    bool done = true;
    if (!exch_account_is_closed(c->a)) {
        struct exch_usage u = {r->used_weight_1m, r->order_count_10s, r->order_count_1m,
                               ru_wall_us() / 1000};
        exch_account_note_usage(c->a, &u);
        /* An order, cancel or leverage change may have changed positions or leverage: no
         * positionRisk answer from before it is handed out after it. */
        if (c->kind == BN_PLACE || c->kind == BN_BATCH || c->kind == BN_CANCEL ||
            c->kind == BN_SET_LEV)
            risk_invalidate(c->a);
    }
    switch (c->kind) {
    case BN_PLACE:
    case BN_QUERY: on_order(c, r); break;
    case BN_INSTR: on_instruments(c, r); break;
    case BN_POS:
    case BN_LEVERAGES: break; /* never sent: they read a BN_RISK answer */
    case BN_TIME: on_time(c, r); break;
    case BN_LK_CREATE:
    case BN_LK_KEEP:
    case BN_LK_DEL: on_listen_key(c, r); break;
    case BN_ACCOUNT: on_account(c, r); break;
    case BN_TICKERS: on_tickers(c, r); break;
    case BN_POS_MODE: on_pos_mode(c, r); break;
    case BN_SET_LEV: on_set_leverage(c, r); break;
    case BN_CANCEL: done = on_cancel(c, a, r); break;
    case BN_BATCH: on_batch(c, r); break;
    case BN_FILLS: done = on_fills(c, a, r); break;
    case BN_BOOK: on_book(c, r); break;
    case BN_RISK: on_risk(c, r); break;
    }
    exch_account_unref(a);
    if (done) call_free(c);
}

static struct bn_call *call_new(enum bn_kind kind, void *ud) {
    struct bn_call *c = calloc(1, sizeof *c);
    if (c) {
        c->kind = kind;
        c->ud = ud;
    }
    return c;
}

/* Rate-limit cost of each call (A3 weights; orders count on the account's 10 s and 1 min order
 * budgets, not on the IP weight). Calls not listed cost 1 weight as a query. */
static struct exch_rl bn_rl(const struct bn_call *c) {
    switch (c->kind) {
    case BN_CANCEL: /* the cancel itself goes with the orders; its follow-up query does not */
        if (c->stage == 0) return (struct exch_rl){.prio = RB_PRIO_ORDER, .ip_cost = 1};
        return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 1, .probe_ok = true};
    case BN_BATCH:
        /* Place-Multiple-Orders: 5 on the 10 s order count, 1 on the 1 min one, 5 IP weight */
        return (struct exch_rl){.prio = RB_PRIO_ORDER, .ip_cost = 5, .orders_short = 5,
                                .orders_long = 1};
    case BN_FILLS: /* userTrades 5, an order query 1 */
        return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = c->stage == FL_ORDER ? 1 : 5,
                                .probe_ok = true};
    case BN_BOOK: return (struct exch_rl){.prio = RB_PRIO_BULK, .ip_cost = 5, .probe_ok = true};
    case BN_PLACE: return (struct exch_rl){.prio = RB_PRIO_ORDER, .orders_short = 1, .orders_long = 1};
    case BN_QUERY: return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 1, .probe_ok = true};
    case BN_INSTR: return (struct exch_rl){.prio = RB_PRIO_BULK, .ip_cost = 1, .probe_ok = true};
    case BN_POS:
    case BN_RISK:
    case BN_ACCOUNT:
    case BN_LEVERAGES: return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 5, .probe_ok = true};
    case BN_TIME: return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 1, .probe_ok = true};
    case BN_TICKERS: return (struct exch_rl){.prio = RB_PRIO_BULK, .ip_cost = 2, .probe_ok = true};
    /* only sent when positionRisk cannot tell the mode (binance_fetch_position_mode) */
    case BN_POS_MODE: return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 30, .probe_ok = true};
    default: return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 1};
    }
}

/* rest_req.build: the request as it leaves the pool. */
static int bn_build(void *ud, struct rest_req *out) {
    struct bn_call *c = ud;
    struct exch_account *a = c->a;
    int len = c->w.qs_len, n = 0, r;
    if (exch_account_is_closed(a)) return -ESHUTDOWN;
    memcpy(c->w.body, c->w.qs, (size_t)len + 1);
    if (c->w.sign) {
        int64_t ts = ru_wall_us() / 1000 + exch_account_time_offset_ms(a);
        len = binance_sign_params(a, c->w.body, c->w.body_cap, (size_t)len,
                                  exch_account_recv_window_ms(a), ts);
        if (len < 0) return len;
    }
    if (out->method == REST_GET && len > 0)
        r = snprintf(c->w.url, c->w.url_cap, "%s%s?%s", exch_account_rest_url(a), c->w.path,
                     c->w.body);
    else r = snprintf(c->w.url, c->w.url_cap, "%s%s", exch_account_rest_url(a), c->w.path);
    if (r < 0 || (size_t)r >= c->w.url_cap) return -ENOSPC;
    if (c->w.api_key) {
        r = snprintf(c->w.keyhdr, sizeof c->w.keyhdr, "X-MBX-APIKEY: %s", exch_account_api_key(a));
        if (r < 0 || (size_t)r >= sizeof c->w.keyhdr) return -ENOSPC;
        c->w.hdrs[n++] = c->w.keyhdr;
    }
    if (out->method != REST_GET) c->w.hdrs[n++] = "Content-Type: application/x-www-form-urlencoded";
    c->w.hdrs[n] = NULL;
    out->url = c->w.url;
    out->headers = c->w.hdrs;
    out->body = out->method != REST_GET ? c->w.body : NULL;
    out->body_len = out->method != REST_GET ? (size_t)len : 0;
    /* on_time measures from here: the transfer starts now, whatever it waited before */
    c->send_wall_us = ru_wall_us();
    return 0;
}

/* Queues one request. qs holds the unsigned parameters; the signature is added by bn_build
 * when the rate budgets let the request go. On success the call belongs to on_resp. */
static int bn_send(struct exch_account *a, struct bn_call *c, enum rest_method m, const char *path,
                   char *qs, int qs_len, bool sign, bool api_key, bool no_resend) {
    struct rest_pool *pool = exch_account_pool(a);
    int r;

    if (!pool) return -EINVAL;
    if (exch_account_is_closed(a)) return -ESHUTDOWN;
    if (qs_len < 0 || (size_t)qs_len >= BINANCE_QS_MAX) return -ENOSPC;
    /* The same limits as fixed buffers of BINANCE_QS_MAX and URL_BUF bytes: signing adds
     * recvWindow, timestamp and the signature (under 130 bytes). */
    size_t body_cap = (size_t)qs_len + BN_SIGN_ROOM, url_cap;
    if (body_cap > BINANCE_QS_MAX) body_cap = BINANCE_QS_MAX;
    url_cap = strlen(exch_account_rest_url(a)) + strlen(path) + 2 + body_cap;
    if (url_cap > URL_BUF) url_cap = URL_BUF;
    char *buf = malloc((size_t)qs_len + 1 + body_cap + url_cap);
    if (!buf) return -ENOMEM;
    free(c->w.buf); /* a call sent again (a cancel's follow-up query) */
    c->w.buf = c->w.qs = buf;
    c->w.body = buf + qs_len + 1;
    c->w.url = c->w.body + body_cap;
    c->w.body_cap = body_cap;
    c->w.url_cap = url_cap;
    memcpy(c->w.qs, qs, (size_t)qs_len);
    c->w.qs[qs_len] = '\0';
    c->w.qs_len = qs_len;
    c->w.path = path;
    c->w.sign = sign;
    c->w.api_key = api_key;

    struct rest_req req = {
        .method = m,
        .url = exch_account_rest_url(a), /* the host: its connection slots (rest_pool.h) */
        .timeout_ms = exch_account_timeout_ms(a),
        .no_resend = no_resend,
        .build = bn_build,
        .exchange = "binance-usdm",
        .endpoint = path,
    };
    struct exch_rl rl = bn_rl(c);
    if ((r = exch_limits_attach(a, &req, &rl)) < 0) return r;
    c->a = exch_account_ref(a);
    c->send_wall_us = ru_wall_us();
    r = rest_pool_send(pool, &req, on_resp, c);
    if (r < 0) {
        explicit_bzero(c->w.keyhdr, sizeof c->w.keyhdr);
        exch_account_unref(a);
        c->a = NULL;
        free(c->w.buf); /* callers free a call that was not sent with free() */
        c->w.buf = c->w.qs = c->w.body = c->w.url = NULL;
    }
    return r;
}

int binance_place_order(struct exch_account *a, const struct exch_order_req *req, exch_order_cb cb,
                        void *ud) {
    char qs[BINANCE_QS_MAX], err[128];
    if (!a || !req || !cb) return -EINVAL;
    int len = binance_order_params(req, qs, sizeof qs, err, sizeof err);
    if (len < 0) return len;
    struct bn_call *c = call_new(BN_PLACE, ud);
    if (!c) return -ENOMEM;
    c->cb.order = cb;
    snprintf(c->client_id, sizeof c->client_id, "%s", req->client_id);
    int r = bn_send(a, c, REST_POST, "/fapi/v1/order", qs, len, true, true, true);
    if (r < 0) free(c);
    return r;
}

int binance_query_order(struct exch_account *a, const char *symbol, const char *client_id,
                        exch_order_cb cb, void *ud) {
    char qs[BINANCE_QS_MAX];
    if (!a || !cb) return -EINVAL;
    int len = binance_query_params(symbol, client_id, qs, sizeof qs);
    if (len < 0) return len;
    struct bn_call *c = call_new(BN_QUERY, ud);
    if (!c) return -ENOMEM;
    c->cb.order = cb;
    snprintf(c->client_id, sizeof c->client_id, "%s", client_id);
    int r = bn_send(a, c, REST_GET, "/fapi/v1/order", qs, len, true, true, false);
    if (r < 0) free(c);
    return r;
}

static int simple_call(struct exch_account *a, struct bn_call *c, enum rest_method m,
                       const char *path, bool sign, bool api_key) {
    char qs[1] = "";
    if (!c) return -ENOMEM;
    int r = bn_send(a, c, m, path, qs, 0, sign, api_key, false);
    if (r < 0) free(c);
    return r;
}

int binance_fetch_instruments(struct exch_account *a, exch_instruments_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_INSTR, ud);
    if (c) c->cb.instr = cb;
    return simple_call(a, c, REST_GET, "/fapi/v1/exchangeInfo", false, false);
}

int binance_fetch_positions(struct exch_account *a, exch_positions_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_POS, ud);
    if (!c) return -ENOMEM;
    c->cb.pos = cb;
    return risk_read(a, c);
}

int binance_sync_time(struct exch_account *a, exch_time_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_TIME, ud);
    if (c) c->cb.time = cb;
    return simple_call(a, c, REST_GET, "/fapi/v1/time", false, false);
}

int binance_listen_key_create(struct exch_account *a, exch_listen_key_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_LK_CREATE, ud);
    if (c) c->cb.lk = cb;
    return simple_call(a, c, REST_POST, "/fapi/v1/listenKey", false, true);
}

/* USD-M keeps one listenKey per account: PUT and DELETE take no parameters (unlike spot), so
 * listen_key is only remembered to hand back to the callback. */
static int lk_call(struct exch_account *a, enum bn_kind kind, enum rest_method m,
                   const char *listen_key, exch_listen_key_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    if (listen_key && strlen(listen_key) >= BINANCE_LISTEN_KEY_MAX) return -EINVAL;
    struct bn_call *c = call_new(kind, ud);
    if (c) {
        c->cb.lk = cb;
        snprintf(c->listen_key, sizeof c->listen_key, "%s", listen_key ? listen_key : "");
    }
    return simple_call(a, c, m, "/fapi/v1/listenKey", false, true);
}

int binance_listen_key_keepalive(struct exch_account *a, const char *listen_key,
                                 exch_listen_key_cb cb, void *ud) {
    return lk_call(a, BN_LK_KEEP, REST_PUT, listen_key, cb, ud);
}

int binance_listen_key_delete(struct exch_account *a, const char *listen_key,
                              exch_listen_key_cb cb, void *ud) {
    return lk_call(a, BN_LK_DEL, REST_DELETE, listen_key, cb, ud);
}

int binance_fetch_account(struct exch_account *a, exch_balance_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_ACCOUNT, ud);
    if (c) c->cb.bal = cb;
    return simple_call(a, c, REST_GET, "/fapi/v3/account", true, true);
}

int binance_fetch_tickers(struct exch_account *a, exch_tickers_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_TICKERS, ud);
    if (c) c->cb.tick = cb;
    return simple_call(a, c, REST_GET, "/fapi/v2/ticker/price", false, false);
}

int binance_fetch_position_mode(struct exch_account *a, exch_pos_mode_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_POS_MODE, ud);
    if (!c) return -ENOMEM;
    c->cb.mode = cb;
    return risk_read(a, c);
}

int binance_fetch_leverage(struct exch_account *a, exch_leverages_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_LEVERAGES, ud);
    if (!c) return -ENOMEM;
    c->cb.levs = cb;
    return risk_read(a, c);
}

int binance_set_leverage(struct exch_account *a, const char *symbol, int leverage,
                         exch_set_leverage_cb cb, void *ud) {
    char qs[BINANCE_QS_MAX];
    if (!a || !cb) return -EINVAL;
    int len = binance_leverage_params(symbol, leverage, qs, sizeof qs);
    if (len < 0) return len;
    struct bn_call *c = call_new(BN_SET_LEV, ud);
    if (!c) return -ENOMEM;
    c->cb.setlev = cb;
    snprintf(c->symbol, sizeof c->symbol, "%s", symbol);
    int r = bn_send(a, c, REST_POST, "/fapi/v1/leverage", qs, len, true, true, false);
    if (r < 0) free(c);
    return r;
}

int binance_cancel_order(struct exch_account *a, const char *symbol, const char *client_id,
                         exch_order_cb cb, void *ud) {
    char qs[BINANCE_QS_MAX];
    if (!a || !cb) return -EINVAL;
    int len = binance_query_params(symbol, client_id, qs, sizeof qs);
    if (len < 0) return len;
    struct bn_call *c = call_new(BN_CANCEL, ud);
    if (!c) return -ENOMEM;
    c->cb.order = cb;
    snprintf(c->client_id, sizeof c->client_id, "%s", client_id);
    snprintf(c->symbol, sizeof c->symbol, "%s", symbol);
    /* A cancel is safe to repeat, but a curl re-send would blur which answer we read. */
    int r = bn_send(a, c, REST_DELETE, "/fapi/v1/order", qs, len, true, true, true);
    if (r < 0) call_free(c);
    return r;
}

int binance_place_batch(struct exch_account *a, const struct exch_order_req *reqs, size_t n,
                        exch_batch_cb cb, void *ud) {
    char qs[BINANCE_QS_MAX], err[200];
    if (!a || !reqs || !cb || n == 0 || n > BINANCE_BATCH_MAX) return -EINVAL;
    int len = binance_batch_params(reqs, n, qs, sizeof qs, err, sizeof err);
    if (len < 0) return len;
    struct bn_call *c = call_new(BN_BATCH, ud);
    if (!c) return -ENOMEM;
    c->cb.batch = cb;
    c->n = n;
    for (size_t i = 0; i < n; i++)
        snprintf(c->batch_ids[i], sizeof c->batch_ids[i], "%s", reqs[i].client_id);
    int r = bn_send(a, c, REST_POST, "/fapi/v1/batchOrders", qs, len, true, true, true);
    if (r < 0) call_free(c);
    return r;
}

int binance_fetch_fills(struct exch_account *a, const char *symbol, int64_t since_ms,
                        exch_fills_cb cb, void *ud) {
    if (!a || !cb || !symbol || !symbol_ok(symbol) || since_ms < 0) return -EINVAL;
    struct bn_call *c = call_new(BN_FILLS, ud);
    if (!c) return -ENOMEM;
    if (!(c->fl = calloc(1, sizeof *c->fl))) {
        free(c);
        return -ENOMEM;
    }
    struct bn_fills *f = c->fl;
    c->cb.fills = cb;
    snprintf(f->symbol, sizeof f->symbol, "%s", symbol);
    f->page_limit = fills_page_limit;
    f->max_trades = fills_max_trades;
    /* every id page may be full, plus the empty 7-day windows of 6 months, plus slack */
    f->max_pages = (unsigned)(f->max_trades / (size_t)f->page_limit) + 64;
    f->now_ms = ru_wall_us() / 1000 + exch_account_time_offset_ms(a);
    f->since_ms = since_ms;
    f->last_id = -1;
    f->win_start = since_ms;
    if (f->win_start < f->now_ms - FILLS_HISTORY_MS) f->win_start = f->now_ms - FILLS_HISTORY_MS;
    f->win_end = f->win_start + BINANCE_TRADES_WINDOW_MS - 1;
    int r = fills_send_trades(a, c);
    if (r < 0) call_free(c);
    return r;
}

int binance_fetch_book_tickers(struct exch_account *a, exch_book_tickers_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_BOOK, ud);
    if (c) c->cb.book = cb;
    return simple_call(a, c, REST_GET, "/fapi/v1/ticker/bookTicker", false, false);
}
