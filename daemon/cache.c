/* cache: in-process TTL + LRU cache with Redis as a shared second level (see cache.h).
 *
 * Pieces:
 *  - entries: uthash by key, plus a utlist doubly linked list in recency order (head = least
 *    recently used), so a lookup moves an entry in O(1) without rehashing.
 *  - flights (struct cache_load): one per key being fetched, in c->flights while "active"
 *    (waiters not answered yet). A flight outlives its answer while a Redis GET or a loader
 *    call still refers to it (redis_out, load_out) or a caller holds it (pins); it is freed
 *    when all of those are gone. cache_free detaches flights still referred to (f->c = NULL)
 *    so their late completions only free them.
 *  - deadlines: Redis GETs share one timeout and loads another, so each kind waits in a FIFO
 *    list already sorted by deadline; one uv timer is armed for the earliest head.
 *  - "newer wins" uses a per-cache sequence number as a data version: every put, del and load
 *    start (single or batch) takes the next one. A load's result is stored with its number,
 *    only if the entry's version is older and no del came after (del_seq). So a put beats any
 *    load in flight, and of two loads the later requested wins whichever answers last.
 */
#include "cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1 /* a failed add leaves the item out (hh.tbl == NULL), no exit() */
#include <uthash.h>
#include <utlist.h>

#include "log.h"
#include "redis_client.h"

struct entry {
    UT_hash_handle hh;
    struct entry *prev, *next; /* recency list */
    int64_t stored_ms;         /* may be "before 0" for a Redis value read with its age */
    uint64_t seq;
    char *val; /* NUL-terminated */
    uint32_t len, cap;
    char key[];
};

struct waiter {
    struct waiter *next;
    cache_done_fn cb;
    void *ud;
};

/* A node in one of the two deadline lists. */
enum pend_kind { PEND_FLIGHT, PEND_BATCH };
struct pend {
    struct pend *prev, *next;
    uint64_t deadline; /* loop time */
    enum pend_kind kind;
    bool queued;
};

enum phase { PH_REDIS, PH_LOAD };

struct cache_load { /* a flight */
    UT_hash_handle hh;               /* c->flights, while active */
    struct cache_load *aprev, *anext; /* c->all_flights, until freed */
    struct pend pd;                  /* c->redis_q or c->load_q */
    struct cache *c;                 /* NULL once cache_free detached it */
    struct cache_batch *batch;       /* set when a cache_warm batch loads this key */
    struct waiter *waiters, *wtail;
    cache_loader_fn loader;
    void *loader_ud;
    uint64_t start_seq;
    enum phase phase;
    bool active, redis_out, load_out;
    unsigned pins;
    char key[];
};

struct cache_batch {
    struct pend pd; /* c->load_q */
    struct cache_batch *prev, *next; /* c->batches, until done or cache_free */
    struct cache *c;
    struct cache_load **fl; /* flights this batch created (NULL slots: key already in flight) */
    size_t nfl;
    uint64_t start_seq;
    size_t stored;
    cache_warm_fn done;
    void *ud;
    bool answered; /* done was called (or is not to be) */
    bool finished; /* cache_batch_done was called */
    unsigned pins;
};

struct cache {
    uv_loop_t *loop;
    struct rds *rds;
    struct cache_opts o;
    char name[64];
    char prefix[CACHE_PREFIX_MAX + 1];
    size_t prefix_len;

    struct entry *entries; /* uthash head */
    struct entry *lru;     /* recency list head */
    uint64_t bytes;        /* entries + keys + values */
    uint64_t seq, del_seq;

    struct cache_load *flights;     /* uthash head: active flights */
    struct cache_load *all_flights; /* every flight not yet freed */
    struct cache_batch *batches;
    struct pend *redis_q, *load_q;

    uv_timer_t timer;
    uint64_t timer_due; /* valid while the timer is active */
    uint64_t redis_skip_until;
    unsigned in_cb;
    bool closing;

