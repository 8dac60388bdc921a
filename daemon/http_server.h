/* http_server: a small HTTP/1.1 server (metrics, health, later admin endpoints) as one lws vhost
 * on the daemon's existing lws context (libuv foreign loop, EXPLICIT_VHOSTS).
 *
 * Routes are exact paths per method; handlers run synchronously on the loop and fill a response
 * (status, content type, body). One request per connection: every reply carries
 * "Connection: close" and the connection closes after it; whatever a client sent behind its
 * first request (pipelining, garbage) is dropped unanswered, as HTTP/1.1 allows (lws 4.1.6
 * mishandles a second request that arrived early; see http_server.c). Bodies larger than one
 * chunk go out over several WRITEABLE callbacks so a big /metrics page never stalls the loop on
 * one write. Unknown path -> 404, known path with another method -> 405 (+ Allow), HEAD on a GET
 * route -> headers only, POST/PUT/PATCH without Content-Length -> 411, body over max_body ->
 * 413, handler failure -> 500; lws itself drops malformed request lines and oversized headers.
 * The query string is not part of the route match.
 *
 * Lifetime: free the server before or after destroying the lws context, either works. lws keeps
 * pointers into it (vhost user, listen address, name) for as long as the vhost lives, and a vhost
 * dies with its context; so a server freed first stops serving at once (requests that arrive
 * afterwards are closed unanswered) and its memory goes when lws finalizes the vhost. A client that
 * stops reading a reply is dropped after 30 s. Single-threaded (the loop). */
#ifndef CT_HTTP_SERVER_H
#define CT_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct lws_context;
struct http_server;
struct http_response;

struct http_request {
    const char *method;  /* "GET", "HEAD" (for a GET route), "POST", "PUT", ... */
    const char *path;    /* decoded by lws, without the query */
    const char *query;   /* the arguments joined with '&' (lws url-decodes them), "" if none */
    const char *body;    /* NUL-terminated copy, NULL when the request had none */
    size_t body_len;
};

/* Fill resp (defaults: 200, "text/plain; charset=utf-8", empty body) and return 0; a negative
 * return discards whatever was filled and answers 500. Must not call http_server_free. */
typedef int (*http_handler_fn)(void *ud, const struct http_request *req,
                               struct http_response *resp);

struct http_server_stats {
    uint64_t requests;      /* responses started, any status */
    uint64_t status_4xx;    /* among them: our 4xx (404, 405, 411, 413, ...) */
    uint64_t status_5xx;
    uint64_t bytes_out;     /* headers + bodies handed to lws */
    uint64_t writes;        /* lws_write calls: > 1 per response for big bodies */
};

/* Creates a vhost on ctx listening on host (a numeric IPv4 or IPv6 address, bound exactly;
 * NULL = "127.0.0.1") and port (0 = ephemeral, see http_server_port). NULL with errno: EINVAL
 * (ctx NULL, host not numeric, port out of range), bind's own errno (EADDRINUSE, EADDRNOTAVAIL
 * for an address that is not local, EACCES), EADDRNOTAVAIL if lws still would not listen,
 * ENOMEM. */
struct http_server *http_server_new(struct lws_context *ctx, const char *host, int port);

/* See "Lifetime" above. Takes NULL; returns NULL. */
struct http_server *http_server_free(struct http_server *srv);

/* Request bodies larger than this get 413 (default 64 KiB). */
void http_server_set_max_body(struct http_server *srv, size_t max_body);

/* The port actually listened on (the ephemeral one when port was 0); -1 once freed. */
int http_server_port(const struct http_server *srv);

/* Registers fn for method ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS") and an exact path
 * starting with '/'. -EINVAL (bad method or path), -EEXIST (already routed), -ENOMEM. */
int http_server_route(struct http_server *srv, const char *method, const char *path,
                      http_handler_fn fn, void *ud);

/* Registers fn for method and every path starting with prefix that has no exact route (the
 * handler reads req->path): one route for a family of paths, like /rules/<id>/<op> for 10,000
 * rules. Prefixes are tried in registration order; a path one matches with another method gets
 * 405. -EINVAL, -EEXIST, -ENOMEM as above. */
int http_server_route_prefix(struct http_server *srv, const char *method, const char *prefix,
                             http_handler_fn fn, void *ud);

void http_server_get_stats(const struct http_server *srv, struct http_server_stats *out);

/* ---- for handlers ---- */
/* All at once: status, content type (NULL = keep the current one) and a copy of the body.
 * 0, -EINVAL (content type, see http_response_type) or -ENOMEM. */
int http_response_set(struct http_response *resp, int status, const char *content_type,
                      const void *body, size_t len);
/* Same, but the body is buf itself (malloc'd), which the server frees with free(); ownership
 * passes even when this fails. For met_render's output. */
int http_response_take(struct http_response *resp, int status, const char *content_type,
                       char *buf, size_t len);
/* Piecewise: */
void http_response_status(struct http_response *resp, int status); /* 100..599, else 500 */
/* Copied; -EINVAL if longer than 127 bytes or containing CR/LF. */
int http_response_type(struct http_response *resp, const char *content_type);
int http_response_append(struct http_response *resp, const void *data, size_t len);
int http_response_printf(struct http_response *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
