/* Unit tests for generation lifetime: references per user (process, worker, control thread), pins
 * per request on a worker, the old generation freed by whoever lets it go last, and backends shared
 * by identity outliving the generation that created them. ASan's leak check (make MODE=asan unit)
 * catches a generation or backend that is never freed. */
#include <criterion/criterion.h>

#include <string.h>

#include "upstream/backend.h"
#include "base/counter.h"
#include "config/config.h"
#include "core/generation.h"
#include "core/obs.h"
#include "core/worker_ctx.h"

static struct config *load(const char *yaml)
{
    struct config *cfg = NULL;
    cr_assert_eq(config_load_buffer("t.yaml", yaml, strlen(yaml), NULL, &cfg), 0, "%s", yaml);
    return cfg;
}

#define ONE "backends:\n  - http://127.0.0.1:8081/\n  - http://127.0.0.1:8082/\n"
#define TWO "backends:\n  - http://127.0.0.1:8082/\n  - http://127.0.0.1:8083/\n"

Test(generation, a_reload_shares_backends_by_identity_and_frees_the_rest_last)
{
    struct generation *g1 = generation_new(load(ONE), NULL, 2, 1);
    cr_assert_not_null(g1);
    cr_expect_eq(atomic_load(&g1->holders), 1);
    struct generation *g2 = generation_new(load(TWO), g1, 2, 2);
    cr_assert_not_null(g2);
    struct backend *shared = g2->table->b[0];
    cr_expect_eq(shared, g1->table->b[1], ":8082 is one object in both");
    cr_expect_eq(atomic_load(&shared->refs), 2);
    generation_unref(g1); /* frees g1 and :8081; :8082 lives on in g2 */
    cr_expect_eq(atomic_load(&shared->refs), 1);
    cr_expect_str_eq(shared->name, "127.0.0.1:8082");
    generation_unref(g2);
}

Test(generation, publish_and_acquire_hand_out_references)
{
    struct generation *g1 = generation_new(load(ONE), NULL, 1, 1);
    cr_assert_null(generation_publish(g1), "nothing ran before");
    struct generation *a = generation_acquire();
    cr_expect_eq(a, g1);
    cr_expect_eq(atomic_load(&g1->holders), 2, "the process's and the caller's");
    struct generation *g2 = generation_new(load(TWO), g1, 1, 2);
    struct generation *old = generation_publish(g2);
    cr_expect_eq(old, g1, "publish returns the replaced one with the process's reference");
    generation_unref(old);
    cr_expect_eq(atomic_load(&g1->holders), 1, "the control thread still holds it");
    cr_expect_eq(a->cfg->backends[0].port, 8081, "and may still read it");
    generation_unref(a);
    struct generation *b = generation_acquire();
    cr_expect_eq(b, g2);
    generation_unref(b);
    generation_unref(generation_publish(NULL));
}

Test(generation, a_worker_keeps_an_old_generation_while_its_requests_run)
{
    struct generation *g1 = generation_new(load(ONE), NULL, 2, 1);
    struct generation *g2 = generation_new(load(TWO), g1, 2, 2);
    struct worker_ctx w;
    memset(&w, 0, sizeof(w));
    w.id = 1;
    w.gen = g1;
    generation_ref(g1); /* the worker's reference, as worker_init takes it */
    worker_ctx_pin(&w, g1); /* two requests start on g1 */
    worker_ctx_pin(&w, g1);
    cr_expect_eq(g1->pw[1].pins, 2);
    cr_expect_eq(g1->pw[0].pins, 0, "another worker's slot is untouched");
    /* the worker adopts g2 (the step worker.c's adoption ends with): g1 stays referenced, its
     * pins are not 0 */
    generation_ref(g2); /* the worker's, as the reload hands it over */
    generation_adopt(&w.gen, g2, w.id);
    cr_expect_eq(w.gen, g2);
    cr_expect_eq(atomic_load(&g1->holders), 2, "pinned on worker 1: the worker keeps g1");
    generation_unref(g1); /* the process's reference: published g2 */
    cr_expect_eq(atomic_load(&g1->holders), 1, "only the worker holds g1 now");
    worker_ctx_unpin(&w, g1);
    cr_expect_eq(atomic_load(&g1->holders), 1, "one request still runs on g1");
    worker_ctx_unpin(&w, g1); /* the last one: the worker drops g1, which is freed */
    worker_ctx_pin(&w, g2);
    worker_ctx_unpin(&w, g2);
    cr_expect_eq(atomic_load(&g2->holders), 2, "current: unpinning the last request keeps it");
    generation_unref(g2);
    generation_unref(g2);
}

