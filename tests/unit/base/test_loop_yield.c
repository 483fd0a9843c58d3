/* Unit tests for loop_yield: a task cut off at a budget runs again only after the I/O of the next
 * epoll_wait, where a deferred task (loop_defer) would run its bounded rounds first. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/util.h"

struct worker {
    struct loop_task task;
    struct loop_io io;
    struct loop *loop;
    int wfd;       /* the pipe's write end: the first run makes the read end ready */
    int runs;      /* times the task ran */
    int io_at;     /* runs when the fd's event came (-1: not yet) */
    bool yield;    /* re-queue with loop_yield (else loop_defer) */
};

static void on_task(struct loop_task *t)
{
    struct worker *w = container_of(t, struct worker, task);
    if (++w->runs == 1)
        cr_assert_eq(write(w->wfd, "x", 1), 1); /* another connection becomes ready */
    if (w->io_at >= 0 || w->runs > 1000) {
        loop_stop(w->loop);
        return;
    }
    if (w->yield)
        loop_yield(w->loop, &w->task, on_task);
    else
        loop_defer(w->loop, &w->task, on_task);
}

static void on_io(struct loop_io *io, uint32_t events)
{
    struct worker *w = container_of(io, struct worker, io);
    (void)events;
    if (w->io_at < 0)
        w->io_at = w->runs;
}

/* The task re-queues itself after each run (a transfer cut off at its budget); its first run makes
 * another fd ready. Returns how many runs the task had when that fd's event was handled. */
static int io_waits_for(bool yield)
{
    struct worker w = {.io_at = -1, .yield = yield};
    w.loop = loop_new();
    cr_assert_not_null(w.loop);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    w.wfd = p[1];
    w.io.fd = p[0];
    w.io.cb = on_io;
    loop_defer(w.loop, &w.task, on_task); /* queued before the first epoll_wait */
    cr_assert_eq(loop_io_add(w.loop, &w.io), 0);
    cr_assert_eq(loop_run(w.loop), 0);
    close(p[0]);
    close(p[1]);
    loop_free(w.loop);
    return w.io_at;
}

Test(loop_yield, a_yielded_task_lets_the_next_epoll_wait_come_first)
{
    /* Deferred, the task runs its bounded rounds (twice per iteration) before the other fd is
     * even polled; yielded, the other fd's event comes right after the first run. */
    int deferred = io_waits_for(false);
    int yielded = io_waits_for(true);
    cr_expect_eq(yielded, 1, "the fd's event came before the yielded task ran again (%d)",
                 yielded);
    cr_expect_gt(deferred, 1, "a deferred task runs again before any I/O (%d)", deferred);
}

static void count_run(struct loop_task *t)
{
    (*(int *)(void *)((char *)t + sizeof(*t)))++;
}

Test(loop_yield, run_deferred_runs_yielded_tasks_too)
{
    /* Teardown runs what is queued, yielded tasks included (a session's free may be there). */
    struct {
        struct loop_task t;
        int n;
    } a = {0};
    struct loop *loop = loop_new();
    cr_assert_not_null(loop);
    loop_yield(loop, &a.t, count_run);
    loop_defer(loop, &a.t, count_run); /* already queued: no-op */
    loop_run_deferred(loop);
    cr_expect_eq(a.n, 1);
    cr_expect_not(a.t.queued);
    loop_free(loop);
}
