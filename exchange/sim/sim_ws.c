#include "sim_ws.h"

#include <errno.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sim_wsq.h"
#include "utlist.h"

struct sws_pss {
    struct lws *wsi;
    struct sws_chan *chan;
    struct swq q;         /* frames waiting for lws to let us write (sim_wsq.h) */
    bool closing;
    bool drop;            /* fault: end the TCP connection without a close frame */
    bool silent;          /* fault: send nothing, read nothing */
    uint64_t silent_until; /* uv_now() ms; UINT64_MAX: until sws_unsilence */
    struct sws_pss *prev, *next;
};

struct sws_chan {
    struct sws *ws;
    struct sws_pss *conns;
    size_t n;
    char *label;           /* the account's name (fault injection) */
    struct swq_msg *held;  /* ws_reorder: sent after the next frame */
    uint64_t held_at;      /* uv_now() ms */
    uint64_t silenced_frames;
    struct sws_chan *prev, *next; /* sws.chans */
};

struct sws {
    uv_loop_t *loop;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    lws_retry_bo_t retry;
    sws_resolve_fn resolve;
    void *ud;
    struct sws_chan *chans;
    sws_send_hook_fn hook;
    void *hook_ud;
    uv_timer_t fault_timer; /* upkeep of silenced connections and held frames */
    bool fault_timer_init, fault_timer_on;
};

/* A held frame goes out on its own after this long without a next one. */
#define SWS_HOLD_MAX_MS 2000
#define SWS_FAULT_TICK_MS 100

/* Bound on frames waiting for one slow client before it is dropped. */
#define SWS_MAX_QUEUE 1000000


/* The "listenKey" URL argument, if any. */
static bool key_arg(struct lws *wsi, char *out, int outlen)
{
    char frag[160];
    for (int i = 0; i < 32; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0)
            break;
        if (strncmp(frag, "listenKey=", 10) == 0) {
            lws_strncpy(out, frag + 10, (size_t)outlen);
            return true;
        }
    }
    return false;
}

static struct sws_chan *resolve_wsi(struct sws *ws, struct lws *wsi)
{
    char path[256], key[160];
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) <= 0)
        return NULL;
    bool has_key = key_arg(wsi, key, sizeof(key));
    return ws->resolve(ws->ud, path, has_key ? key : NULL);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct sws_pss *p = user;
    struct sws *ws = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* Refuse the handshake for an unknown or expired key (the HTTP layer checked too; this
         * catches a key that went away in between). */
        return resolve_wsi(ws, wsi) ? 0 : 1;

    case LWS_CALLBACK_ESTABLISHED: {
        struct sws_chan *ch = resolve_wsi(ws, wsi);
        if (!ch)
            return -1;
        memset(p, 0, sizeof(*p));
        p->wsi = wsi;
        p->chan = ch;
        DL_APPEND(ch->conns, p);
        ch->n++;
        return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (p->drop)
            return -1; /* lws drops the TCP connection without a close frame */
        if (p->silent)
            return 0;
        if (p->closing && (p->q.len == 0 || p->q.len >= SWS_MAX_QUEUE)) {
            /* Arm the close from inside lws' service: a timer set from our own uv callbacks
             * would not re-arm lws' loop timer and could wait for unrelated activity. */
            lws_set_timer_usecs(wsi, 1);
            return 0;
        }
        if (p->q.len == 0)
            return 0;
        if (swq_write_one(&p->q, wsi) < 0)
            return -1;
        if (p->closing && p->q.len == 0)
            lws_callback_on_writable(wsi); /* the close above, once the queue is written */
        return 0;
    }

    case LWS_CALLBACK_TIMER:
        /* Polite close: lws 4.1 sends the close frame set by lws_close_reason() when a TIMER
         * callback returns -1, but treats -1 from SERVER_WRITEABLE as a dead socket and just
         * drops the TCP connection. */
        if (p->closing) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return 0;

    case LWS_CALLBACK_RECEIVE:
        return 0; /* the user-data stream takes no client messages; pongs are handled by lws */

    case LWS_CALLBACK_CLOSED:
        if (p->chan) {
            DL_DELETE(p->chan->conns, p);
            p->chan->n--;
            p->chan = NULL;
        }
        swq_clear(&p->q);
        return 0;

    case LWS_CALLBACK_HTTP:
        /* Only upgrade requests are handed to lws; anything else is refused. */
        return -1;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"sim-user-stream", callback, sizeof(struct sws_pss), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
    /* 4.1.6 reports every socket adopted with pending bytes at error level; that is our normal
     * path, not an error. */
    if (strstr(line, "adopt_socket_readbuf"))
        return;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (level & LLL_ERR)
        log_error("lws", "%.*s", (int)n, line);
    else
        log_warn("lws", "%.*s", (int)n, line);
}

