/* sim_fault: parsing of fault specs (defaults, refusals naming the field), matching by account
 * and endpoint, count, probability with a seed, latency distributions, latency combined with an
 * outcome, stream-event faults, expiry, hit counters, clearing and the JSON listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "sim_fault.h"

static int parse(const char *json, struct sfault_spec *sp, const char **field)
{
    char err[300];
    json_error_t je;
    json_t *o = json_loads(json, 0, &je);
    assert_non_null(o);
    int rc = sfault_parse(o, sp, err, sizeof(err), field);
    json_decref(o);
    return rc;
}

static const struct sfault *add(struct sfault_table *t, const char *json, int64_t now)
{
    struct sfault_spec sp;
    const char *field;
    json_error_t je;
    json_t *o = json_loads(json, 0, &je);
    assert_non_null(o);
    assert_int_equal(sfault_parse(o, &sp, (char[200]){0}, 200, &field), 0);
    const struct sfault *f = sfault_add(t, &sp, o, now);
    json_decref(o);
    assert_non_null(f);
    return f;
}

static void test_parse_defaults(void **state)
{
    (void)state;
    struct sfault_spec sp;
    const char *field;
    assert_int_equal(parse("{\"kind\":\"latency\",\"ms\":250}", &sp, &field), 0);
    assert_int_equal(sp.kind, SFAULT_LATENCY);
    assert_string_equal(sp.account, "*");
    assert_string_equal(sp.method, "*");
    assert_string_equal(sp.path, "*");
    assert_int_equal(sp.ms, 250);
    assert_true(sp.after_place);
    assert_true(sp.count == -1);
    assert_true(sp.probability == 1.0);

    assert_int_equal(parse("{\"kind\":\"reset\",\"account\":\"f1\",\"endpoint\":\"POST /fapi/v1/order\"}", &sp, &field), 0);
    assert_false(sp.after_place);
    assert_string_equal(sp.method, "POST");
    assert_string_equal(sp.path, "/fapi/v1/order");
    assert_int_equal(parse("{\"kind\":\"http_5xx\",\"endpoint\":\"/v5/order/create\",\"count\":3}", &sp, &field), 0);
    assert_int_equal(sp.status, 500);
    assert_string_equal(sp.method, "*");
    assert_true(sp.count == 3);
    assert_int_equal(parse("{\"kind\":\"418\"}", &sp, &field), 0);
    assert_int_equal(sp.retry_after_s, 120);
    assert_int_equal(parse("{\"kind\":\"429\",\"retry_after_s\":7}", &sp, &field), 0);
    assert_int_equal(sp.retry_after_s, 7);
    assert_int_equal(parse("{\"kind\":\"latency\",\"mean_ms\":100,\"sd_ms\":20.5,\"after_place\":false}", &sp, &field), 0);
    assert_int_equal(sp.dist, SFAULT_NORMAL);
    assert_false(sp.after_place);
    assert_int_equal(parse("{\"kind\":\"ws_silent\",\"account\":\"f1\",\"duration_ms\":1500}", &sp, &field), 0);
    assert_true(sp.duration_ms == 1500);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    struct sfault_spec sp;
    const char *field;
    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{}", "kind"},
        {"{\"kind\":\"boom\"}", "kind"},
        {"{\"kind\":\"latency\"}", "ms"},
        {"{\"kind\":\"latency\",\"ms\":5,\"min_ms\":1,\"max_ms\":2}", "ms"},
        {"{\"kind\":\"latency\",\"min_ms\":10,\"max_ms\":5}", "max_ms"},
        {"{\"kind\":\"latency\",\"ms\":-1}", "ms"},
        {"{\"kind\":\"429\",\"ms\":5}", "ms"},
        {"{\"kind\":\"http_5xx\",\"status\":404}", "status"},
        {"{\"kind\":\"429\",\"status\":500}", "status"},
        {"{\"kind\":\"http_5xx\",\"count\":0}", "count"},
        {"{\"kind\":\"http_5xx\",\"probability\":1.5}", "probability"},
        {"{\"kind\":\"http_5xx\",\"after_place\":true}", "after_place"},
        {"{\"kind\":\"http_5xx\",\"endpoint\":\"POST fapi\"}", "endpoint"},
        {"{\"kind\":\"ws_drop\",\"endpoint\":\"POST /fapi/v1/order\"}", "endpoint"},
        {"{\"kind\":\"418\",\"account\":\"\"}", "account"},
        {"{\"kind\":\"503_unknown\",\"retry_after_s\":3}", "retry_after_s"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        field = NULL;
        assert_int_equal(parse(bad[i].json, &sp, &field), -EINVAL);
        assert_non_null(field);
        assert_string_equal(field, bad[i].field);
    }
    assert_int_equal(parse("{\"kind\":\"429\",\"typo\":1}", &sp, &field), -EINVAL);
}

static void test_match_account_endpoint_count(void **state)
{
    (void)state;
    struct sfault_table *t = sfault_new();
    struct sfault_http_hit h;
    const struct sfault *f = add(t, "{\"kind\":\"http_5xx\",\"account\":\"f1\",\"endpoint\":\"POST /fapi/v1/order\","
                                    "\"status\":502,\"count\":2}", 0);
    int64_t id = f->id;
    assert_false(sfault_match_http(t, "f2", "POST", "/fapi/v1/order", 1, &h));
    assert_false(sfault_match_http(t, NULL, "POST", "/fapi/v1/order", 1, &h));
    assert_false(sfault_match_http(t, "f1", "GET", "/fapi/v1/order", 1, &h));
    assert_false(sfault_match_http(t, "f1", "POST", "/fapi/v1/orders", 1, &h));
    assert_true(sfault_match_http(t, "f1", "POST", "/fapi/v1/order", 1, &h));
    assert_true(h.outcome && !h.latency);
    assert_int_equal(h.kind, SFAULT_HTTP_5XX);
    assert_int_equal(h.status, 502);
    assert_true(h.outcome_id == id);
    assert_true(sfault_match_http(t, "f1", "POST", "/fapi/v1/order", 1, &h));
    assert_false(sfault_match_http(t, "f1", "POST", "/fapi/v1/order", 1, &h)); /* count used up */
    f = sfault_by_id(t, id);
    assert_true(f->hits == 2 && f->remaining == 0);
    assert_false(sfault_active(f, 1));

    /* Wildcards: account * (also no account), prefix path. */
    add(t, "{\"kind\":\"429\",\"endpoint\":\"/v5/order/*\"}", 0);
    assert_true(sfault_match_http(t, NULL, "POST", "/v5/order/create", 1, &h));
    assert_int_equal(h.kind, SFAULT_429);
    assert_true(sfault_match_http(t, "f9", "GET", "/v5/order/realtime", 1, &h));
    assert_false(sfault_match_http(t, "f9", "GET", "/v5/position/list", 1, &h));
    sfault_free(t);
}

