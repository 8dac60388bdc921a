/* binance_rest: Binance USD-M futures REST adapter. See binance_rest.h for the outcome table.
 *
 * Signed requests (TRADE / USER_DATA): every parameter in ONE place (the query string for GET,
 * the form body for POST/PUT/DELETE), percent-encoded, then recvWindow, timestamp (local clock +
 * the offset measured by exch_sync_time) and, last, signature = HMAC of exactly that string.
 * Orders are sent with no_resend: curl never transmits an order twice on its own. */
#include "binance_rest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "binance_sign.h"
#include "client_id.h"
#include "exch_limits.h"
#include "json_util.h"

#define URL_BUF 3072

/* ---- small helpers ---- */

/* Printable ASCII only (exchange text and JSON error excerpts end up in logs). */
static void sanitize(char *s) {
    for (unsigned char *c = (unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c > 0x7e) *c = '?';
}

static void copy_text(char *dst, size_t cap, const char *src, size_t len) {
    if (!cap) return;
    if (len >= cap) len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    sanitize(dst);
}

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen,
                                                         const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    sanitize(err);
}

static const char *why(int r) {
    switch (r) {
    case -ENOENT: return "missing";
    case -ERANGE: return "out of range";
    default: return "wrong type";
    }
}

static const char *why_dec(int r) {
    switch (r) {
    case -ENOENT: return "missing";
    case -ERANGE: return "out of range";
    default: return "not a decimal";
    }
}

static int64_t wall_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static json_t *load(const char *body, size_t len, const char *what, char *err, size_t errlen) {
    json_error_t je;
    if (!body) body = "";
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        seterr(err, errlen, "%s: invalid JSON: %s (line %d, column %d)", what, je.text, je.line,
               je.column);
    return j;
}

/* ---- request building ---- */

static int pct_encode(char *buf, size_t cap, size_t o, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        bool plain = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                     (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.' || *c == '~';
        size_t need = plain ? 1 : 3;
        if (o + need >= cap) return -ENOSPC;
        if (plain) {
            buf[o++] = (char)*c;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[*c >> 4];
            buf[o++] = hex[*c & 15];
        }
    }
    return (int)o;
}

