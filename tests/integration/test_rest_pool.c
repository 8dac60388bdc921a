/* rest_pool and the Binance adapter against an in-process HTTP/1.1 server on the same libuv loop
 * (uv_tcp on a random loopback port). Needs no PostgreSQL or Redis.
 *
 * - 1,000 requests, 32 in flight: every callback exactly once with its own body; connections
 *   opened <= 32 (keep-alive reuse).
 * - closed port -> connect error, maybe_sent false; silent server -> timeout, maybe_sent true.
 * - an idle connection the server closed: the loop does not spin on it (its parked poll stops)
 *   and the next request goes out on a new connection.
 * - a reused connection closed without a response: curl re-sends an ordinary request on its own,
 *   but a no_resend request fails with -EPIPE and reaches the server once.
 * - Retry-After / X-MBX-* headers, body size limit, cancellation by rest_pool_free (also from
 *   inside a callback), and the adapter end to end (signature checked by the server), including
 *   the copy engine's account calls: account equity, tickers, position mode, leverage (fetch and
 *   set), hedge-mode positions and a positionSide order. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "binance_sign.h"
#include "exchange.h"
#include "exchange_internal.h"
#include "http_stub.h"
#include "loop_until.h"
#include "rest_pool.h"

#define SECRET "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
#define APIKEY "dbefbc809e3e83c283a984c3a1459732ea7db1360ca80c5c2c8867408d28cc83"
#define SERVER_SKEW_MS 1234

/* ---- the server (testutil/http_stub) and what it answers ---- */

struct srv {
    struct http_stub *http;
    int port;
    int drop_requests; /* requests to /drop seen */
    int order_requests;
    int bad_signatures;
    char last_order_body[2048];
    char last_leverage_body[512];
    bool hedge; /* positionRisk answers the v2 hedge sample, positionSide/dual true */
};

/* Every answer carries the weight header, as Binance's do. */
static void reply(struct http_stub_conn *c, int status, const char *extra_headers, const char *body,
                  size_t blen) {
    char h[512];
    snprintf(h, sizeof h, "Content-Type: application/json\r\nX-MBX-USED-WEIGHT-1M: 17\r\n%s",
             extra_headers ? extra_headers : "");
    http_stub_reply(c, status, h, body, blen);
}

