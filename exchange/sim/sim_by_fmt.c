#include "sim_by_fmt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sim_bn_fmt.h"

static const dec_t QUANTUM8 = {1, 8};
/* Maintenance margin rate shown (bookkeeping only, like the Binance side's 0.4 %). */
static const dec_t MMR = {4, 3};

#define AUTO_PREFIX "sim-auto-"

static void kdec(struct sbuf *b, const char *key, dec_t d)
{
    sbuf_addc(b, ',');
    sbuf_add_key(b, key);
    sbuf_add_jdec(b, d);
}

static void kstr(struct sbuf *b, const char *key, const char *v)
{
    sbuf_addc(b, ',');
    sbuf_add_key(b, key);
    sbuf_add_jstr(b, v);
}

/* A number shown as a string ("1684738540559"). */
static void kistr(struct sbuf *b, const char *key, int64_t v)
{
    sbuf_addc(b, ',');
    sbuf_add_key(b, key);
    sbuf_addf(b, "\"%" PRId64 "\"", v);
}

static void kint(struct sbuf *b, const char *key, int64_t v)
{
    sbuf_addc(b, ',');
    sbuf_add_key(b, key);
    sbuf_add_i64(b, v);
}

static void kbool(struct sbuf *b, const char *key, bool v)
{
    sbuf_addc(b, ',');
    sbuf_add_key(b, key);
    sbuf_adds(b, v ? "true" : "false");
}

/* 8 hex digits of the symbol index, 12 decimal digits of the id (both wrap, never in practice). */
static void fmt_id(char out[SBYF_UUID_LEN + 1], const char *variant, size_t sym_idx, int64_t id)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%08x-0000-4000-%s-%012" PRIu64, (unsigned)(sym_idx & 0xffffffffu), variant,
             (uint64_t)id % UINT64_C(1000000000000));
    memcpy(out, buf, SBYF_UUID_LEN);
    out[SBYF_UUID_LEN] = '\0';
}

void sbyf_order_id(char out[SBYF_UUID_LEN + 1], const struct sbook_order *o)
{
    fmt_id(out, "8000", o->sym->idx, o->order_id);
}

