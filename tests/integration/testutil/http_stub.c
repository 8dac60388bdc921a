#include "http_stub.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#define READ_ROOM 65536

struct http_stub_conn {
    uv_tcp_t h;
    struct http_stub *s;
    char *buf;
    size_t len, cap;
    int nreq;
    bool closing;
    struct http_stub_conn *next; /* every connection of s, open or closed */
};

struct http_stub {
    uv_tcp_t tcp;
    http_stub_fn fn;
    void *ud;
    int port;
    int accepted;
    int requests;
    /* Handles (listener, connections) whose close callback has not run: the memory is released
     * when the last one has, after http_stub_free. Closed connections are kept until then so that
     * a test holding one can still ask (http_stub_reply says -ENOTCONN). */
    int open_handles;
    bool freeing;
    struct http_stub_conn *conns;
};

static void release_if_done(struct http_stub *s) {
    if (!s->freeing || s->open_handles > 0) return;
    while (s->conns) {
        struct http_stub_conn *c = s->conns;
        s->conns = c->next;
        free(c);
    }
    free(s);
}

static void conn_closed(uv_handle_t *h) {
    struct http_stub_conn *c = h->data;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    c->s->open_handles--;
    release_if_done(c->s);
}

static void listener_closed(uv_handle_t *h) {
    struct http_stub *s = h->data;
    s->open_handles--;
    release_if_done(s);
}

void http_stub_close(struct http_stub_conn *c) {
    if (c->closing) return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->h, conn_closed);
}

static void write_done(uv_write_t *w, int status) {
    (void)status;
    free(w->data);
    free(w);
}

int http_stub_reply(struct http_stub_conn *c, int status, const char *headers, const void *body,
                    size_t len) {
    if (c->closing) return -ENOTCONN;
    if (!headers) headers = "";
    size_t cap = len + strlen(headers) + 128;
    char *out = malloc(cap);
    uv_write_t *w = malloc(sizeof *w);
    if (!out || !w) fail_msg("http_stub: out of memory for a %zu-byte answer", len);
    int n = snprintf(out, cap, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                     status / 100 == 2 ? "OK" : "Status", len, headers);
    if (len) memcpy(out + n, body, len);
    w->data = out;
    uv_buf_t b = uv_buf_init(out, (unsigned)((size_t)n + len));
    if (uv_write(w, (uv_stream_t *)&c->h, &b, 1, write_done) != 0) {
        /* the peer went away meanwhile: as if it had closed before the answer */
        free(out);
        free(w);
        return -ENOTCONN;
    }
    return 0;
}

/* name's value within head[0..hlen) (need not be NUL-terminated). */
static const char *find_header(const char *head, size_t hlen, const char *name, size_t *vlen) {
    size_t nl = strlen(name);
    const char *s = head, *end = head + hlen;
    while (s < end) {
        const char *e = memchr(s, '\n', (size_t)(end - s));
        if (!e) e = end;
        if ((size_t)(e - s) > nl && s[nl] == ':' && strncasecmp(s, name, nl) == 0) {
            const char *v = s + nl + 1;
            while (v < e && *v == ' ') v++;
            const char *ve = e;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        s = e + 1;
    }
    return NULL;
}

const char *http_stub_header(const struct http_stub_req *r, const char *name, size_t *len) {
    return find_header(r->head, r->head_len, name, len);
}

void http_stub_param(const char *params, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    out[0] = '\0';
    for (const char *p = params; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1, *e = strchr(v, '&');
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= cap) n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return;
        }
    }
}

/* Hands every complete request in c's buffer to the callback, in order; stops when the callback
 * closed c (what follows on a dropped connection is never answered). */
