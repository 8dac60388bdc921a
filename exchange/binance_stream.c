/* binance_stream: see binance_stream.h. Timers are lws suls (cancelled synchronously, so close is
 * synchronous); any sul scheduled from a REST callback (outside lws) is followed by
 * lws_cancel_service so that lws re-arms its libuv timer (see ws_client.c). */
#include "binance_stream.h"
#include "bybit_stream.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_flat.h"
#include "json_util.h"
#include "log.h"
#include "ws_client.h"

/* ===================================================================== parser */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* "missing", "out of range", or what the field should have been */
static const char *what(int r, const char *expected) {
    if (r == -ENOENT) return "missing";
    if (r == -ERANGE) return "out of range";
    return expected;
}

static void copy_trunc(char *dst, size_t n, const char *src) {
    size_t l = strlen(src);
    if (l >= n) l = n - 1;
    memcpy(dst, src, l);
    dst[l] = '\0';
}

static int parse_pos_side(const char *s, enum bn_pos_side *out) {
    if (!strcmp(s, "BOTH"))
        *out = BN_PS_BOTH;
    else if (!strcmp(s, "LONG"))
        *out = BN_PS_LONG;
    else if (!strcmp(s, "SHORT"))
        *out = BN_PS_SHORT;
    else
        return -EINVAL;
    return 0;
}

#define EV_OTU "ORDER_TRADE_UPDATE"
#define EV_AU "ACCOUNT_UPDATE"
#define EV_LKE "listenKeyExpired"
#define EV_ACU "ACCOUNT_CONFIG_UPDATE"

/* Field getters that write "EVENT: path: problem" into err: GET_* on a jansson object, JS_* on
 * a field source (json_flat.h: the yajl table or a jansson object). */
#define GET_(getter, obj, key, path, dst, kind)                                                    \
    do {                                                                                           \
        int r_ = getter((obj), (key), (dst));                                                      \
        if (r_ < 0) return fail(err, errlen, "%s: %s: %s", ev_name, (path), what(r_, kind));       \
    } while (0)
#define GET_DEC(obj, key, path, dst) GET_(ju_get_dec, obj, key, path, dst, "not a decimal")
#define GET_I64(obj, key, path, dst) GET_(ju_get_i64, obj, key, path, dst, "not an integer")
#define GET_STR(obj, key, path, dst) GET_(ju_get_str, obj, key, path, dst, "not a string")
#define JS_DEC(src, key, path, dst) GET_(js_get_dec, src, key, path, dst, "not a decimal")
#define JS_I64(src, key, path, dst) GET_(js_get_i64, src, key, path, dst, "not an integer")
#define JS_STR(src, key, path, dst) GET_(js_get_str, src, key, path, dst, "not a string")
#define JS_BOOL(src, key, path, dst) GET_(js_get_bool, src, key, path, dst, "not a boolean")

