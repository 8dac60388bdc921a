/* Integration test of daemon/journal.c against a real PostgreSQL (CT_TEST_PG from
 * tests/integration/with-services). Each run works in fresh databases it creates; every
 * asynchronous step runs a real uv loop until a condition or a deadline, never a sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <uv.h>

#include "journal.h"
#include "sql_migrations.h"

#include "pg_test.h"

#define DEADLINE_MS 20000

static const char *g_admin; /* CT_TEST_PG */
static char g_ci[1024];     /* conninfo of this run's main database (migrated, config synced) */
static PGconn *g_pg;        /* synchronous connection to it, for checks */
static PGconn *g_aux[2];    /* a test's extra connections (lock holders...), closed by teardown so
                             * that a failed test leaves no lock behind for the next ones */
static pid_t g_stopped;     /* a backend a test SIGSTOPped: continued by the same teardown */

/* ---- helpers -------------------------------------------------------------------------------- */

#define q1(...) pgt_q1(g_pg, __VA_ARGS__)

/* Creates a fresh database and writes its conninfo (CT_TEST_PG with dbname= replaced: in a
 * conninfo string the last value of a keyword wins). */
static void create_db(const char *name, char *ci, size_t cilen)
{
    if (pgt_create_db(g_admin, name, ci, cilen) < 0) fail_msg("cannot create database %s", name);
}

/* Runs the loop until cond(arg) holds or ms pass; a tick timer (when tick_ms) wakes the loop for
 * conditions that change outside it (another connection). Returns cond(arg). */

/* A loop with a journal, counting connection state changes. */
struct fx {
    uv_loop_t loop;
    struct journal *j;
    int ups, downs;
    char lasterr[512];
};

static void fx_on_state(void *ud, bool up, const char *msg)
{
    struct fx *f = ud;
    if (up) f->ups++;
    else {
        f->downs++;
        snprintf(f->lasterr, sizeof f->lasterr, "%s", msg ? msg : "");
        assert_non_null(msg);
    }
}

static bool cond_connected(void *arg) { return journal_connected(((struct fx *)arg)->j); }

static void fx_open(struct fx *f, const char *ci, const struct journal_opts *o, bool wait_up)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct journal_opts opts = {0};
    if (o) opts = *o;
    opts.on_state = fx_on_state;
    opts.ud = f;
    f->j = journal_new(&f->loop, ci, &opts);
    assert_non_null(f->j);
    assert_false(journal_connected(f->j)); /* nothing happens before the loop runs */
    assert_int_equal(f->ups + f->downs, 0);
    if (wait_up && !pgt_run_until(&f->loop, cond_connected, f, DEADLINE_MS, 0))
        fail_msg("journal did not connect: %s", f->lasterr);
}

static void fx_close(struct fx *f)
{
    f->j = journal_free(f->j);
    assert_null(f->j);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* every handle closed */
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

struct fillres {
    bool done;
    int status;
    bool fill_new;
    size_t n;
    bool intent_new[8];
    char err[512];
    int order; /* completion order */
};
static int g_completions;

static void fill_cb(void *ud, const struct journal_fill_result *r)
{
    struct fillres *x = ud;
    assert_false(x->done); /* exactly once */
    x->done = true;
    x->status = r->status;
    x->fill_new = r->fill_new;
    x->n = r->n;
    x->order = g_completions++;
    for (size_t i = 0; i < r->n && i < 8; i++) x->intent_new[i] = r->intent_new[i];
    snprintf(x->err, sizeof x->err, "%s", r->errmsg ? r->errmsg : "");
    if (r->status == 0) assert_null(r->errmsg);
    else assert_non_null(r->errmsg);
}

static bool cond_fill_done(void *arg) { return ((struct fillres *)arg)->done; }

struct flushres {
    bool done;
    int status;
    const char *check_sql; /* run on g_pg from inside the callback */
    char seen[256];
    const struct fillres *fill; /* was this fill's callback already called? */
    bool fill_done_then;
};

static void flush_cb(void *ud, int status)
{
    struct flushres *x = ud;
    assert_false(x->done);
    x->done = true;
    x->status = status;
    if (x->fill) x->fill_done_then = x->fill->done;
    if (x->check_sql) {
        const char *v = q1("%s", x->check_sql);
        snprintf(x->seen, sizeof x->seen, "%s", v ? v : "(null)");
    }
}

static bool cond_flush_done(void *arg) { return ((struct flushres *)arg)->done; }

static void flush_and_wait(struct fx *f, struct flushres *fr)
{
    assert_int_equal(journal_flush(f->j, flush_cb, fr), 0);
    assert_false(fr->done); /* never called from inside journal_flush */
    assert_true(pgt_run_until(&f->loop, cond_flush_done, fr, DEADLINE_MS, 0));
}

/* Ids as text (as the journal takes them); a ring of buffers keeps each fill's strings alive for
 * the rest of its test. */
static struct journal_fill mkfill(const char *symbol, int64_t trade_id)
{
    static char ids[64][2][24];
    static unsigned next;
    char(*b)[24] = ids[next++ % 64];
    snprintf(b[0], sizeof b[0], "%lld", (long long)trade_id);
    snprintf(b[1], sizeof b[1], "%lld", (long long)(9000000 + trade_id));
    return (struct journal_fill){.account = "lead", .symbol = symbol, .trade_id = b[0],
                                 .order_id = b[1], .trade_seq = trade_id, .side = "BUY",
                                 .qty = "0.013", .price = "50000.10",
                                 .event_time_ms = 1700000000123};
}

static struct journal_intent mkintent(const char *cid, const char *rule, const char *follower,
                                      const char *qty, const char *skip)
{
    return (struct journal_intent){.client_order_id = cid, .rule_id = rule, .follower = follower,
                                   .symbol = "BTCUSDT", .side = "BUY", .qty = qty,
                                   .reduce_only = false, .order_type = "MARKET",
                                   .skip_reason = skip};
}

/* Writes one fill and runs the loop until its callback. */
static void write_and_wait(struct fx *f, const struct journal_fill *fill,
                           const struct journal_intent *in, size_t n, struct fillres *res)
{
    memset(res, 0, sizeof *res);
    assert_int_equal(journal_write_fill(f->j, fill, in, n, fill_cb, res), 0);
    assert_false(res->done);
    assert_true(pgt_run_until(&f->loop, cond_fill_done, res, DEADLINE_MS, 0));
}

static const struct journal_account base_accounts[] = {
    {"lead", "binance-usdm"}, {"f1", "sim"}, {"f2", "sim"}, {"f3", "sim"}};
static const struct journal_rule base_rules[] = {
    {"r1", "lead", "f1", "multiplier", "{\"multiplier\":\"1\"}", true},
    {"r2", "lead", "f2", "multiplier", "{\"multiplier\":\"0.5\"}", true},
    {"r3", "lead", "f3", "multiplier", "{\"multiplier\":\"0.013\"}", true},
};

/* ---- group setup ---------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    char name[64], err[512];
    snprintf(name, sizeof name, "jnl_main_%d", (int)getpid());
    create_db(name, g_ci, sizeof g_ci);
    int n = journal_migrate(g_ci, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "journal_migrate: %s\n", err);
        return -1;
    }
    if (journal_sync_config(g_ci, base_accounts, 4, base_rules, 3, err, sizeof err) != 0) {
        fprintf(stderr, "journal_sync_config: %s\n", err);
        return -1;
    }
    g_pg = pgt_connect(g_ci);
    return 0;
}

static int close_aux(void **state)
{
    (void)state;
    if (g_stopped > 0) kill(g_stopped, SIGCONT);
    g_stopped = 0;
    for (int i = 0; i < 2; i++) {
        PQfinish(g_aux[i]);
        g_aux[i] = NULL;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(g_pg);
    g_pg = NULL;
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_migrate(void **state)
{
    (void)state;
    char ci[1024], err[512] = "x";
    create_db("jnl_migrate", ci, sizeof ci);
    assert_true(sql_migrations_count >= 1);

    int n = journal_migrate(ci, err, sizeof err);
    if (n < 0) fail_msg("journal_migrate: %s", err);
    assert_int_equal(n, (int)sql_migrations_count);
    assert_int_equal(journal_migrate(ci, err, sizeof err), 0); /* idempotent */

    PGconn *c = pgt_connect(ci);
    char buf[32];
    snprintf(buf, sizeof buf, "%u", sql_migrations_count);
    assert_string_equal(pgt_q1(c, "SELECT count(*) FROM schema_migrations"), buf);
    assert_string_equal(pgt_q1(c, "SELECT count(*) FROM schema_migrations WHERE applied_at IS NULL"),
                        "0");
    for (unsigned i = 0; i < sql_migrations_count; i++) {
        const char *name = pgt_q1(c, "SELECT name FROM schema_migrations WHERE version = %d",
                                 sql_migrations[i].version);
        assert_non_null(name);
        assert_string_equal(name, sql_migrations[i].name);
    }
    assert_string_equal(pgt_q1(c, "SELECT min(version) FROM schema_migrations"), "1");
    for (const char *t = "accounts\0copy_rules\0leader_fills\0follower_orders\0"; *t;
         t += strlen(t) + 1)
        assert_non_null(pgt_q1(c, "SELECT to_regclass('%s')::text", t));
    /* The migration's own rows are there once, not twice. */
    assert_string_equal(pgt_q1(c, "SELECT count(*) FROM pg_proc WHERE proname = "
                                 "'follower_order_status_rank'"), "1");
    PQfinish(c);

    /* A broken migration history: a recorded version is kept, nothing is re-applied, and a
     * failing connection is reported as such. */
    err[0] = '\0';
    assert_int_equal(journal_migrate("host=/nonexistent-ct-dir port=1 connect_timeout=2", err,
                                     sizeof err), -ENOTCONN);
    assert_non_null(strstr(err, "connect"));
    err[0] = '\0';
    assert_int_equal(journal_migrate(NULL, err, sizeof err), -EINVAL);
    assert_true(err[0] != '\0');
}

static void test_migrate_error_names_migration(void **state)
{
    (void)state;
    char ci[1024], err[512] = "";
    create_db("jnl_migrate_err", ci, sizeof ci);
    /* A table already in the way: 001 fails, rolls back, and the error names it. */
    PGconn *c = pgt_connect(ci);
    pgt_exec(c, "CREATE TABLE accounts (x int)");
    int n = journal_migrate(ci, err, sizeof err);
    assert_int_equal(n, -EIO);
    assert_non_null(strstr(err, sql_migrations[0].name));
    assert_non_null(strstr(err, "already exists"));
    assert_string_equal(pgt_q1(c, "SELECT count(*) FROM schema_migrations"), "0");
    assert_null(pgt_q1(c, "SELECT to_regclass('copy_rules')::text")); /* rolled back */
    PQfinish(c);
}

