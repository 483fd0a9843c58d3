/* Unit tests for buf: pooling, reuse without malloc, the free list's marks (hysteresis), large
 * head buffers, growing, compaction. */
#include <criterion/criterion.h>
#include <string.h>

#include "base/buf.h"
#include "base/mcache.h"

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

/* A burst keeps its buffers until the tick; quiet ticks bring the list down to 2 × max_free. */
Test(buf, pool_keeps_a_burst_until_quiet_ticks)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 1024, 2);
    struct buf *b[5];
    for (int i = 0; i < 5; i++)
        b[i] = buf_get(&pool);
    for (int i = 0; i < 5; i++)
        buf_put(&pool, b[i]);
    cr_expect_eq(pool.nfree, 5, "the burst's own peak is kept");
    cr_expect_eq(pool.outstanding, 0);
    buf_pool_tick(&pool); /* the period of the burst */
    cr_expect_eq(pool.nfree, 5);
    buf_pool_tick(&pool); /* a quiet one */
    cr_expect_eq(pool.nfree, 4);
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

/* Traffic going up and down across the bound: the free list absorbs it (between max_free and
 * twice that), instead of an mmap and a munmap per buffer each time. */
Test(buf, traffic_around_the_bound_costs_no_mmap)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 4096, 4);
    struct buf *b[8];
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < 8; i++)
            cr_assert_not_null(b[i] = buf_get(&pool));
        for (int i = 0; i < 8; i++)
            buf_put(&pool, b[i]);
    }
    cr_expect_eq(pool.maps, 8, "the first round mapped them, the others reused them (%zu maps)",
                 pool.maps);
    cr_expect_eq(pool.unmaps, 0);
    cr_expect_eq(pool.nfree, 8);
    buf_pool_destroy(&pool);
    cr_expect_eq(pool.unmaps, 8);
}

/* A burst beyond the high mark is kept through its second (its first second after a pause
 * would otherwise unmap and map again), then trimmed by the ticks in batches. */
Test(buf, a_burst_is_kept_through_its_second_then_trimmed_in_batches)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 4096, 4);
    struct buf *b[20];
    for (int i = 0; i < 20; i++)
        b[i] = buf_get(&pool);
    for (int i = 0; i < 20; i++)
        buf_put(&pool, b[i]);
    cr_expect_eq(pool.nfree, 20, "past the high mark (8) but not past the burst's peak: kept");
    cr_expect_eq(pool.unmaps, 0);
    for (int i = 0; i < 20; i++) /* the same burst again: nothing mapped */
        b[i] = buf_get(&pool);
    for (int i = 0; i < 20; i++)
        buf_put(&pool, b[i]);
    cr_expect_eq(pool.maps, 20);
    buf_pool_tick(&pool); /* the period of the burst: its peak is the high mark */
    cr_expect_eq(pool.nfree, 20);
    buf_pool_tick(&pool); /* quiet: halved, in one batch */
    cr_expect_eq(pool.nfree, 10);
    cr_expect_eq(pool.unmaps, 10);
    buf_pool_tick(&pool); /* down to 2 x max_free */
    cr_expect_eq(pool.nfree, 8);
    cr_expect_eq(pool.outstanding, 0);
    buf_pool_destroy(&pool);
}

Test(buf, large_buffers_are_separate_and_few)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 4096, 4);
    struct buf *small = buf_get_large(&pool, 100);
    cr_expect_eq(small->cap, 4096, "what fits an ordinary buffer gets one");
    struct buf *l[3];
    for (int i = 0; i < 3; i++) {
        l[i] = buf_get_large(&pool, 100000);
        cr_assert_not_null(l[i]);
        cr_expect_geq(l[i]->cap, 100000);
        l[i]->data[l[i]->cap - 1] = 'x'; /* all of it is usable */
    }
    cr_expect_eq(pool.outstanding, 4);
    for (int i = 0; i < 3; i++)
        buf_put(&pool, l[i]);
    buf_put(&pool, small);
    cr_expect_eq(pool.nlarge, BUF_LARGE_MAX_FREE);
    cr_expect_eq(pool.nfree, 1, "the ordinary one went to its own list");
    struct buf *again = buf_get_large(&pool, 90000);
    cr_expect(again == l[2] || again == l[1], "a kept large buffer is reused");
    size_t maps = pool.maps;
    struct buf *bigger = buf_get_large(&pool, 300000);
    cr_expect_geq(bigger->cap, 300000);
    cr_expect_eq(pool.maps, maps + 1, "none kept was large enough");
    cr_expect_eq(pool.nlarge, 0, "the too small one was given back on the way");
    buf_put(&pool, again);
    buf_put(&pool, bigger);
    cr_expect_eq(pool.outstanding, 0);
    buf_pool_destroy(&pool);
    cr_expect_eq(pool.maps, pool.unmaps);
}

