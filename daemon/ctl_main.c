/* copytraderctl: the operator's command line. Reads the journal (PostgreSQL) and talks to the
 * daemon's local HTTP endpoints, both found in the daemon's own config file. Human output (aligned
 * columns) by default, --json for scripts. Errors name what failed and exit non-zero; the
 * database conninfo and the secrets in the config are never printed. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define DEFAULT_CONFIG "/etc/copytrader/copytrader.yaml"

struct ctl {
    struct cfg *cfg;
    bool json;
    char base_url[300]; /* http://host:port */
    PGconn *pg;
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: copytraderctl [--config FILE] [--json] COMMAND [ARGS]\n"
            "  status                          leaders, streams, rules by state, last fill, lag\n"
            "  rules                           copy rules with state, leader, follower, sizing\n"
            "  pause RULE | resume RULE        operator switch of a running rule\n"
            "  reset RULE                      clear a loss stop (close_only) of a running rule\n"
            "  orders --follower X [--since 1h] [--limit N]   recent follower orders\n"
            "  explain TRADE_ID [--account A] [--symbol S]    what every rule did with a leader fill\n"
            "options:\n"
            "  -c, --config FILE   the daemon's config (default " DEFAULT_CONFIG ")\n"
            "  -j, --json          JSON output\n"
            "  -h, --help          this text\n");
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...) {
    va_list ap;
    fputs("copytraderctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* ---- output ------------------------------------------------------------------------------ */

static void print_json(json_t *v) {
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) puts(s);
    free(s);
}

/* A table of strings: the header row, then rows; columns padded to their widest cell. */
struct table {
    size_t ncol, nrow;
    char **cell; /* nrow x ncol, row 0 = header */
};

static void table_add(struct table *t, const char *const *vals) {
    char **c = realloc(t->cell, (t->nrow + 1) * t->ncol * sizeof(*c));
    if (!c) return;
    t->cell = c;
    for (size_t i = 0; i < t->ncol; i++) c[t->nrow * t->ncol + i] = strdup(vals[i] ? vals[i] : "");
    t->nrow++;
}

static void table_print(struct table *t) {
    size_t w[32] = {0};
    for (size_t r = 0; r < t->nrow; r++)
        for (size_t i = 0; i < t->ncol && i < 32; i++) {
            const char *s = t->cell[r * t->ncol + i];
            size_t n = s ? strlen(s) : 0;
            if (n > w[i]) w[i] = n;
        }
    for (size_t r = 0; r < t->nrow; r++) {
        for (size_t i = 0; i < t->ncol; i++) {
            const char *s = t->cell[r * t->ncol + i];
            if (i + 1 < t->ncol) printf("%-*s  ", (int)w[i], s ? s : "");
            else printf("%s", s ? s : "");
        }
        putchar('\n');
    }
    for (size_t k = 0; k < t->nrow * t->ncol; k++) free(t->cell[k]);
    free(t->cell);
    t->cell = NULL;
    t->nrow = 0;
}

/* ---- HTTP (the daemon) -------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t n;
};

static size_t on_body(char *data, size_t sz, size_t nm, void *ud) {
    struct buf *b = ud;
    size_t n = sz * nm;
    char *p = realloc(b->p, b->n + n + 1);
    if (!p) return 0;
    memcpy(p + b->n, data, n);
    b->n += n;
    p[b->n] = '\0';
    b->p = p;
    return n;
}

/* The daemon's JSON answer to method path in *out (NULL when the body is not JSON); the HTTP
 * status, or -1 (message printed) when the daemon cannot be reached. */
static long daemon_call(struct ctl *c, const char *method, const char *path, json_t **out) {
    char url[600], errbuf[CURL_ERROR_SIZE] = "";
    struct buf b = {0};
    long status = -1;
    CURL *h = curl_easy_init();
    *out = NULL;
    if (!h) {
        fail("out of memory");
        return -1;
    }
    snprintf(url, sizeof(url), "%s%s", c->base_url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        fail("daemon not reachable at %s: %s", c->base_url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (b.p) *out = json_loads(b.p, 0, NULL);
    }
    curl_easy_cleanup(h);
    free(b.p);
    return status;
}

/* ---- PostgreSQL (the journal) -------------------------------------------------------------- */

static int db_connect(struct ctl *c) {
    if (c->pg) return 0;
    c->pg = PQconnectdb(c->cfg->daemon.database);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        /* libpq's message names host and reason, never the password. */
        char *m = PQerrorMessage(c->pg);
        size_t n = strlen(m);
        while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) m[--n] = '\0';
        return fail("database error: cannot connect to the journal: %s", m);
    }
    return 0;
}

