/* config: see config.h.
 *
 * Shape: every section is a table of keys (name, type, required, default, bounds, offsetof into the
 * target struct, extra check) read by the generic walker in config_schema.c, so a later key is one
 * more row. This file holds the tables, the checks that span several keys of one entry (sizing
 * modes, symbol lists, order type), and the cross-file checks (unique names, rule -> account
 * links) that run once every file is read. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "config_schema.h"
#include "secret_file.h"

struct acc_src {   /* where an account was defined, for cross-file messages */
    size_t file;
    yaml_mark_t name_mark;
    char path[CS_PATH_MAX];
};

struct rule_src {
    size_t file;
    yaml_mark_t node_mark, id_mark, leader_mark, follower_mark;
    char *leader, *follower; /* names as written, resolved at the end */
    char path[CS_PATH_MAX];
};

struct ld {
    struct cs_ctx cs;       /* first: parse callbacks get &ld->cs back */
    struct cfg *cfg;
    const char *dir;        /* directory of the config file being read */
    struct acc_src *asrc;   /* parallel to cfg->accounts */
    struct rule_src *rsrc;  /* parallel to cfg->rules */
    size_t cap_acc, cap_rules, cap_asrc, cap_rsrc;
    /* daemon.traders_dir in the main file: not given (the default applies), given, or given but
     * rejected (an error is recorded; no directory is read then) */
    enum { TD_DEFAULT, TD_GIVEN, TD_BAD } td;
    yaml_mark_t td_mark;    /* its value (TD_GIVEN), else the daemon section or the root */
};

static struct ld *ld_of(struct cs_ctx *cx)
{
    return (struct ld *)cx; /* cs is the first member */
}

/* An error at a position in an earlier file (cross-file checks run after all files are read). */
#define err_in(ld, fidx, m, ...) \
    cs_err_in(&(ld)->cs, (fidx), (ld)->cfg->files[(fidx)], (m), __VA_ARGS__)

void cfg_errors_reset(struct cfg_errors *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->n; i++) free(e->msg[i]);
    memset(e, 0, sizeof *e);
}

/* ------------------------------------------------------------------------------------------------
 * Checks run after conversion */

static bool check_name(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    const char *s = *(char *const *)f;
    size_t len = strlen(s);
    if (len < 1 || len > CFG_NAME_MAX) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-') return false;
    return true;
}

static bool url_ok(const char *s, const char *const *schemes)
{
    for (; *schemes; schemes++) {
        size_t l = strlen(*schemes);
        if (strncmp(s, *schemes, l)) continue;
        const char *host = s + l;
        if (!*host || *host == '/' || *host == ':') return false;
        for (const char *c = host; *c; c++)
            if (*c <= ' ' || *c > '~') return false;
        return true;
    }
    return false;
}

static bool check_http_url(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    static const char *const schemes[] = { "http://", "https://", NULL };
    return url_ok(*(char *const *)f, schemes);
}

static bool check_ws_url(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    static const char *const schemes[] = { "ws://", "wss://", NULL };
    return url_ok(*(char *const *)f, schemes);
}

static bool check_dec_pos(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    return dec_sign(*(const dec_t *)f) > 0;
}

static bool check_dec_nonneg(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    return dec_sign(*(const dec_t *)f) >= 0;
}

static bool check_pct_below_100(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    dec_t d = *(const dec_t *)f;
    return dec_sign(d) >= 0 && dec_cmp(d, dec_from_int(100)) < 0;
}

/* Exchange symbols as both exchanges spell them (BTCUSDT, 1000PEPEUSDT): upper case, so that a
 * list never silently misses a fill because of case. */
static bool check_symbol(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    const char *s = *(char *const *)f;
    size_t len = strlen(s);
    if (len < 2 || len > CFG_SYMBOL_MAX) return false;
    for (; *s; s++)
        if (!(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9')) return false;
    return true;
}

/* API keys go into HTTP headers and signatures: printable ASCII, no spaces, bounded. */
static bool check_secret_text(const void *f, char *why, size_t n)
{
    (void)why, (void)n;
    const char *s = *(char *const *)f;
    size_t len = strlen(s);
    if (len < 1 || len > 512) return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~') return false;
    return true;
}

/* libpq's own parser catches typos in the conninfo now rather than at the first connection. Its
 * message quotes parts of the string, so it is left out when the string carries a password. */
static bool check_conninfo(const void *f, char *why, size_t n)
{
    const char *s = *(char *const *)f;
    char *msg = NULL;
    PQconninfoOption *o = PQconninfoParse(s, &msg);
    if (o) {
        PQconninfoFree(o);
        return true;
    }
    if (strcasestr(s, "password") || (strstr(s, "://") && strchr(s, '@')))
        snprintf(why, n, "libpq rejects it (its message is not shown: the string holds a password)");
    else if (msg)
        snprintf(why, n, "%.*s", (int)strcspn(msg, "\n"), msg);
    if (msg) PQfreemem(msg);
    return false;
}

/* ------------------------------------------------------------------------------------------------
 * Schema */

_Static_assert(sizeof(enum log_level) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum exch_kind) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum cfg_durability) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum cfg_sizing) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum cfg_sides) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum cfg_order_type) == sizeof(int), "enum stored through int *");
_Static_assert(sizeof(enum cfg_position_mode) == sizeof(int), "enum stored through int *");

static const struct cs_choice log_levels[] = {
    { "debug", LOG_LVL_DEBUG }, { "info", LOG_LVL_INFO },
    { "warn", LOG_LVL_WARN },   { "error", LOG_LVL_ERROR }, { NULL, 0 },
};
static const struct cs_choice durabilities[] = {
    { "fsync", CFG_DURABILITY_FSYNC }, { "os", CFG_DURABILITY_OS }, { NULL, 0 },
};
/* Local table rather than exch_kind_parse: config must not link the adapters. */
static const struct cs_choice exchanges[] = {
    { "binance-usdm", EXCH_BINANCE_USDM },
    { "bybit-linear", EXCH_BYBIT_LINEAR },
    { NULL, 0 },
};
static const struct cs_choice sizings[] = {
    { "multiplier", CFG_SIZING_MULTIPLIER },
    { "fixed_notional", CFG_SIZING_FIXED_NOTIONAL },
    { "equity_ratio", CFG_SIZING_EQUITY_RATIO },
    { NULL, 0 },
};
static const struct cs_choice sides[] = {
    { "both", CFG_SIDES_BOTH },
    { "long_only", CFG_SIDES_LONG_ONLY },
    { "short_only", CFG_SIDES_SHORT_ONLY },
    { NULL, 0 },
};
static const struct cs_choice order_types[] = {
    { "market", CFG_ORDER_TYPE_MARKET },
    { "limit_ioc", CFG_ORDER_TYPE_LIMIT_IOC },
    { NULL, 0 },
};
static const struct cs_choice position_modes[] = {
    { "auto", CFG_POSITION_MODE_AUTO },
    { "oneway", CFG_POSITION_MODE_ONEWAY },
    { "hedge", CFG_POSITION_MODE_HEDGE },
    { NULL, 0 },
};

