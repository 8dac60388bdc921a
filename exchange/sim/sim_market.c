#include "sim_market.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim_buf.h"
#include "sim_wsq.h"
#include "sim_params.h"
#include "utlist.h"

#define RX_MAX (16 * 1024)
#define QUEUE_MAX 100000
#define POLL_MS 20
#define STREAMS_MAX 1024 /* per connection, as Binance */

enum { ST_BOOK = 1u, ST_TICKER = 2u };

struct mconn {
    struct lws *wsi;
    struct smkt *m;
    bool established, closing, drop, combined;
    unsigned char *subs; /* per book symbol: ST_* bits */
    struct swq q;
    struct sbuf rx;
    struct mconn *prev, *next;
};

struct smkt {
    uv_loop_t *loop;
    struct sbook *book;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    lws_retry_bo_t retry;
    struct mconn *conns;
    size_t nconns;
    uv_timer_t poll;
    bool timer_on;
    dec_t *last_price; /* per symbol, the price last published */
    int64_t *update_id; /* per symbol, bookTicker "u" */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- paths and stream names ---- */

/* 0: not ours; 1: raw; 2: combined. *soff: where the streams of a /ws/<streams> path start (len
 * if none). */
static int path_mode(const char *p, size_t len, size_t *soff)
{
    size_t o = 0;
    bool prefixed = false;
    if ((len >= 7 && (memcmp(p, "/public", 7) == 0 || memcmp(p, "/market", 7) == 0)) && (len == 7 || p[7] == '/')) {
        o = 7;
        prefixed = true;
    }
    *soff = len;
    if (len - o == 7 && memcmp(p + o, "/stream", 7) == 0)
        return 2;
    if (len - o == 3 && memcmp(p + o, "/ws", 3) == 0)
        return prefixed ? 1 : 0; /* bare /ws?listenKey= is the user stream */
    if (len - o > 4 && memcmp(p + o, "/ws/", 4) == 0) {
        if (!prefixed && !memchr(p + o + 4, '@', len - o - 4))
            return 0; /* /ws/<listenKey> */
        *soff = o + 4;
        return 1;
    }
    return 0;
}

bool smkt_owns_path(const char *path, size_t len)
{
    size_t soff;
    return path && path_mode(path, len, &soff) != 0;
}

bool smkt_owns_bytes(const char *bytes, size_t len)
{
    if (len < 5 || memcmp(bytes, "GET ", 4) != 0)
        return false;
    size_t e = 4;
    while (e < len && bytes[e] != ' ' && bytes[e] != '?' && bytes[e] != '#')
        e++;
    return smkt_owns_path(bytes + 4, e - 4);
}

/* One stream name -> symbol index and ST_ bit; false if unknown. */
static bool stream_name(struct smkt *m, const char *s, size_t len, size_t *idx, unsigned *bit)
{
    char sym[MKT_SYMBOL_MAX];
    const char *at = memchr(s, '@', len);
    if (!at || at == s || (size_t)(at - s) >= sizeof(sym))
        return false;
    size_t sl = (size_t)(at - s), kl = len - sl - 1;
    for (size_t i = 0; i < sl; i++) {
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
            return false; /* Binance stream names are lowercase */
        sym[i] = (char)toupper((unsigned char)s[i]);
    }
    sym[sl] = '\0';
    if (kl == 10 && memcmp(at + 1, "bookTicker", 10) == 0)
        *bit = ST_BOOK;
    else if (kl == 6 && memcmp(at + 1, "ticker", 6) == 0)
        *bit = ST_TICKER;
    else
        return false;
    const struct sbook_symbol *y = sbook_symbol(m->book, sym);
    if (!y)
        return false;
    *idx = y->idx;
    return true;
}

/* '/'-separated stream names; sets bits in subs (may be NULL). 0 or -EINVAL. */
static int stream_list(struct smkt *m, const char *s, size_t len, unsigned char *subs)
{
    size_t i = 0, n = 0;
    while (i < len) {
        const char *e = memchr(s + i, '/', len - i);
        size_t l = e ? (size_t)(e - (s + i)) : len - i;
        size_t idx;
        unsigned bit;
        if (++n > STREAMS_MAX || !stream_name(m, s + i, l, &idx, &bit))
            return -EINVAL;
        if (subs)
            subs[idx] |= (unsigned char)bit;
        i += l + 1;
    }
    return 0;
}

/* ---- frames ---- */

static void conn_clear_queue(struct mconn *c)
{
    swq_clear(&c->q);
}

static void conn_close(struct mconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    lws_callback_on_writable(c->wsi);
}

static void conn_push(struct mconn *c, struct swq_msg *x)
{
    if (c->closing)
        return;
    if (c->q.len >= QUEUE_MAX) {
        conn_close(c); /* too far behind: drop it rather than grow without bound */
        return;
    }
    if (swq_push(&c->q, x) < 0)
        return;
    lws_callback_on_writable(c->wsi);
}

static void conn_send_buf(struct mconn *c, struct sbuf *b)
{
    struct swq_msg *x = sbuf_failed(b) ? NULL : swq_msg_new(b->p, b->len);
    if (!x)
        return;
    conn_push(c, x);
    swq_msg_unref(x);
}

static void lower_symbol(struct sbuf *b, const char *sym)
{
    for (const char *p = sym; *p; p++)
        sbuf_addc(b, (char)tolower((unsigned char)*p));
}

/* The payload of one stream of symbol y, raw or in the combined envelope. */
static void format(struct smkt *m, struct sbuf *b, const struct sbook_symbol *y, unsigned bit, bool combined,
                   int64_t now)
{
    if (combined) {
        sbuf_adds(b, "{\"stream\":\"");
        lower_symbol(b, y->ins.symbol);
        sbuf_adds(b, bit == ST_BOOK ? "@bookTicker\",\"data\":" : "@ticker\",\"data\":");
    }
    if (bit == ST_BOOK) {
        sbuf_addf(b, "{\"e\":\"bookTicker\",\"u\":%" PRId64 ",\"E\":%" PRId64 ",\"T\":%" PRId64 ",\"s\":",
                  m->update_id[y->idx], now, now);
        sbuf_add_jstr(b, y->ins.symbol);
        sbuf_adds(b, ",\"b\":");
        sbuf_add_jdec(b, y->price);
        sbuf_adds(b, ",\"B\":\"1000\",\"a\":");
        sbuf_add_jdec(b, y->price);
        sbuf_adds(b, ",\"A\":\"1000\"}");
    } else {
        /* No history: open = high = low = last, nothing traded. */
        sbuf_addf(b, "{\"e\":\"24hrTicker\",\"E\":%" PRId64 ",\"s\":", now);
        sbuf_add_jstr(b, y->ins.symbol);
        sbuf_adds(b, ",\"p\":\"0\",\"P\":\"0\",\"w\":");
        sbuf_add_jdec(b, y->price);
        sbuf_adds(b, ",\"c\":");
        sbuf_add_jdec(b, y->price);
        sbuf_adds(b, ",\"Q\":\"0\",\"o\":");
        sbuf_add_jdec(b, y->price);
        sbuf_adds(b, ",\"h\":");
        sbuf_add_jdec(b, y->price);
        sbuf_adds(b, ",\"l\":");
        sbuf_add_jdec(b, y->price);
        sbuf_addf(b, ",\"v\":\"0\",\"q\":\"0\",\"O\":%" PRId64 ",\"C\":%" PRId64 ",\"F\":0,\"L\":0,\"n\":0}",
                  now - 86400000, now);
    }
    if (combined)
        sbuf_addc(b, '}');
}

/* The current message of every stream in bits[] (new subscriptions). */
static void send_current(struct mconn *c, const unsigned char *bits)
{
    struct smkt *m = c->m;
    int64_t now = now_ms();
    for (size_t i = 0; i < sbook_nsymbols(m->book); i++) {
        for (unsigned bit = ST_BOOK; bit <= ST_TICKER; bit <<= 1) {
            if (!(bits[i] & bit))
                continue;
            struct sbuf b = SBUF_INIT;
            format(m, &b, sbook_symbol_at(m->book, i), bit, c->combined, now);
            conn_send_buf(c, &b);
            sbuf_free(&b);
        }
    }
}

/* ---- control messages ---- */

static void reply_error(struct mconn *c, int code, const char *msg, const json_t *id)
{
    struct sbuf b = SBUF_INIT;
    sbuf_addf(&b, "{\"error\":{\"code\":%d,\"msg\":", code);
    sbuf_add_jstr(&b, msg);
    sbuf_adds(&b, "},\"id\":");
    if (json_is_integer(id))
        sbuf_add_i64(&b, json_integer_value(id));
    else
        sbuf_adds(&b, "null");
    sbuf_addc(&b, '}');
    conn_send_buf(c, &b);
    sbuf_free(&b);
}

static void on_control(struct mconn *c, const char *text, size_t len)
{
    struct smkt *m = c->m;
    size_t nsym = sbook_nsymbols(m->book);
    json_t *root = json_loadb(text, len, 0, NULL);
    json_t *id = json_object_get(root, "id"), *method = json_object_get(root, "method");
    json_t *params = json_object_get(root, "params");
    const char *me = json_is_string(method) ? json_string_value(method) : "";
    unsigned char *want = NULL;
    if (!root || !json_is_object(root)) {
        reply_error(c, 3, "Invalid JSON: expected an object", NULL);
        goto out;
    }
    if (!json_is_integer(id) || json_integer_value(id) < 0) {
        reply_error(c, 3, "Invalid request: request ID must be an unsigned integer", id);
        goto out;
    }
    if (!strcmp(me, "LIST_SUBSCRIPTIONS")) {
        struct sbuf b = SBUF_INIT;
        bool first = true;
        sbuf_adds(&b, "{\"result\":[");
        for (size_t i = 0; i < nsym; i++) {
            for (unsigned bit = ST_BOOK; bit <= ST_TICKER; bit <<= 1) {
                if (!(c->subs[i] & bit))
                    continue;
                sbuf_adds(&b, first ? "\"" : ",\"");
                first = false;
                lower_symbol(&b, sbook_symbol_at(m->book, i)->ins.symbol);
                sbuf_adds(&b, bit == ST_BOOK ? "@bookTicker\"" : "@ticker\"");
            }
        }
        sbuf_addf(&b, "],\"id\":%" PRId64 "}", (int64_t)json_integer_value(id));
        conn_send_buf(c, &b);
        sbuf_free(&b);
        goto out;
    }
    bool sub = !strcmp(me, "SUBSCRIBE");
    if (!sub && strcmp(me, "UNSUBSCRIBE") != 0) {
        reply_error(c, 2, "Invalid request: unknown method", id);
        goto out;
    }
    if (!json_is_array(params) || json_array_size(params) == 0) {
        reply_error(c, 2, "Invalid request: params must be a non-empty array of stream names", id);
        goto out;
    }
    want = calloc(nsym ? nsym : 1, 1);
    if (!want)
        goto out;
    size_t i;
    json_t *v;
    json_array_foreach(params, i, v) {
        size_t idx;
        unsigned bit;
        if (!json_is_string(v) || !stream_name(m, json_string_value(v), json_string_length(v), &idx, &bit)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "Invalid request: unknown stream %.60s",
                     json_is_string(v) ? json_string_value(v) : "(not a string)");
            reply_error(c, 2, msg, id);
            goto out;
        }
        want[idx] |= (unsigned char)bit;
    }
    struct sbuf b = SBUF_INIT;
    sbuf_addf(&b, "{\"result\":null,\"id\":%" PRId64 "}", (int64_t)json_integer_value(id));
    conn_send_buf(c, &b);
    sbuf_free(&b);
    for (size_t k = 0; k < nsym; k++) {
        if (sub) {
            unsigned char fresh = (unsigned char)(want[k] & ~c->subs[k]);
            c->subs[k] |= want[k];
            want[k] = fresh;
        } else {
            c->subs[k] &= (unsigned char)~want[k];
            want[k] = 0;
        }
    }
    if (sub)
        send_current(c, want);
out:
    free(want);
    json_decref(root);
}

