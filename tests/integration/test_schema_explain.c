/* The schema's indexes against the real queries (CT_TEST_PG from tests/integration/with-services).
 *
 * A fresh database gets every migration and a realistic load (10 leaders, 100 followers, 200
 * rules, 5,000 leader fills over three months, 50,000 follower orders in monthly partitions,
 * 10,000 position snapshots), VACUUM ANALYZE (what autovacuum does to such tables), then each
 * query the code runs is EXPLAINed (FORMAT JSON) and its plan checked: the intended index is
 * used, follower_orders partitions are pruned where the query names the partition key, and no
 * Seq Scan touches leader_fills or a non-empty follower_orders partition. (An empty partition -
 * the months created ahead - is seq-scanned at zero cost: that is the planner's right choice.)
 *
 * The journal's own statements come from journal_statement_sql() and are planned as the journal
 * runs them: prepared, with plan_cache_mode = force_generic_plan. The others are copies of the
 * text in daemon/ctl_main.c and daemon/main.c (named at each one), planned as libpq's
 * PQexecParams runs them (custom plans).
 *
 * CT_SCHEMA_DROP_INDEX=name drops that index after the load: the test must then fail (used to
 * check that it can). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "journal.h"

#include "pg_test.h"

static const char *g_admin;
static PGconn *g_pg;

/* The load. Times are relative to now(), so the partitions of the last three months (created
 * below as the running daemon would have) and of the months ahead (journal_migrate) exist. */
static const char LOAD_SQL[] =
    "SELECT create_follower_order_partition(now() - make_interval(months => i))"
    "  FROM generate_series(1, 3) i;"
    "INSERT INTO accounts (name, exchange) SELECT 'lead' || i, 'binance-usdm' FROM generate_series(0, 9) i;"
    "INSERT INTO accounts (name, exchange) SELECT 'fol' || i, 'sim' FROM generate_series(0, 99) i;"
    "INSERT INTO copy_rules (id, leader, follower, sizing, status)"
    " SELECT 'rule' || k, 'lead' || (k % 10), 'fol' || (k % 100), 'multiplier',"
    "        CASE WHEN k % 10 = 9 THEN 'paused' ELSE 'active' END FROM generate_series(0, 199) k;"
    "INSERT INTO leader_fills (account, symbol, trade_id, order_id, trade_seq, side, qty, price,"
    "                          event_time, received_at)"
    " SELECT 'lead' || (i % 10),"
    "        (ARRAY['BTCUSDT','ETHUSDT','SOLUSDT','XRPUSDT','BNBUSDT'])[1 + (i / 10) % 5],"
    "        (100000 + i)::text, (900000 + i)::text, 100000 + i,"
    "        CASE WHEN i % 2 = 0 THEN 'BUY' ELSE 'SELL' END, 0.013, 50000.1,"
    "        now() - interval '90 days' + i * interval '90 days' / 5000,"
    "        now() - interval '90 days' + i * interval '90 days' / 5000 + interval '20 ms'"
    "   FROM generate_series(1, 5000) i;"
    /* Ten rules per fill (those of its leader), mostly final states, a few open ones. */
    "INSERT INTO follower_orders (client_order_id, leader_fill_id, leader_event_time, rule_id,"
    "       follower, symbol, side, qty, order_type, status, skip_reason, intent_at,"
    "       exchange_order_id, executed_qty, avg_price)"
    " SELECT 'ct' || f.id || 'r' || r.k, f.id, f.event_time, 'rule' || r.k, 'fol' || (r.k % 100),"
    "        f.symbol, f.side, 0.013, 'MARKET', st.s,"
    "        CASE WHEN st.s = 'skipped' THEN 'below_min_notional' END, f.event_time + interval '3 ms',"
    "        CASE WHEN st.s IN ('filled', 'acked') THEN (f.id * 1000 + r.k)::text END,"
    "        CASE WHEN st.s = 'filled' THEN 0.013 END, CASE WHEN st.s = 'filled' THEN 50000.2 END"
    "   FROM leader_fills f"
    "   JOIN LATERAL (SELECT (substring(f.account FROM 5))::int + 10 * g AS k"
    "                   FROM generate_series(0, 9) g) r ON true"
    "  CROSS JOIN LATERAL (SELECT CASE WHEN (f.id + r.k) % 1000 = 0 THEN 'sent'"
    "                                  WHEN (f.id + r.k) % 997 = 0 THEN 'unknown'"
    "                                  WHEN (f.id + r.k) % 10 = 0 THEN 'skipped'"
    "                                  WHEN (f.id + r.k) % 23 = 0 THEN 'rejected'"
    "                                  ELSE 'filled' END AS s) st;"
    "INSERT INTO position_snapshots (taken_at, account, symbol, position_side, amount, source)"
    " SELECT now() - i * interval '10 minutes', 'fol' || (i % 100),"
    "        (ARRAY['BTCUSDT','ETHUSDT','SOLUSDT','XRPUSDT','BNBUSDT'])[1 + (i / 100) % 5], 'BOTH',"
    "        (i % 7 - 3) * 0.013, CASE WHEN i % 50 = 0 THEN 'exchange' ELSE 'book' END"
    "   FROM generate_series(1, 10000) i;";