static void test_latency_combines_and_first_outcome_wins(void **state)
{
    (void)state;
    struct sfault_table *t = sfault_new();
    struct sfault_http_hit h;
    add(t, "{\"kind\":\"503_unknown\",\"account\":\"f1\"}", 0);
    add(t, "{\"kind\":\"latency\",\"ms\":300,\"after_place\":false}", 0);
    add(t, "{\"kind\":\"http_5xx\",\"account\":\"f1\"}", 0);
    add(t, "{\"kind\":\"latency\",\"ms\":900}", 0);
    assert_true(sfault_match_http(t, "f1", "POST", "/fapi/v1/order", 1, &h));
    assert_true(h.latency && h.outcome);
    assert_int_equal(h.kind, SFAULT_503_UNKNOWN);
    assert_int_equal(h.delay_ms, 300);
    assert_true(h.hold);
    /* Only the applied ones count. */
    assert_true(sfault_at(t, 0)->hits == 1);
    assert_true(sfault_at(t, 1)->hits == 1);
    assert_true(sfault_at(t, 2)->hits == 0);
    assert_true(sfault_at(t, 3)->hits == 0);
    /* Another account: only the latency. */
    assert_true(sfault_match_http(t, "f2", "GET", "/fapi/v1/time", 1, &h));
    assert_true(h.latency && !h.outcome);
    sfault_free(t);
}

static void test_latency_distributions(void **state)
{
    (void)state;
    struct sfault_table *t = sfault_new();
    struct sfault_http_hit h;
    add(t, "{\"kind\":\"latency\",\"min_ms\":100,\"max_ms\":200,\"endpoint\":\"/u\"}", 0);
    add(t, "{\"kind\":\"latency\",\"mean_ms\":50,\"sd_ms\":100,\"endpoint\":\"/n\"}", 0);
    int lo = 1000, hi = 0, zero = 0;
    for (int i = 0; i < 2000; i++) {
        assert_true(sfault_match_http(t, NULL, "GET", "/u", 1, &h));
        lo = h.delay_ms < lo ? h.delay_ms : lo;
        hi = h.delay_ms > hi ? h.delay_ms : hi;
        assert_true(sfault_match_http(t, NULL, "GET", "/n", 1, &h));
        assert_true(h.delay_ms >= 0);
        zero += h.delay_ms == 0;
    }
    assert_true(lo >= 100 && hi <= 200 && hi > lo);
    assert_true(zero > 0); /* mean 50, sd 100: clamped at 0 often */
    sfault_free(t);
}

