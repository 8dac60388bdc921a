/* Unit tests for daemon/cache, in-process only (no Redis): TTL with an injected clock, LRU
 * eviction order, stats, read-through with single flight against fake loaders that complete
 * later on a real libuv loop, "newer wins", batches, timeouts, cache_free with work pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cache.h"

/* ---- fixture: loop + fake clock ------------------------------------------------------------ */

static uint64_t fake_now = 1000000;
static uint64_t clock_fn(void *ud)
{
    (void)ud;
    return fake_now;
}

struct fixture {
    uv_loop_t loop;
    uv_timer_t guard;
    struct cache *c;
};

static void on_guard(uv_timer_t *t) { (void)t; }

typedef bool (*pred_fn)(void *arg);

/* Run the loop until pred holds or timeout_ms (loop time) passes. */
static bool run_until(struct fixture *fx, pred_fn pred, void *arg, unsigned timeout_ms)
{
    uv_update_time(&fx->loop);
    uint64_t end = uv_now(&fx->loop) + timeout_ms;
    uv_timer_start(&fx->guard, on_guard, 2, 2);
    bool ok;
    while (!(ok = pred(arg)) && uv_now(&fx->loop) < end) uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    return ok;
}

static struct cache_opts opts(uint64_t ttl, size_t max)
{
    return (struct cache_opts){
        .name = "test", .ttl_ms = ttl, .max_entries = max, .now_ms = clock_fn};
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (!fx || uv_loop_init(&fx->loop) != 0 || uv_timer_init(&fx->loop, &fx->guard) != 0)
        return -1;
    fake_now = 1000000;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    fx->c = cache_free(fx->c);
    uv_close((uv_handle_t *)&fx->guard, NULL);
    while (uv_run(&fx->loop, UV_RUN_DEFAULT) != 0) {
    }
    int rc = uv_loop_close(&fx->loop);
    free(fx);
    return rc == 0 ? 0 : -1; /* the cache's timer must be closed */
}

static struct cache *mk(struct fixture *fx, struct cache_opts o)
{
    fx->c = cache_new(&fx->loop, NULL, &o);
    assert_non_null(fx->c);
    return fx->c;
}

static void put_s(struct cache *c, const char *k, const char *v)
{
    assert_int_equal(cache_put(c, k, v, strlen(v)), 0);
}

/* cache_get expecting result r and (for HIT/STALE) value v. */
static void expect_get(struct cache *c, const char *k, enum cache_result r, const char *v)
{
    const void *val = NULL;
    size_t len = 99;
    uint64_t age = 0;
    assert_int_equal(cache_get(c, k, &val, &len, &age), r);
    if (r == CACHE_MISS) return;
    assert_int_equal(len, strlen(v));
    assert_memory_equal(val, v, len);
    assert_int_equal(((const char *)val)[len], '\0');
}

/* ---- waiters and fake loaders -------------------------------------------------------------- */

struct result {
    int calls;
    int err;
    char val[64];
    size_t len;
};

static void on_done(void *ud, int err, const void *val, size_t len)
{
    struct result *r = ud;
    r->calls++;
    r->err = err;
    r->len = len;
    if (val) {
        assert_true(len < sizeof r->val);
        memcpy(r->val, val, len);
        r->val[len] = '\0';
        assert_int_equal(((const char *)val)[len], '\0');
    } else {
        r->val[0] = '\0';
    }
}

static bool done_once(void *arg) { return ((struct result *)arg)->calls > 0; }

/* A loader that records its calls; with a loop it completes each load after `delay_ms` on the
 * loop with `value` (or `err`), otherwise the test completes it by hand through ld[]. */
struct fake_loader {
    uv_loop_t *loop;
    unsigned delay_ms;
    int err;
    const char *value;
    bool sync; /* complete inside the loader */
    int calls;
    char keys[8][32];
    struct cache_load *ld[8];
};

struct later {
    uv_timer_t t;
    struct cache_load *ld;
    int err;
    const char *value;
};

static void on_later_close(uv_handle_t *h) { free(h->data); }

static void on_later(uv_timer_t *t)
{
    struct later *l = t->data;
    cache_load_done(l->ld, l->err, l->value, l->value ? strlen(l->value) : 0);
    uv_close((uv_handle_t *)t, on_later_close);
}

