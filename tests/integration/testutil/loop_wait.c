#include "loop_wait.h"

int64_t lw_now_ms(uv_loop_t *loop) {
    uv_update_time(loop);
    return (int64_t)uv_now(loop);
}

void lw_run_for(uv_loop_t *loop, int ms) {
    int64_t end = lw_now_ms(loop) + ms;
    while (lw_now_ms(loop) < end) uv_run(loop, UV_RUN_ONCE);
}
