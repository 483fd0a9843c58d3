/* server — the process around the workers: listeners, workers, the health checker, the admin
 * listener, and the configuration generations they run on, including reloads.
 *
 * Reload: SIGHUP (main thread) and POST /api/v1/reload (admin thread) ask the control thread,
 * which runs reloads one at a time in the order asked, so neither the signal loop nor the admin
 * listener (/metrics, /healthz) waits for one; SIGHUPs that come while one already waits its turn
 * join it. The file is loaded and validated off the workers' loops with the same checks as at
 * start-up. Invalid: nothing changes. Valid: a new generation is built (backends matched by
 * identity keep their state, TLS contexts are new: certificates are re-read, the ticket secret
 * carries over), new listeners are bound and the new health checker is started (new backends
 * checked) before anything changes, and a failure of any of it fails the reload with the running
 * generation and checker untouched; then the checker takes over, the generation is published
 * and queued to every worker, which adopts it between two events; requests in flight finish on
 * the generation they started on. Settings that need a restart (workers, admin.listen, a larger
 * maxHeaderSize than the buffers hold) keep their running value, with a warning.
 *
 *   main (SIGHUP) ──┐                     control thread: reload, reload, ...
 *   admin (POST) ───┴─► jobs (FIFO) ──►   └─► admin_reload_done(admin, ticket) ──► admin answers
 */
#ifndef GOLB_SERVER_H
#define GOLB_SERVER_H

#include <stdint.h>

#include "admin/admin.h"

struct config;
struct server;

/* Starts serving cfg (owned from now on) loaded from confpath: binds, checks every backend once,
 * starts the workers, the checker and the admin listener. NULL on failure (logged). */
struct server *server_start(struct config *cfg, const char *confpath, const char *version);
/* Thread-safe and never waits for the reload: asks the control thread to reload confpath; `who`
 * says who asked (logs). With `a` the outcome goes to admin_reload_done(a, ticket, ...), exactly
 * once, before server_stop() returns; without, it is logged only, and one such request still
 * waiting for its turn stands for all that come meanwhile (it reads the file after them).
 * 0, -ENOMEM, or -ESHUTDOWN once golb stops (then nothing comes). */
int server_reload_async(struct server *s, const char *who, struct admin *a, uint64_t ticket);
/* The same, waiting for the outcome: *out gets it, its strings the caller's to free. */
void server_reload(struct server *s, const char *who, struct admin_reload *out);
/* Drains (up to shutdownTimeout), stops and frees everything. Returns the exit status. */
int server_stop(struct server *s);

#endif
