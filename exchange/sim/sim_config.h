/* sim_config: the simulator's JSON configuration file.
 *
 * {"port":0, "admin_port":0, "ping_interval_s":180, "listen_key_ttl_s":3600,
 *  "event_log_limit":0,
 *  "accounts":[{"name":"leader","api_key":"...","api_secret":"...","balance":"100000",
 *               "position_mode":"oneway","leverage":20}],
 *  "symbols":[{"symbol":"BTCUSDT","price":"50000","step_size":"0.001","min_qty":"0.001",
 *              "max_qty":"1000","market_step_size":"0.001","market_min_qty":"0.001",
 *              "market_max_qty":"120","tick_size":"0.10","min_price":"0.10",
 *              "max_price":"1000000","min_notional":"5"}]}
 *
 * Required: accounts (>= 1) with name, api_key, api_secret; symbols (>= 1) with symbol, price,
 * step_size, tick_size. Defaults: ports 0 (pick a free one), ping_interval_s 180,
 * listen_key_ttl_s 3600, event_log_limit 0 (keep every event; N keeps the newest N per account
 * for /admin/events and replay — set it for long benchmarks, each event is ~0.7 KB), balance "0",
 * position_mode "oneway" ("hedge": Binance dualSidePosition), leverage 20 (1..125, every symbol's
 * initial leverage), min_qty = step_size, max_qty/max_price/min_price/
 * min_notional 0 (rule disabled), market_* = the LOT_SIZE value, unsigned_ok false. Decimals are JSON strings
 * (integers also accepted; JSON reals are refused because their exact text is lost).
 * Unknown keys are errors (typos must not pass silently).
 *
 * "unsigned_ok": true on an account is for BENCHMARKS ONLY (tests/bench/order.lua): its
 * POST /fapi/v1/order requests carrying neither "signature" nor "timestamp" are accepted with
 * the API key alone, so wrk can place real orders without HMAC in Lua. Never the default; every
 * other signed route, and any order request that does carry a signature, is checked as usual. */
#ifndef CT_SIM_CONFIG_H
#define CT_SIM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "decimal.h"
#include "market.h"
#include "sim_limits.h"

struct scfg_account {
    char name[MKT_ACCOUNT_MAX];
    char *api_key;
    char *api_secret;
    dec_t balance;
    enum mkt_pos_mode position_mode; /* "position_mode": "oneway" | "hedge" */
    int leverage;                    /* "leverage": every symbol's initial leverage */
    bool unsigned_ok;                /* "unsigned_ok": benchmarks only, see above */
};

struct scfg_symbol {
    struct mkt_instrument ins;
    dec_t price;
};

struct scfg {
    int port;
    int admin_port;
    int ping_interval_s;
    int listen_key_ttl_s;
    int event_log_limit;
    /* "rate_limits": {"enabled":true, "weight_1m":2400, "orders_10s":300, "orders_1m":1200,
     * "ban_after":5, "ban_s":120, "ban_max_s":259200, "bybit_trade_per_s":10,
     * "bybit_query_per_s":50} (defaults shown; see sim_limits.h). */
    struct slim_cfg limits;
    struct scfg_account *accounts;
    size_t naccounts;
    struct scfg_symbol *symbols;
    size_t nsymbols;
};

/* Parse text (origin names the file in messages). On error returns -EINVAL (or -ENOMEM) and
 * writes "origin: field 'accounts[0].api_key': ..." into err. */
int scfg_parse(const char *text, size_t len, const char *origin, struct scfg **out, char *err,
               size_t errlen);
/* Read and parse a file; -errno and a message naming the file if it cannot be read. */
int scfg_load(const char *path, struct scfg **out, char *err, size_t errlen);
struct scfg *scfg_free(struct scfg *c);

#endif
