/* upstream — see upstream.h. */
#include "upstream/upstream.h"

#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/sock.h"
#include "net/tls.h"
#include "base/util.h"

struct upstream_pool {
    struct loop *loop;
    struct mcache *mc; /* the worker's (NULL: the heap) */
    uint32_t max_idle;
    uint32_t idle_timeout_ms;
    struct upstream_stats stats;
};

static void conn_free_task(struct loop_task *task)
{
    free(container_of(task, struct upstream_conn, free_task));
}

static void idle_unlink(struct upstream_conn *c)
{
    struct upstream_idle *l = c->idle;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    atomic_store_explicit(&l->count, atomic_load_explicit(&l->count, memory_order_relaxed) - 1,
                          memory_order_relaxed);
}

/* Closes the socket now; frees the struct after the current batch of events (house rule 8). */
static void conn_close(struct upstream_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    loop_timer_cancel(c->pool->loop, &c->idle_timer);
    tls_free(c->ssl, c->tls_done);
    c->ssl = NULL;
    close(c->io.fd);
    c->io.fd = -1;
    c->owner = NULL;
    loop_defer(c->pool->loop, &c->free_task, conn_free_task);
}

static void idle_close(struct upstream_conn *c)
{
    idle_unlink(c);
    conn_close(c);
}

static void on_idle_timeout(struct loop_timer *t)
{
    idle_close(container_of(t, struct upstream_conn, idle_timer));
}

static void on_io(struct loop_io *io, uint32_t events)
{
    struct upstream_conn *c = container_of(io, struct upstream_conn, io);
    if (c->closed)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rdhup = true; /* the backend's FIN is queued: read until EOF, not just until short */
    if (events & EPOLLOUT)
        c->writable = true;
    if (c->owner) {
        c->on_event(c, events);
        return;
    }
    /* Idle: the backend closed it or sent bytes nobody asked for. Either way it is unusable. */
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        idle_close(c);
}

struct upstream_pool *upstream_pool_new(struct loop *loop, uint32_t max_idle,
                                        uint32_t idle_timeout_ms)
{
    struct upstream_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->loop = loop;
    upstream_pool_set_limits(pool, max_idle, idle_timeout_ms);
    return pool;
}

void upstream_pool_set_limits(struct upstream_pool *pool, uint32_t max_idle,
                              uint32_t idle_timeout_ms)
{
    pool->max_idle = max_idle;
    pool->idle_timeout_ms = idle_timeout_ms;
}

void upstream_pool_free(struct upstream_pool *pool)
{
    free(pool);
}

void upstream_close_idle(struct upstream_pool *pool, struct upstream_idle *idle, bool forever)
{
    while (idle->head) {
        struct upstream_conn *c = idle->head;
        idle_unlink(c);
        loop_timer_cancel(pool->loop, &c->idle_timer);
        tls_free(c->ssl, false);
        c->ssl = NULL;
        close(c->io.fd); /* close() also leaves the epoll set */
        c->io.fd = -1;
        c->closed = true;
        if (!c->free_task.queued)
            loop_defer(pool->loop, &c->free_task, conn_free_task);
    }
    tls_session_free(idle->session);
    idle->session = NULL;
    if (forever)
        idle->closed = true;
}

/* An idle connection (or NULL) leaves its list for a new owner. */
static struct upstream_conn *take(struct upstream_pool *pool, struct upstream_conn *c, void *owner,
                                  upstream_event_cb cb)
{
    if (!c)
        return NULL;
    idle_unlink(c);
    loop_timer_cancel(pool->loop, &c->idle_timer);
    c->owner = owner;
    c->on_event = cb;
    pool->stats.reuses++;
    return c;
}

struct upstream_conn *upstream_take_idle(struct upstream_pool *pool, struct upstream_idle *idle,
                                         void *owner, upstream_event_cb cb)
{
    return take(pool, idle->head, owner, cb);
}

struct upstream_conn *upstream_take_idle_pp(struct upstream_pool *pool, struct upstream_idle *idle,
                                            void *owner, upstream_event_cb cb,
                                            const struct upstream_pp *pp)
{
    struct upstream_conn *c = idle->head;
    while (c && (c->pp.family != pp->family ||
                 (pp->family && memcmp(c->pp.addr, pp->addr, sizeof(pp->addr)) != 0)))
        c = c->next;
    return take(pool, c, owner, cb);
}

int upstream_send_proxy_header(struct upstream_conn *conn, const void *hdr, size_t len,
                               const struct upstream_pp *pp)
{
    ssize_t n;
    do
        n = send(conn->io.fd, hdr, len, MSG_NOSIGNAL);
    while (n == -1 && errno == EINTR);
    if (n == -1)
        return -errno;
    if ((size_t)n != len)
        return -EAGAIN;
    conn->pp_sent = true;
    conn->pp = *pp;
    return 0;
}

