/* copytraderd: the daemon's top level. Loads and checks the config, migrates and syncs the
 * journal, then runs everything on one libuv loop: lws (leader streams, HTTP endpoints), curl
 * multi (REST), libpq (journal), hiredis (cache). SIGTERM/SIGINT drain and exit; a second one
 * exits at once. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <libwebsockets.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "config.h"
#include "copier.h"
#include "exch_metrics.h"
#include "exchange.h"
#include "health.h"
#include "http_server.h"
#include "journal.h"
#include "lat_hist.h"
#include "log.h"
#include "metrics.h"
#include "pg_pool.h"
#include "redis_client.h"
#include "rest_pool.h"

#define TAG "main"

/* What journal_sync_config records of a configuration: its accounts and rules, with each rule's
 * parameters as JSON (also how a reload tells a changed rule from an unchanged one). */
struct jsync {
    struct journal_account *ja;
    struct journal_rule *jr;
    char *params; /* every rule's params_json, packed */
    size_t na, nr;
};

#define RULES_PREFIX "/rules/"

struct daemon {
    struct cfg *cfg;
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    uv_timer_t ready_timer;
    uv_timer_t watchdog_timer; /* WATCHDOG=1 at half of systemd's WatchdogSec, if it set one */
    struct lws_context *lws;
    struct met_registry *metrics;
    struct met_hist *m_jnl_fill, *m_jnl_results, *m_jnl_spool; /* journal write latency */
    struct http_server *http;
    struct rds *redis;
    struct rest_pool *rest;
    struct exch_metrics *xm; /* REST latency and answers, rate budgets, breakers */
    struct journal *journal;
    struct exch_account **accounts;
    struct copier *copier;
    struct copier_hwm *hwm;
    size_t n_hwm;
    struct copier_seen *seen; /* recent journaled fills (strings in seen_res) */
    size_t n_seen;
    PGresult *seen_res;
    /* Rules the journal has stopped (a loss stop of an earlier run) or operator-paused. */
    struct rule_state {
        char *id;
        bool close_only, paused;
    } *rule_states;
    size_t n_rule_states;
    int64_t *backfill_since; /* per configured account: its last journaled fill time (ms), 0 = none */
    struct copier_pending *pending; /* follower orders without a final state, for reconciliation */
    size_t n_pending;
    int stopping; /* 0 running, 1 draining, 2 tearing down */
    int exit_code;
    bool notified_ready;
    char last_status[200]; /* the last STATUS= sent: sent again only when it changes */
    /* SIGHUP reload. d->cfg stays what the daemon started with (daemon section, accounts: they
     * need a restart); rules_cfg is the configuration the running rules come from. */
    const char *cfg_path;
    struct cfg *rules_cfg;
    uv_signal_t sighup;
    bool reload_busy, reload_again;
    struct met_counter *m_reload_ok, *m_reload_rejected;
    struct jsync *sync; /* what the journal holds of rules_cfg (a reload diffs against it) */
    /* PostgreSQL connections for database work off the hot path (reloads); the journal keeps
     * its own ordered session. */
    struct pgp *pool;
    struct met_hist *m_pool_wait;
    uint64_t pool_err_at;       /* uv_now of the last pool error logged (at most one per 10 s) */
    unsigned pool_err_dropped;  /* ... and how many were not logged since */
    bool pool_err_logged;
    uint64_t sent_ring[60]; /* copier_orders_sent at each of the last 60 ready ticks */
    size_t sent_pos;
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: copytraderd --config FILE [--check-config]\n"
            "       copytraderd --check-config FILE\n"
            "  -c, --config FILE     the daemon's YAML configuration (trader files: daemon.traders_dir)\n"
            "  -t, --check-config    validate the configuration, every trader file and the secret\n"
            "                        files, then exit\n"
            "  -h, --help            this text\n");
}

static void notify(const char *msg) {
#ifdef HAVE_LIBSYSTEMD
    sd_notify(0, msg);
#else
    (void)msg;
#endif
}

/* ---- start-up steps before the loop ---------------------------------------------------- */

static struct cfg *load_config(const char *path, bool check_only) {
    struct cfg_errors errs = {0};
    struct cfg *c = cfg_load_all(path, &errs); /* the main file and every traders_dir file */
    if (!c) {
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", errs.msg[i]);
        if (errs.dropped) fprintf(stderr, "... and %zu more errors\n", errs.dropped);
        fprintf(stderr, "copytraderd: configuration %s is invalid\n", path);
    } else if (check_only) {
        printf("copytraderd: configuration %s is ok (%zu accounts, %zu copy rules, %zu trader files)\n",
               path, c->n_accounts, c->n_rules, c->n_files - 1);
    }
    cfg_errors_reset(&errs);
    return c;
}

static void jsync_free(struct jsync *s) {
    free(s->ja);
    free(s->jr);
    free(s->params);
    memset(s, 0, sizeof(*s));
}

/* A rule's parameters as the journal records them (JSON); snprintf's return. */
static int rule_params_json(const struct cfg_rule *cr, char *buf, size_t n) {
    char m[DEC_STR_MAX], nt[DEC_STR_MAX], mpn[DEC_STR_MAX], dl[DEC_STR_MAX], dd[DEC_STR_MAX];
    dec_format(cr->multiplier, m, sizeof(m));
    dec_format(cr->notional, nt, sizeof(nt));
    dec_format(cr->max_position_notional, mpn, sizeof(mpn));
    dec_format(cr->daily_loss_limit, dl, sizeof(dl));
    dec_format(cr->max_drawdown_pct, dd, sizeof(dd));
    return snprintf(buf, n,
                    "{\"multiplier\":\"%s\",\"notional\":\"%s\",\"reverse\":%s,\"force_min\":%s,"
                    "\"coalesce\":%s,\"max_position_notional\":\"%s\",\"max_leverage\":%d,"
                    "\"sides\":\"%s\",\"max_slippage_bps\":%d,\"max_signal_age_ms\":%d,"
                    "\"daily_loss_limit\":\"%s\",\"max_drawdown_pct\":\"%s\",\"order_type\":\"%s\","
                    "\"dry_run\":%s,\"symbols\":%zu,\"exclude_symbols\":%zu}",
                    m, nt, cr->reverse ? "true" : "false", cr->force_min ? "true" : "false",
                    cr->coalesce ? "true" : "false", mpn, cr->max_leverage, cfg_sides_name(cr->sides),
                    cr->max_slippage_bps, cr->max_signal_age_ms, dl, dd, cfg_order_type_name(cr->order_type),
                    cr->dry_run ? "true" : "false", cr->symbols.n, cr->exclude_symbols.n);
}

/* The parameters are packed end to end in one block (about 330 bytes a rule; a fixed 768-byte
 * slot each was 7 MiB of resident memory with 10,000 rules, kept for the daemon's life). */
static int jsync_build(struct jsync *s, const struct cfg *c) {
    size_t total = 1, used = 0;
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < c->n_rules; i++) {
        int len = rule_params_json(&c->rules[i], NULL, 0);
        if (len < 0) return -EINVAL;
        total += (size_t)len + 1;
    }
    s->ja = calloc(c->n_accounts + 1, sizeof(*s->ja));
    s->jr = calloc(c->n_rules + 1, sizeof(*s->jr));
    s->params = malloc(total);
    if (!s->ja || !s->jr || !s->params) {
        jsync_free(s);
        return -ENOMEM;
    }
    s->na = c->n_accounts;
    s->nr = c->n_rules;
    for (size_t i = 0; i < c->n_accounts; i++)
        s->ja[i] = (struct journal_account){c->accounts[i].name, exch_kind_name(c->accounts[i].exchange)};
    for (size_t i = 0; i < c->n_rules; i++) {
        const struct cfg_rule *cr = &c->rules[i];
        char *p = s->params + used;
        used += (size_t)rule_params_json(cr, p, total - used) + 1;
        s->jr[i] = (struct journal_rule){cr->id, c->accounts[cr->leader].name,
                                         c->accounts[cr->follower].name,
                                         cfg_sizing_name(cr->sizing), p, cr->enabled};
    }
    return 0;
}

static int setup_journal(struct daemon *d) {
    char err[512];
    struct jsync s;
    d->sync = calloc(1, sizeof(*d->sync));
    if (!d->sync) return -ENOMEM;
    int r = journal_migrate(d->cfg->daemon.database, err, sizeof(err));
    if (r < 0) {
        log_error(TAG, "journal: migration failed: %s", err);
        return r;
    }
    log_info(TAG, "journal: %d migrations applied", r);
    if ((r = jsync_build(&s, d->cfg)) < 0) return r;
    r = journal_sync_config(d->cfg->daemon.database, s.ja, s.na, s.jr, s.nr, err, sizeof(err));
    if (r < 0) log_error(TAG, "journal: cannot record the configuration: %s", err);
    else if (journal_audit(d->cfg->daemon.database, "config_load", d->cfg->files[0], true,
                           NULL, err, sizeof(err)) < 0)
        log_warn(TAG, "journal: cannot write the audit log: %s", err);
    *d->sync = s;
    return r;
}

/* What the journal remembers of earlier runs, read once, synchronously, before the loop starts:
 * the highest trade id per (leader, symbol) (fills at or below it were copied already, see
 * copier.h), and the rules a loss stop or an operator's pause left stopped. */