static void reply_str(struct http_stub_conn *c, int status, const char *extra, const char *body) {
    reply(c, status, extra, body, strlen(body));
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Checks the Binance signature over params (query string or body) like the exchange would. */
static bool signed_ok(struct srv *s, const struct http_stub_req *r, const char *params, size_t plen) {
    size_t vl;
    const char *k = http_stub_header(r, "X-MBX-APIKEY", &vl);
    if (!k || vl != strlen(APIKEY) || memcmp(k, APIKEY, vl) != 0) return false;
    const char *sig = NULL;
    for (size_t i = 0; i + 11 <= plen; i++)
        if (memcmp(params + i, "&signature=", 11) == 0) sig = params + i;
    if (!sig) return false;
    const char *ts = strstr(params, "timestamp=");
    if (!ts || ts > sig) return false;
    int64_t t = strtoll(ts + 10, NULL, 10);
    /* the client must have applied the measured offset: within 1 s of our skewed clock */
    if (llabs(t - (now_ms() + SERVER_SKEW_MS)) > 1000) return false;
    bool ok = binance_sign_verify(SECRET, strlen(SECRET), params, (size_t)(sig - params), sig + 11,
                                  (size_t)(params + plen - sig - 11));
    if (!ok) s->bad_signatures++;
    return ok;
}

static char *slurp(const char *name, size_t *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/samples/%s", CT_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void on_request(void *ud, struct http_stub_conn *c, const struct http_stub_req *r) {
    struct srv *s = ud;
    if (!r->method) {
        http_stub_close(c);
        return;
    }
    const char *method = r->method, *target = r->target, *body = r->body;
    size_t blen = r->body_len;
    char path[256], query[1024] = "";
    const char *q = strchr(target, '?');
    snprintf(path, sizeof path, "%.*s", (int)(q ? (size_t)(q - target) : strlen(target)), target);
    if (q) snprintf(query, sizeof query, "%s", q + 1);

    if (strncmp(path, "/echo/", 6) == 0) {
        char b[300];
        snprintf(b, sizeof b, "resp-%s", path + 6);
        reply_str(c, 200, NULL, b);
    } else if (strcmp(path, "/silent") == 0) {
        /* never answers */
    } else if (strcmp(path, "/reply-close") == 0) {
        /* a keep-alive answer, then the server closes the connection: it idles closed in curl's
         * cache (the client saw no "Connection: close") */
        reply_str(c, 200, NULL, "closing");
        http_stub_close(c);
    } else if (strcmp(path, "/drop") == 0) {
        s->drop_requests++;
        if (r->conn_requests >= 2) { /* a reused connection: close it without a response byte */
            http_stub_close(c);
            return;
        }
        reply_str(c, 200, NULL, "first");
    } else if (strcmp(path, "/ratelimit") == 0) {
        reply_str(c, 429, "Retry-After: 3\r\nX-MBX-ORDER-COUNT-10S: 5\r\nX-MBX-ORDER-COUNT-1M: 17\r\n",
                  "{\"code\":-1003,\"msg\":\"Too many requests\"}");
    } else if (strcmp(path, "/big") == 0) {
        size_t n = 2u << 20;
        char *b = malloc(n);
        memset(b, 'x', n);
        reply(c, 200, NULL, b, n);
        free(b);
    } else if (strcmp(path, "/method") == 0) {
        char b[256];
        snprintf(b, sizeof b, "%s %zu %.*s", method, blen, (int)blen, body);
        reply_str(c, 200, NULL, b);
    } else if (strcmp(path, "/fapi/v1/time") == 0) {
        char b[64];
        snprintf(b, sizeof b, "{\"serverTime\":%" PRId64 "}", now_ms() + SERVER_SKEW_MS);
        reply_str(c, 200, NULL, b);
    } else if (strcmp(path, "/fapi/v1/order") == 0 && strcmp(method, "POST") == 0) {
        size_t vl;
        const char *ct = http_stub_header(r, "Content-Type", &vl);
        s->order_requests++;
        snprintf(s->last_order_body, sizeof s->last_order_body, "%.*s", (int)blen, body);
        if (!ct || strncmp(ct, "application/x-www-form-urlencoded", vl) != 0 || q ||
            !signed_ok(s, r, body, blen)) {
            reply_str(c, 400, NULL, "{\"code\":-1022,\"msg\":\"Signature for this request is not valid.\"}");
            return;
        }
        char cid[64], qty[64];
        http_stub_param(s->last_order_body, "newClientOrderId", cid, sizeof cid);
        http_stub_param(s->last_order_body, "quantity", qty, sizeof qty);
        if (strcmp(cid, "ct503") == 0) {
            reply_str(c, 503, NULL, "{\"code\":-1000,\"msg\":\"Unknown error, please check your request or try again later.\"}");
            return;
        }
        char b[512];
        snprintf(b, sizeof b,
                 "{\"orderId\":77,\"clientOrderId\":\"%s\",\"status\":\"FILLED\",\"executedQty\":\"%s\","
                 "\"avgPrice\":\"65000.5\",\"updateTime\":1700000000000}",
                 cid, qty);
        reply_str(c, 200, "X-MBX-ORDER-COUNT-10S: 1\r\nX-MBX-ORDER-COUNT-1M: 9\r\n", b);
    } else if (strcmp(path, "/fapi/v1/order") == 0 && strcmp(method, "GET") == 0) {
        if (!signed_ok(s, r, query, strlen(query)) || blen) {
            reply_str(c, 400, NULL, "{\"code\":-1022,\"msg\":\"bad signature\"}");
            return;
        }
        reply_str(c, 400, NULL, "{\"code\":-2013,\"msg\":\"Order does not exist.\"}");
    } else if (strcmp(path, "/fapi/v1/exchangeInfo") == 0) {
        size_t n;
        char *b = slurp("binance_exchangeinfo.cleaned.json", &n);
        reply(c, 200, NULL, b, n);
        free(b);
    } else if (strcmp(path, "/fapi/v2/positionRisk") == 0) {
        if (!signed_ok(s, r, query, strlen(query))) {
            reply_str(c, 400, NULL, "{\"code\":-1022,\"msg\":\"bad signature\"}");
            return;
        }
        size_t n;
        char *b = slurp(s->hedge ? "binance_position_risk_v2_hedge.json"
                                 : "binance_position_risk_v3_oneway.json", &n);
        reply(c, 200, NULL, b, n);
        free(b);
    } else if (strcmp(path, "/fapi/v3/account") == 0 || strcmp(path, "/fapi/v1/positionSide/dual") == 0) {
        if (!signed_ok(s, r, query, strlen(query)) || blen || strcmp(method, "GET") != 0) {
            reply_str(c, 400, NULL, "{\"code\":-1022,\"msg\":\"bad signature\"}");
            return;
        }
        if (strcmp(path, "/fapi/v3/account") == 0) {
            size_t n;
            char *b = slurp("binance_account_v3_single_asset.cleaned.json", &n);
            reply(c, 200, NULL, b, n);
            free(b);
        } else {
            reply_str(c, 200, NULL, s->hedge ? "{\"dualSidePosition\":true}" : "{\"dualSidePosition\":false}");
        }
    } else if (strcmp(path, "/fapi/v2/ticker/price") == 0) {
        size_t vl;
        /* public: no key, no signature */
        if (q || http_stub_header(r, "X-MBX-APIKEY", &vl)) {
            reply_str(c, 400, NULL, "{\"code\":-1,\"msg\":\"unexpected parameters or key\"}");
            return;
        }
        size_t n;
        char *b = slurp("binance_ticker_price_v2_all.json", &n);
        reply(c, 200, NULL, b, n);
        free(b);
    } else if (strcmp(path, "/fapi/v1/leverage") == 0 && strcmp(method, "POST") == 0) {
        snprintf(s->last_leverage_body, sizeof s->last_leverage_body, "%.*s", (int)blen, body);
        if (q || !signed_ok(s, r, body, blen)) {
            reply_str(c, 400, NULL, "{\"code\":-1022,\"msg\":\"Signature for this request is not valid.\"}");
            return;
        }
        char sym[64], lev[16], b[256];
        http_stub_param(s->last_leverage_body, "symbol", sym, sizeof sym);
        http_stub_param(s->last_leverage_body, "leverage", lev, sizeof lev);
        if (strcmp(lev, "99") == 0) {
            reply_str(c, 400, NULL, "{\"code\":-4028,\"msg\":\"Leverage 99 is not valid\"}");
            return;
        }
        snprintf(b, sizeof b, "{\"leverage\":%s,\"maxNotionalValue\":\"1000000\",\"symbol\":\"%s\"}", lev,
                 strcmp(lev, "7") == 0 ? "ETHUSDT" : sym); /* 7: a wrong symbol in the answer */
        reply_str(c, 200, NULL, b);
    } else if (strcmp(path, "/fapi/v1/listenKey") == 0) {
        size_t vl;
        if (!http_stub_header(r, "X-MBX-APIKEY", &vl) || strstr(query, "signature") || blen) {
            reply_str(c, 400, NULL, "{\"code\":-2014,\"msg\":\"API-key format invalid.\"}");
        } else if (strcmp(method, "POST") == 0) {
            reply_str(c, 200, NULL, "{\"listenKey\":\"pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61\"}");
        } else if (strcmp(method, "PUT") == 0) {
            reply_str(c, 200, NULL, "{}"); /* pre-2024 keep-alive answer */
        } else {
            reply_str(c, 200, NULL, "{}");
        }
    } else {
        reply_str(c, 404, NULL, "{\"code\":-1,\"msg\":\"no route\"}");
    }
}

static void srv_start(struct srv *s, uv_loop_t *loop) {
    memset(s, 0, sizeof *s);
    s->http = http_stub_new(loop, on_request, s);
    s->port = http_stub_port(s->http);
}

static void srv_stop(struct srv *s) {
    s->http = http_stub_free(s->http);
}

/* ---- loop helpers ---- */

/* Every wait fails after 20 s: a hang is a failure, not a wait. */
#define RUN_UNTIL(loop, done, want) LU_RUN_UNTIL((loop), (done), (want), 20000)

static void teardown_loop(uv_loop_t *loop, struct rest_pool *p, struct srv *s) {
    rest_pool_free(p);
    if (s) srv_stop(s);
    while (uv_run(loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(loop), 0); /* every handle closed and freed */
}

static void url(char *out, size_t n, int port, const char *path) {
    snprintf(out, n, "http://127.0.0.1:%d%s", port, path);
}

/* ---- 1,000 requests, 32 in flight ---- */

#define TOTAL 1000
#define WINDOW 32

struct many {
    uv_loop_t *loop;
    struct rest_pool *p;
    int port;
    int sent, done;
    int calls[TOTAL];
    int bad;
};

static void many_send(struct many *m);

struct many_req {
    struct many *m;
    int id;
};

static void many_cb(void *ud, const struct rest_resp *r) {
    struct many_req *q = ud;
    struct many *m = q->m;
    char want[32];
    snprintf(want, sizeof want, "resp-%d", q->id);
    m->calls[q->id]++;
    if (r->err != 0 || r->http_status != 200 || strcmp(r->body, want) != 0 ||
        r->body_len != strlen(want) || r->used_weight_1m != 17 || r->retry_after_ms != -1)
        m->bad++;
    m->done++;
    free(q);
    many_send(m);
}

static void many_send(struct many *m) {
    while (m->sent < TOTAL && m->sent - m->done < WINDOW) {
        struct many_req *q = malloc(sizeof *q);
        q->m = m;
        q->id = m->sent;
        char path[32], u[128];
        snprintf(path, sizeof path, "/echo/%d", q->id);
        url(u, sizeof u, m->port, path);
        struct rest_req req = {.method = REST_GET, .url = u};
        assert_int_equal(rest_pool_send(m->p, &req, many_cb, q), 0);
        m->sent++;
    }
}

static void test_thousand_requests_keepalive(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool_opts o = {.max_host_connections = WINDOW, .max_connects = WINDOW};
    struct many *m = calloc(1, sizeof *m);
    m->loop = &loop;
    m->p = rest_pool_new(&loop, &o);
    assert_non_null(m->p);
    m->port = s.port;
    many_send(m);
    RUN_UNTIL(&loop, &m->done, TOTAL);
    for (int i = 0; i < TOTAL; i++)
        if (m->calls[i] != 1) fail_msg("request %d: %d callbacks", i, m->calls[i]);
    assert_int_equal(m->bad, 0);
    struct rest_pool_stats st;
    rest_pool_get_stats(m->p, &st);
    assert_int_equal(st.requests, TOTAL);
    assert_int_equal(st.completed, TOTAL);
    assert_int_equal(st.transport_errors, 0);
    assert_int_equal(st.in_flight, 0);
    assert_true(st.connections_opened >= 1);
    assert_true(st.connections_opened <= WINDOW);
    assert_true(http_stub_accepted(s.http) <= WINDOW);
    assert_int_equal(http_stub_requests(s.http), TOTAL);
    print_message("1000 requests: %" PRIu64 " connections opened, server accepted %d, idle handles %u\n",
                  st.connections_opened, http_stub_accepted(s.http), st.idle_handles);
    teardown_loop(&loop, m->p, &s);
    free(m);
}

/* ---- single-request scenarios ---- */

struct one {
    int calls;
    int err;
    bool maybe_sent;
    long status;
    char body[256];
    char error[256];
    int64_t retry_after, weight, oc10, oc1m;
    int64_t ttfb;
};

static int one_total; /* callbacks of one_cb, all requests */

static void one_cb(void *ud, const struct rest_resp *r) {
    struct one *o = ud;
    o->calls++;
    one_total++;
    o->err = r->err;
    o->maybe_sent = r->maybe_sent;
    o->status = r->http_status;
    snprintf(o->body, sizeof o->body, "%s", r->body);
    snprintf(o->error, sizeof o->error, "%s", r->error);
    o->retry_after = r->retry_after_ms;
    o->weight = r->used_weight_1m;
    o->oc10 = r->order_count_10s;
    o->oc1m = r->order_count_1m;
    o->ttfb = r->ttfb_us;
}

static void test_closed_port_and_timeout(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool *p = rest_pool_new(&loop, NULL);

    /* a port nobody listens on: bind, read the port, close */
    uv_tcp_t tmp;
    struct sockaddr_in a, got;
    int len = sizeof got;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &tmp);
    uv_tcp_bind(&tmp, (const struct sockaddr *)&a, 0);
    uv_tcp_getsockname(&tmp, (struct sockaddr *)&got, &len);
    int closed_port = ntohs(got.sin_port);
    uv_close((uv_handle_t *)&tmp, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);

    struct one refused = {0}, slow = {0};
    char u[128];
    url(u, sizeof u, closed_port, "/x");
    struct rest_req req = {.method = REST_POST, .url = u, .body = "a=1", .body_len = 3,
                           .no_resend = true};
    assert_int_equal(rest_pool_send(p, &req, one_cb, &refused), 0);
    assert_int_equal(refused.calls, 0); /* never from inside send */
    url(u, sizeof u, s.port, "/silent");
    struct rest_req req2 = {.method = REST_GET, .url = u, .timeout_ms = 300};
    assert_int_equal(rest_pool_send(p, &req2, one_cb, &slow), 0);

    one_total = 0;
    RUN_UNTIL(&loop, &one_total, 2);
    assert_int_equal(refused.calls, 1);
    assert_int_equal(refused.err, -ECONNREFUSED);
    assert_false(refused.maybe_sent);
    assert_int_equal(refused.status, 0);
    assert_non_null(strstr(refused.error, "onnect"));
    assert_int_equal(slow.calls, 1);
    assert_int_equal(slow.err, -ETIMEDOUT);
    assert_true(slow.maybe_sent);
    assert_int_equal(slow.status, 0);
    assert_int_equal(http_stub_requests(s.http), 1);

    /* invalid requests are refused synchronously and never call back */
    struct rest_req bad = {.method = REST_GET, .url = u, .body = "x", .body_len = 1};
    assert_int_equal(rest_pool_send(p, &bad, one_cb, &slow), -EINVAL);
    const char *evil[] = {"X-A: 1\r\nX-B: 2", NULL};
    struct rest_req bad2 = {.method = REST_GET, .url = u, .headers = evil};
    assert_int_equal(rest_pool_send(p, &bad2, one_cb, &slow), -EINVAL);
    assert_int_equal(rest_pool_send(p, &req2, NULL, NULL), -EINVAL);
    assert_int_equal(slow.calls, 1);
    teardown_loop(&loop, p, &s);
}

static void on_tick(uv_timer_t *t) { *(int *)t->data = 1; }

/* A loop, the server on it and a pool of one connection to it (so each request reuses it). */
static struct rest_pool *one_connection_pool(uv_loop_t *loop, struct srv *s) {
    assert_int_equal(uv_loop_init(loop), 0);
    srv_start(s, loop);
    struct rest_pool_opts o = {.max_host_connections = 1};
    struct rest_pool *p = rest_pool_new(loop, &o);
    assert_non_null(p);
    return p;
}

/* The pool keeps polling an idle connection for reading (no epoll_ctl per request); once the
 * server closes it, it is readable for good: the pool must stop polling it, not wake the loop on
 * every iteration until it is reused. */
static void test_idle_connection_closed_by_server(void **state) {
    (void)state;
    uv_loop_t loop;
    struct srv s;
    struct rest_pool *p = one_connection_pool(&loop, &s);
    char u[128];
    url(u, sizeof u, s.port, "/reply-close");
    struct rest_req req = {.method = REST_GET, .url = u};
    struct one a = {0};
    assert_int_equal(rest_pool_send(p, &req, one_cb, &a), 0);
    RUN_UNTIL(&loop, &a.calls, 1);
    assert_int_equal(a.err, 0);
    assert_string_equal(a.body, "closing");

    /* 200 ms of an otherwise idle loop: a handful of iterations (the timer, the close), not one
     * per readable wake-up of a poll nobody answers. */
    uv_timer_t t;
    int fired = 0, iterations = 0;
    uv_timer_init(&loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_tick, 200, 0);
    while (!fired && iterations < 100000) {
        uv_run(&loop, UV_RUN_ONCE);
        iterations++;
    }
    uv_close((uv_handle_t *)&t, NULL);
    print_message("idle loop iterations over 200 ms: %d\n", iterations);
    assert_true(fired);
    assert_true(iterations < 50);

    /* The dead connection is found at reuse: the next request still gets its answer. */
    url(u, sizeof u, s.port, "/echo/again");
    struct one b = {0};
    assert_int_equal(rest_pool_send(p, &req, one_cb, &b), 0);
    RUN_UNTIL(&loop, &b.calls, 1);
    assert_int_equal(b.err, 0);
    assert_string_equal(b.body, "resp-again");
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.connections_opened, 2);
    assert_int_equal(http_stub_accepted(s.http), 2);
    teardown_loop(&loop, p, &s);
}