#define WHAT_NAME "a name of 1 to 63 characters from A-Z a-z 0-9 _ . -"

/* Rows by position; traders_dir's index is needed (a key inserted before it makes the designated
 * initialiser overwrite a row, which -Werror refuses). */
enum { DK_LOG_LEVEL, DK_TRADERS_DIR = 8 };
static const struct cs_key daemon_keys[] = {
    [DK_LOG_LEVEL] = { .name = "log_level", .type = CS_ENUM, .def = "info", .choices = log_levels,
      .off = offsetof(struct cfg_daemon, log_level) },
    { .name = "http_listen", .type = CS_ADDR, .def = "127.0.0.1:9464",
      .off = offsetof(struct cfg_daemon, http_listen) },
    { .name = "database", .type = CS_STR, .required = true, .what = "a libpq connection string",
      .check = check_conninfo, .flags = CS_NOECHO | CS_SECRET,
      .off = offsetof(struct cfg_daemon, database) },
    { .name = "redis", .type = CS_ADDR, .required = true, .flags = CS_UNIX,
      .off = offsetof(struct cfg_daemon, redis) },
    { .name = "journal_durability", .type = CS_ENUM, .def = "fsync", .choices = durabilities,
      .off = offsetof(struct cfg_daemon, journal_durability) },
    { .name = "batch_size", .type = CS_INT, .def = "100", .min = 1, .max = 10000,
      .off = offsetof(struct cfg_daemon, batch_size) },
    { .name = "flush_interval_ms", .type = CS_INT, .def = "0", .min = 0, .max = 1000,
      .off = offsetof(struct cfg_daemon, flush_interval_ms) },
    { .name = "account_refresh_ms", .type = CS_INT, .def = "5000", .min = 100, .max = 600000,
      .off = offsetof(struct cfg_daemon, account_refresh_ms) },
    /* No table default: the default depends on where the main file is (see resolve_traders_dir). */
    [DK_TRADERS_DIR] = { .name = "traders_dir", .type = CS_STR, .what = "a directory name",
                         .off = offsetof(struct cfg_daemon, traders_dir) },
    { .name = "drain_timeout_ms", .type = CS_INT, .def = "10000", .min = 0, .max = 600000,
      .off = offsetof(struct cfg_daemon, drain_timeout_ms) },
    { .name = "follower_state_wait_ms", .type = CS_INT, .def = "2000", .min = 0, .max = 60000,
      .off = offsetof(struct cfg_daemon, follower_state_wait_ms) },
    { .name = "backfill_max_age_ms", .type = CS_INT, .def = "3600000", .min = 1000, .max = 604800000,
      .off = offsetof(struct cfg_daemon, backfill_max_age_ms) },
    /* No table default: $STATE_DIRECTORY/spool under systemd, else none (see main.c). */
    { .name = "spool_dir", .type = CS_STR, .what = "an absolute directory name",
      .off = offsetof(struct cfg_daemon, spool_dir) },
    { .name = "spool_after_ms", .type = CS_INT, .def = "250", .min = 1, .max = 60000,
      .off = offsetof(struct cfg_daemon, spool_after_ms) },
    { .name = "cache_ttl_tickers_ms", .type = CS_INT, .def = "5000", .min = 100, .max = 3600000,
      .off = offsetof(struct cfg_daemon, cache_ttl_tickers_ms) },
    { .name = "cache_ttl_positions_ms", .type = CS_INT, .def = "10000", .min = 100, .max = 3600000,
      .off = offsetof(struct cfg_daemon, cache_ttl_positions_ms) },
    { .name = "cache_ttl_balances_ms", .type = CS_INT, .def = "15000", .min = 100, .max = 3600000,
      .off = offsetof(struct cfg_daemon, cache_ttl_balances_ms) },
    { .name = "cache_ttl_instruments_ms", .type = CS_INT, .def = "3600000", .min = 1000, .max = 86400000,
      .off = offsetof(struct cfg_daemon, cache_ttl_instruments_ms) },
    { .name = "cache_max_entries", .type = CS_INT, .def = "100000", .min = 16, .max = 10000000,
      .off = offsetof(struct cfg_daemon, cache_max_entries) },
    /* The pool of PostgreSQL connections for the daemon's work off the hot path (pg_pool.h). */
    /* HTTP/1.1: one order per connection at a time, so this bounds how many follower orders to
     * one exchange host leave in parallel (the rest wait in the REST pool's queue). */
    { .name = "rest_connections_per_host", .type = CS_INT, .def = "512", .min = 1, .max = 16384,
      .off = offsetof(struct cfg_daemon, rest_connections_per_host) },
    { .name = "db_pool_size", .type = CS_INT, .def = "2", .min = 1, .max = 64,
      .off = offsetof(struct cfg_daemon, db_pool_size) },
    { .name = "db_pool_overflow", .type = CS_INT, .def = "2", .min = 0, .max = 64,
      .off = offsetof(struct cfg_daemon, db_pool_overflow) },
    { .name = "db_pool_acquire_timeout_ms", .type = CS_INT, .def = "5000", .min = 10, .max = 600000,
      .off = offsetof(struct cfg_daemon, db_pool_acquire_timeout_ms) },
    { .name = "db_pool_recycle_age_ms", .type = CS_INT, .def = "3600000", .min = 1000,
      .max = 604800000, .off = offsetof(struct cfg_daemon, db_pool_recycle_age_ms) },
    { .name = "db_pool_health_idle_ms", .type = CS_INT, .def = "10000", .min = 0, .max = 3600000,
      .off = offsetof(struct cfg_daemon, db_pool_health_idle_ms) },
    { .name = "slow_statement_ms", .type = CS_INT, .def = "100", .min = 1, .max = 600000,
      .off = offsetof(struct cfg_daemon, slow_statement_ms) },
    { .name = NULL },
};

