/* ticker_stream: see ticker_stream.h. Timers are lws suls on the stream's context (cancelled
 * synchronously, so close is synchronous), as in bybit_stream.c. */
#include "ticker_stream.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exchange_internal.h"
#include "log.h"
#include "ws_client.h"

/* ===================================================================== parsers */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
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

static void copy_clean(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src);
    for (char *c = dst; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) *c = '?';
}

static bool symbol_ok(const char *s) {
    size_t l = s ? strlen(s) : 0;
    if (l == 0 || l >= MKT_SYMBOL_MAX) return false;
    for (size_t i = 0; i < l; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return false;
    return true;
}

/* A decimal field given as a string. 1 = set, 0 = absent (or "" when empty_absent), -EINVAL. */
static int get_dec(const json_t *o, const char *key, bool empty_absent, dec_t *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (!json_is_string(v)) return -EINVAL;
    if (empty_absent && json_string_length(v) == 0) return 0;
    dec_t d;
    if (dec_parse(json_string_value(v), json_string_length(v), &d) < 0 || dec_sign(d) < 0)
        return -EINVAL;
    *out = d;
    return 1;
}

/* An integer time, as a JSON integer or a decimal string. 1 / 0 absent / -EINVAL. */
static int get_time(const json_t *o, const char *key, int64_t *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*s && !*end && errno == 0) {
            *out = x;
            return 1;
        }
    }
    return -EINVAL;
}

static int get_symbol(const json_t *o, const char *key, const char *what, struct tk_event *ev,
                      char *err, size_t errlen) {
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) return fail(err, errlen, "%s: %s: missing or not a string", what, key);
    if (!symbol_ok(json_string_value(v)))
        return fail(err, errlen, "%s: %s: not a symbol", what, key);
    snprintf(ev->t.symbol, sizeof ev->t.symbol, "%s", json_string_value(v));
    return 0;
}

static int bn_payload(const json_t *d, struct tk_event *ev, char *err, size_t errlen) {
    const json_t *e = json_object_get(d, "e");
    const char *en = json_is_string(e) ? json_string_value(e) : NULL;
    int r;
    if (!json_is_object(d) || !en) return 0; /* not an event we know: TK_OTHER */
    if (!strcmp(en, "bookTicker")) {
        if (get_symbol(d, "s", en, ev, err, errlen) < 0) return -EINVAL;
        if ((r = get_dec(d, "b", false, &ev->t.bid)) <= 0)
            return fail(err, errlen, "bookTicker: b: %s", r ? "not a decimal" : "missing");
        if ((r = get_dec(d, "a", false, &ev->t.ask)) <= 0)
            return fail(err, errlen, "bookTicker: a: %s", r ? "not a decimal" : "missing");
        if (get_time(d, "E", &ev->t.time_ms) < 0) return fail(err, errlen, "bookTicker: E: not an integer");
        if (!ev->t.time_ms && get_time(d, "T", &ev->t.time_ms) < 0)
            return fail(err, errlen, "bookTicker: T: not an integer");
        ev->has = TK_HAS_BID | TK_HAS_ASK;
    } else if (!strcmp(en, "24hrTicker")) {
        if (get_symbol(d, "s", en, ev, err, errlen) < 0) return -EINVAL;
        if ((r = get_dec(d, "c", false, &ev->t.last)) <= 0)
            return fail(err, errlen, "24hrTicker: c: %s", r ? "not a decimal" : "missing");
        if (get_time(d, "E", &ev->t.time_ms) < 0) return fail(err, errlen, "24hrTicker: E: not an integer");
        ev->has = TK_HAS_LAST;
    } else {
        return 0;
    }
    ev->kind = TK_TICKER;
    return 0;
}

