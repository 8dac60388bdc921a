#include "loop_until.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

struct watchdog {
    uv_timer_t t;
    bool expired;
    bool closed;
};

static void on_expired(uv_timer_t *t) {
    ((struct watchdog *)t->data)->expired = true;
}

static void on_closed(uv_handle_t *h) {
    ((struct watchdog *)h->data)->closed = true;
}

void lu_run_until(uv_loop_t *loop, const int *done, int want, unsigned ms, const char *file,
                  int line) {
    if (*done >= want) return;
    struct watchdog wd = {.expired = false};
    assert_int_equal(uv_timer_init(loop, &wd.t), 0);
    wd.t.data = &wd;
    assert_int_equal(uv_timer_start(&wd.t, on_expired, ms, 0), 0);
    while (*done < want && !wd.expired) uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wd.t, on_closed);
    /* The timer lives on this stack frame: it must be off the loop before we return (a uv_stop
     * from a callback makes one uv_run return before it closes anything). */
    while (!wd.closed) uv_run(loop, UV_RUN_NOWAIT);
    if (*done < want)
        fail_msg("%s:%d: only %d of %d done within %u ms", file, line, *done, want, ms);
}