enum {
    AK_NAME, AK_EXCHANGE, AK_REST_URL, AK_WS_URL, AK_SECRET_FILE, AK_RECV_WINDOW, AK_TIMEOUT,
    AK_POSITION_MODE, AK_STREAM_PING, AK_STREAM_SILENCE,
};
static const struct cs_key account_keys[] = {
    [AK_NAME] = { .name = "name", .type = CS_STR, .required = true, .what = WHAT_NAME,
                  .check = check_name, .off = offsetof(struct cfg_account, name) },
    [AK_EXCHANGE] = { .name = "exchange", .type = CS_ENUM, .required = true, .choices = exchanges,
                      .off = offsetof(struct cfg_account, exchange) },
    [AK_REST_URL] = { .name = "rest_url", .type = CS_STR, .required = true,
                      .what = "an http:// or https:// URL", .check = check_http_url,
                      .off = offsetof(struct cfg_account, rest_url) },
    [AK_WS_URL] = { .name = "ws_url", .type = CS_STR, .required = true,
                    .what = "a ws:// or wss:// URL", .check = check_ws_url,
                    .off = offsetof(struct cfg_account, ws_url) },
    [AK_SECRET_FILE] = { .name = "secret_file", .type = CS_STR, .required = true,
                         .what = "a file name", .off = offsetof(struct cfg_account, secret_file) },
    [AK_RECV_WINDOW] = { .name = "recv_window_ms", .type = CS_INT, .def = "5000", .min = 1,
                         .max = 60000, .off = offsetof(struct cfg_account, recv_window_ms) },
    [AK_TIMEOUT] = { .name = "timeout_ms", .type = CS_INT, .def = "5000", .min = 100, .max = 60000,
                     .off = offsetof(struct cfg_account, timeout_ms) },
    [AK_POSITION_MODE] = { .name = "position_mode", .type = CS_ENUM, .def = "auto",
                           .choices = position_modes,
                           .off = offsetof(struct cfg_account, position_mode) },
    [AK_STREAM_PING] = { .name = "stream_ping_ms", .type = CS_INT, .def = "0", .min = 0, .max = 600000,
                         .off = offsetof(struct cfg_account, stream_ping_ms) },
    [AK_STREAM_SILENCE] = { .name = "stream_silence_ms", .type = CS_INT, .def = "0", .min = 0,
                            .max = 3600000, .off = offsetof(struct cfg_account, stream_silence_ms) },
    { .name = NULL },
};

/* A rule as read, before its account names are resolved to indices. */
struct rule_build {
    struct cfg_rule r;
    char *leader, *follower;
};

enum {
    RK_ID, RK_LEADER, RK_FOLLOWER, RK_SIZING, RK_MULTIPLIER, RK_ENABLED, RK_NOTIONAL, RK_REVERSE,
    RK_FORCE_MIN, RK_COALESCE, RK_MAX_POSITION_NOTIONAL, RK_MAX_LEVERAGE, RK_SYMBOLS,
    RK_EXCLUDE_SYMBOLS, RK_SIDES, RK_MAX_SLIPPAGE_BPS, RK_MAX_SIGNAL_AGE_MS, RK_DAILY_LOSS_LIMIT,
    RK_MAX_DRAWDOWN_PCT, RK_ORDER_TYPE, RK_DRY_RUN,
};
#define RULE_FIELD(f) offsetof(struct rule_build, r.f)
#define WHAT_SYMBOLS "a list of symbols such as [BTCUSDT, ETHUSDT]"
#define WHAT_SYMBOL "a symbol of 2 to 30 characters from A-Z 0-9"
static const struct cs_key rule_keys[] = {
    [RK_ID] = { .name = "id", .type = CS_STR, .required = true, .what = WHAT_NAME,
                .check = check_name, .off = RULE_FIELD(id) },
    [RK_LEADER] = { .name = "leader", .type = CS_STR, .required = true, .what = "an account name",
                    .off = offsetof(struct rule_build, leader) },
    [RK_FOLLOWER] = { .name = "follower", .type = CS_STR, .required = true,
                      .what = "an account name", .off = offsetof(struct rule_build, follower) },
    [RK_SIZING] = { .name = "sizing", .type = CS_ENUM, .required = true, .choices = sizings,
                    .off = RULE_FIELD(sizing) },
    /* multiplier and notional: required, allowed or refused by sizing (checked in load_rule). */
    [RK_MULTIPLIER] = { .name = "multiplier", .type = CS_DEC, .what = "a decimal > 0",
                        .check = check_dec_pos, .off = RULE_FIELD(multiplier) },
    [RK_ENABLED] = { .name = "enabled", .type = CS_BOOL, .def = "true",
                     .off = RULE_FIELD(enabled) },
    [RK_NOTIONAL] = { .name = "notional", .type = CS_DEC, .what = "a decimal > 0",
                      .check = check_dec_pos, .off = RULE_FIELD(notional) },
    [RK_REVERSE] = { .name = "reverse", .type = CS_BOOL, .def = "false",
                     .off = RULE_FIELD(reverse) },
    [RK_FORCE_MIN] = { .name = "force_min", .type = CS_BOOL, .def = "false",
                       .off = RULE_FIELD(force_min) },
    [RK_COALESCE] = { .name = "coalesce", .type = CS_BOOL, .def = "true",
                      .off = RULE_FIELD(coalesce) },
    [RK_MAX_POSITION_NOTIONAL] = { .name = "max_position_notional", .type = CS_DEC, .def = "0",
                                   .what = "a decimal >= 0 (0 = unlimited)",
                                   .check = check_dec_nonneg,
                                   .off = RULE_FIELD(max_position_notional) },
    [RK_MAX_LEVERAGE] = { .name = "max_leverage", .type = CS_INT, .def = "0", .min = 0, .max = 125,
                          .what = "an integer in 1..125 or 0 for no limit",
                          .off = RULE_FIELD(max_leverage) },
    [RK_SYMBOLS] = { .name = "symbols", .type = CS_LIST, .what = WHAT_SYMBOLS,
                     .item_what = WHAT_SYMBOL, .check = check_symbol, .off = RULE_FIELD(symbols) },
    [RK_EXCLUDE_SYMBOLS] = { .name = "exclude_symbols", .type = CS_LIST, .what = WHAT_SYMBOLS,
                             .item_what = WHAT_SYMBOL, .check = check_symbol,
                             .off = RULE_FIELD(exclude_symbols) },
    [RK_SIDES] = { .name = "sides", .type = CS_ENUM, .def = "both", .choices = sides,
                   .off = RULE_FIELD(sides) },
    [RK_MAX_SLIPPAGE_BPS] = { .name = "max_slippage_bps", .type = CS_INT, .def = "0", .min = 0,
                              .max = 10000, .what = "an integer in 0..10000 (0 = off)",
                              .off = RULE_FIELD(max_slippage_bps) },
    [RK_MAX_SIGNAL_AGE_MS] = { .name = "max_signal_age_ms", .type = CS_INT, .def = "0", .min = 0,
                               .max = 3600000, .what = "an integer in 0..3600000 (0 = off)",
                               .off = RULE_FIELD(max_signal_age_ms) },
    [RK_DAILY_LOSS_LIMIT] = { .name = "daily_loss_limit", .type = CS_DEC, .def = "0",
                              .what = "a decimal >= 0 (0 = off)", .check = check_dec_nonneg,
                              .off = RULE_FIELD(daily_loss_limit) },
    [RK_MAX_DRAWDOWN_PCT] = { .name = "max_drawdown_pct", .type = CS_DEC, .def = "0",
                              .what = "a decimal >= 0 and below 100 (0 = off)",
                              .check = check_pct_below_100, .off = RULE_FIELD(max_drawdown_pct) },
    [RK_ORDER_TYPE] = { .name = "order_type", .type = CS_ENUM, .def = "market",
                        .choices = order_types, .off = RULE_FIELD(order_type) },
    [RK_DRY_RUN] = { .name = "dry_run", .type = CS_BOOL, .def = "false",
                     .off = RULE_FIELD(dry_run) },
    { .name = NULL },
};

