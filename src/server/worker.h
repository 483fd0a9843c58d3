/* worker — one thread with its own loop, listener (SO_REUSEPORT), buffers and upstream pool.
 *
 * A connection lives and dies on the worker that accepted it. What workers share is read-only
 * (the configuration generation) or atomic (backend states, the balancer's counter, the
 * process-wide connection count).
 *
 * Reload: worker_update() queues a new generation and its listener changes for a worker; the
 * worker adopts every queued update in order between two events (its own thread), closes its
 * idle connections to removed backends, and acknowledges; worker_wait_updated() waits for every
 * worker's acknowledgement. The queue is what makes a second reload (or a drain) posted before a
 * busy worker took the first one safe: nothing is overwritten, each entry owns its generation
 * reference and listening sockets until it is adopted (or worker_destroy() releases it).
 * Requests pin the generation they start on (worker_ctx_pin/worker_ctx_unpin, generation.h).
 *
 *   control thread: worker_update(w, u2), worker_update(w, u3), worker_drain(w) ─┐ under post_lock
 *   w->updates: u2 ──► u3 ──► NULL, drain_posted ◄───────────────────────────────┘ + loop_wakeup
 *   worker loop (on_wakeup): takes the list, adopts u2 then u3 (u2's generation is let go at
 *   once unless requests pin it), then drains if asked
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

/* The listening sockets of a worker, by slot: the plain addresses (`listen`) in slots
 * [0, WORKER_TLS_SLOT), the HTTPS ones (`tls.listen`) from WORKER_TLS_SLOT on. A slot holds the
 * same address in every worker (server.c assigns them, and a reload keeps an unchanged address in
 * its slot). */
#define WORKER_TLS_SLOT 8
#define WORKER_MAX_LISTENERS (2 * WORKER_TLS_SLOT)
struct worker_listener {
    struct loop_io io;              /* io.fd == -1: not in use */
    struct loop_task accept_more;   /* the backlog was not drained in one batch */
    struct loop_timer accept_retry; /* out of descriptors: try the backlog again soon */
    struct worker *w;
    bool tls;
};

/* What a reload hands a worker: one entry of its queue, malloc'd by the publisher and the
 * worker's from worker_update() on (freed once adopted, or by worker_destroy() with what it
 * holds: its generation reference and its new listening sockets). */
#define WORKER_KEEP_FD (-2)
struct worker_update {
    struct worker_update *next;             /* the worker's queue (worker.c) */
    struct generation *gen;                 /* carries a reference for the worker */
    /* per slot: WORKER_KEEP_FD: unchanged; -1: close (if open); else a new socket, which replaces
     * what the slot held. Every slot must be set (0 is a descriptor). */
    int listen_fd[WORKER_MAX_LISTENERS];
    uint16_t https_port;                    /* the first tls.listen address's port (redirects);
                                               0 when there is none */
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
    /* Posted by other threads (worker_update, worker_drain), taken on the loop (post_lock). */
    pthread_mutex_t post_lock;
    struct worker_update *updates, **updates_tail; /* FIFO, adopted in order */
    bool drain_posted;
    _Atomic uint64_t adopted;     /* id of the generation it runs */
    struct loop_timer retire_timer; /* cuts what still runs on removed backends */
    struct loop_timer tick_timer;   /* once a second: worker_ctx_tick (pool bounds) */
};

/* Sets up worker w around its already-bound listening sockets: fds[WORKER_MAX_LISTENERS], by
 * slot (-1: none), https_port the port redirects name (the first tls.listen address's, 0: none),
 * running gen (w takes a reference). Returns 0 or -errno. */
int worker_init(struct worker *w, int id, const int *fds, uint16_t https_port,
                struct generation *gen);
int worker_start(struct worker *w);
/* Thread-safe: stop accepting, close idle connections, finish in-flight ones; the worker's thread
 * returns when it has no connection left. */
void worker_drain(struct worker *w);
/* Thread-safe: stop now. */
void worker_stop(struct worker *w);
/* Waits for the thread until deadline_ms (monotonic); returns 0 or -ETIMEDOUT. */
int worker_join(struct worker *w, uint64_t deadline_ms);
void worker_destroy(struct worker *w);

/* Thread-safe: queues u (malloc'd; w owns it and what it carries from now on) for w to adopt
 * after every update queued before it. Never blocks on the worker and never fails. */
void worker_update(struct worker *w, struct worker_update *u);
/* Waits until every started worker runs generation gen_id (or a newer one), or deadline_ms
 * (monotonic). Returns how many had not adopted it by then (0: all). One that has not keeps it
 * queued and adopts it when its loop next runs. */
int worker_wait_updated(struct worker *workers, int n, uint64_t gen_id, uint64_t deadline_ms);

#endif