static void test_sync_config(void **state)
{
    (void)state;
    char ci[1024], err[512];
    create_db("jnl_sync", ci, sizeof ci);
    assert_true(journal_migrate(ci, err, sizeof err) >= 1);
    PGconn *c = pgt_connect(ci);

    struct journal_account accts[] = {
        {"L1", "binance-usdm"}, {"F1", "sim"}, {"F2", "sim"}, {"F3", "sim"}};
    struct journal_rule rules[] = {
        {"ra", "L1", "F1", "multiplier", "{\"multiplier\": \"0.5\"}", true},
        {"rb", "L1", "F2", "multiplier", NULL, false},
        {"rc", "L1", "F3", "multiplier", "{}", true},
        {"rold", "L1", "F1", "multiplier", "{}", true},
    };
    if (journal_sync_config(ci, accts, 4, rules, 4, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(pgt_q1(c, "SELECT count(*) FROM accounts"), "4");
    assert_string_equal(pgt_q1(c, "SELECT exchange FROM accounts WHERE name = 'L1'"), "binance-usdm");
    assert_string_equal(pgt_q1(c, "SELECT status FROM copy_rules WHERE id = 'ra'"), "active");
    assert_string_equal(pgt_q1(c, "SELECT status FROM copy_rules WHERE id = 'rb'"), "paused");
    assert_string_equal(pgt_q1(c, "SELECT params->>'multiplier' FROM copy_rules WHERE id = 'ra'"),
                        "0.5");
    assert_string_equal(pgt_q1(c, "SELECT params::text FROM copy_rules WHERE id = 'rb'"), "{}");
    assert_string_equal(pgt_q1(c, "SELECT leader || '>' || follower || ':' || sizing FROM copy_rules "
                                 "WHERE id = 'rc'"), "L1>F3:multiplier");

    /* A loss stop put rc in close_only; an unchanged rule keeps its updated_at. */
    pgt_exec(c, "UPDATE copy_rules SET status = 'close_only' WHERE id = 'rc'");
    const char *ra_updated = pgt_q1(c, "SELECT updated_at::text FROM copy_rules WHERE id = 'ra'");
    char ra_before[64];
    snprintf(ra_before, sizeof ra_before, "%s", ra_updated);

    /* Second sync: rold gone from the config, rb enabled, F1 moved exchange. */
    accts[1].exchange = "bybit-linear";
    rules[1].enabled = true;
    if (journal_sync_config(ci, accts, 4, rules, 3, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(pgt_q1(c, "SELECT exchange FROM accounts WHERE name = 'F1'"), "bybit-linear");
    assert_string_equal(pgt_q1(c, "SELECT status FROM copy_rules WHERE id = 'rold'"), "removed");
    assert_string_equal(pgt_q1(c, "SELECT status FROM copy_rules WHERE id = 'rb'"), "active");
    assert_string_equal(pgt_q1(c, "SELECT status FROM copy_rules WHERE id = 'rc'"), "close_only");
    assert_string_equal(pgt_q1(c, "SELECT updated_at::text FROM copy_rules WHERE id = 'ra'"),
                        ra_before);
    assert_string_equal(pgt_q1(c, "SELECT count(*) FROM copy_rules"), "4");
    /* Disabling pauses even a close_only rule; the partial index sees only active rules. */
    rules[2].enabled = false;
    if (journal_sync_config(ci, accts, 4, rules, 3, err, sizeof err) != 0) fail_msg("%s", err);
    assert_string_equal(pgt_q1(c, "SELECT status FROM copy_rules WHERE id = 'rc'"), "paused");
    assert_non_null(pgt_q1(c, "SELECT indexdef FROM pg_indexes WHERE indexname = "
                             "'copy_rules_active_by_leader' AND indexdef LIKE '%%WHERE%%active%%'"));

    /* Errors name the rule and roll everything back. */
    struct journal_account accts2[] = {{"L1", "sim"}};
    struct journal_rule bad[] = {{"bad-rule", "L1", "nobody", "multiplier", "{}", true}};
    err[0] = '\0';
    assert_int_equal(journal_sync_config(ci, accts2, 1, bad, 1, err, sizeof err), -EIO);
    assert_non_null(strstr(err, "bad-rule"));
    assert_non_null(strstr(err, "foreign key"));
    assert_string_equal(pgt_q1(c, "SELECT exchange FROM accounts WHERE name = 'L1'"), "binance-usdm");
    assert_string_equal(pgt_q1(c, "SELECT status FROM copy_rules WHERE id = 'ra'"), "active");
    struct journal_rule badjson[] = {{"json-rule", "L1", "F1", "multiplier", "{oops", true}};
    err[0] = '\0';
    assert_int_equal(journal_sync_config(ci, accts, 4, badjson, 1, err, sizeof err), -EIO);
    assert_non_null(strstr(err, "json-rule"));
    struct journal_rule arr[] = {{"arr-rule", "L1", "F1", "multiplier", "[1]", true}};
    assert_int_equal(journal_sync_config(ci, accts, 4, arr, 1, err, sizeof err), -EIO);
    assert_non_null(strstr(err, "arr-rule"));
    struct journal_rule empty_id[] = {{"", "L1", "F1", "multiplier", "{}", true}};
    assert_int_equal(journal_sync_config(ci, accts, 4, empty_id, 1, err, sizeof err), -EINVAL);
    assert_string_equal(pgt_q1(c, "SELECT count(*) FROM copy_rules WHERE status <> 'removed'"), "3");
    PQfinish(c);
}

static void test_fill_dedupe(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, g_ci, NULL, true);
    assert_int_equal(f.ups, 1);

    struct journal_fill fill = mkfill("BTCUSDT", 1001);
    struct journal_intent in[3] = {
        mkintent("t1001-r1", "r1", "f1", "0.013", NULL),
        mkintent("t1001-r2", "r2", "f2", "0.0065", NULL),
        mkintent("t1001-r3", "r3", "f3", "0.000", "below_min_qty"),
    };
    in[1].reduce_only = true;
    in[1].order_type = "LIMIT_IOC";
    struct fillres r;
    write_and_wait(&f, &fill, in, 3, &r);
    if (r.status) fail_msg("fill: %d %s", r.status, r.err);
    assert_true(r.fill_new);
    assert_int_equal(r.n, 3);
    assert_true(r.intent_new[0] && r.intent_new[1] && r.intent_new[2]);

    /* Exact values, as given. */
    assert_string_equal(q1("SELECT qty::text FROM leader_fills WHERE trade_id = '1001'"), "0.013");
    assert_string_equal(q1("SELECT price::text FROM leader_fills WHERE trade_id = '1001'"), "50000.10");
    assert_string_equal(q1("SELECT account || ' ' || symbol || ' ' || side || ' ' || order_id "
                           "FROM leader_fills WHERE trade_id = '1001'"), "lead BTCUSDT BUY 9001001");
    assert_string_equal(q1("SELECT (extract(epoch FROM event_time) * 1000)::bigint FROM leader_fills "
                           "WHERE trade_id = '1001'"), "1700000000123");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders fo JOIN leader_fills lf "
                           "ON lf.id = fo.leader_fill_id AND lf.event_time = fo.leader_event_time "
                           "WHERE lf.trade_id = '1001'"), "3");
    assert_string_equal(q1("SELECT qty::text FROM follower_orders WHERE client_order_id = 't1001-r1'"),
                        "0.013");
    assert_string_equal(q1("SELECT qty::text FROM follower_orders WHERE client_order_id = 't1001-r2'"),
                        "0.0065");
    assert_string_equal(q1("SELECT qty::text FROM follower_orders WHERE client_order_id = 't1001-r3'"),
                        "0.000");
    assert_string_equal(q1("SELECT status || ' ' || rule_id || ' ' || follower || ' ' || reduce_only "
                           "|| ' ' || order_type FROM follower_orders WHERE client_order_id = "
                           "'t1001-r1'"), "intent r1 f1 false MARKET");
    assert_string_equal(q1("SELECT status || ' ' || reduce_only || ' ' || order_type FROM "
                           "follower_orders WHERE client_order_id = 't1001-r2'"),
                        "intent true LIMIT_IOC");
    assert_null(q1("SELECT skip_reason FROM follower_orders WHERE client_order_id = 't1001-r1'"));
    assert_null(q1("SELECT skipped_at FROM follower_orders WHERE client_order_id = 't1001-r1'"));
    assert_string_equal(q1("SELECT status || ' ' || skip_reason FROM follower_orders WHERE "
                           "client_order_id = 't1001-r3'"), "skipped below_min_qty");
    assert_non_null(q1("SELECT skipped_at FROM follower_orders WHERE client_order_id = 't1001-r3'"));
    assert_non_null(q1("SELECT intent_at FROM follower_orders WHERE client_order_id = 't1001-r3'"));

    /* The same fill again (a replay, or a restart): nothing new, nothing to send. */
    write_and_wait(&f, &fill, in, 3, &r);
    if (r.status) fail_msg("replay: %d %s", r.status, r.err);
    assert_false(r.fill_new);
    assert_false(r.intent_new[0] || r.intent_new[1] || r.intent_new[2]);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = '1001'"), "1");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id LIKE "
                           "'t1001-%%'"), "3");

    /* Same fill, one intent not seen before (in the middle): only that one is new. */
    struct journal_intent in2[3] = {in[0], mkintent("t1001-r2b", "r2", "f2", "0.0065", NULL), in[2]};
    write_and_wait(&f, &fill, in2, 3, &r);
    assert_int_equal(r.status, 0);
    assert_false(r.fill_new);
    assert_false(r.intent_new[0]);
    assert_true(r.intent_new[1]);
    assert_false(r.intent_new[2]);
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id LIKE "
                           "'t1001-%%'"), "4");
    /* The same trade id on another symbol is another fill (Binance ids are per symbol). */
    struct journal_fill other = mkfill("ETHUSDT", 1001);
    struct journal_intent in3 = mkintent("t1001e-r1", "r1", "f1", "0.1", NULL);
    write_and_wait(&f, &other, &in3, 1, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.fill_new && r.intent_new[0]);
    /* A fill with no intents is journaled too. */
    struct journal_fill lone = mkfill("BTCUSDT", 1002);
    write_and_wait(&f, &lone, NULL, 0, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.fill_new);

    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_true(s.connected);
    assert_int_equal(s.fills_written, 5);
    assert_int_equal(s.fills_new, 3);
    assert_int_equal(s.intents_new, 5);
    assert_int_equal(s.fills_failed, 0);
    assert_int_equal(s.inflight_fills, 0);
    assert_int_equal(s.inflight_statements, 0);
    assert_true(s.writes >= 5);
    assert_true(s.write_us_total >= s.write_us_last);
    fx_close(&f);
}

