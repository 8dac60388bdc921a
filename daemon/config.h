/* config: the daemon's YAML configuration (libyaml), validated in one pass.
 *
 * One main file (daemon settings, and accounts/copy rules) plus optional trader files holding only
 * accounts and copy_rules (traders.d/NAME.yaml). Every error names FILE:LINE:COLUMN and the key path,
 * e.g. "conf.yaml:12:5: copy_rules[1].multiplier: expected a decimal > 0, got \"abc\"", and loading
 * goes on after an error so that `copytraderd --check-config` lists them all (like `nginx -t`).
 * A config is either fully valid or not returned at all: the daemon never runs on half of one.
 *
 * Secret files (api_key/api_secret) are read and checked here too: a regular file, mode & 077 == 0.
 * Secrets live in struct cfg_account and are zeroed by cfg_free; no error message ever contains them. */
#ifndef CT_CONFIG_H
#define CT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decimal.h"
#include "exchange.h" /* enum exch_kind (only the enum: config does not link the adapters) */
#include "log.h"      /* enum log_level */

#define CFG_NAME_MAX 63    /* account names and rule ids: [A-Za-z0-9_.-]{1,63} */
#define CFG_SYMBOL_MAX 30  /* symbols in rule lists: [A-Z0-9]{2,30} */
#define CFG_ERRORS_MAX 100 /* messages kept; further errors are only counted */

/* Error messages, one string each ("file:line:col: key.path: what is wrong"), in the order found.
 * Zero-initialise it; cfg_load* empty it first; cfg_errors_reset frees the messages. */
struct cfg_errors {
    size_t n;       /* messages in msg[] */
    size_t dropped; /* errors beyond CFG_ERRORS_MAX (counted, not kept) */
    char *msg[CFG_ERRORS_MAX];
};
void cfg_errors_reset(struct cfg_errors *e);

/* "host:port" or "[v6]:port", or "unix:/absolute/path" where a unix socket is allowed. */
struct cfg_addr {
    char *text;      /* as written in the file */
    char *host;      /* NULL for a unix socket */
    uint16_t port;   /* 0 for a unix socket */
    char *unix_path; /* NULL for host:port */
};

enum cfg_durability {
    CFG_DURABILITY_FSYNC = 0, /* fsync the spool before a request leaves (write-before-send) */
    CFG_DURABILITY_OS = 1,    /* leave it to the OS page cache: faster, loses the tail on a crash */
};

struct cfg_daemon {
    enum log_level log_level;       /* default info */
    struct cfg_addr http_listen;    /* default 127.0.0.1:9464; host:port only */
    char *database;                 /* libpq conninfo (required); may hold a password: never print it */
    struct cfg_addr redis;          /* unix:/path or host:port (required) */
    enum cfg_durability journal_durability; /* default fsync */
    int batch_size;                 /* 1..10000, default 100 */
    int flush_interval_ms;          /* 0..1000, default 0 */
    int drain_timeout_ms;           /* 0..600000, default 10000: on SIGTERM, the longest wait for
                                       orders in flight and the journal before exiting */
    char *spool_dir;                /* the journal's local spool; NULL = $STATE_DIRECTORY/spool
                                       when systemd sets STATE_DIRECTORY, else no spool */
    int spool_after_ms;             /* 1..60000, default 250: a fill write waiting longer for
                                       PostgreSQL goes to the spool */
    int cache_ttl_tickers_ms;       /* 100..3600000, default 5000 */
    int cache_ttl_positions_ms;     /* 100..3600000, default 10000 */
    int cache_ttl_balances_ms;      /* 100..3600000, default 15000 */
    int cache_ttl_instruments_ms;   /* 1000..86400000, default 3600000 */
    int cache_max_entries;          /* 16..10000000, default 100000 per cache (LRU beyond) */
    int backfill_max_age_ms;        /* 1000..604800000, default 3600000: how far back a backfill
                                       (after a reconnect, or at start-up) may fetch leader fills */
    int account_refresh_ms;         /* 100..600000, default 5000: equity (loss stops, equity
                                       sizing) and ticker (slippage guard) refresh period */
    int follower_state_wait_ms;     /* 0..60000, default 2000: how long a leader fill waits,
                                       unjournaled, for followers whose state still loads */
    char *traders_dir;              /* where cfg_load_all finds trader files (every *.yaml not
                                       starting with a dot, by name); as loaded: relative names
                                       joined to the main file's directory. Default "traders.d"
                                       there (missing = none); a configured one must exist */
    int rest_connections_per_host;  /* 1..16384, default 512: REST connections (so orders in
                                       flight, HTTP/1.1) per exchange host */
    /* The PostgreSQL connection pool for database work off the hot path (SIGHUP reloads); the
     * journal keeps its own session. */
    int db_pool_size;               /* 1..64, default 2: connections kept open */
    int db_pool_overflow;           /* 0..64, default 2: extra connections under load */
    int db_pool_acquire_timeout_ms; /* 10..600000, default 5000 */
    int db_pool_recycle_age_ms;     /* 1000..604800000, default 3600000 */
    int db_pool_health_idle_ms;     /* 0..3600000, default 10000: a round-trip check before
                                       reusing a connection idle longer (0: every reuse) */
    int slow_statement_ms;          /* 1..600000, default 100: slower statements (pool and
                                       journal) are counted; the pool's are logged */
};

