#include "sim_by_req.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binance_sign.h" /* plain HMAC-SHA256 hex; Bybit's primitive is the same */

static int err(char *msg, size_t n, int code, const char *text)
{
    snprintf(msg, n, "%s", text);
    return code;
}

bool sbyr_parse_i64(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (!s || len == 0 || len > 18)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int sbyr_verify(const char *secret, size_t secret_len, const struct sbyr_auth *h, const char *payload,
                size_t payload_len, int64_t now_ms, char *msg, size_t n)
{
    int64_t ts, rw = SBYR_RECV_WINDOW_DEFAULT;
    if (!h->ts || !sbyr_parse_i64(h->ts, h->ts_len, &ts))
        return err(msg, n, 10001, "params error: X-BAPI-TIMESTAMP is missing or invalid");
    if (h->recv_window && (!sbyr_parse_i64(h->recv_window, h->recv_window_len, &rw) || rw <= 0))
        return err(msg, n, 10001, "params error: X-BAPI-RECV-WINDOW is invalid");
    if (!h->sign || h->sign_len == 0)
        return err(msg, n, 10004, "Error sign, please check your signature generation algorithm.");

    /* timestamp + key + recv_window + payload, exactly as sent. */
    size_t rwl = h->recv_window ? h->recv_window_len : 0;
    size_t plen = h->ts_len + h->key_len + rwl + payload_len;
    char stackbuf[4096];
    char *p = plen <= sizeof(stackbuf) ? stackbuf : malloc(plen);
    if (!p)
        return err(msg, n, 10016, "Server error.");
    memcpy(p, h->ts, h->ts_len);
    memcpy(p + h->ts_len, h->key, h->key_len);
    if (rwl)
        memcpy(p + h->ts_len + h->key_len, h->recv_window, rwl);
    if (payload_len)
        memcpy(p + h->ts_len + h->key_len + rwl, payload, payload_len);
    bool ok = binance_sign_verify(secret, secret_len, p, plen, h->sign, h->sign_len);
    if (p != stackbuf)
        free(p);
    if (!ok)
        return err(msg, n, 10004, "Error sign, please check your signature generation algorithm.");
    if (ts >= now_ms + 1000 || now_ms - rw > ts) {
        char m[200];
        snprintf(m, sizeof(m),
                 "invalid request, please check your server timestamp or recv_window param. "
                 "req_timestamp[%" PRId64 "],server_timestamp[%" PRId64 "],recv_window[%" PRId64 "]",
                 ts, now_ms, rw);
        return err(msg, n, 10002, m);
    }
    return 0;
}

int sbyr_verify_ws(const char *secret, size_t secret_len, int64_t expires, const char *sig, size_t sig_len,
                   int64_t now_ms)
{
    char payload[64];
    int l = snprintf(payload, sizeof(payload), "GET/realtime%" PRId64, expires);
    if (!binance_sign_verify(secret, secret_len, payload, (size_t)l, sig, sig_len))
        return -EACCES;
    if (expires <= now_ms)
        return -ETIMEDOUT;
    return 0;
}

bool sbyr_link_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-';
        if (!ok || n >= 36)
            return false;
    }
    return n >= 1;
}