/* ---- lws ---- */

static int on_established(struct smkt *m, struct mconn *c, struct lws *wsi)
{
    char path[2048], frag[4096];
    size_t soff, nsym = sbook_nsymbols(m->book);
    memset(c, 0, sizeof(*c));
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0)
        return -1;
    int mode = path_mode(path, strlen(path), &soff);
    if (!mode)
        return -1;
    c->wsi = wsi;
    c->m = m;
    c->combined = mode == 2;
    c->subs = calloc(nsym ? nsym : 1, 1);
    if (!c->subs)
        return -1;
    if (stream_list(m, path + soff, strlen(path + soff), c->subs) < 0)
        goto bad;
    for (int i = 0; c->combined && i < 16; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            break;
        if (strncmp(frag, "streams=", 8) == 0 && stream_list(m, frag + 8, (size_t)n - 8, c->subs) < 0)
            goto bad;
    }
    c->established = true;
    DL_APPEND(m->conns, c);
    m->nconns++;
    send_current(c, c->subs);
    return 0;
bad:
    free(c->subs);
    c->subs = NULL;
    return -1;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct mconn *c = user;
    struct smkt *m = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        return on_established(m, c, wsi);

    case LWS_CALLBACK_RECEIVE:
        if (!c->established || c->closing || lws_frame_is_binary(wsi))
            return 0;
        if (c->rx.len + len > RX_MAX) {
            conn_close(c);
            return 0;
        }
        sbuf_add(&c->rx, in, len);
        if (lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0) {
            if (!sbuf_failed(&c->rx))
                on_control(c, c->rx.p ? c->rx.p : "", c->rx.len);
            sbuf_reset(&c->rx);
        }
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (c->drop)
            return -1; /* lws drops the TCP connection without a close frame (see sim_ws.c) */
        if (c->closing) {
            lws_set_timer_usecs(wsi, 1); /* close from lws' own service, see sim_ws.c */
            return 0;
        }
        return swq_write_one(&c->q, wsi);
    }

    case LWS_CALLBACK_TIMER:
        if (c->closing) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return 0;

    case LWS_CALLBACK_CLOSED:
        if (c->established) {
            DL_DELETE(m->conns, c);
            m->nconns--;
            c->established = false;
        }
        conn_clear_queue(c);
        sbuf_free(&c->rx);
        free(c->subs);
        c->subs = NULL;
        return 0;

    case LWS_CALLBACK_HTTP:
        return -1;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"sim-market", callback, sizeof(struct mconn), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* Every price change since the last poll goes out on the streams that want it. */
