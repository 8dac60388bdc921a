/* bybit_rest: Bybit v5 linear REST adapter. See bybit_rest.h for the outcome table and chains.
 *
 * Signed requests: headers X-BAPI-API-KEY, X-BAPI-TIMESTAMP (local clock + the offset measured by
 * exch_sync_time), X-BAPI-RECV-WINDOW, X-BAPI-SIGN = HMAC(timestamp + key + recvWindow + the
 * query string (GET) or the JSON body (POST), exactly the bytes sent), computed by by_build when
 * the request leaves the pool, after any rate-limit wait. Every request is attached to the
 * account's budgets (exch_limits_attach: the host's IP budget and the per-endpoint budget named
 * by the path) and its host's circuit breaker; a retCode 10006 (HTTP 200, invisible to the pool)
 * blocks that endpoint's budget (exch_limits_throttled). Orders go out with no_resend: curl never
 * transmits an order twice on its own. */
#include "bybit_rest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bybit_sign.h"
#include "client_id.h"
#include "exch_limits.h"
#include "json_util.h"
#include "rest_util.h"

#define URL_BUF 2048

/* ================================================================ small helpers */

/* Bybit symbols are upper-case letters and digits, dated futures add '-' ("BTCUSDT-26DEC25");
 * we accept [A-Za-z0-9._-]{1,31}: safe unescaped in JSON and in a URL. */
static bool symbol_ok(const char *s) {
    if (!s || !*s || strlen(s) >= MKT_SYMBOL_MAX) return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.'))
            return false;
    return true;
}

/* A decimal from a Bybit string field; "" counts as absent (-ENOENT). Integers are accepted
 * through their exact text (ju_get_dec). */
static int get_dec_opt(const json_t *o, const char *key, dec_t *out) {
    const json_t *v = json_object_get(o, key);
    if (json_is_string(v) && json_string_length(v) == 0) return -ENOENT;
    return ju_get_dec(o, key, out);
}

/* A millisecond time sent as a decimal string ("1672364174443") or an integer. */
static int get_ms(const json_t *o, const char *key, int64_t *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) return -ENOENT;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return *out >= 0 ? 0 : -ERANGE;
    }
    if (!json_is_string(v)) return -EINVAL;
    const char *s = json_string_value(v);
    size_t l = json_string_length(v);
    if (l == 0 || l > 18) return l == 0 ? -ENOENT : -ERANGE;
    int64_t x = 0;
    for (size_t i = 0; i < l; i++) {
        if (s[i] < '0' || s[i] > '9') return -EINVAL;
        x = x * 10 + (s[i] - '0');
    }
    *out = x;
    return 0;
}

/* Envelope check + result object. NULL with err set when not {retCode: 0, result: {...}}. */
static json_t *result_of(json_t *j, const char *what, char *err, size_t errlen) {
    int64_t rc;
    int r;
    if (!json_is_object(j)) {
        ru_seterr(err, errlen, "%s: not a JSON object", what);
        return NULL;
    }
    if ((r = ju_get_i64(j, "retCode", &rc)) < 0) {
        ru_seterr(err, errlen, "%s: retCode: %s", what, ru_why(r));
        return NULL;
    }
    if (rc != 0) {
        const char *m = "";
        (void)ju_get_str(j, "retMsg", &m);
        ru_seterr(err, errlen, "%s: retCode %" PRId64 ": %.80s", what, rc, m);
        return NULL;
    }
    json_t *res = json_object_get(j, "result");
    if (!json_is_object(res)) {
        ru_seterr(err, errlen, "%s: result: %s", what, res ? "not an object" : "missing");
        return NULL;
    }
    return res;
}

/* result.list as an array (missing/null list = empty when allow_missing). */
static json_t *list_of(json_t *res, const char *what, char *err, size_t errlen) {
    json_t *l = json_object_get(res, "list");
    if (!json_is_array(l)) {
        ru_seterr(err, errlen, "%s: result.list: %s", what, l ? "not an array" : "missing");
        return NULL;
    }
    return l;
}

static int get_cursor(const json_t *res, const char *what, char *cursor, size_t cap, char *err,
                      size_t errlen) {
    if (!cursor || !cap) return 0;
    cursor[0] = '\0';
    const json_t *c = json_object_get(res, "nextPageCursor");
    if (!c || json_is_null(c)) return 0;
    if (!json_is_string(c)) {
        ru_seterr(err, errlen, "%s: result.nextPageCursor: not a string", what);
        return -EBADMSG;
    }
    if (json_string_length(c) >= cap) {
        ru_seterr(err, errlen, "%s: result.nextPageCursor: too long", what);
        return -EBADMSG;
    }
    const char *s = json_string_value(c);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x21 || *p > 0x7e) {
            ru_seterr(err, errlen, "%s: result.nextPageCursor: unexpected characters", what);
            return -EBADMSG;
        }
    memcpy(cursor, s, json_string_length(c) + 1);
    return 0;
}

/* ================================================================ request building */

int bybit_qs_add(char *buf, size_t cap, size_t len, const char *key, const char *value) {
    return ru_qs_add(buf, cap, len, key, value);
}

/* json -> compact text into buf. Length, -ENOSPC, -ENOMEM. */
static int dump_into(json_t *j, char *buf, size_t cap) {
    if (!j) return -ENOMEM;
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) return -ENOMEM;
    size_t l = strlen(s);
    int r = (int)l;
    if (l >= cap) {
        r = -ENOSPC;
        buf[0] = '\0';
    } else {
        memcpy(buf, s, l + 1);
    }
    free(s);
    return r;
}

/* One order as a JSON object (category included when with_category). NULL with err set. */
static json_t *order_obj(const struct exch_order_req *req, bool with_category, const char *where,
                         char *err, size_t errlen, int *rc) {
    char qty[DEC_STR_MAX], price[DEC_STR_MAX];
    const char *type, *tif = NULL;
    int idx;

    *rc = -EINVAL;
    if (!req) {
        ru_seterr(err, errlen, "%s: no request", where);
        return NULL;
    }
    if (!symbol_ok(req->symbol)) {
        ru_seterr(err, errlen, "%s: symbol: must match [A-Za-z0-9._-]{1,31}", where);
        return NULL;
    }
    if (req->side != MKT_BUY && req->side != MKT_SELL) {
        ru_seterr(err, errlen, "%s: side: %d is neither Buy nor Sell", where, (int)req->side);
        return NULL;
    }
    switch (req->type) {
    case EXCH_MARKET: type = "Market"; break;
    case EXCH_LIMIT_IOC: type = "Limit"; tif = "IOC"; break;
    case EXCH_LIMIT_GTC: type = "Limit"; tif = "GTC"; break;
    default:
        ru_seterr(err, errlen, "%s: type: unknown value %d", where, (int)req->type);
        return NULL;
    }
    switch (req->pos_side) {
    case MKT_PS_BOTH: idx = 0; break;
    case MKT_PS_LONG: idx = 1; break;
    case MKT_PS_SHORT: idx = 2; break;
    default:
        ru_seterr(err, errlen, "%s: position side: unknown value %d", where, (int)req->pos_side);
        return NULL;
    }
    if (idx != 0 && req->reduce_only) {
        /* exchange.h: a hedge leg closes by its side; reduce_only is a one-way notion here. */
        ru_seterr(err, errlen, "%s: reduceOnly: not allowed with positionIdx %d (hedge mode)",
                  where, idx);
        return NULL;
    }
    if (!req->client_id || !client_id_valid(req->client_id)) {
        ru_seterr(err, errlen, "%s: orderLinkId: must match [A-Za-z0-9_-]{1,36}", where);
        return NULL;
    }
    if (!dec_valid(req->qty) || dec_sign(req->qty) <= 0 ||
        dec_format(req->qty, qty, sizeof qty) < 0) {
        ru_seterr(err, errlen, "%s: qty: must be > 0", where);
        return NULL;
    }
    if (tif && (!dec_valid(req->price) || dec_sign(req->price) <= 0 ||
                dec_format(req->price, price, sizeof price) < 0)) {
        ru_seterr(err, errlen, "%s: price: a limit order needs a price > 0", where);
        return NULL;
    }
    *rc = -ENOMEM;
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    if (with_category) bad |= json_object_set_new(o, "category", json_string(BYBIT_CATEGORY));
    bad |= json_object_set_new(o, "symbol", json_string(req->symbol));
    bad |= json_object_set_new(o, "side", json_string(req->side == MKT_BUY ? "Buy" : "Sell"));
    bad |= json_object_set_new(o, "orderType", json_string(type));
    bad |= json_object_set_new(o, "qty", json_string(qty));
    if (tif) {
        bad |= json_object_set_new(o, "price", json_string(price));
        bad |= json_object_set_new(o, "timeInForce", json_string(tif));
    }
    bad |= json_object_set_new(o, "positionIdx", json_integer(idx));
    bad |= json_object_set_new(o, "orderLinkId", json_string(req->client_id));
    bad |= json_object_set_new(o, "reduceOnly", json_boolean(req->reduce_only));
    if (bad) {
        json_decref(o);
        ru_seterr(err, errlen, "%s: out of memory", where);
        return NULL;
    }
    *rc = 0;
    return o;
}

int bybit_order_json(const struct exch_order_req *req, char *buf, size_t cap, char *err,
                     size_t errlen) {
    int rc;
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    json_t *o = order_obj(req, true, "order", err, errlen, &rc);
    if (!o) return rc;
    rc = dump_into(o, buf, cap);
    json_decref(o);
    return rc;
}

int bybit_batch_json(const struct exch_order_req *reqs, size_t n, char *buf, size_t cap,
                     char *err, size_t errlen) {
    int rc;
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!reqs || n == 0 || n > BYBIT_BATCH_MAX) {
        ru_seterr(err, errlen, "batch: %zu orders (1..%d)", n, BYBIT_BATCH_MAX);
        return -EINVAL;
    }
    json_t *root = json_object(), *arr = json_array();
    if (!root || !arr || json_object_set_new(root, "category", json_string(BYBIT_CATEGORY)) ||
        json_object_set(root, "request", arr)) {
        json_decref(root);
        json_decref(arr);
        return -ENOMEM;
    }
    json_decref(arr); /* root holds it */
    for (size_t i = 0; i < n; i++) {
        char where[32];
        snprintf(where, sizeof where, "batch[%zu]", i);
        for (size_t k = 0; k < i; k++)
            if (reqs[k].client_id && reqs[i].client_id &&
                strcmp(reqs[k].client_id, reqs[i].client_id) == 0) {
                ru_seterr(err, errlen, "%s: orderLinkId: same as batch[%zu]", where, k);
                json_decref(root);
                return -EINVAL;
            }
        json_t *o = order_obj(&reqs[i], false, where, err, errlen, &rc);
        if (!o || json_array_append_new(arr, o)) {
            json_decref(root);
            return o ? -ENOMEM : rc;
        }
    }
    rc = dump_into(root, buf, cap);
    json_decref(root);
    return rc;
}

int bybit_cancel_json(const char *symbol, const char *client_id, char *buf, size_t cap) {
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!symbol_ok(symbol) || !client_id || !client_id_valid(client_id)) return -EINVAL;
    json_t *o = json_pack("{s:s, s:s, s:s}", "category", BYBIT_CATEGORY, "symbol", symbol,
                          "orderLinkId", client_id);
    int r = dump_into(o, buf, cap);
    json_decref(o);
    return r;
}

#define ADD(k, v)                                                 \
    do {                                                          \
        int r_ = bybit_qs_add(buf, cap, (size_t)len, (k), (v));   \
        if (r_ < 0) return r_;                                    \
        len = r_;                                                 \
    } while (0)

int bybit_query_params(const char *symbol, const char *client_id, char *buf, size_t cap) {
    int len = 0;
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!symbol_ok(symbol) || !client_id || !client_id_valid(client_id)) return -EINVAL;
    ADD("category", BYBIT_CATEGORY);
    ADD("symbol", symbol);
    ADD("orderLinkId", client_id);
    return len;
}

