/* Unit tests for the balancing strategies (lb_*.c) and what balancer.c does around them: exact
 * smooth-WRR sequences, weighted shares over 1,000,000 picks, least-connections ties, P2C never
 * choosing an ineligible backend, peak-EWMA decay, Maglev key movement and bounded loads, the
 * slow-start ramp, panic mode and sticky-cookie forgery. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/backend.h"
#include "lb/balancer.h"
#include "config/config.h"
#include "base/log.h"

#define MAXB 16

static struct config cfg;
static struct config_backend cbs[MAXB];
static char names[MAXB][32];

static struct backend_table *table_w(int n, const uint32_t *weights)
{
    memset(&cfg, 0, sizeof(cfg));
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "10.0.0.%d:80", i + 1);
        cbs[i] = (struct config_backend){.name = names[i], .weight = weights ? weights[i] : 1};
    }
    cfg.nbackends = n;
    cfg.backends = cbs;
    struct backend_table *t = backend_table_new(&cfg, NULL, 1);
    cr_assert(t);
    for (int i = 0; i < n; i++)
        atomic_store(&t->b[i]->state, BACKEND_UP);
    return t;
}

static void quiet(void)
{
    log_set_level(LOG_ERROR);
}

static int pick(struct balancer *b)
{
    struct lb_request r = {.sticky = -1};
    return balancer_pick(b, &r, NULL);
}

/* ---- smooth weighted round-robin ---- */

Test(lb_rr, smooth_wrr_exact_sequence, .init = quiet)
{
    uint32_t w[] = {5, 1, 1};
    struct backend_table *t = table_w(3, w);
    struct balancer b;
    cr_assert_eq(balancer_init(&b, &lb_rr_ops, t), 0);
    const char *want = "aabacaa";
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 7; i++) {
            int idx = pick(&b);
            cr_expect_eq("abc"[idx], want[i], "round %d pick %d: got %c", round, i, "abc"[idx]);
        }
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_rr, smooth_wrr_1_2_4_sequence, .init = quiet)
{
    uint32_t w[] = {1, 2, 4};
    struct backend_table *t = table_w(3, w);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    const char *want = "cbcacbccbcacbc";
    for (int i = 0; i < 14; i++)
        cr_expect_eq("abc"[pick(&b)], want[i], "pick %d", i);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_rr, equal_weights_keep_plain_rotation, .init = quiet)
{
    uint32_t w[] = {7, 7, 7};
    struct backend_table *t = table_w(3, w);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    for (int i = 0; i < 12; i++)
        cr_expect_eq(pick(&b), i % 3);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_rr, weight_change_at_run_time_and_zero, .init = quiet)
{
    struct backend_table *t = table_w(3, NULL);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    atomic_store(&t->b[1]->weight, 0);
    for (int i = 0; i < 20; i++)
        cr_expect_neq(pick(&b), 1, "weight 0 gets no new traffic");
    atomic_store(&t->b[1]->weight, 2);
    int seen[3] = {0};
    for (int i = 0; i < 400; i++)
        seen[pick(&b)]++;
    cr_expect_eq(seen[1], 200);
    cr_expect_eq(seen[0], 100);
    balancer_destroy(&b);
    backend_table_free(t);
}

/* ---- shares over 1,000,000 picks ---- */

static void check_shares(const struct lb_ops *ops, double tolerance)
{
    uint32_t w[] = {1, 2, 4};
    struct backend_table *t = table_w(3, w);
    struct balancer b;
    cr_assert_eq(balancer_init(&b, ops, t), 0);
    long seen[3] = {0};
    const int n = 1000000;
    for (int i = 0; i < n; i++) {
        struct lb_request r = {.sticky = -1, .has_key = true, .key = lb_rand()};
        int idx = balancer_pick(&b, &r, NULL);
        cr_assert(idx >= 0 && idx < 3);
        seen[idx]++;
    }
    for (int k = 0; k < 3; k++) {
        double share = (double)seen[k] / n, want = w[k] / 7.0;
        cr_expect(share > want * (1 - tolerance) && share < want * (1 + tolerance),
                  "%s: backend %d share %.4f, want %.4f", ops->name, k, share, want);
    }
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_shares, round_robin, .init = quiet, .timeout = 60)
{
    check_shares(&lb_rr_ops, 0.0001);
}

