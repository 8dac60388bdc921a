#include "sim.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "sim_bn_fmt.h"

int64_t sim_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t book_clock(void *ud)
{
    (void)ud;
    return sim_now_ms();
}

struct sim_acct *sim_acct_of(struct sim *s, const struct sbook_account *ba)
{
    size_t i = sbook_account_index(ba);
    return i < s->naccts ? &s->accts[i] : NULL;
}

struct sim_acct *sim_acct_by_name(struct sim *s, const char *name)
{
    struct sbook_account *ba = sbook_account(s->book, name);
    return ba ? sim_acct_of(s, ba) : NULL;
}

void sim_publish(struct sim *s, struct sim_acct *a, const char *text, size_t len, int64_t time_ms)
{
    (void)s;
    if (sevlog_append(a->log, text, len, time_ms) < 0)
        log_error("sim", "account %s: out of memory logging an event, ignoring", sbook_account_name(a->ba));
    if (a->key_active && sws_chan_send(a->chan, text, len) < 0)
        log_error("sim", "account %s: out of memory queueing an event, ignoring", sbook_account_name(a->ba));
}

/* Book events -> Binance user-stream payloads. */
static void on_book_event(void *ud, struct sbook_account *ba, const struct sbook_event *ev)
{
    struct sim *s = ud;
    struct sim_acct *a = sim_acct_of(s, ba);
    sbuf_reset(&s->evbuf);
    sbnf_event(&s->evbuf, ev);
    if (sbuf_failed(&s->evbuf)) {
        log_error("sim", "account %s: out of memory formatting an event, ignoring", sbook_account_name(ba));
        return;
    }
    sim_publish(s, a, s->evbuf.p, s->evbuf.len, ev->time_ms);
}

size_t sim_replay(struct sim *s, struct sim_acct *a, int64_t from_seq)
{
    size_t sent = 0;
    (void)s;
    if (!a->key_active || sws_chan_count(a->chan) == 0)
        return 0;
    for (size_t i = sevlog_first_from(a->log, from_seq); i < sevlog_count(a->log); i++) {
        const struct sevlog_entry *e = sevlog_at(a->log, i);
        if (sws_chan_send(a->chan, e->text, e->len) > 0)
            sent++;
    }
    return sent;
}

/* ---- listen keys ---- */

struct sim_acct *sim_lkey_lookup(struct sim *s, const char *key)
{
    struct sim_acct *a;
    if (!key)
        return NULL;
    HASH_FIND_STR(s->by_key, key, a);
    return a && a->key_active ? a : NULL;
}

static void new_key(char out[SIM_LISTEN_KEY_LEN + 1])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[SIM_LISTEN_KEY_LEN];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        /* Not a secret, only needs to be unique in this process. */
        static unsigned seed;
        seed += (unsigned)sim_now_ms() ^ (unsigned)getpid();
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (unsigned char)(rand_r(&seed) & 0xff);
    }
    for (size_t i = 0; i < SIM_LISTEN_KEY_LEN; i++)
        out[i] = alphabet[rnd[i] % (sizeof(alphabet) - 1)];
    out[SIM_LISTEN_KEY_LEN] = '\0';
}

const char *sim_lkey_open(struct sim *s, struct sim_acct *a)
{
    if (!a->key_active) {
        do
            new_key(a->listen_key);
        while (sim_lkey_lookup(s, a->listen_key));
        a->key_active = true;
        HASH_ADD_STR(s->by_key, listen_key, a);
    }
    a->key_expires_ms = sim_now_ms() + s->listen_key_ttl_ms;
    return a->listen_key;
}

int sim_lkey_keepalive(struct sim *s, struct sim_acct *a, const char *key)
{
    if (!a->key_active || (key && *key && strcmp(key, a->listen_key) != 0))
        return -ENOENT;
    a->key_expires_ms = sim_now_ms() + s->listen_key_ttl_ms;
    return 0;
}

static void deactivate(struct sim *s, struct sim_acct *a, bool close_conns)
{
    HASH_DEL(s->by_key, a);
    a->key_active = false;
    sws_chan_close_all(a->chan, close_conns);
}

int sim_lkey_close(struct sim *s, struct sim_acct *a, const char *key)
{
    if (!a->key_active || (key && *key && strcmp(key, a->listen_key) != 0))
        return -ENOENT;
    deactivate(s, a, true);
    return 0;
}

/* Once a second: expire listen keys that were not kept alive. Binance sends listenKeyExpired and
 * then nothing more on that key; the socket itself stays open. */
static void tick_cb(uv_timer_t *t)
{
    struct sim *s = t->data;
    int64_t now = sim_now_ms();
    for (size_t i = 0; i < s->naccts; i++) {
        struct sim_acct *a = &s->accts[i];
        if (!a->key_active || now < a->key_expires_ms)
            continue;
        sbuf_reset(&s->evbuf);
        sbnf_listen_key_expired(&s->evbuf, now, a->listen_key);
        if (!sbuf_failed(&s->evbuf))
            sim_publish(s, a, s->evbuf.p, s->evbuf.len, now);
        log_info("sim", "account %s: listen key expired", sbook_account_name(a->ba));
        deactivate(s, a, false);
    }
}

