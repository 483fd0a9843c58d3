/* Unit tests for counter: the latency histogram's buckets (log scale, the exported boundaries
 * among the edges, the O(1) index equal to a plain search for every value below 2^24 µs), the
 * quantile estimate (within ±10 % of the true nearest-rank value for single values, clusters,
 * mixtures and a log-uniform spread from 10 µs to 10 s), and the exported cumulative counts
 * (exact, +Inf equal to the count). */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "base/counter.h"

/* A deterministic generator (xorshift64*), so a failure is the same on every run. */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}
/* base^k by squaring (no libm needed). */
static double powi(double base, uint64_t k)
{
    double r = 1;
    for (; k; k >>= 1, base *= base)
        if (k & 1)
            r *= base;
    return r;
}

/* A value drawn log-uniformly from lo to lo * 1.001^steps µs (steps of 0.1 %). */
static uint64_t rng_log(double lo, uint64_t steps)
{
    return (uint64_t)(lo * powi(1.001, rng() % (steps + 1)) + 0.5);
}

static double absd(double x)
{
    return x < 0 ? -x : x;
}

/* A zeroed histogram on the heap (it is 1.3 KiB). */
static struct counter_hist *hist_new(void)
{
    struct counter_hist *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    return h;
}

static void read_buckets(const struct counter_hist *h, uint64_t *b)
{
    for (int i = 0; i < COUNTER_NBUCKETS; i++)
        b[i] = counter_get(&h->bucket[i]);
}

static double quantile_of(const struct counter_hist *h, double q)
{
    uint64_t b[COUNTER_NBUCKETS];
    read_buckets(h, b);
    return counter_quantile(b, q);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank q-quantile of sorted v[0..n): the ceil(q*n)-th smallest, in seconds. */
static double true_quantile(const uint64_t *sorted, size_t n, double q)
{
    size_t r = (size_t)(q * (double)n);
    if ((double)r < q * (double)n)
        r++;
    if (r < 1)
        r = 1;
    return (double)sorted[r - 1] / 1e6;
}

/* Observes v[0..n) and checks every quantile of qs against the truth, within ±10 %. */
static void expect_accurate(const char *what, uint64_t *v, size_t n)
{
    static const double qs[] = {0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999};
    struct counter_hist *h = hist_new();
    for (size_t i = 0; i < n; i++)
        counter_observe(h, v[i]);
    qsort(v, n, sizeof(*v), cmp_u64);
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        double want = true_quantile(v, n, qs[k]), got = quantile_of(h, qs[k]);
        cr_expect(absd(got - want) <= 0.10 * want, "%s: q%.3f is %.7f s, estimated %.7f s", what,
                  qs[k], want, got);
    }
    free(h);
}

Test(counter, edges_grow_by_at_most_ten_percent)
{
    for (int i = 0; i < 10; i++)
        cr_expect_eq(counter_edges_us[i], (uint32_t)i + 1, "every integer up to 10 µs");
    for (int i = 10; i < COUNTER_NBUCKETS - 1; i++) {
        uint32_t lo = counter_edges_us[i - 1] + 1, hi = counter_edges_us[i];
        cr_expect(hi >= lo, "edges increase at %d", i);
        cr_expect((double)hi <= 1.1 * (double)lo, "bucket %d holds %u..%u µs: wider than 10 %%", i,
                  lo, hi);
    }
    cr_expect_eq(counter_edges_us[COUNTER_NBUCKETS - 2], 10000000u, "the last edge is 10 s");
    cr_expect_eq(counter_edges_us[COUNTER_NBUCKETS - 1], UINT32_MAX, "then +Inf");
    cr_expect(sizeof(struct counter_hist) <= 1400, "a histogram is %zu bytes",
              sizeof(struct counter_hist));
}