int bybit_leverage_json(const char *symbol, int leverage, char *buf, size_t cap) {
    char num[16];
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if (!symbol_ok(symbol) || leverage < 1 || leverage > BYBIT_LEVERAGE_MAX) return -EINVAL;
    snprintf(num, sizeof num, "%d", leverage);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "category", BYBIT_CATEGORY, "symbol", symbol,
                          "buyLeverage", num, "sellLeverage", num);
    int r = dump_into(o, buf, cap);
    json_decref(o);
    return r;
}

int bybit_executions_params(const char *symbol, int64_t start_ms, int64_t end_ms,
                            const char *cursor, char *buf, size_t cap) {
    char num[24];
    int len = 0;
    if (!buf || cap == 0) return -ENOSPC;
    buf[0] = '\0';
    if ((symbol && !symbol_ok(symbol)) || start_ms < 0 || end_ms < start_ms ||
        end_ms - start_ms > BYBIT_EXEC_WINDOW_MS)
        return -EINVAL;
    ADD("category", BYBIT_CATEGORY);
    if (symbol) ADD("symbol", symbol);
    ADD("execType", "Trade");
    snprintf(num, sizeof num, "%" PRId64, start_ms);
    ADD("startTime", num);
    snprintf(num, sizeof num, "%" PRId64, end_ms);
    ADD("endTime", num);
    ADD("limit", "100");
    if (cursor && *cursor) ADD("cursor", cursor);
    return len;
}

/* ================================================================ response parsing */

int bybit_parse_envelope(const char *body, size_t len, int *ret_code, char *msg, size_t msglen) {
    json_error_t je;
    json_t *j = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    int rc = -EBADMSG;
    int64_t c;
    const char *m = "";
    if (j && json_is_object(j) && ju_get_i64(j, "retCode", &c) == 0 && c >= INT32_MIN &&
        c <= INT32_MAX) {
        if (ju_get_str(j, "retMsg", &m) < 0) m = "";
        if (ret_code) *ret_code = (int)c;
        if (msg) ru_copy_text(msg, msglen, m, strlen(m));
        rc = 0;
    }
    json_decref(j);
    return rc;
}

int bybit_status_parse(const char *s, enum exch_order_status *out) {
    static const struct {
        const char *s;
        enum exch_order_status st;
    } map[] = {
        {"New", EXCH_ST_NEW},
        {"Untriggered", EXCH_ST_NEW},
        {"Triggered", EXCH_ST_NEW},
        {"PartiallyFilled", EXCH_ST_PARTIALLY_FILLED},
        {"Filled", EXCH_ST_FILLED},
        {"Cancelled", EXCH_ST_CANCELED},
        {"PartiallyFilledCanceled", EXCH_ST_CANCELED},
        {"Deactivated", EXCH_ST_CANCELED},
        {"Rejected", EXCH_ST_REJECTED},
    };
    if (!s) return -EINVAL;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].s) == 0) {
            *out = map[i].st;
            return 0;
        }
    return -EINVAL;
}

static int get_id(const json_t *o, const char *key, char *buf, size_t cap, bool allow_empty) {
    int r = ju_get_strbuf(o, key, buf, cap);
    if (r < 0) return r;
    if (!allow_empty && !buf[0]) return -EINVAL;
    for (const unsigned char *c = (const unsigned char *)buf; *c; c++)
        if (*c < 0x21 || *c > 0x7e) return -EINVAL;
    return 0;
}

int bybit_parse_order_obj(const json_t *o, struct exch_order_result *out, char *err,
                          size_t errlen) {
    struct exch_order_result x;
    const char *st;
    int r;
    memset(&x, 0, sizeof x);
    if (!json_is_object(o)) {
        ru_seterr(err, errlen, "order: not an object");
        return -EBADMSG;
    }
    if ((r = get_id(o, "orderId", x.order_id, sizeof x.order_id, false)) < 0) {
        ru_seterr(err, errlen, "order: orderId: %s", r == -ERANGE ? "too long" : ru_why(r));
        return -EBADMSG;
    }
    if ((r = get_id(o, "orderLinkId", x.client_id, sizeof x.client_id, true)) < 0) {
        ru_seterr(err, errlen, "order: orderLinkId: %s", r == -ERANGE ? "too long" : ru_why(r));
        return -EBADMSG;
    }
    if ((r = ju_get_str(o, "orderStatus", &st)) < 0) {
        ru_seterr(err, errlen, "order: orderStatus: %s", ru_why(r));
        return -EBADMSG;
    }
    if (bybit_status_parse(st, &x.status) < 0) {
        ru_seterr(err, errlen, "order: orderStatus: unknown value \"%.40s\"", st);
        return -EBADMSG;
    }
    if ((r = get_dec_opt(o, "cumExecQty", &x.executed_qty)) < 0) {
        ru_seterr(err, errlen, "order: cumExecQty: %s", ru_why_dec(r));
        return -EBADMSG;
    }
    if ((r = get_dec_opt(o, "avgPrice", &x.avg_price)) < 0) {
        if (r != -ENOENT) {
            ru_seterr(err, errlen, "order: avgPrice: %s", ru_why_dec(r));
            return -EBADMSG;
        }
        x.avg_price = DEC_ZERO;
    }
    if ((r = get_ms(o, "updatedTime", &x.update_time_ms)) < 0 && r != -ENOENT) {
        ru_seterr(err, errlen, "order: updatedTime: %s", ru_why(r));
        return -EBADMSG;
    }
    if (dec_sign(x.executed_qty) < 0 || dec_sign(x.avg_price) < 0) {
        ru_seterr(err, errlen, "order: cumExecQty/avgPrice: negative");
        return -EBADMSG;
    }
    x.outcome = EXCH_OK;
    *out = x;
    return 0;
}

int bybit_parse_ack(const char *body, size_t len, const char *want_client_id,
                    struct exch_order_result *out, char *err, size_t errlen) {
    int r, rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "ack", err, errlen), *res;
    if (!j) return -EBADMSG;
    memset(out, 0, sizeof *out);
    if (!(res = result_of(j, "ack", err, errlen))) goto out;
    if ((r = get_id(res, "orderId", out->order_id, sizeof out->order_id, false)) < 0) {
        ru_seterr(err, errlen, "ack: result.orderId: %s", r == -ERANGE ? "too long" : ru_why(r));
        goto out;
    }
    if ((r = get_id(res, "orderLinkId", out->client_id, sizeof out->client_id, true)) < 0) {
        ru_seterr(err, errlen, "ack: result.orderLinkId: %s",
                  r == -ERANGE ? "too long" : ru_why(r));
        goto out;
    }
    if (want_client_id && strcmp(out->client_id, want_client_id) != 0) {
        ru_seterr(err, errlen, "ack: orderLinkId mismatch: sent %.36s, got %.36s", want_client_id,
                  out->client_id);
        goto out;
    }
    out->outcome = EXCH_OK;
    out->status = EXCH_ST_NEW;
    out->executed_qty = DEC_ZERO;
    out->avg_price = DEC_ZERO;
    rc = 0;
out:
    if (rc < 0) memset(out, 0, sizeof *out);
    json_decref(j);
    return rc;
}