/* A raw server socket, outside the loop: what the pool has written is visible without running it. */
static bool readable(int fd) {
    struct pollfd q = {.fd = fd, .events = POLLIN};
    return poll(&q, 1, 0) == 1;
}

/* Runs the loop until fd is readable (a connection to accept, or request bytes). */
static void wait_readable(uv_loop_t *loop, int fd) {
    for (int i = 0; i < 20000 && !readable(fd); i++) uv_run(loop, UV_RUN_NOWAIT);
    assert_true(readable(fd));
}

static void read_request(uv_loop_t *loop, int fd) {
    char buf[4096];
    wait_readable(loop, fd);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\r\n\r\n")); /* the whole request (no body) */
}

static void answer(int fd, const char *body) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    assert_int_equal(write(fd, buf, (size_t)n), n);
}

/* A request on an idle keep-alive connection is written before rest_pool_send returns (curl is
 * driven at hand-off, not from its 0 ms timer a loop turn later), and its callback still comes
 * later, from the loop. */
static void test_written_before_send_returns(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    char u[128];
    url(u, sizeof u, ntohs(a.sin_port), "/x");
    struct rest_pool_opts o = {.max_host_connections = 1};
    struct rest_pool *p = rest_pool_new(&loop, &o);
    assert_non_null(p);
    struct rest_req req = {.method = REST_GET, .url = u};

    /* The first request connects (that needs the loop). */
    struct one r1 = {0};
    assert_int_equal(rest_pool_send(p, &req, one_cb, &r1), 0);
    wait_readable(&loop, l);
    int c = accept(l, NULL, NULL);
    assert_true(c >= 0);
    read_request(&loop, c);
    answer(c, "one");
    RUN_UNTIL(&loop, &r1.calls, 1);
    assert_string_equal(r1.body, "one");

    /* The second reuses it: on the server's socket before the call returns, answered later. */
    struct one r2 = {0};
    assert_false(readable(c));
    assert_int_equal(rest_pool_send(p, &req, one_cb, &r2), 0);
    assert_true(readable(c));
    assert_int_equal(r2.calls, 0);
    read_request(&loop, c);
    answer(c, "two");
    RUN_UNTIL(&loop, &r2.calls, 1);
    assert_int_equal(r2.err, 0);
    assert_string_equal(r2.body, "two");
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.connections_opened, 1);

    close(c);
    close(l);
    teardown_loop(&loop, p, NULL);
}

