/* backend — see backend.h. */
#include "upstream/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "base/log.h"
#include "net/tls.h"
#include "base/util.h"

static void backend_free(struct backend *b)
{
    for (int w = 0; w < b->nworkers; w++)
        tls_session_free(b->pw[w].idle.session);
    free(b->pw);
    free((char *)b->name);
    free(b->key);
    free(b->pool);
    free(b->label);
    free(b);
}

static struct backend *backend_new(const struct config_backend *cb, const char *key,
                                   const char *pool, int nworkers)
{
    /* aligned_alloc: struct backend is cache-line aligned; calloc only guarantees 16 bytes. */
    struct backend *b = aligned_alloc(_Alignof(struct backend), sizeof(*b));
    if (!b)
        return NULL;
    memset(b, 0, sizeof(*b));
    b->nworkers = nworkers;
    b->name = strdup(cb->name ? cb->name : key);
    b->key = strdup(key);
    if (pool)
        b->pool = strdup(pool);
    if (b->name && (!pool || b->pool) &&
        asprintf(&b->label, "%s%s%s", pool ? pool : "", pool ? "/" : "", b->name) < 0)
        b->label = NULL;
    b->pw = aligned_alloc(_Alignof(struct backend_worker),
                          (size_t)(nworkers ? nworkers : 1) * sizeof(*b->pw));
    if (!b->name || !b->key || (pool && !b->pool) || !b->label || !b->pw) {
        backend_free(b);
        return NULL;
    }
    memset(b->pw, 0, (size_t)(nworkers ? nworkers : 1) * sizeof(*b->pw));
    atomic_init(&b->state, BACKEND_UNKNOWN);
    atomic_init(&b->admin_state, BACKEND_ADMIN_READY);
    atomic_init(&b->weight, cb->weight);
    b->config_weight = cb->weight;
    atomic_init(&b->state_changed_ms, util_wall_ms());
    atomic_init(&b->refs, 1);
    return b;
}

static void backend_unref(struct backend *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        backend_free(b);
}

struct backend_table *backend_table_new(const struct config *cfg, const struct backend_table *prev,
                                        int nworkers)
{
    return backend_table_new_pool(cfg, NULL, prev, nworkers);
}

struct backend_table *backend_table_new_pool(const struct config *cfg, const char *pool,
                                             const struct backend_table *prev, int nworkers)
{
    if (pool && strcmp(pool, "default") == 0)
        pool = NULL;
    struct backend_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->b = calloc((size_t)(cfg->nbackends ? cfg->nbackends : 1), sizeof(*t->b));
    if (!t->b) {
        free(t);
        return NULL;
    }
    for (int i = 0; i < cfg->nbackends; i++) {
        const struct config_backend *cb = &cfg->backends[i];
        char key[300];
        config_backend_key(cb, key, sizeof(key));
        struct backend *b = NULL;
        for (int j = 0; prev && j < prev->n && !b; j++)
            if (strcmp(prev->b[j]->key, key) == 0)
                b = prev->b[j];
        if (b) {
            atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
        } else if (!(b = backend_new(cb, key, pool, nworkers))) {
            backend_table_free(t);
            return NULL;
        }
        if (cb->tier && !t->tier && !(t->tier = calloc((size_t)cfg->nbackends, sizeof(*t->tier)))) {
            backend_unref(b);
            backend_table_free(t);
            return NULL;
        }
        if (t->tier)
            t->tier[t->n] = cb->tier;
        t->b[t->n++] = b;
    }
    return t;
}

bool backend_tier_open(const struct backend_table *t, int idx)
{
    if (!t->tier || !(t->tier[idx] >> 16))
        return true;
    uint32_t group = t->tier[idx] >> 16, prio = t->tier[idx] & 0xFFFFu;
    for (int j = 0; j < t->n; j++)
        if (t->tier[j] >> 16 == group && (t->tier[j] & 0xFFFFu) < prio && backend_is_up(t->b[j]) &&
            backend_admin(t->b[j]) == BACKEND_ADMIN_READY &&
            !atomic_load_explicit(&t->b[j]->retired, memory_order_relaxed))
            return false;
    return true;
}

void backend_table_free(struct backend_table *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        backend_unref(t->b[i]);
    free(t->b);
    free(t->tier);
    free(t);
}

void backend_table_commit(const struct backend_table *t, const struct config *cfg)
{
    for (int i = 0; i < t->n; i++) {
        struct backend *b = t->b[i];
        uint32_t w = cfg->backends[i].weight;
        /* An operator's weight stays unless the file now says something new. */
        if (b->config_weight != w)
            atomic_store_explicit(&b->weight, w, memory_order_relaxed);
        b->config_weight = w;
        atomic_store_explicit(&b->retired, false, memory_order_relaxed);
    }
}

int backend_table_find(const struct backend_table *t, const struct backend *b)
{
    for (int i = 0; i < t->n; i++)
        if (t->b[i] == b)
            return i;
    return -1;
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
    log_event(level, "backend_state", "backend %s is %s (was %s): %s", backend_label(b),
              backend_state_name(state), backend_state_name((enum backend_state)old),
              reason ? reason : "");
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
        log_event(LOG_INFO, "admin", "backend %s set to %s (was %s) by %s", backend_label(b),
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

/* ---- health-check records: one writer (the health thread), a sequence lock for readers ---- */

void backend_check_done(struct backend *b, bool ok, const char *reason, uint32_t duration_ms)
{
    struct backend_check *c = &b->check;
    counter_add(ok ? &c->ok : &c->failed, 1);
    uint32_t s = atomic_load_explicit(&c->seq, memory_order_relaxed);
    atomic_store_explicit(&c->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    c->time_ms = util_wall_ms();
    c->duration_ms = duration_ms;
    c->result = ok;
    snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
    atomic_store_explicit(&c->seq, s + 2, memory_order_release);
}

bool backend_check_read(const struct backend *b, struct backend_check *out)
{
    const struct backend_check *c = &b->check;
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t s1 = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (s1 & 1)
            continue;
        out->time_ms = c->time_ms;
        out->duration_ms = c->duration_ms;
        out->result = c->result;
        memcpy(out->reason, c->reason, sizeof(out->reason));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&c->seq, memory_order_relaxed) == s1) {
            out->reason[sizeof(out->reason) - 1] = '\0';
            atomic_store_explicit(&out->ok, counter_get(&c->ok), memory_order_relaxed);
            atomic_store_explicit(&out->failed, counter_get(&c->failed), memory_order_relaxed);
            return out->time_ms != 0;
        }
    }
    return false;
}
