/* Unit tests for pipe_splice when the receiving side stalls: each refill is bounded by the room
 * dst's send buffer has (or stall_max), so what is left in the pipe when dst stops taking bytes
 * fits the caller's buffer (pipe_drain) and the pipe can go back; nothing is spliced in while dst
 * is not writable. Unix socketpairs stand for both sockets. */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/pipes.h"
#include "../../support/unit_support.h"

#define STALL_MAX 16384u

struct rig {
    int src[2], dst[2]; /* src[1] writes → src[0] is golb's source; dst[0] golb's, dst[1] reads */
    struct pipe_pool pool;
    struct kpipe p;
};

/* A source with much more waiting than a pipe holds, and a destination whose reader is slow
 * (never reads) with a send buffer of dst_sndbuf. */
static void rig_up(struct rig *r, int dst_sndbuf)
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, r->src), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, r->dst), 0);
    int big = 4 << 20;
    setsockopt(r->src[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(r->dst[0], SOL_SOCKET, SO_SNDBUF, &dst_sndbuf, sizeof(dst_sndbuf));
    static char data[2 << 20];
    memset(data, 'd', sizeof(data));
    size_t sent = 0;
    while (sent < sizeof(data)) {
        ssize_t n = write(r->src[1], data + sent, sizeof(data) - sent);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    cr_assert_gt(sent, 1 << 20, "only %zu bytes could be queued", sent);
    pipe_pool_init(&r->pool, 2, 1 << 20); /* pipes as large as the workers' */
    cr_assert_eq(pipe_pool_get(&r->pool, &r->p), 0);
}

static void rig_down(struct rig *r)
{
    pipe_pool_put(&r->pool, &r->p);
    pipe_pool_destroy(&r->pool);
    close(r->src[0]);
    close(r->src[1]);
    close(r->dst[0]);
    close(r->dst[1]);
}

Test(pipes_stall, what_is_left_when_dst_stalls_fits_stall_max)
{
    struct rig r;
    rig_up(&r, 64 * 1024);
    bool sr = true, eof = false, dw = true;
    uint64_t left = UINT64_MAX, moved = 0;
    size_t budget = SIZE_MAX;
    enum pipe_splice_err err = PIPE_SPLICE_OK;
    uint64_t room = 0;
    cr_expect(pipe_splice(&r.p, r.src[0], &sr, &eof, r.dst[0], &dw, &left, &moved, &budget,
                          STALL_MAX, &room, &err));
    cr_expect_eq(err, PIPE_SPLICE_OK);
    cr_expect_not(dw, "dst stalled");
    cr_expect_gt(moved, 0);
    cr_expect_leq(r.p.bytes, STALL_MAX, "%u bytes left in the pipe", r.p.bytes);
    cr_expect(sr, "the source still has bytes: it was not read past what dst could take");

    /* What is left moves to a buffer, and the pipe is empty: it can go back to the pool. */
    static char buf[STALL_MAX];
    uint32_t had = r.p.bytes;
    cr_expect_eq(pipe_drain(&r.p, buf, sizeof(buf)), (ssize_t)had);
    cr_expect_eq(r.p.bytes, 0);
    rig_down(&r);
}

Test(pipes_stall, without_a_bound_the_pipe_fills_past_what_dst_takes)
{
    /* The contrast: stall_max = PIPE_SPLICE_CHUNK (the request direction) keeps the old refill. */
    struct rig r;
    rig_up(&r, 64 * 1024);
    bool sr = true, eof = false, dw = true;
    uint64_t left = UINT64_MAX, moved = 0;
    size_t budget = SIZE_MAX;
    enum pipe_splice_err err = PIPE_SPLICE_OK;
    pipe_splice(&r.p, r.src[0], &sr, &eof, r.dst[0], &dw, &left, &moved, &budget,
                PIPE_SPLICE_CHUNK, NULL, &err);
    cr_expect_not(dw);
    cr_expect_gt(r.p.bytes, STALL_MAX, "%u bytes left in the pipe", r.p.bytes);
    rig_down(&r);
}

Test(pipes_stall, nothing_is_spliced_in_while_dst_is_not_writable)
{
    struct rig r;
    rig_up(&r, 64 * 1024);
    bool sr = true, eof = false, dw = false;
    uint64_t left = UINT64_MAX, moved = 0;
    size_t budget = SIZE_MAX;
    enum pipe_splice_err err = PIPE_SPLICE_OK;
    uint64_t room = 0;
    cr_expect_not(pipe_splice(&r.p, r.src[0], &sr, &eof, r.dst[0], &dw, &left, &moved, &budget,
                              STALL_MAX, &room, &err));
    cr_expect_eq(r.p.bytes, 0, "an empty pipe stays empty: it can go back");
    cr_expect(sr);
    rig_down(&r);
}

Test(pipes_stall, a_fast_reader_still_gets_whole_pipes)
{
    /* A destination with room takes full refills: the bound costs nothing to a reader that keeps
     * up (one pipe per splice, as before). */
    struct rig r;
    rig_up(&r, 4 << 20);
    bool sr = true, eof = false, dw = true;
    uint64_t left = UINT64_MAX, moved = 0;
    size_t budget = SIZE_MAX;
    enum pipe_splice_err err = PIPE_SPLICE_OK;
    uint64_t room = 0;
    pipe_splice(&r.p, r.src[0], &sr, &eof, r.dst[0], &dw, &left, &moved, &budget, STALL_MAX,
                &room, &err);
    cr_expect_geq(moved, 1 << 20, "moved %lu bytes", (unsigned long)moved);
    rig_down(&r);
}
