/* Integration tests for exchange/ws_client and the Binance user stream on top of it
 * (exchange/binance_stream): an in-process lws websocket server vhost and the clients share ONE
 * libuv loop and ONE lws context (foreign loop, explicit vhosts, as in the daemon), on a random
 * loopback port. Needs no PostgreSQL or Redis. Every wait drives the loop until a condition holds
 * or a deadline fails the test; every test ends with the verified teardown (EVENT-LOOP.md 1):
 * lws_context_destroy, uv_run, lws_context_destroy again, uv_loop_close == 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "binance_stream.h"
#include "ws_client.h"

#include "loop_wait.h"

/* ======================================================================= environment */

struct env {
    uv_loop_t loop;
    uv_timer_t tick;
    struct lws_context *ctx;
    struct lws_vhost *srv_vh;
    int port;
};

static struct env E;
static struct ws_client *TC[16]; /* made by the running test */
static struct exch_stream *TS[8];

static int64_t now_ms(void) { return lw_now_ms(&E.loop); }

static void tick_cb(uv_timer_t *t) {
    (void)t; /* only wakes uv_run(ONCE) so that deadlines are checked */
}

/* Drive the loop until cond holds; fail the test at the deadline. */
#define RUN_UNTIL(cond, ms) LW_RUN_UNTIL(&E.loop, cond, ms)

/* Keep the loop running for ms (for "nothing bad happens meanwhile" checks). */
static void run_for(int ms) { lw_run_for(&E.loop, ms); }

/* ---- the server side ---- */

struct srv_frame {
    unsigned char *buf; /* LWS_PRE + payload */
    size_t len;
    int flags;
};

static struct srv {
    struct lws *cur;
    int established, closed, rejected, received;
    bool echo, silent, reject;
    int peer_close_code;
    bool saw_protocol_header;
    char path[256];
    char rx_log[8192]; /* received messages, '|'-separated */
    struct srv_frame q[64];
    int q_head, q_tail;
} S;

static void srv_q_clear(void) {
    while (S.q_head != S.q_tail) {
        free(S.q[S.q_head].buf);
        S.q_head = (S.q_head + 1) % 64;
    }
    S.q_head = S.q_tail = 0;
}

static void srv_send(const void *data, size_t len, int flags) {
    struct srv_frame *f = &S.q[S.q_tail];
    assert_non_null(S.cur);
    assert_int_not_equal((S.q_tail + 1) % 64, S.q_head);
    f->buf = malloc(LWS_PRE + len + 1);
    assert_non_null(f->buf);
    memcpy(f->buf + LWS_PRE, data, len);
    f->len = len;
    f->flags = flags;
    S.q_tail = (S.q_tail + 1) % 64;
    lws_callback_on_writable(S.cur);
}

static void srv_send_text(const char *s) {
    srv_send(s, strlen(s), LWS_WRITE_TEXT);
}

/* A polite close with 1001 "bye". Not lws_close_reason + return -1 from a callback: this
 * _DEBUG lws build then sends no close frame at all (see ws_client.c). */
static void srv_close(void) {
    unsigned char bye[] = "bye";
    assert_non_null(S.cur);
    lws_close_reason(S.cur, LWS_CLOSE_STATUS_GOINGAWAY, bye, 3);
    lws_close_free_wsi(S.cur, LWS_CLOSE_STATUS_GOINGAWAY, "test");
}

static int srv_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len) {
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (S.reject) {
            S.rejected++;
            return 1;
        }
        break;
    case LWS_CALLBACK_ESTABLISHED:
        S.cur = wsi;
        S.established++;
        srv_q_clear();
        S.path[0] = '\0';
        lws_hdr_copy(wsi, S.path, sizeof(S.path), WSI_TOKEN_GET_URI);
        if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > 0) S.saw_protocol_header = true;
        if (S.silent) lws_rx_flow_control(wsi, 0); /* reads nothing: our PINGs go unanswered */
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (wsi != S.cur) return 0;
        S.received++;
        if (strlen(S.rx_log) + len + 2 < sizeof(S.rx_log)) {
            strncat(S.rx_log, in, len);
            strcat(S.rx_log, "|");
        }
        if (S.echo) srv_send(in, len, LWS_WRITE_TEXT);
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (wsi != S.cur) return 0;
        if (S.q_head != S.q_tail) {
            struct srv_frame *f = &S.q[S.q_head];
            int n = lws_write(wsi, f->buf + LWS_PRE, f->len, (enum lws_write_protocol)f->flags);
            free(f->buf);
            S.q_head = (S.q_head + 1) % 64;
            if (n < (int)f->len) return -1;
            if (S.q_head != S.q_tail) lws_callback_on_writable(wsi);
        }
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (in && len >= 2)
            S.peer_close_code = ((unsigned char *)in)[0] << 8 | ((unsigned char *)in)[1];
        return 0;
    case LWS_CALLBACK_CLOSED:
        S.closed++;
        if (S.cur == wsi) {
            S.cur = NULL;
            srv_q_clear();
        }
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols srv_protocols[] = {
    {"test-srv", srv_cb, 0, 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static char tls_dir[64], tls_cert[128], tls_key[128];

static void srv_start(int port, bool tls) {
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = srv_protocols;
    info.vhost_name = "test-srv";
    info.keepalive_timeout = 60;
    if (tls) {
        info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = tls_cert;
        info.ssl_private_key_filepath = tls_key;
    }
    E.srv_vh = lws_create_vhost(E.ctx, &info);
    assert_non_null(E.srv_vh);
    E.port = lws_get_vhost_listen_port(E.srv_vh);
    assert_true(E.port > 0);
}

static int env_setup(void **state) {
    struct lws_context_creation_info info;
    void *loops[1];

    (void)state;
    memset(&E, 0, sizeof(E));
    memset(&S, 0, sizeof(S));
    assert_int_equal(uv_loop_init(&E.loop), 0);
    assert_int_equal(uv_timer_init(&E.loop, &E.tick), 0);
    assert_int_equal(uv_timer_start(&E.tick, tick_cb, 5, 5), 0);

    lws_set_log_level(LLL_ERR, NULL);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    loops[0] = &E.loop;
    info.foreign_loops = loops;
    info.pcontext = &E.ctx;
    info.port = CONTEXT_PORT_NO_LISTEN;
    E.ctx = lws_create_context(&info);
    assert_non_null(E.ctx);
    return 0;
}

static void close_and_count(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h) && h == (uv_handle_t *)&E.tick) uv_close(h, NULL);
}

