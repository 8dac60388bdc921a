#include "sim_bn_fmt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const dec_t QUANTUM8 = {1, 8};

static const char *side_name(enum sbook_side s)
{
    return s == SBOOK_BUY ? "BUY" : "SELL";
}

static const char *type_name(enum sbook_type t)
{
    return t == SBOOK_MARKET ? "MARKET" : "LIMIT";
}

static const char *tif_name(enum sbook_tif t)
{
    switch (t) {
    case SBOOK_GTC: return "GTC";
    case SBOOK_IOC: return "IOC";
    case SBOOK_FOK: return "FOK";
    case SBOOK_GTX: return "GTX";
    }
    return "GTC";
}

static const char *exec_name(enum sbook_exec x)
{
    switch (x) {
    case SBOOK_X_NEW: return "NEW";
    case SBOOK_X_TRADE: return "TRADE";
    case SBOOK_X_CANCELED: return "CANCELED";
    case SBOOK_X_EXPIRED: return "EXPIRED";
    }
    return "NEW";
}

/* ,"key":"decimal" */
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

void sbnf_order(struct sbuf *b, const struct sbook_order *o, enum sbnf_order_view view)
{
    bool ack = view == SBNF_ACK;
    dec_t exec = ack ? DEC_ZERO : o->exec_qty;
    dec_t quote = ack ? DEC_ZERO : o->cum_quote;
    dec_t avg = ack ? DEC_ZERO : o->avg_price;
    const char *status = ack ? "NEW" : sbook_status_name(o->status);
    int64_t upd = ack ? o->time_ms : o->update_ms;

    sbuf_adds(b, "{\"clientOrderId\":");
    sbuf_add_jstr(b, o->client_id);
    if (view != SBNF_QUERY)
        kdec(b, "cumQty", exec);
    kdec(b, "cumQuote", quote);
    kdec(b, "executedQty", exec);
    kint(b, "orderId", o->order_id);
    kdec(b, "avgPrice", avg);
    kdec(b, "origQty", o->orig_qty);
    kdec(b, "price", o->price);
    kbool(b, "reduceOnly", o->reduce_only);
    kstr(b, "side", side_name(o->side));
    kstr(b, "positionSide", sbook_pos_side_name(o->pos_side));
    kstr(b, "status", status);
    kstr(b, "stopPrice", "0");
    kbool(b, "closePosition", false);
    kstr(b, "symbol", o->sym->ins.symbol);
    if (view == SBNF_QUERY)
        kint(b, "time", o->time_ms);
    kstr(b, "timeInForce", tif_name(o->tif));
    kstr(b, "type", type_name(o->type));
    kstr(b, "origType", type_name(o->type));
    kint(b, "updateTime", upd);
    kstr(b, "workingType", "CONTRACT_PRICE");
    kbool(b, "priceProtect", false);
    kstr(b, "priceMatch", "NONE");
    kstr(b, "selfTradePreventionMode", "EXPIRE_MAKER");
    kint(b, "goodTillDate", 0);
    sbuf_addc(b, '}');
}

void sbnf_order_update(struct sbuf *b, const struct sbook_event *ev)
{
    const struct sbook_order *o = ev->order;
    bool trade = ev->exec == SBOOK_X_TRADE;
    char er[8];

    sbuf_adds(b, "{\"e\":\"ORDER_TRADE_UPDATE\"");
    kint(b, "E", ev->time_ms);
    kint(b, "T", ev->time_ms);
    sbuf_adds(b, ",\"o\":{\"s\":");
    sbuf_add_jstr(b, o->sym->ins.symbol);
    kstr(b, "c", o->client_id);
    kstr(b, "S", side_name(o->side));
    kstr(b, "o", type_name(o->type));
    kstr(b, "f", tif_name(o->tif));
    kdec(b, "q", o->orig_qty);
    kdec(b, "p", o->price);
    kdec(b, "ap", o->avg_price);
    kstr(b, "sp", "0");
    kstr(b, "x", exec_name(ev->exec));
    kstr(b, "X", sbook_status_name(o->status));
    kint(b, "i", o->order_id);
    kdec(b, "l", trade ? ev->last_qty : DEC_ZERO);
    kdec(b, "z", o->exec_qty);
    kdec(b, "L", trade ? ev->last_price : DEC_ZERO);
    kstr(b, "N", "USDT");
    kdec(b, "n", trade ? ev->commission : DEC_ZERO);
    kint(b, "T", ev->time_ms);
    kint(b, "t", trade ? ev->trade_id : 0);
    kstr(b, "b", "0");
    kstr(b, "a", "0");
    kbool(b, "m", trade && o->maker);
    kbool(b, "R", o->reduce_only);
    kstr(b, "wt", "CONTRACT_PRICE");
    kstr(b, "ot", type_name(o->type));
    kstr(b, "ps", sbook_pos_side_name(o->pos_side));
    kbool(b, "cp", false);
    kstr(b, "AP", "0");
    kstr(b, "cr", "0");
    kbool(b, "pP", false);
    kint(b, "si", 0);
    kint(b, "ss", 0);
    kdec(b, "rp", trade ? ev->realized : DEC_ZERO);
    kstr(b, "V", "EXPIRE_MAKER");
    kstr(b, "pm", "NONE");
    kint(b, "gtd", 0);
    snprintf(er, sizeof(er), "%d", ev->exec == SBOOK_X_EXPIRED ? o->expire_reason : 0);
    kstr(b, "er", er);
    sbuf_adds(b, "}}");
}

