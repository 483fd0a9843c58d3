/* backend — upstream servers as objects that outlive a configuration, and the per-generation table.
 *
 * A backend is identified by its pool and its scheme, host and port (its `key`,
 * config_backend_key's "http://127.0.0.1:8081"): a table holds one pool's backends, and a reload
 * builds each pool's new table from the running table of the pool of the same name. Each entry
 * whose identity that table already has is the *same object* (a reference taken), so its health
 * state, counters, idle connections, latency estimate and admin overrides carry over; a new
 * identity gets a new object, UNKNOWN until checked. The same URL in two pools is two objects,
 * with their own state, counters and connections (the health checker still checks the URL once
 * per period and tells both, health.h). An object is freed when no table references it
 * any more. Settings that a reload may change (address, health path, TLS) are read from the
 * generation's `config_backend`, never through the object, which holds only what its identity
 * fixes (key, name).
 *
 * What changes at run time is published with atomics: the health state (written by the health
 * checker and by passive failure detection, read by every pick), the count of consecutive failures,
 * and live-connection counts. Each worker has its own slot in every backend (`pw[worker]`: its idle
 * connections to it and its counters), written by that worker only. Every state change is logged
 * here, in one place, whoever caused it.
 */
#ifndef GOLB_BACKEND_H
#define GOLB_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/counter.h"
#include "upstream/upstream.h"

struct config;
struct config_backend;

enum backend_state {
    BACKEND_UNKNOWN = 0, /* not checked yet: receives no traffic */
    BACKEND_UP,
    BACKEND_DOWN,
};

/* What an operator asked for through the admin API, on top of the health state. */
enum backend_admin_state {
    BACKEND_ADMIN_READY = 0, /* health checks decide */
    BACKEND_ADMIN_DRAIN,     /* no new requests; in-flight ones finish; still checked */
    BACKEND_ADMIN_MAINT,     /* no requests and no checks */
};

/* The leastLatency strategy's view of a backend: kept here so that a reload keeps it. */
struct backend_latency {
    _Atomic uint64_t ewma_bits;   /* double: estimate in µs */
    _Atomic uint64_t stamp_us;    /* when the estimate was last set */
    _Atomic uint64_t progress_us; /* last completion, or the start of the current busy period */
};

/* Why a new upstream connection failed. */
enum backend_conn_error {
    BACKEND_CONN_REFUSED = 0,
    BACKEND_CONN_TIMEOUT,
    BACKEND_CONN_RESET,
    BACKEND_CONN_TLS,
    BACKEND_CONN_NERRORS,
};

#define BACKEND_GRPC_CODES 17 /* gRPC status codes 0 (OK) .. 16 (UNAUTHENTICATED) */

/* One backend as seen by one worker (base/counter.h: single writer, read by scrapes). */
struct backend_counters {
    _Atomic uint64_t requests[5]; /* by status class 1xx..5xx */
    _Atomic uint64_t conn_errors[BACKEND_CONN_NERRORS];
    _Atomic uint64_t retries;     /* requests that left this backend for another after a failure */
    _Atomic uint64_t connections; /* new upstream connections opened */
    _Atomic uint64_t reuses;      /* requests sent on a pooled connection */
    _Atomic uint64_t sent_bytes, received_bytes;
    struct counter_hist response; /* request sent → response head */
    struct counter_hist connect;  /* connect started → connected */
    _Atomic uint64_t grpc[BACKEND_GRPC_CODES]; /* gRPC calls it took, by the code their client
                                                  read (obs.h obs_req.grpc_code) */
};

/* The last health check of a backend, written by the health thread only. Readers use the
 * sequence number (odd while a write is in progress) to get a consistent copy. */
struct backend_check {
    _Atomic uint64_t ok, failed;
    _Atomic uint32_t seq;
    int64_t time_ms; /* wall clock, ms since the epoch; 0 = never */
    uint32_t duration_ms;
    bool result;
    char reason[120];
};

/* One worker's part of a backend: written by that worker only (scrapes read it). */
struct backend_worker {
    _Alignas(64) struct upstream_idle idle; /* its idle connections to the backend */
    struct backend_counters m;             /* its counters for the backend */
};

/* The first cache line holds what every pick reads; the objects are allocated aligned, so hot
 * atomics of two backends never share a line. */
struct backend {
    _Alignas(64) const char *name; /* "host:port": the Host it is sent, metrics labels, the API */
    _Atomic int state;                 /* enum backend_state */
    _Atomic uint32_t consecutive_fails; /* passive: reset by any success */
    _Atomic uint32_t active;            /* requests in flight (least-connections, metrics) */
    _Atomic int admin_state;            /* enum backend_admin_state, set by the admin API */
    _Atomic uint32_t weight;            /* 0..1000, read at every pick; may change at run time */
    _Atomic uint64_t up_since_ms;       /* monotonic ms of the last DOWN → UP change (slow start);
                                           0 when it never came back (UP since start-up) */
    _Atomic int64_t state_changed_ms;   /* wall clock of the last state change (metrics) */
    _Atomic bool retired;               /* a reload removed it: no new requests (retries too) */

