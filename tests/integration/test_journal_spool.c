/* Integration test of the journal's spool (daemon/journal.c + daemon/spool.c) against a real
 * PostgreSQL (CT_TEST_PG, CT_TEST_PGDIR, CT_TEST_PGPORT from tests/integration/with-services).
 *
 * PostgreSQL "goes away" through a unix-socket proxy that runs on the test's own libuv loop, in
 * front of the real server: DOWN closes every connection and refuses new ones (accept + close),
 * STALL stops relaying the server's replies (the server still gets and runs every statement), UP
 * relays again. Each step runs the real loop until a condition or a deadline, never a sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <uv.h>

#include "journal.h"

#include "pg_test.h"

#define DEADLINE_MS 20000

static const char *g_admin; /* CT_TEST_PG */
static char g_ci[1024];     /* this run's database, directly */
static char g_pxci[1400];   /* the same database through the proxy */
static PGconn *g_pg;        /* direct connection, for checks */
static PGconn *g_aux;       /* a test's lock holder, closed by teardown */
static char g_tmp[256];     /* mkdtemp: proxy socket, spool directories */
static bool g_ahead;        /* write_fill marks its fills `ahead` (write-ahead test) */

/* ---- helpers -------------------------------------------------------------------------------- */

#define q1(...) pgt_q1(g_pg, __VA_ARGS__)


/* ---- the proxy ------------------------------------------------------------------------------ */

enum px_mode { PX_UP, PX_DOWN, PX_STALL };

struct pconn;
struct proxy {
    uv_loop_t *loop;
    uv_pipe_t listener;
    char dir[300];
    int port;
    char path[400];
    char upstream[400];
    enum px_mode mode;
    struct pconn *conns;
    unsigned accepted;
    bool open;
};

struct pconn {
    struct proxy *px;
    struct pconn *next;
    uv_pipe_t client, server;
    uv_connect_t creq;
    bool up;      /* upstream connected, relaying */
    bool closing;
    int closed;   /* handles closed, of 2 */
};

struct wreq {
    uv_write_t w;
    uv_buf_t b;
};

static void px_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(sz);
    b->len = b->base ? sz : 0;
}

static void pc_closed(uv_handle_t *h)
{
    struct pconn *c = h->data;
    if (++c->closed < 2) return;
    struct pconn **pp = &c->px->conns;
    while (*pp && *pp != c) pp = &(*pp)->next;
    if (*pp) *pp = c->next;
    free(c);
}

static void pc_close(struct pconn *c)
{
    if (c->closing) return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->client, pc_closed);
    uv_close((uv_handle_t *)&c->server, pc_closed);
}

static void px_written(uv_write_t *w, int status)
{
    struct wreq *r = (struct wreq *)w;
    (void)status;
    free(r->b.base);
    free(r);
}

static void px_relay(uv_stream_t *from, ssize_t n, const uv_buf_t *b)
{
    struct pconn *c = from->data;
    if (n > 0 && !c->closing) {
        uv_stream_t *to = from == (uv_stream_t *)&c->client ? (uv_stream_t *)&c->server
                                                            : (uv_stream_t *)&c->client;
        struct wreq *r = malloc(sizeof *r);
        assert_non_null(r);
        r->b = uv_buf_init(b->base, (unsigned)n);
        if (uv_write(&r->w, to, &r->b, 1, px_written) == 0) return;
        free(r);
        pc_close(c);
    } else if (n < 0) {
        pc_close(c);
    }
    free(b->base);
}

static void px_upstream(uv_connect_t *req, int status)
{
    struct pconn *c = req->data;
    if (c->closing) return;
    if (status < 0 || c->px->mode == PX_DOWN) {
        pc_close(c);
        return;
    }
    c->up = true;
    uv_read_start((uv_stream_t *)&c->client, px_alloc, px_relay);
    if (c->px->mode == PX_UP) uv_read_start((uv_stream_t *)&c->server, px_alloc, px_relay);
}

static void px_accept(uv_stream_t *l, int status)
{
    struct proxy *px = l->data;
    if (status < 0) return;
    struct pconn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->px = px;
    uv_pipe_init(px->loop, &c->client, 0);
    uv_pipe_init(px->loop, &c->server, 0);
    c->client.data = c->server.data = c->creq.data = c;
    c->next = px->conns;
    px->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->client) < 0) {
        pc_close(c);
        return;
    }
    px->accepted++;
    if (px->mode == PX_DOWN) {
        pc_close(c); /* "the server closed the connection unexpectedly" */
        return;
    }
    uv_pipe_connect(&c->creq, &c->server, px->upstream, px_upstream);
}

static void px_mode(struct proxy *px, enum px_mode m)
{
    px->mode = m;
    for (struct pconn *c = px->conns; c; c = c->next) {
        if (c->closing) continue;
        if (m == PX_DOWN) pc_close(c);
        else if (c->up && m == PX_STALL) uv_read_stop((uv_stream_t *)&c->server);
        else if (c->up && m == PX_UP) uv_read_start((uv_stream_t *)&c->server, px_alloc, px_relay);
    }
}