void sbyf_exec_id(char out[SBYF_UUID_LEN + 1], size_t sym_idx, int64_t trade_id)
{
    fmt_id(out, "a000", sym_idx, trade_id);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sbyf_parse_id(const char *s, bool exec, size_t *sym_idx, int64_t *id)
{
    const char *mid = exec ? "-0000-4000-a000-" : "-0000-4000-8000-";
    size_t idx = 0;
    int64_t v = 0;
    if (!s || strlen(s) != SBYF_UUID_LEN || strncasecmp(s + 8, mid, 16) != 0)
        return -EINVAL;
    for (int i = 0; i < 8; i++) {
        int h = hexval(s[i]);
        if (h < 0)
            return -EINVAL;
        idx = idx * 16 + (size_t)h;
    }
    for (int i = 24; i < 36; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *sym_idx = idx;
    *id = v;
    return 0;
}

const char *sbyf_link_id(const struct sbook_order *o)
{
    return strncmp(o->client_id, AUTO_PREFIX, strlen(AUTO_PREFIX)) == 0 ? "" : o->client_id;
}

const char *sbyf_status(const struct sbook_order *o)
{
    switch (o->status) {
    case SBOOK_ST_NEW: return "New";
    case SBOOK_ST_PARTIALLY_FILLED: return "PartiallyFilled";
    case SBOOK_ST_FILLED: return "Filled";
    case SBOOK_ST_CANCELED:
    case SBOOK_ST_EXPIRED: return "Cancelled";
    }
    return "New";
}

int sbyf_position_idx(enum mkt_pos_side ps)
{
    return ps == MKT_PS_LONG ? 1 : ps == MKT_PS_SHORT ? 2 : 0;
}

static const char *side_name(enum sbook_side s)
{
    return s == SBOOK_BUY ? "Buy" : "Sell";
}

static const char *type_name(enum sbook_type t)
{
    return t == SBOOK_MARKET ? "Market" : "Limit";
}

static const char *tif_name(const struct sbook_order *o)
{
    if (o->type == SBOOK_MARKET)
        return "IOC"; /* Bybit runs market orders as IOC */
    switch (o->tif) {
    case SBOOK_GTC: return "GTC";
    case SBOOK_IOC: return "IOC";
    case SBOOK_FOK: return "FOK";
    case SBOOK_GTX: return "PostOnly";
    }
    return "GTC";
}

static const char *cancel_type(const struct sbook_order *o)
{
    if (o->status == SBOOK_ST_CANCELED)
        return "CancelByUser";
    if (o->status == SBOOK_ST_EXPIRED && o->expire_reason == 4)
        return "CancelByReduceOnly";
    return "UNKNOWN";
}

static const char *reject_reason(const struct sbook_order *o)
{
    if (o->status == SBOOK_ST_EXPIRED && (o->expire_reason == 2 || o->expire_reason == 9))
        return "EC_NoImmediateQtyToFill";
    return "EC_NoError";
}

void sbyf_begin(struct sbuf *b)
{
    sbuf_adds(b, "{\"retCode\":0,\"retMsg\":\"OK\",\"result\":");
}

void sbyf_end(struct sbuf *b, int64_t now_ms)
{
    sbuf_adds(b, ",\"retExtInfo\":{},\"time\":");
    sbuf_add_i64(b, now_ms);
    sbuf_addc(b, '}');
}

void sbyf_error(struct sbuf *b, int code, const char *msg, int64_t now_ms)
{
    sbuf_addf(b, "{\"retCode\":%d,\"retMsg\":", code);
    sbuf_add_jstr(b, msg);
    sbuf_adds(b, ",\"result\":{}");
    sbyf_end(b, now_ms);
}

void sbyf_order(struct sbuf *b, const struct sbook_order *o, bool ws)
{
    char id[SBYF_UUID_LEN + 1];
    dec_t leaves = DEC_ZERO, leaves_value = DEC_ZERO;
    bool open = sbook_order_is_open(o);
    if (open && dec_sub(o->orig_qty, o->exec_qty, &leaves) == 0 && o->type == SBOOK_LIMIT &&
        dec_mul(leaves, o->price, &leaves_value) < 0)
        leaves_value = DEC_ZERO;
    sbyf_order_id(id, o);

    sbuf_adds(b, "{\"orderId\":");
    sbuf_add_jstr(b, id);
    kstr(b, "orderLinkId", sbyf_link_id(o));
    if (ws)
        kstr(b, "category", "linear");
    kstr(b, "blockTradeId", "");
    kstr(b, "parentOrderLinkId", "");
    kstr(b, "symbol", o->sym->ins.symbol);
    kdec(b, "price", o->price);
    kdec(b, "qty", o->orig_qty);
    kstr(b, "side", side_name(o->side));
    kstr(b, "isLeverage", "");
    kint(b, "positionIdx", sbyf_position_idx(o->pos_side));
    kstr(b, "orderStatus", sbyf_status(o));
    kstr(b, "createType", "CreateByUser");
    kstr(b, "cancelType", cancel_type(o));
    kstr(b, "rejectReason", reject_reason(o));
    kdec(b, "avgPrice", o->avg_price);
    kdec(b, "leavesQty", leaves);
    kdec(b, "leavesValue", leaves_value);
    kdec(b, "cumExecQty", o->exec_qty);
    kdec(b, "cumExecValue", o->cum_quote);
    kstr(b, "cumExecFee", "0");
    if (ws) {
        kstr(b, "closedPnl", "0");
        kstr(b, "feeCurrency", "");
    }
    kstr(b, "timeInForce", tif_name(o));
    kstr(b, "orderType", type_name(o->type));
    kstr(b, "stopOrderType", "");
    kstr(b, "orderIv", "");
    kstr(b, "marketUnit", "");
    kstr(b, "triggerPrice", "0");
    kstr(b, "takeProfit", "0");
    kstr(b, "stopLoss", "0");
    kstr(b, "tpslMode", "");
    kstr(b, "ocoTriggerBy", "");
    kstr(b, "tpLimitPrice", "0");
    kstr(b, "slLimitPrice", "0");
    kstr(b, "tpTriggerBy", "");
    kstr(b, "slTriggerBy", "");
    kint(b, "triggerDirection", 0);
    kstr(b, "triggerBy", "");
    kstr(b, "lastPriceOnCreated", "");
    kstr(b, "basePrice", "");
    kbool(b, "reduceOnly", o->reduce_only);
    kbool(b, "closeOnTrigger", false);
    kstr(b, "placeType", "");
    kstr(b, "smpType", "None");
    kint(b, "smpGroup", 0);
    kstr(b, "smpOrderId", "");
    kistr(b, "createdTime", o->time_ms);
    kistr(b, "updatedTime", o->update_ms);
    sbuf_adds(b, ",\"cumFeeDetail\":{}");
    sbuf_addc(b, '}');
}

void sbyf_execution(struct sbuf *b, const struct sbyf_exec *x, bool ws)
{
    const struct sbook_order *o = x->order;
    char id[SBYF_UUID_LEN + 1];
    dec_t value;
    if (dec_mul(x->qty, x->price, &value) < 0)
        value = DEC_ZERO;

    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, o->sym->ins.symbol);
    if (ws)
        kstr(b, "category", "linear");
    sbyf_order_id(id, o);
    kstr(b, "orderId", id);
    kstr(b, "orderLinkId", sbyf_link_id(o));
    kstr(b, "side", side_name(o->side));
    kdec(b, "orderPrice", o->price);
    kdec(b, "orderQty", o->orig_qty);
    kdec(b, "leavesQty", x->leaves);
    kstr(b, "createType", "CreateByUser");
    kstr(b, "orderType", type_name(o->type));
    kstr(b, "stopOrderType", "UNKNOWN");
    kstr(b, "execFee", "0");
    sbyf_exec_id(id, o->sym->idx, x->trade_id);
    kstr(b, "execId", id);
    kdec(b, "execPrice", x->price);
    kdec(b, "execQty", x->qty);
    kdec(b, "execPnl", x->realized);
    kstr(b, "execType", "Trade");
    kdec(b, "execValue", value);
    kistr(b, "execTime", x->time_ms);
    kstr(b, "isLeverage", "0");
    kbool(b, "isMaker", x->maker);
    kstr(b, "feeRate", "0");
    kstr(b, "tradeIv", "");
    kstr(b, "markIv", "");
    kdec(b, "markPrice", x->mark);
    kdec(b, "indexPrice", x->mark);
    kstr(b, "underlyingPrice", "");
    kstr(b, "blockTradeId", "");
    kdec(b, "closedSize", x->closed);
    kint(b, "seq", x->seq);
    kstr(b, "marketUnit", "");
    kstr(b, "feeCurrency", "USDT");
    sbuf_adds(b, ",\"extraFees\":[]");
    sbuf_addc(b, '}');
}

void sbyf_position(struct sbuf *b, const struct sbook_account *a, const struct sbook_symbol *s,
                   enum mkt_pos_side ps, bool ws, int64_t seq)
{
    const struct sbook_position *p = sbook_position_side(a, s, ps);
    int lev = sbook_leverage(a, s);
    dec_t size = dec_abs(p->amount), value = DEC_ZERO, im = DEC_ZERO, mm = DEC_ZERO;
    int sign = dec_sign(p->amount);
    if (sign != 0 && dec_mul(size, p->entry_price, &value) == 0) {
        if (dec_muldiv_round_down(value, dec_from_int(1), dec_from_int(lev > 0 ? lev : 1), QUANTUM8, &im) < 0)
            im = DEC_ZERO;
        if (dec_muldiv_round_down(value, MMR, dec_from_int(1), QUANTUM8, &mm) < 0)
            mm = DEC_ZERO;
    }
    /* A hedge side's position is named by its side even when flat. */
    const char *side = sign > 0 ? "Buy" : sign < 0 ? "Sell" : "";

    sbuf_adds(b, "{\"positionIdx\":");
    sbuf_add_i64(b, sbyf_position_idx(ps));
    kint(b, "tradeMode", 0);
    kint(b, "riskId", 1);
    kstr(b, "riskLimitValue", "2000000");
    kstr(b, "symbol", s->ins.symbol);
    kstr(b, "side", side);
    kdec(b, "size", size);
    kdec(b, ws ? "entryPrice" : "avgPrice", p->entry_price);
    kdec(b, "breakEvenPrice", p->entry_price);
    sbuf_addf(b, ",\"leverage\":\"%d\"", lev);
    kdec(b, "positionValue", value);
    kdec(b, "positionBalance", im);
    kdec(b, "markPrice", s->price);
    kdec(b, "positionIM", im);
    kdec(b, "positionIMByMp", im);
    kdec(b, "positionMM", mm);
    kdec(b, "positionMMByMp", mm);
    kstr(b, "takeProfit", "0");
    kstr(b, "stopLoss", "0");
    kstr(b, "trailingStop", "0");
    kdec(b, "unrealisedPnl", sbnf_unrealized(s, p));
    kdec(b, "curRealisedPnl", p->realized);
    kdec(b, "cumRealisedPnl", p->realized);
    kstr(b, "sessionAvgPrice", "");
    kistr(b, "createdTime", p->update_ms);
    kistr(b, "updatedTime", p->update_ms);
    kstr(b, "tpslMode", "Full");
    kstr(b, "liqPrice", "");
    kstr(b, "bustPrice", "");
    if (ws)
        kstr(b, "category", "linear");
    kstr(b, "positionStatus", "Normal");
    kint(b, "adlRankIndicator", sign ? 2 : 0);
    kint(b, "autoAddMargin", 0);
    kstr(b, "leverageSysUpdatedTime", "");
    kstr(b, "mmrSysUpdatedTime", "");
    kint(b, "seq", seq);
    kbool(b, "isReduceOnly", false);
    sbuf_addc(b, '}');
}

int sbyf_wallet(struct sbuf *b, struct sbook *book, const struct sbook_account *a)
{
    struct sbnf_totals t;
    dec_t cum = DEC_ZERO;
    if (sbnf_totals(book, a, &t) < 0)
        return -ERANGE;
    for (size_t i = 0; i < sbook_nsymbols(book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(book, i);
        for (int k = 0; k < 3; k++)
            if (dec_add(cum, sbook_position_side(a, s, (enum mkt_pos_side)k)->realized, &cum) < 0)
                return -ERANGE;
    }
    dec_t avail = dec_sign(t.available) < 0 ? DEC_ZERO : t.available;
    sbuf_adds(b, "{\"accountType\":\"UNIFIED\"");
    kdec(b, "totalEquity", t.equity);
    kdec(b, "totalWalletBalance", t.wallet);
    kdec(b, "totalMarginBalance", t.equity);
    kdec(b, "totalAvailableBalance", avail);
    kdec(b, "totalPerpUPL", t.unrealized);
    kdec(b, "totalInitialMargin", t.initial);
    kdec(b, "totalInitialMarginByMp", t.initial);
    kdec(b, "totalMaintenanceMargin", t.maint);
    kdec(b, "totalMaintenanceMarginByMp", t.maint);
    kstr(b, "accountIMRate", "0");
    kstr(b, "accountIMRateByMp", "0");
    kstr(b, "accountMMRate", "0");
    kstr(b, "accountMMRateByMp", "0");
    kstr(b, "accountLTV", "0");
    sbuf_adds(b, ",\"coin\":[{\"coin\":\"USDT\"");
    kdec(b, "equity", t.equity);
    kdec(b, "usdValue", t.equity);
    kdec(b, "walletBalance", t.wallet);
    kdec(b, "availableToWithdraw", avail);
    kstr(b, "availableToBorrow", "");
    kstr(b, "borrowAmount", "0");
    kstr(b, "accruedInterest", "0");
    kstr(b, "totalOrderIM", "0");
    kdec(b, "totalPositionIM", t.initial);
    kdec(b, "totalPositionMM", t.maint);
    kdec(b, "unrealisedPnl", t.unrealized);
    kdec(b, "cumRealisedPnl", cum);
    kstr(b, "bonus", "0");
    kbool(b, "collateralSwitch", true);
    kbool(b, "marginCollateral", true);
    kstr(b, "locked", "0");
    kstr(b, "spotHedgingQty", "0");
    kstr(b, "spotBorrow", "0");
    sbuf_adds(b, "}]}");
    return 0;
}

/* The symbol's base coin: the name without its USDT (or USDC/USD) suffix. */
static void base_coin(const char *sym, char *out, size_t n)
{
    static const char *const quotes[] = {"USDT", "USDC", "USD"};
    size_t l = strlen(sym);
    for (size_t i = 0; i < 3; i++) {
        size_t ql = strlen(quotes[i]);
        if (l > ql && strcmp(sym + l - ql, quotes[i]) == 0) {
            snprintf(out, n, "%.*s", (int)(l - ql), sym);
            return;
        }
    }
    snprintf(out, n, "%s", sym);
}

void sbyf_instrument(struct sbuf *b, const struct sbook_symbol *s)
{
    const struct mkt_instrument *in = &s->ins;
    char base[MKT_SYMBOL_MAX];
    /* Rules that are off in the book (0) get a value that never binds. */
    dec_t maxq = dec_sign(in->max_qty) > 0 ? in->max_qty : dec_from_int(1000000000);
    dec_t maxmq = dec_sign(in->mkt_max_qty) > 0 ? in->mkt_max_qty : maxq;
    dec_t minp = dec_sign(in->min_price) > 0 ? in->min_price : in->tick;
    dec_t maxp = dec_sign(in->max_price) > 0 ? in->max_price : dec_from_int(1000000000);
    base_coin(in->symbol, base, sizeof(base));

    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, in->symbol);
    kint(b, "symbolId", (int64_t)s->idx + 1);
    kstr(b, "contractType", "LinearPerpetual");
    kstr(b, "status", "Trading");
    kstr(b, "baseCoin", base);
    kstr(b, "quoteCoin", "USDT");
    kstr(b, "launchTime", "1585526400000");
    kstr(b, "deliveryTime", "0");
    kstr(b, "deliveryFeeRate", "");
    sbuf_addf(b, ",\"priceScale\":\"%d\"", s->price_precision);
    /* The simulator keeps integer leverage: the step says so. */
    sbuf_addf(b, ",\"leverageFilter\":{\"minLeverage\":\"1\",\"maxLeverage\":\"%d.00\",\"leverageStep\":\"1\"}",
              SBOOK_MAX_LEVERAGE);
    sbuf_adds(b, ",\"priceFilter\":{\"minPrice\":");
    sbuf_add_jdec(b, minp);
    kdec(b, "maxPrice", maxp);
    kdec(b, "tickSize", in->tick);
    sbuf_adds(b, "},\"lotSizeFilter\":{\"maxOrderQty\":");
    sbuf_add_jdec(b, maxq);
    kdec(b, "minOrderQty", in->min_qty);
    kdec(b, "qtyStep", in->step);
    kdec(b, "postOnlyMaxOrderQty", maxq);
    kdec(b, "maxMktOrderQty", maxmq);
    kdec(b, "minNotionalValue", in->min_notional);
    sbuf_adds(b, "},\"unifiedMarginTrade\":true,\"fundingInterval\":480,\"settleCoin\":\"USDT\","
                 "\"copyTrading\":\"both\",\"upperFundingRate\":\"0.00375\",\"lowerFundingRate\":\"-0.00375\","
                 "\"isPreListing\":false,\"preListingInfo\":null,"
                 "\"riskParameters\":{\"priceLimitRatioX\":\"0.01\",\"priceLimitRatioY\":\"0.02\"},"
                 "\"symbolType\":\"\",\"displayName\":\"\",\"forbidUplWithdrawal\":false}");
}

void sbyf_ticker(struct sbuf *b, const struct sbook_symbol *s, int64_t now_ms)
{
    /* A market without history or depth: every price is the current one. */
    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, s->ins.symbol);
    kdec(b, "lastPrice", s->price);
    kdec(b, "indexPrice", s->price);
    kdec(b, "markPrice", s->price);
    kdec(b, "prevPrice24h", s->price);
    kstr(b, "price24hPcnt", "0");
    kdec(b, "highPrice24h", s->price);
    kdec(b, "lowPrice24h", s->price);
    kdec(b, "prevPrice1h", s->price);
    kstr(b, "openInterest", "0");
    kstr(b, "openInterestValue", "0");
    kstr(b, "turnover24h", "0");
    kstr(b, "volume24h", "0");
    kstr(b, "fundingRate", "0");
    kistr(b, "nextFundingTime", (now_ms / 28800000 + 1) * 28800000);
    kstr(b, "predictedDeliveryPrice", "");
    kstr(b, "basisRate", "");
    kstr(b, "deliveryFeeRate", "");
    kstr(b, "deliveryTime", "0");
    kstr(b, "ask1Size", "1000");
    kdec(b, "bid1Price", s->price);
    kdec(b, "ask1Price", s->price);
    kstr(b, "bid1Size", "1000");
    kstr(b, "basis", "");
    kstr(b, "preOpenPrice", "");
    kstr(b, "preQty", "");
    kstr(b, "curPreListingPhase", "");
    kstr(b, "fundingIntervalHour", "8");
    kstr(b, "basisRateYear", "");
    kstr(b, "fundingCap", "0.005");
    sbuf_addc(b, '}');
}

