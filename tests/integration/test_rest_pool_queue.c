/* rest_pool's own queues (issue 7): curl never holds more transfers of a host than it can run at
 * once; the rest wait in the pool, per host, orders first, FIFO within a priority, and leave (are
 * built, i.e. signed) only when a slot frees. Against in-process HTTP/1.1 servers on loopback on
 * the test's own libuv loop (testutil/http_stub; no other service).
 *
 * - 2 queries, 40 orders, 8 queries with 4 connections: at most 4 in curl at any moment (checked
 *   at every departure and every answer), the departure order exactly q0 q1 o0..o39 q2..q9,
 *   every callback once with its own answer, at most 4 connections opened.
 * - two hosts: one host's full queue does not hold back the other host's requests.
 * - rest_pool_free with requests queued: each callback once, the waiting ones never built and
 *   reported as not sent, in FIFO order.
 * - a built URL on another host than the request's url is refused, not sent. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "http_stub.h"
#include "loop_until.h"
#include "rest_pool.h"

/* ---- the servers: GET/POST /ok/<tag> answers "ok-<tag>" at once, /hold/<tag> only when the
 * test releases it ---- */

#define MAX_HELD 64

/* The test's loop: every event a test waits for stops it (uv_stop), so RUN_UNTIL re-checks at
 * once instead of polling on until the next I/O or the watchdog. */
static uv_loop_t *g_loop;

struct held {
    struct http_stub_conn *c;
    char tag[64];
};

struct tsrv {
    struct http_stub *http;
    int port;
    struct held held[MAX_HELD];
    int n_held;
};

static void answer(struct http_stub_conn *c, const char *tag) {
    char body[96];
    int bl = snprintf(body, sizeof body, "ok-%s", tag);
    http_stub_reply(c, 200, NULL, body, (size_t)bl); /* a closed connection is not answered */
}

static void on_request(void *ud, struct http_stub_conn *c, const struct http_stub_req *r) {
    struct tsrv *s = ud;
    if (!r->method) fail_msg("bad request line");
    if (strncmp(r->target, "/hold/", 6) == 0) {
        assert_true(s->n_held < MAX_HELD);
        struct held *hd = &s->held[s->n_held++];
        hd->c = c;
        snprintf(hd->tag, sizeof hd->tag, "%.60s", r->target + 6);
        uv_stop(g_loop);
    } else if (strncmp(r->target, "/ok/", 4) == 0) {
        answer(c, r->target + 4);
    } else {
        fail_msg("unexpected target %s", r->target);
    }
}

static void tsrv_start(uv_loop_t *loop, struct tsrv *s) {
    memset(s, 0, sizeof *s);
    s->http = http_stub_new(loop, on_request, s);
    s->port = http_stub_port(s->http);
}

static void tsrv_release(struct tsrv *s) {
    for (int i = 0; i < s->n_held; i++) answer(s->held[i].c, s->held[i].tag);
    s->n_held = 0;
}

static void tsrv_stop(struct tsrv *s) {
    s->http = http_stub_free(s->http);
}

/* ---- the client side ---- */

#define MAX_REQ 64

struct treq;
struct tctx {
    struct rest_pool *pool;
    struct tsrv *srv;
    long cap;
    char departed[MAX_REQ][16]; /* tags in build order */
    int n_departed;
    int done;
    int orders_sent, orders_built;
};

struct treq {
    struct tctx *t;
    char tag[16];
    char url[128];
    char host_url[128]; /* given to rest_pool_send */
    bool is_order;
    int calls;
    int err;
    bool maybe_sent;
    long status;
    char body[64];
};

static void check_cap(struct tctx *t, const char *url, unsigned limit) {
    uint32_t in_curl = 0, queued = 0;
    assert_int_equal(rest_pool_host_load(t->pool, url, &in_curl, &queued), 0);
    assert_true(in_curl <= limit);
}

