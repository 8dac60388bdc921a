#include "sim_http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "utlist.h"

struct shttp_conn {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    struct shttp_server *srv;
    char *buf;
    size_t len, cap;
    size_t pending_writes;
    bool closing;
    bool close_after_write;
    bool upgrade_pending;
    bool sent_continue;
    bool hold_done;          /* the held request at the buffer's head is due now */
    struct shttp_timer *tm;  /* a delayed response or a held request (fault injection) */
    char peer[48];
    uint64_t id;
    struct sbuf chunked; /* decoded chunked body of the current request */
    struct shttp_conn *prev, *next;
};

/* A response written later (data != NULL) or a held request to handle again (data == NULL). */
struct shttp_timer {
    uv_timer_t t;
    struct shttp_conn *c; /* NULL once the connection is gone */
    char *data;
    size_t len;
    bool close_after;
};

struct shttp_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct shttp_opts opts;
    int port;
    bool closing;
    bool listener_closed;
    size_t nconns;
    uint64_t next_conn_id;
    struct shttp_conn *conns;
};

struct wreq {
    uv_write_t req;
    struct shttp_conn *c;
    char *data;
};

static void conn_close(struct shttp_conn *c);
static void conn_reset(struct shttp_conn *c);
static void conn_process(struct shttp_conn *c);

/* ---- small helpers ---- */

const char *shttp_method_name(enum shttp_method m)
{
    static const char *const names[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "OTHER"};
    return (unsigned)m < sizeof(names) / sizeof(names[0]) ? names[m] : "OTHER";
}

const char *shttp_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 418: return "I'm a teapot";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

const char *shttp_header(const struct shttp_req *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct shttp_header *h = &r->headers[i];
        if (h->name_len == nl && strncasecmp(h->name, name, nl) == 0) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

bool shttp_path_is(const struct shttp_req *r, const char *s)
{
    size_t n = strlen(s);
    return r->path_len == n && memcmp(r->path, s, n) == 0;
}

/* Does the comma-separated header value contain token (case-insensitive)? */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return true;
    }
    return false;
}

void shttp_resp_json(struct shttp_resp *r, int status, const char *json)
{
    r->status = status;
    sbuf_reset(&r->body);
    sbuf_adds(&r->body, json);
}

/* ---- writing ---- */

static void after_writes(struct shttp_conn *c);

static void write_cb(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct shttp_conn *c = w->c;
    free(w->data);
    free(w);
    c->pending_writes--;
    if (status < 0) {
        conn_close(c);
        return;
    }
    after_writes(c);
}

/* Takes ownership of data (malloc'd). */
static void conn_send(struct shttp_conn *c, char *data, size_t len)
{
    size_t off = 0;
    if (c->closing) {
        free(data);
        return;
    }
    if (c->pending_writes == 0) {
        /* Common case: the kernel takes it all now; no write request to allocate. */
        uv_buf_t b = uv_buf_init(data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n >= 0 && (size_t)n == len) {
            free(data);
            return;
        }
        if (n < 0 && n != UV_EAGAIN) {
            free(data);
            conn_close(c);
            return;
        }
        if (n > 0)
            off = (size_t)n;
    }
    struct wreq *w = malloc(sizeof(*w));
    if (!w) {
        free(data);
        conn_close(c);
        return;
    }
    w->c = c;
    w->data = data;
    uv_buf_t b = uv_buf_init(data + off, (unsigned)(len - off));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) < 0) {
        free(data);
        free(w);
        conn_close(c);
        return;
    }
    c->pending_writes++;
}

