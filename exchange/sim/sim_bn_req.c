#include "sim_bn_req.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "binance_sign.h"

static int err(char *msg, size_t n, int code, const char *fmt, const char *arg)
{
    snprintf(msg, n, fmt, arg);
    return code;
}

#define MANDATORY "Mandatory parameter '%s' was not sent, was empty/null, or malformed."

bool sbnr_parse_i64(const char *s, int64_t *out)
{
    int64_t v = 0;
    if (!s || !*s || strlen(s) > 18)
        return false;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

int sbnr_verify_signed(const char *secret, size_t secret_len, const char *query, size_t q_len,
                       const char *body, size_t b_len, const struct sp_list *params, int64_t now_ms,
                       char *msg, size_t n)
{
    struct sp_signed sg;
    int rc = sp_split_signature(query, q_len, body, b_len, &sg);
    if (rc == -ENOENT)
        return err(msg, n, -1102, MANDATORY, "signature");
    if (rc < 0)
        return err(msg, n, -1022, "%s", "Signature for this request is not valid.");

    /* The signed bytes are query + body back to back, so join them for the HMAC. */
    char stackbuf[4096];
    size_t plen = sg.q_len + sg.b_len;
    char *payload = plen <= sizeof(stackbuf) ? stackbuf : malloc(plen);
    if (!payload)
        return err(msg, n, -1000, "%s", "An unknown error occured while processing the request.");
    memcpy(payload, sg.q, sg.q_len);
    memcpy(payload + sg.q_len, sg.b, sg.b_len);
    bool ok = binance_sign_verify(secret, secret_len, payload, plen, sg.sig, sg.sig_len);
    if (payload != stackbuf)
        free(payload);
    if (!ok)
        return err(msg, n, -1022, "%s", "Signature for this request is not valid.");

    int64_t ts, rw = SBNR_RECV_WINDOW_DEFAULT;
    const char *tss = sp_get(params, "timestamp");
    if (!sbnr_parse_i64(tss, &ts))
        return err(msg, n, -1102, MANDATORY, "timestamp");
    const char *rws = sp_get(params, "recvWindow");
    if (rws && (!sbnr_parse_i64(rws, &rw) || rw <= 0 || rw > SBNR_RECV_WINDOW_MAX))
        return err(msg, n, -1130, "Data sent for parameter '%s' is not valid.", "recvWindow");
    if (ts >= now_ms + 1000)
        return err(msg, n, -1021, "%s", "Timestamp for this request was 1000ms ahead of the server's time.");
    if (now_ms - ts > rw)
        return err(msg, n, -1021, "%s", "Timestamp for this request is outside of the recvWindow.");
    return 0;
}

int sbnr_parse_order(const struct sp_list *p, struct sbook *book, struct sbnr_order *out, char *msg,
                     size_t n)
{
    const char *v;
    memset(out, 0, sizeof(*out));
    out->rq.source = SBOOK_SRC_REST;

    v = sp_get(p, "symbol");
    if (!v || !*v)
        return err(msg, n, -1102, MANDATORY, "symbol");
    out->rq.sym = sbook_symbol(book, v);
    if (!out->rq.sym)
        return err(msg, n, -1121, "%s", "Invalid symbol.");

    v = sp_get(p, "side");
    if (!v || !*v)
        return err(msg, n, -1102, MANDATORY, "side");
    if (strcmp(v, "BUY") == 0)
        out->rq.side = SBOOK_BUY;
    else if (strcmp(v, "SELL") == 0)
        out->rq.side = SBOOK_SELL;
    else
        return err(msg, n, -1117, "%s", "Invalid side.");

    v = sp_get(p, "type");
    if (!v || !*v)
        return err(msg, n, -1102, MANDATORY, "type");
    if (strcmp(v, "MARKET") == 0) {
        out->rq.type = SBOOK_MARKET;
    } else if (strcmp(v, "LIMIT") == 0) {
        out->rq.type = SBOOK_LIMIT;
    } else if (!strcmp(v, "STOP") || !strcmp(v, "STOP_MARKET") || !strcmp(v, "TAKE_PROFIT") ||
               !strcmp(v, "TAKE_PROFIT_MARKET") || !strcmp(v, "TRAILING_STOP_MARKET")) {
        return err(msg, n, -4120, "%s",
                   "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.");
    } else {
        return err(msg, n, -1116, "%s", "Invalid orderType.");
    }

    /* Whether the side fits the account's position mode is the book's call (-4061). */
    v = sp_get(p, "positionSide");
    out->rq.pos_side = MKT_PS_BOTH;
    if (v && *v) {
        if (!strcmp(v, "LONG"))
            out->rq.pos_side = MKT_PS_LONG;
        else if (!strcmp(v, "SHORT"))
            out->rq.pos_side = MKT_PS_SHORT;
        else if (strcmp(v, "BOTH") != 0)
            return err(msg, n, -4060, "%s", "Invalid position side.");
    }

    v = sp_get(p, "timeInForce");
    if (out->rq.type == SBOOK_LIMIT && (!v || !*v))
        return err(msg, n, -1102, MANDATORY, "timeInForce");
    if (v && *v) {
        if (!strcmp(v, "GTC"))
            out->rq.tif = SBOOK_GTC;
        else if (!strcmp(v, "IOC"))
            out->rq.tif = SBOOK_IOC;
        else if (!strcmp(v, "FOK"))
            out->rq.tif = SBOOK_FOK;
        else if (!strcmp(v, "GTX"))
            out->rq.tif = SBOOK_GTX;
        else
            return err(msg, n, -1115, "%s", "Invalid timeInForce.");
    }

    v = sp_get(p, "quantity");
    if (!v || !*v || dec_parse_cstr(v, &out->rq.qty) < 0)
        return err(msg, n, -1102, MANDATORY, "quantity");

    v = sp_get(p, "price");
    if (out->rq.type == SBOOK_LIMIT) {
        if (!v || !*v || dec_parse_cstr(v, &out->rq.price) < 0)
            return err(msg, n, -1102, MANDATORY, "price");
    }

    v = sp_get(p, "reduceOnly");
    out->reduce_only_sent = v && *v;
    if (v && *v) {
        if (!strcasecmp(v, "true"))
            out->rq.reduce_only = true;
        else if (strcasecmp(v, "false") != 0)
            return err(msg, n, -1130, "Data sent for parameter '%s' is not valid.", "reduceOnly");
    }

    v = sp_get(p, "closePosition");
    if (v && *v && strcasecmp(v, "false") != 0)
        return err(msg, n, -1130, "Data sent for parameter '%s' is not valid.", "closePosition");

    v = sp_get(p, "newClientOrderId");
    if (v) {
        if (!sbook_client_id_valid(v))
            return err(msg, n, -4015, "%s", "Client order id is not valid.");
        out->rq.client_id = v;
    }

    v = sp_get(p, "newOrderRespType");
    if (v && *v) {
        if (!strcmp(v, "ACK"))
            out->resp_type = SBNR_ACK;
        else if (!strcmp(v, "RESULT"))
            out->resp_type = SBNR_RESULT;
        else
            return err(msg, n, -1136, "%s", "Invalid newOrderRespType.");
    }
    return 0;
}