static int emsg(char *msg, size_t n, int code, const char *text)
{
    snprintf(msg, n, "%s", text);
    return code;
}

int sbyf_map_err(enum sbook_err e, const struct sbook_symbol *s, char *msg, size_t n)
{
    char buf[160];
    (void)s;
    switch (e) {
    case SBOOK_OK: return emsg(msg, n, 0, "OK");
    case SBOOK_E_QTY_LE_ZERO: return emsg(msg, n, 10001, "Qty invalid");
    case SBOOK_E_QTY_PRECISION:
    case SBOOK_E_QTY_STEP: return emsg(msg, n, 10001, "Qty invalid: not a multiple of qtyStep");
    case SBOOK_E_QTY_MIN: return emsg(msg, n, 10001, "The number of contracts exceeds minimum limit allowed");
    case SBOOK_E_QTY_MAX: return emsg(msg, n, 10001, "The number of contracts exceeds maximum limit allowed");
    case SBOOK_E_PRICE_LE_ZERO:
    case SBOOK_E_PRICE_PRECISION:
    case SBOOK_E_PRICE_TICK: return emsg(msg, n, 10001, "Price invalid: not a multiple of tickSize");
    case SBOOK_E_PRICE_MIN:
    case SBOOK_E_PRICE_MAX: return emsg(msg, n, 110003, "Order price exceeds the allowable range.");
    case SBOOK_E_MIN_NOTIONAL: return emsg(msg, n, 110094, "Order notional value below the lower limit");
    case SBOOK_E_REDUCE_ONLY:
        return emsg(msg, n, 110017, "Reduce-only order has same side with current position or exceeds it");
    case SBOOK_E_DUP_CLIENT_ID: return emsg(msg, n, 110072, "OrderLinkedID is duplicate");
    case SBOOK_E_GTX_WOULD_TAKE:
        /* Bybit accepts the order and then cancels it (EC_PostOnlyWillTakeLiquidity); the book
         * refuses it up front, so it is answered as a parameter error. */
        return emsg(msg, n, 10001, "PostOnly order would take liquidity (EC_PostOnlyWillTakeLiquidity)");
    case SBOOK_E_BAD_FILLS: return emsg(msg, n, 10001, "params error: fills");
    case SBOOK_E_ARITH: return emsg(msg, n, 10016, "Server error.");
    case SBOOK_E_NOMEM: return emsg(msg, n, 10016, "Server error.");
    case SBOOK_E_POS_SIDE:
        return emsg(msg, n, 10001, "position idx not match position mode");
    case SBOOK_E_HEDGE_REDUCE_ONLY:
        return emsg(msg, n, 110017, "Reduce-only order has same side with current position");
    case SBOOK_E_MODE_SAME: return emsg(msg, n, 110025, "Position mode is not modified");
    case SBOOK_E_MODE_POSITION:
        return emsg(msg, n, 110024, "You have an existing position, so position mode cannot be switched");
    case SBOOK_E_MODE_ORDERS:
        return emsg(msg, n, 110028, "You have existing open orders, so position mode cannot be switched");
    }
    snprintf(buf, sizeof(buf), "unknown book error %d", (int)e);
    return emsg(msg, n, 10016, buf);
}
