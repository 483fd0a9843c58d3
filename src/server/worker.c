/* worker — see worker.h. */
#include "server/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/accesslog.h"
#include "upstream/backend.h"
#include "config/config.h"
#include "core/obs.h"
#include "core/generation.h"
#include "base/log.h"
#include "core/exchange.h"
#include "server/proxy.h"
#include "upstream/upstream.h"
#include "upstream/h2up.h"
#include "base/util.h"

/* Client connections open in the whole process, against maxConnections. */
static atomic_uint open_connections;

static void close_listeners(struct worker *w)
{
    for (int i = 0; i < WORKER_MAX_LISTENERS; i++) {
        struct worker_listener *l = &w->listeners[i];
        if (l->io.fd >= 0) {
            close(l->io.fd); /* close() also removes it from the epoll set */
            l->io.fd = -1;
            loop_timer_cancel(w->ctx.loop, &l->accept_retry);
        }
    }
}

/* Accepts until the backlog is empty: the listener is edge-triggered, so stopping early means no
 * new event for what is already queued. Over maxConnections a connection is accepted and closed at
 * once. Out of file descriptors, the spare descriptor is given up to accept and close one; when
 * even that fails (another thread took the slot), accepting resumes from a timer instead of
 * waiting for an edge that may never come. So the loop never spins on a listener it cannot serve,
 * and never forgets one either. */
#define ACCEPT_BATCH 256
#define ACCEPT_RETRY_MS 100

static void accept_batch(struct worker_listener *l);

static void on_accept_more(struct loop_task *task)
{
    accept_batch(container_of(task, struct worker_listener, accept_more));
}

static void on_accept_retry(struct loop_timer *t)
{
    accept_batch(container_of(t, struct worker_listener, accept_retry));
}

static void out_of_fds(struct worker *w)
{
    if (!w->fd_starved) {
        w->fd_starved = true;
        log_warn("worker %d: out of file descriptors; refusing connections until some close",
                 w->ctx.id);
    }
}

static void accept_batch(struct worker_listener *l)
{
    struct worker *w = l->w;
    if (l->io.fd < 0)
        return;
    if (w->spare_fd < 0)
        w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(l->io.fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                out_of_fds(w);
                if (w->spare_fd >= 0) {
                    close(w->spare_fd);
                    fd = accept(l->io.fd, NULL, NULL);
                    if (fd >= 0) {
                        close(fd);
                        w->ctx.stats.rejected++;
                    }
                    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                    if (fd >= 0 && w->spare_fd >= 0)
                        continue;
                }
                loop_timer_after(w->ctx.loop, &l->accept_retry, ACCEPT_RETRY_MS);
                return;
            }
            if (w->fd_starved && errno == EAGAIN) {
                w->fd_starved = false;
                log_info("worker %d: accepting connections again", w->ctx.id);
            }
            return; /* EAGAIN: the backlog is empty */
        }
        unsigned n = atomic_fetch_add_explicit(&open_connections, 1, memory_order_relaxed);
        if (n >= w->ctx.cfg->max_connections) {
            atomic_fetch_sub_explicit(&open_connections, 1, memory_order_relaxed);
            close(fd);
            w->ctx.stats.rejected++;
            continue;
        }
        w->ctx.nclients++;
        w->ctx.stats.accepted++;
        counter_add(&w->ctx.m->conn_opened, 1);
        proxy_accept(&w->ctx, fd, (struct sockaddr *)&peer, len, l->tls, l->tag);
    }
    loop_defer(w->ctx.loop, &l->accept_more, on_accept_more); /* more may wait: after other work */
}

static void on_accept(struct loop_io *io, uint32_t events)
{
    accept_batch(container_of(io, struct worker_listener, io));
}

/* ctx.on_conn_closed: a client connection of this worker closed. Counts it (as on_accept counts
 * the opening), keeps the process-wide count for maxConnections and ends a drain. */
