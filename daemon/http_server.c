/* http_server: HTTP/1.1 routes on an lws vhost of an existing libuv-hosted context (see
 * http_server.h). Reply recipe (EVENT-LOOP.md section 1): lws_add_http_common_headers with the
 * real content length, "Connection: close", lws_finalize_http_header, body, the last write
 * LWS_WRITE_HTTP_FINAL, then close (return -1).
 *
 * One request per connection, on purpose. lws 4.1.6 cannot take a second request safely: bytes
 * a client sent behind the first request (pipelining, or garbage) wait in lws's private input
 * list, and when the next request parsed from that list announces a body (Content-Length > 0, or
 * POST/PUT/PATCH without one), lws_http_action's "deal_body" loop feeds that same list again
 * from the request's own first byte: the handler gets the request line as its body, then lws
 * calls HTTP_BODY_COMPLETION over and over without consuming anything (an endless loop inside
 * one uv_run turn), and with a short list the outer reader goes on with a segment the inner loop
 * already freed. lws also keeps a connection in LRS_BODY after the body, so leftover input makes
 * it call HTTP_BODY_COMPLETION again on state we already used (the fuzzer's NULL path). Nothing
 * in the lws API tells whether such leftover input exists, so we cannot keep alive only the safe
 * connections: we never call lws_http_transaction_completed, every reply says Connection: close,
 * and lws never parses a second request on any connection. Each callback checks the phase of
 * its connection (struct pss) and closes on anything out of order. */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HASH_NONFATAL_OOM 1 /* a failed add leaves the entry out (hh.tbl == NULL) */
#include <uthash.h>

#define HTTP_CHUNK (16 * 1024) /* body bytes per lws_write / WRITEABLE callback */
#define HTTP_HDR_ROOM 1024      /* our response headers are a few short lines */
#define HTTP_QUERY_MAX 2048
#define DEFAULT_TYPE "text/plain; charset=utf-8"
#define HTTP_REPLY_TIMEOUT_S 30 /* a client that stops reading our reply is dropped after this */
/* HTTP_BODY_COMPLETION repeated (leftover input after the body) this often without one
 * WRITEABLE in between = lws is not progressing our reply: close rather than be called again.
 * Normally lws repeats it at most twice per loop wakeup while our reply goes out. */
#define HTTP_STALE_CALLS_MAX 1000

struct http_response {
    int status;
    char type[128];
    char *body;
    size_t len, cap;
    bool oom;
};

struct route {
    char method[8];
    char *path;
    http_handler_fn fn;
    void *ud;
    size_t next; /* the next route of the same path (index), SIZE_MAX: none; prefix routes:
                    the next prefix route */
    bool prefix; /* path is a prefix (http_server_route_prefix) */
};

/* The routes of one path (methods in registration order), found by hash: the daemon registers
 * three routes per copy rule, and a scan per registration and per request was 10^9 strcmp at
 * start-up with 10,000 rules. */
struct path_ent {
    const char *path; /* the first route's (strdup'ed, never moves) */
    size_t first, last;
    UT_hash_handle hh;
};

struct http_server {
    struct lws_vhost *vh; /* NULL once lws finalized it */
    bool freed;           /* http_server_free was called; memory goes with the vhost */
    char *host;           /* lws keeps the iface and name pointers while the vhost lives */
    char *name;
    size_t max_body;
    struct route *routes;
    size_t nroutes, cap;
    struct path_ent *paths; /* uthash by path */
    size_t prefixes;        /* the first prefix route (index), SIZE_MAX: none */
    unsigned char *wbuf; /* LWS_PRE + HTTP_HDR_ROOM + HTTP_CHUNK, shared: one loop thread */
    struct http_server_stats st;
};

/* Where a connection's one request is. lws zeroes struct pss when it binds the protocol (on
 * accept, and again just before LWS_CALLBACK_HTTP: it frees and reallocates user_space), so a
 * fresh one is PH_IDLE. */
enum pss_phase {
    PH_IDLE = 0,   /* no request seen: only LWS_CALLBACK_HTTP may come */
    PH_BODY,       /* request accepted, collecting its body until HTTP_BODY_COMPLETION */
    PH_RESPONDING, /* reply queued or going out over WRITEABLE; the connection closes after it */
};

