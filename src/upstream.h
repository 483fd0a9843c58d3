/* upstream — connections to backends: non-blocking connect and a per-worker idle pool.
 *
 * Each worker owns one upstream_pool. A connection is either in use (owner set, events go to the
 * owner's handler) or idle in its backend's list (owner NULL). An idle connection stays registered
 * with the loop: any readability on it (the backend closed it, or sent stray bytes) closes it at
 * once, so a pooled connection that the backend dropped is never handed to a request. Idle ones are
 * also closed after upstreamIdleTimeout, and each backend keeps at most upstreamMaxIdle of them.
 * The most recently used connection is reused first (LIFO): it is the one least likely to have been
 * closed by the backend's own keep-alive timer.
 */
#ifndef GOLB_UPSTREAM_H
#define GOLB_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

struct upstream_pool;
struct upstream_conn;
struct tls_client;
typedef struct ssl_st SSL;

typedef void (*upstream_event_cb)(struct upstream_conn *conn, uint32_t events);

struct upstream_conn {
    struct loop_io io;
    struct loop_timer idle_timer;
    struct loop_task free_task;
    struct upstream_pool *pool;
    struct upstream_conn *prev, *next; /* idle list */
    void *owner;                       /* NULL while idle */
    upstream_event_cb on_event;        /* the owner's handler */
    int backend;
    uint32_t requests; /* exchanges completed on this connection */
    SSL *ssl;          /* https backends: the TLS session over the socket */
    bool readable, writable, rdhup, connected, closed;
    bool tls_done; /* handshake complete (or plain): the connection can carry requests */
};

struct upstream_stats {
    uint64_t connects;    /* new connections opened */
    uint64_t reuses;      /* requests sent on a pooled connection */
    uint64_t tls_resumed; /* TLS handshakes to backends that resumed a session */
};

struct upstream_pool *upstream_pool_new(struct loop *loop, int nbackends, uint32_t max_idle,
                                        uint32_t idle_timeout_ms);
/* Closes every idle connection and frees the pool (in-use ones must have been released). */
void upstream_pool_free(struct upstream_pool *pool);

/* An idle connection to backend, now owned by owner, or NULL when there is none. */
struct upstream_conn *upstream_take_idle(struct upstream_pool *pool, int backend, void *owner,
                                         upstream_event_cb cb);
/* Starts a connection to addr for backend. Returns NULL and sets *err (-errno) on failure. The
 * owner learns the outcome from its handler (EPOLLOUT: check upstream_connect_result()). */
struct upstream_conn *upstream_connect(struct upstream_pool *pool, int backend,
                                       const struct sockaddr *addr, socklen_t addrlen, void *owner,
                                       upstream_event_cb cb, int *err);
/* 0 when the connect completed, -errno when it failed. */
int upstream_connect_result(struct upstream_conn *conn);
/* For https backends, after the TCP connect: one step of the TLS handshake, resuming the last
 * session this worker got from the backend. Returns 1 when done, -EAGAIN to wait for readiness,
 * -EPROTO on failure with the reason in err (e.g. "certificate verify failed: ..."). */
int upstream_tls_step(struct upstream_conn *conn, struct tls_client *tc, char *err,
                      size_t errlen);
/* Gives a connection back: to the idle pool when reusable (and there is room), else closed. */
void upstream_release(struct upstream_conn *conn, bool reusable);

const struct upstream_stats *upstream_pool_stats(const struct upstream_pool *pool);
/* Idle connections currently pooled for a backend (tests, metrics). */
uint32_t upstream_idle_count(const struct upstream_pool *pool, int backend);

#endif