static void test_fill_refused(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, g_ci, NULL, true);
    struct fillres r;
    struct journal_fill fill = mkfill("BTCUSDT", 1101);
    /* Bad input never reaches PostgreSQL. */
    struct journal_intent ok = mkintent("t1101-r1", "r1", "f1", "0.013", NULL);
    struct journal_intent bad;
    const char *bad_qty[] = {"1e3", "NaN", "-1", "", "1.", ".5", "0x10", "1,5", "Infinity"};
    for (size_t i = 0; i < sizeof bad_qty / sizeof bad_qty[0]; i++) {
        bad = ok;
        bad.qty = bad_qty[i];
        assert_int_equal(journal_write_fill(f.j, &fill, &bad, 1, fill_cb, &r), -EINVAL);
        struct journal_fill bf = fill;
        bf.price = bad_qty[i];
        assert_int_equal(journal_write_fill(f.j, &bf, &ok, 1, fill_cb, &r), -EINVAL);
    }
    struct journal_fill bf = fill;
    bf.qty = "0.000";
    assert_int_equal(journal_write_fill(f.j, &bf, &ok, 1, fill_cb, &r), -EINVAL);
    bf = fill;
    bf.side = "buy";
    assert_int_equal(journal_write_fill(f.j, &bf, &ok, 1, fill_cb, &r), -EINVAL);
    bf = fill;
    bf.trade_id = "";
    assert_int_equal(journal_write_fill(f.j, &bf, &ok, 1, fill_cb, &r), -EINVAL);
    const char *bad_cid[] = {"", "has space", "x\"y", "0123456789012345678901234567890123456",
                             "sémantique"};
    for (size_t i = 0; i < sizeof bad_cid / sizeof bad_cid[0]; i++) {
        bad = ok;
        bad.client_order_id = bad_cid[i];
        assert_int_equal(journal_write_fill(f.j, &fill, &bad, 1, fill_cb, &r), -EINVAL);
    }
    struct journal_intent dup[2] = {ok, ok};
    assert_int_equal(journal_write_fill(f.j, &fill, dup, 2, fill_cb, &r), -EINVAL);
    /* Many followers (checked sorted, not pairwise): one repeated id far apart is found. */
    enum { MANY = 40 };
    struct journal_intent many[MANY];
    char cids[MANY][32];
    for (int i = 0; i < MANY; i++) {
        snprintf(cids[i], sizeof cids[i], "t1101-m%02d", (i * 7) % MANY);
        many[i] = ok;
        many[i].client_order_id = cids[i];
    }
    many[MANY - 2].client_order_id = cids[3];
    assert_int_equal(journal_write_fill(f.j, &fill, many, MANY, fill_cb, &r), -EINVAL);
    many[MANY - 2].client_order_id = cids[MANY - 2];
    assert_int_equal(journal_write_fill(f.j, &fill, &ok, 1, NULL, &r), -EINVAL);

    /* Refused by PostgreSQL (unknown rule): an error, nothing written, the session goes on. */
    bad = ok;
    bad.rule_id = "no-such-rule";
    write_and_wait(&f, &fill, &bad, 1, &r);
    assert_int_equal(r.status, -EIO);
    assert_non_null(strstr(r.err, "foreign key"));
    assert_false(r.fill_new || r.intent_new[0]);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = '1101'"), "0");
    write_and_wait(&f, &fill, &ok, 1, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.fill_new && r.intent_new[0]);
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_int_equal(s.statement_errors, 1);
    assert_int_equal(s.fills_failed, 1);
    assert_int_equal(s.disconnects, 0);
    assert_non_null(strstr(journal_last_error(f.j), "foreign key"));
    /* the 40 distinct ids of the many-followers case are taken */
    struct journal_fill mf = mkfill("BTCUSDT", 1103);
    for (int i = 0; i < MANY; i++) snprintf(cids[i], sizeof cids[i], "t1103-m%02d", i);
    write_and_wait(&f, &mf, many, MANY, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.fill_new);
    assert_int_equal(r.n, MANY);
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id LIKE 't1103-m%%'"), "40");
    fx_close(&f);
}

static int64_t T0 = 1700000100000000; /* µs */

static void rec(struct fx *f, const char *cid, enum journal_status st, int64_t eoid,
                const char *eqty, const char *avgp, int code, const char *msg, int64_t at)
{
    char oid[24];
    snprintf(oid, sizeof oid, "%lld", (long long)eoid);
    struct journal_result r = {.client_order_id = cid, .status = st,
                               .exchange_order_id = eoid ? oid : NULL,
                               .executed_qty = eqty, .avg_price = avgp, .error_code = code,
                               .error_msg = msg, .at_us = at};
    assert_int_equal(journal_record_result(f->j, &r), 0);
}

static void test_results(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, g_ci, NULL, true);
    struct journal_fill fill = mkfill("BTCUSDT", 2001);
    struct journal_intent in[3] = {
        mkintent("t2001-a", "r1", "f1", "0.013", NULL),
        mkintent("t2001-b", "r2", "f2", "0.0065", NULL),
        mkintent("t2001-c", "r3", "f3", "0.013", NULL),
    };
    struct fillres fr;
    write_and_wait(&f, &fill, in, 3, &fr);
    assert_int_equal(fr.status, 0);

    /* Queued together, with the same order in one flush several times: split into statements so
     * each row's states apply in order. */
    rec(&f, "t2001-a", JOURNAL_SENT, 0, NULL, NULL, 0, NULL, T0 + 1);
    rec(&f, "t2001-b", JOURNAL_SENT, 0, NULL, NULL, 0, NULL, T0 + 2);
    rec(&f, "t2001-c", JOURNAL_SENT, 0, NULL, NULL, 0, NULL, T0 + 3);
    rec(&f, "t2001-a", JOURNAL_ACKED, 123456789012, NULL, NULL, 0, NULL, T0 + 10);
    rec(&f, "t2001-b", JOURNAL_REJECTED, 0, NULL, NULL, -2019, "Margin is insufficient.", T0 + 11);
    rec(&f, "t2001-c", JOURNAL_PARTIALLY_FILLED, 77, "0.005", "50001.5", 0, NULL, T0 + 12);
    rec(&f, "t2001-a", JOURNAL_FILLED, 0, "0.013", "50000.1", 0, NULL, T0 + 20);
    rec(&f, "t2001-c", JOURNAL_PARTIALLY_FILLED, 0, "0.010", "50001.25", 0, NULL, T0 + 21);
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_int_equal(s.results_queued, 8);

    struct flushres fl = {0};
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);
    journal_get_stats(f.j, &s);
    assert_int_equal(s.results_queued, 0);
    assert_int_equal(s.results_written, 8);
    assert_int_equal(s.results_stale, 0);

    assert_string_equal(q1("SELECT status || ' ' || executed_qty || ' ' || avg_price || ' ' || "
                           "exchange_order_id FROM follower_orders WHERE client_order_id = "
                           "'t2001-a'"), "filled 0.013 50000.1 123456789012");
    assert_string_equal(q1("SELECT concat_ws(' ', (extract(epoch FROM sent_at) * 1e6)::bigint - %lld,"
                           " (extract(epoch FROM acked_at) * 1e6)::bigint - %lld,"
                           " (extract(epoch FROM filled_at) * 1e6)::bigint - %lld)"
                           " FROM follower_orders WHERE client_order_id = 't2001-a'",
                           (long long)T0, (long long)T0, (long long)T0), "1 10 20");
    assert_null(q1("SELECT rejected_at FROM follower_orders WHERE client_order_id = 't2001-a'"));
    assert_null(q1("SELECT error_code FROM follower_orders WHERE client_order_id = 't2001-a'"));
    assert_string_equal(q1("SELECT status || ' ' || error_code || ' ' || error_msg FROM "
                           "follower_orders WHERE client_order_id = 't2001-b'"),
                        "rejected -2019 Margin is insufficient.");
    assert_string_equal(q1("SELECT (extract(epoch FROM rejected_at) * 1e6)::bigint - %lld FROM "
                           "follower_orders WHERE client_order_id = 't2001-b'", (long long)T0), "11");
    assert_null(q1("SELECT executed_qty FROM follower_orders WHERE client_order_id = 't2001-b'"));
    assert_string_equal(q1("SELECT status || ' ' || executed_qty || ' ' || avg_price || ' ' || "
                           "exchange_order_id FROM follower_orders WHERE client_order_id = "
                           "'t2001-c'"), "partially_filled 0.010 50001.25 77");
    assert_string_equal(q1("SELECT (extract(epoch FROM partially_filled_at) * 1e6)::bigint - %lld "
                           "FROM follower_orders WHERE client_order_id = 't2001-c'", (long long)T0),
                        "12"); /* the first time it was reached */
    assert_non_null(q1("SELECT updated_at FROM follower_orders WHERE client_order_id = 't2001-c' "
                       "AND updated_at >= intent_at"));

    /* Late and backwards results change nothing: a 'sent' after 'filled', an 'acked' after
     * 'rejected', a partial fill smaller than the one stored, 'unknown' after 'acked'... */
    rec(&f, "t2001-a", JOURNAL_SENT, 0, NULL, NULL, 0, NULL, T0 + 100);
    rec(&f, "t2001-a", JOURNAL_REJECTED, 0, NULL, NULL, -1, "late", T0 + 101);
    rec(&f, "t2001-b", JOURNAL_ACKED, 5, NULL, NULL, 0, NULL, T0 + 102);
    rec(&f, "t2001-c", JOURNAL_PARTIALLY_FILLED, 0, "0.007", NULL, 0, NULL, T0 + 103);
    rec(&f, "t2001-c", JOURNAL_UNKNOWN, 0, NULL, NULL, 0, NULL, T0 + 104);
    rec(&f, "no-such-order", JOURNAL_FILLED, 0, "1", "1", 0, NULL, T0 + 105);
    memset(&fl, 0, sizeof fl);
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);
    journal_get_stats(f.j, &s);
    assert_int_equal(s.results_stale, 6);
    assert_string_equal(q1("SELECT status || ' ' || executed_qty || ' ' || coalesce(error_code, 0) "
                           "|| ' ' || (extract(epoch FROM sent_at) * 1e6)::bigint - %lld FROM "
                           "follower_orders WHERE client_order_id = 't2001-a'", (long long)T0),
                        "filled 0.013 0 1");
    assert_string_equal(q1("SELECT status || ' ' || coalesce(exchange_order_id, '0') FROM "
                           "follower_orders WHERE client_order_id = 't2001-b'"), "rejected 0");
    assert_string_equal(q1("SELECT status || ' ' || executed_qty FROM follower_orders WHERE "
                           "client_order_id = 't2001-c'"), "partially_filled 0.010");
    assert_null(q1("SELECT unknown_at FROM follower_orders WHERE client_order_id = 't2001-c'"));

    /* ... and forward ones still apply; a non-printable byte in a message cannot poison a batch. */
    rec(&f, "t2001-c", JOURNAL_FILLED, 0, "0.013", "50001", -7, "bad \xff byte\n", T0 + 200);
    memset(&fl, 0, sizeof fl);
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);
    assert_string_equal(q1("SELECT status || ' ' || executed_qty || ' ' || avg_price || '|' || "
                           "error_msg FROM follower_orders WHERE client_order_id = 't2001-c'"),
                        "filled 0.013 50001|bad ? byte?");

    /* Refused input. */
    struct journal_result bad = {.client_order_id = "t2001-a", .status = JOURNAL_INTENT};
    assert_int_equal(journal_record_result(f.j, &bad), -EINVAL);
    bad.status = JOURNAL_SKIPPED; /* a skip needs its reason */
    assert_int_equal(journal_record_result(f.j, &bad), -EINVAL);
    bad.status = (enum journal_status)99;
    assert_int_equal(journal_record_result(f.j, &bad), -EINVAL);
    bad.status = JOURNAL_FILLED;
    bad.executed_qty = "1e-3";
    assert_int_equal(journal_record_result(f.j, &bad), -EINVAL);
    bad.executed_qty = NULL;
    bad.client_order_id = "no spaces";
    assert_int_equal(journal_record_result(f.j, &bad), -EINVAL);
    journal_get_stats(f.j, &s);
    assert_int_equal(s.results_queued, 0);
    assert_int_equal(s.results_dropped, 0);

    /* An intent never sent and too old to send (start-up reconciliation) is skipped as stale; a
     * skip never overrides a final state. */
    struct journal_fill fill2 = mkfill("BTCUSDT", 2002);
    struct journal_intent in2[1] = {mkintent("t2002-a", "r1", "f1", "0.013", NULL)};
    struct fillres fr2;
    memset(&fr2, 0, sizeof fr2);
    write_and_wait(&f, &fill2, in2, 1, &fr2);
    assert_int_equal(fr2.status, 0);
    rec(&f, "t2002-a", JOURNAL_SKIPPED, 0, NULL, NULL, 0, "stale", T0 + 200);
    rec(&f, "t2001-a", JOURNAL_SKIPPED, 0, NULL, NULL, 0, "stale", T0 + 201);
    struct flushres fl2 = {0};
    flush_and_wait(&f, &fl2);
    assert_int_equal(fl2.status, 0);
    assert_string_equal(q1("SELECT status || ' ' || skip_reason || ' ' || (skipped_at IS NOT NULL) FROM "
                           "follower_orders WHERE client_order_id = 't2002-a'"), "skipped stale true");
    assert_string_equal(q1("SELECT status || ' ' || coalesce(skip_reason, '-') FROM follower_orders "
                           "WHERE client_order_id = 't2001-a'"), "filled -");
    fx_close(&f);
}

