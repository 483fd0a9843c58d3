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
 */
#ifndef GOLB_COUNTER_H
#define GOLB_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

/* OpenTelemetry's default HTTP duration boundaries, in microseconds (0.005 s ... 10 s). */
#define COUNTER_NBOUNDS 14
#define COUNTER_NBUCKETS (COUNTER_NBOUNDS + 1) /* the last one is +Inf */
extern const uint64_t counter_bounds_us[COUNTER_NBOUNDS];

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

/* Records one observation of `us` microseconds (single writer). */
void counter_observe(struct counter_hist *h, uint64_t us);

/* Monotonic microseconds, for latencies. */
uint64_t counter_now_us(void);

/* Quantile q (0..1) estimated from bucket counts by linear interpolation, in seconds; -1 when
 * there is no observation. */
double counter_quantile(const uint64_t *buckets, double q);

#endif
