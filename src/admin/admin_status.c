/* admin_status — what /api/v1/status shows: see admin_int.h.
 *
 * A sampler timer copies the per-backend and per-route sums every second into a small ring, so
 * /api/v1/status can say requests and errors per second (and p50/p99 for backends) over the last
 * RATE_WINDOW seconds without the data path doing anything for it; each second's rates are also
 * kept HISTORY seconds for the status page's graphs.
 *
 * Rows: every backend of every pool, in pool order (generation_pool.first + index in its table),
 * then the process; routes in their own rows, in file order.
 */
#include "admin/admin_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/backend.h"
#include "core/generation.h"
#include "core/obs.h"
#include "config/config.h"
#include "base/counter.h"
#include "base/jsonw.h"
#include "base/loop.h"
#include "admin/metrics.h"
#include "base/util.h"

#define SAMPLE_MS 1000u
#define RATE_WINDOW 5 /* seconds the rates and quantiles cover */
#define HISTORY 300   /* per-second rates kept per backend for the status page (5 minutes) */

struct sample {
    uint64_t t_ms;
    uint64_t requests, errors;
    uint64_t hist[COUNTER_NBUCKETS];
};

/* A route's sums at one sample (its errors: 5xx answers). */
struct route_sample {
    uint64_t t_ms;
    uint64_t requests, errors;
};

/* ---------------------------------------------------------------- generations --------------- */

/* Row of backend b in g (generation_pool.first + its index), or -1. */
static int backend_row(const struct generation *g, const struct backend *b)
{
    for (int p = 0; p < g->npools; p++) {
        int i = backend_table_find(g->pools[p].table, b);
        if (i >= 0)
            return g->pools[p].first + i;
    }
    return -1;
}

/* The backend of row `row` of g, and its pool's index in *pool. */
static struct backend *row_backend(const struct generation *g, int row, int *pool)
{
    for (int p = 0; p < g->npools; p++) {
        const struct backend_table *t = g->pools[p].table;
        if (row >= g->pools[p].first && row < g->pools[p].first + t->n) {
            *pool = p;
            return t->b[row - g->pools[p].first];
        }
    }
    *pool = -1;
    return NULL;
}

/* Follows a reload: lays the per-backend and per-route samples and history out for the running
 * generation, keeping the rows of backends it still has (matched by object, i.e. identity: pool
 * and URL) and of routes it still has (the same counter object: the same name). On allocation
 * failure it stays on the old generation and tries again next time. */
void admin_status_sync(struct admin *a)
{
    struct generation *g = generation_acquire();
    if (!g || g == a->gen) {
        generation_unref(g);
        return;
    }
    int n0 = a->gen->nbackends, n1 = g->nbackends;
    struct sample *samples = calloc((size_t)(n1 + 1) * (RATE_WINDOW + 1), sizeof(*samples));
    float *history = calloc((size_t)(n1 + 1) * HISTORY * 2, sizeof(float));
    struct route_sample *rs =
        calloc((size_t)(g->nroutes + 1) * (RATE_WINDOW + 1), sizeof(*rs));
    if (!samples || !history || !rs) {
        free(samples);
        free(history);
        free(rs);
        generation_unref(g);
        return;
    }
    for (int j = 0; j <= n1; j++) {
        int pool;
        int i = j == n1 ? n0 : backend_row(a->gen, row_backend(g, j, &pool));
        if (i < 0)
            continue; /* a new backend: no past */
        memcpy(&samples[(size_t)j * (RATE_WINDOW + 1)], &a->samples[(size_t)i * (RATE_WINDOW + 1)],
               (RATE_WINDOW + 1) * sizeof(*samples));
        memcpy(&history[(size_t)j * HISTORY * 2], &a->history[(size_t)i * HISTORY * 2],
               HISTORY * 2 * sizeof(float));
    }
    for (int j = 0; j < g->nroutes; j++)
        for (int i = 0; i < a->gen->nroutes; i++)
            if (g->route_stats[j] == a->gen->route_stats[i])
                memcpy(&rs[(size_t)j * (RATE_WINDOW + 1)],
                       &a->route_samples[(size_t)i * (RATE_WINDOW + 1)],
                       (RATE_WINDOW + 1) * sizeof(*rs));
    free(a->samples);
    free(a->history);
    free(a->route_samples);
    a->samples = samples;
    a->history = history;
    a->route_samples = rs;
    generation_unref(a->gen);
    a->gen = g;
}

