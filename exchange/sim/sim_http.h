/* sim_http: a small HTTP/1.1 server on libuv for the simulator's REST and admin ports.
 *
 * Why not lws' HTTP server: lws URL-decodes the query string ('+' -> ' ', %XX), splits it at '&'
 * and ';' and rewrites some bytes before the application sees it, so the exact bytes a client
 * signed (Binance signs the query string as sent) are lost. This server hands handlers the raw
 * request target and body. Websocket upgrades are passed on, socket and already-read bytes, to
 * lws (see sim_ws.h) through the adopt callback.
 *
 * Keep-alive (HTTP/1.1 default, "Connection: close" honoured), pipelining, Content-Length and
 * chunked request bodies, "Expect: 100-continue", TCP_NODELAY. Requests on one connection are
 * answered in order; a handler answers synchronously by filling struct shttp_resp. */
#ifndef CT_SIM_HTTP_H
#define CT_SIM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sim_buf.h"

#define SHTTP_MAX_HEADERS 64
#define SHTTP_MAX_HEAD_BYTES (64 * 1024)
#define SHTTP_MAX_BODY_BYTES (4 * 1024 * 1024)

enum shttp_method {
    SHTTP_GET = 0,
    SHTTP_POST,
    SHTTP_PUT,
    SHTTP_DELETE,
    SHTTP_HEAD,
    SHTTP_OPTIONS,
    SHTTP_PATCH,
    SHTTP_OTHER,
};

struct shttp_header {
    const char *name, *value;
    size_t name_len, value_len;
};

/* Everything points into the connection's buffer and is valid during the handler call only. */
struct shttp_req {
    enum shttp_method method;
    const char *method_str;
    size_t method_len;
    const char *target; /* raw request target: path + '?' + query */
    size_t target_len;
    const char *path;   /* raw, up to '?' (or '#') */
    size_t path_len;
    const char *query;  /* raw, after '?', without a '#fragment'; "" if none */
    size_t query_len;
    const char *body;   /* decoded from chunked if it was; "" if none */
    size_t body_len;
    struct shttp_header headers[SHTTP_MAX_HEADERS];
    size_t nheaders;
    bool keep_alive;
    bool ws_upgrade; /* GET with Upgrade: websocket */
    const char *peer_ip; /* the client's address, "127.0.0.1" (rate limits per IP) */
    bool held;           /* second call for a request the handler held (resp.hold_ms) */
    uint64_t conn_id;    /* the connection's number (1, 2, ... per server) */
};

/* Case-insensitive header lookup; value not NUL-terminated. NULL if absent. */
const char *shttp_header(const struct shttp_req *r, const char *name, size_t *len);
/* Does the raw path equal s (NUL-terminated)? */
bool shttp_path_is(const struct shttp_req *r, const char *s);
const char *shttp_method_name(enum shttp_method m);

struct shttp_resp {
    int status;
    struct sbuf body;
    struct sbuf headers;      /* extra "Name: value\r\n" lines */
    const char *content_type; /* default "application/json" */
    bool close;               /* close the connection after this response */
    /* Fault injection (sim_fault): the connection answers nothing else meanwhile (HTTP/1.1
     * answers in order), the loop is never blocked. */
    int delay_ms; /* write this response delay_ms later */
    int hold_ms;  /* ignore this response: call the handler again for the same request hold_ms
                   * later, with req->held set (then hold_ms is ignored) */
    bool reset;   /* send nothing: close the connection with a TCP reset */
};

typedef void (*shttp_handler_fn)(void *ud, const struct shttp_req *req, struct shttp_resp *resp);
/* A websocket upgrade request. Return true to hand the connection over (the server then calls
 * adopt once earlier responses are written); false to answer with resp (then it closes). */
typedef bool (*shttp_upgrade_fn)(void *ud, const struct shttp_req *req, struct shttp_resp *resp);
/* Takes ownership of fd, a connected socket whose pending input starts with bytes[0..len). */
typedef void (*shttp_adopt_fn)(void *ud, int fd, const char *bytes, size_t len);

struct shttp_opts {
    shttp_handler_fn handler;
    shttp_upgrade_fn upgrade; /* NULL: upgrades get 404 via the handler like any request */
    shttp_adopt_fn adopt;
    void *ud;
};

struct shttp_server;

/* Listen on ip:port (port 0 = any free one). Returns NULL and *err (negative uv error code). */
struct shttp_server *shttp_new(uv_loop_t *loop, const char *ip, int port,
                               const struct shttp_opts *opts, int *err);
int shttp_port(const struct shttp_server *s);
size_t shttp_connections(const struct shttp_server *s);
/* Stop listening and close every connection. The server frees itself once all its handles are
 * closed (run the loop). */
void shttp_close(struct shttp_server *s);

/* Response helpers. */
void shttp_resp_json(struct shttp_resp *r, int status, const char *json);
const char *shttp_status_text(int status);

#endif
