/* Unit tests for pipes: new pipes work and are non-blocking, empty ones are pooled and handed out
 * again, ones still holding bytes are really closed, the pool is bounded, destroy closes all. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../../support/unit_support.h"
#include "base/pipes.h"

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static void expect_closed(int fd)
{
    errno = 0;
    cr_expect_eq(fcntl(fd, F_GETFD), -1, "fd %d is still open", fd);
    cr_expect_eq(errno, EBADF);
}

/* Both ends non-blocking and close-on-exec, bytes go from w to r, an empty r says EAGAIN. */
static void expect_working_pipe(const struct kpipe *p)
{
    cr_assert_geq(p->r, 0);
    cr_assert_geq(p->w, 0);
    cr_assert_neq(p->r, p->w);
    cr_expect_eq(p->bytes, 0);
    for (int i = 0; i < 2; i++) {
        int fd = i ? p->w : p->r;
        int fl = fcntl(fd, F_GETFL);
        cr_assert_neq(fl, -1);
        cr_expect(fl & O_NONBLOCK, "pipe end %d must be non-blocking", fd);
        cr_expect(fcntl(fd, F_GETFD) & FD_CLOEXEC, "pipe end %d must be close-on-exec", fd);
    }
    cr_expect_eq(fcntl(p->r, F_GETFL) & O_ACCMODE, O_RDONLY);
    cr_expect_eq(fcntl(p->w, F_GETFL) & O_ACCMODE, O_WRONLY);
    char c;
    cr_expect_eq(read(p->r, &c, 1), -1, "an empty pipe must not block nor return data");
    cr_expect_eq(errno, EAGAIN);
    cr_assert_eq(write(p->w, "abc", 3), 3);
    char buf[8];
    cr_assert_eq(read(p->r, buf, sizeof(buf)), 3);
    cr_expect_arr_eq(buf, "abc", 3);
}

Test(pipes, get_gives_working_nonblocking_pipes)
{
    int before = count_fds();
    struct pipe_pool pool;
    pipe_pool_init(&pool, 4, 0);
    struct kpipe a, b;
    cr_assert_eq(pipe_pool_get(&pool, &a), 0);
    cr_assert_eq(pipe_pool_get(&pool, &b), 0);
    expect_working_pipe(&a);
    expect_working_pipe(&b);
    cr_expect_neq(a.r, b.r, "an empty pool must make a new pipe each time");
    cr_expect_eq(count_fds(), before + 4);
    pipe_pool_put(&pool, &a);
    pipe_pool_put(&pool, &b);
    pipe_pool_destroy(&pool);
    cr_expect_eq(count_fds(), before, "fd leak");
}

Test(pipes, size_is_applied_to_new_pipes)
{
    struct pipe_pool pool;
    pipe_pool_init(&pool, 1, 128 * 1024);
    struct kpipe p;
    cr_assert_eq(pipe_pool_get(&pool, &p), 0);
    cr_expect_eq(fcntl(p.w, F_GETPIPE_SZ), 128 * 1024);
    pipe_pool_put(&pool, &p);
    pipe_pool_destroy(&pool);

    /* 0 keeps the system default (one page per slot, 16 slots: 64 KiB on Linux). */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    int dflt = fcntl(fds[1], F_GETPIPE_SZ);
    close(fds[0]);
    close(fds[1]);
    pipe_pool_init(&pool, 1, 0);
    cr_assert_eq(pipe_pool_get(&pool, &p), 0);
    cr_expect_eq(fcntl(p.w, F_GETPIPE_SZ), dflt);
    pipe_pool_put(&pool, &p);
    pipe_pool_destroy(&pool);
}

Test(pipes, put_of_an_empty_pipe_pools_it)
{
    int before = count_fds();
    struct pipe_pool pool;
    pipe_pool_init(&pool, 4, 0);
    struct kpipe p;
    cr_assert_eq(pipe_pool_get(&pool, &p), 0);
    int r = p.r, w = p.w;
    pipe_pool_put(&pool, &p);
    cr_expect_eq(p.r, -1, "put must reset the caller's handle");
    cr_expect_eq(p.w, -1);
    cr_expect_eq(p.bytes, 0);
    cr_expect_eq(pool.nfree, 1);
    cr_expect(fd_open(r) && fd_open(w), "a pooled pipe stays open");

    struct kpipe q;
    cr_assert_eq(pipe_pool_get(&pool, &q), 0);
    cr_expect_eq(q.r, r, "the pooled pipe is handed out again");
    cr_expect_eq(q.w, w);
    cr_expect_eq(q.bytes, 0);
    cr_expect_eq(pool.nfree, 0);
    expect_working_pipe(&q);
    pipe_pool_put(&pool, &q);
    pipe_pool_destroy(&pool);
    cr_expect_eq(count_fds(), before, "fd leak");
}

Test(pipes, reuse_is_lifo)
{
    struct pipe_pool pool;
    pipe_pool_init(&pool, 4, 0);
    struct kpipe a, b;
    pipe_pool_get(&pool, &a);
    pipe_pool_get(&pool, &b);
    int ar = a.r, br = b.r;
    pipe_pool_put(&pool, &a);
    pipe_pool_put(&pool, &b);
    struct kpipe x, y;
    pipe_pool_get(&pool, &x);
    pipe_pool_get(&pool, &y);
    cr_expect_eq(x.r, br);
    cr_expect_eq(y.r, ar);
    pipe_pool_put(&pool, &x);
    pipe_pool_put(&pool, &y);
    pipe_pool_destroy(&pool);
}