/* The response's bytes (malloc'd) or NULL (out of memory). */
static char *format_resp(const struct shttp_req *req, struct shttp_resp *r, bool http10, size_t *len)
{
    struct sbuf out = SBUF_INIT;
    bool head = req && req->method == SHTTP_HEAD;
    size_t blen = sbuf_failed(&r->body) ? 0 : r->body.len;
    int status = r->status ? r->status : 200;

    if (sbuf_failed(&r->body) || sbuf_failed(&r->headers)) {
        status = 500;
        blen = 0;
    }
    sbuf_addf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status,
              shttp_status_text(status), r->content_type ? r->content_type : "application/json",
              blen);
    if (r->headers.len && !sbuf_failed(&r->headers))
        sbuf_add(&out, r->headers.p, r->headers.len);
    if (r->close)
        sbuf_adds(&out, "Connection: close\r\n");
    else if (http10)
        sbuf_adds(&out, "Connection: keep-alive\r\n");
    sbuf_add(&out, "\r\n", 2);
    if (!head && blen)
        sbuf_add(&out, r->body.p, blen);
    return sbuf_steal(&out, len);
}

/* Takes ownership of data (NULL: out of memory, the connection is closed). */
static void send_data(struct shttp_conn *c, char *data, size_t len, bool close)
{
    if (!data) {
        conn_close(c);
        return;
    }
    if (close) {
        c->close_after_write = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    conn_send(c, data, len);
    if (close && !c->closing && c->pending_writes == 0)
        conn_close(c);
}

static void send_resp(struct shttp_conn *c, const struct shttp_req *req, struct shttp_resp *r,
                      bool http10)
{
    size_t len = 0;
    char *data = format_resp(req, r, http10, &len);
    send_data(c, data, len, r->close);
}

/* ---- fault injection: delayed responses, held requests ---- */

static void timer_close_cb(uv_handle_t *h)
{
    struct shttp_timer *t = h->data;
    free(t->data);
    free(t);
}

static void timer_cb(uv_timer_t *h)
{
    struct shttp_timer *t = h->data;
    struct shttp_conn *c = t->c;
    uv_close((uv_handle_t *)&t->t, timer_close_cb);
    if (!c)
        return;
    c->tm = NULL;
    if (t->data) {
        char *d = t->data;
        t->data = NULL;
        send_data(c, d, t->len, t->close_after);
    } else {
        c->hold_done = true;
    }
    if (!c->closing)
        conn_process(c);
}

/* 0, or -1 (the connection was closed). data may be NULL (a held request). */
static int start_timer(struct shttp_conn *c, int ms, char *data, size_t len, bool close_after)
{
    struct shttp_timer *t = calloc(1, sizeof(*t));
    if (!t || uv_timer_init(c->tcp.loop, &t->t) < 0) {
        free(t);
        free(data);
        conn_close(c);
        return -1;
    }
    t->t.data = t;
    t->c = c;
    t->data = data;
    t->len = len;
    t->close_after = close_after;
    c->tm = t;
    uv_timer_start(&t->t, timer_cb, (uint64_t)(ms < 0 ? 0 : ms), 0);
    return 0;
}

/* Answer a request we could not parse, then close. */
static void send_error_close(struct shttp_conn *c, int status, const char *msg)
{
    struct shttp_resp r = {.status = status, .body = SBUF_INIT, .headers = SBUF_INIT, .close = true};
    sbuf_adds(&r.body, "{\"code\":-1000,\"msg\":");
    sbuf_add_jstr(&r.body, msg);
    sbuf_addc(&r.body, '}');
    send_resp(c, NULL, &r, false);
    sbuf_free(&r.body);
    sbuf_free(&r.headers);
}

/* ---- websocket hand-over ---- */

static void do_adopt(struct shttp_conn *c)
{
    struct shttp_server *s = c->srv;
    int fd = -1, nfd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0 || (nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        conn_close(c);
        return;
    }
    char *bytes = malloc(c->len + 1);
    if (!bytes) {
        close(nfd);
        conn_close(c);
        return;
    }
    size_t n = c->len;
    memcpy(bytes, c->buf, n);
    c->len = 0;
    /* uv_close removes the original fd from epoll (EPOLL_CTL_DEL) and closes it before lws
     * registers the duplicate, so no stale registration of the shared socket stays behind. */
    conn_close(c);
    s->opts.adopt(s->opts.ud, nfd, bytes, n);
    free(bytes);
}

static void after_writes(struct shttp_conn *c)
{
    if (c->closing || c->pending_writes)
        return;
    if (c->close_after_write)
        conn_close(c);
    else if (c->upgrade_pending)
        do_adopt(c);
}

/* ---- parsing ---- */

static enum shttp_method method_of(const char *m, size_t n)
{
    static const struct { const char *s; enum shttp_method m; } t[] = {
        {"GET", SHTTP_GET}, {"POST", SHTTP_POST}, {"PUT", SHTTP_PUT}, {"DELETE", SHTTP_DELETE},
        {"HEAD", SHTTP_HEAD}, {"OPTIONS", SHTTP_OPTIONS}, {"PATCH", SHTTP_PATCH},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strlen(t[i].s) == n && memcmp(t[i].s, m, n) == 0)
            return t[i].m;
    return SHTTP_OTHER;
}

static const char *find_crlf(const char *p, const char *end)
{
    for (; p + 1 < end; p++)
        if (p[0] == '\r' && p[1] == '\n')
            return p;
    return NULL;
}

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Parses request line and headers in buf[0..head_len) (head_len includes the blank line).
 * Returns 0 or an HTTP status for the error. */
static int parse_head(char *buf, size_t head_len, struct shttp_req *r, bool *http10)
{
    const char *p = buf, *end = buf + head_len;
    const char *eol = find_crlf(p, end);
    if (!eol)
        return 400;
    /* request line: METHOD SP target SP HTTP/1.x */
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    if (!sp1 || sp1 == p)
        return 400;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar(*q))
            return 400;
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(eol - t));
    if (!sp2 || sp2 == t)
        return 400;
    if ((size_t)(eol - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1'))
        return 400;
    *http10 = sp2[8] == '0';
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return 400;
    if (*t != '/')
        return 400; /* origin-form only */
    r->method_str = p;
    r->method_len = (size_t)(sp1 - p);
    r->method = method_of(p, r->method_len);
    r->target = t;
    r->target_len = (size_t)(sp2 - t);
    const char *hash = memchr(t, '#', r->target_len);
    const char *tend = hash ? hash : sp2;
    const char *qm = memchr(t, '?', (size_t)(tend - t));
    r->path = t;
    r->path_len = (size_t)((qm ? qm : tend) - t);
    r->query = qm ? qm + 1 : "";
    r->query_len = qm ? (size_t)(tend - qm - 1) : 0;

    p = eol + 2;
    r->nheaders = 0;
    while (p < end) {
        eol = find_crlf(p, end);
        if (!eol)
            return 400;
        if (eol == p)
            break; /* blank line */
        if (*p == ' ' || *p == '\t')
            return 400; /* obsolete line folding */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || colon == p)
            return 400;
        for (const char *q = p; q < colon; q++)
            if (!is_tchar(*q))
                return 400;
        const char *v = colon + 1, *ve = eol;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (r->nheaders >= SHTTP_MAX_HEADERS)
            return 431;
        r->headers[r->nheaders++] = (struct shttp_header){p, v, (size_t)(colon - p), (size_t)(ve - v)};
        p = eol + 2;
    }
    return 0;
}