int tk_parse_binance(const char *frame, size_t len, struct tk_event *ev, char *err, size_t errlen) {
    json_error_t je;
    int r = 0;
    memset(ev, 0, sizeof *ev);
    ev->id = -1;
    json_t *root = json_loadb(frame ? frame : "", frame ? len : 0, 0, &je);
    if (!root) return fail(err, errlen, "invalid JSON: %s", je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return 0; /* e.g. !ticker@arr arrays: not subscribed by us */
    }
    const json_t *data = json_object_get(root, "data");
    if (json_object_get(root, "stream") && data) {
        r = bn_payload(data, ev, err, errlen);
    } else if (json_object_get(root, "id") && !json_object_get(root, "e")) {
        const json_t *id = json_object_get(root, "id"), *er = json_object_get(root, "error");
        ev->kind = TK_SUB_ACK;
        if (json_is_integer(id)) ev->id = json_integer_value(id);
        ev->success = !er || json_is_null(er);
        if (!ev->success) {
            const json_t *m = json_object_get(er, "msg");
            copy_clean(ev->msg, sizeof ev->msg, json_is_string(m) ? json_string_value(m) : "refused");
        }
    } else {
        r = bn_payload(root, ev, err, errlen);
    }
    json_decref(root);
    if (r < 0) ev->kind = TK_OTHER;
    return r;
}

int tk_parse_bybit(const char *frame, size_t len, struct tk_event *ev, char *err, size_t errlen) {
    json_error_t je;
    int r = 0;
    memset(ev, 0, sizeof *ev);
    ev->id = -1;
    json_t *root = json_loadb(frame ? frame : "", frame ? len : 0, 0, &je);
    if (!root) return fail(err, errlen, "invalid JSON: %s", je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, errlen, "not a JSON object");
    }
    const json_t *op = json_object_get(root, "op"), *topic = json_object_get(root, "topic");
    if (json_is_string(op)) {
        const char *o = json_string_value(op);
        const json_t *s = json_object_get(root, "success"), *m = json_object_get(root, "ret_msg");
        const char *msg = json_is_string(m) ? json_string_value(m) : "";
        if (!strcmp(o, "subscribe")) {
            if (!json_is_boolean(s)) {
                r = fail(err, errlen, "subscribe reply: success: missing or not a boolean");
                goto out;
            }
            ev->kind = TK_SUB_ACK;
            ev->success = json_is_true(s);
            copy_clean(ev->msg, sizeof ev->msg, msg);
        } else if (!strcmp(o, "pong") || (!strcmp(o, "ping") && !strcmp(msg, "pong"))) {
            ev->kind = TK_PONG;
        }
        goto out;
    }
    if (!json_is_string(topic) || strncmp(json_string_value(topic), "tickers.", 8) != 0)
        goto out; /* another topic: TK_OTHER */
    const json_t *type = json_object_get(root, "type"), *d = json_object_get(root, "data");
    const char *ty = json_is_string(type) ? json_string_value(type) : "";
    if (strcmp(ty, "snapshot") != 0 && strcmp(ty, "delta") != 0) {
        r = fail(err, errlen, "tickers: type: missing or not snapshot/delta");
        goto out;
    }
    if (!json_is_object(d)) {
        r = fail(err, errlen, "tickers: data: missing or not an object");
        goto out;
    }
    if ((r = get_symbol(d, "symbol", "tickers", ev, err, errlen)) < 0) goto out;
    if (strcmp(ev->t.symbol, json_string_value(topic) + 8) != 0) {
        r = fail(err, errlen, "tickers: data.symbol %s does not match the topic", ev->t.symbol);
        goto out;
    }
    static const struct {
        const char *key;
        unsigned bit;
        size_t off;
    } f[] = {
        {"lastPrice", TK_HAS_LAST, offsetof(struct exch_ticker_update, last)},
        {"bid1Price", TK_HAS_BID, offsetof(struct exch_ticker_update, bid)},
        {"ask1Price", TK_HAS_ASK, offsetof(struct exch_ticker_update, ask)},
    };
    for (size_t i = 0; i < 3; i++) {
        int g = get_dec(d, f[i].key, true, (dec_t *)((char *)&ev->t + f[i].off));
        if (g < 0) {
            r = fail(err, errlen, "tickers: data.%s: not a decimal", f[i].key);
            goto out;
        }
        if (g > 0) ev->has |= f[i].bit;
    }
    if (get_time(root, "ts", &ev->t.time_ms) < 0) {
        r = fail(err, errlen, "tickers: ts: not an integer");
        goto out;
    }
    ev->snapshot = ty[0] == 's';
    ev->kind = TK_TICKER;