/* root: the event, read from the yajl table or from jansson's tree (bn_parse_user_event). */
static int parse_order_update(const struct jsrc *root, struct bn_user_event *ev, char *err,
                              size_t errlen) {
    static const char ev_name[] = EV_OTU;
    struct jsrc ob, *o = &ob;
    struct mkt_fill *f = &ev->fill;
    const char *x, *st, *s, *side, *cid, *ps;
    int r;

    JS_I64(root, "E", "E", &ev->event_time_ms);
    r = js_get_obj(root, "o", o);
    if (r == -ENOENT) return fail(err, errlen, "%s: o: missing", ev_name);
    if (r < 0) return fail(err, errlen, "%s: o: not an object", ev_name);
    JS_STR(o, "x", "o.x", &x);
    JS_STR(o, "X", "o.X", &st);
    copy_trunc(ev->exec_type, sizeof(ev->exec_type), x);
    copy_trunc(ev->order_status, sizeof(ev->order_status), st);
    if (strcmp(x, "TRADE") != 0) {
        /* NEW, CANCELED, EXPIRED, AMENDMENT, CALCULATED (liquidation): no fill of a copied order */
        ev->kind = BN_EV_ORDER_UPDATE;
        return 0;
    }

    JS_STR(o, "s", "o.s", &s);
    if (!*s) return fail(err, errlen, "%s: o.s: empty", ev_name);
    if (strlen(s) >= sizeof(f->symbol)) return fail(err, errlen, "%s: o.s: too long", ev_name);
    strcpy(f->symbol, s);
    JS_STR(o, "c", "o.c", &cid);
    copy_trunc(f->order_client_id, sizeof(f->order_client_id), cid);
    JS_STR(o, "S", "o.S", &side);
    if (!strcmp(side, "BUY"))
        f->side = MKT_BUY;
    else if (!strcmp(side, "SELL"))
        f->side = MKT_SELL;
    else
        return fail(err, errlen, "%s: o.S: not BUY or SELL", ev_name);

    int64_t oid;
    JS_I64(o, "t", "o.t", &f->trade_seq);
    if (f->trade_seq <= 0) return fail(err, errlen, "%s: o.t: not a positive integer", ev_name);
    snprintf(f->trade_id, sizeof f->trade_id, "%" PRId64, f->trade_seq);
    JS_I64(o, "i", "o.i", &oid);
    if (oid <= 0) return fail(err, errlen, "%s: o.i: not a positive integer", ev_name);
    snprintf(f->order_id, sizeof f->order_id, "%" PRId64, oid);
    JS_DEC(o, "l", "o.l", &f->qty);
    if (dec_sign(f->qty) <= 0) return fail(err, errlen, "%s: o.l: not positive", ev_name);
    JS_DEC(o, "L", "o.L", &f->price);
    if (dec_sign(f->price) <= 0) return fail(err, errlen, "%s: o.L: not positive", ev_name);
    JS_DEC(o, "z", "o.z", &f->cum_qty);
    JS_DEC(o, "q", "o.q", &f->orig_qty);
    JS_BOOL(o, "R", "o.R", &f->reduce_only);
    JS_I64(o, "T", "o.T", &f->trade_time_ms);
    f->order_done = strcmp(st, "FILLED") == 0;
    f->event_time_ms = ev->event_time_ms;

    ev->fill_pos_side = BN_PS_BOTH;
    r = js_get_str(o, "ps", &ps);
    if (r == 0 && parse_pos_side(ps, &ev->fill_pos_side) < 0)
        return fail(err, errlen, "%s: o.ps: not BOTH, LONG or SHORT", ev_name);
    if (r < 0 && r != -ENOENT) return fail(err, errlen, "%s: o.ps: not a string", ev_name);
    f->pos_side = (enum mkt_pos_side)ev->fill_pos_side; /* same values */

    ev->kind = BN_EV_FILL;
    return 0;
}

static int parse_account_update(const json_t *root, struct bn_user_event *ev, char *err,
                                size_t errlen) {
    static const char ev_name[] = EV_AU;
    const json_t *a = json_object_get(root, "a"), *P;
    size_t n;

    GET_I64(root, "E", "E", &ev->event_time_ms);
    if (!a) return fail(err, errlen, "%s: a: missing", ev_name);
    if (!json_is_object(a)) return fail(err, errlen, "%s: a: not an object", ev_name);
    ev->kind = BN_EV_ACCOUNT_UPDATE;
    P = json_object_get(a, "P");
    if (!P) return 0; /* a balance-only update (e.g. cross funding fee) */
    if (!json_is_array(P)) return fail(err, errlen, "%s: a.P: not an array", ev_name);
    n = json_array_size(P);
    if (!n) return 0;
    ev->positions = calloc(n, sizeof(*ev->positions));
    if (!ev->positions) return fail(err, errlen, "%s: a.P: out of memory", ev_name);
    for (size_t i = 0; i < n; i++) {
        const json_t *p = json_array_get(P, i);
        struct bn_position *bp = &ev->positions[i];
        const char *s, *ps;
        char path[40];

        if (!json_is_object(p)) return fail(err, errlen, "%s: a.P[%zu]: not an object", ev_name, i);
        snprintf(path, sizeof(path), "a.P[%zu].s", i);
        GET_STR(p, "s", path, &s);
        if (!*s || strlen(s) >= sizeof(bp->pos.symbol))
            return fail(err, errlen, "%s: %s: %s", ev_name, path, *s ? "too long" : "empty");
        strcpy(bp->pos.symbol, s);
        snprintf(path, sizeof(path), "a.P[%zu].pa", i);
        GET_DEC(p, "pa", path, &bp->pos.amount);
        snprintf(path, sizeof(path), "a.P[%zu].ep", i);
        GET_DEC(p, "ep", path, &bp->pos.entry_price);
        snprintf(path, sizeof(path), "a.P[%zu].ps", i);
        GET_STR(p, "ps", path, &ps);
        if (parse_pos_side(ps, &bp->side) < 0)
            return fail(err, errlen, "%s: %s: not BOTH, LONG or SHORT", ev_name, path);
        bp->pos.pos_side = (enum mkt_pos_side)bp->side;
        ev->n_positions = i + 1;
    }
    return 0;
}

