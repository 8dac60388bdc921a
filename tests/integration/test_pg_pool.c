/* Integration test of daemon/pg_pool.c against a real PostgreSQL (CT_TEST_PG from
 * tests/integration/with-services). Every asynchronous step runs a real uv loop until a condition
 * or a deadline, never a sleep-and-hope. Each test gives its pool its own application_name, so
 * pg_stat_activity shows exactly that pool's connections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <uv.h>

#include "pg_pool.h"

#include "pg_test.h"

#define DEADLINE_MS 20000

static const char *g_admin; /* CT_TEST_PG */
static char g_dbname[64];    /* this run's own database, dropped at the end */
static char g_ci_buf[1024];
static const char *g_ci;     /* conninfo of g_dbname */
static PGconn *g_pg;         /* synchronous connection to it, for checks */
static int g_stopped_pid; /* a backend a test SIGSTOPped: continued by teardown whatever happens */

/* ---- helpers -------------------------------------------------------------------------------- */

#define exec_sql(...) pgt_execf(g_pg, __VA_ARGS__)

static long q_long(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static long q_long(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(g_pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    long v = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static long count_app(const char *app)
{
    return q_long("SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app);
}

/* Closed backends leave pg_stat_activity asynchronously: polls (10 ms steps, 5 s at most). */
static long count_app_settle(const char *app, long want)
{
    long n = count_app(app);
    for (int i = 0; i < 500 && n != want; i++) {
        usleep(10000);
        n = count_app(app);
    }
    return n;
}

/* Waits (inside PostgreSQL, up to 5 s) until the backend is gone. */
static void terminate(int pid)
{
    assert_true(pid > 0);
    assert_int_equal(q_long("SELECT pg_terminate_backend(%d, 5000)::int", pid), 1);
}


static bool cond_never(void *arg)
{
    (void)arg;
    return false;
}

/* Lets the loop run for ms (for ages to pass: the condition under test is checked after). */
static void run_for(uv_loop_t *loop, unsigned ms) { pgt_run_until(loop, cond_never, NULL, ms, 0); }

/* ---- fixture: a loop and a pool ------------------------------------------------------------- */

struct fx {
    uv_loop_t loop;
    struct pgp *p;
    char app[64];
    int slow_n;
    char slow_name[128];
    uint64_t slow_us;
    int errors;
    char last_err[512];
    int waits;
};

static void fx_on_slow(void *ud, const char *name, uint64_t us)
{
    struct fx *f = ud;
    f->slow_n++;
    snprintf(f->slow_name, sizeof f->slow_name, "%s", name);
    f->slow_us = us;
}

static void fx_on_error(void *ud, const char *msg)
{
    struct fx *f = ud;
    assert_non_null(msg);
    assert_null(strchr(msg, '\n')); /* one line */
    f->errors++;
    snprintf(f->last_err, sizeof f->last_err, "%s", msg);
}

static void fx_on_wait(void *ud, uint64_t us)
{
    (void)us;
    ((struct fx *)ud)->waits++;
}

static struct pgp_stats stats(struct fx *f)
{
    struct pgp_stats s;
    pgp_get_stats(f->p, &s);
    return s;
}

static bool cond_warm(void *arg)
{
    struct fx *f = arg;
    struct pgp_stats s = stats(f);
    return s.connecting == 0 && s.idle + s.in_use >= s.size && s.created_total >= 1 &&
           s.size > 0;
}

/* Opens a pool named after the test; waits until its warm connections are up unless the
 * conninfo is not the test server's. */
static void fx_open(struct fx *f, const char *tag, const char *ci, struct pgp_opts o, bool wait)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->app, sizeof f->app, "pgp_%s_%d", tag, (int)getpid());
    o.application_name = f->app;
    o.on_slow = fx_on_slow;
    o.on_error = fx_on_error;
    o.on_wait = fx_on_wait;
    o.ud = f;
    f->p = pgp_new(&f->loop, ci ? ci : g_ci, &o);
    assert_non_null(f->p);
    struct pgp_stats s = stats(f);
    assert_int_equal(s.size, 0); /* nothing happens before the loop runs */
    if (wait && !pgt_run_until(&f->loop, cond_warm, f, DEADLINE_MS, 0))
        fail_msg("pool did not connect: %s", f->last_err);
}

static void fx_close(struct fx *f)
{
    f->p = pgp_free(f->p);
    assert_null(f->p);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* every handle closed */
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* ---- acquire / exec helpers ----------------------------------------------------------------- */

struct acq {
    bool done;
    struct pgp_conn *c;
    int status;
    char err[512];
    uint64_t t_req, t_done;
    int order;
};
static int g_grants;

static void acq_cb(void *ud, struct pgp_conn *c, int status, const char *err)
{
    struct acq *a = ud;
    assert_false(a->done); /* exactly once */
    a->done = true;
    a->c = c;
    a->status = status;
    a->t_done = uv_hrtime();
    a->order = g_grants++;
    snprintf(a->err, sizeof a->err, "%s", err ? err : "");
    if (status == 0) {
        assert_non_null(c);
        assert_null(err);
        assert_non_null(pgp_conn_pg(c));
        assert_int_equal(PQtransactionStatus(pgp_conn_pg(c)), PQTRANS_IDLE);
    } else {
        assert_null(c);
        assert_non_null(err);
    }
}

static bool cond_acq(void *arg) { return ((struct acq *)arg)->done; }

static struct pgp_conn *acquire_ok(struct fx *f)
{
    struct acq a = {.t_req = uv_hrtime()};
    assert_int_equal(pgp_acquire(f->p, acq_cb, &a), 0);
    assert_false(a.done); /* never called from inside pgp_acquire */
    assert_true(pgt_run_until(&f->loop, cond_acq, &a, DEADLINE_MS, 0));
    if (a.status) fail_msg("acquire: %d %s", a.status, a.err);
    return a.c;
}

struct ex {
    bool done;
    int status;
    char err[512];
    size_t n;
    ExecStatusType rs[8];
    char v[8][128]; /* first cell of each result, "" if none */
};

static void ex_cb(void *ud, struct pgp_conn *c, const struct pgp_result *r)
{
    struct ex *x = ud;
    assert_non_null(c);
    assert_false(x->done);
    x->done = true;
    x->status = r->status;
    x->n = r->n;
    snprintf(x->err, sizeof x->err, "%s", r->err ? r->err : "");
    if (r->status == 0) assert_null(r->err);
    else assert_non_null(r->err);
    for (size_t i = 0; i < r->n && i < 8; i++) {
        x->rs[i] = r->res[i] ? PQresultStatus(r->res[i]) : PGRES_FATAL_ERROR;
        x->v[i][0] = 0;
        if (r->res[i] && PQresultStatus(r->res[i]) == PGRES_TUPLES_OK && PQntuples(r->res[i]) > 0)
            snprintf(x->v[i], sizeof x->v[i], "%s", PQgetvalue(r->res[i], 0, 0));
    }
}

static bool cond_ex(void *arg) { return ((struct ex *)arg)->done; }

static struct ex exec_wait(struct fx *f, struct pgp_conn *c, const struct pgp_stmt *st, size_t n)
{
    struct ex x = {0};
    int r = pgp_exec(c, st, n, ex_cb, &x);
    if (r) {
        x.done = true;
        x.status = r;
        snprintf(x.err, sizeof x.err, "pgp_exec returned %d", r);
        return x;
    }
    assert_false(x.done);
    assert_true(pgt_run_until(&f->loop, cond_ex, &x, DEADLINE_MS, 0));
    return x;
}

static struct ex exec1(struct fx *f, struct pgp_conn *c, const char *sql)
{
    struct pgp_stmt st = {.sql = sql};
    return exec_wait(f, c, &st, 1);
}

static int backend_pid(struct fx *f, struct pgp_conn *c)
{
    struct ex x = exec1(f, c, "SELECT pg_backend_pid()");
    if (x.status) fail_msg("pg_backend_pid: %s", x.err);
    int pid = atoi(x.v[0]);
    assert_int_equal(pid, pgp_conn_backend_pid(c));
    return pid;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static struct pgp_opts base_opts(void)
{
    struct pgp_opts o = {0};
    o.size = 1;
    o.health_idle_ms = 600000; /* only the free checks, unless a test wants the round trip */
    return o;
}

static void test_acquire_release_reuse(void **state)
{
    (void)state;
    struct fx f;
    struct pgp_opts o = base_opts();
    o.size = 2;
    fx_open(&f, "reuse", NULL, o, true);
    struct pgp_stats s = stats(&f);
    assert_int_equal(s.size, 2); /* warmed at start */
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.created_total, 2);
    assert_int_equal(count_app(f.app), 2);

    struct pgp_conn *c = acquire_ok(&f);
    s = stats(&f);
    assert_int_equal(s.in_use, 1);
    assert_int_equal(s.idle, 1);
    int pid1 = backend_pid(&f, c);
    pgp_release(f.p, c, false);
    assert_int_equal(stats(&f).in_use, 0);

    c = acquire_ok(&f);
    assert_int_equal(backend_pid(&f, c), pid1); /* the same backend: reused, most recent first */

    /* a pipeline of several statements: one result each, in order */
    const char *one[] = {"7"};
    struct pgp_stmt batch[] = {
        {.sql = "SELECT 1"},
        {.sql = "SELECT $1::int * 6", .nparams = 1, .params = one},
        {.sql = "SELECT 'x' || $1", .nparams = 1, .params = one},
    };
    struct ex x = exec_wait(&f, c, batch, 3);
    assert_int_equal(x.status, 0);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.v[0], "1");
    assert_string_equal(x.v[1], "42");
    assert_string_equal(x.v[2], "x7");

    /* an error in the middle rolls the batch back and says which statement */
    exec_sql("DELETE FROM pgp_writes WHERE test = 'reuse'");
    struct pgp_stmt bad[] = {
        {.sql = "INSERT INTO pgp_writes VALUES ('reuse', 1)"},
        {.name = "dup insert", .sql = "INSERT INTO pgp_writes VALUES ('reuse', 1)"},
        {.sql = "SELECT 1"},
    };
    x = exec_wait(&f, c, bad, 3);
    assert_int_equal(x.status, -EIO);
    assert_int_equal(x.rs[0], PGRES_COMMAND_OK);
    assert_int_equal(x.rs[1], PGRES_FATAL_ERROR);
    assert_int_equal(x.rs[2], PGRES_PIPELINE_ABORTED);
    assert_non_null(strstr(x.err, "statement 2 (dup insert)"));
    assert_non_null(strstr(x.err, "duplicate key"));
    assert_int_equal(q_long("SELECT count(*) FROM pgp_writes WHERE test = 'reuse'"), 0);

    /* still usable, and still the same backend after the error */
    pgp_release(f.p, c, false);
    c = acquire_ok(&f);
    assert_int_equal(backend_pid(&f, c), pid1);
    assert_int_equal(stats(&f).broken_total, 0);

    /* left inside a transaction: never handed to anyone else */
    x = exec1(&f, c, "BEGIN");
    assert_int_equal(x.status, 0);
    pgp_release(f.p, c, false);
    s = stats(&f);
    assert_int_equal(s.broken_total, 1);
    c = acquire_ok(&f);
    assert_int_not_equal(backend_pid(&f, c), pid1);
    pgp_release(f.p, c, false);

    /* released as broken by the caller: closed and replaced */
    c = acquire_ok(&f);
    int pid2 = backend_pid(&f, c);
    pgp_release(f.p, c, true);
    assert_int_equal(stats(&f).broken_total, 2);
    c = acquire_ok(&f);
    assert_int_not_equal(backend_pid(&f, c), pid2);
    pgp_release(f.p, c, false);
    assert_true(pgt_run_until(&f.loop, cond_warm, &f, DEADLINE_MS, 0));
    assert_int_equal(stats(&f).size, 2);
    assert_int_equal(count_app_settle(f.app, 2), 2);
    assert_int_equal(f.waits, (int)stats(&f).acquires_total);
    fx_close(&f);
    assert_int_equal(count_app_settle(f.app, 0), 0);
}

/* Killed server-side while idle, the loop not having run since: the free check at hand-out
 * (read + MSG_PEEK) catches it and a fresh connection is handed out instead. */
static void test_health_killed_before_handout(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "killed", NULL, base_opts(), true);
    struct pgp_conn *c = acquire_ok(&f);
    int pid1 = backend_pid(&f, c);
    int fd1 = PQsocket(pgp_conn_pg(c));
    pgp_release(f.p, c, false);
    terminate(pid1);

    c = acquire_ok(&f);
    int pid2 = backend_pid(&f, c);
    assert_int_not_equal(pid2, pid1);
    assert_int_equal(PQsocket(pgp_conn_pg(c)), fd1); /* same fd number, new socket */
    struct pgp_stats s = stats(&f);
    assert_int_equal(s.broken_total, 1);
    assert_int_equal(s.created_total, 2);
    assert_int_equal(s.health_checks_total, 0); /* no round trip was needed */
    assert_true(f.errors >= 1);
    assert_non_null(strstr(f.last_err, "lost"));
    pgp_release(f.p, c, false);
    fx_close(&f);
}

static bool cond_replaced(void *arg)
{
    struct fx *f = arg;
    struct pgp_stats s = stats(f);
    return s.broken_total >= 1 && s.created_total >= 2 && s.idle == 1;
}

static bool cond_replaced2(void *arg)
{
    struct fx *f = arg;
    struct pgp_stats s = stats(f);
    return s.broken_total >= 2 && s.created_total >= 3 && s.idle == 1;
}

/* Killed while idle with the loop running: seen on the socket and replaced with no acquire. */
static void test_health_idle_watch(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "watch", NULL, base_opts(), true);
    struct pgp_conn *c = acquire_ok(&f);
    int pid1 = backend_pid(&f, c);
    pgp_release(f.p, c, false);
    terminate(pid1);
    assert_true(pgt_run_until(&f.loop, cond_replaced, &f, DEADLINE_MS, 0));
    assert_int_equal(stats(&f).acquires_total, 1);
    c = acquire_ok(&f);
    int pid2 = backend_pid(&f, c);
    assert_int_not_equal(pid2, pid1);
    int fd2 = PQsocket(pgp_conn_pg(c));
    pgp_release(f.p, c, false);

    /* The reused-fd pitfall: the replacement got the closed socket's fd number (lowest free),
     * and libuv deregisters by number, so closing the old watch after PQfinish would have
     * silenced the new one. Kill it too: its watch must still see it. */
    terminate(pid2);
    assert_true(pgt_run_until(&f.loop, cond_replaced2, &f, DEADLINE_MS, 0));
    c = acquire_ok(&f);
    assert_int_not_equal(backend_pid(&f, c), pid2);
    assert_int_equal(PQsocket(pgp_conn_pg(c)), fd2); /* the pitfall was really exercised */
    assert_int_equal(stats(&f).acquires_total, 3);
    pgp_release(f.p, c, false);
    fx_close(&f);
}

