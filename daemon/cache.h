/* cache: a bounded in-process TTL cache (LRU eviction) with Redis as a shared second level.
 * One instance per kind of data (tickers, positions, balances, instruments); values are opaque
 * bytes the caller serialises (JSON, a decimal string, ...).
 *
 * - cache_get and cache_put are synchronous, local, and never wait for Redis: a put writes
 *   through to Redis fire-and-forget (SET <prefix><key> <value> PX <ttl_ms>), dropped and
 *   counted while Redis is away.
 * - cache_fetch is read-through and single-flight per key: a local miss (or stale entry) asks
 *   Redis for at most redis_timeout_ms, then calls the caller's loader (the exchange request)
 *   once per key however many fetches are waiting; every waiter gets the one result. Values read
 *   from Redis keep their age (from PTTL), so a value is never considered fresh for longer than
 *   ttl_ms after it was first written, whichever daemon wrote it.
 * - cache_warm hands many keys to one batch loader call (e.g. one positions request per
 *   account) and stores everything it returns; fetches of those keys meanwhile wait for it.
 * - Newer wins: a cache_put (e.g. a follower fill updating its position) made while a load of
 *   that key is in flight answers that load's waiters at once with the put value, and the load's
 *   result, which may predate the put, is not stored when it arrives.
 * - Redis down, slow or restarted: everything keeps working in-process. Reconnecting is
 *   redis_client's job. After a Redis GET times out, read-through skips Redis for
 *   redis_backoff_ms so a wedged server costs at most one timeout per backoff period.
 *
 * Single-threaded: every call from the loop thread. Callbacks may call any cache function
 * except cache_free. */
#ifndef CT_CACHE_H
#define CT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct cache;
struct cache_load;  /* one loader call in progress (one key) */
struct cache_batch; /* one batch loader call in progress (cache_warm) */
struct rds;

#define CACHE_KEY_MAX 200         /* key bytes, without the prefix */
#define CACHE_PREFIX_MAX 64       /* Redis key prefix bytes */
#define CACHE_VALUE_MAX (16u << 20) /* value bytes */

struct cache_opts {
    const char *name;          /* required, e.g. "tickers": metrics label, default prefix */
    uint64_t ttl_ms;           /* required, > 0: local freshness and Redis PX */
    size_t max_entries;        /* required, > 0: beyond it the least recently used goes */
    unsigned redis_timeout_ms; /* read-through GET budget before the loader runs; 0 = 20 */
    unsigned redis_backoff_ms; /* after a GET timeout, skip Redis reads this long; 0 = 1000 */
    unsigned load_timeout_ms;  /* waiters give up on a loader after this (-ETIMEDOUT); a result
                                  arriving later is still stored; 0 = 10000 */
    const char *key_prefix;    /* Redis key prefix; NULL = "ct:<name>:" */
    /* Clock for entry ages (ms, monotonic); NULL = uv_now(loop). Timeouts always use the
     * loop's timers. Tests inject their own. */
    uint64_t (*now_ms)(void *clock_ud);
    void *clock_ud;
};

struct cache_stats {
    uint64_t hits;           /* cache_get HIT, cache_fetch served from a fresh local entry */
    uint64_t stale_hits;     /* cache_get STALE */
    uint64_t misses;         /* cache_get MISS, cache_fetch without a fresh local entry */
    uint64_t coalesced;      /* cache_fetch calls that joined a fetch already in flight */
    uint64_t redis_hits;     /* read-through GETs that found a live value */
    uint64_t redis_misses;   /* read-through GETs that found nothing (or an expired value) */
    uint64_t redis_errors;   /* GET/SET/DEL refused (Redis down, too many outstanding), error
                                replies and lost connections on GETs, GET timeouts. (Error
                                replies to SET/DEL count in redis_client's stats only.) */
    uint64_t redis_timeouts; /* of redis_errors: GETs not answered within redis_timeout_ms */
    uint64_t evictions;      /* entries dropped to stay within max_entries */
    uint64_t loads;          /* loader calls (a batch counts once) */
    uint64_t load_errors;    /* loader calls that failed or timed out */
    uint64_t entries;        /* entries now (fresh and stale) */
    uint64_t bytes;          /* memory held now: entries, keys, values, hash buckets (not
                                malloc's own overhead) */
};

enum cache_result { CACHE_MISS = 0, CACHE_HIT = 1, CACHE_STALE = 2 };

/* NULL with errno EINVAL (bad opts: no name, ttl_ms or max_entries 0, prefix too long) or
 * ENOMEM. redis may be NULL (in-process only); it must outlive the cache: free caches first,
 * then the rds. */
struct cache *cache_new(uv_loop_t *loop, struct rds *redis, const struct cache_opts *opts);

/* Waiters of fetches and warms in progress are called inside cache_free with -ECANCELED.
 * Loaders and Redis GETs still out are detached: their completions (cache_load_done,
 * cache_batch_done, the Redis reply or rds_free's cancel) then only free memory. The loop must
 * run afterwards (one timer handle closes) before uv_loop_close. Not from a cache callback.
 * Takes NULL; returns NULL. */
