#include "sim.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sim_bn_fmt.h"
#include "sim_by.h"
#include "sim_market.h"

int64_t sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t book_clock(void *ud)
{
    (void)ud;
    return sim_now_ms();
}

struct sim_acct *sim_acct_of(struct sim *s, const struct sbook_account *ba)
{
    size_t i = sbook_account_index(ba);
    return i < s->naccts ? &s->accts[i] : NULL;
}

struct sim_acct *sim_acct_by_name(struct sim *s, const char *name)
{
    struct sbook_account *ba = sbook_account(s->book, name);
    return ba ? sim_acct_of(s, ba) : NULL;
}

void sim_publish(struct sim *s, struct sim_acct *a, const char *text, size_t len, int64_t time_ms)
{
    (void)s;
    if (sevlog_append(a->log, text, len, time_ms) < 0)
        log_error("sim", "account %s: out of memory logging an event, ignoring", sbook_account_name(a->ba));
    if (a->key_active && sws_chan_send(a->chan, text, len) < 0)
        log_error("sim", "account %s: out of memory queueing an event, ignoring", sbook_account_name(a->ba));
}

/* Book events -> Binance user-stream payloads. */
static void on_book_event(void *ud, struct sbook_account *ba, const struct sbook_event *ev)
{
    struct sim *s = ud;
    struct sim_acct *a = sim_acct_of(s, ba);
    /* Executions are kept for GET /fapi/v1/userTrades (the backfill after a stream gap). */
    if (ev->kind == SBOOK_EV_ORDER && ev->exec == SBOOK_X_TRADE && a && a->trades &&
        strd_add_event(a->trades, ev) < 0)
        log_error("sim", "account %s: out of memory recording a trade, ignoring", sbook_account_name(ba));
    sim_by_on_event(s->by, ba, ev); /* the Bybit view: execution list and private topics */
    sbuf_reset(&s->evbuf);
    sbnf_event(&s->evbuf, ev);
    if (sbuf_failed(&s->evbuf)) {
        log_error("sim", "account %s: out of memory formatting an event, ignoring", sbook_account_name(ba));
        return;
    }
    sim_publish(s, a, s->evbuf.p, s->evbuf.len, ev->time_ms);
}

size_t sim_replay(struct sim *s, struct sim_acct *a, int64_t from_seq)
{
    size_t sent = 0;
    (void)s;
    if (!a->key_active || sws_chan_count(a->chan) == 0)
        return 0;
    for (size_t i = sevlog_first_from(a->log, from_seq); i < sevlog_count(a->log); i++) {
        const struct sevlog_entry *e = sevlog_at(a->log, i);
        if (sws_chan_send(a->chan, e->text, e->len) > 0)
            sent++;
    }
    return sent;
}

/* ---- listen keys ---- */

struct sim_acct *sim_lkey_lookup(struct sim *s, const char *key)
{
    struct sim_acct *a;
    if (!key)
        return NULL;
    HASH_FIND_STR(s->by_key, key, a);
    return a && a->key_active ? a : NULL;
}

static void new_key(char out[SIM_LISTEN_KEY_LEN + 1])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[SIM_LISTEN_KEY_LEN];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        /* Not a secret, only needs to be unique in this process. */
        static unsigned seed;
        seed += (unsigned)sim_now_ms() ^ (unsigned)getpid();
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (unsigned char)(rand_r(&seed) & 0xff);
    }
    for (size_t i = 0; i < SIM_LISTEN_KEY_LEN; i++)
        out[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    out[SIM_LISTEN_KEY_LEN] = '\0';
}

const char *sim_lkey_open(struct sim *s, struct sim_acct *a)
{
    if (!a->key_active) {
        do
            new_key(a->listen_key);
        while (sim_lkey_lookup(s, a->listen_key));
        a->key_active = true;
        HASH_ADD_STR(s->by_key, listen_key, a);
    }
    a->key_expires_ms = sim_now_ms() + s->listen_key_ttl_ms;
    return a->listen_key;
}

