/* counter — see counter.h. */
#include "base/counter.h"

#include <time.h>

const uint64_t counter_bounds_us[COUNTER_NBOUNDS] = {
    5000, 10000, 25000, 50000, 75000, 100000, 250000, 500000, 750000,
    1000000, 2500000, 5000000, 7500000, 10000000,
};

uint64_t counter_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void counter_observe(struct counter_hist *h, uint64_t us)
{
    int i = 0;
    while (i < COUNTER_NBOUNDS && us > counter_bounds_us[i])
        i++;
    counter_add(&h->bucket[i], 1);
    counter_add(&h->sum_us, us);
}

double counter_quantile(const uint64_t *buckets, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < COUNTER_NBUCKETS; i++)
        total += buckets[i];
    if (total == 0)
        return -1;
    double rank = q * (double)total, seen = 0;
    for (int i = 0; i < COUNTER_NBUCKETS; i++) {
        if (seen + (double)buckets[i] >= rank && buckets[i] > 0) {
            double lo = i == 0 ? 0 : (double)counter_bounds_us[i - 1] / 1e6;
            if (i == COUNTER_NBOUNDS)
                return lo; /* past the last bound: the bound is all that is known */
            double hi = (double)counter_bounds_us[i] / 1e6;
            return lo + (hi - lo) * (rank - seen) / (double)buckets[i];
        }
        seen += (double)buckets[i];
    }
    return (double)counter_bounds_us[COUNTER_NBOUNDS - 1] / 1e6;
}
