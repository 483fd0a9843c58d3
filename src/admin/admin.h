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
 *   GET  /api/v1/status              JSON: version, uptime, workers, listeners, the default
 *                                    pool's backends (as before pools), every pool with its
 *                                    backends, every route with its request rate
 *   PUT  /api/v1/pools/{pool}/backends/{backend}
 *                                    {"state": "ready"|"drain"|"maint"} and/or {"weight": 0..1000}
 *   PUT  /api/v1/backends/{backend}  the same for the pool "default"
 *   POST /api/v1/reload              reload the configuration file now; answers with the result
 *                                    (run elsewhere: the admin loop goes on meanwhile)
 *   GET  /healthz, /readyz           alive; serving with at least one default-pool backend UP
 *
 * Safety: GET never changes anything; changes need PUT or POST and pass admin_authorize(): the
 * bearer token when one is set (401 otherwise), and without a token only on a unix socket (mode
 * 0600): on TCP, where any local user can connect, they get 403. A request whose Origin is not the
 * admin address itself gets 403; config refuses a non-loopback admin address without a token. Bad
 * input gets 400/404 with a JSON error and changes nothing.
 *
 * A unix socket path is created with mode 0600 (chmod between bind and listen, so nobody connects
 * under a wider mode); a path left by an earlier run is removed first only when lstat says it is a
 * socket and nothing listens on it, anything else fails with a message naming the path; the socket
 * is removed at exit if it is still golb's.
 */
#ifndef GOLB_ADMIN_H
#define GOLB_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
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
/* Asks for a reload to run on another thread (the server's control thread) and returns at once:
 * 0, and then admin_reload_done(a, ticket, ...) comes exactly once, from any thread, before
 * admin_stop(); or -errno (-ESHUTDOWN: golb is stopping) and nothing comes. The admin thread
 * never waits for a reload, so /metrics and /healthz answer while one runs. */
typedef int (*admin_reload_fn)(void *arg, const char *who, struct admin *a, uint64_t ticket);
/* Thread-safe: the outcome of the reload asked with `ticket` (r's strings are taken over). The
 * admin's loop answers the POST that asked, if its client is still there. */
void admin_reload_done(struct admin *a, uint64_t ticket, struct admin_reload *r);

/* What a change request (PUT, POST) may do. */
enum admin_auth {
    ADMIN_AUTH_OK = 0,
    ADMIN_AUTH_BAD_TOKEN, /* 401: a token is set; the request lacks it or sends another */
    ADMIN_AUTH_NO_TOKEN,  /* 403: no token is set and the listener is TCP */
};

/* The rule for changes. With a `token` (non-empty, NUL-terminated) the request's Authorization
 * value (`authorization`, `len` bytes; NULL: absent) must carry it (admin_bearer_ok), on any
 * listener. Without one, changes are allowed on a unix socket only, whose file mode says who may
 * connect; never on TCP, where every local user can. */
enum admin_auth admin_authorize(const char *token, bool unix_socket, const char *authorization,
                                size_t len);

/* True when `authorization` is "Bearer" (any case), one or more spaces, then exactly `token`.
 * Constant time in what matters: the presented token and the configured one are both hashed with
 * SHA-256 and the digests compared with CRYPTO_memcmp, so neither the time taken nor a length
 * check says how close a guess was. */
bool admin_bearer_ok(const char *token, const char *authorization, size_t len);

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