/* ---------------------------------------------------------------- sampling ------------------ */

static struct sample *sample_at(struct admin *a, int b, int k)
{
    return &a->samples[b * (RATE_WINDOW + 1) + k];
}

static void take_samples(struct admin *a)
{
    uint64_t now = loop_now(a->loop);
    int k = a->sample_at;
    admin_status_sync(a);
    int n = a->gen->nbackends;
    for (int b = 0; b <= n; b++) {
        /* b == n: the whole process (client side) */
        struct metrics_sums s;
        int pool;
        metrics_sum_backend(b < n ? row_backend(a->gen, b, &pool) : NULL, &s);
        struct sample *x = sample_at(a, b, k);
        x->t_ms = now;
        x->requests = 0;
        for (int i = 0; i < 5; i++)
            x->requests += s.requests[i];
        x->errors = s.errors;
        memcpy(x->hist, s.hist, sizeof(x->hist));
    }
    for (int r = 0; r < a->gen->nroutes; r++) {
        uint64_t by[5];
        obs_route_sum(a->gen->route_stats[r], by);
        struct route_sample *x = &a->route_samples[r * (RATE_WINDOW + 1) + k];
        *x = (struct route_sample){.t_ms = now, .errors = by[4]};
        for (int i = 0; i < 5; i++)
            x->requests += by[i];
    }
    if (a->nsamples > 0) {
        int prev = (k + RATE_WINDOW) % (RATE_WINDOW + 1);
        for (int b = 0; b <= n; b++) {
            const struct sample *x = sample_at(a, b, k), *o = sample_at(a, b, prev);
            double dt = (double)(x->t_ms - o->t_ms) / 1000.0;
            float *h = &a->history[((size_t)b * HISTORY + (size_t)a->history_at) * 2];
            h[0] = dt > 0 ? (float)((double)(x->requests - o->requests) / dt) : 0;
            h[1] = dt > 0 ? (float)((double)(x->errors - o->errors) / dt) : 0;
        }
        a->history_at = (a->history_at + 1) % HISTORY;
        if (a->nhistory < HISTORY)
            a->nhistory++;
    }
    a->sample_at = (k + 1) % (RATE_WINDOW + 1);
    if (a->nsamples < RATE_WINDOW + 1)
        a->nsamples++;
}

static void on_sample(struct loop_timer *t)
{
    struct admin *a = container_of(t, struct admin, sample_timer);
    take_samples(a);
    loop_timer_after(a->loop, t, SAMPLE_MS);
}

struct rates {
    double rps, eps, p50, p99; /* p50/p99 < 0: no request in the window */
};

/* The ring slots of the oldest and the newest sample of the window: false before there are two. */
static bool window_ends(const struct admin *a, int *oldest, int *newest)
{
    if (a->nsamples < 2)
        return false;
    *newest = (a->sample_at + RATE_WINDOW) % (RATE_WINDOW + 1);
    *oldest = a->nsamples < RATE_WINDOW + 1 ? 0 : a->sample_at;
    return true;
}

/* Rates and quantiles of backend b (the process at n) between the oldest and the newest sample.
 * The quantiles come from the difference of two copies of the response histogram, every internal
 * bucket (not the coarser exported ones): within ±10 % from 10 µs to 10 s (base/counter.h). */
