/* buf — see buf.h. */
#include "base/buf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Buffers are whole pages from mmap, not malloc: one beyond the pool's watermark goes straight
 * back to the kernel, so a burst of traffic does not leave the process's RSS high for good (glibc
 * keeps freed 16 KiB chunks in its heap). */
static size_t map_len(const struct buf_pool *pool)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t want = sizeof(struct buf) + pool->size;
    return (want + page - 1) / page * page;
}

void buf_pool_init(struct buf_pool *pool, uint32_t size, size_t max_free)
{
    memset(pool, 0, sizeof(*pool));
    pool->size = size;
    pool->max_free = max_free;
}

static void unmap(const struct buf_pool *pool, struct buf *b)
{
    munmap(b, map_len(pool));
}

void buf_pool_destroy(struct buf_pool *pool)
{
    struct buf *b = pool->free;
    while (b) {
        struct buf *next = b->next;
        unmap(pool, b);
        b = next;
    }
    pool->free = NULL;
    pool->nfree = 0;
}

struct buf *buf_get(struct buf_pool *pool)
{
    struct buf *b = pool->free;
    if (b) {
        pool->free = b->next;
        pool->nfree--;
    } else {
        void *m = mmap(NULL, map_len(pool), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        b = m;
        b->cap = pool->size;
    }
    b->next = NULL;
    b->magic = BUF_MAGIC;
    b->pos = 0;
    b->last = 0;
    pool->outstanding++;
    return b;
}

void buf_put(struct buf_pool *pool, struct buf *b)
{
    if (!b)
        return;
    assert(b->magic == BUF_MAGIC && b->cap == pool->size);
    b->magic = 0;
    pool->outstanding--;
    if (pool->nfree >= pool->max_free) {
        unmap(pool, b);
        return;
    }
    b->next = pool->free;
    pool->free = b;
    pool->nfree++;
}

void buf_compact(struct buf *b)
{
    if (b->pos == 0)
        return;
    uint32_t n = b->last - b->pos;
    if (n)
        memmove(b->data, b->data + b->pos, n);
    b->pos = 0;
    b->last = n;
}