static void fake_load(void *ud, const char *key, struct cache_load *ld)
{
    struct fake_loader *fl = ud;
    assert_true(fl->calls < 8);
    snprintf(fl->keys[fl->calls], sizeof fl->keys[0], "%s", key);
    fl->ld[fl->calls++] = ld;
    if (fl->sync) {
        cache_load_done(ld, fl->err, fl->value, fl->value ? strlen(fl->value) : 0);
    } else if (fl->loop) {
        struct later *l = calloc(1, sizeof *l);
        assert_non_null(l);
        l->ld = ld;
        l->err = fl->err;
        l->value = fl->value;
        l->t.data = l;
        uv_timer_init(fl->loop, &l->t);
        uv_timer_start(&l->t, on_later, fl->delay_ms, 0);
    }
}

static void must_not_load(void *ud, const char *key, struct cache_load *ld)
{
    (void)ud;
    (void)ld;
    fail_msg("loader called for %s", key);
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_new_bad_opts(void **state)
{
    struct fixture *fx = *state;
    struct cache_opts o = opts(1000, 10);
    o.name = NULL;
    errno = 0;
    assert_null(cache_new(&fx->loop, NULL, &o));
    assert_int_equal(errno, EINVAL);
    o = opts(0, 10);
    assert_null(cache_new(&fx->loop, NULL, &o));
    o = opts(1000, 0);
    assert_null(cache_new(&fx->loop, NULL, &o));
    o = opts(1000, 10);
    o.key_prefix = "0123456789012345678901234567890123456789012345678901234567890123456789";
    assert_null(cache_new(&fx->loop, NULL, &o));
    assert_null(cache_new(&fx->loop, NULL, NULL));
    assert_null(cache_free(NULL));
    o = opts(1000, 10);
    struct cache *c = mk(fx, o);
    assert_string_equal(cache_name(c), "test");
}

static void test_ttl_expiry(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(5000, 10));
    put_s(c, "binance-usdm:BTCUSDT", "43210.5");

    const void *val;
    size_t len;
    uint64_t age = 99;
    assert_int_equal(cache_get(c, "binance-usdm:BTCUSDT", &val, &len, &age), CACHE_HIT);
    assert_int_equal(age, 0);
    fake_now += 4999;
    assert_int_equal(cache_get(c, "binance-usdm:BTCUSDT", &val, &len, &age), CACHE_HIT);
    assert_int_equal(age, 4999);
    fake_now += 1;
    assert_int_equal(cache_get(c, "binance-usdm:BTCUSDT", &val, &len, &age), CACHE_STALE);
    assert_int_equal(age, 5000);
    assert_int_equal(len, 7);
    assert_memory_equal(val, "43210.5", 7);
    assert_int_equal(cache_get(c, "binance-usdm:ETHUSDT", NULL, NULL, NULL), CACHE_MISS);

    /* a put refreshes the age */
    put_s(c, "binance-usdm:BTCUSDT", "43211");
    expect_get(c, "binance-usdm:BTCUSDT", CACHE_HIT, "43211");

    /* a clock that steps back does not produce a negative age */
    fake_now -= 100;
    assert_int_equal(cache_get(c, "binance-usdm:BTCUSDT", NULL, NULL, &age), CACHE_HIT);
    assert_int_equal(age, 0);

    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.hits, 4);
    assert_int_equal(st.stale_hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.redis_errors, 0); /* no Redis configured: not an error */
}