static int cont_stopped(void **state)
{
    (void)state;
    if (g_stopped_pid > 0) {
        kill(g_stopped_pid, SIGCONT);
        g_stopped_pid = 0;
    }
    return 0;
}

/* A backend that is alive but does not answer (SIGSTOP: the socket stays open, nothing comes
 * back): only the round-trip check can tell. It times out, and another connection is used. */
static void test_health_roundtrip(void **state)
{
    (void)state;
    struct fx f;
    struct pgp_opts o = base_opts();
    o.health_idle_ms = 1;
    o.health_timeout_ms = 300;
    fx_open(&f, "hung", NULL, o, true);
    struct pgp_conn *c = acquire_ok(&f);
    int pid1 = backend_pid(&f, c);
    pgp_release(f.p, c, false);

    /* a healthy check first: passes, same backend */
    run_for(&f.loop, 5);
    c = acquire_ok(&f);
    assert_int_equal(backend_pid(&f, c), pid1);
    assert_int_equal(stats(&f).health_checks_total, 1);
    pgp_release(f.p, c, false);

    run_for(&f.loop, 5);
    if (kill(pid1, SIGSTOP) != 0) fail_msg("cannot SIGSTOP backend %d: %s", pid1, strerror(errno));
    g_stopped_pid = pid1;
    c = acquire_ok(&f);
    int pid2 = backend_pid(&f, c);
    assert_int_not_equal(pid2, pid1);
    struct pgp_stats s = stats(&f);
    assert_int_equal(s.health_checks_total, 2);
    assert_int_equal(s.broken_total, 1);
    assert_non_null(strstr(f.last_err, "health check"));
    assert_non_null(strstr(f.last_err, "300 ms"));
    pgp_release(f.p, c, false);
    cont_stopped(NULL);
    fx_close(&f);
}