/* NULL (message printed) on error. */
static PGresult *db_query(struct ctl *c, const char *sql, int n, const char *const *params) {
    PGresult *res;
    if (db_connect(c)) return NULL;
    res = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fail("database error: %s", PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static const char *val(PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }

/* Result rows as an array of objects keyed by column name (every value a string or null). */
static json_t *rows_json(PGresult *r) {
    json_t *a = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *o = json_object();
        for (int k = 0; k < PQnfields(r); k++) json_object_set_new(o, PQfname(r, k), jstr(val(r, i, k)));
        json_array_append_new(a, o);
    }
    return a;
}

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* ---- commands ------------------------------------------------------------------------------ */

/* The daemon's live status of a rule from GET /state, or NULL. */
static const char *live_status(json_t *state, const char *id) {
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(state, "rules"), i, r) {
        if (strcmp(json_string_value(json_object_get(r, "id")) ?: "", id) == 0)
            return json_string_value(json_object_get(r, "status"));
    }
    return NULL;
}

static int cmd_rules(struct ctl *c) {
    static const char sql[] =
        "SELECT id, leader, follower, sizing, status,"
        " COALESCE(params->>'multiplier', '') AS multiplier, COALESCE(params->>'notional', '') AS notional,"
        " COALESCE(params->>'dry_run', '') AS dry_run FROM copy_rules ORDER BY id";
    json_t *state = NULL;
    PGresult *r = db_query(c, sql, 0, NULL);
    int rc = 0;
    if (!r) return 1;
    /* Live state when the daemon answers; the journal's otherwise (it may lag a pause by a moment). */
    if (daemon_call(c, "GET", "/state", &state) != 200) {
        json_decref(state);
        state = NULL;
        fprintf(stderr, "copytraderctl: showing the journal's rule states only\n");
    }
    if (c->json) {
        json_t *a = json_array();
        for (int i = 0; i < PQntuples(r); i++) {
            const char *live = state ? live_status(state, val(r, i, 0)) : NULL;
            json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:b}", "id", val(r, i, 0),
                                               "leader", val(r, i, 1), "follower", val(r, i, 2), "sizing",
                                               val(r, i, 3), "journal_status", val(r, i, 4), "status",
                                               jstr(live ? live : val(r, i, 4)), "multiplier", val(r, i, 5),
                                               "notional", val(r, i, 6), "dry_run",
                                               strcmp(val(r, i, 7), "true") == 0));
        }
        print_json(a);
        json_decref(a);
    } else {
        struct table t = {6, 0, NULL};
        table_add(&t, (const char *[]){"RULE", "STATE", "LEADER", "FOLLOWER", "SIZING", "JOURNAL"});
        for (int i = 0; i < PQntuples(r); i++) {
            const char *live = state ? live_status(state, val(r, i, 0)) : NULL;
            char sizing[128];
            const char *sz = val(r, i, 3);
            if (strcmp(sz, "fixed_notional") == 0) snprintf(sizing, sizeof(sizing), "%s %s", sz, val(r, i, 6));
            else snprintf(sizing, sizeof(sizing), "%s x%s", sz, val(r, i, 5));
            if (strcmp(val(r, i, 7), "true") == 0) strncat(sizing, " dry_run", sizeof(sizing) - strlen(sizing) - 1);
            table_add(&t, (const char *[]){val(r, i, 0), live ? live : val(r, i, 4), val(r, i, 1), val(r, i, 2),
                                           sizing, val(r, i, 4)});
        }
        table_print(&t);
    }
    json_decref(state);
    PQclear(r);
    return rc;
}