static void test_lru_eviction(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(60000, 3));
    put_s(c, "a", "1");
    put_s(c, "b", "2");
    put_s(c, "c", "3");
    /* recency now a < b < c; reading a makes b the least recently used */
    expect_get(c, "a", CACHE_HIT, "1");
    put_s(c, "d", "4");
    expect_get(c, "b", CACHE_MISS, NULL);
    /* recency: c < a < d. Updating c (a put of an existing key) evicts nothing, makes it recent */
    put_s(c, "c", "33");
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.entries, 3);
    /* recency: a < d < c */
    put_s(c, "e", "5");
    expect_get(c, "a", CACHE_MISS, NULL);
    /* d < c < e; a stale entry is touched like a fresh one */
    fake_now += 60000;
    expect_get(c, "d", CACHE_STALE, "4");
    put_s(c, "f", "6");
    expect_get(c, "c", CACHE_MISS, NULL);
    expect_get(c, "d", CACHE_STALE, "4");
    expect_get(c, "e", CACHE_STALE, "5");
    expect_get(c, "f", CACHE_HIT, "6");
    cache_get_stats(c, &st);
    assert_int_equal(st.evictions, 3);
    assert_int_equal(st.entries, 3);

    /* a fetch hit also counts as use: d, e, f -> fetch d -> put g evicts e */
    fake_now -= 60000; /* everything fresh again for the fetch */
    struct result r = {0};
    assert_int_equal(cache_fetch(c, "d", must_not_load, NULL, on_done, &r), 1);
    put_s(c, "g", "7");
    expect_get(c, "e", CACHE_MISS, NULL);
    expect_get(c, "d", CACHE_HIT, "4");
}

static void test_values_and_bytes(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(60000, 100));
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.bytes, 0);

    /* binary-safe, exact length back, NUL-terminated */
    static const char bin[] = {'x', '\0', 'y', '\n', 'z'};
    assert_int_equal(cache_put(c, "bin", bin, sizeof bin), 0);
    const void *val;
    size_t len;
    assert_int_equal(cache_get(c, "bin", &val, &len, NULL), CACHE_HIT);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(val, bin, sizeof bin);
    assert_int_equal(((const char *)val)[len], '\0');

    /* empty value is a value */
    assert_int_equal(cache_put(c, "empty", NULL, 0), 0);
    assert_int_equal(cache_get(c, "empty", &val, &len, NULL), CACHE_HIT);
    assert_int_equal(len, 0);
    assert_int_equal(((const char *)val)[0], '\0');

    /* bytes follow the values held */
    cache_get_stats(c, &st);
    uint64_t b0 = st.bytes;
    assert_true(b0 > sizeof bin);
    char big[1000];
    memset(big, 'q', sizeof big);
    assert_int_equal(cache_put(c, "empty", big, sizeof big), 0);
    cache_get_stats(c, &st);
    assert_int_equal(st.bytes - b0, sizeof big); /* value buffer grew from 1 to 1001 bytes */
    /* a shorter value reuses the buffer */
    put_s(c, "empty", "short");
    expect_get(c, "empty", CACHE_HIT, "short");
    cache_get_stats(c, &st);
    assert_int_equal(st.bytes - b0, sizeof big);
    assert_int_equal(cache_del(c, "empty"), 0);
    assert_int_equal(cache_del(c, "bin"), 0);
    assert_int_equal(cache_del(c, "never"), 0);
    cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    expect_get(c, "bin", CACHE_MISS, NULL);

    /* a value taken from the cache may be put back, even where that evicts its source */
    struct cache_opts o1 = opts(60000, 1);
    struct cache *one = cache_new(&fx->loop, NULL, &o1);
    assert_non_null(one);
    put_s(one, "src", "value-from-src");
    assert_int_equal(cache_get(one, "src", &val, &len, NULL), CACHE_HIT);
    assert_int_equal(cache_put(one, "dst", val, len), 0); /* evicts "src" */
    expect_get(one, "dst", CACHE_HIT, "value-from-src");
    expect_get(one, "src", CACHE_MISS, NULL);
    assert_int_equal(cache_get(one, "dst", &val, &len, NULL), CACHE_HIT);
    assert_int_equal(cache_put(one, "dst", (const char *)val + 6, len - 6), 0); /* overlapping */
    expect_get(one, "dst", CACHE_HIT, "from-src");
    cache_free(one);

    /* bad input */
    char longkey[CACHE_KEY_MAX + 2];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(cache_put(c, "", "v", 1), -EINVAL);
    assert_int_equal(cache_put(c, NULL, "v", 1), -EINVAL);
    assert_int_equal(cache_put(c, longkey, "v", 1), -EINVAL);
    assert_int_equal(cache_put(c, "k", NULL, 1), -EINVAL);
    assert_int_equal(cache_put(NULL, "k", "v", 1), -EINVAL);
    assert_int_equal(cache_get(c, longkey, NULL, NULL, NULL), CACHE_MISS);
    assert_int_equal(cache_fetch(c, "", must_not_load, NULL, on_done, NULL), -EINVAL);
    longkey[CACHE_KEY_MAX] = '\0'; /* exactly the maximum is fine */
    assert_int_equal(cache_put(c, longkey, "v", 1), 0);
    expect_get(c, longkey, CACHE_HIT, "v");
}

