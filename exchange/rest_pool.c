/* rest_pool: libcurl multi on a libuv loop (EVENT-LOOP.md section 2; the shape of curl's
 * docs/examples/multi-uv.c).
 *
 * Ownership: the pool adds every transfer to the multi handle and the pool removes it, in exactly
 * two places: finish() (curl reported it done) and rest_pool_free() (cancellation). Both deliver
 * the callback once and then recycle or destroy the easy handle. Socket contexts are freed only in
 * their uv_close callback; the pool itself only when its last handle has closed.
 *
 * Curl never gets more transfers of a host than it can run at once (host_cap: its connections,
 * times the streams per connection once the host answers over HTTP/2): libcurl 7.88 walks its
 * list of transfers waiting for a connection on every curl_multi_remove_handle, so a burst of
 * 8,000 orders handed over at once cost O(8,000) per finished order. The rest wait in the host's
 * own queues (struct host), which are also the rate-budget queues: orders first, FIFO within a
 * priority; a request leaves (is charged, built, signed, added to curl) only when its budgets
 * admit it and its host has a free slot, and finish() refills the slots it frees. */
#include "rest_pool.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESP_HDR_MAX (64 * 1024)     /* raw response headers kept per transfer */
#define KEEP_BUF_MAX (256 * 1024)    /* larger buffers are released when a handle goes idle */

struct buf {
    char *p;
    size_t len; /* excluding the NUL kept at p[len] */
    size_t cap;
};

enum xstate { XS_IDLE = 0, XS_QUEUED, XS_INFLIGHT, XS_FAILING };

/* Streams per HTTP/2 connection (CURLMOPT_MAX_CONCURRENT_STREAMS, curl's default, said here
 * because host_cap depends on it). */
#define H2_STREAMS 100L

/* One destination (scheme, host, port): curl's connections are per host, so are the slots.
 * Requests built at departure without a URL given to rest_pool_send share the host "" (key_len
 * 0). Hosts live as long as the pool. */
struct host {
    struct host *next;
    unsigned in_curl;    /* transfers of this host in the multi handle */
    unsigned bg_in_curl; /* of which queries and bulk */
    unsigned queued;     /* waiting in qhead[] */
    bool multiplexed;    /* its last answer came over HTTP/2: transfers share connections */
    struct xfer *qhead[RB_PRIO_N], *qtail[RB_PRIO_N];
    size_t key_len;
    char key[];          /* "scheme://host:port", lower case */
};

struct xfer {
    struct rest_pool *pool;
    CURL *easy;
    struct xfer *prev, *next; /* in-flight list or a wait queue (both links), idle or failing
                                 list (next only) */
    struct host *host;        /* where it goes (set by rest_pool_send) */
    enum xstate state;
    rest_cb cb;
    void *ud;
    struct curl_slist *hdrs;
    struct buf req_body;
    struct buf body;
    struct buf rhdr;
    bool no_resend;
    bool resend_refused;
    bool too_big;
    bool oom;
    unsigned prereq_calls;
    int64_t sent_ns;        /* CLOCK_MONOTONIC at the first pre-request callback */
    char errbuf[CURL_ERROR_SIZE];
    /* rate limits / breaker (references held while the request lives) */
    struct rest_limit limits[REST_MAX_LIMITS];
    unsigned n_limits;
    struct breaker *brk;
    enum rb_prio prio;
    bool probe_ok;
    bool is_probe;   /* the breaker's half-open probe: its result decides */
    const char *exchange, *endpoint; /* static labels for on_done */
    bool internal;   /* the pool's own probe request */
    bool admitted;   /* budgets charged at admitted_ms */
    bool waited;
    int (*build)(void *ud, struct rest_req *out);
    enum rest_method method;
    long timeout_ms;
    int64_t enq_ms, deadline_ms, admitted_ms;
    int fail_err;
    const char *fail_text;
};

struct sock_ctx {
    uv_poll_t poll;
    struct rest_pool *pool;
    curl_socket_t fd;
    bool closing;
    /* The events it polls (0: stopped). libuv's uv_poll_start on a running handle is an
     * epoll_ctl DEL and an ADD, so a start with the same events is skipped. */
    int events;
    /* Ours, idle in curl's cache (after CURL_POLL_REMOVE): still polled for reading, so that a
     * reuse, which asks for reading again, costs no system call (a stop and a start were three
     * epoll_ctl calls a request). If it turns readable while idle (the server closed it), the
     * poll stops and curl finds it dead at its next reuse. */
    bool parked;
    struct sock_ctx *prev, *next;
};

struct rest_pool {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_timer_t wait_timer; /* next budget change or wait deadline */
    uv_timer_t kick;       /* 0 ms: deliver refused requests, re-run admission */
    struct host *hosts;         /* each with its wait queues */
    bool refill;                /* a finished transfer freed a slot of a host with a queue */
    struct xfer *fhead, *ftail; /* refused, callback pending */
    struct rest_pool_opts o;
    struct xfer *inflight;
    struct xfer *idle;
    unsigned idle_n;
    /* Easy handles of requests destroyed while the idle list was full, for queued requests
     * (they have none until they leave): a few dozen live instead of one init and cleanup per
     * request when thousands wait. */
    CURL **spare;
    unsigned spare_n;
    struct sock_ctx *socks;
    /* Sockets the pool opened (on_opensocket), by fd: their poll handle outlives curl's
     * CURL_POLL_REMOVE (the connection idles in curl's cache) and is parked (sock_ctx) until the
     * connection is reused; it is closed in on_closesocket, before the fd is. A
     * uv_poll_init, calloc and close per request otherwise (EVENT-LOOP.md "Reused fd", the
     * sticky variant). Other sockets (the resolver's) are closed on REMOVE. */
    struct fd_slot {
        struct sock_ctx *c; /* its poll handle, running or stopped; NULL before the first use */
        bool ours;
    } *fds;
    unsigned fds_cap;
    struct rest_pool_stats st;
    unsigned pending_closes;
    bool closing;
};

/* ---- small buffers ---- */

static int buf_reserve(struct buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return -ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) return -ENOMEM;
    b->p = np;
    b->cap = cap;
    return 0;
}