static void px_start(struct proxy *px, uv_loop_t *loop, enum px_mode m)
{
    memset(px, 0, sizeof *px);
    px->loop = loop;
    px->mode = m;
    const char *dir = getenv("CT_TEST_PGDIR"), *port = getenv("CT_TEST_PGPORT");
    assert_non_null(dir);
    assert_non_null(port);
    snprintf(px->upstream, sizeof px->upstream, "%s/.s.PGSQL.%s", dir, port);
    snprintf(px->dir, sizeof px->dir, "%s", g_tmp);
    px->port = 5999;
    snprintf(px->path, sizeof px->path, "%s/.s.PGSQL.%d", px->dir, px->port);
    unlink(px->path);
    assert_int_equal(uv_pipe_init(loop, &px->listener, 0), 0);
    px->listener.data = px;
    assert_int_equal(uv_pipe_bind(&px->listener, px->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&px->listener, 64, px_accept), 0);
    px->open = true;
}

static void px_stop(struct proxy *px)
{
    if (!px->open) return;
    px->open = false;
    px_mode(px, PX_DOWN);
    uv_close((uv_handle_t *)&px->listener, NULL);
    uv_run(px->loop, UV_RUN_NOWAIT);
    unlink(px->path);
}

/* ---- a journal on a loop with a proxy ------------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    struct proxy px;
    struct journal *j;
    struct journal_open_report rep;
    char spool[400];
    int ups, downs;
    int spool_on, spool_off, spool_errs; /* on_spool calls */
    char spool_msg[600], spool_err[600];
    char lasterr[512];
    int writes[JOURNAL_WRITE_SPOOL + 1]; /* on_write calls by kind */
};

static void fx_on_state(void *ud, bool up, const char *msg)
{
    struct fx *f = ud;
    if (up) f->ups++;
    else {
        f->downs++;
        snprintf(f->lasterr, sizeof f->lasterr, "%s", msg ? msg : "");
    }
}

static void fx_on_spool(void *ud, bool spooling, const char *msg)
{
    struct fx *f = ud;
    assert_non_null(msg);
    if (strstr(msg, "spool taking writes")) {
        assert_true(spooling);
        f->spool_on++;
        snprintf(f->spool_msg, sizeof f->spool_msg, "%s", msg);
    } else if (strstr(msg, "spool drained") || strstr(msg, "write-ahead spool is replayed")) {
        assert_false(spooling);
        f->spool_off++;
        snprintf(f->spool_msg, sizeof f->spool_msg, "%s", msg);
    } else {
        f->spool_errs++;
        snprintf(f->spool_err, sizeof f->spool_err, "%s", msg);
    }
}

static void fx_on_write(void *ud, enum journal_write_kind kind, uint64_t us)
{
    struct fx *f = ud;
    (void)us;
    assert_true(kind >= JOURNAL_WRITE_FILL && kind <= JOURNAL_WRITE_SPOOL);
    f->writes[kind]++;
}

static struct journal_opts fx_opts(struct fx *f)
{
    return (struct journal_opts){.backoff_min_ms = 10, .backoff_max_ms = 40, .on_state = fx_on_state,
                                 .on_spool = fx_on_spool, .ud = f, .spool_dir = f->spool};
}

/* (Re)opens the journal on f's loop (the loop and proxy are made on the first call). */
static void fx_journal(struct fx *f, const struct journal_opts *o)
{
    struct journal_opts opts = o ? *o : fx_opts(f);
    opts.on_state = fx_on_state;
    opts.on_spool = fx_on_spool;
    opts.on_write = fx_on_write;
    opts.ud = f;
    opts.spool_dir = f->spool;
    char err[512] = "";
    int rc = journal_open(&f->loop, g_pxci, &opts, &f->j, &f->rep, err, sizeof err);
    if (rc) fail_msg("journal_open: %d %s", rc, err);
    assert_false(journal_connected(f->j));
}

static void fx_open(struct fx *f, const char *name, enum px_mode m, const struct journal_opts *o)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    px_start(&f->px, &f->loop, m);
    snprintf(f->spool, sizeof f->spool, "%s/%s", g_tmp, name);
    fx_journal(f, o);
}

