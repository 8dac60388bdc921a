/* journal: see journal.h. The event-loop side follows EVENT-LOOP.md section 4 (libpq 15
 * non-blocking connect + pipeline mode on libuv); the pitfalls it lists are marked "recipe:". */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <libpq-fe.h>

#include "spool.h"
#include "sql_migrations.h"

#define JNL_DEC_MAX 40     /* decimal text: digits, one point */
#define JNL_NAME_MAX 64    /* account names, symbols, rule ids, order types, skip reasons */
#define JNL_CID_MAX 36     /* client order id, both exchanges' limit */
#define JNL_EMSG_MAX 255   /* stored error message */
#define JNL_MAX_TS_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define JNL_MIGRATE_LOCK 0x6374726164657231LL /* pg_advisory_lock key ("ctrader1") */
#define JNL_FILL_PARAMS 10    /* statement 1 */
#define JNL_EOID_MAX 47       /* exchange trade and order ids (MKT_TRADE_ID_MAX - 1) */
#define JNL_INTENT_PARAMS 15  /* statement 2 */
#define JNL_FILL_DEFER_PARAMS 13   /* statement 1 with placeholders (sql/010) */
#define JNL_INTENT_RESOLVE_PARAMS 17 /* statement 2 resolving one */
#define JNL_DEFER_ARRAYS 3    /* placeholder arrays: rule_id, follower, input */
#define JNL_ARRAYS 11         /* intent arrays, in statement 2 */
#define JNL_RES_PARAMS 8
#define JNL_POS_PARAMS 6
_Static_assert(JNL_RES_PARAMS <= JNL_ARRAYS, "results reuse the array buffers");
_Static_assert(JNL_POS_PARAMS <= JNL_ARRAYS, "positions reuse the array buffers");
#define JNL_PARTS_AHEAD 3            /* months of follower_orders partitions kept ahead */
#define JNL_PARTS_EVERY_MS 86400000u /* the running journal's check: once a day */
#define JNL_PARTS_RETRY_MS 3600000u  /* ... an hour after a failed one */
#define JNL_PARTS_FORCE_MS 3600000u  /* due this long without an idle moment: sent anyway */
#define JNL_KEY_MAX (2 * (JNL_NAME_MAX + 1) + JNL_EOID_MAX + 1) /* account 0x1f symbol 0x1f trade id */

/* Spool record types (the spool only frames them; the payload format is below, "spool records").
 * Never renumber: a spool written by one version is replayed by the next. */
enum { REC_FILL = 1, REC_RESULTS = 2, REC_RULE = 3, REC_POSITIONS = 4 };
#define JNL_REC_VERSION 2        /* first byte of every payload (1: before position_side, limit_price) */
#define JNL_REC_FILL_DEFERS 3    /* a REC_FILL with placeholders or a resolution (only those) */
#define JNL_SPOOL_ID_FILE "journal-id" /* in the spool directory; the spool ignores other files */
#define JNL_REPLAY_MAX_STMTS 1000 /* statements per replayed batch (one transaction) */

/* ---- SQL ------------------------------------------------------------------------------------ */

/* One round trip per leader fill: two statements and one sync, i.e. one transaction.
 *
 * 1. The fill, deduped on its identity: a row back means it is new, or it is this attempt's own
 *    (sql/011: a write of the same attempt committed before, its answer lost).
 * 2. Every intent, deduped on the client order id, attached to the fill found by its identity.
 *    Returns one row: how many fills matched (1), and the 1-based positions (in $4) of the intents
 *    this statement inserted, or the attempt's own write did: the only ones that may be sent.
 *
 * Why not one statement with CTEs: all CTEs share one snapshot, so when the same fill is being
 * inserted concurrently (another daemon, or the orphaned backend of a statement we timed out and
 * replayed), the fill INSERT waits and then does nothing, yet the snapshot cannot see the row the
 * other transaction committed: no fill id, and the intents fail their NOT NULL. In READ COMMITTED
 * the second statement takes a new snapshot after the first one has waited, so it sees the fill.
 * (An attempt's own earlier write committed before this transaction began: always visible.) */
#define SQL_FILL_CTES \
    "ins AS (" \
    " INSERT INTO leader_fills (account, symbol, trade_id, order_id, side, qty, price, event_time," \
    "                           trade_seq, attempt)" \
    " VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::numeric, $7::numeric," \
    "         $8::timestamptz, $9::bigint, $10::bigint)" \
    " ON CONFLICT (account, symbol, trade_id) DO NOTHING" \
    " RETURNING id)," \
    " f AS (" \
    " SELECT id FROM ins" \
    " UNION ALL" \
    " SELECT id FROM leader_fills" \
    " WHERE account = $1::text AND symbol = $2::text AND trade_id = $3::text" \
    "   AND attempt = $10::bigint AND NOT EXISTS (SELECT 1 FROM ins))"
static const char SQL_FILL[] = "WITH " SQL_FILL_CTES " SELECT id FROM f";

/* Statement 1 of a fill with deferred decisions (journal_defer, sql/010): their placeholders are
 * inserted from the fill found above, so only with a fill new in this transaction or this
 * attempt's own (a fill another transaction inserted meanwhile returns nothing here: no
 * placeholders, and the fill is reported not new, so the caller drops its deferred decisions
 * too). An own earlier write inserted them already: nothing twice. */
static const char SQL_FILL_DEFER[] =
    "WITH " SQL_FILL_CTES ","
    " d AS ("
    " INSERT INTO deferred_decisions (leader_fill_id, account, symbol, trade_id, rule_id, follower,"
    "   input)"
    " SELECT f.id, $1::text, $2::text, $3::text, u.rule_id, u.follower, u.input::jsonb"
    " FROM f, unnest($11::text[], $12::text[], $13::text[]) AS u(rule_id, follower, input)"
    " ON CONFLICT (account, symbol, trade_id, rule_id) DO NOTHING)"
    " SELECT id FROM f";

/* A: the attempt's parameter number. */
#define SQL_INTENTS_HEAD(A) \
    "WITH lf AS (" \
    " SELECT id, event_time FROM leader_fills" \
    " WHERE account = $1::text AND symbol = $2::text AND trade_id = $3::text)," \
    " i AS (" \
    " INSERT INTO follower_orders (client_order_id, leader_fill_id, leader_event_time, rule_id," \
    "   follower, symbol, side, qty, reduce_only, order_type, status, skip_reason, skipped_at," \
    "   position_side, limit_price, attempt)" \
    " SELECT u.cid, lf.id, lf.event_time, u.rule_id, u.follower, u.symbol, u.side, u.qty," \
    "   u.reduce_only, u.order_type," \
    "   CASE WHEN u.skip IS NULL THEN 'intent' ELSE 'skipped' END, u.skip," \
    "   CASE WHEN u.skip IS NULL THEN NULL ELSE now() END, u.pside, u.lprice, $" A "::bigint" \
    " FROM lf, unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::numeric[]," \
    "                 $10::boolean[], $11::text[], $12::text[], $13::text[], $14::numeric[])" \
    "   AS u(cid, rule_id, follower, symbol, side, qty, reduce_only, order_type, skip, pside, lprice)" \
    " ON CONFLICT (client_order_id, leader_event_time) DO NOTHING" /* sql/007: see its header */ \
    " RETURNING client_order_id)," \
    " mine AS (" \
    " SELECT client_order_id FROM i" \
    " UNION ALL" \
    " SELECT o.client_order_id FROM follower_orders o, lf" \
    " WHERE o.client_order_id = ANY ($4::text[]) AND o.leader_event_time = lf.event_time" \
    "   AND o.leader_fill_id = lf.id AND o.attempt = $" A "::bigint" \
    "   AND NOT EXISTS (SELECT 1 FROM i))" /* a fresh write (the hot path) looks no further */
#define SQL_INTENTS_TAIL \
    " SELECT (SELECT count(*) FROM lf)," \
    "  (SELECT string_agg(o.ord::text, ',' ORDER BY o.ord)" \
    "     FROM unnest($4::text[]) WITH ORDINALITY AS o(cid, ord)" \
    "     JOIN mine ON mine.client_order_id = o.cid)"
static const char SQL_INTENTS[] = SQL_INTENTS_HEAD("15") SQL_INTENTS_TAIL;

/* Statement 2 of the write that holds a deferred decision: its intents, and its placeholder
 * resolved in the same transaction ('decided', or 'skipped' with $16 as the reason), once: a
 * placeholder no longer 'pending' is left alone. A third column says whether it was pending. */
static const char SQL_INTENTS_RESOLVE[] =
    SQL_INTENTS_HEAD("17") ","
    " r AS ("
    " UPDATE deferred_decisions SET"
    "   status = CASE WHEN $16::text IS NULL THEN 'decided' ELSE 'skipped' END,"
    "   reason = $16::text, resolved_at = now()"
    " WHERE account = $1::text AND symbol = $2::text AND trade_id = $3::text AND rule_id = $15::text"
    "   AND status = 'pending' RETURNING 1)"
    SQL_INTENTS_TAIL ", (SELECT count(*) FROM r)";

/* journal_load_defers, one sync group: the placeholders of rules the configuration no longer has
 * (journal_sync_config marked them removed, or the id now names another follower's rule) are
 * resolved as skipped; then the pending rest is read, in the order they were written. */
static const char SQL_DEFERS_DROP[] =
    "UPDATE deferred_decisions d SET status = 'skipped', reason = 'rule_removed', resolved_at = now()"
    " WHERE d.status = 'pending' AND NOT EXISTS (SELECT 1 FROM copy_rules r"
    "   WHERE r.id = d.rule_id AND r.follower = d.follower AND r.status <> 'removed')";
static const char SQL_DEFERS_LOAD[] =
    "SELECT account, symbol, trade_id, rule_id, follower, input::text FROM deferred_decisions"
    " WHERE status = 'pending' ORDER BY id";

/* One statement per batch of results (client order ids distinct within a batch, so each row is
 * updated at most once). The WHERE clause is what keeps a status from moving backwards. */
#define STATE_AT(col, st) \
    " " col " = CASE WHEN u.status = '" st "' THEN COALESCE(f." col ", u.at) ELSE f." col " END,"
static const char SQL_RESULTS[] =
    "UPDATE follower_orders AS f SET"
    " status = u.status,"
    " exchange_order_id = COALESCE(u.exchange_order_id, f.exchange_order_id),"
    " executed_qty = COALESCE(u.executed_qty, f.executed_qty),"
    " avg_price = COALESCE(u.avg_price, f.avg_price),"
    " error_code = COALESCE(u.error_code, f.error_code),"
    " error_msg = COALESCE(u.error_msg, f.error_msg),"
    /* A result can skip an intent that was never sent (start-up reconciliation: confirmed absent
     * and too old to send); its message is the reason. */
    " skip_reason = CASE WHEN u.status = 'skipped' THEN COALESCE(u.error_msg, 'stale')"
    "              ELSE f.skip_reason END,"
    STATE_AT("skipped_at", "skipped")
    STATE_AT("sent_at", "sent")
    STATE_AT("acked_at", "acked")
    STATE_AT("partially_filled_at", "partially_filled")
    STATE_AT("filled_at", "filled")
    STATE_AT("rejected_at", "rejected")
    STATE_AT("unknown_at", "unknown")
    STATE_AT("reconciled_at", "reconciled")
    STATE_AT("canceled_at", "canceled")
    STATE_AT("expired_at", "expired")
    " updated_at = now()"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::numeric[], $5::numeric[],"
    "             $6::integer[], $7::text[], $8::timestamptz[])"
    "   AS u(cid, status, exchange_order_id, executed_qty, avg_price, error_code, error_msg, at)"
    " WHERE f.client_order_id = u.cid"
    "   AND (follower_order_status_rank(u.status) > follower_order_status_rank(f.status)"
    "        OR (u.status = 'partially_filled' AND f.status = 'partially_filled'"
    "            AND u.executed_qty > COALESCE(f.executed_qty, 0)))";

/* Position snapshots (sql/008), one statement per batch. A batch resent after a lost connection
 * or replayed from the spool inserts nothing twice: the key is the snapshot's identity. */
static const char SQL_POSITIONS[] =
    "INSERT INTO position_snapshots (taken_at, account, symbol, position_side, amount, source)"
    " SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::numeric[],"
    "                      $6::text[])"
    " ON CONFLICT (account, symbol, position_side, taken_at, source) DO NOTHING";

/* The running journal's partition upkeep (sql/007): through the pipeline when idle, with a short
 * lock_timeout for the rare day it creates a partition (that needs a brief exclusive lock on
 * follower_orders: better to fail and retry in an hour than to queue every writer behind a lock
 * wait). set_config(..., true) lasts for the sync group's transaction. */
static const char SQL_PARTS_LOCK[] = "SELECT set_config('lock_timeout', '1s', true)";
static const char SQL_PARTS[] = "SELECT ensure_follower_order_partitions($1::integer)";

static const char SQL_RULE[] =
    "UPDATE copy_rules SET status = $2,"
    " operator_paused = COALESCE($3::boolean, operator_paused), updated_at = now()"
    " WHERE id = $1 AND status <> 'removed'";

/* Replay bookkeeping (sql/005_spool.sql): the last spool record applied, moved in the same
 * transaction as the records themselves; never backwards. */
static const char SQL_APPLIED_GET[] = "SELECT seq FROM spool_applied WHERE spool_id = $1::text";
static const char SQL_APPLIED_SET[] =
    "INSERT INTO spool_applied AS a (spool_id, seq) VALUES ($1::text, $2::bigint)"
    " ON CONFLICT (spool_id) DO UPDATE SET seq = EXCLUDED.seq, updated_at = now()"
    " WHERE a.seq < EXCLUDED.seq";

static const char SQL_SCHEMA_MIGRATIONS[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static const char SQL_UPSERT_ACCOUNT[] =
    "INSERT INTO accounts AS a (name, exchange) VALUES ($1::text, $2::text)"
    " ON CONFLICT (name) DO UPDATE SET exchange = EXCLUDED.exchange, updated_at = now()"
    " WHERE a.exchange IS DISTINCT FROM EXCLUDED.exchange";

/* A disabled rule is paused; an enabled one is active unless a loss stop put it in close_only,
 * which only an operator undoes. */
#define RULE_NEW_STATUS \
    "CASE WHEN EXCLUDED.status = 'paused' THEN 'paused'" \
    " WHEN r.status = 'close_only' THEN 'close_only'" \
    " WHEN r.operator_paused THEN 'paused' ELSE 'active' END"
static const char SQL_UPSERT_RULE[] =
    "INSERT INTO copy_rules AS r (id, leader, follower, sizing, params, status)"
    " VALUES ($1::text, $2::text, $3::text, $4::text, COALESCE($5::jsonb, '{}'::jsonb),"
    "         CASE WHEN $6::boolean THEN 'active' ELSE 'paused' END)"
    " ON CONFLICT (id) DO UPDATE SET leader = EXCLUDED.leader, follower = EXCLUDED.follower,"
    "   sizing = EXCLUDED.sizing, params = EXCLUDED.params, status = " RULE_NEW_STATUS ","
    "   updated_at = now()"
    " WHERE (r.leader, r.follower, r.sizing, r.params, r.status) IS DISTINCT FROM"
    "   (EXCLUDED.leader, EXCLUDED.follower, EXCLUDED.sizing, EXCLUDED.params, " RULE_NEW_STATUS ")";

/* The same upserts for every account / rule at once (text[] parameters, unnest): start-up sent
 * one statement per row, 20,000 round trips and 10 s with 10,000 followers. */
static const char SQL_UPSERT_ACCOUNTS[] =
    "INSERT INTO accounts AS a (name, exchange) SELECT * FROM unnest($1::text[], $2::text[])"
    " ON CONFLICT (name) DO UPDATE SET exchange = EXCLUDED.exchange, updated_at = now()"
    " WHERE a.exchange IS DISTINCT FROM EXCLUDED.exchange";
static const char SQL_UPSERT_RULES[] =
    "INSERT INTO copy_rules AS r (id, leader, follower, sizing, params, status)"
    " SELECT u.id, u.leader, u.follower, u.sizing, COALESCE(u.params::jsonb, '{}'::jsonb),"
    "        CASE WHEN u.enabled THEN 'active' ELSE 'paused' END"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[])"
    "   AS u(id, leader, follower, sizing, params, enabled)"
    " ON CONFLICT (id) DO UPDATE SET leader = EXCLUDED.leader, follower = EXCLUDED.follower,"
    "   sizing = EXCLUDED.sizing, params = EXCLUDED.params, status = " RULE_NEW_STATUS ","
    "   updated_at = now()"
    " WHERE (r.leader, r.follower, r.sizing, r.params, r.status) IS DISTINCT FROM"
    "   (EXCLUDED.leader, EXCLUDED.follower, EXCLUDED.sizing, EXCLUDED.params, " RULE_NEW_STATUS ")";

static const char SQL_REMOVE_RULES[] =
    "UPDATE copy_rules SET status = 'removed', updated_at = now()"
    " WHERE status <> 'removed' AND NOT (id = ANY ($1::text[]))";

static const char SQL_AUDIT[] =
    "INSERT INTO audit_log (kind, subject, ok, detail)"
    " VALUES ($1, $2, $3::boolean, COALESCE($4::jsonb, '{}'::jsonb))";

/* ---- small helpers -------------------------------------------------------------------------- */

static const char *const status_names[] = {
    [JOURNAL_INTENT] = "intent",       [JOURNAL_SENT] = "sent",
    [JOURNAL_ACKED] = "acked",         [JOURNAL_PARTIALLY_FILLED] = "partially_filled",
    [JOURNAL_FILLED] = "filled",       [JOURNAL_REJECTED] = "rejected",
    [JOURNAL_SKIPPED] = "skipped",     [JOURNAL_UNKNOWN] = "unknown",
    [JOURNAL_RECONCILED] = "reconciled", [JOURNAL_CANCELED] = "canceled",
    [JOURNAL_EXPIRED] = "expired",
};

const char *journal_status_name(enum journal_status s)
{
    if ((unsigned)s >= sizeof status_names / sizeof status_names[0]) return NULL;
    return status_names[s];
}

/* A growable, always NUL-terminated string. `oom` sticks until reset. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_reset(struct sbuf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->p) b->p[0] = '\0';
}

static bool sb_reserve(struct sbuf *b, size_t add)
{
    if (b->oom) return false;
    if (b->len + add + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + add + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    if (!sb_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_free(struct sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* PostgreSQL array literals: "{" elem "," elem "}", every value double-quoted with \ and "
 * escaped, NULL unquoted. */
static void arr_open(struct sbuf *b)
{
    sb_reset(b);
    sb_putn(b, "{", 1);
}

static void arr_sep(struct sbuf *b)
{
    if (b->len > 1) sb_putn(b, ",", 1);
}

static void arr_str(struct sbuf *b, const char *s)
{
    arr_sep(b);
    if (!s) {
        sb_puts(b, "NULL");
        return;
    }
    sb_putn(b, "\"", 1);
    for (const char *q = s; *q; q++) {
        if (*q == '"' || *q == '\\') sb_putn(b, "\\", 1);
        sb_putn(b, q, 1);
    }
    sb_putn(b, "\"", 1);
}

static void arr_raw(struct sbuf *b, const char *s) /* numbers, t/f: no quoting needed */
{
    arr_sep(b);
    sb_puts(b, s);
}

static void arr_close(struct sbuf *b) { sb_putn(b, "}", 1); }

/* Exact decimal text as the exchanges print it: [0-9]+(.[0-9]+)?, no sign, no exponent. */
static bool valid_decimal(const char *s)
{
    if (!s) return false;
    size_t n = strlen(s), i = 0, digits = 0;
    if (n == 0 || n > JNL_DEC_MAX) return false;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    if (!digits) return false;
    if (i == n) return true;
    if (s[i++] != '.') return false;
    if (i == n) return false;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    return i == n;
}

static bool decimal_positive(const char *s)
{
    for (; *s; s++)
        if (*s >= '1' && *s <= '9') return true;
    return false;
}