Test(lb_shares, least_connections_idle, .init = quiet, .timeout = 60)
{
    check_shares(&lb_lc_ops, 0.0001);
}

Test(lb_shares, random, .init = quiet, .timeout = 60)
{
    check_shares(&lb_random_ops, 0.01);
}

Test(lb_shares, least_latency_idle, .init = quiet, .timeout = 60)
{
    check_shares(&lb_latency_ops, 0.01);
}

Test(lb_shares, hash_random_keys, .init = quiet, .timeout = 60)
{
    check_shares(&lb_hash_ops, 0.01);
}

/* ---- least connections ---- */

Test(lb_lc, ties_rotate_and_fewest_wins, .init = quiet)
{
    struct backend_table *t = table_w(3, NULL);
    struct balancer b;
    balancer_init(&b, &lb_lc_ops, t);
    for (int i = 0; i < 9; i++)
        cr_expect_eq(pick(&b), i % 3, "idle equal backends rotate");
    atomic_store(&t->b[0]->active, 2);
    atomic_store(&t->b[1]->active, 1);
    atomic_store(&t->b[2]->active, 1);
    int seen[3] = {0};
    for (int i = 0; i < 10; i++)
        seen[pick(&b)]++;
    cr_expect_eq(seen[0], 0, "the busiest is never picked");
    cr_expect_eq(seen[1], 5, "ties between 1 and 2 alternate");
    cr_expect_eq(seen[2], 5);
    atomic_store(&t->b[2]->active, 0);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(pick(&b), 2, "the fewest in flight wins");
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_lc, relative_to_weight, .init = quiet)
{
    uint32_t w[] = {1, 4};
    struct backend_table *t = table_w(2, w);
    struct balancer b;
    balancer_init(&b, &lb_lc_ops, t);
    atomic_store(&t->b[0]->active, 1);
    atomic_store(&t->b[1]->active, 3); /* 3/4 < 1/1 */
    cr_expect_eq(pick(&b), 1);
    atomic_store(&t->b[1]->active, 5); /* 5/4 ≤ (1 + m)/1 for every margin m in [⅜, ⅞) */
    int seen[2] = {0};
    for (int i = 0; i < 50; i++)
        seen[pick(&b)]++;
    cr_expect(seen[0] > 0 && seen[1] > 0, "%d / %d", seen[0], seen[1]);
    atomic_store(&t->b[1]->active, 8); /* 8/4 > (1 + m)/1 */
    for (int i = 0; i < 10; i++)
        cr_expect_eq(pick(&b), 0);
    balancer_destroy(&b);
    backend_table_free(t);
}

/* ---- P2C strategies never pick what they must not ---- */

static void never_ineligible(const struct lb_ops *ops)
{
    struct backend_table *t = table_w(6, NULL);
    struct balancer b;
    cr_assert_eq(balancer_init(&b, ops, t), 0);
    backend_set_state(t->b[0], BACKEND_DOWN, "test");
    atomic_store(&t->b[2]->state, BACKEND_UNKNOWN);
    atomic_store(&t->b[3]->weight, 0);
    struct lb_tried tried = {0};
    lb_tried_add(&tried, 5);
    int seen[6] = {0};
    for (int i = 0; i < 100000; i++) {
        struct lb_request r = {.sticky = -1, .has_key = i % 2, .key = lb_rand()};
        int idx = balancer_pick(&b, &r, &tried);
        cr_assert(idx == 1 || idx == 4, "%s picked %d", ops->name, idx);
        seen[idx]++;
    }
    cr_expect(seen[1] > 40000 && seen[4] > 40000, "%s: %d / %d", ops->name, seen[1], seen[4]);
    lb_tried_add(&tried, 1);
    lb_tried_add(&tried, 4);
    cr_expect_eq(pick(&b) == -1 ? -1 : balancer_pick(&b, NULL, &tried), -1);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_p2c, random_never_picks_ineligible, .init = quiet)
{
    never_ineligible(&lb_random_ops);
}

