/* backend — the table of upstream servers shared by every thread.
 *
 * Descriptors (address, name, health path) are immutable after start-up; what changes is published
 * with atomics: the health state (written by the health checker and by passive failure detection,
 * read by every pick), the count of consecutive failures, and live-connection counts. Every state
 * change is logged here, in one place, whoever caused it.
 */
#ifndef GOLB_BACKEND_H
#define GOLB_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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

/* Aligned to a cache line (the table is allocated aligned): hot atomics of two backends never
 * share a line. */
struct backend {
    _Alignas(64) const struct config_backend *cfg; /* name, addr, addrlen, health_path, weight */
    int index;
    _Atomic int state;                 /* enum backend_state */
    _Atomic uint32_t consecutive_fails; /* passive: reset by any success */
    _Atomic uint32_t active;            /* requests in flight (least-connections, metrics) */
    _Atomic int admin_state;            /* enum backend_admin_state, set by the admin API */
    _Atomic uint32_t weight;            /* 0..1000, read at every pick; may change at run time */
    _Atomic uint64_t up_since_ms;       /* monotonic ms of the last DOWN → UP change (slow start);
                                           0 when it never came back (UP since start-up) */
    _Atomic int64_t state_changed_ms;   /* wall clock of the last state change (metrics) */
};
_Static_assert(sizeof(struct backend) == 64, "struct backend must fill one cache line");

struct backend_table {
    int n;
    struct backend *b;
};

/* Builds the table for cfg's backends, all BACKEND_UNKNOWN. Returns NULL on allocation failure. */
struct backend_table *backend_table_new(const struct config *cfg);
void backend_table_free(struct backend_table *t);

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