static void free_on_close(uv_handle_t *h)
{
    free(h->data);
}

struct sws *sws_new(uv_loop_t *loop, int ping_interval_s, sws_resolve_fn resolve, void *ud)
{
    struct lws_context_creation_info info;
    void *foreign[1] = {loop};
    struct sws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->loop = loop;
    ws->resolve = resolve;
    ws->ud = ud;
    if (uv_timer_init(loop, &ws->fault_timer) < 0) {
        free(ws);
        return NULL;
    }
    ws->fault_timer.data = ws;
    ws->fault_timer_init = true;
    int ping = ping_interval_s < 1 ? 1 : ping_interval_s > 60000 ? 60000 : ping_interval_s;
    ws->retry.secs_since_valid_ping = (uint16_t)ping;
    ws->retry.secs_since_valid_hangup = (uint16_t)(ping + 600 > 65535 ? 65535 : ping + 600);

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign;
    info.pcontext = &ws->ctx;
    info.user = ws;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.vhost_name = "sim-ws";
    info.retry_and_idle_policy = &ws->retry;
    info.max_http_header_data = 8192;
    info.timeout_secs = 20;
    ws->ctx = lws_create_context(&info);
    if (!ws->ctx) {
        /* The timer handle must be closed before ws is freed: run it through a close callback. */
        uv_close((uv_handle_t *)&ws->fault_timer, free_on_close);
        return NULL;
    }
    ws->vh = lws_create_vhost(ws->ctx, &info);
    if (!ws->vh) {
        lws_context_destroy(ws->ctx);
        uv_close((uv_handle_t *)&ws->fault_timer, free_on_close);
        return NULL;
    }
    return ws;
}

int sws_adopt(struct sws *ws, int fd, const char *bytes, size_t len)
{
    if (!ws->ctx) {
        close(fd);
        return -EIO;
    }
    /* On failure lws closes fd itself. */
    struct lws *wsi = lws_adopt_socket_vhost_readbuf(ws->vh, fd, bytes, len);
    return wsi ? 0 : -EIO;
}

void sws_destroy_begin(struct sws *ws)
{
    if (ws && ws->fault_timer_init) {
        uv_close((uv_handle_t *)&ws->fault_timer, NULL);
        ws->fault_timer_init = false;
    }
    if (ws && ws->ctx)
        lws_context_destroy(ws->ctx);
}

struct sws *sws_destroy_finish(struct sws *ws)
{
    if (!ws)
        return NULL;
    /* The second call finishes what the first started (frees the context, NULLs ws->ctx through
     * pcontext). */
    if (ws->ctx)
        lws_context_destroy(ws->ctx);
    /* Channels may outlive ws (they are freed after): forget them. */
    struct sws_chan *ch, *tmp;
    DL_FOREACH_SAFE(ws->chans, ch, tmp) {
        DL_DELETE(ws->chans, ch);
        ch->ws = NULL;
    }
    free(ws);
    return NULL;
}

struct sws_chan *sws_chan_new(struct sws *ws)
{
    struct sws_chan *ch = calloc(1, sizeof(*ch));
    if (ch) {
        ch->ws = ws;
        DL_APPEND(ws->chans, ch);
    }
    return ch;
}