static struct rates window_rates(struct admin *a, int b)
{
    struct rates r = {0, 0, -1, -1};
    int oldest, newest;
    if (!window_ends(a, &oldest, &newest))
        return r;
    const struct sample *n = sample_at(a, b, newest), *o = sample_at(a, b, oldest);
    double dt = (double)(n->t_ms - o->t_ms) / 1000.0;
    if (dt <= 0)
        return r;
    r.rps = (double)(n->requests - o->requests) / dt;
    r.eps = (double)(n->errors - o->errors) / dt;
    uint64_t d[COUNTER_NBUCKETS];
    for (int i = 0; i < COUNTER_NBUCKETS; i++)
        d[i] = n->hist[i] - o->hist[i];
    r.p50 = counter_quantile(d, 0.5);
    r.p99 = counter_quantile(d, 0.99);
    return r;
}

/* Requests and 5xx answers per second of route r over the window (no quantiles: a route has no
 * histogram of its own). */
static struct rates route_rates(struct admin *a, int r)
{
    struct rates out = {0, 0, -1, -1};
    int oldest, newest;
    if (!window_ends(a, &oldest, &newest))
        return out;
    const struct route_sample *n = &a->route_samples[r * (RATE_WINDOW + 1) + newest];
    const struct route_sample *o = &a->route_samples[r * (RATE_WINDOW + 1) + oldest];
    double dt = (double)(n->t_ms - o->t_ms) / 1000.0;
    if (dt <= 0 || o->t_ms == 0)
        return out;
    out.rps = (double)(n->requests - o->requests) / dt;
    out.eps = (double)(n->errors - o->errors) / dt;
    return out;
}

/* ---------------------------------------------------------------- JSON ---------------------- */

/* A JSON string of s, cut after max_bytes (marked as cut by jsonw). */
void admin_fjson_str_max(FILE *f, const char *s, size_t max_bytes)
{
    char buf[8192]; /* room for max_bytes escaped (at most 6 bytes each) for the callers' caps */
    struct jsonw j;
    jsonw_init(&j, buf, sizeof(buf));
    jsonw_str(&j, s, strlen(s), max_bytes);
    fwrite(buf, 1, j.len, f);
}

void admin_fjson_str(FILE *f, const char *s)
{
    admin_fjson_str_max(f, s, 160);
}

static void fjson_num_or_null(FILE *f, double v)
{
    if (v < 0)
        fputs("null", f);
    else
        fprintf(f, "%.6f", v);
}

static void fjson_time(FILE *f, int64_t ms)
{
    char buf[40];
    struct jsonw j;
    jsonw_init(&j, buf, sizeof(buf));
    jsonw_raw(&j, "\"", 1);
    jsonw_time_ms(&j, ms);
    jsonw_raw(&j, "\"", 1);
    fwrite(buf, 1, j.len, f);
}

/* "history":{"requests_per_second":[...],"errors_per_second":[...]}, oldest first. */
static void history_json(struct admin *a, FILE *f, int b)
{
    static const char *const names[2] = {"requests_per_second", "errors_per_second"};
    fputs(",\"history\":{", f);
    for (int m = 0; m < 2; m++) {
        fprintf(f, "%s\"%s\":[", m ? "," : "", names[m]);
        for (int i = 0; i < a->nhistory; i++) {
            int at = (a->history_at - a->nhistory + i + HISTORY) % HISTORY;
            fprintf(f, "%s%.2f", i ? "," : "", a->history[((size_t)b * HISTORY + (size_t)at) * 2 + (size_t)m]);
        }
        fputc(']', f);
    }
    fputc('}', f);
}