static void test_probability_seeded(void **state)
{
    (void)state;
    int counts[2] = {0, 0};
    for (int run = 0; run < 2; run++) {
        struct sfault_table *t = sfault_new();
        struct sfault_http_hit h;
        const struct sfault *f = add(t, "{\"kind\":\"http_5xx\",\"probability\":0.25,\"seed\":7}", 0);
        for (int i = 0; i < 1000; i++)
            counts[run] += sfault_match_http(t, NULL, "GET", "/x", 1, &h);
        assert_true(f->hits == counts[run]);
        sfault_free(t);
    }
    assert_int_equal(counts[0], counts[1]); /* same seed, same sequence */
    assert_true(counts[0] > 150 && counts[0] < 350);
}

static void test_ws_events_and_expiry(void **state)
{
    (void)state;
    struct sfault_table *t = sfault_new();
    add(t, "{\"kind\":\"ws_duplicate\",\"account\":\"f1\",\"count\":2}", 1000);
    add(t, "{\"kind\":\"ws_reorder\",\"duration_ms\":500}", 1000);
    struct sfault_http_hit h;
    assert_false(sfault_match_http(t, "f1", "GET", "/x", 1000, &h)); /* stream kinds never hit HTTP */
    assert_int_equal(sfault_match_ws_event(t, "f1", 1100), SFAULT_WS_DUP | SFAULT_WS_HOLD);
    assert_int_equal(sfault_match_ws_event(t, "f2", 1100), SFAULT_WS_HOLD);
    assert_int_equal(sfault_match_ws_event(t, "f1", 1499), SFAULT_WS_DUP | SFAULT_WS_HOLD);
    assert_int_equal(sfault_match_ws_event(t, "f1", 1500), 0u); /* dup used up, reorder expired */
    assert_true(sfault_at(t, 0)->hits == 2);
    assert_true(sfault_at(t, 1)->hits == 3);
    sfault_free(t);
}

static void test_note_finish_clear_list(void **state)
{
    (void)state;
    struct sfault_table *t = sfault_new();
    const struct sfault *a = add(t, "{\"kind\":\"ws_drop\",\"account\":\"f1\"}", 5);
    int64_t ida = a->id;
    const struct sfault *b = add(t, "{\"kind\":\"latency\",\"ms\":10,\"endpoint\":\"GET /fapi/v1/time\",\"count\":4}", 6);
    int64_t idb = b->id;
    sfault_note(t, ida, 2);
    sfault_finish(t, ida);
    struct sbuf s = SBUF_INIT;
    sfault_list_json(t, 7, &s);
    json_error_t je;
    json_t *l = json_loads(s.p, 0, &je);
    assert_non_null(l);
    assert_int_equal(json_array_size(l), 2);
    json_t *j0 = json_array_get(l, 0), *j1 = json_array_get(l, 1);
    assert_string_equal(json_string_value(json_object_get(j0, "kind")), "ws_drop");
    assert_int_equal(json_integer_value(json_object_get(j0, "hits")), 2);
    assert_true(json_is_false(json_object_get(j0, "active")));
    assert_string_equal(json_string_value(json_object_get(j0, "endpoint")), "*");
    assert_string_equal(json_string_value(json_object_get(j1, "endpoint")), "GET /fapi/v1/time");
    assert_int_equal(json_integer_value(json_object_get(j1, "remaining")), 4);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j1, "spec"), "ms")), 10);
    json_decref(l);
    sbuf_free(&s);

    assert_int_equal(sfault_clear(t, 999), -ENOENT);
    assert_int_equal(sfault_clear(t, ida), 1);
    assert_null(sfault_by_id(t, ida));
    assert_non_null(sfault_by_id(t, idb));
    add(t, "{\"kind\":\"429\"}", 8);
    assert_int_equal(sfault_clear(t, -1), 2);
    assert_int_equal(sfault_count(t), 0);
    /* Ids are not reused. */
    assert_true(add(t, "{\"kind\":\"429\"}", 9)->id > idb + 1);
    sfault_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_match_account_endpoint_count),
        cmocka_unit_test(test_latency_combines_and_first_outcome_wins),
        cmocka_unit_test(test_latency_distributions),
        cmocka_unit_test(test_probability_seeded),
        cmocka_unit_test(test_ws_events_and_expiry),
        cmocka_unit_test(test_note_finish_clear_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
