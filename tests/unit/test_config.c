/* Unit tests for daemon/config.c and daemon/secret_file.c.
 *
 * Fixtures live in tests/data/config/. Secret files cannot live in git (git keeps no 0600 mode), so
 * the group setup writes them into a temporary directory at mode 0600 and points
 * $CREDENTIALS_DIRECTORY at it; tests about file modes write their own files there. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "decimal.h"

#define FIX(name) CT_TEST_DATA "/config/" name
#define EXAMPLE CT_TEST_DATA "/../../config/copytrader.example.yaml"

static char g_dir[64]; /* temporary $CREDENTIALS_DIRECTORY */

static const char *const g_accounts[] = { "alice", "bob", "carol", "dave", "leader-main",
                                          "follower-1", "follower-2", "follower-3", "follower-4",
                                          "follower-5" };

/* ---- helpers ---------------------------------------------------------------------------------- */

static char *tmp_path(const char *name)
{
    char *p;
    assert_true(asprintf(&p, "%s/%s", g_dir, name) > 0);
    return p;
}

/* Write `text` to g_dir/name with `mode`; returns the path (free it). */
static char *write_file(const char *name, const char *text, mode_t mode)
{
    char *p = tmp_path(name);
    unlink(p);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
    return p;
}

static void dump(const struct cfg_errors *e)
{
    for (size_t i = 0; i < e->n; i++) fprintf(stderr, "  error[%zu]: %s\n", i, e->msg[i]);
}

/* The exact message, formatted like printf (fixture paths vary with the source tree). */
__attribute__((format(printf, 2, 3)))
static void assert_has(const struct cfg_errors *e, const char *fmt, ...)
{
    char want[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < e->n; i++)
        if (!strcmp(e->msg[i], want)) return;
    fprintf(stderr, "missing error: %s\n", want);
    dump(e);
    fail();
}

static void assert_none_contains(const struct cfg_errors *e, const char *needle)
{
    for (size_t i = 0; i < e->n; i++) {
        if (strstr(e->msg[i], needle)) {
            fprintf(stderr, "message leaks \"%s\": %s\n", needle, e->msg[i]);
            fail();
        }
    }
}

/* Load a file that must fail with exactly n errors. */
static void load_fail(const char *path, struct cfg_errors *e, size_t n)
{
    struct cfg *c = cfg_load(path, e);
    assert_null(c);
    if (e->n != n) dump(e);
    assert_int_equal(e->n, n);
    assert_int_equal(e->dropped, 0);
}

static void assert_dec(dec_t d, const char *text)
{
    char buf[DEC_STR_MAX];
    dec_t want;
    assert_int_equal(dec_parse_cstr(text, &want), 0);
    assert_int_equal(dec_cmp(d, want), 0);
    assert_true(dec_format(d, buf, sizeof buf) > 0);
    assert_string_equal(buf, text);
}