static int parse_listen_key_expired(const json_t *root, struct bn_user_event *ev, char *err,
                                    size_t errlen) {
    static const char ev_name[] = EV_LKE;
    int r;

    GET_I64(root, "E", "E", &ev->event_time_ms);
    /* The key is informational (which key died); without it we still treat ours as dead: a
     * missed expiry means a silent stream, a spurious one only a reconnect. */
    r = ju_get_strbuf(root, "listenKey", ev->listen_key, sizeof(ev->listen_key));
    if (r < 0 && r != -ENOENT)
        return fail(err, errlen, "%s: listenKey: %s", ev_name,
                    r == -ERANGE ? "too long" : "not a string");
    ev->kind = BN_EV_LISTEN_KEY_EXPIRED;
    return 0;
}

/* ACCOUNT_CONFIG_UPDATE: "ac" {s, l} is a leverage change; without "ac" (e.g. "ai", the
 * multi-assets mode) it is an event we do not use. */
static int parse_config_update(const json_t *root, struct bn_user_event *ev, char *err,
                               size_t errlen) {
    static const char ev_name[] = EV_ACU;
    const json_t *ac = json_object_get(root, "ac");
    const char *s;
    int64_t l;

    GET_I64(root, "E", "E", &ev->event_time_ms);
    if (!ac) {
        ev->kind = BN_EV_OTHER;
        return 0;
    }
    if (!json_is_object(ac)) return fail(err, errlen, "%s: ac: not an object", ev_name);
    GET_STR(ac, "s", "ac.s", &s);
    if (!*s) return fail(err, errlen, "%s: ac.s: empty", ev_name);
    if (strlen(s) >= sizeof(ev->leverage_symbol))
        return fail(err, errlen, "%s: ac.s: too long", ev_name);
    GET_I64(ac, "l", "ac.l", &l);
    if (l < 1 || l > 1000) return fail(err, errlen, "%s: ac.l: not in 1..1000", ev_name);
    strcpy(ev->leverage_symbol, s);
    ev->leverage = (int)l;
    ev->kind = BN_EV_LEVERAGE;
    return 0;
}

void bn_user_event_clear(struct bn_user_event *ev) {
    if (!ev) return;
    free(ev->positions);
    memset(ev, 0, sizeof(*ev));
}

int bn_parse_user_event(const char *frame, size_t len, struct bn_user_event *ev, char *err,
                        size_t errlen) {
    if (!ev || !frame) return bn_parse_user_event_tree(frame, len, ev, err, errlen);
    /* The leader fill's own event, on the copy's critical path: read with yajl's event parser
     * into fixed tables when it is the plain shape (a flat object with the flat order in "o"),
     * a third of the instructions of jansson's tree. Anything else, an envelope or a value
     * jansson could read differently (json_flat.h), goes to jansson below, and so do the other
     * events. fuzz_binance_stream checks that both paths agree. */
    {
        struct jflat top, order;
        const char *e;
        if (jflat_parse_nested(&top, "o", &order, frame, len) == 0 &&
            js_get_str(&(struct jsrc){.flat = &top}, "e", &e) == 0 && !strcmp(e, EV_OTU)) {
            if (err && errlen) err[0] = '\0';
            memset(ev, 0, sizeof(*ev));
            copy_trunc(ev->type, sizeof(ev->type), e);
            return parse_order_update(&(struct jsrc){.flat = &top}, ev, err, errlen);
        }
    }
    return bn_parse_user_event_tree(frame, len, ev, err, errlen);
}