int sim_lkey_keepalive(struct sim *s, struct sim_acct *a, const char *key)
{
    if (!a->key_active || (key && *key && strcmp(key, a->listen_key) != 0))
        return -ENOENT;
    a->key_expires_ms = sim_now_ms() + s->listen_key_ttl_ms;
    return 0;
}

static void deactivate(struct sim *s, struct sim_acct *a, bool close_conns)
{
    HASH_DEL(s->by_key, a);
    a->key_active = false;
    sws_chan_close_all(a->chan, close_conns);
}

int sim_lkey_close(struct sim *s, struct sim_acct *a, const char *key)
{
    if (!a->key_active || (key && *key && strcmp(key, a->listen_key) != 0))
        return -ENOENT;
    deactivate(s, a, true);
    return 0;
}

int sim_lkey_expire_now(struct sim *s, struct sim_acct *a)
{
    int64_t now = sim_now_ms();
    if (!a->key_active)
        return -ENOENT;
    sbuf_reset(&s->evbuf);
    sbnf_listen_key_expired(&s->evbuf, now, a->listen_key);
    if (!sbuf_failed(&s->evbuf))
        sim_publish(s, a, s->evbuf.p, s->evbuf.len, now);
    /* The event is written before the close frame (sws flushes a closing connection's queue). */
    deactivate(s, a, true);
    return 0;
}

/* ---- REST entry: fault injection around the protocol front ends ---- */

struct sim_held {
    uint64_t conn_id;
    struct sfault_http_hit hit;
    struct sim_held *next;
};

struct sim_acct *sim_req_account(struct sim *s, const struct shttp_req *req)
{
    static const char *const hdrs[] = {"X-MBX-APIKEY", "X-BAPI-API-KEY"};
    char key[300];
    for (size_t i = 0; i < 2; i++) {
        size_t n = 0;
        const char *v = shttp_header(req, hdrs[i], &n);
        if (!v || n == 0 || n >= sizeof(key))
            continue;
        memcpy(key, v, n);
        key[n] = '\0';
        struct sbook_account *ba = sbook_account_by_key(s->book, key);
        if (ba)
            return sim_acct_of(s, ba);
    }
    return NULL;
}

static bool bybit_path(const struct shttp_req *req)
{
    return req->path_len >= 4 && memcmp(req->path, "/v5/", 4) == 0;
}

static void bybit_body(struct sbuf *b, int code, const char *msg)
{
    sbuf_addf(b, "{\"retCode\":%d,\"retMsg\":", code);
    sbuf_add_jstr(b, msg);
    sbuf_adds(b, ",\"result\":{},\"retExtInfo\":{},\"time\":");
    sbuf_add_i64(b, sim_now_ms());
    sbuf_addc(b, '}');
}

/* The answer of an HTTP fault, in the protocol of the path (Binance, or Bybit for /v5/). */
static void fault_reply(const struct shttp_req *req, struct shttp_resp *resp, const struct sfault_http_hit *h)
{
    bool by = bybit_path(req);
    sbuf_reset(&resp->body);
    switch (h->kind) {
    case SFAULT_HTTP_5XX:
        resp->status = h->status;
        if (by)
            bybit_body(&resp->body, 10016, "Server error.");
        else
            sbuf_adds(&resp->body, "{\"code\":-1000,\"msg\":\"An unknown error occured while processing the request.\"}");
        break;
    case SFAULT_429:
        resp->status = 429;
        sbuf_addf(&resp->headers, "Retry-After: %d\r\n", h->retry_after_s);
        if (by)
            bybit_body(&resp->body, 10006, "Too many visits!");
        else
            sbuf_adds(&resp->body, "{\"code\":-1003,\"msg\":\"Too many requests; current limit is 2400 requests per "
                                   "minute. Please use the websocket for live updates to avoid polling the API.\"}");
        break;
    case SFAULT_418:
        sbuf_addf(&resp->headers, "Retry-After: %d\r\n", h->retry_after_s);
        if (by) {
            /* Bybit's IP ban is a 403 "access too frequent". */
            resp->status = 403;
            resp->content_type = "text/plain";
            sbuf_adds(&resp->body, "access too frequent");
        } else {
            resp->status = 418;
            sbuf_addf(&resp->body, "{\"code\":-1003,\"msg\":\"Way too many requests; IP banned until %lld. Please "
                                   "use the websocket for live updates to avoid bans.\"}",
                      (long long)(sim_now_ms() + (int64_t)h->retry_after_s * 1000));
        }
        break;
    case SFAULT_503_UNKNOWN:
        if (by) {
            /* Bybit's unknown-outcome answer: "Server Timeout". */
            resp->status = 200;
            bybit_body(&resp->body, 10000, "Server Timeout");
        } else {
            resp->status = 503;
            sbuf_adds(&resp->body, "{\"code\":-1000,\"msg\":\"Unknown error, please check your request or try "
                                   "again later.\"}");
        }
        break;
    default:
        break;
    }
}

