#include "sim_by_ws.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sim_buf.h"
#include "sim_wsq.h"
#include "sim_by_fmt.h"
#include "sim_by_req.h"
#include "sim_fault.h"
#include "utlist.h"

#define RX_MAX (64 * 1024)
#define QUEUE_MAX 1000000
#define DEFAULT_MAX_ACTIVE_MS (600 * 1000)
#define TICKER_PERIOD_MS 100
#define SWEEP_PERIOD_MS 250
/* ws_reorder: a held message goes out on its own after this long without a next one (as sim_ws). */
#define HOLD_MAX_MS 2000
/* Upkeep of fault state (silences ending, held messages) while any exists. */
#define FAULT_TICK_MS 50

struct bconn {
    struct lws *wsi;
    struct sbyws *w;
    bool is_private, authed, closing, established;
    size_t acct;
    unsigned topics;     /* all-in-one subscriptions (SBYWS_*) */
    unsigned topics_cat; /* categorised ".linear" subscriptions */
    unsigned char *tickers; /* public: one flag per book symbol */
    int64_t opened_ms, last_rx_ms, max_active_ms;
    char conn_id[48];
    /* Fault injection (sim_fault): */
    bool drop;              /* ws_drop: end the TCP connection without a close frame */
    bool silent;            /* ws_silent: send nothing, read nothing */
    int64_t silent_until;   /* ms; INT64_MAX until sbyws_unsilence */
    struct swq_msg *held;      /* ws_reorder: sent after this connection's next topic message */
    int64_t held_at;
    struct swq q;
    struct sbuf rx;
    struct bconn *prev, *next;
};