static int cmd_action(struct ctl *c, const char *op, const char *rule) {
    char path[400];
    json_t *ans = NULL;
    long st;
    int rc = 1;
    for (const char *p = rule; *p; p++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-", *p))
            return fail("unknown rule %s (rule ids are [A-Za-z0-9_.-])", rule);
    snprintf(path, sizeof(path), "/rules/%s/%s", rule, op);
    st = daemon_call(c, "POST", path, &ans);
    if (st < 0) goto out;
    if (st == 404) {
        fail("unknown rule %s (the daemon at %s does not run it, or it listens on a non-loopback "
             "address and has rule control off)", rule, c->base_url);
        goto out;
    }
    if (st != 200 || !json_is_string(json_object_get(ans, "status"))) {
        const char *e = json_string_value(json_object_get(ans, "error"));
        fail("%s %s: the daemon at %s answered HTTP %ld%s%s", op, rule, c->base_url, st, e ? ": " : "", e ? e : "");
        goto out;
    }
    if (c->json) print_json(ans);
    else printf("rule %s: %s\n", rule, json_string_value(json_object_get(ans, "status")));
    rc = 0;
out:
    json_decref(ans);
    return rc;
}

/* "90s", "15m", "1h", "2d" (or a bare number of seconds) -> seconds; -1 if malformed. */
static long parse_since(const char *s) {
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || n < 0) return -1;
    switch (*end) {
    case '\0': case 's': break;
    case 'm': n *= 60; break;
    case 'h': n *= 3600; break;
    case 'd': n *= 86400; break;
    default: return -1;
    }
    if (*end && end[1]) return -1;
    return n;
}

static int cmd_orders(struct ctl *c, const char *follower, const char *since, const char *limit) {
    static const char sql[] =
        "SELECT " TS("o.intent_at") " AS time, o.rule_id, o.symbol, o.side, o.qty::text AS qty, o.status,"
        " o.skip_reason, o.executed_qty::text AS executed_qty, o.avg_price::text AS avg_price,"
        " o.error_code::text AS error_code, o.error_msg, o.client_order_id, f.trade_id::text AS leader_trade_id"
        " FROM follower_orders o JOIN leader_fills f ON f.id = o.leader_fill_id"
        " WHERE o.follower = $1 AND o.intent_at >= now() - make_interval(secs => $2::bigint)"
        " ORDER BY o.intent_at, o.id LIMIT $3::bigint";
    char secs[32];
    long n = parse_since(since), lim = strtol(limit, NULL, 10);
    PGresult *r, *acc;
    if (n < 0) return fail("--since %s: expected a duration like 90s, 15m, 1h or 2d", since);
    if (lim <= 0) return fail("--limit %s: expected a positive number", limit);
    acc = db_query(c, "SELECT 1 FROM accounts WHERE name = $1", 1, (const char *[]){follower});
    if (!acc) return 1;
    if (PQntuples(acc) == 0) {
        PQclear(acc);
        return fail("unknown follower %s (no such account in the journal)", follower);
    }
    PQclear(acc);
    snprintf(secs, sizeof(secs), "%ld", n);
    r = db_query(c, sql, 3, (const char *[]){follower, secs, limit});
    if (!r) return 1;
    if (c->json) {
        json_t *a = rows_json(r);
        print_json(a);
        json_decref(a);
    } else {
        struct table t = {9, 0, NULL};
        table_add(&t, (const char *[]){"TIME", "RULE", "SYMBOL", "SIDE", "QTY", "STATUS", "EXECUTED", "REASON",
                                       "LEADER_TRADE"});
        for (int i = 0; i < PQntuples(r); i++) {
            char why[400] = "";
            if (val(r, i, 6)) snprintf(why, sizeof(why), "%s", val(r, i, 6));
            else if (val(r, i, 9) || val(r, i, 10))
                snprintf(why, sizeof(why), "%s %s", val(r, i, 9) ? val(r, i, 9) : "", val(r, i, 10) ? val(r, i, 10) : "");
            table_add(&t, (const char *[]){val(r, i, 0), val(r, i, 1), val(r, i, 2), val(r, i, 3), val(r, i, 4),
                                           val(r, i, 5), val(r, i, 7) ? val(r, i, 7) : "-", why[0] ? why : "-",
                                           val(r, i, 12)});
        }
        table_print(&t);
    }
    PQclear(r);
    return 0;
}