static int env_teardown(void **state) {
    (void)state;
    for (int i = 0; i < 8; i++) TS[i] = TS[i] ? exch_stream_close(TS[i]) : NULL;
    for (int i = 0; i < 16; i++) TC[i] = TC[i] ? ws_client_free(TC[i]) : NULL;
    srv_q_clear();
    /* 1. async close of every wsi and of lws' uv handles; 2. drain; 3. free; 4. loop close */
    lws_context_destroy(E.ctx);
    uv_walk(&E.loop, close_and_count, NULL);
    while (uv_run(&E.loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_non_null(E.ctx); /* still allocated until the second destroy */
    lws_context_destroy(E.ctx);
    assert_null(E.ctx); /* pcontext: really freed */
    uv_run(&E.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&E.loop), 0);
    return 0;
}

/* ---- clients and streams made by a test; teardown frees what a failed test left ---- */

static struct ws_client *tc_new(const struct ws_client_opts *o) {
    struct ws_client *c = ws_client_new(E.ctx, o);
    for (int i = 0; c && i < 16; i++)
        if (!TC[i]) {
            TC[i] = c;
            return c;
        }
    if (c) fail_msg("too many clients");
    return c;
}

static struct ws_client *tc_free(struct ws_client *c) {
    for (int i = 0; i < 16; i++)
        if (TC[i] == c) TC[i] = NULL;
    return ws_client_free(c);
}

static struct exch_stream *ts_open(const struct bn_stream_cfg *cfg,
                                   const struct exch_stream_cbs *cbs) {
    struct exch_stream *s = bn_stream_open(cfg, E.ctx, cbs);
    for (int i = 0; s && i < 8; i++)
        if (!TS[i]) {
            TS[i] = s;
            return s;
        }
    if (s) fail_msg("too many streams");
    return s;
}

static struct exch_stream *ts_close(struct exch_stream *s) {
    for (int i = 0; i < 8; i++)
        if (TS[i] == s) TS[i] = NULL;
    return exch_stream_close(s);
}

/* ---- client callbacks ---- */

struct cli {
    int connecting, opens, closes, msgs;
    char last_close[200];
    char last_msg[256];
    size_t last_len;
    char *big; /* a copy of the last message over 256 bytes */
    size_t big_len;
    int64_t t_open[16], t_close[16];
};

static struct cli C;

static void c_connecting(void *ud) {
    struct cli *c = ud;
    c->connecting++;
}
static void c_open(void *ud) {
    struct cli *c = ud;
    if (c->opens < 16) c->t_open[c->opens] = now_ms();
    c->opens++;
}
static void c_message(void *ud, const char *msg, size_t len) {
    struct cli *c = ud;
    c->msgs++;
    c->last_len = len;
    assert_int_equal(msg[len], '\0');
    if (len < sizeof(c->last_msg)) {
        memcpy(c->last_msg, msg, len + 1);
    } else {
        free(c->big);
        c->big = malloc(len);
        assert_non_null(c->big);
        memcpy(c->big, msg, len);
        c->big_len = len;
        c->last_msg[0] = '\0';
    }
}
static void c_close(void *ud, const char *reason) {
    struct cli *c = ud;
    if (c->closes < 16) c->t_close[c->closes] = now_ms();
    c->closes++;
    snprintf(c->last_close, sizeof(c->last_close), "%s", reason);
}

static struct ws_client_opts copts(const char *url) {
    struct ws_client_opts o = {
        .url = url,
        .on_connecting = c_connecting,
        .on_open = c_open,
        .on_message = c_message,
        .on_close = c_close,
        .ud = &C,
    };
    return o;
}

static void cli_reset(void) {
    free(C.big);
    memset(&C, 0, sizeof(C));
}

/* ======================================================================= ws_client tests */

static void test_urls(void **state) {
    (void)state;
    assert_int_equal(ws_client_check_url("ws://127.0.0.1:18080"), 0);
    assert_int_equal(ws_client_check_url("wss://fstream.binance.com/private/ws/abc"), 0);
    assert_int_equal(ws_client_check_url("WSS://host?x=1"), 0);
    assert_int_equal(ws_client_check_url("ws://[::1]:9000/p"), 0);
    assert_int_equal(ws_client_check_url("http://host/"), -EINVAL);
    assert_int_equal(ws_client_check_url("ws://"), -EINVAL);
    assert_int_equal(ws_client_check_url("ws://:80/"), -EINVAL);
    assert_int_equal(ws_client_check_url("ws://host:0/"), -EINVAL);
    assert_int_equal(ws_client_check_url("ws://host:65536/"), -EINVAL);
    assert_int_equal(ws_client_check_url("ws://host:12a/"), -EINVAL);
    assert_int_equal(ws_client_check_url("ws://user@host/"), -EINVAL);
    assert_int_equal(ws_client_check_url("ws://host/a b"), -EINVAL);
    assert_int_equal(ws_client_check_url("ws://host/#frag"), -EINVAL);
    assert_int_equal(ws_client_check_url(NULL), -EINVAL);

    {
        struct ws_client_opts o = copts("ws://127.0.0.1:1/");
        o.ping_secs = 5;
        o.silence_secs = 5; /* must exceed ping */
        errno = 0;
        assert_null(tc_new(&o));
        assert_int_equal(errno, EINVAL);
        o = copts("tcp://x");
        assert_null(tc_new(&o));
        assert_int_equal(errno, EINVAL);
    }
    assert_null(ws_client_free(NULL));
}

static void test_echo_fragments_and_queue(void **state) {
    (void)state;
    char url[128];
    struct ws_client *c;

    cli_reset();
    srv_start(0, false);
    S.echo = true;
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/some/path?x=1", E.port);
    struct ws_client_opts o = copts(url);
    c = tc_new(&o);
    assert_non_null(c);
    assert_int_equal(ws_client_send_text(c, "early", 5), -ENOTCONN);
    RUN_UNTIL(C.opens == 1 && S.cur != NULL, 5000);
    assert_true(ws_client_is_open(c));
    assert_int_equal(C.connecting, 1);
    assert_string_equal(S.path, "/some/path");
    assert_false(S.saw_protocol_header); /* no Sec-WebSocket-Protocol */

    /* 50 messages queued at once: one lws_write per WRITEABLE, order kept, all echoed */
    for (int i = 0; i < 50; i++) {
        char m[32];
        snprintf(m, sizeof(m), "m%02d", i);
        assert_int_equal(ws_client_send_text(c, m, strlen(m)), 0);
    }
    RUN_UNTIL(C.msgs == 50, 5000);
    assert_string_equal(C.last_msg, "m49");
    assert_int_equal(S.received, 50);
    assert_memory_equal(S.rx_log, "m00|m01|m02|", 12);
    S.echo = false;

    /* a message in three frames: one on_message */
    srv_send("frag-A ", 7, LWS_WRITE_TEXT | LWS_WRITE_NO_FIN);
    srv_send("frag-B ", 7, LWS_WRITE_CONTINUATION | LWS_WRITE_NO_FIN);
    srv_send("frag-C", 6, LWS_WRITE_CONTINUATION);
    RUN_UNTIL(C.msgs == 51, 5000);
    assert_string_equal(C.last_msg, "frag-A frag-B frag-C");
    assert_int_equal(C.last_len, 20);

    /* 150 KB in three 50 KB frames (each bigger than lws' rx chunk): reassembled exactly */
    {
        size_t part = 50000;
        char *big = malloc(3 * part);
        assert_non_null(big);
        for (size_t i = 0; i < 3 * part; i++) big[i] = (char)('a' + (i * 7) % 26);
        srv_send(big, part, LWS_WRITE_TEXT | LWS_WRITE_NO_FIN);
        srv_send(big + part, part, LWS_WRITE_CONTINUATION | LWS_WRITE_NO_FIN);
        srv_send(big + 2 * part, part, LWS_WRITE_CONTINUATION);
        RUN_UNTIL(C.msgs == 52, 5000);
        assert_int_equal(C.big_len, 3 * part);
        assert_memory_equal(C.big, big, 3 * part);
        free(big);
    }

    struct ws_client_stats st = ws_client_stats(c);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.messages, 52);
    assert_int_equal(st.sent, 50);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.bytes, 50 * 3 + 20 + 150000);

    /* freed while open: the server gets a normal close (1000) */
    c = tc_free(c);
    RUN_UNTIL(S.closed == 1, 5000);
    assert_int_equal(S.peer_close_code, 1000);
    assert_int_equal(C.closes, 0); /* no callback after free */
    cli_reset();
}