static bool cond_recycled(void *arg)
{
    struct fx *f = arg;
    struct pgp_stats s = stats(f);
    return s.recycled_total >= 1 && s.created_total >= 2 && s.idle == 1;
}

static void test_recycle_age(void **state)
{
    (void)state;
    struct fx f;
    struct pgp_opts o = base_opts();
    o.recycle_age_ms = 300;
    uint64_t t0 = uv_hrtime();
    fx_open(&f, "recycle", NULL, o, true);
    struct pgp_conn *c = acquire_ok(&f);
    int pid1 = backend_pid(&f, c);
    bool young = uv_hrtime() - t0 < 250ull * 1000000u; /* (a loaded machine may take longer) */
    pgp_release(f.p, c, false);
    if (young) assert_int_equal(stats(&f).recycled_total, 0); /* kept */

    /* idle past its age: replaced in the background */
    assert_true(pgt_run_until(&f.loop, cond_recycled, &f, DEADLINE_MS, 0));
    c = acquire_ok(&f);
    int pid2 = backend_pid(&f, c);
    assert_int_not_equal(pid2, pid1);

    /* in use past its age: closed at release */
    run_for(&f.loop, 350);
    uint64_t before = stats(&f).recycled_total;
    pgp_release(f.p, c, false);
    assert_int_equal(stats(&f).recycled_total, before + 1);
    assert_int_equal(stats(&f).broken_total, 0);
    c = acquire_ok(&f);
    assert_int_not_equal(backend_pid(&f, c), pid2);
    pgp_release(f.p, c, false);
    fx_close(&f);
}

