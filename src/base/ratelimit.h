/* ratelimit — token buckets by key (for routes: a client address on a route) in a fixed-size
 * table that one thread owns: no lock, no allocation after ratelimit_new, bounded memory.
 *
 * A bucket holds up to `burst` tokens and gains `rate` tokens per second (kept in millionths of a
 * token, so 0.5 requests per second works); a request takes one token or is refused with the time
 * until the next one. The table is set-associative:
 *
 *   key ──hash──▶ set s: [way 0][way 1] ... [way 7]   each way {key, tokens, last refill}
 *
 * A key not in its set takes an empty way, or evicts the way refilled longest ago (the least
 * recently seen key of the set). An evicted key comes back with a full bucket: under more distinct
 * clients than the table holds, a client may get one burst more than its due, never less. Each
 * worker has its own table, so a client whose connections land on N workers may get up to N times
 * the rate: the price of taking no lock shared between workers.
 */
#ifndef GOLB_RATELIMIT_H
#define GOLB_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_WAYS 8

struct ratelimit;

/* A table of at least `entries` buckets (rounded up to a power of two sets of RATELIMIT_WAYS, at
 * least one set). NULL when memory runs out. */
struct ratelimit *ratelimit_new(size_t entries);
void ratelimit_free(struct ratelimit *rl);

/* Takes a token from key's bucket, which refills at rate_mrps thousandths of a token per second
 * (1..10^9) up to burst tokens (>= 1); now_ms is a monotonic clock. Returns 0 when the request
 * may go, else the milliseconds until a token will be there (>= 1): the caller answers 429 with
 * Retry-After rounded up to whole seconds. */
uint32_t ratelimit_take(struct ratelimit *rl, uint64_t key, uint32_t rate_mrps, uint32_t burst,
                        uint64_t now_ms);

/* Bytes the table holds (what ratelimit_new allocated). */
size_t ratelimit_memory(const struct ratelimit *rl);
/* Buckets the table holds. */
size_t ratelimit_capacity(const struct ratelimit *rl);

#endif