struct sbyws {
    uv_loop_t *loop;
    struct sbook *book;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    lws_retry_bo_t retry;
    int auth_timeout_ms;
    struct bconn *conns;
    size_t nconns;
    uint64_t next_conn, next_msg;
    uv_timer_t ticker, sweep, fault_timer;
    bool timers_started, fault_timer_on;
    struct sfault_table *faults; /* not owned; NULL: no faults */
    size_t naccts;
    uint64_t *silenced;          /* per account: topic frames lost to silenced connections */
    dec_t *last_price; /* per symbol, last price sent on the public stream */
    int64_t *cs;       /* per symbol, cross sequence of the ticker topic */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_clear_queue(struct bconn *c)
{
    swq_clear(&c->q);
}

static void conn_close(struct bconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    lws_callback_on_writable(c->wsi);
}

static int conn_push(struct bconn *c, struct swq_msg *m)
{
    if (c->closing)
        return -EPIPE;
    if (c->q.len >= QUEUE_MAX) {
        conn_close(c); /* too far behind: drop it rather than grow without bound */
        return -ENOBUFS;
    }
    if (swq_push(&c->q, m) < 0)
        return -ENOMEM;
    lws_callback_on_writable(c->wsi);
    return 0;
}

static int conn_send(struct bconn *c, const char *text, size_t len)
{
    struct swq_msg *m = swq_msg_new(text, len);
    if (!m)
        return -ENOMEM;
    int rc = conn_push(c, m);
    swq_msg_unref(m);
    return rc;
}

static int conn_send_buf(struct bconn *c, struct sbuf *b)
{
    if (sbuf_failed(b))
        return -ENOMEM;
    return conn_send(c, b->p, b->len);
}

/* ---- client messages ---- */

/* {"success":ok,"ret_msg":msg,"op":op,"conn_id":..[,"req_id":..]} */
static void reply_status(struct bconn *c, const char *op, bool ok, const char *ret_msg, const char *req_id)
{
    struct sbuf b = SBUF_INIT;
    sbuf_adds(&b, ok ? "{\"success\":true,\"ret_msg\":" : "{\"success\":false,\"ret_msg\":");
    sbuf_add_jstr(&b, ret_msg);
    sbuf_adds(&b, ",\"conn_id\":");
    sbuf_add_jstr(&b, c->conn_id);
    if (req_id || !c->is_private) {
        sbuf_adds(&b, ",\"req_id\":");
        sbuf_add_jstr(&b, req_id ? req_id : "");
    }
    sbuf_adds(&b, ",\"op\":");
    sbuf_add_jstr(&b, op);
    sbuf_addc(&b, '}');
    conn_send_buf(c, &b);
    sbuf_free(&b);
}

static void on_auth(struct bconn *c, json_t *args, const char *req_id)
{
    struct sbyws *w = c->w;
    int64_t expires;
    if (!c->is_private) {
        reply_status(c, "auth", false, "auth is for the private stream only", req_id);
        return;
    }
    if (c->authed) {
        reply_status(c, "auth", false, "Repeat auth", req_id);
        return;
    }
    json_t *k = json_array_get(args, 0), *e = json_array_get(args, 1), *s = json_array_get(args, 2);
    if (!json_is_array(args) || json_array_size(args) != 3 || !json_is_string(k) || !json_is_string(s)) {
        reply_status(c, "auth", false, "Params Error", req_id);
        return;
    }
    if (json_is_integer(e))
        expires = json_integer_value(e);
    else if (!(json_is_string(e) && sbyr_parse_i64(json_string_value(e), strlen(json_string_value(e)), &expires))) {
        reply_status(c, "auth", false, "Params Error", req_id);
        return;
    }
    struct sbook_account *a = sbook_account_by_key(w->book, json_string_value(k));
    if (!a) {
        reply_status(c, "auth", false, "Invalid apikey", req_id);
        return;
    }
    size_t slen;
    const char *secret = sbook_account_secret(a, &slen);
    int rc = sbyr_verify_ws(secret, slen, expires, json_string_value(s), strlen(json_string_value(s)), now_ms());
    if (rc == -ETIMEDOUT) {
        reply_status(c, "auth", false, "Params Error: expires is in the past", req_id);
        return;
    }
    if (rc < 0) {
        char m[96];
        snprintf(m, sizeof(m), "Signature mismatch: error sign! origin_string[GET/realtime%" PRId64 "]", expires);
        reply_status(c, "auth", false, m, req_id);
        return;
    }
    c->authed = true;
    c->acct = sbook_account_index(a);
    reply_status(c, "auth", true, "", req_id);
}

/* Private topic name -> bit; *cat set for the ".linear" form. 0 if unknown. */
static unsigned private_topic(const char *t, bool *cat)
{
    static const struct {
        const char *name;
        unsigned bit;
        bool cat;
    } names[] = {
        {"order", SBYWS_ORDER, false},         {"execution", SBYWS_EXECUTION, false},
        {"position", SBYWS_POSITION, false},   {"wallet", SBYWS_WALLET, false},
        {"order.linear", SBYWS_ORDER, true},   {"execution.linear", SBYWS_EXECUTION, true},
        {"position.linear", SBYWS_POSITION, true},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcmp(t, names[i].name)) {
            *cat = names[i].cat;
            return names[i].bit;
        }
    }
    return 0;
}

static void send_ticker(struct bconn *c, const struct sbook_symbol *s, bool snapshot, int64_t now)
{
    struct sbyws *w = c->w;
    struct sbuf b = SBUF_INIT;
    sbuf_adds(&b, "{\"topic\":\"tickers.");
    sbuf_adds(&b, s->ins.symbol);
    sbuf_adds(&b, snapshot ? "\",\"type\":\"snapshot\",\"data\":" : "\",\"type\":\"delta\",\"data\":");
    sbyf_ticker(&b, s, now);
    sbuf_addf(&b, ",\"cs\":%" PRId64 ",\"ts\":%" PRId64 "}", w->cs[s->idx], now);
    conn_send_buf(c, &b);
    sbuf_free(&b);
}

