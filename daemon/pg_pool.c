/* pg_pool: see pg_pool.h. The libpq-on-libuv recipe is /work/shared/EVENT-LOOP.md section 4. */
#include "pg_pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define NAME_MAX_LEN 64

enum cst {
    C_CONNECTING, /* PQconnectPoll steps */
    C_SETUP,      /* pipeline mode entered, session_sql/prepares in flight */
    C_IDLE,       /* in the pool; socket watched for a server-side close */
    C_CHECKING,   /* in the pool; health round trip (a bare Sync) in flight */
    C_INUSE,      /* handed out */
    C_DEAD,       /* handed out, but the connection is closed: waits for pgp_release */
    C_GONE,       /* unlinked and closed; freed when no callback of ours holds it any more */
};

enum op_kind { OP_USER, OP_SETUP, OP_CHECK };

struct op {
    struct op *next;
    enum op_kind kind;
    pgp_exec_cb cb;
    void *ud;
    size_t n, got;     /* statements sent; statements fully answered */
    uint64_t t_sent;   /* uv_hrtime() */
    PGresult **res;    /* n, inside this allocation */
    char (*names)[NAME_MAX_LEN];
};

struct pgp_conn {
    struct pgp_conn *next, *prev; /* the pool's list; C_GONE ones are unlinked */
    struct pgp *p;
    PGconn *pg;
    uv_poll_t *poll;   /* heap: closed before every PQconnectPoll and PQfinish, made anew after */
    int poll_events;
    enum cst st;
    bool want_write;   /* PQflush returned 1 */
    bool in_query;     /* a statement's result seen, its terminating NULL not yet */
    bool doomed;       /* a send failed inside pgp_exec: killed from the loop */
    bool release_pending, release_broken; /* pgp_release called while busy */
    int busy;          /* inside our callbacks about this connection: do not free */
    int pid;
    uint64_t born, life_ns, phase_t0, idle_since, t_last;
    struct op *ops_head, *ops_tail;
};

struct waiter {
    struct waiter *next;
    pgp_acquire_cb cb;
    void *ud;
    uint64_t t0;
};

struct pgp {
    uv_loop_t *loop;
    struct pgp_opts o;
    char *conninfo;
    char *appname;
    char **ssql;                  /* copies of o.session_sql */
    struct pgp_prepare *preps;    /* copies of o.prepares (strings copied too) */

    struct pgp_conn *conns;
    struct waiter *w_head, *w_tail;
    unsigned nwait;

    unsigned fail_streak;         /* failed connect attempts since the last success */
    uint64_t next_connect_at;     /* while failing: no attempt before this (uv_hrtime) */
    uint64_t rng;

    uv_timer_t t_tick, t_work;
    int handles_open;
    int busy;
    bool free_requested, closing;

    struct pgp_stats s;
    char last_error[512];
    char msgbuf[768];
};

static void on_poll(uv_poll_t *h, int status, int events);
static void do_release(struct pgp_conn *c, bool broken);
static void really_free(struct pgp *p);
static void service(struct pgp *p);
static void on_work(uv_timer_t *h);

static uint64_t now_ns(void) { return uv_hrtime(); }
static uint64_t ms_ns(unsigned ms) { return (uint64_t)ms * 1000000u; }

/* One line: libpq's messages end in "\n" and continue on "\n\t" lines (hints, DETAIL). */
static void flatten(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    bool space = false;
    if (!n) return;
    for (const char *s = src ? src : ""; *s && k + 1 < n; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\n' || ch == '\t' || ch == '\r' || ch == ' ') {
            space = k > 0;
            continue;
        }
        if (space && k + 2 < n) dst[k++] = ' ';
        space = false;
        dst[k++] = ch < 0x20 ? '?' : (char)ch;
    }
    dst[k] = 0;
}

