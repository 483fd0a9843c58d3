/* route_bench — micro-benchmark of the route matcher (core/route.c), not part of `make test`:
 * `make route-bench` builds and runs it (bench/README.md).
 *
 * For each table: the configuration's load time, the table's build time and memory, and the time
 * of one route_match (median of 7 rounds of ROUNDS matches over 1,024 precomputed requests, so the
 * branch predictor cannot learn one request). Tables:
 *   1 route          host + pathPrefix, every request matching it
 *   10,000 routes    1,000 hosts × 10 prefixes; requests spread over all hosts and prefixes, 1 in 8
 *                    missing (unknown host or prefix)
 *   100 regex routes "^/rN/[0-9]+$" for N = 0..99 (no host, no prefix): their literal first
 *                    segment puts each at its node of the tree, so a request tries one; requests
 *                    spread over all of them, and paths none matches
 *                    and "^/[a-z]+/rN/[0-9]+$": no literal segment, every regex is a candidate (on
 *                    average 50 tried per request)
 * and path_normalize on a typical path, the step a session adds before matching.
 * Usage: route_bench [ROUNDS]   (default 2,000,000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "core/route.h"
#include "http/path.h"

#define NREQ 1024

struct req {
    char host[64];
    char path[64];
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* Appends to a growing buffer. */
struct sbuf {
    char *s;
    size_t len, cap;
};

static void add(struct sbuf *b, const char *fmt, int x, int y)
{
    if (b->cap - b->len < 256) {
        b->cap = b->cap ? b->cap * 2 : 1 << 16;
        b->s = realloc(b->s, b->cap);
        if (!b->s)
            abort();
    }
    b->len += (size_t)snprintf(b->s + b->len, b->cap - b->len, fmt, x, y);
}

static unsigned long long xs = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
    xs ^= xs << 13;
    xs ^= xs >> 7;
    xs ^= xs << 17;
    return (unsigned)(xs % n);
}