Test(lb_p2c, least_latency_never_picks_ineligible, .init = quiet)
{
    never_ineligible(&lb_latency_ops);
}

Test(lb_p2c, hash_never_picks_ineligible, .init = quiet)
{
    never_ineligible(&lb_hash_ops);
}

Test(lb_p2c, least_connections_never_picks_ineligible, .init = quiet)
{
    never_ineligible(&lb_lc_ops);
}

Test(lb_p2c, random_prefers_the_less_loaded, .init = quiet)
{
    struct backend_table *t = table_w(2, NULL);
    struct balancer b;
    balancer_init(&b, &lb_random_ops, t);
    atomic_store(&t->b[0]->active, 5);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(pick(&b), 1);
    balancer_destroy(&b);
    backend_table_free(t);
}

/* ---- peak EWMA ---- */

Test(lb_latency, exp_is_accurate)
{
    double want[] = {1.0, 0.36787944117, 0.13533528324, 0.04978706837, 0.00673794700};
    double x[] = {0, 1, 2, 3, 5};
    for (int i = 0; i < 5; i++)
        cr_expect(lb_exp_neg(x[i]) > want[i] * 0.99999 && lb_exp_neg(x[i]) < want[i] * 1.00001,
                  "exp(-%g) = %.10f", x[i], lb_exp_neg(x[i]));
}

Test(lb_latency, estimate_peaks_then_decays_by_e_per_second, .init = quiet)
{
    struct backend_table *t = table_w(2, NULL);
    struct balancer b;
    balancer_init(&b, &lb_latency_ops, t);
    uint64_t t0 = 1000000000;
    lb_latency_sample(b.state, 0, 1000, t0);
    cr_expect_float_eq(lb_latency_estimate(b.state, t, 0, t0), 1000, 1e-6, "first sample");
    /* peak: a higher sample moves it half the way at once */
    lb_latency_sample(b.state, 0, 9000, t0);
    cr_expect_float_eq(lb_latency_estimate(b.state, t, 0, t0), 5000, 1e-6);
    lb_latency_sample(b.state, 0, 9000, t0);
    cr_expect_float_eq(lb_latency_estimate(b.state, t, 0, t0), 7000, 1e-6);
    /* a lower sample: a tenth of the way down */
    lb_latency_sample(b.state, 0, 1000, t0);
    cr_expect_float_eq(lb_latency_estimate(b.state, t, 0, t0), 6400, 1e-6);
    /* no samples: decays by e every τ = 1 s */
    double at1 = lb_latency_estimate(b.state, t, 0, t0 + 1000000);
    double at2 = lb_latency_estimate(b.state, t, 0, t0 + 2000000);
    cr_expect(at1 > 2354 && at1 < 2355, "after 1 s: %f", at1);
    cr_expect(at2 > 866 && at2 < 867, "after 2 s: %f", at2);
    /* a sample after 0.5 s starts from the decayed estimate */
    lb_latency_sample(b.state, 0, 1000, t0 + 500000);
    double d = 6400 * lb_exp_neg(0.5), want = d + (1000 - d) * 0.1;
    cr_expect_float_eq(lb_latency_estimate(b.state, t, 0, t0 + 500000), want, 1e-6);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_latency, in_flight_without_progress_is_a_lower_bound, .init = quiet)
{
    struct backend_table *t = table_w(2, NULL);
    struct balancer b;
    balancer_init(&b, &lb_latency_ops, t);
    uint64_t now = balancer_now_us();
    lb_latency_sample(b.state, 0, 1000, now);
    lb_latency_sample(b.state, 1, 1000, now);
    /* backend 0 took a request 50 ms ago and has completed nothing since */
    atomic_store(&t->b[0]->active, 1);
    struct lb_request r = {.sticky = -1};
    for (int i = 0; i < 200 && balancer_pick(&b, &r, NULL) != 0; i++)
        ;
    double est = lb_latency_estimate(b.state, t, 0, balancer_now_us() + 50000);
    cr_expect(est >= 50000, "estimate %f", est);
    /* so it loses every comparison against an idle 1 ms backend */
    int seen[2] = {0};
    for (int i = 0; i < 1000; i++)
        seen[pick(&b)]++;
    cr_expect(seen[0] < 60, "a stalled backend got %d of 1000", seen[0]);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_latency, slow_backend_keeps_a_small_share, .init = quiet)
{
    struct backend_table *t = table_w(3, NULL);
    struct balancer b;
    balancer_init(&b, &lb_latency_ops, t);
    uint64_t now = balancer_now_us();
    lb_latency_sample(b.state, 0, 10000, now);
    lb_latency_sample(b.state, 1, 1000, now);
    lb_latency_sample(b.state, 2, 1000, now);
    int seen[3] = {0};
    for (int i = 0; i < 30000; i++)
        seen[pick(&b)]++;
    /* probes only: about 1/32 of the 1/3 of picks that draw it first */
    cr_expect(seen[0] > 30000 / 200 && seen[0] < 30000 / 20, "slow share %d", seen[0]);
    balancer_destroy(&b);
    backend_table_free(t);
}

