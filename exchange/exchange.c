/* exchange: exchange kinds, the account object (shared by every adapter) and dispatch of the
 * exchange.h calls to the adapter of the account's kind.
 *
 * Credentials live in private pages shared by many accounts (a slab of CRED_SLAB bytes; one page
 * per account cost 4 KiB of locked memory each, 40 MiB for 10,000 followers): mlock'ed (best
 * effort, so they are not swapped out), excluded from core dumps. exch_account_free() wipes an
 * account's bytes at once; a slab is unmapped when its last account is gone. Only
 * exch_account_sign_hex() touches the secret. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "binance_rest.h"
#include "binance_sign.h"
#include "bybit_rest.h"
#include "exchange.h"
#include "exch_limits.h"
#include "exchange_internal.h"
#include "rest_pool.h"

#define URL_MAX 512
#define CRED_MAX 512

struct exch_account {
    unsigned refs;
    bool closed;
    enum exch_kind kind;
    char *name;
    char *rest_url;
    char *ws_url;
    int recv_window_ms;
    int timeout_ms;
    int stream_ping_ms, stream_silence_ms;
    int64_t time_offset_ms;
    struct exch_usage usage;
    struct exch_bybit_usage bybit_usage;
    struct rest_pool *pool;
    struct exch_limits *limits; /* rate budgets + breaker (exch_limits.c) */
    /* in a credential slab: api_key NUL secret NUL */
    struct cred_slab *slab;
    char *cred;
    size_t cred_len;
    const char *api_key;
    const char *secret;
    size_t secret_len;
    /* The secret keyed for HMAC (binance_sign.h: its two SHA-256 midstates, 224 bytes): made at
     * the account's first signature (10,000 followers that have not signed yet cost nothing). */
    struct binance_key *key;
    /* name, rest_url and ws_url point here (one block: 10,000 accounts, 30,000 mallocs less) */
    char strs[];
};

int exch_kind_parse(const char *s, enum exch_kind *out) {
    if (!s || !out) return -EINVAL;
    if (strcmp(s, "binance-usdm") == 0) *out = EXCH_BINANCE_USDM;
    else if (strcmp(s, "bybit-linear") == 0) *out = EXCH_BYBIT_LINEAR;
    else return -EINVAL;
    return 0;
}

const char *exch_kind_name(enum exch_kind k) {
    switch (k) {
    case EXCH_BINANCE_USDM: return "binance-usdm";
    case EXCH_BYBIT_LINEAR: return "bybit-linear";
    }
    return "unknown";
}

/* Printable ASCII without spaces: what an API key or secret may contain (it goes into a header). */
static bool cred_ok(const char *s) {
    if (!s || !*s || strlen(s) > CRED_MAX) return false;
    for (const char *c = s; *c; c++)
        if (*c <= ' ' || *c > '~') return false;
    return true;
}

static bool url_ok(const char *s, const char *scheme_a, const char *scheme_b) {
    if (!s || strlen(s) >= URL_MAX) return false;
    if (strncmp(s, scheme_a, strlen(scheme_a)) != 0 && strncmp(s, scheme_b, strlen(scheme_b)) != 0)
        return false;
    for (const char *c = s; *c; c++)
        if (*c <= ' ' || *c > '~') return false;
    return true;
}

/* ---- credential slabs ---- */

#define CRED_SLAB (64 * 1024)

struct cred_slab {
    struct cred_slab *next;
    char *mem;
    size_t len, used; /* bytes handed out (never reused: a slab only fills up, then empties) */
    size_t live;      /* accounts whose credentials are in it */
    bool locked;
};

static pthread_mutex_t cred_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cred_slab *cred_slabs; /* the first one takes new credentials */

/* n bytes (16-aligned) in a locked, undumpable slab; NULL with errno ENOMEM. */
static char *cred_alloc(size_t n, struct cred_slab **slab) {
    n = (n + 15) & ~(size_t)15;
    pthread_mutex_lock(&cred_mu);
    struct cred_slab *s = cred_slabs;
    if (!s || s->len - s->used < n) {
        struct cred_slab *old = s && s->live == 0 ? s : NULL; /* emptied while it was current */
        if (old) {
            cred_slabs = old->next;
            if (old->locked) munlock(old->mem, old->len);
            munmap(old->mem, old->len);
            free(old);
        }
        long pg = sysconf(_SC_PAGESIZE);
        size_t len = CRED_SLAB;
        while (len < n) len *= 2;
        if (pg > 0 && len % (size_t)pg) len += (size_t)pg - len % (size_t)pg;
        s = calloc(1, sizeof *s);
        void *m = s ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
        if (m == MAP_FAILED) {
            pthread_mutex_unlock(&cred_mu);
            free(s);
            errno = ENOMEM;
            return NULL;
        }
        s->mem = m;
        s->len = len;
        s->locked = mlock(m, len) == 0; /* best effort (RLIMIT_MEMLOCK) */
        (void)madvise(m, len, MADV_DONTDUMP);
        s->next = cred_slabs;
        cred_slabs = s;
    }
    char *p = s->mem + s->used;
    s->used += n;
    s->live++;
    *slab = s;
    pthread_mutex_unlock(&cred_mu);
    return p;
}

