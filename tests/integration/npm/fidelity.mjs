// fidelity.mjs: real exchange client libraries from npm against copytrader-exsim.
//
//     node fidelity.mjs CONFIG.json [client...]
//
// CONFIG = {"rest": "http://127.0.0.1:P", "admin": "http://127.0.0.1:Q", "symbol": "BTCUSDT",
//           "price": "50000", "other_symbol": "ETHUSDT",
//           "clients": {"<client>": {"oneway": {"name","apiKey","secret"}, "hedge": {...}}}}
// with <client> one of ccxt-binanceusdm, ccxt-bybit, binance-connector. Every client gets its own
// pair of simulator accounts (one one-way, one hedge mode, each with a fresh wallet), so what the
// admin API reports for an account is exactly what that client did. The price never moves.
//
// Each step asserts on what the library returned and cross-checks it with the simulator's
// admin API (/admin/orders, /admin/positions, /admin/accounts). The first failure ends the run:
// exit 1 with "FAIL [client] step: what" on stderr. Exit 0 prints "OK" and one line per client.
import { readFileSync } from 'node:fs';
import ccxt from 'ccxt';
import { DerivativesTradingUsdsFutures } from '@binance/derivatives-trading-usds-futures';

class StepFailure extends Error {}

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const only = process.argv.slice(3);
let current = { client: '-', step: '-' };
let steps = 0;

function step(name) {
    current.step = name;
    steps++;
}

function fail(what) {
    throw new StepFailure(what);
}

function check(cond, what) {
    if (!cond) fail(what);
}

// Quantities and prices: the libraries give numbers (ccxt) or strings (the connector, the admin
// API); all of them are short decimals, so comparing their doubles with a tolerance is exact enough.
function num(v, what = 'value') {
    const n = typeof v === 'number' ? v : Number(v);
    if (v === undefined || v === null || v === '' || Number.isNaN(n)) fail(`${what}: not a number: ${JSON.stringify(v)}`);
    return n;
}