/* ---- lifecycle ---- */

struct sim *sim_new(uv_loop_t *loop, const struct scfg *cfg, char *err, size_t errlen)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->cfg = cfg;
    s->listen_key_ttl_ms = (int64_t)cfg->listen_key_ttl_s * 1000;
    s->book = sbook_new(on_book_event, book_clock, s);
    s->accts = calloc(cfg->naccounts, sizeof(*s->accts));
    if (!s->book || !s->accts) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->nsymbols; i++) {
        int rc = sbook_add_symbol(s->book, &cfg->symbols[i].ins, cfg->symbols[i].price);
        if (rc < 0) {
            snprintf(err, errlen, "symbol %s: %s", cfg->symbols[i].ins.symbol, strerror(-rc));
            goto fail;
        }
    }
    s->ws = sws_new(loop, cfg->ping_interval_s, sim_bn_resolve_stream, s);
    if (!s->ws) {
        snprintf(err, errlen, "cannot create the libwebsockets context (is libwebsockets-evlib-uv installed?)");
        goto fail;
    }
    for (size_t i = 0; i < cfg->naccounts; i++) {
        const struct scfg_account *ca = &cfg->accounts[i];
        int rc = sbook_add_account(s->book, ca->name, ca->api_key, ca->api_secret, ca->balance);
        if (rc < 0) {
            snprintf(err, errlen, "account %s: %s", ca->name, strerror(-rc));
            goto fail;
        }
        s->accts[i].ba = sbook_account(s->book, ca->name);
        for (size_t k = 0; k < cfg->nsymbols; k++) {
            if (sbook_set_leverage(s->accts[i].ba, sbook_symbol_at(s->book, k), ca->leverage) < 0) {
                snprintf(err, errlen, "account %s: leverage %d out of range", ca->name, ca->leverage);
                goto fail;
            }
        }
        if (ca->position_mode != MKT_PM_ONE_WAY &&
            sbook_set_position_mode(s->book, s->accts[i].ba, ca->position_mode) != SBOOK_OK) {
            snprintf(err, errlen, "account %s: cannot set the position mode", ca->name);
            goto fail;
        }
        s->accts[i].log = sevlog_new((size_t)cfg->event_log_limit);
        s->accts[i].chan = sws_chan_new(s->ws);
        s->naccts = i + 1;
        if (!s->accts[i].log || !s->accts[i].chan) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (uv_timer_init(loop, &s->tick) < 0) {
        snprintf(err, errlen, "uv_timer_init failed");
        goto fail;
    }
    s->tick.data = s;
    s->tick_started = true;
    uv_timer_start(&s->tick, tick_cb, 1000, 1000);
    return s;
fail:
    /* Nothing listens yet and nothing else runs on the loop: tear down right here. */
    sim_stop(s);
    uv_run(loop, UV_RUN_DEFAULT);
    sim_free(s);
    return NULL;
}

static void adopt_ws(void *ud, int fd, const char *bytes, size_t len)
{
    struct sim *s = ud;
    if (sws_adopt(s->ws, fd, bytes, len) < 0)
        log_warn("sim", "websocket hand-over to lws failed, connection dropped");
}

int sim_listen(struct sim *s, int rest_port, int admin_port, char *err, size_t errlen)
{
    int rc;
    struct shttp_opts rest = {sim_bn_handle, sim_bn_upgrade, adopt_ws, s};
    struct shttp_opts admin = {sim_admin_handle, NULL, NULL, s};
    s->rest = shttp_new(s->loop, "127.0.0.1", rest_port, &rest, &rc);
    if (!s->rest) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d (REST): %s", rest_port, uv_strerror(rc));
        return rc;
    }
    s->admin = shttp_new(s->loop, "127.0.0.1", admin_port, &admin, &rc);
    if (!s->admin) {
        snprintf(err, errlen, "cannot listen on 127.0.0.1:%d (admin): %s", admin_port, uv_strerror(rc));
        return rc;
    }
    return 0;
}

int sim_rest_port(const struct sim *s) { return s->rest ? shttp_port(s->rest) : -1; }
int sim_admin_port(const struct sim *s) { return s->admin ? shttp_port(s->admin) : -1; }

void sim_stop(struct sim *s)
{
    if (!s)
        return;
    sws_destroy_begin(s->ws);
    shttp_close(s->rest);
    s->rest = NULL;
    shttp_close(s->admin);
    s->admin = NULL;
    if (s->tick_started) {
        uv_close((uv_handle_t *)&s->tick, NULL);
        s->tick_started = false;
    }
}

struct sim *sim_free(struct sim *s)
{
    if (!s)
        return NULL;
    s->ws = sws_destroy_finish(s->ws);
    HASH_CLEAR(hh, s->by_key);
    for (size_t i = 0; i < s->naccts; i++) {
        sevlog_free(s->accts[i].log);
        sws_chan_free(s->accts[i].chan);
    }
    free(s->accts);
    sbook_free(s->book);
    sbuf_free(&s->evbuf);
    free(s);
    return NULL;
}