static int t_build(void *ud, struct rest_req *out) {
    struct treq *r = ud;
    struct tctx *t = r->t;
    /* It is about to be handed to curl: a slot of its host must be free. */
    check_cap(t, r->host_url, (unsigned)t->cap - 1);
    assert_true(t->n_departed < MAX_REQ);
    snprintf(t->departed[t->n_departed++], sizeof t->departed[0], "%s", r->tag);
    if (r->is_order) t->orders_built++;
    else assert_int_equal(t->orders_built, t->orders_sent); /* no order waits while a query leaves */
    out->url = r->url;
    return 0;
}

static void t_done(void *ud, const struct rest_resp *resp) {
    struct treq *r = ud;
    r->calls++;
    r->err = resp->err;
    r->maybe_sent = resp->maybe_sent;
    r->status = resp->http_status;
    snprintf(r->body, sizeof r->body, "%.*s", (int)resp->body_len, resp->body);
    r->t->done++;
    uv_stop(g_loop);
    if (r->t->pool && resp->err != -ECANCELED) check_cap(r->t, r->host_url, (unsigned)r->t->cap);
}

static void t_send(struct tctx *t, struct treq *r, int port, const char *kind, const char *tag,
                   bool order) {
    r->t = t;
    r->is_order = order;
    snprintf(r->tag, sizeof r->tag, "%s", tag);
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d/%s/%s", port, kind, tag);
    snprintf(r->host_url, sizeof r->host_url, "http://127.0.0.1:%d", port);
    struct rest_req req = {
        .method = order ? REST_POST : REST_GET,
        .url = r->host_url,
        .build = t_build,
        .prio = order ? RB_PRIO_ORDER : RB_PRIO_QUERY,
        .no_resend = order,
        .timeout_ms = 10000,
    };
    assert_int_equal(rest_pool_send(t->pool, &req, t_done, r), 0);
    if (order) t->orders_sent++;
}

/* Every wait fails after 20 s: a hang is a failure, not a wait. */
#define RUN_UNTIL(loop, done, want) LU_RUN_UNTIL((loop), (done), (want), 20000)

static void drain_loop(uv_loop_t *loop) {
    for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT); i++) {
    }
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Each test: a fresh loop, client state and pool with `cap` connections per host. */
static uv_loop_t the_loop;
static struct tctx T;

static void fx_start(long cap) {
    assert_int_equal(uv_loop_init(&the_loop), 0);
    g_loop = &the_loop;
    memset(&T, 0, sizeof T);
    T.cap = cap;
    struct rest_pool_opts o = {.max_host_connections = cap, .max_connects = cap};
    T.pool = rest_pool_new(&the_loop, &o);
    assert_non_null(T.pool);
}

/* After the test's servers were stopped. */
static void fx_end(void) {
    T.pool = rest_pool_free(T.pool);
    drain_loop(&the_loop);
}

