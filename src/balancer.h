/* balancer — the strategy interface between the proxy and the ways of choosing a backend.
 *
 * A strategy is a `const struct lb_ops` in its own lb_*.c file, listed in the registry in
 * balancer.c. The proxy only calls balancer_pick() and balancer_release(); adding a strategy never
 * touches the proxy. Picks skip backends that are not UP and those already tried for this request
 * (retries go to another backend). Strategies keep shared state in atomics: no lock per pick.
 */
#ifndef GOLB_BALANCER_H
#define GOLB_BALANCER_H

#include <stdbool.h>

struct backend_table;

/* Backends already tried for one request. Bounded: a request tries at most LB_MAX_TRIES backends. */
#define LB_MAX_TRIES 16
struct lb_tried {
    int n;
    int idx[LB_MAX_TRIES];
};

enum lb_outcome {
    LB_OK = 0,        /* the exchange completed */
    LB_CONNECT_FAILED, /* connect refused, reset or timed out */
    LB_FAILED,        /* the upstream failed mid-exchange (bad response, reset, timeout) */
};

struct lb_ops {
    const char *name;
    /* Allocates per-balancer state; NULL on failure. */
    void *(*create)(struct backend_table *table);
    void (*destroy)(void *state);
    /* Index of the chosen backend, or -1 when none is eligible. */
    int (*pick)(void *state, struct backend_table *table, const struct lb_tried *tried);
    /* Called once per successful pick when the exchange with that backend ends. May be NULL. */
    void (*release)(void *state, struct backend_table *table, int idx, enum lb_outcome outcome);
};

struct balancer {
    const struct lb_ops *ops;
    void *state;
    struct backend_table *table;
};

/* The strategy registered under name, or NULL. */
const struct lb_ops *balancer_find(const char *name);
int balancer_init(struct balancer *b, const struct lb_ops *ops, struct backend_table *table);
void balancer_destroy(struct balancer *b);
int balancer_pick(struct balancer *b, const struct lb_tried *tried);
void balancer_release(struct balancer *b, int idx, enum lb_outcome outcome);

/* Helpers for strategies. */
bool lb_tried_has(const struct lb_tried *tried, int idx);
void lb_tried_add(struct lb_tried *tried, int idx);
/* True when backend idx may receive traffic: UP, not drained or in maintenance, not yet tried. */
bool lb_eligible(const struct backend_table *table, const struct lb_tried *tried, int idx);

extern const struct lb_ops lb_rr_ops;

#endif
