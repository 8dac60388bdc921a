/* Integration test for daemon/http_server: an lws context (libuv foreign loop, explicit vhosts,
 * as the daemon makes it) with our server vhost on an ephemeral loopback port, driven on the
 * main thread; libcurl (easy API) and raw sockets as clients in a worker thread. No PostgreSQL
 * or Redis needed. Every scenario ends with the verified teardown: lws_context_destroy, uv_run,
 * lws_context_destroy again, uv_loop_close == 0. A scenario whose loop hangs (an lws callback
 * that never returns) is killed by SIGALRM instead of hanging the test run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "http_server.h"
#include "metrics.h"

#define BIG_LEN (1024 * 1024)
#define MAX_BODY (64 * 1024)
#define NRESP 20
#define SCENARIO_ALARM_S 120 /* generous even under ASan; a hung loop fails instead of hanging */

struct resp {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    char ctype[128];
    char allow[128];
    long connects; /* new connections this request made (0 = reused) */
    long content_length;
};

struct raw_result {
    int outcome; /* 1 status line read, 0 closed/reset without one, -1 timed out */
    int status;
};

struct scenario {
    int port;
    struct http_server *srv;
    struct http_server_stats stats; /* copied on the loop thread before teardown */
    char *metrics_text;             /* what GET /metrics must return */
    char query_seen[256];           /* written by the /hello handler (loop thread) */
    struct resp r[NRESP];
    struct raw_result raw[NRESP];
    int after_raw_status[NRESP];
    int pipelined_ok;
    int abort_status;
    uv_async_t done;
    uv_async_t free_req; /* client asks the loop to free the server mid-scenario */
    uv_sem_t freed;
    bool srv_freed_early;
    struct lws_context *ctx;
    bool client_finished;
    int echo_calls;       /* POST /echo handler runs (loop thread) */
    char echo_bodies[NRESP][64]; /* the bodies it saw, in order */
    struct raw_session *sess[NRESP]; /* pipelining scenarios */
};

/* What one raw connection got back: everything until the server closed, or a time limit. */
struct raw_session {
    char *buf;
    size_t len;
    bool eof;          /* the server closed (FIN or reset) within the limit */
    int responses;     /* status lines "HTTP/1.x NNN " that start a response */
    int status;        /* of the first response, 0 if none */
    long content_length; /* of the first response, -1 if none */
    bool conn_close;   /* the first response says Connection: close */
    size_t body_off;   /* where the first response's body starts */
    bool complete;     /* the whole first body (content_length bytes) arrived */
    int after_status;  /* a fresh connection's GET /hello afterwards (-1 failed) */
};

/* ---- handlers (loop thread) ----------------------------------------------------------- */

static char *big_body;

static int h_path(void *ud, const struct http_request *req, struct http_response *resp)
{
    (void)ud;
    return http_response_printf(resp, "%s", req->path);
}

static int h_hello(void *ud, const struct http_request *req, struct http_response *resp)
{
    struct scenario *sc = ud;
    if (req->query[0]) snprintf(sc->query_seen, sizeof sc->query_seen, "%s", req->query);
    return http_response_append(resp, "hello\n", 6);
}

static int h_big(void *ud, const struct http_request *req, struct http_response *resp)
{
    (void)req;
    (void)ud;
    return http_response_set(resp, 200, "application/octet-stream", big_body, BIG_LEN);
}

static int h_echo(void *ud, const struct http_request *req, struct http_response *resp)
{
    struct scenario *sc = ud;
    if (sc->echo_calls < NRESP)
        snprintf(sc->echo_bodies[sc->echo_calls], sizeof sc->echo_bodies[0], "%s",
                 req->body ? req->body : "(null)");
    sc->echo_calls++;
    http_response_status(resp, 201);
    if (http_response_type(resp, "bad\r\ninjected: 1") != -EINVAL) return -1;
    return req->body_len ? http_response_append(resp, req->body, req->body_len) : 0;
}

static int h_fail(void *ud, const struct http_request *req, struct http_response *resp)
{
    (void)req;
    (void)ud;
    http_response_printf(resp, "partial %d", 1);
    return -EIO;
}

static int h_metrics(void *ud, const struct http_request *req, struct http_response *resp)
{
    (void)req;
    const struct met_registry *reg = ud;
    char *out;
    size_t len;
    if (met_render(reg, &out, &len)) return -ENOMEM;
    return http_response_take(resp, 200, MET_CONTENT_TYPE, out, len);
}