/* ---- helpers -------------------------------------------------------------------------------- */

/* The first cell, "" for SQL NULL or no row. */
static const char *q1(const char *sql)
{
    const char *v = pgt_q1(g_pg, "%s", sql);
    return v ? v : "";
}

/* Partition indexes carry generated names (follower_orders_202611_leader_fill_id_idx): map each
 * to the index it belongs to on the partitioned table. */
static struct { char child[128], parent[128]; } g_idx[256];
static size_t g_nidx;
/* Partitions of follower_orders without rows. */
static char g_empty[64][64];
static size_t g_nempty;

static void load_catalog(void)
{
    PGresult *r = PQexec(g_pg, "SELECT c.relname, p.relname FROM pg_inherits i"
                               " JOIN pg_class c ON c.oid = i.inhrelid"
                               " JOIN pg_class p ON p.oid = i.inhparent WHERE c.relkind = 'i'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    g_nidx = 0;
    for (int i = 0; i < PQntuples(r) && g_nidx < 256; i++, g_nidx++) {
        snprintf(g_idx[g_nidx].child, sizeof g_idx[0].child, "%s", PQgetvalue(r, i, 0));
        snprintf(g_idx[g_nidx].parent, sizeof g_idx[0].parent, "%s", PQgetvalue(r, i, 1));
    }
    PQclear(r);
    r = PQexec(g_pg, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                     " WHERE i.inhparent = 'follower_orders'::regclass");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    g_nempty = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT NOT EXISTS (SELECT 1 FROM %s)", PQgetvalue(r, i, 0));
        if (!strcmp(q1(sql), "t") && g_nempty < 64)
            snprintf(g_empty[g_nempty++], sizeof g_empty[0], "%s", PQgetvalue(r, i, 0));
    }
    PQclear(r);
}

static const char *index_parent(const char *name)
{
    for (size_t i = 0; i < g_nidx; i++)
        if (!strcmp(g_idx[i].child, name)) return g_idx[i].parent;
    return name;
}

static bool is_empty_partition(const char *rel)
{
    for (size_t i = 0; i < g_nempty; i++)
        if (!strcmp(g_empty[i], rel)) return true;
    return false;
}

static bool is_fo(const char *rel) { return !strncmp(rel, "follower_orders", 15); }

/* What a plan does, flattened. */
#define MAXN 128
struct scan {
    char type[48], rel[64], index[128]; /* index: mapped to the partitioned table's index */
    bool executed;                      /* ANALYZE: ran at least once */
};
struct plan {
    const char *name;
    struct scan s[MAXN];
    size_t n;
    char arbiters[256]; /* Conflict Arbiter Indexes, comma-separated */
    char text[8192];    /* the JSON, for failure messages */
};