void admin_status_backend_json(struct admin *a, FILE *f, int p, int i, bool history)
{
    const struct generation_pool *pool = &a->gen->pools[p];
    struct backend *b = pool->table->b[i];
    int row = pool->first + i;
    struct metrics_sums s;
    metrics_sum_backend(b, &s);
    uint64_t total = 0;
    for (int k = 0; k < 5; k++)
        total += s.requests[k];
    struct rates r = window_rates(a, row);
    enum backend_state hs = (enum backend_state)atomic_load_explicit(&b->state,
                                                                      memory_order_relaxed);
    const char *url = pool->cfg.backends[i].url;
    fputs("{\"name\":", f);
    admin_fjson_str(f, b->name);
    fputs(",\"pool\":", f);
    admin_fjson_str(f, pool->name);
    fputs(",\"url\":", f);
    admin_fjson_str(f, url ? url : "");
    fprintf(f, ",\"state\":\"%s\",\"health\":\"%s\",\"admin_state\":\"%s\",\"weight\":%u",
            backend_effective_state(b),
            hs == BACKEND_UP ? "up" : hs == BACKEND_DOWN ? "down" : "unknown",
            backend_admin_name(backend_admin(b)),
            atomic_load_explicit(&b->weight, memory_order_relaxed));
    fprintf(f, ",\"in_flight\":%u,\"idle_connections\":%llu,\"requests_total\":%llu",
            atomic_load_explicit(&b->active, memory_order_relaxed), (unsigned long long)s.idle,
            (unsigned long long)total);
    fprintf(f, ",\"errors_total\":%llu,\"requests_per_second\":%.3f,\"errors_per_second\":%.3f",
            (unsigned long long)s.errors, r.rps, r.eps);
    fputs(",\"response_p50_seconds\":", f);
    fjson_num_or_null(f, r.p50);
    fputs(",\"response_p99_seconds\":", f);
    fjson_num_or_null(f, r.p99);
    struct backend_check chk;
    fputs(",\"last_check\":", f);
    if (backend_check_read(b, &chk)) {
        fputs("{\"time\":", f);
        fjson_time(f, chk.time_ms);
        fprintf(f, ",\"result\":\"%s\",\"reason\":", chk.result ? "success" : "failure");
        admin_fjson_str(f, chk.reason);
        fprintf(f, ",\"duration_seconds\":%.3f}", (double)chk.duration_ms / 1000.0);
    } else {
        fputs("null", f);
    }
    fputs(",\"last_state_change\":", f);
    fjson_time(f, atomic_load_explicit(&b->state_changed_ms, memory_order_relaxed));
    if (history)
        history_json(a, f, row);
    fputs("}", f);
}

/* "backends":[...] of pool p. Returns how many are up. */
static int pool_backends_json(struct admin *a, FILE *f, int p, bool history)
{
    const struct backend_table *t = a->gen->pools[p].table;
    int up = 0;
    fputs("\"backends\":[", f);
    for (int i = 0; i < t->n; i++) {
        if (i)
            fputc(',', f);
        admin_status_backend_json(a, f, p, i, history);
        up += backend_is_up(t->b[i]);
    }
    fputc(']', f);
    return up;
}

/* "routes":[...]: each route's name, action and pool, requests and 5xx answers in total and per
 * second over the window. */
static void routes_json(struct admin *a, FILE *f)
{
    static const char *const actions[] = {"pool", "split", "redirect", "respond"};
    const struct config *cfg = a->gen->cfg;
    fputs(",\"routes\":[", f);
    for (int i = 0; i < a->gen->nroutes; i++) {
        const struct config_route *r = &cfg->routes[i];
        uint64_t by[5], total = 0;
        obs_route_sum(a->gen->route_stats[i], by);
        for (int k = 0; k < 5; k++)
            total += by[k];
        struct rates rt = route_rates(a, i);
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        admin_fjson_str(f, r->name);
        fprintf(f, ",\"action\":\"%s\",\"pools\":[",
                (size_t)r->action < ARRAY_LEN(actions) ? actions[r->action] : "");
        if (r->action == CONFIG_ROUTE_POOL)
            admin_fjson_str(f, cfg->pools[r->pool].name);
        for (int k = 0; k < r->nsplit; k++) {
            if (k)
                fputc(',', f);
            admin_fjson_str(f, cfg->pools[r->split[k].pool].name);
        }
        fprintf(f,
                "],\"requests_total\":%llu,\"errors_total\":%llu,\"requests_per_second\":%.3f,"
                "\"errors_per_second\":%.3f}",
                (unsigned long long)total, (unsigned long long)by[4], rt.rps, rt.eps);
    }
    fputc(']', f);
}