/* ---- Maglev ---- */

static int owner(const int32_t *table, uint32_t m, uint64_t key)
{
    return table[key % m];
}

static void maglev_movement(int n, bool add)
{
    uint64_t ids[MAXB + 1];
    uint32_t w[MAXB + 1];
    for (int i = 0; i <= n; i++) {
        ids[i] = lb_siphash((uint64_t[2]){1, 2}, &i, sizeof(i));
        w[i] = 1;
    }
    uint32_t m = lb_maglev_size(n + 1);
    int32_t *before = calloc(m, sizeof(int32_t)), *after = calloc(m, sizeof(int32_t));
    cr_assert(lb_maglev_build(ids, w, n, m, before) == 0);
    int n2 = add ? n + 1 : n - 1;
    /* removing: the last backend goes; adding: ids[n] joins */
    cr_assert(lb_maglev_build(ids, w, n2, m, after) == 0);
    int moved = 0, keys = 100000;
    for (int k = 0; k < keys; k++) {
        uint64_t key = lb_siphash((uint64_t[2]){3, 4}, &k, sizeof(k));
        moved += owner(before, m, key) != owner(after, m, key);
    }
    double frac = (double)moved / keys, bound = 1.0 / (add ? n + 1 : n) + 0.02;
    cr_expect(frac <= bound, "n=%d %s: %.4f of keys moved, bound %.4f", n,
              add ? "add" : "remove", frac, bound);
    cr_expect(frac >= 1.0 / (add ? n + 1 : n) - 0.02, "too few moved: %.4f", frac);
    free(before);
    free(after);
}

Test(lb_hash, maglev_moves_about_1_over_n)
{
    maglev_movement(5, true);
    maglev_movement(5, false);
    maglev_movement(10, true);
    maglev_movement(10, false);
}