/* Per-connection state; lws tells us before it frees it (HTTP_DROP_PROTOCOL, CLOSED_HTTP):
 * that is where our mallocs go. */
struct pss {
    enum pss_phase phase;
    char method[8];
    char *path;
    char *query;
    char *body;
    size_t body_len, body_cap; /* body_cap: the Content-Length we allocated for */
    bool body_overflow;
    bool body_done;    /* HTTP_BODY_COMPLETION seen once */
    unsigned stale_calls; /* HTTP_BODY_COMPLETION repeats since the last WRITEABLE */
    bool head;         /* HEAD: send headers only */
    bool headers_sent;
    char allow[128];   /* for 405 */
    struct http_response resp;
    size_t sent;       /* body bytes written */
};

/* ---- responses ------------------------------------------------------------------------ */

static void resp_reset(struct http_response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
    r->status = 200;
    strcpy(r->type, DEFAULT_TYPE);
}

void http_response_status(struct http_response *resp, int status)
{
    resp->status = status >= 100 && status <= 599 ? status : 500;
}

int http_response_type(struct http_response *resp, const char *content_type)
{
    if (!content_type || strlen(content_type) >= sizeof resp->type ||
        strpbrk(content_type, "\r\n"))
        return -EINVAL;
    strcpy(resp->type, content_type);
    return 0;
}

static int resp_reserve(struct http_response *r, size_t extra)
{
    if (r->oom) return -ENOMEM;
    if (r->len + extra + 1 <= r->cap) return 0;
    size_t cap = r->cap ? r->cap : 256;
    while (cap < r->len + extra + 1) cap *= 2;
    char *b = realloc(r->body, cap);
    if (!b) {
        r->oom = true;
        return -ENOMEM;
    }
    r->body = b;
    r->cap = cap;
    return 0;
}

int http_response_append(struct http_response *resp, const void *data, size_t len)
{
    if (resp_reserve(resp, len)) return -ENOMEM;
    memcpy(resp->body + resp->len, data, len);
    resp->len += len;
    resp->body[resp->len] = '\0';
    return 0;
}

int http_response_printf(struct http_response *resp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return -EINVAL;
    if (resp_reserve(resp, (size_t)n)) return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(resp->body + resp->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    resp->len += (size_t)n;
    return 0;
}

int http_response_take(struct http_response *resp, int status, const char *content_type,
                       char *buf, size_t len)
{
    free(resp->body);
    resp->body = buf;
    resp->len = buf ? len : 0;
    resp->cap = resp->len;
    resp->oom = false;
    http_response_status(resp, status);
    return content_type ? http_response_type(resp, content_type) : 0;
}

int http_response_set(struct http_response *resp, int status, const char *content_type,
                      const void *body, size_t len)
{
    http_response_status(resp, status);
    if (content_type && http_response_type(resp, content_type)) return -EINVAL;
    resp->len = 0;
    resp->oom = false;
    return len ? http_response_append(resp, body, len) : 0;
}

/* ---- per-transaction state ------------------------------------------------------------ */

static void pss_clear(struct pss *p)
{
    if (!p) return;
    free(p->path);
    free(p->query);
    free(p->body);
    free(p->resp.body);
    memset(p, 0, sizeof *p);
}

static struct http_server *server_of(struct lws *wsi)
{
    return lws_vhost_user(lws_get_vhost(wsi));
}

/* From here on the WRITEABLE callback sends p->resp, then the connection closes. */
static int start_reply(struct lws *wsi, struct pss *p)
{
    p->phase = PH_RESPONDING;
    /* lws clears its own timeout once a body is complete; bound the reply ourselves so a client
     * that never reads cannot pin the connection */
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, HTTP_REPLY_TIMEOUT_S);
    lws_callback_on_writable(wsi);
    return 0;
}

/* Queue a plain-text reply; the WRITEABLE callback sends it. */
static int respond_text(struct lws *wsi, struct pss *p, int status, const char *text)
{
    resp_reset(&p->resp);
    p->resp.status = status;
    http_response_append(&p->resp, text, strlen(text));
    return start_reply(wsi, p);
}

