/* ws_client: see ws_client.h. Facts about lws 4.1.6 this file relies on (checked in its source):
 *
 * - A wsi may outlive our interest in it: after ws_client_free or a reconnect the old wsi still
 *   closes asynchronously (libuv closes its poll handle first), and WSI_DESTROY may even come
 *   after lws_client_connect_via_info has returned NULL. So a wsi never owns memory of ours:
 *   callbacks find their client by looking the wsi up among the live clients of this thread
 *   (c->wsi == wsi); a wsi nobody owns any more is closed.
 * - wsi->retry_policy (our ping/silence pair) is read by the validity timer until the close
 *   starts, so the policies live in a never-freed per-thread table, not in the client.
 * - lws_sul_schedule only links the timer into lws' list; with libuv the uv timer behind it is
 *   re-armed only after lws services something. A timer scheduled from outside an lws callback
 *   (a uv or curl callback) could wait for unrelated traffic, so public calls that schedule one
 *   end with kick() (lws_cancel_service: a pipe write that makes lws service and re-arm).
 * - Validity: a PING goes out ping_secs after the last PONG (any rx does NOT reset it in 4.1.6;
 *   only PONGs and the handshake do), the hang-up comes silence_secs after it.
 * - CLIENT_CONNECTION_ERROR is suppressed while lws_client_connect_via_info runs (NULL return
 *   instead) and is mutually exclusive with CLIENT_CLOSED.
 * - Debian's 4.1.6 is a _DEBUG build: when a callback returns -1, service.c closes the wsi and,
 *   with libuv, closes it a second time at once ("uv repeat test"), and the second close kills
 *   the first one's polite close: lws_close_reason + return -1 sends NO close frame (seen on
 *   the wire in test_ws_client). So we start the close with lws_close_reason +
 *   lws_close_free_wsi (exported in lws-eventlib-exports.h): for an established ws that only
 *   queues the close frame (state WAITING_TO_SEND_CLOSE, 5 s timeout) and returns; lws sends
 *   it, waits for the peer's answer and then calls CLIENT_CLOSED. Safe inside a callback of
 *   the same wsi for that reason. */
#include "ws_client.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

#define WS_PROTOCOL_NAME "ct-ws-client"
#define WS_VHOST_NAME "ct-ws-client"
#define WS_RX_CHUNK 16384
#define WS_MAX_POLICIES 16
#define WS_RX_KEEP_MAX (256u * 1024u) /* a larger rx buffer is released after its message */

enum ws_state {
    WS_WAITING = 0, /* backoff timer armed (or about to be) */
    WS_CONNECTING,  /* wsi exists, handshake not complete */
    WS_OPEN,
};

struct ws_url {
    bool tls;
    int port;
    char *host;    /* address to connect to (IPv6 without brackets) */
    char *hosthdr; /* Host header: the authority as written */
    char *path;    /* path and query, at least "/" */
};

struct ws_msg {
    struct ws_msg *next;
    size_t len;
    unsigned char buf[]; /* LWS_PRE spare bytes, then the payload */
};

struct ws_client {
    struct ws_client *next, *prev; /* live clients of this thread */
    struct lws_context *ctx;
    struct lws_vhost *vh;
    struct ws_url url;
    const lws_retry_bo_t *policy;
    struct ws_client_opts o; /* o.url not kept */

    struct lws *wsi; /* current connection (written by lws through ci.pwsi), or NULL */
    enum ws_state state;
    bool want_close;     /* our close frame is queued or sent */
    bool reconnect_asap; /* the connection is going away for ws_client_reconnect_now */
    int in_cb;           /* > 0 while one of our user callbacks runs */
    lws_sorted_usec_list_t sul;
    uint32_t attempt;
    uint64_t rng;
    int64_t opened_ms;
    int64_t valid_ms; /* last handshake or PONG: what lws' silence timer counts from */
    char reason[160]; /* why the current connection is closing, if we know better than lws */

    char *rx;
    size_t rx_len, rx_cap;
    bool rx_overflow;

    struct ws_msg *q_head, *q_tail;
    size_t q_bytes;