struct secret_build {
    char *api_key, *api_secret;
};

#define WHAT_SECRET "1 to 512 printable ASCII characters without spaces"
static const struct cs_key secret_keys[] = {
    { .name = "api_key", .type = CS_STR, .required = true, .what = WHAT_SECRET,
      .check = check_secret_text, .flags = CS_NOECHO | CS_SECRET,
      .off = offsetof(struct secret_build, api_key) },
    { .name = "api_secret", .type = CS_STR, .required = true, .what = WHAT_SECRET,
      .check = check_secret_text, .flags = CS_NOECHO | CS_SECRET,
      .off = offsetof(struct secret_build, api_secret) },
    { .name = NULL },
};

/* ------------------------------------------------------------------------------------------------
 * Secret files */

static void secret_root(struct cs_ctx *cx, const yaml_node_t *root, void *arg)
{
    struct ld *ld = ld_of(cx);

    if (!root) {
        cs_err_at(&ld->cs, (yaml_mark_t){ 0, 0, 0 }, "",
                  "the file is empty; expected api_key and api_secret");
        return;
    }
    if (root->type != YAML_MAPPING_NODE) {
        cs_err_at(&ld->cs, root->start_mark, "",
                  "expected a mapping with api_key and api_secret, got %s", cs_node_kind(root));
        return;
    }
    cs_walk_map(&ld->cs, root, "", secret_keys, arg, NULL);
}

static void load_secret(struct ld *ld, struct cfg_account *a, yaml_mark_t at, const char *kpath)
{
    char why[CS_PATH_MAX * 2 + 8192];
    char *buf = NULL, *path = NULL;
    size_t len = 0;
    struct secret_build sb = { 0 };

    if (a->secret_file[0] == '/') {
        path = strdup(a->secret_file);
    } else {
        const char *base = getenv("CREDENTIALS_DIRECTORY");
        if (!base || !*base) base = ld->dir;
        if (asprintf(&path, "%s/%s", base, a->secret_file) < 0) path = NULL;
    }
    if (!path) {
        ld->cs.oom = true;
        return;
    }
    free(a->secret_file);
    a->secret_file = path;

    int rc = secret_file_read(path, &buf, &len, why, sizeof why);
    if (rc == -ENOMEM) {
        ld->cs.oom = true;
        return;
    }
    if (rc) {
        cs_err_at(&ld->cs, at, kpath, "%s", why);
        return;
    }
    /* Errors inside the secret file name it and its positions, and sort at the secret_file key. */
    const char *file = ld->cs.file;
    ld->cs.file = path;
    ld->cs.hide_keys = true;
    ld->cs.in_secret = true;
    ld->cs.anchor = at;
    cs_parse_yaml(&ld->cs, buf, len, secret_root, &sb, true);
    ld->cs.file = file;
    ld->cs.hide_keys = false;
    ld->cs.in_secret = false;
    secret_free(buf, len);
    a->api_key = sb.api_key;
    a->api_secret = sb.api_secret;
}

/* ------------------------------------------------------------------------------------------------
 * Sections */

static void load_account(struct ld *ld, const yaml_node_t *n, size_t i)
{
    struct cfg *c = ld->cfg;
    const yaml_node_t *found[CS_KEYS_MAX] = { 0 };
    char path[CS_PATH_MAX], kpath[CS_PATH_MAX + 16];

    snprintf(path, sizeof path, "accounts[%zu]", i);
    if (n->type != YAML_MAPPING_NODE) {
        cs_err_at(&ld->cs, n->start_mark, path,
                  "expected a mapping (name: ..., exchange: ...), got %s", cs_node_kind(n));
        return;
    }
    struct cfg_account *acc =
        cs_grow(&ld->cs, c->accounts, &ld->cap_acc, c->n_accounts, sizeof *acc);
    if (!acc) return;
    c->accounts = acc;
    struct acc_src *as = cs_grow(&ld->cs, ld->asrc, &ld->cap_asrc, c->n_accounts, sizeof *as);
    if (!as) return;
    ld->asrc = as;

    struct cfg_account *a = &c->accounts[c->n_accounts];
    memset(a, 0, sizeof *a);
    cs_walk_map(&ld->cs, n, path, account_keys, a, found);
    if (found[AK_STREAM_SILENCE] && a->stream_silence_ms &&
        ((a->stream_silence_ms < 2000) || (a->stream_ping_ms && a->stream_silence_ms <= a->stream_ping_ms)))
        cs_err_at(&ld->cs, found[AK_STREAM_SILENCE]->start_mark,
                  cs_path_join(kpath, sizeof kpath, path, "stream_silence_ms"),
                  "must be at least 2000 and more than stream_ping_ms (%d), or 0", a->stream_ping_ms);
    a->file = c->files[ld->cs.fidx];
    a->line = (unsigned)n->start_mark.line + 1;
    as = &ld->asrc[c->n_accounts];
    as->file = ld->cs.fidx;
    as->name_mark = found[AK_NAME] ? found[AK_NAME]->start_mark : n->start_mark;
    snprintf(as->path, sizeof as->path, "%s", path);
    c->n_accounts++;
    if (a->secret_file && !ld->cs.oom)
        load_secret(ld, a, found[AK_SECRET_FILE]->start_mark,
                    cs_path_join(kpath, sizeof kpath, path, "secret_file"));
}

