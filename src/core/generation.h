/* generation — one configuration as the data path sees it: config + backend table + balancer +
 * route table (core/route.h; compiled here, once per configuration; phase 1 of routing: built and
 * kept, not yet consulted by the exchange, which still sends every request to the default pool).
 *
 * A generation is immutable once published. Reloading builds a new one (its backend table takes
 * the running table's backends by identity, so their state carries over) and publishes it with one
 * pointer swap; each worker adopts it between two events (worker.c), and every request keeps the
 * generation it started with until it ends. The old generation is freed by whoever drops its last
 * reference: no worker uses it any more.
 *
 * References (`holders`, atomic) are taken per *user*, not per request:
 *   - the process (the published one), until the next publish;
 *   - each worker while the generation is its current one or any of its requests still uses it.
 *     Requests count in the worker's own slot (`pw[worker].pins`, plain integers, one cache line
 *     per worker): no shared read-modify-write per request;
 *   - control threads (admin, reload) for the length of one call (generation_acquire).
 *
 *   control: publish(G2) ──► current = G2 ──► queue to workers ──► each: generation_adopt:
 *                                                       w->gen = G2, G1 unref'd unless pins[w] > 0
 *   worker: request starts: pin(w->gen) ... request ends: unpin(G1) → last one → unref(G1)
 */
#ifndef GOLB_GENERATION_H
#define GOLB_GENERATION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lb/balancer.h"

struct config;
struct backend_table;
struct route_table;

struct generation_worker {
    _Alignas(64) uint32_t pins; /* this worker's requests that started on the generation */
};

struct generation {
    uint64_t id; /* 1 at start-up, +1 per successful reload */
    struct config *cfg;
    struct backend_table *table;
    struct balancer balancer;
    struct route_table *routes; /* cfg's routes compiled (empty without `routes`) */
    _Atomic int holders;
    int nworkers;
    struct generation_worker *pw; /* [nworkers] */
};

/* A new generation for cfg (owned from now on, freed with the generation, also on failure), its
 * backends taken from prev's table by identity (prev may be NULL). One reference, the caller's.
 * Returns NULL on allocation failure. */
struct generation *generation_new(struct config *cfg, const struct generation *prev, int nworkers,
                                  uint64_t id);
void generation_ref(struct generation *g);
/* Drops a reference; the last one frees the generation (and backends no other table lists). */
void generation_unref(struct generation *g);

/* Publishes g as the running generation (taking over the caller's reference) and returns the one
 * it replaces (its reference now the caller's), or NULL. Control threads only. */
struct generation *generation_publish(struct generation *g);
/* How many generations exist now: the running one and those still referenced by a worker's
 * requests (golb_config_generations_live). Any thread. */
int generation_live(void);
/* The running generation with a reference for the caller, or NULL. Control threads only. */
struct generation *generation_acquire(void);

/* Worker side: a request on worker w starts / ends on g. */
static inline void generation_pin(struct generation *g, int w)
{
    g->pw[w].pins++;
}
/* Returns true when it was g's last request on w: the caller drops w's reference unless g is
 * still w's current generation. */
static inline bool generation_unpin(struct generation *g, int w)
{
    return --g->pw[w].pins == 0;
}

/* Worker w adopts g (the step every adoption ends with, on w's thread): *cur (w's current
 * generation) becomes g, whose reference the caller hands over, and w lets go of the one it
 * replaces unless requests on w still pin it (then its last unpin does). Adopting several
 * generations in a row lets go of each intermediate one the same way. The replaced generation may
 * be freed here: read what is needed of it before. */
void generation_adopt(struct generation **cur, struct generation *g, int w);

#endif