struct cache *cache_free(struct cache *c);

const char *cache_name(const struct cache *c);

/* Local lookup, never touches Redis. HIT: age < ttl_ms; STALE: present but expired (callers
 * may use it knowing its age); MISS. HIT and STALE move the entry to most recently used. Out
 * pointers may be NULL. *val is NUL-terminated (len excludes it) and stays valid until the
 * next cache_put/cache_fetch/cache_warm/cache_del on this cache or the return to the loop. */
enum cache_result cache_get(struct cache *c, const char *key, const void **val, size_t *len,
                            uint64_t *age_ms);

/* Stores locally at once (age 0; may evict the least recently used entry) and writes Redis
 * asynchronously. Answers the waiters of a load of this key in flight (see "newer wins").
 * 0, -EINVAL (NULL/empty/too long key, value too long) or -ENOMEM. Redis trouble is not an
 * error here (counted in redis_errors). */
int cache_put(struct cache *c, const char *key, const void *val, size_t len);

/* Drops the local entry and the Redis key (DEL, fire-and-forget). A load in flight for any key
 * of this cache still answers its waiters but its result is not stored (it may predate
 * whatever made the caller invalidate). 0 or -EINVAL. */
int cache_del(struct cache *c, const char *key);

/* err 0: val/len is the value (NUL-terminated; valid during the call only). err < 0: the
 * loader's error, -ETIMEDOUT (load_timeout_ms), -ENOENT (no loader and Redis had nothing, or a
 * batch did not return this key), -ECANCELED (cache_free). */
typedef void (*cache_done_fn)(void *ud, int err, const void *val, size_t len);

/* The caller's loader: start fetching key (from the exchange) and finish with exactly one
 * cache_load_done(ld, ...), from inside the loader or later from the loop, even after
 * cache_free (then it only frees ld). key is valid during the call only. */
typedef void (*cache_loader_fn)(void *loader_ud, const char *key, struct cache_load *ld);

/* Ends a load: err 0 with the value (stored locally and in Redis, then given to every waiter),
 * or err < 0 (given to every waiter, nothing stored). val is copied. */
void cache_load_done(struct cache_load *ld, int err, const void *val, size_t len);

/* Read-through, single-flight.
 *   Fresh local entry: cb runs inside cache_fetch; returns 1.
 *   Otherwise joins the fetch of key already in flight, or starts one: Redis GET (skipped when
 *   Redis is down or backing off) for at most redis_timeout_ms, then loader(loader_ud, key, ld)
 *   on a Redis miss/error/timeout. Returns 0, and cb runs later from the loop; or returns 1 if
 *   the loader completed synchronously and cb has already run.
 * loader may be NULL (Redis only: a Redis miss gives -ENOENT). When joining a fetch in flight,
 * this call's loader is not used. cb may be NULL (refresh only). Returns -EINVAL or -ENOMEM
 * (cb not called). */
int cache_fetch(struct cache *c, const char *key, cache_loader_fn loader, void *loader_ud,
                cache_done_fn cb, void *ud);

/* The caller's batch loader: fetch keys[0..n) (valid during the call only) with one request,
 * report each value with cache_batch_put (keys outside the list are welcome too: a positions
 * request returns every symbol), then exactly one cache_batch_done, from inside the loader or
 * later, even after cache_free. */
typedef void (*cache_batch_loader_fn)(void *loader_ud, const char *const *keys, size_t n,
                                      struct cache_batch *b);
/* 0 stored (and given to whoever waits for key), 1 not stored because the key was written or
 * something deleted since the batch started (still given to this batch's waiters), -EINVAL,
 * -ECANCELED (cache_free came first). val is copied. */
int cache_batch_put(struct cache_batch *b, const char *key, const void *val, size_t len);
/* err 0: requested keys without a cache_batch_put answer their waiters -ENOENT; err < 0: they
 * answer err. */
void cache_batch_done(struct cache_batch *b, int err);

/* stored = values stored by this batch. Called once, from cache_batch_done (or cache_free with
 * -ECANCELED, or -ETIMEDOUT after load_timeout_ms: later puts are still stored). */
typedef void (*cache_warm_fn)(void *ud, int err, size_t stored);

/* Calls batch_loader once for keys[0..n) (n may be 0: "whatever you find"). Fetches of those
 * keys made meanwhile wait for the batch instead of loading on their own. done may be NULL.
 * 0 (done runs later or has already run, if the loader completed synchronously), -EINVAL or
 * -ENOMEM (nothing called). */
int cache_warm(struct cache *c, const char *const *keys, size_t n,
               cache_batch_loader_fn batch_loader, void *loader_ud, cache_warm_fn done, void *ud);

void cache_get_stats(const struct cache *c, struct cache_stats *out);

#endif