int bybit_parse_order_list(const char *body, size_t len, const char *client_id, bool *found,
                           struct exch_order_result *out, char *err, size_t errlen) {
    int rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "order list", err, errlen), *res, *list, *o;
    size_t i;
    *found = false;
    if (!j) return -EBADMSG;
    if (!(res = result_of(j, "order list", err, errlen))) goto out;
    if (!(list = list_of(res, "order list", err, errlen))) goto out;
    json_array_foreach(list, i, o) {
        const char *link;
        if (!json_is_object(o) || ju_get_str(o, "orderLinkId", &link) < 0) {
            ru_seterr(err, errlen, "order list: result.list[%zu]: no orderLinkId", i);
            goto out;
        }
        if (!client_id || strcmp(link, client_id) != 0) continue;
        char e[160];
        if (bybit_parse_order_obj(o, out, e, sizeof e) < 0) {
            ru_seterr(err, errlen, "order list: result.list[%zu]: %s", i, e);
            goto out;
        }
        *found = true;
        rc = 0;
        goto out;
    }
    if (json_array_size(list) > 0) {
        /* We asked by orderLinkId: a list of other orders means the filter was ignored. */
        ru_seterr(err, errlen, "order list: %zu order(s), none with orderLinkId %.36s",
                  json_array_size(list), client_id ? client_id : "");
        goto out;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

static bool throttle_code(int code) { return code == BYBIT_RC_TOO_MANY_VISITS; }
static bool unknown_code(int code) {
    return code == BYBIT_RC_SERVER_ERROR || code == BYBIT_RC_SERVER_TIMEOUT ||
           code == BYBIT_RC_ORDER_PROCESSING;
}

int bybit_parse_batch(const char *body, size_t len, const char *const *client_ids, size_t n,
                      struct exch_order_result *out, char *err, size_t errlen) {
    int rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "batch", err, errlen), *res, *list, *ext, *elist;
    if (!j) return -EBADMSG;
    if (!(res = result_of(j, "batch", err, errlen))) goto out;
    if (!(list = list_of(res, "batch", err, errlen))) goto out;
    ext = json_object_get(j, "retExtInfo");
    elist = json_is_object(ext) ? json_object_get(ext, "list") : NULL;
    if (!json_is_array(elist)) {
        ru_seterr(err, errlen, "batch: retExtInfo.list: %s", elist ? "not an array" : "missing");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct exch_order_result *x = &out[i];
        const char *want = client_ids ? client_ids[i] : NULL;
        json_t *o = json_array_get(list, i), *e = json_array_get(elist, i);
        int64_t code;
        const char *msg = "";
        memset(x, 0, sizeof *x);
        x->outcome = EXCH_UNKNOWN;
        x->http_status = 200;
        if (want) snprintf(x->client_id, sizeof x->client_id, "%s", want);
        if (!json_is_object(e) || ju_get_i64(e, "code", &code) < 0 || code < INT32_MIN ||
            code > INT32_MAX) {
            ru_seterr(x->error_msg, sizeof x->error_msg,
                      "batch: retExtInfo.list[%zu]: no code (%zu for %zu orders)", i,
                      json_array_size(elist), n);
            continue;
        }
        (void)ju_get_str(e, "msg", &msg);
        x->error_code = (int)code;
        if (code != 0) {
            ru_seterr(x->error_msg, sizeof x->error_msg, "%d %.120s", (int)code, msg);
            if (throttle_code((int)code)) x->outcome = EXCH_THROTTLED;
            else if (unknown_code((int)code) || code == BYBIT_RC_DUPLICATE_LINK_ID)
                x->outcome = EXCH_UNKNOWN;
            else x->outcome = EXCH_REJECTED;
            continue;
        }
        char got[MKT_CLIENT_ID_MAX] = "";
        if (!json_is_object(o) || get_id(o, "orderId", x->order_id, sizeof x->order_id, false) < 0 ||
            get_id(o, "orderLinkId", got, sizeof got, true) < 0) {
            x->order_id[0] = '\0';
            ru_seterr(x->error_msg, sizeof x->error_msg,
                      "batch: result.list[%zu]: no orderId/orderLinkId", i);
            continue;
        }
        if (want && strcmp(got, want) != 0) {
            x->order_id[0] = '\0';
            ru_seterr(x->error_msg, sizeof x->error_msg,
                      "batch: result.list[%zu]: orderLinkId mismatch: sent %.36s, got %.36s", i,
                      want, got);
            continue;
        }
        x->outcome = EXCH_OK;
        x->status = EXCH_ST_NEW;
        x->error_code = 0;
        x->executed_qty = DEC_ZERO;
        x->avg_price = DEC_ZERO;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* A required filter decimal: NULL or the reason. */
static const char *filter_dec(const json_t *f, const char *key, dec_t *out, bool positive,
                              bool optional) {
    int r = get_dec_opt(f, key, out);
    if (r == -ENOENT && optional) {
        *out = DEC_ZERO;
        return NULL;
    }
    if (r < 0) return ru_why_dec(r);
    if (dec_sign(*out) < 0) return "negative";
    if (positive && dec_sign(*out) == 0) return "must be > 0";
    return NULL;
}

static int parse_instrument(const json_t *s, size_t i, struct mkt_instrument *in, char *err,
                            size_t errlen) {
    const char *sym, *bad = NULL, *field = NULL, *fname = NULL;
    json_t *lot, *pf;
    int r;
    memset(in, 0, sizeof *in);
    if (!json_is_object(s)) {
        ru_seterr(err, errlen, "instruments: list[%zu]: not an object", i);
        return -EBADMSG;
    }
    if ((r = ju_get_str(s, "symbol", &sym)) < 0) {
        ru_seterr(err, errlen, "instruments: list[%zu].symbol: %s", i, ru_why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        ru_seterr(err, errlen, "instruments: list[%zu].symbol: empty, too long or bad characters",
                  i);
        return -EBADMSG;
    }
    snprintf(in->symbol, sizeof in->symbol, "%s", sym);
    lot = json_object_get(s, "lotSizeFilter");
    pf = json_object_get(s, "priceFilter");
    if (!json_is_object(lot) || !json_is_object(pf)) {
        ru_seterr(err, errlen, "instruments: list[%zu].%s: missing or not an object (symbol %s)", i,
                  !json_is_object(lot) ? "lotSizeFilter" : "priceFilter", in->symbol);
        return -EBADMSG;
    }
    fname = "lotSizeFilter";
    if ((bad = filter_dec(lot, field = "qtyStep", &in->step, true, false)) ||
        (bad = filter_dec(lot, field = "minOrderQty", &in->min_qty, false, false)) ||
        (bad = filter_dec(lot, field = "maxOrderQty", &in->max_qty, false, false)) ||
        (bad = filter_dec(lot, field = "maxMktOrderQty", &in->mkt_max_qty, false, true)) ||
        (bad = filter_dec(lot, field = "minNotionalValue", &in->min_notional, false, true)))
        goto bad;
    fname = "priceFilter";
    if ((bad = filter_dec(pf, field = "tickSize", &in->tick, true, false)) ||
        (bad = filter_dec(pf, field = "minPrice", &in->min_price, false, false)) ||
        (bad = filter_dec(pf, field = "maxPrice", &in->max_price, false, false)))
        goto bad;
    in->mkt_step = DEC_ZERO;
    in->mkt_min_qty = DEC_ZERO;
    return 0;
bad:
    ru_seterr(err, errlen, "instruments: list[%zu].%s.%s: %s (symbol %s)", i, fname, field, bad,
              in->symbol);
    return -EBADMSG;
}

int bybit_parse_instruments(const char *body, size_t len, struct mkt_instrument **out, size_t *n,
                            size_t *skipped, char *cursor, size_t cursor_cap, char *err,
                            size_t errlen) {
    json_t *j, *res, *list, *s;
    size_t i, cnt = 0, skip = 0;
    struct mkt_instrument *v = NULL;
    char first[200] = "";
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if (skipped) *skipped = 0;
    if (cursor && cursor_cap) cursor[0] = '\0';
    if (err && errlen) err[0] = '\0';
    if (!(j = ru_load_json(body, len, "instruments", err, errlen))) return -EBADMSG;
    if (!(res = result_of(j, "instruments", err, errlen))) goto out;
    if (!(list = list_of(res, "instruments", err, errlen))) goto out;
    if (get_cursor(res, "instruments", cursor, cursor_cap, err, errlen) < 0) goto out;
    if (json_array_size(list) > 0 && !(v = calloc(json_array_size(list), sizeof *v))) {
        ru_seterr(err, errlen, "instruments: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    json_array_foreach(list, i, s) {
        char e[200];
        if (parse_instrument(s, i, &v[cnt], e, sizeof e) == 0) cnt++;
        else if (skip++ == 0)
            ru_seterr(first, sizeof first, "%s", e);
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

/* Bybit leverage: a decimal string ("10", "12.5"), rounded up to an int; "" -> 0. */
static int get_leverage(const json_t *o, int *lev) {
    dec_t d, up;
    int r = get_dec_opt(o, "leverage", &d);
    *lev = 0;
    if (r == -ENOENT) return 0;
    if (r < 0) return r;
    if (dec_sign(d) < 0 || dec_round_up(d, dec_from_int(1), &up) < 0) return -EINVAL;
    char b[DEC_STR_MAX];
    if (dec_format(up, b, sizeof b) < 0) return -EINVAL;
    long x = strtol(b, NULL, 10);
    if (x < 0 || x > 1000) return -ERANGE;
    *lev = (int)x;
    return 0;
}

int bybit_parse_position_obj(const json_t *p, struct mkt_position *pos, char *err,
                             size_t errlen) {
    const char *sym, *side;
    int64_t idx;
    dec_t size;
    int r;
    memset(pos, 0, sizeof *pos);
    if (!json_is_object(p)) {
        ru_seterr(err, errlen, "position: not an object");
        return -EBADMSG;
    }
    if ((r = ju_get_str(p, "symbol", &sym)) < 0) {
        ru_seterr(err, errlen, "position: symbol: %s", ru_why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(sym)) {
        ru_seterr(err, errlen, "position: symbol: empty, too long or bad characters");
        return -EBADMSG;
    }
    snprintf(pos->symbol, sizeof pos->symbol, "%s", sym);
    if ((r = ju_get_i64(p, "positionIdx", &idx)) < 0 || idx < 0 || idx > 2) {
        ru_seterr(err, errlen, "position: positionIdx: %s (symbol %s)",
                  r < 0 ? ru_why(r) : "not 0, 1 or 2", pos->symbol);
        return -EBADMSG;
    }
    pos->pos_side = idx == 0 ? MKT_PS_BOTH : idx == 1 ? MKT_PS_LONG : MKT_PS_SHORT;
    if ((r = ju_get_dec(p, "size", &size)) < 0 || dec_sign(size) < 0) {
        ru_seterr(err, errlen, "position: size: %s (symbol %s)", r < 0 ? ru_why_dec(r) : "negative",
                  pos->symbol);
        return -EBADMSG;
    }
    if ((r = ju_get_str(p, "side", &side)) < 0) {
        ru_seterr(err, errlen, "position: side: %s (symbol %s)", ru_why(r), pos->symbol);
        return -EBADMSG;
    }
    if (strcmp(side, "Buy") == 0) {
        pos->amount = size;
    } else if (strcmp(side, "Sell") == 0) {
        pos->amount = dec_neg(size);
    } else if ((strcmp(side, "") == 0 || strcmp(side, "None") == 0) && dec_is_zero(size)) {
        pos->amount = DEC_ZERO;
    } else {
        ru_seterr(err, errlen, "position: side: \"%.10s\" with size not 0 (symbol %s)", side,
                  pos->symbol);
        return -EBADMSG;
    }
    r = get_dec_opt(p, "avgPrice", &pos->entry_price);
    if (r == -ENOENT) r = get_dec_opt(p, "entryPrice", &pos->entry_price);
    if (r == -ENOENT) {
        pos->entry_price = DEC_ZERO;
    } else if (r < 0 || dec_sign(pos->entry_price) < 0) {
        ru_seterr(err, errlen, "position: avgPrice: %s (symbol %s)",
                  r < 0 ? ru_why_dec(r) : "negative", pos->symbol);
        return -EBADMSG;
    }
    if ((r = get_leverage(p, &pos->leverage)) < 0) {
        ru_seterr(err, errlen, "position: leverage: not a decimal 0..1000 (symbol %s)",
                  pos->symbol);
        return -EBADMSG;
    }
    if ((r = get_ms(p, "updatedTime", &pos->update_ms)) < 0 && r != -ENOENT) {
        ru_seterr(err, errlen, "position: updatedTime: %s (symbol %s)", ru_why(r), pos->symbol);
        return -EBADMSG;
    }
    return 0;
}

int bybit_parse_positions(const char *body, size_t len, struct mkt_position **out, size_t *n,
                          char *cursor, size_t cursor_cap, char *err, size_t errlen) {
    json_t *j, *res, *list, *p;
    size_t i;
    struct mkt_position *v = NULL;
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if (!(j = ru_load_json(body, len, "positions", err, errlen))) return -EBADMSG;
    if (!(res = result_of(j, "positions", err, errlen))) goto out;
    if (!(list = list_of(res, "positions", err, errlen))) goto out;
    if (get_cursor(res, "positions", cursor, cursor_cap, err, errlen) < 0) goto out;
    if (json_array_size(list) > 0 && !(v = calloc(json_array_size(list), sizeof *v))) {
        ru_seterr(err, errlen, "positions: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    json_array_foreach(list, i, p) {
        char e[160];
        if (bybit_parse_position_obj(p, &v[i], e, sizeof e) < 0) {
            ru_seterr(err, errlen, "positions: result.list[%zu]: %s", i, e);
            free(v);
            v = NULL;
            goto out;
        }
    }
    *out = v;
    *n = json_array_size(list);
    if (*n == 0) {
        free(v);
        *out = NULL;
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

int bybit_parse_server_time(const char *body, size_t len, int64_t *ms, char *err, size_t errlen) {
    int rc = -EBADMSG;
    json_t *j = ru_load_json(body, len, "time", err, errlen), *res;
    int64_t x = 0;
    if (!j) return -EBADMSG;
    if (!(res = result_of(j, "time", err, errlen))) goto out;
    const json_t *tn = json_object_get(res, "timeNano");
    if (json_is_string(tn) && json_string_length(tn) >= 7 && json_string_length(tn) <= 19) {
        const char *s = json_string_value(tn);
        size_t l = json_string_length(tn);
        bool ok = true;
        for (size_t i = 0; i < l && ok; i++) {
            ok = s[i] >= '0' && s[i] <= '9';
            if (ok) x = x * 10 + (s[i] - '0');
        }
        if (ok) {
            *ms = x / 1000000;
            rc = *ms > 0 ? 0 : -EBADMSG;
            if (rc < 0) ru_seterr(err, errlen, "time: result.timeNano: not positive");
            goto out;
        }
    }
    if (get_ms(res, "timeSecond", &x) == 0 && x > 0 && x <= INT64_MAX / 1000) {
        *ms = x * 1000; /* bounded above: a fuzzed timeSecond overflowed the product */
        rc = 0;
    } else if (ju_get_i64(j, "time", &x) == 0 && x > 0) {
        *ms = x;
        rc = 0;
    } else {
        ru_seterr(err, errlen, "time: result.timeNano/timeSecond and time: missing or malformed");
    }
out:
    json_decref(j);
    return rc;
}

int bybit_parse_wallet(const char *body, size_t len, struct exch_balance *out, char *err,
                       size_t errlen) {
    static const struct {
        const char *key;
        size_t off;
        bool required;
    } fields[] = {
        {"totalMarginBalance", offsetof(struct exch_balance, equity), true},
        {"totalWalletBalance", offsetof(struct exch_balance, wallet), true},
        {"totalAvailableBalance", offsetof(struct exch_balance, available), false},
        {"totalPerpUPL", offsetof(struct exch_balance, unrealized), false},
    };
    int r, rc = -EBADMSG;
    json_t *j, *res, *list, *acct;
    memset(out, 0, sizeof *out);
    if (!(j = ru_load_json(body, len, "wallet", err, errlen))) return -EBADMSG;
    if (!(res = result_of(j, "wallet", err, errlen))) goto out;
    if (!(list = list_of(res, "wallet", err, errlen))) goto out;
    acct = json_array_get(list, 0);
    if (!json_is_object(acct)) {
        ru_seterr(err, errlen, "wallet: result.list[0]: %s", acct ? "not an object" : "missing");
        goto out;
    }
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        dec_t *d = (dec_t *)((char *)out + fields[k].off);
        r = get_dec_opt(acct, fields[k].key, d);
        if (r == -ENOENT && !fields[k].required && json_object_get(acct, fields[k].key)) {
            *d = DEC_ZERO; /* present but "" */
            continue;
        }
        if (r < 0) {
            ru_seterr(err, errlen, "wallet: result.list[0].%s: %s", fields[k].key, ru_why_dec(r));
            memset(out, 0, sizeof *out);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* Shared walk of market/tickers: for each entry, a callback gets (entry, index). */
static int tickers_walk(const char *body, size_t len, size_t elem, void **out, size_t *n,
                        int (*one)(const json_t *t, size_t i, int64_t time_ms, void *dst,
                                   char *err, size_t errlen),
                        char *err, size_t errlen) {
    json_t *j, *res, *list, *t;
    size_t i, cnt = 0;
    char *v = NULL;
    int64_t tms = 0;
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if (!(j = ru_load_json(body, len, "tickers", err, errlen))) return -EBADMSG;
    if (!(res = result_of(j, "tickers", err, errlen))) goto out;
    if (!(list = list_of(res, "tickers", err, errlen))) goto out;
    if (ju_get_i64(j, "time", &tms) < 0 || tms < 0) tms = 0;
    if (json_array_size(list) > 0 && !(v = calloc(json_array_size(list), elem))) {
        ru_seterr(err, errlen, "tickers: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    json_array_foreach(list, i, t) {
        int r = one(t, i, tms, v + cnt * elem, err, errlen);
        if (r < 0) {
            free(v);
            v = NULL;
            goto out;
        }
        if (r > 0) cnt++;
    }
    if (cnt == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = cnt;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* symbol of a tickers entry: 0, or -EBADMSG */
static int ticker_symbol(const json_t *t, size_t i, char sym[MKT_SYMBOL_MAX], char *err,
                         size_t errlen) {
    const char *s;
    int r;
    if (!json_is_object(t)) {
        ru_seterr(err, errlen, "tickers: result.list[%zu]: not an object", i);
        return -EBADMSG;
    }
    if ((r = ju_get_str(t, "symbol", &s)) < 0) {
        ru_seterr(err, errlen, "tickers: result.list[%zu].symbol: %s", i, ru_why(r));
        return -EBADMSG;
    }
    if (!symbol_ok(s)) {
        ru_seterr(err, errlen,
                  "tickers: result.list[%zu].symbol: empty, too long or bad characters", i);
        return -EBADMSG;
    }
    snprintf(sym, MKT_SYMBOL_MAX, "%s", s);
    return 0;
}

/* 1 = price > 0 read, 0 = ""/absent/0 (leave the entry out), -EBADMSG */
static int ticker_price(const json_t *t, size_t i, const char *key, const char *sym, dec_t *d,
                        char *err, size_t errlen) {
    int r = get_dec_opt(t, key, d);
    if (r == -ENOENT) return 0;
    if (r < 0 || dec_sign(*d) < 0) {
        ru_seterr(err, errlen, "tickers: result.list[%zu].%s: %s (symbol %s)", i, key,
                  r < 0 ? ru_why_dec(r) : "negative", sym);
        return -EBADMSG;
    }
    return dec_sign(*d) > 0;
}

static int one_ticker(const json_t *t, size_t i, int64_t tms, void *dst, char *err,
                      size_t errlen) {
    struct exch_ticker *x = dst;
    memset(x, 0, sizeof *x);
    if (ticker_symbol(t, i, x->symbol, err, errlen) < 0) return -EBADMSG;
    x->time_ms = tms;
    return ticker_price(t, i, "lastPrice", x->symbol, &x->price, err, errlen);
}

static int one_book(const json_t *t, size_t i, int64_t tms, void *dst, char *err, size_t errlen) {
    struct exch_book_ticker *x = dst;
    memset(x, 0, sizeof *x);
    if (ticker_symbol(t, i, x->symbol, err, errlen) < 0) return -EBADMSG;
    x->time_ms = tms;
    int b = ticker_price(t, i, "bid1Price", x->symbol, &x->bid, err, errlen);
    if (b < 0) return b;
    int a = ticker_price(t, i, "ask1Price", x->symbol, &x->ask, err, errlen);
    if (a < 0) return a;
    return a > 0 && b > 0;
}

int bybit_parse_tickers(const char *body, size_t len, struct exch_ticker **out, size_t *n,
                        char *err, size_t errlen) {
    return tickers_walk(body, len, sizeof **out, (void **)out, n, one_ticker, err, errlen);
}

int bybit_parse_book_tickers(const char *body, size_t len, struct exch_book_ticker **out,
                             size_t *n, char *err, size_t errlen) {
    return tickers_walk(body, len, sizeof **out, (void **)out, n, one_book, err, errlen);
}

int bybit_parse_exec_obj(const json_t *e, const char *where, struct bybit_exec *out, char *err,
                         size_t errlen) {
    struct mkt_fill *f = &out->fill;
    const char *sym, *s;
    dec_t leaves;
    int64_t idx;
    int r;

    memset(out, 0, sizeof *out);
    if (!where) where = "execution";
    if (!json_is_object(e)) {
        ru_seterr(err, errlen, "%s: not an object", where);
        return -EBADMSG;
    }
    if ((r = ju_get_str(e, "symbol", &sym)) < 0 || !symbol_ok(sym)) {
        ru_seterr(err, errlen, "%s.symbol: %s", where,
                  r < 0 ? ru_why(r) : "empty, too long or bad characters");
        return -EBADMSG;
    }
    snprintf(f->symbol, sizeof f->symbol, "%s", sym);
    if ((r = ju_get_str(e, "execType", &s)) < 0) {
        ru_seterr(err, errlen, "%s.execType: %s (symbol %s)", where, ru_why(r), f->symbol);
        return -EBADMSG;
    }
    snprintf(out->exec_type, sizeof out->exec_type, "%s", s);
    ru_sanitize(out->exec_type);
    out->is_trade = strcmp(s, "Trade") == 0;
    if ((r = get_id(e, "execId", f->trade_id, sizeof f->trade_id, false)) < 0) {
        ru_seterr(err, errlen, "%s.execId: %s (symbol %s)", where,
                  r == -ERANGE ? "too long" : ru_why(r), f->symbol);
        return -EBADMSG;
    }
    if (!out->is_trade) return 0; /* funding, ADL, settlement...: not copied */

#define NEED(expr, field, reason)                                                                  \
    do {                                                                                           \
        if ((r = (expr)) < 0) {                                                                    \
            ru_seterr(err, errlen, "%s.%s: %s (symbol %s)", where, field, reason, f->symbol);      \
            return -EBADMSG;                                                                       \
        }                                                                                          \
    } while (0)

    NEED(get_id(e, "orderId", f->order_id, sizeof f->order_id, false), "orderId",
         r == -ERANGE ? "too long" : ru_why(r));
    r = ju_get_str(e, "orderLinkId", &s);
    if (r == 0) {
        snprintf(f->order_client_id, sizeof f->order_client_id, "%s", s);
        ru_sanitize(f->order_client_id);
    } else if (r != -ENOENT) {
        NEED(r, "orderLinkId", ru_why(r));
    }
    NEED(ju_get_str(e, "side", &s), "side", ru_why(r));
    if (strcmp(s, "Buy") == 0) f->side = MKT_BUY;
    else if (strcmp(s, "Sell") == 0) f->side = MKT_SELL;
    else NEED(-EINVAL, "side", "neither Buy nor Sell");
    NEED(ju_get_dec(e, "execQty", &f->qty), "execQty", ru_why_dec(r));
    if (dec_sign(f->qty) <= 0) NEED(-EINVAL, "execQty", "must be > 0");
    NEED(ju_get_dec(e, "execPrice", &f->price), "execPrice", ru_why_dec(r));
    if (dec_sign(f->price) <= 0) NEED(-EINVAL, "execPrice", "must be > 0");
    NEED(get_ms(e, "execTime", &f->trade_time_ms), "execTime", ru_why(r));
    NEED(ju_get_dec(e, "orderQty", &f->orig_qty), "orderQty", ru_why_dec(r));
    NEED(ju_get_dec(e, "leavesQty", &leaves), "leavesQty", ru_why_dec(r));
    if (dec_sign(f->orig_qty) < 0 || dec_sign(leaves) < 0)
        NEED(-EINVAL, "orderQty/leavesQty", "negative");
    if (dec_sub(f->orig_qty, leaves, &f->cum_qty) < 0 || dec_sign(f->cum_qty) < 0)
        NEED(-EINVAL, "leavesQty", "more than orderQty");
    f->order_done = dec_is_zero(leaves);
    r = get_dec_opt(e, "closedSize", &out->closed_size);
    if (r == -ENOENT) out->closed_size = DEC_ZERO;
    else if (r < 0 || dec_sign(out->closed_size) < 0)
        NEED(r < 0 ? r : -EINVAL, "closedSize", r < 0 ? ru_why_dec(r) : "negative");
    f->reduce_only = dec_sign(out->closed_size) > 0 && dec_cmp(out->closed_size, f->qty) >= 0;
    r = ju_get_i64(e, "positionIdx", &idx);
    if (r == 0) {
        if (idx < 0 || idx > 2) NEED(-EINVAL, "positionIdx", "not 0, 1 or 2");
        out->has_pos_idx = true;
        f->pos_side = idx == 0 ? MKT_PS_BOTH : idx == 1 ? MKT_PS_LONG : MKT_PS_SHORT;
    } else if (r != -ENOENT) {
        NEED(r, "positionIdx", ru_why(r));
    }
    f->trade_seq = 0;
#undef NEED
    return 0;
}

void bybit_exec_apply_mode(struct bybit_exec *x, enum mkt_pos_mode mode) {
    if (!x || x->has_pos_idx) return;
    if (mode != MKT_PM_HEDGE) {
        x->fill.pos_side = MKT_PS_BOTH;
        return;
    }
    bool closing = dec_sign(x->closed_size) > 0;
    bool buy = x->fill.side == MKT_BUY;
    x->fill.pos_side = (buy != closing) ? MKT_PS_LONG : MKT_PS_SHORT;
}

int bybit_parse_executions(const char *body, size_t len, struct bybit_exec **out, size_t *n,
                           char *cursor, size_t cursor_cap, char *err, size_t errlen) {
    json_t *j, *res, *list, *e;
    size_t i, cnt = 0;
    struct bybit_exec *v = NULL;
    int rc = -EBADMSG;

    *out = NULL;
    *n = 0;
    if (!(j = ru_load_json(body, len, "executions", err, errlen))) return -EBADMSG;
    if (!(res = result_of(j, "executions", err, errlen))) goto out;
    if (!(list = list_of(res, "executions", err, errlen))) goto out;
    if (get_cursor(res, "executions", cursor, cursor_cap, err, errlen) < 0) goto out;
    if (json_array_size(list) > 0 && !(v = calloc(json_array_size(list), sizeof *v))) {
        ru_seterr(err, errlen, "executions: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    json_array_foreach(list, i, e) {
        char where[48];
        snprintf(where, sizeof where, "executions: result.list[%zu]", i);
        if (bybit_parse_exec_obj(e, where, &v[cnt], err, errlen) < 0) {
            free(v);
            v = NULL;
            goto out;
        }
        if (v[cnt].is_trade) {
            v[cnt].fill.event_time_ms = v[cnt].fill.trade_time_ms;
            cnt++;
        }
    }
    if (cnt == 0) {
        free(v);
        v = NULL;
    }
    *out = v;
    *n = cnt;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* ---- mode book ---- */

struct bybit_modeent {
    char symbol[MKT_SYMBOL_MAX];
    int8_t mode; /* -1 unknown */
    int leverage;
};

struct bybit_modebook {
    struct bybit_modeent *v;
    size_t n, cap;
    enum mkt_pos_mode last; /* mode of the last symbol noted: the default for unknown ones */
};

#define MODEBOOK_MAX 4096

struct bybit_modebook *bybit_modebook_new(void) {
    struct bybit_modebook *mb = calloc(1, sizeof *mb);
    if (mb) mb->last = MKT_PM_ONE_WAY;
    return mb;
}

struct bybit_modebook *bybit_modebook_free(struct bybit_modebook *mb) {
    if (mb) {
        free(mb->v);
        free(mb);
    }
    return NULL;
}

static struct bybit_modeent *mb_find(const struct bybit_modebook *mb, const char *symbol) {
    for (size_t i = 0; mb && symbol && i < mb->n; i++)
        if (strcmp(mb->v[i].symbol, symbol) == 0) return &mb->v[i];
    return NULL;
}

int bybit_modebook_note(struct bybit_modebook *mb, const char *symbol, int position_idx,
                        int leverage, int *old_leverage) {
    if (old_leverage) *old_leverage = 0;
    if (!mb || !symbol || strlen(symbol) >= MKT_SYMBOL_MAX) return -EINVAL;
    struct bybit_modeent *e = mb_find(mb, symbol);
    if (!e) {
        if (mb->n == mb->cap) {
            if (mb->cap >= MODEBOOK_MAX) return -ENOMEM;
            size_t nc = mb->cap ? mb->cap * 2 : 16;
            struct bybit_modeent *nv = realloc(mb->v, nc * sizeof *nv);
            if (!nv) return -ENOMEM;
            mb->v = nv;
            mb->cap = nc;
        }
        e = &mb->v[mb->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->symbol, sizeof e->symbol, "%s", symbol);
        e->mode = -1;
    }
    if (position_idx == 0 || position_idx == 1 || position_idx == 2) {
        e->mode = position_idx == 0 ? MKT_PM_ONE_WAY : MKT_PM_HEDGE;
        mb->last = (enum mkt_pos_mode)e->mode;
    }
    if (old_leverage) *old_leverage = e->leverage;
    if (leverage > 0) e->leverage = leverage;
    return 0;
}

void bybit_modebook_set_default(struct bybit_modebook *mb, enum mkt_pos_mode mode) {
    if (!mb) return;
    for (size_t i = 0; i < mb->n; i++)
        if (mb->v[i].mode >= 0) return;
    mb->last = mode;
}

enum mkt_pos_mode bybit_modebook_mode(const struct bybit_modebook *mb, const char *symbol) {
    if (!mb) return MKT_PM_ONE_WAY;
    const struct bybit_modeent *e = mb_find(mb, symbol);
    if (e && e->mode >= 0) return (enum mkt_pos_mode)e->mode;
    return mb->last;
}

/* ================================================================ classification */

static int64_t header_i64(const struct rest_resp *r, const char *name) {
    size_t l = 0;
    const char *v = rest_resp_header(r, name, &l);
    if (!v || l == 0 || l > 18) return -1;
    int64_t x = 0;
    for (size_t i = 0; i < l; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

void bybit_usage_from_resp(const struct rest_resp *r, int64_t now_ms, struct exch_bybit_usage *u) {
    u->limit = header_i64(r, "X-Bapi-Limit");
    u->remaining = header_i64(r, "X-Bapi-Limit-Status");
    u->reset_ms = header_i64(r, "X-Bapi-Limit-Reset-Timestamp");
    u->updated_ms = now_ms;
}

#define RESET_WAIT_MAX_MS 60000
#define IP_BAN_WAIT_MS 600000 /* B7: after HTTP 403 "access too frequent", wait >= 10 min */

static int64_t throttle_wait_ms(const struct rest_resp *r, int64_t now_ms) {
    if (r->retry_after_ms > 0) return r->retry_after_ms;
    int64_t reset = header_i64(r, "X-Bapi-Limit-Reset-Timestamp");
    if (reset > now_ms) return reset - now_ms > RESET_WAIT_MAX_MS ? RESET_WAIT_MAX_MS : reset - now_ms;
    if (r->http_status == 403) return IP_BAN_WAIT_MS;
    return 0;
}

void bybit_classify_order(const struct rest_resp *r, enum bybit_op op, const char *want_client_id,
                          int64_t now_ms, struct exch_order_result *out) {
    char emsg[sizeof out->error_msg];
    int code = 0;
    memset(out, 0, sizeof *out);
    out->outcome = EXCH_UNKNOWN;
    if (want_client_id) snprintf(out->client_id, sizeof out->client_id, "%s", want_client_id);
    out->http_status = r->http_status;
    out->sent_ns = r->sent_ns;

    if (r->err != 0) {
        if (!r->maybe_sent && op == BYBIT_OP_PLACE) {
            out->outcome = EXCH_REJECTED;
            out->http_status = 0;
            ru_seterr(out->error_msg, sizeof out->error_msg, "not sent: %s", r->error);
        } else {
            ru_seterr(out->error_msg, sizeof out->error_msg, "%s%s",
                      op == BYBIT_OP_QUERY    ? "query failed: "
                      : op == BYBIT_OP_CANCEL ? "cancel outcome unknown: "
                                              : "outcome unknown: ",
                      r->error);
        }
        return;
    }

    long s = r->http_status;
    bool has_env = bybit_parse_envelope(r->body, r->body_len, &code, emsg, sizeof emsg) == 0;
    if (has_env) out->error_code = code;

    if (s == 429 || s == 403 || (has_env && throttle_code(code))) {
        ru_http_msg(out->error_msg, sizeof out->error_msg, r, has_env, code, emsg);
        out->outcome = EXCH_THROTTLED;
        out->retry_after_ms = throttle_wait_ms(r, now_ms);
        return;
    }
    if (s >= 500 || s == 408 || (has_env && unknown_code(code))) {
        ru_http_msg(out->error_msg, sizeof out->error_msg, r, has_env, code, emsg);
        return; /* UNKNOWN */
    }
    if (s >= 200 && s < 300) {
        if (!has_env) {
            char snip[64];
            ru_copy_text(snip, sizeof snip, r->body ? r->body : "", r->body_len);
            ru_seterr(out->error_msg, sizeof out->error_msg, "HTTP %ld, unreadable body: %s", s,
                      snip[0] ? snip : "(empty)");
            return; /* UNKNOWN: it may be an order we cannot see */
        }
        if (code == 0) {
            char perr[sizeof out->error_msg];
            struct exch_order_result o;
            int pr;
            if (op == BYBIT_OP_QUERY) {
                bool found = false;
                pr = bybit_parse_order_list(r->body, r->body_len, want_client_id, &found, &o, perr,
                                            sizeof perr);
                if (pr == 0 && !found) {
                    out->outcome = EXCH_NOT_FOUND;
                    ru_seterr(out->error_msg, sizeof out->error_msg,
                              "no order with orderLinkId %.36s",
                              want_client_id ? want_client_id : "");
                    return;
                }
            } else {
                pr = bybit_parse_ack(r->body, r->body_len, want_client_id, &o, perr, sizeof perr);
                if (pr == 0 && op == BYBIT_OP_CANCEL) o.status = EXCH_ST_CANCELED;
            }
            if (pr < 0) {
                ru_seterr(out->error_msg, sizeof out->error_msg, "HTTP %ld, unreadable body: %s", s,
                          perr);
                return;
            }
            o.http_status = s;
            o.sent_ns = r->sent_ns;
            *out = o;
            return;
        }
    }
    ru_http_msg(out->error_msg, sizeof out->error_msg, r, has_env, code, emsg);
    if (has_env && code != 0) {
        switch (op) {
        case BYBIT_OP_PLACE:
            out->outcome = code == BYBIT_RC_DUPLICATE_LINK_ID ? EXCH_UNKNOWN : EXCH_REJECTED;
            return;
        case BYBIT_OP_QUERY:
            out->outcome = code == BYBIT_RC_ORDER_NOT_EXISTS ? EXCH_NOT_FOUND : EXCH_UNKNOWN;
            return;
        case BYBIT_OP_CANCEL:
            out->outcome = code == BYBIT_RC_ORDER_NOT_EXISTS ? EXCH_NOT_FOUND : EXCH_REJECTED;
            return;
        }
    }
    if (s >= 400 && s < 500) {
        out->outcome = op == BYBIT_OP_QUERY ? EXCH_UNKNOWN : EXCH_REJECTED;
        return;
    }
    out->outcome = EXCH_UNKNOWN; /* 1xx / 3xx / nonsense */
}

bool bybit_status_from_resp(const struct rest_resp *r, struct exch_status *st) {
    char emsg[sizeof st->error_msg];
    int code = 0;
    memset(st, 0, sizeof *st);
    st->http_status = r->http_status;
    if (r->err != 0) {
        st->err = r->err;
        ru_seterr(st->error_msg, sizeof st->error_msg, "%s", r->error);
        return false;
    }
    long s = r->http_status;
    bool has_env = bybit_parse_envelope(r->body, r->body_len, &code, emsg, sizeof emsg) == 0;
    if (has_env) st->error_code = code;
    if (s >= 200 && s < 300 && has_env && code == 0) {
        st->error_code = 0;
        return true;
    }
    if (s >= 200 && s < 300 && !has_env) {
        char snip[64];
        ru_copy_text(snip, sizeof snip, r->body ? r->body : "", r->body_len);
        st->err = -EBADMSG;
        ru_seterr(st->error_msg, sizeof st->error_msg, "HTTP %ld, not a Bybit envelope: %s", s,
                  snip[0] ? snip : "(empty)");
        return false;
    }
    ru_http_msg(st->error_msg, sizeof st->error_msg, r, has_env, code, emsg);
    if (s == 429 || s == 403 || (has_env && throttle_code(code))) st->err = -EAGAIN;
    else st->err = -EREMOTEIO;
    return false;
}

/* ================================================================ adapter: calls in flight */

enum by_kind {
    BY_PLACE, BY_BATCH, BY_QUERY, BY_CANCEL, BY_INSTR, BY_POS, BY_TIME, BY_ACCOUNT, BY_TICKERS,
    BY_BOOK, BY_POS_MODE, BY_LEVERAGES, BY_SET_LEV, BY_FILLS,
};

#define FILLS_MAX_PAGES 2000

struct by_call {
    struct exch_account *a; /* one reference for the whole call (all its requests) */
    enum by_kind kind;
    int stage;
    union {
        exch_order_cb order;
        exch_batch_cb batch;
        exch_instruments_cb instr;
        exch_positions_cb pos;
        exch_time_cb time;
        exch_balance_cb bal;
        exch_tickers_cb tick;
        exch_book_tickers_cb book;
        exch_pos_mode_cb mode;
        exch_leverages_cb levs;
        exch_set_leverage_cb setlev;
        exch_fills_cb fills;
    } cb;
    void *ud;
    int64_t send_wall_us;
    char client_id[MKT_CLIENT_ID_MAX];
    char symbol[MKT_SYMBOL_MAX]; /* "" = none */
    int leverage;
    struct exch_order_result first; /* cancel: the cancel's own outcome while we query */
    size_t n;                       /* batch size */
    char batch_ids[BYBIT_BATCH_MAX][MKT_CLIENT_ID_MAX];
    /* pagination */
    char cursor[BYBIT_CURSOR_MAX];
    unsigned pages;
    char *acc; /* accumulated elements of acc_elem bytes */
    size_t acc_n, acc_cap, acc_elem;
    size_t skipped;
    char first_skip[200];
    /* fills */
    struct bybit_modebook *mb;
    int64_t since_ms, win_start, win_end, now_ms;
    size_t win_base;
    /* The request in flight as by_build makes it when it leaves the pool (after any rate-limit
     * wait), so the timestamp and signature are fresh; keyhdr is wiped after use. */
    struct {
        enum rest_method m;
        const char *path;
        bool sign;
        char *payload; /* query string (GET) or JSON body (POST), unsigned */
        size_t len;
        char url[URL_BUF];
        char keyhdr[600], tshdr[48], rwhdr[48], sighdr[96];
        const char *hdrs[6];
    } w;
};

static int64_t now_ms_wall(void) { return ru_wall_us() / 1000; }

static struct by_call *call_new(struct exch_account *a, enum by_kind kind, void *ud) {
    struct by_call *c = calloc(1, sizeof *c);
    if (c) {
        c->kind = kind;
        c->ud = ud;
        c->a = exch_account_ref(a);
    }
    return c;
}

static void call_free(struct by_call *c) {
    if (!c) return;
    explicit_bzero(c->w.keyhdr, sizeof c->w.keyhdr);
    free(c->w.payload);
    free(c->acc);
    bybit_modebook_free(c->mb);
    exch_account_unref(c->a);
    free(c);
}

static int acc_push(struct by_call *c, const void *elems, size_t n) {
    if (n == 0) return 0;
    if (c->acc_n + n > c->acc_cap) {
        size_t nc = c->acc_cap ? c->acc_cap : 64;
        while (nc < c->acc_n + n) nc *= 2;
        char *nv = realloc(c->acc, nc * c->acc_elem);
        if (!nv) return -ENOMEM;
        c->acc = nv;
        c->acc_cap = nc;
    }
    memcpy(c->acc + c->acc_n * c->acc_elem, elems, n * c->acc_elem);
    c->acc_n += n;
    return 0;
}

static void on_resp(void *ud, const struct rest_resp *r);

/* Rate-limit class of each Bybit endpoint (B7): orders first, then queries, market data as bulk;
 * the per-endpoint budget is keyed by the path. */
static struct exch_rl by_rl(const struct by_call *c, const char *path, enum rest_method m) {
    struct exch_rl rl = {.prio = RB_PRIO_QUERY, .ip_cost = 1, .endpoint = path,
                         .probe_ok = m == REST_GET};
    switch (c->kind) {
    case BY_PLACE:
    case BY_BATCH: rl.prio = RB_PRIO_ORDER; break;
    case BY_CANCEL: rl.prio = c->stage == 0 ? RB_PRIO_ORDER : RB_PRIO_QUERY; break;
    case BY_INSTR:
    case BY_TICKERS:
    case BY_BOOK: rl.prio = RB_PRIO_BULK; break;
    default: break;
    }
    return rl;
}

/* rest_req.build: the request as it leaves the pool. */
static int by_build(void *ud, struct rest_req *out) {
    struct by_call *c = ud;
    struct exch_account *a = c->a;
    char sig[BYBIT_SIG_HEX_LEN + 1];
    int n = 0, r;
    if (exch_account_is_closed(a)) return -ESHUTDOWN;
    if (c->w.sign) {
        int64_t ts = now_ms_wall() + exch_account_time_offset_ms(a);
        int rw = exch_account_recv_window_ms(a);
        if ((r = bybit_sign_rest(a, ts, rw, c->w.payload, c->w.len, sig)) < 0) return r;
        r = snprintf(c->w.keyhdr, sizeof c->w.keyhdr, "X-BAPI-API-KEY: %s", exch_account_api_key(a));
        if (r < 0 || (size_t)r >= sizeof c->w.keyhdr) return -ENOSPC;
        snprintf(c->w.tshdr, sizeof c->w.tshdr, "X-BAPI-TIMESTAMP: %" PRId64, ts);
        snprintf(c->w.rwhdr, sizeof c->w.rwhdr, "X-BAPI-RECV-WINDOW: %d", rw);
        snprintf(c->w.sighdr, sizeof c->w.sighdr, "X-BAPI-SIGN: %s", sig);
        c->w.hdrs[n++] = c->w.keyhdr;
        c->w.hdrs[n++] = c->w.tshdr;
        c->w.hdrs[n++] = c->w.rwhdr;
        c->w.hdrs[n++] = c->w.sighdr;
    }
    if (c->w.m != REST_GET) c->w.hdrs[n++] = "Content-Type: application/json";
    c->w.hdrs[n] = NULL;
    out->url = c->w.url;
    out->headers = c->w.hdrs;
    out->body = c->w.m != REST_GET ? c->w.payload : NULL;
    out->body_len = c->w.m != REST_GET ? c->w.len : 0;
    c->send_wall_us = ru_wall_us();
    return 0;
}

/* One request of call c. payload: the query string (GET) or JSON body (POST), signed when sign
 * (at departure, by_build). 0 (on_resp runs later) or a negative errno (nothing sent). */
static int by_send(struct by_call *c, enum rest_method m, const char *path, const char *payload,
                   size_t len, bool sign, bool no_resend) {
    struct exch_account *a = c->a;
    struct rest_pool *pool = exch_account_pool(a);
    int r;

    if (!pool) return -EINVAL;
    if (exch_account_is_closed(a)) return -ESHUTDOWN;
    if (m == REST_GET && len > 0)
        r = snprintf(c->w.url, sizeof c->w.url, "%s%s?%.*s", exch_account_rest_url(a), path,
                     (int)len, payload);
    else r = snprintf(c->w.url, sizeof c->w.url, "%s%s", exch_account_rest_url(a), path);
    if (r < 0 || (size_t)r >= sizeof c->w.url) return -ENOSPC;
    char *copy = malloc(len + 1);
    if (!copy) return -ENOMEM;
    if (len) memcpy(copy, payload, len);
    copy[len] = '\0';
    free(c->w.payload);
    c->w.payload = copy;
    c->w.len = len;
    c->w.m = m;
    c->w.path = path;
    c->w.sign = sign;

    struct rest_req req = {
        .method = m,
        .url = c->w.url,
        .timeout_ms = exch_account_timeout_ms(a),
        .no_resend = no_resend,
        .build = by_build,
        .exchange = "bybit-linear",
        .endpoint = path,
    };
    struct exch_rl rl = by_rl(c, path, m);
    if ((r = exch_limits_attach(a, &req, &rl)) < 0) return r;
    c->send_wall_us = ru_wall_us();
    return rest_pool_send(pool, &req, on_resp, c);
}

/* ---- order chains ---- */

static int send_query(struct by_call *c, bool history) {
    char qs[BYBIT_QS_MAX];
    int len = bybit_query_params(c->symbol, c->client_id, qs, sizeof qs);
    if (len < 0) return len;
    return by_send(c, REST_GET, history ? "/v5/order/history" : "/v5/order/realtime", qs,
                   (size_t)len, true, false);
}

/* true when the call is finished (the callback ran) */
static bool on_query_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_order_result q;
    bybit_classify_order(r, BYBIT_OP_QUERY, c->client_id, now_ms_wall(), &q);
    bool history = c->kind == BY_QUERY ? c->stage == 1 : c->stage == 2;
    if (q.outcome == EXCH_NOT_FOUND && !history) {
        c->stage++;
        int e = send_query(c, true);
        if (e == 0) return false;
        memset(&q, 0, sizeof q);
        q.outcome = EXCH_UNKNOWN;
        snprintf(q.client_id, sizeof q.client_id, "%s", c->client_id);
        ru_seterr(q.error_msg, sizeof q.error_msg, "query failed: order history: cannot send: %s",
                  strerror(-e));
    }
    if (c->kind == BY_CANCEL) {
        const struct exch_order_result *f = &c->first;
        if (q.outcome == EXCH_OK) {
            /* A cancel is asynchronous: right after our ack the order may still read open. */
            if (f->outcome == EXCH_OK &&
                (q.status == EXCH_ST_NEW || q.status == EXCH_ST_PARTIALLY_FILLED))
                q.status = EXCH_ST_CANCELED;
            c->cb.order(c->ud, &q);
        } else if (q.outcome == EXCH_NOT_FOUND && f->outcome != EXCH_OK) {
            c->cb.order(c->ud, &q);
        } else {
            c->cb.order(c->ud, f); /* the follow-up told us nothing better */
        }
        return true;
    }
    c->cb.order(c->ud, &q);
    return true;
}

static bool on_cancel_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_order_result res;
    bybit_classify_order(r, BYBIT_OP_CANCEL, c->client_id, now_ms_wall(), &res);
    bool follow = res.outcome == EXCH_OK ||
                  ((res.outcome == EXCH_NOT_FOUND || res.outcome == EXCH_REJECTED) &&
                   (res.error_code == BYBIT_RC_ORDER_NOT_EXISTS ||
                    res.error_code == BYBIT_RC_ORDER_FINISHED ||
                    res.error_code == BYBIT_RC_ORDER_CANCELLED));
    if (follow) {
        c->first = res;
        c->stage = 1;
        if (send_query(c, false) == 0) return false;
    }
    c->cb.order(c->ud, &res);
    return true;
}

static bool on_batch_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_order_result v[BYBIT_BATCH_MAX];
    const char *ids[BYBIT_BATCH_MAX];
    int code = -1;
    char emsg[160];
    for (size_t i = 0; i < c->n; i++) ids[i] = c->batch_ids[i];
    bool ok_env = r->err == 0 && r->http_status >= 200 && r->http_status < 300 &&
                  bybit_parse_envelope(r->body, r->body_len, &code, emsg, sizeof emsg) == 0 &&
                  code == 0;
    if (ok_env) {
        char err[160];
        if (bybit_parse_batch(r->body, r->body_len, ids, c->n, v, err, sizeof err) < 0) {
            for (size_t i = 0; i < c->n; i++) {
                memset(&v[i], 0, sizeof v[i]);
                v[i].outcome = EXCH_UNKNOWN;
                v[i].http_status = r->http_status;
                snprintf(v[i].client_id, sizeof v[i].client_id, "%s", ids[i]);
                ru_seterr(v[i].error_msg, sizeof v[i].error_msg, "HTTP %ld, unreadable body: %s",
                          r->http_status, err);
            }
        }
    } else {
        /* One answer for all of them: classified like a single place. */
        int64_t now = now_ms_wall();
        for (size_t i = 0; i < c->n; i++) bybit_classify_order(r, BYBIT_OP_PLACE, ids[i], now, &v[i]);
    }
    for (size_t i = 0; i < c->n; i++) v[i].sent_ns = r->sent_ns;
    c->cb.batch(c->ud, v, c->n);
    return true;
}

/* ---- paginated lists ---- */

static int send_page(struct by_call *c);

/* After a page: next page (false) or done (true). st gets an error if the guard trips. */
static bool next_page(struct by_call *c, const char *prev_cursor, unsigned max_pages,
                      struct exch_status *st) {
    if (!c->cursor[0]) return true;
    if (strcmp(c->cursor, prev_cursor) == 0) {
        st->err = -EBADMSG;
        ru_seterr(st->error_msg, sizeof st->error_msg, "pagination: the same cursor twice");
        return true;
    }
    if (++c->pages >= max_pages) {
        st->err = -EBADMSG;
        ru_seterr(st->error_msg, sizeof st->error_msg, "pagination: more than %u pages", max_pages);
        return true;
    }
    int e = send_page(c);
    if (e == 0) return false;
    ru_send_failed(st, e, "next page");
    return true;
}

static int positions_qs(struct by_call *c, bool by_symbol, char *qs, size_t cap) {
    int len = 0, r;
    if ((r = bybit_qs_add(qs, cap, 0, "category", BYBIT_CATEGORY)) < 0) return r;
    len = r;
    if (by_symbol) r = bybit_qs_add(qs, cap, (size_t)len, "symbol", c->symbol);
    else r = bybit_qs_add(qs, cap, (size_t)len, "settleCoin", BYBIT_SETTLE_COIN);
    if (r < 0) return r;
    len = r;
    if ((r = bybit_qs_add(qs, cap, (size_t)len, "limit", "200")) < 0) return r;
    len = r;
    if (c->cursor[0] && (r = bybit_qs_add(qs, cap, (size_t)len, "cursor", c->cursor)) < 0)
        return r;
    return r;
}

static int send_page(struct by_call *c) {
    char qs[BYBIT_QS_MAX];
    int len, r;
    switch (c->kind) {
    case BY_INSTR:
        if ((len = bybit_qs_add(qs, sizeof qs, 0, "category", BYBIT_CATEGORY)) < 0) return len;
        if ((len = bybit_qs_add(qs, sizeof qs, (size_t)len, "limit", "1000")) < 0) return len;
        if (c->cursor[0] && (len = bybit_qs_add(qs, sizeof qs, (size_t)len, "cursor", c->cursor)) < 0)
            return len;
        return by_send(c, REST_GET, "/v5/market/instruments-info", qs, (size_t)len, false, false);
    case BY_POS:
    case BY_LEVERAGES:
    case BY_POS_MODE:
        /* POS_MODE stage 1 probes one symbol's (flat) entries */
        if ((len = positions_qs(c, c->kind == BY_POS_MODE && c->stage == 1, qs, sizeof qs)) < 0)
            return len;
        return by_send(c, REST_GET, "/v5/position/list", qs, (size_t)len, true, false);
    case BY_FILLS:
        if (c->stage == 0) {
            if ((len = positions_qs(c, c->symbol[0] != '\0', qs, sizeof qs)) < 0) return len;
            return by_send(c, REST_GET, "/v5/position/list", qs, (size_t)len, true, false);
        }
        len = bybit_executions_params(c->symbol[0] ? c->symbol : NULL, c->win_start, c->win_end,
                                      c->cursor, qs, sizeof qs);
        if (len < 0) return len;
        r = by_send(c, REST_GET, "/v5/execution/list", qs, (size_t)len, true, false);
        return r;
    default:
        return -EINVAL;
    }
}

static bool on_instr_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct mkt_instrument *v = NULL;
    size_t n = 0, skipped = 0;
    char prev[BYBIT_CURSOR_MAX];
    snprintf(prev, sizeof prev, "%s", c->cursor);
    if (bybit_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = bybit_parse_instruments(r->body, r->body_len, &v, &n, &skipped, c->cursor,
                                         sizeof c->cursor, err, sizeof err);
        if (rc < 0) {
            ru_parse_failed(&st, rc, err);
        } else {
            if (skipped && c->skipped == 0) snprintf(c->first_skip, sizeof c->first_skip, "%s", err);
            c->skipped += skipped;
            if (acc_push(c, v, n) < 0) ru_parse_failed(&st, -ENOMEM, "instruments: out of memory");
            free(v);
            if (st.err == 0 && !next_page(c, prev, BYBIT_MAX_PAGES, &st)) return false;
        }
    }
    if (st.err == 0 && c->skipped > 0) {
        if (c->acc_n == 0) st.err = -EBADMSG;
        ru_seterr(st.error_msg, sizeof st.error_msg, "skipped %zu symbol(s); first: %s", c->skipped,
                  c->first_skip);
    }
    c->cb.instr(c->ud, &st, st.err ? NULL : (struct mkt_instrument *)c->acc,
                st.err ? 0 : c->acc_n);
    return true;
}

static int lev_cmp(const void *x, const void *y) {
    const struct exch_leverage *a = x, *b = y;
    int c = strcmp(a->symbol, b->symbol);
    if (c) return c;
    return (b->leverage > a->leverage) - (b->leverage < a->leverage);
}

/* positions pages for BY_POS, BY_LEVERAGES, BY_POS_MODE */
static bool on_pos_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct mkt_position *v = NULL;
    size_t n = 0;
    char prev[BYBIT_CURSOR_MAX];
    snprintf(prev, sizeof prev, "%s", c->cursor);
    if (bybit_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = bybit_parse_positions(r->body, r->body_len, &v, &n, c->cursor, sizeof c->cursor,
                                       err, sizeof err);
        if (rc < 0) {
            ru_parse_failed(&st, rc, err);
        } else {
            if (acc_push(c, v, n) < 0) ru_parse_failed(&st, -ENOMEM, "positions: out of memory");
            free(v);
            if (c->kind == BY_POS_MODE) {
                /* One page tells the mode; an account without positions: probe a symbol. */
                c->cursor[0] = '\0';
                if (st.err == 0 && c->acc_n == 0 && c->stage == 0) {
                    c->stage = 1;
                    snprintf(c->symbol, sizeof c->symbol, "%s", BYBIT_MODE_PROBE_SYMBOL);
                    int e = send_page(c);
                    if (e == 0) return false;
                    ru_send_failed(&st, e, "position mode probe");
                }
            } else if (st.err == 0 && !next_page(c, prev, BYBIT_MAX_PAGES, &st)) {
                return false;
            }
        }
    }
    struct mkt_position *all = (struct mkt_position *)c->acc;
    switch (c->kind) {
    case BY_POS: {
        size_t w = 0;
        for (size_t i = 0; st.err == 0 && i < c->acc_n; i++)
            if (!dec_is_zero(all[i].amount)) all[w++] = all[i];
        c->cb.pos(c->ud, &st, st.err || !w ? NULL : all, st.err ? 0 : w);
        break;
    }
    case BY_LEVERAGES: {
        struct exch_leverage *lv = NULL;
        size_t w = 0;
        if (st.err == 0 && c->acc_n > 0) {
            lv = calloc(c->acc_n, sizeof *lv);
            if (!lv) ru_parse_failed(&st, -ENOMEM, "leverage: out of memory");
        }
        for (size_t i = 0; lv && i < c->acc_n; i++) {
            if (all[i].leverage <= 0) continue;
            snprintf(lv[w].symbol, sizeof lv[w].symbol, "%s", all[i].symbol);
            lv[w++].leverage = all[i].leverage;
        }
        if (w > 1) {
            size_t k = 1;
            qsort(lv, w, sizeof *lv, lev_cmp);
            for (size_t i = 1; i < w; i++)
                if (strcmp(lv[i].symbol, lv[k - 1].symbol) != 0) lv[k++] = lv[i];
            w = k;
        }
        c->cb.levs(c->ud, &st, st.err || !w ? NULL : lv, st.err ? 0 : w);
        free(lv);
        break;
    }
    case BY_POS_MODE: {
        enum mkt_pos_mode m = MKT_PM_ONE_WAY;
        for (size_t i = 0; st.err == 0 && i < c->acc_n; i++)
            if (all[i].pos_side != MKT_PS_BOTH) m = MKT_PM_HEDGE;
        c->cb.mode(c->ud, &st, m);
        break;
    }
    default: break;
    }
    return true;
}

/* ---- fills ---- */

struct fill_key {
    int64_t t;
    size_t i;
};

static int fill_key_cmp(const void *x, const void *y) {
    const struct fill_key *a = x, *b = y;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Oldest first, stable: windows are already in order and each was reversed (Bybit lists newest
 * first); sorting by time with the position as tie-break keeps that order among equal times. */
static int fills_sort(struct by_call *c) {
    struct mkt_fill *f = (struct mkt_fill *)c->acc;
    size_t n = c->acc_n;
    if (n < 2) return 0;
    struct fill_key *k = malloc(n * sizeof *k);
    struct mkt_fill *out = malloc(n * sizeof *out);
    if (!k || !out) {
        free(k);
        free(out);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) k[i] = (struct fill_key){f[i].trade_time_ms, i};
    qsort(k, n, sizeof *k, fill_key_cmp);
    for (size_t i = 0; i < n; i++) out[i] = f[k[i].i];
    memcpy(f, out, n * sizeof *out);
    free(k);
    free(out);
    return 0;
}

static void fills_window(struct by_call *c) {
    int64_t end = c->win_start + BYBIT_EXEC_WINDOW_MS - 1;
    int64_t lim = c->now_ms + 5000; /* a little ahead: our clock offset is an estimate */
    if (end > lim) end = lim;
    if (end < c->win_start) end = c->win_start;
    c->win_end = end;
    c->cursor[0] = '\0';
    c->win_base = c->acc_n;
}

static bool on_fills_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_status st;
    char prev[BYBIT_CURSOR_MAX];
    snprintf(prev, sizeof prev, "%s", c->cursor);
    if (!bybit_status_from_resp(r, &st)) goto done;
    char err[sizeof st.error_msg];
    if (c->stage == 0) {
        struct mkt_position *v = NULL;
        size_t n = 0;
        int rc = bybit_parse_positions(r->body, r->body_len, &v, &n, c->cursor, sizeof c->cursor,
                                       err, sizeof err);
        if (rc < 0) {
            ru_parse_failed(&st, rc, err);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            (void)bybit_modebook_note(c->mb, v[i].symbol, (int)v[i].pos_side, 0, NULL);
        free(v);
        if (!next_page(c, prev, BYBIT_MAX_PAGES, &st)) return false;
        if (st.err) goto done;
        c->stage = 1;
        c->pages = 0;
        fills_window(c);
        int e = send_page(c);
        if (e == 0) return false;
        ru_send_failed(&st, e, "execution list");
        goto done;
    }
    {
        struct bybit_exec *x = NULL;
        size_t n = 0;
        int rc = bybit_parse_executions(r->body, r->body_len, &x, &n, c->cursor, sizeof c->cursor,
                                        err, sizeof err);
        if (rc < 0) {
            ru_parse_failed(&st, rc, err);
            goto done;
        }
        const char *acct = exch_account_name(c->a);
        for (size_t i = 0; i < n && st.err == 0; i++) {
            if (x[i].fill.trade_time_ms < c->since_ms) continue;
            bybit_exec_apply_mode(&x[i], bybit_modebook_mode(c->mb, x[i].fill.symbol));
            snprintf(x[i].fill.account, sizeof x[i].fill.account, "%s", acct);
            x[i].fill.received_ns = 0;
            if (acc_push(c, &x[i].fill, 1) < 0)
                ru_parse_failed(&st, -ENOMEM, "fills: out of memory");
        }
        free(x);
        if (st.err) goto done;
        if (!next_page(c, prev, FILLS_MAX_PAGES, &st)) return false;
        if (st.err) goto done;
        /* window complete: Bybit listed it newest first */
        struct mkt_fill *f = (struct mkt_fill *)c->acc;
        for (size_t i = c->win_base, j = c->acc_n; j > 0 && i + 1 < j; i++, j--) {
            struct mkt_fill t = f[i];
            f[i] = f[j - 1];
            f[j - 1] = t;
        }
        if (c->win_end < c->now_ms) {
            c->win_start = c->win_end + 1;
            fills_window(c);
            if (++c->pages >= FILLS_MAX_PAGES) {
                st.err = -EBADMSG;
                ru_seterr(st.error_msg, sizeof st.error_msg, "pagination: more than %u pages",
                          FILLS_MAX_PAGES);
                goto done;
            }
            int e = send_page(c);
            if (e == 0) return false;
            ru_send_failed(&st, e, "execution list");
            goto done;
        }
        if (fills_sort(c) < 0) ru_parse_failed(&st, -ENOMEM, "fills: out of memory");
    }
done:
    c->cb.fills(c->ud, &st, st.err || !c->acc_n ? NULL : (struct mkt_fill *)c->acc,
                st.err ? 0 : c->acc_n);
    return true;
}

/* ---- single-shot calls ---- */

static bool on_time_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_status st;
    int64_t server_ms = 0, offset = 0;
    if (bybit_status_from_resp(r, &st)) {
        if (bybit_parse_server_time(r->body, r->body_len, &server_ms, st.error_msg,
                                    sizeof st.error_msg) < 0) {
            st.err = -EBADMSG;
        } else {
            st.err = ru_time_offset(r, c->send_wall_us, server_ms, &offset, st.error_msg,
                                    sizeof st.error_msg);
            if (!st.err && !exch_account_is_closed(c->a)) exch_account_set_time_offset_ms(c->a, offset);
        }
    }
    c->cb.time(c->ud, &st, st.err ? 0 : offset);
    return true;
}

static bool on_account_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_status st;
    struct exch_balance b;
    memset(&b, 0, sizeof b);
    if (bybit_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = bybit_parse_wallet(r->body, r->body_len, &b, err, sizeof err);
        if (rc < 0) ru_parse_failed(&st, rc, err);
    }
    c->cb.bal(c->ud, &st, st.err ? NULL : &b);
    return true;
}

static bool on_tickers_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_status st;
    void *v = NULL;
    size_t n = 0;
    if (bybit_status_from_resp(r, &st)) {
        char err[sizeof st.error_msg];
        int rc = c->kind == BY_TICKERS
                     ? bybit_parse_tickers(r->body, r->body_len, (struct exch_ticker **)&v, &n, err,
                                           sizeof err)
                     : bybit_parse_book_tickers(r->body, r->body_len,
                                                (struct exch_book_ticker **)&v, &n, err, sizeof err);
        if (rc < 0) ru_parse_failed(&st, rc, err);
    }
    if (c->kind == BY_TICKERS) c->cb.tick(c->ud, &st, st.err ? NULL : v, st.err ? 0 : n);
    else c->cb.book(c->ud, &st, st.err ? NULL : v, st.err ? 0 : n);
    free(v);
    return true;
}

static bool on_set_lev_resp(struct by_call *c, const struct rest_resp *r) {
    struct exch_status st;
    if (!bybit_status_from_resp(r, &st) && st.err == -EREMOTEIO &&
        st.error_code == BYBIT_RC_LEVERAGE_NOT_MODIFIED && r->http_status >= 200 &&
        r->http_status < 300) {
        /* "Set leverage has not been modified": it already is what we asked for. */
        memset(&st, 0, sizeof st);
        st.http_status = r->http_status;
    }
    c->cb.setlev(c->ud, &st, c->symbol, st.err ? 0 : c->leverage);
    return true;
}

static void on_resp(void *ud, const struct rest_resp *r) {
    struct by_call *c = ud;
    bool done = true;
    if (!exch_account_is_closed(c->a)) {
        struct exch_bybit_usage u;
        int code = 0;
        bybit_usage_from_resp(r, now_ms_wall(), &u);
        exch_account_note_bybit_usage(c->a, &u);
        /* 10006 comes with HTTP 200: the pool cannot see it, so the endpoint's budget is told */
        if (r->err == 0 && memmem(r->body, r->body_len, "10006", 5) &&
            bybit_parse_envelope(r->body, r->body_len, &code, NULL, 0) == 0 &&
            code == BYBIT_RC_TOO_MANY_VISITS)
            exch_limits_throttled(c->a, c->w.path, r->retry_after_ms > 0 ? r->retry_after_ms : 0,
                                  u.reset_ms > 0 ? u.reset_ms : 0);
    }
    switch (c->kind) {
    case BY_PLACE: {
        struct exch_order_result res;
        bybit_classify_order(r, BYBIT_OP_PLACE, c->client_id, now_ms_wall(), &res);
        c->cb.order(c->ud, &res);
        break;
    }
    case BY_BATCH: done = on_batch_resp(c, r); break;
    case BY_QUERY: done = on_query_resp(c, r); break;
    case BY_CANCEL: done = c->stage == 0 ? on_cancel_resp(c, r) : on_query_resp(c, r); break;
    case BY_INSTR: done = on_instr_resp(c, r); break;
    case BY_POS:
    case BY_LEVERAGES:
    case BY_POS_MODE: done = on_pos_resp(c, r); break;
    case BY_TIME: done = on_time_resp(c, r); break;
    case BY_ACCOUNT: done = on_account_resp(c, r); break;
    case BY_TICKERS:
    case BY_BOOK: done = on_tickers_resp(c, r); break;
    case BY_SET_LEV: done = on_set_lev_resp(c, r); break;
    case BY_FILLS: done = on_fills_resp(c, r); break;
    }
    if (done) call_free(c);
}

/* ================================================================ entry points */

/* Sends c's first request; on failure frees c and returns the error (the callback never runs). */
static int start(struct by_call *c, int r) {
    if (r < 0) call_free(c);
    return r;
}

int bybit_place_order(struct exch_account *a, const struct exch_order_req *req, exch_order_cb cb,
                      void *ud) {
    char body[BYBIT_BODY_MAX], err[160];
    if (!a || !req || !cb) return -EINVAL;
    int len = bybit_order_json(req, body, sizeof body, err, sizeof err);
    if (len < 0) return len;
    struct by_call *c = call_new(a, BY_PLACE, ud);
    if (!c) return -ENOMEM;
    c->cb.order = cb;
    snprintf(c->client_id, sizeof c->client_id, "%s", req->client_id);
    return start(c, by_send(c, REST_POST, "/v5/order/create", body, (size_t)len, true, true));
}

int bybit_place_batch(struct exch_account *a, const struct exch_order_req *reqs, size_t n,
                      exch_batch_cb cb, void *ud) {
    char body[BYBIT_BODY_MAX], err[160];
    if (!a || !reqs || !cb || n == 0 || n > BYBIT_BATCH_MAX) return -EINVAL;
    int len = bybit_batch_json(reqs, n, body, sizeof body, err, sizeof err);
    if (len < 0) return len;
    struct by_call *c = call_new(a, BY_BATCH, ud);
    if (!c) return -ENOMEM;
    c->cb.batch = cb;
    c->n = n;
    for (size_t i = 0; i < n; i++)
        snprintf(c->batch_ids[i], sizeof c->batch_ids[i], "%s", reqs[i].client_id);
    return start(c, by_send(c, REST_POST, "/v5/order/create-batch", body, (size_t)len, true, true));
}

static struct by_call *order_call(struct exch_account *a, enum by_kind kind, const char *symbol,
                                  const char *client_id, exch_order_cb cb, void *ud, int *err) {
    if (!a || !cb || !symbol_ok(symbol) || !client_id || !client_id_valid(client_id)) {
        *err = -EINVAL;
        return NULL;
    }
    struct by_call *c = call_new(a, kind, ud);
    if (!c) {
        *err = -ENOMEM;
        return NULL;
    }
    c->cb.order = cb;
    snprintf(c->symbol, sizeof c->symbol, "%s", symbol);
    snprintf(c->client_id, sizeof c->client_id, "%s", client_id);
    return c;
}

int bybit_query_order(struct exch_account *a, const char *symbol, const char *client_id,
                      exch_order_cb cb, void *ud) {
    int e;
    struct by_call *c = order_call(a, BY_QUERY, symbol, client_id, cb, ud, &e);
    if (!c) return e;
    return start(c, send_query(c, false));
}

int bybit_cancel_order(struct exch_account *a, const char *symbol, const char *client_id,
                       exch_order_cb cb, void *ud) {
    char body[BYBIT_BODY_MAX];
    int e;
    struct by_call *c = order_call(a, BY_CANCEL, symbol, client_id, cb, ud, &e);
    if (!c) return e;
    int len = bybit_cancel_json(symbol, client_id, body, sizeof body);
    if (len < 0) return start(c, len);
    /* A cancel is safe to repeat, but a curl re-send would blur which answer we read. */
    return start(c, by_send(c, REST_POST, "/v5/order/cancel", body, (size_t)len, true, true));
}

static int list_call(struct exch_account *a, enum by_kind kind, size_t elem, void *ud,
                     struct by_call **out) {
    if (!a) return -EINVAL;
    struct by_call *c = call_new(a, kind, ud);
    if (!c) return -ENOMEM;
    c->acc_elem = elem;
    *out = c;
    return 0;
}

int bybit_fetch_instruments(struct exch_account *a, exch_instruments_cb cb, void *ud) {
    struct by_call *c;
    if (!cb) return -EINVAL;
    int r = list_call(a, BY_INSTR, sizeof(struct mkt_instrument), ud, &c);
    if (r < 0) return r;
    c->cb.instr = cb;
    return start(c, send_page(c));
}

int bybit_fetch_positions(struct exch_account *a, exch_positions_cb cb, void *ud) {
    struct by_call *c;
    if (!cb) return -EINVAL;
    int r = list_call(a, BY_POS, sizeof(struct mkt_position), ud, &c);
    if (r < 0) return r;
    c->cb.pos = cb;
    return start(c, send_page(c));
}

int bybit_fetch_leverage(struct exch_account *a, exch_leverages_cb cb, void *ud) {
    struct by_call *c;
    if (!cb) return -EINVAL;
    int r = list_call(a, BY_LEVERAGES, sizeof(struct mkt_position), ud, &c);
    if (r < 0) return r;
    c->cb.levs = cb;
    return start(c, send_page(c));
}

int bybit_fetch_position_mode(struct exch_account *a, exch_pos_mode_cb cb, void *ud) {
    struct by_call *c;
    if (!cb) return -EINVAL;
    int r = list_call(a, BY_POS_MODE, sizeof(struct mkt_position), ud, &c);
    if (r < 0) return r;
    c->cb.mode = cb;
    return start(c, send_page(c));
}

static int simple_call(struct exch_account *a, enum by_kind kind, void *ud,
                       struct by_call **out) {
    if (!a) return -EINVAL;
    struct by_call *c = call_new(a, kind, ud);
    if (!c) return -ENOMEM;
    *out = c;
    return 0;
}

int bybit_sync_time(struct exch_account *a, exch_time_cb cb, void *ud) {
    struct by_call *c;
    if (!cb) return -EINVAL;
    int r = simple_call(a, BY_TIME, ud, &c);
    if (r < 0) return r;
    c->cb.time = cb;
    return start(c, by_send(c, REST_GET, "/v5/market/time", "", 0, false, false));
}

int bybit_fetch_account(struct exch_account *a, exch_balance_cb cb, void *ud) {
    static const char qs[] = "accountType=UNIFIED";
    struct by_call *c;
    if (!cb) return -EINVAL;
    int r = simple_call(a, BY_ACCOUNT, ud, &c);
    if (r < 0) return r;
    c->cb.bal = cb;
    return start(c, by_send(c, REST_GET, "/v5/account/wallet-balance", qs, sizeof qs - 1, true,
                            false));
}

int bybit_fetch_tickers(struct exch_account *a, exch_tickers_cb cb, void *ud) {
    static const char qs[] = "category=" BYBIT_CATEGORY;
    struct by_call *c;
    if (!cb) return -EINVAL;
    int r = simple_call(a, BY_TICKERS, ud, &c);
    if (r < 0) return r;
    c->cb.tick = cb;
    return start(c, by_send(c, REST_GET, "/v5/market/tickers", qs, sizeof qs - 1, false, false));
}

int bybit_fetch_book_tickers(struct exch_account *a, exch_book_tickers_cb cb, void *ud) {
    static const char qs[] = "category=" BYBIT_CATEGORY;
    struct by_call *c;
    if (!cb) return -EINVAL;
    int r = simple_call(a, BY_BOOK, ud, &c);
    if (r < 0) return r;
    c->cb.book = cb;
    return start(c, by_send(c, REST_GET, "/v5/market/tickers", qs, sizeof qs - 1, false, false));
}

int bybit_set_leverage(struct exch_account *a, const char *symbol, int leverage,
                       exch_set_leverage_cb cb, void *ud) {
    char body[BYBIT_BODY_MAX];
    struct by_call *c;
    if (!a || !cb) return -EINVAL;
    int len = bybit_leverage_json(symbol, leverage, body, sizeof body);
    if (len < 0) return len;
    int r = simple_call(a, BY_SET_LEV, ud, &c);
    if (r < 0) return r;
    c->cb.setlev = cb;
    c->leverage = leverage;
    snprintf(c->symbol, sizeof c->symbol, "%s", symbol);
    return start(c, by_send(c, REST_POST, "/v5/position/set-leverage", body, (size_t)len, true,
                            false));
}

int bybit_fetch_fills(struct exch_account *a, const char *symbol, int64_t since_ms,
                      exch_fills_cb cb, void *ud) {
    struct by_call *c;
    if (!cb || since_ms < 0 || (symbol && !symbol_ok(symbol))) return -EINVAL;
    int r = list_call(a, BY_FILLS, sizeof(struct mkt_fill), ud, &c);
    if (r < 0) return r;
    c->cb.fills = cb;
    if (!(c->mb = bybit_modebook_new())) return start(c, -ENOMEM);
    if (symbol) snprintf(c->symbol, sizeof c->symbol, "%s", symbol);
    c->now_ms = now_ms_wall() + exch_account_time_offset_ms(a);
    c->since_ms = since_ms;
    c->win_start = since_ms;
    if (c->win_start < c->now_ms - BYBIT_EXEC_HISTORY_MS) c->win_start = c->now_ms - BYBIT_EXEC_HISTORY_MS;
    return start(c, send_page(c));
}