static void cred_wipe(struct exch_account *a) {
    if (!a->cred) return;
    explicit_bzero(a->cred, a->cred_len);
    pthread_mutex_lock(&cred_mu);
    struct cred_slab *s = a->slab, *gone = NULL;
    if (--s->live == 0 && (s != cred_slabs || s->len - s->used < 64)) {
        struct cred_slab **pp = &cred_slabs;
        while (*pp && *pp != s) pp = &(*pp)->next;
        if (*pp) *pp = s->next;
        gone = s;
    }
    pthread_mutex_unlock(&cred_mu);
    if (gone) {
        if (gone->locked) munlock(gone->mem, gone->len);
        munmap(gone->mem, gone->len);
        free(gone);
    }
    a->cred = NULL;
    a->slab = NULL;
    a->api_key = a->secret = NULL;
    a->secret_len = 0;
    a->key = binance_key_free(a->key);
}

static void account_destroy(struct exch_account *a) {
    cred_wipe(a);
    exch_limits_free(a->limits);
    free(a);
}

struct exch_account *exch_account_new(const struct exch_account_cfg *cfg, struct rest_pool *pool) {
    if (!cfg || !cfg->name || !*cfg->name || strlen(cfg->name) >= MKT_ACCOUNT_MAX ||
        (cfg->kind != EXCH_BINANCE_USDM && cfg->kind != EXCH_BYBIT_LINEAR) ||
        !url_ok(cfg->rest_url, "http://", "https://") ||
        (cfg->ws_url && *cfg->ws_url && !url_ok(cfg->ws_url, "ws://", "wss://")) ||
        !cred_ok(cfg->api_key) || !cred_ok(cfg->api_secret) || cfg->recv_window_ms < 0 ||
        cfg->recv_window_ms > 60000 || cfg->timeout_ms < 0) {
        errno = EINVAL;
        return NULL;
    }
    const char *ws = cfg->ws_url ? cfg->ws_url : "";
    size_t nl = strlen(cfg->name) + 1, rl = strlen(cfg->rest_url) + 1, wl = strlen(ws) + 1;
    struct exch_account *a = calloc(1, sizeof *a + nl + rl + wl);
    if (!a) return NULL;
    a->refs = 1;
    a->kind = cfg->kind;
    a->pool = pool;
    a->recv_window_ms = cfg->recv_window_ms ? cfg->recv_window_ms : 5000;
    a->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 5000;
    a->stream_ping_ms = cfg->stream_ping_ms > 0 ? cfg->stream_ping_ms : 0;
    a->stream_silence_ms = cfg->stream_silence_ms > 0 ? cfg->stream_silence_ms : 0;
    /* A silence bound alone: ping three times within it, so one lost pong is not a death. */
    if (a->stream_silence_ms && !a->stream_ping_ms) a->stream_ping_ms = a->stream_silence_ms / 3;
    a->usage = (struct exch_usage){-1, -1, -1, 0};
    a->bybit_usage = (struct exch_bybit_usage){-1, -1, -1, 0};
    a->name = memcpy(a->strs, cfg->name, nl);
    a->rest_url = memcpy(a->strs + nl, cfg->rest_url, rl);
    a->ws_url = memcpy(a->strs + nl + rl, ws, wl);
    size_t ul = strlen(a->rest_url);
    while (ul > 0 && a->rest_url[ul - 1] == '/') a->rest_url[--ul] = '\0';
    if (!(a->limits = exch_limits_new(a->kind, a->rest_url, a->name))) goto fail;

