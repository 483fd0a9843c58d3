/* lb_random — power of two random choices (HAProxy's `random`, its default since 3.3).
 *
 * Two distinct candidates are drawn at random, each in proportion to its effective weight, and the
 * one with fewer requests in flight relative to its weight wins; the second must win by more than
 * a margin of ¼ to ¾ of a request (see lb_p2c), so on a tie or near-tie the first drawn keeps it. At low
 * load (nothing in flight) that is weighted random, so the shares follow the weights; under load
 * the in-flight comparison steers away from busy backends, and since each pick looks at only two,
 * picks made at the same moment by several workers do not all land on the same least-loaded
 * backend (no herding). No shared state besides the backends' in-flight counters.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/backend.h"
#include "lb/balancer.h"

int lb_draw2(const struct lb_ctx *ctx, uint32_t *w, int *a, int *b)
{
    int n = ctx->table->n, count = 0;
    uint64_t total = 0;
    *a = *b = -1;
    for (int i = 0; i < n; i++) {
        w[i] = lb_weight(ctx, i);
        total += w[i];
        count += w[i] != 0;
    }
    if (count == 0)
        return 0;
    uint64_t r = lb_rand() % total;
    for (int i = 0; i < n && *a < 0; i++) {
        if (r < w[i])
            *a = i;
        else
            r -= w[i];
    }
    if (count == 1)
        return 1;
    r = lb_rand() % (total - w[*a]);
    for (int i = 0; i < n && *b < 0; i++) {
        if (i == *a)
            continue;
        if (r < w[i])
            *b = i;
        else
            r -= w[i];
    }
    return count;
}

int lb_p2c(const struct lb_ctx *ctx, uint32_t *w)
{
    int a, b;
    int count = lb_draw2(ctx, w, &a, &b);
    if (count < 2)
        return a;
    uint64_t fa = atomic_load_explicit(&ctx->table->b[a]->active, memory_order_relaxed);
    uint64_t fb = atomic_load_explicit(&ctx->table->b[b]->active, memory_order_relaxed);
    /* The first drawn keeps the pick unless the second is less loaded even when charged a margin
     * m more: fa / w[a] > (fb + m) / w[b], without division. m is drawn uniformly in [¼, ¾) of a
     * request at each pick. With equal weights that is plain "fewer in flight wins, ties to the
     * first" whatever m; with unequal ones, a heavy backend holding one request more than a light
     * one is not always "more loaded", and a random m (rather than a fixed ½) sits between the
     * discrete thresholds of the weight ratios, so the shares stay near the weights at low load
     * instead of drifting toward equal (or past the weights). */
    uint64_t u = 256 + lb_rand() % 512;
    return 1024 * fa * w[b] > (1024 * fb + u) * w[a] ? b : a;
}

struct random_state {
    int nworkers;
    struct lb_scratch *slots;
};

static void random_destroy(void *state)
{
    struct random_state *s = state;
    if (s)
        lb_scratch_free(s->slots, s->nworkers);
    free(s);
}

static void *random_create(struct backend_table *table, const struct lb_params *params)
{
    struct random_state *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->nworkers = params->nworkers > 0 ? params->nworkers : 1;
    s->slots = lb_scratch_new(s->nworkers, table->n);
    if (!s->slots) {
        random_destroy(s);
        return NULL;
    }
    return s;
}

static int random_pick(void *state, const struct lb_ctx *ctx)
{
    struct random_state *s = state;
    return lb_p2c(ctx, lb_scratch_of(s->slots, s->nworkers, ctx)->w);
}

const struct lb_ops lb_random_ops = {
    .name = "random",
    .create = random_create,
    .destroy = random_destroy,
    .pick = random_pick,
    .release = NULL,
};