/* Printable ASCII (spaces too when allowed), 1..max bytes: these end up in text columns and in
 * error messages, so no control characters and nothing PostgreSQL could refuse as bad UTF-8. */
static bool valid_text(const char *s, size_t max, bool spaces)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c > 0x7e || c < 0x20 || (c == 0x20 && !spaces) || n >= max) return false;
    }
    return true;
}

/* An exchange trade or order id: Binance decimal numbers, Bybit UUIDs. */
static bool valid_id(const char *s)
{
    if (!s || !*s) return false;
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] <= 0x20 || s[n] > 0x7e || n >= JNL_EOID_MAX) return false;
    return true;
}

static bool valid_cid(const char *s)
{
    if (!s) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok || n >= JNL_CID_MAX) return false;
    }
    return n > 0;
}

static bool valid_side(const char *s) { return s && (!strcmp(s, "BUY") || !strcmp(s, "SELL")); }

/* "YYYY-MM-DD HH:MM:SS.uuuuuu+00" from µs since the epoch (>= 0): exact, no floating point. */
static void fmt_ts_us(char *buf, size_t n, int64_t us)
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, n, "%04d-%02d-%02d %02d:%02d:%02d.%06ld+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static int64_t realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Copies a libpq message, newlines folded to spaces and the trailing one dropped. */
static void copy_msg(char *dst, size_t n, const char *src)
{
    if (!n) return;
    size_t i = 0;
    for (; src && src[i] && i + 1 < n; i++) dst[i] = (src[i] == '\n' || src[i] == '\t') ? ' ' : src[i];
    while (i > 0 && dst[i - 1] == ' ') i--;
    dst[i] = '\0';
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void notice_ignore(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* NOTICEs ("relation exists, skipping") are not errors; libpq would print them */
}

/* ---- start-up: synchronous ------------------------------------------------------------------ */

static PGconn *sync_connect(const char *conninfo, char *err, size_t errlen)
{
    char msg[512];
    PGconn *c = PQconnectdb(conninfo);
    if (!c) {
        seterr(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        copy_msg(msg, sizeof msg, PQerrorMessage(c));
        seterr(err, errlen, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, notice_ignore, NULL);
    return c;
}

/* Runs sql (params optional); 0, or -EIO with "what: message" in err. */
static int sync_exec(PGconn *c, const char *sql, int np, const char *const *params,
                     char *err, size_t errlen, const char *what)
{
    PGresult *r = np ? PQexecParams(c, sql, np, NULL, params, NULL, NULL, 0) : PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (r && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
        PQclear(r);
        return 0;
    }
    char msg[512];
    copy_msg(msg, sizeof msg, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    if (!msg[0]) copy_msg(msg, sizeof msg, PQerrorMessage(c));
    seterr(err, errlen, "%s: %s", what, msg);
    PQclear(r);
    return PQstatus(c) == CONNECTION_OK ? -EIO : -ENOTCONN;
}

int journal_migrate(const char *conninfo, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!conninfo) {
        seterr(err, errlen, "journal_migrate: no conninfo");
        return -EINVAL;
    }
    for (unsigned i = 1; i < sql_migrations_count; i++) {
        if (sql_migrations[i].version <= sql_migrations[i - 1].version) {
            seterr(err, errlen, "migrations %s and %s: versions must increase",
                   sql_migrations[i - 1].name, sql_migrations[i].name);
            return -EINVAL;
        }
    }
    PGconn *c = sync_connect(conninfo, err, errlen);
    if (!c) return -ENOTCONN;

    int rc, applied = 0;
    bool *done = NULL;
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)JNL_MIGRATE_LOCK);
    const char *kp[] = {key};
    /* lock_timeout bounds the wait for another daemon's migration (and any DDL lock wait): a
     * start-up that fails clearly beats one that hangs. Session-level, for this connection only. */
    if ((rc = sync_exec(c, "SET lock_timeout = '60s'", 0, NULL, err, errlen, "migrate")) < 0 ||
        (rc = sync_exec(c, "SELECT pg_advisory_lock($1::bigint)", 1, kp, err, errlen,
                        "migrate: advisory lock")) < 0 ||
        (rc = sync_exec(c, SQL_SCHEMA_MIGRATIONS, 0, NULL, err, errlen,
                        "migrate: create schema_migrations")) < 0)
        goto out;

    done = calloc(sql_migrations_count + 1, sizeof *done);
    if (!done) {
        rc = -ENOMEM;
        seterr(err, errlen, "migrate: out of memory");
        goto out;
    }
    PGresult *r = PQexec(c, "SELECT version FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char msg[512];
        copy_msg(msg, sizeof msg, PQresultErrorMessage(r));
        seterr(err, errlen, "migrate: read schema_migrations: %s", msg);
        PQclear(r);
        rc = -EIO;
        goto out;
    }
    for (int row = 0; row < PQntuples(r); row++) {
        int v = atoi(PQgetvalue(r, row, 0));
        for (unsigned i = 0; i < sql_migrations_count; i++)
            if (sql_migrations[i].version == v) done[i] = true;
    }
    PQclear(r);

    for (unsigned i = 0; i < sql_migrations_count; i++) {
        const struct sql_migration *m = &sql_migrations[i];
        if (done[i]) continue;
        char what[160], ver[16];
        snprintf(what, sizeof what, "migration %s", m->name);
        snprintf(ver, sizeof ver, "%d", m->version);
        const char *p[] = {ver, m->name};
        if ((rc = sync_exec(c, "BEGIN", 0, NULL, err, errlen, what)) < 0) goto out;
        if ((rc = sync_exec(c, m->sql, 0, NULL, err, errlen, what)) < 0 ||
            (rc = sync_exec(c, "INSERT INTO schema_migrations (version, name) VALUES "
                               "($1::integer, $2::text)", 2, p, err, errlen, what)) < 0 ||
            (rc = sync_exec(c, "COMMIT", 0, NULL, err, errlen, what)) < 0) {
            PQclear(PQexec(c, "ROLLBACK"));
            goto out;
        }
        applied++;
    }
    /* Partitions of follower_orders for this month and the next ones (sql/007); the running
     * journal keeps them ahead from then on (JNL_PARTS_EVERY_MS). */
    char ahead[16];
    snprintf(ahead, sizeof ahead, "%d", JNL_PARTS_AHEAD);
    const char *ap[] = {ahead};
    if ((rc = sync_exec(c, SQL_PARTS, 1, ap, err, errlen, "migrate: follower_orders partitions")) < 0)
        goto out;
    /* Released by the disconnect anyway; unlock explicitly for poolers that keep sessions. */
    rc = sync_exec(c, "SELECT pg_advisory_unlock($1::bigint)", 1, kp, err, errlen,
                   "migrate: advisory unlock");
out:
    free(done);
    PQfinish(c);
    return rc < 0 ? rc : applied;
}

/* journal_sync_config's argument checks, shared with journal_sync_statements. */
static int sync_check(const struct journal_account *accts, size_t na, const struct journal_rule *rules,
                      size_t nr, char *err, size_t errlen)
{
    if ((na && !accts) || (nr && !rules)) {
        seterr(err, errlen, "journal_sync_config: bad arguments");
        return -EINVAL;
    }
    for (size_t i = 0; i < na; i++) {
        if (!valid_text(accts[i].name, JNL_NAME_MAX, false) ||
            !valid_text(accts[i].exchange, JNL_NAME_MAX, false)) {
            seterr(err, errlen, "account #%zu: name and exchange must be 1..%d printable characters",
                   i, JNL_NAME_MAX);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < nr; i++) {
        const struct journal_rule *ru = &rules[i];
        if (!valid_text(ru->id, JNL_NAME_MAX, false) || !valid_text(ru->leader, JNL_NAME_MAX, false) ||
            !valid_text(ru->follower, JNL_NAME_MAX, false) ||
            !valid_text(ru->sizing, JNL_NAME_MAX, false)) {
            seterr(err, errlen, "copy rule #%zu: id, leader, follower and sizing must be 1..%d "
                   "printable characters", i, JNL_NAME_MAX);
            return -EINVAL;
        }
    }
    return 0;
}

/* Every account and rule in three statements (text[] parameters, unnest), one transaction. */
static int sync_batch(PGconn *c, const struct journal_account *accts, size_t na,
                      const struct journal_rule *rules, size_t nr, char *err, size_t errlen)
{
    struct sbuf col[8] = {{0}};
    int rc = 0;
    for (int k = 0; k < 8; k++) arr_open(&col[k]);
    for (size_t i = 0; i < na; i++) {
        arr_str(&col[0], accts[i].name);
        arr_str(&col[1], accts[i].exchange);
    }
    for (size_t i = 0; i < nr; i++) {
        const struct journal_rule *ru = &rules[i];
        arr_str(&col[2], ru->id);
        arr_str(&col[3], ru->leader);
        arr_str(&col[4], ru->follower);
        arr_str(&col[5], ru->sizing);
        arr_str(&col[6], ru->params_json);
        arr_raw(&col[7], ru->enabled ? "t" : "f");
    }
    bool oom = false;
    for (int k = 0; k < 8; k++) {
        arr_close(&col[k]);
        oom |= col[k].oom;
    }
    if (oom) {
        seterr(err, errlen, "sync config: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    const char *pa[] = {col[0].p, col[1].p};
    const char *pr[] = {col[2].p, col[3].p, col[4].p, col[5].p, col[6].p, col[7].p};
    const char *pi[] = {col[2].p};
    if ((rc = sync_exec(c, "BEGIN", 0, NULL, err, errlen, "sync config")) < 0) goto out;
    if ((rc = sync_exec(c, SQL_UPSERT_ACCOUNTS, 2, pa, err, errlen, "sync config: accounts")) < 0 ||
        (rc = sync_exec(c, SQL_UPSERT_RULES, 6, pr, err, errlen, "sync config: copy rules")) < 0 ||
        (rc = sync_exec(c, SQL_REMOVE_RULES, 1, pi, err, errlen, "sync config: removed rules")) < 0 ||
        (rc = sync_exec(c, "COMMIT", 0, NULL, err, errlen, "sync config")) < 0)
        PQclear(PQexec(c, "ROLLBACK"));
out:
    for (int k = 0; k < 8; k++) sb_free(&col[k]);
    return rc;
}

/* The same, one statement per row: slow (a round trip each), but an error names its row. */
static int sync_rows(PGconn *c, const struct journal_account *accts, size_t na,
                     const struct journal_rule *rules, size_t nr, char *err, size_t errlen)
{
    struct sbuf ids = {0};
    int rc;
    if ((rc = sync_exec(c, "BEGIN", 0, NULL, err, errlen, "sync config")) < 0) return rc;
    for (size_t i = 0; i < na; i++) {
        char what[128];
        snprintf(what, sizeof what, "account '%s'", accts[i].name);
        const char *p[] = {accts[i].name, accts[i].exchange};
        if ((rc = sync_exec(c, SQL_UPSERT_ACCOUNT, 2, p, err, errlen, what)) < 0) goto rollback;
    }
    arr_open(&ids);
    for (size_t i = 0; i < nr; i++) {
        const struct journal_rule *ru = &rules[i];
        char what[128];
        snprintf(what, sizeof what, "copy rule '%s'", ru->id);
        const char *p[] = {ru->id, ru->leader, ru->follower, ru->sizing, ru->params_json,
                           ru->enabled ? "t" : "f"};
        if ((rc = sync_exec(c, SQL_UPSERT_RULE, 6, p, err, errlen, what)) < 0) goto rollback;
        arr_str(&ids, ru->id);
    }
    arr_close(&ids);
    if (ids.oom) {
        rc = -ENOMEM;
        seterr(err, errlen, "sync config: out of memory");
        goto rollback;
    }
    const char *p[] = {ids.p};
    if ((rc = sync_exec(c, SQL_REMOVE_RULES, 1, p, err, errlen, "sync config: removed rules")) < 0 ||
        (rc = sync_exec(c, "COMMIT", 0, NULL, err, errlen, "sync config")) < 0)
        goto rollback;
    sb_free(&ids);
    return 0;
rollback:
    PQclear(PQexec(c, "ROLLBACK"));
    sb_free(&ids);
    return rc;
}

int journal_sync_config(const char *conninfo, const struct journal_account *accts, size_t na,
                        const struct journal_rule *rules, size_t nr, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!conninfo) {
        seterr(err, errlen, "journal_sync_config: bad arguments");
        return -EINVAL;
    }
    int rc = sync_check(accts, na, rules, nr, err, errlen);
    if (rc < 0) return rc;

    PGconn *c = sync_connect(conninfo, err, errlen);
    if (!c) return -ENOTCONN;
    rc = sync_batch(c, accts, na, rules, nr, err, errlen);
    /* A batch names no row: on an error, the same transaction again row by row says which. */
    if (rc == -EIO) rc = sync_rows(c, accts, na, rules, nr, err, errlen);
    PQfinish(c);
    return rc < 0 ? rc : 0;
}

int journal_audit(const char *conninfo, const char *kind, const char *subject, bool ok,
                  const char *detail_json, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!conninfo || !valid_text(kind, JNL_NAME_MAX, false)) {
        seterr(err, errlen, "journal_audit: bad arguments");
        return -EINVAL;
    }
    PGconn *c = sync_connect(conninfo, err, errlen);
    if (!c) return -ENOTCONN;
    const char *p[] = {kind, subject, ok ? "t" : "f", detail_json};
    int rc = sync_exec(c, SQL_AUDIT, 4, p, err, errlen, "audit log");
    PQfinish(c);
    return rc < 0 ? rc : 0;
}

/* ---- the same statements, built for a caller's own connection ------------------------------ */

static bool stmts_reserve(struct journal_stmts *s, size_t add)
{
    if (s->n + add <= s->cap) return true;
    size_t cap = s->cap ? s->cap : 8;
    while (cap < s->n + add) cap *= 2;
    struct journal_stmt *v = realloc(s->v, cap * sizeof *v);
    if (!v) return false;
    s->v = v;
    s->cap = cap;
    return true;
}

/* Appends one statement (room reserved by the caller). */
static void stmts_add(struct journal_stmts *s, const char *sql, int np, const char *const *p,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void stmts_add(struct journal_stmts *s, const char *sql, int np, const char *const *p,
                      const char *fmt, ...)
{
    struct journal_stmt *st = &s->v[s->n++];
    memset(st, 0, sizeof *st);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->name, sizeof st->name, fmt, ap);
    va_end(ap);
    st->sql = sql;
    st->nparams = np;
    for (int i = 0; i < np && i < JOURNAL_STMT_PARAMS; i++) st->params[i] = p[i];
}

int journal_sync_statements(struct journal_stmts *s, const struct journal_account *accts, size_t na,
                            const struct journal_rule *rules, size_t nr, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!s) {
        seterr(err, errlen, "journal_sync_statements: bad arguments");
        return -EINVAL;
    }
    int rc = sync_check(accts, na, rules, nr, err, errlen);
    if (rc < 0) return rc;
    struct sbuf ids = {0};
    arr_open(&ids);
    for (size_t i = 0; i < nr; i++) arr_str(&ids, rules[i].id);
    arr_close(&ids);
    char **owned = realloc(s->owned, (s->n_owned + 1) * sizeof *owned);
    if (owned) s->owned = owned;
    if (ids.oom || !owned || !stmts_reserve(s, na + nr + 1)) {
        sb_free(&ids);
        seterr(err, errlen, "sync config: out of memory");
        return -ENOMEM;
    }
    s->owned[s->n_owned++] = ids.p; /* now the statements' */
    for (size_t i = 0; i < na; i++) {
        const char *p[] = {accts[i].name, accts[i].exchange};
        stmts_add(s, SQL_UPSERT_ACCOUNT, 2, p, "account '%s'", accts[i].name);
    }
    for (size_t i = 0; i < nr; i++) {
        const struct journal_rule *ru = &rules[i];
        const char *p[] = {ru->id, ru->leader, ru->follower, ru->sizing, ru->params_json,
                           ru->enabled ? "t" : "f"};
        stmts_add(s, SQL_UPSERT_RULE, 6, p, "copy rule '%s'", ru->id);
    }
    const char *p[] = {ids.p};
    stmts_add(s, SQL_REMOVE_RULES, 1, p, "sync config: removed rules");
    return 0;
}

int journal_audit_statement(struct journal_stmts *s, const char *kind, const char *subject, bool ok,
                            const char *detail_json, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!s || !valid_text(kind, JNL_NAME_MAX, false)) {
        seterr(err, errlen, "journal_audit_statement: bad arguments");
        return -EINVAL;
    }
    if (!stmts_reserve(s, 1)) {
        seterr(err, errlen, "audit log: out of memory");
        return -ENOMEM;
    }
    const char *p[] = {kind, subject, ok ? "t" : "f", detail_json};
    stmts_add(s, SQL_AUDIT, 4, p, "audit log");
    return 0;
}

