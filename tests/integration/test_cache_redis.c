/* Integration test for daemon/cache with Redis as the second level, against real redis-server.
 * Run under tests/integration/with-services (needs CT_TEST_REDIS). Two caches on two
 * connections play two daemons sharing one Redis. For failures it starts its own redis-server
 * (unix socket in CT_TEST_TMP), stops, kills and restarts it. The loop is driven until a
 * condition holds or a deadline passes; nothing sleeps and hopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "cache.h"
#include "redis_client.h"

extern char **environ;

static const char *redis_addr; /* CT_TEST_REDIS */
static char tmpdir[256];

/* ---- loop driving ----------------------------------------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    uv_timer_t guard;
    struct cache *caches[3];
    struct rds *rds[3];
    pid_t servers[2];
    int nservers;
    char prefix[64]; /* unique per test, so runs and tests do not see each other's keys */
};

static void on_guard(uv_timer_t *t) { (void)t; }

typedef bool (*pred_fn)(void *arg);

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

static bool is_connected(void *arg) { return rds_connected(arg); }
static bool is_down(void *arg) { return !rds_connected(arg); }

struct elapsed {
    uv_loop_t *loop;
    uint64_t until;
};
static bool time_passed(void *arg)
{
    struct elapsed *e = arg;
    return uv_now(e->loop) >= e->until;
}

/* Let ms of loop time pass (for ages, not for synchronisation). */
static void run_for(struct fixture *fx, unsigned ms)
{
    uv_update_time(&fx->loop);
    struct elapsed e = {&fx->loop, uv_now(&fx->loop) + ms};
    assert_true(run_until(fx, time_passed, &e, ms + 5000));
}

/* ---- redis-server processes --------------------------------------------------------------------- */

static pid_t redis_start(struct fixture *fx, const char *unix_path)
{
    char log[300];
    snprintf(log, sizeof log, "%s/cache-redis-%d-%d.log", tmpdir, (int)getpid(), fx->nservers);
    const char *argv[] = {"redis-server", "--port", "0", "--unixsocket", unix_path,
                          "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                          "--dir", tmpdir, "--logfile", log, NULL};
    pid_t pid;
    assert_int_equal(posix_spawnp(&pid, "redis-server", NULL, NULL, (char *const *)argv, environ), 0);
    assert_true(fx->nservers < 2);
    fx->servers[fx->nservers++] = pid;
    return pid;
}

static void redis_signal(struct fixture *fx, pid_t pid, int sig)
{
    assert_int_equal(kill(pid, sig), 0);
    if (sig == SIGSTOP || sig == SIGCONT) return;
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    for (int i = 0; i < fx->nservers; i++)
        if (fx->servers[i] == pid) fx->servers[i] = 0;
}

/* ---- fixture ------------------------------------------------------------------------------------ */

static int setup(void **state)
{
    static int n;
    struct fixture *fx = calloc(1, sizeof *fx);
    if (!fx || uv_loop_init(&fx->loop) != 0 || uv_timer_init(&fx->loop, &fx->guard) != 0)
        return -1;
    snprintf(fx->prefix, sizeof fx->prefix, "ct:test%d-%d:", (int)getpid(), n++);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    /* caches before their connections (cache.h) */
    for (int i = 0; i < 3; i++) fx->caches[i] = cache_free(fx->caches[i]);
    for (int i = 0; i < 3; i++) fx->rds[i] = rds_free(fx->rds[i]);
    for (int i = 0; i < fx->nservers; i++) {
        if (!fx->servers[i]) continue;
        kill(fx->servers[i], SIGCONT);
        kill(fx->servers[i], SIGKILL);
        waitpid(fx->servers[i], NULL, 0);
    }
    uv_close((uv_handle_t *)&fx->guard, NULL);
    while (uv_run(&fx->loop, UV_RUN_DEFAULT) != 0) {
    }
    int rc = uv_loop_close(&fx->loop);
    free(fx);
    return rc == 0 ? 0 : -1;
}

/* A connection, slot i; waits until it is up unless told not to. The PING deadline is long so
 * that in test_redis_slow the cache's own 20 ms GET timeout is what fires, even on a loaded
 * machine (a killed server is noticed by EOF, not by PING). */
static struct rds *connect_rds(struct fixture *fx, int i, const char *addr, bool wait_up)
{
    struct rds_opts o = {.ping_interval_ms = 100, .ping_timeout_ms = 3000,
                         .connect_timeout_ms = 500, .backoff_min_ms = 20, .backoff_max_ms = 200};
    fx->rds[i] = rds_new(&fx->loop, addr, &o);
    assert_non_null(fx->rds[i]);
    if (wait_up) assert_true(run_until(fx, is_connected, fx->rds[i], 10000));
    return fx->rds[i];
}

static struct cache *mk_cache(struct fixture *fx, int i, struct rds *r, uint64_t ttl)
{
    /* 500 ms, not the daemon's 20: a read-through that must reach Redis may not time out on a
     * loaded test machine; the wedged-Redis test waits that long instead. */
    struct cache_opts o = {.name = "positions", .ttl_ms = ttl, .max_entries = 100,
                           .redis_timeout_ms = 500, .key_prefix = fx->prefix};
    fx->caches[i] = cache_new(&fx->loop, r, &o);
    assert_non_null(fx->caches[i]);
    return fx->caches[i];
}

/* ---- raw Redis checks ------------------------------------------------------------------------------ */

struct raw {
    int calls;
    int err;
    bool have;
    char val[128];
    int64_t pttl;
};
static void on_raw(void *ud, int err, const char *value, size_t len, int64_t pttl)
{
    struct raw *r = ud;
    r->calls++;
    r->err = err;
    r->have = value != NULL;
    r->pttl = pttl;
    if (value) snprintf(r->val, sizeof r->val, "%.*s", (int)len, value);
}
static bool raw_done(void *arg) { return ((struct raw *)arg)->calls > 0; }

/* GET + PTTL of prefix+key on connection r. Replies come in order on a connection, so this also
 * proves every SET sent before it on r has been applied. */
static struct raw raw_get(struct fixture *fx, struct rds *r, const char *key)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", fx->prefix, key);
    struct raw x = {0};
    assert_int_equal(rds_get_pttl(r, full, on_raw, &x), 0);
    assert_true(run_until(fx, raw_done, &x, 5000));
    return x;
}