/* ---- curl client (worker thread) ----------------------------------------------------------- */

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct resp *r = ud;
    size_t n = size * nmemb;
    char *b = realloc(r->body, r->len + n + 1);
    if (!b) return 0;
    memcpy(b + r->len, ptr, n);
    r->body = b;
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    struct resp *r = ud;
    size_t n = size * nitems;
    if (n > 6 && strncasecmp(buf, "allow:", 6) == 0) {
        size_t k = n - 6;
        if (k >= sizeof r->allow) k = sizeof r->allow - 1;
        memcpy(r->allow, buf + 6, k);
        r->allow[k] = '\0';
        char *e = r->allow + strlen(r->allow);
        while (e > r->allow && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) *--e = '\0';
        char *s = r->allow;
        while (*s == ' ') s++;
        memmove(r->allow, s, strlen(s) + 1);
    }
    return n;
}

/* One request on easy handle e (reused across calls for keep-alive). body NULL = no body;
 * chunked = send the body without Content-Length. */
static void req(CURL *e, struct scenario *sc, struct resp *r, const char *method,
                const char *path, const char *body, size_t blen, bool chunked)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", sc->port, path);
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (chunked) hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(e, CURLOPT_HTTPGET, 0L);
    } else if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, chunked ? (curl_off_t)-1
                                                                 : (curl_off_t)blen);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    }
    r->rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &r->connects);
    char *ct = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r->ctype, sizeof r->ctype, "%s", ct ? ct : "");
    curl_off_t cl = -1;
    curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    r->content_length = (long)cl;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
}

/* Send bytes on a fresh connection; read until a status line, close/reset, or 5 s. */
static struct raw_result raw_exchange(int port, const void *data, size_t len)
{
    struct raw_result res = {-1, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return res;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) goto out;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) break; /* the server may hang up mid-request: fine, read what it said */
        off += (size_t)n;
    }
    char buf[4096];
    size_t got = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, 5000);
        if (pr == 0) goto out; /* timed out: the server neither answered nor closed */
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n") || got == sizeof buf - 1) break;
    }
    buf[got] = '\0';
    res.outcome = 0;
    if (got && sscanf(buf, "HTTP/1.%*d %d", &res.status) == 1) res.outcome = 1;
out:
    close(fd);
    return res;
}

/* Three requests in one send (HTTP/1.1 pipelining); count the 200 replies before the server
 * closes or 5 s pass. The server answers one request per connection (see http_server.c), so
 * this is 1: the rest is dropped with the connection, as HTTP/1.1 allows (a client retries
 * unanswered requests on a new connection). */
static int raw_pipeline(int port)
{
    static const char reqs[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                               "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        send(fd, reqs, sizeof reqs - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof reqs - 1)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    char buf[16384];
    size_t got = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5000) <= 0) break;
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        if (got == sizeof buf - 1) break;
    }
    buf[got] = '\0';
    close(fd);
    int count = 0;
    for (const char *s = buf; (s = strstr(s, "HTTP/1.1 200 ")) != NULL; s++) count++;
    return count;
}

/* Fetch /big, read only the status line, then hang up with most of the body unsent. */
static int raw_abort_big(int port)
{
    static const char get_big[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
    struct raw_result r = raw_exchange(port, get_big, sizeof get_big - 1);
    return r.outcome == 1 ? r.status : -1;
}

/* Send data on a fresh connection (then half-close if asked), read until the server closes or
 * 10 s pass, then parse the first response. Never blocks longer than that. */
static struct raw_session *raw_session(int port, const void *data, size_t len, bool half_close)
{
    struct raw_session *rs = calloc(1, sizeof *rs);
    size_t cap = BIG_LEN + 64 * 1024;
    rs->buf = malloc(cap + 1);
    rs->content_length = -1;
    rs->after_status = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return rs;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL);
        if (n <= 0) break; /* the server may hang up early: read what it said */
        off += (size_t)n;
    }
    if (half_close) shutdown(fd, SHUT_WR);
    uint64_t deadline = uv_hrtime() + 10ull * 1000 * 1000 * 1000;
    for (;;) {
        uint64_t now = uv_hrtime();
        if (now >= deadline) break; /* rs->eof stays false: the server kept it open */
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1) <= 0) continue;
        if (rs->len == cap) break; /* more than any reply here: not EOF */
        ssize_t n = recv(fd, rs->buf + rs->len, cap - rs->len, 0);
        if (n <= 0) {
            rs->eof = true; /* FIN, or a reset after the reply */
            break;
        }
        rs->len += (size_t)n;
    }
    close(fd);
    rs->buf[rs->len] = '\0';

    for (size_t i = 0; i + 13 <= rs->len; i++) /* response starts: "HTTP/1.x NNN " */
        if (memcmp(rs->buf + i, "HTTP/1.", 7) == 0 && rs->buf[i + 8] == ' ' &&
            (i == 0 || rs->buf[i - 1] == '\n'))
            rs->responses++;
    if (sscanf(rs->buf, "HTTP/1.%*d %d", &rs->status) != 1) rs->status = 0;
    const char *hend = strstr(rs->buf, "\r\n\r\n");
    if (hend) {
        rs->body_off = (size_t)(hend + 4 - rs->buf);
        for (const char *l = rs->buf; l < hend;) {
            if (strncasecmp(l, "content-length:", 15) == 0) rs->content_length = atol(l + 15);
            if (strncasecmp(l, "connection: close", 17) == 0) rs->conn_close = true;
            l = strstr(l, "\r\n") + 2; /* found: hend itself starts with one */
        }
        rs->complete = rs->content_length >= 0 &&
                       rs->len >= rs->body_off + (size_t)rs->content_length;
    }
    return rs;
}