    /* colder: carried over by reloads, each written by one party */
    _Alignas(64) char *key;        /* identity within its pool: "scheme://host:port" */
    char *pool;                    /* its pool's name; NULL: the pool "default" */
    char *label;                   /* for log lines: name, or "pool/name" outside "default" */
    _Atomic int refs;              /* tables that list it */
    uint32_t config_weight;        /* the weight the configuration gave (admin overrides differ) */
    uint32_t ok_streak, fail_streak; /* the health checker's (one checker thread at a time) */
    enum backend_state check_seen;   /* the state after the checker's last result */
    struct backend_latency lat;    /* the leastLatency strategy's estimate (lb_latency.c) */
    struct backend_check check;    /* the last health check (health thread writes) */
    int nworkers;
    struct backend_worker *pw;     /* [nworkers] */
};

/* The backends of one configuration generation, in configuration order. */
struct backend_table {
    int n;
    struct backend **b;
    /* SRV priorities (`resolve: srv`): NULL when no entry has one; else per entry its group (the
     * SRV name it came from, 1..; 0: none) << 16 | its priority. Within a group an entry takes
     * traffic only while every entry of a lower priority is out of service (backend_tier_open). */
    uint32_t *tier;
};

/* Builds the table for cfg's backends with a slot per worker. Entries whose identity `prev` (may be
 * NULL) has are prev's objects, referenced again (nothing about them changes until
 * backend_table_commit); the others are new, UNKNOWN.
 * Returns NULL on allocation failure. */
struct backend_table *backend_table_new(const struct config *cfg, const struct backend_table *prev,
                                        int nworkers);
/* The same for the pool `pool` (NULL or "default": the default pool), cfg being the pool's view
 * (config_pool_view) and prev the running table of the pool of that name: new objects are the
 * pool's (b->pool, b->label). */
struct backend_table *backend_table_new_pool(const struct config *cfg, const char *pool,
                                             const struct backend_table *prev, int nworkers);
/* t becomes the running table (built from cfg): configured weights that changed take effect. */
void backend_table_commit(const struct backend_table *t, const struct config *cfg);
/* Drops the table's references; a backend no table lists any more is freed (its idle connections
 * must have been closed by their workers, see upstream_close_idle). */
void backend_table_free(struct backend_table *t);
/* False when entry idx waits in a higher SRV priority tier while an entry of a lower one of its
 * group is UP and ready (tier NULL: always true). */
bool backend_tier_open(const struct backend_table *t, int idx);
/* The entry of t with b's identity, or -1. */
int backend_table_find(const struct backend_table *t, const struct backend *b);

/* How log lines name b: "host:port", or "pool/host:port" outside the pool "default". */
static inline const char *backend_label(const struct backend *b)
{
    return b->label ? b->label : b->name;
}

static inline bool backend_is_up(const struct backend *b)
{
    return atomic_load_explicit(&b->state, memory_order_relaxed) == BACKEND_UP;
}

/* Publishes a new state; logs "backend NAME is UP|DOWN (was ...): reason" when it changes.
 * Returns true when the state changed. */
bool backend_set_state(struct backend *b, enum backend_state state, const char *reason);

/* Passive health: a connect failure or protocol error on live traffic. After max_fails consecutive
 * ones (max_fails > 0) the backend is marked DOWN until the next successful active check. */
void backend_report_failure(struct backend *b, uint32_t max_fails, const char *reason);
/* A request completed normally: resets the consecutive-failure count. */
void backend_report_success(struct backend *b);

const char *backend_state_name(enum backend_state s);

/* Health thread: one check of b finished (its record and counters, for metrics and the API). */
void backend_check_done(struct backend *b, bool ok, const char *reason, uint32_t duration_ms);
/* Copies b's last check record (consistent); false when there is none. */
bool backend_check_read(const struct backend *b, struct backend_check *out);

static inline enum backend_admin_state backend_admin(const struct backend *b)
{
    return (enum backend_admin_state)atomic_load_explicit(&b->admin_state, memory_order_relaxed);
}
/* Publishes an operator's state; logs it with who asked. Returns the previous one. */
enum backend_admin_state backend_set_admin(struct backend *b, enum backend_admin_state s,
                                           const char *who);
const char *backend_admin_name(enum backend_admin_state s);
/* The state shown to operators: "maint", "drain", else "up" or "down" (never checked = down). */
const char *backend_effective_state(const struct backend *b);

#endif