Test(generation, adopting_several_in_a_row_lets_go_of_each_unpinned_one)
{
    struct generation *g1 = generation_new(load(ONE), NULL, 2, 1);
    struct generation *g2 = generation_new(load(TWO), g1, 2, 2);
    struct generation *g3 = generation_new(load(ONE), g2, 2, 3);
    struct generation *cur = g1;
    generation_ref(g1); /* worker 0's */
    generation_pin(g2, 1); /* another worker's request on g2 must not keep it on worker 0 */
    generation_ref(g2);
    generation_adopt(&cur, g2, 0);
    cr_expect_eq(atomic_load(&g1->holders), 1, "g1, unpinned on worker 0: let go");
    generation_ref(g3);
    generation_adopt(&cur, g3, 0);
    cr_expect_eq(cur, g3);
    cr_expect_eq(atomic_load(&g2->holders), 1, "the intermediate one: let go as well");
    generation_ref(g3);
    generation_adopt(&cur, g3, 0); /* the same one again: no second reference kept */
    cr_expect_eq(atomic_load(&g3->holders), 2);
    generation_unpin(g2, 1);
    generation_unref(cur);
    generation_unref(g1);
    generation_unref(g2);
    generation_unref(g3);
}

/* ---- pools ---- */

/* The default pool (two backends, one shared by URL with "api") and "api" with its own balance. */
#define POOLS_A                                                                                    \
    "backends:\n  - http://127.0.0.1:8081/\n  - http://127.0.0.1:8082/\n"                          \
    "pools:\n"                                                                                     \
    "  api:\n    balance: leastConnections\n    healthyThreshold: 3\n"                             \
    "    backends: [http://127.0.0.1:8082/, http://127.0.0.1:9000/]\n"                             \
    "  old:\n    backends: [http://127.0.0.1:9100/]\n"                                             \
    "routes:\n  - {name: a, match: {pathPrefix: /a}, pool: api}\n"                                 \
    "  - {name: o, match: {pathPrefix: /o}, pool: old}\n"

/* The reload: "old" removed, "new" added, "api" kept with one backend more. */
#define POOLS_B                                                                                    \
    "backends:\n  - http://127.0.0.1:8081/\n"                                                      \
    "pools:\n"                                                                                     \
    "  new:\n    backends: [http://127.0.0.1:9100/]\n"                                             \
    "  api:\n    backends: [http://127.0.0.1:9000/, http://127.0.0.1:8082/, "                      \
    "http://127.0.0.1:9001/]\n"                                                                    \
    "routes:\n  - {name: n, match: {pathPrefix: /n}, pool: new}\n"                                 \
    "  - {name: a, match: {pathPrefix: /a}, pool: api}\n"