struct many {
    struct fillres r[200];
    size_t n;
};

static bool cond_all_done(void *arg)
{
    struct many *m = arg;
    for (size_t i = 0; i < m->n; i++)
        if (!m->r[i].done) return false;
    return true;
}

static void test_many_fills(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, g_ci, NULL, true);
    static struct many m;
    memset(&m, 0, sizeof m);
    m.n = 200;
    static char cids[200][2][32];
    g_completions = 0;
    for (size_t i = 0; i < m.n; i++) {
        struct journal_fill fill = mkfill("SOLUSDT", 5000 + (int64_t)i);
        fill.qty = "10.5";
        fill.price = "150.01";
        snprintf(cids[i][0], 32, "s%zu-r1", i);
        snprintf(cids[i][1], 32, "s%zu-r2", i);
        struct journal_intent in[2] = {mkintent(cids[i][0], "r1", "f1", "10.5", NULL),
                                       mkintent(cids[i][1], "r2", "f2", "5.25", NULL)};
        in[0].symbol = in[1].symbol = "SOLUSDT";
        assert_int_equal(journal_write_fill(f.j, &fill, in, 2, fill_cb, &m.r[i]), 0);
    }
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_int_equal(s.inflight_fills, 200); /* all in the pipeline at once */
    assert_int_equal(s.inflight_statements, 400); /* two statements (one sync) per fill */
    assert_true(pgt_run_until(&f.loop, cond_all_done, &m, DEADLINE_MS, 0));
    for (size_t i = 0; i < m.n; i++) {
        if (m.r[i].status) fail_msg("fill %zu: %d %s", i, m.r[i].status, m.r[i].err);
        assert_true(m.r[i].fill_new);
        assert_true(m.r[i].intent_new[0] && m.r[i].intent_new[1]);
        assert_int_equal(m.r[i].order, (int)i); /* answered in order */
    }
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE symbol = 'SOLUSDT'"), "200");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE symbol = 'SOLUSDT'"), "400");
    assert_string_equal(q1("SELECT sum(qty)::text FROM follower_orders WHERE symbol = 'SOLUSDT'"),
                        "3150.00");
    journal_get_stats(f.j, &s);
    assert_int_equal(s.inflight_fills, 0);
    assert_int_equal(s.fills_written, 200);
    assert_int_equal(s.intents_new, 400);

    /* Results for all of them, recorded back to back: grouped into batches of at most
     * batch_size (100) rows, far fewer statements than results. */
    uint64_t writes_before = s.writes;
    for (size_t i = 0; i < m.n; i++)
        for (int k = 0; k < 2; k++)
            rec(&f, cids[i][k], JOURNAL_FILLED, 1000 + (int64_t)i, k ? "5.25" : "10.5", "150.01", 0,
                NULL, 0);
    struct flushres fl = {0};
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);
    journal_get_stats(f.j, &s);
    assert_int_equal(s.results_written, 400);
    assert_true(s.writes - writes_before >= 4);   /* 400 rows, at most 100 per statement */
    assert_true(s.writes - writes_before <= 40);  /* grouped, not one per result */
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE symbol = 'SOLUSDT' AND "
                           "status = 'filled' AND filled_at IS NOT NULL"), "400");
    fx_close(&f);
}

static void test_flush_durable(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, g_ci, NULL, true);
    struct fillres fr;
    struct journal_fill fill = mkfill("BTCUSDT", 3001);
    struct journal_intent in = mkintent("t3001-a", "r1", "f1", "0.013", NULL);
    write_and_wait(&f, &fill, &in, 1, &fr);
    assert_int_equal(fr.status, 0);

    /* A flush with nothing pending still answers, from the loop. */
    struct flushres fl = {0};
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);

    rec(&f, "t3001-a", JOURNAL_SENT, 0, NULL, NULL, 0, NULL, 0);
    rec(&f, "t3001-a", JOURNAL_FILLED, 42, "0.013", "50000.1", 0, NULL, 0);
    /* Not yet in the database: write-behind. */
    assert_string_equal(q1("SELECT status FROM follower_orders WHERE client_order_id = 't3001-a'"),
                        "intent");
    memset(&fl, 0, sizeof fl);
    fl.check_sql = "SELECT status || ' ' || executed_qty FROM follower_orders WHERE "
                   "client_order_id = 't3001-a'";
    struct flushres fl2 = {.check_sql = fl.check_sql};
    assert_int_equal(journal_flush(f.j, flush_cb, &fl), 0);
    assert_int_equal(journal_flush(f.j, flush_cb, &fl2), 0);
    assert_true(pgt_run_until(&f.loop, cond_flush_done, &fl2, DEADLINE_MS, 0));
    assert_true(fl.done);
    assert_int_equal(fl.status, 0);
    assert_string_equal(fl.seen, "filled 0.013"); /* seen by another connection, in the callback */
    assert_string_equal(fl2.seen, "filled 0.013");
    /* at_us = 0 means "now": the timestamps are set and recent. */
    assert_string_equal(q1("SELECT sent_at <= filled_at AND filled_at > now() - interval '1 hour' "
                           "FROM follower_orders WHERE client_order_id = 't3001-a'"), "t");

    /* A flush also waits for fills in flight. */
    struct fillres fr2 = {0};
    struct journal_fill fill2 = mkfill("BTCUSDT", 3002);
    struct journal_intent in2 = mkintent("t3002-a", "r1", "f1", "0.013", NULL);
    assert_int_equal(journal_write_fill(f.j, &fill2, &in2, 1, fill_cb, &fr2), 0);
    memset(&fl, 0, sizeof fl);
    fl.check_sql = "SELECT status FROM follower_orders WHERE client_order_id = 't3002-a'";
    fl.fill = &fr2;
    assert_int_equal(journal_flush(f.j, flush_cb, &fl), 0);
    assert_true(pgt_run_until(&f.loop, cond_flush_done, &fl, DEADLINE_MS, 0));
    assert_true(fl.fill_done_then); /* the fill's callback came first */
    assert_int_equal(fr2.status, 0);
    assert_string_equal(fl.seen, "intent");
    fx_close(&f);
}

/* pg_stat_activity is read through a separate connection (a transaction holds its snapshot). */
struct waitlock {
    PGconn *c;
    const char *app;
};

static bool cond_waiting_on_lock(void *arg)
{
    struct waitlock *w = arg;
    const char *v = pgt_q1(w->c, "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'%s' AND wait_event_type = 'Lock'", w->app);
    return v && strcmp(v, "0") != 0;
}

struct ups_at_least {
    struct fx *f;
    int n;
};

static bool cond_ups(void *arg)
{
    struct ups_at_least *u = arg;
    return u->f->ups >= u->n && journal_connected(u->f->j);
}