static int dispatch(struct lws *wsi, struct pss *p)
{
    struct http_server *srv = server_of(wsi);
    const char *match = p->head ? "GET" : p->method;
    const struct route *rt = NULL;
    size_t allow_len = 0;
    bool path_known = false;

    if (srv->freed) return -1;
    if (!p->path) return -1; /* on_http did not accept a request: nothing to route */
    p->allow[0] = '\0';
    struct path_ent *pe = NULL;
    HASH_FIND_STR(srv->paths, p->path, pe);
    size_t first = pe ? pe->first : SIZE_MAX;
    if (!pe) /* no exact route: the prefix routes whose prefix the path starts with */
        for (size_t i = srv->prefixes; i != SIZE_MAX && first == SIZE_MAX; i = srv->routes[i].next)
            if (strncmp(p->path, srv->routes[i].path, strlen(srv->routes[i].path)) == 0) first = i;
    for (size_t i = first; i != SIZE_MAX; i = srv->routes[i].next) {
        if (!pe && strncmp(p->path, srv->routes[i].path, strlen(srv->routes[i].path)) != 0) continue;
        path_known = true;
        if (strcmp(srv->routes[i].method, match) == 0) rt = &srv->routes[i];
        int n = snprintf(p->allow + allow_len, sizeof p->allow - allow_len, "%s%s%s",
                         allow_len ? ", " : "", srv->routes[i].method,
                         strcmp(srv->routes[i].method, "GET") == 0 ? ", HEAD" : "");
        if (n > 0 && (size_t)n < sizeof p->allow - allow_len) allow_len += (size_t)n;
    }
    if (!rt && path_known) return respond_text(wsi, p, 405, "method not allowed\n");
    if (!rt) return respond_text(wsi, p, 404, "not found\n");
    p->allow[0] = '\0';
    if (p->body_overflow) return respond_text(wsi, p, 413, "request body too large\n");

    struct http_request req = {
        .method = p->method,
        .path = p->path,
        .query = p->query ? p->query : "",
        .body = p->body,
        .body_len = p->body_len,
    };
    resp_reset(&p->resp);
    int rc = rt->fn(rt->ud, &req, &p->resp);
    if (rc < 0 || p->resp.oom) return respond_text(wsi, p, 500, "internal error\n");
    return start_reply(wsi, p);
}

static const struct {
    enum lws_token_indexes tok;
    const char *name;
} methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},
    {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
#if defined(LWS_WITH_HTTP_UNCOMMON_HEADERS)
    {WSI_TOKEN_PUT_URI, "PUT"},
    {WSI_TOKEN_PATCH_URI, "PATCH"},
    {WSI_TOKEN_DELETE_URI, "DELETE"},
    {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
#endif
};

static char *copy_query(struct lws *wsi)
{
    char frag[512], *q = NULL;
    size_t len = 0;
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0) break;
        if (len + (size_t)n + 2 > HTTP_QUERY_MAX) break; /* the rest is dropped, not fatal */
        char *nq = realloc(q, len + (size_t)n + 2);
        if (!nq) break;
        q = nq;
        if (len) q[len++] = '&';
        memcpy(q + len, frag, (size_t)n);
        len += (size_t)n;
        q[len] = '\0';
    }
    return q;
}

/* Headers are complete. Answer now, or wait for the body (lws then calls HTTP_BODY and
 * HTTP_BODY_COMPLETION; it expects one whenever Content-Length > 0, and for a POST with an
 * explicit 0). */
static int on_http(struct lws *wsi, struct pss *p, const char *uri)
{
    struct http_server *srv = server_of(wsi);
    /* A second request on one connection (see the top of this file): lws reached it on a path
     * of its own that kept the connection (none known after CONFIRM_UPGRADE below). Refuse it
     * before lws starts on its body. The mark lives in the wsi, which outlives pss. */
    if (p->phase != PH_IDLE || lws_get_opaque_user_data(wsi)) return -1;
    lws_set_opaque_user_data(wsi, srv);
    pss_clear(p);
    if (srv->freed) return -1; /* the owner let go; the vhost just has not died yet */

    const char *method = NULL;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length(wsi, methods[i].tok) > 0) {
            method = methods[i].name;
            break;
        }
    if (!method || !uri) return -1; /* lws vets the request line; nothing sensible to answer */
    strcpy(p->method, method);
    p->head = strcmp(method, "HEAD") == 0;
    p->path = strdup(uri);
    p->query = copy_query(wsi);
    if (!p->path) return -1;

    bool body_method = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                       strcmp(method, "PATCH") == 0;
    char cl[32];
    bool has_cl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
                  lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
    unsigned long long clen = 0;
    if (has_cl) {
        char *end;
        errno = 0;
        clen = strtoull(cl, &end, 10);
        if (errno || end == cl || *end || cl[0] == '-')
            return respond_text(wsi, p, 400, "bad content-length\n");
    }
    /* lws would wait for up to 100 MB of an unframed (or chunked) body */
    if (body_method && !has_cl) return respond_text(wsi, p, 411, "content-length required\n");
    if (clen > srv->max_body) return respond_text(wsi, p, 413, "request body too large\n");
    if (clen > 0 || (has_cl && strcmp(method, "POST") == 0)) {
        p->body = malloc((size_t)clen + 1);
        if (!p->body) return -1;
        p->body[0] = '\0';
        p->body_cap = (size_t)clen;
        p->phase = PH_BODY;
        return 0; /* dispatch on HTTP_BODY_COMPLETION */
    }
    return dispatch(wsi, p);
}