static int load_journaled_state(struct daemon *d) {
    PGconn *pg = PQconnectdb(d->cfg->daemon.database);
    PGresult *res = NULL;
    int r = -EIO;
    if (PQstatus(pg) != CONNECTION_OK) {
        log_error(TAG, "journal: cannot connect: %s", PQerrorMessage(pg));
        goto out;
    }
    /* Per account over the identity index (it carries trade_seq): no scan of the whole table
     * (tests/integration/test_schema_explain.c checks the plan). */
    res = PQexec(pg, "SELECT a.name, s.symbol, s.seq FROM accounts a"
                     " CROSS JOIN LATERAL (SELECT symbol, max(trade_seq) AS seq FROM leader_fills f"
                     "   WHERE f.account = a.name AND trade_seq IS NOT NULL GROUP BY symbol) s");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error(TAG, "journal: cannot read the last trade ids: %s", PQerrorMessage(pg));
        goto out;
    }
    d->n_hwm = (size_t)PQntuples(res);
    d->hwm = calloc(d->n_hwm + 1, sizeof(*d->hwm));
    if (!d->hwm) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < d->n_hwm; i++) {
        d->hwm[i].account = strdup(PQgetvalue(res, (int)i, 0));
        d->hwm[i].symbol = strdup(PQgetvalue(res, (int)i, 1));
        d->hwm[i].trade_seq = strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
        if (!d->hwm[i].account || !d->hwm[i].symbol) {
            r = -ENOMEM;
            goto out;
        }
    }
    PQclear(res);
    res = PQexec(pg, "SELECT id, status = 'close_only', operator_paused FROM copy_rules"
                     " WHERE status = 'close_only' OR operator_paused");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error(TAG, "journal: cannot read rule states: %s", PQerrorMessage(pg));
        goto out;
    }
    d->n_rule_states = (size_t)PQntuples(res);
    d->rule_states = calloc(d->n_rule_states + 1, sizeof(*d->rule_states));
    if (!d->rule_states) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < d->n_rule_states; i++) {
        struct rule_state *rs = &d->rule_states[i];
        rs->id = strdup(PQgetvalue(res, (int)i, 0));
        rs->close_only = PQgetvalue(res, (int)i, 1)[0] == 't';
        rs->paused = PQgetvalue(res, (int)i, 2)[0] == 't';
        if (!rs->id) {
            r = -ENOMEM;
            goto out;
        }
        if (rs->close_only)
            log_warn(TAG, "rule %s stays close_only (a loss stop tripped earlier; an operator reset clears it)",
                     rs->id);
        if (rs->paused) log_warn(TAG, "rule %s stays paused (an operator paused it; resume clears it)", rs->id);
    }
    PQclear(res);
    /* Where each leader's start-up backfill begins: its last journaled fill. */
    res = PQexec(pg, "SELECT a.name, (extract(epoch FROM l.t) * 1000)::bigint FROM accounts a"
                     " CROSS JOIN LATERAL (SELECT max(event_time) AS t FROM leader_fills f"
                     "   WHERE f.account = a.name) l WHERE l.t IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error(TAG, "journal: cannot read the last fill times: %s", PQerrorMessage(pg));
        goto out;
    }
    d->backfill_since = calloc(d->cfg->n_accounts + 1, sizeof(*d->backfill_since));
    if (!d->backfill_since) {
        r = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        long k = cfg_account_find(d->cfg, PQgetvalue(res, i, 0));
        if (k >= 0) d->backfill_since[k] = strtoll(PQgetvalue(res, i, 1), NULL, 10);
    }
    PQclear(res);
    /* Orders an earlier run left without a final state: reconciled before the streams open. */
    res = PQexec(pg, "SELECT client_order_id, follower, symbol, side, qty::text, reduce_only, order_type,"
                     " coalesce(limit_price::text, '0'), position_side,"
                     " (extract(epoch FROM intent_at) * 1000)::bigint"
                     " FROM follower_orders"
                     " WHERE status IN ('intent', 'sent', 'unknown', 'acked', 'partially_filled') ORDER BY id");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error(TAG, "journal: cannot read the open follower orders: %s", PQerrorMessage(pg));
        goto out;
    }
    d->n_pending = (size_t)PQntuples(res);
    d->pending = calloc(d->n_pending + 1, sizeof(*d->pending));
    if (!d->pending) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < d->n_pending; i++) {
        struct copier_pending *p = &d->pending[i];
        const char *ps = PQgetvalue(res, (int)i, 8);
        p->client_id = strdup(PQgetvalue(res, (int)i, 0));
        p->follower = strdup(PQgetvalue(res, (int)i, 1));
        p->symbol = strdup(PQgetvalue(res, (int)i, 2));
        if (!p->client_id || !p->follower || !p->symbol) {
            r = -ENOMEM;
            goto out;
        }
        p->side = strcmp(PQgetvalue(res, (int)i, 3), "SELL") == 0 ? MKT_SELL : MKT_BUY;
        if (dec_parse_cstr(PQgetvalue(res, (int)i, 4), &p->qty) < 0 ||
            dec_parse_cstr(PQgetvalue(res, (int)i, 7), &p->price) < 0) {
            log_error(TAG, "journal: order %s: unreadable quantity or price", p->client_id);
            goto out;
        }
        p->reduce_only = PQgetvalue(res, (int)i, 5)[0] == 't';
        p->limit_ioc = strcmp(PQgetvalue(res, (int)i, 6), "LIMIT_IOC") == 0;
        p->pos_side_known = !PQgetisnull(res, (int)i, 8);
        p->pos_side = !strcmp(ps, "LONG") ? MKT_PS_LONG : !strcmp(ps, "SHORT") ? MKT_PS_SHORT : MKT_PS_BOTH;
        p->intent_ms = strtoll(PQgetvalue(res, (int)i, 9), NULL, 10);
    }
    if (d->n_pending)
        log_warn(TAG, "journal: %zu follower orders have no final state: reconciling them by client id",
                 d->n_pending);
    PQclear(res);
    /* Each leader's fills of the 10 minutes before its newest one, for the in-memory dedupe
     * (copier.h, struct copier_seen): two index probes per account. */
    res = PQexec(pg, "SELECT a.name, r.symbol, r.trade_id FROM accounts a"
                     " CROSS JOIN LATERAL (SELECT max(event_time) AS t FROM leader_fills m"
                     "   WHERE m.account = a.name) l"
                     " CROSS JOIN LATERAL (SELECT symbol, trade_id FROM leader_fills f"
                     "   WHERE f.account = a.name AND f.event_time >= l.t - interval '10 minutes'"
                     "   ORDER BY f.event_time DESC LIMIT 20000) r");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_error(TAG, "journal: cannot read the recent leader fills: %s", PQerrorMessage(pg));
        goto out;
    }
    d->n_seen = (size_t)PQntuples(res);
    d->seen = calloc(d->n_seen + 1, sizeof(*d->seen));
    if (!d->seen) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < d->n_seen; i++)
        d->seen[i] = (struct copier_seen){PQgetvalue(res, (int)i, 0), PQgetvalue(res, (int)i, 1),
                                          PQgetvalue(res, (int)i, 2)};
    d->seen_res = res;
    res = NULL;
    r = 0;
out:
    PQclear(res);
    PQfinish(pg);
    return r;
}

static void free_journaled_state(struct daemon *d) {
    for (size_t i = 0; i < d->n_hwm; i++) {
        free((char *)d->hwm[i].account);
        free((char *)d->hwm[i].symbol);
    }
    free(d->hwm);
    d->hwm = NULL;
    d->n_hwm = 0;
    free(d->seen);
    d->seen = NULL;
    d->n_seen = 0;
    PQclear(d->seen_res);
    d->seen_res = NULL;
    for (size_t i = 0; i < d->n_rule_states; i++) free(d->rule_states[i].id);
    free(d->rule_states);
    d->rule_states = NULL;
    d->n_rule_states = 0;
    free(d->backfill_since);
    d->backfill_since = NULL;
    for (size_t i = 0; i < d->n_pending; i++) {
        free((char *)d->pending[i].client_id);
        free((char *)d->pending[i].follower);
        free((char *)d->pending[i].symbol);
    }
    free(d->pending);
    d->pending = NULL;
    d->n_pending = 0;
}

static const struct rule_state *journaled_state(const struct daemon *d, const char *id) {
    for (size_t i = 0; i < d->n_rule_states; i++)
        if (strcmp(d->rule_states[i].id, id) == 0) return &d->rule_states[i];
    return NULL;
}

/* The engine's view of a configured rule; its strings point into the config, which outlives it. */
static struct copier_rule rule_from_config(const struct daemon *d, const struct cfg *c,
                                           const struct cfg_rule *r) {
    const struct rule_state *js = journaled_state(d, r->id);
    static const enum copy_sizing sizing[] = {
        [CFG_SIZING_MULTIPLIER] = COPY_SIZING_MULTIPLIER,
        [CFG_SIZING_FIXED_NOTIONAL] = COPY_SIZING_FIXED_NOTIONAL,
        [CFG_SIZING_EQUITY_RATIO] = COPY_SIZING_EQUITY_RATIO,
    };
    return (struct copier_rule){
        .params = {
            .id = r->id,
            .sizing = sizing[r->sizing],
            .multiplier = r->sizing == CFG_SIZING_FIXED_NOTIONAL ? DEC_ZERO : r->multiplier,
            .fixed_notional = r->notional,
            .reverse = r->reverse,
            .force_min = r->force_min,
            .dry_run = r->dry_run,
            .order_type = r->order_type == CFG_ORDER_TYPE_LIMIT_IOC ? COPY_ORDER_LIMIT_IOC : COPY_ORDER_MARKET,
            .sides = r->sides == CFG_SIDES_LONG_ONLY    ? COPY_SIDES_LONG_ONLY
                     : r->sides == CFG_SIDES_SHORT_ONLY ? COPY_SIDES_SHORT_ONLY
                                                        : COPY_SIDES_BOTH,
            .allow_symbols = (const char *const *)r->symbols.items,
            .n_allow = r->symbols.n,
            .deny_symbols = (const char *const *)r->exclude_symbols.items,
            .n_deny = r->exclude_symbols.n,
            .max_position_notional = r->max_position_notional,
            .max_leverage = dec_from_int(r->max_leverage),
            .max_slippage_bps = dec_from_int(r->max_slippage_bps),
            .max_signal_age_ms = r->max_signal_age_ms,
            .daily_loss_limit = r->daily_loss_limit,
            .max_drawdown_pct = r->max_drawdown_pct,
        },
        /* The copier's accounts are those of the configuration the daemon started with. */
        .leader = c == d->cfg ? r->leader : (size_t)cfg_account_find(d->cfg, c->accounts[r->leader].name),
        .follower = c == d->cfg ? r->follower
                                : (size_t)cfg_account_find(d->cfg, c->accounts[r->follower].name),
        .enabled = r->enabled,
        .coalesce = r->coalesce,
        .close_only = js && js->close_only,
        .paused = js && js->paused,
    };
}

/* ---- HTTP endpoints --------------------------------------------------------------------- */

