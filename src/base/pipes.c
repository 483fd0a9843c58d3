/* pipes — see pipes.h. */
#include "base/pipes.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <linux/sock_diag.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/util.h"

void pipe_pool_init(struct pipe_pool *pool, size_t max_free, size_t size)
{
    pool->free = calloc(max_free ? max_free : 1, sizeof(*pool->free));
    pool->nfree = 0;
    pool->max_free = pool->free ? max_free : 0;
    pool->size = size;
}

void pipe_pool_destroy(struct pipe_pool *pool)
{
    for (size_t i = 0; i < pool->nfree; i++) {
        close(pool->free[i].r);
        close(pool->free[i].w);
    }
    free(pool->free);
    pool->free = NULL;
    pool->nfree = pool->max_free = 0;
}

int pipe_pool_get(struct pipe_pool *pool, struct kpipe *p)
{
    if (pool->nfree) {
        *p = pool->free[--pool->nfree];
        return 0;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
        return -errno;
    if (pool->size)
        (void)fcntl(fds[1], F_SETPIPE_SZ, (int)pool->size); /* best effort: default still works */
    *p = (struct kpipe){.r = fds[0], .w = fds[1], .bytes = 0};
    return 0;
}

void pipe_pool_put(struct pipe_pool *pool, struct kpipe *p)
{
    if (p->r < 0)
        return;
    if (p->bytes == 0 && pool->nfree < pool->max_free) {
        pool->free[pool->nfree++] = *p;
    } else {
        close(p->r);
        close(p->w);
    }
    *p = (struct kpipe){.r = -1, .w = -1, .bytes = 0};
}

/* What dst's send buffer can still take, in payload bytes, with a margin. SO_SNDBUF bounds the
 * memory the queued packets take (SK_MEMINFO_WMEM_QUEUED, or WMEM_ALLOC for a unix socket), which
 * is the payload (SIOCOUTQ) and the kernel's overhead per packet: 10 to 40 % more on loopback, so
 * the free memory is scaled by the payload's share so far (by half while nothing is queued), and
 * a quarter is kept back. 0 when it cannot tell. */
static size_t send_room(int dst)
{
    uint32_t mi[SK_MEMINFO_VARS];
    socklen_t len = sizeof(mi);
    int outq = 0;
    if (getsockopt(dst, SOL_SOCKET, SO_MEMINFO, mi, &len) == -1 ||
        len < sizeof(uint32_t) * (SK_MEMINFO_WMEM_QUEUED + 1) || ioctl(dst, SIOCOUTQ, &outq) == -1)
        return 0;
    uint64_t sndbuf = mi[SK_MEMINFO_SNDBUF];
    uint64_t queued = MAX(mi[SK_MEMINFO_WMEM_QUEUED], mi[SK_MEMINFO_WMEM_ALLOC]);
    if (queued >= sndbuf)
        return 0;
    uint64_t room = sndbuf - queued;
    if (queued > 0 && outq > 0 && (uint64_t)outq < queued)
        room = room * (uint64_t)outq / queued;
    else if (queued == 0)
        room /= 2;
    return (size_t)(room - room / 4);
}

bool pipe_splice(struct kpipe *p, int src, bool *src_readable, bool *src_eof, int dst,
                 bool *dst_writable, uint64_t *left, uint64_t *moved, size_t *budget,
                 uint32_t stall_max, uint64_t *room, enum pipe_splice_err *err)
{
    bool progress = false;
    for (;;) {
        if (p->bytes) {
            if (!*dst_writable)
                break;
            ssize_t n = splice(p->r, NULL, dst, NULL, p->bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                p->bytes -= (uint32_t)n;
                *moved += (uint64_t)n;
                *budget = (size_t)n < *budget ? *budget - (size_t)n : 0;
                if (*left != UINT64_MAX)
                    *left -= (uint64_t)n;
                progress = true;
                continue;
            }
            if (n == -1 && errno == EINTR)
                continue;
            if (n == -1 && errno == EAGAIN) {
                *dst_writable = false;
                break;
            }
            *err = PIPE_SPLICE_DST_FAILED;
            break;
        }
        if (*left == 0 || *src_eof || !*src_readable || *budget == 0 || !*dst_writable)
            break;
        size_t want = *left == UINT64_MAX ? PIPE_SPLICE_CHUNK : (size_t)MIN(*left, PIPE_SPLICE_CHUNK);
        if (stall_max < PIPE_SPLICE_CHUNK) {
            if (*room < want)
                *room = send_room(dst);
            want = MIN(want, MAX(*room, (uint64_t)stall_max));
        }
        ssize_t n = splice(src, NULL, p->w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            p->bytes += (uint32_t)n;
            if (room)
                *room = (uint64_t)n < *room ? *room - (uint64_t)n : 0;
            progress = true;
            continue;
        }
        if (n == 0) {
            *src_eof = true;
            progress = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            *src_readable = false; /* the pipe is empty, so it is the socket that has nothing */
            break;
        }
        *err = PIPE_SPLICE_SRC_FAILED;
        break;
    }
    return progress;
}

ssize_t pipe_drain(struct kpipe *p, char *out, size_t cap)
{
    size_t got = 0;
    while (p->bytes && got < cap) {
        ssize_t n = read(p->r, out + got, MIN(cap - got, (size_t)p->bytes));
        if (n > 0) {
            got += (size_t)n;
            p->bytes -= (uint32_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        return n == 0 ? -EPIPE : -errno;
    }
    return (ssize_t)got;
}
