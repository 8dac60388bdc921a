/* redis_client: self-healing hiredis 0.14 async connection on libuv (see redis_client.h). */
#include "redis_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis_uv_adapter.h"

enum rds_state {
    RDS_DOWN,       /* no context; the retry timer is (or is about to be) running */
    RDS_CONNECTING, /* context exists, connect(2) in progress */
    RDS_HANDSHAKE,  /* connected, first PING not answered yet */
    RDS_UP,
};

struct rds {
    uv_loop_t *loop;
    char *unix_path; /* NULL for TCP */
    char ip[INET6_ADDRSTRLEN];
    int port;
    struct rds_opts o;

    redisAsyncContext *ac; /* the current context, NULL when DOWN */
    enum rds_state state;
    bool dying;        /* hiredis is tearing ac down (we saw a NULL reply); refuse new commands */
    bool ping_pending; /* a PING is in flight on ac */
    bool ever_up;
    bool closing;
    int kill_err;        /* error for the callbacks of a context we are freeing ourselves */
    const char *kill_why; /* set by schedule_kill, read by the deadline timer */
    char kill_buf[128];
    unsigned backoff_ms;
    unsigned outstanding; /* commands awaiting replies on ac (PINGs not counted) */
    unsigned in_cb;       /* depth of user callbacks running (rds_free is forbidden there) */

    uv_timer_t retry;    /* reconnect after backoff */
    uv_timer_t tick;     /* PING every ping_interval_ms while up */
    uint64_t ping_due;   /* loop time the running PING's deadline is for */
    bool ping_rearmed;   /* its deadline was extended once after a loop stall */
    uv_timer_t deadline; /* connect/handshake deadline, PING deadline, scheduled kills */
    int open_handles;

    struct rds_stats st;
};

struct get_req {
    struct rds *r;
    rds_get_cb cb;
    void *ud;
};

static void start_connect(struct rds *r);
static void on_tick(uv_timer_t *t);

/* ---- address -------------------------------------------------------------------------- */

static int parse_addr(struct rds *r, const char *addr)
{
    if (!addr) return -EINVAL;
    if (strncmp(addr, "unix:", 5) == 0) {
        const char *path = addr + 5;
        /* sun_path is 108 bytes including the NUL */
        if (path[0] != '/' || strlen(path) >= 108) return -EINVAL;
        r->unix_path = strdup(path);
        return r->unix_path ? 0 : -ENOMEM;
    }

    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr) return -EINVAL;
    const char *host = addr;
    size_t hlen = (size_t)(colon - addr);
    int af = AF_INET;
    if (addr[0] == '[') { /* [v6]:port */
        if (hlen < 3 || addr[hlen - 1] != ']') return -EINVAL;
        host = addr + 1;
        hlen -= 2;
        af = AF_INET6;
    }
    if (hlen >= sizeof r->ip) return -EINVAL;
    memcpy(r->ip, host, hlen);
    r->ip[hlen] = '\0';
    unsigned char tmp[sizeof(struct in6_addr)];
    if (inet_pton(af, r->ip, tmp) != 1) return -EINVAL;

    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 1 || port > 65535) return -EINVAL;
    r->port = (int)port;
    return 0;
}

/* ---- state changes -------------------------------------------------------------------- */

static void notify(struct rds *r, bool up, const char *why)
{
    if (!r->o.on_state || r->closing) return;
    r->in_cb++;
    r->o.on_state(r->o.ud, up, why);
    r->in_cb--;
}

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

static void schedule_retry(struct rds *r)
{
    if (r->closing) return;
    uv_timer_start(&r->retry, on_retry, r->backoff_ms, 0);
    r->backoff_ms = r->backoff_ms * 2 > r->o.backoff_max_ms ? r->o.backoff_max_ms
                                                            : r->backoff_ms * 2;
}