static void on_conn_closed(struct worker_ctx *ctx)
{
    if (ctx->m)
        counter_add(&ctx->m->conn_closed, 1);
    atomic_fetch_sub_explicit(&open_connections, 1, memory_order_relaxed);
    if (ctx->draining && ctx->nclients == 0)
        loop_stop(ctx->loop);
}

static void on_retire_timer(struct loop_timer *t);

#define TICK_MS 1000

static void on_tick_timer(struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, tick_timer);
    worker_ctx_tick(&w->ctx);
    loop_timer_after(w->ctx.loop, &w->tick_timer, TICK_MS);
}

int worker_init(struct worker *w, int id, const int *fds, uint16_t https_port,
                struct generation *gen)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->post_lock, NULL);
    w->updates_tail = &w->updates;
    w->ctx.id = id;
    w->ctx.on_conn_closed = on_conn_closed;
    generation_ref(gen);
    w->ctx.gen = gen;
    w->ctx.cfg = gen->cfg;
    const struct config *cfg = gen->cfg;
    atomic_init(&w->adopted, gen->id);
    loop_timer_init(&w->retire_timer, on_retire_timer);
    loop_timer_init(&w->tick_timer, on_tick_timer);
    w->ctx.https_port = https_port;
    for (int i = 0; i < WORKER_MAX_LISTENERS; i++) {
        struct worker_listener *l = &w->listeners[i];
        l->io.fd = fds ? fds[i] : -1;
        l->io.cb = on_accept;
        l->w = w;
        l->tls = i >= WORKER_TLS_SLOT;
        l->tag = ++w->listener_tags;
        loop_timer_init(&l->accept_retry, on_accept_retry);
    }
    w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    worker_ctx_pools_init(&w->ctx);
    w->ctx.loop = loop_new();
    if (!w->ctx.loop)
        return -ENOMEM;
    loop_timer_after(w->ctx.loop, &w->tick_timer, TICK_MS);
    w->ctx.upstreams =
        upstream_pool_new(w->ctx.loop, cfg->upstream_max_idle, cfg->upstream_idle_timeout_ms);
    if (!w->ctx.upstreams)
        return -ENOMEM;
    upstream_pool_set_mcache(w->ctx.upstreams, &w->ctx.mc);
    w->ctx.m = obs_counters_new(id);
    if (!w->ctx.m)
        return -ENOMEM;
    w->ctx.alog = accesslog_ring_new(); /* NULL when the access log is off */
    for (int i = 0; i < WORKER_MAX_LISTENERS; i++) {
        if (w->listeners[i].io.fd < 0)
            continue;
        int rc = loop_io_add(w->ctx.loop, &w->listeners[i].io);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int rc = loop_run(w->ctx.loop);
    if (rc != 0)
        log_error("worker %d: event loop failed: %s", w->ctx.id, strerror(-rc));
    return NULL;
}

int worker_start(struct worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0)
        return -rc;
    w->started = true;
    return 0;
}

static void drain_on_loop(struct worker *w)
{
    w->ctx.draining = true;
    close_listeners(w);
    worker_ctx_drain_sessions(&w->ctx);
    if (w->ctx.nclients == 0)
        loop_stop(w->ctx.loop);
}

static void on_wakeup(void *arg);

void worker_drain(struct worker *w)
{
    pthread_mutex_lock(&w->post_lock);
    w->drain_posted = true;
    pthread_mutex_unlock(&w->post_lock);
    loop_wakeup(w->ctx.loop, on_wakeup, w);
}

void worker_stop(struct worker *w)
{
    loop_stop(w->ctx.loop);
}

