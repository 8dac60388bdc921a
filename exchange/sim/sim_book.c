#include "sim_book.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utlist.h"

/* Entry and average prices are kept to 8 decimals, like Binance prints them. */
static const dec_t PRICE_QUANTUM = {1, 8};

struct sbook_account {
    char name[MKT_ACCOUNT_MAX];
    char *api_key;
    char *api_secret;
    size_t secret_len;
    size_t idx;
    dec_t balance;
    enum mkt_pos_mode mode;
    struct sbook_position *pos; /* 3 per symbol: [idx * 3 + BOTH / LONG / SHORT] */
    struct sbook_order *orders; /* by hkey */
    struct sbook_order *by_cid; /* newest order per client id */
    struct sbook_reqlog **reqlog;
    size_t nreqlog, capreqlog;
    UT_hash_handle hh_name;
    UT_hash_handle hh_key;
};

struct sbook {
    sbook_emit_fn emit;
    sbook_clock_fn clock;
    void *ud;
    struct sbook_symbol **syms;
    size_t nsyms;
    struct sbook_symbol *sym_by_name;
    struct sbook_account **accts;
    size_t naccts;
    struct sbook_account *acct_by_name;
    struct sbook_account *acct_by_key;
    uint64_t next_auto_id;
};

static int64_t now_ms(struct sbook *b)
{
    return b->clock(b->ud);
}

struct sbook *sbook_new(sbook_emit_fn emit, sbook_clock_fn clock, void *ud)
{
    struct sbook *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->emit = emit;
    b->clock = clock;
    b->ud = ud;
    b->next_auto_id = 1;
    return b;
}

static void reqlog_free(struct sbook_reqlog *r)
{
    if (!r)
        return;
    free(r->client_id);
    free(r->symbol);
    free(r->side);
    free(r->type);
    free(r->tif);
    free(r->quantity);
    free(r->price);
    free(r->reduce_only);
    free(r->position_side);
    free(r->err_msg);
    free(r);
}

static void account_free(struct sbook_account *a)
{
    struct sbook_order *o, *tmp;
    HASH_CLEAR(hh_cid, a->by_cid);
    HASH_ITER(hh, a->orders, o, tmp) {
        HASH_DEL(a->orders, o);
        free(o);
    }
    for (size_t i = 0; i < a->nreqlog; i++)
        reqlog_free(a->reqlog[i]);
    free(a->reqlog);
    free(a->pos);
    if (a->api_secret)
        memset(a->api_secret, 0, a->secret_len);
    free(a->api_secret);
    free(a->api_key);
    free(a);
}

struct sbook *sbook_free(struct sbook *b)
{
    if (!b)
        return NULL;
    HASH_CLEAR(hh_name, b->acct_by_name);
    HASH_CLEAR(hh_key, b->acct_by_key);
    for (size_t i = 0; i < b->naccts; i++)
        account_free(b->accts[i]);
    free(b->accts);
    HASH_CLEAR(hh, b->sym_by_name);
    for (size_t i = 0; i < b->nsyms; i++)
        free(b->syms[i]);
    free(b->syms);
    free(b);
    return NULL;
}

static int decimals_of(dec_t d)
{
    return dec_normalize(d).scale;
}