static const char *secret_text(const char *account, const char *which)
{
    static char buf[128];
    snprintf(buf, sizeof buf, "%s-%s-0123456789abcdef", which, account);
    return buf;
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/ct_test_config_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    for (size_t i = 0; i < sizeof g_accounts / sizeof *g_accounts; i++) {
        char name[80], text[256];
        snprintf(name, sizeof name, "%s.yaml", g_accounts[i]);
        int n = snprintf(text, sizeof text, "api_key: %s\n", secret_text(g_accounts[i], "KEY"));
        snprintf(text + n, sizeof text - (size_t)n, "api_secret: %s\n",
                 secret_text(g_accounts[i], "SECRET"));
        free(write_file(name, text, 0600));
    }
    setenv("CREDENTIALS_DIRECTORY", g_dir, 1);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unsetenv("CREDENTIALS_DIRECTORY");
    return nftw(g_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- valid files ------------------------------------------------------------------------------ */

static void test_valid_exact_values(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    struct cfg *c = cfg_load(FIX("valid.yaml"), &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(e.n, 0);

    const struct cfg_daemon *d = &c->daemon;
    assert_int_equal(d->log_level, LOG_LVL_DEBUG);
    assert_string_equal(d->http_listen.text, "[::1]:9500");
    assert_string_equal(d->http_listen.host, "::1");
    assert_int_equal(d->http_listen.port, 9500);
    assert_null(d->http_listen.unix_path);
    assert_string_equal(d->database, "host=/run/postgresql dbname=copytrader");
    assert_string_equal(d->redis.unix_path, "/run/redis/redis-server.sock");
    assert_null(d->redis.host);
    assert_int_equal(d->journal_durability, CFG_DURABILITY_OS);
    assert_int_equal(d->batch_size, 250);
    assert_int_equal(d->flush_interval_ms, 5);

    assert_int_equal(c->n_accounts, 3);
    const struct cfg_account *a = &c->accounts[0];
    assert_string_equal(a->name, "alice");
    assert_int_equal(a->exchange, EXCH_BINANCE_USDM);
    assert_string_equal(a->rest_url, "http://127.0.0.1:18080");
    assert_string_equal(a->ws_url, "ws://127.0.0.1:18080");
    char *want = tmp_path("alice.yaml");
    assert_string_equal(a->secret_file, want);
    free(want);
    assert_string_equal(a->api_key, secret_text("alice", "KEY"));
    assert_string_equal(a->api_secret, secret_text("alice", "SECRET"));
    assert_int_equal(a->recv_window_ms, 10000);
    assert_int_equal(a->timeout_ms, 2500);
    assert_string_equal(a->file, FIX("valid.yaml"));
    assert_int_equal(a->line, 11);

    a = &c->accounts[1];
    assert_string_equal(a->name, "bob");
    assert_int_equal(a->exchange, EXCH_BYBIT_LINEAR);
    assert_string_equal(a->rest_url, "https://api.bybit.com");
    assert_string_equal(a->ws_url, "wss://stream.bybit.com/v5/private");
    assert_string_equal(a->api_key, secret_text("bob", "KEY"));
    assert_int_equal(a->recv_window_ms, 5000); /* defaults */
    assert_int_equal(a->timeout_ms, 5000);
    assert_string_equal(c->accounts[2].name, "carol.2");

    assert_int_equal(c->n_rules, 2);
    const struct cfg_rule *r = &c->rules[0];
    assert_string_equal(r->id, "bob-copies-alice");
    assert_int_equal(r->leader, 0);
    assert_int_equal(r->follower, 1);
    assert_int_equal(r->sizing, CFG_SIZING_MULTIPLIER);
    assert_dec(r->multiplier, "0.5");
    assert_false(r->enabled);
    assert_int_equal(r->line, 29);
    r = &c->rules[1];
    assert_string_equal(r->id, "carol_copies_alice");
    assert_int_equal(r->leader, 0);
    assert_int_equal(r->follower, 2);
    assert_dec(r->multiplier, "0.013"); /* quoted scalar: still exact */
    assert_int_equal(r->multiplier.m, 13);
    assert_int_equal(r->multiplier.scale, 3);
    assert_true(r->enabled); /* default */

    assert_int_equal(cfg_account_find(c, "carol.2"), 2);
    assert_int_equal(cfg_account_find(c, "zed"), -1);
    assert_string_equal(cfg_sizing_name(r->sizing), "multiplier");
    assert_string_equal(cfg_durability_name(d->journal_durability), "os");
    assert_int_equal(c->n_files, 1);
    assert_null(cfg_free(c));
}

static void test_defaults(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    struct cfg *c = cfg_load(FIX("minimal.yaml"), &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->daemon.log_level, LOG_LVL_INFO);
    assert_string_equal(c->daemon.http_listen.text, "127.0.0.1:9464");
    assert_string_equal(c->daemon.http_listen.host, "127.0.0.1");
    assert_int_equal(c->daemon.http_listen.port, 9464);
    assert_string_equal(c->daemon.redis.host, "127.0.0.1");
    assert_int_equal(c->daemon.redis.port, 6379);
    assert_null(c->daemon.redis.unix_path);
    assert_int_equal(c->daemon.journal_durability, CFG_DURABILITY_FSYNC);
    assert_int_equal(c->daemon.batch_size, 100);
    assert_int_equal(c->daemon.flush_interval_ms, 0);
    assert_int_equal(c->daemon.account_refresh_ms, 5000);
    assert_int_equal(c->daemon.drain_timeout_ms, 10000);
    assert_int_equal(c->accounts[0].recv_window_ms, 5000);
    assert_int_equal(c->accounts[0].timeout_ms, 5000);
    assert_true(c->rules[0].enabled);
    assert_dec(c->rules[0].multiplier, "1");
    cfg_free(c);
}

static void test_example_config_loads(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    struct cfg *c = cfg_load(EXAMPLE, &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->n_accounts, 6);
    assert_int_equal(c->n_rules, 5);
    /* One follower per sizing mode at least. */
    const enum cfg_sizing sizing[] = { CFG_SIZING_MULTIPLIER, CFG_SIZING_MULTIPLIER,
                                       CFG_SIZING_MULTIPLIER, CFG_SIZING_FIXED_NOTIONAL,
                                       CFG_SIZING_EQUITY_RATIO };
    const char *mult[] = { "1", "0.5", "0.013", "0", "0.5" };
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(c->accounts[c->rules[i].leader].name, "leader-main");
        assert_int_equal(c->rules[i].follower, i + 1);
        assert_int_equal(c->rules[i].sizing, sizing[i]);
        assert_dec(c->rules[i].multiplier, mult[i]);
        assert_true(c->rules[i].enabled);
        assert_false(c->rules[i].dry_run); /* an example copied as it is trades for real */
    }
    assert_string_equal(c->accounts[3].api_secret, secret_text("follower-3", "SECRET"));
    assert_string_equal(c->accounts[5].api_key, secret_text("follower-5", "KEY"));
    assert_int_equal(c->accounts[0].position_mode, CFG_POSITION_MODE_AUTO);
    assert_int_equal(c->accounts[4].position_mode, CFG_POSITION_MODE_ONEWAY);
    assert_int_equal(c->accounts[5].position_mode, CFG_POSITION_MODE_HEDGE);
    assert_int_equal(c->rules[1].order_type, CFG_ORDER_TYPE_LIMIT_IOC);
    assert_int_equal(c->rules[1].max_slippage_bps, 30);
    assert_int_equal(c->rules[1].symbols.n, 2);
    assert_dec(c->rules[3].notional, "100");
    assert_true(c->rules[3].force_min);
    assert_int_equal(c->rules[4].sides, CFG_SIDES_LONG_ONLY);
    assert_int_equal(c->rules[4].exclude_symbols.n, 2);
    assert_string_equal(c->rules[4].exclude_symbols.items[1], "1000PEPEUSDT");
    cfg_free(c);

    /* With the example trader file next to it (config/traders.d/alice.yaml). */
    free(write_file("alice.key", "api_key: KEY-alice-key\napi_secret: SECRET-alice-key\n", 0600));
    c = cfg_load_all(EXAMPLE, &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->n_files, 2);
    assert_int_equal(c->n_accounts, 7);
    assert_int_equal(c->n_rules, 6);
    assert_string_equal(c->accounts[6].name, "alice");
    assert_string_equal(c->accounts[c->rules[5].leader].name, "leader-main");
    assert_string_equal(c->accounts[c->rules[5].follower].name, "alice");
    assert_dec(c->rules[5].multiplier, "0.25");
    cfg_free(c);
}

/* ---- one kind of error per fixture ------------------------------------------------------------ */

static void test_wrong_type(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    load_fail(FIX("wrong_type.yaml"), &e, 2);
    assert_has(&e, "%s:4:15: daemon.batch_size: expected an integer in 1..10000, got a sequence",
               FIX("wrong_type.yaml"));
    assert_has(&e, "%s:11:17: accounts[0].timeout_ms: expected an integer in 100..60000, got \"fast\"",
               FIX("wrong_type.yaml"));
    cfg_errors_reset(&e);
    assert_int_equal(e.n, 0);
}

static void test_missing_key(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    load_fail(FIX("missing_key.yaml"), &e, 1);
    assert_has(&e, "%s:10:5: accounts[1]: missing required key 'rest_url'", FIX("missing_key.yaml"));
    cfg_errors_reset(&e);
}

static void test_unknown_key(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    load_fail(FIX("unknown_key.yaml"), &e, 2);
    assert_has(&e, "%s:3:3: daemon.colour: unknown key", FIX("unknown_key.yaml"));
    assert_has(&e, "%s:5:3: daemon.batch_sise: unknown key (did you mean 'batch_size'?)",
               FIX("unknown_key.yaml"));
    cfg_errors_reset(&e);
}

static void test_bad_decimal(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    load_fail(FIX("bad_decimal.yaml"), &e, 2);
    assert_has(&e, "%s:25:17: copy_rules[0].multiplier: expected a decimal > 0, got \"abc\"",
               FIX("bad_decimal.yaml"));
    assert_has(&e, "%s:30:17: copy_rules[1].multiplier: expected a decimal > 0, got \"-0.5\"",
               FIX("bad_decimal.yaml"));
    cfg_errors_reset(&e);
}

static void test_missing_account_and_self_copy(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    load_fail(FIX("bad_refs.yaml"), &e, 2);
    assert_has(&e, "%s:17:13: copy_rules[0].leader: no account named \"zed\"", FIX("bad_refs.yaml"));
    assert_has(&e,
               "%s:23:15: copy_rules[1].follower: \"alice\" is also the leader; a rule copies one "
               "account onto another", FIX("bad_refs.yaml"));
    cfg_errors_reset(&e);
}

static void test_duplicates(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    const char *f = FIX("duplicates.yaml");
    load_fail(f, &e, 4);
    assert_has(&e, "%s:5:3: daemon.batch_size: duplicate key (first at line 4)", f);
    assert_has(&e, "%s:17:11: accounts[2].name: duplicate account name \"alice\" (first defined at %s:7)",
               f, f);
    assert_has(&e, "%s:28:9: copy_rules[1].id: duplicate copy rule id \"same\" (first defined at %s:23)",
               f, f);
    assert_has(&e,
               "%s:28:5: copy_rules[1]: copies \"alice\" onto \"bob\" again (copy rule \"same\" at %s:23 "
               "already does); one rule per leader and follower", f, f);
    /* Sorted by position. */
    assert_non_null(strstr(e.msg[0], ":5:3:"));
    assert_non_null(strstr(e.msg[3], ":28:9:"));
    cfg_errors_reset(&e);
}

static void test_bad_url(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    load_fail(FIX("bad_url.yaml"), &e, 2);
    assert_has(&e,
               "%s:7:15: accounts[0].rest_url: expected an http:// or https:// URL, got "
               "\"ftp://127.0.0.1:18080\"", FIX("bad_url.yaml"));
    assert_has(&e,
               "%s:8:13: accounts[0].ws_url: expected a ws:// or wss:// URL, got "
               "\"http://127.0.0.1:18080\"", FIX("bad_url.yaml"));
    cfg_errors_reset(&e);
}

static void test_out_of_range(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    const char *f = FIX("out_of_range.yaml");
    load_fail(f, &e, 3);
    assert_has(&e, "%s:4:15: daemon.batch_size: expected an integer in 1..10000, got \"0\"", f);
    assert_has(&e, "%s:5:22: daemon.flush_interval_ms: expected an integer in 0..1000, got \"1001\"", f);
    assert_has(&e, "%s:12:21: accounts[0].recv_window_ms: expected an integer in 1..60000, got \"60001\"",
               f);
    cfg_errors_reset(&e);
}

static void test_syntax_error(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    load_fail(FIX("syntax_error.yaml"), &e, 1);
    assert_has(&e, "%s:4:14: YAML syntax error: mapping values are not allowed in this context",
               FIX("syntax_error.yaml"));
    cfg_errors_reset(&e);

    /* With libyaml's context, and a second document. */
    char *p = write_file("unterminated.yaml", "daemon:\n  database: \"dbname=x\n", 0600);
    load_fail(p, &e, 1);
    assert_has(&e,
               "%s:3:1: YAML syntax error: found unexpected end of stream (while scanning a quoted "
               "scalar at line 2, column 13)", p);
    free(p);
    p = write_file("two_docs.yaml", "daemon:\n  database: dbname=x\n  redis: h:1\n---\nx: 1\n", 0600);
    load_fail(p, &e, 1);
    assert_has(&e, "%s:4:1: a second YAML document starts here; a file holds one document", p);
    free(p);
    cfg_errors_reset(&e);
}

static void test_many_errors_in_one_pass(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    const char *f = FIX("many_errors.yaml");
    load_fail(f, &e, 13);
    assert_has(&e, "%s:2:14: daemon.log_level: expected debug, info, warn or error, got \"verbose\"", f);
    assert_has(&e, "%s:4:16: daemon.http_listen: expected host:port, got \"localhost\"", f);
    assert_has(&e, "%s:5:10: daemon.redis: expected unix:/path or host:port, got \"redis.example:0\"", f);
    assert_has(&e, "%s:6:23: daemon.journal_durability: expected fsync or os, got \"sometimes\"", f);
    assert_has(&e,
               "%s:8:11: accounts[0].name: expected a name of 1 to 63 characters from A-Z a-z 0-9 _ . "
               "-, got \"al ice\"", f);
    assert_has(&e, "%s:9:15: accounts[0].exchange: expected binance-usdm or bybit-linear, got \"kraken\"",
               f);
    assert_has(&e, "%s:18:21: accounts[1].recv_window_ms: expected an integer in 1..60000, got \"1.5\"", f);
    assert_has(&e, "%s:22:15: copy_rules[0].follower: no account named \"nobody\"", f);
    assert_has(&e,
               "%s:23:13: copy_rules[0].sizing: expected multiplier, fixed_notional or equity_ratio, "
               "got \"fixed\"", f);
    assert_has(&e, "%s:24:14: copy_rules[0].enabled: expected true or false, got \"yes\"", f);
    assert_has(&e, "%s:25:5: copy_rules[1]: missing required key 'follower'", f);
    assert_has(&e, "%s:28:17: copy_rules[1].multiplier: expected a decimal > 0, got \"1e-3\"", f);
    assert_has(&e, "%s:29:1: speed: unknown key", f);
    /* In file order, whatever order they were found in. */
    for (size_t i = 1; i < e.n; i++) {
        unsigned l0, l1;
        assert_int_equal(sscanf(e.msg[i - 1] + strlen(f), ":%u:", &l0), 1);
        assert_int_equal(sscanf(e.msg[i] + strlen(f), ":%u:", &l1), 1);
        assert_true(l0 <= l1);
    }
    cfg_errors_reset(&e);
}

static void test_error_bound(void **state)
{
    (void)state;
    /* 150 bad accounts, each missing its 5 required keys: 750 errors, 100 kept. */
    size_t cap = 64 + 150 * 16, o = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    o += (size_t)snprintf(text + o, cap - o, "daemon:\n  database: dbname=x\n  redis: h:1\naccounts:\n");
    for (int i = 0; i < 150; i++) o += (size_t)snprintf(text + o, cap - o, "  - {a: %d}\n", i);
    char *p = write_file("bound.yaml", text, 0600);
    free(text);
    struct cfg_errors e = { 0 };
    assert_null(cfg_load(p, &e));
    assert_int_equal(e.n, CFG_ERRORS_MAX);
    assert_int_equal(e.n + e.dropped, 150 * 6); /* 5 missing keys + 1 unknown key each */
    assert_has(&e, "%s:5:6: accounts[0].a: unknown key", p);
    free(p);
    cfg_errors_reset(&e);
    assert_null(cfg_load(FIX("does-not-exist.yaml"), NULL)); /* errs is optional */
}

static void test_missing_config_file(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    load_fail(FIX("does-not-exist.yaml"), &e, 1);
    assert_has(&e, "%s: cannot open: No such file or directory", FIX("does-not-exist.yaml"));
    cfg_errors_reset(&e);
    load_fail(g_dir, &e, 1);
    assert_has(&e, "%s: not a regular file", g_dir);
    cfg_errors_reset(&e);
}

/* ---- copy rule fields ------------------------------------------------------------------------- */

static void assert_list(const struct cfg_list *l, size_t n, const char *const *want)
{
    assert_int_equal(l->n, n);
    for (size_t i = 0; i < n; i++) assert_string_equal(l->items[i], want[i]);
}

static void test_rules_every_field(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    struct cfg *c = cfg_load(FIX("rules_valid.yaml"), &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->n_accounts, 4);
    assert_int_equal(c->accounts[0].position_mode, CFG_POSITION_MODE_AUTO); /* default */
    assert_int_equal(c->accounts[1].position_mode, CFG_POSITION_MODE_HEDGE);
    assert_int_equal(c->accounts[2].position_mode, CFG_POSITION_MODE_ONEWAY);
    assert_int_equal(c->accounts[3].position_mode, CFG_POSITION_MODE_AUTO);
    assert_int_equal(c->n_rules, 3);

    const struct cfg_rule *r = &c->rules[0];
    assert_string_equal(r->id, "by-multiplier");
    assert_int_equal(r->follower, 1);
    assert_int_equal(r->sizing, CFG_SIZING_MULTIPLIER);
    assert_dec(r->multiplier, "0.25");
    assert_dec(r->notional, "0");
    assert_true(r->reverse);
    assert_true(r->force_min);
    assert_false(r->coalesce);
    assert_dec(r->max_position_notional, "5000.5");
    assert_int_equal(r->max_leverage, 20);
    assert_list(&r->symbols, 3, (const char *const[]){ "BTCUSDT", "ETHUSDT", "1000PEPEUSDT" });
    assert_list(&r->exclude_symbols, 0, NULL);
    assert_int_equal(r->sides, CFG_SIDES_LONG_ONLY);
    assert_int_equal(r->max_slippage_bps, 25);
    assert_int_equal(r->max_signal_age_ms, 1500);
    assert_dec(r->daily_loss_limit, "250.75");
    assert_dec(r->max_drawdown_pct, "12.5");
    assert_int_equal(r->order_type, CFG_ORDER_TYPE_LIMIT_IOC);
    assert_true(r->dry_run);
    assert_false(r->enabled);
    assert_int_equal(r->line, 30);

    r = &c->rules[1];
    assert_string_equal(r->id, "by-notional");
    assert_int_equal(r->follower, 2);
    assert_int_equal(r->sizing, CFG_SIZING_FIXED_NOTIONAL);
    assert_dec(r->multiplier, "0"); /* not used by this mode */
    assert_dec(r->notional, "100.01");
    assert_int_equal(r->notional.m, 10001);
    assert_int_equal(r->notional.scale, 2);
    assert_false(r->reverse);
    assert_false(r->force_min);
    assert_true(r->coalesce);
    assert_dec(r->max_position_notional, "0");
    assert_int_equal(r->max_leverage, 125);
    assert_list(&r->symbols, 0, NULL);
    assert_list(&r->exclude_symbols, 2, (const char *const[]){ "DOGEUSDT", "XRPUSDT" });
    assert_int_equal(r->sides, CFG_SIDES_SHORT_ONLY);
    assert_int_equal(r->max_slippage_bps, 10000);
    assert_int_equal(r->max_signal_age_ms, 3600000);
    assert_dec(r->daily_loss_limit, "0");
    assert_dec(r->max_drawdown_pct, "99.99");
    assert_int_equal(r->order_type, CFG_ORDER_TYPE_MARKET);
    assert_false(r->dry_run);
    assert_true(r->enabled);

    r = &c->rules[2];
    assert_string_equal(r->id, "by-equity");
    assert_int_equal(r->follower, 3);
    assert_int_equal(r->sizing, CFG_SIZING_EQUITY_RATIO);
    assert_dec(r->multiplier, "2");
    assert_dec(r->notional, "0");
    assert_true(r->reverse);
    assert_false(r->force_min);
    assert_true(r->coalesce);
    assert_dec(r->max_position_notional, "1000000");
    assert_int_equal(r->max_leverage, 1);
    assert_list(&r->symbols, 1, (const char *const[]){ "SOLUSDT" });
    assert_list(&r->exclude_symbols, 1, (const char *const[]){ "BNBUSDT" });
    assert_int_equal(r->sides, CFG_SIDES_BOTH);
    assert_int_equal(r->max_slippage_bps, 0);
    assert_int_equal(r->max_signal_age_ms, 0);
    assert_dec(r->daily_loss_limit, "0.000001");
    assert_dec(r->max_drawdown_pct, "0");
    assert_int_equal(r->order_type, CFG_ORDER_TYPE_MARKET);
    assert_true(r->dry_run);
    assert_true(r->enabled);
    cfg_free(c);
}

static void assert_rule_defaults(const struct cfg_rule *r)
{
    assert_false(r->reverse);
    assert_false(r->force_min);
    assert_true(r->coalesce);
    assert_dec(r->max_position_notional, "0");
    assert_int_equal(r->max_leverage, 0);
    assert_int_equal(r->symbols.n, 0);
    assert_null(r->symbols.items);
    assert_int_equal(r->exclude_symbols.n, 0);
    assert_int_equal(r->sides, CFG_SIDES_BOTH);
    assert_int_equal(r->max_slippage_bps, 0);
    assert_int_equal(r->max_signal_age_ms, 0);
    assert_dec(r->daily_loss_limit, "0");
    assert_dec(r->max_drawdown_pct, "0");
    assert_int_equal(r->order_type, CFG_ORDER_TYPE_MARKET);
    assert_false(r->dry_run);
    assert_true(r->enabled);
}

static void test_rules_defaults(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    struct cfg *c = cfg_load(FIX("rules_defaults.yaml"), &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->n_rules, 3);
    for (size_t i = 0; i < c->n_accounts; i++)
        assert_int_equal(c->accounts[i].position_mode, CFG_POSITION_MODE_AUTO);
    for (size_t i = 0; i < 3; i++) assert_rule_defaults(&c->rules[i]);
    assert_int_equal(c->rules[0].sizing, CFG_SIZING_MULTIPLIER);
    assert_dec(c->rules[0].multiplier, "3");
    assert_dec(c->rules[0].notional, "0");
    assert_int_equal(c->rules[1].sizing, CFG_SIZING_FIXED_NOTIONAL);
    assert_dec(c->rules[1].multiplier, "0");
    assert_dec(c->rules[1].notional, "50");
    assert_int_equal(c->rules[2].sizing, CFG_SIZING_EQUITY_RATIO);
    assert_dec(c->rules[2].multiplier, "1"); /* equity_ratio's default factor */
    assert_dec(c->rules[2].notional, "0");
    cfg_free(c);
}

static void test_rules_wrong_values(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    const char *f = FIX("rules_bad_values.yaml");
#define SYMS "a list of symbols such as [BTCUSDT, ETHUSDT]"
#define LEV "an integer in 1..125 or 0 for no limit"
#define SLIP "an integer in 0..10000 (0 = off)"
#define AGE "an integer in 0..3600000 (0 = off)"
#define MPN "a decimal >= 0 (0 = unlimited)"
#define DLL "a decimal >= 0 (0 = off)"
#define MDD "a decimal >= 0 and below 100 (0 = off)"
    load_fail(f, &e, 29);
    /* Wrong types, one per key. */
    assert_has(&e, "%s:18:17: copy_rules[0].multiplier: expected a decimal > 0, got a sequence", f);
    assert_has(&e, "%s:19:14: copy_rules[0].reverse: expected true or false, got \"yes\"", f);
    assert_has(&e, "%s:20:16: copy_rules[0].force_min: expected true or false, got \"1\"", f);
    assert_has(&e, "%s:21:15: copy_rules[0].coalesce: expected true or false, got a mapping", f);
    assert_has(&e, "%s:22:28: copy_rules[0].max_position_notional: expected " MPN ", got \"lots\"", f);
    assert_has(&e, "%s:23:19: copy_rules[0].max_leverage: expected " LEV ", got \"2.5\"", f);
    assert_has(&e, "%s:24:14: copy_rules[0].symbols: expected " SYMS ", got a mapping", f);
    assert_has(&e, "%s:25:22: copy_rules[0].exclude_symbols: expected " SYMS ", got \"BTCUSDT\"", f);
    assert_has(&e, "%s:26:12: copy_rules[0].sides: expected both, long_only or short_only, got \"long\"",
               f);
    assert_has(&e, "%s:27:23: copy_rules[0].max_slippage_bps: expected " SLIP ", got \"1e3\"", f);
    assert_has(&e, "%s:28:24: copy_rules[0].max_signal_age_ms: expected " AGE ", got nothing", f);
    assert_has(&e, "%s:29:23: copy_rules[0].daily_loss_limit: expected " DLL ", got \"1,000\"", f);
    assert_has(&e, "%s:30:23: copy_rules[0].max_drawdown_pct: expected " MDD ", got \"5%%\"", f);
    assert_has(&e, "%s:31:17: copy_rules[0].order_type: expected market or limit_ioc, got \"limit\"", f);
    assert_has(&e, "%s:32:14: copy_rules[0].dry_run: expected true or false, got a sequence", f);
    /* A bad notional is reported once, not also as missing. */
    assert_has(&e, "%s:37:15: copy_rules[1].notional: expected a decimal > 0, got \"abc\"", f);
    /* Below the lower bounds. */
    assert_has(&e, "%s:42:17: copy_rules[2].multiplier: expected a decimal > 0, got \"0\"", f);
    assert_has(&e, "%s:43:28: copy_rules[2].max_position_notional: expected " MPN ", got \"-1\"", f);
    assert_has(&e, "%s:44:19: copy_rules[2].max_leverage: expected " LEV ", got \"-1\"", f);
    assert_has(&e, "%s:45:23: copy_rules[2].max_slippage_bps: expected " SLIP ", got \"-1\"", f);
    assert_has(&e, "%s:46:24: copy_rules[2].max_signal_age_ms: expected " AGE ", got \"-1\"", f);
    assert_has(&e, "%s:47:23: copy_rules[2].daily_loss_limit: expected " DLL ", got \"-0.01\"", f);
    assert_has(&e, "%s:48:23: copy_rules[2].max_drawdown_pct: expected " MDD ", got \"-0.5\"", f);
    /* Above the upper bounds (and beyond what an exact decimal holds). */
    assert_has(&e, "%s:53:15: copy_rules[3].notional: expected a decimal > 0, got \"0\"", f);
    assert_has(&e, "%s:54:19: copy_rules[3].max_leverage: expected " LEV ", got \"126\"", f);
    assert_has(&e, "%s:55:23: copy_rules[3].max_slippage_bps: expected " SLIP ", got \"10001\"", f);
    assert_has(&e, "%s:56:24: copy_rules[3].max_signal_age_ms: expected " AGE ", got \"3600001\"", f);
    assert_has(&e, "%s:57:23: copy_rules[3].max_drawdown_pct: expected " MDD ", got \"100\"", f);
    assert_has(&e,
               "%s:58:23: copy_rules[3].daily_loss_limit: expected " DLL ", got "
               "\"0.0000000000000000001\": too many digits for an exact decimal", f);
#undef SYMS
#undef LEV
#undef SLIP
#undef AGE
#undef MPN
#undef DLL
#undef MDD
    cfg_errors_reset(&e);
}

static void test_rules_sizing_modes(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    const char *f = FIX("rules_modes.yaml");
    load_fail(f, &e, 6);
    assert_has(&e, "%s:14:5: copy_rules[0]: missing required key 'multiplier' (sizing: multiplier)", f);
    assert_has(&e,
               "%s:23:15: copy_rules[1].notional: only used with sizing: fixed_notional; remove it "
               "(this rule's sizing is multiplier)", f);
    assert_has(&e, "%s:24:5: copy_rules[2]: missing required key 'notional' (sizing: fixed_notional)", f);
    assert_has(&e,
               "%s:33:17: copy_rules[3].multiplier: not used with sizing: fixed_notional (each open is "
               "notional / price); remove it", f);
    assert_has(&e,
               "%s:38:15: copy_rules[4].notional: only used with sizing: fixed_notional; remove it "
               "(this rule's sizing is equity_ratio)", f);
    /* Without a sizing, nothing more is said about multiplier or notional. */
    assert_has(&e, "%s:39:5: copy_rules[5]: missing required key 'sizing'", f);
    cfg_errors_reset(&e);
}

static void test_rules_symbol_lists(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    const char *f = FIX("rules_lists.yaml");
#define SYMS "a list of symbols such as [BTCUSDT, ETHUSDT]"
#define SYM "expected a symbol of 2 to 30 characters from A-Z 0-9"
    load_fail(f, &e, 14);
    assert_has(&e, "%s:19:14: copy_rules[0].symbols: expected " SYMS ", got \"BTCUSDT\"", f);
    assert_has(&e,
               "%s:20:21: copy_rules[0].exclude_symbols: expected " SYMS ", got nothing (write [] "
               "for none)", f);
    assert_has(&e, "%s:26:24: copy_rules[1].symbols[1]: " SYM ", got \"btcusdt\"", f);
    assert_has(&e, "%s:26:33: copy_rules[1].symbols[2]: " SYM ", got \"B\"", f);
    assert_has(&e, "%s:26:36: copy_rules[1].symbols[3]: " SYM ", got \"ETH-USDT\"", f);
    assert_has(&e, "%s:26:46: copy_rules[1].symbols[4]: " SYM ", got a sequence", f);
    assert_has(&e, "%s:26:57: copy_rules[1].symbols[5]: " SYM ", got \"\"", f);
    assert_has(&e,
               "%s:26:61: copy_rules[1].symbols[6]: " SYM ", got \"ABCDEFGHIJKLMNOPQRSTUVWXYZ01234\"",
               f);
    assert_has(&e, "%s:32:33: copy_rules[2].symbols[2]: duplicate \"BTCUSDT\" (already listed as symbols[0])",
               f);
    assert_has(&e, "%s:32:42: copy_rules[2].symbols[3]: duplicate \"BTCUSDT\" (already listed as symbols[0])",
               f);
    assert_has(&e,
               "%s:35:9: copy_rules[2].exclude_symbols[1]: duplicate \"XRPUSDT\" (already listed as "
               "exclude_symbols[0])", f);
    assert_has(&e,
               "%s:44:9: copy_rules[3].exclude_symbols[1]: \"SOLUSDT\" is also allowed by "
               "copy_rules[3].symbols[2] (line 41); a symbol cannot be both allowed and excluded", f);
    assert_has(&e,
               "%s:45:9: copy_rules[3].exclude_symbols[2]: \"BTCUSDT\" is also allowed by "
               "copy_rules[3].symbols[0] (line 41); a symbol cannot be both allowed and excluded", f);
    /* A broken list is reported for itself only: no overlap message on top. */
    assert_has(&e, "%s:51:24: copy_rules[4].symbols[1]: " SYM ", got \"bad\"", f);
#undef SYMS
#undef SYM
    cfg_errors_reset(&e);
}

static void test_rules_limit_ioc_needs_slippage(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    const char *f = FIX("rules_limit_ioc.yaml");
    load_fail(f, &e, 3);
    assert_has(&e,
               "%s:19:17: copy_rules[0].order_type: limit_ioc needs max_slippage_bps > 0 (the limit "
               "price is the leader price widened by that bound)", f);
    assert_has(&e,
               "%s:26:17: copy_rules[1].order_type: limit_ioc needs max_slippage_bps > 0 (the limit "
               "price is the leader price widened by that bound)", f);
    /* A bad bound is reported as such, once; copy_rules[3] (bound 1) is fine. */
    assert_has(&e,
               "%s:33:23: copy_rules[2].max_slippage_bps: expected an integer in 0..10000 (0 = off), "
               "got \"-5\"", f);
    cfg_errors_reset(&e);
}

/* A main config with one account alice (position_mode line given) and `rules` after copy_rules:. */
static char *config_with(const char *position_mode, const char *rules)
{
    char text[2048];
    snprintf(text, sizeof text,
             "daemon: {database: dbname=x, redis: 'h:1'}\n"
             "accounts:\n"
             "  - name: alice\n"
             "    exchange: binance-usdm\n"
             "    rest_url: http://h\n"
             "    ws_url: ws://h\n"
             "    secret_file: alice.yaml\n"
             "%s"
             "  - {name: bob, exchange: binance-usdm, rest_url: 'http://h', ws_url: 'ws://h', "
             "secret_file: bob.yaml}\n"
             "copy_rules:\n%s",
             position_mode, rules);
    return write_file("pm.yaml", text, 0600);
}

static void test_position_mode(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    static const char *const good[] = { "auto", "oneway", "hedge" };
    static const enum cfg_position_mode want[] = { CFG_POSITION_MODE_AUTO, CFG_POSITION_MODE_ONEWAY,
                                                   CFG_POSITION_MODE_HEDGE };
    for (size_t i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "    position_mode: %s\n", good[i]);
        char *p = config_with(line, "");
        struct cfg *c = cfg_load(p, &e);
        if (!c) dump(&e);
        assert_non_null(c);
        assert_int_equal(c->accounts[0].position_mode, want[i]);
        assert_int_equal(c->accounts[1].position_mode, CFG_POSITION_MODE_AUTO);
        assert_string_equal(cfg_position_mode_name(c->accounts[0].position_mode), good[i]);
        cfg_free(c);
        free(p);
    }
    static const char *const bad[] = { "netting", "Hedge", "one-way" };
    for (size_t i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "    position_mode: %s\n", bad[i]);
        char *p = config_with(line, "");
        load_fail(p, &e, 1);
        assert_has(&e, "%s:8:20: accounts[0].position_mode: expected auto, oneway or hedge, got \"%s\"", p,
                   bad[i]);
        cfg_errors_reset(&e);
        free(p);
    }
    char *p = config_with("    position_mode: [hedge]\n", "");
    load_fail(p, &e, 1);
    assert_has(&e, "%s:8:20: accounts[0].position_mode: expected auto, oneway or hedge, got a sequence",
               p);
    cfg_errors_reset(&e);
    free(p);
}