/* The current context is gone or about to be: forget it, count, tell, and plan a retry. */
static void lost(struct rds *r, const char *why)
{
    bool was_up = r->state == RDS_UP;
    r->ac = NULL;
    r->state = RDS_DOWN;
    r->dying = false;
    r->ping_pending = false;
    r->kill_why = NULL; /* a kill scheduled for this context has nothing left to do */
    uv_timer_stop(&r->tick);
    uv_timer_stop(&r->deadline);
    if (!was_up) r->st.connect_failures++;
    notify(r, false, why && *why ? why : "connection closed");
    schedule_retry(r);
}

/* Free the current context ourselves (never from one of its callbacks: callers are timers and
 * rds_free). Its pending callbacks run now with a NULL reply and report err; its disconnect
 * callback sees r->ac != ac and does nothing. */
static void kill_conn(struct rds *r, int err, const char *why)
{
    redisAsyncContext *ac = r->ac;
    if (!ac) return;
    lost(r, why);
    r->kill_err = err;
    redisAsyncFree(ac); /* runs the pending callbacks: r->outstanding drops to 0 */
    r->kill_err = 0;
}

static void on_deadline(uv_timer_t *t)
{
    struct rds *r = t->data;
    if (r->kill_why) {
        const char *why = r->kill_why;
        r->kill_why = NULL;
        kill_conn(r, -ECONNRESET, why);
    } else if (r->state == RDS_UP) {
        /* libuv runs timers before it polls: after the loop was busy past the deadline (a fill
         * copied to a thousand followers), the PONG can be sitting in the socket unread. Read
         * what is there before calling Redis unresponsive. */
        redisAsyncContext *ac = r->ac;
        redisAsyncHandleRead(ac);
        if (r->ac != ac || !r->ping_pending || r->kill_why) return; /* answered, or lost meanwhile */
        /* Fired late: the loop itself was stalled, maybe before the PING was even written. Give
         * it one more full timeout of loop time. */
        if (!r->ping_rearmed && uv_now(t->loop) >= r->ping_due + r->o.ping_timeout_ms / 2) {
            r->ping_rearmed = true;
            r->ping_due = uv_now(t->loop) + r->o.ping_timeout_ms;
            uv_timer_start(&r->deadline, on_deadline, r->o.ping_timeout_ms, 0);
            return;
        }
        r->st.ping_timeouts++;
        kill_conn(r, -ETIMEDOUT, "ping timeout");
    } else {
        kill_conn(r, -ETIMEDOUT, r->state == RDS_CONNECTING ? "connect timeout"
                                                            : "no PING reply after connect");
    }
}

/* For trouble noticed inside a hiredis callback: do the kill from a timer right after. */
static void schedule_kill(struct rds *r, const char *why)
{
    snprintf(r->kill_buf, sizeof r->kill_buf, "%s", why);
    r->kill_why = r->kill_buf;
    r->dying = true;
    uv_timer_start(&r->deadline, on_deadline, 0, 0);
}

static void on_pong(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rds *r = privdata;
    redisReply *rep = reply;
    /* context going away (handled where it is freed), or a kill is already scheduled */
    if (!rep || ac != r->ac || r->kill_why) return;
    r->ping_pending = false;
    if (rep->type == REDIS_REPLY_ERROR) { /* e.g. -LOADING: not usable yet */
        char why[128];
        snprintf(why, sizeof why, "PING: %.100s", rep->str ? rep->str : "error");
        schedule_kill(r, why);
        return;
    }
    uv_timer_stop(&r->deadline);
    if (r->state == RDS_HANDSHAKE) {
        r->state = RDS_UP;
        r->backoff_ms = r->o.backoff_min_ms;
        if (r->ever_up) r->st.reconnects++;
        r->ever_up = true;
        uv_timer_start(&r->tick, on_tick, r->o.ping_interval_ms, r->o.ping_interval_ms);
        notify(r, true, NULL);
    }
}

