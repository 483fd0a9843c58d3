/* Unit tests for loop: timers (order, lazy re-arm, cancel), deferred tasks, fd events, wakeup. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "base/loop.h"
#include "base/util.h"

struct fired {
    struct loop_timer t;
    struct loop *loop;
    int order;
    int *counter;
    bool stop_after;
};

static void on_fire(struct loop_timer *t)
{
    struct fired *f = container_of(t, struct fired, t);
    f->order = ++*f->counter;
    if (f->stop_after)
        loop_stop(f->loop);
}

Test(loop, timers_fire_in_deadline_order)
{
    struct loop *loop = loop_new();
    cr_assert_not_null(loop);
    int counter = 0;
    struct fired f[5];
    uint64_t delays[5] = {40, 10, 30, 20, 50};
    for (int i = 0; i < 5; i++) {
        f[i] = (struct fired){.loop = loop, .counter = &counter, .stop_after = i == 4};
        loop_timer_init(&f[i].t, on_fire);
        loop_timer_after(loop, &f[i].t, delays[i]);
    }
    cr_assert_eq(loop_timer_count(loop), 5);
    cr_assert_eq(loop_run(loop), 0);
    cr_expect_eq(f[1].order, 1);
    cr_expect_eq(f[3].order, 2);
    cr_expect_eq(f[2].order, 3);
    cr_expect_eq(f[0].order, 4);
    cr_expect_eq(f[4].order, 5);
    cr_expect_eq(loop_timer_count(loop), 0);
    loop_free(loop);
}

Test(loop, moving_a_deadline_later_delays_the_timer)
{
    struct loop *loop = loop_new();
    int counter = 0;
    struct fired a = {.loop = loop, .counter = &counter};
    struct fired b = {.loop = loop, .counter = &counter, .stop_after = true};
    loop_timer_init(&a.t, on_fire);
    loop_timer_init(&b.t, on_fire);
    loop_timer_after(loop, &a.t, 10);
    loop_timer_after(loop, &b.t, 40);
    loop_timer_after(loop, &a.t, 80); /* later: lazily re-filed when its old key comes due */
    a.stop_after = true;
    b.stop_after = false;
    uint64_t start = util_now_ms();
    cr_assert_eq(loop_run(loop), 0);
    cr_expect_eq(b.order, 1, "b (40 ms) must fire before a (moved to 80 ms)");
    cr_expect_eq(a.order, 2);
    cr_expect_geq(util_now_ms() - start, 80);
    loop_free(loop);
}

Test(loop, moving_a_deadline_earlier_and_cancel)
{
    struct loop *loop = loop_new();
    int counter = 0;
    struct fired a = {.loop = loop, .counter = &counter, .stop_after = true};
    struct fired b = {.loop = loop, .counter = &counter};
    struct fired c = {.loop = loop, .counter = &counter};
    loop_timer_init(&a.t, on_fire);
    loop_timer_init(&b.t, on_fire);
    loop_timer_init(&c.t, on_fire);
    loop_timer_after(loop, &a.t, 60000);
    loop_timer_after(loop, &b.t, 20);
    loop_timer_after(loop, &c.t, 30);
    loop_timer_cancel(loop, &b.t);
    cr_expect_not(loop_timer_armed(&b.t));
    loop_timer_after(loop, &a.t, 50); /* earlier */
    cr_assert_eq(loop_run(loop), 0);
    cr_expect_eq(b.order, 0, "cancelled timer fired");
    cr_expect_eq(c.order, 1);
    cr_expect_eq(a.order, 2);
    loop_free(loop);
}