static void notice_ignore(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static uint64_t rng_next(struct pgp *p)
{
    uint64_t x = p->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void enter(struct pgp *p) { p->busy++; }

/* svc: run the pool's bookkeeping (dispatch waiters, connect, re-arm the timer) — only from loop
 * callbacks, so acquire callbacks never run inside a pgp_* call. */
static void leave(struct pgp *p, bool svc)
{
    if (svc && p->busy == 1 && !p->free_requested) service(p);
    if (--p->busy == 0 && p->free_requested && !p->closing) really_free(p);
}

static void schedule_work(struct pgp *p)
{
    if (!p->closing) uv_timer_start(&p->t_work, on_work, 0, 0);
}

/* ---- poll handles ---- */

static void poll_free_cb(uv_handle_t *h) { free(h); }

/* recipe: close BEFORE any libpq call that may close or replace the socket (PQconnectPoll,
 * PQfinish): libuv deregisters by fd number, and the number may already belong to a new socket
 * (a replacement connection often gets the number of the one just closed). */
static void poll_close(struct pgp_conn *c)
{
    if (!c->poll) return;
    uv_close((uv_handle_t *)c->poll, poll_free_cb);
    c->poll = NULL;
    c->poll_events = 0;
}

static int poll_open(struct pgp_conn *c, int events)
{
    int fd = PQsocket(c->pg);
    if (fd < 0) return UV_EBADF;
    uv_poll_t *h = malloc(sizeof *h);
    if (!h) return UV_ENOMEM;
    int r = uv_poll_init_socket(c->p->loop, h, fd);
    if (r) {
        free(h);
        return r;
    }
    h->data = c;
    r = uv_poll_start(h, events, on_poll);
    if (r) {
        uv_close((uv_handle_t *)h, poll_free_cb);
        return r;
    }
    c->poll = h;
    c->poll_events = events;
    return 0;
}

/* READABLE always (results, or the server closing an idle connection; and the server may block
 * sending results while we block sending), WRITABLE too while PQflush has output left. */
static int poll_update(struct pgp_conn *c)
{
    int ev = UV_READABLE | (c->want_write ? UV_WRITABLE : 0);
    if (!c->poll) return poll_open(c, ev);
    if (ev == c->poll_events && uv_is_active((uv_handle_t *)c->poll)) return 0;
    int r = uv_poll_start(c->poll, ev, on_poll);
    if (r == 0) c->poll_events = ev;
    return r;
}

/* ---- connection bookkeeping ---- */

static void conn_link(struct pgp *p, struct pgp_conn *c)
{
    c->prev = NULL;
    c->next = p->conns;
    if (p->conns) p->conns->prev = c;
    p->conns = c;
}

static void conn_unlink(struct pgp_conn *c)
{
    struct pgp *p = c->p;
    if (c->prev) c->prev->next = c->next;
    else if (p->conns == c) p->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void conn_close_pg(struct pgp_conn *c)
{
    poll_close(c);
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    c->want_write = c->in_query = false;
}

static struct op *op_new(enum op_kind kind, size_t n)
{
    struct op *op = calloc(1, sizeof *op + n * (sizeof(PGresult *) + NAME_MAX_LEN));
    if (!op) return NULL;
    op->kind = kind;
    op->n = n;
    op->res = (PGresult **)(op + 1);
    op->names = (char (*)[NAME_MAX_LEN])(op->res + n);
    return op;
}

static void op_free(struct op *op)
{
    if (!op) return;
    for (size_t i = 0; i < op->n; i++) PQclear(op->res[i]);
    free(op);
}

static void op_push(struct pgp_conn *c, struct op *op)
{
    if (c->ops_tail) c->ops_tail->next = op;
    else c->ops_head = op;
    c->ops_tail = op;
}

static struct op *op_pop(struct pgp_conn *c)
{
    struct op *op = c->ops_head;
    if (!op) return NULL;
    c->ops_head = op->next;
    if (!c->ops_head) c->ops_tail = NULL;
    op->next = NULL;
    return op;
}

static void op_callback(struct pgp_conn *c, struct op *op, int status, const char *err)
{
    struct pgp_result r = {
        .status = status,
        .err = status ? (err ? err : "failed") : NULL,
        .res = op->res,
        .n = op->n,
        .us = (now_ns() - op->t_sent) / 1000u,
    };
    op->cb(op->ud, c, &r);
}

/* Fails every exec queued on c (internal ones are just dropped). Callers hold c->busy. */
static void ops_fail(struct pgp_conn *c, int status, const char *msg)
{
    struct op *ops = c->ops_head;
    c->ops_head = c->ops_tail = NULL;
    char m[512];
    snprintf(m, sizeof m, "%s", msg ? msg : "");
    while (ops) {
        struct op *op = ops;
        ops = op->next;
        if (op->kind == OP_USER) op_callback(c, op, status, m);
        op_free(op);
    }
}

/* Closes a connection that is in the pool (not handed out): unlinked now, freed when no
 * callback of ours holds it. */
static void conn_destroy(struct pgp_conn *c)
{
    conn_close_pg(c);
    struct op *ops = c->ops_head; /* internal ones only (setup, check) */
    c->ops_head = c->ops_tail = NULL;
    while (ops) {
        struct op *op = ops;
        ops = op->next;
        op_free(op);
    }
    conn_unlink(c);
    c->st = C_GONE;
    if (!c->busy) free(c);
}

static void conn_unref(struct pgp_conn *c)
{
    if (--c->busy > 0) return;
    if (c->st == C_GONE) free(c);
    else if (c->release_pending && !c->p->closing) do_release(c, false);
}

static void set_error(struct pgp *p, const char *prefix, const char *msg)
{
    char m[sizeof p->last_error];
    flatten(m, sizeof m, msg); /* msg may be p->last_error itself */
    snprintf(p->last_error, sizeof p->last_error, "%s%s", prefix, m[0] ? m : "unknown error");
}

static void report_error(struct pgp *p)
{
    if (p->o.on_error && !p->free_requested) p->o.on_error(p->o.ud, p->last_error);
}

static uint64_t backoff_ns(struct pgp *p)
{
    uint64_t d = p->o.backoff_min_ms;
    for (unsigned i = 1; i < p->fail_streak && d < p->o.backoff_max_ms; i++) d *= 2;
    if (d > p->o.backoff_max_ms) d = p->o.backoff_max_ms;
    /* "equal jitter": half fixed, half random, so pools that lost the same server do not come
     * back in lockstep */
    d = d / 2 + rng_next(p) % (d / 2 + 1);
    return d * 1000000u;
}

static void connect_failed(struct pgp_conn *c, const char *msg)
{
    struct pgp *p = c->p;
    set_error(p, "cannot connect: ", msg);
    p->s.connect_failures_total++;
    p->fail_streak++;
    p->next_connect_at = now_ns() + backoff_ns(p);
    conn_destroy(c);
    report_error(p);
}

/* The pool saw the connection die (EOF, error, failed check, timeout): closed; a handed-out one
 * becomes C_DEAD and its execs fail with err. Callers hold c->busy. */
static void conn_lost(struct pgp_conn *c, int err, const char *why, const char *msg)
{
    struct pgp *p = c->p;
    if (c->st == C_CONNECTING || c->st == C_SETUP) {
        char m[512];
        snprintf(m, sizeof m, "%s%s", why, msg ? msg : "");
        connect_failed(c, m);
        return;
    }
    if (c->st == C_GONE || c->st == C_DEAD) return;
    set_error(p, why, msg);
    p->s.broken_total++;
    if (c->st == C_INUSE) {
        char m[sizeof p->last_error];
        snprintf(m, sizeof m, "%s", p->last_error);
        conn_close_pg(c);
        c->st = C_DEAD;
        c->pid = 0;
        ops_fail(c, err, m);
    } else {
        conn_destroy(c);
    }
    report_error(p);
}

/* Sends what libpq buffered. false when the connection broke (then c is lost). */
static bool conn_flush(struct pgp_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0) {
        conn_lost(c, -ECONNRESET, "connection lost: ", PQerrorMessage(c->pg));
        return false;
    }
    c->want_write = r == 1;
    r = poll_update(c);
    if (r) {
        conn_lost(c, -ECONNRESET, "connection lost: ", uv_strerror(r));
        return false;
    }
    return true;
}

/* ---- connect ---- */

static void conn_ready(struct pgp_conn *c)
{
    struct pgp *p = c->p;
    c->st = C_IDLE;
    c->idle_since = now_ns();
    p->fail_streak = 0;
    p->s.created_total++;
    int r = poll_update(c);
    if (r) conn_lost(c, -ECONNRESET, "connection lost: ", uv_strerror(r));
}

static void conn_connected(struct pgp_conn *c)
{
    struct pgp *p = c->p;
    c->pid = PQbackendPID(c->pg);
    if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg)) {
        connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    size_t n = p->o.n_session_sql + p->o.n_prepares;
    if (!n) {
        conn_ready(c);
        return;
    }
    struct op *op = op_new(OP_SETUP, n);
    if (!op) {
        connect_failed(c, "session setup: out of memory");
        return;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < p->o.n_session_sql; i++)
        ok = PQsendQueryParams(c->pg, p->ssql[i], 0, NULL, NULL, NULL, NULL, 0);
    for (size_t i = 0; ok && i < p->o.n_prepares; i++)
        ok = PQsendPrepare(c->pg, p->preps[i].name, p->preps[i].sql, 0, NULL);
    if (!ok || !PQpipelineSync(c->pg)) {
        op_free(op);
        connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    op->t_sent = c->t_last = now_ns();
    op_push(c, op);
    c->st = C_SETUP;
    conn_flush(c);
}

static void connect_step(struct pgp_conn *c)
{
    poll_close(c); /* recipe: before EVERY PQconnectPoll, and a fresh one after */
    int r = 0;
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        r = poll_open(c, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
    case PGRES_POLLING_ACTIVE:
        r = poll_open(c, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        conn_connected(c);
        return;
    case PGRES_POLLING_FAILED:
    default:
        connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    if (r) connect_failed(c, uv_strerror(r));
}

static void conn_start(struct pgp *p)
{
    struct pgp_conn *c = calloc(1, sizeof *c);
    if (!c) {
        set_error(p, "cannot connect: ", "out of memory");
        p->fail_streak++;
        p->next_connect_at = now_ns() + backoff_ns(p);
        return;
    }
    c->p = p;
    c->st = C_CONNECTING;
    c->born = c->phase_t0 = now_ns();
    uint64_t life = ms_ns(p->o.recycle_age_ms);
    c->life_ns = life - rng_next(p) % (life / 10 + 1);
    conn_link(p, c);
    c->busy++;
    /* The conninfo string is expanded from "dbname"; a later keyword overrides it, a
     * fallback_application_name only fills in a missing one. */
    const char *kw[] = {"dbname", p->o.application_name ? "application_name"
                                                        : "fallback_application_name", NULL};
    const char *val[] = {p->conninfo, p->appname, NULL};
    c->pg = PQconnectStartParams(kw, val, 1);
    if (!c->pg) {
        connect_failed(c, "out of memory");
    } else if (PQstatus(c->pg) == CONNECTION_BAD) {
        connect_failed(c, PQerrorMessage(c->pg));
    } else {
        /* PQsetnonblocking comes once connected: the connect itself never blocks, and libpq 15
         * clears its error buffer there, dropping the "connection to server at ..." part of a
         * later connect failure. */
        PQsetNoticeProcessor(c->pg, notice_ignore, NULL);
        /* recipe: wait for writable first, as if PQconnectPoll had said WRITING */
        int r = poll_open(c, UV_WRITABLE);
        if (r) connect_failed(c, uv_strerror(r));
    }
    conn_unref(c);
}

/* ---- results ---- */

static bool res_failed(const PGresult *r)
{
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
    case PGRES_SINGLE_TUPLE:
        return false;
    default:
        return true;
    }
}

/* The head op's Sync was answered. */
static void op_done(struct pgp_conn *c)
{
    struct pgp *p = c->p;
    struct op *op = op_pop(c);
    char err[512] = "";
    int status = 0;
    if (op->got != op->n) {
        status = -EPROTO;
        snprintf(err, sizeof err, "%zu of %zu statements answered before the Sync", op->got,
                 op->n);
    }
    for (size_t i = 0; !status && i < op->n; i++) {
        if (!op->res[i] || !res_failed(op->res[i])) continue;
        status = -EIO;
        const char *m = PQresultErrorMessage(op->res[i]);
        if (PQresultStatus(op->res[i]) == PGRES_PIPELINE_ABORTED || !m || !*m)
            m = PQresStatus(PQresultStatus(op->res[i]));
        char f[400];
        flatten(f, sizeof f, m);
        snprintf(err, sizeof err, "statement %zu (%s): %s", i + 1, op->names[i], f);
    }
    switch (op->kind) {
    case OP_USER:
        if (status == -EPROTO) {
            op_push(c, op); /* fail it together with the rest */
            conn_lost(c, -EPROTO, "protocol: ", err);
            return;
        }
        op_callback(c, op, status, err);
        op_free(op);
        break;
    case OP_SETUP:
        op_free(op);
        if (status) {
            char m[600];
            snprintf(m, sizeof m, "session setup: %s", err);
            connect_failed(c, m);
        } else {
            conn_ready(c);
        }
        break;
    case OP_CHECK:
        op_free(op);
        if (status) {
            conn_lost(c, -ECONNRESET, "health check: ", err);
        } else {
            c->st = C_IDLE;
            c->idle_since = now_ns();
            schedule_work(p);
        }
        break;
    }
}

/* A statement's first result arrived: its duration runs from when the server could start it
 * (its exec sent, and the statement before it answered) to now. */
static void stmt_answered(struct pgp_conn *c, struct op *op)
{
    struct pgp *p = c->p;
    uint64_t t = now_ns();
    uint64_t start = op->t_sent > c->t_last ? op->t_sent : c->t_last;
    c->t_last = t;
    if (op->kind != OP_USER) return;
    p->s.statements_total++;
    uint64_t d = t > start ? t - start : 0;
    if (d > ms_ns(p->o.slow_stmt_ms)) {
        p->s.slow_statements_total++;
        if (p->o.on_slow && !p->free_requested)
            p->o.on_slow(p->o.ud, op->names[op->got], d / 1000u);
    }
}

/* recipe: each statement's results end with a NULL; PGRES_PIPELINE_SYNC is not followed by one;
 * with nothing outstanding PQgetResult returns NULL with PQisBusy 0. */
static void drain(struct pgp_conn *c)
{
    while (c->pg && !c->p->free_requested && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        struct op *op = c->ops_head;
        if (!r) {
            if (!c->in_query) break;
            c->in_query = false;
            if (op) op->got++;
            continue;
        }
        if (!op) {
            PQclear(r);
            conn_lost(c, -EPROTO, "protocol: ", "a result with no statement outstanding");
            return;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            c->in_query = false;
            op_done(c);
            if (c->st != C_INUSE && c->st != C_SETUP && c->st != C_CHECKING) return;
            continue;
        }
        if (c->in_query || op->got >= op->n) {
            PQclear(r); /* a second result for one statement: keep the first */
            continue;
        }
        c->in_query = true;
        op->res[op->got] = r;
        stmt_answered(c, op);
    }
}

static void conn_io(struct pgp_conn *c, int status, int events)
{
    if (status < 0 || (events & UV_WRITABLE)) {
        if (!conn_flush(c)) return;
    }
    if (status < 0 || (events & UV_READABLE)) {
        if (!PQconsumeInput(c->pg)) {
            conn_lost(c, -ECONNRESET, "connection lost: ", PQerrorMessage(c->pg));
            return;
        }
        drain(c);
        if (c->st == C_GONE || c->st == C_DEAD || !c->pg) return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_lost(c, -ECONNRESET, "connection lost: ", PQerrorMessage(c->pg));
        return;
    }
    int r = poll_update(c);
    if (r) conn_lost(c, -ECONNRESET, "connection lost: ", uv_strerror(r));
}

/* Something readable on a connection nobody uses: normally the server closing it (a FATAL
 * message, then EOF), maybe a notice. */
static void idle_read(struct pgp_conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_lost(c, -ECONNRESET, "idle connection lost: ", PQerrorMessage(c->pg));
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) break;
        PQclear(r);
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_lost(c, -ECONNRESET, "idle connection lost: ", PQerrorMessage(c->pg));
        return;
    }
    int r = poll_update(c);
    if (r) conn_lost(c, -ECONNRESET, "idle connection lost: ", uv_strerror(r));
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct pgp_conn *c = h->data;
    struct pgp *p = c->p;
    enter(p);
    c->busy++;
    switch (c->st) {
    case C_CONNECTING: connect_step(c); break;
    case C_IDLE: idle_read(c); break;
    case C_SETUP:
    case C_CHECKING:
    case C_INUSE: conn_io(c, status, events); break;
    default: break;
    }
    conn_unref(c);
    leave(p, true);
}

/* ---- hand-out ---- */

/* The free check at hand-out: a non-blocking read takes in whatever the server sent (the FATAL
 * of a terminated backend), then a MSG_PEEK of one byte tells EOF (0) from nothing (EAGAIN).
 * The loop would report the EOF too, but maybe only after this hand-out. */
static bool idle_alive(struct pgp_conn *c, char *why, size_t n)
{
    if (PQstatus(c->pg) != CONNECTION_OK || !PQconsumeInput(c->pg)) {
        snprintf(why, n, "%s", PQerrorMessage(c->pg));
        return false;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) break;
        PQclear(r);
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        snprintf(why, n, "%s", PQerrorMessage(c->pg));
        return false;
    }
    char b;
    ssize_t k = recv(PQsocket(c->pg), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k == 0) {
        snprintf(why, n, "server closed the connection");
        return false;
    }
    if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        snprintf(why, n, "%s", strerror(errno));
        return false;
    }
    return true;
}