static void held_put(struct sim *s, uint64_t conn_id, const struct sfault_http_hit *hit)
{
    struct sim_held *h = malloc(sizeof(*h));
    if (!h)
        return; /* the request then runs without its other faults */
    h->conn_id = conn_id;
    h->hit = *hit;
    h->next = s->held;
    s->held = h;
}

static bool held_take(struct sim *s, uint64_t conn_id, struct sfault_http_hit *out)
{
    for (struct sim_held **pp = &s->held; *pp; pp = &(*pp)->next) {
        if ((*pp)->conn_id == conn_id) {
            struct sim_held *h = *pp;
            *out = h->hit;
            *pp = h->next;
            free(h);
            return true;
        }
    }
    return false;
}

void sim_rest_handle(void *ud, const struct shttp_req *req, struct shttp_resp *resp)
{
    struct sim *s = ud;
    struct sfault_http_hit hit;
    bool have = false;

    if (req->held) {
        /* A latency fault with after_place false held it: the delay is served; the other
         * fault decided with it (if any) still applies. */
        have = held_take(s, req->conn_id, &hit);
        hit.latency = false;
    } else if (sfault_count(s->faults)) {
        char path[SFAULT_PATH_MAX];
        size_t pl = req->path_len < sizeof(path) - 1 ? req->path_len : sizeof(path) - 1;
        struct sim_acct *a = sim_req_account(s, req);
        memcpy(path, req->path, pl);
        path[pl] = '\0';
        have = sfault_match_http(s->faults, a ? sbook_account_name(a->ba) : NULL,
                                 shttp_method_name(req->method), path, sim_now_ms(), &hit);
        if (have)
            log_debug("sim", "fault on %s %s (account %s):%s%s%s", shttp_method_name(req->method), path,
                     a ? sbook_account_name(a->ba) : "-", hit.latency ? " latency" : "",
                     hit.outcome ? " " : "", hit.outcome ? sfault_kind_name(hit.kind) : "");
        if (have && hit.latency && hit.hold && hit.delay_ms > 0) {
            held_put(s, req->conn_id, &hit);
            resp->hold_ms = hit.delay_ms;
            return;
        }
    }
    if (have && hit.outcome && hit.kind != SFAULT_503_UNKNOWN && !(hit.kind == SFAULT_RESET && hit.after_place)) {
        /* Refused before anything is handled: nothing is placed. */
        if (hit.kind == SFAULT_RESET)
            resp->reset = true;
        else
            fault_reply(req, resp, &hit);
        if (hit.latency)
            resp->delay_ms = hit.delay_ms;
        return;
    }
    if (sim_by_owns(req))
        sim_by_handle(ud, req, resp);
    else
        sim_bn_handle(ud, req, resp);
    if (have && hit.outcome) {
        if (hit.kind == SFAULT_RESET)
            resp->reset = true;
        else
            fault_reply(req, resp, &hit); /* 503_unknown: handled (placed), answered 503 */
    }
    if (have && hit.latency)
        resp->delay_ms = hit.delay_ms;
}