function eq(a, b, what) {
    const x = num(a, what);
    const y = num(b, `${what} (expected)`);
    if (Math.abs(x - y) > 1e-9 * Math.max(1, Math.abs(x), Math.abs(y)))
        fail(`${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
}

function same(a, b, what) {
    if (a !== b) fail(`${what}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
}

async function admin(method, path, body) {
    const r = await fetch(cfg.admin + path, {
        method,
        headers: body ? { 'Content-Type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    if (r.status !== 200) fail(`admin ${method} ${path} -> ${r.status}: ${text}`);
    return JSON.parse(text);
}

const adminOrders = (acct) => admin('GET', `/admin/orders?account=${encodeURIComponent(acct.name)}`);
const adminPositions = (acct) => admin('GET', `/admin/positions?account=${encodeURIComponent(acct.name)}&all=1`);

async function adminAccount(acct) {
    const all = await admin('GET', '/admin/accounts');
    const a = all.find((x) => x.name === acct.name);
    if (!a) fail(`admin /admin/accounts has no account ${acct.name}`);
    return a;
}

// The admin record of exchange order id `id` (Binance: the number; Bybit: the book's number is
// the last 12 digits of the UUID-shaped id).
async function adminOrder(acct, id) {
    const orders = await adminOrders(acct);
    const want = String(id);
    const o = orders.find((x) => x.orderId !== null && x.orderId !== undefined &&
        (String(x.orderId) === want || want.endsWith('-' + String(x.orderId).padStart(12, '0'))));
    if (!o) fail(`order ${want} is not in /admin/orders?account=${acct.name} (${orders.length} orders there)`);
    return o;
}

// Position amount of (symbol, side) as the admin API reports it: "0" when absent.
async function adminPosition(acct, symbol, side) {
    const ps = await adminPositions(acct);
    const p = ps.find((x) => x.symbol === symbol && x.positionSide === side);
    return p || { positionAmt: '0', leverage: null, entryPrice: '0' };
}

const SYM = cfg.symbol;               // exchange id, e.g. BTCUSDT
const OTHER = cfg.other_symbol;       // a second symbol, for fetchTickers
const PRICE = cfg.price;              // the current (fixed) price of SYM
const unified = (id) => id.replace(/USDT$/, '') + '/USDT:USDT';
const USYM = unified(SYM);
const LIMIT_PRICE = String(Math.round(num(PRICE) * 0.9)); // rests: below the price, a whole number
const runTag = Date.now().toString(36);

// ---------------------------------------------------------------- ccxt (both exchanges)

function ccxtClient(kind, acct) {
    if (kind === 'binanceusdm') {
        const ex = new ccxt.binanceusdm({ apiKey: acct.apiKey, secret: acct.secret, enableRateLimit: false });
        // Every API family the library knows goes to the simulator: whatever it calls must exist there.
        for (const k of Object.keys(ex.urls.api)) {
            const u = new URL(ex.urls.api[k]);
            ex.urls.api[k] = cfg.rest + u.pathname.replace(/\/$/, '');
        }
        return ex;
    }
    const ex = new ccxt.bybit({ apiKey: acct.apiKey, secret: acct.secret, enableRateLimit: false });
    ex.urls.api = { spot: cfg.rest, futures: cfg.rest, v2: cfg.rest, public: cfg.rest, private: cfg.rest };
    return ex;
}

// fetchOrder: Bybit's needs ccxt's acknowledgement that it only sees the last 500 orders.
function fetchOrderParams(kind, extra = {}) {
    return kind === 'bybit' ? { acknowledged: true, ...extra } : extra;
}

function clientIdParam(kind, cid) {
    return kind === 'bybit' ? { orderLinkId: cid } : { origClientOrderId: cid };
}

async function ccxtSuite(kind) {
    const name = `ccxt-${kind}`;
    const accts = cfg.clients[name];
    const acct = accts.oneway;
    const ex = ccxtClient(kind, acct);
    const cid = (what) => `ct${kind === 'bybit' ? 'by' : 'bn'}${what}${runTag}`;

    step('loadMarkets');
    const markets = await ex.loadMarkets();
    const m = markets[USYM];
    check(m, `no market ${USYM} in ${Object.keys(markets).join(',')}`);
    same(m.id, SYM, 'market id');
    check(m.swap && m.linear && m.contract, `market ${USYM} is not a linear swap: ${JSON.stringify({ swap: m.swap, linear: m.linear })}`);
    eq(m.precision.amount, '0.001', 'amount precision');
    eq(m.precision.price, '0.1', 'price precision');
    eq(m.limits.amount.min, '0.001', 'min amount');
    check(markets[unified(OTHER)], `no market ${unified(OTHER)}`);

    step('fetchTicker');
    const t = await ex.fetchTicker(USYM);
    same(t.symbol, USYM, 'ticker symbol');
    eq(t.last, PRICE, 'ticker last');

    step('fetchTickers');
    const ts = await ex.fetchTickers([USYM, unified(OTHER)]);
    check(ts[USYM] && ts[unified(OTHER)], `fetchTickers gave ${Object.keys(ts).join(',')}`);
    eq(ts[USYM].last, PRICE, 'fetchTickers last');

    step('fetchBalance');
    const bal = await ex.fetchBalance();
    const aa = await adminAccount(acct);
    eq(bal.USDT.total, aa.equity, 'USDT total vs admin equity');
    eq(bal.USDT.free, aa.equity, 'USDT free (flat account) vs admin equity');

    step('setLeverage');
    await ex.setLeverage(7, USYM);
    const lp = await adminPosition(acct, SYM, 'BOTH');
    same(lp.leverage, 7, 'admin leverage after setLeverage');

    step('createOrder market');
    const mkt = await ex.createOrder(USYM, 'market', 'buy', 0.01, undefined, { clientOrderId: cid('mkt') });
    check(mkt.id, `no order id: ${JSON.stringify(mkt.info)}`);
    let ao = await adminOrder(acct, mkt.id);
    same(ao.status, 'FILLED', 'admin status of the market order');
    eq(ao.executedQty, '0.01', 'admin executedQty of the market order');
    same(ao.clientOrderId, cid('mkt'), 'admin clientOrderId of the market order');
    same(ao.side, kind === 'bybit' ? 'Buy' : 'BUY', 'admin side of the market order');

    step('fetchOrder market by id');
    let o = await ex.fetchOrder(mkt.id, USYM, fetchOrderParams(kind));
    same(o.id, mkt.id, 'order id');
    same(o.status, 'closed', 'status');
    eq(o.filled, '0.01', 'filled');
    eq(o.amount, '0.01', 'amount');
    eq(o.average, PRICE, 'average price');
    same(o.side, 'buy', 'side');
    same(o.type, 'market', 'type');
    same(o.clientOrderId, cid('mkt'), 'clientOrderId');

    step('fetchPositions after buy');
    let ps = await ex.fetchPositions([USYM]);
    let p = ps.find((x) => x.symbol === USYM && num(x.contracts || 0) !== 0);
    check(p, `no open position in ${JSON.stringify(ps.map((x) => [x.symbol, x.side, x.contracts]))}`);
    same(p.side, 'long', 'position side');
    eq(p.contracts, '0.01', 'position contracts');
    eq(p.entryPrice, PRICE, 'position entry price');
    if (kind === 'binanceusdm') {
        // v3 positionRisk (ccxt's default) has no leverage; the v2 one does.
        const p2 = (await ex.fetchPositions([USYM], { useV2: true })).find((x) => x.symbol === USYM && num(x.contracts || 0) !== 0);
        check(p2, 'no open position from v2 positionRisk');
        eq(p2.contracts, '0.01', 'v2 position contracts');
        eq(p2.leverage, 7, 'v2 position leverage');
    } else {
        eq(p.leverage, 7, 'position leverage');
    }
    const ap = await adminPosition(acct, SYM, 'BOTH');
    eq(ap.positionAmt, '0.01', 'admin positionAmt');
    eq(ap.entryPrice, PRICE, 'admin entryPrice');

    step('createOrder limit GTC (resting)');
    const lim = await ex.createOrder(USYM, 'limit', 'buy', 0.005, LIMIT_PRICE,
        { timeInForce: 'GTC', clientOrderId: cid('lmt') });
    check(lim.id, 'no order id');
    ao = await adminOrder(acct, lim.id);
    same(ao.status, 'NEW', 'admin status of the resting limit');
    eq(ao.price, LIMIT_PRICE, 'admin price of the resting limit');
    same(ao.timeInForce, 'GTC', 'admin timeInForce');

    step('fetchOrder limit by id');
    o = await ex.fetchOrder(lim.id, USYM, fetchOrderParams(kind));
    same(o.id, lim.id, 'order id');
    same(o.status, 'open', 'status');
    eq(o.price, LIMIT_PRICE, 'price');
    eq(o.amount, '0.005', 'amount');
    eq(o.filled, 0, 'filled');
    same(o.type, 'limit', 'type');

    step('fetchOrder limit by clientOrderId');
    o = await ex.fetchOrder(undefined, USYM, fetchOrderParams(kind, clientIdParam(kind, cid('lmt'))));
    same(o.id, lim.id, 'order id found by clientOrderId');
    same(o.clientOrderId, cid('lmt'), 'clientOrderId');
    same(o.status, 'open', 'status');

    step('fetchOpenOrders');
    let open = await ex.fetchOpenOrders(USYM);
    same(open.length, 1, 'open orders');
    same(open[0].id, lim.id, 'the open order');
    eq(open[0].remaining, '0.005', 'remaining');

    step('cancelOrder');
    await ex.cancelOrder(lim.id, USYM);
    ao = await adminOrder(acct, lim.id);
    same(ao.status, 'CANCELED', 'admin status after cancel');
    o = await ex.fetchOrder(lim.id, USYM, fetchOrderParams(kind));
    same(o.status, 'canceled', 'status after cancel');
    open = await ex.fetchOpenOrders(USYM);
    same(open.length, 0, 'open orders after cancel');

    step('createOrder market reduceOnly close');
    const close = await ex.createOrder(USYM, 'market', 'sell', 0.01, undefined,
        { reduceOnly: true, clientOrderId: cid('cls') });
    ao = await adminOrder(acct, close.id);
    same(ao.status, 'FILLED', 'admin status of the close');
    same(ao.reduceOnly, true, 'admin reduceOnly of the close');
    o = await ex.fetchOrder(close.id, USYM, fetchOrderParams(kind));
    same(o.status, 'closed', 'close status');
    same(o.reduceOnly, true, 'close reduceOnly');

    step('fetchPositions after close');
    ps = await ex.fetchPositions([USYM]);
    p = ps.find((x) => x.symbol === USYM && num(x.contracts || 0) !== 0);
    check(!p, `position still open: ${JSON.stringify(p && p.info)}`);
    eq((await adminPosition(acct, SYM, 'BOTH')).positionAmt, 0, 'admin positionAmt after close');

    step('reduceOnly refused when flat');
    let refused = null;
    try {
        await ex.createOrder(USYM, 'market', 'sell', 0.01, undefined, { reduceOnly: true });
    } catch (e) {
        refused = e;
    }
    check(refused instanceof ccxt.ExchangeError, `a reduce-only order on a flat position was not refused as an ExchangeError (${refused})`);

    step('fetchMyTrades');
    const trades = await ex.fetchMyTrades(USYM);
    const mine = trades.filter((x) => x.order === mkt.id || x.order === close.id);
    same(mine.length, 2, `trades of the two market orders (of ${trades.length})`);
    for (const tr of mine) {
        eq(tr.amount, '0.01', 'trade amount');
        eq(tr.price, PRICE, 'trade price');
        same(tr.side, tr.order === mkt.id ? 'buy' : 'sell', 'trade side');
        same(tr.symbol, USYM, 'trade symbol');
    }

    step('fetchBalance after round trip');
    const bal2 = await ex.fetchBalance();
    eq(bal2.USDT.total, (await adminAccount(acct)).equity, 'USDT total vs admin equity');

    step('createOrders (batch)');
    const batch = await ex.createOrders([
        { symbol: USYM, type: 'limit', side: 'buy', amount: 0.002, price: LIMIT_PRICE, params: { clientOrderId: cid('b1') } },
        { symbol: USYM, type: 'limit', side: 'buy', amount: 0.003, price: String(num(LIMIT_PRICE) - 100), params: { clientOrderId: cid('b2') } },
    ]);
    same(batch.length, 2, 'orders answered');
    for (const [i, bo] of batch.entries()) {
        check(bo.id, `batch order ${i} has no id: ${JSON.stringify(bo.info)}`);
        ao = await adminOrder(acct, bo.id);
        same(ao.status, 'NEW', `admin status of batch order ${i}`);
        same(ao.clientOrderId, cid(`b${i + 1}`), `admin clientOrderId of batch order ${i}`);
    }
    eq((await adminOrder(acct, batch[1].id)).origQty, '0.003', 'admin origQty of the second batch order');
    same((await ex.fetchOpenOrders(USYM)).length, 2, 'open orders after the batch');

    step('cancelAllOrders');
    await ex.cancelAllOrders(USYM);
    for (const bo of batch) same((await adminOrder(acct, bo.id)).status, 'CANCELED', 'admin status after cancelAllOrders');
    same((await ex.fetchOpenOrders(USYM)).length, 0, 'open orders after cancelAllOrders');

    step('fetchClosedOrders');
    const closed = await ex.fetchClosedOrders(USYM);
    const closedIds = closed.map((x) => x.id);
    for (const id of [mkt.id, close.id]) check(closedIds.includes(id), `closed orders ${closedIds} lack ${id}`);
    check(closed.every((x) => x.status === 'closed'), `a closed order with another status: ${closed.map((x) => x.status)}`);

    step('fetchCanceledOrders');
    if (ex.has.fetchCanceledOrders) {
        const canceled = await ex.fetchCanceledOrders(USYM);
        const ids = canceled.map((x) => x.id);
        for (const id of [lim.id, batch[0].id, batch[1].id]) check(ids.includes(id), `canceled orders ${ids} lack ${id}`);
    } else {
        const all = await ex.fetchOrders(USYM);
        const byId = Object.fromEntries(all.map((x) => [x.id, x.status]));
        for (const id of [lim.id, batch[0].id, batch[1].id]) same(byId[id], 'canceled', `fetchOrders status of ${id}`);
        for (const id of [mkt.id, close.id]) same(byId[id], 'closed', `fetchOrders status of ${id}`);
    }

    step('fetchBidsAsks');
    if (kind === 'binanceusdm') {
        const ba = await ex.fetchBidsAsks([USYM]);
        check(ba[USYM], `no ${USYM} in fetchBidsAsks`);
        check(num(ba[USYM].bid, 'bid') <= num(PRICE) && num(ba[USYM].ask, 'ask') >= num(PRICE),
            `bid/ask ${ba[USYM].bid}/${ba[USYM].ask} around ${PRICE}`);
        const mp = await ex.fetchMarkPrice(USYM);
        eq(mp.markPrice, PRICE, 'mark price');
    }

    step('setPositionMode');
    await ex.setPositionMode(true, USYM);
    same((await adminAccount(acct)).positionMode, 'hedge', 'admin positionMode after setPositionMode(true)');
    if (ex.has.fetchPositionMode) same((await ex.fetchPositionMode(USYM)).hedged, true, 'fetchPositionMode');
    await ex.setPositionMode(false, USYM);
    same((await adminAccount(acct)).positionMode, 'oneway', 'admin positionMode after setPositionMode(false)');

    // ---- hedge mode account
    const hacct = accts.hedge;
    const hx = ccxtClient(kind, hacct);
    await hx.loadMarkets();
    const hedgeOpen = kind === 'bybit' ? (side) => ({ positionIdx: side === 'buy' ? 1 : 2 }) : () => ({ hedged: true });

    step('hedge: fetchPositionMode');
    if (hx.has.fetchPositionMode) {
        const pm = await hx.fetchPositionMode(USYM);
        same(pm.hedged, true, 'hedged');
    }

    step('hedge: open long and short');
    const hl = await hx.createOrder(USYM, 'market', 'buy', 0.02, undefined, hedgeOpen('buy'));
    const hs = await hx.createOrder(USYM, 'market', 'sell', 0.03, undefined, hedgeOpen('sell'));
    same((await adminOrder(hacct, hl.id)).positionSide, 'LONG', 'admin positionSide of the long');
    same((await adminOrder(hacct, hs.id)).positionSide, 'SHORT', 'admin positionSide of the short');
    eq((await adminPosition(hacct, SYM, 'LONG')).positionAmt, '0.02', 'admin LONG amount');
    eq((await adminPosition(hacct, SYM, 'SHORT')).positionAmt, '-0.03', 'admin SHORT amount');

    step('hedge: fetchPositions');
    ps = (await hx.fetchPositions([USYM])).filter((x) => num(x.contracts || 0) !== 0);
    const long = ps.find((x) => x.side === 'long');
    const short = ps.find((x) => x.side === 'short');
    check(long && short, `want a long and a short: ${JSON.stringify(ps.map((x) => [x.side, x.contracts]))}`);
    eq(long.contracts, '0.02', 'long contracts');
    eq(short.contracts, '0.03', 'short contracts');
    same(long.hedged, true, 'long hedged');

    step('hedge: close the long (reduce-only)');
    // ccxt's way: reduceOnly + hedged (binance turns it into SELL LONG; bybit positionIdx 1 + reduceOnly).
    const closeParams = kind === 'bybit' ? { positionIdx: 1, reduceOnly: true } : { hedged: true, reduceOnly: true };
    const hc = await hx.createOrder(USYM, 'market', 'sell', 0.02, undefined, closeParams);
    ao = await adminOrder(hacct, hc.id);
    same(ao.status, 'FILLED', 'admin status of the hedge close');
    same(ao.positionSide, 'LONG', 'admin positionSide of the hedge close');
    eq((await adminPosition(hacct, SYM, 'LONG')).positionAmt, 0, 'admin LONG after close');
    eq((await adminPosition(hacct, SYM, 'SHORT')).positionAmt, '-0.03', 'admin SHORT after closing the long');
    ps = (await hx.fetchPositions([USYM])).filter((x) => num(x.contracts || 0) !== 0);
    same(ps.length, 1, 'open positions after closing the long');
    same(ps[0].side, 'short', 'the remaining position');

    step('hedge: close the short');
    const hc2 = await hx.createOrder(USYM, 'market', 'buy', 0.03, undefined,
        kind === 'bybit' ? { positionIdx: 2, reduceOnly: true } : { hedged: true, reduceOnly: true });
    same((await adminOrder(hacct, hc2.id)).positionSide, 'SHORT', 'admin positionSide of the short close');
    eq((await adminPosition(hacct, SYM, 'SHORT')).positionAmt, 0, 'admin SHORT after close');

    return `${name}: ${steps} steps`;
}

// ---------------------------------------------------------------- Binance's official connector

async function connectorSuite() {
    const name = 'binance-connector';
    const accts = cfg.clients[name];
    const acct = accts.oneway;
    const make = (a) => new DerivativesTradingUsdsFutures({
        configurationRestAPI: { apiKey: a.apiKey, apiSecret: a.secret, basePath: cfg.rest, retries: 0, timeout: 10000 },
    }).restAPI;
    const api = make(acct);
    const data = async (p) => (await p).data();
    const cid = (what) => `ctcn${what}${runTag}`;

    step('exchangeInformation');
    const info = await data(api.exchangeInformation());
    const s = info.symbols.find((x) => x.symbol === SYM);
    check(s, `no ${SYM} in exchangeInformation`);
    const lot = s.filters.find((f) => f.filterType === 'LOT_SIZE');
    eq(lot.stepSize, '0.001', 'LOT_SIZE stepSize');

    step('symbolPriceTicker');
    const tk = await data(api.symbolPriceTicker({ symbol: SYM }));
    eq(tk.price, PRICE, 'ticker price');

    step('accountInformationV3');
    let acc = await data(api.accountInformationV3());
    eq(acc.totalWalletBalance, (await adminAccount(acct)).balance, 'totalWalletBalance vs admin balance');

    step('futuresAccountBalanceV3');
    const fb = await data(api.futuresAccountBalanceV3());
    const usdt = fb.find((x) => x.asset === 'USDT');
    check(usdt, 'no USDT in the balance');
    eq(usdt.balance, (await adminAccount(acct)).balance, 'USDT balance vs admin');

    step('changeInitialLeverage');
    const lev = await data(api.changeInitialLeverage({ symbol: SYM, leverage: 9 }));
    same(lev.leverage, 9, 'leverage answered');
    same((await adminPosition(acct, SYM, 'BOTH')).leverage, 9, 'admin leverage');

    step('newOrder MARKET');
    const mkt = await data(api.newOrder({ symbol: SYM, side: 'BUY', type: 'MARKET', quantity: 0.004,
        newClientOrderId: cid('mkt'), newOrderRespType: 'RESULT' }));
    same(mkt.status, 'FILLED', 'status');
    eq(mkt.executedQty, '0.004', 'executedQty');
    eq(mkt.avgPrice, PRICE, 'avgPrice');
    same(mkt.clientOrderId, cid('mkt'), 'clientOrderId');
    let ao = await adminOrder(acct, mkt.orderId);
    same(ao.status, 'FILLED', 'admin status');

    step('queryOrder by orderId');
    let q = await data(api.queryOrder({ symbol: SYM, orderId: mkt.orderId }));
    same(String(q.orderId), String(mkt.orderId), 'orderId');
    same(q.status, 'FILLED', 'status');
    eq(q.executedQty, '0.004', 'executedQty');

    step('positionInformationV2');
    let pos = await data(api.positionInformationV2({ symbol: SYM }));
    const both = pos.find((x) => x.positionSide === 'BOTH');
    check(both, `no BOTH entry: ${JSON.stringify(pos)}`);
    eq(both.positionAmt, '0.004', 'positionAmt');
    eq(both.entryPrice, PRICE, 'entryPrice');
    eq(both.leverage, 9, 'leverage');
    eq((await adminPosition(acct, SYM, 'BOTH')).positionAmt, both.positionAmt, 'admin positionAmt');

    step('positionInformationV3');
    pos = await data(api.positionInformationV3({ symbol: SYM }));
    same(pos.length, 1, 'entries');
    eq(pos[0].positionAmt, '0.004', 'positionAmt');

    step('newOrder LIMIT GTC (resting)');
    const lim = await data(api.newOrder({ symbol: SYM, side: 'BUY', type: 'LIMIT', timeInForce: 'GTC',
        quantity: 0.003, price: num(LIMIT_PRICE), newClientOrderId: cid('lmt') }));
    same(lim.status, 'NEW', 'status');
    same((await adminOrder(acct, lim.orderId)).status, 'NEW', 'admin status');

    step('queryOrder by origClientOrderId');
    q = await data(api.queryOrder({ symbol: SYM, origClientOrderId: cid('lmt') }));
    same(String(q.orderId), String(lim.orderId), 'orderId');
    same(q.status, 'NEW', 'status');
    eq(q.price, LIMIT_PRICE, 'price');

    step('currentAllOpenOrders');
    const open = await data(api.currentAllOpenOrders({ symbol: SYM }));
    same(open.length, 1, 'open orders');
    same(String(open[0].orderId), String(lim.orderId), 'the open order');

    step('cancelOrder');
    const cx = await data(api.cancelOrder({ symbol: SYM, orderId: lim.orderId }));
    same(cx.status, 'CANCELED', 'status');
    same((await adminOrder(acct, lim.orderId)).status, 'CANCELED', 'admin status');

    step('newOrder reduceOnly close');
    const cl = await data(api.newOrder({ symbol: SYM, side: 'SELL', type: 'MARKET', quantity: 0.004,
        reduceOnly: 'true', newOrderRespType: 'RESULT' }));
    same(cl.status, 'FILLED', 'status');
    same(cl.reduceOnly, true, 'reduceOnly');
    eq((await adminPosition(acct, SYM, 'BOTH')).positionAmt, 0, 'admin positionAmt after close');

    step('accountTradeList');
    const trades = await data(api.accountTradeList({ symbol: SYM }));
    const mine = trades.filter((x) => String(x.orderId) === String(mkt.orderId) || String(x.orderId) === String(cl.orderId));
    same(mine.length, 2, 'trades of the two market orders');

    step('placeMultipleOrders');
    const batch = await data(api.placeMultipleOrders({ batchOrders: [
        { symbol: SYM, side: 'BUY', type: 'LIMIT', timeInForce: 'GTC', quantity: '0.002', price: LIMIT_PRICE, newClientOrderId: cid('b1') },
        { symbol: SYM, side: 'BUY', type: 'LIMIT', timeInForce: 'GTC', quantity: '0.003', price: String(num(LIMIT_PRICE) - 100), newClientOrderId: cid('b2') },
    ] }));
    same(batch.length, 2, 'answers');
    for (const [i, bo] of batch.entries()) {
        check(bo.orderId, `batch order ${i} refused: ${JSON.stringify(bo)}`);
        same(bo.status, 'NEW', `status of batch order ${i}`);
        same(bo.clientOrderId, cid(`b${i + 1}`), `clientOrderId of batch order ${i}`);
        same((await adminOrder(acct, bo.orderId)).status, 'NEW', `admin status of batch order ${i}`);
    }

    step('cancelAllOpenOrders');
    const ca = await data(api.cancelAllOpenOrders({ symbol: SYM }));
    same(ca.code, 200, `answer ${JSON.stringify(ca)}`);
    for (const bo of batch) same((await adminOrder(acct, bo.orderId)).status, 'CANCELED', 'admin status after cancelAllOpenOrders');
    same((await data(api.currentAllOpenOrders({ symbol: SYM }))).length, 0, 'open orders after cancelAllOpenOrders');

    step('allOrders');
    const all = await data(api.allOrders({ symbol: SYM }));
    const st = Object.fromEntries(all.map((x) => [String(x.orderId), x.status]));
    for (const id of [mkt.orderId, cl.orderId]) same(st[String(id)], 'FILLED', `allOrders status of ${id}`);
    for (const id of [lim.orderId, batch[0].orderId, batch[1].orderId]) same(st[String(id)], 'CANCELED', `allOrders status of ${id}`);

    step('symbolOrderBookTicker and markPrice');
    const bt = await data(api.symbolOrderBookTicker({ symbol: SYM }));
    check(num(bt.bidPrice, 'bidPrice') <= num(PRICE) && num(bt.askPrice, 'askPrice') >= num(PRICE), `book ticker ${JSON.stringify(bt)}`);
    const mp = await data(api.markPrice({ symbol: SYM }));
    eq(mp.markPrice, PRICE, 'markPrice');

    step('notionalAndLeverageBrackets');
    const br = await data(api.notionalAndLeverageBrackets({ symbol: SYM }));
    const brs = Array.isArray(br) ? br[0] : br;
    check(brs && brs.brackets && brs.brackets.length >= 1, `brackets ${JSON.stringify(br)}`);

    step('user data stream listen key');
    const lk = await data(api.startUserDataStream());
    check(typeof lk.listenKey === 'string' && lk.listenKey.length > 0, `listenKey ${JSON.stringify(lk)}`);
    same((await admin('GET', `/admin/streams?account=${acct.name}`)).listenKey, lk.listenKey, 'admin listenKey');
    await data(api.keepaliveUserDataStream());
    await data(api.closeUserDataStream());
    same((await admin('GET', `/admin/streams?account=${acct.name}`)).listenKey, null, 'admin listenKey after close');

    step('changePositionMode');
    await data(api.changePositionMode({ dualSidePosition: 'true' }));
    same((await adminAccount(acct)).positionMode, 'hedge', 'admin positionMode');
    same((await data(api.getCurrentPositionMode())).dualSidePosition, true, 'dualSidePosition');
    await data(api.changePositionMode({ dualSidePosition: 'false' }));
    same((await adminAccount(acct)).positionMode, 'oneway', 'admin positionMode back');

    step('error mapping: unknown order');
    let err = null;
    try {
        await api.queryOrder({ symbol: SYM, orderId: 987654321 });
    } catch (e) {
        err = e;
    }
    check(err && /order does not exist/i.test(err.message), `querying an unknown order: ${err ? err.message : 'no error'}`);

    // ---- hedge mode account
    const hacct = accts.hedge;
    const h = make(hacct);

    step('hedge: getCurrentPositionMode');
    const pm = await data(h.getCurrentPositionMode());
    same(pm.dualSidePosition, true, 'dualSidePosition');

    step('hedge: newOrder LONG and SHORT');
    const hl = await data(h.newOrder({ symbol: SYM, side: 'BUY', type: 'MARKET', quantity: 0.002,
        positionSide: 'LONG', newOrderRespType: 'RESULT' }));
    same(hl.positionSide, 'LONG', 'positionSide');
    const hs = await data(h.newOrder({ symbol: SYM, side: 'SELL', type: 'MARKET', quantity: 0.005,
        positionSide: 'SHORT', newOrderRespType: 'RESULT' }));
    same(hs.positionSide, 'SHORT', 'positionSide');

    step('hedge: positionInformationV2');
    pos = await data(h.positionInformationV2({ symbol: SYM }));
    const hL = pos.find((x) => x.positionSide === 'LONG');
    const hS = pos.find((x) => x.positionSide === 'SHORT');
    check(hL && hS, `want LONG and SHORT entries: ${JSON.stringify(pos)}`);
    eq(hL.positionAmt, '0.002', 'LONG positionAmt');
    eq(hS.positionAmt, '-0.005', 'SHORT positionAmt');
    eq((await adminPosition(hacct, SYM, 'LONG')).positionAmt, hL.positionAmt, 'admin LONG');
    eq((await adminPosition(hacct, SYM, 'SHORT')).positionAmt, hS.positionAmt, 'admin SHORT');

    step('hedge: close both sides');
    await data(h.newOrder({ symbol: SYM, side: 'SELL', type: 'MARKET', quantity: 0.002, positionSide: 'LONG' }));
    await data(h.newOrder({ symbol: SYM, side: 'BUY', type: 'MARKET', quantity: 0.005, positionSide: 'SHORT' }));
    pos = await data(h.positionInformationV3({ symbol: SYM }));
    same(pos.length, 0, `open positions (${JSON.stringify(pos)})`);
    eq((await adminPosition(hacct, SYM, 'LONG')).positionAmt, 0, 'admin LONG after close');
    eq((await adminPosition(hacct, SYM, 'SHORT')).positionAmt, 0, 'admin SHORT after close');

    step('hedge: accountInformationV2');
    acc = await data(h.accountInformationV2());
    eq(acc.totalWalletBalance, (await adminAccount(hacct)).balance, 'totalWalletBalance vs admin balance');

    return `${name}: ${steps} steps`;
}

// ---------------------------------------------------------------- main

const suites = {
    'ccxt-binanceusdm': () => ccxtSuite('binanceusdm'),
    'ccxt-bybit': () => ccxtSuite('bybit'),
    'binance-connector': connectorSuite,
};

function describe(e) {
    if (e instanceof StepFailure) return e.message;
    // Library errors: their class and message (ccxt puts the exchange's JSON answer in it).
    const cls = e && e.constructor ? e.constructor.name : 'Error';
    let msg = `${cls}: ${e && e.message ? e.message : String(e)}`;
    if (e && e.response && e.response.data) msg += ` (response ${JSON.stringify(e.response.data)})`;
    return msg;
}

const lines = [];
for (const [name, run] of Object.entries(suites)) {
    if (only.length && !only.includes(name)) continue;
    if (!cfg.clients[name]) {
        console.error(`FAIL [${name}] config: no accounts for this client`);
        process.exit(1);
    }
    current = { client: name, step: 'start' };
    steps = 0;
    try {
        lines.push(await run());
    } catch (e) {
        console.error(`FAIL [${current.client}] ${current.step}: ${describe(e)}`);
        if (process.env.FIDELITY_TRACE && e && e.stack) console.error(e.stack);
        process.exit(1);
    }
}
for (const l of lines) console.log(l);
console.log('OK');
