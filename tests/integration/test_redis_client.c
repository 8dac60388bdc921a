/* Integration test for daemon/redis_client (+ redis_uv_adapter) against real redis-server.
 * Run under tests/integration/with-services (needs CT_TEST_REDIS). For the failure cases it
 * starts its own redis-server processes (unix socket in CT_TEST_TMP, one on loopback TCP) and
 * kills, stops and restarts them. The loop is driven until a condition holds or a deadline
 * passes; nothing sleeps and hopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "redis_client.h"

extern char **environ;

static const char *redis_addr; /* CT_TEST_REDIS */
static char tmpdir[256];

/* ---- loop driving --------------------------------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    uv_timer_t guard; /* wakes uv_run(ONCE) regularly so deadlines are checked */
    struct rds *r;    /* freed by teardown if a failed assertion skipped the test's rds_free */
    pid_t servers[4];
    int nservers;
    int ups, downs; /* on_state calls */
    char last_why[256];
};

static void on_guard(uv_timer_t *t) { (void)t; }

typedef bool (*pred_fn)(void *arg);

static bool run_until(struct fixture *fx, pred_fn pred, void *arg, unsigned timeout_ms)
{
    uv_update_time(&fx->loop);
    uint64_t end = uv_now(&fx->loop) + timeout_ms;
    uv_timer_start(&fx->guard, on_guard, 5, 5);
    bool ok;
    while (!(ok = pred(arg)) && uv_now(&fx->loop) < end) uv_run(&fx->loop, UV_RUN_ONCE);
    uv_timer_stop(&fx->guard);
    return ok;
}

static bool is_connected(void *arg) { return rds_connected(arg); }

struct failures_at_least {
    struct rds *r;
    uint64_t n;
};
static bool failures_reached(void *arg)
{
    struct failures_at_least *f = arg;
    struct rds_stats st;
    rds_get_stats(f->r, &st);
    return st.connect_failures >= f->n;
}

static void on_state(void *ud, bool up, const char *why)
{
    struct fixture *fx = ud;
    if (up) {
        fx->ups++;
    } else {
        fx->downs++;
        snprintf(fx->last_why, sizeof fx->last_why, "%s", why ? why : "(null)");
    }
}

/* ---- redis-server processes ----------------------------------------------------------- */

static pid_t redis_start(struct fixture *fx, const char *unix_path, int tcp_port)
{
    char port[16], log[300];
    snprintf(port, sizeof port, "%d", tcp_port);
    snprintf(log, sizeof log, "%s/met-redis-%d-%d.log", tmpdir, (int)getpid(), fx->nservers);
    const char *argv[20];
    int n = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    if (unix_path) {
        argv[n++] = "--unixsocket";
        argv[n++] = unix_path;
        argv[n++] = "--unixsocketperm";
        argv[n++] = "700";
    } else {
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1";
    }
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = tmpdir;
    argv[n++] = "--logfile";
    argv[n++] = log;
    argv[n] = NULL;
    pid_t pid;
    int rc = posix_spawnp(&pid, "redis-server", NULL, NULL, (char *const *)argv, environ);
    assert_int_equal(rc, 0);
    assert_true(fx->nservers < 4);
    fx->servers[fx->nservers++] = pid;
    return pid;
}

static void redis_kill(struct fixture *fx, pid_t pid, int sig)
{
    assert_int_equal(kill(pid, sig), 0);
    if (sig == SIGSTOP || sig == SIGCONT) return;
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    for (int i = 0; i < fx->nservers; i++)
        if (fx->servers[i] == pid) fx->servers[i] = 0;
}

/* A loopback port nobody listens on right now (bind to 0, read it, close). */
static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- GET helper ------------------------------------------------------------------------ */

struct get_result {
    int calls;
    int err;
    bool have_value;
    char value[256];
    size_t len;
};

static void on_get(void *ud, int err, const char *value, size_t len)
{
    struct get_result *g = ud;
    g->calls++;
    g->err = err;
    g->have_value = value != NULL;
    g->len = len;
    if (value && len < sizeof g->value) {
        memcpy(g->value, value, len);
        assert_int_equal(value[len], '\0');
    }
}

