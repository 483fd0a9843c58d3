/* worker — one thread with its own loop, listener (SO_REUSEPORT), buffers and upstream pool.
 *
 * A connection lives and dies on the worker that accepted it. What workers share is read-only
 * (the configuration generation) or atomic (backend states, the balancer's counter, the
 * process-wide connection count).
 *
 * Reload: worker_update() hands a worker a new generation and its listener changes; the worker
 * adopts them between two events (its own thread), closes its idle connections to removed
 * backends, and acknowledges; worker_wait_updated() waits for every worker's acknowledgement.
 * Requests pin the generation they start on (worker_ctx_pin/worker_ctx_unpin, generation.h).
 *
 * The data path sees only the worker's ctx (core/worker_ctx.h): sessions register there, and the
 * worker drains, closes and cuts them through their ops without knowing their protocol; it learns
 * that a connection closed through ctx.on_conn_closed.
 */
#ifndef GOLB_WORKER_H
#define GOLB_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/loop.h"
#include "core/worker_ctx.h"

struct generation;

/* One listening socket of a worker: plain HTTP or the HTTPS listener. */
#define WORKER_MAX_LISTENERS 2
struct worker_listener {
    struct loop_io io;              /* io.fd == -1: not in use */
    struct loop_task accept_more;   /* the backlog was not drained in one batch */
    struct loop_timer accept_retry; /* out of descriptors: try the backlog again soon */
    struct worker *w;
    bool tls;
};

/* What a reload hands a worker. */
#define WORKER_KEEP_FD (-2)
struct worker_update {
    struct generation *gen;                 /* carries a reference for the worker */
    int listen_fd[WORKER_MAX_LISTENERS];    /* WORKER_KEEP_FD: unchanged; -1: close; else new */
};

/* The thread around a worker_ctx: what the data path uses is in ctx (loop, pools, generation,
 * counters, sessions); the rest is the worker's own. */
struct worker {
    struct worker_ctx ctx;
    struct worker_listener listeners[WORKER_MAX_LISTENERS];
    bool fd_starved;
    int spare_fd; /* kept open so an accept on EMFILE can still be answered by closing */
    pthread_t thread;
    bool started;
    struct worker_update update;  /* posted by worker_update(), taken on the loop */
    _Atomic uint64_t adopted;     /* id of the generation it runs */
    struct loop_timer retire_timer; /* cuts what still runs on removed backends */
};

/* Sets up worker w around its already-bound listening sockets: plain_fd and tls_fd (either may be
 * -1 when that listener is not configured), running gen (w takes a reference). Returns 0 or
 * -errno. */
int worker_init(struct worker *w, int id, int plain_fd, int tls_fd, struct generation *gen);
int worker_start(struct worker *w);
/* Thread-safe: stop accepting, close idle connections, finish in-flight ones; the worker's thread
 * returns when it has no connection left. */
void worker_drain(struct worker *w);
/* Thread-safe: stop now. */
void worker_stop(struct worker *w);
/* Waits for the thread until deadline_ms (monotonic); returns 0 or -ETIMEDOUT. */
int worker_join(struct worker *w, uint64_t deadline_ms);
void worker_destroy(struct worker *w);

/* Thread-safe: hands w a new generation and listener changes (u is copied). One at a time. */
void worker_update(struct worker *w, const struct worker_update *u);
/* Waits until every worker runs generation gen_id, or deadline_ms (monotonic). 0 or -ETIMEDOUT. */
int worker_wait_updated(struct worker *workers, int n, uint64_t gen_id, uint64_t deadline_ms);

#endif
