/* Unit tests for balancer + lb_rr: exact order, skipping down and tried backends without
 * breaking the rotation, and an even spread when 8 threads pick 1,000,000 times. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/backend.h"
#include "http/http.h"
#include "lb/balancer.h"
#include "config/config.h"
#include "base/log.h"

static struct config cfg;
static struct config_backend cbs[8];

static struct backend_table *make_table(int n)
{
    memset(&cfg, 0, sizeof(cfg));
    static char names[8][16];
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "b%d", i);
        cbs[i] = (struct config_backend){.name = names[i], .weight = 1};
    }
    cfg.nbackends = n;
    cfg.backends = cbs;
    struct backend_table *t = backend_table_new(&cfg, NULL, 1);
    for (int i = 0; i < n; i++)
        atomic_store(&t->b[i]->state, BACKEND_UP);
    return t;
}

static void quiet(void)
{
    log_set_level(LOG_ERROR);
}

Test(balancer, registry_finds_round_robin)
{
    cr_expect_eq(balancer_find("roundRobin"), &lb_rr_ops);
    cr_expect_null(balancer_find("nope"));
}

Test(balancer, round_robin_strict_order, .init = quiet)
{
    struct backend_table *t = make_table(3);
    struct balancer b;
    cr_assert_eq(balancer_init(&b, &lb_rr_ops, t), 0);
    for (int i = 0; i < 30; i++)
        cr_expect_eq(balancer_pick(&b, NULL, NULL), i % 3, "pick %d", i);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(balancer, down_backend_is_skipped_without_doubling_a_neighbour, .init = quiet)
{
    struct backend_table *t = make_table(3);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    backend_set_state(t->b[1], BACKEND_DOWN, "test");
    int seen[3] = {0};
    int prev = -1;
    for (int i = 0; i < 20; i++) {
        int idx = balancer_pick(&b, NULL, NULL);
        cr_assert_neq(idx, 1);
        cr_expect_neq(idx, prev, "the same backend twice in a row at pick %d", i);
        prev = idx;
        seen[idx]++;
    }
    cr_expect_eq(seen[0], 10);
    cr_expect_eq(seen[2], 10);
    backend_set_state(t->b[1], BACKEND_UP, "test");
    int again[3] = {0};
    for (int i = 0; i < 30; i++)
        again[balancer_pick(&b, NULL, NULL)]++;
    cr_expect_eq(again[0], 10);
    cr_expect_eq(again[1], 10);
    cr_expect_eq(again[2], 10);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(balancer, unknown_and_down_backends_get_nothing, .init = quiet)
{
    struct backend_table *t = make_table(2);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    atomic_store(&t->b[0]->state, BACKEND_UNKNOWN);
    backend_set_state(t->b[1], BACKEND_DOWN, "test");
    cr_expect_eq(balancer_pick(&b, NULL, NULL), -1);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(balancer, tried_backends_are_skipped, .init = quiet)
{
    struct backend_table *t = make_table(3);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    struct lb_tried tried = {0};
    int first = balancer_pick(&b, NULL, &tried);
    lb_tried_add(&tried, first);
    int second = balancer_pick(&b, NULL, &tried);
    cr_expect_neq(second, first);
    lb_tried_add(&tried, second);
    int third = balancer_pick(&b, NULL, &tried);
    cr_expect_neq(third, first);
    cr_expect_neq(third, second);
    lb_tried_add(&tried, third);
    cr_expect_eq(balancer_pick(&b, NULL, &tried), -1);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(balancer, passive_failures_mark_down_after_max_fails, .init = quiet)
{
    struct backend_table *t = make_table(1);
    backend_report_failure(t->b[0], 3, "refused");
    backend_report_failure(t->b[0], 3, "refused");
    cr_expect(backend_is_up(t->b[0]));
    backend_report_success(t->b[0]);
    backend_report_failure(t->b[0], 3, "refused");
    backend_report_failure(t->b[0], 3, "refused");
    cr_expect(backend_is_up(t->b[0]), "a success must reset the count");
    backend_report_failure(t->b[0], 3, "refused");
    cr_expect_not(backend_is_up(t->b[0]));
    backend_table_free(t);
}

#define THREADS 8
#define PICKS 1000000

struct picker {
    struct balancer *b;
    int counts[4];
};

static void *pick_many(void *arg)
{
    struct picker *p = arg;
    for (int i = 0; i < PICKS; i++)
        p->counts[balancer_pick(p->b, NULL, NULL)]++;
    return NULL;
}

Test(balancer, even_spread_under_threads, .init = quiet, .timeout = 120)
{
    struct backend_table *t = make_table(4);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    pthread_t th[THREADS];
    struct picker p[THREADS];
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct picker){.b = &b};
        pthread_create(&th[i], NULL, pick_many, &p[i]);
    }
    long total[4] = {0};
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        for (int k = 0; k < 4; k++)
            total[k] += p[i].counts[k];
    }
    double expected = (double)THREADS * PICKS / 4;
    for (int k = 0; k < 4; k++) {
        double dev = (total[k] - expected) / expected;
        cr_expect(dev < 0.01 && dev > -0.01, "backend %d got %ld picks, expected %.0f", k,
                  total[k], expected);
    }
    balancer_destroy(&b);
    backend_table_free(t);
}

/* The request key is read for the strategies that pick by it (lb_ops.uses_key), and only for
 * them: hash gets the same key for the same header value, round robin gets none. */
Test(balancer, request_key_only_for_strategies_that_use_it, .init = quiet)
{
    struct backend_table *t = make_table(3);
    struct http_field field = {.name = "X-User", .name_len = 6, .value = "alice", .value_len = 5};
    struct http_request req = {.path = "/x", .path_len = 2, .fields = &field, .num_fields = 1};
    struct balancer hb, rb;
    cr_assert_eq(balancer_init(&hb, &lb_hash_ops, t), 0);
    cr_assert_eq(balancer_init(&rb, &lb_rr_ops, t), 0);
    hb.params.hash_key = CONFIG_HASH_HEADER;
    hb.params.hash_key_name = "x-user";
    rb.params = hb.params;
    struct lb_request a, a2, r;
    balancer_request_init(&hb, &a, &req, "10.0.0.1", 8, 0);
    balancer_request_init(&hb, &a2, &req, "10.0.0.2", 8, 0);
    balancer_request_init(&rb, &r, &req, "10.0.0.1", 8, 0);
    cr_expect(a.has_key);
    cr_expect_eq(a.key, a2.key);
    cr_expect_not(r.has_key);
    balancer_destroy(&hb);
    balancer_destroy(&rb);
    backend_table_free(t);
}
