/* http_stub: a small HTTP/1.1 keep-alive server on a test's own libuv loop (random loopback port),
 * for tests of the REST pool and the adapters. It accepts connections, reads and splits requests
 * (Content-Length bodies) and writes answers; what to answer is the test's: a callback gets each
 * request and answers it at once (http_stub_reply), later (it keeps the connection and replies
 * when it wants), never, or closes the connection (http_stub_close). Failures (listen, memory)
 * fail the test (cmocka fail_msg), so call it from tests or fixtures. */
#ifndef CT_HTTP_STUB_H
#define CT_HTTP_STUB_H

#include <stddef.h>
#include <uv.h>

struct http_stub;
/* One accepted connection. It stays valid until http_stub_free, closed or not, so a test may keep
 * it to answer later. */
struct http_stub_conn;

struct http_stub_req {
    /* NULL when the request line does not parse (the test decides: fail, close or ignore). */
    const char *method;
    const char *target; /* path and query as sent */
    const char *head;   /* request line and headers, blank line included, NUL-terminated */
    size_t head_len;
    const char *body; /* NUL-terminated copy */
    size_t body_len;
    int conn_requests; /* requests on this connection so far, this one included */
};

/* Called for every complete request, on the loop; the request's strings live for the call. */
typedef void (*http_stub_fn)(void *ud, struct http_stub_conn *c, const struct http_stub_req *r);

/* Listens on 127.0.0.1, a free port, on loop. Never NULL (fails the test instead). */
struct http_stub *http_stub_new(uv_loop_t *loop, http_stub_fn fn, void *ud);
/* Closes the listener and every connection; the memory goes once their close callbacks have run
 * (run the loop). Takes NULL; returns NULL. Not from inside the callback. */
struct http_stub *http_stub_free(struct http_stub *s);

int http_stub_port(const struct http_stub *s);
/* "http://127.0.0.1:<port><path>" into out (cap bytes). */
void http_stub_url(const struct http_stub *s, const char *path, char *out, size_t cap);
int http_stub_accepted(const struct http_stub *s); /* connections accepted */
int http_stub_requests(const struct http_stub *s); /* requests given to the callback */

/* Writes "HTTP/1.1 <status>", Content-Length, headers (NULL, or "Name: value\r\n" lines) and
 * body. 0, or -ENOTCONN when c is closed (nothing written). */
int http_stub_reply(struct http_stub_conn *c, int status, const char *headers, const void *body,
                    size_t len);
/* Closes c without another byte (a keep-alive connection the server drops); reading stops. */
void http_stub_close(struct http_stub_conn *c);

/* Header name's value (surrounding blanks cut) in r's head and its length in *len, or NULL. */
const char *http_stub_header(const struct http_stub_req *r, const char *name, size_t *len);
/* key's value in "k=v&k2=v2" params (query or form body) into out (cut to cap - 1); "" when
 * absent. */
void http_stub_param(const char *params, const char *key, char *out, size_t cap);

#endif