Test(lb_hash, bounded_load_caps_a_hot_key, .init = quiet)
{
    struct backend_table *t = table_w(4, NULL);
    struct balancer b;
    cr_assert_eq(balancer_init(&b, &lb_hash_ops, t), 0);
    b.params.load_factor = 1250;
    struct lb_request r = {.sticky = -1, .has_key = true, .key = 12345};
    int first = balancer_pick(&b, &r, NULL);
    for (int i = 0; i < 400; i++) {
        int idx = balancer_pick(&b, &r, NULL);
        uint32_t total = 0;
        for (int k = 0; k < 4; k++)
            total += atomic_load(&t->b[k]->active);
        uint32_t cap = (1250 * (total + 1) + 4000 - 1) / 4000;
        cr_assert(atomic_load(&t->b[idx]->active) + 1 <= cap, "pick %d over the cap %u", i, cap);
        atomic_fetch_add(&t->b[idx]->active, 1);
    }
    uint32_t max = 0;
    for (int k = 0; k < 4; k++)
        max = atomic_load(&t->b[k]->active) > max ? atomic_load(&t->b[k]->active) : max;
    cr_expect(max <= 126, "hot key spilled: the fullest has %u of 400", max);
    /* with nothing in flight the key goes home again */
    for (int k = 0; k < 4; k++)
        atomic_store(&t->b[k]->active, 0);
    cr_expect_eq(balancer_pick(&b, &r, NULL), first);
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_hash, down_backend_moves_only_its_keys, .init = quiet)
{
    struct backend_table *t = table_w(5, NULL);
    struct balancer b;
    balancer_init(&b, &lb_hash_ops, t);
    int home[2000];
    for (int k = 0; k < 2000; k++) {
        struct lb_request r = {.sticky = -1, .has_key = true, .key = (uint64_t)k * 7919u};
        home[k] = balancer_pick(&b, &r, NULL);
    }
    backend_set_state(t->b[2], BACKEND_DOWN, "test");
    for (int k = 0; k < 2000; k++) {
        struct lb_request r = {.sticky = -1, .has_key = true, .key = (uint64_t)k * 7919u};
        int idx = balancer_pick(&b, &r, NULL);
        if (home[k] != 2)
            cr_assert_eq(idx, home[k], "key %d moved off a healthy backend", k);
        else
            cr_assert_neq(idx, 2);
    }
    balancer_destroy(&b);
    backend_table_free(t);
}

/* Identical instances: a table is a function of the set of (address, configured weight) alone.
 * Two balancers built apart from the same backends listed in another order, and one built by a
 * reload that keeps the set (its backend objects carry older and admin-set weights, and the
 * reload has not committed the file's yet), send every key to the same backend. */
struct instance {
    struct config cfg;
    struct config_backend cb[4];
    struct backend_table *t;
    struct balancer b;
};

static void instance_build(struct instance *in, const int *order, const uint32_t *w,
                           const struct backend_table *prev)
{
    static const char *const addr[] = {"10.1.0.1:80", "10.1.0.2:80", "10.1.0.3:8080",
                                       "[2001:db8::4]:80"};
    memset(&in->cfg, 0, sizeof(in->cfg));
    for (int i = 0; i < 4; i++)
        in->cb[i] = (struct config_backend){.name = (char *)addr[order[i]], .weight = w[order[i]]};
    in->cfg.nbackends = 4;
    in->cfg.backends = in->cb;
    in->cfg.balance = "hash";
    in->t = backend_table_new(&in->cfg, prev, 1);
    cr_assert(in->t);
    for (int i = 0; i < 4; i++)
        atomic_store(&in->t->b[i]->state, BACKEND_UP);
    cr_assert_eq(balancer_init_config(&in->b, &in->cfg, in->t), 0);
}

static const char *owner_of(struct instance *in, uint64_t key)
{
    struct lb_request r = {.sticky = -1, .has_key = true, .key = key};
    int idx = balancer_pick(&in->b, &r, NULL);
    cr_assert_geq(idx, 0);
    return in->t->b[idx]->name;
}

Test(lb_hash, identical_instances_map_every_key_alike, .init = quiet, .timeout = 60)
{
    static const int fwd[] = {0, 1, 2, 3}, rev[] = {3, 2, 1, 0}, mix[] = {2, 0, 3, 1};
    static const uint32_t w[] = {1, 2, 1, 3}, older[] = {1, 1, 1, 1};
    struct instance a, b, before, reloaded;
    instance_build(&a, fwd, w, NULL);
    instance_build(&b, rev, w, NULL);
    /* the running one loaded another file first, and an admin set a weight since */
    instance_build(&before, mix, older, NULL);
    atomic_store(&before.t->b[0]->weight, 7);
    instance_build(&reloaded, fwd, w, before.t);
    int differ = 0, reload_differs = 0;
    for (uint64_t k = 0; k < 20000; k++) {
        uint64_t key = lb_siphash((const uint64_t[2]){5, 6}, &k, sizeof(k));
        const char *home = owner_of(&a, key);
        differ += strcmp(home, owner_of(&b, key)) != 0;
        reload_differs += strcmp(home, owner_of(&reloaded, key)) != 0;
    }
    cr_expect_eq(differ, 0, "%d of 20000 keys differ between two instances", differ);
    cr_expect_eq(reload_differs, 0, "%d of 20000 keys differ after a reload", reload_differs);
    struct instance *all[] = {&a, &b, &reloaded, &before};
    for (int i = 0; i < 4; i++)
        balancer_destroy(&all[i]->b);
    backend_table_free(reloaded.t);
    for (int i = 0; i < 4; i++)
        if (all[i] != &reloaded)
            backend_table_free(all[i]->t);
}