static void test_cap_and_fifo(void **state) {
    (void)state;
    fx_start(4);
    struct tsrv s;
    tsrv_start(&the_loop, &s);
    static struct treq r[50];
    memset(r, 0, sizeof r);
    char tag[16];
    int k = 0;
    for (int i = 0; i < 2; i++, k++) snprintf(tag, sizeof tag, "q%d", i), t_send(&T, &r[k], s.port, "ok", tag, false);
    for (int i = 0; i < 40; i++, k++) snprintf(tag, sizeof tag, "o%d", i), t_send(&T, &r[k], s.port, "ok", tag, true);
    for (int i = 2; i < 10; i++, k++) snprintf(tag, sizeof tag, "q%d", i), t_send(&T, &r[k], s.port, "ok", tag, false);

    /* Before the loop ran: 4 in curl (2 queries = half the slots, 2 orders), the rest waiting. */
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", s.port);
    uint32_t in_curl = 0, queued = 0;
    assert_int_equal(rest_pool_host_load(T.pool, host, &in_curl, &queued), 0);
    assert_int_equal(in_curl, 4);
    assert_int_equal(queued, 46);
    struct rest_pool_stats st;
    rest_pool_get_stats(T.pool, &st);
    assert_int_equal(st.in_flight, 4);
    assert_int_equal(st.queued, 46);
    assert_int_equal(st.queued_orders, 38);

    RUN_UNTIL(&the_loop, &T.done, 50);

    const char *want[50];
    static char names[50][8];
    k = 0;
    for (int i = 0; i < 2; i++) snprintf(names[k], 8, "q%d", i), want[k] = names[k], k++;
    for (int i = 0; i < 40; i++) snprintf(names[k], 8, "o%d", i), want[k] = names[k], k++;
    for (int i = 2; i < 10; i++) snprintf(names[k], 8, "q%d", i), want[k] = names[k], k++;
    assert_int_equal(T.n_departed, 50);
    for (int i = 0; i < 50; i++) assert_string_equal(T.departed[i], want[i]);
    for (int i = 0; i < 50; i++) {
        char b[32];
        snprintf(b, sizeof b, "ok-%s", r[i].tag);
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, 0);
        assert_int_equal(r[i].status, 200);
        assert_string_equal(r[i].body, b);
    }
    assert_int_equal(http_stub_requests(s.http), 50);
    assert_true(http_stub_accepted(s.http) <= 4);
    rest_pool_get_stats(T.pool, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.queued_orders, 0);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.in_curl_host_max, 4); /* the slots were used, not just bounded */
    assert_int_equal(st.completed, 50);

    tsrv_stop(&s);
    fx_end();
}

/* Host A's slots are all held by the server; host B's requests still go at once. */
static void test_hosts_independent(void **state) {
    (void)state;
    fx_start(2);
    struct tsrv a, b;
    tsrv_start(&the_loop, &a);
    tsrv_start(&the_loop, &b);
    static struct treq ra[6], rb[3];
    memset(ra, 0, sizeof ra);
    memset(rb, 0, sizeof rb);
    char tag[16];
    for (int i = 0; i < 6; i++) snprintf(tag, sizeof tag, "a%d", i), t_send(&T, &ra[i], a.port, "hold", tag, true);
    for (int i = 0; i < 3; i++) snprintf(tag, sizeof tag, "b%d", i), t_send(&T, &rb[i], b.port, "ok", tag, true);

    RUN_UNTIL(&the_loop, &T.done, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(rb[i].calls, 1);
    for (int i = 0; i < 6; i++) assert_int_equal(ra[i].calls, 0);
    uint32_t in_curl = 0, queued = 0;
    assert_int_equal(rest_pool_host_load(T.pool, ra[0].host_url, &in_curl, &queued), 0);
    assert_int_equal(in_curl, 2);
    assert_int_equal(queued, 4);
    /* The server has both of A's transfers in curl (held), none of the waiting ones. */
    RUN_UNTIL(&the_loop, &a.n_held, 2);
    assert_int_equal(http_stub_requests(a.http), 2);

    /* Each release answers what is held; the freed slots take the next ones, FIFO. */
    while (T.done < 9) {
        int left = 9 - T.done, expect = left < 2 ? left : 2;
        RUN_UNTIL(&the_loop, &a.n_held, expect);
        assert_int_equal(a.n_held, expect);
        int before = T.done;
        tsrv_release(&a);
        RUN_UNTIL(&the_loop, &T.done, before + expect);
    }
    RUN_UNTIL(&the_loop, &T.done, 9);
    for (int i = 0; i < 6; i++) {
        char body[32];
        snprintf(body, sizeof body, "ok-a%d", i);
        assert_int_equal(ra[i].calls, 1);
        assert_string_equal(ra[i].body, body);
    }
    /* The departure order on host A is FIFO too. */
    int ai = 0;
    for (int i = 0; i < T.n_departed; i++)
        if (T.departed[i][0] == 'a') {
            snprintf(tag, sizeof tag, "a%d", ai++);
            assert_string_equal(T.departed[i], tag);
        }
    assert_int_equal(ai, 6);

    tsrv_stop(&a);
    tsrv_stop(&b);
    fx_end();
}

/* rest_pool_free with requests waiting: every callback once, inside the call; the waiting ones
 * were never built and are reported not sent, in FIFO order. */
static int cancel_seq;
static int cancel_order[8];

static void t_cancel_done(void *ud, const struct rest_resp *resp) {
    struct treq *r = ud;
    t_done(ud, resp);
    cancel_order[cancel_seq++ % 8] = atoi(r->tag + 1);
}

static void test_free_with_queue(void **state) {
    (void)state;
    fx_start(2);
    struct tsrv s;
    tsrv_start(&the_loop, &s);
    static struct treq r[6];
    memset(r, 0, sizeof r);
    cancel_seq = 0;
    for (int i = 0; i < 6; i++) {
        r[i].t = &T;
        r[i].is_order = true;
        snprintf(r[i].tag, sizeof r[i].tag, "c%d", i);
        snprintf(r[i].url, sizeof r[i].url, "http://127.0.0.1:%d/hold/c%d", s.port, i);
        snprintf(r[i].host_url, sizeof r[i].host_url, "http://127.0.0.1:%d", s.port);
        struct rest_req req = {.method = REST_POST, .url = r[i].host_url, .build = t_build,
                               .no_resend = true, .timeout_ms = 10000};
        assert_int_equal(rest_pool_send(T.pool, &req, t_cancel_done, &r[i]), 0);
        T.orders_sent++;
    }
    RUN_UNTIL(&the_loop, &s.n_held, 2);
    assert_int_equal(T.n_departed, 2);
    struct rest_pool *p = T.pool;
    T.pool = NULL;
    rest_pool_free(p);
    assert_int_equal(T.done, 6);
    assert_int_equal(T.n_departed, 2); /* the waiting ones were never built (signed) */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, -ECANCELED);
        if (i >= 2) assert_false(r[i].maybe_sent);
    }
    /* in flight first (cancelled inside curl), then the queue in FIFO order */
    for (int i = 2; i < 6; i++) assert_int_equal(cancel_order[i], i);
    tsrv_stop(&s);
    fx_end();
}