static void test_fetch_hit_is_synchronous(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(1000, 10));
    put_s(c, "k", "v1");
    struct result r = {0};
    assert_int_equal(cache_fetch(c, "k", must_not_load, NULL, on_done, &r), 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    assert_string_equal(r.val, "v1");
    /* NULL cb: a refresh that has nothing to do */
    assert_int_equal(cache_fetch(c, "k", must_not_load, NULL, NULL, NULL), 1);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 0);
    assert_int_equal(st.loads, 0);
}

static void test_single_flight(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(10000, 10));
    struct fake_loader fl = {.loop = &fx->loop, .delay_ms = 5, .value = "{\"qty\":\"1.5\"}"};
    struct fake_loader fl2 = {.loop = &fx->loop, .delay_ms = 1, .value = "other"};
    struct result r[10] = {{0}}, r2 = {0};
    for (int i = 0; i < 10; i++)
        assert_int_equal(cache_fetch(c, "acct1:BTCUSDT", fake_load, &fl, on_done, &r[i]), 0);
    /* a different key is its own flight */
    assert_int_equal(cache_fetch(c, "acct1:ETHUSDT", fake_load, &fl2, on_done, &r2), 0);
    assert_int_equal(fl.calls, 1);
    assert_string_equal(fl.keys[0], "acct1:BTCUSDT");
    assert_int_equal(fl2.calls, 1);
    for (int i = 0; i < 10; i++) assert_int_equal(r[i].calls, 0); /* not before the loader */

    assert_true(run_until(fx, done_once, &r[9], 2000));
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, 0);
        assert_string_equal(r[i].val, "{\"qty\":\"1.5\"}");
    }
    assert_true(run_until(fx, done_once, &r2, 2000));
    assert_string_equal(r2.val, "other");
    assert_int_equal(fl.calls, 1);

    expect_get(c, "acct1:BTCUSDT", CACHE_HIT, "{\"qty\":\"1.5\"}");
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.loads, 2);
    assert_int_equal(st.misses, 11);
    assert_int_equal(st.coalesced, 9);
    assert_int_equal(st.load_errors, 0);
    assert_int_equal(st.entries, 2);
}

/* A waiter's callback sees the value stored already, and may fetch again. */
struct refetch {
    struct cache *c;
    struct result inner;
    int inner_rc;
    enum cache_result seen;
};
static void on_done_refetch(void *ud, int err, const void *val, size_t len)
{
    (void)val;
    (void)len;
    struct refetch *rf = ud;
    assert_int_equal(err, 0);
    rf->seen = cache_get(rf->c, "k", NULL, NULL, NULL);
    rf->inner_rc = cache_fetch(rf->c, "k", must_not_load, NULL, on_done, &rf->inner);
}

static void test_callback_reenters(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(10000, 10));
    struct fake_loader fl = {.loop = &fx->loop, .delay_ms = 1, .value = "v"};
    struct refetch rf = {.c = c, .inner_rc = -1};
    assert_int_equal(cache_fetch(c, "k", fake_load, &fl, on_done_refetch, &rf), 0);
    assert_true(run_until(fx, done_once, &rf.inner, 2000));
    assert_int_equal(rf.seen, CACHE_HIT);
    assert_int_equal(rf.inner_rc, 1);
    assert_string_equal(rf.inner.val, "v");
}

static void test_loader_error_not_cached(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(10000, 10));
    struct fake_loader fl = {.loop = &fx->loop, .delay_ms = 1, .err = -EIO};
    struct result r[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(cache_fetch(c, "k", fake_load, &fl, on_done, &r[i]), 0);
    assert_true(run_until(fx, done_once, &r[2], 2000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, -EIO);
    }
    expect_get(c, "k", CACHE_MISS, NULL);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.load_errors, 1);
    assert_int_equal(st.entries, 0);

    /* the next fetch tries again */
    fl.err = 0;
    fl.value = "ok";
    struct result r2 = {0};
    assert_int_equal(cache_fetch(c, "k", fake_load, &fl, on_done, &r2), 0);
    assert_int_equal(fl.calls, 2);
    assert_true(run_until(fx, done_once, &r2, 2000));
    assert_string_equal(r2.val, "ok");
}