static void test_no_resend_on_dead_reused_connection(void **state) {
    (void)state;
    uv_loop_t loop;
    struct srv s;
    struct rest_pool *p = one_connection_pool(&loop, &s);
    char u[128];
    url(u, sizeof u, s.port, "/drop");
    struct rest_req req = {.method = REST_POST, .url = u, .body = "x=1", .body_len = 3};

    /* 1: first request on a fresh connection -> answered */
    struct one a = {0};
    assert_int_equal(rest_pool_send(p, &req, one_cb, &a), 0);
    RUN_UNTIL(&loop, &a.calls, 1);
    assert_int_equal(a.err, 0);
    assert_string_equal(a.body, "first");

    /* 2: ordinary request on the reused connection; the server drops it without a byte and
     *    curl re-sends on a fresh connection by itself: the server sees it twice. */
    struct one b = {0};
    assert_int_equal(rest_pool_send(p, &req, one_cb, &b), 0);
    RUN_UNTIL(&loop, &b.calls, 1);
    assert_int_equal(b.err, 0);
    assert_string_equal(b.body, "first");
    assert_int_equal(s.drop_requests, 3);

    /* 3: no_resend on the (again reused) connection: one copy reaches the server, the
     *    callback says it may have been processed. */
    struct one c = {0};
    req.no_resend = true;
    assert_int_equal(rest_pool_send(p, &req, one_cb, &c), 0);
    RUN_UNTIL(&loop, &c.calls, 1);
    assert_int_equal(c.err, -EPIPE);
    assert_true(c.maybe_sent);
    assert_int_equal(s.drop_requests, 4);
    struct rest_pool_stats st;
    rest_pool_get_stats(p, &st);
    assert_int_equal(st.resends_refused, 1);
    teardown_loop(&loop, p, &s);
}