static void test_rule_key_misspelt(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *p = config_with("", "  - {id: r, leader: alice, follower: bob, sizing: multiplier, multiplier: 1,\n"
                              "     max_slipage_bps: 5, exclude_symbol: [BTCUSDT], dryrun: true}\n");
    load_fail(p, &e, 3);
    assert_has(&e, "%s:11:6: copy_rules[0].max_slipage_bps: unknown key (did you mean 'max_slippage_bps'?)",
               p);
    assert_has(&e, "%s:11:26: copy_rules[0].exclude_symbol: unknown key (did you mean 'exclude_symbols'?)",
               p);
    assert_has(&e, "%s:11:53: copy_rules[0].dryrun: unknown key (did you mean 'dry_run'?)", p);
    cfg_errors_reset(&e);
    free(p);
}

static void test_rule_symbol_allowed_and_names(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    struct cfg *c = cfg_load(FIX("rules_valid.yaml"), &e);
    assert_non_null(c);
    const struct cfg_rule *allow = &c->rules[0], *deny = &c->rules[1], *both = &c->rules[2];
    assert_true(cfg_rule_symbol_allowed(allow, "ETHUSDT"));
    assert_true(cfg_rule_symbol_allowed(allow, "1000PEPEUSDT"));
    assert_false(cfg_rule_symbol_allowed(allow, "XRPUSDT"));
    assert_false(cfg_rule_symbol_allowed(allow, "ethusdt")); /* exact, as the exchange spells it */
    assert_true(cfg_rule_symbol_allowed(deny, "BTCUSDT"));    /* no allow list: all but excluded */
    assert_false(cfg_rule_symbol_allowed(deny, "XRPUSDT"));
    assert_true(cfg_rule_symbol_allowed(both, "SOLUSDT"));
    assert_false(cfg_rule_symbol_allowed(both, "BNBUSDT"));
    assert_false(cfg_rule_symbol_allowed(both, "BTCUSDT"));
    assert_false(cfg_rule_symbol_allowed(NULL, "BTCUSDT"));
    assert_false(cfg_rule_symbol_allowed(allow, NULL));

    assert_string_equal(cfg_sizing_name(CFG_SIZING_MULTIPLIER), "multiplier");
    assert_string_equal(cfg_sizing_name(CFG_SIZING_FIXED_NOTIONAL), "fixed_notional");
    assert_string_equal(cfg_sizing_name(CFG_SIZING_EQUITY_RATIO), "equity_ratio");
    assert_string_equal(cfg_sizing_name((enum cfg_sizing)0), "?");
    assert_string_equal(cfg_sides_name(CFG_SIDES_BOTH), "both");
    assert_string_equal(cfg_sides_name(CFG_SIDES_LONG_ONLY), "long_only");
    assert_string_equal(cfg_sides_name(CFG_SIDES_SHORT_ONLY), "short_only");
    assert_string_equal(cfg_sides_name((enum cfg_sides)7), "?");
    assert_string_equal(cfg_order_type_name(CFG_ORDER_TYPE_MARKET), "market");
    assert_string_equal(cfg_order_type_name(CFG_ORDER_TYPE_LIMIT_IOC), "limit_ioc");
    assert_string_equal(cfg_position_mode_name(CFG_POSITION_MODE_AUTO), "auto");
    assert_string_equal(cfg_position_mode_name(CFG_POSITION_MODE_ONEWAY), "oneway");
    assert_string_equal(cfg_position_mode_name(CFG_POSITION_MODE_HEDGE), "hedge");
    assert_string_equal(cfg_position_mode_name((enum cfg_position_mode)-1), "?");
    cfg_free(c);
}