void journal_stmts_reset(struct journal_stmts *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* ---- the asynchronous journal --------------------------------------------------------------- */

enum op_kind { OP_SETUP, OP_FILL, OP_RESULTS, OP_RULE, OP_REPLAY, OP_POSITIONS, OP_PARTS, OP_DEFERS };

/* One sync group in the pipeline: nq statements and a PQpipelineSync. The FIFO of ops matches
 * the order in which the server answers. */
struct op {
    struct op *next;
    enum op_kind kind;
    int nq;            /* statements in the group */
    int answered;      /* statements whose result came back */
    bool failed;       /* a statement failed or was aborted: the group rolled back */
    bool bad_reply;    /* a reply we could not parse */
    char *errmsg;      /* first error */
    uint64_t t0;       /* uv_hrtime() when sent */
    uint64_t dl_ext;   /* ms its deadline was moved past timeout_ms after a loop stall (once) */
    /* OP_FILL */
    journal_fill_cb cb;
    void *ud;
    bool fill_new;
    size_t n;
    bool *intent_new;  /* n entries, allocated with the op */
    /* OP_RESULTS, OP_POSITIONS */
    size_t nres;       /* queue entries in the statement (the queue's head) */
    uint64_t rows;     /* rows updated or inserted; OP_PARTS: partitions created */
    /* OP_RULE */
    struct jrule *rule;
    /* OP_FILL with a spool: its identity, and its spool record in case it has to move there */
    char *key;
    char *payload;
    size_t plen;
    bool detached;     /* moved to the spool, callback done: PostgreSQL's reply is ignored */
    bool spooled;      /* completed from the spool (on the done list), never sent */
    bool spool_dup;    /* ... as a fill the spool holds: nothing of this write was recorded */
    size_t n_defers;   /* placeholders written with the fill (journal_fill.n_defers) */
    bool resolves;     /* resolves a placeholder (journal_fill.resolve_rule_id) */
    bool resolved;     /* ... and PostgreSQL says it was still pending */
    /* OP_SETUP with a spool */
    bool have_applied;
    uint64_t applied_seq; /* spool_applied.seq of our spool */
    /* OP_REPLAY: spool records first_seq..last_seq (nrec of them, nbad not parsed) */
    uint64_t first_seq, last_seq, nrec, nbad;
    char sqlstate[6];  /* of the first error */
    /* OP_DEFERS: the pending placeholders read */
    PGresult *rows_res;
};

/* A rule state change waiting to be written (kept across reconnects until it commits). */
struct jrule {
    struct jrule *next;
    char id[128];
    char status[16];
    int paused;        /* operator_paused: -1 keep, 0, 1 */
    bool sent;
    bool superseded;   /* in flight when a later change of the same rule went to the spool:
                        * not resent if the connection drops */
};

/* A queued result (write-behind). */
struct jres {
    uint64_t seq;
    char cid[JNL_CID_MAX + 1];
    enum journal_status status;
    char eoid[JNL_EOID_MAX + 1]; /* "" = keep */
    char eqty[JNL_DEC_MAX + 1]; /* "" = keep */
    char avgp[JNL_DEC_MAX + 1];
    int ecode;
    char *emsg;                 /* NULL = keep */
    int64_t at_us;
};

/* A queued position snapshot (write-behind). */
struct jpos {
    int64_t at_us;
    char account[JNL_NAME_MAX + 1], symbol[JNL_NAME_MAX + 1], pside[8], source[12];
    char amount[JNL_DEC_MAX + 2]; /* with its sign */
};

struct waiter {
    struct waiter *next;
    uint64_t res_target;  /* every result with seq < this finished */
    uint64_t pos_target;  /* this many position snapshots finished */
    uint64_t fill_target; /* this many fills finished */
    uint64_t err_mark;    /* failures counted when the flush was asked */
    journal_flush_cb cb;
    void *ud;
};

/* A set of fill keys (chained hash). */
struct kent {
    struct kent *next;
    uint32_t h;
    char key[];
};
struct kset {
    struct kent **b;
    size_t nb, n;
};

enum conn_state {
    ST_WAIT,       /* no connection; t_retry pending */
    ST_CONNECTING, /* PQconnectPoll steps */
    ST_SETUP,      /* pipeline mode; SET + prepares in flight */
    ST_READY,
    ST_CLOSED,     /* journal_free */
};

struct journal {
    uv_loop_t *loop;
    char *conninfo;
    struct journal_opts o;

    PGconn *conn;
    uv_poll_t *poll;      /* heap: closed and re-made around every PQconnectPoll */
    int poll_events;
    enum conn_state st;
    bool want_write;      /* PQflush returned 1: also wait for writable */
    bool in_query;        /* a statement's result seen, its terminating NULL not yet */
    bool broken;          /* a send failed inside an API call: reset from the loop */
    int broken_err;
    uint64_t conn_t0;     /* uv_hrtime() at PQconnectStart */
    uint64_t conn_dl_ext; /* the connect deadline's op->dl_ext */
    uint64_t dl_due;      /* loop time (uv_now) t_deadline is due at */
    unsigned attempt;     /* failed attempts since the last session set up */
    uint64_t rng;

    uv_timer_t t_retry, t_deadline, t_work;
    int handles_open;

    struct op *ops_head, *ops_tail;
    size_t inflight_stmts, inflight_fills;
    bool res_inflight;    /* at most one results statement in flight: under load the queue grows
                           * meanwhile, and the next statement takes all of it (up to batch_size) */

    struct jres *q;       /* ring buffer of results, oldest first */
    size_t qcap, qhead, qlen, qsent; /* qsent: head entries in the statement in flight */
    uint64_t res_seq;     /* seq of the next result queued */
    uint32_t *hset;       /* open addressing, duplicate ids within a batch */
    size_t hcap;

    struct jpos *pq;      /* position snapshots, oldest first (a plain array: few, small) */
    size_t pqlen, pqcap, pqsent; /* pqsent: head entries in the statement in flight */
    bool pos_inflight;
    uint64_t pos_seq;     /* snapshots queued so far; finished = pos_seq - pqlen */

    uv_timer_t t_parts;   /* partition upkeep (sql/007) */
    bool parts_due, parts_inflight;
    uint64_t parts_due_t0;

    struct jrule *rules_head;
    uint64_t fills_submitted, fills_finished, err_events;
    struct waiter *w_head, *w_tail;

    struct sbuf pb[JNL_ARRAYS]; /* array parameter buffers, reused */
    struct sbuf db[JNL_DEFER_ARRAYS]; /* the same for placeholders (sql/010) */
    /* journal_load_defers: asked (cb set), and its sync group in flight */
    journal_defers_cb dl_cb;
    void *dl_ud;
    bool dl_sent;
    struct journal_stats s;
    char last_error[512];

    /* The spool (sp NULL: none). */
    struct spool *sp;
    char spool_id[33];    /* 32 hex digits, JNL_SPOOL_ID_FILE */
    bool spool_os;        /* SPOOL_OS: synced by t_sync */
    bool spooling;        /* new work goes to the spool until the replay has drained it */
    bool spool_reported;  /* the last spooling state given to on_spool */
    bool spool_ok;        /* false after a failed append, until one succeeds */
    bool spool_err_pending;
    char spool_why[160];  /* why the spool took over */
    char spool_err[512];  /* the last spool error, for on_spool */
    struct kset keys;     /* fills in the spool, by key: cleared when the spool is drained */
    struct op *done_head, *done_tail; /* fills completed from the spool, callbacks due */
    uv_timer_t t_slow, t_sync, t_replay;
    /* Write-ahead: the replay runs from this 1 ms timer, not in the loop turn that reported a fill
     * new, so the fill's orders leave before PostgreSQL is woken (two cores: it competes). */
    uv_timer_t t_rpk;
    bool rp_kicked;
    /* SPOOL_OS: replayed records PostgreSQL has committed (spool_applied says so) whose spool ack
     * waits for t_sync: an ack costs fsyncs, and write-ahead replays after every fill. */
    uint64_t ack_due;
    struct jbg *bg;       /* the spool's sync/ack being done off the loop (SPOOL_OS) */
    struct op *rp_op;     /* the replay batch in flight */
    bool rp_begin;        /* restart the replay cursor at the watermark */
    bool rp_hold;         /* waiting on t_replay after a transient error */
    bool rp_stuck;        /* the spool cannot be read back: replay stopped (see last_error) */
    uint64_t rp_single_until; /* after a refused batch: records up to this seq go one by one */
    uint64_t rp_episode;  /* records replayed since the spool last took over */
    unsigned rp_fails;    /* transient replay failures in a row */
    struct sbuf rb;       /* a spool record being built */

    int busy;             /* inside a loop callback of ours */
    bool free_requested;
};

static void on_poll(uv_poll_t *h, int status, int events);
static void on_work(uv_timer_t *t);
static void on_rp_kick(uv_timer_t *t);
static void conn_drop(struct journal *j, int err, const char *msg);
static void service(struct journal *j);
static bool spool_degraded(const struct journal *j);
static void really_free(struct journal *j);
static void fill_callback(struct journal *j, struct op *op, int status, const char *errmsg);
static void on_slow(uv_timer_t *t);
static bool divert_ops(struct journal *j, struct op **v, size_t n, const char *why);
static void spool_session_start(struct journal *j, const struct op *setup);
static void replay_done(struct journal *j, struct op *op);

/* ---- fill keys ---- */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void fill_key(char *dst, size_t n, const char *account, const char *symbol, const char *tid)
{
    snprintf(dst, n, "%s\x1f%s\x1f%s", account, symbol, tid);
}

static bool kset_has(const struct kset *k, const char *key)
{
    if (!k->nb) return false;
    uint32_t h = hash_str(key);
    for (const struct kent *e = k->b[h & (k->nb - 1)]; e; e = e->next)
        if (e->h == h && !strcmp(e->key, key)) return true;
    return false;
}

/* Adds key (when missing). 0 or -ENOMEM. */
static int kset_add(struct kset *k, const char *key)
{
    if (kset_has(k, key)) return 0;
    if (k->n >= k->nb) { /* load factor 1 */
        size_t nb = k->nb ? k->nb * 2 : 64;
        struct kent **b = calloc(nb, sizeof *b);
        if (!b) return -ENOMEM;
        for (size_t i = 0; i < k->nb; i++) {
            for (struct kent *e = k->b[i], *nx; e; e = nx) {
                nx = e->next;
                e->next = b[e->h & (nb - 1)];
                b[e->h & (nb - 1)] = e;
            }
        }
        free(k->b);
        k->b = b;
        k->nb = nb;
    }
    size_t len = strlen(key);
    struct kent *e = malloc(sizeof *e + len + 1);
    if (!e) return -ENOMEM;
    e->h = hash_str(key);
    memcpy(e->key, key, len + 1);
    e->next = k->b[e->h & (k->nb - 1)];
    k->b[e->h & (k->nb - 1)] = e;
    k->n++;
    return 0;
}

static void kset_del(struct kset *k, const char *key)
{
    if (!k->nb) return;
    uint32_t h = hash_str(key);
    for (struct kent **pp = &k->b[h & (k->nb - 1)]; *pp; pp = &(*pp)->next) {
        struct kent *e = *pp;
        if (e->h == h && !strcmp(e->key, key)) {
            *pp = e->next;
            free(e);
            k->n--;
            return;
        }
    }
}

static void kset_clear(struct kset *k)
{
    for (size_t i = 0; i < k->nb; i++) {
        for (struct kent *e = k->b[i], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
    }
    free(k->b);
    memset(k, 0, sizeof *k);
}

/* ---- spool records ----
 *
 * Payload: a version byte (JNL_REC_VERSION), then fields, integers little-endian, strings as a
 * u16 length and the bytes (0xffff = NULL). The spool's CRC covers them; parsing still checks
 * every length, since a record is outside input to the code that reads it back.
 *   REC_FILL     account symbol trade_id order_id  i64 trade_seq  side qty price
 *                i64 event_time_ms  u32 n  n x (cid rule_id follower symbol side qty
 *                u8 reduce_only order_type skip_reason position_side limit_price)
 *                (version 1 records end each intent at skip_reason; version 3 (only a fill with
 *                placeholders or a resolution, sql/010) goes on: u32 m  m x (rule_id follower
 *                input)  resolve_rule_id resolve_reason)
 *   REC_RESULTS  u32 n  n x (cid u8 status eoid eqty avgp i32 error_code error_msg i64 at_us)
 *   REC_RULE     rule_id status i8 paused
 *   REC_POSITIONS u32 n  n x (i64 taken_at_us account symbol position_side amount source) */

static void w_u8(struct sbuf *b, unsigned v)
{
    char c = (char)(unsigned char)v;
    sb_putn(b, &c, 1);
}

static void w_u64(struct sbuf *b, uint64_t v, int bytes)
{
    char x[8];
    for (int i = 0; i < bytes; i++) x[i] = (char)(unsigned char)(v >> (8 * i));
    sb_putn(b, x, (size_t)bytes);
}

static void w_str(struct sbuf *b, const char *s)
{
    if (!s) {
        w_u64(b, 0xffff, 2);
        return;
    }
    size_t n = strlen(s);
    if (n >= 0xffff) n = 0xfffe; /* never: every field is validated far below this */
    w_u64(b, n, 2);
    sb_putn(b, s, n);
}

struct rd {
    const unsigned char *p;
    size_t n, off;
    bool bad;
};

static uint64_t r_u64(struct rd *r, int bytes)
{
    if (r->bad || r->n - r->off < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += (size_t)bytes;
    return v;
}

/* Copies a string field into dst (cap bytes with the NUL); NULL for a NULL field (or when
 * bad). An embedded NUL or a field too long for dst makes the record bad. */
static char *r_str(struct rd *r, char *dst, size_t cap)
{
    uint64_t n = r_u64(r, 2);
    if (r->bad) return NULL;
    if (n == 0xffff) return NULL;
    if (n >= cap || r->n - r->off < n || memchr(r->p + r->off, 0, n)) {
        r->bad = true;
        return NULL;
    }
    memcpy(dst, r->p + r->off, n);
    dst[n] = '\0';
    r->off += n;
    return dst;
}

static bool fill_has_defers(const struct journal_fill *f)
{
    return f->n_defers || f->resolve_rule_id;
}

static void rec_fill(struct sbuf *b, const struct journal_fill *f, const struct journal_intent *in,
                     size_t n)
{
    sb_reset(b);
    /* Version 2 unless it needs 3: a spool without deferred decisions stays readable as before. */
    w_u8(b, fill_has_defers(f) ? JNL_REC_FILL_DEFERS : JNL_REC_VERSION);
    w_str(b, f->account);
    w_str(b, f->symbol);
    w_str(b, f->trade_id);
    w_str(b, f->order_id && f->order_id[0] ? f->order_id : NULL);
    w_u64(b, (uint64_t)f->trade_seq, 8);
    w_str(b, f->side);
    w_str(b, f->qty);
    w_str(b, f->price);
    w_u64(b, (uint64_t)f->event_time_ms, 8);
    w_u64(b, n, 4);
    for (size_t i = 0; i < n; i++) {
        w_str(b, in[i].client_order_id);
        w_str(b, in[i].rule_id);
        w_str(b, in[i].follower);
        w_str(b, in[i].symbol);
        w_str(b, in[i].side);
        w_str(b, in[i].qty);
        w_u8(b, in[i].reduce_only);
        w_str(b, in[i].order_type);
        w_str(b, in[i].skip_reason);
        w_str(b, in[i].position_side);
        w_str(b, in[i].limit_price);
    }
    if (!fill_has_defers(f)) return;
    w_u64(b, f->n_defers, 4);
    for (size_t i = 0; i < f->n_defers; i++) {
        w_str(b, f->defers[i].rule_id);
        w_str(b, f->defers[i].follower);
        w_str(b, f->defers[i].input);
    }
    w_str(b, f->resolve_rule_id);
    w_str(b, f->resolve_reason);
}

/* A fill read back from the spool: strings in fixed buffers, views into them for the same
 * validation and statements as journal_write_fill. */
struct pintent {
    char cid[JNL_CID_MAX + 1], rule[JNL_NAME_MAX + 1], follower[JNL_NAME_MAX + 1];
    char symbol[JNL_NAME_MAX + 1], side[8], qty[JNL_DEC_MAX + 1], otype[JNL_NAME_MAX + 1];
    char skip[JNL_NAME_MAX + 1], pside[8], lprice[JNL_DEC_MAX + 1];
};
struct pdefer {
    char rule[JNL_NAME_MAX + 1], follower[JNL_NAME_MAX + 1], input[JOURNAL_DEFER_INPUT_MAX + 1];
};
struct pfill {
    char account[JNL_NAME_MAX + 1], symbol[JNL_NAME_MAX + 1], tid[JNL_EOID_MAX + 1];
    char oid[JNL_EOID_MAX + 1], side[8], qty[JNL_DEC_MAX + 1], price[JNL_DEC_MAX + 1];
    char rrule[JNL_NAME_MAX + 1], rreason[JNL_NAME_MAX + 1];
    struct journal_fill f;
    struct pintent *pi;
    struct journal_intent *in;
    size_t n;
    struct pdefer *pd;
    struct journal_defer *dv;
};

static void pfill_free(struct pfill *p)
{
    free(p->pi);
    free(p->in);
    free(p->pd);
    free(p->dv);
    p->pi = NULL;
    p->in = NULL;
    p->pd = NULL;
    p->dv = NULL;
}

/* 0, -EBADMSG (does not parse), -ENOMEM. Only the identity when key_only. */
static int pfill_parse(struct pfill *p, const void *payload, size_t len, bool key_only)
{
    struct rd r = {payload, len, 0, false};
    memset(p, 0, sizeof *p);
    unsigned version = (unsigned)r_u64(&r, 1);
    if (version != 1 && version != JNL_REC_VERSION && version != JNL_REC_FILL_DEFERS) return -EBADMSG;
    p->f.account = r_str(&r, p->account, sizeof p->account);
    p->f.symbol = r_str(&r, p->symbol, sizeof p->symbol);
    p->f.trade_id = r_str(&r, p->tid, sizeof p->tid);
    if (r.bad || !p->f.account || !p->f.symbol || !p->f.trade_id) return -EBADMSG;
    if (key_only) return 0;
    p->f.order_id = r_str(&r, p->oid, sizeof p->oid);
    p->f.trade_seq = (int64_t)r_u64(&r, 8);
    p->f.side = r_str(&r, p->side, sizeof p->side);
    p->f.qty = r_str(&r, p->qty, sizeof p->qty);
    p->f.price = r_str(&r, p->price, sizeof p->price);
    p->f.event_time_ms = (int64_t)r_u64(&r, 8);
    uint64_t n = r_u64(&r, 4);
    if (r.bad || n > (r.n - r.off) / 20) return -EBADMSG; /* an intent takes more than 20 bytes */
    p->n = (size_t)n;
    p->pi = calloc(p->n + 1, sizeof *p->pi);
    p->in = calloc(p->n + 1, sizeof *p->in);
    if (!p->pi || !p->in) {
        pfill_free(p);
        return -ENOMEM;
    }
    for (size_t i = 0; i < p->n; i++) {
        struct pintent *x = &p->pi[i];
        struct journal_intent *y = &p->in[i];
        y->client_order_id = r_str(&r, x->cid, sizeof x->cid);
        y->rule_id = r_str(&r, x->rule, sizeof x->rule);
        y->follower = r_str(&r, x->follower, sizeof x->follower);
        y->symbol = r_str(&r, x->symbol, sizeof x->symbol);
        y->side = r_str(&r, x->side, sizeof x->side);
        y->qty = r_str(&r, x->qty, sizeof x->qty);
        y->reduce_only = r_u64(&r, 1) != 0;
        y->order_type = r_str(&r, x->otype, sizeof x->otype);
        y->skip_reason = r_str(&r, x->skip, sizeof x->skip);
        if (version >= 2) {
            y->position_side = r_str(&r, x->pside, sizeof x->pside);
            y->limit_price = r_str(&r, x->lprice, sizeof x->lprice);
        }
    }
    if (version >= JNL_REC_FILL_DEFERS) {
        uint64_t m = r_u64(&r, 4);
        if (r.bad || m > (r.n - r.off) / 6) { /* a placeholder takes at least 6 bytes */
            pfill_free(p);
            return -EBADMSG;
        }
        p->f.n_defers = (size_t)m;
        p->pd = calloc(m + 1, sizeof *p->pd);
        p->dv = calloc(m + 1, sizeof *p->dv);
        if (!p->pd || !p->dv) {
            pfill_free(p);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m; i++) {
            p->dv[i].rule_id = r_str(&r, p->pd[i].rule, sizeof p->pd[i].rule);
            p->dv[i].follower = r_str(&r, p->pd[i].follower, sizeof p->pd[i].follower);
            p->dv[i].input = r_str(&r, p->pd[i].input, sizeof p->pd[i].input);
        }
        p->f.defers = p->dv;
        p->f.resolve_rule_id = r_str(&r, p->rrule, sizeof p->rrule);
        p->f.resolve_reason = r_str(&r, p->rreason, sizeof p->rreason);
    }
    if (r.bad || r.off != r.n) {
        pfill_free(p);
        return -EBADMSG;
    }
    return 0;
}

static void set_last_error(struct journal *j, const char *prefix, const char *msg)
{
    char m[sizeof j->last_error]; /* msg may be j->last_error itself; cut to fit */
    size_t ml = msg ? strnlen(msg, sizeof m - 1) : 0;
    if (ml) memcpy(m, msg, ml);
    m[ml] = '\0';
    msg = m;
    size_t n = prefix ? strlen(prefix) : 0;
    if (n >= sizeof j->last_error) n = sizeof j->last_error - 1;
    if (n) memcpy(j->last_error, prefix, n);
    copy_msg(j->last_error + n, sizeof j->last_error - n, msg);
}

static void enter(struct journal *j) { j->busy++; }

static void leave(struct journal *j)
{
    if (--j->busy == 0 && j->free_requested && j->st != ST_CLOSED) really_free(j);
}

/* ---- poll handle ---- */

static void poll_free_cb(uv_handle_t *h) { free(h); }

/* recipe: close the poll handle BEFORE any libpq call that may close or replace the socket
 * (PQconnectPoll, PQfinish): libuv deregisters by fd number, and libpq may reuse the number. */
static void poll_close(struct journal *j)
{
    if (!j->poll) return;
    uv_close((uv_handle_t *)j->poll, poll_free_cb);
    j->poll = NULL;
    j->poll_events = 0;
}

static int poll_open(struct journal *j, int events)
{
    int fd = PQsocket(j->conn);
    if (fd < 0) return -EBADF;
    uv_poll_t *p = malloc(sizeof *p);
    if (!p) return -ENOMEM;
    int r = uv_poll_init_socket(j->loop, p, fd);
    if (r) {
        free(p);
        return r;
    }
    p->data = j;
    r = uv_poll_start(p, events, on_poll);
    if (r) {
        uv_close((uv_handle_t *)p, poll_free_cb);
        return r;
    }
    j->poll = p;
    j->poll_events = events;
    return 0;
}

/* Marks the connection for a reset from the loop (never reset inside an API call: that would run
 * callbacks from inside it). */
static void mark_broken(struct journal *j, int err, const char *msg)
{
    if (!j->broken) {
        j->broken = true;
        j->broken_err = err;
        set_last_error(j, NULL, msg);
    }
    uv_timer_start(&j->t_work, on_work, 0, 0);
}

/* recipe: READABLE always (the server may block sending results while we block sending
 * queries), WRITABLE too while PQflush has output left. */
static void poll_update(struct journal *j)
{
    if (!j->poll) return;
    int ev = UV_READABLE | (j->want_write ? UV_WRITABLE : 0);
    if (ev == j->poll_events && uv_is_active((uv_handle_t *)j->poll)) return;
    int r = uv_poll_start(j->poll, ev, on_poll);
    if (r == 0) j->poll_events = ev;
    else mark_broken(j, -EIO, uv_strerror(r));
}

static void flush_out(struct journal *j)
{
    int r = PQflush(j->conn);
    if (r < 0) {
        mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
        return;
    }
    j->want_write = r == 1;
    poll_update(j);
}

/* ---- deadlines and retries ---- */

static uint64_t ms_since(uint64_t t0) { return (uv_hrtime() - t0) / 1000000u; }

static void on_deadline(uv_timer_t *t);
static void io_step(struct journal *j, int status, int events);

/* What the deadline watches: the connect attempt, else the oldest statement in flight (its start,
 * uv_hrtime, and how far its deadline was moved after a loop stall). false: nothing. */
static bool deadline_of(struct journal *j, uint64_t *t0, uint64_t **ext)
{
    if (j->st == ST_CONNECTING && j->conn) {
        *t0 = j->conn_t0;
        *ext = &j->conn_dl_ext;
        return true;
    }
    if ((j->st != ST_SETUP && j->st != ST_READY) || !j->ops_head) return false;
    *t0 = j->ops_head->t0;
    *ext = &j->ops_head->dl_ext;
    return true;
}

static void deadline_arm(struct journal *j)
{
    uint64_t t0, *ext;
    if (!deadline_of(j, &t0, &ext)) {
        uv_timer_stop(&j->t_deadline);
        return;
    }
    uint64_t el = ms_since(t0), due = j->o.timeout_ms + *ext, in = el >= due ? 0 : due - el;
    j->dl_due = uv_now(j->loop) + in; /* what uv_timer_start makes it */
    uv_timer_start(&j->t_deadline, on_deadline, in, 0);
}

/* Reads and handles what the socket holds now, exactly as on_poll would. For timers that judge
 * PostgreSQL by an answer's absence: libuv runs timers BEFORE it polls, so after the loop itself
 * was busy past their time (a fill copied to 10,000 followers, a long reload), the answer can be
 * sitting in the socket unread when they fire. */
static void read_now(struct journal *j)
{
    if (j->conn && (j->st == ST_SETUP || j->st == ST_READY) && !j->broken && !j->free_requested)
        io_step(j, 0, UV_READABLE | (j->want_write ? UV_WRITABLE : 0));
}

static void on_deadline(uv_timer_t *t)
{
    struct journal *j = t->data;
    enter(j);
    /* Fired late by a tenth of the deadline or more: the loop was stalled (timers normally fire
     * within a few ms), for part of the time PostgreSQL was given, or before the statement could
     * even be written out. Such a deadline is moved to a full timeout_ms from now, once per
     * statement (or connect attempt): a PostgreSQL that really stopped answering is still
     * dropped, at worst one period later. */
    unsigned slack = j->o.timeout_ms / 10 ? j->o.timeout_ms / 10 : 1;
    bool stalled = uv_now(t->loop) >= j->dl_due + slack;
    read_now(j); /* answered meanwhile: the deadline moves on to the next statement, if any */
    uint64_t t0, *ext;
    if (!j->broken && !j->free_requested && deadline_of(j, &t0, &ext)) {
        uint64_t el = ms_since(t0);
        if (el < j->o.timeout_ms + *ext) {
            deadline_arm(j);
        } else if (stalled && !*ext) {
            *ext = el; /* due again timeout_ms from now */
            deadline_arm(j);
        } else {
            char msg[128];
            snprintf(msg, sizeof msg, "%s no answer within %u ms",
                     j->st == ST_CONNECTING ? "connect:" : "statement:", j->o.timeout_ms);
            conn_drop(j, -ETIMEDOUT, msg);
        }
    }
    service(j);
    leave(j);
}

static uint64_t rng_next(struct journal *j)
{
    uint64_t x = j->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    j->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void on_retry(uv_timer_t *t);

/* Exponential backoff with "equal jitter": half the delay fixed, half random, so many daemons
 * that lost the same server do not come back in lockstep. */
static void schedule_retry(struct journal *j)
{
    uint64_t d = j->o.backoff_min_ms;
    for (unsigned i = 0; i < j->attempt && d < j->o.backoff_max_ms; i++) d *= 2;
    if (d > j->o.backoff_max_ms) d = j->o.backoff_max_ms;
    d = d / 2 + rng_next(j) % (d / 2 + 1);
    j->attempt++;
    uv_timer_start(&j->t_retry, on_retry, d, 0);
}

/* ---- connect ---- */

static void conn_start(struct journal *j)
{
    j->st = ST_CONNECTING;
    j->in_query = j->want_write = j->broken = false;
    j->conn_t0 = uv_hrtime();
    j->conn_dl_ext = 0;
    j->conn = PQconnectStart(j->conninfo);
    if (!j->conn) {
        conn_drop(j, -ENOMEM, "connect: out of memory");
        return;
    }
    if (PQstatus(j->conn) == CONNECTION_BAD) {
        conn_drop(j, -ENOTCONN, PQerrorMessage(j->conn));
        return;
    }
    PQsetNoticeProcessor(j->conn, notice_ignore, NULL);
    if (PQsetnonblocking(j->conn, 1) != 0) {
        conn_drop(j, -ENOTCONN, PQerrorMessage(j->conn));
        return;
    }
    /* recipe: wait for writable first, as if PQconnectPoll had said PGRES_POLLING_WRITING. */
    int r = poll_open(j, UV_WRITABLE);
    if (r) {
        conn_drop(j, r, uv_strerror(r));
        return;
    }
    deadline_arm(j);
}

static void on_retry(uv_timer_t *t)
{
    struct journal *j = t->data;
    enter(j);
    if (j->st == ST_WAIT && !j->free_requested) conn_start(j);
    service(j);
    leave(j);
}

static struct op *op_new(enum op_kind kind, size_t n)
{
    struct op *op = calloc(1, sizeof *op + n * sizeof(bool));
    if (!op) return NULL;
    op->kind = kind;
    op->n = n;
    op->intent_new = (bool *)(op + 1);
    op->t0 = uv_hrtime();
    return op;
}

static void op_free(struct op *op)
{
    if (!op) return;
    PQclear(op->rows_res);
    free(op->errmsg);
    free(op->key);
    free(op->payload);
    free(op);
}

static void op_push(struct journal *j, struct op *op)
{
    bool first = !j->ops_head;
    if (j->ops_tail) j->ops_tail->next = op;
    else j->ops_head = op;
    j->ops_tail = op;
    j->inflight_stmts += (size_t)op->nq;
    if (first) deadline_arm(j);
}

static struct op *op_pop(struct journal *j)
{
    struct op *op = j->ops_head;
    if (!op) return NULL;
    j->ops_head = op->next;
    if (!j->ops_head) j->ops_tail = NULL;
    op->next = NULL;
    j->inflight_stmts -= (size_t)op->nq;
    return op;
}

static void session_setup(struct journal *j)
{
    const char *set = j->o.durability == JOURNAL_DURABILITY_OS ? "SET synchronous_commit = off"
                                                               : "SET synchronous_commit = on";
    struct op *op = op_new(OP_SETUP, 0);
    if (!op) {
        conn_drop(j, -ENOMEM, "session setup: out of memory");
        return;
    }
    op->nq = j->sp ? 11 : 9;
    const char *idp[1] = {j->spool_id};
    /* The hot statements are prepared once; planning them again for each of the first
     * executions (PostgreSQL's custom plans) cost 0.6-4 ms per fill in bind alone here, and their
     * parameters never change the best plan (unique-key inserts and lookups). With a spool, the
     * last statement reads how far it was applied (before any replay: the pipeline keeps order).
     * random_page_cost: the journal's lookups hit B-tree pages that stay cached, and at the
     * default 4 the results UPDATE's plan (made from the statistics of the moment) scanned the
     * whole month's partition into a hash join instead: 110 us an updated row at 20,000 rows
     * and growing, against 58 us through the index (1,000-order fills, the journal's own
     * statements, PostgreSQL 15 here). */
    if (!PQenterPipelineMode(j->conn) ||
        !PQsendQueryParams(j->conn, set, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsendQueryParams(j->conn, "SET plan_cache_mode = force_generic_plan", 0, NULL, NULL,
                           NULL, NULL, 0) ||
        !PQsendQueryParams(j->conn, "SET random_page_cost = 1.1", 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsendPrepare(j->conn, "jnl_fill", SQL_FILL, 0, NULL) ||
        !PQsendPrepare(j->conn, "jnl_intents", SQL_INTENTS, 0, NULL) ||
        !PQsendPrepare(j->conn, "jnl_fill_defer", SQL_FILL_DEFER, 0, NULL) ||
        !PQsendPrepare(j->conn, "jnl_intents_resolve", SQL_INTENTS_RESOLVE, 0, NULL) ||
        !PQsendPrepare(j->conn, "jnl_results", SQL_RESULTS, 0, NULL) ||
        !PQsendPrepare(j->conn, "jnl_positions", SQL_POSITIONS, 0, NULL) ||
        (j->sp && (!PQsendPrepare(j->conn, "jnl_applied", SQL_APPLIED_SET, 0, NULL) ||
                   !PQsendQueryParams(j->conn, SQL_APPLIED_GET, 1, NULL, idp, NULL, NULL, 0))) ||
        !PQpipelineSync(j->conn)) {
        op_free(op);
        conn_drop(j, -ENOTCONN, PQerrorMessage(j->conn));
        return;
    }
    j->st = ST_SETUP;
    op_push(j, op);
    int r = poll_open(j, UV_READABLE);
    if (r) {
        conn_drop(j, r, uv_strerror(r));
        return;
    }
    flush_out(j);
}

static void connect_step(struct journal *j)
{
    poll_close(j); /* recipe: before EVERY PQconnectPoll, and a fresh one after */
    int r = 0;
    switch (PQconnectPoll(j->conn)) {
    case PGRES_POLLING_READING:
        r = poll_open(j, UV_READABLE);
        break;
    case PGRES_POLLING_WRITING:
    case PGRES_POLLING_ACTIVE:
        r = poll_open(j, UV_WRITABLE);
        break;
    case PGRES_POLLING_OK:
        session_setup(j);
        return;
    case PGRES_POLLING_FAILED:
    default:
        conn_drop(j, -ENOTCONN, PQerrorMessage(j->conn));
        return;
    }
    if (r) conn_drop(j, r, uv_strerror(r));
}

/* ---- results queue ---- */

static struct jres *q_at(struct journal *j, size_t i) { return &j->q[(j->qhead + i) % j->qcap]; }

static int q_grow(struct journal *j)
{
    size_t cap = j->qcap ? j->qcap * 2 : 64;
    struct jres *q = malloc(cap * sizeof *q);
    if (!q) return -ENOMEM;
    for (size_t i = 0; i < j->qlen; i++) q[i] = *q_at(j, i);
    free(j->q);
    j->q = q;
    j->qcap = cap;
    j->qhead = 0;
    return 0;
}

static void q_pop(struct journal *j, size_t n)
{
    for (size_t i = 0; i < n && j->qlen; i++) {
        free(q_at(j, 0)->emsg);
        j->qhead = (j->qhead + 1) % j->qcap;
        j->qlen--;
    }
}

/* Adds queue index i to the batch's id set; false when the id is already in the batch. */
static bool hset_add(struct journal *j, size_t i)
{
    const char *cid = q_at(j, i)->cid;
    size_t mask = j->hcap - 1;
    for (size_t k = hash_str(cid) & mask;; k = (k + 1) & mask) {
        uint32_t v = j->hset[k];
        if (!v) {
            j->hset[k] = (uint32_t)i + 1;
            return true;
        }
        if (!strcmp(q_at(j, v - 1)->cid, cid)) return false;
    }
}

/* Appends one result to the UPDATE's array parameters. */
static void res_arr_add(struct sbuf *b, const struct jres *e)
{
    char num[32], ts[96];
    arr_str(&b[0], e->cid);
    arr_str(&b[1], status_names[e->status]);
    if (e->eoid[0])
        arr_str(&b[2], e->eoid);
    else
        arr_raw(&b[2], "NULL");
    arr_raw(&b[3], e->eqty[0] ? e->eqty : "NULL");
    arr_raw(&b[4], e->avgp[0] ? e->avgp : "NULL");
    snprintf(num, sizeof num, "%d", e->ecode);
    arr_raw(&b[5], e->ecode ? num : "NULL");
    arr_str(&b[6], e->emsg);
    fmt_ts_us(ts, sizeof ts, e->at_us);
    arr_str(&b[7], ts);
}

/* Sends the head of the queue as one UPDATE: at most batch_size results, stopping before a
 * client order id already in the batch (its later state goes in the next statement, which the
 * server runs after this one commits, so the order of states is kept). */
static void results_send(struct journal *j)
{
    if (j->st != ST_READY || j->broken || j->spooling || j->res_inflight || !j->qlen) return;
    size_t n = 0, max = j->o.batch_size < j->qlen ? j->o.batch_size : j->qlen;
    memset(j->hset, 0, j->hcap * sizeof *j->hset);
    struct sbuf *b = j->pb;
    for (int k = 0; k < JNL_RES_PARAMS; k++) arr_open(&b[k]);
    for (; n < max; n++) {
        if (!hset_add(j, n)) break;
        res_arr_add(b, q_at(j, n));
    }
    const char *params[JNL_RES_PARAMS];
    bool oom = false;
    for (int k = 0; k < JNL_RES_PARAMS; k++) {
        arr_close(&b[k]);
        oom |= b[k].oom;
        params[k] = b[k].p;
    }
    if (oom) return; /* retried at the next service() */
    struct op *op = op_new(OP_RESULTS, 0);
    if (!op) return;
    op->nq = 1;
    op->nres = n;
    if (!PQsendQueryPrepared(j->conn, "jnl_results", JNL_RES_PARAMS, params, NULL, NULL, 0) ||
        !PQpipelineSync(j->conn)) {
        op_free(op);
        mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
        return;
    }
    op_push(j, op);
    j->qsent = n;
    j->res_inflight = true;
    flush_out(j);
}

static void rules_send(struct journal *j)
{
    for (struct jrule *r = j->rules_head; r; r = r->next) {
        if (j->st != ST_READY || j->broken || j->spooling) return;
        if (r->sent) continue;
        const char *params[3] = {r->id, r->status, r->paused < 0 ? NULL : r->paused ? "true" : "false"};
        struct op *op = op_new(OP_RULE, 0);
        if (!op) return;
        op->nq = 1;
        op->rule = r;
        if (!PQsendQueryParams(j->conn, SQL_RULE, 3, NULL, params, NULL, NULL, 0) ||
            !PQpipelineSync(j->conn)) {
            op_free(op);
            mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
            return;
        }
        r->sent = true;
        op_push(j, op);
        flush_out(j);
    }
}

/* ---- position snapshots ---- */

static void pos_arr_add(struct sbuf *b, const struct jpos *e)
{
    char ts[96];
    fmt_ts_us(ts, sizeof ts, e->at_us);
    arr_str(&b[0], ts);
    arr_str(&b[1], e->account);
    arr_str(&b[2], e->symbol);
    arr_str(&b[3], e->pside);
    arr_raw(&b[4], e->amount);
    arr_str(&b[5], e->source);
}

/* The array parameters of one INSERT of v[0..n). false on out of memory. */
static bool pos_params(struct journal *j, const struct jpos *v, size_t n, const char **params)
{
    struct sbuf *b = j->pb;
    bool oom = false;
    for (int k = 0; k < JNL_POS_PARAMS; k++) arr_open(&b[k]);
    for (size_t i = 0; i < n; i++) pos_arr_add(b, &v[i]);
    for (int k = 0; k < JNL_POS_PARAMS; k++) {
        arr_close(&b[k]);
        oom |= b[k].oom;
        params[k] = b[k].p;
    }
    return !oom;
}

static void pq_remove(struct journal *j, size_t first, size_t n)
{
    if (first + n > j->pqlen) n = j->pqlen - first;
    memmove(&j->pq[first], &j->pq[first + n], (j->pqlen - first - n) * sizeof *j->pq);
    j->pqlen -= n;
}

/* Like results_send: the head of the queue (at most batch_size) as one INSERT, one in flight. */
static void positions_send(struct journal *j)
{
    if (j->st != ST_READY || j->broken || j->spooling || j->pos_inflight || !j->pqlen) return;
    size_t n = j->pqlen < j->o.batch_size ? j->pqlen : j->o.batch_size;
    const char *params[JNL_POS_PARAMS];
    if (!pos_params(j, j->pq, n, params)) return; /* retried at the next service() */
    struct op *op = op_new(OP_POSITIONS, 0);
    if (!op) return;
    op->nq = 1;
    op->nres = n;
    if (!PQsendQueryPrepared(j->conn, "jnl_positions", JNL_POS_PARAMS, params, NULL, NULL, 0) ||
        !PQpipelineSync(j->conn)) {
        op_free(op);
        mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
        return;
    }
    op_push(j, op);
    j->pqsent = n;
    j->pos_inflight = true;
    flush_out(j);
}

/* ---- partition upkeep ---- */

static void on_parts(uv_timer_t *t);

/* Sends the partition check when it is due and the pipeline is idle (or it has waited too long
 * for an idle moment): normally a no-op statement, rarely the creation of next months' table. */
static void parts_send(struct journal *j)
{
    if (!j->parts_due || j->parts_inflight || j->st != ST_READY || j->broken || spool_degraded(j) ||
        j->rp_op)
        return;
    if (j->ops_head && ms_since(j->parts_due_t0) < JNL_PARTS_FORCE_MS) return;
    char ahead[16];
    snprintf(ahead, sizeof ahead, "%u", j->o.partitions_ahead);
    const char *p[1] = {ahead};
    struct op *op = op_new(OP_PARTS, 0);
    if (!op) return;
    op->nq = 2;
    if (!PQsendQueryParams(j->conn, SQL_PARTS_LOCK, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsendQueryParams(j->conn, SQL_PARTS, 1, NULL, p, NULL, NULL, 0) ||
        !PQpipelineSync(j->conn)) {
        op_free(op);
        mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
        return;
    }
    op_push(j, op);
    j->parts_due = false;
    j->parts_inflight = true;
    flush_out(j);
}

static void on_parts(uv_timer_t *t)
{
    struct journal *j = t->data;
    enter(j);
    if (!j->parts_due) j->parts_due_t0 = uv_hrtime();
    j->parts_due = true;
    service(j);
    leave(j);
}

/* ---- completion ---- */

static void spool_error(struct journal *j, const char *what, int rc);

static void waiters_check(struct journal *j)
{
    uint64_t oldest = j->qlen ? q_at(j, 0)->seq : j->res_seq;
    bool synced = false;
    int sync_rc = 0;
    while (j->w_head && !j->free_requested) {
        struct waiter *w = j->w_head;
        if (oldest < w->res_target || j->fills_finished < w->fill_target ||
            j->pos_seq - j->pqlen < w->pos_target)
            break;
        if (!synced && j->sp && j->spool_os) {
            /* "Finished" includes "in the spool": make that durable first. */
            synced = true;
            if ((sync_rc = spool_sync(j->sp)) < 0) spool_error(j, "sync", sync_rc);
        }
        j->w_head = w->next;
        if (!j->w_head) j->w_tail = NULL;
        int status = j->err_events > w->err_mark || sync_rc < 0 ? -EIO : 0;
        w->cb(w->ud, status);
        free(w);
    }
}

static void fill_callback(struct journal *j, struct op *op, int status, const char *errmsg)
{
    struct journal_fill_result r = {.status = status, .errmsg = status ? errmsg : NULL,
                                    .fill_new = status ? false : op->fill_new,
                                    .intent_new = op->intent_new, .n = op->n};
    j->inflight_fills--;
    j->fills_finished++;
    if (!status && !op->spool_dup) {
        /* Placeholders are inserted only with a new fill; a resolution is written (or spooled)
         * with the write. Committed or durable in the spool alike: pending in the journal. */
        if (op->fill_new) j->s.defers_pending += op->n_defers;
        /* From the spool, a resolution counts when recorded: its replay applies it once. */
        if ((op->spooled ? op->resolves : op->resolved) && j->s.defers_pending)
            j->s.defers_pending--;
    }
    if (status) {
        memset(op->intent_new, 0, op->n * sizeof(bool));
        j->s.fills_failed++;
        j->err_events++;
    } else if (op->spooled) {
        /* counted by the spool's counters */
    } else {
        j->s.fills_written++;
        if (op->fill_new) j->s.fills_new++;
        for (size_t i = 0; i < op->n; i++) j->s.intents_new += op->intent_new[i];
    }
    op->cb(op->ud, &r);
}

/* journal_load_defers answered: its callback, once (an error is not retried: the caller
 * decides). */
static void defers_done(struct journal *j, struct op *op)
{
    journal_defers_cb cb = j->dl_cb;
    void *ud = j->dl_ud;
    j->dl_cb = NULL;
    j->dl_sent = false;
    /* Every placeholder still pending: the load runs before this run writes any (the copier
     * reads them back before any leader stream opens), and once the spool is drained. */
    if (!op->failed && !op->bad_reply && op->rows_res)
        j->s.defers_pending = (uint64_t)PQntuples(op->rows_res);
    if (!cb) return;
    if (op->failed || op->bad_reply || !op->rows_res) {
        cb(ud, op->failed ? -EIO : -EPROTO, op->errmsg ? op->errmsg : "unexpected reply", NULL, 0);
        return;
    }
    const PGresult *r = op->rows_res;
    size_t n = (size_t)PQntuples(r);
    struct journal_pending_defer *v = calloc(n + 1, sizeof *v);
    if (!v) {
        cb(ud, -ENOMEM, "out of memory", NULL, 0);
        return;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (struct journal_pending_defer){PQgetvalue(r, (int)i, 0), PQgetvalue(r, (int)i, 1),
                                              PQgetvalue(r, (int)i, 2), PQgetvalue(r, (int)i, 3),
                                              PQgetvalue(r, (int)i, 4), PQgetvalue(r, (int)i, 5)};
    cb(ud, 0, NULL, v, n);
    free(v);
}

/* Sends journal_load_defers' sync group once PostgreSQL holds everything the spool held. */
static void defers_send(struct journal *j)
{
    if (!j->dl_cb || j->dl_sent || j->st != ST_READY || j->broken || j->free_requested ||
        (j->sp && j->spooling))
        return;
    struct op *op = op_new(OP_DEFERS, 0);
    if (!op) return; /* again at the next service() */
    op->nq = 2;
    if (!PQsendQueryParams(j->conn, SQL_DEFERS_DROP, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQsendQueryParams(j->conn, SQL_DEFERS_LOAD, 0, NULL, NULL, NULL, NULL, 0) ||
        !PQpipelineSync(j->conn)) {
        op_free(op);
        mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
        return;
    }
    j->dl_sent = true;
    op_push(j, op);
    flush_out(j);
}

int journal_load_defers(struct journal *j, journal_defers_cb cb, void *ud)
{
    if (!j || !cb) return -EINVAL;
    if (j->free_requested) return -ECANCELED;
    if (j->dl_cb || j->dl_sent) return -EBUSY;
    j->dl_cb = cb;
    j->dl_ud = ud;
    uv_timer_start(&j->t_work, on_work, 0, 0); /* sent from the loop (service) */
    return 0;
}

void journal_load_defers_cancel(struct journal *j)
{
    if (j) j->dl_cb = NULL; /* an answer in flight is dropped (defers_done) */
}

/* The sync of the head op arrived: its transaction is committed (or rolled back). */
static void op_complete(struct journal *j)
{
    struct op *op = op_pop(j);
    uint64_t us = (uv_hrtime() - op->t0) / 1000u;
    j->s.writes++;
    j->s.write_us_last = us;
    j->s.write_us_total += us;
    if (j->o.on_write && (op->kind == OP_FILL || op->kind == OP_RESULTS || op->kind == OP_REPLAY))
        j->o.on_write(j->o.ud,
                      op->kind == OP_FILL      ? JOURNAL_WRITE_FILL
                      : op->kind == OP_RESULTS ? JOURNAL_WRITE_RESULTS
                                               : JOURNAL_WRITE_SPOOL,
                      us);
    if (us > (uint64_t)j->o.slow_ms * 1000u) {
        j->s.slow_statements++;
        j->s.slow_us_last = us;
    }
    if (op->answered != op->nq && !op->failed) {
        op->bad_reply = true;
        if (!op->errmsg) op->errmsg = strdup("sync without every statement's result");
    }
    if (op->failed) j->s.statement_errors++;
    if (op->failed || op->bad_reply) set_last_error(j, NULL, op->errmsg ? op->errmsg : "error");

    switch (op->kind) {
    case OP_SETUP:
        if (op->failed || op->bad_reply) {
            char msg[600];
            snprintf(msg, sizeof msg, "session setup (has journal_migrate run?): %s",
                     op->errmsg ? op->errmsg : "error");
            op_free(op);
            conn_drop(j, -EIO, msg);
            return;
        }
        j->st = ST_READY;
        j->attempt = 0;
        j->s.connects++;
        if (j->sp) spool_session_start(j, op);
        if (j->o.on_state) j->o.on_state(j->o.ud, true, NULL);
        break;
    case OP_FILL:
        if (op->detached) break; /* answered from the spool already; replay re-applies it */
        if (op->failed) fill_callback(j, op, -EIO, j->last_error);
        else if (op->bad_reply) fill_callback(j, op, -EPROTO, j->last_error);
        else fill_callback(j, op, 0, NULL);
        break;
    case OP_RESULTS:
        j->res_inflight = false;
        j->qsent = 0;
        if (op->failed || op->bad_reply) {
            /* Not retried: a refused batch would be refused again and block every later result.
             * Rows left behind keep a non-final status, which start-up reconcile resolves.
             * SPOOL SEAM: a later issue can hand these results to the spool instead. */
            j->s.results_dropped += op->nres;
            j->err_events++;
        } else {
            j->s.results_written += op->rows;
            j->s.results_stale += op->nres - (op->rows < op->nres ? op->rows : op->nres);
        }
        q_pop(j, op->nres);
        break;
    case OP_RULE: {
        /* Written, or refused (would be refused again): either way it leaves the queue. */
        struct jrule **pp = &j->rules_head;
        while (*pp && *pp != op->rule) pp = &(*pp)->next;
        if (*pp) {
            *pp = op->rule->next;
            free(op->rule);
        }
        if (op->failed || op->bad_reply) j->err_events++;
        break;
    }
    case OP_REPLAY:
        replay_done(j, op);
        break;
    case OP_DEFERS:
        defers_done(j, op);
        break;
    case OP_POSITIONS:
        j->pos_inflight = false;
        j->pqsent = 0;
        if (op->failed || op->bad_reply) {
            j->s.positions_dropped += op->nres; /* refused: would be refused again */
            j->err_events++;
        } else {
            j->s.positions_written += op->rows;
        }
        pq_remove(j, 0, op->nres);
        break;
    case OP_PARTS:
        j->parts_inflight = false;
        j->s.partition_checks++;
        if (op->failed || op->bad_reply) {
            j->s.partition_check_failures++;
            uv_timer_start(&j->t_parts, on_parts,
                           j->o.partitions_every_ms < JNL_PARTS_RETRY_MS ? j->o.partitions_every_ms
                                                                         : JNL_PARTS_RETRY_MS, 0);
        } else {
            j->s.partitions_created += op->rows;
            uv_timer_start(&j->t_parts, on_parts, j->o.partitions_every_ms, 0);
        }
        break;
    }
    op_free(op);
    deadline_arm(j);
}

/* Statement 1's reply: a row when the fill is new. */
static void fill_row(struct op *op, const PGresult *r)
{
    if (PQntuples(r) > 1 || PQnfields(r) != 1) {
        op->bad_reply = true;
        return;
    }
    op->fill_new = PQntuples(r) == 1;
}

/* Statement 2's reply: fills matched (must be 1), and "1,3" = positions of new intents; with a
 * resolution, how many placeholders it resolved (0 or 1). */
static void intents_row(struct op *op, const PGresult *r)
{
    if (PQntuples(r) != 1 || PQnfields(r) != (op->resolves ? 3 : 2) ||
        strcmp(PQgetvalue(r, 0, 0), "1") != 0)
        goto bad;
    if (op->resolves) {
        const char *k = PQgetvalue(r, 0, 2);
        if (strcmp(k, "0") != 0 && strcmp(k, "1") != 0) goto bad;
        op->resolved = k[0] == '1';
    }
    if (PQgetisnull(r, 0, 1)) return;
    const char *s = PQgetvalue(r, 0, 1);
    while (*s) {
        char *end;
        unsigned long long k = strtoull(s, &end, 10);
        if (end == s || k < 1 || k > op->n || (*end && *end != ',')) goto bad;
        op->intent_new[k - 1] = true;
        s = *end ? end + 1 : end;
    }
    return;
bad:
    op->bad_reply = true;
}

/* The setup's last statement with a spool: our row of spool_applied, if any. */
static void applied_row(struct op *op, const PGresult *r)
{
    if (PQnfields(r) != 1 || PQntuples(r) > 1) {
        op->bad_reply = true;
        return;
    }
    if (PQntuples(r) == 0) return;
    char *end;
    const char *v = PQgetvalue(r, 0, 0);
    unsigned long long seq = strtoull(v, &end, 10);
    if (end == v || *end) {
        op->bad_reply = true;
        return;
    }
    op->have_applied = true;
    op->applied_seq = seq;
}

static void op_result(struct op *op, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    op->answered++;
    switch (st) {
    case PGRES_COMMAND_OK:
        if (op->kind == OP_RESULTS || op->kind == OP_POSITIONS)
            op->rows = strtoull(PQcmdTuples(r), NULL, 10);
        else if (op->kind == OP_FILL) op->bad_reply = true;
        break;
    case PGRES_TUPLES_OK:
        if (op->kind == OP_FILL && op->answered == 1) fill_row(op, r);
        else if (op->kind == OP_FILL && op->answered == 2) intents_row(op, r);
        else if (op->kind == OP_SETUP && op->answered == op->nq) applied_row(op, r);
        else if (op->kind == OP_PARTS && op->answered == 2 && PQntuples(r) == 1)
            op->rows = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        else if (op->kind == OP_DEFERS && op->answered == 2 && PQnfields(r) == 6 && !op->rows_res) {
            op->rows_res = r; /* the callback reads it; op_free clears it */
            return;
        }
        else if (op->kind != OP_REPLAY && op->kind != OP_PARTS) op->bad_reply = true;
        break;
    case PGRES_PIPELINE_ABORTED:
        op->failed = true;
        if (!op->errmsg) op->errmsg = strdup("aborted after an earlier error in its sync group");
        break;
    default:
        op->failed = true;
        if (!op->errmsg) {
            char m[512];
            copy_msg(m, sizeof m, PQresultErrorMessage(r));
            op->errmsg = strdup(m[0] ? m : PQresStatus(st));
            const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(op->sqlstate, sizeof op->sqlstate, "%s", ss ? ss : "");
        }
        break;
    }
    if (op->bad_reply) {
        memset(op->intent_new, 0, op->n * sizeof(bool));
        if (!op->errmsg) op->errmsg = strdup("unexpected reply to a journal statement");
    }
    PQclear(r);
}

/* recipe: each statement's result is followed by a NULL; PGRES_PIPELINE_SYNC is not; with nothing
 * outstanding PQgetResult returns NULL with PQisBusy 0. So a NULL either ends a statement (when
 * one was open) or means "nothing more for now". */
static void drain(struct journal *j)
{
    while (j->conn && !j->broken && !j->free_requested && !PQisBusy(j->conn)) {
        PGresult *r = PQgetResult(j->conn);
        if (!r) {
            if (j->in_query) {
                j->in_query = false;
                continue;
            }
            break;
        }
        if (!j->ops_head) {
            PQclear(r);
            conn_drop(j, -EPROTO, "a result with no statement outstanding");
            return;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            j->in_query = false;
            op_complete(j);
            continue;
        }
        j->in_query = true;
        op_result(j->ops_head, r);
    }
}

static void io_step(struct journal *j, int status, int events)
{
    if (status < 0 || (events & UV_WRITABLE)) {
        flush_out(j);
        if (j->broken) return;
    }
    if (status < 0 || (events & UV_READABLE)) {
        if (!PQconsumeInput(j->conn)) {
            conn_drop(j, -ECONNRESET, PQerrorMessage(j->conn));
            return;
        }
        drain(j);
        if (!j->conn || j->free_requested) return;
    }
    if (PQstatus(j->conn) == CONNECTION_BAD) {
        conn_drop(j, -ECONNRESET, PQerrorMessage(j->conn));
        return;
    }
    poll_update(j);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct journal *j = h->data;
    enter(j);
    if (j->st == ST_CONNECTING) connect_step(j);
    else if (j->conn) io_step(j, status, events);
    service(j);
    leave(j);
}

/* Connection lost, refused, timed out or reset: fail the fills in flight (their outcome is
 * unknown, so the caller must not send their intents), put the results in flight back at the
 * head of the queue (re-applying them is harmless), and retry after a backoff. */
static void conn_drop(struct journal *j, int err, const char *msg)
{
    bool was_up = j->st == ST_READY;
    set_last_error(j, "PostgreSQL connection: ", msg);
    poll_close(j);
    if (j->conn) PQfinish(j->conn);
    j->conn = NULL;
    struct op *ops = j->ops_head;
    j->ops_head = j->ops_tail = NULL;
    j->inflight_stmts = 0;
    j->res_inflight = false;
    j->qsent = 0;
    j->pos_inflight = false; /* resent when back: the insert is idempotent */
    j->pqsent = 0;
    if (j->parts_inflight) {
        j->parts_inflight = false;
        j->parts_due = true;
    }
    for (struct jrule *r = j->rules_head; r; r = r->next) r->sent = false; /* resent when back */
    /* A change superseded by a later one in the spool is not resent. */
    for (struct jrule **pp = &j->rules_head; *pp;) {
        struct jrule *r = *pp;
        if (r->superseded) {
            *pp = r->next;
            free(r);
        } else {
            pp = &r->next;
        }
    }
    j->rp_op = NULL; /* its batch rolled back or committed: the next session reads spool_applied */
    j->dl_sent = false; /* journal_load_defers: asked again in the next session */
    j->in_query = j->want_write = j->broken = false;
    j->st = ST_WAIT;
    uv_timer_stop(&j->t_deadline);
    uv_timer_stop(&j->t_slow);
    if (was_up) j->s.disconnects++;
    else j->s.connect_failures++;
    schedule_retry(j);

    char emsg[sizeof j->last_error];
    snprintf(emsg, sizeof emsg, "%s", j->last_error);
    int ferr = err == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
    /* With a spool, fills in flight go there: their outcome in PostgreSQL is unknown, but nothing
     * of them was sent, and the replay's unique keys absorb a commit that did happen. */
    size_t nf = 0;
    for (struct op *op = ops; op; op = op->next)
        nf += op->kind == OP_FILL && !op->detached && op->payload;
    struct op **v = nf && j->sp && !j->free_requested ? calloc(nf, sizeof *v) : NULL;
    if (v) {
        size_t k = 0;
        for (struct op *op = ops; op; op = op->next)
            if (op->kind == OP_FILL && !op->detached && op->payload) v[k++] = op;
        char why[600];
        snprintf(why, sizeof why, "PostgreSQL connection lost with fills in flight: %s", emsg);
        divert_ops(j, v, k, why);
        free(v);
    }
    while (ops) {
        struct op *op = ops;
        ops = op->next;
        if (op->kind == OP_FILL && !op->detached)
            fill_callback(j, op, ferr, emsg); /* even after journal_free: exactly one call each */
        op_free(op);
    }
    if (j->o.on_state && !j->free_requested) j->o.on_state(j->o.ud, false, emsg);
}

static void done_deliver(struct journal *j);
static void spool_queues(struct journal *j);
static void replay_step(struct journal *j);
static void spool_notify(struct journal *j);

/* End of every loop callback: deferred resets, spool work, results to send, flushes to report. */
static void service(struct journal *j)
{
    if (j->free_requested) return;
    if (j->broken && j->conn) conn_drop(j, j->broken_err, j->last_error);
    j->broken = false;
    if (j->free_requested) return;
    done_deliver(j);
    if (j->free_requested) return;
    if (j->sp) {
        spool_queues(j);
        if (!j->o.write_ahead || j->rp_kicked || j->st != ST_READY || j->broken) {
            j->rp_kicked = false;
            replay_step(j);
        } else if (!uv_is_active((uv_handle_t *)&j->t_rpk)) {
            uv_timer_start(&j->t_rpk, on_rp_kick, 1, 0);
        }
    }
    results_send(j);
    positions_send(j);
    rules_send(j);
    parts_send(j);
    defers_send(j);
    waiters_check(j);
    spool_notify(j);
}

static void on_rp_kick(uv_timer_t *t)
{
    struct journal *j = t->data;
    enter(j);
    j->rp_kicked = true;
    service(j);
    leave(j);
}

static void on_work(uv_timer_t *t)
{
    struct journal *j = t->data;
    enter(j);
    service(j);
    leave(j);
}

/* ---- fills: validation and statements (direct writes and replay) ---- */

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct client order ids, or the statement would report a duplicate as "new" twice. n is the
 * number of copy rules on one leader: pairwise for a few, sorted beyond (pairwise, 10,000
 * followers made it 50 million strcmp per fill, half a second of the loop). */
static bool cids_distinct(const struct journal_intent *in, size_t n)
{
    const char **v = n > 16 ? malloc(n * sizeof(*v)) : NULL;
    bool ok = true;
    if (!v) { /* few, or no memory: pairwise */
        for (size_t i = 1; i < n; i++)
            for (size_t k = 0; k < i; k++)
                if (!strcmp(in[k].client_order_id, in[i].client_order_id)) return false;
        return true;
    }
    for (size_t i = 0; i < n; i++) v[i] = in[i].client_order_id;
    qsort(v, n, sizeof(*v), cmp_str_ptr);
    for (size_t i = 1; i < n && ok; i++) ok = strcmp(v[i - 1], v[i]) != 0;
    free(v);
    return ok;
}

static bool fill_valid(const struct journal_fill *f, const struct journal_intent *in, size_t n)
{
    if (!valid_text(f->account, JNL_NAME_MAX, false) || !valid_text(f->symbol, JNL_NAME_MAX, false) ||
        !valid_id(f->trade_id) || (f->order_id && f->order_id[0] && !valid_id(f->order_id)) ||
        f->trade_seq < 0 || !valid_side(f->side) || !valid_decimal(f->qty) ||
        !decimal_positive(f->qty) || !valid_decimal(f->price) || !decimal_positive(f->price) ||
        f->event_time_ms <= 0 || f->event_time_ms > JNL_MAX_TS_MS)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct journal_intent *x = &in[i];
        if (!valid_cid(x->client_order_id) || !valid_text(x->rule_id, JNL_NAME_MAX, false) ||
            !valid_text(x->follower, JNL_NAME_MAX, false) ||
            !valid_text(x->symbol, JNL_NAME_MAX, false) || !valid_side(x->side) ||
            !valid_decimal(x->qty) || !valid_text(x->order_type, JNL_NAME_MAX, false) ||
            (x->skip_reason && !valid_text(x->skip_reason, JNL_NAME_MAX, true)) ||
            (x->position_side && strcmp(x->position_side, "BOTH") && strcmp(x->position_side, "LONG") &&
             strcmp(x->position_side, "SHORT")) ||
            (x->limit_price && (!valid_decimal(x->limit_price) || !decimal_positive(x->limit_price))))
            return false;
    }
    if (f->n_defers && !f->defers) return false;
    for (size_t i = 0; i < f->n_defers; i++) {
        const struct journal_defer *d = &f->defers[i];
        if (!valid_text(d->rule_id, JNL_NAME_MAX, false) || !valid_text(d->follower, JNL_NAME_MAX, false) ||
            !valid_text(d->input, JOURNAL_DEFER_INPUT_MAX, true))
            return false;
    }
    if (f->resolve_rule_id && !valid_text(f->resolve_rule_id, JNL_NAME_MAX, false)) return false;
    if (f->resolve_reason && (!f->resolve_rule_id || !valid_text(f->resolve_reason, JNL_NAME_MAX, true)))
        return false;
    return cids_distinct(in, n);
}

/* Sends the fill's two statements (no sync). 0; -ENOMEM with nothing sent; -ENOTCONN when libpq
 * refused (the connection is marked broken). */
static int fill_send(struct journal *j, const struct journal_fill *f,
                     const struct journal_intent *in, size_t n)
{
    struct sbuf *b = j->pb;
    char seq[24], ts[96], att[24];
    snprintf(seq, sizeof seq, "%" PRId64, f->trade_seq);
    snprintf(att, sizeof att, "%" PRId64, (int64_t)(f->attempt & INT64_MAX));
    const char *attempt = f->attempt ? att : NULL;
    const char *tid = f->trade_id, *oid = f->order_id && f->order_id[0] ? f->order_id : NULL;
    fmt_ts_us(ts, sizeof ts, f->event_time_ms * 1000);
    for (int k = 0; k < JNL_ARRAYS; k++) arr_open(&b[k]);
    for (size_t i = 0; i < n; i++) {
        const struct journal_intent *x = &in[i];
        arr_str(&b[0], x->client_order_id);
        arr_str(&b[1], x->rule_id);
        arr_str(&b[2], x->follower);
        arr_str(&b[3], x->symbol);
        arr_str(&b[4], x->side);
        arr_raw(&b[5], x->qty);
        arr_raw(&b[6], x->reduce_only ? "t" : "f");
        arr_str(&b[7], x->order_type);
        arr_str(&b[8], x->skip_reason);
        arr_str(&b[9], x->position_side);
        if (x->limit_price) arr_raw(&b[10], x->limit_price);
        else arr_raw(&b[10], "NULL");
    }
    const char *p1[JNL_FILL_DEFER_PARAMS] = {f->account, f->symbol, tid, oid, f->side, f->qty,
                                             f->price, ts, f->trade_seq > 0 ? seq : NULL, attempt};
    const char *p2[JNL_INTENT_RESOLVE_PARAMS] = {f->account, f->symbol, tid};
    for (int k = 0; k < JNL_ARRAYS; k++) {
        arr_close(&b[k]);
        if (b[k].oom) return -ENOMEM;
        p2[3 + k] = b[k].p;
    }
    if (f->n_defers) {
        struct sbuf *d = j->db;
        for (int k = 0; k < JNL_DEFER_ARRAYS; k++) arr_open(&d[k]);
        for (size_t i = 0; i < f->n_defers; i++) {
            arr_str(&d[0], f->defers[i].rule_id);
            arr_str(&d[1], f->defers[i].follower);
            arr_str(&d[2], f->defers[i].input);
        }
        for (int k = 0; k < JNL_DEFER_ARRAYS; k++) {
            arr_close(&d[k]);
            if (d[k].oom) return -ENOMEM;
            p1[JNL_FILL_PARAMS + k] = d[k].p;
        }
    }
    bool defer = f->n_defers > 0, resolve = f->resolve_rule_id != NULL;
    /* The attempt is the last parameter: $15, or $17 after the placeholder's rule and reason. */
    if (resolve) {
        p2[JNL_INTENT_PARAMS - 1] = f->resolve_rule_id;
        p2[JNL_INTENT_PARAMS] = f->resolve_reason;
        p2[JNL_INTENT_PARAMS + 1] = attempt;
    } else {
        p2[JNL_INTENT_PARAMS - 1] = attempt;
    }
    if (!PQsendQueryPrepared(j->conn, defer ? "jnl_fill_defer" : "jnl_fill",
                             defer ? JNL_FILL_DEFER_PARAMS : JNL_FILL_PARAMS, p1, NULL, NULL, 0) ||
        !PQsendQueryPrepared(j->conn, resolve ? "jnl_intents_resolve" : "jnl_intents",
                             resolve ? JNL_INTENT_RESOLVE_PARAMS : JNL_INTENT_PARAMS, p2, NULL, NULL,
                             0)) {
        /* Nothing committed: without their sync the statements cannot commit, and the reset
         * that follows ends the session. */
        mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
        return -ENOTCONN;
    }
    return 0;
}

/* ---- the spool ---- */

/* New work goes to the spool: it has taken over (until drained), or PostgreSQL is not there. */
static bool want_spool(const struct journal *j)
{
    return j->sp && (j->spooling || j->st != ST_READY || j->broken);
}

/* The spool holds writes because PostgreSQL is away or was too slow; not merely write-ahead
 * (opts.write_ahead with PostgreSQL up, the normal state of that mode). What on_spool and the
 * stats report. */
static bool spool_degraded(const struct journal *j)
{
    return j->spooling && !(j->o.write_ahead && j->st == ST_READY && !j->broken);
}

static void spool_error(struct journal *j, const char *what, int rc)
{
    const char *se = j->sp ? spool_last_error(j->sp) : "";
    j->s.spool_errors++;
    snprintf(j->spool_err, sizeof j->spool_err, "spool %s: %s%s%s", what, strerror(-rc),
             se[0] ? ": " : "", se);
    j->spool_err_pending = true;
    set_last_error(j, NULL, j->spool_err);
}

static void spool_take_over(struct journal *j, const char *why)
{
    if (j->spooling) return;
    j->spooling = true;
    j->rp_episode = 0;
    snprintf(j->spool_why, sizeof j->spool_why, "%s", why);
    uv_timer_stop(&j->t_slow);
}

static const char *spool_reason(const struct journal *j)
{
    return j->st == ST_READY && !j->broken ? "spool not drained yet" : "PostgreSQL not connected";
}

/* Appends n records in one write (one fdatasync in FSYNC mode). 0 or a negative errno (counted,
 * reported through on_spool). */
static int spool_put(struct journal *j, const struct spool_rec_in *recs, size_t n, const char *what)
{
    int rc = n == 1 ? spool_append(j->sp, recs[0].type, recs[0].payload, recs[0].len, NULL)
                    : spool_append_many(j->sp, recs, n, NULL);
    if (rc < 0) {
        j->spool_ok = false;
        spool_error(j, what, rc);
        return rc;
    }
    j->spool_ok = true;
    return 0;
}

/* A fill of that key in flight to PostgreSQL (not answered): its callback is still to come. */
static bool inflight_has(const struct journal *j, const char *key)
{
    for (const struct op *op = j->ops_head; op; op = op->next)
        if (op->kind == OP_FILL && !op->detached && op->key && !strcmp(op->key, key)) return true;
    return false;
}

static void done_push(struct journal *j, struct op *op)
{
    op->next = NULL;
    if (j->done_tail) j->done_tail->next = op;
    else j->done_head = op;
    j->done_tail = op;
    uv_timer_start(&j->t_work, on_work, 0, 0);
}

/* Callbacks of fills answered from the spool, from the loop (never inside journal_write_fill). */
static void done_deliver(struct journal *j)
{
    struct op *list = j->done_head;
    j->done_head = j->done_tail = NULL;
    while (list) {
        struct op *op = list;
        list = op->next;
        if (j->free_requested) fill_callback(j, op, -ECANCELED, "journal freed");
        else fill_callback(j, op, 0, NULL);
        op_free(op);
    }
}

/* The spool path of journal_write_fill. */
static int fill_spool(struct journal *j, const struct journal_fill *f,
                      const struct journal_intent *in, size_t n, journal_fill_cb cb, void *ud)
{
    if (j->inflight_fills >= j->o.max_inflight_fills) return -ENOBUFS;
    char key[JNL_KEY_MAX];
    fill_key(key, sizeof key, f->account, f->symbol, f->trade_id);
    struct op *op = op_new(OP_FILL, n);
    if (!op) return -ENOMEM;
    op->cb = cb;
    op->ud = ud;
    op->spooled = true;
    op->n_defers = f->n_defers;
    op->resolves = f->resolve_rule_id != NULL;
    if (kset_has(&j->keys, key) || inflight_has(j, key)) {
        /* The spool (or a write in flight) has it: a replay by the exchange, not a new fill. */
        op->spool_dup = true;
        j->s.spool_fills_dup++;
    } else {
        rec_fill(&j->rb, f, in, n);
        if (j->rb.oom || kset_add(&j->keys, key) < 0) {
            op_free(op);
            return -ENOMEM;
        }
        struct spool_rec_in r = {REC_FILL, j->rb.p, j->rb.len};
        int rc = spool_put(j, &r, 1, "append (fill)");
        if (rc < 0) {
            /* Not durable: refused, so nothing of it is sent (invariant 2), and a later attempt
             * of the same fill must find it new. */
            kset_del(&j->keys, key);
            op_free(op);
            uv_timer_start(&j->t_work, on_work, 0, 0); /* on_spool reports the error */
            return rc == -ENOMEM ? -ENOMEM : -ENOTCONN;
        }
        spool_take_over(j, j->o.write_ahead && j->st == ST_READY && !j->broken
                               ? "write-ahead (journal_durability: os)" : spool_reason(j));
        op->fill_new = true;
        memset(op->intent_new, 1, n * sizeof(bool));
        j->s.spool_fills++;
    }
    j->inflight_fills++;
    j->fills_submitted++;
    if (f->now_ok && !op->spool_dup && !j->done_head && j->inflight_fills == 1) {
        /* Durable now, and no earlier fill's callback is pending: complete it here. */
        enter(j);
        fill_callback(j, op, 0, NULL);
        op_free(op);
        leave(j);
        return 0;
    }
    done_push(j, op);
    return 0;
}

/* Moves fills in flight to PostgreSQL into the spool, in one write: their callbacks report them
 * new now and PostgreSQL's answer is ignored (replay re-applies them idempotently). false when
 * the spool refused them: they stay as they were. Calls callbacks: loop context only. */
static bool divert_ops(struct journal *j, struct op **v, size_t n, const char *why)
{
    if (!n) return true;
    struct spool_rec_in *r = calloc(n, sizeof *r);
    if (!r) return false;
    for (size_t i = 0; i < n; i++) r[i] = (struct spool_rec_in){REC_FILL, v[i]->payload, v[i]->plen};
    int rc = spool_put(j, r, n, "append (fills in flight)");
    free(r);
    if (rc < 0) return false;
    spool_take_over(j, why);
    for (size_t i = 0; i < n; i++) {
        struct op *op = v[i];
        if (kset_add(&j->keys, op->key) < 0) j->s.spool_errors++; /* only the dedupe is lost */
        op->detached = op->spooled = true;
        op->fill_new = true;
        memset(op->intent_new, 1, op->n * sizeof(bool));
        j->s.spool_fills++;
        j->s.spool_diverted++;
    }
    for (size_t i = 0; i < n; i++) {
        if (j->free_requested) {
            /* exactly one call each: the rest are cancelled here, not by really_free (which
             * skips detached ops) */
            fill_callback(j, v[i], -ECANCELED, "journal freed");
            continue;
        }
        fill_callback(j, v[i], 0, NULL);
    }
    return true;
}

static uint64_t oldest_fill_t0(const struct journal *j)
{
    for (const struct op *op = j->ops_head; op; op = op->next)
        if (op->kind == OP_FILL && !op->detached) return op->t0;
    return 0;
}

/* Watches the oldest fill in flight: past spool_after_ms the spool takes over. */
static void slow_arm(struct journal *j, bool failed)
{
    uint64_t t0 = j->sp && !j->spooling ? oldest_fill_t0(j) : 0;
    if (!t0) {
        uv_timer_stop(&j->t_slow);
        return;
    }
    uint64_t el = ms_since(t0), due = j->o.spool_after_ms;
    uv_timer_start(&j->t_slow, on_slow, failed ? due : el >= due ? 0 : due - el, 0);
}

static void on_slow(uv_timer_t *t)
{
    struct journal *j = t->data;
    enter(j);
    bool failed = false;
    read_now(j); /* a fill answered while the loop was busy past spool_after_ms is not slow */
    uint64_t t0 = j->sp && !j->spooling ? oldest_fill_t0(j) : 0;
    if (t0 && ms_since(t0) >= j->o.spool_after_ms && !j->free_requested) {
        size_t n = 0, k = 0;
        for (struct op *op = j->ops_head; op; op = op->next)
            n += op->kind == OP_FILL && !op->detached && op->payload;
        struct op **v = calloc(n + 1, sizeof *v);
        if (v) {
            for (struct op *op = j->ops_head; op; op = op->next)
                if (op->kind == OP_FILL && !op->detached && op->payload) v[k++] = op;
            char why[160];
            snprintf(why, sizeof why, "a journal write waited more than %u ms", j->o.spool_after_ms);
            failed = !divert_ops(j, v, k, why);
            free(v);
        } else {
            failed = true;
        }
    }
    if (!j->free_requested) slow_arm(j, failed);
    service(j);
    leave(j);
}

/* Results [first, first + n) of the queue as one REC_RESULTS payload. */
static void rec_results(struct sbuf *b, struct journal *j, size_t first, size_t n)
{
    sb_reset(b);
    w_u8(b, JNL_REC_VERSION);
    w_u64(b, n, 4);
    for (size_t i = 0; i < n; i++) {
        const struct jres *e = q_at(j, first + i);
        w_str(b, e->cid);
        w_u8(b, (unsigned)e->status);
        w_str(b, e->eoid);
        w_str(b, e->eqty);
        w_str(b, e->avgp);
        w_u64(b, (uint32_t)e->ecode, 4);
        w_str(b, e->emsg);
        w_u64(b, (uint64_t)e->at_us, 8);
    }
}

/* 0 with *out (n entries, emsg allocated), -EBADMSG, -ENOMEM. */
static int results_parse(const void *payload, size_t len, struct jres **out, size_t *nout)
{
    struct rd r = {payload, len, 0, false};
    *out = NULL;
    *nout = 0;
    { unsigned v = (unsigned)r_u64(&r, 1); if (v != 1 && v != JNL_REC_VERSION) return -EBADMSG; }
    uint64_t n = r_u64(&r, 4);
    if (r.bad || n > (r.n - r.off) / 20) return -EBADMSG;
    struct jres *v = calloc(n + 1, sizeof *v);
    if (!v) return -ENOMEM;
    size_t i = 0;
    for (; i < n && !r.bad; i++) {
        struct jres *e = &v[i];
        char msg[JNL_EMSG_MAX + 1];
        if (!r_str(&r, e->cid, sizeof e->cid) || !valid_cid(e->cid)) r.bad = true;
        unsigned st = (unsigned)r_u64(&r, 1);
        e->status = (enum journal_status)st;
        if (!journal_status_name(e->status) || st == JOURNAL_INTENT || st == JOURNAL_SKIPPED)
            r.bad = true;
        if (!r_str(&r, e->eoid, sizeof e->eoid) || (e->eoid[0] && !valid_id(e->eoid))) r.bad = true;
        if (!r_str(&r, e->eqty, sizeof e->eqty) || (e->eqty[0] && !valid_decimal(e->eqty))) r.bad = true;
        if (!r_str(&r, e->avgp, sizeof e->avgp) || (e->avgp[0] && !valid_decimal(e->avgp))) r.bad = true;
        e->ecode = (int)(int32_t)(uint32_t)r_u64(&r, 4);
        if (r_str(&r, msg, sizeof msg) && !(e->emsg = strdup(msg))) {
            i++;
            r.bad = true;
            for (size_t k = 0; k < i; k++) free(v[k].emsg);
            free(v);
            return -ENOMEM;
        }
        e->at_us = (int64_t)r_u64(&r, 8);
        if (e->at_us < 0) r.bad = true;
    }
    if (r.bad || r.off != r.n) {
        for (size_t k = 0; k < i; k++) free(v[k].emsg);
        free(v);
        return -EBADMSG;
    }
    *out = v;
    *nout = (size_t)n;
    return 0;
}

static bool valid_signed_decimal(const char *s)
{
    return s && valid_decimal(s[0] == '-' ? s + 1 : s);
}

static bool valid_pside(const char *s)
{
    return s && (!strcmp(s, "BOTH") || !strcmp(s, "LONG") || !strcmp(s, "SHORT"));
}

static bool valid_source(const char *s) { return s && (!strcmp(s, "exchange") || !strcmp(s, "book")); }

/* Positions [first, first + n) of the queue as one REC_POSITIONS payload. */
static void rec_positions(struct sbuf *b, const struct jpos *v, size_t n)
{
    sb_reset(b);
    w_u8(b, JNL_REC_VERSION);
    w_u64(b, n, 4);
    for (size_t i = 0; i < n; i++) {
        w_u64(b, (uint64_t)v[i].at_us, 8);
        w_str(b, v[i].account);
        w_str(b, v[i].symbol);
        w_str(b, v[i].pside);
        w_str(b, v[i].amount);
        w_str(b, v[i].source);
    }
}

/* 0 with *out (n entries), -EBADMSG, -ENOMEM. */
static int positions_parse(const void *payload, size_t len, struct jpos **out, size_t *nout)
{
    struct rd r = {payload, len, 0, false};
    *out = NULL;
    *nout = 0;
    if ((unsigned)r_u64(&r, 1) != JNL_REC_VERSION) return -EBADMSG;
    uint64_t n = r_u64(&r, 4);
    if (r.bad || n > (r.n - r.off) / 18) return -EBADMSG; /* an entry takes more than 18 bytes */
    struct jpos *v = calloc(n + 1, sizeof *v);
    if (!v) return -ENOMEM;
    for (size_t i = 0; i < n && !r.bad; i++) {
        struct jpos *e = &v[i];
        e->at_us = (int64_t)r_u64(&r, 8);
        if (!r_str(&r, e->account, sizeof e->account) || !r_str(&r, e->symbol, sizeof e->symbol) ||
            !r_str(&r, e->pside, sizeof e->pside) || !r_str(&r, e->amount, sizeof e->amount) ||
            !r_str(&r, e->source, sizeof e->source) || e->at_us <= 0 ||
            e->at_us > JNL_MAX_TS_MS * 1000 || !valid_text(e->account, JNL_NAME_MAX, false) ||
            !valid_text(e->symbol, JNL_NAME_MAX, false) || !valid_pside(e->pside) ||
            !valid_signed_decimal(e->amount) || !valid_source(e->source))
            r.bad = true;
    }
    if (r.bad || r.off != r.n) {
        free(v);
        return -EBADMSG;
    }
    *out = v;
    *nout = (size_t)n;
    return 0;
}

static void rec_rule(struct sbuf *b, const struct jrule *r)
{
    sb_reset(b);
    w_u8(b, JNL_REC_VERSION);
    w_str(b, r->id);
    w_str(b, r->status);
    w_u8(b, (unsigned)(r->paused + 1)); /* -1 keep, 0, 1 */
}

static int rule_parse(const void *payload, size_t len, struct jrule *out)
{
    struct rd r = {payload, len, 0, false};
    memset(out, 0, sizeof *out);
    { unsigned v = (unsigned)r_u64(&r, 1); if (v != 1 && v != JNL_REC_VERSION) return -EBADMSG; }
    bool ok = r_str(&r, out->id, sizeof out->id) && r_str(&r, out->status, sizeof out->status);
    unsigned p = (unsigned)r_u64(&r, 1);
    if (!ok || r.bad || r.off != r.n || p > 2 || !valid_text(out->id, sizeof out->id - 1, false) ||
        (strcmp(out->status, "active") && strcmp(out->status, "paused") &&
         strcmp(out->status, "close_only")))
        return -EBADMSG;
    out->paused = (int)p - 1;
    return 0;
}

/* While the spool has taken over (or PostgreSQL is away): queued results and rule changes go to
 * it, so a crash loses nothing the spool could hold. On a failed append they stay queued in
 * memory and are tried again later. */
static void spool_queues(struct journal *j)
{
    if (!want_spool(j)) return;
    /* Results: those not in flight, i.e. after the head that a results statement carries. */
    size_t first = j->res_inflight ? j->qsent : 0;
    if (j->qlen > first) {
        size_t n = j->qlen - first, max = 4096;
        if (n > max) n = max;
        rec_results(&j->rb, j, first, n);
        if (j->rb.oom) return;
        struct spool_rec_in r = {REC_RESULTS, j->rb.p, j->rb.len};
        if (spool_put(j, &r, 1, "append (results)") < 0) {
            uv_timer_start(&j->t_work, on_work, 500, 0); /* try again, not in a tight loop */
            return;
        }
        spool_take_over(j, spool_reason(j));
        j->s.spool_results += n;
        /* Remove [first, first + n): move the head entries in flight up by n. */
        for (size_t i = 0; i < n; i++) free(q_at(j, first + i)->emsg);
        for (size_t i = first; i-- > 0;) *q_at(j, i + n) = *q_at(j, i);
        j->qhead = (j->qhead + n) % j->qcap;
        j->qlen -= n;
        if (j->qlen > first) uv_timer_start(&j->t_work, on_work, 0, 0); /* the rest next turn */
    }
    /* Position snapshots not in flight, likewise. */
    size_t pfirst = j->pos_inflight ? j->pqsent : 0;
    if (j->pqlen > pfirst) {
        size_t n = j->pqlen - pfirst;
        if (n > 4096) n = 4096;
        rec_positions(&j->rb, &j->pq[pfirst], n);
        if (j->rb.oom) return;
        struct spool_rec_in r = {REC_POSITIONS, j->rb.p, j->rb.len};
        if (spool_put(j, &r, 1, "append (positions)") < 0) {
            uv_timer_start(&j->t_work, on_work, 500, 0);
            return;
        }
        spool_take_over(j, spool_reason(j));
        j->s.spool_positions += n;
        pq_remove(j, pfirst, n);
        if (j->pqlen > pfirst) uv_timer_start(&j->t_work, on_work, 0, 0);
    }
    /* Rule changes, in order; one still in flight is superseded by a later one of its rule. */
    for (struct jrule **pp = &j->rules_head; *pp;) {
        struct jrule *r = *pp;
        if (r->sent) {
            pp = &r->next;
            continue;
        }
        rec_rule(&j->rb, r);
        if (j->rb.oom) return;
        struct spool_rec_in in = {REC_RULE, j->rb.p, j->rb.len};
        if (spool_put(j, &in, 1, "append (rule state)") < 0) {
            uv_timer_start(&j->t_work, on_work, 500, 0);
            return;
        }
        spool_take_over(j, spool_reason(j));
        j->s.spool_rules++;
        for (struct jrule *o = j->rules_head; o != r; o = o->next)
            if (o->sent && !strcmp(o->id, r->id)) o->superseded = true;
        *pp = r->next;
        free(r);
    }
}

/* ---- replay ---- */

/* Sends one spool record's statements into the replay batch: the number sent (0: the record
 * does not parse, it is dropped), or a negative errno (nothing more can be sent: the batch is
 * abandoned with the connection). */
static int replay_record(struct journal *j, const struct spool_record *rec)
{
    switch (rec->type) {
    case REC_FILL: {
        struct pfill p;
        int rc = pfill_parse(&p, rec->payload, rec->len, false);
        if (rc == -ENOMEM) return rc;
        if (rc < 0 || !fill_valid(&p.f, p.in, p.n)) {
            pfill_free(&p);
            return 0;
        }
        rc = fill_send(j, &p.f, p.in, p.n);
        pfill_free(&p);
        return rc < 0 ? rc : 2;
    }
    case REC_RESULTS: {
        struct jres *v;
        size_t n;
        int rc = results_parse(rec->payload, rec->len, &v, &n);
        if (rc == -ENOMEM) return rc;
        if (rc < 0) return 0;
        /* Same statement as results_send: at most batch_size per UPDATE, a new one before a
         * client order id already in it (the transaction runs them in order). */
        int sent = 0;
        struct sbuf *b = j->pb;
        for (size_t i = 0; i < n && rc == 0;) {
            size_t k = i;
            for (int a = 0; a < JNL_RES_PARAMS; a++) arr_open(&b[a]);
            for (; k < n && k - i < j->o.batch_size; k++) {
                bool dup = false;
                for (size_t x = i; x < k && !dup; x++) dup = !strcmp(v[x].cid, v[k].cid);
                if (dup) break;
                res_arr_add(b, &v[k]);
            }
            const char *params[JNL_RES_PARAMS];
            for (int a = 0; a < JNL_RES_PARAMS; a++) {
                arr_close(&b[a]);
                if (b[a].oom) rc = -ENOMEM;
                params[a] = b[a].p;
            }
            if (rc == 0 &&
                !PQsendQueryPrepared(j->conn, "jnl_results", JNL_RES_PARAMS, params, NULL, NULL, 0)) {
                mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
                rc = -ENOTCONN;
            }
            if (rc == 0) sent++;
            i = k;
        }
        for (size_t i = 0; i < n; i++) free(v[i].emsg);
        free(v);
        return rc < 0 ? rc : sent;
    }
    case REC_POSITIONS: {
        struct jpos *v;
        size_t n;
        int rc = positions_parse(rec->payload, rec->len, &v, &n);
        if (rc == -ENOMEM) return rc;
        if (rc < 0) return 0;
        int sent = 0;
        for (size_t i = 0; i < n && rc == 0; i += j->o.batch_size) {
            size_t k = n - i < j->o.batch_size ? n - i : j->o.batch_size;
            const char *params[JNL_POS_PARAMS];
            if (!pos_params(j, &v[i], k, params)) {
                rc = -ENOMEM;
            } else if (!PQsendQueryPrepared(j->conn, "jnl_positions", JNL_POS_PARAMS, params, NULL,
                                            NULL, 0)) {
                mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
                rc = -ENOTCONN;
            } else {
                sent++;
            }
        }
        free(v);
        return rc < 0 ? rc : sent;
    }
    case REC_RULE: {
        struct jrule r;
        if (rule_parse(rec->payload, rec->len, &r) < 0) return 0;
        const char *params[3] = {r.id, r.status, r.paused < 0 ? NULL : r.paused ? "true" : "false"};
        if (!PQsendQueryParams(j->conn, SQL_RULE, 3, NULL, params, NULL, NULL, 0)) {
            mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
            return -ENOTCONN;
        }
        return 1;
    }
    default:
        return 0; /* a type this version does not know: dropped, counted */
    }
}

/* Acks the replayed records PostgreSQL holds (ack_due); while a sync/ack is out off the loop,
 * they wait for the next one. */
static void ack_flush(struct journal *j)
{
    struct spool_stats ss;
    if (!j->sp || !j->ack_due || j->bg) return;
    spool_get_stats(j->sp, &ss);
    if (j->ack_due > ss.acked_seq) {
        int rc = spool_ack(j->sp, j->ack_due);
        if (rc < 0) spool_error(j, "ack", rc); /* spool_applied holds it; the next ack covers it */
    }
    j->ack_due = 0;
}

/* Everything appended so far is in PostgreSQL: direct writes again. */
static void spool_drained(struct journal *j)
{
    j->spooling = false;
    j->rp_single_until = 0;
    kset_clear(&j->keys);
}

static void on_replay_timer(uv_timer_t *t)
{
    struct journal *j = t->data;
    enter(j);
    j->rp_hold = false;
    service(j);
    leave(j);
}

/* Sends the next batch of spool records as one transaction, with the spool_applied update; one
 * batch in flight at a time, so that a refused batch can be retried record by record in order. */
static void replay_step(struct journal *j)
{
    if (!j->spooling || j->st != ST_READY || j->broken || j->rp_op || j->rp_hold || j->rp_stuck ||
        j->free_requested)
        return;
    if (j->rp_begin) {
        if (j->bg) return; /* its ack first: bg_done services again */
        ack_flush(j); /* a replay begins at the ack: never before what is applied */
        spool_replay_begin(j->sp);
        j->rp_begin = false;
    }
    struct spool_stats ss;
    spool_get_stats(j->sp, &ss);
    size_t max = j->rp_single_until > ss.acked_seq ? 1 : j->o.batch_size;
    struct op *op = op_new(OP_REPLAY, 0);
    if (!op) return; /* tried again at the next service() */
    int rc = 0, nstmt = 0;
    while (op->nrec < max && nstmt < JNL_REPLAY_MAX_STMTS) {
        struct spool_record rec;
        rc = spool_replay_next(j->sp, &rec);
        if (rc <= 0) break;
        if (!op->nrec) op->first_seq = rec.seq;
        op->last_seq = rec.seq;
        op->nrec++;
        int k = replay_record(j, &rec);
        if (k < 0) {
            /* Statements of this batch may be out without their sync: only a reset ends them. */
            op_free(op);
            if (!j->broken) mark_broken(j, k, "spool replay: out of memory");
            j->rp_begin = true;
            return;
        }
        if (k == 0) op->nbad++;
        nstmt += k;
    }
    if (rc < 0) {
        /* A record changed on disk since spool_open checked it: stop here (the spool stays in
         * charge; a restart re-checks it and names the damage). */
        spool_error(j, "replay read", rc);
        j->rp_stuck = true;
    }
    if (!op->nrec) {
        op_free(op);
        if (rc == 0) spool_drained(j);
        return;
    }
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, op->last_seq);
    const char *pp[2] = {j->spool_id, seq};
    if (!PQsendQueryPrepared(j->conn, "jnl_applied", 2, pp, NULL, NULL, 0) ||
        !PQpipelineSync(j->conn)) {
        op_free(op);
        mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
        j->rp_begin = true;
        return;
    }
    op->nq = nstmt + 1;
    op->t0 = uv_hrtime();
    op_push(j, op);
    j->rp_op = op;
    flush_out(j);
}

/* A replay batch answered. Committed: ack it. Refused: data errors (SQLSTATE classes 22, 23)
 * would be refused again, so a batch of several records is retried one record at a time and a
 * single refused record is dropped (counted, named in last_error); anything else is retried
 * after a backoff. */
static void replay_done(struct journal *j, struct op *op)
{
    j->rp_op = NULL;
    bool permanent = op->failed && (!strncmp(op->sqlstate, "22", 2) || !strncmp(op->sqlstate, "23", 2));
    if (!op->failed && !op->bad_reply) {
        if (j->spool_os) {
            j->ack_due = op->last_seq; /* acked by t_sync (or before the next replay begins) */
        } else {
            int rc = spool_ack(j->sp, op->last_seq);
            if (rc < 0) spool_error(j, "ack", rc); /* spool_applied holds it; the next ack covers it */
        }
        j->s.spool_replayed += op->nrec - op->nbad;
        j->s.spool_replay_dropped += op->nbad;
        j->rp_episode += op->nrec;
        j->rp_fails = 0;
        if (op->nbad) {
            char m[160];
            snprintf(m, sizeof m, "spool replay: %" PRIu64 " record(s) up to %" PRIu64
                     " did not parse and were dropped", op->nbad, op->last_seq);
            set_last_error(j, NULL, m);
            j->err_events++;
        }
    } else if (permanent && op->nrec == 1) {
        char m[700];
        snprintf(m, sizeof m, "spool replay: record %" PRIu64 " refused by PostgreSQL, dropped: %s",
                 op->last_seq, op->errmsg ? op->errmsg : "error");
        set_last_error(j, NULL, m);
        memcpy(j->spool_err, j->last_error, sizeof j->spool_err);
        j->spool_err_pending = true;
        j->s.spool_replay_dropped++;
        j->err_events++;
        int rc = spool_ack(j->sp, op->last_seq);
        if (rc < 0) spool_error(j, "ack", rc);
    } else if (permanent) {
        j->rp_single_until = op->last_seq;
        j->rp_begin = true;
    } else {
        uint64_t d = j->o.backoff_min_ms;
        for (unsigned i = 0; i < j->rp_fails && d < j->o.backoff_max_ms; i++) d *= 2;
        if (d > j->o.backoff_max_ms) d = j->o.backoff_max_ms;
        j->rp_fails++;
        j->rp_begin = true;
        j->rp_hold = true;
        uv_timer_start(&j->t_replay, on_replay_timer, d, 0);
    }
}

/* The session is set up: ack what PostgreSQL says is applied already (a crash between a batch's
 * commit and its ack), then replay from there. */
static void spool_session_start(struct journal *j, const struct op *setup)
{
    j->rp_begin = true;
    j->rp_hold = false;
    j->rp_single_until = 0;
    uv_timer_stop(&j->t_replay);
    if (!setup->have_applied) return;
    struct spool_stats ss;
    spool_get_stats(j->sp, &ss);
    if (setup->applied_seq > ss.next_seq - 1) {
        /* Not this spool's history (an id file copied from elsewhere?): ack nothing. */
        char m[300];
        snprintf(m, sizeof m, "spool_applied says record %" PRIu64 " of spool %s is applied, but "
                 "the spool ends at %" PRIu64 ": not trusted, replaying everything",
                 setup->applied_seq, j->spool_id, ss.next_seq - 1);
        set_last_error(j, NULL, m);
        snprintf(j->spool_err, sizeof j->spool_err, "%s", m);
        j->spool_err_pending = true;
        return;
    }
    if (setup->applied_seq > ss.acked_seq && j->bg) {
        /* an ack is being written off the loop: this one follows (before the replay begins) */
        if (setup->applied_seq > j->ack_due) j->ack_due = setup->applied_seq;
    } else if (setup->applied_seq > ss.acked_seq) {
        int rc = spool_ack(j->sp, setup->applied_seq);
        if (rc < 0) spool_error(j, "ack", rc);
        else j->s.spool_skipped += setup->applied_seq - ss.acked_seq;
    }
}

/* on_spool: errors first, then a change of mode. Loop context only. */
static void spool_notify(struct journal *j)
{
    if (!j->sp) return;
    if (j->spool_err_pending) {
        j->spool_err_pending = false;
        if (j->o.on_spool && !j->free_requested) j->o.on_spool(j->o.ud, j->spooling, j->spool_err);
    }
    bool degraded = spool_degraded(j);
    if (j->spool_reported != degraded && !j->free_requested) {
        char m[200];
        j->spool_reported = degraded;
        if (degraded)
            snprintf(m, sizeof m, "spool taking writes: %s",
                     j->o.write_ahead ? "PostgreSQL not connected" : j->spool_why);
        else if (j->spooling)
            snprintf(m, sizeof m, "PostgreSQL is back: the write-ahead spool is replayed into it");
        else
            snprintf(m, sizeof m, "spool drained: %" PRIu64 " record(s) replayed into PostgreSQL",
                     j->rp_episode);
        if (j->o.on_spool) j->o.on_spool(j->o.ud, degraded, m);
    }
}

/* SPOOL_OS: the periodic fdatasync and the deferred ack, on libuv's thread pool: the loop never
 * waits on the disk (a busy disk can take seconds). */
struct jbg {
    uv_work_t w;
    struct journal *j;    /* NULL once the journal is freed: only the descriptors are closed */
    struct spool_bg bg;
};

static void bg_work(uv_work_t *w) { spool_bg_run(&((struct jbg *)w)->bg); }

static void bg_done(uv_work_t *w, int status)
{
    struct jbg *x = (struct jbg *)w;
    struct journal *j = x->j;
    (void)status; /* bg_work always ran: libuv cancels only work not started */
    if (!j) {
        spool_bg_finish(NULL, &x->bg);
        free(x);
        return;
    }
    enter(j);
    j->bg = NULL;
    int rc = spool_bg_finish(j->sp, &x->bg);
    if (rc < 0) spool_error(j, x->bg.sync_rc < 0 ? "sync" : "ack", rc);
    else if (x->bg.ack_seq && j->ack_due <= x->bg.ack_seq) j->ack_due = 0;
    free(x);
    service(j);
    leave(j);
}

static void on_sync(uv_timer_t *t)
{
    struct journal *j = t->data;
    enter(j);
    struct jbg *x = j->bg ? NULL : calloc(1, sizeof *x);
    if (x) {
        struct spool_stats ss;
        spool_get_stats(j->sp, &ss);
        int rc = spool_bg_prepare(j->sp, j->ack_due > ss.acked_seq ? j->ack_due : 0, &x->bg);
        if (rc == 1) {
            x->j = j;
            if (uv_queue_work(j->loop, &x->w, bg_work, bg_done) == 0) {
                j->bg = x;
                x = NULL;
            } else { /* no thread pool: here, then */
                spool_bg_run(&x->bg);
                rc = spool_bg_finish(j->sp, &x->bg);
                if (rc < 0) spool_error(j, x->bg.sync_rc < 0 ? "sync" : "ack", rc);
                else if (x->bg.ack_seq && j->ack_due <= x->bg.ack_seq) j->ack_due = 0;
            }
        } else if (rc < 0) {
            spool_error(j, "sync", rc);
        }
        free(x);
    }
    service(j);
    leave(j);
}

/* The spool's id in spool_applied: a random 128-bit hex string kept in the spool directory (a
 * wiped directory restarts sequence numbers, and gets a new id with them). */
static int spool_id_load(struct journal *j, const char *dir, char *err, size_t errlen)
{
    char path[SPOOL_PATH_MAX + 32], tmp[SPOOL_PATH_MAX + 32], buf[64];
    snprintf(path, sizeof path, "%s/" JNL_SPOOL_ID_FILE, dir);
    snprintf(tmp, sizeof tmp, "%s/" JNL_SPOOL_ID_FILE ".tmp", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        bool ok = n == 33 && buf[32] == '\n';
        for (int i = 0; ok && i < 32; i++)
            ok = (buf[i] >= '0' && buf[i] <= '9') || (buf[i] >= 'a' && buf[i] <= 'f');
        if (!ok) {
            seterr(err, errlen, "%s: not a spool id (32 hex digits and a newline)", path);
            return -EBADMSG;
        }
        memcpy(j->spool_id, buf, 32);
        j->spool_id[32] = '\0';
        return 0;
    }
    if (errno != ENOENT) {
        int e = errno;
        seterr(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        int e = errno ? errno : EIO;
        seterr(err, errlen, "spool id: getrandom: %s", strerror(e));
        return -e;
    }
    for (int i = 0; i < 16; i++) snprintf(j->spool_id + 2 * i, 3, "%02x", rnd[i]);
    snprintf(buf, sizeof buf, "%s\n", j->spool_id);
    int rc = 0;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, buf, 33) != 33 || fsync(fd) != 0) rc = errno ? -errno : -EIO;
    if (fd >= 0 && close(fd) != 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) != 0) rc = -errno;
    if (!rc) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) != 0) rc = -errno;
        if (dfd >= 0) close(dfd);
    }
    if (rc) {
        unlink(tmp);
        seterr(err, errlen, "%s: cannot write the spool id: %s", path, strerror(-rc));
    }
    return rc;
}

/* ---- public API ---- */

/* Opens the spool, loads its id, and rebuilds the set of fills it holds. */
static int spool_start(struct journal *j, struct journal_open_report *rep, char *err, size_t errlen)
{
    struct spool_opts so = {.durability = j->spool_os ? SPOOL_OS : SPOOL_FSYNC,
                            .segment_bytes = j->o.spool_segment_bytes,
                            .salvage = j->o.spool_salvage};
    int rc = spool_open(j->o.spool_dir, &so, &j->sp, &rep->spool, err, errlen);
    if (rc < 0) return rc;
    if ((rc = spool_id_load(j, j->o.spool_dir, err, errlen)) < 0) return rc;
    spool_replay_begin(j->sp);
    struct spool_record rec;
    while ((rc = spool_replay_next(j->sp, &rec)) > 0) {
        rep->pending_records++;
        if (rec.type == REC_FILL) {
            struct pfill p;
            char key[JNL_KEY_MAX];
            if (pfill_parse(&p, rec.payload, rec.len, true) < 0) {
                rep->bad_records++;
                continue;
            }
            rep->pending_fills++;
            fill_key(key, sizeof key, p.f.account, p.f.symbol, p.f.trade_id);
            if (kset_add(&j->keys, key) < 0) {
                seterr(err, errlen, "spool: out of memory");
                return -ENOMEM;
            }
        } else if (rec.type != REC_RESULTS && rec.type != REC_RULE && rec.type != REC_POSITIONS) {
            rep->bad_records++;
        }
    }
    if (rc < 0) {
        seterr(err, errlen, "%s", spool_last_error(j->sp));
        return rc;
    }
    spool_replay_begin(j->sp);
    j->spool_ok = true;
    if (rep->pending_records) {
        char why[160];
        snprintf(why, sizeof why, "%" PRIu64 " record(s) of an earlier run wait for replay",
                 rep->pending_records);
        spool_take_over(j, why);
    }
    return 0;
}

int journal_open(uv_loop_t *loop, const char *conninfo, const struct journal_opts *o,
                 struct journal **out, struct journal_open_report *rep, char *err, size_t errlen)
{
    struct journal_open_report dummy;
    if (!rep) rep = &dummy;
    memset(rep, 0, sizeof *rep);
    if (err && errlen) err[0] = '\0';
    if (!out) return -EINVAL;
    *out = NULL;
    if (!loop || !conninfo) {
        seterr(err, errlen, "journal_open: bad arguments");
        return -EINVAL;
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        seterr(err, errlen, "database conninfo: %s", perr ? perr : "out of memory");
        PQfreemem(perr);
        return perr ? -EINVAL : -ENOMEM;
    }
    PQconninfoFree(opts);

    struct journal *j = calloc(1, sizeof *j);
    if (!j) return -ENOMEM;
    if (o) j->o = *o;
    if (!j->o.batch_size) j->o.batch_size = 100;
    if (!j->o.timeout_ms) j->o.timeout_ms = 10000;
    if (!j->o.backoff_min_ms) j->o.backoff_min_ms = 50;
    if (!j->o.backoff_max_ms) j->o.backoff_max_ms = 5000;
    if (j->o.backoff_max_ms < j->o.backoff_min_ms) j->o.backoff_max_ms = j->o.backoff_min_ms;
    if (!j->o.slow_ms) j->o.slow_ms = 100;
    if (!j->o.max_queued_results) j->o.max_queued_results = 1000000;
    if (!j->o.max_inflight_fills) j->o.max_inflight_fills = 4096;
    if (j->o.batch_size > 100000) j->o.batch_size = 100000;
    if (!j->o.spool_after_ms) j->o.spool_after_ms = 250;
    if (!j->o.spool_sync_ms) j->o.spool_sync_ms = 200;
    if (!j->o.partitions_every_ms) j->o.partitions_every_ms = JNL_PARTS_EVERY_MS;
    if (!j->o.partitions_ahead) j->o.partitions_ahead = JNL_PARTS_AHEAD;
    if (j->o.partitions_ahead > 120) j->o.partitions_ahead = 120;
    if (j->o.spool_dir && !*j->o.spool_dir) j->o.spool_dir = NULL;
    j->spool_os = j->o.durability == JOURNAL_DURABILITY_OS;

    j->loop = loop;
    j->st = ST_WAIT;
    j->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)j ^ 0x9E3779B97F4A7C15ULL;
    if (!j->rng) j->rng = 1;
    for (j->hcap = 16; j->hcap < 2 * (size_t)j->o.batch_size; j->hcap *= 2) {}
    j->conninfo = strdup(conninfo);
    j->hset = calloc(j->hcap, sizeof *j->hset);
    int rc = 0;
    if (!j->conninfo || !j->hset) rc = -ENOMEM;
    else if (j->o.spool_dir) rc = spool_start(j, rep, err, errlen);
    j->o.spool_dir = NULL; /* not kept: the caller's string need not outlive the call */
    if (rc < 0) {
        spool_close(j->sp);
        kset_clear(&j->keys);
        free(j->conninfo);
        free(j->hset);
        free(j);
        if (rc == -ENOMEM && err && errlen && !err[0]) seterr(err, errlen, "out of memory");
        return rc;
    }
    uv_timer_init(loop, &j->t_retry);
    uv_timer_init(loop, &j->t_deadline);
    uv_timer_init(loop, &j->t_work);
    uv_timer_init(loop, &j->t_slow);
    uv_timer_init(loop, &j->t_sync);
    uv_timer_init(loop, &j->t_replay);
    uv_timer_init(loop, &j->t_parts);
    uv_timer_init(loop, &j->t_rpk);
    j->t_retry.data = j->t_deadline.data = j->t_work.data = j->t_rpk.data = j;
    j->t_slow.data = j->t_sync.data = j->t_replay.data = j->t_parts.data = j;
    j->handles_open = 8;
    uv_timer_start(&j->t_parts, on_parts, j->o.partitions_every_ms, 0);
    /* The first attempt runs from the loop, so no callback fires inside journal_new. */
    uv_timer_start(&j->t_retry, on_retry, 0, 0);
    if (j->sp && j->spool_os)
        uv_timer_start(&j->t_sync, on_sync, j->o.spool_sync_ms, j->o.spool_sync_ms);
    *out = j;
    return 0;
}

struct journal *journal_new(uv_loop_t *loop, const char *conninfo, const struct journal_opts *o)
{
    struct journal *j = NULL;
    int rc = journal_open(loop, conninfo, o, &j, NULL, NULL, 0);
    if (rc < 0) errno = -rc;
    return j;
}

static void timer_closed(uv_handle_t *h)
{
    struct journal *j = h->data;
    if (--j->handles_open == 0) free(j);
}

static void really_free(struct journal *j)
{
    j->st = ST_CLOSED;
    poll_close(j);
    if (j->conn) PQfinish(j->conn);
    j->conn = NULL;
    struct op *ops = j->ops_head;
    j->ops_head = j->ops_tail = NULL;
    while (ops) {
        struct op *op = ops;
        ops = op->next;
        if (op->kind == OP_FILL && !op->detached) fill_callback(j, op, -ECANCELED, "journal freed");
        op_free(op);
    }
    while (j->done_head) {
        struct op *op = j->done_head;
        j->done_head = op->next;
        fill_callback(j, op, -ECANCELED, "journal freed");
        op_free(op);
    }
    j->done_tail = NULL;
    while (j->rules_head) {
        struct jrule *r = j->rules_head;
        j->rules_head = r->next;
        free(r);
    }
    while (j->w_head) {
        struct waiter *w = j->w_head;
        j->w_head = w->next;
        w->cb(w->ud, -ECANCELED);
        free(w);
    }
    if (j->dl_cb) {
        journal_defers_cb cb = j->dl_cb;
        j->dl_cb = NULL;
        cb(j->dl_ud, -ECANCELED, "journal freed", NULL, 0);
    }
    q_pop(j, j->qlen);
    free(j->q);
    free(j->pq);
    free(j->hset);
    free(j->conninfo);
    for (int k = 0; k < JNL_ARRAYS; k++) sb_free(&j->pb[k]);
    for (int k = 0; k < JNL_DEFER_ARRAYS; k++) sb_free(&j->db[k]);
    sb_free(&j->rb);
    kset_clear(&j->keys);
    if (j->sp && j->spool_os) spool_sync(j->sp); /* best effort: nobody is left to tell */
    ack_flush(j);
    if (j->bg) j->bg->j = NULL; /* its ack is lost at worst: spool_applied holds it */
    j->sp = spool_close(j->sp);
    uv_close((uv_handle_t *)&j->t_retry, timer_closed);
    uv_close((uv_handle_t *)&j->t_deadline, timer_closed);
    uv_close((uv_handle_t *)&j->t_work, timer_closed);
    uv_close((uv_handle_t *)&j->t_slow, timer_closed);
    uv_close((uv_handle_t *)&j->t_sync, timer_closed);
    uv_close((uv_handle_t *)&j->t_replay, timer_closed);
    uv_close((uv_handle_t *)&j->t_parts, timer_closed);
    uv_close((uv_handle_t *)&j->t_rpk, timer_closed);
}

struct journal *journal_free(struct journal *j)
{
    if (!j || j->free_requested) return NULL;
    j->free_requested = true;
    if (j->busy == 0) really_free(j);
    return NULL;
}

bool journal_connected(const struct journal *j) { return j && j->st == ST_READY && !j->broken; }

bool journal_writable(const struct journal *j)
{
    if (!j || j->free_requested) return false;
    bool spool = j->sp && j->spool_ok && !j->rp_stuck;
    if (!j->sp) return journal_connected(j);
    if (want_spool(j)) return spool;
    return true;
}

int journal_write_fill(struct journal *j, const struct journal_fill *f,
                       const struct journal_intent *in, size_t n, journal_fill_cb cb, void *ud)
{
    if (!j || !f || (n && !in) || !cb) return -EINVAL;
    if (j->free_requested) return -ECANCELED;
    if (!fill_valid(f, in, n)) return -EINVAL;
    bool pg_up = j->st == ST_READY && !j->broken;
    if (j->sp && j->o.write_ahead && pg_up) {
        if (f->ahead) return fill_spool(j, f, in, n, cb, ud);
        /* Maybe a replay of a fill PostgreSQL has: it decides, unless the spool still holds it
         * (then it is not new, and PostgreSQL may not know it yet). */
        char key[JNL_KEY_MAX];
        fill_key(key, sizeof key, f->account, f->symbol, f->trade_id);
        if (kset_has(&j->keys, key)) return fill_spool(j, f, in, n, cb, ud);
    } else if (want_spool(j)) {
        return fill_spool(j, f, in, n, cb, ud);
    }
    if (!pg_up) return -ENOTCONN;
    if (j->inflight_fills >= j->o.max_inflight_fills) return -ENOBUFS;

    struct op *op = op_new(OP_FILL, n);
    if (!op) return -ENOMEM;
    op->nq = 2;
    op->cb = cb;
    op->ud = ud;
    op->n_defers = f->n_defers;
    op->resolves = f->resolve_rule_id != NULL;
    if (j->sp) {
        /* Kept in case PostgreSQL is slow or lost before it answers: then the spool takes it. */
        char key[JNL_KEY_MAX];
        fill_key(key, sizeof key, f->account, f->symbol, f->trade_id);
        rec_fill(&j->rb, f, in, n);
        op->key = strdup(key);
        op->payload = j->rb.oom ? NULL : malloc(j->rb.len ? j->rb.len : 1);
        if (!op->key || !op->payload) {
            op_free(op);
            return -ENOMEM;
        }
        memcpy(op->payload, j->rb.p, j->rb.len);
        op->plen = j->rb.len;
    }
    int rc = fill_send(j, f, in, n);
    if (rc == 0 && !PQpipelineSync(j->conn)) {
        mark_broken(j, -ECONNRESET, PQerrorMessage(j->conn));
        rc = -ENOTCONN;
    }
    if (rc < 0) {
        op_free(op);
        /* The session is ending (nothing of it can commit without its sync): the spool, if
         * there is one, takes the fill instead. */
        if (rc == -ENOTCONN && want_spool(j)) return fill_spool(j, f, in, n, cb, ud);
        return rc;
    }
    op_push(j, op);
    j->inflight_fills++;
    j->fills_submitted++;
    flush_out(j);
    if (j->sp && !uv_is_active((uv_handle_t *)&j->t_slow)) slow_arm(j, false);
    return 0;
}

int journal_record_result(struct journal *j, const struct journal_result *r)
{
    if (!j || !r) return -EINVAL;
    if (j->free_requested) return -ECANCELED;
    if (!valid_cid(r->client_order_id) || !journal_status_name(r->status) ||
        r->status == JOURNAL_INTENT ||
        (r->status == JOURNAL_SKIPPED && (!r->error_msg || !valid_text(r->error_msg, JNL_NAME_MAX, false))) ||
        (r->exchange_order_id && r->exchange_order_id[0] && !valid_id(r->exchange_order_id)) ||
        (r->executed_qty && !valid_decimal(r->executed_qty)) ||
        (r->avg_price && !valid_decimal(r->avg_price)) || r->at_us < 0 ||
        r->at_us > JNL_MAX_TS_MS * 1000)
        return -EINVAL;
    if (j->qlen >= j->o.max_queued_results) return -ENOBUFS;
    if (j->qlen == j->qcap && q_grow(j) < 0) return -ENOMEM;

    struct jres e = {.seq = j->res_seq, .status = r->status,
                     .ecode = r->error_code, .at_us = r->at_us ? r->at_us : realtime_us()};
    if (r->exchange_order_id) snprintf(e.eoid, sizeof e.eoid, "%s", r->exchange_order_id);
    snprintf(e.cid, sizeof e.cid, "%s", r->client_order_id);
    if (r->executed_qty) snprintf(e.eqty, sizeof e.eqty, "%s", r->executed_qty);
    if (r->avg_price) snprintf(e.avgp, sizeof e.avgp, "%s", r->avg_price);
    if (r->error_msg) {
        size_t len = strnlen(r->error_msg, JNL_EMSG_MAX);
        if (!(e.emsg = malloc(len + 1))) return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)r->error_msg[i];
            e.emsg[i] = (c < 0x20 || c > 0x7e) ? '?' : (char)c; /* never invalid UTF-8 */
        }
        e.emsg[len] = '\0';
    }
    *q_at(j, j->qlen) = e;
    j->qlen++;
    j->res_seq++;
    /* Opportunistic batching: with nothing in flight, flush on the next loop iteration (or after
     * flush_interval_ms, or at once when a batch is full); with a statement in flight, its
     * completion sends whatever has queued meanwhile. */
    if ((j->st == ST_READY && !j->res_inflight) || want_spool(j)) {
        bool full = j->qlen >= j->o.batch_size;
        if (full || !uv_is_active((uv_handle_t *)&j->t_work))
            uv_timer_start(&j->t_work, on_work, full ? 0 : j->o.flush_interval_ms, 0);
    }
    return 0;
}

