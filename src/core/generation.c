/* generation — see generation.h. */
#include "core/generation.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/route.h"
#include "upstream/backend.h"
#include "config/config.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct generation *current;
static atomic_int live; /* generations allocated and not freed yet */

static void generation_free(struct generation *g)
{
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    if (g->balancer.ops)
        balancer_destroy(&g->balancer);
    route_table_free(g->routes);
    backend_table_free(g->table);
    config_free(g->cfg);
    free(g->pw);
    free(g);
}

struct generation *generation_new(struct config *cfg, const struct generation *prev, int nworkers,
                                  uint64_t id)
{
    struct generation *g = calloc(1, sizeof(*g));
    if (!g) {
        config_free(cfg);
        return NULL;
    }
    atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    g->id = id;
    g->cfg = cfg;
    g->nworkers = nworkers > 0 ? nworkers : 1;
    atomic_init(&g->holders, 1);
    g->pw = aligned_alloc(_Alignof(struct generation_worker),
                          (size_t)g->nworkers * sizeof(*g->pw));
    g->table = backend_table_new(cfg, prev ? prev->table : NULL, g->nworkers);
    g->routes = route_table_build(cfg);
    if (!g->pw || !g->table || !g->routes) {
        generation_free(g);
        return NULL;
    }
    memset(g->pw, 0, (size_t)g->nworkers * sizeof(*g->pw));
    if (balancer_init_config(&g->balancer, cfg, g->table) != 0) {
        generation_free(g);
        return NULL;
    }
    return g;
}

void generation_ref(struct generation *g)
{
    atomic_fetch_add_explicit(&g->holders, 1, memory_order_relaxed);
}

void generation_unref(struct generation *g)
{
    if (g && atomic_fetch_sub_explicit(&g->holders, 1, memory_order_acq_rel) == 1)
        generation_free(g);
}

void generation_adopt(struct generation **cur, struct generation *g, int w)
{
    struct generation *old = *cur;
    *cur = g;
    if (old == g)
        generation_unref(g); /* already current: w keeps the one reference it had */
    else if (old && old->pw[w].pins == 0)
        generation_unref(old);
}

struct generation *generation_publish(struct generation *g)
{
    pthread_mutex_lock(&current_lock);
    struct generation *old = current;
    current = g;
    pthread_mutex_unlock(&current_lock);
    return old;
}

int generation_live(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed);
}

struct generation *generation_acquire(void)
{
    pthread_mutex_lock(&current_lock);
    struct generation *g = current;
    if (g)
        generation_ref(g);
    pthread_mutex_unlock(&current_lock);
    return g;
}