out:
    json_decref(root);
    if (r < 0) ev->kind = TK_OTHER;
    return r;
}

void tk_merge(struct exch_ticker_update *st, unsigned *has, const struct tk_event *ev) {
    if (ev->kind != TK_TICKER) return;
    if (ev->snapshot) *has = 0;
    if (ev->has & TK_HAS_LAST) st->last = ev->t.last;
    if (ev->has & TK_HAS_BID) st->bid = ev->t.bid;
    if (ev->has & TK_HAS_ASK) st->ask = ev->t.ask;
    *has |= ev->has;
    if (ev->t.time_ms) st->time_ms = ev->t.time_ms;
    snprintf(st->symbol, sizeof st->symbol, "%s", ev->t.symbol);
}

int tk_mid(dec_t bid, dec_t ask, dec_t *out) {
    dec_t sum;
    int r = dec_add(bid, ask, &sum);
    if (r < 0) return r;
    return dec_mul(sum, (dec_t){5, 1}, out);
}

/* ws_url without trailing '/' into out; its length or -ENOSPC. */
static int base_of(const char *ws_url, char *out, size_t cap) {
    size_t l = strlen(ws_url);
    while (l > 0 && ws_url[l - 1] == '/') l--;
    if (l + 1 > cap) return -ENOSPC;
    memcpy(out, ws_url, l);
    out[l] = '\0';
    return (int)l;
}

static bool ends_with(const char *s, size_t l, const char *suf) {
    size_t n = strlen(suf);
    return l >= n && memcmp(s + l - n, suf, n) == 0;
}

int tk_binance_url(const char *ws_url, const char *const *symbols, size_t n, char *out, size_t cap) {
    if (!ws_url || !symbols || n == 0 || n > TK_MAX_SYMBOLS) return -EINVAL;
    int l = base_of(ws_url, out, cap);
    if (l < 0) return l;
    size_t pos = (size_t)l;
    bool routed = ends_with(out, pos, "/private");
    if (routed) pos -= strlen("/private");
    int w = snprintf(out + pos, cap - pos, "%s/stream?streams=", routed ? "/public" : "");
    if (w < 0 || (size_t)w >= cap - pos) return -ENOSPC;
    pos += (size_t)w;
    for (size_t i = 0; i < n; i++) {
        if (!symbol_ok(symbols[i])) return -EINVAL;
        size_t sl = strlen(symbols[i]);
        if (pos + sl + 13 >= cap) return -ENOSPC;
        if (i) out[pos++] = '/';
        for (size_t k = 0; k < sl; k++) out[pos++] = (char)tolower((unsigned char)symbols[i][k]);
        memcpy(out + pos, "@bookTicker", 11);
        pos += 11;
    }
    out[pos] = '\0';
    return (int)pos;
}

int tk_bybit_url(const char *ws_url, char *out, size_t cap) {
    if (!ws_url) return -EINVAL;
    int l = base_of(ws_url, out, cap);
    if (l < 0) return l;
    size_t pos = (size_t)l;
    if (ends_with(out, pos, "/v5/private")) pos -= strlen("/private");
    else if (!ends_with(out, pos, "/v5")) {
        if (pos + 4 > cap) return -ENOSPC;
        memcpy(out + pos, "/v5", 4);
        pos += 3;
    }
    int w = snprintf(out + pos, cap - pos, "/public/linear");
    if (w < 0 || (size_t)w >= cap - pos) return -ENOSPC;
    return (int)(pos + (size_t)w);
}

int tk_bybit_subscribe(const char *const *symbols, size_t n, char *out, size_t cap) {
    size_t pos;
    if (!symbols || n == 0 || n > TK_MAX_SYMBOLS) return -EINVAL;
    int w = snprintf(out, cap, "{\"op\":\"subscribe\",\"args\":[");
    if (w < 0 || (size_t)w >= cap) return -ENOSPC;
    pos = (size_t)w;
    for (size_t i = 0; i < n; i++) {
        if (!symbol_ok(symbols[i])) return -EINVAL;
        w = snprintf(out + pos, cap - pos, "%s\"tickers.%s\"", i ? "," : "", symbols[i]);
        if (w < 0 || (size_t)w >= cap - pos) return -ENOSPC;
        pos += (size_t)w;
    }
    if (pos + 3 > cap) return -ENOSPC;
    memcpy(out + pos, "]}", 3);
    return (int)(pos + 2);
}