static void check_start(struct pgp_conn *c)
{
    struct pgp *p = c->p;
    struct op *op = op_new(OP_CHECK, 0);
    if (!op) return; /* hand it out unchecked rather than fail: the free check passed */
    /* A Sync alone: the server answers ReadyForQuery, libpq gives PGRES_PIPELINE_SYNC. */
    if (!PQpipelineSync(c->pg)) {
        op_free(op);
        conn_lost(c, -ECONNRESET, "health check: ", PQerrorMessage(c->pg));
        return;
    }
    op->t_sent = c->t_last = c->phase_t0 = now_ns();
    op_push(c, op);
    c->st = C_CHECKING;
    p->s.health_checks_total++;
    conn_flush(c);
}

/* Most recently used first: the others age out (overflow, recycling). */
static struct pgp_conn *pick_idle(struct pgp *p)
{
    struct pgp_conn *best = NULL;
    for (struct pgp_conn *c = p->conns; c; c = c->next)
        if (c->st == C_IDLE && (!best || c->idle_since > best->idle_since)) best = c;
    return best;
}

static void dispatch(struct pgp *p)
{
    while (p->w_head && !p->free_requested) {
        struct pgp_conn *c = pick_idle(p);
        if (!c) break;
        uint64_t t = now_ns();
        char why[256];
        c->busy++;
        bool give = false;
        if (!idle_alive(c, why, sizeof why)) {
            conn_lost(c, -ECONNRESET, "idle connection lost: ", why);
        } else if (t - c->born >= c->life_ns) {
            p->s.recycled_total++;
            conn_destroy(c);
        } else if (t - c->idle_since >= ms_ns(p->o.health_idle_ms)) {
            check_start(c);
            give = c->st == C_IDLE; /* could not allocate the check: hand it out unchecked */
        } else {
            give = true;
        }
        if (give) {
            struct waiter *w = p->w_head;
            p->w_head = w->next;
            if (!p->w_head) p->w_tail = NULL;
            p->nwait--;
            c->st = C_INUSE;
            uint64_t wait = (t - w->t0) / 1000u;
            p->s.acquires_total++;
            p->s.last_wait_us = wait;
            p->s.wait_us_total += wait;
            if (wait > p->s.max_wait_us) p->s.max_wait_us = wait;
            if (p->o.on_wait) p->o.on_wait(p->o.ud, wait);
            if (!p->free_requested) w->cb(w->ud, c, 0, NULL);
            free(w);
        }
        conn_unref(c);
    }
}