static int buf_append(struct buf *b, const char *d, size_t n) {
    if (buf_reserve(b, n) < 0) return -ENOMEM;
    if (n) memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void buf_clear(struct buf *b) {
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

static void buf_trim(struct buf *b) {
    if (b->cap > KEEP_BUF_MAX) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

static void buf_free(struct buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- hosts ---- */

/* "scheme://host:port" of url, lower case, the port made explicit (80, 443), user info dropped,
 * into out; its length, or 0 when url has no scheme or host (or out is too small). */
static size_t url_host_key(const char *url, char *out, size_t cap) {
    const char *sep = url ? strstr(url, "://") : NULL;
    if (!sep || sep == url) return 0;
    size_t slen = (size_t)(sep - url);
    const char *h = sep + 3, *end = h + strcspn(h, "/?#");
    for (const char *c = end; c > h; c--)
        if (c[-1] == '@') {
            h = c;
            break;
        }
    const char *hend, *port = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(end - h));
        if (!rb) return 0;
        hend = rb + 1;
        if (hend < end && *hend == ':') port = hend + 1;
    } else {
        const char *c = memchr(h, ':', (size_t)(end - h));
        hend = c ? c : end;
        if (c) port = c + 1;
    }
    if (hend == h) return 0;
    size_t plen = port ? (size_t)(end - port) : 0;
    if (!plen) {
        if (slen == 4 && strncasecmp(url, "http", 4) == 0) port = "80", plen = 2;
        else if (slen == 5 && strncasecmp(url, "https", 5) == 0) port = "443", plen = 3;
        else port = "", plen = 0;
    }
    size_t n = slen + 3 + (size_t)(hend - h) + 1 + plen;
    if (n >= cap) return 0;
    char *o = out;
    for (size_t i = 0; i < slen; i++) *o++ = (char)tolower((unsigned char)url[i]);
    memcpy(o, "://", 3), o += 3;
    for (const char *c = h; c < hend; c++) *o++ = (char)tolower((unsigned char)*c);
    *o++ = ':';
    memcpy(o, port, plen), o += plen;
    *o = '\0';
    return n;
}

#define HOST_KEY_MAX 320

/* The host of url (NULL or without a host: the host ""), created on first use; NULL on ENOMEM. */
static struct host *host_get(struct rest_pool *p, const char *url) {
    char key[HOST_KEY_MAX];
    size_t n = url_host_key(url, key, sizeof key);
    for (struct host *h = p->hosts; h; h = h->next)
        if (h->key_len == n && memcmp(h->key, key, n) == 0) return h;
    struct host *h = calloc(1, sizeof *h + n + 1);
    if (!h) return NULL;
    memcpy(h->key, key, n);
    h->key[n] = '\0';
    h->key_len = n;
    h->next = p->hosts;
    p->hosts = h;
    return h;
}

/* Transfers of h curl can run at once: one per connection (HTTP/1.1), or every stream of every
 * connection once the host speaks HTTP/2. Queries and bulk get half of it: the other half stays
 * free for orders, which only the whole cap holds back. */
static unsigned host_cap(const struct rest_pool *p, const struct host *h) {
    long c = p->o.max_host_connections * (h->multiplexed ? H2_STREAMS : 1L);
    return c > 0 && c < (long)UINT_MAX ? (unsigned)c : UINT_MAX;
}

static unsigned host_bg_cap(const struct rest_pool *p, const struct host *h) {
    unsigned c = host_cap(p, h) / 2;
    return c ? c : 1;
}

/* ---- pool teardown bookkeeping ---- */

static void pool_maybe_release(struct rest_pool *p) {
    if (p->closing && p->pending_closes == 0) {
        free(p);
        curl_global_cleanup();
    }
}

static void on_timer_closed(uv_handle_t *h) {
    struct rest_pool *p = h->data;
    p->pending_closes--;
    pool_maybe_release(p);
}

static void on_sock_closed(uv_handle_t *h) {
    struct sock_ctx *c = h->data;
    struct rest_pool *p = c->pool;
    free(c);
    p->pending_closes--;
    pool_maybe_release(p);
}

static void sock_close(struct sock_ctx *c) {
    struct rest_pool *p = c->pool;
    if (c->closing) return; /* closed by on_closesocket, then REMOVEd by curl */
    c->closing = true;
    if ((unsigned)c->fd < p->fds_cap && p->fds[c->fd].c == c) p->fds[c->fd].c = NULL;
    if (c->prev) c->prev->next = c->next;
    else p->socks = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    p->pending_closes++;
    /* uv_close deregisters the fd at once, so curl may re-announce the same fd number straight
     * after (EVENT-LOOP.md "Reused fd"). */
    uv_close((uv_handle_t *)&c->poll, on_sock_closed);
}

/* ---- transfers ---- */

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Drops the budget and breaker references of a request (after it has been accounted for). */
static void xfer_drop_limits(struct xfer *x) {
    for (unsigned i = 0; i < x->n_limits; i++) x->limits[i].budget = rate_budget_unref(x->limits[i].budget);
    x->n_limits = 0;
    x->brk = breaker_unref(x->brk);
}

/* Gives back the budgets charged for a request that is not going to be sent. */
static void xfer_release_limits(struct xfer *x, int64_t now) {
    if (!x->admitted) return;
    for (unsigned i = 0; i < x->n_limits; i++)
        rate_budget_release(x->limits[i].budget, x->limits[i].cost, x->admitted_ms, now);
    x->admitted = false;
}

static void xfer_destroy(struct xfer *x) {
    if (!x) return;
    xfer_drop_limits(x);
    if (x->easy) curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    buf_free(&x->req_body);
    buf_free(&x->body);
    buf_free(&x->rhdr);
    free(x);
}

static void inflight_unlink(struct rest_pool *p, struct xfer *x) {
    if (x->prev) x->prev->next = x->next;
    else p->inflight = x->next;
    if (x->next) x->next->prev = x->prev;
    x->prev = x->next = NULL;
    p->st.in_flight--;
    if (x->host) {
        x->host->in_curl--;
        if (x->prio != RB_PRIO_ORDER) x->host->bg_in_curl--;
    }
}

/* After the callback: back to the idle list, or destroyed when the pool is closing or full. */
static void xfer_recycle(struct rest_pool *p, struct xfer *x) {
    xfer_drop_limits(x);
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
    x->cb = NULL;
    x->ud = NULL;
    x->state = XS_IDLE;
    if (p->closing || p->idle_n >= p->o.max_idle_handles || !x->easy) {
        if (!p->closing && x->easy && p->spare_n < p->o.max_idle_handles) {
            p->spare[p->spare_n++] = x->easy;
            x->easy = NULL;
        }
        xfer_destroy(x);
        return;
    }
    buf_trim(&x->req_body);
    buf_trim(&x->body);
    buf_trim(&x->rhdr);
    x->next = p->idle;
    p->idle = x;
    p->idle_n++;
}

static int64_t parse_i64_header(const struct rest_resp *r, const char *name) {
    size_t n;
    const char *v = rest_resp_header(r, name, &n);
    if (!v || n == 0 || n > 18) return -1;
    int64_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        out = out * 10 + (v[i] - '0');
    }
    return out;
}

static int map_curl_error(const struct xfer *x, CURLcode rc) {
    if (rc == CURLE_OK) return x->oom ? -ENOMEM : 0;
    if (x->too_big) return -EMSGSIZE;
    if (x->oom) return -ENOMEM;
    if (x->resend_refused) return -EPIPE;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return -EPIPE;
    case CURLE_OUT_OF_MEMORY: return -ENOMEM;
    default: return -EPROTO;
    }
}