Test(generation, every_pool_has_its_table_and_balancer_the_default_one_as_before)
{
    struct generation *g = generation_new(load(POOLS_A), NULL, 2, 1);
    cr_assert_not_null(g);
    cr_assert_eq(g->npools, 3);
    cr_expect_str_eq(g->pools[0].name, "default");
    cr_expect_str_eq(g->pools[1].name, "api");
    cr_expect_str_eq(g->pools[2].name, "old");
    cr_expect_eq(g->table, g->pools[0].table, "g->table is the default pool's");
    cr_expect_eq(g->pools[0].balancer, &g->balancer, "and so is g->balancer");
    cr_expect_eq(g->pools[1].balancer, &g->pools[1].lb);
    cr_expect_str_eq(g->pools[1].balancer->ops->name, "leastConnections", "the pool's balance");
    cr_expect_str_eq(g->balancer.ops->name, "roundRobin");
    cr_expect_eq(g->pools[1].balancer->table, g->pools[1].table);
    cr_expect_eq(g->pools[1].cfg.healthy_threshold, 3, "the pool's view of the configuration");
    cr_expect_eq(g->pools[1].cfg.nbackends, 2);
    cr_expect_eq(g->pools[1].cfg.backends[1].port, 9000);
    cr_expect_eq(g->nbackends, 5);
    cr_expect_eq(g->pools[1].first, 2);
    cr_expect_eq(g->pools[2].first, 4);
    /* the same URL in two pools: two objects, each knowing its pool */
    struct backend *d82 = g->pools[0].table->b[1], *a82 = g->pools[1].table->b[0];
    cr_expect_neq(d82, a82, "http://127.0.0.1:8082 in default and api: two backends");
    cr_expect_str_eq(d82->name, "127.0.0.1:8082");
    cr_expect_str_eq(a82->name, "127.0.0.1:8082", "the name (Host, metrics label) is the URL's");
    cr_expect_null(d82->pool);
    cr_expect_str_eq(a82->pool, "api");
    cr_expect_str_eq(backend_label(d82), "127.0.0.1:8082");
    cr_expect_str_eq(backend_label(a82), "api/127.0.0.1:8082");
    cr_expect_eq(generation_pool_find(g, "api"), &g->pools[1]);
    cr_expect_null(generation_pool_find(g, "nope"));
    cr_expect(generation_has_backend(g, a82));
    cr_expect_eq(g->nroutes, 2);
    cr_expect_str_eq(generation_route_stats(g, 1)->name, "o");
    cr_expect_null(generation_route_stats(g, -1), "no route matched: nothing to count");
    cr_expect_null(generation_route_stats(g, 2));
    generation_unref(g);
}

Test(generation, a_reload_carries_pools_backends_and_routes_over_by_name_and_identity)
{
    struct generation *g1 = generation_new(load(POOLS_A), NULL, 2, 1);
    cr_assert_not_null(g1);
    struct backend *d81 = g1->pools[0].table->b[0], *d82 = g1->pools[0].table->b[1];
    struct backend *a82 = g1->pools[1].table->b[0], *a90 = g1->pools[1].table->b[1];
    struct backend *o91 = g1->pools[2].table->b[0];
    struct obs_route *ra = generation_route_stats(g1, 0);
    counter_add(&a90->pw[1].m.requests[1], 7); /* state that must carry over */
    backend_set_state(a90, BACKEND_UP, "test");

    struct generation *g2 = generation_new(load(POOLS_B), g1, 2, 2);
    cr_assert_not_null(g2);
    cr_assert_eq(g2->npools, 3);
    const struct generation_pool *api = generation_pool_find(g2, "api");
    const struct generation_pool *nw = generation_pool_find(g2, "new");
    cr_assert(api && nw);
    cr_expect_eq(g2->pools[0].table->b[0], d81, "default keeps :8081");
    cr_expect_eq(api->table->b[0], a90, "api keeps :9000 (moved in the file: still one object)");
    cr_expect_eq(api->table->b[1], a82, "api keeps its own :8082...");
    cr_expect_neq(api->table->b[1], d82, "...not default's, which the reload removed");
    cr_expect_eq(counter_get(&api->table->b[0]->pw[1].m.requests[1]), 7, "counters carried over");
    cr_expect(backend_is_up(api->table->b[0]), "state carried over");
    cr_expect_eq(atomic_load(&api->table->b[2]->state), BACKEND_UNKNOWN, ":9001 is new");
    cr_expect_neq(nw->table->b[0], o91,
                  "pool new's :9100 is not pool old's: identity is pool and URL");
    cr_expect_str_eq(nw->table->b[0]->pool, "new");
    /* what a reload retires: the old generation's backends the new one does not have */
    cr_expect_not(generation_has_backend(g2, d82));
    cr_expect_not(generation_has_backend(g2, o91));
    cr_expect(generation_has_backend(g2, a82));
    cr_expect_eq(generation_route_stats(g2, 1), ra, "route a: the same counters");
    cr_expect_str_eq(generation_route_stats(g2, 0)->name, "n");
    cr_expect_eq(atomic_load(&a90->refs), 2, "listed by both generations' api pools");
    generation_unref(g1); /* frees d82, o91, route o; a82, a90 live on */
    cr_expect_eq(atomic_load(&a90->refs), 1);
    cr_expect_eq(atomic_load(&ra->refs), 1);
    cr_expect_str_eq(a82->name, "127.0.0.1:8082");
    generation_unref(g2);
}