/* ---- waiters and loaders ---------------------------------------------------------------------------- */

struct result {
    int calls;
    int err;
    char val[128];
};
static void on_done(void *ud, int err, const void *val, size_t len)
{
    struct result *r = ud;
    r->calls++;
    r->err = err;
    if (val) snprintf(r->val, sizeof r->val, "%.*s", (int)len, (const char *)val);
}
static bool done_once(void *arg) { return ((struct result *)arg)->calls > 0; }

/* Records calls; completes on demand (ld kept) or at once with value. */
struct loader {
    int calls;
    bool sync;
    const char *value;
    struct cache_load *ld[4];
};
static void load(void *ud, const char *key, struct cache_load *ld)
{
    (void)key;
    struct loader *l = ud;
    assert_true(l->calls < 4);
    l->ld[l->calls++] = ld;
    if (l->sync) cache_load_done(ld, 0, l->value, strlen(l->value));
}
static bool loader_called(void *arg) { return ((struct loader *)arg)->calls > 0; }

static void must_not_load(void *ud, const char *key, struct cache_load *ld)
{
    (void)ud;
    (void)ld;
    fail_msg("loader called for %s", key);
}

static struct cache_stats stats(struct cache *c)
{
    struct cache_stats st;
    cache_get_stats(c, &st);
    return st;
}

/* ---- tests --------------------------------------------------------------------------------------- */

/* Daemon A puts; daemon B's fetch reads it from Redis without loading, with the TTL in Redis
 * and the value's age carried over. */
