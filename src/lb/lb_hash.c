/* lb_hash — consistent hashing on a request key (Maglev lookup table), with bounded loads.
 *
 * The table has M slots (M = 65537, a prime, or 655373 beyond 655 backends: M ≥ 100 × N keeps
 * each backend's share within about 1 % of its weight). Each backend has its own permutation of the
 * slots, (offset + j × skip) mod M, offset and skip from a hash of its address; backends take
 * turns claiming their next free slot, each turn worth its configured weight, until the table is
 * full (Maglev, NSDI '16, with weighted turns). A key is hashed (SipHash, fixed key: every worker
 * and every golb process agrees) to a slot; its backend is the slot's owner.
 *
 * Identical instances build identical tables: the table is a function of the set of (address,
 * configured weight) pairs alone. Permutations come from a fixed-key hash of each address, the
 * turns go in the order of those hashes (not of the configuration's list), and the weights are the
 * file's (balancer_init_config passes them), not the run-time ones an admin may have set or a
 * reload has yet to commit. So two golb processes, a restart, or a reload that keeps the set
 * send every key to the same backend.
 *
 * Health and weight-0 changes never rebuild the table: a slot whose owner is not a candidate
 * passes the key on to the next slot's owner, so only that backend's keys move, and they move back
 * when it returns. Adding or removing a backend in the configuration (a rebuild) moves about 1/N
 * of the keys. The table follows the configured weights (a weight changed at run time only takes
 * effect through 0 = no new keys).
 *
 * hashLoadFactor c (consistent hashing with bounded loads, Mirrokni et al.): a backend may hold at
 * most ceil(c × (in-flight + 1) × w / W) requests in flight (W the candidates' total weight); a key
 * whose backend is full walks on to the next slots' owners, so a hot key spills over instead of
 * overloading one backend. A request without the key is balanced like `random`.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/backend.h"
#include "lb/balancer.h"
#include "config/config.h"

struct hash_state {
    int nworkers, n;
    uint32_t m;
    int32_t *table;
    struct lb_scratch *slots;
};

uint32_t lb_maglev_size(int n)
{
    return n <= 655 ? 65537u : 655373u;
}

struct turn {
    uint64_t id;
    int idx;
};

static int by_id(const void *a, const void *b)
{
    const struct turn *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return x->idx - y->idx;
}

int lb_maglev_build(const uint64_t *ids, const uint32_t *weights, int n, uint32_t m, int32_t *table)
{
    if (n <= 0)
        return -1;
    uint64_t *offset = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *skip = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *next = calloc((size_t)n, sizeof(uint64_t));
    uint64_t *credit = calloc((size_t)n, sizeof(uint64_t));
    struct turn *order = calloc((size_t)n, sizeof(*order));
    if (!offset || !skip || !next || !credit || !order) {
        free(offset);
        free(skip);
        free(next);
        free(credit);
        free(order);
        return -1;
    }
    /* Turns in the order of the ids, not of the list: the same set, the same table. */
    for (int i = 0; i < n; i++)
        order[i] = (struct turn){.id = ids[i], .idx = i};
    qsort(order, (size_t)n, sizeof(*order), by_id);
    uint32_t wmax = 1;
    for (int i = 0; i < n; i++) {
        uint64_t h2 = ids[i] * 0x9E3779B97F4A7C15ull ^ (ids[i] >> 29);
        offset[i] = ids[i] % m;
        skip[i] = h2 % (m - 1) + 1;
        if (weights[i] > wmax)
            wmax = weights[i];
    }
    for (uint32_t s = 0; s < m; s++)
        table[s] = -1;
    uint32_t filled = 0;
    while (filled < m) {
        for (int k = 0; k < n && filled < m; k++) {
            int i = order[k].idx;
            credit[i] += weights[i] ? weights[i] : 1;
            while (credit[i] >= wmax && filled < m) {
                credit[i] -= wmax;
                uint64_t c = (offset[i] + next[i] * skip[i]) % m;
                while (table[c] >= 0) {
                    next[i]++;
                    c = (offset[i] + next[i] * skip[i]) % m;
                }
                table[c] = i;
                next[i]++;
                filled++;
            }
        }
    }
    free(offset);
    free(skip);
    free(next);
    free(credit);
    free(order);
    return 0;
}