Test(counter, exported_boundaries_are_edges_and_keep_opentelemetrys)
{
    /* OpenTelemetry's boundaries (what dashboards already query) stay; sub-millisecond ones add. */
    static const uint32_t otel[] = {5000,   10000,  25000,   50000,   75000,   100000,  250000,
                                    500000, 750000, 1000000, 2500000, 5000000, 7500000, 10000000};
    int k = 0;
    for (size_t j = 0; j < sizeof(otel) / sizeof(otel[0]); j++) {
        while (k < COUNTER_NEXPORT && counter_export_us[k] < otel[j])
            k++;
        cr_expect(k < COUNTER_NEXPORT && counter_export_us[k] == otel[j], "%u µs not exported",
                  otel[j]);
    }
    cr_expect_eq(counter_export_us[0], 100u, "0.0001 s is the first boundary");
    int e = 0;
    for (k = 0; k < COUNTER_NEXPORT; k++) {
        cr_expect(k == 0 || counter_export_us[k] > counter_export_us[k - 1]);
        while (e < COUNTER_NBUCKETS && counter_edges_us[e] < counter_export_us[k])
            e++;
        cr_expect(e < COUNTER_NBUCKETS && counter_edges_us[e] == counter_export_us[k],
                  "exported %u µs is not an internal edge", counter_export_us[k]);
    }
}

/* The O(1) index (bit length + table + one comparison) equals a plain search for every value
 * below 2^24 µs, and everything above 10 s is +Inf. */
Test(counter, bucket_index_equals_a_plain_search_for_every_value)
{
    int want = 0;
    for (uint64_t v = 0; v < (uint64_t)1 << 24; v++) {
        while (v > counter_edges_us[want])
            want++;
        if (counter_bucket(v) != want)
            cr_assert_fail("value %llu µs: bucket %d, a search says %d", (unsigned long long)v,
                           counter_bucket(v), want);
    }
    cr_expect_eq(counter_bucket((uint64_t)1 << 24), COUNTER_NBUCKETS - 1);
    cr_expect_eq(counter_bucket((uint64_t)1 << 40), COUNTER_NBUCKETS - 1);
    cr_expect_eq(counter_bucket(UINT64_MAX), COUNTER_NBUCKETS - 1);
}

Test(counter, observe_is_inclusive_of_an_edge)
{
    struct counter_hist *h = hist_new();
    counter_observe(h, 5000);     /* exactly 0.005 s: le="0.005" */
    counter_observe(h, 5001);     /* just above */
    counter_observe(h, 10000000); /* 10 s */
    counter_observe(h, 10000001); /* +Inf */
    int b5 = counter_bucket(5000);
    cr_expect_eq(counter_edges_us[b5], 5000u);
    cr_expect_eq(counter_get(&h->bucket[b5]), 1);
    cr_expect_eq(counter_get(&h->bucket[b5 + 1]), 1);
    cr_expect_eq(counter_get(&h->bucket[COUNTER_NBUCKETS - 2]), 1);
    cr_expect_eq(counter_get(&h->bucket[COUNTER_NBUCKETS - 1]), 1);
    cr_expect_eq(counter_get(&h->sum_us), 5000 + 5001 + 10000000 + 10000001);
    free(h);
}

/* The case: a backend answering in 150 µs showed p50 2.50 ms and p99 4.95 ms. */
Test(counter, all_at_150us_estimates_150us)
{
    struct counter_hist *h = hist_new();
    for (int i = 0; i < 1000; i++)
        counter_observe(h, 150);
    double p50 = quantile_of(h, 0.5), p99 = quantile_of(h, 0.99);
    cr_expect(absd(p50 - 150e-6) <= 15e-6, "p50 %.7f s", p50);
    cr_expect(absd(p99 - 150e-6) <= 15e-6, "p99 %.7f s", p99);
    free(h);
}

