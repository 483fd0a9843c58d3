/* lb_rr — round-robin; smooth weighted round-robin when the effective weights differ.
 *
 * Equal weights (the default): one atomic counter shared by all workers. Each pick takes the next
 * ticket (fetch-add) and chooses the (ticket mod m)-th candidate, m being how many there are now.
 * Skipping a DOWN backend therefore never doubles up on its neighbour: with b0, b1 (down), b2 the
 * order is b0 b2 b0 b2, not b0 b2 b2 b0. The scan is O(n) over the table, which stays cheap for the
 * tens of backends a golb fronts.
 *
 * Unequal weights (configured, changed at run time, or a slow-start ramp): nginx's smooth weighted
 * round-robin. Every candidate's running score grows by its weight, the highest is chosen and
 * loses the total: weights 5,1,1 give a a b a c a a, never a long run of one backend, and over
 * sum(weights) picks each backend gets exactly its weight. The running scores are per worker (no
 * lock, no shared cache line); each worker's sequence is exact, so the sum over workers is too.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/backend.h"
#include "lb/balancer.h"

struct rr_state {
    _Alignas(64) atomic_uint_fast64_t next;
    int nworkers, n;
    struct lb_scratch *slots;
};

static void rr_destroy(void *state)
{
    struct rr_state *s = state;
    if (s)
        lb_scratch_free(s->slots, s->nworkers);
    free(s);
}

static void *rr_create(struct backend_table *table, const struct lb_params *params)
{
    struct rr_state *s = aligned_alloc(64, sizeof(struct rr_state));
    if (!s)
        return NULL;
    memset(s, 0, sizeof(*s));
    atomic_init(&s->next, 0);
    s->nworkers = params->nworkers > 0 ? params->nworkers : 1;
    s->n = table->n;
    s->slots = lb_scratch_new(s->nworkers, s->n);
    if (!s->slots) {
        rr_destroy(s);
        return NULL;
    }
    return s;
}

static int rr_pick(void *state, const struct lb_ctx *ctx)
{
    struct rr_state *s = state;
    struct lb_scratch *slot = lb_scratch_of(s->slots, s->nworkers, ctx);
    int n = ctx->table->n < s->n ? ctx->table->n : s->n;
    int eligible = 0;
    uint32_t first = 0;
    bool equal = true;
    for (int i = 0; i < n; i++) {
        uint32_t w = slot->w[i] = lb_weight(ctx, i);
        if (!w)
            continue;
        if (!eligible++)
            first = w;
        equal &= w == first;
    }
    if (eligible == 0)
        return -1;
    if (!equal)
        return lb_swrr(slot->cur, slot->w, n);
    uint64_t ticket = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
    int k = (int)(ticket % (uint64_t)eligible);
    for (int i = 0; i < n; i++)
        if (slot->w[i] && k-- == 0)
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