static void test_headers_methods_and_limits(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool_opts o = {.max_response_bytes = 1u << 20};
    struct rest_pool *p = rest_pool_new(&loop, &o);
    char u[128];

    struct one rl = {0};
    url(u, sizeof u, s.port, "/ratelimit");
    struct rest_req req = {.method = REST_GET, .url = u};
    assert_int_equal(rest_pool_send(p, &req, one_cb, &rl), 0);
    RUN_UNTIL(&loop, &rl.calls, 1);
    assert_int_equal(rl.err, 0);
    assert_int_equal(rl.status, 429);
    assert_int_equal(rl.retry_after, 3000);
    assert_int_equal(rl.weight, 17);
    assert_int_equal(rl.oc10, 5);
    assert_int_equal(rl.oc1m, 17);
    assert_true(rl.ttfb > 0);

    struct one big = {0};
    url(u, sizeof u, s.port, "/big");
    assert_int_equal(rest_pool_send(p, &req, one_cb, &big), 0);
    RUN_UNTIL(&loop, &big.calls, 1);
    assert_int_equal(big.err, -EMSGSIZE);
    assert_non_null(strstr(big.error, "exceeds"));

    const char *methods[] = {"PUT", "DELETE", "POST"};
    enum rest_method ms[] = {REST_PUT, REST_DELETE, REST_POST};
    for (int i = 0; i < 3; i++) {
        struct one m = {0};
        url(u, sizeof u, s.port, "/method");
        struct rest_req r2 = {.method = ms[i], .url = u, .body = i == 2 ? "k=v&z=1" : NULL,
                              .body_len = i == 2 ? 7 : 0};
        assert_int_equal(rest_pool_send(p, &r2, one_cb, &m), 0);
        RUN_UNTIL(&loop, &m.calls, 1);
        char want[64];
        snprintf(want, sizeof want, "%s %d %s", methods[i], i == 2 ? 7 : 0, i == 2 ? "k=v&z=1" : "");
        assert_string_equal(m.body, want);
    }
    teardown_loop(&loop, p, &s);
}

/* ---- cancellation ---- */

struct cancel_ctx {
    struct rest_pool *p;
    int calls[3];
    int errs[3];
    bool free_in_cb;
};

struct cancel_req {
    struct cancel_ctx *c;
    int i;
};

static void cancel_cb(void *ud, const struct rest_resp *r) {
    struct cancel_req *q = ud;
    q->c->calls[q->i]++;
    q->c->errs[q->i] = r->err;
    /* a new request while closing is refused and never calls back */
    struct rest_req req = {.method = REST_GET, .url = "http://127.0.0.1:1/"};
    if (r->err == -ECANCELED) assert_int_equal(rest_pool_send(q->c->p, &req, cancel_cb, q), -ESHUTDOWN);
    if (q->c->free_in_cb) rest_pool_free(q->c->p); /* from inside a callback: safe */
}