/* ---- exhaustion: more writers than connections ---- */

struct writer {
    struct fx *f;
    int idx;
    bool hold;       /* keep the connection after writing until the test releases it */
    struct acq a;
    struct ex x;
    bool written;
    long conns_seen; /* pg_stat_activity for the pool at grant time */
};
static long g_max_conns;

static void writer_exec_cb(void *ud, struct pgp_conn *c, const struct pgp_result *r)
{
    struct writer *w = ud;
    ex_cb(&w->x, c, r);
    assert_int_equal(r->status, 0);
    w->written = true;
    if (!w->hold) pgp_release(w->f->p, c, false);
}

static void writer_acq_cb(void *ud, struct pgp_conn *c, int status, const char *err)
{
    struct writer *w = ud;
    acq_cb(&w->a, c, status, err);
    if (status) return;
    w->conns_seen = count_app(w->f->app);
    if (w->conns_seen > g_max_conns) g_max_conns = w->conns_seen;
    char id[16];
    snprintf(id, sizeof id, "%d", w->idx);
    const char *params[] = {w->f->app, id};
    struct pgp_stmt st = {
        .name = "writer insert",
        .sql = "INSERT INTO pgp_writes VALUES ($1, $2::int)",
        .nparams = 2,
        .params = params,
    };
    assert_int_equal(pgp_exec(c, &st, 1, writer_exec_cb, w), 0);
}