/* ===================================================================== the stream */

struct tk_sym {
    struct exch_ticker_update st;
    unsigned has;
};

struct exch_ticker_stream {
    struct lws_context *ctx;
    enum exch_kind kind;
    struct exch_ticker_stream_cbs cbs;
    struct ws_client *ws;
    struct tk_sym *syms;
    char **names; /* the symbols as given, for Bybit's subscribe requests */
    size_t n;
    size_t acks_wanted, acks;
    uint32_t ping_ms, silence_ms;
    int64_t last_rx_ms; /* monotonic */
    int64_t open_ms;    /* monotonic, this connection's open */
    uint32_t fails;     /* consecutive refused subscriptions */
    uint64_t rng;
    bool refused;       /* this connection's subscription was refused: ignore it until retry */
    enum exch_stream_state st;
    lws_sorted_usec_list_t sul_ping, sul_retry;
    int in_cb;
};

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sched(struct exch_ticker_stream *s, lws_sorted_usec_list_t *sul, sul_cb_t cb, uint32_t ms) {
    lws_sul_schedule(s->ctx, 0, sul, cb, (lws_usec_t)ms * LWS_US_PER_MS);
    lws_cancel_service(s->ctx);
}

static void unsched(struct exch_ticker_stream *s, lws_sorted_usec_list_t *sul) {
    lws_sul_schedule(s->ctx, 0, sul, NULL, LWS_SET_TIMER_USEC_CANCEL);
}

static void set_state(struct exch_ticker_stream *s, enum exch_stream_state st, const char *why) {
    if (s->st == st) return;
    s->st = st;
    if (s->cbs.on_state) {
        s->in_cb++;
        s->cbs.on_state(s->cbs.ud, st, why ? why : "");
        s->in_cb--;
    }
}

static uint32_t retry_delay(struct exch_ticker_stream *s) {
    uint64_t d = 250;
    for (uint32_t i = 1; i < s->fails && d < 30000; i++) d *= 2;
    if (d > 30000) d = 30000;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (uint32_t)(d * (80 + s->rng % 41) / 100);
}

static void retry_cb(lws_sorted_usec_list_t *sul) {
    struct exch_ticker_stream *s = lws_container_of(sul, struct exch_ticker_stream, sul_retry);
    ws_client_reconnect_now(s->ws);
}

static void refuse(struct exch_ticker_stream *s, const char *why);

static void ping_cb(lws_sorted_usec_list_t *sul) {
    struct exch_ticker_stream *s = lws_container_of(sul, struct exch_ticker_stream, sul_ping);
    static const char ping[] = "{\"op\":\"ping\"}";
    if (!s->ws || !ws_client_is_open(s->ws) || s->refused) return;
    if (mono_ms() - s->last_rx_ms >= (int64_t)s->silence_ms) {
        char why[64];
        snprintf(why, sizeof why, "silent for %u ms", s->silence_ms);
        set_state(s, EXCH_STREAM_DOWN, why);
        ws_client_reconnect_now(s->ws);
        return;
    }
    if (s->acks < s->acks_wanted && mono_ms() - s->open_ms >= (int64_t)s->silence_ms) {
        refuse(s, "subscribe: no answer");
        return;
    }
    (void)ws_client_send_text(s->ws, ping, sizeof ping - 1);
    sched(s, &s->sul_ping, ping_cb, s->ping_ms);
}

static void ws_on_connecting(void *ud) {
    struct exch_ticker_stream *s = ud;
    set_state(s, EXCH_STREAM_CONNECTING, "connecting");
}

static void refuse(struct exch_ticker_stream *s, const char *why) {
    s->refused = true;
    s->fails++;
    unsched(s, &s->sul_ping);
    set_state(s, EXCH_STREAM_DOWN, why);
    sched(s, &s->sul_retry, retry_cb, retry_delay(s));
}