static void test_rules_long_list(void **state)
{
    (void)state;
    /* 20,000 symbols, every one twice: reported (100 kept, the rest counted) without quadratic
     * work or a crash. */
    size_t cap = 512 + 20000 * 2 * 12, o = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    o += (size_t)snprintf(text + o, cap - o,
                          "daemon: {database: dbname=x, redis: 'h:1'}\n"
                          "accounts:\n"
                          "  - {name: alice, exchange: binance-usdm, rest_url: 'http://h', ws_url: "
                          "'ws://h', secret_file: alice.yaml}\n"
                          "  - {name: bob, exchange: binance-usdm, rest_url: 'http://h', ws_url: "
                          "'ws://h', secret_file: bob.yaml}\n"
                          "copy_rules:\n"
                          "  - {id: r, leader: alice, follower: bob, sizing: multiplier, multiplier: 1,\n"
                          "     symbols: [");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 20000; i++) o += (size_t)snprintf(text + o, cap - o, "S%05d, ", i);
    o += (size_t)snprintf(text + o, cap - o, "ZZ]}\n");
    assert_true(o < cap);
    char *p = write_file("long.yaml", text, 0600);
    free(text);
    struct cfg_errors e = { 0 };
    assert_null(cfg_load(p, &e));
    assert_int_equal(e.n, CFG_ERRORS_MAX);
    assert_int_equal(e.n + e.dropped, 20000);
    assert_non_null(strstr(e.msg[0], "copy_rules[0].symbols[20000]: duplicate \"S00000\" (already "
                                     "listed as symbols[0])"));
    cfg_errors_reset(&e);
    free(p);
}

