/* admin — the control listener: metrics, a JSON API, health endpoints and the status page.
 *
 * It runs on a thread of its own with its own loop (loop.h), off the workers' loops, and talks to
 * the data path only through atomics: it reads counters (metrics.h) and backend states, and
 * writes a backend's admin state and weight with atomic stores that every worker's next pick
 * sees. Its HTTP/1.1 server is small on purpose: one request per connection (always
 * Connection: close), heads parsed by http1.c, bodies up to ADMIN_BODY_MAX, PUT bodies parsed
 * with jansson.
 *
 *   GET  /                           the status page (src/status_page.html, built in)
 *   GET  /metrics                    Prometheus text format 0.0.4
 *   GET  /api/v1/status              JSON: version, uptime, workers, listeners, every backend
 *   PUT  /api/v1/backends/{backend}  {"state": "ready"|"drain"|"maint"} and/or {"weight": 0..1000}
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

struct backend_table;
struct config;
struct admin;

#define ADMIN_BODY_MAX 4096

/* Binds the admin listener (cfg->admin_*) and starts its thread. `listeners` is what the proxy
 * listens on (shown by /api/v1/status). Returns NULL and logs on failure. */
struct admin *admin_start(const struct config *cfg, struct backend_table *backends,
                          const char *listeners, const char *version);
/* Thread-safe: /readyz answers 503 from now on (golb is draining). */
void admin_set_draining(struct admin *a);
void admin_stop(struct admin *a);

#endif
