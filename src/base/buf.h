/* buf — fixed-size I/O buffers from a per-worker free list.
 *
 *   data                pos                 last                 cap
 *    |  consumed bytes   |  bytes to process  |  free space        |
 *
 * Connections take a buffer when bytes arrive and give it back once drained, so an idle keep-alive
 * connection holds none. The pool keeps up to `max_free` buffers for reuse: no malloc on the request
 * path after warm-up. Pools are per thread and never locked.
 */
#ifndef GOLB_BUF_H
#define GOLB_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_MAGIC 0x676f6c62u /* "golb": catches use of a freed or foreign buffer in debug checks */

struct buf {
    struct buf *next; /* free-list link */
    uint32_t magic;
    uint32_t pos;  /* first byte not yet processed */
    uint32_t last; /* one past the last byte stored */
    uint32_t cap;  /* size of data[] */
    char data[];
};

struct buf_pool {
    struct buf *free;
    size_t nfree;
    size_t max_free;
    size_t outstanding; /* buffers handed out and not returned: for tests and metrics */
    uint32_t size;
};

void buf_pool_init(struct buf_pool *pool, uint32_t size, size_t max_free);
void buf_pool_destroy(struct buf_pool *pool);
/* Returns an empty buffer, or NULL when memory is exhausted (a handled condition: callers answer
 * 503 or stop reading). */
struct buf *buf_get(struct buf_pool *pool);
/* Returns b (may be NULL) to the pool. */
void buf_put(struct buf_pool *pool, struct buf *b);

static inline uint32_t buf_len(const struct buf *b)
{
    return b->last - b->pos;
}
static inline uint32_t buf_space(const struct buf *b)
{
    return b->cap - b->last;
}
/* Moves unprocessed bytes to the front so the free space is contiguous and maximal. */
void buf_compact(struct buf *b);

#endif