static void test_loader_synchronous(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(10000, 10));
    struct fake_loader fl = {.sync = true, .value = "now"};
    struct result r = {0};
    assert_int_equal(cache_fetch(c, "k", fake_load, &fl, on_done, &r), 1);
    assert_int_equal(r.calls, 1);
    assert_string_equal(r.val, "now");
    expect_get(c, "k", CACHE_HIT, "now");

    /* no loader and no Redis: -ENOENT at once */
    struct result r2 = {0};
    assert_int_equal(cache_fetch(c, "nothing", NULL, NULL, on_done, &r2), 1);
    assert_int_equal(r2.err, -ENOENT);
}

static void test_stale_refresh(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(5000, 10));
    put_s(c, "t", "100");
    fake_now += 6000;
    struct fake_loader fl = {.loop = &fx->loop, .delay_ms = 1, .value = "101"};
    struct result r = {0};
    assert_int_equal(cache_fetch(c, "t", fake_load, &fl, on_done, &r), 0);
    assert_int_equal(fl.calls, 1);
    /* while the refresh runs, the old value is still there, flagged stale */
    expect_get(c, "t", CACHE_STALE, "100");
    assert_true(run_until(fx, done_once, &r, 2000));
    assert_string_equal(r.val, "101");
    expect_get(c, "t", CACHE_HIT, "101");
}

/* A put made while a load is in flight (a fill updating a position) answers the waiters with
 * the put value; the load's result, possibly older, is not stored. */
static void test_put_supersedes_load(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(10000, 10));
    struct fake_loader fl = {0}; /* completed by hand */
    struct result r = {0}, r2 = {0};
    assert_int_equal(cache_fetch(c, "pos", fake_load, &fl, on_done, &r), 0);
    assert_int_equal(cache_fetch(c, "pos", fake_load, &fl, on_done, &r2), 0);
    put_s(c, "pos", "2.0");
    assert_int_equal(r.calls, 1);
    assert_int_equal(r2.calls, 1);
    assert_string_equal(r.val, "2.0");
    /* a new fetch is served locally now, not by joining the old load */
    struct result r3 = {0};
    assert_int_equal(cache_fetch(c, "pos", must_not_load, NULL, on_done, &r3), 1);
    cache_load_done(fl.ld[0], 0, "1.0", 3);
    assert_int_equal(r.calls, 1);
    expect_get(c, "pos", CACHE_HIT, "2.0");

    /* cache_del during a load: the waiter still gets the value, it is not stored */
    fake_now += 20000;
    struct result r4 = {0};
    assert_int_equal(cache_fetch(c, "pos", fake_load, &fl, on_done, &r4), 0);
    assert_int_equal(cache_del(c, "pos"), 0);
    cache_load_done(fl.ld[1], 0, "3.0", 3);
    assert_int_equal(r4.calls, 1);
    assert_string_equal(r4.val, "3.0");
    expect_get(c, "pos", CACHE_MISS, NULL);
}

static void test_load_timeout(void **state)
{
    struct fixture *fx = *state;
    struct cache_opts o = opts(10000, 10);
    o.load_timeout_ms = 30;
    struct cache *c = mk(fx, o);
    struct fake_loader fl = {0};
    struct result r = {0};
    assert_int_equal(cache_fetch(c, "slow", fake_load, &fl, on_done, &r), 0);
    assert_true(run_until(fx, done_once, &r, 5000));
    assert_int_equal(r.err, -ETIMEDOUT);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.load_errors, 1);

    /* the key is free again: a new fetch starts a new load */
    struct result r2 = {0};
    assert_int_equal(cache_fetch(c, "slow", fake_load, &fl, on_done, &r2), 0);
    assert_int_equal(fl.calls, 2);
    /* the timed-out first load still stores its late value (nothing newer was written); the
     * second flight is separate: r2 waits for its own load */
    cache_load_done(fl.ld[0], 0, "late", 4);
    expect_get(c, "slow", CACHE_HIT, "late");
    assert_int_equal(r.calls, 1);
    assert_int_equal(r2.calls, 0);
    cache_load_done(fl.ld[1], 0, "later", 5);
    assert_int_equal(r2.calls, 1);
    assert_string_equal(r2.val, "later");
    /* requested after the first one, so it replaces it although it answered last */
    expect_get(c, "slow", CACHE_HIT, "later");

    /* and the other way round: the earlier-requested load answering last does not win */
    fake_now += 20000;
    struct result r3 = {0}, r4 = {0};
    assert_int_equal(cache_fetch(c, "slow", fake_load, &fl, on_done, &r3), 0); /* ld[2] */
    assert_true(run_until(fx, done_once, &r3, 5000));                          /* times out */
    assert_int_equal(cache_fetch(c, "slow", fake_load, &fl, on_done, &r4), 0); /* ld[3] */
    cache_load_done(fl.ld[3], 0, "new", 3);
    cache_load_done(fl.ld[2], 0, "old", 3);
    expect_get(c, "slow", CACHE_HIT, "new");
    cache_get_stats(c, &st);
    assert_int_equal(st.load_errors, 2);
}