static void test_server_close_backoff(void **state) {
    (void)state;
    char url[128];
    struct ws_client *c;

    cli_reset();
    srv_start(0, false);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", E.port);
    struct ws_client_opts o = copts(url);
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.opens == 1 && S.cur, 5000);

    srv_close();
    RUN_UNTIL(C.closes == 1, 5000);
    assert_non_null(strstr(C.last_close, "peer closed: 1001"));
    assert_non_null(strstr(C.last_close, "bye"));
    assert_false(ws_client_is_open(c));
    RUN_UNTIL(C.opens == 2 && S.cur, 5000);
    /* first retry: 250 ms -20 % at least */
    assert_true(C.t_open[1] - C.t_close[0] >= 195);

    /* closed again before it was stable: the delay doubles (500 ms -20 %) */
    srv_close();
    RUN_UNTIL(C.opens == 3, 5000);
    assert_true(C.t_open[2] - C.t_close[1] >= 395);
    assert_int_equal(C.connecting, 3);

    struct ws_client_stats st = ws_client_stats(c);
    assert_int_equal(st.connects, 3);
    assert_int_equal(st.reconnects, 2);
    assert_int_equal(st.failures, 0);
    tc_free(c);
    cli_reset();
}

static void free_cb(uv_handle_t *h) {
    free(h);
}