/* ---- several files ---------------------------------------------------------------------------- */

static const char *const MAIN_CFG =
    "daemon:\n"
    "  database: dbname=x\n"
    "  redis: unix:/run/redis.sock\n"
    "accounts:\n"
    "  - {name: alice, exchange: binance-usdm, rest_url: 'http://h', ws_url: 'ws://h', "
    "secret_file: alice.yaml}\n";

static void test_trader_files(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *m = write_file("main.yaml", MAIN_CFG, 0600);
    char *t1 = write_file("t1.yaml",
                          "accounts:\n"
                          "  - {name: bob, exchange: binance-usdm, rest_url: 'http://h', ws_url: 'ws://h', "
                          "secret_file: bob.yaml}\n"
                          "copy_rules:\n"
                          "  - {id: r1, leader: alice, follower: carol, sizing: multiplier, multiplier: 2}\n",
                          0600);
    char *t2 = write_file("t2.yaml",
                          "copy_rules:\n"
                          "  - {id: r2, leader: alice, follower: bob, sizing: multiplier, multiplier: 3}\n"
                          "accounts:\n"
                          "  - {name: carol, exchange: bybit-linear, rest_url: 'http://h', ws_url: 'ws://h', "
                          "secret_file: carol.yaml}\n",
                          0600);
    const char *traders[] = { t1, t2 };
    struct cfg *c = cfg_load_files(m, traders, 2, &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->n_files, 3);
    assert_int_equal(c->n_accounts, 3);
    assert_string_equal(c->accounts[2].file, t2);
    assert_int_equal(c->accounts[2].line, 4);
    assert_string_equal(c->accounts[c->rules[0].follower].name, "carol"); /* defined later */
    assert_string_equal(c->accounts[c->rules[1].follower].name, "bob");
    assert_string_equal(c->rules[1].file, t2);
    cfg_free(c);

    /* Errors name the trader file they are in. */
    char *bad = write_file("bad.yaml",
                           "daemon:\n"
                           "  batch_size: 1\n"
                           "accounts:\n"
                           "  - {name: alice, exchange: binance-usdm, rest_url: 'http://h', ws_url: 'ws://h', "
                           "secret_file: dave.yaml}\n"
                           "copy_rules:\n"
                           "  - {id: r1, leader: alice, follower: zed, sizing: multiplier, multiplier: 1}\n",
                           0600);
    const char *traders2[] = { t1, bad };
    assert_null(cfg_load_files(m, traders2, 2, &e));
    assert_has(&e, "%s:1:1: daemon: only allowed in the main config file", bad);
    assert_has(&e, "%s:4:12: accounts[0].name: duplicate account name \"alice\" (first defined at %s:5)",
               bad, m);
    assert_has(&e, "%s:6:10: copy_rules[0].id: duplicate copy rule id \"r1\" (first defined at %s:4)", bad,
               t1);
    assert_has(&e, "%s:6:39: copy_rules[0].follower: no account named \"zed\"", bad);
    assert_has(&e, "%s:4:39: copy_rules[0].follower: no account named \"carol\"", t1);
    assert_int_equal(e.n, 5);
    /* Sorted: main file first, then the trader files in the order given. */
    assert_non_null(strstr(e.msg[0], t1));
    cfg_errors_reset(&e);
    free(m);
    free(t1);
    free(t2);
    free(bad);
}

