/* lb_lc — least connections: the fewest requests in flight relative to weight.
 *
 * Scores are active / weight, compared exactly by cross-multiplication. The least loaded are the
 * backends whose score is at most the lowest (active + m) / weight, m a margin drawn uniformly in
 * [⅜, ⅞) of a request at each pick (measured: [¼, ¾) left the heaviest of weights 1/2/4 five points
 * short, a fixed ½ seven points over): with equal weights exactly those with the fewest in flight;
 * with unequal weights the margin keeps a heavy backend that holds one request more than a light
 * one among the least loaded part of the time. They are taken in
 * smooth weighted round-robin order (lb_swrr, running scores per worker), so equal backends still
 * rotate, and at low load, when nearly everything is tied, the shares follow the weights (HAProxy's
 * and nginx's least-connections fall back to plain rotation there and ignore the weights).
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/backend.h"
#include "lb/balancer.h"

struct lc_state {
    int nworkers;
    struct lb_scratch *slots;
};

static void lc_destroy(void *state)
{
    struct lc_state *s = state;
    if (s)
        lb_scratch_free(s->slots, s->nworkers);
    free(s);
}

static void *lc_create(struct backend_table *table, const struct lb_params *params)
{
    struct lc_state *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->nworkers = params->nworkers > 0 ? params->nworkers : 1;
    s->slots = lb_scratch_new(s->nworkers, table->n);
    if (!s->slots) {
        lc_destroy(s);
        return NULL;
    }
    return s;
}

static int lc_pick(void *state, const struct lb_ctx *ctx)
{
    struct lc_state *s = state;
    struct lb_scratch *slot = lb_scratch_of(s->slots, s->nworkers, ctx);
    int n = ctx->table->n, best = -1;
    /* the lowest (active + m) / w, as best_num / (1024 × best_w); m uniform in [⅜, ⅞) per pick */
    uint64_t best_num = 0, best_w = 1, u = 384 + lb_rand() % 512;
    for (int i = 0; i < n; i++) {
        uint32_t w = slot->w[i] = lb_weight(ctx, i);
        if (!w)
            continue;
        uint64_t num = 1024 * (uint64_t)atomic_load_explicit(&ctx->table->b[i]->active,
                                                             memory_order_relaxed) + u;
        if (best < 0 || num * best_w < best_num * w) {
            best = i;
            best_num = num;
            best_w = w;
        }
    }
    if (best < 0)
        return -1;
    /* The least loaded: active / w ≤ (that lowest active + m) / its w. With equal weights these are
     * exactly the backends with the fewest in flight; with unequal ones a heavy backend one request
     * above a light one may still count as least loaded, so low-load shares follow the weights (a
     * random m sits between the discrete thresholds that a fixed one falls on either side of). */
    int ties = 0;
    for (int i = 0; i < n; i++) {
        if (!slot->w[i])
            continue;
        uint64_t a = atomic_load_explicit(&ctx->table->b[i]->active, memory_order_relaxed);
        if (1024 * a * best_w <= best_num * slot->w[i])
            ties++;
        else
            slot->w[i] = 0;
    }
    if (ties == 0)
        return best;
    int pick = lb_swrr(slot->cur, slot->w, n);
    return pick >= 0 ? pick : best;
}

const struct lb_ops lb_lc_ops = {
    .name = "leastConnections",
    .create = lc_create,
    .destroy = lc_destroy,
    .pick = lc_pick,
    .release = NULL,
};