static int serve_metrics(void *ud, const struct http_request *req, struct http_response *resp) {
    struct daemon *d = ud;
    char *body = NULL;
    size_t len = 0;
    (void)req;
    if (met_render(d->metrics, &body, &len) < 0) return http_response_set(resp, 500, "text/plain", "out of memory\n", 14);
    return http_response_take(resp, 200, MET_CONTENT_TYPE, body, len);
}

static int serve_live(void *ud, const struct http_request *req, struct http_response *resp) {
    (void)ud;
    (void)req;
    static const char ok[] = "{\"status\":\"ok\"}\n";
    return http_response_set(resp, 200, "application/json", ok, sizeof(ok) - 1);
}

/* Operator endpoints (copytraderctl). They change a rule's state, so they live on the same
 * listener as /metrics, which binds 127.0.0.1 unless the operator configures otherwise. */
/* POST /rules/<id>/pause|resume|reset (one prefix route for every rule, those added by reloads
 * too: three exact routes per rule were 7 MB with 10,000 rules). */
static int serve_rule_action(void *ud, const struct http_request *req, struct http_response *resp) {
    static const char *const ops[] = {"pause", "resume", "reset"};
    static const enum copier_rule_op op_of[] = {COPIER_RULE_PAUSE, COPIER_RULE_RESUME, COPIER_RULE_RESET};
    struct daemon *d = ud;
    const char *status = NULL, *rest = req->path + strlen(RULES_PREFIX), *slash = strrchr(rest, '/');
    char idbuf[128]; /* rule ids are at most 63 characters (config.c) */
    size_t k = 0;
    json_t *js;
    char *id;
    int r;
    while (slash && k < 3 && strcmp(slash + 1, ops[k])) k++;
    if (!slash || k == 3 || slash == rest || (size_t)(slash - rest) >= sizeof(idbuf)) {
        http_response_status(resp, 404);
        return http_response_printf(resp, "not found\n");
    }
    memcpy(idbuf, rest, (size_t)(slash - rest));
    idbuf[slash - rest] = '\0';
    http_response_type(resp, "application/json");
    if (!d->copier || d->stopping) {
        http_response_status(resp, 503);
        return http_response_printf(resp, "{\"error\":\"daemon is stopping\"}\n");
    }
    r = copier_rule_action(d->copier, idbuf, op_of[k], &status);
    if (r == -ENOENT) {
        http_response_status(resp, 404);
        return http_response_printf(resp, "{\"error\":\"unknown rule\"}\n");
    }
    if (r < 0) return r;
    js = json_string(idbuf); /* ids are config text: quote them properly */
    id = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    if (!id) return -ENOMEM;
    r = http_response_printf(resp, "{\"rule\":%s,\"status\":\"%s\"}\n", id, status);
    free(id);
    return r;
}

static int serve_state(void *ud, const struct http_request *req, struct http_response *resp) {
    struct daemon *d = ud;
    char *body;
    (void)req;
    if (!d->copier) {
        http_response_status(resp, 503);
        http_response_type(resp, "application/json");
        return http_response_printf(resp, "{\"error\":\"not started\"}\n");
    }
    body = copier_state_json(d->copier);
    if (!body) return -ENOMEM;
    return http_response_take(resp, 200, "application/json", body, strlen(body));
}

/* GET /debug/latency: the per-fill latency histograms (copier.h), for benchmarks and operators;
 * POST /debug/latency/reset empties them (a benchmark's warm-up is not measured). */
static int serve_latency(void *ud, const struct http_request *req, struct http_response *resp) {
    struct daemon *d = ud;
    (void)req;
    if (!d->copier) {
        http_response_status(resp, 503);
        http_response_type(resp, "application/json");
        return http_response_printf(resp, "{\"error\":\"not started\"}\n");
    }
    json_t *o = json_pack("{so so}", "fill_send_us", lat_hist_json(copier_fill_latency(d->copier, COPIER_LAT_SEND)),
                          "fill_ack_us", lat_hist_json(copier_fill_latency(d->copier, COPIER_LAT_ACK)));
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!body) return -ENOMEM;
    return http_response_take(resp, 200, "application/json", body, strlen(body));
}

static int serve_latency_reset(void *ud, const struct http_request *req, struct http_response *resp) {
    struct daemon *d = ud;
    (void)req;
    if (d->copier) copier_fill_latency_reset(d->copier);
    http_response_status(resp, d->copier ? 204 : 503);
    return 0;
}

static int route_rules(struct daemon *d) {
    const char *host = d->cfg->daemon.http_listen.host;
    if (http_server_route(d->http, "GET", "/state", serve_state, d) < 0 ||
        http_server_route(d->http, "GET", "/debug/latency", serve_latency, d) < 0)
        return -ENOMEM;
    /* The request carries no peer address, so "local only" rests on the listener: an operator who
     * opens it to the network (for a Prometheus elsewhere) does not open rule control with it. */
    if (host && strncmp(host, "127.", 4) != 0 && strcmp(host, "::1") != 0) {
        log_warn(TAG, "http: %s is not a loopback address: POST /rules/<id>/pause|resume|reset are off",
                 host);
        return 0;
    }
    if (http_server_route(d->http, "POST", "/debug/latency/reset", serve_latency_reset, d) < 0 ||
        http_server_route_prefix(d->http, "POST", RULES_PREFIX, serve_rule_action, d) < 0)
        return -ENOMEM;
    return 0;
}

/* /health/ready: 200 only when the journal is up, start-up is done and every leader stream is up
 * now (health.h says what "fresh" rests on); else 503 with the problems named. */
static int serve_ready(void *ud, const struct http_request *req, struct http_response *resp) {
    struct daemon *d = ud;
    struct copier_stream_info si[64];
    struct health_stream hs[64];
    struct health_facts f = {0};
    struct timespec ts;
    char *body = NULL;
    size_t len = 0, n = 0;
    int status;
    (void)req;
    clock_gettime(CLOCK_REALTIME, &ts);
    f.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    f.journal_connected = d->journal && journal_connected(d->journal);
    f.journal_writable = d->journal && journal_writable(d->journal);
    if (d->journal) {
        struct journal_stats js;
        journal_get_stats(d->journal, &js);
        f.journal_spooling = js.spooling;
    }
    f.journal_error = d->journal ? journal_last_error(d->journal) : "not started";
    f.started = d->copier && copier_ready(d->copier);
    f.followers_loading = d->copier ? copier_followers_loading(d->copier) : 0;
    f.draining = d->stopping != 0;
    if (d->copier) {
        n = copier_stream_info(d->copier, si, sizeof(si) / sizeof(si[0]));
        if (n > sizeof(si) / sizeof(si[0])) n = sizeof(si) / sizeof(si[0]); /* more: named by startup */
        for (size_t i = 0; i < n; i++)
            hs[i] = (struct health_stream){si[i].account, si[i].up, si[i].since_ms, si[i].reason};
    }
    f.streams = hs;
    f.n_streams = n;
    status = health_ready(&f, &body, &len);
    if (status < 0) return http_response_set(resp, 500, "text/plain", "out of memory\n", 14);
    return http_response_take(resp, status, "application/json", body, len);
}

/* ---- metrics fed from the modules' own counters ------------------------------------------ */

static double g_rest_conns(void *ud) {
    struct rest_pool_stats s;
    rest_pool_get_stats(((struct daemon *)ud)->rest, &s);
    return (double)s.connections_opened;
}
static double g_rest_requests(void *ud) {
    struct rest_pool_stats s;
    rest_pool_get_stats(((struct daemon *)ud)->rest, &s);
    return (double)s.requests;
}
static double g_rest_inflight(void *ud) {
    struct rest_pool_stats s;
    rest_pool_get_stats(((struct daemon *)ud)->rest, &s);
    return (double)s.in_flight;
}
static double g_rest_queued(void *ud) {
    struct rest_pool_stats s;
    rest_pool_get_stats(((struct daemon *)ud)->rest, &s);
    return (double)s.queued;
}
static double g_rest_queued_orders(void *ud) {
    struct rest_pool_stats s;
    rest_pool_get_stats(((struct daemon *)ud)->rest, &s);
    return (double)s.queued_orders;
}
static double g_journal_up(void *ud) {
    return journal_connected(((struct daemon *)ud)->journal) ? 1 : 0;
}
static double g_journal_queued(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return (double)s.results_queued;
}
static double g_journal_slow(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return (double)s.slow_statements;
}
static double g_journal_errors(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return (double)s.statement_errors;
}
static struct journal_stats jstats(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return s;
}
#define JSTAT(field) (jstats(ud).field)
static double g_spool_records(void *ud) { return (double)JSTAT(spool_records); }
static double g_spool_bytes(void *ud) { return (double)JSTAT(spool_bytes); }
static double g_spooling(void *ud) { return JSTAT(spooling) ? 1 : 0; }
static double g_spool_writable(void *ud) { return JSTAT(spool_writable) ? 1 : 0; }
static double g_journal_lag(void *ud) { return (double)JSTAT(lag_us) / 1e6; }
static uint64_t c_spool_fills(void *ud) { return JSTAT(spool_fills); }
static uint64_t c_spool_replayed(void *ud) { return JSTAT(spool_replayed); }
static uint64_t c_spool_dropped(void *ud) { return JSTAT(spool_replay_dropped); }
static uint64_t c_spool_errors(void *ud) { return JSTAT(spool_errors); }
static double g_redis_up(void *ud) { return rds_connected(((struct daemon *)ud)->redis) ? 1 : 0; }
static double g_redis_dropped(void *ud) {
    struct rds_stats s;
    rds_get_stats(((struct daemon *)ud)->redis, &s);
    return (double)s.dropped;
}
static double g_streams_up(void *ud) {
    struct daemon *d = ud;
    return d->copier ? (double)copier_streams_up(d->copier, NULL) : 0;
}

static int register_gauge(struct met_registry *r, const char *name, const char *help,
                          double (*fn)(void *), void *ud) {
    struct met_family *f = met_gauge_new(r, name, help);
    struct met_gauge *g = f ? met_gauge_child(f) : NULL;
    if (!g) return -ENOMEM;
    met_gauge_set_fn(g, fn, ud);
    return 0;
}

