/* lb_latency — leastLatency: power of two choices on peak-EWMA latency (Finagle/Linkerd's
 * peak-EWMA), with guards against starvation and herding.
 *
 * Each backend keeps an estimate L of its response time (pick → response head, µs):
 *   - a sample x above the current estimate moves it half the way up at once (LB_LAT_UP = ½:
 *     peak-sensitive, a slowdown counts after one or two samples);
 *   - a sample below moves it a tenth of the way down (LB_LAT_DOWN): an average over about the
 *     last ten samples. Per sample, not per second: a busy backend, which sees more scheduler
 *     hiccups, also washes each one out sooner, so a backend is not penalised for its share;
 *   - between samples the estimate itself decays, L(t) = L × exp(-(t - t_L)/τ), τ = LB_LAT_TAU_US
 *     (1 s): a backend that was slow once and is no longer picked looks better every second (by
 *     e; 300 ms falls to 1 ms in about 6 s) until it is picked again and measured afresh, so
 *     nothing is shut out for good by one bad sample;
 *   - while requests are in flight, the time since the backend last completed one (or since it
 *     became busy) is a lower bound of the latency the next sample will show: L is at least that.
 *     A backend that stalls is seen as slow after ~1 ms, not after its stalled request returns.
 * A pick draws two candidates in proportion to their weights (lb_draw2) and takes the one with the
 * lower cost L × (1 + in-flight / weight) (ordered as L × (in-flight + 1) / weight when weights
 * are equal; with unequal weights the idle shares follow the weights), the second drawn being
 * charged half a request more: near-ties stay with the first drawn, so latency noise between
 * equally good backends does not pull the shares away from the weights. The in-flight factor and the two random draws keep all
 * traffic from herding onto the one backend that looked fastest a moment ago: the more it gets,
 * the more it costs, and each pick only sees two. One pick in LB_LAT_PROBE (32) is a probe: the
 * first drawn candidate is taken without comparing, if it has nothing in flight, so a slow backend
 * still gets a small measured share (about 1 / (32 × backends)) and is noticed when it recovers;
 * probes never go to a backend with requests in flight, so they do not feed a stalled one.
 * A failed connect counts as a sample of at least LB_LAT_FAIL_US (1 s). Updates from several
 * workers may race; a lost update only loses one sample. No lock.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/backend.h"
#include "lb/balancer.h"

#define LB_LAT_TAU_US 1000000.0 /* decay time constant τ */
#define LB_LAT_PROBE 32          /* one pick in 32 probes */
#define LB_LAT_FAIL_US 1000000.0 /* a failed connect is at least this slow */
#define LB_LAT_UP 0.5            /* a sample above the estimate: half the way up */
#define LB_LAT_DOWN 0.1          /* a sample below: a tenth of the way down */

/* The estimates live in the backends (struct backend_latency), so a reload keeps them. */
struct lat_state {
    int nworkers, n;
    struct lb_scratch *slots;
    struct backend_table *table;
};

/* exp(-x) for x ≥ 0 without libm: e^-x = (e^-(x/2^k))^(2^k), the inner term by its Taylor series
 * (x/2^k < 1/64: error below 1e-9 relative). */
double lb_exp_neg(double x)
{
    if (!(x > 0))
        return 1.0;
    if (x > 40)
        return 0.0;
    int k = 0;
    while (x > 1.0 / 64) {
        x /= 2;
        k++;
    }
    double e = 1 - x + x * x / 2 - x * x * x / 6 + x * x * x * x / 24;
    while (k--)
        e *= e;
    return e;
}

