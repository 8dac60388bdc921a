#include "pg_test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

void pgt_ignore_notice(void *arg, const char *msg) {
    (void)arg;
    (void)msg;
}

PGconn *pgt_connect(const char *ci) {
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("connect %s: %s", ci, PQerrorMessage(c));
    PQsetNoticeProcessor(c, pgt_ignore_notice, NULL);
    return c;
}

void pgt_exec(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%.200s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

void pgt_execf(PGconn *c, const char *fmt, ...) {
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    pgt_exec(c, sql);
}

const char *pgt_q1(PGconn *c, const char *fmt, ...) {
    static char ring[16][512];
    static unsigned k;
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    const char *out = NULL;
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        char *buf = ring[k++ % 16];
        snprintf(buf, sizeof ring[0], "%s", PQgetvalue(r, 0, 0));
        out = buf;
    }
    PQclear(r);
    return out;
}

static int admin_exec(PGconn *a, const char *sql) {
    PGresult *r = PQexec(a, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0) fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

int pgt_create_db(const char *admin_ci, const char *name, char *ci, size_t cilen) {
    char sql[256];
    int rc = -1;
    PGconn *a = PQconnectdb(admin_ci);
    if (PQstatus(a) != CONNECTION_OK) {
        fprintf(stderr, "connect %s: %s", admin_ci, PQerrorMessage(a));
        goto out;
    }
    PQsetNoticeProcessor(a, pgt_ignore_notice, NULL);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
    if (admin_exec(a, sql) < 0) goto out;
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    if (admin_exec(a, sql) < 0) goto out;
    if (snprintf(ci, cilen, "%s dbname=%s", admin_ci, name) >= (int)cilen) {
        fprintf(stderr, "conninfo for %s too long\n", name);
        goto out;
    }
    rc = 0;
out:
    PQfinish(a);
    return rc;
}

static void on_deadline_flag(uv_timer_t *t) { *(bool *)t->data = true; }
static void on_tick(uv_timer_t *t) { (void)t; }

struct until {
    bool (*cond)(void *);
    void *arg;
};

/* Right before the loop would block: a condition that became true in a timer callback of this
 * iteration (pg_pool hands out connections from a 0 ms timer) must not wait for the next event.
 * uv_stop makes this iteration's poll non-blocking and uv_run return. */
static void on_prepare(uv_prepare_t *h) {
    struct until *u = h->data;
    if (u->cond(u->arg)) uv_stop(h->loop);
}

bool pgt_run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg, unsigned ms,
                   unsigned tick_ms) {
    bool expired = false;
    struct until u = {cond, arg};
    uv_timer_t dl, tick;
    uv_prepare_t prep;
    uv_timer_init(loop, &dl);
    uv_timer_init(loop, &tick);
    uv_prepare_init(loop, &prep);
    dl.data = &expired;
    prep.data = &u;
    uv_timer_start(&dl, on_deadline_flag, ms, 0);
    if (tick_ms) uv_timer_start(&tick, on_tick, tick_ms, tick_ms);
    uv_prepare_start(&prep, on_prepare);
    while (!cond(arg) && !expired) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&dl, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&prep, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* finishes the closes */
    return cond(arg);
}