/* ---- traders_dir ------------------------------------------------------------------------------ */

/* mkdir g_dir/name; returns the path (free it). */
static char *make_dir(const char *name)
{
    char *p = tmp_path(name);
    assert_int_equal(mkdir(p, 0700), 0);
    return p;
}

static const char *const TRADER_BOB =
    "accounts:\n"
    "  - {name: bob, exchange: binance-usdm, rest_url: 'http://h', ws_url: 'ws://h', "
    "secret_file: bob.yaml}\n"
    "copy_rules:\n"
    "  - {id: r1, leader: alice, follower: bob, sizing: multiplier, multiplier: 2}\n";

static void test_traders_dir_fixture(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    struct cfg *c = cfg_load_all(FIX("traders/main.yaml"), &e);
    if (!c) dump(&e);
    assert_non_null(c);
    /* README.txt, old.yml, .hidden.yaml and 10-bob.yaml~ would each fail the load if read. */
    assert_int_equal(c->n_files, 3);
    assert_string_equal(c->files[1], FIX("traders/traders.d/10-bob.yaml"));
    assert_string_equal(c->files[2], FIX("traders/traders.d/20-carol.yaml"));
    assert_string_equal(c->daemon.traders_dir, FIX("traders/traders.d"));
    assert_int_equal(c->n_accounts, 3);
    assert_int_equal(c->n_rules, 2);
    assert_string_equal(c->accounts[1].name, "bob");
    assert_string_equal(c->accounts[1].file, c->files[1]);
    assert_string_equal(c->accounts[2].name, "carol");
    assert_string_equal(c->accounts[2].file, c->files[2]);
    /* A rule in 10-bob.yaml follows into carol, defined in 20-carol.yaml, led by alice (main). */
    const struct cfg_rule *r = &c->rules[1];
    assert_string_equal(r->id, "carol-copies-alice");
    assert_string_equal(r->file, c->files[1]);
    assert_int_equal(r->line, 14);
    assert_string_equal(c->accounts[r->leader].name, "alice");
    assert_string_equal(c->accounts[r->follower].name, "carol");
    assert_int_equal(r->sizing, CFG_SIZING_FIXED_NOTIONAL);
    assert_dec(r->notional, "50");
    assert_string_equal(c->accounts[c->rules[0].follower].name, "bob");
    cfg_free(c);

    /* cfg_load reads the main file only. */
    c = cfg_load(FIX("traders/main.yaml"), &e);
    assert_non_null(c);
    assert_int_equal(c->n_files, 1);
    assert_int_equal(c->n_accounts, 1);
    assert_string_equal(c->daemon.traders_dir, FIX("traders/traders.d"));
    cfg_free(c);
}