static int64_t header_i64(const struct rest_resp *r, const char *name) {
    return name ? parse_i64_header(r, name) : -1;
}

/* What a response tells the request's budgets and breaker (before the callback runs). */
static void feedback(struct rest_pool *p, struct xfer *x, const struct rest_resp *r) {
    int64_t now = wall_ms();
    long s = r->http_status;
    if (r->err == 0) {
        bool charged = false;
        for (unsigned i = 0; i < x->n_limits; i++) charged |= x->limits[i].cost > 0;
        for (unsigned i = 0; i < x->n_limits; i++) {
            struct rate_budget *b = x->limits[i].budget;
            int64_t used = header_i64(r, rate_budget_hdr_used(b));
            int64_t limit = header_i64(r, rate_budget_hdr_limit(b));
            int64_t rem = header_i64(r, rate_budget_hdr_remaining(b));
            int64_t reset = header_i64(r, rate_budget_hdr_reset(b));
            if (rem >= 0) {
                struct rate_budget_stats bs;
                if (limit < 0) {
                    rate_budget_get_stats(b, now, &bs);
                    limit = bs.limit;
                }
                int64_t u = limit - rem;
                if (u > used) used = u < 0 ? 0 : u;
            }
            rate_budget_note_server(b, used, limit, reset, x->admitted_ms, now);
            if (s == 418) {
                rate_budget_banned(b, r->retry_after_ms, now);
            } else if (s == 429 || s == 403) {
                /* The budgets this request was charged on; all of them if it was charged on
                 * none (the answer does not say which limit was hit). */
                if (!charged || x->limits[i].cost > 0)
                    rate_budget_throttled(b, s, r->retry_after_ms, now);
            } else {
                rate_budget_ok(b);
            }
        }
        if (s == 418) p->st.bans++;
        else if (s == 429 || s == 403) p->st.throttled++;
    }
    if (x->brk) {
        if (r->err == -ECANCELED) {
            if (x->is_probe) breaker_probe_abort(x->brk);
        } else {
            /* The host is unwell when it does not answer or answers 5xx; anything else
             * (also a 4xx rejection or a throttle) is an answer. */
            bool fail = (r->err != 0 && r->err != -EMSGSIZE && r->err != -ENOMEM) || s >= 500;
            breaker_record(x->brk, !fail, x->is_probe, now);
        }
    }
}

/* Builds the response view of a transfer that left the multi handle and runs its callback. */
static void deliver(struct rest_pool *p, struct xfer *x, CURLcode rc, int err_override,
                    const char *err_text) {
    struct rest_resp r;
    memset(&r, 0, sizeof r);
    long status = 0, reqsize = 0;
    curl_off_t pre = 0, ttfb = 0, total = 0;
    char msg[CURL_ERROR_SIZE + 64];

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
    curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME_T, &ttfb);
    curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total);

    r.curl_code = (int)rc;
    r.err = err_override ? err_override : map_curl_error(x, rc);
    r.http_status = status;
    /* The pre-request callback runs once a connection is ready, right before the request goes
     * out; before it nothing of this request can have reached the server. */
    r.maybe_sent = x->prereq_calls > 0 || reqsize > 0 || status > 0;
    r.body = x->body.p ? x->body.p : "";
    r.body_len = x->body.len;
    r.raw_headers = x->rhdr.p ? x->rhdr.p : "";
    r.raw_headers_len = x->rhdr.len;
    r.pretransfer_us = pre;
    r.ttfb_us = ttfb;
    r.total_us = total;
    r.sent_ns = x->sent_ns;

    if (r.err == 0) {
        r.error = "";
    } else if (err_text) {
        r.error = err_text;
    } else if (r.err == -EMSGSIZE) {
        snprintf(msg, sizeof msg, "response body exceeds %zu bytes", p->o.max_response_bytes);
        r.error = msg;
    } else if (x->resend_refused) {
        r.error = "connection closed before any response; request not re-sent";
    } else if (r.err == -ENOMEM) {
        r.error = "out of memory buffering the response";
    } else {
        snprintf(msg, sizeof msg, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        r.error = msg;
    }

    r.retry_after_ms = -1;
    size_t ralen;
    const char *ra = rest_resp_header(&r, "Retry-After", &ralen);
    if (ra) r.retry_after_ms = rest_parse_retry_after(ra, ralen, (int64_t)time(NULL));
    r.used_weight_1m = parse_i64_header(&r, "X-MBX-USED-WEIGHT-1M");
    r.order_count_10s = parse_i64_header(&r, "X-MBX-ORDER-COUNT-10S");
    r.order_count_1m = parse_i64_header(&r, "X-MBX-ORDER-COUNT-1M");
    r.waited_ms = x->admitted && x->admitted_ms > x->enq_ms ? x->admitted_ms - x->enq_ms : 0;

    feedback(p, x, &r);
    if (!x->internal) {
        p->st.completed++;
        if (r.err) p->st.transport_errors++;
    }
    if (!x->internal && p->o.on_done)
        p->o.on_done(p->o.on_done_ud, x->method, x->exchange ? x->exchange : "",
                        x->endpoint ? x->endpoint : "", &r);
    rest_cb cb = x->cb;
    void *ud = x->ud;
    x->cb = NULL;
    cb(ud, &r);
}

