/* loop — one epoll event loop per thread: fd readiness, timers, deferred tasks, cross-thread wakeup.
 *
 * Descriptors are registered once, edge-triggered, for both directions (EPOLLIN|EPOLLOUT|EPOLLRDHUP|
 * EPOLLET). The owner keeps "readable"/"writable" flags, clears them only when a read or write
 * returns EAGAIN, and simply does not read while it wants backpressure: no epoll_ctl per state change.
 *
 * Timers live in a binary min-heap. loop_timer_set() is O(1) when a deadline moves later (the common
 * case: each bit of progress extends a connection's deadline): the heap keeps the old, earlier key and
 * the timer is re-filed when that key comes due. Only moving a deadline earlier costs O(log n).
 *
 * One iteration: epoll_wait until the nearest deadline → I/O callbacks → deferred tasks (bounded
 * rounds) → due timers → deferred tasks again. Callbacks never free their object directly: they
 * queue a deferred task (house rule 8), so an event later in the same batch never sees freed memory.
 *
 *   loop_run() ─┬─ epoll_wait(timeout = nearest timer) ──► io->cb(io, events) for each ready fd
 *               ├─ run deferred tasks (LIFO list, bounded rounds) ─► e.g. free closed connections
 *               │  (with the tasks yielded before that epoll_wait: loop_yield)
 *               └─ fire due timers ─► timer->cb(timer)
 */
#ifndef GOLB_LOOP_H
#define GOLB_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one connection may move in one go (bytes, both directions together) before it yields
 * (loop_yield), so that one fast transfer cannot hold a worker while other connections wait. */
#define LOOP_IO_BUDGET (256u * 1024u)

struct loop;
struct loop_io;
struct loop_timer;
struct loop_task;

typedef void (*loop_io_cb)(struct loop_io *io, uint32_t events);
typedef void (*loop_timer_cb)(struct loop_timer *t);
typedef void (*loop_task_cb)(struct loop_task *task);

/* An fd watched by a loop. Embed it in the owning object; container_of() gets the owner back. */
struct loop_io {
    int fd;
    loop_io_cb cb; /* called with the epoll event mask (EPOLLIN, EPOLLOUT, EPOLLRDHUP, ...) */
};

/* An intrusive timer. Zero-initialise (or loop_timer_init) before first use. */
struct loop_timer {
    uint64_t deadline;  /* wanted expiry, ms on the loop clock; 0 = not armed */
    uint64_t heap_key;  /* the key it is filed under in the heap (<= deadline) */
    uint32_t heap_idx;  /* 1-based position in the heap, 0 = not in the heap */
    loop_timer_cb cb;
};

/* A deferred task: runs once, after the current batch of I/O callbacks. */
struct loop_task {
    struct loop_task *next;
    loop_task_cb cb;
    bool queued;
};

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Runs until loop_stop() is called (from the loop's thread or any other). Returns 0 or -errno. */
int loop_run(struct loop *loop);
/* Thread-safe: makes loop_run() return after the current iteration, or at once if it has not
 * started yet (a stop is never lost to a thread that is still starting). */
void loop_stop(struct loop *loop);
/* Thread-safe: wakes the loop and calls `cb(arg)` on the loop's thread in its next iteration.
 * Used by the main thread to ask workers to drain. At most one pending wakeup callback. */
void loop_wakeup(struct loop *loop, void (*cb)(void *arg), void *arg);

/* Cached monotonic time in ms, refreshed once per iteration (and by loop_update_time()). */
uint64_t loop_now(const struct loop *loop);
void loop_update_time(struct loop *loop);

/* Registers io->fd for IN|OUT|RDHUP, edge-triggered. Returns 0 or -errno. */
int loop_io_add(struct loop *loop, struct loop_io *io);
/* Unregisters (before close). Returns 0 or -errno. */
int loop_io_del(struct loop *loop, struct loop_io *io);

static inline void loop_timer_init(struct loop_timer *t, loop_timer_cb cb)
{
    t->deadline = 0;
    t->heap_key = 0;
    t->heap_idx = 0;
    t->cb = cb;
}
/* Arms (or re-arms) the timer to fire at loop_now() + ms. */
void loop_timer_after(struct loop *loop, struct loop_timer *t, uint64_t ms);
/* Arms at an absolute deadline on the loop clock. */
void loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t deadline);
void loop_timer_cancel(struct loop *loop, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t)
{
    return t->deadline != 0;
}
/* Number of timers filed in the heap (tests, metrics). */
size_t loop_timer_count(const struct loop *loop);

/* Queues a task to run after the current I/O batch; no-op if already queued. */
void loop_defer(struct loop *loop, struct loop_task *task, loop_task_cb cb);
/* Queues a task to run after the next epoll_wait and its I/O callbacks (which does not sleep
 * while a task waits): for work cut off at a budget, so that every other ready connection gets
 * its turn first (a deferred task would run again before any I/O). No-op if already queued
 * (either way). */
void loop_yield(struct loop *loop, struct loop_task *task, loop_task_cb cb);
/* Runs the queued deferred (and yielded) tasks now (teardown, outside loop_run). */
void loop_run_deferred(struct loop *loop);

#endif