/* Chunked body starting at buf[start..len). Returns 1 (complete: body decoded into out,
 * *consumed = bytes used), 0 (need more), or an HTTP error status. */
static int parse_chunked(const char *buf, size_t start, size_t len, struct sbuf *out, size_t *consumed)
{
    size_t pos = start;
    sbuf_reset(out);
    for (;;) {
        const char *eol = find_crlf(buf + pos, buf + len);
        if (!eol)
            return len - pos > 1024 ? 400 : 0;
        size_t size = 0;
        const char *q = buf + pos;
        int digits = 0;
        for (; q < eol; q++, digits++) {
            int h = (*q >= '0' && *q <= '9') ? *q - '0' : (*q >= 'a' && *q <= 'f') ? *q - 'a' + 10
                    : (*q >= 'A' && *q <= 'F') ? *q - 'A' + 10 : -1;
            if (h < 0)
                break;
            if (size > (SHTTP_MAX_BODY_BYTES >> 4))
                return 413;
            size = size * 16 + (size_t)h;
        }
        if (digits == 0 || (q < eol && *q != ';' && *q != ' ' && *q != '\t'))
            return 400;
        pos = (size_t)(eol - buf) + 2;
        if (size == 0) {
            for (;;) { /* trailer section, ends with an empty line */
                eol = find_crlf(buf + pos, buf + len);
                if (!eol)
                    return len - pos > 8192 ? 400 : 0;
                bool empty = eol == buf + pos;
                pos = (size_t)(eol - buf) + 2;
                if (empty) {
                    *consumed = pos - start;
                    return sbuf_failed(out) ? 500 : 1;
                }
            }
        }
        if (out->len + size > SHTTP_MAX_BODY_BYTES)
            return 413;
        if (len - pos < size + 2)
            return 0;
        if (buf[pos + size] != '\r' || buf[pos + size + 1] != '\n')
            return 400;
        sbuf_add(out, buf + pos, size);
        pos += size + 2;
    }
}

