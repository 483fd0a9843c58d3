/* balancer — the strategy interface between the proxy and the ways of choosing a backend.
 *
 * A strategy is a `const struct lb_ops` in its own lb_*.c file, listed in the registry in
 * balancer.c. The proxy only calls balancer_request_init() (once per request head),
 * balancer_pick() and balancer_release() (once per backend tried), and balancer_set_cookie() (when
 * it writes the response head); adding a strategy never touches the proxy.
 *
 * What every strategy shares is done here, before and around the strategy's pick:
 *   - sticky sessions: a valid cookie routes to its backend while that backend is eligible;
 *   - panic mode: when fewer than panicThreshold % of the backends are UP, health is ignored
 *     (fail-open) and every backend not already tried is a candidate;
 *   - effective weight: the backend's atomic weight (0..1000) times its slow-start ramp (10 % →
 *     100 % over slowStart seconds after it came back UP), in thousandths; 0 = not a candidate.
 * Picks skip backends that are not eligible (lb_eligible: UP, not tried; in panic mode health is
 * ignored) and those whose effective weight is 0. Shared state is in atomics or per worker: no lock
 * per pick.
 */
#ifndef GOLB_BALANCER_H
#define GOLB_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend_table;
struct config;
struct http_request;

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

/* What one request brings to the pick, filled once per request head by balancer_request_init()
 * (the head is not kept: retries pick again from this). Zero-filled plus sticky = -1 is "nothing":
 * no key, no cookie, worker 0. */
struct lb_request {
    uint64_t key;       /* hash of the hashKey value (balance: hash) */
    bool has_key;       /* the request carried the key; without it hash falls back to random */
    int sticky;         /* backend named by a valid sticky cookie, or -1 */
    int worker;         /* index of the calling worker: per-worker strategy state */
    uint64_t picked_us; /* set by balancer_pick(): start of the latency measure */
    uint64_t head_us;   /* set by the proxy when the final response head arrives (0: not yet) */
};

/* Balancer-wide settings, from the configuration. */
struct lb_params {
    int nworkers;              /* per-worker state slots (≥ 1) */
    uint32_t slow_start_ms;    /* slowStart; 0 off */
    uint32_t panic_threshold;  /* panicThreshold percent; 0 off */
    uint32_t load_factor;      /* hashLoadFactor in thousandths; 0 off */
    int hash_key;              /* enum config_hash_key */
    const char *hash_key_name; /* header / cookie / query name */
    const struct config_sticky *sticky; /* NULL: no sticky sessions */
    /* The configured weight of each backend, for strategies that build a table from them (hash)
     * in create(): valid during create() only, NULL after it (and from balancer_init: then the
     * backends' current weights). */
    const uint32_t *weights;
};

/* The context of one pick, built by balancer_pick(). */
struct lb_ctx {
    struct backend_table *table;
    const struct lb_tried *tried;    /* may be NULL */
    const struct lb_request *req;    /* never NULL */
    const struct lb_params *params;
    uint64_t now_ms, now_us; /* monotonic */
    bool panic;
};

struct lb_ops {
    const char *name;
    /* The strategy picks by the request's key (hashKey): balancer_request_init() computes it only
     * for strategies that say so. */
    bool uses_key;
    /* Allocates per-balancer state; NULL on failure. */
    void *(*create)(struct backend_table *table, const struct lb_params *params);
    void (*destroy)(void *state);
    /* Index of the chosen backend, or -1 when none is a candidate. */
    int (*pick)(void *state, const struct lb_ctx *ctx);
    /* Called once per successful pick when the exchange with that backend ends, after the proxy
     * has decremented the backend's in-flight count. latency_us: pick → final response head (→
     * the end when no head came). May be NULL. */
    void (*release)(void *state, struct backend_table *table, int idx, enum lb_outcome outcome,
                    uint64_t latency_us);
};

struct balancer {
    const struct lb_ops *ops;
    void *state;
    struct backend_table *table;
    struct lb_params params;
    uint64_t secret[2];   /* key of the sticky cookie values: stickySession.secret's, or the
                             process's own */
    char (*tokens)[17];   /* per backend: its sticky cookie value (16 hex digits) */
};

/* The strategy registered under name, or NULL. */
const struct lb_ops *balancer_find(const char *name);
/* A balancer with default parameters (no slow start, panic, sticky; one worker slot). */
int balancer_init(struct balancer *b, const struct lb_ops *ops, struct backend_table *table);
/* A balancer as cfg says (balance, hashKey, ..., stickySession, workers). 0 or -1. */
int balancer_init_config(struct balancer *b, const struct config *cfg,
                         struct backend_table *table);
void balancer_destroy(struct balancer *b);