/* A string member, NULL if absent or JSON null; *bad if present with another type. */
static const char *str_member(json_t *o, const char *key, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return NULL;
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

static int bad_param(char *msg, size_t n, const char *name)
{
    char m[160];
    snprintf(m, sizeof(m), "params error: %s invalid", name);
    return err(msg, n, 10001, m);
}

/* A decimal string field; absent -> *present false. */
static int dec_member(json_t *o, const char *key, const char **raw, dec_t *out, char *msg, size_t n)
{
    bool bad = false;
    const char *s = str_member(o, key, &bad);
    *raw = s;
    if (bad)
        return bad_param(msg, n, key);
    if (!s || !*s)
        return 0;
    if (dec_parse_cstr(s, out) < 0)
        return bad_param(msg, n, key);
    return 0;
}

int sbyr_parse_order(json_t *o, const char *category, struct sbook *book, enum mkt_pos_mode mode,
                     struct sbyr_order *out, char *msg, size_t n)
{
    bool bad = false;
    const char *v;
    memset(out, 0, sizeof(*out));
    out->rq.source = SBOOK_SRC_REST;
    out->position_idx = -1;
    if (!json_is_object(o))
        return err(msg, n, 10001, "params error: the order must be a JSON object");

    /* Raw values first, so the request log has them even if a check below fails. */
    out->symbol = str_member(o, "symbol", &bad);
    out->side = str_member(o, "side", &bad);
    out->type = str_member(o, "orderType", &bad);
    out->tif = str_member(o, "timeInForce", &bad);
    out->qty = str_member(o, "qty", &bad);
    out->price = str_member(o, "price", &bad);
    out->link_id = str_member(o, "orderLinkId", &bad);
    bad = false;
    json_t *ro = json_object_get(o, "reduceOnly");
    if (json_is_boolean(ro))
        out->reduce_only = json_is_true(ro) ? "true" : "false";
    json_t *pi = json_object_get(o, "positionIdx");
    if (json_is_integer(pi) && json_integer_value(pi) >= 0 && json_integer_value(pi) <= 9) {
        out->position_idx = (int)json_integer_value(pi);
    } else if (json_is_string(pi) && strlen(json_string_value(pi)) == 1 && json_string_value(pi)[0] >= '0' &&
               json_string_value(pi)[0] <= '9') {
        out->position_idx = json_string_value(pi)[0] - '0';
    } else if (pi && !json_is_null(pi)) {
        return bad_param(msg, n, "positionIdx");
    }

    if (!category) {
        category = str_member(o, "category", &bad);
        if (bad || !category || !*category)
            return err(msg, n, 10001, "params error: category is missing");
    }
    if (strcmp(category, "linear") != 0)
        return err(msg, n, 10001, "params error: the simulator serves category linear only");

    v = str_member(o, "symbol", &bad);
    if (bad || !v || !*v)
        return err(msg, n, 10001, "params error: symbol is missing");
    out->rq.sym = sbook_symbol(book, v);
    if (!out->rq.sym)
        return err(msg, n, 10001, "params error: symbol invalid");

    v = str_member(o, "side", &bad);
    if (bad || !v)
        return err(msg, n, 10001, "params error: side is missing");
    if (!strcmp(v, "Buy"))
        out->rq.side = SBOOK_BUY;
    else if (!strcmp(v, "Sell"))
        out->rq.side = SBOOK_SELL;
    else
        return bad_param(msg, n, "side");

    v = str_member(o, "orderType", &bad);
    if (bad || !v)
        return err(msg, n, 10001, "params error: orderType is missing");
    if (!strcmp(v, "Market"))
        out->rq.type = SBOOK_MARKET;
    else if (!strcmp(v, "Limit"))
        out->rq.type = SBOOK_LIMIT;
    else
        return bad_param(msg, n, "orderType");

    if (!out->qty || !*out->qty)
        return err(msg, n, 10001, "params error: qty is missing");
    int code = dec_member(o, "qty", &v, &out->rq.qty, msg, n);
    if (code)
        return code;

    if (out->rq.type == SBOOK_LIMIT) {
        if (!out->price || !*out->price)
            return err(msg, n, 10001, "params error: price is missing for a Limit order");
        if ((code = dec_member(o, "price", &v, &out->rq.price, msg, n)))
            return code;
    }

    out->rq.tif = SBOOK_GTC;
    if (out->tif && *out->tif && out->rq.type == SBOOK_LIMIT) {
        if (!strcmp(out->tif, "GTC"))
            out->rq.tif = SBOOK_GTC;
        else if (!strcmp(out->tif, "IOC"))
            out->rq.tif = SBOOK_IOC;
        else if (!strcmp(out->tif, "FOK"))
            out->rq.tif = SBOOK_FOK;
        else if (!strcmp(out->tif, "PostOnly"))
            out->rq.tif = SBOOK_GTX;
        else
            return bad_param(msg, n, "timeInForce");
    }

    if (ro && !json_is_null(ro) && !json_is_boolean(ro))
        return bad_param(msg, n, "reduceOnly");
    bool reduce = json_is_true(ro);

    static const char *const unsupported[] = {"triggerPrice", "takeProfit", "stopLoss", "tpLimitPrice",
                                              "slLimitPrice"};
    for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
        json_t *u = json_object_get(o, unsupported[i]);
        if (u && !(json_is_string(u) && (!*json_string_value(u) || !strcmp(json_string_value(u), "0"))) &&
            !json_is_null(u)) {
            char m[160];
            snprintf(m, sizeof(m), "params error: %s is not supported by the simulator", unsupported[i]);
            return err(msg, n, 10001, m);
        }
    }

    if (out->link_id && *out->link_id) {
        if (!sbyr_link_id_valid(out->link_id))
            return bad_param(msg, n, "orderLinkId");
        out->rq.client_id = out->link_id;
    }

    /* positionIdx: 0 one-way; 1 (Buy side) / 2 (Sell side) in hedge mode. */
    int pidx = out->position_idx < 0 ? 0 : out->position_idx;
    if (mode == MKT_PM_HEDGE) {
        if (pidx != 1 && pidx != 2)
            return err(msg, n, 10001, "position idx not match position mode");
        out->rq.pos_side = pidx == 1 ? MKT_PS_LONG : MKT_PS_SHORT;
        out->position_side = pidx == 1 ? "LONG" : "SHORT";
        /* A hedge side is closed by the opposite order; reduceOnly is allowed on that close only
         * (the book treats every hedge close as reducing). */
        bool closes = (pidx == 1 && out->rq.side == SBOOK_SELL) || (pidx == 2 && out->rq.side == SBOOK_BUY);
        if (reduce && !closes)
            return err(msg, n, 110017, "Reduce-only order has same side with current position");
        out->rq.reduce_only = false;
    } else {
        if (pidx != 0)
            return err(msg, n, 10001, "position idx not match position mode");
        out->rq.pos_side = MKT_PS_BOTH;
        out->position_side = out->position_idx < 0 ? NULL : "BOTH";
        out->rq.reduce_only = reduce;
    }
    return 0;
}