static void test_connection_lost(void **state)
{
    (void)state;
    char ci[1200];
    snprintf(ci, sizeof ci, "%s application_name=jnl_kill", g_ci);
    struct fx f;
    struct journal_opts o = {.backoff_min_ms = 10, .backoff_max_ms = 50};
    fx_open(&f, ci, &o, true);
    struct fillres fr;
    struct journal_fill fill = mkfill("XRPUSDT", 4001);
    struct journal_intent in = mkintent("t4001-a", "r1", "f1", "5", NULL);
    in.symbol = "XRPUSDT";
    write_and_wait(&f, &fill, &in, 1, &fr);
    assert_int_equal(fr.status, 0);

    /* Block inserts into leader_fills from another session, so the next fill stays in flight. */
    PGconn *locker = g_aux[0] = pgt_connect(g_ci);
    pgt_exec(locker, "BEGIN");
    pgt_exec(locker, "LOCK TABLE leader_fills IN SHARE ROW EXCLUSIVE MODE");
    struct journal_fill fill2 = mkfill("XRPUSDT", 4002);
    struct journal_intent in2 = mkintent("t4002-a", "r1", "f1", "5", NULL);
    in2.symbol = "XRPUSDT";
    memset(&fr, 0, sizeof fr);
    assert_int_equal(journal_write_fill(f.j, &fill2, &in2, 1, fill_cb, &fr), 0);
    /* A result queued behind it goes out in the same pipeline. */
    rec(&f, "t4001-a", JOURNAL_FILLED, 9, "5", "0.5", 0, NULL, 0);
    PGconn *watch = g_aux[1] = pgt_connect(g_ci);
    struct waitlock wl = {watch, "jnl_kill"};
    assert_true(pgt_run_until(&f.loop, cond_waiting_on_lock, &wl, DEADLINE_MS, 2));
    /* Let the loop send the queued result too (it is behind the blocked fill on the server). */
    struct journal_stats s;
    for (int i = 0; i < 100; i++) {
        journal_get_stats(f.j, &s);
        if (s.inflight_statements == 3) break;
        uv_run(&f.loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(s.inflight_statements, 3); /* the fill's two, the results' one */
    assert_false(fr.done);

    /* Kill the journal's backend: the fill in flight fails, its intents must not be sent. */
    assert_string_equal(pgt_q1(watch, "SELECT count(pg_terminate_backend(pid)) FROM "
                                     "pg_stat_activity WHERE application_name = 'jnl_kill'"), "1");
    assert_true(pgt_run_until(&f.loop, cond_fill_done, &fr, DEADLINE_MS, 0));
    assert_int_equal(fr.status, -ECONNRESET);
    assert_false(fr.intent_new[0]);
    assert_true(f.downs >= 1);
    assert_true(f.lasterr[0] != '\0');
    pgt_exec(locker, "ROLLBACK");

    /* It reconnects by itself; the result that was in flight is sent again and applied. */
    struct ups_at_least u = {&f, 2};
    assert_true(pgt_run_until(&f.loop, cond_ups, &u, DEADLINE_MS, 0));
    struct flushres fl = {.check_sql = "SELECT status FROM follower_orders WHERE client_order_id "
                                       "= 't4001-a'"};
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);
    assert_string_equal(fl.seen, "filled");
    /* The killed statement rolled back; written again, it is new. */
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = '4002'"), "0");
    write_and_wait(&f, &fill2, &in2, 1, &fr);
    assert_int_equal(fr.status, 0);
    assert_true(fr.fill_new && fr.intent_new[0]);
    journal_get_stats(f.j, &s);
    assert_int_equal(s.disconnects, 1);
    assert_int_equal(s.connects, 2);
    assert_int_equal(s.fills_failed, 1);
    fx_close(&f);
}

static void test_statement_timeout(void **state)
{
    (void)state;
    char ci[1200];
    snprintf(ci, sizeof ci, "%s application_name=jnl_slow", g_ci);
    struct fx f;
    struct journal_opts o = {.timeout_ms = 300, .backoff_min_ms = 10, .backoff_max_ms = 20,
                             .slow_ms = 50};
    fx_open(&f, ci, &o, true);
    PGconn *locker = g_aux[0] = pgt_connect(g_ci);
    pgt_exec(locker, "BEGIN");
    pgt_exec(locker, "LOCK TABLE leader_fills IN SHARE ROW EXCLUSIVE MODE");
    struct fillres fr = {0};
    struct journal_fill fill = mkfill("ADAUSDT", 6001);
    struct journal_intent in = mkintent("t6001-a", "r1", "f1", "5", NULL);
    in.symbol = "ADAUSDT";
    assert_int_equal(journal_write_fill(f.j, &fill, &in, 1, fill_cb, &fr), 0);
    struct flushres fl = {0};
    assert_int_equal(journal_flush(f.j, flush_cb, &fl), 0);
    assert_true(pgt_run_until(&f.loop, cond_fill_done, &fr, DEADLINE_MS, 0));
    assert_int_equal(fr.status, -ETIMEDOUT); /* outcome unknown: send nothing */
    assert_false(fr.intent_new[0]);
    assert_true(pgt_run_until(&f.loop, cond_flush_done, &fl, DEADLINE_MS, 0));
    assert_int_equal(fl.status, -EIO); /* something queued before it failed */
    pgt_exec(locker, "ROLLBACK");
    struct ups_at_least u = {&f, 2};
    assert_true(pgt_run_until(&f.loop, cond_ups, &u, DEADLINE_MS, 0));
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_int_equal(s.disconnects, 1);
    assert_true(strstr(journal_last_error(f.j), "300 ms") != NULL);
    /* The replay after the timeout is deduped whether or not the first attempt committed: it is
     * never sent twice. */
    write_and_wait(&f, &fill, &in, 1, &fr);
    assert_int_equal(fr.status, 0);
    fx_close(&f);
}

/* The loop itself stalls (a callback busy for longer than timeout_ms: a fill copied to 10,000
 * followers, a long reload) while PostgreSQL is fine. libuv runs timers before it polls, so the
 * statement deadline fires before the answer waiting in the socket is read: that must not count
 * as PostgreSQL not answering. Each fill below waits on a lock (a legitimately slow statement,
 * well within the deadline) when the loop stalls, at phases across the 200 ms deadline:
 *  - the lock goes at the stall's start and the stall ends just past the deadline: the answer
 *    is in the socket when the deadline fires only a little late;
 *  - the lock goes at the stall's end, long past the deadline: the answer cannot be there yet,
 *    but the deadline fired late, so the statement gets one more full period.
 * Then a SIGSTOPped backend, with the loop stalled as well: the deadline still trips. */
struct jstall {
    uv_timer_t t;
    PGconn *locker;     /* holds the lock in a transaction; ends it as told */
    bool release_first; /* ROLLBACK (waited for) before the stall, else sent after it */
    uint64_t until_ns;  /* uv_hrtime() the stall lasts until */
    bool done;
};

static void on_jstall(uv_timer_t *t)
{
    struct jstall *s = t->data;
    if (s->locker && s->release_first) pgt_exec(s->locker, "ROLLBACK");
    for (uint64_t now; (now = uv_hrtime()) < s->until_ns;) /* the loop does nothing meanwhile */
        usleep((useconds_t)((s->until_ns - now) / 1000u + 1));
    /* sent, not waited for: the journal's statement goes on only after this callback */
    if (s->locker && !s->release_first)
        assert_int_equal(PQsendQuery(s->locker, "ROLLBACK"), 1);
    s->done = true;
}

/* One fill, its statement blocked by the lock when the loop stalls `phase_ms` after the write,
 * for as long as `stall_end_ms` after the write. */
static void stall_one(struct fx *f, PGconn *locker, PGconn *watch, int64_t trade_id,
                      unsigned phase_ms, unsigned stall_end_ms, bool release_first)
{
    char cid[32];
    snprintf(cid, sizeof cid, "stall%lld", (long long)trade_id);
    struct journal_fill fill = mkfill("LTCUSDT", trade_id);
    struct journal_intent in = mkintent(cid, "r1", "f1", "2", NULL);
    in.symbol = "LTCUSDT";
    pgt_exec(locker, "BEGIN");
    pgt_exec(locker, "LOCK TABLE leader_fills IN SHARE ROW EXCLUSIVE MODE");
    struct fillres fr = {0};
    uint64_t t0 = uv_hrtime();
    assert_int_equal(journal_write_fill(f->j, &fill, &in, 1, fill_cb, &fr), 0);
    if (phase_ms >= 20) { /* the statement is really waiting on the lock when the stall starts */
        struct waitlock wl = {watch, "jnl_stall"};
        assert_true(pgt_run_until(&f->loop, cond_waiting_on_lock, &wl, DEADLINE_MS, 2));
    }
    struct jstall s = {.locker = locker, .release_first = release_first,
                       .until_ns = t0 + (uint64_t)stall_end_ms * 1000000u};
    uv_timer_init(&f->loop, &s.t);
    s.t.data = &s;
    uint64_t el = (uv_hrtime() - t0) / 1000000u;
    uv_timer_start(&s.t, on_jstall, el >= phase_ms ? 0 : phase_ms - el, 0);
    assert_true(pgt_run_until(&f->loop, cond_fill_done, &fr, DEADLINE_MS, 0));
    assert_true(s.done);
    uv_close((uv_handle_t *)&s.t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* s is on this stack: closed before it goes */
    if (fr.status) fail_msg("fill %lld (stall %u..%u ms, lock released %s): %d %s",
                            (long long)trade_id, phase_ms, stall_end_ms,
                            release_first ? "first" : "after", fr.status, fr.err);
    assert_true(fr.fill_new);
    assert_true(fr.intent_new[0]);
    for (PGresult *r; (r = PQgetResult(locker));) PQclear(r); /* the ROLLBACK sent after */
}

/* Nothing dropped, failed or moved to the spool: the n fills written straight to PostgreSQL. */
static void assert_undisturbed(const struct fx *f, uint64_t n)
{
    struct journal_stats s;
    journal_get_stats(f->j, &s);
    assert_int_equal(f->downs, 0);
    assert_int_equal(s.disconnects, 0);
    assert_int_equal(s.connects, 1);
    assert_int_equal(s.fills_failed, 0);
    assert_int_equal(s.fills_written, n);
    assert_int_equal(s.spool_fills, 0);
    assert_int_equal(s.spool_diverted, 0);
}

static void test_loop_stall_is_not_a_timeout(void **state)
{
    (void)state;
    char ci[1200];
    snprintf(ci, sizeof ci, "%s application_name=jnl_stall", g_ci);
    struct fx f;
    struct journal_opts o = {.timeout_ms = 200, .backoff_min_ms = 10, .backoff_max_ms = 20};
    fx_open(&f, ci, &o, true);
    PGconn *locker = g_aux[0] = pgt_connect(g_ci);
    PGconn *watch = g_aux[1] = pgt_connect(g_ci);

    /* answered during the stall; the deadline fires 5 ms late */
    static const unsigned phases[] = {0, 40, 80, 120};
    int64_t tid = 11001;
    for (size_t i = 0; i < sizeof phases / sizeof *phases; i++)
        stall_one(&f, locker, watch, tid++, phases[i], 205, true);
    /* answered only after the stall, which ended long past the deadline */
    static const unsigned late[][2] = {{0, 450}, {60, 300}, {120, 600}, {190, 420}};
    for (size_t i = 0; i < sizeof late / sizeof *late; i++)
        stall_one(&f, locker, watch, tid++, late[i][0], late[i][1], false);

    assert_undisturbed(&f, (uint64_t)(tid - 11001));
    /* every write landed exactly once */
    assert_string_equal(q1("SELECT count(*) || ' ' || count(DISTINCT trade_id) FROM leader_fills "
                           "WHERE symbol = 'LTCUSDT'"), "8 8");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id LIKE "
                           "'stall%%'"), "8");

    /* A stopped backend (the kernel still takes our bytes) never answers: the deadline trips,
     * even with the loop stalled past it (one more period, not more). */
    const char *pid = pgt_q1(watch, "SELECT pid FROM pg_stat_activity WHERE application_name = "
                                    "'jnl_stall'");
    assert_non_null(pid);
    g_stopped = (pid_t)atol(pid);
    assert_int_equal(kill(g_stopped, SIGSTOP), 0);
    struct fillres fr = {0};
    struct journal_fill fill = mkfill("LTCUSDT", tid);
    struct journal_intent in = mkintent("stall-stopped", "r1", "f1", "2", NULL);
    in.symbol = "LTCUSDT";
    uint64_t t0 = uv_hrtime();
    assert_int_equal(journal_write_fill(f.j, &fill, &in, 1, fill_cb, &fr), 0);
    struct jstall st = {.until_ns = t0 + 450 * 1000000u};
    uv_timer_init(&f.loop, &st.t);
    st.t.data = &st;
    uv_timer_start(&st.t, on_jstall, 50, 0);
    assert_true(pgt_run_until(&f.loop, cond_fill_done, &fr, DEADLINE_MS, 0));
    uv_close((uv_handle_t *)&st.t, NULL);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_int_equal(fr.status, -ETIMEDOUT); /* outcome unknown: send nothing */
    assert_false(fr.intent_new[0]);
    assert_true(f.downs >= 1);
    assert_non_null(strstr(journal_last_error(f.j), "no answer within 200 ms"));
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_int_equal(s.disconnects, 1);

    /* Continued, the old backend may still commit what it had received; the rewrite reports
     * exactly what it finds, and the fill is there once. */
    assert_int_equal(kill(g_stopped, SIGCONT), 0);
    g_stopped = 0;
    struct ups_at_least u = {&f, 2};
    assert_true(pgt_run_until(&f.loop, cond_ups, &u, DEADLINE_MS, 0));
    write_and_wait(&f, &fill, &in, 1, &fr);
    assert_int_equal(fr.status, 0);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE symbol = 'LTCUSDT' AND "
                           "trade_id = '%lld'", (long long)tid), "1");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id = "
                           "'stall-stopped'"), "1");
    fx_close(&f);
}

/* The same with a spool: a fill answered while the loop was stalled past spool_after_ms is not
 * taken for a slow one (moved to the spool) either. */
