/* upstream — connections to backends: non-blocking connect and a per-worker idle pool.
 *
 * Each worker owns one upstream_pool, and has in every backend one `struct upstream_idle` (the
 * backend's slot for that worker, see backend.h): a connection is either in use (owner set, events
 * go to the owner's handler) or idle in that list (owner NULL). Only the worker touches its lists. An idle connection stays registered
 * with the loop: any readability on it (the backend closed it, or sent stray bytes) closes it at
 * once, so a pooled connection that the backend dropped is never handed to a request. Idle ones are
 * also closed after upstreamIdleTimeout, and each backend keeps at most upstreamMaxIdle of them.
 * The most recently used connection is reused first (LIFO): it is the one least likely to have been
 * closed by the backend's own keep-alive timer.
 */
#ifndef GOLB_UPSTREAM_H
#define GOLB_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/loop.h"

struct mcache;
struct upstream_pool;
struct upstream_conn;
struct h2up_conn;
struct tls_client;
typedef struct ssl_st SSL;

typedef void (*upstream_event_cb)(struct upstream_conn *conn, uint32_t events);
typedef struct ssl_session_st SSL_SESSION;

/* One worker's idle connections to one backend (embedded in the backend, see backend.h). */
struct upstream_idle {
    struct upstream_conn *head; /* most recently used first */
    _Atomic uint32_t count;     /* written by the owning worker only; scrapes read it */
    bool closed;                /* the backend was removed: connections given back are closed */
    SSL_SESSION *session;       /* https: the latest resumable session, or NULL */
    struct h2up_conn *h2;       /* protocol h2: this worker's HTTP/2 connections (h2up.c) */
    _Atomic uint32_t h2_conns, h2_streams; /* their count and open streams (metrics) */
};

/* The client address a connection's PROXY protocol header named (sendProxyProtocol): a pooled
 * connection carries it for good, so it is reused only for that client. family 0: no header. */
struct upstream_pp {
    uint8_t family; /* 0, AF_INET, AF_INET6 */
    uint8_t addr[16];
};

struct upstream_conn {
    struct loop_io io;
    struct loop_timer idle_timer;
    struct loop_task free_task;
    struct upstream_pool *pool;
    struct upstream_conn *prev, *next; /* idle list */
    void *owner;                       /* NULL while idle */
    upstream_event_cb on_event;        /* the owner's handler */
    struct upstream_idle *idle; /* the list it returns to */
    uint32_t requests; /* exchanges completed on this connection */
    SSL *ssl;          /* https backends: the TLS session over the socket */
    bool readable, writable, rdhup, connected, closed;
    bool tls_done; /* handshake complete (or plain): the connection can carry requests */
    bool pp_sent;  /* its PROXY header went (upstream_send_proxy_header) */
    bool alpn_h2;  /* TLS offers ALPN h2 alone (an HTTP/2 connection, h2up.c) */
    struct upstream_pp pp;
};

struct upstream_stats {
    uint64_t connects;    /* new connections opened */
    uint64_t reuses;      /* requests sent on a pooled connection */
    uint64_t tls_resumed; /* TLS handshakes to backends that resumed a session */
};

struct upstream_pool *upstream_pool_new(struct loop *loop, uint32_t max_idle,
                                        uint32_t idle_timeout_ms);
/* New limits (a reload): they apply to connections given back from now on. */
void upstream_pool_set_limits(struct upstream_pool *pool, uint32_t max_idle,
                              uint32_t idle_timeout_ms);
/* Frees the pool (every list must have been closed with upstream_close_idle). */
void upstream_pool_free(struct upstream_pool *pool);
/* Closes the idle connections of one list and forgets its TLS session. With `forever` (the
 * backend was removed) connections given back to it later are closed too. */
void upstream_close_idle(struct upstream_pool *pool, struct upstream_idle *idle, bool forever);

/* An idle connection from list idle, now owned by owner, or NULL when there is none. */
struct upstream_conn *upstream_take_idle(struct upstream_pool *pool, struct upstream_idle *idle,
                                         void *owner, upstream_event_cb cb);
/* The same for a connection whose PROXY header named `pp` (family 0: one without a header): the
 * most recently used idle connection that matches, or NULL. */
struct upstream_conn *upstream_take_idle_pp(struct upstream_pool *pool, struct upstream_idle *idle,
                                            void *owner, upstream_event_cb cb,
                                            const struct upstream_pp *pp);
/* Writes the PROXY header hdr[0..len) first on a freshly connected connection (before any TLS
 * byte) and records pp as what it carries. A new connection's send buffer is empty, so the header
 * goes whole or not at all: returns 0, or -errno (-EAGAIN counts as a failure). */
int upstream_send_proxy_header(struct upstream_conn *conn, const void *hdr, size_t len,
                               const struct upstream_pp *pp);
/* Starts a connection to addr; it returns to list idle when released. Returns NULL and sets *err
 * (-errno) on failure. The owner learns the outcome from its handler (EPOLLOUT: check
 * upstream_connect_result()). */
struct upstream_conn *upstream_connect(struct upstream_pool *pool, struct upstream_idle *idle,
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
/* The same with the room its backend's pool gives (upstreamMaxIdle of a routing pool) instead of
 * the worker-wide upstreamMaxIdle. */
void upstream_release_at_most(struct upstream_conn *conn, bool reusable, uint32_t max_idle);

const struct upstream_stats *upstream_pool_stats(const struct upstream_pool *pool);
/* The loop of the pool (h2up). */
struct loop *upstream_pool_loop(const struct upstream_pool *pool);
/* upstreamIdleTimeout as the pool has it now (h2up: an HTTP/2 connection without a stream). */
uint32_t upstream_pool_idle_timeout(const struct upstream_pool *pool);
/* The worker's small-block cache its HTTP/2 connections allocate from (NULL, the default: the
 * heap). Outlives the pool's connections. */
void upstream_pool_set_mcache(struct upstream_pool *pool, struct mcache *mc);
struct mcache *upstream_pool_mcache(const struct upstream_pool *pool);
/* Idle connections currently in a list (tests, metrics; any thread). */
static inline uint32_t upstream_idle_count(const struct upstream_idle *idle)
{
    return atomic_load_explicit(&idle->count, memory_order_relaxed);
}

#endif
