/* bybit_stream: see bybit_stream.h. Timers are lws suls (cancelled synchronously, so close is
 * synchronous); a sul scheduled from outside lws (a REST callback) is followed by
 * lws_cancel_service so lws re-arms its libuv timer (see ws_client.c). */
#include "bybit_stream.h"

#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bybit_sign.h"
#include "exchange_internal.h"
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
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) *c = '?';
    }
    return -EINVAL;
}

static void copy_msg(char *dst, size_t n, const char *src) {
    size_t l = strlen(src);
    if (l >= n) l = n - 1;
    memcpy(dst, src, l);
    dst[l] = '\0';
    for (char *c = dst; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) *c = '?';
}

void by_event_clear(struct by_event *ev) {
    if (!ev) return;
    free(ev->execs);
    free(ev->positions);
    free(ev->orders);
    ev->execs = NULL;
    ev->positions = NULL;
    ev->orders = NULL;
    ev->n_execs = ev->n_positions = ev->n_orders = 0;
}

/* "linear", or no category at all (the simulator, categorised topics): ours. */
static bool linear_entry(const json_t *e) {
    const json_t *c = json_object_get(e, "category");
    return !c || (json_is_string(c) && strcmp(json_string_value(c), BYBIT_CATEGORY) == 0);
}

static int parse_op(json_t *root, const char *op, struct by_event *ev, char *err, size_t errlen) {
    const json_t *s = json_object_get(root, "success");
    const char *m = "";
    if (s && !json_is_boolean(s)) return fail(err, errlen, "%s reply: success: not a boolean", op);
    ev->success = s ? json_is_true(s) : true;
    if (ju_get_str(root, "ret_msg", &m) < 0) m = "";
    copy_msg(ev->ret_msg, sizeof ev->ret_msg, m);
    if (!strcmp(op, "auth")) {
        if (!s) return fail(err, errlen, "auth reply: success: missing");
        ev->kind = BY_EV_AUTH;
    } else if (!strcmp(op, "subscribe")) {
        if (!s) return fail(err, errlen, "subscribe reply: success: missing");
        ev->kind = BY_EV_SUBSCRIBE;
    } else if (!strcmp(op, "pong") || (!strcmp(op, "ping") && !strcmp(m, "pong"))) {
        ev->kind = BY_EV_PONG;
    } else {
        ev->kind = BY_EV_OTHER;
    }
    return 0;
}

static int parse_topic(json_t *root, const char *topic, struct by_event *ev, char *err,
                       size_t errlen) {
    json_t *data, *e;
    size_t i, n;
    int64_t ct = 0;
    const json_t *ctv = json_object_get(root, "creationTime");

    /* "execution" / "execution.linear"; "execution.fast" has another shape: not ours */
    const char *name;
    if (!strcmp(topic, "execution") || !strcmp(topic, "execution.linear"))
        ev->kind = BY_EV_EXECUTION, name = "execution";
    else if (!strcmp(topic, "position") || !strcmp(topic, "position.linear"))
        ev->kind = BY_EV_POSITION, name = "position";
    else if (!strcmp(topic, "order") || !strcmp(topic, "order.linear"))
        ev->kind = BY_EV_ORDER, name = "order";
    else {
        ev->kind = BY_EV_OTHER;
        return 0;
    }
    if (ctv) {
        if (!json_is_integer(ctv) || (ct = json_integer_value(ctv)) < 0)
            return fail(err, errlen, "%s: creationTime: not an integer", name);
        ev->creation_time_ms = ct;
    }
    data = json_object_get(root, "data");
    if (!json_is_array(data))
        return fail(err, errlen, "%s: data: %s", name, data ? "not an array" : "missing");
    n = json_array_size(data);
    if (n == 0) return 0;
    switch (ev->kind) {
    case BY_EV_EXECUTION: ev->execs = calloc(n, sizeof *ev->execs); break;
    case BY_EV_POSITION: ev->positions = calloc(n, sizeof *ev->positions); break;
    default: ev->orders = calloc(n, sizeof *ev->orders); break;
    }
    if (!ev->execs && !ev->positions && !ev->orders) return fail(err, errlen, "%s: out of memory", name);
    json_array_foreach(data, i, e) {
        char where[48], e2[200];
        if (!json_is_object(e)) return fail(err, errlen, "%s: data[%zu]: not an object", name, i);
        if (!linear_entry(e)) {
            ev->n_skipped++;
            continue;
        }
        snprintf(where, sizeof where, "%s: data[%zu]", name, i);
        if (ev->kind == BY_EV_EXECUTION) {
            struct bybit_exec *x = &ev->execs[ev->n_execs];
            if (bybit_parse_exec_obj(e, where, x, err, errlen) < 0) return -EINVAL;
            x->fill.event_time_ms = ct ? ct : x->fill.trade_time_ms;
            ev->n_execs++;
        } else if (ev->kind == BY_EV_POSITION) {
            if (bybit_parse_position_obj(e, &ev->positions[ev->n_positions], e2, sizeof e2) < 0)
                return fail(err, errlen, "%s: %s", where, e2);
            ev->n_positions++;
        } else {
            /* Only what the stream uses; the rest of an order entry is not checked. */
            struct by_order_note *o = &ev->orders[ev->n_orders];
            const char *sym;
            int64_t idx;
            if (ju_get_str(e, "symbol", &sym) < 0 || !*sym || strlen(sym) >= MKT_SYMBOL_MAX)
                return fail(err, errlen, "%s.symbol: missing or too long", where);
            snprintf(o->symbol, sizeof o->symbol, "%s", sym);
            o->position_idx = ju_get_i64(e, "positionIdx", &idx) == 0 && idx >= 0 && idx <= 2
                                  ? (int)idx
                                  : -1;
            ev->n_orders++;
        }
    }
    return 0;
}