static int send_ping(struct rds *r)
{
    if (redisAsyncCommand(r->ac, on_pong, r, "PING") != REDIS_OK) return -ENOTCONN;
    r->ping_pending = true;
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    struct rds *r = t->data;
    if (r->state != RDS_UP || r->dying || r->ping_pending) return;
    if (send_ping(r) != 0) {
        schedule_kill(r, "PING could not be queued");
        return;
    }
    r->ping_due = uv_now(t->loop) + r->o.ping_timeout_ms;
    r->ping_rearmed = false;
    uv_timer_start(&r->deadline, on_deadline, r->o.ping_timeout_ms, 0);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    struct rds *r = cac->data;
    if (cac != r->ac) return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when we return */
        lost(r, cac->errstr);
        return;
    }
    r->state = RDS_HANDSHAKE;
    /* the connect deadline keeps running and now also covers the first PONG */
    if (send_ping(r) != 0) schedule_kill(r, "PING could not be queued");
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    struct rds *r = cac->data;
    if (cac != r->ac) return; /* we freed it ourselves: already accounted for */
    lost(r, cac->errstr);
}

static void start_connect(struct rds *r)
{
    const char *why = "out of memory";
    redisAsyncContext *ac = r->unix_path ? redisAsyncConnectUnix(r->unix_path)
                                         : redisAsyncConnect(r->ip, r->port);
    if (!ac) goto fail;
    if (ac->err) {
        /* e.g. a unix socket path that does not exist (yet): fails synchronously */
        snprintf(r->kill_buf, sizeof r->kill_buf, "%s", ac->errstr);
        why = r->kill_buf;
        redisAsyncFree(ac);
        goto fail;
    }
    if (rds_uv_attach(ac, r->loop) != REDIS_OK) {
        why = "cannot attach to the event loop";
        redisAsyncFree(ac);
        goto fail;
    }
    ac->data = r;
    /* attach first: setting the connect callback arms the first write event */
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->state = RDS_CONNECTING;
    r->dying = false;
    r->outstanding = 0;
    uv_timer_start(&r->deadline, on_deadline, r->o.connect_timeout_ms, 0);
    return;

fail:
    r->st.connect_failures++;
    notify(r, false, why);
    schedule_retry(r);
}

/* ---- public --------------------------------------------------------------------------- */

static void on_handle_close(uv_handle_t *h)
{
    struct rds *r = h->data;
    if (--r->open_handles == 0) {
        free(r->unix_path);
        free(r);
    }
}

struct rds *rds_new(uv_loop_t *loop, const char *addr, const struct rds_opts *opts)
{
    struct rds *r = calloc(1, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    int rc = parse_addr(r, addr);
    if (rc) {
        free(r->unix_path);
        free(r);
        errno = -rc;
        return NULL;
    }
    if (opts) r->o = *opts;
    if (!r->o.ping_interval_ms) r->o.ping_interval_ms = 1000;
    if (!r->o.ping_timeout_ms) r->o.ping_timeout_ms = 300;
    if (!r->o.connect_timeout_ms) r->o.connect_timeout_ms = 1000;
    if (!r->o.backoff_min_ms) r->o.backoff_min_ms = 50;
    if (!r->o.backoff_max_ms) r->o.backoff_max_ms = 5000;
    if (r->o.backoff_max_ms < r->o.backoff_min_ms) r->o.backoff_max_ms = r->o.backoff_min_ms;
    if (!r->o.max_outstanding) r->o.max_outstanding = 4096;
    r->loop = loop;
    r->backoff_ms = r->o.backoff_min_ms;

    uv_timer_t *timers[] = {&r->retry, &r->tick, &r->deadline};
    for (size_t i = 0; i < 3; i++) {
        uv_timer_init(loop, timers[i]); /* cannot fail on Linux */
        timers[i]->data = r;
        r->open_handles++;
    }
    /* first attempt on the next loop iteration, so rds_new never calls back */
    uv_timer_start(&r->retry, on_retry, 0, 0);
    return r;
}

struct rds *rds_free(struct rds *r)
{
    if (!r) return NULL;
    ct_assert(r->in_cb == 0); /* would free the context inside its own callback */
    r->closing = true;
    uv_timer_stop(&r->retry);
    uv_timer_stop(&r->tick);
    uv_timer_stop(&r->deadline);
    kill_conn(r, -ECANCELED, "closed");
    uv_close((uv_handle_t *)&r->retry, on_handle_close);
    uv_close((uv_handle_t *)&r->tick, on_handle_close);
    uv_close((uv_handle_t *)&r->deadline, on_handle_close);
    return NULL;
}

bool rds_connected(const struct rds *r)
{
    return r && r->state == RDS_UP && !r->dying;
}

/* Room for n more commands? Counts refusals. */
static int admit(struct rds *r, unsigned n)
{
    if (!rds_connected(r) || r->closing) {
        r->st.dropped++;
        return -ENOTCONN;
    }
    if (r->outstanding + n > r->o.max_outstanding) {
        r->st.dropped++;
        return -ENOBUFS;
    }
    return 0;
}

static void on_set_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rds *r = privdata;
    redisReply *rep = reply;
    if (r->outstanding) r->outstanding--;
    if (!rep) {
        if (ac == r->ac) r->dying = true; /* hiredis is tearing the connection down */
        r->st.errors++;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        r->st.errors++;
    }
}