/* The CLOCK_REALTIME time (what pthread's timed waits take) of a monotonic deadline in ms. */
static struct timespec realtime_at(uint64_t deadline_ms)
{
    uint64_t now = util_now_ms();
    uint64_t wait = deadline_ms > now ? deadline_ms - now : 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(wait / 1000);
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int worker_join(struct worker *w, uint64_t deadline_ms)
{
    if (!w->started)
        return 0;
    if (deadline_ms == UINT64_MAX) {
        int rc = pthread_join(w->thread, NULL);
        w->started = false;
        return -rc;
    }
    for (;;) {
        struct timespec ts = realtime_at(deadline_ms);
        int rc = pthread_timedjoin_np(w->thread, NULL, &ts);
        if (rc == 0) {
            w->started = false;
            return 0;
        }
        if (rc == ETIMEDOUT)
            return -ETIMEDOUT;
        if (rc != EINTR)
            return -rc;
    }
}

void worker_destroy(struct worker *w)
{
    if (w->ctx.loop) {
        worker_ctx_close_sessions(&w->ctx);
        exchange_pool_free(&w->ctx);
        close_listeners(w);
        loop_timer_cancel(w->ctx.loop, &w->retire_timer);
        loop_timer_cancel(w->ctx.loop, &w->tick_timer);
        loop_run_deferred(w->ctx.loop); /* the frees that closing queued */
        obs_counters_free(w->ctx.m);
        w->ctx.m = NULL;
        struct generation *g = w->ctx.gen;
        for (int p = 0; g && w->ctx.upstreams && p < g->npools; p++) {
            const struct backend_table *t = g->pools[p].table;
            for (int i = 0; i < t->n; i++) {
                h2up_close_idle(&t->b[i]->pw[w->ctx.id].idle, true);
                upstream_close_idle(w->ctx.upstreams, &t->b[i]->pw[w->ctx.id].idle, true);
            }
        }
        loop_run_deferred(w->ctx.loop);
        upstream_pool_free(w->ctx.upstreams);
        w->ctx.upstreams = NULL;
        loop_free(w->ctx.loop);
        w->ctx.loop = NULL;
    }
    if (w->ctx.gen) {
        generation_unref(w->ctx.gen); /* no request is left to pin it */
        w->ctx.gen = NULL;
        w->ctx.cfg = NULL;
    }
    /* Updates never adopted (the loop stopped first): what they carry is released unused. */
    for (struct worker_update *u = w->updates, *next; u; u = next) {
        next = u->next;
        for (int i = 0; i < WORKER_MAX_LISTENERS; i++)
            if (u->listen_fd[i] >= 0)
                close(u->listen_fd[i]);
        generation_unref(u->gen);
        free(u);
    }
    w->updates = NULL;
    w->updates_tail = &w->updates;
    if (w->spare_fd >= 0)
        close(w->spare_fd);
    w->spare_fd = -1;
    worker_ctx_pools_destroy(&w->ctx);
    pthread_mutex_destroy(&w->post_lock);
}

/* ---------------------------------------------------------------- reload -------------------- */

/* Acknowledgements of updates: reloads only, never a request. */
static pthread_mutex_t update_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t update_cond = PTHREAD_COND_INITIALIZER;

/* Requests still running on removed backends after shutdownTimeout are cut, like at shutdown. */
static void on_retire_timer(struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, retire_timer);
    int n = worker_ctx_cut_retired(&w->ctx);
    if (n > 0)
        log_warn("worker %d: %d request(s) on removed backends cut after shutdownTimeout",
                 w->ctx.id, n);
}

static void replace_listener(struct worker *w, int i, int fd)
{
    struct worker_listener *l = &w->listeners[i];
    if (fd == WORKER_KEEP_FD)
        return;
    if (l->io.fd >= 0) {
        loop_timer_cancel(w->ctx.loop, &l->accept_retry);
        close(l->io.fd); /* also leaves the epoll set; connections already accepted stay */
        l->io.fd = -1;
        /* ... and learn it: HTTP/2 ones send GOAWAY and finish their streams */
        worker_ctx_listener_closed(&w->ctx, l->tag);
    }
    l->tag = ++w->listener_tags;
    if (fd < 0 || w->ctx.draining) {
        if (fd >= 0)
            close(fd);
        return;
    }
    l->io.fd = fd;
    int rc = loop_io_add(w->ctx.loop, &l->io);
    if (rc != 0) {
        log_error("worker %d: cannot watch a new listener: %s", w->ctx.id, strerror(-rc));
        close(fd);
        l->io.fd = -1;
        return;
    }
    accept_batch(l); /* connections may already wait: the edge came before we watched */
}