    size_t kl = strlen(cfg->api_key), sl = strlen(cfg->api_secret);
    a->cred_len = kl + sl + 2;
    if (!(a->cred = cred_alloc(a->cred_len, &a->slab))) goto fail;
    memcpy(a->cred, cfg->api_key, kl + 1);
    memcpy(a->cred + kl + 1, cfg->api_secret, sl + 1);
    a->api_key = a->cred;
    a->secret = a->cred + kl + 1;
    a->secret_len = sl;
    return a;

fail:
    account_destroy(a);
    errno = ENOMEM;
    return NULL;
}

struct exch_account *exch_account_ref(struct exch_account *a) {
    if (a) a->refs++;
    return a;
}

void exch_account_unref(struct exch_account *a) {
    if (a && --a->refs == 0) account_destroy(a);
}

struct exch_account *exch_account_free(struct exch_account *a) {
    if (!a || a->closed) return NULL;
    a->closed = true;
    cred_wipe(a);
    exch_account_unref(a);
    return NULL;
}

bool exch_account_is_closed(const struct exch_account *a) { return !a || a->closed; }
const char *exch_account_name(const struct exch_account *a) { return a ? a->name : ""; }
int64_t exch_account_time_offset_ms(const struct exch_account *a) {
    return a ? a->time_offset_ms : 0;
}
void exch_account_set_time_offset_ms(struct exch_account *a, int64_t offset_ms) {
    if (a) a->time_offset_ms = offset_ms;
}
void exch_account_usage(const struct exch_account *a, struct exch_usage *out) {
    if (!out) return;
    *out = a ? a->usage : (struct exch_usage){-1, -1, -1, 0};
}
void exch_account_note_usage(struct exch_account *a, const struct exch_usage *u) {
    if (!a || !u) return;
    bool any = false;
    if (u->used_weight_1m >= 0) a->usage.used_weight_1m = u->used_weight_1m, any = true;
    if (u->order_count_10s >= 0) a->usage.order_count_10s = u->order_count_10s, any = true;
    if (u->order_count_1m >= 0) a->usage.order_count_1m = u->order_count_1m, any = true;
    if (any) a->usage.updated_ms = u->updated_ms;
}
void exch_account_bybit_usage(const struct exch_account *a, struct exch_bybit_usage *out) {
    if (!out) return;
    *out = a ? a->bybit_usage : (struct exch_bybit_usage){-1, -1, -1, 0};
}
void exch_account_note_bybit_usage(struct exch_account *a, const struct exch_bybit_usage *u) {
    if (!a || !u) return;
    bool any = false;
    if (u->limit >= 0) a->bybit_usage.limit = u->limit, any = true;
    if (u->remaining >= 0) a->bybit_usage.remaining = u->remaining, any = true;
    if (u->reset_ms >= 0) a->bybit_usage.reset_ms = u->reset_ms, any = true;
    if (any) a->bybit_usage.updated_ms = u->updated_ms;
}
const char *exch_account_ws_url(const struct exch_account *a) { return a ? a->ws_url : ""; }
enum exch_kind exch_account_kind(const struct exch_account *a) { return a->kind; }
uv_loop_t *exch_account_loop(const struct exch_account *a) {
    return a ? rest_pool_loop(a->pool) : NULL;
}
struct rest_pool *exch_account_pool(const struct exch_account *a) { return a ? a->pool : NULL; }
struct exch_limits *exch_account_limits(const struct exch_account *a) { return a ? a->limits : NULL; }
const char *exch_account_rest_url(const struct exch_account *a) { return a ? a->rest_url : ""; }
const char *exch_account_api_key(const struct exch_account *a) {
    return a && a->api_key ? a->api_key : "";
}
int exch_account_recv_window_ms(const struct exch_account *a) { return a->recv_window_ms; }
int exch_account_timeout_ms(const struct exch_account *a) { return a->timeout_ms; }
int exch_account_stream_ping_ms(const struct exch_account *a) { return a->stream_ping_ms; }
int exch_account_stream_silence_ms(const struct exch_account *a) { return a->stream_silence_ms; }