struct wset {
    struct writer *w;
    int n;
    int want_written, want_done;
};

static bool cond_wset(void *arg)
{
    struct wset *s = arg;
    int written = 0, done = 0;
    for (int i = 0; i < s->n; i++) {
        written += s->w[i].written;
        done += s->w[i].a.done && (s->w[i].a.status != 0 || s->w[i].written);
    }
    return written >= s->want_written && done >= s->want_done;
}

static void writers_start(struct fx *f, struct writer *w, int n)
{
    g_grants = 0;
    g_max_conns = 0;
    for (int i = 0; i < n; i++) {
        w[i] = (struct writer){.f = f, .idx = i, .hold = true};
        w[i].a.t_req = uv_hrtime();
        assert_int_equal(pgp_acquire(f->p, writer_acq_cb, &w[i]), 0);
    }
}

static bool cond_size2(void *arg)
{
    struct pgp_stats s = stats(arg);
    return s.size == 2 && s.idle == 2;
}

/* size 2 + overflow 1, 10 writers holding their connection: never more than 3 connections,
 * waiters served in FIFO order as connections come back, every write in the table; the extra
 * connection closes once idle. */
static void test_exhaustion_fifo(void **state)
{
    (void)state;
    struct fx f;
    struct pgp_opts o = base_opts();
    o.size = 2;
    o.overflow = 1;
    o.acquire_timeout_ms = DEADLINE_MS;
    o.idle_timeout_ms = 200;
    fx_open(&f, "fifo", NULL, o, true);
    struct writer w[10];
    writers_start(&f, w, 10);
    struct wset ws = {.w = w, .n = 10, .want_written = 3};
    assert_true(pgt_run_until(&f.loop, cond_wset, &ws, DEADLINE_MS, 0));
    struct pgp_stats s = stats(&f);
    assert_int_equal(s.in_use, 3);
    assert_int_equal(s.waiting, 7);
    assert_int_equal(s.size, 3);
    for (int i = 0; i < 10; i++) assert_int_equal(w[i].a.done, i < 3);

    /* release in a scrambled order: the next waiter in line is served each time */
    static const int rel[10] = {1, 0, 2, 4, 3, 6, 5, 9, 8, 7};
    for (int k = 0; k < 10; k++) {
        struct writer *r = &w[rel[k]];
        assert_true(r->written);
        pgp_release(f.p, r->a.c, false);
        r->a.c = NULL;
        ws.want_written = k + 4 > 10 ? 10 : k + 4;
        assert_true(pgt_run_until(&f.loop, cond_wset, &ws, DEADLINE_MS, 0));
    }
    for (int i = 0; i < 10; i++) {
        assert_int_equal(w[i].a.status, 0);
        assert_int_equal(w[i].a.order, i); /* FIFO */
        assert_true(w[i].conns_seen <= 3);
    }
    assert_true(g_max_conns <= 3);
    assert_true(g_max_conns >= 3); /* the overflow connection was used */
    s = stats(&f);
    assert_int_equal(s.created_total, 3);
    assert_int_equal(s.acquires_total, 10);
    assert_int_equal(s.acquire_timeouts_total, 0);
    assert_true(s.max_wait_us > 0);
    assert_int_equal(q_long("SELECT count(*) FROM pgp_writes WHERE test = '%s'", f.app), 10);

    /* the extra connection goes after idle_timeout_ms */
    assert_true(pgt_run_until(&f.loop, cond_size2, &f, DEADLINE_MS, 0));
    s = stats(&f);
    assert_int_equal(s.idle_closed_total, 1);
    assert_int_equal(count_app_settle(f.app, 2), 2);
    fx_close(&f);
}

/* Writers beyond what the connections can serve within acquire_timeout_ms get -ETIMEDOUT and a
 * clear message; every write that was accepted is in the table, none of the others. */