#define BIT(k) (UINT32_C(1) << (k))

/* Symbols both allowed and denied: refused, as either reading would surprise someone. Only run
 * when both lists are valid (every item a distinct symbol). */
static void check_overlap(struct ld *ld, const char *path, const yaml_node_t *allow,
                          const yaml_node_t *deny)
{
    char kpath[CS_PATH_MAX + 48], sbuf[CS_SHOW_BUF];
    size_t na = 0, nd = 0;
    struct cs_item *a = cs_seq_sorted(&ld->cs, allow, &na);
    struct cs_item *d = cs_seq_sorted(&ld->cs, deny, &nd);

    for (size_t i = 0, j = 0; i < na && j < nd && !ld->cs.oom;) {
        int cmp = strcmp(a[i].s, d[j].s);
        if (cmp < 0) {
            i++;
        } else if (cmp > 0) {
            j++;
        } else {
            snprintf(kpath, sizeof kpath, "%s.exclude_symbols[%zu]", path, d[j].idx);
            cs_err_at(&ld->cs, d[j].mark, kpath,
                      "%s is also allowed by %s.symbols[%zu] (line %zu); a symbol cannot be both "
                      "allowed and excluded", cs_show(d[j].s, sbuf, sizeof sbuf), path, a[i].idx,
                      a[i].mark.line + 1);
            i++;
            j++;
        }
    }
    free(a);
    free(d);
}

/* Checks between keys of one rule, after the walk (bad: keys given but rejected, left alone). */
static void rule_checks(struct ld *ld, const yaml_node_t *n, const char *path, struct cfg_rule *r,
                        const yaml_node_t *const *found, uint32_t bad)
{
    char kpath[CS_PATH_MAX + 32];
    const char *mode = r->sizing ? cfg_sizing_name(r->sizing) : NULL; /* NULL: missing or bad */

    if (mode && r->sizing != CFG_SIZING_FIXED_NOTIONAL && found[RK_NOTIONAL])
        cs_err_at(&ld->cs, found[RK_NOTIONAL]->start_mark,
                  cs_path_join(kpath, sizeof kpath, path, "notional"),
                  "only used with sizing: fixed_notional; remove it (this rule's sizing is %s)",
                  mode);
    switch (mode ? r->sizing : 0) {
    case CFG_SIZING_MULTIPLIER:
        if (!found[RK_MULTIPLIER])
            cs_err_at(&ld->cs, n->start_mark, path,
                      "missing required key 'multiplier' (sizing: multiplier)");
        break;
    case CFG_SIZING_FIXED_NOTIONAL:
        if (!found[RK_NOTIONAL])
            cs_err_at(&ld->cs, n->start_mark, path,
                      "missing required key 'notional' (sizing: fixed_notional)");
        if (found[RK_MULTIPLIER])
            cs_err_at(&ld->cs, found[RK_MULTIPLIER]->start_mark,
                      cs_path_join(kpath, sizeof kpath, path, "multiplier"),
                      "not used with sizing: fixed_notional (each open is notional / price); "
                      "remove it");
        r->multiplier = DEC_ZERO;
        break;
    case CFG_SIZING_EQUITY_RATIO:
        if (!found[RK_MULTIPLIER]) r->multiplier = dec_from_int(1);
        break;
    default:
        break;
    }
    if (r->order_type == CFG_ORDER_TYPE_LIMIT_IOC && r->max_slippage_bps == 0 &&
        !(bad & BIT(RK_MAX_SLIPPAGE_BPS)))
        cs_err_at(&ld->cs, found[RK_ORDER_TYPE]->start_mark,
                  cs_path_join(kpath, sizeof kpath, path, "order_type"),
                  "limit_ioc needs max_slippage_bps > 0 (the limit price is the leader price "
                  "widened by that bound)");
    if (found[RK_SYMBOLS] && found[RK_EXCLUDE_SYMBOLS] &&
        !(bad & (BIT(RK_SYMBOLS) | BIT(RK_EXCLUDE_SYMBOLS))))
        check_overlap(ld, path, found[RK_SYMBOLS], found[RK_EXCLUDE_SYMBOLS]);
}

static void load_rule(struct ld *ld, const yaml_node_t *n, size_t i)
{
    struct cfg *c = ld->cfg;
    const yaml_node_t *found[CS_KEYS_MAX] = { 0 };
    char path[CS_PATH_MAX], kpath[CS_PATH_MAX + 16], sbuf[CS_SHOW_BUF];
    struct rule_build rb = { 0 };

    snprintf(path, sizeof path, "copy_rules[%zu]", i);
    if (n->type != YAML_MAPPING_NODE) {
        cs_err_at(&ld->cs, n->start_mark, path, "expected a mapping (id: ..., leader: ...), got %s",
                  cs_node_kind(n));
        return;
    }
    struct cfg_rule *rules = cs_grow(&ld->cs, c->rules, &ld->cap_rules, c->n_rules, sizeof *rules);
    if (!rules) return;
    c->rules = rules;
    struct rule_src *rs = cs_grow(&ld->cs, ld->rsrc, &ld->cap_rsrc, c->n_rules, sizeof *rs);
    if (!rs) return;
    ld->rsrc = rs;

    uint32_t bad = cs_walk_map(&ld->cs, n, path, rule_keys, &rb, found);
    rule_checks(ld, n, path, &rb.r, found, bad);
    if (rb.leader && rb.follower && !strcmp(rb.leader, rb.follower))
        cs_err_at(&ld->cs, found[RK_FOLLOWER]->start_mark,
                  cs_path_join(kpath, sizeof kpath, path, "follower"),
                  "%s is also the leader; a rule copies one account onto another",
                  cs_show(rb.follower, sbuf, sizeof sbuf));
    rb.r.file = c->files[ld->cs.fidx];
    rb.r.line = (unsigned)n->start_mark.line + 1;
    c->rules[c->n_rules] = rb.r;
    rs = &ld->rsrc[c->n_rules];
    *rs = (struct rule_src){
        .file = ld->cs.fidx,
        .node_mark = n->start_mark,
        .id_mark = found[RK_ID] ? found[RK_ID]->start_mark : n->start_mark,
        .leader_mark = found[RK_LEADER] ? found[RK_LEADER]->start_mark : n->start_mark,
        .follower_mark = found[RK_FOLLOWER] ? found[RK_FOLLOWER]->start_mark : n->start_mark,
        .leader = rb.leader,
        .follower = rb.follower,
    };
    snprintf(rs->path, sizeof rs->path, "%s", path);
    c->n_rules++;
}