static unsigned ws_fault_hook(void *ud, const char *label)
{
    struct sim *s = ud;
    unsigned f = sfault_match_ws_event(s->faults, label, sim_now_ms());
    return ((f & SFAULT_WS_DUP) ? SWS_SEND_DUP : 0) | ((f & SFAULT_WS_HOLD) ? SWS_SEND_HOLD : 0);
}

/* Once a second: expire listen keys that were not kept alive. Binance sends listenKeyExpired and
 * then nothing more on that key; the socket itself stays open. */
static void tick_cb(uv_timer_t *t)
{
    struct sim *s = t->data;
    int64_t now = sim_now_ms();
    for (size_t i = 0; i < s->naccts; i++) {
        struct sim_acct *a = &s->accts[i];
        if (!a->key_active || now < a->key_expires_ms)
            continue;
        sbuf_reset(&s->evbuf);
        sbnf_listen_key_expired(&s->evbuf, now, a->listen_key);
        if (!sbuf_failed(&s->evbuf))
            sim_publish(s, a, s->evbuf.p, s->evbuf.len, now);
        log_info("sim", "account %s: listen key expired", sbook_account_name(a->ba));
        deactivate(s, a, false);
    }
}

/* ---- lifecycle ---- */

struct sim *sim_new(uv_loop_t *loop, const struct scfg *cfg, char *err, size_t errlen)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->cfg = cfg;
    s->listen_key_ttl_ms = (int64_t)cfg->listen_key_ttl_s * 1000;
    s->book = sbook_new(on_book_event, book_clock, s);
    s->accts = calloc(cfg->naccounts, sizeof(*s->accts));
    s->faults = sfault_new();
    s->limits = slim_new(&cfg->limits);
    if (!s->book || !s->accts || !s->faults || !s->limits) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->nsymbols; i++) {
        int rc = sbook_add_symbol(s->book, &cfg->symbols[i].ins, cfg->symbols[i].price);
        if (rc < 0) {
            snprintf(err, errlen, "symbol %s: %s", cfg->symbols[i].ins.symbol, strerror(-rc));
            goto fail;
        }
    }
    s->ws = sws_new(loop, cfg->ping_interval_s, sim_bn_resolve_stream, s);
    if (!s->ws) {
        snprintf(err, errlen, "cannot create the libwebsockets context (is libwebsockets-evlib-uv installed?)");
        goto fail;
    }
    sws_set_send_hook(s->ws, ws_fault_hook, s);
    for (size_t i = 0; i < cfg->naccounts; i++) {
        const struct scfg_account *ca = &cfg->accounts[i];
        int rc = sbook_add_account(s->book, ca->name, ca->api_key, ca->api_secret, ca->balance);
        if (rc < 0) {
            snprintf(err, errlen, "account %s: %s", ca->name, strerror(-rc));
            goto fail;
        }
        s->accts[i].ba = sbook_account(s->book, ca->name);
        for (size_t k = 0; k < cfg->nsymbols; k++) {
            if (sbook_set_leverage(s->accts[i].ba, sbook_symbol_at(s->book, k), ca->leverage) < 0) {
                snprintf(err, errlen, "account %s: leverage %d out of range", ca->name, ca->leverage);
                goto fail;
            }
        }
        if (ca->position_mode != MKT_PM_ONE_WAY &&
            sbook_set_position_mode(s->book, s->accts[i].ba, ca->position_mode) != SBOOK_OK) {
            snprintf(err, errlen, "account %s: cannot set the position mode", ca->name);
            goto fail;
        }
        s->accts[i].log = sevlog_new((size_t)cfg->event_log_limit);
        s->accts[i].chan = sws_chan_new(s->ws);
        s->accts[i].trades = strd_new((size_t)cfg->event_log_limit);
        s->naccts = i + 1;
        if (!s->accts[i].log || !s->accts[i].chan || !s->accts[i].trades ||
            sws_chan_set_label(s->accts[i].chan, ca->name) < 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    s->by = sim_by_new(s, err, errlen);
    if (!s->by)
        goto fail;
    s->mkt = smkt_new(loop, s->book);
    if (!s->mkt) {
        snprintf(err, errlen, "cannot create the market-stream websocket context");
        goto fail;
    }
    if (uv_timer_init(loop, &s->tick) < 0) {
        snprintf(err, errlen, "uv_timer_init failed");
        goto fail;
    }
    s->tick.data = s;
    s->tick_started = true;
    uv_timer_start(&s->tick, tick_cb, 1000, 1000);
    return s;
fail:
    /* Nothing listens yet and nothing else runs on the loop: tear down right here. */
    sim_stop(s);
    uv_run(loop, UV_RUN_DEFAULT);
    sim_free(s);
    return NULL;
}

static void adopt_ws(void *ud, int fd, const char *bytes, size_t len)
{
    struct sim *s = ud;
    if (sim_by_owns_bytes(bytes, len)) {
        sim_by_adopt(s->by, fd, bytes, len);
        return;
    }
    if (smkt_owns_bytes(bytes, len)) {
        if (smkt_adopt(s->mkt, fd, bytes, len) < 0)
            log_warn("sim", "market websocket hand-over to lws failed, connection dropped");
        return;
    }
    if (sws_adopt(s->ws, fd, bytes, len) < 0)
        log_warn("sim", "websocket hand-over to lws failed, connection dropped");
}

static bool rest_upgrade(void *ud, const struct shttp_req *req, struct shttp_resp *resp)
{
    if (smkt_owns_path(req->path, req->path_len))
        return smkt_upgrade(((struct sim *)ud)->mkt, req, resp);
    return sim_by_owns(req) ? sim_by_upgrade(ud, req, resp) : sim_bn_upgrade(ud, req, resp);
}

int sim_listen(struct sim *s, int rest_port, int admin_port, char *err, size_t errlen)
{
    int rc;
    struct shttp_opts rest = {sim_rest_handle, rest_upgrade, adopt_ws, s};
    struct shttp_opts admin = {sim_admin_handle, NULL, NULL, s};
    s->rest = shttp_new(s->loop, "127.0.0.1", rest_port, &rest, &rc);
    if (!s->rest) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d (REST): %s", rest_port, uv_strerror(rc));
        return rc;
    }
    s->admin = shttp_new(s->loop, "127.0.0.1", admin_port, &admin, &rc);
    if (!s->admin) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d (admin): %s", admin_port, uv_strerror(rc));
        return rc;
    }
    return 0;
}

