/* buf — I/O buffers from a per-worker free list: fixed-size ones for bodies, large ones for heads.
 *
 *   data                pos                 last                 cap
 *    |  consumed bytes   |  bytes to process  |  free space        |
 *
 * Connections take a buffer when bytes arrive and give it back once drained, so an idle keep-alive
 * connection holds none. Every buffer is `size` bytes (16 KiB in the workers: bodies never need
 * more), except the large ones a head takes when it does not fit (buf_get_large: a request head up
 * to maxHeaderSize, the same response head, the rewritten heads); those go back to their own short
 * free list. Pools are per thread and never locked.
 *
 * The free list of ordinary buffers keeps up to a high mark: a put beyond it gives back (munmap)
 * everything above half of it at once (hysteresis). The high mark is 2 × `max_free`, raised by
 * buf_pool_tick (once a second, from the worker) to the most buffers in use at once during the
 * last period, so steady high concurrency (a thousand HTTP/2 streams whose buffers come and go)
 * reuses buffers instead of paying an mmap/munmap pair (and a TLB shootdown across the process's
 * threads) per request; when traffic falls, each tick halves it (never below 2 × max_free) and
 * trims what is above, so a burst leaves at most 2 × max_free idle buffers behind a few seconds
 * later.
 */
#ifndef GOLB_BUF_H
#define GOLB_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_MAGIC 0x676f6c62u /* "golb": catches use of a freed or foreign buffer in debug checks */

/* Large buffers kept for reuse (each up to maxHeaderSize and a little): few, they are rare. */
#define BUF_LARGE_MAX_FREE 2

#define BUF_SMALL_MAX (1024u - 32u) /* the largest n for buf_get_small (an mcache class) */

struct mcache;

struct buf {
    struct buf *next; /* free-list link (a holder may chain its buffers with it) */
    uint32_t magic;
    uint32_t pos;  /* first byte not yet processed */
    uint32_t last; /* one past the last byte stored */
    uint32_t cap;  /* size of data[] */
    char data[];
};

struct buf_pool {
    struct buf *free;
    size_t nfree;
    size_t max_free;    /* floor of the free list's bound; 2 × it is the lowest high mark */
    size_t high;        /* the free list's current high mark (buf_pool_tick adapts it) */
    size_t outstanding; /* buffers handed out and not returned (large ones included) */
    size_t peak;        /* the most outstanding at once since the last tick */
    uint32_t size;      /* cap of an ordinary buffer */
    struct buf *large;  /* free large buffers, at most BUF_LARGE_MAX_FREE */
    size_t nlarge;
    size_t maps, unmaps; /* mmap and munmap calls so far: for tests and metrics */
    struct mcache *small; /* where buf_get_small's buffers come from (NULL: none) */
};

void buf_pool_init(struct buf_pool *pool, uint32_t size, size_t max_free);
void buf_pool_destroy(struct buf_pool *pool);
/* Once a second: the high mark rises to the last period's peak of buffers in use, or falls by
 * half (at least 2 × max_free), and a free list above it is trimmed to it. */
void buf_pool_tick(struct buf_pool *pool);
/* Returns an empty buffer of pool->size bytes, or NULL when memory is exhausted (a handled
 * condition: callers answer 503 or stop reading). */
struct buf *buf_get(struct buf_pool *pool);
/* Returns an empty buffer of at least cap bytes (a large one when cap > pool->size), or NULL. */
struct buf *buf_get_large(struct buf_pool *pool, uint32_t cap);
/* A buffer for n bytes or a few more, n at most BUF_SMALL_MAX: a heap block from pool->small
 * (an ordinary buffer when the pool has none or n is larger). Its cap is below the pool's size:
 * only for holders that take another buffer when one is full (HTTP/2 streams' chains, where a
 * gRPC message or a small response is a few hundred bytes and 1,000 of them wait at once: an
 * ordinary buffer would be 16 KiB of pages each). Given back with buf_put like any other. */
struct buf *buf_get_small(struct buf_pool *pool, uint32_t n);
/* Returns b (may be NULL) to the pool: ordinary and large buffers each to their own list. */
void buf_put(struct buf_pool *pool, struct buf *b);
/* Moves b's unprocessed bytes into a new buffer of at least cap bytes and gives b back. Returns
 * the new buffer, or NULL (b untouched) when memory is exhausted. */
struct buf *buf_grow(struct buf_pool *pool, struct buf *b, uint32_t cap);

static inline uint32_t buf_len(const struct buf *b)
{
    return b->last - b->pos;
}

/* The unprocessed bytes of b (NULL: none), their count in *len: a body source's peek. */
static inline const char *buf_peek(const struct buf *b, uint32_t *len)
{
    if (!b) {
        *len = 0;
        return NULL;
    }
    *len = b->last - b->pos;
    return b->data + b->pos;
}
static inline uint32_t buf_space(const struct buf *b)
{
    return b->cap - b->last;
}
/* Moves unprocessed bytes to the front so the free space is contiguous and maximal. */
void buf_compact(struct buf *b);

#endif