/* ---- loop side ------------------------------------------------------------------------------ */

static void on_done(uv_async_t *a)
{
    struct scenario *sc = a->data;
    /* teardown step 1, from our own uv callback (never inside an lws callback) */
    if (!sc->srv_freed_early) http_server_get_stats(sc->srv, &sc->stats);
    lws_context_destroy(sc->ctx);
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&sc->free_req, NULL);
}

/* The daemon's order: free the server while the context (and its vhost) still run. */
static void on_free_req(uv_async_t *a)
{
    struct scenario *sc = a->data;
    http_server_get_stats(sc->srv, &sc->stats);
    sc->srv = http_server_free(sc->srv);
    sc->srv_freed_early = true;
    uv_sem_post(&sc->freed);
}

struct thread_arg {
    struct scenario *sc;
    void (*client)(struct scenario *sc);
};

static void client_thread(void *arg)
{
    struct thread_arg *ta = arg;
    ta->client(ta->sc);
    ta->sc->client_finished = true;
    uv_async_send(&ta->sc->done);
}

static struct lws_context *make_context(uv_loop_t *loop, struct lws_context **pctx)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *foreign[] = {loop};
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                   LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.pcontext = pctx;
    *pctx = lws_create_context(&info);
    return *pctx;
}

/* Context + server + routes on a fresh loop, run `client` in a thread until it is done, then
 * the full teardown. Results land in sc. */
static void run_scenario(struct scenario *sc, void (*client)(struct scenario *))
{
    uv_loop_t loop;
    alarm(SCENARIO_ALARM_S); /* default action: the process dies, the test fails */
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_non_null(make_context(&loop, &sc->ctx));

    struct met_registry *reg = met_registry_new();
    struct met_family *f = met_counter_new(reg, "ct_test_requests_total", "Requests \\ seen.",
                                           "path");
    met_counter_add(met_counter_child(f, "/a\"b\n"), 3);
    size_t mlen;
    assert_int_equal(met_render(reg, &sc->metrics_text, &mlen), 0);

    sc->srv = http_server_new(sc->ctx, "127.0.0.1", 0);
    assert_non_null(sc->srv);
    http_server_set_max_body(sc->srv, MAX_BODY);
    sc->port = http_server_port(sc->srv);
    assert_true(sc->port > 0 && sc->port < 65536);
    assert_int_equal(http_server_route(sc->srv, "GET", "/hello", h_hello, sc), 0);
    assert_int_equal(http_server_route(sc->srv, "GET", "/big", h_big, NULL), 0);
    assert_int_equal(http_server_route(sc->srv, "POST", "/echo", h_echo, sc), 0);
    assert_int_equal(http_server_route(sc->srv, "GET", "/fail", h_fail, NULL), 0);
    assert_int_equal(http_server_route(sc->srv, "GET", "/metrics", h_metrics, reg), 0);
    assert_int_equal(http_server_route_prefix(sc->srv, "POST", "/pre/", h_path, NULL), 0);
    assert_int_equal(http_server_route_prefix(sc->srv, "POST", "/pre/", h_path, NULL), -EEXIST);
    assert_int_equal(http_server_route(sc->srv, "GET", "/pre/exact", h_hello, sc), 0);

    assert_int_equal(uv_async_init(&loop, &sc->done, on_done), 0);
    sc->done.data = sc;
    assert_int_equal(uv_async_init(&loop, &sc->free_req, on_free_req), 0);
    sc->free_req.data = sc;
    assert_int_equal(uv_sem_init(&sc->freed, 0), 0);
    struct thread_arg ta = {sc, client};
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, client_thread, &ta), 0);

    /* returns once on_done destroyed the context and every handle has closed */
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_thread_join(&th), 0);
    assert_true(sc->client_finished);
    assert_non_null(sc->ctx); /* lws frees the context only on the second destroy */
    lws_context_destroy(sc->ctx);
    assert_null(sc->ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    sc->srv = http_server_free(sc->srv);
    uv_sem_destroy(&sc->freed);
    met_registry_free(reg);
    alarm(0);
}

