/* sim_trades: the executions behind GET /fapi/v1/userTrades, the daemon's backfill after a
 * stream gap. Fed by a real sim_book, the recorded trade ids must be the events' trade ids, in
 * order; queries by fromId, orderId, time window, newest-first windows and limits; a bounded
 * store keeps the newest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "dec_test.h"
#include "sim_book.h"
#include "sim_trades.h"

struct fx {
    struct sbook *b;
    struct strd *t, *small;
    int64_t clock;
    int64_t event_ids[64];
    size_t nev;
};

static void emit(void *ud, struct sbook_account *a, const struct sbook_event *ev)
{
    struct fx *fx = ud;
    (void)a;
    if (ev->kind == SBOOK_EV_ORDER && ev->exec == SBOOK_X_TRADE) {
        assert_int_equal(strd_add_event(fx->t, ev), 0);
        assert_int_equal(strd_add_event(fx->small, ev), 0);
        fx->event_ids[fx->nev++] = ev->trade_id;
    } else {
        assert_int_equal(strd_add_event(fx->t, ev), -EINVAL);
    }
}

static int64_t clk(void *ud)
{
    struct fx *fx = ud;
    return fx->clock;
}

static struct sbook_order *market(struct fx *fx, struct sbook_account *a, struct sbook_symbol *s,
                                  enum sbook_side side, const char *qty, const dec_t *fills, size_t nfills)
{
    struct sbook_order_req rq = {.sym = s, .side = side, .type = SBOOK_MARKET, .qty = D(qty),
                                 .fills = fills, .nfills = nfills,
                                 .source = fills ? SBOOK_SRC_ADMIN : SBOOK_SRC_REST};
    struct sbook_order *o = NULL;
    assert_int_equal(sbook_place(fx->b, a, &rq, &o), SBOOK_OK);
    fx->clock += 1000;
    return o;
}

struct got {
    int64_t ids[64];
    size_t n;
};

static void collect(void *ud, const struct strd_trade *tr)
{
    struct got *g = ud;
    g->ids[g->n++] = tr->id;
}

static struct got query(struct strd *t, struct strd_query q)
{
    struct got g = {.n = 0};
    size_t n = strd_query(t, &q, collect, &g);
    assert_int_equal(n, g.n);
    return g;
}

static void test_trades_match_events(void **state)
{
    (void)state;
    static struct fx fx;
    memset(&fx, 0, sizeof(fx));
    fx.clock = 1700000000000;
    fx.b = sbook_new(emit, clk, &fx);
    fx.t = strd_new(0);
    fx.small = strd_new(3);
    assert_non_null(fx.b);
    struct mkt_instrument btc = {.symbol = "BTCUSDT", .step = D("0.001"), .min_qty = D("0.001"),
                                 .mkt_step = D("0.001"), .mkt_min_qty = D("0.001"), .tick = D("0.10")};
    struct mkt_instrument eth = {.symbol = "ETHUSDT", .step = D("0.01"), .min_qty = D("0.01"),
                                 .mkt_step = D("0.01"), .mkt_min_qty = D("0.01"), .tick = D("0.01")};
    assert_int_equal(sbook_add_symbol(fx.b, &btc, D("50000")), 0);
    assert_int_equal(sbook_add_symbol(fx.b, &eth, D("3000")), 0);
    assert_int_equal(sbook_add_account(fx.b, "leader", "k", "s", D("100000")), 0);
    struct sbook_account *a = sbook_account(fx.b, "leader");
    struct sbook_symbol *sb = sbook_symbol(fx.b, "BTCUSDT"), *se = sbook_symbol(fx.b, "ETHUSDT");

    dec_t split[2] = {D("0.004"), D("0.006")};
    struct sbook_order *o1 = market(&fx, a, sb, SBOOK_BUY, "0.010", split, 2); /* 2 trades */
    int64_t t_o1 = fx.clock - 1000;
    market(&fx, a, se, SBOOK_BUY, "1.00", NULL, 0);
    struct sbook_order *o3 = market(&fx, a, sb, SBOOK_BUY, "0.020", NULL, 0);
    assert_int_equal(sbook_set_price(fx.b, sb, D("51000")), 0);
    market(&fx, a, sb, SBOOK_SELL, "0.005", NULL, 0);
    assert_int_equal(fx.nev, 5);
    assert_int_equal(strd_count(fx.t), 5);

    /* Every execution, in order, with the events' trade ids and amounts. */
    for (size_t i = 0; i < 5; i++)
        assert_true(strd_at(fx.t, i)->id == fx.event_ids[i]);
    const struct strd_trade *first = strd_at(fx.t, 0), *sell = strd_at(fx.t, 4);
    assert_true(first->order_id == o1->order_id && first->side == SBOOK_BUY && first->time_ms == t_o1);
    assert_dec(first->qty, "0.004");
    assert_dec(first->price, "50000");
    assert_dec(first->quote_qty, "200");
    assert_dec(sell->qty, "0.005");
    assert_dec(sell->quote_qty, "255");
    assert_dec(sell->realized, "5"); /* (51000 - 50000) * 0.005 */
    assert_int_equal(sell->side, SBOOK_SELL);
    assert_false(sell->maker);

    /* BTC trades only, ascending; ETH has its own id sequence. */
    int64_t b0 = fx.event_ids[0];
    struct strd_query q = {.sym = sb, .from_id = -1, .start_ms = INT64_MIN, .end_ms = INT64_MAX, .limit = 500};
    struct got g = query(fx.t, q);
    assert_int_equal(g.n, 4);
    for (size_t i = 1; i < g.n; i++)
        assert_true(g.ids[i] > g.ids[i - 1]);
    assert_true(g.ids[0] == b0);
    /* fromId: the backfill after the last seen id. */
    q.from_id = g.ids[1] + 1;
    struct got g2 = query(fx.t, q);
    assert_int_equal(g2.n, 2);
    assert_true(g2.ids[0] == g.ids[2] && g2.ids[1] == g.ids[3]);
    q.limit = 1;
    assert_int_equal(query(fx.t, q).n, 1);
    /* newest: the last `limit`, still ascending. */
    q = (struct strd_query){.sym = sb, .from_id = -1, .start_ms = INT64_MIN, .end_ms = INT64_MAX, .newest = true,
                            .limit = 2};
    g2 = query(fx.t, q);
    assert_int_equal(g2.n, 2);
    assert_true(g2.ids[0] == g.ids[2] && g2.ids[1] == g.ids[3]);
    /* orderId and time window. */
    q = (struct strd_query){.sym = sb, .order_id = o3->order_id, .from_id = -1, .start_ms = INT64_MIN,
                            .end_ms = INT64_MAX, .limit = 10};
    g2 = query(fx.t, q);
    assert_int_equal(g2.n, 1);
    assert_true(g2.ids[0] == g.ids[2]);
    q = (struct strd_query){.sym = sb, .from_id = -1, .start_ms = t_o1 + 1, .end_ms = INT64_MAX, .limit = 10};
    assert_int_equal(query(fx.t, q).n, 2);
    q.limit = 0;
    assert_int_equal(query(fx.t, q).n, 0);

    /* A bounded store keeps the newest 3. */
    assert_int_equal(strd_count(fx.small), 3);
    assert_true(strd_at(fx.small, 0)->id == fx.event_ids[2]);
    assert_true(strd_at(fx.small, 2)->id == fx.event_ids[4]);
    assert_null(strd_at(fx.small, 3));

    strd_free(fx.t);
    strd_free(fx.small);
    assert_null(strd_free(NULL));
    sbook_free(fx.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trades_match_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
