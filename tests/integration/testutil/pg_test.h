/* pg_test: PostgreSQL helpers the integration tests share: a fresh database per run, connections
 * and queries that fail the test on error, and a libuv loop driver with a deadline. The failing
 * helpers use cmocka's fail_msg, so call them from tests or fixtures. */
#ifndef CT_PG_TEST_H
#define CT_PG_TEST_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* A notice processor that drops NOTICEs ("relation ... already exists, skipping"). */
void pgt_ignore_notice(void *arg, const char *msg);
/* Connects to ci with NOTICEs dropped; fails the test when the connection fails. */
PGconn *pgt_connect(const char *ci);
/* Runs sql (no formatting: '%' is literal); fails the test unless it succeeds. */
void pgt_exec(PGconn *c, const char *sql);
/* printf-formatted pgt_exec (up to 2 KiB of SQL). */
void pgt_execf(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The first cell of a query's first row, or NULL for SQL NULL / no row; fails the test on a query
 * error. The string lives in a ring of 16 static buffers (512 bytes each). */
const char *pgt_q1(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops (if it exists) and creates database name through the admin conninfo, and writes into ci
 * the admin conninfo with dbname=name appended (in a conninfo the last value of a keyword wins).
 * 0, or -1 with the reason on stderr (usable from a group setup that returns -1). */
int pgt_create_db(const char *admin_ci, const char *name, char *ci, size_t cilen);
/* Runs loop until cond(arg) holds or ms pass; a tick timer (when tick_ms) wakes the loop for
 * conditions that change outside it (another connection, the database). Returns cond(arg). */
bool pgt_run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg, unsigned ms,
                   unsigned tick_ms);

#endif
