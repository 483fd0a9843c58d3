/* admin — the control listener: metrics, a JSON API, health endpoints and the status page.
 *
 * It runs on a thread of its own with its own loop (loop.h), off the workers' loops, and talks to
 * the data path only through atomics: it reads counters (metrics.h) and backend states, and
 * writes a backend's admin state and weight with atomic stores that every worker's next pick
 * sees. Its HTTP/1.1 server is small on purpose: one request per connection (always
 * Connection: close), heads parsed by http1.c, bodies up to ADMIN_BODY_MAX, PUT bodies parsed
 * with jansson. It follows reloads by taking the running generation (generation.h) at each
 * request and each sampling tick.
 *
 *   GET  /                           the status page (src/status_page.html, built in)
 *   GET  /metrics                    Prometheus text format 0.0.4
 *   GET  /api/v1/status              JSON: version, uptime, workers, listeners, every backend
 *   PUT  /api/v1/backends/{backend}  {"state": "ready"|"drain"|"maint"} and/or {"weight": 0..1000}
 *   POST /api/v1/reload              reload the configuration file now; answers with the result
 *   GET  /healthz, /readyz           alive; serving with at least one backend UP
 *
 * Safety: GET never changes anything; changes need PUT or POST, and the bearer token when one is
 * set (401 otherwise); a request whose Origin is not the admin address itself gets 403; config
 * refuses a non-loopback admin address without a token. Bad input gets 400/404 with a JSON error
 * and changes nothing.
 */
#ifndef GOLB_ADMIN_H
#define GOLB_ADMIN_H

#include <stdbool.h>

#include <stdint.h>

struct generation;
struct admin;

#define ADMIN_BODY_MAX 4096

/* What POST /api/v1/reload gets from the reload it asks for. */
struct admin_reload {
    bool ok;
    uint64_t generation; /* the one running after the call */
    char *errors;        /* malloc'd, one "FILE:LINE:COL: message" per line (warnings too), or NULL */
    char *changes;       /* malloc'd, one change per line, or NULL */
};
typedef void (*admin_reload_fn)(void *arg, const char *who, struct admin_reload *out);

/* Binds the admin listener (gen's admin settings) and starts its thread. `listeners` is what the
 * proxy listens on (shown by /api/v1/status); `reload` runs a reload (may be NULL). Returns NULL
 * and logs on failure. */
struct admin *admin_start(struct generation *gen, const char *listeners, const char *version,
                          admin_reload_fn reload, void *reload_arg);
/* Thread-safe: what the proxy listens on changed (a reload). */
void admin_set_listeners(struct admin *a, const char *listeners);
/* Thread-safe: /readyz answers 503 from now on (golb is draining). */
void admin_set_draining(struct admin *a);
void admin_stop(struct admin *a);

#endif