static void test_cancel_on_free(void **state) {
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct srv s;
        srv_start(&s, &loop);
        struct cancel_ctx c = {.free_in_cb = variant == 1};
        c.p = rest_pool_new(&loop, NULL);
        struct cancel_req q[3];
        char u[128], u2[128];
        url(u, sizeof u, s.port, "/silent");
        url(u2, sizeof u2, s.port, "/echo/1");
        for (int i = 0; i < 3; i++) {
            q[i] = (struct cancel_req){&c, i};
            struct rest_req req = {.method = REST_GET, .url = i == 2 && variant ? u2 : u};
            assert_int_equal(rest_pool_send(c.p, &req, cancel_cb, &q[i]), 0);
        }
        if (variant == 0) {
            /* let them reach the server, then free: all three cancelled, once each */
            while (http_stub_requests(s.http) < 3) uv_run(&loop, UV_RUN_ONCE);
            rest_pool_free(c.p);
            for (int i = 0; i < 3; i++) {
                assert_int_equal(c.calls[i], 1);
                assert_int_equal(c.errs[i], -ECANCELED);
            }
            srv_stop(&s);
            while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
            }
            assert_int_equal(uv_loop_close(&loop), 0);
        } else {
            /* the echo answers; its callback frees the pool, which cancels the two silent ones */
            int total = 0;
            while (c.calls[0] + c.calls[1] + c.calls[2] < 3) uv_run(&loop, UV_RUN_ONCE);
            total = c.calls[0] + c.calls[1] + c.calls[2];
            assert_int_equal(total, 3);
            assert_int_equal(c.errs[2], 0);
            assert_int_equal(c.errs[0], -ECANCELED);
            assert_int_equal(c.errs[1], -ECANCELED);
            srv_stop(&s);
            while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
            }
            for (int i = 0; i < 3; i++) assert_int_equal(c.calls[i], 1);
            assert_int_equal(uv_loop_close(&loop), 0);
        }
    }
    assert_null(rest_pool_free(NULL));
}

/* ---- the Binance adapter end to end ---- */

struct e2e {
    int done;
    struct exch_order_result order[3];
    int64_t offset;
    struct exch_status st_time, st_instr, st_pos, st_lk[3];
    size_t n_instr, n_pos;
    char instr0[32], pos0[32], pos0_amt[32];
    char lk[3][128];
};

static void e2e_time(void *ud, const struct exch_status *st, int64_t off) {
    struct e2e *e = ud;
    e->st_time = *st;
    e->offset = off;
    e->done++;
}
static void e2e_order0(void *ud, const struct exch_order_result *r) {
    struct e2e *e = ud;
    e->order[0] = *r;
    e->done++;
}
static void e2e_order1(void *ud, const struct exch_order_result *r) {
    struct e2e *e = ud;
    e->order[1] = *r;
    e->done++;
}
static void e2e_order2(void *ud, const struct exch_order_result *r) {
    struct e2e *e = ud;
    e->order[2] = *r;
    e->done++;
}
static void e2e_instr(void *ud, const struct exch_status *st, const struct mkt_instrument *v, size_t n) {
    struct e2e *e = ud;
    e->st_instr = *st;
    e->n_instr = n;
    if (n) snprintf(e->instr0, sizeof e->instr0, "%s", v[0].symbol);
    e->done++;
}
static void e2e_pos(void *ud, const struct exch_status *st, const struct mkt_position *v, size_t n) {
    struct e2e *e = ud;
    e->st_pos = *st;
    e->n_pos = n;
    if (n) {
        snprintf(e->pos0, sizeof e->pos0, "%s", v[0].symbol);
        dec_format(v[0].amount, e->pos0_amt, sizeof e->pos0_amt);
    }
    e->done++;
}
static int lk_idx;
static void e2e_lk(void *ud, const struct exch_status *st, const char *key) {
    struct e2e *e = ud;
    e->st_lk[lk_idx] = *st;
    snprintf(e->lk[lk_idx], sizeof e->lk[0], "%s", key ? key : "(null)");
    lk_idx++;
    e->done++;
}