static bool get_done(void *arg) { return ((struct get_result *)arg)->calls > 0; }

struct pttl_result {
    struct get_result g;
    int64_t pttl;
};

static void on_get_pttl(void *ud, int err, const char *value, size_t len, int64_t pttl)
{
    struct pttl_result *p = ud;
    on_get(&p->g, err, value, len);
    p->pttl = pttl;
}

static struct pttl_result get_pttl_sync(struct fixture *fx, struct rds *r, const char *key)
{
    struct pttl_result p = {0};
    assert_int_equal(rds_get_pttl(r, key, on_get_pttl, &p), 0);
    assert_int_equal(p.g.calls, 0); /* never from inside rds_get_pttl */
    assert_true(run_until(fx, get_done, &p.g, 5000));
    assert_int_equal(p.g.calls, 1);
    return p;
}

/* GET and wait for the answer. */
static struct get_result get_sync(struct fixture *fx, struct rds *r, const char *key)
{
    struct get_result g = {0};
    assert_int_equal(rds_get(r, key, on_get, &g), 0);
    assert_int_equal(g.calls, 0); /* never from inside rds_get */
    assert_true(run_until(fx, get_done, &g, 5000));
    assert_int_equal(g.calls, 1);
    return g;
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (!fx || uv_loop_init(&fx->loop) != 0 || uv_timer_init(&fx->loop, &fx->guard) != 0)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    fx->r = rds_free(fx->r);
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
    /* every rds handle (timers, adapter polls) must be gone by now */
    return rc == 0 ? 0 : -1;
}