struct upstream_conn *upstream_connect(struct upstream_pool *pool, struct upstream_idle *idle,
                                       const struct sockaddr *addr, socklen_t addrlen, void *owner,
                                       upstream_event_cb cb, int *err)
{
    struct upstream_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        *err = -ENOMEM;
        return NULL;
    }
    int fd = sock_connect(addr, addrlen);
    if (fd < 0) {
        *err = fd;
        free(c);
        return NULL;
    }
    sock_nodelay(fd);
    c->io.fd = fd;
    c->io.cb = on_io;
    c->pool = pool;
    c->idle = idle;
    c->owner = owner;
    c->on_event = cb;
    c->tls_done = true; /* until upstream_tls_step() is needed */
    loop_timer_init(&c->idle_timer, on_idle_timeout);
    int rc = loop_io_add(pool->loop, &c->io);
    if (rc != 0) {
        close(fd);
        free(c);
        *err = rc;
        return NULL;
    }
    pool->stats.connects++;
    return c;
}

int upstream_connect_result(struct upstream_conn *conn)
{
    int rc = sock_error(conn->io.fd);
    if (rc == 0)
        conn->connected = true;
    return rc;
}

/* A backend sent a resumable session: keep the newest per backend for the next connection. */
static void keep_session(void *owner, SSL_SESSION *session)
{
    struct upstream_conn *c = owner;
    if (c->idle->closed) { /* the backend was removed: nothing will resume it */
        tls_session_free(session);
        return;
    }
    tls_session_free(c->idle->session);
    c->idle->session = session;
}

int upstream_tls_step(struct upstream_conn *c, struct tls_client *tc, char *err, size_t errlen)
{
    if (!c->ssl) {
        c->ssl = tls_client_ssl(tc, c->io.fd, c->idle->session);
        if (c->ssl && c->alpn_h2 && !tls_client_offer_h2(c->ssl)) {
            tls_free(c->ssl, false);
            c->ssl = NULL;
        }
        if (!c->ssl) {
            snprintf(err, errlen, "cannot set up TLS");
            return -EPROTO;
        }
        tls_client_set_session_owner(c->ssl, keep_session, c);
        c->tls_done = false;
    }
    bool want_write = false;
    int rc = tls_handshake(c->ssl, &want_write, err, errlen);
    if (rc == -EAGAIN) {
        if (want_write)
            c->writable = false;
        else
            c->readable = false;
        return -EAGAIN;
    }
    if (rc < 0)
        return -EPROTO;
    c->tls_done = true;
    /* The handshake may have read past its last message (read-ahead): the next read must try
     * OpenSSL's buffer whatever the last readiness event said. */
    c->readable = true;
    if (tls_session_reused(c->ssl))
        c->pool->stats.tls_resumed++;
    return 1;
}

/* True when nothing is waiting on the connection. The owner may have consumed the only edge for a
 * FIN or for stray bytes that arrived with the end of its response; with edge-triggered epoll no
 * new event would come once it is idle, so a dead connection would sit in the pool. When the owner
 * did not read until EAGAIN, one non-blocking peek settles it. */
static bool quiet(struct upstream_conn *c)
{
    if (c->rdhup || (c->ssl && tls_has_pending(c->ssl)))
        return false;
    if (!c->readable)
        return true;
    char byte;
    ssize_t n = recv(c->io.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->readable = false;
        return true;
    }
    return false; /* stray bytes, EOF or an error */
}

void upstream_release(struct upstream_conn *c, bool reusable)
{
    upstream_release_at_most(c, reusable, c->pool->max_idle);
}

void upstream_release_at_most(struct upstream_conn *c, bool reusable, uint32_t max_idle)
{
    struct upstream_pool *pool = c->pool;
    struct upstream_idle *l = c->idle;
    c->owner = NULL;
    c->on_event = NULL;
    if (!reusable || l->closed || !c->connected || !c->tls_done || l->count >= max_idle ||
        !quiet(c)) {
        conn_close(c);
        return;
    }
    c->requests++;
    c->next = l->head;
    c->prev = NULL;
    if (l->head)
        l->head->prev = c;
    l->head = c;
    atomic_store_explicit(&l->count, atomic_load_explicit(&l->count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    loop_timer_after(pool->loop, &c->idle_timer, pool->idle_timeout_ms);
}

void upstream_pool_set_mcache(struct upstream_pool *pool, struct mcache *mc)
{
    pool->mc = mc;
}

struct mcache *upstream_pool_mcache(const struct upstream_pool *pool)
{
    return pool ? pool->mc : NULL;
}

struct loop *upstream_pool_loop(const struct upstream_pool *pool)
{
    return pool->loop;
}

uint32_t upstream_pool_idle_timeout(const struct upstream_pool *pool)
{
    return pool->idle_timeout_ms;
}

const struct upstream_stats *upstream_pool_stats(const struct upstream_pool *pool)
{
    return &pool->stats;
}