/* Adopts one update (on the loop, in queue order): what the old generation lists and the new one
 * does not is settled first (old may be freed by generation_adopt), then the generation is
 * switched, and only then the listeners, so that a connection accepted on a new listener (a TLS
 * one added by this reload) already meets the generation that configured it. */
static void adopt(struct worker *w, struct worker_update *u)
{
    struct generation *old = w->ctx.gen, *g = u->gen;
    /* Backends the new generation dropped: their idle connections close now; connections in
     * use close when given back; requests still on them are cut after shutdownTimeout. */
    bool removed = false;
    for (int p = 0; p < old->npools; p++) {
        const struct backend_table *t = old->pools[p].table;
        for (int i = 0; i < t->n; i++) {
            struct backend *b = t->b[i];
            if (!generation_has_backend(g, b)) {
                h2up_close_idle(&b->pw[w->ctx.id].idle, true);
                upstream_close_idle(w->ctx.upstreams, &b->pw[w->ctx.id].idle, true);
                removed = true;
            }
        }
    }
    if (removed)
        loop_timer_after(w->ctx.loop, &w->retire_timer, g->cfg->shutdown_timeout_ms);
    generation_adopt(&w->ctx.gen, g, w->ctx.id); /* takes over u's reference */
    u->gen = NULL;
    w->ctx.cfg = g->cfg;
    upstream_pool_set_limits(w->ctx.upstreams, g->cfg->upstream_max_idle,
                             g->cfg->upstream_idle_timeout_ms);
    if (!w->ctx.alog && g->cfg->access_log != ACCESSLOG_OFF)
        w->ctx.alog = accesslog_ring_new(); /* the access log was turned on by this reload */
    w->ctx.https_port = w->ctx.draining ? 0 : u->https_port; /* before any accept: redirects */
    for (int i = 0; i < WORKER_MAX_LISTENERS; i++) {
        replace_listener(w, i, u->listen_fd[i]);
        u->listen_fd[i] = WORKER_KEEP_FD;
    }
    pthread_mutex_lock(&update_lock);
    atomic_store_explicit(&w->adopted, g->id, memory_order_release);
    pthread_cond_broadcast(&update_cond);
    pthread_mutex_unlock(&update_lock);
}

/* The loop's one wake-up callback for everything posted to the worker: every queued update in
 * order, then the drain if one was asked. A wake-up that finds nothing (already taken by an
 * earlier one) does nothing. */
static void on_wakeup(void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->post_lock);
    struct worker_update *u = w->updates;
    w->updates = NULL;
    w->updates_tail = &w->updates;
    bool drain = w->drain_posted;
    w->drain_posted = false;
    pthread_mutex_unlock(&w->post_lock);
    while (u) {
        struct worker_update *next = u->next;
        adopt(w, u);
        free(u);
        u = next;
    }
    if (drain)
        drain_on_loop(w);
}

void worker_update(struct worker *w, struct worker_update *u)
{
    u->next = NULL;
    pthread_mutex_lock(&w->post_lock);
    *w->updates_tail = u;
    w->updates_tail = &u->next;
    pthread_mutex_unlock(&w->post_lock);
    /* Always the same callback and argument: a wake-up that replaces a pending one loses
     * nothing, the queue holds what was posted. */
    loop_wakeup(w->ctx.loop, on_wakeup, w);
}

int worker_wait_updated(struct worker *workers, int n, uint64_t gen_id, uint64_t deadline_ms)
{
    pthread_mutex_lock(&update_lock);
    int behind;
    for (;;) {
        behind = 0;
        for (int i = 0; i < n; i++)
            if (workers[i].started &&
                atomic_load_explicit(&workers[i].adopted, memory_order_acquire) < gen_id)
                behind++;
        if (behind == 0 || util_now_ms() >= deadline_ms)
            break;
        struct timespec ts = realtime_at(deadline_ms);
        pthread_cond_timedwait(&update_cond, &update_lock, &ts);
    }
    pthread_mutex_unlock(&update_lock);
    return behind;
}