static void test_traders_dir_duplicate_id_names_both_files(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *d = make_dir("td-dup"), *td = make_dir("td-dup/traders.d");
    char *m = write_file("td-dup/main.yaml", MAIN_CFG, 0600);
    char *a = write_file("td-dup/traders.d/a.yaml", TRADER_BOB, 0600);
    char *b = write_file("td-dup/traders.d/b.yaml",
                         "accounts:\n"
                         "  - {name: carol, exchange: binance-usdm, rest_url: 'http://h', "
                         "ws_url: 'ws://h', secret_file: carol.yaml}\n"
                         "copy_rules:\n"
                         "  - {id: r1, leader: alice, follower: carol, sizing: multiplier, multiplier: 1}\n",
                         0600);
    struct cfg *c = cfg_load(m, &e); /* the main file alone is fine */
    assert_non_null(c);
    cfg_free(c);
    assert_null(cfg_load_all(m, &e));
    if (e.n != 1) dump(&e);
    assert_int_equal(e.n, 1);
    assert_has(&e, "%s:4:10: copy_rules[0].id: duplicate copy rule id \"r1\" (first defined at %s:4)", b, a);
    cfg_errors_reset(&e);
    free(d);
    free(td);
    free(m);
    free(a);
    free(b);
}

static void test_traders_dir_bad_file_fails_all(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *d = make_dir("td-bad"), *td = make_dir("td-bad/traders.d");
    char *m = write_file("td-bad/main.yaml", MAIN_CFG, 0600);
    char *a = write_file("td-bad/traders.d/a.yaml", TRADER_BOB, 0600);
    char *b = write_file("td-bad/traders.d/b.yaml",
                         "copy_rules:\n"
                         "  - id: r2\n"
                         "    leader: alice\n"
                         "    follower: carol\n"
                         "    sizing: multiplier\n"
                         "    multiplier: lots\n",
                         0600);
    char *c3 = write_file("td-bad/traders.d/c.yaml",
                          "accounts:\n"
                          "  - {name: carol, exchange: binance-usdm, rest_url: 'http://h', "
                          "ws_url: 'ws://h', secret_file: carol.yaml}\n",
                          0600);
    assert_null(cfg_load_all(m, &e));
    if (e.n != 1) dump(&e);
    assert_int_equal(e.n, 1);
    assert_has(&e, "%s:6:17: copy_rules[0].multiplier: expected a decimal > 0, got \"lots\"", b);

    /* Fixed, the same directory loads, carol (c.yaml) resolving b.yaml's rule. */
    free(write_file("td-bad/traders.d/b.yaml",
                    "copy_rules:\n"
                    "  - {id: r2, leader: alice, follower: carol, sizing: multiplier, multiplier: 1}\n",
                    0600));
    struct cfg *c = cfg_load_all(m, &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->n_files, 4);
    assert_int_equal(c->n_rules, 2);
    assert_string_equal(c->accounts[c->rules[1].follower].name, "carol");
    assert_string_equal(c->rules[1].file, b);
    cfg_free(c);
    free(d);
    free(td);
    free(m);
    free(a);
    free(b);
    free(c3);
}

static void test_traders_dir_missing(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *d = make_dir("td-missing");

    /* No traders.d next to the main file, none configured: no trader files. */
    char *m = write_file("td-missing/main.yaml", MAIN_CFG, 0600);
    struct cfg *c = cfg_load_all(m, &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->n_files, 1);
    char *want = tmp_path("td-missing/traders.d");
    assert_string_equal(c->daemon.traders_dir, want);
    free(want);
    cfg_free(c);

    /* Configured (relative to the main file's directory) and missing: an error naming it. */
    static const char *const head = "daemon:\n  database: dbname=x\n  redis: unix:/run/redis.sock\n";
    char text[512];
    snprintf(text, sizeof text, "%s  traders_dir: traders\n", head);
    free(write_file("td-missing/main.yaml", text, 0600));
    assert_null(cfg_load_all(m, &e));
    want = tmp_path("td-missing/traders");
    if (e.n != 1) dump(&e);
    assert_int_equal(e.n, 1);
    assert_has(&e, "%s:4:16: daemon.traders_dir: cannot open the directory \"%s\": No such file or "
               "directory", m, want);
    free(want);
    c = cfg_load(m, &e); /* the main file alone does not read the directory */
    assert_non_null(c);
    cfg_free(c);

    /* Absolute, and a file rather than a directory. */
    snprintf(text, sizeof text, "%s  traders_dir: %s\n", head, m);
    free(write_file("td-missing/main.yaml", text, 0600));
    assert_null(cfg_load_all(m, &e));
    assert_int_equal(e.n, 1);
    assert_has(&e, "%s:4:16: daemon.traders_dir: cannot open the directory \"%s\": Not a directory", m, m);

    /* The default traders.d exists but is not a directory: refused too. */
    free(write_file("td-missing/main.yaml", MAIN_CFG, 0600));
    char *f = write_file("td-missing/traders.d", "x: 1\n", 0600);
    assert_null(cfg_load_all(m, &e));
    assert_int_equal(e.n, 1);
    assert_has(&e, "%s:2:3: daemon.traders_dir: cannot open the default trader directory \"%s\": Not a "
               "directory", m, f);
    cfg_errors_reset(&e);
    free(f);
    free(m);
    free(d);
}

static void test_traders_dir_holds_main_file(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *d = make_dir("td-dot");
    char text[512];
    snprintf(text, sizeof text,
             "accounts:\n  - {name: alice, exchange: binance-usdm, rest_url: 'http://h', "
             "ws_url: 'ws://h', secret_file: alice.yaml}\n"
             "daemon:\n  database: dbname=x\n  redis: unix:/run/redis.sock\n  traders_dir: .\n");
    char *m = write_file("td-dot/main.yaml", text, 0600);
    char *t = write_file("td-dot/bob.yaml", TRADER_BOB, 0600);
    struct cfg *c = cfg_load_all(m, &e);
    if (!c) dump(&e);
    assert_non_null(c);
    assert_int_equal(c->n_files, 2); /* main.yaml is not read a second time as a trader file */
    assert_string_equal(c->files[1], t);
    assert_int_equal(c->n_rules, 1);
    cfg_free(c);
    free(m);
    free(t);
    free(d);
}

static void test_lead_and_follow_refused(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *m = write_file("loop.yaml",
                         "daemon: {database: dbname=x, redis: 'h:1'}\n"
                         "accounts:\n"
                         "  - {name: alice, exchange: binance-usdm, rest_url: 'http://h', ws_url: 'ws://h', "
                         "secret_file: alice.yaml}\n"
                         "  - {name: bob, exchange: binance-usdm, rest_url: 'http://h', ws_url: 'ws://h', "
                         "secret_file: bob.yaml}\n"
                         "copy_rules:\n"
                         "  - {id: a-to-b, leader: alice, follower: bob, sizing: multiplier, multiplier: 1}\n"
                         "  - {id: b-to-a, leader: bob, follower: alice, sizing: multiplier, multiplier: 1}\n",
                         0600);
    load_fail(m, &e, 2);
    assert_has(&e,
               "%s:6:26: copy_rules[0].leader: account \"alice\" already follows \"bob\" (copy rule at "
               "%s:7); an account cannot both lead and follow", m, m);
    assert_has(&e,
               "%s:7:26: copy_rules[1].leader: account \"bob\" already follows \"alice\" (copy rule at "
               "%s:6); an account cannot both lead and follow", m, m);
    cfg_errors_reset(&e);
    free(m);
}

/* ---- secret files ----------------------------------------------------------------------------- */

/* A config in g_dir whose one account reads secret_file `secret`. */
static char *config_with_secret(const char *secret)
{
    char text[512];
    snprintf(text, sizeof text,
             "daemon:\n"
             "  database: dbname=x\n"
             "  redis: h:1\n"
             "accounts:\n"
             "  - name: alice\n"
             "    exchange: binance-usdm\n"
             "    rest_url: http://h\n"
             "    ws_url: ws://h\n"
             "    secret_file: %s\n", secret);
    return write_file("sec.yaml", text, 0600);
}

#define TOP_KEY "TOPKEY-7f3a9c"
#define TOP_SECRET "TOPSECRET-41d2e8"