    struct cache_stats st;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static int64_t now_ms(const struct cache *c)
{
    return c->o.now_ms ? (int64_t)c->o.now_ms(c->o.clock_ud) : (int64_t)uv_now(c->loop);
}

static int check_key(const char *key, size_t *klen)
{
    if (!key) return -EINVAL;
    size_t n = strnlen(key, CACHE_KEY_MAX + 1);
    if (n == 0 || n > CACHE_KEY_MAX) return -EINVAL;
    *klen = n;
    return 0;
}

static int check_value(const void *val, size_t len)
{
    if ((!val && len) || len > CACHE_VALUE_MAX) return -EINVAL;
    return 0;
}

/* "<prefix><key>" into buf (CACHE_PREFIX_MAX + CACHE_KEY_MAX + 1 bytes). */
static const char *redis_key(const struct cache *c, const char *key, size_t klen, char *buf)
{
    memcpy(buf, c->prefix, c->prefix_len);
    memcpy(buf + c->prefix_len, key, klen);
    buf[c->prefix_len + klen] = '\0';
    return buf;
}

static void redis_set(struct cache *c, const char *key, size_t klen, const void *val, size_t len)
{
    if (!c->rds) return;
    char buf[CACHE_PREFIX_MAX + CACHE_KEY_MAX + 1];
    if (rds_set_px(c->rds, redis_key(c, key, klen, buf), val, len, c->o.ttl_ms) != 0)
        c->st.redis_errors++;
}

/* ---- entries ------------------------------------------------------------------------------ */

static size_t entry_bytes(const struct entry *e)
{
    return sizeof *e + strlen(e->key) + 1 + e->cap;
}

static void entry_remove(struct cache *c, struct entry *e)
{
    HASH_DEL(c->entries, e);
    DL_DELETE(c->lru, e);
    c->bytes -= entry_bytes(e);
    free(e->val);
    free(e);
}

static struct entry *entry_find(struct cache *c, const char *key, size_t klen)
{
    struct entry *e;
    HASH_FIND(hh, c->entries, key, klen, e);
    return e;
}

static void entry_touch(struct cache *c, struct entry *e)
{
    if (e->next) { /* not already the most recent */
        DL_DELETE(c->lru, e);
        DL_APPEND(c->lru, e);
    }
}

/* Store key = val as of stored_ms (age 0 for puts), with version seq: a put's own new number,
 * or for a load the number current when it was requested. Evicts the least recently used entry
 * when a new key would exceed max_entries. */
static int store_local(struct cache *c, const char *key, size_t klen, const void *val, size_t len,
                       int64_t stored_ms, uint64_t seq)
{
    /* val may point into an entry (a caller copying a value it got from cache_get): copy it
     * before anything is freed or evicted, and never with memcpy onto itself. */
    struct entry *e = entry_find(c, key, klen);
    if (e) {
        if (len + 1 > e->cap) {
            char *nv = malloc(len + 1);
            if (!nv) return -ENOMEM;
            memcpy(nv, val, len);
            free(e->val);
            c->bytes += len + 1 - e->cap;
            e->val = nv;
            e->cap = (uint32_t)(len + 1);
        } else if (len) {
            memmove(e->val, val, len);
        }
        entry_touch(c, e);
    } else {
        e = calloc(1, sizeof *e + klen + 1);
        char *v = malloc(len + 1);
        if (!e || !v) {
            free(e);
            free(v);
            return -ENOMEM;
        }
        if (len) memcpy(v, val, len);
        memcpy(e->key, key, klen);
        e->val = v;
        e->cap = (uint32_t)(len + 1);
        if (HASH_COUNT(c->entries) >= c->o.max_entries) {
            entry_remove(c, c->lru);
            c->st.evictions++;
        }
        HASH_ADD_KEYPTR(hh, c->entries, e->key, klen, e);
        if (!e->hh.tbl) { /* uthash could not grow */
            free(v);
            free(e);
            return -ENOMEM;
        }
        DL_APPEND(c->lru, e);
        c->bytes += entry_bytes(e);
    }
    e->val[len] = '\0';
    e->len = (uint32_t)len;
    e->stored_ms = stored_ms;
    e->seq = seq;
    return 0;
}

/* May a load requested at start_seq store its result for key? Not if the entry was put, or
 * anything deleted, since; yes over the result of a load requested earlier. */
static bool may_store(struct cache *c, const char *key, size_t klen, uint64_t start_seq)
{
    if (c->del_seq > start_seq) return false;
    struct entry *e = entry_find(c, key, klen);
    return !e || e->seq <= start_seq;
}

/* ---- deadlines ------------------------------------------------------------------------------ */

static void on_timer(uv_timer_t *t);

static void arm(struct cache *c)
{
    uint64_t due = UINT64_MAX;
    if (c->redis_q) due = c->redis_q->deadline;
    if (c->load_q && c->load_q->deadline < due) due = c->load_q->deadline;
    if (due == UINT64_MAX) return; /* nothing waits; a running timer just fires for nothing */
    if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_due <= due) return;
    uint64_t now = uv_now(c->loop);
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static void enqueue(struct cache *c, struct pend **q, struct pend *p, unsigned timeout_ms)
{
    p->deadline = uv_now(c->loop) + timeout_ms;
    DL_APPEND(*q, p);
    p->queued = true;
    arm(c);
}

static void dequeue(struct pend **q, struct pend *p)
{
    if (!p->queued) return;
    DL_DELETE(*q, p);
    p->queued = false;
}

#define FLIGHT_OF(p) ((struct cache_load *)(void *)((char *)(p) - offsetof(struct cache_load, pd)))
#define BATCH_OF(p) ((struct cache_batch *)(void *)((char *)(p) - offsetof(struct cache_batch, pd)))

/* ---- flights ------------------------------------------------------------------------------- */

static void flight_release(struct cache_load *f)
{
    if (f->active || f->redis_out || f->load_out || f->pins) return;
    if (f->c) DL_DELETE2(f->c->all_flights, f, aprev, anext);
    free(f);
}

static void flight_dequeue(struct cache *c, struct cache_load *f)
{
    dequeue(f->phase == PH_REDIS ? &c->redis_q : &c->load_q, &f->pd);
}

/* Answers every waiter of an active flight and deactivates it (it leaves c->flights, so a fetch
 * made from a waiter's callback starts a new flight). val must not point into an entry: a
 * callback may overwrite it. The caller releases f afterwards. */
static void answer(struct cache *c, struct cache_load *f, int err, const void *val, size_t len)
{
    if (!f->active) return;
    struct waiter *w = f->waiters;
    f->waiters = f->wtail = NULL;
    HASH_DEL(c->flights, f);
    f->active = false;
    flight_dequeue(c, f);
    f->pins++; /* callbacks may not free f under us */
    while (w) {
        struct waiter *next = w->next;
        if (w->cb) {
            c->in_cb++;
            w->cb(w->ud, err, val, len);
            c->in_cb--;
        }
        free(w);
        w = next;
    }
    f->pins--;
}

static struct cache_load *flight_find(struct cache *c, const char *key, size_t klen)
{
    struct cache_load *f;
    HASH_FIND(hh, c->flights, key, klen, f);
    return f;
}

static struct cache_load *flight_new(struct cache *c, const char *key, size_t klen)
{
    struct cache_load *f = calloc(1, sizeof *f + klen + 1);
    if (!f) return NULL;
    memcpy(f->key, key, klen);
    f->c = c;
    f->pd.kind = PEND_FLIGHT;
    f->start_seq = ++c->seq;
    f->active = true;
    HASH_ADD_KEYPTR(hh, c->flights, f->key, klen, f);
    if (!f->hh.tbl) {
        free(f);
        return NULL;
    }
    DL_APPEND2(c->all_flights, f, aprev, anext);
    return f;
}

static int add_waiter(struct cache_load *f, cache_done_fn cb, void *ud)
{
    struct waiter *w = malloc(sizeof *w);
    if (!w) return -ENOMEM;
    *w = (struct waiter){NULL, cb, ud};
    if (f->wtail)
        f->wtail->next = w;
    else
        f->waiters = w;
    f->wtail = w;
    return 0;
}

static void start_load(struct cache *c, struct cache_load *f)
{
    f->phase = PH_LOAD;
    if (!f->loader) {
        answer(c, f, -ENOENT, NULL, 0);
        return;
    }
    f->load_out = true;
    c->st.loads++;
    enqueue(c, &c->load_q, &f->pd, c->o.load_timeout_ms);
    f->pins++;
    c->in_cb++;
    f->loader(f->loader_ud, f->key, f);
    c->in_cb--;
    f->pins--;
}

static void on_redis_reply(void *ud, int err, const char *val, size_t len, int64_t pttl)
{
    struct cache_load *f = ud;
    struct cache *c = f->c;
    f->redis_out = false;
    /* detached, answered by a put, or timed out and already loading: nothing to do */
    if (!c || !f->active || f->phase != PH_REDIS) {
        flight_release(f);
        return;
    }
    flight_dequeue(c, f);
    f->pins++;
    if (err) {
        c->st.redis_errors++;
        if (err == -ECANCELED) /* rds_free: the daemon is stopping */
            answer(c, f, -ECANCELED, NULL, 0);
        else
            start_load(c, f);
    } else if (val && (pttl > 0 || pttl == -1)) {
        /* The remaining TTL tells the value's age, assuming its writer used our TTL; a key
         * without expiry (set by hand) counts as just written. */
        uint64_t age = pttl == -1 || (uint64_t)pttl >= c->o.ttl_ms ? 0 : c->o.ttl_ms - (uint64_t)pttl;
        c->st.redis_hits++;
        size_t klen = strlen(f->key);
        if (may_store(c, f->key, klen, f->start_seq))
            (void)store_local(c, f->key, klen, val, len, now_ms(c) - (int64_t)age, f->start_seq);
        answer(c, f, 0, val, len);
    } else {
        c->st.redis_misses++;
        start_load(c, f);
    }
    f->pins--;
    flight_release(f);
}

/* Ask Redis first when it is there and not backing off, else load at once. */
static void start_fetch(struct cache *c, struct cache_load *f)
{
    if (c->rds && uv_now(c->loop) >= c->redis_skip_until) {
        char buf[CACHE_PREFIX_MAX + CACHE_KEY_MAX + 1];
        int rc = rds_get_pttl(c->rds, redis_key(c, f->key, strlen(f->key), buf), on_redis_reply, f);
        if (rc == 0) {
            f->phase = PH_REDIS;
            f->redis_out = true;
            enqueue(c, &c->redis_q, &f->pd, c->o.redis_timeout_ms);
            return;
        }
        c->st.redis_errors++; /* down, or too busy: do not wait for it */
    }
    start_load(c, f);
}

static void batch_release(struct cache_batch *b)
{
    if (!b->finished || b->pins) return;
    free(b->fl);
    free(b);
}

static void batch_timeout(struct cache *c, struct cache_batch *b)
{
    c->st.load_errors++;
    b->pins++;
    for (size_t i = 0; i < b->nfl; i++) {
        struct cache_load *f = b->fl[i];
        if (f && f->active && f->batch == b) answer(c, f, -ETIMEDOUT, NULL, 0);
    }
    if (!b->answered) {
        b->answered = true;
        if (b->done) {
            c->in_cb++;
            b->done(b->ud, -ETIMEDOUT, b->stored);
            c->in_cb--;
        }
    }
    b->pins--;
}

static void on_timer(uv_timer_t *t)
{
    struct cache *c = t->data;
    uint64_t now = uv_now(c->loop);
    /* callbacks below may add and remove queue items: always re-read the heads */
    while (c->redis_q && c->redis_q->deadline <= now) {
        struct cache_load *f = FLIGHT_OF(c->redis_q);
        dequeue(&c->redis_q, &f->pd);
        c->st.redis_errors++;
        c->st.redis_timeouts++;
        c->redis_skip_until = now + c->o.redis_backoff_ms;
        f->pins++;
        start_load(c, f); /* the GET stays out (redis_out): its late reply only releases f */
        f->pins--;
        flight_release(f);
    }
    while (c->load_q && c->load_q->deadline <= now) {
        struct pend *p = c->load_q;
        dequeue(&c->load_q, p);
        if (p->kind == PEND_BATCH) {
            batch_timeout(c, BATCH_OF(p));
            continue;
        }
        struct cache_load *f = FLIGHT_OF(p);
        c->st.load_errors++;
        answer(c, f, -ETIMEDOUT, NULL, 0); /* load_out stays: a late result is still stored */
        flight_release(f);
    }
    arm(c);
}

/* ---- public ---------------------------------------------------------------------------------- */

struct cache *cache_new(uv_loop_t *loop, struct rds *redis, const struct cache_opts *opts)
{
    if (!loop || !opts || !opts->name || !*opts->name || strlen(opts->name) >= sizeof ((struct cache *)0)->name ||
        !opts->ttl_ms || !opts->max_entries ||
        (opts->key_prefix && strlen(opts->key_prefix) > CACHE_PREFIX_MAX)) {
        errno = EINVAL;
        return NULL;
    }
    struct cache *c = calloc(1, sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    c->loop = loop;
    c->rds = redis;
    c->o = *opts;
    snprintf(c->name, sizeof c->name, "%s", opts->name);
    c->o.name = c->name;
    if (opts->key_prefix)
        snprintf(c->prefix, sizeof c->prefix, "%s", opts->key_prefix);
    else if (snprintf(c->prefix, sizeof c->prefix, "ct:%s:", opts->name) >= (int)sizeof c->prefix) {
        free(c);
        errno = EINVAL;
        return NULL;
    }
    c->o.key_prefix = c->prefix;
    c->prefix_len = strlen(c->prefix);
    if (!c->o.redis_timeout_ms) c->o.redis_timeout_ms = 20;
    if (!c->o.redis_backoff_ms) c->o.redis_backoff_ms = 1000;
    if (!c->o.load_timeout_ms) c->o.load_timeout_ms = 10000;
    uv_timer_init(loop, &c->timer); /* cannot fail on Linux */
    c->timer.data = c;
    return c;
}

static void on_close(uv_handle_t *h)
{
    free(h->data);
}

struct cache *cache_free(struct cache *c)
{
    if (!c) return NULL;
    ct_assert(c->in_cb == 0); /* would free the cache under its own caller */
    c->closing = true;
    uv_timer_stop(&c->timer);