static int on_body(struct pss *p, const void *in, size_t len)
{
    if (p->phase == PH_RESPONDING) return 0; /* answered early (4xx); lws discards the body */
    if (p->phase != PH_BODY) return -1;      /* a body for no request of ours: close */
    if (p->body_len + len > p->body_cap) {
        p->body_overflow = true; /* more than Content-Length: lws should never do that */
        return 0;
    }
    if (len) memcpy(p->body + p->body_len, in, len);
    p->body_len += len;
    p->body[p->body_len] = '\0';
    return 0;
}

static int on_body_completion(struct lws *wsi, struct pss *p)
{
    switch (p->phase) {
    case PH_BODY:
        p->body_done = true;
        return dispatch(wsi, p);
    case PH_RESPONDING:
        if (!p->body_done) { /* the end of a body we answered early (411/413/400) */
            p->body_done = true;
            return 0;
        }
        /* Again: input follows the request and lws, still in its body state, reports the
         * completion each time it looks at it. Our reply still goes out (the connection closes
         * after it and the rest is dropped); lws repeats this only when the loop wakes up, and
         * never without a WRITEABLE for long. */
        if (++p->stale_calls > HTTP_STALE_CALLS_MAX) return -1;
        return 0;
    case PH_IDLE:
    default:
        return -1; /* no request of ours (never accepted, or state lost): close */
    }
}