/* What the follower account's position mode must be (Binance dualSidePosition, Bybit position
 * mode). The pre-flight check at start-up compares it with the exchange's. */
enum cfg_position_mode {
    CFG_POSITION_MODE_AUTO = 0,   /* "auto" (default): use whatever the exchange reports */
    CFG_POSITION_MODE_ONEWAY = 1, /* "oneway": one net position per symbol */
    CFG_POSITION_MODE_HEDGE = 2,  /* "hedge": separate long and short positions per symbol */
};

struct cfg_account {
    char *name;             /* [A-Za-z0-9_.-]{1,63}, unique across all files */
    enum exch_kind exchange;
    char *rest_url;         /* http:// or https:// */
    char *ws_url;           /* ws:// or wss:// */
    char *secret_file;      /* resolved path ($CREDENTIALS_DIRECTORY or the config file's directory) */
    char *api_key;          /* from secret_file; zeroed by cfg_free; never logged */
    char *api_secret;
    int recv_window_ms;     /* 1..60000, default 5000 */
    int timeout_ms;         /* 100..60000, default 5000 */
    enum cfg_position_mode position_mode; /* default auto */
    int stream_ping_ms;     /* 0..600000, default 0 = the exchange's (20 s) */
    int stream_silence_ms;  /* 0 or 2000..3600000 and > stream_ping_ms; 0 = the exchange's */
    const char *file;       /* the file and line that define it (for later messages) */
    unsigned line;
};

/* How the size of a follower open is derived from a leader fill (closes are ratio closes). */
enum cfg_sizing {
    CFG_SIZING_MULTIPLIER = 1,     /* "multiplier": follower qty = leader qty x multiplier */
    CFG_SIZING_FIXED_NOTIONAL = 2, /* "fixed_notional": notional (quote) per leader open / price */
    CFG_SIZING_EQUITY_RATIO = 3,   /* "equity_ratio": leader qty x follower equity / leader equity
                                      x multiplier */
};

/* Which follower positions a rule may open. */
enum cfg_sides {
    CFG_SIDES_BOTH = 0,       /* "both" (default) */
    CFG_SIDES_LONG_ONLY = 1,  /* "long_only" */
    CFG_SIDES_SHORT_ONLY = 2, /* "short_only" */
};

enum cfg_order_type {
    CFG_ORDER_TYPE_MARKET = 0,    /* "market" (default) */
    CFG_ORDER_TYPE_LIMIT_IOC = 1, /* "limit_ioc": limit at the leader price widened by
                                     max_slippage_bps (> 0 then), immediate-or-cancel */
};

/* A list of distinct strings, in file order. */
struct cfg_list {
    char **items;
    size_t n;
};

/* Money amounts (notional, max_position_notional, daily_loss_limit) are in the follower
 * instrument's quote currency (USDT for USDT-margined contracts). Decimals are exact: parsed from
 * the scalar's text, never through a double. A limit of 0 means off / unlimited. */