int rds_set_px(struct rds *r, const char *key, const void *value, size_t len, uint64_t ttl_ms)
{
    if (!r || !key || (!value && len) || !ttl_ms) return -EINVAL;
    int rc = admit(r, 1);
    if (rc) return rc;

    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRIu64, ttl_ms);
    const char *argv[] = {"SET", key, value ? value : "", "PX", ttl};
    size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
    if (redisAsyncCommandArgv(r->ac, on_set_reply, r, 5, argv, lens) != REDIS_OK) {
        r->st.dropped++;
        return -ENOTCONN;
    }
    r->outstanding++;
    r->st.sent++;
    return 0;
}

static void on_get_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct get_req *req = privdata;
    struct rds *r = req->r;
    redisReply *rep = reply;
    int err = 0;
    const char *val = NULL;
    size_t len = 0;

    if (r->outstanding) r->outstanding--;
    if (!rep) {
        err = r->kill_err ? r->kill_err : -ECONNRESET;
        if (ac == r->ac) r->dying = true;
        r->st.errors++;
    } else if (rep->type == REDIS_REPLY_STRING) {
        val = rep->str;
        len = rep->len;
    } else if (rep->type != REDIS_REPLY_NIL) {
        err = -EPROTO;
        r->st.errors++;
    }
    r->in_cb++;
    req->cb(req->ud, err, val, len);
    r->in_cb--;
    free(req);
}

int rds_get(struct rds *r, const char *key, rds_get_cb cb, void *ud)
{
    if (!r || !key || !cb) return -EINVAL;
    int rc = admit(r, 1);
    if (rc) return rc;

    struct get_req *req = malloc(sizeof *req);
    if (!req) return -ENOMEM;
    *req = (struct get_req){r, cb, ud};
    const char *argv[] = {"GET", key};
    size_t lens[] = {3, strlen(key)};
    if (redisAsyncCommandArgv(r->ac, on_get_reply, req, 2, argv, lens) != REDIS_OK) {
        free(req);
        r->st.dropped++;
        return -ENOTCONN;
    }
    r->outstanding++;
    r->st.sent++;
    return 0;
}

int rds_del(struct rds *r, const char *key)
{
    if (!r || !key) return -EINVAL;
    int rc = admit(r, 1);
    if (rc) return rc;
    const char *argv[] = {"DEL", key};
    size_t lens[] = {3, strlen(key)};
    if (redisAsyncCommandArgv(r->ac, on_set_reply, r, 2, argv, lens) != REDIS_OK) {
        r->st.dropped++;
        return -ENOTCONN;
    }
    r->outstanding++;
    r->st.sent++;
    return 0;
}

