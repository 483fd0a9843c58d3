/* worker — one thread with its own loop, listener (SO_REUSEPORT), buffers and upstream pool.
 *
 * A connection lives and dies on the worker that accepted it. What workers share is read-only
 * (config) or atomic (backend states, the balancer's counter, the process-wide connection count).
 */
#ifndef GOLB_WORKER_H
#define GOLB_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "loop.h"
#include "pipes.h"

struct balancer;
struct backend_table;
struct config;
struct upstream_pool;
struct client;
struct exchange;
struct metrics_worker;
struct accesslog_ring;

/* One listening socket of a worker: plain HTTP or the HTTPS listener. */
#define WORKER_MAX_LISTENERS 2
struct worker_listener {
    struct loop_io io;              /* io.fd == -1: not in use */
    struct loop_task accept_more;   /* the backlog was not drained in one batch */
    struct loop_timer accept_retry; /* out of descriptors: try the backlog again soon */
    struct worker *w;
    bool tls;
};

/* Per-worker counters, summed on read (never a shared lock per request). */
struct worker_stats {
    uint64_t accepted;
    uint64_t requests;
    uint64_t rejected; /* connections closed at once: over maxConnections or out of fds */
};

struct worker {
    int id;
    struct loop *loop;
    const struct config *cfg;
    struct backend_table *backends;
    struct balancer *balancer;
    struct buf_pool bufs;
    struct pipe_pool pipes;
    struct upstream_pool *upstreams;
    struct worker_listener listeners[WORKER_MAX_LISTENERS];
    uint16_t https_port; /* the HTTPS listener's bound port (redirects), 0 when none */
    bool fd_starved;
    int spare_fd; /* kept open so an accept on EMFILE can still be answered by closing */
    pthread_t thread;
    bool started;
    bool draining;
    struct client *clients; /* every open client connection, for draining */
    struct exchange *free_exchanges; /* proxy's per-request state kept for reuse */
    uint32_t nfree_exchanges;
    uint32_t nclients;
    struct worker_stats stats;
    struct metrics_worker *m;     /* this worker's counters (metrics.h); NULL in unit tests */
    struct accesslog_ring *alog;  /* NULL when the access log is off */
    uint64_t reqid_seq;           /* generated X-Request-Id sequence */
};

/* Sets up worker w around its already-bound listening sockets: plain_fd and tls_fd (either may be
 * -1 when that listener is not configured). Returns 0 or -errno. */
int worker_init(struct worker *w, int id, int plain_fd, int tls_fd, const struct config *cfg,
                struct backend_table *backends, struct balancer *balancer);
int worker_start(struct worker *w);
/* Thread-safe: stop accepting, close idle connections, finish in-flight ones; the worker's thread
 * returns when it has no connection left. */
void worker_drain(struct worker *w);
/* Thread-safe: stop now. */
void worker_stop(struct worker *w);
/* Waits for the thread until deadline_ms (monotonic); returns 0 or -ETIMEDOUT. */
int worker_join(struct worker *w, uint64_t deadline_ms);
void worker_destroy(struct worker *w);

/* Called by proxy when a client connection is gone (for draining and maxConnections). */
void worker_client_closed(struct worker *w);

#endif
