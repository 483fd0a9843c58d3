/* metrics — the Prometheus exposition: counters written per worker, summed when scraped.
 *
 * The counters live with what they count, below this layer: every worker owns one struct
 * obs_counters (core/obs.h), and one struct backend_counters in each backend (the backend's
 * per-worker slot, upstream/backend.h: counters carry over reloads with the backend). Only that
 * worker writes them (base/counter.h: no lock, no shared read-modify-write on the request path).
 * A scrape (the admin thread) reads every block with relaxed loads and adds them up.
 *
 *   worker 0: obs_counters ── client counters, duration histogram    ─┐
 *   worker 1: obs_counters ─ ...                                      │
 *   backend b: pw[w].m per-backend counters, response/connect hists   ├─ metrics_render() sums them
 *              check (health thread: results, last check)             │
 *              state, admin state, weight, in flight (atomics)        │
 *   route r:   pw[w].requests (obs_route, written by worker w)       ─┘
 *
 * Every golb_backend_* series is labelled {pool="NAME",backend="host:port"} (in that order): the
 * same URL in two pools is two backends. golb_route_requests_total{route,code_class} counts the
 * answers of the requests each route took.
 *
 * Worker blocks register in a process-wide list (obs.c; a mutex taken at worker start and stop and
 * by scrapes, never by a request). The scrape accumulates per-bucket counts and derives _count
 * from them, so the +Inf bucket always equals _count in one scrape.
 */
#ifndef GOLB_METRICS_H
#define GOLB_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/counter.h"

struct backend;
struct generation;

/* Process-wide set-up, before workers start (main): worker count and version for
 * golb_build_info. */
int metrics_setup(int workers, const char *version);
void metrics_teardown(void);
/* A reload ended (ok: generation gen now runs). */
void metrics_reload_done(bool ok, uint64_t gen);
/* The names of `resolve:` backends (upstream/dns.h) for golb_dns_* and the status' `dns` (NULL:
 * none). The server sets it before the admin starts and clears it after the admin stopped. */
struct dns;
void metrics_set_dns(struct dns *d);
/* The `dns` array of /api/v1/status ("[]" without names). */
void metrics_dns_status(FILE *f);

/* Sums for one backend (or the whole process with NULL), for the admin API. */
struct metrics_sums {
    uint64_t requests[5];
    uint64_t errors;  /* 5xx answers + connection errors */
    uint64_t hist[COUNTER_NBUCKETS];
    uint64_t idle;
};
void metrics_sum_backend(const struct backend *b, struct metrics_sums *out);

/* Writes the whole exposition (Prometheus text format 0.0.4) to out, with the pools, backends and
 * routes of g (NULL: none; the caller holds a reference). It reads only g's pools (name, table),
 * nroutes and route_stats. Returns 0 or -errno. */
int metrics_render(FILE *out, const struct generation *g);

#endif