static void fx_free_journal(struct fx *f)
{
    f->j = journal_free(f->j);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void fx_close(struct fx *f)
{
    f->j = journal_free(f->j);
    px_stop(&f->px);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static bool cond_up(void *arg) { return journal_connected(((struct fx *)arg)->j); }
static bool cond_down(void *arg)
{
    struct fx *f = arg;
    return !journal_connected(f->j) && f->downs > 0;
}

static bool cond_drained(void *arg)
{
    struct fx *f = arg;
    struct journal_stats s;
    journal_get_stats(f->j, &s);
    return journal_connected(f->j) && !s.spooling && s.spool_records == 0;
}

static void wait_drained(struct fx *f)
{
    if (!pgt_run_until(&f->loop, cond_drained, f, DEADLINE_MS, 0))
        fail_msg("spool not drained: %s", journal_last_error(f->j));
}

struct fillres {
    bool done;
    int status;
    bool fill_new;
    size_t n;
    bool intent_new[8];
};

static void fill_cb(void *ud, const struct journal_fill_result *r)
{
    struct fillres *x = ud;
    assert_false(x->done);
    x->done = true;
    x->status = r->status;
    x->fill_new = r->fill_new;
    x->n = r->n;
    for (size_t i = 0; i < r->n && i < 8; i++) x->intent_new[i] = r->intent_new[i];
}

static bool cond_fill_done(void *arg) { return ((struct fillres *)arg)->done; }

static struct journal_fill mkfill(const char *symbol, const char *tid)
{
    return (struct journal_fill){.account = "lead", .symbol = symbol, .trade_id = tid,
                                 .order_id = "77", .trade_seq = 0, .side = "BUY",
                                 .qty = "0.013", .price = "50000.10",
                                 .event_time_ms = 1700000000123};
}

static struct journal_intent mkintent(const char *cid, const char *rule, const char *follower,
                                      const char *symbol)
{
    return (struct journal_intent){.client_order_id = cid, .rule_id = rule, .follower = follower,
                                   .symbol = symbol, .side = "BUY", .qty = "1",
                                   .order_type = "MARKET"};
}

/* Submits a fill with two intents (<tid>-a on r1, <tid>-b on r2); journal_write_fill's result. */
static int send_fill(struct fx *f, const char *symbol, const char *tid, bool ahead, bool now_ok,
                     journal_fill_cb cb, void *ud)
{
    static char cids[64][2][40];
    static unsigned k;
    char(*c)[40] = cids[k++ % 64];
    snprintf(c[0], sizeof c[0], "%s-a", tid);
    snprintf(c[1], sizeof c[1], "%s-b", tid);
    struct journal_fill fill = mkfill(symbol, tid);
    fill.ahead = ahead;
    fill.now_ok = now_ok;
    struct journal_intent in[2] = {mkintent(c[0], "r1", "f1", symbol),
                                   mkintent(c[1], "r2", "f2", symbol)};
    return journal_write_fill(f->j, &fill, in, 2, cb, ud);
}

/* Writes such a fill and waits for its callback; asserts it was not called from inside the call. */
static void write_fill(struct fx *f, const char *symbol, const char *tid, struct fillres *res)
{
    memset(res, 0, sizeof *res);
    int rc = send_fill(f, symbol, tid, g_ahead, false, fill_cb, res);
    if (rc) fail_msg("journal_write_fill %s: %d (%s)", tid, rc, journal_last_error(f->j));
    assert_false(res->done);
    assert_true(pgt_run_until(&f->loop, cond_fill_done, res, DEADLINE_MS, 0));
    assert_int_equal(res->status, 0);
    assert_int_equal(res->n, 2);
}

static void assert_new(const struct fillres *r, bool isnew)
{
    assert_int_equal(r->fill_new, isnew);
    assert_int_equal(r->intent_new[0], isnew);
    assert_int_equal(r->intent_new[1], isnew);
}

static void rec(struct fx *f, const char *cid, enum journal_status st, const char *qty)
{
    struct journal_result r = {.client_order_id = cid, .status = st, .executed_qty = qty};
    assert_int_equal(journal_record_result(f->j, &r), 0);
}

struct stat_at_least {
    struct fx *f;
    size_t off; /* offsetof a uint64_t counter in struct journal_stats */
    uint64_t n;
};

static bool cond_stat(void *arg)
{
    struct stat_at_least *c = arg;
    struct journal_stats s;
    journal_get_stats(c->f->j, &s);
    uint64_t v;
    memcpy(&v, (const char *)&s + c->off, sizeof v);
    return v >= c->n;
}
#define WAIT_STAT(fx, field, val)                                                             \
    do {                                                                                      \
        struct stat_at_least c_ = {(fx), offsetof(struct journal_stats, field), (val)};       \
        if (!pgt_run_until(&(fx)->loop, cond_stat, &c_, DEADLINE_MS, 0))                           \
            fail_msg("stats." #field " did not reach %llu", (unsigned long long)(val));      \
    } while (0)

static struct journal_stats stats(struct fx *f)
{
    struct journal_stats s;
    journal_get_stats(f->j, &s);
    return s;
}

/* The newest segment file of a spool directory. */
static void newest_segment(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char best[256] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 6 && !strcmp(e->d_name + len - 6, ".spool") && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(out, n, "%s/%s", dir, best);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

struct flushres {
    bool done;
    int status;
};
static void flush_cb(void *ud, int status)
{
    struct flushres *x = ud;
    assert_false(x->done);
    x->done = true;
    x->status = status;
}
static bool cond_flush(void *arg) { return ((struct flushres *)arg)->done; }

/* ---- group setup ---------------------------------------------------------------------------- */

static const struct journal_account accounts[] = {
    {"lead", "binance-usdm"}, {"f1", "sim"}, {"f2", "sim"}, {"f3", "sim"}};
static const struct journal_rule rules[] = {
    {"r1", "lead", "f1", "multiplier", NULL, true},
    {"r2", "lead", "f2", "multiplier", NULL, true},
    {"r3", "lead", "f3", "multiplier", NULL, true},
};

static int group_setup(void **state)
{
    (void)state;
    char name[64], err[512];
    snprintf(name, sizeof name, "jnl_spool_%d", (int)getpid());
    if (pgt_create_db(g_admin, name, g_ci, sizeof g_ci) < 0) return -1;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ct-jspool.XXXXXX");
    if (!mkdtemp(g_tmp)) return -1;
    snprintf(g_pxci, sizeof g_pxci, "%s host=%s port=5999", g_ci, g_tmp);
    if (journal_migrate(g_ci, err, sizeof err) < 0 ||
        journal_sync_config(g_ci, accounts, 4, rules, 3, err, sizeof err) != 0) {
        fprintf(stderr, "set-up: %s\n", err);
        return -1;
    }
    g_pg = PQconnectdb(g_ci);
    return PQstatus(g_pg) == CONNECTION_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    PQfinish(g_pg);
    g_pg = NULL;
    if (g_tmp[0] && getenv("CT_KEEP_TMP") == NULL) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    }
    return 0;
}

static int close_aux(void **state)
{
    (void)state;
    PQfinish(g_aux);
    g_aux = NULL;
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* PostgreSQL away during live copying: fills keep being taken (spooled, reported new), results
 * and rule states too; back, everything is replayed exactly once, in order, and writes go direct
 * again. */
static void test_outage_replay(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "outage", PX_UP, NULL);
    assert_true(pgt_run_until(&f.loop, cond_up, &f, DEADLINE_MS, 0));
    assert_int_equal(f.rep.pending_records, 0);
    struct fillres a, b, c, d;
    write_fill(&f, "ETHUSDT", "A1", &a);
    assert_new(&a, true);
    struct journal_stats s = stats(&f);
    assert_false(s.spooling);
    assert_int_equal(s.spool_fills, 0);
    assert_int_equal(s.fills_written, 1);

    px_mode(&f.px, PX_DOWN);
    assert_true(pgt_run_until(&f.loop, cond_down, &f, DEADLINE_MS, 0));
    assert_true(journal_writable(f.j)); /* the spool takes writes */
    write_fill(&f, "ETHUSDT", "B1", &b);
    assert_new(&b, true);
    write_fill(&f, "ETHUSDT", "C1", &c);
    assert_new(&c, true);
    rec(&f, "A1-a", JOURNAL_FILLED, "1");
    rec(&f, "B1-a", JOURNAL_SENT, NULL);
    rec(&f, "B1-a", JOURNAL_ACKED, NULL);
    rec(&f, "B1-b", JOURNAL_PARTIALLY_FILLED, "0.4");
    assert_int_equal(journal_set_rule_status(f.j, "r2", "close_only", -1), 0);
    WAIT_STAT(&f, spool_results, 4);
    WAIT_STAT(&f, spool_rules, 1);
    rec(&f, "B1-b", JOURNAL_PARTIALLY_FILLED, "0.7"); /* a second record of results */
    WAIT_STAT(&f, spool_results, 5);
    /* The exchange replays B1 while it is only in the spool: not new, nothing to send. */
    write_fill(&f, "ETHUSDT", "B1", &d);
    assert_new(&d, false);
    s = stats(&f);
    assert_true(s.spooling);
    assert_false(s.connected);
    assert_true(s.spool_writable);
    assert_int_equal(s.spool_fills, 2);
    assert_int_equal(s.spool_fills_dup, 1);
    assert_int_equal(s.spool_records, 5); /* 2 fills, 2 result groups, 1 rule state */
    assert_true(s.spool_oldest_us > 0);
    assert_int_equal(s.results_queued, 0);
    assert_int_equal(f.spool_on, 1);
    assert_non_null(strstr(f.spool_msg, "PostgreSQL not connected"));
    /* A flush is satisfied by the spool: durable, replayed later. */
    struct flushres fl = {0};
    assert_int_equal(journal_flush(f.j, flush_cb, &fl), 0);
    assert_true(pgt_run_until(&f.loop, cond_flush, &fl, DEADLINE_MS, 0));
    assert_int_equal(fl.status, 0);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('B1', 'C1')"), "0");
    assert_string_equal(q1("SELECT status FROM follower_orders WHERE client_order_id = 'A1-a'"),
                        "intent");

    px_mode(&f.px, PX_UP);
    wait_drained(&f);
    s = stats(&f);
    assert_int_equal(s.spool_replayed, 5);
    assert_int_equal(s.spool_replay_dropped, 0);
    assert_int_equal(s.lag_us, 0);
    assert_int_equal(f.spool_off, 1);
    assert_non_null(strstr(f.spool_msg, "5 record(s) replayed"));
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('A1', 'B1', 'C1')"),
                        "3");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id ~ "
                           "'^(A1|B1|C1)-'"), "6");
    assert_string_equal(q1("SELECT status FROM follower_orders WHERE client_order_id = 'A1-a'"),
                        "filled");
    assert_string_equal(q1("SELECT status FROM follower_orders WHERE client_order_id = 'B1-a'"),
                        "acked");
    assert_string_equal(q1("SELECT status || ' ' || executed_qty FROM follower_orders WHERE "
                           "client_order_id = 'B1-b'"), "partially_filled 0.7");
    assert_string_equal(q1("SELECT status FROM follower_orders WHERE client_order_id = 'C1-a'"),
                        "intent");
    assert_string_equal(q1("SELECT status FROM copy_rules WHERE id = 'r2'"), "close_only");
    struct spool_stats_seen {
        const char *seq;
    } applied = {q1("SELECT seq FROM spool_applied")};
    assert_non_null(applied.seq);
    assert_string_equal(applied.seq, "5");

    /* Direct again: B1 is found in PostgreSQL, a new fill is written there, not spooled. */
    write_fill(&f, "ETHUSDT", "B1", &d);
    assert_new(&d, false);
    write_fill(&f, "ETHUSDT", "D1", &d);
    assert_new(&d, true);
    s = stats(&f);
    assert_false(s.spooling);
    assert_int_equal(s.spool_fills, 2);
    assert_int_equal(s.fills_written, 3);
    assert_int_equal(s.spool_records, 0);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = 'D1'"), "1");
    pgt_execf(g_pg, "UPDATE copy_rules SET status = 'active' WHERE id = 'r2'");
    fx_close(&f);
}