dec_t sbnf_unrealized(const struct sbook_symbol *s, const struct sbook_position *p)
{
    dec_t d, up;
    if (dec_sign(p->amount) == 0 || dec_sub(s->price, p->entry_price, &d) < 0 ||
        dec_muldiv_round_down(d, p->amount, dec_from_int(1), QUANTUM8, &up) < 0)
        return DEC_ZERO;
    return up;
}

void sbnf_account_update(struct sbuf *b, const struct sbook_event *ev)
{
    const struct sbook_position *p = ev->pos;
    sbuf_adds(b, "{\"e\":\"ACCOUNT_UPDATE\"");
    kint(b, "E", ev->time_ms);
    kint(b, "T", ev->time_ms);
    sbuf_adds(b, ",\"a\":{\"m\":\"ORDER\",\"B\":[{\"a\":\"USDT\"");
    kdec(b, "wb", ev->balance);
    kdec(b, "cw", ev->balance);
    kstr(b, "bc", "0");
    sbuf_adds(b, "}],\"P\":[{\"s\":");
    sbuf_add_jstr(b, ev->sym->ins.symbol);
    kdec(b, "pa", p->amount);
    kdec(b, "ep", p->entry_price);
    kdec(b, "bep", p->entry_price);
    kdec(b, "cr", p->realized);
    kdec(b, "up", sbnf_unrealized(ev->sym, p));
    kstr(b, "mt", "cross");
    kstr(b, "iw", "0");
    kstr(b, "ps", sbook_pos_side_name(ev->pos_side));
    sbuf_adds(b, "}]}}");
}

void sbnf_balance_update(struct sbuf *b, const struct sbook_event *ev)
{
    sbuf_adds(b, "{\"e\":\"ACCOUNT_UPDATE\"");
    kint(b, "E", ev->time_ms);
    kint(b, "T", ev->time_ms);
    sbuf_adds(b, ",\"a\":{\"m\":\"ADJUSTMENT\",\"B\":[{\"a\":\"USDT\"");
    kdec(b, "wb", ev->balance);
    kdec(b, "cw", ev->balance);
    kdec(b, "bc", ev->balance_change);
    sbuf_adds(b, "}],\"P\":[]}}");
}

void sbnf_config_update(struct sbuf *b, const struct sbook_event *ev)
{
    sbuf_adds(b, "{\"e\":\"ACCOUNT_CONFIG_UPDATE\"");
    kint(b, "E", ev->time_ms);
    kint(b, "T", ev->time_ms);
    sbuf_adds(b, ",\"ac\":{\"s\":");
    sbuf_add_jstr(b, ev->sym->ins.symbol);
    kint(b, "l", ev->leverage);
    sbuf_adds(b, "}}");
}

void sbnf_event(struct sbuf *b, const struct sbook_event *ev)
{
    switch (ev->kind) {
    case SBOOK_EV_ORDER: sbnf_order_update(b, ev); break;
    case SBOOK_EV_ACCOUNT: sbnf_account_update(b, ev); break;
    case SBOOK_EV_BALANCE: sbnf_balance_update(b, ev); break;
    case SBOOK_EV_LEVERAGE: sbnf_config_update(b, ev); break;
    }
}