static void on_subscribe(struct bconn *c, json_t *args, const char *req_id, bool sub)
{
    struct sbyws *w = c->w;
    const char *op = sub ? "subscribe" : "unsubscribe";
    size_t i;
    json_t *v;
    if (!json_is_array(args) || json_array_size(args) == 0) {
        reply_status(c, op, false, "Params Error: args must be a non-empty array", req_id);
        return;
    }
    if (c->is_private) {
        unsigned all = 0, catb = 0;
        if (!c->authed) {
            reply_status(c, op, false, "Request not authorized", req_id);
            return;
        }
        json_array_foreach(args, i, v) {
            bool cat = false;
            unsigned bit = json_is_string(v) ? private_topic(json_string_value(v), &cat) : 0;
            if (!bit) {
                char m[160];
                snprintf(m, sizeof(m), "Invalid topic: %s", json_is_string(v) ? json_string_value(v) : "(not a string)");
                reply_status(c, op, false, m, req_id);
                return;
            }
            if (cat)
                catb |= bit;
            else
                all |= bit;
        }
        if (all && catb) {
            reply_status(c, op, false, "All-in-one topics and categorised topics cannot be mixed", req_id);
            return;
        }
        if (sub) {
            c->topics |= all;
            c->topics_cat |= catb;
        } else {
            c->topics &= ~all;
            c->topics_cat &= ~catb;
        }
        reply_status(c, op, true, "", req_id);
        return;
    }
    /* Public linear: tickers.<symbol> only. */
    size_t nsym = sbook_nsymbols(w->book);
    unsigned char *want = calloc(nsym ? nsym : 1, 1);
    if (!want)
        return;
    json_array_foreach(args, i, v) {
        const char *t = json_is_string(v) ? json_string_value(v) : "";
        struct sbook_symbol *s = strncmp(t, "tickers.", 8) == 0 ? sbook_symbol(w->book, t + 8) : NULL;
        if (!s) {
            char m[160];
            snprintf(m, sizeof(m), "Invalid symbol :[%s]", t);
            reply_status(c, op, false, m, req_id);
            free(want);
            return;
        }
        want[s->idx] = 1;
    }
    reply_status(c, op, true, "", req_id);
    int64_t now = now_ms();
    for (size_t k = 0; k < nsym; k++) {
        if (!want[k])
            continue;
        if (sub && !c->tickers[k]) {
            c->tickers[k] = 1;
            send_ticker(c, sbook_symbol_at(w->book, k), true, now);
        } else if (!sub) {
            c->tickers[k] = 0;
        }
    }
    free(want);
}

static void on_message(struct bconn *c, const char *text, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    json_t *opv = json_object_get(root, "op");
    json_t *rid = json_object_get(root, "req_id");
    const char *req_id = json_is_string(rid) ? json_string_value(rid) : NULL;
    const char *op = json_is_string(opv) ? json_string_value(opv) : NULL;
    if (!root || !op) {
        reply_status(c, op ? op : "", false, "error:request not a JSON object with an op", req_id);
        goto out;
    }
    if (!strcmp(op, "ping")) {
        if (c->is_private) {
            struct sbuf b = SBUF_INIT;
            sbuf_adds(&b, "{\"req_id\":");
            sbuf_add_jstr(&b, req_id ? req_id : "");
            sbuf_addf(&b, ",\"op\":\"pong\",\"args\":[\"%" PRId64 "\"],\"conn_id\":", now_ms());
            sbuf_add_jstr(&b, c->conn_id);
            sbuf_addc(&b, '}');
            conn_send_buf(c, &b);
            sbuf_free(&b);
        } else {
            reply_status(c, "ping", true, "pong", req_id);
        }
    } else if (!strcmp(op, "auth")) {
        on_auth(c, json_object_get(root, "args"), req_id);
    } else if (!strcmp(op, "subscribe") || !strcmp(op, "unsubscribe")) {
        on_subscribe(c, json_object_get(root, "args"), req_id, op[0] == 's');
    } else {
        char m[96];
        snprintf(m, sizeof(m), "error:unknown op %.40s", op);
        reply_status(c, op, false, m, req_id);
    }
out:
    json_decref(root);
}

/* ---- lws ---- */