/* Connections to open now: `size` kept (unless lazy), plus one per waiter that no connection
 * being opened or checked will serve, up to size + overflow. While connects fail: one attempt at
 * a time, after the backoff. */
static void maintain(struct pgp *p)
{
    unsigned open = 0, pending = 0, connecting = 0;
    for (struct pgp_conn *c = p->conns; c; c = c->next) {
        switch (c->st) {
        case C_CONNECTING:
        case C_SETUP: connecting++; pending++; open++; break;
        case C_CHECKING: pending++; open++; break;
        case C_IDLE:
        case C_INUSE: open++; break;
        default: break;
        }
    }
    unsigned cap = p->o.size + p->o.overflow;
    unsigned target = p->o.lazy ? 0 : p->o.size;
    unsigned need = p->nwait > pending ? p->nwait - pending : 0;
    if (open + need > target) target = open + need;
    if (target > cap) target = cap;
    while (open < target && !p->free_requested) {
        if (p->fail_streak && (connecting || now_ns() < p->next_connect_at)) break;
        conn_start(p);
        open++;
        connecting++;
    }
}

/* ---- deadlines ---- */

static uint64_t conn_due(const struct pgp *p, const struct pgp_conn *c, unsigned open)
{
    uint64_t due = UINT64_MAX;
    switch (c->st) {
    case C_CONNECTING:
    case C_SETUP: due = c->phase_t0 + ms_ns(p->o.connect_timeout_ms); break;
    case C_CHECKING: due = c->phase_t0 + ms_ns(p->o.health_timeout_ms); break;
    case C_INUSE:
        if (c->ops_head) due = c->ops_head->t_sent + ms_ns(p->o.stmt_timeout_ms);
        break;
    case C_IDLE:
        due = c->born + c->life_ns;
        if (open > p->o.size) {
            uint64_t d = c->idle_since + ms_ns(p->o.idle_timeout_ms);
            if (d < due) due = d;
        }
        break;
    default: break;
    }
    return due;
}