struct cfg_rule {
    char *id;               /* [A-Za-z0-9_.-]{1,63}, unique across all files */
    size_t leader;          /* index into cfg.accounts */
    size_t follower;        /* index into cfg.accounts, != leader */
    enum cfg_sizing sizing;
    dec_t multiplier;       /* multiplier: > 0 (required); equity_ratio: > 0, default 1 (an extra
                               factor); fixed_notional: 0 (not allowed in the file) */
    bool enabled;           /* default true */
    dec_t notional;         /* fixed_notional: > 0 (required), quote per leader open; else 0 */
    bool reverse;           /* default false: open the opposite side of the leader */
    bool force_min;         /* default false: round a too-small open up to the instrument minimum
                               instead of skipping it */
    bool coalesce;          /* default true: add up small leader partial fills until the
                               follower's minimum is reached */
    dec_t max_position_notional; /* >= 0, default 0 = unlimited */
    int max_leverage;       /* 1..125, default 0 = no limit */
    struct cfg_list symbols;         /* allowed symbols ([A-Z0-9]{2,30}); empty (default) = all */
    struct cfg_list exclude_symbols; /* denied symbols; default empty; disjoint from symbols */
    enum cfg_sides sides;   /* default both */
    int max_slippage_bps;   /* 0..10000, default 0 = off (leader price vs cached ticker; opens) */
    int max_signal_age_ms;  /* 0..3600000, default 0 = off (skip leader fills older than this) */
    dec_t daily_loss_limit; /* >= 0, default 0 = off: then close_only until an operator resets */
    dec_t max_drawdown_pct; /* percent, 0 <= x < 100, default 0 = off: then close_only */
    enum cfg_order_type order_type; /* default market; limit_ioc needs max_slippage_bps > 0 */
    bool dry_run;           /* default false: intents computed and journaled, never sent */
    const char *file;
    unsigned line;
};

/* Read-only after loading. */
struct cfg {
    struct cfg_daemon daemon;
    struct cfg_account *accounts;
    size_t n_accounts;
    struct cfg_rule *rules;
    size_t n_rules;
    char **files;           /* every file loaded, main file first (cfg_account.file points here) */
    size_t n_files;
};

/* Load the main file `path` only (daemon.traders_dir is resolved, not read). NULL if anything is
 * wrong, with every problem found in errs (errs may be NULL). Relative secret_file paths resolve
 * against $CREDENTIALS_DIRECTORY if it is set and not empty, else against the directory of the
 * file that names them. */
struct cfg *cfg_load(const char *path, struct cfg_errors *errs);
/* Same, plus trader files that may hold only `accounts` and `copy_rules`; names and ids are unique
 * across all files and rules may refer to accounts in any of them. */
struct cfg *cfg_load_files(const char *path, const char *const *trader_files, size_t n_trader_files,
                           struct cfg_errors *errs);
/* The whole configuration: the main file plus every trader file in daemon.traders_dir (sorted by
 * name; the main file itself is skipped if it is there). One bad file fails the whole load.
 * cfg->files lists them, main file first; cfg->n_files - 1 is the number of trader files. */
struct cfg *cfg_load_all(const char *path, struct cfg_errors *errs);
/* Zeroes the secrets and frees everything. Takes NULL, returns NULL. */
struct cfg *cfg_free(struct cfg *c);

/* Index of the account named `name`, or -1. */
long cfg_account_find(const struct cfg *c, const char *name);
const char *cfg_durability_name(enum cfg_durability d);
const char *cfg_sizing_name(enum cfg_sizing s);   /* "multiplier", ...; "?" if out of range */
const char *cfg_sides_name(enum cfg_sides s);     /* "both", "long_only", "short_only" */
const char *cfg_order_type_name(enum cfg_order_type t);         /* "market", "limit_ioc" */
const char *cfg_position_mode_name(enum cfg_position_mode m);   /* "auto", "oneway", "hedge" */

/* Whether the rule copies fills of `symbol`: in symbols (or symbols is empty) and not in
 * exclude_symbols. */
bool cfg_rule_symbol_allowed(const struct cfg_rule *r, const char *symbol);

#endif