Test(buf, grow_moves_the_unprocessed_bytes)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 4096, 4);
    struct buf *b = buf_get(&pool);
    memset(b->data, 'a', 4096);
    memcpy(b->data + 100, "head", 4);
    b->pos = 100;
    b->last = 4096;
    struct buf *g = buf_grow(&pool, b, 50000);
    cr_assert_not_null(g);
    cr_expect_geq(g->cap, 50000);
    cr_expect_eq(g->pos, 0);
    cr_expect_eq(buf_len(g), 3996);
    cr_expect_eq(memcmp(g->data, "head", 4), 0);
    cr_expect_eq(pool.outstanding, 1, "the small one went back");
    cr_expect_eq(pool.nfree, 1);
    buf_put(&pool, g);
    buf_pool_destroy(&pool);
}

/* Steady concurrency above 2 × max_free: after a tick the free list holds what the last period
 * used at most, so the same load maps nothing more; when the load is gone, ticks bring the bound
 * back down and trim the free list to it. */
Test(buf, tick_follows_the_peak_in_use_then_trims_when_it_falls)
{
    struct buf_pool pool;
    buf_pool_init(&pool, 1024, 4);
    struct buf *held[40];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 40; i++)
            held[i] = buf_get(&pool);
        for (int i = 0; i < 40; i++)
            buf_put(&pool, held[i]);
        if (round == 0)
            buf_pool_tick(&pool);
    }
    /* round 0 mapped 40 and kept them (its peak), rounds 1 and 2 mapped nothing */
    cr_expect_eq(pool.maps, 40, "%zu maps", pool.maps);
    cr_expect_eq(pool.nfree, 40, "the last period's peak is kept");
    size_t maps = pool.maps;
    for (int i = 0; i < 40; i++)
        held[i] = buf_get(&pool);
    for (int i = 0; i < 40; i++)
        buf_put(&pool, held[i]);
    cr_expect_eq(pool.maps, maps, "the same load again: nothing mapped");
    buf_pool_tick(&pool); /* the period that had the load */
    cr_expect_eq(pool.high, 40);
    buf_pool_tick(&pool); /* quiet ones: the bound halves each time, down to 2 x max_free */
    cr_expect_eq(pool.high, 20);
    cr_expect_eq(pool.nfree, 20, "trimmed to it");
    buf_pool_tick(&pool);
    buf_pool_tick(&pool);
    cr_expect_eq(pool.high, 8);
    cr_expect_eq(pool.nfree, 8);
    buf_pool_destroy(&pool);
}

Test(buf, small_buffers_come_from_the_cache_and_go_back_to_it)
{
    struct buf_pool pool;
    struct mcache mc;
    buf_pool_init(&pool, 16384, 4);
    mcache_init(&mc);
    struct buf *o = buf_get_small(&pool, 100); /* no cache yet: an ordinary buffer */
    cr_assert_not_null(o);
    cr_expect_eq(o->cap, 16384);
    buf_put(&pool, o);
    pool.small = &mc;
    size_t outstanding = pool.outstanding;
    struct buf *s = buf_get_small(&pool, 100);
    cr_assert_not_null(s);
    cr_expect_geq(s->cap, 100);
    cr_expect_lt(s->cap, 256, "a 256-byte block, header included");
    cr_expect_eq(buf_len(s), 0);
    memset(s->data, 'x', s->cap); /* the whole cap is usable (ASan: no overflow) */
    s->last = s->cap;
    cr_expect_eq(pool.outstanding, outstanding, "not one of the pool's pages");
    struct buf *m = buf_get_small(&pool, BUF_SMALL_MAX);
    cr_assert_not_null(m);
    cr_expect_geq(m->cap, BUF_SMALL_MAX);
    cr_expect_lt(m->cap, 1024);
    struct buf *big = buf_get_small(&pool, BUF_SMALL_MAX + 1);
    cr_assert_not_null(big);
    cr_expect_eq(big->cap, 16384, "beyond BUF_SMALL_MAX: an ordinary buffer");
    buf_put(&pool, s);
    buf_put(&pool, m);
    buf_put(&pool, big);
    cr_expect_eq(pool.outstanding, outstanding);
    struct buf *again = buf_get_small(&pool, 50);
    if (mcache_enabled())
        cr_expect_eq(again, s, "the block came back to the cache");
    buf_put(&pool, again);
    mcache_destroy(&mc);
    buf_pool_destroy(&pool);
}