    struct ws_client_stats st;
};

static _Thread_local struct ws_client *live_clients;
static _Thread_local lws_retry_bo_t policies[WS_MAX_POLICIES];
static _Thread_local unsigned n_policies;

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len);

/* lws keeps pointers to the protocol array and the vhost name: both static. */
static const struct lws_protocols ws_protocols[] = {
    {WS_PROTOCOL_NAME, ws_callback, 0, WS_RX_CHUNK, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const uint32_t ws_unused_retry_table[] = {1000};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void kick(struct ws_client *c) {
    lws_cancel_service(c->ctx);
}

/* ---- URL ---- */

static void url_clear(struct ws_url *u) {
    free(u->host);
    free(u->hosthdr);
    free(u->path);
    memset(u, 0, sizeof(*u));
}

static int url_parse(const char *url, struct ws_url *u) {
    const char *p, *auth, *auth_end, *h, *h_end;
    long port;

    memset(u, 0, sizeof(*u));
    if (!url) return -EINVAL;
    for (p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#') return -EINVAL;
    if (!strncasecmp(url, "ws://", 5)) {
        u->tls = false;
        u->port = 80;
        auth = url + 5;
    } else if (!strncasecmp(url, "wss://", 6)) {
        u->tls = true;
        u->port = 443;
        auth = url + 6;
    } else {
        return -EINVAL;
    }
    auth_end = auth + strcspn(auth, "/?");
    if (auth_end == auth || memchr(auth, '@', (size_t)(auth_end - auth))) return -EINVAL;

    if (*auth == '[') {
        h = auth + 1;
        h_end = memchr(h, ']', (size_t)(auth_end - h));
        if (!h_end || h_end == h) return -EINVAL;
        p = h_end + 1;
    } else {
        h = auth;
        h_end = memchr(auth, ':', (size_t)(auth_end - auth));
        if (!h_end) h_end = auth_end;
        if (h_end == h) return -EINVAL;
        p = h_end;
    }
    if (p < auth_end) {
        char *e;
        if (*p != ':' || p + 1 == auth_end || p + 6 < auth_end) return -EINVAL;
        for (const char *d = p + 1; d < auth_end; d++)
            if (*d < '0' || *d > '9') return -EINVAL;
        port = strtol(p + 1, &e, 10);
        if (port < 1 || port > 65535) return -EINVAL;
        u->port = (int)port;
    }

    u->host = strndup(h, (size_t)(h_end - h));
    u->hosthdr = strndup(auth, (size_t)(auth_end - auth));
    if (*auth_end == '/') {
        u->path = strdup(auth_end);
    } else if (u->host) { /* "" or "?query": the path is "/" */
        size_t n = strlen(auth_end);
        u->path = malloc(n + 2);
        if (u->path) {
            u->path[0] = '/';
            memcpy(u->path + 1, auth_end, n + 1);
        }
    }
    if (!u->host || !u->hosthdr || !u->path) {
        url_clear(u);
        return -ENOMEM;
    }
    return 0;
}

int ws_client_check_url(const char *url) {
    struct ws_url u;
    int r = url_parse(url, &u);
    if (r == 0) url_clear(&u);
    return r == -ENOMEM ? 0 : r;
}

/* ---- registry, policies, vhost ---- */

static struct ws_client *find_client(struct lws *wsi) {
    for (struct ws_client *c = live_clients; c; c = c->next)
        if (c->wsi == wsi) return c;
    return NULL;
}

static const lws_retry_bo_t *policy_get(uint16_t ping, uint16_t hangup) {
    for (unsigned i = 0; i < n_policies; i++)
        if (policies[i].secs_since_valid_ping == ping &&
            policies[i].secs_since_valid_hangup == hangup)
            return &policies[i];
    if (n_policies == WS_MAX_POLICIES) return NULL;
    policies[n_policies] = (lws_retry_bo_t){
        .retry_ms_table = ws_unused_retry_table,
        .retry_ms_table_count = 1,
        .conceal_count = 1,
        .secs_since_valid_ping = ping,
        .secs_since_valid_hangup = hangup,
        .jitter_percent = 0,
    };
    return &policies[n_policies++];
}

struct lws_vhost *ws_client_vhost(struct lws_context *ctx, void *provided_ssl_ctx) {
    struct lws_context_creation_info info;
    struct lws_vhost *vh;

    if (!ctx) {
        errno = EINVAL;
        return NULL;
    }
    vh = lws_get_vhost_by_name(ctx, WS_VHOST_NAME);
    if (vh) return vh;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = ws_protocols;
    info.vhost_name = WS_VHOST_NAME;
    /* The vhost's own options decide whether it gets a client SSL_CTX (tls-client.c). */
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.provided_client_ssl_ctx = provided_ssl_ctx;
    vh = lws_create_vhost(ctx, &info);
    if (!vh) errno = ENOMEM;
    return vh;
}

/* ---- backoff ---- */

static uint64_t rng_next(struct ws_client *c) {
    /* xorshift64*: jitter only, not security */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545F4914F6CDD1DULL;
}

static uint32_t backoff_ms(struct ws_client *c) {
    uint64_t d = c->o.backoff_min_ms;
    for (uint32_t i = 0; i < c->attempt && d < c->o.backoff_max_ms; i++) d *= 2;
    if (d > c->o.backoff_max_ms) d = c->o.backoff_max_ms;
    if (c->attempt < UINT32_MAX) c->attempt++;
    /* +-20 %: spread reconnect storms of many clients after a shared outage */
    d = d * (80 + rng_next(c) % 41) / 100;
    return (uint32_t)(d ? d : 1);
}

/* ---- queue / rx ---- */

static void queue_drop(struct ws_client *c) {
    struct ws_msg *m = c->q_head;
    while (m) {
        struct ws_msg *n = m->next;
        free(m);
        m = n;
    }
    c->q_head = c->q_tail = NULL;
    c->q_bytes = 0;
}

static void rx_reset(struct ws_client *c) {
    c->rx_len = 0;
    c->rx_overflow = false;
    if (c->rx_cap > WS_RX_KEEP_MAX) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
}

/* 0, or -EMSGSIZE / -ENOMEM: the message cannot be kept */
static int rx_append(struct ws_client *c, const void *in, size_t len) {
    size_t need = c->rx_len + len + 1;
    if (c->rx_len + len > c->o.max_message) return -EMSGSIZE;
    if (need > c->rx_cap) {
        size_t cap = c->rx_cap ? c->rx_cap : 4096;
        while (cap < need) cap *= 2;
        if (cap > c->o.max_message + 1) cap = c->o.max_message + 1;
        char *nb = realloc(c->rx, cap);
        if (!nb) return -ENOMEM;
        c->rx = nb;
        c->rx_cap = cap;
    }
    if (len) memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    return 0;
}

/* ---- connection lifecycle ---- */

static void reconnect_cb(lws_sorted_usec_list_t *sul);

static void schedule(struct ws_client *c, uint32_t ms) {
    c->state = WS_WAITING;
    lws_sul_schedule(c->ctx, 0, &c->sul, reconnect_cb, (lws_usec_t)ms * LWS_US_PER_MS);
}

/* The connection (or the attempt) is gone: schedule the retry, then tell the user. */
static void link_lost(struct ws_client *c, bool was_open, const char *reason) {
    uint32_t delay;

    c->wsi = NULL;
    rx_reset(c);
    queue_drop(c);
    c->want_close = false;
    if (was_open && now_ms() - c->opened_ms >= (int64_t)c->o.stable_ms) c->attempt = 0;
    if (!was_open) c->st.failures++;
    if (c->reconnect_asap) {
        c->reconnect_asap = false;
        c->attempt = 0;
        delay = 0;
    } else {
        delay = backoff_ms(c);
    }
    c->st.reconnects++;
    schedule(c, delay);
    if (c->o.on_close) {
        c->in_cb++;
        c->o.on_close(c->o.ud, reason);
        c->in_cb--;
    }
}

static void connect_now(struct ws_client *c) {
    struct lws_client_connect_info ci;

    c->state = WS_CONNECTING;
    c->reason[0] = '\0';
    c->want_close = false;
    c->reconnect_asap = false;
    if (c->o.on_connecting) {
        c->in_cb++;
        c->o.on_connecting(c->o.ud);
        c->in_cb--;
        if (c->state != WS_CONNECTING) return; /* the callback rescheduled us */
    }

    memset(&ci, 0, sizeof(ci));
    ci.context = c->ctx;
    ci.vhost = c->vh;
    ci.address = c->url.host;
    ci.port = c->url.port;
    ci.path = c->url.path;
    ci.host = c->url.hosthdr;
    ci.origin = NULL;
    /* No Sec-WebSocket-Protocol header (exchanges negotiate none); bind our handler by name. */
    ci.protocol = NULL;
    ci.local_protocol_name = WS_PROTOCOL_NAME;
    ci.retry_and_idle_policy = c->policy;
    ci.pwsi = &c->wsi;
    if (c->url.tls) {
        ci.ssl_connection = LCCSCF_USE_SSL;
        if (c->o.insecure_tls)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
        ci.alpn = "http/1.1"; /* websocket over h1; no RFC 8441 ws-over-h2 surprises */
    }
    if (!lws_client_connect_via_info(&ci)) {
        link_lost(c, false, "connect failed: could not start the connection");
    }
}

static void reconnect_cb(lws_sorted_usec_list_t *sul) {
    struct ws_client *c = lws_container_of(sul, struct ws_client, sul);
    c->in_cb++; /* not a user callback, but ws_client_free must not run under us either */
    connect_now(c);
    c->in_cb--;
}

static void reason_from(char *dst, size_t n, const char *prefix, const void *in, size_t len) {
    const char *s = in;
    size_t l = 0;
    if (s) l = len ? len : strnlen(s, 200);
    if (l > 120) l = 120;
    if (l)
        snprintf(dst, n, "%s: %.*s", prefix, (int)l, s);
    else
        snprintf(dst, n, "%s", prefix);
    /* lws error texts are ASCII; keep log lines clean whatever arrives */
    for (char *p = dst; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
}

/* Polite close of an established ws (see the header comment): close frame with code and text. */
static void start_close(struct lws *wsi, enum lws_close_status code, const char *text) {
    lws_close_reason(wsi, code, (unsigned char *)(uintptr_t)text, strlen(text));
    lws_close_free_wsi(wsi, code, "ws_client");
}

/* Close the open connection politely; reason is what on_close will say. */
static void request_close(struct ws_client *c, enum lws_close_status code, const char *text,
                          const char *reason) {
    if (!c->wsi || c->state != WS_OPEN || c->want_close) return;
    c->want_close = true;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    queue_drop(c);
    start_close(c->wsi, code, text);
}

static int on_receive(struct ws_client *c, struct lws *wsi, const void *in, size_t len) {
    int r;

    if (c->rx_overflow) return 0; /* discarding until the close */
    r = rx_append(c, in, len);
    if (r < 0) {
        char why[160];
        c->rx_overflow = true;
        c->rx_len = 0;
        if (r == -EMSGSIZE)
            snprintf(why, sizeof(why), "message too large (over %zu bytes)", c->o.max_message);
        else
            snprintf(why, sizeof(why), "out of memory for a message");
        if (c->want_close) /* already closing (reconnect): say why it ends now */
            snprintf(c->reason, sizeof(c->reason), "%s", why);
        request_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large", why);
        return 0;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;

    c->st.messages++;
    c->st.bytes += c->rx_len;
    c->rx[c->rx_len] = '\0';
    if (c->o.on_message) {
        c->in_cb++;
        c->o.on_message(c->o.ud, c->rx, c->rx_len);
        c->in_cb--;
    }
    rx_reset(c);
    return 0;
}

static int on_writeable(struct ws_client *c, struct lws *wsi) {
    struct ws_msg *m;

    if (c->want_close) return 0; /* lws sends the close frame itself */
    m = c->q_head;
    if (!m) return 0;
    c->q_head = m->next;
    if (!c->q_head) c->q_tail = NULL;
    c->q_bytes -= m->len;
    int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
    free(m);
    if (n < 0) {
        snprintf(c->reason, sizeof(c->reason), "write failed");
        return -1;
    }
    c->st.sent++;
    if (c->q_head) lws_callback_on_writable(wsi);
    return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len) {
    struct ws_client *c;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c = find_client(wsi);
        if (!c) return -1; /* abandoned while connecting */
        c->state = WS_OPEN;
        c->opened_ms = c->valid_ms = now_ms();
        c->st.connects++;
        rx_reset(c);
        if (c->o.on_open) {
            c->in_cb++;
            c->o.on_open(c->o.ud);
            c->in_cb--;
        }
        return 0;

    case LWS_CALLBACK_CLIENT_RECEIVE:
        c = find_client(wsi);
        if (!c) return 0; /* orphan: closing, its data is nobody's */
        return on_receive(c, wsi, in, len);

    case LWS_CALLBACK_CLIENT_WRITEABLE:
        c = find_client(wsi);
        if (!c) return 0; /* freed client: its close is under way */
        return on_writeable(c, wsi);

    case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
        c = find_client(wsi);
        if (c) {
            c->st.pongs++;
            c->valid_ms = now_ms();
        }
        return 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* (the answer to our own close frame is handled inside lws, not reported here) */
        c = find_client(wsi);
        if (!c) return 1; /* nobody's: close without echoing */
        if (!c->reason[0]) {
            const unsigned char *p = in;
            if (p && len >= 2) {
                char pfx[32];
                snprintf(pfx, sizeof(pfx), "peer closed: %u", (unsigned)(p[0] << 8 | p[1]));
                reason_from(c->reason, sizeof(c->reason), pfx, p + 2, len - 2);
            } else {
                snprintf(c->reason, sizeof(c->reason), "peer closed");
            }
        }
        return 0; /* lws echoes the close */

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        c = find_client(wsi);
        if (c) {
            char why[200];
            if (c->reason[0])
                snprintf(why, sizeof(why), "%s", c->reason);
            else
                reason_from(why, sizeof(why), "connect failed", in, len);
            link_lost(c, false, why);
        }
        return 0;

    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        /* Still in the h1 role: the peer closed (or we gave up) before the upgrade reply. lws
         * reports this as an HTTP close, not as CLIENT_CONNECTION_ERROR. */
        c = find_client(wsi);
        if (c && c->state == WS_CONNECTING)
            link_lost(c, false,
                      c->reason[0] ? c->reason : "connect failed: closed during the handshake");
        return 0;

    case LWS_CALLBACK_CLIENT_CLOSED:
        c = find_client(wsi);
        if (c) {
            char why[200];
            int64_t quiet = now_ms() - c->valid_ms;
            if (c->reason[0])
                snprintf(why, sizeof(why), "%s", c->reason);
            else if (quiet >= (int64_t)c->policy->secs_since_valid_hangup * 1000 - 250) {
                /* lws' validity timer hung up (it does not say so itself) */
                snprintf(why, sizeof(why), "silent link: no PONG for %lld ms", (long long)quiet);
                c->st.silences++;
            }
            else
                snprintf(why, sizeof(why), "connection lost");
            link_lost(c, true, why);
        }
        return 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- public ---- */

struct ws_client *ws_client_new(struct lws_context *ctx, const struct ws_client_opts *o) {
    struct ws_client *c;
    uint16_t ping, hup;
    int r;

    if (!ctx || !o) {
        errno = EINVAL;
        return NULL;
    }
    ping = o->ping_secs ? o->ping_secs : 30;
    if (o->silence_secs)
        hup = o->silence_secs;
    else
        hup = ping > UINT16_MAX / 2 ? UINT16_MAX : (uint16_t)(ping * 2);
    if (hup <= ping) { /* lws asserts hangup > ping */
        errno = EINVAL;
        return NULL;
    }

    c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    r = url_parse(o->url, &c->url);
    if (r < 0) {
        free(c);
        errno = -r;
        return NULL;
    }
    c->o = *o;
    c->o.url = NULL;
    if (!c->o.backoff_min_ms) c->o.backoff_min_ms = 250;
    if (!c->o.backoff_max_ms) c->o.backoff_max_ms = 30000;
    if (c->o.backoff_max_ms < c->o.backoff_min_ms) c->o.backoff_max_ms = c->o.backoff_min_ms;
    if (!c->o.stable_ms) c->o.stable_ms = 10000;
    if (!c->o.max_message) c->o.max_message = 1024 * 1024;
    if (!c->o.max_send_queue) c->o.max_send_queue = 1024 * 1024;

    c->ctx = ctx;
    c->vh = ws_client_vhost(ctx, NULL);
    c->policy = policy_get(ping, hup);
    if (!c->vh || !c->policy) {
        int e = !c->vh ? errno : ENOSPC;
        url_clear(&c->url);
        free(c);
        errno = e;
        return NULL;
    }
    if (lws_get_random(ctx, &c->rng, sizeof(c->rng)) != sizeof(c->rng) || !c->rng)
        c->rng = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ULL;

    c->next = live_clients;
    if (live_clients) live_clients->prev = c;
    live_clients = c;

    schedule(c, 0);
    kick(c);
    return c;
}

struct ws_client *ws_client_free(struct ws_client *c) {
    if (!c) return NULL;
    /* Freeing a client from inside its own callback would pull the rug from under the
     * callback dispatcher that is still using it. */
    ct_assert(c->in_cb == 0);

    lws_sul_schedule(c->ctx, 0, &c->sul, NULL, LWS_SET_TIMER_USEC_CANCEL);
    if (c->wsi) {
        if (c->state == WS_OPEN) {
            /* "1000 bye", unless a close is already under way; lws bounds the wait (5 s) */
            if (!c->want_close) start_close(c->wsi, LWS_CLOSE_STATUS_NORMAL, "bye");
        } else {
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
    kick(c);

    if (c->prev)
        c->prev->next = c->next;
    else
        live_clients = c->next;
    if (c->next) c->next->prev = c->prev;

    queue_drop(c);
    free(c->rx);
    url_clear(&c->url);
    free(c);
    return NULL;
}

int ws_client_send_text(struct ws_client *c, const char *text, size_t len) {
    struct ws_msg *m;

    if (!c || (!text && len)) return -EINVAL;
    if (c->state != WS_OPEN || !c->wsi || c->want_close) return -ENOTCONN;
    if (len > c->o.max_send_queue || c->q_bytes + len > c->o.max_send_queue) return -ENOBUFS;
    m = malloc(sizeof(*m) + LWS_PRE + len);
    if (!m) return -ENOMEM;
    m->next = NULL;
    m->len = len;
    if (len) memcpy(m->buf + LWS_PRE, text, len);
    if (c->q_tail)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    c->q_bytes += len;
    lws_callback_on_writable(c->wsi);
    return 0;
}

int ws_client_set_url(struct ws_client *c, const char *url) {
    struct ws_url u;
    int r;

    if (!c) return -EINVAL;
    r = url_parse(url, &u);
    if (r < 0) return r;
    url_clear(&c->url);
    c->url = u;
    return 0;
}

void ws_client_reconnect_now(struct ws_client *c) {
    if (!c) return;
    c->attempt = 0;
    switch (c->state) {
    case WS_WAITING:
        schedule(c, 0);
        break;
    case WS_CONNECTING:
        if (!c->wsi) break; /* called from on_connecting: the attempt starts right after */
        c->reconnect_asap = true;
        snprintf(c->reason, sizeof(c->reason), "reconnect requested");
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        break;
    case WS_OPEN:
        c->reconnect_asap = true;
        request_close(c, LWS_CLOSE_STATUS_NORMAL, "reconnect", "reconnect requested");
        break;
    }
    kick(c);
}

bool ws_client_is_open(const struct ws_client *c) {
    return c && c->state == WS_OPEN && c->wsi && !c->want_close;
}

struct ws_client_stats ws_client_stats(const struct ws_client *c) {
    struct ws_client_stats z = {0};
    return c ? c->st : z;
}