static void send_continue(struct shttp_conn *c)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char *d = malloc(sizeof(msg));
    if (!d) {
        conn_close(c);
        return;
    }
    memcpy(d, msg, sizeof(msg));
    conn_send(c, d, sizeof(msg) - 1);
    c->sent_continue = true;
}

/* Handle as many complete requests as the buffer holds. */
static void conn_process(struct shttp_conn *c)
{
    struct shttp_server *s = c->srv;
    while (!c->closing && !c->close_after_write && !c->upgrade_pending && !c->tm && c->len > 0) {
        struct shttp_req req;
        bool http10 = false;
        const char *hend = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (hend)
            hend += 4;
        if (!hend) {
            if (c->len > SHTTP_MAX_HEAD_BYTES)
                send_error_close(c, 431, "request head too large");
            return;
        }
        size_t head_len = (size_t)(hend - c->buf);
        if (head_len > SHTTP_MAX_HEAD_BYTES) {
            send_error_close(c, 431, "request head too large");
            return;
        }
        memset(&req, 0, sizeof(req));
        int st = parse_head(c->buf, head_len, &req, &http10);
        if (st) {
            send_error_close(c, st, st == 431 ? "too many header fields" : "malformed HTTP request");
            return;
        }

        /* body */
        size_t te_len = 0, cl_len = 0, total;
        const char *te = shttp_header(&req, "Transfer-Encoding", &te_len);
        const char *cl = NULL;
        size_t clen = 0;
        for (size_t i = 0; i < req.nheaders; i++) {
            const struct shttp_header *h = &req.headers[i];
            if (h->name_len != 14 || strncasecmp(h->name, "Content-Length", 14) != 0)
                continue;
            size_t v = 0;
            if (h->value_len == 0 || h->value_len > 12) {
                send_error_close(c, 400, "bad Content-Length");
                return;
            }
            for (size_t k = 0; k < h->value_len; k++) {
                if (h->value[k] < '0' || h->value[k] > '9') {
                    send_error_close(c, 400, "bad Content-Length");
                    return;
                }
                v = v * 10 + (size_t)(h->value[k] - '0');
            }
            if (cl && v != clen) {
                send_error_close(c, 400, "conflicting Content-Length headers");
                return;
            }
            cl = h->value;
            cl_len = h->value_len;
            clen = v;
        }
        (void)cl_len;
        size_t exp_len = 0;
        const char *expect = shttp_header(&req, "Expect", &exp_len);
        bool want_continue = expect && exp_len == 12 && strncasecmp(expect, "100-continue", 12) == 0;
        if (te) {
            if (!has_token(te, te_len, "chunked")) {
                send_error_close(c, 501, "unsupported Transfer-Encoding");
                return;
            }
            size_t used = 0;
            int rc = parse_chunked(c->buf, head_len, c->len, &c->chunked, &used);
            if (rc == 0) {
                if (want_continue && !c->sent_continue)
                    send_continue(c);
                return;
            }
            if (rc != 1) {
                send_error_close(c, rc, "bad chunked body");
                return;
            }
            req.body = c->chunked.p ? c->chunked.p : "";
            req.body_len = c->chunked.len;
            total = head_len + used;
        } else {
            if (clen > SHTTP_MAX_BODY_BYTES) {
                send_error_close(c, 413, "request body too large");
                return;
            }
            if (c->len - head_len < clen) {
                if (want_continue && !c->sent_continue)
                    send_continue(c);
                return;
            }
            req.body = clen ? c->buf + head_len : "";
            req.body_len = clen;
            total = head_len + clen;
        }

        size_t cn_len = 0;
        const char *conn = shttp_header(&req, "Connection", &cn_len);
        if (http10)
            req.keep_alive = conn && has_token(conn, cn_len, "keep-alive");
        else
            req.keep_alive = !(conn && has_token(conn, cn_len, "close"));
        size_t up_len = 0;
        const char *up = shttp_header(&req, "Upgrade", &up_len);
        req.ws_upgrade = req.method == SHTTP_GET && up && has_token(up, up_len, "websocket") &&
                         conn && has_token(conn, cn_len, "upgrade");

        struct shttp_resp resp = {.status = 200, .body = SBUF_INIT, .headers = SBUF_INIT};
        req.peer_ip = c->peer;
        req.held = c->hold_done;
        req.conn_id = c->id;
        if (req.ws_upgrade && s->opts.upgrade) {
            if (s->opts.upgrade(s->opts.ud, &req, &resp)) {
                /* Hand the socket and everything from this request on (the buffer starts
                 * with it: earlier requests were dropped) to lws once our writes are done. */
                c->upgrade_pending = true;
                uv_read_stop((uv_stream_t *)&c->tcp);
                sbuf_free(&resp.body);
                sbuf_free(&resp.headers);
                sbuf_reset(&c->chunked);
                after_writes(c);
                return;
            }
            resp.close = true;
        } else {
            s->opts.handler(s->opts.ud, &req, &resp);
        }
        if (resp.hold_ms > 0 && !req.held) {
            /* Leave the request in the buffer and handle it again later. */
            sbuf_free(&resp.body);
            sbuf_free(&resp.headers);
            sbuf_reset(&c->chunked);
            start_timer(c, resp.hold_ms, NULL, 0, false);
            return;
        }
        c->hold_done = false;
        if (resp.reset) {
            sbuf_free(&resp.body);
            sbuf_free(&resp.headers);
            sbuf_reset(&c->chunked);
            conn_reset(c);
            return;
        }
        if (!req.keep_alive)
            resp.close = true;
        if (resp.delay_ms > 0) {
            size_t dlen = 0;
            char *d = format_resp(&req, &resp, http10, &dlen);
            if (!d || start_timer(c, resp.delay_ms, d, dlen, resp.close) < 0) {
                if (!d)
                    conn_close(c);
                sbuf_free(&resp.body);
                sbuf_free(&resp.headers);
                return;
            }
        } else {
            send_resp(c, &req, &resp, http10);
        }
        sbuf_free(&resp.body);
        sbuf_free(&resp.headers);
        sbuf_reset(&c->chunked);
        c->sent_continue = false;

        /* drop the request from the buffer */
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
    }
}