int journal_record_positions(struct journal *j, const struct journal_position *v, size_t n)
{
    if (!j || (n && !v)) return -EINVAL;
    if (j->free_requested) return -ECANCELED;
    for (size_t i = 0; i < n; i++) {
        const struct journal_position *p = &v[i];
        if (!valid_text(p->account, JNL_NAME_MAX, false) || !valid_text(p->symbol, JNL_NAME_MAX, false) ||
            !valid_pside(p->position_side) || !valid_signed_decimal(p->amount) ||
            !valid_source(p->source) || p->taken_at_us < 0 || p->taken_at_us > JNL_MAX_TS_MS * 1000)
            return -EINVAL;
    }
    if (!n) return 0;
    if (j->pqlen + n > j->o.max_queued_results) return -ENOBUFS;
    if (j->pqlen + n > j->pqcap) {
        size_t cap = j->pqcap ? j->pqcap : 64;
        while (cap < j->pqlen + n) cap *= 2;
        struct jpos *q = realloc(j->pq, cap * sizeof *q);
        if (!q) return -ENOMEM;
        j->pq = q;
        j->pqcap = cap;
    }
    int64_t now = realtime_us();
    for (size_t i = 0; i < n; i++) {
        const struct journal_position *p = &v[i];
        struct jpos *e = &j->pq[j->pqlen + i];
        memset(e, 0, sizeof *e);
        e->at_us = p->taken_at_us ? p->taken_at_us : now;
        snprintf(e->account, sizeof e->account, "%s", p->account);
        snprintf(e->symbol, sizeof e->symbol, "%s", p->symbol);
        snprintf(e->pside, sizeof e->pside, "%s", p->position_side);
        snprintf(e->amount, sizeof e->amount, "%s", p->amount);
        snprintf(e->source, sizeof e->source, "%s", p->source);
    }
    j->pqlen += n;
    j->pos_seq += n;
    /* Sent with the next service(), like results: at once when idle, grouped under load. */
    if ((j->st == ST_READY && !j->pos_inflight) || want_spool(j)) {
        bool full = j->pqlen >= j->o.batch_size;
        if (full || !uv_is_active((uv_handle_t *)&j->t_work))
            uv_timer_start(&j->t_work, on_work, full ? 0 : j->o.flush_interval_ms, 0);
    }
    return 0;
}