static void walk(struct plan *p, json_t *node)
{
    if (!json_is_object(node)) return;
    const char *rel = json_string_value(json_object_get(node, "Relation Name"));
    const char *type = json_string_value(json_object_get(node, "Node Type"));
    const char *idx = json_string_value(json_object_get(node, "Index Name"));
    json_t *arb = json_object_get(node, "Conflict Arbiter Indexes");
    if (json_is_array(arb)) {
        size_t i;
        json_t *v;
        json_array_foreach(arb, i, v) {
            size_t len = strlen(p->arbiters);
            snprintf(p->arbiters + len, sizeof p->arbiters - len, "%s%s", len ? "," : "",
                     index_parent(json_string_value(v) ? json_string_value(v) : "?"));
        }
    }
    /* A bitmap heap scan names its relation, its child the index: record the pair once. */
    if ((rel || idx) && type && p->n < MAXN && strcmp(type, "ModifyTable") &&
        strcmp(type, "Bitmap Index Scan")) {
        struct scan *s = &p->s[p->n++];
        snprintf(s->type, sizeof s->type, "%s", type);
        snprintf(s->rel, sizeof s->rel, "%s", rel ? rel : "");
        snprintf(s->index, sizeof s->index, "%s", idx ? index_parent(idx) : "");
        json_t *loops = json_object_get(node, "Actual Loops");
        s->executed = !loops || json_integer_value(loops) > 0;
        if (!strcmp(type, "Bitmap Heap Scan")) {
            json_t *kids = json_object_get(node, "Plans");
            json_t *k0 = json_array_get(kids, 0);
            const char *bi = json_string_value(json_object_get(k0, "Index Name"));
            if (bi) snprintf(s->index, sizeof s->index, "%s", index_parent(bi));
        }
    }
    json_t *kids = json_object_get(node, "Plans");
    size_t i;
    json_t *k;
    json_array_foreach(kids, i, k) walk(p, k);
}

/* EXPLAIN (FORMAT JSON[, ANALYZE]) of sql with text params (custom plan, as PQexecParams). */
static void explain(struct plan *p, const char *name, const char *sql, int np,
                    const char *const *params, bool analyze)
{
    memset(p, 0, sizeof *p);
    p->name = name;
    char *q = malloc(strlen(sql) + 64);
    assert_non_null(q);
    sprintf(q, "EXPLAIN (FORMAT JSON%s) %s", analyze ? ", ANALYZE, COSTS OFF" : "", sql);
    PGresult *r = PQexecParams(g_pg, q, np, NULL, params, NULL, NULL, 0);
    free(q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", name, PQresultErrorMessage(r));
    snprintf(p->text, sizeof p->text, "%s", PQgetvalue(r, 0, 0));
    json_error_t e;
    json_t *j = json_loads(PQgetvalue(r, 0, 0), 0, &e);
    PQclear(r);
    if (!j) fail_msg("%s: EXPLAIN output does not parse: %s", name, e.text);
    walk(p, json_object_get(json_array_get(j, 0), "Plan"));
    json_decref(j);
}

/* The same for a statement prepared as the journal prepares it (generic plan). */
static void explain_generic(struct plan *p, const char *name, const char *sql, const char *execute)
{
    char q[512];
    snprintf(q, sizeof q, "DEALLOCATE ALL");
    pgt_exec(g_pg, q);
    PGresult *r = PQprepare(g_pg, "stmt", sql, 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("%s: prepare: %s", name, PQresultErrorMessage(r));
    PQclear(r);
    pgt_exec(g_pg, "SET plan_cache_mode = force_generic_plan");
    explain(p, name, execute, 0, NULL, false);
    pgt_exec(g_pg, "RESET plan_cache_mode");
}

static void dump(const struct plan *p)
{
    fprintf(stderr, "plan of %s:\n", p->name);
    for (size_t i = 0; i < p->n; i++)
        fprintf(stderr, "  %-22s %-28s %s%s\n", p->s[i].type, p->s[i].rel, p->s[i].index,
                p->s[i].executed ? "" : " (never executed)");
}

/* No Seq Scan on leader_fills or on a follower_orders partition that holds rows. */
static void no_seqscan(const struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct scan *s = &p->s[i];
        if (strcmp(s->type, "Seq Scan")) continue;
        if (!strcmp(s->rel, "leader_fills") || (is_fo(s->rel) && !is_empty_partition(s->rel))) {
            dump(p);
            fail_msg("%s: Seq Scan on %s", p->name, s->rel);
        }
    }
}

/* Some scan of rel (prefix match: "follower_orders" covers its partitions) uses index. */
static void uses(const struct plan *p, const char *rel, const char *index)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strncmp(p->s[i].rel, rel, strlen(rel)) && !strcmp(p->s[i].index, index)) return;
    dump(p);
    fail_msg("%s: no scan of %s uses %s", p->name, rel, index);
}