static void serve(struct http_stub_conn *c) {
    struct http_stub *s = c->s;
    while (!c->closing) {
        char *end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (!end) return;
        size_t hlen = (size_t)(end - c->buf) + 4, vl, blen = 0;
        const char *cl = find_header(c->buf, hlen, "Content-Length", &vl);
        if (cl) blen = strtoul(cl, NULL, 10);
        if (c->len < hlen + blen) return;
        /* NUL-terminated copies: the buffer may hold the next request right after this one */
        char method[16], target[2048];
        char *head = strndup(c->buf, hlen), *body = malloc(blen + 1);
        if (!head || !body) fail_msg("http_stub: out of memory for a %zu-byte request", blen);
        memcpy(body, c->buf + hlen, blen);
        body[blen] = '\0';
        bool parsed = sscanf(head, "%15s %2047s", method, target) == 2;
        struct http_stub_req r = {.method = parsed ? method : NULL,
                                  .target = parsed ? target : NULL,
                                  .head = head,
                                  .head_len = hlen,
                                  .body = body,
                                  .body_len = blen,
                                  .conn_requests = ++c->nreq};
        s->requests++;
        s->fn(s->ud, c, &r);
        free(head);
        free(body);
        if (c->closing) return;
        memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
        c->len -= hlen + blen;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    struct http_stub_conn *c = h->data;
    (void)suggested;
    if (c->cap - c->len < READ_ROOM) {
        c->cap = c->cap * 2 + READ_ROOM;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) fail_msg("http_stub: out of memory for a %zu-byte read buffer", c->cap);
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
    struct http_stub_conn *c = st->data;
    (void)b;
    if (n < 0) {
        http_stub_close(c);
        return;
    }
    c->len += (size_t)n;
    serve(c);
}

static void on_connection(uv_stream_t *l, int status) {
    struct http_stub *s = l->data;
    if (status != 0) fail_msg("http_stub: listen: %s", uv_strerror(status));
    struct http_stub_conn *c = calloc(1, sizeof *c);
    if (!c) fail_msg("http_stub: out of memory for a connection");
    c->s = s;
    assert_int_equal(uv_tcp_init(l->loop, &c->h), 0);
    c->h.data = c;
    c->next = s->conns;
    s->conns = c;
    s->open_handles++;
    int rc = uv_accept(l, (uv_stream_t *)&c->h);
    if (rc != 0) fail_msg("http_stub: accept: %s", uv_strerror(rc));
    uv_tcp_nodelay(&c->h, 1);
    s->accepted++;
    assert_int_equal(uv_read_start((uv_stream_t *)&c->h, on_alloc, on_read), 0);
}

struct http_stub *http_stub_new(uv_loop_t *loop, http_stub_fn fn, void *ud) {
    struct http_stub *s = calloc(1, sizeof *s);
    if (!s) fail_msg("http_stub: out of memory");
    s->fn = fn;
    s->ud = ud;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(loop, &s->tcp), 0);
    s->tcp.data = s;
    s->open_handles = 1;
    int rc = uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->tcp, 256, on_connection);
    if (rc != 0) fail_msg("http_stub: listen on 127.0.0.1: %s", uv_strerror(rc));
    struct sockaddr_in got;
    int len = sizeof got;
    assert_int_equal(uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&got, &len), 0);
    s->port = ntohs(got.sin_port);
    return s;
}

struct http_stub *http_stub_free(struct http_stub *s) {
    if (!s || s->freeing) return NULL;
    s->freeing = true;
    for (struct http_stub_conn *c = s->conns; c; c = c->next) http_stub_close(c);
    uv_close((uv_handle_t *)&s->tcp, listener_closed);
    return NULL;
}

int http_stub_port(const struct http_stub *s) {
    return s->port;
}

void http_stub_url(const struct http_stub *s, const char *path, char *out, size_t cap) {
    snprintf(out, cap, "http://127.0.0.1:%d%s", s->port, path);
}

int http_stub_accepted(const struct http_stub *s) {
    return s->accepted;
}

int http_stub_requests(const struct http_stub *s) {
    return s->requests;
}
