/* counter — single-writer counters and latency histograms, read by other threads without locks.
 *
 * A counter is written by one thread only (a worker, or the health thread), so it moves by a
 * relaxed load and a relaxed store of value + d (counter_add): no lock, no shared
 * read-modify-write and no cache-line bouncing on the request path. Readers (a scrape, the admin
 * API) use relaxed loads; a 64-bit relaxed load is never torn on the platforms golb runs on, so
 * each value read is one the writer really wrote, at worst a few events old.
 *
 * A histogram keeps per-bucket (not cumulative) counts and the sum in microseconds; readers add
 * the buckets up, so the +Inf bucket always equals the count in one read. Who owns which counters
 * is decided above this layer (upstream/backend.h, core/obs.h); admin/metrics.c renders them.
 *
 * Latency buckets: COUNTER_NBUCKETS internal buckets on a log scale, fine enough that a quantile
 * interpolated inside one is within ±10 % from 10 µs to 10 s, and whose edges include every
 * boundary the Prometheus exposition publishes (counter_export_us), so each exported `le` series
 * is an exact sum of internal buckets. Edges are upper bounds in µs (bucket i holds
 * edge[i-1] < v <= edge[i], as `le`):
 *
 *   edge (µs)  1  2 .. 10 | 12  14 .. 90  100 | 110 .. 228  250 | .. | 9306049  10000000 | +Inf
 *              one integer   | each bucket's largest value <= 1.1 × its smallest            |
 *              each          | exported edges: 100 250 500 1000 2500 5000 .. 7500000 10000000
 *
 * 166 edges + Inf = 167 buckets: 1,344 bytes per histogram with the sum (one per worker for
 * client requests, two per backend per worker: response and connect). The edges come from
 * scripts/gen-counter-tables.py; the bucket of a value is found in O(1) without floating point:
 * its bit length and next COUNTER_FINE_BITS bits (HdrHistogram's index) pick a finer bucket, a
 * table maps that to an internal bucket, and one comparison finishes (counter_bucket).
 */
#ifndef GOLB_COUNTER_H
#define GOLB_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

#define COUNTER_NBUCKETS 167 /* internal buckets; the last one is +Inf */
#define COUNTER_FINE_BITS 4  /* counter_bucket's sub-buckets per power of two: 2^4 */
/* Each bucket's upper edge in µs, increasing; the last is UINT32_MAX (+Inf). */
extern const uint32_t counter_edges_us[COUNTER_NBUCKETS];

/* The boundaries the exposition publishes, in µs: OpenTelemetry's default HTTP boundaries
 * (0.005 s ... 10 s) and, below them, 0.0001, 0.00025, 0.0005, 0.001 and 0.0025 s, so that a
 * proxy's sub-millisecond latencies show. Every one is an edge of counter_edges_us. */
#define COUNTER_NEXPORT 19
extern const uint32_t counter_export_us[COUNTER_NEXPORT];

struct counter_hist {
    _Atomic uint64_t bucket[COUNTER_NBUCKETS];
    _Atomic uint64_t sum_us;
};

/* Single-writer increment (see the top comment). */
static inline void counter_add(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline uint64_t counter_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* The index of an HTTP status's class: 0 for 1xx ... 4 for 5xx (clamped). */
static inline int counter_status_class(int status)
{
    int i = status / 100 - 1;
    return i < 0 ? 0 : i > 4 ? 4 : i;
}

/* The bucket of an observation of `us` microseconds: the first i with us <= counter_edges_us[i]. */
int counter_bucket(uint64_t us);

/* Records one observation of `us` microseconds (single writer): two counter_add. */
void counter_observe(struct counter_hist *h, uint64_t us);

/* Cumulative counts from per-bucket counts `buckets` (COUNTER_NBUCKETS of them): cum[k] counts
 * the observations <= counter_export_us[k], cum[COUNTER_NEXPORT] all of them (+Inf). */
void counter_export(const uint64_t *buckets, uint64_t cum[COUNTER_NEXPORT + 1]);

/* Monotonic microseconds, for latencies. */
uint64_t counter_now_us(void);

/* Quantile q (0..1) of the observations counted in `buckets` (per-bucket counts, as a window's
 * difference of two reads), in seconds; -1 when there is none. Linear interpolation inside the
 * bucket that holds the rank: within ±10 % of the nearest-rank value (the ceil(q*n)-th smallest)
 * from 10 µs to 10 s (below, within 1 µs); a rank past 10 s answers 10 (all that is known). */
double counter_quantile(const uint64_t *buckets, double q);

#endif