int sbook_add_symbol(struct sbook *b, const struct mkt_instrument *ins, dec_t price)
{
    struct sbook_symbol *s;
    if (b->naccts > 0) /* positions are sized by the symbol count when an account is added */
        return -EINVAL;
    if (!ins->symbol[0] || dec_sign(price) <= 0 || dec_sign(ins->step) <= 0)
        return -EINVAL;
    HASH_FIND_STR(b->sym_by_name, ins->symbol, s);
    if (s)
        return -EEXIST;
    struct sbook_symbol **v = realloc(b->syms, (b->nsyms + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    b->syms = v;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ins = *ins;
    s->price = dec_normalize(price);
    s->idx = b->nsyms;
    s->price_precision = decimals_of(ins->tick);
    s->qty_precision = decimals_of(ins->step);
    /* Distinct id ranges per symbol make a mix-up between symbols visible in tests. */
    s->next_order_id = 1000000 * (int64_t)(s->idx + 1) + 1;
    s->next_trade_id = 5000000 * (int64_t)(s->idx + 1) + 1;
    b->syms[b->nsyms++] = s;
    HASH_ADD_STR(b->sym_by_name, ins.symbol, s);
    return 0;
}

int sbook_add_account(struct sbook *b, const char *name, const char *api_key,
                      const char *api_secret, dec_t balance)
{
    struct sbook_account *a;
    size_t nl = strlen(name);
    if (nl == 0 || nl >= MKT_ACCOUNT_MAX || !api_key[0] || !api_secret[0])
        return -EINVAL;
    HASH_FIND(hh_name, b->acct_by_name, name, nl, a);
    if (a)
        return -EEXIST;
    HASH_FIND(hh_key, b->acct_by_key, api_key, strlen(api_key), a);
    if (a)
        return -EEXIST;
    struct sbook_account **v = realloc(b->accts, (b->naccts + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    b->accts = v;
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    memcpy(a->name, name, nl + 1);
    a->api_key = strdup(api_key);
    a->api_secret = strdup(api_secret);
    a->secret_len = strlen(api_secret);
    a->pos = calloc(b->nsyms ? b->nsyms * 3 : 1, sizeof(*a->pos));
    if (!a->api_key || !a->api_secret || !a->pos) {
        account_free(a);
        return -ENOMEM;
    }
    for (size_t i = 0; i < b->nsyms * 3; i++)
        a->pos[i].leverage = SBOOK_DEFAULT_LEVERAGE;
    a->balance = dec_normalize(balance);
    a->idx = b->naccts;
    b->accts[b->naccts++] = a;
    HASH_ADD_KEYPTR(hh_name, b->acct_by_name, a->name, nl, a);
    HASH_ADD_KEYPTR(hh_key, b->acct_by_key, a->api_key, strlen(a->api_key), a);
    return 0;
}

size_t sbook_nsymbols(const struct sbook *b) { return b->nsyms; }
struct sbook_symbol *sbook_symbol_at(struct sbook *b, size_t i) { return i < b->nsyms ? b->syms[i] : NULL; }
size_t sbook_naccounts(const struct sbook *b) { return b->naccts; }
struct sbook_account *sbook_account_at(struct sbook *b, size_t i) { return i < b->naccts ? b->accts[i] : NULL; }

struct sbook_symbol *sbook_symbol(struct sbook *b, const char *name)
{
    struct sbook_symbol *s;
    if (!name)
        return NULL;
    HASH_FIND_STR(b->sym_by_name, name, s);
    return s;
}

struct sbook_account *sbook_account(struct sbook *b, const char *name)
{
    struct sbook_account *a;
    if (!name)
        return NULL;
    HASH_FIND(hh_name, b->acct_by_name, name, strlen(name), a);
    return a;
}

struct sbook_account *sbook_account_by_key(struct sbook *b, const char *api_key)
{
    struct sbook_account *a;
    if (!api_key)
        return NULL;
    HASH_FIND(hh_key, b->acct_by_key, api_key, strlen(api_key), a);
    return a;
}

size_t sbook_account_index(const struct sbook_account *a) { return a->idx; }
const char *sbook_account_name(const struct sbook_account *a) { return a->name; }
dec_t sbook_account_balance(const struct sbook_account *a) { return a->balance; }

const char *sbook_account_secret(const struct sbook_account *a, size_t *len)
{
    *len = a->secret_len;
    return a->api_secret;
}

static struct sbook_position *pos_of(const struct sbook_account *a, const struct sbook_symbol *s,
                                     enum mkt_pos_side ps)
{
    unsigned k = ps == MKT_PS_LONG ? 1 : ps == MKT_PS_SHORT ? 2 : 0;
    return &a->pos[s->idx * 3 + k];
}

const struct sbook_position *sbook_position(const struct sbook_account *a, const struct sbook_symbol *s)
{
    return pos_of(a, s, MKT_PS_BOTH);
}

const struct sbook_position *sbook_position_side(const struct sbook_account *a, const struct sbook_symbol *s,
                                                 enum mkt_pos_side ps)
{
    return pos_of(a, s, ps);
}

int sbook_set_leverage(struct sbook_account *a, const struct sbook_symbol *s, int leverage)
{
    if (leverage < 1 || leverage > SBOOK_MAX_LEVERAGE)
        return -EINVAL;
    /* One leverage per symbol (Binance): every side's record carries it. */
    for (unsigned k = 0; k < 3; k++)
        a->pos[s->idx * 3 + k].leverage = leverage;
    return 0;
}

int sbook_leverage(const struct sbook_account *a, const struct sbook_symbol *s)
{
    return a->pos[s->idx * 3].leverage;
}

int sbook_change_leverage(struct sbook *b, struct sbook_account *a, const struct sbook_symbol *s,
                          int leverage)
{
    int rc = sbook_set_leverage(a, s, leverage);
    if (rc < 0)
        return rc;
    struct sbook_event ev = {
        .kind = SBOOK_EV_LEVERAGE,
        .time_ms = b->clock(b->ud),
        .sym = s,
        .leverage = leverage,
    };
    if (b->emit)
        b->emit(b->ud, a, &ev);
    return 0;
}

enum mkt_pos_mode sbook_account_mode(const struct sbook_account *a)
{
    return a->mode;
}

bool sbook_has_open_orders(struct sbook *b, struct sbook_account *a, const struct sbook_symbol *s, int ps)
{
    for (size_t i = 0; i < b->nsyms; i++) {
        struct sbook_order *o;
        if (s && b->syms[i] != s)
            continue;
        DL_FOREACH(b->syms[i]->resting, o) {
            if (o->acct == a && (ps < 0 || (int)o->pos_side == ps))
                return true;
        }
    }
    return false;
}

enum sbook_err sbook_set_position_mode(struct sbook *b, struct sbook_account *a, enum mkt_pos_mode m)
{
    if (m != MKT_PM_ONE_WAY && m != MKT_PM_HEDGE)
        return SBOOK_E_POS_SIDE;
    if (m == a->mode)
        return SBOOK_E_MODE_SAME;
    for (size_t i = 0; i < b->nsyms * 3; i++)
        if (!dec_is_zero(a->pos[i].amount))
            return SBOOK_E_MODE_POSITION;
    if (sbook_has_open_orders(b, a, NULL, -1))
        return SBOOK_E_MODE_ORDERS;
    a->mode = m;
    return SBOOK_OK;
}

int sbook_set_balance(struct sbook *b, struct sbook_account *a, dec_t balance)
{
    dec_t change;
    if (!dec_valid(balance) || dec_sub(balance, a->balance, &change) < 0)
        return -EINVAL;
    a->balance = dec_normalize(balance);
    struct sbook_event ev = {
        .kind = SBOOK_EV_BALANCE,
        .time_ms = b->clock(b->ud),
        .balance = a->balance,
        .balance_change = dec_normalize(change),
    };
    if (b->emit)
        b->emit(b->ud, a, &ev);
    return 0;
}

bool sbook_client_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == ':' || c == '/' || c == '_' || c == '-';
        if (!ok || n >= 36)
            return false;
    }
    return n >= 1;
}

const char *sbook_status_name(enum sbook_status s)
{
    switch (s) {
    case SBOOK_ST_NEW: return "NEW";
    case SBOOK_ST_PARTIALLY_FILLED: return "PARTIALLY_FILLED";
    case SBOOK_ST_FILLED: return "FILLED";
    case SBOOK_ST_CANCELED: return "CANCELED";
    case SBOOK_ST_EXPIRED: return "EXPIRED";
    }
    return "UNKNOWN";
}

const char *sbook_pos_side_name(enum mkt_pos_side ps)
{
    switch (ps) {
    case MKT_PS_BOTH: return "BOTH";
    case MKT_PS_LONG: return "LONG";
    case MKT_PS_SHORT: return "SHORT";
    }
    return "BOTH";
}

bool sbook_order_is_open(const struct sbook_order *o)
{
    return o->status == SBOOK_ST_NEW || o->status == SBOOK_ST_PARTIALLY_FILLED;
}

static uint64_t order_hkey(const struct sbook_symbol *s, int64_t id)
{
    return ((uint64_t)s->idx << 44) | ((uint64_t)id & ((UINT64_C(1) << 44) - 1));
}

struct sbook_order *sbook_order_by_id(struct sbook_account *a, const struct sbook_symbol *s, int64_t id)
{
    struct sbook_order *o;
    if (id <= 0)
        return NULL;
    uint64_t k = order_hkey(s, id);
    HASH_FIND(hh, a->orders, &k, sizeof(k), o);
    return o && o->order_id == id ? o : NULL;
}

struct sbook_order *sbook_order_by_client(struct sbook_account *a, const struct sbook_symbol *s,
                                          const char *client_id)
{
    struct sbook_order *o;
    HASH_FIND(hh_cid, a->by_cid, client_id, strlen(client_id), o);
    while (o && o->sym != s)
        o = o->cid_prev;
    return o;
}

void sbook_open_orders(struct sbook *b, struct sbook_account *a, const struct sbook_symbol *s,
                       void (*fn)(void *ud, const struct sbook_order *o), void *ud)
{
    for (size_t i = 0; i < b->nsyms; i++) {
        if (s && b->syms[i] != s)
            continue;
        struct sbook_order *o;
        DL_FOREACH(b->syms[i]->resting, o) {
            if (o->acct == a)
                fn(ud, o);
        }
    }
}

/* ---- validation ---- */

/* A hedge-mode order that closes its side: SELL on LONG, BUY on SHORT. */
static bool hedge_close(enum mkt_pos_side ps, enum sbook_side side)
{
    return (ps == MKT_PS_LONG && side == SBOOK_SELL) || (ps == MKT_PS_SHORT && side == SBOOK_BUY);
}

/* Orders that may only reduce their position: reduce-only ones and hedge-mode closes. */
static bool reducing(bool reduce_only, enum mkt_pos_side ps, enum sbook_side side)
{
    return reduce_only || hedge_close(ps, side);
}

static bool marketable(const struct sbook_symbol *s, enum sbook_type type, enum sbook_side side,
                       dec_t price)
{
    if (type == SBOOK_MARKET)
        return true;
    int c = dec_cmp(price, s->price);
    return side == SBOOK_BUY ? c >= 0 : c <= 0;
}

static bool more_decimals(dec_t x, dec_t step)
{
    return dec_normalize(x).scale > dec_normalize(step).scale;
}

/* (x - base) is a multiple of step; a step of 0 disables the rule. */
static bool on_grid(dec_t x, dec_t base, dec_t step)
{
    dec_t d;
    if (dec_sign(step) <= 0)
        return true;
    if (dec_sub(x, base, &d) < 0)
        return false;
    return dec_is_multiple(d, step);
}

static enum sbook_err check(struct sbook *b, struct sbook_account *a, const struct sbook_order_req *rq)
{
    const struct sbook_symbol *s = rq->sym;
    const struct mkt_instrument *in = &s->ins;
    bool mkt = rq->type == SBOOK_MARKET;
    dec_t step = mkt && dec_sign(in->mkt_step) > 0 ? in->mkt_step : in->step;
    dec_t minq = mkt ? in->mkt_min_qty : in->min_qty;
    dec_t maxq = mkt ? in->mkt_max_qty : in->max_qty;

    if (a->mode == MKT_PM_HEDGE) {
        if (rq->pos_side != MKT_PS_LONG && rq->pos_side != MKT_PS_SHORT)
            return SBOOK_E_POS_SIDE;
        if (rq->reduce_only)
            return SBOOK_E_HEDGE_REDUCE_ONLY;
    } else if (rq->pos_side != MKT_PS_BOTH) {
        return SBOOK_E_POS_SIDE;
    }
    if (dec_sign(rq->qty) <= 0)
        return SBOOK_E_QTY_LE_ZERO;
    if (more_decimals(rq->qty, step))
        return SBOOK_E_QTY_PRECISION;
    if (dec_cmp(rq->qty, minq) < 0)
        return SBOOK_E_QTY_MIN;
    if (dec_sign(maxq) > 0 && dec_cmp(rq->qty, maxq) > 0)
        return SBOOK_E_QTY_MAX;
    if (!on_grid(rq->qty, minq, step))
        return SBOOK_E_QTY_STEP;

    if (!mkt) {
        if (dec_sign(rq->price) <= 0)
            return SBOOK_E_PRICE_LE_ZERO;
        if (dec_sign(in->tick) > 0 && more_decimals(rq->price, in->tick))
            return SBOOK_E_PRICE_PRECISION;
        if (dec_sign(in->min_price) > 0 && dec_cmp(rq->price, in->min_price) < 0)
            return SBOOK_E_PRICE_MIN;
        if (dec_sign(in->max_price) > 0 && dec_cmp(rq->price, in->max_price) > 0)
            return SBOOK_E_PRICE_MAX;
        if (!on_grid(rq->price, in->min_price, in->tick))
            return SBOOK_E_PRICE_TICK;
    }

    if (rq->nfills > 0) {
        dec_t sum = DEC_ZERO;
        if (!mkt)
            return SBOOK_E_BAD_FILLS;
        for (size_t i = 0; i < rq->nfills; i++) {
            if (dec_sign(rq->fills[i]) <= 0 || !dec_is_multiple(rq->fills[i], step) ||
                dec_add(sum, rq->fills[i], &sum) < 0)
                return SBOOK_E_BAD_FILLS;
        }
        if (dec_cmp(sum, rq->qty) != 0)
            return SBOOK_E_BAD_FILLS;
    }

    if (rq->client_id) {
        struct sbook_order *o;
        HASH_FIND(hh_cid, a->by_cid, rq->client_id, strlen(rq->client_id), o);
        if (o && sbook_order_is_open(o))
            return SBOOK_E_DUP_CLIENT_ID;
    }

    if (reducing(rq->reduce_only, rq->pos_side, rq->side)) {
        dec_t amt = pos_of(a, s, rq->pos_side)->amount;
        if (dec_sign(amt) == 0 || dec_sign(amt) == (int)rq->side)
            return SBOOK_E_REDUCE_ONLY;
        if (dec_cmp(rq->qty, dec_abs(amt)) > 0)
            return SBOOK_E_REDUCE_ONLY;
    } else if (dec_sign(in->min_notional) > 0) {
        dec_t px = mkt ? s->price : rq->price;
        if (dec_cmp_mul(rq->qty, px, in->min_notional) < 0)
            return SBOOK_E_MIN_NOTIONAL;
    }

    if (rq->tif == SBOOK_GTX && !mkt && marketable(s, rq->type, rq->side, rq->price))
        return SBOOK_E_GTX_WOULD_TAKE;
    (void)b;
    return SBOOK_OK;
}

enum sbook_err sbook_check(struct sbook *b, struct sbook_account *a, const struct sbook_order_req *rq)
{
    return check(b, a, rq);
}

/* ---- execution ---- */

static void emit_order(struct sbook *b, struct sbook_order *o, enum sbook_exec x)
{
    struct sbook_event ev = {
        .kind = SBOOK_EV_ORDER,
        .time_ms = o->update_ms,
        .order = o,
        .exec = x,
    };
    if (b->emit)
        b->emit(b->ud, o->acct, &ev);
}

static void finish(struct sbook *b, struct sbook_order *o, enum sbook_status st, int er)
{
    o->status = st;
    o->expire_reason = er;
    o->update_ms = now_ms(b);
    emit_order(b, o, st == SBOOK_ST_CANCELED ? SBOOK_X_CANCELED : SBOOK_X_EXPIRED);
}

static void unrest(struct sbook_order *o)
{
    struct sbook_symbol *s = (struct sbook_symbol *)o->sym;
    if (o->prev) { /* utlist DL: prev is never NULL for a listed element */
        DL_DELETE(s->resting, o);
        o->prev = o->next = NULL;
    }
}

/* One execution of qty at price. All new values are computed before anything changes, so an
 * arithmetic range error leaves the state as it was. */
static enum sbook_err apply_fill(struct sbook *b, struct sbook_order *o, dec_t q, dec_t p, bool maker)
{
    struct sbook_account *a = o->acct;
    struct sbook_position *pos = pos_of(a, o->sym, o->pos_side);
    dec_t amt = pos->amount, ep = pos->entry_price;
    dec_t new_amt, new_ep = ep, rp = DEC_ZERO, new_bal, new_real, d, fq;
    dec_t new_exec, new_quote, new_avg, sq = o->side == SBOOK_BUY ? q : dec_neg(q);
    int sa = dec_sign(amt);

    if (dec_add(amt, sq, &new_amt) < 0)
        return SBOOK_E_ARITH;
    if (sa == 0) {
        new_ep = p;
    } else if (sa == (int)o->side) {
        /* Weighted average: ep + (p - ep) * q / (|amt| + q), exact to 8 decimals. */
        dec_t tot;
        if (dec_add(dec_abs(amt), q, &tot) < 0 || dec_sub(p, ep, &d) < 0 ||
            dec_muldiv_round_down(d, q, tot, PRICE_QUANTUM, &d) < 0 || dec_add(ep, d, &new_ep) < 0)
            return SBOOK_E_ARITH;
    } else {
        dec_t closed = dec_min(q, dec_abs(amt));
        if (dec_sub(p, ep, &d) < 0 ||
            dec_muldiv_round_down(d, sa > 0 ? closed : dec_neg(closed), dec_from_int(1),
                                  PRICE_QUANTUM, &rp) < 0)
            return SBOOK_E_ARITH;
        if (dec_sign(new_amt) == 0)
            new_ep = DEC_ZERO;
        else if (dec_sign(new_amt) != sa)
            new_ep = p; /* flipped: the remainder opened at this price */
    }
    if (dec_add(a->balance, rp, &new_bal) < 0 || dec_add(pos->realized, rp, &new_real) < 0)
        return SBOOK_E_ARITH;
    if (dec_add(o->exec_qty, q, &new_exec) < 0 || dec_mul(q, p, &fq) < 0 ||
        dec_add(o->cum_quote, fq, &new_quote) < 0 ||
        dec_muldiv_round_down(new_quote, dec_from_int(1), new_exec, PRICE_QUANTUM, &new_avg) < 0)
        return SBOOK_E_ARITH;

    int64_t t = now_ms(b);
    pos->amount = new_amt;
    pos->entry_price = new_ep;
    pos->realized = new_real;
    pos->update_ms = t;
    a->balance = new_bal;
    o->exec_qty = new_exec;
    o->cum_quote = new_quote;
    o->avg_price = new_avg;
    o->maker = maker;
    o->update_ms = t;
    o->status = dec_cmp(new_exec, o->orig_qty) >= 0 ? SBOOK_ST_FILLED : SBOOK_ST_PARTIALLY_FILLED;

    struct sbook_symbol *s = (struct sbook_symbol *)o->sym;
    struct sbook_event ev = {
        .kind = SBOOK_EV_ORDER,
        .time_ms = t,
        .order = o,
        .exec = SBOOK_X_TRADE,
        .trade_id = s->next_trade_id++,
        .last_qty = q,
        .last_price = p,
        .realized = rp,
        .commission = DEC_ZERO,
    };
    if (b->emit)
        b->emit(b->ud, a, &ev);
    struct sbook_event ac = {
        .kind = SBOOK_EV_ACCOUNT,
        .time_ms = t,
        .sym = s,
        .pos = pos,
        .balance = a->balance,
        .pos_side = o->pos_side,
    };
    if (b->emit)
        b->emit(b->ud, a, &ac);
    return SBOOK_OK;
}

/* Fill what remains of o at price p; expires the order if the arithmetic is out of range. */
static void fill_rest(struct sbook *b, struct sbook_order *o, dec_t p, bool maker)
{
    dec_t rest;
    if (dec_sub(o->orig_qty, o->exec_qty, &rest) < 0 || apply_fill(b, o, rest, p, maker) != SBOOK_OK)
        finish(b, o, SBOOK_ST_EXPIRED, 0);
}

enum sbook_err sbook_place(struct sbook *b, struct sbook_account *a, const struct sbook_order_req *rq,
                           struct sbook_order **out)
{
    enum sbook_err e = check(b, a, rq);
    if (e != SBOOK_OK)
        return e;
    struct sbook_symbol *s = (struct sbook_symbol *)rq->sym;
    struct sbook_order *o = calloc(1, sizeof(*o));
    if (!o)
        return SBOOK_E_NOMEM;
    o->order_id = s->next_order_id++;
    if (rq->client_id)
        snprintf(o->client_id, sizeof(o->client_id), "%s", rq->client_id);
    else
        snprintf(o->client_id, sizeof(o->client_id), "sim-auto-%llu",
                 (unsigned long long)b->next_auto_id++);
    o->sym = s;
    o->acct = a;
    o->side = rq->side;
    o->type = rq->type;
    o->tif = rq->type == SBOOK_MARKET ? SBOOK_GTC : rq->tif;
    o->status = SBOOK_ST_NEW;
    o->source = rq->source;
    o->reduce_only = rq->reduce_only;
    o->pos_side = rq->pos_side;
    o->orig_qty = dec_normalize(rq->qty);
    o->price = rq->type == SBOOK_MARKET ? DEC_ZERO : dec_normalize(rq->price);
    o->time_ms = o->update_ms = now_ms(b);
    o->hkey = order_hkey(s, o->order_id);
    HASH_ADD(hh, a->orders, hkey, sizeof(o->hkey), o);
    struct sbook_order *older;
    HASH_FIND(hh_cid, a->by_cid, o->client_id, strlen(o->client_id), older);
    if (older) {
        HASH_DELETE(hh_cid, a->by_cid, older);
        o->cid_prev = older;
    }
    HASH_ADD_KEYPTR(hh_cid, a->by_cid, o->client_id, strlen(o->client_id), o);
    if (out)
        *out = o;

    emit_order(b, o, SBOOK_X_NEW);

    if (marketable(s, o->type, o->side, o->price)) {
        if (rq->nfills > 0) {
            for (size_t i = 0; i < rq->nfills && sbook_order_is_open(o); i++) {
                if (apply_fill(b, o, rq->fills[i], s->price, false) != SBOOK_OK)
                    finish(b, o, SBOOK_ST_EXPIRED, 9);
            }
        } else {
            fill_rest(b, o, s->price, false);
        }
    } else if (o->tif == SBOOK_GTC || o->tif == SBOOK_GTX) {
        DL_APPEND(s->resting, o);
    } else {
        finish(b, o, SBOOK_ST_EXPIRED, 2);
    }
    return SBOOK_OK;
}

int sbook_cancel(struct sbook *b, struct sbook_order *o)
{
    if (!sbook_order_is_open(o))
        return -ENOENT;
    unrest(o);
    finish(b, o, SBOOK_ST_CANCELED, 0);
    return 0;
}

int sbook_set_price(struct sbook *b, struct sbook_symbol *s, dec_t price)
{
    struct sbook_order *o, *tmp;
    if (!dec_valid(price) || dec_sign(price) <= 0)
        return -EINVAL;
    s->price = dec_normalize(price);
    DL_FOREACH_SAFE(s->resting, o, tmp) {
        if (!marketable(s, SBOOK_LIMIT, o->side, o->price))
            continue;
        unrest(o);
        if (reducing(o->reduce_only, o->pos_side, o->side)) {
            dec_t amt = pos_of(o->acct, s, o->pos_side)->amount, rest;
            if (dec_sign(amt) == 0 || dec_sign(amt) == (int)o->side) {
                finish(b, o, SBOOK_ST_EXPIRED, 4);
                continue;
            }
            if (dec_sub(o->orig_qty, o->exec_qty, &rest) == 0 && dec_cmp(rest, dec_abs(amt)) > 0) {
                /* Fill up to the position, expire the remainder: reduce-only never flips. */
                if (apply_fill(b, o, dec_abs(amt), o->price, true) != SBOOK_OK || sbook_order_is_open(o))
                    finish(b, o, SBOOK_ST_EXPIRED, 4);
                continue;
            }
        }
        fill_rest(b, o, o->price, true);
    }
    return 0;
}

/* ---- request log ---- */

static char *dup_or_null(const char *s, bool *fail)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *fail = true;
    return d;
}

struct sbook_reqlog *sbook_reqlog_add(struct sbook_account *a, enum sbook_source src,
                                      int64_t time_ms, const char *client_id, const char *symbol,
                                      const char *side, const char *type, const char *tif,
                                      const char *quantity, const char *price,
                                      const char *reduce_only)
{
    bool fail = false;
    if (a->nreqlog == a->capreqlog) {
        size_t cap = a->capreqlog ? a->capreqlog * 2 : 64;
        struct sbook_reqlog **v = realloc(a->reqlog, cap * sizeof(*v));
        if (!v)
            return NULL;
        a->reqlog = v;
        a->capreqlog = cap;
    }
    struct sbook_reqlog *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->seq = (int64_t)a->nreqlog + 1;
    r->source = src;
    r->time_ms = time_ms;
    r->client_id = dup_or_null(client_id, &fail);
    r->symbol = dup_or_null(symbol, &fail);
    r->side = dup_or_null(side, &fail);
    r->type = dup_or_null(type, &fail);
    r->tif = dup_or_null(tif, &fail);
    r->quantity = dup_or_null(quantity, &fail);
    r->price = dup_or_null(price, &fail);
    r->reduce_only = dup_or_null(reduce_only, &fail);
    if (fail) {
        reqlog_free(r);
        return NULL;
    }
    a->reqlog[a->nreqlog++] = r;
    return r;
}

int sbook_reqlog_set_position_side(struct sbook_reqlog *r, const char *raw)
{
    if (!r)
        return 0;
    free(r->position_side);
    r->position_side = NULL;
    if (raw && !(r->position_side = strdup(raw)))
        return -ENOMEM;
    return 0;
}

void sbook_reqlog_result(struct sbook_reqlog *r, struct sbook_order *o, int err_code, const char *msg)
{
    if (!r)
        return;
    r->order = o;
    r->err_code = err_code;
    free(r->err_msg);
    r->err_msg = msg ? strdup(msg) : NULL;
    if (o && !r->client_id)
        r->client_id = strdup(o->client_id);
}

size_t sbook_reqlog_count(const struct sbook_account *a)
{
    return a->nreqlog;
}

const struct sbook_reqlog *sbook_reqlog_at(const struct sbook_account *a, size_t i)
{
    return i < a->nreqlog ? a->reqlog[i] : NULL;
}