/* The set of spooled fills survives a restart (rebuilt from the spool), in OS durability mode. */
static void test_restart_dedupe(void **state)
{
    (void)state;
    struct fx f;
    struct journal_opts o = {.durability = JOURNAL_DURABILITY_OS, .spool_sync_ms = 5,
                             .backoff_min_ms = 10, .backoff_max_ms = 40};
    fx_open(&f, "restart", PX_DOWN, &o);
    struct fillres r;
    write_fill(&f, "SOLUSDT", "E1", &r);
    assert_new(&r, true);
    struct journal_stats s = stats(&f);
    assert_false(s.connected);
    assert_int_equal(s.spool_fills, 1);
    fx_free_journal(&f);

    fx_journal(&f, &o);
    assert_int_equal(f.rep.pending_records, 1);
    assert_int_equal(f.rep.pending_fills, 1);
    assert_int_equal(f.rep.spool.torn_bytes, 0);
    write_fill(&f, "SOLUSDT", "E1", &r);
    assert_new(&r, false);
    write_fill(&f, "SOLUSDT", "E2", &r);
    assert_new(&r, true);
    px_mode(&f.px, PX_UP);
    wait_drained(&f);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('E1', 'E2')"), "2");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id ~ '^E[12]-'"),
                        "4");
    fx_close(&f);
}