static void test_read_through_other_instance(void **state)
{
    struct fixture *fx = *state;
    struct rds *ra = connect_rds(fx, 0, redis_addr, true);
    struct rds *rb = connect_rds(fx, 1, redis_addr, true);
    struct cache *a = mk_cache(fx, 0, ra, 2000);
    struct cache *b = mk_cache(fx, 1, rb, 2000);

    assert_int_equal(cache_put(a, "acct1:BTCUSDT", "{\"amt\":\"0.5\"}", 13), 0);
    struct raw x = raw_get(fx, ra, "acct1:BTCUSDT"); /* also: the SET has been applied */
    assert_true(x.have);
    assert_string_equal(x.val, "{\"amt\":\"0.5\"}");
    assert_true(x.pttl > 0 && x.pttl <= 2000); /* SET ... PX ttl_ms */

    run_for(fx, 300); /* the value ages in Redis */
    struct result r[3] = {{0}};
    for (int i = 0; i < 3; i++)
        assert_int_equal(cache_fetch(b, "acct1:BTCUSDT", must_not_load, NULL, on_done, &r[i]), 0);
    assert_true(run_until(fx, done_once, &r[2], 5000));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].err, 0);
        assert_string_equal(r[i].val, "{\"amt\":\"0.5\"}");
    }
    const void *val;
    size_t len;
    uint64_t age;
    assert_int_equal(cache_get(b, "acct1:BTCUSDT", &val, &len, &age), CACHE_HIT);
    /* not "fresh from now": at least the 300 ms it spent in Redis */
    assert_true(age >= 290);
    assert_true(age < 2000);
    struct cache_stats st = stats(b);
    assert_int_equal(st.redis_hits, 1); /* one GET for three fetches */
    assert_int_equal(st.coalesced, 2);
    assert_int_equal(st.loads, 0);
    assert_int_equal(st.redis_errors, 0);
    assert_int_equal(stats(a).redis_errors, 0);

    /* a value older than the TTL in Redis is not taken: once the key expired, B loads */
    run_for(fx, 1800);
    assert_int_equal(cache_get(b, "acct1:BTCUSDT", NULL, NULL, NULL), CACHE_STALE);
    struct loader l = {.sync = true, .value = "{\"amt\":\"0.6\"}"};
    struct result r2 = {0};
    assert_int_equal(cache_fetch(b, "acct1:BTCUSDT", load, &l, on_done, &r2), 0);
    assert_true(run_until(fx, done_once, &r2, 5000));
    assert_int_equal(l.calls, 1);
    assert_string_equal(r2.val, "{\"amt\":\"0.6\"}");
    assert_int_equal(stats(b).redis_misses, 1);
}

/* Redis miss: one load for all waiters, written to Redis with the TTL; the other instance
 * then reads it from Redis. Also cache_del reaches Redis. */
static void test_miss_load_writes_redis(void **state)
{
    struct fixture *fx = *state;
    struct rds *ra = connect_rds(fx, 0, redis_addr, true);
    struct rds *rb = connect_rds(fx, 1, redis_addr, true);
    struct cache *a = mk_cache(fx, 0, ra, 10000);
    struct cache *b = mk_cache(fx, 1, rb, 10000);

    struct loader l = {0};
    struct result r[5] = {{0}};
    for (int i = 0; i < 5; i++)
        assert_int_equal(cache_fetch(a, "acct2:ETHUSDT", load, &l, on_done, &r[i]), 0);
    assert_int_equal(l.calls, 0); /* asking Redis first */
    assert_true(run_until(fx, loader_called, &l, 5000));
    assert_int_equal(l.calls, 1);
    cache_load_done(l.ld[0], 0, "-1.25", 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_string_equal(r[i].val, "-1.25");
    }
    struct cache_stats st = stats(a);
    assert_int_equal(st.redis_misses, 1);
    assert_int_equal(st.loads, 1);

    struct raw x = raw_get(fx, ra, "acct2:ETHUSDT");
    assert_true(x.have);
    assert_string_equal(x.val, "-1.25");
    assert_true(x.pttl > 5000 && x.pttl <= 10000);

    struct result rb1 = {0};
    assert_int_equal(cache_fetch(b, "acct2:ETHUSDT", must_not_load, NULL, on_done, &rb1), 0);
    assert_true(run_until(fx, done_once, &rb1, 5000));
    assert_string_equal(rb1.val, "-1.25");
    assert_int_equal(stats(b).redis_hits, 1);

    assert_int_equal(cache_del(a, "acct2:ETHUSDT"), 0);
    x = raw_get(fx, ra, "acct2:ETHUSDT");
    assert_false(x.have);
}