void sbnf_listen_key_expired(struct sbuf *b, int64_t now_ms, const char *key)
{
    sbuf_adds(b, "{\"e\":\"listenKeyExpired\"");
    kint(b, "E", now_ms);
    kstr(b, "listenKey", key);
    sbuf_addc(b, '}');
}

void sbnf_position_risk(struct sbuf *b, const struct sbook_symbol *s, const struct sbook_position *p,
                        enum mkt_pos_side ps)
{
    dec_t notional;
    if (dec_mul(p->amount, s->price, &notional) < 0)
        notional = DEC_ZERO;
    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, s->ins.symbol);
    kdec(b, "positionAmt", p->amount);
    kdec(b, "entryPrice", p->entry_price);
    kdec(b, "breakEvenPrice", p->entry_price);
    kdec(b, "markPrice", s->price);
    kdec(b, "unRealizedProfit", sbnf_unrealized(s, p));
    kstr(b, "liquidationPrice", "0");
    sbuf_adds(b, ",\"leverage\":");
    sbuf_addf(b, "\"%d\"", p->leverage);
    kstr(b, "maxNotionalValue", "1000000000");
    kstr(b, "marginType", "cross");
    kstr(b, "isolatedMargin", "0");
    kstr(b, "isAutoAddMargin", "false");
    kstr(b, "positionSide", sbook_pos_side_name(ps));
    kdec(b, "notional", notional);
    kstr(b, "isolatedWallet", "0");
    kint(b, "updateTime", p->update_ms);
    sbuf_addc(b, '}');
}

void sbnf_position_risk_v3(struct sbuf *b, const struct sbook_symbol *s, const struct sbook_position *p,
                           enum mkt_pos_side ps)
{
    dec_t notional, im = DEC_ZERO, mm = DEC_ZERO;
    if (dec_mul(p->amount, s->price, &notional) < 0)
        notional = DEC_ZERO;
    if (dec_muldiv_round_down(dec_abs(notional), dec_from_int(1), dec_from_int(p->leverage > 0 ? p->leverage : 1),
                              QUANTUM8, &im) < 0)
        im = DEC_ZERO;
    if (dec_muldiv_round_down(dec_abs(notional), dec_from_int(4), dec_from_int(1000), QUANTUM8, &mm) < 0)
        mm = DEC_ZERO;
    sbuf_adds(b, "{\"symbol\":");
    sbuf_add_jstr(b, s->ins.symbol);
    kstr(b, "positionSide", sbook_pos_side_name(ps));
    kdec(b, "positionAmt", p->amount);
    kdec(b, "entryPrice", p->entry_price);
    kdec(b, "breakEvenPrice", p->entry_price);
    kdec(b, "markPrice", s->price);
    kdec(b, "unRealizedProfit", sbnf_unrealized(s, p));
    kstr(b, "liquidationPrice", "0");
    kstr(b, "isolatedMargin", "0");
    kdec(b, "notional", notional);
    kstr(b, "marginAsset", "USDT");
    kstr(b, "isolatedWallet", "0");
    kdec(b, "initialMargin", im);
    kdec(b, "maintMargin", mm);
    kdec(b, "positionInitialMargin", im);
    kstr(b, "openOrderInitialMargin", "0");
    kint(b, "adl", 0);
    kstr(b, "bidNotional", "0");
    kstr(b, "askNotional", "0");
    kint(b, "updateTime", p->update_ms);
    sbuf_addc(b, '}');
}

static const enum mkt_pos_side all_sides[3] = {MKT_PS_BOTH, MKT_PS_LONG, MKT_PS_SHORT};

