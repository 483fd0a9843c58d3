/* generation — one configuration as the data path sees it: config + pools (each a backend table
 * and a balancer) + route table (core/route.h; compiled here, once per configuration) + the
 * routes' counter objects (core/obs.h). Each request takes the route it matches and the pool that
 * route names (core/exchange_route.c); without routes, the default pool (pools[0]).
 *
 *   generation ── cfg ── pools[0] "default" ── view (config_pool_view) ── table [b0 b1] ── balancer
 *              │         pools[1] "api"     ── view                    ── table [b2 b3] ── balancer
 *              ├─ table, balancer: pools[0]'s (callers from before pools)
 *              ├─ routes (route_match → index i) ── route_stats[i]: that route's counters
 *              └─ pw[worker].pins
 *
 * Identity: a backend object belongs to one pool and is carried over by (pool name, URL): pool
 * "api" of the new generation takes its objects from pool "api" of the previous one. The same URL
 * in two pools is two objects (own state, counters, connections, admin overrides).
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

#include "config/config.h" /* struct config: each pool keeps its view by value */

struct backend;
struct backend_table;
struct dns;
struct obs_route;
struct route_table;

struct generation_worker {
    _Alignas(64) uint32_t pins; /* this worker's requests that started on the generation */
};

/* One pool of a generation (cfg->pools[i]): its backends and how they are balanced. */
struct generation_pool {
    const char *name;         /* cfg->pools[i].name: "default" for pools[0] */
    struct config cfg;        /* cfg as this pool sees it (config_pool_view): its backends in
                                 cfg.backends (table->b[k] is cfg.backends[k]), its balancing,
                                 health, timeouts, retries, maxFails, upstreamMaxIdle */
    struct backend_table *table;
    struct balancer *balancer; /* pools[0]: &g->balancer; the others: &lb */
    struct balancer lb;
    int first;                /* the index of its first backend among all the generation's
                                 (pools in order, then each pool's table): admin rows, samples */
    /* With `resolve:` backends, cfg.backends is the pool's list with each of them replaced by
     * what DNS answered (one backend per address, named "address:port"): that array and the
     * strings of the resolved entries are the generation's (the others borrow the config's). */
    struct config_backend *expanded;
    char **strs;
    int nstrs;
};

struct generation {
    uint64_t id; /* 1 at start-up, +1 per successful reload */
    struct config *cfg;
    int npools;
    struct generation_pool *pools; /* [npools], cfg->pools' order; pools[0] is "default" */
    int nbackends;                 /* over every pool */
    /* The default pool's table and balancer (pools[0]'s): admin, health and tests read these;
     * an exchange reads its own pool's. */
    struct backend_table *table;
    struct balancer balancer;
    struct route_table *routes; /* cfg's routes compiled (empty without `routes`) */
    int nroutes;                /* cfg->nroutes */
    bool routing; /* requests are routed (exchange_route): there are routes, or encodedSlash:
                     reject, or no default pool to send an unmatched request to. False: every
                     request goes to pools[0] as it came, at no cost */
    /* the file has top-level backends (fixed or `resolve:`): a pool "default" takes what no route
     * does, even while DNS left it empty (503 then); without any, such a request is a 404 */
    bool has_default;
    struct obs_route **route_stats; /* [nroutes]: route i's counters (obs.h), carried by name */
    _Atomic int holders;
    int nworkers;
    struct generation_worker *pw; /* [nworkers] */
};

/* A new generation for cfg (owned from now on, freed with the generation, also on failure): one
 * pool per cfg->pools entry, each pool's backends taken by identity from prev's pool of the same
 * name (prev may be NULL), the routes' counters from prev's routes of the same name. One
 * reference, the caller's. Returns NULL on allocation failure. */
struct generation *generation_new(struct config *cfg, const struct generation *prev, int nworkers,
                                  uint64_t id);
/* The same, each `resolve:` backend standing for dns's published set of its name (dns_lookup);
 * dns NULL: they stand for nothing. */
struct generation *generation_new_dns(struct config *cfg, const struct generation *prev,
                                      int nworkers, uint64_t id, struct dns *dns);
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

/* The pool called `name`, or NULL. */
struct generation_pool *generation_pool_find(const struct generation *g, const char *name);
/* True when b is one of g's backends (any pool): a reload's removed backends are those of the
 * old generation for which this is false. */
bool generation_has_backend(const struct generation *g, const struct backend *b);
/* The counter object of route i (route_match's index) for obs_req_route / obs_route_done; NULL
 * when i is not a route of g (-1: no route matched). */
static inline struct obs_route *generation_route_stats(const struct generation *g, int i)
{
    return i >= 0 && i < g->nroutes && g->route_stats ? g->route_stats[i] : NULL;
}

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
