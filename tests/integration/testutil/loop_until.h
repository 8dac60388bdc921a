/* loop_until: run a test's libuv loop until a counter of the test's reaches a value, under a
 * watchdog timer of its own: a hang fails the test at the deadline instead of blocking in uv_run
 * (loop_wait.h's LW_RUN_UNTIL needs the loop woken by something else for that). */
#ifndef CT_LOOP_UNTIL_H
#define CT_LOOP_UNTIL_H

#include <uv.h>

/* Runs loop until *done >= want (at once when it already is); fails the test, naming the
 * caller's line and the count reached, after ms. */
#define LU_RUN_UNTIL(loop, done, want, ms) lu_run_until((loop), (done), (want), (ms), __FILE__, __LINE__)

void lu_run_until(uv_loop_t *loop, const int *done, int want, unsigned ms, const char *file,
                  int line);

#endif