/* max_active_time=30s..600s or 1m..10m (Bybit's bounds); 0 if absent or invalid. */
static int64_t parse_max_active(struct lws *wsi)
{
    char frag[64];
    for (int i = 0; i < 16; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            break;
        if (strncmp(frag, "max_active_time=", 16) != 0)
            continue;
        const char *v = frag + 16;
        size_t l = strlen(v);
        int64_t x;
        if (l < 2 || !sbyr_parse_i64(v, l - 1, &x))
            return 0;
        int64_t s = v[l - 1] == 's' ? x : v[l - 1] == 'm' ? x * 60 : -1;
        return s >= 30 && s <= 600 ? s * 1000 : 0;
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct bconn *c = user;
    struct sbyws *w = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        char path[128];
        memset(c, 0, sizeof(*c));
        if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0)
            return -1;
        if (!strcmp(path, "/v5/private"))
            c->is_private = true;
        else if (strcmp(path, "/v5/public/linear") != 0)
            return -1;
        c->wsi = wsi;
        c->w = w;
        c->established = true;
        c->opened_ms = c->last_rx_ms = now_ms();
        int64_t ma = parse_max_active(wsi);
        c->max_active_ms = ma ? ma : DEFAULT_MAX_ACTIVE_MS;
        snprintf(c->conn_id, sizeof(c->conn_id), "sim%06" PRIx64 "-%" PRIx64, ++w->next_conn, (uint64_t)c->opened_ms);
        if (!c->is_private) {
            size_t n = sbook_nsymbols(w->book);
            c->tickers = calloc(n ? n : 1, 1);
            if (!c->tickers)
                return -1;
        }
        DL_APPEND(w->conns, c);
        w->nconns++;
        return 0;
    }

    case LWS_CALLBACK_RECEIVE:
        /* A silenced connection reads nothing (rx flow control); what lws had buffered already
         * is lost, as on a dead path. */
        if (!c->established || c->closing || c->silent)
            return 0;
        c->last_rx_ms = now_ms();
        if (lws_frame_is_binary(wsi))
            return 0;
        if (c->rx.len + len > RX_MAX) {
            conn_close(c);
            return 0;
        }
        sbuf_add(&c->rx, in, len);
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
            if (!sbuf_failed(&c->rx))
                on_message(c, c->rx.p ? c->rx.p : "", c->rx.len);
            sbuf_reset(&c->rx);
        }
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (c->drop)
            return -1; /* lws drops the TCP connection without a close frame (see sim_ws.c) */
        if (c->silent)
            return 0;
        if (c->closing) {
            lws_set_timer_usecs(wsi, 1); /* close from lws' own service, see sim_ws.c */
            return 0;
        }
        return swq_write_one(&c->q, wsi);
    }

    case LWS_CALLBACK_TIMER:
        if (c->closing) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return 0;

    case LWS_CALLBACK_CLOSED:
        if (c->established) {
            DL_DELETE(w->conns, c);
            w->nconns--;
            c->established = false;
        }
        conn_clear_queue(c);
        swq_msg_unref(c->held);
        c->held = NULL;
        sbuf_free(&c->rx);
        free(c->tickers);
        c->tickers = NULL;
        return 0;

    case LWS_CALLBACK_HTTP:
        return -1;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"sim-bybit", callback, sizeof(struct bconn), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- timers ---- */

static void ticker_cb(uv_timer_t *t)
{
    struct sbyws *w = t->data;
    struct bconn *c;
    int64_t now = 0;
    bool any = false;
    DL_FOREACH(w->conns, c) {
        if (!c->is_private) {
            any = true;
            break;
        }
    }
    for (size_t i = 0; i < sbook_nsymbols(w->book); i++) {
        const struct sbook_symbol *s = sbook_symbol_at(w->book, i);
        int dir = dec_cmp(s->price, w->last_price[i]);
        if (dir == 0)
            continue;
        w->last_price[i] = s->price;
        w->cs[i]++;
        if (!any)
            continue;
        if (!now)
            now = now_ms();
        struct sbuf b = SBUF_INIT;
        sbuf_adds(&b, "{\"topic\":\"tickers.");
        sbuf_adds(&b, s->ins.symbol);
        sbuf_adds(&b, "\",\"type\":\"delta\",\"data\":{\"symbol\":");
        sbuf_add_jstr(&b, s->ins.symbol);
        sbuf_adds(&b, dir > 0 ? ",\"tickDirection\":\"PlusTick\"" : ",\"tickDirection\":\"MinusTick\"");
        static const char *const keys[] = {"lastPrice", "markPrice", "indexPrice", "bid1Price", "ask1Price"};
        for (size_t k = 0; k < 5; k++) {
            sbuf_addc(&b, ',');
            sbuf_add_key(&b, keys[k]);
            sbuf_add_jdec(&b, s->price);
        }
        sbuf_addf(&b, "},\"cs\":%" PRId64 ",\"ts\":%" PRId64 "}", w->cs[i], now);
        struct swq_msg *m = sbuf_failed(&b) ? NULL : swq_msg_new(b.p, b.len);
        sbuf_free(&b);
        if (!m)
            continue;
        DL_FOREACH(w->conns, c) {
            if (!c->is_private && c->tickers[i])
                conn_push(c, m);
        }
        swq_msg_unref(m);
    }
}