/* The callback of a request that never left: nothing of it reached the server. */
static void deliver_unsent(struct rest_pool *p, struct xfer *x, int err, const char *text) {
    struct rest_resp r;
    memset(&r, 0, sizeof r);
    r.err = err;
    r.curl_code = (int)CURLE_ABORTED_BY_CALLBACK;
    r.error = text;
    r.body = "";
    r.raw_headers = "";
    r.retry_after_ms = r.used_weight_1m = r.order_count_10s = r.order_count_1m = -1;
    r.waited_ms = wall_ms() - x->enq_ms;
    if (r.waited_ms < 0) r.waited_ms = 0;
    if (x->is_probe) breaker_probe_abort(x->brk);
    x->is_probe = false;
    if (!x->internal) {
        p->st.completed++;
        p->st.transport_errors++;
        if (p->o.on_done)
            p->o.on_done(p->o.on_done_ud, x->method, x->exchange ? x->exchange : "",
                            x->endpoint ? x->endpoint : "", &r);
    }
    rest_cb cb = x->cb;
    void *ud = x->ud;
    x->cb = NULL;
    if (cb) cb(ud, &r);
}

static void kick_soon(struct rest_pool *p);

static void finish(struct rest_pool *p, struct xfer *x, CURLcode rc) {
    curl_multi_remove_handle(p->multi, x->easy);
    inflight_unlink(p, x);
    if (x->host) {
        long v = 0;
        if (rc == CURLE_OK && curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &v) == CURLE_OK && v)
            x->host->multiplexed = v >= CURL_HTTP_VERSION_2_0;
        /* Its slot goes to the next waiting request once check_done has collected every
         * finished transfer (one admission pass for all of them). */
        if (x->host->queued) p->refill = true;
    }
    deliver(p, x, rc, 0, NULL);
    /* The callback may have freed the pool (p stays allocated until its handles close). */
    xfer_recycle(p, x);
}

static void pump(struct rest_pool *p);

