/* upstream — see upstream.h. */
#include "upstream.h"

#include <errno.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sock.h"
#include "tls.h"
#include "util.h"

struct idle_list {
    struct upstream_conn *head; /* most recently used first */
    _Atomic uint32_t count;     /* written by the owning worker only; scrapes read it */
};

struct upstream_pool {
    struct loop *loop;
    int nbackends;
    uint32_t max_idle;
    uint32_t idle_timeout_ms;
    struct upstream_stats stats;
    SSL_SESSION **sessions; /* per backend: the latest resumable TLS session, or NULL */
    struct idle_list idle[];
};

static void conn_free_task(struct loop_task *task)
{
    free(container_of(task, struct upstream_conn, free_task));
}

static void idle_unlink(struct upstream_pool *pool, struct upstream_conn *c)
{
    struct idle_list *l = &pool->idle[c->backend];
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
    idle_unlink(c->pool, c);
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

struct upstream_pool *upstream_pool_new(struct loop *loop, int nbackends, uint32_t max_idle,
                                        uint32_t idle_timeout_ms)
{
    struct upstream_pool *pool =
        calloc(1, sizeof(*pool) + (size_t)nbackends * sizeof(struct idle_list));
    if (!pool)
        return NULL;
    pool->loop = loop;
    pool->nbackends = nbackends;
    pool->max_idle = max_idle;
    pool->idle_timeout_ms = idle_timeout_ms;
    pool->sessions = calloc((size_t)(nbackends ? nbackends : 1), sizeof(*pool->sessions));
    if (!pool->sessions) {
        free(pool);
        return NULL;
    }
    return pool;
}

void upstream_pool_free(struct upstream_pool *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < pool->nbackends; i++) {
        while (pool->idle[i].head) {
            struct upstream_conn *c = pool->idle[i].head;
            idle_unlink(pool, c);
            loop_timer_cancel(pool->loop, &c->idle_timer);
            tls_free(c->ssl, false);
            close(c->io.fd);
            if (!c->free_task.queued)
                free(c);
        }
        tls_session_free(pool->sessions[i]);
    }
    free(pool->sessions);
    free(pool);
}

struct upstream_conn *upstream_take_idle(struct upstream_pool *pool, int backend, void *owner,
                                         upstream_event_cb cb)
{
    struct upstream_conn *c = pool->idle[backend].head;
    if (!c)
        return NULL;
    idle_unlink(pool, c);
    loop_timer_cancel(pool->loop, &c->idle_timer);
    c->owner = owner;
    c->on_event = cb;
    pool->stats.reuses++;
    return c;
}

struct upstream_conn *upstream_connect(struct upstream_pool *pool, int backend,
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
    c->backend = backend;
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
    SSL_SESSION **slot = &c->pool->sessions[c->backend];
    tls_session_free(*slot);
    *slot = session;
}

int upstream_tls_step(struct upstream_conn *c, struct tls_client *tc, char *err, size_t errlen)
{
    if (!c->ssl) {
        c->ssl = tls_client_ssl(tc, c->io.fd, c->pool->sessions[c->backend]);
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
    struct upstream_pool *pool = c->pool;
    struct idle_list *l = &pool->idle[c->backend];
    c->owner = NULL;
    c->on_event = NULL;
    if (!reusable || !c->connected || !c->tls_done || l->count >= pool->max_idle || !quiet(c)) {
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

const struct upstream_stats *upstream_pool_stats(const struct upstream_pool *pool)
{
    return &pool->stats;
}

uint32_t upstream_idle_count(const struct upstream_pool *pool, int backend)
{
    return atomic_load_explicit(&pool->idle[backend].count, memory_order_relaxed);
}