static void test_loop_stall_is_not_slow(void **state)
{
    (void)state;
    const char *tmp = getenv("CT_TEST_TMP");
    char dir[512], ci[1200];
    snprintf(dir, sizeof dir, "%s/jnl-stall-spool-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(ci, sizeof ci, "%s application_name=jnl_stall", g_ci);
    struct fx f;
    struct journal_opts o = {.spool_dir = dir, .spool_after_ms = 100};
    fx_open(&f, ci, &o, true);
    PGconn *locker = g_aux[0] = pgt_connect(g_ci);
    PGconn *watch = g_aux[1] = pgt_connect(g_ci);
    stall_one(&f, locker, watch, 11101, 0, 130, true);
    stall_one(&f, locker, watch, 11102, 30, 140, true);
    assert_undisturbed(&f, 2);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('11101', '11102')"), "2");
    fx_close(&f);
}

/* The same fill written concurrently by another transaction (another daemon, or the orphaned
 * backend of a statement the journal timed out): the journal waits for it, then reports exactly
 * what it inserted itself. */
static void race_one(struct fx *f, PGconn *other, PGconn *watch, int64_t trade_id, bool commit)
{
    char sql[1024], cid_a[32], cid_b[32];
    snprintf(cid_a, sizeof cid_a, "race%lld-a", (long long)trade_id);
    snprintf(cid_b, sizeof cid_b, "race%lld-b", (long long)trade_id);
    pgt_exec(other, "BEGIN");
    snprintf(sql, sizeof sql, "INSERT INTO leader_fills (account, symbol, trade_id, order_id, side, "
             "qty, price, event_time) VALUES ('lead', 'BNBUSDT', %lld, 1, 'BUY', 0.013, 50000.10, "
             "'2023-11-14 22:13:20.123+00')", (long long)trade_id);
    pgt_exec(other, sql);
    snprintf(sql, sizeof sql, "INSERT INTO follower_orders (client_order_id, leader_fill_id, "
             "leader_event_time, rule_id, follower, symbol, side, qty, order_type) SELECT '%s', id, "
             "event_time, 'r1', 'f1', 'BNBUSDT', 'BUY', 1, 'MARKET' FROM leader_fills WHERE "
             "symbol = 'BNBUSDT' AND trade_id = '%lld'", cid_a, (long long)trade_id);
    pgt_exec(other, sql);

    struct journal_fill fill = mkfill("BNBUSDT", trade_id);
    struct journal_intent in[2] = {mkintent(cid_a, "r1", "f1", "1", NULL),
                                   mkintent(cid_b, "r2", "f2", "1", NULL)};
    in[0].symbol = in[1].symbol = "BNBUSDT";
    struct fillres r = {0};
    assert_int_equal(journal_write_fill(f->j, &fill, in, 2, fill_cb, &r), 0);
    struct waitlock wl = {watch, "jnl_race"};
    assert_true(pgt_run_until(&f->loop, cond_waiting_on_lock, &wl, DEADLINE_MS, 2));
    assert_false(r.done);
    pgt_exec(other, commit ? "COMMIT" : "ROLLBACK");
    assert_true(pgt_run_until(&f->loop, cond_fill_done, &r, DEADLINE_MS, 0));
    if (r.status) fail_msg("concurrent fill (%s): %d %s", commit ? "commit" : "rollback", r.status,
                           r.err);
    assert_int_equal(r.fill_new, !commit);
    assert_int_equal(r.intent_new[0], !commit); /* the other transaction's intent, if it stayed */
    assert_true(r.intent_new[1]);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE symbol = 'BNBUSDT' AND "
                           "trade_id = '%lld'", (long long)trade_id), "1");
    assert_string_equal(q1("SELECT count(DISTINCT leader_fill_id) FROM follower_orders WHERE "
                           "client_order_id IN ('%s', '%s')", cid_a, cid_b), "1");
}

static void test_concurrent_same_fill(void **state)
{
    (void)state;
    char ci[1200];
    snprintf(ci, sizeof ci, "%s application_name=jnl_race", g_ci);
    struct fx f;
    fx_open(&f, ci, NULL, true);
    PGconn *other = g_aux[0] = pgt_connect(g_ci);
    PGconn *watch = g_aux[1] = pgt_connect(g_ci);
    race_one(&f, other, watch, 10001, true);
    race_one(&f, other, watch, 10002, false);
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_int_equal(s.fills_failed, 0);
    assert_int_equal(s.disconnects, 0);
    fx_close(&f);
}

static bool cond_downs2(void *arg) { return ((struct fx *)arg)->downs >= 2; }

static void test_not_connected(void **state)
{
    (void)state;
    errno = 0;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_null(journal_new(&loop, "this is = not = a conninfo", NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);

    struct fx f;
    struct journal_opts o = {.backoff_min_ms = 5, .backoff_max_ms = 10};
    fx_open(&f, "host=/nonexistent-ct-dir port=1", &o, false);
    assert_true(pgt_run_until(&f.loop, cond_downs2, &f, DEADLINE_MS, 0)); /* it keeps retrying */
    assert_int_equal(f.ups, 0);
    assert_non_null(strstr(f.lasterr, "nonexistent-ct-dir"));
    struct fillres fr = {0};
    struct journal_fill fill = mkfill("BTCUSDT", 7001);
    struct journal_intent in = mkintent("t7001-a", "r1", "f1", "1", NULL);
    assert_int_equal(journal_write_fill(f.j, &fill, &in, 1, fill_cb, &fr), -ENOTCONN);
    rec(&f, "t7001-a", JOURNAL_SENT, 0, NULL, NULL, 0, NULL, 0); /* kept for later */
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_false(s.connected);
    assert_true(s.connect_failures >= 2);
    assert_int_equal(s.results_queued, 1);
    struct flushres fl = {0};
    assert_int_equal(journal_flush(f.j, flush_cb, &fl), 0);
    fx_close(&f); /* the pending flush is cancelled */
    assert_true(fl.done);
    assert_int_equal(fl.status, -ECANCELED);
    assert_false(fr.done);
}

/* journal_free from inside a callback: later callbacks still come exactly once, cancelled. */
struct freeing {
    struct fx *f;
    struct fillres r[3];
};

static void fill_cb_then_free(void *ud, const struct journal_fill_result *r)
{
    struct freeing *x = ud;
    fill_cb(&x->r[0], r);
    x->f->j = journal_free(x->f->j);
}

static void test_free_with_work_pending(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, g_ci, NULL, true);
    struct journal_fill fill = mkfill("DOTUSDT", 8001);
    struct journal_intent in = mkintent("t8001-a", "r1", "f1", "1", NULL);
    in.symbol = "DOTUSDT";
    static struct freeing x;
    memset(&x, 0, sizeof x);
    x.f = &f;
    assert_int_equal(journal_write_fill(f.j, &fill, &in, 1, fill_cb_then_free, &x), 0);
    fill.trade_id = "8002";
    in.client_order_id = "t8002-a";
    assert_int_equal(journal_write_fill(f.j, &fill, &in, 1, fill_cb, &x.r[1]), 0);
    struct flushres fl = {0};
    assert_int_equal(journal_flush(f.j, flush_cb, &fl), 0);
    assert_true(pgt_run_until(&f.loop, cond_fill_done, &x.r[0], DEADLINE_MS, 0));
    assert_null(f.j);
    assert_int_equal(x.r[0].status, 0);
    assert_true(x.r[1].done); /* cancelled when the journal was really freed */
    assert_int_equal(x.r[1].status, -ECANCELED);
    assert_true(fl.done);
    assert_int_equal(fl.status, -ECANCELED);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f.loop), 0);

    /* Freed right after a write: the callback runs inside journal_free, cancelled. */
    fx_open(&f, g_ci, NULL, true);
    struct fillres fr = {0};
    fill.trade_id = "8003";
    in.client_order_id = "t8003-a";
    assert_int_equal(journal_write_fill(f.j, &fill, &in, 1, fill_cb, &fr), 0);
    rec(&f, "t8001-a", JOURNAL_SENT, 0, NULL, NULL, 0, NULL, 0);
    f.j = journal_free(f.j);
    assert_true(fr.done);
    assert_int_equal(fr.status, -ECANCELED);
    assert_false(fr.intent_new[0]);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f.loop), 0);
    assert_null(journal_free(NULL));
}

static void test_durability_os(void **state)
{
    (void)state;
    char ci[1200];
    snprintf(ci, sizeof ci, "%s application_name=jnl_os", g_ci);
    struct fx f;
    struct journal_opts o = {.durability = JOURNAL_DURABILITY_OS, .batch_size = 2,
                             .flush_interval_ms = 5};
    fx_open(&f, ci, &o, true);
    struct fillres fr;
    struct journal_fill fill = mkfill("LTCUSDT", 9001);
    struct journal_intent in[3] = {mkintent("t9001-a", "r1", "f1", "1", NULL),
                                   mkintent("t9001-b", "r2", "f2", "1", NULL),
                                   mkintent("t9001-c", "r3", "f3", "1", NULL)};
    for (int i = 0; i < 3; i++) in[i].symbol = "LTCUSDT";
    write_and_wait(&f, &fill, in, 3, &fr);
    assert_int_equal(fr.status, 0);
    /* The session is up under its own name. (synchronous_commit is a per-session setting that
     * another session cannot read; this is a smoke test of the OS mode.) */
    assert_string_equal(q1("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'jnl_os'"),
                        "1");
    struct journal_stats s0, s;
    journal_get_stats(f.j, &s0);
    for (int i = 0; i < 3; i++)
        rec(&f, in[i].client_order_id, JOURNAL_FILLED, 1, "1", "2", 0, NULL, 0);
    struct flushres fl = {.check_sql = "SELECT count(*) FROM follower_orders WHERE client_order_id "
                                       "LIKE 't9001-%' AND status = 'filled'"};
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);
    assert_string_equal(fl.seen, "3");
    journal_get_stats(f.j, &s);
    assert_int_equal(s.writes - s0.writes, 2); /* batch_size 2: two statements for 3 results */
    fx_close(&f);
}

/* ---- partitions (sql/007) and position snapshots (sql/008) ---------------------------------- */

/* "follower_orders_YYYYMM" of the month `months` from now (UTC), as PostgreSQL computes it. */
static const char *part_name(int months)
{
    static char buf[4][64];
    static unsigned k;
    char *b = buf[k++ % 4];
    snprintf(b, 64, "follower_orders_%s",
             q1("SELECT to_char(now() AT TIME ZONE 'UTC' + make_interval(months => %d), 'YYYYMM')",
                months));
    return b;
}

/* ms since the epoch of the middle of the month `months` from now (UTC). */
static int64_t mid_month_ms(int months)
{
    return atoll(q1("SELECT (extract(epoch FROM (date_trunc('month', now() AT TIME ZONE 'UTC')"
                    " + make_interval(months => %d) + interval '14 days 3 hours')"
                    " AT TIME ZONE 'UTC') * 1000)::bigint", months));
}