int exch_account_sign_hex(const struct exch_account *a, const char *payload, size_t len,
                          char out[65]) {
    if (!a || a->closed || !a->secret) return -ESHUTDOWN;
    struct binance_key *k = __atomic_load_n(&a->key, __ATOMIC_ACQUIRE);
    if (!k) {
        struct binance_key *mine = binance_key_new(a->secret, a->secret_len), *none = NULL;
        if (!mine) return binance_sign(a->secret, a->secret_len, payload, len, out);
        /* const: the key is a cache of the secret, made once (the first caller's wins). */
        struct binance_key **slot = (struct binance_key **)&a->key;
        if (__atomic_compare_exchange_n(slot, &none, mine, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            k = mine;
        else {
            binance_key_free(mine);
            k = none;
        }
    }
    return binance_sign_key(k, payload, len, out);
}

/* ---- dispatch ---- */

#define DISPATCH(a, binance_call, bybit_call)                         \
    do {                                                              \
        if (!(a)) return -EINVAL;                                     \
        if ((a)->closed) return -ESHUTDOWN;                           \
        if (!(a)->pool) return -EINVAL;                               \
        switch ((a)->kind) {                                          \
        case EXCH_BINANCE_USDM: return binance_call;                  \
        case EXCH_BYBIT_LINEAR: return bybit_call;                    \
        }                                                             \
        return -EINVAL;                                               \
    } while (0)

int exch_place_order(struct exch_account *a, const struct exch_order_req *req, exch_order_cb cb,
                     void *ud) {
    DISPATCH(a, binance_place_order(a, req, cb, ud),
             bybit_place_order(a, req, cb, ud));
}

int exch_query_order(struct exch_account *a, const char *symbol, const char *client_id,
                     exch_order_cb cb, void *ud) {
    DISPATCH(a, binance_query_order(a, symbol, client_id, cb, ud),
             bybit_query_order(a, symbol, client_id, cb, ud));
}

int exch_fetch_instruments(struct exch_account *a, exch_instruments_cb cb, void *ud) {
    DISPATCH(a, binance_fetch_instruments(a, cb, ud),
             bybit_fetch_instruments(a, cb, ud));
}

int exch_fetch_positions(struct exch_account *a, exch_positions_cb cb, void *ud) {
    DISPATCH(a, binance_fetch_positions(a, cb, ud),
             bybit_fetch_positions(a, cb, ud));
}

/* ---- server time: one request per exchange host ----
 * The offset is the host's clock against ours, the same for every account on it. Calls made while
 * another account's request to the same host (same pool, kind and REST URL) is in flight join
 * it: 10,000 followers at start-up cost one request, not 10,000 (each one IP weight, Binance's
 * 2,400 a minute). The account whose request a flight is asking again sends a request of its own
 * (it wants a second measurement). A join scans the flights in progress, about one per host. */
struct time_waiter {
    struct time_waiter *next;
    struct exch_account *a; /* a reference */
    exch_time_cb cb;
    void *ud;
};

struct time_flight {
    struct time_flight *next;
    struct rest_pool *pool;
    enum exch_kind kind;
    const char *rest_url; /* the first waiter's (it holds a reference) */
    struct time_waiter *waiters, **tail;
};

/* Flights are per pool, a pool is one loop; the list is shared by every loop of the process. */
static pthread_mutex_t time_mu = PTHREAD_MUTEX_INITIALIZER;
static struct time_flight *time_flights;

static void time_unlink(struct time_flight *f) {
    pthread_mutex_lock(&time_mu);
    struct time_flight **pp = &time_flights;
    while (*pp && *pp != f) pp = &(*pp)->next;
    if (*pp) *pp = f->next;
    pthread_mutex_unlock(&time_mu);
}

static void time_flight_done(void *ud, const struct exch_status *st, int64_t offset_ms) {
    struct time_flight *f = ud;
    time_unlink(f); /* calls from the callbacks below start a new flight */
    struct time_waiter *w = f->waiters;
    free(f);
    while (w) {
        struct time_waiter *next = w->next;
        if (!st->err && !w->a->closed) w->a->time_offset_ms = offset_ms;
        w->cb(w->ud, st, st->err ? 0 : offset_ms);
        exch_account_unref(w->a);
        free(w);
        w = next;
    }
}

int exch_sync_time(struct exch_account *a, exch_time_cb cb, void *ud) {
    if (!a || !cb) return -EINVAL;
    if (a->closed) return -ESHUTDOWN;
    if (!a->pool) return -EINVAL;
    if (a->kind != EXCH_BINANCE_USDM && a->kind != EXCH_BYBIT_LINEAR) return -EINVAL;
    struct time_waiter *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    *w = (struct time_waiter){.a = exch_account_ref(a), .cb = cb, .ud = ud};
    pthread_mutex_lock(&time_mu);
    struct time_flight *f;
    for (f = time_flights; f; f = f->next)
        if (f->pool == a->pool && f->kind == a->kind && f->waiters->a != a && !strcmp(f->rest_url, a->rest_url))
            break;
    if (f) {
        *f->tail = w;
        f->tail = &w->next;
        pthread_mutex_unlock(&time_mu);
        return 0;
    }
    pthread_mutex_unlock(&time_mu);
    f = calloc(1, sizeof *f);
    if (!f) {
        exch_account_unref(a);
        free(w);
        return -ENOMEM;
    }
    *f = (struct time_flight){.pool = a->pool, .kind = a->kind, .rest_url = a->rest_url, .waiters = w,
                              .tail = &w->next};
    /* Listed before the request is made: the adapter never calls back from inside the call. */
    pthread_mutex_lock(&time_mu);
    f->next = time_flights;
    time_flights = f;
    pthread_mutex_unlock(&time_mu);
    int r = a->kind == EXCH_BINANCE_USDM ? binance_sync_time(a, time_flight_done, f)
                                         : bybit_sync_time(a, time_flight_done, f);
    if (r < 0) { /* nobody joined: only this loop uses this pool, and it is here */
        time_unlink(f);
        free(f);
        exch_account_unref(a);
        free(w);
    }
    return r;
}

int exch_listen_key_create(struct exch_account *a, exch_listen_key_cb cb, void *ud) {
    DISPATCH(a, binance_listen_key_create(a, cb, ud),
             -ENOTSUP /* Bybit has no listenKey */);
}

int exch_listen_key_keepalive(struct exch_account *a, const char *listen_key, exch_listen_key_cb cb,
                              void *ud) {
    DISPATCH(a, binance_listen_key_keepalive(a, listen_key, cb, ud),
             -ENOTSUP);
}

int exch_listen_key_delete(struct exch_account *a, const char *listen_key, exch_listen_key_cb cb,
                           void *ud) {
    DISPATCH(a, binance_listen_key_delete(a, listen_key, cb, ud),
             -ENOTSUP);
}

int exch_fetch_account(struct exch_account *a, exch_balance_cb cb, void *ud) {
    DISPATCH(a, binance_fetch_account(a, cb, ud),
             bybit_fetch_account(a, cb, ud));
}

int exch_fetch_tickers(struct exch_account *a, exch_tickers_cb cb, void *ud) {
    DISPATCH(a, binance_fetch_tickers(a, cb, ud),
             bybit_fetch_tickers(a, cb, ud));
}

int exch_fetch_position_mode(struct exch_account *a, exch_pos_mode_cb cb, void *ud) {
    DISPATCH(a, binance_fetch_position_mode(a, cb, ud),
             bybit_fetch_position_mode(a, cb, ud));
}

int exch_fetch_leverage(struct exch_account *a, exch_leverages_cb cb, void *ud) {
    DISPATCH(a, binance_fetch_leverage(a, cb, ud),
             bybit_fetch_leverage(a, cb, ud));
}

int exch_set_leverage(struct exch_account *a, const char *symbol, int leverage,
                      exch_set_leverage_cb cb, void *ud) {
    DISPATCH(a, binance_set_leverage(a, symbol, leverage, cb, ud),
             bybit_set_leverage(a, symbol, leverage, cb, ud));
}

int exch_cancel_order(struct exch_account *a, const char *symbol, const char *client_id,
                      exch_order_cb cb, void *ud) {
    DISPATCH(a, binance_cancel_order(a, symbol, client_id, cb, ud),
             bybit_cancel_order(a, symbol, client_id, cb, ud));
}

size_t exch_batch_max(const struct exch_account *a) {
    if (!a || a->closed) return 0;
    switch (a->kind) {
    case EXCH_BINANCE_USDM: return BINANCE_BATCH_MAX;
    case EXCH_BYBIT_LINEAR: return BYBIT_BATCH_MAX;
    }
    return 0;
}

int exch_place_batch(struct exch_account *a, const struct exch_order_req *reqs, size_t n,
                     exch_batch_cb cb, void *ud) {
    DISPATCH(a, binance_place_batch(a, reqs, n, cb, ud),
             bybit_place_batch(a, reqs, n, cb, ud));
}

int exch_fetch_fills(struct exch_account *a, const char *symbol, int64_t since_ms,
                     exch_fills_cb cb, void *ud) {
    DISPATCH(a, binance_fetch_fills(a, symbol, since_ms, cb, ud),
             bybit_fetch_fills(a, symbol, since_ms, cb, ud));
}

int exch_fetch_book_tickers(struct exch_account *a, exch_book_tickers_cb cb, void *ud) {
    DISPATCH(a, binance_fetch_book_tickers(a, cb, ud),
             bybit_fetch_book_tickers(a, cb, ud));
}