static void scenario_free(struct scenario *sc)
{
    for (int i = 0; i < NRESP; i++) {
        free(sc->r[i].body);
        if (sc->sess[i]) free(sc->sess[i]->buf);
        free(sc->sess[i]);
    }
    free(sc->metrics_text);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void client_routes(struct scenario *sc)
{
    CURL *e = curl_easy_init();
    char *body10k = malloc(10000), *body100k = malloc(100000);
    for (int i = 0; i < 10000; i++) body10k[i] = (char)('a' + i % 26);
    memset(body100k, 'z', 100000);
    req(e, sc, &sc->r[0], "GET", "/hello", NULL, 0, false);
    req(e, sc, &sc->r[1], "GET", "/metrics", NULL, 0, false);
    req(e, sc, &sc->r[2], "GET", "/hello?a=1&b=x%20y", NULL, 0, false);
    req(e, sc, &sc->r[3], "GET", "/nope", NULL, 0, false);
    req(e, sc, &sc->r[4], "POST", "/hello", "x", 1, false);
    req(e, sc, &sc->r[5], "HEAD", "/hello", NULL, 0, false);
    req(e, sc, &sc->r[6], "GET", "/fail", NULL, 0, false);
    req(e, sc, &sc->r[7], "POST", "/echo", body10k, 10000, false);
    req(e, sc, &sc->r[8], "POST", "/echo", "", 0, false);
    req(e, sc, &sc->r[9], "PUT", "/echo", "x", 1, false);
    req(e, sc, &sc->r[10], "POST", "/echo", body100k, 100000, false);
    req(e, sc, &sc->r[11], "POST", "/echo", "chunky", 6, true);
    req(e, sc, &sc->r[12], "GET", "/hello", NULL, 0, false);
    req(e, sc, &sc->r[13], "POST", "/pre/r-1/pause", "", 0, false);
    req(e, sc, &sc->r[14], "GET", "/pre/r-1/pause", NULL, 0, false);
    req(e, sc, &sc->r[15], "GET", "/pre/exact", NULL, 0, false);
    req(e, sc, &sc->r[16], "POST", "/prefix", "", 0, false);
    curl_easy_cleanup(e);
    free(body10k);
    free(body100k);
}

static void test_routes_and_errors(void **state)
{
    (void)state;
    struct scenario sc = {0};
    run_scenario(&sc, client_routes);
    struct resp *r = sc.r;
    for (int i = 0; i <= 16; i++) assert_int_equal(r[i].rc, CURLE_OK);

    assert_int_equal(r[0].status, 200);
    assert_string_equal(r[0].body, "hello\n");
    assert_string_equal(r[0].ctype, "text/plain; charset=utf-8");

    assert_int_equal(r[1].status, 200);
    assert_string_equal(r[1].ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(r[1].body, sc.metrics_text);
    assert_non_null(strstr(r[1].body, "ct_test_requests_total{path=\"/a\\\"b\\n\"} 3\n"));

    assert_int_equal(r[2].status, 200); /* the query is not part of the route */
    assert_string_equal(sc.query_seen, "a=1&b=x y");

    assert_int_equal(r[3].status, 404);
    assert_int_equal(r[4].status, 405);
    assert_string_equal(r[4].allow, "GET, HEAD");

    assert_int_equal(r[5].status, 200); /* HEAD: GET's length, no body */
    assert_int_equal(r[5].content_length, 6);
    assert_int_equal(r[5].len, 0);

    assert_int_equal(r[6].status, 500);
    assert_string_equal(r[6].body, "internal error\n"); /* the partial body was discarded */

    assert_int_equal(r[7].status, 201);
    assert_int_equal(r[7].len, 10000);
    for (int i = 0; i < 10000; i++) assert_int_equal(r[7].body[i], (char)('a' + i % 26));
    assert_string_equal(r[7].ctype, "text/plain; charset=utf-8"); /* injection refused */

    assert_int_equal(r[8].status, 201); /* POST with an empty body */
    assert_int_equal(r[8].len, 0);

    assert_int_equal(r[9].status, 405);
    assert_string_equal(r[9].allow, "POST");
    assert_int_equal(r[10].status, 413);
    assert_int_equal(r[11].status, 411);
    assert_int_equal(r[12].status, 200);

    /* a prefix route: the handler sees the whole path; another method is 405; an exact route
     * under the prefix wins; a path that only starts like the prefix is not under it */
    assert_int_equal(r[13].status, 200);
    assert_string_equal(r[13].body, "/pre/r-1/pause");
    assert_int_equal(r[14].status, 405);
    assert_string_equal(r[14].allow, "POST");
    assert_int_equal(r[15].status, 200);
    assert_string_equal(r[15].body, "hello\n");
    assert_int_equal(r[16].status, 404);

    assert_int_equal(sc.stats.requests, 17);
    assert_int_equal(sc.stats.status_4xx, 7); /* 404, 405, 405, 413, 411, 405, 404 */
    assert_int_equal(sc.stats.status_5xx, 1);
    scenario_free(&sc);
}

static void client_big(struct scenario *sc)
{
    CURL *e = curl_easy_init();
    req(e, sc, &sc->r[0], "GET", "/big", NULL, 0, false);
    req(e, sc, &sc->r[1], "GET", "/big", NULL, 0, false);
    curl_easy_cleanup(e);
}

static void test_large_body_in_chunks(void **state)
{
    (void)state;
    struct scenario sc = {0};
    run_scenario(&sc, client_big);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sc.r[i].rc, CURLE_OK);
        assert_int_equal(sc.r[i].status, 200);
        assert_string_equal(sc.r[i].ctype, "application/octet-stream");
        assert_int_equal(sc.r[i].content_length, BIG_LEN);
        assert_int_equal(sc.r[i].len, BIG_LEN);
        assert_memory_equal(sc.r[i].body, big_body, BIG_LEN);
    }
    assert_int_equal(sc.r[1].connects, 1); /* one request per connection: a new one */
    /* 1 MiB went out over many writes (16 KiB each), not one */
    assert_true(sc.stats.writes >= 2 * (BIG_LEN / (16 * 1024)));
    assert_true(sc.stats.bytes_out > 2 * BIG_LEN);
    scenario_free(&sc);
}