static struct rds_opts fast_opts(struct fixture *fx)
{
    return (struct rds_opts){
        .ping_interval_ms = 100,
        .ping_timeout_ms = 300,
        .connect_timeout_ms = 500,
        .backoff_min_ms = 20,
        .backoff_max_ms = 200,
        .on_state = on_state,
        .ud = fx,
    };
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_roundtrip(void **state)
{
    struct fixture *fx = *state;
    struct rds_opts o = fast_opts(fx);
    o.max_outstanding = 10;
    struct rds *r = rds_new(&fx->loop, redis_addr, &o);
    fx->r = r;
    assert_non_null(r);
    /* not connected yet: refused without waiting */
    assert_false(rds_connected(r));
    assert_int_equal(rds_set_px(r, "ct:met:k", "v", 1, 1000), -ENOTCONN);
    struct get_result g0 = {0};
    assert_int_equal(rds_get(r, "ct:met:k", on_get, &g0), -ENOTCONN);
    struct pttl_result p0 = {0};
    assert_int_equal(rds_get_pttl(r, "ct:met:k", on_get_pttl, &p0), -ENOTCONN);
    assert_int_equal(rds_del(r, "ct:met:k"), -ENOTCONN);

    assert_true(run_until(fx, is_connected, r, 5000));
    assert_int_equal(fx->ups, 1);

    /* binary-safe value, exact bytes back */
    static const char val[] = {'v', 'a', '\0', 'l', '\n', 'u', 'e'};
    assert_int_equal(rds_set_px(r, "ct:met:k", val, sizeof val, 60000), 0);
    struct get_result g = get_sync(fx, r, "ct:met:k");
    assert_int_equal(g.err, 0);
    assert_true(g.have_value);
    assert_int_equal(g.len, sizeof val);
    assert_memory_equal(g.value, val, sizeof val);

    /* missing key: NULL without error */
    g = get_sync(fx, r, "ct:met:missing");
    assert_int_equal(g.err, 0);
    assert_false(g.have_value);

    /* GET + PTTL: the value with its remaining TTL; a missing key gives NULL and -2 */
    struct pttl_result p = get_pttl_sync(fx, r, "ct:met:k");
    assert_int_equal(p.g.err, 0);
    assert_true(p.g.have_value);
    assert_int_equal(p.g.len, sizeof val);
    assert_memory_equal(p.g.value, val, sizeof val);
    assert_true(p.pttl > 50000 && p.pttl <= 60000);
    p = get_pttl_sync(fx, r, "ct:met:missing");
    assert_int_equal(p.g.err, 0);
    assert_false(p.g.have_value);
    assert_int_equal(p.pttl, -2);
    /* DEL */
    assert_int_equal(rds_set_px(r, "ct:met:del", "d", 1, 60000), 0);
    assert_int_equal(rds_del(r, "ct:met:del"), 0);
    p = get_pttl_sync(fx, r, "ct:met:del");
    assert_false(p.g.have_value);
    assert_int_equal(rds_del(r, NULL), -EINVAL);
    assert_int_equal(rds_get_pttl(r, "k", NULL, NULL), -EINVAL);

    /* the PX really applies: the key expires */
    assert_int_equal(rds_set_px(r, "ct:met:short", "x", 1, 30), 0);
    g = get_sync(fx, r, "ct:met:short");
    assert_true(g.have_value);
    uv_update_time(&fx->loop);
    uint64_t end = uv_now(&fx->loop) + 3000;
    do {
        g = get_sync(fx, r, "ct:met:short");
    } while (g.have_value && uv_now(&fx->loop) < end);
    assert_false(g.have_value); /* expired: the PX was sent */

    /* too many outstanding: the rest is dropped, not queued */
    struct rds_stats before, after;
    rds_get_stats(r, &before);
    int ok = 0, nobufs = 0;
    for (int i = 0; i < 20; i++) {
        int rc = rds_set_px(r, "ct:met:burst", "x", 1, 60000);
        ok += rc == 0;
        nobufs += rc == -ENOBUFS;
    }
    assert_int_equal(ok, 10);
    assert_int_equal(nobufs, 10);
    assert_int_equal(rds_get(r, "ct:met:burst", on_get, &g0), -ENOBUFS);
    assert_int_equal(rds_get_pttl(r, "ct:met:burst", on_get_pttl, &p0), -ENOBUFS);
    assert_int_equal(rds_del(r, "ct:met:burst"), -ENOBUFS);
    g = (struct get_result){0};
    /* replies come in order: once nothing is outstanding a GET goes through and answers */
    uv_update_time(&fx->loop);
    end = uv_now(&fx->loop) + 5000;
    while (rds_get(r, "ct:met:burst", on_get, &g) != 0 && uv_now(&fx->loop) < end)
        uv_run(&fx->loop, UV_RUN_ONCE);
    assert_true(run_until(fx, get_done, &g, 5000));
    assert_true(g.have_value);
    rds_get_stats(r, &after);
    assert_true(after.dropped - before.dropped >= 13);
    assert_int_equal(after.errors, 0);
    assert_int_equal(after.sent - before.sent, 11);
    assert_int_equal(after.reconnects, 0);

    /* rds_free with GETs in flight: their callbacks run inside rds_free with -ECANCELED */
    g = (struct get_result){0};
    assert_int_equal(rds_get(r, "ct:met:k", on_get, &g), 0);
    p = (struct pttl_result){0};
    assert_int_equal(rds_get_pttl(r, "ct:met:k", on_get_pttl, &p), 0);
    fx->r = rds_free(r);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.err, -ECANCELED);
    assert_int_equal(p.g.calls, 1);
    assert_int_equal(p.g.err, -ECANCELED);
    assert_false(p.g.have_value);
}

static void test_bad_addresses(void **state)
{
    struct fixture *fx = *state;
    const char *bad[] = {"", "localhost:6379", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
                         "127.0.0.1:6379x", "unix:relative/path", "[::1]6379", "[::1:6379",
                         "1.2.3:6379", NULL};
    for (int i = 0; bad[i]; i++) {
        errno = 0;
        assert_null(rds_new(&fx->loop, bad[i], NULL));
        assert_int_equal(errno, EINVAL);
    }
    assert_null(rds_new(&fx->loop, NULL, NULL));
    struct rds *r = rds_new(&fx->loop, "[::1]:1", NULL);
    fx->r = r;
    assert_non_null(r);
    fx->r = rds_free(r);
    assert_null(fx->r);
    assert_null(rds_free(NULL));
}

/* TCP refusal on loopback arrives as POLLERR (connect is EINPROGRESS first): exactly the case
 * Debian's adapter swallowed. Then the server appears on that port and we connect by ourselves. */