static void sweep_cb(uv_timer_t *t)
{
    struct sbyws *w = t->data;
    struct bconn *c;
    int64_t now = now_ms();
    DL_FOREACH(w->conns, c) {
        /* A silenced connection is not cut for its silence: the fault owns it until it ends. */
        if (c->closing || c->silent)
            continue;
        if (c->is_private && !c->authed && now - c->opened_ms >= w->auth_timeout_ms)
            conn_close(c);
        else if (now - c->last_rx_ms >= c->max_active_ms)
            conn_close(c);
    }
}

/* ---- public API ---- */

struct sbyws *sbyws_new(uv_loop_t *loop, struct sbook *book, int auth_timeout_ms)
{
    struct lws_context_creation_info info;
    void *foreign[1] = {loop};
    size_t nsym = sbook_nsymbols(book);
    struct sbyws *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->loop = loop;
    w->book = book;
    w->auth_timeout_ms = auth_timeout_ms > 0 ? auth_timeout_ms : 1;
    w->last_price = calloc(nsym ? nsym : 1, sizeof(*w->last_price));
    w->cs = calloc(nsym ? nsym : 1, sizeof(*w->cs));
    w->naccts = sbook_naccounts(book);
    w->silenced = calloc(w->naccts ? w->naccts : 1, sizeof(*w->silenced));
    if (!w->last_price || !w->cs || !w->silenced)
        goto fail;
    for (size_t i = 0; i < nsym; i++)
        w->last_price[i] = sbook_symbol_at(book, i)->price;
    /* Bybit sends no websocket pings (clients send op ping); the idle cut is ours (sweep). */
    w->retry.secs_since_valid_ping = 65000;
    w->retry.secs_since_valid_hangup = 65500;

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    info.pcontext = &w->ctx;
    info.user = w;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.vhost_name = "sim-bybit-ws";
    info.retry_and_idle_policy = &w->retry;
    info.max_http_header_data = 8192;
    info.timeout_secs = 20;
    w->ctx = lws_create_context(&info);
    if (!w->ctx)
        goto fail;
    w->vh = lws_create_vhost(w->ctx, &info);
    if (!w->vh) {
        lws_context_destroy(w->ctx); /* as sim_ws: nothing was adopted yet */
        goto fail;
    }
    /* uv_timer_init cannot fail on an initialised loop. */
    uv_timer_init(loop, &w->ticker);
    uv_timer_init(loop, &w->sweep);
    uv_timer_init(loop, &w->fault_timer);
    w->ticker.data = w->sweep.data = w->fault_timer.data = w;
    w->timers_started = true;
    uv_timer_start(&w->ticker, ticker_cb, TICKER_PERIOD_MS, TICKER_PERIOD_MS);
    uv_timer_start(&w->sweep, sweep_cb, SWEEP_PERIOD_MS, SWEEP_PERIOD_MS);
    return w;
fail:
    free(w->last_price);
    free(w->cs);
    free(w->silenced);
    free(w);
    return NULL;
}

int sbyws_adopt(struct sbyws *w, int fd, const char *bytes, size_t len)
{
    if (!w || !w->ctx) {
        close(fd);
        return -EIO;
    }
    return lws_adopt_socket_vhost_readbuf(w->vh, fd, bytes, len) ? 0 : -EIO;
}

void sbyws_destroy_begin(struct sbyws *w)
{
    if (!w)
        return;
    if (w->timers_started) {
        uv_close((uv_handle_t *)&w->ticker, NULL);
        uv_close((uv_handle_t *)&w->sweep, NULL);
        uv_close((uv_handle_t *)&w->fault_timer, NULL);
        w->timers_started = false;
        w->fault_timer_on = false;
    }
    if (w->ctx)
        lws_context_destroy(w->ctx);
}

struct sbyws *sbyws_destroy_finish(struct sbyws *w)
{
    if (!w)
        return NULL;
    if (w->ctx)
        lws_context_destroy(w->ctx);
    free(w->last_price);
    free(w->cs);
    free(w->silenced);
    free(w);
    return NULL;
}