/* Redis unreachable from the start (a socket path that does not exist): the cache serves
 * locally, loads at once without waiting, and counts the errors. */
static void test_redis_unreachable(void **state)
{
    struct fixture *fx = *state;
    char addr[300];
    snprintf(addr, sizeof addr, "unix:%s/no-such-dir/redis.sock", tmpdir);
    struct rds *r = connect_rds(fx, 0, addr, false);
    struct cache *c = mk_cache(fx, 0, r, 10000);
    run_for(fx, 50); /* a few failed connect attempts */
    assert_false(rds_connected(r));

    assert_int_equal(cache_put(c, "k1", "v1", 2), 0);
    const void *val;
    size_t len;
    assert_int_equal(cache_get(c, "k1", &val, &len, NULL), CACHE_HIT);
    assert_memory_equal(val, "v1", 2);

    struct loader l = {.sync = true, .value = "v2"};
    struct result res = {0};
    /* the loader runs inside cache_fetch: nothing waited for Redis */
    assert_int_equal(cache_fetch(c, "k2", load, &l, on_done, &res), 1);
    assert_int_equal(l.calls, 1);
    assert_string_equal(res.val, "v2");
    assert_int_equal(cache_get(c, "k2", NULL, NULL, NULL), CACHE_HIT);

    struct cache_stats st = stats(c);
    assert_int_equal(st.redis_errors, 3); /* SET k1; GET and SET of the loaded k2: refused */
    assert_int_equal(st.redis_hits + st.redis_misses, 0);
    assert_int_equal(st.loads, 1);
}

/* A wedged Redis (SIGSTOP): the read-through gives up after redis_timeout_ms and loads; then
 * skips Redis for the backoff period; puts never wait. */
static void test_redis_slow(void **state)
{
    struct fixture *fx = *state;
    char path[300], addr[310];
    snprintf(path, sizeof path, "%s/cache-slow-%d.sock", tmpdir, (int)getpid());
    unlink(path);
    snprintf(addr, sizeof addr, "unix:%s", path);
    pid_t pid = redis_start(fx, path);
    struct rds *r = connect_rds(fx, 0, addr, true);
    struct cache *c = mk_cache(fx, 0, r, 10000);

    redis_signal(fx, pid, SIGSTOP);
    struct loader l = {0};
    struct result res = {0};
    assert_int_equal(cache_fetch(c, "k", load, &l, on_done, &res), 0);
    assert_int_equal(l.calls, 0); /* the GET went out (the connection is still "up") */
    assert_true(run_until(fx, loader_called, &l, 5000));
    assert_int_equal(l.calls, 1); /* after the GET timed out */
    struct cache_stats st = stats(c);
    assert_int_equal(st.redis_timeouts, 1);
    assert_int_equal(st.redis_errors, 1);
    cache_load_done(l.ld[0], 0, "loaded", 6);
    assert_string_equal(res.val, "loaded");

    /* within the backoff: straight to the loader, no second timeout */
    assert_int_equal(cache_put(c, "p", "x", 1), 0); /* returns at once whatever Redis does */
    struct loader l2 = {.sync = true, .value = "v"};
    struct result res2 = {0};
    assert_int_equal(cache_fetch(c, "k2", load, &l2, on_done, &res2), 1);
    assert_int_equal(l2.calls, 1);
    assert_int_equal(stats(c).redis_timeouts, 1);

    redis_signal(fx, pid, SIGCONT);
    assert_true(run_until(fx, is_connected, r, 10000));
}

/* Redis killed and restarted: local keeps working while it is away; the client reconnects by
 * itself and writes and reads resume. */