int binance_qs_add(char *buf, size_t cap, size_t len, const char *key, const char *value) {
    if (!buf || !key || !value || len >= cap) return -ENOSPC;
    int o = (int)len;
    if (len > 0) {
        if ((size_t)o + 1 >= cap) goto nospace;
        buf[o++] = '&';
    }
    o = pct_encode(buf, cap, (size_t)o, key);
    if (o < 0 || (size_t)o + 1 >= cap) goto nospace;
    buf[o++] = '=';
    o = pct_encode(buf, cap, (size_t)o, value);
    if (o < 0) goto nospace;
    buf[o] = '\0';
    return o;
nospace:
    buf[len] = '\0';
    return -ENOSPC;
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

int binance_order_params(const struct exch_order_req *req, char *buf, size_t cap, char *err,
                         size_t errlen) {
    char qty[DEC_STR_MAX], price[DEC_STR_MAX];
    const char *type, *tif = NULL, *pos_side = NULL;
    int len = 0;

    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!req) {
        seterr(err, errlen, "order: no request");
        return -EINVAL;
    }
    if (!symbol_ok(req->symbol)) {
        seterr(err, errlen, "order: symbol: empty, too long or has control characters");
        return -EINVAL;
    }
    if (req->side != MKT_BUY && req->side != MKT_SELL) {
        seterr(err, errlen, "order: side: %d is neither BUY nor SELL", (int)req->side);
        return -EINVAL;
    }
    switch (req->type) {
    case EXCH_MARKET: type = "MARKET"; break;
    case EXCH_LIMIT_IOC: type = "LIMIT"; tif = "IOC"; break;
    case EXCH_LIMIT_GTC: type = "LIMIT"; tif = "GTC"; break;
    default:
        seterr(err, errlen, "order: type: unknown value %d", (int)req->type);
        return -EINVAL;
    }
    switch (req->pos_side) {
    case MKT_PS_BOTH: break;
    case MKT_PS_LONG: pos_side = "LONG"; break;
    case MKT_PS_SHORT: pos_side = "SHORT"; break;
    default:
        seterr(err, errlen, "order: position side: unknown value %d", (int)req->pos_side);
        return -EINVAL;
    }
    if (pos_side && req->reduce_only) {
        /* Binance answers -1106 to reduceOnly in hedge mode; a SELL on LONG closes anyway. */
        seterr(err, errlen, "order: reduceOnly: not allowed with positionSide %s (hedge mode)",
               pos_side);
        return -EINVAL;
    }
    if (!req->client_id || !client_id_valid(req->client_id)) {
        seterr(err, errlen, "order: client id: must match [A-Za-z0-9_-]{1,36}");
        return -EINVAL;
    }
    if (!dec_valid(req->qty) || dec_sign(req->qty) <= 0 ||
        dec_format(req->qty, qty, sizeof qty) < 0) {
        seterr(err, errlen, "order: quantity: must be > 0");
        return -EINVAL;
    }
    if (tif && (!dec_valid(req->price) || dec_sign(req->price) <= 0 ||
                dec_format(req->price, price, sizeof price) < 0)) {
        seterr(err, errlen, "order: price: a limit order needs a price > 0");
        return -EINVAL;
    }
    ADD("symbol", req->symbol);
    ADD("side", req->side == MKT_BUY ? "BUY" : "SELL");
    if (pos_side) ADD("positionSide", pos_side);
    ADD("type", type);
    if (tif) ADD("timeInForce", tif);
    ADD("quantity", qty);
    if (tif) ADD("price", price);
    if (req->reduce_only) ADD("reduceOnly", "true");
    ADD("newClientOrderId", req->client_id);
    ADD("newOrderRespType", "RESULT");
    return len;
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
        if (msg) copy_text(msg, msglen, m, strlen(m));
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

int binance_parse_order(const char *body, size_t len, struct exch_order_result *out, char *err,
                        size_t errlen) {
    struct exch_order_result o;
    const char *st;
    int r, rc = -EBADMSG;
    json_t *j = load(body, len, "order", err, errlen);
    if (!j) return -EBADMSG;
    memset(&o, 0, sizeof o);
    if (!json_is_object(j)) {
        seterr(err, errlen, "order: not a JSON object");
        goto out;
    }
    int64_t oid;
    if ((r = ju_get_i64(j, "orderId", &oid)) < 0) {
        seterr(err, errlen, "order: orderId: %s", why(r));
        goto out;
    }
    snprintf(o.order_id, sizeof o.order_id, "%" PRId64, oid);
    if ((r = ju_get_strbuf(j, "clientOrderId", o.client_id, sizeof o.client_id)) < 0) {
        seterr(err, errlen, "order: clientOrderId: %s", r == -ERANGE ? "too long" : why(r));
        goto out;
    }
    if ((r = ju_get_str(j, "status", &st)) < 0) {
        seterr(err, errlen, "order: status: %s", why(r));
        goto out;
    }
    if (status_parse(st, &o.status) < 0) {
        seterr(err, errlen, "order: status: unknown value \"%.40s\"", st);
        goto out;
    }
    if ((r = ju_get_dec(j, "executedQty", &o.executed_qty)) < 0) {
        seterr(err, errlen, "order: executedQty: %s", why_dec(r));
        goto out;
    }
    if ((r = ju_get_dec(j, "avgPrice", &o.avg_price)) < 0) {
        seterr(err, errlen, "order: avgPrice: %s", why_dec(r));
        goto out;
    }
    if ((r = ju_get_i64(j, "updateTime", &o.update_time_ms)) < 0 && r != -ENOENT) {
        seterr(err, errlen, "order: updateTime: %s", why(r));
        goto out;
    }
    if (dec_sign(o.executed_qty) < 0 || dec_sign(o.avg_price) < 0) {
        seterr(err, errlen, "order: executedQty/avgPrice: negative");
        goto out;
    }
    o.outcome = EXCH_OK;
    *out = o;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* Reads filter field `key` of filter object f into *out; NULL or the reason. */
static const char *filter_dec(const json_t *f, const char *key, dec_t *out, bool positive) {
    int r = ju_get_dec(f, key, out);
    if (r < 0) return why_dec(r);
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
        seterr(err, errlen, "exchangeInfo: symbols[%zu]: not an object", i);
        return -EBADMSG;
    }
    if ((r = ju_get_str(s, "symbol", &sym)) < 0) {
        seterr(err, errlen, "exchangeInfo: symbols[%zu].symbol: %s", i, why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        seterr(err, errlen, "exchangeInfo: symbols[%zu].symbol: empty, too long or bad characters",
               i);
        return -EBADMSG;
    }
    snprintf(in->symbol, sizeof in->symbol, "%s", sym);
    filters = json_object_get(s, "filters");
    if (!json_is_array(filters)) {
        seterr(err, errlen, "exchangeInfo: symbols[%zu].filters: %s (symbol %s)", i,
               filters ? "not an array" : "missing", in->symbol);
        return -EBADMSG;
    }
    json_array_foreach(filters, k, f) {
        if (!json_is_object(f) || ju_get_str(f, "filterType", &ft) < 0) {
            seterr(err, errlen,
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
        seterr(err, errlen, "exchangeInfo: symbols[%zu].filters: %s.%s: %s (symbol %s)", i, fname,
               field, bad, in->symbol);
        return -EBADMSG;
    }
    if (!lot || !price) {
        seterr(err, errlen, "exchangeInfo: symbols[%zu].filters: %s: missing (symbol %s)", i,
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
    if (!(j = load(body, len, "exchangeInfo", err, errlen))) return -EBADMSG;
    syms = json_is_object(j) ? json_object_get(j, "symbols") : NULL;
    if (!json_is_object(j)) {
        seterr(err, errlen, "exchangeInfo: not a JSON object");
        goto out;
    }
    if (!json_is_array(syms)) {
        seterr(err, errlen, "exchangeInfo: symbols: %s", syms ? "not an array" : "missing");
        goto out;
    }
    if (json_array_size(syms) > 0) {
        v = calloc(json_array_size(syms), sizeof *v);
        if (!v) {
            seterr(err, errlen, "exchangeInfo: out of memory");
            rc = -ENOMEM;
            goto out;
        }
    }
    json_array_foreach(syms, i, s) {
        char e[200];
        if (parse_instrument(s, i, &v[cnt], e, sizeof e) == 0) {
            cnt++;
        } else {
            if (skip++ == 0) seterr(first, sizeof first, "%s", e);
        }
    }
    if (cnt == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = cnt;
    if (skipped) *skipped = skip;
    seterr(err, errlen, "%s", first);
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
        seterr(err, errlen, "positionRisk: [%zu]: not an object", i);
        return -EBADMSG;
    }
    if ((r = ju_get_str(p, "symbol", &sym)) < 0) {
        seterr(err, errlen, "positionRisk: [%zu].symbol: %s", i, why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        seterr(err, errlen, "positionRisk: [%zu].symbol: empty, too long or bad characters", i);
        return -EBADMSG;
    }
    snprintf(pos->symbol, sizeof pos->symbol, "%s", sym);
    r = ju_get_str(p, "positionSide", &side);
    if (r == -EINVAL) {
        seterr(err, errlen, "positionRisk: [%zu].positionSide: wrong type (symbol %s)", i,
               pos->symbol);
        return -EBADMSG;
    }
    pos->pos_side = MKT_PS_BOTH;
    if (r == 0) {
        if (strcmp(side, "LONG") == 0) pos->pos_side = MKT_PS_LONG;
        else if (strcmp(side, "SHORT") == 0) pos->pos_side = MKT_PS_SHORT;
        else if (strcmp(side, "BOTH") != 0) {
            seterr(err, errlen,
                   "positionRisk: [%zu].positionSide: \"%.10s\" is not BOTH, LONG or SHORT "
                   "(symbol %s)", i, side, pos->symbol);
            return -EBADMSG;
        }
    }
    if ((r = ju_get_dec(p, "positionAmt", &pos->amount)) < 0) {
        seterr(err, errlen, "positionRisk: [%zu].positionAmt: %s (symbol %s)", i, why_dec(r),
               pos->symbol);
        return -EBADMSG;
    }
    if ((r = ju_get_dec(p, "entryPrice", &pos->entry_price)) < 0) {
        seterr(err, errlen, "positionRisk: [%zu].entryPrice: %s (symbol %s)", i, why_dec(r),
               pos->symbol);
        return -EBADMSG;
    }
    r = get_leverage(p, "leverage", &pos->leverage);
    if (r == -EINVAL || (r == -ENOENT && need_lev)) {
        seterr(err, errlen, "positionRisk: [%zu].leverage: %s (symbol %s)", i,
               r == -ENOENT ? "missing" : "not an integer 1..1000", pos->symbol);
        return -EBADMSG;
    }
    return 0;
}

/* positionRisk bodies: a JSON array, and room for one parsed entry of `size` bytes per element. */
static int load_position_array(const char *body, size_t len, size_t size, json_t **j, void **v,
                               char *err, size_t errlen) {
    *v = NULL;
    if (!(*j = load(body, len, "positionRisk", err, errlen))) return -EBADMSG;
    if (!json_is_array(*j)) {
        seterr(err, errlen, "positionRisk: not a JSON array");
        json_decref(*j);
        return -EBADMSG;
    }
    if (json_array_size(*j) > 0 && !(*v = calloc(json_array_size(*j), size))) {
        seterr(err, errlen, "positionRisk: out of memory");
        json_decref(*j);
        return -ENOMEM;
    }
    return 0;
}

int binance_parse_positions(const char *body, size_t len, struct mkt_position **out, size_t *n,
                            char *err, size_t errlen) {
    json_t *j, *p;
    size_t i, cnt = 0;
    struct mkt_position *v = NULL;
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if ((rc = load_position_array(body, len, sizeof *v, &j, (void **)&v, err, errlen)) < 0) return rc;
    rc = -EBADMSG;
    json_array_foreach(j, i, p) {
        struct mkt_position pos;
        if (parse_position_entry(p, i, false, &pos, err, errlen) < 0) goto fail;
        if (!dec_is_zero(pos.amount)) v[cnt++] = pos;
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

/* By symbol, then highest leverage first (so deduplication keeps the highest). */
static int lev_cmp(const void *a, const void *b) {
    const struct exch_leverage *x = a, *y = b;
    int c = strcmp(x->symbol, y->symbol);
    if (c) return c;
    return (y->leverage > x->leverage) - (y->leverage < x->leverage);
}

int binance_parse_leverages(const char *body, size_t len, struct exch_leverage **out, size_t *n,
                            char *err, size_t errlen) {
    json_t *j, *p;
    size_t i, cnt = 0;
    struct exch_leverage *v = NULL;
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if ((rc = load_position_array(body, len, sizeof *v, &j, (void **)&v, err, errlen)) < 0) return rc;
    rc = -EBADMSG;
    json_array_foreach(j, i, p) {
        struct mkt_position pos;
        if (parse_position_entry(p, i, true, &pos, err, errlen) < 0) goto fail;
        snprintf(v[cnt].symbol, sizeof v[cnt].symbol, "%s", pos.symbol);
        v[cnt++].leverage = pos.leverage;
    }
    if (cnt > 1) {
        /* Hedge mode lists LONG and SHORT of a symbol with the same leverage (it is per
         * symbol on Binance). Should they ever differ, the highest is kept: the max-leverage
         * check then errs on the safe side. */
        size_t w = 1;
        qsort(v, cnt, sizeof *v, lev_cmp);
        for (size_t k = 1; k < cnt; k++)
            if (strcmp(v[k].symbol, v[w - 1].symbol) != 0) v[w++] = v[k];
        cnt = w;
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
    if (!(j = load(body, len, "account", err, errlen))) return -EBADMSG;
    if (!json_is_object(j)) {
        seterr(err, errlen, "account: not a JSON object");
        goto out;
    }
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        if ((r = ju_get_dec(j, fields[k].key, (dec_t *)((char *)out + fields[k].off))) < 0) {
            seterr(err, errlen, "account: %s: %s", fields[k].key, why_dec(r));
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
        seterr(err, errlen, "ticker: %.*s: not an object", (int)(strlen(where) ? strlen(where) - 1 : 0),
               where);
        return -EBADMSG;
    }
    if ((r = ju_get_str(t, "symbol", &sym)) < 0) {
        seterr(err, errlen, "ticker: %ssymbol: %s", where, why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        seterr(err, errlen, "ticker: %ssymbol: empty, too long or bad characters", where);
        return -EBADMSG;
    }
    snprintf(out->symbol, sizeof out->symbol, "%s", sym);
    if ((r = ju_get_dec(t, "price", &out->price)) < 0) {
        seterr(err, errlen, "ticker: %sprice: %s (symbol %s)", where, why_dec(r), out->symbol);
        return -EBADMSG;
    }
    if (dec_sign(out->price) < 0) {
        seterr(err, errlen, "ticker: %sprice: negative (symbol %s)", where, out->symbol);
        return -EBADMSG;
    }
    r = ju_get_i64(t, "time", &out->time_ms);
    if (r == -ENOENT) {
        out->time_ms = 0;
    } else if (r < 0 || out->time_ms < 0) {
        seterr(err, errlen, "ticker: %stime: %s (symbol %s)", where, r < 0 ? why(r) : "negative",
               out->symbol);
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
    if (!(j = load(body, len, "ticker", err, errlen))) return -EBADMSG;
    if (json_is_object(j)) { /* the one-symbol answer */
        struct exch_ticker one;
        if (parse_ticker(j, "", &one, err, errlen) < 0) goto fail;
        if (dec_sign(one.price) > 0) {
            if (!(v = malloc(sizeof *v))) {
                seterr(err, errlen, "ticker: out of memory");
                rc = -ENOMEM;
                goto fail;
            }
            v[cnt++] = one;
        }
    } else if (json_is_array(j)) {
        if (json_array_size(j) > 0 && !(v = calloc(json_array_size(j), sizeof *v))) {
            seterr(err, errlen, "ticker: out of memory");
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
        seterr(err, errlen, "ticker: neither a JSON array nor an object");
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
    json_t *j = load(body, len, "positionSide/dual", err, errlen);
    if (!j) return -EBADMSG;
    if (!json_is_object(j)) {
        seterr(err, errlen, "positionSide/dual: not a JSON object");
    } else if ((r = ju_get_bool(j, "dualSidePosition", &dual)) < 0) {
        seterr(err, errlen, "positionSide/dual: dualSidePosition: %s", why(r));
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
    json_t *j = load(body, len, "leverage", err, errlen);
    *leverage = 0;
    if (!j) return -EBADMSG;
    if (!json_is_object(j)) {
        seterr(err, errlen, "leverage: not a JSON object");
    } else if ((r = ju_get_str(j, "symbol", &sym)) < 0) {
        seterr(err, errlen, "leverage: symbol: %s", why(r));
    } else if (want_symbol && strcmp(sym, want_symbol) != 0) {
        seterr(err, errlen, "leverage: symbol: \"%.31s\" is not the one asked for (%.31s)", sym,
               want_symbol);
    } else if ((r = get_leverage(j, "leverage", leverage)) < 0 ||
               !json_is_integer(json_object_get(j, "leverage"))) {
        *leverage = 0;
        seterr(err, errlen, "leverage: leverage: %s",
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
    json_t *j = load(body, len, "time", err, errlen);
    if (!j) return -EBADMSG;
    if (!json_is_object(j)) seterr(err, errlen, "time: not a JSON object");
    else if ((r = ju_get_i64(j, "serverTime", ms)) < 0)
        seterr(err, errlen, "time: serverTime: %s", why(r));
    else if (*ms <= 0)
        seterr(err, errlen, "time: serverTime: not positive");
    else rc = 0;
    json_decref(j);
    return rc;
}

int binance_parse_listen_key(const char *body, size_t len, char *key, size_t cap, char *err,
                             size_t errlen) {
    const char *k;
    int r, rc = -EBADMSG;
    json_t *j = load(body, len, "listenKey", err, errlen);
    if (!j) return -EBADMSG;
    if (!json_is_object(j)) {
        seterr(err, errlen, "listenKey: not a JSON object");
    } else if ((r = ju_get_str(j, "listenKey", &k)) < 0) {
        seterr(err, errlen, "listenKey: listenKey: %s", why(r));
    } else {
        size_t kl = strlen(k);
        bool ok = kl > 0 && kl < BINANCE_LISTEN_KEY_MAX && kl < cap;
        for (size_t i = 0; ok && i < kl; i++)
            ok = (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
                 (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '-';
        if (!ok) {
            seterr(err, errlen, "listenKey: listenKey: empty, too long or unexpected characters");
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

/* "HTTP 503: Unknown error..." or "HTTP 404: <first bytes of body>" */
static void http_msg(char *dst, size_t cap, const struct rest_resp *r, bool has_err, int code,
                     const char *emsg) {
    if (has_err) {
        snprintf(dst, cap, "HTTP %ld: %d %s", r->http_status, code, emsg);
    } else {
        char snip[64];
        copy_text(snip, sizeof snip, r->body ? r->body : "", r->body_len);
        snprintf(dst, cap, "HTTP %ld: %s", r->http_status, snip[0] ? snip : "(empty body)");
    }
    sanitize(dst);
}

void binance_classify_order(const struct rest_resp *r, bool is_query, const char *want_client_id,
                            struct exch_order_result *out) {
    char emsg[sizeof out->error_msg];
    int code = 0;
    memset(out, 0, sizeof *out);
    out->outcome = EXCH_UNKNOWN;
    if (want_client_id) snprintf(out->client_id, sizeof out->client_id, "%s", want_client_id);
    out->http_status = r->http_status;

    if (r->err != 0) {
        /* Transport failure. "Not sent" only when curl never had a connection ready for the
         * request (connect refused, resolve failure, connect timeout): then the order cannot
         * exist. Anything later (timeout after sending, reset, refused re-send, cancellation
         * in flight) may have reached the matching engine. */
        if (!r->maybe_sent && !is_query) {
            out->outcome = EXCH_REJECTED;
            out->http_status = 0;
            seterr(out->error_msg, sizeof out->error_msg, "not sent: %s", r->error);
        } else {
            out->outcome = EXCH_UNKNOWN;
            seterr(out->error_msg, sizeof out->error_msg, "%s%s",
                     is_query ? "query failed: " : "outcome unknown: ", r->error);
        }
        sanitize(out->error_msg);
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
            seterr(out->error_msg, sizeof out->error_msg, "HTTP %ld, unreadable body: %s", s,
                     perr);
            sanitize(out->error_msg);
            return;
        }
        if (want_client_id && strcmp(o.client_id, want_client_id) != 0) {
            out->outcome = EXCH_UNKNOWN;
            seterr(out->error_msg, sizeof out->error_msg,
                     "clientOrderId mismatch: sent %.36s, got %.36s", want_client_id, o.client_id);
            sanitize(out->error_msg);
            return;
        }
        o.http_status = s;
        *out = o;
        return;
    }

    bool has_err = binance_parse_error(r->body, r->body_len, &code, emsg, sizeof emsg) == 0;
    if (has_err) out->error_code = code;
    http_msg(out->error_msg, sizeof out->error_msg, r, has_err, code, has_err ? emsg : "");

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
        if (is_query) out->outcome = has_err && code == -2013 ? EXCH_NOT_FOUND : EXCH_UNKNOWN;
        else out->outcome = EXCH_REJECTED;
        return;
    }
    out->outcome = EXCH_UNKNOWN; /* 1xx / 3xx / nonsense */
}

bool binance_status_from_resp(const struct rest_resp *r, struct exch_status *st) {
    char emsg[sizeof st->error_msg];
    int code = 0;
    memset(st, 0, sizeof *st);
    st->http_status = r->http_status;
    if (r->err != 0) {
        st->err = r->err;
        seterr(st->error_msg, sizeof st->error_msg, "%s", r->error);
        sanitize(st->error_msg);
        return false;
    }
    long s = r->http_status;
    if (s >= 200 && s < 300) return true;
    bool has_err = binance_parse_error(r->body, r->body_len, &code, emsg, sizeof emsg) == 0;
    if (has_err) st->error_code = code;
    http_msg(st->error_msg, sizeof st->error_msg, r, has_err, code, has_err ? emsg : "");
    if (s == 429 || s == 418 || s == 403 || (has_err && throttle_code(code))) st->err = -EAGAIN;
    else st->err = -EREMOTEIO;
    return false;
}

/* ---- adapter: calls in flight ---- */

enum bn_kind {
    BN_PLACE, BN_QUERY, BN_INSTR, BN_POS, BN_TIME, BN_LK_CREATE, BN_LK_KEEP, BN_LK_DEL,
    BN_ACCOUNT, BN_TICKERS, BN_POS_MODE, BN_LEVERAGES, BN_SET_LEV,
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
    } cb;
    void *ud;
    int64_t send_wall_us;
    char client_id[MKT_CLIENT_ID_MAX];
    char listen_key[BINANCE_LISTEN_KEY_MAX];
    char symbol[MKT_SYMBOL_MAX]; /* BN_SET_LEV */
    /* The request as bn_build makes it when it leaves (after any rate-limit wait), so the
     * timestamp and signature are fresh; keyhdr is wiped before the call is freed. */
    struct {
        const char *path;
        bool sign, api_key;
        int qs_len;
        char qs[BINANCE_QS_MAX];   /* parameters, unsigned */
        char body[BINANCE_QS_MAX]; /* parameters as sent (signed) */
        char url[URL_BUF];
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
            seterr(st.error_msg, sizeof st.error_msg, "%s", err);
        } else if (skipped > 0) {
            /* Usable symbols are still delivered; the message says what was left out. */
            if (n == 0) st.err = -EBADMSG;
            seterr(st.error_msg, sizeof st.error_msg, "skipped %zu symbol(s); first: %s",
                     skipped, err);
        }
    }
    c->cb.instr(c->ud, &st, st.err ? NULL : v, st.err ? 0 : n);
    free(v);
}

static void on_positions(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct mkt_position *v = NULL;
    size_t n = 0;
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_positions(r->body, r->body_len, &v, &n, err, sizeof err);
        if (rc < 0) {
            st.err = rc == -ENOMEM ? -ENOMEM : -EBADMSG;
            seterr(st.error_msg, sizeof st.error_msg, "%s", err);
        }
    }
    c->cb.pos(c->ud, &st, st.err ? NULL : v, st.err ? 0 : n);
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
            /* The server stamped its time between our request leaving (pretransfer) and the
             * first response byte (ttfb): take the midpoint of that window, which leaves out
             * connection setup. Without curl timings, the midpoint of the whole call. */
            int64_t mid_us;
            if (r->pretransfer_us > 0 && r->ttfb_us >= r->pretransfer_us)
                mid_us = c->send_wall_us + (r->pretransfer_us + r->ttfb_us) / 2;
            else mid_us = (c->send_wall_us + wall_us()) / 2;
            offset = server_ms - mid_us / 1000;
            if (!exch_account_is_closed(c->a)) exch_account_set_time_offset_ms(c->a, offset);
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
static void parse_failed(struct exch_status *st, int rc, const char *err) {
    st->err = rc == -ENOMEM ? -ENOMEM : -EBADMSG;
    seterr(st->error_msg, sizeof st->error_msg, "%s", err);
}

static void on_account(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct exch_balance b;
    memset(&b, 0, sizeof b);
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_account(r->body, r->body_len, &b, err, sizeof err);
        if (rc < 0) parse_failed(&st, rc, err);
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
        if (rc < 0) parse_failed(&st, rc, err);
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
        if (rc < 0) parse_failed(&st, rc, err);
    }
    c->cb.mode(c->ud, &st, m);
}

static void on_leverages(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct exch_leverage *v = NULL;
    size_t n = 0;
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_leverages(r->body, r->body_len, &v, &n, err, sizeof err);
        if (rc < 0) parse_failed(&st, rc, err);
    }
    c->cb.levs(c->ud, &st, st.err ? NULL : v, st.err ? 0 : n);
    free(v);
}

static void on_set_leverage(struct bn_call *c, const struct rest_resp *r) {
    struct exch_status st;
    int lev = 0;
    if (binance_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = binance_parse_set_leverage(r->body, r->body_len, c->symbol, &lev, err, sizeof err);
        if (rc < 0) parse_failed(&st, rc, err);
    }
    c->cb.setlev(c->ud, &st, c->symbol, st.err ? 0 : lev);
}

static void on_resp(void *ud, const struct rest_resp *r) {
    struct bn_call *c = ud;
    if (!exch_account_is_closed(c->a)) {
        struct exch_usage u = {r->used_weight_1m, r->order_count_10s, r->order_count_1m,
                               wall_us() / 1000};
        exch_account_note_usage(c->a, &u);
    }
    switch (c->kind) {
    case BN_PLACE:
    case BN_QUERY: on_order(c, r); break;
    case BN_INSTR: on_instruments(c, r); break;
    case BN_POS: on_positions(c, r); break;
    case BN_TIME: on_time(c, r); break;
    case BN_LK_CREATE:
    case BN_LK_KEEP:
    case BN_LK_DEL: on_listen_key(c, r); break;
    case BN_ACCOUNT: on_account(c, r); break;
    case BN_TICKERS: on_tickers(c, r); break;
    case BN_POS_MODE: on_pos_mode(c, r); break;
    case BN_LEVERAGES: on_leverages(c, r); break;
    case BN_SET_LEV: on_set_leverage(c, r); break;
    }
    exch_account_unref(c->a);
    explicit_bzero(c->w.keyhdr, sizeof c->w.keyhdr);
    free(c);
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
static struct exch_rl bn_rl(enum bn_kind kind) {
    switch (kind) {
    case BN_PLACE: return (struct exch_rl){.prio = RB_PRIO_ORDER, .orders_short = 1, .orders_long = 1};
    case BN_QUERY: return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 1, .probe_ok = true};
    case BN_INSTR: return (struct exch_rl){.prio = RB_PRIO_BULK, .ip_cost = 1, .probe_ok = true};
    case BN_POS:
    case BN_ACCOUNT:
    case BN_LEVERAGES: return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 5, .probe_ok = true};
    case BN_TIME: return (struct exch_rl){.prio = RB_PRIO_QUERY, .ip_cost = 1, .probe_ok = true};
    case BN_TICKERS: return (struct exch_rl){.prio = RB_PRIO_BULK, .ip_cost = 2, .probe_ok = true};
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
        int64_t ts = wall_us() / 1000 + exch_account_time_offset_ms(a);
        len = binance_sign_params(a, c->w.body, sizeof c->w.body, (size_t)len,
                                  exch_account_recv_window_ms(a), ts);
        if (len < 0) return len;
    }
    if (out->method == REST_GET && len > 0)
        r = snprintf(c->w.url, sizeof c->w.url, "%s%s?%s", exch_account_rest_url(a), c->w.path,
                     c->w.body);
    else r = snprintf(c->w.url, sizeof c->w.url, "%s%s", exch_account_rest_url(a), c->w.path);
    if (r < 0 || (size_t)r >= sizeof c->w.url) return -ENOSPC;
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
    c->send_wall_us = wall_us();
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
    if (qs_len < 0 || (size_t)qs_len >= sizeof c->w.qs) return -ENOSPC;
    memcpy(c->w.qs, qs, (size_t)qs_len);
    c->w.qs[qs_len] = '\0';
    c->w.qs_len = qs_len;
    c->w.path = path;
    c->w.sign = sign;
    c->w.api_key = api_key;

    struct rest_req req = {
        .method = m,
        .timeout_ms = exch_account_timeout_ms(a),
        .no_resend = no_resend,
        .build = bn_build,
    };
    struct exch_rl rl = bn_rl(c->kind);
    if ((r = exch_limits_attach(a, &req, &rl)) < 0) return r;
    c->a = exch_account_ref(a);
    c->send_wall_us = wall_us();
    r = rest_pool_send(pool, &req, on_resp, c);
    if (r < 0) {
        explicit_bzero(c->w.keyhdr, sizeof c->w.keyhdr);
        exch_account_unref(a);
        c->a = NULL;
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
    char qs[BINANCE_QS_MAX] = "";
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
    if (c) c->cb.pos = cb;
    return simple_call(a, c, REST_GET, "/fapi/v2/positionRisk", true, true);
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
    if (c) c->cb.mode = cb;
    return simple_call(a, c, REST_GET, "/fapi/v1/positionSide/dual", true, true);
}

int binance_fetch_leverage(struct exch_account *a, exch_leverages_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    struct bn_call *c = call_new(BN_LEVERAGES, ud);
    if (c) c->cb.levs = cb;
    return simple_call(a, c, REST_GET, "/fapi/v2/positionRisk", true, true);
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
