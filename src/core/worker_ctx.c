/* worker_ctx — see worker_ctx.h. */
#include "core/worker_ctx.h"

#include <stdlib.h>

#include "config/config.h"
#include "core/route.h"
#include "core/generation.h"

/* Ordinary buffers kept for reuse per worker beyond those in use (up to twice this after a
 * burst, buf.h): enough for a burst of exchanges without going back to mmap, small enough that
 * an idle golb stays small. */
#define MAX_FREE_BUFS 128
/* Idle pipes kept per worker. A transfer gives its pipe back when its reader stalls
 * (exchange.c splice_response), so idle pipes are what stalled transfers swap in and out when
 * they go on: keeping more would cost two descriptors each for nothing (a stalled slow reader is
 * meant to cost its two sockets). */
#define MAX_FREE_PIPES 16
/* Pipe capacity for splice: the default 64 KiB caps what one connection has in flight and cost
 * ~10 % of 1 MiB throughput in bench/ (scenario 4); 1 MiB is the usual pipe-max-size. Best effort:
 * a pipe the kernel refuses to grow keeps its default size. */
#define PIPE_SIZE (1u << 20)
void worker_ctx_pools_init(struct worker_ctx *w)
{
    buf_pool_init(&w->bufs, WORKER_CTX_BUF_SIZE, MAX_FREE_BUFS);
    mcache_init(&w->mc);
    w->bufs.small = &w->mc;
    pipe_pool_init(&w->pipes, MAX_FREE_PIPES, PIPE_SIZE);
}

void worker_ctx_tick(struct worker_ctx *w)
{
    buf_pool_tick(&w->bufs);
    mcache_tick(&w->mc);
}

void worker_ctx_pools_destroy(struct worker_ctx *w)
{
    buf_pool_destroy(&w->bufs);
    mcache_destroy(&w->mc);
    pipe_pool_destroy(&w->pipes);
    route_worker_free(w->routing);
    w->routing = NULL;
    free(w->path_buf);
    w->path_buf = NULL;
    w->path_cap = 0;
}

void worker_ctx_pin(struct worker_ctx *w, struct generation *g)
{
    generation_pin(g, w->id);
}

void worker_ctx_unpin(struct worker_ctx *w, struct generation *g)
{
    if (generation_unpin(g, w->id) && g != w->gen)
        generation_unref(g); /* its last request here, and no longer current here */
}

void worker_ctx_session_add(struct worker_ctx *w, struct worker_session *s,
                            const struct worker_session_ops *ops)
{
    s->ops = ops;
    s->prev = NULL;
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
}

void worker_ctx_session_remove(struct worker_ctx *w, struct worker_session *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

void worker_ctx_session_closed(struct worker_ctx *w)
{
    w->nclients--;
    if (w->on_conn_closed)
        w->on_conn_closed(w);
}

/* The walks below read `next` before the call: a session may leave the registry in its op (its
 * memory stays valid until the end of the loop iteration, house rule 8). */
void worker_ctx_drain_sessions(struct worker_ctx *w)
{
    struct worker_session *s = w->sessions;
    while (s) {
        struct worker_session *next = s->next;
        s->ops->drain(s);
        s = next;
    }
}

void worker_ctx_close_sessions(struct worker_ctx *w)
{
    while (w->sessions)
        w->sessions->ops->close(w->sessions);
}

int worker_ctx_cut_retired(struct worker_ctx *w)
{
    int n = 0;
    struct worker_session *s = w->sessions;
    while (s) {
        struct worker_session *next = s->next;
        n += s->ops->cut_retired(s);
        s = next;
    }
    return n;
}

void worker_ctx_listener_closed(struct worker_ctx *w, uint32_t listener)
{
    struct worker_session *s = w->sessions;
    while (s) {
        struct worker_session *next = s->next;
        if (listener && s->listener == listener && !s->listener_gone) {
            s->listener_gone = true;
            if (s->ops->listener_closed)
                s->ops->listener_closed(s);
        }
        s = next;
    }
}