/* A crash mid-write: the last record is torn. Reopened, every complete record is replayed, the
 * torn one is cut off and reported. A record damaged in the middle refuses the start, naming the
 * file and offset. */
static void test_torn_tail(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "torn", PX_DOWN, NULL);
    struct fillres r;
    char seg[600];
    off_t before = 0, after = 0;
    const char *tids[] = {"T1", "T2", "T3"};
    for (int i = 0; i < 3; i++) {
        if (i == 2) {
            newest_segment(f.spool, seg, sizeof seg);
            before = file_size(seg);
        }
        write_fill(&f, "XRPUSDT", tids[i], &r);
        assert_new(&r, true);
    }
    newest_segment(f.spool, seg, sizeof seg);
    after = file_size(seg);
    assert_true(after > before + 32);
    fx_free_journal(&f);
    assert_int_equal(truncate(seg, before + (after - before) / 2), 0);

    fx_journal(&f, NULL);
    assert_int_equal(f.rep.pending_records, 2);
    assert_int_equal(f.rep.spool.torn_bytes, (uint64_t)((after - before) / 2));
    assert_int_equal(f.rep.spool.torn_offset, (uint64_t)before);
    assert_string_equal(f.rep.spool.torn_file, seg);
    px_mode(&f.px, PX_UP);
    wait_drained(&f);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('T1', 'T2')"), "2");
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = 'T3'"), "0");
    /* T3 never reached a caller as sent (its append did not complete): new when written again. */
    write_fill(&f, "XRPUSDT", "T3", &r);
    assert_new(&r, true);
    fx_free_journal(&f);

    /* Damage in the middle: spool two records, flip a byte of the first one's payload. */
    px_mode(&f.px, PX_DOWN);
    fx_journal(&f, NULL);
    write_fill(&f, "XRPUSDT", "T4", &r);
    newest_segment(f.spool, seg, sizeof seg);
    off_t first = file_size(seg) - 1;
    write_fill(&f, "XRPUSDT", "T5", &r);
    fx_free_journal(&f);
    FILE *fp = fopen(seg, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseeko(fp, first, SEEK_SET), 0);
    int ch = fgetc(fp);
    assert_int_equal(fseeko(fp, first, SEEK_SET), 0);
    fputc(ch ^ 0x55, fp);
    fclose(fp);
    struct journal *j = NULL;
    struct journal_opts o = fx_opts(&f);
    char err[512] = "";
    assert_int_equal(journal_open(&f.loop, g_pxci, &o, &j, NULL, err, sizeof err), -EBADMSG);
    assert_null(j);
    assert_non_null(strstr(err, seg));
    assert_non_null(strstr(err, "offset"));
    /* The operator's way out: salvage (the damaged record is lost, the other kept). */
    o.spool_salvage = true;
    assert_int_equal(journal_open(&f.loop, g_pxci, &o, &f.j, &f.rep, err, sizeof err), 0);
    assert_int_equal(f.rep.pending_records, 1);
    assert_true(f.rep.spool.salvaged_ranges >= 1);
    px_mode(&f.px, PX_UP);
    wait_drained(&f);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = 'T5'"), "1");
    fx_close(&f);
}