static void test_partitions(void **state)
{
    (void)state;
    /* journal_migrate made this month and the next three; calling again creates nothing. */
    for (int m = 0; m <= 3; m++)
        assert_non_null(q1("SELECT to_regclass('%s')::text", part_name(m)));
    assert_string_equal(q1("SELECT ensure_follower_order_partitions(3)"), "0");
    assert_string_equal(q1("SELECT count(*) FROM pg_inherits WHERE inhparent = "
                           "'follower_orders'::regclass AND inhrelid = 'follower_orders_default'::regclass"),
                        "1");

    struct fx f;
    fx_open(&f, g_ci, NULL, true);
    struct fillres r;
    /* An intent lands in its fill's month. */
    struct journal_fill fill = mkfill("BTCUSDT", 7001);
    fill.event_time_ms = mid_month_ms(1);
    struct journal_intent in[2] = {mkintent("t7001-r1", "r1", "f1", "0.013", NULL),
                                   mkintent("t7001-r2", "r2", "f2", "0.0065", NULL)};
    write_and_wait(&f, &fill, in, 2, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.fill_new && r.intent_new[0] && r.intent_new[1]);
    assert_string_equal(q1("SELECT string_agg(DISTINCT tableoid::regclass::text, ',') FROM "
                           "follower_orders WHERE client_order_id LIKE 't7001-%%'"), part_name(1));
    /* A fill of 2023 (mkfill's time) has no monthly partition: the default one takes it. */
    assert_string_equal(q1("SELECT tableoid::regclass::text FROM follower_orders WHERE "
                           "client_order_id = 't1001-r1'"), "follower_orders_default");

    /* The same intent again is refused across the partitioned table: written again with its fill
     * (a replay), it is not new; inserted by hand with the fill's time, the unique key says no. */
    write_and_wait(&f, &fill, in, 2, &r);
    assert_int_equal(r.status, 0);
    assert_false(r.fill_new || r.intent_new[0] || r.intent_new[1]);
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id = 't7001-r1'"),
                        "1");
    PGresult *pr = PQexec(g_pg, "INSERT INTO follower_orders (client_order_id, leader_fill_id,"
                                " leader_event_time, rule_id, follower, symbol, side, qty, order_type)"
                                " SELECT client_order_id, leader_fill_id, leader_event_time, rule_id,"
                                " follower, symbol, side, qty, order_type FROM follower_orders"
                                " WHERE client_order_id = 't7001-r1'");
    assert_int_equal(PQresultStatus(pr), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(pr, PG_DIAG_SQLSTATE), "23505");
    /* (the partition's own index of the key: follower_orders_YYYYMM_client_order_id_...) */
    assert_non_null(strstr(PQresultErrorMessage(pr), "client_order_id"));
    PQclear(pr);
    /* Results still find it (the lookup by client order id spans the partitions). */
    rec(&f, "t7001-r1", JOURNAL_FILLED, 77, "0.013", "50000", 0, NULL, 0);
    struct flushres fl = {.check_sql = "SELECT status FROM follower_orders WHERE client_order_id = "
                                       "'t7001-r1'"};
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);
    assert_string_equal(fl.seen, "filled");

    /* A fill seven months ahead (a clock gone wrong, or partitions not kept up) goes to the
     * default partition; creating its month's partition then moves it there. */
    struct journal_fill far = mkfill("BTCUSDT", 7002);
    far.event_time_ms = mid_month_ms(7);
    struct journal_intent fin = mkintent("t7002-r1", "r1", "f1", "0.013", NULL);
    write_and_wait(&f, &far, &fin, 1, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(q1("SELECT tableoid::regclass::text FROM follower_orders WHERE "
                           "client_order_id = 't7002-r1'"), "follower_orders_default");
    assert_null(q1("SELECT to_regclass('%s')::text", part_name(7)));
    assert_string_equal(q1("SELECT ensure_follower_order_partitions(7)"), "4"); /* +4 .. +7 */
    assert_string_equal(q1("SELECT tableoid::regclass::text FROM follower_orders WHERE "
                           "client_order_id = 't7002-r1'"), part_name(7));
    assert_string_equal(q1("SELECT ensure_follower_order_partitions(7)"), "0"); /* idempotent */
    /* The moved partition has every index and key of the others. */
    assert_string_equal(q1("SELECT count(*) FROM pg_indexes WHERE tablename = '%s'", part_name(7)),
                        q1("SELECT count(*) FROM pg_indexes WHERE tablename = '%s'", part_name(1)));
    write_and_wait(&f, &far, &fin, 1, &r); /* and still dedupes */
    assert_int_equal(r.status, 0);
    assert_false(r.intent_new[0]);
    fx_close(&f);
    pr = PQexec(g_pg, "SELECT ensure_follower_order_partitions(-1)");
    assert_int_equal(PQresultStatus(pr), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(pr, PG_DIAG_SQLSTATE), "22023");
    PQclear(pr);
}

static bool cond_parts(void *arg)
{
    struct fx *f = arg;
    struct journal_stats s;
    journal_get_stats(f->j, &s);
    return s.partition_checks >= 2;
}

/* The running journal keeps partitions ahead by itself (partitions_every_ms shortened). */
static void test_partitions_running(void **state)
{
    (void)state;
    char ci[1024], err[512];
    create_db("jnl_parts", ci, sizeof ci);
    assert_true(journal_migrate(ci, err, sizeof err) >= 1);
    PGconn *c = pgt_connect(ci);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP TABLE %s", part_name(3));
    pgt_exec(c, sql);
    assert_null(pgt_q1(c, "SELECT to_regclass('%s')::text", part_name(3)));

    struct fx f;
    struct journal_opts o = {.partitions_every_ms = 30};
    fx_open(&f, ci, &o, true);
    assert_true(pgt_run_until(&f.loop, cond_parts, &f, DEADLINE_MS, 0));
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_int_equal(s.partition_check_failures, 0);
    assert_int_equal(s.partitions_created, 1);
    assert_non_null(pgt_q1(c, "SELECT to_regclass('%s')::text", part_name(3)));
    fx_close(&f);
    PQfinish(c);
}

