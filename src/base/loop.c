/* loop — see loop.h for the contract. */
#include "base/loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define LOOP_MAX_EVENTS 256
/* Deferred tasks may queue more tasks; bound the rounds so a task that re-queues itself cannot
 * starve I/O (h2o and libuv do the same). */
#define LOOP_MAX_DEFER_ROUNDS 16
/* Timers fired per iteration, for the same reason. */
#define LOOP_MAX_TIMERS_PER_ITER 4096

struct loop {
    int epfd;
    atomic_bool stopping;
    uint64_t now;

    /* Binary min-heap of timers ordered by heap_key, 1-based: heap[1] is the earliest. */
    struct loop_timer **heap;
    size_t heap_len;
    size_t heap_cap;

    struct loop_task *deferred; /* LIFO; order among deferred tasks carries no meaning */
    struct loop_task *yielded;  /* loop_yield: run after the next epoll_wait, not before */

    /* Cross-thread wakeup: an eventfd registered like any other fd. */
    struct loop_io wake_io;
    _Atomic(void (*)(void *)) wake_cb;
    _Atomic(void *) wake_arg;
};

static void wake_handler(struct loop_io *io, uint32_t events)
{
    struct loop *loop = container_of(io, struct loop, wake_io);
    uint64_t v;
    while (read(io->fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        ;
    void (*cb)(void *) = atomic_exchange(&loop->wake_cb, NULL);
    if (cb)
        cb(atomic_load(&loop->wake_arg));
}

struct loop *loop_new(void)
{
    struct loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd == -1)
        goto fail;
    loop->wake_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_io.fd == -1)
        goto fail;
    loop->wake_io.cb = wake_handler;
    if (loop_io_add(loop, &loop->wake_io) != 0)
        goto fail;
    loop->heap_cap = 64;
    loop->heap = malloc(loop->heap_cap * sizeof(*loop->heap));
    if (!loop->heap)
        goto fail;
    loop->now = util_now_ms();
    return loop;
fail:
    loop_free(loop);
    return NULL;
}

void loop_free(struct loop *loop)
{
    if (!loop)
        return;
    if (loop->wake_io.fd > 0)
        close(loop->wake_io.fd);
    if (loop->epfd > 0)
        close(loop->epfd);
    free(loop->heap);
    free(loop);
}

uint64_t loop_now(const struct loop *loop)
{
    return loop->now;
}

void loop_update_time(struct loop *loop)
{
    loop->now = util_now_ms();
}

void loop_stop(struct loop *loop)
{
    atomic_store(&loop->stopping, true);
    uint64_t one = 1;
    ssize_t w = write(loop->wake_io.fd, &one, sizeof(one));
    (void)w;
}

void loop_wakeup(struct loop *loop, void (*cb)(void *arg), void *arg)
{
    atomic_store(&loop->wake_arg, arg);
    atomic_store(&loop->wake_cb, cb);
    uint64_t one = 1;
    ssize_t w = write(loop->wake_io.fd, &one, sizeof(one));
    (void)w;
}

int loop_io_add(struct loop *loop, struct loop_io *io)
{
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.ptr = io,
    };
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) == -1)
        return -errno;
    return 0;
}

int loop_io_del(struct loop *loop, struct loop_io *io)
{
    if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) == -1)
        return -errno;
    return 0;
}

/* ---- timers: binary min-heap on heap_key ---- */

static void heap_place(struct loop *loop, size_t i, struct loop_timer *t)
{
    loop->heap[i] = t;
    t->heap_idx = (uint32_t)i;
}