void admin_status_json(struct admin *a, FILE *f, bool history)
{
    int up = 0;
    const struct backend_table *t = a->gen->table;
    for (int i = 0; i < t->n; i++)
        up += backend_is_up(t->b[i]);
    struct rates total = window_rates(a, a->gen->nbackends);
    fputs("{\"version\":", f);
    admin_fjson_str(f, a->version);
    fprintf(f, ",\"uptime_seconds\":%.3f,\"start_time\":",
            (double)(util_wall_ms() - a->start_ms) / 1000.0);
    fjson_time(f, a->start_ms);
    fprintf(f, ",\"generation\":%llu,\"workers\":%d,\"listeners\":[",
            (unsigned long long)a->gen->id, a->gen->cfg->workers);
    pthread_mutex_lock(&a->listeners_lock);
    admin_fjson_str(f, a->listeners);
    pthread_mutex_unlock(&a->listeners_lock);
    fputs("],\"admin\":", f);
    admin_fjson_str(f, a->name);
    fprintf(f, ",\"draining\":%s,\"interval_seconds\":%d,\"backends_up\":%d",
            atomic_load(&a->draining) ? "true" : "false", RATE_WINDOW, up);
    fprintf(f, ",\"requests_per_second\":%.3f,\"errors_per_second\":%.3f", total.rps, total.eps);
    {
        /* client requests answered since start, by the protocol the client spoke */
        struct obs_totals tot;
        obs_counters_sum(&tot);
        uint64_t per[OBS_PROTO_COUNT] = {0};
        for (int p = 0; p < OBS_PROTO_COUNT; p++)
            for (int k = 0; k < 5; k++)
                per[p] += tot.proto_requests[p][k];
        fprintf(f, ",\"protocols\":{\"http/1.1\":%llu,\"h2\":%llu}",
                (unsigned long long)per[OBS_PROTO_HTTP1], (unsigned long long)per[OBS_PROTO_H2]);
    }
    /* the default pool's backends at the top (as before pools), then every pool */
    fputc(',', f);
    pool_backends_json(a, f, 0, history);
    fputs(",\"pools\":[", f);
    for (int p = 0; p < a->gen->npools; p++) {
        fputs(p ? ",{\"name\":" : "{\"name\":", f);
        admin_fjson_str(f, a->gen->pools[p].name);
        fprintf(f, ",\"balance\":");
        admin_fjson_str(f, a->gen->pools[p].cfg.balance ? a->gen->pools[p].cfg.balance : "roundRobin");
        fputc(',', f);
        int pup = pool_backends_json(a, f, p, history);
        fprintf(f, ",\"backends_up\":%d}", pup);
    }
    fputc(']', f);
    routes_json(a, f);
    fputs(",\"dns\":", f);
    metrics_dns_status(f);
    if (history)
        history_json(a, f, a->gen->nbackends);
    fputs("}\n", f);
}

/* ---------------------------------------------------------------- life cycle ---------------- */

int admin_status_init(struct admin *a)
{
    const struct generation *gen = a->gen;
    a->samples = calloc((size_t)(gen->nbackends + 1) * (RATE_WINDOW + 1), sizeof(struct sample));
    a->history = calloc((size_t)(gen->nbackends + 1) * HISTORY * 2, sizeof(float));
    a->route_samples =
        calloc((size_t)(gen->nroutes + 1) * (RATE_WINDOW + 1), sizeof(struct route_sample));
    return a->samples && a->history && a->route_samples ? 0 : -ENOMEM;
}

void admin_status_start(struct admin *a)
{
    loop_timer_init(&a->sample_timer, on_sample);
    loop_update_time(a->loop);
    take_samples(a);
    loop_timer_after(a->loop, &a->sample_timer, SAMPLE_MS);
}

void admin_status_free(struct admin *a)
{
    free(a->samples);
    free(a->history);
    free(a->route_samples);
}