static double load_d(_Atomic uint64_t *a)
{
    uint64_t bits = atomic_load_explicit(a, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static void store_d(_Atomic uint64_t *a, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(d));
    atomic_store_explicit(a, bits, memory_order_relaxed);
}

/* The estimate of backend lb at now_us, decayed since it was set. */
static double decayed(struct backend_latency *lb, uint64_t now_us)
{
    uint64_t st = atomic_load_explicit(&lb->stamp_us, memory_order_relaxed);
    double l = load_d(&lb->ewma_bits);
    return now_us > st ? l * lb_exp_neg((double)(now_us - st) / LB_LAT_TAU_US) : l;
}

/* Exposed for tests: the latency estimate the next pick would use (µs). */
double lb_latency_estimate(void *state, const struct backend_table *table, int idx,
                           uint64_t now_us)
{
    struct lat_state *s = state;
    struct backend_latency *lb = &s->table->b[idx]->lat;
    double l = decayed(lb, now_us);
    uint32_t active = atomic_load_explicit(&table->b[idx]->active, memory_order_relaxed);
    uint64_t since = atomic_load_explicit(&lb->progress_us, memory_order_relaxed);
    if (active > 0 && now_us > since && (double)(now_us - since) > l)
        l = (double)(now_us - since);
    return l;
}

static void lat_destroy(void *state)
{
    struct lat_state *s = state;
    if (!s)
        return;
    lb_scratch_free(s->slots, s->nworkers);
    free(s);
}

static void *lat_create(struct backend_table *table, const struct lb_params *params)
{
    struct lat_state *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->nworkers = params->nworkers > 0 ? params->nworkers : 1;
    s->n = table->n;
    s->table = table;
    s->slots = lb_scratch_new(s->nworkers, table->n);
    if (!s->slots) {
        lat_destroy(s);
        return NULL;
    }
    return s;
}

/* Cost of backend i with `extra` requests added to its in-flight count (see lat_pick). */
static double cost(struct lat_state *s, const struct lb_ctx *ctx, int i, uint32_t w, double extra)
{
    uint32_t active = atomic_load_explicit(&ctx->table->b[i]->active, memory_order_relaxed);
    /* +1 µs: a backend not measured yet still costs its in-flight count */
    double l = lb_latency_estimate(s, ctx->table, i, ctx->now_us) + 1.0;
    /* 1 + in-flight relative to weight (w is in thousandths: 1000 = weight 1): with equal weights
     * this orders like L × (in-flight + 1) / weight, and with nothing in flight the weights act
     * through the draw alone, so idle shares follow them instead of all going to the heaviest. */
    return l * (1.0 + ((double)active + extra) * 1000.0 / (double)w);
}

static int lat_pick(void *state, const struct lb_ctx *ctx)
{
    struct lat_state *s = state;
    uint32_t *w = lb_scratch_of(s->slots, s->nworkers, ctx)->w;
    int a, b;
    int count = lb_draw2(ctx, w, &a, &b);
    if (count < 2)
        return a;
    struct backend *ba = ctx->table->b[a];
    if (lb_rand() % LB_LAT_PROBE == 0 && atomic_load_explicit(&ba->active, memory_order_relaxed) == 0)
        return a;
    /* The first drawn keeps the pick unless the second is cheaper even when charged half a
     * request more: noise between two equally good backends does not move traffic (the shares
     * stay with the draw, i.e. the weights), a real difference does. */
    double ca = cost(s, ctx, a, w[a], 0.0), cb = cost(s, ctx, b, w[b], 0.5);
    int pick = ca > cb ? b : a;
    /* the start of a busy period: the stall clock of lb_latency_estimate() starts here */
    if (atomic_load_explicit(&ctx->table->b[pick]->active, memory_order_relaxed) == 0)
        atomic_store_explicit(&s->table->b[pick]->lat.progress_us, ctx->now_us, memory_order_relaxed);
    return pick;
}

/* One latency sample x (µs) at now_us: see the top comment. */
void lb_latency_sample(void *state, int idx, double x, uint64_t now_us)
{
    struct lat_state *s = state;
    struct backend_latency *lb = &s->table->b[idx]->lat;
    double l = x;
    if (atomic_load_explicit(&lb->stamp_us, memory_order_relaxed)) {
        double d = decayed(lb, now_us);
        l = d + (x - d) * (x > d ? LB_LAT_UP : LB_LAT_DOWN);
    }
    store_d(&lb->ewma_bits, l);
    atomic_store_explicit(&lb->stamp_us, now_us ? now_us : 1, memory_order_relaxed);
}

static void lat_release(void *state, struct backend_table *table, int idx, enum lb_outcome outcome,
                        uint64_t latency_us)
{
    struct lat_state *s = state;
    if (idx < 0 || idx >= s->n)
        return;
    uint64_t now = balancer_now_us();
    double x = (double)latency_us;
    if (outcome == LB_CONNECT_FAILED && x < LB_LAT_FAIL_US)
        x = LB_LAT_FAIL_US;
    lb_latency_sample(s, idx, x, now);
    atomic_store_explicit(&s->table->b[idx]->lat.progress_us, now, memory_order_relaxed);
}

const struct lb_ops lb_latency_ops = {
    .name = "leastLatency",
    .create = lat_create,
    .destroy = lat_destroy,
    .pick = lat_pick,
    .release = lat_release,
};