/* ---- batches ---------------------------------------------------------------------------------- */

struct fake_batch {
    int calls;
    size_t n;
    char keys[8][32];
    struct cache_batch *b;
};

static void fake_batch_load(void *ud, const char *const *keys, size_t n, struct cache_batch *b)
{
    struct fake_batch *fb = ud;
    fb->calls++;
    fb->n = n;
    for (size_t i = 0; i < n && i < 8; i++) snprintf(fb->keys[i], sizeof fb->keys[0], "%s", keys[i]);
    fb->b = b;
}

struct warm_result {
    int calls;
    int err;
    size_t stored;
};
static void on_warm(void *ud, int err, size_t stored)
{
    struct warm_result *w = ud;
    w->calls++;
    w->err = err;
    w->stored = stored;
}

static void test_warm_batch(void **state)
{
    struct fixture *fx = *state;
    struct cache *c = mk(fx, opts(10000, 10));
    const char *keys[] = {"acct1:BTCUSDT", "acct1:ETHUSDT", "acct1:SOLUSDT", "acct1:BTCUSDT"};
    struct fake_batch fb = {0};
    struct warm_result w = {0};
    assert_int_equal(cache_warm(c, keys, 4, fake_batch_load, &fb, on_warm, &w), 0);
    assert_int_equal(fb.calls, 1);
    assert_int_equal(fb.n, 4);
    assert_string_equal(fb.keys[2], "acct1:SOLUSDT");

    /* fetches of batch keys wait for the batch instead of loading on their own */
    struct result rb = {0}, rs = {0};
    assert_int_equal(cache_fetch(c, "acct1:BTCUSDT", must_not_load, NULL, on_done, &rb), 0);
    assert_int_equal(cache_fetch(c, "acct1:SOLUSDT", must_not_load, NULL, on_done, &rs), 0);

    assert_int_equal(cache_batch_put(fb.b, "acct1:BTCUSDT", "0.5", 3), 0);
    assert_int_equal(rb.calls, 1);
    assert_string_equal(rb.val, "0.5");
    assert_int_equal(cache_batch_put(fb.b, "acct1:ETHUSDT", "-2", 2), 0);
    assert_int_equal(cache_batch_put(fb.b, "acct1:XRPUSDT", "10", 2), 0); /* not asked: kept */
    /* a fill updated ETH meanwhile: the batch's copy must not overwrite it */
    put_s(c, "acct1:ETHUSDT", "-3");
    assert_int_equal(cache_batch_put(fb.b, "acct1:ETHUSDT", "-2", 2), 1);
    assert_int_equal(w.calls, 0);
    cache_batch_done(fb.b, 0);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.stored, 3);
    /* SOL was asked for but not returned */
    assert_int_equal(rs.calls, 1);
    assert_int_equal(rs.err, -ENOENT);

    expect_get(c, "acct1:BTCUSDT", CACHE_HIT, "0.5");
    expect_get(c, "acct1:ETHUSDT", CACHE_HIT, "-3");
    expect_get(c, "acct1:XRPUSDT", CACHE_HIT, "10");
    expect_get(c, "acct1:SOLUSDT", CACHE_MISS, NULL);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.coalesced, 2);

    /* a failed batch: waiters get its error, warm's done too */
    struct fake_batch fb2 = {0};
    struct warm_result w2 = {0};
    const char *k2[] = {"acct2:BTCUSDT"};
    assert_int_equal(cache_warm(c, k2, 1, fake_batch_load, &fb2, on_warm, &w2), 0);
    struct result r2 = {0};
    assert_int_equal(cache_fetch(c, "acct2:BTCUSDT", must_not_load, NULL, on_done, &r2), 0);
    cache_batch_done(fb2.b, -EIO);
    assert_int_equal(r2.err, -EIO);
    assert_int_equal(w2.err, -EIO);
    assert_int_equal(w2.stored, 0);
    cache_get_stats(c, &st);
    assert_int_equal(st.load_errors, 1);

    /* a key already loading on its own is not taken over by a batch */
    struct fake_loader fl = {0};
    struct result r3 = {0};
    assert_int_equal(cache_fetch(c, "acct3:BTCUSDT", fake_load, &fl, on_done, &r3), 0);
    struct fake_batch fb3 = {0};
    const char *k3[] = {"acct3:BTCUSDT"};
    assert_int_equal(cache_warm(c, k3, 1, fake_batch_load, &fb3, NULL, NULL), 0);
    cache_batch_done(fb3.b, 0); /* returned nothing */
    assert_int_equal(r3.calls, 0);
    cache_load_done(fl.ld[0], 0, "7", 1);
    assert_int_equal(r3.calls, 1);
    assert_string_equal(r3.val, "7");

    assert_int_equal(cache_warm(c, NULL, 1, fake_batch_load, &fb3, NULL, NULL), -EINVAL);
    const char *bad[] = {"ok", ""};
    assert_int_equal(cache_warm(c, bad, 2, fake_batch_load, &fb3, NULL, NULL), -EINVAL);
}

