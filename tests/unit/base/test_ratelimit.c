/* Unit tests for ratelimit: the token bucket (burst, refill, fractional rates, the wait until the
 * next token, a clock that stands still or goes back), keys kept apart, eviction of the least
 * recently seen key of a full set, and memory that stays what ratelimit_new allocated. */
#include <criterion/criterion.h>

#include "base/ratelimit.h"

Test(ratelimit, burst_then_rate)
{
    struct ratelimit *rl = ratelimit_new(64);
    cr_assert_not_null(rl);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(ratelimit_take(rl, 42, 5000, 10, 1000), 0, "request %d of the burst", i);
    cr_assert_eq(ratelimit_take(rl, 42, 5000, 10, 1000), 200, "5/s: the next token in 200 ms");
    cr_assert_eq(ratelimit_take(rl, 42, 5000, 10, 1100), 100);
    cr_assert_eq(ratelimit_take(rl, 42, 5000, 10, 1200), 0);
    cr_assert_eq(ratelimit_take(rl, 42, 5000, 10, 1200), 200);
    /* a long pause fills the bucket to burst, not beyond */
    for (int i = 0; i < 10; i++)
        cr_assert_eq(ratelimit_take(rl, 42, 5000, 10, 1000000), 0);
    cr_assert_neq(ratelimit_take(rl, 42, 5000, 10, 1000000), 0);
    ratelimit_free(rl);
}

Test(ratelimit, fractional_rate_and_clock)
{
    struct ratelimit *rl = ratelimit_new(8);
    cr_assert_eq(ratelimit_take(rl, 7, 500, 1, 5000), 0);
    cr_assert_eq(ratelimit_take(rl, 7, 500, 1, 5000), 2000, "0.5/s: one token per 2 s");
    cr_assert_eq(ratelimit_take(rl, 7, 500, 1, 4000), 2000, "a clock going back adds nothing");
    cr_assert_eq(ratelimit_take(rl, 7, 500, 1, 6999), 1);
    cr_assert_eq(ratelimit_take(rl, 7, 500, 1, 7000), 0);
    /* high rates: 1,000,000/s, a token every microsecond: never a wait of 0 */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ratelimit_take(rl, 8, 1000000000u, 3, 100), 0);
    cr_assert_eq(ratelimit_take(rl, 8, 1000000000u, 3, 100), 1);
    cr_assert_eq(ratelimit_take(rl, 8, 1000000000u, 3, 101), 0);
    ratelimit_free(rl);
}

Test(ratelimit, rate_holds_over_time)
{
    /* 5/s, burst 10, a request every ms for 10 s: the burst and then 5 per second */
    struct ratelimit *rl = ratelimit_new(8);
    int ok = 0;
    for (uint64_t t = 0; t < 10000; t++)
        ok += ratelimit_take(rl, 1, 5000, 10, 1000 + t) == 0;
    cr_assert(ok >= 59 && ok <= 60, "%d allowed", ok);
    ratelimit_free(rl);
}

Test(ratelimit, keys_are_apart)
{
    struct ratelimit *rl = ratelimit_new(1024);
    for (uint64_t k = 1; k <= 100; k++)
        cr_assert_eq(ratelimit_take(rl, k, 1000, 1, 0), 0, "key %lu", (unsigned long)k);
    for (uint64_t k = 1; k <= 100; k++)
        cr_assert_eq(ratelimit_take(rl, k, 1000, 1, 0), 1000, "key %lu", (unsigned long)k);
    ratelimit_free(rl);
}

Test(ratelimit, eviction_is_least_recently_seen)
{
    struct ratelimit *rl = ratelimit_new(1); /* one set of RATELIMIT_WAYS */
    cr_assert_eq(ratelimit_capacity(rl), RATELIMIT_WAYS);
    for (uint64_t k = 1; k <= RATELIMIT_WAYS; k++) /* each empties its bucket */
        cr_assert_eq(ratelimit_take(rl, k, 1000, 1, k), 0);
    cr_assert_eq(ratelimit_take(rl, 1, 1000, 1, 100), 901, "key 1 is still there");
    /* a new key evicts the least recently seen: key 2 (seen at 2; key 1 was seen at 100) */
    cr_assert_eq(ratelimit_take(rl, 99, 1000, 1, 101), 0);
    cr_assert_eq(ratelimit_take(rl, 1, 1000, 1, 102), 899, "key 1 kept");
    cr_assert_eq(ratelimit_take(rl, 3, 1000, 1, 103), 900, "key 3 kept");
    cr_assert_eq(ratelimit_take(rl, 2, 1000, 1, 104), 0, "key 2 was evicted: a full bucket");
    ratelimit_free(rl);
}

Test(ratelimit, bounded_memory)
{
    struct ratelimit *rl = ratelimit_new(4096);
    size_t mem = ratelimit_memory(rl);
    cr_assert_geq(ratelimit_capacity(rl), 4096);
    cr_assert_lt(mem, 4096 * 32 + 64);
    for (uint64_t k = 0; k < 1000000; k++)
        ratelimit_take(rl, k * 2654435761u, 1000, 1, k / 1000);
    cr_assert_eq(ratelimit_memory(rl), mem);
    /* the recent keys are still limited */
    cr_assert_neq(ratelimit_take(rl, 999999ull * 2654435761u, 1000, 1, 999), 0);
    ratelimit_free(rl);
}