/* Every scan of rel uses one of the indexes (a NULL-terminated list). */
static void only_uses(const struct plan *p, const char *rel, const char *const *indexes)
{
    size_t seen = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->s[i].rel, rel)) continue;
        seen++;
        bool ok = false;
        for (const char *const *x = indexes; *x; x++) ok |= !strcmp(p->s[i].index, *x);
        if (!ok) {
            dump(p);
            fail_msg("%s: %s read by %s %s", p->name, rel, p->s[i].type, p->s[i].index);
        }
    }
    if (!seen) {
        dump(p);
        fail_msg("%s: %s not in the plan", p->name, rel);
    }
}

/* Every scan of a non-empty follower_orders partition uses index. */
static void fo_all_use(const struct plan *p, const char *index)
{
    size_t seen = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct scan *s = &p->s[i];
        if (!is_fo(s->rel) || is_empty_partition(s->rel)) continue;
        seen++;
        if (strcmp(s->index, index)) {
            dump(p);
            fail_msg("%s: %s is read by %s%s%s, not by %s", p->name, s->rel, s->type,
                     s->index[0] ? " on " : "", s->index, index);
        }
    }
    if (!seen) {
        dump(p);
        fail_msg("%s: no follower_orders partition with rows in the plan", p->name);
    }
}

/* The follower_orders partitions the plan reads (executed ones only with ANALYZE). */
static size_t fo_partitions(const struct plan *p, char out[][64], size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (!is_fo(p->s[i].rel) || !p->s[i].executed) continue;
        bool dup = false;
        for (size_t k = 0; k < n; k++) dup |= !strcmp(out[k], p->s[i].rel);
        if (!dup && n < max) snprintf(out[n++], 64, "%s", p->s[i].rel);
    }
    return n;
}

static void only_partition(const struct plan *p, const char *part)
{
    char seen[32][64];
    size_t n = fo_partitions(p, seen, 32);
    if (n != 1 || strcmp(seen[0], part)) {
        dump(p);
        fail_msg("%s: expected only partition %s to be read, %zu partition(s) are", p->name, part, n);
    }
}

/* ---- setup ------------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    char name[64], ci[1024], err[512];
    snprintf(name, sizeof name, "schema_explain_%d", (int)getpid());
    if (pgt_create_db(g_admin, name, ci, sizeof ci) < 0) return -1;
    if (journal_migrate(ci, err, sizeof err) < 0) {
        fprintf(stderr, "journal_migrate: %s\n", err);
        return -1;
    }
    g_pg = PQconnectdb(ci);
    if (PQstatus(g_pg) != CONNECTION_OK) return -1;
    PQsetNoticeProcessor(g_pg, pgt_ignore_notice, NULL);
    PGresult *r = PQexec(g_pg, LOAD_SQL);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "load: %s\n", PQresultErrorMessage(r));
    PQclear(r);
    const char *drop = getenv("CT_SCHEMA_DROP_INDEX");
    if (ok && drop && *drop) {
        char q[256];
        snprintf(q, sizeof q, "DROP INDEX %s", drop); /* a test hook: the name is trusted */
        r = PQexec(g_pg, q);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            /* An index behind a constraint. */
            PQclear(r);
            snprintf(q, sizeof q, "ALTER TABLE %s DROP CONSTRAINT %s",
                     strncmp(drop, "leader_fills", 12) ? strncmp(drop, "position", 8)
                         ? "follower_orders" : "position_snapshots" : "leader_fills", drop);
            r = PQexec(g_pg, q);
            ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            if (!ok) fprintf(stderr, "%s: %s\n", q, PQresultErrorMessage(r));
        }
        PQclear(r);
        fprintf(stderr, "test_schema_explain: dropped %s (CT_SCHEMA_DROP_INDEX)\n", drop);
    }
    if (ok) {
        r = PQexec(g_pg, "VACUUM ANALYZE"); /* outside any transaction block */
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) fprintf(stderr, "vacuum: %s\n", PQresultErrorMessage(r));
        PQclear(r);
    }
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(g_pg);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------------- */