static void client_keepalive(struct scenario *sc)
{
    CURL *e = curl_easy_init();
    req(e, sc, &sc->r[0], "GET", "/hello", NULL, 0, false);
    req(e, sc, &sc->r[1], "GET", "/big", NULL, 0, false);
    req(e, sc, &sc->r[2], "GET", "/nope", NULL, 0, false);
    req(e, sc, &sc->r[3], "POST", "/hello", "x", 1, false);
    req(e, sc, &sc->r[4], "POST", "/echo", "ping", 4, false);
    req(e, sc, &sc->r[5], "HEAD", "/hello", NULL, 0, false);
    req(e, sc, &sc->r[6], "GET", "/fail", NULL, 0, false);
    req(e, sc, &sc->r[7], "GET", "/metrics", NULL, 0, false);
    req(e, sc, &sc->r[8], "GET", "/hello", NULL, 0, false);
    curl_easy_cleanup(e);
    sc->pipelined_ok = raw_pipeline(sc->port);
    sc->abort_status = raw_abort_big(sc->port);
    e = curl_easy_init();
    req(e, sc, &sc->r[9], "GET", "/hello", NULL, 0, false);
    curl_easy_cleanup(e);
}

/* A client that would keep its connection (curl does) gets every reply with Connection: close
 * and transparently opens a new connection per request; nothing else changes for it. */
static void test_one_request_per_connection(void **state)
{
    (void)state;
    struct scenario sc = {0};
    run_scenario(&sc, client_keepalive);
    static const long want[] = {200, 200, 404, 405, 201, 200, 500, 200, 200};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(sc.r[i].rc, CURLE_OK);
        assert_int_equal(sc.r[i].status, want[i]);
        assert_int_equal(sc.r[i].connects, 1); /* curl could not reuse: the server closed */
    }
    assert_string_equal(sc.r[4].body, "ping");
    assert_string_equal(sc.r[8].body, "hello\n");
    assert_int_equal(sc.pipelined_ok, 1); /* the first of three pipelined requests */
    assert_int_equal(sc.abort_status, 200);
    /* still serving after a client hung up in the middle of a 1 MiB body */
    assert_int_equal(sc.r[9].status, 200);
    scenario_free(&sc);
}

