/* Unit tests for generation lifetime: references per user (process, worker, control thread), pins
 * per request on a worker, the old generation freed by whoever lets it go last, and backends shared
 * by identity outliving the generation that created them. ASan's leak check (make MODE=asan unit)
 * catches a generation or backend that is never freed. */
#include <criterion/criterion.h>

#include <string.h>

#include "upstream/backend.h"
#include "config/config.h"
#include "core/generation.h"
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
