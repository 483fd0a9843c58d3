/* metrics — counters and latency histograms, written per worker and summed when scraped.
 *
 * Every worker owns one struct metrics_worker, and one struct metrics_backend_w in each backend
 * (the backend's per-worker slot, backend.h: counters carry over reloads with the backend). Only
 * that worker writes them, so a counter moves by a relaxed load and a relaxed store of value + 1
 * (metrics_add): no lock and no shared read-modify-write on the request path, and no cache line
 * bouncing between workers. A scrape (the admin thread) reads every worker's block with relaxed
 * loads and adds them up; a 64-bit relaxed load is never torn on the platforms golb runs on, so
 * each value read is one the worker really wrote, at worst a few requests old.
 *
 *   worker 0: metrics_worker ── client counters, duration histogram  ─┐
 *   worker 1: metrics_worker ─ ...                                    │
 *   backend b: pw[w].m per-backend counters, response/connect hists   ├─ metrics_render() sums them
 *              check (health thread: results, last check)             │
 *              state, admin state, weight, in flight (atomics)       ─┘
 *
 * Blocks register in a process-wide list (a mutex taken at worker start and stop and by scrapes,
 * never by a request). Histograms keep per-bucket (not cumulative) counts and the sum in
 * microseconds; the scrape accumulates buckets and derives _count from them, so the +Inf bucket
 * always equals _count in one scrape.
 */
#ifndef GOLB_METRICS_H
#define GOLB_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct backend;
struct backend_table;

/* OpenTelemetry's default HTTP duration boundaries, in microseconds (0.005 s ... 10 s). */
#define METRICS_NBOUNDS 14
#define METRICS_NBUCKETS (METRICS_NBOUNDS + 1) /* the last one is +Inf */
extern const uint64_t metrics_bounds_us[METRICS_NBOUNDS];

enum metrics_req_error {
    MRE_BAD_REQUEST = 0,
    MRE_HEADER_TIMEOUT,
    MRE_TOO_LARGE,
    MRE_CLIENT_ABORT,
    MRE_COUNT,
};

enum metrics_conn_error {
    MCE_REFUSED = 0,
    MCE_TIMEOUT,
    MCE_RESET,
    MCE_TLS, /* exported as 0 until upstream TLS exists */
    MCE_COUNT,
};

/* Client-side TLS handshakes on the HTTPS listener, by result. */
enum metrics_tls_result {
    MTLS_FULL = 0, /* completed with a full handshake */
    MTLS_RESUMED,  /* completed by resuming a session (ticket) */
    MTLS_FAILED,   /* no shared version or cipher, bad client certificate, garbage, timeout */
    MTLS_COUNT,
};

struct metrics_hist {
    _Atomic uint64_t bucket[METRICS_NBUCKETS];
    _Atomic uint64_t sum_us;
};

/* One backend as seen by one worker. */
struct metrics_backend_w {
    _Atomic uint64_t requests[5]; /* by status class 1xx..5xx */
    _Atomic uint64_t conn_errors[MCE_COUNT];
    _Atomic uint64_t retries;     /* requests that left this backend for another after a failure */
    _Atomic uint64_t connections; /* new upstream connections opened */
    _Atomic uint64_t reuses;      /* requests sent on a pooled connection */
    _Atomic uint64_t sent_bytes, received_bytes;
    struct metrics_hist response; /* request sent → response head */
    struct metrics_hist connect;  /* connect started → connected */
};

struct metrics_worker {
    _Atomic uint64_t requests[5]; /* by status class, golb's own answers included */
    _Atomic uint64_t errors[MRE_COUNT];
    _Atomic uint64_t conn_opened, conn_closed; /* active = opened - closed */
    _Atomic uint64_t req_started, req_ended;   /* in flight = started - ended */
    _Atomic uint64_t tls_handshakes[MTLS_COUNT];
    struct metrics_hist duration;              /* first byte in → last byte out */
    int worker;                  /* its slot in every backend's pw[] */
    struct metrics_worker *next; /* registry list */
};

/* The last health check of a backend, written by the health thread only. Readers use the
 * sequence number (odd while a write is in progress) to get a consistent copy. */
struct metrics_check {
    _Atomic uint64_t ok, failed;
    _Atomic uint32_t seq;
    int64_t time_ms; /* wall clock, ms since the epoch; 0 = never */
    uint32_t duration_ms;
    bool result;
    char reason[120];
};

/* Single-writer counter increment (see the top comment). */
static inline void metrics_add(_Atomic uint64_t *c, uint64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline uint64_t metrics_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline int metrics_code_index(int status)
{
    int i = status / 100 - 1;
    return i < 0 ? 0 : i > 4 ? 4 : i;
}

void metrics_observe(struct metrics_hist *h, uint64_t us);

/* Monotonic microseconds, for latencies. */
uint64_t metrics_now_us(void);

/* Process-wide set-up, before workers start (main): worker count and version for
 * golb_build_info. */
int metrics_setup(int workers, const char *version);
void metrics_teardown(void);
/* A reload ended (ok: generation gen now runs). */
void metrics_reload_done(bool ok, uint64_t gen);

/* A new zeroed block for worker `worker`, registered for scrapes; NULL on allocation failure. */
struct metrics_worker *metrics_worker_new(int worker);
void metrics_worker_free(struct metrics_worker *m);

/* Health thread: one check of backend b finished. */
void metrics_check_done(struct backend *b, bool ok, const char *reason, uint32_t duration_ms);
/* Copies b's last check record (consistent); false when there is none. */
bool metrics_check_read(const struct backend *b, struct metrics_check *out);

/* Extra counters owned by other modules, added to scrapes. */
typedef uint64_t (*metrics_counter_fn)(void);
void metrics_set_log_dropped(metrics_counter_fn access_dropped);

/* Sums for one backend (or the whole process with NULL), for the admin API. */
struct metrics_sums {
    uint64_t requests[5];
    uint64_t errors;  /* 5xx answers + connection errors */
    uint64_t hist[METRICS_NBUCKETS];
    uint64_t idle;
};
void metrics_sum_backend(const struct backend *b, struct metrics_sums *out);

/* Writes the whole exposition (Prometheus text format 0.0.4) to out, with the backends of table
 * (the caller holds its generation). Returns 0 or -errno. */
int metrics_render(FILE *out, const struct backend_table *table);

/* Quantile q (0..1) estimated from bucket counts by linear interpolation, in seconds; -1 when
 * there is no observation. */
double metrics_quantile(const uint64_t *buckets, double q);

#endif