static void test_load(void **state)
{
    (void)state;
    load_catalog();
    assert_string_equal(q1("SELECT count(*) FROM follower_orders"), "50000");
    assert_string_equal(q1("SELECT count(*) FROM leader_fills"), "5000");
    assert_string_equal(q1("SELECT count(*) FROM copy_rules"), "200");
    /* The rows sit in monthly partitions, none in the default one. */
    assert_string_equal(q1("SELECT count(*) FROM follower_orders_default"), "0");
    assert_true(atoi(q1("SELECT count(DISTINCT tableoid) FROM follower_orders")) >= 3);
    /* Each partition carries every index of the partitioned table. */
    assert_string_equal(q1("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                           " WHERE i.inhparent = 'follower_orders_by_follower_time'::regclass"),
                        q1("SELECT count(*) FROM pg_inherits WHERE inhparent = 'follower_orders'::regclass"));
}

/* The hot path (daemon/journal.c), planned as prepared generic plans. */
static void test_hot_path(void **state)
{
    (void)state;
    struct plan p;
    explain_generic(&p, "SQL_FILL", journal_statement_sql("fill"),
                    "EXECUTE stmt('lead1', 'BTCUSDT', '999999', '1', 'BUY', 1, 1, now(), 999999, 4242)");
    no_seqscan(&p);
    if (strcmp(p.arbiters, "leader_fills_identity")) {
        dump(&p);
        fail_msg("SQL_FILL: conflict arbiter %s", p.arbiters);
    }

    explain_generic(&p, "SQL_INTENTS", journal_statement_sql("intents"),
                    "EXECUTE stmt('lead1', 'BTCUSDT', '100001', '{c1,c2}', '{rule1,rule11}',"
                    " '{fol1,fol11}', '{BTCUSDT,BTCUSDT}', '{BUY,BUY}', '{1,1}', '{f,f}',"
                    " '{MARKET,MARKET}', '{NULL,NULL}', '{NULL,NULL}', '{NULL,NULL}', 4242)");
    no_seqscan(&p);
    /* The fill by its identity: the generic plan may take the trade id index instead (as
     * selective, and smaller); either is a single probe. */
    only_uses(&p, "leader_fills",
              (const char *const[]){"leader_fills_identity", "leader_fills_by_trade_id", NULL});
    /* The durable dedupe of intents, across the partitioned table. */
    if (strcmp(p.arbiters, "follower_orders_client_order_id")) {
        dump(&p);
        fail_msg("SQL_INTENTS: conflict arbiter %s", p.arbiters);
    }

    /* Results: one lookup by client order id per row, in every partition (the batch does not
     * know the fills' times). */
    explain_generic(&p, "SQL_RESULTS", journal_statement_sql("results"),
                    "EXECUTE stmt('{ct1r1,ct2r2}', '{filled,acked}', '{1,2}', '{1,NULL}',"
                    " '{1,NULL}', '{NULL,NULL}', '{NULL,NULL}', '{\"2026-01-01 00:00:00+00\","
                    "\"2026-01-01 00:00:00+00\"}')");
    no_seqscan(&p);
    fo_all_use(&p, "follower_orders_client_order_id");

    explain_generic(&p, "SQL_POSITIONS", journal_statement_sql("positions"),
                    "EXECUTE stmt('{\"2026-01-01 00:00:00+00\"}', '{fol1}', '{BTCUSDT}', '{BOTH}',"
                    " '{-1}', '{book}')");
    if (strcmp(p.arbiters, "position_snapshots_pkey")) {
        dump(&p);
        fail_msg("SQL_POSITIONS: conflict arbiter %s", p.arbiters);
    }
}

/* Start-up (daemon/main.c load_journaled_state). */
static void test_startup(void **state)
{
    (void)state;
    struct plan p;
    /* Orders without a final state: the partial index, in every partition. */
    explain(&p, "open orders (main.c)",
            "SELECT client_order_id, follower, symbol, side, qty::text, reduce_only, order_type,"
            " coalesce(limit_price::text, '0'), position_side,"
            " (extract(epoch FROM intent_at) * 1000)::bigint"
            " FROM follower_orders"
            " WHERE status IN ('intent', 'sent', 'unknown', 'acked', 'partially_filled') ORDER BY id",
            0, NULL, false);
    no_seqscan(&p);
    fo_all_use(&p, "follower_orders_open");

    /* The last trade id per (leader, symbol), per leader over the identity index (which
     * carries trade_seq): an index-only scan, never the heap.
     * NOTE: the form daemon/main.c should use; see the report of sql/007. */
    explain(&p, "trade id high-water mark (main.c)",
            "SELECT a.name, s.symbol, s.seq FROM accounts a"
            " CROSS JOIN LATERAL (SELECT symbol, max(trade_seq) AS seq FROM leader_fills f"
            "   WHERE f.account = a.name AND trade_seq IS NOT NULL GROUP BY symbol) s",
            0, NULL, false);
    no_seqscan(&p);
    uses(&p, "leader_fills", "leader_fills_identity");

    /* Where each leader's backfill starts: its newest fill, one index probe per account.
     * NOTE: the form daemon/main.c should use; see the report of sql/007. */
    explain(&p, "backfill start (main.c)",
            "SELECT a.name, (extract(epoch FROM l.t) * 1000)::bigint FROM accounts a"
            " CROSS JOIN LATERAL (SELECT max(event_time) AS t FROM leader_fills f"
            "   WHERE f.account = a.name) l WHERE l.t IS NOT NULL",
            0, NULL, false);
    no_seqscan(&p);
    uses(&p, "leader_fills", "leader_fills_by_account");

    /* Recent fills per leader for the in-memory dedupe: index probes per account. */
    explain(&p, "recent fills (main.c)",
            "SELECT a.name, r.symbol, r.trade_id FROM accounts a"
            " CROSS JOIN LATERAL (SELECT max(event_time) AS t FROM leader_fills m"
            "   WHERE m.account = a.name) l"
            " CROSS JOIN LATERAL (SELECT symbol, trade_id FROM leader_fills f"
            "   WHERE f.account = a.name AND f.event_time >= l.t - interval '10 minutes'"
            "   ORDER BY f.event_time DESC LIMIT 20000) r",
            0, NULL, false);
    no_seqscan(&p);
    only_uses(&p, "leader_fills", (const char *const[]){"leader_fills_by_account", NULL});
}

/* copytraderctl (daemon/ctl_main.c). */
static void test_ctl(void **state)
{
    (void)state;
    struct plan p;
    /* orders --follower X --since 1h / 30 days: ordered index scans per partition. */
    const char *orders =
        "SELECT to_char(o.intent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS time,"
        " o.rule_id, o.symbol, o.side, o.qty::text AS qty, o.status,"
        " o.skip_reason, o.executed_qty::text AS executed_qty, o.avg_price::text AS avg_price,"
        " o.error_code::text AS error_code, o.error_msg, o.client_order_id,"
        " f.trade_id::text AS leader_trade_id"
        " FROM follower_orders o JOIN leader_fills f ON f.id = o.leader_fill_id"
        " WHERE o.follower = $1 AND o.intent_at >= now() - make_interval(secs => $2::bigint)"
        " ORDER BY o.intent_at, o.id LIMIT $3::bigint";
    const char *p1[] = {"fol3", "3600", "1000"};
    explain(&p, "orders --since 1h (ctl)", orders, 3, p1, false);
    no_seqscan(&p);
    fo_all_use(&p, "follower_orders_by_follower_time");
    only_uses(&p, "leader_fills", (const char *const[]){"leader_fills_pkey", NULL});
    /* (Over 30 days, with only 5,000 fills in the table, hashing all of leader_fills beats 170
     * probes of its primary key; a real journal is far bigger. One day stays on the index.) */
    const char *p2[] = {"fol3", "86400", "1000"};
    explain(&p, "orders --since 1d (ctl)", orders, 3, p2, false);
    no_seqscan(&p);
    fo_all_use(&p, "follower_orders_by_follower_time");

    /* explain TRADE_ID [--account A] [--symbol S] */
    const char *fills =
        "SELECT id::text, account, symbol, trade_id::text, order_id::text, side, qty::text,"
        " price::text FROM leader_fills"
        " WHERE trade_id = $1::text AND ($2::text IS NULL OR account = $2)"
        " AND ($3::text IS NULL OR symbol = $3) ORDER BY id";
    const char *f1[] = {"102345", NULL, NULL};
    explain(&p, "explain: fill by trade id (ctl)", fills, 3, f1, false);
    no_seqscan(&p);
    uses(&p, "leader_fills", "leader_fills_by_trade_id");
    const char *f2[] = {"102345", "lead5", "BTCUSDT"};
    explain(&p, "explain: fill by trade id, account, symbol (ctl)", fills, 3, f2, false);
    no_seqscan(&p);

    /* ... and what each rule did with it: one partition read, through the fill index. */
    const char *rules =
        "SELECT r.id AS rule, r.follower, r.status AS rule_status, o.status, o.side,"
        " o.qty::text AS qty, o.client_order_id"
        " FROM copy_rules r LEFT JOIN follower_orders o ON o.rule_id = r.id"
        "  AND o.leader_fill_id = $1::bigint"
        "  AND o.leader_event_time = (SELECT event_time FROM leader_fills WHERE id = $1::bigint)"
        " WHERE r.leader = $2 OR o.id IS NOT NULL ORDER BY r.id, o.id";
    const char *id = q1("SELECT id FROM leader_fills WHERE trade_id = '102345'");
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%s", id);
    const char *part = q1("SELECT o.tableoid::regclass::text FROM follower_orders o"
                          " JOIN leader_fills f ON f.id = o.leader_fill_id"
                          " WHERE f.trade_id = '102345' LIMIT 1");
    char partbuf[64];
    snprintf(partbuf, sizeof partbuf, "%s", part);
    const char *r1[] = {idbuf, "lead5"};
    explain(&p, "explain: rules of the fill (ctl)", rules, 2, r1, true);
    no_seqscan(&p);
    uses(&p, "follower_orders", "follower_orders_by_fill");
    only_partition(&p, partbuf);

    /* status: per leader, last fill and count, from the covering index (index-only).
     * NOTE: the form ctl_main.c's cmd_status should use; see the report of sql/007. */
    explain(&p, "status: leaders (ctl)",
            "SELECT a.name, l.last_trade, l.last_event, l.last_received, l.n FROM accounts a"
            " LEFT JOIN LATERAL (SELECT (array_agg(f.trade_id ORDER BY f.id DESC))[1] AS last_trade,"
            "   max(f.event_time) AS last_event, max(f.received_at) AS last_received,"
            "   count(f.id) AS n FROM leader_fills f WHERE f.account = a.name) l ON true"
            " WHERE EXISTS (SELECT 1 FROM copy_rules r WHERE r.leader = a.name AND r.status <> 'removed')"
            " ORDER BY a.name",
            0, NULL, false);
    no_seqscan(&p);
    uses(&p, "leader_fills", "leader_fills_by_account");
    for (size_t i = 0; i < p.n; i++)
        if (!strcmp(p.s[i].rel, "leader_fills") && strcmp(p.s[i].type, "Index Only Scan")) {
            dump(&p);
            fail_msg("status: leader_fills read by %s, not an index-only scan", p.s[i].type);
        }
}

/* Dashboards: time-bounded queries on the partition key prune; by follower and status. */
static void test_dashboards(void **state)
{
    (void)state;
    struct plan p;
    char lo[64], hi[64], part[64];
    snprintf(lo, sizeof lo, "%s", q1("SELECT (date_trunc('month', now() AT TIME ZONE 'UTC')"
                                     " - interval '1 month')::text || '+00'"));
    snprintf(hi, sizeof hi, "%s", q1("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::text || '+00'"));
    snprintf(part, sizeof part, "follower_orders_%s",
             q1("SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 month', 'YYYYMM')"));
    const char *bounds[] = {"fol7", lo, hi};
    explain(&p, "last month's orders of a follower (pruned)",
            "SELECT client_order_id, status, intent_at FROM follower_orders"
            " WHERE follower = $1 AND leader_event_time >= $2::timestamptz"
            " AND leader_event_time < $3::timestamptz ORDER BY intent_at",
            3, bounds, false);
    no_seqscan(&p);
    only_partition(&p, part);
    fo_all_use(&p, "follower_orders_by_follower_time");

    /* The same as a prepared statement (generic plan): pruned when the executor starts. */
    pgt_exec(g_pg, "DEALLOCATE ALL");
    PGresult *r = PQprepare(g_pg, "stmt",
                            "SELECT client_order_id FROM follower_orders WHERE follower = $1"
                            " AND leader_event_time >= $2::timestamptz"
                            " AND leader_event_time < $3::timestamptz", 3, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    pgt_exec(g_pg, "SET plan_cache_mode = force_generic_plan");
    char ex[256];
    snprintf(ex, sizeof ex, "EXECUTE stmt('fol7', '%s', '%s')", lo, hi);
    explain(&p, "last month's orders, generic plan (pruned at start)", ex, 0, NULL, true);
    pgt_exec(g_pg, "RESET plan_cache_mode");
    no_seqscan(&p);
    only_partition(&p, part);

    /* A follower's rejected orders, oldest first (its open ones take follower_orders_open). */
    const char *f[] = {"fol3"};
    explain(&p, "rejected orders of a follower",
            "SELECT client_order_id, status, intent_at FROM follower_orders"
            " WHERE follower = $1 AND status = 'rejected' ORDER BY intent_at",
            1, f, false);
    no_seqscan(&p);
    fo_all_use(&p, "follower_orders_by_follower");

    /* Positions: latest per symbol of an account, and its history. */
    explain(&p, "latest positions of an account",
            "SELECT DISTINCT ON (symbol, position_side) symbol, position_side, amount, taken_at"
            " FROM position_snapshots WHERE account = $1"
            " ORDER BY symbol, position_side, taken_at DESC", 1, f, false);
    /* (100 snapshots per account here: a bitmap scan of the account's range and a sort; with a
     * long history the primary key's order wins.) */
    only_uses(&p, "position_snapshots", (const char *const[]){"position_snapshots_pkey",
                                                              "position_snapshots_by_account_time", NULL});
    const char *h[] = {"fol3", lo};
    explain(&p, "position history of an account",
            "SELECT symbol, amount, taken_at FROM position_snapshots"
            " WHERE account = $1 AND taken_at >= $2::timestamptz ORDER BY taken_at", 2, h, false);
    uses(&p, "position_snapshots", "position_snapshots_by_account_time");
}

int main(void)
{
    g_admin = getenv("CT_TEST_PG");
    if (!g_admin || !*g_admin) {
        fprintf(stderr, "test_schema_explain: FAIL: CT_TEST_PG is not set; run it under "
                        "tests/integration/with-services\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_hot_path),
        cmocka_unit_test(test_startup),
        cmocka_unit_test(test_ctl),
        cmocka_unit_test(test_dashboards),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
