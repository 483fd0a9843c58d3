/* pipes — see pipes.h. */
#include "pipes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

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
