/* server — the process around the workers: listeners, workers, the health checker, the admin
 * listener, and the configuration generations they run on, including reloads.
 *
 * Reload (server_reload, from SIGHUP on the main thread or POST /api/v1/reload on the admin
 * thread; one at a time): the file is loaded and validated off the workers' loops with the same
 * checks as at start-up. Invalid: nothing changes. Valid: a new generation is built (backends
 * matched by identity keep their state, TLS contexts are new: certificates are re-read, the
 * ticket secret carries over), new listeners are bound before anything changes, new backends are
 * checked, then the generation is published and every worker adopts it between two events;
 * requests in flight finish on the generation they started on. Settings that need a restart
 * (workers, admin.listen, accessLog, accessLogPath, a larger maxHeaderSize than the buffers hold)
 * keep their running value, with a warning.
 */
#ifndef GOLB_SERVER_H
#define GOLB_SERVER_H

#include "admin/admin.h"

struct config;
struct server;

/* Starts serving cfg (owned from now on) loaded from confpath: binds, checks every backend once,
 * starts the workers, the checker and the admin listener. NULL on failure (logged). */
struct server *server_start(struct config *cfg, const char *confpath, const char *version);
/* Reloads confpath. Thread-safe; `who` says who asked (logs). out may be NULL; its strings are
 * the caller's to free. */
void server_reload(struct server *s, const char *who, struct admin_reload *out);
/* Drains (up to shutdownTimeout), stops and frees everything. Returns the exit status. */
int server_stop(struct server *s);

#endif