/* Monotonic module totals, read at scrape time (met_counter_set_fn). */
static uint64_t c_rest_conns(void *ud) { return (uint64_t)g_rest_conns(ud); }
static uint64_t c_rest_requests(void *ud) { return (uint64_t)g_rest_requests(ud); }
static uint64_t c_rest_transport_errors(void *ud) {
    struct rest_pool_stats s;
    rest_pool_get_stats(((struct daemon *)ud)->rest, &s);
    return s.transport_errors;
}
static uint64_t c_journal_slow(void *ud) { return (uint64_t)g_journal_slow(ud); }
static uint64_t c_journal_errors(void *ud) { return (uint64_t)g_journal_errors(ud); }
static uint64_t c_redis_dropped(void *ud) { return (uint64_t)g_redis_dropped(ud); }
static uint64_t c_journal_writes(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return s.writes;
}
static uint64_t c_journal_fills_failed(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return s.fills_failed;
}
static uint64_t c_journal_results_dropped(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return s.results_dropped;
}
static uint64_t c_journal_disconnects(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return s.disconnects;
}
/* The journal keeps only the last and the total write time, not each write: a histogram needs a
 * per-write hook in journal_opts (not there yet). A total in seconds would have to be a counter,
 * and counters here are whole numbers, so the mean since start is exported instead. */
static double g_journal_write_mean(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return s.writes ? (double)s.write_us_total / 1e6 / (double)s.writes : 0;
}
static double g_journal_write_last(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return (double)s.write_us_last / 1e6;
}
static double g_journal_inflight_fills(void *ud) {
    struct journal_stats s;
    journal_get_stats(((struct daemon *)ud)->journal, &s);
    return (double)s.inflight_fills;
}

static int register_counter(struct met_registry *r, const char *name, const char *help,
                            uint64_t (*fn)(void *), void *ud) {
    struct met_family *f = met_counter_new(r, name, help);
    struct met_counter *c = f ? met_counter_child(f) : NULL;
    if (!c) return -ENOMEM;
    met_counter_set_fn(c, fn, ud);
    return 0;
}

/* The database pool (zeros before it exists and after teardown). */
static struct pgp_stats pool_stats(void *ud) {
    struct pgp_stats s = {0};
    const struct daemon *d = ud;
    if (d->pool) pgp_get_stats(d->pool, &s);
    return s;
}
static double g_pool_in_use(void *ud) { return pool_stats(ud).in_use; }
static double g_pool_idle(void *ud) { return pool_stats(ud).idle; }
static double g_pool_connecting(void *ud) { return pool_stats(ud).connecting; }
static double g_pool_waiting(void *ud) { return pool_stats(ud).waiting; }
/* The pool's own totals; nothing is rendered once it is freed (the HTTP server goes in the same
 * teardown), so they never go down. */
static uint64_t c_pool_created(void *ud) { return pool_stats(ud).created_total; }
static uint64_t c_pool_recycled(void *ud) { return pool_stats(ud).recycled_total; }
static uint64_t c_pool_broken(void *ud) { return pool_stats(ud).broken_total; }
static uint64_t c_pool_acquire_timeouts(void *ud) { return pool_stats(ud).acquire_timeouts_total; }
static uint64_t c_pool_slow(void *ud) { return pool_stats(ud).slow_statements_total; }

static int register_pool_metrics(struct daemon *d) {
    static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
    struct met_registry *r = d->metrics;
    struct met_family *cf = met_gauge_new(r, "ct_db_pool_connections",
                                          "Connections of the database pool (reloads; not the journal's "
                                          "session) by state: in_use, idle, connecting.", "state");
    struct met_gauge *g_use = cf ? met_gauge_child(cf, "in_use") : NULL;
    struct met_gauge *g_idle = cf ? met_gauge_child(cf, "idle") : NULL;
    struct met_gauge *g_conn = cf ? met_gauge_child(cf, "connecting") : NULL;
    struct met_family *wf = met_histogram_new(r, "ct_db_pool_acquire_wait_seconds",
                                              "Waits for a database pool connection (successful acquires).",
                                              bounds, sizeof(bounds) / sizeof(bounds[0]));
    if (!g_use || !g_idle || !g_conn || !wf || !(d->m_pool_wait = met_hist_child(wf))) return -ENOMEM;
    met_gauge_set_fn(g_use, g_pool_in_use, d);
    met_gauge_set_fn(g_idle, g_pool_idle, d);
    met_gauge_set_fn(g_conn, g_pool_connecting, d);
    if (register_gauge(r, "ct_db_pool_waiting", "Acquirers waiting for a database pool connection.", g_pool_waiting, d) ||
        register_counter(r, "ct_db_pool_created_total", "Database pool connections set up.", c_pool_created, d) ||
        register_counter(r, "ct_db_pool_recycled_total", "Database pool connections closed for age (db_pool_recycle_age_ms).", c_pool_recycled, d) ||
        register_counter(r, "ct_db_pool_broken_total", "Database pool connections closed as broken (lost, failed health check, timed out).", c_pool_broken, d) ||
        register_counter(r, "ct_db_pool_acquire_timeouts_total", "Database pool acquires that got no connection within db_pool_acquire_timeout_ms.", c_pool_acquire_timeouts, d) ||
        register_counter(r, "ct_db_pool_slow_statements_total", "Database pool statements slower than slow_statement_ms (each logged).", c_pool_slow, d))
        return -ENOMEM;
    return 0;
}

static int register_module_metrics(struct daemon *d) {
    static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05, 0.1, 0.25, 0.5, 1, 2.5};
    struct met_registry *r = d->metrics;
    struct met_family *jw = met_histogram_new(r, "ct_journal_write_seconds",
                                              "Journal writes, send to commit: a leader fill with its intents "
                                              "(the hot path's one wait), a batch of order results, or a batch "
                                              "of spooled records copied into PostgreSQL (journal_durability os, "
                                              "or after an outage).",
                                              bounds, sizeof(bounds) / sizeof(bounds[0]), "kind");
    struct met_family *rl = met_counter_new(r, "ct_config_reloads_total",
                                            "SIGHUP reloads of the copy rules, by result.", "result");
    if (!rl || !(d->m_reload_ok = met_counter_child(rl, "applied")) ||
        !(d->m_reload_rejected = met_counter_child(rl, "rejected")))
        return -ENOMEM;
    if (!jw || !(d->m_jnl_fill = met_hist_child(jw, "fill")) ||
        !(d->m_jnl_results = met_hist_child(jw, "results")) ||
        !(d->m_jnl_spool = met_hist_child(jw, "spool")))
        return -ENOMEM;
    if (register_counter(r, "ct_rest_connections_opened_total", "REST connections opened (keep-alive keeps this low).", c_rest_conns, d) ||
        register_counter(r, "ct_rest_requests_total", "REST requests sent.", c_rest_requests, d) ||
        register_counter(r, "ct_rest_transport_errors_total", "REST requests that got no HTTP answer (connect, timeout, cancel).", c_rest_transport_errors, d) ||
        register_gauge(r, "ct_rest_in_flight", "REST requests in flight.", g_rest_inflight, d) ||
        register_gauge(r, "ct_rest_queued", "REST requests waiting in the pool for a connection slot or a rate budget.", g_rest_queued, d) ||
        register_gauge(r, "ct_rest_queued_orders", "Orders among ct_rest_queued.", g_rest_queued_orders, d) ||
        register_gauge(r, "ct_journal_up", "1 while the journal's PostgreSQL session is up.", g_journal_up, d) ||
        register_gauge(r, "ct_journal_results_queued", "Order results not yet committed (write-behind).", g_journal_queued, d) ||
        register_gauge(r, "ct_journal_fills_in_flight", "Leader fills sent to the journal, not yet committed.", g_journal_inflight_fills, d) ||
        register_counter(r, "ct_journal_slow_statements_total", "Journal statements slower than slow_statement_ms.", c_journal_slow, d) ||
        register_counter(r, "ct_journal_statement_errors_total", "Journal statements PostgreSQL refused.", c_journal_errors, d) ||
        register_counter(r, "ct_journal_fill_failures_total", "Leader fill writes that failed: refused, or their connection lost (then written again).", c_journal_fills_failed, d) ||
        register_counter(r, "ct_journal_results_dropped_total", "Order results lost to a refused journal statement.", c_journal_results_dropped, d) ||
        register_counter(r, "ct_journal_disconnects_total", "Journal sessions lost or reset.", c_journal_disconnects, d) ||
        register_counter(r, "ct_journal_writes_total", "Journal sync groups committed or answered (a fill's statements count once).", c_journal_writes, d) ||
        register_gauge(r, "ct_journal_write_mean_seconds", "Mean journal write time since start, send to commit.", g_journal_write_mean, d) ||
        register_gauge(r, "ct_journal_write_last_seconds", "Duration of the last journal write, send to commit.", g_journal_write_last, d) ||
        register_gauge(r, "ct_redis_up", "1 while Redis is connected and answering.", g_redis_up, d) ||
        register_counter(r, "ct_redis_dropped_writes_total", "Redis writes dropped while it was away.", c_redis_dropped, d) ||
        register_gauge(r, "ct_streams_up", "Leader streams connected.", g_streams_up, d) ||
        register_gauge(r, "ct_journal_spool_records", "Journal records in the local spool not yet applied to PostgreSQL (spool depth).", g_spool_records, d) ||
        register_gauge(r, "ct_journal_spool_bytes", "Bytes of those records on disk.", g_spool_bytes, d) ||
        register_gauge(r, "ct_journal_spooling", "1 while journal writes go to the local spool (PostgreSQL away or slow, or its replay not caught up).", g_spooling, d) ||
        register_gauge(r, "ct_journal_spool_writable", "1 while the spool takes appends (0: disk full or I/O error; with PostgreSQL away no fill can be copied).", g_spool_writable, d) ||
        register_gauge(r, "ct_journal_lag_seconds", "Age of the oldest journal write not yet in PostgreSQL (spooled or in flight).", g_journal_lag, d) ||
        register_counter(r, "ct_journal_spooled_fills_total", "Leader fills written to the spool instead of PostgreSQL.", c_spool_fills, d) ||
        register_counter(r, "ct_journal_spool_replayed_total", "Spool records applied to PostgreSQL by the replay.", c_spool_replayed, d) ||
        register_counter(r, "ct_journal_spool_replay_dropped_total", "Spool records PostgreSQL refused at replay (logged; investigate).", c_spool_dropped, d) ||
        register_counter(r, "ct_journal_spool_errors_total", "Failed spool appends, syncs, acks and replay reads.", c_spool_errors, d))
        return -ENOMEM;
    return register_pool_metrics(d);
}