const char *journal_statement_sql(const char *name)
{
    if (!name) return NULL;
    if (!strcmp(name, "fill")) return SQL_FILL;
    if (!strcmp(name, "intents")) return SQL_INTENTS;
    if (!strcmp(name, "results")) return SQL_RESULTS;
    if (!strcmp(name, "positions")) return SQL_POSITIONS;
    if (!strcmp(name, "partitions")) return SQL_PARTS;
    return NULL;
}

int journal_set_rule_status(struct journal *j, const char *rule_id, const char *status, int paused)
{
    static const char *const ok[] = {"active", "paused", "close_only"};
    bool valid = false;
    if (!j || !rule_id || !status || !valid_text(rule_id, sizeof(((struct jrule *)0)->id) - 1, false))
        return -EINVAL;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) valid |= strcmp(status, ok[i]) == 0;
    if (!valid) return -EINVAL;
    struct jrule *r = calloc(1, sizeof *r), **pp = &j->rules_head;
    if (!r) return -ENOMEM;
    snprintf(r->id, sizeof r->id, "%s", rule_id);
    snprintf(r->status, sizeof r->status, "%s", status);
    r->paused = paused < 0 ? -1 : paused > 0;
    while (*pp) pp = &(*pp)->next;
    *pp = r;
    uv_timer_start(&j->t_work, on_work, 0, 0);
    return 0;
}