static unsigned count_open(const struct pgp *p)
{
    unsigned n = 0;
    for (const struct pgp_conn *c = p->conns; c; c = c->next)
        if (c->st != C_DEAD && c->st != C_GONE) n++;
    return n;
}

static void waiter_timeout(struct pgp *p)
{
    struct waiter *w = p->w_head;
    p->w_head = w->next;
    if (!p->w_head) p->w_tail = NULL;
    p->nwait--;
    p->s.acquire_timeouts_total++;
    if (p->fail_streak && p->last_error[0]) {
        snprintf(p->msgbuf, sizeof p->msgbuf, "%s", p->last_error);
    } else {
        unsigned inuse = 0;
        for (struct pgp_conn *c = p->conns; c; c = c->next)
            if (c->st == C_INUSE || c->st == C_DEAD) inuse++;
        snprintf(p->msgbuf, sizeof p->msgbuf,
                 "no connection free within %u ms (%u in use, at most %u + %u overflow, "
                 "%u more waiting)",
                 p->o.acquire_timeout_ms, inuse, p->o.size, p->o.overflow, p->nwait);
    }
    if (!p->free_requested) w->cb(w->ud, NULL, -ETIMEDOUT, p->msgbuf);
    free(w);
}

/* Handles one expired deadline; false when none is. (One at a time: callbacks may release or
 * destroy any connection, so no list walk survives them.) */