    struct cache_load *f, *ftmp;
    HASH_ITER(hh, c->flights, f, ftmp) {
        f->pins++;
        answer(c, f, -ECANCELED, NULL, 0);
        f->pins--;
    }
    struct cache_batch *b, *btmp;
    DL_FOREACH_SAFE(c->batches, b, btmp) {
        DL_DELETE(c->batches, b);
        dequeue(&c->load_q, &b->pd);
        b->c = NULL;
        if (!b->answered) {
            b->answered = true;
            if (b->done) {
                c->in_cb++;
                b->done(b->ud, -ECANCELED, b->stored);
                c->in_cb--;
            }
        }
    }
    /* whatever is still referred to by a Redis GET or a loader: detach, free the rest */
    DL_FOREACH_SAFE2(c->all_flights, f, ftmp, anext) {
        DL_DELETE2(c->all_flights, f, aprev, anext);
        f->c = NULL;
        flight_release(f);
    }
    struct entry *e, *etmp;
    HASH_ITER(hh, c->entries, e, etmp) entry_remove(c, e);
    uv_close((uv_handle_t *)&c->timer, on_close);
    return NULL;
}

const char *cache_name(const struct cache *c)
{
    return c ? c->name : NULL;
}

enum cache_result cache_get(struct cache *c, const char *key, const void **val, size_t *len,
                            uint64_t *age_ms)
{
    size_t klen;
    if (!c || check_key(key, &klen)) return CACHE_MISS;
    struct entry *e = entry_find(c, key, klen);
    if (!e) {
        c->st.misses++;
        return CACHE_MISS;
    }
    entry_touch(c, e);
    int64_t age = now_ms(c) - e->stored_ms;
    if (age < 0) age = 0;
    if (val) *val = e->val;
    if (len) *len = e->len;
    if (age_ms) *age_ms = (uint64_t)age;
    if ((uint64_t)age < c->o.ttl_ms) {
        c->st.hits++;
        return CACHE_HIT;
    }
    c->st.stale_hits++;
    return CACHE_STALE;
}

int cache_put(struct cache *c, const char *key, const void *val, size_t len)
{
    size_t klen;
    if (!c || check_key(key, &klen) || check_value(val, len)) return -EINVAL;
    if (c->closing) return -ECANCELED;
    int rc = store_local(c, key, klen, val, len, now_ms(c), ++c->seq);
    if (rc) return rc;
    redis_set(c, key, klen, val, len);
    struct cache_load *f = flight_find(c, key, klen);
    if (f) { /* newer wins: the load in flight may predate this value */
        answer(c, f, 0, val, len);
        flight_release(f);
    }
    return 0;
}

int cache_del(struct cache *c, const char *key)
{
    size_t klen;
    if (!c || check_key(key, &klen)) return -EINVAL;
    struct entry *e = entry_find(c, key, klen);
    if (e) entry_remove(c, e);
    c->del_seq = ++c->seq;
    if (c->rds) {
        char buf[CACHE_PREFIX_MAX + CACHE_KEY_MAX + 1];
        if (rds_del(c->rds, redis_key(c, key, klen, buf)) != 0) c->st.redis_errors++;
    }
    return 0;
}

void cache_load_done(struct cache_load *f, int err, const void *val, size_t len)
{
    ct_assert(f && f->load_out && !f->batch); /* exactly one cache_load_done per load */
    f->load_out = false;
    struct cache *c = f->c;
    if (!c) { /* cache_free came first */
        flight_release(f);
        return;
    }
    if (f->phase == PH_LOAD) flight_dequeue(c, f);
    if (!err && check_value(val, len)) err = -EINVAL;
    f->pins++;
    if (err) {
        if (f->active) c->st.load_errors++; /* a timed-out load was counted already */
    } else {
        size_t klen = strlen(f->key);
        if (may_store(c, f->key, klen, f->start_seq) &&
            store_local(c, f->key, klen, val, len, now_ms(c), f->start_seq) == 0)
            redis_set(c, f->key, klen, val, len);
    }
    answer(c, f, err, val, len);
    f->pins--;
    flight_release(f);
}

int cache_fetch(struct cache *c, const char *key, cache_loader_fn loader, void *loader_ud,
                cache_done_fn cb, void *ud)
{
    size_t klen;
    if (!c || check_key(key, &klen)) return -EINVAL;
    if (c->closing) return -ECANCELED;
    struct entry *e = entry_find(c, key, klen);
    if (e && now_ms(c) - e->stored_ms < (int64_t)c->o.ttl_ms) {
        c->st.hits++;
        entry_touch(c, e);
        if (cb) {
            c->in_cb++;
            cb(ud, 0, e->val, e->len);
            c->in_cb--;
        }
        return 1;
    }
    c->st.misses++;

    struct cache_load *f = flight_find(c, key, klen);
    if (f) {
        c->st.coalesced++;
        return add_waiter(f, cb, ud);
    }
    f = flight_new(c, key, klen);
    if (!f) return -ENOMEM;
    if (add_waiter(f, cb, ud) != 0) {
        HASH_DEL(c->flights, f);
        f->active = false;
        flight_release(f);
        return -ENOMEM;
    }
    f->loader = loader;
    f->loader_ud = loader_ud;
    f->pins++;
    start_fetch(c, f);
    int done = !f->active; /* answered already: the loader completed synchronously */
    f->pins--;
    flight_release(f);
    return done;
}

int cache_batch_put(struct cache_batch *b, const char *key, const void *val, size_t len)
{
    size_t klen;
    if (!b || check_key(key, &klen) || check_value(val, len)) return -EINVAL;
    ct_assert(!b->finished);
    struct cache *c = b->c;
    if (!c) return -ECANCELED;
    bool stored = false;
    if (may_store(c, key, klen, b->start_seq) &&
        store_local(c, key, klen, val, len, now_ms(c), b->start_seq) == 0) {
        stored = true;
        b->stored++;
        redis_set(c, key, klen, val, len);
    }
    struct cache_load *f = flight_find(c, key, klen);
    /* A stored value is the newest there is: it answers whoever waits for the key. */
    if (f && (stored || f->batch == b)) {
        f->pins++;
        answer(c, f, 0, val, len);
        f->pins--;
        flight_release(f);
    }
    return stored ? 0 : 1;
}

void cache_batch_done(struct cache_batch *b, int err)
{
    ct_assert(b && !b->finished); /* exactly one cache_batch_done per batch */
    b->finished = true;
    struct cache *c = b->c;
    b->pins++;
    if (c) {
        dequeue(&c->load_q, &b->pd);
        DL_DELETE(c->batches, b);
        if (err && !b->answered) c->st.load_errors++;
    }
    for (size_t i = 0; i < b->nfl; i++) {
        struct cache_load *f = b->fl[i];
        if (!f) continue;
        f->load_out = false;
        if (c && f->active && f->batch == b) answer(c, f, err ? err : -ENOENT, NULL, 0);
        flight_release(f);
        b->fl[i] = NULL;
    }
    if (c && !b->answered) {
        b->answered = true;
        if (b->done) {
            c->in_cb++;
            b->done(b->ud, err, b->stored);
            c->in_cb--;
        }
    }
    b->pins--;
    batch_release(b);
}

int cache_warm(struct cache *c, const char *const *keys, size_t n,
               cache_batch_loader_fn batch_loader, void *loader_ud, cache_warm_fn done, void *ud)
{
    if (!c || !batch_loader || (n && !keys)) return -EINVAL;
    if (c->closing) return -ECANCELED;
    size_t klen;
    for (size_t i = 0; i < n; i++)
        if (check_key(keys[i], &klen)) return -EINVAL;
    struct cache_batch *b = calloc(1, sizeof *b);
    if (!b) return -ENOMEM;
    if (n && !(b->fl = calloc(n, sizeof *b->fl))) {
        free(b);
        return -ENOMEM;
    }
    b->c = c;
    b->pd.kind = PEND_BATCH;
    b->start_seq = ++c->seq;
    b->done = done;
    b->ud = ud;
    for (size_t i = 0; i < n; i++) {
        check_key(keys[i], &klen);
        if (flight_find(c, keys[i], klen)) continue; /* someone loads it already */
        struct cache_load *f = flight_new(c, keys[i], klen);
        if (!f) {
            b->nfl = i;
            b->finished = true;
            b->answered = true;
            for (size_t j = 0; j < i; j++) {
                if (!b->fl[j]) continue;
                HASH_DEL(c->flights, b->fl[j]);
                b->fl[j]->active = false;
                flight_release(b->fl[j]);
            }
            batch_release(b);
            return -ENOMEM;
        }
        f->batch = b;
        f->phase = PH_LOAD;
        f->load_out = true;
        b->fl[i] = f;
    }
    b->nfl = n;
    DL_APPEND(c->batches, b);
    c->st.loads++;
    enqueue(c, &c->load_q, &b->pd, c->o.load_timeout_ms);
    b->pins++;
    c->in_cb++;
    batch_loader(loader_ud, keys, n, b);
    c->in_cb--;
    b->pins--;
    batch_release(b);
    return 0;
}

void cache_get_stats(const struct cache *c, struct cache_stats *out)
{
    if (!c) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = c->st;
    out->entries = HASH_COUNT(c->entries);
    out->bytes = c->bytes;
    if (c->entries)
        out->bytes += sizeof(UT_hash_table) +
                      (uint64_t)c->entries->hh.tbl->num_buckets * sizeof(UT_hash_bucket);
}