int sbnf_totals(struct sbook *book, const struct sbook_account *ba, struct sbnf_totals *t)
{
    dec_t up = DEC_ZERO, im = DEC_ZERO, mm = DEC_ZERO;
    memset(t, 0, sizeof(*t));
    t->wallet = sbook_account_balance(ba);
    for (size_t i = 0; i < sbook_nsymbols(book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(book, i);
        for (size_t k = 0; k < 3; k++) {
            const struct sbook_position *p = sbook_position_side(ba, s, all_sides[k]);
            dec_t notional, pim, pmm;
            if (dec_is_zero(p->amount))
                continue;
            if (dec_mul(dec_abs(p->amount), s->price, &notional) < 0 ||
                dec_muldiv_round_down(notional, dec_from_int(1), dec_from_int(p->leverage), QUANTUM8, &pim) < 0 ||
                dec_muldiv_round_down(notional, dec_from_int(4), dec_from_int(1000), QUANTUM8, &pmm) < 0 ||
                dec_add(im, pim, &im) < 0 || dec_add(mm, pmm, &mm) < 0 ||
                dec_add(up, sbnf_unrealized(s, p), &up) < 0)
                return -ERANGE;
        }
    }
    t->unrealized = up;
    t->initial = im;
    t->maint = mm;
    if (dec_add(t->wallet, up, &t->equity) < 0 || dec_sub(t->equity, im, &t->available) < 0)
        return -ERANGE;
    return 0;
}

/* GET /fapi/v3/account (also served for v2): one USDT asset, cross margin, margins from
 * |notional| / leverage and 0.4 % maintenance. */
int sbnf_account(struct sbuf *b, struct sbook *book, const struct sbook_account *ba, int64_t now)
{
    struct sbnf_totals t;
    size_t n = 0;

    if (sbnf_totals(book, ba, &t) < 0)
        return -ERANGE;
#define KD(k, v) do { sbuf_adds(b, ",\"" k "\":"); sbuf_add_jdec(b, v); } while (0)
    sbuf_adds(b, "{\"totalInitialMargin\":");
    sbuf_add_jdec(b, t.initial);
    KD("totalMaintMargin", t.maint);
    KD("totalWalletBalance", t.wallet);
    KD("totalUnrealizedProfit", t.unrealized);
    KD("totalMarginBalance", t.equity);
    KD("totalPositionInitialMargin", t.initial);
    sbuf_adds(b, ",\"totalOpenOrderInitialMargin\":\"0\"");
    KD("totalCrossWalletBalance", t.wallet);
    KD("totalCrossUnPnl", t.unrealized);
    KD("availableBalance", t.available);
    KD("maxWithdrawAmount", t.available);
    sbuf_adds(b, ",\"assets\":[{\"asset\":\"USDT\"");
    KD("walletBalance", t.wallet);
    KD("unrealizedProfit", t.unrealized);
    KD("marginBalance", t.equity);
    KD("maintMargin", t.maint);
    KD("initialMargin", t.initial);
    KD("positionInitialMargin", t.initial);
    sbuf_adds(b, ",\"openOrderInitialMargin\":\"0\"");
    KD("crossWalletBalance", t.wallet);
    KD("crossUnPnl", t.unrealized);
    KD("availableBalance", t.available);
    KD("maxWithdrawAmount", t.available);
    sbuf_adds(b, ",\"updateTime\":");
    sbuf_add_i64(b, now);
    sbuf_adds(b, "}],\"positions\":[");
    for (size_t i = 0; i < sbook_nsymbols(book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(book, i);
        for (size_t k = 0; k < 3; k++) {
            const struct sbook_position *p = sbook_position_side(ba, s, all_sides[k]);
            dec_t notional, pim, pmm;
            if (dec_is_zero(p->amount))
                continue;
            if (dec_mul(p->amount, s->price, &notional) < 0 ||
                dec_muldiv_round_down(dec_abs(notional), dec_from_int(1), dec_from_int(p->leverage), QUANTUM8,
                                      &pim) < 0 ||
                dec_muldiv_round_down(dec_abs(notional), dec_from_int(4), dec_from_int(1000), QUANTUM8, &pmm) < 0)
                continue;
            if (n++)
                sbuf_addc(b, ',');
            sbuf_adds(b, "{\"symbol\":");
            sbuf_add_jstr(b, s->ins.symbol);
            sbuf_adds(b, ",\"positionSide\":");
            sbuf_add_jstr(b, sbook_pos_side_name(all_sides[k]));
            KD("positionAmt", p->amount);
            KD("unrealizedProfit", sbnf_unrealized(s, p));
            sbuf_adds(b, ",\"isolatedMargin\":\"0\"");
            KD("notional", notional);
            sbuf_adds(b, ",\"isolatedWallet\":\"0\"");
            KD("initialMargin", pim);
            KD("maintMargin", pmm);
            sbuf_adds(b, ",\"updateTime\":");
            sbuf_add_i64(b, p->update_ms);
            sbuf_addc(b, '}');
        }
    }
    sbuf_adds(b, "]}");
#undef KD
    return 0;
}

int sbnf_balance(struct sbuf *b, struct sbook *book, const struct sbook_account *ba, int64_t now)
{
    struct sbnf_totals t;
    if (sbnf_totals(book, ba, &t) < 0)
        return -ERANGE;
    sbuf_adds(b, "[{\"accountAlias\":\"SgsR\",\"asset\":\"USDT\",\"balance\":");
    sbuf_add_jdec(b, t.wallet);
    sbuf_adds(b, ",\"crossWalletBalance\":");
    sbuf_add_jdec(b, t.wallet);
    sbuf_adds(b, ",\"crossUnPnl\":");
    sbuf_add_jdec(b, t.unrealized);
    sbuf_adds(b, ",\"availableBalance\":");
    sbuf_add_jdec(b, t.available);
    sbuf_adds(b, ",\"maxWithdrawAmount\":");
    sbuf_add_jdec(b, t.available);
    sbuf_adds(b, ",\"marginAvailable\":true,\"updateTime\":");
    sbuf_add_i64(b, now);
    sbuf_adds(b, "}]");
    return 0;
}

static void base_asset(const char *sym, char *out, size_t n)
{
    static const char *const quotes[] = {"USDT", "USDC", "BUSD", NULL};
    size_t l = strlen(sym);
    for (size_t i = 0; quotes[i]; i++) {
        size_t ql = strlen(quotes[i]);
        if (l > ql && strcmp(sym + l - ql, quotes[i]) == 0) {
            snprintf(out, n, "%.*s", (int)(l - ql), sym);
            return;
        }
    }
    snprintf(out, n, "%s", sym);
}

void sbnf_exchange_info(struct sbuf *b, struct sbook *book, int64_t now_ms)
{
    sbnf_exchange_info_limits(b, book, now_ms, 2400, 1200, 300);
}

void sbnf_exchange_info_limits(struct sbuf *b, struct sbook *book, int64_t now_ms, int weight_1m,
                               int orders_1m, int orders_10s)
{
    sbuf_adds(b, "{\"timezone\":\"UTC\"");
    kint(b, "serverTime", now_ms);
    sbuf_addf(b, ",\"futuresType\":\"U_MARGINED\","
                 "\"rateLimits\":[{\"rateLimitType\":\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\","
                 "\"intervalNum\":1,\"limit\":%d},{\"rateLimitType\":\"ORDERS\",\"interval\":"
                 "\"MINUTE\",\"intervalNum\":1,\"limit\":%d},{\"rateLimitType\":\"ORDERS\","
                 "\"interval\":\"SECOND\",\"intervalNum\":10,\"limit\":%d}],", weight_1m, orders_1m, orders_10s);
    sbuf_adds(b, "\"exchangeFilters\":[],\"assets\":[{\"asset\":\"USDT\",\"marginAvailable\":true,"
                 "\"autoAssetExchange\":\"0\"}],\"symbols\":[");
    for (size_t i = 0; i < sbook_nsymbols(book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(book, i);
        const struct mkt_instrument *in = &s->ins;
        char base[MKT_SYMBOL_MAX];
        base_asset(in->symbol, base, sizeof(base));
        if (i)
            sbuf_addc(b, ',');
        sbuf_adds(b, "{\"symbol\":");
        sbuf_add_jstr(b, in->symbol);
        kstr(b, "pair", in->symbol);
        kstr(b, "contractType", "PERPETUAL");
        kint(b, "deliveryDate", 4133404800000LL);
        kint(b, "onboardDate", 1569398400000LL);
        kstr(b, "status", "TRADING");
        kstr(b, "maintMarginPercent", "2.5000");
        kstr(b, "requiredMarginPercent", "5.0000");
        kstr(b, "baseAsset", base);
        kstr(b, "quoteAsset", "USDT");
        kstr(b, "marginAsset", "USDT");
        kint(b, "pricePrecision", s->price_precision);
        kint(b, "quantityPrecision", s->qty_precision);
        kint(b, "baseAssetPrecision", 8);
        kint(b, "quotePrecision", 8);
        kstr(b, "underlyingType", "COIN");
        sbuf_adds(b, ",\"underlyingSubType\":[],\"settlePlan\":0,\"triggerProtect\":\"0.0500\","
                     "\"liquidationFee\":\"0.012500\",\"marketTakeBound\":\"0.05\","
                     "\"filters\":[{\"filterType\":\"PRICE_FILTER\"");
        kdec(b, "minPrice", in->min_price);
        kdec(b, "maxPrice", in->max_price);
        kdec(b, "tickSize", in->tick);
        sbuf_adds(b, "},{\"filterType\":\"LOT_SIZE\"");
        kdec(b, "minQty", in->min_qty);
        kdec(b, "maxQty", in->max_qty);
        kdec(b, "stepSize", in->step);
        sbuf_adds(b, "},{\"filterType\":\"MARKET_LOT_SIZE\"");
        kdec(b, "minQty", in->mkt_min_qty);
        kdec(b, "maxQty", in->mkt_max_qty);
        kdec(b, "stepSize", dec_sign(in->mkt_step) > 0 ? in->mkt_step : in->step);
        sbuf_adds(b, "},{\"filterType\":\"MAX_NUM_ORDERS\",\"limit\":200},"
                     "{\"filterType\":\"MAX_NUM_ALGO_ORDERS\",\"limit\":10},"
                     "{\"filterType\":\"MIN_NOTIONAL\"");
        kdec(b, "notional", in->min_notional);
        sbuf_adds(b, "}],\"orderTypes\":[\"LIMIT\",\"MARKET\"],"
                     "\"timeInForce\":[\"GTC\",\"IOC\",\"FOK\",\"GTX\"]}");
    }
    sbuf_adds(b, "]}");
}

void sbnf_error(struct sbuf *b, int code, const char *msg)
{
    sbuf_adds(b, "{\"code\":");
    sbuf_add_i64(b, code);
    sbuf_adds(b, ",\"msg\":");
    sbuf_add_jstr(b, msg);
    sbuf_addc(b, '}');
}

int sbnf_map_err(enum sbook_err e, const struct sbook_symbol *s, char *msg, size_t n)
{
    const char *m;
    int code;
    switch (e) {
    case SBOOK_OK: code = 0; m = ""; break;
    case SBOOK_E_QTY_LE_ZERO: code = -4003; m = "Quantity less than or equal to zero."; break;
    case SBOOK_E_QTY_PRECISION:
    case SBOOK_E_PRICE_PRECISION:
        code = -1111; m = "Precision is over the maximum defined for this asset."; break;
    case SBOOK_E_QTY_MIN: code = -4004; m = "Quantity less than min quantity."; break;
    case SBOOK_E_QTY_MAX: code = -4005; m = "Quantity greater than max quantity."; break;
    case SBOOK_E_QTY_STEP: code = -4023; m = "Qty not increased by step size."; break;
    case SBOOK_E_PRICE_LE_ZERO: code = -4001; m = "Price less than 0."; break;
    case SBOOK_E_PRICE_MIN: code = -4013; m = "Price less than min price."; break;
    case SBOOK_E_PRICE_MAX: code = -4002; m = "Price greater than max price."; break;
    case SBOOK_E_PRICE_TICK: code = -4014; m = "Price not increased by tick size."; break;
    case SBOOK_E_MIN_NOTIONAL: {
        char v[DEC_STR_MAX];
        if (dec_format(s->ins.min_notional, v, sizeof(v)) < 0)
            snprintf(v, sizeof(v), "?");
        snprintf(msg, n, "Order's notional must be no smaller than %s (unless you choose reduce only).", v);
        return -4164;
    }
    case SBOOK_E_REDUCE_ONLY: code = -2022; m = "ReduceOnly Order is rejected."; break;
    case SBOOK_E_DUP_CLIENT_ID: code = -4116; m = "ClientOrderId is duplicated."; break;
    case SBOOK_E_GTX_WOULD_TAKE:
        code = -5022;
        m = "Due to the order could not be executed as maker, the Post Only order will be rejected. "
            "The order will not be recorded in the order history";
        break;
    case SBOOK_E_BAD_FILLS: code = -1130; m = "Data sent for parameter 'fills' is not valid."; break;
    case SBOOK_E_POS_SIDE: code = -4061; m = "Order's position side does not match user's setting."; break;
    case SBOOK_E_HEDGE_REDUCE_ONLY: code = -1106; m = "Parameter 'reduceOnly' sent when not required."; break;
    case SBOOK_E_MODE_SAME: code = -4059; m = "No need to change position side."; break;
    case SBOOK_E_MODE_POSITION: code = -4068; m = "Position side cannot be changed if there exists position."; break;
    case SBOOK_E_MODE_ORDERS:
        code = -4067;
        m = "Position side cannot be changed if there exists open orders.";
        break;
    case SBOOK_E_ARITH:
    case SBOOK_E_NOMEM:
    default: code = -1000; m = "An unknown error occured while processing the request."; break;
    }
    snprintf(msg, n, "%s", m);
    return code;
}
