/* sim: the simulator process state shared by its protocol front ends (sim_bn.c: Binance REST and
 * user stream; sim_admin.c: the admin API): the book, per-account runtime state (listen key,
 * websocket channel, event log), the servers and the clock. Internal to exchange/sim. */
#ifndef CT_SIM_H
#define CT_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sim_book.h"
#include "sim_buf.h"
#include "sim_config.h"
#include "sim_evlog.h"
#include "sim_fault.h"
#include "sim_http.h"
#include "sim_limits.h"
#include "sim_trades.h"
#include "sim_ws.h"
#include "uthash.h"

#define SIM_LISTEN_KEY_LEN 64

struct sim_by;
struct smkt;

struct sim_acct {
    struct sbook_account *ba;
    struct sevlog *log;
    struct sws_chan *chan;  /* connections of the active listen key */
    char listen_key[SIM_LISTEN_KEY_LEN + 1];
    bool key_active;
    int64_t key_expires_ms;
    struct strd *trades; /* executions, for GET /fapi/v1/userTrades */
    UT_hash_handle hh; /* sim.by_key, while the key is active */
};

struct sim {
    uv_loop_t *loop;
    const struct scfg *cfg;
    struct sbook *book;
    struct sim_acct *accts;
    size_t naccts;
    struct sim_acct *by_key;
    struct sws *ws;
    struct shttp_server *rest, *admin;
    uv_timer_t tick;
    bool tick_started;
    struct sbuf evbuf; /* scratch for formatting events */
    int64_t listen_key_ttl_ms;
    struct sfault_table *faults; /* POST /admin/fault */
    struct slim *limits;         /* rate limits (sim_limits.h) */
    struct sim_held *held;       /* fault decisions of requests held for later (latency) */
    struct sim_by *by;           /* Bybit v5 front end (sim_by.h) */
    struct smkt *mkt;            /* Binance market streams (sim_market.h) */
};

/* Builds the book and accounts from cfg (which must outlive the sim) and the websocket context.
 * NULL and a message on failure. */
struct sim *sim_new(uv_loop_t *loop, const struct scfg *cfg, char *err, size_t errlen);
/* Listen on 127.0.0.1 (REST + websocket, and admin). 0 or a negative uv error with a message. */
int sim_listen(struct sim *s, int rest_port, int admin_port, char *err, size_t errlen);
int sim_rest_port(const struct sim *s);
int sim_admin_port(const struct sim *s);
/* Shutdown, step 1 (from a uv callback): start lws' teardown, close servers and timers. Then run
 * the loop until idle and call sim_free. */
void sim_stop(struct sim *s);
/* Shutdown, step 2: finish lws' teardown and free everything. Run the loop once more after. */
struct sim *sim_free(struct sim *s);

int64_t sim_now_ms(void);
struct sim_acct *sim_acct_of(struct sim *s, const struct sbook_account *ba);
struct sim_acct *sim_acct_by_name(struct sim *s, const char *name);

/* Listen keys (Binance user-data stream). */
struct sim_acct *sim_lkey_lookup(struct sim *s, const char *key); /* active key or NULL */
/* Creates the account's key, or returns the active one extended by the TTL. */
const char *sim_lkey_open(struct sim *s, struct sim_acct *a);
/* Extends the active key; -ENOENT if none (or key given and different). */
int sim_lkey_keepalive(struct sim *s, struct sim_acct *a, const char *key);
/* Deactivates the key and closes its connections; -ENOENT if none. */
int sim_lkey_close(struct sim *s, struct sim_acct *a, const char *key);

/* Log an event for the account and push it to its stream connections. */
void sim_publish(struct sim *s, struct sim_acct *a, const char *text, size_t len, int64_t time_ms);
/* Re-send logged events with seq >= from_seq to the current connections, byte-identical.
 * Returns the number of events sent (0 if nobody is connected). */
size_t sim_replay(struct sim *s, struct sim_acct *a, int64_t from_seq);

/* Expire the account's listen key now (fault listen_key_expire): listenKeyExpired goes out and
 * the key's connections are closed. -ENOENT if no key is active. */
int sim_lkey_expire_now(struct sim *s, struct sim_acct *a);
/* The account a REST request authenticates as (X-MBX-APIKEY or X-BAPI-API-KEY), or NULL. */
struct sim_acct *sim_req_account(struct sim *s, const struct shttp_req *req);

/* The REST port's entry: fault injection (sim_fault) around the protocol front ends. */
void sim_rest_handle(void *ud, const struct shttp_req *req, struct shttp_resp *resp);

/* HTTP front ends (sim_bn.c, sim_admin.c). */
void sim_bn_handle(void *ud, const struct shttp_req *req, struct shttp_resp *resp);
bool sim_bn_upgrade(void *ud, const struct shttp_req *req, struct shttp_resp *resp);
struct sws_chan *sim_bn_resolve_stream(void *ud, const char *path, const char *key_arg);
void sim_admin_handle(void *ud, const struct shttp_req *req, struct shttp_resp *resp);

#endif