struct sws_chan *sws_chan_free(struct sws_chan *ch)
{
    struct sws_pss *p, *tmp;
    if (!ch)
        return NULL;
    DL_FOREACH_SAFE(ch->conns, p, tmp) {
        DL_DELETE(ch->conns, p);
        p->chan = NULL;
    }
    if (ch->ws)
        DL_DELETE(ch->ws->chans, ch);
    swq_msg_unref(ch->held);
    free(ch->label);
    free(ch);
    return NULL;
}

size_t sws_chan_count(const struct sws_chan *ch)
{
    return ch ? ch->n : 0;
}

/* Queue m on every live connection of the channel; returns how many. */
static int chan_push(struct sws_chan *ch, struct swq_msg *m)
{
    struct sws_pss *p, *tmp;
    int sent = 0;
    DL_FOREACH_SAFE(ch->conns, p, tmp) {
        if (p->closing)
            continue;
        if (p->silent) {
            ch->silenced_frames++; /* lost, as on a dead connection */
            continue;
        }
        if (p->q.len >= SWS_MAX_QUEUE || swq_push(&p->q, m) < 0) {
            /* A client this far behind is dropped rather than let memory grow without bound. */
            p->closing = true;
            lws_callback_on_writable(p->wsi);
            continue;
        }
        lws_callback_on_writable(p->wsi);
        sent++;
    }
    return sent;
}

static void fault_timer_want(struct sws *ws);

int sws_chan_send(struct sws_chan *ch, const char *text, size_t len)
{
    int sent;
    if (!ch || !ch->conns)
        return 0;
    struct swq_msg *m = swq_msg_new(text, len); /* our reference, dropped below */
    if (!m)
        return -ENOMEM;
    if (ch->held) {
        /* ws_reorder: this frame first, then the one held back. */
        struct swq_msg *h = ch->held;
        ch->held = NULL;
        sent = chan_push(ch, m);
        chan_push(ch, h);
        swq_msg_unref(h);
        swq_msg_unref(m);
        return sent;
    }
    unsigned flags = ch->label && ch->ws && ch->ws->hook ? ch->ws->hook(ch->ws->hook_ud, ch->label) : 0;
    if ((flags & SWS_SEND_HOLD) && ch->ws) {
        ch->held = m; /* our reference moves to the channel */
        ch->held_at = uv_now(ch->ws->loop);
        fault_timer_want(ch->ws);
        return (int)ch->n;
    }
    sent = chan_push(ch, m);
    if (flags & SWS_SEND_DUP)
        chan_push(ch, m);
    swq_msg_unref(m);
    return sent;
}

/* ---- fault injection ---- */

int sws_chan_set_label(struct sws_chan *ch, const char *label)
{
    char *l = label ? strdup(label) : NULL;
    if (label && !l)
        return -ENOMEM;
    free(ch->label);
    ch->label = l;
    return 0;
}

void sws_set_send_hook(struct sws *ws, sws_send_hook_fn fn, void *ud)
{
    ws->hook = fn;
    ws->hook_ud = ud;
}

static bool label_is(const struct sws_chan *ch, const char *label)
{
    return !label || (ch->label && !strcmp(ch->label, label));
}

size_t sws_drop(struct sws *ws, const char *label)
{
    struct sws_chan *ch;
    struct sws_pss *p, *tmp;
    size_t n = 0;
    DL_FOREACH(ws->chans, ch) {
        if (!label_is(ch, label))
            continue;
        DL_FOREACH_SAFE(ch->conns, p, tmp) {
            DL_DELETE(ch->conns, p);
            ch->n--;
            p->chan = NULL;
            p->drop = true;
            p->silent = false;
            lws_callback_on_writable(p->wsi);
            n++;
        }
    }
    return n;
}