bool sbyws_wants(const struct sbyws *w, size_t acct, unsigned topic)
{
    const struct bconn *c;
    if (!w)
        return false;
    DL_FOREACH(w->conns, c) {
        if (c->is_private && c->authed && c->acct == acct && ((c->topics | c->topics_cat) & topic))
            return true;
    }
    return false;
}

static const char *topic_name(unsigned topic, bool cat)
{
    switch (topic) {
    case SBYWS_ORDER: return cat ? "order.linear" : "order";
    case SBYWS_EXECUTION: return cat ? "execution.linear" : "execution";
    case SBYWS_POSITION: return cat ? "position.linear" : "position";
    case SBYWS_WALLET: return "wallet";
    }
    return "unknown";
}

/* Does a topic message of acct go to c? */
static bool topic_target(const struct bconn *c, size_t acct, unsigned topic)
{
    return c->is_private && c->authed && c->acct == acct && !c->closing &&
           ((c->topics | c->topics_cat) & topic) != 0;
}

static void fault_timer_want(struct sbyws *w);
static void unsilence(struct bconn *c, int64_t now);

int sbyws_publish(struct sbyws *w, size_t acct, unsigned topic, const char *data, size_t len, int64_t now_ms_)
{
    struct bconn *c;
    struct swq_msg *m[2] = {NULL, NULL}; /* all-in-one, categorised */
    int sent = 0;
    bool any = false, held = false;
    if (!w)
        return 0;
    uint64_t id = ++w->next_msg;
    int64_t now = now_ms();
    DL_FOREACH(w->conns, c) {
        /* A silence that is over ends here at the latest (the timer may not have run yet): a
         * message published once the fault is no longer active is never lost. */
        if (c->silent && now >= c->silent_until)
            unsilence(c, now);
        if (topic_target(c, acct, topic) && !c->silent) {
            any = true;
            held |= c->held != NULL;
        }
    }
    /* Fault injection, asked once per message that reaches a live connection and only when none
     * holds one back already (as sim_ws: a held message waits for exactly one next message). */
    unsigned flags = 0;
    if (any && !held && w->faults && acct < w->naccts)
        flags = sfault_match_ws_event(w->faults, sbook_account_name(sbook_account_at(w->book, acct)), now_ms_);
    DL_FOREACH(w->conns, c) {
        if (!topic_target(c, acct, topic))
            continue;
        if (c->silent) {
            if (acct < w->naccts)
                w->silenced[acct]++; /* lost, as on a dead connection */
            continue;
        }
        bool cat = (c->topics_cat & topic) != 0;
        if (!m[cat]) {
            struct sbuf b = SBUF_INIT;
            sbuf_addf(&b, "{\"id\":\"%zx%08" PRIx64 "-sim\",\"topic\":\"%s\",\"creationTime\":%" PRId64 ",\"data\":[",
                      acct, id, topic_name(topic, cat), now_ms_);
            sbuf_add(&b, data, len);
            sbuf_adds(&b, "]}");
            m[cat] = sbuf_failed(&b) ? NULL : swq_msg_new(b.p, b.len);
            sbuf_free(&b);
            if (!m[cat])
                continue;
        }
        if (c->held) {
            /* ws_reorder: this message first, then the one held back. */
            struct swq_msg *h = c->held;
            c->held = NULL;
            if (conn_push(c, m[cat]) == 0)
                sent++;
            conn_push(c, h);
            swq_msg_unref(h);
        } else if (flags & SFAULT_WS_HOLD) {
            swq_msg_ref(m[cat]); /* the connection's reference */
            c->held = m[cat];
            c->held_at = now_ms();
            fault_timer_want(w);
            sent++;
        } else {
            if (conn_push(c, m[cat]) == 0)
                sent++;
            if (flags & SFAULT_WS_DUP)
                conn_push(c, m[cat]);
        }
    }
    swq_msg_unref(m[0]);
    swq_msg_unref(m[1]);
    return sent;
}

/* ---- fault injection ---- */

void sbyws_set_faults(struct sbyws *w, struct sfault_table *t)
{
    if (w)
        w->faults = t;
}

/* Is c one of acct's private connections (SBYWS_ALL: any private connection)? */
static bool fault_target(const struct bconn *c, size_t acct)
{
    return c->is_private && !c->closing && (acct == SBYWS_ALL || (c->authed && c->acct == acct));
}