static int cmd_explain(struct ctl *c, const char *trade_id, const char *account, const char *symbol) {
    /* Every rule of the fill's leader, with its intent for this fill if it made one: a rule with no
     * row made no intent (disabled, or added after the fill). */
    static const char sql_fills[] =
        "SELECT id::text, account, symbol, trade_id::text, order_id::text, side, qty::text, price::text,"
        " " TS("event_time") ", " TS("received_at") " FROM leader_fills"
        " WHERE trade_id = $1::text AND ($2::text IS NULL OR account = $2) AND ($3::text IS NULL OR symbol = $3)"
        " ORDER BY id";
    static const char sql_rules[] =
        "SELECT r.id AS rule, r.follower, r.status AS rule_status, o.status, o.side, o.qty::text AS qty,"
        " o.reduce_only::text AS reduce_only, o.order_type, o.skip_reason, o.executed_qty::text AS executed_qty,"
        " o.error_code::text AS error_code, o.error_msg, o.client_order_id"
        " FROM copy_rules r LEFT JOIN follower_orders o ON o.rule_id = r.id AND o.leader_fill_id = $1::bigint"
        /* follower_orders is partitioned by the fill's time (sql/007): naming it lets the
         * executor skip every other month's partition */
        "  AND o.leader_event_time = (SELECT event_time FROM leader_fills WHERE id = $1::bigint)"
        " WHERE r.leader = $2 OR o.id IS NOT NULL ORDER BY r.id, o.id";
    PGresult *f;
    json_t *all = json_array();
    int rc = 0;
    if (!*trade_id) {
        json_decref(all);
        return fail("explain: the trade id is empty");
    }
    f = db_query(c, sql_fills, 3, (const char *[]){trade_id, account, symbol});
    if (!f) {
        json_decref(all);
        return 1;
    }
    if (PQntuples(f) == 0) {
        PQclear(f);
        json_decref(all);
        return fail("no leader fill with trade id %s%s%s%s%s in the journal", trade_id, account ? " of " : "",
                    account ? account : "", symbol ? " on " : "", symbol ? symbol : "");
    }
    for (int i = 0; i < PQntuples(f); i++) {
        PGresult *r = db_query(c, sql_rules, 2, (const char *[]){val(f, i, 0), val(f, i, 1)});
        if (!r) {
            rc = 1;
            break;
        }
        if (c->json) {
            json_array_append_new(all, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}",
                                                 "account", val(f, i, 1), "symbol", val(f, i, 2), "trade_id",
                                                 val(f, i, 3), "order_id", val(f, i, 4), "side", val(f, i, 5),
                                                 "qty", val(f, i, 6), "price", val(f, i, 7), "event_time",
                                                 val(f, i, 8), "received_at", val(f, i, 9), "rules", rows_json(r)));
        } else {
            struct table t = {8, 0, NULL};
            printf("leader fill %s %s trade %s (order %s): %s %s @ %s, traded %s, received %s\n", val(f, i, 1),
                   val(f, i, 2), val(f, i, 3), val(f, i, 4), val(f, i, 5), val(f, i, 6), val(f, i, 7),
                   val(f, i, 8), val(f, i, 9));
            table_add(&t, (const char *[]){"RULE", "FOLLOWER", "DECISION", "SIDE", "QTY", "TYPE", "REASON", "CLIENT_ID"});
            for (int k = 0; k < PQntuples(r); k++) {
                char why[400] = "", type[64];
                const char *st = val(r, k, 3);
                if (val(r, k, 8)) snprintf(why, sizeof(why), "%s", val(r, k, 8));
                else if (val(r, k, 10) || val(r, k, 11))
                    snprintf(why, sizeof(why), "%s %s", val(r, k, 10) ? val(r, k, 10) : "", val(r, k, 11) ? val(r, k, 11) : "");
                else if (!st) snprintf(why, sizeof(why), "no intent (rule %s now)", val(r, k, 2));
                snprintf(type, sizeof(type), "%s%s", val(r, k, 7) ? val(r, k, 7) : "-",
                         val(r, k, 6) && strcmp(val(r, k, 6), "true") == 0 ? " reduce_only" : "");
                table_add(&t, (const char *[]){val(r, k, 0), val(r, k, 1), st ? st : "none",
                                               val(r, k, 4) ? val(r, k, 4) : "-", val(r, k, 5) ? val(r, k, 5) : "-",
                                               type, why[0] ? why : "-", val(r, k, 12) ? val(r, k, 12) : "-"});
            }
            table_print(&t);
        }
        PQclear(r);
    }
    if (c->json && rc == 0) print_json(all);
    json_decref(all);
    PQclear(f);
    return rc;
}