static void check_done(struct rest_pool *p) {
    CURLMsg *m;
    int left;
    while (!p->closing && (m = curl_multi_info_read(p->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode rc = m->data.result; /* copy before the handle is removed */
        struct xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (!x) continue;
        finish(p, x, rc);
    }
    /* Never from inside finish(): curl_multi_info_read's list must not change under it (pump
     * adds handles and drives curl). */
    if (p->refill && !p->closing) {
        p->refill = false;
        pump(p);
    }
}

/* ---- curl callbacks ---- */

static void on_poll(uv_poll_t *h, int status, int events) {
    struct sock_ctx *c = h->data;
    struct rest_pool *p = c->pool;
    int flags = 0, running;
    if (p->closing) return;
    if (c->parked) {
        /* No transfer owns it: curl would ignore the event, and a level-triggered poll would
         * report it again on every iteration. */
        uv_poll_stop(&c->poll);
        c->events = 0;
        return;
    }
    if (status < 0) {
        flags = CURL_CSELECT_ERR; /* libuv already stopped the handle (POLLERR) */
        c->events = 0;
    } else {
        if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(p->multi, c->fd, flags, &running);
    check_done(p);
}

static void on_timer(uv_timer_t *t) {
    struct rest_pool *p = t->data;
    int running;
    if (p->closing) return;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(p);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp) {
    struct rest_pool *p = userp;
    (void)m;
    if (p->closing) return 0;
    /* 0 ms means "as soon as possible": libuv runs a 0 ms timer on the next loop iteration.
     * socket_action is never called from here (curl is inside its own code). */
    if (timeout_ms < 0) uv_timer_stop(&p->timer);
    else uv_timer_start(&p->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
    struct rest_pool *p = userp;
    struct sock_ctx *c = socketp;
    (void)e;
    struct fd_slot *slot = s >= 0 && (unsigned)s < p->fds_cap && p->fds[s].ours ? &p->fds[s] : NULL;
    if (what == CURL_POLL_REMOVE) {
        if (c) {
            curl_multi_assign(p->multi, s, NULL);
            /* Ours: parked until reuse or on_closesocket, polled for reading (sock_ctx). */
            if (slot && slot->c == c) {
                c->parked = true;
                if (c->events != UV_READABLE) {
                    c->events = UV_READABLE;
                    uv_poll_start(&c->poll, UV_READABLE, on_poll);
                }
            } else {
                sock_close(c);
            }
        }
        return 0;
    }
    if (!c && slot && slot->c) {
        c = slot->c;
        curl_multi_assign(p->multi, s, c);
    }
    if (!c) {
        c = calloc(1, sizeof *c);
        /* On failure nothing polls this socket and the transfer ends by its timeout; returning
         * -1 would poison the whole multi handle. */
        if (!c) return 0;
        if (uv_poll_init_socket(p->loop, &c->poll, s) != 0) {
            free(c);
            return 0;
        }
        c->pool = p;
        c->fd = s;
        c->poll.data = c;
        c->next = p->socks;
        if (p->socks) p->socks->prev = c;
        p->socks = c;
        curl_multi_assign(p->multi, s, c);
        if (slot) slot->c = c;
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    c->parked = false;
    if (ev != c->events) {
        c->events = ev;
        uv_poll_start(&c->poll, ev, on_poll);
    }
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud) {
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (n > x->pool->o.max_response_bytes - x->body.len) {
        x->too_big = true;
        return 0; /* != n: curl fails the transfer with CURLE_WRITE_ERROR */
    }
    if (buf_append(&x->body, ptr, n) < 0) {
        x->oom = true;
        return 0;
    }
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        buf_clear(&x->rhdr); /* a new response (after 1xx): keep only the final one's headers */
        return n;
    }
    if (x->rhdr.len + n <= RESP_HDR_MAX) (void)buf_append(&x->rhdr, ptr, n);
    return n;
}

static int on_prereq(void *clientp, char *pip, char *lip, int pport, int lport) {
    struct xfer *x = clientp;
    (void)pip, (void)lip, (void)pport, (void)lport;
    if (x->prereq_calls++ == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x->sent_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    /* A second call means curl is re-sending the request on a new connection after the reused
     * one died without a response byte. The first copy may have been processed: refuse. */
    if (x->prereq_calls > 1 && x->no_resend) {
        x->resend_refused = true;
        x->pool->st.resends_refused++;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static curl_socket_t on_opensocket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a) {
    struct rest_pool *p = clientp;
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s == CURL_SOCKET_BAD) return s;
    if (purpose == CURLSOCKTYPE_IPCXN) p->st.connections_opened++;
    if ((unsigned)s >= p->fds_cap) {
        unsigned cap = p->fds_cap ? p->fds_cap : 64;
        while (cap <= (unsigned)s) cap *= 2;
        struct fd_slot *n = realloc(p->fds, cap * sizeof *n);
        if (!n) return s; /* not sticky: closed on REMOVE like any other */
        memset(n + p->fds_cap, 0, (cap - p->fds_cap) * sizeof *n);
        p->fds = n;
        p->fds_cap = cap;
    }
    p->fds[s] = (struct fd_slot){.c = NULL, .ours = true};
    return s;
}

static int on_closesocket(void *clientp, curl_socket_t s) {
    struct rest_pool *p = clientp;
    p->st.connections_closed++;
    if (s >= 0 && (unsigned)s < p->fds_cap && p->fds[s].ours) {
        /* Its poll handle goes first, while the fd still names this socket. */
        if (p->fds[s].c) sock_close(p->fds[s].c);
        p->fds[s] = (struct fd_slot){0};
    }
    return close(s);
}

/* ---- waiting for budgets, breaker, refusals ---- */

static int xfer_prepare(struct rest_pool *p, struct xfer *x, const struct rest_req *req);
static void on_kick(uv_timer_t *t);

static void queue_push(struct rest_pool *p, struct xfer *x) {
    struct host *h = x->host;
    int q = (int)x->prio;
    x->state = XS_QUEUED;
    x->next = NULL;
    x->prev = h->qtail[q];
    if (h->qtail[q]) h->qtail[q]->next = x;
    else h->qhead[q] = x;
    h->qtail[q] = x;
    h->queued++;
    p->st.queued++;
    if (q == RB_PRIO_ORDER) p->st.queued_orders++;
}

static void queue_unlink(struct rest_pool *p, struct xfer *x) {
    struct host *h = x->host;
    int q = (int)x->prio;
    if (x->prev) x->prev->next = x->next;
    else h->qhead[q] = x->next;
    if (x->next) x->next->prev = x->prev;
    else h->qtail[q] = x->prev;
    x->prev = x->next = NULL;
    h->queued--;
    p->st.queued--;
    if (q == RB_PRIO_ORDER) p->st.queued_orders--;
}

static void inflight_push(struct rest_pool *p, struct xfer *x) {
    x->state = XS_INFLIGHT;
    x->prev = NULL;
    x->next = p->inflight;
    if (p->inflight) p->inflight->prev = x;
    p->inflight = x;
    p->st.in_flight++;
    if (x->host) {
        x->host->in_curl++;
        if (x->prio != RB_PRIO_ORDER) x->host->bg_in_curl++;
        if (x->host->in_curl > p->st.in_curl_host_max) p->st.in_curl_host_max = x->host->in_curl;
    }
}

static void kick_soon(struct rest_pool *p) {
    if (!p->closing && !uv_is_active((uv_handle_t *)&p->kick)) uv_timer_start(&p->kick, on_kick, 0, 0);
}

/* Refuses a request that never left: its callback runs from the kick timer (never from inside
 * rest_pool_send). Its budgets are given back. */
static void fail_later(struct rest_pool *p, struct xfer *x, int err, const char *text) {
    xfer_release_limits(x, wall_ms());
    x->fail_err = err;
    x->fail_text = text;
    x->state = XS_FAILING;
    x->next = NULL;
    if (p->ftail) p->ftail->next = x;
    else p->fhead = x;
    p->ftail = x;
    kick_soon(p);
}

static void probe_cb(void *ud, const struct rest_resp *r) {
    (void)ud, (void)r; /* the breaker already has the result (feedback) */
}

/* Hands the curl handle of an admitted request to the multi handle (building it first when it
 * has a build function). 0, or negative: the request has been refused (fail_later). */
static int xfer_start(struct rest_pool *p, struct xfer *x) {
    if (x->build) {
        struct rest_req out;
        memset(&out, 0, sizeof out);
        out.method = x->method;
        out.timeout_ms = x->timeout_ms;
        out.no_resend = x->no_resend;
        int r = x->build(x->ud, &out);
        if (r < 0) {
            fail_later(p, x, r, "request could not be built");
            return r;
        }
        bool ok = out.url && *out.url && out.method == x->method &&
                  !(out.method == REST_GET && out.body && out.body_len) &&
                  !(out.body_len && !out.body);
        /* Its slot was taken on the host of the URL given to rest_pool_send: the built one must
         * go there too, or curl would get more transfers of a host than it can run. */
        if (ok && x->host->key_len) {
            char key[HOST_KEY_MAX];
            ok = url_host_key(out.url, key, sizeof key) == x->host->key_len &&
                 memcmp(key, x->host->key, x->host->key_len) == 0;
        }
        if (!x->easy && p->spare_n) x->easy = p->spare[--p->spare_n];
        if (!x->easy && !(x->easy = curl_easy_init())) {
            fail_later(p, x, -ENOMEM, "out of memory");
            return -ENOMEM;
        }
        curl_easy_reset(x->easy);
        curl_slist_free_all(x->hdrs);
        x->hdrs = NULL;
        buf_clear(&x->req_body);
        if (!ok || (r = xfer_prepare(p, x, &out)) < 0) {
            fail_later(p, x, ok ? r : -EINVAL, "request could not be built");
            return ok ? r : -EINVAL;
        }
    }
    if (curl_multi_add_handle(p->multi, x->easy) != CURLM_OK) {
        fail_later(p, x, -EIO, "curl refused the transfer");
        return -EIO;
    }
    inflight_push(p, x);
    /* Start it now rather than from curl's 0 ms timer a loop turn later (an order is on the
     * hot path). Safe here: never inside a curl callback, and finished transfers are only
     * collected by check_done, from the loop, so no completion callback runs inside this call. */
    int running = 0;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    /* One ended already (a local failure): collect it from the loop, as always. */
    if (running >= 0 && (uint32_t)running < p->st.in_flight) uv_timer_start(&p->timer, on_timer, 0, 0);
    return 0;
}

/* The breaker's probe URL as a request of the pool's own, charged to the admission of x (which
 * is refused instead). */
static void launch_probe(struct rest_pool *p, struct xfer *x) {
    struct xfer *pr = calloc(1, sizeof *pr);
    const char *url = breaker_probe_url(x->brk);
    if (pr) {
        pr->pool = p;
        pr->easy = curl_easy_init();
        /* Counted on its host (one transfer over the cap at most: it is rare and short). */
        pr->host = url ? host_get(p, url) : NULL;
    }
    if (!pr || !pr->easy || !url) {
        breaker_probe_abort(x->brk);
        xfer_destroy(pr);
        return;
    }
    struct rest_req req = {.method = REST_GET, .url = url};
    pr->internal = true;
    pr->is_probe = true;
    pr->brk = breaker_ref(x->brk);
    pr->cb = probe_cb;
    pr->enq_ms = pr->admitted_ms = x->admitted_ms;
    pr->admitted = x->admitted;
    pr->n_limits = x->n_limits; /* the budgets move over with their charge */
    memcpy(pr->limits, x->limits, sizeof pr->limits);
    x->n_limits = 0;
    x->admitted = false;
    if (xfer_prepare(p, pr, &req) < 0 ||
        curl_multi_add_handle(p->multi, pr->easy) != CURLM_OK) {
        xfer_release_limits(pr, wall_ms());
        breaker_probe_abort(pr->brk);
        xfer_destroy(pr);
        return;
    }
    p->st.probes++;
    inflight_push(p, pr);
}

/* x passed its budgets: the breaker has the last word. */
static void admit(struct rest_pool *p, struct xfer *x, int64_t now) {
    if (x->brk) {
        enum breaker_verdict v = breaker_allow(x->brk, x->probe_ok, now);
        if (v == BREAKER_PROBE) {
            x->is_probe = true;
        } else if (v == BREAKER_DENY) {
            p->st.breaker_rejects++;
            if (breaker_probe_url(x->brk) && breaker_take_probe(x->brk, now)) launch_probe(p, x);
            fail_later(p, x, -EHOSTDOWN, "circuit open");
            return;
        }
    }
    (void)xfer_start(p, x);
}

#define STALL_MAX 64

/* Admits what the budgets allow, in priority order, FIFO within a priority; a request that
 * cannot be admitted holds back the later ones charged on the same budget. Re-arms the wait
 * timer for the earliest moment something may change. */
static void pump(struct rest_pool *p) {
    if (p->closing) return;
    int64_t now = wall_ms(), wake = INT64_MAX;
    struct rate_budget *stalled[STALL_MAX];
    unsigned nst = 0;
    bool truncated = false;

    for (int q = 0; q < RB_PRIO_N && !truncated; q++) {
        for (struct host *h = p->hosts; h && !truncated; h = h->next) {
            unsigned cap = q == RB_PRIO_ORDER ? host_cap(p, h) : host_bg_cap(p, h);
            struct xfer *x = h->qhead[q], *next;
            for (; x; x = next) {
                next = x->next;
                if (x->deadline_ms && now >= x->deadline_ms) {
                    queue_unlink(p, x);
                    p->st.wait_timeouts++;
                    fail_later(p, x, -ETIMEDOUT, "not sent: waited longer than max_wait_ms");
                    continue;
                }
                /* Full: everything behind waits for a slot too, and finish() comes back here
                 * when one frees (orders first then); the walk stops instead of going through
                 * a queue that cannot move. */
                if ((q == RB_PRIO_ORDER ? h->in_curl : h->bg_in_curl) >= cap ||
                    h->in_curl >= host_cap(p, h))
                    break;
                bool held = false;
                for (unsigned i = 0; i < x->n_limits && !held; i++) {
                    if (x->limits[i].cost <= 0) continue;
                    for (unsigned k = 0; k < nst && !held; k++) held = stalled[k] == x->limits[i].budget;
                }
                int64_t at = 0;
                unsigned bad = REST_MAX_LIMITS;
                for (unsigned i = 0; i < x->n_limits && !held && bad == REST_MAX_LIMITS; i++)
                    if (rate_budget_check(x->limits[i].budget, x->limits[i].cost, x->prio, now, &at) < 0)
                        bad = i;
                if (held || bad != REST_MAX_LIMITS) {
                    if (bad != REST_MAX_LIMITS) {
                        if (at < wake) wake = at;
                        if (nst < STALL_MAX) stalled[nst++] = x->limits[bad].budget;
                        else truncated = true;
                    }
                    if (x->deadline_ms && x->deadline_ms < wake) wake = x->deadline_ms;
                    if (!x->waited) {
                        x->waited = true;
                        p->st.deferred++;
                    }
                    if (truncated) break;
                    continue;
                }
                for (unsigned i = 0; i < x->n_limits; i++)
                    rate_budget_commit(x->limits[i].budget, x->limits[i].cost, now);
                x->admitted = true;
                x->admitted_ms = now;
                queue_unlink(p, x);
                admit(p, x, now);
                if (p->closing) return;
            }
        }
    }
    if (truncated) wake = now + 10;
    if (p->st.queued == 0 || wake == INT64_MAX) {
        uv_timer_stop(&p->wait_timer);
        return;
    }
    int64_t d = wake - now;
    if (d < 1) d = 1;
    uv_timer_start(&p->wait_timer, on_kick, (uint64_t)d, 0);
}

/* Delivers the refused requests, then runs admission again. */
static void on_kick(uv_timer_t *t) {
    struct rest_pool *p = t->data;
    if (p->closing) return;
    struct xfer *x;
    while (!p->closing && (x = p->fhead)) {
        p->fhead = x->next;
        if (!p->fhead) p->ftail = NULL;
        x->next = NULL;
        deliver_unsent(p, x, x->fail_err, x->fail_text);
        xfer_recycle(p, x);
    }
    if (!p->closing) pump(p);
}

/* ---- public ---- */

struct rest_pool *rest_pool_new(uv_loop_t *loop, const struct rest_pool_opts *opts) {
    if (!loop) return NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    struct rest_pool *p = calloc(1, sizeof *p);
    if (!p) goto fail_global;
    p->loop = loop;
    if (opts) p->o = *opts;
    if (p->o.max_host_connections <= 0) p->o.max_host_connections = 64;
    if (p->o.max_connects <= 0) p->o.max_connects = 64;
    if (p->o.connect_timeout_ms <= 0) p->o.connect_timeout_ms = 3000;
    if (p->o.default_timeout_ms <= 0) p->o.default_timeout_ms = 5000;
    if (p->o.max_idle_reuse_s <= 0) p->o.max_idle_reuse_s = 30;
    if (p->o.max_response_bytes == 0) p->o.max_response_bytes = 16u << 20;
    if (p->o.max_idle_handles == 0) p->o.max_idle_handles = 64;
    if (p->o.max_queued == 0) p->o.max_queued = 100000;

    p->spare = calloc(p->o.max_idle_handles, sizeof *p->spare);
    if (!p->spare) goto fail_pool;
    p->multi = curl_multi_init();
    if (!p->multi) goto fail_pool;
    if (curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p) != CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p) != CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_MAX_HOST_CONNECTIONS, p->o.max_host_connections) !=
            CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, p->o.max_connects) != CURLM_OK ||
        curl_multi_setopt(p->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, H2_STREAMS) != CURLM_OK ||
        /* HTTP/2 streams share one connection per host (the default since 7.62; said here
         * because the connection count depends on it) */
        curl_multi_setopt(p->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) != CURLM_OK)
        goto fail_multi;
    if (uv_timer_init(loop, &p->timer) != 0) goto fail_multi;
    /* From here on the pool is freed through its handles' close callbacks. */
    uv_timer_init(loop, &p->wait_timer);
    uv_timer_init(loop, &p->kick);
    p->timer.data = p->wait_timer.data = p->kick.data = p;
    return p;

fail_multi:
    curl_multi_cleanup(p->multi);
fail_pool:
    free(p->spare);
    free(p);
fail_global:
    curl_global_cleanup();
    return NULL;
}

struct rest_pool *rest_pool_free(struct rest_pool *p) {
    if (!p || p->closing) return NULL;
    p->closing = true;

    /* Cancel in flight: remove first (we added it, we remove it), then the callback, once. */
    struct xfer *x;
    while ((x = p->inflight)) {
        curl_multi_remove_handle(p->multi, x->easy);
        inflight_unlink(p, x);
        deliver(p, x, CURLE_ABORTED_BY_CALLBACK, -ECANCELED, "cancelled: REST pool closed");
        xfer_destroy(x);
    }
    /* Waiting and refused requests never left: -ECANCELED, maybe_sent false (orders first,
     * FIFO within a priority, host by host). */
    for (int q = 0; q < RB_PRIO_N; q++) {
        for (struct host *h = p->hosts; h; h = h->next) {
            while ((x = h->qhead[q])) {
                queue_unlink(p, x);
                xfer_release_limits(x, wall_ms());
                deliver_unsent(p, x, -ECANCELED, "cancelled: REST pool closed");
                xfer_destroy(x);
            }
        }
    }
    while ((x = p->fhead)) {
        p->fhead = x->next;
        if (!p->fhead) p->ftail = NULL;
        deliver_unsent(p, x, -ECANCELED, "cancelled: REST pool closed");
        xfer_destroy(x);
    }
    while ((x = p->idle)) {
        p->idle = x->next;
        xfer_destroy(x);
    }
    p->idle_n = 0;
    while (p->spare_n) curl_easy_cleanup(p->spare[--p->spare_n]);
    free(p->spare);
    p->spare = NULL;
    /* Every transfer is gone (the one whose callback may be running now has left its host's
     * lists and no longer needs it). */
    for (struct host *h; (h = p->hosts);) {
        p->hosts = h->next;
        free(h);
    }
    /* Closes the pooled connections; their sockets were REMOVEd or get REMOVEd now. */
    curl_multi_cleanup(p->multi);
    p->multi = NULL;
    while (p->socks) sock_close(p->socks);
    free(p->fds);
    p->fds = NULL;
    p->fds_cap = 0;
    uv_timer_stop(&p->timer);
    uv_timer_stop(&p->wait_timer);
    uv_timer_stop(&p->kick);
    p->pending_closes += 3;
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
    uv_close((uv_handle_t *)&p->wait_timer, on_timer_closed);
    uv_close((uv_handle_t *)&p->kick, on_timer_closed);
    return NULL;
}

static bool header_line_ok(const char *h) {
    if (!h || !*h || !strchr(h, ':')) return false;
    for (const char *c = h; *c; c++)
        if (*c == '\r' || *c == '\n') return false; /* no header injection */
    return true;
}

static int xfer_prepare(struct rest_pool *p, struct xfer *x, const struct rest_req *req) {
    CURL *e = x->easy;
    bool https = strncasecmp(req->url, "https://", 8) == 0;
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : p->o.default_timeout_ms;
    long ctimeout = p->o.connect_timeout_ms < timeout ? p->o.connect_timeout_ms : timeout;

    for (const char *const *h = req->headers; h && *h; h++) {
        struct curl_slist *n = curl_slist_append(x->hdrs, *h);
        if (!n) return -ENOMEM;
        x->hdrs = n;
    }
    struct curl_slist *n = curl_slist_append(x->hdrs, "Expect:");
    if (!n) return -ENOMEM;
    x->hdrs = n;

    CURLcode rc = CURLE_OK;
#define SET(opt, val)                                     \
    do {                                                  \
        if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); \
    } while (0)
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_PRIVATE, (void *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, ctimeout);
    SET(CURLOPT_TIMEOUT_MS, timeout);
    SET(CURLOPT_MAXAGE_CONN, p->o.max_idle_reuse_s);
    SET(CURLOPT_HTTP_VERSION, https ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
    /* h2: a new transfer waits for a connection being set up to the same host and multiplexes
     * on it instead of opening its own (a burst would otherwise open one connection each). */
    if (https) SET(CURLOPT_PIPEWAIT, 1L);
    SET(CURLOPT_USERAGENT, "copytrader/0.1");
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, (void *)x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)x);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    SET(CURLOPT_PREREQDATA, (void *)x);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    SET(CURLOPT_OPENSOCKETDATA, (void *)p);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
    SET(CURLOPT_CLOSESOCKETDATA, (void *)p);
    SET(CURLOPT_HTTPHEADER, x->hdrs);
    if (req->method == REST_GET) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        /* Always a (maybe empty) copied body, so Content-Length is sent on PUT/DELETE too. */
        if (buf_append(&x->req_body, req->body ? req->body : "", req->body ? req->body_len : 0) < 0)
            return -ENOMEM;
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_POSTFIELDS, x->req_body.p);
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req_body.len);
        if (req->method == REST_PUT) SET(CURLOPT_CUSTOMREQUEST, "PUT");
        else if (req->method == REST_DELETE) SET(CURLOPT_CUSTOMREQUEST, "DELETE");
    }