/* ---- module state callbacks (logged here: only top-level code logs) ---------------------- */

static void journal_state(void *ud, bool connected, const char *msg) {
    struct daemon *d = ud;
    if (connected) log_info(TAG, "journal: connected");
    else log_warn(TAG, "journal: not connected: %s%s", msg ? msg : "",
                  d->journal && journal_writable(d->journal) ? " (writes go to the spool)" : "");
    /* With a working spool the journal takes fills while PostgreSQL is away: copying goes on. */
    if (d->copier) copier_journal_state(d->copier, connected || (d->journal && journal_writable(d->journal)));
}

static void journal_spool(void *ud, bool spooling, const char *msg) {
    struct daemon *d = ud;
    if (spooling) log_warn(TAG, "journal: %s", msg ? msg : "writing to the spool");
    else log_info(TAG, "journal: %s", msg ? msg : "spool drained");
    if (d->copier && d->journal)
        copier_journal_state(d->copier, journal_connected(d->journal) || journal_writable(d->journal));
}

static void journal_write(void *ud, enum journal_write_kind kind, uint64_t us) {
    struct daemon *d = ud;
    met_hist_observe(kind == JOURNAL_WRITE_FILL      ? d->m_jnl_fill
                     : kind == JOURNAL_WRITE_RESULTS ? d->m_jnl_results
                                                     : d->m_jnl_spool,
                     (double)us / 1e6);
}

static void pool_slow(void *ud, const char *name, uint64_t us) {
    (void)ud;
    log_warn(TAG, "slow statement: %s took %" PRIu64 " ms", name ? name : "?", us / 1000);
}

static void pool_wait(void *ud, uint64_t us) {
    struct daemon *d = ud;
    met_hist_observe(d->m_pool_wait, (double)us / 1e6);
}

/* A server that is down fails every connect attempt: one line per 10 s is enough. */
static void pool_error(void *ud, const char *msg) {
    struct daemon *d = ud;
    uint64_t now = uv_now(&d->loop);
    if (d->pool_err_logged && now - d->pool_err_at < 10000) {
        d->pool_err_dropped++;
        return;
    }
    if (d->pool_err_dropped)
        log_warn(TAG, "database pool: %s (%u more errors in the last %" PRIu64 " s not logged)",
                 msg ? msg : "", d->pool_err_dropped, (now - d->pool_err_at) / 1000);
    else
        log_warn(TAG, "database pool: %s", msg ? msg : "");
    d->pool_err_logged = true;
    d->pool_err_at = now;
    d->pool_err_dropped = 0;
}

static void redis_state(void *ud, bool up, const char *why) {
    (void)ud;
    if (up) log_info(TAG, "redis: connected");
    else log_warn(TAG, "redis: down: %s (caches run in-process only)", why ? why : "");
}

/* ---- shutdown --------------------------------------------------------------------------- */

static void teardown(struct daemon *d);

static void flushed(void *ud, int status) {
    struct daemon *d = ud;
    if (status < 0) {
        log_error(TAG, "journal: final flush incomplete (%s)", strerror(-status));
        d->exit_code = 1;
    } else {
        log_info(TAG, "journal: flushed");
    }
    teardown(d);
}

static void drained(void *ud) {
    struct daemon *d = ud;
    log_info(TAG, "drained; flushing the journal");
    if (journal_flush(d->journal, flushed, d) < 0) teardown(d);
}

/* SIGTERM, SIGINT and SIGHUP wait (blocked) from the start of main until the loop watches them:
 * one at start-up must neither kill the process before it can drain nor reload half a daemon. */
static void stop_signals(int how) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGHUP);
    sigprocmask(how, &s, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    struct daemon *d = h->data;
    if (d->stopping) {
        log_warn(TAG, "signal %d again: exiting now", signum);
        if (d->stopping == 1) teardown(d);
        return;
    }
    d->stopping = 1;
    log_info(TAG, "signal %d: draining (at most %d ms)", signum, d->cfg->daemon.drain_timeout_ms);
    notify("STOPPING=1\nSTATUS=draining: finishing in-flight orders, then flushing the journal");
    uv_timer_stop(&d->ready_timer);
    if (d->copier) copier_drain(d->copier, (unsigned)d->cfg->daemon.drain_timeout_ms, drained, d);
    else drained(d);
}

/* Distinct follower accounts among the enabled rules, for the STATUS= line. Runs every second:
 * linear (a pairwise scan took 50 ms a tick with 10,000 rules, seconds with 100,000). */
static size_t count_followers(const struct cfg *c) {
    size_t n = 0;
    bool *seen = calloc(c->n_accounts + 1, sizeof(*seen));
    if (!seen) return 0;
    for (size_t i = 0; i < c->n_rules; i++) {
        const struct cfg_rule *r = &c->rules[i];
        if (!r->enabled || r->follower >= c->n_accounts || seen[r->follower]) continue;
        seen[r->follower] = true;
        n++;
    }
    free(seen);
    return n;
}

static void status_update(struct daemon *d);

/* READY=1 the moment the copier is ready (its callback), not on the next tick. */
static void announce_ready(void *ud) {
    struct daemon *d = ud;
    size_t total = 0;
    if (d->notified_ready || !d->copier || d->stopping) return;
    (void)copier_streams_up(d->copier, &total);
    d->notified_ready = true;
    notify("READY=1");
    log_info(TAG, "ready: %zu leader streams up, %zu copy rules, %zu followers' state still loading", total,
             d->cfg->n_rules, copier_followers_loading(d->copier));
    status_update(d);
}

static void status_update(struct daemon *d) {
    size_t total = 0, up = d->copier ? copier_streams_up(d->copier, &total) : 0;
    size_t loading = d->copier ? copier_followers_loading(d->copier) : 0;
    char status[sizeof(d->last_status)], more[64] = "";
    /* Orders per minute: sent-order totals of the last 60 ticks (one a second). */
    uint64_t sent = d->copier ? copier_orders_sent(d->copier) : 0;
    uint64_t per_min = sent - d->sent_ring[d->sent_pos % 60 < d->sent_pos ? d->sent_pos % 60 : 0];
    if (loading) snprintf(more, sizeof(more), ", %zu followers loading", loading);
    snprintf(status, sizeof(status),
             "STATUS=%s: %zu/%zu leader streams up, %zu followers%s, %zu copy rules, %" PRIu64 " orders/min",
             d->notified_ready ? "copying" : "starting", up, total, count_followers(d->rules_cfg), more,
             d->rules_cfg->n_rules, per_min);
    if (strcmp(status, d->last_status) != 0) {
        notify(status);
        memcpy(d->last_status, status, sizeof(status));
    }
}

static void ready_tick(uv_timer_t *t) {
    struct daemon *d = t->data;
    struct exch_breaker_change ch[8];
    size_t nch = d->accounts && d->xm ? exch_metrics_sample(d->xm, d->accounts, d->cfg->n_accounts, ch, 8) : 0;
    for (size_t i = 0; i < nch && i < 8; i++)
        log_at(!strcmp(ch[i].to, "closed") ? LOG_LVL_INFO : LOG_LVL_WARN, TAG,
               "exchange %s: circuit breaker %s -> %s%s", ch[i].host, ch[i].from, ch[i].to,
               !strcmp(ch[i].to, "open") ? " (requests fail fast, orders wait and are resent)" : "");
    if (!d->notified_ready && d->copier && copier_ready(d->copier)) announce_ready(d); /* a fallback */
    d->sent_ring[d->sent_pos++ % 60] = d->copier ? copier_orders_sent(d->copier) : 0;
    status_update(d);
}

#ifdef HAVE_LIBSYSTEMD
/* Pinged from the loop itself, so a loop stuck in a callback stops the pings and systemd
 * restarts the service (Restart=on-failure covers watchdog kills). */
static void watchdog_tick(uv_timer_t *t) {
    (void)t;
    notify("WATCHDOG=1");
}
#endif

static void start_watchdog(struct daemon *d) {
#ifdef HAVE_LIBSYSTEMD
    uint64_t usec = 0;
    /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process. */
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
    uint64_t ms = usec / 2000; /* half the interval, as sd_watchdog_enabled(3) recommends */
    if (ms == 0) ms = 1;
    log_info(TAG, "systemd watchdog: %" PRIu64 " ms, pinging every %" PRIu64 " ms", usec / 1000, ms);
    uv_timer_start(&d->watchdog_timer, watchdog_tick, ms, ms);
#else
    (void)d;
#endif
}

static void close_cb(uv_handle_t *h) { (void)h; }

static void teardown(struct daemon *d) {
    if (d->stopping == 2) return;
    d->stopping = 2;
    /* Order matters: the REST pool cancels what is still in flight into the copier, which must
     * still exist; the accounts must outlive the pool's callbacks; lws goes before the loop. */
    if (d->copier) copier_close(d->copier);
    d->rest = rest_pool_free(d->rest);
    d->copier = copier_free(d->copier);
    /* A reload waiting for or running on a pool connection gets -ECANCELED here and ends. */
    d->pool = pgp_free(d->pool);
    for (size_t i = 0; d->accounts && i < d->cfg->n_accounts; i++)
        d->accounts[i] = exch_account_free(d->accounts[i]);
    d->journal = journal_free(d->journal);
    d->redis = rds_free(d->redis);
    d->http = http_server_free(d->http);
    if (d->lws) lws_context_destroy(d->lws);
    /* Closing the last handle of a signal gives it back its default action (termination): one
     * arriving during the rest of the exit waits instead. */
    stop_signals(SIG_BLOCK);
    uv_close((uv_handle_t *)&d->sigterm, close_cb);
    uv_close((uv_handle_t *)&d->sigint, close_cb);
    uv_close((uv_handle_t *)&d->sighup, close_cb);
    uv_close((uv_handle_t *)&d->ready_timer, close_cb);
    uv_close((uv_handle_t *)&d->watchdog_timer, close_cb);
}

/* ---- SIGHUP: reload the copy rules ------------------------------------------------------ */