/* ---- slow start ---- */

Test(lb_slow_start, ramp_values)
{
    cr_expect_eq(lb_ramp(0, 5000, 5000), 1000, "off");
    cr_expect_eq(lb_ramp(10000, 0, 5000), 1000, "never came back: full weight");
    cr_expect_eq(lb_ramp(10000, 5000, 5000), 100);
    cr_expect_eq(lb_ramp(10000, 5000, 10000), 550);
    cr_expect_eq(lb_ramp(10000, 5000, 15000), 1000);
    cr_expect_eq(lb_ramp(10000, 5000, 99999), 1000);
}

Test(lb_slow_start, a_returning_backend_starts_at_a_tenth, .init = quiet)
{
    struct backend_table *t = table_w(2, NULL);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    b.params.slow_start_ms = 60000;
    backend_set_state(t->b[1], BACKEND_DOWN, "test");
    backend_set_state(t->b[1], BACKEND_UP, "test");
    int seen[2] = {0};
    for (int i = 0; i < 1100; i++)
        seen[pick(&b)]++;
    cr_expect(seen[1] >= 95 && seen[1] <= 110, "returning backend got %d of 1100", seen[1]);
    atomic_store(&t->b[1]->up_since_ms, 1); /* long ago: ramp over */
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < 1000; i++)
        seen[pick(&b)]++;
    cr_expect(seen[1] >= 495 && seen[1] <= 505, "after the ramp: %d of 1000", seen[1]);
    balancer_destroy(&b);
    backend_table_free(t);
}

/* ---- panic ---- */

Test(lb_panic, below_threshold_spreads_over_all, .init = quiet)
{
    struct backend_table *t = table_w(4, NULL);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    for (int i = 1; i < 4; i++)
        backend_set_state(t->b[i], BACKEND_DOWN, "test");
    for (int i = 0; i < 8; i++)
        cr_expect_eq(pick(&b), 0, "panic off: only the UP backend");
    b.params.panic_threshold = 50; /* 1 of 4 UP = 25 % < 50 % */
    int seen[4] = {0};
    for (int i = 0; i < 8; i++)
        seen[pick(&b)]++;
    for (int i = 0; i < 4; i++)
        cr_expect_eq(seen[i], 2, "panic: backend %d got %d of 8", i, seen[i]);
    struct lb_tried tried = {0};
    lb_tried_add(&tried, 2);
    for (int i = 0; i < 8; i++)
        cr_expect_neq(balancer_pick(&b, NULL, &tried), 2, "panic still skips tried backends");
    backend_set_state(t->b[1], BACKEND_UP, "test"); /* 2 of 4 = 50 %: not below */
    for (int i = 0; i < 8; i++) {
        int idx = pick(&b);
        cr_expect(idx == 0 || idx == 1, "no panic at the threshold: got %d", idx);
    }
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_panic, drained_and_maintenance_backends_stay_out, .init = quiet)
{
    /* Panic ignores health, never the operator's drain or maint. */
    struct backend_table *t = table_w(4, NULL);
    struct balancer b;
    balancer_init(&b, &lb_rr_ops, t);
    for (int i = 1; i < 4; i++)
        backend_set_state(t->b[i], BACKEND_DOWN, "test");
    atomic_store(&t->b[2]->admin_state, BACKEND_ADMIN_DRAIN);
    atomic_store(&t->b[3]->admin_state, BACKEND_ADMIN_MAINT);
    b.params.panic_threshold = 50;
    for (int i = 0; i < 40; i++) {
        int idx = pick(&b);
        cr_expect(idx == 0 || idx == 1, "panic picked drained/maint backend %d", idx);
    }
    balancer_destroy(&b);
    backend_table_free(t);
}