#undef SET
    if (rc == CURLE_OUT_OF_MEMORY) return -ENOMEM;
    return rc == CURLE_OK ? 0 : -EINVAL;
}

int rest_pool_send(struct rest_pool *p, const struct rest_req *req, rest_cb cb, void *ud) {
    if (!p || !req || !cb) return -EINVAL;
    if (!req->build) {
        if (!req->url || !*req->url) return -EINVAL;
        if (req->method == REST_GET && req->body && req->body_len) return -EINVAL;
        if (req->body_len && !req->body) return -EINVAL;
    }
    if (req->method < REST_GET || req->method > REST_DELETE) return -EINVAL;
    if ((int)req->prio < 0 || (int)req->prio >= RB_PRIO_N || req->max_wait_ms < 0) return -EINVAL;
    for (unsigned i = 0; i < REST_MAX_LIMITS; i++)
        if (req->limits[i].budget && req->limits[i].cost < 0) return -EINVAL;
    if (!req->build)
        for (const char *const *h = req->headers; h && *h; h++)
            if (!header_line_ok(*h)) return -EINVAL;
    if (p->closing) return -ESHUTDOWN;
    if (p->st.queued >= p->o.max_queued) return -ENOBUFS;
    /* With build, url (optional) names the host the built request goes to. */
    struct host *host = host_get(p, req->url);
    if (!host) return -ENOMEM;

    struct xfer *x = p->idle;
    if (x) {
        p->idle = x->next;
        p->idle_n--;
        x->next = NULL;
        if (!req->build) curl_easy_reset(x->easy); /* a built one: when it leaves (xfer_start) */
    } else {
        x = calloc(1, sizeof *x);
        if (!x) return -ENOMEM;
        x->pool = p;
        /* A built request gets its handle when it is admitted (xfer_start): with the cap above,
         * a few dozen handles live instead of one per request waiting. */
        if (!req->build && !(x->easy = curl_easy_init())) {
            free(x);
            return -ENOMEM;
        }
    }
    x->host = host;
    x->no_resend = req->no_resend;
    x->exchange = req->exchange;
    x->endpoint = req->endpoint;
    x->resend_refused = x->too_big = x->oom = false;
    x->prereq_calls = 0;
    x->sent_ns = 0;
    x->errbuf[0] = '\0';
    buf_clear(&x->req_body);
    buf_clear(&x->body);
    buf_clear(&x->rhdr);
    x->method = req->method;
    x->timeout_ms = req->timeout_ms;
    x->build = req->build;
    x->prio = req->prio;
    x->probe_ok = req->probe_ok;
    x->is_probe = x->internal = x->admitted = x->waited = false;
    x->n_limits = 0;
    for (unsigned i = 0; i < REST_MAX_LIMITS; i++) {
        if (!req->limits[i].budget) continue;
        x->limits[x->n_limits].budget = rate_budget_ref(req->limits[i].budget);
        x->limits[x->n_limits++].cost = req->limits[i].cost;
    }
    x->brk = breaker_ref(req->breaker);
    x->enq_ms = wall_ms();
    x->deadline_ms = req->max_wait_ms > 0 ? x->enq_ms + req->max_wait_ms : 0;

    int r = 0;
    if (!x->build && (r = xfer_prepare(p, x, req)) < 0) goto fail;
    x->cb = cb;
    x->ud = ud;
    p->st.requests++;

    /* An open circuit refuses before anything waits or is charged. */
    if (x->brk && breaker_refusing(x->brk, x->enq_ms)) {
        p->st.breaker_rejects++;
        fail_later(p, x, -EHOSTDOWN, "circuit open");
        return 0;
    }
    bool others_waiting = p->st.queued > 0;
    queue_push(p, x);
    /* Alone: decide now (the common, unthrottled case costs no loop iteration). Behind others:
     * one admission pass per loop iteration, however many requests arrive in it. */
    if (others_waiting) kick_soon(p);
    else pump(p);
    return 0;

fail:
    xfer_recycle(p, x);
    return r;
}

