/* pipes — see pipes.h. */
#include "base/pipes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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

/* Moves up to *left bytes (UINT64_MAX: until EOF) from src to dst through pipe p, never reading
 * more than *left from src. The pipe is refilled only once empty, so it bounds what is in flight.
 * *left counts down as bytes reach dst. Returns true on progress; sets *src_eof at EOF, *err on a
 * hard error. */
bool pipe_splice(struct kpipe *p, int src, bool *src_readable, bool *src_eof, int dst,
                 bool *dst_writable, uint64_t *left, uint64_t *moved, size_t *budget,
                 enum pipe_splice_err *err)
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
        if (*left == 0 || *src_eof || !*src_readable || *budget == 0)
            break;
        size_t want = *left == UINT64_MAX ? PIPE_SPLICE_CHUNK : (size_t)MIN(*left, PIPE_SPLICE_CHUNK);
        ssize_t n = splice(src, NULL, p->w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
            p->bytes += (uint32_t)n;
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