/* PostgreSQL slow (answers withheld): after spool_after_ms the fill in flight moves to the spool
 * and its callback comes without waiting for PostgreSQL; later fills go straight to the spool;
 * once answers flow again, everything is there exactly once. */
static void test_slow_server(void **state)
{
    (void)state;
    struct fx f;
    struct journal_opts o = {.spool_after_ms = 100, .timeout_ms = 60000, .backoff_min_ms = 10,
                             .backoff_max_ms = 40};
    fx_open(&f, "slow", PX_UP, &o);
    assert_true(pgt_run_until(&f.loop, cond_up, &f, DEADLINE_MS, 0));
    px_mode(&f.px, PX_STALL);
    struct fillres g, h;
    write_fill(&f, "DOGEUSDT", "G1", &g); /* returns once the spool took it */
    assert_new(&g, true);
    struct journal_stats s = stats(&f);
    assert_true(s.connected);
    assert_true(s.spooling);
    assert_int_equal(s.spool_diverted, 1);
    assert_true(s.inflight_statements >= 2); /* PostgreSQL has not answered */
    assert_non_null(strstr(f.spool_msg, "waited more than 100 ms"));
    write_fill(&f, "DOGEUSDT", "H1", &h);
    assert_new(&h, true);
    s = stats(&f);
    assert_int_equal(s.spool_fills, 2);
    assert_int_equal(s.spool_diverted, 1);
    assert_true(s.lag_us > 0);
    px_mode(&f.px, PX_UP);
    wait_drained(&f);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('G1', 'H1')"), "2");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id ~ '^[GH]1-'"),
                        "4");
    s = stats(&f);
    assert_int_equal(s.disconnects, 0);
    assert_int_equal(s.fills_failed, 0);
    fx_close(&f);
}

static bool cond_in_pg(void *arg)
{
    const char *v = q1("SELECT count(*) FROM leader_fills WHERE trade_id = '%s'", (const char *)arg);
    return v && strcmp(v, "1") == 0;
}

/* Write-ahead (journal_durability: os in the daemon): a stream fill is decided new by the spool
 * alone, with PostgreSQL withholding every answer, and reaches PostgreSQL from the replay; a fill
 * not marked ahead (a backfill) is "not new" while the spool holds it and PostgreSQL decides once
 * it has it; PostgreSQL lost, write-ahead is reported as the spool taking writes, and back, every
 * fill is there exactly once. */
/* journal_durability: os with a spool (write-ahead). */
static const struct journal_opts ahead_opts = {.spool_after_ms = 100, .timeout_ms = 60000, .backoff_min_ms = 10,
                                               .backoff_max_ms = 40, .write_ahead = true,
                                               .durability = JOURNAL_DURABILITY_OS, .spool_sync_ms = 20};

static void test_write_ahead(void **state)
{
    (void)state;
    struct fx f;
    struct journal_opts o = ahead_opts;
    fx_open(&f, "ahead", PX_UP, &o);
    assert_true(pgt_run_until(&f.loop, cond_up, &f, DEADLINE_MS, 0));
    px_mode(&f.px, PX_STALL);
    struct fillres r;
    g_ahead = true;
    write_fill(&f, "ADAUSDT", "W1", &r); /* PostgreSQL answers nothing: the spool decides */
    assert_new(&r, true);
    struct journal_stats s = stats(&f);
    assert_true(s.connected);
    assert_false(s.spooling); /* write-ahead is not an outage */
    assert_int_equal(s.spool_fills, 1);
    assert_int_equal(s.spool_diverted, 0);
    assert_int_equal(f.spool_on, 0);
    write_fill(&f, "ADAUSDT", "W1", &r); /* the stream repeats it */
    assert_new(&r, false);
    g_ahead = false;
    write_fill(&f, "ADAUSDT", "W1", &r); /* a backfill finds it: the spool still holds it */
    assert_new(&r, false);
    px_mode(&f.px, PX_UP);
    assert_true(pgt_run_until(&f.loop, cond_in_pg, "W1", DEADLINE_MS, 0));
    wait_drained(&f);
    /* The write latency histogram's kinds: the spooled fill reached PostgreSQL as a replay */
    assert_true(f.writes[JOURNAL_WRITE_SPOOL] >= 1);
    assert_int_equal(f.writes[JOURNAL_WRITE_FILL], 0);
    write_fill(&f, "ADAUSDT", "W1", &r); /* replayed and acked: PostgreSQL decides */
    assert_new(&r, false);
    write_fill(&f, "ADAUSDT", "W2", &r); /* a backfill's fill nobody had: new, from PostgreSQL */
    assert_new(&r, true);
    assert_true(f.writes[JOURNAL_WRITE_FILL] >= 1);
    assert_int_equal(stats(&f).spool_fills, 1);
    /* PostgreSQL lost: the spool takes writes (reported), and back, everything is there once. */
    px_mode(&f.px, PX_DOWN);
    assert_true(pgt_run_until(&f.loop, cond_down, &f, DEADLINE_MS, 0));
    g_ahead = true;
    write_fill(&f, "ADAUSDT", "W3", &r);
    assert_new(&r, true);
    assert_true(stats(&f).spooling);
    assert_int_equal(f.spool_on, 1);
    assert_non_null(strstr(f.spool_msg, "PostgreSQL not connected"));
    px_mode(&f.px, PX_UP);
    wait_drained(&f);
    g_ahead = false;
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('W1', 'W2', 'W3')"), "3");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id ~ '^W[123]-'"), "6");
    s = stats(&f);
    assert_int_equal(s.fills_failed, 0);
    assert_int_equal(s.spool_fills, 2);
    assert_int_equal(s.spool_replay_dropped, 0);
    fx_close(&f);
}