static void ws_on_open(void *ud) {
    struct exch_ticker_stream *s = ud;
    s->refused = false;
    s->open_ms = s->last_rx_ms = mono_ms();
    unsched(s, &s->sul_retry);
    /* A new connection: a symbol's state is complete again only after its new snapshot. */
    for (size_t i = 0; i < s->n; i++) s->syms[i].has = 0;
    if (s->kind == EXCH_BINANCE_USDM) { /* subscribed by the URL */
        set_state(s, EXCH_STREAM_UP, "connected");
        return;
    }
    char frame[TK_BYBIT_ARGS_PER_REQ * (MKT_SYMBOL_MAX + 12) + 64];
    s->acks = s->acks_wanted = 0;
    for (size_t i = 0; i < s->n; i += TK_BYBIT_ARGS_PER_REQ) {
        size_t k = s->n - i < TK_BYBIT_ARGS_PER_REQ ? s->n - i : TK_BYBIT_ARGS_PER_REQ;
        int l = tk_bybit_subscribe((const char *const *)s->names + i, k, frame, sizeof frame);
        if (l < 0 || ws_client_send_text(s->ws, frame, (size_t)l) < 0) {
            refuse(s, "subscribe: cannot send");
            return;
        }
        s->acks_wanted++;
    }
    set_state(s, EXCH_STREAM_CONNECTING, "subscribing");
    sched(s, &s->sul_ping, ping_cb, s->ping_ms);
}

static void ws_on_close(void *ud, const char *reason) {
    struct exch_ticker_stream *s = ud;
    unsched(s, &s->sul_ping);
    set_state(s, EXCH_STREAM_DOWN, reason);
}

static struct tk_sym *find_sym(struct exch_ticker_stream *s, const char *symbol) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->syms[i].st.symbol, symbol)) return &s->syms[i];
    return NULL;
}

static void ws_on_message(void *ud, const char *msg, size_t len) {
    struct exch_ticker_stream *s = ud;
    struct tk_event ev;
    char err[160];
    if (s->refused) return;
    s->last_rx_ms = mono_ms();
    int r = s->kind == EXCH_BINANCE_USDM ? tk_parse_binance(msg, len, &ev, err, sizeof err)
                                         : tk_parse_bybit(msg, len, &ev, err, sizeof err);
    if (r < 0) { /* reported; one bad frame does not stop the prices */
        if (s->cbs.on_bad_frame) {
            s->in_cb++;
            s->cbs.on_bad_frame(s->cbs.ud, err, msg, len);
            s->in_cb--;
        }
        return;
    }
    if (ev.kind == TK_SUB_ACK && s->kind == EXCH_BYBIT_LINEAR) {
        if (!ev.success) {
            char why[192];
            snprintf(why, sizeof why, "subscribe refused: %s", ev.msg[0] ? ev.msg : "(no reason)");
            refuse(s, why);
            return;
        }
        if (++s->acks == s->acks_wanted) {
            s->fails = 0;
            set_state(s, EXCH_STREAM_UP, "subscribed");
        }
        return;
    }
    if (ev.kind != TK_TICKER) return;
    struct tk_sym *y = find_sym(s, ev.t.symbol);
    if (!y) return;
    tk_merge(&y->st, &y->has, &ev);
    if (s->kind == EXCH_BINANCE_USDM && (y->has & (TK_HAS_BID | TK_HAS_ASK)) == (TK_HAS_BID | TK_HAS_ASK) &&
        tk_mid(y->st.bid, y->st.ask, &y->st.last) == 0)
        y->has |= TK_HAS_LAST;
    if ((y->has & TK_HAS_ALL) != TK_HAS_ALL) return;
    s->in_cb++;
    s->cbs.on_ticker(s->cbs.ud, &y->st);
    s->in_cb--;
}