static void unsilence(struct sws_pss *p)
{
    p->silent = false;
    lws_rx_flow_control(p->wsi, 1);
    lws_validity_confirmed(p->wsi);
    if (p->q.len || p->closing)
        lws_callback_on_writable(p->wsi);
}

static void fault_timer_cb(uv_timer_t *t)
{
    struct sws *ws = t->data;
    struct sws_chan *ch;
    struct sws_pss *p, *tmp;
    uint64_t now = uv_now(ws->loop);
    bool again = false;
    DL_FOREACH(ws->chans, ch) {
        if (ch->held && now - ch->held_at >= SWS_HOLD_MAX_MS) {
            struct swq_msg *h = ch->held;
            ch->held = NULL;
            chan_push(ch, h);
            swq_msg_unref(h);
        }
        again |= ch->held != NULL;
        DL_FOREACH_SAFE(ch->conns, p, tmp) {
            if (!p->silent)
                continue;
            if (now >= p->silent_until) {
                unsilence(p);
                continue;
            }
            /* Keeps lws' validity timer from sending a ping while silent. */
            lws_validity_confirmed(p->wsi);
            again = true;
        }
    }
    if (!again) {
        uv_timer_stop(&ws->fault_timer);
        ws->fault_timer_on = false;
    }
}

static void fault_timer_want(struct sws *ws)
{
    if (ws->fault_timer_init && !ws->fault_timer_on) {
        uv_timer_start(&ws->fault_timer, fault_timer_cb, SWS_FAULT_TICK_MS, SWS_FAULT_TICK_MS);
        ws->fault_timer_on = true;
    }
}

size_t sws_silence(struct sws *ws, const char *label, int64_t duration_ms)
{
    struct sws_chan *ch;
    struct sws_pss *p;
    size_t n = 0;
    uint64_t until = duration_ms > 0 ? uv_now(ws->loop) + (uint64_t)duration_ms : UINT64_MAX;
    DL_FOREACH(ws->chans, ch) {
        if (!label_is(ch, label))
            continue;
        DL_FOREACH(ch->conns, p) {
            if (p->closing)
                continue;
            if (!p->silent) {
                /* Frames queued but not yet written are lost too. */
                ch->silenced_frames += p->q.len;
                swq_clear(&p->q);
                lws_rx_flow_control(p->wsi, 0);
            }
            p->silent = true;
            p->silent_until = until;
            lws_validity_confirmed(p->wsi);
            n++;
        }
    }
    if (n)
        fault_timer_want(ws);
    return n;
}

size_t sws_unsilence(struct sws *ws, const char *label)
{
    struct sws_chan *ch;
    struct sws_pss *p;
    size_t n = 0;
    DL_FOREACH(ws->chans, ch) {
        if (!label_is(ch, label))
            continue;
        DL_FOREACH(ch->conns, p) {
            if (p->silent) {
                unsilence(p);
                n++;
            }
        }
    }
    return n;
}

uint64_t sws_silenced_frames(const struct sws *ws, const char *label)
{
    const struct sws_chan *ch;
    uint64_t n = 0;
    DL_FOREACH(ws->chans, ch)
        if (label_is(ch, label))
            n += ch->silenced_frames;
    return n;
}

void sws_chan_close_all(struct sws_chan *ch, bool close)
{
    struct sws_pss *p, *tmp;
    if (!ch)
        return;
    /* Detach at once: they get nothing more and no longer count as connected. A frame held
     * back (ws_reorder) goes out first. */
    if (ch->held) {
        struct swq_msg *h = ch->held;
        ch->held = NULL;
        chan_push(ch, h);
        swq_msg_unref(h);
    }
    DL_FOREACH_SAFE(ch->conns, p, tmp) {
        DL_DELETE(ch->conns, p);
        ch->n--;
        p->chan = NULL;
        if (p->silent) /* detached, the fault timer would no longer end the silence */
            unsilence(p);
        if (close) {
            p->closing = true;
            lws_callback_on_writable(p->wsi);
        }
    }
}