/* One lws_write per WRITEABLE: headers with the first chunk, then chunk by chunk. */
static int on_writeable(struct lws *wsi, struct pss *p)
{
    struct http_server *srv = server_of(wsi);
    if (p->phase != PH_RESPONDING) return 0; /* nothing queued; lws's POLLOUT is one-shot */
    p->stale_calls = 0;

    unsigned char *start = srv->wbuf + LWS_PRE, *pos = start;
    unsigned char *end = start + HTTP_HDR_ROOM + HTTP_CHUNK;
    size_t body_total = p->head ? 0 : p->resp.len;

    if (!p->headers_sent) {
        int s = p->resp.status;
        srv->st.requests++;
        if (s >= 400 && s < 500) srv->st.status_4xx++;
        if (s >= 500) srv->st.status_5xx++;
        if (lws_add_http_common_headers(wsi, (unsigned)s, p->resp.type, p->resp.len, &pos,
                                        start + HTTP_HDR_ROOM))
            return -1;
        if (p->allow[0] &&
            lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                        (const unsigned char *)p->allow,
                                        (int)strlen(p->allow), &pos, start + HTTP_HDR_ROOM))
            return -1;
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                         (const unsigned char *)"close", 5, &pos,
                                         start + HTTP_HDR_ROOM))
            return -1;
        if (lws_finalize_http_header(wsi, &pos, start + HTTP_HDR_ROOM)) return -1;
        p->headers_sent = true;
    }

    size_t n = body_total - p->sent;
    if (n > (size_t)(end - pos)) n = (size_t)(end - pos);
    if (n > HTTP_CHUNK) n = HTTP_CHUNK;
    if (n) memcpy(pos, p->resp.body + p->sent, n);
    pos += n;
    p->sent += n;
    bool final = p->sent == body_total;

    size_t wlen = (size_t)(pos - start);
    srv->st.writes++;
    srv->st.bytes_out += wlen;
    if (lws_write(wsi, start, wlen, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
        (int)wlen)
        return -1;
    if (!final) {
        lws_callback_on_writable(wsi);
        return 0;
    }

    /* The whole reply is with lws (what the socket did not take yet, lws flushes before it
     * closes). Close: never lws_http_transaction_completed, see the top of this file. */
    pss_clear(p);
    return -1;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct pss *p = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!p) return -1; /* lws allocates it before these; never seen NULL */
        break;
    default:
        break;
    }

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return on_http(wsi, p, in);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(p, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_body_completion(wsi, p);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return on_writeable(wsi, p);
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        pss_clear(p);
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* No websocket or h2c on this vhost: 400 and close. Returning 1 would make lws complete
         * the transaction and keep the connection for a next request (see the top). lws flushes
         * the 400 before closing; for an Upgrade other than those two lws has already sent a 403
         * itself and this only closes. */
        if (in && (strcasecmp(in, "websocket") == 0 || strcasecmp(in, "h2c") == 0))
            (void)lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, NULL);
        return -1;
    case LWS_CALLBACK_RAW_ADOPT:
        return -1; /* CONNECT turns the connection raw in lws: not for us */
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"ct-http", callback, sizeof(struct pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- server ---------------------------------------------------------------------------- */

static void server_release(struct http_server *srv)
{
    struct path_ent *pe, *tmp;
    HASH_ITER(hh, srv->paths, pe, tmp) {
        HASH_DEL(srv->paths, pe);
        free(pe);
    }
    for (size_t i = 0; i < srv->nroutes; i++) free(srv->routes[i].path);
    free(srv->routes);
    free(srv->wbuf);
    free(srv->host);
    free(srv->name);
    free(srv);
}

/* lws is about to free the vhost (context destroy, or our lws_vhost_destroy): the last moment
 * it refers to us. */
static void on_vhost_finalize(struct lws_vhost *vh, void *arg)
{
    (void)vh;
    struct http_server *srv = arg;
    srv->vh = NULL;
    if (srv->freed) server_release(srv);
}

/* bind() the address ourselves first, then let go: lws reports listen failures only as NULL
 * (busy port) or, worse, by silently deferring the vhost (address not local, port < 1024 without
 * the capability), and destroying such a deferred vhost leaves a dangling pointer in its context
 * (4.1.6: valgrind sees lws_create_vhost read the freed vhost later). 0 or -errno. */
static int probe_bind(const char *host, bool v4, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (v4) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        len = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1; /* as lws does for its listen socket */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

struct http_server *http_server_new(struct lws_context *ctx, const char *host, int port)
{
    struct http_server *srv = NULL;
    int err = EINVAL;

    if (!host) host = "127.0.0.1";
    unsigned char addr[sizeof(struct in6_addr)];
    bool v4 = inet_pton(AF_INET, host, addr) == 1;
    if (!ctx || port < 0 || port > 65535 || (!v4 && inet_pton(AF_INET6, host, addr) != 1))
        goto fail;
    int rc = probe_bind(host, v4, port);
    if (rc < 0) {
        err = -rc;
        goto fail;
    }
    err = ENOMEM;
    srv = calloc(1, sizeof *srv);
    if (!srv) goto fail;
    srv->prefixes = SIZE_MAX;
    srv->host = strdup(host);
    srv->name = strdup("http");
    srv->wbuf = malloc(LWS_PRE + HTTP_HDR_ROOM + HTTP_CHUNK);
    if (!srv->host || !srv->name || !srv->wbuf) goto fail;
    srv->max_body = 64 * 1024;

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = srv->host;
    info.vhost_name = srv->name;
    info.protocols = protocols;
    info.keepalive_timeout = 10;
    info.user = srv;
    info.finalize = on_vhost_finalize;
    info.finalize_arg = srv;
    /* lws 4.1.6 with IPv6 on parses an IPv4 iface into the wrong field of its sockaddr_in6 and
     * binds [::] (every interface, v4 and v6) instead: "127.0.0.1" would listen on the whole
     * network. With IPv6 off for this vhost it binds the IPv4 address itself. */
    if (v4) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;

    err = EADDRNOTAVAIL;
    /* On failure (e.g. port busy) lws destroys the half-made vhost, finalize included, before
     * returning NULL (lws 4.1.6 source: nothing is bound to it yet, so it is synchronous). */
    srv->vh = lws_create_vhost(ctx, &info);
    if (!srv->vh) goto fail;
    if (lws_get_vhost_listen_port(srv->vh) <= 0) {
        /* lws deferred listening although our probe could bind (a race with the network
         * config). Not lws_vhost_destroy (see probe_bind): the vhost stays until the context
         * goes, refusing connections should it ever listen, and finalize frees srv. */
        srv->freed = true;
        srv = NULL;
        goto fail;
    }
    return srv;

fail:
    if (srv) server_release(srv);
    errno = err;
    return NULL;
}

struct http_server *http_server_free(struct http_server *srv)
{
    if (!srv) return NULL;
    if (srv->vh)
        srv->freed = true; /* on_vhost_finalize releases it */
    else
        server_release(srv);
    return NULL;
}

void http_server_set_max_body(struct http_server *srv, size_t max_body)
{
    if (srv && max_body) srv->max_body = max_body;
}

int http_server_port(const struct http_server *srv)
{
    return srv && srv->vh && !srv->freed ? lws_get_vhost_listen_port(srv->vh) : -1;
}

static bool method_known(const char *method)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(methods[i].name, method) == 0 && strcmp(method, "HEAD") != 0) return true;
    return false;
}

