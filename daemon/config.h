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
    const char *file;       /* the file and line that define it (for later messages) */
    unsigned line;
};

enum cfg_sizing {
    CFG_SIZING_MULTIPLIER = 1, /* follower qty = leader qty * multiplier */
    /* fixed_notional and equity_ratio are recognised and refused as "not supported yet". */
};

struct cfg_rule {
    char *id;               /* [A-Za-z0-9_.-]{1,63}, unique across all files */
    size_t leader;          /* index into cfg.accounts */
    size_t follower;        /* index into cfg.accounts, != leader */
    enum cfg_sizing sizing;
    dec_t multiplier;       /* > 0, exact from the scalar's text */
    bool enabled;           /* default true */
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

/* Load the main file `path`. NULL if anything is wrong, with every problem found in errs (errs may
 * be NULL). Relative secret_file paths resolve against $CREDENTIALS_DIRECTORY if it is set and not
 * empty, else against the directory of the file that names them. */
struct cfg *cfg_load(const char *path, struct cfg_errors *errs);
/* Same, plus trader files that may hold only `accounts` and `copy_rules`; names and ids are unique
 * across all files and rules may refer to accounts in any of them. */
struct cfg *cfg_load_files(const char *path, const char *const *trader_files, size_t n_trader_files,
                           struct cfg_errors *errs);
/* Zeroes the secrets and frees everything. Takes NULL, returns NULL. */
struct cfg *cfg_free(struct cfg *c);

/* Index of the account named `name`, or -1. */
long cfg_account_find(const struct cfg *c, const char *name);
const char *cfg_durability_name(enum cfg_durability d);
const char *cfg_sizing_name(enum cfg_sizing s);

#endif