static void test_exhaustion_timeout(void **state)
{
    (void)state;
    struct fx f;
    struct pgp_opts o = base_opts();
    o.size = 2;
    o.overflow = 1;
    o.acquire_timeout_ms = 2000;
    fx_open(&f, "tmo", NULL, o, true);
    struct writer w[10];
    writers_start(&f, w, 10);
    /* the first three write and give back at once; the next three keep theirs */
    for (int i = 0; i < 3; i++) w[i].hold = false;
    struct wset ws = {.w = w, .n = 10, .want_written = 6, .want_done = 10};
    assert_true(pgt_run_until(&f.loop, cond_wset, &ws, DEADLINE_MS, 0));
    for (int i = 0; i < 10; i++) {
        if (i < 6) {
            assert_int_equal(w[i].a.status, 0);
            assert_true(w[i].written);
            assert_int_equal(w[i].a.order, i);
        } else {
            assert_int_equal(w[i].a.status, -ETIMEDOUT);
            assert_false(w[i].written);
            assert_non_null(strstr(w[i].a.err, "no connection free within 2000 ms"));
            assert_true(w[i].a.t_done - w[i].a.t_req >= 2000ull * 1000000u);
        }
        assert_true(w[i].conns_seen <= 3);
    }
    struct pgp_stats s = stats(&f);
    assert_int_equal(s.acquire_timeouts_total, 4);
    assert_int_equal(s.in_use, 3);
    assert_int_equal(s.waiting, 0);
    assert_true(s.created_total <= 3);
    assert_int_equal(count_app(f.app), 3);
    /* nothing lost: every accepted write is there, and only those */
    assert_int_equal(q_long("SELECT count(*) FROM pgp_writes WHERE test = '%s'", f.app), 6);
    assert_int_equal(q_long("SELECT count(*) FROM pgp_writes WHERE test = '%s' AND id < 6", f.app),
                     6);
    for (int i = 3; i < 6; i++) pgp_release(f.p, w[i].a.c, false);
    fx_close(&f);
}

static void test_slow_statement(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "slow", NULL, base_opts(), true); /* slow_stmt_ms: default 100 */
    struct pgp_conn *c = acquire_ok(&f);
    struct ex x = exec1(&f, c, "SELECT 1");
    assert_int_equal(x.status, 0);
    assert_int_equal(f.slow_n, 0);

    struct pgp_stmt sl = {.name = "sleepy", .sql = "SELECT pg_sleep(0.15)"};
    x = exec_wait(&f, c, &sl, 1);
    assert_int_equal(x.status, 0);
    assert_int_equal(f.slow_n, 1);
    assert_string_equal(f.slow_name, "sleepy");
    assert_true(f.slow_us >= 150000);

    /* In a pipeline each statement is timed on its own (from the previous one's answer):
     * only the sleeper is slow, not the statements queued behind it. */
    struct pgp_stmt batch1[] = {
        {.sql = "SELECT pg_sleep(0.15)"},
        {.sql = "SELECT 2"},
        {.sql = "SELECT 3"},
    };
    x = exec_wait(&f, c, batch1, 3);
    assert_int_equal(x.status, 0);
    assert_int_equal(f.slow_n, 2);
    assert_string_equal(f.slow_name, "SELECT pg_sleep(0.15)"); /* unnamed: its SQL */
    assert_true(f.slow_us >= 150000);

    /* ... nor the one before it. This needs the server to send each result at once (a Flush
     * after each statement; it would otherwise hold them all until the Sync). The sleep is
     * long because the client measures: a client stalled 400 ms could still misattribute. */
    struct pgp_stmt batch2[] = {
        {.sql = "SELECT 1"},
        {.name = "long sleeper", .sql = "SELECT pg_sleep(0.5)"},
        {.sql = "SELECT 2"},
    };
    x = exec_wait(&f, c, batch2, 3);
    assert_int_equal(x.status, 0);
    assert_int_equal(f.slow_n, 3);
    assert_string_equal(f.slow_name, "long sleeper");
    struct pgp_stats s = stats(&f);
    assert_int_equal(s.slow_statements_total, 3);
    assert_int_equal(s.statements_total, 8);
    pgp_release(f.p, c, false);
    fx_close(&f);
}

static void check_unreachable(const char *ci, const char *names)
{
    struct fx f;
    struct pgp_opts o = base_opts();
    o.size = 2;
    o.acquire_timeout_ms = 400;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 100;
    o.connect_timeout_ms = 1000;
    fx_open(&f, "down", ci, o, false);
    struct acq a = {.t_req = uv_hrtime()};
    assert_int_equal(pgp_acquire(f.p, acq_cb, &a), 0);
    assert_true(pgt_run_until(&f.loop, cond_acq, &a, DEADLINE_MS, 0));
    assert_int_equal(a.status, -ETIMEDOUT);
    assert_true(a.t_done - a.t_req >= 400ull * 1000000u);
    if (strncmp(a.err, "cannot connect: ", 16) != 0) fail_msg("unexpected message: %s", a.err);
    if (!strstr(a.err, names)) fail_msg("message does not name %s: %s", names, a.err);
    assert_null(strstr(a.err, "s3cret"));
    assert_null(strchr(a.err, '\n'));
    assert_null(strstr(f.last_err, "s3cret"));
    assert_null(strstr(pgp_last_error(f.p), "s3cret"));
    struct pgp_stats s = stats(&f);
    assert_true(s.connect_failures_total >= 2); /* it kept trying, with backoff */
    assert_true(f.errors >= 2);
    assert_int_equal(s.created_total, 0);
    assert_int_equal(s.acquire_timeouts_total, 1);
    fx_close(&f);
}