/* now_ok: a fill the spool makes durable at once completes inside journal_write_fill, unless a
 * callback of an earlier fill is still to come (callbacks keep the order of the writes) or the
 * spool already holds it. */
static int g_order;
struct ordered {
    struct fillres r;
    int at; /* g_order when its callback ran */
};
static void ordered_cb(void *ud, const struct journal_fill_result *r)
{
    struct ordered *o = ud;
    fill_cb(&o->r, r);
    o->at = ++g_order;
}
static bool cond_ordered_done(void *arg) { return ((struct ordered *)arg)->r.done; }

static int write_now(struct fx *f, const char *tid, bool now_ok, struct ordered *o)
{
    memset(o, 0, sizeof *o);
    return send_fill(f, "XRPUSDT", tid, true, now_ok, ordered_cb, o);
}

static void test_complete_now(void **state)
{
    (void)state;
    struct fx f;
    struct journal_opts o = ahead_opts;
    fx_open(&f, "now", PX_UP, &o);
    assert_true(pgt_run_until(&f.loop, cond_up, &f, DEADLINE_MS, 0));
    struct ordered a, b, c, d;
    g_order = 0;
    assert_int_equal(write_now(&f, "N1", true, &a), 0);
    assert_true(a.r.done); /* inside the call */
    assert_int_equal(a.r.status, 0);
    assert_true(a.r.fill_new);
    assert_true(a.r.intent_new[0] && a.r.intent_new[1]);

    /* The stream repeats it: the spool holds it, answered from the loop, not new. */
    assert_int_equal(write_now(&f, "N1", true, &b), 0);
    assert_false(b.r.done);
    assert_true(pgt_run_until(&f.loop, cond_ordered_done, &b, DEADLINE_MS, 0));
    assert_false(b.r.fill_new);

    /* An earlier fill's callback still to come: the next one waits its turn. */
    assert_int_equal(write_now(&f, "N2", false, &c), 0);
    assert_int_equal(write_now(&f, "N3", true, &d), 0);
    assert_false(c.r.done);
    assert_false(d.r.done);
    assert_true(pgt_run_until(&f.loop, cond_ordered_done, &d, DEADLINE_MS, 0));
    assert_true(c.r.done);
    assert_true(c.at < d.at);
    assert_true(c.r.fill_new && d.r.fill_new);

    wait_drained(&f);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('N1', 'N2', 'N3')"), "3");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id ~ '^N[123]-'"), "6");
    assert_int_equal(stats(&f).fills_failed, 0);
    fx_close(&f);
}

static bool cond_lock_wait(void *arg)
{
    (void)arg;
    const char *v = q1("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()");
    return v && strcmp(v, "0") != 0;
}

struct applied_at_least {
    const char *id;
    long long seq;
};
static bool cond_applied(void *arg)
{
    struct applied_at_least *a = arg;
    const char *v = q1("SELECT seq FROM spool_applied WHERE spool_id = '%s'", a->id);
    return v && atoll(v) >= a->seq;
}

/* A crash between the replay's commit and the spool's ack: the next run acks up to
 * spool_applied and applies nothing twice. */
static void test_crash_after_commit(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "crash", PX_DOWN, NULL);
    struct fillres r;
    write_fill(&f, "BNBUSDT", "K1", &r);
    assert_int_equal(journal_set_rule_status(f.j, "r3", "paused", -1), 0);
    WAIT_STAT(&f, spool_rules, 1);
    char idpath[600], id[64] = "";
    snprintf(idpath, sizeof idpath, "%s/journal-id", f.spool);
    FILE *fp = fopen(idpath, "r");
    assert_non_null(fp);
    assert_non_null(fgets(id, sizeof id, fp));
    fclose(fp);
    id[strcspn(id, "\n")] = '\0';
    assert_int_equal(strlen(id), 32);

    /* Hold the replay batch (its rows refer to copy_rules, and it updates r3) once the session
     * is set up, withhold the answer, then let it commit. (Not spool_applied itself: the session
     * set-up prepares its INSERT, which takes that lock already.) */
    g_aux = pgt_connect(g_ci);
    pgt_execf(g_aux, "BEGIN");
    pgt_execf(g_aux, "LOCK TABLE copy_rules IN EXCLUSIVE MODE");
    px_mode(&f.px, PX_UP);
    assert_true(pgt_run_until(&f.loop, cond_lock_wait, NULL, DEADLINE_MS, 5));
    px_mode(&f.px, PX_STALL);
    pgt_execf(g_aux, "COMMIT");
    struct applied_at_least ap = {id, 2};
    if (!pgt_run_until(&f.loop, cond_applied, &ap, DEADLINE_MS, 5))
        fail_msg("spool_applied not written: %s; applied %s; activity %s", journal_last_error(f.j),
                 q1("SELECT string_agg(spool_id || '=' || seq, ',') FROM spool_applied"),
                 q1("SELECT string_agg(state || ':' || coalesce(wait_event_type, '-') || ':' || "
                    "left(query, 60), ' | ') FROM pg_stat_activity WHERE datname = current_database()"));
    struct journal_stats s = stats(&f);
    assert_int_equal(s.spool_records, 2); /* committed, never acked */
    /* "Crash" (the answer never arrives), and an operator changes r3 meanwhile. */
    fx_free_journal(&f);
    pgt_execf(g_pg, "UPDATE copy_rules SET status = 'active' WHERE id = 'r3'");
    pgt_execf(g_pg, "DELETE FROM follower_orders WHERE client_order_id = 'K1-b'");

    px_mode(&f.px, PX_UP);
    fx_journal(&f, NULL);
    assert_int_equal(f.rep.pending_records, 2);
    wait_drained(&f);
    s = stats(&f);
    assert_int_equal(s.spool_skipped, 2);
    assert_int_equal(s.spool_replayed, 0);
    /* Re-applying would have paused r3 again and re-inserted K1-b. */
    assert_string_equal(q1("SELECT status FROM copy_rules WHERE id = 'r3'"), "active");
    assert_string_equal(q1("SELECT count(*) FROM follower_orders WHERE client_order_id ~ '^K1-'"), "1");
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = 'K1'"), "1");
    fx_close(&f);
}