static void test_binance_adapter_e2e(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    char base[64];
    url(base, sizeof base, s.port, "");
    struct exch_account_cfg cfg = {.name = "f1", .kind = EXCH_BINANCE_USDM, .rest_url = base,
                                   .api_key = APIKEY, .api_secret = SECRET};
    struct exch_account *a = exch_account_new(&cfg, p);
    assert_non_null(a);
    assert_ptr_equal(exch_account_loop(a), &loop);
    struct e2e e;
    memset(&e, 0, sizeof e);

    /* time first: signed requests must then carry the server's clock */
    assert_int_equal(exch_sync_time(a, e2e_time, &e), 0);
    RUN_UNTIL(&loop, &e.done, 1);
    assert_int_equal(e.st_time.err, 0);
    if (llabs(e.offset - SERVER_SKEW_MS) > 200) fail_msg("offset %" PRId64, e.offset);
    assert_int_equal(exch_account_time_offset_ms(a), e.offset);

    dec_t qty;
    dec_parse_cstr("0.010", &qty);
    struct exch_order_req o = {.symbol = "BTCUSDT", .side = MKT_SELL, .type = EXCH_MARKET,
                               .qty = qty, .reduce_only = true, .client_id = "ctE2E_0"};
    assert_int_equal(exch_place_order(a, &o, e2e_order0, &e), 0);
    o.client_id = "ct503";
    assert_int_equal(exch_place_order(a, &o, e2e_order1, &e), 0);
    assert_int_equal(exch_query_order(a, "BTCUSDT", "ctGone", e2e_order2, &e), 0);
    assert_int_equal(exch_fetch_instruments(a, e2e_instr, &e), 0);
    assert_int_equal(exch_fetch_positions(a, e2e_pos, &e), 0);
    RUN_UNTIL(&loop, &e.done, 6);

    assert_int_equal(s.bad_signatures, 0);
    assert_int_equal(e.order[0].outcome, EXCH_OK);
    assert_int_equal(e.order[0].status, EXCH_ST_FILLED);
    assert_string_equal(e.order[0].order_id, "77");
    assert_string_equal(e.order[0].client_id, "ctE2E_0");
    char b[DEC_STR_MAX];
    dec_format(e.order[0].executed_qty, b, sizeof b);
    assert_string_equal(b, "0.01");
    assert_int_equal(e.order[1].outcome, EXCH_UNKNOWN);
    assert_int_equal(e.order[1].http_status, 503);
    assert_int_equal(e.order[1].error_code, -1000);
    assert_int_equal(e.order[2].outcome, EXCH_NOT_FOUND);
    assert_int_equal(e.order[2].error_code, -2013);
    assert_string_equal(e.order[2].client_id, "ctGone");
    assert_int_equal(s.order_requests, 2);
    assert_int_equal(e.st_instr.err, 0);
    assert_int_equal(e.n_instr, 1);
    assert_string_equal(e.instr0, "BLZUSDT");
    assert_int_equal(e.st_pos.err, 0);
    assert_int_equal(e.n_pos, 1);
    assert_string_equal(e.pos0, "ADAUSDT");
    assert_string_equal(e.pos0_amt, "30");
    struct exch_usage u;
    exch_account_usage(a, &u);
    assert_int_equal(u.used_weight_1m, 17);
    assert_int_equal(u.order_count_1m, 9);
    assert_true(u.updated_ms > 0);

    lk_idx = 0;
    assert_int_equal(exch_listen_key_create(a, e2e_lk, &e), 0);
    RUN_UNTIL(&loop, &e.done, 7);
    assert_int_equal(exch_listen_key_keepalive(a, e.lk[0], e2e_lk, &e), 0);
    RUN_UNTIL(&loop, &e.done, 8);
    assert_int_equal(exch_listen_key_delete(a, e.lk[0], e2e_lk, &e), 0);
    RUN_UNTIL(&loop, &e.done, 9);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(e.st_lk[i].err, 0);
        assert_string_equal(e.lk[i], "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61");
    }

    /* invalid requests: refused synchronously, no callback */
    o.client_id = "bad id";
    assert_int_equal(exch_place_order(a, &o, e2e_order0, &e), -EINVAL);

    /* account freed with a request in flight: the callback still runs exactly once */
    o.client_id = "ctLate";
    assert_int_equal(exch_place_order(a, &o, e2e_order0, &e), 0);
    exch_account_free(a);
    RUN_UNTIL(&loop, &e.done, 10);
    assert_int_equal(e.order[0].outcome, EXCH_OK);
    assert_string_equal(e.order[0].client_id, "ctLate");
    teardown_loop(&loop, p, &s);
}

/* ---- the account calls the copy engine needs ---- */

struct acc {
    int done;
    struct exch_status st[8];
    struct exch_balance bal;
    char tick_sym[32], tick_px[32];
    int64_t tick_time;
    size_t n_tick, n_lev, n_pos;
    enum mkt_pos_mode mode;
    struct exch_leverage lev0;
    struct mkt_position pos0;
    char set_sym[3][32];
    int set_lev[3];
    struct exch_order_result order;
};

static void a_time(void *ud, const struct exch_status *st, int64_t off) {
    struct acc *e = ud;
    (void)off;
    e->st[0] = *st;
    e->done++;
}
static void a_bal(void *ud, const struct exch_status *st, const struct exch_balance *b) {
    struct acc *e = ud;
    e->st[1] = *st;
    if (b) e->bal = *b;
    e->done++;
}
static void a_tick(void *ud, const struct exch_status *st, const struct exch_ticker *v, size_t n) {
    struct acc *e = ud;
    e->st[2] = *st;
    e->n_tick = n;
    if (n) {
        snprintf(e->tick_sym, sizeof e->tick_sym, "%s", v[0].symbol);
        dec_format(v[0].price, e->tick_px, sizeof e->tick_px);
        e->tick_time = v[0].time_ms;
    }
    e->done++;
}
static void a_mode(void *ud, const struct exch_status *st, enum mkt_pos_mode m) {
    struct acc *e = ud;
    e->st[3] = *st;
    e->mode = m;
    e->done++;
}
static void a_levs(void *ud, const struct exch_status *st, const struct exch_leverage *v, size_t n) {
    struct acc *e = ud;
    e->st[4] = *st;
    e->n_lev = n;
    if (n) e->lev0 = v[0];
    e->done++;
}
static void a_pos(void *ud, const struct exch_status *st, const struct mkt_position *v, size_t n) {
    struct acc *e = ud;
    e->st[5] = *st;
    e->n_pos = n;
    if (n) e->pos0 = v[0];
    e->done++;
}
static int set_idx;
static void a_set(void *ud, const struct exch_status *st, const char *sym, int lev) {
    struct acc *e = ud;
    e->st[6 + (set_idx > 0)] = *st; /* [6] first, [7] the later ones */
    snprintf(e->set_sym[set_idx], sizeof e->set_sym[0], "%s", sym);
    e->set_lev[set_idx] = lev;
    set_idx++;
    e->done++;
}
static void a_order(void *ud, const struct exch_order_result *r) {
    struct acc *e = ud;
    e->order = *r;
    e->done++;
}