static void test_unreachable(void **state)
{
    (void)state;
    check_unreachable("host=/nonexistent-pgp-dir port=5 dbname=x user=u password=s3cret-pw "
                      "connect_timeout=1",
                      "/nonexistent-pgp-dir");
    check_unreachable("hostaddr=127.0.0.1 port=1 dbname=x user=u password=s3cret-pw",
                      "127.0.0.1");
}

static bool cond_two_up(void *arg)
{
    struct pgp_stats s = stats(arg);
    return s.idle == 2 && s.connecting == 0;
}

/* Dies while handed out: the exec fails with -ECONNRESET, release replaces it; and when every
 * connection dies at once (a server restart) waiters are served by the reconnects. */
static void test_lost_in_use(void **state)
{
    (void)state;
    struct fx f;
    struct pgp_opts o = base_opts();
    o.size = 2;
    fx_open(&f, "lost", NULL, o, true);
    struct pgp_conn *c = acquire_ok(&f);
    int pid1 = backend_pid(&f, c);
    terminate(pid1);
    struct ex x = exec1(&f, c, "SELECT 1");
    assert_true(x.status == -ECONNRESET);
    assert_true(strlen(x.err) > 0);
    assert_int_equal(stats(&f).in_use, 1); /* dead, but still the caller's until released */
    assert_int_equal(pgp_exec(c, &(struct pgp_stmt){.sql = "SELECT 1"}, 1, ex_cb, &x), -ENOTCONN);
    pgp_release(f.p, c, false);
    assert_int_equal(stats(&f).broken_total, 1);
    assert_int_equal(stats(&f).in_use, 0);
    assert_true(pgt_run_until(&f.loop, cond_two_up, &f, DEADLINE_MS, 0));

    /* all at once, then two acquirers */
    exec_sql("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
             "WHERE application_name = '%s'", f.app);
    struct acq a1 = {0}, a2 = {0};
    assert_int_equal(pgp_acquire(f.p, acq_cb, &a1), 0);
    assert_int_equal(pgp_acquire(f.p, acq_cb, &a2), 0);
    assert_true(pgt_run_until(&f.loop, cond_acq, &a2, DEADLINE_MS, 0));
    assert_int_equal(a1.status, 0);
    assert_int_equal(a2.status, 0);
    assert_int_equal(exec1(&f, a1.c, "SELECT 1").status, 0);
    assert_int_equal(exec1(&f, a2.c, "SELECT 1").status, 0);
    assert_int_equal(stats(&f).broken_total, 3);
    pgp_release(f.p, a1.c, false);
    pgp_release(f.p, a2.c, false);
    fx_close(&f);
}

static void test_statement_timeout(void **state)
{
    (void)state;
    struct fx f;
    struct pgp_opts o = base_opts();
    o.stmt_timeout_ms = 200;
    fx_open(&f, "stmo", NULL, o, true);
    struct pgp_conn *c = acquire_ok(&f);
    int pid = backend_pid(&f, c);
    struct ex x = exec1(&f, c, "SELECT pg_sleep(5)");
    assert_int_equal(x.status, -ETIMEDOUT);
    assert_non_null(strstr(x.err, "200 ms"));
    pgp_release(f.p, c, false);
    c = acquire_ok(&f);
    assert_int_not_equal(backend_pid(&f, c), pid);
    pgp_release(f.p, c, false);
    terminate(pid); /* the old backend still sleeps; do not leave it behind */
    fx_close(&f);
}

static void test_session_setup(void **state)
{
    (void)state;
    struct fx f;
    struct pgp_opts o = base_opts();
    const char *sql[] = {"SET statement_timeout = 12345"};
    struct pgp_prepare prep[] = {{"pgp_plus_one", "SELECT $1::int + 1"}};
    o.session_sql = sql;
    o.n_session_sql = 1;
    o.prepares = prep;
    o.n_prepares = 1;
    fx_open(&f, "setup", NULL, o, true);
    struct pgp_conn *c = acquire_ok(&f);
    struct ex x = exec1(&f, c, "SHOW statement_timeout");
    assert_int_equal(x.status, 0);
    assert_string_equal(x.v[0], "12345ms");
    const char *p41[] = {"41"};
    struct pgp_stmt st = {.sql = "pgp_plus_one", .prepared = true, .nparams = 1, .params = p41};
    x = exec_wait(&f, c, &st, 1);
    assert_int_equal(x.status, 0);
    assert_string_equal(x.v[0], "42");
    pgp_release(f.p, c, false);
    fx_close(&f);

    /* a session statement that fails fails the connect, with PostgreSQL's message */
    const char *badsql[] = {"SET no_such_setting_xyz = 1"};
    o = base_opts();
    o.session_sql = badsql;
    o.n_session_sql = 1;
    o.acquire_timeout_ms = 300;
    fx_open(&f, "badsetup", NULL, o, false);
    struct acq a = {0};
    assert_int_equal(pgp_acquire(f.p, acq_cb, &a), 0);
    assert_true(pgt_run_until(&f.loop, cond_acq, &a, DEADLINE_MS, 0));
    assert_int_equal(a.status, -ETIMEDOUT);
    assert_non_null(strstr(a.err, "cannot connect: session setup"));
    assert_non_null(strstr(a.err, "no_such_setting_xyz"));
    fx_close(&f);
}