/* ---- sticky cookies ---- */

Test(lb_sticky, cookie_names_its_backend_and_cannot_be_forged, .init = quiet)
{
    struct backend_table *t = table_w(3, NULL);
    struct config_sticky sc = {.cookie = "GOLBSRV", .http_only = true, .max_age = 60,
                               .same_site = "Lax"};
    struct balancer b, other;
    balancer_init(&b, &lb_rr_ops, t);
    balancer_init(&other, &lb_rr_ops, t);
    b.params.sticky = &sc;
    char v[256];
    for (int i = 0; i < 3; i++) {
        size_t n = balancer_set_cookie(&b, NULL, i, v, sizeof(v));
        cr_assert(n > 0);
        cr_expect(strncmp(v, "GOLBSRV=", 8) == 0, "%s", v);
        cr_expect(strstr(v, "; Path=/; Max-Age=60; HttpOnly; SameSite=Lax") != NULL, "%s", v);
        cr_expect(strstr(v, names[i]) == NULL, "the value must not name the address");
        cr_expect_eq(balancer_sticky_lookup(&b, v + 8, 16), i);
        /* forged: any one character changed, another process's value, wrong lengths */
        for (int k = 0; k < 16; k++) {
            char f[17];
            memcpy(f, v + 8, 16);
            f[k] = f[k] == '0' ? '1' : '0';
            cr_expect_eq(balancer_sticky_lookup(&b, f, 16), -1);
        }
        /* one key per process: a balancer of the next generation (a reload) knows it */
        cr_expect_eq(balancer_sticky_lookup(&other, v + 8, 16), i);
        cr_expect_eq(balancer_sticky_lookup(&b, v + 8, 15), -1);
        cr_expect_eq(balancer_sticky_lookup(&b, "", 0), -1);
    }
    cr_expect_eq(balancer_sticky_lookup(&b, "0000000000000000", 16), -1);
    /* a valid cookie routes to its backend; no new cookie then */
    struct lb_request r = {.sticky = 2};
    for (int i = 0; i < 5; i++)
        cr_expect_eq(balancer_pick(&b, &r, NULL), 2);
    cr_expect_eq(balancer_set_cookie(&b, &r, 2, v, sizeof(v)), 0);
    /* its backend down: balanced normally, and the response gets a new cookie */
    backend_set_state(t->b[2], BACKEND_DOWN, "test");
    int idx = balancer_pick(&b, &r, NULL);
    cr_expect_neq(idx, 2);
    cr_expect_gt(balancer_set_cookie(&b, &r, idx, v, sizeof(v)), 0);
    /* weight 0 keeps its sticky users */
    backend_set_state(t->b[2], BACKEND_UP, "test");
    atomic_store(&t->b[2]->weight, 0);
    cr_expect_eq(balancer_pick(&b, &r, NULL), 2);
    balancer_destroy(&b);
    balancer_destroy(&other);
    backend_table_free(t);
}

/* stickySession.secret: its key (config_lb.c derives it) replaces the process's own, so two
 * processes, or a process before and after a restart, write and accept the same values. */