static void test_binance_adapter_account_calls(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct srv s;
    srv_start(&s, &loop);
    s.hedge = true;
    struct rest_pool *p = rest_pool_new(&loop, NULL);
    char base[64];
    url(base, sizeof base, s.port, "");
    struct exch_account_cfg cfg = {.name = "f2", .kind = EXCH_BINANCE_USDM, .rest_url = base,
                                   .api_key = APIKEY, .api_secret = SECRET};
    struct exch_account *a = exch_account_new(&cfg, p);
    assert_non_null(a);
    struct acc e;
    memset(&e, 0, sizeof e);
    set_idx = 0;

    assert_int_equal(exch_sync_time(a, a_time, &e), 0);
    RUN_UNTIL(&loop, &e.done, 1);
    assert_int_equal(e.st[0].err, 0);

    assert_int_equal(exch_fetch_account(a, a_bal, &e), 0);
    assert_int_equal(exch_fetch_tickers(a, a_tick, &e), 0);
    assert_int_equal(exch_fetch_position_mode(a, a_mode, &e), 0);
    assert_int_equal(exch_fetch_leverage(a, a_levs, &e), 0);
    assert_int_equal(exch_fetch_positions(a, a_pos, &e), 0);
    assert_int_equal(exch_set_leverage(a, "BTCUSDT", 25, a_set, &e), 0);
    RUN_UNTIL(&loop, &e.done, 7);
    assert_int_equal(s.bad_signatures, 0);
    for (int i = 1; i <= 6; i++)
        if (e.st[i].err) fail_msg("call %d: err %d %s", i, e.st[i].err, e.st[i].error_msg);
    char b[DEC_STR_MAX];
    dec_format(e.bal.equity, b, sizeof b);
    assert_string_equal(b, "103.12345678");
    assert_int_equal(e.n_tick, 1);
    assert_string_equal(e.tick_sym, "BTCUSDT");
    assert_string_equal(e.tick_px, "6000.01");
    assert_int_equal(e.tick_time, 1589437530011LL);
    assert_int_equal(e.mode, MKT_PM_HEDGE);
    assert_int_equal(e.n_lev, 1);
    assert_string_equal(e.lev0.symbol, "BTCUSDT");
    assert_int_equal(e.lev0.leverage, 4);
    assert_int_equal(e.n_pos, 1);
    assert_int_equal(e.pos0.pos_side, MKT_PS_LONG);
    assert_int_equal(e.pos0.leverage, 4);
    assert_string_equal(e.set_sym[0], "BTCUSDT");
    assert_int_equal(e.set_lev[0], 25);
    assert_true(strncmp(s.last_leverage_body, "symbol=BTCUSDT&leverage=25&recvWindow=5000&timestamp=", 53) == 0);

    /* refused leverage: the exchange's code, granted 0; a mismatched answer: -EBADMSG */
    assert_int_equal(exch_set_leverage(a, "BTCUSDT", 99, a_set, &e), 0);
    RUN_UNTIL(&loop, &e.done, 8);
    assert_int_equal(e.st[7].err, -EREMOTEIO);
    assert_int_equal(e.st[7].error_code, -4028);
    assert_int_equal(e.set_lev[1], 0);
    assert_int_equal(exch_set_leverage(a, "BTCUSDT", 7, a_set, &e), 0);
    RUN_UNTIL(&loop, &e.done, 9);
    assert_int_equal(e.st[7].err, -EBADMSG);
    assert_non_null(strstr(e.st[7].error_msg, "leverage: symbol"));
    assert_string_equal(e.set_sym[2], "BTCUSDT");
    assert_int_equal(exch_set_leverage(a, "BTCUSDT", 126, a_set, &e), -EINVAL);

    /* a hedge-mode order sends positionSide and no reduceOnly */
    dec_t qty, px;
    dec_parse_cstr("0.002", &qty);
    dec_parse_cstr("64000.1", &px);
    struct exch_order_req o = {.symbol = "BTCUSDT", .side = MKT_SELL, .type = EXCH_LIMIT_IOC, .qty = qty,
                               .price = px, .client_id = "ctHedge1", .pos_side = MKT_PS_LONG};
    assert_int_equal(exch_place_order(a, &o, a_order, &e), 0);
    RUN_UNTIL(&loop, &e.done, 10);
    assert_int_equal(e.order.outcome, EXCH_OK);
    assert_true(strncmp(s.last_order_body,
                        "symbol=BTCUSDT&side=SELL&positionSide=LONG&type=LIMIT&timeInForce=IOC&quantity=0.002"
                        "&price=64000.1&newClientOrderId=ctHedge1&newOrderRespType=RESULT&recvWindow=",
                        strlen("symbol=BTCUSDT&side=SELL&positionSide=LONG&type=LIMIT&timeInForce=IOC&quantity=0.002"
                               "&price=64000.1&newClientOrderId=ctHedge1&newOrderRespType=RESULT&recvWindow=")) == 0);
    o.reduce_only = true;
    assert_int_equal(exch_place_order(a, &o, a_order, &e), -EINVAL);
    assert_int_equal(s.order_requests, 1);
    assert_int_equal(s.bad_signatures, 0);
    exch_account_free(a);
    teardown_loop(&loop, p, &s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thousand_requests_keepalive),
        cmocka_unit_test(test_closed_port_and_timeout),
        cmocka_unit_test(test_idle_connection_closed_by_server),
        cmocka_unit_test(test_written_before_send_returns),
        cmocka_unit_test(test_no_resend_on_dead_reused_connection),
        cmocka_unit_test(test_headers_methods_and_limits),
        cmocka_unit_test(test_cancel_on_free),
        cmocka_unit_test(test_binance_adapter_e2e),
        cmocka_unit_test(test_binance_adapter_account_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