static void test_tcp_refused_then_up(void **state)
{
    struct fixture *fx = *state;
    int port = free_tcp_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    struct rds_opts o = fast_opts(fx);
    struct rds *r = rds_new(&fx->loop, addr, &o);
    fx->r = r;
    assert_non_null(r);

    struct failures_at_least f = {r, 3};
    assert_true(run_until(fx, failures_reached, &f, 5000));
    assert_false(rds_connected(r));
    assert_non_null(strstr(fx->last_why, "refused"));

    redis_start(fx, NULL, port);
    assert_true(run_until(fx, is_connected, r, 10000));
    assert_int_equal(rds_set_px(r, "ct:met:tcp", "42", 2, 60000), 0);
    struct get_result g = get_sync(fx, r, "ct:met:tcp");
    assert_int_equal(g.err, 0);
    assert_memory_equal(g.value, "42", 2);
    fx->r = rds_free(r);
}

static void test_unix_kill_restart(void **state)
{
    struct fixture *fx = *state;
    char path[300], addr[310];
    snprintf(path, sizeof path, "%s/met-%d.sock", tmpdir, (int)getpid());
    unlink(path);
    snprintf(addr, sizeof addr, "unix:%s", path);
    struct rds_opts o = fast_opts(fx);
    struct rds *r = rds_new(&fx->loop, addr, &o);
    fx->r = r;
    assert_non_null(r);

    /* no socket yet: synchronous failures, retried */
    struct failures_at_least f = {r, 2};
    assert_true(run_until(fx, failures_reached, &f, 5000));
    assert_false(rds_connected(r));

    pid_t pid = redis_start(fx, path, 0);
    assert_true(run_until(fx, is_connected, r, 10000));
    assert_int_equal(rds_set_px(r, "ct:met:u", "before", 6, 60000), 0);
    struct get_result g = get_sync(fx, r, "ct:met:u");
    assert_int_equal(g.err, 0);

    /* kill -9 with GETs queued: every one gets an error callback, the loss is noticed */
    struct get_result pending[50] = {{0}};
    struct pttl_result pp[10];
    memset(pp, 0, sizeof pp);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(rds_get(r, "ct:met:u", on_get, &pending[i]), 0);
        if (i % 5 == 0) assert_int_equal(rds_get_pttl(r, "ct:met:u", on_get_pttl, &pp[i / 5]), 0);
    }
    int downs = fx->downs;
    redis_kill(fx, pid, SIGKILL);
    assert_true(run_until(fx, get_done, &pending[49], 5000));
    for (int i = 0; i < 50; i++) {
        assert_int_equal(pending[i].calls, 1);
        assert_int_equal(pending[i].err, -ECONNRESET);
    }
    for (int i = 0; i < 10; i++) { /* exactly once each, as an error */
        assert_int_equal(pp[i].g.calls, 1);
        assert_int_equal(pp[i].g.err, -ECONNRESET);
    }
    assert_false(rds_connected(r));
    assert_true(fx->downs > downs);
    assert_int_equal(rds_set_px(r, "ct:met:u", "x", 1, 60000), -ENOTCONN);

    /* restart on the same path: reconnects by itself */
    struct rds_stats st;
    rds_get_stats(r, &st);
    assert_int_equal(st.reconnects, 0);
    redis_start(fx, path, 0);
    assert_true(run_until(fx, is_connected, r, 10000));
    rds_get_stats(r, &st);
    assert_int_equal(st.reconnects, 1);
    assert_true(st.errors >= 70);
    assert_int_equal(rds_set_px(r, "ct:met:u", "after", 5, 60000), 0);
    g = get_sync(fx, r, "ct:met:u");
    assert_int_equal(g.err, 0);
    assert_int_equal(g.len, 5);
    assert_memory_equal(g.value, "after", 5);
    fx->r = rds_free(r);
}

/* The loop itself stalls (a callback busy for longer than the PING timeout, like a fill copied to
 * a thousand followers) while Redis is fine: not a ping timeout, whether the PONG was already in
 * the socket or the PING had not even been written yet. */