static int free_port(void) {
    uv_tcp_t *t = malloc(sizeof(*t));
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int n = sizeof(ss), port;

    assert_non_null(t);
    assert_int_equal(uv_tcp_init(&E.loop, t), 0);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(t, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &n), 0);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)t, free_cb);
    return port;
}

static void test_refused_then_server_up(void **state) {
    (void)state;
    char url[128];
    int port = free_port();
    struct ws_client *c;

    cli_reset();
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", port);
    struct ws_client_opts o = copts(url);
    o.backoff_min_ms = 100;
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.closes >= 3, 10000);
    assert_int_equal(C.opens, 0);
    assert_non_null(strstr(C.last_close, "connect failed"));
    /* 100, 200, 400 ms (-20 %): at least 560 ms from the first failure to the fourth attempt */
    srv_start(port, false);
    RUN_UNTIL(C.opens == 1, 10000);
    assert_true(C.t_open[0] - C.t_close[0] >= 80 + 160 + 320);
    struct ws_client_stats st = ws_client_stats(c);
    assert_true(st.failures >= 3);
    assert_int_equal(st.connects, 1);
    tc_free(c);
    cli_reset();
}

static void test_silent_server_is_dropped(void **state) {
    (void)state;
    char url[128];
    struct ws_client *c;

    cli_reset();
    srv_start(0, false);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", E.port);
    struct ws_client_opts o = copts(url);
    o.ping_secs = 1;
    o.silence_secs = 2;

    /* control: a server that answers PINGs keeps the link for longer than the silence bound */
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.opens == 1, 5000);
    run_for(3500);
    assert_int_equal(C.closes, 0);
    assert_true(ws_client_stats(c).pongs >= 2);
    c = tc_free(c);
    RUN_UNTIL(S.closed == 1, 5000);

    /* accepts, then reads nothing: no PONG, the client hangs up after the bound and retries */
    cli_reset();
    S.silent = true;
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.opens == 1, 5000);
    S.silent = false;
    RUN_UNTIL(C.closes == 1, 10000);
    assert_true(C.t_close[0] - C.t_open[0] >= 1900);
    assert_non_null(strstr(C.last_close, "silent link: no PONG"));
    assert_int_equal(ws_client_stats(c).pongs, 0);
    RUN_UNTIL(C.opens == 2, 5000);
    tc_free(c);
    cli_reset();
}

static void test_oversized_message(void **state) {
    (void)state;
    char url[128];
    struct ws_client *c;
    static char big[20000];

    cli_reset();
    memset(big, 'x', sizeof(big));
    srv_start(0, false);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", E.port);
    struct ws_client_opts o = copts(url);
    o.max_message = 16384;
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.opens == 1 && S.cur, 5000);

    srv_send(big, 16384, LWS_WRITE_TEXT); /* exactly the bound: fine */
    RUN_UNTIL(C.msgs == 1, 5000);
    assert_int_equal(C.big_len, 16384);

    /* small enough that the server's write is complete when our close frame arrives (a
     * server still sending drops the close handshake and just closes) */
    srv_send(big, sizeof(big), LWS_WRITE_TEXT);
    RUN_UNTIL(C.closes == 1, 5000);
    assert_non_null(strstr(C.last_close, "message too large"));
    assert_int_equal(C.msgs, 1);
    RUN_UNTIL(S.closed == 1, 5000);
    assert_int_equal(S.peer_close_code, 1009); /* a real close frame with "too big" */
    RUN_UNTIL(C.opens == 2, 5000);
    tc_free(c);
    cli_reset();
}

struct later {
    uv_timer_t t;
    struct ws_client *c;
    int what; /* 0 reconnect_now, 1 free */
};

static void later_cb(uv_timer_t *t) {
    struct later *l = t->data;
    if (l->what == 0)
        ws_client_reconnect_now(l->c);
    else
        tc_free(l->c);
    uv_close((uv_handle_t *)t, free_cb);
}

/* Runs fn from a plain uv timer: outside any lws callback, as a REST callback would. */
static void from_uv(struct ws_client *c, int what) {
    struct later *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->c = c;
    l->what = what;
    l->t.data = l;
    uv_timer_init(&E.loop, &l->t);
    uv_timer_start(&l->t, later_cb, 1, 0);
}