static int cmd_status(struct ctl *c) {
    static const char sql_leaders[] =
        "SELECT a.name, l.last_trade, " TS("l.last_event") ", " TS("l.last_received") ","
        " round(extract(epoch FROM now() - l.last_received) * 1000)::bigint::text, l.n::text"
        " FROM accounts a LEFT JOIN LATERAL (SELECT (array_agg(f.trade_id ORDER BY f.id DESC))[1] AS last_trade,"
        "   max(f.event_time) AS last_event, max(f.received_at) AS last_received, count(f.id) AS n"
        "   FROM leader_fills f WHERE f.account = a.name) l ON true"
        " WHERE EXISTS (SELECT 1 FROM copy_rules r WHERE r.leader = a.name AND r.status <> 'removed')"
        " ORDER BY a.name";
    static const char sql_rules[] =
        "SELECT status, count(*)::text FROM copy_rules GROUP BY status ORDER BY status";
    json_t *state = NULL, *leaders = NULL, *by_state = json_object(), *live_by_state = json_object();
    PGresult *l = NULL, *rs = NULL;
    long st = daemon_call(c, "GET", "/state", &state);
    int rc = 1;
    size_t i;
    json_t *v;
    if (st < 0) goto out;
    if (st != 200 || !json_is_array(json_object_get(state, "leaders"))) {
        fail("status: the daemon at %s answered HTTP %ld to /state", c->base_url, st);
        goto out;
    }
    if (!(l = db_query(c, sql_leaders, 0, NULL)) || !(rs = db_query(c, sql_rules, 0, NULL))) goto out;
    json_array_foreach(json_object_get(state, "rules"), i, v) {
        const char *s = json_string_value(json_object_get(v, "status"));
        if (!s) continue;
        json_object_set_new(live_by_state, s, json_integer(json_integer_value(json_object_get(live_by_state, s)) + 1));
    }
    for (int k = 0; k < PQntuples(rs); k++)
        json_object_set_new(by_state, val(rs, k, 0), json_integer(strtoll(val(rs, k, 1), NULL, 10)));
    leaders = json_array();
    json_array_foreach(json_object_get(state, "leaders"), i, v) {
        const char *name = json_string_value(json_object_get(v, "account"));
        json_t *o = json_pack("{s:s, s:O, s:O}", "account", name ? name : "?", "exchange",
                              json_object_get(v, "exchange"), "stream_up", json_object_get(v, "stream_up"));
        for (int k = 0; o && name && k < PQntuples(l); k++) {
            if (strcmp(val(l, k, 0), name) != 0) continue;
            json_object_set_new(o, "fills", json_integer(strtoll(val(l, k, 5), NULL, 10)));
            json_object_set_new(o, "last_trade_id", jstr(val(l, k, 1)));
            json_object_set_new(o, "last_fill_time", jstr(val(l, k, 2)));
            json_object_set_new(o, "last_fill_received_at", jstr(val(l, k, 3)));
            json_object_set_new(o, "journal_lag_ms",
                                val(l, k, 4) ? json_integer(strtoll(val(l, k, 4), NULL, 10)) : json_null());
        }
        if (o) json_array_append_new(leaders, o);
    }
    if (c->json) {
        json_t *out = json_pack("{s:O, s:O, s:O, s:O}", "ready", json_object_get(state, "ready") ?: json_false(),
                                "leaders", leaders, "rules_live", live_by_state, "rules_journal", by_state);
        print_json(out);
        json_decref(out);
    } else {
        struct table t = {6, 0, NULL};
        const char *k;
        printf("daemon at %s: %s\n", c->base_url,
               json_is_true(json_object_get(state, "ready")) ? "ready (copying)" : "starting");
        table_add(&t, (const char *[]){"LEADER", "STREAM", "FILLS", "LAST_TRADE", "LAST_FILL", "LAG"});
        json_array_foreach(leaders, i, v) {
            char fills[32] = "0", lag[48] = "-";
            json_t *lg = json_object_get(v, "journal_lag_ms");
            snprintf(fills, sizeof(fills), "%lld", (long long)json_integer_value(json_object_get(v, "fills")));
            if (json_is_integer(lg)) {
                long long ms = json_integer_value(lg);
                if (ms < 10000) snprintf(lag, sizeof(lag), "%lldms", ms);
                else snprintf(lag, sizeof(lag), "%llds", ms / 1000);
            }
            table_add(&t, (const char *[]){json_string_value(json_object_get(v, "account")),
                                           json_is_true(json_object_get(v, "stream_up")) ? "up" : "DOWN", fills,
                                           json_string_value(json_object_get(v, "last_trade_id")) ?: "-",
                                           json_string_value(json_object_get(v, "last_fill_time")) ?: "-", lag});
        }
        table_print(&t);
        printf("rules:");
        json_object_foreach(live_by_state, k, v) printf(" %s %lld", k, (long long)json_integer_value(v));
        printf("\n");
    }
    rc = 0;
out:
    PQclear(l);
    PQclear(rs);
    json_decref(leaders);
    json_decref(by_state);
    json_decref(live_by_state);
    json_decref(state);
    return rc;
}