static void heap_up(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    while (i > 1) {
        size_t parent = i / 2;
        if (loop->heap[parent]->heap_key <= t->heap_key)
            break;
        heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_place(loop, i, t);
}

static void heap_down(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    for (;;) {
        size_t child = i * 2;
        if (child > loop->heap_len)
            break;
        if (child < loop->heap_len && loop->heap[child + 1]->heap_key < loop->heap[child]->heap_key)
            child++;
        if (t->heap_key <= loop->heap[child]->heap_key)
            break;
        heap_place(loop, i, loop->heap[child]);
        i = child;
    }
    heap_place(loop, i, t);
}

static void heap_remove(struct loop *loop, struct loop_timer *t)
{
    size_t i = t->heap_idx;
    struct loop_timer *last = loop->heap[loop->heap_len--];
    t->heap_idx = 0;
    if (last == t)
        return;
    heap_place(loop, i, last);
    if (i > 1 && last->heap_key < loop->heap[i / 2]->heap_key)
        heap_up(loop, i);
    else
        heap_down(loop, i);
}

static int heap_insert(struct loop *loop, struct loop_timer *t)
{
    if (loop->heap_len + 1 >= loop->heap_cap) {
        size_t cap = loop->heap_cap * 2;
        struct loop_timer **h = realloc(loop->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->heap_key = t->deadline;
    loop->heap_len++;
    heap_place(loop, loop->heap_len, t);
    heap_up(loop, loop->heap_len);
    return 0;
}

void loop_timer_set(struct loop *loop, struct loop_timer *t, uint64_t deadline)
{
    if (deadline == 0)
        deadline = 1; /* 0 means "not armed" */
    if (t->heap_idx) {
        if (deadline >= t->heap_key) {
            /* Later (or equal): keep the earlier key; re-filed when it comes due. O(1). */
            t->deadline = deadline;
            return;
        }
        t->deadline = deadline;
        t->heap_key = deadline;
        heap_up(loop, t->heap_idx);
        return;
    }
    t->deadline = deadline;
    if (heap_insert(loop, t) != 0) {
        /* Out of memory for the heap: fail loudly rather than lose a deadline silently. */
        log_error("loop: cannot grow the timer heap");
        abort();
    }
}

void loop_timer_after(struct loop *loop, struct loop_timer *t, uint64_t ms)
{
    loop_timer_set(loop, t, loop->now + ms);
}

void loop_timer_cancel(struct loop *loop, struct loop_timer *t)
{
    if (t->heap_idx)
        heap_remove(loop, t);
    t->deadline = 0;
}

size_t loop_timer_count(const struct loop *loop)
{
    return loop->heap_len;
}

/* Fires due timers. A timer whose deadline moved later since it was filed is re-filed instead. */
static void run_timers(struct loop *loop)
{
    for (int fired = 0; loop->heap_len > 0 && fired < LOOP_MAX_TIMERS_PER_ITER; fired++) {
        struct loop_timer *t = loop->heap[1];
        if (t->heap_key > loop->now)
            break;
        heap_remove(loop, t);
        if (t->deadline > loop->now) {
            heap_insert(loop, t); /* cannot fail: we just freed a slot */
            continue;
        }
        t->deadline = 0;
        t->cb(t);
    }
}

/* Milliseconds until the earliest filed key, -1 if none. */
static int next_timeout(const struct loop *loop)
{
    if (loop->heap_len == 0)
        return -1;
    uint64_t key = loop->heap[1]->heap_key;
    if (key <= loop->now)
        return 0;
    uint64_t d = key - loop->now;
    return d > INT32_MAX ? INT32_MAX : (int)d;
}

/* ---- deferred tasks ---- */

void loop_defer(struct loop *loop, struct loop_task *task, loop_task_cb cb)
{
    if (task->queued)
        return;
    task->queued = true;
    task->cb = cb;
    task->next = loop->deferred;
    loop->deferred = task;
}

void loop_yield(struct loop *loop, struct loop_task *task, loop_task_cb cb)
{
    if (task->queued)
        return;
    task->queued = true;
    task->cb = cb;
    task->next = loop->yielded;
    loop->yielded = task;
}

/* The yielded tasks join the deferred ones: after the I/O of an epoll_wait that did not sleep. */
__attribute__((noinline)) static void adopt_yielded(struct loop *loop)
{
    while (loop->yielded) {
        struct loop_task *task = loop->yielded;
        loop->yielded = task->next;
        task->next = loop->deferred;
        loop->deferred = task;
    }
}

static void run_deferred(struct loop *loop)
{
    for (int round = 0; loop->deferred && round < LOOP_MAX_DEFER_ROUNDS; round++) {
        struct loop_task *list = loop->deferred;
        loop->deferred = NULL;
        while (list) {
            struct loop_task *task = list;
            list = task->next;
            task->queued = false;
            task->next = NULL;
            task->cb(task);
        }
    }
}

void loop_run_deferred(struct loop *loop)
{
    adopt_yielded(loop);
    run_deferred(loop);
}

int loop_run(struct loop *loop)
{
    struct epoll_event events[LOOP_MAX_EVENTS];
    /* A stop requested before this call ends this run at once; the flag is cleared on the way
     * out so the loop can run again (the health checker runs its first round, then its thread). */
    while (!atomic_load_explicit(&loop->stopping, memory_order_relaxed)) {
        int timeout = loop->deferred || loop->yielded ? 0 : next_timeout(loop);
        int n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, timeout);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        loop->now = util_now_ms();
        for (int i = 0; i < n; i++) {
            struct loop_io *io = events[i].data.ptr;
            io->cb(io, events[i].events);
        }
        if (loop->yielded)
            adopt_yielded(loop);
        run_deferred(loop);
        run_timers(loop);
        run_deferred(loop);
    }
    atomic_store(&loop->stopping, false);
    return 0;
}