int bn_parse_user_event_tree(const char *frame, size_t len, struct bn_user_event *ev, char *err,
                             size_t errlen) {
    json_error_t jerr;
    json_t *root;
    const json_t *data;
    const char *e;
    int r;

    if (err && errlen) err[0] = '\0';
    if (!ev) return -EINVAL;
    memset(ev, 0, sizeof(*ev));
    if (!frame) return fail(err, errlen, "invalid JSON: no data");
    /* Duplicate keys would make "which o.l counted" ambiguous: refuse them. */
    root = json_loadb(frame, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(err, errlen, "invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                    jerr.column);
    data = root;
    if (!json_is_object(root)) {
        r = fail(err, errlen, "not a JSON object");
        goto out;
    }
    /* combined-stream envelope {"stream": ..., "data": {...}} */
    if (json_is_object(json_object_get(root, "data")) &&
        json_is_string(json_object_get(root, "stream")))
        data = json_object_get(root, "data");

    r = ju_get_str(data, "e", &e);
    if (r < 0) {
        r = fail(err, errlen, "e: %s", what(r, "not a string"));
        goto out;
    }
    copy_trunc(ev->type, sizeof(ev->type), e);
    if (!strcmp(e, EV_OTU)) {
        r = parse_order_update(&(struct jsrc){.obj = data}, ev, err, errlen);
    } else if (!strcmp(e, EV_AU)) {
        r = parse_account_update(data, ev, err, errlen);
    } else if (!strcmp(e, EV_LKE)) {
        r = parse_listen_key_expired(data, ev, err, errlen);
    } else if (!strcmp(e, EV_ACU)) {
        r = parse_config_update(data, ev, err, errlen);
    } else {
        ev->kind = BN_EV_OTHER;
        if (ju_get_i64(data, "E", &ev->event_time_ms) < 0) ev->event_time_ms = 0;
        r = 0;
    }
out:
    json_decref(root);
    if (r < 0) {
        /* leave nothing half-parsed behind */
        free(ev->positions);
        ev->positions = NULL;
        ev->n_positions = 0;
    }
    return r;
}

/* ===================================================================== stream */

struct key_req { /* ud of one listenKey request; s is NULLed when the stream closes first */
    struct exch_stream *s;
};

struct exch_stream {
    struct by_stream *bybit; /* bybit-linear accounts: everything below is unused */
    struct lws_context *ctx;
    struct exch_stream_cbs cbs;
    struct bn_stream_cfg cfg; /* strings below, not the caller's */
    char account[MKT_ACCOUNT_MAX];
    char *ws_base; /* ws_url without trailing '/' */

    struct ws_client *ws;
    bool ws_up;
    unsigned ws_failures; /* consecutive failed connects since the last open */
    char key[BN_LISTEN_KEY_MAX];
    enum exch_stream_state st;

    struct key_req *create_req, *keepalive_req;
    bool key_stale; /* the key we connect with is dead; a new one is being made */
    uint32_t create_attempt;
    uint64_t rng;

    lws_sorted_usec_list_t sul_keepalive, sul_rotate, sul_create;
    struct bn_stream_stats stats;
    int in_cb; /* > 0 while a user callback runs: closing from there would free under us */
};

#define USER_CB(s, call)                                                                           \
    do {                                                                                           \
        (s)->in_cb++;                                                                              \
        (s)->cbs.call;                                                                             \
        (s)->in_cb--;                                                                              \
    } while (0)

static void sched(struct exch_stream *s, lws_sorted_usec_list_t *sul, sul_cb_t cb, uint32_t ms) {
    lws_sul_schedule(s->ctx, 0, sul, cb, (lws_usec_t)ms * LWS_US_PER_MS);
    lws_cancel_service(s->ctx); /* we may be outside lws: make it re-arm its uv timer */
}

static void unsched(struct exch_stream *s, lws_sorted_usec_list_t *sul) {
    lws_sul_schedule(s->ctx, 0, sul, NULL, LWS_SET_TIMER_USEC_CANCEL);
}

static void set_state(struct exch_stream *s, enum exch_stream_state st, const char *reason) {
    if (s->st == st) return;
    s->st = st;
    if (s->cbs.on_state) USER_CB(s, on_state(s->cbs.ud, st, reason ? reason : ""));
}

static uint32_t key_backoff_ms(struct exch_stream *s) {
    uint64_t d = s->cfg.key_retry_min_ms;
    for (uint32_t i = 0; i < s->create_attempt && d < s->cfg.key_retry_max_ms; i++) d *= 2;
    if (d > s->cfg.key_retry_max_ms) d = s->cfg.key_retry_max_ms;
    s->create_attempt++;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    d = d * (80 + s->rng % 41) / 100;
    return (uint32_t)(d ? d : 1);
}

static void status_text(char *buf, size_t n, const char *what_, const struct exch_status *st) {
    if (!st)
        snprintf(buf, n, "%s failed", what_);
    else if (st->error_code)
        snprintf(buf, n, "%s failed: %d %s", what_, st->error_code, st->error_msg);
    else if (st->http_status)
        snprintf(buf, n, "%s failed: HTTP %ld %s", what_, st->http_status, st->error_msg);
    else
        snprintf(buf, n, "%s failed: %s", what_,
                 st->error_msg[0] ? st->error_msg : strerror(st->err < 0 ? -st->err : EIO));
}

/* A listenKey goes into a URL path: accept only what Binance issues. */
static bool key_ok(const char *k) {
    size_t n = strlen(k);
    if (!n || n >= BN_LISTEN_KEY_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = k[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static void ws_on_connecting(void *ud);
static void ws_on_open(void *ud);
static void ws_on_message(void *ud, const char *msg, size_t len);
static void ws_on_close(void *ud, const char *reason);
static void start_create(struct exch_stream *s);
static void start_keepalive(struct exch_stream *s);

static int ws_url_for(struct exch_stream *s, char *buf, size_t n) {
    int l = snprintf(buf, n, "%s/ws/%s", s->ws_base, s->key);
    return (l < 0 || (size_t)l >= n) ? -ENAMETOOLONG : 0;
}

static void create_retry_cb(lws_sorted_usec_list_t *sul) {
    struct exch_stream *s = lws_container_of(sul, struct exch_stream, sul_create);
    set_state(s, EXCH_STREAM_CONNECTING, "creating listenKey");
    start_create(s);
}

static void create_failed(struct exch_stream *s, const char *why) {
    set_state(s, EXCH_STREAM_DOWN, why);
    sched(s, &s->sul_create, create_retry_cb, key_backoff_ms(s));
}

static void keepalive_cb(lws_sorted_usec_list_t *sul) {
    struct exch_stream *s = lws_container_of(sul, struct exch_stream, sul_keepalive);
    start_keepalive(s);
}

static void on_key_created(void *ud, const struct exch_status *st, const char *key) {
    struct key_req *req = ud;
    struct exch_stream *s = req->s;
    char url[512], why[240];

    free(req);
    if (!s) return; /* closed meanwhile; the key (maybe shared with a newer stream) just expires */
    s->create_req = NULL;
    if (!key) {
        status_text(why, sizeof(why), "listenKey create", st);
        create_failed(s, why);
        return;
    }
    if (!key_ok(key)) {
        create_failed(s, "listenKey create: the key is not [A-Za-z0-9_-]{1,127}");
        return;
    }
    snprintf(s->key, sizeof(s->key), "%s", key);
    if (ws_url_for(s, url, sizeof(url)) < 0) {
        create_failed(s, "listenKey create: websocket URL too long");
        return;
    }
    s->stats.key_creates++;
    s->create_attempt = 0;
    s->key_stale = false;
    s->ws_failures = 0;

    if (!s->ws) {
        struct ws_client_opts o = {
            .url = url,
            .insecure_tls = s->cfg.insecure_tls,
            .ping_secs = s->cfg.ping_secs,
            .silence_secs = s->cfg.silence_secs,
            .backoff_min_ms = s->cfg.ws_backoff_min_ms,
            .backoff_max_ms = s->cfg.ws_backoff_max_ms,
            .max_message = s->cfg.max_message,
            .on_connecting = ws_on_connecting,
            .on_open = ws_on_open,
            .on_message = ws_on_message,
            .on_close = ws_on_close,
            .ud = s,
        };
        s->ws = ws_client_new(s->ctx, &o);
        if (!s->ws) {
            snprintf(why, sizeof(why), "websocket: %s", strerror(errno));
            create_failed(s, why);
            return;
        }
    } else if (ws_client_set_url(s->ws, url) < 0) {
        create_failed(s, "websocket: bad URL");
        return;
    } else {
        /* new key: the old connection carries nothing more for us */
        ws_client_reconnect_now(s->ws);
    }
    sched(s, &s->sul_keepalive, keepalive_cb, s->cfg.keepalive_ms);
}

static void start_create(struct exch_stream *s) {
    struct key_req *req;
    int r;

    if (s->create_req) return;
    unsched(s, &s->sul_create);
    req = calloc(1, sizeof(*req));
    if (!req) {
        create_failed(s, "listenKey create: out of memory");
        return;
    }
    req->s = s;
    s->create_req = req;
    r = s->cfg.key_ops->create(s->cfg.key_ud, on_key_created, req);
    if (r < 0) {
        char why[160];
        if (s->create_req == req) s->create_req = NULL;
        free(req);
        snprintf(why, sizeof(why), "listenKey create failed: %s", strerror(-r));
        create_failed(s, why);
    }
}

/* Our key is dead (-1125, listenKeyExpired): get a new one, then reconnect with it. */
static void key_lost(struct exch_stream *s, const char *why) {
    s->stats.key_lost++;
    s->key_stale = true;
    unsched(s, &s->sul_keepalive);
    set_state(s, EXCH_STREAM_DOWN, why);
    s->create_attempt = 0;
    start_create(s);
}

static void on_key_kept(void *ud, const struct exch_status *st, const char *key) {
    struct key_req *req = ud;
    struct exch_stream *s = req->s;

    free(req);
    if (!s) return;
    s->keepalive_req = NULL;
    if (key) {
        s->stats.keepalives++;
        sched(s, &s->sul_keepalive, keepalive_cb, s->cfg.keepalive_ms);
    } else if (st && st->error_code == -1125) {
        key_lost(s, "listenKey does not exist (-1125)");
    } else {
        /* transport trouble: the key lives 60 min, try again soon */
        sched(s, &s->sul_keepalive, keepalive_cb, s->cfg.keepalive_retry_ms);
    }
}

static void start_keepalive(struct exch_stream *s) {
    struct key_req *req;
    int r;

    if (s->keepalive_req || s->create_req || !s->key[0]) return;
    unsched(s, &s->sul_keepalive);
    req = calloc(1, sizeof(*req));
    if (!req) {
        sched(s, &s->sul_keepalive, keepalive_cb, s->cfg.keepalive_retry_ms);
        return;
    }
    req->s = s;
    s->keepalive_req = req;
    r = s->cfg.key_ops->keepalive(s->cfg.key_ud, s->key, on_key_kept, req);
    if (r < 0) {
        if (s->keepalive_req == req) s->keepalive_req = NULL;
        free(req);
        sched(s, &s->sul_keepalive, keepalive_cb, s->cfg.keepalive_retry_ms);
    }
}

static void rotate_cb(lws_sorted_usec_list_t *sul) {
    struct exch_stream *s = lws_container_of(sul, struct exch_stream, sul_rotate);
    /* Binance cuts a connection at 24 h; leave earlier, at a moment of our choosing. */
    s->stats.rotations++;
    ws_client_reconnect_now(s->ws);
}

static void ws_on_connecting(void *ud) {
    struct exch_stream *s = ud;
    set_state(s, EXCH_STREAM_CONNECTING, "connecting");
}

static void ws_on_open(void *ud) {
    struct exch_stream *s = ud;
    s->ws_up = true;
    s->ws_failures = 0;
    sched(s, &s->sul_rotate, rotate_cb, s->cfg.rotate_ms);
    if (s->key_stale) return; /* connected with the dead key: the new one reconnects us */
    set_state(s, EXCH_STREAM_UP, "connected");
}

static void ws_on_close(void *ud, const char *reason) {
    struct exch_stream *s = ud;
    bool was_up = s->ws_up;

    s->ws_up = false;
    unsched(s, &s->sul_rotate);
    set_state(s, EXCH_STREAM_DOWN, reason);
    if (!was_up && ++s->ws_failures % s->cfg.probe_after == 0) {
        /* The server keeps refusing us: maybe the key died while we were away. A PUT answers
         * -1125 in that case (on_key_kept then makes a new key). */
        start_keepalive(s);
    }
}

static void ws_on_message(void *ud, const char *msg, size_t len) {
    struct exch_stream *s = ud;
    struct bn_user_event ev;
    struct timespec ts;
    char err[200];
    int64_t now_ns;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (bn_parse_user_event(msg, len, &ev, err, sizeof(err)) < 0) {
        s->stats.bad_frames++;
        if (s->cbs.on_bad_frame) USER_CB(s, on_bad_frame(s->cbs.ud, err, msg, len));
        bn_user_event_clear(&ev);
        return;
    }
    switch (ev.kind) {
    case BN_EV_FILL:
        snprintf(ev.fill.account, sizeof(ev.fill.account), "%s", s->account);
        ev.fill.received_ns = now_ns;
        s->stats.fills++;
        if (s->cbs.on_fill) USER_CB(s, on_fill(s->cbs.ud, &ev.fill));
        break;
    case BN_EV_ACCOUNT_UPDATE:
        for (size_t i = 0; i < ev.n_positions; i++) {
            /* One-way (BOTH) and hedge-mode (LONG / SHORT) entries alike: pos_side tells. */
            s->stats.positions++;
            if (s->cbs.on_position) USER_CB(s, on_position(s->cbs.ud, &ev.positions[i].pos));
        }
        break;
    case BN_EV_LISTEN_KEY_EXPIRED:
        /* An expiry of a key we already replaced is old news. */
        if (!ev.listen_key[0] || !strcmp(ev.listen_key, s->key)) {
            if (!s->key_stale) key_lost(s, "listenKey expired");
        }
        break;
    case BN_EV_LEVERAGE:
        s->stats.leverage_changes++;
        if (s->cbs.on_leverage)
            USER_CB(s, on_leverage(s->cbs.ud, ev.leverage_symbol, ev.leverage));
        break;
    case BN_EV_ORDER_UPDATE:
    case BN_EV_OTHER:
        break;
    }
    bn_user_event_clear(&ev);
}

struct exch_stream *bn_stream_open(const struct bn_stream_cfg *cfg, struct lws_context *ctx,
                                   const struct exch_stream_cbs *cbs) {
    struct exch_stream *s;
    size_t n;

    if (!cfg || !ctx || !cbs || !cfg->account || !cfg->ws_url || !cfg->key_ops ||
        !cfg->key_ops->create || !cfg->key_ops->keepalive ||
        strlen(cfg->account) >= MKT_ACCOUNT_MAX || ws_client_check_url(cfg->ws_url) < 0 ||
        strchr(cfg->ws_url, '?')) {
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->ctx = ctx;
    s->cbs = *cbs;
    s->cfg = *cfg;
    s->cfg.account = s->cfg.ws_url = NULL;
    snprintf(s->account, sizeof(s->account), "%s", cfg->account);
    s->ws_base = strdup(cfg->ws_url);
    if (!s->ws_base) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    n = strlen(s->ws_base);
    while (n > 0 && s->ws_base[n - 1] == '/') s->ws_base[--n] = '\0';

    if (!s->cfg.keepalive_ms) s->cfg.keepalive_ms = 30u * 60 * 1000;
    if (!s->cfg.keepalive_retry_ms) s->cfg.keepalive_retry_ms = 60u * 1000;
    if (!s->cfg.rotate_ms) s->cfg.rotate_ms = 23u * 3600 * 1000;
    if (!s->cfg.key_retry_min_ms) s->cfg.key_retry_min_ms = 1000;
    if (!s->cfg.key_retry_max_ms) s->cfg.key_retry_max_ms = 60u * 1000;
    if (s->cfg.key_retry_max_ms < s->cfg.key_retry_min_ms)
        s->cfg.key_retry_max_ms = s->cfg.key_retry_min_ms;
    if (!s->cfg.ping_secs) s->cfg.ping_secs = 20;
    if (!s->cfg.silence_secs)
        s->cfg.silence_secs =
            (uint16_t)(s->cfg.ping_secs * 2 > UINT16_MAX ? UINT16_MAX : s->cfg.ping_secs * 2);
    if (s->cfg.silence_secs <= s->cfg.ping_secs) {
        free(s->ws_base);
        free(s);
        errno = EINVAL;
        return NULL;
    }
    if (!s->cfg.probe_after) s->cfg.probe_after = 3;
    if (lws_get_random(ctx, &s->rng, sizeof(s->rng)) != sizeof(s->rng) || !s->rng)
        s->rng = (uint64_t)(uintptr_t)s ^ 0x9E3779B97F4A7C15ULL;
    s->st = EXCH_STREAM_CONNECTING;

    /* The first create's refusal is the caller's problem (bad account, no pool): say so now. */
    s->create_req = calloc(1, sizeof(*s->create_req));
    if (!s->create_req) {
        free(s->ws_base);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    s->create_req->s = s;
    {
        struct key_req *req = s->create_req;
        int r = s->cfg.key_ops->create(s->cfg.key_ud, on_key_created, req);
        if (r < 0) {
            free(req);
            free(s->ws_base);
            free(s);
            errno = -r;
            return NULL;
        }
    }
    return s;
}

static void on_key_deleted(void *ud, const struct exch_status *st, const char *key) {
    (void)ud;
    (void)st;
    (void)key; /* best effort: the key expires by itself within 60 min anyway */
}

struct exch_stream *exch_stream_close(struct exch_stream *s) {
    if (!s) return NULL;
    if (s->bybit) {
        bybit_stream_close(s->bybit);
        free(s);
        return NULL;
    }
    ct_assert(s->in_cb == 0); /* not from inside the stream's own callbacks */
    unsched(s, &s->sul_keepalive);
    unsched(s, &s->sul_rotate);
    unsched(s, &s->sul_create);
    if (s->create_req) s->create_req->s = NULL;
    if (s->keepalive_req) s->keepalive_req->s = NULL;
    s->ws = ws_client_free(s->ws);
    /* Not waited for: the REST pool's timeout bounds it, and its callback owns nothing of ours. */
    if (s->key[0] && s->cfg.key_ops->remove)
        (void)s->cfg.key_ops->remove(s->cfg.key_ud, s->key, on_key_deleted, NULL);
    free(s->ws_base);
    free(s);
    return NULL;
}

enum exch_stream_state exch_stream_state(const struct exch_stream *s) {
    if (s && s->bybit) return bybit_stream_state(s->bybit);
    return s ? s->st : EXCH_STREAM_DOWN;
}

struct bn_stream_stats bn_stream_stats(const struct exch_stream *s) {
    struct bn_stream_stats z = {0};
    return s ? s->stats : z;
}

void exch_stream_get_stats(const struct exch_stream *s, struct exch_stream_stats *out) {
    struct ws_client_stats w;
    if (!out) return;
    memset(out, 0, sizeof(*out));
    if (!s) return;
    if (s->bybit) {
        struct by_stream_stats b = bybit_stream_stats(s->bybit);
        bybit_stream_ws_stats(s->bybit, &w);
        out->silences = b.silences + w.silences;
        out->fills = b.fills;
    } else {
        bn_stream_ws_stats(s, &w);
        out->silences = w.silences;
        out->fills = s->stats.fills;
        out->key_lost = s->stats.key_lost;
    }
    out->connects = w.connects;
    out->reconnects = w.reconnects;
    out->messages = w.messages;
}

void bn_stream_ws_stats(const struct exch_stream *s, struct ws_client_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof(*out));
    if (s && s->ws) *out = ws_client_stats(s->ws);
}

/* ---- exchange.h entry point: the account's listenKey calls and default timings ---- */

static int acct_create(void *a, exch_listen_key_cb cb, void *ud) {
    return exch_listen_key_create(a, cb, ud);
}
static int acct_keepalive(void *a, const char *k, exch_listen_key_cb cb, void *ud) {
    return exch_listen_key_keepalive(a, k, cb, ud);
}
static int acct_remove(void *a, const char *k, exch_listen_key_cb cb, void *ud) {
    return exch_listen_key_delete(a, k, cb, ud);
}
static const struct bn_key_ops acct_key_ops = {acct_create, acct_keepalive, acct_remove};

struct exch_stream *exch_stream_open(struct exch_account *a, struct lws_context *ctx,
                                     const struct exch_stream_cbs *cbs) {
    struct bn_stream_cfg cfg;

    if (!a) {
        errno = EINVAL;
        return NULL;
    }
    if (exch_account_kind(a) == EXCH_BYBIT_LINEAR) {
        /* The Bybit stream keeps its own state; this wrapper only gives it the common type. */
        struct exch_stream *s = calloc(1, sizeof(*s));
        if (!s) return NULL;
        if (!(s->bybit = bybit_stream_open_account(a, ctx, cbs))) {
            int e = errno;
            free(s);
            errno = e;
            return NULL;
        }
        return s;
    }
    if (exch_account_kind(a) != EXCH_BINANCE_USDM) {
        errno = ENOTSUP;
        return NULL;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.account = exch_account_name(a);
    cfg.ws_url = exch_account_ws_url(a);
    cfg.key_ops = &acct_key_ops;
    cfg.key_ud = a;
    if (exch_account_stream_ping_ms(a) > 0) {
        int s = exch_account_stream_ping_ms(a) / 1000;
        cfg.ping_secs = (uint16_t)(s < 1 ? 1 : s > 3600 ? 3600 : s);
    }
    if (exch_account_stream_silence_ms(a) > 0) {
        int s = exch_account_stream_silence_ms(a) / 1000;
        cfg.silence_secs = (uint16_t)(s < 2 ? 2 : s > 36000 ? 36000 : s);
    }
    return bn_stream_open(&cfg, ctx, cbs);
}