struct stall {
    uv_timer_t t;
    int left;
};
static void on_stall(uv_timer_t *t)
{
    struct stall *s = t->data;
    usleep(450 * 1000); /* > ping_timeout_ms (300) */
    if (--s->left == 0) uv_timer_stop(t);
}
static bool stalls_done(void *arg) { return ((struct stall *)arg)->left == 0; }

static void test_loop_stall_is_not_a_ping_timeout(void **state)
{
    struct fixture *fx = *state;
    struct rds_opts o = fast_opts(fx);
    struct rds *r = rds_new(&fx->loop, redis_addr, &o);
    fx->r = r;
    assert_true(run_until(fx, is_connected, r, 10000));
    int downs = fx->downs;
    struct stall s = {.left = 8};
    uv_timer_init(&fx->loop, &s.t);
    s.t.data = &s;
    /* 8 stalls at phases sliding across the 100 ms PING period */
    uv_timer_start(&s.t, on_stall, 130, 37);
    assert_true(run_until(fx, stalls_done, &s, 20000));
    assert_true(run_until(fx, is_connected, r, 50) || rds_connected(r));
    struct rds_stats st;
    rds_get_stats(r, &st);
    assert_int_equal(st.ping_timeouts, 0);
    assert_int_equal(fx->downs, downs);
    assert_true(rds_connected(r));
    uv_close((uv_handle_t *)&s.t, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* s is on this stack: closed before it goes */
    fx->r = rds_free(r);
}

/* A stopped server still completes connects from the kernel backlog and takes our bytes, but
 * never answers: only the PING deadline notices. */
static void test_sigstop_health_check(void **state)
{
    struct fixture *fx = *state;
    char path[300], addr[310];
    snprintf(path, sizeof path, "%s/met-stop-%d.sock", tmpdir, (int)getpid());
    unlink(path);
    snprintf(addr, sizeof addr, "unix:%s", path);
    pid_t pid = redis_start(fx, path, 0);
    struct rds_opts o = fast_opts(fx);
    struct rds *r = rds_new(&fx->loop, addr, &o);
    fx->r = r;
    assert_true(run_until(fx, is_connected, r, 10000));

    redis_kill(fx, pid, SIGSTOP);
    struct get_result g = {0};
    assert_int_equal(rds_get(r, "ct:met:s", on_get, &g), 0);
    assert_true(run_until(fx, get_done, &g, 5000));
    assert_int_equal(g.err, -ETIMEDOUT);
    assert_false(rds_connected(r));
    struct rds_stats st;
    rds_get_stats(r, &st);
    assert_true(st.ping_timeouts >= 1);
    assert_string_equal(fx->last_why, "ping timeout");

    /* while stopped, reconnect attempts connect but get no PONG: still not "up" */
    struct failures_at_least f = {r, st.connect_failures + 1};
    assert_true(run_until(fx, failures_reached, &f, 5000));
    assert_false(rds_connected(r));

    redis_kill(fx, pid, SIGCONT);
    assert_true(run_until(fx, is_connected, r, 10000));
    rds_get_stats(r, &st);
    assert_true(st.reconnects >= 1);
    assert_int_equal(rds_set_px(r, "ct:met:s", "ok", 2, 60000), 0);
    g = get_sync(fx, r, "ct:met:s");
    assert_int_equal(g.err, 0);
    assert_memory_equal(g.value, "ok", 2);
    fx->r = rds_free(r);
}

int main(void)
{
    /* hiredis 0.14 writes with write(), not send(MSG_NOSIGNAL) */
    signal(SIGPIPE, SIG_IGN);
    redis_addr = getenv("CT_TEST_REDIS");
    if (!redis_addr || !*redis_addr) {
        fprintf(stderr, "test_redis_client: CT_TEST_REDIS is not set; run me under "
                        "tests/integration/with-services\n");
        return 1;
    }
    const char *t = getenv("CT_TEST_TMP");
    if (t && *t) {
        snprintf(tmpdir, sizeof tmpdir, "%s", t);
    } else {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/ct-rds.XXXXXX");
        if (!mkdtemp(tmpdir)) return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_refused_then_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_kill_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigstop_health_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_stall_is_not_a_ping_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