int journal_flush(struct journal *j, journal_flush_cb cb, void *ud)
{
    if (!j || !cb) return -EINVAL;
    if (j->free_requested) return -ECANCELED;
    struct waiter *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->res_target = j->res_seq;
    w->fill_target = j->fills_submitted;
    w->pos_target = j->pos_seq;
    w->err_mark = j->err_events;
    w->cb = cb;
    w->ud = ud;
    if (j->w_tail) j->w_tail->next = w;
    else j->w_head = w;
    j->w_tail = w;
    uv_timer_start(&j->t_work, on_work, 0, 0); /* checked (and results sent) from the loop */
    return 0;
}

void journal_get_stats(const struct journal *j, struct journal_stats *out)
{
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!j) return;
    *out = j->s;
    out->connected = journal_connected(j);
    out->results_queued = j->qlen;
    out->positions_queued = j->pqlen;
    out->inflight_statements = j->inflight_stmts;
    out->inflight_fills = j->inflight_fills;
    if (j->ops_head) out->lag_us = (uv_hrtime() - j->ops_head->t0) / 1000u;
    if (j->sp) {
        struct spool_stats ss;
        spool_get_stats(j->sp, &ss);
        out->spooling = spool_degraded(j);
        out->spool_writable = j->spool_ok && !ss.broken;
        out->spool_records = ss.records_unacked;
        out->spool_bytes = ss.bytes_unacked;
        out->spool_oldest_us = ss.records_unacked ? ss.oldest_unacked_us : 0;
        if (out->spool_oldest_us) {
            int64_t lag = realtime_us() - out->spool_oldest_us;
            out->lag_us = lag > 0 ? (uint64_t)lag : 0;
        }
    }
}

const char *journal_last_error(const struct journal *j) { return j ? j->last_error : ""; }