int lb_hash_lookup(const int32_t *table, uint32_t m, const struct lb_ctx *ctx, uint32_t *w,
                   uint64_t key, uint32_t load_factor)
{
    int n = ctx->table->n, count = 0;
    uint64_t total_w = 0, total_active = 0;
    for (int i = 0; i < n; i++) {
        w[i] = lb_weight(ctx, i);
        if (!w[i])
            continue;
        count++;
        total_w += w[i];
        total_active += atomic_load_explicit(&ctx->table->b[i]->active, memory_order_relaxed);
    }
    if (!count)
        return -1;
    uint32_t pos = (uint32_t)(key % m);
    for (uint32_t k = 0; k < m; k++) {
        int32_t i = table[(pos + k) % m];
        if (i < 0 || i >= n || !w[i])
            continue;
        if (load_factor) {
            /* cap = ceil(c × (total + 1) × w / W), c in thousandths */
            uint64_t num = (uint64_t)load_factor * (total_active + 1) * w[i];
            uint64_t den = 1000u * total_w;
            uint64_t cap = (num + den - 1) / den;
            uint64_t a = atomic_load_explicit(&ctx->table->b[i]->active, memory_order_relaxed);
            if (a + 1 > cap)
                continue;
        }
        return i;
    }
    return lb_p2c(ctx, w); /* every candidate full: only under races */
}

static void hash_destroy(void *state)
{
    struct hash_state *s = state;
    if (!s)
        return;
    lb_scratch_free(s->slots, s->nworkers);
    free(s->table);
    free(s);
}

static void *hash_create(struct backend_table *table, const struct lb_params *params)
{
    struct hash_state *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->nworkers = params->nworkers > 0 ? params->nworkers : 1;
    s->n = table->n;
    s->m = lb_maglev_size(table->n);
    s->slots = lb_scratch_new(s->nworkers, table->n);
    s->table = calloc(s->m, sizeof(int32_t));
    uint64_t *ids = calloc((size_t)(table->n ? table->n : 1), sizeof(uint64_t));
    uint32_t *weights = calloc((size_t)(table->n ? table->n : 1), sizeof(uint32_t));
    static const uint64_t seed[2] = {0x6d61676c65762d31ull, 0x676f6c622d6d6167ull};
    int rc = -1;
    if (s->slots && s->table && ids && weights) {
        for (int i = 0; i < table->n; i++) {
            const char *name = table->b[i]->name;
            ids[i] = lb_siphash(seed, name, strlen(name));
            weights[i] = params->weights
                             ? params->weights[i]
                             : atomic_load_explicit(&table->b[i]->weight, memory_order_relaxed);
        }
        rc = table->n ? lb_maglev_build(ids, weights, table->n, s->m, s->table) : 0;
    }
    free(ids);
    free(weights);
    if (rc != 0) {
        hash_destroy(s);
        return NULL;
    }
    return s;
}

static int hash_pick(void *state, const struct lb_ctx *ctx)
{
    struct hash_state *s = state;
    uint32_t *w = lb_scratch_of(s->slots, s->nworkers, ctx)->w;
    if (!ctx->req->has_key || ctx->table->n != s->n)
        return lb_p2c(ctx, w);
    return lb_hash_lookup(s->table, s->m, ctx, w, ctx->req->key, ctx->params->load_factor);
}

const struct lb_ops lb_hash_ops = {
    .name = "hash",
    .uses_key = true,
    .create = hash_create,
    .destroy = hash_destroy,
    .pick = hash_pick,
    .release = NULL,
};