static void unsilence(struct bconn *c, int64_t now)
{
    c->silent = false;
    lws_rx_flow_control(c->wsi, 1);
    c->last_rx_ms = now; /* the silence does not count towards max_active_time */
    if (c->q.len || c->closing)
        lws_callback_on_writable(c->wsi);
}

static void fault_timer_cb(uv_timer_t *t)
{
    struct sbyws *w = t->data;
    struct bconn *c;
    int64_t now = now_ms();
    bool again = false;
    DL_FOREACH(w->conns, c) {
        if (c->held && now - c->held_at >= HOLD_MAX_MS) {
            struct swq_msg *h = c->held;
            c->held = NULL;
            conn_push(c, h);
            swq_msg_unref(h);
        }
        if (c->silent && now >= c->silent_until)
            unsilence(c, now);
        again |= c->held != NULL || (c->silent && c->silent_until != INT64_MAX);
    }
    if (!again) {
        uv_timer_stop(&w->fault_timer);
        w->fault_timer_on = false;
    }
}

static void fault_timer_want(struct sbyws *w)
{
    if (w->timers_started && !w->fault_timer_on) {
        uv_timer_start(&w->fault_timer, fault_timer_cb, FAULT_TICK_MS, FAULT_TICK_MS);
        w->fault_timer_on = true;
    }
}

size_t sbyws_drop(struct sbyws *w, size_t acct)
{
    struct bconn *c;
    size_t n = 0;
    if (!w)
        return 0;
    DL_FOREACH(w->conns, c) {
        if (!fault_target(c, acct))
            continue;
        c->drop = c->closing = true; /* closing: nothing more is queued */
        c->silent = false;
        swq_msg_unref(c->held);
        c->held = NULL;
        lws_callback_on_writable(c->wsi);
        n++;
    }
    return n;
}

size_t sbyws_silence(struct sbyws *w, size_t acct, int64_t until_ms)
{
    struct bconn *c;
    size_t n = 0;
    if (!w)
        return 0;
    int64_t until = until_ms > 0 ? until_ms : INT64_MAX;
    DL_FOREACH(w->conns, c) {
        if (!fault_target(c, acct))
            continue;
        if (!c->silent) {
            /* Frames queued but not yet written (and one held back) are lost too. */
            if (c->authed && c->acct < w->naccts)
                w->silenced[c->acct] += c->q.len + (c->held != NULL);
            conn_clear_queue(c);
            swq_msg_unref(c->held);
            c->held = NULL;
            lws_rx_flow_control(c->wsi, 0);
        }
        c->silent = true;
        c->silent_until = until;
        n++;
    }
    if (n)
        fault_timer_want(w);
    return n;
}

size_t sbyws_unsilence(struct sbyws *w, size_t acct)
{
    struct bconn *c;
    size_t n = 0;
    int64_t now = now_ms();
    if (!w)
        return 0;
    DL_FOREACH(w->conns, c) {
        if (c->silent && (acct == SBYWS_ALL || (c->authed && c->acct == acct))) {
            unsilence(c, now);
            n++;
        }
    }
    return n;
}

uint64_t sbyws_silenced_frames(const struct sbyws *w, size_t acct)
{
    uint64_t n = 0;
    if (!w)
        return 0;
    if (acct != SBYWS_ALL)
        return acct < w->naccts ? w->silenced[acct] : 0;
    for (size_t i = 0; i < w->naccts; i++)
        n += w->silenced[i];
    return n;
}

size_t sbyws_count(const struct sbyws *w, size_t acct)
{
    const struct bconn *c;
    size_t n = 0;
    if (!w)
        return 0;
    DL_FOREACH(w->conns, c) n += c->is_private && c->authed && c->acct == acct && !c->drop;
    return n;
}

size_t sbyws_private_count(const struct sbyws *w)
{
    const struct bconn *c;
    size_t n = 0;
    if (!w)
        return 0;
    DL_FOREACH(w->conns, c) n += c->is_private;
    return n;
}

size_t sbyws_public_count(const struct sbyws *w)
{
    const struct bconn *c;
    size_t n = 0;
    if (!w)
        return 0;
    DL_FOREACH(w->conns, c) n += !c->is_private;
    return n;
}