static void poll_cb(uv_timer_t *t)
{
    struct smkt *m = t->data;
    int64_t now = 0;
    for (size_t i = 0; i < sbook_nsymbols(m->book); i++) {
        const struct sbook_symbol *y = sbook_symbol_at(m->book, i);
        if (dec_cmp(y->price, m->last_price[i]) == 0)
            continue;
        m->last_price[i] = y->price;
        m->update_id[i]++;
        if (!m->conns)
            continue;
        if (!now)
            now = now_ms();
        struct swq_msg *x[2][2] = {{NULL, NULL}, {NULL, NULL}}; /* [bit-1][combined] */
        struct mconn *c;
        DL_FOREACH(m->conns, c) {
            for (unsigned bit = ST_BOOK; bit <= ST_TICKER; bit <<= 1) {
                if (!(c->subs[i] & bit))
                    continue;
                struct swq_msg **slot = &x[bit - 1][c->combined];
                if (!*slot) {
                    struct sbuf b = SBUF_INIT;
                    format(m, &b, y, bit, c->combined, now);
                    *slot = sbuf_failed(&b) ? NULL : swq_msg_new(b.p, b.len);
                    sbuf_free(&b);
                }
                if (*slot)
                    conn_push(c, *slot);
            }
        }
        for (int a = 0; a < 2; a++)
            for (int k = 0; k < 2; k++)
                swq_msg_unref(x[a][k]);
    }
}