/* Reads what the pick needs from a request (any protocol): the hash key, the sticky cookie (from
 * every cookie field: HTTP/2 may split them). */
void balancer_request_init(const struct balancer *b, struct lb_request *r,
                           const struct http_request *req, const char *client_ip,
                           size_t client_ip_len, int worker);
/* req may be NULL (no key, no cookie). Stamps req->picked_us. */
int balancer_pick(struct balancer *b, struct lb_request *req, const struct lb_tried *tried);
void balancer_release(struct balancer *b, int idx, enum lb_outcome outcome, uint64_t latency_us);
/* Microseconds of the monotonic clock (the latency measure's unit). */
uint64_t balancer_now_us(void);
/* The value of the Set-Cookie field to send with a response from backend idx, written to out
 * (NUL-terminated); returns its length, or 0 when none is needed (no stickySession, or the request
 * already carried idx's cookie) or it does not fit. */
size_t balancer_set_cookie(const struct balancer *b, const struct lb_request *req, int idx,
                           char *out, size_t cap);
/* The backend whose sticky cookie value is `value`, or -1 (never anything not configured). */
int balancer_sticky_lookup(const struct balancer *b, const char *value, size_t len);

/* Helpers for strategies. */
bool lb_tried_has(const struct lb_tried *tried, int idx);
void lb_tried_add(struct lb_tried *tried, int idx);
/* True when backend idx may receive traffic: UP, not drained or in maintenance, not yet tried,
 * not waiting behind a lower SRV priority (backend_tier_open). */
bool lb_eligible(const struct backend_table *table, const struct lb_tried *tried, int idx);
/* Effective weight of idx for this pick in thousandths (weight × slow-start ramp ≤ 1,000,000);
 * 0 when idx is not a candidate (not eligible — in panic mode: tried — or weight 0). */
uint32_t lb_weight(const struct lb_ctx *ctx, int idx);
/* Slow-start ramp in thousandths (100..1000) of a backend UP since up_since_ms (0: always UP). */
uint32_t lb_ramp(uint32_t slow_start_ms, uint64_t up_since_ms, uint64_t now_ms);
/* Per-thread pseudo-random numbers (xorshift64*, seeded per thread). */
uint64_t lb_rand(void);
/* SipHash-2-4 of data under a 128-bit key. */
uint64_t lb_siphash(const uint64_t key[2], const void *data, size_t len);
/* Smooth weighted round-robin (nginx): w[i] effective weights (0: skip), cur[] the caller's
 * running state. Returns the chosen index or -1 when every weight is 0. */
int lb_swrr(int64_t *cur, const uint32_t *w, int n);
/* Per-worker scratch of a strategy: smooth-WRR running scores and a weight per backend. */
struct lb_scratch {
    int64_t *cur;
    uint32_t *w;
};
struct lb_scratch *lb_scratch_new(int nworkers, int n);
void lb_scratch_free(struct lb_scratch *s, int nworkers);
/* The calling worker's slot (worker 0 when the request names none). */
struct lb_scratch *lb_scratch_of(struct lb_scratch *s, int nworkers, const struct lb_ctx *ctx);
/* Fills w[] (n entries) with effective weights and draws two distinct candidates, each in
 * proportion to its weight: *a, then *b among the others. Returns how many candidates there are
 * (0: none drawn; 1: only *a). */
int lb_draw2(const struct lb_ctx *ctx, uint32_t *w, int *a, int *b);
/* Power of two choices on in-flight / weight over lb_draw2's pair (ties: the first drawn): the
 * `random` strategy, also hash's fallback for requests without a key. w: scratch of n entries. */
int lb_p2c(const struct lb_ctx *ctx, uint32_t *w);

/* Internals exposed for unit tests. */
uint32_t lb_maglev_size(int n);
/* Fills table[m] with backend indexes (Maglev); ids: a hash of each backend's identity. 0 / -1. */
int lb_maglev_build(const uint64_t *ids, const uint32_t *weights, int n, uint32_t m,
                    int32_t *table);
int lb_hash_lookup(const int32_t *table, uint32_t m, const struct lb_ctx *ctx, uint32_t *w,
                   uint64_t key, uint32_t load_factor);
double lb_exp_neg(double x);
double lb_latency_estimate(void *state, const struct backend_table *table, int idx,
                           uint64_t now_us);
void lb_latency_sample(void *state, int idx, double x, uint64_t now_us);

extern const struct lb_ops lb_rr_ops;
extern const struct lb_ops lb_lc_ops;
extern const struct lb_ops lb_random_ops;
extern const struct lb_ops lb_latency_ops;
extern const struct lb_ops lb_hash_ops;

#endif