static void test_positions(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, g_ci, NULL, true);
    struct journal_position v[3] = {
        {"f1", "BTCUSDT", "BOTH", "-0.013", "book", 1700000000123456},
        {"f1", "ETHUSDT", "LONG", "1.50", "exchange", 1700000000123456},
        {"f2", "BTCUSDT", "SHORT", "0", "book", 0},
    };
    assert_int_equal(journal_record_positions(f.j, v, 3), 0);
    assert_int_equal(journal_record_positions(f.j, v, 0), 0);
    struct flushres fl = {.check_sql = "SELECT string_agg(account || ' ' || symbol || ' ' || "
                                       "position_side || ' ' || amount::text || ' ' || source, ', '"
                                       " ORDER BY account, symbol) FROM position_snapshots"};
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0);
    assert_string_equal(fl.seen, "f1 BTCUSDT BOTH -0.013 book, f1 ETHUSDT LONG 1.50 exchange, "
                                 "f2 BTCUSDT SHORT 0 book");
    assert_string_equal(q1("SELECT (extract(epoch FROM taken_at) * 1000000)::bigint FROM "
                           "position_snapshots WHERE symbol = 'ETHUSDT'"), "1700000000123456");
    assert_non_null(q1("SELECT 1 FROM position_snapshots WHERE account = 'f2' AND "
                       "taken_at > now() - interval '1 minute'")); /* 0 = now */
    struct journal_stats s;
    journal_get_stats(f.j, &s);
    assert_int_equal(s.positions_written, 3);
    assert_int_equal(s.positions_queued, 0);
    /* The same snapshots again (a resend): stored once. */
    assert_int_equal(journal_record_positions(f.j, v, 2), 0);
    struct flushres fl2 = {.check_sql = "SELECT count(*) FROM position_snapshots"};
    flush_and_wait(&f, &fl2);
    assert_int_equal(fl2.status, 0);
    assert_string_equal(fl2.seen, "3");
    /* Bad fields are refused whole; an unknown account is refused by PostgreSQL and counted. */
    struct journal_position bad[] = {
        {"f1", "BTCUSDT", "BOTH", "1e3", "book", 0}, {"f1", "BTCUSDT", "UP", "1", "book", 0},
        {"f1", "BTCUSDT", "BOTH", "1", "guess", 0},  {"", "BTCUSDT", "BOTH", "1", "book", 0},
        {"f1", "BTCUSDT", "BOTH", "--1", "book", 0}, {"f1", "BTCUSDT", "BOTH", "1", "book", -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(journal_record_positions(f.j, &bad[i], 1), -EINVAL);
    assert_int_equal(journal_record_positions(f.j, NULL, 1), -EINVAL);
    struct journal_position nobody = {"nobody", "BTCUSDT", "BOTH", "1", "book", 0};
    assert_int_equal(journal_record_positions(f.j, &nobody, 1), 0);
    struct flushres fl3 = {0};
    flush_and_wait(&f, &fl3);
    assert_int_equal(fl3.status, -EIO);
    journal_get_stats(f.j, &s);
    assert_int_equal(s.positions_dropped, 1);
    fx_close(&f);
}

static bool cond_spooled_pos(void *arg)
{
    struct fx *f = arg;
    struct journal_stats s;
    journal_get_stats(f->j, &s);
    return s.spool_positions >= 2;
}

static bool cond_drained(void *arg)
{
    struct fx *f = arg;
    struct journal_stats s;
    journal_get_stats(f->j, &s);
    return s.connected && !s.spooling && s.spool_records == 0;
}

/* PostgreSQL away: snapshots go to the spool, and into PostgreSQL once it is back. */
static void test_positions_spooled(void **state)
{
    (void)state;
    const char *tmp = getenv("CT_TEST_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/jnl-pos-spool-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    struct fx f;
    struct journal_opts o = {.spool_dir = dir, .backoff_min_ms = 20, .backoff_max_ms = 50};
    fx_open(&f, "host=/nonexistent-ct-dir port=1 connect_timeout=1", &o, false);
    struct journal_position v[2] = {
        {"f3", "SOLUSDT", "BOTH", "12.5", "book", 1700000100000000},
        {"f3", "SOLUSDT", "BOTH", "-3", "exchange", 1700000200000000},
    };
    assert_int_equal(journal_record_positions(f.j, v, 2), 0);
    assert_true(pgt_run_until(&f.loop, cond_spooled_pos, &f, DEADLINE_MS, 0));
    struct flushres fl = {0};
    flush_and_wait(&f, &fl);
    assert_int_equal(fl.status, 0); /* durable in the spool */
    fx_close(&f);
    assert_string_equal(q1("SELECT count(*) FROM position_snapshots WHERE account = 'f3'"), "0");

    fx_open(&f, g_ci, &o, false);
    assert_true(pgt_run_until(&f.loop, cond_drained, &f, DEADLINE_MS, 0));
    assert_string_equal(q1("SELECT string_agg(amount::text || ' ' || source, ', ' ORDER BY taken_at)"
                           " FROM position_snapshots WHERE account = 'f3'"), "12.5 book, -3 exchange");
    fx_close(&f);
}

/* ---- deferred decisions (sql/010): placeholders written with a new fill, resolved once ---- */

struct defersres {
    bool done;
    int status;
    size_t n;
    char rows[8][3][160]; /* "account/symbol/trade_id", "rule_id/follower", input */
};

static void defers_cb(void *ud, int status, const char *errmsg, const struct journal_pending_defer *v, size_t n)
{
    struct defersres *x = ud;
    assert_false(x->done); /* exactly once */
    x->done = true;
    x->status = status;
    x->n = n;
    if (status) assert_non_null(errmsg);
    for (size_t i = 0; i < n && i < 8; i++) {
        snprintf(x->rows[i][0], sizeof x->rows[i][0], "%s/%s/%s", v[i].account, v[i].symbol, v[i].trade_id);
        snprintf(x->rows[i][1], sizeof x->rows[i][1], "%s/%s", v[i].rule_id, v[i].follower);
        snprintf(x->rows[i][2], sizeof x->rows[i][2], "%s", v[i].input);
    }
}

static bool cond_defers_done(void *arg) { return ((struct defersres *)arg)->done; }

static void load_defers_and_wait(struct fx *f, struct defersres *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(journal_load_defers(f->j, defers_cb, r), 0);
    assert_int_equal(journal_load_defers(f->j, defers_cb, r), -EBUSY); /* one at a time */
    assert_false(r->done); /* never from inside the call */
    assert_true(pgt_run_until(&f->loop, cond_defers_done, r, DEADLINE_MS, 0));
}

/* journal_stats.defers_pending */
static uint64_t defers_pending(const struct fx *f)
{
    struct journal_stats s;
    journal_get_stats(f->j, &s);
    return s.defers_pending;
}

#define DEFER_STATES(tid) \
    q1("SELECT string_agg(rule_id || ' ' || status || coalesce(' ' || reason, ''), ', ' ORDER BY id)" \
       " FROM deferred_decisions WHERE account = 'lead' AND trade_id = '%s'", tid)

static void test_deferred_decisions(void **state)
{
    (void)state;
    struct fx f;
    struct fillres r;
    struct defersres dl;
    fx_open(&f, g_ci, NULL, true);

    /* The fill with r1's intent; r2 and r3 deferred: their placeholders, pending. */
    struct journal_fill fill = mkfill("BTCUSDT", 8801);
    struct journal_defer dv[2] = {{"r2", "f2", "{\"leader_net\":\"0.5\",\"x\":\"a b\"}"},
                                  {"r3", "f3", "{\"leader_net\":\"-1\"}"}};
    struct journal_intent in1 = mkintent("d8801r1", "r1", "f1", "0.013", NULL);
    fill.defers = dv;
    fill.n_defers = 2;
    write_and_wait(&f, &fill, &in1, 1, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.fill_new);
    assert_true(r.intent_new[0]);
    assert_string_equal(DEFER_STATES(fill.trade_id), "r2 pending, r3 pending");
    assert_string_equal(q1("SELECT count(*) FROM deferred_decisions d JOIN leader_fills l"
                           " ON l.id = d.leader_fill_id AND l.trade_id = d.trade_id WHERE d.trade_id = '8801'"), "2");
    assert_int_equal(defers_pending(&f), 2);

    /* The same fill again (a replay): not new, and no placeholder is written or changed. */
    struct journal_defer dv2[1] = {{"r1", "f1", "{\"other\":1}"}};
    struct journal_fill again = fill;
    again.defers = dv2;
    again.n_defers = 1;
    write_and_wait(&f, &again, &in1, 1, &r);
    assert_int_equal(r.status, 0);
    assert_false(r.fill_new);
    assert_string_equal(DEFER_STATES(fill.trade_id), "r2 pending, r3 pending");
    assert_int_equal(defers_pending(&f), 2);

    /* A new fill whose placeholder names a follower its rule does not have (the configuration
     * changed while it waited): resolved as skipped by the start-up read, not returned. */
    struct journal_fill other = mkfill("BTCUSDT", 8802);
    struct journal_defer dv3[1] = {{"r1", "f2", "{}"}};
    other.defers = dv3;
    other.n_defers = 1;
    write_and_wait(&f, &other, NULL, 0, &r);
    assert_true(r.fill_new);
    assert_int_equal(defers_pending(&f), 3);
    load_defers_and_wait(&f, &dl);
    assert_int_equal(dl.status, 0);
    assert_int_equal(dl.n, 2);
    assert_int_equal(defers_pending(&f), 2); /* what the read found: one was resolved there */
    assert_string_equal(dl.rows[0][0], "lead/BTCUSDT/8801");
    assert_string_equal(dl.rows[0][1], "r2/f2");
    assert_string_equal(dl.rows[0][2], "{\"x\": \"a b\", \"leader_net\": \"0.5\"}"); /* jsonb's text */
    assert_string_equal(dl.rows[1][1], "r3/f3");
    assert_string_equal(DEFER_STATES(other.trade_id), "r1 skipped rule_removed");

    /* r2's decision: its intent and its placeholder resolved, in one write. */
    struct journal_intent in2 = mkintent("d8801r2", "r2", "f2", "0.006", NULL);
    struct journal_fill dec = mkfill("BTCUSDT", 8801);
    dec.resolve_rule_id = "r2";
    write_and_wait(&f, &dec, &in2, 1, &r);
    assert_int_equal(r.status, 0);
    assert_false(r.fill_new);
    assert_true(r.intent_new[0]);
    assert_string_equal(DEFER_STATES(fill.trade_id), "r2 decided, r3 pending");
    assert_int_equal(defers_pending(&f), 1);
    /* ... once: a second resolution changes nothing. */
    dec.resolve_reason = "rule_removed";
    write_and_wait(&f, &dec, &in2, 1, &r);
    assert_int_equal(r.status, 0);
    assert_false(r.intent_new[0]);
    assert_string_equal(DEFER_STATES(fill.trade_id), "r2 decided, r3 pending");
    assert_int_equal(defers_pending(&f), 1);
    /* r3 not decided (its rule disabled meanwhile): no intent, the placeholder skipped. */
    dec.resolve_rule_id = "r3";
    dec.resolve_reason = "rule_disabled";
    write_and_wait(&f, &dec, NULL, 0, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(DEFER_STATES(fill.trade_id), "r2 decided, r3 skipped rule_disabled");
    assert_int_equal(defers_pending(&f), 0);
    load_defers_and_wait(&f, &dl);
    assert_int_equal(dl.status, 0);
    assert_int_equal(dl.n, 0);
    assert_int_equal(defers_pending(&f), 0);

    /* Bad placeholders are refused before anything is written. */
    struct journal_fill bad = mkfill("BTCUSDT", 8803);
    struct journal_defer dbad[1] = {{"r1", "f1", "{\"a\":\"line\nbreak\"}"}};
    bad.defers = dbad;
    bad.n_defers = 1;
    assert_int_equal(journal_write_fill(f.j, &bad, NULL, 0, fill_cb, &r), -EINVAL);
    bad.n_defers = 0;
    bad.resolve_reason = "stale_signal"; /* a reason without the rule it resolves */
    assert_int_equal(journal_write_fill(f.j, &bad, NULL, 0, fill_cb, &r), -EINVAL);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = '8803'"), "0");
    fx_close(&f);
}

/* PostgreSQL away: the placeholder and later its resolution go to the spool (a version 3
 * record), and reach PostgreSQL through the replay; journal_load_defers answers only once the
 * spool is replayed, so it sees the placeholder. */
static void test_deferred_spooled(void **state)
{
    (void)state;
    const char *tmp = getenv("CT_TEST_TMP");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/jnl-defer-spool-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    struct fx f;
    struct fillres r;
    struct defersres dl;
    struct journal_opts o = {.spool_dir = dir, .backoff_min_ms = 20, .backoff_max_ms = 50};
    const char *down = "host=/nonexistent-ct-dir port=1 connect_timeout=1";

    fx_open(&f, down, &o, false);
    struct journal_fill fill = mkfill("ETHUSDT", 8901);
    struct journal_defer dv[1] = {{"r3", "f3", "{\"leader_net\":\"2\"}"}};
    fill.defers = dv;
    fill.n_defers = 1;
    write_and_wait(&f, &fill, NULL, 0, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.fill_new); /* from the spool */
    assert_int_equal(defers_pending(&f), 1);
    /* The spool's "not new" for a fill it holds records nothing: no placeholder, no resolution
     * (the copier writes the decision again once the spool is drained). */
    write_and_wait(&f, &fill, NULL, 0, &r);
    assert_false(r.fill_new);
    struct journal_fill early = mkfill("ETHUSDT", 8901);
    early.resolve_rule_id = "r3";
    write_and_wait(&f, &early, NULL, 0, &r);
    assert_int_equal(r.status, 0);
    assert_false(r.fill_new);
    assert_int_equal(defers_pending(&f), 1);
    fx_close(&f);
    assert_string_equal(q1("SELECT count(*) FROM deferred_decisions WHERE trade_id = '8901'"), "0");

    fx_open(&f, g_ci, &o, false);
    load_defers_and_wait(&f, &dl); /* asked before the replay: answered after it */
    assert_int_equal(dl.status, 0);
    assert_int_equal(dl.n, 1);
    assert_int_equal(defers_pending(&f), 1);
    assert_string_equal(dl.rows[0][0], "lead/ETHUSDT/8901");
    assert_string_equal(dl.rows[0][1], "r3/f3");
    assert_string_equal(dl.rows[0][2], "{\"leader_net\": \"2\"}");
    fx_close(&f);

    /* The decision while PostgreSQL is away again: spooled, replayed with its resolution. */
    fx_open(&f, down, &o, false);
    struct journal_fill dec = mkfill("ETHUSDT", 8901);
    struct journal_intent in = mkintent("d8901r3", "r3", "f3", "0.001", NULL);
    in.symbol = "ETHUSDT";
    dec.resolve_rule_id = "r3";
    write_and_wait(&f, &dec, &in, 1, &r);
    assert_int_equal(r.status, 0);
    assert_true(r.intent_new[0]);
    assert_int_equal(defers_pending(&f), 0); /* never below 0 (no start-up read here) */
    fx_close(&f);
    assert_string_equal(DEFER_STATES("8901"), "r3 pending");
    fx_open(&f, g_ci, &o, false);
    assert_true(pgt_run_until(&f.loop, cond_drained, &f, DEADLINE_MS, 0));
    assert_string_equal(DEFER_STATES("8901"), "r3 decided");
    assert_string_equal(q1("SELECT status FROM follower_orders WHERE client_order_id = 'd8901r3'"), "intent");
    fx_close(&f);
}

int main(void)
{
    g_admin = getenv("CT_TEST_PG");
    if (!g_admin || !*g_admin) {
        fprintf(stderr, "test_journal: FAIL: CT_TEST_PG is not set; run it under "
                        "tests/integration/with-services\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate),
        cmocka_unit_test(test_migrate_error_names_migration),
        cmocka_unit_test(test_sync_config),
        cmocka_unit_test(test_fill_dedupe),
        cmocka_unit_test(test_fill_refused),
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_many_fills),
        cmocka_unit_test(test_flush_durable),
        cmocka_unit_test_teardown(test_connection_lost, close_aux),
        cmocka_unit_test_teardown(test_concurrent_same_fill, close_aux),
        cmocka_unit_test_teardown(test_statement_timeout, close_aux),
        cmocka_unit_test_teardown(test_loop_stall_is_not_a_timeout, close_aux),
        cmocka_unit_test_teardown(test_loop_stall_is_not_slow, close_aux),
        cmocka_unit_test(test_not_connected),
        cmocka_unit_test(test_free_with_work_pending),
        cmocka_unit_test(test_durability_os),
        cmocka_unit_test(test_partitions),
        cmocka_unit_test(test_partitions_running),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_positions_spooled),
        cmocka_unit_test(test_deferred_decisions),
        cmocka_unit_test(test_deferred_spooled),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