/* A reload runs its journal update on a pool connection, on the loop: the rule and account
 * upserts, the removal and the audit row go as ONE pipeline (one implicit transaction), so a
 * failed update leaves neither half-applied rules nor an audit row claiming success. A rejected
 * reload writes its audit row only. */
struct reload {
    struct daemon *d;
    struct cfg *next;   /* NULL: rejected (only the audit row is written) */
    struct jsync sync;  /* of next */
    char *detail;       /* audit log detail (JSON) */
    const char *path;
    struct journal_stmts stmts; /* what goes to the journal, in one transaction */
    bool counted;       /* ct_config_reloads_total has it already */
    char err[512];
};

/* Accounts come from the configuration the daemon started with (their connections, keys and
 * streams are set up once): a reload that adds or changes one is refused as a whole. */
static int reload_check_accounts(const struct cfg *run, const struct cfg *next, char *why, size_t n) {
    for (size_t i = 0; i < next->n_accounts; i++) {
        const struct cfg_account *a = &next->accounts[i];
        long k = cfg_account_find(run, a->name);
        if (k < 0) {
            snprintf(why, n, "%s:%u: account %s is new: adding an account needs a restart", a->file,
                     a->line, a->name);
            return -EINVAL;
        }
        const struct cfg_account *o = &run->accounts[k];
        if (o->exchange != a->exchange || strcmp(o->rest_url, a->rest_url) || strcmp(o->ws_url, a->ws_url) ||
            strcmp(o->api_key, a->api_key) || strcmp(o->api_secret, a->api_secret) ||
            o->recv_window_ms != a->recv_window_ms || o->timeout_ms != a->timeout_ms ||
            o->stream_ping_ms != a->stream_ping_ms || o->stream_silence_ms != a->stream_silence_ms ||
            o->position_mode != a->position_mode) {
            snprintf(why, n, "%s:%u: account %s changed (exchange, URLs, keys, position mode or "
                     "timeouts): that needs a restart", a->file, a->line, a->name);
            return -EINVAL;
        }
    }
    return 0;
}

static const struct journal_rule *jsync_rule(const struct jsync *s, const char *id) {
    for (size_t i = 0; s && i < s->nr; i++)
        if (!strcmp(s->jr[i].id, id)) return &s->jr[i];
    return NULL;
}