static bool expire_one(struct pgp *p, uint64_t t)
{
    if (p->w_head && t >= p->w_head->t0 + ms_ns(p->o.acquire_timeout_ms)) {
        waiter_timeout(p);
        return true;
    }
    unsigned open = count_open(p);
    for (struct pgp_conn *c = p->conns; c; c = c->next) {
        if (conn_due(p, c, open) > t) continue;
        char m[128];
        c->busy++;
        switch (c->st) {
        case C_CONNECTING:
        case C_SETUP:
            snprintf(m, sizeof m, "no answer within %u ms", p->o.connect_timeout_ms);
            connect_failed(c, m);
            break;
        case C_CHECKING:
            snprintf(m, sizeof m, "no answer within %u ms", p->o.health_timeout_ms);
            conn_lost(c, -ETIMEDOUT, "health check: ", m);
            break;
        case C_INUSE:
            snprintf(m, sizeof m, "no answer within %u ms", p->o.stmt_timeout_ms);
            conn_lost(c, -ETIMEDOUT, "statement: ", m);
            break;
        case C_IDLE:
            if (t >= c->born + c->life_ns) p->s.recycled_total++;
            else p->s.idle_closed_total++;
            conn_destroy(c);
            break;
        default: break;
        }
        conn_unref(c);
        return true;
    }
    return false;
}

static void on_tick(uv_timer_t *h)
{
    struct pgp *p = h->data;
    enter(p);
    while (!p->free_requested && expire_one(p, now_ns())) {}
    leave(p, true);
}

static void rearm(struct pgp *p)
{
    uint64_t t = now_ns(), due = UINT64_MAX;
    if (p->w_head) due = p->w_head->t0 + ms_ns(p->o.acquire_timeout_ms);
    unsigned open = count_open(p);
    for (struct pgp_conn *c = p->conns; c; c = c->next) {
        uint64_t d = conn_due(p, c, open);
        if (d < due) due = d;
    }
    /* Only a future backoff end: once it has passed, either maintain() started the next attempt
     * or one is in flight (whose failure sets a new one). A past one here would re-arm at 0 ms
     * forever (libuv runs a timer restarted at 0 in its own callback again at once). */
    if (p->fail_streak && p->next_connect_at > t && p->next_connect_at < due)
        due = p->next_connect_at;
    if (due == UINT64_MAX) {
        uv_timer_stop(&p->t_tick);
        return;
    }
    uint64_t ms = due > t ? (due - t + 999999u) / 1000000u : 0; /* never early: no busy loop */
    uv_timer_start(&p->t_tick, on_tick, ms, 0);
}

/* Connections whose send failed inside pgp_exec are killed here, from the loop. */
static void kill_doomed(struct pgp *p)
{
    for (bool again = true; again && !p->free_requested;) {
        again = false;
        for (struct pgp_conn *c = p->conns; c; c = c->next) {
            if (!c->doomed || c->st != C_INUSE) continue;
            c->doomed = false;
            c->busy++;
            conn_lost(c, -ECONNRESET, "connection lost: ", c->pg ? PQerrorMessage(c->pg) : "");
            conn_unref(c);
            again = true;
            break;
        }
    }
}

static void service(struct pgp *p)
{
    kill_doomed(p);
    if (p->free_requested) return;
    dispatch(p);
    if (p->free_requested) return;
    maintain(p);
    if (p->free_requested) return;
    dispatch(p); /* a connection may have failed synchronously: nothing to hand out, but cheap */
    if (p->free_requested) return;
    rearm(p);
}

static void on_work(uv_timer_t *h)
{
    struct pgp *p = h->data;
    enter(p);
    leave(p, true);
}

/* ---- public API ---- */

static char *dupstr(const char *s) { return s ? strdup(s) : NULL; }

