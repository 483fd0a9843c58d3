/* buf — see buf.h. */
#include "base/buf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/mcache.h"
#include "base/util.h"

/* Buffers are whole pages from mmap, not malloc: one beyond the pool's watermark goes straight
 * back to the kernel, so a burst of traffic does not leave the process's RSS high for good (glibc
 * keeps freed 16 KiB chunks in its heap). */
static size_t map_len(uint32_t cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t want = sizeof(struct buf) + cap;
    return (want + page - 1) / page * page;
}

void buf_pool_init(struct buf_pool *pool, uint32_t size, size_t max_free)
{
    memset(pool, 0, sizeof(*pool));
    pool->size = size;
    pool->max_free = max_free;
    pool->high = 2 * max_free;
}

static void unmap(struct buf_pool *pool, struct buf *b)
{
    munmap(b, map_len(b->cap));
    pool->unmaps++;
}

/* A new buffer of cap bytes, rounded up to whole pages (the extra is usable). */
static struct buf *map(struct buf_pool *pool, uint32_t cap)
{
    size_t len = map_len(cap);
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    pool->maps++;
    struct buf *b = m;
    b->cap = cap == pool->size ? cap : (uint32_t)(len - sizeof(struct buf));
    return b;
}

static void unmap_list(struct buf_pool *pool, struct buf **list)
{
    struct buf *b = *list;
    while (b) {
        struct buf *next = b->next;
        unmap(pool, b);
        b = next;
    }
    *list = NULL;
}

void buf_pool_destroy(struct buf_pool *pool)
{
    unmap_list(pool, &pool->free);
    unmap_list(pool, &pool->large);
    pool->nfree = pool->nlarge = 0;
}

static struct buf *hand_out(struct buf_pool *pool, struct buf *b)
{
    b->next = NULL;
    b->magic = BUF_MAGIC;
    b->pos = 0;
    b->last = 0;
    if (++pool->outstanding > pool->peak)
        pool->peak = pool->outstanding;
    return b;
}

struct buf *buf_get(struct buf_pool *pool)
{
    struct buf *b = pool->free;
    if (b) {
        pool->free = b->next;
        pool->nfree--;
    } else if (!(b = map(pool, pool->size))) {
        return NULL;
    }
    return hand_out(pool, b);
}

struct buf *buf_get_large(struct buf_pool *pool, uint32_t cap)
{
    if (cap <= pool->size)
        return buf_get(pool);
    /* The first kept one that is large enough; a smaller one (maxHeaderSize grew at a reload)
     * is given back on the way. */
    struct buf **pp = &pool->large;
    while (*pp) {
        struct buf *b = *pp;
        if (b->cap >= cap) {
            *pp = b->next;
            pool->nlarge--;
            return hand_out(pool, b);
        }
        *pp = b->next;
        pool->nlarge--;
        unmap(pool, b);
    }
    struct buf *b = map(pool, cap);
    return b ? hand_out(pool, b) : NULL;
}

struct buf *buf_get_small(struct buf_pool *pool, uint32_t n)
{
    if (!pool->small || n > BUF_SMALL_MAX)
        return buf_get(pool);
    size_t want = sizeof(struct buf) + n, block = 256;
    while (block < want)
        block *= 2; /* the cache's classes: the whole block is usable */
    struct buf *b = mcache_alloc(pool->small, block);
    if (!b)
        return NULL;
    b->next = NULL;
    b->magic = BUF_MAGIC;
    b->pos = b->last = 0;
    b->cap = (uint32_t)(block - sizeof(struct buf));
    return b;
}

static void trim_to(struct buf_pool *pool, size_t keep)
{
    while (pool->nfree > keep) {
        struct buf *x = pool->free;
        pool->free = x->next;
        pool->nfree--;
        unmap(pool, x);
    }
}

/* Past the bound (see buf_put): back to half of it in one go (hysteresis), never below
 * max_free. */
__attribute__((noinline)) static void trim(struct buf_pool *pool)
{
    size_t keep = MAX(pool->high, pool->peak) / 2;
    trim_to(pool, keep > pool->max_free ? keep : pool->max_free);
}

void buf_pool_tick(struct buf_pool *pool)
{
    /* Up at once to the peak, down by half a tick: a pause of a second or two between bursts
     * does not give back what the next burst maps again. */
    size_t floor = 2 * pool->max_free, high = pool->high / 2;
    if (high < pool->peak)
        high = pool->peak;
    pool->high = high > floor ? high : floor;
    pool->peak = pool->outstanding;
    trim_to(pool, pool->high);
}

/* Out of buf_put, so that its path for an ordinary buffer saves no register. */
__attribute__((noinline)) static void put_large(struct buf_pool *pool, struct buf *b)
{
    if (pool->nlarge >= BUF_LARGE_MAX_FREE) {
        unmap(pool, b);
        return;
    }
    b->next = pool->large;
    pool->large = b;
    pool->nlarge++;
}

void buf_put(struct buf_pool *pool, struct buf *b)
{
    if (!b)
        return;
    assert(b->magic == BUF_MAGIC);
    b->magic = 0;
    if (unlikely(b->cap < pool->size)) { /* buf_get_small's */
        mcache_free(pool->small, b);
        return;
    }
    pool->outstanding--;
    if (likely(b->cap == pool->size)) {
        b->next = pool->free;
        pool->free = b;
        /* Above the high mark, back to the low mark in one go (hysteresis); the high mark is
         * the last second's, and a burst that started since (peak) may keep as many: else its
         * first second after a pause unmaps and maps its buffers again, one pair each. */
        if (unlikely(++pool->nfree > pool->high) && pool->nfree > pool->peak)
            trim(pool);
        return;
    }
    put_large(pool, b);
}

struct buf *buf_grow(struct buf_pool *pool, struct buf *b, uint32_t cap)
{
    struct buf *n = buf_get_large(pool, cap);
    if (!n)
        return NULL;
    uint32_t len = buf_len(b);
    memcpy(n->data, b->data + b->pos, len);
    n->last = len;
    buf_put(pool, b);
    return n;
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
