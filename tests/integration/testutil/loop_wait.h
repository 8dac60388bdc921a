/* loop_wait: drive a test's libuv loop until a condition holds, failing the test at a deadline.
 * The loop needs something that wakes it (a repeating tick timer) when the condition changes
 * outside it. */
#ifndef CT_LOOP_WAIT_H
#define CT_LOOP_WAIT_H

#include <stdint.h>
#include <uv.h>

/* The loop's clock, updated now, in ms. */
int64_t lw_now_ms(uv_loop_t *loop);
/* Keeps the loop running for ms (for "nothing bad happens meanwhile" checks). */
void lw_run_for(uv_loop_t *loop, int ms);

/* Runs loop until cond holds; fails the test (naming cond and the caller's line) after ms. */
#define LW_RUN_UNTIL(loop, cond, ms)                                                               \
    do {                                                                                           \
        int64_t end_ = lw_now_ms(loop) + (ms);                                                     \
        while (!(cond)) {                                                                          \
            if (lw_now_ms(loop) > end_)                                                            \
                fail_msg("%s:%d: timed out after %d ms waiting for %s", __FILE__, __LINE__,        \
                         (int)(ms), #cond);                                                        \
            uv_run((loop), UV_RUN_ONCE);                                                           \
        }                                                                                          \
    } while (0)

#endif