static void test_free_pending(void **state)
{
    (void)state;
    struct fx f;
    fx_open(&f, "free", NULL, base_opts(), true);
    struct pgp_conn *c = acquire_ok(&f);
    struct ex x = {0};
    assert_int_equal(pgp_exec(c, &(struct pgp_stmt){.sql = "SELECT pg_sleep(0.2)"}, 1, ex_cb, &x),
                     0);
    struct acq a = {0};
    assert_int_equal(pgp_acquire(f.p, acq_cb, &a), 0);
    run_for(&f.loop, 20);
    assert_false(a.done);
    assert_false(x.done);
    f.p = pgp_free(f.p);
    assert_true(x.done);
    assert_int_equal(x.status, -ECANCELED);
    assert_true(a.done);
    assert_int_equal(a.status, -ECANCELED);
    assert_int_equal(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f.loop), 0);
}

static void test_bad_args(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    errno = 0;
    assert_null(pgp_new(&loop, "host='unterminated", NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(pgp_new(NULL, g_ci, NULL));
    assert_null(pgp_free(NULL));
    pgp_release(NULL, NULL, false);
    struct pgp *p = pgp_new(&loop, g_ci, NULL);
    assert_non_null(p);
    assert_int_equal(pgp_acquire(p, NULL, NULL), -EINVAL);
    assert_int_equal(pgp_exec(NULL, NULL, 0, NULL, NULL), -EINVAL);
    p = pgp_free(p);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- main ----------------------------------------------------------------------------------- */

static bool admin_exec(const char *sql)
{
    PGconn *a = PQconnectdb(g_admin);
    bool ok = PQstatus(a) == CONNECTION_OK;
    if (ok) {
        PQsetNoticeProcessor(a, pgt_ignore_notice, NULL);
        PGresult *r = PQexec(a, sql);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) fprintf(stderr, "test_pg_pool: %s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    } else {
        fprintf(stderr, "test_pg_pool: cannot connect: %s", PQerrorMessage(a));
    }
    PQfinish(a);
    return ok;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dbname, sizeof g_dbname, "pgp_test_%d", (int)getpid());
    if (pgt_create_db(g_admin, g_dbname, g_ci_buf, sizeof g_ci_buf) < 0) return -1;
    g_ci = g_ci_buf;
    g_pg = PQconnectdb(g_ci);
    if (PQstatus(g_pg) != CONNECTION_OK) {
        fprintf(stderr, "test_pg_pool: cannot connect: %s\n", PQerrorMessage(g_pg));
        return -1;
    }
    PQsetNoticeProcessor(g_pg, pgt_ignore_notice, NULL);
    exec_sql("CREATE TABLE IF NOT EXISTS pgp_writes (test text, id int, PRIMARY KEY (test, id))");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cont_stopped(NULL);
    PQfinish(g_pg);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", g_dbname);
    return admin_exec(sql) ? 0 : -1;
}

int main(void)
{
    g_admin = getenv("CT_TEST_PG");
    if (!g_admin || !*g_admin) {
        fprintf(stderr, "test_pg_pool: FAIL: CT_TEST_PG is not set; run it under "
                        "tests/integration/with-services\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_acquire_release_reuse),
        cmocka_unit_test(test_health_killed_before_handout),
        cmocka_unit_test(test_health_idle_watch),
        cmocka_unit_test_teardown(test_health_roundtrip, cont_stopped),
        cmocka_unit_test(test_recycle_age),
        cmocka_unit_test(test_exhaustion_fifo),
        cmocka_unit_test(test_exhaustion_timeout),
        cmocka_unit_test(test_slow_statement),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_lost_in_use),
        cmocka_unit_test(test_statement_timeout),
        cmocka_unit_test(test_session_setup),
        cmocka_unit_test(test_free_pending),
    };
    const char *only = getenv("PGP_TEST_ONLY"); /* e.g. PGP_TEST_ONLY='test_slow*' */
    if (only && *only) cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