static void test_set_url_reconnect_now(void **state) {
    (void)state;
    char url[128];
    struct ws_client *c;
    int port = free_port();

    cli_reset();
    /* nothing listens yet; a long backoff parks the client in its wait */
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/a", port);
    struct ws_client_opts o = copts(url);
    o.backoff_min_ms = 60000;
    o.backoff_max_ms = 60000;
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.closes == 1, 5000);
    srv_start(port, false);

    /* reconnect_now from outside lws ends the 48..72 s wait at once (the lws timer kick) */
    from_uv(c, 0);
    RUN_UNTIL(C.opens == 1 && S.cur, 5000);
    assert_string_equal(S.path, "/a");

    /* new URL: used by the next connection only */
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/b?k=2", port);
    assert_int_equal(ws_client_set_url(c, url), 0);
    assert_int_equal(ws_client_set_url(c, "bogus"), -EINVAL);
    run_for(100);
    assert_int_equal(S.established, 1);
    from_uv(c, 0);
    RUN_UNTIL(C.opens == 2 && S.established == 2 && S.cur, 5000);
    assert_string_equal(S.path, "/b");
    assert_non_null(strstr(C.last_close, "reconnect requested"));
    assert_int_equal(S.peer_close_code, 1000);

    /* and from inside a callback-free moment while open, then free from uv */
    from_uv(c, 1);
    RUN_UNTIL(S.closed == 2, 5000);
    assert_int_equal(C.closes, 2);
    cli_reset();
}

static void test_handshake_rejected(void **state) {
    (void)state;
    char url[128];
    struct ws_client *c;

    cli_reset();
    srv_start(0, false);
    S.reject = true;
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", E.port);
    struct ws_client_opts o = copts(url);
    o.backoff_min_ms = 50;
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.closes >= 2, 5000);
    assert_int_equal(C.opens, 0);
    assert_non_null(strstr(C.last_close, "connect failed"));
    S.reject = false;
    RUN_UNTIL(C.opens == 1, 5000);
    tc_free(c);
    cli_reset();
}

static void make_cert(void) {
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;

    assert_non_null(pk);
    assert_non_null(x);
    snprintf(tls_dir, sizeof(tls_dir), "/tmp/ct-wstest-XXXXXX");
    assert_non_null(mkdtemp(tls_dir));
    snprintf(tls_cert, sizeof(tls_cert), "%s/cert.pem", tls_dir);
    snprintf(tls_key, sizeof(tls_key), "%s/key.pem", tls_dir);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    f = fopen(tls_cert, "w");
    assert_non_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(tls_key, "w");
    assert_non_null(f);
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static void test_tls_self_signed(void **state) {
    (void)state;
    char url[128];
    struct ws_client *c;

    cli_reset();
    make_cert();
    srv_start(0, true);
    S.echo = true;
    snprintf(url, sizeof(url), "wss://127.0.0.1:%d/tls", E.port);

    /* verified by default: a self-signed server is refused */
    struct ws_client_opts o = copts(url);
    o.backoff_min_ms = 50;
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.closes >= 2, 5000);
    assert_int_equal(C.opens, 0);
    assert_int_equal(S.established, 0);
    c = tc_free(c);

    /* insecure_tls (simulator only): accepted, and it carries messages */
    cli_reset();
    o.insecure_tls = true;
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(C.opens == 1 && S.cur, 5000);
    assert_string_equal(S.path, "/tls");
    assert_int_equal(ws_client_send_text(c, "over tls", 8), 0);
    RUN_UNTIL(C.msgs == 1, 5000);
    assert_string_equal(C.last_msg, "over tls");
    tc_free(c);
    cli_reset();
    unlink(tls_cert);
    unlink(tls_key);
    rmdir(tls_dir);
}

/* A TCP server that accepts and never answers: the client stays in its handshake. */
static struct raw_srv {
    uv_tcp_t listener;
    uv_tcp_t *conns[8];
    int accepted, eofs;
} R;

static void raw_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
    static char buf[4096];
    (void)h;
    (void)sz;
    *b = uv_buf_init(buf, sizeof(buf));
}

static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    (void)b;
    if (n < 0) {
        R.eofs++;
        uv_read_stop(st);
    }
}

static void raw_conn(uv_stream_t *l, int status) {
    uv_tcp_t *t;
    assert_int_equal(status, 0);
    assert_true(R.accepted < 8);
    t = malloc(sizeof(*t));
    assert_non_null(t);
    uv_tcp_init(&E.loop, t);
    assert_int_equal(uv_accept(l, (uv_stream_t *)t), 0);
    uv_read_start((uv_stream_t *)t, raw_alloc, raw_read); /* reads the upgrade, answers nothing */
    R.conns[R.accepted++] = t;
}

