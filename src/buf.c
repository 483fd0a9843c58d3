/* buf — see buf.h. */
#include "buf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void buf_pool_init(struct buf_pool *pool, uint32_t size, size_t max_free)
{
    memset(pool, 0, sizeof(*pool));
    pool->size = size;
    pool->max_free = max_free;
}

void buf_pool_destroy(struct buf_pool *pool)
{
    struct buf *b = pool->free;
    while (b) {
        struct buf *next = b->next;
        free(b);
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
        b = malloc(sizeof(*b) + pool->size);
        if (!b)
            return NULL;
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
        free(b);
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
