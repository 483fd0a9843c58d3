/* lb_rr — round-robin over the eligible backends with one atomic counter shared by all workers.
 *
 * Each pick takes the next ticket (fetch-add) and chooses the (ticket mod m)-th eligible backend,
 * m being how many are eligible now. Skipping a DOWN backend therefore never doubles up on its
 * neighbour: with b0, b1 (down), b2 the order is b0 b2 b0 b2, not b0 b2 b2 b0. The scan is O(n)
 * over the table, which stays cheap for the tens of backends a golb fronts.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend.h"
#include "balancer.h"

struct rr_state {
    _Alignas(64) atomic_uint_fast64_t next;
};

static void *rr_create(struct backend_table *table)
{
    struct rr_state *s = aligned_alloc(64, sizeof(struct rr_state));
    if (s)
        atomic_init(&s->next, 0);
    return s;
}

static void rr_destroy(void *state)
{
    free(state);
}

static int rr_pick(void *state, struct backend_table *table, const struct lb_tried *tried)
{
    struct rr_state *s = state;
    int eligible = 0;
    for (int i = 0; i < table->n; i++)
        eligible += lb_eligible(table, tried, i);
    if (eligible == 0)
        return -1;
    uint64_t ticket = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
    int k = (int)(ticket % (uint64_t)eligible);
    for (int i = 0; i < table->n; i++) {
        if (!lb_eligible(table, tried, i))
            continue;
        if (k-- == 0)
            return i;
    }
    /* A backend went down between the two scans: take the first still eligible. */
    for (int i = 0; i < table->n; i++)
        if (lb_eligible(table, tried, i))
            return i;
    return -1;
}

const struct lb_ops lb_rr_ops = {
    .name = "roundRobin",
    .create = rr_create,
    .destroy = rr_destroy,
    .pick = rr_pick,
    .release = NULL,
};
