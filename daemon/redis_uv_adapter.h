/* redis_uv_adapter: hiredis 0.14 async <-> libuv, our replacement for Debian's
 * <hiredis/adapters/libuv.h>. Same shape, two fixes (EVENT-LOOP.md section 3):
 *  - libuv reports POLLERR as status < 0 and stops the handle; the stock adapter returned
 *    silently, so a refused connect or a reset never reached hiredis (no connect/disconnect
 *    callback, pending replies stuck forever). We run hiredis' read/write handlers for the
 *    events we had asked for, so it reads the socket error and tears the context down.
 *  - uv_poll_init_socket, and the event struct is freed when init fails (stock one leaks). */
#ifndef CT_REDIS_UV_ADAPTER_H
#define CT_REDIS_UV_ADAPTER_H

#include <hiredis/async.h>
#include <uv.h>

/* Attach ac to loop. REDIS_OK, or REDIS_ERR (already attached, out of memory, uv_poll init
 * failed); on REDIS_ERR nothing is attached and the caller still owns and frees ac. The poll
 * handle is uv_close'd from hiredis' cleanup hook, so after redisAsyncFree the loop must run
 * once more before uv_loop_close. */
int rds_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
