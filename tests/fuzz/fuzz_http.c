/* fuzz_http: the daemon's HTTP endpoint, end to end. The input is the raw bytes a client sends on
 * one TCP connection (one request, several pipelined ones, garbage).
 *
 * Why this shape: lws parses the request line and headers itself; what OUR code does with outside
 * input is in http_server.c's lws callbacks (on_http: method, path copy, the query rebuilt from
 * lws fragments, Content-Length parsing, 400/411/413 decisions; on_body: the body copy; dispatch:
 * route match and the Allow list; on_writeable: chunked replies and keep-alive / close). Those are
 * static, driven by lws and only reachable through a real connection, and the daemon's own route
 * handlers (main.c: serve_state, ...) never read the request at all (routing decides everything),
 * except serve_rule_action, which splits the path under its prefix route into a rule id and an
 * operation. So the harness runs the real server on the daemon's setup (lws on a libuv loop,
 * EXPLICIT_VHOSTS, http_server_new on 127.0.0.1:ephemeral), registers routes shaped like the
 * daemon's (GET /metrics, /health/live, /health/ready, /state; POST /rules/ as a prefix route)
 * plus an echo route whose handler checks every field of struct
 * http_request (path, query and body NUL-terminated, body_len right) and sends query and body
 * back, and feeds each input through a loopback TCP connection, half-closed after the input.
 * It then drives the loop until the server has closed the connection, so no connection outlives
 * its input. The context, server and loop live for the whole process (made in
 * LLVMFuzzerInitialize); nothing else carries over between inputs. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http_server.h"

#define MAX_BODY 4096
#define INPUT_MAX (256 * 1024)
#define DEADLINE_MS 2000 /* per input; the server normally closes within a few loop turns */

static uv_loop_t g_loop;
static struct lws_context *g_ctx;
static struct http_server *g_srv;
static int g_port;

static int h_text(void *ud, const struct http_request *req, struct http_response *resp)
{
    if (!req->method || !req->path || !req->query) abort();
    return http_response_set(resp, 200, "text/plain; version=0.0.4; charset=utf-8", ud, strlen(ud));
}

static int h_rule(void *ud, const struct http_request *req, struct http_response *resp)
{
    (void)ud;
    if (strcmp(req->method, "POST") != 0) abort(); /* routed POST only */
    if (strncmp(req->path, "/rules/", 7) != 0) abort(); /* only paths under the prefix */
    if (req->body && req->body[req->body_len] != '\0') abort();
    http_response_type(resp, "application/json");
    return http_response_printf(resp, "{\"rule\":\"%s\",\"status\":\"paused\"}\n", req->path);
}

/* Checks the request as the header promises it and echoes it (bodies up to MAX_BODY, so replies
 * span several chunks only through the big route). */
static int h_echo(void *ud, const struct http_request *req, struct http_response *resp)
{
    (void)ud;
    if (!req->method || !req->path || !req->query) abort();
    size_t pl = strlen(req->path), ql = strlen(req->query);
    if (req->body) {
        if (req->body[req->body_len] != '\0') abort();
        if (strlen(req->body) > req->body_len) abort();
        if (req->body_len > MAX_BODY) abort();
    } else if (req->body_len) {
        abort();
    }
    int rc = http_response_printf(resp, "%s %.*s ?%.*s\n", req->method, (int)pl, req->path, (int)ql,
                                  req->query);
    if (rc == 0 && req->body) rc = http_response_append(resp, req->body, req->body_len);
    if (rc == 0 && req->query[0] == 'f') return -EIO; /* a failing handler: 500 */
    if (rc == 0 && req->query[0] == 't') rc = http_response_type(resp, req->query);
    if (rc == -EINVAL) rc = 0; /* a bad content type from the query is refused, not fatal */
    return rc;
}

static int h_big(void *ud, const struct http_request *req, struct http_response *resp)
{
    (void)ud;
    (void)req;
    size_t n = 40000; /* three chunks of 16 KiB */
    char *b = malloc(n);
    if (!b) return -ENOMEM;
    memset(b, 'm', n);
    return http_response_take(resp, 200, NULL, b, n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(0, NULL);
    if (uv_loop_init(&g_loop) != 0) abort();
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *foreign[] = {&g_loop};
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.pcontext = &g_ctx;
    g_ctx = lws_create_context(&info);
    if (!g_ctx) abort();
    g_srv = http_server_new(g_ctx, "127.0.0.1", 0);
    if (!g_srv) abort();
    http_server_set_max_body(g_srv, MAX_BODY);
    g_port = http_server_port(g_srv);
    static const char metrics[] = "# HELP ct_up 1\n# TYPE ct_up gauge\nct_up 1\n";
    static const char live[] = "{\"status\":\"ok\"}\n";
    if (http_server_route(g_srv, "GET", "/metrics", h_text, (void *)metrics) ||
        http_server_route(g_srv, "GET", "/health/live", h_text, (void *)live) ||
        http_server_route(g_srv, "GET", "/health/ready", h_text, (void *)live) ||
        http_server_route(g_srv, "GET", "/state", h_text, (void *)live) ||
        http_server_route(g_srv, "GET", "/echo", h_echo, NULL) ||
        http_server_route(g_srv, "POST", "/echo", h_echo, NULL) ||
        http_server_route(g_srv, "GET", "/big", h_big, NULL))
        abort();
    (void)http_server_route(g_srv, "PUT", "/echo", h_echo, NULL); /* -EINVAL if lws lacks PUT */
    (void)http_server_route(g_srv, "DELETE", "/echo", h_echo, NULL);
    if (http_server_route_prefix(g_srv, "POST", "/rules/", h_rule, NULL)) abort();
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One loop turn: wait (at most wait_ms) for the loop's backend or the client socket, then run
 * whatever is ready. */
static void turn(int cfd, int wait_ms)
{
    struct pollfd pf[2] = {{uv_backend_fd(&g_loop), POLLIN, 0}, {cfd, POLLIN, 0}};
    int t = uv_backend_timeout(&g_loop);
    if (t < 0 || t > wait_ms) t = wait_ms;
    poll(pf, cfd >= 0 ? 2 : 1, t);
    uv_run(&g_loop, UV_RUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > INPUT_MAX) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int cfd = -1;
    /* Loopback connects at once, but libFuzzer's timer signal can interrupt connect(): then the
     * socket's state is unclear, so start over with a fresh one. */
    for (int tries = 0; cfd < 0 && tries < 5; tries++) {
        cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (cfd < 0) abort();
        if (connect(cfd, (struct sockaddr *)&a, sizeof a) != 0) {
            if (errno != EINTR) abort();
            close(cfd);
            cfd = -1;
        }
    }
    if (cfd < 0) abort();
    fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);

    int64_t deadline = now_ms() + DEADLINE_MS;
    size_t off = 0;
    bool shut = false, eof = false;
    char buf[65536];
    while (!eof && now_ms() < deadline) {
        if (off < size) {
            ssize_t w = send(cfd, data + off, size - off, MSG_NOSIGNAL);
            if (w > 0) off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) off = size; /* reset */
        }
        if (off == size && !shut) {
            shutdown(cfd, SHUT_WR);
            shut = true;
        }
        turn(cfd, 5);
        for (;;) { /* drain replies; EOF = the server closed the connection */
            ssize_t r = recv(cfd, buf, sizeof buf, 0);
            if (r > 0) continue;
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) eof = true;
            break;
        }
    }
    close(cfd);
    /* let the server see the close and free the connection, so nothing outlives this input */
    for (int i = 0; i < 20; i++) turn(-1, 0);
    return 0;
}