/* {"file", "rules", "added": [...], "changed": [...], "removed": [...]} */
static char *reload_diff(const struct jsync *old, const struct jsync *next, const char *path,
                         size_t *changes) {
    json_t *o = json_pack("{s:s, s:I, s:[], s:[], s:[]}", "file", path, "rules", (json_int_t)next->nr,
                          "added", "changed", "removed");
    char *out = NULL;
    *changes = 0;
    if (!o) return NULL;
    for (size_t i = 0; i < next->nr; i++) {
        const struct journal_rule *n = &next->jr[i], *p = jsync_rule(old, n->id);
        const char *k = !p ? "added"
                        : (strcmp(p->leader, n->leader) || strcmp(p->follower, n->follower) ||
                           strcmp(p->sizing, n->sizing) || strcmp(p->params_json, n->params_json) ||
                           p->enabled != n->enabled) ? "changed" : NULL;
        if (k) {
            json_array_append_new(json_object_get(o, k), json_string(n->id));
            (*changes)++;
        }
    }
    for (size_t i = 0; old && i < old->nr; i++)
        if (!jsync_rule(next, old->jr[i].id)) {
            json_array_append_new(json_object_get(o, "removed"), json_string(old->jr[i].id));
            (*changes)++;
        }
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

static void reload_begin(struct daemon *d);

static int reload_apply(struct daemon *d, struct reload *rl) {
    struct copier_rule *cr = calloc(rl->next->n_rules + 1, sizeof(*cr));
    struct copier_reload_stats st;
    int r;
    if (!cr) return -ENOMEM;
    for (size_t i = 0; i < rl->next->n_rules; i++) {
        const char *field = NULL, *why = NULL;
        cr[i] = rule_from_config(d, rl->next, &rl->next->rules[i]);
        if (copy_rule_validate(&cr[i].params, &field, &why) < 0) {
            snprintf(rl->err, sizeof(rl->err), "%s:%u: copy rule %s: %s: %s", rl->next->rules[i].file,
                     rl->next->rules[i].line, rl->next->rules[i].id, field ? field : "?", why ? why : "invalid");
            free(cr);
            return -EINVAL;
        }
    }
    r = copier_reload(d->copier, cr, rl->next->n_rules, &st);
    free(cr);
    if (r < 0) {
        snprintf(rl->err, sizeof(rl->err), "the copier cannot take the rules: %s", strerror(-r));
        return r;
    }
    if (d->rules_cfg != d->cfg) cfg_free(d->rules_cfg);
    d->rules_cfg = rl->next;
    rl->next = NULL;
    jsync_free(d->sync);
    *d->sync = rl->sync;
    memset(&rl->sync, 0, sizeof(rl->sync));
    log_info(TAG, "reload: %zu copy rules now (%zu new, %zu kept, %zu removed): %s",
             d->rules_cfg->n_rules, st.added, st.kept, st.removed, rl->detail ? rl->detail : "");
    return 0;
}

static void reload_done(struct reload *rl) {
    struct daemon *d = rl->d;
    d->reload_busy = false;
    cfg_free(rl->next);
    jsync_free(&rl->sync);
    journal_stmts_reset(&rl->stmts);
    free(rl->detail);
    free(rl);
    if (d->reload_again && !d->stopping) {
        d->reload_again = false;
        reload_begin(d);
    }
}

static void reload_count_rejected(struct reload *rl) {
    if (!rl->counted) met_counter_inc(rl->d->m_reload_rejected);
    rl->counted = true;
}

/* Turns rl into a rejected reload: the new configuration is dropped, the audit detail becomes
 * {"file", "errors": [why]}, and the statements just that audit row. 0 or -ENOMEM (then nothing
 * is left to write). */
static int reload_reject(struct reload *rl, const char *why) {
    char err[256];
    json_t *o = json_pack("{s:s, s:[s]}", "file", rl->path, "errors", why);
    rl->next = cfg_free(rl->next);
    jsync_free(&rl->sync);
    journal_stmts_reset(&rl->stmts);
    free(rl->detail);
    rl->detail = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    reload_count_rejected(rl);
    if (journal_audit_statement(&rl->stmts, "config_reload", rl->path, false, rl->detail, err,
                                sizeof(err)) < 0) {
        log_warn(TAG, "reload: cannot write the audit log: %s", err);
        return -ENOMEM;
    }
    return 0;
}

static void reload_executed(void *ud, struct pgp_conn *c, const struct pgp_result *res);

/* Sends rl's statements on c as one pipeline (one Sync: one transaction). */
static void reload_send(struct reload *rl, struct pgp_conn *c) {
    struct pgp_stmt *st = calloc(rl->stmts.n + 1, sizeof(*st));
    int r = -ENOMEM;
    if (st) {
        for (size_t i = 0; i < rl->stmts.n; i++)
            st[i] = (struct pgp_stmt){.name = rl->stmts.v[i].name, .sql = rl->stmts.v[i].sql,
                                      .nparams = rl->stmts.v[i].nparams, .params = rl->stmts.v[i].params};
        r = pgp_exec(c, st, rl->stmts.n, reload_executed, rl); /* copies the parameters */
        free(st);
    }
    if (r == 0) return;
    pgp_release(rl->d->pool, c, r != -ENOMEM);
    if (rl->next) {
        log_error(TAG, "reload rejected: cannot send the journal update (%s); the running rules stay",
                  strerror(-r));
        reload_count_rejected(rl);
    } else {
        log_warn(TAG, "reload: cannot write the audit log: %s", strerror(-r));
        reload_count_rejected(rl);
    }
    reload_done(rl);
}

static void reload_executed(void *ud, struct pgp_conn *c, const struct pgp_result *res) {
    struct reload *rl = ud;
    struct daemon *d = rl->d;
    if (res->status == -ECANCELED) { /* pgp_free at teardown */
        if (rl->next) log_info(TAG, "reload: not applied, the daemon is stopping");
        reload_done(rl);
        return;
    }
    if (res->status == 0) {
        pgp_release(d->pool, c, false);
        if (rl->next && (d->stopping || !d->copier)) {
            log_info(TAG, "reload: not applied, the daemon is stopping");
        } else if (rl->next) {
            if (reload_apply(d, rl) < 0) {
                log_error(TAG, "reload rejected: %s; the running rules stay", rl->err);
                reload_count_rejected(rl);
            } else {
                met_counter_inc(d->m_reload_ok);
            }
        } else {
            reload_count_rejected(rl);
        }
        reload_done(rl);
        return;
    }
    if (!rl->next) {
        log_warn(TAG, "reload: cannot write the audit log: %s", res->err ? res->err : strerror(-res->status));
        pgp_release(d->pool, c, res->status != -EIO);
        reload_count_rejected(rl);
        reload_done(rl);
        return;
    }
    if (res->status == -EIO) {
        /* PostgreSQL refused a statement: the whole update rolled back (no rule changed, no audit
         * row). The connection is fine: record the rejection on it. */
        snprintf(rl->err, sizeof(rl->err), "the journal refused the new rules: %s",
                 res->err ? res->err : "unknown error");
        log_error(TAG, "reload rejected: %s; the running rules stay", rl->err);
        if (reload_reject(rl, rl->err) == 0) {
            reload_send(rl, c);
            return;
        }
        pgp_release(d->pool, c, false);
        reload_done(rl);
        return;
    }
    /* Lost, timed out or garbled: the outcome is unknown (it may have committed). The running
     * rules stay; a second SIGHUP writes the same files again (the upserts are idempotent). */
    log_error(TAG, "reload rejected: the journal update failed (%s); it may have been recorded "
              "anyway: send SIGHUP again to bring the journal in line; the running rules stay",
              res->err ? res->err : strerror(-res->status));
    pgp_release(d->pool, c, true);
    reload_count_rejected(rl);
    reload_done(rl);
}

static void reload_acquired(void *ud, struct pgp_conn *c, int status, const char *err) {
    struct reload *rl = ud;
    if (status == 0) {
        reload_send(rl, c);
        return;
    }
    if (status != -ECANCELED) { /* -ECANCELED: pgp_free at teardown */
        if (rl->next)
            log_error(TAG, "reload rejected: no database connection (%s); the running rules stay",
                      err ? err : strerror(-status));
        else
            log_warn(TAG, "reload: cannot write the audit log: no database connection (%s)",
                     err ? err : strerror(-status));
        reload_count_rejected(rl);
    } else if (rl->next) {
        log_info(TAG, "reload: not applied, the daemon is stopping");
    }
    reload_done(rl);
}

/* The checks reload_apply makes, before anything goes to the journal: the journal must not
 * record rules the copier would refuse. */
static int reload_validate(const struct daemon *d, const struct cfg *next, char *why, size_t n) {
    for (size_t i = 0; i < next->n_rules; i++) {
        const char *field = NULL, *bad = NULL;
        struct copier_rule cr = rule_from_config(d, next, &next->rules[i]);
        if (copy_rule_validate(&cr.params, &field, &bad) < 0) {
            snprintf(why, n, "%s:%u: copy rule %s: %s: %s", next->rules[i].file, next->rules[i].line,
                     next->rules[i].id, field ? field : "?", bad ? bad : "invalid");
            return -EINVAL;
        }
    }
    return 0;
}

static void reload_begin(struct daemon *d) {
    struct cfg_errors errs = {0};
    struct reload *rl = calloc(1, sizeof(*rl));
    json_t *errors = json_array();
    char why[512];
    size_t changes = 0;
    int r;
    if (!rl || !errors) {
        log_error(TAG, "reload: out of memory; the running rules stay");
        free(rl);
        json_decref(errors);
        return;
    }
    rl->d = d;
    rl->path = d->cfg_path;
    log_info(TAG, "SIGHUP: reloading the copy rules from %s and its trader files", d->cfg_path);
    rl->next = cfg_load_all(d->cfg_path, &errs);
    if (!rl->next) {
        for (size_t i = 0; i < errs.n; i++) {
            log_error(TAG, "reload rejected: %s", errs.msg[i]);
            json_array_append_new(errors, json_string(errs.msg[i]));
        }
        if (errs.dropped) log_error(TAG, "reload rejected: ... and %zu more errors", errs.dropped);
    } else if (reload_check_accounts(d->cfg, rl->next, why, sizeof(why)) < 0 ||
               reload_validate(d, rl->next, why, sizeof(why)) < 0 ||
               (jsync_build(&rl->sync, rl->next) < 0 && snprintf(why, sizeof(why), "out of memory"))) {
        log_error(TAG, "reload rejected: %s", why);
        json_array_append_new(errors, json_string(why));
        rl->next = cfg_free(rl->next);
    }
    cfg_errors_reset(&errs);
    if (rl->next) {
        rl->detail = reload_diff(d->sync, &rl->sync, d->cfg_path, &changes);
        if (changes == 0) log_info(TAG, "reload: the copy rules did not change");
    } else {
        json_t *o = json_pack("{s:s, s:O}", "file", d->cfg_path, "errors", errors);
        rl->detail = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        log_error(TAG, "reload rejected as a whole: the running configuration stays");
        reload_count_rejected(rl);
    }
    json_decref(errors);
    d->reload_busy = true;
    if (rl->next &&
        ((r = journal_sync_statements(&rl->stmts, rl->sync.ja, rl->sync.na, rl->sync.jr, rl->sync.nr,
                                      rl->err, sizeof(rl->err))) < 0 ||
         (r = journal_audit_statement(&rl->stmts, "config_reload", rl->path, true, rl->detail, rl->err,
                                      sizeof(rl->err))) < 0)) {
        log_error(TAG, "reload rejected: %s; the running rules stay", rl->err);
        if (reload_reject(rl, rl->err) < 0) {
            reload_done(rl);
            return;
        }
    } else if (!rl->next && journal_audit_statement(&rl->stmts, "config_reload", rl->path, false,
                                                    rl->detail, rl->err, sizeof(rl->err)) < 0) {
        log_warn(TAG, "reload: cannot write the audit log: %s", rl->err);
        reload_done(rl);
        return;
    }
    if ((r = pgp_acquire(d->pool, reload_acquired, rl)) < 0) {
        if (rl->next) {
            log_error(TAG, "reload rejected: no database connection (%s); the running rules stay",
                      strerror(-r));
            reload_count_rejected(rl);
        } else {
            log_warn(TAG, "reload: cannot write the audit log: no database connection (%s)", strerror(-r));
        }
        reload_done(rl);
    }
}

static void on_sighup(uv_signal_t *h, int signum) {
    struct daemon *d = h->data;
    (void)signum;
    if (d->stopping) return;
    if (!d->copier || !d->pool) { /* the loop also runs during start-up (the spool replay) */
        log_warn(TAG, "SIGHUP: the daemon is still starting; send it again once it is ready");
        return;
    }
    if (d->reload_busy) {
        d->reload_again = true; /* the files may have changed again since it read them */
        return;
    }
    reload_begin(d);
}

/* ---- main ------------------------------------------------------------------------------- */

static void replay_wait_tick(uv_timer_t *t) { uv_stop(t->loop); }

/* Runs the loop until the journal has applied its spool to PostgreSQL, or timeout_ms. */
static int wait_for_replay(struct daemon *d, unsigned timeout_ms) {
    uv_timer_t t;
    uint64_t end = uv_now(&d->loop) + timeout_ms;
    struct journal_stats s;
    int r = -ETIMEDOUT;
    uv_timer_init(&d->loop, &t);
    uv_timer_start(&t, replay_wait_tick, 50, 50);
    while (uv_now(&d->loop) < end && !d->stopping) {
        journal_get_stats(d->journal, &s);
        if (!s.spooling && s.spool_records == 0) {
            r = 0;
            break;
        }
        uv_run(&d->loop, UV_RUN_DEFAULT); /* until the tick stops it */
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&d->loop, UV_RUN_NOWAIT);
    return r;
}

/* Every follower order in flight holds a socket: raise the soft descriptor limit to the hard one
 * (libuv and curl use epoll and poll, never select, so descriptors above 1024 are fine) and say
 * when the connections configured cannot fit. */
static void raise_fd_limit(const struct cfg_daemon *dc) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* two hosts' connections, plus the streams, PostgreSQL, Redis, HTTP and the spool */
    rlim_t need = 2 * (rlim_t)dc->rest_connections_per_host + 256;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn(TAG, "open files limit %llu is below the %llu daemon.rest_connections_per_host "
                      "needs: orders may fail to connect (raise LimitNOFILE or lower the setting)",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

static int run(struct daemon *d) {
    struct lws_context_creation_info info;
    void *foreign[1];
    struct rest_pool_opts ropts = {0};
    struct journal_opts jopts = {0};
    struct pgp_opts popts;
    struct rds_opts rdopts = {0};
    struct copier_deps deps = {0};
    struct copier_account *ca = NULL;
    struct copier_rule *cr = NULL;
    const struct cfg_daemon *dc = &d->cfg->daemon;
    struct journal_open_report jrep;
    char spool_dir[512] = "", err[512];
    int r = -1;

    raise_fd_limit(dc);
    if (uv_loop_init(&d->loop) < 0) return -1;
    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_timer_init(&d->loop, &d->ready_timer);
    uv_timer_init(&d->loop, &d->watchdog_timer);
    d->sigterm.data = d->sigint.data = d->ready_timer.data = d;
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_init(&d->loop, &d->sighup);
    d->sighup.data = d;
    uv_signal_start(&d->sighup, on_sighup, SIGHUP);
    start_watchdog(d); /* systemd arms it at READY=1; pings before that are harmless */

    memset(&info, 0, sizeof(info));
    foreign[0] = &d->loop;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    info.port = CONTEXT_PORT_NO_LISTEN;
    d->lws = lws_create_context(&info);
    if (!d->lws) {
        log_error(TAG, "cannot create the websocket context (is libwebsockets-evlib-uv installed?)");
        goto out;
    }

    d->metrics = met_registry_new();
    if (!d->metrics || register_module_metrics(d) < 0) goto out;
    d->http = http_server_new(d->lws, dc->http_listen.host, dc->http_listen.port);
    if (!d->http) {
        log_error(TAG, "http: cannot listen on %s: %s", dc->http_listen.text, strerror(errno));
        goto out;
    }
    http_server_route(d->http, "GET", "/metrics", serve_metrics, d);
    http_server_route(d->http, "GET", "/health/live", serve_live, d);
    http_server_route(d->http, "GET", "/health/ready", serve_ready, d);
    if (route_rules(d) < 0) {
        log_error(TAG, "http: cannot route the rule endpoints");
        goto out;
    }
    log_info(TAG, "http: listening on %s", dc->http_listen.text);

    rdopts.on_state = redis_state;
    d->redis = rds_new(&d->loop, dc->redis.text, &rdopts);
    if (!d->redis) {
        log_error(TAG, "redis: bad address %s", dc->redis.text);
        goto out;
    }
    d->xm = exch_metrics_new(d->metrics);
    if (!d->xm) goto out;
    ropts.max_host_connections = dc->rest_connections_per_host;
    /* every host's connections stay open between orders (Binance and Bybit: two hosts) */
    ropts.max_connects = 2L * dc->rest_connections_per_host;
    ropts.max_idle_handles = (unsigned)dc->rest_connections_per_host;
    ropts.on_done = exch_metrics_on_rest;
    ropts.on_done_ud = d->xm;
    d->rest = rest_pool_new(&d->loop, &ropts);
    if (!d->rest) goto out;

    jopts.durability = dc->journal_durability == CFG_DURABILITY_OS ? JOURNAL_DURABILITY_OS
                                                                   : JOURNAL_DURABILITY_FSYNC;
    jopts.batch_size = (unsigned)dc->batch_size;
    jopts.flush_interval_ms = (unsigned)dc->flush_interval_ms;
    jopts.slow_ms = (unsigned)dc->slow_statement_ms;
    jopts.on_state = journal_state;
    jopts.on_write = journal_write;
    jopts.on_spool = journal_spool;
    jopts.ud = d;
    if (dc->spool_dir) {
        snprintf(spool_dir, sizeof(spool_dir), "%s", dc->spool_dir);
    } else if (getenv("STATE_DIRECTORY") && getenv("STATE_DIRECTORY")[0]) {
        /* systemd's StateDirectory= (several are ':'-separated: the first one). */
        snprintf(spool_dir, sizeof(spool_dir), "%s", getenv("STATE_DIRECTORY"));
        spool_dir[strcspn(spool_dir, ":")] = '\0';
        strncat(spool_dir, "/spool", sizeof(spool_dir) - strlen(spool_dir) - 1);
    }
    jopts.spool_dir = spool_dir[0] ? spool_dir : NULL;
    jopts.spool_after_ms = (unsigned)dc->spool_after_ms;
    /* os: an intent is durable once the OS has it, and the cheapest place the OS has it is the
     * local spool; PostgreSQL follows from the spool's replay (journal.h, write_ahead). */
    jopts.write_ahead = dc->journal_durability == CFG_DURABILITY_OS;
    if (jopts.write_ahead && !jopts.spool_dir)
        log_warn(TAG, "journal: journal_durability os without a spool directory (daemon.spool_dir or "
                      "$STATE_DIRECTORY): every leader fill waits for PostgreSQL before its orders leave");
    if (journal_open(&d->loop, dc->database, &jopts, &d->journal, &jrep, err, sizeof(err)) < 0) {
        log_error(TAG, "journal: cannot start: %s", err);
        goto out;
    }
    popts = (struct pgp_opts){
        .size = (unsigned)dc->db_pool_size,
        .overflow = (unsigned)dc->db_pool_overflow,
        .acquire_timeout_ms = (unsigned)dc->db_pool_acquire_timeout_ms,
        .recycle_age_ms = (unsigned)dc->db_pool_recycle_age_ms,
        .health_idle_ms = dc->db_pool_health_idle_ms > 0 ? (unsigned)dc->db_pool_health_idle_ms : 1,
        .slow_stmt_ms = (unsigned)dc->slow_statement_ms,
        .on_slow = pool_slow,
        .on_wait = pool_wait,
        .on_error = pool_error,
        .ud = d,
    };
    d->pool = pgp_new(&d->loop, dc->database, &popts);
    if (!d->pool) {
        log_error(TAG, "database pool: cannot start: %s", strerror(errno));
        goto out;
    }
    if (!jopts.spool_dir)
        log_warn(TAG, "journal: no spool_dir: while PostgreSQL is away, leader fills wait in memory and "
                 "nothing is copied");
    else
        log_info(TAG, "journal: spool in %s (%" PRIu64 " records not yet in PostgreSQL)", jopts.spool_dir,
                 jrep.pending_records);
    if (jrep.spool.torn_bytes)
        log_warn(TAG, "journal: spool %s had a torn last record (a crash mid-write): %" PRIu64 " bytes "
                 "cut at offset %" PRIu64 "; every complete record is kept", jrep.spool.torn_file,
                 jrep.spool.torn_bytes, jrep.spool.torn_offset);
    if (jrep.spool.salvaged_ranges || jrep.bad_records)
        log_error(TAG, "journal: spool: %" PRIu64 " corrupt ranges skipped (%" PRIu64 " records lost), "
                  "%" PRIu64 " unreadable records", jrep.spool.salvaged_ranges, jrep.spool.salvaged_seqs,
                  jrep.bad_records);
    /* What an earlier run left in the spool goes into PostgreSQL before the start-up state is read
     * from it (trade marks, loss stops), so a restart sees everything it journaled. */
    if (jrep.pending_records && wait_for_replay(d, 30000) < 0)
        log_warn(TAG, "journal: the spool of an earlier run is not replayed yet (PostgreSQL away?): "
                 "start-up state may miss what it holds; its fills are still never copied twice");
    if (load_journaled_state(d) < 0) goto out;

    d->accounts = calloc(d->cfg->n_accounts + 1, sizeof(*d->accounts));
    ca = calloc(d->cfg->n_accounts + 1, sizeof(*ca));
    cr = calloc(d->cfg->n_rules + 1, sizeof(*cr));
    if (!d->accounts || !ca || !cr) goto out;
    for (size_t i = 0; i < d->cfg->n_accounts; i++) {
        const struct cfg_account *a = &d->cfg->accounts[i];
        struct exch_account_cfg ec = {
            .name = a->name, .kind = a->exchange, .rest_url = a->rest_url, .ws_url = a->ws_url,
            .api_key = a->api_key, .api_secret = a->api_secret,
            .recv_window_ms = a->recv_window_ms, .timeout_ms = a->timeout_ms,
            .stream_ping_ms = a->stream_ping_ms, .stream_silence_ms = a->stream_silence_ms,
        };
        d->accounts[i] = exch_account_new(&ec, d->rest);
        if (!d->accounts[i]) {
            log_error(TAG, "%s: cannot set up the account: %s", a->name, strerror(errno));
            goto out;
        }
        ca[i] = (struct copier_account){
            a->name, exch_kind_name(a->exchange), a->rest_url, d->accounts[i],
            a->position_mode == CFG_POSITION_MODE_HEDGE    ? MKT_PM_HEDGE
            : a->position_mode == CFG_POSITION_MODE_ONEWAY ? MKT_PM_ONE_WAY
                                                           : -1,
            d->backfill_since ? d->backfill_since[i] : 0,
        };
    }
    for (size_t i = 0; i < d->cfg->n_rules; i++) {
        const char *field = NULL, *why = NULL;
        cr[i] = rule_from_config(d, d->cfg, &d->cfg->rules[i]);
        if (copy_rule_validate(&cr[i].params, &field, &why) < 0) {
            log_error(TAG, "%s:%u: copy rule %s: %s: %s", d->cfg->rules[i].file, d->cfg->rules[i].line,
                      d->cfg->rules[i].id, field ? field : "?", why ? why : "invalid");
            goto out;
        }
    }
    deps = (struct copier_deps){
        .loop = &d->loop, .journal = d->journal, .metrics = d->metrics, .redis = d->redis,
        .lws = d->lws, .accounts = ca, .n_accounts = d->cfg->n_accounts, .rules = cr,
        .n_rules = d->cfg->n_rules, .hwm = d->hwm, .n_hwm = d->n_hwm, .seen = d->seen,
        .n_seen = d->n_seen,
        .refresh_ms = (unsigned)dc->account_refresh_ms,
        .state_wait_ms = (unsigned)dc->follower_state_wait_ms,
        .backfill_max_age_ms = (unsigned)dc->backfill_max_age_ms,
        .cache_ttl_tickers_ms = (unsigned)dc->cache_ttl_tickers_ms,
        .cache_ttl_balances_ms = (unsigned)dc->cache_ttl_balances_ms,
        .cache_ttl_positions_ms = (unsigned)dc->cache_ttl_positions_ms,
        .cache_ttl_instruments_ms = (unsigned)dc->cache_ttl_instruments_ms,
        .cache_max_entries = (size_t)dc->cache_max_entries,
        .pending = d->pending, .n_pending = d->n_pending,
    };
    d->copier = copier_new(&deps);
    if (!d->copier) {
        log_error(TAG, "cannot set up the copier");
        goto out;
    }
    free_journaled_state(d);
    /* The journal may have come up already (a spool replay ran the loop before the copier
     * existed): its state callbacks are not repeated. */
    copier_journal_state(d->copier, journal_connected(d->journal) || journal_writable(d->journal));
    copier_on_ready(d->copier, announce_ready, d);
    copier_start(d->copier);
    uv_timer_start(&d->ready_timer, ready_tick, 100, 1000);
    notify("STATUS=starting: syncing time, instruments and positions");
    r = 0;
out:
    free(ca);
    free(cr);
    if (r < 0) {
        d->exit_code = 1;
        teardown(d);
    }
    stop_signals(SIG_UNBLOCK);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    /* lws needs a second destroy once its handles have closed (EVENT-LOOP.md, teardown). */
    if (d->lws) {
        lws_context_destroy(d->lws);
        d->lws = NULL;
        uv_run(&d->loop, UV_RUN_DEFAULT);
    }
    d->metrics = met_registry_free(d->metrics);
    d->xm = exch_metrics_free(d->xm); /* after the REST pool: its last callbacks land there */
    if (uv_loop_close(&d->loop) != 0) log_warn(TAG, "event loop closed with handles still open");
    return r;
}

/* glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
 * such blocks come from the heap and stay in the process when freed: a /metrics answer for 10,000
 * followers (8 MB rendered), an exchange's full instrument list, the journal's array parameters
 * for a fill to thousands of followers. A fixed threshold keeps them mmap'd and handed back.
 * Measured with 10,000 rules (fanout): RSS at READY 54.0 -> 52.1 MiB; after the followers' state
 * loaded 61.3-64.4 -> 61.3-63.4 (3 runs each). MALLOC_MMAP_THRESHOLD_ in the environment wins. */
static void malloc_tune(void) {
#ifdef M_MMAP_THRESHOLD
    if (!getenv("MALLOC_MMAP_THRESHOLD_")) (void)mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct daemon d = {0};
    const char *path = NULL;
    bool check = false;
    int o;

    malloc_tune();
    while ((o = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 't': check = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path && optind < argc) path = argv[optind]; /* --check-config FILE */
    stop_signals(SIG_BLOCK);
    if (!path) {
        usage(stderr);
        return 2;
    }
    d.cfg = load_config(path, check);
    if (!d.cfg) return 1;
    d.cfg_path = path;
    d.rules_cfg = d.cfg;
    if (check) {
        cfg_free(d.cfg);
        return 0;
    }
    log_set_level(d.cfg->daemon.log_level);
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    signal(SIGPIPE, SIG_IGN); /* hiredis 0.14 writes with write(), not send(MSG_NOSIGNAL) */

    if (setup_journal(&d) < 0) {
        free_journaled_state(&d);
        if (d.sync) jsync_free(d.sync);
        free(d.sync);
        cfg_free(d.cfg);
        return 1;
    }
    run(&d);
    free_journaled_state(&d);
    free(d.accounts);
    if (d.rules_cfg != d.cfg) cfg_free(d.rules_cfg);
    if (d.sync) jsync_free(d.sync);
    free(d.sync);
    cfg_free(d.cfg);
    log_info(TAG, "exit %d", d.exit_code);
    return d.exit_code;
}