/* ---- connection lifecycle ---- */

static void maybe_free_server(struct shttp_server *s)
{
    if (s->closing && s->listener_closed && s->nconns == 0)
        free(s);
}

static void conn_close_cb(uv_handle_t *h)
{
    struct shttp_conn *c = h->data;
    struct shttp_server *s = c->srv;
    DL_DELETE(s->conns, c);
    s->nconns--;
    free(c->buf);
    sbuf_free(&c->chunked);
    free(c);
    maybe_free_server(s);
}

static void drop_timer(struct shttp_conn *c)
{
    if (c->tm) {
        c->tm->c = NULL;
        uv_timer_stop(&c->tm->t);
        uv_close((uv_handle_t *)&c->tm->t, timer_close_cb);
        c->tm = NULL;
    }
}

static void conn_close(struct shttp_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    drop_timer(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

/* Close with a TCP RST (SO_LINGER 0): the client sees "connection reset by peer". */
static void conn_reset(struct shttp_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    drop_timer(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_tcp_close_reset(&c->tcp, conn_close_cb) < 0)
        uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

#define READ_CAP_MAX (SHTTP_MAX_HEAD_BYTES + SHTTP_MAX_BODY_BYTES + 64 * 1024)

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    struct shttp_conn *c = h->data;
    (void)suggested;
    if (c->cap - c->len < 16 * 1024 && c->cap < READ_CAP_MAX) {
        size_t cap = c->cap ? c->cap * 2 : 64 * 1024;
        if (cap > READ_CAP_MAX)
            cap = READ_CAP_MAX;
        char *nb = realloc(c->buf, cap);
        if (nb) {
            c->buf = nb;
            c->cap = cap;
        }
    }
    *out = uv_buf_init(c->buf ? c->buf + c->len : NULL, (unsigned)(c->buf ? c->cap - c->len : 0));
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct shttp_conn *c = st->data;
    (void)b;
    if (n < 0) {
        conn_close(c); /* EOF, reset, or no buffer space (UV_ENOBUFS) */
        return;
    }
    if (n == 0)
        return;
    c->len += (size_t)n;
    conn_process(c);
}

static void accept_cb(uv_stream_t *ls, int status)
{
    struct shttp_server *s = ls->data;
    if (status < 0 || s->closing)
        return;
    struct shttp_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = s;
    c->id = ++s->next_conn_id;
    if (uv_tcp_init(s->loop, &c->tcp) < 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    DL_APPEND(s->conns, c);
    s->nconns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    /* Without TCP_NODELAY a request/response exchange stalls ~40 ms (Nagle + delayed ACK). */
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage peer;
    int plen = sizeof(peer);
    snprintf(c->peer, sizeof(c->peer), "unknown");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &plen) == 0) {
        if (peer.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&peer, c->peer, sizeof(c->peer));
        else if (peer.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&peer, c->peer, sizeof(c->peer));
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0)
        conn_close(c);
}

static void listener_close_cb(uv_handle_t *h)
{
    struct shttp_server *s = h->data;
    s->listener_closed = true;
    maybe_free_server(s);
}

struct shttp_server *shttp_new(uv_loop_t *loop, const char *ip, int port,
                               const struct shttp_opts *opts, int *err)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    int rc;
    struct shttp_server *s = calloc(1, sizeof(*s));
    if (!s) {
        *err = UV_ENOMEM;
        return NULL;
    }
    s->loop = loop;
    s->opts = *opts;
    if ((rc = uv_ip4_addr(ip, port, &addr)) < 0) {
        free(s);
        *err = rc;
        return NULL;
    }
    if ((rc = uv_tcp_init(loop, &s->listener)) < 0) {
        free(s);
        *err = rc;
        return NULL;
    }
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 511, accept_cb)) < 0 ||
        (rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len)) < 0) {
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, listener_close_cb);
        *err = rc;
        return NULL;
    }
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return s;
}

int shttp_port(const struct shttp_server *s)
{
    return s->port;
}

size_t shttp_connections(const struct shttp_server *s)
{
    return s->nconns;
}

void shttp_close(struct shttp_server *s)
{
    struct shttp_conn *c, *tmp;
    if (!s || s->closing)
        return;
    s->closing = true;
    DL_FOREACH_SAFE(s->conns, c, tmp)
        conn_close(c);
    uv_close((uv_handle_t *)&s->listener, listener_close_cb);
}