/* ---- public API ---- */

struct smkt *smkt_new(uv_loop_t *loop, struct sbook *book)
{
    struct lws_context_creation_info info;
    void *foreign[1] = {loop};
    size_t nsym = sbook_nsymbols(book);
    struct smkt *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->loop = loop;
    m->book = book;
    m->last_price = calloc(nsym ? nsym : 1, sizeof(*m->last_price));
    m->update_id = calloc(nsym ? nsym : 1, sizeof(*m->update_id));
    if (!m->last_price || !m->update_id)
        goto fail;
    for (size_t i = 0; i < nsym; i++) {
        m->last_price[i] = sbook_symbol_at(book, i)->price;
        m->update_id[i] = 1;
    }
    /* Binance: a ping every 3 minutes, dropped 10 minutes after an unanswered one. */
    m->retry.secs_since_valid_ping = 180;
    m->retry.secs_since_valid_hangup = 780;

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    info.pcontext = &m->ctx;
    info.user = m;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.vhost_name = "sim-market-ws";
    info.retry_and_idle_policy = &m->retry;
    info.max_http_header_data = 8192;
    info.timeout_secs = 20;
    m->ctx = lws_create_context(&info);
    if (!m->ctx)
        goto fail;
    m->vh = lws_create_vhost(m->ctx, &info);
    if (!m->vh) {
        lws_context_destroy(m->ctx); /* as sim_ws: nothing was adopted yet */
        goto fail;
    }
    uv_timer_init(loop, &m->poll);
    m->poll.data = m;
    m->timer_on = true;
    uv_timer_start(&m->poll, poll_cb, POLL_MS, POLL_MS);
    return m;
fail:
    free(m->last_price);
    free(m->update_id);
    free(m);
    return NULL;
}

