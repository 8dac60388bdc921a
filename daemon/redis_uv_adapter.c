/* redis_uv_adapter: hiredis 0.14 async on libuv (see redis_uv_adapter.h for why it exists). */
#include "redis_uv_adapter.h"

#include <stdlib.h>

struct rds_uv_events {
    redisAsyncContext *ac; /* NULL once hiredis called cleanup: the context may be gone */
    uv_poll_t poll;
    int events; /* what hiredis asked for */
    int polled; /* what the poll handle is running with (0: stopped) */
};

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct rds_uv_events *p = handle->data;
    /* status < 0: POLLERR/POLLHUP, libuv already stopped the handle and passes no events.
     * hiredis must see the error through a read or write (or its connect check). If hiredis
     * finds nothing wrong it re-arms through addRead/addWrite, which restart the poll. */
    int ev = status < 0 ? p->events : events;
    if (status < 0) p->polled = 0;

    if (p->ac && (ev & UV_READABLE)) redisAsyncHandleRead(p->ac);
    /* the read may have freed the context: cleanup cleared p->ac */
    if (p->ac && (ev & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
}

/* Only when the events change: uv_poll_start on a running handle is an epoll_ctl DEL and an
 * ADD, and hiredis re-adds the read and the write interest for every command (five system calls
 * a command otherwise). polled, not events, says what runs: after an error status libuv has
 * stopped the handle while events still says armed, so the next add restarts it. */
static void update(struct rds_uv_events *p)
{
    if (p->events == p->polled) return;
    p->polled = p->events;
    if (p->events)
        uv_poll_start(&p->poll, p->events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *privdata)
{
    struct rds_uv_events *p = privdata;
    p->events |= UV_READABLE;
    update(p);
}

static void del_read(void *privdata)
{
    struct rds_uv_events *p = privdata;
    p->events &= ~UV_READABLE;
    update(p);
}

static void add_write(void *privdata)
{
    struct rds_uv_events *p = privdata;
    p->events |= UV_WRITABLE;
    update(p);
}

static void del_write(void *privdata)
{
    struct rds_uv_events *p = privdata;
    p->events &= ~UV_WRITABLE;
    update(p);
}

static void on_close(uv_handle_t *handle)
{
    free(handle->data);
}

static void cleanup(void *privdata)
{
    struct rds_uv_events *p = privdata;
    p->ac = NULL;
    /* uv_close stops the poll at once (before hiredis closes the fd), the memory goes in
     * on_close on the next loop iteration. */
    uv_close((uv_handle_t *)&p->poll, on_close);
}

int rds_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data) return REDIS_ERR;

    struct rds_uv_events *p = calloc(1, sizeof *p);
    if (!p) return REDIS_ERR;
    if (uv_poll_init_socket(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->poll.data = p;
    p->ac = ac;

    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = p;
    return REDIS_OK;
}