struct exch_ticker_stream *exch_ticker_stream_open(struct exch_account *a, struct lws_context *ctx,
                                                   const char *const *symbols, size_t n,
                                                   const struct exch_ticker_stream_cbs *cbs) {
    char *url = NULL;
    int r;
    if (!a || !ctx || !cbs || !cbs->on_ticker || !symbols || n == 0 || n > TK_MAX_SYMBOLS ||
        !exch_account_ws_url(a)) {
        errno = EINVAL;
        return NULL;
    }
    size_t cap = 64 + strlen(exch_account_ws_url(a)) + n * (MKT_SYMBOL_MAX + 12);
    enum exch_kind kind = exch_account_kind(a);
    if (kind != EXCH_BINANCE_USDM && kind != EXCH_BYBIT_LINEAR) {
        errno = ENOTSUP;
        return NULL;
    }
    struct exch_ticker_stream *s = calloc(1, sizeof *s);
    if (!s || !(url = malloc(cap))) goto nomem;
    s->ctx = ctx;
    s->kind = kind;
    s->cbs = *cbs;
    s->n = n;
    s->syms = calloc(n, sizeof *s->syms);
    s->names = calloc(n, sizeof *s->names);
    if (!s->syms || !s->names) goto nomem;
    for (size_t i = 0; i < n; i++) {
        if (!symbol_ok(symbols[i])) {
            errno = EINVAL;
            goto fail;
        }
        if (!(s->names[i] = strdup(symbols[i]))) goto nomem;
        snprintf(s->syms[i].st.symbol, sizeof s->syms[i].st.symbol, "%s", symbols[i]);
    }
    r = kind == EXCH_BINANCE_USDM ? tk_binance_url(exch_account_ws_url(a), symbols, n, url, cap)
                                  : tk_bybit_url(exch_account_ws_url(a), url, cap);
    if (r < 0 || ws_client_check_url(url) < 0) {
        errno = r == -ENOSPC ? ENOMEM : EINVAL;
        goto fail;
    }
    s->ping_ms = exch_account_stream_ping_ms(a) > 0 ? (uint32_t)exch_account_stream_ping_ms(a) : 20000;
    s->silence_ms = exch_account_stream_silence_ms(a) > 0 ? (uint32_t)exch_account_stream_silence_ms(a)
                                                          : 3 * s->ping_ms;
    if (s->silence_ms <= s->ping_ms) s->silence_ms = 2 * s->ping_ms;
    if (lws_get_random(ctx, &s->rng, sizeof s->rng) != sizeof s->rng || !s->rng)
        s->rng = (uint64_t)(uintptr_t)s ^ 0x9E3779B97F4A7C15ULL;
    s->st = EXCH_STREAM_CONNECTING;
    uint32_t ps = s->ping_ms / 1000, ss = s->silence_ms / 1000;
    struct ws_client_opts o = {
        .url = url,
        .ping_secs = (uint16_t)(ps < 1 ? 1 : ps > 3600 ? 3600 : ps),
        .silence_secs = (uint16_t)(ss < 2 ? 2 : ss > 36000 ? 36000 : ss),
        .on_connecting = ws_on_connecting,
        .on_open = ws_on_open,
        .on_message = ws_on_message,
        .on_close = ws_on_close,
        .ud = s,
    };
    if (o.silence_secs <= o.ping_secs) o.silence_secs = (uint16_t)(o.ping_secs + 1);
    if (!(s->ws = ws_client_new(ctx, &o))) goto fail;
    free(url);
    return s;
nomem:
    errno = ENOMEM;
fail:
    r = errno;
    free(url);
    exch_ticker_stream_close(s);
    errno = r;
    return NULL;
}

struct exch_ticker_stream *exch_ticker_stream_close(struct exch_ticker_stream *s) {
    if (!s) return NULL;
    ct_assert(s->in_cb == 0); /* not from inside the stream's own callbacks */
    if (s->ctx) {
        unsched(s, &s->sul_ping);
        unsched(s, &s->sul_retry);
    }
    s->ws = ws_client_free(s->ws);
    for (size_t i = 0; s->names && i < s->n; i++) free(s->names[i]);
    free(s->names);
    free(s->syms);
    free(s);
    return NULL;
}

enum exch_stream_state exch_ticker_stream_state(const struct exch_ticker_stream *s) {
    return s ? s->st : EXCH_STREAM_DOWN;
}
