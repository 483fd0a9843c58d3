/* Unit tests for mcache: size classes, reuse of a freed block, zeroing, realloc within and
 * across classes, blocks beyond the last class, the per-second bound, and blocks freed through
 * no cache or another one. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "base/mcache.h"

static void need_cache(void)
{
    if (!mcache_enabled())
        cr_skip_test("AddressSanitizer build: the cache is bypassed");
}

Test(mcache, a_freed_block_is_reused_for_its_class)
{
    need_cache();
    struct mcache m;
    mcache_init(&m);
    void *a = mcache_alloc(&m, 100); /* class 128 */
    cr_assert_not_null(a);
    memset(a, 0xab, 100);
    mcache_free(&m, a);
    cr_expect_eq(m.nfree[1], 1);
    cr_expect_eq(mcache_alloc(&m, 70), a, "70 bytes fall in the same class as 100");
    void *b = mcache_alloc(&m, 120);
    cr_expect_neq(b, a);
    mcache_free(&m, a);
    mcache_free(&m, b);
    void *c = mcache_alloc(&m, 40); /* another class: not from the 128 list */
    cr_expect_neq(c, a);
    cr_expect_neq(c, b);
    mcache_free(&m, c);
    mcache_destroy(&m);
    for (int k = 0; k < MCACHE_CLASSES; k++)
        cr_expect_eq(m.nfree[k], 0);
}

Test(mcache, blocks_are_aligned_and_usable_to_their_size)
{
    struct mcache m;
    mcache_init(&m);
    size_t sizes[] = {0, 1, 63, 64, 65, 1000, 4096, 8192, 8193, 100000};
    void *p[sizeof(sizes) / sizeof(sizes[0])];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        p[i] = mcache_alloc(&m, sizes[i]);
        cr_assert_not_null(p[i]);
        cr_expect_eq((uintptr_t)p[i] % 16, 0, "%zu bytes: 16-byte aligned", sizes[i]);
        memset(p[i], (int)i, sizes[i]);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        mcache_free(&m, p[i]);
    mcache_destroy(&m);
}

Test(mcache, calloc_zeroes_a_reused_block)
{
    struct mcache m;
    mcache_init(&m);
    unsigned char *a = mcache_alloc(&m, 200);
    memset(a, 0xff, 200);
    mcache_free(&m, a);
    unsigned char *b = mcache_calloc(&m, 25, 8);
    cr_assert_not_null(b);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(b[i], 0, "byte %d", i);
    mcache_free(&m, b);
    cr_expect_null(mcache_calloc(&m, SIZE_MAX / 2, 4), "k * n overflows: refused");
    mcache_destroy(&m);
}

Test(mcache, realloc_keeps_the_bytes)
{
    struct mcache m;
    mcache_init(&m);
    char *p = mcache_realloc(&m, NULL, 10);
    cr_assert_not_null(p);
    memcpy(p, "0123456789", 10);
    char *q = mcache_realloc(&m, p, 60); /* same class (64): in place */
    cr_expect_eq(q, p);
    q = mcache_realloc(&m, q, 3000); /* to class 4096 */
    cr_assert_not_null(q);
    cr_expect_eq(memcmp(q, "0123456789", 10), 0);
    q = mcache_realloc(&m, q, 50000); /* beyond the classes: the heap */
    cr_assert_not_null(q);
    cr_expect_eq(memcmp(q, "0123456789", 10), 0);
    q = mcache_realloc(&m, q, 70000); /* heap to heap */
    cr_assert_not_null(q);
    cr_expect_eq(memcmp(q, "0123456789", 10), 0);
    cr_expect_null(mcache_realloc(&m, q, 0), "size 0 frees");
    mcache_destroy(&m);
}

Test(mcache, keeps_what_the_last_second_needed)
{
    need_cache();
    struct mcache m;
    mcache_init(&m);
    enum { N = 1000 };
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = mcache_alloc(&m, 32);
    cr_expect_eq(m.in_use[0], N);
    cr_expect_eq(m.peak[0], N);
    for (int i = 0; i < N; i++)
        mcache_free(&m, p[i]);
    cr_expect_eq(m.nfree[0], N, "during the burst its peak is kept");
    mcache_tick(&m); /* the second of the burst ends: keep its peak */
    cr_expect_eq(m.nfree[0], N);
    mcache_tick(&m); /* a quiet second: back to the floor */
    cr_expect_eq(m.nfree[0], MCACHE_MIN_KEEP);
    for (int i = 0; i < N; i++)
        p[i] = mcache_alloc(&m, 32);
    for (int i = 0; i < N; i++)
        mcache_free(&m, p[i]);
    mcache_tick(&m);
    mcache_tick(&m);
    cr_expect_eq(m.nfree[0], MCACHE_MIN_KEEP);
    mcache_destroy(&m);
}

Test(mcache, any_cache_or_none_frees_any_block)
{
    struct mcache a, b;
    mcache_init(&a);
    mcache_init(&b);
    void *x = mcache_alloc(NULL, 300);
    void *y = mcache_alloc(&a, 300);
    void *z = mcache_alloc(&a, 20000);
    cr_assert(x && y && z);
    mcache_free(&a, x); /* made without a cache, cached by a */
    mcache_free(&b, y); /* a's, cached by b (a's count does not go below zero) */
    mcache_free(NULL, z);
    mcache_free(&a, NULL);
    cr_expect_eq(a.in_use[3], 0);
    mcache_destroy(&a);
    mcache_destroy(&b);
}