static void load_daemon(struct ld *ld, const yaml_node_t *n)
{
    const yaml_node_t *found[CS_KEYS_MAX] = { 0 };

    ld->td_mark = n->start_mark;
    if (n->type != YAML_MAPPING_NODE) {
        cs_err_at(&ld->cs, n->start_mark, "daemon", "expected a mapping, got %s", cs_node_kind(n));
        return;
    }
    uint32_t bad = cs_walk_map(&ld->cs, n, "daemon", daemon_keys, &ld->cfg->daemon, found);
    if (found[DK_TRADERS_DIR]) {
        ld->td = (bad & (UINT32_C(1) << DK_TRADERS_DIR)) ? TD_BAD : TD_GIVEN;
        ld->td_mark = found[DK_TRADERS_DIR]->start_mark;
    }
}

static void load_list(struct ld *ld, const yaml_node_t *n, const char *name,
                      void (*item)(struct ld *, const yaml_node_t *, size_t))
{
    if (cs_scalar_is_null(n)) return; /* "accounts:" with every entry commented out */
    if (n->type != YAML_SEQUENCE_NODE) {
        cs_err_at(&ld->cs, n->start_mark, name, "expected a list of '- ...' entries, got %s",
                  cs_node_kind(n));
        return;
    }
    size_t i = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        const yaml_node_t *v = yaml_document_get_node(ld->cs.doc, *it);
        if (v && !ld->cs.oom) item(ld, v, i);
        i++;
    }
}