/* A free slot at the end of routes (not counted yet), or NULL. */
static struct route *route_slot(struct http_server *srv)
{
    if (srv->nroutes == srv->cap) {
        size_t cap = srv->cap ? srv->cap * 2 : 8;
        struct route *r = realloc(srv->routes, cap * sizeof *r);
        if (!r) return NULL;
        srv->routes = r;
        srv->cap = cap;
    }
    struct route *r = &srv->routes[srv->nroutes];
    memset(r, 0, sizeof *r);
    r->next = SIZE_MAX;
    return r;
}

int http_server_route_prefix(struct http_server *srv, const char *method, const char *prefix,
                             http_handler_fn fn, void *ud)
{
    if (!srv || !method || !prefix || prefix[0] != '/' || !fn || !method_known(method)) return -EINVAL;
    for (size_t i = srv->prefixes; i != SIZE_MAX; i = srv->routes[i].next)
        if (strcmp(srv->routes[i].path, prefix) == 0 && strcmp(srv->routes[i].method, method) == 0)
            return -EEXIST;
    struct route *r = route_slot(srv);
    if (!r || !(r->path = strdup(prefix))) return -ENOMEM;
    strcpy(r->method, method);
    r->fn = fn;
    r->ud = ud;
    r->prefix = true;
    /* appended: registration order, like the methods of an exact path */
    size_t *at = &srv->prefixes;
    while (*at != SIZE_MAX) at = &srv->routes[*at].next;
    *at = srv->nroutes++;
    return 0;
}

int http_server_route(struct http_server *srv, const char *method, const char *path,
                      http_handler_fn fn, void *ud)
{
    if (!srv || !method || !path || path[0] != '/' || !fn || !method_known(method)) return -EINVAL;
    struct path_ent *pe = NULL;
    HASH_FIND_STR(srv->paths, path, pe);
    for (size_t i = pe ? pe->first : SIZE_MAX; i != SIZE_MAX; i = srv->routes[i].next)
        if (strcmp(srv->routes[i].method, method) == 0) return -EEXIST;
    struct route *r = route_slot(srv);
    if (!r) return -ENOMEM;
    strcpy(r->method, method);
    r->path = strdup(path);
    if (!r->path) return -ENOMEM;
    r->fn = fn;
    r->ud = ud;
    if (pe) {
        srv->routes[pe->last].next = srv->nroutes;
        pe->last = srv->nroutes;
    } else {
        if (!(pe = calloc(1, sizeof *pe))) goto oom;
        *pe = (struct path_ent){.path = r->path, .first = srv->nroutes, .last = srv->nroutes};
        HASH_ADD_KEYPTR(hh, srv->paths, pe->path, strlen(pe->path), pe);
        if (!pe->hh.tbl) { /* uthash could not grow */
            free(pe);
            goto oom;
        }
    }
    srv->nroutes++;
    return 0;
oom:
    free(r->path);
    r->path = NULL;
    return -ENOMEM;
}

void http_server_get_stats(const struct http_server *srv, struct http_server_stats *out)
{
    if (srv)
        *out = srv->st;
    else
        memset(out, 0, sizeof *out);
}