static void client_garbage(struct scenario *sc)
{
    static char big_header[20000];
    static char junk[65536];
    int n = snprintf(big_header, sizeof big_header, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big_header + n, 'b', sizeof big_header - (size_t)n);
    memcpy(big_header + sizeof big_header - 4, "\r\n\r\n", 4);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7 + 1);
    static char post_big[80000];
    size_t post_big_len = (size_t)snprintf(post_big, sizeof post_big,
                                           "POST /echo HTTP/1.1\r\nHost: x\r\n"
                                           "Content-Length: 70000\r\n\r\n");
    memset(post_big + post_big_len, 'p', 70000);
    post_big_len += 70000;
    static char long_uri[9000];
    n = snprintf(long_uri, sizeof long_uri, "GET /");
    memset(long_uri + n, 'u', sizeof long_uri - (size_t)n);
    memcpy(long_uri + sizeof long_uri - 17, " HTTP/1.1\r\n\r\n\r\n", 16);

#define LIT(s) {s, sizeof(s) - 1}
    const struct {
        const char *data;
        size_t len;
    } cases[] = {
        LIT("GARBAGE\r\n\r\n"),
        LIT("GET\r\n\r\n"),
        LIT("GET hello HTTP/1.1\r\nHost: x\r\n\r\n"),
        LIT("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), /* a TLS hello */
        {big_header, sizeof big_header},
        {long_uri, sizeof long_uri - 1},
        {junk, sizeof junk},
        LIT("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        LIT("CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"),
        LIT("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
        LIT("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n"),
        LIT("POST /echo HTTP/1.1\r\nHost: x\r\n\r\nan unframed body"),
        {post_big, post_big_len}, /* 413 while the body is already in flight */
    };
#undef LIT
    size_t ncases = sizeof cases / sizeof cases[0];
    CURL *e = curl_easy_init();
    for (size_t i = 0; i < ncases && i < NRESP; i++) {
        sc->raw[i] = raw_exchange(sc->port, cases[i].data, cases[i].len);
        /* the server still serves normal requests after each */
        struct resp r = {0};
        req(e, sc, &r, "GET", "/hello", NULL, 0, false);
        sc->after_raw_status[i] = r.rc == CURLE_OK ? (int)r.status : -1;
        free(r.body);
    }
    curl_easy_cleanup(e);
}

/* The fuzzer's findings and their neighbours: several requests (or garbage) in one send, the
 * first of which is answered while lws still holds the rest. */
#define PIPE_GET_HELLO "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
#define PIPE_GET_BIG "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
#define PIPE_POST_1 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1"
static const struct {
    const char *name;
    const char *data;
    bool half_close;
    int first_status; /* 0: any (garbled first request), else the status it must get */
    bool first_big;   /* the first reply must be the whole /big body */
    const char *echo; /* the body POST /echo must see, NULL if it must not run */
} pipe_cases[] = {
    /* http-pipelined-body-hang: lws fed the POST its own request line as body, then called
     * BODY_COMPLETION forever inside one uv_run turn */
    {"get+post", PIPE_GET_HELLO PIPE_POST_1, true, 200, false, NULL},
    {"get+post, no half-close", PIPE_GET_HELLO PIPE_POST_1, false, 200, false, NULL},
    {"big+post", PIPE_GET_BIG PIPE_POST_1, true, 200, true, NULL},
    {"big+put", PIPE_GET_BIG "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1", true,
     200, true, NULL},
    {"big+post without length", PIPE_GET_BIG "POST /echo HTTP/1.1\r\nHost: x\r\n\r\nabc", true,
     200, true, NULL},
    /* http-dispatch-null-path: BODY_COMPLETION on state on_http never filled */
    {"null-path reproducer",
     "GET /big HTTP/1.1\r\nHost: x\r\n\rw HTTP/PUT /echo HTTP/1.1\r\nHost: x\r\n"
     "Content-Length: 1\r\n\r\n1.\n",
     true, 200, true, NULL},
    /* http-pipelined-hang-2 */
    {"hang-2 reproducer",
     "GET /big HTTP/1.1\r/big/health/live PTHT/0.1\r\nHost: x\r\n\r\nGET /healHost: x\r\n"
     "Content-Length: 21\r\n\rst: x\n\r\n\r\n\r\n",
     true, 200, true, NULL},
    /* input after a body: lws stays in its body state and reports the completion again */
    {"post+get", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping" PIPE_GET_HELLO,
     true, 201, false, "ping"},
    {"post+garbage", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\npingGARBAGE\r\n",
     false, 201, false, "ping"},
    {"post+post", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping" PIPE_POST_1,
     true, 201, false, "ping"},
    /* an early 411 while lws expects 100 MB of body, then more requests (taken as that body);
     * with the half-close lws closes on the client's EOF before the 411 goes out */
    {"411+post", "POST /echo HTTP/1.1\r\nHost: x\r\n\r\n" PIPE_POST_1 PIPE_POST_1, false, 411,
     false, NULL},
    {"411+post, half-close", "POST /echo HTTP/1.1\r\nHost: x\r\n\r\n" PIPE_POST_1 PIPE_POST_1,
     true, 0, false, NULL},
    /* an upgrade lws answers itself (403) and used to keep the connection */
    {"upgrade+post",
     "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n" PIPE_POST_1,
     true, 0, false, NULL},
};
#define NPIPE (sizeof pipe_cases / sizeof pipe_cases[0])

static void client_pipelined(struct scenario *sc)
{
    CURL *e = curl_easy_init();
    for (size_t i = 0; i < NPIPE && i < NRESP; i++) {
        sc->sess[i] = raw_session(sc->port, pipe_cases[i].data, strlen(pipe_cases[i].data),
                                  pipe_cases[i].half_close);
        /* the loop still runs and serves: a fresh connection gets its answer (curl's 10 s
         * limit bounds the wait; a hung loop also trips the scenario alarm) */
        struct resp r = {0};
        req(e, sc, &r, "GET", "/hello", NULL, 0, false);
        sc->sess[i]->after_status = r.rc == CURLE_OK ? (int)r.status : -1;
        free(r.body);
    }
    curl_easy_cleanup(e);
}

static void test_pipelined_requests(void **state)
{
    (void)state;
    struct scenario sc = {0};
    run_scenario(&sc, client_pipelined);
    int echo_expected = 0;
    for (size_t i = 0; i < NPIPE; i++) {
        const struct raw_session *rs = sc.sess[i];
        print_message("%s: eof %d, %zu bytes, %d responses, status %d, length %ld, close %d\n",
                      pipe_cases[i].name, rs->eof, rs->len, rs->responses, rs->status,
                      rs->content_length, rs->conn_close);
        assert_true(rs->eof);                   /* the server closed, never left it hanging */
        assert_int_equal(rs->after_status, 200); /* and kept serving */
        assert_true(rs->responses <= 1);        /* nothing answered after the first */
        if (pipe_cases[i].first_status) {
            assert_int_equal(rs->responses, 1);
            assert_int_equal(rs->status, pipe_cases[i].first_status);
        }
        if (rs->responses == 1 && rs->status != 403) { /* 403: lws's own reply */
            assert_true(rs->conn_close);
            assert_true(rs->complete);          /* the first reply arrived whole */
            assert_int_equal(rs->len, rs->body_off + (size_t)rs->content_length);
        }
        if (pipe_cases[i].first_big) {
            assert_int_equal(rs->content_length, BIG_LEN);
            assert_memory_equal(rs->buf + rs->body_off, big_body, BIG_LEN);
        }
        if (pipe_cases[i].echo) {
            assert_true(echo_expected < sc.echo_calls);
            assert_string_equal(sc.echo_bodies[echo_expected], pipe_cases[i].echo);
            assert_string_equal(rs->buf + rs->body_off, pipe_cases[i].echo);
            echo_expected++;
        }
    }
    /* the handler never ran for a pipelined request, nor with a body that was not sent */
    assert_int_equal(sc.echo_calls, echo_expected);
    scenario_free(&sc);
}

static void client_free_midway(struct scenario *sc)
{
    CURL *e = curl_easy_init();
    req(e, sc, &sc->r[0], "GET", "/hello", NULL, 0, false);
    uv_async_send(&sc->free_req);
    uv_sem_wait(&sc->freed);
    /* same keep-alive connection, then a fresh one: both refused by the freed server */
    req(e, sc, &sc->r[1], "GET", "/hello", NULL, 0, false);
    req(e, sc, &sc->r[2], "GET", "/hello", NULL, 0, false);
    curl_easy_cleanup(e);
}

/* Freeing the server before the context (as copytraderd's teardown does) stops it serving and
 * leaks nothing: the memory goes when lws finalizes the vhost (ASan/valgrind check that). */
static void test_free_before_context(void **state)
{
    (void)state;
    struct scenario sc = {0};
    run_scenario(&sc, client_free_midway);
    assert_true(sc.srv_freed_early);
    assert_int_equal(sc.r[0].rc, CURLE_OK);
    assert_int_equal(sc.r[0].status, 200);
    assert_int_not_equal(sc.r[1].rc, CURLE_OK);
    assert_int_not_equal(sc.r[2].rc, CURLE_OK);
    assert_int_equal(sc.stats.requests, 1);
    scenario_free(&sc);
}

static void test_garbage_requests(void **state)
{
    (void)state;
    struct scenario sc = {0};
    run_scenario(&sc, client_garbage);
    for (int i = 0; i < 13; i++) {
        /* answered with a 4xx, or the connection dropped; never a hang, never a 2xx/5xx */
        print_message("case %d: outcome %d status %d\n", i, sc.raw[i].outcome,
                      sc.raw[i].status);
        assert_true(sc.raw[i].outcome >= 0);
        if (sc.raw[i].outcome == 1) {
            assert_true(sc.raw[i].status >= 400);
            assert_true(sc.raw[i].status < 500);
        }
        assert_int_equal(sc.after_raw_status[i], 200);
    }
    scenario_free(&sc);
}

static void test_setup_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct lws_context *ctx;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_non_null(make_context(&loop, &ctx));

    /* a port somebody else listens on */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    errno = 0;
    assert_null(http_server_new(ctx, "127.0.0.1", ntohs(a.sin_port)));
    assert_int_equal(errno, EADDRINUSE);
    close(fd);

    assert_null(http_server_new(ctx, NULL, 70000));
    assert_int_equal(errno, EINVAL);
    assert_null(http_server_new(NULL, NULL, 0));
    /* an address that is not ours: lws would defer listening; we refuse */
    errno = 0;
    assert_null(http_server_new(ctx, "192.0.2.1", 0));
    assert_int_equal(errno, EADDRNOTAVAIL);

    assert_null(http_server_new(ctx, "localhost", 0)); /* numeric only */
    assert_int_equal(errno, EINVAL);
    assert_null(http_server_new(ctx, "lo", 0));
    assert_int_equal(errno, EINVAL);

    struct http_server *srv = http_server_new(ctx, NULL, 0); /* 127.0.0.1, ephemeral */
    assert_non_null(srv);
    assert_true(http_server_port(srv) > 0);
    /* bound to 127.0.0.1 only, not to every interface: another loopback address can still take
     * the same port (lws 4.1.6 would bind [::] for an IPv4 iface with IPv6 enabled) */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in other = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)http_server_port(srv)),
                                .sin_addr.s_addr = htonl(0x7f000002)}; /* 127.0.0.2 */
    assert_int_equal(bind(fd, (struct sockaddr *)&other, sizeof other), 0);
    close(fd);

    /* IPv6 literal: bound to ::1 only (a v4 socket on 127.0.0.1:port still fits) */
    struct http_server *srv6 = http_server_new(ctx, "::1", 0);
    if (srv6) { /* no IPv6 loopback in some containers */
        fd = socket(AF_INET, SOCK_STREAM, 0);
        other.sin_port = htons((uint16_t)http_server_port(srv6));
        other.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&other, sizeof other), 0);
        close(fd);
    }
    assert_int_equal(http_server_route(srv, "GET", "/x", h_hello, NULL), 0);
    assert_int_equal(http_server_route(srv, "GET", "/x", h_hello, NULL), -EEXIST);
    assert_int_equal(http_server_route(srv, "POST", "/x", h_hello, NULL), 0);
    assert_int_equal(http_server_route(srv, "HEAD", "/y", h_hello, NULL), -EINVAL);
    assert_int_equal(http_server_route(srv, "BREW", "/y", h_hello, NULL), -EINVAL);
    assert_int_equal(http_server_route(srv, "GET", "y", h_hello, NULL), -EINVAL);
    assert_int_equal(http_server_route(srv, "GET", "/y", NULL, NULL), -EINVAL);

    lws_context_destroy(ctx);
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0) {
    }
    lws_context_destroy(ctx);
    assert_null(ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_null(http_server_free(srv));
    assert_null(http_server_free(srv6));
    assert_null(http_server_free(NULL));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    big_body = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++) big_body[i] = (char)((i * 131 + i / 4096) & 0xff);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_and_errors),
        cmocka_unit_test(test_large_body_in_chunks),
        cmocka_unit_test(test_one_request_per_connection),
        cmocka_unit_test(test_pipelined_requests),
        cmocka_unit_test(test_garbage_requests),
        cmocka_unit_test(test_free_before_context),
        cmocka_unit_test(test_setup_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(big_body);
    curl_global_cleanup();
    return rc;
}