Test(lb_sticky, a_secret_gives_every_process_the_same_cookies, .init = quiet)
{
    struct backend_table *t = table_w(3, NULL);
    /* SHA-256("golb sticky cookie key v1" NUL "0123456789abcdef") (test_config.c) */
    cfg.sticky = (struct config_sticky){.cookie = "GOLBSRV", .http_only = true, .keyed = true,
                                        .key = {0x603f44616f16e56bull, 0xe367ecc8268b719dull}};
    struct balancer a, b, other, unkeyed;
    cr_assert_eq(balancer_init_config(&a, &cfg, t), 0);
    cr_assert_eq(balancer_init_config(&b, &cfg, t), 0);
    /* SipHash-2-4 of "10.0.0.N:80" under that key, computed apart (Python, checked against the
     * SipHash paper's test vector): a process built elsewhere writes exactly these values */
    static const char *const want[] = {"6cec84bd0024eba3", "9839d35dc8bb3d4f", "b86bbce6db61aaa6"};
    char v[256];
    for (int i = 0; i < 3; i++) {
        cr_assert_gt(balancer_set_cookie(&a, NULL, i, v, sizeof(v)), 0);
        cr_expect(strncmp(v + 8, want[i], 16) == 0, "backend %d: %s, want %s", i, v, want[i]);
        cr_expect_eq(balancer_sticky_lookup(&b, want[i], 16), i);
    }
    cfg.sticky.key[1] ^= 1; /* another secret */
    cr_assert_eq(balancer_init_config(&other, &cfg, t), 0);
    cfg.sticky.keyed = false; /* none: the process's own key */
    cr_assert_eq(balancer_init_config(&unkeyed, &cfg, t), 0);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(balancer_sticky_lookup(&other, want[i], 16), -1);
        cr_expect_eq(balancer_sticky_lookup(&unkeyed, want[i], 16), -1);
    }
    balancer_destroy(&a);
    balancer_destroy(&b);
    balancer_destroy(&other);
    balancer_destroy(&unkeyed);
    backend_table_free(t);
}

/* ---- weights under load: in-flight counts must not pull the shares toward equal ---- */

/* One arrival per tick; each request stays 1..2 × mean_ticks - 1 ticks (uniform). */
static void loaded_shares(const struct lb_ops *ops, int mean_ticks)
{
    uint32_t w[] = {1, 2, 4};
    struct backend_table *t = table_w(3, w);
    struct balancer b;
    cr_assert_eq(balancer_init(&b, ops, t), 0);
    enum { N = 300000, RING = 64, DEPTH = 16 };
    int done_at[RING][DEPTH]; /* backends finishing at tick k % RING, -1: none */
    memset(done_at, -1, sizeof(done_at));
    long seen[3] = {0};
    for (int tick = 0; tick < N; tick++) {
        int *slot = done_at[tick % RING];
        for (int d = 0; d < DEPTH; d++) {
            if (slot[d] >= 0) {
                atomic_fetch_sub(&t->b[slot[d]]->active, 1);
                balancer_release(&b, slot[d], LB_OK, 1000);
                slot[d] = -1;
            }
        }
        int idx = pick(&b);
        atomic_fetch_add(&t->b[idx]->active, 1);
        seen[idx]++;
        int *end = done_at[(tick + 1 + (int)(lb_rand() % (uint64_t)(2 * mean_ticks - 1))) % RING];
        for (int d = 0; d < DEPTH; d++)
            if (end[d] < 0) {
                end[d] = idx;
                break;
            }
    }
    for (int k = 0; k < 3; k++) {
        double share = (double)seen[k] / N, want = w[k] / 7.0;
        /* threshold rules (lb_p2c, lb_lc) are not exactly proportional at every load: within 3
         * points at one request in flight, 5 at two (measured: 1 and 4) */
        double tol = mean_ticks == 1 ? 0.03 : 0.05;
        cr_expect(share > want - tol && share < want + tol,
                  "%s, %d in flight: backend %d share %.3f, want %.3f", ops->name, mean_ticks,
                  k, share, want);
    }
    balancer_destroy(&b);
    backend_table_free(t);
}

Test(lb_shares, weights_hold_with_requests_in_flight, .init = quiet, .timeout = 60)
{
    const struct lb_ops *ops[] = {&lb_lc_ops, &lb_random_ops, &lb_latency_ops};
    for (int i = 0; i < 3; i++) {
        loaded_shares(ops[i], 1);
        loaded_shares(ops[i], 2);
    }
}