/* Every single value from 10 µs to 10 s (1 % apart), alone: every quantile within ±10 %. */
Test(counter, a_single_value_anywhere_in_range_is_estimated_within_ten_percent)
{
    static const double qs[] = {0.0, 0.01, 0.5, 0.99, 1.0};
    for (double x = 10; x <= 1e7; x *= 1.01) {
        uint64_t v = (uint64_t)(x + 0.5);
        struct counter_hist h;
        memset(&h, 0, sizeof(h));
        for (int i = 0; i < 100; i++)
            counter_observe(&h, v);
        for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
            double got = quantile_of(&h, qs[k]), want = (double)v / 1e6;
            cr_expect(absd(got - want) <= 0.10 * want, "all at %llu µs: q%.2f estimated %.7f s",
                      (unsigned long long)v, qs[k], got);
        }
    }
}

Test(counter, mixed_distributions)
{
    enum { N = 20000 };
    uint64_t *v = malloc(N * sizeof(*v));
    cr_assert_not_null(v);

    /* a proxy's usual picture: most at ~200 µs, a slow tail at 3 ms and 40 ms */
    for (int i = 0; i < N; i++)
        v[i] = i < N * 90 / 100 ? 180 + rng() % 41 : i < N * 995 / 1000 ? 3000 : 40000;
    expect_accurate("200 µs with a tail", v, N);

    /* two clusters: half at 100-120 µs, half at 8-9 ms */
    for (int i = 0; i < N; i++)
        v[i] = i % 2 ? 100 + rng() % 21 : 8000 + rng() % 1001;
    expect_accurate("two clusters", v, N);

    /* log-uniform over the whole range, 10 µs to 10 s */
    for (int i = 0; i < N; i++)
        v[i] = rng_log(10, 13822); /* 1.001^13822 = 1e6 */
    expect_accurate("log-uniform 10 µs..10 s", v, N);

    /* uniform 0..50 ms (linear: most mass in the wide buckets) */
    for (int i = 0; i < N; i++)
        v[i] = 1 + rng() % 50000;
    expect_accurate("uniform 0..50 ms", v, N);
    free(v);
}

Test(counter, quantile_edge_cases)
{
    uint64_t b[COUNTER_NBUCKETS] = {0};
    cr_expect_lt(counter_quantile(b, 0.5), 0, "no observation: -1");
    b[COUNTER_NBUCKETS - 1] = 3;
    cr_expect_eq(counter_quantile(b, 0.5), 10.0, "past 10 s: 10 s, all that is known");
    memset(b, 0, sizeof(b));
    b[counter_bucket(7)] = 5; /* integers below 10 µs have a bucket each */
    cr_expect_eq(counter_quantile(b, 0.5), 7e-6);
}

/* The exposition's buckets: cum[k] is exactly the number of observations <= boundary k, and the
 * last (+Inf) is the count, for any mix, including values on and around each boundary. */
Test(counter, exported_buckets_are_exact_cumulative_counts)
{
    enum { N = 50000 };
    uint64_t *v = malloc(N * sizeof(*v));
    cr_assert_not_null(v);
    struct counter_hist *h = hist_new();
    for (int i = 0; i < N; i++) {
        if (i < 3 * COUNTER_NEXPORT)
            v[i] = counter_export_us[i / 3] + (uint64_t)(i % 3) - 1; /* edge - 1, edge, edge + 1 */
        else
            v[i] = rng_log(1, 18429); /* 1 µs .. 100 s */
        counter_observe(h, v[i]);
    }
    uint64_t b[COUNTER_NBUCKETS], cum[COUNTER_NEXPORT + 1];
    read_buckets(h, b);
    counter_export(b, cum);
    for (int k = 0; k < COUNTER_NEXPORT; k++) {
        uint64_t want = 0;
        for (int i = 0; i < N; i++)
            want += v[i] <= counter_export_us[k];
        cr_expect_eq(cum[k], want, "le %u µs: %llu, counted %llu", counter_export_us[k],
                     (unsigned long long)cum[k], (unsigned long long)want);
    }
    cr_expect_eq(cum[COUNTER_NEXPORT], (uint64_t)N, "+Inf equals the count");
    free(v);
    free(h);
}