Test(pipes, put_of_a_pipe_holding_bytes_closes_it)
{
    int before = count_fds();
    struct pipe_pool pool;
    pipe_pool_init(&pool, 4, 0);
    struct kpipe p;
    cr_assert_eq(pipe_pool_get(&pool, &p), 0);
    int r = p.r, w = p.w;
    cr_assert_eq(write(p.w, "left over", 9), 9);
    p.bytes = 9;
    pipe_pool_put(&pool, &p);
    cr_expect_eq(p.r, -1);
    cr_expect_eq(p.w, -1);
    cr_expect_eq(p.bytes, 0);
    cr_expect_eq(pool.nfree, 0, "a pipe with content must not be pooled");
    expect_closed(r);
    expect_closed(w);
    cr_expect_eq(count_fds(), before);

    /* The next get makes a fresh, empty pipe (it may reuse the numbers, never the content). */
    struct kpipe q;
    cr_assert_eq(pipe_pool_get(&pool, &q), 0);
    expect_working_pipe(&q);
    pipe_pool_put(&pool, &q);
    pipe_pool_destroy(&pool);
    cr_expect_eq(count_fds(), before, "fd leak");
}

Test(pipes, put_of_an_unused_handle_is_a_no_op)
{
    struct pipe_pool pool;
    pipe_pool_init(&pool, 2, 0);
    struct kpipe p = {.r = -1, .w = -1, .bytes = 0};
    pipe_pool_put(&pool, &p);
    cr_expect_eq(pool.nfree, 0);
    cr_expect_eq(p.r, -1);
    pipe_pool_destroy(&pool);
}

Test(pipes, pool_keeps_at_most_max_free)
{
    int before = count_fds();
    struct pipe_pool pool;
    pipe_pool_init(&pool, 2, 0);
    struct kpipe p[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pipe_pool_get(&pool, &p[i]), 0);
    cr_expect_eq(count_fds(), before + 8);
    int r[4], w[4];
    for (int i = 0; i < 4; i++) {
        r[i] = p[i].r;
        w[i] = p[i].w;
        pipe_pool_put(&pool, &p[i]);
    }
    cr_expect_eq(pool.nfree, 2);
    /* The first two went to the pool, the other two were closed. */
    cr_expect(fd_open(r[0]) && fd_open(w[0]));
    cr_expect(fd_open(r[1]) && fd_open(w[1]));
    expect_closed(r[2]);
    expect_closed(w[2]);
    expect_closed(r[3]);
    expect_closed(w[3]);
    cr_expect_eq(count_fds(), before + 4);
    pipe_pool_destroy(&pool);
    cr_expect_eq(count_fds(), before, "fd leak");
}

Test(pipes, max_free_zero_pools_nothing)
{
    int before = count_fds();
    struct pipe_pool pool;
    pipe_pool_init(&pool, 0, 0);
    struct kpipe p;
    cr_assert_eq(pipe_pool_get(&pool, &p), 0);
    int r = p.r;
    pipe_pool_put(&pool, &p);
    cr_expect_eq(pool.nfree, 0);
    expect_closed(r);
    pipe_pool_destroy(&pool);
    cr_expect_eq(count_fds(), before);
}

Test(pipes, destroy_closes_every_pooled_pipe)
{
    int before = count_fds();
    struct pipe_pool pool;
    pipe_pool_init(&pool, 8, 0);
    struct kpipe p[3];
    int fds[6];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pipe_pool_get(&pool, &p[i]), 0);
        fds[2 * i] = p[i].r;
        fds[2 * i + 1] = p[i].w;
    }
    for (int i = 0; i < 3; i++)
        pipe_pool_put(&pool, &p[i]);
    cr_expect_eq(pool.nfree, 3);
    pipe_pool_destroy(&pool);
    for (int i = 0; i < 6; i++)
        expect_closed(fds[i]);
    cr_expect_null(pool.free);
    cr_expect_eq(pool.nfree, 0);
    cr_expect_eq(count_fds(), before);
    /* A destroyed pool is inert: destroying again closes nothing twice. */
    pipe_pool_destroy(&pool);
}

Test(pipes, out_of_descriptors_is_an_error_not_a_crash)
{
    struct pipe_pool pool;
    pipe_pool_init(&pool, 2, 0);
    /* Lower the limit (this test runs in its own process), use up every number, ask for a pipe. */
    struct rlimit old;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = {.rlim_cur = 256, .rlim_max = old.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int held[256];
    int n = 0;
    while (n < 256 && (held[n] = dup(0)) != -1)
        n++;
    cr_assert_lt(n, 256);
    struct kpipe p = {.r = -1, .w = -1};
    int rc = pipe_pool_get(&pool, &p);
    for (int i = 0; i < n; i++)
        close(held[i]);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_expect_eq(rc, -EMFILE);
    cr_expect_eq(p.r, -1, "a failed get leaves the handle alone");
    /* Descriptors back: it works again. */
    cr_assert_eq(pipe_pool_get(&pool, &p), 0);
    expect_working_pipe(&p);
    pipe_pool_put(&pool, &p);
    pipe_pool_destroy(&pool);
}