Test(loop, heap_stays_ordered_under_random_operations)
{
    struct loop *loop = loop_new();
    enum { N = 2000 };
    int counter = 0;
    struct fired *f = calloc(N, sizeof(*f));
    srand(7);
    for (int i = 0; i < N; i++) {
        f[i] = (struct fired){.loop = loop, .counter = &counter};
        loop_timer_init(&f[i].t, on_fire);
        loop_timer_set(loop, &f[i].t, 1000000 + (uint64_t)(rand() % 100000));
    }
    for (int i = 0; i < N; i += 3)
        loop_timer_cancel(loop, &f[i].t);
    for (int i = 1; i < N; i += 3)
        loop_timer_set(loop, &f[i].t, 1000000 + (uint64_t)(rand() % 100000));
    size_t expected = N - (N + 2) / 3;
    cr_expect_eq(loop_timer_count(loop), expected);
    for (int i = 0; i < N; i++)
        loop_timer_cancel(loop, &f[i].t);
    cr_expect_eq(loop_timer_count(loop), 0);
    free(f);
    loop_free(loop);
}

struct task_ctx {
    struct loop_task task;
    struct loop *loop;
    int runs;
};

static void on_task(struct loop_task *task)
{
    struct task_ctx *t = container_of(task, struct task_ctx, task);
    t->runs++;
    loop_stop(t->loop);
}

Test(loop, deferred_task_runs_once_even_if_queued_twice)
{
    struct loop *loop = loop_new();
    struct task_ctx t = {.loop = loop};
    loop_defer(loop, &t.task, on_task);
    loop_defer(loop, &t.task, on_task);
    cr_assert_eq(loop_run(loop), 0);
    cr_expect_eq(t.runs, 1);
    loop_free(loop);
}

struct pipe_ctx {
    struct loop_io io;
    struct loop *loop;
    char got[16];
    int n;
};

static void on_pipe(struct loop_io *io, uint32_t events)
{
    struct pipe_ctx *p = container_of(io, struct pipe_ctx, io);
    if (events & EPOLLIN) {
        ssize_t r = read(io->fd, p->got + p->n, sizeof(p->got) - 1 - (size_t)p->n);
        if (r > 0)
            p->n += (int)r;
        loop_stop(p->loop);
    }
}

Test(loop, fd_readiness_is_delivered)
{
    struct loop *loop = loop_new();
    int fds[2];
    cr_assert_eq(pipe2(fds, O_NONBLOCK), 0);
    struct pipe_ctx p = {.loop = loop};
    p.io.fd = fds[0];
    p.io.cb = on_pipe;
    cr_assert_eq(loop_io_add(loop, &p.io), 0);
    cr_assert_eq(write(fds[1], "hi", 2), 2);
    cr_assert_eq(loop_run(loop), 0);
    cr_expect_eq(p.n, 2);
    cr_expect_eq(memcmp(p.got, "hi", 2), 0);
    cr_expect_eq(loop_io_del(loop, &p.io), 0);
    close(fds[0]);
    close(fds[1]);
    loop_free(loop);
}

static void on_wakeup(void *arg)
{
    struct task_ctx *t = arg;
    t->runs++;
    loop_stop(t->loop);
}

static void *wake_from_thread(void *arg)
{
    struct task_ctx *t = arg;
    loop_wakeup(t->loop, on_wakeup, t);
    return NULL;
}

Test(loop, wakeup_from_another_thread_runs_on_the_loop)
{
    struct loop *loop = loop_new();
    struct task_ctx t = {.loop = loop};
    pthread_t th;
    pthread_create(&th, NULL, wake_from_thread, &t);
    cr_assert_eq(loop_run(loop), 0);
    pthread_join(th, NULL);
    cr_expect_eq(t.runs, 1);
    loop_free(loop);
}

Test(loop, stop_before_run_is_not_lost_and_the_loop_can_run_again)
{
    struct loop *loop = loop_new();
    loop_stop(loop);
    cr_assert_eq(loop_run(loop), 0, "a stop requested before run must end the run");
    struct task_ctx t = {.loop = loop};
    loop_defer(loop, &t.task, on_task);
    cr_assert_eq(loop_run(loop), 0);
    cr_expect_eq(t.runs, 1, "the loop must run again after a stop");
    loop_free(loop);
}