static int other_host_build(void *ud, struct rest_req *out) {
    struct treq *r = ud;
    out->url = r->url; /* on another port than host_url */
    return 0;
}

static void test_built_url_on_other_host(void **state) {
    (void)state;
    fx_start(2);
    struct tsrv s;
    tsrv_start(&the_loop, &s);
    static struct treq r;
    memset(&r, 0, sizeof r);
    r.t = &T;
    snprintf(r.url, sizeof r.url, "http://127.0.0.1:%d/ok/x", s.port);
    snprintf(r.host_url, sizeof r.host_url, "http://127.0.0.1:%d", s.port == 1 ? 2 : s.port - 1);
    struct rest_req req = {.method = REST_GET, .url = r.host_url, .build = other_host_build};
    assert_int_equal(rest_pool_send(T.pool, &req, t_done, &r), 0);
    RUN_UNTIL(&the_loop, &T.done, 1);
    assert_int_equal(r.err, -EINVAL);
    assert_false(r.maybe_sent);
    assert_int_equal(http_stub_requests(s.http), 0);
    /* The same host spelled differently is the same host. */
    char alt[64];
    uint32_t in_curl = 9, queued = 9;
    snprintf(alt, sizeof alt, "HTTP://127.0.0.1:%d/some/path?q=1", s.port == 1 ? 2 : s.port - 1);
    assert_int_equal(rest_pool_host_load(T.pool, alt, &in_curl, &queued), 0);
    assert_int_equal(in_curl, 0);
    assert_int_equal(queued, 0);
    assert_int_equal(rest_pool_host_load(T.pool, "http://192.0.2.1:80", NULL, NULL), -ENOENT);
    tsrv_stop(&s);
    fx_end();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_and_fifo),
        cmocka_unit_test(test_hosts_independent),
        cmocka_unit_test(test_free_with_queue),
        cmocka_unit_test(test_built_url_on_other_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