static void run(const char *label, const char *yaml, size_t len, const struct req *reqs,
                long rounds, int expect_hits)
{
    struct config *cfg = NULL;
    double t0 = now_ns();
    if (config_load_buffer("bench.yaml", yaml, len, stderr, &cfg) != 0)
        abort();
    double t1 = now_ns();
    double builds[7];
    struct route_table *t = NULL;
    for (int i = 0; i < 7; i++) {
        double a = now_ns();
        struct route_table *x = route_table_build(cfg);
        builds[i] = now_ns() - a;
        if (!x)
            abort();
        if (t)
            route_table_free(t);
        t = x;
    }
    struct route_worker *w = route_worker_new(1024);
    struct route_input in[NREQ];
    for (int i = 0; i < NREQ; i++)
        in[i] = (struct route_input){.method = "GET",
                                     .method_len = 3,
                                     .host = reqs[i].host,
                                     .host_len = strlen(reqs[i].host),
                                     .path = reqs[i].path,
                                     .path_len = strlen(reqs[i].path),
                                     .worker = w};
    int hits = 0;
    for (int i = 0; i < NREQ; i++)
        hits += route_match(t, &in[i]) >= 0;
    if (expect_hits >= 0 && hits != expect_hits) {
        fprintf(stderr, "%s: %d of %d requests matched, expected %d\n", label, hits, NREQ,
                expect_hits);
        abort();
    }
    double ns[7];
    volatile int sink = 0;
    for (int r = 0; r < 7; r++) {
        double a = now_ns();
        for (long i = 0; i < rounds; i++)
            sink += route_match(t, &in[i & (NREQ - 1)]);
        ns[r] = (now_ns() - a) / (double)rounds;
    }
    (void)sink;
    printf("| %s | %d | %.1f | %.2f | %.1f | %.1f |\n", label, cfg->nroutes, (t1 - t0) / 1e6,
           median(builds, 7) / 1e6, (double)route_table_memory(t) / 1024.0, median(ns, 7));
    route_worker_free(w);
    route_table_free(t);
    config_free(cfg);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 2000000;
    static struct req reqs[NREQ];
    struct sbuf y = {0};
    config_set_resolve_numeric_only(true);
    printf("| table | routes | config load ms | table build ms | table KiB | ns per match |\n"
           "| --- | --- | --- | --- | --- | --- |\n");

    /* 1 route */
    add(&y, "backends: [http://127.0.0.1:8081]\nroutes:\n", 0, 0);
    add(&y, "  - {match: {host: example.com, pathPrefix: /api}, pool: default}\n", 0, 0);
    for (int i = 0; i < NREQ; i++) {
        snprintf(reqs[i].host, sizeof(reqs[i].host), "example.com");
        snprintf(reqs[i].path, sizeof(reqs[i].path), "/api/v1/items/%d", i);
    }
    run("1 route", y.s, y.len, reqs, rounds, NREQ);

    /* 1,000 hosts × 10 prefixes */
    y.len = 0;
    add(&y, "backends: [http://127.0.0.1:8081]\nroutes:\n", 0, 0);
    for (int h = 0; h < 1000; h++)
        for (int p = 0; p < 10; p++)
            add(&y, "  - {match: {host: h%d.example.com, pathPrefix: /p%d}, pool: default}\n", h,
                p);
    int hits = 0;
    for (int i = 0; i < NREQ; i++) {
        unsigned h = rnd(1000), p = rnd(10);
        bool miss = i % 8 == 7;
        snprintf(reqs[i].host, sizeof(reqs[i].host), "h%u.example.com",
                 miss && i % 16 == 7 ? h + 1000 : h);
        snprintf(reqs[i].path, sizeof(reqs[i].path), "/%s%u/items/%d",
                 miss && i % 16 == 15 ? "q" : "p", p, i);
        hits += !miss;
    }
    run("1,000 hosts × 10 prefixes", y.s, y.len, reqs, rounds, hits);

    /* 100 regex routes */
    y.len = 0;
    add(&y, "backends: [http://127.0.0.1:8081]\nroutes:\n", 0, 0);
    for (int i = 0; i < 100; i++)
        add(&y, "  - {match: {pathRegex: \"^/r%d/[0-9]+$\"}, pool: default}\n", i, 0);
    for (int i = 0; i < NREQ; i++) {
        snprintf(reqs[i].host, sizeof(reqs[i].host), "example.com");
        snprintf(reqs[i].path, sizeof(reqs[i].path), "/r%u/%d", rnd(100), i);
    }
    run("100 regex routes, spread", y.s, y.len, reqs, rounds / 10, NREQ);
    for (int i = 0; i < NREQ; i++)
        snprintf(reqs[i].path, sizeof(reqs[i].path), "/x%u/%d", rnd(100), i);
    run("100 regex routes, none matches", y.s, y.len, reqs, rounds / 10, 0);

    /* the same without a literal first segment: every regex is a candidate */
    y.len = 0;
    add(&y, "backends: [http://127.0.0.1:8081]\nroutes:\n", 0, 0);
    for (int i = 0; i < 100; i++)
        add(&y, "  - {match: {pathRegex: \"^/[a-z]+/r%d/[0-9]+$\"}, pool: default}\n", i, 0);
    for (int i = 0; i < NREQ; i++)
        snprintf(reqs[i].path, sizeof(reqs[i].path), "/api/r%u/%d", rnd(100), i);
    run("100 regex routes, no literal start, spread", y.s, y.len, reqs, rounds / 10, NREQ);

    /* what a session adds: normalising the path */
    const char *path = "/api/v1/users/42/./profile%2Fx/../settings?tab=1";
    char out[128];
    size_t n = 0;
    double v[7];
    for (int r = 0; r < 7; r++) {
        double a = now_ns();
        for (long i = 0; i < rounds; i++)
            path_normalize_target(path, strlen(path), 0, out, &n);
        v[r] = (now_ns() - a) / (double)rounds;
    }
    printf("\npath_normalize_target(\"%s\"): %.1f ns (-> %.*s)\n", path, median(v, 7), (int)n, out);
    free(y.s);
    return 0;
}