void smkt_destroy_begin(struct smkt *m)
{
    if (!m)
        return;
    if (m->timer_on) {
        uv_close((uv_handle_t *)&m->poll, NULL);
        m->timer_on = false;
    }
    if (m->ctx)
        lws_context_destroy(m->ctx);
}

struct smkt *smkt_destroy_finish(struct smkt *m)
{
    if (!m)
        return NULL;
    if (m->ctx)
        lws_context_destroy(m->ctx);
    free(m->last_price);
    free(m->update_id);
    free(m);
    return NULL;
}

bool smkt_upgrade(struct smkt *m, const struct shttp_req *req, struct shttp_resp *resp)
{
    struct sp_list q;
    size_t soff, klen = 0, vlen = 0;
    bool ok = false;
    int mode = path_mode(req->path, req->path_len, &soff);
    sp_init(&q);
    if (!m || !mode) {
        shttp_resp_json(resp, 404, "{\"code\":-1099,\"msg\":\"Not found: no stream at this path\"}");
        goto out;
    }
    if (sp_parse(&q, req->query, req->query_len) < 0) {
        shttp_resp_json(resp, 400, "{\"code\":-1100,\"msg\":\"Illegal characters found in a parameter.\"}");
        goto out;
    }
    const char *streams = mode == 2 ? sp_get(&q, "streams") : NULL;
    if (stream_list(m, req->path + soff, req->path_len - soff, NULL) < 0 ||
        (streams && stream_list(m, streams, strlen(streams), NULL) < 0)) {
        shttp_resp_json(resp, 400, "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}");
        goto out;
    }
    const char *wskey = shttp_header(req, "Sec-WebSocket-Key", &klen);
    const char *ver = shttp_header(req, "Sec-WebSocket-Version", &vlen);
    if (!wskey || klen == 0 || !ver || vlen != 2 || memcmp(ver, "13", 2) != 0) {
        shttp_resp_json(resp, 400, "{\"code\":-1000,\"msg\":\"Bad websocket handshake\"}");
        goto out;
    }
    ok = true;
out:
    sp_free(&q);
    return ok;
}

int smkt_adopt(struct smkt *m, int fd, const char *bytes, size_t len)
{
    if (!m || !m->ctx) {
        close(fd);
        return -EIO;
    }
    return lws_adopt_socket_vhost_readbuf(m->vh, fd, bytes, len) ? 0 : -EIO;
}

size_t smkt_count(const struct smkt *m)
{
    return m ? m->nconns : 0;
}

size_t smkt_drop_all(struct smkt *m)
{
    struct mconn *c, *tmp;
    size_t n = 0;
    if (!m)
        return 0;
    DL_FOREACH_SAFE(m->conns, c, tmp) {
        DL_DELETE(m->conns, c);
        m->nconns--;
        c->established = false;
        c->drop = true;
        lws_callback_on_writable(c->wsi);
        n++;
    }
    return n;
}
