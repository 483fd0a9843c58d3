/* Unit tests for buf: pooling, reuse without malloc, watermark, compaction. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/buf.h"

Test(buf, get_put_reuses_the_same_memory)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 4096, 4);
    struct buf *a = buf_get(&pool);
    cr_assert_not_null(a);
    cr_expect_eq(a->cap, 4096);
    cr_expect_eq(buf_len(a), 0);
    cr_expect_eq(buf_space(a), 4096);
    cr_expect_eq(pool.outstanding, 1);
    buf_put(&pool, a);
    cr_expect_eq(pool.outstanding, 0);
    cr_expect_eq(pool.nfree, 1);
    struct buf *b = buf_get(&pool);
    cr_expect_eq(a, b, "a returned buffer must be reused");
    cr_expect_eq(b->pos, 0);
    cr_expect_eq(b->last, 0);
    buf_put(&pool, b);
    buf_pool_destroy(&pool);
}

Test(buf, pool_keeps_at_most_max_free)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 1024, 2);
    struct buf *b[5];
    for (int i = 0; i < 5; i++)
        b[i] = buf_get(&pool);
    for (int i = 0; i < 5; i++)
        buf_put(&pool, b[i]);
    cr_expect_eq(pool.nfree, 2);
    cr_expect_eq(pool.outstanding, 0);
    buf_put(&pool, NULL); /* allowed, no effect */
    buf_pool_destroy(&pool);
    cr_expect_eq(pool.nfree, 0);
}

Test(buf, compact_moves_unprocessed_bytes_to_the_front)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 16, 1);
    struct buf *b = buf_get(&pool);
    memcpy(b->data, "abcdefghijklmnop", 16);
    b->last = 16;
    b->pos = 10;
    cr_expect_eq(buf_space(b), 0);
    buf_compact(b);
    cr_expect_eq(b->pos, 0);
    cr_expect_eq(b->last, 6);
    cr_expect_eq(memcmp(b->data, "klmnop", 6), 0);
    cr_expect_eq(buf_space(b), 10);
    b->pos = b->last; /* everything consumed */
    buf_compact(b);
    cr_expect_eq(buf_len(b), 0);
    cr_expect_eq(b->last, 0);
    buf_put(&pool, b);
    buf_pool_destroy(&pool);
}