struct pgp *pgp_new(uv_loop_t *loop, const char *conninfo, const struct pgp_opts *o)
{
    if (!loop || !conninfo) return errno = EINVAL, NULL;
    char *perr = NULL;
    PQconninfoOption *parsed = PQconninfoParse(conninfo, &perr);
    if (!parsed) {
        PQfreemem(perr);
        return errno = EINVAL, NULL;
    }
    PQconninfoFree(parsed);

    struct pgp *p = calloc(1, sizeof *p);
    if (!p) return errno = ENOMEM, NULL;
    if (o) p->o = *o;
    struct pgp_opts *q = &p->o;
    if (!q->size) q->size = 4;
    if (!q->idle_timeout_ms) q->idle_timeout_ms = 60000;
    if (!q->acquire_timeout_ms) q->acquire_timeout_ms = 5000;
    if (!q->recycle_age_ms) q->recycle_age_ms = 3600000;
    if (!q->health_idle_ms) q->health_idle_ms = 10000;
    if (!q->health_timeout_ms) q->health_timeout_ms = 2000;
    if (!q->connect_timeout_ms) q->connect_timeout_ms = 5000;
    if (!q->stmt_timeout_ms) q->stmt_timeout_ms = 30000;
    if (!q->backoff_min_ms) q->backoff_min_ms = 50;
    if (!q->backoff_max_ms) q->backoff_max_ms = 5000;
    if (q->backoff_max_ms < q->backoff_min_ms) q->backoff_max_ms = q->backoff_min_ms;
    if (!q->slow_stmt_ms) q->slow_stmt_ms = 100;
    if (!q->max_waiters) q->max_waiters = 10000;

    p->loop = loop;
    p->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)p ^ 0x9E3779B97F4A7C15ULL;
    if (!p->rng) p->rng = 1;
    p->conninfo = strdup(conninfo);
    p->appname = strdup(q->application_name ? q->application_name : "copytrader");
    bool ok = p->conninfo && p->appname;
    q->application_name = q->application_name ? p->appname : NULL;
    if (ok && q->n_session_sql) {
        p->ssql = calloc(q->n_session_sql, sizeof *p->ssql);
        ok = p->ssql && q->session_sql;
        for (size_t i = 0; ok && i < q->n_session_sql; i++)
            ok = q->session_sql[i] && (p->ssql[i] = strdup(q->session_sql[i]));
    }
    if (ok && q->n_prepares) {
        p->preps = calloc(q->n_prepares, sizeof *p->preps);
        ok = p->preps && q->prepares;
        for (size_t i = 0; ok && i < q->n_prepares; i++) {
            ok = q->prepares[i].name && q->prepares[i].sql;
            if (ok) {
                p->preps[i].name = dupstr(q->prepares[i].name);
                p->preps[i].sql = dupstr(q->prepares[i].sql);
                ok = p->preps[i].name && p->preps[i].sql;
            }
        }
    }
    q->session_sql = (const char *const *)p->ssql;
    q->prepares = p->preps;
    if (!ok) {
        int e = (o && ((o->n_session_sql && !o->session_sql) || (o->n_prepares && !o->prepares)))
                    ? EINVAL : ENOMEM;
        for (size_t i = 0; p->ssql && i < q->n_session_sql; i++) free(p->ssql[i]);
        for (size_t i = 0; p->preps && i < q->n_prepares; i++) {
            free((char *)p->preps[i].name);
            free((char *)p->preps[i].sql);
        }
        free(p->ssql);
        free(p->preps);
        free(p->conninfo);
        free(p->appname);
        free(p);
        return errno = e, NULL;
    }
    uv_timer_init(loop, &p->t_tick);
    uv_timer_init(loop, &p->t_work);
    p->t_tick.data = p->t_work.data = p;
    p->handles_open = 2;
    uv_timer_start(&p->t_work, on_work, 0, 0); /* warm up from the loop */
    return p;
}

static void timer_closed(uv_handle_t *h)
{
    struct pgp *p = h->data;
    if (--p->handles_open > 0) return;
    for (size_t i = 0; p->ssql && i < p->o.n_session_sql; i++) free(p->ssql[i]);
    for (size_t i = 0; p->preps && i < p->o.n_prepares; i++) {
        free((char *)p->preps[i].name);
        free((char *)p->preps[i].sql);
    }
    free(p->ssql);
    free(p->preps);
    free(p->conninfo);
    free(p->appname);
    free(p);
}

static void really_free(struct pgp *p)
{
    p->closing = true;
    uv_timer_stop(&p->t_tick);
    uv_timer_stop(&p->t_work);
    while (p->w_head) {
        struct waiter *w = p->w_head;
        p->w_head = w->next;
        p->nwait--;
        w->cb(w->ud, NULL, -ECANCELED, "connection pool freed");
        free(w);
    }
    p->w_tail = NULL;
    while (p->conns) {
        struct pgp_conn *c = p->conns;
        conn_unlink(c);
        c->busy++;
        conn_close_pg(c);
        ops_fail(c, -ECANCELED, "connection pool freed");
        c->st = C_GONE;
        if (--c->busy == 0) free(c);
    }
    uv_close((uv_handle_t *)&p->t_tick, timer_closed);
    uv_close((uv_handle_t *)&p->t_work, timer_closed);
}

struct pgp *pgp_free(struct pgp *p)
{
    if (!p || p->free_requested) return NULL;
    p->free_requested = true;
    if (!p->busy) really_free(p);
    return NULL;
}