static void config_root(struct cs_ctx *cx, const yaml_node_t *root, void *arg)
{
    struct ld *ld = ld_of(cx);
    static const char *const sections[] = { "daemon", "accounts", "copy_rules" };
    const yaml_node_t *seen[3] = { 0 };
    bool is_main = *(const bool *)arg;

    if (!root) {
        if (is_main)
            cs_err_at(&ld->cs, (yaml_mark_t){ 0, 0, 0 }, "",
                      "the file is empty; expected a 'daemon' section");
        return;
    }
    if (is_main) ld->td_mark = root->start_mark;
    if (root->type != YAML_MAPPING_NODE) {
        cs_err_at(&ld->cs, root->start_mark, "",
                  "expected a mapping of daemon, accounts and copy_rules, got %s",
                  cs_node_kind(root));
        return;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = yaml_document_get_node(ld->cs.doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(ld->cs.doc, p->value);
        if (!kn || !vn || ld->cs.oom) continue;
        if (kn->type != YAML_SCALAR_NODE) {
            cs_err_at(&ld->cs, kn->start_mark, "", "a key must be a plain name, got %s",
                      cs_node_kind(kn));
            continue;
        }
        size_t s = 0;
        while (s < 3 && strcmp(sections[s], (const char *)kn->data.scalar.value)) s++;
        if (s == 3) {
            cs_unknown_key(&ld->cs, kn, "", is_main ? sections : sections + 1, is_main ? 3 : 2);
            continue;
        }
        if (seen[s]) {
            cs_err_at(&ld->cs, kn->start_mark, sections[s], "duplicate key (first at line %zu)",
                      seen[s]->start_mark.line + 1);
            continue;
        }
        seen[s] = kn;
        if (s == 0 && !is_main)
            cs_err_at(&ld->cs, kn->start_mark, "daemon", "only allowed in the main config file");
        else if (s == 0)
            load_daemon(ld, vn);
        else if (s == 1)
            load_list(ld, vn, "accounts", load_account);
        else
            load_list(ld, vn, "copy_rules", load_rule);
    }
    if (is_main && !seen[0])
        cs_err_at(&ld->cs, root->start_mark, "", "missing required key 'daemon'");
}

/* ------------------------------------------------------------------------------------------------
 * Checks across files: unique names and ids, rule -> account links */

struct named {
    const char *name;
    size_t idx;
};

static int named_cmp(const void *a, const void *b)
{
    const struct named *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorted (name, index) pairs; within a name the first defined comes first. NULL on OOM. */
static struct named *sorted_names(struct ld *ld, size_t n, const char *(*get)(struct ld *, size_t),
                                  size_t *out_n)
{
    struct named *v = malloc((n ? n : 1) * sizeof *v);
    size_t k = 0;
    if (!v) {
        ld->cs.oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = get(ld, i);
        if (s) v[k++] = (struct named){ s, i };
    }
    qsort(v, k, sizeof *v, named_cmp);
    *out_n = k;
    return v;
}

static const char *acc_name(struct ld *ld, size_t i) { return ld->cfg->accounts[i].name; }
static const char *rule_id(struct ld *ld, size_t i) { return ld->cfg->rules[i].id; }

static long find_account(const struct named *v, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first entry >= name */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(v[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && !strcmp(v[lo].name, name) ? (long)v[lo].idx : -1;
}

struct pair {
    size_t leader, follower, idx;
};

static int pair_cmp(const void *a, const void *b)
{
    const struct pair *x = a, *y = b;
    if (x->leader != y->leader) return x->leader < y->leader ? -1 : 1;
    if (x->follower != y->follower) return x->follower < y->follower ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void check_links(struct ld *ld)
{
    struct cfg *c = ld->cfg;
    char kpath[CS_PATH_MAX + 16], sbuf[CS_SHOW_BUF];
    size_t na = 0, nr = 0, np = 0;
    struct named *acc = sorted_names(ld, c->n_accounts, acc_name, &na);
    struct named *ids = sorted_names(ld, c->n_rules, rule_id, &nr);
    struct pair *pairs = malloc((c->n_rules ? c->n_rules : 1) * sizeof *pairs);
    size_t *follows = malloc((c->n_accounts ? c->n_accounts : 1) * sizeof *follows);

    if (!acc || !ids || !pairs || !follows) {
        ld->cs.oom = true;
        goto out;
    }
    for (size_t i = 1; i < na; i++) {
        if (strcmp(acc[i].name, acc[i - 1].name)) continue;
        size_t first = acc[i - 1].idx;
        while (i < na && !strcmp(acc[i].name, c->accounts[first].name)) {
            struct acc_src *s = &ld->asrc[acc[i].idx];
            err_in(ld, s->file, s->name_mark, cs_path_join(kpath, sizeof kpath, s->path, "name"),
                   "duplicate account name \"%s\" (first defined at %s:%u)", acc[i].name,
                   c->accounts[first].file, c->accounts[first].line);
            i++;
        }
    }
    for (size_t i = 1; i < nr; i++) {
        if (strcmp(ids[i].name, ids[i - 1].name)) continue;
        size_t first = ids[i - 1].idx;
        while (i < nr && !strcmp(ids[i].name, c->rules[first].id)) {
            struct rule_src *s = &ld->rsrc[ids[i].idx];
            err_in(ld, s->file, s->id_mark, cs_path_join(kpath, sizeof kpath, s->path, "id"),
                   "duplicate copy rule id \"%s\" (first defined at %s:%u)", ids[i].name,
                   c->rules[first].file, c->rules[first].line);
            i++;
        }
    }

    /* Resolve names; remember, per account, the first rule that follows it. */
    for (size_t a = 0; a < c->n_accounts; a++) follows[a] = SIZE_MAX;
    for (size_t r = 0; r < c->n_rules; r++) {
        struct rule_src *s = &ld->rsrc[r];
        long l = -1, f = -1;
        if (s->leader && (l = find_account(acc, na, s->leader)) < 0)
            err_in(ld, s->file, s->leader_mark,
                   cs_path_join(kpath, sizeof kpath, s->path, "leader"), "no account named %s",
                   cs_show(s->leader, sbuf, sizeof sbuf));
        if (s->follower && (f = find_account(acc, na, s->follower)) < 0)
            err_in(ld, s->file, s->follower_mark,
                   cs_path_join(kpath, sizeof kpath, s->path, "follower"), "no account named %s",
                   cs_show(s->follower, sbuf, sizeof sbuf));
        if (l < 0 || f < 0 || l == f) continue;
        c->rules[r].leader = (size_t)l;
        c->rules[r].follower = (size_t)f;
        pairs[np++] = (struct pair){ (size_t)l, (size_t)f, r };
        if (follows[f] == SIZE_MAX) follows[f] = r;
    }

    /* An account that follows must not lead: its copies would be copied again, and a loop
     * (a copies b, b copies a) would trade without end. */
    for (size_t k = 0; k < np; k++) {
        size_t r = pairs[k].idx, by = follows[pairs[k].leader];
        if (by == SIZE_MAX) continue;
        struct rule_src *s = &ld->rsrc[r];
        err_in(ld, s->file, s->leader_mark, cs_path_join(kpath, sizeof kpath, s->path, "leader"),
               "account \"%s\" already follows \"%s\" (copy rule at %s:%u); an account cannot both "
               "lead and follow", c->accounts[pairs[k].leader].name,
               c->accounts[c->rules[by].leader].name, c->rules[by].file, c->rules[by].line);
    }

    /* Two rules for one leader/follower pair would place every copy twice. */
    qsort(pairs, np, sizeof *pairs, pair_cmp);
    for (size_t k = 1; k < np; k++) {
        size_t j = k - 1;
        while (j > 0 && pairs[j - 1].leader == pairs[k].leader && pairs[j - 1].follower == pairs[k].follower)
            j--;
        if (pairs[j].leader != pairs[k].leader || pairs[j].follower != pairs[k].follower) continue;
        const struct cfg_rule *first = &c->rules[pairs[j].idx];
        struct rule_src *s = &ld->rsrc[pairs[k].idx];
        err_in(ld, s->file, s->node_mark, s->path,
               "copies \"%s\" onto \"%s\" again (copy rule \"%s\" at %s:%u already does); one rule per "
               "leader and follower", c->accounts[pairs[k].leader].name,
               c->accounts[pairs[k].follower].name, first->id ? first->id : "?", first->file,
               first->line);
    }
out:
    free(acc);
    free(ids);
    free(pairs);
    free(follows);
}

/* ------------------------------------------------------------------------------------------------
 * Public API */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash == path ? strdup("/") : slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
}

static void load_config_file(struct ld *ld, size_t fidx, bool is_main)
{
    size_t len = 0;
    const char *path = ld->cfg->files[fidx];
    char *dir = dir_of(path);

    if (!dir) {
        ld->cs.oom = true;
        return;
    }
    ld->cs.fidx = fidx;
    ld->cs.file = path;
    ld->dir = dir;
    char *buf = cs_read_file(&ld->cs, path, &len);
    if (buf) {
        /* Wiped like a secret file: daemon.database may carry a password. */
        cs_parse_yaml(&ld->cs, buf, len, config_root, &is_main, true);
        secret_free(buf, len);
    }
    ld->dir = NULL;
    free(dir);
}

/* daemon.traders_dir as a path usable from the current directory: relative names (and the default
 * "traders.d") are taken against the main file's directory, like secret files. */
static void resolve_traders_dir(struct ld *ld)
{
    struct cfg_daemon *d = &ld->cfg->daemon;
    const char *name = ld->td == TD_GIVEN && d->traders_dir ? d->traders_dir : "traders.d";
    char *dir = NULL, *path = NULL;

    if (ld->td == TD_BAD) return;
    /* So that file names read "dir/x.yaml", not "dir/./x.yaml". */
    while (name[0] == '.' && name[1] == '/') name += 2;
    if (name[0] == '/') {
        path = strdup(name);
    } else if ((dir = dir_of(ld->cfg->files[0]))) {
        if (!strcmp(name, ".") || !*name)
            path = strdup(dir);
        else if (asprintf(&path, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name) < 0)
            path = NULL;
    }
    free(dir);
    if (!path) {
        ld->cs.oom = true;
        return;
    }
    free(d->traders_dir);
    d->traders_dir = path;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A trader file: NAME.yaml with a non-empty NAME that does not start with a dot (editor backups
 * and swap files such as .alice.yaml.swp or alice.yaml~ are not read). */
static bool is_trader_file(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && !strcmp(name + n - 5, ".yaml");
}

/* Every trader file in daemon.traders_dir, sorted by name, appended to cfg->files and read. A
 * missing default directory means no trader files; a missing configured one is an error. */
static void load_traders_dir(struct ld *ld)
{
    struct cfg *c = ld->cfg;
    const char *dir = c->daemon.traders_dir;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct stat main_st;
    bool have_main = stat(c->files[0], &main_st) == 0;
    DIR *d;

    if (ld->td == TD_BAD || !dir) return;
    ld->cs.fidx = 0;
    ld->cs.file = c->files[0];
    if (!(d = opendir(dir))) {
        if (errno == ENOENT && ld->td == TD_DEFAULT) return;
        cs_err_at(&ld->cs, ld->td_mark, "daemon.traders_dir",
                  "cannot open the %sdirectory \"%s\": %s",
                  ld->td == TD_DEFAULT ? "default trader " : "", dir, strerror(errno));
        return;
    }
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                cs_err_at(&ld->cs, ld->td_mark, "daemon.traders_dir",
                          "cannot read the directory \"%s\": %s", dir, strerror(errno));
            break;
        }
        if (!is_trader_file(e->d_name)) continue;
        char **g = cs_grow(&ld->cs, names, &cap, n, sizeof *names);
        if (!g) break;
        names = g;
        if (!(names[n] = strdup(e->d_name))) {
            ld->cs.oom = true;
            break;
        }
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, str_cmp);

    for (size_t i = 0; i < n && !ld->cs.oom; i++) {
        char *path = NULL;
        struct stat st;
        if (asprintf(&path, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", names[i]) < 0) {
            ld->cs.oom = true;
            break;
        }
        /* traders_dir may be the main file's own directory: the main file is not a trader file. */
        if (have_main && stat(path, &st) == 0 && st.st_dev == main_st.st_dev &&
            st.st_ino == main_st.st_ino) {
            free(path);
            continue;
        }
        char **files = realloc(c->files, (c->n_files + 1) * sizeof *files);
        if (!files) {
            free(path);
            ld->cs.oom = true;
            break;
        }
        c->files = files;
        c->files[c->n_files++] = path;
        load_config_file(ld, c->n_files - 1, false);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static struct cfg *load(const char *path, const char *const *trader_files, size_t n_trader_files,
                        bool scan_dir, struct cfg_errors *errs)
{
    struct ld ld = { 0 };
    struct cfg *c = calloc(1, sizeof *c);

    cfg_errors_reset(errs);
    if (!c || !(c->files = calloc(n_trader_files + 1, sizeof *c->files))) {
        ld.cs.oom = true;
        goto done;
    }
    ld.cfg = c;
    for (size_t i = 0; i <= n_trader_files && !ld.cs.oom; i++) {
        c->files[i] = strdup(i ? trader_files[i - 1] : path);
        if (!c->files[i]) {
            ld.cs.oom = true;
            break;
        }
        c->n_files++;
        load_config_file(&ld, i, i == 0);
        if (i == 0 && !ld.cs.oom) resolve_traders_dir(&ld);
    }
    if (scan_dir && !ld.cs.oom) load_traders_dir(&ld);
    if (!ld.cs.oom) check_links(&ld);

done:
    if (ld.cs.oom) {
        /* Reported whatever else happened; the message itself may not fit in memory. */
        ld.cs.file = "copytraderd";
        ld.cs.fidx = SIZE_MAX;
        cs_err_file(&ld.cs, "out of memory while loading the configuration");
        if (ld.cs.n_total == 0) ld.cs.n_total = 1;
    }
    size_t total = cs_errors_finish(&ld.cs, errs);
    if (c)
        for (size_t r = 0; r < c->n_rules; r++) {
            free(ld.rsrc[r].leader);
            free(ld.rsrc[r].follower);
        }
    free(ld.asrc);
    free(ld.rsrc);
    if (total) c = cfg_free(c);
    return c;
}

struct cfg *cfg_load_files(const char *path, const char *const *trader_files, size_t n_trader_files,
                           struct cfg_errors *errs)
{
    return load(path, trader_files, n_trader_files, false, errs);
}

struct cfg *cfg_load(const char *path, struct cfg_errors *errs)
{
    return load(path, NULL, 0, false, errs);
}

struct cfg *cfg_load_all(const char *path, struct cfg_errors *errs)
{
    return load(path, NULL, 0, true, errs);
}

struct cfg *cfg_free(struct cfg *c)
{
    if (!c) return NULL;
    for (size_t i = 0; i < c->n_accounts; i++) {
        struct cfg_account *a = &c->accounts[i];
        free(a->name);
        free(a->rest_url);
        free(a->ws_url);
        free(a->secret_file);
        secret_free_str(a->api_key);
        secret_free_str(a->api_secret);
    }
    free(c->accounts);
    for (size_t i = 0; i < c->n_rules; i++) {
        free(c->rules[i].id);
        cs_list_free(&c->rules[i].symbols);
        cs_list_free(&c->rules[i].exclude_symbols);
    }
    free(c->rules);
    cs_addr_free(&c->daemon.http_listen);
    cs_addr_free(&c->daemon.redis);
    secret_free_str(c->daemon.database);
    free(c->daemon.traders_dir);
    free(c->daemon.spool_dir);
    for (size_t i = 0; i < c->n_files; i++) free(c->files[i]);
    free(c->files);
    free(c);
    return NULL;
}

long cfg_account_find(const struct cfg *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_accounts; i++)
        if (c->accounts[i].name && !strcmp(c->accounts[i].name, name)) return (long)i;
    return -1;
}

const char *cfg_durability_name(enum cfg_durability d)
{
    return cs_choice_name(durabilities, (int)d);
}

const char *cfg_sizing_name(enum cfg_sizing s)
{
    return cs_choice_name(sizings, (int)s);
}

const char *cfg_sides_name(enum cfg_sides s)
{
    return cs_choice_name(sides, (int)s);
}

const char *cfg_order_type_name(enum cfg_order_type t)
{
    return cs_choice_name(order_types, (int)t);
}

const char *cfg_position_mode_name(enum cfg_position_mode m)
{
    return cs_choice_name(position_modes, (int)m);
}

static bool list_has(const struct cfg_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->items[i], s)) return true;
    return false;
}

bool cfg_rule_symbol_allowed(const struct cfg_rule *r, const char *symbol)
{
    if (!r || !symbol) return false;
    if (r->symbols.n && !list_has(&r->symbols, symbol)) return false;
    return !list_has(&r->exclude_symbols, symbol);
}