/* ---- main ---------------------------------------------------------------------------------- */

static int load(struct ctl *c, const char *path) {
    struct cfg_errors errs = {0};
    const char *host;
    c->cfg = cfg_load_all(path, &errs);
    if (!c->cfg) {
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", errs.msg[i]);
        cfg_errors_reset(&errs);
        return fail("cannot read the daemon's configuration %s", path);
    }
    cfg_errors_reset(&errs);
    host = c->cfg->daemon.http_listen.host ? c->cfg->daemon.http_listen.host : "127.0.0.1";
    /* A wildcard listener is reached on loopback. */
    if (strcmp(host, "0.0.0.0") == 0) host = "127.0.0.1";
    else if (strcmp(host, "::") == 0) host = "::1";
    snprintf(c->base_url, sizeof(c->base_url), strchr(host, ':') ? "http://[%s]:%u" : "http://%s:%u", host,
             (unsigned)c->cfg->daemon.http_listen.port);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
        {"follower", required_argument, NULL, 'f'}, {"since", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'}, {"account", required_argument, NULL, 'a'},
        {"symbol", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ctl c = {0};
    const char *path = DEFAULT_CONFIG, *follower = NULL, *since = "1h", *limit = "1000", *account = NULL,
               *symbol = NULL, *cmd;
    int o, rc;

    while ((o = getopt_long(argc, argv, "c:jh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 'j': c.json = true; break;
        case 'f': follower = optarg; break;
        case 's': since = optarg; break;
        case 'l': limit = optarg; break;
        case 'a': account = optarg; break;
        case 'S': symbol = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = argv[optind++];
    bool one_arg = !strcmp(cmd, "pause") || !strcmp(cmd, "resume") || !strcmp(cmd, "reset") || !strcmp(cmd, "explain");
    if (one_arg ? argc - optind != 1 : argc - optind != 0) {
        fprintf(stderr, "copytraderctl: %s takes %s\n", cmd, one_arg ? "exactly one argument" : "no argument");
        usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "orders") == 0 && !follower) {
        fprintf(stderr, "copytraderctl: orders needs --follower ACCOUNT\n");
        return 2;
    }
    if (strcmp(cmd, "status") && strcmp(cmd, "rules") && strcmp(cmd, "orders") && !one_arg) {
        fprintf(stderr, "copytraderctl: unknown command %s\n", cmd);
        usage(stderr);
        return 2;
    }
    if (load(&c, path)) return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(cmd, "status")) rc = cmd_status(&c);
    else if (!strcmp(cmd, "rules")) rc = cmd_rules(&c);
    else if (!strcmp(cmd, "orders")) rc = cmd_orders(&c, follower, since, limit);
    else if (!strcmp(cmd, "explain")) rc = cmd_explain(&c, argv[optind], account, symbol);
    else rc = cmd_action(&c, cmd, argv[optind]);
    if (c.pg) PQfinish(c.pg);
    curl_global_cleanup();
    cfg_free(c.cfg);
    return rc;
}