int sim_rest_port(const struct sim *s) { return s->rest ? shttp_port(s->rest) : -1; }
int sim_admin_port(const struct sim *s) { return s->admin ? shttp_port(s->admin) : -1; }

void sim_stop(struct sim *s)
{
    if (!s)
        return;
    sws_destroy_begin(s->ws);
    sim_by_stop(s->by);
    smkt_destroy_begin(s->mkt);
    shttp_close(s->rest);
    s->rest = NULL;
    shttp_close(s->admin);
    s->admin = NULL;
    if (s->tick_started) {
        uv_close((uv_handle_t *)&s->tick, NULL);
        s->tick_started = false;
    }
}

struct sim *sim_free(struct sim *s)
{
    if (!s)
        return NULL;
    s->ws = sws_destroy_finish(s->ws);
    s->by = sim_by_free(s->by);
    s->mkt = smkt_destroy_finish(s->mkt);
    HASH_CLEAR(hh, s->by_key);
    for (size_t i = 0; i < s->naccts; i++) {
        sevlog_free(s->accts[i].log);
        sws_chan_free(s->accts[i].chan);
        strd_free(s->accts[i].trades);
    }
    while (s->held) {
        struct sim_held *h = s->held;
        s->held = h->next;
        free(h);
    }
    sfault_free(s->faults);
    slim_free(s->limits);
    free(s->accts);
    sbook_free(s->book);
    sbuf_free(&s->evbuf);
    free(s);
    return NULL;
}
