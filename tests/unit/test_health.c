/* Unit tests for daemon/health: the readiness verdict and its JSON body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "health.h"

#define NOW 1800000000000LL /* 2027-01-15T08:00:00Z */

static json_t *verdict(const struct health_facts *f, int want_status) {
    char *body = NULL;
    size_t len = 0;
    json_error_t e;
    assert_int_equal(health_ready(f, &body, &len), want_status);
    assert_non_null(body);
    assert_int_equal(strlen(body), len);
    json_t *j = json_loads(body, 0, &e);
    assert_non_null(j);
    free(body);
    return j;
}

static const char *str(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_ready(void **state) {
    (void)state;
    struct health_stream s[] = {{"lead", true, NOW - 5000, NULL}, {"lead2", true, NOW - 1, NULL}};
    struct health_facts f = {.journal_connected = true, .journal_writable = true, .started = true, .streams = s, .n_streams = 2,
                             .now_ms = NOW};
    json_t *j = verdict(&f, 200);
    assert_string_equal(str(j, "status"), "ready");
    assert_string_equal(str(j, "journal"), "up");
    assert_int_equal(json_integer_value(json_object_get(j, "streams_up")), 2);
    assert_null(json_object_get(j, "problems"));
    json_decref(j);
}

static void test_stream_down(void **state) {
    (void)state;
    struct health_stream s[] = {{"lead", true, NOW - 5000, NULL},
                                {"le\"ad2", false, NOW - 61000, "connect failed: refused"}};
    struct health_facts f = {.journal_connected = true, .journal_writable = true, .started = true, .streams = s, .n_streams = 2,
                             .now_ms = NOW};
    json_t *j = verdict(&f, 503);
    assert_string_equal(str(j, "status"), "not_ready");
    json_t *p = json_object_get(j, "problems");
    assert_int_equal(json_array_size(p), 1);
    json_t *p0 = json_array_get(p, 0);
    assert_string_equal(str(p0, "check"), "stream");
    assert_string_equal(str(p0, "account"), "le\"ad2"); /* escaped in the text, intact after parsing */
    assert_non_null(strstr(str(p0, "detail"), "down since 2027-01-15T07:58:59Z (61 s)"));
    assert_non_null(strstr(str(p0, "detail"), "connect failed: refused"));
    json_decref(j);
}

static void test_never_up_and_startup(void **state) {
    (void)state;
    struct health_stream s[] = {{"lead", false, 0, NULL}};
    struct health_facts f = {.journal_connected = true, .journal_writable = true, .started = false, .streams = s, .n_streams = 1,
                             .now_ms = NOW};
    json_t *j = verdict(&f, 503);
    json_t *p = json_object_get(j, "problems");
    assert_int_equal(json_array_size(p), 2);
    assert_string_equal(str(json_array_get(p, 0), "check"), "stream");
    assert_string_equal(str(json_array_get(p, 0), "detail"), "never up");
    assert_string_equal(str(json_array_get(p, 1), "check"), "startup");
    assert_null(json_object_get(json_array_get(p, 1), "account"));
    json_decref(j);
}

static void test_startup_only(void **state) {
    (void)state;
    struct health_stream s[] = {{"lead", true, NOW, NULL}};
    struct health_facts f = {.journal_connected = true, .journal_writable = true, .started = false, .streams = s, .n_streams = 1,
                             .now_ms = NOW};
    json_t *j = verdict(&f, 503);
    json_t *p = json_object_get(j, "problems");
    assert_int_equal(json_array_size(p), 1);
    assert_string_equal(str(json_array_get(p, 0), "check"), "startup");
    assert_non_null(strstr(str(json_array_get(p, 0), "detail"), "instruments"));
    json_decref(j);
}

static void test_journal_down(void **state) {
    (void)state;
    struct health_stream s[] = {{"lead", true, NOW, NULL}};
    struct health_facts f = {.journal_connected = false, .journal_error = "server closed the connection",
                             .started = true, .streams = s, .n_streams = 1, .now_ms = NOW};
    json_t *j = verdict(&f, 503);
    assert_string_equal(str(j, "journal"), "down");
    json_t *p = json_object_get(j, "problems");
    assert_int_equal(json_array_size(p), 1);
    assert_string_equal(str(json_array_get(p, 0), "check"), "journal");
    assert_string_equal(str(json_array_get(p, 0), "detail"), "not connected: server closed the connection");
    json_decref(j);
}

/* PostgreSQL away, the spool takes the writes: still ready, and the body says so. */
static void test_journal_spooling(void **state) {
    (void)state;
    struct health_stream s[] = {{"lead", true, NOW, NULL}};
    struct health_facts f = {.journal_connected = false, .journal_spooling = true, .journal_writable = true,
                             .started = true, .streams = s, .n_streams = 1, .now_ms = NOW};
    json_t *j = verdict(&f, 200);
    assert_string_equal(str(j, "journal"), "spool");
    json_decref(j);
    /* ... and a spool that refuses writes (disk full) is not ready. */
    f.journal_writable = false;
    f.journal_error = "spool: disk full";
    j = verdict(&f, 503);
    assert_string_equal(str(j, "journal"), "down");
    assert_string_equal(str(json_array_get(json_object_get(j, "problems"), 0), "detail"),
                        "not connected and the spool refuses writes: spool: disk full");
    json_decref(j);
}

static void test_draining(void **state) {
    (void)state;
    struct health_facts f = {.journal_connected = true, .journal_writable = true, .started = true, .draining = true, .now_ms = NOW};
    json_t *j = verdict(&f, 503);
    assert_string_equal(str(json_array_get(json_object_get(j, "problems"), 0), "check"), "shutdown");
    json_decref(j);
}

static void test_bad_args(void **state) {
    (void)state;
    char *body = NULL;
    size_t len = 0;
    struct health_facts f = {.n_streams = 1};
    assert_int_equal(health_ready(NULL, &body, &len), -EINVAL);
    assert_int_equal(health_ready(&f, &body, &len), -EINVAL);
    f.n_streams = 0;
    assert_int_equal(health_ready(&f, NULL, &len), -EINVAL);
    assert_int_equal(health_ready(&f, &body, NULL), -EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready),          cmocka_unit_test(test_stream_down),
        cmocka_unit_test(test_never_up_and_startup), cmocka_unit_test(test_startup_only),
        cmocka_unit_test(test_journal_down),   cmocka_unit_test(test_journal_spooling),
        cmocka_unit_test(test_draining),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