static void test_secret_mode_0644_refused(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *s = write_file("open.yaml", "api_key: " TOP_KEY "\napi_secret: " TOP_SECRET "\n", 0644);
    char *c = config_with_secret("open.yaml");
    load_fail(c, &e, 1);
    assert_has(&e,
               "%s:9:18: accounts[0].secret_file: secret file %s has mode 0644: group or others can "
               "access it; run 'chmod 600 %s'", c, s, s);
    assert_none_contains(&e, TOP_KEY);
    assert_none_contains(&e, TOP_SECRET);
    cfg_errors_reset(&e);

    /* 0640 too: group alone is enough to refuse; 0400 is fine. */
    assert_int_equal(chmod(s, 0640), 0);
    load_fail(c, &e, 1);
    assert_non_null(strstr(e.msg[0], "has mode 0640"));
    cfg_errors_reset(&e);
    assert_int_equal(chmod(s, 0400), 0);
    struct cfg *ok = cfg_load(c, &e);
    assert_non_null(ok);
    assert_string_equal(ok->accounts[0].api_key, TOP_KEY);
    assert_string_equal(ok->accounts[0].api_secret, TOP_SECRET);
    cfg_free(ok);
    free(s);
    free(c);
}

static void test_secret_missing_file(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *c = config_with_secret("nobody.yaml");
    char *s = tmp_path("nobody.yaml");
    load_fail(c, &e, 1);
    assert_has(&e,
               "%s:9:18: accounts[0].secret_file: cannot open secret file %s: No such file or directory",
               c, s);
    cfg_errors_reset(&e);
    free(s);
    free(c);
}

static void test_secret_missing_api_secret(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *s = write_file("half.yaml", "api_key: " TOP_KEY "\n", 0600);
    char *c = config_with_secret("half.yaml");
    load_fail(c, &e, 1);
    assert_has(&e, "%s:1:1: missing required key 'api_secret'", s);
    assert_none_contains(&e, TOP_KEY);
    cfg_errors_reset(&e);
    free(s);
    free(c);
}

static void test_secret_never_in_errors(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    /* Every way a secret file can be wrong while holding the secret text. */
    static const char *const bodies[] = {
        TOP_KEY ": " TOP_SECRET "\n",                                  /* "KEY: SECRET" layout */
        "api_key: [" TOP_KEY "]\napi_secret: {" TOP_SECRET ": 1}\n",   /* wrong types */
        "api_key: \"" TOP_KEY " x\"\napi_secret: \"" TOP_SECRET "\\t\"\n", /* bad characters */
        "api_key: " TOP_KEY "\napi_key: " TOP_KEY "\napi_secret: " TOP_SECRET "\n", /* duplicate */
        TOP_KEY "\n",                                                  /* bare scalar */
        "api_key: " TOP_KEY "\napi_secret: \"" TOP_SECRET "\n",        /* syntax error */
        "api_key: " TOP_KEY "\napi_secret: " TOP_SECRET "\n---\n" TOP_SECRET ": 1\n",
    };
    char *c = config_with_secret("leaky.yaml");
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        char *s = write_file("leaky.yaml", bodies[i], 0600);
        assert_null(cfg_load(c, &e));
        assert_true(e.n >= 1);
        assert_none_contains(&e, TOP_KEY);
        assert_none_contains(&e, TOP_SECRET);
        for (size_t j = 0; j < e.n; j++) assert_non_null(strstr(e.msg[j], s)); /* names the file */
        cfg_errors_reset(&e);
        assert_int_equal(chmod(s, 0604), 0); /* and the mode error */
        assert_null(cfg_load(c, &e));
        assert_none_contains(&e, TOP_KEY);
        assert_none_contains(&e, TOP_SECRET);
        cfg_errors_reset(&e);
        free(s);
    }
    free(c);

    /* A password in the database conninfo is not echoed either. */
    c = write_file("pw.yaml", "daemon:\n  database: \"host=x password=" TOP_SECRET " junk\"\n  redis: h:1\n",
                   0600);
    load_fail(c, &e, 1);
    assert_none_contains(&e, TOP_SECRET);
    assert_has(&e,
               "%s:2:13: daemon.database: expected a libpq connection string: libpq rejects it (its "
               "message is not shown: the string holds a password)", c);
    cfg_errors_reset(&e);
    free(c);
}

static void test_secret_not_regular_or_foreign(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    char *fifo = tmp_path("fifo.yaml");
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char *c = config_with_secret("fifo.yaml");
    load_fail(c, &e, 1); /* and does not hang in open() */
    assert_has(&e, "%s:9:18: accounts[0].secret_file: secret file %s is not a regular file", c, fifo);
    cfg_errors_reset(&e);
    free(c);
    free(fifo);

    if (geteuid() != 0) {
        skip(); /* cannot give a file away without root */
        return;
    }
    char *s = write_file("foreign.yaml", "api_key: k\napi_secret: s\n", 0600);
    assert_int_equal(chown(s, 65534, 65534), 0);
    c = config_with_secret("foreign.yaml");
    load_fail(c, &e, 1);
    assert_non_null(strstr(e.msg[0], "is owned by uid 65534"));
    cfg_errors_reset(&e);
    free(s);
    free(c);
}

static void test_secret_path_resolution(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    /* Without $CREDENTIALS_DIRECTORY: next to the config file. */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/etc", g_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char *s = write_file("etc/alice-local.yaml", "api_key: LOCALKEY\napi_secret: LOCALSECRET\n", 0600);
    char *c = write_file("etc/local.yaml",
                         "daemon: {database: dbname=x, redis: 'h:1'}\n"
                         "accounts:\n"
                         "  - {name: alice, exchange: binance-usdm, rest_url: 'http://h', ws_url: 'ws://h', "
                         "secret_file: alice-local.yaml}\n",
                         0600);
    unsetenv("CREDENTIALS_DIRECTORY");
    struct cfg *cf = cfg_load(c, &e);
    setenv("CREDENTIALS_DIRECTORY", g_dir, 1);
    if (!cf) dump(&e);
    assert_non_null(cf);
    assert_string_equal(cf->accounts[0].secret_file, s);
    assert_string_equal(cf->accounts[0].api_key, "LOCALKEY");
    cfg_free(cf);

    /* With it set, the same relative name is looked up there (and is missing). */
    load_fail(c, &e, 1);
    assert_non_null(strstr(e.msg[0], "cannot open secret file"));
    assert_non_null(strstr(e.msg[0], g_dir));
    assert_null(strstr(e.msg[0], "/etc/alice-local"));
    cfg_errors_reset(&e);

    /* An absolute path is used as it is. */
    char *c2 = config_with_secret(s);
    cf = cfg_load(c2, &e);
    assert_non_null(cf);
    assert_string_equal(cf->accounts[0].api_secret, "LOCALSECRET");
    cfg_free(cf);
    free(s);
    free(c);
    free(c2);
}

static void test_free_null(void **state)
{
    (void)state;
    struct cfg_errors e = { 0 };
    assert_null(cfg_free(NULL));
    cfg_errors_reset(&e);
    cfg_errors_reset(NULL);
    assert_int_equal(cfg_account_find(NULL, "x"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_exact_values),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_example_config_loads),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_missing_key),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_bad_decimal),
        cmocka_unit_test(test_missing_account_and_self_copy),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_many_errors_in_one_pass),
        cmocka_unit_test(test_error_bound),
        cmocka_unit_test(test_missing_config_file),
        cmocka_unit_test(test_rules_every_field),
        cmocka_unit_test(test_rules_defaults),
        cmocka_unit_test(test_rules_wrong_values),
        cmocka_unit_test(test_rules_sizing_modes),
        cmocka_unit_test(test_rules_symbol_lists),
        cmocka_unit_test(test_rules_limit_ioc_needs_slippage),
        cmocka_unit_test(test_position_mode),
        cmocka_unit_test(test_rule_key_misspelt),
        cmocka_unit_test(test_rule_symbol_allowed_and_names),
        cmocka_unit_test(test_rules_long_list),
        cmocka_unit_test(test_trader_files),
        cmocka_unit_test(test_traders_dir_fixture),
        cmocka_unit_test(test_traders_dir_duplicate_id_names_both_files),
        cmocka_unit_test(test_traders_dir_bad_file_fails_all),
        cmocka_unit_test(test_traders_dir_missing),
        cmocka_unit_test(test_traders_dir_holds_main_file),
        cmocka_unit_test(test_lead_and_follow_refused),
        cmocka_unit_test(test_secret_mode_0644_refused),
        cmocka_unit_test(test_secret_missing_file),
        cmocka_unit_test(test_secret_missing_api_secret),
        cmocka_unit_test(test_secret_never_in_errors),
        cmocka_unit_test(test_secret_not_regular_or_foreign),
        cmocka_unit_test(test_secret_path_resolution),
        cmocka_unit_test(test_free_null),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