static void test_warm_timeout(void **state)
{
    struct fixture *fx = *state;
    struct cache_opts o = opts(10000, 10);
    o.load_timeout_ms = 20;
    struct cache *c = mk(fx, o);
    const char *keys[] = {"a", "b"};
    struct fake_batch fb = {0};
    struct warm_result w = {0};
    assert_int_equal(cache_warm(c, keys, 2, fake_batch_load, &fb, on_warm, &w), 0);
    struct result ra = {0};
    assert_int_equal(cache_fetch(c, "a", must_not_load, NULL, on_done, &ra), 0);
    assert_true(run_until(fx, done_once, &w, 5000));
    assert_int_equal(w.err, -ETIMEDOUT);
    assert_int_equal(ra.err, -ETIMEDOUT);
    /* late results are still stored; done is not called twice */
    assert_int_equal(cache_batch_put(fb.b, "b", "late", 4), 0);
    cache_batch_done(fb.b, 0);
    assert_int_equal(w.calls, 1);
    expect_get(c, "b", CACHE_HIT, "late");
}

/* cache_free with a load, a batch and waiters outstanding: waiters are cancelled inside
 * cache_free, the late completions only free memory (ASan/LSan builds check that). */
static void test_free_with_pending(void **state)
{
    struct fixture *fx = *state;
    struct cache_opts o = opts(10000, 10);
    struct cache *c = mk(fx, o);
    struct fake_loader fl = {0};
    struct result r = {0};
    assert_int_equal(cache_fetch(c, "x", fake_load, &fl, on_done, &r), 0);
    struct fake_batch fb = {0};
    struct warm_result w = {0};
    const char *keys[] = {"y"};
    assert_int_equal(cache_warm(c, keys, 1, fake_batch_load, &fb, on_warm, &w), 0);
    struct result ry = {0};
    assert_int_equal(cache_fetch(c, "y", must_not_load, NULL, on_done, &ry), 0);
    put_s(c, "z", "1");

    fx->c = cache_free(c);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, -ECANCELED);
    assert_int_equal(ry.err, -ECANCELED);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.err, -ECANCELED);
    assert_int_equal(cache_batch_put(fb.b, "y", "v", 1), -ECANCELED);
    cache_batch_done(fb.b, 0);
    cache_load_done(fl.ld[0], 0, "v", 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(w.calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_bad_opts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_and_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_hit_is_synchronous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_reenters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_error_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loader_synchronous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_supersedes_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warm_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warm_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_pending, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