static void test_redis_restart(void **state)
{
    struct fixture *fx = *state;
    char path[300], addr[310];
    snprintf(path, sizeof path, "%s/cache-restart-%d.sock", tmpdir, (int)getpid());
    unlink(path);
    snprintf(addr, sizeof addr, "unix:%s", path);
    pid_t pid = redis_start(fx, path);
    struct rds *r = connect_rds(fx, 0, addr, true);
    struct rds *other = connect_rds(fx, 1, addr, true); /* another daemon's connection */
    struct cache *c = mk_cache(fx, 0, r, 10000);
    struct cache *c2 = mk_cache(fx, 1, other, 10000);

    assert_int_equal(cache_put(c, "before", "1", 1), 0);
    assert_true(raw_get(fx, r, "before").have);

    redis_signal(fx, pid, SIGKILL);
    assert_true(run_until(fx, is_down, r, 5000)); /* the loss is noticed (EOF on the socket) */

    uint64_t errs = stats(c).redis_errors;
    assert_int_equal(cache_put(c, "during", "2", 1), 0);
    assert_int_equal(cache_get(c, "during", NULL, NULL, NULL), CACHE_HIT);
    assert_int_equal(cache_get(c, "before", NULL, NULL, NULL), CACHE_HIT);
    struct loader l = {.sync = true, .value = "3"};
    struct result res = {0};
    assert_int_equal(cache_fetch(c, "fetched", load, &l, on_done, &res), 1);
    assert_string_equal(res.val, "3");
    assert_int_equal(stats(c).redis_errors, errs + 3); /* SET "during", GET and SET "fetched" */

    redis_start(fx, path); /* a fresh, empty server on the same path */
    assert_true(run_until(fx, is_connected, r, 10000));
    assert_true(run_until(fx, is_connected, other, 10000));
    struct rds_stats rst;
    rds_get_stats(r, &rst);
    assert_int_equal(rst.reconnects, 1);

    /* writes resume */
    errs = stats(c).redis_errors;
    assert_int_equal(cache_put(c, "after", "4", 1), 0);
    struct raw x = raw_get(fx, r, "after");
    assert_true(x.have);
    assert_string_equal(x.val, "4");
    assert_true(x.pttl > 0 && x.pttl <= 10000);
    assert_int_equal(stats(c).redis_errors, errs);
    /* and reads: the other daemon's value comes through Redis */
    assert_int_equal(cache_put(c2, "shared", "5", 1), 0);
    assert_true(raw_get(fx, other, "shared").have);
    struct result res2 = {0};
    assert_int_equal(cache_fetch(c, "shared", must_not_load, NULL, on_done, &res2), 0);
    assert_true(run_until(fx, done_once, &res2, 5000));
    assert_int_equal(res2.err, 0);
    assert_string_equal(res2.val, "5");
}

/* cache_free with a Redis GET still out: the late reply (here: rds_free's cancel) only frees. */
static void test_free_with_get_in_flight(void **state)
{
    struct fixture *fx = *state;
    struct rds *r = connect_rds(fx, 0, redis_addr, true);
    struct cache *c = mk_cache(fx, 0, r, 10000);
    struct result res = {0};
    assert_int_equal(cache_fetch(c, "x", must_not_load, NULL, on_done, &res), 0);
    fx->caches[0] = cache_free(c);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.err, -ECANCELED);
    /* the GET's reply arrives after the cache is gone */
    struct raw x = raw_get(fx, r, "x");
    assert_false(x.have);
    assert_int_equal(res.calls, 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* hiredis 0.14 writes with write(), not send(MSG_NOSIGNAL) */
    redis_addr = getenv("CT_TEST_REDIS");
    if (!redis_addr || !*redis_addr) {
        fprintf(stderr, "test_cache_redis: CT_TEST_REDIS is not set; run me under "
                        "tests/integration/with-services\n");
        return 1;
    }
    const char *t = getenv("CT_TEST_TMP");
    if (t && *t) {
        snprintf(tmpdir, sizeof tmpdir, "%s", t);
    } else {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/ct-cache.XXXXXX");
        if (!mkdtemp(tmpdir)) return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_through_other_instance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_miss_load_writes_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_slow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_get_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
