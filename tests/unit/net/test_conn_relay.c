/* Unit tests for conn_relay (the bytes of an Upgrade tunnel): it stops reading once its byte
 * budget is spent, with the source still readable, and the next call goes on. Plain sockets. */
#include <criterion/criterion.h>

#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/loop.h"
#include "net/conn.h"

static int unread(int fd)
{
    int n = 0;
    ioctl(fd, FIONREAD, &n);
    return n;
}

Test(conn_relay, stops_at_its_budget_and_goes_on_at_the_next_call)
{
    int a[2], b[2]; /* a[1] writes → a[0] is src; b[0] is dst → b[1] reads */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
    int big = 4 << 20;
    setsockopt(a[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(b[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    static char data[1 << 20];
    memset(data, 'd', sizeof(data));
    size_t sent = 0;
    while (sent < sizeof(data)) {
        ssize_t n = write(a[1], data + sent, sizeof(data) - sent);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    cr_assert_gt(sent, LOOP_IO_BUDGET + 65536, "only %zu bytes could be queued", sent);

    struct buf_pool pool;
    buf_pool_init(&pool, 16384, 1);
    struct buf *bf = buf_get(&pool);
    bool sr = true, sw = true, dr = true, dw = true, eof = false, err = false;
    struct conn_end src = {a[0], NULL, &sr, &sw}, dst = {b[0], NULL, &dr, &dw};
    size_t budget = LOOP_IO_BUDGET;
    cr_expect(conn_relay(src, dst, bf, &eof, &err, &budget));
    cr_expect_eq(budget, 0);
    int moved = unread(b[1]);
    cr_expect_geq((size_t)moved, LOOP_IO_BUDGET);
    cr_expect_leq((size_t)moved, LOOP_IO_BUDGET + 16384, "one call moved %d bytes", moved);
    cr_expect(sr, "the source is still readable");
    cr_expect_not(eof);
    cr_expect_not(err);

    budget = LOOP_IO_BUDGET;
    cr_expect(conn_relay(src, dst, bf, &eof, &err, &budget));
    cr_expect_gt(unread(b[1]), moved, "the next call goes on");

    buf_put(&pool, bf);
    buf_pool_destroy(&pool);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}