static int raw_start(void) {
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int n = sizeof(ss);
    memset(&R, 0, sizeof(R));
    uv_tcp_init(&E.loop, &R.listener);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&R.listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&R.listener, 8, raw_conn), 0);
    assert_int_equal(uv_tcp_getsockname(&R.listener, (struct sockaddr *)&ss, &n), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void raw_stop(void) {
    for (int i = 0; i < R.accepted; i++) uv_close((uv_handle_t *)R.conns[i], free_cb);
    uv_close((uv_handle_t *)&R.listener, NULL);
}

static void test_free_while_connecting(void **state) {
    (void)state;
    char url[128];
    struct ws_client *c;
    int port = raw_start();

    cli_reset();
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", port);
    struct ws_client_opts o = copts(url);
    c = tc_new(&o);
    assert_non_null(c);
    RUN_UNTIL(R.accepted == 1, 5000); /* connected, waiting for the upgrade reply */
    assert_int_equal(C.connecting, 1);
    assert_false(ws_client_is_open(c));
    tc_free(c);
    RUN_UNTIL(R.eofs == 1, 5000); /* the socket really closed */
    assert_int_equal(C.opens, 0);
    assert_int_equal(C.closes, 0); /* and no callback after free */

    /* one freed before its first attempt even started */
    c = tc_new(&o);
    assert_non_null(c);
    tc_free(c);
    run_for(200);
    assert_int_equal(C.connecting, 1);
    assert_int_equal(R.accepted, 1);
    raw_stop();
    cli_reset();
}

/* ======================================================================= user stream */

struct fake_call {
    uv_timer_t t;
    exch_listen_key_cb cb;
    void *ud;
    bool ok;
    int error_code;
    char key[BN_LISTEN_KEY_MAX];
};

static struct fake {
    int creates, keepalives, removes;
    int create_fail;    /* fail this many creates first */
    int keepalive_code; /* 0 ok, -1125, or 1 = transport failure */
    int next_key;
    bool hold_create;
    struct fake_call *held;
    char kept_key[BN_LISTEN_KEY_MAX], removed_key[BN_LISTEN_KEY_MAX];
} F;

static void fake_fire(uv_timer_t *t) {
    struct fake_call *fc = t->data;
    struct exch_status st;

    memset(&st, 0, sizeof(st));
    if (!fc->ok) {
        st.err = -EIO;
        st.error_code = fc->error_code;
        st.http_status = fc->error_code ? 400 : 0;
        snprintf(st.error_msg, sizeof(st.error_msg), "%s",
                 fc->error_code == -1125 ? "This listenKey does not exist." : "connection refused");
    }
    fc->cb(fc->ud, &st, fc->ok ? fc->key : NULL);
    uv_close((uv_handle_t *)t, free_cb);
}

static struct fake_call *fake_new(exch_listen_key_cb cb, void *ud) {
    struct fake_call *fc = calloc(1, sizeof(*fc));
    assert_non_null(fc);
    fc->cb = cb;
    fc->ud = ud;
    fc->t.data = fc;
    uv_timer_init(&E.loop, &fc->t);
    return fc;
}

static int fake_create(void *kud, exch_listen_key_cb cb, void *ud) {
    struct fake_call *fc = fake_new(cb, ud);
    (void)kud;
    F.creates++;
    if (F.create_fail > 0) {
        F.create_fail--;
        fc->ok = false;
        fc->error_code = 0;
    } else {
        fc->ok = true;
        snprintf(fc->key, sizeof(fc->key), "KEY%d", ++F.next_key);
    }
    if (F.hold_create) {
        F.held = fc;
        return 0;
    }
    uv_timer_start(&fc->t, fake_fire, 1, 0);
    return 0;
}

static int fake_keepalive(void *kud, const char *k, exch_listen_key_cb cb, void *ud) {
    struct fake_call *fc = fake_new(cb, ud);
    (void)kud;
    F.keepalives++;
    snprintf(F.kept_key, sizeof(F.kept_key), "%s", k);
    fc->ok = F.keepalive_code == 0;
    fc->error_code = F.keepalive_code == -1125 ? -1125 : 0;
    snprintf(fc->key, sizeof(fc->key), "%s", k);
    F.keepalive_code = 0; /* one bad answer, then good ones */
    uv_timer_start(&fc->t, fake_fire, 1, 0);
    return 0;
}

static int fake_remove(void *kud, const char *k, exch_listen_key_cb cb, void *ud) {
    struct fake_call *fc = fake_new(cb, ud);
    (void)kud;
    F.removes++;
    snprintf(F.removed_key, sizeof(F.removed_key), "%s", k);
    fc->ok = true;
    snprintf(fc->key, sizeof(fc->key), "%s", k);
    uv_timer_start(&fc->t, fake_fire, 1, 0);
    return 0;
}

static const struct bn_key_ops fake_ops = {fake_create, fake_keepalive, fake_remove};

static struct scb {
    int fills, positions, bad, ups, downs, connectings, leverages;
    char lev_symbol[32];
    int lev;
    enum exch_stream_state last;
    char last_reason[200];
    struct mkt_fill fill;
    struct mkt_position pos;
    char bad_why[200];
    size_t bad_len;
    char states[512]; /* "C" "U" "D" sequence */
} B;

static void s_fill(void *ud, const struct mkt_fill *f) {
    (void)ud;
    B.fills++;
    B.fill = *f;
}
static void s_position(void *ud, const struct mkt_position *p) {
    (void)ud;
    B.positions++;
    B.pos = *p;
}
static void s_state(void *ud, enum exch_stream_state st, const char *reason) {
    (void)ud;
    B.last = st;
    snprintf(B.last_reason, sizeof(B.last_reason), "%s", reason);
    if (st == EXCH_STREAM_UP) B.ups++;
    if (st == EXCH_STREAM_DOWN) B.downs++;
    if (st == EXCH_STREAM_CONNECTING) B.connectings++;
    if (strlen(B.states) < sizeof(B.states) - 1)
        strcat(B.states, st == EXCH_STREAM_UP ? "U" : st == EXCH_STREAM_DOWN ? "D" : "C");
}
static void s_bad(void *ud, const char *why, const char *frame, size_t len) {
    (void)ud;
    (void)frame;
    B.bad++;
    snprintf(B.bad_why, sizeof(B.bad_why), "%s", why);
    B.bad_len = len;
}

static void s_leverage(void *ud, const char *symbol, int leverage) {
    (void)ud;
    B.leverages++;
    snprintf(B.lev_symbol, sizeof(B.lev_symbol), "%s", symbol);
    B.lev = leverage;
}

static const struct exch_stream_cbs scbs = {s_fill, s_position, s_state, s_bad, NULL, s_leverage};

static struct bn_stream_cfg scfg(const char *ws_url) {
    struct bn_stream_cfg cfg = {
        .account = "leader1",
        .ws_url = ws_url,
        .key_ops = &fake_ops,
        .key_ud = NULL,
        .key_retry_min_ms = 50,
        .key_retry_max_ms = 200,
        .ws_backoff_min_ms = 50,
        .ws_backoff_max_ms = 200,
    };
    return cfg;
}

static char *sample(const char *name) {
    char path[1024];
    FILE *f;
    long n;
    char *buf;
    snprintf(path, sizeof(path), "%s/samples/%s", CT_TEST_DATA, name);
    f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

static const char TRADE_FRAME[] =
    "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1700000000123,\"T\":1700000000120,\"o\":{\"s\":"
    "\"ETHUSDT\","
    "\"c\":\"leaderorder1\",\"S\":\"BUY\",\"o\":\"MARKET\",\"f\":\"GTC\",\"q\":\"1.500\",\"p\":"
    "\"0\","
    "\"ap\":\"2000.10\",\"sp\":\"0\",\"x\":\"TRADE\",\"X\":\"PARTIALLY_FILLED\",\"i\":42,\"l\":\"0."
    "250\","
    "\"z\":\"0.250\",\"L\":\"2000.10\",\"T\":1700000000120,\"t\":777,\"R\":false,\"ps\":\"BOTH\"}}";

static void reset_stream_fakes(void) {
    memset(&F, 0, sizeof(F));
    memset(&B, 0, sizeof(B));
}

static void test_stream_lifecycle(void **state) {
    (void)state;
    char base[128];
    struct exch_stream *s;

    reset_stream_fakes();
    srv_start(0, false);
    snprintf(base, sizeof(base), "ws://127.0.0.1:%d/", E.port); /* trailing '/' is dropped */
    struct bn_stream_cfg cfg = scfg(base);
    cfg.keepalive_ms = 400;
    cfg.keepalive_retry_ms = 100;
    s = ts_open(&cfg, &scbs);
    assert_non_null(s);
    assert_int_equal(exch_stream_state(s), EXCH_STREAM_CONNECTING);
    RUN_UNTIL(B.ups == 1 && S.cur, 5000);
    assert_int_equal(exch_stream_state(s), EXCH_STREAM_UP);
    assert_string_equal(S.path, "/ws/KEY1");
    assert_int_equal(F.creates, 1);

    /* a fill */
    srv_send_text(TRADE_FRAME);
    RUN_UNTIL(B.fills == 1, 5000);
    assert_string_equal(B.fill.account, "leader1");
    assert_string_equal(B.fill.symbol, "ETHUSDT");
    assert_string_equal(B.fill.trade_id, "777");
    assert_string_equal(B.fill.order_id, "42");
    assert_int_equal(B.fill.side, MKT_BUY);
    assert_true(B.fill.received_ns > 0);
    {
        char q[DEC_STR_MAX];
        dec_format(B.fill.qty, q, sizeof(q));
        assert_string_equal(q, "0.25");
        dec_format(B.fill.price, q, sizeof(q));
        assert_string_equal(q, "2000.1");
    }

    /* NEW order: nothing; junk: on_bad_frame with the frame; ACCOUNT_UPDATE: every leg (BOTH,
     * LONG, SHORT), the last one SHORT */
    {
        char *doc = sample("binance_order_trade_update.json");
        srv_send_text(doc);
        free(doc);
        srv_send_text(
            "{\"e\":\"ORDER_TRADE_UPDATE\",\"E\":1,\"o\":{\"x\":\"TRADE\",\"X\":\"FILLED\"}}");
        doc = sample("binance_account_update.cleaned.json");
        srv_send_text(doc);
        free(doc);
    }
    RUN_UNTIL(B.positions == 3, 5000);
    assert_int_equal(B.fills, 1);
    assert_int_equal(B.bad, 1);
    assert_non_null(strstr(B.bad_why, "ORDER_TRADE_UPDATE: o.s: missing"));
    assert_string_equal(B.pos.symbol, "BTCUSDT");
    assert_int_equal(B.pos.pos_side, MKT_PS_SHORT);

    /* ACCOUNT_CONFIG_UPDATE: a leader leverage change */
    {
        char *doc = sample("binance_account_config_update_leverage.json");
        srv_send_text(doc);
        free(doc);
    }
    RUN_UNTIL(B.leverages == 1, 5000);
    assert_string_equal(B.lev_symbol, "BTCUSDT");
    assert_int_equal(B.lev, 25);

    /* keepalives run on the period with the current key */
    RUN_UNTIL(F.keepalives >= 2, 5000);
    assert_string_equal(F.kept_key, "KEY1");
    assert_int_equal(exch_stream_state(s), EXCH_STREAM_UP);

    /* listenKeyExpired for an old key: ignored; for ours: new key, reconnect with it */
    srv_send_text("{\"e\":\"listenKeyExpired\",\"E\":1,\"listenKey\":\"KEY0\"}");
    srv_send_text("{\"e\":\"listenKeyExpired\",\"E\":1,\"listenKey\":\"KEY1\"}");
    RUN_UNTIL(B.downs == 1, 5000);
    assert_string_equal(B.last_reason, "listenKey expired");
    RUN_UNTIL(B.ups == 2 && S.cur && !strcmp(S.path, "/ws/KEY2"), 5000);
    assert_int_equal(F.creates, 2);
    assert_int_equal(bn_stream_stats(s).key_lost, 1);

    /* keepalive answers -1125: the same */
    F.keepalive_code = -1125;
    RUN_UNTIL(B.ups == 3 && S.cur && !strcmp(S.path, "/ws/KEY3"), 5000);
    assert_int_equal(bn_stream_stats(s).key_lost, 2);
    assert_int_equal(F.creates, 3);

    /* a failed keepalive (transport) keeps the key and retries */
    F.keepalive_code = 1;
    {
        int k = F.keepalives;
        RUN_UNTIL(F.keepalives >= k + 2, 5000);
    }
    assert_int_equal(F.creates, 3);
    assert_int_equal(exch_stream_state(s), EXCH_STREAM_UP);

    /* fills still flow after all that */
    srv_send_text(TRADE_FRAME);
    RUN_UNTIL(B.fills == 2, 5000);

    /* the sequence of states: connect, up, key expired, reconnect, up, ... */
    assert_int_equal(strncmp(B.states, "UDCUDCU", 7), 0);

    s = ts_close(s);
    assert_int_equal(F.removes, 1);
    assert_string_equal(F.removed_key, "KEY3");
    RUN_UNTIL(S.closed >= 3 && !S.cur, 5000);
    run_for(50); /* let the fake DELETE answer into the void */
}

static void test_stream_create_retry_and_rotation(void **state) {
    (void)state;
    char base[128];
    struct exch_stream *s;

    reset_stream_fakes();
    srv_start(0, false);
    snprintf(base, sizeof(base), "ws://127.0.0.1:%d", E.port);
    struct bn_stream_cfg cfg = scfg(base);
    cfg.rotate_ms = 700;
    F.create_fail = 2;
    s = ts_open(&cfg, &scbs);
    assert_non_null(s);
    RUN_UNTIL(B.ups == 1, 5000);
    assert_int_equal(F.creates, 3);
    assert_int_equal(strncmp(B.states, "DCDCU", 5), 0);
    assert_string_equal(S.path, "/ws/KEY1");

    /* the connection is renewed before the exchange's cut (24 h; here 0.7 s), same key */
    RUN_UNTIL(bn_stream_stats(s).rotations >= 1 && B.ups >= 2, 5000);
    assert_string_equal(S.path, "/ws/KEY1");
    assert_int_equal(F.creates, 3);
    {
        struct ws_client_stats ws;
        bn_stream_ws_stats(s, &ws);
        assert_true(ws.connects >= 2);
    }
    ts_close(s);
    assert_int_equal(F.removes, 1);
    run_for(50);
}

static void test_stream_probe_after_refusals(void **state) {
    (void)state;
    char base[128];
    struct exch_stream *s;

    reset_stream_fakes();
    srv_start(0, false);
    snprintf(base, sizeof(base), "ws://127.0.0.1:%d", E.port);
    struct bn_stream_cfg cfg = scfg(base);
    S.reject = true;          /* e.g. the key died while we were away */
    F.keepalive_code = -1125; /* and the PUT says so */
    s = ts_open(&cfg, &scbs);
    assert_non_null(s);
    RUN_UNTIL(F.keepalives >= 1 && F.creates >= 2, 5000);
    S.reject = false;
    RUN_UNTIL(B.ups == 1, 5000);
    assert_string_equal(S.path, "/ws/KEY2");
    assert_true(S.rejected >= 3);
    ts_close(s);
    run_for(50);
}

static void test_stream_close_while_creating(void **state) {
    (void)state;
    char base[128];
    struct exch_stream *s;

    reset_stream_fakes();
    snprintf(base, sizeof(base), "ws://127.0.0.1:%d", 9);
    struct bn_stream_cfg cfg = scfg(base);
    F.hold_create = true;
    s = ts_open(&cfg, &scbs);
    assert_non_null(s);
    assert_non_null(F.held);
    ts_close(s);
    assert_int_equal(F.removes, 0); /* no key yet, nothing to delete */
    /* the answer arrives after the close: must be harmless (ASan watches) */
    uv_timer_start(&F.held->t, fake_fire, 1, 0);
    run_for(50);
    assert_int_equal(B.ups + B.downs + B.connectings, 0);

    /* bad configurations */
    cfg = scfg("http://x");
    errno = 0;
    assert_null(ts_open(&cfg, &scbs));
    assert_int_equal(errno, EINVAL);
    cfg = scfg("ws://127.0.0.1:1/?a=b");
    assert_null(ts_open(&cfg, &scbs));
    assert_null(exch_stream_close(NULL));
    assert_int_equal(exch_stream_state(NULL), EXCH_STREAM_DOWN);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_urls, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_echo_fragments_and_queue, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_server_close_backoff, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_refused_then_server_up, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_silent_server_is_dropped, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_oversized_message, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_set_url_reconnect_now, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_rejected, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_self_signed, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_free_while_connecting, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_stream_lifecycle, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_stream_create_retry_and_rotation, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_stream_probe_after_refusals, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_stream_close_while_creating, env_setup, env_teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