/* GET + PTTL: the GET reply is kept (copied: hiredis frees it after the callback) until the PTTL
 * reply, which delivers both. Replies on one connection come in order, and when the connection
 * goes both callbacks run with NULL, GET first. */
struct get_pttl_req {
    struct rds *r;
    rds_get_pttl_cb cb;
    void *ud;
    bool deliver; /* false: PTTL could not be queued, the GET callback just cleans up */
    int err;
    char *value; /* NULL: no value (nil, or an error) */
    size_t len;
};

static void on_getp_get(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct get_pttl_req *req = privdata;
    struct rds *r = req->r;
    redisReply *rep = reply;
    if (r->outstanding) r->outstanding--;
    if (!rep) {
        req->err = r->kill_err ? r->kill_err : -ECONNRESET;
        if (ac == r->ac) r->dying = true;
        r->st.errors++;
    } else if (rep->type == REDIS_REPLY_STRING) {
        req->value = malloc(rep->len + 1);
        if (req->value) {
            memcpy(req->value, rep->str, rep->len);
            req->value[rep->len] = '\0';
            req->len = rep->len;
        } else {
            req->err = -ENOMEM;
        }
    } else if (rep->type != REDIS_REPLY_NIL) {
        req->err = -EPROTO;
        r->st.errors++;
    }
    if (!req->deliver) {
        free(req->value);
        free(req);
    }
}

static void on_getp_pttl(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct get_pttl_req *req = privdata;
    struct rds *r = req->r;
    redisReply *rep = reply;
    int64_t pttl = -2;
    int err = req->err;
    if (r->outstanding) r->outstanding--;
    if (!rep) {
        if (!err) err = r->kill_err ? r->kill_err : -ECONNRESET;
        if (ac == r->ac) r->dying = true;
        r->st.errors++;
    } else if (rep->type == REDIS_REPLY_INTEGER) {
        pttl = rep->integer;
    } else if (!err) {
        err = -EPROTO;
        r->st.errors++;
    }
    r->in_cb++;
    if (err)
        req->cb(req->ud, err, NULL, 0, -2);
    else
        req->cb(req->ud, 0, req->value, req->len, pttl);
    r->in_cb--;
    free(req->value);
    free(req);
}

int rds_get_pttl(struct rds *r, const char *key, rds_get_pttl_cb cb, void *ud)
{
    if (!r || !key || !cb) return -EINVAL;
    int rc = admit(r, 2);
    if (rc) return rc;

    struct get_pttl_req *req = calloc(1, sizeof *req);
    if (!req) return -ENOMEM;
    *req = (struct get_pttl_req){.r = r, .cb = cb, .ud = ud, .deliver = true};
    size_t klen = strlen(key);
    const char *get_argv[] = {"GET", key};
    const char *pttl_argv[] = {"PTTL", key};
    size_t get_lens[] = {3, klen};
    size_t pttl_lens[] = {4, klen};
    if (redisAsyncCommandArgv(r->ac, on_getp_get, req, 2, get_argv, get_lens) != REDIS_OK) {
        free(req);
        r->st.dropped++;
        return -ENOTCONN;
    }
    r->outstanding++;
    r->st.sent++;
    if (redisAsyncCommandArgv(r->ac, on_getp_pttl, req, 2, pttl_argv, pttl_lens) != REDIS_OK) {
        /* the GET is queued and will be answered: let its callback free req, tell no one */
        req->deliver = false;
        r->st.dropped++;
        return -ENOTCONN;
    }
    r->outstanding++;
    r->st.sent++;
    return 0;
}

void rds_get_stats(const struct rds *r, struct rds_stats *out)
{
    if (r)
        *out = r->st;
    else
        memset(out, 0, sizeof *out);
}