int pgp_acquire(struct pgp *p, pgp_acquire_cb cb, void *ud)
{
    if (!p || !cb) return -EINVAL;
    if (p->free_requested) return -ESHUTDOWN;
    if (p->nwait >= p->o.max_waiters) return -ENOBUFS;
    struct waiter *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->cb = cb;
    w->ud = ud;
    w->t0 = now_ns();
    if (p->w_tail) p->w_tail->next = w;
    else p->w_head = w;
    p->w_tail = w;
    p->nwait++;
    schedule_work(p);
    return 0;
}

static void do_release(struct pgp_conn *c, bool broken)
{
    struct pgp *p = c->p;
    broken |= c->release_broken;
    c->release_pending = c->release_broken = false;
    if (c->ops_head) {
        c->busy++;
        ops_fail(c, -ECANCELED, "connection released with the statement pending");
        c->busy--;
        c->release_pending = false; /* a pgp_release from those callbacks: this one */
        broken = true;
    }
    schedule_work(p);
    if (c->st == C_DEAD) {
        conn_unlink(c);
        c->st = C_GONE;
        if (!c->busy) free(c);
        return;
    }
    if (c->st != C_INUSE) return;
    if (broken || c->doomed || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* left inside a transaction (or worse): never hand that to someone else */
        p->s.broken_total++;
        conn_destroy(c);
    } else if (now_ns() - c->born >= c->life_ns) {
        p->s.recycled_total++;
        conn_destroy(c);
    } else {
        c->st = C_IDLE;
        c->idle_since = now_ns();
        if (poll_update(c)) {
            p->s.broken_total++;
            conn_destroy(c);
        }
    }
}

void pgp_release(struct pgp *p, struct pgp_conn *c, bool broken)
{
    if (!p || !c || p->closing || c->p != p) return;
    if (c->st != C_INUSE && c->st != C_DEAD) return; /* not handed out: ignore */
    if (c->busy) {
        c->release_pending = true;
        c->release_broken |= broken;
        return;
    }
    enter(p);
    do_release(c, broken);
    leave(p, false);
}

PGconn *pgp_conn_pg(const struct pgp_conn *c)
{
    return c && c->st == C_INUSE ? c->pg : NULL;
}

int pgp_conn_backend_pid(const struct pgp_conn *c)
{
    return c && c->st == C_INUSE ? c->pid : 0;
}

int pgp_exec(struct pgp_conn *c, const struct pgp_stmt *stmts, size_t n, pgp_exec_cb cb, void *ud)
{
    if (!c || !stmts || !n || !cb) return -EINVAL;
    struct pgp *p = c->p;
    if (p->free_requested || p->closing) return -ESHUTDOWN;
    if (c->st == C_DEAD || c->doomed || !c->pg) return -ENOTCONN;
    if (c->st != C_INUSE || c->release_pending) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!stmts[i].sql || stmts[i].nparams < 0 || (stmts[i].nparams && !stmts[i].params))
            return -EINVAL;
    struct op *op = op_new(OP_USER, n);
    if (!op) return -ENOMEM;
    op->cb = cb;
    op->ud = ud;
    for (size_t i = 0; i < n; i++) {
        const struct pgp_stmt *s = &stmts[i];
        flatten(op->names[i], NAME_MAX_LEN, s->name ? s->name : s->sql);
        int ok = s->prepared ? PQsendQueryPrepared(c->pg, s->sql, s->nparams, s->params, NULL,
                                                   NULL, 0)
                             : PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, s->params,
                                                 NULL, NULL, 0);
        /* The server buffers its replies until a Sync or a Flush: without a Flush after each
         * statement, every result of a batch would arrive at the end, and the first statement
         * would be timed with the duration of the whole batch. */
        if (ok && i + 1 < n) ok = PQsendFlushRequest(c->pg);
        if (!ok) goto send_failed;
    }
    if (!PQpipelineSync(c->pg)) goto send_failed;
    uint64_t t = now_ns();
    if (!c->ops_head) c->t_last = t;
    op->t_sent = t;
    op_push(c, op);
    int r = PQflush(c->pg);
    if (r < 0) {
        c->doomed = true; /* the exec is queued: it fails from the loop */
        schedule_work(p);
        return 0;
    }
    c->want_write = r == 1;
    if (poll_update(c)) {
        c->doomed = true;
        schedule_work(p);
        return 0;
    }
    schedule_work(p); /* re-arm the statement deadline */
    return 0;

send_failed:
    /* Statements may sit half-queued in libpq without their Sync: unusable from now on. */
    op_free(op);
    c->doomed = true;
    schedule_work(p);
    return -ECONNRESET;
}

void pgp_get_stats(const struct pgp *p, struct pgp_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!p) return;
    *out = p->s;
    out->size = out->connecting = out->idle = out->in_use = 0;
    for (const struct pgp_conn *c = p->conns; c; c = c->next) {
        switch (c->st) {
        case C_CONNECTING:
        case C_SETUP: out->size++; out->connecting++; break;
        case C_IDLE:
        case C_CHECKING: out->size++; out->idle++; break;
        case C_INUSE: out->size++; out->in_use++; break;
        case C_DEAD: out->in_use++; break;
        default: break;
        }
    }
    out->waiting = p->nwait;
}

const char *pgp_last_error(const struct pgp *p) { return p ? p->last_error : ""; }
