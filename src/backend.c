/* backend — see backend.h. */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "util.h"

struct backend_table *backend_table_new(const struct config *cfg)
{
    struct backend_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->n = cfg->nbackends;
    /* aligned_alloc: struct backend is cache-line aligned; calloc only guarantees 16 bytes. */
    t->b = aligned_alloc(_Alignof(struct backend), (size_t)(t->n ? t->n : 1) * sizeof(*t->b));
    if (!t->b) {
        free(t);
        return NULL;
    }
    memset(t->b, 0, (size_t)(t->n ? t->n : 1) * sizeof(*t->b));
    for (int i = 0; i < t->n; i++) {
        t->b[i].cfg = &cfg->backends[i];
        t->b[i].index = i;
        atomic_init(&t->b[i].state, BACKEND_UNKNOWN);
        atomic_init(&t->b[i].consecutive_fails, 0);
        atomic_init(&t->b[i].active, 0);
        atomic_init(&t->b[i].admin_state, BACKEND_ADMIN_READY);
        atomic_init(&t->b[i].weight, cfg->backends[i].weight);
        atomic_init(&t->b[i].up_since_ms, 0);
        atomic_init(&t->b[i].state_changed_ms, util_wall_ms());
    }
    return t;
}

void backend_table_free(struct backend_table *t)
{
    if (!t)
        return;
    free(t->b);
    free(t);
}

const char *backend_state_name(enum backend_state s)
{
    switch (s) {
    case BACKEND_UP:
        return "UP";
    case BACKEND_DOWN:
        return "DOWN";
    default:
        return "UNKNOWN";
    }
}

bool backend_set_state(struct backend *b, enum backend_state state, const char *reason)
{
    int old = atomic_exchange_explicit(&b->state, (int)state, memory_order_acq_rel);
    if (old == (int)state)
        return false;
    if (state == BACKEND_UP)
        atomic_store_explicit(&b->consecutive_fails, 0, memory_order_relaxed);
    if (state == BACKEND_UP && old == BACKEND_DOWN) { /* back from DOWN: slow start ramps from here */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
        atomic_store_explicit(&b->up_since_ms, ms ? ms : 1, memory_order_relaxed);
    }
    atomic_store_explicit(&b->state_changed_ms, util_wall_ms(), memory_order_relaxed);
    enum log_level level = state == BACKEND_UP ? LOG_INFO : LOG_WARN;
    log_event(level, "backend_state", "backend %s is %s (was %s): %s", b->cfg->name, backend_state_name(state),
            backend_state_name((enum backend_state)old), reason ? reason : "");
    return true;
}

void backend_report_failure(struct backend *b, uint32_t max_fails, const char *reason)
{
    uint32_t n = atomic_fetch_add_explicit(&b->consecutive_fails, 1, memory_order_relaxed) + 1;
    if (max_fails > 0 && n >= max_fails && backend_is_up(b)) {
        char why[160];
        snprintf(why, sizeof(why), "%u consecutive failures, last: %s", n, reason);
        backend_set_state(b, BACKEND_DOWN, why);
    }
}

void backend_report_success(struct backend *b)
{
    if (atomic_load_explicit(&b->consecutive_fails, memory_order_relaxed) != 0)
        atomic_store_explicit(&b->consecutive_fails, 0, memory_order_relaxed);
}

const char *backend_admin_name(enum backend_admin_state s)
{
    switch (s) {
    case BACKEND_ADMIN_DRAIN:
        return "drain";
    case BACKEND_ADMIN_MAINT:
        return "maint";
    default:
        return "ready";
    }
}

enum backend_admin_state backend_set_admin(struct backend *b, enum backend_admin_state s,
                                           const char *who)
{
    int old = atomic_exchange_explicit(&b->admin_state, (int)s, memory_order_acq_rel);
    if (old != (int)s) {
        atomic_store_explicit(&b->state_changed_ms, util_wall_ms(), memory_order_relaxed);
        log_event(LOG_INFO, "admin", "backend %s set to %s (was %s) by %s", b->cfg->name,
                  backend_admin_name(s), backend_admin_name((enum backend_admin_state)old), who);
    }
    return (enum backend_admin_state)old;
}

const char *backend_effective_state(const struct backend *b)
{
    switch (backend_admin(b)) {
    case BACKEND_ADMIN_MAINT:
        return "maint";
    case BACKEND_ADMIN_DRAIN:
        return "drain";
    default:
        return backend_is_up(b) ? "up" : "down";
    }
}