int by_parse_event(const char *frame, size_t len, struct by_event *ev, char *err, size_t errlen) {
    json_error_t je;
    json_t *root;
    const char *s;
    int rc;

    if (ev) memset(ev, 0, sizeof *ev);
    if (!ev) return -EINVAL;
    root = json_loadb(frame ? frame : "", frame ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (!root) return fail(err, errlen, "invalid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, errlen, "not a JSON object");
    }
    if (ju_get_str(root, "topic", &s) == 0) rc = parse_topic(root, s, ev, err, errlen);
    else if (ju_get_str(root, "op", &s) == 0) rc = parse_op(root, s, ev, err, errlen);
    else rc = fail(err, errlen, "neither a topic message nor an op reply");
    json_decref(root);
    if (rc < 0) {
        by_event_clear(ev);
        ev->kind = BY_EV_OTHER;
    }
    return rc;
}

/* ===================================================================== stream */

struct mode_req { /* ud of the position-mode request; s is NULLed when the stream closes */
    struct by_stream *s;
};

enum by_phase { PH_IDLE = 0, PH_AUTH, PH_SUBSCRIBE, PH_UP };

struct by_stream {
    struct lws_context *ctx;
    struct exch_stream_cbs cbs;
    struct by_stream_cfg cfg; /* strings not kept */
    char account[MKT_ACCOUNT_MAX];
    char *ws_url;

    struct ws_client *ws;
    bool ws_dead;       /* this client was refused: ignore it until it is replaced */
    enum by_phase phase;
    enum exch_stream_state st;
    int64_t last_rx_ms; /* monotonic */
    uint32_t auth_fails; /* consecutive */
    uint64_t rng;

    struct bybit_modebook *mb;
    struct mode_req *mode_req;

    lws_sorted_usec_list_t sul_ping, sul_phase, sul_retry;
    struct by_stream_stats stats;
    int in_cb;
};

#define USER_CB(s, call)      \
    do {                      \
        (s)->in_cb++;         \
        (s)->cbs.call;        \
        (s)->in_cb--;         \
    } while (0)

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sched(struct by_stream *s, lws_sorted_usec_list_t *sul, sul_cb_t cb, uint32_t ms) {
    lws_sul_schedule(s->ctx, 0, sul, cb, (lws_usec_t)ms * LWS_US_PER_MS);
    lws_cancel_service(s->ctx);
}

static void unsched(struct by_stream *s, lws_sorted_usec_list_t *sul) {
    lws_sul_schedule(s->ctx, 0, sul, NULL, LWS_SET_TIMER_USEC_CANCEL);
}

static void set_state(struct by_stream *s, enum exch_stream_state st, const char *reason) {
    if (s->st == st) return;
    s->st = st;
    if (s->cbs.on_state) USER_CB(s, on_state(s->cbs.ud, st, reason ? reason : ""));
}

static uint32_t backoff_ms(struct by_stream *s) {
    uint64_t d = s->cfg.backoff_min_ms;
    for (uint32_t i = 1; i < s->auth_fails && d < s->cfg.backoff_max_ms; i++) d *= 2;
    if (d > s->cfg.backoff_max_ms) d = s->cfg.backoff_max_ms;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    d = d * (80 + s->rng % 41) / 100;
    return (uint32_t)(d ? d : 1);
}

static void ws_on_connecting(void *ud);
static void ws_on_open(void *ud);
static void ws_on_message(void *ud, const char *msg, size_t len);
static void ws_on_close(void *ud, const char *reason);

static int ws_make(struct by_stream *s) {
    struct ws_client_opts o = {
        .url = s->ws_url,
        .insecure_tls = s->cfg.insecure_tls,
        .ping_secs = s->cfg.ws_ping_secs,
        .silence_secs = s->cfg.ws_silence_secs,
        .backoff_min_ms = s->cfg.backoff_min_ms,
        .backoff_max_ms = s->cfg.backoff_max_ms,
        .max_message = s->cfg.max_message,
        .on_connecting = ws_on_connecting,
        .on_open = ws_on_open,
        .on_message = ws_on_message,
        .on_close = ws_on_close,
        .ud = s,
    };
    s->ws = ws_client_new(s->ctx, &o);
    s->ws_dead = false;
    s->phase = PH_IDLE;
    return s->ws ? 0 : -errno;
}

/* A fresh connection after the backoff (the old client was refused or timed out). */
static void retry_cb(lws_sorted_usec_list_t *sul) {
    struct by_stream *s = lws_container_of(sul, struct by_stream, sul_retry);
    s->ws = ws_client_free(s->ws);
    if (ws_make(s) < 0) {
        s->auth_fails++;
        sched(s, &s->sul_retry, retry_cb, backoff_ms(s));
    }
}

/* Auth refused / timed out / subscription refused: DOWN, and a new connection later. The
 * client cannot be freed from inside its own callback, so it is replaced from the retry timer;
 * until then whatever it says is ignored. */
static void give_up_connection(struct by_stream *s, const char *why) {
    s->stats.auth_failures++;
    s->auth_fails++;
    s->ws_dead = true;
    s->phase = PH_IDLE;
    unsched(s, &s->sul_phase);
    unsched(s, &s->sul_ping);
    set_state(s, EXCH_STREAM_DOWN, why);
    sched(s, &s->sul_retry, retry_cb, backoff_ms(s));
}

static void phase_timeout_cb(lws_sorted_usec_list_t *sul) {
    struct by_stream *s = lws_container_of(sul, struct by_stream, sul_phase);
    if (s->ws_dead) return;
    give_up_connection(s, s->phase == PH_AUTH ? "auth: no answer" : "subscribe: no answer");
}

static void ping_cb(lws_sorted_usec_list_t *sul) {
    struct by_stream *s = lws_container_of(sul, struct by_stream, sul_ping);
    if (s->ws_dead || !s->ws || !ws_client_is_open(s->ws)) return;
    if (mono_ms() - s->last_rx_ms >= (int64_t)s->cfg.silence_ms) {
        char why[96];
        s->stats.silences++;
        snprintf(why, sizeof why, "silent for %u ms", s->cfg.silence_ms);
        s->phase = PH_IDLE;
        set_state(s, EXCH_STREAM_DOWN, why);
        ws_client_reconnect_now(s->ws);
        return;
    }
    if (ws_client_send_text(s->ws, BY_PING_FRAME, strlen(BY_PING_FRAME)) == 0) s->stats.pings++;
    sched(s, &s->sul_ping, ping_cb, s->cfg.ping_ms);
}

static void ws_on_connecting(void *ud) {
    struct by_stream *s = ud;
    if (s->ws_dead) return;
    s->phase = PH_IDLE;
    set_state(s, EXCH_STREAM_CONNECTING, "connecting");
}

static void ws_on_open(void *ud) {
    struct by_stream *s = ud;
    char frame[1024];
    if (s->ws_dead) return;
    s->last_rx_ms = mono_ms();
    int64_t expires = wall_ms() + s->cfg.clock_offset_ms + s->cfg.expires_ahead_ms;
    int n = s->cfg.auth_frame(s->cfg.auth_ud, expires, frame, sizeof frame);
    if (n < 0) {
        char why[96];
        snprintf(why, sizeof why, "auth: cannot sign: %s", strerror(-n));
        give_up_connection(s, why);
        return;
    }
    int r = ws_client_send_text(s->ws, frame, (size_t)n);
    explicit_bzero(frame, sizeof frame); /* the api key */
    if (r < 0) {
        give_up_connection(s, "auth: cannot send");
        return;
    }
    s->phase = PH_AUTH;
    set_state(s, EXCH_STREAM_CONNECTING, "authenticating");
    sched(s, &s->sul_phase, phase_timeout_cb, s->cfg.auth_timeout_ms);
    sched(s, &s->sul_ping, ping_cb, s->cfg.ping_ms);
}

static void ws_on_close(void *ud, const char *reason) {
    struct by_stream *s = ud;
    if (s->ws_dead) return;
    s->phase = PH_IDLE;
    unsched(s, &s->sul_phase);
    unsched(s, &s->sul_ping);
    set_state(s, EXCH_STREAM_DOWN, reason);
}

static void deliver_fills(struct by_stream *s, struct by_event *ev, int64_t now_ns) {
    for (size_t i = 0; i < ev->n_execs; i++) {
        struct bybit_exec *x = &ev->execs[i];
        if (!x->is_trade) {
            s->stats.skipped++; /* funding, ADL, settlement: not a copyable trade */
            continue;
        }
        bybit_exec_apply_mode(x, bybit_modebook_mode(s->mb, x->fill.symbol));
        snprintf(x->fill.account, sizeof x->fill.account, "%s", s->account);
        x->fill.received_ns = now_ns;
        s->stats.fills++;
        if (s->cbs.on_fill) USER_CB(s, on_fill(s->cbs.ud, &x->fill));
    }
}

static void deliver_positions(struct by_stream *s, struct by_event *ev) {
    for (size_t i = 0; i < ev->n_positions; i++) {
        struct mkt_position *p = &ev->positions[i];
        int old = 0;
        int idx = p->pos_side == MKT_PS_BOTH ? 0 : p->pos_side == MKT_PS_LONG ? 1 : 2;
        (void)bybit_modebook_note(s->mb, p->symbol, idx, p->leverage, &old);
        s->stats.positions++;
        if (s->cbs.on_position) USER_CB(s, on_position(s->cbs.ud, p));
        if (old > 0 && p->leverage > 0 && old != p->leverage) {
            s->stats.leverage_changes++;
            if (s->cbs.on_leverage) USER_CB(s, on_leverage(s->cbs.ud, p->symbol, p->leverage));
        }
    }
}

static void ws_on_message(void *ud, const char *msg, size_t len) {
    struct by_stream *s = ud;
    struct by_event ev;
    char err[200];
    int64_t now_ns = mono_ns();

    if (s->ws_dead) return;
    s->last_rx_ms = now_ns / 1000000;
    if (by_parse_event(msg, len, &ev, err, sizeof err) < 0) {
        s->stats.bad_frames++;
        if (s->cbs.on_bad_frame) USER_CB(s, on_bad_frame(s->cbs.ud, err, msg, len));
        by_event_clear(&ev);
        return;
    }
    s->stats.skipped += ev.n_skipped;
    switch (ev.kind) {
    case BY_EV_AUTH:
        if (s->phase != PH_AUTH) break; /* a late answer to an abandoned attempt */
        unsched(s, &s->sul_phase);
        if (!ev.success) {
            char why[192];
            snprintf(why, sizeof why, "auth failed: %s", ev.ret_msg[0] ? ev.ret_msg : "(no reason)");
            give_up_connection(s, why);
            break;
        }
        s->stats.auths++;
        if (ws_client_send_text(s->ws, BY_SUBSCRIBE_FRAME, strlen(BY_SUBSCRIBE_FRAME)) < 0) {
            give_up_connection(s, "subscribe: cannot send");
            break;
        }
        s->phase = PH_SUBSCRIBE;
        sched(s, &s->sul_phase, phase_timeout_cb, s->cfg.auth_timeout_ms);
        break;
    case BY_EV_SUBSCRIBE:
        if (s->phase != PH_SUBSCRIBE) break;
        unsched(s, &s->sul_phase);
        if (!ev.success) {
            char why[192];
            snprintf(why, sizeof why, "subscribe failed: %s",
                     ev.ret_msg[0] ? ev.ret_msg : "(no reason)");
            give_up_connection(s, why);
            break;
        }
        s->phase = PH_UP;
        s->auth_fails = 0;
        set_state(s, EXCH_STREAM_UP, "subscribed");
        break;
    case BY_EV_PONG:
        s->stats.pongs++;
        break;
    case BY_EV_EXECUTION: deliver_fills(s, &ev, now_ns); break;
    case BY_EV_POSITION: deliver_positions(s, &ev); break;
    case BY_EV_ORDER:
        for (size_t i = 0; i < ev.n_orders; i++) {
            s->stats.orders++;
            if (ev.orders[i].position_idx >= 0)
                (void)bybit_modebook_note(s->mb, ev.orders[i].symbol, ev.orders[i].position_idx, 0,
                                          NULL);
        }
        break;
    case BY_EV_OTHER: break;
    }
    by_event_clear(&ev);
}

static void on_mode(void *ud, const struct exch_status *st, enum mkt_pos_mode mode) {
    struct mode_req *req = ud;
    struct by_stream *s = req->s;
    free(req);
    if (!s) return;
    s->mode_req = NULL;
    if (st && st->err == 0) bybit_modebook_set_default(s->mb, mode);
}

struct by_stream *bybit_stream_open(const struct by_stream_cfg *cfg, struct lws_context *ctx,
                                    const struct exch_stream_cbs *cbs) {
    struct by_stream *s;
    if (!cfg || !ctx || !cbs || !cfg->account || !cfg->ws_url || !cfg->auth_frame ||
        strlen(cfg->account) >= MKT_ACCOUNT_MAX || ws_client_check_url(cfg->ws_url) < 0) {
        errno = EINVAL;
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->ctx = ctx;
    s->cbs = *cbs;
    s->cfg = *cfg;
    s->cfg.account = s->cfg.ws_url = NULL;
    snprintf(s->account, sizeof s->account, "%s", cfg->account);
    s->ws_url = strdup(cfg->ws_url);
    s->mb = bybit_modebook_new();
    if (!s->ws_url || !s->mb) goto nomem;
    if (!s->cfg.expires_ahead_ms) s->cfg.expires_ahead_ms = 10000;
    if (!s->cfg.ping_ms) s->cfg.ping_ms = 20000;
    if (!s->cfg.silence_ms) s->cfg.silence_ms = 3 * s->cfg.ping_ms;
    if (!s->cfg.auth_timeout_ms) s->cfg.auth_timeout_ms = 10000;
    if (!s->cfg.backoff_min_ms) s->cfg.backoff_min_ms = 250;
    if (!s->cfg.backoff_max_ms) s->cfg.backoff_max_ms = 30000;
    if (s->cfg.backoff_max_ms < s->cfg.backoff_min_ms) s->cfg.backoff_max_ms = s->cfg.backoff_min_ms;
    if (!s->cfg.ws_ping_secs) s->cfg.ws_ping_secs = 20;
    if (!s->cfg.ws_silence_secs) s->cfg.ws_silence_secs = 60;
    if (s->cfg.ws_silence_secs <= s->cfg.ws_ping_secs || s->cfg.silence_ms <= s->cfg.ping_ms) {
        errno = EINVAL;
        goto fail;
    }
    if (lws_get_random(ctx, &s->rng, sizeof s->rng) != sizeof s->rng || !s->rng)
        s->rng = (uint64_t)(uintptr_t)s ^ 0x9E3779B97F4A7C15ULL;
    s->st = EXCH_STREAM_CONNECTING;
    if (s->cfg.fetch_mode) {
        struct mode_req *req = calloc(1, sizeof *req);
        if (!req) goto nomem;
        req->s = s;
        s->mode_req = req;
        if (s->cfg.fetch_mode(s->cfg.auth_ud, on_mode, req) < 0) {
            free(req); /* best effort: modes are learned from the stream anyway */
            s->mode_req = NULL;
        }
    }
    int r = ws_make(s);
    if (r < 0) {
        if (s->mode_req) s->mode_req->s = NULL;
        errno = -r;
        goto fail;
    }
    return s;
nomem:
    errno = ENOMEM;
fail:
    bybit_modebook_free(s->mb);
    free(s->ws_url);
    free(s);
    return NULL;
}

struct by_stream *bybit_stream_close(struct by_stream *s) {
    if (!s) return NULL;
    ct_assert(s->in_cb == 0); /* not from inside the stream's own callbacks */
    unsched(s, &s->sul_ping);
    unsched(s, &s->sul_phase);
    unsched(s, &s->sul_retry);
    if (s->mode_req) s->mode_req->s = NULL;
    s->ws = ws_client_free(s->ws);
    bybit_modebook_free(s->mb);
    free(s->ws_url);
    free(s);
    return NULL;
}

enum exch_stream_state bybit_stream_state(const struct by_stream *s) {
    return s ? s->st : EXCH_STREAM_DOWN;
}

struct by_stream_stats bybit_stream_stats(const struct by_stream *s) {
    struct by_stream_stats z = {0};
    return s ? s->stats : z;
}

void bybit_stream_ws_stats(const struct by_stream *s, struct ws_client_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (s && s->ws) *out = ws_client_stats(s->ws);
}

/* ---- the account's version ---- */

static int acct_auth_frame(void *ud, int64_t expires_ms, char *buf, size_t cap) {
    struct exch_account *a = ud;
    char sig[BYBIT_SIG_HEX_LEN + 1];
    /* the stream's clock offset is 0 for accounts: the account's current one is added here */
    expires_ms += exch_account_time_offset_ms(a);
    int r = bybit_sign_ws_auth(a, expires_ms, sig);
    if (r < 0) return r;
    return bybit_ws_auth_frame(buf, cap, exch_account_api_key(a), expires_ms, sig);
}

static int acct_fetch_mode(void *ud, exch_pos_mode_cb cb, void *req) {
    return exch_fetch_position_mode(ud, cb, req);
}

struct by_stream *bybit_stream_open_account(struct exch_account *a, struct lws_context *ctx,
                                            const struct exch_stream_cbs *cbs) {
    struct by_stream_cfg cfg;
    if (!a || exch_account_kind(a) != EXCH_BYBIT_LINEAR) {
        errno = EINVAL;
        return NULL;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.account = exch_account_name(a);
    cfg.ws_url = exch_account_ws_url(a);
    cfg.auth_frame = acct_auth_frame;
    cfg.fetch_mode = acct_fetch_mode;
    cfg.auth_ud = a; /* the caller keeps the account alive while the stream is open */
    if (exch_account_stream_ping_ms(a) > 0) {
        cfg.ping_ms = (uint32_t)exch_account_stream_ping_ms(a);
        cfg.ws_ping_secs = (uint16_t)(cfg.ping_ms / 1000 ? cfg.ping_ms / 1000 : 1);
    }
    if (exch_account_stream_silence_ms(a) > 0) {
        cfg.silence_ms = (uint32_t)exch_account_stream_silence_ms(a);
        cfg.ws_silence_secs = (uint16_t)(cfg.silence_ms / 1000 ? cfg.silence_ms / 1000 : 1);
    }
    return bybit_stream_open(&cfg, ctx, cbs);
}
