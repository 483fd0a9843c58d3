/* pipes — a per-worker pool of non-blocking pipes for splice(2).
 *
 * Large Content-Length and close-delimited bodies move socket → pipe → socket with splice, so
 * their bytes never cross into user space. A pipe is taken when such a body starts and given back
 * once it is empty; one that still holds bytes when its exchange dies is closed instead (its
 * content belongs to nobody). Pipes are per thread and never locked.
 */
#ifndef GOLB_PIPES_H
#define GOLB_PIPES_H

#include <stddef.h>
#include <stdint.h>

struct kpipe {
    int r, w;
    uint32_t bytes; /* bytes inside, spliced in but not yet out */
};

struct pipe_pool {
    struct kpipe *free;
    size_t nfree, max_free;
    size_t size; /* F_SETPIPE_SZ applied to new pipes (0: the system default) */
};

void pipe_pool_init(struct pipe_pool *pool, size_t max_free, size_t size);
void pipe_pool_destroy(struct pipe_pool *pool);
/* Fills *p with an empty pipe. Returns 0 or -errno (out of descriptors: the caller falls back to
 * copying through a buffer). */
int pipe_pool_get(struct pipe_pool *pool, struct kpipe *p);
/* Returns p to the pool when empty, closes it otherwise; p is reset to {-1, -1, 0}. */
void pipe_pool_put(struct pipe_pool *pool, struct kpipe *p);

#endif