void rest_pool_get_stats(const struct rest_pool *p, struct rest_pool_stats *out) {
    if (!out) return;
    if (!p) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = p->st;
    out->idle_handles = p->idle_n;
}

int rest_pool_host_load(const struct rest_pool *p, const char *url, uint32_t *in_curl,
                        uint32_t *queued) {
    if (!p) return -EINVAL;
    char key[HOST_KEY_MAX];
    size_t n = url_host_key(url, key, sizeof key);
    for (const struct host *h = p->hosts; h; h = h->next) {
        if (h->key_len != n || memcmp(h->key, key, n) != 0) continue;
        if (in_curl) *in_curl = h->in_curl;
        if (queued) *queued = h->queued;
        return 0;
    }
    return -ENOENT;
}

uv_loop_t *rest_pool_loop(const struct rest_pool *p) { return p ? p->loop : NULL; }

const char *rest_resp_header(const struct rest_resp *r, const char *name, size_t *len) {
    if (!r || !r->raw_headers || !name) return NULL;
    size_t nlen = strlen(name);
    const char *s = r->raw_headers, *end = r->raw_headers + r->raw_headers_len;
    while (s < end) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        const char *le = eol ? eol : end;
        if ((size_t)(le - s) > nlen && s[nlen] == ':' && strncasecmp(s, name, nlen) == 0) {
            const char *v = s + nlen + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            if (len) *len = (size_t)(ve - v);
            return v;
        }
        s = le + 1;
    }
    return NULL;
}

int64_t rest_parse_retry_after(const char *v, size_t len, int64_t now_s) {
    if (!v || len == 0) return -1;
    bool digits = true;
    for (size_t i = 0; i < len; i++)
        if (v[i] < '0' || v[i] > '9') digits = false;
    if (digits) {
        if (len > 9) return -1; /* > 30 years: not a sane delay */
        int64_t s = 0;
        for (size_t i = 0; i < len; i++) s = s * 10 + (v[i] - '0');
        return s * 1000;
    }
    char tmp[64];
    if (len >= sizeof tmp) return -1;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    time_t t = curl_getdate(tmp, NULL);
    if (t == (time_t)-1) return -1;
    int64_t d = (int64_t)t - now_s;
    return d > 0 ? d * 1000 : 0;
}