/* The spool cannot take a fill (file size limit standing in for a full disk): the write is
 * refused (nothing may be sent), the error is reported, and the same fill is taken (new) once
 * the spool works again. */
static void test_spool_append_fails(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "full", PX_DOWN, NULL);
    struct fillres r;
    write_fill(&f, "LTCUSDT", "L1", &r);
    assert_new(&r, true);
    char seg[600];
    newest_segment(f.spool, seg, sizeof seg);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)file_size(seg);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

    struct journal_fill fill = mkfill("LTCUSDT", "L2");
    struct journal_intent in[2] = {mkintent("L2-a", "r1", "f1", "LTCUSDT"),
                                   mkintent("L2-b", "r2", "f2", "LTCUSDT")};
    memset(&r, 0, sizeof r);
    int rc = journal_write_fill(f.j, &fill, in, 2, fill_cb, &r);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, -ENOTCONN);
    assert_false(journal_writable(f.j));
    struct journal_stats s = stats(&f);
    assert_false(s.spool_writable);
    assert_true(s.spool_errors >= 1);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_false(r.done); /* refused: no callback */
    assert_true(f.spool_errs >= 1);
    assert_non_null(strstr(f.spool_err, seg));

    write_fill(&f, "LTCUSDT", "L2", &r);
    assert_new(&r, true);
    assert_true(journal_writable(f.j));
    px_mode(&f.px, PX_UP);
    wait_drained(&f);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('L1', 'L2')"), "2");
    fx_close(&f);
}

/* A record PostgreSQL refuses (a rule unknown to it) does not block the others: its batch is
 * retried record by record and only that record is dropped, counted and named. */
static void test_refused_record(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "refused", PX_DOWN, NULL);
    struct fillres r;
    write_fill(&f, "ADAUSDT", "M1", &r);
    struct journal_fill fill = mkfill("ADAUSDT", "M2");
    struct journal_intent in = mkintent("M2-a", "no-such-rule", "f1", "ADAUSDT");
    memset(&r, 0, sizeof r);
    assert_int_equal(journal_write_fill(f.j, &fill, &in, 1, fill_cb, &r), 0);
    assert_true(pgt_run_until(&f.loop, cond_fill_done, &r, DEADLINE_MS, 0));
    write_fill(&f, "ADAUSDT", "M3", &r);
    px_mode(&f.px, PX_UP);
    wait_drained(&f);
    struct journal_stats s = stats(&f);
    assert_int_equal(s.spool_replayed, 2);
    assert_int_equal(s.spool_replay_dropped, 1);
    assert_non_null(strstr(journal_last_error(f.j), "refused by PostgreSQL"));
    assert_true(f.spool_errs >= 1);
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id IN ('M1', 'M3')"), "2");
    assert_string_equal(q1("SELECT count(*) FROM leader_fills WHERE trade_id = 'M2'"), "0");
    fx_close(&f);
}

int main(void)
{
    g_admin = getenv("CT_TEST_PG");
    if (!g_admin || !*g_admin || !getenv("CT_TEST_PGDIR") || !getenv("CT_TEST_PGPORT")) {
        fprintf(stderr, "test_journal_spool: FAIL: CT_TEST_PG, CT_TEST_PGDIR or CT_TEST_PGPORT is "
                        "not set; run it under tests/integration/with-services\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outage_replay),
        cmocka_unit_test(test_restart_dedupe),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_slow_server),
        cmocka_unit_test(test_write_ahead),
        cmocka_unit_test(test_complete_now),
        cmocka_unit_test_teardown(test_crash_after_commit, close_aux),
        cmocka_unit_test(test_spool_append_fails),
        cmocka_unit_test(test_refused_record),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
